//! virtio-blk: features, configuration space, every request type and every
//! refusal.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::{Driver, DATA};
use crate::blk::{
    serial_from_str, BlkDevice, Disk, DiskError, BOUNCE_SIZE, CONFIG_SIZE, ID_BYTES, SEG_MAX,
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use crate::{
    Queue, QueueError, QueueFeatures, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
};

pub const S_OK: u8 = 0;
pub const S_IOERR: u8 = 1;
pub const S_UNSUPP: u8 = 2;

/// One call the device made to the disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Read { offset: u64, len: usize },
    Write { offset: u64, len: usize },
    Flush,
}

/// A disk over a `Vec` that records every call, refuses (and records as a
/// violation) any access outside itself, and fails on request.
#[derive(Default)]
pub struct VecDisk {
    pub data: Vec<u8>,
    pub ops: Vec<Op>,
    pub violations: usize,
    /// Reads or writes at or past this offset fail with an I/O error.
    pub fail_from: Option<u64>,
    pub fail_flush: bool,
}

impl VecDisk {
    pub fn new(len: usize) -> Self {
        Self {
            // A pattern, so that reads return something recognisable.
            data: (0..len).map(|i| (i % 251) as u8).collect(),
            ..Self::default()
        }
    }

    fn range(&mut self, offset: u64, len: usize) -> Result<usize, DiskError> {
        let inside = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.data.len() as u64);
        if !inside {
            self.violations += 1;
            return Err(DiskError::OutOfRange {
                offset,
                len: len as u64,
            });
        }
        if self
            .fail_from
            .is_some_and(|from| offset + len as u64 > from)
        {
            return Err(DiskError::Io);
        }
        Ok(offset as usize)
    }
}

impl Disk for VecDisk {
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.ops.push(Op::Read {
            offset,
            len: buf.len(),
        });
        let start = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data[start..start + buf.len()]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        self.ops.push(Op::Write {
            offset,
            len: data.len(),
        });
        let start = self.range(offset, data.len())?;
        self.data[start..start + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.ops.push(Op::Flush);
        if self.fail_flush {
            Err(DiskError::Io)
        } else {
            Ok(())
        }
    }
}

/// Sectors of the test disk.
const CAPACITY: u64 = 2048;
/// Where the request header goes.
const HDR: u64 = DATA;
/// Where the status byte goes.
const STATUS: u64 = DATA + 0x100;
/// Where request data goes.
const BUF: u64 = DATA + 0x1_0000;

pub fn header(request_type: u32, sector: u64) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[..4].copy_from_slice(&request_type.to_le_bytes());
    // The reserved field (ioprio for legacy drivers) is ignored.
    raw[4..8].copy_from_slice(&0xffff_ffffu32.to_le_bytes());
    raw[8..].copy_from_slice(&sector.to_le_bytes());
    raw
}

struct Setup {
    driver: Driver,
    queue: Queue,
    dev: BlkDevice,
    disk: VecDisk,
}

impl Setup {
    fn new(read_only: bool) -> Self {
        let driver = Driver::new(16, QueueFeatures::default());
        let queue = driver.queue();
        Self {
            driver,
            queue,
            dev: BlkDevice::new(CAPACITY, read_only, serial_from_str("hyp-disk-0")),
            disk: VecDisk::new((CAPACITY * 512) as usize),
        }
    }

    /// Offers `buffers` as one chain, pops it, handles it, returns it.
    fn run(&mut self, buffers: &[(u64, u32, bool)]) -> Result<u32, QueueError> {
        self.driver.mem.put(STATUS, &[0xff]);
        self.driver.offer_chain(0, buffers);
        let chain = self.queue.pop(&self.driver.mem)?.expect("a chain");
        let written = self.dev.handle(&chain, &self.driver.mem, &mut self.disk)?;
        assert!(written <= chain.writable_len());
        self.queue
            .push_used(&self.driver.mem, chain.head(), written)?;
        assert_eq!(self.disk.violations, 0, "disk access outside the region");
        Ok(written)
    }

