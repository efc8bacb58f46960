//! What happens on each guest exit, by exception class.
//!
//! Nothing a guest does stops the hypervisor: an access it may not make gets
//! an exception injected (and a log line, rate-limited per VM), a call it
//! may not make gets an error code.

use crate::ratelimit::rate_limited;
use crate::vcpu::{GuestRegs, VcpuState};
use crate::vm::{Stop, Vm};
use crate::{gic, mmio, sched};
use aarch64_cpu::registers::{ESR_EL2, FAR_EL2, HPFAR_EL2};
use alloc::sync::Arc;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use log::{error, warn};
use syndrome::inject::{self, Injected};
use syndrome::{Direction, Esr, ExceptionClass, SysReg, Wfx};
use tock_registers::interfaces::Readable;
use vpsci::{Call, Outcome};

/// What the physical CPU does after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the guest.
    Resume,
    /// Let another vCPU run; this one stays runnable.
    Yield,
    /// Wait for an interrupt (WFI, `CPU_SUSPEND`): the scheduler blocks
    /// the vCPU unless one is pending already.
    Wait,
    /// Blocked until an interrupt, or until the counter reaches the
    /// deadline (its timers'), if any.
    Block(Option<u64>),
    /// Run on another physical CPU from now on (a benchmark hook).
    Migrate,
    /// This vCPU is off (PSCI `CPU_OFF`).
    Off,
    /// The VM is stopping.
    Stop,
}

/// ACTLR_EL1, trapped by HCR_EL2.TACR: reads as zero, writes are ignored.
const ACTLR_EL1: SysReg = SysReg::new(3, 0, 1, 0, 1);
/// ICC_SGI1R_EL1: a guest's IPI (trapped while HCR_EL2.IMO is set).
const ICC_SGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 5);
/// ICC_ASGI1R_EL1: an SGI for the other security state.
const ICC_ASGI1R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 6);
/// ICC_SGI0R_EL1: a Group 0 SGI.
const ICC_SGI0R_EL1: SysReg = SysReg::new(3, 0, 12, 11, 7);

/// A synchronous exception from the guest.
pub fn synchronous(vm: &Arc<Vm>, vcpu: usize, state: &mut VcpuState, esr: Esr) -> Next {
    let regs = &mut state.regs;
    match esr.ec() {
        // The preferred return address of HVC is the next instruction.
        ExceptionClass::Hvc64 => firmware_call(vm, vcpu, regs, esr),
        // SMC traps before it executes: step over it.
        ExceptionClass::Smc64 => {
            regs.pc += 4;
            firmware_call(vm, vcpu, regs, esr)
        }
        ExceptionClass::Wfx => {
            regs.pc += 4;
            match esr.wfx() {
                // WFE waits for another vCPU (a lock holder): let it run.
                Some(Wfx::Wfe | Wfx::Wfet) => Next::Yield,
                _ => Next::Wait,
            }
        }
        ExceptionClass::DataAbortLower => data_abort(vm, vcpu, regs, esr),
        ExceptionClass::InstructionAbortLower => {
            let ipa = fault_ipa();
            refuse(vm, vcpu, regs, Injected::InstructionAbort, |pc| {
                warn!(
                    "vm \"{}\" vcpu{vcpu}: instruction fetch from IPA {ipa:#x} it does not own, PC {:#x}; injecting an abort",
                    vm.name, pc
                )
            })
        }
        ExceptionClass::SysReg64 => system_register(vm, vcpu, regs, &mut state.ptimer, esr),
        _ => not_emulated(vm, vcpu, regs, esr),
    }
}

/// Whether handling the synchronous exit ESR_EL2 describes reads or
/// changes this vCPU's own interrupt state or timers, so that the list
/// registers must be taken back into the virtual GIC first (and refilled
/// after). Hypercalls, emulated devices other than the GIC and most system
/// registers do not: they keep the fast path, and whatever interrupt they
/// raise for this vCPU reaches it through [`sched::kick`].
pub fn needs_interrupt_state(vm: &Vm, esr: Esr) -> bool {
    match esr.ec() {
        // PSCI calls that wait or stop come back as `Next::Wait`/`Stop`,
        // which leave the fast path anyway.
        ExceptionClass::Hvc64 | ExceptionClass::Smc64 => false,
        ExceptionClass::DataAbortLower => match gic_frame(vm, fault_ipa()) {
            None => false,
            // Writes may change what the list registers hold; reads of the
            // rest (IDs, configuration, enables, priorities) do not see it.
            Some(frame) => {
                esr.data_abort().is_none_or(|a| a.is_write() != Some(false))
                    || frame.shows_pending_or_active()
            }
        },
        // The emulated physical timer moves the vCPU's wake-up time and line.
        ExceptionClass::SysReg64 => esr.sys_reg_access().is_none_or(|access| {
            let reg = access.reg;
            vtimer::TimerReg::from_encoding(reg.op0, reg.op1, reg.crn, reg.crm, reg.op2).is_some()
        }),
        _ => true,
    }
}

