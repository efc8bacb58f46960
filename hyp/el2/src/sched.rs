//! Running vCPUs on physical CPUs.
//!
//! Each physical CPU has a run queue. A CPU runs the vCPU at the head of
//! its queue for a time slice ([`SLICE_MS`], ended by the EL2 timer); when
//! the slice ends and another vCPU waits in the same queue, the running one
//! goes to the back. A vCPU that waits for an interrupt (WFI, PSCI
//! `CPU_SUSPEND`) with none pending blocks, off every queue, until an
//! interrupt for it arrives or its own timer's deadline passes. Load is
//! balanced two ways: a woken vCPU goes to its last CPU if that one is idle,
//! else to an idle CPU, else to the shortest queue; and a CPU with nothing
//! to run takes a waiting vCPU from another CPU's queue. Either way vCPUs
//! move between physical CPUs; each move is counted.
//!
//! EL0 tasks (`task`) share the run queues with vCPUs: the same slice,
//! placement and stealing, so they move between CPUs too. Each task entry
//! takes the task's ASID from the ASID allocator's `switch` (after the
//! local `TLBI VMALLE1` it may ask for) into TTBR0_EL2, runs it through the
//! same world switch with HCR_EL2 left in host mode (TGE = 1), and switches
//! back to the hypervisor's own map when it leaves.
//!
//! Each entry into a guest programs stage 2 with the VMID the allocator's
//! `switch` returns (after the local TLB flush it may ask for), and, when a
//! different vCPU of the same VM ran last on this physical CPU, invalidates
//! this VMID's local TLB entries first: they may hold the other vCPU's
//! stage-1 translations, which this one's page tables need not agree with
//! (Linux KVM's `last_vcpu_ran`).
//!
//! Interrupts: before every entry the VM's virtual GIC fills the list
//! registers, after every exit it takes them back (`ich`, `vgic`), so the
//! interrupt state moves with the vCPU. The guest's virtual timer runs on
//! the hardware while the vCPU runs; its interrupt is forwarded as a level
//! (the physical PPI stays disabled while the virtual line is high, so it
//! cannot storm), and while the vCPU is not running its deadline is a wake-up
//! time here. The EL1 physical timer is emulated (`vtimer`).

use crate::exits::{self, Next};
use crate::ich::{self, Limits};
use crate::lock::SpinMutex;
use crate::task::{self, Task, TaskRun};
use crate::vcpu::{self, Exit, VcpuState};
use crate::vm::Vm;
use crate::{boot, cpu, gic, timer};
use aarch64_cpu::asm::wfi;
use aarch64_cpu::registers::{
    ESR_EL2, FAR_EL2, HCR_EL2, MDCR_EL2, MIDR_EL1, VMPIDR_EL2, VTCR_EL2, VTTBR_EL2,
};
use alloc::collections::VecDeque;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use id_alloc::{AsidAllocator, LocalTlbFlush, Vmid, VmidAllocator};
use log::{error, info, warn};
use platform::MAX_CPUS;
use spin::Once;
use syndrome::Esr;
use tock_registers::interfaces::{Readable, Writeable};
use vgic::{IntId, VcpuSet, MAX_LIST_REGISTERS};
use vpsci::Power;

/// HCR_EL2 while a guest runs. Each bit is chosen:
/// - `VM`: stage 2 on; `RW`: EL1 is AArch64; `E2H`: the hypervisor stays in
///   VHE (TGE clear, so EL1 and EL0 are the guest's);
/// - `IMO`, `FMO`, `AMO`: physical interrupts and SErrors go to EL2, the
///   guest only ever sees virtual ones (and its writes to ICC_SGI1R_EL1
///   trap, to be routed by the virtual GIC);
/// - `TSC`: SMC traps, so SMC is a second PSCI conduit and never reaches
///   the firmware; `TWI`, `TWE`: WFI and WFE trap, to give the physical CPU
///   to another vCPU;
/// - `TIDCP`, `TACR`: implementation-defined registers and ACTLR_EL1 trap
///   (they could reach physical-CPU behaviour) and read as zero or UNDEFINED;
/// - `TID3`: the feature ID registers trap, so a guest sees only features
///   whose state is switched (`idregs` hides SVE, SME, MTE, pointer
///   authentication, the PMU and others);
/// - `PTW`: a stage-1 walk that hits device memory in stage 2 faults;
/// - `FB`, `BSU` inner shareable: TLB and cache maintenance by the guest
///   broadcasts to every physical CPU, because its vCPUs migrate;
/// - `SWIO`: set/way invalidation by the guest cleans too, so it never
///   discards another context's dirty lines.
///
/// Left clear on purpose: `TSW` (set/way maintenance runs natively, made
/// safe by SWIO), `TVM`/`TRVM` (the guest's MMU registers are its own),
/// `API`/`APK` (pointer authentication, hidden by `TID3`, traps to EL2 and
/// is refused: its keys are not switched).
pub const HCR_GUEST: u64 = HCR_EL2::VM::Enable.value
    | HCR_EL2::RW::EL1IsAarch64.value
    | HCR_EL2::E2H::EnableOsAtEl2.value
    | HCR_EL2::IMO::EnableVirtualIRQ.value
    | HCR_EL2::FMO::EnableVirtualFIQ.value
    | HCR_EL2::AMO::SET.value
    | HCR_EL2::TSC::EnableTrapEl1SmcToEl2.value
    | HCR_EL2::TWI::SET.value
    | HCR_EL2::TWE::SET.value
    | HCR_EL2::TIDCP::SET.value
    | HCR_EL2::TACR::SET.value
    | HCR_EL2::TID3::SET.value
    | HCR_EL2::PTW::SET.value
    | HCR_EL2::FB::SET.value
    | HCR_EL2::BSU::InnerShareable.value
    | HCR_EL2::SWIO::SET.value;

