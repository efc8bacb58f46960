//! A task's address space: its regions ([`task_abi::Regions`]), what backs
//! each, and the translation tables that map them under the task's level-0
//! entry ([`TASK_BASE`]); everything else in its root table is the
//! hypervisor's own map, privileged-only.
//!
//! Most regions are made before the task first runs and stay for its life.
//! A device backend's VM RAM is different: the task maps and unmaps it
//! itself (`map_guest`, `unmap_guest`) within its [`GuestGrant`], and an
//! unmapping invalidates the TLBs of every CPU before the call returns.

use crate::boot::{MAIR_DEVICE, MAIR_NORMAL};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::arch::asm;
use task_abi::{
    Access, Buffer, GrantError, GuestGrant, GuestPages, NoSuchRegion, OutsideTask, Region,
    RegionError, Regions, GUEST_RAM_BASE, PAGE_SIZE, TASK_BASE,
};

/// Entries in one translation table.
const ENTRIES: usize = 512;

/// Bytes a level-2 block maps.
const BLOCK: u64 = 2 << 20;

/// A 4 KiB translation table.
#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

const _: () = assert!(core::mem::size_of::<Table>() as u64 == PAGE_SIZE);

impl Table {
    /// A zeroed table from the heap (`None` if the heap is exhausted).
    fn zeroed() -> Option<Box<Self>> {
        let layout = Layout::new::<Self>();
        // SAFETY: The layout has a non-zero size.
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) }.cast::<Self>();
        // SAFETY: A non-null result of `alloc_zeroed` with `Self`'s layout is
        // a valid, uniquely owned, zeroed `Self` (all-zero is a valid Table).
        (!ptr.is_null()).then(|| unsafe { Box::from_raw(ptr) })
    }

    /// Its physical address (the hypervisor's map is an identity map).
    fn address(&self) -> u64 {
        core::ptr::from_ref(self) as u64
    }
}

/// Stage-1 descriptor bits (Arm ARM D8.3, VMSAv8-64 descriptor formats).
mod desc {
    /// Valid, and a table (levels 0 to 2) or a page (level 3).
    pub const TABLE_OR_PAGE: u64 = 0b11;
    /// Valid block (levels 1 and 2).
    pub const BLOCK: u64 = 0b01;
    /// AP[1]: EL0 may access.
    pub const EL0: u64 = 1 << 6;
    /// AP[2]: read-only.
    pub const READ_ONLY: u64 = 1 << 7;
    /// SH: inner shareable.
    pub const INNER_SHAREABLE: u64 = 0b11 << 8;
    /// AF: accessed (no access-flag faults).
    pub const ACCESSED: u64 = 1 << 10;
    /// nG: tagged with the ASID in the TLB.
    pub const NOT_GLOBAL: u64 = 1 << 11;
    /// PXN: never executable at EL2.
    pub const PXN: u64 = 1 << 53;
    /// UXN: never executable at EL0.
    pub const UXN: u64 = 1 << 54;
    /// Output address bits [47:12].
    pub const ADDRESS: u64 = 0x0000_ffff_ffff_f000;
}

/// Index of `va`'s entry in a table of `level`.
const fn index(va: u64, level: u32) -> usize {
    ((va >> (39 - 9 * level)) & (ENTRIES as u64 - 1)) as usize
}

/// The attributes of a page (or block) with `access`, without its type bits.
fn attributes(access: Access) -> u64 {
    use desc::{ACCESSED, EL0, INNER_SHAREABLE, NOT_GLOBAL, PXN, READ_ONLY, UXN};
    let normal = (MAIR_NORMAL << 2) | INNER_SHAREABLE | ACCESSED | NOT_GLOBAL | EL0 | PXN;
    match access {
        Access::Read => normal | READ_ONLY | UXN,
        Access::ReadExecute => normal | READ_ONLY,
        Access::ReadWrite => normal | UXN,
        Access::Device => (MAIR_DEVICE << 2) | ACCESSED | NOT_GLOBAL | EL0 | PXN | UXN,
    }
}

/// Memory the task owns: zeroed, physically contiguous, page-aligned.
struct Owned {
    ptr: *mut u8,
    layout: Layout,
}

// SAFETY: Owned memory is only reached through the `Space` that owns it,
// whose users serialise access (the task's registers lock, or the task
// being off every CPU).
unsafe impl Send for Owned {}
// SAFETY: As above.
unsafe impl Sync for Owned {}

