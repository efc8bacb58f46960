//! The host disk: a raw image QEMU gives the hypervisor as a virtio-blk PCI
//! function, whose regions back the VMs' disks (the manifest's `disk` key).
//!
//! A system test's disk is made fresh for every run and filled with a
//! pattern in which every sector is different ([`pattern_sector`]), so
//! afterwards the host can tell exactly which bytes a run changed
//! ([`changed_ranges`]) and what a VM should have read from an untouched
//! region. `./run.sh`'s disk is kept from run to run instead, so what a VM
//! writes is there the next time.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;

use anyhow::{ensure, Context, Result};
use manifest::{Manifest, DISK_SECTOR};
use regex::Regex;

use sha2::{Digest, Sha256};

/// Bytes in a sector.
const SECTOR: usize = DISK_SECTOR as usize;

/// The first bytes of every 16-byte row of the pattern.
const PATTERN_TAG: &[u8; 8] = b"HYPDISK:";

/// Sector `index` of a fresh test disk: 32 rows of `HYPDISK:` and the
/// sector's index (little-endian u64). Every sector differs from every
/// other, so a write that lands in the wrong place, or a copy of the wrong
/// sector, shows.
pub fn pattern_sector(index: u64) -> [u8; SECTOR] {
    let mut sector = [0u8; SECTOR];
    for row in sector.chunks_exact_mut(16) {
        row[..8].copy_from_slice(PATTERN_TAG);
        row[8..].copy_from_slice(&index.to_le_bytes());
    }
    sector
}

/// Writes a fresh patterned disk of `size` bytes (a multiple of the sector)
/// to `path`, replacing any file there.
///
/// # Errors
///
/// `size` is not a multiple of 512, or the file cannot be written.
pub fn create_patterned(path: &Path, size: u64) -> Result<()> {
    ensure!(
        size.is_multiple_of(DISK_SECTOR),
        "a disk of {size} bytes: not a multiple of the {DISK_SECTOR}-byte sector"
    );
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    for index in 0..size / DISK_SECTOR {
        out.write_all(&pattern_sector(index))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The byte ranges of the disk at `path` that no longer hold the pattern,
/// each a whole number of sectors, merged where adjacent, in order.
///
/// # Errors
///
/// The file cannot be read, or is not a whole number of sectors.
pub fn changed_ranges(path: &Path) -> Result<Vec<Range<u64>>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    ensure!(
        size.is_multiple_of(DISK_SECTOR),
        "{}: {size} bytes, not a whole number of sectors",
        path.display()
    );
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut sector = [0u8; SECTOR];
    let mut changed: Vec<Range<u64>> = Vec::new();
    for index in 0..size / DISK_SECTOR {
        input
            .read_exact(&mut sector)
            .with_context(|| format!("reading {}", path.display()))?;
        if sector == pattern_sector(index) {
            continue;
        }
        let start = index * DISK_SECTOR;
        match changed.last_mut() {
            Some(last) if last.end == start => last.end += DISK_SECTOR,
            _ => changed.push(start..start + DISK_SECTOR),
        }
    }
    Ok(changed)
}

/// The parts of `changed` outside every range of `allowed`.
pub fn outside(changed: &[Range<u64>], allowed: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut left: Vec<Range<u64>> = changed.to_vec();
    for allow in allowed {
        left = left
            .into_iter()
            .flat_map(|range| {
                let before = range.start..range.end.min(allow.start);
                let after = range.start.max(allow.end)..range.end;
                [before, after]
            })
            .filter(|range| !range.is_empty())
            .collect();
    }
    left
}

/// The SHA-256 (hex) of `len` bytes of the disk at `path` from `offset`.
///
/// # Errors
///
/// The file cannot be read, or ends before `offset + len`.
pub fn sha256_of(path: &Path, offset: u64, len: u64) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))
        .with_context(|| format!("reading {}", path.display()))?;
    let length = usize::try_from(len).context("a region too large for this host")?;
    let mut data = vec![0u8; length];
    file.read_exact(&mut data).with_context(|| {
        format!(
            "reading bytes {offset:#x}..{:#x} of {}",
            offset.saturating_add(len),
            path.display()
        )
    })?;
    Ok(hex_sha256(&data))
}

/// Checks each `[vm] guest: disk sha256=<hex> bytes=<n>` line of `log`
/// against the disk as the run left it: the hash of the first `n` bytes of
/// that VM's region in `manifest` (`disk = "<offset>+<size>"`). Whether the
/// VM wrote those bytes or read them, they must be on the host disk, in its
/// region and nowhere else, unless a later VM changed them. Returns the
/// problems and how many lines were checked.
///
/// # Errors
///
/// The manifest cannot be parsed, or the disk read.
pub fn check_reported_hashes(
    log: &[String],
    manifest: &str,
    disk: &Path,
) -> Result<(Vec<String>, usize)> {
    let manifest = Manifest::parse(manifest).context("parsing the test's manifest")?;
    let line_pattern = Regex::new(r"^\[([\w-]+)\] guest: disk sha256=([0-9a-f]{64}) bytes=(\d+)$")
        .context("the disk line pattern")?;
    let mut problems = Vec::new();
    let mut checked = 0;
    for line in log {
        let Some(captures) = line_pattern.captures(line) else {
            continue;
        };
        let (vm, reported) = (&captures[1], &captures[2]);
        let Ok(bytes) = captures[3].parse::<u64>() else {
            problems.push(format!("disk: a byte count out of range: {line}"));
            continue;
        };
        let region = manifest
            .good_vms()
            .find(|spec| spec.name == vm)
            .and_then(|spec| spec.disk);
        let Some(region) = region else {
            problems.push(format!(
                "disk: vm \"{vm}\" has no disk in the manifest: {line}"
            ));
            continue;
        };
        if bytes > region.size {
            problems.push(format!(
                "disk: vm \"{vm}\" reports {bytes} bytes, more than its {}-byte region",
                region.size
            ));
            continue;
        }
        let on_disk = sha256_of(disk, region.offset, bytes)?;
        checked += 1;
        if on_disk != reported {
            problems.push(format!(
                "disk: vm \"{vm}\" reports sha256 {reported} for {bytes} bytes, but the host disk's bytes {:#x}..{:#x} have {on_disk}",
                region.offset,
                region.offset + bytes
            ));
        }
    }
    Ok((problems, checked))
}

