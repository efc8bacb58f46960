//! The bootargs: space-separated `key=value` words. `test=<mode>` picks the
//! mode (default `hello`); the other keys are the modes' parameters. Unknown
//! keys are ignored, so the hypervisor or a test runner may add its own.

use core::fmt;
use guest_rt::bootargs::value;

/// Rounds of the isolation test when `rounds=` is not given.
const DEFAULT_ROUNDS: u32 = 200;
/// Seed of the fuzz test when `seed=` is not given.
const DEFAULT_SEED: u64 = 1;
/// Operations of the fuzz test when `ops=` is not given.
const DEFAULT_OPS: u64 = 10_000;
/// Stray DMAs of the DMA test when `count=` is not given.
const DEFAULT_DMA_COUNT: u64 = 1;
/// Pause after each stray DMA when `gap_ms=` is not given: with the
/// transfer's own 100 ms, about five a second, below the hypervisor's limit
/// of eight logged SMMU events a second.
const DEFAULT_DMA_GAP_MS: u64 = 100;
/// Bytes of each stray DMA when `bytes=` is not given: the device's whole
/// buffer.
const DEFAULT_DMA_BYTES: u64 = 4096;
/// Heartbeats of the DMA test after its stray DMAs when `beats=` is not
/// given.
const DEFAULT_BEATS: u64 = 4;

/// What the guest is to test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Print a greeting and stop.
    Hello,
    /// PSCI and SMCCC calls, starting and stopping vCPUs.
    Psci,
    /// Accesses outside the VM must raise synchronous external aborts.
    Abort,
    /// Fill RAM with a pattern and check that nothing else changes it.
    Isolation {
        /// This VM's pattern.
        pattern: u64,
        /// The other VM's pattern, which must never show up here.
        peer: Option<u64>,
        /// How many times to yield and check.
        rounds: u32,
    },
    /// Random hypercalls and accesses; the hypervisor must keep answering.
    Fuzz {
        /// PRNG seed.
        seed: u64,
        /// Number of operations.
        ops: u64,
    },
    /// SYSTEM_RESET must restart the VM with its RAM kept.
    Reset,
    /// Echo each line received on the UART until `quit`.
    Echo,
    /// Fill a page with a pattern and check it until `quit` on the UART.
    Canary {
        /// IPA of the page; `None`: the middle of RAM.
        page: Option<u64>,
    },
    /// Drive a passthrough `edu` device: a DMA within the VM's RAM, then
    /// DMAs to addresses outside it, which the SMMU must stop.
    DmaOutside {
        /// The first stray DMA's target address.
        target: u64,
        /// How far apart the targets are.
        stride: u64,
        /// How many targets.
        count: u32,
        /// Bytes each stray DMA writes.
        bytes: u64,
        /// Pause after each stray DMA, in milliseconds.
        gap_ms: u64,
        /// Heartbeats (half a second apart) after the stray DMAs.
        beats: u32,
    },
}

impl Mode {
    /// The mode's name, as in `test=<name>`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello => "hello",
            Self::Psci => "psci",
            Self::Abort => "abort",
            Self::Isolation { .. } => "isolation",
            Self::Fuzz { .. } => "fuzz",
            Self::Reset => "reset",
            Self::Echo => "echo",
            Self::Canary { .. } => "canary",
            Self::DmaOutside { .. } => "dma-outside",
        }
    }
}

/// Everything the bootargs select.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// The test mode.
    pub mode: Mode,
}

/// Why the bootargs were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootargsError<'a> {
    /// `test=` names no mode.
    UnknownMode(&'a str),
    /// The mode needs a parameter that is missing.
    Missing {
        /// The mode.
        mode: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A value is malformed.
    BadValue {
        /// The key.
        key: &'static str,
        /// Its value.
        value: &'a str,
        /// What it should be.
        expected: &'static str,
    },
}

impl fmt::Display for BootargsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownMode(mode) => write!(f, "unknown test mode \"{mode}\""),
            Self::Missing { mode, key } => write!(f, "test={mode} needs {key}="),
            Self::BadValue {
                key,
                value,
                expected,
            } => write!(f, "{key}=\"{value}\" is not {expected}"),
        }
    }
}

