//! `ICH_LR<n>_EL2`, the list registers through which the hypervisor hands
//! virtual interrupts to a vCPU (GICv3 §12.5.10, IHI 0069):
//!
//! | bits  | field                                      |
//! |-------|--------------------------------------------|
//! | 63:62 | State: invalid, pending, active, both      |
//! | 61    | HW: the virtual interrupt is tied to a physical one |
//! | 60    | Group: 1 for Group 1                       |
//! | 59    | NMI (FEAT_GICv3_NMI), unused here          |
//! | 55:48 | Priority                                   |
//! | 44:32 | pINTID when HW = 1; bit 41 is EOI when HW = 0 |
//! | 31:0  | vINTID                                     |

use core::fmt;

use crate::{IntId, PhysIntId};

const VINTID_MASK: u64 = 0xffff_ffff;
const PINTID_SHIFT: u32 = 32;
/// pINTID, bits 44:32 (with HW = 1).
const PINTID_MASK: u64 = 0x1fff << PINTID_SHIFT;
/// With HW = 0: assert a maintenance interrupt (`ICH_MISR_EL2.EOI`) when the
/// guest deactivates this interrupt.
const EOI: u64 = 1 << 41;
const PRIORITY_SHIFT: u32 = 48;
const GROUP1: u64 = 1 << 60;
const HW: u64 = 1 << 61;
const STATE_SHIFT: u32 = 62;

/// The state field of a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrState {
    /// No interrupt: the slot is free (or the guest finished with it).
    Invalid,
    /// Pending: the guest has not acknowledged it yet.
    Pending,
    /// Active: acknowledged, not yet deactivated.
    Active,
    /// Active, and pending again.
    PendingActive,
}

impl LrState {
    /// The state with these two flags.
    pub const fn from_flags(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => Self::Invalid,
            (true, false) => Self::Pending,
            (false, true) => Self::Active,
            (true, true) => Self::PendingActive,
        }
    }

    /// Whether the pending bit is set.
    pub const fn pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    /// Whether the active bit is set.
    pub const fn active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }

    const fn bits(self) -> u64 {
        match self {
            Self::Invalid => 0,
            Self::Pending => 1,
            Self::Active => 2,
            Self::PendingActive => 3,
        }
    }
}

/// One `ICH_LR<n>_EL2` value. Any `u64` decodes without panicking: the
/// hypervisor reads these back from hardware.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ListRegister(u64);

impl ListRegister {
    /// An empty slot.
    pub const INVALID: Self = Self(0);

    /// A purely virtual (HW = 0) Group 1 interrupt in `state`.
    pub const fn new(intid: IntId, priority: u8, state: LrState) -> Self {
        Self(
            intid.get() as u64
                | (priority as u64) << PRIORITY_SHIFT
                | GROUP1
                | state.bits() << STATE_SHIFT,
        )
    }

    /// The same entry asking for a maintenance interrupt when the guest
    /// deactivates it (the EOI bit; meaningful only with HW = 0). Used for
    /// level-sensitive interrupts, whose line must be sampled again then.
    /// An entry with HW = 1 is returned unchanged: there bit 41 belongs to
    /// pINTID.
    #[must_use]
    pub const fn with_eoi_maintenance(self) -> Self {
        if self.hw() {
            self
        } else {
            Self(self.0 | EOI)
        }
    }

    /// The same entry tied to physical interrupt `pintid` (HW = 1): when
    /// the guest deactivates the virtual interrupt, the GIC deactivates
    /// `pintid` as well (`ICH_LR<n>_EL2.HW`). The pINTID field
    /// overlaps the EOI bit, so such an entry never asks for a maintenance
    /// interrupt on deactivation.
    #[must_use]
    pub const fn with_hw(self, pintid: PhysIntId) -> Self {
        Self(self.0 & !PINTID_MASK | HW | (pintid.get() as u64) << PINTID_SHIFT)
    }

    /// The same entry in another state.
    #[must_use]
    pub const fn with_state(self, state: LrState) -> Self {
        Self(self.0 & !(3 << STATE_SHIFT) | state.bits() << STATE_SHIFT)
    }

    /// Takes a raw register value.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw register value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The vINTID field, as is.
    pub const fn vintid(self) -> u32 {
        (self.0 & VINTID_MASK) as u32
    }

    /// The vINTID as an [`IntId`], if it is one (not an LPI or special ID).
    pub const fn intid(self) -> Option<IntId> {
        IntId::new(self.vintid())
    }

    /// The priority field.
    pub const fn priority(self) -> u8 {
        (self.0 >> PRIORITY_SHIFT) as u8
    }

    /// Whether the interrupt is Group 1.
    pub const fn group1(self) -> bool {
        self.0 & GROUP1 != 0
    }

    /// Whether the HW bit ties this to a physical interrupt.
    pub const fn hw(self) -> bool {
        self.0 & HW != 0
    }

    /// The pINTID field, if HW = 1 ties the entry to a physical interrupt.
    pub const fn pintid(self) -> Option<u32> {
        if self.hw() {
            Some(((self.0 & PINTID_MASK) >> PINTID_SHIFT) as u32)
        } else {
            None
        }
    }

    /// Whether the EOI bit asks for a maintenance interrupt on
    /// deactivation (HW = 0 only; with HW = 1 the bit is part of pINTID).
    pub const fn eoi_maintenance(self) -> bool {
        !self.hw() && self.0 & EOI != 0
    }

    /// The state field.
    pub const fn state(self) -> LrState {
        match self.0 >> STATE_SHIFT {
            0 => LrState::Invalid,
            1 => LrState::Pending,
            2 => LrState::Active,
            _ => LrState::PendingActive,
        }
    }
}

impl fmt::Debug for ListRegister {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListRegister")
            .field("bits", &format_args!("{:#018x}", self.0))
            .field("vintid", &self.vintid())
            .field("priority", &format_args!("{:#04x}", self.priority()))
            .field("group1", &self.group1())
            .field("hw", &self.hw())
            .field("pintid", &self.pintid())
            .field("eoi", &self.eoi_maintenance())
            .field("state", &self.state())
            .finish()
    }
}
