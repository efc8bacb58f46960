//! Hardware-linked SPIs: a passthrough INTx taken as physical SPI 72 and
//! handed to the guest as virtual SPI 40 with HW = 1.

use super::*;
use crate::{Error, PhysIntId};

/// The guest's SPI for the passthrough device.
const INTX: u32 = 40;
/// The physical SPI it is linked to.
const PINTX: u32 = 72;

fn pid(n: u32) -> PhysIntId {
    PhysIntId::new(n).unwrap()
}

/// A VM with [`INTX`] linked to [`PINTX`], enabled at priority 0x80,
/// routed to vCPU 0 (the reset routing), level-triggered (the reset
/// configuration, as the guest's device tree says).
fn linked(vcpus: usize) -> Vgic {
    let mut g = booted(vcpus, 64);
    g.link_hw(id(INTX), pid(PINTX)).unwrap();
    enable(&mut g, 0, INTX, 0x80);
    g
}

/// Whether the model holds the physical SPI of `intid` active.
fn held(g: &Vgic, intid: u32) -> bool {
    g.spis[(intid - 32) as usize].hw.unwrap().held
}

/// Every physical SPI the model asks the hypervisor to deactivate now.
fn released(g: &mut Vgic) -> Vec<u32> {
    std::iter::from_fn(|| g.take_hw_deactivation())
        .map(PhysIntId::get)
        .collect()
}

fn pending_bit(g: &Vgic, intid: u32) -> bool {
    let (off, mask) = bit(gicd::ISPENDR, intid);
    dr(g, off) & mask != 0
}

fn active_bit(g: &Vgic, intid: u32) -> bool {
    let (off, mask) = bit(gicd::ISACTIVER, intid);
    dr(g, off) & mask != 0
}

fn write_bit(g: &mut Vgic, base: u64, intid: u32) -> Effects {
    let (off, mask) = bit(base, intid);
    dw(g, off, mask)
}

#[test]
fn a_linked_spi_goes_out_with_hw_and_its_pintid_and_no_eoi_maintenance() {
    let mut g = linked(1);
    assert_eq!(g.hw_link(id(INTX)), Some(pid(PINTX)));
    assert_eq!(g.hw_links().collect::<Vec<_>>(), [(id(INTX), pid(PINTX))]);
    assert!(!held(&g, INTX));

    assert_eq!(g.hw_interrupt(id(INTX)).unwrap(), set(&[0]));
    assert!(held(&g, INTX) && g.pending_for(0) && pending_bit(&g, INTX));

    let (r, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!((r.used, r.overflow), (1, false));
    // State 01, HW, Group 1, priority 0x80, pINTID 72, vINTID 40.
    assert_eq!(lrs[0], 0x7080_0048_0000_0028);
    let lr = ListRegister::from_bits(lrs[0]);
    assert_eq!(
        (lr.hw(), lr.pintid(), lr.eoi_maintenance()),
        (true, Some(PINTX), false),
        "level-triggered, yet no EOI maintenance: the GIC re-samples the line"
    );

    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(active_bit(&g, INTX) && !pending_bit(&g, INTX) && held(&g, INTX));

    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(lrs[0], 0xb080_0048_0000_0028, "active, HW, pINTID 72");
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!active_bit(&g, INTX) && !held(&g, INTX));
    assert_eq!(released(&mut g), [], "the guest's EOI deactivated it");
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);

    // The device asserts INTx again: a new activation, a new delivery.
    assert_eq!(g.hw_interrupt(id(INTX)).unwrap(), set(&[0]));
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(INTX, LrState::Pending)]);
}

#[test]
fn acknowledged_and_deactivated_in_one_run_needs_nothing_more() {
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX) && !pending_bit(&g, INTX) && !active_bit(&g, INTX));
    assert_eq!(released(&mut g), []);
    assert!(!g.pending_for(0));
}

#[test]
fn the_physical_spi_firing_again_before_the_sync_is_a_new_activation() {
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    // The guest's EOI deactivated physical SPI 72; INTx is still asserted,
    // so it fires at once, on another CPU, before this vCPU exited.
    assert_eq!(
        g.hw_interrupt(id(INTX)).unwrap(),
        set(&[0]),
        "the vCPU holding it is kicked"
    );
    g.sync(0, &lrs).unwrap();
    assert!(held(&g, INTX), "the second activation is still the VM's");
    assert!(g.pending_for(0));
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(INTX, LrState::Pending)]);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX));
    assert_eq!(released(&mut g), []);
}

