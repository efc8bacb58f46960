//! Command-line parsing. Hand-rolled: three subcommands and a handful of
//! options do not justify a parser dependency in a tool every build compiles.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cargo::Profile;
use crate::qemu::{self, PassthroughDevice};

/// Printed by `help` and after a usage error.
pub const USAGE: &str = "\
usage: ./run.sh [COMMAND] [OPTIONS]

commands:
  run      (default) check the host, build the hypervisor (release), boot it
           under QEMU with two Linux VMs and connect the terminal to the
           console until QEMU exits
  test     run every test: host unit tests, extra host test commands and the
           QEMU system tests; ends with `N passed, N failed`
  bench    world-switch costs: the bench guest under the hypervisor and
           under Linux KVM (a VHE host on the same QEMU machine), both with
           -icount shift=0; prints the table and writes target/bench/
           report.json, report.md and chart.svg
  setup    check for qemu-system-aarch64 >= 8.2 (installs it from
           bookworm-backports when run as root on Debian)
  help     print this text

run options:
  --smp N          number of CPUs (default 4)
  --debug          boot the debug build (has the debug-only test switches)
  --append ARGS    hypervisor command line, e.g. --append \"hyp.fault=data-abort\"
  --dtb FILE       boot with this device tree instead of QEMU's own
  --manifest FILE  the VMs to boot (default guest-images/manifests/linux.toml:
                   two Linux VMs with a shell each; the bare-metal demo is
                   guest-images/manifests/demo.toml); its images are looked
                   up next to it, then among the built guest images
                   (target/guest-images), and the test guest and the Linux
                   guest are built first if it names them
  --no-vms         boot the hypervisor without a boot bundle
  --disk FILE      the host disk (a raw image) whose regions back the VMs'
                   `disk`s (default target/hyp-tools/run/disk.img, made or
                   grown to fit the manifest's regions and kept from run to
                   run; no disk when no VM has one)
  --kernel FILE    boot FILE (an ELF, converted, or a flat image) instead of
                   building the hypervisor
  --passthrough D  add a PCI function for a VM to be given (the manifest's
                   `passthrough`): `edu` (QEMU's DMA teaching device) or
                   `blk:FILE` (a virtio-blk-pci disk on a raw image, its
                   DMA through the SMMU); the first goes to 00:08.0, then
                   00:09.0, 00:0a.0, 00:0b.0 (repeat the option)
  --timeout SECS   kill QEMU after SECS seconds (default: no limit when
                   stdin is a terminal, 120 otherwise)
  -- QEMU_ARGS...  everything after `--` is appended to the QEMU command line
                   (e.g. `-- -s -S` to wait for gdb)

bench options:
  --iterations N   measured iterations of each benchmark (default 65536)
  --runs K         boot each side K times and check the counts agree
                   (default 2)
  -v, --verbose    stream the consoles

test options:
  -v, --verbose    stream each system test's console while it runs
  --kernel FILE    boot FILE in every system test instead of building the
                   hypervisor (an ELF, converted, or a flat image)
  FILTER           run only the host test commands and system tests whose
                   name contains FILTER";

/// Default wall-clock limit for `run` when nobody is at the terminal:
/// generous, since TCG on a small host is slow. With a terminal there is no
/// limit: the default VMs run shells until their user exits them.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Default CPU count for `run`: matches the main boot system test.
const DEFAULT_SMP: u32 = 4;

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Boot the hypervisor interactively.
    Run(RunOptions),
    /// Run every test.
    Test(TestOptions),
    /// Measure world-switch costs against Linux KVM.
    Bench(BenchOptions),
    /// Check (and if possible install) the host requirements.
    Setup,
    /// Print usage.
    Help,
}

/// Options of `run`.
#[derive(Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// Number of emulated CPUs.
    pub smp: u32,
    /// Which build of the hypervisor to boot.
    pub profile: Profile,
    /// Hypervisor command line (QEMU `-append`).
    pub append: Option<String>,
    /// Device tree to pass instead of QEMU's generated one.
    pub dtb: Option<PathBuf>,
    /// The manifest of the VMs to boot (None: no boot bundle). The default is
    /// relative to the workspace root; one given by the user to their
    /// working directory.
    pub manifest: Option<Manifest>,
    /// Image to boot instead of building the hypervisor.
    pub kernel: Option<PathBuf>,
    /// Wall-clock limit after which QEMU is killed; `None` for the default
    /// (see [`DEFAULT_RUN_TIMEOUT`]).
    pub timeout: Option<Duration>,
    /// The host disk image instead of the kept one in the scratch directory.
    pub disk: Option<PathBuf>,
    /// Extra arguments appended verbatim to the QEMU command line: those
    /// adding the `--passthrough` functions, then those after `--`.
    pub qemu_args: Vec<String>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            smp: DEFAULT_SMP,
            profile: Profile::Release,
            append: None,
            dtb: None,
            manifest: Some(Manifest::Default),
            kernel: None,
            timeout: None,
            disk: None,
            qemu_args: Vec::new(),
        }
    }
}

