//! Logging what a guest does wrong without letting it flood the console.

use core::sync::atomic::{AtomicU64, Ordering};
use log::warn;

/// Counts an event in `counter` and runs `log` for the first `always`, then
/// at powers of two only, saying so once (as "further `what`" of VM
/// `vm_name`), so a hostile guest cannot flood the console.
// Out of line and cold: only guest mistakes get here, and inlined it
// would grow the exit handlers around the fast path.
#[cold]
#[inline(never)]
pub fn rate_limited(
    vm_name: &str,
    counter: &AtomicU64,
    always: u64,
    what: &str,
    log: impl FnOnce(),
) {
    let count = counter.fetch_add(1, Ordering::Relaxed) + 1;
    if count <= always || count.is_power_of_two() {
        log();
        if count == always {
            warn!("vm \"{vm_name}\": further {what} are logged at powers of two only");
        }
    }
}
