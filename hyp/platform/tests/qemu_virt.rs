//! Device trees QEMU itself generated (see `data/README.md`).

use platform::{
    bootargs, Cpu, EnableMethod, Interrupt, Mpidr, PciSpace, PhysAddr, PhysRange, Platform,
    PsciConduit,
};

const SMP4: &[u8] = include_bytes!("data/qemu-virt-smp4.dtb");
const SMP4_INITRD: &[u8] = include_bytes!("data/qemu-virt-smp4-initrd.dtb");

fn range(start: u64, size: u64) -> PhysRange {
    PhysRange::new(PhysAddr(start), size).unwrap()
}

#[test]
fn qemu_virt_smp4_has_four_psci_cpus() {
    let p = Platform::from_dtb(SMP4).unwrap();
    let expected: Vec<Cpu> = (0..4)
        .map(|i| Cpu {
            mpidr: Mpidr(i),
            enable_method: EnableMethod::Psci,
        })
        .collect();
    assert_eq!(p.cpus.as_slice(), expected.as_slice());
}

#[test]
fn qemu_virt_smp4_has_4gib_of_memory_at_1gib_and_nothing_reserved() {
    let p = Platform::from_dtb(SMP4).unwrap();
    assert_eq!(p.memory.as_slice(), [range(0x4000_0000, 4 << 30)]);
    assert!(p.reserved.is_empty());
}

#[test]
fn qemu_virt_smp4_gic_matches_the_virt_memory_map() {
    let gic = Platform::from_dtb(SMP4).unwrap().gic;
    assert_eq!(gic.distributor, range(0x0800_0000, 0x1_0000));
    assert_eq!(gic.redistributors, range(0x080A_0000, 0xF6_0000));
    // The ITS is a child of the GIC node, reached through its empty `ranges`.
    assert_eq!(gic.its, Some(range(0x0808_0000, 0x2_0000)));
    assert_eq!(gic.maintenance, Some(Interrupt::Ppi(9)));
    assert_eq!(gic.maintenance.unwrap().intid(), Some(25));
}

#[test]
fn qemu_virt_smp4_devices_are_found() {
    let p = Platform::from_dtb(SMP4).unwrap();
    assert_eq!(p.uart.unwrap().regs, range(0x0900_0000, 0x1000));
    assert_eq!(p.smmu.unwrap().regs, range(0x0905_0000, 0x2_0000));
    assert_eq!(p.psci, Some(PsciConduit::Smc));
    let timer = p.timer.unwrap();
    assert_eq!(
        [timer.secure_phys, timer.phys, timer.virt, timer.hyp_phys],
        [13, 14, 11, 10].map(Interrupt::Ppi)
    );
    assert_eq!(timer.hyp_virt, Some(Interrupt::Ppi(12)));
    assert_eq!(timer.virt.intid(), Some(27));
}

#[test]
fn qemu_virt_smp4_uses_the_high_ecam_and_three_pci_windows() {
    let pcie = Platform::from_dtb(SMP4).unwrap().pcie.unwrap();
    assert_eq!(pcie.ecam, range(0x40_1000_0000, 0x1000_0000));
    assert_eq!((pcie.first_bus, pcie.last_bus), (0, 255));
    let windows: Vec<_> = pcie
        .windows
        .iter()
        .map(|w| (w.space, w.prefetchable, w.pci_addr, w.cpu))
        .collect();
    assert_eq!(
        windows,
        [
            (PciSpace::Io, false, 0, range(0x3EFF_0000, 0x1_0000)),
            (
                PciSpace::Mem32,
                false,
                0x1000_0000,
                range(0x1000_0000, 0x2EFF_0000)
            ),
            (
                PciSpace::Mem64,
                false,
                0x80_0000_0000,
                range(0x80_0000_0000, 0x80_0000_0000)
            ),
        ]
    );
}

#[test]
fn qemu_virt_without_kernel_has_no_initrd_or_bootargs() {
    let p = Platform::from_dtb(SMP4).unwrap();
    assert_eq!(p.initrd, None);
    assert_eq!(p.bootargs.as_str(), "");
}

#[test]
fn qemu_virt_with_initrd_reports_bundle_and_bootargs() {
    let p = Platform::from_dtb(SMP4_INITRD).unwrap();
    // The fixture's initrd was 12345 bytes, which QEMU placed at 0x4800_0000.
    assert_eq!(p.initrd, Some(range(0x4800_0000, 12345)));
    assert_eq!(p.bootargs.as_str(), "console=ttyAMA0 hyp.fault=data-abort");
    assert_eq!(bootargs::value(&p.bootargs, "fault"), Some("data-abort"));
}

#[test]
fn trailing_bytes_after_the_blob_are_ignored() {
    // Early boot hands over a generous window around x0, not the exact size.
    let mut padded = SMP4.to_vec();
    padded.resize(SMP4.len() + 4096, 0xAA);
    assert_eq!(
        Platform::from_dtb(&padded).unwrap(),
        Platform::from_dtb(SMP4).unwrap()
    );
}

#[test]
fn total_size_is_read_from_the_header() {
    assert_eq!(platform::dtb_total_size(SMP4).unwrap(), SMP4.len());
    assert_eq!(
        platform::dtb_total_size(&SMP4[..platform::HEADER_SIZE]).unwrap(),
        SMP4.len()
    );
}
