//! The 64-byte header at the start of an arm64 kernel `Image`.
//!
//! Layout and rules from Linux's `Documentation/arch/arm64/booting.rst`,
//! section 4 ("Call the kernel image"):
//!
//! ```text
//! offset  field        notes
//!  0      code0  u32   executable code (branch to stext)
//!  4      code1  u32   executable code
//!  8      text_offset  u64 LE, image load offset from a 2 MiB aligned base
//! 16      image_size   u64 LE, effective size (including bss), 0 before v3.17
//! 24      flags        u64 LE, bit 0 big-endian, bits 1-2 page size,
//!                      bit 3 physical placement, bits 4-63 reserved
//! 32..56  res2..res4   reserved
//! 56      magic  u32   0x644d5241, "ARM\x64"
//! 60      res5   u32   offset of the PE/COFF header (EFI stub)
//! ```
//!
//! Any file with this header is bootable this way, not only Linux: the
//! bare-metal test guest carries the same header.

use core::fmt;

/// Bytes in the header.
pub const IMAGE_HEADER_SIZE: usize = 64;

/// The header's `magic`, "ARM\x64" read as a little-endian `u32`.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;

/// The `text_offset` of kernels older than v3.17, whose header has
/// `image_size == 0` and whose `text_offset` field has no defined byte order.
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;

/// Alignment of the base the kernel is placed `text_offset` above
/// (`MIN_KIMG_ALIGN` in Linux's `arch/arm64/include/asm/boot.h`).
pub const KERNEL_BASE_ALIGN: u64 = 2 << 20;

/// Granule `text_offset` must be a multiple of.
pub const TEXT_OFFSET_ALIGN: u64 = 4096;

const MAGIC_OFFSET: usize = 56;
const FLAG_BIG_ENDIAN: u64 = 1 << 0;
const FLAG_PAGE_SIZE_SHIFT: u32 = 1;
const FLAG_PAGE_SIZE_MASK: u64 = 0b11;
const FLAG_PLACEMENT_ANYWHERE: u64 = 1 << 3;

/// The page size the kernel was built for (`flags` bits 1-2).
///
/// Stage 2 does not care: the guest picks its own stage-1 granule, and any
/// of them is fine as long as the CPU implements it. Reported for logs and
/// so a caller can check `ID_AA64MMFR0_EL1` if it wants to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPageSize {
    /// 0: not stated (pre-v3.17 kernels, most non-Linux images).
    Unspecified,
    /// 1: 4 KiB pages.
    Size4K,
    /// 2: 16 KiB pages.
    Size16K,
    /// 3: 64 KiB pages.
    Size64K,
}

impl KernelPageSize {
    /// The page size in bytes, if stated.
    pub const fn bytes(self) -> Option<u64> {
        match self {
            Self::Unspecified => None,
            Self::Size4K => Some(4 << 10),
            Self::Size16K => Some(16 << 10),
            Self::Size64K => Some(64 << 10),
        }
    }
}

/// Where the kernel accepts its 2 MiB aligned base (`flags` bit 3).
///
/// The load plan always puts the kernel at the bottom of RAM, which
/// satisfies both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// 0: as close as possible to the base of RAM, since memory below the
    /// kernel is not reachable through the linear map.
    NearRamBase,
    /// 1: anywhere in physical memory.
    Anywhere,
}

/// A validated arm64 `Image` header.
///
/// Built only by [`ImageHeader::parse`], so `text_offset` and `image_size`
/// have passed the checks below and are safe to plan with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    code0: u32,
    code1: u32,
    text_offset: u64,
    image_size: u64,
    file_len: u64,
    flags: u64,
    pre_3_17: bool,
}

