//! Distributor registers.

use super::*;
use crate::AccessError;

#[test]
fn ctlr_has_are_and_ds_fixed_and_grp1_read_write() {
    let mut g = Vgic::new(2, 64).unwrap();
    assert_eq!(
        dr(&g, gicd::CTLR),
        0x50,
        "ARE (bit 4) and DS (bit 6) read as one"
    );
    let _ = dw(&mut g, gicd::CTLR, 0);
    assert_eq!(dr(&g, gicd::CTLR), 0x50, "ARE and DS ignore writes");
    let _ = dw(&mut g, gicd::CTLR, 0x13); // Linux: ARE_NS | G1A | G1
    assert_eq!(
        dr(&g, gicd::CTLR),
        0x52,
        "EnableGrp1 kept, EnableGrp0 RAZ/WI, RWP 0"
    );
}

#[test]
fn ctlr_enable_kicks_every_vcpu() {
    let mut g = Vgic::new(3, 64).unwrap();
    assert_eq!(dw(&mut g, gicd::CTLR, 2).kick, set(&[0, 1, 2]));
    assert_eq!(
        dw(&mut g, gicd::CTLR, 2).kick,
        VcpuSet::EMPTY,
        "no change, no kick"
    );
}

#[test]
fn typer_reports_lines_idbits_and_nothing_else() {
    // ITLinesNumber = 32 * (N + 1) INTIDs; IDbits 9 (10 bits); no LPIs,
    // MBIS, security extension, Aff3, RSS; No1N = 0.
    assert_eq!(dr(&Vgic::new(4, 64).unwrap(), gicd::TYPER), 0x0048_0002);
    assert_eq!(dr(&Vgic::new(1, 96).unwrap(), gicd::TYPER), 0x0048_0003);
    assert_eq!(dr(&Vgic::new(1, 0).unwrap(), gicd::TYPER), 0x0048_0000);
    assert_eq!(dr(&Vgic::new(1, 960).unwrap(), gicd::TYPER), 0x0048_001e);
}

#[test]
fn identification_registers() {
    let mut g = Vgic::new(1, 32).unwrap();
    assert_eq!(dr(&g, gicd::IIDR), 0x4800_043b);
    assert_eq!(dr(&g, gicd::TYPER2), 0);
    assert_eq!(dr(&g, gicd::PIDR2) >> 4 & 0xf, 3, "ArchRev: GICv3");
    let _ = dw(&mut g, gicd::TYPER, 0xffff_ffff);
    let _ = dw(&mut g, gicd::IIDR, 0);
    assert_eq!(dr(&g, gicd::TYPER), 0x0048_0001, "read-only");
    assert_eq!(dr(&g, gicd::IIDR), 0x4800_043b, "read-only");
}

#[test]
fn igroupr_is_read_as_written_for_spis_and_raz_wi_for_private_ones() {
    let mut g = Vgic::new(1, 64).unwrap();
    assert_eq!(
        dr(&g, gicd::IGROUPR + 4),
        0xffff_ffff,
        "SPIs reset to Group 1"
    );
    let _ = dw(&mut g, gicd::IGROUPR + 4, 0x1234_5678);
    assert_eq!(dr(&g, gicd::IGROUPR + 4), 0x1234_5678);
    let _ = dw(&mut g, gicd::IGROUPR, 0xffff_ffff);
    assert_eq!(
        dr(&g, gicd::IGROUPR),
        0,
        "SGIs and PPIs live in the redistributor"
    );
    // INTIDs 96..128 do not exist with 64 SPIs.
    let _ = dw(&mut g, gicd::IGROUPR + 12, 0xffff_ffff);
    assert_eq!(dr(&g, gicd::IGROUPR + 12), 0);
    let _ = dw(&mut g, gicd::IGROUPR + 124, 0xffff_ffff);
    assert_eq!(dr(&g, gicd::IGROUPR + 124), 0);
}

#[test]
fn enable_is_write_one_to_set_and_write_one_to_clear() {
    let mut g = Vgic::new(1, 64).unwrap();
    let _ = dw(&mut g, gicd::ISENABLER + 4, 0b1011);
    let _ = dw(&mut g, gicd::ISENABLER + 4, 0b0100);
    assert_eq!(dr(&g, gicd::ISENABLER + 4), 0b1111, "zeros do not clear");
    let _ = dw(&mut g, gicd::ICENABLER + 4, 0b0101);
    assert_eq!(dr(&g, gicd::ISENABLER + 4), 0b1010);
    assert_eq!(dr(&g, gicd::ICENABLER + 4), 0b1010, "both read the enables");
    let _ = dw(&mut g, gicd::ISENABLER, 0xffff_ffff);
    assert_eq!(dr(&g, gicd::ISENABLER), 0, "private ones are RAZ/WI here");
}

