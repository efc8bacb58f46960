//! The guest's stage-1 translation: one static identity map, built at compile
//! time and never written, so that the entry code can turn the MMU on before
//! it has written a single byte (nothing written with the caches off has to
//! be cleaned or invalidated, Arm ARM D8.2.12 "Behavior of caches at reset").
//!
//! The map covers a 40-bit (1 TiB) address space in 1 GiB blocks:
//!
//! | range             | memory type                | why                                        |
//! |-------------------|----------------------------|--------------------------------------------|
//! | [0, 1 GiB)        | Device-nGnRnE, executable  | MMIO (PL011); the abort test fetches from it |
//! | [1 GiB, 2 GiB)    | Normal write-back, inner shareable | RAM: Rust code needs atomics and unaligned accesses |
//! | [2 GiB, 1 TiB)    | Device-nGnRnE, execute-never | nothing of ours: the abort and fuzz tests probe it |
//!
//! Everything the tests probe must be *mapped* at stage 1: an unmapped address
//! would fault at stage 1 inside the guest (a translation fault) and never
//! reach the hypervisor, whose stage-2 fault handling is what they test.

use aarch64_cpu::registers::{CPACR_EL1, MAIR_EL1, SCTLR_EL1, TCR_EL1};

/// Size of a level-1 block.
const GIB: u64 = 1 << 30;

/// Start of the window mapped as normal memory, where RAM must lie.
pub const NORMAL_START: u64 = GIB;
/// End of the window mapped as normal memory.
pub const NORMAL_END: u64 = 2 * GIB;
/// Width of the mapped address space: everything below `1 << VA_BITS` is mapped.
pub const VA_BITS: u32 = 40;

// Block and table descriptor bits (Arm ARM D8.3 "Translation table descriptor
// formats", 4 KiB granule).
/// Valid descriptor.
const VALID: u64 = 1 << 0;
/// At levels 0 to 2: a table descriptor (a block descriptor has this bit clear).
const TABLE: u64 = 1 << 1;
/// Lowest bit of AttrIndx, the MAIR_EL1 index.
const ATTR_INDEX_SHIFT: u64 = 2;
/// SH = 0b11, inner shareable.
const INNER_SHAREABLE: u64 = 0b11 << 8;
/// Access flag: set, so the first access does not fault.
const ACCESSED: u64 = 1 << 10;
/// Privileged (EL1) execute-never.
const PXN: u64 = 1 << 53;
/// Unprivileged (EL0) execute-never.
const UXN: u64 = 1 << 54;
// AP[2:1] = 0b00: read-write at EL1, no access at EL0. No bits to set.

/// MAIR_EL1 index of Device-nGnRnE memory.
const MAIR_DEVICE: u64 = 0;
/// MAIR_EL1 index of Normal write-back cacheable memory.
const MAIR_NORMAL: u64 = 1;

/// MAIR_EL1: index 0 Device-nGnRnE, index 1 Normal write-back read/write-allocate.
pub const MAIR: u64 = MAIR_EL1::Attr0_Device::nonGathering_nonReordering_noEarlyWriteAck.value
    | MAIR_EL1::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL1::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value;

/// A 1 GiB device block that EL1 may execute from. Only the first GiB is
/// mapped like this, because the abort test branches to 0x2000_0000 to see the
/// hypervisor's instruction abort: with PXN set, the fetch would instead stop
/// at a stage-1 permission fault. Speculative fetches cannot reach a device
/// this way: every device the guest sees is emulated behind stage-2 faults.
const DEVICE_EXEC_BLOCK: u64 = VALID | ACCESSED | (MAIR_DEVICE << ATTR_INDEX_SHIFT) | UXN;
/// A 1 GiB device block, never executable.
const DEVICE_BLOCK: u64 = DEVICE_EXEC_BLOCK | PXN;
/// A 1 GiB block of normal memory: RAM, executable at EL1.
const NORMAL_BLOCK: u64 =
    VALID | ACCESSED | INNER_SHAREABLE | (MAIR_NORMAL << ATTR_INDEX_SHIFT) | UXN;

/// TCR_EL1 without IPS (set at run time from ID_AA64MMFR0_EL1.PARange):
/// 40-bit VAs through TTBR0, so the walk starts at level 0 (Arm ARM D8.2.2);
/// TTBR1 walks off.
pub const TCR: u64 = TCR_EL1::T0SZ.val(64 - VA_BITS as u64).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::EPD1::DisableTTBR1Walks.value;

/// SCTLR_EL1 with the MMU, both caches and stack alignment checks on. Bits
/// 11, 20, 22, 23, 28 and 29 are RES1 in Armv8.0 (EOS, TSCXT, EIS, SPAN,
/// nTLSMD, LSMAOE in later versions, where 1 keeps the Armv8.0 behaviour).
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

/// CPACR_EL1: FP/SIMD untrapped, since Rust code uses the vector registers.
pub const CPACR: u64 = CPACR_EL1::FPEN::TrapNothing.value;

/// A level-1 table of 1 GiB blocks.
#[repr(C, align(4096))]
pub struct L1Table([u64; 512]);

impl L1Table {
    /// The blocks of `[first_gib, first_gib + 512)` GiB.
    const fn new(first_gib: u64) -> Self {
        let mut table = [0; 512];
        let mut i = 0;
        while i < 512 {
            let gib = first_gib + i as u64;
            table[i] = (gib * GIB) | block_attributes(gib);
            i += 1;
        }
        Self(table)
    }
}

/// The attributes of the block at `gib` GiB.
const fn block_attributes(gib: u64) -> u64 {
    match gib {
        0 => DEVICE_EXEC_BLOCK,
        1 => NORMAL_BLOCK,
        _ => DEVICE_BLOCK,
    }
}

/// `[0, 512 GiB)`.
static L1_LOW: L1Table = L1Table::new(0);
/// `[512 GiB, 1 TiB)`.
static L1_HIGH: L1Table = L1Table::new(512);

/// A level-0 table descriptor: the next table's address with bits [1:0] =
/// 0b11, or null for an invalid entry. A pointer rather than a `u64`, because
/// only a pointer can carry another static's address in a constant.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct TableDescriptor(*const u8);

impl TableDescriptor {
    const INVALID: Self = Self(core::ptr::null());

    const fn to(next: &'static L1Table) -> Self {
        // The table is page-aligned, so adding 0b11 sets exactly bits [1:0].
        let address = (next as *const L1Table).cast::<u8>();
        Self(address.wrapping_add((VALID | TABLE) as usize))
    }
}

/// The level-0 table TTBR0_EL1 points at: entry 0 covers `[0, 512 GiB)`,
/// entry 1 `[512 GiB, 1 TiB)`; a 40-bit address space has no others.
#[repr(C, align(4096))]
pub struct L0Table([TableDescriptor; 512]);

// SAFETY: The table is immutable; its pointers are only ever read by the
// MMU's table walks, never dereferenced by Rust code.
unsafe impl Sync for L0Table {}

/// The root of the identity map; read-only, so it is correct in memory
/// straight from the image.
pub static BOOT_L0: L0Table = {
    let mut table = [TableDescriptor::INVALID; 512];
    table[0] = TableDescriptor::to(&L1_LOW);
    table[1] = TableDescriptor::to(&L1_HIGH);
    L0Table(table)
};

/// Whether `[start, end)` lies in the normal-memory window.
pub fn is_normal_memory(start: u64, end: u64) -> bool {
    NORMAL_START <= start && start <= end && end <= NORMAL_END
}
