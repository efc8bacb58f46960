//! A bare-metal EL1 guest for the hypervisor's system tests.
//!
//! The hypervisor loads it like an arm64 Linux `Image` and enters [`boot`]'s
//! assembly on vCPU 0 with x0 = the device tree. The guest turns on its MMU
//! (a static identity map, see [`mmu`]), reads the device tree, picks a test
//! mode from the bootargs (`test=<mode>`, see [`bootargs`]) and runs it.
//! Every line it prints is informational or `PASS <test>: ...` /
//! `FAIL <test>: ...`; it ends with `DONE <mode>: <n> passed, <m> failed` and
//! PSCI `SYSTEM_OFF`. A panic prints `FAIL panic: ...` and an unexpected
//! exception `FAIL unexpected exception ...`, both followed by `SYSTEM_OFF`.

#![no_std]
#![no_main]

mod access;
mod bootargs;
mod dt;
mod edu;
mod exceptions;
mod firmware;
mod mmio;
mod mmu;
mod modes;
mod pci;
mod report;
mod smp;
mod timer_irq;

use bootargs::Mode;
use core::panic::PanicInfo;
use guest_rt::exceptions::Frame;
// The shared start's modules, under the names the rest of the guest uses.
use guest_rt::{boot, console, println, Guest};
use spin::Once;

/// The mode, set by vCPU 0 before it starts any other vCPU.
static MODE: Once<Mode> = Once::new();

/// The test guest, as the shared start in guest-rt sees it.
struct TestGuest;

guest_rt::entry! {
    guest: TestGuest,
    translation_root: mmu::BOOT_L0,
    fail_prefix: "FAIL",
}

impl Guest for TestGuest {
    const STACK_SIZE: usize = 64 * 1024;
    const VA_BITS: u32 = mmu::VA_BITS;

    fn primary_main(dtb: u64) -> ! {
        primary_main(dtb)
    }

    fn secondary_main(index: usize) -> ! {
        secondary_main(index)
    }

    fn exception(vector: u64, frame: &mut Frame) {
        exceptions::handle(vector, frame)
    }
}

/// vCPU 0's entry into Rust: MMU on, on its own stack, `.bss` zeroed.
fn primary_main(dtb: u64) -> ! {
    console::init();
    let machine = match dt::parse(dtb) {
        Ok(machine) => machine,
        Err(e) => {
            report::fail("dt", format_args!("{e}"));
            firmware::system_off()
        }
    };
    firmware::set_psci_conduit(machine.psci);
    let options = match bootargs::parse(machine.bootargs) {
        Ok(options) => options,
        Err(e) => {
            report::fail("bootargs", format_args!("{e}"));
            firmware::system_off()
        }
    };
    let mode = *MODE.call_once(|| options.mode);
    println!(
        "test-guest: mode {}, {} vCPUs, RAM {}, device tree at {:#x}, PSCI over {}, bootargs \"{}\"",
        mode.name(),
        machine.cpus_in_dt,
        machine.ram,
        dtb,
        machine.psci,
        machine.bootargs
    );
    if machine.cpus_in_dt > machine.cpus.len() {
        println!(
            "test-guest: only the first {} vCPUs take part",
            machine.cpus.len()
        );
    }
    let mpidr = smp::current_mpidr();
    if machine.cpus[0] != mpidr {
        report::fail(
            "boot",
            format_args!(
                "vcpu 0: got MPIDR {mpidr:#x}, expected {:#x} (the first cpu in the device tree)",
                machine.cpus[0]
            ),
        );
    }

    match mode {
        Mode::Hello => modes::hello::run(&machine),
        Mode::Psci => modes::psci::run(&machine),
        Mode::Abort => modes::abort::run(&machine),
        Mode::Isolation {
            pattern,
            peer,
            rounds,
        } => modes::isolation::run(&machine, pattern, peer, rounds),
        Mode::Fuzz { seed, ops } => modes::fuzz::run(&machine, seed, ops),
        Mode::Reset => modes::reset::run(&machine),
        Mode::Echo => modes::echo::run(),
        Mode::Canary { page } => modes::canary::run(&machine, page),
        Mode::DmaOutside {
            target,
            stride,
            count,
            bytes,
            gap_ms,
            beats,
        } => modes::dma_outside::run(
            &machine,
            modes::dma_outside::Targets {
                first: target,
                stride,
                count,
                bytes,
                gap_ms,
            },
            beats,
        ),
    }
    report::done(mode.name())
}

/// A secondary vCPU's entry into Rust, started by PSCI `CPU_ON` with its
/// index as the context ID (below `MAX_VCPUS`): MMU on, on its own stack.
fn secondary_main(index: usize) -> ! {
    let Some(&mode) = MODE.get() else {
        report::fail(
            "smp",
            format_args!("cpu{index} started before vCPU 0 chose a mode"),
        );
        firmware::system_off()
    };
    if index == 0 {
        // Only CPU_SUSPEND is made with context ID 0, and for a standby
        // state it must return in place instead.
        report::fail(
            mode.name(),
            format_args!("vcpu 0 entered the secondary entry point (from CPU_SUSPEND standby?)"),
        );
        report::done(mode.name())
    }
    match mode {
        Mode::Psci => modes::psci::secondary(index),
        Mode::Isolation { .. } => modes::isolation::secondary(index),
        _ => report::fail(
            mode.name(),
            format_args!(
                "cpu{index} started, but test={} starts no vCPUs",
                mode.name()
            ),
        ),
    }
    let got = firmware::cpu_off();
    report::fail(
        mode.name(),
        format_args!(
            "cpu{index} CPU_OFF returned {}, expected no return",
            firmware::Answer(got)
        ),
    );
    smp::park()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let vcpu = smp::current_index();
    match info.location() {
        Some(location) => console::print_line_emergency(format_args!(
            "FAIL panic: {location}: {} (vcpu {vcpu})",
            info.message()
        )),
        None => console::print_line_emergency(format_args!(
            "FAIL panic: {} (vcpu {vcpu})",
            info.message()
        )),
    }
    firmware::system_off()
}
