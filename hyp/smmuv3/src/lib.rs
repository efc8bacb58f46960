//! The Arm SMMUv3 as pure logic: what the hypervisor writes to it and reads
//! from it, without touching it.
//!
//! Reference: Arm System Memory Management Unit Architecture Specification,
//! SMMU architecture version 3 (Arm IHI 0070, "the spec" below). Section
//! numbers are those of issue F.a and later.
//!
//! - [`regs`]: the programming interface's registers as typed
//!   `tock-registers` blocks (pages 0 and 1, spec chapter 6), and
//!   [`Features`], what the ID registers say the SMMU can do.
//! - [`Ste`]: the 64-byte Stream Table Entry (spec 5.2) with encoders for
//!   the three configurations this hypervisor uses: abort, bypass, and
//!   stage 2 only, whose translation parameters come from the same VTCR_EL2
//!   value the CPU uses ([`S2Vtcr`]).
//! - [`Cd`]: the 64-byte Context Descriptor (spec 5.4) for a stream's
//!   stage-1 translation with a task's table and ASID, from the same TCR
//!   value the CPU uses ([`S1Tcr`]); [`Ste::stage1`] points a stream at a
//!   one-entry CD table in a [`StreamWorld`].
//! - [`cd_update_sequence`]: binding, unbinding and changing a live CD,
//!   with the ASID invalidations that keep the SMMU's TLB from holding
//!   another context's translations under an ASID.
//! - [`ste_update_sequence`]: the order of 64-bit writes and invalidations
//!   that changes a live entry without the SMMU ever using half of one and
//!   half of another (spec 3.21.3).
//! - [`Command`]: command queue entries (spec 4), and [`CommandError`], the
//!   command queue's error codes.
//! - [`Event`]: event queue records decoded (spec 7.3).
//! - [`Ring`]: a queue's producer and consumer indexes with their wrap bits
//!   (spec 3.5).
//!
//! Nothing here reads or writes memory-mapped registers or issues barriers:
//! the hypervisor's `smmu` module does that, and everything it decides with
//! runs in host tests. Every decoder accepts any bit pattern; none panics.

#![no_std]
#![deny(missing_docs)]

mod cd;
mod cd_update;
mod command;
mod event;
mod features;
mod queue;
pub mod regs;
mod ste;
mod update;

pub use cd::{Cd, CdError, S1Tcr, Stage1Context, CD_BYTES, CD_WORDS};
pub use cd_update::{cd_update_sequence, CdStep, MAX_CD_UPDATE_STEPS};
pub use command::{Command, CommandError};
pub use event::{Access, Event, FaultClass, FaultKind, TranslationFault};
pub use features::{AddressSize, Features, FeaturesError, Granule};
pub use queue::{QueueError, Ring};
pub use ste::{S2Vtcr, Stage1Entry, Stage2Entry, Ste, SteError, SteKind, StreamWorld, STE_WORDS};
pub use update::{ste_update_sequence, StepWrite, MAX_UPDATE_STEPS};

use core::fmt;

/// A StreamID: which device a transaction comes from (spec 3.2). On QEMU
/// `virt`, and on systems whose firmware says so with an identity
/// `iommu-map`, a PCI function's StreamID is its routing ID
/// (bus << 8 | device << 3 | function).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct StreamId(pub u32);

impl StreamId {
    /// The StreamID as the hardware fields hold it.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({:#x})", self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Bits `[hi:lo]` of `value`, shifted down.
const fn bits(value: u64, hi: u32, lo: u32) -> u64 {
    (value >> lo) & (u64::MAX >> (63 - (hi - lo)))
}

/// Bit `n` of `value`.
const fn bit(value: u64, n: u32) -> bool {
    (value >> n) & 1 == 1
}

/// `value` placed in bits `[hi:lo]`, cut to fit.
const fn field(value: u64, hi: u32, lo: u32) -> u64 {
    (value & (u64::MAX >> (63 - (hi - lo)))) << lo
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::format;

    #[test]
    fn stream_ids_print_as_hex() {
        assert_eq!(format!("{}", StreamId(0x28)), "0x28");
        assert_eq!(format!("{:?}", StreamId(0x28)), "StreamId(0x28)");
    }

    #[test]
    fn bit_helpers() {
        assert_eq!(bits(0xabcd, 15, 8), 0xab);
        assert_eq!(bits(u64::MAX, 63, 0), u64::MAX);
        assert!(bit(0x8000_0000_0000_0000, 63));
        assert_eq!(field(0x1ff, 7, 4), 0xf0);
        assert_eq!(field(1, 63, 63), 1 << 63);
    }
}
