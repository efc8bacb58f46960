//! What a guest's access did: the value read, the stage-2 changes the
//! hypervisor must make, and why (part of) an access was ignored.

use addr::PhysRange;
use alloc::vec::Vec;
use core::fmt;
use guest_boot::IpaRange;
use pci::Bdf;

/// The outcome of a guest's access to the ECAM window: for a read, the
/// value, in the low `size` bytes (all ones if nothing answers); for a
/// write, the stage-2 changes to make; and why the access, or part of it,
/// did nothing.
pub type Access<T> = guest_access::Access<T, Ignored>;

/// Why an access, or part of it, did nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not a 1, 2, 4 or 8-byte access at a multiple of its size. Reads all
    /// ones.
    BadAccess {
        /// Offset in the ECAM window.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// Past the end of the ECAM window. Reads all ones.
    OutsideWindow {
        /// Offset in the ECAM window.
        offset: u64,
    },
    /// A write where no function answers (reads of one are ordinary
    /// enumeration and not reported).
    NoFunction {
        /// Offset in the ECAM window.
        offset: u64,
    },
    /// A write that touched only bits the guest may not change: IDs,
    /// status, a hidden or read-only capability, extended configuration
    /// space, an unimplemented BAR. A normal driver does this too (Linux
    /// clears status bits and writes the PCI Express Device Control), so
    /// count these rather than warn.
    ReadOnly {
        /// The guest device number.
        device: u8,
        /// Byte offset in the function's configuration space.
        offset: u16,
        /// Bytes written.
        size: u8,
    },
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAccess { offset, size } => {
                write!(
                    f,
                    "ECAM access of {size} bytes at {offset:#x} is not naturally aligned"
                )
            }
            Self::OutsideWindow { offset } => {
                write!(f, "ECAM access at {offset:#x} is past the window")
            }
            Self::NoFunction { offset } => {
                write!(f, "ECAM write at {offset:#x} where no function answers")
            }
            Self::ReadOnly {
                device,
                offset,
                size,
            } => write!(
                f,
                "write of {size} bytes at {offset:#x} of 00:{device:02x}.0 changes nothing writable"
            ),
        }
    }
}

/// Where a BAR is, for the guest and on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BarMapping {
    /// The physical function.
    pub function: Bdf,
    /// The BAR's slot, 0 to 5.
    pub bar: u8,
    /// Where the guest put it.
    pub guest: IpaRange,
    /// The physical BAR's memory, of the same size as `guest`: the BAR's
    /// size rounded up to a page (see
    /// [`VirtualBridge::new`](crate::VirtualBridge::new)).
    pub host: PhysRange,
    /// Whether the BAR is prefetchable (reads have no side effects), for
    /// the stage-2 memory type.
    pub prefetchable: bool,
}

/// Why a BAR is not mapped in stage 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unmapped {
    /// The guest's memory space bit is clear for the function.
    DecodeOff,
    /// The BAR's address (with its size) is not inside one of the bridge's
    /// memory windows: not programmed yet (0), being sized (all ones), or
    /// the guest's mistake.
    OutsideWindow {
        /// The address the guest gave the BAR.
        guest: u64,
    },
    /// The BAR overlaps another mappable BAR; neither is mapped.
    Overlaps {
        /// The other BAR's function.
        function: Bdf,
        /// The other BAR's slot.
        bar: u8,
    },
    /// Only in [`Effect::Unmap`]: the BAR moved to another valid address;
    /// an [`Effect::Map`] there follows.
    Moved,
}

impl fmt::Display for Unmapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DecodeOff => f.write_str("memory decoding is off"),
            Self::OutsideWindow { guest } => {
                write!(f, "address {guest:#x} is outside the PCI memory windows")
            }
            Self::Overlaps { function, bar } => write!(f, "overlaps {function} BAR{bar}"),
            Self::Moved => f.write_str("moved"),
        }
    }
}

/// A stage-2 change a write asks the hypervisor to make. Afterwards it
/// invalidates the VM's stage-2 TLB entries, the SMMU's included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Map `guest` onto `host` (device memory, read-write).
    Map(BarMapping),
    /// Unmap a mapping made before.
    Unmap {
        /// The mapping, as [`Effect::Map`] gave it.
        mapping: BarMapping,
        /// Why.
        reason: Unmapped,
    },
}

/// The stage-2 changes of one access, in the order to make them: every
/// unmap before any map, so a BAR that moves is never mapped twice and no
/// two mappings ever overlap.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects(pub(crate) Vec<Effect>);

impl Effects {
    /// No changes.
    pub const fn none() -> Effects {
        Effects(Vec::new())
    }

    /// The changes, in order.
    pub fn as_slice(&self) -> &[Effect] {
        &self.0
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Effects {
    type Item = Effect;
    type IntoIter = alloc::vec::IntoIter<Effect>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Effects {
    type Item = &'a Effect;
    type IntoIter = core::slice::Iter<'a, Effect>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
