//! The outcome of a guest's access to a device the hypervisor emulates
//! (virtio-mmio, the PL011, the virtual PCIe bridge): the value it produced
//! and, separately, why the access or part of it was ignored. Ignoring is
//! the guest's doing, for the caller to log (rate-limited) or count, never
//! an error of the hypervisor's; an access can both take effect and be
//! partly ignored. Each device names its own reasons (`I`).

#![no_std]
#![deny(missing_docs)]

/// The outcome of a guest's access: `value` is what a read returns or what
/// a write asks of the caller (the device says which), `ignored` why the
/// access, or part of it, did nothing.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access<T, I> {
    /// The value read, or what the write asks the caller to do.
    pub value: T,
    /// Why the access, or part of it, was ignored.
    pub ignored: Option<I>,
}

impl<T, I> Access<T, I> {
    /// An access carried out in full.
    pub const fn done(value: T) -> Self {
        Self {
            value,
            ignored: None,
        }
    }

    /// An access (partly) ignored, for the reason `why`.
    pub const fn not_done(value: T, why: I) -> Self {
        Self {
            value,
            ignored: Some(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Access;

    #[test]
    fn done_has_no_reason_and_not_done_keeps_its_own() {
        let done: Access<u32, &str> = Access::done(7);
        assert_eq!(done.ignored, None);
        let not_done = Access::not_done(0u32, "read-only");
        assert_eq!((not_done.value, not_done.ignored), (0, Some("read-only")));
    }
}
