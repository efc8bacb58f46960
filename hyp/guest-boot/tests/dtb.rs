//! The guest device tree, read back with the `fdt` crate, and the MPIDR
//! numbering.

use fdt::node::FdtNode;
use fdt::Fdt;
use guest_boot::{
    mpidr_of, vcpu_of, virt, vmpidr_el2_of, write_dtb, DtbError, GuestMachine,
    IntermediatePhysAddr, IpaRange, GUEST_DTB_MAX, MAX_BOOTARGS_LEN, MAX_VCPUS,
};

fn range(start: u64, size: u64) -> IpaRange {
    IpaRange::new(IntermediatePhysAddr(start), size).unwrap()
}

fn machine() -> GuestMachine<'static> {
    GuestMachine {
        ram: range(0x4000_0000, 256 << 20),
        vcpus: 4,
        bootargs: "console=ttyAMA0 earlycon rdinit=/init",
        initrd: Some(range(0x4fcd_c000, 0x12_3456)),
        uart: true,
    }
}

fn node<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> FdtNode<'b, 'a> {
    fdt.find_node(path)
        .unwrap_or_else(|| panic!("no node {path}"))
}

fn raw<'a>(node: FdtNode<'_, 'a>, name: &str) -> &'a [u8] {
    node.property(name)
        .unwrap_or_else(|| panic!("{} has no {name}", node.name))
        .value
}

