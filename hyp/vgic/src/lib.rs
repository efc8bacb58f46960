//! A virtual GICv3 for guests, as pure logic.
//!
//! Each VM gets one [`Vgic`]: an emulated distributor (64 KiB frame), one
//! redistributor per vCPU (RD_base and SGI_base frames, 128 KiB), and the
//! interrupt state machine behind them. The hypervisor's target-only layer
//! calls it
//!
//! - on a trapped access to the distributor or a redistributor frame
//!   ([`Vgic::dist_read`], [`Vgic::dist_write`], [`Vgic::redist_read`],
//!   [`Vgic::redist_write`]),
//! - on a trapped write to `ICC_SGI1R_EL1` ([`Vgic::send_sgi`]),
//! - from device and timer models ([`Vgic::set_level`], [`Vgic::inject_edge`]),
//! - for a passthrough device's interrupt, linked to a physical SPI
//!   ([`Vgic::link_hw`]), when that SPI fires ([`Vgic::hw_interrupt`]),
//!   and to learn which physical SPIs to deactivate
//!   ([`Vgic::take_hw_deactivation`], [`Vgic::unlink_hw`]); see
//!   [Hardware-linked interrupts](#hardware-linked-interrupts),
//! - before each vCPU entry to fill the `ICH_LR<n>_EL2` list registers
//!   ([`Vgic::flush`]) and after each exit to read them back ([`Vgic::sync`]),
//! - and to decide whether a vCPU waiting in WFI should wake
//!   ([`Vgic::pending_for`]).
//!
//! Calls that can make an interrupt deliverable somewhere return a
//! [`VcpuSet`]: the vCPUs the hypervisor should kick (interrupt out of the
//! guest, or wake from WFI) so their list registers are filled again.
//!
//! # The model is the source of truth
//!
//! Between a vCPU's runs every interrupt's state lives here; `flush` copies
//! the highest-priority ones into list registers and notes which, `sync`
//! folds back what the guest did with them (acknowledged: active; EOI'd:
//! invalid, done; still pending: pending again). Nothing refers to the
//! physical CPU, so a vCPU synced on one CPU can be flushed on another.
//! An interrupt is in at most one list register at a time: an SPI held by
//! one vCPU is not handed to another until the first has synced.
//!
//! # What the guest sees
//!
//! A GICv3 (GIC architecture specification IHI 0069) with a single security
//! state (`GICD_CTLR.DS` = 1) and affinity routing always on (`ARE` RAO/WI),
//! like KVM's: `nr_spis` SPIs, 10 bits of INTID, no LPIs or ITS, no
//! message-based SPIs, no extended SPI/PPI ranges, no Aff3, 1-of-N routing
//! (`IROUTER.IRM`) supported, five priority bits (the architectural minimum
//! for a virtual CPU interface, `ICH_VTR_EL2.PRIbits`). vCPU `i` has
//! affinity Aff1 = `i / 16`, Aff0 = `i % 16`.
//!
//! Not emulated: Group 0 delivery (Group 0 interrupts would be virtual
//! FIQs, which a Linux guest does not take; `GICD_CTLR.EnableGrp0` is
//! RAZ/WI and Group 0 interrupts stay pending), `ICC_SGI0R_EL1` and
//! `ICC_ASGI1R_EL1`, GICv2 compatibility (`ITARGETSR`, `GICD_SGIR` are
//! RAZ/WI), and the redistributor's power-down semantics beyond the
//! `GICR_WAKER` handshake (a sleeping redistributor only stops taking
//! 1-of-N SPIs).
//!
//! # Hardware-linked interrupts
//!
//! A passthrough device's level-triggered interrupt (a PCI function's
//! INTx) reaches the host as a physical SPI; linked to a virtual SPI, it is
//! handed to the guest in list registers with HW = 1, and the guest's
//! deactivation of the virtual SPI deactivates the physical one in
//! hardware. What the hypervisor must do, step by step:
//!
//! 1. Every physical CPU interface runs with `ICC_CTLR_EL1.EOImode` = 1
//!    (priority drop and deactivation split), so every interrupt the
//!    hypervisor handles itself ends with `ICC_EOIR1_EL1` then
//!    `ICC_DIR_EL1`.
//! 2. At VM creation: [`Vgic::link_hw`]`(vintid, pintid)`; configure the
//!    physical SPI level-triggered, Group 1, enabled, routed to any CPU.
//! 3. When the physical SPI is acknowledged (`ICC_IAR1_EL1`): write
//!    `ICC_EOIR1_EL1` (priority drop) but *not* `ICC_DIR_EL1`, then call
//!    [`Vgic::hw_interrupt`]`(vintid)` and kick the vCPUs it returns. If it
//!    fails ([`Error::NotHwLinked`]: unlinked meanwhile), write
//!    `ICC_DIR_EL1` yourself.
//! 4. Nothing changes for `flush`, `sync` and the list registers: the
//!    entries carry HW and pINTID, and the guest's deactivation ends the
//!    physical activation wherever the vCPU runs (an SPI's active state
//!    lives in the distributor, not in one CPU interface).
//! 5. After every [`Vgic::sync`] and every [`Vgic::dist_write`], while
//!    [`Vgic::take_hw_deactivation`] returns an INTID, write it to
//!    `ICC_DIR_EL1` (the guest cleared a linked SPI's pending or active
//!    state through the distributor). It may be done after dropping the
//!    model's lock: a released physical SPI cannot fire, nor be in a list
//!    register, until it is deactivated.
//! 6. At teardown, once every vCPU has stopped and synced, disable the
//!    physical SPI, then [`Vgic::unlink_hw`] each link (or
//!    [`Vgic::unlink_all_hw`]) and write every INTID returned to
//!    `ICC_DIR_EL1`. The device's pending INTx is then seen by whoever
//!    enables the SPI next.
//!
//! What the guest can do to a linked SPI: `GICD_ICPENDR` and
//! `GICD_ICACTIVER` work, and when they leave nothing of the interrupt
//! (neither pending nor active) the physical SPI is released (step 5; if
//! a list register holds it, at that vCPU's `sync`, unless the guest
//! deactivated it there). `GICD_ISPENDR` and `GICD_ISACTIVER` are ignored
//! for it: a state the device did not cause would reach a list register
//! with HW = 1, and its deactivation would deactivate a physical SPI the
//! VM does not hold (Linux sets neither for a level-triggered SPI). The
//! full rules are in the source file `hw.rs`.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod access;
mod dist;
mod error;
mod hw;
mod intid;
mod irq;
pub mod lr;
mod redist;
mod sgi;
mod vcpuset;

