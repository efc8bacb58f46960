//! `ImageHeader::parse` on synthetic headers: every field and every error.

mod common;

use common::Header;
use guest_boot::{ImageError, ImageHeader, KernelPageSize, Placement};

#[test]
fn current_linux_header_reads_every_field() {
    let h = Header {
        text_offset: 0,
        image_size: 0x2a0_0000,
        flags: 0b1010, // 4K pages, placement anywhere
        file_len: 0x1f0_0000,
        ..Header::default()
    };
    let parsed = ImageHeader::parse(&h.build()).unwrap();
    assert_eq!(parsed.code0(), h.code0);
    assert_eq!(parsed.code1(), h.code1);
    assert_eq!(parsed.text_offset(), 0);
    assert_eq!(parsed.image_size(), 0x2a0_0000);
    assert_eq!(parsed.file_len(), 0x1f0_0000);
    assert_eq!(parsed.flags(), 0b1010);
    assert_eq!(parsed.page_size(), KernelPageSize::Size4K);
    assert_eq!(parsed.page_size().bytes(), Some(4096));
    assert_eq!(parsed.placement(), Placement::Anywhere);
    assert!(!parsed.is_pre_3_17());
}

#[test]
fn old_text_offset_is_kept() {
    let h = Header {
        text_offset: 0x8_0000,
        flags: 0,
        ..Header::default()
    };
    let parsed = ImageHeader::parse(&h.build()).unwrap();
    assert_eq!(parsed.text_offset(), 0x8_0000);
    assert_eq!(parsed.page_size(), KernelPageSize::Unspecified);
    assert_eq!(parsed.placement(), Placement::NearRamBase);
}

#[test]
fn every_page_size_is_reported() {
    for (bits, size, bytes) in [
        (0, KernelPageSize::Unspecified, None),
        (1, KernelPageSize::Size4K, Some(4 << 10)),
        (2, KernelPageSize::Size16K, Some(16 << 10)),
        (3, KernelPageSize::Size64K, Some(64 << 10)),
    ] {
        let h = Header {
            flags: bits << 1,
            ..Header::default()
        };
        let parsed = ImageHeader::parse(&h.build()).unwrap();
        assert_eq!(parsed.page_size(), size);
        assert_eq!(parsed.page_size().bytes(), bytes);
    }
}

#[test]
fn reserved_flag_bits_are_tolerated() {
    let h = Header {
        flags: 0xffff_fff0 | 0b0010,
        ..Header::default()
    };
    let parsed = ImageHeader::parse(&h.build()).unwrap();
    assert_eq!(parsed.page_size(), KernelPageSize::Size4K);
    assert_eq!(parsed.flags(), 0xffff_fff2);
}

#[test]
fn pre_3_17_kernel_gets_default_offset_and_file_size() {
    // Before v3.17 image_size is 0 and text_offset is in the kernel's byte
    // order: it is ignored and 0x80000 assumed.
    let h = Header {
        text_offset: 0x0000_0800_0000_0000, // 0x80000 big-endian, read as LE
        image_size: 0,
        flags: 0,
        file_len: 0x12_3400,
        ..Header::default()
    };
    let parsed = ImageHeader::parse(&h.build()).unwrap();
    assert!(parsed.is_pre_3_17());
    assert_eq!(parsed.text_offset(), 0x8_0000);
    assert_eq!(parsed.image_size(), 0x12_3400);
    assert_eq!(parsed.file_len(), 0x12_3400);
}

#[test]
fn header_only_file_is_enough() {
    let h = Header {
        image_size: 0x1000,
        file_len: 64,
        ..Header::default()
    };
    assert_eq!(ImageHeader::parse(&h.build()).unwrap().file_len(), 64);
}

#[test]
fn image_size_equal_to_file_is_accepted() {
    let h = Header {
        image_size: 0x1000,
        file_len: 0x1000,
        ..Header::default()
    };
    assert_eq!(ImageHeader::parse(&h.build()).unwrap().image_size(), 0x1000);
}

