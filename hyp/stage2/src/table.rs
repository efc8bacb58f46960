//! A VM's stage-2 translation table, built with `aarch64-paging`.
//!
//! Descriptor fields (Arm ARM DDI 0487 K.a, D8.3 "Translation table
//! descriptor formats", stage 2 Block and Page descriptors): MemAttr [5:2],
//! S2AP [7:6], SH [9:8], AF [10], XN [54:53].

use crate::{Stage2Config, Stage2Error};
use aarch64_cpu::registers::VTTBR_EL2;
use aarch64_paging::descriptor::{Descriptor, PhysicalAddress, Stage2Attributes};
use aarch64_paging::idmap::IdTranslation;
use aarch64_paging::paging::{Constraints, MemoryRegion, Stage2, PAGE_SIZE};
use aarch64_paging::Mapping;
use addr::{IntermediatePhysAddr, PhysAddr};
use alloc::vec::Vec;
use core::fmt;
use id_alloc::Vmid;

// Addresses cross between `u64` (ours) and `usize` (aarch64-paging's): both
// targets that build this crate, aarch64 and the 64-bit test hosts, make
// those casts lossless.
const _: () = assert!(usize::BITS == u64::BITS);

/// The translation granule: 4 KiB.
const GRANULE: u64 = PAGE_SIZE as u64;

/// Guest RAM: Normal memory, Inner and Outer Write-Back Cacheable (MemAttr
/// 0b1111), Inner Shareable, read/write (S2AP 0b11), access flag set so the
/// first access does not fault, executable at EL1 and EL0 (XN 0b00). With
/// HCR_EL2.FWB clear, stage 1 still chooses the guest's final attributes
/// within these.
const RAM: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_NORMAL_INNER_WB)
    .union(Stage2Attributes::MEMATTR_NORMAL_OUTER_WB)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::SH_INNER)
    .union(Stage2Attributes::ACCESS_FLAG);

/// A passthrough device: Device-nGnRE (MemAttr 0b0001), read/write, access
/// flag set, never executable (XN 0b10: neither at EL1 nor at EL0). SH is
/// left 0: Device memory is always treated as Outer Shareable.
const DEVICE: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_DEVICE_nGnRE)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::ACCESS_FLAG)
    .union(Stage2Attributes::XN);

/// Descriptor bits [5:4], MemAttr[3:2]: zero for every Device type, non-zero
/// for every Normal one (stage 2 with FWB disabled).
const MEMATTR_NORMAL_OUTER: Stage2Attributes = Stage2Attributes::MEMATTR_NORMAL_OUTER_WB;

/// What an IPA is mapped as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// Guest RAM: Normal write-back memory, executable (see
    /// [`Stage2Table::map_ram`]).
    Ram,
    /// Device-nGnRE memory, never executable (see [`Stage2Table::map_device`]).
    Device,
}

/// Where an IPA leads, as found by [`Stage2Table::translate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Translation {
    /// The host physical address the IPA maps to.
    pub pa: PhysAddr,
    /// How it is mapped.
    pub kind: MemoryKind,
    /// Size of the block or page that maps it: 4 KiB, 2 MiB or 1 GiB.
    pub mapping_size: u64,
}

/// A VM's stage-2 translation table: guest IPAs to host PAs, 4 KiB granule.
///
/// The tables come from the global allocator and their addresses are used as
/// physical addresses, so the allocator's memory must be identity-mapped
/// (true of the hypervisor's heap, and of the host in tests).
///
/// # TLB maintenance is the caller's
///
/// The table is never activated through `aarch64-paging` (that would load
/// VTTBR_EL2 without a VMID) and never marked active, so no method here
/// issues TLB maintenance. The hypervisor loads [`vttbr`](Self::vttbr) and
/// [`Stage2Config::vtcr`] itself. After [`unmap`](Self::unmap) on a table
/// that a CPU may be using, the caller must invalidate the VM's stage-2 TLB
/// entries by VMID (for example `TLBI VMALLS12E1IS` with the VM's VTTBR_EL2
/// loaded, then `DSB ISH`) before the unmapped memory is given to anyone
/// else. Adding mappings to an unmapped range needs no invalidation (TLBs
/// never hold faulting translations), only a `DSB ISHST` before a vCPU may
/// use them.
///
/// Two more consequences of that choice:
///
/// - [`unmap`](Self::unmap) never frees a next-level table: a CPU may still
///   hold the old table entry in its walk cache until the caller's
///   invalidation, and a freed and reused page would then be walked as
///   descriptors. Tables are freed when the `Stage2Table` is dropped.
/// - Unmapping part of a block replaces the block with a table of pages
///   without break-before-make. On a table in use this is only safe while no
///   vCPU of the VM runs (or unmap whole blocks, which
///   [`translate`](Self::translate)'s `mapping_size` tells).
///
/// Dropping the table frees its memory: no CPU may use it any more, and its
/// VMID's TLB entries must have been invalidated first.
pub struct Stage2Table {
    mapping: Mapping<IdTranslation<Stage2Attributes>, Stage2>,
    config: Stage2Config,
}

