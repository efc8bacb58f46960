//! What the guest needs from its device tree: the vCPUs' MPIDRs, the
//! bootargs, and that PSCI is reached over HVC.

use core::fmt;
use guest_rt::dt::{self, OpenError};
use guest_rt::smp;

/// The machine as the device tree describes it.
#[derive(Debug)]
pub struct Machine {
    /// MPIDR affinity of each vCPU in device-tree order: index = vCPU index.
    pub cpus: heapless::Vec<u64, { smp::MAX_VCPUS }>,
    /// `/chosen/bootargs`, or "".
    pub bootargs: &'static str,
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DtError {
    /// No device tree at x0, or one the parser refused.
    Open(OpenError),
    /// No /cpus/cpu node with a usable `reg`.
    NoCpus,
    /// `/psci/method` is not "hvc".
    PsciNotHvc,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(e) => write!(f, "{e}"),
            Self::NoCpus => f.write_str("no /cpus/cpu node with a reg"),
            Self::PsciNotHvc => f.write_str("/psci/method is not \"hvc\""),
        }
    }
}

/// Reads the device tree at `dtb`.
///
/// # Errors
///
/// Every [`DtError`] variant, as documented there.
pub fn parse(dtb: u64) -> Result<Machine, DtError> {
    // The loader put the tree beyond the image; nothing in the guest writes it.
    let fdt = dt::open(dtb).map_err(DtError::Open)?;
    let cpus = dt::cpus(&fdt).ok_or(DtError::NoCpus)?.mpidrs;
    if dt::psci_method(&fdt) != Some("hvc") {
        return Err(DtError::PsciNotHvc);
    }
    Ok(Machine {
        cpus,
        bootargs: dt::bootargs(&fdt),
    })
}