/// CNTHCTL_EL2 in its VHE layout (E2H = 1; aarch64-cpu only knows the other):
/// EL1PCTEN (bit 10) lets the guest read the physical counter; EL1PCEN
/// (bit 11) clear traps its use of the EL1 physical timer, which is
/// emulated. EL0VCTEN and EL0PCTEN (bits 1, 0) keep the counters readable
/// from the hypervisor's own EL0.
const CNTHCTL_GUEST: u64 = (1 << 10) | (1 << 1) | (1 << 0);

/// A time slice: how long a vCPU runs while another waits for its CPU.
pub const SLICE_MS: u64 = 4;

/// Where the scheduler has a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Run {
    /// Not runnable: powered off, or its VM stopped.
    Off = 0,
    /// In a run queue.
    Queued = 1,
    /// On a physical CPU.
    Running = 2,
    /// Waiting for an interrupt.
    Blocked = 3,
}

impl Run {
    fn of(vm: &Vm, vcpu: usize) -> Self {
        match vm.vcpus[vcpu].run.load(Ordering::Acquire) {
            1 => Self::Queued,
            2 => Self::Running,
            3 => Self::Blocked,
            _ => Self::Off,
        }
    }
}

/// The VMID allocator shared by all physical CPUs.
static VMIDS: Once<VmidAllocator> = Once::new();

/// What every CPU's virtual CPU interface implements.
static LIMITS: Once<Limits> = Once::new();

/// The ASID allocator shared by all physical CPUs, for tasks.
static ASIDS: Once<AsidAllocator> = Once::new();

/// Something waiting to run: a vCPU or an EL0 task. Both share the run
/// queues, the time slice and the load balancing.
enum Entry {
    /// A vCPU.
    Vcpu(VcpuEntry),
    /// An unprivileged task.
    Task(Arc<Task>),
}

/// A vCPU waiting to run.
struct VcpuEntry {
    vm: Arc<Vm>,
    vcpu: usize,
    /// The VM's reset epoch when queued; stale entries are dropped.
    epoch: u64,
}

impl Entry {
    /// vCPU `vcpu` of `vm`, queued in the VM's current epoch.
    fn now(vm: &Arc<Vm>, vcpu: usize) -> Self {
        Self::Vcpu(VcpuEntry {
            vm: vm.clone(),
            vcpu,
            epoch: vm.epoch(),
        })
    }
}

/// A blocked vCPU whose timer will wake it.
struct Sleeper {
    vm: Weak<Vm>,
    vcpu: usize,
    deadline: u64,
}

/// One physical CPU's scheduling state.
struct PerCpu {
    queue: SpinMutex<VecDeque<Entry>>,
    /// `queue.len()`, readable without the lock (for placement).
    queued: AtomicUsize,
    /// Waiting in WFI for work: needs a kick to notice any.
    idle: AtomicBool,
    sleepers: SpinMutex<Vec<Sleeper>>,
    /// Whether this CPU's physical virtual-timer PPI is enabled.
    vtimer_enabled: AtomicBool,
    /// The virtual GIC has something new for the vCPU running here, found
    /// by this CPU itself: its list registers must be refilled before it
    /// enters again (other CPUs say so with a physical SGI instead).
    refill: AtomicBool,
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            queue: SpinMutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
            idle: AtomicBool::new(false),
            sleepers: SpinMutex::new(Vec::new()),
            vtimer_enabled: AtomicBool::new(true),
            refill: AtomicBool::new(false),
        }
    }
}

static CPUS: [PerCpu; MAX_CPUS] = [const { PerCpu::new() }; MAX_CPUS];

/// Physical CPUs taking part.
static NR_CPUS: AtomicUsize = AtomicUsize::new(1);

/// VMs created and not yet freed.
static LIVE_VMS: AtomicUsize = AtomicUsize::new(0);

/// Set once every VM of the manifest has been created.
static ALL_CREATED: AtomicBool = AtomicBool::new(false);

/// The console UART's INTID, handled by CPU 0.
static CONSOLE_INTID: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Sets up the VMID allocator (`bits` wide) for `nr_cpus` physical CPUs, and
/// notes the console's interrupt.
pub fn init(
    bits: u32,
    nr_cpus: usize,
    console_intid: Option<u32>,
) -> Result<(), id_alloc::AllocError> {
    let allocator = VmidAllocator::new(bits, nr_cpus)?;
    crate::passthrough::use_vmid_allocator(VMIDS.call_once(|| allocator));
    NR_CPUS.store(nr_cpus.clamp(1, MAX_CPUS), Ordering::Release);
    if let Some(intid) = console_intid {
        CONSOLE_INTID.store(intid as usize, Ordering::Release);
    }
    Ok(())
}

/// Counts a newly created VM.
pub fn vm_created() {
    LIVE_VMS.fetch_add(1, Ordering::AcqRel);
}

/// Counts a VM whose last reference is gone.
pub fn vm_freed() {
    LIVE_VMS.fetch_sub(1, Ordering::AcqRel);
    kick_idle_cpus();
}

