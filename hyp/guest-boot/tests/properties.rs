//! Properties over arbitrary inputs: parsing and planning never panic, and
//! whatever they accept keeps the promises made in the docs.

mod common;

use common::Header;
use guest_boot::{
    mpidr_of, vcpu_of, write_dtb, GuestMachine, ImageHeader, IntermediatePhysAddr, IpaRange,
    LoadPlan, DTB_MAX_SIZE, INITRD_WINDOW_ALIGN, INITRD_WINDOW_SIZE, KERNEL_BASE_ALIGN, MAX_VCPUS,
    PAGE_SIZE,
};
use proptest::prelude::*;

const MIB: u64 = 1 << 20;

/// Headers mostly valid, with each field sometimes wild.
fn header() -> impl Strategy<Value = Header> {
    (
        prop_oneof![
            1 => Just(0u64),
            1 => Just(0x8_0000),
            2 => (0..0x200u64).prop_map(|p| p << 12),
            1 => any::<u64>(),
        ],
        prop_oneof![
            1 => Just(0u64),
            4 => (1..256u64).prop_map(|m| m * MIB),
            1 => any::<u64>(),
        ],
        prop_oneof![4 => (0..8u64).prop_map(|f| f << 1), 1 => any::<u64>()],
        prop_oneof![9 => Just(0x644d_5241u32), 1 => any::<u32>()],
        prop_oneof![9 => 64..0x4000usize, 1 => 0..64usize],
    )
        .prop_map(|(text_offset, image_size, flags, magic, file_len)| Header {
            text_offset,
            image_size,
            flags,
            magic,
            file_len,
            ..Header::default()
        })
}

/// RAM mostly acceptable, sometimes not.
fn ram() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        6 => ((0x200u64..0x1000), (1u64..0x800)).prop_map(|(b, s)| (b * 2 * MIB, s * 2 * MIB)),
        1 => (any::<u64>(), any::<u64>()),
        1 => ((0u64..0x4_0000), (0u64..0x4_0000)).prop_map(|(b, s)| (b << 20, s << 20)),
    ]
}

/// A length for an initrd or a kernel file: mostly plausible.
fn len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..0x400_0000usize, 1 => any::<usize>()]
}