use alloc::vec::Vec;

pub use error::{AccessError, ConfigError, Error};
use hw::HwLink;
pub use intid::{IntId, IntKind, PhysIntId};
use irq::{InFlight, Irq, Trigger};
use lr::{ListRegister, LrState};
pub use sgi::{SgiRequest, SgiTargets};
pub use vcpuset::{VcpuSet, MAX_VCPUS};

/// Size of the distributor frame.
pub const DIST_FRAME_SIZE: u64 = 0x1_0000;

/// Size of one vCPU's redistributor: the RD_base frame, then the SGI_base
/// frame (GICv3 §12.10).
pub const REDIST_FRAME_SIZE: u64 = 0x2_0000;

/// The most SPIs a [`Vgic`] offers: a multiple of 32 whose INTIDs stay
/// below the special range 1020..1023.
pub const MAX_SPIS: u32 = 960;

/// The most list registers the architecture has (`ICH_VTR_EL2.ListRegs`
/// is four bits): [`Vgic::flush`] fills no more.
pub const MAX_LIST_REGISTERS: usize = 16;

/// Priority bits kept: the top five, the least a GICv3 virtual CPU
/// interface implements, so the order the model sorts by is the order the
/// hardware compares.
pub const PRIORITY_BITS: u32 = 5;

/// The priority bits kept, as a mask.
const PRIORITY_MASK: u8 = !(u8::MAX >> PRIORITY_BITS);

/// `GICD_IROUTER<n>.Interrupt_Routing_Mode`: any participating PE.
const IROUTER_IRM: u64 = 1 << 31;

/// The affinity of vCPU `vcpu` in MPIDR layout (Aff1 in bits 15:8, Aff0 in
/// bits 7:0), as the guest's device tree and PSCI see it.
pub const fn vcpu_affinity(vcpu: usize) -> u64 {
    (((vcpu / 16) as u64 & 0xff) << 8) | (vcpu % 16) as u64
}

