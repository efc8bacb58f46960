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
//! The bench VM has a disk (a 1 MiB host disk) for `blk-notify`, the
//! virtio queue notification round trip. Our side's runs give the VM
//! `backend = "hypervisor"`; each is followed by a boot with `backend =
//! "task"` that runs `blk-notify` alone, so the report has the round trip
//! with the virtio backend in the hypervisor and in an EL0 task. The KVM
//! reference VMM has no virtio-blk: "n/a" there.
//!
//! Every boot also loads the `qemu-el-count` plugin (`tools/el-count`),
//! which counts the instructions executed at each exception level, and
//! the guest's exits, inside the windows the guest marks around what it
//! measures: so the report also says how much of each operation ran in
//! EL2 (the hypervisor; under KVM the host kernel, VHE), how much in EL1
//! (the guest) and EL0 (under KVM, the VMM), and how many exits it took.
//!
//! The results go to `<target>/bench/`: `report.json`, `report.md` and
//! `chart.svg`, and the tables to the terminal.
//!
//! [`smoke`] is the short version `./run.sh test` runs (`bench_smoke`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use manifest::DeviceBackend;

use crate::bench_build;
use crate::bench_parse::{self, GuestRun, Measure, EL1};
use crate::bench_report::{self, Report, Side, BLK_NOTIFY, KVM_NO_DEVICE};
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

/// The benchmarks the KVM side has no hypercall for (the guest prints
/// `unsupported`); every other benchmark has a number on both sides.
pub const KVM_UNSUPPORTED: &[&str] = &["vcpu-migrate", "vmid-rollover"];

/// Measured iterations of `bench_smoke`: enough for every benchmark to run
/// its loop a few times, few enough that the two boots take seconds past
/// booting.
pub const SMOKE_ITERATIONS: u64 = 8;

/// What both sides boot, built, and how.
struct Prepared {
    /// `<target>/bench/`, or the smoke test's directory.
    dir: PathBuf,
    /// The `qemu-el-count` plugin.
    plugin: PathBuf,
    /// The hypervisor's boot: the VM's virtio backends in the hypervisor.
    ours: QemuConfig,
    /// The hypervisor's boot with the VM's virtio backends in an EL0 task,
    /// running [`BLK_NOTIFY`] only.
    ours_task: QemuConfig,
    /// The KVM host's kernel and initramfs.
    linux_kernel: PathBuf,
    initramfs: PathBuf,
    iterations: u64,
}

impl Prepared {
    /// Builds (or takes) everything: the hypervisor unless `hypervisor`
    /// is given, the bench guest, the VMM, the plugin, the Linux host.
    fn new(dir: PathBuf, iterations: u64, hypervisor: Option<PathBuf>) -> Result<Self> {
        let hypervisor = match hypervisor {
            Some(image) => image,
            None => cargo::build_hypervisor(Profile::Release)?,
        };
        // The backend task goes with the optimised hypervisor the bench
        // measures (or is given).
        let programs = cargo::build_programs(Profile::Release)?;
        let guest = bench_build::build_bench_guest()?;
        let vmm = bench_build::build_kvm_vmm()?;
        let plugin = bench_build::build_el_count()?;
        let linux = linux::prepare()?;

        let disk = dir.join("disk.img");
        bench_build::host_disk(&disk)?;
        let bundle = |tag: &str, bootargs: &str, backend| -> Result<PathBuf> {
            let manifest = dir.join(format!("{tag}.toml"));
            bench_build::write(
                &manifest,
                bench_build::manifest(bootargs, backend).as_bytes(),
            )?;
            let bundle = bundle::assemble(
                &manifest,
                &[cargo::guest_images_dir()?],
                &programs,
                &dir.join(format!("{tag}.bin")),
            )?;
            anyhow::ensure!(
                bundle.warnings.is_empty(),
                "the bench manifest {}: {}",
                manifest.display(),
                bundle.warnings.join("; ")
            );
            Ok(bundle.path)
        };
        let ours_bundle = bundle(
            "bench",
            &format!("iterations={iterations}"),
            DeviceBackend::Hypervisor,
        )?;
        let task_bundle = bundle(
            "bench-task",
            &format!("iterations={iterations} only={BLK_NOTIFY}"),
            DeviceBackend::Task,
        )?;
        let initramfs = dir.join("kvm-initramfs.cpio");
        let read = |path: &Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        bench_build::write(
            &initramfs,
            &bench_build::kvm_initramfs(&read(&vmm)?, &read(&guest)?)?,
        )?;
        let ours = QemuConfig {
            kernel: hypervisor,
            smp: SMP,
            append: Some(HYPERVISOR_APPEND.to_owned()),
            dtb: None,
            initrd: Some(ours_bundle),
            disk: Some(disk),
            extra_args: DETERMINISM.iter().map(|s| s.to_string()).collect(),
        };
        let ours_task = QemuConfig {
            initrd: Some(task_bundle),
            ..ours.clone()
        };
        Ok(Self {
            dir,
            plugin,
            ours,
            ours_task,
            linux_kernel: linux.kernel,
            initramfs,
            iterations,
        })
    }