/// An exception the hypervisor does not emulate: the guest gets UNDEFINED.
fn not_emulated(vm: &Arc<Vm>, vcpu: usize, regs: &mut GuestRegs, esr: Esr) -> Next {
    refuse(vm, vcpu, regs, Injected::Undefined, |pc| {
        warn!(
            "vm \"{}\" vcpu{vcpu}: {esr} at PC {:#x} is not emulated; injecting UNDEFINED",
            vm.name, pc
        )
    })
}

/// An SError from the guest: it cannot be attributed to one access, so the
/// VM is stopped rather than trusted further.
pub fn serror(vm: &Arc<Vm>, regs: &GuestRegs) -> Next {
    error!(
        "vm \"{}\": SError (ESR_EL2 {:#x}) near PC {:#x}; stopping the VM",
        vm.name,
        ESR_EL2.get(),
        regs.pc
    );
    vm.request_stop(Stop::Off("SError"));
    Next::Stop
}

/// An exception from AArch32, which a guest can only reach by setting up
/// AArch32 EL0 itself.
pub fn aarch32(vm: &Arc<Vm>, vector: u64) -> Next {
    error!(
        "vm \"{}\": exception from AArch32 (vector {vector}), which is not supported; stopping the VM",
        vm.name
    );
    vm.request_stop(Stop::Off("AArch32 is not supported"));
    Next::Stop
}

/// The IPA of a stage-2 fault: HPFAR_EL2 has the page, FAR_EL2 the offset.
fn fault_ipa() -> u64 {
    (HPFAR_EL2.read(HPFAR_EL2::FIPA) << 12) | (FAR_EL2.get() & 0xfff)
}

fn data_abort(vm: &Arc<Vm>, vcpu: usize, regs: &mut GuestRegs, esr: Esr) -> Next {
    let ipa = fault_ipa();
    let Some(abort) = esr.data_abort() else {
        return Next::Resume;
    };
    let write = abort.is_write().unwrap_or(false);
    if !abort.s1ptw() {
        if let Some(next) = gic_access(vm, vcpu, regs, ipa, abort) {
            return next;
        }
        // The emulated devices, then the PCIe bridge's ECAM window.
        let device = vm
            .mmio
            .iter()
            .find_map(|r| r.offset_of(ipa).map(|off| (&*r.device, off)))
            .or_else(|| {
                let pci = vm.pci.get()?;
                Some((pci as &dyn mmio::MmioDevice, pci.offset_of(ipa)?))
            });
        if let Some((device, offset)) = device {
            return match mmio::emulate(device, offset, abort, regs) {
                Ok(()) => {
                    regs.pc += 4;
                    Next::Resume
                }
                Err(mmio::NotEmulated::NoSyndrome) => {
                    refuse(vm, vcpu, regs, Injected::DataAbort { write }, |pc| {
                        warn!(
                            "vm \"{}\" vcpu{vcpu}: access to device register IPA {ipa:#x} by an instruction without syndrome (PC {:#x}); injecting an abort",
                            vm.name, pc
                        )
                    })
                }
            };
        }
    }
    let what = match (abort.s1ptw(), vm.owns_ram(ipa)) {
        (true, _) => "stage-1 table walk at",
        (false, true) => "unexpected fault on its own RAM at",
        (false, false) if write => "write to",
        (false, false) => "read of",
    };
    refuse(vm, vcpu, regs, Injected::DataAbort { write }, |pc| {
        warn!(
            "vm \"{}\" vcpu{vcpu}: {what} IPA {ipa:#x} it does not own, PC {:#x}; injecting a synchronous external abort",
            vm.name, pc
        )
    })
}

