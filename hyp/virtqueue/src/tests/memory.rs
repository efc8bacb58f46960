//! Guest memory ranges: the window check and the test memory built on it.

use std::string::ToString;

use super::VecMemory;
use crate::{window_offset, GuestMemory, MemError};

#[test]
fn window_offsets() {
    let base = 0x4000_0000;
    assert_eq!(window_offset(base, 0x1000, base, 0x1000), Ok(0));
    assert_eq!(window_offset(base, 0x1000, base + 0x1000, 0), Ok(0x1000));
    assert_eq!(
        window_offset(base, 0x1000, base + 0x1001, 0),
        Err(MemError::OutOfRange {
            gpa: base + 0x1001,
            len: 0
        })
    );
    assert_eq!(
        window_offset(base, 0x1000, base - 1, 1),
        Err(MemError::OutOfRange {
            gpa: base - 1,
            len: 1
        })
    );
    assert_eq!(
        window_offset(base, 0x1000, base + 1, u64::MAX - base - 1),
        Err(MemError::OutOfRange {
            gpa: base + 1,
            len: u64::MAX - base - 1
        })
    );
    assert_eq!(
        window_offset(base, 0x1000, u64::MAX, 1),
        Err(MemError::Overflow {
            gpa: u64::MAX,
            len: 1
        })
    );
    // A window reaching the very top of the address space.
    assert_eq!(window_offset(u64::MAX - 15, 16, u64::MAX - 1, 1), Ok(14));
    assert_eq!(window_offset(0, u64::MAX, 0, u64::MAX), Ok(0));
}

#[test]
fn errors_name_the_range() {
    assert_eq!(
        MemError::OutOfRange {
            gpa: 0x8000_0000,
            len: 0x200
        }
        .to_string(),
        "buffer [0x80000000, +0x200) outside guest memory"
    );
    assert_eq!(
        MemError::Overflow {
            gpa: u64::MAX,
            len: 2
        }
        .to_string(),
        "buffer [0xffffffffffffffff, +0x2) wraps past the end of the address space"
    );
}

#[test]
fn accesses_outside_fail_and_change_nothing() {
    let mem = VecMemory::new(0x1000, 16);
    assert!(mem.write(0x1008, &[1; 9]).is_err());
    assert_eq!(mem.get(0x1000, 16), [0; 16]);
    let mut buf = [7u8; 4];
    assert!(mem.read(0xffe, &mut buf).is_err());
    assert_eq!(buf, [7; 4]);
    mem.write_u16(0x100e, 0xbeef).unwrap();
    assert_eq!(mem.read_u16(0x100e), Ok(0xbeef));
    assert!(mem.read_u16(0x100f).is_err());
    // Through a reference, too.
    let by_ref: &dyn GuestMemory = &mem;
    assert_eq!((&by_ref).read_u16(0x100e), Ok(0xbeef));
    assert!((&by_ref).check_range(0x1000, 17).is_err());
}
