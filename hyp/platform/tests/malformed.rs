//! Device trees that must be refused, each with its exact error.

mod common;

use common::*;
use platform::{DtError, Interrupt, NodeName, Platform};

fn parse(dtb: &[u8]) -> Result<Platform, DtError> {
    Platform::from_dtb(dtb)
}

fn bad_property(node: &str, property: &'static str) -> DtError {
    DtError::BadProperty {
        node: name(node),
        property,
    }
}

fn name(node: &str) -> NodeName {
    NodeName::new(node)
}

fn node_without_reg(w: &mut vm_fdt::FdtWriter, node_name: &str) {
    node(w, node_name, |w| {
        w.property_string("device_type", "memory").unwrap();
    });
}

#[test]
fn required_nodes_alone_parse() {
    let p = parse(&dtb(required)).unwrap();
    assert_eq!(p.cpus.len(), 4);
    assert_eq!(p.uart, None);
    assert_eq!(p.psci, None);
    assert_eq!(p.timer, None);
}

#[test]
fn missing_memory_node_is_no_memory() {
    let err = parse(&dtb(|w| {
        cpus(w, 1);
        gic(w);
    }))
    .unwrap_err();
    assert_eq!(err, DtError::NoMemory);
    assert_eq!(
        err.to_string(),
        r#"device tree: no memory node (device_type = "memory")"#
    );
}

#[test]
fn memory_node_with_only_empty_regions_is_no_memory() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0)]);
        cpus(w, 1);
        gic(w);
    }));
    assert_eq!(err, Err(DtError::NoMemory));
}

#[test]
fn disabled_memory_node_is_no_memory() {
    let err = parse(&dtb(|w| {
        node(w, "memory@40000000", |w| {
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u64("reg", &[0x4000_0000, 0x1000_0000])
                .unwrap();
            w.property_string("status", "disabled").unwrap();
        });
        cpus(w, 1);
        gic(w);
    }));
    assert_eq!(err, Err(DtError::NoMemory));
}

#[test]
fn missing_cpus_node_is_no_cpus() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        gic(w);
    }))
    .unwrap_err();
    assert_eq!(err, DtError::NoCpus);
    assert_eq!(err.to_string(), "device tree: no CPU nodes under /cpus");
}

#[test]
fn empty_cpus_node_is_no_cpus() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 0);
        gic(w);
    }));
    assert_eq!(err, Err(DtError::NoCpus));
}

#[test]
fn missing_gic_is_no_gic() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 1);
    }))
    .unwrap_err();
    assert_eq!(err, DtError::NoGic);
    assert_eq!(
        err.to_string(),
        r#"device tree: no GICv3 interrupt controller (compatible = "arm,gic-v3")"#
    );
}

#[test]
fn gicv2_only_is_no_gic() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 1);
        node(w, "intc@8000000", |w| {
            w.property_string("compatible", "arm,cortex-a15-gic")
                .unwrap();
            w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x801_0000, 0x1_0000])
                .unwrap();
        });
    }));
    assert_eq!(err, Err(DtError::NoGic));
}

#[test]
fn gic_with_one_reg_entry_is_bad_reg_property() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 1);
        node(w, "intc@8000000", |w| {
            w.property_string("compatible", "arm,gic-v3").unwrap();
            w.property_array_u64("reg", &[0x800_0000, 0x1_0000])
                .unwrap();
            w.property_u32("#interrupt-cells", 3).unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("intc@8000000", "reg")));
}

#[test]
fn seventeen_cpus_is_too_many_cpus() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 17);
        gic(w);
    }))
    .unwrap_err();
    assert_eq!(err, DtError::TooManyCpus(17));
    assert_eq!(
        err.to_string(),
        "device tree: 17 CPU nodes, at most 16 supported"
    );
}

