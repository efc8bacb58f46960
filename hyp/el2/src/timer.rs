//! Time from the generic timer's physical counter.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0};
use tock_registers::interfaces::Readable;

/// Spins until `done` returns true or `timeout_ms` milliseconds have passed;
/// returns whether `done` became true.
pub fn wait_until(timeout_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let ticks = CNTFRQ_EL0.get().saturating_mul(timeout_ms) / 1000;
    let start = CNTPCT_EL0.get();
    while CNTPCT_EL0.get().wrapping_sub(start) < ticks {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}
