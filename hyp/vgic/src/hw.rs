//! Hardware-linked virtual SPIs: a passthrough device's interrupt, taken
//! by the hypervisor as a physical SPI and handed to the guest in a list
//! register with HW = 1, so that the guest's own deactivation of the
//! virtual interrupt deactivates the physical one (`ICH_LR<n>_EL2.HW` and
//! pINTID, GICv3, IHI 0069).
//!
//! # The contract with the hypervisor
//!
//! The physical SPI is level-sensitive (a PCI function's INTx). The
//! hypervisor runs its physical CPU interface with `ICC_CTLR_EL1.EOImode`
//! = 1: it acknowledges the SPI (`ICC_IAR1_EL1`), drops priority
//! (`ICC_EOIR1_EL1`) but does not deactivate it, and calls
//! [`Vgic::hw_interrupt`]. From then on the physical SPI is *held*: active,
//! so it cannot be signalled again, whatever the device's line does. The
//! virtual SPI is pending once, becomes active when the guest acknowledges
//! it, and when the guest deactivates it the GIC deactivates the physical
//! SPI too; if the device still asserts INTx, the physical SPI is pending
//! again at once and the cycle repeats. From the model's view a linked SPI
//! is therefore edge-like whatever `GICD_ICFGR` says: one
//! [`Vgic::hw_interrupt`], one delivery, one deactivation; its list
//! registers are never pending and active at once (the pending state of a
//! held interrupt is the physical one's) and never ask for an EOI
//! maintenance interrupt (the GIC re-samples the line itself).
//!
//! Invariant, for every linked SPI between calls: the physical SPI is held
//! exactly when the virtual one is pending, active or in a list register.
//! Whenever the model drops the virtual state without the guest having
//! deactivated it through a list register (the guest wrote `GICD_ICPENDR`
//! or `GICD_ICACTIVER`; the SPI is unlinked), the physical SPI would stay
//! active forever and the device's INTx would be lost, so the model
//! *releases* it: [`Vgic::take_hw_deactivation`] then hands its INTID to
//! the hypervisor, which deactivates it (`ICC_DIR_EL1`). [`Vgic::unlink_hw`]
//! returns the INTID instead.
//!
//! # What the guest can do to a linked SPI
//!
//! - `GICD_ICPENDR`: clears the pending state (also one sitting in a list
//!   register, at `sync`); if the SPI is not active, the physical one is
//!   released, and, if the device still asserts INTx, it fires again (as
//!   KVM does: a level interrupt's pending state follows its line).
//! - `GICD_ICACTIVER`: the SPI is no longer active (also one sitting in a
//!   list register: the guest did not deactivate it there, so `sync` keeps
//!   the model's view); the physical one is released unless the SPI is
//!   also pending. A kernel booting in a reused VM clears every active
//!   state this way.
//! - `GICD_ISPENDR`, `GICD_ISACTIVER`: ignored (write-ignored bits). A
//!   pending or active state the device did not cause would reach a list
//!   register with HW = 1, and the guest's deactivation of it would
//!   deactivate a physical SPI the VM does not hold, possibly one the
//!   hypervisor just acknowledged and has not reported yet. Linux never
//!   sets these for a level-triggered SPI: it re-triggers edge interrupts
//!   only.

use crate::irq::Irq;
use crate::{Error, IntId, Loc, PhysIntId, VcpuSet, Vgic};

/// A virtual SPI's link to a physical SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HwLink {
    /// The physical SPI.
    pub pintid: PhysIntId,
    /// The physical SPI is active on the VM's behalf: reported by
    /// `hw_interrupt`, and not yet deactivated by the guest (through a
    /// list register) or released.
    pub held: bool,
    /// Released: the hypervisor must deactivate the physical SPI
    /// (`take_hw_deactivation` has not handed it out yet).
    pub release: bool,
    /// `hw_interrupt` came while the SPI was in a list register: the
    /// physical SPI cannot fire while active, so the guest deactivated the
    /// activation in the list register, and this is a new one. `sync`
    /// keeps it held even if its pending state is gone by then (the guest
    /// cleared it with ICPENDR: then it is released).
    pub fresh: bool,
}

