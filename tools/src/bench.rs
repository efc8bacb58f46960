//! `bench`: world-switch costs of the hypervisor, side by side with Linux
//! KVM on the same QEMU machine.
//!
//! The bench guest (`guest-images/bench-guest`) runs twice over: under the
//! hypervisor (a boot bundle with only it, 2 vCPUs), and under Linux KVM:
//! Debian's arm64 cloud kernel (the Linux guest's, [`linux::prepare`])
//! booted directly by QEMU at EL2, a VHE host, with an initramfs whose
//! `/init` is the reference VMM (`guest-images/kvm-vmm`). Both boots use the
//! machine every boot uses ([`qemu::QemuConfig`]) with the same CPU count,
//! plus [`DETERMINISM`]: `-icount shift=0` makes the counter the guest reads
//! count instructions, `sleep=off` keeps idle time out of it, `-seed`
//! fixes the randomness QEMU hands the guests (RNDR, the DTB's seeds) and
//! `-rtc ...,clock=vm` the wall clock the Linux host reads from the PL031
//! (it seeds the kernel's random state, and with it tiny differences in
//! instruction counts), so the counts are the same from run to run, which
//! every `--runs` repetition checks. KVM's halt polling is left as Linux sets it; one more KVM boot,
//! with `kvm.halt_poll_ns=0`, measures the IPI benchmark without it.
//!
//! The results go to `<target>/bench/`: `report.json`, `report.md` and
//! `chart.svg`, and the table to the terminal.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::bench_build;
use crate::bench_parse::{self, GuestRun};
use crate::bench_report::{self, Report, Side};
use crate::cargo::{self, describe, Profile};
use crate::cli::BenchOptions;
use crate::qemu::{self, Exit, Flow, LineSplitter, Mode, QemuConfig};
use crate::{bundle, linux, setup};

/// QEMU options both sides add for repeatable instruction counts.
pub const DETERMINISM: &[&str] = &[
    "-icount",
    "shift=0,sleep=off",
    "-seed",
    "1",
    "-rtc",
    "base=2025-01-01T00:00:00,clock=vm",
];

/// The hypervisor's command line: the benchmark guest's vendor hypercalls
/// (migrate me, force a VMID rollover) answered, which they are not by
/// default.
const HYPERVISOR_APPEND: &str = "hyp.bench-hooks";

/// CPUs of the emulated machine, for both sides: one per vCPU.
const SMP: u32 = bench_build::VCPUS;

/// Measured iterations when `--iterations` is not given: 2^16, the
/// guest's own default.
pub const DEFAULT_ITERATIONS: u64 = 1 << 16;

/// A run's wall-clock limit: generous for booting Linux, plus room for the
/// benchmarks, which take a few hundred microseconds of emulation per
/// iteration on a small host.
fn timeout(iterations: u64) -> Duration {
    Duration::from_secs(300)
        + Duration::from_millis(4).saturating_mul(iterations.try_into().unwrap_or(u32::MAX))
}

/// The kernel command line of the KVM host; `extra` is appended.
fn kvm_cmdline(iterations: u64, extra: &str) -> String {
    // panic=-1: a host that panics reboots at once, which ends QEMU
    // (-no-reboot) instead of hanging until the timeout.
    format!("console=ttyAMA0 panic=-1 bench.iterations={iterations}{extra}")
}

