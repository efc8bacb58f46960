//! The EL2 hypervisor for QEMU's `virt` machine.
//!
//! QEMU loads the image with `-kernel` and enters [`boot`]'s assembly at EL2
//! with x0 = the host device tree. The primary CPU turns on the MMU, reads the
//! device tree, starts its console and heap, builds the final page tables and
//! starts every other CPU through PSCI. Everything that needs no Arm hardware
//! lives in the host-tested crates beside this one (`platform`, `syndrome`,
//! `id-alloc`, `addr`); this crate is the thin target-only layer.

#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod console;
mod cpu;
mod exceptions;
mod exits;
mod gic;
mod heap;
mod hostdisk;
mod ich;
mod launch;
mod layout;
mod lock;
mod mmio;
mod mmu;
mod passthrough;
mod pcibridge;
mod percpu;
mod ratelimit;
mod sched;
mod smmu;
mod smp;
mod stacks;
mod sva;
mod task;
mod timer;
mod vcpu;
mod virtio;
mod vm;
mod vuart;

use aarch64_cpu::registers::{
    CurrentEL, HCR_EL2, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, MPIDR_EL1, SCTLR_EL2,
};
use addr::{PhysAddr, PhysRange};
use core::fmt;
use core::panic::PanicInfo;
use layout::ImageLayout;
use log::{error, info, warn, LevelFilter};
use platform::{DtError, Platform, PsciConduit};
use tock_registers::interfaces::Readable;

/// MPIDR_EL1 affinity fields Aff3..Aff0, the form device trees use in `reg`.
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Why the primary CPU could not finish booting.
#[derive(Debug)]
enum BootError {
    /// x0 did not point at a flattened device tree.
    NoDeviceTree(PhysAddr),
    /// The device tree is unusable.
    DeviceTree(DtError),
    /// The device tree left no RAM for the heap.
    NoFreeMemory,
    /// Free RAM is too fragmented to describe.
    FreeMemory(platform::FreeMemoryError),
    /// The final page tables could not be built.
    PageTables(aarch64_paging::MapError),
    /// The VMID allocator could not be set up.
    Vmids(id_alloc::AllocError),
    /// The ASID allocator could not be set up.
    Asids(id_alloc::AllocError),
    Gic(gic::GicError),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDeviceTree(pa) => write!(f, "no device tree at x0 = {pa}"),
            Self::DeviceTree(e) => write!(f, "{e}"),
            Self::NoFreeMemory => write!(f, "no free RAM left for the heap"),
            Self::FreeMemory(e) => write!(f, "{e}"),
            Self::PageTables(e) => write!(f, "page tables: {e}"),
            Self::Vmids(e) => write!(f, "VMID allocator: {e}"),
            Self::Asids(e) => write!(f, "ASID allocator: {e}"),
            Self::Gic(e) => write!(f, "{e}"),
        }
    }
}

/// The primary CPU's entry into Rust, MMU on (boot map), on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn primary_main(dtb: u64) -> ! {
    let mpidr = MPIDR_EL1.get() & MPIDR_AFFINITY_MASK;
    // Index 0 always exists.
    let _ = percpu::init_this_cpu(0, mpidr, stacks::boot_stack());
    cpu::mark_running();
    match boot(PhysAddr(dtb), mpidr) {
        Ok(0) => {
            info!("no VMs to run; powering off");
            cpu::power_off()
        }
        Ok(_) => sched::run(0),
        Err(e) => {
            error!("{e}");
            error!("boot failed; powering off");
            cpu::power_off()
        }
    }
}

