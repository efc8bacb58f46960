//! The per-owner half of the allocator: one [`Context`] per VM (VMIDs) or per
//! hypervisor task (ASIDs), like Linux's `mm_context_t` / `struct kvm_vmid`.

use core::fmt;
use core::marker::PhantomData;

use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::IdKind;

/// The allocator's record in an ID's owner: the last ID handed to it, with
/// its generation, and how many times it is pinned.
///
/// A context belongs to one allocator for its whole life: passing it to a
/// second allocator of the same kind is a logic error (its generation would
/// be compared against the wrong counter). Unpin a context before dropping it,
/// or its ID stays pinned for good.
pub struct Context<K: IdKind> {
    /// Generation in the bits above `bits`, ID below; 0 means "never had an
    /// ID". Written only under the allocator lock; read without it by the
    /// fast path, which only trusts a value of the current generation (see
    /// [`IdAllocator::fast_path_load`](crate::IdAllocator::fast_path_load)).
    pub(crate) id: AtomicU64,
    /// Pin refcount. Read and written only with the allocator lock held (in
    /// `pin`, `unpin` and `new_id`), so the lock orders every access and
    /// `Relaxed` suffices; it is an atomic only so that `Context` is `Sync`
    /// without `unsafe`. Linux keeps the same count in `mm->context.pinned`
    /// under `cpu_asid_lock`.
    pub(crate) pins: AtomicU32,
    kind: PhantomData<fn() -> K>,
}

impl<K: IdKind> Context<K> {
    /// A context that has never had an ID.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            id: AtomicU64::new(0),
            pins: AtomicU32::new(0),
            kind: PhantomData,
        }
    }

    /// A context that has never had an ID (`loom` atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            id: AtomicU64::new(0),
            pins: AtomicU32::new(0),
            kind: PhantomData,
        }
    }

    /// How many times the context is pinned (0 if not pinned).
    pub fn pin_count(&self) -> u32 {
        self.pins.load(Ordering::Relaxed)
    }

    /// The raw 64-bit value (generation and ID) and pin count, for checkers.
    #[cfg(any(test, feature = "checker"))]
    pub fn snapshot(&self) -> ContextSnapshot {
        ContextSnapshot {
            id: self.id.load(Ordering::Relaxed),
            pins: self.pins.load(Ordering::Relaxed),
        }
    }

    /// A context in the state `snapshot` describes, for checkers that fork
    /// a state and explore both branches.
    #[cfg(any(test, feature = "checker"))]
    pub fn from_snapshot(snapshot: ContextSnapshot) -> Self {
        Self {
            id: AtomicU64::new(snapshot.id),
            pins: AtomicU32::new(snapshot.pins),
            kind: PhantomData,
        }
    }
}

impl<K: IdKind> Default for Context<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: IdKind> fmt::Debug for Context<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("kind", &K::NAME)
            .field(
                "id",
                &format_args!("{:#x}", self.id.load(Ordering::Relaxed)),
            )
            .field("pins", &self.pin_count())
            .finish()
    }
}

/// A context's state as plain data, for checkers that hash states.
#[cfg(any(test, feature = "checker"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContextSnapshot {
    /// Generation and ID, as in the allocator (0: never allocated).
    pub id: u64,
    /// Pin refcount.
    pub pins: u32,
}
