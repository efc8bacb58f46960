//! ELF to flat binary, the form QEMU's `-kernel` needs.
//!
//! QEMU boots a raw arm64 Linux `Image` at EL2 with x0 = the DTB address; given
//! an ELF it would jump to the entry point without passing a DTB. So the linked
//! ELF is flattened: every `PT_LOAD` segment's file bytes go to offset
//! `p_paddr - lowest p_paddr`, gaps are zero-filled, and trailing bss
//! (`p_memsz > p_filesz`) is not stored, because the image header's
//! `image_size` already tells the loader how much memory to reserve.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use object::elf::{FileHeader64, EM_AARCH64, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// Converts the ELF at `elf` to a flat image at `bin`.
///
/// # Errors
///
/// I/O errors and the errors of [`elf_to_flat`].
pub fn convert_file(elf: &Path, bin: &Path) -> Result<()> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let flat = elf_to_flat(&data).with_context(|| format!("converting {}", elf.display()))?;
    std::fs::write(bin, flat).with_context(|| format!("writing {}", bin.display()))
}

/// Makes a user-supplied kernel bootable: an ELF is converted to a flat image
/// in the tool's scratch directory, anything else is used as it is.
///
/// # Errors
///
/// I/O errors and the errors of [`elf_to_flat`].
pub fn prepare_kernel(path: &Path) -> Result<PathBuf> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if !data.starts_with(b"\x7fELF") {
        return Ok(path.to_path_buf());
    }
    let flat = elf_to_flat(&data).with_context(|| format!("converting {}", path.display()))?;
    let name = path.file_name().context("kernel path has no file name")?;
    let bin = crate::cargo::scratch_dir("kernel")?
        .join(name)
        .with_extension("bin");
    std::fs::write(&bin, flat).with_context(|| format!("writing {}", bin.display()))?;
    Ok(bin)
}

/// Flattens a 64-bit AArch64 ELF's loadable segments into one image.
///
/// # Errors
///
/// The data is not a 64-bit AArch64 ELF, has no loadable bytes, or a
/// segment's file range lies outside the file.
pub fn elf_to_flat(data: &[u8]) -> Result<Vec<u8>> {
    let header = FileHeader64::<Endianness>::parse(data).context("not a 64-bit ELF")?;
    let endian = header.endian().context("bad ELF byte order")?;
    ensure!(
        header.e_machine(endian) == EM_AARCH64,
        "ELF machine is {}, not AArch64",
        header.e_machine(endian)
    );
    let segments: Vec<_> = header
        .program_headers(endian, data)
        .context("bad program headers")?
        .iter()
        .filter(|ph| ph.p_type(endian) == PT_LOAD && ph.p_filesz(endian) > 0)
        .collect();
    let Some(base) = segments.iter().map(|ph| ph.p_paddr(endian)).min() else {
        bail!("no PT_LOAD segment with file contents");
    };

    let mut image = Vec::new();
    for ph in segments {
        let bytes = ph.data(endian, data).map_err(|()| {
            anyhow::anyhow!(
                "segment at {:#x} runs past the file end",
                ph.p_paddr(endian)
            )
        })?;
        let start = usize::try_from(ph.p_paddr(endian) - base)?;
        let end = start
            .checked_add(bytes.len())
            .context("segment end overflows")?;
        if image.len() < end {
            image.resize(end, 0);
        }
        image[start..end].copy_from_slice(bytes);
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One program header for [`synthetic_elf`]: (p_type, p_paddr, file bytes, p_memsz).
    type Segment<'a> = (u32, u64, &'a [u8], u64);

    /// Builds a minimal little-endian ELF64 with the given program headers;
    /// segment contents follow the headers in order.
    fn synthetic_elf(machine: u16, segments: &[Segment<'_>]) -> Vec<u8> {
        const EHDR: usize = 64;
        const PHDR: usize = 56;
        let mut out = vec![0u8; EHDR];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2; // ELFCLASS64
        out[5] = 1; // ELFDATA2LSB
        out[6] = 1; // EV_CURRENT
        out[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        out[18..20].copy_from_slice(&machine.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[32..40].copy_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
        out[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes()); // e_ehsize
        out[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes()); // e_phentsize
        out[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());

        let mut offset = (EHDR + PHDR * segments.len()) as u64;
        for &(p_type, paddr, bytes, memsz) in segments {
            let mut ph = [0u8; PHDR];
            ph[0..4].copy_from_slice(&p_type.to_le_bytes());
            ph[8..16].copy_from_slice(&offset.to_le_bytes());
            // Virtual addresses differ from physical on purpose: only p_paddr counts.
            ph[16..24].copy_from_slice(&(paddr | 0xffff_0000_0000_0000).to_le_bytes());
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            out.extend_from_slice(&ph);
            offset += bytes.len() as u64;
        }
        for &(_, _, bytes, _) in segments {
            out.extend_from_slice(bytes);
        }
        out
    }

    // Raw ELF numbers: the synthetic file is written byte by byte.
    const PT_LOAD: u32 = 1;
    const PT_NOTE: u32 = 4;
    const EM_AARCH64: u16 = 183;

    #[test]
    fn segments_are_placed_by_physical_address_with_zero_filled_gaps() {
        let elf = synthetic_elf(
            EM_AARCH64,
            &[
                (PT_LOAD, 0x4008_0000, b"TEXT", 4),
                (PT_NOTE, 0x1000, b"NOTE", 4),
                (PT_LOAD, 0x4008_0010, b"DATA", 0x100), // trailing bss is not stored
                (PT_LOAD, 0x4009_0000, b"", 0x1000),    // bss-only segment
            ],
        );
        let flat = elf_to_flat(&elf).unwrap();
        let mut expected = b"TEXT".to_vec();
        expected.resize(0x10, 0);
        expected.extend_from_slice(b"DATA");
        assert_eq!(flat, expected);
    }

    #[test]
    fn segment_order_in_the_file_does_not_matter() {
        let elf = synthetic_elf(
            EM_AARCH64,
            &[(PT_LOAD, 0x2008, b"BB", 2), (PT_LOAD, 0x2000, b"AA", 2)],
        );
        assert_eq!(elf_to_flat(&elf).unwrap(), b"AA\0\0\0\0\0\0BB");
    }

    #[test]
    fn wrong_machine_and_empty_images_are_refused() {
        const EM_X86_64: u16 = 62;
        let x86 = synthetic_elf(EM_X86_64, &[(PT_LOAD, 0, b"x", 1)]);
        assert!(elf_to_flat(&x86).is_err());
        let empty = synthetic_elf(EM_AARCH64, &[(PT_LOAD, 0, b"", 16)]);
        assert!(elf_to_flat(&empty).is_err());
        assert!(elf_to_flat(b"not an elf").is_err());
    }
}