/// Boots the hypervisor and starts the VMs; returns how many started.
fn boot(dtb_pa: PhysAddr, mpidr: u64) -> Result<usize, BootError> {
    // SAFETY: QEMU (and any arm64 boot loader) passes the DTB's address in
    // x0; `dtb_slice` checks the header before trusting the size, and the
    // boot map covers all of RAM.
    let dtb = unsafe { dtb_slice(dtb_pa) }.ok_or(BootError::NoDeviceTree(dtb_pa))?;
    // Boot loaders NOP out nodes they replace; the parser needs them gone.
    let nops = platform::remove_nops(dtb);
    let dtb: &[u8] = dtb;
    start_console(dtb);
    info!(
        "hypervisor {} starting on QEMU virt, DTB at {dtb_pa} ({} bytes)",
        env!("CARGO_PKG_VERSION"),
        dtb.len()
    );
    let nops = nops.map_err(BootError::DeviceTree)?;
    if nops > 0 {
        info!("removed {nops} FDT_NOP tokens from the device tree");
    }
    let platform = Platform::from_dtb(dtb).map_err(BootError::DeviceTree)?;
    report_platform(&platform);

    let image = ImageLayout::get();
    // A blob that wraps past the top of the address space is no device tree.
    let dtb_range =
        PhysRange::new(dtb_pa, dtb.len() as u64).ok_or(BootError::NoDeviceTree(dtb_pa))?;
    let mut excluded: heapless::Vec<PhysRange, { platform::MAX_RESERVED + 3 }> =
        heapless::Vec::new();
    // Capacity covers the three fixed exclusions plus every reserved range.
    let _ = excluded.push(image.whole());
    let _ = excluded.push(dtb_range);
    if let Some(initrd) = platform.initrd {
        let _ = excluded.push(initrd);
    }
    let _ = excluded.extend_from_slice(&platform.reserved);
    let free: heapless::Vec<
        PhysRange,
        { platform::MAX_MEMORY_REGIONS + platform::MAX_RESERVED + 3 },
    > = platform::free_memory(&platform.memory, &excluded).map_err(BootError::FreeMemory)?;
    if free.is_empty() {
        return Err(BootError::NoFreeMemory);
    }
    // SAFETY: `free` is RAM from the device tree minus the image, the DTB, the
    // boot bundle and reserved memory; the boot map covers it as normal memory.
    let bytes = unsafe { heap::add_ranges(&free) };
    // The boot bundle, if any, was reported with the platform.
    info!(
        "heap: {} MiB in {} range(s), outside the image {}",
        bytes >> 20,
        free.len(),
        image.whole()
    );

    let secondaries = smp::prepare(&platform, mpidr);
    let guards = secondaries
        .iter()
        .map(smp::Secondary::guard)
        .chain(stacks::exception_stacks().map(|s| s.guard))
        .chain([stacks::boot_stack().guard]);
    let tables = mmu::build(&platform, &image, guards).map_err(BootError::PageTables)?;
    // SAFETY: The final tables map the image, all RAM and the console.
    unsafe { mmu::switch_to_final(tables) };
    report_online();
    let mut bus = match hostdisk::open_bus(&platform) {
        Ok(bus) => bus,
        Err(e) => {
            warn!("{e}; VMs get no disks and no passthrough functions");
            None
        }
    };
    let disk = match bus.as_mut().map(hostdisk::probe) {
        Some(Ok(disk)) => disk,
        Some(Err(e)) => {
            warn!("host disk: {e}; VMs get no disks");
            None
        }
        None => None,
    };
    let disk_bdf = disk.as_ref().map(hostdisk::HostDisk::bdf);
    // Now that the disk is known: its stream in bypass, every other one
    // aborted until a VM's function is attached.
    if let Err(e) = smmu::init(&platform, disk_bdf.map(|bdf| u32::from(bdf.routing_id()))) {
        warn!("{e}; no PCI function can be passed through to a VM");
    }
    if let Some(mut disk) = disk {
        // Debug builds (the system tests) prove the disk round-trips
        // data; the check restores what it overwrites.
        if cfg!(debug_assertions) {
            match disk.self_check() {
                Ok(()) => info!("host disk: self-check passed"),
                Err(e) => warn!("host disk: {e}"),
            }
        }
        hostdisk::install(disk);
    }
    passthrough::init(bus, disk_bdf);

    let options = apply_options(&platform);
    let hw = hardware(options.vmid_bits);
    info!(
        "VMIDs: {} bits{} (hardware: {}), IPA space up to {} bits",
        hw.1,
        if options.vmid_bits.is_some() {
            ", forced by hyp.vmid-bits"
        } else {
            ""
        },
        hw.0.vmid_bits,
        pa_bits(hw.0.pa_range)
    );
    let console_spi = match platform.uart.and_then(|uart| uart.interrupt) {
        Some(platform::Interrupt::Spi(spi)) => Some(spi),
        _ => {
            warn!("console UART has no SPI in the device tree; no console input");
            None
        }
    };
    check_timer_interrupts(&platform);
    // SAFETY: The final map covers the GIC's frames as device memory, and
    // only the `gic` module touches them from now on.
    unsafe {
        gic::init(
            platform.gic.distributor.start(),
            platform.gic.redistributors.start(),
            platform.cpus.len(),
            console_spi,
        )
    }
    .map_err(BootError::Gic)?;
    sched::init(hw.1, platform.cpus.len(), console_spi.map(|spi| spi + 32))
        .map_err(BootError::Vmids)?;
    // TCR_EL2.AS is 0: 8-bit ASIDs, whatever the hardware offers beyond.
    let asid_bits = options.asid_bits.unwrap_or(8);
    info!(
        "ASIDs: {asid_bits} bits{}",
        if options.asid_bits.is_some() {
            ", forced by hyp.asid-bits"
        } else {
            ""
        }
    );
    sched::init_asids(asid_bits, platform.cpus.len()).map_err(BootError::Asids)?;
    task::init(tables.ttbr0);
    if console_spi.is_some() {
        console::set_stats_reporter(launch::report_all);
        console::enable_rx_interrupt();
    }

    smp::start(&secondaries, tables);
    let (used, total) = heap::usage();
    info!("heap in use: {} KiB of {} MiB", used >> 10, total >> 20);
    let Some(bundle) = platform.initrd else {
        info!("no boot bundle (QEMU -initrd)");
        return Ok(0);
    };
    // SAFETY: The bundle region is mapped (it is RAM) and was kept out of
    // the heap above.
    let started = unsafe { launch::start_all(bundle, hw.0) };
    if let Some(workers) = options.demo_tasks {
        task::start_demo(
            workers,
            options.demo_task_rounds.unwrap_or(task::WORKER_ROUNDS),
        );
    }
    sva::start(&platform);
    sched::all_created();
    Ok(started)
}

