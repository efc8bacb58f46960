//! Host PCI functions passed through to VMs: a function's DMA goes through
//! the SMMU with the VM's own stage-2 tables, tagged with the VM's VMID,
//! which stays pinned in the allocator for as long as the function is
//! attached.
//!
//! - **Attach** ([`attach_all`], from `Vm::create`): each function the
//!   manifest's `passthrough` names must be on the host bus, be neither the
//!   hypervisor's own disk nor a bridge, and be free (no other VM holds
//!   it). The VM's stage 2 must fit the SMMU (its VTCR_EL2 against the
//!   SMMU's features: granule, IPA size, start level, output size). Then
//!   the VM's VMID is pinned (`IdAllocator::pin`; with 3-bit VMIDs on 4
//!   CPUs only two can be), the function's BARs are placed in the host
//!   bridge's windows (once; the placement is kept for later VMs), its
//!   bus mastering and decoding are off, and its stream table entry is set
//!   to stage 2 with the pinned VMID, the VM's root table and VTCR_EL2.
//!   The VM gets an [`Attachment`] per function (on `Vm::passthrough`) for
//!   the virtual PCIe bridge to expose: the function, its stream, its
//!   physical BARs and its INTx line. With `passthrough_required = false`
//!   a function that cannot be attached is skipped with a warning;
//!   otherwise the VM is not created.
//! - **Detach** ([`detach_all`], when the VM stops, and from its `Drop` for
//!   whatever is left): bus mastering and decoding off (and INTx masked),
//!   the entry set to abort and the SMMU's TLB entries for the VMID
//!   dropped, a Function Level Reset if the function offers one (its BARs
//!   written back after it), the VMID unpinned, the function free for the
//!   next VM. A guest's PSCI `SYSTEM_RESET` resets its functions the same
//!   way but keeps them attached ([`reset_all`]).
//! - **Stage-2 changes**: `Vm::modify_stage2`, the one way to change a
//!   live VM's stage-2 tables, calls [`stage2_changed`], which drops the
//!   SMMU's TLB entries of the VM's VMID when it has a function.
//! - **Events** and the **self-check** run from [`poll`], at most every
//!   [`POLL_INTERVAL_MS`]: the SMMU's event queue is drained and each event
//!   logged decoded, with the name of the VM the stream belongs to, at most
//!   [`EVENTS_PER_SECOND`] lines a second (a device cannot flood the
//!   console; the rest are counted). In debug builds, after every VMID
//!   rollover (the allocator's generation moved), each live stream table
//!   entry's VMID must be the one it was attached with and the one its VM
//!   owns in the allocator now, no other running VM may own it, and no two
//!   VMs' entries may share one; a mismatch is logged with `error!` naming
//!   the VM. `hyp.no-vmid-pin` (debug builds) attaches without
//!   keeping the VMID pinned, so that a rollover takes it from the VM while
//!   the entry keeps it: the self-check must catch that; nothing here
//!   repairs the entry.
//!
//! The VMID allocator is the scheduler's: `sched::init` hands it over with
//! [`use_vmid_allocator`]. StreamIDs are routing IDs (QEMU virt's
//! `iommu-map` is the identity; the device tree's map is not read yet), and
//! INTx lines follow QEMU virt's `interrupt-map` ([`qemu_virt_intx_spi`]).
//!
//! Lock order: the registry, then the SMMU, then the allocator. No
//! `Arc<Vm>` is dropped while the registry is locked (a VM's `Drop`
//! detaches, which takes it).

use crate::hostdisk::{EcamAccess, HostBus};
use crate::lock::SpinMutex;
use crate::smmu::{self, SmmuError};
use crate::timer;
use crate::vm::Vm;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use id_alloc::{AllocError, Vmid, VmidAllocator};
use log::{error, info, warn};
use manifest::{PciFunction, VmSpec};
use pci::{
    AssignError, AssignedBars, Bar, BarKind, Bdf, CapabilityId, Command, ConfigSpace, FunctionInfo,
    HeaderType, Register,
};
use smmuv3::{Event, StreamId};
use spin::Once;

/// How often [`poll`] looks at the event queue and the allocator's
/// generation, at most.
pub const POLL_INTERVAL_MS: u64 = 10;

/// Event lines logged per second at most; the rest are counted.
pub const EVENTS_PER_SECOND: u32 = 8;

/// The stage-2 page size: what a VM is given a BAR in.
const PAGE_SIZE: u64 = 4096;

/// Time a function gets after a Function Level Reset before it must
/// answer configuration requests again (PCIe Base Specification §6.6.2).
const FLR_WAIT_MS: u64 = 100;

