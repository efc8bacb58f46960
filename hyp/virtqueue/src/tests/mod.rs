//! Host tests: a guest memory over a `Vec`, a driver-side helper that lays
//! out rings the way a driver does, and the tests per module.

use core::cell::RefCell;
use std::vec;
use std::vec::Vec;

use crate::{window_offset, GuestMemory, MemError, Queue, QueueConfig, QueueFeatures};

mod blk;
mod fuzz;
mod linux;
mod memory;
mod queue;

/// Guest memory: `bytes.len()` bytes from `base`. `claimed`, if set, is the
/// size `check_range` believes in (to test chains of gigabytes without
/// allocating them); reads and writes still stop at the real bytes.
pub struct VecMemory {
    pub base: u64,
    pub bytes: RefCell<Vec<u8>>,
    pub claimed: Option<u64>,
}

impl VecMemory {
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: RefCell::new(vec![0; size]),
            claimed: None,
        }
    }

    fn range(&self, gpa: u64, len: usize) -> Result<usize, MemError> {
        let size = self.bytes.borrow().len() as u64;
        window_offset(self.base, size, gpa, len as u64).map(|offset| offset as usize)
    }

    pub fn end(&self) -> u64 {
        self.base + self.bytes.borrow().len() as u64
    }

    pub fn put(&self, gpa: u64, data: &[u8]) {
        self.write(gpa, data).expect("test writes inside memory");
    }

    pub fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.read(gpa, &mut buf).expect("test reads inside memory");
        buf
    }

    pub fn put_u16(&self, gpa: u64, value: u16) {
        self.put(gpa, &value.to_le_bytes());
    }

    pub fn get_u16(&self, gpa: u64) -> u16 {
        u16::from_le_bytes(self.get(gpa, 2).try_into().unwrap())
    }

    pub fn get_u32(&self, gpa: u64) -> u32 {
        u32::from_le_bytes(self.get(gpa, 4).try_into().unwrap())
    }
}

impl GuestMemory for VecMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let offset = self.range(gpa, buf.len())?;
        buf.copy_from_slice(&self.bytes.borrow()[offset..offset + buf.len()]);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let offset = self.range(gpa, data.len())?;
        self.bytes.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        let size = self.claimed.unwrap_or(self.bytes.borrow().len() as u64);
        window_offset(self.base, size, gpa, len).map(|_| ())
    }
}

/// Descriptor flags, as a driver writes them.
pub const NEXT: u16 = 1;
pub const WRITE: u16 = 2;
pub const INDIRECT: u16 = 4;

/// Where the test memory starts.
pub const BASE: u64 = 0x4000_0000;
/// Test memory size: rings at the start, data from [`DATA`].
pub const MEM_SIZE: usize = 4 << 20;
/// Where test buffers go.
pub const DATA: u64 = BASE + (1 << 20);

/// The driver side of one queue: lays out the rings from [`BASE`] as Linux's
/// `vring_init` does and fills them.
pub struct Driver {
    pub mem: VecMemory,
    pub config: QueueConfig,
    pub avail_idx: u16,
}

impl Driver {
    pub fn new(size: u16, features: QueueFeatures) -> Self {
        let desc_table = BASE;
        let driver_ring = desc_table + 16 * u64::from(size);
        let device_ring = (driver_ring + 6 + 2 * u64::from(size)).next_multiple_of(4096);
        Self {
            mem: VecMemory::new(BASE, MEM_SIZE),
            config: QueueConfig {
                size,
                desc_table,
                driver_ring,
                device_ring,
                features,
            },
            avail_idx: 0,
        }
    }

    pub fn queue(&self) -> Queue {
        Queue::new(self.config, &self.mem).expect("valid test queue")
    }

    /// Writes descriptor `index` of the table at `table`.
    pub fn desc_at(&self, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let gpa = table + 16 * u64::from(index);
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        self.mem.put(gpa, &raw);
    }

    /// Writes descriptor `index` of the queue's table.
    pub fn desc(&self, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.desc_at(self.config.desc_table, index, addr, len, flags, next);
    }

    /// Puts `head` in the next driver ring entry, without publishing it.
    pub fn stage(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % self.config.size);
        self.mem
            .put_u16(self.config.driver_ring + 4 + 2 * slot, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
    }

    /// Publishes every staged entry (`avail.idx`).
    pub fn publish(&self) {
        self.mem
            .put_u16(self.config.driver_ring + 2, self.avail_idx);
    }

    /// Makes `head` available.
    pub fn offer(&mut self, head: u16) {
        self.stage(head);
        self.publish();
    }

    /// Lays out a chain of buffers `(addr, len, writable)` in descriptors
    /// `first..` and offers it; returns the head.
    pub fn offer_chain(&mut self, first: u16, buffers: &[(u64, u32, bool)]) -> u16 {
        for (i, &(addr, len, writable)) in buffers.iter().enumerate() {
            let index = first + i as u16;
            let last = i + 1 == buffers.len();
            let flags = if writable { WRITE } else { 0 } | if last { 0 } else { NEXT };
            self.desc(index, addr, len, flags, if last { 0 } else { index + 1 });
        }
        self.offer(first);
        first
    }

    pub fn set_avail_flags(&self, flags: u16) {
        self.mem.put_u16(self.config.driver_ring, flags);
    }

    pub fn set_used_event(&self, value: u16) {
        self.mem.put_u16(
            self.config.driver_ring + 4 + 2 * u64::from(self.config.size),
            value,
        );
    }

    pub fn avail_event(&self) -> u16 {
        self.mem
            .get_u16(self.config.device_ring + 4 + 8 * u64::from(self.config.size))
    }

    pub fn used_idx(&self) -> u16 {
        self.mem.get_u16(self.config.device_ring + 2)
    }

    /// The used element in `slot`: (id, len).
    pub fn used(&self, slot: u16) -> (u32, u32) {
        let gpa = self.config.device_ring + 4 + 8 * u64::from(slot % self.config.size);
        (self.mem.get_u32(gpa), self.mem.get_u32(gpa + 4))
    }
}
