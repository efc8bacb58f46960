//! A configuration space in memory, for tests: functions whose registers
//! hold what is written to their writable bits, like hardware, plus models
//! of what QEMU's `virt` machine puts on its bus.
//!
//! Built with the `fake` feature (and in this crate's own tests).

extern crate alloc;

use crate::config::{Bdf, ConfigSpace, Register, CONFIG_SPACE_SIZE, LEGACY_CONFIG_SPACE_SIZE};
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

const DWORDS: usize = CONFIG_SPACE_SIZE as usize / 4;

/// Command register bits a typical function implements: I/O, memory, bus
/// master, parity, SERR# and INTx disable.
const COMMAND_WRITABLE: u32 = 0x0547;

/// One function's configuration space.
#[derive(Clone, Debug)]
pub struct FakeFunction {
    /// Each dword's current value.
    pub regs: Vec<u32>,
    /// Each dword's bits that writes change; the rest are read-only.
    pub writable: Vec<u32>,
    /// Dwords that read as a fixed value whatever is written (by byte
    /// offset): a broken device.
    pub stuck: BTreeMap<u16, u32>,
    /// Dwords (by byte offset) that size like a BAR but do not keep an
    /// address: any write but all ones stores zeros.
    pub drops_addresses: BTreeSet<u16>,
    /// Whether the function has extended configuration space; without it,
    /// offsets from 0x100 read as all ones (a conventional PCI function on
    /// a PCIe bus, as QEMU's virtio devices on the root bus are).
    pub extended: bool,
}

impl FakeFunction {
    /// A function with these IDs, class code (base class in bits 23:16,
    /// subclass 15:8, programming interface 7:0) and header type byte;
    /// everything else zero, the command register writable.
    pub fn new(vendor_id: u16, device_id: u16, class: u32, header_type: u8) -> FakeFunction {
        let mut f = FakeFunction {
            regs: alloc::vec![0; DWORDS],
            writable: alloc::vec![0; DWORDS],
            stuck: BTreeMap::new(),
            drops_addresses: BTreeSet::new(),
            extended: false,
        };
        f.set(0x00, u32::from(device_id) << 16 | u32::from(vendor_id));
        f.set(0x08, class << 8);
        f.set(0x0c, u32::from(header_type) << 16);
        f.set_writable(0x04, COMMAND_WRITABLE);
        f
    }

    /// Sets the dword at byte `offset` (a multiple of 4) without regard to
    /// which bits are writable.
    pub fn set(&mut self, offset: u16, value: u32) -> &mut Self {
        self.regs[usize::from(offset / 4)] = value;
        self
    }

    /// Sets the writable bits of the dword at `offset`.
    pub fn set_writable(&mut self, offset: u16, mask: u32) -> &mut Self {
        self.writable[usize::from(offset / 4)] = mask;
        self
    }

    /// The dword at byte `offset`.
    pub fn get(&self, offset: u16) -> u32 {
        self.regs[usize::from(offset / 4)]
    }

    /// Makes BAR `index` a 32-bit memory BAR of `size` bytes (a power of
    /// two, at least 16).
    pub fn bar32(&mut self, index: u8, size: u32, prefetchable: bool) -> &mut Self {
        let offset = 0x10 + 4 * u16::from(index);
        self.set(offset, if prefetchable { 0x8 } else { 0 })
            .set_writable(offset, !(size - 1))
    }

    /// Makes BARs `index` and `index + 1` a 64-bit memory BAR of `size`
    /// bytes.
    pub fn bar64(&mut self, index: u8, size: u64, prefetchable: bool) -> &mut Self {
        let offset = 0x10 + 4 * u16::from(index);
        let mask = !(size - 1);
        self.set(offset, 0x4 | if prefetchable { 0x8 } else { 0 })
            .set_writable(offset, mask as u32 & !0xf)
            .set(offset + 4, 0)
            .set_writable(offset + 4, (mask >> 32) as u32)
    }

