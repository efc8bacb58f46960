//! Where the kernel, the initrd and the device tree go in guest RAM.
//!
//! The rules are those of Linux's `Documentation/arch/arm64/booting.rst`:
//!
//! - the Image goes `text_offset` bytes above a 2 MiB aligned base, with
//!   `image_size` bytes free from its start (section 4);
//! - the DTB is 8-byte aligned, at most 2 MiB, and does not share a 2 MiB
//!   region with anything mapped with other attributes (section 2);
//! - the initrd lies within a 1 GiB aligned window of at most 32 GiB that
//!   also covers the kernel (section 4).
//!
//! The layout chosen:
//!
//! ```text
//! ram.start  kernel_load          kernel_end     initrd        dtb_slot   ram.end
//! |--text_offset--|==== kernel ====|....free....|== initrd ==|.|== DTB ==..|
//!  (2 MiB aligned)                                (4 KiB aligned) (2 MiB slot)
//! ```
//!
//! The kernel sits at the bottom of RAM, which suits both placement flags and
//! kernels before v4.6 that cannot use memory below themselves. The DTB gets
//! the last 2 MiB of RAM to itself. The initrd goes right below the DTB slot
//! (or lower, to stay in the kernel's 32 GiB window when RAM is larger), so
//! the free memory after the kernel is one block.

use core::fmt;

use addr::IntermediatePhysAddr;

use crate::image::{ImageHeader, KERNEL_BASE_ALIGN};
use crate::range::Span;
use crate::virt::DEVICE_WINDOW;
use crate::IpaRange;

/// Largest DTB the boot protocol allows, and the size of its slot.
pub const DTB_MAX_SIZE: u64 = 2 << 20;

/// Alignment of RAM's base and size, and of the DTB slot.
pub const RAM_ALIGN: u64 = 2 << 20;

/// Alignment of the initrd's start.
pub const PAGE_SIZE: u64 = 4096;

/// Alignment of the window the kernel and the initrd must share.
pub const INITRD_WINDOW_ALIGN: u64 = 1 << 30;

/// Largest window the kernel and the initrd must share.
pub const INITRD_WINDOW_SIZE: u64 = 32 << 30;

/// Smallest IPA size accepted (`ID_AA64MMFR0_EL1.PARange` 0b0000).
pub const MIN_IPA_BITS: u32 = 32;

/// Largest IPA size accepted (`PARange` 0b0110, FEAT_LPA).
pub const MAX_IPA_BITS: u32 = 52;

/// Where everything goes, in guest-physical addresses.
///
/// Built only by [`LoadPlan::new`], so it always holds: every range lies
/// inside [`ram`](Self::ram); the kernel, the initrd and the DTB slot are
/// pairwise disjoint; the kernel's base is 2 MiB aligned, the DTB slot is
/// 2 MiB aligned and holds nothing else, the initrd is page aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    ram: IpaRange,
    kernel: IpaRange,
    dtb: IpaRange,
    dtb_slot: IpaRange,
    initrd: Option<IpaRange>,
}