/// The outcome of a register read the model accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    /// The value, in the low `size` bytes.
    pub value: u64,
    /// The offset is no register this model implements (reserved, or an
    /// unimplemented optional one): the read returned zero. Worth a
    /// (rate-limited) log line.
    pub unknown: bool,
}

/// The outcome of a register write the model accepted.
#[must_use]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// vCPUs to kick: an interrupt may have become deliverable to them, or
    /// one in their list registers changed state under them.
    pub kick: VcpuSet,
    /// The offset is no register this model implements: the write was
    /// ignored. Worth a (rate-limited) log line.
    pub unknown: bool,
}

/// What [`Vgic::flush`] did.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushResult {
    /// List registers filled, from index 0; the rest were set invalid.
    pub used: usize,
    /// More interrupts are waiting than fitted: enable the underflow
    /// maintenance interrupt (`ICH_HCR_EL2.UIE`) so the vCPU exits when its
    /// list registers drain, and flush again.
    pub overflow: bool,
}

/// Where an SPI goes, from its `GICD_IROUTER<n>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// The vCPU with the affinity written.
    Vcpu(usize),
    /// 1-of-N: any vCPU whose redistributor is awake.
    Any,
    /// An affinity no vCPU has: never delivered.
    Nowhere,
}

/// Where an interrupt's state lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loc {
    /// SGI or PPI `intid` of vCPU `vcpu`.
    Private { vcpu: usize, intid: usize },
    /// SPI number `index` (INTID `32 + index`).
    Shared { index: usize },
}

/// One vCPU's redistributor and its list register bookkeeping.
#[derive(Clone, Debug)]
struct Vcpu {
    /// SGIs 0..16 then PPIs 16..32.
    private: [Irq; IntId::FIRST_SPI as usize],
    /// `GICR_WAKER.ProcessorSleep` (and so `ChildrenAsleep`).
    asleep: bool,
    /// `GICR_PROPBASER`, kept as written.
    propbaser: u64,
    /// `GICR_PENDBASER`, kept as written.
    pendbaser: u64,
    /// What `flush` put in each list register, until `sync`.
    in_lrs: [Option<IntId>; MAX_LIST_REGISTERS],
}

impl Vcpu {
    fn new() -> Self {
        let mut private = [Irq::new(Trigger::Level); IntId::FIRST_SPI as usize];
        // SGIs are always edge-triggered (GICv3 §12.11.8, GICR_ICFGR0).
        for sgi in &mut private[..IntId::FIRST_PPI as usize] {
            sgi.trigger = Trigger::Edge;
        }
        Self {
            private,
            // Redistributors come out of reset asleep (GICR_WAKER).
            asleep: true,
            propbaser: 0,
            pendbaser: 0,
            in_lrs: [None; MAX_LIST_REGISTERS],
        }
    }
}

/// One SPI.
#[derive(Clone, Copy, Debug)]
struct Spi {
    irq: Irq,
    /// `GICD_IROUTER<n>`, masked to the fields kept.
    router: u64,
    /// The vCPU it is active on, once one has taken it: an active SPI
    /// stays there until deactivated, whatever IROUTER says meanwhile.
    active_on: Option<usize>,
    /// The physical SPI it is linked to, if any.
    hw: Option<HwLink>,
}

/// The virtual GICv3 of one VM.
#[derive(Clone, Debug)]
pub struct Vgic {
    nr_spis: u32,
    /// `GICD_CTLR.EnableGrp1`.
    group1_enabled: bool,
    vcpus: Vec<Vcpu>,
    spis: Vec<Spi>,
    /// Indices of the linked SPIs, in the order they were linked.
    hw_spis: Vec<usize>,
    /// How many linked SPIs have a release not yet taken.
    hw_releases: usize,
}

/// The best `cap` candidates for list registers, best first, and how many
/// were offered: a bounded selection, so `flush` allocates nothing.
struct Best {
    items: [(Key, IntId); MAX_LIST_REGISTERS],
    len: usize,
    cap: usize,
    offered: usize,
}

/// Sort key: active interrupts first (they must be in a list register for
/// the guest to deactivate them), then by priority (lower value first),
/// then by INTID.
type Key = (bool, u8, u32);

