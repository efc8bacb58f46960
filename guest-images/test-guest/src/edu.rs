//! QEMU's `edu` device (docs/specs/edu.rst and hw/misc/edu.c in QEMU's
//! sources): PCI 1234:11e8, one 1 MiB memory BAR with an ID register, a
//! liveness register and a DMA engine that copies up to 4 KiB between
//! memory and a buffer inside the device.
//!
//! The DMA engine: source, destination and count registers, then a
//! command register whose bit 0 starts a transfer and reads 1 until it has
//! ended (100 ms of QEMU's virtual clock later). The device writes the
//! registers only while no transfer runs. A transfer the IOMMU aborts
//! still ends from the device's point of view: QEMU's model ignores the
//! bus error, so the command register is what tells the end, the device's
//! status register (its factorial unit) having nothing to do with DMA.

use crate::dt::Range;
use crate::{mmio, smp};
use core::arch::asm;
use core::fmt;

/// The vendor ID (QEMU's, 0x1234) and device ID of `edu`.
pub const VENDOR_ID: u16 = 0x1234;
/// See [`VENDOR_ID`].
pub const DEVICE_ID: u16 = 0x11e8;

/// Register offsets in BAR0.
const ID: u64 = 0x00;
const LIVENESS: u64 = 0x04;
const DMA_SOURCE: u64 = 0x80;
const DMA_DESTINATION: u64 = 0x88;
const DMA_COUNT: u64 = 0x90;
const DMA_COMMAND: u64 = 0x98;

/// What the ID register reads: version 1.0 (0x0100 in bits 31:16) and
/// the magic 0xed.
pub const ID_VALUE: u32 = 0x0100_00ed;

/// DMA command bits: start (reads 1 while the transfer runs), direction
/// (set: from the device's buffer to memory), raise an interrupt at the
/// end (never set here: the test polls).
const DMA_RUN: u64 = 1 << 0;
const DMA_TO_MEMORY: u64 = 1 << 1;

/// The device's DMA buffer, as DMA addresses on its side.
pub const BUFFER: u64 = 0x4_0000;
/// Its size.
pub const BUFFER_SIZE: u64 = 4096;

/// Size of a data cache line assumed for maintenance: the architecture's
/// smallest (CTR_EL0.DminLine is at least 16 bytes); a smaller step only
/// repeats work.
const CACHE_LINE: u64 = 16;

/// Which way a transfer goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From memory into the device's buffer (the device reads memory).
    ToDevice,
    /// From the device's buffer to memory (the device writes memory).
    ToMemory,
}

/// Why a transfer did not end well.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaError {
    /// The count is 0 or larger than the buffer.
    BadCount(u64),
    /// A transfer was still running before this one was started.
    Busy,
    /// The command register did not show the transfer running just after
    /// it was started (and it had not ended either, judging by the
    /// registers: they do not hold what was written).
    DidNotStart {
        /// What the source, destination and count registers read.
        registers: [u64; 3],
    },
    /// Still running after the time limit.
    Timeout {
        /// The limit, in milliseconds.
        ms: u64,
    },
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadCount(count) => {
                write!(f, "count {count:#x} is not 1 to {BUFFER_SIZE:#x} bytes")
            }
            Self::Busy => write!(f, "a transfer was already running"),
            Self::DidNotStart {
                registers: [s, d, c],
            } => write!(
                f,
                "did not start: source {s:#x}, destination {d:#x}, count {c:#x}"
            ),
            Self::Timeout { ms } => write!(f, "still running after {ms} ms"),
        }
    }
}

/// The device, through its BAR0 mapped at `base`.
#[derive(Debug)]
pub struct Edu {
    base: u64,
    /// This VM's RAM: where a transfer's memory side needs cache
    /// maintenance (elsewhere nothing of this VM is mapped).
    ram: Range,
}

impl Edu {
    /// The device whose BAR0 is mapped at `base`, in a VM whose RAM is
    /// `ram`.
    ///
    /// # Safety
    ///
    /// `base` must be the device's BAR0, 1 MiB of device memory that only
    /// this value accesses, with memory decoding on. The device's DMA must
    /// not reach memory Rust code uses except through buffers handed to
    /// [`Edu::transfer`] under its contract.
    pub unsafe fn new(base: u64, ram: Range) -> Self {
        Self { base, ram }
    }

    fn read32(&self, offset: u64) -> u32 {
        // SAFETY: Registers of BAR0, which `new`'s caller vouched for;
        // reads of them have no effect on memory.
        unsafe { mmio::read32(self.base + offset) }
    }

    fn read64(&self, offset: u64) -> u64 {
        // SAFETY: As for `read32`.
        unsafe { mmio::read64(self.base + offset) }
    }

