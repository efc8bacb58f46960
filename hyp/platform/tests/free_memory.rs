//! Free memory: RAM minus exclusions, page-aligned inwards.

// Expected results are lists of ranges, some of them with one element.
#![allow(clippy::single_range_in_vec_init)]

use platform::{free_memory, FreeMemoryError, PhysAddr, PhysRange};

fn r(start: u64, end: u64) -> PhysRange {
    PhysRange::from_bounds(PhysAddr(start), PhysAddr(end)).unwrap()
}

fn free(memory: &[PhysRange], excluded: &[PhysRange]) -> Vec<std::ops::Range<u64>> {
    free_memory::<16>(memory, excluded)
        .unwrap()
        .iter()
        .map(|r| r.as_u64_range())
        .collect()
}

const RAM: u64 = 0x4000_0000;

#[test]
fn nothing_excluded_leaves_all_memory_free() {
    assert_eq!(
        free(&[r(RAM, RAM + 0x10_0000)], &[]),
        [RAM..RAM + 0x10_0000]
    );
}

#[test]
fn exclusion_in_the_middle_splits_the_bank() {
    assert_eq!(
        free(&[r(RAM, RAM + 0x10_0000)], &[r(RAM + 0x4000, RAM + 0x8000)]),
        [RAM..RAM + 0x4000, RAM + 0x8000..RAM + 0x10_0000]
    );
}

#[test]
fn unaligned_exclusion_takes_its_whole_pages() {
    assert_eq!(
        free(&[r(RAM, RAM + 0x10_0000)], &[r(RAM + 0x4001, RAM + 0x7fff)]),
        [RAM..RAM + 0x4000, RAM + 0x8000..RAM + 0x10_0000]
    );
}

#[test]
fn unaligned_memory_is_shrunk_inwards() {
    assert_eq!(
        free(&[r(RAM + 0x10, RAM + 0x3010)], &[]),
        [RAM + 0x1000..RAM + 0x3000]
    );
}

#[test]
fn piece_smaller_than_a_page_is_dropped() {
    assert_eq!(
        free(&[r(RAM, RAM + 0x3000)], &[r(RAM + 0x800, RAM + 0x2800)]),
        Vec::<std::ops::Range<u64>>::new()
    );
    assert!(free(&[r(RAM + 1, RAM + 0x1001)], &[]).is_empty());
}

#[test]
fn overlapping_exclusions_are_combined() {
    assert_eq!(
        free(
            &[r(RAM, RAM + 0x10_0000)],
            &[
                r(RAM + 0x6000, RAM + 0x9000),
                r(RAM + 0x2000, RAM + 0x7000),
                r(RAM + 0x3000, RAM + 0x4000),
            ]
        ),
        [RAM..RAM + 0x2000, RAM + 0x9000..RAM + 0x10_0000]
    );
}

#[test]
fn adjacent_exclusions_leave_no_gap() {
    assert_eq!(
        free(
            &[r(RAM, RAM + 0x10_0000)],
            &[r(RAM + 0x2000, RAM + 0x3000), r(RAM + 0x3000, RAM + 0x4000)]
        ),
        [RAM..RAM + 0x2000, RAM + 0x4000..RAM + 0x10_0000]
    );
}

#[test]
fn exclusions_outside_memory_are_ignored() {
    assert_eq!(
        free(
            &[r(RAM, RAM + 0x10_0000)],
            &[
                r(0x900_0000, 0x900_1000),
                r(RAM + 0x10_0000, RAM + 0x20_0000)
            ]
        ),
        [RAM..RAM + 0x10_0000]
    );
}

#[test]
fn exclusions_over_bank_edges_trim_them() {
    assert_eq!(
        free(
            &[r(RAM, RAM + 0x10_0000)],
            &[
                r(RAM - 0x1000, RAM + 0x1000),
                r(RAM + 0xf_f000, RAM + 0x20_0000)
            ]
        ),
        [RAM + 0x1000..RAM + 0xf_f000]
    );
}

#[test]
fn exclusion_covering_a_whole_bank_removes_it() {
    assert!(free(&[r(RAM, RAM + 0x1_0000)], &[r(0, u64::MAX)]).is_empty());
}

#[test]
fn empty_exclusions_change_nothing() {
    assert_eq!(
        free(&[r(RAM, RAM + 0x2000)], &[r(RAM + 0x1000, RAM + 0x1000)]),
        [RAM..RAM + 0x2000]
    );
}

#[test]
fn banks_are_sorted_and_adjacent_ones_merged() {
    assert_eq!(
        free(
            &[
                r(0x8000_0000, 0x9000_0000),
                r(RAM, RAM + 0x1000_0000),
                r(RAM + 0x1000_0000, RAM + 0x2000_0000),
            ],
            &[]
        ),
        [RAM..RAM + 0x2000_0000, 0x8000_0000..0x9000_0000]
    );
}

#[test]
fn overlapping_banks_are_merged() {
    assert_eq!(
        free(&[r(RAM, RAM + 0x4000), r(RAM + 0x2000, RAM + 0x8000)], &[]),
        [RAM..RAM + 0x8000]
    );
}

#[test]
fn memory_at_the_top_of_the_address_space_is_handled() {
    let top = u64::MAX - 0xfff; // last page starts here
    assert_eq!(free(&[r(top - 0x2000, u64::MAX)], &[]), [top - 0x2000..top]);
    assert!(free(&[r(top + 1, u64::MAX)], &[]).is_empty());
}

#[test]
fn typical_boot_layout() {
    // 4 GiB at 1 GiB; hypervisor image, DTB and boot bundle carved out.
    let image = r(RAM, RAM + 0x20_0000);
    let dtb = r(0x5000_0000, 0x5000_2123);
    let bundle = r(0x4800_0000, 0x4800_3039);
    assert_eq!(
        free(&[r(RAM, RAM + (4 << 30))], &[bundle, image, dtb]),
        [
            RAM + 0x20_0000..0x4800_0000,
            0x4800_4000..0x5000_0000,
            0x5000_3000..RAM + (4 << 30),
        ]
    );
}

#[test]
fn more_pieces_than_capacity_is_too_many_pieces() {
    let memory = [r(RAM, RAM + 0x10_0000)];
    let holes: Vec<_> = (1..4u64)
        .map(|i| r(RAM + i * 0x2000, RAM + i * 0x2000 + 0x1000))
        .collect();
    // Three holes make four pieces.
    assert_eq!(free_memory::<4>(&memory, &holes).unwrap().len(), 4);
    let err = free_memory::<3>(&memory, &holes).unwrap_err();
    assert_eq!(err, FreeMemoryError::TooManyPieces { capacity: 3 });
    assert_eq!(
        err.to_string(),
        "free memory is split into more than 3 pieces"
    );
}
