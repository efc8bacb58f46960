//! Random MMIO, device and SGI traffic interleaved with vCPU runs: nothing
//! panics, and what reaches a list register is always allowed there.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

const VCPUS: usize = 3;
const SPIS: u32 = 64;
/// An SPI linked to a physical one (the hardware side is in `hw_prop`).
const HW_SPI: u32 = 34;
const HW_PINTID: u32 = 100;

#[derive(Clone, Debug)]
enum Op {
    DistWrite {
        offset: u64,
        size: u8,
        value: u64,
    },
    DistRead {
        offset: u64,
        size: u8,
    },
    RedistWrite {
        vcpu: usize,
        offset: u64,
        size: u8,
        value: u64,
    },
    RedistRead {
        vcpu: usize,
        offset: u64,
        size: u8,
    },
    Level {
        intid: u32,
        vcpu: usize,
        high: bool,
    },
    Edge {
        intid: u32,
        vcpu: usize,
    },
    Sgi {
        from: usize,
        value: u64,
    },
    /// A driver's typical set-up of one interrupt, through the registers:
    /// enable it, give it a priority and (an SPI) route it.
    Setup {
        intid: u32,
        vcpu: usize,
        priority: u8,
        route: u8,
    },
    /// Flush `lrs` list registers and "run" the vCPU.
    Enter {
        vcpu: usize,
        lrs: usize,
    },
    /// The guest acts on each list register (see [`guest`]), then sync.
    Exit {
        vcpu: usize,
        actions: Vec<u8>,
    },
}

/// Offsets that hit registers most of the time.
fn dist_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..0x400).prop_map(|o| o & !3),
        2 => 0x400u64..0x460,
        1 => (0xc00u64..0xc20).prop_map(|o| o & !3),
        2 => (0x6100u64..0x6100 + 8 * 64).prop_map(|o| o & !3),
        1 => Just(0u64),
        1 => 0u64..0x1_0000,
        1 => any::<u64>(),
    ]
}

fn redist_offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0x1_0080u64..0x1_0400).prop_map(|o| o & !0x7f),
        2 => 0x1_0400u64..0x1_0420,
        1 => prop_oneof![Just(0x1_0c00u64), Just(0x1_0c04)],
        2 => Just(0x14u64),
        1 => 0u64..0x100,
        1 => 0u64..0x2_0000,
        1 => any::<u64>(),
    ]
}

fn size() -> impl Strategy<Value = u8> {
    prop_oneof![6 => Just(4u8), 2 => Just(1u8), 2 => Just(8u8), 1 => any::<u8>()]
}

fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0u32..64).prop_map(|b| 1u64 << b),
        Just(u64::MAX),
        Just(0u64),
        Just(2u64),
        Just(1u64 << 31),
    ]
}

/// Mostly a few INTIDs, so that set-up, injection and runs meet.
fn intid() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => proptest::sample::select(&[1u32, 2, 27, 30, 33, 34, 40, 95][..]),
        1 => 0u32..32 + SPIS,
    ]
}

/// ICC_SGI1R_EL1 values: mostly SGI 1 or 2 to some of our vCPUs.
fn sgi1r() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (1u64..3, 0u64..8).prop_map(|(sgi, list)| sgi << 24 | list),
        1 => (1u64..3).prop_map(|sgi| 1 << 40 | sgi << 24),
        1 => any::<u64>(),
    ]
}

fn vcpu() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..VCPUS, 1 => any::<usize>()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (dist_offset(), size(), value())
            .prop_map(|(offset, size, value)| Op::DistWrite { offset, size, value }),
        1 => (dist_offset(), size()).prop_map(|(offset, size)| Op::DistRead { offset, size }),
        4 => (vcpu(), redist_offset(), size(), value()).prop_map(|(vcpu, offset, size, value)| {
            Op::RedistWrite { vcpu, offset, size, value }
        }),
        1 => (vcpu(), redist_offset(), size())
            .prop_map(|(vcpu, offset, size)| Op::RedistRead { vcpu, offset, size }),
        3 => (intid(), vcpu(), any::<bool>())
            .prop_map(|(intid, vcpu, high)| Op::Level { intid, vcpu, high }),
        3 => (intid(), vcpu()).prop_map(|(intid, vcpu)| Op::Edge { intid, vcpu }),
        2 => (vcpu(), sgi1r()).prop_map(|(from, value)| Op::Sgi { from, value }),
        4 => (intid(), 0..VCPUS, any::<u8>(), any::<u8>())
            .prop_map(|(intid, vcpu, priority, route)| Op::Setup { intid, vcpu, priority, route }),
        4 => (0..VCPUS, 0usize..6).prop_map(|(vcpu, lrs)| Op::Enter { vcpu, lrs }),
        4 => (0..VCPUS, proptest::collection::vec(0u8..12, 6))
            .prop_map(|(vcpu, actions)| Op::Exit { vcpu, actions }),
    ]
}

