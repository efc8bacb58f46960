//! BASELINES FOR THE BENCHMARKS ONLY. Nothing here is used by the hypervisor
//! or exported by the crate: these are the two simpler ID allocation schemes
//! the generation-plus-pinning allocator is compared against in
//! `benches/workload.rs`, written as small and as fast as their designs allow
//! so that the comparison is fair to them.
//!
//! - [`LockedBitmap`]: Xen-style VMID allocation on Arm. A context takes an ID
//!   from a locked bitmap when it is created and keeps it for its whole life;
//!   a switch only reads it. Nothing is ever recycled while the context
//!   lives, so creation fails once every ID is taken: with 8-bit VMIDs no
//!   more than 255 VMs can exist at once. (Destroying a context would cost
//!   one broadcast by-VMID flush before its ID is reused; the workloads
//!   never destroy one, so that path is not modelled.)
//! - [`GlobalFlushOnWrap`]: the VMID allocator of KVM/arm before it adopted
//!   the arm64 ASID algorithm (`update_vttbr` in `arch/arm/kvm/arm.c`, Linux
//!   3.x/4.x). A counter hands IDs out in order; when it wraps, the
//!   generation is bumped, every CPU is forced out of its guest (an IPI) and
//!   one broadcast TLB invalidation clears every CPU's TLB, after which every
//!   context, running or not, needs a new ID. There is no per-CPU state, so
//!   the fast path is one load and a compare.
//!
//! Neither performs real TLB maintenance: each counts the invalidations and
//! IPIs its design would issue, which is what the workload benchmark prints.
//! Both use the same ticket lock as the real allocator.

use std::sync::atomic::{AtomicU64, Ordering};

use spin::mutex::TicketMutex;

/// Everything a scheme would ask of the TLBs and the other CPUs, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Costs {
    /// Switches that took the allocator lock.
    pub slow_paths: u64,
    /// IDs handed out (including an ID re-taken in a new generation).
    pub new_ids: u64,
    /// Generation bumps (rollovers, counter wraps).
    pub rollovers: u64,
    /// Invalidations of one CPU's TLB by that CPU (`TLBI VMALLS12E1`).
    pub local_flushes: u64,
    /// Inner-shareable invalidations that reach every CPU's TLB
    /// (`TLBI ALLE1IS`).
    pub broadcast_flushes: u64,
    /// Inter-processor interrupts that force a CPU out of its guest.
    pub ipis: u64,
    /// Contexts that could not get an ID at all.
    pub refused: u64,
}

impl Costs {
    /// The difference `self - earlier`, for counting a window of a workload.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            slow_paths: self.slow_paths - earlier.slow_paths,
            new_ids: self.new_ids - earlier.new_ids,
            rollovers: self.rollovers - earlier.rollovers,
            local_flushes: self.local_flushes - earlier.local_flushes,
            broadcast_flushes: self.broadcast_flushes - earlier.broadcast_flushes,
            ipis: self.ipis - earlier.ipis,
            refused: self.refused - earlier.refused,
        }
    }
}

/// Baseline (a), Xen-style: one ID per context for its lifetime, from a
/// bitmap under a lock (Xen's `p2m_alloc_vmid` / `p2m_free_vmid`).
#[derive(Debug)]
pub struct LockedBitmap {
    bits: u32,
    state: TicketMutex<LockedBitmapState>,
}

#[derive(Debug)]
struct LockedBitmapState {
    /// IDs in use; bit 0 is set (ID 0 is never handed out).
    used: Vec<u64>,
    costs: Costs,
}

/// A context of [`LockedBitmap`]: its ID, fixed for its life.
#[derive(Debug)]
pub struct LockedBitmapCtx {
    id: u16,
}

impl LockedBitmap {
    /// An allocator of `bits`-bit IDs.
    pub fn new(bits: u32) -> Self {
        let mut used = vec![0u64; (1usize << bits).div_ceil(64)];
        used[0] = 1;
        Self {
            bits,
            state: TicketMutex::new(LockedBitmapState {
                used,
                costs: Costs::default(),
            }),
        }
    }