/// Every VM of the manifest has been created: from now on, no live VM
/// means the end.
pub fn all_created() {
    ALL_CREATED.store(true, Ordering::Release);
    kick_idle_cpus();
}

fn kick_idle_cpus() {
    let nr = NR_CPUS.load(Ordering::Acquire);
    for (cpu, this) in CPUS.iter().enumerate().take(nr) {
        if this.idle.load(Ordering::SeqCst) {
            gic::kick(cpu);
        }
    }
}

fn this_cpu() -> usize {
    crate::percpu::current_index()
}

/// Makes vCPU `vcpu` of `vm` runnable (it was off): queues it.
pub fn make_runnable(vm: &Arc<Vm>, vcpu: usize, epoch: u64) {
    vm.vcpus[vcpu]
        .run
        .store(Run::Queued as u8, Ordering::Release);
    let preferred = vm.vcpus[vcpu].last_cpu.load(Ordering::Relaxed);
    enqueue(
        Entry::Vcpu(VcpuEntry {
            vm: vm.clone(),
            vcpu,
            epoch,
        }),
        preferred,
    );
}

/// Sets up the ASID allocator (`bits` wide) for `nr_cpus` physical CPUs.
pub fn init_asids(bits: u32, nr_cpus: usize) -> Result<(), id_alloc::AllocError> {
    let allocator = AsidAllocator::new(bits, nr_cpus)?;
    ASIDS.call_once(|| allocator);
    Ok(())
}

/// The ASID allocator, once [`init_asids`] has run: for pinning a task's
/// ASID while a device shares its address space (`sva`).
pub fn asids() -> Option<&'static AsidAllocator> {
    ASIDS.get()
}

/// Queues a runnable task: an idle CPU if there is one, else the shortest
/// queue, starting from its last CPU.
pub fn enqueue_task(task: Arc<Task>) {
    let preferred = task.last_cpu();
    enqueue(Entry::Task(task), preferred);
}

/// Puts `entry` on a run queue: `preferred` (its last CPU) if that CPU is
/// idle, else an idle CPU, else the shortest queue.
fn enqueue(entry: Entry, preferred: usize) {
    let nr = NR_CPUS.load(Ordering::Acquire);
    let preferred = if preferred < nr {
        preferred
    } else {
        this_cpu()
    };
    let target = if CPUS[preferred].idle.load(Ordering::SeqCst) {
        preferred
    } else {
        idle_cpu(preferred).unwrap_or_else(|| {
            (0..nr)
                .map(|i| (preferred + i) % nr)
                .min_by_key(|&c| CPUS[c].queued.load(Ordering::Relaxed))
                .unwrap_or(preferred)
        })
    };
    push(target, entry);
}

/// An idle CPU other than `from`, searching from the one after it.
fn idle_cpu(from: usize) -> Option<usize> {
    let nr = NR_CPUS.load(Ordering::Acquire);
    (1..nr)
        .map(|i| (from + i) % nr)
        .find(|&c| CPUS[c].idle.load(Ordering::SeqCst))
}

fn push(cpu: usize, entry: Entry) {
    {
        let mut queue = CPUS[cpu].queue.lock();
        queue.push_back(entry);
        CPUS[cpu].queued.store(queue.len(), Ordering::Relaxed);
    }
    if CPUS[cpu].idle.load(Ordering::SeqCst) {
        gic::kick(cpu);
    }
}

fn pop(cpu: usize) -> Option<Entry> {
    let mut queue = CPUS[cpu].queue.lock();
    let entry = queue.pop_front();
    CPUS[cpu].queued.store(queue.len(), Ordering::Relaxed);
    entry
}

/// Takes a waiting vCPU from the longest queue of another, busy CPU.
fn steal(cpu: usize) -> Option<Entry> {
    let nr = NR_CPUS.load(Ordering::Acquire);
    let victim = (0..nr)
        .filter(|&c| c != cpu && !CPUS[c].idle.load(Ordering::SeqCst))
        .max_by_key(|&c| CPUS[c].queued.load(Ordering::Relaxed))
        .filter(|&c| CPUS[c].queued.load(Ordering::Relaxed) > 0)?;
    pop(victim)
}

/// vCPUs of `vm` in `set` may have an interrupt to take: wake the blocked
/// ones, and make those running on other CPUs exit so their list registers
/// are filled again. (Queued ones pick it up when they next run.)
pub fn kick(vm: &Arc<Vm>, set: VcpuSet) {
    let me = this_cpu();
    for vcpu in set.iter().filter(|&v| v < vm.vcpus.len()) {
        match Run::of(vm, vcpu) {
            Run::Blocked => wake(vm, vcpu),
            Run::Running => {
                let cpu = vm.vcpus[vcpu].last_cpu.load(Ordering::Relaxed);
                if cpu == me {
                    CPUS[me].refill.store(true, Ordering::Relaxed);
                } else if cpu < MAX_CPUS {
                    gic::kick(cpu);
                }
            }
            Run::Queued | Run::Off => {}
        }
    }
}

/// Makes a blocked vCPU runnable again.
fn wake(vm: &Arc<Vm>, vcpu: usize) {
    let moved = vm.vcpus[vcpu].run.compare_exchange(
        Run::Blocked as u8,
        Run::Queued as u8,
        Ordering::AcqRel,
        Ordering::Acquire,
    );
    if moved.is_ok() {
        let preferred = vm.vcpus[vcpu].last_cpu.load(Ordering::Relaxed);
        enqueue(Entry::now(vm, vcpu), preferred);
    }
}

