//! The generation-plus-pinning allocator (Linux `arch/arm64/mm/context.c`
//! with the pinning of the seed patch, and the active-slot sentinel of
//! `arch/arm64/kvm/vmid.c`), written once for every [`IdKind`].

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use crate::bitmap::Bitmap;
use crate::sync::{AtomicU64, Mutex, Ordering};
use crate::{AllocError, Context, IdKind, Stats};

/// Narrowest ID width accepted; real hardware has 8 or 16 bits, narrow widths
/// exist so that tests roll over every few switches.
pub const MIN_BITS: u32 = 2;
/// Widest ID width accepted (16-bit VMIDs and ASIDs).
pub const MAX_BITS: u32 = 16;

/// What a switch tells its caller: the hardware ID to program, and whether
/// this CPU's TLB must first be flushed of every entry of this kind.
#[must_use = "program the ID, after a local TLB flush if `needs_flush()` says so"]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Switch<K: IdKind> {
    id: K,
    flush: bool,
}

impl<K: IdKind> Switch<K> {
    /// The ID to write into `VTTBR_EL2` / `TTBR0_EL2`. Never 0.
    pub fn id(&self) -> K {
        self.id
    }

    /// Whether the caller must invalidate this CPU's TLB entries of this kind
    /// (all VMIDs: `TLBI VMALLS12E1` or `ALLE1`; all ASIDs: `TLBI VMALLE1`
    /// in the EL2&0 regime) before running with [`id`](Self::id). Set once
    /// per CPU after each rollover: entries tagged with a recycled ID may
    /// belong to a context of an older generation.
    pub fn needs_flush(&self) -> bool {
        self.flush
    }

    /// Flushes through `tlb` if required, then returns the ID to program.
    pub fn flush_with(self, tlb: &mut impl LocalTlbFlush<K>) -> K {
        if self.flush {
            tlb.flush_local_all();
        }
        self.id
    }
}

/// The caller's local TLB invalidation for one kind of ID; the allocator only
/// says when it is needed (see [`Switch::needs_flush`]).
pub trait LocalTlbFlush<K: IdKind> {
    /// Invalidates, on this CPU only, every TLB entry tagged with any ID of
    /// kind `K`, and completes the invalidation (`DSB NSH`) before returning.
    fn flush_local_all(&mut self);
}

/// The first half of a [`switch`](IdAllocator::switch)'s lock-free fast
/// path: what [`IdAllocator::fast_path_load`] read. Plain data, so a model
/// checker can keep it in a CPU's local state while other CPUs run.
///
/// Commit it (with [`IdAllocator::fast_path_commit`]) before any other
/// operation for the same CPU; a probe kept across such operations may commit
/// a stale ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FastPathProbe<K: IdKind> {
    cpu: usize,
    old_active: u64,
    id: u64,
    eligible: bool,
    kind: PhantomData<fn() -> K>,
}

impl<K: IdKind> FastPathProbe<K> {
    /// The CPU this probe was taken on.
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Whether the commit will attempt the compare-and-swap: the CPU's active
    /// slot was non-zero and the context's ID of the current generation.
    pub fn is_eligible(&self) -> bool {
        self.eligible
    }
}

/// The order in which `new_id` tries to keep a context's old ID. Only tests
/// and the model checker choose anything but [`Fixed`](Self::Fixed).
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NewIdOrder {
    /// The seed patch's v2 order: update every matching reserved copy first,
    /// then keep a pinned ID.
    #[default]
    Fixed,
    /// The seed patch's v1 order, pinned check first, which leaves stale
    /// copies in `reserved` and lets a running context be given a second ID
    /// after the next rollover. Exists so tests can reproduce that bug.
    V1PinnedFirst,
}

/// One CPU's lock-free state, on its own cache line since every switch on
/// that CPU writes it.
#[derive(Debug)]
#[repr(align(64))]
struct PerCpu {
    /// The ID this CPU runs with (Linux's `active_asids`): a rollover swaps it
    /// to 0 to force the CPU through the slow path and its pending flush;
    /// [`IdAllocator::deactivate`] sets the sentinel.
    active: AtomicU64,
    /// Statistics: switches that completed on the fast path.
    fast_hits: AtomicU64,
}

