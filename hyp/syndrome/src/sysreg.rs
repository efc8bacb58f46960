//! Trapped MSR, MRS and system instructions (EC 0x18).
//!
//! Layout from the Arm ARM (DDI 0487) table "ISS encoding for an exception
//! from MSR, MRS, or System instruction execution in AArch64 state".

use core::fmt;

/// A system register (or system instruction) encoding: the operands of
/// `MRS Xt, S<op0>_<op1>_C<n>_C<m>_<op2>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SysReg {
    /// op0, 2 bits (3 for registers, 1 for system instructions).
    pub op0: u8,
    /// op1, 3 bits.
    pub op1: u8,
    /// CRn, 4 bits.
    pub crn: u8,
    /// CRm, 4 bits.
    pub crm: u8,
    /// op2, 3 bits.
    pub op2: u8,
}

impl SysReg {
    /// The encoding `S<op0>_<op1>_C<crn>_C<crm>_<op2>`, fields masked to
    /// their widths.
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self {
            op0: op0 & 3,
            op1: op1 & 7,
            crn: crn & 0xf,
            crm: crm & 0xf,
            op2: op2 & 7,
        }
    }
}

/// The generic name, e.g. `S3_0_C0_C0_5` for MPIDR_EL1.
impl fmt::Display for SysReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "S{}_{}_C{}_C{}_{}",
            self.op0, self.op1, self.crn, self.crm, self.op2
        )
    }
}

/// Which way a trapped system register access goes (ISS bit 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// MRS or SYSL: the register is read into Rt.
    Read,
    /// MSR or SYS: Rt is written to the register.
    Write,
}

/// A trapped MSR, MRS or system instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysRegAccess {
    /// The register or instruction accessed.
    pub reg: SysReg,
    /// Rt, the general-purpose register (31 means XZR).
    pub rt: u8,
    /// Read (MRS) or write (MSR).
    pub direction: Direction,
}

const fn field(iss: u32, shift: u32, mask: u32) -> u8 {
    ((iss >> shift) & mask) as u8
}

impl SysRegAccess {
    /// Decodes an EC 0x18 ISS: Op0 bits 21:20, Op2 19:17, Op1 16:14,
    /// CRn 13:10, Rt 9:5, CRm 4:1, Direction 0.
    pub const fn from_iss(iss: u32) -> Self {
        Self {
            reg: SysReg {
                op0: field(iss, 20, 3),
                op2: field(iss, 17, 7),
                op1: field(iss, 14, 7),
                crn: field(iss, 10, 0xf),
                crm: field(iss, 1, 0xf),
            },
            rt: field(iss, 5, 0x1f),
            direction: if iss & 1 != 0 {
                Direction::Read
            } else {
                Direction::Write
            },
        }
    }

    /// The ISS that describes this access; fields wider than their slots
    /// are masked. The inverse of [`SysRegAccess::from_iss`] for bits 21:0.
    pub const fn to_iss(self) -> u32 {
        let r = self.reg;
        ((r.op0 as u32 & 3) << 20)
            | ((r.op2 as u32 & 7) << 17)
            | ((r.op1 as u32 & 7) << 14)
            | ((r.crn as u32 & 0xf) << 10)
            | ((self.rt as u32 & 0x1f) << 5)
            | ((r.crm as u32 & 0xf) << 1)
            | match self.direction {
                Direction::Read => 1,
                Direction::Write => 0,
            }
    }
}

/// In assembler syntax: `MRS x3, S3_0_C0_C0_5` or `MSR S3_0_C12_C11_5, x5`.
impl fmt::Display for SysRegAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (reg, rt) = (self.reg, self.rt);
        match (self.direction, rt) {
            (Direction::Read, 31) => write!(f, "MRS xzr, {reg}"),
            (Direction::Read, _) => write!(f, "MRS x{rt}, {reg}"),
            (Direction::Write, 31) => write!(f, "MSR {reg}, xzr"),
            (Direction::Write, _) => write!(f, "MSR {reg}, x{rt}"),
        }
    }
}