impl Best {
    fn new(cap: usize, filler: IntId) -> Self {
        Self {
            items: [((true, u8::MAX, u32::MAX), filler); MAX_LIST_REGISTERS],
            len: 0,
            cap: cap.min(MAX_LIST_REGISTERS),
            offered: 0,
        }
    }

    fn offer(&mut self, key: Key, intid: IntId) {
        self.offered += 1;
        let mut at = self.len;
        while at > 0 && key < self.items[at - 1].0 {
            at -= 1;
        }
        if at >= self.cap {
            return;
        }
        let end = self.len.min(self.cap - 1);
        self.items.copy_within(at..end, at + 1);
        self.items[at] = (key, intid);
        self.len = (self.len + 1).min(self.cap);
    }

    fn chosen(&self) -> &[(Key, IntId)] {
        &self.items[..self.len]
    }
}

impl Vgic {
    /// A virtual GIC for `nr_vcpus` vCPUs and `nr_spis` SPIs (INTIDs
    /// `32..32 + nr_spis`), everything at reset: distributor disabled,
    /// every interrupt disabled, Group 1, priority 0, SPIs routed to vCPU 0,
    /// redistributors asleep.
    ///
    /// # Errors
    ///
    /// [`ConfigError::VcpuCount`] for 0 or more than [`MAX_VCPUS`] vCPUs;
    /// [`ConfigError::SpiCount`] unless `nr_spis` is a multiple of 32 and at
    /// most [`MAX_SPIS`].
    pub fn new(nr_vcpus: usize, nr_spis: u32) -> Result<Self, ConfigError> {
        if nr_vcpus == 0 || nr_vcpus > MAX_VCPUS {
            return Err(ConfigError::VcpuCount { count: nr_vcpus });
        }
        if !nr_spis.is_multiple_of(32) || nr_spis > MAX_SPIS {
            return Err(ConfigError::SpiCount { count: nr_spis });
        }
        let spi = Spi {
            irq: Irq::new(Trigger::Level),
            router: 0,
            active_on: None,
            hw: None,
        };
        Ok(Self {
            nr_spis,
            group1_enabled: false,
            vcpus: (0..nr_vcpus).map(|_| Vcpu::new()).collect(),
            spis: (0..nr_spis).map(|_| spi).collect(),
            hw_spis: Vec::new(),
            hw_releases: 0,
        })
    }

    /// How many vCPUs the VM has.
    pub fn nr_vcpus(&self) -> usize {
        self.vcpus.len()
    }

    /// How many SPIs the VM has.
    pub fn nr_spis(&self) -> u32 {
        self.nr_spis
    }

    /// Drives the input line of a level-sensitive interrupt (the timer's
    /// PPI, a device's SPI). `vcpu` says whose PPI or SGI is meant and is
    /// ignored for an SPI. If the interrupt is configured edge-triggered, a
    /// rising edge latches it.
    ///
    /// Returns the vCPUs to kick.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchVcpu`] for a private interrupt of a vCPU that does not
    /// exist; [`Error::NoSuchIntId`] for an SPI past the VM's count;
    /// [`Error::HwLinked`] for an SPI linked to a physical one (use
    /// [`Vgic::hw_interrupt`]).
    pub fn set_level(&mut self, intid: IntId, vcpu: usize, high: bool) -> Result<VcpuSet, Error> {
        let loc = self.driven_loc(intid, vcpu)?;
        let mut kick = VcpuSet::EMPTY;
        self.update(loc, &mut kick, |irq| irq.set_line(high));
        Ok(kick)
    }

    /// Latches an interrupt pending, as an edge on its line would (also for
    /// a level-configured one, like an ISPENDR write). `vcpu` says whose PPI
    /// or SGI is meant and is ignored for an SPI.
    ///
    /// Returns the vCPUs to kick.
    ///
    /// # Errors
    ///
    /// As for [`Vgic::set_level`].
    pub fn inject_edge(&mut self, intid: IntId, vcpu: usize) -> Result<VcpuSet, Error> {
        let loc = self.driven_loc(intid, vcpu)?;
        let mut kick = VcpuSet::EMPTY;
        self.update(loc, &mut kick, Irq::set_pending);
        Ok(kick)
    }

