//! Per-CPU data, found through TPIDR_EL2.
//!
//! Each physical CPU gets a logical index at boot (the primary is 0, the
//! others follow the device tree's order) and one [`PerCpu`] record that
//! lives as long as the hypervisor does.

use crate::stacks::{self, StackBounds, GUARD_SIZE};
use aarch64_cpu::registers::{SP_EL0, TPIDR_EL2};
use core::sync::atomic::{AtomicU64, Ordering};
use platform::MAX_CPUS;
use tock_registers::interfaces::{Readable, Writeable};

/// What each physical CPU knows about itself.
#[derive(Debug)]
pub struct PerCpu {
    /// Logical index, also the CPU number in log lines.
    pub index: usize,
    /// MPIDR_EL1 affinity of this CPU, as the device tree names it.
    mpidr: AtomicU64,
    /// Guard page below this CPU's stack (its address; 0 if none yet).
    stack_guard: AtomicU64,
    /// Guard page below this CPU's exception stack.
    exception_stack_guard: AtomicU64,
}

impl PerCpu {
    const fn new(index: usize) -> Self {
        Self {
            index,
            mpidr: AtomicU64::new(0),
            stack_guard: AtomicU64::new(0),
            exception_stack_guard: AtomicU64::new(0),
        }
    }

    /// Names the stack whose guard page holds `addr`, if any: a fault there
    /// is a stack overflow.
    pub fn overflowed_stack(&self, addr: u64) -> Option<&'static str> {
        let in_guard = |guard: &AtomicU64| {
            let start = guard.load(Ordering::Relaxed);
            start != 0 && (start..start + GUARD_SIZE as u64).contains(&addr)
        };
        if in_guard(&self.stack_guard) {
            Some("stack")
        } else if in_guard(&self.exception_stack_guard) {
            Some("exception stack")
        } else {
            None
        }
    }

    /// MPIDR affinity value of this CPU.
    pub fn mpidr(&self) -> u64 {
        self.mpidr.load(Ordering::Relaxed)
    }
}

static PER_CPU: [PerCpu; MAX_CPUS] = {
    let mut all = [const { PerCpu::new(0) }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        all[i] = PerCpu::new(i);
        i += 1;
    }
    all
};

/// Makes `index` the calling CPU's identity: stores its record's address in
/// TPIDR_EL2, remembers its MPIDR and its stack's guard page, and points
/// SP_EL0 at its exception stack (which the vectors switch to). Called once
/// per CPU, first thing.
///
/// Returns `None` if `index` is beyond [`MAX_CPUS`].
pub fn init_this_cpu(index: usize, mpidr: u64, stack: StackBounds) -> Option<&'static PerCpu> {
    let this = PER_CPU.get(index)?;
    let exception_stack = stacks::exception_stack(index)?;
    this.mpidr.store(mpidr, Ordering::Relaxed);
    this.stack_guard
        .store(stack.guard.start().get(), Ordering::Relaxed);
    this.exception_stack_guard
        .store(exception_stack.guard.start().get(), Ordering::Relaxed);
    SP_EL0.set(exception_stack.top);
    TPIDR_EL2.set(this as *const PerCpu as u64);
    Some(this)
}

/// The calling CPU's record, or `None` before [`init_this_cpu`] ran on it.
pub fn this_cpu() -> Option<&'static PerCpu> {
    let ptr = TPIDR_EL2.get() as *const PerCpu;
    // Only addresses of `PER_CPU` elements are accepted, so an unset or
    // corrupted TPIDR_EL2 never becomes a wild reference.
    PER_CPU.iter().find(|p| core::ptr::eq(*p, ptr))
}

/// The calling CPU's logical index (0 if it has none yet).
pub fn current_index() -> usize {
    this_cpu().map_or(0, |p| p.index)
}

/// The record of physical CPU `index`, if there is one.
pub fn of(index: usize) -> Option<&'static PerCpu> {
    PER_CPU.get(index)
}