/// A hex number, with or without `0x`.
fn hex<'a>(key: &'static str, value: &'a str) -> Result<u64, BootargsError<'a>> {
    guest_rt::bootargs::hex(value).ok_or(BootargsError::BadValue {
        key,
        value,
        expected: "a hex number",
    })
}

/// A decimal number, or a hex one with `0x`.
fn number<'a>(key: &'static str, value: &'a str) -> Result<u64, BootargsError<'a>> {
    guest_rt::bootargs::number(value).ok_or(BootargsError::BadValue {
        key,
        value,
        expected: "a number",
    })
}

/// `key`'s value as a number, or `default`.
fn number_or<'a>(
    bootargs: &'a str,
    key: &'static str,
    default: u64,
) -> Result<u64, BootargsError<'a>> {
    value(bootargs, key).map_or(Ok(default), |v| number(key, v))
}

/// `key`'s value as a 32-bit number, or `default`.
fn number_u32<'a>(
    bootargs: &'a str,
    key: &'static str,
    default: u64,
) -> Result<u32, BootargsError<'a>> {
    u32::try_from(number_or(bootargs, key, default)?).map_err(|_| BootargsError::BadValue {
        key,
        value: value(bootargs, key).unwrap_or(""),
        expected: "a 32-bit number",
    })
}

/// Reads the options from `bootargs`.
///
/// # Errors
///
/// [`BootargsError::UnknownMode`] for an unknown `test=`,
/// [`BootargsError::Missing`] for an isolation test without `pattern=` or a
/// DMA test without `target=`, and [`BootargsError::BadValue`] for a
/// malformed number value.
pub fn parse(bootargs: &str) -> Result<Options, BootargsError<'_>> {
    let mode = match value(bootargs, "test").unwrap_or("hello") {
        "hello" => Mode::Hello,
        "psci" => Mode::Psci,
        "abort" => Mode::Abort,
        "reset" => Mode::Reset,
        "echo" => Mode::Echo,
        "isolation" => {
            let pattern = value(bootargs, "pattern").ok_or(BootargsError::Missing {
                mode: "isolation",
                key: "pattern",
            })?;
            let rounds = number_or(bootargs, "rounds", DEFAULT_ROUNDS.into())?;
            Mode::Isolation {
                pattern: hex("pattern", pattern)?,
                peer: value(bootargs, "peer")
                    .map(|v| hex("peer", v))
                    .transpose()?,
                rounds: u32::try_from(rounds).map_err(|_| BootargsError::BadValue {
                    key: "rounds",
                    value: value(bootargs, "rounds").unwrap_or(""),
                    expected: "a 32-bit number",
                })?,
            }
        }
        "canary" => Mode::Canary {
            page: value(bootargs, "page")
                .map(|v| hex("page", v))
                .transpose()?,
        },
        "dma-outside" => {
            let target = value(bootargs, "target").ok_or(BootargsError::Missing {
                mode: "dma-outside",
                key: "target",
            })?;
            Mode::DmaOutside {
                target: hex("target", target)?,
                stride: value(bootargs, "stride").map_or(Ok(0), |v| hex("stride", v))?,
                count: number_u32(bootargs, "count", DEFAULT_DMA_COUNT)?,
                bytes: number_or(bootargs, "bytes", DEFAULT_DMA_BYTES)?,
                gap_ms: number_or(bootargs, "gap_ms", DEFAULT_DMA_GAP_MS)?,
                beats: number_u32(bootargs, "beats", DEFAULT_BEATS)?,
            }
        }
        "fuzz" => Mode::Fuzz {
            seed: number_or(bootargs, "seed", DEFAULT_SEED)?,
            ops: number_or(bootargs, "ops", DEFAULT_OPS)?,
        },
        other => return Err(BootargsError::UnknownMode(other)),
    };
    Ok(Options { mode })
}
