//! Just enough PCI for the DMA test: configuration space through the host
//! bridge's ECAM window (PCIe Base Specification §7.2.2), a scan for a
//! function by its IDs, and sizing and placing a memory BAR (PCI Local
//! Bus Specification 3.0 §6.2.5.1) as firmware or an OS would.

use crate::dt::{PcieHost, Range};
use crate::mmio;
use core::fmt;

/// Type 0 header registers (PCI Local Bus Specification 3.0 §6.1).
const VENDOR_ID: u16 = 0x00;
const DEVICE_ID: u16 = 0x02;
const COMMAND: u16 = 0x04;
const HEADER_TYPE: u16 = 0x0e;
const BAR0: u16 = 0x10;

/// What a read of an absent function returns.
const ABSENT: u16 = 0xffff;
/// Header type bit 7: the device has functions 1 to 7 as well.
const MULTI_FUNCTION: u8 = 0x80;
/// Header type bits 6:0: 0 for an endpoint, the only header with six BARs.
const HEADER_LAYOUT_MASK: u8 = 0x7f;

/// Devices on a bus, and functions of a device.
const DEVICES: u8 = 32;
const FUNCTIONS: u8 = 8;
/// Bytes of configuration space per function.
const FUNCTION_SIZE: u64 = 4096;

/// Memory BAR bits (§6.2.5.1): bit 0 clear for memory space, bits 2:1 the
/// type (0b00 32-bit, 0b10 64-bit), bit 3 prefetchable, the address above.
const BAR_IO: u32 = 1 << 0;
const BAR_TYPE_MASK: u32 = 0b110;
const BAR_TYPE_64: u32 = 0b100;
const BAR_PREFETCHABLE: u32 = 1 << 3;
const BAR_ADDRESS_MASK: u32 = !0xf;

/// Command register bits (§6.2.2) the test sets: memory decoding and bus
/// mastering (DMA).
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// See [`COMMAND_MEMORY`].
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;

/// One function's configuration space in the ECAM window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Address of its 4 KiB of configuration space.
    config: u64,
    /// Its bus, device and function numbers.
    pub bus: u8,
    /// See `bus`.
    pub device: u8,
    /// See `bus`.
    pub function: u8,
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

impl Function {
    /// The function at `device`.`function` of the host's first bus.
    fn on_first_bus(host: &PcieHost, device: u8, function: u8) -> Function {
        Function {
            config: host.ecam.start
                + (u64::from(device) * u64::from(FUNCTIONS) + u64::from(function)) * FUNCTION_SIZE,
            bus: host.first_bus,
            device,
            function,
        }
    }

    /// Reads the 16-bit register at `offset` (even, below 4096).
    pub fn read16(&self, offset: u16) -> u16 {
        // SAFETY: The function's configuration space lies in the ECAM
        // window, which `dt` checked is in the device window `mmu` maps;
        // reads of configuration space have no effect on memory.
        unsafe { mmio::read16(self.config + u64::from(offset & 0xffe)) }
    }

    /// Reads the 32-bit register at `offset` (a multiple of 4, below 4096).
    pub fn read32(&self, offset: u16) -> u32 {
        // SAFETY: As for `read16`.
        unsafe { mmio::read32(self.config + u64::from(offset & 0xffc)) }
    }

    /// Writes the 16-bit register at `offset` (even, below 4096).
    pub fn write16(&self, offset: u16, value: u16) {
        // SAFETY: As for `read16`; what the write turns on (decoding, bus
        // mastering) is the caller's business and is no Rust memory access.
        unsafe { mmio::write16(self.config + u64::from(offset & 0xffe), value) }
    }

    /// Writes the 32-bit register at `offset` (a multiple of 4, below 4096).
    pub fn write32(&self, offset: u16, value: u32) {
        // SAFETY: As for `write16`.
        unsafe { mmio::write32(self.config + u64::from(offset & 0xffc), value) }
    }

    /// The header type register, read as part of its aligned dword (an
    /// emulated ECAM need not take byte accesses).
    fn header_type(&self) -> u8 {
        // Bits 23:16 of the dword at 0x0c; the cast keeps exactly them.
        (self.read32(HEADER_TYPE & !3) >> 16) as u8
    }

    /// The command register.
    pub fn command(&self) -> u16 {
        self.read16(COMMAND)
    }

    /// Writes the command register.
    pub fn set_command(&self, command: u16) {
        self.write16(COMMAND, command);
    }
}

/// Finds the first function on the host's first bus with these IDs; also
/// returns how many functions answered.
pub fn find(host: &PcieHost, vendor: u16, device: u16) -> (Option<Function>, usize) {
    let mut present = 0;
    for slot in 0..DEVICES {
        let first = Function::on_first_bus(host, slot, 0);
        if first.read16(VENDOR_ID) == ABSENT {
            continue;
        }
        let functions = if first.header_type() & MULTI_FUNCTION != 0 {
            FUNCTIONS
        } else {
            1
        };
        for number in 0..functions {
            let function = Function::on_first_bus(host, slot, number);
            let found_vendor = function.read16(VENDOR_ID);
            if found_vendor == ABSENT {
                continue;
            }
            present += 1;
            if found_vendor == vendor && function.read16(DEVICE_ID) == device {
                return (Some(function), present);
            }
        }
    }
    (None, present)
}

/// A memory BAR as sizing found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBar {
    /// Its index, 0 to 5.
    pub index: u8,
    /// Its size in bytes: a power of two.
    pub size: u64,
    /// Whether it is a 64-bit BAR (using the next BAR for its high half).
    pub is_64bit: bool,
    /// Whether it is prefetchable.
    pub prefetchable: bool,
}

