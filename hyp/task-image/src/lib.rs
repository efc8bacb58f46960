//! A task's program image: the loadable segments of an AArch64 ELF
//! executable, checked before anything is mapped.
//!
//! The hypervisor runs programs it did not build itself (a device backend
//! shipped in the boot bundle), so the image is input like any other: every
//! field is checked and a bad one is an [`ImageError`] naming it, never a
//! panic. A good image is a static little-endian AArch64 executable whose
//! loadable segments lie inside the task's image window
//! ([`task_abi::TASK_BASE`], [`task_abi::IMAGE_WINDOW`] bytes), never share
//! a page, are never both writable and executable, and whose entry point
//! is in an executable one.

#![no_std]
#![deny(missing_docs)]

use core::fmt;
use elf::abi::{EM_AARCH64, ET_EXEC, PF_W, PF_X, PT_DYNAMIC, PT_INTERP, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use elf::ElfBytes;
use task_abi::{Access, IMAGE_WINDOW, PAGE_SIZE, TASK_BASE};

/// Most loadable segments an image may have.
pub const MAX_SEGMENTS: usize = 8;

/// One loadable segment, widened to whole pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    /// First task address of its pages.
    pub start: u64,
    /// Bytes of its pages (a multiple of [`PAGE_SIZE`]).
    pub len: u64,
    /// What the task may do there.
    pub access: Access,
    /// Its bytes in the file; the rest of its pages are zero.
    pub data: &'a [u8],
    /// Where `data` goes, as an offset from `start`.
    pub data_offset: u64,
}

/// A checked program image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Image<'a> {
    /// The entry point.
    pub entry: u64,
    segments: [Option<Segment<'a>>; MAX_SEGMENTS],
}

impl<'a> Image<'a> {
    /// Its loadable segments, in file order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'a>> + '_ {
        self.segments.iter().flatten().copied()
    }
}

/// Why an image is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Not a well-formed ELF file.
    Malformed,
    /// Not 64-bit little-endian.
    NotElf64Le,
    /// Not for AArch64.
    WrongMachine(u16),
    /// Not a static executable (`ET_EXEC`, no interpreter or dynamic
    /// section).
    NotStaticExecutable,
    /// No loadable segment.
    NoSegments,
    /// More than [`MAX_SEGMENTS`] loadable segments.
    TooManySegments,
    /// A segment's file bytes lie outside the file, or exceed its memory size.
    BadFileRange {
        /// The segment's address.
        vaddr: u64,
    },
    /// A segment lies (partly) outside the image window.
    OutsideWindow {
        /// The segment's address.
        vaddr: u64,
        /// Its size in memory.
        memsz: u64,
    },
    /// A segment is both writable and executable.
    WritableAndExecutable {
        /// The segment's address.
        vaddr: u64,
    },
    /// Two segments share a page.
    Overlap {
        /// The later segment's address.
        vaddr: u64,
    },
    /// The entry point is not in an executable segment.
    BadEntry(u64),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("not a well-formed ELF file"),
            Self::NotElf64Le => f.write_str("not a 64-bit little-endian ELF file"),
            Self::WrongMachine(m) => write!(f, "built for machine {m}, not AArch64 ({EM_AARCH64})"),
            Self::NotStaticExecutable => f.write_str("not a static executable"),
            Self::NoSegments => f.write_str("no loadable segment"),
            Self::TooManySegments => write!(f, "more than {MAX_SEGMENTS} loadable segments"),
            Self::BadFileRange { vaddr } => {
                write!(f, "segment at {vaddr:#x}: its file bytes are out of range")
            }
            Self::OutsideWindow { vaddr, memsz } => write!(
                f,
                "segment at {vaddr:#x} ({memsz:#x} bytes) is outside the task image window {TASK_BASE:#x}..{:#x}",
                TASK_BASE + IMAGE_WINDOW
            ),
            Self::WritableAndExecutable { vaddr } => {
                write!(f, "segment at {vaddr:#x} is writable and executable")
            }
            Self::Overlap { vaddr } => {
                write!(f, "segment at {vaddr:#x} shares a page with another")
            }
            Self::BadEntry(entry) => {
                write!(f, "entry point {entry:#x} is not in an executable segment")
            }
        }
    }
}

