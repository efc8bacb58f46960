//! Unprivileged tasks: programs the hypervisor runs at EL0 in its own EL2&0
//! translation regime (VHE, `HCR_EL2.{E2H, TGE} = {1, 1}`), each in its own
//! stage-1 address space tagged by an ASID from the generation-plus-pinning
//! allocator (`id_alloc::AsidAllocator`), the same code that hands out VMIDs.
//!
//! **Address spaces** ([`space`]). The hypervisor is identity-mapped through
//! TTBR0_EL2 (`mmu`): its code, data, heap and MMIO all live at their
//! physical addresses, in the lower VA range. Moving it to the upper range
//! (TTBR1_EL2) would mean relinking it at a high address and translating
//! every physical address it hands to devices, stage 2 and the SMMU.
//! Instead, each task's root table (level 0) starts as a copy of the
//! hypervisor's root: the same level-0 entries, pointing at the hypervisor's
//! own (shared) level-1 tables, so the hypervisor stays mapped,
//! privileged-only (no entry of its map grants EL0 access; its code is UXN),
//! while TTBR0_EL2 holds a task's table. The task's own memory hangs off one
//! more level-0 entry, [`task_abi::TASK_BASE`] (64 TiB), which the
//! hypervisor's map never uses: its program's segments, its stack, and, for
//! a device backend, whatever of its VM's RAM it maps (`map_guest`) and
//! nothing else. Those entries are
//! non-global (nG), so the TLB tags them with the task's ASID, and every
//! task uses the same virtual addresses with its own pages. (The
//! hypervisor's mappings being present while EL0 runs leaves it open to
//! speculative side channels, as Linux without KPTI is; a split into TTBR1
//! is the cure, for later.)
//!
//! **Entry and exit** reuse the vCPU world switch (`vcpu::run`): the task's
//! registers are a `GuestRegs`, its PSTATE is EL0t, and its exceptions (with
//! TGE = 1 every exception from EL0 goes to EL2) come back through the same
//! lower-EL vectors as a guest's exits. The caller knows what it entered, so
//! the guest exit path is not touched at all.
//!
//! **System calls** (`SVC #0`, number in x8, arguments in x0..x5, status in
//! x0, value in x1; see `task_abi`): `log`, `exit`, `yield`, `wait` and
//! `signal` on doorbells, `wait_events` on the task's own event bits,
//! `map_guest` and `unmap_guest` on its VM's RAM, and the device calls,
//! which go to the task's [`Service`] (a VM's virtio backends). Any other
//! exception, and a call that breaks the ABI, stops the task with a logged,
//! decoded fault; nothing else is affected, and the task's `on_end` hook
//! lets its owner react (a VM's devices are marked failed). A call beyond
//! the task's limits (a mapping outside its VM's RAM) is refused with a
//! logged reason and [`Status::Denied`].

mod demo;
mod space;

pub use demo::{run_until_vms_stop, start_demo, stop_endless, ENDLESS, WORKER_ROUNDS};
pub use space::{GuestMapError, MapError};

use crate::lock::SpinMutex;
use crate::vcpu::GuestRegs;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use id_alloc::{Asid, Context, LocalTlbFlush};
use log::{error, info, warn};
use space::Space;
use syndrome::Esr;
use task_abi::{
    Access, Buffer, Doorbell, GuestGrant, GuestPages, OutsideTask, Region, Status, Syscall,
    DEVICE_BASE, DEVICE_WINDOW, DOORBELLS, MAX_STACK, PAGE_SIZE, STACK_TOP, TASK_BASE,
};

/// TTBR0_EL2 of the hypervisor's own map (ASID 0), which every CPU runs on
/// outside tasks. Set once by [`init`].
static HYP_TTBR0: AtomicU64 = AtomicU64::new(0);

/// Output address bits [47:12] of a TTBR.
const TTBR_ADDRESS: u64 = 0x0000_ffff_ffff_f000;

/// Notes the hypervisor's TTBR0_EL2 value, the template of every task's root
/// table and what each CPU returns to after a task.
pub fn init(hyp_ttbr0: u64) {
    HYP_TTBR0.store(hyp_ttbr0, Ordering::Release);
}