/// What the guest does with one list register; returns whether it wrote
/// something no guest can (a corrupted entry, as a buggy caller might pass).
fn guest(lr: &mut u64, action: u8) -> bool {
    let entry = ListRegister::from_bits(*lr);
    let state = entry.state();
    let after = match action {
        // Acknowledge.
        0..=2 if state == LrState::Pending => LrState::Active,
        // Deactivate.
        3..=4 if state == LrState::Active => LrState::Invalid,
        3..=4 if state == LrState::PendingActive => LrState::Pending,
        // Acknowledge and deactivate.
        5..=6 if state == LrState::Pending => LrState::Invalid,
        // Garbage.
        11 if state != LrState::Invalid => {
            *lr ^= 0x0000_0000_0000_0003;
            return true;
        }
        _ => state,
    };
    *lr = entry.with_state(after).bits();
    false
}

fn bit_of(g: &Vgic, vcpu: usize, base_dist: u64, base_redist: u64, intid: u32) -> bool {
    if intid < 32 {
        rr(g, vcpu, base_redist) & (1 << intid) != 0
    } else {
        let (off, mask) = bit(base_dist, intid);
        dr(g, off) & mask != 0
    }
}

fn priority_of(g: &Vgic, vcpu: usize, intid: u32) -> u64 {
    if intid < 32 {
        g.redist_read(vcpu, gicr::IPRIORITYR + u64::from(intid), 1)
            .unwrap()
            .value
    } else {
        g.dist_read(gicd::IPRIORITYR + u64::from(intid), 1)
            .unwrap()
            .value
    }
}

/// Checks what `flush` just put in `vcpu`'s list registers, through the
/// guest-visible registers only.
fn check_flush(
    g: &Vgic,
    vcpu: usize,
    lrs: &[u64],
    running: &[Option<Vec<u64>>; VCPUS],
    pending_before: Option<bool>,
    result: crate::FlushResult,
) -> Result<(), TestCaseError> {
    prop_assert!(result.used <= lrs.len());
    prop_assert!(
        lrs[result.used..].iter().all(|&b| b == 0),
        "unused LRs invalid"
    );
    if result.used < lrs.len() {
        prop_assert!(!result.overflow, "overflow with free list registers");
    }
    let mut mine = BTreeSet::new();
    let mut any_pending_only = false;
    for &bits in &lrs[..result.used] {
        let lr = ListRegister::from_bits(bits);
        let intid = lr.vintid();
        prop_assert!(intid < 32 + SPIS);
        prop_assert!(lr.group1());
        prop_assert_eq!(lr.hw(), intid == HW_SPI, "HW iff linked");
        if lr.hw() {
            prop_assert_eq!(lr.pintid(), Some(HW_PINTID));
            prop_assert_ne!(lr.state(), LrState::PendingActive);
            prop_assert!(!lr.eoi_maintenance());
        }
        prop_assert_ne!(lr.state(), LrState::Invalid);
        prop_assert_eq!(u64::from(lr.priority()), priority_of(g, vcpu, intid));
        prop_assert!(
            mine.insert(intid),
            "INTID {} twice in one vCPU's LRs",
            intid
        );
        // An SPI in no other running vCPU's list registers.
        if intid >= 32 {
            for (other, lrs) in running.iter().enumerate() {
                if other == vcpu {
                    continue;
                }
                let held = lrs.iter().flatten().any(|&b| {
                    let o = ListRegister::from_bits(b);
                    o.state() != LrState::Invalid && o.vintid() == intid
                });
                prop_assert!(
                    !held,
                    "SPI {} in the LRs of vCPUs {} and {}",
                    intid,
                    vcpu,
                    other
                );
            }
        }
        if lr.state().active() {
            prop_assert!(bit_of(g, vcpu, gicd::ISACTIVER, gicr::ISACTIVER0, intid));
        }
        if lr.state().pending() {
            // Delivered pending: it must be deliverable, to this vCPU.
            prop_assert!(
                bit_of(g, vcpu, gicd::ISENABLER, gicr::ISENABLER0, intid),
                "disabled"
            );
            prop_assert!(
                bit_of(g, vcpu, gicd::IGROUPR, gicr::IGROUPR0, intid),
                "Group 0"
            );
            prop_assert!(dr(g, gicd::CTLR) & 2 != 0, "distributor off");
            prop_assert!(
                bit_of(g, vcpu, gicd::ISPENDR, gicr::ISPENDR0, intid),
                "not pending"
            );
            if intid >= 32 && !lr.state().active() {
                let router = g
                    .dist_read(gicd::IROUTER + 8 * u64::from(intid), 8)
                    .unwrap()
                    .value;
                if router & 1 << 31 != 0 {
                    prop_assert_eq!(rr(g, vcpu, gicr::WAKER), 0, "1-of-N to a sleeping vCPU");
                } else {
                    prop_assert_eq!(router, crate::vcpu_affinity(vcpu), "not routed here");
                }
            }
            if !lr.state().active() {
                any_pending_only = true;
            }
        }
    }
    // pending_for and flush agree (for a vCPU that was not running).
    if any_pending_only {
        prop_assert_ne!(
            pending_before,
            Some(false),
            "delivered, yet pending_for said no"
        );
    }
    if pending_before == Some(true) && !lrs.is_empty() {
        prop_assert!(
            result.overflow
                || lrs[..result.used]
                    .iter()
                    .any(|&b| ListRegister::from_bits(b).state().pending()),
            "pending_for said yes, yet nothing pending was delivered"
        );
    }
    Ok(())
}