    /// The KVM host's boot; `extra` is appended to its command line.
    fn kvm(&self, extra: &str) -> QemuConfig {
        QemuConfig {
            kernel: self.linux_kernel.clone(),
            smp: SMP,
            append: Some(kvm_cmdline(self.iterations, extra)),
            dtb: None,
            initrd: Some(self.initramfs.clone()),
            disk: None,
            extra_args: self.ours.extra_args.clone(),
        }
    }

    /// `config` with the plugin loaded, its report going to
    /// `el-count-<tag>.txt`.
    fn counted(&self, config: &QemuConfig, tag: &str) -> Counted {
        let report = self.dir.join(format!("el-count-{tag}.txt"));
        let mut config = config.clone();
        config.extra_args.extend(plugin_args(&self.plugin, &report));
        Counted { config, report }
    }
}

/// A boot with the plugin, and where its report goes.
struct Counted {
    config: QemuConfig,
    report: PathBuf,
}

/// QEMU's arguments that load `plugin` with its report going to `report`.
fn plugin_args(plugin: &Path, report: &Path) -> [String; 2] {
    // QEMU's option parser takes `,,` for a comma inside a value.
    let escape = |path: &Path| path.display().to_string().replace(',', ",,");
    [
        "-plugin".into(),
        format!("{},out={}", escape(plugin), escape(report)),
    ]
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
    let dir = cargo::target_dir().join("bench");
    let prepared = Prepared::new(dir.clone(), iterations, None)?;
    let limit = timeout(iterations);
    let kvm = prepared.kvm("");
    let no_poll = prepared.kvm(" kvm.halt_poll_ns=0 bench.only=virtual-ipi");
    let mut report = Report {
        iterations,
        qemu: qemu_version,
        machine: format!(
            "-machine {} -cpu max -smp {SMP} -m {}",
            qemu::MACHINE,
            qemu::MEMORY
        ),
        determinism_options: DETERMINISM.join(" "),
        ours: side("hypervisor", &prepared.counted(&prepared.ours, "ours-1")),
        kvm: side("Linux KVM", &prepared.counted(&kvm, "kvm-1")),
        kvm_no_poll: None,
        ours_task: Some(side(
            "hypervisor, virtio backends in an EL0 task",
            &prepared.counted(&prepared.ours_task, "ours-task-1"),
        )),
    };
    for n in 1..=options.runs {
        println!("bench: run {n} of {}: the hypervisor", options.runs);
        let ours = prepared.counted(&prepared.ours, &format!("ours-{n}"));
        report.ours.runs.push(boot(&ours, limit, options.verbose)?);
        println!(
            "bench: run {n} of {}: the hypervisor, backend = \"task\", {BLK_NOTIFY} only",
            options.runs
        );
        let task = prepared.counted(&prepared.ours_task, &format!("ours-task-{n}"));
        if let Some(side) = report.ours_task.as_mut() {
            side.runs.push(boot(&task, limit, options.verbose)?);
        }
        println!("bench: run {n} of {}: Linux KVM", options.runs);
        let kvm = prepared.counted(&kvm, &format!("kvm-{n}"));
        report.kvm.runs.push(boot(&kvm, limit, options.verbose)?);
    }
    println!("bench: Linux KVM without halt polling, virtual-ipi only");
    let no_poll = prepared.counted(&no_poll, "kvm-no-poll");
    let mut no_poll_side = side("Linux KVM, halt polling off", &no_poll);
    no_poll_side
        .runs
        .push(boot(&no_poll, limit, options.verbose)?);
    report.kvm_no_poll = Some(no_poll_side);

    println!();
    print!("{}", bench_report::text_table(&report));
    println!();
    print!("{}", bench_report::levels_table(&report));
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
    let completed = report.sides().all(Side::succeeded);
    Ok(completed && kvm_first.vhe)
}

