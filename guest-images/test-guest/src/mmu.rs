//! The test guest's stage-1 translation, a static identity map (see
//! [`guest_rt::mmu`]) of a 40-bit (1 TiB) address space in 1 GiB blocks:
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
//!
//! The first GiB is executable because the abort test branches to
//! 0x2000_0000 to see the hypervisor's instruction abort: with PXN set, the
//! fetch would instead stop at a stage-1 permission fault. Speculative
//! fetches cannot reach a device this way: every device the guest sees is
//! emulated behind stage-2 faults.

use guest_rt::mmu::{Block, L0Table, L1Table};

pub use guest_rt::mmu::{is_normal_memory, NORMAL_START};

/// Width of the mapped address space: everything below `1 << VA_BITS` is
/// mapped, and the walk starts at level 0.
pub const VA_BITS: u32 = 40;

/// The blocks below 2 GiB; device memory from there on.
const LOW_BLOCKS: [Block; 2] = [Block::DeviceExecutable, Block::Normal];

/// `[0, 512 GiB)`.
static L1_LOW: L1Table = L1Table::new(0, &LOW_BLOCKS, Block::Device);
/// `[512 GiB, 1 TiB)`.
static L1_HIGH: L1Table = L1Table::new(512, &LOW_BLOCKS, Block::Device);

/// The root of the identity map, which TTBR0_EL1 points at: entry 0 covers
/// `[0, 512 GiB)`, entry 1 `[512 GiB, 1 TiB)`; a 40-bit address space has
/// no others. Read-only, so it is correct in memory straight from the image.
pub static BOOT_L0: L0Table = L0Table::new(&[&L1_LOW, &L1_HIGH]);