/// The linked SPI: its physical SPI is held exactly while it is pending,
/// active or in a list register; releases are taken (as the hypervisor
/// does after every sync and distributor write) and say which.
fn check_hw(g: &mut Vgic) -> Result<(), TestCaseError> {
    while let Some(pintid) = g.take_hw_deactivation() {
        prop_assert_eq!(pintid.get(), HW_PINTID);
    }
    let spi = &g.spis[(HW_SPI - 32) as usize];
    let link = spi.hw.unwrap();
    let irq = &spi.irq;
    let something = irq.latch || irq.active || irq.inflight.is_some();
    prop_assert_eq!(link.held, something);
    prop_assert!(!irq.line);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut g = booted(VCPUS, SPIS);
    g.link_hw(id(HW_SPI), crate::PhysIntId::new(HW_PINTID).unwrap())
        .unwrap();
    let mut running: [Option<Vec<u64>>; VCPUS] = Default::default();
    for op in ops {
        check_hw(&mut g)?;
        super::live::check_live_sets(&g)?;
        match op {
            Op::DistWrite {
                offset,
                size,
                value,
            } => {
                let _ = g.dist_write(offset, size, value);
            }
            Op::DistRead { offset, size } => {
                if let Ok(r) = g.dist_read(offset, size) {
                    if size < 8 {
                        prop_assert!(r.value >> (u32::from(size) * 8) == 0);
                    }
                }
            }
            Op::RedistWrite {
                vcpu,
                offset,
                size,
                value,
            } => {
                let _ = g.redist_write(vcpu, offset, size, value);
            }
            Op::RedistRead { vcpu, offset, size } => {
                let _ = g.redist_read(vcpu, offset, size);
            }
            Op::Level { intid, vcpu, high } => {
                let _ = g.set_level(id(intid), vcpu, high);
            }
            Op::Edge { intid, .. } if intid == HW_SPI => {
                // The physical SPI fired (it may not really while held:
                // the model must cope with a caller reporting it twice).
                prop_assert!(g.hw_interrupt(id(intid)).is_ok());
            }
            Op::Edge { intid, vcpu } => {
                let _ = g.inject_edge(id(intid), vcpu);
            }
            Op::Sgi { from, value } => {
                let _ = g.send_sgi(from, value);
            }
            Op::Setup {
                intid,
                vcpu,
                priority,
                route,
            } => {
                enable(&mut g, vcpu, intid, priority);
                if intid >= 32 {
                    // Mostly one vCPU, sometimes 1-of-N or an affinity
                    // no vCPU has.
                    let router = match route % 8 {
                        0 => 1 << 31,
                        1 => 0x0100,
                        r => crate::vcpu_affinity(usize::from(r) % VCPUS),
                    };
                    let offset = gicd::IROUTER + 8 * u64::from(intid);
                    let _ = g.dist_write(offset, 8, router).unwrap();
                }
            }
            Op::Enter { vcpu, lrs } => {
                // Only a vCPU that is not running is asked whether to wake.
                let pending_before = running[vcpu].is_none().then(|| g.pending_for(vcpu));
                let mut regs = vec![0xbad_u64; lrs];
                let result = g.flush(vcpu, &mut regs).unwrap();
                running[vcpu] = None;
                if lrs > 0 || running.iter().all(Option::is_none) {
                    check_flush(&g, vcpu, &regs, &running, pending_before, result)?;
                }
                running[vcpu] = Some(regs);
            }
            Op::Exit { vcpu, actions } => {
                let Some(mut regs) = running[vcpu].take() else {
                    continue;
                };
                let mut corrupted = false;
                for (lr, &action) in regs.iter_mut().zip(&actions) {
                    corrupted |= guest(lr, action);
                }
                let synced = g.sync(vcpu, &regs);
                if !corrupted {
                    prop_assert_eq!(synced, Ok(()));
                }
            }
        }
    }
    super::live::check_live_sets(&g)?;
    check_hw(&mut g)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_traffic_and_runs_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        run(ops)?;
    }
}