    /// Creates a context with the lowest free ID (Xen's
    /// `find_first_zero_bit`), or `None` when every ID is taken: the VM
    /// cannot be created.
    pub fn create(&self) -> Option<LockedBitmapCtx> {
        let mut st = self.state.lock();
        let limit = 1usize << self.bits;
        let found = st
            .used
            .iter()
            .enumerate()
            .find(|(_, word)| **word != u64::MAX)
            .map(|(i, word)| i * 64 + word.trailing_ones() as usize)
            .filter(|&id| id < limit);
        match found {
            Some(id) => {
                st.used[id / 64] |= 1 << (id % 64);
                st.costs.new_ids += 1;
                Some(LockedBitmapCtx { id: id as u16 })
            }
            None => {
                st.costs.refused += 1;
                None
            }
        }
    }

    /// The ID to program when `ctx` runs on `cpu`: nothing to allocate and
    /// nothing to flush, ever.
    #[inline]
    pub fn switch(&self, ctx: &LockedBitmapCtx, _cpu: usize) -> u16 {
        ctx.id
    }

    /// What the scheme has asked for so far.
    pub fn costs(&self) -> Costs {
        self.state.lock().costs
    }
}

/// Baseline (b), pre-generation KVM/arm: a counter that hands out IDs and,
/// on wrap, kicks every CPU out of its guest and flushes every TLB.
#[derive(Debug)]
pub struct GlobalFlushOnWrap {
    bits: u32,
    nr_cpus: usize,
    /// `generation << bits` (KVM's `kvm_vmid_gen`), starting at generation 1
    /// so that a new context (0) is never current.
    generation: AtomicU64,
    state: TicketMutex<GlobalFlushOnWrapState>,
}

#[derive(Debug)]
struct GlobalFlushOnWrapState {
    /// The next ID to hand out (KVM's `kvm_next_vmid`); 0 means wrapped.
    next: u32,
    costs: Costs,
}

/// A context of [`GlobalFlushOnWrap`]: generation and ID in one word
/// (KVM's `vmid_gen` and `vmid`), 0 before its first switch.
#[derive(Debug, Default)]
pub struct GlobalFlushOnWrapCtx {
    id: AtomicU64,
}

impl GlobalFlushOnWrap {
    /// An allocator of `bits`-bit IDs for `nr_cpus` CPUs.
    pub fn new(bits: u32, nr_cpus: usize) -> Self {
        Self {
            bits,
            nr_cpus,
            generation: AtomicU64::new(1 << bits),
            state: TicketMutex::new(GlobalFlushOnWrapState {
                next: 1,
                costs: Costs::default(),
            }),
        }
    }

    /// The ID to program when `ctx` runs on `cpu` (KVM's `update_vttbr`).
    #[inline]
    pub fn switch(&self, ctx: &GlobalFlushOnWrapCtx, _cpu: usize) -> u16 {
        let id = ctx.id.load(Ordering::Acquire);
        if self.is_current(id) {
            return self.hw_id(id);
        }
        self.slow_path(ctx)
    }

    #[cold]
    fn slow_path(&self, ctx: &GlobalFlushOnWrapCtx) -> u16 {
        let mut st = self.state.lock();
        st.costs.slow_paths += 1;
        // Another vCPU of the same VM may have renewed the ID meanwhile.
        let id = ctx.id.load(Ordering::Relaxed);
        if self.is_current(id) {
            return self.hw_id(id);
        }
        if st.next == 0 {
            // Wrapped: new generation, `force_vm_exit(cpu_all_mask)` (every
            // other CPU is interrupted out of its guest and cannot re-enter
            // before the lock is dropped), then `__kvm_flush_vm_context`: one
            // broadcast TLB + I-cache invalidation that reaches every CPU.
            let generation = self.generation.load(Ordering::Relaxed) + (1 << self.bits);
            self.generation.store(generation, Ordering::Release);
            st.next = 1;
            st.costs.rollovers += 1;
            st.costs.ipis += self.nr_cpus as u64 - 1;
            st.costs.broadcast_flushes += 1;
        }
        let id = self.generation.load(Ordering::Relaxed) | u64::from(st.next);
        st.next = (st.next + 1) & ((1 << self.bits) - 1);
        st.costs.new_ids += 1;
        ctx.id.store(id, Ordering::Release);
        self.hw_id(id)
    }

    /// What the scheme has asked for so far.
    pub fn costs(&self) -> Costs {
        self.state.lock().costs
    }

    fn is_current(&self, id: u64) -> bool {
        (id ^ self.generation.load(Ordering::Acquire)) >> self.bits == 0
    }

    fn hw_id(&self, id: u64) -> u16 {
        (id & ((1 << self.bits) - 1)) as u16
    }
}
