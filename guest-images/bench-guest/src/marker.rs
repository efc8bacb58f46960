//! Markers around each measured stretch, for the `qemu-el-count` QEMU
//! plugin (`tools/el-count`), which counts the instructions every CPU
//! executes at each exception level between them.
//!
//! A marker is an unallocated HINT, which every Armv8 CPU (QEMU's too)
//! executes as a NOP at any exception level without trapping: without the
//! plugin, and under any hypervisor, it does nothing. `HINT #0x70` starts
//! a window and `HINT #0x71` ends it, with the benchmark's name in x0 and
//! x1: up to 16 ASCII bytes, little-endian, x0 first, zero-padded (the
//! plugin's `marker` module reads them back).

use core::arch::asm;

/// A window's name as the markers pass it: the values of x0 and x1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name([u64; 2]);

impl Name {
    /// Longest name: two registers' worth.
    pub const MAX: usize = 16;

    /// `name` packed for the markers. Benchmark names are constants, so
    /// this runs at compile time, and a name that is empty, longer than
    /// [`Name::MAX`] or not printable ASCII does not compile.
    pub const fn new(name: &str) -> Self {
        let bytes = name.as_bytes();
        assert!(
            !bytes.is_empty() && bytes.len() <= Self::MAX,
            "a window name is 1 to 16 bytes"
        );
        let mut words = [0u64; 2];
        let mut i = 0;
        while i < bytes.len() {
            assert!(
                bytes[i].is_ascii_graphic(),
                "a window name is printable ASCII"
            );
            words[i / 8] |= (bytes[i] as u64) << (8 * (i % 8));
            i += 1;
        }
        Self(words)
    }
}

// The plugin's reading of the same name (its `marker` tests).
const _: () = assert!(Name::new("hvc-null").0[0] == 0x6c6c_756e_2d63_7668);
const _: () = assert!(Name::new("hvc-null").0[1] == 0);

/// Starts window `name`. No `nomem`: the compiler must not move the
/// measured code's memory accesses across a marker.
#[inline(always)]
pub fn start(name: Name) {
    // SAFETY: A hint that executes as a NOP; it reads x0 and x1 only
    // for the plugin's sake.
    unsafe {
        asm!(
            "hint #0x70",
            in("x0") name.0[0],
            in("x1") name.0[1],
            options(nostack, preserves_flags)
        );
    }
}

/// Ends window `name`.
#[inline(always)]
pub fn end(name: Name) {
    // SAFETY: As for `start`.
    unsafe {
        asm!(
            "hint #0x71",
            in("x0") name.0[0],
            in("x1") name.0[1],
            options(nostack, preserves_flags)
        );
    }
}
