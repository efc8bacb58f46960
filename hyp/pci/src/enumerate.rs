//! Finding the functions on a bus and reading their identity.

use crate::config::{Bdf, ConfigSpace, Register, FUNCTIONS_PER_DEVICE};
use core::fmt;

/// Vendor ID an absent function reads as (all ones, PCI Local Bus
/// Specification 3.0 §6.2.1).
const VENDOR_ABSENT: u16 = 0xffff;
/// Vendor ID 0 is not assigned to anyone; some broken bridges read it for
/// absent functions.
const VENDOR_INVALID: u16 = 0x0000;
/// Header type bit 7: the device has functions besides function 0.
const HEADER_MULTI_FUNCTION: u8 = 0x80;
/// Header type bits 6:0: the layout.
const HEADER_LAYOUT: u8 = 0x7f;

/// The layout of a function's header (bits 6:0 of the header type).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderType {
    /// Type 0: an endpoint, six BARs.
    Endpoint,
    /// Type 1: a PCI-to-PCI bridge, two BARs and bus numbers.
    PciBridge,
    /// Type 2: a CardBus bridge.
    CardBus,
    /// Some other value.
    Unknown(u8),
}

impl HeaderType {
    /// The layout bits 6:0 of a header type byte.
    pub const fn from_byte(byte: u8) -> HeaderType {
        match byte & HEADER_LAYOUT {
            0 => Self::Endpoint,
            1 => Self::PciBridge,
            2 => Self::CardBus,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for HeaderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Endpoint => f.write_str("endpoint"),
            Self::PciBridge => f.write_str("PCI bridge"),
            Self::CardBus => f.write_str("CardBus bridge"),
            Self::Unknown(t) => write!(f, "header type {t:#04x}"),
        }
    }
}

/// A class code: base class, subclass and programming interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassCode {
    /// Base class, e.g. 0x01 mass storage, 0x06 bridge.
    pub base: u8,
    /// Subclass within the base class.
    pub sub: u8,
    /// Register-level programming interface.
    pub prog_if: u8,
}

impl ClassCode {
    /// Base class 0x06, subclass 0x04: a PCI-to-PCI bridge.
    pub const fn is_pci_bridge(self) -> bool {
        self.base == 0x06 && self.sub == 0x04
    }
}

impl fmt::Display for ClassCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}{:02x}{:02x}", self.base, self.sub, self.prog_if)
    }
}

/// What a function says it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// Where it is.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Class code.
    pub class: ClassCode,
    /// Revision ID.
    pub revision: u8,
    /// Header layout.
    pub header_type: HeaderType,
    /// Header type bit 7: the device has more functions than function 0
    /// (meaningful on function 0).
    pub multi_function: bool,
}

impl fmt::Display for FunctionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {} rev {:#04x} {}",
            self.bdf, self.vendor_id, self.device_id, self.class, self.revision, self.header_type
        )
    }
}

/// Reads the identity of `bdf`, or `None` if nothing answers there (vendor
/// ID all ones, or the unassigned 0).
pub fn probe_function<C: ConfigSpace + ?Sized>(cs: &C, bdf: Bdf) -> Option<FunctionInfo> {
    let ids = cs.read32(bdf, Register::VENDOR_DEVICE);
    let vendor_id = ids as u16;
    if vendor_id == VENDOR_ABSENT || vendor_id == VENDOR_INVALID {
        return None;
    }
    let class = cs.read32(bdf, Register::CLASS_REVISION);
    let header = (cs.read32(bdf, Register::HEADER) >> 16) as u8;
    Some(FunctionInfo {
        bdf,
        vendor_id,
        device_id: (ids >> 16) as u16,
        class: ClassCode {
            base: (class >> 24) as u8,
            sub: (class >> 16) as u8,
            prog_if: (class >> 8) as u8,
        },
        revision: class as u8,
        header_type: HeaderType::from_byte(header),
        multi_function: header & HEADER_MULTI_FUNCTION != 0,
    })
}

/// The functions present on `bus`, in device then function order.
///
/// Functions 1 to 7 of a device are looked at only if function 0 exists
/// and says it is multi-function (PCI Local Bus Specification 3.0
/// §6.2.1): single-function devices may decode every function number, and
/// would otherwise appear eight times. Bridges are reported, not crossed:
/// the functions behind one need bus numbers assigned first.
///
/// At most 256 functions are read, whatever the devices answer.
pub fn functions<C: ConfigSpace + ?Sized>(cs: &C, bus: u8) -> Functions<'_, C> {
    Functions {
        cs,
        bus,
        device: 0,
        function: 0,
        multi_function: false,
    }
}

/// Iterator over the functions of one bus; see [`functions`].
#[derive(Debug)]
pub struct Functions<'a, C: ?Sized> {
    cs: &'a C,
    bus: u8,
    device: u8,
    function: u8,
    multi_function: bool,
}

impl<C: ConfigSpace + ?Sized> Iterator for Functions<'_, C> {
    type Item = FunctionInfo;

    fn next(&mut self) -> Option<FunctionInfo> {
        // `Bdf::new` refuses device 32: then the bus is done, for good.
        while let Some(bdf) = Bdf::new(self.bus, self.device, self.function) {
            let found = probe_function(self.cs, bdf);
            if self.function == 0 {
                self.multi_function = found.is_some_and(|f| f.multi_function);
            }
            if self.multi_function && self.function + 1 < FUNCTIONS_PER_DEVICE {
                self.function += 1;
            } else {
                self.function = 0;
                self.device += 1;
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }
}
