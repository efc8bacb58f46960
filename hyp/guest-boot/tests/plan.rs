//! `LoadPlan::new`: where things go, and every refusal.

mod common;

use common::Header;
use guest_boot::{ImageHeader, IntermediatePhysAddr, IpaRange, LoadPlan, PlanError};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn ipa(a: u64) -> IntermediatePhysAddr {
    IntermediatePhysAddr(a)
}

fn range(start: u64, size: u64) -> IpaRange {
    IpaRange::new(ipa(start), size).unwrap()
}

fn kernel(text_offset: u64, image_size: u64) -> ImageHeader {
    ImageHeader::parse(
        &Header {
            text_offset,
            image_size,
            file_len: 4096,
            ..Header::default()
        }
        .build(),
    )
    .unwrap()
}

fn plan(
    ram: (u64, u64),
    kernel: &ImageHeader,
    initrd: Option<usize>,
    dtb_max: usize,
) -> Result<LoadPlan, PlanError> {
    LoadPlan::new((ipa(ram.0), ram.1), 40, kernel, 4096, initrd, dtb_max)
}

#[test]
fn kernel_at_the_bottom_initrd_and_dtb_at_the_top() {
    let k = kernel(0, 0x2a0_0000);
    let p = plan((0x4000_0000, 256 * MIB), &k, Some(0x12_3456), 0x1_0000).unwrap();
    assert_eq!(p.ram(), range(0x4000_0000, 256 * MIB));
    assert_eq!(p.kernel_load(), ipa(0x4000_0000));
    assert_eq!(p.entry(), ipa(0x4000_0000));
    assert_eq!(p.kernel_end(), ipa(0x42a0_0000));
    assert_eq!(p.kernel(), range(0x4000_0000, 0x2a0_0000));
    assert_eq!(p.dtb_slot(), range(0x4fe0_0000, 2 * MIB));
    assert_eq!(p.dtb(), range(0x4fe0_0000, 0x1_0000));
    assert_eq!(p.initrd(), Some(range(0x4fcd_c000, 0x12_3456)));
}

#[test]
fn text_offset_is_added_to_the_2_mib_base() {
    let k = kernel(0x8_0000, 0x100_0000);
    let p = plan((0x8000_0000, 64 * MIB), &k, None, 4096).unwrap();
    assert_eq!(p.kernel_load(), ipa(0x8008_0000));
    assert_eq!(p.entry(), p.kernel_load());
    assert_eq!(p.kernel_end(), ipa(0x8108_0000));
    assert_eq!(p.initrd(), None);
    assert_eq!(p.dtb(), range(0x83e0_0000, 4096));
}

#[test]
fn page_multiple_initrd_ends_at_the_dtb_slot() {
    let k = kernel(0, 2 * MIB);
    let p = plan((0x4000_0000, 64 * MIB), &k, Some(8 * MIB as usize), 4096).unwrap();
    assert_eq!(p.initrd(), Some(range(0x4360_0000, 8 * MIB)));
    assert_eq!(p.initrd().unwrap().end(), p.dtb_slot().start());
}

#[test]
fn initrd_stays_in_the_kernels_32_gib_window() {
    // 64 GiB of RAM: the DTB goes at the very top, the initrd below the end
    // of the 1 GiB aligned 32 GiB window that starts at the kernel.
    let k = kernel(0, 32 * MIB);
    let p = plan((0x4000_0000, 64 * GIB), &k, Some(MIB as usize), 0x1_0000).unwrap();
    assert_eq!(p.dtb_slot(), range(0x10_4000_0000 - 2 * MIB, 2 * MIB));
    assert_eq!(p.initrd(), Some(range(0x8_4000_0000 - MIB, MIB)));
}

#[test]
fn smallest_fits_are_accepted() {
    // A 2 MiB kernel fits exactly below the DTB slot of 4 MiB of RAM.
    let k = kernel(0, 2 * MIB);
    let p = plan((0x4000_0000, 4 * MIB), &k, None, 2 * MIB as usize).unwrap();
    assert_eq!(p.kernel_end(), p.dtb_slot().start());
    assert_eq!(p.dtb(), p.dtb_slot());
    // RAM ending exactly at the IPA limit.
    let p = LoadPlan::new((ipa(0x4000_0000), 3 * GIB), 32, &k, 4096, None, 4096).unwrap();
    assert_eq!(p.ram().end(), ipa(1 << 32));
}