#[test]
fn pending_is_write_one_to_set_and_clear_and_a_high_level_line_stays_pending() {
    let mut g = Vgic::new(1, 64).unwrap();
    let _ = dw(&mut g, gicd::ISPENDR + 4, 0b11);
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0b11);
    assert_eq!(dr(&g, gicd::ICPENDR + 4), 0b11);
    let _ = dw(&mut g, gicd::ICPENDR + 4, 0b01);
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0b10);
    // SPI 33 is level-sensitive by default; its line is high.
    let _ = g.set_level(id(UART), 0, true).unwrap();
    let _ = dw(&mut g, gicd::ICPENDR + 4, 0b10);
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0b10, "the line keeps it pending");
    let _ = g.set_level(id(UART), 0, false).unwrap();
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0);
}

#[test]
fn active_is_write_one_to_set_and_clear() {
    let mut g = Vgic::new(1, 64).unwrap();
    let _ = dw(&mut g, gicd::ISACTIVER + 8, 0x8000_0001);
    assert_eq!(dr(&g, gicd::ISACTIVER + 8), 0x8000_0001);
    let _ = dw(&mut g, gicd::ICACTIVER + 8, 1);
    assert_eq!(dr(&g, gicd::ICACTIVER + 8), 0x8000_0000);
}

#[test]
fn priority_takes_bytes_and_words_and_keeps_five_bits() {
    let mut g = Vgic::new(1, 64).unwrap();
    let base = gicd::IPRIORITYR + 32;
    let _ = dw(&mut g, base, 0x1f2f_3f4f);
    assert_eq!(dr(&g, base), 0x1828_3848, "low three bits not implemented");
    let _ = g.dist_write(base + 2, 1, 0xa0).unwrap();
    assert_eq!(dr(&g, base), 0x18a0_3848);
    assert_eq!(g.dist_read(base + 3, 1).unwrap().value, 0x18);
    let _ = dw(&mut g, gicd::IPRIORITYR, 0xffff_ffff);
    assert_eq!(dr(&g, gicd::IPRIORITYR), 0, "SGIs are RAZ/WI here");
    assert_eq!(
        g.dist_read(base, 2),
        Err(AccessError::WrongWidth {
            offset: base,
            size: 2
        })
    );
}

#[test]
fn icfgr_configures_spis_and_ignores_private_ones() {
    let mut g = Vgic::new(1, 64).unwrap();
    assert_eq!(dr(&g, gicd::ICFGR + 8), 0, "SPIs reset level-sensitive");
    let _ = dw(&mut g, gicd::ICFGR + 8, 0xffff_ffff);
    assert_eq!(
        dr(&g, gicd::ICFGR + 8),
        0xaaaa_aaaa,
        "the low bit of each field is RES0"
    );
    let _ = dw(&mut g, gicd::ICFGR + 8, 0x0000_0008);
    assert_eq!(
        dr(&g, gicd::ICFGR + 8),
        0x0000_0008,
        "SPI 33 edge, the others level"
    );
    let _ = dw(&mut g, gicd::ICFGR, 0xffff_ffff);
    let _ = dw(&mut g, gicd::ICFGR + 4, 0xffff_ffff);
    assert_eq!(dr(&g, gicd::ICFGR), 0);
    assert_eq!(dr(&g, gicd::ICFGR + 4), 0);
}

