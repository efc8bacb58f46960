//! More pending interrupts than list registers: `flush` reports the
//! overflow, hands out the best ones (active first, then by priority, then
//! by INTID), and the rest follow in that order as the guest drains the
//! list registers. QEMU's GICv3 CPU interface has four list registers.

use super::*;

/// QEMU's `ICH_VTR_EL2.ListRegs` + 1.
const QEMU_LRS: usize = 4;

/// A priority per INTID with ties and no relation to the INTID's order.
fn priority(intid: u32) -> u8 {
    ((intid * 7 + 3) % 5) as u8 * 0x20
}

/// Makes 20 interrupts pending for vCPU 0 of `g` (5 SGIs sent by vCPU 1,
/// 4 PPIs, 11 SPIs), each enabled at [`priority`]. Returns their INTIDs in
/// the order they must be delivered.
fn twenty_pending(g: &mut Vgic) -> Vec<u32> {
    let sgis = 0..5;
    let ppis = 16..20;
    let spis = 32..43;
    let all: Vec<u32> = sgis
        .clone()
        .chain(ppis.clone())
        .chain(spis.clone())
        .collect();
    assert_eq!(all.len(), 20);
    for &intid in &all {
        enable(g, 0, intid, priority(intid));
    }
    for sgi in sgis {
        let _ = g.send_sgi(1, u64::from(sgi) << 24 | 1).unwrap();
    }
    for intid in ppis.chain(spis) {
        let _ = g.inject_edge(id(intid), 0).unwrap();
    }
    let mut order = all;
    order.sort_by_key(|&intid| (priority(intid), intid));
    order
}

/// The (INTID, state) entries `intids` would make, all in `state`.
fn all_in(intids: &[u32], state: LrState) -> Vec<(u32, LrState)> {
    intids.iter().map(|&intid| (intid, state)).collect()
}

/// Acknowledges and EOIs every pending entry of `lrs`; returns the INTIDs.
fn take_all(lrs: &mut [u64]) -> Vec<u32> {
    let mut taken = Vec::new();
    for i in 0..lrs.len() {
        if ListRegister::from_bits(lrs[i]).state() == LrState::Pending {
            taken.push(ListRegister::from_bits(lrs[i]).vintid());
            ack(lrs, i);
            eoi(lrs, i);
        }
    }
    taken
}

#[test]
fn twenty_pending_go_through_four_list_registers_in_priority_order() {
    let mut g = booted(2, 64);
    let order = twenty_pending(&mut g);
    let mut delivered = Vec::new();
    for (round, chunk) in order.chunks(QEMU_LRS).enumerate() {
        assert_eq!(
            g.highest_pending_priority(0),
            Some(priority(chunk[0])),
            "round {round}"
        );
        let (r, mut lrs) = flush(&mut g, 0, QEMU_LRS);
        let left = order.len() - delivered.len();
        assert_eq!(
            r,
            FlushResult {
                used: QEMU_LRS,
                overflow: left > QEMU_LRS
            },
            "round {round}: {left} left"
        );
        assert_eq!(
            entries(&lrs),
            all_in(chunk, LrState::Pending),
            "round {round}"
        );
        for (&bits, &intid) in lrs.iter().zip(chunk) {
            assert_eq!(ListRegister::from_bits(bits).priority(), priority(intid));
        }
        delivered.extend(take_all(&mut lrs));
        // The underflow maintenance interrupt (ICH_HCR_EL2.UIE, asked for
        // because of the overflow) makes the vCPU exit.
        g.sync(0, &lrs).unwrap();
    }
    assert_eq!(delivered, order, "each once, best first");
    assert!(!g.pending_for(0));
    assert_eq!(
        flush(&mut g, 0, QEMU_LRS).0,
        FlushResult {
            used: 0,
            overflow: false
        }
    );
    assert_eq!(rr(&g, 0, gicr::ISPENDR0), 0);
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0);
}

#[test]
fn an_urgent_arrival_goes_ahead_of_the_backlog() {
    let mut g = booted(2, 64);
    let order = twenty_pending(&mut g);
    let (_, mut lrs) = flush(&mut g, 0, QEMU_LRS);
    let _ = take_all(&mut lrs);
    // While the first four are handled, SPI 60 arrives at a better priority
    // than anything waiting, and SPI 61 at the worst.
    enable(&mut g, 0, 60, 0x00);
    enable(&mut g, 0, 61, 0xf8);
    let _ = g.inject_edge(id(60), 0).unwrap();
    let _ = g.inject_edge(id(61), 0).unwrap();
    g.sync(0, &lrs).unwrap();

    let (r, lrs) = flush(&mut g, 0, QEMU_LRS);
    assert!(r.overflow);
    let mut expected = vec![60];
    expected.extend(&order[QEMU_LRS..2 * QEMU_LRS - 1]);
    assert_eq!(entries(&lrs), all_in(&expected, LrState::Pending));
    g.sync(0, &lrs).unwrap();

    // Drain the rest: 61 comes last.
    let mut delivered = Vec::new();
    for _ in 0..10 {
        let (_, mut lrs) = flush(&mut g, 0, QEMU_LRS);
        delivered.extend(take_all(&mut lrs));
        g.sync(0, &lrs).unwrap();
    }
    let mut rest = vec![60];
    rest.extend(&order[QEMU_LRS..]);
    rest.push(61);
    assert_eq!(delivered, rest);
}

