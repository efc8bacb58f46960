//! Shared virtual addressing for a device an EL0 task drives: the task's own
//! translation table and ASID in the SMMU's stage-1 context descriptor for
//! the device's stream, so that the addresses the task hands the device are
//! its own virtual addresses, translated by the same walk as its loads and
//! stores.
//!
//! `hyp.sva-tasks=N` (a test switch, like `hyp.demo-tasks`) starts `N`
//! tasks, `sva0` to `sva{N-1}`, each driving QEMU's `edu` at 00:(08+i).0,
//! which no VM may hold. For each:
//!
//! 1. **Claim.** The function must be an `edu` endpoint whose stream is
//!    aborted (no VM's stage-2 entry, not the hypervisor's disk, not bound).
//!    Its decoding and bus mastering go off and its BAR0 is placed (see
//!    *BARs* below).
//! 2. **Task.** Its program ([`sva_task_start`], position-independent
//!    assembly), a page of stack, and edu's BAR0 at
//!    [`task_abi::DEVICE_BASE`].
//! 3. **Pin, then bind.** The context must fit the SMMU
//!    (`Smmu::check_stage1`, before anything is pinned); then the task's
//!    ASID is pinned in the scheduler's ASID allocator, so no rollover can
//!    hand it to another task while the device may use it; then the stream
//!    is bound to the task's root table with that ASID, TCR_EL2 and
//!    MAIR_EL2 as the CPUs walk the table with. A refused pin (with 3-bit
//!    ASIDs on 4 CPUs only `2^3 - 4 - 2 = 2` can be pinned) or bind is
//!    logged, `task "sva{i}": bind BDF refused: why; not started`, the
//!    function is quiesced again, and nothing else changes.
//! 4. **Run.** Decoding and bus mastering on, the task queued. It does `K`
//!    round trips of 256 bytes through edu's DMA engine between two buffers
//!    on its stack (RAM to the device's buffer, back into the second, then
//!    compared), yielding while a transfer runs and after each round trip,
//!    and logs `DMA PASS after K round trips`.
//! 5. **End** (exit or fault, the task's `on_end`): the function is
//!    quiesced, the stream unbound (abort, the descriptor invalid, and the
//!    ASID's SMMU TLB entries invalidated by the descriptor's update plan),
//!    the ASID unpinned, and the ASID the descriptor held, the ASID the
//!    task owns now and the one it was pinned with are compared: with the
//!    pin they are one, through however many rollovers ran meanwhile.
//!
//! **BARs.** The passthrough registry (`passthrough`) places the BARs of
//! VMs' functions bottom-up in the host bridge's windows, in an allocator
//! nothing outside it reaches. Tasks' functions are placed instead in the
//! top [`BAR_WINDOW`] bytes of the first non-prefetchable 32-bit window,
//! which the registry would reach only after filling everything below (on
//! QEMU `virt`, over 700 MiB). The registry does not know these functions:
//! a VM created later naming one would have its attach refused by the
//! SMMU (the stream is bound), but only after the registry quiesced the
//! function and placed its BARs again. Tasks are started only at boot,
//! after every VM of the boot bundle was created, so that cannot happen
//! yet; a claim in the registry is the fix once tasks come and go.
//!
//! **Privilege.** A task's table also holds the hypervisor's own map
//! (privileged-only). A device walking it must therefore be unprivileged:
//! PCIe requests without a PASID prefix are, and STE.PRIVCFG can force it.
//! QEMU's SMMUv3 model treats every transaction as privileged, so under
//! QEMU the device could reach the hypervisor's memory through this table;
//! the program here only names its own stack.

use crate::hostdisk::EcamAccess;
use crate::lock::SpinMutex;
use crate::smmu::{self, SmmuError};
use crate::task::{self, Builder, Task, TaskError};
use aarch64_cpu::registers::{MAIR_EL2, TCR_EL2};
use addr::PhysRange;
use alloc::boxed::Box;
use alloc::format;
use alloc::sync::Arc;
use core::arch::global_asm;
use core::fmt;
use id_alloc::{AllocError, Asid, AsidAllocator};
use log::{error, info, warn};
use pci::{
    AssignError, BarAllocator, Bdf, Command, ConfigSpace, FunctionInfo, HeaderType, PciAddr,
    Window, WindowKind,
};
use platform::{PciSpace, Platform};
use smmuv3::{SteKind, StreamId};
use task_abi::{DEVICE_BASE, PAGE_SIZE, TASK_BASE};
use tock_registers::interfaces::Readable;

