//! Redistributor registers.

use super::*;
use crate::AccessError;

#[test]
fn typer_gives_affinity_processor_number_and_last() {
    let g = Vgic::new(18, 64).unwrap();
    let typer = |v| g.redist_read(v, gicr::TYPER, 8).unwrap().value;
    assert_eq!(typer(0), 0);
    assert_eq!(typer(5), 0x0000_0005_0000_0500);
    // vCPU 17: Aff1 1, Aff0 1; Processor_Number 17; the last one.
    assert_eq!(typer(17), 0x0000_0101_0000_1110);
    assert_eq!(rr(&g, 17, gicr::TYPER), 0x1110, "low half");
    assert_eq!(rr(&g, 17, gicr::TYPER + 4), 0x0101, "high half");
    assert_eq!(typer(16) & 0x10, 0, "only the last vCPU has Last");
    assert_eq!(typer(17) & 0b1111, 0, "no PLPIS, VLPIS, Dirty, DirectLPI");
}

#[test]
fn single_vcpu_is_last() {
    let g = Vgic::new(1, 32).unwrap();
    assert_eq!(rr(&g, 0, gicr::TYPER), 0x10);
}

#[test]
fn waker_children_asleep_follows_processor_sleep() {
    let mut g = Vgic::new(2, 32).unwrap();
    assert_eq!(rr(&g, 0, gicr::WAKER), 0b110, "out of reset, asleep");
    // Linux: clear ProcessorSleep, then poll until ChildrenAsleep is 0.
    let e = rw(&mut g, 0, gicr::WAKER, 0);
    assert_eq!(e.kick, set(&[0]));
    assert_eq!(rr(&g, 0, gicr::WAKER), 0);
    assert_eq!(rr(&g, 1, gicr::WAKER), 0b110, "each vCPU has its own");
    let _ = rw(&mut g, 0, gicr::WAKER, 0b010);
    assert_eq!(rr(&g, 0, gicr::WAKER), 0b110);
    let _ = rw(&mut g, 0, gicr::WAKER, 0b101);
    assert_eq!(
        rr(&g, 0, gicr::WAKER),
        0,
        "ChildrenAsleep and bit 0 ignore writes"
    );
}

#[test]
fn ctlr_iidr_pidr2() {
    let mut g = Vgic::new(1, 32).unwrap();
    let _ = rw(&mut g, 0, gicr::CTLR, 0xffff_ffff);
    assert_eq!(rr(&g, 0, gicr::CTLR), 0, "no LPIs to enable, RWP 0");
    assert_eq!(rr(&g, 0, gicr::IIDR), 0x4800_043b);
    assert_eq!(rr(&g, 0, gicr::PIDR2) >> 4 & 0xf, 3);
}

#[test]
fn propbaser_and_pendbaser_read_as_written() {
    let mut g = Vgic::new(2, 32).unwrap();
    let _ = g
        .redist_write(0, gicr::PROPBASER, 8, 0x0123_4567_89ab_cdef)
        .unwrap();
    assert_eq!(
        g.redist_read(0, gicr::PROPBASER, 8).unwrap().value,
        0x0123_4567_89ab_cdef
    );
    let _ = rw(&mut g, 0, gicr::PENDBASER + 4, 0x4000_0000);
    let _ = rw(&mut g, 0, gicr::PENDBASER, 0x1000);
    assert_eq!(
        g.redist_read(0, gicr::PENDBASER, 8).unwrap().value,
        0x4000_0000_0000_1000
    );
    assert_eq!(g.redist_read(1, gicr::PROPBASER, 8).unwrap().value, 0);
}

#[test]
fn sgi_frame_bitmaps_are_banked_per_vcpu() {
    let mut g = Vgic::new(2, 32).unwrap();
    let _ = rw(&mut g, 0, gicr::ISENABLER0, 0x0800_0003);
    assert_eq!(rr(&g, 0, gicr::ISENABLER0), 0x0800_0003);
    assert_eq!(rr(&g, 1, gicr::ISENABLER0), 0);
    let _ = rw(&mut g, 0, gicr::ICENABLER0, 1);
    assert_eq!(rr(&g, 0, gicr::ICENABLER0), 0x0800_0002);

    assert_eq!(rr(&g, 1, gicr::IGROUPR0), 0xffff_ffff);
    let _ = rw(&mut g, 1, gicr::IGROUPR0, 0xffff);
    assert_eq!(rr(&g, 1, gicr::IGROUPR0), 0xffff);

    let _ = rw(&mut g, 1, gicr::ISPENDR0, 0x10);
    assert_eq!(rr(&g, 1, gicr::ISPENDR0), 0x10);
    let _ = rw(&mut g, 1, gicr::ICPENDR0, 0x10);
    assert_eq!(rr(&g, 1, gicr::ICPENDR0), 0);

    let _ = rw(&mut g, 1, gicr::ISACTIVER0, 0x8000_0000);
    assert_eq!(rr(&g, 1, gicr::ISACTIVER0), 0x8000_0000);
    let _ = rw(&mut g, 1, gicr::ICACTIVER0, 0x8000_0000);
    assert_eq!(rr(&g, 1, gicr::ICACTIVER0), 0);
}

