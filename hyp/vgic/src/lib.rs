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
//! # Work per run, not per interrupt
//!
//! `flush`, `sync` and `pending_for` run on nearly every exit, so they
//! must not look at every interrupt the VM has (32 per vCPU plus up to 960
//! SPIs) when typically one or two have any state. The model keeps the
//! *live* interrupts (pending, active, or in a list register; see
//! `Irq::live` in `irq.rs`) in bitmaps, one per vCPU for its SGIs and PPIs
//! and one for all SPIs, and these calls visit only their members. The
//! sets are exact, not hints: every change to an interrupt's state goes
//! through one function (`Vgic::modify`) that updates its bit, and a
//! property test compares them with a full scan after random traffic.
//! `sync` visits only the list registers `flush` filled.
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
mod bitmap;
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

use bitmap::Bitmap;
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

/// Words of the live-SPI bitmap: one bit for each SPI a VM can have.
const SPI_WORDS: usize = MAX_SPIS.div_ceil(64) as usize;

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
    /// The live private interrupts. Invariant: bit `i` is set if and only
    /// if `private[i].live()`; kept by changing `private` only through
    /// [`Vgic::modify`].
    live: Bitmap<1>,
    /// `GICR_WAKER.ProcessorSleep` (and so `ChildrenAsleep`).
    asleep: bool,
    /// `GICR_PROPBASER`, kept as written.
    propbaser: u64,
    /// `GICR_PENDBASER`, kept as written.
    pendbaser: u64,
    /// What `flush` put in list registers `0..in_lr_count`, until `sync`
    /// (which sets the count back to 0; the entries past it mean nothing).
    in_lrs: [IntId; MAX_LIST_REGISTERS],
    in_lr_count: usize,
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
            // Nothing is pending or active at reset.
            live: Bitmap::EMPTY,
            // Redistributors come out of reset asleep (GICR_WAKER).
            asleep: true,
            propbaser: 0,
            pendbaser: 0,
            in_lrs: [IntId::sgi_from_field(0); MAX_LIST_REGISTERS],
            in_lr_count: 0,
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
    /// The live SPIs, whichever vCPU they are routed to or held by.
    /// Invariant: bit `i` is set if and only if `spis[i].irq.live()`; kept
    /// by changing an SPI's `irq` only through [`Vgic::modify`].
    live_spis: Bitmap<SPI_WORDS>,
    /// Indices of the linked SPIs, in the order they were linked.
    hw_spis: Vec<usize>,
    /// How many linked SPIs have a release not yet taken.
    hw_releases: usize,
}

/// The best candidates for list registers, best first, and how many were
/// offered: a bounded selection made in the list register array `flush`
/// fills (as sort keys, until `flush` turns each into its list register
/// value), so that choosing neither allocates nor initialises anything.
struct Best<'a> {
    keys: &'a mut [u64],
    len: usize,
    offered: usize,
}

/// Sort key of a list register candidate: active interrupts first (they
/// must be in a list register for the guest to deactivate them), then by
/// priority (lower value first), then by INTID. Packed in one integer,
/// "not active" in bit 40, the priority in bits 39:32 and the INTID in
/// bits 31:0, so that comparing keys compares in that order and the INTID
/// comes back out of the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u64);

impl Key {
    fn new(active: bool, priority: u8, intid: IntId) -> Self {
        Self(u64::from(!active) << 40 | u64::from(priority) << 32 | u64::from(intid.get()))
    }

    fn intid(self) -> IntId {
        IntId::new(self.0 as u32).unwrap_or(IntId::sgi_from_field(0))
    }
}

impl<'a> Best<'a> {
    /// An empty selection of at most `keys.len()` candidates, kept in
    /// `keys` (whatever it holds now is overwritten).
    fn new(keys: &'a mut [u64]) -> Self {
        Self {
            keys,
            len: 0,
            offered: 0,
        }
    }

    fn offer(&mut self, key: Key) {
        self.offered += 1;
        let cap = self.keys.len();
        if self.len == cap && (cap == 0 || key.0 > self.keys[cap - 1]) {
            return;
        }
        // Insertion sort from the end: when full, the worst is dropped.
        let mut at = self.len.min(cap - 1);
        while at > 0 && key.0 < self.keys[at - 1] {
            self.keys[at] = self.keys[at - 1];
            at -= 1;
        }
        self.keys[at] = key.0;
        self.len = (self.len + 1).min(cap);
    }

