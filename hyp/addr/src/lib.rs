//! One newtype per address space, so a guest's intermediate physical address
//! can never be passed where a host physical address is expected.
//!
//! All types print as hex in both `Debug` and `Display`.

#![no_std]
#![deny(missing_docs)]

use core::fmt;
use core::ops::Range;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The address as a plain integer, for hardware registers and arithmetic.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(a) => Some(Self(a)),
                    None => None,
                }
            }

            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }

            /// The address rounded down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_type!(
    /// A host physical address: what the hypervisor's own tables and the SMMU output.
    PhysAddr,
    "PA"
);
address_type!(
    /// An intermediate physical address: a guest's idea of physical memory.
    IntermediatePhysAddr,
    "IPA"
);
address_type!(
    /// A virtual address in one of the hypervisor's own stage-1 regimes.
    VirtAddr,
    "VA"
);

/// A half-open range `[start, end)` of host physical memory.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysRange {
    start: PhysAddr,
    end: PhysAddr,
}

impl PhysRange {
    /// The range starting at `start` of `size` bytes, or `None` if it wraps.
    pub const fn new(start: PhysAddr, size: u64) -> Option<Self> {
        match start.checked_add(size) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// The range `[start, end)`, or `None` if `end < start`.
    pub const fn from_bounds(start: PhysAddr, end: PhysAddr) -> Option<Self> {
        if end.0 < start.0 {
            None
        } else {
            Some(Self { start, end })
        }
    }

    /// First address in the range.
    pub const fn start(&self) -> PhysAddr {
        self.start
    }

    /// First address past the range.
    pub const fn end(&self) -> PhysAddr {
        self.end
    }

    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        self.end.0 - self.start.0
    }

    /// Whether the range holds no bytes.
    pub const fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Whether `addr` lies inside the range.
    pub const fn contains(&self, addr: PhysAddr) -> bool {
        self.start.0 <= addr.0 && addr.0 < self.end.0
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        self.start.0 < other.end.0 && other.start.0 < self.end.0
    }

    /// The range as plain integers.
    pub const fn as_u64_range(&self) -> Range<u64> {
        self.start.0..self.end.0
    }
}

impl fmt::Debug for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PA[{:#x}..{:#x})", self.start.0, self.end.0)
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}..{:#x})", self.start.0, self.end.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_that_wraps_is_refused() {
        assert_eq!(PhysRange::new(PhysAddr(u64::MAX - 1), 4), None);
        assert_eq!(PhysRange::from_bounds(PhysAddr(8), PhysAddr(4)), None);
    }

    #[test]
    fn overlap_is_half_open() {
        let a = PhysRange::new(PhysAddr(0x1000), 0x1000).unwrap();
        let b = PhysRange::new(PhysAddr(0x2000), 0x1000).unwrap();
        let c = PhysRange::new(PhysAddr(0x1fff), 2).unwrap();
        assert!(!a.overlaps(&b));
        assert!(a.overlaps(&c) && b.overlaps(&c));
        assert!(a.contains(PhysAddr(0x1fff)) && !a.contains(PhysAddr(0x2000)));
    }

    #[test]
    fn addresses_print_as_hex() {
        extern crate std;
        use std::format;
        assert_eq!(
            format!("{:?}", IntermediatePhysAddr(0x4000_0000)),
            "IPA(0x40000000)"
        );
        assert_eq!(format!("{}", PhysAddr(0x10)), "0x10");
        assert_eq!(
            format!("{:?}", PhysRange::new(PhysAddr(0), 16).unwrap()),
            "PA[0x0..0x10)"
        );
    }

    #[test]
    fn alignment_helpers() {
        assert!(PhysAddr(0x2000).is_aligned(0x1000));
        assert!(!PhysAddr(0x2001).is_aligned(0x1000));
        assert_eq!(PhysAddr(0x2fff).align_down(0x1000), PhysAddr(0x2000));
    }
}
