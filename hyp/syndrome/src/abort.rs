//! Data and instruction abort syndromes (EC 0x20, 0x21, 0x24, 0x25).
//!
//! Layouts from the Arm ARM (DDI 0487) tables "ISS encoding for an exception
//! from a Data Abort" and "... from an Instruction Abort".

use core::fmt;

const fn bit(iss: u32, n: u32) -> bool {
    iss & (1 << n) != 0
}

/// The fault status code of an abort (DFSC or IFSC, ISS bits 5:0).
///
/// Levels are translation table levels; -1 and -2 exist only with
/// FEAT_LPA2 and FEAT_D128.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultStatus {
    /// Address size fault (0x00-0x03).
    AddressSize {
        /// Table level, 0 to 3.
        level: i8,
    },
    /// Translation fault (0x2A, 0x2B, 0x04-0x07).
    Translation {
        /// Table level, -2 to 3.
        level: i8,
    },
    /// Access flag fault (0x08-0x0B).
    AccessFlag {
        /// Table level, 0 to 3.
        level: i8,
    },
    /// Permission fault (0x0C-0x0F).
    Permission {
        /// Table level, 0 to 3.
        level: i8,
    },
    /// Synchronous external abort, not on a table walk (0x10).
    SyncExternal,
    /// Synchronous tag check fault (0x11, FEAT_MTE2).
    TagCheck,
    /// Synchronous external abort on a table walk (0x13-0x17).
    SyncExternalOnWalk {
        /// Table level, -1 to 3.
        level: i8,
    },
    /// Synchronous parity or ECC error, not on a table walk (0x18).
    SyncParity,
    /// Synchronous parity or ECC error on a table walk (0x1B-0x1F).
    SyncParityOnWalk {
        /// Table level, -1 to 3.
        level: i8,
    },
    /// Alignment fault (0x21).
    Alignment,
    /// TLB conflict abort (0x30).
    TlbConflict,
    /// Unsupported atomic hardware update fault (0x31).
    UnsupportedAtomicUpdate,
    /// IMPLEMENTATION DEFINED fault, lockdown (0x34).
    ImplementationDefinedLockdown,
    /// IMPLEMENTATION DEFINED fault, unsupported exclusive or atomic access
    /// (0x35).
    ImplementationDefinedAtomic,
    /// A code this decoder does not name (reserved, or granule protection
    /// and other feature-specific faults); carries the raw code.
    Other(u8),
}

impl FaultStatus {
    /// The status for a raw 6-bit code; higher bits are ignored.
    pub const fn from_raw(code: u8) -> Self {
        let code = code & 0x3f;
        let level = (code & 3) as i8;
        match code {
            0x00..=0x03 => Self::AddressSize { level },
            0x04..=0x07 => Self::Translation { level },
            0x2A => Self::Translation { level: -2 },
            0x2B => Self::Translation { level: -1 },
            0x08..=0x0B => Self::AccessFlag { level },
            0x0C..=0x0F => Self::Permission { level },
            0x10 => Self::SyncExternal,
            0x11 => Self::TagCheck,
            0x13 => Self::SyncExternalOnWalk { level: -1 },
            0x14..=0x17 => Self::SyncExternalOnWalk { level },
            0x18 => Self::SyncParity,
            0x1B => Self::SyncParityOnWalk { level: -1 },
            0x1C..=0x1F => Self::SyncParityOnWalk { level },
            0x21 => Self::Alignment,
            0x30 => Self::TlbConflict,
            0x31 => Self::UnsupportedAtomicUpdate,
            0x34 => Self::ImplementationDefinedLockdown,
            0x35 => Self::ImplementationDefinedAtomic,
            other => Self::Other(other),
        }
    }

    /// The table level, for the faults that have one.
    pub const fn level(self) -> Option<i8> {
        match self {
            Self::AddressSize { level }
            | Self::Translation { level }
            | Self::AccessFlag { level }
            | Self::Permission { level }
            | Self::SyncExternalOnWalk { level }
            | Self::SyncParityOnWalk { level } => Some(level),
            _ => None,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::AddressSize { .. } => "address size fault",
            Self::Translation { .. } => "translation fault",
            Self::AccessFlag { .. } => "access flag fault",
            Self::Permission { .. } => "permission fault",
            Self::SyncExternal => "synchronous external abort",
            Self::TagCheck => "synchronous tag check fault",
            Self::SyncExternalOnWalk { .. } => "synchronous external abort on table walk",
            Self::SyncParity => "synchronous parity/ECC error",
            Self::SyncParityOnWalk { .. } => "synchronous parity/ECC error on table walk",
            Self::Alignment => "alignment fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::UnsupportedAtomicUpdate => "unsupported atomic hardware update fault",
            Self::ImplementationDefinedLockdown => "IMPLEMENTATION DEFINED fault (lockdown)",
            Self::ImplementationDefinedAtomic => {
                "IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic access)"
            }
            Self::Other(_) => "unrecognised fault status",
        }
    }
}

/// E.g. `translation fault, level 3`.
impl fmt::Display for FaultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if let Some(level) = self.level() {
            write!(f, ", level {level}")?;
        }
        Ok(())
    }
}

