//! Host tests against the fake configuration space: QEMU virt's bus as it
//! really is, and devices that are broken or hostile.

extern crate std;

use crate::fake::{qemu, FakeConfigSpace, FakeFunction};
use crate::*;
use core::cell::Cell;
use std::vec::Vec;

fn bdf(bus: u8, device: u8, function: u8) -> Bdf {
    Bdf::new(bus, device, function).unwrap()
}

fn range(start: u64, size: u64) -> PhysRange {
    PhysRange::new(PhysAddr(start), size).unwrap()
}

/// QEMU virt's bus 0 with `-device virtio-blk-pci`: host bridge, the
/// default virtio-net, the disk.
fn qemu_bus(modern_only: bool) -> FakeConfigSpace {
    let mut cs = FakeConfigSpace::new();
    cs.insert(bdf(0, 0, 0), qemu::host_bridge())
        .insert(bdf(0, 1, 0), qemu::virtio_net())
        .insert(bdf(0, 2, 0), qemu::virtio_blk(modern_only));
    cs
}

const BLK: fn() -> Bdf = || bdf(0, 2, 0);

/// QEMU virt's memory windows (its device tree's `ranges`, highmem on).
fn qemu_allocator() -> BarAllocator {
    let mut a = BarAllocator::new();
    a.add_window(Window {
        kind: WindowKind::Mem32,
        prefetchable: false,
        pci_start: PciAddr(0x1000_0000),
        cpu: range(0x1000_0000, 0x2eff_0000),
    })
    .unwrap();
    a.add_window(Window {
        kind: WindowKind::Mem64,
        prefetchable: false,
        pci_start: PciAddr(0x80_0000_0000),
        cpu: range(0x80_0000_0000, 0x80_0000_0000),
    })
    .unwrap();
    a
}

// ---- addressing -------------------------------------------------------

#[test]
fn bdf_is_checked_and_prints_like_lspci() {
    assert_eq!(Bdf::new(0, 32, 0), None);
    assert_eq!(Bdf::new(0, 0, 8), None);
    let b = bdf(0x12, 0x1f, 7);
    assert_eq!(std::format!("{b}"), "12:1f.7");
    assert_eq!(std::format!("{b:?}"), "Bdf(12:1f.7)");
    assert_eq!(b.routing_id(), 0x12ff);
    assert_eq!(BLK().routing_id(), 0x0010);
}

#[test]
fn registers_are_aligned_and_inside_config_space() {
    assert_eq!(Register::new(0x10).map(Register::offset), Some(0x10));
    assert_eq!(Register::new(0x11), None);
    assert_eq!(Register::new(0x1000), None);
    assert_eq!(Register::new(0xffc).map(Register::offset), Some(0xffc));
    assert_eq!(Register::bar(5).map(Register::offset), Some(0x24));
    assert_eq!(Register::bar(6), None);
    assert_eq!(Register::CAPABILITIES_POINTER.add(4), Register::new(0x38));
    assert_eq!(Register::new(0xffc).unwrap().add(4), None);
    assert_eq!(Register::CAPABILITIES_POINTER.add(u16::MAX), None);
}

#[test]
fn ecam_offsets_follow_bus_device_function() {
    let ecam = Ecam::new(range(0x40_1000_0000, 0x1000_0000), 0, 255).unwrap();
    assert_eq!(ecam.buses(), 0..=255);
    let reg = Register::BAR0;
    assert_eq!(ecam.offset(BLK(), reg), Some(0x1_0010));
    assert_eq!(
        ecam.address(bdf(1, 3, 5), Register::VENDOR_DEVICE),
        Some(PhysAddr(0x40_1000_0000 + (1 << 20) + (3 << 15) + (5 << 12)))
    );
    assert_eq!(
        ecam.address(bdf(255, 31, 7), Register::new(0xffc).unwrap()),
        Some(PhysAddr(0x40_1000_0000 + 0x1000_0000 - 4))
    );
}

#[test]
fn ecam_window_starts_at_the_first_bus_of_bus_range() {
    let ecam = Ecam::new(range(0x3000_0000, 4 << 20), 0x10, 0x13).unwrap();
    assert_eq!(
        ecam.offset(bdf(0x10, 0, 0), Register::VENDOR_DEVICE),
        Some(0)
    );
    assert_eq!(
        ecam.offset(bdf(0x13, 0, 0), Register::VENDOR_DEVICE),
        Some(3 << 20)
    );
    assert_eq!(ecam.offset(bdf(0x0f, 0, 0), Register::VENDOR_DEVICE), None);
    assert_eq!(ecam.offset(bdf(0x14, 0, 0), Register::VENDOR_DEVICE), None);
}

#[test]
fn ecam_window_too_small_for_bus_range_serves_the_buses_that_fit() {
    let ecam = Ecam::new(range(0x3000_0000, 2 << 20), 0, 255).unwrap();
    assert_eq!(ecam.buses(), 0..=1);
    assert_eq!(ecam.address(bdf(2, 0, 0), Register::VENDOR_DEVICE), None);
}

#[test]
fn unusable_ecam_windows_are_refused() {
    assert_eq!(
        Ecam::new(range(0x3000_0000, 0xf_ffff), 0, 0),
        Err(EcamError::TooSmall(range(0x3000_0000, 0xf_ffff)))
    );
    assert_eq!(
        Ecam::new(range(0x3000_0800, 1 << 20), 0, 0),
        Err(EcamError::Misaligned(PhysAddr(0x3000_0800)))
    );
    assert_eq!(
        Ecam::new(range(0x3000_0000, 1 << 20), 5, 4),
        Err(EcamError::BusRangeReversed { first: 5, last: 4 })
    );
}

// ---- enumeration ------------------------------------------------------