/// Which frame of the virtual GIC an IPA falls in.
enum GicFrame {
    Distributor(u64),
    Redistributor(usize, u64),
}

impl GicFrame {
    /// GICD_ISPENDR<n> to GICD_ICACTIVER<n>, and the same registers in a
    /// redistributor's SGI frame: their values include the state the list
    /// registers hold.
    fn shows_pending_or_active(&self) -> bool {
        const PENDING_ACTIVE: core::ops::Range<u64> = 0x200..0x400;
        const SGI_FRAME: u64 = 0x1_0000;
        match *self {
            Self::Distributor(offset) => PENDING_ACTIVE.contains(&offset),
            Self::Redistributor(_, offset) => offset
                .checked_sub(SGI_FRAME)
                .is_some_and(|offset| PENDING_ACTIVE.contains(&offset)),
        }
    }
}

fn gic_frame(vm: &Vm, ipa: u64) -> Option<GicFrame> {
    use guest_boot::virt::{gicr_frames, GICD, GICR_STRIDE};
    let in_range = |start: u64, size: u64| ipa.checked_sub(start).filter(|&off| off < size);
    if let Some(offset) = in_range(GICD.start().get(), GICD.size()) {
        return Some(GicFrame::Distributor(offset));
    }
    let frames = gicr_frames(vm.vcpus.len() as u32)?;
    let offset = in_range(frames.start().get(), frames.size())?;
    Some(GicFrame::Redistributor(
        (offset / GICR_STRIDE) as usize,
        offset % GICR_STRIDE,
    ))
}

/// An access to the virtual GIC's distributor or a redistributor.
fn gic_access(
    vm: &Arc<Vm>,
    vcpu: usize,
    regs: &mut GuestRegs,
    ipa: u64,
    abort: syndrome::DataAbort,
) -> Option<Next> {
    let frame = gic_frame(vm, ipa)?;
    let (Some(size), Some(rt), Some(write)) = (
        abort.access_size_bytes(),
        abort.register(),
        abort.is_write(),
    ) else {
        return Some(refuse(
            vm,
            vcpu,
            regs,
            Injected::DataAbort { write: false },
            |pc| {
                warn!(
                "vm \"{}\" vcpu{vcpu}: GIC register IPA {ipa:#x} accessed by an instruction without syndrome (PC {pc:#x}); injecting an abort",
                vm.name
            )
            },
        ));
    };
    let unknown = if write {
        let value = regs.read(rt);
        let effects = {
            let mut vgic = vm.vgic.lock();
            let effects = match frame {
                GicFrame::Distributor(off) => vgic.dist_write(off, size, value),
                GicFrame::Redistributor(r, off) => vgic.redist_write(r, off, size, value),
            };
            // The guest cleared a hardware-linked SPI's pending or active
            // state: the physical SPI it held is the hypervisor's to end.
            while let Some(pintid) = vgic.take_hw_deactivation() {
                gic::deactivate(pintid.get());
            }
            effects
        };
        effects.map(|e| {
            sched::kick(vm, e.kick);
            e.unknown
        })
    } else {
        let read = {
            let vgic = vm.vgic.lock();
            match frame {
                GicFrame::Distributor(off) => vgic.dist_read(off, size),
                GicFrame::Redistributor(r, off) => vgic.redist_read(r, off, size),
            }
        };
        read.map(|r| {
            regs.write(rt, r.value);
            r.unknown
        })
    };
    match unknown {
        Ok(false) => {}
        Ok(true) => note(vm, || {
            warn!(
                "vm \"{}\" vcpu{vcpu}: {} of unimplemented GIC register at IPA {ipa:#x} ignored",
                vm.name,
                if write { "write" } else { "read" }
            )
        }),
        Err(e) => {
            if !write {
                regs.write(rt, 0);
            }
            note(vm, || {
                warn!(
                    "vm \"{}\" vcpu{vcpu}: GIC access at IPA {ipa:#x} ({size} bytes) ignored: {e}",
                    vm.name
                )
            })
        }
    }
    regs.pc += 4;
    Some(Next::Resume)
}

/// Logs a guest mistake the hypervisor tolerates (the access is ignored),
/// rate-limited like refusals.
fn note(vm: &Vm, log: impl FnOnce()) {
    rate_limited(&vm.name, &vm.ignored, LOG_ALWAYS, "ignored accesses", log);
}