/// PCI Express capability: Device Capabilities at +4, bit 28 "Function
/// Level Reset Capability"; Device Control at +8, bit 15 "Initiate
/// Function Level Reset" (PCIe Base Specification §7.5.3.3, §7.5.3.4).
const PCIE_DEVICE_CAPABILITIES: u16 = 4;
const PCIE_DEVICE_CONTROL: u16 = 8;
const PCIE_FLR_CAPABLE: u32 = 1 << 28;
const PCIE_INITIATE_FLR: u32 = 1 << 15;

/// QEMU virt's first PCIe INTx SPI (`VIRT_PCIE` in its IRQ map): INTA to
/// INTD of slot 0 are SPIs 3 to 6, each further slot rotated by one.
const QEMU_VIRT_PCIE_FIRST_SPI: u32 = 3;
/// INTA to INTD.
const INTX_PINS: u32 = 4;

/// The VMID allocator, from [`use_vmid_allocator`].
static VMIDS: Once<&'static VmidAllocator> = Once::new();

/// Whether attaching pins the VM's VMID (cleared by `hyp.no-vmid-pin`).
static PIN_VMIDS: AtomicBool = AtomicBool::new(true);

/// Counter value before which [`poll`] does nothing.
static NEXT_POLL: AtomicU64 = AtomicU64::new(0);

/// What the host bus and the attached functions look like.
static REGISTRY: SpinMutex<Registry> = SpinMutex::new(Registry {
    bus: None,
    host_disk: None,
    placed: Vec::new(),
    attached: Vec::new(),
});

/// [`poll`]'s own state; one CPU polls at a time.
static POLLER: SpinMutex<Poller> = SpinMutex::new(Poller {
    checked_generation: 1,
    window_start: 0,
    shown: 0,
    suppressed: 0,
});

/// The host bus and who holds what on it.
struct Registry {
    bus: Option<HostBus>,
    host_disk: Option<Bdf>,
    /// Functions whose BARs have been placed, for good: a later VM gets
    /// the same placement.
    placed: Vec<(Bdf, AssignedBars)>,
    /// The functions attached now.
    attached: Vec<Holder>,
}

/// A function attached to a VM, as the registry knows it.
struct Holder {
    bdf: Bdf,
    stream: StreamId,
    vmid: Vmid,
    vm: Weak<Vm>,
    name: String,
}

/// What [`poll`] remembers between calls.
struct Poller {
    /// The allocator generation the self-check last ran for (1: none yet,
    /// there has been no rollover).
    checked_generation: u64,
    /// Start of the current second of event lines (counter value).
    window_start: u64,
    /// Event lines logged in it.
    shown: u32,
    /// Events not logged in it.
    suppressed: u64,
}

/// A function's legacy interrupt line: its pin and the SPI it reaches the
/// host GIC on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intx {
    /// 1 to 4: INTA to INTD (the interrupt pin register).
    pub pin: u8,
    /// The SPI number (INTID 32 + `spi`).
    pub spi: u32,
}

impl Intx {
    /// The SPI's interrupt ID.
    pub fn intid(self) -> u32 {
        32 + self.spi
    }
}

/// A host PCI function attached to a VM: what the virtual PCIe bridge
/// needs to expose it.
#[derive(Clone, Copy, Debug)]
pub struct Attachment {
    /// The function as it identified itself.
    pub function: FunctionInfo,
    /// Its StreamID at the SMMU.
    pub stream: StreamId,
    /// The VMID its stream table entry holds.
    pub vmid: Vmid,
    /// Whether the VMID was pinned for it (not with `hyp.no-vmid-pin`).
    pub pinned: bool,
    /// Its BARs and where they were placed in the host bridge's windows.
    pub bars: AssignedBars,
    /// Its INTx line, if it has one.
    pub intx: Option<Intx>,
}

impl Attachment {
    /// Where the function is.
    pub fn bdf(&self) -> Bdf {
        self.function.bdf
    }
}

