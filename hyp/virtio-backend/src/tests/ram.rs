//! `GuestRam`: every access checked against the window.

use super::{Ram, BASE, RAM_SIZE};
use crate::{GuestMemory, MemError};

const END: u64 = BASE + RAM_SIZE as u64;

#[test]
fn copies_inside_the_window() {
    let ram = Ram::new();
    assert_eq!(ram.view.base(), BASE);
    assert_eq!(ram.view.size(), RAM_SIZE as u64);
    ram.put(BASE, &[1, 2, 3]);
    ram.put(END - 2, &[4, 5]);
    assert_eq!(ram.get(BASE, 3), [1, 2, 3]);
    assert_eq!(ram.get(END - 3, 3), [0, 4, 5]);
    assert_eq!(ram.view.check_range(END, 0), Ok(()));
    assert_eq!(ram.view.check_range(BASE, RAM_SIZE as u64), Ok(()));
}

#[test]
fn refuses_outside_ranges_and_changes_nothing() {
    let ram = Ram::new();
    let mut buf = [7u8; 4];
    for (gpa, len) in [(BASE - 1, 1), (END - 3, 4), (END, 1), (0, 4)] {
        let out = Err(MemError::OutOfRange { gpa, len });
        assert_eq!(ram.view.read(gpa, &mut buf[..len as usize]), out);
        assert_eq!(ram.view.write(gpa, &buf[..len as usize]), out);
        assert_eq!(ram.view.check_range(gpa, len), out);
    }
    assert_eq!(buf, [7; 4], "a failed read leaves the buffer alone");
    assert_eq!(ram.get(END - 3, 3), [0; 3], "a failed write wrote nothing");
    assert_eq!(
        ram.view.check_range(u64::MAX, 2),
        Err(MemError::Overflow {
            gpa: u64::MAX,
            len: 2
        })
    );
    assert_eq!(
        ram.view.read_u16(END - 1),
        Err(MemError::OutOfRange {
            gpa: END - 1,
            len: 2
        })
    );
    assert!(ram.view.write_u16(END, 1).is_err());
}

#[test]
fn sixteen_bit_accesses_are_little_endian_aligned_or_not() {
    let ram = Ram::new();
    for gpa in [BASE + 0x100, BASE + 0x201] {
        ram.view.write_u16(gpa, 0xbeef).unwrap();
        assert_eq!(ram.get(gpa, 2), [0xef, 0xbe]);
        assert_eq!(ram.view.read_u16(gpa), Ok(0xbeef));
    }
}