fn cells(node: FdtNode<'_, '_>, name: &str) -> Vec<u32> {
    let bytes = raw(node, name);
    assert_eq!(bytes.len() % 4, 0, "{name} is not whole cells");
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

fn u64s(node: FdtNode<'_, '_>, name: &str) -> Vec<u64> {
    cells(node, name)
        .chunks_exact(2)
        .map(|c| u64::from(c[0]) << 32 | u64::from(c[1]))
        .collect()
}

fn strings(node: FdtNode<'_, '_>, name: &str) -> Vec<String> {
    let bytes = raw(node, name);
    assert_eq!(bytes.last(), Some(&0), "{name} is not NUL-terminated");
    bytes[..bytes.len() - 1]
        .split(|&b| b == 0)
        .map(|s| String::from_utf8(s.to_vec()).unwrap())
        .collect()
}

fn string(node: FdtNode<'_, '_>, name: &str) -> String {
    let mut all = strings(node, name);
    assert_eq!(all.len(), 1, "{name} has {all:?}");
    all.remove(0)
}

fn is_empty_property(node: FdtNode<'_, '_>, name: &str) -> bool {
    raw(node, name).is_empty()
}

fn child_names(node: FdtNode<'_, '_>) -> Vec<String> {
    node.children().map(|c| c.name.to_string()).collect()
}

#[test]
fn full_machine_has_every_node_and_property() {
    let m = machine();
    let dtb = write_dtb(&m).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    assert_eq!(fdt.total_size(), dtb.len());

    let root = node(&fdt, "/");
    let slots: Vec<String> = (0..32)
        .map(|i| format!("virtio_mmio@{:x}", 0x0a00_0000 + i * 0x200))
        .collect();
    let mut expected: Vec<&str> = vec![
        "memory@40000000",
        "cpus",
        "psci",
        "timer",
        "intc@8000000",
        "apb-pclk",
        "pl011@9000000",
        "aliases",
    ];
    expected.extend(slots.iter().map(String::as_str));
    expected.push("chosen");
    assert_eq!(child_names(root), expected);
    let last = node(&fdt, "/virtio_mmio@a003e00");
    assert_eq!(strings(last, "compatible"), ["virtio,mmio"]);
    assert_eq!(u64s(last, "reg"), [0x0a00_3e00, 0x200]);
    // Edge, as on QEMU's virt.
    assert_eq!(cells(last, "interrupts"), [0, 47, 1]);
    assert!(last.property("dma-coherent").is_some());
    assert_eq!(strings(root, "compatible"), ["linux,dummy-virt"]);
    assert_eq!(string(root, "model"), "linux,dummy-virt");
    assert_eq!(cells(root, "#address-cells"), [2]);
    assert_eq!(cells(root, "#size-cells"), [2]);
    let intc = node(&fdt, "/intc@8000000");
    assert_eq!(cells(root, "interrupt-parent"), cells(intc, "phandle"));

    let memory = node(&fdt, "/memory@40000000");
    assert_eq!(string(memory, "device_type"), "memory");
    assert_eq!(u64s(memory, "reg"), [0x4000_0000, 256 << 20]);
    let regions: Vec<_> = fdt.memory().regions().collect();
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[0].starting_address as u64, 0x4000_0000);
    assert_eq!(regions[0].size, Some(256 << 20));

    let cpus = node(&fdt, "/cpus");
    assert_eq!(cells(cpus, "#address-cells"), [1]);
    assert_eq!(cells(cpus, "#size-cells"), [0]);
    assert_eq!(child_names(cpus), ["cpu@0", "cpu@1", "cpu@2", "cpu@3"]);
    for (i, cpu) in cpus.children().enumerate() {
        assert_eq!(string(cpu, "device_type"), "cpu");
        assert_eq!(strings(cpu, "compatible"), ["arm,arm-v8"]);
        assert_eq!(cells(cpu, "reg"), [mpidr_of(i as u32) as u32]);
        assert_eq!(string(cpu, "enable-method"), "psci");
    }

    let psci = node(&fdt, "/psci");
    assert_eq!(
        strings(psci, "compatible"),
        ["arm,psci-1.0", "arm,psci-0.2"]
    );
    assert_eq!(string(psci, "method"), "hvc");

    let timer = node(&fdt, "/timer");
    assert_eq!(strings(timer, "compatible"), ["arm,armv8-timer"]);
    assert_eq!(
        cells(timer, "interrupts"),
        [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
    );
    assert!(is_empty_property(timer, "always-on"));

    assert_eq!(strings(intc, "compatible"), ["arm,gic-v3"]);
    assert_eq!(cells(intc, "#interrupt-cells"), [3]);
    assert!(is_empty_property(intc, "interrupt-controller"));
    assert_eq!(cells(intc, "#address-cells"), [0]);
    assert_eq!(
        u64s(intc, "reg"),
        [0x0800_0000, 0x1_0000, 0x080A_0000, 4 * 0x2_0000]
    );
    assert_eq!(cells(intc, "#redistributor-regions"), [1]);
    assert_eq!(
        fdt.find_phandle(cells(intc, "phandle")[0]).unwrap().name,
        "intc@8000000"
    );

    let clock = node(&fdt, "/apb-pclk");
    assert_eq!(strings(clock, "compatible"), ["fixed-clock"]);
    assert_eq!(cells(clock, "#clock-cells"), [0]);
    assert_eq!(cells(clock, "clock-frequency"), [24_000_000]);
    let clock_phandle = cells(clock, "phandle")[0];
    assert_ne!(clock_phandle, cells(intc, "phandle")[0]);

    let uart = node(&fdt, "/pl011@9000000");
    assert_eq!(strings(uart, "compatible"), ["arm,pl011", "arm,primecell"]);
    assert_eq!(u64s(uart, "reg"), [0x0900_0000, 0x1000]);
    assert_eq!(cells(uart, "interrupts"), [0, 1, 4]);
    assert_eq!(cells(uart, "clocks"), [clock_phandle, clock_phandle]);
    assert_eq!(strings(uart, "clock-names"), ["uartclk", "apb_pclk"]);
    assert_eq!(
        fdt.aliases().unwrap().resolve("serial0"),
        Some("/pl011@9000000")
    );

    let chosen = node(&fdt, "/chosen");
    assert_eq!(fdt.chosen().bootargs(), Some(m.bootargs));
    assert_eq!(string(chosen, "stdout-path"), "/pl011@9000000");
    assert_eq!(fdt.chosen().stdout().unwrap().name, "pl011@9000000");
    assert_eq!(u64s(chosen, "linux,initrd-start"), [0x4fcd_c000]);
    assert_eq!(u64s(chosen, "linux,initrd-end"), [0x4fcd_c000 + 0x12_3456]);
}

#[test]
fn machine_without_uart_initrd_or_bootargs_leaves_them_out() {
    let m = GuestMachine {
        bootargs: "",
        initrd: None,
        uart: false,
        vcpus: 1,
        ..machine()
    };
    let dtb = write_dtb(&m).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    let names = child_names(node(&fdt, "/"));
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("pl011") || n == "aliases"),
        "{names:?}"
    );
    let chosen = node(&fdt, "/chosen");
    assert_eq!(chosen.properties().count(), 0);
    assert_eq!(child_names(node(&fdt, "/cpus")), ["cpu@0"]);
    assert_eq!(
        u64s(node(&fdt, "/intc@8000000"), "reg")[2..],
        [0x080A_0000, 0x2_0000]
    );
}