impl fmt::Display for MemoryBar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "BAR{} ({}-bit{} memory, {:#x} bytes)",
            self.index,
            if self.is_64bit { 64 } else { 32 },
            if self.prefetchable {
                ", prefetchable"
            } else {
                ""
            },
            self.size
        )
    }
}

/// Why a BAR could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// Not a type 0 (endpoint) header: the layout of its BARs differs.
    NotAnEndpoint(u8),
    /// The index is beyond the header's six BARs (or a 64-bit BAR's pair).
    NoSuchBar(u8),
    /// An I/O BAR.
    Io(u8),
    /// Reads 0 after all ones were written: not implemented.
    Unimplemented(u8),
    /// A reserved type field.
    ReservedType(u8, u32),
    /// No room for it in the window.
    NoRoom {
        /// The BAR.
        bar: MemoryBar,
        /// The window.
        window: Range,
    },
    /// The address did not stick.
    Readback {
        /// The BAR.
        index: u8,
        /// The address written.
        wrote: u64,
        /// What it reads back.
        read: u64,
    },
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnEndpoint(layout) => {
                write!(f, "header layout {layout:#x} is not an endpoint's (0)")
            }
            Self::NoSuchBar(index) => write!(f, "no BAR{index}"),
            Self::Io(index) => write!(f, "BAR{index} is an I/O BAR"),
            Self::Unimplemented(index) => write!(f, "BAR{index} is not implemented (sizes to 0)"),
            Self::ReservedType(index, raw) => {
                write!(f, "BAR{index} reads {raw:#x}: a reserved memory type")
            }
            Self::NoRoom { bar, window } => write!(f, "{bar} does not fit in {window}"),
            Self::Readback { index, wrote, read } => {
                write!(f, "BAR{index}: wrote {wrote:#x}, reads back {read:#x}")
            }
        }
    }
}

impl Function {
    /// The BAR register `index` (0 to 5).
    fn bar_register(index: u8) -> u16 {
        BAR0 + 4 * u16::from(index)
    }

    /// Sizes memory BAR `index` the way §6.2.5.1 describes: all ones
    /// written, the mask read back, the original put back. The caller
    /// turns memory decoding off first, so that the BAR never decodes at
    /// the all-ones address.
    ///
    /// # Errors
    ///
    /// Every [`BarError`] but `NoRoom` and `Readback`.
    pub fn size_bar(&self, index: u8) -> Result<MemoryBar, BarError> {
        let layout = self.header_type() & HEADER_LAYOUT_MASK;
        if layout != 0 {
            return Err(BarError::NotAnEndpoint(layout));
        }
        if index > 5 {
            return Err(BarError::NoSuchBar(index));
        }
        let register = Self::bar_register(index);
        let original = self.read32(register);
        if original & BAR_IO != 0 {
            return Err(BarError::Io(index));
        }
        let is_64bit = match original & BAR_TYPE_MASK {
            0 => false,
            BAR_TYPE_64 if index < 5 => true,
            BAR_TYPE_64 => return Err(BarError::NoSuchBar(index + 1)),
            _ => return Err(BarError::ReservedType(index, original)),
        };
        self.write32(register, u32::MAX);
        let low = self.read32(register) & BAR_ADDRESS_MASK;
        self.write32(register, original);
        let mask = if is_64bit {
            let upper = Self::bar_register(index + 1);
            let original_upper = self.read32(upper);
            self.write32(upper, u32::MAX);
            let high = self.read32(upper);
            self.write32(upper, original_upper);
            u64::from(high) << 32 | u64::from(low)
        } else {
            // The upper half of a 32-bit BAR's mask is all ones.
            0xffff_ffff_0000_0000 | u64::from(low)
        };
        if low == 0 && (!is_64bit || mask == 0) {
            return Err(BarError::Unimplemented(index));
        }
        Ok(MemoryBar {
            index,
            size: (!mask).wrapping_add(1),
            is_64bit,
            prefetchable: original & BAR_PREFETCHABLE != 0,
        })
    }

    /// Places `bar` at the first address in `window` aligned to its size
    /// (BARs are naturally aligned), writes its PCI address (`host`
    /// translates) and checks it reads back. Returns the CPU address.
    ///
    /// # Errors
    ///
    /// [`BarError::NoRoom`] if the BAR does not fit in the window, and
    /// [`BarError::Readback`] if the address does not stick.
    pub fn place_bar(&self, host: &PcieHost, bar: MemoryBar) -> Result<u64, BarError> {
        let window = host.mmio32;
        let no_room = BarError::NoRoom { bar, window };
        let cpu = window.start.next_multiple_of(bar.size);
        let end = cpu.checked_add(bar.size).ok_or(no_room)?;
        let pci = host.pci_address(cpu);
        if end > window.end || (!bar.is_64bit && pci > u64::from(u32::MAX)) {
            return Err(no_room);
        }
        let register = Self::bar_register(bar.index);
        // The low half's flag bits are read-only; the cast keeps the low half.
        self.write32(register, pci as u32);
        let mut read = u64::from(self.read32(register) & BAR_ADDRESS_MASK);
        if bar.is_64bit {
            let upper = Self::bar_register(bar.index + 1);
            self.write32(upper, (pci >> 32) as u32);
            read |= u64::from(self.read32(upper)) << 32;
        }
        if read != pci {
            return Err(BarError::Readback {
                index: bar.index,
                wrote: pci,
                read,
            });
        }
        Ok(cpu)
    }
}
