//! Host tests: guest RAM as a [`GuestRam`] over a heap block (so the tests
//! go through the same unsafe copies the hypervisor and the task use), a
//! driver side that lays out queues and offers chains, and an in-memory
//! disk.

use std::vec;
use std::vec::Vec;

use crate::{Disk, DiskError, GuestMemory, GuestRam, QueueConfig, QueueFeatures};

mod backend;
mod ram;

/// Where test RAM starts.
pub const BASE: u64 = 0x4000_0000;
/// Test RAM size: queues at the start, buffers from [`DATA`].
pub const RAM_SIZE: usize = 1 << 20;
/// Where test buffers go.
pub const DATA: u64 = BASE + 0x1_0000;
/// Entries of every test queue.
pub const SIZE: u16 = 16;

/// Guest RAM: a heap block only ever reached through `view`.
pub struct Ram {
    /// Owns the block; never touched directly while `view` is in use.
    _block: Vec<u8>,
    pub view: GuestRam,
}

impl Ram {
    pub fn new() -> Self {
        let mut block = vec![0u8; RAM_SIZE];
        let host = block.as_mut_ptr();
        // SAFETY: The block lives (and does not move: a `Vec`'s buffer stays
        // put when the `Vec` moves) as long as `self`, and the tests reach it
        // only through the view; `view` is never copied out of `self`.
        let view = unsafe { GuestRam::new(BASE, RAM_SIZE as u64, host) };
        Self {
            _block: block,
            view,
        }
    }

    pub fn put(&self, gpa: u64, data: &[u8]) {
        self.view.write(gpa, data).expect("test writes inside RAM");
    }

    pub fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.view
            .read(gpa, &mut buf)
            .expect("test reads inside RAM");
        buf
    }
}

/// Descriptor flags, as a driver writes them.
const NEXT: u16 = 1;
const WRITE: u16 = 2;

/// One buffer of a chain as the driver lays it out.
#[derive(Clone, Copy, Debug)]
pub struct Buf {
    pub gpa: u64,
    pub len: u32,
    pub writable: bool,
}

impl Buf {
    pub fn r(gpa: u64, len: u32) -> Self {
        Self {
            gpa,
            len,
            writable: false,
        }
    }

    pub fn w(gpa: u64, len: u32) -> Self {
        Self {
            gpa,
            len,
            writable: true,
        }
    }
}

/// The driver side of queue `n`: its rings in a 16 KiB block at
/// `BASE + n * 0x4000`.
pub struct DriverQueue {
    pub config: QueueConfig,
    avail_idx: u16,
    next_desc: u16,
    used_idx: u16,
}

impl DriverQueue {
    pub fn new(n: u64) -> Self {
        let at = BASE + n * 0x4000;
        Self {
            config: QueueConfig {
                size: SIZE,
                desc_table: at,
                driver_ring: at + 0x1000,
                device_ring: at + 0x2000,
                features: QueueFeatures::default(),
            },
            avail_idx: 0,
            next_desc: 0,
            used_idx: 0,
        }
    }

    /// Offers `bufs` as one chain; returns its head.
    pub fn offer(&mut self, ram: &Ram, bufs: &[Buf]) -> u16 {
        let head = self.next_desc;
        for (i, buf) in bufs.iter().enumerate() {
            let index = (head + i as u16) % SIZE;
            let next = (index + 1) % SIZE;
            let last = i + 1 == bufs.len();
            let flags = if last { 0 } else { NEXT } | if buf.writable { WRITE } else { 0 };
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&buf.gpa.to_le_bytes());
            raw[8..12].copy_from_slice(&buf.len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..].copy_from_slice(&if last { 0 } else { next }.to_le_bytes());
            ram.put(self.config.desc_table + 16 * u64::from(index), &raw);
        }
        self.next_desc = (head + bufs.len() as u16) % SIZE;
        let entry = self.config.driver_ring + 4 + 2 * u64::from(self.avail_idx % SIZE);
        ram.put(entry, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.put(self.config.driver_ring + 2, &self.avail_idx.to_le_bytes());
        head
    }

    /// Sets `VIRTQ_AVAIL_F_NO_INTERRUPT` (or clears it).
    pub fn suppress_interrupts(&self, ram: &Ram, suppress: bool) {
        ram.put(self.config.driver_ring, &u16::from(suppress).to_le_bytes());
    }

    /// The used elements (head, length) the device added since the last
    /// call.
    pub fn used(&mut self, ram: &Ram) -> Vec<(u32, u32)> {
        let idx = u16::from_le_bytes(
            ram.get(self.config.device_ring + 2, 2)
                .try_into()
                .expect("two bytes"),
        );
        let mut used = Vec::new();
        while self.used_idx != idx {
            let at = self.config.device_ring + 4 + 8 * u64::from(self.used_idx % SIZE);
            let elem = ram.get(at, 8);
            used.push((
                u32::from_le_bytes(elem[..4].try_into().expect("four bytes")),
                u32::from_le_bytes(elem[4..].try_into().expect("four bytes")),
            ));
            self.used_idx = self.used_idx.wrapping_add(1);
        }
        used
    }
}

/// A disk in memory that can be told to fail, counting flushes.
#[derive(Debug)]
pub struct MemDisk {
    pub bytes: Vec<u8>,
    pub failing: bool,
    pub flushes: u32,
}

impl MemDisk {
    pub fn new(sectors: usize) -> Self {
        Self {
            bytes: vec![0; sectors * 512],
            failing: false,
            flushes: 0,
        }
    }

    fn range(&self, offset: u64, len: usize) -> Result<core::ops::Range<usize>, DiskError> {
        let out = DiskError::OutOfRange {
            offset,
            len: len as u64,
        };
        if self.failing {
            return Err(DiskError::Io);
        }
        let start = usize::try_from(offset).map_err(|_| out)?;
        let end = start.checked_add(len).ok_or(out)?;
        if end > self.bytes.len() {
            return Err(out);
        }
        Ok(start..end)
    }
}

impl Disk for MemDisk {
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let range = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let range = self.range(offset, data.len())?;
        self.bytes[range].copy_from_slice(data);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        if self.failing {
            return Err(DiskError::Io);
        }
        self.flushes += 1;
        Ok(())
    }
}