impl LoadPlan {
    /// Plans a guest with RAM `ram` (base and size) in an IPA space of
    /// `ipa_bits` bits, booting `kernel` (whose file has `kernel_file_len`
    /// bytes to copy), an initrd of `initrd_len` bytes if any, and a DTB of
    /// up to `dtb_max` bytes.
    ///
    /// # Errors
    ///
    /// Checked in this order, each a distinct [`PlanError`]:
    /// [`IpaBitsUnsupported`](PlanError::IpaBitsUnsupported),
    /// [`RamEmpty`](PlanError::RamEmpty),
    /// [`RamMisaligned`](PlanError::RamMisaligned) (base or size not a
    /// multiple of 2 MiB),
    /// [`RamOverlapsDeviceWindow`](PlanError::RamOverlapsDeviceWindow),
    /// [`RamBeyondIpaLimit`](PlanError::RamBeyondIpaLimit),
    /// [`DtbEmpty`](PlanError::DtbEmpty),
    /// [`DtbTooLarge`](PlanError::DtbTooLarge),
    /// [`KernelFileLargerThanImage`](PlanError::KernelFileLargerThanImage),
    /// [`KernelDoesNotFit`](PlanError::KernelDoesNotFit) (below the DTB
    /// slot), [`InitrdEmpty`](PlanError::InitrdEmpty),
    /// [`InitrdDoesNotFit`](PlanError::InitrdDoesNotFit) (between the start
    /// of RAM and the DTB slot or the end of the kernel's 32 GiB window) and
    /// [`InitrdOverlapsKernel`](PlanError::InitrdOverlapsKernel).
    pub fn new(
        ram: (IntermediatePhysAddr, u64),
        ipa_bits: u32,
        kernel: &ImageHeader,
        kernel_file_len: usize,
        initrd_len: Option<usize>,
        dtb_max: usize,
    ) -> Result<Self, PlanError> {
        let (base, size) = ram;
        if !(MIN_IPA_BITS..=MAX_IPA_BITS).contains(&ipa_bits) {
            return Err(PlanError::IpaBitsUnsupported { ipa_bits });
        }
        if size == 0 {
            return Err(PlanError::RamEmpty { base });
        }
        if !base.is_aligned(RAM_ALIGN) || !size.is_multiple_of(RAM_ALIGN) {
            return Err(PlanError::RamMisaligned { base, size });
        }
        if base.get() < DEVICE_WINDOW.end().get() {
            return Err(PlanError::RamOverlapsDeviceWindow { base, size });
        }
        let ram = match IpaRange::new(base, size) {
            Some(ram) if ram.end().get() <= 1 << ipa_bits => ram,
            _ => {
                return Err(PlanError::RamBeyondIpaLimit {
                    base,
                    size,
                    ipa_bits,
                })
            }
        };

        // usize is at most 64 bits on every target Rust supports.
        let dtb_max = dtb_max as u64;
        if dtb_max == 0 {
            return Err(PlanError::DtbEmpty);
        }
        if dtb_max > DTB_MAX_SIZE {
            return Err(PlanError::DtbTooLarge { size: dtb_max });
        }
        // RAM is a non-zero multiple of 2 MiB, so the slot fits.
        let dtb_slot = IpaRange::fixed(ram.end().get() - DTB_MAX_SIZE, DTB_MAX_SIZE);
        let dtb = IpaRange::fixed(dtb_slot.start().get(), dtb_max);

        let kernel_file_len = kernel_file_len as u64;
        if kernel_file_len > kernel.image_size() {
            return Err(PlanError::KernelFileLargerThanImage {
                file_len: kernel_file_len,
                image_size: kernel.image_size(),
            });
        }
        // RAM's base is 2 MiB aligned already, so it is the kernel's base;
        // text_offset is below 2 MiB, so this cannot overflow (RAM ends
        // below 2^52).
        debug_assert_eq!(ram.start().align_down(KERNEL_BASE_ALIGN), ram.start());
        let kernel_load = IntermediatePhysAddr(ram.start().get() + kernel.text_offset());
        let below_dtb = IpaRange::fixed(
            ram.start().get(),
            dtb_slot.start().get() - ram.start().get(),
        );
        let kernel_range = match IpaRange::new(kernel_load, kernel.image_size()) {
            Some(k) if below_dtb.contains_range(&k) => k,
            _ => {
                return Err(PlanError::KernelDoesNotFit {
                    load: kernel_load,
                    size: kernel.image_size(),
                    room: below_dtb,
                })
            }
        };

        let initrd = match initrd_len {
            None => None,
            Some(len) => Some(place_initrd(len as u64, kernel_range, below_dtb)?),
        };

        Ok(Self {
            ram,
            kernel: kernel_range,
            dtb,
            dtb_slot,
            initrd,
        })
    }

    /// Guest RAM: 2 MiB aligned, above the device window, inside the IPA
    /// space.
    pub const fn ram(&self) -> IpaRange {
        self.ram
    }

    /// Where the Image's first byte goes: a 2 MiB aligned base (the start of
    /// RAM) plus `text_offset`.
    pub const fn kernel_load(&self) -> IntermediatePhysAddr {
        self.kernel.start()
    }

    /// Where the boot CPU starts, at EL1h with the MMU off: the Image's
    /// first byte, `code0` (booting.rst: "jump directly to the first
    /// instruction of the kernel image").
    pub const fn entry(&self) -> IntermediatePhysAddr {
        self.kernel.start()
    }

    /// `kernel_load + image_size`: the kernel owns everything up to here,
    /// `bss` included.
    pub const fn kernel_end(&self) -> IntermediatePhysAddr {
        self.kernel.end()
    }

    /// The memory the kernel owns: `[kernel_load, kernel_end)`. The
    /// `text_offset` bytes below it are unused.
    pub const fn kernel(&self) -> IpaRange {
        self.kernel
    }

    /// Room for the DTB: `dtb_max` bytes at the start of
    /// [`dtb_slot`](Self::dtb_slot). Its start is what x0 holds at entry.
    pub const fn dtb(&self) -> IpaRange {
        self.dtb
    }

    /// The last 2 MiB of RAM, reserved for the DTB alone.
    pub const fn dtb_slot(&self) -> IpaRange {
        self.dtb_slot
    }

    /// The initrd, if any: page aligned, exactly `initrd_len` bytes.
    pub const fn initrd(&self) -> Option<IpaRange> {
        self.initrd
    }
}