/// The calling physical CPU's part: run vCPUs until no VM is left.
pub fn run(cpu: usize) -> ! {
    let Some(vmids) = VMIDS.get() else {
        error!("no VMID allocator; cpu{cpu} parks");
        cpu::park_idle_cpu()
    };
    if cpu != 0 {
        gic::init_this_cpu(cpu);
    }
    let limits = *LIMITS.call_once(Limits::read);
    prepare_this_cpu();
    loop {
        service_interrupts(cpu);
        wake_sleepers(cpu, timer::now());
        crate::passthrough::poll();
        match pop(cpu).or_else(|| steal(cpu)) {
            Some(Entry::Vcpu(entry)) => {
                run_entry(vmids, limits, cpu, entry);
                continue;
            }
            Some(Entry::Task(task)) => {
                run_task(cpu, task);
                continue;
            }
            None => {}
        }
        if ALL_CREATED.load(Ordering::Acquire) && LIVE_VMS.load(Ordering::Acquire) == 0 {
            stop_if_no_task(vmids);
        }
        idle(cpu);
    }
}

/// Every VM has stopped: powers off, with both allocators' statistics,
/// unless a task still runs. Out of line, to keep `run`, into which the
/// vCPU path is inlined, as it was before tasks.
#[inline(never)]
fn stop_if_no_task(vmids: &VmidAllocator) {
    if task::live() == 0 {
        cpu::all_vms_stopped(|| report_allocators(vmids));
    }
}

/// Logs the allocators' statistics: VMIDs, and next to them ASIDs.
fn report_allocators(vmids: &VmidAllocator) {
    info!("VMID allocator: {}", vmids.stats());
    if let Some(asids) = ASIDS.get() {
        info!("ASID allocator: {}", asids.stats());
    }
}

/// Waits in WFI for a kick, a timer or the console.
fn idle(cpu: usize) {
    sleep(cpu, next_sleeper(cpu));
}

/// Sleeps in WFI until an interrupt, the EL2 timer set for `wake`. The CPU
/// is marked idle meanwhile, so that a vCPU queued from now on lands here
/// with a kick.
fn sleep(cpu: usize, wake: Option<u64>) {
    let this = &CPUS[cpu];
    this.idle.store(true, Ordering::SeqCst);
    // Checked after `idle` is visible: a vCPU queued before this was seen
    // here, one queued after it sends a kick.
    if this.queued.load(Ordering::SeqCst) == 0 {
        timer::arm(wake);
        wfi();
    }
    this.idle.store(false, Ordering::SeqCst);
}

/// What the physical interrupts taken said.
#[derive(Clone, Copy, Debug, Default)]
struct Events {
    /// The EL2 timer fired.
    tick: bool,
}

/// Takes and handles every pending physical interrupt.
fn service_interrupts(cpu: usize) -> Events {
    let mut events = Events::default();
    while let Some(intid) = gic::acknowledge() {
        match intid {
            gic::HYP_TIMER => {
                // Level-sensitive: silence it before ending it.
                timer::arm(None);
                events.tick = true;
            }
            gic::VIRT_TIMER => {
                // The running vCPU's timer fired: its line is forwarded
                // from CNTV_CTL on the way back in; until the guest has
                // dealt with it, the physical PPI stays off.
                set_vtimer_enabled(cpu, false);
            }
            // Reasons to look at the queues and the virtual GIC again,
            // which every caller does next.
            gic::KICK | gic::MAINTENANCE => {}
            other if u32::from(other) as usize == CONSOLE_INTID.load(Ordering::Relaxed) => {
                console_interrupt();
            }
            other => {
                if let Some((vm, vintid)) = crate::pcibridge::intx_route(u32::from(other)) {
                    // A passthrough function's INTx: priority dropped, but
                    // the SPI stays active until the guest deactivates the
                    // hardware-linked virtual SPI (or the link is gone).
                    gic::drop_priority(other);
                    let forwarded = vm.vgic.lock().hw_interrupt(vintid);
                    match forwarded {
                        Ok(set) => kick(&vm, set),
                        Err(_) => gic::deactivate(u32::from(other)),
                    }
                    continue;
                }
                warn!("cpu{cpu}: unexpected interrupt {other:?}");
            }
        }
        gic::end(intid);
    }
    if events.tick {
        // The SMMU's events, while every CPU may be busy with vCPUs that
        // never leave (rate-limited inside).
        crate::passthrough::poll();
    }
    events
}

/// The console UART has input: the console hands it to the VM in focus.
fn console_interrupt() {
    crate::console::poll_input();
}

fn set_vtimer_enabled(cpu: usize, enabled: bool) {
    if CPUS[cpu].vtimer_enabled.swap(enabled, Ordering::Relaxed) != enabled {
        gic::set_private_enabled(cpu, gic::VIRT_TIMER, enabled);
    }
}

/// The earliest deadline of this CPU's sleepers.
fn next_sleeper(cpu: usize) -> Option<u64> {
    CPUS[cpu].sleepers.lock().iter().map(|s| s.deadline).min()
}

