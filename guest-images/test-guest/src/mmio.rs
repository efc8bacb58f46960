//! Device register accesses, each one load or store instruction of the
//! access's width with a plain base register: no pair, no writeback, so
//! that a trapped access has a valid syndrome (ESR_EL2.ISV, Arm ARM
//! D24.2.43) the hypervisor can emulate (the ECAM window), and a device
//! mapped through sees exactly one access of that width (a BAR).
//!
//! Every function is unsafe for the same reason: the caller vouches that
//! the address is a device register mapped as device memory, aligned to
//! the width, whose access has no effect on memory that Rust code uses.

use core::arch::asm;

/// Reads the 16-bit register at `address`.
///
/// # Safety
///
/// See the module documentation.
pub unsafe fn read16(address: u64) -> u16 {
    let value: u32;
    // SAFETY: The caller vouches for the address (module documentation).
    unsafe {
        asm!("ldrh {value:w}, [{address}]", value = out(reg) value, address = in(reg) address, options(nostack));
    }
    // `ldrh` zero-extends: the cast keeps exactly the loaded half.
    value as u16
}

/// Reads the 32-bit register at `address`.
///
/// # Safety
///
/// See the module documentation.
pub unsafe fn read32(address: u64) -> u32 {
    let value: u32;
    // SAFETY: The caller vouches for the address (module documentation).
    unsafe {
        asm!("ldr {value:w}, [{address}]", value = out(reg) value, address = in(reg) address, options(nostack));
    }
    value
}

/// Reads the 64-bit register at `address`.
///
/// # Safety
///
/// See the module documentation.
pub unsafe fn read64(address: u64) -> u64 {
    let value: u64;
    // SAFETY: The caller vouches for the address (module documentation).
    unsafe {
        asm!("ldr {value}, [{address}]", value = out(reg) value, address = in(reg) address, options(nostack));
    }
    value
}

/// Writes the 16-bit register at `address`.
///
/// # Safety
///
/// See the module documentation.
pub unsafe fn write16(address: u64, value: u16) {
    // SAFETY: The caller vouches for the address (module documentation).
    unsafe {
        asm!("strh {value:w}, [{address}]", value = in(reg) u32::from(value), address = in(reg) address, options(nostack));
    }
}

/// Writes the 32-bit register at `address`.
///
/// # Safety
///
/// See the module documentation.
pub unsafe fn write32(address: u64, value: u32) {
    // SAFETY: The caller vouches for the address (module documentation).
    unsafe {
        asm!("str {value:w}, [{address}]", value = in(reg) value, address = in(reg) address, options(nostack));
    }
}

/// Writes the 64-bit register at `address`.
///
/// # Safety
///
/// See the module documentation.
pub unsafe fn write64(address: u64, value: u64) {
    // SAFETY: The caller vouches for the address (module documentation).
    unsafe {
        asm!("str {value}, [{address}]", value = in(reg) value, address = in(reg) address, options(nostack));
    }
}