/// What the CPU offers guests, and the VMID width the allocator will use
/// (the hardware's, unless `hyp.vmid-bits` asks for fewer).
/// The hypervisor takes the timers' PPIs at the INTIDs the Server Base System
/// Architecture fixes (and QEMU uses); a device tree saying otherwise is
/// reported, since those timers would then stay silent.
fn check_timer_interrupts(platform: &Platform) {
    let Some(timer) = platform.timer else {
        warn!("no timer node in the device tree; assuming the standard PPIs");
        return;
    };
    for (what, found, expected) in [
        ("EL2 physical", timer.hyp_phys, gic::HYP_TIMER),
        ("EL1 virtual", timer.virt, gic::VIRT_TIMER),
    ] {
        if found.intid() != Some(u32::from(expected)) {
            warn!(
                "timer: {what} interrupt is {found:?}, not INTID {}; it will not be taken",
                u32::from(expected)
            );
        }
    }
}

fn hardware(forced_vmid_bits: Option<u32>) -> (vm::Hardware, u32) {
    let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange) as u8;
    let vmid_bits = if ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::VMIDBits) == 2 {
        16
    } else {
        8
    };
    let bits = forced_vmid_bits.map_or(u32::from(vmid_bits), |b| b.min(u32::from(vmid_bits)));
    (
        vm::Hardware {
            pa_range,
            vmid_bits,
        },
        bits,
    )
}

