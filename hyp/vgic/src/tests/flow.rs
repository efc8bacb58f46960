//! Interrupt life cycles through flush and sync.

use super::*;
use crate::Error;

/// A VM with the UART SPI edge-triggered, enabled and routed to vCPU 0.
fn with_edge_uart(vcpus: usize) -> Vgic {
    let mut g = booted(vcpus, 64);
    let _ = dw(&mut g, gicd::ICFGR + 8, 0b10 << 2); // SPI 33 edge
    enable(&mut g, 0, UART, 0xa0);
    g
}

#[test]
fn edge_spi_goes_pending_active_and_done() {
    let mut g = with_edge_uart(1);
    assert!(!g.pending_for(0));
    assert_eq!(g.inject_edge(id(UART), 0).unwrap(), set(&[0]));
    assert!(g.pending_for(0));

    let (r, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        r,
        crate::FlushResult {
            used: 1,
            overflow: false
        }
    );
    let lr = ListRegister::from_bits(lrs[0]);
    assert_eq!(
        (
            lr.vintid(),
            lr.priority(),
            lr.group1(),
            lr.hw(),
            lr.eoi_maintenance()
        ),
        (UART, 0xa0, true, false, false)
    );
    assert_eq!(lr.state(), LrState::Pending);
    assert_eq!(&lrs[1..], [0, 0, 0], "the rest invalid");

    // The guest acknowledges it (IAR) and exits before EOI.
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 1 << 1);
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0);
    assert!(!g.pending_for(0));

    // Still active: back in a list register so the guest can EOI it.
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(UART, LrState::Active)]);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "done");
}

#[test]
fn unacknowledged_pending_survives_a_run() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        dr(&g, gicd::ISPENDR + 4),
        1 << 1,
        "shown pending while in an LR"
    );
    g.sync(0, &lrs).unwrap();
    assert!(g.pending_for(0));
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(UART, LrState::Pending)]);
}

#[test]
fn a_new_edge_while_active_is_delivered_active_and_pending() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    // The device raises it again while the guest handles it (the vCPU is
    // running: kick it).
    assert_eq!(g.inject_edge(id(UART), 0).unwrap(), set(&[0]));
    g.sync(0, &lrs).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(UART, LrState::PendingActive)]);
    eoi(&mut lrs, 0);
    assert_eq!(entries(&lrs), [(UART, LrState::Pending)]);
    g.sync(0, &lrs).unwrap();
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 1 << 1);
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
}