    /// Carries out vCPU `from`'s write of `value` to `ICC_SGI1R_EL1`: the
    /// SGI becomes pending on each target whose copy of it is Group 1
    /// (GICv3 §12.2.23; a Group 0 SGI is not forwarded). Targets are the
    /// vCPUs the affinity fields and TargetList name (names no vCPU has are
    /// ignored), or with IRM = 1 every vCPU but `from`.
    ///
    /// Returns the vCPUs on which the SGI became newly pending: kick them.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchVcpu`] if `from` does not exist.
    pub fn send_sgi(&mut self, from: usize, value: u64) -> Result<VcpuSet, Error> {
        self.check_vcpu(from)?;
        let request = SgiRequest::decode(value);
        let mut targets = VcpuSet::EMPTY;
        match request.targets {
            SgiTargets::AllButSelf => {
                for vcpu in (0..self.vcpus.len()).filter(|&v| v != from) {
                    self.raise_sgi(vcpu, request.intid, &mut targets);
                }
            }
            SgiTargets::List {
                aff3,
                aff2,
                aff1,
                range_selector,
                list,
            } => {
                for bit in (0..16u32).filter(|bit| list & (1 << bit) != 0) {
                    let aff0 = u32::from(range_selector) * 16 + bit;
                    let aff = [aff3, aff2, aff1].map(u32::from);
                    if let Some(vcpu) = self.vcpu_of(aff[0], aff[1], aff[2], aff0) {
                        self.raise_sgi(vcpu, request.intid, &mut targets);
                    }
                }
            }
        }
        Ok(targets)
    }

    /// Where a device model's interrupt lives; a linked SPI is driven by
    /// its physical SPI only.
    fn driven_loc(&self, intid: IntId, vcpu: usize) -> Result<Loc, Error> {
        let loc = self.loc(intid, vcpu)?;
        if let Loc::Shared { index } = loc {
            if let Some(link) = self.spis.get(index).and_then(|spi| spi.hw) {
                return Err(Error::HwLinked {
                    intid,
                    pintid: link.pintid,
                });
            }
        }
        Ok(loc)
    }

    fn raise_sgi(&mut self, vcpu: usize, intid: IntId, targets: &mut VcpuSet) {
        let Some(irq) = self
            .vcpus
            .get_mut(vcpu)
            .and_then(|v| v.private.get_mut(intid.get() as usize))
        else {
            return;
        };
        if irq.group1 && !irq.latch {
            irq.set_pending();
            targets.insert(vcpu);
        }
    }

    /// Fills vCPU `vcpu`'s list registers before it runs: `lrs` receives up
    /// to `lrs.len()` (at most [`MAX_LIST_REGISTERS`]) entries, best first,
    /// and every other element is set invalid. Write all of `lrs` to
    /// `ICH_LR<n>_EL2`.
    ///
    /// What goes in: interrupts active on this vCPU (so the guest can
    /// deactivate them), then pending ones that are enabled, Group 1, with
    /// Group 1 enabled in the distributor and routed to this vCPU, by
    /// priority then INTID. Entries are Group 1 with HW = 0; a
    /// level-sensitive interrupt asks for a maintenance interrupt on
    /// deactivation (the EOI bit) so its line is sampled again, and is
    /// never handed out active and pending at once (the line is sampled
    /// after the guest deactivates it instead). An SPI linked to a physical
    /// one ([`Vgic::link_hw`]) goes in with HW = 1 and its pINTID, without
    /// the EOI bit, and never active and pending at once either.
    ///
    /// If the previous `flush` of this vCPU was never followed by a
    /// [`Vgic::sync`], its list registers are taken back unchanged first.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchVcpu`] if `vcpu` does not exist.
    pub fn flush(&mut self, vcpu: usize, lrs: &mut [u64]) -> Result<FlushResult, Error> {
        self.check_vcpu(vcpu)?;
        self.take_back(vcpu);
        let filler = IntId::sgi_from_field(0);
        let mut best = Best::new(lrs.len(), filler);
        let group1 = self.group1_enabled;
        for (intid, irq) in self.vcpus[vcpu].private.iter().enumerate() {
            if irq.inflight.is_some() {
                continue;
            }
            if irq.active || irq.deliverable(group1) {
                best.offer((!irq.active, irq.priority, intid as u32), private_id(intid));
            }
        }
        for index in 0..self.spis.len() {
            let spi = &self.spis[index];
            let irq = &spi.irq;
            if irq.inflight.is_some() {
                continue;
            }
            let take = if irq.active {
                match spi.active_on {
                    Some(owner) => owner == vcpu,
                    None => self.may_receive(spi, vcpu),
                }
            } else {
                irq.deliverable(group1) && self.may_receive(spi, vcpu)
            };
            if take {
                best.offer(
                    (!irq.active, irq.priority, spi_id(index).get()),
                    spi_id(index),
                );
            }
        }
        let used = best.len;
        for (slot, &(_, intid)) in best.chosen().iter().enumerate() {
            lrs[slot] = self.place(vcpu, intid).bits();
            self.vcpus[vcpu].in_lrs[slot] = Some(intid);
        }
        for lr in &mut lrs[used..] {
            *lr = ListRegister::INVALID.bits();
        }
        Ok(FlushResult {
            used,
            overflow: best.offered > used,
        })
    }