/// The fields data and instruction aborts share (ISS bits 10:7 and 5:0);
/// `$fsc` names the status field (DFSC or IFSC) in the docs.
macro_rules! abort_fields {
    ($fsc:literal) => {
        /// S1PTW, bit 7: a stage-2 fault on a stage-1 table walk.
        pub const fn s1ptw(self) -> bool {
            bit(self.0, 7)
        }

        /// EA, bit 9: IMPLEMENTATION DEFINED classification of external aborts.
        pub const fn external_abort_type(self) -> bool {
            bit(self.0, 9)
        }

        /// FnV, bit 10: FAR_EL2 does not hold the faulting address.
        pub const fn far_not_valid(self) -> bool {
            bit(self.0, 10)
        }

        #[doc = concat!($fsc, ", bits 5:0: the fault status.")]
        pub const fn fault_status(self) -> FaultStatus {
            FaultStatus::from_raw((self.0 & 0x3f) as u8)
        }
    };
}

/// The ISS of a data abort.
///
/// The instruction-syndrome fields (access size, register, sign extension,
/// register width, acquire/release) are valid only when ISV is 1; their
/// accessors return `None` otherwise, and the access must then be decoded
/// from the instruction itself or refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataAbort(u32);

impl DataAbort {
    /// Wraps the 25-bit ISS of an EC 0x24/0x25 syndrome.
    pub const fn from_iss(iss: u32) -> Self {
        Self(iss & 0x1ff_ffff)
    }

    /// The ISS.
    pub const fn iss(self) -> u32 {
        self.0
    }

    /// ISV, bit 24: bits 23:14 hold a valid instruction syndrome.
    pub const fn isv(self) -> bool {
        bit(self.0, 24)
    }

    /// 1, 2, 4 or 8: the access size (SAS, bits 23:22).
    pub const fn access_size_bytes(self) -> Option<u8> {
        if self.isv() {
            Some(1 << ((self.0 >> 22) & 3))
        } else {
            None
        }
    }

    /// SSE, bit 21: a load that sign-extends the value.
    pub const fn sign_extend(self) -> Option<bool> {
        if self.isv() {
            Some(bit(self.0, 21))
        } else {
            None
        }
    }

    /// SRT, bits 20:16: the transfer register (31 means XZR/WZR).
    pub const fn register(self) -> Option<u8> {
        if self.isv() {
            Some(((self.0 >> 16) & 0x1f) as u8)
        } else {
            None
        }
    }

    /// SF, bit 15: the register is 64-bit (X), not 32-bit (W).
    pub const fn is_64bit_reg(self) -> Option<bool> {
        if self.isv() {
            Some(bit(self.0, 15))
        } else {
            None
        }
    }

    /// AR, bit 14: the instruction has acquire/release semantics.
    pub const fn acquire_release(self) -> Option<bool> {
        if self.isv() {
            Some(bit(self.0, 14))
        } else {
            None
        }
    }

    /// WnR, bit 6: the access was a write.
    ///
    /// Valid whether or not ISV is set, except for faults on cache
    /// maintenance and address translation instructions (CM = 1), where the
    /// bit always reads 1 and `None` is returned.
    pub const fn is_write(self) -> Option<bool> {
        if self.cache_maintenance() {
            None
        } else {
            Some(bit(self.0, 6))
        }
    }

    /// CM, bit 8: caused by a cache maintenance or address translation
    /// instruction.
    pub const fn cache_maintenance(self) -> bool {
        bit(self.0, 8)
    }

    abort_fields!("DFSC");
}

impl fmt::Debug for DataAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataAbort({:#x}: {self})", self.0)
    }
}

/// E.g. `ISV=1 SAS=4B SSE=0 SRT=2 SF=0 AR=0 WnR=1 S1PTW=0 FnV=0 EA=0 CM=0
/// DFSC=0x07 (translation fault, level 3)`.
impl fmt::Display for DataAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |n| u8::from(bit(self.0, n));
        write!(f, "ISV={}", b(24))?;
        if self.isv() {
            write!(
                f,
                " SAS={}B SSE={} SRT={} SF={} AR={}",
                1 << ((self.0 >> 22) & 3),
                b(21),
                (self.0 >> 16) & 0x1f,
                b(15),
                b(14)
            )?;
        }
        write!(
            f,
            " WnR={} S1PTW={} FnV={} EA={} CM={} DFSC={:#04x} ({})",
            b(6),
            b(7),
            b(10),
            b(9),
            b(8),
            self.0 & 0x3f,
            self.fault_status()
        )
    }
}

/// The ISS of an instruction abort.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstructionAbort(u32);

impl InstructionAbort {
    /// Wraps the 25-bit ISS of an EC 0x20/0x21 syndrome.
    pub const fn from_iss(iss: u32) -> Self {
        Self(iss & 0x1ff_ffff)
    }

    /// The ISS.
    pub const fn iss(self) -> u32 {
        self.0
    }

    abort_fields!("IFSC");
}

impl fmt::Debug for InstructionAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstructionAbort({:#x}: {self})", self.0)
    }
}

/// E.g. `S1PTW=0 FnV=0 EA=0 IFSC=0x0f (permission fault, level 3)`.
impl fmt::Display for InstructionAbort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |n| u8::from(bit(self.0, n));
        write!(
            f,
            "S1PTW={} FnV={} EA={} IFSC={:#04x} ({})",
            b(7),
            b(10),
            b(9),
            self.0 & 0x3f,
            self.fault_status()
        )
    }
}
