//! The small public types.

use super::*;
use crate::{IntKind, MAX_VCPUS};

#[test]
fn intid_constructors_check_their_ranges() {
    assert_eq!(IntId::sgi(15).map(IntId::get), Some(15));
    assert_eq!(IntId::sgi(16), None);
    assert_eq!(IntId::ppi(11).map(IntId::get), Some(27));
    assert_eq!(IntId::ppi(16), None);
    assert_eq!(IntId::spi(1).map(IntId::get), Some(33));
    assert_eq!(IntId::spi(987).map(IntId::get), Some(1019));
    assert_eq!(IntId::spi(988), None);
    assert_eq!(IntId::new(1020), None);
    assert_eq!(IntId::new(u32::MAX), None);
    assert_eq!(id(3).kind(), IntKind::Sgi);
    assert_eq!(id(27).kind(), IntKind::Ppi);
    assert_eq!(id(33).kind(), IntKind::Spi);
    assert!(id(31).is_private() && !id(32).is_private());
    assert_eq!(std::format!("{}", id(27)), "INTID 27 (PPI)");
    assert_eq!(std::format!("{:?}", id(33)), "IntId(INTID 33 (SPI))");
}

#[test]
fn vcpu_sets() {
    let mut s = VcpuSet::EMPTY;
    assert!(s.is_empty());
    s.insert(0);
    s.insert(127);
    s.insert(128); // ignored: no such vCPU can exist
    s.insert(usize::MAX);
    assert_eq!(s.len(), 2);
    assert!(s.contains(127) && !s.contains(128) && !s.contains(usize::MAX));
    assert_eq!(s.iter().collect::<Vec<_>>(), [0, 127]);
    assert_eq!(VcpuSet::first(3), set(&[0, 1, 2]));
    assert_eq!(VcpuSet::first(MAX_VCPUS).len(), MAX_VCPUS);
    assert_eq!(std::format!("{:?}", set(&[1, 4])), "{1, 4}");
    assert_eq!(set(&[1]).union(set(&[2])), set(&[1, 2]));
}

#[test]
fn affinity_matches_the_device_tree_layout() {
    assert_eq!(crate::vcpu_affinity(0), 0);
    assert_eq!(crate::vcpu_affinity(15), 0x0f);
    assert_eq!(crate::vcpu_affinity(16), 0x100);
    assert_eq!(crate::vcpu_affinity(127), 0x70f);
}

#[test]
fn the_model_can_sit_behind_a_lock_shared_by_cpus() {
    fn shared<T: Send + Sync>() {}
    shared::<Vgic>();
}

#[test]
fn errors_print() {
    use crate::{AccessError, ConfigError, Error};
    for text in [
        std::format!("{}", AccessError::WrongWidth { offset: 0, size: 8 }),
        std::format!("{}", AccessError::NoSuchVcpu { vcpu: 4 }),
        std::format!(
            "{}",
            Error::LrMismatch {
                lr: 1,
                expected: id(33)
            }
        ),
        std::format!("{}", Error::NoSuchIntId { intid: id(99) }),
        std::format!("{}", ConfigError::SpiCount { count: 33 }),
    ] {
        assert!(!text.is_empty());
    }
    assert_eq!(
        std::format!(
            "{}",
            AccessError::WrongWidth {
                offset: 0x104,
                size: 1
            }
        ),
        "the register at 0x104 takes no 1-byte access"
    );
}
