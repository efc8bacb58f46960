//! SMCCC calls over HVC (Arm DEN0028) and the PSCI functions the guest uses
//! (Arm DEN0022). The device tree's `/psci` must name HVC: both the
//! hypervisor and the reference VMM's KVM take calls that way.

use crate::smp;
use core::arch::asm;
use core::fmt;

/// PSCI `CPU_OFF`.
const PSCI_CPU_OFF: u32 = 0x8400_0002;
/// PSCI `CPU_ON`, SMC64 convention.
const PSCI_CPU_ON_64: u32 = 0xC400_0003;
/// PSCI `SYSTEM_OFF`.
const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;

/// An SMCCC status: the signed 32-bit value in w0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    /// `SUCCESS`.
    pub const SUCCESS: Self = Self(0);
    /// `NOT_SUPPORTED`: an unknown function ID.
    pub const NOT_SUPPORTED: Self = Self(-1);

    /// The status in x0 of a call's result.
    pub fn from_x0(x0: u64) -> Self {
        // w0 is the low half of x0; the casts keep exactly that.
        Self(x0 as u32 as i32)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::SUCCESS => f.write_str("0 (SUCCESS)"),
            Self::NOT_SUPPORTED => f.write_str("-1 (NOT_SUPPORTED)"),
            Self(other) => write!(f, "{other}"),
        }
    }
}

/// An SMC64/HVC64-convention call of `function` with x1..x3 = `args`;
/// returns x0. x4 to x17 may be changed by an SMCCC 1.0 implementation, so
/// they are declared clobbered.
#[inline(always)]
pub fn hvc(function: u32, args: [u64; 3]) -> u64 {
    let x0: u64;
    // SAFETY: HVC #0 is an SMCCC call to the hypervisor, which changes no
    // memory of this guest; the registers it may change are declared.
    unsafe {
        asm!(
            "hvc #0",
            inlateout("x0") u64::from(function) => x0,
            inlateout("x1") args[0] => _,
            inlateout("x2") args[1] => _,
            inlateout("x3") args[2] => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack)
        );
    }
    x0
}

/// PSCI `CPU_ON` of the vCPU with affinity `mpidr`, starting at the
/// secondary entry point with its index as the context ID.
pub fn cpu_on(mpidr: u64, index: usize) -> Status {
    Status::from_x0(hvc(
        PSCI_CPU_ON_64,
        [mpidr, crate::boot::secondary_entry_address(), index as u64],
    ))
}

/// PSCI `CPU_OFF`; returns only if the call failed, with its status.
pub fn cpu_off() -> Status {
    Status::from_x0(hvc(PSCI_CPU_OFF, [0; 3]))
}

/// PSCI `SYSTEM_OFF`. Should it return, this vCPU parks.
pub fn system_off() -> ! {
    hvc(PSCI_SYSTEM_OFF, [0; 3]);
    smp::park()
}
