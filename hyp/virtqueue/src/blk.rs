//! virtio-blk (virtio 1.2 §5.2), device side: feature bits, configuration
//! space and request handling on top of [`Chain`]s.
//!
//! A request is a chain of a 16-byte device-readable header (`le32 type;
//! le32 reserved; le64 sector`), data (device-readable for a write,
//! device-writable for a read) and one device-writable status byte at the
//! very end. The header and data may share descriptors in any split (Linux
//! puts each in its own); the data is whatever lies between the header and
//! the status byte.
//!
//! # What is checked
//!
//! - A chain with fewer than 16 readable bytes or no writable byte is not a
//!   request the device can answer: [`QueueError::BlkHeaderTooShort`],
//!   [`QueueError::BlkNoStatusByte`] (the device needs a reset).
//! - Everything else is answered with a status byte: a read or write that
//!   is not a whole number of sectors or reaches past the capacity (sums
//!   checked, nothing overflows) gets `VIRTIO_BLK_S_IOERR` without touching
//!   the disk; a write to a read-only device gets `VIRTIO_BLK_S_IOERR`
//!   without touching the disk (§5.2.6.2); a [`Disk`] error gets
//!   `VIRTIO_BLK_S_IOERR`; a type the device did not offer gets
//!   `VIRTIO_BLK_S_UNSUPP`.
//! - Data moves through one 64 KiB bounce buffer allocated with the device,
//!   whatever length the guest asks for.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::{
    Chain, ChainPart, GuestMemory, QueueError, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
};

/// Bytes in a sector, the unit of `capacity` and of a request's `sector`,
/// whatever the block size (§5.2.4).
pub const SECTOR_SIZE: u64 = 512;
/// Bytes of the device ID string `VIRTIO_BLK_T_GET_ID` returns (NUL-padded,
/// not NUL-terminated when all 20 are used).
pub const ID_BYTES: usize = 20;
/// Bytes of the bounce buffer data moves through between guest memory and
/// the disk.
pub const BOUNCE_SIZE: usize = 64 * 1024;
/// The queue size the transport should advertise as `QueueNumMax` for the
/// device's one queue; [`SEG_MAX`] follows from it.
pub const QUEUE_SIZE_MAX: u16 = 256;
/// Data segments advertised per request (`seg_max`): the queue size less
/// the header and status descriptors, so that a request of `seg_max`
/// segments is a chain no longer than the queue whether or not the driver
/// uses an indirect table (Linux sizes its scatter lists by it).
pub const SEG_MAX: u32 = QUEUE_SIZE_MAX as u32 - 2;
/// Bytes of the configuration space [`BlkDevice::config_space`] returns:
/// `struct virtio_blk_config` up to and including `num_queues`, the fields
/// a device without discard, write-zeroes or secure-erase has.
pub const CONFIG_SIZE: usize = 36;

/// `VIRTIO_BLK_F_SEG_MAX` (bit 2): `seg_max` is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// `VIRTIO_BLK_F_RO` (bit 5): the device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// `VIRTIO_BLK_F_BLK_SIZE` (bit 6): `blk_size` is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// `VIRTIO_BLK_F_FLUSH` (bit 9): `VIRTIO_BLK_T_FLUSH` is supported.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

/// `VIRTIO_BLK_T_IN`: read sectors.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// `VIRTIO_BLK_T_OUT`: write sectors.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// `VIRTIO_BLK_T_FLUSH`: make completed writes durable.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// `VIRTIO_BLK_T_GET_ID`: read the device ID string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

/// Bytes of the request header.
pub const HEADER_SIZE: u32 = 16;

/// The status byte a request completes with (§5.2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// `VIRTIO_BLK_S_OK`.
    Ok = 0,
    /// `VIRTIO_BLK_S_IOERR`.
    IoErr = 1,
    /// `VIRTIO_BLK_S_UNSUPP`.
    Unsupp = 2,
}

/// Why the backing store failed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiskError {
    /// The range is not inside the device's region (the disk's own check;
    /// [`BlkDevice`] never asks for one).
    OutOfRange {
        /// Byte offset in the region.
        offset: u64,
        /// Bytes asked for.
        len: u64,
    },
    /// The storage underneath reported an error.
    Io,
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfRange { offset, len } => {
                write!(f, "disk range [{offset:#x}, +{len:#x}) outside the region")
            }
            Self::Io => f.write_str("disk I/O error"),
        }
    }
}

/// The storage behind a virtio-blk device: a region of a disk that belongs
/// to one VM. Offsets are bytes from the start of that region.
pub trait Disk {
    /// Fills `buf` from `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError>;
    /// Makes every completed write durable.
    fn flush(&mut self) -> Result<(), DiskError>;
}