#[test]
fn level_line_still_high_after_eoi_pends_again() {
    let mut g = booted(1, 64);
    enable(&mut g, 0, TIMER, 0xa0);
    assert_eq!(g.set_level(id(TIMER), 0, true).unwrap(), set(&[0]));

    let (_, mut lrs) = flush(&mut g, 0, 4);
    let lr = ListRegister::from_bits(lrs[0]);
    assert_eq!((lr.vintid(), lr.state()), (TIMER, LrState::Pending));
    assert!(
        lr.eoi_maintenance(),
        "level: a maintenance interrupt on EOI"
    );

    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    // Active with the line high: delivered active only, never active and
    // pending, so the line is sampled again after the EOI.
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(TIMER, LrState::Active)]);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();

    // The guest did not reprogram the timer: the line is still high.
    assert!(g.pending_for(0));
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(TIMER, LrState::Pending)]);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    // This time the handler lowered the line (timer reprogrammed).
    let _ = g.set_level(id(TIMER), 0, false).unwrap();
    g.sync(0, &lrs).unwrap();
    assert!(!g.pending_for(0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn a_level_line_lowered_while_in_a_list_register_is_not_pending_after_sync() {
    let mut g = booted(1, 64);
    enable(&mut g, 0, UART, 0x80);
    let _ = g.set_level(id(UART), 0, true).unwrap();
    let (_, lrs) = flush(&mut g, 0, 4);
    let kick = g.set_level(id(UART), 0, false).unwrap();
    assert_eq!(kick, set(&[0]), "the holder should drop its stale entry");
    g.sync(0, &lrs).unwrap();
    assert!(!g.pending_for(0));
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0);
}

#[test]
fn edge_configured_line_latches_on_the_rising_edge_only() {
    let mut g = with_edge_uart(1);
    let _ = g.set_level(id(UART), 0, true).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    let _ = g.set_level(id(UART), 0, true).unwrap();
    assert!(!g.pending_for(0), "still high is no new edge");
    let _ = g.set_level(id(UART), 0, false).unwrap();
    let _ = g.set_level(id(UART), 0, true).unwrap();
    assert!(g.pending_for(0));
}

#[test]
fn more_pending_than_list_registers_overflows_then_delivers_the_rest() {
    let mut g = booted(1, 64);
    for (i, intid) in (40..46).enumerate() {
        enable(&mut g, 0, intid, 0x10 * (6 - i as u8));
        let _ = g.inject_edge(id(intid), 0).unwrap();
    }
    let (r, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        r,
        crate::FlushResult {
            used: 4,
            overflow: true
        }
    );
    // Priorities 0x60, 0x50, ... 0x10: the highest (lowest values) first.
    let got: Vec<u32> = entries(&lrs).iter().map(|e| e.0).collect();
    assert_eq!(got, [45, 44, 43, 42]);
    for i in 0..4 {
        ack(&mut lrs, i);
        eoi(&mut lrs, i);
    }
    g.sync(0, &lrs).unwrap();
    let (r, lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        r,
        crate::FlushResult {
            used: 2,
            overflow: false
        }
    );
    assert_eq!(
        entries(&lrs),
        [(41, LrState::Pending), (40, LrState::Pending)]
    );
}

#[test]
fn order_is_active_first_then_priority_then_intid() {
    let mut g = booted(1, 64);
    enable(&mut g, 0, 40, 0x80);
    enable(&mut g, 0, 41, 0x40);
    enable(&mut g, 0, 42, 0x40);
    enable(&mut g, 0, 5, 0x40);
    // SPI 50 is active (disabled even): it must come first.
    let (off, mask) = bit(gicd::ISACTIVER, 50);
    let _ = dw(&mut g, off, mask);
    let _ = g.dist_write(gicd::IPRIORITYR + 50, 1, 0xf0).unwrap();
    for intid in [40, 42, 41, 5] {
        let _ = g.inject_edge(id(intid), 0).unwrap();
    }
    let (r, lrs) = flush(&mut g, 0, 8);
    assert!(!r.overflow);
    assert_eq!(
        entries(&lrs),
        [
            (50, LrState::Active),
            (5, LrState::Pending),
            (41, LrState::Pending),
            (42, LrState::Pending),
            (40, LrState::Pending),
        ]
    );
    assert_eq!(g.highest_pending_priority(0), Some(0x40));
}

#[test]
fn zero_list_registers_only_report_overflow() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let r = g.flush(0, &mut []).unwrap();
    assert_eq!(
        r,
        crate::FlushResult {
            used: 0,
            overflow: true
        }
    );
    g.sync(0, &[]).unwrap();
    assert!(g.pending_for(0));
}

