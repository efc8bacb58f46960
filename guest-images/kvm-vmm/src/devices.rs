//! The devices the VMM emulates in user space: whatever KVM does not handle
//! in the kernel reaches it as an MMIO exit.
//!
//! - A PL011's transmit side at QEMU `virt`'s `0x0900_0000`: bytes written to
//!   its data register go to the console, a line at a time; its flag
//!   register says the transmit FIFO is empty.
//! - QEMU `virt`'s 32 virtio-mmio slots at `0x0A00_0000`, all empty: a
//!   slot reads as a version 2 transport with device ID 0 ("no device"), as
//!   the hypervisor's do.
//!
//! Anything else reads as zero and ignores writes, and is counted.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use guest_boot::virt;

/// PL011 register offsets (PrimeCell UART PL011 TRM, 3.2).
const UARTDR: u64 = 0x000;
const UARTFR: u64 = 0x018;
/// UARTFR: receive FIFO empty, transmit FIFO empty.
const FR_RXFE: u32 = 1 << 4;
const FR_TXFE: u32 = 1 << 7;
/// UARTPeriphID0..3 and UARTPCellID0..3, at 0xFE0..0xFFC: a PL011 r1p5.
const PL011_ID_OFFSET: u64 = 0xFE0;
const PL011_ID: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// virtio-mmio register offsets and values (virtio 1.2, 4.2.2).
const VIRTIO_MAGIC_VALUE: u64 = 0x000;
const VIRTIO_VERSION: u64 = 0x004;
const VIRTIO_DEVICE_ID: u64 = 0x008;
const VIRTIO_VENDOR_ID: u64 = 0x00c;
/// "virt", little-endian.
pub const VIRTIO_MAGIC: u32 = 0x7472_6976;
/// The non-legacy transport.
const VIRTIO_MMIO_VERSION: u32 = 2;
/// "QEMU", the vendor ID QEMU's transports report.
const VIRTIO_VENDOR: u32 = 0x554d_4551;

/// Longest console line kept before it is printed anyway.
const MAX_LINE: usize = 4096;

/// Which device an address belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The PL011, at this offset.
    Uart(u64),
    /// A virtio-mmio slot, at this offset into it.
    Virtio(u64),
    /// Nothing.
    Unhandled,
}

fn target(address: u64) -> Target {
    let uart = virt::UART;
    if (uart.start().get()..uart.end().get()).contains(&address) {
        return Target::Uart(address - uart.start().get());
    }
    let virtio_start = virt::VIRTIO_MMIO_BASE.get();
    let virtio_end = virtio_start + u64::from(virt::VIRTIO_MMIO_SLOTS) * virt::VIRTIO_MMIO_STRIDE;
    if (virtio_start..virtio_end).contains(&address) {
        return Target::Virtio((address - virtio_start) % virt::VIRTIO_MMIO_STRIDE);
    }
    Target::Unhandled
}

/// How many accesses the bus saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Reads of a device register.
    pub reads: u64,
    /// Writes to a device register.
    pub writes: u64,
    /// Accesses to no device.
    pub unhandled: u64,
}

/// The emulated devices; shared by every vCPU thread.
#[derive(Debug)]
pub struct Bus<W: Write> {
    console: Mutex<Console<W>>,
    reads: AtomicU64,
    writes: AtomicU64,
    unhandled: AtomicU64,
}

/// The console's output and its line being assembled.
#[derive(Debug)]
struct Console<W> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> Console<W> {
    fn push(&mut self, byte: u8) {
        self.line.push(byte);
        if byte == b'\n' || self.line.len() >= MAX_LINE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        // The console is the only place to report a console error; carry on.
        let _ = self.out.write_all(&self.line);
        let _ = self.out.flush();
        self.line.clear();
    }
}

/// Whether an access reached a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A device took it.
    Handled,
    /// No device is there: a read returned zeroes, a write was dropped.
    Unhandled,
}

impl<W: Write> Bus<W> {
    /// A bus whose console writes to `out`.
    pub fn new(out: W) -> Self {
        Self {
            console: Mutex::new(Console {
                out,
                line: Vec::new(),
            }),
            reads: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            unhandled: AtomicU64::new(0),
        }
    }

    /// Fills `data` (1 to 8 bytes, little-endian) with what a read at
    /// `address` returns.
    pub fn read(&self, address: u64, data: &mut [u8]) -> Access {
        let value: u64 = match target(address) {
            Target::Uart(UARTFR) => (FR_TXFE | FR_RXFE).into(),
            Target::Uart(offset) if offset >= PL011_ID_OFFSET => {
                let index = ((offset - PL011_ID_OFFSET) / 4) as usize;
                PL011_ID.get(index).copied().unwrap_or(0).into()
            }
            Target::Uart(_) => 0,
            Target::Virtio(VIRTIO_MAGIC_VALUE) => VIRTIO_MAGIC.into(),
            Target::Virtio(VIRTIO_VERSION) => VIRTIO_MMIO_VERSION.into(),
            Target::Virtio(VIRTIO_DEVICE_ID) => 0,
            Target::Virtio(VIRTIO_VENDOR_ID) => VIRTIO_VENDOR.into(),
            Target::Virtio(_) => 0,
            Target::Unhandled => {
                data.fill(0);
                self.unhandled.fetch_add(1, Ordering::Relaxed);
                return Access::Unhandled;
            }
        };
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = value.checked_shr(8 * i as u32).unwrap_or(0) as u8;
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        Access::Handled
    }