    /// The chosen candidates, best first.
    #[cfg(test)]
    fn chosen(&self) -> impl Iterator<Item = Key> + '_ {
        self.keys[..self.len].iter().map(|&key| Key(key))
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
            live_spis: Bitmap::EMPTY,
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
        // The hypervisor forwards the timer lines before every entry, and
        // mostly they have not moved: a line already at `high` has no edge
        // and changes nothing.
        if self.irq(loc).is_some_and(|irq| irq.line != high) {
            self.update(loc, &mut kick, |irq| irq.set_line(high));
        }
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
                let mut rest = list;
                while rest != 0 {
                    let aff0 = u32::from(range_selector) * 16 + rest.trailing_zeros();
                    rest &= rest - 1;
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
        let loc = Loc::Private {
            vcpu,
            intid: intid.get() as usize,
        };
        let raised = self.modify(loc, |irq| {
            let raise = irq.group1 && !irq.latch;
            if raise {
                irq.set_pending();
            }
            raise
        });
        if raised == Some(true) {
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
        let (used, overflow) = if self.vcpus[vcpu].live.is_empty() && self.live_spis.is_empty() {
            // The usual case on an exit that had nothing to do with
            // interrupts.
            (0, false)
        } else {
            let cap = lrs.len().min(MAX_LIST_REGISTERS);
            let mut best = Best::new(&mut lrs[..cap]);
            self.select(vcpu, &mut best);
            (best.len, best.offered > best.len)
        };
        // One pass over all the list registers: `lrs[..used]` hold the
        // chosen candidates' keys, the rest are set invalid.
        for (slot, lr) in lrs.iter_mut().enumerate() {
            *lr = if slot < used {
                let intid = Key(*lr).intid();
                self.vcpus[vcpu].in_lrs[slot] = intid;
                self.place(vcpu, intid).bits()
            } else {
                ListRegister::INVALID.bits()
            };
        }
        self.vcpus[vcpu].in_lr_count = used;
        Ok(FlushResult { used, overflow })
    }

    /// Offers `best` the candidates for vCPU `vcpu`'s list registers. Only
    /// the live interrupts are looked at: an idle one is never a candidate.
    fn select(&self, vcpu: usize, best: &mut Best<'_>) {
        let Some(state) = self.vcpus.get(vcpu) else {
            return;
        };
        for intid in state.live.iter() {
            if let Some(key) = self.private_candidate(state, intid) {
                best.offer(key);
            }
        }
        for index in self.live_spis.iter() {
            if let Some(key) = self.spi_candidate(vcpu, index) {
                best.offer(key);
            }
        }
    }

    /// The sort key of private interrupt `intid` of `state` if `flush`
    /// should put it in a list register: in none yet, and active (so the
    /// guest can deactivate it) or deliverable.
    fn private_candidate(&self, state: &Vcpu, intid: usize) -> Option<Key> {
        let irq = state.private.get(intid)?;
        let wanted = irq.inflight.is_none() && (irq.active || irq.deliverable(self.group1_enabled));
        wanted.then(|| Key::new(irq.active, irq.priority, private_id(intid)))
    }

    /// The sort key of SPI number `index` if `flush` should put it in one
    /// of vCPU `vcpu`'s list registers: in none yet, and active on this
    /// vCPU (or, active on none, routed here) or deliverable and routed
    /// here.
    fn spi_candidate(&self, vcpu: usize, index: usize) -> Option<Key> {
        let spi = self.spis.get(index)?;
        let irq = &spi.irq;
        if irq.inflight.is_some() {
            return None;
        }
        let wanted = if irq.active {
            match spi.active_on {
                Some(owner) => owner == vcpu,
                None => self.may_receive(spi, vcpu),
            }
        } else {
            irq.deliverable(self.group1_enabled) && self.may_receive(spi, vcpu)
        };
        wanted.then(|| Key::new(irq.active, irq.priority, spi_id(index)))
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
        let placed = self.modify(loc, |irq| {
            let state = match (irq.active, irq.trigger) {
                (false, _) => LrState::Pending,
                // A linked SPI's pending state while active would be a
                // second activation of a physical SPI that is still active:
                // it waits for the deactivation (and never happens unless
                // the caller reported one activation twice).
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
            let lr = ListRegister::new(intid, irq.priority, state);
            match hw {
                Some(link) => lr.with_hw(link.pintid),
                None if irq.trigger == Trigger::Level => lr.with_eoi_maintenance(),
                None => lr,
            }
        });
        let Some(lr) = placed else {
            return ListRegister::INVALID;
        };
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
        let placed = core::mem::take(&mut self.vcpus[vcpu].in_lr_count);
        let mut first_error = None;
        for slot in 0..placed {
            let intid = self.vcpus[vcpu].in_lrs[slot];
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
        let unflushed = lrs.get(placed..).unwrap_or_default();
        for (n, &bits) in unflushed.iter().enumerate() {
            if ListRegister::from_bits(bits).state() != LrState::Invalid {
                first_error.get_or_insert(Error::UnexpectedLr { lr: placed + n });
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Takes back whatever `vcpu`'s list registers held as flushed,
    /// unchanged.
    fn take_back(&mut self, vcpu: usize) {
        let placed = core::mem::take(&mut self.vcpus[vcpu].in_lr_count);
        for slot in 0..placed {
            let intid = self.vcpus[vcpu].in_lrs[slot];
            self.fold(vcpu, intid, None);
        }
    }

    /// Folds the state `now` (`None`: as placed) that `vcpu`'s list
    /// register shows for `intid` back into the model.
    fn fold(&mut self, vcpu: usize, intid: IntId, now: Option<LrState>) {
        let Ok(loc) = self.loc(intid, vcpu) else {
            return;
        };
        let folded = self.modify(loc, |irq| {
            let flight = irq.inflight.filter(|f| f.vcpu == vcpu)?;
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
            Some((now, irq.active))
        });
        let Some(Some((now, active))) = folded else {
            return;
        };
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
        // What `highest_pending_priority(vcpu).is_some()` says, stopping at
        // the first one.
        let Some(state) = self.vcpus.get(vcpu) else {
            return false;
        };
        state
            .live
            .iter()
            .any(|intid| self.private_signalable(state, intid).is_some())
            || self
                .live_spis
                .iter()
                .any(|index| self.spi_signalable(vcpu, index).is_some())
    }

    /// The best (numerically lowest) priority among the interrupts
    /// [`Vgic::pending_for`] counts, if any.
    pub fn highest_pending_priority(&self, vcpu: usize) -> Option<u8> {
        let state = self.vcpus.get(vcpu)?;
        let private = state
            .live
            .iter()
            .filter_map(|intid| self.private_signalable(state, intid));
        let shared = self
            .live_spis
            .iter()
            .filter_map(|index| self.spi_signalable(vcpu, index));
        private.chain(shared).min()
    }

    /// The priority of private interrupt `intid` of `state` if it counts
    /// for [`Vgic::pending_for`].
    fn private_signalable(&self, state: &Vcpu, intid: usize) -> Option<u8> {
        let irq = state.private.get(intid)?;
        self.signalable(irq).then_some(irq.priority)
    }

    /// The priority of SPI number `index` if it counts for vCPU `vcpu`'s
    /// [`Vgic::pending_for`]: in its list registers, or in none and routed
    /// to it.
    fn spi_signalable(&self, vcpu: usize, index: usize) -> Option<u8> {
        let spi = self.spis.get(index)?;
        let ours = match spi.irq.inflight {
            Some(flight) => flight.vcpu == vcpu,
            None => self.may_receive(spi, vcpu),
        };
        (ours && self.signalable(&spi.irq)).then_some(spi.irq.priority)
    }

    /// Whether `irq` could be taken by the guest now, wherever it is
    /// routed: pending, enabled, Group 1 enabled, and not active.
    fn signalable(&self, irq: &Irq) -> bool {
        self.group1_enabled && irq.enabled && irq.group1 && !irq.active && irq.pending()
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

    /// Applies `change` to the interrupt at `loc` and updates its bit in
    /// the live sets: the one way the model changes an interrupt's state,
    /// so that the live sets stay exact. `None` if there is no such
    /// interrupt.
    fn modify<R>(&mut self, loc: Loc, change: impl FnOnce(&mut Irq) -> R) -> Option<R> {
        match loc {
            Loc::Private { vcpu, intid } => {
                let state = self.vcpus.get_mut(vcpu)?;
                let irq = state.private.get_mut(intid)?;
                let result = change(irq);
                let live = irq.live();
                state.live.set(intid, live);
                Some(result)
            }
            Loc::Shared { index } => {
                let irq = &mut self.spis.get_mut(index)?.irq;
                let result = change(irq);
                let live = irq.live();
                self.live_spis.set(index, live);
                Some(result)
            }
        }
    }

    /// Applies `change` to the interrupt at `loc`; if its state changed,
    /// adds the vCPUs that should look again to `kick`.
    fn update(&mut self, loc: Loc, kick: &mut VcpuSet, change: impl FnOnce(&mut Irq)) {
        let changed = self.modify(loc, |irq| {
            let before = *irq;
            change(irq);
            *irq != before
        });
        if changed == Some(true) {
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
