//! A writer for the cpio "newc" format, the one Linux unpacks an initramfs from.
//!
//! Format from Linux's `Documentation/driver-api/early-userspace/buffer-format.rst`:
//! every entry is a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the NUL-terminated path name padded to a multiple of 4 bytes
//! (counting the header), then the data padded to a multiple of 4. The archive
//! ends with an entry named `TRAILER!!!`.
//!
//! Written here rather than by `cpio(1)` so the archive can hold device nodes
//! (`/dev/console`) without root, and so it is the same bytes on every host:
//! owners are root, timestamps are 0.

use std::collections::BTreeSet;
use std::fmt;

/// `c_magic` of the newc format (no checksums).
const MAGIC: &[u8; 6] = b"070701";

/// Header bytes: the magic and thirteen 8-digit hex fields.
const HEADER_LEN: usize = 110;

/// Entries, names and data are aligned to this.
const ALIGN: usize = 4;

/// The name of the entry that ends the archive.
const TRAILER: &str = "TRAILER!!!";

/// File type bits of `c_mode` (`S_IFMT` and friends, from `<sys/stat.h>`).
const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Permission bits a caller may pass (set-id, sticky and rwx for all).
const PERMISSION_BITS: u32 = 0o7777;

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpioError {
    /// The path is empty, absolute, has an empty, `.` or `..` component,
    /// or a NUL byte.
    BadPath(String),
    /// The path was already added.
    Duplicate(String),
    /// The path's parent directory has not been added before it; the kernel
    /// would fail to create the entry.
    MissingParent(String),
    /// Permission bits outside `0o7777`.
    BadMode {
        /// The entry's path.
        path: String,
        /// The mode given.
        mode: u32,
    },
    /// The data is 4 GiB or more: newc sizes are 32-bit.
    TooLarge {
        /// The entry's path.
        path: String,
        /// The data's length.
        len: usize,
    },
}

impl std::error::Error for CpioError {}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPath(path) => write!(
                f,
                "cpio: bad path {path:?}: it must be relative, without `.`, `..`, empty components or NUL"
            ),
            Self::Duplicate(path) => write!(f, "cpio: {path:?} is already in the archive"),
            Self::MissingParent(path) => {
                write!(f, "cpio: the parent directory of {path:?} is not in the archive yet")
            }
            Self::BadMode { path, mode } => {
                write!(f, "cpio: {path:?}: mode {mode:#o} has bits outside 0o7777")
            }
            Self::TooLarge { path, len } => {
                write!(f, "cpio: {path:?} is {len} bytes, too large for newc's 32-bit size")
            }
        }
    }
}

