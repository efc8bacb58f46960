//! The guest's PCIe host bridge node, read back with the `fdt` crate (and
//! `dtc`, where installed), and the checks on its layout.

use fdt::node::FdtNode;
use fdt::Fdt;
use guest_boot::virt::{self, Spi};
use guest_boot::{
    write_dtb, write_dtb_with_pci, DtbError, GuestMachine, GuestPci, IntermediatePhysAddr, IntxPin,
    IpaRange, PciError, PciInterrupt, PciWindows, GIC_PHANDLE, GUEST_DTB_MAX, MAX_BOOTARGS_LEN,
    MAX_VCPUS,
};
use proptest::prelude::*;

fn range(start: u64, size: u64) -> IpaRange {
    IpaRange::new(IntermediatePhysAddr(start), size).unwrap()
}

fn machine() -> GuestMachine<'static> {
    GuestMachine {
        ram: range(0x4000_0000, 256 << 20),
        vcpus: 2,
        bootargs: "console=ttyAMA0",
        initrd: None,
        uart: true,
    }
}

fn spi(n: u32) -> Spi {
    Spi::new(n).unwrap()
}

/// Two functions, at devices 1 and 2, on `virt`'s INTx SPIs 3 and 4.
const TWO_DEVICES: [PciInterrupt; 2] = [
    PciInterrupt {
        device: 1,
        pin: IntxPin::A,
        spi: virt::PCIE_FIRST_SPI,
    },
    PciInterrupt {
        device: 2,
        pin: IntxPin::B,
        // SPI 4: `Spi::new` is not const-callable with `unwrap`.
        spi: match Spi::new(4) {
            Some(s) => s,
            None => panic!(),
        },
    },
];

fn pci(interrupts: &[PciInterrupt]) -> GuestPci<'_> {
    GuestPci {
        windows: PciWindows::VIRT,
        interrupts,
    }
}