/// A virtio-blk device's logic: what it offers, its configuration space and
/// the handling of one request.
#[derive(Clone, Debug)]
pub struct BlkDevice {
    capacity_sectors: u64,
    read_only: bool,
    serial: [u8; ID_BYTES],
    /// Reused for every request; [`BOUNCE_SIZE`] bytes.
    bounce: Vec<u8>,
}

impl BlkDevice {
    /// A device of `capacity_sectors` 512-byte sectors, read-only or not,
    /// whose `VIRTIO_BLK_T_GET_ID` answers `serial` (NUL-padded; see
    /// [`serial_from_str`]).
    pub fn new(capacity_sectors: u64, read_only: bool, serial: [u8; ID_BYTES]) -> Self {
        Self {
            capacity_sectors,
            read_only,
            serial,
            bounce: vec![0; BOUNCE_SIZE],
        }
    }

    /// Capacity in 512-byte sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity_sectors
    }

    /// Whether writes are refused.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The device ID string.
    pub fn serial(&self) -> &[u8; ID_BYTES] {
        &self.serial
    }

    /// Feature bits the device offers: `VIRTIO_F_VERSION_1` (it has no
    /// legacy interface; a driver that does not accept it is refused by the
    /// transport), `VIRTIO_F_INDIRECT_DESC`, `VIRTIO_F_EVENT_IDX`,
    /// `VIRTIO_BLK_F_SEG_MAX`, `VIRTIO_BLK_F_BLK_SIZE`, `VIRTIO_BLK_F_FLUSH`
    /// and, for a read-only device, `VIRTIO_BLK_F_RO`.
    pub fn features(&self) -> u64 {
        let mut features = VIRTIO_F_VERSION_1
            | VIRTIO_F_INDIRECT_DESC
            | VIRTIO_F_EVENT_IDX
            | VIRTIO_BLK_F_SEG_MAX
            | VIRTIO_BLK_F_BLK_SIZE
            | VIRTIO_BLK_F_FLUSH;
        if self.read_only {
            features |= VIRTIO_BLK_F_RO;
        }
        features
    }

    /// The configuration space (`struct virtio_blk_config`, little-endian):
    /// `capacity`, `seg_max` = [`SEG_MAX`], `blk_size` = 512, and zero for
    /// the fields of features not offered (`size_max`, `geometry`,
    /// `topology`, `writeback`, `num_queues`).
    pub fn config_space(&self) -> [u8; CONFIG_SIZE] {
        let mut config = [0; CONFIG_SIZE];
        config[0..8].copy_from_slice(&self.capacity_sectors.to_le_bytes());
        config[12..16].copy_from_slice(&SEG_MAX.to_le_bytes());
        config[20..24].copy_from_slice(&(SECTOR_SIZE as u32).to_le_bytes());
        config
    }

    /// Handles the request `chain` carries: reads its header once, moves the
    /// data between guest memory and `disk`, writes the status byte, and
    /// returns the `len` for the used element (bytes written from the start
    /// of the writable part: all of it when the data and status were
    /// written, else the data written before an error).
    ///
    /// A request the device refuses still succeeds, with an error status
    /// (see the [module docs](self)). An `Err` means the chain is not a
    /// virtio-blk request at all, or guest memory failed under a validated
    /// buffer: the device needs a reset (see [`QueueError`]); the disk was
    /// not touched outside its region either way.
    pub fn handle<M: GuestMemory + ?Sized, D: Disk + ?Sized>(
        &mut self,
        chain: &Chain,
        mem: &M,
        disk: &mut D,
    ) -> Result<u32, QueueError> {
        let head = chain.head();
        if chain.readable_len() < HEADER_SIZE {
            return Err(QueueError::BlkHeaderTooShort {
                head,
                readable_len: chain.readable_len(),
            });
        }
        let Some(status_offset) = chain.writable_len().checked_sub(1) else {
            return Err(QueueError::BlkNoStatusByte { head });
        };
        let mut header = [0u8; HEADER_SIZE as usize];
        chain.read(mem, 0, &mut header)?;
        let [t0, t1, t2, t3, _, _, _, _, s0, s1, s2, s3, s4, s5, s6, s7] = header;
        let request_type = u32::from_le_bytes([t0, t1, t2, t3]);
        let sector = u64::from_le_bytes([s0, s1, s2, s3, s4, s5, s6, s7]);

        let (status, data_written) = match request_type {
            VIRTIO_BLK_T_IN => self.read_sectors(chain, mem, disk, sector, status_offset)?,
            VIRTIO_BLK_T_OUT => (self.write_sectors(chain, mem, disk, sector)?, 0),
            VIRTIO_BLK_T_FLUSH => (Self::status_of(disk.flush()), 0),
            VIRTIO_BLK_T_GET_ID => {
                let len = status_offset.min(ID_BYTES as u32);
                chain.write(mem, 0, &self.serial[..len as usize])?;
                (Status::Ok, len)
            }
            _ => (Status::Unsupp, 0),
        };
        chain.write(mem, u64::from(status_offset), &[status as u8])?;
        // The used length counts bytes written from the start of the
        // writable part (§2.7.8.2); the status byte extends that run only if
        // everything before it was written.
        Ok(if data_written == status_offset {
            status_offset + 1
        } else {
            data_written
        })
    }

    fn status_of(result: Result<(), DiskError>) -> Status {
        match result {
            Ok(()) => Status::Ok,
            Err(_) => Status::IoErr,
        }
    }

    /// The byte offset in the disk of `len` bytes from `sector`, if the
    /// range is whole sectors inside the capacity.
    fn disk_offset(&self, sector: u64, len: u64) -> Option<u64> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return None;
        }
        let end = sector.checked_add(len / SECTOR_SIZE)?;
        if end > self.capacity_sectors {
            return None;
        }
        // The end's byte offset fits, so every offset before it does.
        end.checked_mul(SECTOR_SIZE)?;
        Some(sector * SECTOR_SIZE)
    }

    /// `VIRTIO_BLK_T_IN`: disk to the writable part before the status byte,
    /// chunk by chunk; returns the status and the bytes written.
    fn read_sectors<M: GuestMemory + ?Sized, D: Disk + ?Sized>(
        &mut self,
        chain: &Chain,
        mem: &M,
        disk: &mut D,
        sector: u64,
        data_len: u32,
    ) -> Result<(Status, u32), QueueError> {
        let Some(offset) = self.disk_offset(sector, u64::from(data_len)) else {
            return Ok((Status::IoErr, 0));
        };
        let mut segments = chain.segments(ChainPart::Writable, 0, u64::from(data_len))?;
        let mut done: u32 = 0;
        while segments.remaining() > 0 {
            let chunk = segments.remaining().min(BOUNCE_SIZE as u64) as usize;
            let buf = &mut self.bounce[..chunk];
            if disk.read(offset + u64::from(done), buf).is_err() {
                return Ok((Status::IoErr, done));
            }
            let mut filled = 0;
            while let Some(piece) = segments.next_up_to((chunk - filled) as u64) {
                let next = filled + piece.len as usize;
                mem.write(piece.gpa, &buf[filled..next])
                    .map_err(|err| QueueError::BufferAccess { err })?;
                filled = next;
            }
            // `chunk` bytes, and `done` stays at most `data_len`.
            done += chunk as u32;
        }
        Ok((Status::Ok, done))
    }

    /// `VIRTIO_BLK_T_OUT`: the readable part after the header to the disk,
    /// chunk by chunk.
    fn write_sectors<M: GuestMemory + ?Sized, D: Disk + ?Sized>(
        &mut self,
        chain: &Chain,
        mem: &M,
        disk: &mut D,
        sector: u64,
    ) -> Result<Status, QueueError> {
        if self.read_only {
            return Ok(Status::IoErr);
        }
        let data_len = u64::from(chain.readable_len() - HEADER_SIZE);
        let Some(offset) = self.disk_offset(sector, data_len) else {
            return Ok(Status::IoErr);
        };
        let mut segments = chain.segments(ChainPart::Readable, u64::from(HEADER_SIZE), data_len)?;
        let mut done: u64 = 0;
        while segments.remaining() > 0 {
            let chunk = segments.remaining().min(BOUNCE_SIZE as u64) as usize;
            let buf = &mut self.bounce[..chunk];
            let mut filled = 0;
            while let Some(piece) = segments.next_up_to((chunk - filled) as u64) {
                let next = filled + piece.len as usize;
                mem.read(piece.gpa, &mut buf[filled..next])
                    .map_err(|err| QueueError::BufferAccess { err })?;
                filled = next;
            }
            if disk.write(offset + done, buf).is_err() {
                return Ok(Status::IoErr);
            }
            done += chunk as u64;
        }
        Ok(Status::Ok)
    }
}

/// A device ID string from `text`: its first 20 bytes, NUL-padded.
pub fn serial_from_str(text: &str) -> [u8; ID_BYTES] {
    let mut serial = [0; ID_BYTES];
    let len = text.len().min(ID_BYTES);
    serial[..len].copy_from_slice(&text.as_bytes()[..len]);
    serial
}
