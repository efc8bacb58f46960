//! vCPU identity and parking.

use aarch64_cpu::asm::wfi;
use aarch64_cpu::registers::{Readable, MPIDR_EL1, TPIDR_EL1};

/// Most vCPUs a guest runs on: the entry code has one stack each and turns
/// away a secondary whose index is not below it.
pub const MAX_VCPUS: usize = 8;

/// MPIDR_EL1's affinity fields Aff3..Aff0, the form the device tree's
/// `reg`, PSCI and the GIC use.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// This vCPU's index, which the entry code keeps in TPIDR_EL1.
pub fn current_index() -> usize {
    // The entry code only ever stores an index below MAX_VCPUS.
    (TPIDR_EL1.get() as usize).min(MAX_VCPUS - 1)
}

/// This vCPU's MPIDR affinity fields.
pub fn current_mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFFINITY_MASK
}

/// Stops this vCPU for good.
pub fn park() -> ! {
    loop {
        wfi();
    }
}