/// Why a task could not be made.
#[derive(Debug)]
pub enum TaskError {
    /// [`init`] has not run.
    NoHypervisorMap,
    /// A region could not be mapped.
    Map(MapError),
    /// A region is too big or outside its window.
    TooBig {
        /// What.
        what: &'static str,
        /// Bytes asked for.
        len: u64,
    },
    /// The program is not a valid task image.
    Image(task_image::ImageError),
    /// [`Builder::build`] before [`Builder::stack`].
    NoStack,
    /// The VM RAM cannot be granted.
    Grant(task_abi::GrantError),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHypervisorMap => f.write_str("no hypervisor map to share"),
            Self::Map(e) => write!(f, "{e}"),
            Self::TooBig { what, len } => write!(f, "{what} of {len:#x} bytes does not fit"),
            Self::Image(e) => write!(f, "program image: {e}"),
            Self::NoStack => f.write_str("no stack"),
            Self::Grant(e) => write!(f, "{e}"),
        }
    }
}

impl From<MapError> for TaskError {
    fn from(e: MapError) -> Self {
        Self::Map(e)
    }
}

/// Where a task is, for the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskRun {
    /// In a run queue or on a CPU.
    Runnable = 0,
    /// Waiting on a doorbell or for events.
    Blocked = 1,
    /// Exited or stopped.
    Done = 2,
}

/// Why a device system call was refused: the task broke the ABI, and is
/// stopped.
#[derive(Debug)]
pub enum Refusal {
    /// A buffer outside the task's memory.
    Outside(OutsideTask),
    /// A slot the task does not serve.
    NotItsSlot(task_abi::Slot),
    /// The task has no service for device calls.
    NoService,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Outside(e) => write!(f, "{e}"),
            Self::NotItsSlot(slot) => write!(f, "slot {} is not the task's", slot.index()),
            Self::NoService => f.write_str("the task serves no devices"),
        }
    }
}

impl From<OutsideTask> for Refusal {
    fn from(e: OutsideTask) -> Self {
        Self::Outside(e)
    }
}

/// What a task's device system calls reach: its owner (a VM's virtio
/// backends).
pub trait Service: Send + Sync {
    /// Carries out `call` for `task`: a status and a value for the task, or a
    /// refusal that stops it.
    fn call(&self, task: &Task, call: Syscall) -> Result<(Status, u64), Refusal>;
}

/// What runs when a task ends.
type OnEnd = Box<dyn FnOnce(&Task) + Send>;

/// A task being set up: its address space, filled region by region, then
/// [`Builder::build`].
pub struct Builder {
    name: String,
    space: Space,
    has_stack: bool,
    service: Option<Arc<dyn Service>>,
    on_end: Option<OnEnd>,
}

impl Builder {
    /// An empty task named `name` (the prefix of its log lines).
    ///
    /// # Errors
    ///
    /// [`TaskError::NoHypervisorMap`] before [`init`]; [`TaskError::Map`].
    pub fn new(name: &str) -> Result<Self, TaskError> {
        let hyp_root = HYP_TTBR0.load(Ordering::Acquire) & TTBR_ADDRESS;
        if hyp_root == 0 {
            return Err(TaskError::NoHypervisorMap);
        }
        Ok(Self {
            name: name.into(),
            space: Space::new(hyp_root)?,
            has_stack: false,
            service: None,
            on_end: None,
        })
    }

    /// Flat code, read and execute, at [`TASK_BASE`] (position-independent
    /// programs such as the demonstration tasks).
    ///
    /// # Errors
    ///
    /// [`TaskError::TooBig`], [`TaskError::Map`].
    pub fn code(&mut self, program: &[u8]) -> Result<(), TaskError> {
        let len = (program.len() as u64).next_multiple_of(PAGE_SIZE);
        if len == 0 || len > task_abi::IMAGE_WINDOW {
            return Err(TaskError::TooBig {
                what: "code",
                len: program.len() as u64,
            });
        }
        let region = Region {
            start: TASK_BASE,
            len,
            access: Access::ReadExecute,
        };
        self.space.add_owned(region)?[..program.len()].copy_from_slice(program);
        Ok(())
    }

