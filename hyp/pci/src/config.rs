//! Addressing a function's configuration space, and the access trait.

use core::fmt;

/// Devices on one bus (PCI Local Bus Specification 3.0 §3.2.2.3.1: the
/// device number is five bits).
pub const DEVICES_PER_BUS: u8 = 32;
/// Functions in one device (the function number is three bits).
pub const FUNCTIONS_PER_DEVICE: u8 = 8;
/// Bytes of configuration space a PCIe function has (PCIe Base
/// Specification §7.2.2); conventional PCI functions use the first 256.
pub const CONFIG_SPACE_SIZE: u16 = 4096;
/// Bytes of conventional configuration space: the header and the
/// capability list live below this.
pub const LEGACY_CONFIG_SPACE_SIZE: u16 = 256;

/// A function's bus, device and function numbers ("BDF"), valid by
/// construction: device below 32, function below 8.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    bus: u8,
    device: u8,
    function: u8,
}

impl Bdf {
    /// The function `bus:device.function`, or `None` if `device` is 32 or
    /// more or `function` is 8 or more.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Bdf> {
        if device < DEVICES_PER_BUS && function < FUNCTIONS_PER_DEVICE {
            Some(Bdf {
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device number, below 32.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number, below 8.
    pub const fn function(self) -> u8 {
        self.function
    }

    /// The 16-bit routing ID (PCIe Base Specification §2.2.4.2): bus in bits
    /// 15:8, device in 7:3, function in 2:0. It is what an `iommu-map`
    /// translates into an SMMU StreamID (on QEMU virt, one to one).
    pub const fn routing_id(self) -> u16 {
        ((self.bus as u16) << 8) | ((self.device as u16) << 3) | self.function as u16
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

impl fmt::Debug for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bdf({self})")
    }
}

/// A 32-bit register of configuration space: a byte offset below 4096 that
/// is a multiple of four, valid by construction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Register(u16);

impl Register {
    /// Vendor ID (bits 15:0) and device ID (31:16).
    pub const VENDOR_DEVICE: Register = Register(0x00);
    /// Command (bits 15:0) and status (31:16).
    pub const COMMAND_STATUS: Register = Register(0x04);
    /// Revision ID (bits 7:0) and class code (31:8).
    pub const CLASS_REVISION: Register = Register(0x08);
    /// Cache line size, latency timer, header type (bits 23:16) and BIST.
    pub const HEADER: Register = Register(0x0c);
    /// Base address register 0; the others follow at four-byte steps.
    pub const BAR0: Register = Register(0x10);
    /// Type 1 (bridge) header: primary, secondary and subordinate bus
    /// numbers and the secondary latency timer.
    pub const BRIDGE_BUS_NUMBERS: Register = Register(0x18);
    /// Capabilities pointer (bits 7:0), valid when the status register's
    /// capabilities-list bit is set.
    pub const CAPABILITIES_POINTER: Register = Register(0x34);
    /// Interrupt line (bits 7:0) and pin (15:8).
    pub const INTERRUPT: Register = Register(0x3c);
    /// The first PCIe extended capability (PCIe Base Specification §7.6).
    pub const EXTENDED_CAPABILITIES: Register = Register(LEGACY_CONFIG_SPACE_SIZE);

    /// The register at byte `offset`, or `None` unless `offset` is a
    /// multiple of four below 4096.
    pub const fn new(offset: u16) -> Option<Register> {
        if offset < CONFIG_SPACE_SIZE && offset.is_multiple_of(4) {
            Some(Register(offset))
        } else {
            None
        }
    }

    /// Base address register `index` of a type 0 header, or `None` if
    /// `index` is 6 or more.
    pub const fn bar(index: u8) -> Option<Register> {
        if (index as usize) < crate::bar::BARS_TYPE0 {
            Some(Register(Self::BAR0.0 + 4 * index as u16))
        } else {
            None
        }
    }

    /// The byte offset.
    pub const fn offset(self) -> u16 {
        self.0
    }

    /// The register `bytes` further on, or `None` past the end of
    /// configuration space (or if `bytes` is not a multiple of four).
    pub const fn add(self, bytes: u16) -> Option<Register> {
        match self.0.checked_add(bytes) {
            Some(offset) => Register::new(offset),
            None => None,
        }
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#05x}", self.0)
    }
}

impl fmt::Debug for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Register({:#05x})", self.0)
    }
}

/// Access to the configuration space of the functions below one host
/// bridge, 32 bits at a time.
///
/// An implementation must behave like hardware does for what it cannot
/// reach: a read of an absent function (or a bus outside the bridge's
/// range) returns all ones, and a write to one is dropped. Nothing in this
/// crate trusts what a read returns.
pub trait ConfigSpace {
    /// Reads register `reg` of function `bdf`.
    fn read32(&self, bdf: Bdf, reg: Register) -> u32;

    /// Writes `value` to register `reg` of function `bdf`.
    fn write32(&mut self, bdf: Bdf, reg: Register, value: u32);
}

impl<C: ConfigSpace + ?Sized> ConfigSpace for &mut C {
    fn read32(&self, bdf: Bdf, reg: Register) -> u32 {
        (**self).read32(bdf, reg)
    }

    fn write32(&mut self, bdf: Bdf, reg: Register, value: u32) {
        (**self).write32(bdf, reg, value);
    }
}

bitflags::bitflags! {
    /// The command register (PCI Local Bus Specification 3.0 §6.2.2).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Command: u16 {
        /// The function answers I/O space accesses to its I/O BARs.
        const IO_SPACE = 1 << 0;
        /// The function answers memory accesses to its memory BARs.
        const MEMORY_SPACE = 1 << 1;
        /// The function may master transactions: DMA and MSIs.
        const BUS_MASTER = 1 << 2;
        /// Parity errors are reported.
        const PARITY_ERROR_RESPONSE = 1 << 6;
        /// SERR# reporting is enabled.
        const SERR_ENABLE = 1 << 8;
        /// The function may not assert its INTx line.
        const INTERRUPT_DISABLE = 1 << 10;
    }
}

bitflags::bitflags! {
    /// The status register (PCI Local Bus Specification 3.0 §6.2.3); only
    /// the bits this crate reads are named.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Status: u16 {
        /// The function's INTx line is asserted.
        const INTERRUPT_STATUS = 1 << 3;
        /// The capabilities pointer at 0x34 is valid.
        const CAPABILITIES_LIST = 1 << 4;
    }
}

/// Reads the command register of `bdf`.
pub fn command<C: ConfigSpace + ?Sized>(cs: &C, bdf: Bdf) -> Command {
    Command::from_bits_retain(cs.read32(bdf, Register::COMMAND_STATUS) as u16)
}

/// Reads the status register of `bdf`.
pub fn status<C: ConfigSpace + ?Sized>(cs: &C, bdf: Bdf) -> Status {
    Status::from_bits_retain((cs.read32(bdf, Register::COMMAND_STATUS) >> 16) as u16)
}

/// Writes `command` to the command register of `bdf`.
///
/// The status half of the register is written with zeros: its error bits
/// are write-one-to-clear, so zeros leave them alone.
pub fn set_command<C: ConfigSpace + ?Sized>(cs: &mut C, bdf: Bdf, command: Command) {
    cs.write32(bdf, Register::COMMAND_STATUS, u32::from(command.bits()));
}
