//! Making a guest take an exception at EL1, as the hardware would have.
//!
//! The hypervisor injects a synchronous exception by writing the syndrome to
//! ESR_EL1, the interrupted PC and PSTATE to ELR_EL1 and SPSR_EL1, and
//! resuming the guest at its vector with the PSTATE of exception entry. This
//! module computes those values (Arm ARM D1.3 "Exception entry" and the
//! vector offsets of VBAR_EL1); the caller writes the registers.

use crate::{Esr, ExceptionClass, Mode, Spsr};

/// ESR.IL: a 32-bit instruction.
const IL: u64 = 1 << 25;
/// ISS fault status "synchronous external abort, not on a translation table walk".
const FSC_SYNC_EXTERNAL: u64 = 0x10;
/// Data abort ISS.WnR: the access was a write.
const WNR: u64 = 1 << 6;

/// PSTATE.M for EL1 using SP_EL1.
const M_EL1H: u64 = 0b0101;
/// PSTATE.{D,A,I,F}: all masked on exception entry.
const DAIF: u64 = 0b1111 << 6;

/// The kinds of synchronous exception the hypervisor injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injected {
    /// A data access the guest may not make: synchronous external abort.
    DataAbort {
        /// Whether the access was a write.
        write: bool,
    },
    /// An instruction fetch the guest may not make: synchronous external abort.
    InstructionAbort,
    /// An instruction the guest may not execute (EC 0, "unknown reason"),
    /// which is what UNDEFINED instructions report.
    Undefined,
}

/// Where and how the guest resumes after an injected exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Value for ESR_EL1.
    pub esr: u64,
    /// Value for ELR_EL1: the instruction that caused the exception.
    pub elr: u64,
    /// Value for SPSR_EL1: the guest's PSTATE when it happened.
    pub spsr: u64,
    /// The guest's new PC: its vector for this exception.
    pub pc: u64,
    /// The guest's new PSTATE: EL1h with D, A, I and F masked.
    pub pstate: u64,
}

/// Why an exception cannot be injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectError {
    /// The guest was not in an AArch64 EL0 or EL1 mode (AArch32 guests are
    /// not supported; EL2 or EL3 means the saved state is corrupt).
    UnsupportedMode(Mode),
}

impl core::fmt::Display for InjectError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnsupportedMode(mode) => {
                write!(
                    f,
                    "cannot inject an exception into a guest in mode {mode:?}"
                )
            }
        }
    }
}

/// Computes the entry into the guest's synchronous exception vector for
/// `what`, raised by the instruction at `pc` while the guest's PSTATE was
/// `pstate`, with `vbar` its VBAR_EL1.
pub fn synchronous(what: Injected, pc: u64, pstate: u64, vbar: u64) -> Result<Entry, InjectError> {
    let mode = Spsr(pstate).mode();
    // Offsets in VBAR_EL1 of the synchronous vectors (Arm ARM D1.3.1).
    let (same_el, offset) = match mode {
        Mode::El1t => (true, 0x000),
        Mode::El1h => (true, 0x200),
        Mode::El0t => (false, 0x400),
        other => return Err(InjectError::UnsupportedMode(other)),
    };
    let (class, iss) = match what {
        Injected::DataAbort { write } => (
            if same_el {
                ExceptionClass::DataAbortSame
            } else {
                ExceptionClass::DataAbortLower
            },
            FSC_SYNC_EXTERNAL | if write { WNR } else { 0 },
        ),
        Injected::InstructionAbort => (
            if same_el {
                ExceptionClass::InstructionAbortSame
            } else {
                ExceptionClass::InstructionAbortLower
            },
            FSC_SYNC_EXTERNAL,
        ),
        Injected::Undefined => (ExceptionClass::Unknown, 0),
    };
    Ok(Entry {
        esr: Esr::encode(class, iss as u32).0 | IL,
        elr: pc,
        spsr: pstate,
        pc: vbar.wrapping_add(offset),
        pstate: M_EL1H | DAIF,
    })
}
