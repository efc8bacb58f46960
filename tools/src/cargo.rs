//! Where the workspace is, and building the hypervisor, its programs and
//! the test guest with cargo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use anyhow::{ensure, Context, Result};

use crate::bundle::Program;
use crate::image;

/// The only target the hypervisor builds for: without floating point or
/// SIMD, so that the compiler never touches those registers and a guest's
/// can stay live across its exits (see `hyp/el2/src/vcpu.rs`).
pub const HYP_TARGET: &str = "aarch64-unknown-none-softfloat";

/// The target of the bare-metal guests and of `counter-check`.
pub const GUEST_TARGET: &str = "aarch64-unknown-none";

/// The hypervisor's package name.
const HYP_PACKAGE: &str = "hyp";

/// The virtio backend task's package (and binary) name, which is also its
/// entry name in every boot bundle: the hypervisor looks its program up by
/// it (`hyp/el2/src/virtio/forward.rs`, `PROGRAM`).
pub const VIRTIO_TASK: &str = "virtio-task";

/// The bare-metal test guest's package (and binary) name.
const TEST_GUEST_PACKAGE: &str = "test-guest";

/// The Linux guest's counter checker: package (and binary) name.
const COUNTER_CHECK_PACKAGE: &str = "counter-check";

/// A cargo build profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Profile {
    /// `dev`: has the debug-only test switches the system tests use.
    Debug,
    /// `image` (release with link-time optimisation): what `run` boots.
    Release,
}

impl Profile {
    /// The directory cargo puts this profile's artifacts in.
    pub fn dir_name(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "image",
        }
    }
}

/// The workspace root. The tool is always run through cargo from this
/// repository (`./run.sh`), so the compile-time manifest path is the truth.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tools/ lives inside the workspace")
        .to_path_buf()
}

/// Resolves a path the user typed: `run.sh` changes to the workspace root
/// before starting us and passes the caller's directory in `HYP_TOOLS_CWD`.
pub fn from_invocation_dir(path: &Path) -> PathBuf {
    match std::env::var_os("HYP_TOOLS_CWD") {
        Some(dir) if path.is_relative() => Path::new(&dir).join(path),
        _ => path.to_path_buf(),
    }
}

/// cargo's target directory: `CARGO_TARGET_DIR` if set, else `<root>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    match std::env::var_os("CARGO_TARGET_DIR") {
        // A relative CARGO_TARGET_DIR is relative to where cargo runs: the root.
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// A scratch directory for the tool's own files (edited DTBs and the like).
pub fn scratch_dir(what: &str) -> Result<PathBuf> {
    let dir = target_dir().join("hyp-tools").join(what);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A `cargo` command run from the workspace root. Uses `$CARGO` when cargo
/// started us, so the nested build uses the same toolchain.
pub fn cargo_command() -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(program);
    command.current_dir(workspace_root());
    command
}

/// Builds the hypervisor in `profile` and converts it to the flat image QEMU
/// boots; returns the image's path (`hyp.bin` next to the ELF). Its
/// programs ([`build_programs`]) are built with it, so that bundles made
/// later in the run find them built.
///
/// # Errors
///
/// The build fails, or the ELF cannot be converted (see [`image::elf_to_flat`]).
pub fn build_hypervisor(profile: Profile) -> Result<PathBuf> {
    let image = build_flat_image(HYP_PACKAGE, profile, "hyp.bin")?;
    build_programs(profile)?;
    Ok(image)
}

/// Builds the programs the hypervisor runs as its own EL0 tasks, which
/// every boot bundle carries ([`crate::bundle::assemble`]): the virtio
/// backend task, [`VIRTIO_TASK`], in `profile`, like the hypervisor it goes
/// with. Each profile is built once per run of the tool.
///
/// # Errors
///
/// The build fails.
pub fn build_programs(profile: Profile) -> Result<Vec<Program>> {
    static BUILT: Mutex<BTreeMap<Profile, Vec<Program>>> = Mutex::new(BTreeMap::new());
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(programs) = built.get(&profile) {
        return Ok(programs.clone());
    }
    let programs = vec![Program {
        name: VIRTIO_TASK.to_string(),
        path: build_elf(VIRTIO_TASK, profile)?,
    }];
    built.insert(profile, programs.clone());
    Ok(programs)
}

/// Builds the bare-metal test guest (always optimised: it is a workload,
/// not something to debug) and returns its flat image,
/// `<target>/guest-images/test-guest.bin`, where manifests find it.
///
/// # Errors
///
/// As for [`build_hypervisor`].
pub fn build_test_guest() -> Result<PathBuf> {
    let built = build_flat_image(TEST_GUEST_PACKAGE, Profile::Release, "test-guest.bin")?;
    let dir = guest_images_dir()?;
    let bin = dir.join("test-guest.bin");
    std::fs::copy(&built, &bin)
        .with_context(|| format!("copying {} to {}", built.display(), bin.display()))?;
    Ok(bin)
}

/// Builds `counter-check`, the static arm64 Linux program the Linux guest's
/// initramfs carries (always optimised, like the test guest), and returns
/// its ELF.
///
/// # Errors
///
/// The build fails.
pub fn build_counter_check() -> Result<PathBuf> {
    build_elf(COUNTER_CHECK_PACKAGE, Profile::Release)
}

/// Where built guest images go; manifests name them relative to it.
pub fn guest_images_dir() -> Result<PathBuf> {
    let dir = target_dir().join("guest-images");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Builds `package`'s binary of the same name for the bare-metal target and
/// converts it to a flat image named `flat_name` next to the ELF.
fn build_flat_image(package: &str, profile: Profile, flat_name: &str) -> Result<PathBuf> {
    let elf = build_elf(package, profile)?;
    let bin = elf.with_file_name(flat_name);
    image::convert_file(&elf, &bin)?;
    Ok(bin)
}

/// Builds `package`'s binary of the same name for the bare-metal target;
/// returns the ELF's path.
fn build_elf(package: &str, profile: Profile) -> Result<PathBuf> {
    // The hypervisor's own programs share its target: no floating point.
    let target = if package == HYP_PACKAGE || package == VIRTIO_TASK {
        HYP_TARGET
    } else {
        GUEST_TARGET
    };
    let mut command = cargo_command();
    command.args(["build", "-p", package, "--target", target]);
    if profile == Profile::Release {
        command.args(["--profile", "image"]);
    }
    println!("build: {}", describe(&command));
    let status = command.status().context("running cargo build")?;
    ensure!(status.success(), "building {package} failed ({status})");

    Ok(target_dir()
        .join(target)
        .join(profile.dir_name())
        .join(package))
}

/// A command as a developer would type it, for logs.
pub fn describe(command: &Command) -> String {
    // The program's file name only: `$CARGO` is a long toolchain path.
    let program = Path::new(command.get_program());
    let mut line = program
        .file_name()
        .unwrap_or(program.as_os_str())
        .to_string_lossy()
        .into_owned();
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        line.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
            line.push_str(&format!("{arg:?}"));
        } else {
            line.push_str(&arg);
        }
    }
    line
}
