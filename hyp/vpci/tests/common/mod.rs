//! Fake physical functions and a bridge over them, shared by the tests.

#![allow(dead_code)]

use guest_boot::virt::Spi;
use guest_boot::{IntermediatePhysAddr, IpaRange, PciWindows};
use pci::fake::{qemu, FakeConfigSpace, FakeFunction};
use pci::{
    BarAllocator, Bdf, ConfigSpace, HeaderType, PciAddr, PhysAddr, PhysRange, Register, Window,
    WindowKind,
};
use vpci::{Effect, Intx, Passthrough, VirtualBridge};

/// The host's virtio-blk (modern): vendor capabilities, MSI-X, a 32-bit
/// BAR1 (4 KiB, the MSI-X table) and a 64-bit prefetchable BAR4 (16 KiB).
pub const BLK: Bdf = bdf(2);
/// The host's edu device: BAR0 1 MiB, an MSI capability only.
pub const EDU: Bdf = bdf(3);
/// A NIC-like function with every kind of capability and odd BARs.
pub const NIC: Bdf = bdf(4);

/// Guest device numbers.
pub const BLK_DEV: u8 = 1;
pub const EDU_DEV: u8 = 2;
pub const NIC_DEV: u8 = 5;

/// The vendor and device IDs of QEMU's `edu`.
pub const EDU_VENDOR: u16 = 0x1234;
pub const EDU_DEVICE: u16 = 0x11e8;

/// Command bits the hypervisor left on the physical functions: SERR#
/// reporting (which the guest must not change) and the decoding that
/// `new` turns off.
pub const HOST_COMMAND: u32 = 0x0107;

pub const fn bdf(device: u8) -> Bdf {
    match Bdf::new(0, device, 0) {
        Some(b) => b,
        None => panic!(),
    }
}

pub fn spi(n: u32) -> Spi {
    Spi::new(n).unwrap()
}

pub fn ipa_range(start: u64, size: u64) -> IpaRange {
    IpaRange::new(IntermediatePhysAddr(start), size).unwrap()
}

pub fn ram() -> IpaRange {
    ipa_range(0x4000_0000, 256 << 20)
}

/// QEMU's `edu`: class 0x00ff, revision 0x10, BAR0 1 MiB of 32-bit MMIO,
/// MSI at 0x40 (64-bit capable), pin A.
pub fn edu() -> FakeFunction {
    let mut f = FakeFunction::new(EDU_VENDOR, EDU_DEVICE, 0x00_ff_00, 0);
    f.set(0x08, 0x00ff_0010)
        .bar32(0, 1 << 20, false)
        .set(0x2c, 0x1100_1af4)
        .set(0x3c, 0x0000_0100)
        .capabilities_at(0x40)
        .capability(0x40, 0x05, 0x00, 0x0080, &[0, 0, 0])
        .set_writable(0x40, 0x0071_0000);
    f
}

/// A NIC-like function: PM (0x40) -> MSI (0x50) -> PCI Express v2 (0x70,
/// FLR capable) -> MSI-X (0xb0) -> vendor specific (0xc0, 12 bytes).
/// BAR0 128 KiB 32-bit, BAR2 an I/O BAR, BAR3 256 bytes, 32-bit. Pin B. It
/// says it is multi-function.
pub fn nic() -> FakeFunction {
    let mut f = FakeFunction::new(0x8086, 0x10d3, 0x02_00_00, 0x80);
    f.bar32(0, 128 << 10, false)
        .io_bar(2, 32)
        .bar32(3, 256, false)
        .set(0x3c, 0x0000_0200)
        .capabilities_at(0x40)
        .capability(0x40, 0x01, 0x50, 0xc823, &[0x0000_0008])
        .capability(0x50, 0x05, 0x70, 0x0080, &[0, 0, 0])
        // PCIe v2 endpoint; Device Capabilities with FLR (bit 28) and a
        // 256-byte max payload; Device Control/Status; Link Capabilities.
        .capability(
            0x70,
            0x10,
            0xb0,
            0x0002,
            &[0x1000_8001, 0x0010_2810, 0x0043_3c11, 0x1011_0000],
        )
        .capability(0xb0, 0x11, 0xc0, 0x0004, &[0x0000_0003, 0x0000_2003])
        .capability(0xc0, 0x09, 0x00, 0x000c, &[0x1234_5678, 0x9abc_def0]);
    // Writable, so a forwarded write would show.
    f.set_writable(0x44, 0x0000_8103)
        .set_writable(0x78, 0x0000_ffff)
        .set_writable(0x50, 0x0071_0000)
        .set_writable(0xb0, 0xc000_0000);
    f
}

/// The host bus: the three functions, their command registers as the
/// hypervisor left them.
pub fn host_bus() -> FakeConfigSpace {
    let mut cs = FakeConfigSpace::new();
    cs.insert(BLK, qemu::virtio_blk(true))
        .insert(EDU, edu())
        .insert(NIC, nic());
    for bdf in [BLK, EDU, NIC] {
        let f = cs.function_mut(bdf).unwrap();
        let value = f.get(0x04) | HOST_COMMAND;
        f.set(0x04, value);
    }
    cs
}