/// What [`smoke`] found.
#[derive(Debug, Default)]
pub struct Smoke {
    /// What is wrong; empty when it passed.
    pub problems: Vec<String>,
    /// Worth showing either way: what each side measured of `hvc-null`.
    pub notes: Vec<String>,
}

/// `bench_smoke`: both sides once, [`SMOKE_ITERATIONS`] iterations each,
/// booted at the same time (one QEMU per host core; our side's task-backend
/// boot follows its first), then [`smoke_check`]. `hypervisor` is the image
/// to boot (the test run's release build).
///
/// # Errors
///
/// Something does not build, the Linux kernel cannot be had, or QEMU
/// cannot be started.
pub fn smoke(hypervisor: PathBuf, verbose: bool) -> Result<Smoke> {
    let dir = cargo::scratch_dir("bench_smoke")?;
    let prepared = Prepared::new(dir, SMOKE_ITERATIONS, Some(hypervisor))?;
    let limit = timeout(SMOKE_ITERATIONS);
    let ours = prepared.counted(&prepared.ours, "ours");
    let task = prepared.counted(&prepared.ours_task, "ours-task");
    let kvm = prepared.counted(&prepared.kvm(""), "kvm");
    let (ours, kvm) = std::thread::scope(|scope| {
        let ours = scope.spawn(|| {
            let ours = boot(&ours, limit, verbose)?;
            let task = boot(&task, limit, verbose)?;
            anyhow::Ok((ours, task))
        });
        let kvm = boot(&kvm, limit, verbose);
        let ours = ours
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the hypervisor's boot panicked")));
        (ours, kvm)
    });
    let (((ours, _), (task, _)), (kvm, _)) = (ours?, kvm?);
    Ok(smoke_check(&ours, &task, &kvm, SMOKE_ITERATIONS))
}

/// Whether the runs measured what they can, with no timing checked:
/// every benchmark has a number on each side (but those in
/// [`KVM_UNSUPPORTED`] and [`KVM_NO_DEVICE`], which KVM must call
/// unsupported), so does [`BLK_NOTIFY`] in the task-backend run (`task`),
/// each number has the plugin's counts beside it, and every null hypercall
/// was seen leaving the guest.
pub fn smoke_check(ours: &GuestRun, task: &GuestRun, kvm: &GuestRun, iterations: u64) -> Smoke {
    let mut smoke = Smoke::default();
    let every: Vec<&str> = bench_report::names().collect();
    for (label, run, names) in [
        ("hypervisor", ours, every.as_slice()),
        // The task-backend run has the one benchmark.
        ("hypervisor, backend = task", task, &[BLK_NOTIFY]),
        ("KVM", kvm, every.as_slice()),
    ] {
        let problems = &mut smoke.problems;
        if !run.done {
            problems.push(format!("{label}: no `BENCH done`"));
        }
        for problem in &run.problems {
            problems.push(format!("{label}: {problem}"));
        }
        if run.levels.is_none() {
            problems.push(format!("{label}: no qemu-el-count report"));
        }
        for &name in names {
            let unsupported = label == "KVM"
                && (KVM_UNSUPPORTED.contains(&name) || KVM_NO_DEVICE.contains(&name));
            match (run.get(name), unsupported) {
                (Some(Measure::Ticks { .. }), false) => {}
                (Some(Measure::Unsupported), true) => continue,
                (Some(other), true) => {
                    problems.push(format!("{label}: {name}: {other}, not unsupported"));
                    continue;
                }
                (Some(other), false) => {
                    problems.push(format!("{label}: {name}: {other}"));
                    continue;
                }
                (None, _) => {
                    problems.push(format!("{label}: {name}: no result"));
                    continue;
                }
            }
            let Some(levels) = &run.levels else {
                continue;
            };
            match levels.window(name) {
                Some(window) if window.marks > 0 && window.counts.insns[EL1] > 0 => {}
                Some(_) => problems.push(format!("{label}: {name}: an empty window")),
                None => problems.push(format!("{label}: {name}: no qemu-el-count window")),
            }
        }
        if let Some(hvc) = run.levels.as_ref().and_then(|l| l.window("hvc-null")) {
            let exits = hvc.counts.exits();
            if exits < iterations {
                problems.push(format!(
                    "{label}: hvc-null: {exits} exits for {iterations} hypercalls"
                ));
            }
            smoke.notes.push(format!(
                "{label}: hvc-null {} ticks/op; {} EL2 instructions and {exits} exits over {iterations} calls",
                run.get("hvc-null")
                    .and_then(Measure::per_op)
                    .map_or_else(|| "-".into(), |t| format!("{t:.2}")),
                hvc.counts.insns[bench_parse::EL2]
            ));
        }
        if let (Some(measure @ Measure::Ticks { .. }), Some(blk)) = (
            run.get(BLK_NOTIFY),
            run.levels.as_ref().and_then(|l| l.window(BLK_NOTIFY)),
        ) {
            // Every request's QueueNotify write leaves the guest.
            let exits = blk.counts.exits();
            if exits < iterations {
                problems.push(format!(
                    "{label}: {BLK_NOTIFY}: {exits} exits for {iterations} notifications"
                ));
            }
            let per_op = |el: usize| blk.counts.insns[el] as f64 / iterations.max(1) as f64;
            smoke.notes.push(format!(
                "{label}: {BLK_NOTIFY} {:.2} ticks/op; per op EL2 {:.2}, EL1 {:.2}, EL0 {:.2} instructions, {:.2} exits",
                measure.per_op().unwrap_or(0.0),
                per_op(bench_parse::EL2),
                per_op(EL1),
                per_op(bench_parse::EL0),
                exits as f64 / iterations.max(1) as f64
            ));
        }
    }
    smoke
}

