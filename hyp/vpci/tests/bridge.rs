//! The virtual bridge over fake physical functions: what the guest reads,
//! what reaches the physical functions, which BARs get mapped.

mod common;

use common::*;
use guest_boot::{write_dtb_with_pci, GuestMachine, IntxPin, PciError, PciInterrupt, PciWindows};
use pci::fake::{qemu, FakeConfigSpace, FakeFunction};
use pci::{
    BarAllocator, BarKind, Bdf, CapabilityId, Command, ConfigSpace, HeaderType, PciAddr, PhysAddr,
    PhysRange, Register, Window, WindowKind,
};
use vpci::{
    BarMapping, BridgeError, Effect, Ignored, Intx, Passthrough, Unmapped, VirtualBridge,
    GUEST_COMMAND,
};

const ALL: [(Bdf, u8); 3] = [(BLK, BLK_DEV), (EDU, EDU_DEV), (NIC, NIC_DEV)];

fn physical(bridge: &VirtualBridge<FakeConfigSpace>, bdf: Bdf, reg: u16) -> u32 {
    bridge
        .config_space()
        .read32(bdf, Register::new(reg).unwrap())
}

fn guest_bdf(device: u8) -> Bdf {
    Bdf::new(0, device, 0).unwrap()
}

/// The guest's 32-bit window, for an allocator playing Linux.
fn guest_allocator() -> BarAllocator {
    let w = PciWindows::VIRT.mmio32;
    let mut allocator = BarAllocator::new();
    allocator
        .add_window(Window {
            kind: WindowKind::Mem32,
            prefetchable: false,
            pci_start: PciAddr(w.start().get()),
            cpu: PhysRange::new(PhysAddr(w.start().get()), w.size()).unwrap(),
        })
        .unwrap();
    allocator
}

fn mapping(function: Bdf, bar: u8, guest: (u64, u64), host: u64, prefetchable: bool) -> BarMapping {
    BarMapping {
        function,
        bar,
        guest: ipa_range(guest.0, guest.1),
        host: PhysRange::new(PhysAddr(host), guest.1).unwrap(),
        prefetchable,
    }
}

#[test]
fn the_guest_enumerates_exactly_the_assigned_functions() {
    let mut bridge = bridge();
    let guest = Guest::new(&mut bridge);
    let found: Vec<_> = pci::functions(&guest, 0)
        .map(|f| {
            (
                f.bdf,
                f.vendor_id,
                f.device_id,
                f.header_type,
                f.multi_function,
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                guest_bdf(BLK_DEV),
                qemu::VENDOR_VIRTIO,
                qemu::DEVICE_VIRTIO_BLK_MODERN,
                HeaderType::Endpoint,
                false
            ),
            (
                guest_bdf(EDU_DEV),
                EDU_VENDOR,
                EDU_DEVICE,
                HeaderType::Endpoint,
                false
            ),
            // The NIC says it is multi-function; the guest sees it alone.
            (
                guest_bdf(NIC_DEV),
                0x8086,
                0x10d3,
                HeaderType::Endpoint,
                false
            ),
        ]
    );
    for bus in [1, 15, 16, 255] {
        assert_eq!(pci::functions(&guest, bus).count(), 0, "bus {bus}");
    }
}

#[test]
fn absent_functions_read_all_ones() {
    let bridge = bridge();
    // No host bridge at 00:00.0, other function numbers, other buses (the
    // window has 16), a free device number.
    for (bus, device, function) in [
        (0, 0, 0),
        (0, BLK_DEV, 1),
        (1, BLK_DEV, 0),
        (15, 31, 7),
        (0, 31, 0),
    ] {
        for (size, ones) in [(1, 0xff), (2, 0xffff), (4, 0xffff_ffff), (8, u64::MAX)] {
            for reg in [0, 0x8, 0x40, 0xff8] {
                let access = bridge.read(ecam(bus, device, function, reg), size);
                assert_eq!(access.value, ones);
                assert_eq!(access.ignored, None);
            }
        }
    }
}

#[test]
fn identity_registers_pass_through_read_only() {
    let mut bridge = bridge();
    assert_eq!(read(&bridge, EDU_DEV, 0x00, 4), 0x11e8_1234);
    assert_eq!(read(&bridge, EDU_DEV, 0x02, 2), 0x11e8);
    assert_eq!(read(&bridge, EDU_DEV, 0x01, 1), 0x12);
    assert_eq!(read(&bridge, EDU_DEV, 0x08, 4), 0x00ff_0010);
    assert_eq!(read(&bridge, EDU_DEV, 0x0a, 2), 0x00ff);
    assert_eq!(read(&bridge, EDU_DEV, 0x2c, 4), 0x1100_1af4);
    assert_eq!(read(&bridge, BLK_DEV, 0x2e, 2), 0x0002);
    assert_eq!(read(&bridge, NIC_DEV, 0x08, 4), 0x0200_0000);
    // The NIC's multi-function bit is hidden.
    assert_eq!(physical(&bridge, NIC, 0x0c) >> 16, 0x80);
    assert_eq!(read(&bridge, NIC_DEV, 0x0e, 1), 0);
    for (reg, size) in [
        (0x00, 4),
        (0x02, 2),
        (0x08, 4),
        (0x0e, 1),
        (0x2c, 4),
        (0x0f, 1),
        (0x0d, 1),
    ] {
        let access = write(&mut bridge, EDU_DEV, reg, size, 0xdead_beef);
        assert!(access.value.is_empty());
        assert_eq!(
            access.ignored,
            Some(Ignored::ReadOnly {
                device: EDU_DEV,
                offset: reg,
                size
            })
        );
    }
    assert_eq!(read(&bridge, EDU_DEV, 0x00, 4), 0x11e8_1234);
    assert_eq!(read(&bridge, EDU_DEV, 0x0c, 4), 0);
    // Only `new`'s three command writes.
    assert_eq!(bridge.config_space().writes.len(), 3);
}

