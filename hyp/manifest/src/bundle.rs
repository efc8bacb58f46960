//! The boot bundle: a small archive of named byte strings (the manifest and
//! the images it names). The layout is in the crate documentation.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// The first eight bytes of every bundle.
pub const MAGIC: [u8; 8] = *b"HYPBNDL1";

/// The only format version there is.
pub const VERSION: u32 = 1;

/// The most entries a bundle may have (the manifest included).
pub const MAX_ENTRIES: usize = 64;

/// The size of an entry's name field; a name fills it or ends at a NUL.
pub const MAX_NAME_LEN: usize = 48;

/// The size of the fixed header before the entry table.
pub const HEADER_LEN: usize = 0x18;

/// The size of one entry in the table.
pub const ENTRY_LEN: usize = 64;

/// Every entry's data starts at a multiple of this from the bundle's start,
/// so that with the bundle loaded page-aligned each image starts on its own
/// page and can be mapped or copied page by page.
pub const DATA_ALIGN: usize = 4096;

/// The name of the entry holding the manifest text.
pub const MANIFEST_ENTRY: &str = "manifest";

// Field offsets in the header and in an entry.
const MAGIC_AT: usize = 0x00;
const VERSION_AT: usize = 0x08;
const COUNT_AT: usize = 0x0c;
const TOTAL_AT: usize = 0x10;
const NAME_AT: usize = 0x00;
const OFFSET_AT: usize = 0x30;
const SIZE_AT: usize = 0x38;

/// A validated boot bundle, borrowing the bytes it was parsed from.
#[derive(Clone, Copy)]
pub struct Bundle<'a> {
    /// The bundle's bytes, exactly `total_size` of them.
    bytes: &'a [u8],
    /// The first `count` are the entries, in table order.
    entries: [(&'a str, &'a [u8]); MAX_ENTRIES],
    count: usize,
}

/// What is wrong with an entry's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// Bytes other than NUL follow the terminating NUL.
    JunkAfterNul,
    /// The name is not UTF-8.
    NotUtf8,
    /// Longer than [`MAX_NAME_LEN`] bytes (when writing).
    TooLong,
    /// Contains a NUL (when writing).
    ContainsNul,
    /// An image named [`MANIFEST_ENTRY`] (when writing).
    Reserved,
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameProblem::Empty => "the name is empty",
            NameProblem::JunkAfterNul => "the name field has bytes after its terminating NUL",
            NameProblem::NotUtf8 => "the name is not UTF-8",
            NameProblem::TooLong => "the name is longer than 48 bytes",
            NameProblem::ContainsNul => "the name contains a NUL",
            NameProblem::Reserved => "the name is reserved for the manifest",
        })
    }
}

