//! The exception class (ESR_ELx.EC).

/// Why an exception was taken: ESR_EL2.EC, for every class the Arm ARM
/// defines for exceptions taken to AArch64 EL2 (and EL1/EL3, which share
/// the encoding). Unallocated values decode to [`ExceptionClass::Unallocated`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExceptionClass {
    /// 0x00: unknown reason (e.g. an UNDEFINED instruction).
    Unknown,
    /// 0x01: trapped WFI, WFE, WFIT or WFET.
    Wfx,
    /// 0x03: trapped AArch32 MCR or MRC, coproc 0b1111.
    Cp15McrMrc,
    /// 0x04: trapped AArch32 MCRR or MRRC, coproc 0b1111.
    Cp15McrrMrrc,
    /// 0x05: trapped AArch32 MCR or MRC, coproc 0b1110.
    Cp14McrMrc,
    /// 0x06: trapped AArch32 LDC or STC.
    Cp14LdcStc,
    /// 0x07: access to SVE, Advanced SIMD or floating point trapped by
    /// CPACR/CPTR.
    FpSimdAccess,
    /// 0x08: trapped AArch32 VMRS (ID group).
    Cp10Vmrs,
    /// 0x09: pointer authentication instruction trapped (HCR_EL2.API).
    PointerAuth,
    /// 0x0A: trapped LD64B or ST64B* (FEAT_LS64).
    Ld64bSt64b,
    /// 0x0C: trapped AArch32 MRRC, coproc 0b1110.
    Cp14Mrrc,
    /// 0x0D: branch target exception (FEAT_BTI).
    BranchTarget,
    /// 0x0E: illegal execution state.
    IllegalState,
    /// 0x11: SVC in AArch32.
    Svc32,
    /// 0x12: HVC in AArch32.
    Hvc32,
    /// 0x13: SMC in AArch32.
    Smc32,
    /// 0x15: SVC in AArch64.
    Svc64,
    /// 0x16: HVC in AArch64.
    Hvc64,
    /// 0x17: SMC in AArch64 (or trapped by HCR_EL2.TSC).
    Smc64,
    /// 0x18: trapped MSR, MRS or system instruction in AArch64.
    SysReg64,
    /// 0x19: access to SVE trapped.
    Sve,
    /// 0x1A: trapped ERET, ERETAA or ERETAB (FEAT_NV).
    Eret,
    /// 0x1C: pointer authentication failure (FEAT_FPAC).
    PointerAuthFailure,
    /// 0x1D: access to SME trapped.
    Sme,
    /// 0x1F: IMPLEMENTATION DEFINED exception to EL3.
    ImplementationDefined,
    /// 0x20: instruction abort from a lower EL.
    InstructionAbortLower,
    /// 0x21: instruction abort from the current EL.
    InstructionAbortSame,
    /// 0x22: PC alignment fault.
    PcAlignment,
    /// 0x24: data abort from a lower EL.
    DataAbortLower,
    /// 0x25: data abort from the current EL.
    DataAbortSame,
    /// 0x26: SP alignment fault.
    SpAlignment,
    /// 0x27: memory copy or set instruction exception (FEAT_MOPS).
    Mops,
    /// 0x28: trapped floating-point exception in AArch32.
    Fp32,
    /// 0x2C: trapped floating-point exception in AArch64.
    Fp64,
    /// 0x2D: guarded control stack exception (FEAT_GCS).
    Gcs,
    /// 0x2F: SError exception.
    SError,
    /// 0x30: breakpoint from a lower EL.
    BreakpointLower,
    /// 0x31: breakpoint from the current EL.
    BreakpointSame,
    /// 0x32: software step from a lower EL.
    SoftwareStepLower,
    /// 0x33: software step from the current EL.
    SoftwareStepSame,
    /// 0x34: watchpoint from a lower EL.
    WatchpointLower,
    /// 0x35: watchpoint from the current EL.
    WatchpointSame,
    /// 0x38: BKPT in AArch32.
    Bkpt32,
    /// 0x3A: vector catch in AArch32.
    VectorCatch32,
    /// 0x3C: BRK in AArch64.
    Brk64,
    /// A value with no class allocated to it; carries the raw EC.
    Unallocated(u8),
}

impl ExceptionClass {
    /// The class for a raw EC; only the low six bits count.
    pub const fn from_raw(ec: u8) -> Self {
        match ec & 0x3f {
            0x00 => Self::Unknown,
            0x01 => Self::Wfx,
            0x03 => Self::Cp15McrMrc,
            0x04 => Self::Cp15McrrMrrc,
            0x05 => Self::Cp14McrMrc,
            0x06 => Self::Cp14LdcStc,
            0x07 => Self::FpSimdAccess,
            0x08 => Self::Cp10Vmrs,
            0x09 => Self::PointerAuth,
            0x0A => Self::Ld64bSt64b,
            0x0C => Self::Cp14Mrrc,
            0x0D => Self::BranchTarget,
            0x0E => Self::IllegalState,
            0x11 => Self::Svc32,
            0x12 => Self::Hvc32,
            0x13 => Self::Smc32,
            0x15 => Self::Svc64,
            0x16 => Self::Hvc64,
            0x17 => Self::Smc64,
            0x18 => Self::SysReg64,
            0x19 => Self::Sve,
            0x1A => Self::Eret,
            0x1C => Self::PointerAuthFailure,
            0x1D => Self::Sme,
            0x1F => Self::ImplementationDefined,
            0x20 => Self::InstructionAbortLower,
            0x21 => Self::InstructionAbortSame,
            0x22 => Self::PcAlignment,
            0x24 => Self::DataAbortLower,
            0x25 => Self::DataAbortSame,
            0x26 => Self::SpAlignment,
            0x27 => Self::Mops,
            0x28 => Self::Fp32,
            0x2C => Self::Fp64,
            0x2D => Self::Gcs,
            0x2F => Self::SError,
            0x30 => Self::BreakpointLower,
            0x31 => Self::BreakpointSame,
            0x32 => Self::SoftwareStepLower,
            0x33 => Self::SoftwareStepSame,
            0x34 => Self::WatchpointLower,
            0x35 => Self::WatchpointSame,
            0x38 => Self::Bkpt32,
            0x3A => Self::VectorCatch32,
            0x3C => Self::Brk64,
            other => Self::Unallocated(other),
        }
    }

