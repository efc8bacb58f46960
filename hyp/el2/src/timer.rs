//! Time from the generic timer: the physical counter, and the EL2 physical
//! timer (CNTHP) that ends time slices and wakes sleeping vCPUs.
//!
//! The counter is the same on every CPU, and guests' virtual counters equal
//! it (CNTVOFF_EL2 = 0), so deadlines taken on one CPU hold on any other.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0};
use core::arch::asm;
use tock_registers::interfaces::Readable;

/// CNTHP_CTL_EL2.ENABLE (IMASK clear).
const CTL_ENABLE: u64 = 1;

/// The physical counter now.
pub fn now() -> u64 {
    // SAFETY: The ISB keeps the read from being taken early.
    unsafe { asm!("isb", options(nomem, nostack, preserves_flags)) };
    CNTPCT_EL0.get()
}

/// Counter ticks in `ms` milliseconds.
pub fn ticks_of_ms(ms: u64) -> u64 {
    CNTFRQ_EL0.get().saturating_mul(ms) / 1000
}

/// Arms this CPU's EL2 timer to fire at counter value `deadline`, or turns
/// it off for `None`.
pub fn arm(deadline: Option<u64>) {
    match deadline {
        // SAFETY: The EL2 physical timer is the hypervisor's alone.
        Some(at) => unsafe {
            asm!(
                "msr cnthp_cval_el2, {at}",
                "msr cnthp_ctl_el2, {ctl}",
                at = in(reg) at,
                ctl = in(reg) CTL_ENABLE,
                options(nomem, nostack, preserves_flags)
            )
        },
        // SAFETY: As above.
        None => unsafe {
            asm!(
                "msr cnthp_ctl_el2, xzr",
                options(nomem, nostack, preserves_flags)
            )
        },
    }
}

/// Spins until `done` returns true or `timeout_ms` milliseconds have passed;
/// returns whether `done` became true.
pub fn wait_until(timeout_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let ticks = ticks_of_ms(timeout_ms);
    let start = now();
    while now().wrapping_sub(start) < ticks {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}
