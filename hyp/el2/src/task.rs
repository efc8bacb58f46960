//! Unprivileged tasks: programs the hypervisor runs at EL0 in its own EL2&0
//! translation regime (VHE, `HCR_EL2.{E2H, TGE} = {1, 1}`), each in its own
//! stage-1 address space tagged by an ASID from the generation-plus-pinning
//! allocator (`id_alloc::AsidAllocator`), the same code that hands out VMIDs.
//!
//! **Address spaces.** The hypervisor is identity-mapped through TTBR0_EL2
//! (`mmu`): its code, data, heap and MMIO all live at their physical
//! addresses, in the lower VA range. Moving it to the upper range (TTBR1_EL2)
//! would mean relinking it at a high address and translating every physical
//! address it hands to devices, stage 2 and the SMMU. Instead, each task's
//! root table (level 0) starts as a copy of the hypervisor's root: the same
//! level-0 entries, pointing at the hypervisor's own (shared) level-1 tables,
//! so the hypervisor stays mapped, privileged-only (no entry of its map
//! grants EL0 access; its code is UXN), while TTBR0_EL2 holds a task's table.
//! The task's own pages hang off one more level-0 entry,
//! [`task_abi::TASK_BASE`] (64 TiB), which the hypervisor's map never uses;
//! they are non-global (nG), so the TLB tags them with the task's ASID,
//! and every task uses the same virtual addresses with its own pages.
//! The hypervisor's map does not change after boot, so the copied level-0
//! entries stay right. (The hypervisor's mappings being present while EL0
//! runs leaves it open to speculative side channels, as Linux without KPTI
//! is; a split into TTBR1 is the cure, for later.)
//!
//! **Entry and exit** reuse the vCPU world switch (`vcpu::run`): the task's
//! registers are a `GuestRegs`, its PSTATE is EL0t, and its exceptions (with
//! TGE = 1 every exception from EL0 goes to EL2) come back through the same
//! lower-EL vectors as a guest's exits. The caller knows what it entered, so
//! the guest exit path is not touched at all.
//!
//! **System calls** (`SVC #0`, number in x8, arguments in x0..x5, result in
//! x0; see `task_abi`): `log`, `exit`, `yield`, `wait` and `signal` on
//! doorbells. Any other exception, and a refused call, stops the task with a
//! logged, decoded fault; nothing else is affected.

use crate::lock::SpinMutex;
use crate::vcpu::GuestRegs;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::fmt;
use core::sync::atomic::{AtomicU16, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use id_alloc::{Asid, Context, LocalTlbFlush};
use log::{error, info};
use syndrome::Esr;
use task_abi::{Doorbell, Layout, Region, Status, Syscall, DOORBELLS, PAGE_SIZE, TASK_BASE};

/// Entries in one translation table.
const ENTRIES: usize = 512;

/// A 4 KiB page: a translation table or one page of a task's memory.
#[repr(C, align(4096))]
struct Page([u64; ENTRIES]);

const _: () = assert!(core::mem::size_of::<Page>() as u64 == PAGE_SIZE);

impl Page {
    /// A zeroed page from the heap (`None` if the heap is exhausted).
    fn zeroed() -> Option<Box<Self>> {
        let layout = core::alloc::Layout::new::<Self>();
        // SAFETY: The layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) }.cast::<Self>();
        // SAFETY: A non-null result of `alloc_zeroed` with `Self`'s layout is
        // a valid, uniquely owned, zeroed `Self` (all-zero is a valid Page).
        (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
    }

    /// Its physical address (the hypervisor's map is an identity map).
    fn address(&self) -> u64 {
        core::ptr::from_ref(self) as u64
    }

    fn bytes(&self) -> &[u8; PAGE_SIZE as usize] {
        // SAFETY: Same size, and u8 has no alignment or validity needs.
        unsafe { &*core::ptr::from_ref(self).cast() }
    }

    fn bytes_mut(&mut self) -> &mut [u8; PAGE_SIZE as usize] {
        // SAFETY: As in `bytes`, and `self` is borrowed uniquely.
        unsafe { &mut *core::ptr::from_mut(self).cast() }
    }
}

/// Stage-1 descriptor bits (Arm ARM D8.3, VMSAv8-64 descriptor formats).
mod desc {
    /// Valid, and a table (levels 0 to 2) or a page (level 3).
    pub const TABLE_OR_PAGE: u64 = 0b11;
    /// AttrIndx: normal write-back memory.
    pub const NORMAL: u64 = crate::boot::MAIR_NORMAL << 2;
    /// AP[1]: EL0 may access.
    pub const EL0: u64 = 1 << 6;
    /// AP[2]: read-only.
    pub const READ_ONLY: u64 = 1 << 7;
    /// SH: inner shareable.
    pub const INNER_SHAREABLE: u64 = 0b11 << 8;
    /// AF: accessed (no access-flag faults).
    pub const ACCESSED: u64 = 1 << 10;
    /// nG: tagged with the ASID in the TLB.
    pub const NOT_GLOBAL: u64 = 1 << 11;
    /// PXN: never executable at EL2.
    pub const PXN: u64 = 1 << 53;
    /// UXN: never executable at EL0.
    pub const UXN: u64 = 1 << 54;
    /// Output address bits [47:12].
    pub const ADDRESS: u64 = 0x0000_ffff_ffff_f000;

    const PAGE: u64 = TABLE_OR_PAGE | NORMAL | EL0 | INNER_SHAREABLE | ACCESSED | NOT_GLOBAL | PXN;
    /// A task's code page: EL0 may read and execute it, nobody writes it.
    pub const CODE: u64 = PAGE | READ_ONLY;
    /// A task's stack page: EL0 reads and writes, nobody executes.
    pub const STACK: u64 = PAGE | UXN;
}

/// Index of `va`'s entry in a table of `level`.
const fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & (ENTRIES as u64 - 1)) as usize
}