impl ImageHeader {
    /// Reads the header of the kernel `Image` file `bytes` (the whole file:
    /// its length is checked against `image_size`).
    ///
    /// A header with `image_size == 0` is a kernel older than v3.17:
    /// booting.rst says its `text_offset` may be assumed to be `0x80000`
    /// (the field itself is in the kernel's byte order, so it is ignored),
    /// and its effective size is taken to be the file's length. Such a
    /// kernel wants as much free memory after its end as possible; the load
    /// plan puts everything else at the top of RAM, which is the best it can
    /// do.
    ///
    /// # Errors
    ///
    /// - [`ImageError::TooShort`]: fewer than 64 bytes.
    /// - [`ImageError::BadMagic`]: no "ARM\x64" at offset 56 (with a hint if
    ///   the file looks like a compressed kernel or an ELF `vmlinux`).
    /// - [`ImageError::BigEndian`]: `flags` bit 0 is set; guests run
    ///   little-endian at entry and the hypervisor does not support others.
    /// - [`ImageError::ImageSizeSmallerThanFile`]: a non-zero `image_size`
    ///   below the file's length: loading the file would overrun the memory
    ///   the kernel says it uses.
    /// - [`ImageError::BadTextOffset`]: `text_offset` not a multiple of
    ///   4 KiB or not below 2 MiB. booting.rst states no limit, but Linux
    ///   has only ever used 0x80000, a 4 KiB multiple below 2 MiB
    ///   (`RANDOMIZE_TEXT_OFFSET`) or 0 (since v5.8), and an offset of 2 MiB
    ///   or more would just be another 2 MiB base.
    pub fn parse(bytes: &[u8]) -> Result<Self, ImageError> {
        let Some(header) = bytes.first_chunk::<IMAGE_HEADER_SIZE>() else {
            return Err(ImageError::TooShort { len: bytes.len() });
        };
        let u32_at = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let u64_at = |at: usize| u64::from(u32_at(at)) | (u64::from(u32_at(at + 4)) << 32);

        let magic = u32_at(MAGIC_OFFSET);
        if magic != IMAGE_MAGIC {
            return Err(ImageError::BadMagic {
                found: magic,
                looks_like: looks_like(header),
            });
        }
        let flags = u64_at(24);
        if flags & FLAG_BIG_ENDIAN != 0 {
            return Err(ImageError::BigEndian);
        }
        // usize is at most 64 bits on every target Rust supports.
        let file_len = bytes.len() as u64;
        let (text_offset, image_size, pre_3_17) = match u64_at(16) {
            0 => (LEGACY_TEXT_OFFSET, file_len, true),
            size if size < file_len => {
                return Err(ImageError::ImageSizeSmallerThanFile {
                    image_size: size,
                    file_len,
                })
            }
            size => (u64_at(8), size, false),
        };
        if !text_offset.is_multiple_of(TEXT_OFFSET_ALIGN) || text_offset >= KERNEL_BASE_ALIGN {
            return Err(ImageError::BadTextOffset { text_offset });
        }
        Ok(Self {
            code0: u32_at(0),
            code1: u32_at(4),
            text_offset,
            image_size,
            file_len,
            flags,
            pre_3_17,
        })
    }

    /// The first instruction word.
    pub const fn code0(&self) -> u32 {
        self.code0
    }

    /// The second instruction word.
    pub const fn code1(&self) -> u32 {
        self.code1
    }

    /// Where the image goes above its 2 MiB aligned base: a multiple of
    /// 4 KiB below 2 MiB (0x80000 for pre-v3.17 kernels).
    pub const fn text_offset(&self) -> u64 {
        self.text_offset
    }

    /// Bytes from the image's start the kernel uses, `bss` included: never
    /// less than [`file_len`](Self::file_len), and equal to it for pre-v3.17
    /// kernels.
    pub const fn image_size(&self) -> u64 {
        self.image_size
    }

    /// Length of the file the header was read from.
    pub const fn file_len(&self) -> u64 {
        self.file_len
    }

    /// The raw `flags` field, reserved bits included.
    pub const fn flags(&self) -> u64 {
        self.flags
    }