    /// Puts `intid` in one of `vcpu`'s list registers: returns the entry
    /// and records it.
    fn place(&mut self, vcpu: usize, intid: IntId) -> ListRegister {
        let group1 = self.group1_enabled;
        let Ok(loc) = self.loc(intid, vcpu) else {
            return ListRegister::INVALID;
        };
        let hw = match loc {
            Loc::Shared { index } => self.spis.get(index).and_then(|spi| spi.hw),
            Loc::Private { .. } => None,
        };
        let Some(irq) = self.irq_mut(loc) else {
            return ListRegister::INVALID;
        };
        let state = match (irq.active, irq.trigger) {
            (false, _) => LrState::Pending,
            // A linked SPI's pending state while active would be a second
            // activation of a physical SPI that is still active: it waits
            // for the deactivation (and never happens unless the caller
            // reported one activation twice).
            (true, _) if hw.is_some() => LrState::Active,
            (true, Trigger::Edge) => LrState::from_flags(irq.deliverable(group1), true),
            (true, Trigger::Level) => LrState::Active,
        };
        let moved_latch = state.pending() && irq.latch;
        if moved_latch {
            irq.latch = false;
        }
        irq.cancel_pending = false;
        irq.inflight = Some(InFlight {
            vcpu,
            placed: state,
            moved_latch,
        });
        let mut lr = ListRegister::new(intid, irq.priority, state);
        if let Some(link) = hw {
            lr = lr.with_hw(link.pintid);
        } else if irq.trigger == Trigger::Level {
            lr = lr.with_eoi_maintenance();
        }
        if let Loc::Shared { index } = loc {
            if let Some(spi) = self.spis.get_mut(index) {
                if spi.irq.active {
                    spi.active_on = Some(vcpu);
                }
            }
        }
        lr
    }