    /// Makes BAR `index` an I/O BAR of `size` bytes.
    pub fn io_bar(&mut self, index: u8, size: u32) -> &mut Self {
        let offset = 0x10 + 4 * u16::from(index);
        self.set(offset, 0x1)
            .set_writable(offset, !(size - 1) & !0x3)
    }

    /// Points the capabilities pointer at `first` and sets the status
    /// register's capabilities-list bit.
    pub fn capabilities_at(&mut self, first: u8) -> &mut Self {
        let status = self.get(0x04) | 1 << (16 + 4);
        self.set(0x04, status).set(0x34, u32::from(first))
    }

    /// Writes a capability at `offset`: ID, next pointer, the two header
    /// bytes after them, then `body` dwords.
    pub fn capability(
        &mut self,
        offset: u8,
        id: u8,
        next: u8,
        header_rest: u16,
        body: &[u32],
    ) -> &mut Self {
        let offset = u16::from(offset);
        self.set(
            offset,
            u32::from(header_rest) << 16 | u32::from(next) << 8 | u32::from(id),
        );
        for (i, dword) in body.iter().enumerate() {
            self.set(offset + 4 * (i as u16 + 1), *dword);
        }
        self
    }

    fn read(&self, offset: u16) -> u32 {
        if offset >= LEGACY_CONFIG_SPACE_SIZE && !self.extended {
            return u32::MAX;
        }
        match self.stuck.get(&offset) {
            Some(value) => *value,
            None => self.get(offset),
        }
    }

    fn write(&mut self, offset: u16, value: u32) {
        if offset >= LEGACY_CONFIG_SPACE_SIZE && !self.extended {
            return;
        }
        let value = if value != u32::MAX && self.drops_addresses.contains(&offset) {
            0
        } else {
            value
        };
        let i = usize::from(offset / 4);
        self.regs[i] = (self.regs[i] & !self.writable[i]) | (value & self.writable[i]);
    }
}

/// A write seen by a [`FakeConfigSpace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write {
    /// The function.
    pub bdf: Bdf,
    /// The register.
    pub reg: Register,
    /// The value written.
    pub value: u32,
}

/// Functions at addresses; absent ones read all ones.
#[derive(Clone, Debug, Default)]
pub struct FakeConfigSpace {
    /// The functions.
    pub functions: BTreeMap<Bdf, FakeFunction>,
    /// Every write, in order (to absent functions too).
    pub writes: Vec<Write>,
}

impl FakeConfigSpace {
    /// An empty bus.
    pub fn new() -> FakeConfigSpace {
        FakeConfigSpace::default()
    }

    /// Puts `function` at `bdf`.
    pub fn insert(&mut self, bdf: Bdf, function: FakeFunction) -> &mut Self {
        self.functions.insert(bdf, function);
        self
    }

    /// The function at `bdf`.
    pub fn function(&self, bdf: Bdf) -> Option<&FakeFunction> {
        self.functions.get(&bdf)
    }

    /// The function at `bdf`, to change it.
    pub fn function_mut(&mut self, bdf: Bdf) -> Option<&mut FakeFunction> {
        self.functions.get_mut(&bdf)
    }
}

impl ConfigSpace for FakeConfigSpace {
    fn read32(&self, bdf: Bdf, reg: Register) -> u32 {
        self.functions
            .get(&bdf)
            .map_or(u32::MAX, |f| f.read(reg.offset()))
    }

    fn write32(&mut self, bdf: Bdf, reg: Register, value: u32) {
        self.writes.push(Write { bdf, reg, value });
        if let Some(f) = self.functions.get_mut(&bdf) {
            f.write(reg.offset(), value);
        }
    }
}

/// Models of the functions QEMU 10's `virt` machine puts on bus 0, their
/// registers as read from a running QEMU (`xp` on the ECAM window, BARs
/// sized by the hypervisor).
pub mod qemu {
    use super::FakeFunction;