#[test]
fn construction_turns_decoding_and_bus_mastering_off_and_nothing_else() {
    let bridge = bridge();
    for (bdf, device) in ALL {
        // SERR# enable, set by the hypervisor, stays.
        assert_eq!(physical(&bridge, bdf, 0x04) & 0xffff, 0x0100, "{bdf}");
        assert_eq!(read(&bridge, device, 0x04, 2), 0);
    }
    let writes = &bridge.config_space().writes;
    assert_eq!(writes.len(), 3);
    assert!(writes
        .iter()
        .all(|w| w.reg == Register::COMMAND_STATUS && w.value == 0x0100));
}

#[test]
fn command_register_passes_on_only_the_guests_bits() {
    let mut bridge = bridge();
    let access = write(&mut bridge, EDU_DEV, 0x04, 2, 0xffff);
    assert_eq!(access.ignored, None);
    // Memory space, bus master, INTx disable; no I/O, no SERR#, no parity.
    assert_eq!(read(&bridge, EDU_DEV, 0x04, 2), 0x0406);
    assert_eq!(u32::from(GUEST_COMMAND.bits()), 0x0406);
    assert_eq!(physical(&bridge, EDU, 0x04) & 0xffff, 0x0506);
    let writes = bridge.config_space().writes.clone();
    assert_eq!(writes.len(), 4);
    assert_eq!(
        (writes[3].bdf, writes[3].reg, writes[3].value),
        (EDU, Register::COMMAND_STATUS, 0x0506)
    );
    // The same again changes nothing and writes nothing.
    let _ = write(&mut bridge, EDU_DEV, 0x04, 2, 0x0406);
    assert_eq!(bridge.config_space().writes.len(), 4);
    // A byte write to the high command byte clears INTx disable only.
    let _ = write(&mut bridge, EDU_DEV, 0x05, 1, 0);
    assert_eq!(read(&bridge, EDU_DEV, 0x04, 2), 0x0006);
    assert_eq!(physical(&bridge, EDU, 0x04) & 0xffff, 0x0106);
    // I/O decoding alone: nothing the guest may set.
    let _ = write(&mut bridge, EDU_DEV, 0x04, 2, 0x0001);
    assert_eq!(read(&bridge, EDU_DEV, 0x04, 2), 0);
    assert_eq!(physical(&bridge, EDU, 0x04) & 0xffff, 0x0100);
}

#[test]
fn status_is_the_functions_live_and_read_only() {
    let mut bridge = bridge();
    // The function raises INTx and logs a master abort.
    let edu = bridge.config_space_mut().function_mut(EDU).unwrap();
    let value = edu.get(0x04) | 0x2008 << 16;
    edu.set(0x04, value);
    // edu's only capability, MSI, is hidden: no capability list.
    assert_eq!(read(&bridge, EDU_DEV, 0x06, 2), 0x2008);
    assert_eq!(read(&bridge, EDU_DEV, 0x34, 1), 0);
    // Writing one to clear does nothing: status is the hypervisor's.
    let access = write(&mut bridge, EDU_DEV, 0x06, 2, 0xffff);
    assert_eq!(
        access.ignored,
        Some(Ignored::ReadOnly {
            device: EDU_DEV,
            offset: 6,
            size: 2
        })
    );
    assert_eq!(read(&bridge, EDU_DEV, 0x06, 2), 0x2008);
    // A dword write to command and status stores the command only.
    let access = write(&mut bridge, EDU_DEV, 0x04, 4, 0xffff_0002);
    assert_eq!(access.ignored, None);
    assert_eq!(read(&bridge, EDU_DEV, 0x04, 4), 0x2008_0002);
    assert!(bridge
        .config_space()
        .writes
        .iter()
        .all(|w| w.value >> 16 == 0));
    // virtio-blk keeps capabilities: the bit is set.
    assert_eq!(read(&bridge, BLK_DEV, 0x06, 2), 0x0010);
}

