//! Host tests: a guest memory over a `Vec`, a driver side that lays out a
//! queue and offers chains the way a driver does, and the tests per module.

use core::cell::RefCell;
use std::vec;
use std::vec::Vec;

use virtqueue::{window_offset, Chain, GuestMemory, MemError, Queue, QueueConfig, QueueFeatures};

mod backlog;
mod device;
mod fuzz;
mod switch;

/// Guest memory: `bytes.len()` bytes from `base`.
pub struct VecMemory {
    pub base: u64,
    pub bytes: RefCell<Vec<u8>>,
}

impl VecMemory {
    pub fn new(base: u64, size: usize) -> Self {
        Self {
            base,
            bytes: RefCell::new(vec![0; size]),
        }
    }

    fn range(&self, gpa: u64, len: u64) -> Result<usize, MemError> {
        let size = self.bytes.borrow().len() as u64;
        window_offset(self.base, size, gpa, len).map(|offset| offset as usize)
    }

    pub fn put(&self, gpa: u64, data: &[u8]) {
        self.write(gpa, data).expect("test writes inside memory");
    }

    pub fn get(&self, gpa: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        self.read(gpa, &mut buf).expect("test reads inside memory");
        buf
    }
}

impl GuestMemory for VecMemory {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let offset = self.range(gpa, buf.len() as u64)?;
        buf.copy_from_slice(&self.bytes.borrow()[offset..offset + buf.len()]);
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let offset = self.range(gpa, data.len() as u64)?;
        self.bytes.borrow_mut()[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.range(gpa, len).map(|_| ())
    }
}

/// Descriptor flags, as a driver writes them.
pub const NEXT: u16 = 1;
pub const WRITE: u16 = 2;
pub const INDIRECT: u16 = 4;

/// Where the test memory starts.
pub const BASE: u64 = 0x4000_0000;
/// Test memory size: rings at the start, buffers from [`DATA`].
pub const MEM_SIZE: usize = 1 << 20;
/// Where test buffers go.
pub const DATA: u64 = BASE + 0x1_0000;
/// Where indirect tables go.
pub const TABLES: u64 = BASE + 0x8000;
/// The queue size the tests use.
pub const SIZE: u16 = 64;

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

/// The driver side of one queue in its own memory.
pub struct Driver {
    pub mem: VecMemory,
    pub config: QueueConfig,
    pub queue: Queue,
    avail_idx: u16,
}

impl Driver {
    pub fn new() -> Self {
        let mem = VecMemory::new(BASE, MEM_SIZE);
        let config = QueueConfig {
            size: SIZE,
            desc_table: BASE,
            driver_ring: BASE + 16 * u64::from(SIZE),
            device_ring: BASE + 0x1000,
            features: QueueFeatures {
                indirect_desc: true,
                event_idx: false,
            },
        };
        let queue = Queue::new(config, &mem).expect("valid test queue");
        Self {
            mem,
            config,
            queue,
            avail_idx: 0,
        }
    }

    fn desc_at(&self, table: u64, index: u16, buf: Buf, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&buf.gpa.to_le_bytes());
        raw[8..12].copy_from_slice(&buf.len.to_le_bytes());
        let flags = flags | if buf.writable { WRITE } else { 0 };
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        self.mem.put(table + 16 * u64::from(index), &raw);
    }

    /// Writes `bufs` as a linked list in `table` from entry 0.
    fn list(&self, table: u64, bufs: &[Buf]) {
        for (i, &buf) in bufs.iter().enumerate() {
            let index = i as u16;
            let last = i + 1 == bufs.len();
            let (flags, next) = if last { (0, 0) } else { (NEXT, index + 1) };
            self.desc_at(table, index, buf, flags, next);
        }
    }

    fn offer_head(&mut self, head: u16) {
        let slot = u64::from(self.avail_idx % SIZE);
        self.mem
            .put(self.config.driver_ring + 4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.mem
            .put(self.config.driver_ring + 2, &self.avail_idx.to_le_bytes());
    }

    /// Offers `bufs` as a direct chain and takes it from the queue as the
    /// device would. Only one chain is in flight at a time in these tests;
    /// it is returned at once.
    pub fn chain(&mut self, bufs: &[Buf]) -> Chain {
        self.list(self.config.desc_table, bufs);
        self.take()
    }

    /// Offers `bufs` through an indirect table.
    pub fn indirect_chain(&mut self, bufs: &[Buf]) -> Chain {
        self.list(TABLES, bufs);
        let table = Buf::r(TABLES, 16 * bufs.len() as u32);
        self.desc_at(self.config.desc_table, 0, table, INDIRECT, 0);
        self.take()
    }

    fn take(&mut self) -> Chain {
        self.offer_head(0);
        let chain = self
            .queue
            .pop(&self.mem)
            .expect("valid test chain")
            .expect("a chain was offered");
        self.queue
            .push_used(&self.mem, chain.head(), 0)
            .expect("chain in flight");
        chain
    }
}

/// A frame from `src` to `dst` with `payload_len` bytes after the
/// EtherType, the payload a recognisable pattern.
pub fn frame(dst: [u8; 6], src: [u8; 6], payload_len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload_len);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend((0..payload_len).map(|i| (i % 251) as u8));
    frame
}

pub const MAC_A: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 1];
pub const MAC_B: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 2];
pub const MAC_C: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 3];
pub const BROADCAST: [u8; 6] = [0xff; 6];
