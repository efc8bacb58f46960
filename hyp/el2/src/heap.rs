//! The hypervisor's heap: every byte of RAM the device tree reports, minus the
//! hypervisor image, the boot bundle, the device tree and reserved memory.

use addr::PhysRange;
use buddy_system_allocator::LockedHeap;

/// Order 33 allows single free blocks up to 8 GiB.
#[global_allocator]
static HEAP: LockedHeap<33> = LockedHeap::empty();

/// Hands `ranges` to the allocator and returns the number of bytes added.
///
/// # Safety
///
/// Each range must be RAM that is identity-mapped as normal memory, used by
/// nothing else for the rest of the hypervisor's life, and not already part of
/// the heap.
pub unsafe fn add_ranges(ranges: &[PhysRange]) -> u64 {
    let mut heap = HEAP.lock();
    for range in ranges {
        // SAFETY: The caller guarantees the range is free, mapped RAM.
        unsafe {
            heap.add_to_heap(range.start().get() as usize, range.end().get() as usize);
        }
    }
    ranges.iter().map(PhysRange::size).sum()
}

/// Bytes currently allocated and bytes the heap holds in all.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.lock();
    (heap.stats_alloc_actual(), heap.stats_total_bytes())
}