#[test]
fn unsupported_ipa_size_is_refused() {
    let k = kernel(0, 2 * MIB);
    for bits in [0, 31, 53, 64, u32::MAX] {
        assert_eq!(
            LoadPlan::new((ipa(0x4000_0000), 64 * MIB), bits, &k, 4096, None, 4096),
            Err(PlanError::IpaBitsUnsupported { ipa_bits: bits })
        );
    }
    assert_eq!(
        PlanError::IpaBitsUnsupported { ipa_bits: 53 }.to_string(),
        "IPA size of 53 bits is outside 32..=52"
    );
}

#[test]
fn empty_ram_is_refused() {
    let k = kernel(0, 2 * MIB);
    let err = plan((0x4000_0000, 0), &k, None, 4096).unwrap_err();
    assert_eq!(
        err,
        PlanError::RamEmpty {
            base: ipa(0x4000_0000)
        }
    );
    assert_eq!(err.to_string(), "guest RAM at 0x40000000 has size 0");
}

#[test]
fn misaligned_ram_is_refused() {
    let k = kernel(0, 2 * MIB);
    for (base, size) in [(0x4010_0000, 64 * MIB), (0x4000_0000, 64 * MIB + 4096)] {
        assert_eq!(
            plan((base, size), &k, None, 4096),
            Err(PlanError::RamMisaligned {
                base: ipa(base),
                size
            })
        );
    }
    assert_eq!(
        PlanError::RamMisaligned {
            base: ipa(0x4010_0000),
            size: 0x20_0000
        }
        .to_string(),
        "guest RAM [0x40100000..0x40300000) is not 2 MiB aligned: base and size must be multiples of 0x200000"
    );
}

#[test]
fn ram_in_the_device_window_is_refused() {
    let k = kernel(0, 2 * MIB);
    for (base, size) in [
        (0, 64 * MIB),
        (0x3fe0_0000, 64 * MIB),
        (0x0800_0000, 2 * MIB),
    ] {
        assert_eq!(
            plan((base, size), &k, None, 4096),
            Err(PlanError::RamOverlapsDeviceWindow {
                base: ipa(base),
                size
            })
        );
    }
    assert_eq!(
        PlanError::RamOverlapsDeviceWindow {
            base: ipa(0x3fe0_0000),
            size: 4 * MIB
        }
        .to_string(),
        "guest RAM [0x3fe00000..0x40200000) overlaps the device window [0x0..0x40000000)"
    );
}

#[test]
fn ram_past_the_ipa_space_is_refused() {
    let k = kernel(0, 2 * MIB);
    let err = LoadPlan::new(
        (ipa(0x4000_0000), 3 * GIB + 2 * MIB),
        32,
        &k,
        4096,
        None,
        4096,
    )
    .unwrap_err();
    assert_eq!(
        err,
        PlanError::RamBeyondIpaLimit {
            base: ipa(0x4000_0000),
            size: 3 * GIB + 2 * MIB,
            ipa_bits: 32
        }
    );
    assert_eq!(
        err.to_string(),
        "guest RAM [0x40000000..0x100200000) ends past the 32-bit IPA space [0x0..0x100000000)"
    );
    // A range that wraps past 2^64 is the same error, printed without
    // overflow.
    let base = u64::MAX - 2 * MIB + 1;
    let err = LoadPlan::new((ipa(base), 4 * MIB), 52, &k, 4096, None, 4096).unwrap_err();
    assert_eq!(
        err,
        PlanError::RamBeyondIpaLimit {
            base: ipa(base),
            size: 4 * MIB,
            ipa_bits: 52
        }
    );
    assert!(err.to_string().contains("0x10000000000200000"), "{err}");
}

#[test]
fn dtb_room_must_be_1_byte_to_2_mib() {
    let k = kernel(0, 2 * MIB);
    assert_eq!(
        plan((0x4000_0000, 64 * MIB), &k, None, 0),
        Err(PlanError::DtbEmpty)
    );
    let err = plan((0x4000_0000, 64 * MIB), &k, None, 2 * MIB as usize + 1).unwrap_err();
    assert_eq!(err, PlanError::DtbTooLarge { size: 2 * MIB + 1 });
    assert_eq!(
        err.to_string(),
        "DTB of 0x200001 bytes exceeds the 0x200000 bytes the arm64 boot protocol allows"
    );
}

