//! Walking a function's capability lists: the conventional one in the
//! first 256 bytes (PCI Local Bus Specification 3.0 §6.7) and the PCIe
//! extended one from 0x100 (PCIe Base Specification §7.6).
//!
//! The lists are linked by pointers the device supplies, so every walk
//! remembers where it has been: a pointer back to a visited capability, or
//! one into the header, ends the walk with an error instead of looping.

use crate::config::{
    self, Bdf, ConfigSpace, Register, Status, CONFIG_SPACE_SIZE, LEGACY_CONFIG_SPACE_SIZE,
};
use core::fmt;

/// The first byte after the type 0/1 header: conventional capabilities
/// live in `0x40..0x100`.
const FIRST_CAPABILITY: u8 = 0x40;
/// Capability pointers are dword aligned; the low two bits are reserved
/// and software must mask them (PCI Local Bus Specification 3.0 §6.7).
const POINTER_MASK: u8 = 0xfc;
/// Dword slots in `0x40..0x100`: one bit each in the visited set.
const LEGACY_SLOTS: u32 = (LEGACY_CONFIG_SPACE_SIZE as u32 - FIRST_CAPABILITY as u32) / 4;
/// Dword slots in `0x100..0x1000`.
const EXTENDED_SLOTS: usize = (CONFIG_SPACE_SIZE as usize - LEGACY_CONFIG_SPACE_SIZE as usize) / 4;

/// A conventional capability ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CapabilityId(pub u8);

impl CapabilityId {
    /// PCI Power Management.
    pub const POWER_MANAGEMENT: CapabilityId = CapabilityId(0x01);
    /// MSI.
    pub const MSI: CapabilityId = CapabilityId(0x05);
    /// Vendor specific (virtio's structures are these).
    pub const VENDOR_SPECIFIC: CapabilityId = CapabilityId(0x09);
    /// PCI Express.
    pub const PCI_EXPRESS: CapabilityId = CapabilityId(0x10);
    /// MSI-X.
    pub const MSIX: CapabilityId = CapabilityId(0x11);

    fn name(self) -> Option<&'static str> {
        Some(match self {
            Self::POWER_MANAGEMENT => "power management",
            Self::MSI => "MSI",
            Self::VENDOR_SPECIFIC => "vendor specific",
            Self::PCI_EXPRESS => "PCI Express",
            Self::MSIX => "MSI-X",
            _ => return None,
        })
    }
}

impl fmt::Display for CapabilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "capability {:#04x}", self.0),
        }
    }
}

impl fmt::Debug for CapabilityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CapabilityId({:#04x})", self.0)
    }
}

/// One entry of the conventional capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// What it is.
    pub id: CapabilityId,
    /// Where it starts: a dword in `0x40..0x100`.
    pub offset: Register,
    /// Its first dword: ID (bits 7:0), next pointer (15:8) and two
    /// capability-specific bytes (31:16; for a vendor-specific capability,
    /// bits 23:16 are its length).
    pub header: u32,
}

impl Capability {
    /// The dword `bytes` into the capability, or `None` if that is not
    /// dword aligned or not inside conventional configuration space (where
    /// a conventional capability must lie).
    pub fn field(&self, bytes: u16) -> Option<Register> {
        let reg = self.offset.add(bytes)?;
        (reg.offset() < LEGACY_CONFIG_SPACE_SIZE).then_some(reg)
    }
}

/// A PCIe extended capability ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExtendedCapabilityId(pub u16);

impl ExtendedCapabilityId {
    /// Advanced Error Reporting.
    pub const AER: ExtendedCapabilityId = ExtendedCapabilityId(0x0001);
    /// Access Control Services.
    pub const ACS: ExtendedCapabilityId = ExtendedCapabilityId(0x000d);
    /// Address Translation Services.
    pub const ATS: ExtendedCapabilityId = ExtendedCapabilityId(0x000f);
    /// Single Root I/O Virtualization.
    pub const SRIOV: ExtendedCapabilityId = ExtendedCapabilityId(0x0010);
    /// Resizable BAR.
    pub const RESIZABLE_BAR: ExtendedCapabilityId = ExtendedCapabilityId(0x0015);
    /// Process Address Space ID.
    pub const PASID: ExtendedCapabilityId = ExtendedCapabilityId(0x001b);
}

/// One entry of the PCIe extended capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtendedCapability {
    /// What it is.
    pub id: ExtendedCapabilityId,
    /// Its version (header bits 19:16).
    pub version: u8,
    /// Where it starts: a dword in `0x100..0x1000`.
    pub offset: Register,
}

/// Why a capability walk stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapabilityError {
    /// A pointer leads outside the space its list must stay in (into the
    /// header, or out of extended configuration space).
    PointerOutOfRange {
        /// The register holding the pointer.
        from: Register,
        /// The pointer, reserved bits masked.
        pointer: u16,
    },
    /// A pointer leads back to a capability already visited.
    Loop {
        /// The register holding the pointer.
        from: Register,
        /// The capability it points back to.
        pointer: u16,
    },
}

impl fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PointerOutOfRange { from, pointer } => write!(
                f,
                "capability pointer at {from} leads out of range, to {pointer:#x}"
            ),
            Self::Loop { from, pointer } => {
                write!(f, "capability pointer at {from} loops back to {pointer:#x}")
            }
        }
    }
}