    /// The segments of a checked ELF program; returns its entry point.
    ///
    /// # Errors
    ///
    /// [`TaskError::Image`], [`TaskError::Map`].
    pub fn image(&mut self, elf: &[u8]) -> Result<u64, TaskError> {
        let image = task_image::parse(elf).map_err(TaskError::Image)?;
        for segment in image.segments() {
            let region = Region {
                start: segment.start,
                len: segment.len,
                access: segment.access,
            };
            let at = segment.data_offset as usize;
            self.space.add_owned(region)?[at..at + segment.data.len()]
                .copy_from_slice(segment.data);
        }
        Ok(image.entry)
    }

    /// `bytes` of read-write stack ending at [`STACK_TOP`], where the task's
    /// stack pointer starts.
    ///
    /// # Errors
    ///
    /// [`TaskError::TooBig`], [`TaskError::Map`].
    pub fn stack(&mut self, bytes: u64) -> Result<(), TaskError> {
        let len = bytes.next_multiple_of(PAGE_SIZE);
        if len == 0 || len > MAX_STACK {
            return Err(TaskError::TooBig { what: "stack", len });
        }
        self.space.add_owned(Region {
            start: STACK_TOP - len,
            len,
            access: Access::ReadWrite,
        })?;
        self.has_stack = true;
        Ok(())
    }

    /// A VM's RAM, `size` bytes from guest physical `base`, at physical
    /// `pa`, which the task may map (`map_guest`); nothing of it is mapped
    /// yet. The RAM must outlive the task.
    ///
    /// # Errors
    ///
    /// [`TaskError::Grant`], [`TaskError::Map`].
    pub fn guest_ram(&mut self, pa: u64, base: u64, size: u64) -> Result<(), TaskError> {
        let grant = GuestGrant::new(base, size).map_err(TaskError::Grant)?;
        Ok(self.space.grant_guest_ram(grant, pa)?)
    }

    /// Device registers, `len` bytes at physical `pa`, at task address `va`
    /// in the device window: device memory, EL0 read-write, never
    /// executable. The device must outlive the task.
    ///
    /// # Errors
    ///
    /// [`TaskError::TooBig`], [`TaskError::Map`].
    pub fn map_device(&mut self, va: u64, pa: u64, len: u64) -> Result<(), TaskError> {
        let inside = va >= DEVICE_BASE
            && va
                .checked_add(len)
                .is_some_and(|end| end <= DEVICE_BASE + DEVICE_WINDOW);
        if !inside {
            return Err(TaskError::TooBig {
                what: "device window",
                len,
            });
        }
        let region = Region {
            start: va,
            len,
            access: Access::Device,
        };
        Ok(self.space.add_borrowed(region, pa)?)
    }

    /// Where its device system calls go.
    pub fn service(&mut self, service: Arc<dyn Service>) {
        self.service = Some(service);
    }

    /// Runs `f` once when the task exits or is stopped.
    pub fn on_end(&mut self, f: OnEnd) {
        self.on_end = Some(f);
    }

    /// The task, ready to queue, entering at `entry` with x0..x3 = `args`.
    ///
    /// # Errors
    ///
    /// [`TaskError::NoStack`].
    pub fn build(self, entry: u64, args: [u64; 4]) -> Result<Arc<Task>, TaskError> {
        if !self.has_stack {
            return Err(TaskError::NoStack);
        }
        // The code must reach the point of unification before anything
        // fetches it; the tables are walked through the caches (TCR's
        // IRGN0/ORGN0 write-back), so a barrier is all they need.
        self.space.sync_code();
        let mut regs = GuestRegs {
            pc: entry,
            // EL0t with nothing masked: the EL2 timer preempts it.
            pstate: 0,
            sp_el0: STACK_TOP,
            ..GuestRegs::default()
        };
        regs.x[..4].copy_from_slice(&args);
        Ok(Arc::new(Task {
            name: self.name,
            root: self.space.root(),
            space: SpinMutex::new(self.space),
            asid: Context::new(),
            regs: SpinMutex::new(regs),
            run: AtomicU8::new(TaskRun::Runnable as u8),
            events: AtomicU64::new(0),
            stop_requested: AtomicBool::new(false),
            service: self.service,
            on_end: SpinMutex::new(self.on_end),
            last_cpu: AtomicUsize::new(usize::MAX),
            last_asid: AtomicU16::new(0),
            runs: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            migrations: AtomicU64::new(0),
            asid_changes: AtomicU64::new(0),
            generations: (AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX)),
            syscalls: AtomicU64::new(0),
        }))
    }
}

