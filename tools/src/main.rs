//! `hyp-tools`: the host side of the hypervisor project.
//!
//! One binary, reached through `./run.sh`, that checks the host, builds the
//! hypervisor image, boots it under QEMU and runs every test (host unit tests
//! and QEMU system tests). See [`cli::USAGE`] for the subcommands.

mod bench;
mod bench_build;
mod bench_parse;
mod bench_report;
mod bundle;
mod cargo;
mod cli;
mod disk;
mod dtb;
mod guests;
mod hosttest;
mod image;
mod linux;
mod qemu;
mod setup;
mod systest;

use std::process::ExitCode;

use std::path::PathBuf;

use anyhow::{Context, Result};

use cli::{Command, RunOptions, TestOptions};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("error: {error:#}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match dispatch(command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand; `Ok(false)` means it ran but what it checked failed.
fn dispatch(command: Command) -> Result<bool> {
    match command {
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(true)
        }
        Command::Setup => setup::ensure_qemu().map(|_| true),
        Command::Run(options) => run(&options),
        Command::Test(options) => test(&options),
        Command::Bench(options) => bench::run(&options),
    }
}

/// `run`: boot the hypervisor once and stream its console to the terminal.
fn run(options: &RunOptions) -> Result<bool> {
    setup::ensure_qemu()?;
    let kernel = match &options.kernel {
        Some(path) => image::prepare_kernel(&cargo::from_invocation_dir(path))?,
        None => cargo::build_hypervisor(options.profile)?,
    };
    let mut disk = None;
    let initrd = match &options.manifest {
        None => None,
        Some(manifest) => {
            let path = match manifest {
                cli::Manifest::Default => cargo::workspace_root().join(cli::DEFAULT_MANIFEST),
                cli::Manifest::User(path) => cargo::from_invocation_dir(path),
            };
            guests::build_all(guests::Needs::of_manifest(&path)?)?;
            let out = cargo::scratch_dir("run")?.join("bundle.bin");
            let programs = cargo::build_programs(options.profile)?;
            let assembled =
                bundle::assemble(&path, &[cargo::guest_images_dir()?], &programs, &out)?;
            for warning in &assembled.warnings {
                println!("bundle: {warning}");
            }
            println!("bundle: {} from {}", out.display(), path.display());
            disk = run_disk(options, &path)?;
            Some(assembled.path)
        }
    };
    let config = qemu::QemuConfig {
        kernel,
        smp: options.smp,
        append: options.append.clone(),
        dtb: options.dtb.as_deref().map(cargo::from_invocation_dir),
        initrd,
        disk,
        extra_args: options.qemu_args.clone(),
    };
    qemu::run_interactive(&config, options.timeout)
}

/// The host disk for `run`: the user's `--disk`, else the kept image in
/// the scratch directory, made or grown to hold the regions the manifest
/// at `manifest` gives its VMs; `None` when no VM has a disk and none was
/// given.
fn run_disk(options: &RunOptions, manifest: &std::path::Path) -> Result<Option<PathBuf>> {
    if let Some(disk) = &options.disk {
        return Ok(Some(cargo::from_invocation_dir(disk)));
    }
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading the manifest {}", manifest.display()))?;
    let path = cargo::scratch_dir("run")?.join("disk.img");
    Ok(disk::prepare_persistent(&path, &text)?.map(|size| {
        println!(
            "disk: {} ({} MiB; kept from run to run, delete it to start afresh)",
            path.display(),
            size >> 20
        );
        path
    }))
}

/// `test`: host tests, then system tests, then the one summary line.
fn test(options: &TestOptions) -> Result<bool> {
    setup::ensure_qemu()?;
    let filter = options.filter.as_deref();
    if let Some(filter) = filter {
        let names = hosttest::HOST_TESTS
            .iter()
            .map(|t| t.name)
            .chain(systest::SYSTEM_TESTS.iter().map(|t| t.name));
        anyhow::ensure!(
            names.clone().any(|name| name.contains(filter)),
            "no test name contains `{filter}`; tests: {}",
            names.collect::<Vec<_>>().join(", ")
        );
    }
    let kernel = options
        .kernel
        .as_deref()
        .map(|path| image::prepare_kernel(&cargo::from_invocation_dir(path)))
        .transpose()?;
    let host = hosttest::run_all(filter)?;
    let system = systest::run_all(filter, options.verbose, kernel.as_deref())?;
    let passed = host.passed + system.passed;
    let failed = host.failed + system.failed;
    println!();
    println!(
        "host tests: {} passed, {} failed; system tests: {} passed, {} failed",
        host.passed, host.failed, system.passed, system.failed
    );
    // The closing line is machine-read (CI): keep it exactly `N passed, N failed`.
    println!("{passed} passed, {failed} failed");
    Ok(failed == 0)
}
