//! Blobs with a broken layout: refused with the exact reason, never a panic.

mod common;

use platform::{Block, DtError, Platform, StructureError};

const SMP4: &[u8] = include_bytes!("data/qemu-virt-smp4.dtb");

fn header(dtb: &[u8], field: usize) -> u32 {
    u32::from_be_bytes(dtb[field * 4..field * 4 + 4].try_into().unwrap())
}

fn set_header(dtb: &mut [u8], field: usize, value: u32) {
    dtb[field * 4..field * 4 + 4].copy_from_slice(&value.to_be_bytes());
}

/// Offset of the structure block.
fn structs(dtb: &[u8]) -> usize {
    header(dtb, 2) as usize
}

fn set_word(dtb: &mut [u8], at: usize, value: u32) {
    dtb[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

fn structure_error(dtb: &[u8]) -> StructureError {
    match Platform::from_dtb(dtb) {
        Err(DtError::Structure(e)) => e,
        other => panic!("expected a structure error, got {other:?}"),
    }
}

#[test]
fn empty_buffer_is_malformed_buffer_too_small() {
    assert_eq!(
        Platform::from_dtb(&[]),
        Err(DtError::Malformed(fdt::FdtError::BufferTooSmall))
    );
}

#[test]
fn wrong_magic_is_malformed_bad_magic() {
    let mut dtb = SMP4.to_vec();
    dtb[0] ^= 1;
    let err = Platform::from_dtb(&dtb).unwrap_err();
    assert_eq!(err, DtError::Malformed(fdt::FdtError::BadMagic));
    assert_eq!(
        err.to_string(),
        "device tree: malformed blob: bad FDT magic value"
    );
    assert_eq!(platform::dtb_total_size(&dtb), Err(err));
}

#[test]
fn buffer_shorter_than_totalsize_is_malformed() {
    assert_eq!(
        Platform::from_dtb(&SMP4[..SMP4.len() - 1]),
        Err(DtError::Malformed(fdt::FdtError::BufferTooSmall))
    );
    assert_eq!(
        platform::dtb_total_size(&SMP4[..platform::HEADER_SIZE - 1]),
        Err(DtError::Malformed(fdt::FdtError::BufferTooSmall))
    );
}

#[test]
fn version_16_is_unsupported() {
    let mut dtb = SMP4.to_vec();
    set_header(&mut dtb, 5, 16);
    assert_eq!(
        structure_error(&dtb),
        StructureError::UnsupportedVersion(16)
    );
}

#[test]
fn structure_block_past_totalsize_is_out_of_bounds() {
    let mut dtb = SMP4.to_vec();
    let size = header(&dtb, 9);
    set_header(&mut dtb, 9, size + 0x1_0000);
    assert_eq!(
        structure_error(&dtb),
        StructureError::BlockOutOfBounds(Block::Struct)
    );
}

#[test]
fn strings_block_offset_overflowing_is_out_of_bounds() {
    let mut dtb = SMP4.to_vec();
    set_header(&mut dtb, 3, u32::MAX);
    assert_eq!(
        structure_error(&dtb),
        StructureError::BlockOutOfBounds(Block::Strings)
    );
}

#[test]
fn memory_reservation_block_without_terminator_is_refused() {
    // Point the reservation block at the structure block, which has no 16
    // zero bytes in a row at 16-byte steps from its start.
    let mut dtb = SMP4.to_vec();
    let total = header(&dtb, 1);
    set_header(&mut dtb, 4, total - 8);
    assert_eq!(
        structure_error(&dtb),
        StructureError::UnterminatedMemReserve
    );
}

#[test]
fn nop_token_is_refused_with_its_offset() {
    // The first token after the root's name (4-byte token + 4 bytes of name
    // padding) is the root's first property; turn it into a NOP.
    let mut dtb = SMP4.to_vec();
    let at = structs(&dtb) + 8;
    set_word(&mut dtb, at, 4);
    assert_eq!(
        structure_error(&dtb),
        StructureError::NopToken { offset: 8 }
    );
}

#[test]
fn unknown_token_is_refused() {
    let mut dtb = SMP4.to_vec();
    let at = structs(&dtb) + 8;
    set_word(&mut dtb, at, 7);
    assert_eq!(
        structure_error(&dtb),
        StructureError::UnknownToken {
            offset: 8,
            token: 7
        }
    );
}

#[test]
fn blob_starting_with_end_node_is_misplaced() {
    let mut dtb = SMP4.to_vec();
    let at = structs(&dtb);
    set_word(&mut dtb, at, 2);
    assert_eq!(
        structure_error(&dtb),
        StructureError::MisplacedToken {
            offset: 0,
            token: 2
        }
    );
}

#[test]
fn property_after_child_node_is_misplaced() {
    // vm-fdt refuses to write this, so build a valid tree and swap tokens:
    // root { child {} ; prop } — the END_NODE of `a` becomes a PROP-less
    // sequence by moving the property after the child.
    let dtb = common::dtb(|w| {
        common::node(w, "a", |_| {});
    });
    // Layout: BEGIN "" | PROP #address-cells | PROP #size-cells | BEGIN "a"
    // | END_NODE | END_NODE | END. Rewrite to BEGIN "" | BEGIN "a" |
    // END_NODE | PROP | PROP | END_NODE | END.
    let s = structs(&dtb);
    let root_begin = &dtb[s..s + 8];
    let props = &dtb[s + 8..s + 40];
    let child = &dtb[s + 40..s + 52];
    let rest = &dtb[s + 52..];
    let mut moved = dtb[..s].to_vec();
    for part in [root_begin, child, props, rest] {
        moved.extend_from_slice(part);
    }
    assert_eq!(
        structure_error(&moved),
        StructureError::MisplacedToken {
            offset: 20,
            token: 3
        }
    );
}

#[test]
fn node_name_running_off_the_end_is_truncated() {
    let mut dtb = common::dtb(|w| common::node(w, "abcdefgh", |_| {}));
    // The child's FDT_BEGIN_NODE follows the root's 8 bytes and its two
    // 16-byte properties; end the block two bytes into its name.
    set_header(&mut dtb, 9, 40 + 6);
    assert_eq!(
        structure_error(&dtb),
        StructureError::Truncated { offset: 40 }
    );
}

#[test]
fn property_name_offset_outside_strings_is_bad_property_name() {
    let mut dtb = SMP4.to_vec();
    let at = structs(&dtb) + 8; // root's first FDT_PROP
    set_word(&mut dtb, at + 8, 0xffff);
    assert_eq!(
        structure_error(&dtb),
        StructureError::BadPropertyName { offset: 8 }
    );
}

#[test]
fn property_length_past_the_block_is_truncated() {
    let mut dtb = SMP4.to_vec();
    let at = structs(&dtb) + 8;
    set_word(&mut dtb, at + 4, 0x10_0000);
    assert_eq!(
        structure_error(&dtb),
        StructureError::Truncated { offset: 8 }
    );
}

#[test]
fn address_cells_of_two_cells_is_bad_cell_count() {
    let dtb = common::dtb(|w| {
        common::node(w, "bus", |w| {
            w.property_array_u32("#address-cells", &[1, 1]).unwrap();
        });
    });
    assert!(matches!(
        structure_error(&dtb),
        StructureError::BadCellCount { .. }
    ));
}

#[test]
fn nesting_deeper_than_max_depth_is_too_deep() {
    fn nest(w: &mut vm_fdt::FdtWriter, levels: usize) {
        if levels > 0 {
            common::node(w, "n", |w| nest(w, levels - 1));
        }
    }
    let ok = common::dtb(|w| {
        common::required(w);
        nest(w, platform::MAX_DEPTH);
    });
    assert!(Platform::from_dtb(&ok).is_ok());
    let deep = common::dtb(|w| {
        common::required(w);
        nest(w, platform::MAX_DEPTH + 1);
    });
    assert!(matches!(
        structure_error(&deep),
        StructureError::TooDeep { .. }
    ));
}

#[test]
fn missing_end_token_is_refused() {
    let mut dtb = SMP4.to_vec();
    let s = structs(&dtb);
    let size = header(&dtb, 9) as usize;
    // The last token is FDT_END; make it a second root node instead.
    set_word(&mut dtb, s + size - 4, 1);
    assert!(matches!(
        structure_error(&dtb),
        StructureError::MisplacedToken { token: 1, .. }
    ));
    // Or cut it off.
    let mut cut = SMP4.to_vec();
    set_header(&mut cut, 9, (size - 4) as u32);
    assert!(matches!(
        structure_error(&cut),
        StructureError::Truncated { .. }
    ));
}

/// Every single-byte corruption and every token-sized overwrite of the real
/// QEMU blob is either parsed or refused: nothing in the parser or in `fdt`
/// may panic on it.
#[test]
fn corrupting_any_byte_of_the_qemu_blob_never_panics() {
    let mut dtb = SMP4.to_vec();
    for at in 0..dtb.len() {
        for flip in [0x01, 0x80, 0xff] {
            dtb[at] ^= flip;
            let _ = Platform::from_dtb(&dtb);
            dtb[at] ^= flip;
        }
    }
    for at in (0..dtb.len() - 3).step_by(4) {
        let saved: [u8; 4] = dtb[at..at + 4].try_into().unwrap();
        for word in [0, 1, 2, 3, 4, 9, 0x7fff_ffff, 0xffff_ffff] {
            set_word(&mut dtb, at, word);
            let _ = Platform::from_dtb(&dtb);
        }
        dtb[at..at + 4].copy_from_slice(&saved);
    }
}

#[test]
fn truncating_the_qemu_blob_anywhere_never_panics() {
    for len in 0..SMP4.len() {
        let mut dtb = SMP4[..len].to_vec();
        if len >= 8 {
            // Claim the shorter size so the structure checks are reached.
            set_header(&mut dtb, 1, len as u32);
        }
        assert!(Platform::from_dtb(&dtb).is_err(), "length {len}");
    }
}

/// What QEMU hands over with a user `-dtb`: the old memory node NOPed out and
/// a new one appended (see data/README.md).
const USER_DTB_WITH_NOPS: &[u8] = include_bytes!("data/qemu-virt-user-dtb-with-nops.dtb");

#[test]
fn user_dtb_from_qemu_has_nops_which_the_parser_refuses() {
    assert!(matches!(
        structure_error(USER_DTB_WITH_NOPS),
        StructureError::NopToken { .. }
    ));
}

#[test]
fn removing_nops_makes_a_user_dtb_from_qemu_parse() {
    let mut dtb = USER_DTB_WITH_NOPS.to_vec();
    let before = header(&dtb, 9);
    let removed = platform::remove_nops(&mut dtb).unwrap();
    assert!(removed > 0);
    assert_eq!(header(&dtb, 9), before - 4 * removed as u32);
    let platform = Platform::from_dtb(&dtb).unwrap();
    assert_eq!(platform.memory.len(), 1);
    assert_eq!(platform.memory[0].size(), 4 << 30);
    assert_eq!(platform.cpus.len(), 4);
    // A second pass finds nothing left to remove.
    assert_eq!(platform::remove_nops(&mut dtb).unwrap(), 0);
}

#[test]
fn removing_nops_leaves_a_tree_without_nops_unchanged() {
    let mut dtb = SMP4.to_vec();
    assert_eq!(platform::remove_nops(&mut dtb).unwrap(), 0);
    assert_eq!(dtb, SMP4);
}

#[test]
fn removing_nops_from_a_truncated_structure_block_is_an_error() {
    let mut dtb = SMP4.to_vec();
    // Cut the structure block in the middle of the root node's properties.
    set_header(&mut dtb, 9, 64);
    assert!(matches!(
        platform::remove_nops(&mut dtb),
        Err(DtError::Structure(StructureError::Truncated { .. }))
    ));
}

#[test]
fn removing_nops_stops_at_an_unknown_token() {
    let mut dtb = SMP4.to_vec();
    let at = structs(&dtb);
    set_word(&mut dtb, at, 0x77);
    assert!(matches!(
        platform::remove_nops(&mut dtb),
        Err(DtError::Structure(StructureError::UnknownToken {
            token: 0x77,
            ..
        }))
    ));
}
