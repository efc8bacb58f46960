//! The hypervisor's spin lock: `spin`'s, with waiters that yield.

use core::arch::asm;
use spin::relax::RelaxStrategy;

/// Waits for a contended lock with `YIELD`, the architecture's hint that
/// this CPU is only spinning (Linux's `cpu_relax`). Under QEMU's TCG, which
/// runs the emulated CPUs one after another on one thread, it also passes
/// the thread to the next CPU, which may be the holder; the default
/// (`core::hint::spin_loop`, an ISB on AArch64) spins out the rest of the
/// waiter's turn.
#[derive(Debug)]
pub struct Yield;

impl RelaxStrategy for Yield {
    #[inline(always)]
    fn relax() {
        // SAFETY: YIELD is a hint with no architectural effect.
        unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
    }
}

/// A spin lock whose waiters yield.
pub type SpinMutex<T> = spin::mutex::SpinMutex<T, Yield>;