/// Where the manifest for `run` comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Manifest {
    /// [`DEFAULT_MANIFEST`].
    Default,
    /// A file the user named.
    User(PathBuf),
}

/// What `run` boots by default, from the workspace root: two Linux VMs.
pub const DEFAULT_MANIFEST: &str = "guest-images/manifests/linux.toml";

/// Options of `test`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TestOptions {
    /// Only run tests whose name contains this.
    pub filter: Option<String>,
    /// Echo system tests' serial output live.
    pub verbose: bool,
    /// Image to boot instead of building the hypervisor.
    pub kernel: Option<PathBuf>,
}

/// Options of `bench`.
#[derive(Debug, PartialEq, Eq)]
pub struct BenchOptions {
    /// Measured iterations of each benchmark; the default if `None`.
    pub iterations: Option<u64>,
    /// How many times each side boots (the counts must agree).
    pub runs: u32,
    /// Echo the consoles live.
    pub verbose: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            iterations: None,
            runs: DEFAULT_BENCH_RUNS,
            verbose: false,
        }
    }
}

/// Boots of each side by default: two, so determinism is checked.
const DEFAULT_BENCH_RUNS: u32 = 2;

/// Most boots of each side `--runs` accepts.
const MAX_BENCH_RUNS: u32 = 10;

/// Parses the arguments after the program name.
///
/// # Errors
///
/// Unknown commands or options, missing or malformed option values.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Ok(Command::Run(RunOptions::default()));
    };
    match first.as_str() {
        "run" => parse_run(args).map(Command::Run),
        "test" => parse_test(args).map(Command::Test),
        "bench" => parse_bench(args).map(Command::Bench),
        "setup" => no_more(args).map(|()| Command::Setup),
        "help" | "-h" | "--help" => Ok(Command::Help),
        // `./run.sh --smp 2` reads naturally as "run with two CPUs".
        option if option.starts_with('-') => {
            parse_run(std::iter::once(first).chain(args)).map(Command::Run)
        }
        other => bail!("unknown command `{other}`"),
    }
}

fn parse_run(args: impl IntoIterator<Item = String>) -> Result<RunOptions> {
    let mut options = RunOptions::default();
    let mut passthrough = Vec::new();
    let mut user_qemu_args = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--smp" => {
                let value = value_of(&arg, args.next())?;
                options.smp = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .with_context(|| format!("--smp wants a positive number, got `{value}`"))?;
            }
            "--debug" => options.profile = Profile::Debug,
            "--release" => options.profile = Profile::Release,
            "--append" => options.append = Some(value_of(&arg, args.next())?),
            "--dtb" => options.dtb = Some(PathBuf::from(value_of(&arg, args.next())?)),
            "--kernel" => options.kernel = Some(PathBuf::from(value_of(&arg, args.next())?)),
            "--manifest" => {
                options.manifest =
                    Some(Manifest::User(PathBuf::from(value_of(&arg, args.next())?)));
            }
            "--no-vms" => options.manifest = None,
            "--disk" => options.disk = Some(PathBuf::from(value_of(&arg, args.next())?)),
            "--timeout" => {
                let value = value_of(&arg, args.next())?;
                let secs: u64 = value
                    .parse()
                    .with_context(|| format!("--timeout wants seconds, got `{value}`"))?;
                options.timeout = Some(Duration::from_secs(secs));
            }
            "--passthrough" => {
                passthrough.push(parse_passthrough(&value_of(&arg, args.next())?)?);
            }
            "--" => {
                user_qemu_args = args.by_ref().collect();
            }
            other => bail!("unknown option `{other}` for `run`"),
        }
    }
    options.qemu_args = qemu::passthrough_args(&passthrough)?;
    options.qemu_args.extend(user_qemu_args);
    Ok(options)
}

/// A `--passthrough` value: `edu` or `blk:FILE`.
fn parse_passthrough(value: &str) -> Result<PassthroughDevice> {
    match value.split_once(':') {
        None if value == "edu" => Ok(PassthroughDevice::Edu),
        Some(("blk", file)) if !file.is_empty() => Ok(PassthroughDevice::VirtioBlk(
            crate::cargo::from_invocation_dir(std::path::Path::new(file)),
        )),
        _ => bail!("--passthrough wants `edu` or `blk:FILE`, got `{value}`"),
    }
}