/// Why a bundle is refused (reading) or cannot be built (writing).
///
/// Entry indices count from 0, in table order. Names in errors are the raw
/// name bytes decoded lossily, so even an invalid name can be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    /// The bytes end before the header, or before the header's total size.
    Truncated {
        /// Bytes the bundle needs.
        needed: u64,
        /// Bytes there are.
        available: usize,
    },
    /// The first eight bytes are not [`MAGIC`].
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// A version other than [`VERSION`].
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// More than [`MAX_ENTRIES`] entries.
    TooManyEntries {
        /// The entry count found or asked for.
        count: u64,
        /// [`MAX_ENTRIES`].
        max: usize,
    },
    /// The total size does not even cover the header and entry table.
    TotalTooSmall {
        /// The header's total size.
        total: u64,
        /// Where the entry table ends.
        table_end: u64,
    },
    /// An entry name is unusable.
    BadName {
        /// The entry.
        index: usize,
        /// The name, lossily decoded.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// Two entries have the same name.
    DuplicateName {
        /// The later entry.
        index: usize,
        /// The earlier entry with the name.
        first: usize,
        /// The name.
        name: String,
    },
    /// An entry's data does not start at a multiple of [`DATA_ALIGN`].
    Misaligned {
        /// The entry.
        index: usize,
        /// Its name.
        name: String,
        /// Its offset.
        offset: u64,
    },
    /// An entry's data starts inside the header or entry table.
    OverlapsTable {
        /// The entry.
        index: usize,
        /// Its name.
        name: String,
        /// Its offset.
        offset: u64,
        /// Where the table ends.
        table_end: u64,
    },
    /// `offset + size` does not fit in 64 bits.
    SizeOverflow {
        /// The entry.
        index: usize,
        /// Its name.
        name: String,
        /// Its offset.
        offset: u64,
        /// Its size.
        size: u64,
    },
    /// An entry's data runs past the bundle's total size.
    OutOfBounds {
        /// The entry.
        index: usize,
        /// Its name.
        name: String,
        /// Where its data ends.
        end: u64,
        /// The bundle's total size.
        total: u64,
    },
    /// An entry starts before the previous one ends: entries must be in
    /// table order and must not overlap.
    Overlap {
        /// The entry.
        index: usize,
        /// Its name.
        name: String,
        /// Its offset.
        offset: u64,
        /// Where the previous entry (`index - 1`) ends.
        previous_end: u64,
    },
    /// No entry is named [`MANIFEST_ENTRY`].
    MissingManifest,
    /// The manifest entry is not UTF-8.
    ManifestNotUtf8 {
        /// How many leading bytes are valid UTF-8.
        valid_up_to: usize,
    },
    /// The bundle being written would not fit in memory's address range.
    TooLarge,
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boot bundle: ")?;
        match self {
            BundleError::Truncated { needed, available } => write!(
                f,
                "truncated: needs {needed:#x} bytes but only {available:#x} are there"
            ),
            BundleError::BadMagic { found } => {
                write!(f, "bad magic {found:02x?}; expected \"HYPBNDL1\"")
            }
            BundleError::UnsupportedVersion { found } => {
                write!(f, "format version {found}; only version {VERSION} is supported")
            }
            BundleError::TooManyEntries { count, max } => {
                write!(f, "{count} entries; at most {max} are allowed")
            }
            BundleError::TotalTooSmall { total, table_end } => write!(
                f,
                "total size {total:#x} is smaller than its header and entry table ({table_end:#x} bytes)"
            ),
            BundleError::BadName {
                index,
                name,
                problem,
            } => write!(f, "entry {index} ({name:?}): {problem}"),
            BundleError::DuplicateName { index, first, name } => {
                write!(f, "entry {index} ({name:?}) has the same name as entry {first}")
            }
            BundleError::Misaligned {
                index,
                name,
                offset,
            } => write!(
                f,
                "entry {index} ({name:?}) starts at {offset:#x}, not a multiple of {DATA_ALIGN:#x}"
            ),
            BundleError::OverlapsTable {
                index,
                name,
                offset,
                table_end,
            } => write!(
                f,
                "entry {index} ({name:?}) starts at {offset:#x}, inside the header and entry table (which end at {table_end:#x})"
            ),
            BundleError::SizeOverflow {
                index,
                name,
                offset,
                size,
            } => write!(
                f,
                "entry {index} ({name:?}): offset {offset:#x} plus size {size:#x} overflows"
            ),
            BundleError::OutOfBounds {
                index,
                name,
                end,
                total,
            } => write!(
                f,
                "entry {index} ({name:?}) ends at {end:#x} past the bundle's {total:#x} bytes"
            ),
            BundleError::Overlap {
                index,
                name,
                offset,
                previous_end,
            } => write!(
                f,
                "entry {index} ({name:?}) starts at {offset:#x}, before the previous entry ends at {previous_end:#x} (entries must be in order and must not overlap)"
            ),
            BundleError::MissingManifest => {
                write!(f, "no entry named \"{MANIFEST_ENTRY}\"")
            }
            BundleError::ManifestNotUtf8 { valid_up_to } => write!(
                f,
                "the manifest is not UTF-8 (invalid at byte {valid_up_to:#x})"
            ),
            BundleError::TooLarge => f.write_str("too large to build"),
        }
    }
}

impl core::error::Error for BundleError {}