/// One task: its address space, registers and counters.
pub struct Task {
    /// Its name, the prefix of its log lines.
    pub name: String,
    /// Physical address of its root table (which never moves).
    root: u64,
    /// Its address space: locked by its own system calls, which change it
    /// and copy to and from it, and by owners that copy for it.
    space: SpinMutex<Space>,
    /// Its ASID's allocator context.
    pub asid: Context<Asid>,
    /// Its registers, saved while it is off every CPU.
    pub regs: SpinMutex<GuestRegs>,
    run: AtomicU8,
    /// Event bits not yet taken by `wait_events`.
    events: AtomicU64,
    /// Set by [`Task::request_stop`]: it ends at its next exit.
    stop_requested: AtomicBool,
    service: Option<Arc<dyn Service>>,
    on_end: SpinMutex<Option<OnEnd>>,
    /// The CPU it last ran on (`usize::MAX`: none yet).
    last_cpu: AtomicUsize,
    /// The ASID it last ran with (0: none yet).
    last_asid: AtomicU16,
    /// Times it was entered from the scheduler.
    runs: AtomicU64,
    /// Times the end of its time slice took the CPU from it.
    preemptions: AtomicU64,
    /// Times it ran on another CPU than the time before.
    migrations: AtomicU64,
    /// Times its ASID changed (after rollovers).
    asid_changes: AtomicU64,
    /// The ASID allocator's generation at its first and its latest entry
    /// (`u64::MAX`: not run yet): how many rollovers it ran through, whether
    /// or not its ASID number changed.
    generations: (AtomicU64, AtomicU64),
    /// System calls made.
    syscalls: AtomicU64,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("name", &self.name).finish()
    }
}

impl Task {
    /// TTBR0_EL2 for this task with `asid`.
    fn ttbr0(&self, asid: Asid) -> u64 {
        self.root | (u64::from(asid.get()) << 48)
    }

    /// Physical address of its root (level-0) table: what a device sharing
    /// its address space walks.
    pub fn root_table(&self) -> u64 {
        self.root
    }

    /// The CPU it last ran on (`usize::MAX` before its first run).
    pub fn last_cpu(&self) -> usize {
        self.last_cpu.load(Ordering::Relaxed)
    }

    /// Counts the end of a time slice that took the CPU from it.
    pub fn preempted(&self) {
        self.preemptions.fetch_add(1, Ordering::Relaxed);
    }

    /// Where the scheduler has it.
    pub fn run_state(&self) -> TaskRun {
        match self.run.load(Ordering::Acquire) {
            0 => TaskRun::Runnable,
            1 => TaskRun::Blocked,
            _ => TaskRun::Done,
        }
    }

    fn set_run(&self, run: TaskRun) {
        self.run.store(run as u8, Ordering::Release);
    }

    /// Asks it to end: at once if it is blocked, else at its next exit.
    pub fn request_stop(self: &Arc<Self>) {
        self.stop_requested.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether [`Task::request_stop`] was called.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested.load(Ordering::Acquire)
    }

    /// Sets event `bits` for `wait_events`, waking the task if it waits.
    pub fn notify(self: &Arc<Self>, bits: u64) {
        self.events.fetch_or(bits, Ordering::AcqRel);
        self.wake();
    }

