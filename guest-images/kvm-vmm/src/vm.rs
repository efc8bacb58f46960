//! The VM: KVM with an in-kernel vGICv3 at QEMU `virt`'s addresses, guest
//! RAM at `0x4000_0000`, the image and its device tree placed by the same
//! load plan and device-tree writer the hypervisor uses (`guest-boot`), one
//! thread per vCPU, and the devices of [`crate::devices`] behind MMIO exits.
//!
//! KVM answers PSCI (0.2 and later, asked for in `KVM_ARM_VCPU_INIT`)
//! itself: vCPUs other than 0 start powered off and wait in `KVM_RUN` for
//! the guest's `CPU_ON`; `SYSTEM_OFF` comes out as a system event, which
//! ends the run.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use guest_boot::{virt, write_dtb, GuestMachine, ImageHeader, LoadPlan, GUEST_DTB_MAX};
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, kvm_regs,
    kvm_userspace_memory_region, kvm_vcpu_init, user_pt_regs, KVM_ARM_VCPU_POWER_OFF,
    KVM_ARM_VCPU_PSCI_0_2, KVM_DEV_ARM_VGIC_CTRL_INIT, KVM_DEV_ARM_VGIC_GRP_ADDR,
    KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64,
    KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN, KVM_VGIC_V3_ADDR_TYPE_DIST,
    KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use crate::devices::{Access, Bus, Counts};
use crate::options::Config;

/// The IPA size the load plan checks RAM against: KVM's default VM type.
const IPA_BITS: u32 = 40;

/// Unhandled MMIO accesses reported one by one before the rest are only
/// counted.
const UNHANDLED_REPORTS: u64 = 8;

/// Why the VM could not be set up or run.
#[derive(Debug)]
pub enum VmmError {
    /// The image could not be read.
    ReadImage {
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The image is not an arm64 `Image`.
    Image(guest_boot::ImageError),
    /// The image does not fit the RAM.
    Plan(guest_boot::PlanError),
    /// The device tree could not be written.
    Dtb(guest_boot::DtbError),
    /// Guest RAM could not be mapped.
    Memory(std::io::Error),
    /// A KVM ioctl failed.
    Kvm {
        /// What it was for.
        what: &'static str,
        /// The kernel's error.
        error: kvm_ioctls::Error,
    },
    /// A vCPU thread could not be started.
    Thread(std::io::Error),
}

impl std::error::Error for VmmError {}

impl fmt::Display for VmmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadImage { path, error } => write!(f, "reading {}: {error}", path.display()),
            Self::Image(e) => write!(f, "the image: {e}"),
            Self::Plan(e) => write!(f, "placing the image in RAM: {e}"),
            Self::Dtb(e) => write!(f, "writing the device tree: {e}"),
            Self::Memory(e) => write!(f, "mapping guest RAM: {e}"),
            Self::Kvm { what, error } => write!(f, "KVM: {what}: {error}"),
            Self::Thread(e) => write!(f, "starting a vCPU thread: {e}"),
        }
    }
}

/// Tags a KVM error with what the ioctl was for.
fn kvm<T>(what: &'static str, result: Result<T, kvm_ioctls::Error>) -> Result<T, VmmError> {
    result.map_err(|error| VmmError::Kvm { what, error })
}

/// How the guest ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    /// PSCI `SYSTEM_OFF`.
    Off,
    /// PSCI `SYSTEM_RESET` (not carried out: the run ends).
    Reset,
    /// Something the VMM cannot go on from: which vCPU, and what.
    Failed(String),
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("SYSTEM_OFF"),
            Self::Reset => f.write_str("SYSTEM_RESET"),
            Self::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// A finished run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// How it ended.
    pub end: End,
    /// The MMIO exits the VMM answered.
    pub counts: Counts,
}

/// Anonymous memory that backs guest RAM; unmapped when dropped.
struct GuestRam {
    base: *mut u8,
    len: usize,
}

impl GuestRam {
    fn new(len: usize) -> Result<Self, VmmError> {
        // SAFETY: A fresh private anonymous mapping: no file, no fixed
        // address, so it overlaps nothing the program uses.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(VmmError::Memory(std::io::Error::last_os_error()));
        }
        Ok(Self {
            base: base.cast(),
            len,
        })
    }

    /// The whole mapping, to copy the images in before the guest runs.
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: The mapping is `len` bytes, readable and writable, and
        // only reachable through `self`; no vCPU runs yet.
        unsafe { std::slice::from_raw_parts_mut(self.base, self.len) }
    }
}