impl Stage2Table {
    /// An empty table for `config`: only the root table, nothing mapped.
    ///
    /// Allocates the root table from the global allocator (allocation
    /// failure goes to its error handler).
    pub fn new(config: &Stage2Config) -> Self {
        Self {
            mapping: Mapping::new(IdTranslation::new(), config.root_level(), Stage2),
            config: *config,
        }
    }

    /// The configuration the table was built for.
    pub fn config(&self) -> &Stage2Config {
        &self.config
    }

    /// Maps `size` bytes of guest RAM at `ipa` onto host memory at `pa`:
    /// Normal memory, Inner and Outer Write-Back Cacheable, Inner Shareable,
    /// read/write, executable, access flag set. Uses 1 GiB and 2 MiB blocks
    /// wherever `ipa` and `pa` are equally aligned.
    ///
    /// # Errors
    ///
    /// - [`Stage2Error::MisalignedIpa`], [`Stage2Error::MisalignedPa`],
    ///   [`Stage2Error::MisalignedSize`]: not a multiple of 4 KiB;
    /// - [`Stage2Error::EmptyRange`]: `size` is 0;
    /// - [`Stage2Error::BeyondIpaSize`], [`Stage2Error::BeyondPaSize`]: the
    ///   range ends beyond the IPA or PA size;
    /// - [`Stage2Error::Overlap`]: part of the IPA range is already mapped;
    /// - [`Stage2Error::Map`]: `aarch64-paging` refused (a bug).
    ///
    /// On error the table is unchanged.
    pub fn map_ram(
        &mut self,
        ipa: IntermediatePhysAddr,
        pa: PhysAddr,
        size: u64,
    ) -> Result<(), Stage2Error> {
        self.map(ipa, pa, size, RAM)
    }

    /// Maps `size` bytes of a device the guest owns directly at `ipa` onto
    /// its registers at `pa`: Device-nGnRE, read/write, execute-never.
    ///
    /// # Errors
    ///
    /// As [`map_ram`](Self::map_ram).
    pub fn map_device(
        &mut self,
        ipa: IntermediatePhysAddr,
        pa: PhysAddr,
        size: u64,
    ) -> Result<(), Stage2Error> {
        self.map(ipa, pa, size, DEVICE)
    }

    /// Removes every mapping in `size` bytes at `ipa`. Parts of the range
    /// that are not mapped are skipped, so unmapping is idempotent; blocks
    /// that straddle the range's ends are split into pages. See the type's
    /// documentation for the TLB invalidation the caller owes afterwards.
    ///
    /// # Errors
    ///
    /// - [`Stage2Error::MisalignedIpa`], [`Stage2Error::MisalignedSize`];
    /// - [`Stage2Error::EmptyRange`]: `size` is 0;
    /// - [`Stage2Error::BeyondIpaSize`];
    /// - [`Stage2Error::Map`]: `aarch64-paging` refused (a bug).
    pub fn unmap(&mut self, ipa: IntermediatePhysAddr, size: u64) -> Result<(), Stage2Error> {
        let region = self.ipa_region(ipa, size)?;
        // Only the pieces that are mapped are touched: rewriting the whole
        // range would split invalid 1 GiB and 2 MiB entries into new, empty
        // tables for nothing.
        let mut mapped = Vec::new();
        self.mapping
            .walk_range(&region, &mut |chunk, descriptor, _level| {
                if descriptor.is_valid() {
                    mapped.push(chunk.clone());
                }
                Ok(())
            })?;
        for chunk in &mapped {
            // `modify_range` only hands leaf descriptors to the closure (it
            // descends into tables, splitting a block first if the chunk
            // covers only part of it) and, unlike `map_range` with invalid
            // flags, never frees a table.
            self.mapping.modify_range(chunk, &|_, descriptor| {
                descriptor.set(PhysicalAddress(0), Stage2Attributes::empty())
            })?;
        }
        Ok(())
    }