impl Owned {
    fn zeroed(len: u64) -> Option<Self> {
        let layout =
            Layout::from_size_align(usize::try_from(len).ok()?, PAGE_SIZE as usize).ok()?;
        // SAFETY: `len` is a non-zero multiple of the page size (a region's).
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(Self { ptr, layout })
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: Allocated in `zeroed` with this layout, freed once.
        unsafe { alloc::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// What backs a region.
enum Backing {
    /// Pages of its own.
    Owned(Owned),
    /// Memory owned elsewhere (a VM's RAM, device registers), which outlives
    /// the task: its physical address.
    Borrowed(u64),
}

impl Backing {
    fn address(&self) -> u64 {
        match self {
            Self::Owned(owned) => owned.ptr as u64,
            Self::Borrowed(pa) => *pa,
        }
    }
}

/// Why a mapping cannot be made.
#[derive(Debug)]
pub enum MapError {
    /// The region does not fit the task's map.
    Region(RegionError),
    /// The physical address is not page-aligned.
    Unaligned(u64),
    /// The heap has no memory left for its pages or tables.
    OutOfMemory,
    /// The hypervisor's map already uses the task window's level-0 entry.
    WindowInUse,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Region(e) => write!(f, "{e}"),
            Self::Unaligned(pa) => write!(f, "physical address {pa:#x} is not page-aligned"),
            Self::OutOfMemory => f.write_str("out of memory for its pages or tables"),
            Self::WindowInUse => write!(
                f,
                "the hypervisor's map uses the task window at {TASK_BASE:#x}"
            ),
        }
    }
}

/// Why a `map_guest` or `unmap_guest` call was refused: the task asked for
/// more than it may have, which it is told ([`task_abi::Status::Denied`]).
#[derive(Debug)]
pub enum GuestMapError {
    /// The task has no VM RAM to map.
    NoGrant,
    /// The pages are not its VM's RAM.
    Grant(GrantError),
    /// They overlap a mapping it has, or it has too many.
    Region(RegionError),
    /// An unmapping that is not exactly one mapping.
    NotMapped(NoSuchRegion),
    /// The heap has no memory left for the tables.
    OutOfMemory,
}

impl core::fmt::Display for GuestMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoGrant => f.write_str("the task has no VM RAM to map"),
            Self::Grant(e) => write!(f, "{e}"),
            Self::Region(e) => write!(f, "{e}"),
            Self::NotMapped(e) => write!(f, "{e}"),
            Self::OutOfMemory => f.write_str("out of memory for translation tables"),
        }
    }
}

/// The VM RAM a task may map, and where it is.
struct GuestRam {
    grant: GuestGrant,
    /// Physical address of the RAM's first byte.
    pa: u64,
}

/// Unmapping more leaf entries than this invalidates the task's whole ASID
/// instead of each address: one broadcast instead of hundreds.
const MAX_TLBI_BY_ADDRESS: usize = 64;

/// A task's address space.
pub struct Space {
    root: Box<Table>,
    /// Every table below the root, owned here. Tables emptied by
    /// `unmap_guest` stay until the task ends: at most one per 2 MiB of its
    /// VM's RAM.
    tables: Vec<Box<Table>>,
    regions: Regions,
    backing: [Option<Backing>; task_abi::MAX_REGIONS],
    guest: Option<GuestRam>,
}

impl Space {
    /// An address space with the hypervisor's root entries (`hyp_root`, the
    /// physical address of its level-0 table) and nothing of the task's.
    ///
    /// Fails if the hypervisor's map already uses the task window's level-0
    /// entry, or the heap is exhausted.
    pub fn new(hyp_root: u64) -> Result<Self, MapError> {
        let mut root = Table::zeroed().ok_or(MapError::OutOfMemory)?;
        // SAFETY: The hypervisor's root table is a page of the image's
        // map, identity-mapped and never changed after boot.
        root.0 = unsafe { *(hyp_root as *const [u64; ENTRIES]) };
        if root.0[index(TASK_BASE, 0)] != 0 {
            return Err(MapError::WindowInUse);
        }
        Ok(Self {
            root,
            tables: Vec::new(),
            regions: Regions::new(),
            backing: [const { None }; task_abi::MAX_REGIONS],
            guest: None,
        })
    }

    /// Physical address of the root (level-0) table.
    pub fn root(&self) -> u64 {
        self.root.address()
    }