/// Wakes the sleepers of this CPU whose deadline has passed.
fn wake_sleepers(cpu: usize, now: u64) {
    let due: Vec<Sleeper> = {
        let mut sleepers = CPUS[cpu].sleepers.lock();
        if sleepers.iter().all(|s| s.deadline > now) {
            return;
        }
        let (due, later) = core::mem::take(&mut *sleepers)
            .into_iter()
            .partition(|s| s.deadline <= now);
        *sleepers = later;
        due
    };
    for sleeper in due {
        if let Some(vm) = sleeper.vm.upgrade() {
            wake(&vm, sleeper.vcpu);
        }
    }
}

/// EL2 state the same for every guest on this CPU.
fn prepare_this_cpu() {
    // SAFETY: CNTHCTL_EL2 only controls EL1/EL0 access to the timers.
    unsafe { asm!("msr cnthctl_el2, {}", in(reg) CNTHCTL_GUEST, options(nomem, nostack)) };
    // No PMU is offered: guest accesses to it trap (and are refused).
    MDCR_EL2.write(MDCR_EL2::TPM::SET + MDCR_EL2::TPMCR::SET);
    // Guests see this CPU's main ID (VPIDR_EL2 is what MIDR_EL1 reads at EL1).
    // SAFETY: VPIDR_EL2 only affects what EL1 reads.
    unsafe { asm!("msr vpidr_el2, {}", in(reg) MIDR_EL1.get(), options(nomem, nostack)) };
    // SAFETY: CNTVOFF_EL2 = 0 on every CPU: a vCPU's virtual counter equals
    // the physical one wherever it runs, so its time never goes backwards.
    unsafe { asm!("msr cntvoff_el2, xzr", options(nomem, nostack)) };
}

fn run_entry(vmids: &VmidAllocator, limits: Limits, cpu: usize, entry: VcpuEntry) {
    let VcpuEntry { vm, vcpu, epoch } = entry;
    if !vm.enter(epoch) {
        return;
    }
    if vm.vcpus[vcpu].power() == Power::Off {
        // Turned off (or the VM reset) after it was queued.
        vm.leave();
        return;
    }
    let next = run_vcpu(vmids, limits, cpu, &vm, vcpu);
    // Off the CPU before anything else: the VMID is no longer live here.
    let _ = vmids.deactivate(cpu);
    let run = &vm.vcpus[vcpu].run;
    match next {
        Next::Yield => {
            run.store(Run::Queued as u8, Ordering::Release);
            let entry = Entry::now(&vm, vcpu);
            // Round robin here, unless a CPU sits idle: then it goes there.
            push(idle_cpu(cpu).unwrap_or(cpu), entry);
        }
        Next::Migrate => {
            run.store(Run::Queued as u8, Ordering::Release);
            let nr = NR_CPUS.load(Ordering::Acquire);
            push((cpu + 1) % nr.max(1), Entry::now(&vm, vcpu));
        }
        // Already marked blocked (under the virtual GIC's lock).
        Next::Block(deadline) => {
            if let Some(deadline) = deadline {
                CPUS[cpu].sleepers.lock().push(Sleeper {
                    vm: Arc::downgrade(&vm),
                    vcpu,
                    deadline,
                });
            }
        }
        Next::Off => {
            run.store(Run::Off as u8, Ordering::Release);
            vm.vcpus[vcpu].set_power(Power::Off);
            if vm.vcpus.iter().all(|v| v.power() == Power::Off) {
                vm.request_stop(crate::vm::Stop::Off("every vCPU is off"));
            }
        }
        Next::Stop | Next::Resume | Next::Wait => run.store(Run::Off as u8, Ordering::Release),
    }
    vm.leave();
}

/// Runs a task until it yields, blocks, ends or its slice ends while
/// something else waits. HCR_EL2 stays `HCR_HOST` (TGE = 1): its
/// exceptions come to EL2, its address space is the EL2&0 regime's TTBR0.
///
/// Out of line, like [`finish_task`]: inlined into `run_entry`, it changed
/// the compiler's inlining of the vCPU path and cost every exit that
/// refills the list registers about a hundred instructions.
#[inline(never)]
fn run_task(cpu: usize, task: Arc<Task>) {
    let Some(asids) = ASIDS.get() else {
        error!("task \"{}\": no ASID allocator; dropped", task.name);
        return;
    };
    if task.run_state() != TaskRun::Runnable {
        return;
    }
    if task.stop_requested() {
        let outcome = task::stopped_on_request(&task);
        finish_task(outcome, cpu, task);
        return;
    }
    let outcome = {
        let mut regs = task.regs.lock();
        let asid = match asids.switch(&task.asid, cpu) {
            Ok(switch) => switch.flush_with(&mut task::AllAsids),
            Err(e) => {
                let outcome = task::fault(&task, &regs, format_args!("no usable ASID: {e}"));
                drop(regs);
                finish_task(outcome, cpu, task);
                return;
            }
        };
        task::enter_address_space(&task, cpu, asid, asids.generation());
        vcpu::load_fp(&regs);
        let slice = timer::ticks_of_ms(SLICE_MS);
        let mut slice_end = timer::now().wrapping_add(slice);
        let outcome = loop {
            timer::arm(
                [Some(slice_end), next_sleeper(cpu)]
                    .into_iter()
                    .flatten()
                    .min(),
            );
            let outcome = match vcpu::run(&mut regs) {
                Exit::Synchronous => {
                    let (esr, far) = (Esr(ESR_EL2.get()), FAR_EL2.get());
                    task::synchronous(&task, &mut regs, esr, far)
                }
                Exit::Irq | Exit::Fiq => {
                    let events = service_interrupts(cpu);
                    let now = timer::now();
                    if events.tick {
                        wake_sleepers(cpu, now);
                    }
                    if now < slice_end {
                        task::Outcome::Resume
                    } else if CPUS[cpu].queued.load(Ordering::Relaxed) > 0 {
                        task.preempted();
                        task::Outcome::Yield
                    } else {
                        slice_end = now.wrapping_add(slice);
                        task::Outcome::Resume
                    }
                }
                Exit::SError => task::fault(&task, &regs, format_args!("SError")),
                Exit::AArch32(vector) => task::fault(
                    &task,
                    &regs,
                    format_args!("AArch32 exception (vector {vector})"),
                ),
            };
            if outcome == task::Outcome::Resume && task.stop_requested() {
                break task::stopped_on_request(&task);
            }
            if outcome != task::Outcome::Resume {
                break outcome;
            }
        };
        vcpu::save_fp(&mut regs);
        task::leave_address_space();
        outcome
    };
    finish_task(outcome, cpu, task);
}

