//! Virtual machines: creation from a manifest entry, guest RAM, stage 2,
//! vCPUs and their power states, reset and shutdown.
//!
//! A VM is shared (`Arc`) by the run queue and the physical CPUs running its
//! vCPUs; it is freed, its RAM returned to the heap, when the last of them
//! lets go after it stopped.

use crate::lock::SpinMutex;
use crate::mmio::MmioRegion;
use crate::passthrough::{self, Attachment};
use crate::pcibridge::{PciBridge, PciBridgeError};
use crate::vcpu::VcpuState;
use crate::vuart::VirtualPl011;
use crate::{mmu, sched};
use addr::{IntermediatePhysAddr, PhysAddr};
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use guest_boot::virt::Spi;
use guest_boot::{GuestMachine, ImageHeader, LoadPlan};
use id_alloc::{Context, Vmid};
use log::{info, warn};
use manifest::{Bundle, Device, VmSpec};
use platform::MAX_CPUS;
use spin::Once;
use stage2::{Stage2Config, Stage2Table};
use vgic::{IntId, Vgic};
use vpsci::Power;

/// SPIs each VM's GIC offers: the UART's and the virtio-mmio slots' fit.
const NR_SPIS: u32 = 64;

/// Alignment of guest RAM in host memory: 2 MiB, so stage 2 can use blocks.
const RAM_ALIGN: usize = 2 << 20;

/// What the hardware offers every VM, read once at boot.
#[derive(Clone, Copy, Debug)]
pub struct Hardware {
    /// ID_AA64MMFR0_EL1.PARange.
    pub pa_range: u8,
    /// VMID width in bits (8 or 16).
    pub vmid_bits: u8,
}

/// Why a VM could not be created.
#[derive(Debug)]
pub enum CreateError {
    /// The manifest names an image the boot bundle does not hold.
    MissingImage {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The name the manifest gives.
        name: String,
    },
    /// The kernel has no valid arm64 image header.
    Kernel(guest_boot::ImageError),
    /// The images do not fit the VM's memory map.
    Layout(guest_boot::PlanError),
    /// The device tree could not be written.
    DeviceTree(guest_boot::DtbError),
    /// The stage-2 tables could not be built.
    Stage2(stage2::Stage2Error),
    /// The virtual GIC could not be built for this many vCPUs.
    Gic(vgic::ConfigError),
    /// The VM's disk cannot be set up.
    Devices(crate::virtio::DiskSetupError),
    /// Not enough free memory for the VM's RAM.
    OutOfMemory {
        /// Bytes asked for.
        bytes: u64,
    },
    /// A host PCI function it must have could not be attached.
    Passthrough(passthrough::AttachError),
    /// Its virtual PCIe host bridge could not be built.
    Pci(PciBridgeError),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingImage { what, name } => {
                write!(f, "{what} image \"{name}\" is not in the boot bundle")
            }
            Self::Kernel(e) => write!(f, "kernel: {e}"),
            Self::Layout(e) => write!(f, "memory layout: {e}"),
            Self::DeviceTree(e) => write!(f, "device tree: {e}"),
            Self::Stage2(e) => write!(f, "stage 2: {e}"),
            Self::Gic(e) => write!(f, "virtual GIC: {e}"),
            Self::Devices(e) => write!(f, "virtio devices: {e}"),
            Self::OutOfMemory { bytes } => write!(
                f,
                "not enough free memory for {} MiB of guest RAM",
                bytes >> 20
            ),
            Self::Passthrough(e) => write!(f, "{e}"),
            Self::Pci(e) => write!(f, "{e}"),
        }
    }
}

/// Guest RAM: a 2 MiB-aligned allocation from the heap, zeroed, owned by
/// exactly one VM and returned to the heap when the VM is freed.
#[derive(Debug)]
struct GuestRam {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: The allocation is only accessed through `&self`/`&mut self` of the
// owning VM (for loading, under its reset discipline) and by the guest.
unsafe impl Send for GuestRam {}
// SAFETY: As above; shared access never writes.
unsafe impl Sync for GuestRam {}

impl GuestRam {
    fn new(bytes: u64) -> Result<Self, CreateError> {
        let layout = usize::try_from(bytes)
            .ok()
            .and_then(|size| Layout::from_size_align(size, RAM_ALIGN).ok())
            .ok_or(CreateError::OutOfMemory { bytes })?;
        // SAFETY: The layout has a non-zero size (the manifest requires at
        // least 2 MiB).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err(CreateError::OutOfMemory { bytes });
        }
        Ok(Self { ptr, layout })
    }

