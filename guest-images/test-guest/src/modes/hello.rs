//! `test=hello`: the smallest run, and the default.

use crate::dt::Machine;
use crate::{boot, println, report, timer_irq};
use aarch64_cpu::registers::{
    CurrentEL, Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, CNTP_CTL_EL0, CNTP_CVAL_EL0,
    CNTP_TVAL_EL0, ID_AA64ISAR1_EL1, ID_AA64PFR0_EL1, SCTLR_EL1,
};

/// Prints the greeting and checks where and how the guest runs.
pub fn run(machine: &Machine) {
    println!(
        "hello from vcpu 0 of {}, bootargs \"{}\"",
        machine.cpus_in_dt, machine.bootargs
    );
    let el = CurrentEL.read(CurrentEL::EL);
    let mmu_and_caches = SCTLR_EL1.is_set(SCTLR_EL1::M)
        && SCTLR_EL1.is_set(SCTLR_EL1::C)
        && SCTLR_EL1.is_set(SCTLR_EL1::I);
    let (image_start, _) = boot::image_range();
    if el == 1 && mmu_and_caches && image_start == boot::LINK_ADDRESS {
        report::pass(
            "hello",
            format_args!("running at EL1 with the MMU and caches on, image at {image_start:#x}"),
        );
    } else {
        report::fail(
            "hello",
            format_args!(
                "got EL{el}, MMU and caches {}, image at {image_start:#x}; expected EL1, on, {:#x}",
                if mmu_and_caches { "on" } else { "off" },
                boot::LINK_ADDRESS
            ),
        );
    }
    check_hidden_features();
    check_physical_timer();
}

/// The EL1 physical timer (emulated by the hypervisor, which traps its
/// registers): TVAL counts down, and when CVAL passes the timer's PPI
/// becomes pending and ends a WFI.
fn check_physical_timer() {
    const TEST: &str = "hello";
    let ms = CNTFRQ_EL0.get() / 1000;
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::SET);
    CNTP_TVAL_EL0.set(1000 * ms);
    let first = CNTP_TVAL_EL0.get() as u32 as i32;
    let second = CNTP_TVAL_EL0.get() as u32 as i32;
    if first > 0 && second <= first && !CNTP_CTL_EL0.is_set(CNTP_CTL_EL0::ISTATUS) {
        report::pass(
            TEST,
            format_args!("physical timer: TVAL counts down ({first}, {second})"),
        );
    } else {
        report::fail(
            TEST,
            format_args!(
                "physical timer: TVAL read {first} then {second}, ISTATUS {}",
                CNTP_CTL_EL0.is_set(CNTP_CTL_EL0::ISTATUS)
            ),
        );
    }
    timer_irq::enable_ppi(timer_irq::PHYS_TIMER_INTID);
    CNTP_CVAL_EL0.set(CNTPCT_EL0.get() + ms);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET);
    // PSTATE.I stays masked: the interrupt ends the WFI without being taken.
    let mut waits = 0;
    while timer_irq::highest_pending() != timer_irq::PHYS_TIMER_INTID && waits < 1000 {
        aarch64_cpu::asm::wfi();
        waits += 1;
    }
    let fired = CNTP_CTL_EL0.is_set(CNTP_CTL_EL0::ISTATUS);
    let pending = timer_irq::highest_pending();
    CNTP_CTL_EL0.set(0);
    if fired && pending == timer_irq::PHYS_TIMER_INTID {
        report::pass(
            TEST,
            format_args!(
                "physical timer: fired, its PPI {pending} ended WFI after {waits} wait(s)"
            ),
        );
    } else {
        report::fail(
            TEST,
            format_args!(
                "physical timer: ISTATUS {fired}, pending INTID {pending} after {waits} WFI(s)"
            ),
        );
    }
}

/// Features whose state the hypervisor does not switch must read as absent
/// (it traps the ID registers): SVE (ID_AA64PFR0_EL1 bits 35:32) and
/// pointer authentication (ID_AA64ISAR1_EL1 APA, API, GPA, GPI). QEMU's
/// `-cpu max` has both, so this fails on a hypervisor that does not hide them.
fn check_hidden_features() {
    let sve = (ID_AA64PFR0_EL1.get() >> 32) & 0xf;
    let pauth = ID_AA64ISAR1_EL1.get() & 0xff00_0ff0;
    if sve == 0 && pauth == 0 {
        report::pass(
            "hello",
            format_args!("SVE and pointer authentication are hidden"),
        );
    } else {
        report::fail(
            "hello",
            format_args!(
                "got SVE field {sve:#x}, pointer-authentication fields {pauth:#x}; expected both 0"
            ),
        );
    }
}