/// Refusals and ignored accesses a VM gets logged in full before only every
/// power of two is.
const LOG_ALWAYS: u64 = 8;

fn system_register(
    vm: &Arc<Vm>,
    vcpu: usize,
    regs: &mut GuestRegs,
    ptimer: &mut vtimer::Timer,
    esr: Esr,
) -> Next {
    let Some(access) = esr.sys_reg_access() else {
        return Next::Resume;
    };
    let reg = access.reg;
    if let Some(id) = idregs::IdReg::from_encoding(reg.op0, reg.op1, reg.crn, reg.crm, reg.op2) {
        if access.direction == Direction::Read {
            regs.write(access.rt, idregs::sanitise(id, read_id_register(id)));
            regs.pc += 4;
            return Next::Resume;
        }
    }
    if access.reg == ICC_SGI1R_EL1 {
        if access.direction == Direction::Write {
            let value = regs.read(access.rt);
            let sent = vm.vgic.lock().send_sgi(vcpu, value);
            if let Ok(targets) = sent {
                sched::kick(vm, targets);
            }
        }
        regs.pc += 4;
        return Next::Resume;
    }
    if access.reg == ICC_SGI0R_EL1 || access.reg == ICC_ASGI1R_EL1 {
        // Group 0 and other-security-state SGIs are not delivered (the
        // virtual GIC has one security state and no Group 0 delivery).
        regs.pc += 4;
        return Next::Resume;
    }
    if let Some(timer) =
        vtimer::TimerReg::from_encoding(reg.op0, reg.op1, reg.crn, reg.crm, reg.op2)
    {
        let state_now = crate::timer::now();
        match access.direction {
            Direction::Read => regs.write(access.rt, ptimer.read(timer, state_now)),
            Direction::Write => ptimer.write(timer, regs.read(access.rt), state_now),
        }
        regs.pc += 4;
        return Next::Resume;
    }
    if access.reg == ACTLR_EL1 {
        if access.direction == Direction::Read {
            regs.write(access.rt, 0);
        }
        regs.pc += 4;
        return Next::Resume;
    }
    not_emulated(vm, vcpu, regs, esr)
}

/// Reads the hardware's value of an ID register (HCR_EL2.TID3 traps the
/// guest's reads of these; EL2's own reads do not trap).
fn read_id_register(id: idregs::IdReg) -> u64 {
    macro_rules! by_encoding {
        ($($crm:literal: [$($op2:literal),*]),*) => {
            match (id.crm, id.op2) {
                $($(
                    ($crm, $op2) => {
                        let value: u64;
                        // SAFETY: Reading an ID register has no side
                        // effects; unallocated ones read as zero.
                        unsafe {
                            asm!(concat!("mrs {}, S3_0_C0_C", $crm, "_", $op2), out(reg) value,
                                options(nomem, nostack, preserves_flags));
                        }
                        value
                    }
                )*)*
                _ => 0,
            }
        };
    }
    by_encoding!(
        1: [0, 1, 2, 3, 4, 5, 6, 7],
        2: [0, 1, 2, 3, 4, 5, 6, 7],
        3: [0, 1, 2, 3, 4, 5, 6, 7],
        4: [0, 1, 2, 3, 4, 5, 6, 7],
        5: [0, 1, 2, 3, 4, 5, 6, 7],
        6: [0, 1, 2, 3, 4, 5, 6, 7],
        7: [0, 1, 2, 3, 4, 5, 6, 7]
    )
}

/// HVC or SMC: SMCCC and PSCI.
/// Vendor-specific hypervisor calls (SMCCC owner 6, fast, SMC64) that move
/// the calling vCPU to another physical CPU and force a VMID rollover, so a
/// benchmark guest can time both. Answered only with `hyp.bench-hooks`:
/// otherwise any guest could force rollovers at will.
const BENCH_MIGRATE: u32 = 0xC600_0001;
const BENCH_VMID_ROLLOVER: u32 = 0xC600_0002;

/// Whether [`BENCH_MIGRATE`] and [`BENCH_VMID_ROLLOVER`] are answered.
static BENCH_HOOKS: AtomicBool = AtomicBool::new(false);

/// Turns the benchmark hooks on (`hyp.bench-hooks`).
pub fn enable_bench_hooks() {
    BENCH_HOOKS.store(true, Ordering::Relaxed);
}

