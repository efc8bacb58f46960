//! Per-CPU data, found through TPIDR_EL2.
//!
//! Each physical CPU gets a logical index at boot (the primary is 0, the
//! others follow the device tree's order) and one [`PerCpu`] record that
//! lives as long as the hypervisor does.

use aarch64_cpu::registers::TPIDR_EL2;
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
}

impl PerCpu {
    const fn new(index: usize) -> Self {
        Self {
            index,
            mpidr: AtomicU64::new(0),
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
/// TPIDR_EL2 and remembers its MPIDR. Called once per CPU, first thing.
///
/// Returns `None` if `index` is beyond [`MAX_CPUS`].
pub fn init_this_cpu(index: usize, mpidr: u64) -> Option<&'static PerCpu> {
    let this = PER_CPU.get(index)?;
    this.mpidr.store(mpidr, Ordering::Relaxed);
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