#[test]
fn qemu_bus_zero_lists_bridge_nic_and_disk() {
    let cs = qemu_bus(false);
    let found: Vec<_> = functions(&cs, 0).collect();
    assert_eq!(found.len(), 3);
    assert_eq!(
        (found[0].bdf, found[0].vendor_id, found[0].device_id),
        (bdf(0, 0, 0), 0x1b36, 0x0008)
    );
    assert_eq!(
        found[0].class,
        ClassCode {
            base: 6,
            sub: 0,
            prog_if: 0
        }
    );
    assert_eq!(found[1].device_id, 0x1000);
    let disk = found[2];
    assert_eq!(disk.bdf, BLK());
    assert_eq!((disk.vendor_id, disk.device_id), (0x1af4, 0x1001));
    assert_eq!(disk.class.base, 0x01);
    assert_eq!(disk.header_type, HeaderType::Endpoint);
    assert!(!disk.multi_function);
    assert_eq!(
        std::format!("{disk}"),
        "00:02.0 1af4:1001 class 010000 rev 0x00 endpoint"
    );
}

#[test]
fn other_buses_are_empty_on_qemu() {
    let cs = qemu_bus(false);
    assert_eq!(functions(&cs, 1).count(), 0);
}

#[test]
fn functions_above_zero_are_seen_only_on_multi_function_devices() {
    let mut cs = FakeConfigSpace::new();
    // Device 3: multi-function, functions 0 and 5.
    cs.insert(bdf(0, 3, 0), FakeFunction::new(0x8086, 1, 0x02_00_00, 0x80))
        .insert(bdf(0, 3, 5), FakeFunction::new(0x8086, 2, 0x02_00_00, 0x00));
    // Device 4: single function that decodes every function number.
    for f in 0..8 {
        cs.insert(bdf(0, 4, f), FakeFunction::new(0x10ee, 7, 0x05_00_00, 0));
    }
    // Device 5: no function 0, so nothing (PCI 3.0 §6.2.1).
    cs.insert(bdf(0, 5, 1), FakeFunction::new(0x10ee, 8, 0x05_00_00, 0));
    let found: Vec<_> = functions(&cs, 0).map(|f| f.bdf).collect();
    assert_eq!(found, [bdf(0, 3, 0), bdf(0, 3, 5), bdf(0, 4, 0)]);
}

#[test]
fn vendor_zero_is_not_a_function() {
    let mut cs = FakeConfigSpace::new();
    cs.insert(bdf(0, 0, 0), FakeFunction::new(0, 0, 0, 0));
    assert_eq!(functions(&cs, 0).count(), 0);
    assert_eq!(probe_function(&cs, bdf(0, 0, 0)), None);
}

#[test]
fn a_bus_where_everything_answers_ends_after_256_functions() {
    let mut cs = FakeConfigSpace::new();
    for d in 0..32 {
        for f in 0..8 {
            cs.insert(bdf(0, d, f), FakeFunction::new(0x1234, 0x5678, 0, 0xff));
        }
    }
    let mut it = functions(&cs, 0);
    assert_eq!(it.by_ref().count(), 256);
    assert_eq!(it.next(), None);
    assert_eq!(
        probe_function(&cs, bdf(0, 0, 0)).unwrap().header_type,
        HeaderType::Unknown(0x7f)
    );
}

// ---- BAR sizing -------------------------------------------------------

#[test]
fn qemu_virtio_blk_bars_size_as_qemu_has_them() {
    let mut cs = qemu_bus(false);
    let bars = size_bars(&mut cs, BLK(), HeaderType::Endpoint).unwrap();
    let all: Vec<_> = bars.iter().copied().collect();
    assert_eq!(
        all,
        [
            Bar {
                index: 0,
                kind: BarKind::Io,
                prefetchable: false,
                size: 0x80
            },
            Bar {
                index: 1,
                kind: BarKind::Memory32,
                prefetchable: false,
                size: 0x1000
            },
            Bar {
                index: 4,
                kind: BarKind::Memory64,
                prefetchable: true,
                size: 0x4000
            },
        ]
    );
    assert_eq!(bars.get(5), None, "BAR5 is BAR4's upper half");
    assert_eq!(
        std::format!("{}", all[2]),
        "BAR4: 64-bit memory prefetchable, 0x4000 bytes"
    );
}

#[test]
fn modern_only_virtio_blk_has_no_io_bar() {
    let mut cs = qemu_bus(true);
    let bars = size_bars(&mut cs, BLK(), HeaderType::Endpoint).unwrap();
    let indices: Vec<_> = bars.iter().map(|b| b.index).collect();
    assert_eq!(indices, [1, 4]);
}

#[test]
fn sizing_turns_decoding_off_and_restores_bars_and_command() {
    let mut cs = qemu_bus(false);
    let on = Command::IO_SPACE | Command::MEMORY_SPACE | Command::BUS_MASTER;
    set_command(&mut cs, BLK(), on);
    cs.function_mut(BLK()).unwrap().set(0x14, 0x1234_5000);
    let before = cs.function(BLK()).unwrap().regs.clone();
    cs.writes.clear();
    size_bars(&mut cs, BLK(), HeaderType::Endpoint).unwrap();
    assert_eq!(cs.function(BLK()).unwrap().regs, before);
    // First write: decoding off (bus mastering kept); last: restored.
    let first = cs.writes.first().unwrap();
    assert_eq!(first.reg, Register::COMMAND_STATUS);
    assert_eq!(first.value, u32::from(Command::BUS_MASTER.bits()));
    let last = cs.writes.last().unwrap();
    assert_eq!(
        (last.reg, last.value),
        (Register::COMMAND_STATUS, u32::from(on.bits()))
    );
    // Every BAR got all ones while decoding was off.
    let ones = cs.writes.iter().filter(|w| w.value == u32::MAX).count();
    assert_eq!(ones, 6);
}