#[test]
fn ram_elsewhere_names_the_memory_node_after_its_base() {
    let m = GuestMachine {
        ram: range(0x1_0000_0000, 1 << 30),
        initrd: None,
        ..machine()
    };
    let dtb = write_dtb(&m).unwrap();
    let fdt = Fdt::new(&dtb).unwrap();
    assert_eq!(
        u64s(node(&fdt, "/memory@100000000"), "reg"),
        [0x1_0000_0000, 1 << 30]
    );
}

#[test]
fn largest_machine_fits_the_advertised_bound() {
    let bootargs = "x".repeat(MAX_BOOTARGS_LEN);
    let m = GuestMachine {
        vcpus: MAX_VCPUS,
        bootargs: &bootargs,
        ..machine()
    };
    let dtb = write_dtb(&m).unwrap();
    assert!(dtb.len() <= GUEST_DTB_MAX, "{} bytes", dtb.len());
    let fdt = Fdt::new(&dtb).unwrap();
    let cpus = node(&fdt, "/cpus");
    assert_eq!(cpus.children().count(), MAX_VCPUS as usize);
    assert_eq!(
        u64s(node(&fdt, "/intc@8000000"), "reg")[3],
        u64::from(MAX_VCPUS) * virt::GICR_STRIDE
    );
    assert_eq!(fdt.chosen().bootargs(), Some(bootargs.as_str()));
}

#[test]
fn vcpu_count_outside_1_to_max_is_refused() {
    for vcpus in [0, MAX_VCPUS + 1, u32::MAX] {
        let err = write_dtb(&GuestMachine { vcpus, ..machine() }).unwrap_err();
        assert_eq!(err, DtbError::VcpuCount { vcpus });
    }
    assert_eq!(
        DtbError::VcpuCount { vcpus: 9 }.to_string(),
        "guest has 9 vCPUs; 1 to 8 are supported"
    );
}

#[test]
fn bad_ram_is_refused() {
    let empty = GuestMachine {
        ram: range(0x4000_0000, 0),
        initrd: None,
        ..machine()
    };
    assert_eq!(write_dtb(&empty), Err(DtbError::RamEmpty));
    let low = range(0x3000_0000, 1 << 30);
    let err = write_dtb(&GuestMachine {
        ram: low,
        initrd: None,
        ..machine()
    })
    .unwrap_err();
    assert_eq!(err, DtbError::RamOverlapsDeviceWindow { ram: low });
    assert_eq!(
        err.to_string(),
        "guest RAM [0x30000000..0x70000000) overlaps the device window [0x0..0x40000000)"
    );
}

