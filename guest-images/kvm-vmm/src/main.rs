//! `kvm-vmm`: the KVM reference side of the benchmarks.
//!
//! A minimal VMM for arm64 Linux hosts with KVM: it boots an arm64 `Image`
//! (the bench guest) with an in-kernel vGICv3 and PSCI, as the hypervisor
//! boots its guests (same RAM base, load plan and device tree), answers the
//! MMIO exits KVM leaves to user space (a PL011 console, QEMU `virt`'s
//! empty virtio-mmio slots) and exits when the guest powers off. Run as a
//! Linux initramfs's `/init` it takes its settings from the kernel command
//! line and powers the machine off at the end. See [`options::USAGE`].
//!
//! Only [`devices`] and [`options`] build elsewhere than aarch64 Linux, so
//! their tests run on the development host.

#![cfg_attr(
    not(all(target_arch = "aarch64", target_os = "linux")),
    allow(dead_code)
)]

mod devices;
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod init;
mod options;
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
mod vm;

use std::process::ExitCode;

/// Prints how a run ended; returns whether the guest powered off cleanly.
#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn report(result: Result<vm::Outcome, vm::VmmError>) -> bool {
    match result {
        Ok(outcome) => {
            let counts = outcome.counts;
            println!(
                "kvm-vmm: guest ended: {}; MMIO exits answered: {} reads, {} writes, {} to no device",
                outcome.end, counts.reads, counts.writes, counts.unhandled
            );
            outcome.end == vm::End::Off
        }
        Err(e) => {
            println!("kvm-vmm: error: {e}");
            false
        }
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "linux"))]
fn main() -> ExitCode {
    if std::process::id() == 1 {
        init::run()
    }
    match options::from_args(std::env::args().skip(1)) {
        Ok(config) => {
            if report(vm::run(&config, std::io::stdout())) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(options::OptionsError::Help) => {
            println!("{}", options::USAGE);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kvm-vmm: {e}\n\n{}", options::USAGE);
            ExitCode::from(2)
        }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "linux")))]
fn main() -> ExitCode {
    eprintln!("kvm-vmm runs only on aarch64 Linux (KVM for arm64)");
    ExitCode::FAILURE
}