/// TTBR0_EL2 of the hypervisor's own map (ASID 0), which every CPU runs on
/// outside tasks. Set once by [`init`].
static HYP_TTBR0: AtomicU64 = AtomicU64::new(0);

/// Notes the hypervisor's TTBR0_EL2 value, the template of every task's root
/// table and what each CPU returns to after a task.
pub fn init(hyp_ttbr0: u64) {
    HYP_TTBR0.store(hyp_ttbr0, Ordering::Release);
}

/// Why a task could not be made.
#[derive(Debug)]
pub enum TaskError {
    /// The program does not fit the task's window.
    Layout(task_abi::LayoutError),
    /// The heap has no page left.
    OutOfMemory,
    /// [`init`] has not run.
    NoHypervisorMap,
    /// The hypervisor's map already uses the task's level-0 entry.
    WindowInUse,
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Layout(e) => write!(f, "{e}"),
            Self::OutOfMemory => f.write_str("out of memory for its pages"),
            Self::NoHypervisorMap => f.write_str("no hypervisor map to share"),
            Self::WindowInUse => write!(
                f,
                "the hypervisor's map uses the task window at {TASK_BASE:#x}"
            ),
        }
    }
}

/// Where a task is, for the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TaskRun {
    /// In a run queue or on a CPU.
    Runnable = 0,
    /// Waiting on a doorbell.
    Blocked = 1,
    /// Exited or stopped.
    Done = 2,
}

/// One task: its address space, registers and counters.
pub struct Task {
    /// Its name, the prefix of its log lines.
    pub name: String,
    layout: Layout,
    /// Level 0 to 3 of its translation tables; level 0 shares the
    /// hypervisor's level-1 tables.
    tables: [Box<Page>; 4],
    code: Vec<Box<Page>>,
    stack: Vec<Box<Page>>,
    /// Its ASID's allocator context.
    pub asid: Context<Asid>,
    /// Its registers, saved while it is off every CPU.
    pub regs: SpinMutex<GuestRegs>,
    run: AtomicU8,
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
    /// System calls made.
    syscalls: AtomicU64,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").field("name", &self.name).finish()
    }
}

