//! ICC_SGI1R_EL1 decoding and SGI delivery.

use super::*;
use crate::{Error, SgiRequest, SgiTargets};

/// An ICC_SGI1R_EL1 value.
fn sgi1r(intid: u64, aff3: u64, aff2: u64, aff1: u64, rs: u64, list: u64) -> u64 {
    aff3 << 48 | rs << 44 | aff2 << 32 | intid << 24 | aff1 << 16 | list
}

const IRM: u64 = 1 << 40;

#[test]
fn decode_reads_every_field() {
    assert_eq!(
        SgiRequest::decode(sgi1r(7, 0x12, 0x34, 0x56, 0xa, 0xbeef)),
        SgiRequest {
            intid: id(7),
            targets: SgiTargets::List {
                aff3: 0x12,
                aff2: 0x34,
                aff1: 0x56,
                range_selector: 0xa,
                list: 0xbeef,
            },
        }
    );
    assert_eq!(
        SgiRequest::decode(IRM | sgi1r(15, 1, 1, 1, 1, 0xffff)),
        SgiRequest {
            intid: id(15),
            targets: SgiTargets::AllButSelf
        }
    );
    // RES0 bits are ignored.
    assert_eq!(
        SgiRequest::decode(u64::MAX).intid,
        id(15),
        "INTID is four bits"
    );
}

#[test]
fn target_list_names_vcpus_by_aff1_and_aff0() {
    let mut g = booted(20, 32);
    let targets = g.send_sgi(0, sgi1r(3, 0, 0, 1, 0, 0b101)).unwrap();
    assert_eq!(targets, set(&[16, 18]));
    assert_eq!(rr(&g, 16, gicr::ISPENDR0), 1 << 3);
    assert_eq!(rr(&g, 18, gicr::ISPENDR0), 1 << 3);
    assert_eq!(rr(&g, 17, gicr::ISPENDR0), 0);
    assert_eq!(rr(&g, 0, gicr::ISPENDR0), 0);
    // Aff0 16..19 of Aff1 1 would be vCPUs past the end: ignored.
    let targets = g.send_sgi(0, sgi1r(3, 0, 0, 1, 0, 0xfff0)).unwrap();
    assert_eq!(targets, set(&[]));
}

#[test]
fn self_may_be_a_target() {
    let mut g = booted(2, 32);
    assert_eq!(
        g.send_sgi(1, sgi1r(1, 0, 0, 0, 0, 0b11)).unwrap(),
        set(&[0, 1])
    );
}

#[test]
fn irm_sends_to_all_but_self() {
    let mut g = booted(4, 32);
    assert_eq!(
        g.send_sgi(2, IRM | sgi1r(5, 0, 0, 0, 0, 0)).unwrap(),
        set(&[0, 1, 3])
    );
    assert_eq!(rr(&g, 2, gicr::ISPENDR0), 0);
    assert_eq!(rr(&g, 3, gicr::ISPENDR0), 1 << 5);
}

#[test]
fn other_aff2_aff3_or_range_selector_reach_nobody() {
    let mut g = booted(4, 32);
    for value in [
        sgi1r(0, 1, 0, 0, 0, 1),
        sgi1r(0, 0, 1, 0, 0, 1),
        sgi1r(0, 0, 0, 0, 1, 1),
        sgi1r(0, 0, 0, 0xff, 0, 0xffff),
        sgi1r(0, 0, 0, 0, 0, 0),
    ] {
        assert_eq!(g.send_sgi(0, value).unwrap(), VcpuSet::EMPTY, "{value:#x}");
    }
    assert_eq!(rr(&g, 0, gicr::ISPENDR0), 0);
}

#[test]
fn only_newly_pending_targets_are_returned() {
    let mut g = booted(2, 32);
    assert_eq!(
        g.send_sgi(0, sgi1r(2, 0, 0, 0, 0, 0b10)).unwrap(),
        set(&[1])
    );
    assert_eq!(g.send_sgi(0, sgi1r(2, 0, 0, 0, 0, 0b10)).unwrap(), set(&[]));
}

#[test]
fn a_group_0_sgi_is_not_forwarded() {
    let mut g = booted(2, 32);
    let _ = rw(&mut g, 1, gicr::IGROUPR0, !(1 << 4));
    assert_eq!(
        g.send_sgi(0, sgi1r(4, 0, 0, 0, 0, 0b11)).unwrap(),
        set(&[0])
    );
    assert_eq!(rr(&g, 1, gicr::ISPENDR0), 0);
}

#[test]
fn sgis_are_delivered_through_list_registers() {
    let mut g = booted(2, 32);
    enable(&mut g, 1, 1, 0xa0);
    let _ = g.send_sgi(0, sgi1r(1, 0, 0, 0, 0, 0b10)).unwrap();
    assert!(g.pending_for(1));
    let (_, lrs) = flush(&mut g, 1, 4);
    assert_eq!(entries(&lrs), [(1, LrState::Pending)]);
}

#[test]
fn a_missing_sender_is_an_error() {
    let mut g = booted(2, 32);
    assert_eq!(g.send_sgi(2, 0), Err(Error::NoSuchVcpu { vcpu: 2 }));
}