/// Places an initrd of `len` bytes as high as possible in `below_dtb` and in
/// the 1 GiB aligned, 32 GiB window starting at or below the kernel.
fn place_initrd(len: u64, kernel: IpaRange, below_dtb: IpaRange) -> Result<IpaRange, PlanError> {
    if len == 0 {
        return Err(PlanError::InitrdEmpty);
    }
    let window_start = kernel.start().align_down(INITRD_WINDOW_ALIGN).get();
    // Below 2^52 + 2^35: no overflow.
    let window_end = window_start + INITRD_WINDOW_SIZE;
    let top = below_dtb.end().get().min(window_end);
    let room = IpaRange::fixed(below_dtb.start().get(), top - below_dtb.start().get());
    let start = match top.checked_sub(len) {
        Some(s) if IntermediatePhysAddr(s).align_down(PAGE_SIZE).get() >= room.start().get() => {
            IntermediatePhysAddr(s).align_down(PAGE_SIZE)
        }
        _ => return Err(PlanError::InitrdDoesNotFit { size: len, room }),
    };
    // start + len <= top: no overflow.
    let initrd = IpaRange::fixed(start.get(), len);
    if initrd.overlaps(&kernel) {
        return Err(PlanError::InitrdOverlapsKernel { initrd, kernel });
    }
    Ok(initrd)
}

/// Why a guest's memory could not be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The IPA size is outside 32..=52 bits.
    IpaBitsUnsupported {
        /// The size asked for.
        ipa_bits: u32,
    },
    /// RAM has size zero.
    RamEmpty {
        /// Its base.
        base: IntermediatePhysAddr,
    },
    /// RAM's base or size is not a multiple of 2 MiB.
    RamMisaligned {
        /// RAM's base.
        base: IntermediatePhysAddr,
        /// RAM's size.
        size: u64,
    },
    /// RAM starts inside the device window below 0x4000_0000.
    RamOverlapsDeviceWindow {
        /// RAM's base.
        base: IntermediatePhysAddr,
        /// RAM's size.
        size: u64,
    },
    /// RAM ends past the IPA space (or past 2^64).
    RamBeyondIpaLimit {
        /// RAM's base.
        base: IntermediatePhysAddr,
        /// RAM's size.
        size: u64,
        /// The IPA size.
        ipa_bits: u32,
    },
    /// The DTB's room has size zero.
    DtbEmpty,
    /// The DTB's room is larger than the 2 MiB the boot protocol allows.
    DtbTooLarge {
        /// The size asked for.
        size: u64,
    },
    /// More bytes to copy than the kernel's `image_size`.
    KernelFileLargerThanImage {
        /// Bytes to copy.
        file_len: u64,
        /// The header's effective image size.
        image_size: u64,
    },
    /// The kernel does not fit between the start of RAM and the DTB slot.
    KernelDoesNotFit {
        /// Where it would be loaded.
        load: IntermediatePhysAddr,
        /// Its effective size.
        size: u64,
        /// The RAM below the DTB slot.
        room: IpaRange,
    },
    /// The initrd has size zero.
    InitrdEmpty,
    /// The initrd is larger than the RAM it may go in.
    InitrdDoesNotFit {
        /// Its size.
        size: u64,
        /// From the start of RAM to the DTB slot or the end of the kernel's
        /// 32 GiB window, whichever is lower.
        room: IpaRange,
    },
    /// The initrd would overwrite the kernel.
    InitrdOverlapsKernel {
        /// Where the initrd would go.
        initrd: IpaRange,
        /// The kernel's memory.
        kernel: IpaRange,
    },
}

impl core::error::Error for PlanError {}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IpaBitsUnsupported { ipa_bits } => write!(
                f,
                "IPA size of {ipa_bits} bits is outside {MIN_IPA_BITS}..={MAX_IPA_BITS}"
            ),
            Self::RamEmpty { base } => write!(f, "guest RAM at {base} has size 0"),
            Self::RamMisaligned { base, size } => write!(
                f,
                "guest RAM {} is not 2 MiB aligned: base and size must be multiples of {RAM_ALIGN:#x}",
                Span(base.get(), size)
            ),
            Self::RamOverlapsDeviceWindow { base, size } => write!(
                f,
                "guest RAM {} overlaps the device window {DEVICE_WINDOW}",
                Span(base.get(), size)
            ),
            Self::RamBeyondIpaLimit { base, size, ipa_bits } => write!(
                f,
                "guest RAM {} ends past the {ipa_bits}-bit IPA space {}",
                Span(base.get(), size),
                Span(0, 1 << ipa_bits.min(63))
            ),
            Self::DtbEmpty => f.write_str("the DTB's room has size 0"),
            Self::DtbTooLarge { size } => write!(
                f,
                "DTB of {size:#x} bytes exceeds the {DTB_MAX_SIZE:#x} bytes the arm64 boot protocol allows"
            ),
            Self::KernelFileLargerThanImage { file_len, image_size } => write!(
                f,
                "kernel file of {file_len:#x} bytes is larger than its image_size {image_size:#x}"
            ),
            Self::KernelDoesNotFit { load, size, room } => write!(
                f,
                "kernel {} does not fit in the RAM below the DTB slot {room}",
                Span(load.get(), size)
            ),
            Self::InitrdEmpty => f.write_str("initrd has size 0"),
            Self::InitrdDoesNotFit { size, room } => write!(
                f,
                "initrd of {size:#x} bytes does not fit in {room} (RAM below the DTB slot and within the kernel's 32 GiB window)"
            ),
            Self::InitrdOverlapsKernel { initrd, kernel } => {
                write!(f, "initrd {initrd} overlaps the kernel {kernel}")
            }
        }
    }
}
