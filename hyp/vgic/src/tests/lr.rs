//! ICH_LR<n>_EL2 encoding.

use super::*;
use proptest::prelude::*;

#[test]
fn encodes_fields_where_the_architecture_puts_them() {
    let lr = ListRegister::new(id(33), 0xa0, LrState::Pending);
    // State 01 (63:62), Group 1 (60), priority 0xa0 (55:48), vINTID 33.
    assert_eq!(lr.bits(), 0x50a0_0000_0000_0021);
    assert_eq!(lr.with_eoi_maintenance().bits(), 0x50a0_0200_0000_0021);
    assert_eq!(
        lr.with_state(LrState::PendingActive).bits(),
        0xd0a0_0000_0000_0021
    );
    assert_eq!(lr.with_state(LrState::Active).bits(), 0x90a0_0000_0000_0021);
    assert_eq!(
        lr.with_state(LrState::Invalid).bits(),
        0x10a0_0000_0000_0021
    );
    assert_eq!(ListRegister::INVALID.state(), LrState::Invalid);
}

#[test]
fn decodes_fields() {
    let lr = ListRegister::from_bits(0xd0a0_0200_0000_001b);
    assert_eq!(lr.vintid(), 27);
    assert_eq!(lr.intid(), Some(id(27)));
    assert_eq!(lr.priority(), 0xa0);
    assert!(lr.group1());
    assert!(!lr.hw());
    assert!(lr.eoi_maintenance());
    assert_eq!(lr.state(), LrState::PendingActive);
    // With HW = 1 bit 41 is part of pINTID, not EOI.
    let hw = ListRegister::from_bits(1 << 61 | 1 << 41);
    assert!(hw.hw() && !hw.eoi_maintenance());
    // An LPI's vINTID is no IntId.
    assert_eq!(ListRegister::from_bits(8192).intid(), None);
}

#[test]
fn a_hardware_entry_carries_its_pintid_where_the_eoi_bit_was() {
    let p = crate::PhysIntId::new(0x1ff).unwrap();
    let lr = ListRegister::new(id(40), 0x80, LrState::Pending).with_hw(p);
    // State 01, HW (61), Group 1, priority 0x80, pINTID 0x1ff (44:32).
    assert_eq!(lr.bits(), 0x7080_01ff_0000_0028);
    assert_eq!((lr.hw(), lr.pintid(), lr.vintid()), (true, Some(0x1ff), 40));
    assert!(!lr.eoi_maintenance(), "bit 41 is pINTID here");
    assert_eq!(lr.with_eoi_maintenance(), lr, "no EOI bit with HW = 1");
    // An EOI request made before is overwritten by the pINTID.
    let p = crate::PhysIntId::new(72).unwrap();
    let with_eoi = ListRegister::new(id(40), 0x80, LrState::Active).with_eoi_maintenance();
    assert_eq!(with_eoi.with_hw(p).bits(), 0xb080_0048_0000_0028);
    assert_eq!(ListRegister::new(id(40), 0, LrState::Active).pintid(), None);
}

#[test]
fn state_flags() {
    for (p, a, s) in [
        (false, false, LrState::Invalid),
        (true, false, LrState::Pending),
        (false, true, LrState::Active),
        (true, true, LrState::PendingActive),
    ] {
        assert_eq!(LrState::from_flags(p, a), s);
        assert_eq!((s.pending(), s.active()), (p, a));
    }
}

proptest! {
    #[test]
    fn any_value_decodes_and_reencodes(bits: u64) {
        let lr = ListRegister::from_bits(bits);
        let _ = std::format!("{lr:?}");
        prop_assert_eq!(lr.with_state(lr.state()), lr);
        if let Some(intid) = lr.intid() {
            let again = ListRegister::new(intid, lr.priority(), lr.state());
            prop_assert_eq!(again.vintid(), lr.vintid());
            prop_assert_eq!(again.priority(), lr.priority());
            prop_assert_eq!(again.state(), lr.state());
        }
    }

    #[test]
    fn with_hw_changes_only_hw_and_pintid(bits: u64, p in 32u32..1020) {
        let lr = ListRegister::from_bits(bits);
        let hw = lr.with_hw(crate::PhysIntId::new(p).unwrap());
        prop_assert_eq!(hw.pintid(), Some(p));
        prop_assert_eq!(
            (hw.vintid(), hw.priority(), hw.group1(), hw.state()),
            (lr.vintid(), lr.priority(), lr.group1(), lr.state())
        );
        // Everything outside pINTID (44:32) and HW (61) is kept.
        let others = !(0x1fff_u64 << 32 | 1 << 61);
        prop_assert_eq!(hw.bits() & others, bits & others);
    }
}