fn check_plan(plan: &LoadPlan, header: &ImageHeader, initrd_len: Option<usize>, dtb_max: usize) {
    let ram = plan.ram();
    let kernel = plan.kernel();
    // Everything inside RAM.
    for r in [kernel, plan.dtb(), plan.dtb_slot()]
        .into_iter()
        .chain(plan.initrd())
    {
        assert!(ram.contains_range(&r), "{r} outside {ram}");
    }
    // RAM where the guest expects it.
    assert!(ram.start().get() >= 0x4000_0000);
    assert!(ram.start().is_aligned(2 * MIB) && ram.size().is_multiple_of(2 * MIB));
    // Kernel: text_offset above a 2 MiB base, image_size long, entered at
    // its first byte.
    assert_eq!(plan.entry(), plan.kernel_load());
    assert_eq!(kernel.start(), plan.kernel_load());
    assert_eq!(kernel.end(), plan.kernel_end());
    assert_eq!(kernel.size(), header.image_size());
    assert!(
        IntermediatePhysAddr(plan.kernel_load().get() - header.text_offset())
            .is_aligned(KERNEL_BASE_ALIGN)
    );
    // DTB: 2 MiB slot of its own, 8-byte aligned start, asked-for size.
    assert!(plan.dtb_slot().start().is_aligned(2 * MIB));
    assert_eq!(plan.dtb_slot().size(), DTB_MAX_SIZE);
    assert!(plan.dtb().start().is_aligned(8));
    assert_eq!(plan.dtb().size(), dtb_max as u64);
    assert!(plan.dtb_slot().contains_range(&plan.dtb()));
    assert!(!kernel.overlaps(&plan.dtb_slot()));
    assert_eq!(plan.initrd().is_some(), initrd_len.is_some());
    if let Some(initrd) = plan.initrd() {
        assert!(initrd.start().is_aligned(PAGE_SIZE));
        assert_eq!(Some(initrd.size() as usize), initrd_len);
        assert!(!initrd.overlaps(&kernel));
        assert!(!initrd.overlaps(&plan.dtb_slot()));
        // One 1 GiB aligned window of at most 32 GiB covers both.
        let window = IpaRange::new(
            kernel.start().align_down(INITRD_WINDOW_ALIGN),
            INITRD_WINDOW_SIZE,
        )
        .unwrap();
        assert!(window.contains_range(&initrd) && window.contains_range(&kernel));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn parse_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(h) = ImageHeader::parse(&bytes) {
            prop_assert!(h.image_size() >= h.file_len());
            prop_assert!(h.text_offset().is_multiple_of(4096) && h.text_offset() < KERNEL_BASE_ALIGN);
        }
    }

    #[test]
    fn parse_accepts_exactly_the_valid_headers(h in header()) {
        let bytes = h.build();
        let parsed = ImageHeader::parse(&bytes);
        let valid = h.file_len >= 64
            && h.magic == 0x644d_5241
            && h.flags & 1 == 0
            && (h.image_size == 0 || h.image_size >= h.file_len as u64)
            && (h.image_size == 0 || (h.text_offset.is_multiple_of(4096) && h.text_offset < 2 * MIB));
        prop_assert_eq!(parsed.is_ok(), valid, "{:?} -> {:?}", h, parsed);
        if let Ok(p) = parsed {
            prop_assert!(p.image_size() >= p.file_len());
            if h.image_size == 0 {
                prop_assert_eq!(p.text_offset(), 0x8_0000);
            } else {
                prop_assert_eq!(p.text_offset(), h.text_offset);
            }
        }
        // Errors print without panicking.
        if let Err(e) = ImageHeader::parse(&bytes) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn plan_never_panics_and_keeps_its_promises(
        h in header(),
        ram in ram(),
        ipa_bits in prop_oneof![2 => Just(40u32), 1 => 30u32..54],
        file_len in prop_oneof![4 => Just(None), 1 => len().prop_map(Some)],
        initrd_len in prop_oneof![1 => Just(None), 3 => len().prop_map(Some)],
        dtb_max in prop_oneof![4 => 1..0x1_0000usize, 1 => 0..0x30_0000usize, 1 => any::<usize>()],
    ) {
        let Ok(header) = ImageHeader::parse(&h.build()) else {
            return Ok(());
        };
        let file_len = file_len.unwrap_or(header.file_len() as usize);
        match LoadPlan::new(
            (IntermediatePhysAddr(ram.0), ram.1),
            ipa_bits,
            &header,
            file_len,
            initrd_len,
            dtb_max,
        ) {
            Ok(plan) => {
                prop_assert!(plan.ram().end().get() <= 1 << ipa_bits);
                prop_assert!(file_len as u64 <= header.image_size());
                check_plan(&plan, &header, initrd_len, dtb_max);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn dtb_writer_never_panics(
        start in prop_oneof![Just(0x4000_0000u64), any::<u64>()],
        size in prop_oneof![Just(256 * MIB), any::<u64>()],
        vcpus in prop_oneof![1..=MAX_VCPUS, any::<u32>()],
        bootargs in ".{0,64}",
        initrd in proptest::option::of((any::<u64>(), 0..0x1000_0000u64)),
        uart in any::<bool>(),
    ) {
        let Some(ram) = IpaRange::new(IntermediatePhysAddr(start), size) else {
            return Ok(());
        };
        let initrd = initrd.and_then(|(s, l)| IpaRange::new(IntermediatePhysAddr(s), l));
        let m = GuestMachine { ram, vcpus, bootargs: &bootargs, initrd, uart };
        match write_dtb(&m) {
            Ok(dtb) => {
                let fdt = fdt::Fdt::new(&dtb).unwrap();
                prop_assert_eq!(fdt.find_node("/cpus").unwrap().children().count(), vcpus as usize);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn vcpu_of_is_the_inverse_of_mpidr_of(i in 0u32..(1 << 28), vcpus in any::<u32>(), mpidr in any::<u64>()) {
        prop_assert_eq!(vcpu_of(mpidr_of(i), vcpus), (i < vcpus).then_some(i));
        if let Some(j) = vcpu_of(mpidr, vcpus) {
            prop_assert_eq!(mpidr_of(j), mpidr);
            prop_assert!(j < vcpus);
        }
    }
}
