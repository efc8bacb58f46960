//! The crate's one error type.

use aarch64_paging::MapError;
use addr::{IntermediatePhysAddr, PhysAddr};
use core::fmt;
use id_alloc::Vmid;

/// Why a stage-2 configuration or mapping request was refused.
///
/// Every variant carries the offending value. None of them leaves a
/// [`Stage2Table`](crate::Stage2Table) half-changed: requests are checked in
/// full before the first descriptor is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage2Error {
    /// `ID_AA64MMFR0_EL1.PARange` holds a reserved encoding (7 to 15).
    UnknownPaRange(u8),
    /// The VMID width is neither 8 nor 16 bits.
    UnsupportedVmidBits(u8),
    /// `ID_AA64MMFR1_EL1.VMIDBits` holds a reserved encoding (neither 0 nor 2).
    UnknownVmidBitsField(u8),
    /// The VM's IPA space ends beyond the physical address size: the IPA
    /// size may not exceed the PA size (T0SZ below its effective minimum
    /// faults or is clamped, IMPLEMENTATION DEFINED which).
    IpaBeyondPaSize {
        /// One past the VM's highest IPA.
        ipa_end: IntermediatePhysAddr,
        /// The PA size in bits (capped at 48, see [`Stage2Config`](crate::Stage2Config)).
        pa_bits: u8,
    },
    /// The VM's IPA space needs more than 39 bits, but the PA size is below
    /// 44 bits, so the walk may not start at level 0; a level-1 start would
    /// need concatenated root tables, which this crate does not build.
    NeedsConcatenatedRoot {
        /// One past the VM's highest IPA.
        ipa_end: IntermediatePhysAddr,
        /// The PA size in bits.
        pa_bits: u8,
    },
    /// An IPA is not a multiple of the 4 KiB granule.
    MisalignedIpa(IntermediatePhysAddr),
    /// A PA is not a multiple of the 4 KiB granule.
    MisalignedPa(PhysAddr),
    /// A size is not a multiple of the 4 KiB granule.
    MisalignedSize(u64),
    /// A size of zero bytes.
    EmptyRange(IntermediatePhysAddr),
    /// The IPA range does not fit in the configured IPA size (or wraps).
    BeyondIpaSize {
        /// First IPA of the range.
        ipa: IntermediatePhysAddr,
        /// Size of the range in bytes.
        size: u64,
        /// The configured IPA size in bits.
        ipa_bits: u8,
    },
    /// The PA range does not fit in the PA size (or wraps).
    BeyondPaSize {
        /// First PA of the range.
        pa: PhysAddr,
        /// Size of the range in bytes.
        size: u64,
        /// The PA size in bits.
        pa_bits: u8,
    },
    /// Part of the IPA range is already mapped. Mappings are never replaced
    /// silently: unmap first.
    Overlap {
        /// First IPA of the requested range.
        ipa: IntermediatePhysAddr,
        /// Size of the requested range in bytes.
        size: u64,
        /// The first IPA of the range that is already mapped.
        mapped: IntermediatePhysAddr,
    },
    /// The VMID does not fit in the configured VMID width.
    VmidTooWide {
        /// The VMID asked for.
        vmid: Vmid,
        /// The configured VMID width in bits.
        vmid_bits: u8,
    },
    /// `aarch64-paging` refused the operation. The checks above run first,
    /// so this means a bug rather than a bad request.
    Map(MapError),
}

impl fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownPaRange(raw) => {
                write!(
                    f,
                    "ID_AA64MMFR0_EL1.PARange {raw:#x} is a reserved encoding"
                )
            }
            Self::UnsupportedVmidBits(bits) => {
                write!(f, "unsupported VMID width of {bits} bits (8 or 16)")
            }
            Self::UnknownVmidBitsField(raw) => {
                write!(
                    f,
                    "ID_AA64MMFR1_EL1.VMIDBits {raw:#x} is a reserved encoding"
                )
            }
            Self::IpaBeyondPaSize { ipa_end, pa_bits } => write!(
                f,
                "unsupported IPA/PA combination: the IPA space ends at {ipa_end}, \
                 beyond the {pa_bits}-bit PA size"
            ),
            Self::NeedsConcatenatedRoot { ipa_end, pa_bits } => write!(
                f,
                "unsupported IPA/PA combination: an IPA space ending at {ipa_end} needs \
                 more than 39 bits, and with a {pa_bits}-bit PA size (below 44) that \
                 takes concatenated level-1 root tables"
            ),
            Self::MisalignedIpa(ipa) => write!(f, "IPA {ipa} is not 4 KiB aligned"),
            Self::MisalignedPa(pa) => write!(f, "PA {pa} is not 4 KiB aligned"),
            Self::MisalignedSize(size) => write!(f, "size {size:#x} is not 4 KiB aligned"),
            Self::EmptyRange(ipa) => write!(f, "empty range at IPA {ipa}"),
            Self::BeyondIpaSize {
                ipa,
                size,
                ipa_bits,
            } => write!(
                f,
                "IPA range at {ipa} of {size:#x} bytes is beyond the {ipa_bits}-bit IPA size"
            ),
            Self::BeyondPaSize { pa, size, pa_bits } => write!(
                f,
                "PA range at {pa} of {size:#x} bytes is beyond the {pa_bits}-bit PA size"
            ),
            Self::Overlap { ipa, size, mapped } => write!(
                f,
                "IPA range at {ipa} of {size:#x} bytes overlaps an existing mapping at {mapped}"
            ),
            Self::VmidTooWide { vmid, vmid_bits } => {
                write!(f, "VMID {vmid} does not fit in {vmid_bits} bits")
            }
            Self::Map(e) => write!(f, "page table update failed: {e}"),
        }
    }
}

impl From<MapError> for Stage2Error {
    fn from(e: MapError) -> Self {
        Self::Map(e)
    }
}
