//! A vCPU that moves between physical CPUs: flushed into one CPU's list
//! registers, the guest acts on them, synced, then flushed into another
//! CPU's. Every interrupt's state must carry on exactly: active stays active
//! (so the guest deactivates it on the new CPU), pending stays pending, an
//! edge that arrived meanwhile is neither lost nor doubled, and an SPI one
//! vCPU holds is not handed to another before that vCPU synced.

use super::*;

/// Makes SPI `intid` edge-triggered (`GICD_ICFGR`).
fn edge_spi(g: &mut Vgic, intid: u32) {
    let offset = gicd::ICFGR + u64::from(intid / 16) * 4;
    let value = dr(g, offset) | 2 << (2 * (intid % 16));
    let _ = dw(g, offset, value);
}

/// Makes PPI `intid` of `vcpu` edge-triggered (`GICR_ICFGR1`).
fn edge_ppi(g: &mut Vgic, vcpu: usize, intid: u32) {
    let value = rr(g, vcpu, gicr::ICFGR1) | 2 << (2 * (intid % 16));
    let _ = rw(g, vcpu, gicr::ICFGR1, value);
}

/// Routes SPI `intid` 1-of-N (`GICD_IROUTER.IRM`).
fn route_any(g: &mut Vgic, intid: u32) {
    let offset = gicd::IROUTER + 8 * u64::from(intid);
    let _ = g.dist_write(offset, 8, 1 << 31).unwrap();
}

/// The index of the valid list register holding `intid`.
fn slot(lrs: &[u64], intid: u32) -> usize {
    lrs.iter()
        .position(|&bits| {
            let lr = ListRegister::from_bits(bits);
            lr.state() != LrState::Invalid && lr.vintid() == intid
        })
        .unwrap_or_else(|| panic!("INTID {intid} in no list register: {lrs:x?}"))
}

/// The guest acknowledges `intid`.
fn ack_intid(lrs: &mut [u64], intid: u32) {
    let i = slot(lrs, intid);
    ack(lrs, i);
}

/// The guest handles everything in `lrs` to completion, as a handler that
/// acknowledges and EOIs each interrupt would; returns the INTIDs it
/// acknowledged.
fn handle_all(lrs: &mut [u64]) -> Vec<u32> {
    let mut acked = Vec::new();
    for i in 0..lrs.len() {
        let lr = ListRegister::from_bits(lrs[i]);
        match lr.state() {
            LrState::Invalid => continue,
            LrState::Pending => {}
            LrState::Active => {
                eoi(lrs, i);
                continue;
            }
            LrState::PendingActive => eoi(lrs, i),
        }
        ack(lrs, i);
        acked.push(lr.vintid());
        eoi(lrs, i);
    }
    acked
}

/// Each private interrupt bit of `vcpu`, and each SPI bit, of a pair of
/// set-registers.
fn bits(g: &Vgic, vcpu: usize, redist: u64, dist: u64) -> (u64, u64) {
    (rr(g, vcpu, redist), dr(g, dist + 4))
}

#[test]
fn an_interrupt_active_on_cpu_a_is_deactivated_on_cpu_b() {
    let mut g = booted(2, 64);
    edge_spi(&mut g, UART);
    enable(&mut g, 0, UART, 0x40);
    enable(&mut g, 0, TIMER, 0x20);
    enable(&mut g, 0, 3, 0x60);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let _ = g.set_level(id(TIMER), 0, true).unwrap();
    let _ = g.send_sgi(1, 3 << 24 | 1).unwrap();

    let mut cpu_a = [0u64; 4];
    let r = g.flush(0, &mut cpu_a).unwrap();
    assert_eq!((r.used, r.overflow), (3, false));
    assert_eq!(
        entries(&cpu_a),
        [
            (TIMER, LrState::Pending),
            (UART, LrState::Pending),
            (3, LrState::Pending)
        ]
    );
    // The guest acknowledges all three on CPU A and is interrupted before
    // any EOI.
    for i in 0..3 {
        ack(&mut cpu_a, i);
    }
    g.sync(0, &cpu_a).unwrap();
    assert_eq!(
        bits(&g, 0, gicr::ISACTIVER0, gicd::ISACTIVER),
        (1 << TIMER | 1 << 3, 1 << (UART - 32))
    );
    // CPU A's list registers now belong to another vCPU.
    let _ = g.flush(1, &mut cpu_a).unwrap();

    // CPU B's list registers hold whatever ran there before.
    let mut cpu_b = [u64::MAX; 4];
    let r = g.flush(0, &mut cpu_b).unwrap();
    assert_eq!((r.used, r.overflow), (3, false));
    assert_eq!(
        entries(&cpu_b),
        [
            (TIMER, LrState::Active),
            (UART, LrState::Active),
            (3, LrState::Active)
        ]
    );
    assert_eq!(cpu_b[3], ListRegister::INVALID.bits());
    let lrs = cpu_b.map(ListRegister::from_bits);
    assert_eq!(
        lrs[..3].iter().map(|lr| lr.priority()).collect::<Vec<_>>(),
        [0x20, 0x40, 0x60],
        "priorities carried over"
    );
    assert!(
        lrs[0].eoi_maintenance(),
        "the level timer still asks for EOI maintenance"
    );
    assert!(!lrs[1].eoi_maintenance() && !lrs[2].eoi_maintenance());
    assert!(
        !g.pending_for(0),
        "the timer's line is high but it is active"
    );

    // The guest deactivates all three on CPU B; the timer handler
    // reprogrammed the timer, so its line is low by the exit.
    for i in 0..3 {
        eoi(&mut cpu_b, i);
    }
    let _ = g.set_level(id(TIMER), 0, false).unwrap();
    g.sync(0, &cpu_b).unwrap();
    assert_eq!(bits(&g, 0, gicr::ISACTIVER0, gicd::ISACTIVER), (0, 0));
    assert_eq!(bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR), (0, 0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "all done, none twice");
}

