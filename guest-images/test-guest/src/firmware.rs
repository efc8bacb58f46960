//! SMCCC and PSCI calls through HVC or SMC (Arm DEN0028 "SMC Calling
//! Convention", Arm DEN0022 "Power State Coordination Interface").
//!
//! Every call runs under [`exceptions::catch`], so a conduit that is not
//! implemented (an undefined HVC or SMC) shows up as a test failure instead
//! of ending the run. Return codes are read from w0: PSCI returns `int32`
//! for its 64-bit functions too.

use crate::exceptions::{self, Fault};
use crate::smp;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use smccc::{Call, Hvc, Smc};

pub use guest_rt::firmware::Status;
pub use smccc::arch::SMCCC_VERSION;
pub use smccc::psci::{
    PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_CPU_SUSPEND_64, PSCI_FEATURES,
    PSCI_MIGRATE_INFO_TYPE, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

/// How calls reach the hypervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// Hypervisor call.
    Hvc = 0,
    /// Secure monitor call, which the hypervisor traps.
    Smc = 1,
}

impl fmt::Display for Conduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hvc => "HVC",
            Self::Smc => "SMC",
        })
    }
}

/// Whether the device tree's /psci node says "smc"; HVC otherwise.
static PSCI_OVER_SMC: AtomicBool = AtomicBool::new(false);

/// Sets the conduit that [`psci_conduit`] returns (the device tree's).
pub fn set_psci_conduit(conduit: Conduit) {
    PSCI_OVER_SMC.store(conduit == Conduit::Smc, Ordering::Relaxed);
}

/// The conduit the device tree names for PSCI.
pub fn psci_conduit() -> Conduit {
    if PSCI_OVER_SMC.load(Ordering::Relaxed) {
        Conduit::Smc
    } else {
        Conduit::Hvc
    }
}

/// A 32-bit value printed in hex, such as a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Makes an SMC64/HVC64-convention call with `function` and x1..x7 = `args`
/// and returns x0..x3, or the exception the call raised.
pub fn call(conduit: Conduit, function: u32, args: [u64; 7]) -> Result<[u64; 4], Fault> {
    let mut all_args = [0; 17];
    all_args[..7].copy_from_slice(&args);
    let (ret, fault) = exceptions::catch(|| match conduit {
        Conduit::Hvc => Hvc::call64(function, all_args),
        Conduit::Smc => Smc::call64(function, all_args),
    });
    match fault {
        Some(fault) => Err(fault),
        None => Ok([ret[0], ret[1], ret[2], ret[3]]),
    }
}

/// A call with up to three arguments whose result is a [`Status`].
pub fn status(conduit: Conduit, function: u32, args: &[u64]) -> Result<Status, Fault> {
    let mut all = [0; 7];
    for (slot, arg) in all.iter_mut().zip(args) {
        *slot = *arg;
    }
    call(conduit, function, all).map(|ret| Status::from_x0(ret[0]))
}

/// A call whose w0 result is a version number.
pub fn version(conduit: Conduit, function: u32) -> Result<Hex, Fault> {
    call(conduit, function, [0; 7]).map(|ret| Hex(ret[0] & 0xffff_ffff))
}

/// PSCI `CPU_ON` (64-bit) of `mpidr` at the secondary entry point, with the
/// vCPU index as the context ID.
pub fn cpu_on(mpidr: u64, index: usize) -> Result<Status, Fault> {
    status(
        psci_conduit(),
        PSCI_CPU_ON_64,
        &[
            mpidr,
            guest_rt::boot::secondary_entry_address(),
            index as u64,
        ],
    )
}

/// PSCI `AFFINITY_INFO` (64-bit) of `mpidr` at affinity level 0.
pub fn affinity_info(mpidr: u64) -> Result<Status, Fault> {
    status(psci_conduit(), PSCI_AFFINITY_INFO_64, &[mpidr, 0])
}

/// PSCI `CPU_OFF`; returns only if the call failed.
pub fn cpu_off() -> Result<Status, Fault> {
    status(psci_conduit(), PSCI_CPU_OFF, &[])
}

/// PSCI `SYSTEM_OFF`. Should it return, this vCPU parks.
pub fn system_off() -> ! {
    let _ = status(psci_conduit(), PSCI_SYSTEM_OFF, &[]);
    smp::park()
}

/// PSCI `SYSTEM_RESET`; returns what the call returned if it did return.
pub fn system_reset() -> Result<Status, Fault> {
    status(psci_conduit(), PSCI_SYSTEM_RESET, &[])
}

/// A call's status or the exception it raised, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer(pub Result<Status, Fault>);

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(status) => write!(f, "{status}"),
            Err(fault) => write!(f, "{fault}"),
        }
    }
}
