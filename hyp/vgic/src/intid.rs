//! Interrupt IDs.

use core::fmt;

/// A GIC interrupt ID below the special range: an SGI (0..16), a PPI
/// (16..32) or an SPI (32..1020), per GICv3 §2.2.1 (IHI 0069).
///
/// Only built through range-checked constructors, so a value past 1019 (the
/// special INTIDs 1020..1023, LPIs, garbage from a list register) never gets
/// this type.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntId(u32);

/// What kind of interrupt an [`IntId`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// Software-generated interrupt, private to a vCPU.
    Sgi,
    /// Private peripheral interrupt (timers, PMU), private to a vCPU.
    Ppi,
    /// Shared peripheral interrupt, routed through `GICD_IROUTER<n>`.
    Spi,
}

impl IntId {
    /// The first PPI.
    pub const FIRST_PPI: u32 = 16;
    /// The first SPI; INTIDs below it are private to each vCPU.
    pub const FIRST_SPI: u32 = 32;
    /// One past the last SPI: 1020..1023 are special INTIDs.
    pub const END: u32 = 1020;

    /// `raw` as an interrupt ID, or `None` if it is 1020 or above.
    pub const fn new(raw: u32) -> Option<Self> {
        if raw < Self::END {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// SGI `n` (0..16).
    pub const fn sgi(n: u32) -> Option<Self> {
        if n < Self::FIRST_PPI {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The SGI named by the low four bits of `n`: total, for register fields
    /// that are four bits wide.
    pub(crate) const fn sgi_from_field(n: u32) -> Self {
        Self(n & (Self::FIRST_PPI - 1))
    }

    /// PPI `n` (0..16), INTID `16 + n`.
    pub const fn ppi(n: u32) -> Option<Self> {
        if n < Self::FIRST_SPI - Self::FIRST_PPI {
            Some(Self(Self::FIRST_PPI + n))
        } else {
            None
        }
    }

    /// SPI `n` as the device tree numbers it (`<0 n flags>`), INTID `32 + n`.
    pub const fn spi(n: u32) -> Option<Self> {
        if n < Self::END - Self::FIRST_SPI {
            Some(Self(Self::FIRST_SPI + n))
        } else {
            None
        }
    }

    /// The interrupt ID as a plain integer, for registers.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether the interrupt is banked per vCPU (an SGI or a PPI).
    pub const fn is_private(self) -> bool {
        self.0 < Self::FIRST_SPI
    }

    /// SGI, PPI or SPI.
    pub const fn kind(self) -> IntKind {
        if self.0 < Self::FIRST_PPI {
            IntKind::Sgi
        } else if self.0 < Self::FIRST_SPI {
            IntKind::Ppi
        } else {
            IntKind::Spi
        }
    }
}

impl fmt::Debug for IntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntId({self})")
    }
}

impl fmt::Display for IntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind() {
            IntKind::Sgi => "SGI",
            IntKind::Ppi => "PPI",
            IntKind::Spi => "SPI",
        };
        write!(f, "INTID {} ({kind})", self.0)
    }
}

/// A physical SPI's INTID (32..1020) on the host's GIC, which a virtual SPI
/// can be linked to ([`crate::Vgic::link_hw`]): the `pINTID` of a
/// hardware-linked list register (GICv3 §12.5.10, IHI 0069).
///
/// A separate type from [`IntId`] because it names an interrupt in another
/// INTID space: the host's, not the guest's. Only SPIs: a PPI is banked per
/// physical CPU, so a list register deactivating one would act on whichever
/// CPU the vCPU happens to run on; SGIs cannot be linked, LPIs need no
/// deactivation, and the extended SPI range is not used.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysIntId(u32);

impl PhysIntId {
    /// Physical INTID `raw`, if it is an SPI (32..1020).
    pub const fn new(raw: u32) -> Option<Self> {
        if raw >= IntId::FIRST_SPI && raw < IntId::END {
            Some(Self(raw))
        } else {
            None
        }
    }

    /// Physical SPI `n` as the host's device tree numbers it, INTID `32 + n`.
    pub const fn spi(n: u32) -> Option<Self> {
        if n < IntId::END - IntId::FIRST_SPI {
            Some(Self(IntId::FIRST_SPI + n))
        } else {
            None
        }
    }

    /// The INTID as a plain integer, for `ICC_DIR_EL1` or the physical
    /// distributor's registers.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for PhysIntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysIntId({})", self.0)
    }
}

impl fmt::Display for PhysIntId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "physical INTID {} (SPI)", self.0)
    }
}