impl<'a> Bundle<'a> {
    /// Validates a bundle: magic, version, entry count, that every entry's
    /// name is non-empty, NUL-padded, UTF-8 and unique, that every entry's
    /// data is [`DATA_ALIGN`]-aligned, after the entry table, inside the
    /// bundle, and after the previous entry's, and that there is a manifest
    /// entry. All arithmetic is checked.
    ///
    /// `bytes` may be longer than the bundle (QEMU's initrd region is rounded
    /// up to pages): only the header's total size is used.
    ///
    /// # Errors
    ///
    /// Every [`BundleError`] variant except [`BundleError::ManifestNotUtf8`]
    /// and [`BundleError::TooLarge`]; the first problem found, in the order
    /// listed above.
    pub fn parse(bytes: &'a [u8]) -> Result<Bundle<'a>, BundleError> {
        let truncated = |needed: u64| BundleError::Truncated {
            needed,
            available: bytes.len(),
        };
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(truncated(HEADER_LEN as u64))?;
        let magic = read_array::<8>(header, MAGIC_AT).ok_or(truncated(HEADER_LEN as u64))?;
        if magic != MAGIC {
            return Err(BundleError::BadMagic { found: magic });
        }
        let version = read_u32(header, VERSION_AT).ok_or(truncated(HEADER_LEN as u64))?;
        if version != VERSION {
            return Err(BundleError::UnsupportedVersion { found: version });
        }
        let count = read_u32(header, COUNT_AT).ok_or(truncated(HEADER_LEN as u64))?;
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= MAX_ENTRIES)
            .ok_or(BundleError::TooManyEntries {
                count: u64::from(count),
                max: MAX_ENTRIES,
            })?;
        let total = read_u64(header, TOTAL_AT).ok_or(truncated(HEADER_LEN as u64))?;
        // At most 0x18 + 64 * 64: no overflow.
        let table_end = HEADER_LEN + count * ENTRY_LEN;
        if total < table_end as u64 {
            return Err(BundleError::TotalTooSmall {
                total,
                table_end: table_end as u64,
            });
        }
        let bytes = usize::try_from(total)
            .ok()
            .and_then(|total| bytes.get(..total))
            .ok_or(truncated(total))?;

        let mut entries: [(&'a str, &'a [u8]); MAX_ENTRIES] = [("", &[]); MAX_ENTRIES];
        let mut previous_end = table_end as u64;
        for index in 0..count {
            let at = HEADER_LEN + index * ENTRY_LEN;
            let raw = bytes
                .get(at..at + ENTRY_LEN)
                .ok_or(truncated(table_end as u64))?;
            let name_field = raw
                .get(NAME_AT..NAME_AT + MAX_NAME_LEN)
                .ok_or(truncated(table_end as u64))?;
            let offset = read_u64(raw, OFFSET_AT).ok_or(truncated(table_end as u64))?;
            let size = read_u64(raw, SIZE_AT).ok_or(truncated(table_end as u64))?;

            let name = decode_name(index, name_field)?;
            if let Some(first) = entries.iter().take(index).position(|(n, _)| *n == name) {
                return Err(BundleError::DuplicateName {
                    index,
                    first,
                    name: name.into(),
                });
            }
            let owned_name = || String::from(name);
            if offset % DATA_ALIGN as u64 != 0 {
                return Err(BundleError::Misaligned {
                    index,
                    name: owned_name(),
                    offset,
                });
            }
            if offset < table_end as u64 {
                return Err(BundleError::OverlapsTable {
                    index,
                    name: owned_name(),
                    offset,
                    table_end: table_end as u64,
                });
            }
            let end = offset
                .checked_add(size)
                .ok_or_else(|| BundleError::SizeOverflow {
                    index,
                    name: owned_name(),
                    offset,
                    size,
                })?;
            let out_of_bounds = || BundleError::OutOfBounds {
                index,
                name: owned_name(),
                end,
                total,
            };
            if end > total {
                return Err(out_of_bounds());
            }
            if offset < previous_end {
                return Err(BundleError::Overlap {
                    index,
                    name: owned_name(),
                    offset,
                    previous_end,
                });
            }
            // Both fit in usize: they are at most `total`, which does.
            let data = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(start, end)| bytes.get(start..end))
                .ok_or_else(out_of_bounds)?;
            if let Some(slot) = entries.get_mut(index) {
                *slot = (name, data);
            }
            previous_end = end;
        }
        let bundle = Bundle {
            bytes,
            entries,
            count,
        };
        if bundle.get(MANIFEST_ENTRY).is_none() {
            return Err(BundleError::MissingManifest);
        }
        Ok(bundle)
    }

    /// The manifest text.
    ///
    /// # Errors
    ///
    /// [`BundleError::ManifestNotUtf8`]. ([`BundleError::MissingManifest`]
    /// cannot happen: [`Bundle::parse`] refuses a bundle without one.)
    pub fn manifest(&self) -> Result<&'a str, BundleError> {
        let bytes = self
            .get(MANIFEST_ENTRY)
            .ok_or(BundleError::MissingManifest)?;
        core::str::from_utf8(bytes).map_err(|error| BundleError::ManifestNotUtf8 {
            valid_up_to: error.valid_up_to(),
        })
    }

    /// The data of the entry named `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.entries()
            .find(|(entry, _)| *entry == name)
            .map(|(_, data)| data)
    }

    /// Every entry, the manifest included, in table order.
    pub fn entries(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.entries.iter().take(self.count).copied()
    }

    /// The number of entries, the manifest included.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries; never true for a parsed bundle, which
    /// has at least the manifest.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The bundle's size in bytes, from its header: how much of the region
    /// it was parsed from it occupies.
    pub fn total_size(&self) -> usize {
        self.bytes.len()
    }
}