#[test]
fn icpendr_of_a_new_activation_while_the_old_one_is_in_a_list_register_releases_it() {
    // Found by the sequence test: the guest deactivated the first
    // activation in its list register, INTx fired again before the exit,
    // and the guest cleared that second one with ICPENDR, all before the
    // sync. The second activation must be released, not forgotten.
    let mut g = linked(2);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let _ = write_bit(&mut g, gicd::ICPENDR, INTX);
    assert_eq!(released(&mut g), [], "not before the sync");
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX) && !pending_bit(&g, INTX));
    assert_eq!(released(&mut g), [PINTX]);
}

#[test]
fn a_linked_spi_is_never_handed_out_active_and_pending() {
    // Only a caller reporting one activation twice gets here (a held
    // physical SPI cannot fire): the second waits for the deactivation.
    let mut g = booted(1, 64);
    let _ = dw(&mut g, gicd::ICFGR + 8, 0b10 << 16); // SPI 40 edge
    g.link_hw(id(INTX), pid(PINTX)).unwrap();
    enable(&mut g, 0, INTX, 0x80);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    assert!(!g.pending_for(0), "pending behind its own active state");
    let (_, mut lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(INTX, LrState::Active)]);
    assert!(ListRegister::from_bits(lrs[0]).hw());
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(held(&g, INTX), "the second one is still to deliver");
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(INTX, LrState::Pending)]);
}

#[test]
fn active_on_cpu_a_is_deactivated_on_cpu_b_with_the_same_pintid() {
    let mut g = linked(2);
    enable(&mut g, 0, UART, 0x40); // a plain level SPI beside it
    let _ = g.set_level(id(UART), 0, true).unwrap();
    let _ = g.hw_interrupt(id(INTX)).unwrap();

    let mut cpu_a = [0u64; 4];
    let _ = g.flush(0, &mut cpu_a).unwrap();
    assert_eq!(
        entries(&cpu_a),
        [(UART, LrState::Pending), (INTX, LrState::Pending)]
    );
    ack(&mut cpu_a, 0);
    ack(&mut cpu_a, 1);
    g.sync(0, &cpu_a).unwrap();
    // CPU A runs vCPU 1 next.
    assert_eq!(g.flush(1, &mut cpu_a).unwrap().used, 0);
    g.sync(1, &cpu_a).unwrap();

    let mut cpu_b = [u64::MAX; 4];
    let _ = g.flush(0, &mut cpu_b).unwrap();
    let lrs = cpu_b.map(ListRegister::from_bits);
    assert_eq!(
        (lrs[0].vintid(), lrs[0].hw(), lrs[0].eoi_maintenance()),
        (UART, false, true)
    );
    assert_eq!(
        (lrs[1].vintid(), lrs[1].state(), lrs[1].pintid()),
        (INTX, LrState::Active, Some(PINTX))
    );
    eoi(&mut cpu_b, 1);
    g.sync(0, &cpu_b).unwrap();
    assert!(!held(&g, INTX) && !active_bit(&g, INTX));
    assert_eq!(released(&mut g), []);
}

#[test]
fn an_active_linked_spi_stays_with_its_vcpu_whatever_the_routing() {
    let mut g = linked(2);
    let _ = g
        .dist_write(gicd::IROUTER + 8 * u64::from(INTX), 8, 1 << 31)
        .unwrap();
    assert_eq!(g.hw_interrupt(id(INTX)).unwrap(), set(&[0, 1]), "1-of-N");
    let (_, mut lrs1) = flush(&mut g, 1, 4);
    assert_eq!(entries(&lrs1), [(INTX, LrState::Pending)]);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "vCPU 1 holds it");
    g.sync(0, &[0; 4]).unwrap();
    ack(&mut lrs1, 0);
    g.sync(1, &lrs1).unwrap();
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "active on vCPU 1");
    g.sync(0, &[0; 4]).unwrap();
    let (_, mut lrs1) = flush(&mut g, 1, 4);
    assert_eq!(entries(&lrs1), [(INTX, LrState::Active)]);
    eoi(&mut lrs1, 0);
    g.sync(1, &lrs1).unwrap();
    assert!(!held(&g, INTX));
}

