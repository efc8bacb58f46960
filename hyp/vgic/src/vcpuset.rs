//! Sets of vCPUs, as the answer to "whom must the hypervisor kick".

use core::fmt;

/// The most vCPUs one [`crate::Vgic`] models: every index fits a [`VcpuSet`].
///
/// With Aff0 = index % 16 and Aff1 = index / 16 that is Aff1 0..8; QEMU's
/// `virt` redistributor window holds 123 anyway.
pub const MAX_VCPUS: usize = 128;

/// A set of vCPU indices below [`MAX_VCPUS`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VcpuSet(u128);

impl VcpuSet {
    /// No vCPU.
    pub const EMPTY: Self = Self(0);

    /// vCPUs `0..count` (all of them if `count` is [`MAX_VCPUS`] or more).
    pub const fn first(count: usize) -> Self {
        if count >= MAX_VCPUS {
            Self(u128::MAX)
        } else {
            Self((1u128 << count) - 1)
        }
    }

    /// Adds `vcpu`; an index at or past [`MAX_VCPUS`] is ignored (no
    /// [`crate::Vgic`] has such a vCPU).
    pub fn insert(&mut self, vcpu: usize) {
        if vcpu < MAX_VCPUS {
            self.0 |= 1 << vcpu;
        }
    }

    /// Whether `vcpu` is in the set.
    pub const fn contains(self, vcpu: usize) -> bool {
        vcpu < MAX_VCPUS && self.0 & (1 << vcpu) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// How many vCPUs the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Both sets together.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The vCPU indices, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let mut rest = self.0;
        core::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let next = rest.trailing_zeros() as usize;
            rest &= rest - 1;
            Some(next)
        })
    }
}

impl fmt::Debug for VcpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}
