//! A half-open range of guest-physical (intermediate physical) addresses.

use core::fmt;
use core::ops::Range;

use addr::IntermediatePhysAddr;

/// A half-open range `[start, end)` of intermediate physical addresses.
///
/// Built only through constructors that refuse ranges which wrap, so `end`
/// is never below `start`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpaRange {
    start: IntermediatePhysAddr,
    end: IntermediatePhysAddr,
}

impl IpaRange {
    /// The range starting at `start` of `size` bytes, or `None` if it wraps.
    pub const fn new(start: IntermediatePhysAddr, size: u64) -> Option<Self> {
        match start.checked_add(size) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// The range `[start, end)`, or `None` if `end < start`.
    pub const fn from_bounds(
        start: IntermediatePhysAddr,
        end: IntermediatePhysAddr,
    ) -> Option<Self> {
        if end.get() < start.get() {
            None
        } else {
            Some(Self { start, end })
        }
    }

    /// A range whose end is known not to overflow: constants (where an
    /// overflow fails the build) and sums bounded by the caller.
    pub(crate) const fn fixed(start: u64, size: u64) -> Self {
        Self {
            start: IntermediatePhysAddr(start),
            end: IntermediatePhysAddr(start + size),
        }
    }

    /// First address in the range.
    pub const fn start(&self) -> IntermediatePhysAddr {
        self.start
    }

    /// First address past the range.
    pub const fn end(&self) -> IntermediatePhysAddr {
        self.end
    }

    /// Size in bytes.
    pub const fn size(&self) -> u64 {
        self.end.get() - self.start.get()
    }

    /// Whether the range holds no bytes.
    pub const fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Whether `addr` lies inside the range.
    pub const fn contains(&self, addr: IntermediatePhysAddr) -> bool {
        self.start.get() <= addr.get() && addr.get() < self.end.get()
    }

    /// Whether every byte of `other` lies inside this range (an empty `other`
    /// counts if it starts inside or at the end).
    pub const fn contains_range(&self, other: &IpaRange) -> bool {
        self.start.get() <= other.start.get() && other.end.get() <= self.end.get()
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &IpaRange) -> bool {
        self.start.get() < other.end.get() && other.start.get() < self.end.get()
    }

    /// The range as plain integers.
    pub const fn as_u64_range(&self) -> Range<u64> {
        self.start.get()..self.end.get()
    }
}

impl fmt::Debug for IpaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IPA[{:#x}..{:#x})", self.start.get(), self.end.get())
    }
}

impl fmt::Display for IpaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}..{:#x})", self.start.get(), self.end.get())
    }
}

/// A range given as start and size that may not fit in 64 bits, printed as
/// `[start..end)` for error messages (the end is computed without overflow).
pub(crate) struct Span(pub u64, pub u64);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = u128::from(self.0) + u128::from(self.1);
        write!(f, "[{:#x}..{:#x})", self.0, end)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    fn ipa(a: u64) -> IntermediatePhysAddr {
        IntermediatePhysAddr(a)
    }

    #[test]
    fn range_that_wraps_is_refused() {
        assert_eq!(IpaRange::new(ipa(u64::MAX - 1), 4), None);
        assert_eq!(IpaRange::from_bounds(ipa(8), ipa(4)), None);
        assert!(IpaRange::new(ipa(u64::MAX - 4), 4).is_some());
    }

    #[test]
    fn overlap_and_containment_are_half_open() {
        let a = IpaRange::new(ipa(0x1000), 0x1000).unwrap();
        let b = IpaRange::new(ipa(0x2000), 0x1000).unwrap();
        let ab = IpaRange::from_bounds(ipa(0x1000), ipa(0x3000)).unwrap();
        assert!(!a.overlaps(&b));
        assert!(ab.contains_range(&a) && ab.contains_range(&b));
        assert!(!a.contains_range(&ab));
        assert!(a.contains(ipa(0x1fff)) && !a.contains(ipa(0x2000)));
    }

    #[test]
    fn ranges_print_as_hex() {
        let r = IpaRange::new(ipa(0x4000_0000), 0x1000).unwrap();
        assert_eq!(format!("{r:?}"), "IPA[0x40000000..0x40001000)");
        assert_eq!(format!("{r}"), "[0x40000000..0x40001000)");
        assert_eq!(
            format!("{}", Span(u64::MAX, 2)),
            "[0xffffffffffffffff..0x10000000000000001)"
        );
    }
}