/// Everything the allocator lock protects.
#[derive(Clone, Debug)]
struct Locked {
    /// IDs taken in the current generation; bit 0 is always set so that ID 0
    /// is never handed out and the search can start anywhere.
    used: Bitmap,
    /// IDs of pinned contexts; copied into `used` at each rollover.
    pinned: Bitmap,
    /// Bits set in `pinned`; the pin limit applies to it.
    nr_pinned: u32,
    /// Where the search for a free ID resumes (Linux's `cur_idx`). Every ID
    /// below it is set in `used`, so the search never needs to wrap.
    cursor: u32,
    /// Per CPU, the full value (generation included) the CPU held at the last
    /// rollover if it has not switched since: the only trace of a context
    /// that is still running there (Linux's `reserved_asids`).
    reserved: Vec<u64>,
    /// Per CPU, whether its next slow path must request a local flush
    /// (Linux's `tlb_flush_pending`).
    flush_pending: Vec<bool>,
    rollovers: u64,
    slow_paths: u64,
    flushes: u64,
    new_ids: u64,
}

impl Locked {
    /// Linux's `check_update_reserved_asid`: if some CPU still runs the
    /// context under `old`, move EVERY such reserved copy to `new` (the
    /// context may have run on several CPUs since its last generation, and a
    /// copy left behind would no longer match at the next rollover).
    fn check_update_reserved(&mut self, old: u64, new: u64) -> bool {
        let mut hit = false;
        for reserved in self.reserved.iter_mut().filter(|r| **r == old) {
            *reserved = new;
            hit = true;
        }
        hit
    }
}

/// A generation-plus-pinning allocator of hardware IDs of kind `K` for
/// `nr_cpus` CPUs.
///
/// Every operation for one CPU index must be issued by that physical CPU, one
/// at a time, with interrupts masked if an interrupt handler could also
/// switch (the lock is a spinlock, as Linux's `raw_spin_lock_irqsave`).
pub struct IdAllocator<K: IdKind> {
    bits: u32,
    /// `generation << bits`: the generation counter with the ID bits clear
    /// (Linux's `asid_generation`). Written only under the lock, read by the
    /// fast path without it.
    generation: AtomicU64,
    per_cpu: Vec<PerCpu>,
    locked: Mutex<Locked>,
    max_pinned: u32,
    order: NewIdOrder,
    kind: PhantomData<fn() -> K>,
}

impl<K: IdKind> IdAllocator<K> {
    /// An allocator of `bits`-bit IDs for CPUs `0..nr_cpus`.
    ///
    /// Every CPU's first switch requests a flush: nothing is known about the
    /// tags firmware or a previous boot stage left in its TLB.
    ///
    /// # Errors
    ///
    /// - [`AllocError::InvalidWidth`] unless `MIN_BITS <= bits <= MAX_BITS`;
    /// - [`AllocError::NoCpus`] if `nr_cpus` is 0;
    /// - [`AllocError::TooManyCpus`] if `nr_cpus > 2^bits - 2`;
    /// - [`AllocError::OutOfMemory`] if the heap cannot hold the bitmaps.
    pub fn new(bits: u32, nr_cpus: usize) -> Result<Self, AllocError> {
        Self::build(bits, nr_cpus, NewIdOrder::Fixed)
    }

    /// [`new`](Self::new) with a chosen `new_id` order, for tests and the
    /// model checker that must show the seed's v1 bug.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    #[cfg(any(test, feature = "checker"))]
    #[doc(hidden)]
    pub fn with_order(bits: u32, nr_cpus: usize, order: NewIdOrder) -> Result<Self, AllocError> {
        Self::build(bits, nr_cpus, order)
    }