/// Why a function could not be attached to a VM. Every message names the
/// function; the caller names the VM.
#[derive(Debug)]
pub enum AttachError {
    /// No SMMU, or it could not be set up: DMA cannot be confined.
    NoSmmu(PciFunction),
    /// No PCIe host bridge.
    NoHostBus(PciFunction),
    /// The VMID allocator was not handed over (see [`use_vmid_allocator`]).
    NoVmidAllocator(PciFunction),
    /// Not on the host bridge's first bus, the only one enumerated.
    NotOnRootBus {
        /// The function.
        function: PciFunction,
        /// The bus that is enumerated.
        bus: u8,
    },
    /// Nothing answers there.
    NotFound(PciFunction),
    /// The hypervisor's own disk.
    HostDisk(Bdf),
    /// A bridge (or other non-endpoint header): its secondary bus would
    /// come with it.
    Bridge(FunctionInfo),
    /// Another VM holds it.
    Busy {
        /// The function.
        bdf: Bdf,
        /// The VM holding it.
        holder: String,
    },
    /// The VM's stage 2 does not fit the SMMU.
    Stage2(Bdf, SmmuError),
    /// The pin limit is reached.
    NoVmidToPin {
        /// The function.
        bdf: Bdf,
        /// The most VMIDs that may be pinned.
        limit: u32,
        /// The VMID width.
        bits: u32,
        /// CPUs the allocator serves.
        cpus: usize,
    },
    /// The allocator refused the pin otherwise.
    Pin(Bdf, AllocError),
    /// Its BARs could not be placed.
    Bars(Bdf, AssignError),
    /// The SMMU refused the stream table entry.
    Smmu(Bdf, SmmuError),
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSmmu(function) => write!(
                f,
                "passthrough of {function}: no SMMU to confine its DMA (none in the device tree, or it failed to start)"
            ),
            Self::NoHostBus(function) => {
                write!(f, "passthrough of {function}: no PCIe host bridge")
            }
            Self::NoVmidAllocator(function) => write!(
                f,
                "passthrough of {function}: no VMID allocator to pin VMIDs with (the scheduler did not hand it over)"
            ),
            Self::NotOnRootBus { function, bus } => write!(
                f,
                "passthrough of {function}: only functions on bus {bus:02x} can be passed through"
            ),
            Self::NotFound(function) => {
                write!(f, "passthrough of {function}: no such function on the host bus")
            }
            Self::HostDisk(bdf) => write!(
                f,
                "passthrough of {bdf}: it is the hypervisor's own disk"
            ),
            Self::Bridge(info) => write!(
                f,
                "passthrough of {}: it is a bridge ({info}), not an endpoint",
                info.bdf
            ),
            Self::Busy { bdf, holder } => write!(
                f,
                "passthrough of {bdf}: already attached to vm \"{holder}\""
            ),
            Self::Stage2(bdf, e) => write!(
                f,
                "passthrough of {bdf}: the VM's stage 2 does not fit the SMMU: {e}"
            ),
            Self::NoVmidToPin {
                bdf,
                limit,
                bits,
                cpus,
            } => write!(
                f,
                "passthrough of {bdf}: no VMID left to pin (at most {limit} of the {bits}-bit VMIDs can be pinned on {cpus} CPUs, and all are)"
            ),
            Self::Pin(bdf, e) => write!(f, "passthrough of {bdf}: VMID pin: {e}"),
            Self::Bars(bdf, e) => write!(f, "passthrough of {bdf}: BARs: {e}"),
            Self::Smmu(bdf, e) => write!(f, "passthrough of {bdf}: {e}"),
        }
    }
}

/// Hands over the scheduler's VMID allocator: `sched::init` calls it
/// with the allocator it made. Until then every attach is refused
/// ([`AttachError::NoVmidAllocator`]).
pub fn use_vmid_allocator(vmids: &'static VmidAllocator) {
    VMIDS.call_once(|| vmids);
}

/// `hyp.no-vmid-pin`: attach with the VM's VMID of the moment without
/// keeping it pinned, so that the self-check can be seen to fail.
pub fn disable_vmid_pinning() {
    PIN_VMIDS.store(false, Ordering::Relaxed);
}

/// Whether the self-check runs after rollovers: in debug builds (the only
/// ones that honour `hyp.no-vmid-pin`).
fn self_check_enabled() -> bool {
    cfg!(debug_assertions) || !PIN_VMIDS.load(Ordering::Relaxed)
}

/// Takes over the host bus (after the host disk, if any, was probed on it:
/// `host_disk` is its function, never passed through).
pub fn init(bus: Option<HostBus>, host_disk: Option<Bdf>) {
    let mut registry = REGISTRY.lock();
    registry.bus = bus;
    registry.host_disk = host_disk;
}

/// The host bus's configuration space access, for the virtual PCIe
/// bridges of VMs with functions (each keeps a copy; each touches only its
/// own functions). `None` without a host bus.
pub fn config_space() -> Option<EcamAccess> {
    REGISTRY.lock().bus.as_ref().map(|bus| bus.config)
}

