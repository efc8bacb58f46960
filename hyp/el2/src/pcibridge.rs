//! A VM's virtual PCIe host bridge: the `vpci` model behind the guest's
//! ECAM window, with its BAR placements carried out in stage 2 and its
//! functions' INTx lines forwarded as hardware-linked virtual SPIs.
//!
//! - **Configuration space**: the ECAM window
//!   ([`guest_boot::virt::PCIE_ECAM`]) is left unmapped in stage 2, so
//!   every access traps; the data-abort path hands it to [`PciBridge`] (an
//!   [`MmioDevice`]), which passes it to [`VirtualBridge`] over the host's
//!   ECAM (`hostdisk::EcamAccess`). Guest-visible functions keep their host
//!   device numbers (00:08.0 stays 00:08.0), so their INTx lines keep the
//!   host's swizzle too.
//! - **BARs**: each write's [`vpci::Effects`] are carried out at once,
//!   under the bridge's lock (so two vCPUs' writes reach stage 2 in the
//!   order the model made them), through `Vm::modify_stage2`, which drops
//!   the CPUs' and the SMMU's TLB entries: the unmaps in one change, the
//!   maps in a second, so no entry is ever replaced without an
//!   invalidation between (break-before-make). A BAR the guest places where
//!   it cannot be mapped (outside the memory windows, overlapping another)
//!   is logged once per placement, rate-limited; writes to read-only
//!   registers, which drivers make as a matter of course, are only counted.
//! - **INTx**: at creation each function's line is linked in the vGIC
//!   (`Vgic::link_hw`, guest SPI = host SPI) and the physical SPI is made
//!   level-triggered, routed to CPU 0 and enabled; [`intx_route`] tells the
//!   scheduler's interrupt path which VM a physical SPI belongs to (it then
//!   drops priority only, and the guest's deactivation of the virtual SPI
//!   deactivates the physical one). [`PciBridge::teardown`] (the VM stops)
//!   and [`PciBridge::reset`] (PSCI `SYSTEM_RESET`) disable the physical
//!   SPIs and deactivate whatever the VM still held.
//!
//! Lock order: the bridge, then the VM's stage 2, its passthrough list and
//! the SMMU (`Vm::modify_stage2`); the route table alone; the vGIC alone.

use crate::gic;
use crate::hostdisk::EcamAccess;
use crate::lock::SpinMutex;
use crate::mmio::MmioDevice;
use crate::passthrough::{self, Attachment};
use crate::vm::Vm;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use guest_boot::virt::Spi;
use guest_boot::{GuestPci, IpaRange, PciWindows};
use log::{info, warn};
use pci::Bdf;
use vgic::{IntId, PhysIntId, Vgic};
use vpci::{
    BarMapping, BridgeError, Effect, Effects, Ignored, Passthrough, Unmapped, VirtualBridge,
};

/// Log lines a bridge writes in full about the guest's doings (ignored
/// accesses, refused placements, mapping changes) before it writes only
/// every power of two.
const LOG_ALWAYS: u64 = 16;

/// Physical SPIs forwarded to VMs: which VM's vGIC each goes to.
static ROUTES: SpinMutex<Vec<Route>> = SpinMutex::new(Vec::new());

/// A physical SPI and where it goes.
struct Route {
    pintid: PhysIntId,
    vintid: IntId,
    vm: Weak<Vm>,
}

/// The VM physical SPI `pintid` is forwarded to and the virtual SPI it is
/// linked to there, if any: for the interrupt path, which must then drop
/// priority only and report it with `Vgic::hw_interrupt`.
pub fn intx_route(pintid: u32) -> Option<(Arc<Vm>, IntId)> {
    let (vm, vintid) = {
        let routes = ROUTES.lock();
        let route = routes.iter().find(|r| r.pintid.get() == pintid)?;
        (route.vm.clone(), route.vintid)
    };
    // Upgraded (and the reference dropped by the caller) outside the lock:
    // dropping the last one frees the VM, whose teardown takes it.
    Some((vm.upgrade()?, vintid))
}

