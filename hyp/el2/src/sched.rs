//! Running vCPUs on physical CPUs.
//!
//! One run queue shared by all physical CPUs: each takes the vCPU at its
//! head, runs it until it yields (WFI, WFE, `CPU_SUSPEND`), stops or its VM
//! stops, then queues it again if it is still on. vCPUs therefore move
//! between physical CPUs as they become free. Idle CPUs wait with WFE and
//! are woken by the SEV that every enqueue sends. When every VM has been
//! freed, the machine powers off.
//!
//! Each entry into a guest programs stage 2 with the VMID the allocator's
//! `switch` returns (after the local TLB flush it may ask for), and, when a
//! different vCPU of the same VM ran last on this physical CPU, invalidates
//! this VMID's local TLB entries first: they may hold the other vCPU's
//! stage-1 translations, which this one's page tables need not agree with
//! (Linux KVM's `last_vcpu_ran`).

use crate::exits::{self, Next};
use crate::vcpu::{self, Exit};
use crate::vm::Vm;
use crate::{boot, cpu};
use aarch64_cpu::asm::{sev, wfe};
use aarch64_cpu::registers::{HCR_EL2, MDCR_EL2, MIDR_EL1, VMPIDR_EL2, VTCR_EL2, VTTBR_EL2};
use alloc::collections::VecDeque;
use alloc::sync::Arc;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use id_alloc::{LocalTlbFlush, Vmid, VmidAllocator};
use log::{error, info};
use spin::mutex::SpinMutex;
use spin::Once;
use tock_registers::interfaces::{Readable, Writeable};
use vpsci::Power;

/// HCR_EL2 while a guest runs. Each bit is chosen:
/// - `VM`: stage 2 on; `RW`: EL1 is AArch64; `E2H`: the hypervisor stays in
///   VHE (TGE clear, so EL1 and EL0 are the guest's);
/// - `IMO`, `FMO`, `AMO`: physical interrupts and SErrors go to EL2, the
///   guest only ever sees virtual ones;
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
/// (bit 11) clear traps its use of the EL1 physical timer, which is the
/// hypervisor's to multiplex. EL0VCTEN and EL0PCTEN (bits 1, 0) keep the
/// counters readable from the hypervisor's own EL0.
const CNTHCTL_GUEST: u64 = (1 << 10) | (1 << 1) | (1 << 0);

/// The VMID allocator shared by all physical CPUs.
static VMIDS: Once<VmidAllocator> = Once::new();

/// A vCPU waiting to run.
struct Entry {
    vm: Arc<Vm>,
    vcpu: usize,
    /// The VM's reset epoch when queued; stale entries are dropped.
    epoch: u64,
}

static RUN_QUEUE: SpinMutex<VecDeque<Entry>> = SpinMutex::new(VecDeque::new());

/// VMs created and not yet freed.
static LIVE_VMS: AtomicUsize = AtomicUsize::new(0);

/// Set once every VM of the manifest has been created.
static ALL_CREATED: AtomicBool = AtomicBool::new(false);

/// Sets up the VMID allocator: `bits` wide, for `nr_cpus` physical CPUs.
pub fn init(bits: u32, nr_cpus: usize) -> Result<(), id_alloc::AllocError> {
    let allocator = VmidAllocator::new(bits, nr_cpus)?;
    VMIDS.call_once(|| allocator);
    Ok(())
}

/// Counts a newly created VM.
pub fn vm_created() {
    LIVE_VMS.fetch_add(1, Ordering::AcqRel);
}

/// Counts a VM whose last reference is gone.
pub fn vm_freed() {
    LIVE_VMS.fetch_sub(1, Ordering::AcqRel);
    sev();
}

/// Every VM has been created: from now on, no live VM means the end.
pub fn all_created() {
    ALL_CREATED.store(true, Ordering::Release);
    sev();
}

/// Queues vCPU `vcpu` of `vm` to run.
pub fn enqueue(vm: Arc<Vm>, vcpu: usize, epoch: u64) {
    RUN_QUEUE.lock().push_back(Entry { vm, vcpu, epoch });
    sev();
}

/// The calling physical CPU's part: run vCPUs until no VM is left.
pub fn run(cpu: usize) -> ! {
    let Some(vmids) = VMIDS.get() else {
        error!("no VMID allocator; cpu{cpu} parks");
        cpu::park_idle_cpu()
    };
    prepare_this_cpu();
    loop {
        let next = RUN_QUEUE.lock().pop_front();
        match next {
            Some(entry) => run_entry(vmids, cpu, entry),
            None if ALL_CREATED.load(Ordering::Acquire)
                && LIVE_VMS.load(Ordering::Acquire) == 0 =>
            {
                cpu::all_vms_stopped(|| info!("VMID allocator: {}", vmids.stats()))
            }
            None => wfe(),
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

fn run_entry(vmids: &VmidAllocator, cpu: usize, entry: Entry) {
    let Entry { vm, vcpu, epoch } = entry;
    if !vm.enter(epoch) {
        return;
    }
    let next = run_vcpu(vmids, cpu, &vm, vcpu);
    // Off the CPU before anything else: the VMID is no longer live here.
    let _ = vmids.deactivate(cpu);
    match next {
        Next::Yield => {
            let epoch = vm.epoch();
            enqueue(vm.clone(), vcpu, epoch);
        }
        Next::Off => vm.vcpus[vcpu].set_power(Power::Off),
        Next::Stop | Next::Resume => {}
    }
    vm.leave();
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

/// Runs one vCPU until it yields, stops or its VM stops.
fn run_vcpu(vmids: &VmidAllocator, cpu: usize, vm: &Arc<Vm>, index: usize) -> Next {
    let vcpu = &vm.vcpus[index];
    let mut state = vcpu.state.lock();
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
            return Next::Stop;
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
    VMPIDR_EL2.set(guest_boot::vmpidr_el2_of(index as u32));
    state.el1.restore();
    vcpu.set_power(Power::On);
    HCR_EL2.set(HCR_GUEST);
    // SAFETY: Synchronises the HCR_EL2 and EL1 register writes.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };

    let next = loop {
        let exit = vcpu::run(&mut state.regs);
        let next = match exit {
            Exit::Synchronous => exits::synchronous(vm, index, &mut state),
            Exit::Irq | Exit::Fiq => Next::Resume,
            Exit::SError => exits::serror(vm, &state.regs),
            Exit::AArch32(vector) => exits::aarch32(vm, vector),
        };
        if next != Next::Resume {
            break next;
        }
        if vm.stopping() {
            break Next::Stop;
        }
    };

    HCR_EL2.set(boot::HCR_HOST);
    // SAFETY: Back to host mode before the next guest or host work.
    unsafe { asm!("isb", options(nostack, preserves_flags)) };
    state.el1.save();
    next
}