#[test]
fn nothing_is_delivered_while_disabled_group_0_or_distributor_off() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();

    let (off, mask) = bit(gicd::ICENABLER, UART);
    let _ = dw(&mut g, off, mask);
    assert!(!g.pending_for(0));
    assert_eq!(
        flush(&mut g, 0, 4).0,
        crate::FlushResult {
            used: 0,
            overflow: false
        }
    );
    let (off, mask) = bit(gicd::ISENABLER, UART);
    assert_eq!(
        dw(&mut g, off, mask).kick,
        set(&[0]),
        "enabling a pending one kicks"
    );

    let _ = dw(&mut g, gicd::IGROUPR + 4, 0);
    assert!(!g.pending_for(0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    let _ = dw(&mut g, gicd::IGROUPR + 4, 0xffff_ffff);

    let _ = dw(&mut g, gicd::CTLR, 0);
    assert!(!g.pending_for(0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    let _ = dw(&mut g, gicd::CTLR, 2);
    assert_eq!(entries(&flush(&mut g, 0, 4).1), [(UART, LrState::Pending)]);
}

#[test]
fn an_active_interrupt_is_placed_even_when_disabled() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    let _ = dw(&mut g, gicd::CTLR, 0);
    let (off, mask) = bit(gicd::ICENABLER, UART);
    let _ = dw(&mut g, off, mask);
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        entries(&lrs),
        [(UART, LrState::Active)],
        "so the guest can EOI it"
    );
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
}

#[test]
fn migration_keeps_active_and_pending_state() {
    // vCPU 0 runs on physical CPU A, exits, and is next run on CPU B: the
    // two list register files share nothing.
    let mut g = with_edge_uart(2);
    enable(&mut g, 0, TIMER, 0x20);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let _ = g.set_level(id(TIMER), 0, true).unwrap();
    enable(&mut g, 0, 2, 0x40);
    let _ = g.send_sgi(1, 2 << 24 | 1).unwrap(); // SGI 2 to vCPU 0

    let mut cpu_a = [0u64; 4];
    let r = g.flush(0, &mut cpu_a).unwrap();
    assert_eq!(r.used, 3);
    assert_eq!(
        entries(&cpu_a),
        [
            (TIMER, LrState::Pending),
            (2, LrState::Pending),
            (UART, LrState::Pending)
        ]
    );
    // On CPU A the guest acknowledges the timer and the SGI, leaves the UART.
    ack(&mut cpu_a, 0);
    ack(&mut cpu_a, 1);
    g.sync(0, &cpu_a).unwrap();
    // CPU A's list registers go to another vCPU meanwhile.
    let _ = g.flush(1, &mut cpu_a).unwrap();

    let mut cpu_b = [0xffff_ffff_ffff_ffffu64; 4];
    let r = g.flush(0, &mut cpu_b).unwrap();
    assert_eq!(r.used, 3);
    assert_eq!(
        entries(&cpu_b),
        [
            (TIMER, LrState::Active),
            (2, LrState::Active),
            (UART, LrState::Pending)
        ]
    );
    assert_eq!(cpu_b[3], 0);
    // The guest finishes on CPU B.
    eoi(&mut cpu_b, 0);
    eoi(&mut cpu_b, 1);
    ack(&mut cpu_b, 2);
    eoi(&mut cpu_b, 2);
    let _ = g.set_level(id(TIMER), 0, false).unwrap();
    g.sync(0, &cpu_b).unwrap();
    assert_eq!(rr(&g, 0, gicr::ISACTIVER0), 0);
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
    assert!(!g.pending_for(0));
}

#[test]
fn an_spi_in_one_vcpus_list_register_is_not_given_to_another() {
    let mut g = with_edge_uart(2);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, lrs0) = flush(&mut g, 0, 4);
    // The guest moves it to vCPU 1 while vCPU 0 holds it.
    let e = g
        .dist_write(gicd::IROUTER + 8 * u64::from(UART), 8, 1)
        .unwrap();
    assert!(e.kick.contains(0), "the holder is kicked to give it back");
    assert_eq!(flush(&mut g, 1, 4).0.used, 0, "never in two list registers");
    g.sync(1, &[0; 4]).unwrap();
    g.sync(0, &lrs0).unwrap();
    let (_, lrs1) = flush(&mut g, 1, 4);
    assert_eq!(entries(&lrs1), [(UART, LrState::Pending)]);
}

#[test]
fn an_active_spi_stays_with_its_vcpu_when_rerouted() {
    let mut g = with_edge_uart(2);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    route(&mut g, UART, 1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    assert_eq!(flush(&mut g, 1, 4).0.used, 0, "active on vCPU 0");
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(UART, LrState::PendingActive)]);
    // Deactivated on vCPU 0: the pending part is left for vCPU 1.
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    // The guest on vCPU 0 did not take the new edge; it came back.
    assert!(g.pending_for(1));
    assert!(!g.pending_for(0));
}