#[test]
fn a_flush_never_synced_keeps_the_physical_spi_held() {
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, first) = flush(&mut g, 0, 4);
    // Never synced: the next flush takes it back as it was.
    let (_, second) = flush(&mut g, 0, 4);
    assert_eq!(second, first);
    assert!(held(&g, INTX));
    assert_eq!(released(&mut g), []);
}

#[test]
fn icpendr_of_a_pending_linked_spi_releases_the_physical_one() {
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let e = write_bit(&mut g, gicd::ICPENDR, INTX);
    assert!(!e.unknown);
    assert!(!pending_bit(&g, INTX) && !held(&g, INTX));
    assert_eq!(released(&mut g), [PINTX], "deactivate it: INTx re-sampled");
    assert_eq!(released(&mut g), [], "handed out once");
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    // Still asserted: the physical SPI fires again.
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    assert!(g.pending_for(0));
}

#[test]
fn icpendr_while_in_a_list_register_releases_at_sync_if_still_pending() {
    let mut g = linked(2);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, lrs) = flush(&mut g, 0, 4);
    // vCPU 1 clears it while vCPU 0 holds it: the physical SPI cannot be
    // deactivated yet, vCPU 0's list register could still do it.
    let e = write_bit(&mut g, gicd::ICPENDR, INTX);
    assert_eq!(e.kick, set(&[0]));
    assert!(!pending_bit(&g, INTX));
    assert_eq!(released(&mut g), []);
    // vCPU 0 exits without having taken it.
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX) && !pending_bit(&g, INTX));
    assert_eq!(released(&mut g), [PINTX]);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn icpendr_too_late_for_an_acknowledged_linked_spi_changes_nothing() {
    let mut g = linked(2);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    let _ = write_bit(&mut g, gicd::ICPENDR, INTX);
    g.sync(0, &lrs).unwrap();
    assert!(active_bit(&g, INTX) && held(&g, INTX));
    assert_eq!(released(&mut g), []);
    let (_, mut lrs) = flush(&mut g, 0, 4);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX));
    assert_eq!(released(&mut g), []);

    // Acknowledged and deactivated before the sync: the GIC deactivated
    // the physical SPI already.
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    let _ = write_bit(&mut g, gicd::ICPENDR, INTX);
    ack(&mut lrs, 0);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX));
    assert_eq!(released(&mut g), [], "no second deactivation");
}

#[test]
fn icactiver_of_an_active_linked_spi_releases_the_physical_one() {
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    // A kernel booting in this VM clears every active state.
    let _ = dw(&mut g, gicd::ICACTIVER + 4, u64::from(u32::MAX));
    assert!(!active_bit(&g, INTX) && !held(&g, INTX));
    assert_eq!(released(&mut g), [PINTX]);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
}

#[test]
fn icactiver_while_in_a_list_register_releases_at_sync_unless_the_guest_deactivated() {
    let mut g = linked(2);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();

    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(INTX, LrState::Active)]);
    let e = write_bit(&mut g, gicd::ICACTIVER, INTX);
    assert_eq!(e.kick, set(&[0]), "the holder drops its stale entry");
    assert_eq!(released(&mut g), [], "its list register still holds it");
    g.sync(0, &lrs).unwrap();
    assert_eq!(released(&mut g), [PINTX]);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0, "the stale entry is gone");

    // The same, but the guest deactivated it in its list register too.
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    let _ = write_bit(&mut g, gicd::ICACTIVER, INTX);
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!held(&g, INTX));
    assert_eq!(released(&mut g), [], "the GIC deactivated it");
}

#[test]
fn ispendr_and_isactiver_are_ignored_for_a_linked_spi() {
    let mut g = linked(1);
    let e = write_bit(&mut g, gicd::ISPENDR, INTX);
    assert!(!e.unknown && e.kick.is_empty());
    let e = write_bit(&mut g, gicd::ISACTIVER, INTX);
    assert!(!e.unknown && e.kick.is_empty());
    assert!(!pending_bit(&g, INTX) && !active_bit(&g, INTX) && !held(&g, INTX));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    // Other SPIs in the same register still take them.
    let _ = dw(&mut g, gicd::ISPENDR + 4, u64::from(u32::MAX));
    assert_eq!(dr(&g, gicd::ISPENDR + 4), u64::from(!(1u32 << (INTX - 32))));
}