#[test]
fn large_64_bit_bar_sizes_above_4_gib() {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(0x10de, 1, 0x03_00_00, 0);
    f.bar64(0, 8 << 30, true).bar64(2, 0x10, false);
    cs.insert(bdf(0, 0, 0), f);
    let bars = size_bars(&mut cs, bdf(0, 0, 0), HeaderType::Endpoint).unwrap();
    assert_eq!(bars.get(0).unwrap().size, 8 << 30);
    assert_eq!(bars.get(2).unwrap().size, 0x10);
}

#[test]
fn sixteen_bit_io_bar_sizes() {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(0x8086, 1, 0, 0);
    f.set(0x10, 1).set_writable(0x10, 0xffe0);
    cs.insert(bdf(0, 0, 0), f);
    let bars = size_bars(&mut cs, bdf(0, 0, 0), HeaderType::Endpoint).unwrap();
    assert_eq!(
        bars.get(0).map(|b| (b.kind, b.size)),
        Some((BarKind::Io, 0x20))
    );
}

#[test]
fn bridge_header_has_two_bars_and_bus_numbers_are_not_touched() {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(0x1b36, 0x000c, 0x06_04_00, 0x01);
    f.bar32(0, 0x1000, false).set_writable(0x18, 0x00ff_ffff);
    cs.insert(bdf(0, 1, 0), f);
    let bars = size_bars(&mut cs, bdf(0, 1, 0), HeaderType::PciBridge).unwrap();
    assert_eq!(bars.iter().count(), 1);
    assert!(cs
        .writes
        .iter()
        .all(|w| w.reg != Register::BRIDGE_BUS_NUMBERS));
}

#[test]
fn cardbus_and_unknown_headers_are_refused() {
    let mut cs = qemu_bus(false);
    assert_eq!(
        size_bars(&mut cs, BLK(), HeaderType::CardBus),
        Err(BarError::UnsupportedHeader(HeaderType::CardBus))
    );
    assert_eq!(
        size_bars(&mut cs, BLK(), HeaderType::Unknown(0x7f)),
        Err(BarError::UnsupportedHeader(HeaderType::Unknown(0x7f)))
    );
    assert!(cs.writes.is_empty());
}

/// A function with BAR0 made by `make`, its command register on.
fn broken(make: impl FnOnce(&mut FakeFunction)) -> FakeConfigSpace {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(0xbad, 0xbad, 0, 0);
    make(&mut f);
    cs.insert(bdf(0, 0, 0), f);
    set_command(&mut cs, bdf(0, 0, 0), Command::MEMORY_SPACE);
    cs
}

fn size_broken(cs: &mut FakeConfigSpace) -> Result<Bars, BarError> {
    let before = cs.function(bdf(0, 0, 0)).unwrap().regs.clone();
    let result = size_bars(cs, bdf(0, 0, 0), HeaderType::Endpoint);
    assert_eq!(
        cs.function(bdf(0, 0, 0)).unwrap().regs,
        before,
        "registers restored"
    );
    result
}

#[test]
fn bar_with_holes_in_its_mask_is_refused() {
    let mut cs = broken(|f| {
        f.set_writable(0x10, 0x0f0f_0000);
    });
    assert_eq!(
        size_broken(&mut cs),
        Err(BarError::NonContiguousSize {
            index: 0,
            mask: 0x0f0f_0000
        })
    );
}

#[test]
fn bar_whose_mask_stops_short_of_the_top_is_refused() {
    let mut cs = broken(|f| {
        f.set_writable(0x10, 0x0fff_f000);
    });
    assert!(matches!(
        size_broken(&mut cs),
        Err(BarError::NonContiguousSize { index: 0, .. })
    ));
}

#[test]
fn bar_reading_all_ones_whatever_is_written_is_refused() {
    let mut cs = broken(|f| {
        f.stuck.insert(0x10, u32::MAX);
    });
    // All ones reads as an I/O BAR whose flag bits "changed" from nothing
    // to all ones is impossible to tell apart from a real one here: the
    // value before sizing is itself all ones, an I/O BAR of 4 bytes at
    // 0xfffffffc. What matters is that it is a plain value, not a panic.
    let bars = size_broken(&mut cs).unwrap();
    assert_eq!(
        bars.get(0).map(|b| (b.kind, b.size)),
        Some((BarKind::Io, 4))
    );
}

#[test]
fn bar_whose_type_bits_are_writable_is_refused() {
    let mut cs = broken(|f| {
        f.set_writable(0x10, u32::MAX);
    });
    assert_eq!(
        size_broken(&mut cs),
        Err(BarError::FlagsChanged {
            index: 0,
            before: 0,
            after: u32::MAX
        })
    );
}

#[test]
fn reserved_memory_types_are_refused() {
    for (value, what) in [(0x2, "below 1 MiB"), (0x6, "type 11")] {
        let mut cs = broken(|f| {
            f.set(0x10, value).set_writable(0x10, 0xffff_f000);
        });
        assert_eq!(
            size_broken(&mut cs),
            Err(BarError::ReservedType { index: 0, value }),
            "{what}"
        );
    }
}

#[test]
fn sixty_four_bit_bar_in_the_last_slot_is_refused() {
    let mut cs = broken(|f| {
        f.set(0x24, 0x4).set_writable(0x24, 0xffff_f000);
    });
    assert_eq!(
        size_broken(&mut cs),
        Err(BarError::Memory64InLastSlot { index: 5 })
    );
}

#[test]
fn sixty_four_bit_bar_without_upper_bits_is_refused() {
    let mut cs = broken(|f| {
        f.set(0x10, 0x4).set_writable(0x10, 0xffff_f000);
    });
    assert_eq!(
        size_broken(&mut cs),
        Err(BarError::NonContiguousSize {
            index: 0,
            mask: 0xffff_f000
        })
    );
}