#[test]
fn sixteen_cpus_fit() {
    let p = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 16);
        gic(w);
    }))
    .unwrap();
    assert_eq!(p.cpus.len(), 16);
    assert_eq!(p.cpus[15].mpidr.get(), 15);
}

#[test]
fn nine_memory_regions_is_too_many_memory_regions() {
    let regions: Vec<_> = (0..9u64)
        .map(|i| (0x4000_0000 + (i << 28), 1 << 28))
        .collect();
    let err = parse(&dtb(|w| {
        memory(w, &regions);
        cpus(w, 1);
        gic(w);
    }));
    assert_eq!(err, Err(DtError::TooManyMemoryRegions(9)));
}

#[test]
fn memory_regions_from_several_nodes_are_kept_in_order() {
    let p = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000), (0x6000_0000, 0x1000)]);
        memory(w, &[(0x1_0000_0000, 0x2000_0000)]);
        cpus(w, 1);
        gic(w);
    }))
    .unwrap();
    let got: Vec<_> = p.memory.iter().map(|r| r.as_u64_range()).collect();
    assert_eq!(
        got,
        [
            0x4000_0000..0x5000_0000,
            0x6000_0000..0x6000_1000,
            0x1_0000_0000..0x1_2000_0000
        ]
    );
}

#[test]
fn seventeen_reservations_is_too_many_reserved() {
    let reservations: Vec<_> = (0..17u64)
        .map(|i| (0x4000_0000 + i * 0x1000, 0x1000))
        .collect();
    let err = parse(&dtb_with_reservations(&reservations, required));
    assert_eq!(err, Err(DtError::TooManyReserved(17)));
}

#[test]
fn memreserve_and_reserved_memory_children_are_reserved() {
    let p = parse(&dtb_with_reservations(&[(0x4800_0000, 0x1000)], |w| {
        required(w);
        node(w, "reserved-memory", |w| {
            w.property_u32("#address-cells", 2).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            w.property_null("ranges").unwrap();
            node(w, "secmon@5e000000", |w| {
                w.property_array_u64("reg", &[0x5e00_0000, 0x20_0000])
                    .unwrap();
                w.property_null("no-map").unwrap();
            });
            // Dynamically placed: no reg, nothing fixed to reserve.
            node(w, "linux,cma", |w| {
                w.property_string("compatible", "shared-dma-pool").unwrap();
                w.property_u64("size", 0x400_0000).unwrap();
            });
        });
    }))
    .unwrap();
    let got: Vec<_> = p.reserved.iter().map(|r| r.as_u64_range()).collect();
    assert_eq!(got, [0x4800_0000..0x4800_1000, 0x5e00_0000..0x5e20_0000]);
}

#[test]
fn memory_reg_of_three_cells_is_bad_reg_naming_the_node() {
    let err = parse(&dtb(|w| {
        node(w, "memory@40000000", |w| {
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u32("reg", &[0, 0x4000_0000, 0x1000_0000])
                .unwrap();
        });
        cpus(w, 1);
        gic(w);
    }))
    .unwrap_err();
    assert_eq!(
        err,
        DtError::BadReg {
            node: name("memory@40000000"),
            len: 12,
            address_cells: 2,
            size_cells: 2,
        }
    );
    assert!(err.to_string().contains("memory@40000000"), "{err}");
}

#[test]
fn memory_without_reg_is_missing_reg() {
    let err = parse(&dtb(|w| {
        node_without_reg(w, "memory@0");
        cpus(w, 1);
        gic(w);
    }))
    .unwrap_err();
    assert!(matches!(&err, DtError::MissingReg { node } if node.as_str() == "memory@0"));
    assert_eq!(
        err.to_string(),
        "device tree: node memory@0 has no reg property"
    );
}

