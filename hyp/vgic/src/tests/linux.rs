//! What a Linux guest's GICv3 driver (drivers/irqchip/irq-gic-v3.c) does at
//! boot, step by step, against the model.

use super::*;

const RWP: u64 = 1 << 31;
const GICR_CTLR_RWP: u64 = 1 << 3;

#[test]
fn linux_probe_and_first_timer_interrupt() {
    let vcpus = 4;
    let mut g = Vgic::new(vcpus, 96).unwrap();

    // gic_validate_dist_version: PIDR2.ArchRev must say GICv3 or v4.
    assert_eq!(dr(&g, gicd::PIDR2) & 0xf0, 0x30);
    let typer = dr(&g, gicd::TYPER);
    let lines = ((typer & 0x1f) + 1) * 32;
    assert_eq!(lines, 128);
    assert_eq!((typer >> 19) & 0x1f, 9, "IDbits");
    assert_eq!(typer & (1 << 17), 0, "no LPIs: no ITS set-up");

    // gic_dist_init.
    let _ = dw(&mut g, gicd::CTLR, 0);
    assert_eq!(dr(&g, gicd::CTLR) & RWP, 0);
    for i in (32..lines).step_by(32) {
        let _ = dw(&mut g, gicd::IGROUPR + i / 8, 0xffff_ffff);
    }
    for i in (32..lines).step_by(16) {
        let _ = dw(&mut g, gicd::ICFGR + i / 4, 0);
    }
    for i in (32..lines).step_by(4) {
        let _ = dw(&mut g, gicd::IPRIORITYR + i, 0xa0a0_a0a0);
    }
    for i in (32..lines).step_by(32) {
        let _ = dw(&mut g, gicd::ICACTIVER + i / 8, 0xffff_ffff);
        let _ = dw(&mut g, gicd::ICENABLER + i / 8, 0xffff_ffff);
    }
    let _ = dw(&mut g, gicd::CTLR, 0x10 | 0x2 | 0x1);
    assert_eq!(dr(&g, gicd::CTLR) & RWP, 0);
    assert_ne!(dr(&g, gicd::CTLR) & (1 << 6), 0, "security disabled");
    for i in 32..lines {
        let _ = g
            .dist_write(gicd::IROUTER + 8 * i, 8, crate::vcpu_affinity(0))
            .unwrap();
    }

    // gic_iterate_rdists: walk the frames until one says Last.
    let mut found = Vec::new();
    for frame in 0.. {
        let pidr2 = g.redist_read(frame, 0xffe8, 4).unwrap().value;
        assert_eq!(pidr2 & 0xf0, 0x30);
        let typer = g.redist_read(frame, gicr::TYPER, 8).unwrap().value;
        found.push(typer >> 32);
        if typer & 0x10 != 0 {
            break;
        }
    }
    let expected: Vec<u64> = (0..vcpus).map(crate::vcpu_affinity).collect();
    assert_eq!(found, expected, "one redistributor per vCPU, by affinity");

    for cpu in 0..vcpus {
        // gic_enable_redist: wake up, wait for ChildrenAsleep to clear.
        let waker = rr(&g, cpu, gicr::WAKER);
        let _ = rw(&mut g, cpu, gicr::WAKER, waker & !0b10);
        assert_eq!(rr(&g, cpu, gicr::WAKER) & 0b100, 0);
        // gic_cpu_config.
        let _ = rw(&mut g, cpu, gicr::IGROUPR0, 0xffff_ffff);
        let _ = rw(&mut g, cpu, gicr::ICACTIVER0, 0xffff_ffff);
        let _ = rw(&mut g, cpu, gicr::ICENABLER0, 0xffff_ffff);
        for i in (0..32).step_by(4) {
            let _ = rw(&mut g, cpu, gicr::IPRIORITYR + i, 0xa0a0_a0a0);
        }
        assert_eq!(rr(&g, cpu, gicr::CTLR) & GICR_CTLR_RWP, 0);
    }

    // The arch timer driver: PPI 27 level, enabled on each CPU.
    for cpu in 0..vcpus {
        let icfgr1 = rr(&g, cpu, gicr::ICFGR1);
        let _ = rw(&mut g, cpu, gicr::ICFGR1, icfgr1 & !(0b11 << 22));
        assert_eq!(
            rw(&mut g, cpu, gicr::ISENABLER0, 1 << TIMER).kick,
            VcpuSet::EMPTY
        );
    }
    // The timer fires on vCPU 2.
    assert_eq!(g.set_level(id(TIMER), 2, true).unwrap(), set(&[2]));
    let (_, lrs) = flush(&mut g, 2, 4);
    let lr = ListRegister::from_bits(lrs[0]);
    assert_eq!(
        (lr.vintid(), lr.priority(), lr.state(), lr.eoi_maintenance()),
        (TIMER, 0xa0, LrState::Pending, true)
    );
    // IPIs: SGI 1 from vCPU 0 to vCPUs 1 and 3 (enabled by the driver).
    for cpu in 0..vcpus {
        let _ = rw(&mut g, cpu, gicr::ISENABLER0, 1 << 1);
    }
    assert_eq!(g.send_sgi(0, 1 << 24 | 0b1010).unwrap(), set(&[1, 3]));
    assert!(g.pending_for(1) && g.pending_for(3) && !g.pending_for(0));
}
