//! The guest's stage-1 translation: a static identity map built at compile
//! time and never written, so the entry code turns the MMU on before its
//! first store (nothing written with the caches off needs cleaning).
//!
//! A 39-bit address space walked from level 1 in 1 GiB blocks:
//!
//! | range          | memory type                          | holds                  |
//! |----------------|--------------------------------------|------------------------|
//! | [0, 1 GiB)     | Device-nGnRnE, execute-never         | GIC, PL011, virtio-mmio |
//! | [1 GiB, 2 GiB) | Normal write-back, inner shareable   | RAM (image, stacks, DTB) |
//! | above          | unmapped                             |                        |
//!
//! RAM must be normal memory: the benchmarks share flags between vCPUs with
//! atomics, which need a cacheable, shareable mapping.

use aarch64_cpu::registers::{CPACR_EL1, MAIR_EL1, SCTLR_EL1, TCR_EL1};

/// Size of a level-1 block.
const GIB: u64 = 1 << 30;

/// Start of the window mapped as normal memory, where RAM must lie.
pub const NORMAL_START: u64 = GIB;
/// End of the window mapped as normal memory.
pub const NORMAL_END: u64 = 2 * GIB;
/// Width of the translated address space: a level-1 table covers 512 GiB.
const VA_BITS: u64 = 39;

// Block descriptor bits (Arm ARM D8.3, 4 KiB granule).
/// Valid descriptor; a level-1 entry with bit 1 clear is a block.
const VALID: u64 = 1 << 0;
/// Lowest bit of AttrIndx, the MAIR_EL1 index.
const ATTR_INDEX_SHIFT: u64 = 2;
/// SH = 0b11, inner shareable.
const INNER_SHAREABLE: u64 = 0b11 << 8;
/// Access flag: set, so the first access does not fault.
const ACCESSED: u64 = 1 << 10;
/// Privileged execute-never.
const PXN: u64 = 1 << 53;
/// Unprivileged execute-never.
const UXN: u64 = 1 << 54;

/// MAIR_EL1 index of Device-nGnRnE memory.
const MAIR_DEVICE: u64 = 0;
/// MAIR_EL1 index of Normal write-back memory.
const MAIR_NORMAL: u64 = 1;

/// MAIR_EL1: index 0 Device-nGnRnE, index 1 Normal write-back read/write-allocate.
pub const MAIR: u64 = MAIR_EL1::Attr0_Device::nonGathering_nonReordering_noEarlyWriteAck.value
    | MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value;

/// TCR_EL1 without IPS (the entry code sets it from ID_AA64MMFR0_EL1):
/// 39-bit VAs through TTBR0, so the walk starts at level 1; TTBR1 walks off.
pub const TCR: u64 = TCR_EL1::T0SZ.val(64 - VA_BITS).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::EPD1::DisableTTBR1Walks.value;

/// SCTLR_EL1 with the MMU, both caches and stack alignment checks on; bits
/// 11, 20, 22, 23, 28 and 29 are RES1 in Armv8.0 (1 keeps that behaviour
/// in later versions).
pub const SCTLR: u64 = SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::I::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value
    | (1 << 11)
    | (1 << 20)
    | (1 << 22)
    | (1 << 23)
    | (1 << 28)
    | (1 << 29);

/// CPACR_EL1: FP/SIMD untrapped, since Rust code may use vector registers.
pub const CPACR: u64 = CPACR_EL1::FPEN::TrapNothing.value;

/// The device block: never executable.
const DEVICE_BLOCK: u64 = VALID | ACCESSED | (MAIR_DEVICE << ATTR_INDEX_SHIFT) | PXN | UXN;
/// The RAM block, executable at EL1 only.
const NORMAL_BLOCK: u64 =
    VALID | ACCESSED | INNER_SHAREABLE | (MAIR_NORMAL << ATTR_INDEX_SHIFT) | UXN;

/// A level-1 table of 1 GiB blocks.
#[repr(C, align(4096))]
pub struct L1Table([u64; 512]);

/// The identity map TTBR0_EL1 points at; read-only, so it is correct in
/// memory straight from the image.
pub static BOOT_L1: L1Table = {
    let mut table = [0; 512];
    table[0] = DEVICE_BLOCK;
    table[1] = GIB | NORMAL_BLOCK;
    L1Table(table)
};

/// Whether `[start, end)` lies in the normal-memory window.
pub fn is_normal_memory(start: u64, end: u64) -> bool {
    NORMAL_START <= start && start <= end && end <= NORMAL_END
}
