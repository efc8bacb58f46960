//! The hypervisor's own stage-1 tables: an identity map in the EL2&0 regime
//! (VHE), built from the device tree once the heap exists.
//!
//! Permissions follow the image layout: code read-only and executable, constants
//! read-only, everything else (data, stacks, heap) read-write and never
//! executable; MMIO regions are device memory.

use crate::boot::{FINAL_TCR, MAIR_DEVICE, MAIR_NORMAL, SCTLR_MMU_ON};
use crate::layout::ImageLayout;
use aarch64_cpu::registers::TCR_EL2;
use aarch64_paging::descriptor::El1Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2And0, MemoryRegion};
use aarch64_paging::MapError;
use addr::PhysRange;
use core::arch::asm;
use platform::Platform;
use spin::Once;
use tock_registers::interfaces::Readable;

/// Root level 0: a 48-bit VA space, matching `FINAL_TCR`'s T0SZ of 16.
const ROOT_LEVEL: usize = 0;

/// TCR.IPS, bits [34:32], kept from the boot-time value chosen from PARange.
const TCR_IPS_MASK: u64 = 0b111 << 32;

const NORMAL: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(attribute_index(MAIR_NORMAL));
const NEVER_EXECUTE: El1Attributes = El1Attributes::UXN.union(El1Attributes::PXN);
const DEVICE: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ACCESSED)
    .union(NEVER_EXECUTE)
    .union(attribute_index(MAIR_DEVICE));

const fn attribute_index(index: u64) -> El1Attributes {
    El1Attributes::from_bits_retain((index as usize) << 2)
}

/// Values a CPU loads to use the final tables.
#[derive(Clone, Copy, Debug)]
pub struct Translation {
    /// TTBR0_EL2: root table, ASID 0.
    pub ttbr0: u64,
    /// TCR_EL2.
    pub tcr: u64,
}

static HYP_MAP: Once<spin::Mutex<IdMap<El2And0>>> = Once::new();

fn region(range: &PhysRange) -> MemoryRegion {
    MemoryRegion::new(range.start().get() as usize, range.end().get() as usize)
}

/// Builds the identity map for everything the hypervisor uses: RAM, its own
/// image with per-section permissions, and the MMIO regions of `platform`;
/// the stack `guards` are left unmapped. Returns the register values that
/// select the new tables, for [`switch_to_final`] on every CPU.
///
/// # Errors
///
/// Returns the `aarch64-paging` error if a region cannot be mapped (for
/// example an address beyond 48 bits).
pub fn build(
    platform: &Platform,
    image: &ImageLayout,
    guards: impl IntoIterator<Item = PhysRange>,
) -> Result<Translation, MapError> {
    let mut map = IdMap::with_asid(0, ROOT_LEVEL, El2And0);
    for ram in &platform.memory {
        map.map_range(&region(ram), NORMAL | NEVER_EXECUTE)?;
    }
    map.map_range(
        &region(&image.text),
        NORMAL | El1Attributes::READ_ONLY | El1Attributes::UXN,
    )?;
    map.map_range(
        &region(&image.rodata),
        NORMAL | El1Attributes::READ_ONLY | NEVER_EXECUTE,
    )?;
    map.map_range(&region(&image.data), NORMAL | NEVER_EXECUTE)?;
    for guard in guards {
        // Without VALID the entries are written invalid: any access faults.
        map.map_range(&region(&guard), El1Attributes::empty())?;
    }
    for mmio in platform.mmio_regions() {
        map.map_range(&region(&mmio), DEVICE)?;
    }
    // The host bridge's memory windows, where `hostdisk` puts BARs.
    for window in crate::hostdisk::pci_mmio_windows(platform) {
        map.map_range(&region(&window), DEVICE)?;
    }
    let translation = Translation {
        ttbr0: map.root_address().0 as u64,
        tcr: FINAL_TCR | (TCR_EL2.get() & TCR_IPS_MASK),
    };
    HYP_MAP.call_once(|| spin::Mutex::new(map));
    Ok(translation)
}

/// Moves the calling CPU from the boot map to the final tables.
///
/// The MMU is briefly turned off around the switch, because the boot map's
/// 1 GiB blocks and the final tables' pages translate the same addresses
/// differently and must never be in the TLB together (break-before-make,
/// Arm ARM D8.14.1).
///
/// # Safety
///
/// The final tables must map the running code, its stack and everything the
/// caller touches afterwards with compatible attributes (they do: the image,
/// all RAM and the MMIO regions in use).
pub unsafe fn switch_to_final(translation: Translation) {
    let sctlr_off = SCTLR_MMU_ON & !1;
    // SAFETY: Both maps are identity maps of the running code, so fetching
    // continues at the same addresses with the MMU off and on again; no memory
    // is accessed between the two SCTLR writes.
    unsafe {
        asm!(
            "msr sctlr_el2, {off}",
            "isb",
            "msr ttbr0_el2, {ttbr}",
            "msr tcr_el2, {tcr}",
            "isb",
            "tlbi alle2",
            "dsb nsh",
            "isb",
            "msr sctlr_el2, {on}",
            "isb",
            off = in(reg) sctlr_off,
            on = in(reg) SCTLR_MMU_ON,
            ttbr = in(reg) translation.ttbr0,
            tcr = in(reg) translation.tcr,
            options(nostack, preserves_flags),
        );
    }
    if let Some(map) = HYP_MAP.get() {
        map.lock().mark_active();
    }
}

/// Writes back the cache lines holding `object` to the point of coherency,
/// so that a CPU reading it with its MMU off sees the data.
pub fn clean_to_poc<T>(object: &T) {
    clean_range_to_poc(
        core::ptr::from_ref(object) as u64,
        core::mem::size_of::<T>() as u64,
    );
}

/// Cleans `size` bytes from `start` (mapped memory) to the point of
/// coherency, for an observer that does not use the caches.
pub fn clean_range_to_poc(start: u64, size: u64) {
    const LINE: u64 = 64;
    for line in (start & !(LINE - 1)..start + size).step_by(LINE as usize) {
        // SAFETY: Cleaning a mapped line changes no data and no architectural
        // state other than the cache's.
        unsafe { asm!("dc cvac, {}", in(reg) line, options(nostack, preserves_flags)) };
    }
    // SAFETY: A barrier has no memory-safety effects.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Invalidates every instruction cache in the inner shareable domain, so
/// code just written to memory is what executes.
pub fn invalidate_icache() {
    // SAFETY: Invalidation only costs refills.
    unsafe {
        asm!(
            "ic ialluis",
            "dsb ish",
            "isb",
            options(nostack, preserves_flags)
        )
    };
}