fn firmware_call(vm: &Arc<Vm>, vcpu: usize, regs: &mut GuestRegs, esr: Esr) -> Next {
    if esr.imm16() == Some(0) && BENCH_HOOKS.load(Ordering::Relaxed) {
        match regs.x[0] as u32 {
            BENCH_MIGRATE => {
                regs.x[0] = vpsci::SUCCESS;
                return Next::Migrate;
            }
            BENCH_VMID_ROLLOVER => {
                sched::force_vmid_rollover();
                regs.x[0] = vpsci::SUCCESS;
                // Out through the scheduler, so the next entry is the first
                // one after the rollover.
                return Next::Yield;
            }
            _ => {}
        }
    }
    // SMCCC: only immediate 0 is a call; anything else is not supported.
    let call = if esr.imm16() == Some(0) {
        Call::decode([regs.x[0], regs.x[1], regs.x[2], regs.x[3]])
    } else {
        Call::Unknown {
            function: regs.x[0] as u32,
        }
    };
    match vpsci::handle(call, &PsciView(vm)) {
        Outcome::Return(value) => {
            regs.x[0] = value;
            Next::Resume
        }
        Outcome::StartVcpu {
            vcpu: target,
            entry,
            context,
        } => {
            regs.x[0] = if vm.start_vcpu(target, entry, context) {
                vpsci::SUCCESS
            } else {
                vpsci::error_code(smccc::psci::error::ALREADY_ON)
            };
            Next::Resume
        }
        Outcome::StopCaller => Next::Off,
        Outcome::Suspend => {
            regs.x[0] = vpsci::SUCCESS;
            Next::Wait
        }
        Outcome::SystemOff => {
            vm.request_stop(Stop::Off(if vcpu == 0 {
                "PSCI SYSTEM_OFF"
            } else {
                "PSCI SYSTEM_OFF from a secondary vCPU"
            }));
            Next::Stop
        }
        Outcome::SystemReset => {
            vm.request_stop(Stop::Reset);
            Next::Stop
        }
    }
}

/// The VM as PSCI sees it.
struct PsciView<'a>(&'a Arc<Vm>);

impl vpsci::Vcpus for PsciView<'_> {
    fn count(&self) -> usize {
        self.0.vcpus.len()
    }

    fn mpidr(&self, index: usize) -> u64 {
        guest_boot::mpidr_of(index as u32)
    }

    fn power(&self, index: usize) -> vpsci::Power {
        self.0.vcpus[index].power()
    }

    fn is_valid_entry(&self, entry: u64) -> bool {
        self.0.owns_ram(entry)
    }
}

/// Injects `what` into the guest at its current PC. `log` runs for the
/// first few refusals of the VM and then at powers of two, so a hostile
/// guest cannot flood the console. A guest in a state that cannot take the
/// exception is stopped.
fn refuse(
    vm: &Arc<Vm>,
    vcpu: usize,
    regs: &mut GuestRegs,
    what: Injected,
    log: impl FnOnce(u64),
) -> Next {
    rate_limited(
        &vm.name,
        &vm.aborts,
        LOG_ALWAYS,
        "refusals",
        || log(regs.pc),
    );
    let vbar: u64;
    // SAFETY: Reading a system register has no side effects.
    unsafe {
        asm!(".arch armv8.1-a", "mrs {}, vbar_el12", out(reg) vbar, options(nomem, nostack, preserves_flags))
    };
    match inject::synchronous(what, regs.pc, regs.pstate, vbar) {
        Ok(entry) => {
            // SAFETY: These are the guest's live EL1 registers; writing them
            // is exactly what taking the exception would have done.
            unsafe {
                asm!(
                    ".arch armv8.1-a",
                    "msr esr_el12, {esr}",
                    "msr far_el12, {far}",
                    "msr elr_el12, {elr}",
                    "msr spsr_el12, {spsr}",
                    esr = in(reg) entry.esr,
                    far = in(reg) FAR_EL2.get(),
                    elr = in(reg) entry.elr,
                    spsr = in(reg) entry.spsr,
                    options(nomem, nostack, preserves_flags),
                );
            }
            regs.pc = entry.pc;
            regs.pstate = entry.pstate;
            Next::Resume
        }
        Err(e) => {
            error!("vm \"{}\" vcpu{vcpu}: {e}; stopping the VM", vm.name);
            vm.request_stop(Stop::Off("a fault it could not take"));
            Next::Stop
        }
    }
}