/// QEMU virt's 32-bit host window.
pub fn host_allocator(start: u64) -> BarAllocator {
    let mut allocator = BarAllocator::new();
    allocator
        .add_window(Window {
            kind: WindowKind::Mem32,
            prefetchable: false,
            pci_start: PciAddr(start),
            cpu: PhysRange::new(PhysAddr(start), 0x3eff_0000 - start).unwrap(),
        })
        .unwrap();
    allocator
}

/// Assigns the host BARs of `bdf`, each function its own page-aligned
/// stretch of the host window.
pub fn assign(cs: &mut FakeConfigSpace, bdf: Bdf) -> pci::AssignedBars {
    let start = 0x1000_0000 + u64::from(bdf.device()) * 0x0100_0000;
    pci::assign_bars(cs, bdf, HeaderType::Endpoint, &mut host_allocator(start)).unwrap()
}

/// QEMU virt's INTx swizzle: slot `s`, pin `p` (1 = INTA) raises SPI
/// `3 + (s + p - 1) % 4`. The guest gets the same number.
pub fn intx(bdf: Bdf, pin: u32) -> Intx {
    let n = 3 + (u32::from(bdf.device()) + pin - 1) % 4;
    Intx {
        host: spi(n),
        guest: spi(n),
    }
}

/// The three functions, assigned, with INTx.
pub fn passthroughs(cs: &mut FakeConfigSpace) -> Vec<Passthrough> {
    vec![
        Passthrough {
            host: BLK,
            guest_device: BLK_DEV,
            bars: assign(cs, BLK),
            intx: Some(intx(BLK, 1)),
        },
        Passthrough {
            host: EDU,
            guest_device: EDU_DEV,
            bars: assign(cs, EDU),
            intx: Some(intx(EDU, 1)),
        },
        Passthrough {
            host: NIC,
            guest_device: NIC_DEV,
            bars: assign(cs, NIC),
            intx: Some(intx(NIC, 2)),
        },
    ]
}

/// A bridge at `virt`'s layout over the three functions; the host's
/// write log is cleared, so tests see only the bridge's writes.
pub fn bridge() -> VirtualBridge<FakeConfigSpace> {
    bridge_with(PciWindows::VIRT)
}

pub fn bridge_with(windows: PciWindows) -> VirtualBridge<FakeConfigSpace> {
    let mut cs = host_bus();
    let functions = passthroughs(&mut cs);
    // `assign_bars` turned decoding off; as the hypervisor would have it.
    for bdf in [BLK, EDU, NIC] {
        pci::enable_memory_and_bus_master(&mut cs, bdf, pci::Command::SERR_ENABLE);
    }
    cs.writes.clear();
    VirtualBridge::new(cs, windows, ram(), &functions).unwrap()
}

/// The ECAM offset of register `reg` of guest device `device`, function
/// `function`, on `bus`.
pub fn ecam(bus: u8, device: u8, function: u8, reg: u16) -> u64 {
    u64::from(bus) << 20 | u64::from(device) << 15 | u64::from(function) << 12 | u64::from(reg)
}

/// The guest's bus as a `ConfigSpace`, so the `pci` crate can enumerate,
/// size, assign and walk it as a guest driver would; every effect is kept.
pub struct Guest<'a> {
    pub bridge: &'a mut VirtualBridge<FakeConfigSpace>,
    pub effects: Vec<Effect>,
}

impl<'a> Guest<'a> {
    pub fn new(bridge: &'a mut VirtualBridge<FakeConfigSpace>) -> Self {
        Guest {
            bridge,
            effects: Vec::new(),
        }
    }
}

impl ConfigSpace for Guest<'_> {
    fn read32(&self, bdf: Bdf, reg: Register) -> u32 {
        let offset = ecam(bdf.bus(), bdf.device(), bdf.function(), reg.offset());
        let access = self.bridge.read(offset, 4);
        access.value as u32
    }

    fn write32(&mut self, bdf: Bdf, reg: Register, value: u32) {
        let offset = ecam(bdf.bus(), bdf.device(), bdf.function(), reg.offset());
        let access = self.bridge.write(offset, 4, u64::from(value));
        self.effects.extend(access.value);
    }
}

/// Reads `size` bytes at `reg` of guest device `device`.
pub fn read(bridge: &VirtualBridge<FakeConfigSpace>, device: u8, reg: u16, size: u8) -> u64 {
    let access = bridge.read(ecam(0, device, 0, reg), size);
    assert_eq!(access.ignored, None);
    access.value
}

/// Writes `size` bytes at `reg` of guest device `device`.
pub fn write(
    bridge: &mut VirtualBridge<FakeConfigSpace>,
    device: u8,
    reg: u16,
    size: u8,
    value: u64,
) -> vpci::Access<vpci::Effects> {
    bridge.write(ecam(0, device, 0, reg), size, value)
}