    /// The host PA that `ipa` maps to and how, or `None` if it is not mapped
    /// (or lies beyond the IPA size).
    pub fn translate(&self, ipa: IntermediatePhysAddr) -> Option<Translation> {
        if ipa.get() >= self.config.ipa_limit() {
            return None;
        }
        let page = ipa.align_down(GRANULE).get();
        let region = MemoryRegion::new(page as usize, (page + GRANULE) as usize);
        let mut found = None;
        // The region is in range (checked above), and the closure never
        // fails, so the walk cannot fail either.
        let _ = self
            .mapping
            .walk_range(&region, &mut |_, descriptor, level| {
                found = leaf(descriptor, level, ipa);
                Ok(())
            });
        found
    }

    /// Physical address of the root table, for VTTBR_EL2.BADDR.
    pub fn root_pa(&self) -> PhysAddr {
        PhysAddr(self.mapping.root_address().0 as u64)
    }

    /// The VTTBR_EL2 value that selects this table for `vmid`: BADDR = the
    /// root table's address, VMID in bits 63:48 (16-bit VMIDs) or 55:48
    /// (8-bit VMIDs, bits 63:56 then being RES0), CnP = 0 (TLB entries are
    /// not marked Common between CPUs).
    ///
    /// # Errors
    ///
    /// [`Stage2Error::VmidTooWide`] if `vmid` does not fit in the
    /// configured VMID width: cutting it down would make two VMs share TLB
    /// entries.
    pub fn vttbr(&self, vmid: Vmid) -> Result<u64, Stage2Error> {
        let vmid_bits = self.config.vmid_bits();
        if u32::from(vmid.get()) >= 1 << vmid_bits {
            return Err(Stage2Error::VmidTooWide { vmid, vmid_bits });
        }
        // The root table is page aligned, so BADDR's low bits (down to bit 1,
        // which the field starts at) are 0, as is CnP in bit 0.
        Ok((VTTBR_EL2::BADDR.val(self.root_pa().get() >> 1)
            + VTTBR_EL2::VMID.val(u64::from(vmid.get()))
            + VTTBR_EL2::CnP::CLEAR)
            .value)
    }

    fn map(
        &mut self,
        ipa: IntermediatePhysAddr,
        pa: PhysAddr,
        size: u64,
        attributes: Stage2Attributes,
    ) -> Result<(), Stage2Error> {
        let region = self.ipa_region(ipa, size)?;
        if !pa.is_aligned(GRANULE) {
            return Err(Stage2Error::MisalignedPa(pa));
        }
        let pa_bits = self.config.pa_bits();
        match pa.checked_add(size) {
            Some(end) if end.get() <= 1 << pa_bits => {}
            _ => return Err(Stage2Error::BeyondPaSize { pa, size, pa_bits }),
        }
        if let Some(mapped) = self.first_mapped(&region) {
            return Err(Stage2Error::Overlap { ipa, size, mapped });
        }
        self.mapping.map_range(
            &region,
            PhysicalAddress(pa.get() as usize),
            attributes,
            Constraints::empty(),
        )?;
        Ok(())
    }

