//! Hardware-linked SPIs against a simulated physical GIC, devices and
//! guest: random INTx assertions, physical interrupts taken by the
//! hypervisor at any moment, vCPU runs split into the guest's actions and
//! the exit (so a physical SPI can fire between the guest's deactivation
//! and the `sync`), the guest's distributor writes, re-routing, unlinking
//! and relinking.
//!
//! Checked throughout: a physical SPI is deactivated (by the guest through
//! a list register, or by the hypervisor on the model's word) only while
//! it is active; a list register carries HW = 1 exactly for a linked SPI
//! whose physical SPI is active, never pending and active, never with the
//! EOI bit; with no vCPU running, the model holds a physical SPI exactly
//! when the hardware has it active. Checked at the end: once the guest is
//! left to handle everything, every asserted INTx is serviced and every
//! physical SPI is inactive: no interrupt is lost.

use super::*;
use crate::PhysIntId;
use proptest::prelude::*;

const VCPUS: usize = 2;
/// Virtual SPI and physical SPI of each passthrough device.
const DEVICES: [(u32, u32); 2] = [(40, 72), (41, 73)];

#[derive(Clone, Debug)]
enum Op {
    /// The device asserts INTx.
    Raise(usize),
    /// The device withdraws INTx by itself.
    Lower(usize),
    /// The physical SPI is signalled and the hypervisor takes it.
    Fire(usize),
    /// Flush `lrs` list registers for the vCPU (syncing it first if it
    /// was running, as the hypervisor always does).
    Enter { vcpu: usize, lrs: usize },
    /// The running guest acts on its list registers.
    Guest { vcpu: usize, actions: Vec<u8> },
    /// The vCPU exits: sync.
    Exit(usize),
    /// The guest writes a distributor register for the device's SPI.
    Dist { reg: u8, device: usize },
    /// The guest re-routes the device's SPI.
    Route { device: usize, to: u8 },
    /// The hypervisor unlinks the device (if it can) and links it again.
    Relink(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let device = || 0..DEVICES.len();
    prop_oneof![
        3 => device().prop_map(Op::Raise),
        1 => device().prop_map(Op::Lower),
        4 => device().prop_map(Op::Fire),
        4 => (0..VCPUS, 0usize..5).prop_map(|(vcpu, lrs)| Op::Enter { vcpu, lrs }),
        4 => (0..VCPUS, proptest::collection::vec(0u8..8, 4))
            .prop_map(|(vcpu, actions)| Op::Guest { vcpu, actions }),
        3 => (0..VCPUS).prop_map(Op::Exit),
        3 => (0u8..8, device()).prop_map(|(reg, device)| Op::Dist { reg, device }),
        1 => (device(), 0u8..4).prop_map(|(device, to)| Op::Route { device, to }),
        1 => device().prop_map(Op::Relink),
    ]
}

/// The world around the model.
struct World {
    g: Vgic,
    /// The device's INTx line.
    line: [bool; 2],
    /// The physical SPI's active state in the physical distributor.
    active: [bool; 2],
    /// Whether the device's SPI is linked now.
    linked: [bool; 2],
    /// Each vCPU's list registers while it runs.
    running: [Option<Vec<u64>>; VCPUS],
}

fn device_of_vintid(vintid: u32) -> Option<usize> {
    DEVICES.iter().position(|&(v, _)| v == vintid)
}

fn device_of_pintid(pintid: u32) -> Option<usize> {
    DEVICES.iter().position(|&(_, p)| p == pintid)
}

impl World {
    fn new() -> Self {
        let mut g = booted(VCPUS, 64);
        for (vintid, pintid) in DEVICES {
            g.link_hw(id(vintid), PhysIntId::new(pintid).unwrap())
                .unwrap();
            enable(&mut g, 0, vintid, 0x80);
        }
        Self {
            g,
            line: [false; 2],
            active: [false; 2],
            linked: [true; 2],
            running: Default::default(),
        }
    }

    /// The physical SPI of device `d` is deactivated.
    fn deactivate(&mut self, d: usize, by: &str) -> Result<(), TestCaseError> {
        prop_assert!(
            self.active[d],
            "{} deactivates physical SPI {}, which is not active",
            by,
            DEVICES[d].1
        );
        self.active[d] = false;
        Ok(())
    }

    /// The hypervisor deactivates what the model released, as it does
    /// after every `sync` and `dist_write`.
    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(pintid) = self.g.take_hw_deactivation() {
            let d = device_of_pintid(pintid.get());
            prop_assert!(d.is_some(), "unknown {}", pintid);
            if let Some(d) = d {
                prop_assert!(self.linked[d], "released after unlink");
                self.deactivate(d, "the hypervisor")?;
            }
        }
        Ok(())
    }