impl fmt::Debug for Bundle<'_> {
    /// Names and sizes only; the data can be megabytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Sizes<'b, 'a>(&'b Bundle<'a>);
        impl fmt::Debug for Sizes<'_, '_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.entries().map(|(name, data)| (name, data.len())))
                    .finish()
            }
        }
        f.debug_struct("Bundle")
            .field("total_size", &self.total_size())
            .field("entries", &Sizes(self))
            .finish()
    }
}

/// Builds a bundle: the manifest entry first, then the images in the order
/// given, each at the next [`DATA_ALIGN`] boundary; the total size ends at
/// the last entry's last byte.
///
/// # Errors
///
/// [`BundleError::TooManyEntries`], [`BundleError::BadName`] (empty, longer
/// than [`MAX_NAME_LEN`], containing a NUL, or [`MANIFEST_ENTRY`]),
/// [`BundleError::DuplicateName`], [`BundleError::TooLarge`].
pub fn write_bundle(manifest_text: &str, images: &[(&str, &[u8])]) -> Result<Vec<u8>, BundleError> {
    let count = images.len() + 1;
    if count > MAX_ENTRIES {
        return Err(BundleError::TooManyEntries {
            count: count as u64,
            max: MAX_ENTRIES,
        });
    }
    let all = || {
        core::iter::once((MANIFEST_ENTRY, manifest_text.as_bytes())).chain(images.iter().copied())
    };

    for (index, (name, _)) in all().enumerate().skip(1) {
        let problem = if name.is_empty() {
            Some(NameProblem::Empty)
        } else if name.len() > MAX_NAME_LEN {
            Some(NameProblem::TooLong)
        } else if name.contains('\0') {
            Some(NameProblem::ContainsNul)
        } else if name == MANIFEST_ENTRY {
            Some(NameProblem::Reserved)
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(BundleError::BadName {
                index,
                name: name.into(),
                problem,
            });
        }
        if let Some(first) = all().take(index).position(|(n, _)| n == name) {
            return Err(BundleError::DuplicateName {
                index,
                first,
                name: name.into(),
            });
        }
    }

    // Lay out first, so the buffer is allocated once.
    let table_end = HEADER_LEN + count * ENTRY_LEN;
    let mut placements: Vec<(usize, usize)> = Vec::with_capacity(count);
    let mut next = table_end;
    let mut total = table_end;
    for (_, data) in all() {
        let offset = align_up(next).ok_or(BundleError::TooLarge)?;
        let end = offset
            .checked_add(data.len())
            .ok_or(BundleError::TooLarge)?;
        placements.push((offset, data.len()));
        next = end;
        total = end;
    }
    u64::try_from(total).map_err(|_| BundleError::TooLarge)?;

    let mut out = vec![0u8; total];
    out[MAGIC_AT..MAGIC_AT + 8].copy_from_slice(&MAGIC);
    out[VERSION_AT..VERSION_AT + 4].copy_from_slice(&VERSION.to_le_bytes());
    out[COUNT_AT..COUNT_AT + 4].copy_from_slice(&(count as u32).to_le_bytes());
    out[TOTAL_AT..TOTAL_AT + 8].copy_from_slice(&(total as u64).to_le_bytes());
    for (index, ((name, data), (offset, size))) in all().zip(&placements).enumerate() {
        let entry = HEADER_LEN + index * ENTRY_LEN;
        out[entry + NAME_AT..entry + NAME_AT + name.len()].copy_from_slice(name.as_bytes());
        out[entry + OFFSET_AT..entry + OFFSET_AT + 8]
            .copy_from_slice(&(*offset as u64).to_le_bytes());
        out[entry + SIZE_AT..entry + SIZE_AT + 8].copy_from_slice(&(*size as u64).to_le_bytes());
        out[*offset..*offset + size].copy_from_slice(data);
    }
    Ok(out)
}