    /// Queues it if it is blocked.
    fn wake(self: &Arc<Self>) {
        let woken = self.run.compare_exchange(
            TaskRun::Blocked as u8,
            TaskRun::Runnable as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if woken.is_ok() {
            crate::sched::enqueue_task(self.clone());
        }
    }

    /// A copy of the task's bytes in `buffer`.
    ///
    /// # Errors
    ///
    /// [`OutsideTask`] unless they lie in one region the task may read.
    pub fn read(&self, buffer: Buffer) -> Result<Vec<u8>, OutsideTask> {
        self.space.lock().read(buffer)
    }

    /// Writes `data` to the task's memory at `ptr`.
    ///
    /// # Errors
    ///
    /// [`OutsideTask`] unless the bytes lie in one region the task may
    /// write.
    pub fn write(&self, ptr: u64, data: &[u8]) -> Result<(), OutsideTask> {
        self.space.lock().write(ptr, data)
    }

    /// Counts an entry on `cpu` with `asid` in the allocator's
    /// `generation`, and logs its first ASID.
    fn note_entry(&self, cpu: usize, asid: Asid, generation: u64) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let _ = self.generations.0.compare_exchange(
            u64::MAX,
            generation,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.generations.1.store(generation, Ordering::Relaxed);
        let last = self.last_cpu.swap(cpu, Ordering::Relaxed);
        if last != cpu && last != usize::MAX {
            self.migrations.fetch_add(1, Ordering::Relaxed);
        }
        let previous = self.last_asid.swap(asid.get(), Ordering::Relaxed);
        if previous == 0 {
            info!("task \"{}\": ASID {}", self.name, asid.get());
        } else if previous != asid.get() {
            self.asid_changes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One line of counters, for its end.
    pub fn summary(&self) -> impl fmt::Display + '_ {
        struct Summary<'a>(&'a Task);
        impl fmt::Display for Summary<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let t = self.0;
                let first = t.generations.0.load(Ordering::Relaxed);
                let last = t.generations.1.load(Ordering::Relaxed);
                write!(
                    f,
                    "{} run(s), {} preemption(s), {} migration(s), {} ASID change(s), {} system call(s), {} ASID rollover(s) between its first and last run",
                    t.runs.load(Ordering::Relaxed),
                    t.preemptions.load(Ordering::Relaxed),
                    t.migrations.load(Ordering::Relaxed),
                    t.asid_changes.load(Ordering::Relaxed),
                    t.syscalls.load(Ordering::Relaxed),
                    last.wrapping_sub(first)
                )
            }
        }
        Summary(self)
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // No CPU has its tables in TTBR0_EL2 any more (every exit switches
        // back to the hypervisor's map first); drop whatever the TLBs and
        // walk caches still hold for its last ASID before the pages go back
        // to the heap. (If a rollover gave that ASID to another task since,
        // this only costs it refills.)
        let asid = u64::from(self.last_asid.load(Ordering::Relaxed));
        if asid != 0 {
            // SAFETY: TLB invalidation changes no memory.
            unsafe {
                asm!(
                    "dsb ishst",
                    "tlbi aside1is, {}",
                    "dsb ish",
                    "isb",
                    in(reg) asid << 48,
                    options(nostack, preserves_flags)
                )
            };
        }
    }
}

/// Local invalidation of every ASID's entries, as the allocator asks after a
/// rollover: `TLBI VMALLE1`, which with HCR_EL2.{E2H, TGE} = {1, 1} applies
/// to the EL2&0 regime (Arm ARM C5.5, "TLBI VMALLE1").
pub struct AllAsids;

impl LocalTlbFlush<Asid> for AllAsids {
    fn flush_local_all(&mut self) {
        // SAFETY: TLB invalidation changes no memory and only costs refills.
        unsafe {
            asm!(
                "tlbi vmalle1",
                "dsb nsh",
                "isb",
                options(nostack, preserves_flags)
            )
        };
    }
}