/// The SHA-256 of `data` in lowercase hex, as `sha256sum` prints it.
fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `run`'s host disk: `path`, created (sparse, zero-filled) or grown to
/// hold every region `manifest` names, and kept from run to run. Returns
/// its size, or `None` (and leaves `path` alone) when no VM has a disk.
///
/// # Errors
///
/// The manifest cannot be parsed, or the file cannot be created or grown.
pub fn prepare_persistent(path: &Path, manifest: &str) -> Result<Option<u64>> {
    let manifest = Manifest::parse(manifest).context("parsing the manifest")?;
    let Some(needed) = manifest
        .good_vms()
        .filter_map(|spec| spec.disk.map(|disk| disk.end()))
        .max()
    else {
        return Ok(None);
    };
    // Whole MiBs: a tidy size, and a multiple of the sector.
    let needed = needed.div_ceil(1 << 20) << 20;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size < needed {
        file.set_len(needed)
            .with_context(|| format!("growing {} to {needed} bytes", path.display()))?;
    }
    Ok(Some(size.max(needed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = crate::cargo::scratch_dir("disk-unit-tests").unwrap();
        dir.join(name)
    }

    #[test]
    fn every_sector_of_the_pattern_differs() {
        let a = pattern_sector(0);
        assert_eq!(&a[..16], b"HYPDISK:\0\0\0\0\0\0\0\0");
        assert_ne!(pattern_sector(1), a);
        assert_ne!(pattern_sector(1 << 32), pattern_sector(0));
        assert_eq!(
            &pattern_sector(0x0102)[496..],
            b"HYPDISK:\x02\x01\0\0\0\0\0\0"
        );
    }

    #[test]
    fn changes_are_found_to_the_sector_and_checked_against_reports() {
        let path = scratch("changes.img");
        create_patterned(&path, 64 << 10).unwrap();
        assert_eq!(changed_ranges(&path).unwrap(), Vec::<Range<u64>>::new());
        let untouched = sha256_of(&path, 4096, 1024).unwrap();
        let mut data = Vec::new();
        data.extend_from_slice(&pattern_sector(8));
        data.extend_from_slice(&pattern_sector(9));
        assert_eq!(untouched, hex_sha256(&data));

        // One byte in sector 2, sectors 4 and 5, and the last sector.
        let mut file = OpenOptions::new().write(true).open(&path).unwrap();
        for (at, len) in [(1100u64, 1usize), (2048, 1024), ((64 << 10) - 1, 1)] {
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(&vec![0xee; len]).unwrap();
        }
        drop(file);
        let changed = changed_ranges(&path).unwrap();
        assert_eq!(
            changed,
            [1024..1536, 2048..3072, (63 << 10) + 512..64 << 10]
        );
        assert_eq!(
            outside(&changed, &[0..2048, 2560..4096]),
            [2048..2560, (63 << 10) + 512..64 << 10]
        );
        let everything = std::slice::from_ref(&(0..64 << 10));
        assert_eq!(outside(&changed, everything), Vec::<Range<u64>>::new());

        let manifest = "[[vm]]\nname = \"a\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\ndisk = \"2K+4K\"\n\
                        [[vm]]\nname = \"b\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\ndisk = \"4K+4K\"\n";
        let a = sha256_of(&path, 2048, 1024).unwrap();
        let log = [
            format!("[a] guest: disk sha256={a} bytes=1024"),
            format!("[b] guest: disk sha256={untouched} bytes=1024"),
            "[a] something else".to_string(),
        ];
        let (problems, checked) = check_reported_hashes(&log, manifest, &path).unwrap();
        assert_eq!((problems, checked), (vec![], 2));
        let wrong = [
            format!("[b] guest: disk sha256={a} bytes=1024"),
            format!("[c] guest: disk sha256={a} bytes=1024"),
            format!("[a] guest: disk sha256={a} bytes=8192"),
        ];
        let (problems, checked) = check_reported_hashes(&wrong, manifest, &path).unwrap();
        assert_eq!(checked, 1);
        assert!(
            problems[0].contains("bytes 0x1000..0x1400 have"),
            "{problems:?}"
        );
        assert!(problems[1].contains("\"c\" has no disk"), "{problems:?}");
        assert!(
            problems[2].contains("more than its 4096-byte region"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_run_disk_is_made_to_fit_and_kept() {
        let path = scratch("run.img");
        let _ = std::fs::remove_file(&path);
        let none = "[[vm]]\nname = \"a\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n";
        assert_eq!(prepare_persistent(&path, none).unwrap(), None);
        assert!(!path.exists());
        let one = format!("{none}disk = \"1M+512\"\n");
        assert_eq!(prepare_persistent(&path, &one).unwrap(), Some(2 << 20));
        std::fs::write(&path, b"kept").unwrap();
        assert_eq!(prepare_persistent(&path, &one).unwrap(), Some(2 << 20));
        assert!(std::fs::read(&path).unwrap().starts_with(b"kept"));
        let big = std::fs::metadata(&path).unwrap().len();
        assert_eq!(big, 2 << 20);
    }
}