    /// Reads back vCPU `vcpu`'s list registers after it ran: `lrs[n]` is
    /// `ICH_LR<n>_EL2` (at least as many as the last [`Vgic::flush`] used).
    /// What the guest did goes back into the model: an acknowledged
    /// interrupt is active, a deactivated one is no longer active, one still
    /// pending is pending again, and a level-sensitive line that is still
    /// high makes its interrupt pending again once it is no longer active.
    /// A linked SPI that comes back invalid was deactivated by the guest,
    /// and with it the physical SPI; one whose state the guest cleared
    /// through the distributor meanwhile is released (see
    /// [`Vgic::take_hw_deactivation`]).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchVcpu`] if `vcpu` does not exist. [`Error::LrMismatch`]
    /// or [`Error::UnexpectedLr`] (the first found) if `lrs` does not match
    /// what `flush` wrote: every entry is still taken back (a mismatched one
    /// as if the guest had not touched it), so the model stays consistent;
    /// the error reports a bug in the caller.
    pub fn sync(&mut self, vcpu: usize, lrs: &[u64]) -> Result<(), Error> {
        self.check_vcpu(vcpu)?;
        let placed = core::mem::take(&mut self.vcpus[vcpu].in_lrs);
        let mut first_error = None;
        for (slot, intid) in placed.iter().enumerate() {
            let Some(intid) = *intid else { continue };
            let now = match lrs.get(slot).map(|&bits| ListRegister::from_bits(bits)) {
                Some(lr) if lr.vintid() == intid.get() => Some(lr.state()),
                _ => {
                    first_error.get_or_insert(Error::LrMismatch {
                        lr: slot,
                        expected: intid,
                    });
                    None
                }
            };
            self.fold(vcpu, intid, now);
        }
        for (slot, &bits) in lrs.iter().enumerate() {
            let flushed = placed.get(slot).copied().flatten().is_some();
            if !flushed && ListRegister::from_bits(bits).state() != LrState::Invalid {
                first_error.get_or_insert(Error::UnexpectedLr { lr: slot });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Takes back whatever `vcpu`'s list registers held as flushed,
    /// unchanged.
    fn take_back(&mut self, vcpu: usize) {
        let placed = core::mem::take(&mut self.vcpus[vcpu].in_lrs);
        for intid in placed.into_iter().flatten() {
            self.fold(vcpu, intid, None);
        }
    }

    /// Folds the state `now` (`None`: as placed) that `vcpu`'s list
    /// register shows for `intid` back into the model.
    fn fold(&mut self, vcpu: usize, intid: IntId, now: Option<LrState>) {
        let Ok(loc) = self.loc(intid, vcpu) else {
            return;
        };
        let Some(irq) = self.irq_mut(loc) else {
            return;
        };
        let Some(flight) = irq.inflight.filter(|f| f.vcpu == vcpu) else {
            return;
        };
        irq.inflight = None;
        let now = now.unwrap_or(flight.placed);
        // Only what the guest changed is applied, so that a distributor
        // write made while the interrupt was in the list register (say,
        // ICACTIVER from another vCPU) is not undone.
        if now.active() != flight.placed.active() {
            irq.active = now.active();
        }
        if now.pending() && flight.moved_latch && !irq.cancel_pending {
            irq.latch = true;
        }
        irq.cancel_pending = false;
        let active = irq.active;
        if let Loc::Shared { index } = loc {
            if let Some(spi) = self.spis.get_mut(index) {
                spi.active_on = active.then_some(vcpu);
            }
        }
        self.hw_synced(loc, now == LrState::Invalid);
    }

    /// Whether vCPU `vcpu` has an interrupt it could take now: pending,
    /// enabled, Group 1 enabled, routed to it and not active (an active
    /// interrupt's pending state waits for its deactivation). Used to wake
    /// a vCPU that waits in WFI; `false` for a vCPU that does not exist.
    ///
    /// This ignores the guest's priority mask; compare
    /// [`Vgic::highest_pending_priority`] with `ICH_VMCR_EL2.VPMR` for that.
    pub fn pending_for(&self, vcpu: usize) -> bool {
        self.highest_pending_priority(vcpu).is_some()
    }

    /// The best (numerically lowest) priority among the interrupts
    /// [`Vgic::pending_for`] counts, if any.
    pub fn highest_pending_priority(&self, vcpu: usize) -> Option<u8> {
        let state = self.vcpus.get(vcpu)?;
        let group1 = self.group1_enabled;
        let signalable =
            |irq: &Irq| group1 && irq.enabled && irq.group1 && !irq.active && irq.pending();
        let private = state.private.iter().filter(|irq| signalable(irq));
        let shared = self.spis.iter().filter(|spi| {
            let ours = match spi.irq.inflight {
                Some(flight) => flight.vcpu == vcpu,
                None => self.may_receive(spi, vcpu),
            };
            ours && signalable(&spi.irq)
        });
        private
            .map(|irq| irq.priority)
            .chain(shared.map(|spi| spi.irq.priority))
            .min()
    }

    fn check_vcpu(&self, vcpu: usize) -> Result<(), Error> {
        if vcpu < self.vcpus.len() {
            Ok(())
        } else {
            Err(Error::NoSuchVcpu { vcpu })
        }
    }

    /// Where `intid`'s state lives; `vcpu` matters for private interrupts.
    fn loc(&self, intid: IntId, vcpu: usize) -> Result<Loc, Error> {
        if intid.is_private() {
            self.check_vcpu(vcpu)?;
            return Ok(Loc::Private {
                vcpu,
                intid: intid.get() as usize,
            });
        }
        let index = intid.get() - IntId::FIRST_SPI;
        if index < self.nr_spis {
            Ok(Loc::Shared {
                index: index as usize,
            })
        } else {
            Err(Error::NoSuchIntId { intid })
        }
    }

    fn irq(&self, loc: Loc) -> Option<&Irq> {
        match loc {
            Loc::Private { vcpu, intid } => self.vcpus.get(vcpu)?.private.get(intid),
            Loc::Shared { index } => Some(&self.spis.get(index)?.irq),
        }
    }

    fn irq_mut(&mut self, loc: Loc) -> Option<&mut Irq> {
        match loc {
            Loc::Private { vcpu, intid } => self.vcpus.get_mut(vcpu)?.private.get_mut(intid),
            Loc::Shared { index } => Some(&mut self.spis.get_mut(index)?.irq),
        }
    }

    /// Applies `change` to the interrupt at `loc`; if its state changed,
    /// adds the vCPUs that should look again to `kick`.
    fn update(&mut self, loc: Loc, kick: &mut VcpuSet, change: impl FnOnce(&mut Irq)) {
        let Some(irq) = self.irq_mut(loc) else {
            return;
        };
        let before = *irq;
        change(irq);
        if *irq != before {
            self.kicks_for(loc, kick);
            self.settle_hw(loc);
        }
    }

    /// The vCPUs that should look again at the interrupt at `loc` after its
    /// state changed: the one holding it in a list register, and the ones
    /// it can now be delivered to.
    fn kicks_for(&self, loc: Loc, kick: &mut VcpuSet) {
        let Some(irq) = self.irq(loc) else {
            return;
        };
        if let Some(flight) = irq.inflight {
            kick.insert(flight.vcpu);
        }
        if !irq.active && !irq.deliverable(self.group1_enabled) {
            return;
        }
        match loc {
            Loc::Private { vcpu, .. } => kick.insert(vcpu),
            Loc::Shared { index } => {
                let Some(spi) = self.spis.get(index) else {
                    return;
                };
                match (irq.active, spi.active_on) {
                    (true, Some(owner)) => kick.insert(owner),
                    _ => *kick = kick.union(self.receivers(spi)),
                }
            }
        }
    }

    /// The vCPUs `spi` may be delivered to.
    fn receivers(&self, spi: &Spi) -> VcpuSet {
        match self.route(spi.router) {
            Route::Vcpu(vcpu) => {
                let mut set = VcpuSet::EMPTY;
                set.insert(vcpu);
                set
            }
            Route::Any => {
                let mut set = VcpuSet::EMPTY;
                for (vcpu, _) in self.vcpus.iter().enumerate().filter(|(_, v)| !v.asleep) {
                    set.insert(vcpu);
                }
                set
            }
            Route::Nowhere => VcpuSet::EMPTY,
        }
    }

    /// Whether `spi`'s routing lets `vcpu` take it.
    fn may_receive(&self, spi: &Spi, vcpu: usize) -> bool {
        match self.route(spi.router) {
            Route::Vcpu(target) => target == vcpu,
            Route::Any => self.vcpus.get(vcpu).is_some_and(|v| !v.asleep),
            Route::Nowhere => false,
        }
    }

    fn route(&self, router: u64) -> Route {
        if router & IROUTER_IRM != 0 {
            return Route::Any;
        }
        let field = |shift: u32| ((router >> shift) & 0xff) as u32;
        match self.vcpu_of(field(32), field(16), field(8), field(0)) {
            Some(vcpu) => Route::Vcpu(vcpu),
            None => Route::Nowhere,
        }
    }

    /// The vCPU with affinity `aff3.aff2.aff1.aff0`, if any.
    fn vcpu_of(&self, aff3: u32, aff2: u32, aff1: u32, aff0: u32) -> Option<usize> {
        if aff3 != 0 || aff2 != 0 || aff0 >= 16 {
            return None;
        }
        let vcpu = (aff1 * 16 + aff0) as usize;
        (vcpu < self.vcpus.len()).then_some(vcpu)
    }

    /// Every vCPU.
    fn all_vcpus(&self) -> VcpuSet {
        VcpuSet::first(self.vcpus.len())
    }
}

/// The INTID of private interrupt `index` (below 32).
fn private_id(index: usize) -> IntId {
    IntId::new(index as u32).unwrap_or(IntId::sgi_from_field(0))
}

/// The INTID of SPI number `index` (below [`MAX_SPIS`]).
fn spi_id(index: usize) -> IntId {
    IntId::spi(index as u32).unwrap_or(IntId::sgi_from_field(0))
}

#[cfg(test)]
mod tests;