    /// A request in three descriptors: header, data, status.
    fn request(&mut self, request_type: u32, sector: u64, len: u32, device_writes: bool) -> u32 {
        self.driver.mem.put(HDR, &header(request_type, sector));
        self.run(&[
            (HDR, 16, false),
            (BUF, len, device_writes),
            (STATUS, 1, true),
        ])
        .unwrap()
    }

    fn status(&self) -> u8 {
        self.driver.mem.get(STATUS, 1)[0]
    }
}

// ---- what the device offers --------------------------------------------------

#[test]
fn features_are_modern_only() {
    let dev = BlkDevice::new(8, false, [0; ID_BYTES]);
    let features = dev.features();
    assert_ne!(features & VIRTIO_F_VERSION_1, 0);
    for bit in [
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_BLK_SIZE,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_F_INDIRECT_DESC,
        VIRTIO_F_EVENT_IDX,
    ] {
        assert_ne!(features & bit, 0, "{bit:#x}");
    }
    assert_eq!(features & VIRTIO_BLK_F_RO, 0);
    // Legacy-only bits: VIRTIO_BLK_F_BARRIER (0), VIRTIO_BLK_F_SCSI (7),
    // VIRTIO_F_NOTIFY_ON_EMPTY (24), VIRTIO_F_ANY_LAYOUT (27); and nothing
    // whose fields or commands are not implemented.
    let offered = VIRTIO_F_VERSION_1
        | VIRTIO_F_INDIRECT_DESC
        | VIRTIO_F_EVENT_IDX
        | VIRTIO_BLK_F_SEG_MAX
        | VIRTIO_BLK_F_BLK_SIZE
        | VIRTIO_BLK_F_FLUSH;
    assert_eq!(features, offered);
    let ro = BlkDevice::new(8, true, [0; ID_BYTES]);
    assert_eq!(ro.features(), offered | VIRTIO_BLK_F_RO);
    assert!(ro.read_only());
}

#[test]
fn config_space_layout() {
    let dev = BlkDevice::new(0x1_2345_6789, false, [0; ID_BYTES]);
    let config = dev.config_space();
    assert_eq!(config.len(), CONFIG_SIZE);
    assert_eq!(&config[0..8], &0x1_2345_6789u64.to_le_bytes()); // capacity
    assert_eq!(&config[8..12], &[0; 4]); // size_max: not offered
    assert_eq!(&config[12..16], &SEG_MAX.to_le_bytes()); // seg_max
    assert_eq!(&config[16..20], &[0; 4]); // geometry: not offered
    assert_eq!(&config[20..24], &512u32.to_le_bytes()); // blk_size
    assert_eq!(&config[24..36], &[0; 12]); // topology, writeback, num_queues
    assert_eq!(SEG_MAX, 254);
    assert_eq!(dev.capacity_sectors(), 0x1_2345_6789);
}

#[test]
fn serials_are_nul_padded_and_truncated() {
    assert_eq!(&serial_from_str("abc")[..4], b"abc\0");
    assert_eq!(serial_from_str("abc")[3..], [0; 17]);
    assert_eq!(
        &serial_from_str("0123456789abcdefghijXYZ"),
        b"0123456789abcdefghij"
    );
}

// ---- reads and writes --------------------------------------------------------

#[test]
fn read_sectors() {
    let mut s = Setup::new(false);
    let written = s.request(VIRTIO_BLK_T_IN, 3, 1024, true);
    assert_eq!(written, 1025);
    assert_eq!(s.status(), S_OK);
    assert_eq!(s.driver.mem.get(BUF, 1024), s.disk.data[1536..2560]);
    assert_eq!(
        s.disk.ops,
        [Op::Read {
            offset: 1536,
            len: 1024
        }]
    );
    assert_eq!(s.driver.used(0), (0, 1025));
}

#[test]
fn write_sectors() {
    let mut s = Setup::new(false);
    let data: Vec<u8> = (0..1536).map(|i| (i * 7) as u8).collect();
    s.driver.mem.put(BUF, &data);
    let written = s.request(VIRTIO_BLK_T_OUT, 10, 1536, false);
    assert_eq!(written, 1);
    assert_eq!(s.status(), S_OK);
    assert_eq!(s.disk.data[5120..6656], data[..]);
    assert_eq!(
        s.disk.ops,
        [Op::Write {
            offset: 5120,
            len: 1536
        }]
    );
}