/// The conventional capabilities of `bdf`, in list order. Empty unless the
/// status register says there is a list. After an `Err` the walk ends.
pub fn capabilities<C: ConfigSpace + ?Sized>(cs: &C, bdf: Bdf) -> Capabilities<'_, C> {
    let next = if config::status(cs, bdf).contains(Status::CAPABILITIES_LIST) {
        cs.read32(bdf, Register::CAPABILITIES_POINTER) as u8 & POINTER_MASK
    } else {
        0
    };
    Capabilities {
        cs,
        bdf,
        from: Register::CAPABILITIES_POINTER,
        next,
        visited: 0,
    }
}

/// The first capability of `bdf` with ID `id`.
///
/// # Errors
///
/// The walk's [`CapabilityError`], if it fails before finding one.
pub fn find_capability<C: ConfigSpace + ?Sized>(
    cs: &C,
    bdf: Bdf,
    id: CapabilityId,
) -> Result<Option<Capability>, CapabilityError> {
    for cap in capabilities(cs, bdf) {
        let cap = cap?;
        if cap.id == id {
            return Ok(Some(cap));
        }
    }
    Ok(None)
}

/// Iterator over a conventional capability list; see [`capabilities`].
#[derive(Debug)]
pub struct Capabilities<'a, C: ?Sized> {
    cs: &'a C,
    bdf: Bdf,
    /// Where `next` was read from.
    from: Register,
    /// The next capability's offset; 0 when the walk is over.
    next: u8,
    /// One bit per dword of `0x40..0x100` already visited.
    visited: u64,
}

impl<C: ConfigSpace + ?Sized> Iterator for Capabilities<'_, C> {
    type Item = Result<Capability, CapabilityError>;

    fn next(&mut self) -> Option<Self::Item> {
        let pointer = core::mem::take(&mut self.next);
        if pointer == 0 {
            return None;
        }
        let (from, pointer16) = (self.from, u16::from(pointer));
        if pointer < FIRST_CAPABILITY {
            return Some(Err(CapabilityError::PointerOutOfRange {
                from,
                pointer: pointer16,
            }));
        }
        let slot = u32::from(pointer - FIRST_CAPABILITY) / 4;
        debug_assert!(slot < LEGACY_SLOTS);
        if self.visited & (1 << slot) != 0 {
            return Some(Err(CapabilityError::Loop {
                from,
                pointer: pointer16,
            }));
        }
        self.visited |= 1 << slot;
        // A masked u8 pointer is a dword below 0x100: always a register.
        let offset = Register::new(pointer16)?;
        let header = self.cs.read32(self.bdf, offset);
        self.from = offset;
        self.next = (header >> 8) as u8 & POINTER_MASK;
        Some(Ok(Capability {
            id: CapabilityId(header as u8),
            offset,
            header,
        }))
    }
}

/// The PCIe extended capabilities of `bdf`, in list order: empty for a
/// conventional PCI function (whose offset 0x100 reads as all ones) or one
/// without any (which reads 0 there). After an `Err` the walk ends.
pub fn extended_capabilities<C: ConfigSpace + ?Sized>(
    cs: &C,
    bdf: Bdf,
) -> ExtendedCapabilities<'_, C> {
    ExtendedCapabilities {
        cs,
        bdf,
        from: Register::EXTENDED_CAPABILITIES,
        next: LEGACY_CONFIG_SPACE_SIZE,
        visited: [0; EXTENDED_SLOTS / 64],
    }
}

/// Iterator over the PCIe extended capability list; see
/// [`extended_capabilities`].
#[derive(Debug)]
pub struct ExtendedCapabilities<'a, C: ?Sized> {
    cs: &'a C,
    bdf: Bdf,
    /// Where `next` was read from.
    from: Register,
    /// The next capability's offset; 0 when the walk is over.
    next: u16,
    /// One bit per dword of `0x100..0x1000` already visited.
    visited: [u64; EXTENDED_SLOTS / 64],
}

/// An extended capability header's next pointer: bits 31:20, the low two
/// bits reserved.
const EXTENDED_NEXT_SHIFT: u32 = 20;
const EXTENDED_NEXT_MASK: u16 = 0xffc;

impl<C: ConfigSpace + ?Sized> Iterator for ExtendedCapabilities<'_, C> {
    type Item = Result<ExtendedCapability, CapabilityError>;

    fn next(&mut self) -> Option<Self::Item> {
        let pointer = core::mem::take(&mut self.next);
        if pointer == 0 {
            return None;
        }
        let from = self.from;
        let Some(offset) = Register::new(pointer).filter(|_| pointer >= LEGACY_CONFIG_SPACE_SIZE)
        else {
            return Some(Err(CapabilityError::PointerOutOfRange { from, pointer }));
        };
        let slot = usize::from(pointer - LEGACY_CONFIG_SPACE_SIZE) / 4;
        let (word, bit) = (slot / 64, slot % 64);
        if self.visited[word] & (1 << bit) != 0 {
            return Some(Err(CapabilityError::Loop { from, pointer }));
        }
        self.visited[word] |= 1 << bit;
        let header = self.cs.read32(self.bdf, offset);
        // All ones: a conventional function's (or an absent one's); zero:
        // the PCIe "no extended capabilities" header. Either ends the list
        // where it begins; later, such a header is still read as the end.
        if header == u32::MAX || header == 0 {
            return None;
        }
        self.from = offset;
        self.next = (header >> EXTENDED_NEXT_SHIFT) as u16 & EXTENDED_NEXT_MASK;
        Some(Ok(ExtendedCapability {
            id: ExtendedCapabilityId(header as u16),
            version: ((header >> 16) & 0xf) as u8,
            offset,
        }))
    }
}