/// A newc archive being built in memory. Entries are written in the order
/// they are added; a directory must be added before anything in it.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    /// Paths added so far, for the duplicate and parent checks.
    paths: BTreeSet<String>,
    /// Inode number of the next entry. Unique per entry: the kernel treats
    /// regular files with equal inode numbers and `nlink > 1` as hard links.
    next_ino: u32,
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a directory.
    ///
    /// # Errors
    ///
    /// [`CpioError::BadPath`], [`CpioError::Duplicate`],
    /// [`CpioError::MissingParent`], [`CpioError::BadMode`].
    pub fn dir(&mut self, path: &str, mode: u32) -> Result<(), CpioError> {
        // nlink 2: the entry in its parent and its own `.`.
        self.entry(path, S_IFDIR, mode, 2, (0, 0), &[])
    }

    /// Adds a regular file.
    ///
    /// # Errors
    ///
    /// As for [`Writer::dir`], and [`CpioError::TooLarge`].
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> Result<(), CpioError> {
        self.entry(path, S_IFREG, mode, 1, (0, 0), data)
    }

    /// Adds a symbolic link to `target` (stored as the entry's data).
    ///
    /// # Errors
    ///
    /// As for [`Writer::dir`].
    pub fn symlink(&mut self, path: &str, target: &str) -> Result<(), CpioError> {
        self.entry(path, S_IFLNK, 0o777, 1, (0, 0), target.as_bytes())
    }

    /// Adds a character device node with the given major and minor numbers.
    ///
    /// # Errors
    ///
    /// As for [`Writer::dir`].
    pub fn char_device(
        &mut self,
        path: &str,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<(), CpioError> {
        self.entry(path, S_IFCHR, mode, 1, (major, minor), &[])
    }

    /// Ends the archive with the trailer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.write_entry(TRAILER, 0, 0, 1, (0, 0), &[]);
        self.out
    }

    fn entry(
        &mut self,
        path: &str,
        kind: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) -> Result<(), CpioError> {
        let valid = !path.is_empty()
            && !path.contains('\0')
            && path
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..")
            // The trailer's name would end the archive early.
            && path != TRAILER;
        if !valid {
            return Err(CpioError::BadPath(path.into()));
        }
        if mode & !PERMISSION_BITS != 0 {
            return Err(CpioError::BadMode {
                path: path.into(),
                mode,
            });
        }
        if u32::try_from(data.len()).is_err() {
            return Err(CpioError::TooLarge {
                path: path.into(),
                len: data.len(),
            });
        }
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !self.paths.contains(parent) {
                return Err(CpioError::MissingParent(path.into()));
            }
        }
        if !self.paths.insert(path.into()) {
            return Err(CpioError::Duplicate(path.into()));
        }
        self.next_ino += 1;
        let ino = self.next_ino;
        self.write_entry(path, ino, kind | mode, nlink, rdev, data);
        Ok(())
    }

    /// Writes one header, name and data. `data.len()` fits in 32 bits
    /// (checked by the callers).
    fn write_entry(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        (rdev_major, rdev_minor): (u32, u32),
        data: &[u8],
    ) {
        let filesize = u32::try_from(data.len()).unwrap_or(u32::MAX);
        // The name's length includes its terminating NUL; paths are short.
        let namesize = u32::try_from(name.len() + 1).unwrap_or(u32::MAX);
        // Owned by root, timestamp 0 (reproducible), on device 0:0, no checksum.
        let (uid, gid, mtime, dev_major, dev_minor, check) = (0, 0, 0, 0, 0, 0);
        let fields = [
            ino, mode, uid, gid, nlink, mtime, filesize, dev_major, dev_minor, rdev_major,
            rdev_minor, namesize, check,
        ];
        let start = self.out.len();
        self.out.extend_from_slice(MAGIC);
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        debug_assert_eq!(self.out.len() - start, HEADER_LEN);
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    /// Pads with NULs to the next multiple of [`ALIGN`]. Every entry starts
    /// aligned, so the archive's length is the entry's offset plus what it has.
    fn pad(&mut self) {
        let padded = self.out.len().next_multiple_of(ALIGN);
        self.out.resize(padded, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One parsed entry: (name, mode, nlink, filesize, rdevmajor, rdevminor, data).
    type Entry = (String, u32, u32, u32, u32, u32, Vec<u8>);

    /// A minimal newc reader, to check the writer against the format's rules.
    fn parse(mut archive: &[u8]) -> Vec<Entry> {
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            assert_eq!(offset % ALIGN, 0, "entry at unaligned offset {offset}");
            assert_eq!(&archive[..6], MAGIC);
            let field = |i: usize| {
                let text = std::str::from_utf8(&archive[6 + 8 * i..14 + 8 * i]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (mode, nlink, filesize) = (field(1), field(4), field(6));
            let (rdevmajor, rdevminor, namesize) = (field(9), field(10), field(11));
            assert_eq!(field(12), 0, "check field");
            let namesize = namesize as usize;
            let name_end = HEADER_LEN + namesize;
            assert_eq!(archive[name_end - 1], 0, "name is NUL-terminated");
            let name = String::from_utf8(archive[HEADER_LEN..name_end - 1].to_vec()).unwrap();
            let data_start = name_end.next_multiple_of(ALIGN);
            let data_end = data_start + filesize as usize;
            let data = archive[data_start..data_end].to_vec();
            let next = data_end.next_multiple_of(ALIGN);
            assert!(archive[name_end..data_start].iter().all(|&b| b == 0));
            assert!(archive[data_end..next].iter().all(|&b| b == 0));
            archive = &archive[next..];
            offset += next;
            let done = name == TRAILER;
            entries.push((name, mode, nlink, filesize, rdevmajor, rdevminor, data));
            if done {
                assert!(archive.is_empty(), "bytes after the trailer");
                return entries;
            }
        }
    }

    #[test]
    fn archive_holds_dirs_files_links_and_devices_in_order() {
        let mut writer = Writer::new();
        writer.dir("bin", 0o755).unwrap();
        writer.file("bin/busybox", 0o755, b"\x7fELF...").unwrap();
        writer.symlink("bin/sh", "busybox").unwrap();
        writer.dir("dev", 0o755).unwrap();
        writer.char_device("dev/console", 0o600, 5, 1).unwrap();
        writer.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        writer.file("empty", 0o644, b"").unwrap();
        let entries = parse(&writer.finish());

        let summary: Vec<_> = entries
            .iter()
            .map(|(name, mode, nlink, size, major, minor, data)| {
                (
                    name.as_str(),
                    *mode,
                    *nlink,
                    *size,
                    *major,
                    *minor,
                    data.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("bin", 0o040_755, 2, 0, 0, 0, &b""[..]),
                ("bin/busybox", 0o100_755, 1, 7, 0, 0, b"\x7fELF..."),
                ("bin/sh", 0o120_777, 1, 7, 0, 0, b"busybox"),
                ("dev", 0o040_755, 2, 0, 0, 0, b""),
                ("dev/console", 0o020_600, 1, 0, 5, 1, b""),
                ("init", 0o100_755, 1, 10, 0, 0, b"#!/bin/sh\n"),
                ("empty", 0o100_644, 1, 0, 0, 0, b""),
                ("TRAILER!!!", 0, 1, 0, 0, 0, b""),
            ]
        );
    }

    #[test]
    fn the_first_header_is_byte_exact() {
        let mut writer = Writer::new();
        writer.file("a", 0o644, b"hi").unwrap();
        let archive = writer.finish();
        let expected = concat!(
            "070701", "00000001", "000081a4", "00000000", "00000000", "00000001", "00000000",
            "00000002", "00000000", "00000000", "00000000", "00000000", "00000002", "00000000",
            // Name "a\0" ends at 112, already aligned; then "hi" and 2 bytes of padding.
            "a\0", "hi\0\0",
        );
        assert_eq!(&archive[..expected.len()], expected.as_bytes());
    }

    #[test]
    fn inode_numbers_are_unique() {
        let mut writer = Writer::new();
        writer.file("a", 0o644, b"1").unwrap();
        writer.file("b", 0o644, b"1").unwrap();
        let archive = writer.finish();
        let ino = |entry: usize| {
            // Entries "a" and "b" are each 110 + 2 (name) + 4 (data, padded) bytes.
            let at = entry * 116 + 6;
            std::str::from_utf8(&archive[at..at + 8])
                .unwrap()
                .to_owned()
        };
        assert_eq!((ino(0), ino(1)), ("00000001".into(), "00000002".into()));
    }

    #[test]
    fn bad_paths_are_refused() {
        let mut writer = Writer::new();
        for path in ["", "/init", "a//b", "./a", "a/../b", "a/", "a\0b", TRAILER] {
            assert_eq!(
                writer.file(path, 0o644, b""),
                Err(CpioError::BadPath(path.into())),
                "{path:?}"
            );
        }
    }

    #[test]
    fn entries_need_their_parent_first_and_once() {
        let mut writer = Writer::new();
        assert_eq!(
            writer.file("bin/busybox", 0o755, b""),
            Err(CpioError::MissingParent("bin/busybox".into()))
        );
        writer.dir("bin", 0o755).unwrap();
        assert_eq!(
            writer.dir("bin", 0o755),
            Err(CpioError::Duplicate("bin".into()))
        );
        writer.file("bin/busybox", 0o755, b"").unwrap();
    }

    #[test]
    fn modes_with_file_type_bits_are_refused() {
        let mut writer = Writer::new();
        assert_eq!(
            writer.file("init", 0o100_755, b""),
            Err(CpioError::BadMode {
                path: "init".into(),
                mode: 0o100_755
            })
        );
    }
}