/// Makes `task`'s address space current on this CPU with `asid`: TTBR0_EL2,
/// the EL0-readable thread registers cleared (they may hold the last
/// guest's values), and MDSCR_EL1 cleared, so that no debug setting a guest
/// left live (single step, breakpoints) applies to the task. (A vCPU loads
/// all three again before it runs.)
pub fn enter_address_space(task: &Task, cpu: usize, asid: Asid, generation: u64) {
    task.note_entry(cpu, asid, generation);
    // SAFETY: The task's root table maps the hypervisor exactly as its own
    // map does (shared level-1 tables), so everything running now stays
    // mapped; only the task's window (nG, this ASID) is new.
    unsafe {
        asm!(
            "msr ttbr0_el2, {}",
            "msr tpidr_el0, xzr",
            "msr tpidrro_el0, xzr",
            "msr mdscr_el1, xzr",
            "isb",
            in(reg) task.ttbr0(asid),
            options(nostack, preserves_flags)
        )
    };
}

/// Back to the hypervisor's own map (ASID 0) after a task ran.
pub fn leave_address_space() {
    // SAFETY: The hypervisor's map, which maps everything it uses.
    unsafe {
        asm!(
            "msr ttbr0_el2, {}",
            "isb",
            in(reg) HYP_TTBR0.load(Ordering::Relaxed),
            options(nostack, preserves_flags)
        )
    };
}

/// What the scheduler does with a task after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Run it again at once.
    Resume,
    /// To the back of the run queue.
    Yield,
    /// Waiting on a doorbell (it is on the doorbell's list already) or for
    /// events (whoever sets them queues it).
    Block,
    /// Finished: exited or stopped.
    Done,
}

/// Tasks alive (not done).
static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);

/// Tasks that have not finished.
pub fn live() -> usize {
    LIVE_TASKS.load(Ordering::Acquire)
}

/// Counts a new task (before it is queued).
pub fn created() {
    LIVE_TASKS.fetch_add(1, Ordering::AcqRel);
}

/// A doorbell: rings not yet taken, and the tasks waiting for one.
struct Bell {
    rings: u64,
    waiters: VecDeque<Arc<Task>>,
}

static BELLS: [SpinMutex<Bell>; DOORBELLS as usize] = [const {
    SpinMutex::new(Bell {
        rings: 0,
        waiters: VecDeque::new(),
    })
}; DOORBELLS as usize];

/// Handles a synchronous exception from `task`: a system call, or a fault
/// that stops it.
pub fn synchronous(task: &Arc<Task>, regs: &mut GuestRegs, esr: Esr, far: u64) -> Outcome {
    if esr.ec() != syndrome::ExceptionClass::Svc64 {
        return stop(task, regs, format_args!("{esr}, FAR {far:#x}"));
    }
    task.syscalls.fetch_add(1, Ordering::Relaxed);
    let args = [
        regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4], regs.x[5],
    ];
    let call = match Syscall::decode(regs.x[8], args) {
        Ok(call) => call,
        Err(e) => return stop(task, regs, format_args!("refused system call: {e}")),
    };
    // Every call that returns says so in x0; ELR already points past the SVC.
    regs.x[0] = Status::Ok as u64;
    match call {
        Syscall::Log(buffer) => match task.read(buffer) {
            Ok(bytes) => {
                let text: String = bytes
                    .iter()
                    .map(|&b| {
                        if b.is_ascii_graphic() || b == b' ' {
                            char::from(b)
                        } else {
                            '.'
                        }
                    })
                    .collect();
                info!("task \"{}\": {text}", task.name);
                Outcome::Resume
            }
            Err(e) => stop(task, regs, format_args!("refused log: {e}")),
        },
        Syscall::Exit { code } => {
            info!(
                "task \"{}\": exited with code {code}; {}",
                task.name,
                task.summary()
            );
            finish(task)
        }
        Syscall::Yield => Outcome::Yield,
        Syscall::Wait(bell) => wait(task, bell),
        Syscall::Signal(bell) => {
            signal(bell);
            Outcome::Resume
        }
        Syscall::WaitEvents => wait_events(task, regs),
        Syscall::MapGuest { pages, write } => {
            let asid = task.last_asid.load(Ordering::Relaxed);
            match task.space.lock().map_guest(pages, write, asid) {
                Ok(at) => regs.x[1] = at,
                Err(e) => regs.x[0] = refused(task, "map_guest", pages, &e) as u64,
            }
            Outcome::Resume
        }
        Syscall::UnmapGuest(pages) => {
            let asid = task.last_asid.load(Ordering::Relaxed);
            if let Err(e) = task.space.lock().unmap_guest(pages, asid) {
                regs.x[0] = refused(task, "unmap_guest", pages, &e) as u64;
            }
            Outcome::Resume
        }
        device_call => {
            let Some(service) = &task.service else {
                return stop(
                    task,
                    regs,
                    format_args!("refused {device_call:?}: {}", Refusal::NoService),
                );
            };
            match service.call(task, device_call) {
                Ok((status, value)) => {
                    regs.x[0] = status as u64;
                    regs.x[1] = value;
                    Outcome::Resume
                }
                Err(e) => stop(task, regs, format_args!("refused {device_call:?}: {e}")),
            }
        }
    }
}