/// Bits of physical address for an ID_AA64MMFR0_EL1.PARange value.
fn pa_bits(pa_range: u8) -> u8 {
    match pa_range {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

/// Starts the console on the device tree's UART, if it names one. Without
/// one the hypervisor runs silently; there is nowhere else to complain.
fn start_console(dtb: &[u8]) {
    if let Ok(Some(uart)) = platform::find_console(dtb) {
        // SAFETY: The boot map covers the first GiB, where QEMU virt puts the
        // UART, as device memory; the console is the UART's only user.
        unsafe { console::init(uart.regs.start()) };
        console::init_logger(LevelFilter::Info);
    }
}

/// Builds a slice over the flattened device tree at `pa`, or `None` if there
/// is no valid FDT header there.
///
/// # Safety
///
/// `pa` must be mapped and, if it holds an FDT header, the whole blob must be
/// mapped and owned by the hypervisor for the rest of its life.
unsafe fn dtb_slice(pa: PhysAddr) -> Option<&'static mut [u8]> {
    /// QEMU pads its blobs to 1 MiB, and a user DTB it amends to 2 MiB.
    const MAX_DTB_SIZE: usize = 4 << 20;
    if pa.get() == 0 || !pa.is_aligned(8) {
        return None;
    }
    // SAFETY: The caller guarantees `pa` is mapped; the header is 8-aligned.
    let header =
        unsafe { core::slice::from_raw_parts(pa.get() as *const u8, platform::HEADER_SIZE) };
    let size = platform::dtb_total_size(header).ok()?;
    if !(platform::HEADER_SIZE..=MAX_DTB_SIZE).contains(&size) {
        return None;
    }
    // SAFETY: The header is valid, so by the caller's guarantee `size` bytes
    // are mapped and ours.
    Some(unsafe { core::slice::from_raw_parts_mut(pa.get() as *mut u8, size) })
}

fn report_platform(p: &Platform) {
    for ram in &p.memory {
        info!("  memory  {ram} ({} MiB)", ram.size() >> 20);
    }
    match p.psci {
        Some(PsciConduit::Smc) => info!("  cpus    {}, PSCI over SMC", p.cpus.len()),
        // The hypervisor is the HVC handler: only firmware behind SMC can
        // start CPUs, so secondaries will fail to start (each with a warning).
        Some(other) => warn!(
            "  cpus    {}, but PSCI over {other}; the hypervisor can only call PSCI over SMC",
            p.cpus.len()
        ),
        None => warn!(
            "  cpus    {}, but no /psci node; trying PSCI over SMC",
            p.cpus.len()
        ),
    }
    info!(
        "  gicv3   distributor {}, redistributors {}",
        p.gic.distributor, p.gic.redistributors
    );
    match &p.uart {
        Some(uart) => info!("  uart    PL011 at {}", uart.regs),
        None => info!("  uart    none"),
    }
    match &p.smmu {
        Some(smmu) => info!("  smmu    SMMUv3 at {}", smmu.regs),
        None => info!("  smmu    none"),
    }
    match &p.pcie {
        Some(pcie) => info!("  pcie    ECAM at {}", pcie.ecam),
        None => info!("  pcie    none"),
    }
    if let Some(initrd) = &p.initrd {
        info!("  bundle  {initrd} ({} KiB)", initrd.size() >> 10);
    }
    if !p.bootargs.is_empty() {
        info!("  bootargs \"{}\"", p.bootargs);
    }
}

/// Reports the calling CPU's state, read back from the system registers.
fn report_online() {
    let el = CurrentEL.read(CurrentEL::EL);
    let vhe = HCR_EL2.is_set(HCR_EL2::E2H);
    let mmu = SCTLR_EL2.is_set(SCTLR_EL2::M);
    let caches = SCTLR_EL2.is_set(SCTLR_EL2::C) && SCTLR_EL2.is_set(SCTLR_EL2::I);
    let on = |b: bool| if b { "on" } else { "OFF" };
    info!(
        "online at EL{el}: VHE {}, MMU {}, caches {}, MPIDR {:#x}",
        on(vhe),
        on(mmu),
        on(caches),
        percpu::this_cpu().map_or(0, percpu::PerCpu::mpidr)
    );
}

/// The hypervisor's options from the bootargs.
#[derive(Debug, Default)]
struct Options {
    /// `hyp.vmid-bits=N`: use only N bits of VMID (2..=16), so rollovers
    /// come after a few VMs. For tests; harmless in production.
    vmid_bits: Option<u32>,
    /// `hyp.asid-bits=N`: use only N bits of ASID (2..=8), so task ASIDs
    /// roll over after a few tasks. For tests; harmless in production.
    asid_bits: Option<u32>,
    /// `hyp.demo-tasks=N`: start N demonstration worker tasks (and the
    /// other demonstration tasks) at boot.
    demo_tasks: Option<usize>,
    /// Yields of each demonstration worker (`hyp.demo-task-rounds`).
    demo_task_rounds: Option<u64>,
}

/// Reads the `hyp.` options from the bootargs. The test switches
/// (`hyp.fault=data-abort` ...) are honoured only in debug builds so a
/// release hypervisor cannot be crashed on purpose.
fn apply_options(platform: &Platform) -> Options {
    let mut options = Options::default();
    for option in platform::bootargs::hyp_options(&platform.bootargs) {
        match (option.key, option.value) {
            ("vmid-bits", Some(value)) => match value.parse::<u32>() {
                Ok(bits @ 2..=16) => options.vmid_bits = Some(bits),
                _ => warn!("hyp.vmid-bits={value} ignored: expected a number from 2 to 16"),
            },
            ("asid-bits", Some(value)) => match value.parse::<u32>() {
                Ok(bits @ 2..=8) => options.asid_bits = Some(bits),
                _ => warn!("hyp.asid-bits={value} ignored: expected a number from 2 to 8"),
            },
            ("demo-tasks", Some(value)) => match value.parse::<usize>() {
                Ok(n @ 0..=64) => options.demo_tasks = Some(n),
                _ => warn!("hyp.demo-tasks={value} ignored: expected a number from 0 to 64"),
            },
            ("demo-task-rounds", Some("forever")) => options.demo_task_rounds = Some(task::ENDLESS),
            ("demo-task-rounds", Some(value)) => match value.parse::<u64>() {
                Ok(n @ 1..=1_000_000) => options.demo_task_rounds = Some(n),
                _ => warn!(
                    "hyp.demo-task-rounds={value} ignored: expected a number from 1 to 1000000, or forever (until every VM has stopped)"
                ),
            },
            ("bench-hooks", None) => {
                warn!("hyp.bench-hooks: guests may move their vCPUs and force VMID rollovers");
                exits::enable_bench_hooks();
            }
            ("no-vmid-pin", None) if cfg!(debug_assertions) => {
                warn!("hyp.no-vmid-pin: passthrough functions keep a VMID that is not pinned; the SMMU self-check must catch it after a rollover");
                passthrough::disable_vmid_pinning();
            }
            ("no-vmid-pin", _) => warn!("hyp.no-vmid-pin ignored (release build)"),
            ("backend-fault", Some(vm)) if cfg!(debug_assertions) => {
                warn!("hyp.backend-fault={vm}: that VM's virtio backend task will write outside its memory");
                virtio::set_fault_test(vm);
            }
            ("backend-fault", _) => {
                warn!("hyp.backend-fault ignored (release build, or no VM named)")
            }
            // Read by `sva::start`.
            ("sva-tasks" | "sva-rounds", Some(_)) => {}
            // Read by `smmu::init` (its debug-only stage-1 DMA check).
            ("smmu-s1-dma", None) if cfg!(debug_assertions) => {}
            ("fault", Some("data-abort")) if cfg!(debug_assertions) => {
                warn!("hyp.fault=data-abort: reading an unmapped address on purpose");
                // An address above every RAM and MMIO region yet below 2^48.
                let unmapped = 0x0000_dead_0000_0000 as *const u64;
                // SAFETY: Deliberately not sound: the read faults, which is the
                // point of the switch; the exception handler stops this CPU.
                let value = unsafe { unmapped.read_volatile() };
                error!("read of an unmapped address returned {value:#x}");
            }
            ("fault", Some("stack-overflow")) if cfg!(debug_assertions) => {
                warn!("hyp.fault=stack-overflow: recursing until the stack runs out");
                let depth = recurse(0);
                error!("recursion returned at depth {depth}");
            }
            ("fault", Some("panic")) if cfg!(debug_assertions) => {
                panic!("hyp.fault=panic: panicking on purpose");
            }
            ("fault", value) => warn!(
                "hyp.fault={} ignored (release build or unknown fault)",
                value.unwrap_or("")
            ),
            (key, _) => warn!("unknown option hyp.{key} ignored"),
        }
    }
    options
}

/// Recurses without end (each frame keeps a live buffer, so nothing can be
/// optimised into a loop): the `hyp.fault=stack-overflow` test switch.
#[expect(unconditional_recursion, reason = "overflowing the stack is the point")]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 32]);
    recurse(depth + 1) + frame[(depth % 32) as usize]
}