// ---- BAR assignment ---------------------------------------------------

#[test]
fn qemu_virtio_blk_bars_land_in_the_right_windows() {
    let mut cs = qemu_bus(false);
    let mut alloc = qemu_allocator();
    let assigned = assign_bars(&mut cs, BLK(), HeaderType::Endpoint, &mut alloc).unwrap();
    let bar4 = assigned.get(4).unwrap().placement.unwrap();
    assert_eq!(bar4.pci, PciAddr(0x80_0000_0000));
    assert_eq!(bar4.cpu, range(0x80_0000_0000, 0x4000));
    let bar1 = assigned.get(1).unwrap().placement.unwrap();
    assert_eq!(bar1.pci, PciAddr(0x1000_0000));
    assert_eq!(assigned.get(0).unwrap().placement, None, "I/O is skipped");
    let f = cs.function(BLK()).unwrap();
    assert_eq!(f.get(0x14), 0x1000_0000);
    assert_eq!((f.get(0x20), f.get(0x24)), (0x0000_000c, 0x80));
    assert_eq!(f.get(0x10), 0x1, "the I/O BAR is left alone");
    // Decoding stays off until asked for.
    assert_eq!(command(&cs, BLK()), Command::empty());
    let on = enable_memory_and_bus_master(&mut cs, BLK(), Command::INTERRUPT_DISABLE);
    assert_eq!(
        on,
        Command::MEMORY_SPACE | Command::BUS_MASTER | Command::INTERRUPT_DISABLE
    );
    assert_eq!(command(&cs, BLK()), on);
}

#[test]
fn two_devices_share_the_windows_without_overlap() {
    let mut cs = qemu_bus(false);
    let mut alloc = qemu_allocator();
    let a = assign_bars(&mut cs, bdf(0, 1, 0), HeaderType::Endpoint, &mut alloc).unwrap();
    let b = assign_bars(&mut cs, BLK(), HeaderType::Endpoint, &mut alloc).unwrap();
    let ranges: Vec<PhysRange> = a
        .iter()
        .chain(b.iter())
        .filter_map(|x| x.placement.map(|p| p.cpu))
        .collect();
    assert_eq!(ranges.len(), 4);
    for (i, x) in ranges.iter().enumerate() {
        for y in &ranges[i + 1..] {
            assert!(!x.overlaps(y), "{x} and {y}");
        }
    }
}

#[test]
fn bars_are_naturally_aligned_and_placed_largest_first() {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(0x1234, 1, 0, 0);
    f.bar32(0, 0x100, false)
        .bar32(1, 0x10_0000, false)
        .bar32(2, 0x1000, false);
    cs.insert(bdf(0, 0, 0), f);
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem32,
            prefetchable: false,
            pci_start: PciAddr(0x1000_0800),
            cpu: range(0x1000_0800, 0x100_0000),
        })
        .unwrap();
    let assigned = assign_bars(&mut cs, bdf(0, 0, 0), HeaderType::Endpoint, &mut alloc).unwrap();
    let pci = |i| assigned.get(i).unwrap().placement.unwrap().pci.get();
    assert_eq!(pci(1), 0x1010_0000);
    assert_eq!(pci(2), 0x1020_0000);
    assert_eq!(pci(0), 0x1020_1000);
    for bar in assigned.iter() {
        assert_eq!(pci(bar.bar.index) % bar.bar.size, 0);
    }
}

#[test]
fn cpu_addresses_follow_the_window_translation() {
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem32,
            prefetchable: false,
            pci_start: PciAddr(0),
            cpu: range(0x4_0000_0000, 0x10_0000),
        })
        .unwrap();
    let bar = Bar {
        index: 0,
        kind: BarKind::Memory32,
        prefetchable: false,
        size: 0x1000,
    };
    let p = alloc.allocate(&bar).unwrap();
    // PCI address 0 is never handed out: drivers read it as unassigned.
    assert_eq!(p.pci, PciAddr(0x1000));
    assert_eq!(p.cpu, range(0x4_0000_1000, 0x1000));
    assert_eq!(
        alloc.to_cpu(PciAddr(0x1800), 8),
        Some(range(0x4_0000_1800, 8))
    );
    assert_eq!(alloc.to_cpu(PciAddr(0xf_fffc), 8), None);
}

fn bar(kind: BarKind, prefetchable: bool, size: u64) -> Bar {
    Bar {
        index: 0,
        kind,
        prefetchable,
        size,
    }
}

#[test]
fn thirty_two_bit_bar_never_goes_above_4_gib() {
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem64,
            prefetchable: false,
            pci_start: PciAddr(0x80_0000_0000),
            cpu: range(0x80_0000_0000, 1 << 30),
        })
        .unwrap();
    let b = bar(BarKind::Memory32, false, 0x1000);
    assert_eq!(alloc.allocate(&b), Err(AllocError::NoSpace(b)));
}

#[test]
fn thirty_two_bit_bar_may_use_the_low_part_of_a_64_bit_window() {
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem64,
            prefetchable: false,
            pci_start: PciAddr(0xffff_e000),
            cpu: range(0xffff_e000, 0x1_0000),
        })
        .unwrap();
    let b = bar(BarKind::Memory32, false, 0x1000);
    assert_eq!(alloc.allocate(&b).unwrap().pci, PciAddr(0xffff_e000));
    assert_eq!(alloc.allocate(&b).unwrap().pci, PciAddr(0xffff_f000));
    assert_eq!(alloc.allocate(&b), Err(AllocError::NoSpace(b)));
    // A 64-bit BAR can still go above.
    let b64 = bar(BarKind::Memory64, false, 0x1000);
    assert_eq!(alloc.allocate(&b64).unwrap().pci, PciAddr(0x1_0000_0000));
}

