//! Address arithmetic for the Enhanced Configuration Access Mechanism: where
//! in the ECAM window a function's register lives. The accesses themselves
//! (volatile, device memory) belong to the target crate.

use crate::config::{Bdf, Register};
use addr::{PhysAddr, PhysRange};
use core::fmt;
use core::ops::RangeInclusive;

/// Bytes of ECAM per bus: 32 devices × 8 functions × 4 KiB (PCIe Base
/// Specification §7.2.2).
pub const ECAM_BUS_SIZE: u64 = 1 << 20;
/// Bytes of ECAM per function.
const ECAM_FUNCTION_SIZE: u64 = 1 << 12;

/// Why an ECAM window was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EcamError {
    /// The window does not start on a 4 KiB boundary, so no function's
    /// configuration space would be page aligned.
    Misaligned(PhysAddr),
    /// The window is smaller than one bus (1 MiB).
    TooSmall(PhysRange),
    /// `bus-range` ends before it starts.
    BusRangeReversed {
        /// First bus.
        first: u8,
        /// Last bus.
        last: u8,
    },
}

impl fmt::Display for EcamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned(base) => write!(f, "ECAM window at {base} is not 4 KiB aligned"),
            Self::TooSmall(window) => {
                write!(f, "ECAM window {window} is smaller than one bus (1 MiB)")
            }
            Self::BusRangeReversed { first, last } => {
                write!(
                    f,
                    "PCI bus-range {first:#x}..={last:#x} ends before it starts"
                )
            }
        }
    }
}

/// An ECAM window and the buses it covers. The window's first MiB is bus
/// `first_bus`, as in the generic host bridge binding (and Linux's
/// `pci_ecam_map_bus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecam {
    window: PhysRange,
    first_bus: u8,
    last_bus: u8,
}

impl Ecam {
    /// The ECAM `window` serving buses `first_bus..=last_bus`. A window too
    /// small for every bus in the range serves only the buses that fit
    /// (what Linux does with such a device tree).
    ///
    /// # Errors
    ///
    /// [`EcamError::Misaligned`], [`EcamError::TooSmall`],
    /// [`EcamError::BusRangeReversed`].
    pub fn new(window: PhysRange, first_bus: u8, last_bus: u8) -> Result<Ecam, EcamError> {
        if !window.start().is_aligned(ECAM_FUNCTION_SIZE) {
            return Err(EcamError::Misaligned(window.start()));
        }
        if last_bus < first_bus {
            return Err(EcamError::BusRangeReversed {
                first: first_bus,
                last: last_bus,
            });
        }
        let buses_that_fit = window.size() / ECAM_BUS_SIZE;
        if buses_that_fit == 0 {
            return Err(EcamError::TooSmall(window));
        }
        let wanted = u64::from(last_bus - first_bus) + 1;
        // At most 256, so the sum stays within u8 after the `min`.
        let last_bus = first_bus + (wanted.min(buses_that_fit) - 1) as u8;
        Ok(Ecam {
            window,
            first_bus,
            last_bus,
        })
    }

    /// The buses this window reaches.
    pub fn buses(&self) -> RangeInclusive<u8> {
        self.first_bus..=self.last_bus
    }

    /// The whole window, for mapping it.
    pub fn window(&self) -> PhysRange {
        self.window
    }

    /// The byte offset of `reg` of `bdf` from the window's start, or `None`
    /// if the bus is outside the window.
    pub fn offset(&self, bdf: Bdf, reg: Register) -> Option<u64> {
        if !self.buses().contains(&bdf.bus()) {
            return None;
        }
        let bus = u64::from(bdf.bus() - self.first_bus);
        let function = (u64::from(bdf.device()) << 3) | u64::from(bdf.function());
        Some(bus * ECAM_BUS_SIZE + function * ECAM_FUNCTION_SIZE + u64::from(reg.offset()))
    }

    /// The physical address of `reg` of `bdf`, or `None` if the bus is
    /// outside the window.
    pub fn address(&self, bdf: Bdf, reg: Register) -> Option<PhysAddr> {
        // `new` made sure every bus in range lies inside the window.
        self.window.start().checked_add(self.offset(bdf, reg)?)
    }
}