/// A side with no runs yet, labelled and with its (first run's) command
/// line.
fn side(label: &str, boot: &Counted) -> Side {
    Side {
        label: label.to_owned(),
        command: describe(&boot.config.command()),
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

/// Boots `boot` once and reads the guest's results from the console, and
/// the plugin's counts from its report (a report missing, malformed or
/// with problems is a problem of the run). A run that does not complete is
/// reported with the end of its console.
fn boot(boot: &Counted, limit: Duration, verbose: bool) -> Result<(GuestRun, f64)> {
    // A report left from an earlier run must not pass for this one's.
    match std::fs::remove_file(&boot.report) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", boot.report.display()))
        }
        _ => {}
    }
    let command = boot.config.command();
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
    let mut run = bench_parse::parse(&lines);
    match std::fs::read_to_string(&boot.report) {
        Ok(text) => match bench_parse::parse_level_report(&text) {
            Ok(levels) => {
                run.problems
                    .extend(levels.problems.iter().map(|p| format!("el-count: {p}")));
                run.levels = Some(levels);
            }
            Err(why) => run
                .problems
                .push(format!("el-count: {}: {why}", boot.report.display())),
        },
        Err(e) => run.problems.push(format!(
            "el-count: no report ({}: {e})",
            boot.report.display()
        )),
    }
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
        assert!(bench_build::manifest("", DeviceBackend::Hypervisor)
            .contains(bench_build::BENCH_GUEST_IMAGE));
    }

    /// A run's console with a number for every benchmark but `unsupported`.
    fn console(unsupported: &[&str]) -> String {
        let mut text = String::new();
        for name in bench_report::names() {
            if unsupported.contains(&name) {
                text.push_str(&format!("BENCH {name} unsupported\n"));
            } else {
                text.push_str(&format!("BENCH {name} 8 80 10.00\n"));
            }
        }
        text + "BENCH done\n"
    }

    /// The plugin's report with a window of `exits` exits for each name.
    fn levels(names: &[&str], exits: u64) -> bench_parse::LevelReport {
        let mut text = String::from("qemu-el-count 1\nvcpus 2\n");
        for name in names {
            text.push_str(&format!(
                "window {name} marks=1 el0=0 el1=50 el2=900 el3=0 el1>el2={exits} el2>el1={exits}\n"
            ));
        }
        text.push_str("total el0=0 el1=1 el2=1 el3=0\n");
        bench_parse::parse_level_report(&text).unwrap()
    }

    fn run(unsupported: &[&str], exits: u64) -> GuestRun {
        let lines: Vec<String> = console(unsupported).lines().map(str::to_owned).collect();
        let mut run = bench_parse::parse(&lines);
        let measured: Vec<&str> = bench_report::names()
            .filter(|n| !unsupported.contains(n))
            .collect();
        run.levels = Some(levels(&measured, exits));
        run
    }

    /// What KVM's run says unsupported: no hook, no device.
    fn kvm_unsupported() -> Vec<&'static str> {
        [KVM_UNSUPPORTED, KVM_NO_DEVICE].concat()
    }

    /// The task-backend run: `blk-notify` alone, `result` its BENCH words.
    fn task_run(result: &str, exits: u64) -> GuestRun {
        let text = format!("BENCH {BLK_NOTIFY} {result}\nBENCH done\n");
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let mut run = bench_parse::parse(&lines);
        run.levels = Some(levels(&[BLK_NOTIFY], exits));
        run
    }

    #[test]
    fn the_smoke_test_wants_every_number_with_its_counts() {
        let ours = run(&[], 8);
        let task = task_run("8 80 10.00", 8);
        let kvm = run(&kvm_unsupported(), 8);
        let smoke = smoke_check(&ours, &task, &kvm, 8);
        assert!(smoke.problems.is_empty(), "{:?}", smoke.problems);
        assert_eq!(smoke.notes.len(), 4, "{:?}", smoke.notes);
        assert!(smoke.notes[0].starts_with("hypervisor: hvc-null 10.00 ticks/op; 900 EL2"));
        assert_eq!(
            smoke.notes[1],
            "hypervisor: blk-notify 10.00 ticks/op; per op EL2 112.50, EL1 6.25, EL0 0.00 instructions, 1.00 exits"
        );
        assert!(smoke.notes[2].starts_with("hypervisor, backend = task: blk-notify 10.00"));
        assert!(smoke.notes[3].starts_with("KVM: hvc-null"));
    }

    #[test]
    fn the_smoke_test_names_what_is_missing() {
        // Our side lost a hook, KVM suddenly supports one; too few exits.
        let ours = run(&["vmid-rollover"], 8);
        let task = task_run("8 80 10.00", 8);
        let kvm = run(&["vcpu-migrate", BLK_NOTIFY], 3);
        let problems = smoke_check(&ours, &task, &kvm, 8).problems;
        assert_eq!(
            problems,
            [
                "hypervisor: vmid-rollover: unsupported",
                "KVM: vmid-rollover: 10.00 ticks/op (80 over 8), not unsupported",
                "KVM: hvc-null: 3 exits for 8 hypercalls",
            ]
        );
        // No plugin report, no `BENCH done`, a failed benchmark; the task
        // backend's request failed its check, or its device was missing.
        let mut broken = run(&[], 8);
        broken.levels = None;
        broken.done = false;
        broken.results[2].1 = Measure::Error("timed out".into());
        let task = task_run("error virtio-blk request status read 0xff, expected 0x0", 8);
        let problems = smoke_check(&broken, &task, &run(&kvm_unsupported(), 8), 8).problems;
        assert_eq!(
            problems,
            [
                "hypervisor: no `BENCH done`",
                "hypervisor: no qemu-el-count report",
                "hypervisor: hvc-null: error: timed out",
                "hypervisor, backend = task: blk-notify: error: virtio-blk request status read 0xff, expected 0x0",
            ]
        );
        let problems = smoke_check(
            &run(&[BLK_NOTIFY], 8),
            &task_run("8 80 10.00", 2),
            &run(&kvm_unsupported(), 8),
            8,
        )
        .problems;
        assert_eq!(
            problems,
            [
                "hypervisor: blk-notify: unsupported",
                "hypervisor, backend = task: blk-notify: 2 exits for 8 notifications",
            ]
        );
    }

    #[test]
    fn the_plugin_report_path_survives_commas() {
        let args = plugin_args(Path::new("/a,b/lib.so"), Path::new("/c/out,1.txt"));
        assert_eq!(args, ["-plugin", "/a,,b/lib.so,out=/c/out,,1.txt"]);
    }
}