#[test]
fn irouter_is_read_as_written_in_whole_or_in_halves() {
    let mut g = Vgic::new(2, 64).unwrap();
    let r40 = gicd::IROUTER + 8 * 40;
    assert_eq!(g.dist_read(r40, 8).unwrap().value, 0, "resets to vCPU 0");
    let _ = g.dist_write(r40, 8, 0xffff_ffff_ffff_ffff).unwrap();
    assert_eq!(
        g.dist_read(r40, 8).unwrap().value,
        0x8000_0000 | 0xff_ffff,
        "IRM and Aff2..Aff0 kept; Aff3 (no A3V) and RES0 bits not"
    );
    let _ = g.dist_write(r40, 4, 0x0001_0203).unwrap();
    assert_eq!(g.dist_read(r40, 4).unwrap().value, 0x0001_0203);
    assert_eq!(g.dist_read(r40 + 4, 4).unwrap().value, 0);
    let _ = g.dist_write(r40 + 4, 4, 0xff).unwrap();
    assert_eq!(g.dist_read(r40, 8).unwrap().value, 0x0001_0203);
    // SPI 96 does not exist with 64 SPIs.
    let r96 = gicd::IROUTER + 8 * 96;
    let _ = g.dist_write(r96, 8, 1).unwrap();
    assert_eq!(
        g.dist_read(r96, 8).unwrap(),
        crate::Read {
            value: 0,
            unknown: false
        }
    );
    // IROUTER0..31 do not exist.
    assert!(g.dist_read(gicd::IROUTER + 8, 8).unwrap().unknown);
    assert_eq!(
        g.dist_read(r40 + 2, 2),
        Err(AccessError::WrongWidth {
            offset: r40 + 2,
            size: 2
        })
    );
}

#[test]
fn irouter_routes_by_affinity() {
    let mut g = booted(18, 64);
    enable(&mut g, 0, 40, 0x80);
    let _ = g.dist_write(gicd::IROUTER + 8 * 40, 8, 0x0101).unwrap(); // Aff1 1, Aff0 1: vCPU 17
    let kick = g.inject_edge(id(40), 0).unwrap();
    assert_eq!(kick, set(&[17]));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    assert_eq!(flush(&mut g, 16, 4).0.used, 0);
    let (r, lrs) = flush(&mut g, 17, 4);
    assert_eq!(r.used, 1);
    assert_eq!(entries(&lrs), [(40, LrState::Pending)]);
}

#[test]
fn irouter_to_an_affinity_no_vcpu_has_delivers_nowhere() {
    let mut g = booted(2, 64);
    enable(&mut g, 0, 40, 0x80);
    for router in [0x0002, 0x0100, 0x01_0000, 0x0010] {
        let _ = g.dist_write(gicd::IROUTER + 8 * 40, 8, router).unwrap();
        assert_eq!(g.inject_edge(id(40), 0).unwrap(), VcpuSet::EMPTY);
        assert!(!g.pending_for(0) && !g.pending_for(1));
        assert_eq!(flush(&mut g, 0, 4).0.used + flush(&mut g, 1, 4).0.used, 0);
    }
    route(&mut g, 40, 1);
    assert!(g.pending_for(1), "still pending, now routed to vCPU 1");
}

#[test]
fn irouter_irm_delivers_to_any_awake_vcpu() {
    let mut g = Vgic::new(3, 64).unwrap();
    let _ = dw(&mut g, gicd::CTLR, 2);
    let _ = rw(&mut g, 1, gicr::WAKER, 0);
    let _ = rw(&mut g, 2, gicr::WAKER, 0);
    enable(&mut g, 0, 40, 0x80);
    let _ = g.dist_write(gicd::IROUTER + 8 * 40, 8, 1 << 31).unwrap();
    assert_eq!(
        g.inject_edge(id(40), 0).unwrap(),
        set(&[1, 2]),
        "vCPU 0 is asleep"
    );
    assert!(!g.pending_for(0));
    assert!(g.pending_for(1) && g.pending_for(2));
    assert_eq!(
        flush(&mut g, 0, 4).0.used,
        0,
        "a sleeping redistributor takes no 1-of-N"
    );
    let (_, lrs) = flush(&mut g, 2, 4);
    assert_eq!(entries(&lrs), [(40, LrState::Pending)]);
    assert_eq!(flush(&mut g, 1, 4).0.used, 0, "only one vCPU gets it");
    assert!(!g.pending_for(1));
}

#[test]
fn gicv2_and_secure_only_registers_are_raz_wi_and_known() {
    let mut g = Vgic::new(1, 64).unwrap();
    for (offset, size) in [
        (gicd::ITARGETSR + 33, 1),
        (gicd::ITARGETSR + 32, 4),
        (gicd::IGRPMODR + 4, 4),
        (0x0e08, 4), // NSACR
        (0x0f00, 4), // SGIR
        (0x0f12, 1), // CPENDSGIR
        (0x0f2c, 4), // SPENDSGIR
        (0x0010, 4), // STATUSR
        (0xffd0, 4), // PIDR4
        (0xfffc, 4), // CIDR3
    ] {
        let e = g.dist_write(offset, size, 0xffff_ffff).unwrap();
        assert_eq!(e, Effects::default(), "write at {offset:#x}");
        let r = g.dist_read(offset, size).unwrap();
        assert_eq!(
            r,
            crate::Read {
                value: 0,
                unknown: false
            },
            "read at {offset:#x}"
        );
    }
}