#[test]
fn sgi_frame_priorities_take_bytes() {
    let mut g = Vgic::new(1, 32).unwrap();
    let _ = rw(&mut g, 0, gicr::IPRIORITYR + 24, 0xa0a0_a0a0);
    let _ = g.redist_write(0, gicr::IPRIORITYR + 27, 1, 0x17).unwrap();
    assert_eq!(rr(&g, 0, gicr::IPRIORITYR + 24), 0x10a0_a0a0);
    assert_eq!(g.redist_read(0, gicr::IPRIORITYR + 31, 1).unwrap().value, 0);
    // IPRIORITYR8 and beyond do not exist in the SGI frame.
    assert!(g.redist_read(0, gicr::IPRIORITYR + 32, 4).unwrap().unknown);
}

#[test]
fn icfgr0_is_fixed_edge_and_icfgr1_configures_ppis() {
    let mut g = Vgic::new(1, 32).unwrap();
    assert_eq!(
        rr(&g, 0, gicr::ICFGR0),
        0xaaaa_aaaa,
        "SGIs are edge-triggered"
    );
    let _ = rw(&mut g, 0, gicr::ICFGR0, 0);
    assert_eq!(rr(&g, 0, gicr::ICFGR0), 0xaaaa_aaaa, "and read-only");
    assert_eq!(rr(&g, 0, gicr::ICFGR1), 0, "PPIs reset level-sensitive");
    let _ = rw(&mut g, 0, gicr::ICFGR1, 0x0000_0022);
    assert_eq!(rr(&g, 0, gicr::ICFGR1), 0x0000_0022);
}

#[test]
fn igrpmodr0_is_raz_wi() {
    let mut g = Vgic::new(1, 32).unwrap();
    let e = rw(&mut g, 0, gicr::IGRPMODR0, 0xffff_ffff);
    assert!(!e.unknown);
    assert_eq!(rr(&g, 0, gicr::IGRPMODR0), 0);
}

#[test]
fn reserved_offsets_are_reported() {
    let mut g = Vgic::new(1, 32).unwrap();
    for offset in [
        0x0018, 0x0040, 0x00a0, 0x00b0, 0x0100, 0x1_0084, 0x1_0d04, 0x1_ffe8,
    ] {
        assert!(
            g.redist_read(0, offset, 4).unwrap().unknown,
            "read {offset:#x}"
        );
        assert!(rw(&mut g, 0, offset, 1).unknown, "write {offset:#x}");
    }
    assert!(
        !g.redist_read(0, 0x00c0, 4).unwrap().unknown,
        "SYNCR is known"
    );
}

#[test]
fn bad_accesses_are_errors() {
    let mut g = Vgic::new(2, 32).unwrap();
    assert_eq!(
        g.redist_read(2, 0, 4),
        Err(AccessError::NoSuchVcpu { vcpu: 2 })
    );
    assert_eq!(
        g.redist_write(usize::MAX, 0, 4, 0),
        Err(AccessError::NoSuchVcpu { vcpu: usize::MAX })
    );
    assert_eq!(
        g.redist_read(0, 0x2_0000, 4),
        Err(AccessError::OutOfFrame { offset: 0x2_0000 })
    );
    assert_eq!(
        g.redist_read(0, gicr::WAKER, 8),
        Err(AccessError::Unaligned {
            offset: 0x14,
            size: 8
        })
    );
    assert_eq!(
        g.redist_read(0, gicr::TYPER, 2),
        Err(AccessError::WrongWidth { offset: 8, size: 2 })
    );
    assert_eq!(
        g.redist_write(0, gicr::ISENABLER0, 8, 0),
        Err(AccessError::WrongWidth {
            offset: gicr::ISENABLER0,
            size: 8
        })
    );
    assert_eq!(
        g.redist_read(0, gicr::CTLR, 1),
        Err(AccessError::WrongWidth { offset: 0, size: 1 })
    );
}