fn parse_test(args: impl IntoIterator<Item = String>) -> Result<TestOptions> {
    let mut options = TestOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-v" | "--verbose" => options.verbose = true,
            "--kernel" => options.kernel = Some(PathBuf::from(value_of(&arg, args.next())?)),
            option if option.starts_with('-') => bail!("unknown option `{option}` for `test`"),
            filter => {
                if options.filter.replace(filter.to_owned()).is_some() {
                    bail!("`test` takes at most one FILTER");
                }
            }
        }
    }
    Ok(options)
}

fn parse_bench(args: impl IntoIterator<Item = String>) -> Result<BenchOptions> {
    let mut options = BenchOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                let value = value_of(&arg, args.next())?;
                options.iterations =
                    Some(value.parse().ok().filter(|&n| n > 0).with_context(|| {
                        format!("--iterations wants a positive number, got `{value}`")
                    })?);
            }
            "--runs" => {
                let value = value_of(&arg, args.next())?;
                options.runs = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_BENCH_RUNS).contains(n))
                    .with_context(|| {
                        format!("--runs wants a number from 1 to {MAX_BENCH_RUNS}, got `{value}`")
                    })?;
            }
            "-v" | "--verbose" => options.verbose = true,
            other => bail!("unknown option `{other}` for `bench`"),
        }
    }
    Ok(options)
}

fn value_of(option: &str, value: Option<String>) -> Result<String> {
    value.with_context(|| format!("{option} needs a value"))
}

fn no_more(mut args: impl Iterator<Item = String>) -> Result<()> {
    match args.next() {
        Some(extra) => bail!("unexpected argument `{extra}`"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(line: &str) -> Result<Command> {
        parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn no_arguments_means_run_with_defaults() {
        assert_eq!(parse_str("").unwrap(), Command::Run(RunOptions::default()));
    }

    #[test]
    fn run_options_are_parsed() {
        let Command::Run(options) = parse_str(
            "run --smp 2 --debug --append hyp.fault=data-abort --timeout 30 --disk d.img -- -s -S",
        )
        .unwrap() else {
            panic!("not a run command");
        };
        assert_eq!(options.smp, 2);
        assert_eq!(options.profile, Profile::Debug);
        assert_eq!(options.append.as_deref(), Some("hyp.fault=data-abort"));
        assert_eq!(options.timeout, Some(Duration::from_secs(30)));
        assert_eq!(options.disk, Some(PathBuf::from("d.img")));
        assert_eq!(options.qemu_args, ["-s", "-S"]);
    }

    #[test]
    fn passthrough_devices_come_before_the_users_qemu_args() {
        let Command::Run(options) =
            parse_str("run --passthrough edu --passthrough blk:/d.img -- -s").unwrap()
        else {
            panic!("not a run command");
        };
        assert_eq!(
            options.qemu_args,
            [
                "-device",
                "edu,addr=08.0,dma_mask=0xffffffffffff",
                "-drive",
                "file=/d.img,if=none,format=raw,id=pt09",
                "-device",
                "virtio-blk-pci,drive=pt09,disable-legacy=on,iommu_platform=on,addr=09.0",
                "-s",
            ]
        );
        assert!(parse_str("run --passthrough nvme").is_err());
        assert!(parse_str("run --passthrough blk:").is_err());
        assert!(parse_str("run --passthrough").is_err());
        assert!(parse_str(
            "run --passthrough edu --passthrough edu --passthrough edu --passthrough edu --passthrough edu"
        )
        .is_err());
    }

    #[test]
    fn bare_options_imply_run() {
        let Command::Run(options) = parse_str("--smp 8").unwrap() else {
            panic!("not a run command");
        };
        assert_eq!(options.smp, 8);
    }

    #[test]
    fn test_takes_a_filter_and_verbose() {
        assert_eq!(
            parse_str("test -v boot").unwrap(),
            Command::Test(TestOptions {
                filter: Some("boot".into()),
                verbose: true,
                kernel: None,
            })
        );
    }

    #[test]
    fn bench_takes_iterations_runs_and_verbose() {
        assert_eq!(
            parse_str("bench").unwrap(),
            Command::Bench(BenchOptions::default())
        );
        assert_eq!(
            parse_str("bench --iterations 64 --runs 3 -v").unwrap(),
            Command::Bench(BenchOptions {
                iterations: Some(64),
                runs: 3,
                verbose: true,
            })
        );
        assert!(parse_str("bench --iterations 0").is_err());
        assert!(parse_str("bench --runs 0").is_err());
        assert!(parse_str("bench --runs 11").is_err());
        assert!(parse_str("bench extra").is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(parse_str("frobnicate").is_err());
        assert!(parse_str("run --smp 0").is_err());
        assert!(parse_str("run --smp").is_err());
        assert!(parse_str("run --bogus").is_err());
        assert!(parse_str("setup extra").is_err());
        assert!(parse_str("test a b").is_err());
    }
}