/// The SPI that INTx pin `pin` (1 to 4) of a function in slot `device`
/// raises on QEMU virt: its `interrupt-map` rotates INTA to INTD of each
/// slot over SPIs 3 to 6 (`create_pcie_irq_map` in QEMU's hw/arm/virt.c:
/// SPI 3 + (pin - 1 + slot) mod 4). `None` for pin 0 (no INTx) or a
/// reserved pin.
pub fn qemu_virt_intx_spi(device: u8, pin: u8) -> Option<u32> {
    let index = u32::from(pin).checked_sub(1).filter(|&i| i < INTX_PINS)?;
    Some(QEMU_VIRT_PCIE_FIRST_SPI + (index + u32::from(device)) % INTX_PINS)
}

/// Attaches every function `spec` passes through to `vm` (just created,
/// not started): each attached one is added to `vm.passthrough` and
/// logged. A function that cannot be attached is skipped with a warning if
/// the spec says `passthrough_required = false`; otherwise its error is
/// returned, and the caller drops the VM (whose `Drop` detaches what was
/// attached).
///
/// # Errors
///
/// The first [`AttachError`] of a required function.
pub fn attach_all(vm: &Arc<Vm>, spec: &VmSpec) -> Result<(), AttachError> {
    for &function in &spec.passthrough {
        match attach(vm, function) {
            Ok(attachment) => vm.passthrough.lock().push(attachment),
            Err(e) if spec.passthrough_required => return Err(e),
            Err(e) => warn!(
                "vm \"{}\": {e}; starting without it (passthrough_required = false)",
                vm.name
            ),
        }
    }
    Ok(())
}

/// Attaches one function to `vm`; see the module documentation.
fn attach(vm: &Arc<Vm>, function: PciFunction) -> Result<Attachment, AttachError> {
    let vmids = *VMIDS.get().ok_or(AttachError::NoVmidAllocator(function))?;
    let mut guard = REGISTRY.lock();
    let registry = &mut *guard;
    let host_disk = registry.host_disk;
    let bus = registry
        .bus
        .as_mut()
        .ok_or(AttachError::NoHostBus(function))?;
    if function.bus() != bus.bus {
        return Err(AttachError::NotOnRootBus {
            function,
            bus: bus.bus,
        });
    }
    let bdf = Bdf::new(function.bus(), function.device(), function.function())
        .ok_or(AttachError::NotFound(function))?;
    let mut cs = bus.config;
    let info = pci::probe_function(&cs, bdf).ok_or(AttachError::NotFound(function))?;
    if host_disk == Some(bdf) {
        return Err(AttachError::HostDisk(bdf));
    }
    if info.header_type != HeaderType::Endpoint || info.class.is_pci_bridge() {
        return Err(AttachError::Bridge(info));
    }
    if let Some(holder) = registry.attached.iter().find(|h| h.bdf == bdf) {
        return Err(AttachError::Busy {
            bdf,
            holder: holder.name.clone(),
        });
    }
    let stream = StreamId(u32::from(bdf.routing_id()));
    let root = vm.stage2_root();
    match smmu::with(|smmu| smmu.check_stage2(root, vm.vtcr)) {
        None => return Err(AttachError::NoSmmu(function)),
        Some(Err(e)) => return Err(AttachError::Stage2(bdf, e)),
        Some(Ok(())) => {}
    }

    // Off the bus until the VM turns it on: no DMA, no decoding.
    quiesce(&mut cs, bdf);
    let bars = match registry.placed.iter().find(|(placed, _)| *placed == bdf) {
        Some((_, bars)) => *bars,
        None => {
            let bars = place_bars(bus, bdf, info.header_type)?;
            registry.placed.push((bdf, bars));
            bars
        }
    };

    let vmid = vmids.pin(&vm.vmid).map_err(|e| match e {
        AllocError::PinLimit { limit } => AttachError::NoVmidToPin {
            bdf,
            limit,
            bits: vmids.bits(),
            cpus: vmids.nr_cpus(),
        },
        other => AttachError::Pin(bdf, other),
    })?;
    let pinned = PIN_VMIDS.load(Ordering::Relaxed);
    if !pinned {
        // The VMID stays the VM's only until the next rollover.
        let _ = vmids.unpin(&vm.vmid);
    }
    let attached = match smmu::with(|smmu| smmu.attach_stage2(stream, vmid, root, vm.vtcr)) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => Err(AttachError::Smmu(bdf, e)),
        None => Err(AttachError::NoSmmu(function)),
    };
    if let Err(e) = attached {
        if pinned {
            let _ = vmids.unpin(&vm.vmid);
        }
        return Err(e);
    }
    registry.attached.push(Holder {
        bdf,
        stream,
        vmid,
        vm: Arc::downgrade(vm),
        name: vm.name.clone(),
    });
    let intx = interrupt_pin(&cs, bdf)
        .and_then(|pin| qemu_virt_intx_spi(bdf.device(), pin).map(|spi| Intx { pin, spi }));
    let attachment = Attachment {
        function: info,
        stream,
        vmid,
        pinned,
        bars,
        intx,
    };
    log_attached(vm, &attachment, vmids);
    Ok(attachment)
}