#[test]
fn bad_initrd_is_refused() {
    let m = machine();
    assert_eq!(
        write_dtb(&GuestMachine {
            initrd: Some(range(0x4800_0000, 0)),
            ..m
        }),
        Err(DtbError::InitrdEmpty)
    );
    for outside in [range(0x3fff_f000, 0x2000), range(0x4fff_f000, 0x2000)] {
        let err = write_dtb(&GuestMachine {
            initrd: Some(outside),
            ..m
        })
        .unwrap_err();
        assert_eq!(
            err,
            DtbError::InitrdOutsideRam {
                initrd: outside,
                ram: m.ram
            }
        );
    }
    assert_eq!(
        DtbError::InitrdOutsideRam {
            initrd: range(0x4fff_f000, 0x2000),
            ram: m.ram
        }
        .to_string(),
        "initrd [0x4ffff000..0x50001000) is not inside guest RAM [0x40000000..0x50000000)"
    );
}

#[test]
fn bad_bootargs_are_refused() {
    let long = "y".repeat(MAX_BOOTARGS_LEN + 1);
    assert_eq!(
        write_dtb(&GuestMachine {
            bootargs: &long,
            ..machine()
        }),
        Err(DtbError::BootargsTooLong {
            len: MAX_BOOTARGS_LEN + 1
        })
    );
    let err = write_dtb(&GuestMachine {
        bootargs: "console=ttyAMA0\0init=/evil",
        ..machine()
    })
    .unwrap_err();
    assert_eq!(err, DtbError::BootargsContainsNul { offset: 15 });
    assert_eq!(err.to_string(), "command line has a NUL byte at offset 15");
}

#[test]
fn mpidr_numbering_is_kvms() {
    assert_eq!(mpidr_of(0), 0);
    assert_eq!(mpidr_of(7), 7);
    assert_eq!(mpidr_of(15), 0xf);
    assert_eq!(mpidr_of(16), 0x100);
    assert_eq!(mpidr_of(17), 0x101);
    assert_eq!(mpidr_of(0x1000), 0x1_0000);
    assert_eq!(mpidr_of(0x10_0000), 0x1_0000_0000);
    assert_eq!(vmpidr_el2_of(3), 0x8000_0003);
}

#[test]
fn vcpu_of_inverts_mpidr_of_and_refuses_the_rest() {
    for i in 0..64 {
        assert_eq!(vcpu_of(mpidr_of(i), 64), Some(i));
    }
    assert_eq!(vcpu_of(0x1_0000_0000, 0x10_0001), Some(0x10_0000));
    // Past the vCPU count.
    assert_eq!(vcpu_of(4, 4), None);
    assert_eq!(vcpu_of(0x100, 16), None);
    // Aff0 of 16 or more names no vCPU.
    assert_eq!(vcpu_of(0x10, 1000), None);
    // Bits PSCI says must be zero: RES1 bit 31, U, MT, bits 40 and up.
    for bit in [24, 30, 31, 40, 63] {
        assert_eq!(vcpu_of(1 << bit, MAX_VCPUS), None, "bit {bit}");
    }
    assert_eq!(vcpu_of(vmpidr_el2_of(1), MAX_VCPUS), None);
}

/// `dtc` decompiles the blob without a warning. Skipped (with a message)
/// where `dtc` is not installed.
#[test]
fn dtc_accepts_the_tree_without_warnings() {
    use std::process::Command;

    let bootargs = "console=ttyAMA0";
    for m in [
        machine(),
        GuestMachine {
            vcpus: MAX_VCPUS,
            uart: false,
            initrd: None,
            bootargs,
            ..machine()
        },
    ] {
        let dtb = write_dtb(&m).unwrap();
        let path = std::env::temp_dir().join(format!(
            "guest-boot-dtc-{}-{}.dtb",
            std::process::id(),
            m.vcpus
        ));
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
        assert!(dts.contains("compatible = \"arm,gic-v3\";"), "{dts}");
    }
}