#[test]
fn sixty_four_bit_bar_falls_back_to_the_32_bit_window() {
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem32,
            prefetchable: false,
            pci_start: PciAddr(0x1000_0000),
            cpu: range(0x1000_0000, 0x1000_0000),
        })
        .unwrap();
    let b = bar(BarKind::Memory64, true, 0x4000);
    assert_eq!(alloc.allocate(&b).unwrap().pci, PciAddr(0x1000_0000));
}

#[test]
fn non_prefetchable_bar_stays_out_of_prefetchable_windows() {
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem64,
            prefetchable: true,
            pci_start: PciAddr(0x80_0000_0000),
            cpu: range(0x80_0000_0000, 1 << 30),
        })
        .unwrap();
    let plain = bar(BarKind::Memory64, false, 0x1000);
    assert_eq!(alloc.allocate(&plain), Err(AllocError::NoSpace(plain)));
    let prefetchable = bar(BarKind::Memory64, true, 0x1000);
    assert!(alloc.allocate(&prefetchable).is_ok());
}

#[test]
fn bar_larger_than_any_window_finds_no_space() {
    let mut alloc = qemu_allocator();
    let huge = bar(BarKind::Memory64, false, 1 << 62);
    assert_eq!(alloc.allocate(&huge), Err(AllocError::NoSpace(huge)));
    let io = bar(BarKind::Io, false, 0x20);
    assert_eq!(alloc.allocate(&io), Err(AllocError::IoNotSupported(io)));
}

#[test]
fn windows_are_bounded_and_must_not_wrap() {
    let mut alloc = BarAllocator::new();
    let wraps = Window {
        kind: WindowKind::Mem64,
        prefetchable: false,
        pci_start: PciAddr(u64::MAX - 0xfff),
        cpu: range(0x1000, 0x2000),
    };
    assert_eq!(alloc.add_window(wraps), Err(AllocError::WindowWraps(wraps)));
    let ok = Window {
        pci_start: PciAddr(0x1000),
        ..wraps
    };
    for _ in 0..MAX_WINDOWS {
        alloc.add_window(ok).unwrap();
    }
    assert_eq!(alloc.add_window(ok), Err(AllocError::TooManyWindows));
}

#[test]
fn window_near_the_top_of_the_address_space_does_not_overflow() {
    let mut alloc = BarAllocator::new();
    alloc
        .add_window(Window {
            kind: WindowKind::Mem64,
            prefetchable: false,
            pci_start: PciAddr(u64::MAX - 0x1_ffff),
            cpu: range(0x1_0000_0000, 0x1_0000),
        })
        .unwrap();
    // Aligning up to a bigger size than is left would wrap.
    let b = bar(BarKind::Memory64, false, 0x4_0000);
    assert_eq!(alloc.allocate(&b), Err(AllocError::NoSpace(b)));
    // The window's very end is usable.
    let b = bar(BarKind::Memory64, false, 0x1_0000);
    assert_eq!(
        alloc.allocate(&b).map(|p| p.pci),
        Ok(PciAddr(u64::MAX - 0x1_ffff))
    );
    assert_eq!(alloc.allocate(&b), Err(AllocError::NoSpace(b)));
}

#[test]
fn bar_that_forgets_its_address_is_reported_and_left_off() {
    let mut cs = qemu_bus(true);
    cs.function_mut(BLK()).unwrap().drops_addresses.insert(0x14);
    let mut alloc = qemu_allocator();
    assert_eq!(
        assign_bars(&mut cs, BLK(), HeaderType::Endpoint, &mut alloc),
        Err(AssignError::Readback {
            index: 1,
            wrote: PciAddr(0x1000_0000),
            read: PciAddr(0)
        })
    );
    assert!(!command(&cs, BLK()).intersects(Command::MEMORY_SPACE | Command::IO_SPACE));
}

#[test]
fn assignment_errors_name_the_bar() {
    let e = AssignError::Alloc(AllocError::NoSpace(bar(BarKind::Memory32, false, 0x1000)));
    assert_eq!(
        std::format!("{e}"),
        "BAR0: 32-bit memory, 0x1000 bytes: no room in any suitable PCI window"
    );
    let e = AssignError::Size(BarError::NonContiguousSize {
        index: 2,
        mask: 0xf0f0,
    });
    assert_eq!(
        std::format!("{e}"),
        "BAR2 sizes as 0xf0f0, not a power of two"
    );
}

// ---- capabilities -----------------------------------------------------

fn ids(cs: &FakeConfigSpace, at: Bdf) -> Vec<Result<(u8, u16), CapabilityError>> {
    capabilities(cs, at)
        .map(|c| c.map(|c| (c.id.0, c.offset.offset())))
        .collect()
}

#[test]
fn qemu_virtio_blk_capabilities_in_list_order() {
    let cs = qemu_bus(false);
    assert_eq!(
        ids(&cs, BLK()),
        [
            Ok((0x11, 0x98)),
            Ok((0x09, 0x84)),
            Ok((0x09, 0x70)),
            Ok((0x09, 0x60)),
            Ok((0x09, 0x50)),
            Ok((0x09, 0x40)),
        ]
    );
    let notify = capabilities(&cs, BLK()).nth(2).unwrap().unwrap();
    // virtio_pci_cap: cap_len in header bits 23:16, cfg_type 31:24.
    assert_eq!(notify.header >> 16, 0x0214);
    let offset_field = notify.field(8).unwrap();
    assert_eq!(cs.read32(BLK(), offset_field), 0x3000);
    assert_eq!(
        find_capability(&cs, BLK(), CapabilityId::MSIX).map(|c| c.map(|c| c.offset.offset())),
        Ok(Some(0x98))
    );
    assert_eq!(find_capability(&cs, BLK(), CapabilityId::MSI), Ok(None));
    assert_eq!(std::format!("{}", CapabilityId::MSIX), "MSI-X");
    assert_eq!(std::format!("{}", CapabilityId(0x42)), "capability 0x42");
}

