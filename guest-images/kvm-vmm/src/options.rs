//! What to boot: from the command line, or, when the VMM is a Linux
//! initramfs's `/init`, from the kernel command line.

use std::fmt;
use std::path::PathBuf;

/// vCPUs when not told: the benchmarks use two.
pub const DEFAULT_VCPUS: u32 = 2;
/// Guest RAM in MiB when not told: as much as the benchmark manifest gives
/// the bench guest under the hypervisor.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// The image `/init` boots unless `vmm.image=` names another.
pub const INIT_IMAGE: &str = "/bench-guest.bin";
/// Most vCPUs: as many as the device tree writer allows.
const MAX_VCPUS: u32 = guest_boot::MAX_VCPUS;

/// Printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: kvm-vmm [--vcpus N] [--memory MIB] [--bootargs ARGS] [--no-pin] IMAGE

Boots IMAGE (an arm64 Linux Image, such as the bench guest) under KVM with
an in-kernel vGICv3, PSCI 0.2, a PL011 console on stdout and QEMU virt's
32 empty virtio-mmio slots; exits when the guest calls SYSTEM_OFF.

  --vcpus N        vCPUs (default 2; vCPU 0 starts, the others wait for CPU_ON)
  --memory MIB     guest RAM at 0x40000000, in MiB (default 64)
  --bootargs ARGS  the guest's /chosen/bootargs
  --no-pin         leave vCPU threads unpinned (default: vCPU i on host CPU i)

As a Linux initramfs's /init (PID 1) it takes its settings from the kernel
command line instead: vmm.image=PATH (default /bench-guest.bin), vmm.vcpus=N,
vmm.memory=MIB, and every bench.KEY=VALUE becomes KEY=VALUE in the guest's
bootargs; then it powers the machine off.";

/// One boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The kernel image.
    pub image: PathBuf,
    /// Number of vCPUs, 1 to [`guest_boot::MAX_VCPUS`].
    pub vcpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// The guest's bootargs.
    pub bootargs: String,
    /// Whether vCPU `i`'s thread is pinned to host CPU `i` (modulo the CPUs).
    pub pin: bool,
}

/// Why the options were refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionsError {
    /// `--help`: not an error, but no boot either.
    Help,
    /// An option this program does not have.
    Unknown(String),
    /// An option without its value.
    MissingValue(&'static str),
    /// A value that is not a number in range.
    BadNumber {
        /// The option.
        option: &'static str,
        /// Its value.
        value: String,
    },
    /// No image named.
    NoImage,
    /// More than one image named.
    ExtraArgument(String),
}

impl std::error::Error for OptionsError {}

impl fmt::Display for OptionsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Help => f.write_str("help requested"),
            Self::Unknown(option) => write!(f, "unknown option `{option}`"),
            Self::MissingValue(option) => write!(f, "{option} needs a value"),
            Self::BadNumber { option, value } => {
                write!(f, "{option} wants a number in range, got `{value}`")
            }
            Self::NoImage => f.write_str("no IMAGE given"),
            Self::ExtraArgument(arg) => write!(f, "unexpected argument `{arg}`"),
        }
    }
}

fn vcpus(option: &'static str, value: &str) -> Result<u32, OptionsError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_VCPUS).contains(n))
        .ok_or_else(|| OptionsError::BadNumber {
            option,
            value: value.to_owned(),
        })
}

fn memory(option: &'static str, value: &str) -> Result<u64, OptionsError> {
    // At least 4 MiB: the image at 512 KiB and the device tree's 2 MiB slot.
    value
        .parse()
        .ok()
        .filter(|n| (4..=(1 << 20)).contains(n))
        .ok_or_else(|| OptionsError::BadNumber {
            option,
            value: value.to_owned(),
        })
}

