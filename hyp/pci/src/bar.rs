//! Sizing base address registers (PCI Local Bus Specification 3.0
//! §6.2.5.1): write all ones, read back which address bits stuck, restore.

use crate::config::{self, Bdf, Command, ConfigSpace, Register};
use crate::enumerate::HeaderType;
use core::fmt;

/// BARs in a type 0 (endpoint) header.
pub const BARS_TYPE0: usize = 6;
/// BARs in a type 1 (PCI bridge) header.
pub const BARS_TYPE1: usize = 2;

/// Bit 0: the BAR maps I/O space, not memory.
const BAR_IO: u32 = 1 << 0;
/// I/O BAR bits 1:0 are not address bits.
const BAR_IO_FLAGS: u32 = 0b11;
/// Memory BAR bits 3:0 (space, type, prefetchable) are not address bits.
const BAR_MEM_FLAGS: u32 = 0b1111;
/// Memory BAR bits 2:1: the type.
const BAR_MEM_TYPE: u32 = 0b110;
/// Type 00: a 32-bit BAR.
const BAR_MEM_TYPE_32: u32 = 0b000;
/// Type 10: a 64-bit BAR, the next BAR holding the upper half.
const BAR_MEM_TYPE_64: u32 = 0b100;
/// Bit 3: reads have no side effects.
const BAR_PREFETCHABLE: u32 = 1 << 3;

/// What a BAR decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// A 32-bit memory BAR: it must be placed below 4 GiB.
    Memory32,
    /// A 64-bit memory BAR; it takes this slot and the next.
    Memory64,
    /// An I/O space BAR.
    Io,
}

impl fmt::Display for BarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Memory32 => "32-bit memory",
            Self::Memory64 => "64-bit memory",
            Self::Io => "I/O",
        })
    }
}

/// An implemented BAR and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bar {
    /// Its slot, 0 to 5 (a 64-bit BAR also uses the next).
    pub index: u8,
    /// What it decodes.
    pub kind: BarKind,
    /// Whether its memory is prefetchable (always false for I/O).
    pub prefetchable: bool,
    /// Its size in bytes: a power of two, at least 16 for memory and 4 for
    /// I/O. It is also the alignment its address needs.
    pub size: u64,
}

impl fmt::Display for Bar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BAR{}: {}{}, {:#x} bytes",
            self.index,
            self.kind,
            if self.prefetchable {
                " prefetchable"
            } else {
                ""
            },
            self.size
        )
    }
}

/// Every implemented BAR of one function, by slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bars {
    slots: [Option<Bar>; BARS_TYPE0],
}

impl Bars {
    /// The BAR in slot `index`, if one starts there.
    pub fn get(&self, index: u8) -> Option<&Bar> {
        self.slots.get(usize::from(index))?.as_ref()
    }

    /// The implemented BARs, by slot.
    pub fn iter(&self) -> impl Iterator<Item = &Bar> + '_ {
        self.slots.iter().flatten()
    }
}

/// Why a function's BARs could not be sized. The function's BARs and
/// command register are left as they were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// The header type has no BAR layout this crate knows (CardBus or
    /// unknown).
    UnsupportedHeader(HeaderType),
    /// A memory BAR's type bits are the reserved 01 ("below 1 MiB", gone
    /// since PCI 3.0) or 11.
    ReservedType {
        /// The slot.
        index: u8,
        /// The BAR's value.
        value: u32,
    },
    /// A 64-bit BAR in the last slot has no upper half.
    Memory64InLastSlot {
        /// The slot.
        index: u8,
    },
    /// Writing all ones changed bits that are read-only on a real BAR (the
    /// space, type or prefetchable bits).
    FlagsChanged {
        /// The slot.
        index: u8,
        /// The value before.
        before: u32,
        /// What all ones read back as.
        after: u32,
    },
    /// The writable address bits are not one run from the size bit up to
    /// the top of the BAR, so no power-of-two size describes them.
    NonContiguousSize {
        /// The slot.
        index: u8,
        /// The address bits that took the ones.
        mask: u64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedHeader(header) => write!(f, "BARs of a {header} are not supported"),
            Self::ReservedType { index, value } => {
                write!(f, "BAR{index} has a reserved memory type ({value:#010x})")
            }
            Self::Memory64InLastSlot { index } => {
                write!(f, "BAR{index} is 64-bit but has no slot for its upper half")
            }
            Self::FlagsChanged {
                index,
                before,
                after,
            } => write!(
                f,
                "BAR{index}'s read-only type bits changed when sized ({before:#010x}, then {after:#010x})"
            ),
            Self::NonContiguousSize { index, mask } => {
                write!(f, "BAR{index} sizes as {mask:#x}, not a power of two")
            }
        }
    }
}

/// How many BAR slots a header of `header` type has.
///
/// # Errors
///
/// [`BarError::UnsupportedHeader`] for CardBus and unknown layouts.
pub fn bar_slots(header: HeaderType) -> Result<u8, BarError> {
    match header {
        HeaderType::Endpoint => Ok(BARS_TYPE0 as u8),
        HeaderType::PciBridge => Ok(BARS_TYPE1 as u8),
        other => Err(BarError::UnsupportedHeader(other)),
    }
}