/// A secondary CPU's entry into Rust, on the final tables and its own stack.
#[unsafe(no_mangle)]
extern "C" fn secondary_main(record: &boot::SecondaryBoot) -> ! {
    let mpidr = MPIDR_EL1.get() & MPIDR_AFFINITY_MASK;
    let stack =
        PhysRange::new(PhysAddr(record.stack_guard), stacks::GUARD_SIZE as u64).map(|guard| {
            stacks::StackBounds {
                guard,
                top: record.stack_top,
            }
        });
    if usize::try_from(record.cpu_index)
        .ok()
        .zip(stack)
        .and_then(|(i, stack)| percpu::init_this_cpu(i, mpidr, stack))
        .is_none()
    {
        cpu::halt();
    }
    cpu::mark_running();
    report_online();
    smp::report_in();
    sched::run(percpu::current_index())
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let cpu = percpu::current_index();
    match info.location() {
        Some(at) => console::write_fmt_for_panic(format_args!(
            "[cpu{cpu}] PANIC panicked at {}:{}:{}: {}\r\n",
            at.file(),
            at.line(),
            at.column(),
            info.message()
        )),
        None => console::write_fmt_for_panic(format_args!(
            "[cpu{cpu}] PANIC panicked: {}\r\n",
            info.message()
        )),
    }
    console::write_fmt_for_panic(format_args!("[cpu{cpu}] PANIC stopping all CPUs\r\n"));
    cpu::power_off()
}