#[test]
fn no_capabilities_without_the_status_bit() {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(1, 1, 0, 0);
    f.set(0x34, 0x40).capability(0x40, 0x05, 0, 0, &[]);
    cs.insert(bdf(0, 0, 0), f);
    assert_eq!(ids(&cs, bdf(0, 0, 0)), []);
}

fn with_caps(make: impl FnOnce(&mut FakeFunction)) -> FakeConfigSpace {
    let mut cs = FakeConfigSpace::new();
    let mut f = FakeFunction::new(1, 1, 0, 0);
    make(&mut f);
    cs.insert(bdf(0, 0, 0), f);
    cs
}

#[test]
fn capability_loop_is_an_error_not_a_hang() {
    let cs = with_caps(|f| {
        f.capabilities_at(0x40)
            .capability(0x40, 0x01, 0x50, 0, &[])
            .capability(0x50, 0x05, 0x40, 0, &[]);
    });
    assert_eq!(
        ids(&cs, bdf(0, 0, 0)),
        [
            Ok((0x01, 0x40)),
            Ok((0x05, 0x50)),
            Err(CapabilityError::Loop {
                from: Register::new(0x50).unwrap(),
                pointer: 0x40
            })
        ]
    );
}

#[test]
fn capability_pointing_at_itself_is_a_loop() {
    let cs = with_caps(|f| {
        f.capabilities_at(0xfc).capability(0xfc, 0x09, 0xfc, 0, &[]);
    });
    assert_eq!(
        ids(&cs, bdf(0, 0, 0)),
        [
            Ok((0x09, 0xfc)),
            Err(CapabilityError::Loop {
                from: Register::new(0xfc).unwrap(),
                pointer: 0xfc
            })
        ]
    );
}

#[test]
fn capability_pointer_into_the_header_is_refused() {
    let cs = with_caps(|f| {
        f.capabilities_at(0x40).capability(0x40, 0x01, 0x10, 0, &[]);
    });
    assert_eq!(
        ids(&cs, bdf(0, 0, 0)),
        [
            Ok((0x01, 0x40)),
            Err(CapabilityError::PointerOutOfRange {
                from: Register::new(0x40).unwrap(),
                pointer: 0x10
            })
        ]
    );
    let cs = with_caps(|f| {
        f.capabilities_at(0x3c);
    });
    assert_eq!(
        ids(&cs, bdf(0, 0, 0)),
        [Err(CapabilityError::PointerOutOfRange {
            from: Register::CAPABILITIES_POINTER,
            pointer: 0x3c
        })]
    );
}

#[test]
fn capability_pointer_reserved_bits_are_masked() {
    let cs = with_caps(|f| {
        f.capabilities_at(0x43).capability(0x40, 0x10, 0x83, 0, &[]);
        f.capability(0x80, 0x11, 0, 0, &[]);
    });
    assert_eq!(ids(&cs, bdf(0, 0, 0)), [Ok((0x10, 0x40)), Ok((0x11, 0x80))]);
}

#[test]
fn the_longest_possible_list_is_walked_whole() {
    let cs = with_caps(|f| {
        f.capabilities_at(0x40);
        for slot in 0u8..48 {
            let at = 0x40 + 4 * slot;
            let next = if slot == 47 { 0 } else { at + 4 };
            f.capability(at, 0x09, next, 0, &[]);
        }
    });
    let all = ids(&cs, bdf(0, 0, 0));
    assert_eq!(all.len(), 48);
    assert!(all.iter().all(Result::is_ok));
}

#[test]
fn capability_fields_stay_in_conventional_space() {
    let cs = with_caps(|f| {
        f.capabilities_at(0xf8).capability(0xf8, 0x09, 0, 0, &[]);
    });
    let cap = capabilities(&cs, bdf(0, 0, 0)).next().unwrap().unwrap();
    assert_eq!(cap.field(4).map(Register::offset), Some(0xfc));
    assert_eq!(cap.field(8), None);
    assert_eq!(cap.field(2), None);
}

#[test]
fn conventional_function_has_no_extended_capabilities() {
    let cs = qemu_bus(false);
    assert_eq!(extended_capabilities(&cs, BLK()).count(), 0);
    // A PCIe function with none reads 0 at 0x100.
    let cs = with_caps(|f| f.extended = true);
    assert_eq!(extended_capabilities(&cs, bdf(0, 0, 0)).count(), 0);
}

fn extended(cs: &FakeConfigSpace) -> Vec<Result<(u16, u16), CapabilityError>> {
    extended_capabilities(cs, bdf(0, 0, 0))
        .map(|c| c.map(|c| (c.id.0, c.offset.offset())))
        .collect()
}

#[test]
fn extended_capabilities_are_walked_and_loops_stopped() {
    let cs = with_caps(|f| {
        f.extended = true;
        f.set(0x100, 0x1481_0001) // AER v1, next 0x148
            .set(0x148, 0x1001_000d) // ACS v1, next 0x100: a loop
            ;
    });
    assert_eq!(
        extended(&cs),
        [
            Ok((0x0001, 0x100)),
            Ok((0x000d, 0x148)),
            Err(CapabilityError::Loop {
                from: Register::new(0x148).unwrap(),
                pointer: 0x100
            })
        ]
    );
    let cs = with_caps(|f| {
        f.extended = true;
        f.set(0x100, 0x0401_0010); // SR-IOV, next 0x040: into the legacy space
    });
    assert_eq!(
        extended(&cs),
        [
            Ok((0x0010, 0x100)),
            Err(CapabilityError::PointerOutOfRange {
                from: Register::new(0x100).unwrap(),
                pointer: 0x40
            })
        ]
    );
    let cs = with_caps(|f| {
        f.extended = true;
        f.set(0x100, 0xffc1_001b); // PASID, next 0xffc
    });
    assert_eq!(extended(&cs), [Ok((0x001b, 0x100))], "0xffc reads 0: end");
}

