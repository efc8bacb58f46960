//! Decoding a guest's write to `ICC_SGI1R_EL1` (GICv3 §12.2.23, IHI 0069).

use crate::IntId;

/// Which PEs an SGI goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTargets {
    /// IRM = 1: every PE but the sender.
    AllButSelf,
    /// IRM = 0: the PEs `Aff3.Aff2.Aff1.<RS * 16 + n>` for each bit `n` set
    /// in `list`.
    List {
        /// Aff3 of every target.
        aff3: u8,
        /// Aff2 of every target.
        aff2: u8,
        /// Aff1 of every target.
        aff1: u8,
        /// RS: which block of 16 Aff0 values `list` covers.
        range_selector: u8,
        /// TargetList: bit `n` names Aff0 `range_selector * 16 + n`.
        list: u16,
    },
}

/// A decoded `ICC_SGI1R_EL1` write. Every 64-bit value decodes: the fields
/// cover all meaningful bits and the rest are RES0 and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiRequest {
    /// The SGI to make pending (INTID bits 27:24, so always 0..16).
    pub intid: IntId,
    /// Who gets it.
    pub targets: SgiTargets,
}

const TARGET_LIST_MASK: u64 = 0xffff;
const AFF1_SHIFT: u32 = 16;
const INTID_SHIFT: u32 = 24;
const INTID_MASK: u64 = 0xf;
const AFF2_SHIFT: u32 = 32;
const IRM: u64 = 1 << 40;
const RS_SHIFT: u32 = 44;
const RS_MASK: u64 = 0xf;
const AFF3_SHIFT: u32 = 48;

impl SgiRequest {
    /// Decodes the register value the guest wrote.
    pub fn decode(value: u64) -> Self {
        let intid = IntId::sgi_from_field(((value >> INTID_SHIFT) & INTID_MASK) as u32);
        let targets = if value & IRM != 0 {
            SgiTargets::AllButSelf
        } else {
            SgiTargets::List {
                aff3: (value >> AFF3_SHIFT) as u8,
                aff2: (value >> AFF2_SHIFT) as u8,
                aff1: (value >> AFF1_SHIFT) as u8,
                range_selector: ((value >> RS_SHIFT) & RS_MASK) as u8,
                list: (value & TARGET_LIST_MASK) as u16,
            }
        };
        Self { intid, targets }
    }
}