#[test]
fn icpendr_while_in_a_list_register_cancels_the_pending_state() {
    let mut g = with_edge_uart(2);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, lrs) = flush(&mut g, 0, 4);
    let (off, mask) = bit(gicd::ICPENDR, UART);
    let e = dw(&mut g, off, mask);
    assert_eq!(e.kick, set(&[0]));
    assert_eq!(dr(&g, gicd::ISPENDR + 4), 0);
    g.sync(0, &lrs).unwrap();
    assert!(!g.pending_for(0));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn icactiver_while_in_a_list_register_is_not_undone_by_sync() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    let (_, lrs) = flush(&mut g, 0, 4);
    let (off, mask) = bit(gicd::ICACTIVER, UART);
    let _ = dw(&mut g, off, mask);
    g.sync(0, &lrs).unwrap();
    assert_eq!(dr(&g, gicd::ISACTIVER + 4), 0);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn flushing_again_without_sync_takes_the_list_registers_back() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, first) = flush(&mut g, 0, 4);
    let (_, second) = flush(&mut g, 0, 4);
    assert_eq!(first, second);
    assert_eq!(entries(&second), [(UART, LrState::Pending)]);
}

#[test]
fn pending_for_ignores_active_and_other_vcpus() {
    let mut g = with_edge_uart(2);
    enable(&mut g, 1, TIMER, 0x40);
    let _ = g.set_level(id(TIMER), 1, true).unwrap();
    assert!(!g.pending_for(0));
    assert!(g.pending_for(1));
    assert_eq!(g.highest_pending_priority(1), Some(0x40));
    assert!(!g.pending_for(7), "no such vCPU");
    let (_, mut lrs) = flush(&mut g, 1, 4);
    assert!(g.pending_for(1), "still pending in its list register");
    ack(&mut lrs, 0);
    g.sync(1, &lrs).unwrap();
    assert!(
        !g.pending_for(1),
        "active: its pending part waits for the EOI"
    );
}

#[test]
fn sync_reports_list_registers_that_do_not_match() {
    let mut g = with_edge_uart(1);
    let _ = g.inject_edge(id(UART), 0).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    lrs[0] = ListRegister::new(id(40), 0, LrState::Invalid).bits();
    lrs[2] = ListRegister::new(id(41), 0, LrState::Pending).bits();
    assert_eq!(
        g.sync(0, &lrs),
        Err(Error::LrMismatch {
            lr: 0,
            expected: id(UART)
        })
    );
    assert!(g.pending_for(0), "taken back as it was flushed");
    let _ = flush(&mut g, 0, 4);
    assert_eq!(
        g.sync(0, &[]),
        Err(Error::LrMismatch {
            lr: 0,
            expected: id(UART)
        })
    );
    assert!(g.pending_for(0));
    let mut lrs = [0u64; 2];
    lrs[1] = ListRegister::new(id(41), 0, LrState::Active).bits();
    assert_eq!(g.sync(0, &lrs), Err(Error::UnexpectedLr { lr: 1 }));
}

#[test]
fn calls_for_missing_vcpus_or_spis_are_errors() {
    let mut g = booted(2, 64);
    assert_eq!(
        g.set_level(id(TIMER), 2, true),
        Err(Error::NoSuchVcpu { vcpu: 2 })
    );
    assert_eq!(
        g.inject_edge(id(96), 0),
        Err(Error::NoSuchIntId { intid: id(96) })
    );
    assert_eq!(g.flush(2, &mut [0; 4]), Err(Error::NoSuchVcpu { vcpu: 2 }));
    assert_eq!(g.sync(9, &[]), Err(Error::NoSuchVcpu { vcpu: 9 }));
    // An SPI ignores the vCPU argument.
    assert!(g.inject_edge(id(40), usize::MAX).is_ok());
}

#[test]
fn more_list_registers_than_the_architecture_has_are_left_invalid() {
    let mut g = booted(1, 64);
    for intid in 32..64 {
        enable(&mut g, 0, intid, 0);
        let _ = g.inject_edge(id(intid), 0).unwrap();
    }
    let (r, lrs) = flush(&mut g, 0, 20);
    assert_eq!(
        r,
        crate::FlushResult {
            used: 16,
            overflow: true
        }
    );
    assert_eq!(&lrs[16..], [0; 4]);
    g.sync(0, &lrs).unwrap();
}