/// After a task left this CPU: the ASID is no longer live here, and the
/// task goes where its outcome says.
#[inline(never)]
fn finish_task(outcome: task::Outcome, cpu: usize, task: Arc<Task>) {
    if let Some(asids) = ASIDS.get() {
        let _ = asids.deactivate(cpu);
    }
    // Tasks meant to run until every VM has stopped keep the CPUs busy, so
    // the idle path's check would never come: look here.
    if ALL_CREATED.load(Ordering::Acquire) && LIVE_VMS.load(Ordering::Acquire) == 0 {
        task::stop_endless();
    }
    match outcome {
        // Round robin here, unless a CPU sits idle: then it goes there.
        task::Outcome::Yield | task::Outcome::Resume => {
            push(idle_cpu(cpu).unwrap_or(cpu), Entry::Task(task));
        }
        // On a doorbell's list, which queues it again.
        task::Outcome::Block => {}
        task::Outcome::Done => {
            drop(task);
            kick_idle_cpus();
        }
    }
}

/// Local invalidation of every VMID's entries (`TLBI ALLE1`), as the
/// allocator asks after a rollover.
struct AllVmids;

impl LocalTlbFlush<Vmid> for AllVmids {
    fn flush_local_all(&mut self) {
        // SAFETY: TLB invalidation changes no memory and only costs refills.
        unsafe {
            asm!(
                "tlbi alle1",
                "dsb nsh",
                "isb",
                options(nostack, preserves_flags)
            )
        };
    }
}

/// Programs stage 2 for `vm` on this CPU: VMID, VTTBR, and the TLB
/// maintenance a migration needs. `None` if no VMID could be had.
fn enter_stage2(vmids: &VmidAllocator, cpu: usize, vm: &Arc<Vm>, index: usize) -> Option<()> {
    let switched = vmids
        .switch(&vm.vmid, cpu)
        .map_err(|e| alloc::format!("{e}"))
        .and_then(|switch| {
            let vmid = switch.flush_with(&mut AllVmids);
            vm.vttbr(vmid)
                .map(|vttbr| (vmid.get(), vttbr))
                .map_err(|e| alloc::format!("{e}"))
        });
    let (vmid, vttbr) = match switched {
        Ok(ok) => ok,
        Err(e) => {
            error!("vm \"{}\": no usable VMID: {e}; stopping the VM", vm.name);
            vm.request_stop(crate::vm::Stop::Off("no usable VMID"));
            return None;
        }
    };
    let previous = vm.last_vmid.swap(vmid, Ordering::Relaxed);
    if previous != vmid {
        if previous == 0 {
            info!("vm \"{}\": VMID {vmid}", vm.name);
        } else {
            info!("vm \"{}\": VMID {previous} -> {vmid} (rollover)", vm.name);
        }
    }
    VTCR_EL2.set(vm.vtcr);
    VTTBR_EL2.set(vttbr);
    let vcpu = &vm.vcpus[index];
    let last = vcpu.last_cpu.swap(cpu, Ordering::Relaxed);
    if last != cpu && last != usize::MAX {
        vcpu.migrations.fetch_add(1, Ordering::Relaxed);
    }
    let previous_vcpu = vm.last_vcpu_ran[cpu].swap(index, Ordering::Relaxed);
    // SAFETY: ISB makes VTTBR_EL2 current for the TLB invalidation.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
    if previous_vcpu != index && previous_vcpu != usize::MAX {
        // SAFETY: Invalidates this VMID's stage-1 entries on this CPU only.
        unsafe { asm!("tlbi vmalle1", "dsb nsh", options(nostack, preserves_flags)) };
    }
    Some(())
}

/// The live virtual timer's CNTV_CTL and CNTV_CVAL.
fn live_vtimer() -> (u64, u64) {
    let (ctl, cval): (u64, u64);
    // SAFETY: Reading the guest's timer registers has no side effects.
    unsafe {
        asm!(
            ".arch armv8.1-a",
            "mrs {ctl}, cntv_ctl_el02",
            "mrs {cval}, cntv_cval_el02",
            ctl = out(reg) ctl,
            cval = out(reg) cval,
            options(nomem, nostack, preserves_flags)
        )
    };
    (ctl, cval)
}

