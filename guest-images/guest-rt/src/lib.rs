//! The start of a bare-metal EL1 guest, shared by the test guest and the
//! bench guest: the arm64 image header and the entry code every vCPU runs
//! before Rust ([`entry!`]), the static identity map it turns the MMU on
//! with ([`mmu`]), the exception vectors ([`exceptions`]), the console,
//! SMCCC/PSCI calls over HVC, and what both read from the device tree and
//! the bootargs.
//!
//! A guest implements [`Guest`] (its stack size, its address space, what
//! its vCPUs and its exception handler do) and names it in one
//! [`entry!`], which also names its translation table and the prefix of its
//! early failure messages. It links with `linker/guest.ld`.
//!
//! The pure parts ([`bootargs`], [`mmu`]'s tables) build and test on the
//! host too; the assembly builds for bare metal (`target_os = "none"`) only.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod boot;
pub mod bootargs;
pub mod console;
pub mod dt;
pub mod exceptions;
pub mod firmware;
pub mod mmu;
pub mod smp;

pub use boot::Guest;