#[test]
fn kernel_file_longer_than_its_image_size_is_refused() {
    let k = kernel(0, 0x2000);
    let err = LoadPlan::new((ipa(0x4000_0000), 64 * MIB), 40, &k, 0x2001, None, 4096).unwrap_err();
    assert_eq!(
        err,
        PlanError::KernelFileLargerThanImage {
            file_len: 0x2001,
            image_size: 0x2000
        }
    );
    assert_eq!(
        err.to_string(),
        "kernel file of 0x2001 bytes is larger than its image_size 0x2000"
    );
}

#[test]
fn kernel_reaching_into_the_dtb_slot_is_refused() {
    let k = kernel(0x1000, 2 * MIB);
    let err = plan((0x4000_0000, 4 * MIB), &k, None, 4096).unwrap_err();
    assert_eq!(
        err,
        PlanError::KernelDoesNotFit {
            load: ipa(0x4000_1000),
            size: 2 * MIB,
            room: range(0x4000_0000, 2 * MIB)
        }
    );
    assert_eq!(
        err.to_string(),
        "kernel [0x40001000..0x40201000) does not fit in the RAM below the DTB slot [0x40000000..0x40200000)"
    );
    // An image_size that would wrap is the same error.
    let huge = kernel(0, u64::MAX);
    assert!(matches!(
        plan((0x4000_0000, 64 * MIB), &huge, None, 4096),
        Err(PlanError::KernelDoesNotFit { size: u64::MAX, .. })
    ));
}

#[test]
fn empty_initrd_is_refused() {
    let k = kernel(0, 2 * MIB);
    assert_eq!(
        plan((0x4000_0000, 64 * MIB), &k, Some(0), 4096),
        Err(PlanError::InitrdEmpty)
    );
}

#[test]
fn initrd_larger_than_ram_is_refused() {
    let k = kernel(0, 2 * MIB);
    for len in [7 * MIB as usize, usize::MAX] {
        assert_eq!(
            plan((0x4000_0000, 8 * MIB), &k, Some(len), 4096),
            Err(PlanError::InitrdDoesNotFit {
                size: len as u64,
                room: range(0x4000_0000, 6 * MIB)
            })
        );
    }
    assert_eq!(
        PlanError::InitrdDoesNotFit {
            size: 7 * MIB,
            room: range(0x4000_0000, 6 * MIB)
        }
        .to_string(),
        "initrd of 0x700000 bytes does not fit in [0x40000000..0x40600000) (RAM below the DTB slot and within the kernel's 32 GiB window)"
    );
}

#[test]
fn initrd_over_the_kernel_is_refused() {
    let k = kernel(0, 4 * MIB);
    let err = plan((0x4000_0000, 8 * MIB), &k, Some(3 * MIB as usize), 4096).unwrap_err();
    assert_eq!(
        err,
        PlanError::InitrdOverlapsKernel {
            initrd: range(0x4030_0000, 3 * MIB),
            kernel: range(0x4000_0000, 4 * MIB)
        }
    );
    assert_eq!(
        err.to_string(),
        "initrd [0x40300000..0x40600000) overlaps the kernel [0x40000000..0x40400000)"
    );
    // Exactly between the kernel and the DTB slot is fine.
    let p = plan((0x4000_0000, 8 * MIB), &k, Some(2 * MIB as usize), 4096).unwrap();
    assert_eq!(p.initrd(), Some(range(0x4040_0000, 2 * MIB)));
}

#[test]
fn pre_3_17_kernel_is_planned_with_its_file_size() {
    let bytes = Header {
        image_size: 0,
        flags: 0,
        file_len: 0x5000,
        ..Header::default()
    }
    .build();
    let k = ImageHeader::parse(&bytes).unwrap();
    let p = LoadPlan::new(
        (ipa(0x4000_0000), 64 * MIB),
        40,
        &k,
        bytes.len(),
        None,
        4096,
    )
    .unwrap();
    assert_eq!(p.kernel(), range(0x4008_0000, 0x5000));
}