    fn build(bits: u32, nr_cpus: usize, order: NewIdOrder) -> Result<Self, AllocError> {
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(AllocError::InvalidWidth(bits));
        }
        let num_ids = 1u32 << bits;
        // One reserved ID per CPU plus ID 0 plus one free after a rollover.
        let max_cpus = (num_ids - 2) as usize;
        if nr_cpus == 0 {
            return Err(AllocError::NoCpus);
        }
        if nr_cpus > max_cpus {
            return Err(AllocError::TooManyCpus {
                requested: nr_cpus,
                max: max_cpus,
            });
        }
        let mut used = Bitmap::try_new(num_ids)?;
        used.test_and_set(0);
        let mut per_cpu = Vec::new();
        let mut reserved = Vec::new();
        let mut flush_pending = Vec::new();
        per_cpu
            .try_reserve_exact(nr_cpus)
            .and_then(|()| reserved.try_reserve_exact(nr_cpus))
            .and_then(|()| flush_pending.try_reserve_exact(nr_cpus))
            .map_err(|_| AllocError::OutOfMemory)?;
        per_cpu.extend((0..nr_cpus).map(|_| PerCpu {
            active: AtomicU64::new(0),
            fast_hits: AtomicU64::new(0),
        }));
        reserved.resize(nr_cpus, 0);
        flush_pending.resize(nr_cpus, true);
        Ok(Self {
            bits,
            generation: AtomicU64::new(1 << bits),
            per_cpu,
            locked: Mutex::new(Locked {
                used,
                pinned: Bitmap::try_new(num_ids)?,
                nr_pinned: 0,
                cursor: 1,
                reserved,
                flush_pending,
                rollovers: 0,
                slow_paths: 0,
                flushes: 0,
                new_ids: 0,
            }),
            // The seed's `NUM_USER_ASIDS - num_possible_cpus() - 2`: after a
            // rollover every CPU may hold a reserved ID, ID 0 is never used,
            // and at least one ID must be left for the context that caused
            // the rollover.
            max_pinned: num_ids - nr_cpus as u32 - 2,
            order,
            kind: PhantomData,
        })
    }

    /// The ID width in bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// How many CPUs the allocator serves.
    pub fn nr_cpus(&self) -> usize {
        self.per_cpu.len()
    }

    /// The most IDs that may be pinned at once: `2^bits - nr_cpus - 2`.
    pub fn max_pinned(&self) -> u32 {
        self.max_pinned
    }

    /// Makes `ctx`'s ID valid on `cpu` (Linux's `check_and_switch_context`,
    /// KVM's `kvm_arm_vmid_update`) and says whether `cpu` must flush its TLB
    /// before using it.
    ///
    /// This is exactly [`fast_path_load`](Self::fast_path_load), then
    /// [`fast_path_commit`](Self::fast_path_commit), then if that declined,
    /// [`slow_path`](Self::slow_path).
    ///
    /// # Errors
    ///
    /// [`AllocError::InvalidCpu`] if `cpu >= nr_cpus`.
    pub fn switch(&self, ctx: &Context<K>, cpu: usize) -> Result<Switch<K>, AllocError> {
        let probe = self.fast_path_load(ctx, cpu)?;
        match self.fast_path_commit(probe) {
            Some(done) => Ok(done),
            None => self.slow_path(ctx, cpu),
        }
    }

    /// Fast path, step 1 (no lock, loads only): reads `ctx`'s ID, `cpu`'s
    /// active slot and the generation.
    ///
    /// The loads may be relaxed (as in Linux) because the probe is only
    /// committed through a compare-and-swap on the active slot, and nothing
    /// but this CPU ever stores a non-zero value there: if a rollover swaps
    /// the slot to 0 between the load and the commit, the commit fails and
    /// the slow path (whose lock orders it after the rollover) runs instead;
    /// if the rollover's swap comes after the commit, it reads the committed
    /// ID and reserves it for the new generation. A non-zero slot also means
    /// this CPU passed the slow path after any earlier rollover, so by
    /// coherence its generation load cannot return an older generation.
    ///
    /// # Errors
    ///
    /// [`AllocError::InvalidCpu`] if `cpu >= nr_cpus`.
    pub fn fast_path_load(
        &self,
        ctx: &Context<K>,
        cpu: usize,
    ) -> Result<FastPathProbe<K>, AllocError> {
        let per_cpu = self.per_cpu(cpu)?;
        let id = ctx.id.load(Ordering::Relaxed);
        let old_active = per_cpu.active.load(Ordering::Relaxed);
        let eligible = old_active != 0 && self.is_current(id);
        Ok(FastPathProbe {
            cpu,
            old_active,
            id,
            eligible,
            kind: PhantomData,
        })
    }

    /// Fast path, step 2 (no lock, one compare-and-swap): publishes the
    /// probed ID in the CPU's active slot if the slot still holds what the
    /// probe read. `None` means the caller must take the
    /// [`slow_path`](Self::slow_path). The fast path never requests a flush:
    /// a pending flush implies a rollover zeroed the slot since this CPU's
    /// last slow path, which makes the probe ineligible or the swap fail.
    pub fn fast_path_commit(&self, probe: FastPathProbe<K>) -> Option<Switch<K>> {
        if !probe.eligible {
            return None;
        }
        let per_cpu = self.per_cpu.get(probe.cpu)?;
        per_cpu
            .active
            .compare_exchange(
                probe.old_active,
                probe.id,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .ok()?;
        // Only `cpu` itself switches on `cpu`, so only it writes this counter:
        // a load and a store keep a second read-modify-write off the fast path.
        let hits = per_cpu.fast_hits.load(Ordering::Relaxed);
        per_cpu
            .fast_hits
            .store(hits.wrapping_add(1), Ordering::Relaxed);
        Some(Switch {
            id: self.hw_id(probe.id),
            flush: false,
        })
    }

    /// The slow path, atomic under the allocator lock: gives `ctx` an ID of
    /// the current generation if its own is stale, takes `cpu`'s pending
    /// flush, and publishes the ID in `cpu`'s active slot.
    ///
    /// A model checker may run it as one step. The only lock-free accesses
    /// that can overlap it are other CPUs' fast-path steps: their loads see
    /// either side of it or, mid-rollover, a mix that makes the probe
    /// ineligible or its compare-and-swap fail; their compare-and-swap
    /// touches only their own active slot, which a rollover accesses once
    /// (its swap), so it behaves as if it ran before or after the whole call.
    ///
    /// # Errors
    ///
    /// [`AllocError::InvalidCpu`] if `cpu >= nr_cpus`.
    pub fn slow_path(&self, ctx: &Context<K>, cpu: usize) -> Result<Switch<K>, AllocError> {
        let per_cpu = self.per_cpu(cpu)?;
        let mut guard = self.locked.lock();
        let st = &mut *guard;
        st.slow_paths += 1;
        // Re-read under the lock: another CPU may have renewed the ID since
        // the fast path looked.
        let mut id = ctx.id.load(Ordering::Relaxed);
        if !self.is_current(id) {
            id = self.new_id(st, ctx);
            ctx.id.store(id, Ordering::Relaxed);
        }
        let flush = core::mem::take(&mut st.flush_pending[cpu]);
        if flush {
            st.flushes += 1;
        }
        per_cpu.active.store(id, Ordering::Relaxed);
        Ok(Switch {
            id: self.hw_id(id),
            flush,
        })
    }

    /// Starts a new generation now, as running out of IDs would: every
    /// context active on a CPU keeps its ID (reserved), pinned ones keep
    /// theirs, every other context gets a new ID at its next switch, and
    /// every CPU flushes its TLB once at its next switch. For measuring what
    /// a rollover costs (a benchmark hook) and for tests; correct at any
    /// time, since it is the rollover the allocator does on its own.
    pub fn force_rollover(&self) {
        let mut guard = self.locked.lock();
        let st = &mut *guard;
        self.rollover(st);
        // Allocation resumes from the bottom of the fresh bitmap.
        st.cursor = 1;
    }

    /// Marks `cpu` as running no context of this kind (KVM's
    /// `kvm_arm_vmid_clear_active`, on vCPU put): its active slot gets a
    /// sentinel that is non-zero, so the next switch on `cpu` may still take
    /// the fast path, but is no real ID (generation 1, ID 0), so a rollover
    /// reserves only ID 0, which is never handed out, instead of keeping the
    /// descheduled context's ID.
    ///
    /// A slot a rollover has already zeroed stays 0: overwriting it would let
    /// the next switch skip the slow path and with it the pending flush. The
    /// descheduled context then stays reserved until `cpu` switches again.
    ///
    /// # Errors
    ///
    /// [`AllocError::InvalidCpu`] if `cpu >= nr_cpus`.
    pub fn deactivate(&self, cpu: usize) -> Result<(), AllocError> {
        let per_cpu = self.per_cpu(cpu)?;
        let current = per_cpu.active.load(Ordering::Relaxed);
        if current != 0 {
            // Fails only if a rollover swapped in 0 meanwhile; see above.
            let _ = per_cpu.active.compare_exchange(
                current,
                self.sentinel(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    /// Pins `ctx`'s ID so that it survives every rollover until the matching
    /// [`unpin`](Self::unpin) (the seed's `mm_context_get`), e.g. while a
    /// device's SMMU entry holds it. Refcounted: only the first pin takes a
    /// slot, moving the context into the current generation if needed.
    ///
    /// # Errors
    ///
    /// - [`AllocError::PinLimit`] if the context is not pinned yet and
    ///   [`max_pinned`](Self::max_pinned) IDs already are;
    /// - [`AllocError::PinCountOverflow`] if the context is pinned `u32::MAX`
    ///   times.
    pub fn pin(&self, ctx: &Context<K>) -> Result<K, AllocError> {
        let mut guard = self.locked.lock();
        let st = &mut *guard;
        let pins = ctx.pins.load(Ordering::Relaxed);
        let mut id = ctx.id.load(Ordering::Relaxed);
        if pins != 0 {
            let pins = pins.checked_add(1).ok_or(AllocError::PinCountOverflow)?;
            ctx.pins.store(pins, Ordering::Relaxed);
            return Ok(self.hw_id(id));
        }
        if st.nr_pinned >= self.max_pinned {
            return Err(AllocError::PinLimit {
                limit: self.max_pinned,
            });
        }
        if !self.is_current(id) {
            id = self.new_id(st, ctx);
            ctx.id.store(id, Ordering::Relaxed);
        }
        // Count bits, not pins, so `nr_pinned` always equals the bits set in
        // `pinned` (the rollover argument relies on it) even if a context is
        // misused with two allocators.
        if !st.pinned.test_and_set(self.index(id)) {
            st.nr_pinned += 1;
        }
        ctx.pins.store(1, Ordering::Relaxed);
        Ok(self.hw_id(id))
    }

    /// Drops one pin of `ctx` (the seed's `mm_context_put`); the last one
    /// frees its slot. The context keeps its ID until a rollover finds it
    /// neither running nor pinned.
    ///
    /// # Errors
    ///
    /// [`AllocError::NotPinned`] if `ctx` is not pinned.
    pub fn unpin(&self, ctx: &Context<K>) -> Result<(), AllocError> {
        let mut guard = self.locked.lock();
        let st = &mut *guard;
        let pins = ctx.pins.load(Ordering::Relaxed);
        if pins == 0 {
            return Err(AllocError::NotPinned);
        }
        ctx.pins.store(pins - 1, Ordering::Relaxed);
        if pins == 1
            && st
                .pinned
                .test_and_clear(self.index(ctx.id.load(Ordering::Relaxed)))
        {
            st.nr_pinned -= 1;
        }
        Ok(())
    }

    /// The current generation: 1 at first, one more per rollover (the
    /// number [`Stats::generation`] shows). One relaxed load, no lock: a
    /// cheap way to notice that a rollover happened since the last look
    /// (for checks that must run after each one). The count is exact for
    /// fewer than 2^(64 - bits) rollovers.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed) >> self.bits
    }

    /// The hardware ID `ctx` owns right now, if any: one that no other
    /// context can be given before the next rollover (or ever, while `ctx`
    /// is pinned). That is the case when its ID is of the current
    /// generation, when it is pinned, or when a CPU that ran it at the last
    /// rollover still reserves it (its next switch gets it back). `None`
    /// for a context that never had an ID, or whose ID went stale in a
    /// rollover while it was neither running nor pinned: its next switch
    /// gets a new ID, and its old one may go to another context meanwhile.
    ///
    /// For checks that compare what a device holds (an SMMU stream table
    /// entry's VMID) with what the allocator guarantees. Takes the lock.
    pub fn owned_id(&self, ctx: &Context<K>) -> Option<K> {
        let st = self.locked.lock();
        let id = ctx.id.load(Ordering::Relaxed);
        if id == 0 {
            return None;
        }
        let owned = self.is_current(id)
            || ctx.pins.load(Ordering::Relaxed) != 0
            || st.reserved.contains(&id);
        owned.then(|| self.hw_id(id))
    }

    /// Counters for the hypervisor to print (takes the lock).
    pub fn stats(&self) -> Stats {
        let st = self.locked.lock();
        Stats {
            kind: K::NAME,
            bits: self.bits,
            nr_cpus: self.per_cpu.len(),
            generation: self.generation.load(Ordering::Relaxed) >> self.bits,
            rollovers: st.rollovers,
            // Bit 0 is always set and is no ID.
            ids_in_use: st.used.count_ones() - 1,
            ids_total: self.id_mask() as u32,
            pinned: st.nr_pinned,
            max_pinned: self.max_pinned,
            flushes_requested: st.flushes,
            fast_path_hits: self
                .per_cpu
                .iter()
                .map(|c| c.fast_hits.load(Ordering::Relaxed))
                .sum(),
            slow_path_entries: st.slow_paths,
            new_ids: st.new_ids,
        }
    }

    /// Linux's `new_context`: an ID of the current generation for `ctx`,
    /// whose own is stale. Keeps the old ID if it is still reserved by a CPU
    /// (updating every reserved copy), pinned, or free in this generation;
    /// otherwise takes the next free one, rolling over if there is none.
    fn new_id(&self, st: &mut Locked, ctx: &Context<K>) -> u64 {
        st.new_ids += 1;
        let mut generation = self.generation.load(Ordering::Relaxed);
        let old = ctx.id.load(Ordering::Relaxed);
        if old != 0 {
            let renewed = generation | (old & self.id_mask());
            let pinned = ctx.pins.load(Ordering::Relaxed) != 0;
            // `||` short-circuits, so the order decides whether the reserved
            // copies are updated when the context is also pinned.
            let keep = match self.order {
                NewIdOrder::Fixed => st.check_update_reserved(old, renewed) || pinned,
                NewIdOrder::V1PinnedFirst => pinned || st.check_update_reserved(old, renewed),
            };
            if keep || !st.used.test_and_set(self.index(old)) {
                return renewed;
            }
        }
        let num_ids = self.id_mask() as u32 + 1;
        let index = match st.used.find_next_zero(st.cursor, num_ids) {
            Some(index) => index,
            None => {
                generation = self.rollover(st);
                st.used
                    .find_next_zero(1, num_ids)
                    // Set after a rollover: bit 0, at most `nr_cpus` reserved
                    // IDs and `nr_pinned <= 2^bits - nr_cpus - 2` pinned ones,
                    // so at least one of the 2^bits bits is clear.
                    .expect("an ID is free after a rollover")
            }
        };
        st.used.test_and_set(index);
        st.cursor = index;
        generation | u64::from(index)
    }

    /// Linux's generation bump plus `flush_context`: start a new generation
    /// whose used IDs are the pinned ones and, per CPU, the ID it runs (or,
    /// if it has not switched since the last rollover, the one reserved for
    /// it then), and make every CPU flush before its next ID.
    fn rollover(&self, st: &mut Locked) -> u64 {
        let first = 1u64 << self.bits;
        // Skipping generation 0 on wrap keeps a never-allocated context (ID
        // 0) from ever looking current; the wrap itself takes at least 2^48
        // rollovers.
        let generation = self
            .generation
            .load(Ordering::Relaxed)
            .wrapping_add(first)
            .max(first);
        self.generation.store(generation, Ordering::Relaxed);
        st.used.copy_from(&st.pinned);
        st.used.test_and_set(0);
        for (per_cpu, reserved) in self.per_cpu.iter().zip(st.reserved.iter_mut()) {
            // The swap is what a racing fast path's compare-and-swap is
            // ordered against (see `fast_path_load`).
            let active = per_cpu.active.swap(0, Ordering::Relaxed);
            // 0: the CPU has not switched since the last rollover and still
            // runs the context recorded in `reserved`. The deactivation
            // sentinel lands here as ID 0, already set and never handed out.
            if active != 0 {
                *reserved = active;
            }
            st.used.test_and_set(self.index(*reserved));
        }
        st.flush_pending.fill(true);
        st.rollovers += 1;
        generation
    }

    fn per_cpu(&self, cpu: usize) -> Result<&PerCpu, AllocError> {
        self.per_cpu.get(cpu).ok_or(AllocError::InvalidCpu(cpu))
    }

    fn id_mask(&self) -> u64 {
        (1 << self.bits) - 1
    }

    fn index(&self, id: u64) -> u32 {
        (id & self.id_mask()) as u32
    }

    /// The hardware ID: the low `bits` only, so no generation bit can reach
    /// a translation table base register or a TLBI operand.
    fn hw_id(&self, id: u64) -> K {
        K::from_index(self.index(id) as u16)
    }

    /// The active-slot value of a deactivated CPU: generation 1, ID 0
    /// (KVM's `VMID_ACTIVE_INVALID`).
    fn sentinel(&self) -> u64 {
        1 << self.bits
    }

    /// Whether `id` belongs to the current generation (Linux's
    /// `asid_gen_match`).
    fn is_current(&self, id: u64) -> bool {
        (id ^ self.generation.load(Ordering::Relaxed)) >> self.bits == 0
    }
}

impl<K: IdKind> fmt::Debug for IdAllocator<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdAllocator")
            .field("kind", &K::NAME)
            .field("bits", &self.bits)
            .field("nr_cpus", &self.per_cpu.len())
            .field(
                "generation",
                &(self.generation.load(Ordering::Relaxed) >> self.bits),
            )
            .finish_non_exhaustive()
    }
}

/// The allocator's whole state as plain data, for checkers that hash and
/// compare states. Statistics are left out: they only grow and would make
/// every state distinct.
#[cfg(any(test, feature = "checker"))]
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StateSnapshot {
    /// ID width.
    pub bits: u32,
    /// `generation << bits`.
    pub generation: u64,
    /// Used-ID bitmap words (bit 0 always set).
    pub used: Vec<u64>,
    /// Pinned-ID bitmap words.
    pub pinned: Vec<u64>,
    /// Bits set in `pinned`.
    pub nr_pinned: u32,
    /// Where the next free-ID search starts.
    pub cursor: u32,
    /// Per CPU active slot: 0 after a rollover, the sentinel after
    /// deactivation, otherwise generation and ID.
    pub active: Vec<u64>,
    /// Per CPU reserved value from the last rollover.
    pub reserved: Vec<u64>,
    /// Per CPU pending local flush.
    pub flush_pending: Vec<bool>,
}

#[cfg(any(test, feature = "checker"))]
impl<K: IdKind> IdAllocator<K> {
    /// The state as plain data. Call it only while no operation runs.
    pub fn snapshot(&self) -> StateSnapshot {
        let st = self.locked.lock();
        StateSnapshot {
            bits: self.bits,
            generation: self.generation.load(Ordering::Relaxed),
            used: st.used.words().to_vec(),
            pinned: st.pinned.words().to_vec(),
            nr_pinned: st.nr_pinned,
            cursor: st.cursor,
            active: self
                .per_cpu
                .iter()
                .map(|c| c.active.load(Ordering::Relaxed))
                .collect(),
            reserved: st.reserved.clone(),
            flush_pending: st.flush_pending.clone(),
        }
    }

    /// An independent copy of the allocator (statistics included), so a
    /// checker can explore several continuations of one state. Call it only
    /// while no operation runs.
    pub fn fork(&self) -> Self {
        Self {
            bits: self.bits,
            generation: AtomicU64::new(self.generation.load(Ordering::Relaxed)),
            per_cpu: self
                .per_cpu
                .iter()
                .map(|c| PerCpu {
                    active: AtomicU64::new(c.active.load(Ordering::Relaxed)),
                    fast_hits: AtomicU64::new(c.fast_hits.load(Ordering::Relaxed)),
                })
                .collect(),
            locked: Mutex::new(self.locked.lock().clone()),
            max_pinned: self.max_pinned,
            order: self.order,
            kind: PhantomData,
        }
    }
}