    /// Adds a region backed by zeroed pages of its own; returns the bytes,
    /// to be filled before the task first runs.
    pub fn add_owned(&mut self, region: Region) -> Result<&mut [u8], MapError> {
        let owned = Owned::zeroed(region.len).ok_or(MapError::OutOfMemory)?;
        let ptr = owned.ptr;
        self.add(region, ptr as u64, Backing::Owned(owned))?;
        // SAFETY: The allocation is `region.len` bytes, owned by this space
        // (borrowed uniquely for the slice's life) and not yet visible to
        // anyone (the task has not run).
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, region.len as usize) })
    }

    /// Adds a region backed by memory at physical `pa` that outlives the
    /// task (a VM's RAM, device registers).
    pub fn add_borrowed(&mut self, region: Region, pa: u64) -> Result<(), MapError> {
        if !pa.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned(pa));
        }
        self.add(region, pa, Backing::Borrowed(pa))
    }

    /// Lets the task map a VM's RAM, `grant`, whose first byte is at
    /// physical `pa` and which outlives the task.
    pub fn grant_guest_ram(&mut self, grant: GuestGrant, pa: u64) -> Result<(), MapError> {
        if !pa.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned(pa));
        }
        self.guest = Some(GuestRam { grant, pa });
        Ok(())
    }

    /// `map_guest`: maps `pages` of the VM's RAM (read-write with `write`)
    /// for the task running with `asid`; returns their task address.
    pub fn map_guest(
        &mut self,
        pages: GuestPages,
        write: bool,
        asid: u16,
    ) -> Result<u64, GuestMapError> {
        let guest = self.guest.as_ref().ok_or(GuestMapError::NoGrant)?;
        let access = if write {
            Access::ReadWrite
        } else {
            Access::Read
        };
        let placed = guest
            .grant
            .place(pages, access)
            .map_err(GuestMapError::Grant)?;
        let pa = guest.pa + placed.offset;
        let index = self
            .regions
            .add(placed.region)
            .map_err(GuestMapError::Region)?;
        if self.map(placed.region, pa).is_err() {
            // Entries written before the heap ran out map pages the task
            // now may not have: take them back out.
            self.regions
                .remove(placed.region.start, placed.region.len)
                .ok();
            self.unmap(placed.region, asid);
            return Err(GuestMapError::OutOfMemory);
        }
        self.backing[index] = Some(Backing::Borrowed(pa));
        // The walker must see the new entries before the task runs on: an
        // entry that was invalid cannot be in any TLB, so no invalidation.
        // SAFETY: A barrier changes no memory.
        unsafe { asm!("dsb ishst", "isb", options(nostack, preserves_flags)) };
        Ok(placed.region.start)
    }

    /// `unmap_guest`: removes the mapping of exactly `pages`, and every
    /// CPU's cached translations of it for `asid` (the task's ASID).
    pub fn unmap_guest(&mut self, pages: GuestPages, asid: u16) -> Result<(), GuestMapError> {
        let guest = self.guest.as_ref().ok_or(GuestMapError::NoGrant)?;
        // Where those pages would be, whatever their access.
        let placed = guest
            .grant
            .place(pages, Access::Read)
            .map_err(GuestMapError::Grant)?;
        let (index, region) = self
            .regions
            .remove(placed.region.start, placed.region.len)
            .map_err(GuestMapError::NotMapped)?;
        self.backing[index] = None;
        self.unmap(region, asid);
        Ok(())
    }

    /// Clears the leaf entries that map `region` (tables stay), then
    /// invalidates their translations for `asid` on every CPU.
    fn unmap(&mut self, region: Region, asid: u16) {
        debug_assert!(region.start >= GUEST_RAM_BASE);
        let mut leaves = heapless::Vec::<u64, MAX_TLBI_BY_ADDRESS>::new();
        let mut too_many = false;
        let mut offset = 0;
        while offset < region.len {
            let va = region.start + offset;
            let step = match self.leaf(va) {
                Some((entry, size)) => {
                    *entry = 0;
                    too_many |= leaves.push(va).is_err();
                    size
                }
                None => PAGE_SIZE,
            };
            offset += step;
        }
        let asid = u64::from(asid) << 48;
        // SAFETY: The entries are cleared (the `dsb` makes that visible to
        // every walker first); invalidation changes no memory.
        unsafe {
            asm!("dsb ishst", options(nostack, preserves_flags));
            if too_many {
                asm!("tlbi aside1is, {}", in(reg) asid, options(nostack, preserves_flags));
            } else {
                for va in &leaves {
                    // VA[55:12] in bits [43:0]; with HCR_EL2.{E2H, TGE} =
                    // {1, 1} this is the EL2&0 regime's entry.
                    let operand = asid | ((va >> 12) & ((1 << 44) - 1));
                    asm!("tlbi vae1is, {}", in(reg) operand, options(nostack, preserves_flags));
                }
            }
            asm!("dsb ish", "isb", options(nostack, preserves_flags));
        }
    }

    /// The leaf entry (a level-2 block or a level-3 page) that maps `va`,
    /// with the bytes it maps; `None` if nothing does.
    fn leaf(&mut self, va: u64) -> Option<(&mut u64, u64)> {
        let mut table: *mut Table = &mut *self.root;
        for level in 0..=3 {
            // SAFETY: `table` is the root or one of `self.tables`, all owned
            // by `self`, which is borrowed uniquely.
            let entry = unsafe { &mut (*table).0[index(va, level)] };
            match (*entry & 0b11, level) {
                (0b00 | 0b10, _) => return None,
                (desc::BLOCK, 2) => return Some((entry, BLOCK)),
                (desc::TABLE_OR_PAGE, 3) => return Some((entry, PAGE_SIZE)),
                // A block at level 1 is never made; level 3 has no blocks.
                (desc::BLOCK, _) => return None,
                _ => table = (*entry & desc::ADDRESS) as *mut Table,
            }
        }
        None
    }

    fn add(&mut self, region: Region, pa: u64, backing: Backing) -> Result<(), MapError> {
        let index = self.regions.add(region).map_err(MapError::Region)?;
        // On failure, tables made so far stay (empty entries harm nothing);
        // the region is not usable, so the task is not made at all.
        self.map(region, pa)?;
        self.backing[index] = Some(backing);
        Ok(())
    }

    /// Writes the translation entries for `region` onto `pa`: 2 MiB blocks
    /// where both are aligned, pages elsewhere.
    fn map(&mut self, region: Region, pa: u64) -> Result<(), MapError> {
        let attributes = attributes(region.access);
        let mut offset = 0;
        while offset < region.len {
            let (va, out) = (region.start + offset, pa + offset);
            let block = va.is_multiple_of(BLOCK)
                && out.is_multiple_of(BLOCK)
                && region.len - offset >= BLOCK;
            if block {
                let table = self.table_for(va, 2)?;
                table.0[index(va, 2)] = out | attributes | desc::BLOCK;
                offset += BLOCK;
            } else {
                let table = self.table_for(va, 3)?;
                table.0[index(va, 3)] = out | attributes | desc::TABLE_OR_PAGE;
                offset += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// The table of `level` (1 to 3) that holds `va`'s entry, made as needed.
    fn table_for(&mut self, va: u64, level: u32) -> Result<&mut Table, MapError> {
        let mut table: *mut Table = &mut *self.root;
        for depth in 0..level {
            // SAFETY: `table` is the root or one of `self.tables`, all owned
            // by `self`, which is borrowed uniquely.
            let entry = unsafe { &mut (*table).0[index(va, depth)] };
            if *entry == 0 {
                let next = Table::zeroed().ok_or(MapError::OutOfMemory)?;
                *entry = next.address() | desc::TABLE_OR_PAGE;
                self.tables.push(next);
            }
            table = (*entry & desc::ADDRESS) as *mut Table;
        }
        // SAFETY: As above: a table this space made (entries under the task's
        // level-0 entry are only ever written here).
        Ok(unsafe { &mut *table })
    }

    /// The physical address of `buffer`'s first byte, if the whole buffer
    /// lies in one region the task may read (or, with `write`, write).
    fn locate(&self, buffer: Buffer, write: bool) -> Result<u64, OutsideTask> {
        let (index, offset) = self.regions.locate(buffer.ptr, buffer.len, write)?;
        self.backing[index]
            .as_ref()
            .map(|b| b.address() + offset)
            .ok_or(OutsideTask {
                ptr: buffer.ptr,
                len: buffer.len,
                write,
            })
    }

    /// A copy of the task's bytes in `buffer`.
    pub fn read(&self, buffer: Buffer) -> Result<Vec<u8>, OutsideTask> {
        let pa = self.locate(buffer, false)?;
        let mut out = alloc::vec![0; buffer.len as usize];
        // SAFETY: `locate` checked the bytes lie in one mapped region, whose
        // backing (owned, or RAM outliving the task) is identity-mapped.
        // A guest may change its RAM meanwhile: callers check the copy.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, out.as_mut_ptr(), out.len()) };
        Ok(out)
    }

    /// Writes `data` to the task's memory at `ptr`.
    pub fn write(&self, ptr: u64, data: &[u8]) -> Result<(), OutsideTask> {
        let buffer = Buffer {
            ptr,
            len: data.len() as u64,
        };
        let pa = self.locate(buffer, true)?;
        // SAFETY: `locate` checked the bytes lie in one writable region of
        // the task (never hypervisor data).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
        Ok(())
    }

    /// Makes executable regions' contents visible to instruction fetch.
    pub fn sync_code(&self) {
        for (i, backing) in self.backing.iter().enumerate() {
            if let (Some(region), Some(backing)) = (self.regions.get(i), backing) {
                if region.access == Access::ReadExecute {
                    crate::mmu::clean_range_to_poc(backing.address(), region.len);
                }
            }
        }
        crate::mmu::invalidate_icache();
    }
}
