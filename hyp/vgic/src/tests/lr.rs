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
}