    /// Red Hat's vendor ID, QEMU's own devices'.
    pub const VENDOR_REDHAT: u16 = 0x1b36;
    /// The virtio vendor ID.
    pub const VENDOR_VIRTIO: u16 = 0x1af4;
    /// The generic PCIe host bridge (GPEX) at 00:00.0.
    pub const DEVICE_GPEX_HOST: u16 = 0x0008;
    /// A transitional (legacy and modern) virtio-net.
    pub const DEVICE_VIRTIO_NET_TRANSITIONAL: u16 = 0x1000;
    /// A transitional virtio-blk: what `-device virtio-blk-pci` is on the
    /// root bus, where QEMU keeps the legacy interface by default.
    pub const DEVICE_VIRTIO_BLK_TRANSITIONAL: u16 = 0x1001;
    /// A modern-only virtio-blk (`disable-legacy=on`): 0x1040 + device 2.
    pub const DEVICE_VIRTIO_BLK_MODERN: u16 = 0x1042;

    /// The host bridge function at 00:00.0: class 0x0600, no BARs.
    pub fn host_bridge() -> FakeFunction {
        FakeFunction::new(VENDOR_REDHAT, DEVICE_GPEX_HOST, 0x06_00_00, 0)
    }

    /// `-device virtio-blk-pci`: with `modern_only` false, the transitional
    /// device QEMU makes by default (device 0x1001, legacy I/O BAR0);
    /// with `modern_only`, `disable-legacy=on` (device 0x1042, no I/O BAR).
    ///
    /// Either has the MSI-X table in BAR1 (32-bit, 4 KiB) and the virtio
    /// structures in BAR4 (64-bit prefetchable, 16 KiB): common
    /// configuration at 0x0000, ISR at 0x1000, device configuration at
    /// 0x2000, notifications at 0x3000 (multiplier 4), each described by a
    /// vendor-specific capability (virtio 1.2 §4.1.4), plus the
    /// PCI-configuration-access one.
    pub fn virtio_blk(modern_only: bool) -> FakeFunction {
        let device = if modern_only {
            DEVICE_VIRTIO_BLK_MODERN
        } else {
            DEVICE_VIRTIO_BLK_TRANSITIONAL
        };
        let mut f = FakeFunction::new(VENDOR_VIRTIO, device, 0x01_00_00, 0);
        if !modern_only {
            f.io_bar(0, 0x80);
        }
        f.bar32(1, 0x1000, false)
            .bar64(4, 0x4000, true)
            // Subsystem: virtio device type 2, block.
            .set(0x2c, 0x0002_1af4)
            // Interrupt pin A.
            .set(0x3c, 0x0000_0100)
            .capabilities_at(0x98)
            // MSI-X: 2 vectors, table in BAR1 at 0, PBA in BAR1 at 0x800.
            .capability(0x98, 0x11, 0x84, 0x0001, &[0x0000_0001, 0x0000_0801])
            // virtio_pci_cfg_cap (type 5), 20 bytes.
            .capability(0x84, 0x09, 0x70, 0x0514, &[0, 0, 0, 0])
            // Notifications (type 2): BAR4 0x3000+0x1000, multiplier 4.
            .capability(0x70, 0x09, 0x60, 0x0214, &[4, 0x3000, 0x1000, 4])
            // Device configuration (type 4): BAR4 0x2000+0x1000.
            .capability(0x60, 0x09, 0x50, 0x0410, &[4, 0x2000, 0x1000])
            // ISR (type 3): BAR4 0x1000+0x1000.
            .capability(0x50, 0x09, 0x40, 0x0310, &[4, 0x1000, 0x1000])
            // Common configuration (type 1): BAR4 0+0x1000.
            .capability(0x40, 0x09, 0x00, 0x0110, &[4, 0x0000, 0x1000]);
        f
    }

    /// The default NIC QEMU adds at 00:01.0 unless told `-nic none`: a
    /// transitional virtio-net, laid out like [`virtio_blk`] apart from
    /// its IDs (and an expansion ROM, not modelled).
    pub fn virtio_net() -> FakeFunction {
        let mut f = virtio_blk(false);
        f.set(
            0x00,
            u32::from(DEVICE_VIRTIO_NET_TRANSITIONAL) << 16 | u32::from(VENDOR_VIRTIO),
        )
        .set(0x08, 0x02_00_00 << 8)
        .set(0x2c, 0x0001_1af4);
        f
    }
}
