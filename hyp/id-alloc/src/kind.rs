//! The kinds of ID the allocator hands out, one newtype each, so a VMID can
//! never be written where an ASID is expected (and the reverse).

use core::fmt;
use core::hash::Hash;

mod sealed {
    pub trait Sealed {}
}

/// A kind of hardware translation tag handed out by an
/// [`IdAllocator`](crate::IdAllocator).
///
/// The implementor is the hardware ID itself: a `u16` newtype holding only the
/// low `bits` of the allocator's 64-bit value, never the generation above
/// them. The trait is sealed: the two kinds are [`Vmid`] and [`Asid`].
pub trait IdKind:
    sealed::Sealed + Copy + Eq + Hash + fmt::Debug + fmt::Display + Send + Sync + 'static
{
    /// Name used in statistics and messages, e.g. `"VMID"`.
    const NAME: &'static str;

    /// Wraps an index the allocator produced (`1..2^bits`).
    #[doc(hidden)]
    fn from_index(index: u16) -> Self;

    /// The ID as the hardware field holds it.
    fn get(self) -> u16;
}

macro_rules! id_kind {
    ($(#[$doc:meta])* $name:ident, $display:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[repr(transparent)]
        pub struct $name(u16);

        impl $name {
            /// Wraps a raw ID that did not come from an allocator, such as a
            /// tag reserved by the caller or a value in a test. The allocator
            /// itself never returns 0.
            pub const fn new(raw: u16) -> Self {
                Self(raw)
            }

            /// The ID as the hardware field holds it.
            pub const fn get(self) -> u16 {
                self.0
            }
        }

        impl sealed::Sealed for $name {}

        impl IdKind for $name {
            const NAME: &'static str = $display;

            fn from_index(index: u16) -> Self {
                Self(index)
            }

            fn get(self) -> u16 {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

id_kind!(
    /// A virtual machine identifier: tags stage-2 translations
    /// (`VTTBR_EL2.VMID`, 8 or 16 bits per `ID_AA64MMFR1_EL1.VMIDBits`) and
    /// is what an SMMU stream table entry's `S2VMID` holds for a passthrough
    /// device.
    Vmid,
    "VMID"
);

id_kind!(
    /// An address space identifier of one of the hypervisor's own stage-1
    /// contexts in the EL2&0 regime (`TTBR0_EL2.ASID`, 8 or 16 bits per
    /// `TCR_EL2.AS`).
    Asid,
    "ASID"
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn ids_print_as_hex() {
        assert_eq!(format!("{}", Vmid::new(0x2a)), "0x2a");
        assert_eq!(format!("{:?}", Vmid::new(0x2a)), "Vmid(0x2a)");
        assert_eq!(format!("{}", Asid::new(0xff)), "0xff");
        assert_eq!(format!("{:?}", Asid::new(0xff)), "Asid(0xff)");
    }

    #[test]
    fn kinds_have_names() {
        assert_eq!(<Vmid as IdKind>::NAME, "VMID");
        assert_eq!(<Asid as IdKind>::NAME, "ASID");
        assert_eq!(<Vmid as IdKind>::get(Vmid::from_index(7)), 7);
    }
}