#[test]
fn cpu_reg_wider_than_address_cells_is_bad_reg() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        node(w, "cpus", |w| {
            w.property_u32("#address-cells", 1).unwrap();
            w.property_u32("#size-cells", 0).unwrap();
            node(w, "cpu@0", |w| {
                w.property_string("device_type", "cpu").unwrap();
                w.property_u64("reg", 0).unwrap();
            });
        });
        gic(w);
    }));
    assert_eq!(
        err,
        Err(DtError::BadReg {
            node: name("cpu@0"),
            len: 8,
            address_cells: 1,
            size_cells: 0,
        })
    );
}

#[test]
fn memory_reaching_past_the_top_of_the_address_space_is_address_overflow() {
    let err = parse(&dtb(|w| {
        memory(w, &[(0xffff_ffff_ffff_f000, 0x2000)]);
        cpus(w, 1);
        gic(w);
    }));
    assert_eq!(
        err,
        Err(DtError::AddressOverflow {
            node: name("memory@fffffffffffff000")
        })
    );
}

#[test]
fn bootargs_of_600_bytes_is_too_long() {
    let long = "x".repeat(600);
    let err = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| w.property_string("bootargs", &long).unwrap());
    }))
    .unwrap_err();
    assert_eq!(err, DtError::BootargsTooLong(600));
    assert_eq!(
        err.to_string(),
        "device tree: /chosen bootargs is 600 bytes, at most 512 supported"
    );
}

#[test]
fn bootargs_of_512_bytes_fit() {
    let exact = "y".repeat(512);
    let p = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| w.property_string("bootargs", &exact).unwrap());
    }))
    .unwrap();
    assert_eq!(p.bootargs.as_str(), exact);
}

#[test]
fn bootargs_without_terminating_nul_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| w.property("bootargs", b"quiet").unwrap());
    }));
    assert_eq!(err, Err(bad_property("chosen", "bootargs")));
}

#[test]
fn initrd_end_before_start_is_refused() {
    let err = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| {
            w.property_u64("linux,initrd-start", 0x4800_0000).unwrap();
            w.property_u64("linux,initrd-end", 0x47ff_0000).unwrap();
        });
    }))
    .unwrap_err();
    assert_eq!(
        err,
        DtError::InitrdEndBeforeStart {
            start: 0x4800_0000,
            end: 0x47ff_0000
        }
    );
    assert_eq!(
        err.to_string(),
        "device tree: /chosen linux,initrd-end 0x47ff0000 is below linux,initrd-start 0x48000000"
    );
}

#[test]
fn initrd_with_32_bit_cells_is_read() {
    let p = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| {
            w.property_u32("linux,initrd-start", 0x4800_0000).unwrap();
            w.property_u32("linux,initrd-end", 0x4810_0000).unwrap();
        });
    }))
    .unwrap();
    assert_eq!(
        p.initrd.map(|r| r.as_u64_range()),
        Some(0x4800_0000..0x4810_0000)
    );
}

#[test]
fn initrd_start_without_end_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| {
            w.property_u64("linux,initrd-start", 0x4800_0000).unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("chosen", "linux,initrd-end")));
}

#[test]
fn initrd_start_of_three_bytes_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        chosen(w, |w| {
            w.property("linux,initrd-start", &[1, 2, 3]).unwrap();
            w.property_u64("linux,initrd-end", 0x4800_0000).unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("chosen", "linux,initrd-start")));
}

#[test]
fn psci_with_unknown_method_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "psci", |w| {
            w.property_string("compatible", "arm,psci-1.0").unwrap();
            w.property_string("method", "svc").unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("psci", "method")));
}

#[test]
fn psci_over_hvc_is_read() {
    let p = parse(&dtb(|w| {
        required(w);
        node(w, "psci", |w| {
            w.property_string_list("compatible", vec!["arm,psci-0.2".into(), "arm,psci".into()])
                .unwrap();
            w.property_string("method", "hvc").unwrap();
        });
    }))
    .unwrap();
    assert_eq!(p.psci, Some(platform::PsciConduit::Hvc));
}

