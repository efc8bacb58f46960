//! The bench guest's stage-1 translation, a static identity map (see
//! [`guest_rt::mmu`]): a 39-bit address space walked from level 1 in 1 GiB
//! blocks.
//!
//! | range          | memory type                          | holds                  |
//! |----------------|--------------------------------------|------------------------|
//! | [0, 1 GiB)     | Device-nGnRnE, execute-never         | GIC, PL011, virtio-mmio |
//! | [1 GiB, 2 GiB) | Normal write-back, inner shareable   | RAM (image, stacks, DTB) |
//! | above          | unmapped                             |                        |
//!
//! RAM must be normal memory: the benchmarks share flags between vCPUs with
//! atomics, which need a cacheable, shareable mapping.

use guest_rt::mmu::{Block, L1Table};

/// Width of the translated address space: a level-1 table covers 512 GiB.
pub const VA_BITS: u32 = 39;

/// The identity map TTBR0_EL1 points at; read-only, so it is correct in
/// memory straight from the image.
pub static BOOT_L1: L1Table = L1Table::new(0, &[Block::Device, Block::Normal], Block::Unmapped);