#[test]
fn the_last_sector_and_empty_requests_are_inside() {
    let mut s = Setup::new(false);
    s.request(VIRTIO_BLK_T_IN, CAPACITY - 1, 512, true);
    assert_eq!(s.status(), S_OK);
    s.request(VIRTIO_BLK_T_OUT, CAPACITY - 1, 512, false);
    assert_eq!(s.status(), S_OK);
    // No data at the very end: nothing to do, but inside.
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_IN, CAPACITY));
    assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok(1));
    assert_eq!(s.status(), S_OK);
}

#[test]
fn requests_beyond_the_capacity_fail_without_touching_the_disk() {
    let cases = [
        (CAPACITY, 512),
        (CAPACITY - 1, 1024),
        (CAPACITY + 1, 0),
        (u64::MAX, 512),
        (u64::MAX / 512, 512),
        (u64::MAX / 512 + 1, 512),
        (1 << 55, 512),
    ];
    for (sector, len) in cases {
        for (request_type, device_writes) in [(VIRTIO_BLK_T_IN, true), (VIRTIO_BLK_T_OUT, false)] {
            let mut s = Setup::new(false);
            let written = s.request(request_type, sector, len, device_writes);
            assert_eq!(s.status(), S_IOERR, "sector {sector} len {len}");
            assert!(s.disk.ops.is_empty());
            // Only the status byte was written; for a read it is not
            // contiguous with the (unwritten) data.
            assert_eq!(written, if device_writes && len > 0 { 0 } else { 1 });
        }
    }
}

#[test]
fn a_device_with_the_largest_capacity_checks_without_overflow() {
    let mut s = Setup::new(false);
    s.dev = BlkDevice::new(u64::MAX, false, [0; ID_BYTES]);
    // The end of the range would be past 2^64 bytes.
    s.request(VIRTIO_BLK_T_IN, u64::MAX / 512, 512, true);
    assert_eq!(s.status(), S_IOERR);
    assert!(s.disk.ops.is_empty());
    // A sector the disk itself refuses: an I/O error, and the test disk
    // records the out-of-range access, which `run` would flag; so check it
    // here by hand.
    s.dev = BlkDevice::new(u64::MAX, false, [0; ID_BYTES]);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_IN, CAPACITY));
    s.driver
        .offer_chain(0, &[(HDR, 16, false), (BUF, 512, true), (STATUS, 1, true)]);
    let chain = s.queue.pop(&s.driver.mem).unwrap().unwrap();
    assert_eq!(s.dev.handle(&chain, &s.driver.mem, &mut s.disk), Ok(0));
    assert_eq!(s.status(), S_IOERR);
}

#[test]
fn partial_sectors_fail_without_touching_the_disk() {
    for len in [1, 511, 513, 1000] {
        for (request_type, device_writes) in [(VIRTIO_BLK_T_IN, true), (VIRTIO_BLK_T_OUT, false)] {
            let mut s = Setup::new(false);
            s.request(request_type, 0, len, device_writes);
            assert_eq!(s.status(), S_IOERR, "len {len}");
            assert!(s.disk.ops.is_empty());
        }
    }
}

#[test]
fn writes_to_a_read_only_device_fail_without_touching_the_disk() {
    let mut s = Setup::new(true);
    let before = s.disk.data.clone();
    s.driver.mem.put(BUF, &[0xaa; 512]);
    assert_eq!(s.request(VIRTIO_BLK_T_OUT, 0, 512, false), 1);
    assert_eq!(s.status(), S_IOERR);
    assert!(s.disk.ops.is_empty());
    assert_eq!(s.disk.data, before);
    // Reads still work.
    s.request(VIRTIO_BLK_T_IN, 0, 512, true);
    assert_eq!(s.status(), S_OK);
}