// ---- no content panics or hangs --------------------------------------

/// Configuration space whose every read is pseudo-random, different each
/// time: the worst a device can do.
struct Chaos {
    state: Cell<u64>,
}

impl ConfigSpace for Chaos {
    fn read32(&self, _: Bdf, _: Register) -> u32 {
        // xorshift64
        let mut x = self.state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.set(x);
        // Bias towards the values that matter: all ones, zero, small.
        match x >> 60 {
            0 => u32::MAX,
            1 => 0,
            2 => (x >> 8) as u32 & 0xff,
            _ => (x >> 16) as u32,
        }
    }

    fn write32(&mut self, _: Bdf, _: Register, _: u32) {}
}

#[test]
fn random_configuration_space_never_panics_or_hangs() {
    for seed in 1..=300u64 {
        let mut cs = Chaos {
            state: Cell::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        };
        let mut alloc = qemu_allocator();
        let found: Vec<_> = functions(&cs, 0).collect();
        assert!(found.len() <= 256);
        for f in found {
            let _ = assign_bars(&mut cs, f.bdf, f.header_type, &mut alloc);
            assert!(capabilities(&cs, f.bdf).count() <= 49);
            assert!(extended_capabilities(&cs, f.bdf).count() <= 961);
        }
    }
}

// ---- virtio -----------------------------------------------------------

fn info(cs: &FakeConfigSpace, at: Bdf) -> FunctionInfo {
    probe_function(cs, at).unwrap()
}

#[test]
fn virtio_device_ids_cover_transitional_and_modern() {
    let cs = qemu_bus(false);
    assert_eq!(
        virtio_device_id(&info(&cs, BLK())),
        Some(VIRTIO_DEVICE_BLOCK)
    );
    assert_eq!(virtio_device_id(&info(&cs, bdf(0, 1, 0))), Some(1));
    assert_eq!(virtio_device_id(&info(&cs, bdf(0, 0, 0))), None);
    let cs = qemu_bus(true);
    assert_eq!(
        virtio_device_id(&info(&cs, BLK())),
        Some(VIRTIO_DEVICE_BLOCK)
    );
    let mut f = info(&cs, BLK());
    for (device, expected) in [
        (0x1040, None),
        (0x1059, Some(25)),
        (0x1080, None),
        (0x1006, None),
    ] {
        f.device_id = device;
        assert_eq!(virtio_device_id(&f), expected, "{device:#x}");
    }
}

/// The disk of `cs` with its BARs assigned in QEMU's windows.
fn assigned_blk(cs: &mut FakeConfigSpace) -> AssignedBars {
    let mut alloc = qemu_allocator();
    assign_bars(cs, BLK(), HeaderType::Endpoint, &mut alloc).unwrap()
}

fn region(bar: u8, offset: u32, length: u32, cpu: u64) -> VirtioRegion {
    VirtioRegion {
        bar,
        offset,
        length,
        cpu: range(cpu, u64::from(length)),
    }
}

#[test]
fn qemu_virtio_blk_layout_is_in_bar4() {
    for modern_only in [false, true] {
        let mut cs = qemu_bus(modern_only);
        let bars = assigned_blk(&mut cs);
        let layout = virtio_layout(&cs, BLK(), &bars).unwrap();
        let base = 0x80_0000_0000;
        assert_eq!(
            layout,
            VirtioLayout {
                common: region(4, 0, 0x1000, base),
                notify: region(4, 0x3000, 0x1000, base + 0x3000),
                notify_off_multiplier: 4,
                isr: region(4, 0x1000, 0x1000, base + 0x1000),
                device: Some(region(4, 0x2000, 0x1000, base + 0x2000)),
            }
        );
    }
}

/// Layout of the disk after `make` changed it (BARs assigned first).
fn layout_after(make: impl FnOnce(&mut FakeFunction)) -> Result<VirtioLayout, VirtioLayoutError> {
    let mut cs = qemu_bus(false);
    let bars = assigned_blk(&mut cs);
    make(cs.function_mut(BLK()).unwrap());
    virtio_layout(&cs, BLK(), &bars)
}

#[test]
fn virtio_structure_outside_its_bar_is_refused() {
    assert_eq!(
        layout_after(|f| {
            f.set(0x5c, 0x3001); // ISR length past BAR4's 16 KiB
        }),
        Err(VirtioLayoutError::OutOfBar {
            structure: VirtioStructure::Isr,
            offset: 0x1000,
            length: 0x3001
        })
    );
    // offset + length wraps a u32.
    assert_eq!(
        layout_after(|f| {
            f.set(0x78, 0xffff_f000).set(0x7c, 0x2000);
        }),
        Err(VirtioLayoutError::OutOfBar {
            structure: VirtioStructure::Notify,
            offset: 0xffff_f000,
            length: 0x2000
        })
    );
    // Common configuration too short for its 56 bytes of registers.
    assert_eq!(
        layout_after(|f| {
            f.set(0x4c, 0x30);
        }),
        Err(VirtioLayoutError::OutOfBar {
            structure: VirtioStructure::Common,
            offset: 0,
            length: 0x30
        })
    );
}