/// The switch: `hyp.sva-tasks=N`.
const OPTION: &str = "sva-tasks";

/// The slot of task 0's function; task `i` drives 00:(08+i).0.
const FIRST_SLOT: u8 = 8;

/// Most tasks the switch starts: slots 08 to 0f.
const MAX_TASKS: usize = 8;

/// The switch for the round trips each task makes: `hyp.sva-rounds=N`.
const ROUNDS_OPTION: &str = "sva-rounds";

/// Round trips each task makes unless `hyp.sva-rounds` says. Each transfer
/// takes 100 ms of QEMU's virtual clock, so this is about 1.6 s.
const ROUND_TRIPS: u64 = 8;

/// Most round trips `hyp.sva-rounds` may ask for.
const MAX_ROUND_TRIPS: u64 = 1000;

/// Bytes each transfer moves.
const TRANSFER_BYTES: u64 = 256;

/// The task's stack frame: source buffer, destination buffer, message
/// buffer, [`TRANSFER_BYTES`] each.
const FRAME_BYTES: u64 = 3 * TRANSFER_BYTES;

/// Looks at edu's command register (a yield between looks) before a
/// transfer counts as stuck.
const POLLS: u64 = 1 << 20;

/// Bytes at the top of the 32-bit window for tasks' functions' BARs.
const BAR_WINDOW: u64 = 16 << 20;

/// QEMU's `edu` (1234:11e8): its BAR0 registers and DMA engine (QEMU's
/// docs/specs/edu.rst). The command register's bit 0 starts a transfer
/// and reads 1 until it ends; bit 1 set sends the device's buffer to
/// memory, clear fetches memory into it. DMA addresses are masked to the
/// device's `dma_mask` (28 bits by default; the system tests' QEMU sets 48,
/// which a task's addresses at 64 TiB need).
mod edu {
    pub const VENDOR_DEVICE: (u16, u16) = (0x1234, 0x11e8);
    pub const ID: u64 = 0x00;
    pub const ID_VALUE: u32 = 0x0100_00ed;
    pub const DMA_SOURCE: u64 = 0x80;
    pub const DMA_DESTINATION: u64 = 0x88;
    pub const DMA_COUNT: u64 = 0x90;
    pub const DMA_COMMAND: u64 = 0x98;
    pub const DMA_RUN: u64 = 1 << 0;
    pub const DMA_TO_MEMORY: u64 = 1 << 1;
    /// The device's 4 KiB buffer, in its own address space.
    pub const BUFFER: u64 = 0x4_0000;
}