/// Reads the program's arguments (without the program name).
///
/// # Errors
///
/// Every [`OptionsError`] but `BadNumber`'s kernel-command-line uses.
pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Config, OptionsError> {
    let mut args = args.into_iter();
    let mut config = Config {
        image: PathBuf::new(),
        vcpus: DEFAULT_VCPUS,
        memory_mib: DEFAULT_MEMORY_MIB,
        bootargs: String::new(),
        pin: true,
    };
    let mut image = None;
    while let Some(arg) = args.next() {
        let mut value =
            |option: &'static str| args.next().ok_or(OptionsError::MissingValue(option));
        match arg.as_str() {
            "-h" | "--help" => return Err(OptionsError::Help),
            "--vcpus" => config.vcpus = vcpus("--vcpus", &value("--vcpus")?)?,
            "--memory" => config.memory_mib = memory("--memory", &value("--memory")?)?,
            "--bootargs" => config.bootargs = value("--bootargs")?,
            "--no-pin" => config.pin = false,
            option if option.starts_with('-') => {
                return Err(OptionsError::Unknown(option.to_owned()))
            }
            path => {
                if image.replace(PathBuf::from(path)).is_some() {
                    return Err(OptionsError::ExtraArgument(path.to_owned()));
                }
            }
        }
    }
    config.image = image.ok_or(OptionsError::NoImage)?;
    Ok(config)
}

/// Reads `/init`'s settings from the kernel command line `cmdline`
/// (`/proc/cmdline`); other words are the kernel's and are skipped.
///
/// # Errors
///
/// [`OptionsError::BadNumber`] for a `vmm.vcpus=` or `vmm.memory=` out of range.
pub fn from_kernel_cmdline(cmdline: &str) -> Result<Config, OptionsError> {
    let mut config = Config {
        image: PathBuf::from(INIT_IMAGE),
        vcpus: DEFAULT_VCPUS,
        memory_mib: DEFAULT_MEMORY_MIB,
        bootargs: String::new(),
        pin: true,
    };
    let mut bootargs = Vec::new();
    for word in cmdline.split_ascii_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        match key {
            "vmm.image" => config.image = PathBuf::from(value),
            "vmm.vcpus" => config.vcpus = vcpus("vmm.vcpus", value)?,
            "vmm.memory" => config.memory_mib = memory("vmm.memory", value)?,
            _ => {
                if let Some(guest_key) = key.strip_prefix("bench.") {
                    bootargs.push(format!("{guest_key}={value}"));
                }
            }
        }
    }
    config.bootargs = bootargs.join(" ");
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Result<Config, OptionsError> {
        from_args(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn defaults_and_options() {
        let config = args("guest.bin").unwrap();
        assert_eq!(config.image, PathBuf::from("guest.bin"));
        assert_eq!((config.vcpus, config.memory_mib, config.pin), (2, 64, true));
        assert_eq!(config.bootargs, "");
        let config = args("--vcpus 4 --memory 128 --no-pin --bootargs iterations=8 g").unwrap();
        assert_eq!(
            (config.vcpus, config.memory_mib, config.pin),
            (4, 128, false)
        );
        assert_eq!(config.bootargs, "iterations=8");
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert_eq!(args(""), Err(OptionsError::NoImage));
        assert_eq!(args("a b"), Err(OptionsError::ExtraArgument("b".into())));
        assert_eq!(args("--vcpus"), Err(OptionsError::MissingValue("--vcpus")));
        assert!(matches!(
            args("--vcpus 0 g"),
            Err(OptionsError::BadNumber { .. })
        ));
        assert!(matches!(
            args("--vcpus 9 g"),
            Err(OptionsError::BadNumber { .. })
        ));
        assert!(matches!(
            args("--memory 2 g"),
            Err(OptionsError::BadNumber { .. })
        ));
        assert_eq!(
            args("--frob g"),
            Err(OptionsError::Unknown("--frob".into()))
        );
        assert_eq!(args("--help"), Err(OptionsError::Help));
    }

    #[test]
    fn the_kernel_command_line_passes_bench_words_to_the_guest() {
        let config = from_kernel_cmdline(
            "console=ttyAMA0 kvm.halt_poll_ns=0 bench.iterations=1000 vmm.vcpus=2 bench.only=hvc-null,loop-nop\n",
        )
        .unwrap();
        assert_eq!(config.image, PathBuf::from(INIT_IMAGE));
        assert_eq!(config.vcpus, 2);
        assert_eq!(config.bootargs, "iterations=1000 only=hvc-null,loop-nop");
        let config = from_kernel_cmdline("vmm.image=/other vmm.memory=32").unwrap();
        assert_eq!(config.image, PathBuf::from("/other"));
        assert_eq!(config.memory_mib, 32);
        assert!(from_kernel_cmdline("vmm.vcpus=x").is_err());
    }
}