/// Forwards the vCPU's timer lines to its virtual GIC (with the GIC
/// locked by the caller): the virtual timer's from the live registers, the
/// emulated physical timer's from its model. The physical virtual-timer
/// PPI is enabled only while the virtual line is low.
fn forward_timers(vgic: &mut vgic::Vgic, cpu: usize, index: usize, state: &VcpuState, now: u64) {
    let (ctl, _) = live_vtimer();
    let vline = vtimer::virtual_timer_line(ctl);
    let pline = state.ptimer.line(now);
    for (intid, line) in [
        (vtimer::VIRT_TIMER_INTID, vline),
        (vtimer::PHYS_TIMER_INTID, pline),
    ] {
        if let Some(intid) = IntId::new(intid) {
            // Only this vCPU could need a kick, and it is about to enter.
            let _ = vgic.set_level(intid, index, line);
        }
    }
    set_vtimer_enabled(cpu, !vline);
}

/// When the vCPU's timers will want it, from the live virtual timer and
/// the emulated physical one.
fn timer_deadline(state: &VcpuState) -> Option<u64> {
    let (ctl, cval) = live_vtimer();
    let virt = vtimer::virtual_timer_deadline(ctl, cval);
    let phys = state.ptimer.deadline();
    match (virt, phys) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs one vCPU until it yields, blocks, stops or its VM stops.
fn run_vcpu(vmids: &VmidAllocator, limits: Limits, cpu: usize, vm: &Arc<Vm>, index: usize) -> Next {
    let vcpu = &vm.vcpus[index];
    let mut state = vcpu.state.lock();
    if enter_stage2(vmids, cpu, vm, index).is_none() {
        return Next::Stop;
    }
    // Only now, with `last_cpu` naming this CPU, so kicks come here. A
    // kick before this found it queued: the flush below sees its effect.
    vcpu.run.store(Run::Running as u8, Ordering::Release);
    VMPIDR_EL2.set(guest_boot::vmpidr_el2_of(index as u32));
    state.el1.restore();
    vcpu::load_fp(&state.regs);
    vcpu.set_power(Power::On);
    HCR_EL2.set(HCR_GUEST);
    // SAFETY: Synchronises the HCR_EL2 and EL1 register writes.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };

    let slice = timer::ticks_of_ms(SLICE_MS);
    let mut slice_end = timer::now().wrapping_add(slice);
    let mut lrs = [0u64; MAX_LIST_REGISTERS];
    let lrs = &mut lrs[..limits.list_registers];
    // Whether the list registers and the EL2 timer hold what the virtual
    // GIC and the scheduler last gave this vCPU. An exit that touches
    // neither (a hypercall, an emulated device) keeps them as they are: the
    // fast path, with no trip through the virtual GIC.
    let mut loaded = false;
    // List registers that may be valid in the hardware: only those are
    // read back and (with the newly used ones) written. Unknown at first.
    let mut in_use = lrs.len();
    let next = loop {
        if !loaded {
            CPUS[cpu].refill.store(false, Ordering::Relaxed);
            let now = timer::now();
            let flushed = {
                let mut vgic = vm.vgic.lock();
                forward_timers(&mut vgic, cpu, index, &state, now);
                vgic.flush(index, lrs)
            };
            let (used, refill) = flushed.map_or((lrs.len(), false), |f| (f.used, f.overflow));
            ich::load(limits, &lrs[..used.max(in_use)], &state.cpu_if, refill);
            in_use = used;
            // The emulated timer's deadline only while it is still ahead:
            // once passed, its line is high and stays so until the guest acts.
            let ptimer = state.ptimer.deadline().filter(|&d| d > now);
            let wake = [Some(slice_end), ptimer, next_sleeper(cpu)]
                .into_iter()
                .flatten()
                .min();
            timer::arm(wake);
            loaded = true;
        }

        let exit = vcpu::run(&mut state.regs);

        vcpu.exits.fetch_add(1, Ordering::Relaxed);
        let next = match exit {
            Exit::Synchronous => {
                let esr = Esr(ESR_EL2.get());
                if exits::needs_interrupt_state(vm, esr) {
                    take_back(vm, index, limits, &mut lrs[..in_use], &mut state);
                    loaded = false;
                }
                exits::synchronous(vm, index, &mut state, esr)
            }
            Exit::Irq | Exit::Fiq => {
                take_back(vm, index, limits, &mut lrs[..in_use], &mut state);
                loaded = false;
                let events = service_interrupts(cpu);
                let now = timer::now();
                if events.tick {
                    wake_sleepers(cpu, now);
                }
                if now >= slice_end {
                    if CPUS[cpu].queued.load(Ordering::Relaxed) > 0 {
                        Next::Yield
                    } else {
                        slice_end = now.wrapping_add(slice);
                        Next::Resume
                    }
                } else {
                    Next::Resume
                }
            }
            Exit::SError => exits::serror(vm, &state.regs),
            Exit::AArch32(vector) => exits::aarch32(vm, vector),
        };
        if vm.stopping() {
            // What the list registers hold goes with the VM (or its reset).
            break Next::Stop;
        }
        if loaded && (next != Next::Resume || CPUS[cpu].refill.load(Ordering::Relaxed)) {
            take_back(vm, index, limits, &mut lrs[..in_use], &mut state);
            loaded = false;
        }
        let next = match next {
            Next::Wait => wait(vm, cpu, index, &state),
            other => other,
        };
        if next != Next::Resume {
            break next;
        }
    };

    HCR_EL2.set(boot::HCR_HOST);
    // SAFETY: Back to host mode before the next guest or host work.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
    state.el1.save();
    vcpu::save_fp(&mut state.regs);
    // The saved timer keeps its deadline (a wake-up time while the vCPU is
    // away); the live one must not fire on this CPU for someone else.
    // SAFETY: Disables the EL1 virtual timer, which no guest uses now.
    unsafe {
        asm!(
            ".arch armv8.1-a",
            "msr cntv_ctl_el02, xzr",
            "isb",
            options(nomem, nostack, preserves_flags)
        )
    };
    set_vtimer_enabled(cpu, true);
    next
}

/// Takes the list registers (and the CPU interface state) back into the
/// virtual GIC after an exit. Out of line: the fast path does without it.
#[inline(never)]
fn take_back(vm: &Vm, index: usize, limits: Limits, lrs: &mut [u64], state: &mut VcpuState) {
    ich::save(limits, lrs, &mut state.cpu_if);
    let mut vgic = vm.vgic.lock();
    // Only fails for a vCPU the VM does not have.
    let _ = vgic.sync(index, lrs);
    // Hardware-linked SPIs whose virtual state the guest dropped without
    // deactivating them in a list register: the physical ones are ours to
    // end. (A counter check when there are none.)
    while let Some(pintid) = vgic.take_hw_deactivation() {
        gic::deactivate(pintid.get());
    }
}

/// The vCPU waits for an interrupt (WFI, PSCI `CPU_SUSPEND`). While no
/// other vCPU waits for a CPU, it waits here, still loaded, with this CPU
/// asleep in WFI: the interrupt that ends the wait (a kick from the CPU
/// that sent it, its timer) is then a resume, not a trip through the run
/// queues and another CPU's wake-up. (KVM's halt polling has the same aim,
/// but spins.) `Resume` when it has something to take; `Block` when it
/// gives up this CPU because others want it or its VM stops.
fn wait(vm: &Arc<Vm>, cpu: usize, index: usize, state: &VcpuState) -> Next {
    loop {
        if vm.stopping() || work_waiting() {
            return match block(vm, cpu, index, state) {
                Some(deadline) => Next::Block(deadline),
                None => Next::Resume,
            };
        }
        let now = timer::now();
        let deadline = timer_deadline(state);
        if deadline.is_some_and(|d| d <= now) {
            return Next::Resume;
        }
        {
            let mut vgic = vm.vgic.lock();
            forward_timers(&mut vgic, cpu, index, state, now);
            if vgic.pending_for(index) {
                return Next::Resume;
            }
        }
        // Idle, so that a vCPU queued meanwhile ends the wait (the check at
        // the top of the loop). Wakes for the vCPU's timers, this CPU's
        // sleepers, and once a slice to look at the VM's state.
        if !CPUS[cpu].refill.swap(false, Ordering::Relaxed) {
            let slice = now.wrapping_add(timer::ticks_of_ms(SLICE_MS));
            let wake = [deadline, next_sleeper(cpu), Some(slice)]
                .into_iter()
                .flatten()
                .min();
            sleep(cpu, wake);
        }
        if service_interrupts(cpu).tick {
            wake_sleepers(cpu, timer::now());
        }
    }
}

/// Whether any CPU has a vCPU waiting in its run queue.
fn work_waiting() -> bool {
    let nr = NR_CPUS.load(Ordering::Acquire);
    CPUS.iter()
        .take(nr)
        .any(|c| c.queued.load(Ordering::Relaxed) > 0)
}

/// The vCPU waits for an interrupt (WFI): `None` if it has one already or
/// its timer is due (run on), else it is marked blocked and the deadline
/// its timers set, if any, is returned.
fn block(vm: &Arc<Vm>, cpu: usize, index: usize, state: &VcpuState) -> Option<Option<u64>> {
    let now = timer::now();
    let deadline = timer_deadline(state);
    if deadline.is_some_and(|d| d <= now) {
        return None;
    }
    let mut vgic = vm.vgic.lock();
    forward_timers(&mut vgic, cpu, index, state, now);
    if vgic.pending_for(index) {
        return None;
    }
    // Marked under the GIC's lock: whoever makes an interrupt pending
    // for it afterwards sees `Blocked` and wakes it.
    vm.vcpus[index]
        .run
        .store(Run::Blocked as u8, Ordering::Release);
    Some(deadline)
}

/// Starts a new VMID generation now (the benchmark hook).
pub fn force_vmid_rollover() {
    if let Some(vmids) = VMIDS.get() {
        vmids.force_rollover();
    }
}

/// Prints the allocators' statistics (the console's statistics key).
pub fn report_ids() {
    if let Some(vmids) = VMIDS.get() {
        report_allocators(vmids);
    }
}

/// Prints every VM's vCPUs: where they are, how often they moved and exited.
pub fn report(vm: &Vm) {
    for (index, vcpu) in vm.vcpus.iter().enumerate() {
        let run = match Run::of(vm, index) {
            Run::Off => "off",
            Run::Queued => "queued",
            Run::Running => "running",
            Run::Blocked => "waiting",
        };
        let last = vcpu.last_cpu.load(Ordering::Relaxed);
        info!(
            "vm \"{}\" vcpu{index}: {run}, last on cpu{}, {} migration(s), {} exit(s)",
            vm.name,
            if last == usize::MAX { 0 } else { last },
            vcpu.migrations.load(Ordering::Relaxed),
            vcpu.exits.load(Ordering::Relaxed)
        );
    }
}