/// Why a VM's bridge could not be built.
#[derive(Debug)]
pub enum PciBridgeError {
    /// The VM has functions but the host bus is gone.
    NoHostBus,
    /// The VM's RAM is no IPA range (a bug).
    Ram {
        /// Its first IPA.
        start: u64,
        /// Its size.
        size: u64,
    },
    /// The model refused the functions or the layout.
    Bridge(BridgeError),
}

impl fmt::Display for PciBridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHostBus => f.write_str("PCI bridge: no host bus to reach the functions on"),
            Self::Ram { start, size } => {
                write!(
                    f,
                    "PCI bridge: RAM at {start:#x} ({size:#x} bytes) is no IPA range"
                )
            }
            Self::Bridge(e) => write!(f, "PCI bridge: {e}"),
        }
    }
}

/// What the bridge's lock guards.
struct Inner {
    bridge: VirtualBridge<EcamAccess>,
    /// BARs not mapped for a reason worth a log line, as last logged: a
    /// placement is reported once, not on every later write.
    refused: Vec<(Bdf, u8, Unmapped)>,
}

/// A VM's virtual PCIe host bridge.
pub struct PciBridge {
    vm: Weak<Vm>,
    name: String,
    inner: SpinMutex<Inner>,
    /// The functions: guest device number and host function.
    functions: Vec<(u8, Bdf)>,
    /// The INTx links made in the vGIC (each physical SPI once).
    links: Vec<(PhysIntId, IntId)>,
    /// Guest writes to read-only registers, counted rather than logged.
    read_only: AtomicU64,
    /// Log lines about the guest's doings, for rate limiting.
    logged: AtomicU64,
    torn_down: AtomicBool,
}

impl fmt::Debug for PciBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PciBridge")
            .field("vm", &self.name)
            .field("functions", &self.functions)
            .field("links", &self.links)
            .finish_non_exhaustive()
    }
}

impl PciBridge {
    /// The bridge for `vm` (just created, its functions attached, not
    /// started) exposing `attachments`; `None` without any. Links their
    /// INTx lines in the VM's vGIC and enables the physical SPIs. A line
    /// whose physical SPI another VM's function already forwards is not
    /// forwarded (a warning says so): the guest sees no interrupt pin.
    ///
    /// # Errors
    ///
    /// [`PciBridgeError::NoHostBus`], [`PciBridgeError::Bridge`]. Nothing
    /// is linked or enabled then.
    pub fn create(
        vm: &Arc<Vm>,
        attachments: &[Attachment],
    ) -> Result<Option<PciBridge>, PciBridgeError> {
        if attachments.is_empty() {
            return Ok(None);
        }
        let cs = passthrough::config_space().ok_or(PciBridgeError::NoHostBus)?;
        let functions: Vec<Passthrough> = attachments
            .iter()
            .map(|a| Passthrough {
                host: a.bdf(),
                guest_device: a.bdf().device(),
                bars: a.bars,
                intx: a.intx.and_then(|intx| forwardable(vm, a.bdf(), intx.spi)),
            })
            .collect();
        let (start, size) = vm.ram();
        let bridge = IpaRange::new(addr::IntermediatePhysAddr(start), size)
            .ok_or(PciBridgeError::Ram { start, size })
            .and_then(|ram| {
                VirtualBridge::new(cs, PciWindows::VIRT, ram, &functions)
                    .map_err(PciBridgeError::Bridge)
            });
        let bridge = match bridge {
            Ok(bridge) => bridge,
            Err(e) => {
                // The routes `forwardable` claimed.
                ROUTES.lock().retain(|r| !r.vm.ptr_eq(&Arc::downgrade(vm)));
                return Err(e);
            }
        };
        let mut links: Vec<(PhysIntId, IntId)> = Vec::new();
        for (_, intx) in bridge.intx_links() {
            let (Some(pintid), Some(vintid)) = (
                PhysIntId::spi(intx.host.number()),
                IntId::spi(intx.guest.number()),
            ) else {
                continue;
            };
            if !links.iter().any(|&(p, _)| p == pintid) {
                links.push((pintid, vintid));
            }
        }
        let pci = PciBridge {
            vm: Arc::downgrade(vm),
            name: vm.name.clone(),
            inner: SpinMutex::new(Inner {
                bridge,
                refused: Vec::new(),
            }),
            functions: functions.iter().map(|f| (f.guest_device, f.host)).collect(),
            links,
            read_only: AtomicU64::new(0),
            logged: AtomicU64::new(0),
            torn_down: AtomicBool::new(false),
        };
        pci.link(&mut vm.vgic.lock());
        pci.enable_spis();
        pci.log_created(&functions);
        Ok(Some(pci))
    }

