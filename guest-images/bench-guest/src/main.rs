//! A bare-metal EL1 guest that measures what virtualization costs: hypercall
//! and MMIO round trips, virtual interrupts, IPIs between vCPUs, the virtual
//! timer's latency, and (through vendor hypercalls) vCPU migration and VMID
//! rollover.
//!
//! Any loader of arm64 Linux `Image`s boots it (the hypervisor; the KVM
//! reference VMM, `guest-images/kvm-vmm`). vCPU 0 reads the device tree,
//! takes `iterations=`, `warmup=` and `only=` from the bootargs (see
//! [`bootargs`]), sets up the GIC, runs every benchmark of [`bench::BENCHES`]
//! and prints one `BENCH` line for each, then `BENCH done`, and powers the
//! VM off. vCPU 1 is started only for the IPI benchmark. A fatal problem is
//! a `BENCH-FAIL <what>` line, then power off.

#![no_std]
#![no_main]

mod bench;
mod blk;
mod bootargs;
mod counter;
mod dt;
mod gic;
mod marker;
mod mmu;

use core::panic::PanicInfo;
use guest_rt::exceptions::Frame;
use guest_rt::{console, firmware, println, smp, Guest};

/// The bench guest, as the shared start in guest-rt sees it.
struct BenchGuest;

guest_rt::entry! {
    guest: BenchGuest,
    translation_root: mmu::BOOT_L1,
    fail_prefix: "BENCH-FAIL",
}

impl Guest for BenchGuest {
    const STACK_SIZE: usize = 16 * 1024;
    const VA_BITS: u32 = mmu::VA_BITS;

    fn primary_main(dtb: u64) -> ! {
        console::init();
        let machine = match dt::parse(dtb) {
            Ok(machine) => machine,
            Err(e) => fail(format_args!("device tree: {e}")),
        };
        let options = match bootargs::parse(machine.bootargs) {
            Ok(options) => options,
            Err(e) => fail(format_args!("bootargs: {e}")),
        };
        let self_mpidr = smp::current_mpidr();
        if let Err(e) = gic::enable_distributor().and_then(|()| {
            gic::enable_cpu(
                self_mpidr,
                (1 << bench::SELF_SGI) | (1 << bench::REPLY_SGI) | (1 << bench::VTIMER_PPI),
            )
        }) {
            fail(format_args!("GIC: {e}"));
        }
        println!(
            "bench-guest: cntfrq={} vcpus={} iterations={} warmup={} gicd_iidr={:#x} bootargs=\"{}\"",
            counter::frequency(),
            machine.cpus.len(),
            options.iterations,
            options.warmup,
            gic::distributor_iidr(),
            machine.bootargs
        );
        let cx = bench::Context {
            options,
            self_mpidr,
            peer_mpidr: machine.cpus.get(1).copied(),
            window: core::cell::Cell::new(marker::Name::new("none")),
        };
        for bench in bench::BENCHES.iter().filter(|b| options.runs(b.name)) {
            bench::run_and_report(bench, &cx);
        }
        println!("BENCH done");
        firmware::system_off()
    }

    /// Only vCPU 1 is ever started, to answer IPIs.
    fn secondary_main(index: usize) -> ! {
        if index == 1 {
            bench::ipi_responder()
        }
        fail(format_args!(
            "vcpu {index} started, but only vCPU 1 has work"
        ))
    }

    /// The guest never takes an exception on purpose (interrupts stay masked
    /// and are polled): every one is reported and powers the VM off.
    fn exception(vector: u64, frame: &mut Frame) {
        console::print_line_emergency(format_args!(
            "BENCH-FAIL unexpected exception on vcpu {}: vector {vector}, ESR {:#x}, ELR {:#x}, FAR {:#x}",
            smp::current_index(),
            frame.esr,
            frame.elr,
            frame.far
        ));
        firmware::system_off()
    }
}

/// Prints `BENCH-FAIL <what>` and powers the VM off.
fn fail(what: core::fmt::Arguments<'_>) -> ! {
    console::print_line_emergency(format_args!("BENCH-FAIL {what}"));
    firmware::system_off()
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let vcpu = smp::current_index();
    match info.location() {
        Some(location) => fail(format_args!(
            "panic on vcpu {vcpu}: {location}: {}",
            info.message()
        )),
        None => fail(format_args!("panic on vcpu {vcpu}: {}", info.message())),
    }
}