/// Runs the benchmarks; `Ok(false)` when a side did not complete.
///
/// # Errors
///
/// QEMU is missing, something does not build, the Linux kernel cannot be
/// had, or a report file cannot be written.
pub fn run(options: &BenchOptions) -> Result<bool> {
    let start = Instant::now();
    setup::ensure_qemu()?;
    let qemu_version = qemu_version()?;
    let iterations = options.iterations.unwrap_or(DEFAULT_ITERATIONS);

    let hypervisor = cargo::build_hypervisor(Profile::Release)?;
    let guest = bench_build::build_bench_guest()?;
    let vmm = bench_build::build_kvm_vmm()?;
    let linux = linux::prepare()?;

    let dir = cargo::target_dir().join("bench");
    let manifest = dir.join("bench.toml");
    bench_build::write(
        &manifest,
        bench_build::manifest(&format!("iterations={iterations}")).as_bytes(),
    )?;
    let bundle = bundle::assemble(
        &manifest,
        &[cargo::guest_images_dir()?],
        &dir.join("bundle.bin"),
    )?;
    anyhow::ensure!(
        bundle.warnings.is_empty(),
        "the bench manifest: {}",
        bundle.warnings.join("; ")
    );
    let initramfs = dir.join("kvm-initramfs.cpio");
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    bench_build::write(
        &initramfs,
        &bench_build::kvm_initramfs(&read(&vmm)?, &read(&guest)?)?,
    )?;

    let extra_args: Vec<String> = DETERMINISM.iter().map(|s| s.to_string()).collect();
    let ours_config = QemuConfig {
        kernel: hypervisor,
        smp: SMP,
        append: Some(HYPERVISOR_APPEND.to_owned()),
        dtb: None,
        initrd: Some(bundle.path),
        disk: None,
        extra_args: extra_args.clone(),
    };
    let kvm_config = |extra: &str| QemuConfig {
        kernel: linux.kernel.clone(),
        smp: SMP,
        append: Some(kvm_cmdline(iterations, extra)),
        dtb: None,
        initrd: Some(initramfs.clone()),
        disk: None,
        extra_args: extra_args.clone(),
    };
    let limit = timeout(iterations);
    let mut report = Report {
        iterations,
        qemu: qemu_version,
        machine: format!(
            "-machine {} -cpu max -smp {SMP} -m {}",
            qemu::MACHINE,
            qemu::MEMORY
        ),
        determinism_options: DETERMINISM.join(" "),
        ours: side("hypervisor", &ours_config),
        kvm: side("Linux KVM", &kvm_config("")),
        kvm_no_poll: None,
    };
    for n in 1..=options.runs {
        println!("bench: run {n} of {}: the hypervisor", options.runs);
        report
            .ours
            .runs
            .push(boot(&ours_config, limit, options.verbose)?);
        println!("bench: run {n} of {}: Linux KVM", options.runs);
        report
            .kvm
            .runs
            .push(boot(&kvm_config(""), limit, options.verbose)?);
    }
    let no_poll = kvm_config(" kvm.halt_poll_ns=0 bench.only=virtual-ipi");
    println!("bench: Linux KVM without halt polling, virtual-ipi only");
    let mut no_poll_side = side("Linux KVM, halt polling off", &no_poll);
    no_poll_side
        .runs
        .push(boot(&no_poll, limit, options.verbose)?);
    report.kvm_no_poll = Some(no_poll_side);

    println!();
    print!("{}", bench_report::text_table(&report));
    println!();
    for line in report.determinism() {
        println!("bench: {line}");
    }
    let kvm_first = report.kvm.first().cloned().unwrap_or_default();
    if !kvm_first.vhe {
        println!(
            "bench: WARNING: the KVM host never said `kvm [1]: VHE mode initialized successfully`"
        );
    }
    match report.cntfrq() {
        Some(hz) => {
            println!("bench: counter frequency {hz} Hz on both sides; 1 tick = 1 instruction")
        }
        None => println!("bench: WARNING: the two sides saw different (or no) counter frequencies"),
    }
    bench_build::write(
        &dir.join("report.json"),
        bench_report::json(&report).as_bytes(),
    )?;
    bench_build::write(
        &dir.join("report.md"),
        bench_report::markdown(&report).as_bytes(),
    )?;
    bench_build::write(
        &dir.join("chart.svg"),
        bench_report::svg(&report).as_bytes(),
    )?;
    println!(
        "bench: wrote {}/report.json, report.md and chart.svg ({:.0} s in all)",
        dir.display(),
        start.elapsed().as_secs_f64()
    );
    let completed = [
        Some(&report.ours),
        Some(&report.kvm),
        report.kvm_no_poll.as_ref(),
    ]
    .into_iter()
    .flatten()
    .all(Side::succeeded);
    Ok(completed && kvm_first.vhe)
}

/// A side with no runs yet, labelled and with its command line.
fn side(label: &str, config: &QemuConfig) -> Side {
    Side {
        label: label.to_owned(),
        command: describe(&config.command()),
        runs: Vec::new(),
    }
}

/// `qemu-system-aarch64 --version`'s first line.
fn qemu_version() -> Result<String> {
    let output = Command::new(setup::QEMU)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", setup::QEMU))?;
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// Boots `config` once and reads the guest's results from the console.
/// A run that does not complete is reported with the end of its console.
fn boot(config: &QemuConfig, limit: Duration, verbose: bool) -> Result<(GuestRun, f64)> {
    let command = config.command();
    println!("qemu: {}", describe(&command));
    let mut splitter = LineSplitter::default();
    let mut lines = Vec::new();
    let finished = qemu::run(command, Mode::Captured, limit, |bytes| {
        for line in splitter.push(bytes) {
            if verbose {
                println!("{line}");
            }
            lines.push(line);
        }
        Flow::Continue
    })?;
    lines.extend(splitter.finish());
    let run = bench_parse::parse(&lines);
    let seconds = finished.elapsed.as_secs_f64();
    let exited = matches!(finished.exit, Exit::Exited(status) if status.success());
    println!(
        "qemu: {} after {seconds:.1} s; {} results{}",
        match finished.exit {
            Exit::Exited(status) => format!("exited ({status})"),
            Exit::TimedOut => "timed out".into(),
            Exit::Stopped => "stopped".into(),
        },
        run.results.len(),
        if run.succeeded() { "" } else { ", INCOMPLETE" }
    );
    if !exited || !run.succeeded() {
        println!("--- the last console lines ---");
        for line in lines
            .iter()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            println!("{line}");
        }
        if !finished.stderr.is_empty() {
            println!("--- QEMU's stderr ---\n{}", finished.stderr.trim_end());
        }
    }
    Ok((run, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kvm_host_passes_the_iterations_to_the_guest() {
        assert_eq!(
            kvm_cmdline(64, " kvm.halt_poll_ns=0"),
            "console=ttyAMA0 panic=-1 bench.iterations=64 kvm.halt_poll_ns=0"
        );
    }

    #[test]
    fn both_sides_count_instructions_repeatably() {
        assert!(DETERMINISM
            .windows(2)
            .any(|w| w == ["-icount", "shift=0,sleep=off"]));
        assert!(DETERMINISM.contains(&"-seed"));
        assert!(DETERMINISM.iter().any(|o| o.ends_with("clock=vm")));
        assert!(timeout(DEFAULT_ITERATIONS) < Duration::from_secs(15 * 60));
    }

    #[test]
    fn the_guest_image_is_what_the_manifest_names() {
        assert!(bench_build::manifest("").contains(bench_build::BENCH_GUEST_IMAGE));
    }
}