    /// Runs `f` with the bridge as the guest's device tree describes it
    /// (`guest_boot::write_dtb_with_pci`).
    pub fn with_guest_pci<R>(&self, f: impl FnOnce(&GuestPci<'_>) -> R) -> R {
        f(&self.inner.lock().bridge.guest_pci())
    }

    /// The offset of `ipa` in the ECAM window, if it falls inside.
    pub fn offset_of(&self, ipa: u64) -> Option<u64> {
        let ecam = PciWindows::VIRT.ecam;
        ipa.checked_sub(ecam.start().get())
            .filter(|&off| off < ecam.size())
    }

    /// The VM restarts (PSCI `SYSTEM_RESET`; its vCPUs have stopped and its
    /// functions were reset): the guest's view of every function goes back
    /// to its state after reset, its BARs unmapped, and `fresh` becomes the
    /// VM's vGIC with the INTx lines linked in it again. Whatever the old
    /// vGIC held of the physical SPIs is deactivated.
    pub fn reset(&self, vm: &Vm, fresh: Vgic) {
        {
            let mut inner = self.inner.lock();
            let effects = inner.bridge.reset();
            inner.refused.clear();
            self.apply(vm, effects);
        }
        self.disable_spis();
        {
            let mut vgic = vm.vgic.lock();
            self.unlink(&mut vgic);
            *vgic = fresh;
            self.link(&mut vgic);
        }
        self.enable_spis();
    }

    /// The VM stops for good (its vCPUs have stopped): the physical SPIs are
    /// disabled and no longer routed, and every one the VM held is
    /// deactivated, so the function's INTx is seen by whoever gets it next.
    /// The BARs stay mapped in the stage 2 about to be freed (the functions
    /// are quiesced at detach). Idempotent.
    pub fn teardown(&self, vgic: &mut Vgic) {
        if self.torn_down.swap(true, Ordering::AcqRel) {
            return;
        }
        self.disable_spis();
        ROUTES
            .lock()
            .retain(|r| !(self.links.iter().any(|&(p, _)| p == r.pintid) && r.vm.ptr_eq(&self.vm)));
        self.unlink(vgic);
        let read_only = self.read_only.load(Ordering::Relaxed);
        if read_only > 0 {
            info!(
                "vm \"{}\": PCI: {read_only} write(s) to read-only configuration registers ignored",
                self.name
            );
        }
    }

    /// Links every INTx line in `vgic`, which must have none of them.
    fn link(&self, vgic: &mut Vgic) {
        for &(pintid, vintid) in &self.links {
            if let Err(e) = vgic.link_hw(vintid, pintid) {
                warn!(
                    "vm \"{}\": PCI: INTx {pintid} not forwarded to {vintid}: {e}",
                    self.name
                );
            }
        }
    }

    /// Unlinks every INTx line from `vgic` and deactivates the physical SPIs
    /// it held. One still in a list register that was never taken back (the
    /// vCPU stopped straight from the guest) is deactivated anyway: that
    /// list register is never synced, and deactivating an SPI that is not
    /// active does nothing.
    fn unlink(&self, vgic: &mut Vgic) {
        let held = match vgic.unlink_all_hw() {
            Ok(held) => held,
            Err(_) => {
                let all: Vec<PhysIntId> = vgic.hw_links().map(|(_, p)| p).collect();
                for &(_, vintid) in &self.links {
                    // Only `HwInFlight` for the SPI itself: the link goes
                    // with the vGIC either way.
                    let _ = vgic.unlink_hw(vintid);
                }
                all
            }
        };
        for pintid in held {
            gic::deactivate(pintid.get());
        }
    }

    fn enable_spis(&self) {
        for &(pintid, _) in &self.links {
            if let Err(e) = gic::route_passthrough_spi(pintid) {
                warn!(
                    "vm \"{}\": PCI: {pintid} not enabled ({e}); its INTx never arrives",
                    self.name
                );
            }
        }
    }

    fn disable_spis(&self) {
        for &(pintid, _) in &self.links {
            gic::set_spi_enabled(pintid, false);
        }
    }

    /// Carries out `effects` in `vm`'s stage 2: the unmaps, then (after
    /// their invalidation) the maps. Called with the bridge locked.
    fn apply(&self, vm: &Vm, effects: Effects) {
        if effects.is_empty() {
            return;
        }
        let (unmaps, maps): (Vec<Effect>, Vec<Effect>) = effects
            .into_iter()
            .partition(|e| matches!(e, Effect::Unmap { .. }));
        if !unmaps.is_empty() {
            vm.modify_stage2(|stage2| {
                for effect in &unmaps {
                    let Effect::Unmap { mapping, reason } = effect else {
                        continue;
                    };
                    let done = stage2.unmap(mapping.guest.start(), mapping.guest.size());
                    self.log_change(mapping, done.err(), || {
                        alloc::format!("unmapped ({reason})")
                    });
                }
            });
        }
        if !maps.is_empty() {
            vm.modify_stage2(|stage2| {
                for effect in &maps {
                    let Effect::Map(mapping) = effect else {
                        continue;
                    };
                    let done = stage2.map_device(
                        mapping.guest.start(),
                        mapping.host.start(),
                        mapping.guest.size(),
                    );
                    self.log_change(mapping, done.err(), || {
                        alloc::format!("mapped at {} onto {}", mapping.guest, mapping.host)
                    });
                }
            });
        }
    }

    /// Logs one stage-2 change (rate-limited), or its failure (always: the
    /// hypervisor's own).
    fn log_change(
        &self,
        mapping: &BarMapping,
        failed: Option<stage2::Stage2Error>,
        what: impl FnOnce() -> String,
    ) {
        match failed {
            Some(e) => log::error!(
                "vm \"{}\": passthrough {}: BAR{} at {}: stage 2: {e}",
                self.name,
                mapping.function,
                mapping.bar,
                mapping.guest
            ),
            None => self.rate_limited(|| {
                info!(
                    "vm \"{}\": passthrough {}: BAR{} {}",
                    self.name,
                    mapping.function,
                    mapping.bar,
                    what()
                )
            }),
        }
    }

    /// Logs the BARs of the function the guest just wrote to that are not
    /// mapped for a reason other than its decoding being off, once each
    /// per placement.
    fn log_refused(&self, inner: &mut Inner, offset: u64) {
        /// ECAM address bits 19:15: the device number.
        const DEVICE_SHIFT: u32 = 15;
        let device = ((offset >> DEVICE_SHIFT) & 0x1f) as u8;
        let Some(&(_, bdf)) = self.functions.iter().find(|(d, _)| *d == device) else {
            return;
        };
        for bar in 0..pci::BARS_TYPE0 as u8 {
            let refused = match inner.bridge.bar_status(bdf, bar) {
                Some(Err(why @ (Unmapped::OutsideWindow { .. } | Unmapped::Overlaps { .. }))) => {
                    Some(why)
                }
                _ => None,
            };
            let known = inner
                .refused
                .iter()
                .position(|&(b, i, _)| b == bdf && i == bar);
            match (refused, known) {
                (None, Some(at)) => {
                    inner.refused.swap_remove(at);
                }
                (Some(why), Some(at)) if inner.refused[at].2 == why => {}
                (Some(why), known) => {
                    if let Some(at) = known {
                        inner.refused.swap_remove(at);
                    }
                    inner.refused.push((bdf, bar, why));
                    self.rate_limited(|| {
                        warn!(
                            "vm \"{}\": passthrough {bdf}: BAR{bar} placed where it cannot be mapped: {why}",
                            self.name
                        )
                    });
                }
                (None, None) => {}
            }
        }
    }

    /// Counts a read-only write; logs any other ignored access.
    fn note(&self, why: Ignored) {
        match why {
            Ignored::ReadOnly { .. } => {
                self.read_only.fetch_add(1, Ordering::Relaxed);
            }
            other => self.rate_limited(|| warn!("vm \"{}\": PCI: {other}; ignored", self.name)),
        }
    }

    /// Runs `log` for the first [`LOG_ALWAYS`] lines, then at powers of two
    /// only (saying so once), so a guest cannot flood the console.
    fn rate_limited(&self, log: impl FnOnce()) {
        let what = "lines about its PCI bridge";
        crate::ratelimit::rate_limited(&self.name, &self.logged, LOG_ALWAYS, what, log);
    }

    fn log_created(&self, functions: &[Passthrough]) {
        for f in functions {
            let intx = match f.intx {
                Some(intx) => alloc::format!(
                    "INTx on SPI {} (INTID {}), hardware-linked to the host's SPI {}",
                    intx.guest.number(),
                    intx.guest.intid(),
                    intx.host.number()
                ),
                None => String::from("no INTx"),
            };
            info!(
                "vm \"{}\": PCI: {} as {:02x}:{:02x}.0 on its bridge (ECAM at {}), {intx}",
                self.name,
                f.host,
                0,
                f.guest_device,
                PciWindows::VIRT.ecam
            );
        }
    }
}

/// The INTx link to make for `bdf`'s line on host SPI `spi`, its route
/// claimed for `vm`; or `None` (with a warning) if another VM's function
/// forwards that SPI already.
fn forwardable(vm: &Arc<Vm>, bdf: Bdf, spi: u32) -> Option<vpci::Intx> {
    let spi = Spi::new(spi)?;
    let (pintid, vintid) = (PhysIntId::spi(spi.number())?, IntId::spi(spi.number())?);
    let mut routes = ROUTES.lock();
    // Routes of VMs that are gone (never torn down) are stale.
    routes.retain(|r| r.vm.strong_count() > 0);
    let other = routes
        .iter()
        .find(|r| r.pintid.get() == spi.intid() && !r.vm.ptr_eq(&Arc::downgrade(vm)))
        .and_then(|r| r.vm.upgrade());
    if let Some(other) = other {
        warn!(
            "vm \"{}\": passthrough {bdf}: its INTx (host SPI {}) is forwarded to vm \"{}\" already; the guest sees no interrupt pin",
            vm.name,
            spi.number(),
            other.name
        );
        return None;
    }
    if !routes.iter().any(|r| r.pintid == pintid) {
        routes.push(Route {
            pintid,
            vintid,
            vm: Arc::downgrade(vm),
        });
    }
    Some(vpci::Intx {
        host: spi,
        // The same number: the guest's SPIs 3 to 6 are free for INTx.
        guest: spi,
    })
}

impl MmioDevice for PciBridge {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let access = self.inner.lock().bridge.read(offset, size);
        if let Some(why) = access.ignored {
            self.note(why);
        }
        access.value
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let Some(vm) = self.vm.upgrade() else {
            return;
        };
        let mut inner = self.inner.lock();
        let access = inner.bridge.write(offset, size, value);
        self.apply(&vm, access.value);
        match access.ignored {
            Some(why) => self.note(why),
            None => self.log_refused(&mut inner, offset),
        }
    }
}