    fn write32(&self, offset: u64, value: u32) {
        // SAFETY: As for `read32`; none of the 32-bit registers written
        // here starts a DMA.
        unsafe { mmio::write32(self.base + offset, value) }
    }

    /// The ID register: [`ID_VALUE`] for the device this driver knows.
    pub fn id(&self) -> u32 {
        self.read32(ID)
    }

    /// Writes `value` to the liveness register and reads it back: the
    /// device answers with its inverse.
    pub fn liveness(&self, value: u32) -> u32 {
        self.write32(LIVENESS, value);
        self.read32(LIVENESS)
    }

    /// Whether a transfer runs.
    pub fn busy(&self) -> bool {
        self.read64(DMA_COMMAND) & DMA_RUN != 0
    }

    /// Runs one transfer of `count` bytes, `source` to `destination` (one
    /// side a DMA address in memory, the other in [`BUFFER`], as
    /// `direction` says), and waits at most `timeout_ms` for its end.
    /// Returns how long it ran, in milliseconds of counter time.
    ///
    /// # Errors
    ///
    /// Every [`DmaError`]; on a timeout the transfer may still run.
    ///
    /// # Safety
    ///
    /// For [`Direction::ToMemory`], the device writes `[destination,
    /// destination + count)`: if those are addresses of this VM's memory
    /// (DMA addresses are its IPAs, the SMMU translating them with its
    /// stage 2), no Rust reference may point there, and the caller reads
    /// them only after this returns. For [`Direction::ToDevice`], the
    /// device reads `[source, source + count)`; the caller must not write
    /// there until this returns.
    pub unsafe fn transfer(
        &self,
        source: u64,
        destination: u64,
        count: u64,
        direction: Direction,
        timeout_ms: u64,
    ) -> Result<u64, DmaError> {
        if count == 0 || count > BUFFER_SIZE {
            return Err(DmaError::BadCount(count));
        }
        if self.busy() {
            return Err(DmaError::Busy);
        }
        let memory = match direction {
            Direction::ToDevice => source,
            Direction::ToMemory => destination,
        };
        // What the CPU wrote must be in memory before the device reads
        // it, and no dirty line may later be evicted over what the device
        // wrote. (The hypervisor says the bridge is `dma-coherent`, which
        // makes this unnecessary; it is cheap, and right either way.)
        self.clean_and_invalidate(memory, count);
        let command = DMA_RUN
            | match direction {
                Direction::ToDevice => 0,
                Direction::ToMemory => DMA_TO_MEMORY,
            };
        let start = smp::counter_ms();
        // SAFETY: BAR0's DMA registers (`new`'s contract); the transfer
        // this starts touches only what the caller vouched for. The 64-bit
        // writes carry whole DMA addresses (the device takes 4 or 8 bytes
        // there).
        unsafe {
            mmio::write64(self.base + DMA_SOURCE, source);
            mmio::write64(self.base + DMA_DESTINATION, destination);
            mmio::write64(self.base + DMA_COUNT, count);
            mmio::write64(self.base + DMA_COMMAND, command);
        }
        if !self.busy() {
            // It may have ended already on a fast host; then the registers
            // hold what was written.
            let registers = [
                self.read64(DMA_SOURCE),
                self.read64(DMA_DESTINATION),
                self.read64(DMA_COUNT),
            ];
            if registers != [source, destination, count] {
                return Err(DmaError::DidNotStart { registers });
            }
        }
        let ended = smp::wait_until(timeout_ms, || !self.busy());
        let ran = smp::counter_ms().wrapping_sub(start);
        if !ended {
            return Err(DmaError::Timeout { ms: timeout_ms });
        }
        // The device's writes before the CPU's reads; and drop any line a
        // speculative read brought in while the device wrote.
        self.clean_and_invalidate(memory, count);
        Ok(ran)
    }

    /// Cleans and invalidates `[start, start + size)` in the data cache
    /// to the point of coherency, then waits for it (`dsb sy`, which also
    /// orders the CPU's memory accesses against the device register
    /// accesses around it). Only for a range inside this VM's RAM:
    /// elsewhere nothing of the VM is mapped at stage 2, and maintenance
    /// there would fault.
    fn clean_and_invalidate(&self, start: u64, size: u64) {
        let range = Range {
            start,
            end: start.saturating_add(size),
        };
        if self.ram.contains(&range) && crate::mmu::is_normal_memory(range.start, range.end) {
            let mut line = start & !(CACHE_LINE - 1);
            while line < range.end {
                // SAFETY: Cache maintenance by VA on this VM's RAM, mapped
                // as normal memory, changes no data the program can see
                // (it writes lines back, then drops them).
                unsafe { asm!("dc civac, {line}", line = in(reg) line, options(nostack)) };
                line += CACHE_LINE;
            }
        }
        // SAFETY: A barrier has no other effect.
        unsafe { asm!("dsb sy", options(nostack)) };
    }
}
