//! The virtual counter, CNTVCT_EL0: the benchmarks' clock.
//!
//! Under QEMU with `-icount shift=0` the counter advances one tick per
//! nanosecond of virtual time, and virtual time one nanosecond per
//! instruction QEMU executes (on any of its CPUs), provided CNTFRQ_EL0 is
//! 1 GHz: the guest prints the frequency so the host tool can check.

use aarch64_cpu::registers::{Readable, CNTFRQ_EL0};
use core::arch::asm;

/// The counter now. The ISB keeps the read from being taken early (Arm ARM
/// D12.1.2: reads of the counter may be speculated); it is the same two
/// instructions in every measurement.
#[inline(always)]
pub fn now() -> u64 {
    let ticks: u64;
    // SAFETY: Reading CNTVCT_EL0 has no side effects.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack));
    }
    ticks
}

/// The counter's frequency in Hz, CNTFRQ_EL0.
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Whether `ticks` have passed since `start`.
pub fn elapsed(start: u64, ticks: u64) -> bool {
    now().wrapping_sub(start) > ticks
}