    /// The raw EC value.
    pub const fn raw(self) -> u8 {
        match self {
            Self::Unknown => 0x00,
            Self::Wfx => 0x01,
            Self::Cp15McrMrc => 0x03,
            Self::Cp15McrrMrrc => 0x04,
            Self::Cp14McrMrc => 0x05,
            Self::Cp14LdcStc => 0x06,
            Self::FpSimdAccess => 0x07,
            Self::Cp10Vmrs => 0x08,
            Self::PointerAuth => 0x09,
            Self::Ld64bSt64b => 0x0A,
            Self::Cp14Mrrc => 0x0C,
            Self::BranchTarget => 0x0D,
            Self::IllegalState => 0x0E,
            Self::Svc32 => 0x11,
            Self::Hvc32 => 0x12,
            Self::Smc32 => 0x13,
            Self::Svc64 => 0x15,
            Self::Hvc64 => 0x16,
            Self::Smc64 => 0x17,
            Self::SysReg64 => 0x18,
            Self::Sve => 0x19,
            Self::Eret => 0x1A,
            Self::PointerAuthFailure => 0x1C,
            Self::Sme => 0x1D,
            Self::ImplementationDefined => 0x1F,
            Self::InstructionAbortLower => 0x20,
            Self::InstructionAbortSame => 0x21,
            Self::PcAlignment => 0x22,
            Self::DataAbortLower => 0x24,
            Self::DataAbortSame => 0x25,
            Self::SpAlignment => 0x26,
            Self::Mops => 0x27,
            Self::Fp32 => 0x28,
            Self::Fp64 => 0x2C,
            Self::Gcs => 0x2D,
            Self::SError => 0x2F,
            Self::BreakpointLower => 0x30,
            Self::BreakpointSame => 0x31,
            Self::SoftwareStepLower => 0x32,
            Self::SoftwareStepSame => 0x33,
            Self::WatchpointLower => 0x34,
            Self::WatchpointSame => 0x35,
            Self::Bkpt32 => 0x38,
            Self::VectorCatch32 => 0x3A,
            Self::Brk64 => 0x3C,
            Self::Unallocated(ec) => ec & 0x3f,
        }
    }

    /// A short human-readable name, e.g. `data abort from the current EL`.
    pub const fn description(&self) -> &'static str {
        match self {
            Self::Unknown => "unknown reason",
            Self::Wfx => "trapped WFI/WFE",
            Self::Cp15McrMrc => "trapped AArch32 MCR/MRC (coproc 15)",
            Self::Cp15McrrMrrc => "trapped AArch32 MCRR/MRRC (coproc 15)",
            Self::Cp14McrMrc => "trapped AArch32 MCR/MRC (coproc 14)",
            Self::Cp14LdcStc => "trapped AArch32 LDC/STC",
            Self::FpSimdAccess => "trapped SVE/SIMD/FP access",
            Self::Cp10Vmrs => "trapped AArch32 VMRS",
            Self::PointerAuth => "trapped pointer authentication instruction",
            Self::Ld64bSt64b => "trapped LD64B/ST64B",
            Self::Cp14Mrrc => "trapped AArch32 MRRC (coproc 14)",
            Self::BranchTarget => "branch target exception",
            Self::IllegalState => "illegal execution state",
            Self::Svc32 => "SVC in AArch32",
            Self::Hvc32 => "HVC in AArch32",
            Self::Smc32 => "SMC in AArch32",
            Self::Svc64 => "SVC in AArch64",
            Self::Hvc64 => "HVC in AArch64",
            Self::Smc64 => "SMC in AArch64",
            Self::SysReg64 => "trapped MSR/MRS/system instruction",
            Self::Sve => "trapped SVE access",
            Self::Eret => "trapped ERET",
            Self::PointerAuthFailure => "pointer authentication failure",
            Self::Sme => "trapped SME access",
            Self::ImplementationDefined => "IMPLEMENTATION DEFINED exception",
            Self::InstructionAbortLower => "instruction abort from a lower EL",
            Self::InstructionAbortSame => "instruction abort from the current EL",
            Self::PcAlignment => "PC alignment fault",
            Self::DataAbortLower => "data abort from a lower EL",
            Self::DataAbortSame => "data abort from the current EL",
            Self::SpAlignment => "SP alignment fault",
            Self::Mops => "memory copy/set exception",
            Self::Fp32 => "floating-point exception in AArch32",
            Self::Fp64 => "floating-point exception in AArch64",
            Self::Gcs => "guarded control stack exception",
            Self::SError => "SError",
            Self::BreakpointLower => "breakpoint from a lower EL",
            Self::BreakpointSame => "breakpoint from the current EL",
            Self::SoftwareStepLower => "software step from a lower EL",
            Self::SoftwareStepSame => "software step from the current EL",
            Self::WatchpointLower => "watchpoint from a lower EL",
            Self::WatchpointSame => "watchpoint from the current EL",
            Self::Bkpt32 => "BKPT in AArch32",
            Self::VectorCatch32 => "vector catch in AArch32",
            Self::Brk64 => "BRK in AArch64",
            Self::Unallocated(_) => "unallocated exception class",
        }
    }
}