#[test]
fn stdout_path_alias_with_options_picks_that_uart() {
    let p = parse(&dtb(|w| {
        required(w);
        pl011(w, 0x900_0000);
        pl011(w, 0x904_0000);
        node(w, "aliases", |w| {
            w.property_string("serial1", "/pl011@9040000").unwrap();
        });
        chosen(w, |w| {
            w.property_string("stdout-path", "serial1:115200n8")
                .unwrap()
        });
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().regs.start().get(), 0x904_0000);
}

#[test]
fn stdout_path_without_unit_address_matches_by_name() {
    let p = parse(&dtb(|w| {
        required(w);
        pl011(w, 0x900_0000);
        node(w, "soc", |w| {
            w.property_u32("#address-cells", 2).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            w.property_null("ranges").unwrap();
            pl011(w, 0x904_0000);
        });
        chosen(w, |w| {
            w.property_string("stdout-path", "/soc/pl011").unwrap()
        });
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().regs.start().get(), 0x904_0000);
}

#[test]
fn stdout_path_to_missing_node_falls_back_to_first_uart() {
    let p = parse(&dtb(|w| {
        required(w);
        pl011(w, 0x900_0000);
        pl011(w, 0x904_0000);
        chosen(w, |w| {
            w.property_string("stdout-path", "/nowhere:9600").unwrap()
        });
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().regs.start().get(), 0x900_0000);
}

#[test]
fn alias_naming_itself_does_not_loop() {
    let p = parse(&dtb(|w| {
        required(w);
        pl011(w, 0x900_0000);
        node(w, "aliases", |w| {
            w.property_string("serial0", "serial0").unwrap();
        });
        chosen(w, |w| w.property_string("stdout-path", "serial0").unwrap());
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().regs.start().get(), 0x900_0000);
}

#[test]
fn reg_is_translated_through_parent_ranges() {
    let p = parse(&dtb(|w| {
        required(w);
        node(w, "bus@9000000", |w| {
            w.property_string("compatible", "simple-bus").unwrap();
            w.property_u32("#address-cells", 1).unwrap();
            w.property_u32("#size-cells", 1).unwrap();
            // child 0x0..0x10000 -> CPU 0x9000000
            w.property_array_u32("ranges", &[0, 0, 0x900_0000, 0x1_0000])
                .unwrap();
            node(w, "serial@1000", |w| {
                w.property_string("compatible", "arm,pl011").unwrap();
                w.property_array_u32("reg", &[0x1000, 0x1000]).unwrap();
            });
        });
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().regs.as_u64_range(), 0x900_1000..0x900_2000);
}

#[test]
fn device_under_a_bus_without_ranges_is_untranslatable() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "bus", |w| {
            w.property_u32("#address-cells", 1).unwrap();
            w.property_u32("#size-cells", 1).unwrap();
            node(w, "serial@1000", |w| {
                w.property_string("compatible", "arm,pl011").unwrap();
                w.property_array_u32("reg", &[0x1000, 0x1000]).unwrap();
            });
        });
    }));
    assert_eq!(
        err,
        Err(DtError::Untranslatable {
            node: name("serial@1000")
        })
    );
}

#[test]
fn device_outside_its_bus_window_is_untranslatable() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "bus", |w| {
            w.property_u32("#address-cells", 1).unwrap();
            w.property_u32("#size-cells", 1).unwrap();
            w.property_array_u32("ranges", &[0, 0, 0x900_0000, 0x1000])
                .unwrap();
            // Starts inside the window but runs past its end.
            node(w, "serial@800", |w| {
                w.property_string("compatible", "arm,pl011").unwrap();
                w.property_array_u32("reg", &[0x800, 0x1000]).unwrap();
            });
        });
    }));
    assert_eq!(
        err,
        Err(DtError::Untranslatable {
            node: name("serial@800")
        })
    );
}