    fn fire(&mut self, d: usize) -> Result<(), TestCaseError> {
        // Signalled only while asserted and not active (level-sensitive).
        if !self.line[d] || self.active[d] {
            return Ok(());
        }
        // Acknowledged, priority dropped: active.
        self.active[d] = true;
        match self.g.hw_interrupt(id(DEVICES[d].0)) {
            Ok(_) => prop_assert!(self.linked[d]),
            Err(crate::Error::NotHwLinked { .. }) => {
                prop_assert!(!self.linked[d]);
                // Nobody to give it to: the hypervisor deactivates it.
                self.deactivate(d, "the hypervisor (unlinked)")?;
            }
            Err(e) => prop_assert!(false, "hw_interrupt: {}", e),
        }
        Ok(())
    }

    fn enter(&mut self, vcpu: usize, n: usize) -> Result<(), TestCaseError> {
        self.exit(vcpu)?;
        let mut lrs = vec![0xbad_u64; n];
        let _ = self.g.flush(vcpu, &mut lrs).unwrap();
        for &bits in &lrs {
            let lr = ListRegister::from_bits(bits);
            if lr.state() == LrState::Invalid {
                continue;
            }
            let device = device_of_vintid(lr.vintid());
            let linked = device.is_some_and(|d| self.linked[d]);
            prop_assert_eq!(lr.hw(), linked, "HW iff linked: {:?}", lr);
            if let Some(d) = device.filter(|_| linked) {
                prop_assert_eq!(lr.pintid(), Some(DEVICES[d].1));
                prop_assert!(self.active[d], "{:?} for an inactive physical SPI", lr);
                prop_assert_ne!(lr.state(), LrState::PendingActive);
                prop_assert!(!lr.eoi_maintenance());
            }
        }
        self.running[vcpu] = Some(lrs);
        Ok(())
    }

    fn guest(&mut self, vcpu: usize, actions: &[u8]) -> Result<(), TestCaseError> {
        let Some(mut lrs) = self.running[vcpu].take() else {
            return Ok(());
        };
        for (bits, &action) in lrs.iter_mut().zip(actions) {
            let lr = ListRegister::from_bits(*bits);
            let mut state = lr.state();
            let (ack, service, deactivate) = match action {
                1 => (true, false, false),
                2 => (true, true, false),
                3 => (false, false, true),
                4 => (true, false, true),
                5..=7 => (true, true, true),
                _ => (false, false, false),
            };
            if ack && state == LrState::Pending {
                state = LrState::Active;
                // The handler reads the device's status and clears it.
                if let Some(d) = device_of_vintid(lr.vintid()).filter(|_| service) {
                    self.line[d] = false;
                }
            }
            if deactivate && state.active() {
                state = LrState::from_flags(state.pending(), false);
                if let Some(p) = lr.pintid() {
                    let d = device_of_pintid(p);
                    prop_assert!(d.is_some(), "{:?}", lr);
                    if let Some(d) = d {
                        self.deactivate(d, "the guest")?;
                    }
                }
            }
            *bits = lr.with_state(state).bits();
        }
        self.running[vcpu] = Some(lrs);
        Ok(())
    }

    fn exit(&mut self, vcpu: usize) -> Result<(), TestCaseError> {
        if let Some(lrs) = self.running[vcpu].take() {
            prop_assert_eq!(self.g.sync(vcpu, &lrs), Ok(()));
            self.drain()?;
        }
        Ok(())
    }

    fn dist(&mut self, reg: u8, d: usize) -> Result<(), TestCaseError> {
        let vintid = DEVICES[d].0;
        let base = match reg {
            0 => gicd::ICPENDR,
            1 => gicd::ICACTIVER,
            2 => gicd::ISPENDR,
            3 => gicd::ISACTIVER,
            4 => gicd::ICENABLER,
            5 | 6 => gicd::ISENABLER,
            _ => {
                // Toggle edge/level: it must not matter.
                let offset = gicd::ICFGR + u64::from(vintid / 16) * 4;
                let value = dr(&self.g, offset) ^ 2 << (2 * (vintid % 16));
                let _ = dw(&mut self.g, offset, value);
                return self.drain();
            }
        };
        let (offset, mask) = bit(base, vintid);
        let _ = dw(&mut self.g, offset, mask);
        self.drain()
    }

    fn route(&mut self, d: usize, to: u8) {
        let router = match to {
            0 => 1 << 31,
            1 => 0x0100,
            r => crate::vcpu_affinity(usize::from(r) % VCPUS),
        };
        let offset = gicd::IROUTER + 8 * u64::from(DEVICES[d].0);
        let _ = self.g.dist_write(offset, 8, router).unwrap();
    }