#[test]
fn virtio_structure_in_an_unusable_bar_is_refused() {
    for (bar, what) in [
        (0, "the unassigned I/O BAR"),
        (2, "no BAR"),
        (5, "BAR4's upper half"),
        (0xff, "no such BAR"),
    ] {
        assert_eq!(
            layout_after(|f| {
                f.set(0x44, bar);
            }),
            Err(VirtioLayoutError::BarUnusable {
                structure: VirtioStructure::Common,
                bar: bar as u8
            }),
            "{what}"
        );
    }
}

#[test]
fn missing_virtio_structures_are_named() {
    // The ISR capability at 0x50 links straight to the end.
    assert_eq!(
        layout_after(|f| {
            f.set(0x50, 0x0310_0009);
        }),
        Err(VirtioLayoutError::Missing(VirtioStructure::Common))
    );
    // A notification capability too short to hold its multiplier is not one.
    assert_eq!(
        layout_after(|f| {
            f.set(0x70, 0x0210_6009);
        }),
        Err(VirtioLayoutError::Missing(VirtioStructure::Notify))
    );
    // Device configuration is optional.
    let layout = layout_after(|f| {
        f.set(0x60, 0x0710_5009); // cfg_type 7: not one the driver reads
    })
    .unwrap();
    assert_eq!(layout.device, None);
}

#[test]
fn first_virtio_capability_of_a_type_wins() {
    // Make the device-configuration capability at 0x60 a second common one.
    let layout = layout_after(|f| {
        f.set(0x60, 0x0110_5009);
    })
    .unwrap();
    assert_eq!(layout.common.offset, 0x2000, "0x60 comes before 0x40");
    assert_eq!(layout.device, None);
}

#[test]
fn odd_notify_multiplier_and_broken_lists_are_refused() {
    assert_eq!(
        layout_after(|f| {
            f.set(0x80, 3);
        }),
        Err(VirtioLayoutError::OddNotifyMultiplier(3))
    );
    assert_eq!(
        layout_after(|f| {
            f.set(0x40, 0x0110_7009); // common links back to notify at 0x70
        }),
        Err(VirtioLayoutError::Capabilities(CapabilityError::Loop {
            from: Register::new(0x40).unwrap(),
            pointer: 0x70
        }))
    );
    // A common configuration capability at 0xf8, before the real one,
    // whose offset field would be at 0x100.
    assert_eq!(
        layout_after(|f| {
            f.set(0x50, 0x0310_f809).set(0xf8, 0x0110_4009).set(0xfc, 4);
        }),
        Err(VirtioLayoutError::CapabilityTooLong(
            VirtioStructure::Common
        ))
    );
}

/// The disk behind a shadow, and the layout it was built from.
fn shadowed(modern_only: bool) -> (ShadowedConfig<FakeConfigSpace>, VirtioLayout, Bars) {
    let mut cs = qemu_bus(modern_only);
    let bars = assigned_blk(&mut cs);
    let layout = virtio_layout(&cs, BLK(), &bars).unwrap();
    let sized = size_bars(&mut cs, BLK(), HeaderType::Endpoint).unwrap();
    enable_memory_and_bus_master(&mut cs, BLK(), Command::empty());
    cs.writes.clear();
    let shadow = VirtioShadow::new(&bars, &layout);
    (ShadowedConfig::new(cs, BLK(), shadow), layout, sized)
}

#[test]
fn shadow_shows_the_checked_layout_and_a_list_that_ends() {
    for modern_only in [false, true] {
        let (cs, layout, _) = shadowed(modern_only);
        let caps = ids(cs.inner(), BLK());
        assert_eq!(caps.len(), 6, "the device has six");
        let seen: Vec<_> = capabilities(&cs, BLK()).collect();
        assert_eq!(seen.len(), 4);
        assert!(seen
            .iter()
            .all(|c| c.is_ok_and(|c| c.id == CapabilityId::VENDOR_SPECIFIC)));
        let bars = {
            let mut cs = qemu_bus(modern_only);
            assigned_blk(&mut cs)
        };
        assert_eq!(virtio_layout(&cs, BLK(), &bars), Ok(layout));
    }
}

#[test]
fn shadow_bars_size_like_the_device_and_keep_it_untouched() {
    let (mut cs, _, sized) = shadowed(false);
    let before = cs.inner().function(BLK()).unwrap().regs.clone();
    let through_shadow = size_bars(&mut cs, BLK(), HeaderType::Endpoint).unwrap();
    assert_eq!(through_shadow, sized);
    // Only the command register (decoding off, then on) reached the device.
    assert!(cs
        .inner()
        .writes
        .iter()
        .all(|w| w.reg == Register::COMMAND_STATUS));
    assert_eq!(cs.inner().function(BLK()).unwrap().regs, before);
    // The shadow BARs hold the assigned addresses again.
    assert_eq!(cs.read32(BLK(), Register::bar(1).unwrap()), 0x1000_0000);
    assert_eq!(cs.read32(BLK(), Register::bar(4).unwrap()), 0x0000_000c);
    assert_eq!(cs.read32(BLK(), Register::bar(5).unwrap()), 0x80);
    assert_eq!(cs.read32(BLK(), Register::bar(0).unwrap()), 0x1);
}

#[test]
fn shadow_covers_one_function_only() {
    let (mut cs, _, _) = shadowed(false);
    let nic = bdf(0, 1, 0);
    assert_eq!(cs.read32(nic, Register::VENDOR_DEVICE), 0x1000_1af4);
    assert_eq!(ids(cs.inner(), nic).len(), capabilities(&cs, nic).count());
    cs.write32(nic, Register::bar(1).unwrap(), u32::MAX);
    assert_eq!(cs.inner().function(nic).unwrap().get(0x14), 0xffff_f000);
    // The disk's identity is read live.
    assert_eq!(cs.read32(BLK(), Register::VENDOR_DEVICE), 0x1001_1af4);
}
