//! The bootargs: space-separated `key=value` words; unknown keys are
//! ignored (a loader may add its own).
//!
//! | key           | meaning                                                  |
//! |---------------|----------------------------------------------------------|
//! | `iterations=` | measured runs of each benchmark (default 65536)          |
//! | `warmup=`     | unmeasured runs before them (default iterations / 8, at most 8192, at least 1) |
//! | `only=`       | comma-separated benchmark names to run (default: all)    |

use core::fmt;
use guest_rt::bootargs::value;

/// Measured iterations when `iterations=` is not given: 2^16.
pub const DEFAULT_ITERATIONS: u64 = 1 << 16;
/// Most warm-up iterations by default.
const MAX_DEFAULT_WARMUP: u64 = 8192;

/// What the bootargs ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Measured iterations of each benchmark, at least 1.
    pub iterations: u64,
    /// Warm-up iterations before them.
    pub warmup: u64,
    /// The benchmarks to run, if not all: a comma-separated list.
    pub only: Option<&'static str>,
}

impl Options {
    /// Whether benchmark `name` is to run.
    pub fn runs(&self, name: &str) -> bool {
        self.only
            .is_none_or(|list| list.split(',').any(|n| n == name))
    }
}

/// A malformed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadValue {
    /// The key.
    pub key: &'static str,
    /// Its value.
    pub value: &'static str,
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}=\"{}\" is not a positive number (decimal, or hex with 0x)",
            self.key, self.value
        )
    }
}

/// `key`'s value as a positive number (decimal, or hex with `0x`), if given.
fn number(bootargs: &'static str, key: &'static str) -> Result<Option<u64>, BadValue> {
    let Some(text) = value(bootargs, key) else {
        return Ok(None);
    };
    match guest_rt::bootargs::number(text) {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(BadValue { key, value: text }),
    }
}

/// Reads the options from `bootargs`.
///
/// # Errors
///
/// [`BadValue`] for an `iterations=` or `warmup=` that is not a positive number.
pub fn parse(bootargs: &'static str) -> Result<Options, BadValue> {
    let iterations = number(bootargs, "iterations")?.unwrap_or(DEFAULT_ITERATIONS);
    let warmup = number(bootargs, "warmup")?
        .unwrap_or_else(|| (iterations / 8).clamp(1, MAX_DEFAULT_WARMUP));
    Ok(Options {
        iterations,
        warmup,
        only: value(bootargs, "only"),
    })
}
