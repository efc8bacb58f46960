//! Single-instruction memory accesses and instruction fetches that may
//! fault, for the abort and fuzz tests. Each runs under
//! [`exceptions::catch`] and reports the address of the instruction that
//! made the access, so a test can check ELR_EL1 as well as FAR_EL1.

use crate::exceptions::{self, Fault};
use core::arch::asm;
use core::fmt;

/// The size of an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 1 byte (`ldrb`/`strb`).
    Byte,
    /// 2 bytes (`ldrh`/`strh`).
    Half,
    /// 4 bytes (`ldr`/`str` of a W register).
    Word,
    /// 8 bytes (`ldr`/`str` of an X register).
    Double,
}

impl Width {
    /// All widths, smallest first.
    pub const ALL: [Width; 4] = [Width::Byte, Width::Half, Width::Word, Width::Double];

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            Self::Byte => 1,
            Self::Half => 2,
            Self::Word => 4,
            Self::Double => 8,
        }
    }
}

impl fmt::Display for Width {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-bit", self.bytes() * 8)
    }
}

/// What a probing access did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The value read (for a read; 0 if it faulted).
    pub value: Option<u64>,
    /// Address of the accessing instruction (for a fetch, the target).
    pub instruction: u64,
    /// The exception the access raised, if any.
    pub fault: Option<Fault>,
}

/// One load instruction with its address, skipped if it faults.
macro_rules! load {
    ($insn:literal, $reg:literal, $address:expr) => {{
        let (value, instruction): (u64, u64);
        // SAFETY: See `read`: the caller vouches for the address; the
        // exception handler resumes after the load if it faults, and then
        // `value` keeps its initial 0.
        unsafe {
            asm!(
                "adr {insn}, 1f",
                concat!("1: ", $insn, " {value:", $reg, "}, [{address}]"),
                insn = out(reg) instruction,
                value = inout(reg) 0u64 => value,
                address = in(reg) $address,
                options(nostack),
            );
        }
        (value, instruction)
    }};
}

/// One store instruction with its address, skipped if it faults.
macro_rules! store {
    ($insn:literal, $reg:literal, $address:expr, $value:expr) => {{
        let instruction: u64;
        // SAFETY: See `write`: the caller vouches for the address; the
        // exception handler resumes after the store if it faults.
        unsafe {
            asm!(
                "adr {insn}, 1f",
                concat!("1: ", $insn, " {value:", $reg, "}, [{address}]"),
                insn = out(reg) instruction,
                value = in(reg) $value,
                address = in(reg) $address,
                options(nostack),
            );
        }
        instruction
    }};
}

/// Reads `width` bytes at `address` with one load instruction.
///
/// # Safety
///
/// `address` must be aligned to `width` and must not be memory that Rust
/// code uses; if it is a device, reading it must have no effect on memory.
pub unsafe fn read(address: u64, width: Width) -> Probe {
    let ((value, instruction), fault) = exceptions::catch(|| match width {
        Width::Byte => load!("ldrb", "w", address),
        Width::Half => load!("ldrh", "w", address),
        Width::Word => load!("ldr", "w", address),
        Width::Double => load!("ldr", "x", address),
    });
    Probe {
        value: Some(value),
        instruction,
        fault,
    }
}

/// Writes the low `width` bytes of `value` at `address` with one store
/// instruction.
///
/// # Safety
///
/// `address` must be aligned to `width` and must not be memory that Rust
/// code uses; if it is a device, writing it must not make the device write
/// such memory (DMA).
pub unsafe fn write(address: u64, width: Width, value: u64) -> Probe {
    let (instruction, fault) = exceptions::catch(|| match width {
        Width::Byte => store!("strb", "w", address, value),
        Width::Half => store!("strh", "w", address, value),
        Width::Word => store!("str", "w", address, value),
        Width::Double => store!("str", "x", address, value),
    });
    Probe {
        value: None,
        instruction,
        fault,
    }
}

/// Branches (with link) to `address`, which is expected to fault on the
/// instruction fetch; execution resumes after the branch either way.
///
/// # Safety
///
/// `address` must not hold code that could run: if the fetch succeeds, what
/// runs there runs until it faults (the exception handler then returns here)
/// or returns.
pub unsafe fn fetch(address: u64) -> Probe {
    let ((), fault) = exceptions::catch_call(|| {
        // SAFETY: The caller vouches that nothing runs at `address`. Every
        // register but x30 is restored by the exception handler, which
        // resumes at x30, just after the branch; `clobber_abi` covers a
        // target that does run and returns.
        unsafe {
            asm!("blr {target}", target = in(reg) address, clobber_abi("C"));
        }
    });
    Probe {
        value: None,
        instruction: address,
        fault,
    }
}