#[test]
fn short_file_is_refused() {
    for len in [0, 1, 56, 63] {
        let bytes = Header {
            file_len: len,
            ..Header::default()
        }
        .build();
        assert_eq!(
            ImageHeader::parse(&bytes),
            Err(ImageError::TooShort { len }),
            "len {len}"
        );
    }
    assert_eq!(
        ImageError::TooShort { len: 12 }.to_string(),
        "kernel image is 12 bytes, shorter than the 64-byte arm64 Image header"
    );
}

#[test]
fn bad_magic_is_refused_and_printed() {
    let h = Header {
        magic: u32::from_le_bytes(*b"ARM\x65"),
        ..Header::default()
    };
    let err = ImageHeader::parse(&h.build()).unwrap_err();
    assert_eq!(
        err,
        ImageError::BadMagic {
            found: 0x654d_5241,
            looks_like: None
        }
    );
    assert_eq!(
        err.to_string(),
        "kernel image has magic 0x654d5241 (\"ARMe\") at offset 56, not 0x644d5241 (\"ARM\\x64\")"
    );
    let zero = ImageHeader::parse(&[0u8; 64]).unwrap_err();
    assert!(
        zero.to_string()
            .contains("0x00000000 (\"\\x00\\x00\\x00\\x00\")"),
        "{zero}"
    );
}

#[test]
fn compressed_and_elf_kernels_get_a_hint() {
    let mut gzip = vec![0u8; 128];
    gzip[..3].copy_from_slice(&[0x1f, 0x8b, 0x08]);
    let mut zboot = vec![0u8; 128];
    zboot[..8].copy_from_slice(b"MZ\0\0zimg");
    let mut elf = vec![0u8; 128];
    elf[..4].copy_from_slice(b"\x7fELF");
    for (bytes, hint) in [(gzip, "gzip"), (zboot, "EFI zboot"), (elf, "ELF")] {
        let err = ImageHeader::parse(&bytes).unwrap_err();
        let ImageError::BadMagic {
            found: 0,
            looks_like: Some(what),
        } = err
        else {
            panic!("{err:?}");
        };
        assert!(what.contains(hint), "{what}");
        assert!(err.to_string().contains(hint), "{err}");
    }
}

#[test]
fn big_endian_kernel_is_refused() {
    let h = Header {
        flags: 0b0011,
        ..Header::default()
    };
    let err = ImageHeader::parse(&h.build()).unwrap_err();
    assert_eq!(err, ImageError::BigEndian);
    assert!(err.to_string().contains("big-endian"));
}

#[test]
fn image_size_below_file_length_is_refused() {
    let h = Header {
        image_size: 0x1000,
        file_len: 0x1001,
        ..Header::default()
    };
    let err = ImageHeader::parse(&h.build()).unwrap_err();
    assert_eq!(
        err,
        ImageError::ImageSizeSmallerThanFile {
            image_size: 0x1000,
            file_len: 0x1001
        }
    );
    assert_eq!(
        err.to_string(),
        "kernel image_size 0x1000 is smaller than the file (0x1001 bytes)"
    );
}

#[test]
fn text_offset_must_be_a_page_multiple_below_2_mib() {
    for bad in [0x80, 0x8_0001, 0x20_0000, 0x20_1000, u64::MAX] {
        let h = Header {
            text_offset: bad,
            ..Header::default()
        };
        assert_eq!(
            ImageHeader::parse(&h.build()),
            Err(ImageError::BadTextOffset { text_offset: bad }),
            "{bad:#x}"
        );
    }
    for good in [0, 0x1000, 0x8_0000, 0x1f_f000] {
        let h = Header {
            text_offset: good,
            ..Header::default()
        };
        assert_eq!(
            ImageHeader::parse(&h.build()).map(|h| h.text_offset()),
            Ok(good)
        );
    }
    assert_eq!(
        ImageError::BadTextOffset {
            text_offset: 0x20_0000
        }
        .to_string(),
        "kernel text_offset 0x200000 is not a multiple of 0x1000 below 0x200000"
    );
}