    /// The page size the kernel was built for.
    pub const fn page_size(&self) -> KernelPageSize {
        match (self.flags >> FLAG_PAGE_SIZE_SHIFT) & FLAG_PAGE_SIZE_MASK {
            0 => KernelPageSize::Unspecified,
            1 => KernelPageSize::Size4K,
            2 => KernelPageSize::Size16K,
            _ => KernelPageSize::Size64K,
        }
    }

    /// Where the kernel accepts to be placed.
    pub const fn placement(&self) -> Placement {
        if self.flags & FLAG_PLACEMENT_ANYWHERE != 0 {
            Placement::Anywhere
        } else {
            Placement::NearRamBase
        }
    }

    /// Whether the header is that of a kernel older than v3.17
    /// (`image_size == 0`), whose size and offset were assumed.
    pub const fn is_pre_3_17(&self) -> bool {
        self.pre_3_17
    }
}

/// What a file without the arm64 magic seems to be, for the error message.
fn looks_like(header: &[u8; IMAGE_HEADER_SIZE]) -> Option<&'static str> {
    match header {
        [0x1f, 0x8b, ..] => Some("a gzip file (Image.gz?): decompress it first"),
        // Linux's EFI zboot format: a PE/COFF "MZ" stub with "zimg" at 4.
        [b'M', b'Z', _, _, b'z', b'i', b'm', b'g', ..] => {
            Some("an EFI zboot image (vmlinuz.efi): use the uncompressed Image")
        }
        [0x7f, b'E', b'L', b'F', ..] => Some("an ELF file (vmlinux?): use arch/arm64/boot/Image"),
        _ => None,
    }
}

/// Why a kernel image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The file is shorter than the 64-byte header.
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// The magic at offset 56 is not "ARM\x64".
    BadMagic {
        /// The little-endian `u32` found there.
        found: u32,
        /// What the file looks like instead, if recognised.
        looks_like: Option<&'static str>,
    },
    /// `flags` bit 0 says the kernel is big-endian.
    BigEndian,
    /// A non-zero `image_size` is smaller than the file.
    ImageSizeSmallerThanFile {
        /// The header's `image_size`.
        image_size: u64,
        /// The file's length.
        file_len: u64,
    },
    /// `text_offset` is not a multiple of 4 KiB below 2 MiB.
    BadTextOffset {
        /// The header's `text_offset`.
        text_offset: u64,
    },
}

impl core::error::Error for ImageError {}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { len } => write!(
                f,
                "kernel image is {len} bytes, shorter than the {IMAGE_HEADER_SIZE}-byte arm64 Image header"
            ),
            Self::BadMagic { found, looks_like } => {
                write!(
                    f,
                    "kernel image has magic {found:#010x} ({:?}) at offset {MAGIC_OFFSET}, not {IMAGE_MAGIC:#010x} (\"ARM\\x64\")",
                    EscapedBytes(found.to_le_bytes())
                )?;
                match looks_like {
                    Some(what) => write!(f, "; it looks like {what}"),
                    None => Ok(()),
                }
            }
            Self::BigEndian => f.write_str("kernel image is big-endian (flags bit 0); only little-endian guests are supported"),
            Self::ImageSizeSmallerThanFile { image_size, file_len } => write!(
                f,
                "kernel image_size {image_size:#x} is smaller than the file ({file_len:#x} bytes)"
            ),
            Self::BadTextOffset { text_offset } => write!(
                f,
                "kernel text_offset {text_offset:#x} is not a multiple of {TEXT_OFFSET_ALIGN:#x} below {KERNEL_BASE_ALIGN:#x}"
            ),
        }
    }
}

/// Four bytes printed as a byte string: printable ASCII as is, others as
/// `\xNN`.
struct EscapedBytes([u8; 4]);

impl fmt::Debug for EscapedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for b in self.0 {
            for c in core::ascii::escape_default(b) {
                write!(f, "{}", char::from(c))?;
            }
        }
        f.write_str("\"")
    }
}
