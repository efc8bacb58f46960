//! Why a bridge could not be built.

use addr::PhysAddr;
use core::fmt;
use guest_boot::PciError;
use pci::{Bdf, HeaderType};

/// Why [`VirtualBridge::new`](crate::VirtualBridge::new) refused its
/// functions or layout. Each is the hypervisor's mistake (or its
/// manifest's), not the guest's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeError {
    /// A guest device number of 32 or more.
    GuestDeviceOutOfRange {
        /// The device number.
        device: u8,
    },
    /// Two functions at one guest device number.
    DuplicateGuestDevice {
        /// The device number.
        device: u8,
    },
    /// The same physical function twice.
    DuplicateFunction(Bdf),
    /// Nothing answers at the physical function.
    Absent(Bdf),
    /// The physical function is not an endpoint (type 0 header): bridges
    /// are not passed through.
    NotEndpoint {
        /// The function.
        function: Bdf,
        /// Its header type.
        header: HeaderType,
    },
    /// A memory BAR's physical address is not page aligned, so stage 2
    /// cannot map it without also mapping what shares its page.
    BarNotPageAligned {
        /// The function.
        function: Bdf,
        /// The BAR's slot.
        bar: u8,
        /// Its physical address.
        host: PhysAddr,
    },
    /// An INTx link was given for a function whose interrupt pin register
    /// says it has no INTx pin (0, or a reserved value above 4).
    NoInterruptPin {
        /// The function.
        function: Bdf,
        /// The pin register's value.
        pin: u8,
    },
    /// Two functions' INTx links disagree: one physical SPI linked to two
    /// guest SPIs, or two physical SPIs to one guest SPI (a virtual
    /// interrupt links to one physical interrupt at most).
    IntxConflict {
        /// The first function.
        function: Bdf,
        /// The function it conflicts with.
        other: Bdf,
    },
    /// The windows or the interrupt map were refused.
    Layout(PciError),
}

impl From<PciError> for BridgeError {
    fn from(e: PciError) -> Self {
        Self::Layout(e)
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GuestDeviceOutOfRange { device } => {
                write!(
                    f,
                    "guest PCI device number {device} is past the 32 of a bus"
                )
            }
            Self::DuplicateGuestDevice { device } => {
                write!(f, "two passthrough functions at guest device {device}")
            }
            Self::DuplicateFunction(bdf) => write!(f, "{bdf} is passed through twice"),
            Self::Absent(bdf) => write!(f, "no PCI function answers at {bdf}"),
            Self::NotEndpoint { function, header } => {
                write!(f, "{function} is a {header}, not an endpoint")
            }
            Self::BarNotPageAligned {
                function,
                bar,
                host,
            } => write!(f, "{function} BAR{bar} at {host} is not page aligned"),
            Self::NoInterruptPin { function, pin } => write!(
                f,
                "{function} has an INTx link but its interrupt pin register reads {pin}"
            ),
            Self::IntxConflict { function, other } => write!(
                f,
                "INTx links of {function} and {other} share one side but not the other"
            ),
            Self::Layout(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for BridgeError {}