// The program: position-independent AArch64 code copied into the task's
// code pages (data to the hypervisor, hence .rodata). Messages are a word
// of length, then the bytes, read PC-relative.
global_asm!(
    r#"
.section .rodata.sva_program, "a"
.balign 4

// x0 = round trips, x1 = edu's registers, x2 = a seed unique to the task.
// x19 round trips, x20 registers, x21 seed, x22 round trips done,
// x23 source buffer, x24 destination buffer (both on the stack: the device
// is given the task's own virtual addresses).
.global sva_task_start
sva_task_start:
    mov     x19, x0
    mov     x20, x1
    mov     x21, x2
    mov     x22, #0
    sub     sp, sp, #{frame}
    mov     x23, sp
    add     x24, sp, #{bytes}
    adr     x0, 80f
    mov     x1, x19
    adr     x2, 81f
    bl      70f
    // Source word j of round trip i: seed + (i + 1) * 0x0101..01 + j;
    // the destination cleared.
1:  mov     x10, #0x0101010101010101
    add     x9, x22, #1
    madd    x9, x9, x10, x21
    mov     x11, #0
2:  add     x12, x9, x11
    str     x12, [x23, x11, lsl #3]
    str     xzr, [x24, x11, lsl #3]
    add     x11, x11, #1
    cmp     x11, #{words}
    b.lo    2b
    mov     x0, x23
    mov     x1, #{buffer}
    mov     x2, #{to_device}
    bl      60f
    cbnz    x0, 8f
    mov     x0, #{buffer}
    mov     x1, x24
    mov     x2, #{to_memory}
    bl      60f
    cbnz    x0, 8f
    mov     x11, #0
3:  ldr     x12, [x23, x11, lsl #3]
    ldr     x13, [x24, x11, lsl #3]
    cmp     x12, x13
    b.ne    7f
    add     x11, x11, #1
    cmp     x11, #{words}
    b.lo    3b
    add     x22, x22, #1
    mov     x8, #{yield_}
    svc     #0
    cmp     x22, x19
    b.lo    1b
    adr     x0, 82f
    mov     x1, x22
    adr     x2, 83f
    bl      70f
    mov     x0, #0
    b       9f
7:  adr     x0, 84f
    add     x1, x22, #1
    adr     x2, 85f
    bl      70f
    mov     x0, #1
    b       9f
8:  adr     x0, 86f
    add     x1, x22, #1
    adr     x2, 85f
    bl      70f
    mov     x0, #2
9:  mov     x8, #{exit}
    svc     #0
    brk     #0

// One transfer: x0 = source, x1 = destination, x2 = command. Waits for the
// run bit to clear, yielding between looks. x0 = 0 when it ended, 1 if it
// had not after {polls} looks.
60: str     x0, [x20, #{source}]
    str     x1, [x20, #{destination}]
    mov     x9, #{bytes}
    str     x9, [x20, #{count}]
    // The buffer's stores before the device is told to read it.
    dsb     st
    str     x2, [x20, #{command}]
    mov     x25, #{polls}
61: ldr     x9, [x20, #{command}]
    tbz     x9, #0, 62f
    subs    x25, x25, #1
    b.eq    63f
    mov     x8, #{yield_}
    svc     #0
    b       61b
    // The register's read before the buffer's loads.
62: dsb     ld
    mov     x0, #0
    ret
63: mov     x0, #1
    ret

// Logs the message at x0, the decimal x1, then the message at x2, put
// together in the frame's third buffer.
70: add     x3, sp, #{message}
    add     x4, sp, #{frame}
    mov     x5, x4
    mov     x10, #10
71: udiv    x11, x1, x10
    msub    x12, x11, x10, x1
    add     x12, x12, #48
    strb    w12, [x5, #-1]!
    mov     x1, x11
    cbnz    x1, 71b
    ldr     w6, [x0], #4
72: cbz     w6, 73f
    ldrb    w7, [x0], #1
    strb    w7, [x3], #1
    sub     w6, w6, #1
    b       72b
73: cmp     x5, x4
    b.hs    74f
    ldrb    w7, [x5], #1
    strb    w7, [x3], #1
    b       73b
74: ldr     w6, [x2], #4
75: cbz     w6, 76f
    ldrb    w7, [x2], #1
    strb    w7, [x3], #1
    sub     w6, w6, #1
    b       75b
76: add     x0, sp, #{message}
    sub     x1, x3, x0
    mov     x8, #{log}
    svc     #0
    ret

80: .word   97f - 80b - 4
    .ascii  "started: "
97: .balign 4
81: .word   97f - 81b - 4
    .ascii  " DMA round trips to go, the device given the task's own addresses"
97: .balign 4
82: .word   97f - 82b - 4
    .ascii  "DMA PASS after "
97: .balign 4
83: .word   97f - 83b - 4
    .ascii  " round trips"
97: .balign 4
84: .word   97f - 84b - 4
    .ascii  "FAIL: the bytes read back differ in round trip "
97: .balign 4
85: .word   0
86: .word   97f - 86b - 4
    .ascii  "FAIL: a transfer did not end in round trip "
97: .balign 4
.global sva_task_end
sva_task_end:
"#,
    frame = const FRAME_BYTES,
    bytes = const TRANSFER_BYTES,
    message = const 2 * TRANSFER_BYTES,
    words = const TRANSFER_BYTES / 8,
    buffer = const edu::BUFFER,
    to_device = const edu::DMA_RUN,
    to_memory = const edu::DMA_RUN | edu::DMA_TO_MEMORY,
    source = const edu::DMA_SOURCE,
    destination = const edu::DMA_DESTINATION,
    count = const edu::DMA_COUNT,
    command = const edu::DMA_COMMAND,
    polls = const POLLS,
    log = const task_abi::Number::Log as u64,
    exit = const task_abi::Number::Exit as u64,
    yield_ = const task_abi::Number::Yield as u64,
);

unsafe extern "C" {
    static sva_task_start: u8;
    static sva_task_end: u8;
}

/// The program's bytes.
fn program() -> &'static [u8] {
    // SAFETY: Only the symbols' addresses are taken.
    let (start, end) = unsafe {
        (
            core::ptr::from_ref(&sva_task_start),
            core::ptr::from_ref(&sva_task_end),
        )
    };
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: Both symbols bound the program in .rodata, start before end.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Why a task's function was not bound (and the task not started).
#[derive(Debug)]
enum Refused {
    /// No PCIe host bridge.
    NoHostBus,
    /// No SMMU to translate the device's DMA.
    NoSmmu,
    /// Nothing answers at the function.
    NotFound,
    /// Something else than an `edu` endpoint.
    NotEdu(FunctionInfo),
    /// The stream's entry is not abort: a VM holds the function, or the
    /// hypervisor's disk is there, or it is bound already.
    InUse(SteKind),
    /// No 32-bit window to place its BARs in.
    NoBarWindow,
    /// Its BARs could not be placed.
    Bars(AssignError),
    /// BAR0 is not a memory BAR that was placed.
    NoBar0,
    /// Its ID register does not read as edu's.
    WrongId(u32),
    /// The task could not be made.
    Task(TaskError),
    /// The scheduler has no ASID allocator.
    NoAsidAllocator,
    /// The pin limit is reached.
    NoAsidToPin {
        /// The most ASIDs that may be pinned.
        limit: u32,
        /// The ASID width.
        bits: u32,
        /// CPUs the allocator serves.
        cpus: usize,
    },
    /// The allocator refused the pin otherwise.
    Pin(AllocError),
    /// The SMMU cannot take the task's context, or refused the binding.
    Smmu(SmmuError),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHostBus => f.write_str("no PCIe host bridge"),
            Self::NoSmmu => f.write_str("no SMMU to translate its DMA"),
            Self::NotFound => f.write_str("no function there"),
            Self::NotEdu(info) => write!(f, "{info} is not QEMU's edu"),
            Self::InUse(kind) => write!(
                f,
                "its stream is not free (its entry is {kind}: a VM's function, the hypervisor's disk, or bound)"
            ),
            Self::NoBarWindow => f.write_str("no 32-bit PCI window for its BARs"),
            Self::Bars(e) => write!(f, "BARs: {e}"),
            Self::NoBar0 => f.write_str("BAR0 was not placed"),
            Self::WrongId(id) => write!(f, "its ID register reads {id:#010x}"),
            Self::Task(e) => write!(f, "task: {e}"),
            Self::NoAsidAllocator => f.write_str("no ASID allocator"),
            Self::NoAsidToPin { limit, bits, cpus } => write!(
                f,
                "no ASID left to pin (at most {limit} of the {bits}-bit ASIDs can be pinned on {cpus} CPUs, and all are)"
            ),
            Self::Pin(e) => write!(f, "ASID pin: {e}"),
            Self::Smmu(e) => write!(f, "{e}"),
        }
    }
}

/// A function a task drives, as its `on_end` needs it.
struct Binding {
    bdf: Bdf,
    stream: StreamId,
    config: EcamAccess,
    asids: &'static AsidAllocator,
    /// Set once the stream is bound: the pinned ASID and the allocator's
    /// generation then. `None` if the task never got that far.
    bound: SpinMutex<Option<(Asid, u64)>>,
}

impl Binding {
    /// Decoding, bus mastering and INTx off: nothing the function does
    /// reaches memory or the GIC any more.
    fn quiesce(&self) {
        let mut cs = self.config;
        let command = pci::command(&cs, self.bdf)
            .difference(Command::BUS_MASTER | Command::MEMORY_SPACE | Command::IO_SPACE)
            .union(Command::INTERRUPT_DISABLE);
        pci::set_command(&mut cs, self.bdf, command);
        // Read back: the write has reached the function before the
        // caller unbinds or frees anything.
        let _ = cs.read32(self.bdf, pci::Register::COMMAND_STATUS);
    }

    /// The task ended: quiesce, unbind, compare the ASIDs, unpin.
    fn end(&self, task: &Task) {
        let Some((pinned, generation)) = self.bound.lock().take() else {
            return;
        };
        self.quiesce();
        let unbound = smmu::with(|smmu| smmu.unbind_stage1(self.stream));
        // Still pinned: the ASID the task owns must be the pinned one.
        let owned = self.asids.owned_id(&task.asid);
        let unpinned = self.asids.unpin(&task.asid);
        let rollovers = self.asids.generation().saturating_sub(generation);
        let name = &task.name;
        let bdf = self.bdf;
        match (unbound, unpinned) {
            (Some(Ok(held)), Ok(())) if held == pinned && owned == Some(pinned) => info!(
                "task \"{name}\": unbound from {bdf}: ASID {} held throughout ({rollovers} ASID rollover(s) meanwhile); unpinned",
                pinned.get()
            ),
            (Some(Ok(held)), Ok(())) => error!(
                "task \"{name}\": FAIL: unbound from {bdf}: pinned ASID {}, the descriptor held {}, the task owns {:?}",
                pinned.get(),
                held.get(),
                owned.map(Asid::get)
            ),
            (Some(Err(e)), _) => error!("task \"{name}\": unbind {bdf}: {e}"),
            (None, _) => error!("task \"{name}\": unbind {bdf}: no SMMU"),
            (_, Err(e)) => error!("task \"{name}\": unpin ASID {}: {e}", pinned.get()),
        }
    }
}

/// Starts the tasks of `hyp.sva-tasks=N`, if the bootargs ask for them.
/// Call after the boot bundle's VMs were created (their functions are then
/// attached, their streams no longer abort).
pub fn start(platform: &Platform) {
    let Some(value) = platform::bootargs::value(&platform.bootargs, OPTION) else {
        return;
    };
    let count = match value.parse::<usize>() {
        Ok(n @ 0..=MAX_TASKS) => n,
        _ => {
            warn!("hyp.{OPTION}={value} ignored: expected a number from 0 to {MAX_TASKS}");
            return;
        }
    };
    let rounds = match platform::bootargs::value(&platform.bootargs, ROUNDS_OPTION) {
        None => ROUND_TRIPS,
        Some("forever") => crate::task::ENDLESS,
        Some(value) => match value.parse::<u64>() {
            Ok(n @ 1..=MAX_ROUND_TRIPS) => n,
            _ => {
                warn!("hyp.{ROUNDS_OPTION}={value} ignored: expected a number from 1 to {MAX_ROUND_TRIPS}, or forever (until every VM has stopped)");
                ROUND_TRIPS
            }
        },
    };
    let mut bars = bar_window(platform);
    let mut started = 0;
    for i in 0..count {
        let name = format!("sva{i}");
        let slot = FIRST_SLOT + i as u8;
        let bus = platform.pcie.as_ref().map_or(0, |pcie| pcie.first_bus);
        // Below 32 slots (MAX_TASKS): always a BDF.
        let Some(bdf) = Bdf::new(bus, slot, 0) else {
            continue;
        };
        match start_one(&name, bdf, bars.as_mut(), rounds) {
            Ok(()) => started += 1,
            Err(e) => error!("task \"{name}\": bind {bdf} refused: {e}; not started"),
        }
    }
    info!("sva tasks: {started} of {count} started");
}

/// A BAR allocator over the top [`BAR_WINDOW`] bytes of the host bridge's
/// first non-prefetchable 32-bit window (see the module documentation).
fn bar_window(platform: &Platform) -> Option<BarAllocator> {
    let pcie = platform.pcie.as_ref()?;
    let window = pcie.windows.iter().find(|w| {
        w.space == PciSpace::Mem32 && !w.prefetchable && w.cpu.size() >= 2 * BAR_WINDOW
    })?;
    let offset = window.cpu.size() - BAR_WINDOW;
    let cpu = PhysRange::new(window.cpu.start().checked_add(offset)?, BAR_WINDOW)?;
    let mut bars = BarAllocator::new();
    bars.add_window(Window {
        kind: WindowKind::Mem32,
        prefetchable: false,
        pci_start: PciAddr(window.pci_addr.checked_add(offset)?),
        cpu,
    })
    .ok()?;
    Some(bars)
}

/// Claims `bdf`, makes the task `name` for it, pins its ASID, binds the
/// stream to its address space and queues it; undoes what it did on a
/// refusal.
fn start_one(
    name: &str,
    bdf: Bdf,
    bars: Option<&mut BarAllocator>,
    rounds: u64,
) -> Result<(), Refused> {
    let mut cs = crate::passthrough::config_space().ok_or(Refused::NoHostBus)?;
    let info = pci::probe_function(&cs, bdf).ok_or(Refused::NotFound)?;
    if (info.vendor_id, info.device_id) != edu::VENDOR_DEVICE
        || info.header_type != HeaderType::Endpoint
    {
        return Err(Refused::NotEdu(info));
    }
    let stream = StreamId(u32::from(bdf.routing_id()));
    match smmu::with(|smmu| smmu.entry(stream).map(|ste| ste.kind())) {
        None => return Err(Refused::NoSmmu),
        Some(Some(SteKind::Abort)) => {}
        Some(Some(kind)) => return Err(Refused::InUse(kind)),
        Some(None) => return Err(Refused::Smmu(SmmuError::StreamOutOfRange(stream))),
    }
    let asids = crate::sched::asids().ok_or(Refused::NoAsidAllocator)?;
    let binding = Arc::new(Binding {
        bdf,
        stream,
        config: cs,
        asids,
        bound: SpinMutex::new(None),
    });
    binding.quiesce();
    let placed = pci::assign_bars(
        &mut cs,
        bdf,
        info.header_type,
        bars.ok_or(Refused::NoBarWindow)?,
    )
    .map_err(Refused::Bars)?;
    let bar0 = placed
        .get(0)
        .and_then(|bar| bar.placement)
        .ok_or(Refused::NoBar0)?
        .cpu;
    let task = build_task(name, bdf, bar0, &binding, rounds).map_err(Refused::Task)?;

    // What the CPUs walk the task's table with.
    let (tcr, mair) = (TCR_EL2.get(), MAIR_EL2.get());
    let root = addr::PhysAddr(task.root_table());
    let widest = Asid::new(((1u32 << asids.bits()) - 1) as u16);
    match smmu::with(|smmu| smmu.check_stage1(widest, root, tcr, mair)) {
        None => return Err(Refused::NoSmmu),
        Some(Err(e)) => return Err(Refused::Smmu(e)),
        Some(Ok(())) => {}
    }
    let asid = asids.pin(&task.asid).map_err(|e| match e {
        AllocError::PinLimit { limit } => Refused::NoAsidToPin {
            limit,
            bits: asids.bits(),
            cpus: asids.nr_cpus(),
        },
        other => Refused::Pin(other),
    })?;
    let generation = asids.generation();
    let unpin = |e| {
        let _ = asids.unpin(&task.asid);
        e
    };
    match smmu::with(|smmu| smmu.bind_stage1(stream, asid, root, tcr, mair)) {
        None => return Err(unpin(Refused::NoSmmu)),
        Some(Err(e)) => return Err(unpin(Refused::Smmu(e))),
        Some(Ok(())) => {}
    }
    *binding.bound.lock() = Some((asid, generation));
    pci::enable_memory_and_bus_master(&mut cs, bdf, Command::INTERRUPT_DISABLE);
    // SAFETY: BAR0 of edu, just placed in a host bridge window, which
    // `mmu::build` maps as device memory; decoding is on.
    let id = unsafe { ((bar0.start().get() + edu::ID) as *const u32).read_volatile() };
    if id != edu::ID_VALUE {
        // Unbinds and unpins (the task never ran).
        binding.end(&task);
        return Err(Refused::WrongId(id));
    }
    let stats = asids.stats();
    info!(
        "task \"{name}\": bound to edu {bdf} (stream {stream}): its table at {root}, ASID {} pinned ({} of at most {} pinned), BAR0 {} at {DEVICE_BASE:#x}",
        asid.get(),
        stats.pinned,
        stats.max_pinned,
        bar0,
    );
    task::created();
    if rounds == task::ENDLESS {
        task::run_until_vms_stop(&task);
    }
    crate::sched::enqueue_task(task);
    Ok(())
}

/// The task for `bdf`, making `rounds` round trips: the program, a page of
/// stack, edu's registers at
/// [`DEVICE_BASE`], and `binding`'s end as its `on_end`.
fn build_task(
    name: &str,
    bdf: Bdf,
    bar0: PhysRange,
    binding: &Arc<Binding>,
    rounds: u64,
) -> Result<Arc<Task>, TaskError> {
    let mut builder = Builder::new(name)?;
    builder.code(program())?;
    builder.stack(PAGE_SIZE)?;
    builder.map_device(DEVICE_BASE, bar0.start().get(), bar0.size())?;
    let binding = binding.clone();
    builder.on_end(Box::new(move |task| binding.end(task)));
    // A seed unique to the function, so no two tasks' bytes agree.
    let seed = u64::from(bdf.routing_id()) << 40;
    builder.build(TASK_BASE, [rounds, DEVICE_BASE, seed, 0])
}