/// Places the function's BARs in the host bridge's windows so that each
/// memory BAR owns its pages: a VM is given a BAR by the page (stage 2
/// maps pages), so no other function's BAR may share one with it. BARs of
/// a page or more are page aligned anyway (natural alignment); for smaller
/// ones the allocator is fenced with a page of each smaller BAR's kind
/// before and after (a fence of the same kind lands in the same window),
/// so they start on a fresh page and nothing placed later shares their
/// last one.
fn place_bars(
    bus: &mut HostBus,
    bdf: Bdf,
    header: HeaderType,
) -> Result<AssignedBars, AttachError> {
    let mut cs = bus.config;
    let sized = pci::size_bars(&mut cs, bdf, header)
        .map_err(|e| AttachError::Bars(bdf, AssignError::Size(e)))?;
    let mut fences: heapless::Vec<Bar, { pci::BARS_TYPE0 }> = heapless::Vec::new();
    for bar in sized
        .iter()
        .filter(|b| b.kind != BarKind::Io && b.size < PAGE_SIZE)
    {
        let fence = Bar {
            index: 0,
            size: PAGE_SIZE,
            ..*bar
        };
        if !fences
            .iter()
            .any(|f| f.kind == fence.kind && f.prefetchable == fence.prefetchable)
        {
            let _ = fences.push(fence);
        }
    }
    let fence = |bus: &mut HostBus| -> Result<(), AttachError> {
        for fence in &fences {
            bus.bars
                .allocate(fence)
                .map_err(|e| AttachError::Bars(bdf, AssignError::Alloc(e)))?;
        }
        Ok(())
    };
    fence(bus)?;
    let bars = pci::assign_bars(&mut cs, bdf, header, &mut bus.bars)
        .map_err(|e| AttachError::Bars(bdf, e))?;
    fence(bus)?;
    Ok(bars)
}

/// The function's INTx pin (1 to 4), if it uses one.
fn interrupt_pin(cs: &impl ConfigSpace, bdf: Bdf) -> Option<u8> {
    // Bits 15:8 of the register: the cast keeps exactly them.
    let pin = (cs.read32(bdf, Register::INTERRUPT) >> 8) as u8;
    (1..=4).contains(&pin).then_some(pin)
}

fn log_attached(vm: &Vm, a: &Attachment, vmids: &VmidAllocator) {
    let pinned = if a.pinned {
        alloc::format!(
            "pinned ({} of at most {} pinned)",
            vmids.stats().pinned,
            vmids.max_pinned()
        )
    } else {
        String::from("NOT pinned (hyp.no-vmid-pin)")
    };
    info!(
        "vm \"{}\": passthrough {}: attached, stream {} translated by the VM's stage 2 with VMID {} {pinned}",
        vm.name,
        a.function,
        a.stream,
        a.vmid.get()
    );
    for bar in a.bars.iter() {
        let kind = match bar.bar.kind {
            BarKind::Io => "I/O",
            BarKind::Memory32 => "32-bit memory",
            BarKind::Memory64 => "64-bit memory",
        };
        match bar.placement {
            Some(p) => info!(
                "vm \"{}\": passthrough {}: BAR{} ({kind}, {:#x} bytes) at {}",
                vm.name,
                a.bdf(),
                bar.bar.index,
                bar.bar.size,
                p.cpu
            ),
            None => info!(
                "vm \"{}\": passthrough {}: BAR{} ({kind}) not placed",
                vm.name,
                a.bdf(),
                bar.bar.index
            ),
        }
    }
    match a.intx {
        Some(intx) => info!(
            "vm \"{}\": passthrough {}: INT{} is SPI {} (INTID {})",
            vm.name,
            a.bdf(),
            char::from(b'A' + intx.pin - 1),
            intx.spi,
            intx.intid()
        ),
        None => info!("vm \"{}\": passthrough {}: no INTx", vm.name, a.bdf()),
    }
}

/// Turns the function's bus mastering and decoding off and masks its INTx:
/// nothing it does reaches memory or the GIC any more.
fn quiesce(cs: &mut impl ConfigSpace, bdf: Bdf) {
    let command = pci::command(cs, bdf)
        .difference(Command::BUS_MASTER | Command::MEMORY_SPACE | Command::IO_SPACE)
        .union(Command::INTERRUPT_DISABLE);
    pci::set_command(cs, bdf, command);
}