/// Sizes every BAR of `bdf`, whose header type is `header`.
///
/// Memory and I/O decoding are off while the BARs hold all ones, so the
/// function never answers at a bogus address; every BAR and the command
/// register are restored afterwards, on success and on error alike.
///
/// # Errors
///
/// [`BarError::UnsupportedHeader`]; for a BAR that makes no sense,
/// [`BarError::ReservedType`], [`BarError::Memory64InLastSlot`],
/// [`BarError::FlagsChanged`] or [`BarError::NonContiguousSize`].
pub fn size_bars<C: ConfigSpace + ?Sized>(
    cs: &mut C,
    bdf: Bdf,
    header: HeaderType,
) -> Result<Bars, BarError> {
    let slots = bar_slots(header)?;
    let command = config::command(cs, bdf);
    let quiet = command.difference(Command::IO_SPACE | Command::MEMORY_SPACE);
    if quiet != command {
        config::set_command(cs, bdf, quiet);
    }
    let result = size_slots(cs, bdf, slots);
    if quiet != command {
        config::set_command(cs, bdf, command);
    }
    result
}

fn size_slots<C: ConfigSpace + ?Sized>(cs: &mut C, bdf: Bdf, slots: u8) -> Result<Bars, BarError> {
    let mut bars = Bars::default();
    let mut index = 0;
    while index < slots {
        let (bar, used) = size_slot(cs, bdf, index, slots)?;
        if let Some(bar) = bar {
            bars.slots[usize::from(index)] = Some(bar);
        }
        index += used;
    }
    Ok(bars)
}

/// Sizes the BAR in slot `index` of `slots`; returns it (`None` if
/// unimplemented) and how many slots it takes.
fn size_slot<C: ConfigSpace + ?Sized>(
    cs: &mut C,
    bdf: Bdf,
    index: u8,
    slots: u8,
) -> Result<(Option<Bar>, u8), BarError> {
    let (original, readback) = probe_slot(cs, bdf, index);
    let flags_changed = BarError::FlagsChanged {
        index,
        before: original,
        after: readback,
    };
    let bar = |kind, prefetchable, size| Bar {
        index,
        kind,
        prefetchable,
        size,
    };
    if original & BAR_IO != 0 {
        if readback & BAR_IO_FLAGS != original & BAR_IO_FLAGS {
            return Err(flags_changed);
        }
        let mask = readback & !BAR_IO_FLAGS;
        // A 16-bit I/O decoder hardwires the upper half to zero.
        let width = if mask >> 16 == 0 {
            u64::from(u16::MAX)
        } else {
            u64::from(u32::MAX)
        };
        let size = size_from_mask(index, u64::from(mask), width)?;
        return Ok((size.map(|size| bar(BarKind::Io, false, size)), 1));
    }
    if readback & BAR_MEM_FLAGS != original & BAR_MEM_FLAGS {
        return Err(flags_changed);
    }
    let prefetchable = original & BAR_PREFETCHABLE != 0;
    let low_mask = u64::from(readback & !BAR_MEM_FLAGS);
    match original & BAR_MEM_TYPE {
        BAR_MEM_TYPE_32 => {
            let size = size_from_mask(index, low_mask, u64::from(u32::MAX))?;
            Ok((
                size.map(|size| bar(BarKind::Memory32, prefetchable, size)),
                1,
            ))
        }
        BAR_MEM_TYPE_64 => {
            if index + 1 >= slots {
                return Err(BarError::Memory64InLastSlot { index });
            }
            // The next slot is this BAR's upper half, implemented or not.
            let (_, upper) = probe_slot(cs, bdf, index + 1);
            let mask = (u64::from(upper) << 32) | low_mask;
            let size = size_from_mask(index, mask, u64::MAX)?;
            Ok((
                size.map(|size| bar(BarKind::Memory64, prefetchable, size)),
                2,
            ))
        }
        _ => Err(BarError::ReservedType {
            index,
            value: original,
        }),
    }
}

/// Writes all ones to BAR slot `index` and restores it; returns the value
/// before and what the ones read back as.
fn probe_slot<C: ConfigSpace + ?Sized>(cs: &mut C, bdf: Bdf, index: u8) -> (u32, u32) {
    // Callers keep `index` below the header's slot count, at most 6.
    let Some(reg) = Register::bar(index) else {
        return (0, 0);
    };
    let original = cs.read32(bdf, reg);
    cs.write32(bdf, reg, u32::MAX);
    let readback = cs.read32(bdf, reg);
    cs.write32(bdf, reg, original);
    (original, readback)
}

/// The size that address bits `mask` (the bits that took ones, within
/// `width`) give, `None` for an unimplemented BAR (no bits).
fn size_from_mask(index: u8, mask: u64, width: u64) -> Result<Option<u64>, BarError> {
    if mask == 0 {
        return Ok(None);
    }
    // The lowest writable bit is the size; every bit above it up to the
    // top of the BAR must be writable too.
    let size = mask & mask.wrapping_neg();
    if mask != width & !(size - 1) {
        return Err(BarError::NonContiguousSize { index, mask });
    }
    Ok(Some(size))
}