#[test]
fn a_disabled_linked_spi_stays_pending_and_held() {
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let _ = write_bit(&mut g, gicd::ICENABLER, INTX);
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    g.sync(0, &[0; 4]).unwrap();
    assert!(held(&g, INTX) && pending_bit(&g, INTX));
    assert_eq!(released(&mut g), []);
    assert_eq!(
        write_bit(&mut g, gicd::ISENABLER, INTX).kick,
        set(&[0]),
        "enabled again: deliverable"
    );
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(entries(&lrs), [(INTX, LrState::Pending)]);
}

#[test]
fn device_models_cannot_drive_a_linked_spi() {
    let mut g = linked(1);
    let linked = Err(Error::HwLinked {
        intid: id(INTX),
        pintid: pid(PINTX),
    });
    assert_eq!(g.set_level(id(INTX), 0, true), linked);
    assert_eq!(g.inject_edge(id(INTX), 0), linked);
    assert!(!pending_bit(&g, INTX));
}

#[test]
fn link_checks_its_arguments() {
    let mut g = booted(1, 64);
    assert_eq!(
        g.link_hw(id(TIMER), pid(PINTX)),
        Err(Error::NotAnSpi { intid: id(TIMER) })
    );
    assert_eq!(
        g.link_hw(id(96), pid(PINTX)),
        Err(Error::NoSuchIntId { intid: id(96) })
    );
    g.link_hw(id(INTX), pid(PINTX)).unwrap();
    assert_eq!(
        g.link_hw(id(INTX), pid(73)),
        Err(Error::HwLinked {
            intid: id(INTX),
            pintid: pid(PINTX)
        })
    );
    assert_eq!(
        g.link_hw(id(41), pid(PINTX)),
        Err(Error::PintidInUse {
            pintid: pid(PINTX),
            intid: id(INTX)
        })
    );

    // State the device did not cause.
    enable(&mut g, 0, 41, 0);
    let _ = g.inject_edge(id(41), 0).unwrap();
    assert_eq!(
        g.link_hw(id(41), pid(73)),
        Err(Error::HwBusy { intid: id(41) })
    );
    let (_, lrs) = flush(&mut g, 0, 4);
    assert_eq!(
        g.link_hw(id(41), pid(73)),
        Err(Error::HwBusy { intid: id(41) }),
        "in a list register"
    );
    let mut lrs = lrs;
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert_eq!(
        g.link_hw(id(41), pid(73)),
        Err(Error::HwBusy { intid: id(41) }),
        "active"
    );
    let _ = g.set_level(id(42), 0, true).unwrap();
    assert_eq!(
        g.link_hw(id(42), pid(73)),
        Err(Error::HwBusy { intid: id(42) }),
        "line high"
    );
    g.link_hw(id(43), pid(73)).unwrap();
    assert_eq!(g.hw_links().count(), 2);
}

#[test]
fn hw_interrupt_and_unlink_check_their_arguments() {
    let mut g = linked(1);
    assert_eq!(
        g.hw_interrupt(id(41)),
        Err(Error::NotHwLinked { intid: id(41) })
    );
    assert_eq!(g.hw_interrupt(id(3)), Err(Error::NotAnSpi { intid: id(3) }));
    assert_eq!(
        g.hw_interrupt(id(100)),
        Err(Error::NoSuchIntId { intid: id(100) })
    );
    assert_eq!(
        g.unlink_hw(id(41)),
        Err(Error::NotHwLinked { intid: id(41) })
    );
    assert_eq!(g.hw_link(id(41)), None);
    assert_eq!(g.hw_link(id(3)), None);

    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, lrs) = flush(&mut g, 0, 4);
    let busy = Error::HwInFlight {
        intid: id(INTX),
        vcpu: 0,
    };
    assert_eq!(g.unlink_hw(id(INTX)), Err(busy));
    assert_eq!(g.unlink_all_hw(), Err(busy));
    assert_eq!(g.hw_link(id(INTX)), Some(pid(PINTX)), "nothing changed");
    g.sync(0, &lrs).unwrap();
    assert_eq!(g.unlink_hw(id(INTX)), Ok(Some(pid(PINTX))));
}

