//! SMCCC calls over HVC (Arm DEN0028 "SMC Calling Convention") and the PSCI
//! functions (Arm DEN0022 "Power State Coordination Interface") a guest
//! makes that way, with the status codes both conventions return in w0.
//!
//! These calls expect the hypervisor (or KVM) to take HVC; a guest that
//! must also try SMC, or survive an undefined conduit, makes its own calls
//! and reads their results with [`Status`].

use core::fmt;
use smccc::psci;

pub use smccc::psci::{PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_SYSTEM_OFF};

/// A PSCI or SMCCC status code: a signed 32-bit value in w0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    /// `SUCCESS`, and `ON` for `AFFINITY_INFO`.
    pub const SUCCESS: Self = Self(0);
    /// `AFFINITY_INFO`: the CPU is off.
    pub const OFF: Self = Self(1);
    /// `MIGRATE_INFO_TYPE`: no trusted OS, or one that needs no migration.
    pub const NO_MIGRATION: Self = Self(2);
    /// `NOT_SUPPORTED`: among others, an unknown function ID.
    pub const NOT_SUPPORTED: Self = Self(psci::error::NOT_SUPPORTED);
    /// `INVALID_PARAMETERS`.
    pub const INVALID_PARAMETERS: Self = Self(psci::error::INVALID_PARAMETERS);
    /// `ALREADY_ON`.
    pub const ALREADY_ON: Self = Self(psci::error::ALREADY_ON);

    /// The status in w0 of a call's result registers.
    pub fn from_x0(x0: u64) -> Self {
        // w0 is the low half of x0; the cast keeps exactly that.
        Self(x0 as u32 as i32)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Non-negative values mean different things per function (ON, OFF,
        // a migration type, feature flags); the error codes are common.
        let name = match self.0 {
            psci::error::NOT_SUPPORTED => "NOT_SUPPORTED",
            psci::error::INVALID_PARAMETERS => "INVALID_PARAMETERS",
            psci::error::DENIED => "DENIED",
            psci::error::ALREADY_ON => "ALREADY_ON",
            psci::error::ON_PENDING => "ON_PENDING",
            psci::error::INTERNAL_FAILURE => "INTERNAL_FAILURE",
            psci::error::NOT_PRESENT => "NOT_PRESENT",
            psci::error::DISABLED => "DISABLED",
            psci::error::INVALID_ADDRESS => "INVALID_ADDRESS",
            _ => return write!(f, "{}", self.0),
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// An SMC64/HVC64-convention call of `function` with x1..x3 = `args`;
/// returns x0. x4 to x17 may be changed by an SMCCC 1.0 implementation, so
/// they are declared clobbered. Always inlined: the bench guest times it.
#[cfg(target_os = "none")]
#[inline(always)]
pub fn hvc(function: u32, args: [u64; 3]) -> u64 {
    let x0: u64;
    // SAFETY: HVC #0 is an SMCCC call to the hypervisor, which changes no
    // memory of this guest; the registers it may change are declared.
    unsafe {
        core::arch::asm!(
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

/// PSCI `CPU_ON` over HVC of the vCPU with affinity `mpidr`, starting at the
/// secondary entry point with its index as the context ID.
#[cfg(target_os = "none")]
pub fn cpu_on(mpidr: u64, index: usize) -> Status {
    Status::from_x0(hvc(
        PSCI_CPU_ON_64,
        [mpidr, crate::boot::secondary_entry_address(), index as u64],
    ))
}

/// PSCI `CPU_OFF` over HVC; returns only if the call failed, with its status.
#[cfg(target_os = "none")]
pub fn cpu_off() -> Status {
    Status::from_x0(hvc(PSCI_CPU_OFF, [0; 3]))
}

/// PSCI `SYSTEM_OFF` over HVC. Should it return, this vCPU parks.
#[cfg(target_os = "none")]
pub fn system_off() -> ! {
    hvc(PSCI_SYSTEM_OFF, [0; 3]);
    crate::smp::park()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_from_w0() {
        assert_eq!(Status::from_x0(0xffff_ffff), Status::NOT_SUPPORTED);
        assert_eq!(Status::from_x0(0x1234_5678_0000_0001), Status::OFF);
    }
}