#[test]
fn ranges_of_wrong_length_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "bus", |w| {
            w.property_u32("#address-cells", 1).unwrap();
            w.property_u32("#size-cells", 1).unwrap();
            w.property_array_u32("ranges", &[0, 0, 0x900_0000]).unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("bus", "ranges")));
}

#[test]
fn timer_with_three_interrupts_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "timer", |w| {
            w.property_string("compatible", "arm,armv8-timer").unwrap();
            w.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4])
                .unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("timer", "interrupts")));
}

#[test]
fn timer_ppi_number_above_15_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "timer", |w| {
            w.property_string("compatible", "arm,armv8-timer").unwrap();
            w.property_array_u32("interrupts", &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 16, 4])
                .unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("timer", "interrupts")));
}

#[test]
fn pcie_bus_range_beyond_the_ecam_window_is_bad_property() {
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "pcie@10000000", |w| {
            w.property_string("compatible", "pci-host-ecam-generic")
                .unwrap();
            w.property_u32("#address-cells", 3).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            // 16 MiB of ECAM covers 16 buses, not 256.
            w.property_array_u64("reg", &[0x40_1000_0000, 0x100_0000])
                .unwrap();
            w.property_array_u32("bus-range", &[0, 0xff]).unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("pcie@10000000", "bus-range")));
}

#[test]
fn nine_pci_windows_is_too_many() {
    let mut ranges = Vec::new();
    for i in 0..9u32 {
        // phys.hi = 32-bit memory, PCI address = CPU address, 1 MiB each.
        let addr = 0x1000_0000 + (i << 20);
        ranges.extend([0x0200_0000, 0, addr, 0, addr, 0, 0x10_0000]);
    }
    let err = parse(&dtb(|w| {
        required(w);
        node(w, "pcie@10000000", |w| {
            w.property_string("compatible", "pci-host-ecam-generic")
                .unwrap();
            w.property_u32("#address-cells", 3).unwrap();
            w.property_u32("#size-cells", 2).unwrap();
            w.property_array_u64("reg", &[0x40_1000_0000, 0x1000_0000])
                .unwrap();
            w.property_array_u32("ranges", &ranges).unwrap();
        });
    }));
    assert_eq!(err, Err(DtError::TooManyPciWindows(9)));
}

#[test]
fn spi_number_988_is_not_an_intid_and_is_refused() {
    use platform::Interrupt;
    assert_eq!(Interrupt::Spi(987).intid(), Some(1019));
    assert_eq!(Interrupt::Spi(988).intid(), None);
    assert_eq!(Interrupt::Ppi(16).intid(), None);
    let err = parse(&dtb(|w| {
        memory(w, &[(0x4000_0000, 0x1000_0000)]);
        cpus(w, 1);
        node(w, "intc@8000000", |w| {
            w.property_string("compatible", "arm,gic-v3").unwrap();
            w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x80a_0000, 0xf6_0000])
                .unwrap();
            w.property_u32("#interrupt-cells", 3).unwrap();
            w.property_array_u32("interrupts", &[0, 988, 4]).unwrap();
        });
    }));
    assert_eq!(err, Err(bad_property("intc@8000000", "interrupts")));
}

#[test]
fn uart_interrupt_is_read_and_a_bad_one_is_none() {
    let p = parse(&dtb(|w| {
        required(w);
        node(w, "pl011@9000000", |w| {
            w.property_string("compatible", "arm,pl011").unwrap();
            w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
            w.property_array_u32("interrupts", &[0, 1, 4]).unwrap();
        });
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().interrupt, Some(Interrupt::Spi(1)));

    let p = parse(&dtb(|w| {
        required(w);
        node(w, "pl011@9000000", |w| {
            w.property_string("compatible", "arm,pl011").unwrap();
            w.property_array_u64("reg", &[0x900_0000, 0x1000]).unwrap();
            w.property_array_u32("interrupts", &[0, 1]).unwrap();
        });
    }))
    .unwrap();
    assert_eq!(p.uart.unwrap().interrupt, None);
}