#[test]
fn reserved_offsets_read_zero_ignore_writes_and_are_reported() {
    let mut g = Vgic::new(1, 64).unwrap();
    for (offset, size) in [
        (0x0040, 4), // SETSPI_NSR: no MBIS
        (0x0014, 4),
        (0x0d80, 4),
        (0x1000, 4), // extended SPI ranges
        (0x2000, 8),
        (0x6000, 8), // IROUTER0
        (0x7fe0, 8),
        (0xc000, 2),
        (0xfff0 - 0x30, 1),
    ] {
        let e = g.dist_write(offset, size, u64::MAX).unwrap();
        assert!(e.unknown && e.kick.is_empty(), "write at {offset:#x}");
        let r = g.dist_read(offset, size).unwrap();
        assert_eq!(
            r,
            crate::Read {
                value: 0,
                unknown: true
            },
            "read at {offset:#x}"
        );
    }
}

#[test]
fn bad_accesses_are_errors() {
    let mut g = Vgic::new(1, 64).unwrap();
    assert_eq!(
        g.dist_read(gicd::CTLR, 8),
        Err(AccessError::WrongWidth { offset: 0, size: 8 })
    );
    assert_eq!(
        g.dist_write(gicd::ISENABLER + 4, 1, 1),
        Err(AccessError::WrongWidth {
            offset: 0x104,
            size: 1
        })
    );
    assert_eq!(
        g.dist_read(gicd::TYPER, 2),
        Err(AccessError::WrongWidth { offset: 4, size: 2 })
    );
    assert_eq!(
        g.dist_read(0x102, 4),
        Err(AccessError::Unaligned {
            offset: 0x102,
            size: 4
        })
    );
    assert_eq!(
        g.dist_read(gicd::IROUTER + 8 * 40 + 4, 8),
        Err(AccessError::Unaligned {
            offset: 0x6144,
            size: 8
        })
    );
    assert_eq!(
        g.dist_read(0, 3),
        Err(AccessError::BadSize { offset: 0, size: 3 })
    );
    assert_eq!(
        g.dist_write(0, 16, 0),
        Err(AccessError::BadSize {
            offset: 0,
            size: 16
        })
    );
    assert_eq!(
        g.dist_read(0x1_0000, 4),
        Err(AccessError::OutOfFrame { offset: 0x1_0000 })
    );
    assert_eq!(
        g.dist_write(u64::MAX - 3, 4, 0),
        Err(AccessError::OutOfFrame {
            offset: u64::MAX - 3
        })
    );
}

#[test]
fn writes_only_keep_the_accessed_bytes() {
    let mut g = Vgic::new(1, 64).unwrap();
    // A 32-bit write whose value has stray upper bits must not leak them.
    let _ = g
        .dist_write(gicd::IROUTER + 8 * 40, 4, 0xffff_ffff_0000_0001)
        .unwrap();
    assert_eq!(g.dist_read(gicd::IROUTER + 8 * 40, 8).unwrap().value, 1);
    let _ = g.dist_write(gicd::IPRIORITYR + 33, 1, 0x1_00f8).unwrap();
    assert_eq!(dr(&g, gicd::IPRIORITYR + 32), 0xf800);
}

#[test]
fn config_rejects_bad_counts() {
    use crate::ConfigError;
    assert_eq!(
        Vgic::new(0, 64).unwrap_err(),
        ConfigError::VcpuCount { count: 0 }
    );
    assert_eq!(
        Vgic::new(129, 64).unwrap_err(),
        ConfigError::VcpuCount { count: 129 }
    );
    assert_eq!(
        Vgic::new(1, 33).unwrap_err(),
        ConfigError::SpiCount { count: 33 }
    );
    assert_eq!(
        Vgic::new(1, 992).unwrap_err(),
        ConfigError::SpiCount { count: 992 }
    );
    assert!(Vgic::new(128, 960).is_ok());
}