/// A Function Level Reset, if the function offers one (its PCI Express
/// capability says so), waiting the time the reset takes; the BARs it
/// clears are written back from `bars`. Returns whether it reset.
fn function_level_reset(cs: &mut impl ConfigSpace, bdf: Bdf, bars: &AssignedBars) -> bool {
    let Ok(Some(pcie)) = pci::find_capability(cs, bdf, CapabilityId::PCI_EXPRESS) else {
        return false;
    };
    let (Some(capabilities), Some(control)) = (
        pcie.field(PCIE_DEVICE_CAPABILITIES),
        pcie.field(PCIE_DEVICE_CONTROL),
    ) else {
        return false;
    };
    if cs.read32(bdf, capabilities) & PCIE_FLR_CAPABLE == 0 {
        return false;
    }
    // Device Control in the low half; the status half's bits are
    // write-one-to-clear, so writing zeros there leaves them.
    let device_control = cs.read32(bdf, control) & 0xffff;
    cs.write32(bdf, control, device_control | PCIE_INITIATE_FLR);
    // The function must not be accessed for 100 ms; nothing else here
    // waits on it, so the CPU spins.
    timer::wait_until(FLR_WAIT_MS, || false);
    restore_bars(cs, bdf, bars);
    quiesce(cs, bdf);
    true
}

/// Writes the placed addresses back into the function's BARs (a reset
/// clears them).
fn restore_bars(cs: &mut impl ConfigSpace, bdf: Bdf, bars: &AssignedBars) {
    for bar in bars.iter() {
        let Some(placement) = bar.placement else {
            continue;
        };
        let address = placement.pci.get();
        if let Some(lower) = Register::bar(bar.bar.index) {
            // The low half; the BAR's flag bits are read-only.
            cs.write32(bdf, lower, address as u32);
        }
        if bar.bar.kind == BarKind::Memory64 {
            if let Some(upper) = Register::bar(bar.bar.index + 1) {
                cs.write32(bdf, upper, (address >> 32) as u32);
            }
        }
    }
}

/// Detaches every function attached to `vm`; see the module
/// documentation. Idempotent: the VM's list is emptied.
pub fn detach_all(vm: &Vm) {
    let attachments: Vec<Attachment> = core::mem::take(&mut *vm.passthrough.lock());
    if attachments.is_empty() {
        return;
    }
    let mut guard = REGISTRY.lock();
    let registry = &mut *guard;
    for a in &attachments {
        let bdf = a.bdf();
        let reset = match registry.bus.as_mut() {
            Some(bus) => {
                let mut cs = bus.config;
                quiesce(&mut cs, bdf);
                // The entry aborts before the reset: whatever the function
                // still has in flight cannot reach the VM's memory, which
                // is about to be freed.
                detach_stream(vm, a);
                function_level_reset(&mut cs, bdf, &a.bars)
            }
            None => {
                detach_stream(vm, a);
                false
            }
        };
        let unpinned = if a.pinned {
            match VMIDS.get().map(|vmids| vmids.unpin(&vm.vmid)) {
                Some(Ok(())) => "unpinned",
                Some(Err(e)) => {
                    error!(
                        "vm \"{}\": passthrough {bdf}: unpinning VMID {}: {e}",
                        vm.name,
                        a.vmid.get()
                    );
                    "not unpinned"
                }
                None => "not unpinned",
            }
        } else {
            "was not pinned"
        };
        registry.attached.retain(|h| h.bdf != bdf);
        info!(
            "vm \"{}\": passthrough {bdf}: detached: quiesced{}, stream {} aborted, VMID {} {unpinned}; free for another VM",
            vm.name,
            if reset { ", reset (FLR)" } else { "" },
            a.stream,
            a.vmid.get()
        );
    }
}

/// Sets the stream's entry to abort (and invalidates), logging a failure.
fn detach_stream(vm: &Vm, a: &Attachment) {
    match smmu::with(|smmu| smmu.detach(a.stream)) {
        Some(Ok(_)) => {}
        Some(Err(e)) => error!("vm \"{}\": passthrough {}: detach: {e}", vm.name, a.bdf()),
        None => error!(
            "vm \"{}\": passthrough {}: detach: the SMMU is gone",
            vm.name,
            a.bdf()
        ),
    }
}