impl Vgic {
    /// Links SPI `intid` to physical SPI `pintid`: from now on it is made
    /// pending by [`Vgic::hw_interrupt`] only, and [`Vgic::flush`] hands it
    /// out with HW = 1 and pINTID = `pintid`. Link before the guest uses
    /// the interrupt (at VM creation).
    ///
    /// # Errors
    ///
    /// [`Error::NotAnSpi`] for an SGI or PPI; [`Error::NoSuchIntId`] for an
    /// SPI past the VM's count; [`Error::HwLinked`] if `intid` is linked
    /// already; [`Error::PintidInUse`] if another SPI is linked to
    /// `pintid`; [`Error::HwBusy`] if `intid` is pending, active, in a list
    /// register or its line is high.
    pub fn link_hw(&mut self, intid: IntId, pintid: PhysIntId) -> Result<(), Error> {
        let index = self.spi_of(intid)?;
        if let Some(link) = self.spis[index].hw {
            return Err(Error::HwLinked {
                intid,
                pintid: link.pintid,
            });
        }
        if let Some(other) = self.hw_spis.iter().copied().find(|&other| {
            self.spis[other]
                .hw
                .is_some_and(|link| link.pintid == pintid)
        }) {
            return Err(Error::PintidInUse {
                pintid,
                intid: crate::spi_id(other),
            });
        }
        let irq = &self.spis[index].irq;
        if irq.pending() || irq.line || irq.active || irq.inflight.is_some() {
            return Err(Error::HwBusy { intid });
        }
        self.spis[index].hw = Some(HwLink {
            pintid,
            held: false,
            release: false,
            fresh: false,
        });
        self.hw_spis.push(index);
        Ok(())
    }

    /// Removes SPI `intid`'s link, at VM teardown or when the device goes
    /// away. Returns the physical SPI if it is still active on the VM's
    /// behalf (held, or released and not yet taken): the hypervisor must
    /// deactivate it (`ICC_DIR_EL1`), or the device's INTx stays masked
    /// for whoever gets it next. Afterwards this `Vgic` never asks for it
    /// again.
    ///
    /// The virtual SPI becomes a plain one: a pending state that came from
    /// the device is dropped (the device is no longer the VM's), an active
    /// state stays for the guest to deactivate, now virtually only.
    ///
    /// # Errors
    ///
    /// [`Error::NotAnSpi`], [`Error::NoSuchIntId`], [`Error::NotHwLinked`];
    /// [`Error::HwInFlight`] if the SPI is in a vCPU's list registers (the
    /// guest could still deactivate the physical SPI there): stop and sync
    /// that vCPU first. Nothing changes on an error.
    pub fn unlink_hw(&mut self, intid: IntId) -> Result<Option<PhysIntId>, Error> {
        let index = self.spi_of(intid)?;
        let spi = &self.spis[index];
        let Some(link) = spi.hw else {
            return Err(Error::NotHwLinked { intid });
        };
        if let Some(flight) = spi.irq.inflight {
            return Err(Error::HwInFlight {
                intid,
                vcpu: flight.vcpu,
            });
        }
        self.spis[index].hw = None;
        let _ = self.modify(Loc::Shared { index }, |irq| irq.latch = false);
        if link.release {
            self.hw_releases -= 1;
        }
        self.hw_spis.retain(|&other| other != index);
        Ok((link.held || link.release).then_some(link.pintid))
    }

    /// Unlinks every linked SPI ([`Vgic::unlink_hw`]) at VM teardown, once
    /// every vCPU has stopped and synced. Returns the physical SPIs the
    /// hypervisor must deactivate.
    ///
    /// # Errors
    ///
    /// [`Error::HwInFlight`] for the first linked SPI still in a vCPU's
    /// list registers; nothing is unlinked then.
    pub fn unlink_all_hw(&mut self) -> Result<alloc::vec::Vec<PhysIntId>, Error> {
        for &index in &self.hw_spis {
            if let Some(flight) = self.spis[index].irq.inflight {
                return Err(Error::HwInFlight {
                    intid: crate::spi_id(index),
                    vcpu: flight.vcpu,
                });
            }
        }
        let linked: alloc::vec::Vec<IntId> = self
            .hw_spis
            .iter()
            .map(|&index| crate::spi_id(index))
            .collect();
        let mut deactivate = alloc::vec::Vec::new();
        for intid in linked {
            if let Some(pintid) = self.unlink_hw(intid)? {
                deactivate.push(pintid);
            }
        }
        Ok(deactivate)
    }