fn cells(node: FdtNode<'_, '_>, name: &str) -> Vec<u32> {
    let bytes = node
        .property(name)
        .unwrap_or_else(|| panic!("{} has no {name}", node.name))
        .value;
    assert_eq!(bytes.len() % 4, 0, "{name} is not whole cells");
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn string(node: FdtNode<'_, '_>, name: &str) -> String {
    let bytes = node.property(name).unwrap().value;
    assert_eq!(bytes.last(), Some(&0));
    String::from_utf8(bytes[..bytes.len() - 1].to_vec()).unwrap()
}

fn check_err(pci: &GuestPci, err: PciError, message: &str) {
    assert_eq!(pci.check(machine().ram), Err(err));
    assert_eq!(
        write_dtb_with_pci(&machine(), Some(pci)),
        Err(DtbError::Pci(err))
    );
    assert_eq!(err.to_string(), message);
    assert_eq!(DtbError::Pci(err).to_string(), message);
}

#[test]
fn pcie_node_describes_the_virt_layout() {
    let dtb = write_dtb_with_pci(&machine(), Some(&pci(&TWO_DEVICES))).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    assert_eq!(string(pcie, "compatible"), "pci-host-ecam-generic");
    assert_eq!(string(pcie, "device_type"), "pci");
    assert_eq!(cells(pcie, "reg"), [0, 0x3f00_0000, 0, 0x0100_0000]);
    assert_eq!(cells(pcie, "bus-range"), [0, 15]);
    assert_eq!(cells(pcie, "#address-cells"), [3]);
    assert_eq!(cells(pcie, "#size-cells"), [2]);
    assert_eq!(cells(pcie, "linux,pci-domain"), [0]);
    // One 32-bit non-prefetchable window, PCI address = IPA, as QEMU's.
    assert_eq!(
        cells(pcie, "ranges"),
        [0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 0x2eff_0000]
    );
    assert_eq!(cells(pcie, "#interrupt-cells"), [1]);
    assert_eq!(cells(pcie, "interrupt-map-mask"), [0xf800, 0, 0, 7]);
    assert_eq!(
        cells(pcie, "interrupt-map"),
        [
            0x0800,
            0,
            0,
            1,
            GIC_PHANDLE,
            0,
            3,
            4, // 00:01 INTA -> SPI 3
            0x1000,
            0,
            0,
            2,
            GIC_PHANDLE,
            0,
            4,
            4, // 00:02 INTB -> SPI 4
        ]
    );
    assert!(pcie.property("dma-coherent").unwrap().value.is_empty());
    for absent in ["msi-parent", "msi-map", "iommu-map"] {
        assert!(pcie.property(absent).is_none(), "{absent}");
    }
    // The GIC the map points at has no address cells, so each entry is 8
    // cells long.
    let gic = fdt.find_node("/intc@8000000").unwrap();
    assert_eq!(cells(gic, "#address-cells"), [0]);
    assert_eq!(cells(gic, "phandle"), [GIC_PHANDLE]);
    // The rest of the machine is unchanged.
    assert!(fdt.find_node("/pl011@9000000").is_some());
    assert!(fdt.find_node("/virtio_mmio@a000000").is_some());
}

#[test]
fn no_pcie_node_without_passthrough_functions() {
    let plain = write_dtb(&machine()).unwrap();
    assert_eq!(write_dtb_with_pci(&machine(), None).unwrap(), plain);
    let fdt = Fdt::new(&plain).unwrap();
    assert!(fdt
        .find_node("/")
        .unwrap()
        .children()
        .all(|c| !c.name.starts_with("pcie")));
}

#[test]
fn a_64_bit_window_adds_a_second_range() {
    let windows = PciWindows {
        mmio64: Some(range(0x80_0000_0000 - (1 << 34), 1 << 34)),
        ..PciWindows::VIRT
    };
    let pci = GuestPci {
        windows,
        interrupts: &TWO_DEVICES,
    };
    let dtb = write_dtb_with_pci(&machine(), Some(&pci)).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    assert_eq!(
        cells(pcie, "ranges"),
        [
            0x0200_0000,
            0,
            0x1000_0000,
            0,
            0x1000_0000,
            0,
            0x2eff_0000,
            0x0300_0000,
            0x7c,
            0,
            0x7c,
            0,
            4,
            0
        ]
    );
}

#[test]
fn functions_without_intx_get_no_interrupt_map() {
    let dtb = write_dtb_with_pci(&machine(), Some(&pci(&[]))).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    for absent in ["interrupt-map", "interrupt-map-mask", "#interrupt-cells"] {
        assert!(pcie.property(absent).is_none(), "{absent}");
    }
}

#[test]
fn a_smaller_ecam_window_serves_fewer_buses() {
    let windows = PciWindows {
        ecam: range(0x3f00_0000, 1 << 20),
        ..PciWindows::VIRT
    };
    assert_eq!(windows.last_bus(), 0);
    assert_eq!(PciWindows::VIRT.last_bus(), 15);
    let pci = GuestPci {
        windows,
        interrupts: &[],
    };
    let dtb = write_dtb_with_pci(&machine(), Some(&pci)).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    assert_eq!(cells(pcie, "bus-range"), [0, 0]);
}

#[test]
fn layouts_that_collide_or_are_misaligned_are_refused() {
    let with = |windows: PciWindows| GuestPci {
        windows,
        interrupts: &[],
    };
    let v = PciWindows::VIRT;
    let ecam = range(0x3f08_0000, 1 << 20);
    check_err(
        &with(PciWindows { ecam, ..v }),
        PciError::EcamMisaligned(ecam),
        "PCIe ECAM window [0x3f080000..0x3f180000) is not a non-empty whole number of MiB-aligned buses",
    );
    let ecam = range(0x3f00_0000, 0);
    check_err(
        &with(PciWindows { ecam, ..v }),
        PciError::EcamMisaligned(ecam),
        "PCIe ECAM window [0x3f000000..0x3f000000) is not a non-empty whole number of MiB-aligned buses",
    );
    let ecam = range(0x1_0000_0000, 257 << 20);
    check_err(
        &with(PciWindows { ecam, ..v }),
        PciError::EcamTooLarge(ecam),
        "PCIe ECAM window [0x100000000..0x110100000) is larger than 256 buses",
    );
    let mmio32 = range(0x1000_0800, 0x1000);
    check_err(
        &with(PciWindows { mmio32, ..v }),
        PciError::WindowMisaligned(mmio32),
        "PCIe memory window [0x10000800..0x10001800) is empty or not page aligned",
    );
    let mmio64 = range(0x2_0000_0000, 0x1800);
    check_err(
        &with(PciWindows {
            mmio64: Some(mmio64),
            ..v
        }),
        PciError::WindowMisaligned(mmio64),
        "PCIe memory window [0x200000000..0x200001800) is empty or not page aligned",
    );
    let mmio32 = range(0xf000_0000, 0x2000_0000);
    check_err(
        &with(PciWindows { mmio32, ..v }),
        PciError::Mmio32Above4GiB(mmio32),
        "PCIe 32-bit memory window [0xf0000000..0x110000000) reaches above 4 GiB",
    );
    // Into RAM, the GIC, the UART, the virtio-mmio transports, each other.
    let ram = machine().ram;
    for (mmio32, other) in [
        (range(0x4000_0000, 0x1000), ram),
        (range(0x0800_0000, 0x1000), virt::GICD),
        (range(0x0810_0000, 0x1000), virt::GICR_WINDOW),
        (range(0x0900_0000, 0x1000), virt::UART),
        (range(0x0a00_3000, 0x1000), virt::VIRTIO_MMIO_WINDOW),
    ] {
        check_err(
            &with(PciWindows { mmio32, ..v }),
            PciError::Overlap {
                region: mmio32,
                other,
            },
            &format!("PCIe window {mmio32} overlaps {other}"),
        );
    }
    // RAM elsewhere, but the ECAM window on the UART.
    let ecam = range(0x0900_0000, 1 << 20);
    assert_eq!(
        with(PciWindows { ecam, ..v }).check(range(0x1_0000_0000, 1 << 30)),
        Err(PciError::Overlap {
            region: ecam,
            other: virt::UART
        })
    );
    let mmio64 = range(0x3f80_0000, 0x1000);
    check_err(
        &with(PciWindows {
            mmio64: Some(mmio64),
            ..v
        }),
        PciError::Overlap {
            region: v.ecam,
            other: mmio64,
        },
        "PCIe window [0x3f000000..0x40000000) overlaps [0x3f800000..0x3f801000)",
    );
}

#[test]
fn bad_interrupt_entries_are_refused() {
    let entry = |device, pin, spi| PciInterrupt { device, pin, spi };
    check_err(
        &pci(&[entry(32, IntxPin::A, spi(3))]),
        PciError::DeviceOutOfRange { device: 32 },
        "PCI interrupt for device 32, past the 32 of a bus",
    );
    check_err(
        &pci(&[
            entry(1, IntxPin::C, spi(3)),
            entry(2, IntxPin::C, spi(3)),
            entry(1, IntxPin::C, spi(5)),
        ]),
        PciError::DuplicateInterrupt {
            device: 1,
            pin: IntxPin::C,
        },
        "two PCI interrupts for device 1 INTC",
    );
    for reserved in [1, 16, 47] {
        check_err(
            &pci(&[entry(0, IntxPin::A, spi(reserved))]),
            PciError::ReservedSpi { spi: spi(reserved) },
            &format!("PCI INTx SPI {reserved} is the UART's or a virtio-mmio slot's"),
        );
    }
    // Two devices sharing one SPI is a shared level-triggered line: fine.
    let shared = [entry(1, IntxPin::A, spi(48)), entry(2, IntxPin::A, spi(48))];
    assert_eq!(pci(&shared).check(machine().ram), Ok(()));
}

#[test]
fn intx_pins_are_named_as_the_interrupt_pin_register_names_them() {
    assert_eq!(IntxPin::from_register(0), None);
    assert_eq!(IntxPin::from_register(1), Some(IntxPin::A));
    assert_eq!(IntxPin::from_register(4), Some(IntxPin::D));
    assert_eq!(IntxPin::from_register(5), None);
    assert_eq!(IntxPin::from_register(0xff), None);
    assert_eq!(IntxPin::B.register(), 2);
    assert_eq!(IntxPin::D.to_string(), "INTD");
}

/// Every device, every pin, the most vCPUs and the longest command line.
#[test]
fn largest_machine_with_pci_fits_the_advertised_bound() {
    let pins = [IntxPin::A, IntxPin::B, IntxPin::C, IntxPin::D];
    let interrupts: Vec<_> = (0..32u8)
        .flat_map(|device| {
            pins.iter().map(move |&pin| PciInterrupt {
                device,
                pin,
                spi: spi(100 + u32::from(device) * 4 + u32::from(pin.register())),
            })
        })
        .collect();
    let pci = GuestPci {
        windows: PciWindows {
            mmio64: Some(range(0x40_0000_0000, 1 << 36)),
            ..PciWindows::VIRT
        },
        interrupts: &interrupts,
    };
    let bootargs = "x".repeat(MAX_BOOTARGS_LEN);
    let m = GuestMachine {
        vcpus: MAX_VCPUS,
        bootargs: &bootargs,
        initrd: Some(range(0x4800_0000, 0x1000)),
        ..machine()
    };
    let dtb = write_dtb_with_pci(&m, Some(&pci)).unwrap();
    assert!(dtb.len() <= GUEST_DTB_MAX, "{} bytes", dtb.len());
    let fdt = Fdt::new(&dtb).unwrap();
    let pcie = fdt.find_node("/pcie@3f000000").unwrap();
    assert_eq!(cells(pcie, "interrupt-map").len(), 128 * 8);
}

/// `dtc` decompiles a tree with the bridge without a warning (its PCI
/// checks look at the node name, `device_type`, `ranges`, `bus-range` and
/// the `interrupt-map` against the GIC's cells). Skipped where `dtc` is not
/// installed.
#[test]
fn dtc_accepts_the_pcie_node_without_warnings() {
    use std::process::Command;

    let with_64 = GuestPci {
        windows: PciWindows {
            mmio64: Some(range(0x40_0000_0000, 1 << 30)),
            ..PciWindows::VIRT
        },
        interrupts: &TWO_DEVICES,
    };
    for (i, pci) in [pci(&TWO_DEVICES), pci(&[]), with_64].iter().enumerate() {
        let dtb = write_dtb_with_pci(&machine(), Some(pci)).unwrap();
        let path =
            std::env::temp_dir().join(format!("guest-boot-pci-dtc-{}-{i}.dtb", std::process::id()));
        std::fs::write(&path, &dtb).unwrap();
        let out = Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts", "-o", "-"])
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let out = match out {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("skipped: dtc is not on PATH");
                return;
            }
            Err(e) => panic!("running dtc: {e}"),
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dtc failed: {stderr}");
        assert!(stderr.trim().is_empty(), "dtc warned:\n{stderr}");
        let dts = String::from_utf8_lossy(&out.stdout);
        assert!(dts.contains("pcie@3f000000 {"), "{dts}");
    }
}

fn window() -> impl Strategy<Value = Option<IpaRange>> {
    prop_oneof![
        2 => (0u64..(1 << 20), 1u64..(1 << 12)).prop_map(|(page, pages)| {
            IpaRange::new(IntermediatePhysAddr(page << 12), pages << 12)
        }),
        1 => (any::<u64>(), any::<u64>())
            .prop_map(|(start, size)| IpaRange::new(IntermediatePhysAddr(start), size)),
    ]
}

proptest! {
    /// Whatever the layout and interrupts, the writer returns a blob that
    /// parses, with the node, or an error; it never panics.
    #[test]
    fn pcie_writer_never_panics(
        ecam in prop_oneof![Just(Some(virt::PCIE_ECAM)), window()],
        mmio32 in prop_oneof![Just(Some(virt::PCIE_MMIO)), window()],
        mmio64 in proptest::option::of(window()),
        irqs in proptest::collection::vec((0u8..40, 1u8..=4, 0u32..100), 0..8),
    ) {
        let (Some(ecam), Some(mmio32)) = (ecam, mmio32) else {
            return Ok(());
        };
        let Some(mmio64) = mmio64.map_or(Some(None), |w| w.map(Some)) else {
            return Ok(());
        };
        let interrupts: Vec<_> = irqs
            .into_iter()
            .map(|(device, pin, n)| PciInterrupt {
                device,
                pin: IntxPin::from_register(pin).unwrap(),
                spi: spi(n),
            })
            .collect();
        let pci = GuestPci { windows: PciWindows { ecam, mmio32, mmio64 }, interrupts: &interrupts };
        match write_dtb_with_pci(&machine(), Some(&pci)) {
            Ok(dtb) => {
                let fdt = Fdt::new(&dtb).unwrap();
                let name = format!("/pcie@{:x}", ecam.start().get());
                let pcie = fdt.find_node(&name).unwrap();
                let map = pcie.property("interrupt-map").map_or(0, |p| p.value.len());
                prop_assert_eq!(map, interrupts.len() * 8 * 4);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
