//! What `bench` boots, built: the bench guest's image, the boot bundle
//! that runs it under the hypervisor, the KVM reference VMM and the
//! initramfs that runs it under Linux.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use object::elf::{FileHeader64, EM_AARCH64, PT_INTERP};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use manifest::DeviceBackend;

use crate::cargo::{self, describe};
use crate::image;
use crate::linux::cpio;

/// The bench guest's package (and binary) name.
const BENCH_GUEST_PACKAGE: &str = "bench-guest";
/// Its flat image, as the bench manifest names it.
pub const BENCH_GUEST_IMAGE: &str = "bench-guest.bin";
/// The VMM's package (and binary) name.
const KVM_VMM_PACKAGE: &str = "kvm-vmm";
/// The VMM's target: static arm64 Linux executables without a C toolchain.
const MUSL_TARGET: &str = "aarch64-unknown-linux-musl";
/// How cargo links for that target: the LLVM linker rustup ships, so no
/// aarch64 cross compiler is needed; and the debug info stripped, so the
/// initramfs stays small.
const MUSL_ENV: &[(&str, &str)] = &[
    ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER", "rust-lld"),
    (
        "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
        "-Cstrip=debuginfo",
    ),
];

/// The instruction-counting QEMU plugin's package, and the shared object
/// cargo makes of it on a Linux host.
const EL_COUNT_PACKAGE: &str = "qemu-el-count";
const EL_COUNT_LIBRARY: &str = "libqemu_el_count.so";

/// Where the initramfs holds the bench guest: `kvm-vmm`'s default image.
const INITRAMFS_GUEST: &str = "bench-guest.bin";
/// `/dev/console`, character device 5:1: the kernel opens it for `/init`'s
/// output before `/init` runs.
const CONSOLE_MAJOR: u32 = 5;
const CONSOLE_MINOR: u32 = 1;

/// The bench VM: its name (the hypervisor's console prefix), vCPUs and RAM
/// (what the VMM gives it by default, too).
pub const VM_NAME: &str = "bench";
/// vCPUs of the bench VM.
pub const VCPUS: u32 = 2;
/// RAM of the bench VM, in MiB.
pub const MEMORY_MIB: u64 = 64;
/// The bench VM's disk, which `blk-notify` drives, in MiB: all of the host
/// disk. `blk-notify`'s requests (GET_ID) never read or write it, so its
/// size and contents do not matter.
pub const DISK_MIB: u64 = 1;

/// Builds the bench guest (optimised) and returns its flat image,
/// `<target>/guest-images/bench-guest.bin`.
///
/// # Errors
///
/// The build fails or the ELF cannot be converted.
pub fn build_bench_guest() -> Result<PathBuf> {
    let mut command = cargo::cargo_command();
    command.args([
        "build",
        "-p",
        BENCH_GUEST_PACKAGE,
        "--target",
        cargo::GUEST_TARGET,
        "--release",
    ]);
    run_build(&mut command, BENCH_GUEST_PACKAGE)?;
    let elf = cargo::target_dir()
        .join(cargo::GUEST_TARGET)
        .join("release")
        .join(BENCH_GUEST_PACKAGE);
    let bin = cargo::guest_images_dir()?.join(BENCH_GUEST_IMAGE);
    image::convert_file(&elf, &bin)?;
    Ok(bin)
}

/// Builds the KVM reference VMM, a static arm64 Linux executable, and
/// returns its path; adds the musl target to the toolchain first if it is
/// missing.
///
/// # Errors
///
/// The target cannot be added, the build fails, or the result is not a
/// static arm64 ELF.
pub fn build_kvm_vmm() -> Result<PathBuf> {
    ensure_musl_target()?;
    let mut command = cargo::cargo_command();
    command.args([
        "build",
        "-p",
        KVM_VMM_PACKAGE,
        "--target",
        MUSL_TARGET,
        "--release",
    ]);
    command.envs(MUSL_ENV.iter().copied());
    run_build(&mut command, KVM_VMM_PACKAGE)?;
    let elf = cargo::target_dir()
        .join(MUSL_TARGET)
        .join("release")
        .join(KVM_VMM_PACKAGE);
    let bytes = std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?;
    check_static_aarch64(&bytes).with_context(|| format!("{}", elf.display()))?;
    Ok(elf)
}

/// Builds the `qemu-el-count` plugin (for the host, optimised: it runs
/// for every instruction) and returns the shared object QEMU loads.
///
/// # Errors
///
/// The build fails.
pub fn build_el_count() -> Result<PathBuf> {
    let mut command = cargo::cargo_command();
    command.args(["build", "-p", EL_COUNT_PACKAGE, "--release"]);
    run_build(&mut command, EL_COUNT_PACKAGE)?;
    let library = cargo::target_dir().join("release").join(EL_COUNT_LIBRARY);
    ensure!(
        library.is_file(),
        "{} is not where the build should have left it",
        library.display()
    );
    Ok(library)
}

fn run_build(command: &mut Command, package: &str) -> Result<()> {
    println!("build: {}", describe(command));
    let status = command.status().context("running cargo build")?;
    ensure!(status.success(), "building {package} failed ({status})");
    Ok(())
}