    /// Checks an IPA range and converts it for `aarch64-paging`.
    fn ipa_region(
        &self,
        ipa: IntermediatePhysAddr,
        size: u64,
    ) -> Result<MemoryRegion, Stage2Error> {
        if !ipa.is_aligned(GRANULE) {
            return Err(Stage2Error::MisalignedIpa(ipa));
        }
        if !size.is_multiple_of(GRANULE) {
            return Err(Stage2Error::MisalignedSize(size));
        }
        if size == 0 {
            return Err(Stage2Error::EmptyRange(ipa));
        }
        let ipa_bits = self.config.ipa_bits();
        match ipa.checked_add(size) {
            Some(end) if end.get() <= self.config.ipa_limit() => {
                Ok(MemoryRegion::new(ipa.get() as usize, end.get() as usize))
            }
            _ => Err(Stage2Error::BeyondIpaSize {
                ipa,
                size,
                ipa_bits,
            }),
        }
    }

    /// The first IPA in `region` that is mapped, if any.
    fn first_mapped(&self, region: &MemoryRegion) -> Option<IntermediatePhysAddr> {
        let mut mapped = None;
        // Stop at the first valid entry; the error that stopping returns
        // carries nothing more than `mapped` does.
        let _ = self
            .mapping
            .walk_range(region, &mut |chunk, descriptor, _| {
                if descriptor.is_valid() {
                    mapped = Some(IntermediatePhysAddr(chunk.start().0 as u64));
                    Err(())
                } else {
                    Ok(())
                }
            });
        mapped
    }
}

/// The translation of `ipa` by the leaf `descriptor` at `level`, if valid.
fn leaf(
    descriptor: &Descriptor<Stage2Attributes>,
    level: usize,
    ipa: IntermediatePhysAddr,
) -> Option<Translation> {
    if !descriptor.is_valid() {
        return None;
    }
    let mapping_size = level_size(level);
    let base = descriptor.output_address().0 as u64;
    let kind = if descriptor.flags().intersects(MEMATTR_NORMAL_OUTER) {
        MemoryKind::Ram
    } else {
        MemoryKind::Device
    };
    Some(Translation {
        pa: PhysAddr(base + (ipa.get() & (mapping_size - 1))),
        kind,
        mapping_size,
    })
}

/// Bytes one entry at `level` maps with the 4 KiB granule: 512 GiB at
/// level 0, 1 GiB at 1, 2 MiB at 2, 4 KiB at 3.
const fn level_size(level: usize) -> u64 {
    GRANULE << (9 * (3 - level))
}