#[test]
fn a_partly_drained_file_keeps_the_rest_in_order() {
    let mut g = booted(2, 64);
    let order = twenty_pending(&mut g);
    let mut next = 0; // index in `order` of the best one not yet delivered
    let mut delivered = Vec::new();
    let mut still_active: Vec<u32> = Vec::new();
    for round in 0.. {
        assert!(round < 20, "no progress");
        let (r, mut lrs) = flush(&mut g, 0, QEMU_LRS);
        if r.used == 0 {
            break;
        }
        // Active ones first (so the guest can finish them), then the best
        // pending ones.
        let fresh = QEMU_LRS - still_active.len();
        let mut expected = all_in(&still_active, LrState::Active);
        let upto = (next + fresh).min(order.len());
        expected.extend(all_in(&order[next..upto], LrState::Pending));
        assert_eq!(entries(&lrs), expected, "round {round}");
        assert_eq!(r.overflow, order.len() - next > fresh, "round {round}");

        // The guest finishes what was active, takes the best pending one and
        // EOIs it, takes the second and is interrupted while handling it,
        // and leaves the rest pending (its running priority masks them).
        let first = still_active.len();
        for i in 0..first {
            eoi(&mut lrs, i);
        }
        still_active.clear();
        let pending: Vec<usize> = (first..r.used)
            .filter(|&i| ListRegister::from_bits(lrs[i]).state() == LrState::Pending)
            .collect();
        if let Some(&i) = pending.first() {
            ack(&mut lrs, i);
            eoi(&mut lrs, i);
            delivered.push(order[next]);
            next += 1;
        }
        if let Some(&i) = pending.get(1) {
            ack(&mut lrs, i);
            delivered.push(order[next]);
            still_active.push(order[next]);
            next += 1;
        }
        g.sync(0, &lrs).unwrap();
    }
    assert_eq!(delivered, order);
    assert!(still_active.is_empty());
    assert_eq!(rr(&g, 0, gicr::ISACTIVER0), 0);
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
}

#[test]
fn a_file_full_of_active_interrupts_holds_the_pending_ones_back() {
    let mut g = booted(2, 64);
    let order = twenty_pending(&mut g);
    // The guest takes all four and nests: none is deactivated yet.
    let (_, mut lrs) = flush(&mut g, 0, QEMU_LRS);
    for i in 0..QEMU_LRS {
        ack(&mut lrs, i);
    }
    g.sync(0, &lrs).unwrap();
    let (r, mut lrs) = flush(&mut g, 0, QEMU_LRS);
    assert_eq!(
        r,
        FlushResult {
            used: QEMU_LRS,
            overflow: true
        }
    );
    assert_eq!(entries(&lrs), all_in(&order[..QEMU_LRS], LrState::Active));
    assert_eq!(
        g.highest_pending_priority(0),
        Some(priority(order[QEMU_LRS])),
        "the others still wait"
    );
    for i in 0..QEMU_LRS {
        eoi(&mut lrs, i);
    }
    g.sync(0, &lrs).unwrap();
    let (_, lrs) = flush(&mut g, 0, QEMU_LRS);
    assert_eq!(
        entries(&lrs),
        all_in(&order[QEMU_LRS..2 * QEMU_LRS], LrState::Pending)
    );
}

#[test]
fn a_cpu_with_fewer_list_registers_takes_the_active_ones_first() {
    // Migration onto a CPU whose file is smaller than the one the guest
    // last ran on (not a QEMU configuration, but nothing may be lost).
    let mut g = booted(2, 64);
    let order = twenty_pending(&mut g);
    let (_, mut lrs) = flush(&mut g, 0, QEMU_LRS);
    for i in 0..QEMU_LRS {
        ack(&mut lrs, i);
    }
    g.sync(0, &lrs).unwrap();
    let (r, mut small) = flush(&mut g, 0, 2);
    assert_eq!(
        r,
        FlushResult {
            used: 2,
            overflow: true
        }
    );
    assert_eq!(entries(&small), all_in(&order[..2], LrState::Active));
    eoi(&mut small, 0);
    eoi(&mut small, 1);
    g.sync(0, &small).unwrap();
    let (_, small) = flush(&mut g, 0, 2);
    assert_eq!(entries(&small), all_in(&order[2..4], LrState::Active));
}

#[test]
fn twenty_spis_shared_one_of_n_are_each_delivered_once() {
    // Two vCPUs drain 20 1-of-N SPIs together: each flush takes the best
    // ones no other vCPU holds, and none goes to both.
    let mut g = booted(2, 64);
    let spis: Vec<u32> = (32..52).collect();
    for &intid in &spis {
        enable(&mut g, 0, intid, priority(intid));
        let _ = g
            .dist_write(gicd::IROUTER + 8 * u64::from(intid), 8, 1 << 31)
            .unwrap();
        let _ = g.inject_edge(id(intid), 0).unwrap();
    }
    let mut order = spis.clone();
    order.sort_by_key(|&intid| (priority(intid), intid));

    let mut delivered = Vec::new();
    for (round, chunk) in order.chunks(2 * QEMU_LRS).enumerate() {
        let (r0, mut lrs0) = flush(&mut g, 0, QEMU_LRS);
        let (r1, mut lrs1) = flush(&mut g, 1, QEMU_LRS);
        let left = order.len() - delivered.len();
        assert_eq!(r0.overflow, left > QEMU_LRS, "round {round}");
        assert_eq!(r1.overflow, left > 2 * QEMU_LRS, "round {round}");
        let (first, second) = chunk.split_at(chunk.len().min(QEMU_LRS));
        assert_eq!(entries(&lrs0), all_in(first, LrState::Pending));
        assert_eq!(entries(&lrs1), all_in(second, LrState::Pending));
        delivered.extend(take_all(&mut lrs0));
        delivered.extend(take_all(&mut lrs1));
        g.sync(1, &lrs1).unwrap();
        g.sync(0, &lrs0).unwrap();
    }
    assert_eq!(delivered, order);
    assert!(!g.pending_for(0) && !g.pending_for(1));
}