#[test]
fn disk_errors_are_io_errors() {
    // A read failing in its second 64 KiB chunk: the first chunk was
    // written and is what the used length reports.
    let mut s = Setup::new(false);
    s.disk.fail_from = Some(BOUNCE_SIZE as u64 + 1);
    let written = s.request(VIRTIO_BLK_T_IN, 0, 2 * BOUNCE_SIZE as u32, true);
    assert_eq!(s.status(), S_IOERR);
    assert_eq!(written, BOUNCE_SIZE as u32);
    assert_eq!(s.driver.mem.get(BUF, 16), s.disk.data[..16]);

    let mut s = Setup::new(false);
    s.disk.fail_from = Some(0);
    s.request(VIRTIO_BLK_T_OUT, 0, 512, false);
    assert_eq!(s.status(), S_IOERR);

    let mut s = Setup::new(false);
    s.disk.fail_flush = true;
    s.request(VIRTIO_BLK_T_FLUSH, 0, 0, true);
    assert_eq!(s.status(), S_IOERR);
}

#[test]
fn large_requests_move_in_bounded_chunks() {
    // 200 KiB over buffers of odd sizes, each piece at most 64 KiB.
    let sizes = [70_001u32, 3, 90_000, 44_796];
    let total: u32 = sizes.iter().sum();
    assert_eq!(total, 400 * 512);
    let mut buffers = vec![(HDR, 16, false)];
    let mut gpa = BUF;
    for &len in &sizes {
        buffers.push((gpa, len, true));
        gpa += u64::from(len) + 0x1000;
    }
    buffers.push((STATUS, 1, true));

    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_IN, 100));
    assert_eq!(s.run(&buffers), Ok(total + 1));
    assert_eq!(s.status(), S_OK);
    let mut expected = s.disk.data[51_200..51_200 + total as usize].iter();
    for &(gpa, len, _) in &buffers[1..buffers.len() - 1] {
        let got = s.driver.mem.get(gpa, len as usize);
        assert!(got.iter().eq(expected.by_ref().take(len as usize)));
    }
    for op in &s.disk.ops {
        let Op::Read { len, .. } = op else {
            panic!("{op:?}")
        };
        assert!(*len <= BOUNCE_SIZE);
    }
    assert_eq!(s.disk.ops.len(), (total as usize).div_ceil(BOUNCE_SIZE));

    // And back: write the same guest buffers to another place.
    s.disk.ops.clear();
    let mut out = vec![(HDR, 16, false)];
    out.extend(
        buffers[1..buffers.len() - 1]
            .iter()
            .map(|&(g, l, _)| (g, l, false)),
    );
    out.push((STATUS, 1, true));
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_OUT, 1000));
    assert_eq!(s.run(&out), Ok(1));
    assert_eq!(s.status(), S_OK);
    assert_eq!(
        s.disk.data[512_000..512_000 + total as usize],
        s.disk.data[51_200..51_200 + total as usize]
    );
    assert!(s
        .disk
        .ops
        .iter()
        .all(|op| matches!(op, Op::Write { len, .. } if *len <= BOUNCE_SIZE)));
}

// ---- the other request types -------------------------------------------------

#[test]
fn flush() {
    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_FLUSH, 0));
    assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok(1));
    assert_eq!(s.status(), S_OK);
    assert_eq!(s.disk.ops, [Op::Flush]);
    // On a read-only device too (there is nothing to lose).
    let mut s = Setup::new(true);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_FLUSH, 0));
    assert_eq!(s.run(&[(HDR, 16, false), (STATUS, 1, true)]), Ok(1));
    assert_eq!(s.status(), S_OK);
}

#[test]
fn get_id() {
    let mut s = Setup::new(false);
    s.driver.mem.put(BUF, &[0xee; 32]);
    let written = s.request(VIRTIO_BLK_T_GET_ID, 0, ID_BYTES as u32, true);
    assert_eq!(written, 21);
    assert_eq!(s.status(), S_OK);
    assert_eq!(s.driver.mem.get(BUF, 20), serial_from_str("hyp-disk-0"));
    assert_eq!(s.driver.mem.get(BUF + 20, 1), [0xee]);
    assert!(s.disk.ops.is_empty());
    assert_eq!(s.dev.serial(), &serial_from_str("hyp-disk-0"));

    // A shorter buffer gets the start; a longer one 20 bytes.
    s.driver.mem.put(BUF, &[0xee; 32]);
    assert_eq!(s.request(VIRTIO_BLK_T_GET_ID, 0, 4, true), 5);
    assert_eq!(s.driver.mem.get(BUF, 5), b"hyp-\xee");
    s.driver.mem.put(BUF, &[0xee; 32]);
    assert_eq!(s.request(VIRTIO_BLK_T_GET_ID, 0, 32, true), 20);
    assert_eq!(s.driver.mem.get(BUF + 20, 1), [0xee]);
    assert_eq!(s.status(), S_OK);
}

