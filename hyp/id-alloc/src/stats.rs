//! Counters an allocator keeps for the hypervisor to print.

use core::fmt;

/// A consistent set of an allocator's counters, from
/// [`IdAllocator::stats`](crate::IdAllocator::stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// `"VMID"` or `"ASID"`.
    pub kind: &'static str,
    /// ID width.
    pub bits: u32,
    /// CPUs served.
    pub nr_cpus: usize,
    /// Current generation (starts at 1, one more per rollover).
    pub generation: u64,
    /// Rollovers so far.
    pub rollovers: u64,
    /// IDs taken in the current generation (allocated, reserved or pinned).
    pub ids_in_use: u32,
    /// IDs that can be handed out: `2^bits - 1`.
    pub ids_total: u32,
    /// IDs pinned now.
    pub pinned: u32,
    /// Pin limit: `2^bits - nr_cpus - 2`.
    pub max_pinned: u32,
    /// Switches that told their CPU to flush its TLB.
    pub flushes_requested: u64,
    /// Switches completed on the lock-free fast path.
    pub fast_path_hits: u64,
    /// Switches that took the lock.
    pub slow_path_entries: u64,
    /// Times a context with a stale (or no) ID needed one of the current
    /// generation.
    pub new_ids: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} allocator ({} bits, {} CPUs): generation {} after {} rollovers; \
             {}/{} IDs in use, {}/{} pinned; {} local flushes requested; \
             {} fast-path and {} slow-path switches, {} new IDs",
            self.kind,
            self.bits,
            self.nr_cpus,
            self.generation,
            self.rollovers,
            self.ids_in_use,
            self.ids_total,
            self.pinned,
            self.max_pinned,
            self.flushes_requested,
            self.fast_path_hits,
            self.slow_path_entries,
            self.new_ids,
        )
    }
}