impl Drop for GuestRam {
    fn drop(&mut self) {
        // SAFETY: Unmaps exactly the mapping `new` made. KVM copes with a
        // memory slot whose memory goes away (it takes faults, not crashes).
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// The `KVM_{GET,SET}_ONE_REG` ID of a core register at byte `offset` in
/// `struct kvm_regs` (Linux `Documentation/virt/kvm/api.rst`, "ARM64 core
/// registers": the index is the offset in 32-bit words).
fn core_reg(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | (offset / 4) as u64
}

/// Sets a device attribute whose value is the `u64` at `value`.
fn set_u64_attr(
    device: &kvm_ioctls::DeviceFd,
    what: &'static str,
    group: u32,
    attr: u32,
    value: &u64,
) -> Result<(), VmmError> {
    let attr = kvm_device_attr {
        flags: 0,
        group,
        attr: attr.into(),
        addr: value as *const u64 as u64,
    };
    kvm(what, device.set_device_attr(&attr))
}

/// Boots `config`'s image and runs it until the guest powers off (or a vCPU
/// fails); the guest's console goes to `console`.
///
/// # Errors
///
/// Every [`VmmError`]: the image, the plan, the device tree, guest RAM, a
/// KVM ioctl during setup, or a vCPU thread.
pub fn run<W: Write + Send + 'static>(config: &Config, console: W) -> Result<Outcome, VmmError> {
    let image = std::fs::read(&config.image).map_err(|error| VmmError::ReadImage {
        path: config.image.clone(),
        error,
    })?;
    let header = ImageHeader::parse(&image).map_err(VmmError::Image)?;
    let ram_size = config.memory_mib << 20;
    let plan = LoadPlan::new(
        (virt::RAM_BASE, ram_size),
        IPA_BITS,
        &header,
        image.len(),
        None,
        GUEST_DTB_MAX,
    )
    .map_err(VmmError::Plan)?;
    let dtb = write_dtb(&GuestMachine {
        ram: plan.ram(),
        vcpus: config.vcpus,
        bootargs: &config.bootargs,
        initrd: None,
        uart: true,
    })
    .map_err(VmmError::Dtb)?;

    let mut ram = GuestRam::new(ram_size as usize)?;
    let base = virt::RAM_BASE.get();
    // The plan keeps both inside RAM.
    let kernel_at = (plan.kernel_load().get() - base) as usize;
    let dtb_at = (plan.dtb().start().get() - base) as usize;
    ram.bytes_mut()[kernel_at..kernel_at + image.len()].copy_from_slice(&image);
    ram.bytes_mut()[dtb_at..dtb_at + dtb.len()].copy_from_slice(&dtb);

    let kvm_fd = kvm("opening /dev/kvm", Kvm::new())?;
    let vm = kvm("KVM_CREATE_VM", kvm_fd.create_vm())?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: base,
        memory_size: ram_size,
        userspace_addr: ram.base as u64,
    };
    // SAFETY: The region is `ram`, mapped for `ram_size` bytes; it outlives
    // every vCPU's use of it (this function does not return before the
    // guest has stopped, and KVM copes if it is unmapped afterwards).
    kvm("KVM_SET_USER_MEMORY_REGION", unsafe {
        vm.set_user_memory_region(region)
    })?;

    let vcpus = create_vcpus(
        &vm,
        config.vcpus,
        plan.entry().get(),
        plan.dtb().start().get(),
    )?;
    create_vgic(&vm)?;

    let bus = Arc::new(Bus::new(console));
    let (ends, ended) = mpsc::channel();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (index, vcpu) in vcpus.into_iter().enumerate() {
        let bus = Arc::clone(&bus);
        let ends = ends.clone();
        let pin = config.pin.then_some(index % cpus);
        std::thread::Builder::new()
            .name(format!("vcpu{index}"))
            .spawn(move || {
                let end = run_vcpu(index, vcpu, &bus, pin);
                // The receiver is gone only once the run has ended.
                let _ = ends.send(end);
            })
            .map_err(VmmError::Thread)?;
    }
    drop(ends);
    let end = ended
        .recv()
        .unwrap_or_else(|_| End::Failed("every vCPU thread ended without a word".into()));
    bus.flush();
    Ok(Outcome {
        end,
        counts: bus.counts(),
    })
}