impl Task {
    /// A task named `name` running `program` (copied into its code pages)
    /// with `stack_pages` of stack, starting with x0 = `args[0]`,
    /// x1 = `args[1]`.
    ///
    /// # Errors
    ///
    /// See [`TaskError`].
    pub fn new(
        name: &str,
        program: &[u8],
        stack_pages: u64,
        args: [u64; 2],
    ) -> Result<Arc<Self>, TaskError> {
        let layout = Layout::new(program.len() as u64, stack_pages).map_err(TaskError::Layout)?;
        let hyp_root = HYP_TTBR0.load(Ordering::Acquire) & desc::ADDRESS;
        if hyp_root == 0 {
            return Err(TaskError::NoHypervisorMap);
        }
        let page = || Page::zeroed().ok_or(TaskError::OutOfMemory);
        let mut tables = [page()?, page()?, page()?, page()?];
        let code = (0..layout.code_pages())
            .map(|_| page())
            .collect::<Result<Vec<_>, _>>()?;
        let stack = (0..layout.stack_pages())
            .map(|_| page())
            .collect::<Result<Vec<_>, _>>()?;
        // The hypervisor's level-0 entries, then the task's own.
        // SAFETY: The hypervisor's root table is a page of the image's
        // map, identity-mapped and never changed after boot.
        let hyp = unsafe { &*(hyp_root as *const [u64; ENTRIES]) };
        tables[0].0 = *hyp;
        if tables[0].0[index(TASK_BASE, 0)] != 0 {
            return Err(TaskError::WindowInUse);
        }
        for level in 0..3 {
            let next = tables[level + 1].address();
            tables[level].0[index(TASK_BASE, level as u32)] = next | desc::TABLE_OR_PAGE;
        }
        let mut task = Self {
            name: name.into(),
            layout,
            tables,
            code,
            stack,
            asid: Context::new(),
            regs: SpinMutex::new(GuestRegs::default()),
            run: AtomicU8::new(TaskRun::Runnable as u8),
            last_cpu: AtomicUsize::new(usize::MAX),
            last_asid: AtomicU16::new(0),
            runs: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            migrations: AtomicU64::new(0),
            asid_changes: AtomicU64::new(0),
            syscalls: AtomicU64::new(0),
        };
        for (chunk, page) in program.chunks(PAGE_SIZE as usize).zip(&mut task.code) {
            page.bytes_mut()[..chunk.len()].copy_from_slice(chunk);
        }
        let mut leaf = [0u64; ENTRIES];
        for (i, page) in task.code.iter().enumerate() {
            leaf[index(TASK_BASE + i as u64 * PAGE_SIZE, 3)] = page.address() | desc::CODE;
        }
        for (i, page) in task.stack.iter().enumerate() {
            let va = layout.stack_start() + i as u64 * PAGE_SIZE;
            leaf[index(va, 3)] = page.address() | desc::STACK;
        }
        task.tables[3].0 = leaf;
        // The code must reach the point of unification before anything
        // fetches it; the tables are walked through the caches (TCR's
        // IRGN0/ORGN0 write-back), so a barrier is all they need.
        for page in &task.code {
            crate::mmu::clean_range_to_poc(page.address(), PAGE_SIZE);
        }
        crate::mmu::invalidate_icache();
        {
            let regs = task.regs.get_mut();
            regs.pc = layout.entry();
            // EL0t with nothing masked: the EL2 timer preempts it.
            regs.pstate = 0;
            regs.sp_el0 = layout.stack_top();
            regs.x[0] = args[0];
            regs.x[1] = args[1];
        }
        Ok(Arc::new(task))
    }

