//! Checks the layout of a flattened device tree before the `fdt` crate reads it.
//!
//! `fdt` 0.1.5 slices, `unwrap`s and `assert!`s on what the header and tokens
//! claim, so a corrupt blob would panic the hypervisor at boot. Every claim it
//! relies on is checked here first, against Devicetree Specification v0.4
//! chapter 5; a blob that passes can be walked by `fdt` without panicking.

use crate::error::{Block, DtError, StructureError};
use crate::MAX_DEPTH;

/// Size of the header (Devicetree Specification v0.4 §5.2).
pub const HEADER_SIZE: usize = 40;

const MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// The `totalsize` a device tree header claims, so early boot code that only
/// has a pointer (x0) knows how many bytes to take.
///
/// `header` needs at least [`HEADER_SIZE`] bytes; any more are ignored.
///
/// # Errors
///
/// [`DtError::Malformed`] with `BufferTooSmall` for a short header and
/// `BadMagic` for a wrong magic number.
pub fn dtb_total_size(header: &[u8]) -> Result<usize, DtError> {
    let magic = be32(header, 0).ok_or(fdt::FdtError::BufferTooSmall)?;
    if magic != MAGIC {
        return Err(fdt::FdtError::BadMagic.into());
    }
    let total = be32(header, 4).ok_or(fdt::FdtError::BufferTooSmall)?;
    if header.len() < HEADER_SIZE {
        return Err(fdt::FdtError::BufferTooSmall.into());
    }
    Ok(total as usize)
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn block(
    dtb: &[u8],
    total: usize,
    offset: u32,
    size: u32,
    which: Block,
) -> Result<&[u8], StructureError> {
    let start = offset as usize;
    start
        .checked_add(size as usize)
        .filter(|&end| end <= total)
        .and_then(|end| dtb.get(start..end))
        .ok_or(StructureError::BlockOutOfBounds(which))
}

/// The NUL-terminated UTF-8 string at the start of `bytes`, and its length
/// without the NUL.
fn c_str(bytes: &[u8]) -> Option<(&str, usize)> {
    let len = bytes.iter().position(|&b| b == 0)?;
    let s = core::str::from_utf8(&bytes[..len]).ok()?;
    Some((s, len))
}

/// `len` rounded up to the 4-byte token alignment (§5.4.1), or `None` on
/// overflow.
fn padded(len: usize) -> Option<usize> {
    Some(len.checked_add(3)? & !3)
}

/// Checks that `dtb` is a device tree `fdt` 0.1.5 can walk without panicking.
///
/// # Errors
///
/// [`DtError::Malformed`] when `fdt` itself refuses the header,
/// [`DtError::Structure`] for everything found here.
pub(crate) fn check(dtb: &[u8]) -> Result<(), DtError> {
    // Magic, a full header and `totalsize <= dtb.len()`.
    fdt::Fdt::new(dtb)?;
    let field = |i: usize| be32(dtb, 4 * i).ok_or(fdt::FdtError::BufferTooSmall);
    let total = field(1)? as usize;
    let version = field(5)?;
    if version < 17 {
        return Err(StructureError::UnsupportedVersion(version).into());
    }
    let structs = block(dtb, total, field(2)?, field(9)?, Block::Struct)?;
    let strings = block(dtb, total, field(3)?, field(8)?, Block::Strings)?;
    check_mem_reserve(dtb, total, field(4)?)?;
    check_structs(structs, strings)?;
    Ok(())
}

/// Removes the `FDT_NOP` tokens from the structure block in place and
/// shrinks the header's `size_dt_struct` to match; returns how many NOPs were
/// removed.
///
/// Boot loaders NOP out nodes they replace (QEMU does so with the memory
/// nodes of a user-supplied `-dtb`), and `fdt` 0.1.5 cannot walk NOPs. The
/// rest of the blob is left where it is: the bytes freed at the end of the
/// structure block become an unused gap, which the specification allows.
///
/// # Errors
///
/// [`DtError::Malformed`] when the header is unusable, [`DtError::Structure`]
/// when a token runs past the structure block or is unknown. On error the
/// blob may be partly compacted but its header is unchanged.
pub fn remove_nops(dtb: &mut [u8]) -> Result<usize, DtError> {
    fdt::Fdt::new(dtb)?;
    let field = |dtb: &[u8], i: usize| be32(dtb, 4 * i).ok_or(fdt::FdtError::BufferTooSmall);
    let total = field(dtb, 1)? as usize;
    let (offset, size) = (field(dtb, 2)?, field(dtb, 9)?);
    block(dtb, total, offset, size, Block::Struct)?;
    let structs = &mut dtb[offset as usize..offset as usize + size as usize];
    let (mut read, mut write, mut removed) = (0usize, 0usize, 0usize);
    loop {
        let token = be32(structs, read).ok_or(StructureError::Truncated { offset: read })?;
        let truncated = StructureError::Truncated { offset: read };
        let len = match token {
            FDT_BEGIN_NODE => {
                let name = structs.get(read + 4..).ok_or(truncated)?;
                let name_len = name.iter().position(|&b| b == 0).ok_or(truncated)?;
                padded(name_len + 1).ok_or(truncated)? + 4
            }
            FDT_PROP => {
                let value_len = be32(structs, read + 4).ok_or(truncated)? as usize;
                padded(value_len).ok_or(truncated)? + 12
            }
            FDT_END_NODE | FDT_END | FDT_NOP => 4,
            _ => {
                return Err(StructureError::UnknownToken {
                    offset: read,
                    token,
                }
                .into())
            }
        };
        let end = read
            .checked_add(len)
            .filter(|&e| e <= structs.len())
            .ok_or(truncated)?;
        if token == FDT_NOP {
            removed += 1;
        } else {
            structs.copy_within(read..end, write);
            write += len;
        }
        read = end;
        if token == FDT_END {
            break;
        }
    }
    // `write` <= `size`, which came from a u32.
    let new_size = u32::try_from(write).unwrap_or(size);
    dtb[36..40].copy_from_slice(&new_size.to_be_bytes());
    Ok(removed)
}

fn check_mem_reserve(dtb: &[u8], total: usize, offset: u32) -> Result<(), StructureError> {
    let area = dtb
        .get(offset as usize..total)
        .ok_or(StructureError::BlockOutOfBounds(Block::MemReserve))?;
    // Each entry is an address and a size of 64 bits; all-zero ends the list.
    for entry in area.chunks_exact(16) {
        if entry.iter().all(|&b| b == 0) {
            return Ok(());
        }
    }
    Err(StructureError::UnterminatedMemReserve)
}

fn check_structs(structs: &[u8], strings: &[u8]) -> Result<(), StructureError> {
    // Open nodes, and whether each already had a child: properties must come
    // before subnodes (§5.4.2), which `fdt` relies on when skipping a node.
    let mut had_child = [false; MAX_DEPTH + 1];
    let mut depth = 0usize;
    let mut root_done = false;
    let mut at = 0usize;
    loop {
        let token = be32(structs, at).ok_or(StructureError::Truncated { offset: at })?;
        let misplaced = StructureError::MisplacedToken { offset: at, token };
        let body = at + 4;
        match token {
            FDT_BEGIN_NODE => {
                if root_done {
                    return Err(misplaced);
                }
                if depth > MAX_DEPTH {
                    return Err(StructureError::TooDeep { offset: at });
                }
                let rest = structs.get(body..).unwrap_or_default();
                let (name, len) = c_str(rest).ok_or(if rest.contains(&0) {
                    StructureError::BadNodeName { offset: body }
                } else {
                    StructureError::Truncated { offset: at }
                })?;
                // The root node's name is empty (§5.4.1); `fdt` finds `/`
                // by that, and nothing else may have an empty name.
                if (depth == 0) != name.is_empty() {
                    return Err(StructureError::BadNodeName { offset: body });
                }
                if depth > 0 {
                    had_child[depth - 1] = true;
                }
                had_child[depth] = false;
                depth += 1;
                at = padded(len + 1)
                    .and_then(|n| body.checked_add(n))
                    .ok_or(StructureError::Truncated { offset: at })?;
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(misplaced);
                }
                depth -= 1;
                root_done = depth == 0;
                at = body;
            }
            FDT_PROP => {
                if depth == 0 || had_child[depth - 1] {
                    return Err(misplaced);
                }
                let len = be32(structs, body).ok_or(StructureError::Truncated { offset: at })?;
                let name_off =
                    be32(structs, body + 4).ok_or(StructureError::Truncated { offset: at })?;
                let name = strings
                    .get(name_off as usize..)
                    .and_then(c_str)
                    .ok_or(StructureError::BadPropertyName { offset: at })?
                    .0;
                let value = body + 8;
                value
                    .checked_add(len as usize)
                    .filter(|&end| end <= structs.len())
                    .ok_or(StructureError::Truncated { offset: at })?;
                // `fdt` `expect`s these to hold a cell when it reads cell sizes.
                if matches!(name, "#address-cells" | "#size-cells") && len != 4 {
                    return Err(StructureError::BadCellCount { offset: at });
                }
                at = padded(len as usize)
                    .and_then(|n| value.checked_add(n))
                    .ok_or(StructureError::Truncated { offset: at })?;
            }
            FDT_NOP => return Err(StructureError::NopToken { offset: at }),
            FDT_END => {
                return if root_done { Ok(()) } else { Err(misplaced) };
            }
            _ => return Err(StructureError::UnknownToken { offset: at, token }),
        }
    }
}