impl fmt::Debug for Stage2Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage2Table")
            .field("root", &self.root_pa())
            .field("config", &self.config)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;
    use std::vec;

    const KIB4: u64 = 0x1000;
    const MIB2: u64 = 0x20_0000;
    const GIB: u64 = 0x4000_0000;

    // Descriptor fields, positions written out from the Arm ARM.
    const VALID: u64 = 1 << 0;
    const TABLE_OR_PAGE: u64 = 1 << 1;
    const MEMATTR: u64 = 0b1111 << 2;
    const S2AP: u64 = 0b11 << 6;
    const SH: u64 = 0b11 << 8;
    const AF: u64 = 1 << 10;
    const XN: u64 = 0b11 << 53;

    fn ipa(a: u64) -> IntermediatePhysAddr {
        IntermediatePhysAddr(a)
    }

    fn table_39() -> Stage2Table {
        Stage2Table::new(&Stage2Config::new(ipa(4 * GIB), 5, 8).unwrap())
    }

    /// One leaf as the walker sees it: where it starts, its level and its
    /// raw bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Leaf {
        ipa: u64,
        level: usize,
        bits: u64,
    }

    /// The valid leaves covering `[start, start + size)`, by walking the
    /// descriptors.
    fn leaves(table: &Stage2Table, start: u64, size: u64) -> vec::Vec<Leaf> {
        let mut out = vec::Vec::new();
        table
            .mapping
            .walk_range(
                &MemoryRegion::new(start as usize, (start + size) as usize),
                &mut |chunk, d, level| {
                    if d.is_valid() {
                        out.push(Leaf {
                            ipa: chunk.start().0 as u64,
                            level,
                            bits: d.flags().bits() as u64 | d.output_address().0 as u64,
                        });
                    }
                    Ok(())
                },
            )
            .unwrap();
        out
    }

    fn field(bits: u64, mask: u64) -> u64 {
        (bits & mask) >> mask.trailing_zeros()
    }

    /// The RAM attributes of the brief, field by field: MemAttr 0b1111
    /// (Normal, outer and inner write-back), S2AP 0b11 (read/write), SH 0b11
    /// (inner shareable), AF 1, XN 0b00 (executable).
    fn assert_ram(bits: u64) {
        assert_eq!(bits & VALID, VALID);
        assert_eq!(field(bits, MEMATTR), 0b1111, "MemAttr in {bits:#x}");
        assert_eq!(field(bits, S2AP), 0b11, "S2AP in {bits:#x}");
        assert_eq!(field(bits, SH), 0b11, "SH in {bits:#x}");
        assert_eq!(field(bits, AF), 1, "AF in {bits:#x}");
        assert_eq!(field(bits, XN), 0b00, "XN in {bits:#x}");
    }

    /// Device: MemAttr 0b0001 (Device-nGnRE), S2AP 0b11, AF 1, XN 0b10
    /// (execute-never at EL1 and EL0).
    fn assert_device(bits: u64) {
        assert_eq!(bits & VALID, VALID);
        assert_eq!(field(bits, MEMATTR), 0b0001, "MemAttr in {bits:#x}");
        assert_eq!(field(bits, S2AP), 0b11, "S2AP in {bits:#x}");
        assert_eq!(field(bits, AF), 1, "AF in {bits:#x}");
        assert_eq!(field(bits, XN), 0b10, "XN in {bits:#x}");
    }

    #[test]
    fn ram_at_1_gib_uses_a_1_gib_block_with_ram_attributes() {
        let mut t = table_39();
        t.map_ram(ipa(GIB), PhysAddr(0x8000_0000), GIB).unwrap();

        let all = leaves(&t, GIB, GIB);
        assert_eq!(all.len(), 1);
        let block = all[0];
        assert_eq!((block.ipa, block.level), (GIB, 1));
        // A block descriptor: bits[1:0] = 0b01.
        assert_eq!(block.bits & TABLE_OR_PAGE, 0);
        assert_eq!(block.bits & 0xffff_ffff_f000, 0x8000_0000);
        assert_ram(block.bits);

        assert_eq!(
            t.translate(ipa(0x4000_1234)),
            Some(Translation {
                pa: PhysAddr(0x8000_1234),
                kind: MemoryKind::Ram,
                mapping_size: GIB,
            })
        );
        assert_eq!(
            t.translate(ipa(2 * GIB - 1)).unwrap().pa,
            PhysAddr(0xbfff_ffff)
        );
        assert_eq!(t.translate(ipa(2 * GIB)), None);
        assert_eq!(t.translate(ipa(GIB - 1)), None);
    }

    #[test]
    fn two_mib_aligned_ram_uses_2_mib_blocks_and_pages_at_the_edges() {
        let mut t = table_39();
        // [0x4000_0000 + 4 KiB, + 6 MiB): a page-level head up to the first
        // 2 MiB boundary, two 2 MiB blocks, then a page-level tail.
        let start = GIB + KIB4;
        let size = 3 * MIB2;
        t.map_ram(ipa(start), PhysAddr(0x9000_0000 + KIB4), size)
            .unwrap();

        let all = leaves(&t, start, size);
        let blocks: vec::Vec<_> = all.iter().filter(|l| l.level == 2).collect();
        let pages = all.iter().filter(|l| l.level == 3).count();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].ipa, GIB + MIB2);
        assert_eq!(blocks[1].ipa, GIB + 2 * MIB2);
        // 511 pages up to the first 2 MiB boundary, 1 after the last.
        assert_eq!(pages, 511 + 1);
        for leaf in &all {
            assert_ram(leaf.bits);
            let expect_page = leaf.level == 3;
            assert_eq!(leaf.bits & TABLE_OR_PAGE != 0, expect_page, "{leaf:?}");
        }
        let mid = t.translate(ipa(GIB + MIB2 + 0x1_2345)).unwrap();
        assert_eq!(mid.pa, PhysAddr(0x9000_0000 + MIB2 + 0x1_2345));
        assert_eq!(mid.mapping_size, MIB2);
        let head = t.translate(ipa(start)).unwrap();
        assert_eq!((head.pa, head.mapping_size), (PhysAddr(0x9000_1000), KIB4));
        let last = t.translate(ipa(start + size - 1)).unwrap();
        assert_eq!(last.pa, PhysAddr(0x9000_1000 + size - 1));
        assert_eq!(t.translate(ipa(start + size)), None);
    }

    #[test]
    fn pa_misaligned_to_the_ipa_blocks_gets_pages_only() {
        let mut t = table_39();
        // The IPA is 2 MiB aligned, the PA only 4 KiB: no block can map it.
        t.map_ram(ipa(GIB), PhysAddr(0x8000_1000), 2 * MIB2)
            .unwrap();
        let all = leaves(&t, GIB, 2 * MIB2);
        assert_eq!(all.len(), (2 * MIB2 / KIB4) as usize);
        assert!(all.iter().all(|l| l.level == 3));
        assert_eq!(
            t.translate(ipa(GIB + MIB2)).unwrap().pa,
            PhysAddr(0x8000_1000 + MIB2)
        );
    }

    #[test]
    fn device_mapping_is_device_ngnre_and_execute_never() {
        let mut t = table_39();
        t.map_device(ipa(0x0a00_0000), PhysAddr(0x1000_0000), 0x4000)
            .unwrap();
        let all = leaves(&t, 0x0a00_0000, 0x4000);
        assert_eq!(all.len(), 4);
        for leaf in all {
            assert_eq!(leaf.level, 3);
            assert_device(leaf.bits);
        }
        assert_eq!(
            t.translate(ipa(0x0a00_2008)),
            Some(Translation {
                pa: PhysAddr(0x1000_2008),
                kind: MemoryKind::Device,
                mapping_size: KIB4,
            })
        );
    }

    #[test]
    fn overlapping_map_is_refused_and_changes_nothing() {
        let mut t = table_39();
        t.map_ram(ipa(GIB), PhysAddr(0x8000_0000), 4 * MIB2)
            .unwrap();
        // Starts before the mapping and runs into it.
        let e = t.map_ram(ipa(GIB - MIB2), PhysAddr(0x1_0000_0000), 2 * MIB2);
        assert_eq!(
            e,
            Err(Stage2Error::Overlap {
                ipa: ipa(GIB - MIB2),
                size: 2 * MIB2,
                mapped: ipa(GIB),
            })
        );
        assert_eq!(t.translate(ipa(GIB - MIB2)), None);
        // Inside the mapping, as a device: still refused, RAM stays RAM.
        let e = t.map_device(ipa(GIB + 0x3000), PhysAddr(0x0900_0000), KIB4);
        assert_eq!(
            e,
            Err(Stage2Error::Overlap {
                ipa: ipa(GIB + 0x3000),
                size: KIB4,
                mapped: ipa(GIB + 0x3000),
            })
        );
        let still = t.translate(ipa(GIB + 0x3000)).unwrap();
        assert_eq!(
            (still.pa, still.kind),
            (PhysAddr(0x8000_3000), MemoryKind::Ram)
        );
        // Exactly the same mapping again is an overlap too.
        assert!(matches!(
            t.map_ram(ipa(GIB), PhysAddr(0x8000_0000), 4 * MIB2),
            Err(Stage2Error::Overlap { .. })
        ));
        // Adjacent on both sides is fine.
        t.map_ram(ipa(GIB - KIB4), PhysAddr(0x1_0000_0000), KIB4)
            .unwrap();
        t.map_ram(ipa(GIB + 4 * MIB2), PhysAddr(0x1_0000_1000), KIB4)
            .unwrap();
    }

    #[test]
    fn bad_ranges_are_refused_with_the_offending_value() {
        let mut t = table_39();
        let pa = PhysAddr(0x8000_0000);
        assert_eq!(
            t.map_ram(ipa(GIB + 0x10), pa, KIB4),
            Err(Stage2Error::MisalignedIpa(ipa(GIB + 0x10)))
        );
        assert_eq!(
            t.map_ram(ipa(GIB), PhysAddr(0x8000_0800), KIB4),
            Err(Stage2Error::MisalignedPa(PhysAddr(0x8000_0800)))
        );
        assert_eq!(
            t.map_device(ipa(GIB), pa, 0x1800),
            Err(Stage2Error::MisalignedSize(0x1800))
        );
        assert_eq!(
            t.map_ram(ipa(GIB), pa, 0),
            Err(Stage2Error::EmptyRange(ipa(GIB)))
        );
        // Ends one page beyond 2^39.
        let top = (1 << 39) - KIB4;
        assert_eq!(
            t.map_ram(ipa(top), pa, 2 * KIB4),
            Err(Stage2Error::BeyondIpaSize {
                ipa: ipa(top),
                size: 2 * KIB4,
                ipa_bits: 39
            })
        );
        t.map_ram(ipa(top), pa, KIB4).unwrap();
        // Wraps around the address space.
        let wrap = u64::MAX - KIB4 + 1;
        assert!(matches!(
            t.map_ram(ipa(wrap), pa, 2 * KIB4),
            Err(Stage2Error::BeyondIpaSize { .. })
        ));
        // PA beyond 48 bits: aarch64-paging would silently drop the high
        // bits, so it must be refused here.
        assert_eq!(
            t.map_ram(ipa(0), PhysAddr(1 << 48), KIB4),
            Err(Stage2Error::BeyondPaSize {
                pa: PhysAddr(1 << 48),
                size: KIB4,
                pa_bits: 48
            })
        );
        assert!(matches!(
            t.map_ram(ipa(0), PhysAddr(wrap), 2 * KIB4),
            Err(Stage2Error::BeyondPaSize { .. })
        ));
        assert_eq!(
            t.unmap(ipa(0x800), KIB4),
            Err(Stage2Error::MisalignedIpa(ipa(0x800)))
        );
        assert_eq!(t.unmap(ipa(0), 0), Err(Stage2Error::EmptyRange(ipa(0))));
        assert!(matches!(
            t.unmap(ipa(top), 2 * KIB4),
            Err(Stage2Error::BeyondIpaSize { .. })
        ));
        // Nothing but the one valid page was mapped.
        assert_eq!(leaves(&t, 0, 1 << 39).len(), 1);
    }

    #[test]
    fn pa_limit_follows_the_pa_size() {
        let c = Stage2Config::new(ipa(4 * GIB), 1, 8).unwrap();
        let mut t = Stage2Table::new(&c);
        assert!(matches!(
            t.map_ram(ipa(0), PhysAddr(1 << 36), KIB4),
            Err(Stage2Error::BeyondPaSize { pa_bits: 36, .. })
        ));
        assert!(matches!(
            t.map_ram(ipa(1 << 36), PhysAddr(0), KIB4),
            Err(Stage2Error::BeyondIpaSize { ipa_bits: 36, .. })
        ));
        t.map_ram(ipa((1 << 36) - KIB4), PhysAddr((1 << 36) - KIB4), KIB4)
            .unwrap();
    }

    #[test]
    fn unmap_splits_blocks_and_keeps_the_rest() {
        let mut t = table_39();
        t.map_ram(ipa(GIB), PhysAddr(0x8000_0000), 2 * MIB2)
            .unwrap();
        assert_eq!(t.translate(ipa(GIB)).unwrap().mapping_size, MIB2);

        // One page out of the middle of the first block.
        t.unmap(ipa(GIB + 0x10_0000), KIB4).unwrap();
        assert_eq!(t.translate(ipa(GIB + 0x10_0000)), None);
        assert_eq!(t.translate(ipa(GIB + 0x10_0fff)), None);
        let before = t.translate(ipa(GIB + 0x0f_f000)).unwrap();
        assert_eq!(
            (before.pa, before.mapping_size),
            (PhysAddr(0x800f_f000), KIB4)
        );
        let after = t.translate(ipa(GIB + 0x10_1000)).unwrap();
        assert_eq!(after.pa, PhysAddr(0x8010_1000));
        assert_ram(leaves(&t, GIB + 0x10_1000, KIB4)[0].bits);
        // The second block is untouched.
        assert_eq!(t.translate(ipa(GIB + MIB2)).unwrap().mapping_size, MIB2);

        // A range covering holes and both blocks: idempotent over the hole.
        t.unmap(ipa(GIB - MIB2), 4 * MIB2).unwrap();
        assert!(leaves(&t, 0, 4 * GIB).is_empty());
        t.unmap(ipa(GIB), 2 * MIB2).unwrap();

        // The range can be mapped again, now elsewhere.
        t.map_device(ipa(GIB), PhysAddr(0x0900_0000), 2 * MIB2)
            .unwrap();
        let again = t.translate(ipa(GIB + 0x10_0000)).unwrap();
        assert_eq!(
            (again.pa, again.kind),
            (PhysAddr(0x0910_0000), MemoryKind::Device)
        );
    }

    #[test]
    fn translate_beyond_the_ipa_size_is_none() {
        let mut t = table_39();
        t.map_ram(ipa(0), PhysAddr(0), GIB).unwrap();
        assert!(t.translate(ipa(0)).is_some());
        assert_eq!(t.translate(ipa(1 << 39)), None);
        assert_eq!(t.translate(ipa(u64::MAX)), None);
    }

    #[test]
    fn level_0_table_maps_high_ipas() {
        let c = Stage2Config::new(ipa(1 << 48), 5, 16).unwrap();
        let mut t = Stage2Table::new(&c);
        let high = 0xff00_0000_0000;
        t.map_ram(ipa(high), PhysAddr(0x4000_0000), GIB).unwrap();
        let tr = t.translate(ipa(high + 0x1234)).unwrap();
        assert_eq!((tr.pa, tr.mapping_size), (PhysAddr(0x4000_1234), GIB));
        let all = leaves(&t, high, GIB);
        assert_eq!((all.len(), all[0].level), (1, 1));
        assert!(matches!(
            t.map_ram(ipa((1 << 48) - KIB4), PhysAddr(0), 2 * KIB4),
            Err(Stage2Error::BeyondIpaSize { ipa_bits: 48, .. })
        ));
    }

    #[test]
    fn vttbr_with_8_bit_vmids() {
        let t = table_39();
        let root = t.root_pa().get();
        assert!(root != 0 && root.is_multiple_of(KIB4));
        let v = t.vttbr(Vmid::new(0xab)).unwrap();
        assert_eq!(v & 1, 0, "CnP");
        assert_eq!(v & 0x0000_ffff_ffff_fffe, root, "BADDR");
        assert_eq!((v >> 48) & 0xff, 0xab, "VMID[7:0]");
        assert_eq!(v >> 56, 0, "VMID[15:8] is RES0 with 8-bit VMIDs");
        assert_eq!(t.vttbr(Vmid::new(0xff)).unwrap() >> 48, 0xff);
        assert_eq!(
            t.vttbr(Vmid::new(0x1ab)),
            Err(Stage2Error::VmidTooWide {
                vmid: Vmid::new(0x1ab),
                vmid_bits: 8
            })
        );
    }

    #[test]
    fn vttbr_with_16_bit_vmids() {
        let t = Stage2Table::new(&Stage2Config::new(ipa(4 * GIB), 5, 16).unwrap());
        let root = t.root_pa().get();
        let v = t.vttbr(Vmid::new(0xbeef)).unwrap();
        assert_eq!(v & 1, 0, "CnP");
        assert_eq!(v & 0x0000_ffff_ffff_fffe, root, "BADDR");
        assert_eq!(v >> 48, 0xbeef, "VMID[15:0]");
        assert_eq!(t.vttbr(Vmid::new(0)).unwrap(), root);
    }

    /// The hypervisor keeps each VM's table behind a lock shared by CPUs.
    #[test]
    fn table_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Stage2Table>();
    }

    #[test]
    fn errors_name_the_address() {
        let mut t = table_39();
        t.map_ram(ipa(GIB), PhysAddr(0x8000_0000), KIB4).unwrap();
        let e = t
            .map_ram(ipa(GIB), PhysAddr(0x8000_0000), KIB4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlaps") && e.contains("0x40000000"), "{e}");
        let e = t
            .map_ram(ipa(0x123), PhysAddr(0), KIB4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("IPA 0x123") && e.contains("aligned"), "{e}");
        let e = t.vttbr(Vmid::new(0x100)).unwrap_err().to_string();
        assert!(e.contains("0x100") && e.contains("8 bits"), "{e}");
    }
}