/// Adds the musl target with rustup unless the toolchain has it (the
/// toolchain file names only the bare-metal target).
fn ensure_musl_target() -> Result<()> {
    let root = cargo::workspace_root();
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(&root)
        .output()
        .context("running rustc --print sysroot")?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(MUSL_TARGET).is_dir() {
        return Ok(());
    }
    let mut command = Command::new("rustup");
    command
        .args(["target", "add", MUSL_TARGET])
        .current_dir(&root);
    println!("build: {}", describe(&command));
    let status = command.status().context(
        "running rustup (the KVM reference VMM needs the aarch64-unknown-linux-musl target)",
    )?;
    ensure!(
        status.success(),
        "rustup could not add {MUSL_TARGET} ({status})"
    );
    Ok(())
}

/// Checks that `elf` is an AArch64 executable without a program
/// interpreter: the initramfs has no dynamic loader.
fn check_static_aarch64(elf: &[u8]) -> Result<()> {
    let header = FileHeader64::<Endianness>::parse(elf).context("not a 64-bit ELF")?;
    let endian = header.endian().context("bad ELF byte order")?;
    ensure!(
        header.e_machine(endian) == EM_AARCH64,
        "ELF machine is {}, not AArch64",
        header.e_machine(endian)
    );
    let dynamic = header
        .program_headers(endian, elf)
        .context("bad program headers")?
        .iter()
        .any(|ph| ph.p_type(endian) == PT_INTERP);
    if dynamic {
        bail!("dynamically linked; the initramfs has no dynamic loader");
    }
    Ok(())
}

/// The manifest of a hypervisor run: one VM, `bench`, with the bench
/// guest, [`VCPUS`] vCPUs and [`MEMORY_MIB`] MiB, `bootargs`, and a disk
/// of [`DISK_MIB`] MiB (the whole host disk) whose virtio backend runs
/// where `backend` says.
pub fn manifest(bootargs: &str, backend: DeviceBackend) -> String {
    format!(
        "# Written by `./run.sh bench`: the bench guest alone.\n\
         [[vm]]\n\
         name = \"{VM_NAME}\"\n\
         vcpus = {VCPUS}\n\
         memory = \"{MEMORY_MIB}M\"\n\
         kernel = \"{BENCH_GUEST_IMAGE}\"\n\
         bootargs = \"{bootargs}\"\n\
         disk = \"0+{DISK_MIB}M\"\n\
         backend = \"{backend}\"\n"
    )
}

/// Writes the host disk the bench VM's disk maps: [`DISK_MIB`] MiB of
/// zeros.
///
/// # Errors
///
/// The file cannot be written.
pub fn host_disk(path: &Path) -> Result<()> {
    write(path, &vec![0; (DISK_MIB << 20) as usize])
}

/// The KVM reference host's initramfs (newc, uncompressed): `/init` is the
/// VMM itself, which mounts what it needs, `/bench-guest.bin` the guest,
/// and `/dev/console` is there for the kernel to open.
///
/// # Errors
///
/// An entry is refused (a file of 4 GiB or more).
pub fn kvm_initramfs(vmm: &[u8], guest: &[u8]) -> Result<Vec<u8>> {
    let mut archive = cpio::Writer::new();
    for dir in ["dev", "proc", "sys"] {
        archive.dir(dir, 0o755)?;
    }
    archive.char_device("dev/console", 0o600, CONSOLE_MAJOR, CONSOLE_MINOR)?;
    archive.file("init", 0o755, vmm)?;
    archive.file(INITRAMFS_GUEST, 0o644, guest)?;
    Ok(archive.finish())
}

/// Writes `data` to `path`, making its directory.
pub fn write(path: &Path, data: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_one_good_vm_with_the_bench_guest() {
        for backend in DeviceBackend::ALL {
            let text = manifest("iterations=16", backend);
            let parsed = manifest::Manifest::parse(&text).unwrap();
            let vms: Vec<_> = parsed.good_vms().collect();
            assert_eq!(vms.len(), 1);
            assert_eq!(vms[0].kernel, BENCH_GUEST_IMAGE);
            assert_eq!(vms[0].vcpus, VCPUS);
            assert_eq!(vms[0].bootargs, "iterations=16");
            assert_eq!(vms[0].backend, backend);
            let disk = vms[0].disk.unwrap();
            assert_eq!((disk.offset, disk.size), (0, DISK_MIB << 20));
        }
    }

    #[test]
    fn the_initramfs_runs_the_vmm_as_init() {
        let archive = kvm_initramfs(b"vmm binary", b"guest image").unwrap();
        let text = String::from_utf8_lossy(&archive);
        for needle in [
            "dev\0",
            "dev/console\0",
            "proc\0",
            "sys\0",
            "init\0",
            "vmm binary",
            "bench-guest.bin\0",
            "guest image",
            "TRAILER!!!\0",
        ] {
            assert!(text.contains(needle), "{needle:?} missing");
        }
        assert!(archive.starts_with(b"070701"));
    }

    #[test]
    fn only_static_arm64_programs_go_in() {
        assert!(check_static_aarch64(b"#!/bin/sh\n").is_err());
    }
}