#[test]
fn pending_on_cpu_a_stays_pending_on_cpu_b() {
    let mut g = booted(2, 64);
    edge_spi(&mut g, 40);
    enable(&mut g, 0, 40, 0x10);
    enable(&mut g, 0, 41, 0x30); // level
    enable(&mut g, 0, 7, 0x20);
    let _ = g.inject_edge(id(40), 0).unwrap();
    let _ = g.set_level(id(41), 0, true).unwrap();
    let _ = g.send_sgi(1, 7 << 24 | 1).unwrap();

    let mut cpu_a = [0u64; 4];
    let _ = g.flush(0, &mut cpu_a).unwrap();
    assert_eq!(
        entries(&cpu_a),
        [
            (40, LrState::Pending),
            (7, LrState::Pending),
            (41, LrState::Pending)
        ]
    );
    let expected_pending = (1 << 7, 1 << (40 - 32) | 1 << (41 - 32));
    assert_eq!(
        bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR),
        expected_pending,
        "still pending while in CPU A's list registers"
    );
    // The guest runs with its priority mask up and takes none of them.
    g.sync(0, &cpu_a).unwrap();
    assert_eq!(bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR), expected_pending);
    assert!(g.pending_for(0));

    let mut cpu_b = [0x5555_5555_5555_5555u64; 4];
    let _ = g.flush(0, &mut cpu_b).unwrap();
    assert_eq!(cpu_b, cpu_a, "the same entries, bit for bit");

    let mut taken = handle_all(&mut cpu_b);
    let _ = g.set_level(id(41), 0, false).unwrap();
    g.sync(0, &cpu_b).unwrap();
    taken.sort_unstable();
    assert_eq!(taken, [7, 40, 41], "each delivered once");
    assert_eq!(bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR), (0, 0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn an_edge_while_active_comes_back_active_and_pending_on_cpu_b() {
    const PPI: u32 = 20;
    const SGI: u32 = 5;
    let mut g = booted(2, 64);
    edge_spi(&mut g, UART);
    edge_ppi(&mut g, 0, PPI);
    enable(&mut g, 0, UART, 0x40);
    enable(&mut g, 0, PPI, 0x50);
    enable(&mut g, 0, SGI, 0x60);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let _ = g.inject_edge(id(PPI), 0).unwrap();
    let _ = g.send_sgi(1, u64::from(SGI) << 24 | 1).unwrap();

    let (_, mut cpu_a) = flush(&mut g, 0, 4);
    for i in 0..3 {
        ack(&mut cpu_a, i);
    }
    // While the guest handles them on CPU A, the UART and the SGI fire
    // again; the vCPU holding them is kicked.
    assert_eq!(g.inject_edge(id(UART), 0).unwrap(), set(&[0]));
    assert_eq!(g.send_sgi(1, u64::from(SGI) << 24 | 1).unwrap(), set(&[0]));
    g.sync(0, &cpu_a).unwrap();
    // The PPI's new edge comes after the exit, before CPU B takes over.
    assert_eq!(g.inject_edge(id(PPI), 0).unwrap(), set(&[0]));
    let all = (1 << PPI | 1 << SGI, 1 << (UART - 32));
    assert_eq!(bits(&g, 0, gicr::ISACTIVER0, gicd::ISACTIVER), all);
    assert_eq!(bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR), all);
    assert!(
        !g.pending_for(0),
        "the new edges wait for the deactivations"
    );

    let (_, mut cpu_b) = flush(&mut g, 0, 4);
    assert_eq!(
        entries(&cpu_b),
        [
            (UART, LrState::PendingActive),
            (PPI, LrState::PendingActive),
            (SGI, LrState::PendingActive)
        ]
    );
    // EOI the first delivery, take the second, finish it.
    let taken = handle_all(&mut cpu_b);
    assert_eq!(taken, [UART, PPI, SGI]);
    g.sync(0, &cpu_b).unwrap();
    assert_eq!(bits(&g, 0, gicr::ISACTIVER0, gicd::ISACTIVER), (0, 0));
    assert_eq!(bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR), (0, 0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "two edges, two deliveries");
}