    /// Carries out a write of `data` (little-endian) at `address`.
    pub fn write(&self, address: u64, data: &[u8]) -> Access {
        match target(address) {
            Target::Uart(UARTDR) => {
                if let Some(&byte) = data.first() {
                    self.lock_console().push(byte);
                }
            }
            Target::Uart(_) | Target::Virtio(_) => {}
            Target::Unhandled => {
                self.unhandled.fetch_add(1, Ordering::Relaxed);
                return Access::Unhandled;
            }
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        Access::Handled
    }

    /// Prints what is left of the console's last line.
    pub fn flush(&self) {
        let mut console = self.lock_console();
        if !console.line.is_empty() {
            console.flush();
        }
    }

    /// The accesses so far.
    pub fn counts(&self) -> Counts {
        Counts {
            reads: self.reads.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            unhandled: self.unhandled.load(Ordering::Relaxed),
        }
    }

    fn lock_console(&self) -> std::sync::MutexGuard<'_, Console<W>> {
        // A vCPU thread that panicked mid-line leaves nothing inconsistent.
        self.console
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The console's output (for tests).
    #[cfg(test)]
    fn into_output(self) -> W {
        self.console
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(bus: &Bus<Vec<u8>>, address: u64) -> (u32, Access) {
        let mut data = [0xaa; 4];
        let access = bus.read(address, &mut data);
        (u32::from_le_bytes(data), access)
    }

    #[test]
    fn every_virtio_slot_is_an_empty_version_2_transport() {
        let bus = Bus::new(Vec::new());
        for slot in 0..32 {
            let base = 0x0A00_0000 + slot * 0x200;
            assert_eq!(read32(&bus, base), (VIRTIO_MAGIC, Access::Handled));
            assert_eq!(read32(&bus, base + 4), (2, Access::Handled));
            assert_eq!(read32(&bus, base + 8), (0, Access::Handled), "no device");
            assert_eq!(read32(&bus, base + 0x70).0, 0);
        }
        // The slot after the last is not a slot.
        assert_eq!(read32(&bus, 0x0A00_4000).1, Access::Unhandled);
        assert_eq!(bus.counts().reads, 32 * 4);
        assert_eq!(bus.counts().unhandled, 1);
    }

    #[test]
    fn narrow_reads_take_the_low_bytes() {
        let bus = Bus::new(Vec::new());
        let mut byte = [0];
        bus.read(0x0A00_0000, &mut byte);
        assert_eq!(byte, [b'v']);
        let mut wide = [0xff; 8];
        bus.read(0x0A00_0000, &mut wide);
        assert_eq!(wide, [b'v', b'i', b'r', b't', 0, 0, 0, 0]);
    }

    #[test]
    fn the_console_prints_whole_lines() {
        let bus = Bus::new(Vec::new());
        assert_eq!(read32(&bus, 0x0900_0018).0 & FR_TXFE, FR_TXFE);
        for &byte in b"BENCH done\r\npartial" {
            assert_eq!(bus.write(0x0900_0000, &[byte, 0, 0, 0]), Access::Handled);
        }
        bus.flush();
        assert_eq!(bus.into_output(), b"BENCH done\r\npartial");
    }

    #[test]
    fn a_line_is_printed_once_it_is_complete() {
        let bus = Bus::new(Vec::new());
        for &byte in b"one\ntwo" {
            bus.write(0x0900_0000, &[byte]);
        }
        assert_eq!(bus.console.lock().unwrap().out, b"one\n");
    }

    #[test]
    fn the_uart_identifies_as_a_pl011() {
        let bus = Bus::new(Vec::new());
        let ids: Vec<u32> = (0..8)
            .map(|i| read32(&bus, 0x0900_0FE0 + 4 * i).0)
            .collect();
        assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    }

    #[test]
    fn accesses_to_no_device_are_counted_not_fatal() {
        let bus = Bus::new(Vec::new());
        assert_eq!(read32(&bus, 0x0800_0000), (0, Access::Unhandled));
        assert_eq!(bus.write(0x1000, &[1]), Access::Unhandled);
        assert_eq!(
            bus.counts(),
            Counts {
                reads: 0,
                writes: 0,
                unhandled: 2
            }
        );
    }
}