/// `value` rounded up to a multiple of [`DATA_ALIGN`], or `None` on overflow.
fn align_up(value: usize) -> Option<usize> {
    Some(value.checked_add(DATA_ALIGN - 1)? & !(DATA_ALIGN - 1))
}

/// An entry's name from its name field: the bytes before the first NUL (or
/// all of them), every later byte NUL.
fn decode_name(index: usize, field: &[u8]) -> Result<&str, BundleError> {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    let bytes = field.get(..len).unwrap_or(&[]);
    let bad = |problem| BundleError::BadName {
        index,
        name: String::from_utf8_lossy(bytes).into_owned(),
        problem,
    };
    if len == 0 {
        return Err(bad(NameProblem::Empty));
    }
    if field.iter().skip(len).any(|&b| b != 0) {
        return Err(bad(NameProblem::JunkAfterNul));
    }
    core::str::from_utf8(bytes).map_err(|_| bad(NameProblem::NotUtf8))
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    read_array(bytes, at).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    read_array(bytes, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const TEXT: &str = "[[vm]]\nname = \"a\"\n";

    fn sample() -> Vec<u8> {
        write_bundle(
            TEXT,
            &[
                ("kernel.bin", &[0xaa; 5000]),
                ("empty", &[]),
                ("rootfs.cpio", b"cpio"),
            ],
        )
        .unwrap()
    }

    /// Where entry `index`'s fields are in a bundle.
    fn entry_at(index: usize) -> usize {
        HEADER_LEN + index * ENTRY_LEN
    }

    fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn get_u64(bytes: &[u8], at: usize) -> u64 {
        read_u64(bytes, at).unwrap()
    }

    fn set_name(bytes: &mut [u8], index: usize, name: &[u8]) {
        let at = entry_at(index) + NAME_AT;
        bytes[at..at + MAX_NAME_LEN].fill(0);
        bytes[at..at + name.len()].copy_from_slice(name);
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.manifest(), Ok(TEXT));
        assert_eq!(bundle.get("kernel.bin"), Some(&[0xaa; 5000][..]));
        assert_eq!(bundle.get("empty"), Some(&[][..]));
        assert_eq!(bundle.get("rootfs.cpio"), Some(&b"cpio"[..]));
        assert_eq!(bundle.get("missing"), None);
        let names: Vec<_> = bundle.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["manifest", "kernel.bin", "empty", "rootfs.cpio"]);
        assert_eq!(bundle.len(), 4);
        assert_eq!(bundle.total_size(), bytes.len());
    }

    #[test]
    fn layout_is_aligned_and_in_order() {
        let bytes = sample();
        assert_eq!(&bytes[..8], b"HYPBNDL1");
        assert_eq!(read_u32(&bytes, VERSION_AT), Some(1));
        assert_eq!(read_u32(&bytes, COUNT_AT), Some(4));
        let offsets: Vec<_> = (0..4)
            .map(|i| get_u64(&bytes, entry_at(i) + OFFSET_AT))
            .collect();
        assert_eq!(offsets, [0x1000, 0x2000, 0x4000, 0x4000]);
        // The total ends at the last byte of the last entry.
        assert_eq!(get_u64(&bytes, TOTAL_AT), 0x4004);
        assert_eq!(bytes.len(), 0x4004);
    }

    #[test]
    fn a_longer_region_is_fine_and_only_the_total_is_used() {
        let mut bytes = sample();
        let total = bytes.len();
        bytes.resize(total.next_multiple_of(DATA_ALIGN), 0xff);
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.total_size(), total);
        assert_eq!(bundle.get("rootfs.cpio"), Some(&b"cpio"[..]));
    }

    #[test]
    fn manifest_only_and_full_names() {
        let bytes = write_bundle("", &[]).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.manifest(), Ok(""));
        let long = "n".repeat(MAX_NAME_LEN);
        let bytes = write_bundle("", &[(&long, b"x")]).unwrap();
        assert_eq!(Bundle::parse(&bytes).unwrap().get(&long), Some(&b"x"[..]));
    }

    #[test]
    fn truncated() {
        let bytes = sample();
        for len in [0, 7, HEADER_LEN - 1] {
            assert_eq!(
                Bundle::parse(&bytes[..len]).unwrap_err(),
                BundleError::Truncated {
                    needed: HEADER_LEN as u64,
                    available: len
                }
            );
        }
        for len in [HEADER_LEN, 0x1000, bytes.len() - 1] {
            assert_eq!(
                Bundle::parse(&bytes[..len]).unwrap_err(),
                BundleError::Truncated {
                    needed: bytes.len() as u64,
                    available: len
                }
            );
        }
        let mut huge = sample();
        put_u64(&mut huge, TOTAL_AT, u64::MAX);
        assert!(matches!(
            Bundle::parse(&huge),
            Err(BundleError::Truncated {
                needed: u64::MAX,
                ..
            })
        ));
    }

    #[test]
    fn bad_magic_and_version() {
        let mut bytes = sample();
        bytes[7] = b'2';
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::BadMagic {
                found: *b"HYPBNDL2"
            }
        );
        let mut bytes = sample();
        put_u32(&mut bytes, VERSION_AT, 2);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::UnsupportedVersion { found: 2 }
        );
    }

    #[test]
    fn entry_counts() {
        let mut bytes = sample();
        put_u32(&mut bytes, COUNT_AT, 65);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::TooManyEntries { count: 65, max: 64 }
        );
        put_u32(&mut bytes, COUNT_AT, u32::MAX);
        assert!(matches!(
            Bundle::parse(&bytes),
            Err(BundleError::TooManyEntries { .. })
        ));
        // Zero entries: nothing overlaps, but there is no manifest.
        put_u32(&mut bytes, COUNT_AT, 0);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::MissingManifest
        );
        // Fewer entries than written: the rest are simply not listed.
        put_u32(&mut bytes, COUNT_AT, 2);
        assert_eq!(Bundle::parse(&bytes).unwrap().len(), 2);
    }

    #[test]
    fn total_smaller_than_the_table() {
        let mut bytes = sample();
        put_u64(&mut bytes, TOTAL_AT, 0x20);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::TotalTooSmall {
                total: 0x20,
                table_end: (HEADER_LEN + 4 * ENTRY_LEN) as u64
            }
        );
    }

    #[test]
    fn entry_out_of_bounds() {
        let mut bytes = sample();
        put_u64(&mut bytes, entry_at(3) + SIZE_AT, 5);
        let error = Bundle::parse(&bytes).unwrap_err();
        assert_eq!(
            error,
            BundleError::OutOfBounds {
                index: 3,
                name: "rootfs.cpio".into(),
                end: 0x4005,
                total: 0x4004
            }
        );
        assert_eq!(
            error.to_string(),
            "boot bundle: entry 3 (\"rootfs.cpio\") ends at 0x4005 past the bundle's 0x4004 bytes"
        );
        // Total shrunk below the last entry: caught the same way.
        let mut bytes = sample();
        put_u64(&mut bytes, TOTAL_AT, 0x4000);
        assert!(matches!(
            Bundle::parse(&bytes),
            Err(BundleError::OutOfBounds { index: 3, .. })
        ));
    }

    #[test]
    fn overflowing_offset_plus_size() {
        let mut bytes = sample();
        put_u64(&mut bytes, entry_at(1) + SIZE_AT, u64::MAX - 0x1000);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::SizeOverflow {
                index: 1,
                name: "kernel.bin".into(),
                offset: 0x2000,
                size: u64::MAX - 0x1000
            }
        );
    }

    #[test]
    fn overlapping_and_out_of_order_entries() {
        let mut bytes = sample();
        // kernel.bin (0x2000, 5000 bytes) and empty (0x4000) are fine; move
        // empty into the kernel.
        put_u64(&mut bytes, entry_at(2) + OFFSET_AT, 0x3000);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::Overlap {
                index: 2,
                name: "empty".into(),
                offset: 0x3000,
                previous_end: 0x2000 + 5000
            }
        );
        let mut bytes = sample();
        // rootfs before the manifest.
        put_u64(&mut bytes, entry_at(0) + OFFSET_AT, 0x2000);
        put_u64(&mut bytes, entry_at(1) + OFFSET_AT, 0x1000);
        put_u64(&mut bytes, entry_at(1) + SIZE_AT, 4);
        assert!(matches!(
            Bundle::parse(&bytes),
            Err(BundleError::Overlap { index: 1, .. })
        ));
    }

    #[test]
    fn data_inside_the_table() {
        let mut bytes = sample();
        put_u64(&mut bytes, entry_at(0) + OFFSET_AT, 0);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::OverlapsTable {
                index: 0,
                name: "manifest".into(),
                offset: 0,
                table_end: (HEADER_LEN + 4 * ENTRY_LEN) as u64
            }
        );
    }

    #[test]
    fn misaligned() {
        let mut bytes = sample();
        put_u64(&mut bytes, entry_at(3) + OFFSET_AT, 0x4001);
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::Misaligned {
                index: 3,
                name: "rootfs.cpio".into(),
                offset: 0x4001
            }
        );
    }

    #[test]
    fn bad_names() {
        let cases: [(&[u8], NameProblem); 3] = [
            (b"", NameProblem::Empty),
            (b"ab\0c", NameProblem::JunkAfterNul),
            (b"\xff\xfe", NameProblem::NotUtf8),
        ];
        for (name, problem) in cases {
            let mut bytes = sample();
            set_name(&mut bytes, 2, name);
            match Bundle::parse(&bytes) {
                Err(BundleError::BadName {
                    index: 2,
                    problem: found,
                    ..
                }) => assert_eq!(found, problem),
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn duplicate_names() {
        let mut bytes = sample();
        set_name(&mut bytes, 3, b"kernel.bin");
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::DuplicateName {
                index: 3,
                first: 1,
                name: "kernel.bin".into()
            }
        );
    }

    #[test]
    fn missing_manifest_and_non_utf8_manifest() {
        let mut bytes = sample();
        set_name(&mut bytes, 0, b"manifesto");
        assert_eq!(
            Bundle::parse(&bytes).unwrap_err(),
            BundleError::MissingManifest
        );
        let mut bytes = sample();
        bytes[0x1000 + 3] = 0xff;
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(
            bundle.manifest(),
            Err(BundleError::ManifestNotUtf8 { valid_up_to: 3 })
        );
    }

    #[test]
    fn writer_refuses_bad_names_and_too_many_entries() {
        let long = "n".repeat(MAX_NAME_LEN + 1);
        let cases = [
            ("", NameProblem::Empty),
            (long.as_str(), NameProblem::TooLong),
            ("a\0b", NameProblem::ContainsNul),
            ("manifest", NameProblem::Reserved),
        ];
        for (name, problem) in cases {
            assert_eq!(
                write_bundle("", &[("ok", b""), (name, b"")]),
                Err(BundleError::BadName {
                    index: 2,
                    name: name.into(),
                    problem
                })
            );
        }
        assert_eq!(
            write_bundle("", &[("a", b""), ("b", b""), ("a", b"")]),
            Err(BundleError::DuplicateName {
                index: 3,
                first: 1,
                name: "a".into()
            })
        );
        let names: Vec<String> = (0..MAX_ENTRIES).map(|i| i.to_string()).collect();
        let images: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
        assert_eq!(
            write_bundle("", &images),
            Err(BundleError::TooManyEntries {
                count: 65,
                max: MAX_ENTRIES
            })
        );
        let bytes = write_bundle("", &images[1..]).unwrap();
        assert_eq!(Bundle::parse(&bytes).unwrap().len(), MAX_ENTRIES);
    }

    #[test]
    fn debug_shows_sizes_not_data() {
        let bytes = sample();
        let debug = alloc::format!("{:?}", Bundle::parse(&bytes).unwrap());
        assert_eq!(
            debug,
            "Bundle { total_size: 16388, entries: {\"manifest\": 18, \"kernel.bin\": 5000, \"empty\": 0, \"rootfs.cpio\": 4} }"
        );
    }
}