/// The VM restarts (PSCI `SYSTEM_RESET`): its functions stop and are reset
/// as at detach, and stay attached.
pub fn reset_all(vm: &Vm) {
    let attachments: Vec<Attachment> = vm.passthrough.lock().clone();
    if attachments.is_empty() {
        return;
    }
    let mut registry = REGISTRY.lock();
    let Some(bus) = registry.bus.as_mut() else {
        return;
    };
    let mut cs = bus.config;
    for a in &attachments {
        quiesce(&mut cs, a.bdf());
        let reset = function_level_reset(&mut cs, a.bdf(), &a.bars);
        info!(
            "vm \"{}\": passthrough {}: quiesced{} for the restart",
            vm.name,
            a.bdf(),
            if reset { " and reset (FLR)" } else { "" }
        );
    }
}

/// `vm`'s stage-2 tables changed (`Vm::modify_stage2`): the SMMU may hold
/// translations of the old ones for the VM's VMID, so they are dropped.
/// Nothing to do for a VM without functions.
pub fn stage2_changed(vm: &Vm) {
    let attachments = vm.passthrough.lock();
    let mut done: heapless::Vec<Vmid, { manifest::MAX_PASSTHROUGH }> = heapless::Vec::new();
    for a in attachments.iter() {
        if done.contains(&a.vmid) {
            continue;
        }
        let _ = done.push(a.vmid);
        match smmu::with(|smmu| smmu.invalidate_vmid(a.vmid)) {
            Some(Ok(())) | None => {}
            Some(Err(e)) => error!(
                "vm \"{}\": SMMU TLB invalidation for VMID {} after a stage-2 change: {e}",
                vm.name,
                a.vmid.get()
            ),
        }
    }
}

/// Drains the SMMU's event queue and, after a VMID rollover, runs the
/// self-check. Cheap when there is nothing to do (one counter read), and
/// does nothing more than every [`POLL_INTERVAL_MS`]; one CPU at a time.
/// Called whenever a vCPU stops running (`Vm::leave`).
pub fn poll() {
    let now = timer::now();
    if now < NEXT_POLL.load(Ordering::Relaxed) {
        return;
    }
    let Some(mut poller) = POLLER.try_lock() else {
        return;
    };
    NEXT_POLL.store(
        now.wrapping_add(timer::ticks_of_ms(POLL_INTERVAL_MS)),
        Ordering::Relaxed,
    );
    drain_events(&mut poller, now);
    if let Some(vmids) = VMIDS.get() {
        let generation = vmids.generation();
        if self_check_enabled() && generation != poller.checked_generation {
            poller.checked_generation = generation;
            self_check(vmids, generation);
        }
    }
}

/// Distinct runs of events one drain logs; the rest are counted.
const RUNS_PER_DRAIN: usize = 16;

/// Logs the SMMU's events, each with the VM its stream belongs to, at
/// most [`EVENTS_PER_SECOND`] lines a second. A run of events that say the
/// same thing ([`Event::continues`]: one aborted page-sized write is an
/// event per beat) is one line with its count.
fn drain_events(poller: &mut Poller, now: u64) {
    let mut runs: heapless::Vec<(Event, u64), RUNS_PER_DRAIN> = heapless::Vec::new();
    let mut unlisted = 0u64;
    let mut names: heapless::Vec<Option<String>, RUNS_PER_DRAIN> = heapless::Vec::new();
    let drained = {
        let registry = REGISTRY.lock();
        let drained = smmu::with(|smmu| {
            smmu.drain_events(|event| match runs.last_mut() {
                Some((first, count)) if first.continues(&event) => *count += 1,
                _ => {
                    if runs.push((event, 1)).is_err() {
                        unlisted += 1;
                    }
                }
            })
        });
        for (event, _) in &runs {
            let stream = event.stream();
            let name = registry
                .attached
                .iter()
                .find(|h| h.stream == stream)
                .map(|h| h.name.clone());
            let _ = names.push(name);
        }
        drained
    };
    let lost = match drained {
        None => false,
        Some(Ok(drained)) => drained.lost,
        Some(Err(e)) => {
            warn!("{e}");
            false
        }
    };
    let second = timer::ticks_of_ms(1000);
    if now.wrapping_sub(poller.window_start) >= second {
        if poller.suppressed > 0 {
            warn!(
                "smmu: {} more event(s) in the last second not shown",
                poller.suppressed
            );
        }
        poller.window_start = now;
        poller.shown = 0;
        poller.suppressed = 0;
    }
    poller.suppressed += unlisted;
    for ((event, count), name) in runs.iter().zip(&names) {
        if poller.shown >= EVENTS_PER_SECOND {
            poller.suppressed += *count;
            continue;
        }
        poller.shown += 1;
        let times = Times(*count);
        match name {
            Some(name) => warn!("smmu: vm \"{name}\": {event}{times}"),
            None => warn!("smmu: no VM: {event}{times}"),
        }
    }
    if lost {
        warn!("smmu: the event queue overflowed; events were lost");
    }
}

