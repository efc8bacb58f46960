//! One allocator for the hypervisor's two kinds of translation tag: VMIDs for
//! guests' stage-2 tables and ASIDs for its own EL2&0 stage-1 contexts.
//!
//! The algorithm is Linux's arm64 ASID allocator (`arch/arm64/mm/context.c`)
//! with ID pinning as in Jean-Philippe Brucker's patch "arm64: mm: Pin down
//! ASIDs for sharing mm with devices" (v2, our `shared/seed`), plus the
//! active-slot sentinel of KVM's VMID allocator (`arch/arm64/kvm/vmid.c`).
//! [`IdAllocator<Vmid>`](IdAllocator) and [`IdAllocator<Asid>`](IdAllocator)
//! run the same code; only the caller's TLB flush differs.
//!
//! # How it works
//!
//! - **Generations.** A context's ID is a 64-bit value: the hardware ID in
//!   the low `bits`, a generation above. IDs are never freed one by one; when
//!   none is left the allocator *rolls over*: it bumps the generation, which
//!   makes every context's ID stale at once, and starts a fresh bitmap. A
//!   context whose ID is of the current generation switches without the lock
//!   ([`IdAllocator::switch`]'s fast path: one compare-and-swap on the CPU's
//!   active slot); a stale one takes the lock and gets a new ID. Only the low
//!   bits reach the hardware: [`Vmid`] and [`Asid`] hold a `u16` and nothing
//!   else. ID 0 is never handed out.
//! - **Reserved.** A rollover must not take the ID of a context that is
//!   running right now. It swaps every CPU's active slot to 0 and records the
//!   value as that CPU's *reserved* ID, marked used in the new generation; a
//!   CPU that has not switched since the previous rollover (slot already 0)
//!   keeps its old reserved value. When the context next needs an ID of the
//!   new generation, a reserved copy gives it back its old one, and every
//!   copy is updated to the new generation, or the next rollover would no
//!   longer recognise it.
//! - **Flushes.** A rollover marks every CPU flush-pending; a CPU's next slow
//!   path (which the zeroed slot forces) tells it to flush its local TLB of
//!   the whole kind before using a recycled ID ([`Switch::needs_flush`]). The
//!   allocator never flushes itself.
//! - **Pinned.** A device (an SMMU stream table entry) needs a context's ID
//!   valid all the time, not just while it runs on a CPU.
//!   [`IdAllocator::pin`] puts the ID in a pinned bitmap that every rollover
//!   copies into the new generation. In `new_id` the reserved check comes
//!   BEFORE the pinned one: the seed's v1 had them the other way round, so a
//!   pinned context that was also running elsewhere left a stale reserved copy
//!   and later got a second ID while still running (see
//!   `v1_order_gives_a_running_context_a_second_id` in the tests).
//! - **Pin limit.** After a rollover, ID 0, up to one reserved ID per CPU and
//!   every pinned ID are taken, and the context that caused the rollover
//!   still needs one free ID. Hence at most `2^bits - nr_cpus - 2` pinned IDs
//!   (the seed's `NUM_USER_ASIDS - num_possible_cpus() - 2`); a pin past it
//!   is refused with [`AllocError::PinLimit`].
//! - **Sentinel.** When a CPU stops running a context (a vCPU is put),
//!   [`IdAllocator::deactivate`] stores `1 << bits` in its active slot: non-zero,
//!   so the next switch may still take the fast path, but generation 1 with
//!   ID 0, so a rollover reserves only ID 0 (already never handed out)
//!   instead of keeping the idle context's ID alive.
//!
//! # Use
//!
//! The crate is `no_std` but uses `alloc`: the bitmaps are sized for the width
//! found at run time (32 bytes each for 8-bit IDs, 8 KiB for 16-bit ones) and
//! the per-CPU state for the CPU count, each CPU's active slot on its own
//! cache line.
//!
//! ```
//! use id_alloc::{Context, VmidAllocator};
//!
//! # fn main() -> Result<(), id_alloc::AllocError> {
//! // 8-bit VMIDs (ID_AA64MMFR1_EL1.VMIDBits == 0) on 4 CPUs.
//! let vmids = VmidAllocator::new(8, 4)?;
//! let vm = Context::new(); // one per VM
//!
//! // On CPU 2, before entering one of the VM's vCPUs:
//! let switch = vmids.switch(&vm, 2)?;
//! if switch.needs_flush() {
//!     // TLBI VMALLS12E1 (this CPU only), DSB NSH.
//! }
//! let vmid = switch.id(); // into VTTBR_EL2.VMID
//! assert_ne!(vmid.get(), 0);
//!
//! // When the vCPU is put:
//! vmids.deactivate(2)?;
//! # Ok(())
//! # }
//! ```
//!
//! A context of one kind does not fit an allocator of the other:
//!
//! ```compile_fail
//! use id_alloc::{Asid, Context, VmidAllocator};
//!
//! let vmids = VmidAllocator::new(8, 1).unwrap();
//! let task: Context<Asid> = Context::new();
//! let _ = vmids.switch(&task, 0);
//! ```
//!
//! # Checking
//!
//! The fast path is exposed as its two observable steps,
//! [`IdAllocator::fast_path_load`] and [`IdAllocator::fast_path_commit`],
//! which `switch` itself calls, so a model checker can run a whole rollover
//! between them. With the `checker` feature the crate also offers state
//! snapshots, forking, and the v1 order (`IdAllocator::with_order`). Under
//! `--cfg loom` the atomics and the lock come from `loom` (`tests/loom.rs`).

#![cfg_attr(not(any(test, loom)), no_std)]
#![deny(missing_docs)]

extern crate alloc;

mod allocator;
mod bitmap;
mod context;
mod error;
mod kind;
mod stats;
mod sync;

#[cfg(test)]
mod tests;

#[cfg(any(test, feature = "checker"))]
pub use allocator::StateSnapshot;
pub use allocator::{
    FastPathProbe, IdAllocator, LocalTlbFlush, NewIdOrder, Switch, MAX_BITS, MIN_BITS,
};
pub use context::Context;
#[cfg(any(test, feature = "checker"))]
pub use context::ContextSnapshot;
pub use error::AllocError;
pub use kind::{Asid, IdKind, Vmid};
pub use stats::Stats;

/// The allocator of stage-2 VMIDs.
pub type VmidAllocator = IdAllocator<Vmid>;
/// The allocator of the hypervisor's own EL2&0 ASIDs.
pub type AsidAllocator = IdAllocator<Asid>;
