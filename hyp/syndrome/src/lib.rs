//! Typed decoding of AArch64 exception syndromes, for exception reports and
//! trap handling.
//!
//! [`Esr`] wraps a value of ESR_EL2 (or ESR_EL1: the layout is shared). Its
//! exception class is an [`ExceptionClass`]; the class-specific ISS layouts
//! that a hypervisor acts on have their own types: [`DataAbort`],
//! [`InstructionAbort`], [`SysRegAccess`], [`Wfx`]. [`Spsr`] decodes the saved
//! PSTATE. Every bit pattern decodes (unallocated encodings included); none
//! of this can panic.
//!
//! The reference throughout is the Arm Architecture Reference Manual for
//! A-profile (DDI 0487), register description "ESR_EL2, Exception Syndrome
//! Register (EL2)" and its "ISS encoding for an exception from ..." tables,
//! and "SPSR_EL2, Saved Program Status Register (EL2)".

#![no_std]
#![deny(missing_docs)]

mod abort;
mod class;
pub mod inject;
mod spsr;
mod sysreg;

use core::fmt;

pub use abort::{DataAbort, FaultStatus, InstructionAbort};
pub use class::ExceptionClass;
pub use spsr::{Mode, Spsr};
pub use sysreg::{Direction, SysReg, SysRegAccess};

/// An exception syndrome: the value of ESR_EL2.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Esr(pub u64);

impl Esr {
    /// An ESR value with class `class` and syndrome `iss` (IL clear).
    pub const fn encode(class: ExceptionClass, iss: u32) -> Self {
        Self(((class.raw() as u64) << 26) | (iss as u64 & 0x1ff_ffff))
    }

    /// EC, bits 31:26: why the exception was taken.
    pub const fn ec(self) -> ExceptionClass {
        ExceptionClass::from_raw(self.ec_raw())
    }

    /// EC as the raw 6-bit number.
    pub const fn ec_raw(self) -> u8 {
        ((self.0 >> 26) & 0x3f) as u8
    }

    /// IL, bit 25: the trapped instruction was 32 bits long (A64 and A32);
    /// `false` for 16-bit T32 instructions and for exceptions not caused by
    /// an instruction (SError, instruction aborts, ...), where it reads 1
    /// but has no meaning.
    pub const fn il(self) -> bool {
        self.0 & (1 << 25) != 0
    }

    /// ISS, bits 24:0: the class-specific syndrome.
    pub const fn iss(self) -> u32 {
        (self.0 & 0x1ff_ffff) as u32
    }

    /// The data abort syndrome, for EC 0x24 and 0x25.
    pub const fn data_abort(self) -> Option<DataAbort> {
        match self.ec() {
            ExceptionClass::DataAbortLower | ExceptionClass::DataAbortSame => {
                Some(DataAbort::from_iss(self.iss()))
            }
            _ => None,
        }
    }

    /// The instruction abort syndrome, for EC 0x20 and 0x21.
    pub const fn instruction_abort(self) -> Option<InstructionAbort> {
        match self.ec() {
            ExceptionClass::InstructionAbortLower | ExceptionClass::InstructionAbortSame => {
                Some(InstructionAbort::from_iss(self.iss()))
            }
            _ => None,
        }
    }

    /// The trapped MSR, MRS or system instruction, for EC 0x18.
    pub const fn sys_reg_access(self) -> Option<SysRegAccess> {
        match self.ec() {
            ExceptionClass::SysReg64 => Some(SysRegAccess::from_iss(self.iss())),
            _ => None,
        }
    }

    /// Which wait instruction trapped, for EC 0x01.
    pub const fn wfx(self) -> Option<Wfx> {
        match self.ec() {
            // TI, bits 1:0.
            ExceptionClass::Wfx => Some(match self.iss() & 3 {
                0 => Wfx::Wfi,
                1 => Wfx::Wfe,
                2 => Wfx::Wfit,
                _ => Wfx::Wfet,
            }),
            _ => None,
        }
    }

    /// The immediate of an SVC, HVC or SMC from AArch64 (ISS bits 15:0),
    /// e.g. 0 for `HVC #0`. SMC traps taken because HCR_EL2.TSC is set also
    /// report it.
    pub const fn imm16(self) -> Option<u16> {
        match self.ec() {
            ExceptionClass::Svc64 | ExceptionClass::Hvc64 | ExceptionClass::Smc64 => {
                Some(self.iss() as u16)
            }
            _ => None,
        }
    }
}

impl fmt::Debug for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Esr({:#x}: {self})", self.0)
    }
}

/// `EC 0x25 (data abort from the current EL): ...` with the ISS decoded for
/// the classes this crate knows, raw (`ISS=0x...`) for the rest.
impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ec = self.ec();
        write!(f, "EC {:#04x} ({})", self.ec_raw(), ec.description())?;
        if let Some(abort) = self.data_abort() {
            write!(f, ": {abort}")
        } else if let Some(abort) = self.instruction_abort() {
            write!(f, ": {abort}")
        } else if let Some(access) = self.sys_reg_access() {
            write!(f, ": {access}")
        } else if let Some(wfx) = self.wfx() {
            write!(f, ": {wfx}")
        } else if let Some(imm) = self.imm16() {
            write!(f, ": imm16={imm:#06x}")
        } else if ec == ExceptionClass::Brk64 {
            // The BRK comment is ISS bits 15:0.
            write!(f, ": comment={:#06x}", self.iss() & 0xffff)
        } else {
            write!(f, ": ISS={:#x}", self.iss())
        }
    }
}

/// A trapped wait instruction (TI field of the EC 0x01 syndrome).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wfx {
    /// `WFI`: wait for interrupt.
    Wfi,
    /// `WFE`: wait for event.
    Wfe,
    /// `WFIT`: WFI with a timeout (FEAT_WFxT).
    Wfit,
    /// `WFET`: WFE with a timeout (FEAT_WFxT).
    Wfet,
}

impl fmt::Display for Wfx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Wfi => "WFI",
            Self::Wfe => "WFE",
            Self::Wfit => "WFIT",
            Self::Wfet => "WFET",
        })
    }
}