    fn pa(&self) -> u64 {
        // The heap is identity-mapped: the address is the physical one.
        self.ptr as u64
    }

    fn size(&self) -> u64 {
        self.layout.size() as u64
    }

    /// Copies `bytes` to `offset` in guest RAM; the caller checked the range.
    fn write(&self, offset: u64, bytes: &[u8]) {
        let fits = offset
            .checked_add(bytes.len() as u64)
            .is_some_and(|end| end <= self.size());
        assert!(fits, "load plan checked by guest_boot");
        // SAFETY: The range is inside the allocation (checked above), which
        // holds no Rust objects, and the guest is not running while its
        // images are loaded.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.add(offset as usize),
                bytes.len(),
            );
        }
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: Allocated in `new` with this layout; the guest is gone.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// One virtual CPU.
#[derive(Debug)]
pub struct Vcpu {
    power: AtomicU8,
    /// Its registers; locked by the physical CPU running it.
    pub state: SpinMutex<VcpuState>,
    /// Physical CPU it last ran on (`usize::MAX` before its first run).
    pub last_cpu: AtomicUsize,
    /// How often it moved to another physical CPU.
    pub migrations: AtomicU64,
    /// Exits to the hypervisor so far.
    pub exits: AtomicU64,
    /// Where the scheduler has it (`sched::Run`).
    pub run: AtomicU8,
}

impl Vcpu {
    /// Its power state.
    pub fn power(&self) -> Power {
        match self.power.load(Ordering::Acquire) {
            0 => Power::Off,
            1 => Power::OnPending,
            _ => Power::On,
        }
    }

    /// Sets its power state.
    pub fn set_power(&self, power: Power) {
        self.power.store(power as u8, Ordering::Release);
    }