    /// The physical SPI linked to SPI `intid` has fired: the hypervisor
    /// acknowledged it and dropped priority, and it stays active until the
    /// guest deactivates the virtual SPI (or the model releases it). The
    /// virtual SPI becomes pending.
    ///
    /// Returns the vCPUs to kick.
    ///
    /// While the physical SPI is held it cannot fire again, so a second
    /// call before the guest's deactivation has been seen by `sync` means
    /// the guest deactivated it in a list register that is not synced yet
    /// (the new pending state is kept for after the `sync`), or a bug in
    /// the caller (the two merge into one delivery).
    ///
    /// # Errors
    ///
    /// [`Error::NotAnSpi`], [`Error::NoSuchIntId`]; [`Error::NotHwLinked`]
    /// if the SPI is not linked (any more): the caller still holds the
    /// physical SPI active and must deactivate it itself.
    pub fn hw_interrupt(&mut self, intid: IntId) -> Result<VcpuSet, Error> {
        let index = self.spi_of(intid)?;
        let spi = &mut self.spis[index];
        let in_lr = spi.irq.inflight.is_some();
        let Some(link) = spi.hw.as_mut() else {
            return Err(Error::NotHwLinked { intid });
        };
        link.held = true;
        link.fresh |= in_lr;
        let mut kick = VcpuSet::EMPTY;
        self.update(Loc::Shared { index }, &mut kick, Irq::set_pending);
        Ok(kick)
    }

    /// The next physical SPI the model released: the guest dropped the
    /// virtual state of a linked SPI without deactivating it in a list
    /// register (`GICD_ICPENDR`, `GICD_ICACTIVER`), so the hypervisor must
    /// deactivate the physical one (`ICC_DIR_EL1`, with EOImode = 1) for
    /// the device's INTx to be seen again. Call until `None` after every
    /// [`Vgic::dist_write`] and every [`Vgic::sync`] (and after a
    /// [`Vgic::flush`] that follows no `sync`, which takes the list
    /// registers back); each SPI is handed out once per release. Cheap when
    /// there is nothing: a counter is checked.
    pub fn take_hw_deactivation(&mut self) -> Option<PhysIntId> {
        if self.hw_releases == 0 {
            return None;
        }
        for &index in &self.hw_spis {
            if let Some(link) = self.spis[index].hw.as_mut().filter(|l| l.release) {
                link.release = false;
                self.hw_releases -= 1;
                return Some(link.pintid);
            }
        }
        None
    }

    /// The physical SPI SPI `intid` is linked to, if any.
    pub fn hw_link(&self, intid: IntId) -> Option<PhysIntId> {
        let index = self.spi_of(intid).ok()?;
        Some(self.spis[index].hw?.pintid)
    }

    /// Every linked SPI and its physical SPI, in the order they were
    /// linked.
    pub fn hw_links(&self) -> impl Iterator<Item = (IntId, PhysIntId)> + '_ {
        self.hw_spis.iter().filter_map(|&index| {
            let link = self.spis.get(index)?.hw?;
            Some((crate::spi_id(index), link.pintid))
        })
    }

    /// The SPI index of `intid`.
    fn spi_of(&self, intid: IntId) -> Result<usize, Error> {
        if intid.is_private() {
            return Err(Error::NotAnSpi { intid });
        }
        match self.loc(intid, 0)? {
            Loc::Shared { index } => Ok(index),
            Loc::Private { .. } => Err(Error::NotAnSpi { intid }),
        }
    }

    /// Whether the interrupt at `loc` is a linked SPI.
    pub(crate) fn is_hw(&self, loc: Loc) -> bool {
        match loc {
            Loc::Shared { index } => self.spis.get(index).is_some_and(|s| s.hw.is_some()),
            Loc::Private { .. } => false,
        }
    }

    /// After a change to the interrupt at `loc` that was not the guest
    /// deactivating it in a list register: if it is a linked SPI whose
    /// physical SPI is held but nothing of it is left (not pending, not
    /// active, in no list register), release the physical SPI.
    pub(crate) fn settle_hw(&mut self, loc: Loc) {
        let Loc::Shared { index } = loc else {
            return;
        };
        let Some(spi) = self.spis.get_mut(index) else {
            return;
        };
        let irq = spi.irq;
        let Some(link) = spi.hw.as_mut() else {
            return;
        };
        if link.held && !irq.latch && !irq.active && irq.inflight.is_none() {
            link.held = false;
            if !link.release {
                link.release = true;
                self.hw_releases += 1;
            }
        }
    }

    /// `sync` took the linked SPI at `loc` back from a list register;
    /// `deactivated`: it came back invalid, so the guest deactivated it, and
    /// the GIC the physical SPI with it. It stays held if a new activation
    /// came meanwhile (or, from a caller reporting one twice, if it is still
    /// pending or active); one whose virtual state is gone is released.
    pub(crate) fn hw_synced(&mut self, loc: Loc, deactivated: bool) {
        let Loc::Shared { index } = loc else {
            return;
        };
        let Some(spi) = self.spis.get_mut(index) else {
            return;
        };
        let irq = spi.irq;
        let Some(link) = spi.hw.as_mut() else {
            return;
        };
        if deactivated {
            link.held = link.fresh || irq.latch || irq.active;
        }
        link.fresh = false;
        self.settle_hw(loc);
    }
}
