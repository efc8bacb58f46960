//! Free memory: RAM minus everything already spoken for.

use core::fmt;

use crate::{PhysAddr, PhysRange};

/// The granule free memory is aligned to: the 4 KiB translation granule the
/// hypervisor's stage-1 and stage-2 tables use.
pub const PAGE_SIZE: u64 = 4096;

/// Why [`free_memory`] could not describe the free memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeMemoryError {
    /// The free memory is split into more pieces than the output can hold.
    TooManyPieces {
        /// The output's capacity.
        capacity: usize,
    },
}

impl fmt::Display for FreeMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyPieces { capacity } => {
                write!(f, "free memory is split into more than {capacity} pieces")
            }
        }
    }
}

/// `memory` minus every range in `excluded`, as page-aligned ranges.
///
/// `excluded` is what is already in use or not ours: the hypervisor image,
/// the boot bundle, the device tree blob and [`crate::Platform::reserved`].
/// Exclusions may overlap each other, reach outside memory or be unaligned.
/// Every free piece is shrunk inwards to [`PAGE_SIZE`] boundaries, so a page
/// that holds even one excluded byte is not free. The result is sorted by
/// address; pieces that overlap or touch (say, from adjacent memory banks)
/// are merged, and pieces smaller than a page are dropped.
///
/// # Errors
///
/// [`FreeMemoryError::TooManyPieces`] if more than `N` pieces remain.
/// `memory.len() + excluded.len()` is always enough.
pub fn free_memory<const N: usize>(
    memory: &[PhysRange],
    excluded: &[PhysRange],
) -> Result<heapless::Vec<PhysRange, N>, FreeMemoryError> {
    let mut free = heapless::Vec::new();
    for bank in memory {
        let mut cursor = bank.start();
        while cursor < bank.end() {
            // The lowest exclusion still ahead of the cursor in this bank.
            let next = excluded
                .iter()
                .filter(|e| !e.is_empty() && e.end() > cursor && e.start() < bank.end())
                .min_by_key(|e| e.start());
            let Some(next) = next else {
                add(&mut free, cursor, bank.end())?;
                break;
            };
            if next.start() > cursor {
                add(&mut free, cursor, next.start())?;
            }
            // `next.end() > cursor`, so the loop always advances.
            cursor = next.end();
        }
    }
    Ok(free)
}

/// Adds `[start, end)`, shrunk to page boundaries, to the sorted list `free`,
/// merging it with pieces it overlaps or touches.
fn add<const N: usize>(
    free: &mut heapless::Vec<PhysRange, N>,
    start: PhysAddr,
    end: PhysAddr,
) -> Result<(), FreeMemoryError> {
    let Some(start) = start.checked_add(PAGE_SIZE - 1) else {
        // Less than a page below the top of the address space.
        return Ok(());
    };
    let (start, end) = (start.align_down(PAGE_SIZE), end.align_down(PAGE_SIZE));
    let Some(mut piece) = PhysRange::from_bounds(start, end).filter(|r| !r.is_empty()) else {
        return Ok(());
    };
    let mut i = 0;
    while let Some(other) = free.get(i) {
        if other.start() <= piece.end() && piece.start() <= other.end() {
            let start = other.start().min(piece.start());
            let end = other.end().max(piece.end());
            if let Some(merged) = PhysRange::from_bounds(start, end) {
                piece = merged;
            }
            free.remove(i);
        } else {
            i += 1;
        }
    }
    let at = free
        .iter()
        .position(|r| r.start() > piece.start())
        .unwrap_or(free.len());
    free.insert(at, piece)
        .map_err(|_| FreeMemoryError::TooManyPieces { capacity: N })
}