#[test]
fn unlink_says_whether_the_physical_spi_is_still_the_vms() {
    // Inactive: nothing to do.
    let mut g = linked(1);
    assert_eq!(g.unlink_hw(id(INTX)), Ok(None));
    assert_eq!(g.hw_links().count(), 0);

    // Pending: deactivate it; the virtual pending state goes with the
    // device.
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    assert_eq!(g.unlink_hw(id(INTX)), Ok(Some(pid(PINTX))));
    assert!(!pending_bit(&g, INTX));
    assert_eq!(flush(&mut g, 0, 4).0.used, 0);
    g.sync(0, &[0; 4]).unwrap();
    // A plain SPI again.
    assert_eq!(g.set_level(id(INTX), 0, true).unwrap(), set(&[0]));

    // Active: deactivate it; the guest deactivates its virtual SPI
    // virtually only.
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let (_, mut lrs) = flush(&mut g, 0, 4);
    ack(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert_eq!(g.unlink_hw(id(INTX)), Ok(Some(pid(PINTX))));
    let (_, mut lrs) = flush(&mut g, 0, 4);
    let lr = ListRegister::from_bits(lrs[0]);
    assert_eq!((lr.state(), lr.hw()), (LrState::Active, false));
    eoi(&mut lrs, 0);
    g.sync(0, &lrs).unwrap();
    assert!(!active_bit(&g, INTX));

    // Released and not yet taken: unlink hands it out instead.
    let mut g = linked(1);
    let _ = g.hw_interrupt(id(INTX)).unwrap();
    let _ = write_bit(&mut g, gicd::ICPENDR, INTX);
    assert_eq!(g.unlink_hw(id(INTX)), Ok(Some(pid(PINTX))));
    assert_eq!(released(&mut g), [], "never asked for again");

    // The physical SPI can be linked again, here or in another VM.
    g.link_hw(id(41), pid(PINTX)).unwrap();
}

#[test]
fn teardown_unlinks_everything_and_lists_what_to_deactivate() {
    let mut g = booted(2, 64);
    for (intid, pintid) in [(40, 72), (41, 73), (42, 74), (43, 75)] {
        g.link_hw(id(intid), pid(pintid)).unwrap();
        enable(&mut g, 0, intid, 0x80);
    }
    let _ = g.hw_interrupt(id(40)).unwrap(); // pending
    let _ = g.hw_interrupt(id(41)).unwrap(); // active
    let _ = g.hw_interrupt(id(43)).unwrap(); // released, not taken
    let (_, mut lrs) = flush(&mut g, 0, 4);
    let i = slot_of(&lrs, 41);
    ack(&mut lrs, i);
    g.sync(0, &lrs).unwrap();
    let _ = write_bit(&mut g, gicd::ICPENDR, 43);
    let mut deactivate: Vec<u32> = g
        .unlink_all_hw()
        .unwrap()
        .into_iter()
        .map(PhysIntId::get)
        .collect();
    deactivate.sort_unstable();
    assert_eq!(deactivate, [72, 73, 75]);
    assert_eq!(g.hw_links().count(), 0);
    assert_eq!(g.take_hw_deactivation(), None);
}

/// The list register holding `intid`.
fn slot_of(lrs: &[u64], intid: u32) -> usize {
    lrs.iter()
        .position(|&b| ListRegister::from_bits(b).vintid() == intid)
        .unwrap()
}

#[test]
fn phys_intids_are_physical_spis_only() {
    assert_eq!(PhysIntId::new(31), None);
    assert_eq!(PhysIntId::new(32).map(PhysIntId::get), Some(32));
    assert_eq!(PhysIntId::new(1019).map(PhysIntId::get), Some(1019));
    assert_eq!(PhysIntId::new(1020), None);
    assert_eq!(PhysIntId::spi(40).map(PhysIntId::get), Some(72));
    assert_eq!(PhysIntId::spi(988), None);
    assert_eq!(std::format!("{}", pid(72)), "physical INTID 72 (SPI)");
    assert_eq!(std::format!("{:?}", pid(72)), "PhysIntId(72)");
}