/// Parses and checks `bytes`.
///
/// # Errors
///
/// See [`ImageError`].
pub fn parse(bytes: &[u8]) -> Result<Image<'_>, ImageError> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(bytes).map_err(|_| ImageError::Malformed)?;
    let header = &file.ehdr;
    if header.class != Class::ELF64 {
        return Err(ImageError::NotElf64Le);
    }
    if header.e_machine != EM_AARCH64 {
        return Err(ImageError::WrongMachine(header.e_machine));
    }
    if header.e_type != ET_EXEC {
        return Err(ImageError::NotStaticExecutable);
    }
    let table = file.segments().ok_or(ImageError::NoSegments)?;
    let mut segments = [None; MAX_SEGMENTS];
    let mut count = 0;
    for ph in table.iter() {
        match ph.p_type {
            PT_INTERP | PT_DYNAMIC => return Err(ImageError::NotStaticExecutable),
            PT_LOAD => {}
            _ => continue,
        }
        let vaddr = ph.p_vaddr;
        if ph.p_memsz == 0 {
            continue;
        }
        let outside = ImageError::OutsideWindow {
            vaddr,
            memsz: ph.p_memsz,
        };
        let end = vaddr.checked_add(ph.p_memsz).ok_or(outside)?;
        if vaddr < TASK_BASE || end > TASK_BASE + IMAGE_WINDOW {
            return Err(outside);
        }
        let bad_range = ImageError::BadFileRange { vaddr };
        let file_end = ph.p_offset.checked_add(ph.p_filesz).ok_or(bad_range)?;
        if ph.p_filesz > ph.p_memsz || file_end > bytes.len() as u64 {
            return Err(bad_range);
        }
        let writable = ph.p_flags & PF_W != 0;
        let executable = ph.p_flags & PF_X != 0;
        let access = match (writable, executable) {
            (true, true) => return Err(ImageError::WritableAndExecutable { vaddr }),
            (true, false) => Access::ReadWrite,
            (false, true) => Access::ReadExecute,
            (false, false) => Access::Read,
        };
        let start = vaddr & !(PAGE_SIZE - 1);
        let len = end.next_multiple_of(PAGE_SIZE) - start;
        let overlaps = segments
            .iter()
            .flatten()
            .any(|s: &Segment<'_>| s.start < start + len && start < s.start + s.len);
        if overlaps {
            return Err(ImageError::Overlap { vaddr });
        }
        let slot = segments.get_mut(count).ok_or(ImageError::TooManySegments)?;
        *slot = Some(Segment {
            start,
            len,
            access,
            data: &bytes[ph.p_offset as usize..file_end as usize],
            data_offset: vaddr - start,
        });
        count += 1;
    }
    if count == 0 {
        return Err(ImageError::NoSegments);
    }
    let entry = header.e_entry;
    let in_code = segments
        .iter()
        .flatten()
        .any(|s| s.access == Access::ReadExecute && entry >= s.start && entry < s.start + s.len);
    if !in_code {
        return Err(ImageError::BadEntry(entry));
    }
    Ok(Image { entry, segments })
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// A load segment: (vaddr, flags, file bytes, memsz).
    type Load<'a> = (u64, u32, &'a [u8], u64);

    /// A minimal ELF64 little-endian executable with `loads`.
    fn elf(machine: u16, kind: u16, entry: u64, loads: &[Load<'_>]) -> Vec<u8> {
        let phoff = 64u64;
        let data_start = phoff + 56 * loads.len() as u64;
        let mut out = Vec::new();
        out.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&entry.to_le_bytes());
        out.extend_from_slice(&phoff.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // shoff
        out.extend_from_slice(&0u32.to_le_bytes()); // flags
        out.extend_from_slice(&64u16.to_le_bytes()); // ehsize
        out.extend_from_slice(&56u16.to_le_bytes()); // phentsize
        out.extend_from_slice(&(loads.len() as u16).to_le_bytes());
        out.extend_from_slice(&64u16.to_le_bytes()); // shentsize
        out.extend_from_slice(&0u16.to_le_bytes()); // shnum
        out.extend_from_slice(&0u16.to_le_bytes()); // shstrndx
        let mut offset = data_start;
        for &(vaddr, flags, data, memsz) in loads {
            out.extend_from_slice(&PT_LOAD.to_le_bytes());
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&vaddr.to_le_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&memsz.to_le_bytes());
            out.extend_from_slice(&PAGE_SIZE.to_le_bytes());
            offset += data.len() as u64;
        }
        for &(_, _, data, _) in loads {
            out.extend_from_slice(data);
        }
        out
    }

    const R: u32 = 4;
    const RW: u32 = 6;
    const RX: u32 = 5;

    fn good() -> Vec<u8> {
        elf(
            EM_AARCH64,
            ET_EXEC,
            TASK_BASE + 8,
            &[
                (TASK_BASE, RX, &[1; 100], 100),
                (TASK_BASE + PAGE_SIZE, R, &[2; 10], 10),
                (TASK_BASE + 2 * PAGE_SIZE + 16, RW, &[3; 4], 3 * PAGE_SIZE),
            ],
        )
    }

    #[test]
    fn a_good_image_gives_its_segments() {
        let bytes = good();
        let image = parse(&bytes).unwrap();
        assert_eq!(image.entry, TASK_BASE + 8);
        let segments: Vec<_> = image.segments().collect();
        assert_eq!(segments.len(), 3);
        assert_eq!(
            (segments[0].start, segments[0].len, segments[0].access),
            (TASK_BASE, PAGE_SIZE, Access::ReadExecute)
        );
        assert_eq!(segments[0].data, &[1; 100]);
        assert_eq!(segments[1].access, Access::Read);
        let data = segments[2];
        assert_eq!(
            (data.start, data.len, data.data_offset, data.access),
            (
                TASK_BASE + 2 * PAGE_SIZE,
                4 * PAGE_SIZE,
                16,
                Access::ReadWrite
            )
        );
    }

    #[test]
    fn bad_images_are_refused_by_name() {
        let rx = |vaddr| (vaddr, RX, &[0u8; 8][..], 8);
        let cases: Vec<(Vec<u8>, ImageError)> = std::vec![
            (Vec::new(), ImageError::Malformed),
            (
                b"not an elf file at all, not at all..".to_vec(),
                ImageError::Malformed
            ),
            (
                elf(62, ET_EXEC, TASK_BASE, &[rx(TASK_BASE)]),
                ImageError::WrongMachine(62)
            ),
            (
                elf(EM_AARCH64, 3, TASK_BASE, &[rx(TASK_BASE)]),
                ImageError::NotStaticExecutable
            ),
            (
                elf(EM_AARCH64, ET_EXEC, TASK_BASE, &[]),
                ImageError::NoSegments
            ),
            (
                elf(EM_AARCH64, ET_EXEC, 0x4008_0000, &[rx(0x4008_0000)]),
                ImageError::OutsideWindow {
                    vaddr: 0x4008_0000,
                    memsz: 8
                }
            ),
            (
                elf(
                    EM_AARCH64,
                    ET_EXEC,
                    TASK_BASE,
                    &[(TASK_BASE, RX, &[], IMAGE_WINDOW + 1)]
                ),
                ImageError::OutsideWindow {
                    vaddr: TASK_BASE,
                    memsz: IMAGE_WINDOW + 1
                }
            ),
            (
                elf(
                    EM_AARCH64,
                    ET_EXEC,
                    TASK_BASE,
                    &[(TASK_BASE, 7, &[0; 8], 8)]
                ),
                ImageError::WritableAndExecutable { vaddr: TASK_BASE }
            ),
            (
                elf(
                    EM_AARCH64,
                    ET_EXEC,
                    TASK_BASE,
                    &[(TASK_BASE, RX, &[0; 8], 4)]
                ),
                ImageError::BadFileRange { vaddr: TASK_BASE }
            ),
            (
                elf(
                    EM_AARCH64,
                    ET_EXEC,
                    TASK_BASE,
                    &[rx(TASK_BASE), (TASK_BASE + 64, RW, &[0; 8], 8)]
                ),
                ImageError::Overlap {
                    vaddr: TASK_BASE + 64
                }
            ),
            (
                elf(
                    EM_AARCH64,
                    ET_EXEC,
                    TASK_BASE + PAGE_SIZE,
                    &[rx(TASK_BASE), (TASK_BASE + PAGE_SIZE, RW, &[0; 8], 8)]
                ),
                ImageError::BadEntry(TASK_BASE + PAGE_SIZE)
            ),
        ];
        for (bytes, error) in cases {
            assert_eq!(parse(&bytes), Err(error));
        }
        let many: Vec<Load<'_>> = (0..=MAX_SEGMENTS as u64)
            .map(|i| (TASK_BASE + i * PAGE_SIZE, RX, &[0u8; 8][..], 8))
            .collect();
        assert_eq!(
            parse(&elf(EM_AARCH64, ET_EXEC, TASK_BASE, &many)),
            Err(ImageError::TooManySegments)
        );
    }

    #[test]
    fn a_file_range_past_the_end_is_refused() {
        let mut bytes = good();
        bytes.truncate(bytes.len() - 2);
        assert_eq!(
            parse(&bytes),
            Err(ImageError::BadFileRange {
                vaddr: TASK_BASE + 2 * PAGE_SIZE + 16
            })
        );
    }

    #[test]
    fn truncations_never_panic() {
        let bytes = good();
        for len in 0..bytes.len() {
            let _ = parse(&bytes[..len]);
        }
        let mut bytes = bytes;
        for i in 0..bytes.len() {
            let saved = bytes[i];
            bytes[i] ^= 0xa5;
            let _ = parse(&bytes);
            bytes[i] = saved;
        }
    }
}
