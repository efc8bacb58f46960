//! `test=hello`: the smallest run, and the default.

use crate::dt::Machine;
use crate::{boot, println, report};
use aarch64_cpu::registers::{CurrentEL, Readable, ID_AA64ISAR1_EL1, ID_AA64PFR0_EL1, SCTLR_EL1};

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