/// " (n events)" after a run's line, nothing for a single event.
struct Times(u64);

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 | 1 => Ok(()),
            n => write!(f, " ({n} events on that page)"),
        }
    }
}

/// One live stream as the self-check sees it.
struct Live {
    stream: StreamId,
    /// The VMID its entry holds.
    vmid: Vmid,
    owner: Option<Owner>,
}

/// The VM holding a live stream, from the registry.
struct Owner {
    name: String,
    bdf: Bdf,
    /// The VMID attach wrote.
    attached_vmid: Vmid,
    /// `None` once the VM is being freed.
    vm: Option<Arc<Vm>>,
}

/// After a rollover: every live stream table entry's VMID must be the one
/// its VM owns in the allocator now, and no two VMs' entries may share one.
fn self_check(vmids: &VmidAllocator, generation: u64) {
    // Snapshot under the registry lock; the VMs are looked at (and their
    // references dropped) after it is released.
    let live: Vec<Live> = {
        let registry = REGISTRY.lock();
        let entries: Vec<(StreamId, Vmid)> =
            smmu::with(|smmu| smmu.live_entries().collect()).unwrap_or_default();
        entries
            .into_iter()
            .map(|(stream, vmid)| Live {
                stream,
                vmid,
                owner: registry
                    .attached
                    .iter()
                    .find(|h| h.stream == stream)
                    .map(|h| Owner {
                        name: h.name.clone(),
                        bdf: h.bdf,
                        attached_vmid: h.vmid,
                        vm: h.vm.upgrade(),
                    }),
            })
            .collect()
    };
    if live.is_empty() {
        return;
    }
    let running = crate::launch::running();
    let mut failures = 0;
    for (index, entry) in live.iter().enumerate() {
        let Some(Owner {
            name,
            bdf,
            attached_vmid,
            vm,
        }) = &entry.owner
        else {
            error!(
                "smmu self-check after VMID rollover (generation {generation}): stream {} translates with VMID {}, but no VM holds it",
                entry.stream,
                entry.vmid.get()
            );
            failures += 1;
            continue;
        };
        if entry.vmid != *attached_vmid {
            error!(
                "smmu self-check after VMID rollover (generation {generation}): vm \"{name}\": passthrough {bdf}: its stream {} translates with VMID {}, not the {} it was attached with",
                entry.stream,
                entry.vmid.get(),
                attached_vmid.get()
            );
            failures += 1;
        }
        // A VM being freed has no strong reference left; its detach is
        // under way.
        if let Some(vm) = vm {
            let owned = vmids.owned_id(&vm.vmid);
            if owned != Some(entry.vmid) {
                let now = match owned {
                    Some(vmid) => alloc::format!("the VM's VMID is now {}", vmid.get()),
                    None => {
                        String::from("the VM no longer owns any VMID (it may go to another VM)")
                    }
                };
                error!(
                    "smmu self-check after VMID rollover (generation {generation}): vm \"{name}\": passthrough {bdf}: its stream {} translates with VMID {}, but {now}",
                    entry.stream,
                    entry.vmid.get()
                );
                failures += 1;
            }
        }
        // The VMID must not be another VM's: that VM's CPUs would then
        // share TLB entries' tags with the device's translations.
        let taken_by = running
            .iter()
            .find(|other| other.name != *name && vmids.owned_id(&other.vmid) == Some(entry.vmid));
        if let Some(other) = taken_by {
            error!(
                "smmu self-check after VMID rollover (generation {generation}): vm \"{name}\": passthrough {bdf}: VMID {} of its stream {} is vm \"{}\"'s now",
                entry.vmid.get(),
                entry.stream,
                other.name
            );
            failures += 1;
        }
        let clash = live[..index]
            .iter()
            .filter(|other| other.vmid == entry.vmid)
            .find_map(|other| other.owner.as_ref().filter(|o| o.name != *name));
        if let Some(other) = clash {
            error!(
                "smmu self-check after VMID rollover (generation {generation}): VMID {} is in the entries of vm \"{name}\" ({bdf}) and vm \"{}\" ({})",
                entry.vmid.get(),
                other.name,
                other.bdf
            );
            failures += 1;
        }
    }
    if failures == 0 {
        info!(
            "smmu self-check after VMID rollover (generation {generation}): {} live stream(s), each with its VM's VMID",
            live.len()
        );
    }
}