    /// Moves it from off to on-pending; false if it was not off.
    pub fn claim_start(&self) -> bool {
        self.power
            .compare_exchange(
                Power::Off as u8,
                Power::OnPending as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// Why a VM stops or restarts all its vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It ends; the reason is logged.
    Off(&'static str),
    /// It restarts from its images (PSCI `SYSTEM_RESET`).
    Reset,
}

/// Run-state shared by a VM's vCPUs, under one lock.
#[derive(Debug)]
struct Control {
    /// vCPUs on a physical CPU right now.
    running: usize,
    /// A stop asked for and not yet carried out.
    pending: Option<Stop>,
    /// Bumped on every reset; run-queue entries of older epochs are dropped.
    epoch: u64,
    /// Whether the VM has ended.
    ended: bool,
    /// Whether it was given up during creation (never started).
    abandoned: bool,
}

/// A virtual machine.
#[derive(Debug)]
pub struct Vm {
    /// Its name from the manifest.
    pub name: String,
    /// The allocator's context for its VMID.
    pub vmid: Context<Vmid>,
    /// The VMID its vCPUs last entered with (0 before the first entry).
    pub last_vmid: AtomicU16,
    /// Locked only to change it ([`Vm::modify_stage2`]) or read it.
    stage2: SpinMutex<Stage2Table>,
    /// Its root table, which never moves.
    stage2_root: PhysAddr,
    /// VTCR_EL2 for its stage 2.
    pub vtcr: u64,
    /// Shared with the VM's backend task, which may still touch it after
    /// the VM is gone, until the task has ended.
    ram: Arc<GuestRam>,
    ram_ipa: u64,
    /// Its vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Its virtual GICv3.
    pub vgic: SpinMutex<Vgic>,
    /// Its emulated devices.
    pub mmio: Vec<MmioRegion>,
    /// Which of its vCPUs each physical CPU ran last (`usize::MAX`: none).
    pub last_vcpu_ran: [AtomicUsize; MAX_CPUS],
    /// Aborts injected for accesses to IPAs it does not own.
    pub aborts: AtomicU64,
    /// Accesses the hypervisor ignored (unimplemented GIC registers and
    /// the like), kept apart from the aborts above.
    pub ignored: AtomicU64,
    control: SpinMutex<Control>,
    /// `control.pending.is_some()`, read on every exit without the lock.
    stop_pending: AtomicBool,
    images: Images,
    /// Its console UART, also in `mmio`, kept here to give it input.
    uart: Option<Arc<VirtualPl011>>,
    /// Its network port (its device is in `mmio`); leaves the switch when
    /// the VM is freed.
    net: SpinMutex<Option<crate::virtio::NetPort>>,
    /// Host PCI functions passed through to it (see `passthrough`):
    /// attached at creation, detached when it stops.
    pub passthrough: SpinMutex<Vec<Attachment>>,
    /// The virtual PCIe host bridge that shows it those functions, set
    /// once they are attached (during creation); never set for a VM
    /// without any. Its ECAM window traps like the devices in `mmio`.
    pub pci: Once<PciBridge>,
    /// Last, so that it drops after the RAM: counts the VM as freed.
    _freed: FreedGuard,
}

/// Counts the VM with the scheduler while it exists: made last in
/// [`Vm::create`], dropped last (after the RAM is returned).
#[derive(Debug)]
struct FreedGuard;

impl FreedGuard {
    fn new() -> Self {
        sched::vm_created();
        Self
    }
}

impl Drop for FreedGuard {
    fn drop(&mut self) {
        sched::vm_freed();
    }
}

/// What a (re)boot loads into guest RAM.
#[derive(Debug)]
struct Images {
    kernel: &'static [u8],
    initrd: Option<&'static [u8]>,
    /// Written once the passthrough functions are attached (the PCIe host
    /// bridge's node describes them), before the first load.
    dtb: Once<Vec<u8>>,
    plan: LoadPlan,
}

impl Vm {
    /// Builds the VM `spec` describes with images from `bundle`: RAM,
    /// stage 2, device tree, images loaded, vCPU 0 ready at the kernel's
    /// entry. Nothing runs until [`start`](Self::start).
    pub fn create(
        spec: &VmSpec,
        bundle: &Bundle<'static>,
        hw: Hardware,
    ) -> Result<Arc<Self>, CreateError> {
        let image = |what: &'static str, name: &str| {
            bundle.get(name).ok_or_else(|| CreateError::MissingImage {
                what,
                name: String::from(name),
            })
        };
        let kernel = image("kernel", &spec.kernel)?;
        let initrd = spec
            .initrd
            .as_deref()
            .map(|name| image("initrd", name))
            .transpose()?;
        let header = ImageHeader::parse(kernel).map_err(CreateError::Kernel)?;
        let ram_ipa = guest_boot::virt::RAM_BASE;
        let ram_end = ram_ipa
            .checked_add(spec.memory)
            .ok_or(CreateError::OutOfMemory { bytes: spec.memory })?;
        let config =
            Stage2Config::new(ram_end, hw.pa_range, hw.vmid_bits).map_err(CreateError::Stage2)?;
        let plan = LoadPlan::new(
            (ram_ipa, spec.memory),
            u32::from(config.ipa_bits()),
            &header,
            kernel.len(),
            initrd.map(<[u8]>::len),
            guest_boot::GUEST_DTB_MAX,
        )
        .map_err(CreateError::Layout)?;
        let uart = spec.devices.contains(&Device::Pl011);
        let machine = GuestMachine {
            ram: plan.ram(),
            vcpus: spec.vcpus,
            bootargs: &spec.bootargs,
            initrd: plan.initrd(),
            uart,
        };
        // Checked now, so that a VM whose device tree cannot be written
        // fails before anything is attached to it; written again, with the
        // PCIe host bridge, once its functions are.
        guest_boot::write_dtb(&machine).map_err(CreateError::DeviceTree)?;

        let ram = Arc::new(GuestRam::new(spec.memory)?);
        let mut stage2 = Stage2Table::new(&config);
        stage2
            .map_ram(ram_ipa, PhysAddr(ram.pa()), ram.size())
            .map_err(CreateError::Stage2)?;

        let mut mmio = Vec::new();
        let uart = uart.then(|| Arc::new(VirtualPl011::new(&spec.name)));
        if let Some(uart) = &uart {
            let frame = guest_boot::virt::UART;
            mmio.push(MmioRegion {
                base: frame.start().get(),
                size: frame.size(),
                device: Box::new(uart.clone()),
            });
        }
        // SAFETY: The VM's RAM block, which outlives every device holding
        // the window (`keep_ram` below, for the backend task), holds no Rust
        // objects, and is only copied through.
        let ram_view = unsafe { virtio_backend::GuestRam::new(ram_ipa.get(), ram.size(), ram.ptr) };
        let (slots, net) = crate::virtio::slots(crate::virtio::Devices {
            vm: &spec.name,
            ram: ram_view,
            disk: spec.disk.as_ref(),
            net: spec.net.as_ref(),
            backend: spec.backend,
            program: bundle.get(crate::virtio::TASK_PROGRAM),
            keep_ram: ram.clone(),
        })
        .map_err(CreateError::Devices)?;
        mmio.extend(slots);
        let vgic = Vgic::new(spec.vcpus as usize, NR_SPIS).map_err(CreateError::Gic)?;
        let vcpus = (0..spec.vcpus as usize)
            .map(|_| Vcpu {
                power: AtomicU8::new(Power::Off as u8),
                state: SpinMutex::new(VcpuState::default()),
                last_cpu: AtomicUsize::new(usize::MAX),
                migrations: AtomicU64::new(0),
                exits: AtomicU64::new(0),
                run: AtomicU8::new(sched::Run::Off as u8),
            })
            .collect();
        let stage2_root = stage2.root_pa();
        let vm = Arc::new_cyclic(|me| {
            for region in &mmio {
                region.device.attach_vm(me);
            }
            Self {
                name: spec.name.clone(),
                vmid: Context::new(),
                last_vmid: AtomicU16::new(0),
                stage2: SpinMutex::new(stage2),
                stage2_root,
                vtcr: config.vtcr(),
                ram,
                ram_ipa: ram_ipa.get(),
                vcpus,
                vgic: SpinMutex::new(vgic),
                mmio,
                last_vcpu_ran: [const { AtomicUsize::new(usize::MAX) }; MAX_CPUS],
                aborts: AtomicU64::new(0),
                ignored: AtomicU64::new(0),
                control: SpinMutex::new(Control {
                    running: 0,
                    pending: None,
                    epoch: 0,
                    ended: false,
                    abandoned: false,
                }),
                stop_pending: AtomicBool::new(false),
                images: Images {
                    kernel,
                    initrd,
                    dtb: Once::new(),
                    plan,
                },
                uart,
                net: SpinMutex::new(net),
                passthrough: SpinMutex::new(Vec::new()),
                pci: Once::new(),
                _freed: FreedGuard::new(),
            }
        });
        if let Some(port) = vm.net.lock().as_mut() {
            if let Err(e) = port.attach() {
                warn!(
                    "vm \"{}\": network: {e}; the VM runs without its port",
                    vm.name
                );
            }
        }
        if let Err(e) = vm.attach_passthrough(spec, &machine) {
            // Never started: dropping it detaches what was attached, and
            // there is no "stopped" or "freed" to report.
            let mut control = vm.control.lock();
            control.ended = true;
            control.abandoned = true;
            drop(control);
            return Err(e);
        }
        vm.load_images();
        Ok(vm)
    }

    /// Attaches the functions `spec` passes through, builds the PCIe host
    /// bridge that shows them to the guest (if there are any) and writes
    /// the device tree, which describes the bridge.
    fn attach_passthrough(
        self: &Arc<Self>,
        spec: &VmSpec,
        machine: &GuestMachine<'_>,
    ) -> Result<(), CreateError> {
        passthrough::attach_all(self, spec).map_err(CreateError::Passthrough)?;
        let attachments = self.passthrough.lock().clone();
        let bridge = PciBridge::create(self, &attachments).map_err(CreateError::Pci)?;
        let dtb = match bridge {
            Some(bridge) => {
                let bridge = self.pci.call_once(|| bridge);
                bridge.with_guest_pci(|pci| guest_boot::write_dtb_with_pci(machine, Some(pci)))
            }
            None => guest_boot::write_dtb(machine),
        }
        .map_err(CreateError::DeviceTree)?;
        self.images.dtb.call_once(|| dtb);
        Ok(())
    }

    /// Copies the kernel, initrd and device tree into guest RAM where the
    /// load plan puts them, and makes them visible to a guest running with
    /// its MMU and caches off.
    fn load_images(&self) {
        let ram = &self.ram;
        let plan = &self.images.plan;
        let at = |ipa: IntermediatePhysAddr| ipa.get() - self.ram_ipa;
        ram.write(at(plan.kernel_load()), self.images.kernel);
        if let (Some(initrd), Some(range)) = (self.images.initrd, plan.initrd()) {
            ram.write(at(range.start()), initrd);
        }
        if let Some(dtb) = self.images.dtb.get() {
            ram.write(at(plan.dtb().start()), dtb);
        }
        // The guest starts with its MMU off, so its accesses are
        // non-cacheable: everything written through the cache (the zeroing
        // too) must reach memory first, and no stale instructions may stay.
        mmu::clean_range_to_poc(ram.pa(), ram.size());
        mmu::invalidate_icache();
    }

    /// The stage-2 table's VTTBR_EL2 value with `vmid`.
    pub fn vttbr(&self, vmid: Vmid) -> Result<u64, stage2::Stage2Error> {
        self.stage2.lock().vttbr(vmid)
    }

    /// The stage-2 root table's physical address (VTTBR_EL2.BADDR).
    pub fn stage2_root(&self) -> PhysAddr {
        self.stage2_root
    }

    /// The one way to change the VM's stage-2 tables once it exists (to
    /// map a passthrough function's BARs, say): runs `change` on them,
    /// then drops every CPU's TLB entries of the VM's stage 2 and, if it
    /// has passthrough functions, the SMMU's for its VMID
    /// (`passthrough::stage2_changed`), so neither a vCPU nor a device
    /// keeps using a translation that was changed or removed. `change`
    /// owes break-before-make for live entries it replaces.
    pub fn modify_stage2<R>(&self, change: impl FnOnce(&mut Stage2Table) -> R) -> R {
        let result = change(&mut self.stage2.lock());
        // All VMIDs: the VM's current one may change under our feet in a
        // rollover, and changes to a live VM's stage 2 are rare.
        // SAFETY: TLB invalidation changes no memory; the DSB completes it
        // on every CPU of the inner shareable domain before the SMMU's.
        unsafe {
            asm!(
                "dsb ishst",
                "tlbi alle1is",
                "dsb ish",
                "isb",
                options(nostack, preserves_flags)
            )
        };
        passthrough::stage2_changed(self);
        result
    }

    /// Guest RAM as (first IPA, size).
    pub fn ram(&self) -> (u64, u64) {
        (self.ram_ipa, self.ram.size())
    }

    /// Host physical range of guest RAM, for logs.
    pub fn ram_pa(&self) -> (u64, u64) {
        (self.ram.pa(), self.ram.size())
    }

    /// Whether `ipa` is guest RAM.
    pub fn owns_ram(&self, ipa: u64) -> bool {
        let (base, size) = self.ram();
        ipa.checked_sub(base).is_some_and(|off| off < size)
    }

    /// Makes vCPU 0 runnable at the kernel's entry with x0 = the device tree.
    pub fn start(self: &Arc<Self>) {
        let epoch = self.epoch();
        let plan = &self.images.plan;
        *self.vcpus[0].state.lock() =
            VcpuState::at_reset(plan.entry().get(), plan.dtb().start().get());
        self.vcpus[0].set_power(Power::OnPending);
        sched::make_runnable(self, 0, epoch);
    }

    /// Starts vCPU `index` at `entry` with x0 = `context` (PSCI `CPU_ON`);
    /// false if it was not off.
    pub fn start_vcpu(self: &Arc<Self>, index: usize, entry: u64, context: u64) -> bool {
        let Some(vcpu) = self.vcpus.get(index) else {
            return false;
        };
        if !vcpu.claim_start() {
            return false;
        }
        *vcpu.state.lock() = VcpuState::at_reset(entry, context);
        sched::make_runnable(self, index, self.epoch());
        true
    }

    /// Asks every vCPU to stop for `stop`; carried out when the last running
    /// one leaves its physical CPU (see [`leave`](Self::leave)). The first
    /// request wins.
    pub fn request_stop(&self, stop: Stop) {
        let mut control = self.control.lock();
        if control.pending.is_none() && !control.ended {
            control.pending = Some(stop);
            self.stop_pending.store(true, Ordering::Release);
        }
    }

    /// Called by a physical CPU about to run vCPU `index` queued in `epoch`:
    /// false if that vCPU must not run (the VM stops or was reset since).
    pub fn enter(&self, epoch: u64) -> bool {
        let mut control = self.control.lock();
        if control.ended || control.pending.is_some() || control.epoch != epoch {
            return false;
        }
        control.running += 1;
        true
    }

    /// Whether a stop is pending: running vCPUs leave at their next exit.
    pub fn stopping(&self) -> bool {
        self.stop_pending.load(Ordering::Acquire)
    }

    /// Called by a physical CPU when a vCPU of this VM stops running. The
    /// last one out carries out a pending stop.
    pub fn leave(self: &Arc<Self>) {
        // The SMMU's events and the self-check after rollovers: here since
        // every physical CPU passes by often.
        passthrough::poll();
        let stop = {
            let mut control = self.control.lock();
            control.running -= 1;
            if control.running > 0 {
                return;
            }
            let Some(stop) = control.pending.take() else {
                return;
            };
            self.stop_pending.store(false, Ordering::Release);
            match stop {
                Stop::Off(_) => control.ended = true,
                Stop::Reset => control.epoch += 1,
            }
            stop
        };
        for vcpu in &self.vcpus {
            vcpu.set_power(Power::Off);
            vcpu.run.store(sched::Run::Off as u8, Ordering::Release);
        }
        match stop {
            Stop::Off(reason) => {
                self.flush_devices();
                info!("vm \"{}\": {reason}; stopped", self.name);
                if let Some(pci) = self.pci.get() {
                    pci.teardown(&mut self.vgic.lock());
                }
                passthrough::detach_all(self);
                sched::report(self);
                crate::launch::vm_stopped(self);
            }
            Stop::Reset => {
                info!("vm \"{}\": PSCI SYSTEM_RESET: restarting", self.name);
                passthrough::reset_all(self);
                // The interrupt controller resets with the machine (and
                // the PCIe bridge with it, which links its functions' INTx
                // lines in the new one).
                if let Ok(fresh) = Vgic::new(self.vcpus.len(), NR_SPIS) {
                    match self.pci.get() {
                        Some(pci) => pci.reset(self, fresh),
                        None => *self.vgic.lock() = fresh,
                    }
                }
                self.load_images();
                self.start();
            }
        }
    }

    /// Drives SPI `spi` of the VM's GIC and wakes or kicks the vCPUs that
    /// may now take it.
    pub fn set_spi(self: &Arc<Self>, spi: Spi, high: bool) {
        let Some(intid) = IntId::spi(spi.number()) else {
            return;
        };
        let kick = self.vgic.lock().set_level(intid, 0, high);
        match kick {
            Ok(kick) => sched::kick(self, kick),
            Err(e) => warn!("vm \"{}\": device interrupt {intid:?}: {e}", self.name),
        }
    }

    fn flush_devices(&self) {
        for region in &self.mmio {
            region.device.flush();
        }
    }

    /// The run-queue epoch, for entries made now.
    pub fn epoch(&self) -> u64 {
        self.control.lock().epoch
    }
}

impl crate::console::ConsoleInput for Vm {
    fn console_name(&self) -> &str {
        &self.name
    }

    fn console_input(&self, bytes: &[u8]) {
        if let Some(uart) = &self.uart {
            uart.receive(bytes);
        }
    }
}

impl Drop for Vm {
    /// The last reference is gone: nothing can run the VM any more (it
    /// stopped, or every vCPU is off and none can be started).
    fn drop(&mut self) {
        if !self.control.get_mut().ended {
            self.flush_devices();
            info!("vm \"{}\": every vCPU is off; stopped", self.name);
        }
        // Before its RAM and stage-2 tables go: no device may reach them,
        // nor raise an interrupt for it.
        if let Some(pci) = self.pci.get() {
            pci.teardown(self.vgic.get_mut());
        }
        passthrough::detach_all(self);
        if self.control.get_mut().abandoned {
            // Its creation failed, and that was reported.
            return;
        }
        let aborts = self.aborts.load(Ordering::Relaxed);
        let migrations: u64 = self
            .vcpus
            .iter()
            .map(|v| v.migrations.load(Ordering::Relaxed))
            .sum();
        let ram = self.ram.size();
        let dropped = self.uart.as_ref().map_or(0, |u| u.dropped_input());
        if dropped > 0 {
            warn!(
                "vm \"{}\": {dropped} byte(s) of console input dropped (the guest did not read them)",
                self.name
            );
        }
        if aborts > 0 {
            warn!(
                "vm \"{}\": {aborts} abort(s) injected in all for accesses outside its memory map",
                self.name
            );
        }
        info!(
            "vm \"{}\": freed ({} MiB of RAM returned; {migrations} vCPU migration(s))",
            self.name,
            ram >> 20
        );
    }
}