/// Logs why `call` on `pages` was refused; the status that tells the task.
fn refused(task: &Task, call: &str, pages: GuestPages, e: &GuestMapError) -> Status {
    warn!("task \"{}\": {call} of {pages} refused: {e}", task.name);
    match e {
        GuestMapError::OutOfMemory => Status::Io,
        _ => Status::Denied,
    }
}

/// Stops `task` for an exception other than a system call (`what` names it).
pub fn fault(task: &Arc<Task>, regs: &GuestRegs, what: fmt::Arguments<'_>) -> Outcome {
    stop(task, regs, what)
}

fn stop(task: &Arc<Task>, regs: &GuestRegs, why: fmt::Arguments<'_>) -> Outcome {
    error!(
        "task \"{}\": stopped: {why}; ELR {:#x}, SPSR {:#x}; {}",
        task.name,
        regs.pc,
        regs.pstate,
        task.summary()
    );
    finish(task)
}

/// Ends `task` at the request of its owner ([`Task::request_stop`]).
pub fn stopped_on_request(task: &Arc<Task>) -> Outcome {
    info!(
        "task \"{}\": stopped on request; {}",
        task.name,
        task.summary()
    );
    finish(task)
}

fn finish(task: &Task) -> Outcome {
    task.set_run(TaskRun::Done);
    if let Some(on_end) = task.on_end.lock().take() {
        on_end(task);
    }
    LIVE_TASKS.fetch_sub(1, Ordering::AcqRel);
    Outcome::Done
}

fn wait(task: &Arc<Task>, bell: Doorbell) -> Outcome {
    let mut bell = BELLS[bell.index()].lock();
    if bell.rings > 0 {
        bell.rings -= 1;
        return Outcome::Resume;
    }
    // Marked under the doorbell's lock: a signal after this finds it. Its
    // registers stay locked by the caller until it is off this CPU, so a
    // signal on another CPU cannot run it before then.
    task.set_run(TaskRun::Blocked);
    bell.waiters.push_back(task.clone());
    Outcome::Block
}

/// `wait_events`: the bits set since the last call, or blocks. A blocked
/// task runs the call again when woken (its PC is wound back onto the SVC),
/// so the bits are always taken here.
fn wait_events(task: &Arc<Task>, regs: &mut GuestRegs) -> Outcome {
    let bits = task.events.swap(0, Ordering::AcqRel);
    if bits != 0 {
        regs.x[1] = bits;
        return Outcome::Resume;
    }
    if task.stop_requested() {
        return stopped_on_request(task);
    }
    task.set_run(TaskRun::Blocked);
    // A `notify` between the swap and the mark saw it runnable and did not
    // queue it: look again, now that a later one would.
    if task.events.load(Ordering::Acquire) != 0 || task.stop_requested() {
        task.set_run(TaskRun::Runnable);
        regs.pc -= 4;
        return Outcome::Resume;
    }
    regs.pc -= 4;
    Outcome::Block
}

fn signal(bell: Doorbell) {
    let woken = {
        let mut bell = BELLS[bell.index()].lock();
        let woken = bell.waiters.pop_front();
        if woken.is_none() {
            bell.rings += 1;
        }
        woken
    };
    if let Some(task) = woken {
        task.set_run(TaskRun::Runnable);
        crate::sched::enqueue_task(task);
    }
}