#[test]
fn bars_size_as_the_physical_ones_with_io_hidden_and_pages_whole() {
    let mut bridge = bridge();
    let mut guest = Guest::new(&mut bridge);
    let sized = |guest: &mut Guest, device| {
        let bars = pci::size_bars(guest, guest_bdf(device), HeaderType::Endpoint).unwrap();
        bars.iter()
            .map(|b| (b.index, b.kind, b.prefetchable, b.size))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        sized(&mut guest, BLK_DEV),
        [
            (1, BarKind::Memory32, false, 0x1000),
            (4, BarKind::Memory64, true, 0x4000)
        ]
    );
    assert_eq!(
        sized(&mut guest, EDU_DEV),
        [(0, BarKind::Memory32, false, 1 << 20)]
    );
    // The I/O BAR2 is gone; the 256-byte BAR3 is a page.
    assert_eq!(
        sized(&mut guest, NIC_DEV),
        [
            (0, BarKind::Memory32, false, 128 << 10),
            (3, BarKind::Memory32, false, 0x1000)
        ]
    );
    assert!(guest.effects.is_empty());

    // The protocol by hand.
    let _ = write(&mut bridge, EDU_DEV, 0x10, 4, 0xffff_ffff);
    assert_eq!(read(&bridge, EDU_DEV, 0x10, 4), 0xfff0_0000);
    let _ = write(&mut bridge, BLK_DEV, 0x20, 4, 0xffff_ffff);
    let _ = write(&mut bridge, BLK_DEV, 0x24, 4, 0xffff_ffff);
    assert_eq!(read(&bridge, BLK_DEV, 0x20, 4), 0xffff_c00c);
    assert_eq!(read(&bridge, BLK_DEV, 0x24, 4), 0xffff_ffff);
    assert_eq!(read(&bridge, BLK_DEV, 0x20, 8), 0xffff_ffff_ffff_c00c);
    // Unimplemented slots and the I/O BAR: read-only zeros.
    for (device, reg) in [
        (EDU_DEV, 0x14),
        (BLK_DEV, 0x10),
        (NIC_DEV, 0x18),
        (NIC_DEV, 0x14),
    ] {
        let access = write(&mut bridge, device, reg, 4, 0xffff_ffff);
        assert!(
            matches!(access.ignored, Some(Ignored::ReadOnly { .. })),
            "{device} {reg:#x}"
        );
        assert_eq!(read(&bridge, device, reg, 4), 0);
    }
    // No expansion ROM, whatever the sizing write.
    let access = write(&mut bridge, NIC_DEV, 0x30, 4, 0xffff_f800);
    assert!(matches!(access.ignored, Some(Ignored::ReadOnly { .. })));
    assert_eq!(read(&bridge, NIC_DEV, 0x30, 4), 0);
    // The physical BARs never change.
    assert_eq!(physical(&bridge, EDU, 0x10), 0x1300_0000);
    assert_eq!(physical(&bridge, BLK, 0x20), 0x1200_000c);
    assert!(bridge
        .config_space()
        .writes
        .iter()
        .all(|w| w.reg == Register::COMMAND_STATUS));
}

#[test]
fn a_guest_assigning_bars_like_linux_gets_each_mapped_onto_the_physical_one() {
    let mut bridge = bridge();
    let mut guest = Guest::new(&mut bridge);
    let mut allocator = guest_allocator();
    let mut assigned = Vec::new();
    for (_, device) in ALL {
        let bdf = guest_bdf(device);
        assigned
            .push(pci::assign_bars(&mut guest, bdf, HeaderType::Endpoint, &mut allocator).unwrap());
    }
    // Decoding is off while BARs are programmed: nothing mapped yet.
    assert!(guest.effects.is_empty());
    for (_, device) in ALL {
        pci::enable_memory_and_bus_master(&mut guest, guest_bdf(device), Command::empty());
    }
    let effects = core::mem::take(&mut guest.effects);
    // One allocator for the bus, as Linux has, function after function,
    // each function's BARs largest first: virtio-blk's 16 KiB and 4 KiB,
    // edu's 1 MiB, the NIC's 128 KiB and its page.
    let blk4 = mapping(BLK, 4, (0x1000_0000, 0x4000), 0x1200_0000, true);
    let blk1 = mapping(BLK, 1, (0x1000_4000, 0x1000), 0x1200_4000, false);
    let edu = mapping(EDU, 0, (0x1010_0000, 1 << 20), 0x1300_0000, false);
    let nic0 = mapping(NIC, 0, (0x1020_0000, 128 << 10), 0x1400_0000, false);
    let nic3 = mapping(NIC, 3, (0x1022_0000, 0x1000), 0x1402_0000, false);
    assert_eq!(
        effects,
        [
            Effect::Map(blk1),
            Effect::Map(blk4),
            Effect::Map(edu),
            Effect::Map(nic0),
            Effect::Map(nic3)
        ]
    );
    for (a, m) in assigned.iter().zip([
        [Some(blk1), Some(blk4)],
        [Some(edu), None],
        [Some(nic0), Some(nic3)],
    ]) {
        for m in m.into_iter().flatten() {
            let placed = a.get(m.bar).unwrap().placement.unwrap();
            assert_eq!(placed.pci.get(), m.guest.start().get());
            assert_eq!(bridge.bar_status(m.function, m.bar), Some(Ok(m.guest)));
        }
    }
    let mut mapped: Vec<_> = bridge.mappings().collect();
    mapped.sort_by_key(|m| m.guest);
    assert_eq!(mapped, [blk4, blk1, edu, nic0, nic3]);
    // Decoding and bus mastering are on in the physical functions too.
    for (bdf, _) in ALL {
        assert_eq!(physical(&bridge, bdf, 0x04) & 0xffff, 0x0106);
    }
}