#[test]
fn a_level_reasserted_while_active_waits_for_the_eoi_maintenance() {
    let mut g = booted(1, 64);
    enable(&mut g, 0, 40, 0x40); // level, the reset configuration
    enable(&mut g, 0, TIMER, 0x20);
    let _ = g.set_level(id(40), 0, true).unwrap();
    let _ = g.set_level(id(TIMER), 0, true).unwrap();

    let (_, mut cpu_a) = flush(&mut g, 0, 4);
    ack_intid(&mut cpu_a, 40);
    ack_intid(&mut cpu_a, TIMER);
    // The device drops its line and raises it again while the guest still
    // handles the first assertion; the timer's line goes low and stays low.
    let _ = g.set_level(id(40), 0, false).unwrap();
    let _ = g.set_level(id(40), 0, true).unwrap();
    let _ = g.set_level(id(TIMER), 0, false).unwrap();
    g.sync(0, &cpu_a).unwrap();
    assert!(!g.pending_for(0));

    let (_, mut cpu_b) = flush(&mut g, 0, 4);
    // Active only: a level interrupt is never handed out active and
    // pending, its line is sampled again once the guest deactivates it.
    assert_eq!(
        entries(&cpu_b),
        [(TIMER, LrState::Active), (40, LrState::Active)]
    );
    for i in 0..2 {
        let lr = ListRegister::from_bits(cpu_b[i]);
        assert!(lr.eoi_maintenance(), "{lr:?}: deactivation must exit");
        eoi(&mut cpu_b, i);
    }
    // The EOI maintenance interrupt makes the vCPU exit.
    g.sync(0, &cpu_b).unwrap();
    assert_eq!(rr(&g, 0, gicr::ISACTIVER0), 0);
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
    assert!(g.pending_for(0), "line 40 is still high");

    let (r, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(r.used, 1, "the timer's line is low: not pending");
    assert_eq!(entries(&lrs), [(40, LrState::Pending)]);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    let _ = g.set_level(id(40), 0, false).unwrap();
    g.sync(0, &lrs).unwrap();
    assert!(!g.pending_for(0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn an_spi_taken_by_vcpu_0_is_not_given_to_vcpu_1_until_vcpu_0_synced() {
    let mut g = booted(2, 64);
    edge_spi(&mut g, 40);
    enable(&mut g, 0, 40, 0x40);
    route_any(&mut g, 40);
    assert_eq!(g.inject_edge(id(40), 0).unwrap(), set(&[0, 1]), "1-of-N");

    let (_, mut lrs0) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs0), [(40, LrState::Pending)]);
    assert!(!g.pending_for(1), "vCPU 0 holds it");
    assert_eq!(flush(&mut g, 1, 4).0.used, 0);
    g.sync(1, &[0; 4]).unwrap();

    // vCPU 0 acknowledges it; vCPU 1 is flushed again meanwhile.
    ack(&mut lrs0, 0);
    assert_eq!(flush(&mut g, 1, 4).0.used, 0, "still in vCPU 0's LRs");
    g.sync(1, &[0; 4]).unwrap();
    g.sync(0, &lrs0).unwrap();
    // Active on vCPU 0: only vCPU 0 can deactivate it.
    assert_eq!(flush(&mut g, 1, 4).0.used, 0, "active on vCPU 0");
    g.sync(1, &[0; 4]).unwrap();

    // A new edge: pending and active, still vCPU 0's to finish.
    assert_eq!(g.inject_edge(id(40), 0).unwrap(), set(&[0]));
    assert!(!g.pending_for(1));
    assert_eq!(flush(&mut g, 1, 4).0.used, 0);
    g.sync(1, &[0; 4]).unwrap();

    // vCPU 0, now on another physical CPU, deactivates the first edge and
    // exits before taking the second.
    let (_, mut lrs0) = flush(&mut g, 0, 2);
    assert_eq!(entries(&lrs0), [(40, LrState::PendingActive)]);
    eoi(&mut lrs0, 0);
    g.sync(0, &lrs0).unwrap();

    // Neither active nor held: either vCPU may take the second edge, once.
    assert!(g.pending_for(1) && g.pending_for(0));
    let (_, mut lrs1) = flush(&mut g, 1, 4);
    assert_eq!(entries(&lrs1), [(40, LrState::Pending)]);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "vCPU 1 holds it now");
    g.sync(0, &[0; 4]).unwrap();
    assert_eq!(handle_all(&mut lrs1), [40]);
    g.sync(1, &lrs1).unwrap();
    assert!(!g.pending_for(0) && !g.pending_for(1));
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
}

/// vCPU 0 with one interrupt in each state: SPI 40 active, SGI 2 active
/// and pending, the timer (level, line high) and SPI 41 pending.
fn one_of_each() -> Vgic {
    let mut g = booted(2, 64);
    edge_spi(&mut g, 40);
    edge_spi(&mut g, 41);
    enable(&mut g, 0, 40, 0x40);
    enable(&mut g, 0, 41, 0x50);
    enable(&mut g, 0, 2, 0x30);
    enable(&mut g, 0, TIMER, 0x20);
    let _ = g.inject_edge(id(40), 0).unwrap();
    let _ = g.send_sgi(1, 2 << 24 | 1).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack_intid(&mut lrs, 40);
    ack_intid(&mut lrs, 2);
    g.sync(0, &lrs).unwrap();
    let _ = g.send_sgi(1, 2 << 24 | 1).unwrap();
    let _ = g.set_level(id(TIMER), 0, true).unwrap();
    let _ = g.inject_edge(id(41), 0).unwrap();
    g
}

/// What [`one_of_each`] flushes into four list registers.
const ONE_OF_EACH: [(u32, LrState); 4] = [
    (2, LrState::PendingActive),
    (40, LrState::Active),
    (TIMER, LrState::Pending),
    (41, LrState::Pending),
];

#[test]
fn a_flush_never_synced_loses_nothing() {
    let mut g = one_of_each();
    let (_, cpu_a) = flush(&mut g, 0, 4);
    assert_eq!(entries(&cpu_a), ONE_OF_EACH);

    // vCPU 0 is preempted before it runs: CPU A's list registers go to
    // vCPU 1, never synced for vCPU 0. The SPIs stay vCPU 0's meanwhile.
    route_any(&mut g, 41);
    let (_, lrs1) = flush(&mut g, 1, 4);
    assert_eq!(entries(&lrs1), [], "41 is in vCPU 0's (stale) flush");
    g.sync(1, &lrs1).unwrap();
    // Edges meanwhile: 41 is pending already, so this one merges with it
    // (the guest never saw the first); 40 is active, so it pends anew.
    let _ = g.inject_edge(id(41), 0).unwrap();
    let _ = g.inject_edge(id(40), 0).unwrap();

    // vCPU 0 runs on CPU B: the flush takes the stale one back first.
    let (r, mut cpu_b) = flush(&mut g, 0, 4);
    assert_eq!((r.used, r.overflow), (4, false));
    assert_eq!(
        entries(&cpu_b),
        [
            (2, LrState::PendingActive),
            (40, LrState::PendingActive),
            (TIMER, LrState::Pending),
            (41, LrState::Pending),
        ]
    );
    let mut taken = handle_all(&mut cpu_b);
    let _ = g.set_level(id(TIMER), 0, false).unwrap();
    g.sync(0, &cpu_b).unwrap();
    taken.sort_unstable();
    assert_eq!(taken, [2, TIMER, 40, 41]);
    assert_eq!(bits(&g, 0, gicr::ISACTIVER0, gicd::ISACTIVER), (0, 0));
    assert_eq!(bits(&g, 0, gicr::ISPENDR0, gicd::ISPENDR), (0, 0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    assert_eq!(flush(&mut g, 1, 4).0.used, 0);
}

#[test]
fn list_registers_given_back_untouched_change_nothing() {
    // The other way to abandon a flush: sync the values as written (the
    // hypervisor read them back without entering the guest), or flush no
    // list registers at all.
    let mut g = one_of_each();
    let (_, first) = flush(&mut g, 0, 4);
    g.sync(0, &first).unwrap();
    let (_, second) = flush(&mut g, 0, 4);
    assert_eq!(second, first);
    let r = g.flush(0, &mut []).unwrap();
    assert_eq!((r.used, r.overflow), (0, true));
    g.sync(0, &[]).unwrap();
    let (_, third) = flush(&mut g, 0, 4);
    assert_eq!(third, first);
    assert_eq!(entries(&third), ONE_OF_EACH);
}

#[test]
fn icpendr_on_an_abandoned_flush_is_not_undone_by_the_take_back() {
    let mut g = one_of_each();
    let _ = flush(&mut g, 0, 4);
    let (off, mask) = bit(gicd::ICPENDR, 41);
    let _ = dw(&mut g, off, mask);
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), ONE_OF_EACH[..3]);
}