    fn relink(&mut self, d: usize) -> Result<(), TestCaseError> {
        let (vintid, pintid) = DEVICES[d];
        if self.linked[d] {
            match self.g.unlink_hw(id(vintid)) {
                Ok(held) => {
                    self.linked[d] = false;
                    if let Some(p) = held {
                        prop_assert_eq!(p.get(), pintid);
                        self.deactivate(d, "the hypervisor (unlink)")?;
                    }
                    prop_assert!(!self.active[d], "active after unlink");
                }
                Err(crate::Error::HwInFlight { vcpu, .. }) => {
                    prop_assert!(self.running[vcpu].is_some());
                    return Ok(());
                }
                Err(e) => prop_assert!(false, "unlink: {}", e),
            }
        }
        match self.g.link_hw(id(vintid), PhysIntId::new(pintid).unwrap()) {
            Ok(()) => self.linked[d] = true,
            // The guest has not finished with what it had before.
            Err(crate::Error::HwBusy { .. }) => {}
            Err(e) => prop_assert!(false, "link: {}", e),
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Raise(d) => self.line[d] = true,
            Op::Lower(d) => self.line[d] = false,
            Op::Fire(d) => self.fire(d)?,
            Op::Enter { vcpu, lrs } => self.enter(vcpu, lrs)?,
            Op::Guest { vcpu, ref actions } => self.guest(vcpu, actions)?,
            Op::Exit(vcpu) => self.exit(vcpu)?,
            Op::Dist { reg, device } => self.dist(reg, device)?,
            Op::Route { device, to } => self.route(device, to),
            Op::Relink(d) => self.relink(d)?,
        }
        self.check()
    }

    /// With no vCPU running, the model holds exactly what the hardware has
    /// active; and it never holds one with nothing to show for it.
    fn check(&self) -> Result<(), TestCaseError> {
        super::live::check_live_sets(&self.g)?;
        for (d, &(vintid, _)) in DEVICES.iter().enumerate() {
            let spi = &self.g.spis[(vintid - 32) as usize];
            let Some(link) = spi.hw else {
                prop_assert!(!self.linked[d]);
                continue;
            };
            prop_assert!(self.linked[d]);
            let irq = &spi.irq;
            let something = irq.latch || irq.active || irq.inflight.is_some();
            prop_assert_eq!(link.held, something, "held iff pending, active or in an LR");
            prop_assert!(!link.release, "released but not drained");
            if self.running.iter().all(Option::is_none) {
                prop_assert_eq!(link.held, self.active[d], "model and hardware disagree");
            }
        }
        Ok(())
    }

    /// The guest, configured sanely again, handles everything until
    /// nothing changes; then nothing may be left.
    fn quiesce(&mut self) -> Result<(), TestCaseError> {
        for vcpu in 0..VCPUS {
            self.exit(vcpu)?;
        }
        for (d, &(vintid, _)) in DEVICES.iter().enumerate() {
            enable(&mut self.g, 0, vintid, 0x80);
            self.route(d, 2);
        }
        for _ in 0..8 {
            for d in 0..DEVICES.len() {
                if !self.linked[d] {
                    self.relink(d)?;
                }
                self.fire(d)?;
            }
            for vcpu in 0..VCPUS {
                self.enter(vcpu, 4)?;
                self.guest(vcpu, &[5; 4])?;
                self.exit(vcpu)?;
            }
            self.check()?;
        }
        for (d, &(vintid, _)) in DEVICES.iter().enumerate() {
            prop_assert!(self.linked[d]);
            prop_assert!(!self.line[d], "INTx of device {} never serviced", d);
            prop_assert!(!self.active[d], "physical SPI of device {} left active", d);
            prop_assert!(!bit_of(&self.g, gicd::ISPENDR, vintid));
            prop_assert!(!bit_of(&self.g, gicd::ISACTIVER, vintid));
        }
        let mut left: Vec<u32> = self
            .g
            .unlink_all_hw()
            .unwrap()
            .into_iter()
            .map(PhysIntId::get)
            .collect();
        left.sort_unstable();
        prop_assert_eq!(left, Vec::<u32>::new());
        Ok(())
    }
}

fn bit_of(g: &Vgic, base: u64, intid: u32) -> bool {
    let (offset, mask) = bit(base, intid);
    dr(g, offset) & mask != 0
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn no_physical_spi_is_deactivated_twice_or_left_active(
        ops in proptest::collection::vec(op(), 1..150)
    ) {
        let mut world = World::new();
        for op in &ops {
            world.apply(op)?;
        }
        world.quiesce()?;
    }
}