#[test]
fn virtio_pci_finds_its_structures_through_the_guests_view() {
    let mut bridge = bridge();
    let mut guest = Guest::new(&mut bridge);
    let bdf = guest_bdf(BLK_DEV);
    let bars = pci::assign_bars(
        &mut guest,
        bdf,
        HeaderType::Endpoint,
        &mut guest_allocator(),
    )
    .unwrap();
    let layout = pci::virtio_layout(&guest, bdf, &bars).unwrap();
    assert_eq!(layout.common.bar, 4);
    assert_eq!(layout.common.cpu.start(), PhysAddr(0x1000_0000));
    assert_eq!(layout.notify.offset, 0x3000);
    assert_eq!(layout.notify_off_multiplier, 4);
    assert_eq!(layout.isr.offset, 0x1000);
    assert_eq!(layout.device.unwrap().offset, 0x2000);
}

#[test]
fn capabilities_are_filtered_and_relinked() {
    let bridge = bridge();
    let mut bridge = bridge;
    let guest = Guest::new(&mut bridge);
    let caps = |device| {
        pci::capabilities(&guest, guest_bdf(device))
            .map(|c| c.map(|c| (c.offset.offset(), c.id)))
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    let vendor = CapabilityId::VENDOR_SPECIFIC;
    // virtio-blk: MSI-X at 0x98 is gone; the five virtio structures stay.
    assert_eq!(
        caps(BLK_DEV),
        [
            (0x84, vendor),
            (0x70, vendor),
            (0x60, vendor),
            (0x50, vendor),
            (0x40, vendor)
        ]
    );
    // edu: MSI only, so none.
    assert_eq!(caps(EDU_DEV), []);
    // NIC: MSI and MSI-X skipped between the others.
    assert_eq!(
        caps(NIC_DEV),
        [
            (0x40, CapabilityId::POWER_MANAGEMENT),
            (0x70, CapabilityId::PCI_EXPRESS),
            (0xc0, vendor)
        ]
    );
    // Hidden capabilities read 0; kept ones read through, next pointers
    // rewritten, the PCI Express FLR capability bit cleared.
    assert_eq!(read(&bridge, BLK_DEV, 0x98, 4), 0);
    assert_eq!(read(&bridge, BLK_DEV, 0x9c, 4), 0);
    assert_eq!(read(&bridge, EDU_DEV, 0x40, 4), 0);
    assert_eq!(read(&bridge, NIC_DEV, 0x40, 4), 0xc823_7001);
    assert_eq!(read(&bridge, NIC_DEV, 0x44, 4), 0x0000_0008);
    assert_eq!(read(&bridge, NIC_DEV, 0x50, 4), 0);
    assert_eq!(read(&bridge, NIC_DEV, 0x70, 4), 0x0002_c010);
    assert_eq!(physical(&bridge, NIC, 0x74), 0x1000_8001);
    assert_eq!(read(&bridge, NIC_DEV, 0x74, 4), 0x0000_8001);
    assert_eq!(read(&bridge, NIC_DEV, 0x78, 4), 0x0010_2810);
    assert_eq!(read(&bridge, NIC_DEV, 0x7c, 4), 0x0043_3c11);
    assert_eq!(read(&bridge, NIC_DEV, 0xb0, 4), 0);
    assert_eq!(read(&bridge, NIC_DEV, 0xc0, 4), 0x000c_0009);
    assert_eq!(read(&bridge, NIC_DEV, 0xc4, 4), 0x1234_5678);
    assert_eq!(read(&bridge, NIC_DEV, 0xc8, 4), 0x9abc_def0);
    // Past the vendor capability's 12 bytes: nothing.
    assert_eq!(read(&bridge, NIC_DEV, 0xcc, 4), 0);
    assert_eq!(read(&bridge, NIC_DEV, 0x34, 1), 0x40);
    assert_eq!(read(&bridge, BLK_DEV, 0x34, 1), 0x84);
}

#[test]
fn capability_writes_never_reach_the_function() {
    let mut bridge = bridge();
    // PM control (D3hot), MSI enable, PCIe Device Control (initiate FLR),
    // MSI-X enable, the vendor capability, extended space.
    for (device, reg, size, value) in [
        (NIC_DEV, 0x44, 2, 0x0003),
        (NIC_DEV, 0x52, 2, 0x0001),
        (NIC_DEV, 0x78, 2, 0x8000),
        (NIC_DEV, 0xb2, 2, 0x8000),
        (NIC_DEV, 0xc4, 4, 0),
        (EDU_DEV, 0x42, 2, 0x0001),
        (BLK_DEV, 0x9a, 2, 0x8000),
        (BLK_DEV, 0x88, 4, 0x0000_0004),
        (BLK_DEV, 0x100, 4, 0xffff_ffff),
        (BLK_DEV, 0xffc, 4, 0xffff_ffff),
    ] {
        let access = write(&mut bridge, device, reg, size, value);
        assert_eq!(
            access.ignored,
            Some(Ignored::ReadOnly {
                device,
                offset: reg,
                size
            })
        );
    }
    assert_eq!(bridge.config_space().writes.len(), 3);
    assert_eq!(physical(&bridge, NIC, 0x44), 0x0000_0008);
}

#[test]
fn extended_configuration_space_reads_zero() {
    let mut cs = host_bus();
    // Even where the function has extended capabilities.
    let nic = cs.function_mut(NIC).unwrap();
    nic.extended = true;
    nic.set(0x100, 0x1401_0001);
    let functions = passthroughs(&mut cs);
    let bridge = VirtualBridge::new(cs, PciWindows::VIRT, ram(), &functions).unwrap();
    for reg in [0x100, 0x104, 0x140, 0xffc] {
        assert_eq!(read(&bridge, NIC_DEV, reg, 4), 0);
    }
    assert_eq!(read(&bridge, NIC_DEV, 0xff8, 8), 0);
}

#[test]
fn interrupt_pin_is_the_functions_and_line_is_scratch() {
    let mut bridge = bridge();
    assert_eq!(read(&bridge, BLK_DEV, 0x3d, 1), 1);
    assert_eq!(read(&bridge, NIC_DEV, 0x3d, 1), 2);
    let access = write(&mut bridge, NIC_DEV, 0x3c, 1, 0x25);
    assert_eq!(
        access,
        vpci::Access {
            value: vpci::Effects::none(),
            ignored: None
        }
    );
    // The pin, min grant and max latency are read-only.
    let _ = write(&mut bridge, NIC_DEV, 0x3c, 4, 0xffff_ff33);
    assert_eq!(read(&bridge, NIC_DEV, 0x3c, 4), 0x0000_0233);
    assert_eq!(physical(&bridge, NIC, 0x3c), 0x0000_0200);
    let links: Vec<_> = bridge.intx_links().collect();
    assert_eq!(
        links,
        [
            (
                BLK,
                Intx {
                    host: spi(5),
                    guest: spi(5)
                }
            ),
            (
                EDU,
                Intx {
                    host: spi(6),
                    guest: spi(6)
                }
            ),
            (
                NIC,
                Intx {
                    host: spi(4),
                    guest: spi(4)
                }
            ),
        ]
    );
    let pci = bridge.guest_pci();
    assert_eq!(pci.windows, PciWindows::VIRT);
    assert_eq!(
        pci.interrupts,
        [
            PciInterrupt {
                device: BLK_DEV,
                pin: IntxPin::A,
                spi: spi(5)
            },
            PciInterrupt {
                device: EDU_DEV,
                pin: IntxPin::A,
                spi: spi(6)
            },
            PciInterrupt {
                device: NIC_DEV,
                pin: IntxPin::B,
                spi: spi(4)
            },
        ]
    );
    // The cache line size is scratch too.
    let _ = write(&mut bridge, NIC_DEV, 0x0c, 1, 0x10);
    assert_eq!(read(&bridge, NIC_DEV, 0x0c, 4), 0x10);
}

#[test]
fn a_function_without_forwarded_intx_shows_no_pin() {
    let mut cs = host_bus();
    let mut functions = passthroughs(&mut cs);
    functions[1].intx = None;
    let bridge = VirtualBridge::new(cs, PciWindows::VIRT, ram(), &functions).unwrap();
    assert_eq!(read(&bridge, EDU_DEV, 0x3d, 1), 0);
    assert_eq!(bridge.intx_links().count(), 2);
    assert_eq!(bridge.guest_pci().interrupts.len(), 2);
}

#[test]
fn the_device_tree_routes_each_pin_to_its_guest_spi() {
    let bridge = bridge();
    let machine = GuestMachine {
        ram: ram(),
        vcpus: 1,
        bootargs: "",
        initrd: None,
        uart: true,
    };
    let dtb = write_dtb_with_pci(&machine, Some(&bridge.guest_pci())).unwrap();
    let fdt = fdt::Fdt::new(&dtb).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    let map: Vec<u32> = pcie
        .property("interrupt-map")
        .unwrap()
        .value
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    let gic = guest_boot::GIC_PHANDLE;
    assert_eq!(
        map,
        [
            0x0800, 0, 0, 1, gic, 0, 5, 4, // 00:01 INTA
            0x1000, 0, 0, 1, gic, 0, 6, 4, // 00:02 INTA
            0x2800, 0, 0, 2, gic, 0, 4, 4, // 00:05 INTB
        ]
    );
}

/// Puts edu's BAR0 at `address` with decoding as given.
fn place_edu(bridge: &mut VirtualBridge<FakeConfigSpace>, address: u32) -> Vec<Effect> {
    let access = write(bridge, EDU_DEV, 0x10, 4, u64::from(address));
    assert_eq!(access.ignored, None);
    access.value.into_iter().collect()
}

fn decode(bridge: &mut VirtualBridge<FakeConfigSpace>, device: u8, on: bool) -> Vec<Effect> {
    let access = write(bridge, device, 0x04, 2, if on { 0x6 } else { 0x4 });
    access.value.into_iter().collect()
}

#[test]
fn a_bar_is_mapped_only_while_decoding_and_inside_a_window() {
    let mut bridge = bridge();
    let edu = |guest| mapping(EDU, 0, (guest, 1 << 20), 0x1300_0000, false);
    assert_eq!(bridge.bar_status(EDU, 0), Some(Err(Unmapped::DecodeOff)));
    assert_eq!(place_edu(&mut bridge, 0x2000_0000), []);
    assert_eq!(
        decode(&mut bridge, EDU_DEV, true),
        [Effect::Map(edu(0x2000_0000))]
    );
    assert_eq!(
        bridge.bar_status(EDU, 0),
        Some(Ok(ipa_range(0x2000_0000, 1 << 20)))
    );
    // Moved while decoding: unmapped there, mapped here.
    assert_eq!(
        place_edu(&mut bridge, 0x2010_0000),
        [
            Effect::Unmap {
                mapping: edu(0x2000_0000),
                reason: Unmapped::Moved
            },
            Effect::Map(edu(0x2010_0000)),
        ]
    );
    // Low bits are size bits: an unaligned address is aligned down.
    assert_eq!(place_edu(&mut bridge, 0x2018_0000), []);
    assert_eq!(read(&bridge, EDU_DEV, 0x10, 4), 0x2010_0000);
    // Sizing with decoding on (Linux would not): out of the window.
    assert_eq!(
        place_edu(&mut bridge, 0xffff_ffff),
        [Effect::Unmap {
            mapping: edu(0x2010_0000),
            reason: Unmapped::OutsideWindow { guest: 0xfff0_0000 }
        }]
    );
    // Across the window's end; onto the ECAM window; onto RAM; at 0.
    for address in [0x3ef0_0000, 0x3f00_0000, 0x4000_0000, 0] {
        assert_eq!(place_edu(&mut bridge, address), []);
        assert_eq!(
            bridge.bar_status(EDU, 0),
            Some(Err(Unmapped::OutsideWindow {
                guest: u64::from(address)
            }))
        );
    }
    assert_eq!(
        place_edu(&mut bridge, 0x3ee0_0000),
        [Effect::Map(edu(0x3ee0_0000))]
    );
    assert_eq!(
        decode(&mut bridge, EDU_DEV, false),
        [Effect::Unmap {
            mapping: edu(0x3ee0_0000),
            reason: Unmapped::DecodeOff
        }]
    );
    assert_eq!(bridge.mappings().count(), 0);
    // No BAR of that slot, or no such function.
    assert_eq!(bridge.bar_status(EDU, 1), None);
    assert_eq!(bridge.bar_status(NIC, 2), None);
    assert_eq!(bridge.bar_status(bdf(9), 0), None);
}

#[test]
fn overlapping_bars_are_neither_mapped() {
    let mut bridge = bridge();
    let _ = place_edu(&mut bridge, 0x2000_0000);
    let _ = decode(&mut bridge, EDU_DEV, true);
    // The NIC's BAR0 lands inside edu's.
    let _ = write(&mut bridge, NIC_DEV, 0x10, 4, 0x2008_0000);
    let nic0 = mapping(NIC, 0, (0x2008_0000, 128 << 10), 0x1400_0000, false);
    let edu = mapping(EDU, 0, (0x2000_0000, 1 << 20), 0x1300_0000, false);
    assert_eq!(
        decode(&mut bridge, NIC_DEV, true),
        [Effect::Unmap {
            mapping: edu,
            reason: Unmapped::Overlaps {
                function: NIC,
                bar: 0
            }
        }]
    );
    assert_eq!(
        bridge.bar_status(NIC, 0),
        Some(Err(Unmapped::Overlaps {
            function: EDU,
            bar: 0
        }))
    );
    // The NIC's other BAR (at 0, outside) is not the problem.
    assert_eq!(
        bridge.bar_status(NIC, 3),
        Some(Err(Unmapped::OutsideWindow { guest: 0 }))
    );
    // Moving it away maps both.
    let access = write(&mut bridge, NIC_DEV, 0x10, 4, 0x2010_0000);
    let nic0 = BarMapping {
        guest: ipa_range(0x2010_0000, 128 << 10),
        ..nic0
    };
    assert_eq!(
        access.value.as_slice(),
        [Effect::Map(edu), Effect::Map(nic0)]
    );
    // Two BARs of one function overlapping each other.
    let access = write(&mut bridge, NIC_DEV, 0x1c, 4, 0x2010_1000);
    assert_eq!(
        access.value.as_slice(),
        [Effect::Unmap {
            mapping: nic0,
            reason: Unmapped::Overlaps {
                function: NIC,
                bar: 3
            }
        }]
    );
    // With the function's decoding off, its BARs overlap nothing.
    assert_eq!(decode(&mut bridge, NIC_DEV, false), []);
    let access = write(&mut bridge, NIC_DEV, 0x10, 4, 0x2000_0000);
    assert!(access.value.is_empty());
    assert_eq!(bridge.bar_status(EDU, 0), Some(Ok(edu.guest)));
    assert_eq!(bridge.bar_status(NIC, 0), Some(Err(Unmapped::DecodeOff)));
}

#[test]
fn a_64_bit_bar_takes_both_halves_and_needs_a_window_where_it_points() {
    let mmio64 = ipa_range(0x80_0000_0000 - (1 << 32), 1 << 32);
    let mut bridge = bridge_with(PciWindows {
        mmio64: Some(mmio64),
        ..PciWindows::VIRT
    });
    let _ = decode(&mut bridge, BLK_DEV, true);
    let blk4 = |guest| mapping(BLK, 4, (guest, 0x4000), 0x1200_0000, true);
    // Upper half first: 0x7f_0000_0000 while the lower half is 0.
    let access = write(&mut bridge, BLK_DEV, 0x24, 4, 0x7f);
    assert_eq!(access.value.as_slice(), [Effect::Map(blk4(0x7f_0000_0000))]);
    let access = write(&mut bridge, BLK_DEV, 0x20, 4, 0x1234_c000);
    assert_eq!(
        access.value.as_slice(),
        [
            Effect::Unmap {
                mapping: blk4(0x7f_0000_0000),
                reason: Unmapped::Moved
            },
            Effect::Map(blk4(0x7f_1234_c000)),
        ]
    );
    assert_eq!(read(&bridge, BLK_DEV, 0x20, 8), 0x7f_1234_c00c);
    // One 8-byte write moves it in one go: one unmap, one map.
    let access = write(&mut bridge, BLK_DEV, 0x20, 8, 0x1000_8000);
    assert_eq!(
        access.value.as_slice(),
        [
            Effect::Unmap {
                mapping: blk4(0x7f_1234_c000),
                reason: Unmapped::Moved
            },
            Effect::Map(blk4(0x1000_8000)),
        ]
    );
    // Above the 64-bit window.
    let access = write(&mut bridge, BLK_DEV, 0x24, 4, 0x80);
    assert_eq!(
        access.value.as_slice(),
        [Effect::Unmap {
            mapping: blk4(0x1000_8000),
            reason: Unmapped::OutsideWindow {
                guest: 0x80_1000_8000
            }
        }]
    );
    // Without a 64-bit window, nothing above 4 GiB maps.
    let mut bridge = common::bridge();
    let _ = decode(&mut bridge, BLK_DEV, true);
    let access = write(&mut bridge, BLK_DEV, 0x20, 8, 0x7f_0000_0000);
    assert!(access.value.is_empty());
}

#[test]
fn reset_unmaps_everything_and_quiets_the_functions() {
    let mut bridge = bridge();
    let mut guest = Guest::new(&mut bridge);
    let mut allocator = guest_allocator();
    for (_, device) in ALL {
        let bdf = guest_bdf(device);
        pci::assign_bars(&mut guest, bdf, HeaderType::Endpoint, &mut allocator).unwrap();
        pci::enable_memory_and_bus_master(&mut guest, bdf, Command::empty());
    }
    let mapped: Vec<_> = guest.effects.clone();
    assert!(!mapped.is_empty());
    let _ = write(&mut bridge, EDU_DEV, 0x3c, 1, 0x33);
    let before: Vec<BarMapping> = bridge.mappings().collect();
    let effects: Vec<_> = bridge.reset().into_iter().collect();
    let unmapped: Vec<BarMapping> = effects
        .iter()
        .map(|e| match e {
            Effect::Unmap {
                mapping,
                reason: Unmapped::DecodeOff,
            } => *mapping,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(unmapped, before);
    assert_eq!(bridge.mappings().count(), 0);
    for (bdf, device) in ALL {
        assert_eq!(read(&bridge, device, 0x04, 2), 0);
        assert_eq!(read(&bridge, device, 0x3c, 1), 0);
        assert_eq!(physical(&bridge, bdf, 0x04) & 0xffff, 0x0100);
    }
    assert_eq!(read(&bridge, EDU_DEV, 0x10, 4), 0);
    assert!(bridge.reset().is_empty());
}

#[test]
fn malformed_accesses_are_reported_not_carried_out() {
    let mut bridge = bridge();
    let reg = ecam(0, EDU_DEV, 0, 0x10);
    for (offset, size) in [
        (reg, 3),
        (reg, 0),
        (reg, 16),
        (reg + 1, 2),
        (reg + 2, 4),
        (reg + 4, 8),
    ] {
        let read = bridge.read(offset, size);
        assert_eq!(read.ignored, Some(Ignored::BadAccess { offset, size }));
        let write = bridge.write(offset, size, u64::MAX);
        assert_eq!(write.ignored, Some(Ignored::BadAccess { offset, size }));
        assert!(write.value.is_empty());
    }
    assert_eq!(bridge.read(reg, 3).value, 0xff_ffff);
    assert_eq!(bridge.read(reg, 16).value, u64::MAX);
    let past = 16 << 20;
    assert_eq!(
        bridge.read(past, 4).ignored,
        Some(Ignored::OutsideWindow { offset: past })
    );
    assert_eq!(bridge.read(past, 4).value, 0xffff_ffff);
    assert_eq!(
        bridge.write(u64::MAX - 7, 8, 0).ignored,
        Some(Ignored::OutsideWindow {
            offset: u64::MAX - 7
        })
    );
    let absent = ecam(0, 0, 0, 0x04);
    assert_eq!(
        bridge.write(absent, 2, 6).ignored,
        Some(Ignored::NoFunction { offset: absent })
    );
    assert_eq!(read(&bridge, EDU_DEV, 0x10, 4), 0);
    assert_eq!(bridge.config_space().writes.len(), 3);
    assert_eq!(
        Ignored::ReadOnly {
            device: 2,
            offset: 0x44,
            size: 2
        }
        .to_string(),
        "write of 2 bytes at 0x44 of 00:02.0 changes nothing writable"
    );
    assert_eq!(
        Ignored::BadAccess {
            offset: 0x1011,
            size: 2
        }
        .to_string(),
        "ECAM access of 2 bytes at 0x1011 is not naturally aligned"
    );
}

/// Builds a bridge over `host_bus` with `functions` changed by `change`;
/// returns why it was refused, checking nothing reached the host first.
fn refused(change: impl FnOnce(&mut FakeConfigSpace, &mut Vec<Passthrough>)) -> BridgeError {
    let mut cs = host_bus();
    let mut functions = passthroughs(&mut cs);
    change(&mut cs, &mut functions);
    cs.writes.clear();
    let err =
        VirtualBridge::new(&mut cs, PciWindows::VIRT, ram(), &functions).expect_err("accepted");
    assert_eq!(cs.writes, []);
    err
}

#[test]
fn bad_assignments_are_refused_before_anything_is_written() {
    assert_eq!(
        refused(|_, f| f[0].guest_device = 32),
        BridgeError::GuestDeviceOutOfRange { device: 32 }
    );
    assert_eq!(
        refused(|_, f| f[2].guest_device = BLK_DEV),
        BridgeError::DuplicateGuestDevice { device: BLK_DEV }
    );
    assert_eq!(
        refused(|_, f| f[2].host = BLK),
        BridgeError::DuplicateFunction(BLK)
    );
    assert_eq!(
        refused(|_, f| f[1].host = bdf(9)),
        BridgeError::Absent(bdf(9))
    );
    let bridge_fn = bdf(10);
    assert_eq!(
        refused(|cs, f| {
            cs.insert(bridge_fn, FakeFunction::new(0x1b36, 0x000c, 0x06_04_00, 1));
            f[1].host = bridge_fn;
        }),
        BridgeError::NotEndpoint {
            function: bridge_fn,
            header: HeaderType::PciBridge
        }
    );
    // Two 256-byte BARs packed into one page by the host.
    let packed = bdf(11);
    let err = refused(|cs, f| {
        let mut two = FakeFunction::new(0x1234, 0x5678, 0xff_00_00, 0);
        two.bar32(0, 256, false).bar32(1, 256, false);
        cs.insert(packed, two);
        let mut allocator = host_allocator(0x1800_0000);
        let bars = pci::assign_bars(cs, packed, HeaderType::Endpoint, &mut allocator).unwrap();
        f[1] = Passthrough {
            host: packed,
            guest_device: 7,
            bars,
            intx: None,
        };
    });
    assert_eq!(
        err,
        BridgeError::BarNotPageAligned {
            function: packed,
            bar: 1,
            host: PhysAddr(0x1800_0100)
        }
    );
    // INTx forwarded for a function without a pin.
    assert_eq!(
        refused(|cs, _| {
            cs.function_mut(EDU).unwrap().set(0x3c, 0);
        }),
        BridgeError::NoInterruptPin {
            function: EDU,
            pin: 0
        }
    );
    assert_eq!(
        refused(|cs, _| {
            cs.function_mut(NIC).unwrap().set(0x3c, 0x0500);
        }),
        BridgeError::NoInterruptPin {
            function: NIC,
            pin: 5
        }
    );
    // One host SPI to two guest SPIs, two host SPIs to one guest SPI.
    assert_eq!(
        refused(|_, f| f[1].intx = Some(Intx {
            host: spi(5),
            guest: spi(6)
        })),
        BridgeError::IntxConflict {
            function: EDU,
            other: BLK
        }
    );
    assert_eq!(
        refused(|_, f| f[2].intx = Some(Intx {
            host: spi(3),
            guest: spi(5)
        })),
        BridgeError::IntxConflict {
            function: NIC,
            other: BLK
        }
    );
    // The guest SPI is the UART's.
    assert_eq!(
        refused(|_, f| f[1].intx = Some(Intx {
            host: spi(6),
            guest: spi(1)
        })),
        BridgeError::Layout(PciError::ReservedSpi { spi: spi(1) })
    );
    // The window overlaps RAM.
    let mut cs = host_bus();
    let functions = passthroughs(&mut cs);
    let windows = PciWindows {
        mmio64: Some(ipa_range(0x4800_0000, 1 << 20)),
        ..PciWindows::VIRT
    };
    assert_eq!(
        VirtualBridge::new(cs, windows, ram(), &functions).unwrap_err(),
        BridgeError::Layout(PciError::Overlap {
            region: ipa_range(0x4800_0000, 1 << 20),
            other: ram()
        })
    );
    assert_eq!(
        BridgeError::BarNotPageAligned {
            function: packed,
            bar: 1,
            host: PhysAddr(0x1800_0100)
        }
        .to_string(),
        "00:0b.0 BAR1 at 0x18000100 is not page aligned"
    );
    assert_eq!(
        BridgeError::IntxConflict {
            function: EDU,
            other: BLK
        }
        .to_string(),
        "INTx links of 00:03.0 and 00:02.0 share one side but not the other"
    );
}

#[test]
fn two_functions_may_share_one_intx_line() {
    let mut cs = host_bus();
    let mut functions = passthroughs(&mut cs);
    functions[1].intx = functions[0].intx;
    let bridge = VirtualBridge::new(cs, PciWindows::VIRT, ram(), &functions).unwrap();
    assert_eq!(
        bridge
            .intx_links()
            .filter(|(_, i)| i.guest == spi(5))
            .count(),
        2
    );
}

#[test]
fn an_empty_bridge_answers_nothing() {
    let bridge = VirtualBridge::new(host_bus(), PciWindows::VIRT, ram(), &[]).unwrap();
    assert_eq!(bridge.read(ecam(0, 1, 0, 0), 4).value, 0xffff_ffff);
    assert_eq!(bridge.ecam(), PciWindows::VIRT.ecam);
    assert!(bridge.guest_pci().interrupts.is_empty());
    assert!(bridge.config_space().writes.is_empty());
}
