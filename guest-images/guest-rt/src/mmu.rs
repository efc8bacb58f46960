//! The guest's stage-1 translation: a static identity map, built at compile
//! time and never written, so that the entry code can turn the MMU on before
//! it has written a single byte (nothing written with the caches off has to
//! be cleaned or invalidated, Arm ARM D8.2.12 "Behavior of caches at reset").
//!
//! Each guest lays out its own map in 1 GiB blocks with [`L1Table::new`]
//! (and, for more than 512 GiB, an [`L0Table`] over several of them); what
//! is common is the memory types, TCR_EL1, SCTLR_EL1 and that RAM lies in
//! `[NORMAL_START, NORMAL_END)`, mapped as normal memory: Rust code needs
//! atomics and unaligned accesses.

use aarch64_cpu::registers::{CPACR_EL1, MAIR_EL1, SCTLR_EL1, TCR_EL1};

/// Size of a level-1 block.
pub const GIB: u64 = 1 << 30;

/// Start of the window mapped as normal memory, where RAM must lie.
pub const NORMAL_START: u64 = GIB;
/// End of the window mapped as normal memory.
pub const NORMAL_END: u64 = 2 * GIB;

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

/// TCR_EL1 for a `va_bits`-wide address space through TTBR0, without IPS
/// (the entry code sets it from ID_AA64MMFR0_EL1.PARange); TTBR1 walks off.
/// 39 bits start the walk at level 1 (an [`L1Table`] root), 40 to 48 at
/// level 0 (an [`L0Table`] root), Arm ARM D8.2.2.
pub const fn tcr(va_bits: u32) -> u64 {
    TCR_EL1::T0SZ.val(64 - va_bits as u64).value
        | TCR_EL1::TG0::KiB_4.value
        | TCR_EL1::SH0::Inner.value
        | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
        | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
        | TCR_EL1::TG1::KiB_4.value
        | TCR_EL1::EPD1::DisableTTBR1Walks.value
}

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

/// What a 1 GiB block maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// Nothing: an access faults at stage 1.
    Unmapped,
    /// Device-nGnRnE, never executable.
    Device,
    /// Device-nGnRnE that EL1 may execute from (for a test that branches
    /// into MMIO to see the hypervisor's instruction abort).
    DeviceExecutable,
    /// Normal write-back, inner shareable, executable at EL1: RAM.
    Normal,
}

impl Block {
    /// The level-1 block descriptor of this block at `gib` GiB.
    const fn descriptor(self, gib: u64) -> u64 {
        let attributes = match self {
            Self::Unmapped => return 0,
            Self::Device => VALID | ACCESSED | (MAIR_DEVICE << ATTR_INDEX_SHIFT) | PXN | UXN,
            Self::DeviceExecutable => VALID | ACCESSED | (MAIR_DEVICE << ATTR_INDEX_SHIFT) | UXN,
            Self::Normal => {
                VALID | ACCESSED | INNER_SHAREABLE | (MAIR_NORMAL << ATTR_INDEX_SHIFT) | UXN
            }
        };
        (gib * GIB) | attributes
    }
}

/// A level-1 table of 1 GiB blocks.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct L1Table([u64; 512]);

impl L1Table {
    /// The blocks of `[first_gib, first_gib + 512)` GiB: the block at `gib`
    /// GiB is `low[gib]`, or `rest` past the end of `low`.
    pub const fn new(first_gib: u64, low: &[Block], rest: Block) -> Self {
        let mut table = [0; 512];
        let mut i = 0;
        while i < 512 {
            let gib = first_gib + i as u64;
            let block = if gib < low.len() as u64 {
                low[gib as usize]
            } else {
                rest
            };
            table[i] = block.descriptor(gib);
            i += 1;
        }
        Self(table)
    }

    /// The descriptor of the `index`th block, or `None` past the end.
    pub fn descriptor(&self, index: usize) -> Option<u64> {
        self.0.get(index).copied()
    }
}

/// A level-0 table descriptor: the next table's address with bits [1:0] =
/// 0b11, or null for an invalid entry. A pointer rather than a `u64`, because
/// only a pointer can carry another static's address in a constant.
#[derive(Clone, Copy, Debug)]
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

/// A level-0 table: entry `i` covers `[i * 512 GiB, (i + 1) * 512 GiB)`.
#[derive(Debug)]
#[repr(C, align(4096))]
pub struct L0Table([TableDescriptor; 512]);

// SAFETY: The table is immutable; its pointers are only ever read by the
// MMU's table walks, never dereferenced by Rust code.
unsafe impl Sync for L0Table {}

impl L0Table {
    /// Entry `i` points at `tables[i]`; the entries past them are invalid.
    /// More than 512 tables are cut to 512.
    pub const fn new(tables: &[&'static L1Table]) -> Self {
        let mut table = [TableDescriptor::INVALID; 512];
        let mut i = 0;
        while i < tables.len() && i < 512 {
            table[i] = TableDescriptor::to(tables[i]);
            i += 1;
        }
        Self(table)
    }
}

/// Whether `[start, end)` lies in the normal-memory window.
pub fn is_normal_memory(start: u64, end: u64) -> bool {
    NORMAL_START <= start && start <= end && end <= NORMAL_END
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_as_both_guests_lay_them_out() {
        let bench = L1Table::new(0, &[Block::Device, Block::Normal], Block::Unmapped);
        assert_eq!(bench.descriptor(0), Some(0x0060_0000_0000_0401));
        assert_eq!(bench.descriptor(1), Some(0x0040_0000_4000_0705));
        assert_eq!(bench.descriptor(2), Some(0));
        assert_eq!(bench.descriptor(512), None);

        let high = L1Table::new(
            512,
            &[Block::DeviceExecutable, Block::Normal],
            Block::Device,
        );
        assert_eq!(
            high.descriptor(0),
            Some((512 * GIB) | 0x0060_0000_0000_0401)
        );
        let low = L1Table::new(0, &[Block::DeviceExecutable], Block::Device);
        assert_eq!(low.descriptor(0), Some(0x0040_0000_0000_0401));
    }

    #[test]
    fn normal_window() {
        assert!(is_normal_memory(NORMAL_START, NORMAL_END));
        assert!(!is_normal_memory(NORMAL_START - 1, NORMAL_START + 8));
        assert!(!is_normal_memory(NORMAL_END - 8, NORMAL_END + 1));
        assert!(!is_normal_memory(NORMAL_START + 16, NORMAL_START + 8));
    }

    #[test]
    fn tcr_sets_t0sz() {
        assert_eq!(tcr(39) & 0x3f, 25);
        assert_eq!(tcr(40) & 0x3f, 24);
    }
}
