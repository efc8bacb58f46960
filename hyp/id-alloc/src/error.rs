//! The allocator's one error type.

use core::fmt;

/// Why an allocator operation was refused. Every variant carries the value
/// that was wrong where there is one; none of them leaves the allocator in a
/// different state than before the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AllocError {
    /// The ID width is outside what the allocator supports
    /// ([`MIN_BITS`](crate::MIN_BITS)`..=`[`MAX_BITS`](crate::MAX_BITS)).
    InvalidWidth(u32),
    /// The allocator must serve at least one CPU.
    NoCpus,
    /// More CPUs than the ID space can serve: every CPU may hold a reserved
    /// ID across a rollover, ID 0 is never handed out, and one ID must stay
    /// free afterwards, so `nr_cpus <= 2^bits - 2`.
    TooManyCpus {
        /// CPUs asked for.
        requested: usize,
        /// The most this ID width allows.
        max: usize,
    },
    /// A CPU index at or past the `nr_cpus` given at construction.
    InvalidCpu(usize),
    /// Pinning one more ID would leave a rollover without a free ID; the
    /// caller should fail the operation that needed the pin (for example a
    /// device attach).
    PinLimit {
        /// The most IDs that may be pinned at once (`2^bits - nr_cpus - 2`).
        limit: u32,
    },
    /// `unpin` of a context that is not pinned.
    NotPinned,
    /// A context's pin count would overflow `u32`.
    PinCountOverflow,
    /// The heap could not provide the allocator's bitmaps.
    OutOfMemory,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidWidth(bits) => write!(f, "unsupported ID width of {bits} bits"),
            Self::NoCpus => f.write_str("an ID allocator needs at least one CPU"),
            Self::TooManyCpus { requested, max } => {
                write!(
                    f,
                    "{requested} CPUs requested, this ID width serves at most {max}"
                )
            }
            Self::InvalidCpu(cpu) => write!(f, "CPU index {cpu} out of range"),
            Self::PinLimit { limit } => write!(f, "pin limit of {limit} IDs reached"),
            Self::NotPinned => f.write_str("context is not pinned"),
            Self::PinCountOverflow => f.write_str("context pin count overflow"),
            Self::OutOfMemory => f.write_str("out of memory for the ID bitmaps"),
        }
    }
}

impl core::error::Error for AllocError {}
