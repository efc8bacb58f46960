//! The live sets against full scans: `flush`, `sync` and `pending_for`
//! visit only the live interrupts, so the sets must hold exactly those,
//! and choosing from them must give what choosing from every interrupt
//! gives. [`check_live_sets`] runs after every step of the random-traffic
//! property tests.

use super::*;
use crate::bitmap::Bitmap;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// Checks the model's live sets and list register bookkeeping against a
/// full scan of its interrupts.
pub(super) fn check_live_sets(g: &Vgic) -> Result<(), TestCaseError> {
    for (vcpu, state) in g.vcpus.iter().enumerate() {
        for (intid, irq) in state.private.iter().enumerate() {
            prop_assert_eq!(
                state.live.contains(intid),
                irq.live(),
                "vCPU {} INTID {}: live bit wrong",
                vcpu,
                intid
            );
        }
    }
    for (index, spi) in g.spis.iter().enumerate() {
        prop_assert_eq!(
            g.live_spis.contains(index),
            spi.irq.live(),
            "SPI {}: live bit wrong",
            index
        );
    }
    for vcpu in 0..g.vcpus.len() {
        check_in_lrs(g, vcpu)?;
        for cap in [0, 1, 2, 4, crate::MAX_LIST_REGISTERS] {
            let mut keys = vec![0; cap];
            let mut best = crate::Best::new(&mut keys);
            g.select(vcpu, &mut best);
            let (chosen, offered) = select_by_scan(g, vcpu, cap);
            prop_assert_eq!(
                best.chosen().collect::<Vec<_>>(),
                chosen,
                "vCPU {} cap {}",
                vcpu,
                cap
            );
            prop_assert_eq!(best.offered, offered, "vCPU {} cap {}", vcpu, cap);
        }
        let highest = highest_pending_by_scan(g, vcpu);
        prop_assert_eq!(g.highest_pending_priority(vcpu), highest, "vCPU {}", vcpu);
        prop_assert_eq!(g.pending_for(vcpu), highest.is_some(), "vCPU {}", vcpu);
    }
    Ok(())
}

/// What `flush` would choose for `vcpu`, looking at every interrupt and
/// sorting: the best `cap` keys and how many candidates there were.
fn select_by_scan(g: &Vgic, vcpu: usize, cap: usize) -> (Vec<crate::Key>, usize) {
    let state = &g.vcpus[vcpu];
    let mut keys: Vec<_> = (0..IntId::FIRST_SPI as usize)
        .filter_map(|intid| g.private_candidate(state, intid))
        .chain((0..g.spis.len()).filter_map(|index| g.spi_candidate(vcpu, index)))
        .collect();
    keys.sort();
    let offered = keys.len();
    keys.truncate(cap);
    (keys, offered)
}

/// `highest_pending_priority`, looking at every interrupt.
fn highest_pending_by_scan(g: &Vgic, vcpu: usize) -> Option<u8> {
    let state = &g.vcpus[vcpu];
    (0..IntId::FIRST_SPI as usize)
        .filter_map(|intid| g.private_signalable(state, intid))
        .chain((0..g.spis.len()).filter_map(|index| g.spi_signalable(vcpu, index)))
        .min()
}

/// The interrupts `vcpu`'s recorded list registers hold are exactly those
/// marked in flight on it.
fn check_in_lrs(g: &Vgic, vcpu: usize) -> Result<(), TestCaseError> {
    let state = &g.vcpus[vcpu];
    let recorded: BTreeSet<u32> = state.in_lrs[..state.in_lr_count]
        .iter()
        .map(|intid| intid.get())
        .collect();
    prop_assert_eq!(recorded.len(), state.in_lr_count, "an INTID twice");
    let on_vcpu = |irq: &crate::irq::Irq| irq.inflight.is_some_and(|f| f.vcpu == vcpu);
    let in_flight: BTreeSet<u32> = (0..IntId::FIRST_SPI)
        .filter(|&intid| on_vcpu(&state.private[intid as usize]))
        .chain(
            (0..g.spis.len())
                .filter(|&index| on_vcpu(&g.spis[index].irq))
                .map(|index| IntId::FIRST_SPI + index as u32),
        )
        .collect();
    prop_assert_eq!(recorded, in_flight, "vCPU {}", vcpu);
    Ok(())
}

#[test]
fn the_last_spi_and_the_first_are_found() {
    let mut g = booted(2, crate::MAX_SPIS);
    let last = IntId::FIRST_SPI + crate::MAX_SPIS - 1;
    for (intid, priority) in [(last, 0x10), (32, 0x20), (95, 0x10), (96, 0x08)] {
        enable(&mut g, 0, intid, priority);
        route(&mut g, intid, 1);
        let _ = g.inject_edge(id(intid), 0).unwrap();
    }
    assert_eq!(g.highest_pending_priority(0), None);
    assert_eq!(g.highest_pending_priority(1), Some(0x08));
    let (r, lrs) = flush(&mut g, 1, 4);
    assert_eq!(r.used, 4);
    let order: Vec<u32> = entries(&lrs).into_iter().map(|(intid, _)| intid).collect();
    assert_eq!(order, [96, 95, last, 32]);
    g.sync(1, &lrs).unwrap();
    check_live_sets(&g).unwrap();
}

#[test]
fn nothing_live_flushes_nothing_and_invalidates_every_list_register() {
    let mut g = booted(2, 64);
    // Enabled and routed, but idle.
    enable(&mut g, 0, UART, 0x80);
    enable(&mut g, 0, TIMER, 0x80);
    let (r, lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        r,
        FlushResult {
            used: 0,
            overflow: false
        }
    );
    assert_eq!(lrs, [0; 4]);
    assert!(!g.pending_for(0));
    check_live_sets(&g).unwrap();
}

proptest! {
    #[test]
    fn bitmap_agrees_with_a_set(
        ops in proptest::collection::vec((0usize..200, any::<bool>()), 0..100)
    ) {
        // Three words: room for 192 indices, and some past the end.
        let mut bitmap = Bitmap::<3>::EMPTY;
        let mut model = BTreeSet::new();
        for (index, member) in ops {
            bitmap.set(index, member);
            if member && index < 192 {
                model.insert(index);
            } else {
                model.remove(&index);
            }
            prop_assert_eq!(
                bitmap.iter().collect::<Vec<_>>(),
                model.iter().copied().collect::<Vec<_>>()
            );
            prop_assert_eq!(bitmap.is_empty(), model.is_empty());
            for index in 0..200 {
                prop_assert_eq!(bitmap.contains(index), model.contains(&index));
            }
        }
    }
}