/// Creates and initialises `count` vCPUs: PSCI 0.2 for all, vCPU 0 entering
/// at `entry` with x0 = `dtb`, the others powered off until `CPU_ON`.
fn create_vcpus(vm: &VmFd, count: u32, entry: u64, dtb: u64) -> Result<Vec<VcpuFd>, VmmError> {
    let mut init = kvm_vcpu_init::default();
    kvm(
        "KVM_ARM_PREFERRED_TARGET",
        vm.get_preferred_target(&mut init),
    )?;
    init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
    let pc =
        core_reg(std::mem::offset_of!(kvm_regs, regs) + std::mem::offset_of!(user_pt_regs, pc));
    let x0 =
        core_reg(std::mem::offset_of!(kvm_regs, regs) + std::mem::offset_of!(user_pt_regs, regs));
    let mut vcpus = Vec::new();
    for index in 0..count {
        let vcpu = kvm("KVM_CREATE_VCPU", vm.create_vcpu(index.into()))?;
        let mut features = init;
        if index > 0 {
            features.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        kvm("KVM_ARM_VCPU_INIT", vcpu.vcpu_init(&features))?;
        if index == 0 {
            // KVM's reset state is the boot protocol's: EL1h, DAIF masked,
            // MMU off. Only the entry point and x0 are left to set.
            kvm("setting PC", vcpu.set_one_reg(pc, &entry.to_le_bytes()))?;
            kvm("setting x0", vcpu.set_one_reg(x0, &dtb.to_le_bytes()))?;
        }
        vcpus.push(vcpu);
    }
    Ok(vcpus)
}

/// The in-kernel vGICv3 at QEMU `virt`'s distributor and redistributor
/// addresses, initialised once every vCPU exists.
fn create_vgic(vm: &VmFd) -> Result<(), VmmError> {
    let mut device = kvm_create_device {
        type_: kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
        fd: 0,
        flags: 0,
    };
    let gic = kvm("creating the vGICv3", vm.create_device(&mut device))?;
    set_u64_attr(
        &gic,
        "setting the distributor's address",
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        KVM_VGIC_V3_ADDR_TYPE_DIST,
        &virt::GICD.start().get(),
    )?;
    set_u64_attr(
        &gic,
        "setting the redistributors' address",
        KVM_DEV_ARM_VGIC_GRP_ADDR,
        KVM_VGIC_V3_ADDR_TYPE_REDIST,
        &virt::GICR_BASE.get(),
    )?;
    set_u64_attr(
        &gic,
        "initialising the vGIC",
        KVM_DEV_ARM_VGIC_GRP_CTRL,
        KVM_DEV_ARM_VGIC_CTRL_INIT,
        &0,
    )
}

/// Pins the calling thread to host CPU `cpu`.
fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: A zeroed cpu_set_t is the empty set; CPU_SET and
    // sched_setaffinity only read and write that set, which is valid for the
    // size passed.
    let result = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Runs vCPU `index` until the guest ends or the vCPU fails.
fn run_vcpu<W: Write>(index: usize, mut vcpu: VcpuFd, bus: &Bus<W>, pin: Option<usize>) -> End {
    if let Some(cpu) = pin {
        if let Err(e) = pin_to(cpu) {
            eprintln!("kvm-vmm: vcpu{index}: cannot pin to CPU {cpu} ({e}); running unpinned");
        }
    }
    let mut reported = 0;
    let mut report = |what: &str, address: u64, len: usize| {
        reported += 1;
        if reported <= UNHANDLED_REPORTS {
            eprintln!(
                "kvm-vmm: vcpu{index}: {what} of {address:#x} ({len} bytes): no device there"
            );
        }
    };
    loop {
        match vcpu.run() {
            Ok(VcpuExit::MmioRead(address, data)) => {
                if bus.read(address, data) == Access::Unhandled {
                    report("MMIO read", address, data.len());
                }
            }
            Ok(VcpuExit::MmioWrite(address, data)) => {
                if bus.write(address, data) == Access::Unhandled {
                    report("MMIO write", address, data.len());
                }
            }
            Ok(VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_SHUTDOWN, _)) => return End::Off,
            Ok(VcpuExit::SystemEvent(KVM_SYSTEM_EVENT_RESET, _)) => return End::Reset,
            Ok(VcpuExit::SystemEvent(kind, _)) => {
                return End::Failed(format!("vcpu{index}: system event {kind}"))
            }
            Ok(exit) => return End::Failed(format!("vcpu{index}: unexpected exit {exit:?}")),
            // A signal or a request KVM wants the caller to retry.
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {}
            Err(e) => return End::Failed(format!("vcpu{index}: KVM_RUN: {e}")),
        }
    }
}
