//! Where the linker put the hypervisor image (symbols from `linker/hyp.ld`).

use addr::{PhysAddr, PhysRange};

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

fn symbol(sym: &u8) -> PhysAddr {
    PhysAddr(core::ptr::from_ref(sym) as u64)
}

/// The parts of the image, each page-aligned by the linker script.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout {
    /// Code: read-only and executable.
    pub text: PhysRange,
    /// Constants: read-only.
    pub rodata: PhysRange,
    /// Data, bss and the boot stack: read-write.
    pub data: PhysRange,
}

impl ImageLayout {
    /// The layout of the running image.
    pub fn get() -> Self {
        // SAFETY: Only the addresses of the linker symbols are taken; they are
        // never read.
        let (start, text_end, rodata_end, end) = unsafe {
            (
                symbol(&__image_start),
                symbol(&__text_end),
                symbol(&__rodata_end),
                symbol(&__image_end),
            )
        };
        let range = |a, b| PhysRange::from_bounds(a, b).expect("linker script orders sections");
        Self {
            text: range(start, text_end),
            rodata: range(text_end, rodata_end),
            data: range(rodata_end, end),
        }
    }

    /// The whole image, from the header to the end of bss.
    pub fn whole(&self) -> PhysRange {
        PhysRange::from_bounds(self.text.start(), self.data.end()).expect("ordered sections")
    }
}