#[test]
fn unknown_types_are_unsupported() {
    // GET_LIFETIME, DISCARD, WRITE_ZEROES, SECURE_ERASE (not offered), the
    // legacy SCSI command, and nonsense.
    for request_type in [2u32, 3, 10, 11, 13, 14, 0x8000_0000, u32::MAX] {
        let mut s = Setup::new(false);
        s.driver.mem.put(BUF, &[0xee; 16]);
        let written = s.request(request_type, 0, 16, true);
        assert_eq!(s.status(), S_UNSUPP, "type {request_type}");
        assert_eq!(written, 0);
        assert!(s.disk.ops.is_empty());
        assert_eq!(s.driver.mem.get(BUF, 16), [0xee; 16]);
    }
}

// ---- malformed chains ----------------------------------------------------------

#[test]
fn a_short_header_needs_a_reset() {
    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_IN, 0));
    let err = s
        .run(&[(HDR, 15, false), (BUF, 512, true), (STATUS, 1, true)])
        .unwrap_err();
    assert_eq!(
        err,
        QueueError::BlkHeaderTooShort {
            head: 0,
            readable_len: 15
        }
    );
    assert_eq!(
        err.to_string(),
        "virtio-blk request at head 0: 15 readable bytes, shorter than the 16-byte header"
    );
    assert_eq!(s.status(), 0xff);
    assert!(s.disk.ops.is_empty());
}

#[test]
fn no_status_byte_needs_a_reset() {
    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_OUT, 0));
    let err = s.run(&[(HDR, 16, false), (BUF, 512, false)]).unwrap_err();
    assert_eq!(err, QueueError::BlkNoStatusByte { head: 0 });
    assert_eq!(
        err.to_string(),
        "virtio-blk request at head 0: no writable byte for the status"
    );
    assert!(s.disk.ops.is_empty());
}

#[test]
fn the_status_byte_is_the_last_writable_byte() {
    // Data and status in one writable descriptor.
    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_IN, 1));
    assert_eq!(s.run(&[(HDR, 16, false), (BUF, 513, true)]), Ok(513));
    assert_eq!(s.driver.mem.get(BUF, 512), s.disk.data[512..1024]);
    assert_eq!(s.driver.mem.get(BUF + 512, 1), [S_OK]);
    // A write with writable bytes before its status: they are left alone
    // and the used length is 0 (they were not written).
    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_OUT, 0));
    s.driver.mem.put(BUF, &[0x55; 512]);
    let tail = STATUS + 0x10;
    s.driver.mem.put(tail, &[0xee; 4]);
    assert_eq!(
        s.run(&[(HDR, 16, false), (BUF, 512, false), (tail, 4, true)]),
        Ok(0)
    );
    assert_eq!(s.driver.mem.get(tail, 4), [0xee, 0xee, 0xee, S_OK]);
}

#[test]
fn extra_readable_bytes_of_a_read_are_ignored() {
    let mut s = Setup::new(false);
    s.driver.mem.put(HDR, &header(VIRTIO_BLK_T_IN, 0));
    assert_eq!(
        s.run(&[(HDR, 64, false), (BUF, 512, true), (STATUS, 1, true)]),
        Ok(513)
    );
    assert_eq!(s.status(), S_OK);
}

#[test]
fn disk_errors_say_what_failed() {
    assert_eq!(DiskError::Io.to_string(), "disk I/O error");
    assert_eq!(
        DiskError::OutOfRange {
            offset: 0x200,
            len: 0x400
        }
        .to_string(),
        "disk range [0x200, +0x400) outside the region"
    );
}