    /// TTBR0_EL2 for this task with `asid`.
    fn ttbr0(&self, asid: Asid) -> u64 {
        self.tables[0].address() | (u64::from(asid.get()) << 48)
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

    /// Counts an entry on `cpu` with `asid`, and logs an ASID change.
    fn note_entry(&self, cpu: usize, asid: Asid) {
        self.runs.fetch_add(1, Ordering::Relaxed);
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
    fn summary(&self) -> impl fmt::Display + '_ {
        struct Summary<'a>(&'a Task);
        impl fmt::Display for Summary<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let t = self.0;
                write!(
                    f,
                    "{} run(s), {} preemption(s), {} migration(s), {} ASID change(s), {} system call(s)",
                    t.runs.load(Ordering::Relaxed),
                    t.preemptions.load(Ordering::Relaxed),
                    t.migrations.load(Ordering::Relaxed),
                    t.asid_changes.load(Ordering::Relaxed),
                    t.syscalls.load(Ordering::Relaxed)
                )
            }
        }
        Summary(self)
    }

    /// The bytes `len` at task address `ptr`, copied out of its pages, if
    /// they all lie in one of its regions.
    fn copy_in(&self, ptr: u64, len: u64) -> Result<Vec<u8>, task_abi::OutsideTask> {
        let (region, offset) = self.layout.locate(ptr, len)?;
        let pages = match region {
            Region::Code => &self.code,
            Region::Stack => &self.stack,
        };
        let mut out = Vec::with_capacity(len as usize);
        let mut at = offset;
        while at < offset + len {
            let page = &pages[(at / PAGE_SIZE) as usize];
            let start = (at % PAGE_SIZE) as usize;
            let take = (PAGE_SIZE as usize - start).min((offset + len - at) as usize);
            out.extend_from_slice(&page.bytes()[start..start + take]);
            at += take as u64;
        }
        Ok(out)
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
pub fn enter_address_space(task: &Task, cpu: usize, asid: Asid) {
    task.note_entry(cpu, asid);
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
    /// Waiting on a doorbell (it is on the doorbell's list already).
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
        Syscall::Log { ptr, len } => match task.copy_in(ptr, len) {
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

fn finish(task: &Task) -> Outcome {
    task.set_run(TaskRun::Done);
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

// The demonstration programs: position-independent AArch64 code copied
// into a task's code pages (it is data to the hypervisor, hence .rodata).
// Each message is preceded by its length as a word, read PC-relative.
global_asm!(
    r#"
.section .rodata.task_programs, "a"
.balign 4

// x0 = iterations, x1 = a token unique to the task. Keeps the token and
// its count on its stack, spins a little, yields, and checks after every
// yield that its stack still holds its own token: all tasks use the same
// virtual addresses, so a stale translation (a TLB entry of another task's
// ASID) would show another task's stack here.
.global task_worker_start
task_worker_start:
    mov     x19, x0
    mov     x20, x1
    mov     x21, #0
    stp     x20, x21, [sp, #-16]!
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
1:  mov     x9, #{spin}
2:  subs    x9, x9, #1
    b.ne    2b
    mov     x8, #{yield_}
    svc     #0
    ldr     x10, [sp]
    cmp     x10, x20
    b.ne    8f
    add     x21, x21, #1
    str     x21, [sp, #8]
    cmp     x21, x19
    b.lo    1b
    adr     x0, 91f + 4
    ldr     w1, 91f
    mov     x8, #{log}
    svc     #0
    mov     x0, #0
    b       9f
8:  adr     x0, 92f + 4
    ldr     w1, 92f
    mov     x8, #{log}
    svc     #0
    mov     x0, #1
9:  mov     x8, #{exit}
    svc     #0
    brk     #0
90: .word   97f - 90b - 4
    .ascii  "started"
97: .balign 4
91: .word   97f - 91b - 4
    .ascii  "done: its stack held its own token after every yield"
97: .balign 4
92: .word   97f - 92b - 4
    .ascii  "FAIL: its stack holds something else after a yield"
97: .balign 4
.global task_worker_end
task_worker_end:

// Writes into the hypervisor's image, mapped privileged-only in its table:
// a permission fault, which must stop it and nothing else.
.global task_faulter_start
task_faulter_start:
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
    movz    x2, #0x4008, lsl #16
    str     x0, [x2]
    adr     x0, 91f + 4
    ldr     w1, 91f
    mov     x8, #{log}
    svc     #0
    mov     x0, #1
    mov     x8, #{exit}
    svc     #0
90: .word   97f - 90b - 4
    .ascii  "writing to the hypervisor's image at 0x40080000"
97: .balign 4
91: .word   97f - 91b - 4
    .ascii  "FAIL: the write went through"
97: .balign 4
.global task_faulter_end
task_faulter_end:

// Asks the hypervisor to log 16 bytes of the hypervisor's own image: the
// copy's bounds check must refuse it and stop the task.
.global task_bad_log_start
task_bad_log_start:
    movz    x0, #0x4008, lsl #16
    mov     x1, #16
    mov     x8, #{log}
    svc     #0
    mov     x0, #1
    mov     x8, #{exit}
    svc     #0
.global task_bad_log_end
task_bad_log_end:

// x0 = iterations of a loop without system calls: only the EL2 timer's
// end of its time slice takes the CPU from it.
.global task_spinner_start
task_spinner_start:
1:  subs    x0, x0, #1
    b.ne    1b
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
    mov     x0, #0
    mov     x8, #{exit}
    svc     #0
90: .word   97f - 90b - 4
    .ascii  "spun to the end without a system call"
97: .balign 4
.global task_spinner_end
task_spinner_end:

// x0 = rings to wait for on doorbell 0.
.global task_waiter_start
task_waiter_start:
    mov     x19, x0
1:  mov     x0, #0
    mov     x8, #{wait}
    svc     #0
    subs    x19, x19, #1
    b.ne    1b
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
    mov     x0, #0
    mov     x8, #{exit}
    svc     #0
90: .word   97f - 90b - 4
    .ascii  "woken by every ring"
97: .balign 4
.global task_waiter_end
task_waiter_end:

// x0 = rings of doorbell 0, a yield after each.
.global task_signaller_start
task_signaller_start:
    mov     x19, x0
1:  mov     x0, #0
    mov     x8, #{signal}
    svc     #0
    mov     x8, #{yield_}
    svc     #0
    subs    x19, x19, #1
    b.ne    1b
    mov     x0, #0
    mov     x8, #{exit}
    svc     #0
.global task_signaller_end
task_signaller_end:
"#,
    log = const task_abi::Number::Log as u64,
    exit = const task_abi::Number::Exit as u64,
    yield_ = const task_abi::Number::Yield as u64,
    wait = const task_abi::Number::Wait as u64,
    signal = const task_abi::Number::Signal as u64,
    spin = const 20_000,
);

unsafe extern "C" {
    static task_worker_start: u8;
    static task_worker_end: u8;
    static task_faulter_start: u8;
    static task_faulter_end: u8;
    static task_bad_log_start: u8;
    static task_bad_log_end: u8;
    static task_spinner_start: u8;
    static task_spinner_end: u8;
    static task_waiter_start: u8;
    static task_waiter_end: u8;
    static task_signaller_start: u8;
    static task_signaller_end: u8;
}

/// The bytes between two symbols of the image.
fn program(start: &'static u8, end: &'static u8) -> &'static [u8] {
    let start = core::ptr::from_ref(start);
    let len = (core::ptr::from_ref(end) as usize).saturating_sub(start as usize);
    // SAFETY: Both symbols bound one program in .rodata, start before end.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Yields of each demonstration worker.
const WORKER_ITERATIONS: u64 = 200;

/// Loop iterations of the demonstration spinner: a good many time slices
/// under QEMU's TCG.
const SPINS: u64 = 50_000_000;

/// Rings the demonstration waiter waits for.
const RINGS: u64 = 50;

/// Starts the demonstration tasks of `hyp.demo-tasks=N`: `N` workers, a task
/// that never makes a system call until its end, one that writes outside its map, one that asks to log hypervisor memory,
/// and a waiter with its signaller on doorbell 0.
pub fn start_demo(workers: usize) {
    // SAFETY: Only the symbols' addresses are taken.
    let (worker, spinner, faulter, bad_log, waiter, signaller) = unsafe {
        (
            program(&task_worker_start, &task_worker_end),
            program(&task_spinner_start, &task_spinner_end),
            program(&task_faulter_start, &task_faulter_end),
            program(&task_bad_log_start, &task_bad_log_end),
            program(&task_waiter_start, &task_waiter_end),
            program(&task_signaller_start, &task_signaller_end),
        )
    };
    let mut tasks: Vec<(String, &[u8], [u64; 2])> = (0..workers)
        .map(|i| {
            (
                alloc::format!("worker{i}"),
                worker,
                [WORKER_ITERATIONS, 0x7a5c_0000 + i as u64],
            )
        })
        .collect();
    tasks.push(("spinner".into(), spinner, [SPINS, 0]));
    tasks.push(("faulter".into(), faulter, [0, 0]));
    tasks.push(("bad-log".into(), bad_log, [0, 0]));
    tasks.push(("waiter".into(), waiter, [RINGS, 0]));
    tasks.push(("signaller".into(), signaller, [RINGS, 0]));
    for (name, program, args) in tasks {
        match Task::new(&name, program, 1, args) {
            Ok(task) => {
                created();
                crate::sched::enqueue_task(task);
            }
            Err(e) => error!("task \"{name}\": not started: {e}"),
        }
    }
    info!(
        "demo tasks: {workers} worker(s), a spinner, a faulter, a bad logger, a waiter and its signaller"
    );
}
