//! The guest's PCIe host bridge, as its device tree describes it: where
//! its configuration space (ECAM) and memory windows are, and which SPI each
//! device's INTx pin raises.
//!
//! The binding is Linux's `Documentation/devicetree/bindings/pci/
//! host-generic-pci.yaml` (`pci-host-ecam-generic`) on top of the PCI bus
//! binding (IEEE Std 1275-1994 PCI supplement, `ranges` and
//! `interrupt-map` encodings). The bridge itself is emulated elsewhere
//! (the `vpci` crate); this module only checks the layout and writes it.

use core::fmt;

use crate::virt::{self, Spi};
use crate::IpaRange;

/// Bytes of ECAM per bus: 32 devices × 8 functions × 4 KiB (PCIe Base
/// Specification §7.2.2).
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// Devices on a PCI bus: the device number is five bits.
pub const PCI_DEVICES: u8 = 32;

/// Alignment of the memory windows: BARs are mapped in stage 2, a page at
/// a time.
pub const PCI_WINDOW_ALIGN: u64 = 4096;

/// Most buses an ECAM window can serve: bus numbers are eight bits.
const MAX_BUSES: u64 = 256;

/// First address above the 32-bit space, where a 32-bit window must end.
const FOUR_GIB: u64 = 1 << 32;

/// A legacy interrupt pin, as the interrupt pin register (0x3d) names it:
/// 1 to 4 for INTA# to INTD# (PCI Local Bus Specification 3.0 §6.2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntxPin {
    /// INTA#.
    A = 1,
    /// INTB#.
    B = 2,
    /// INTC#.
    C = 3,
    /// INTD#.
    D = 4,
}

impl IntxPin {
    /// The pin the interrupt pin register value `pin` names, or `None` for
    /// 0 (no INTx) and the reserved values from 5.
    pub const fn from_register(pin: u8) -> Option<IntxPin> {
        match pin {
            1 => Some(Self::A),
            2 => Some(Self::B),
            3 => Some(Self::C),
            4 => Some(Self::D),
            _ => None,
        }
    }

    /// The interrupt pin register's value for this pin, 1 to 4; also the
    /// pin cell of an `interrupt-map` entry.
    pub const fn register(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for IntxPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letter = match self {
            Self::A => 'A',
            Self::B => 'B',
            Self::C => 'C',
            Self::D => 'D',
        };
        write!(f, "INT{letter}")
    }
}

/// One `interrupt-map` entry: pin `pin` of device `device` on bus 0 raises
/// `spi` (level-triggered, active high).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PciInterrupt {
    /// The device number, below [`PCI_DEVICES`].
    pub device: u8,
    /// The pin.
    pub pin: IntxPin,
    /// The guest SPI it raises.
    pub spi: Spi,
}

/// Where the guest's PCIe host bridge is: its ECAM window and its memory
/// windows, identity mapped (a BAR's PCI address is its IPA). No I/O
/// window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindows {
    /// Configuration space: bus 0 at its start, one MiB per bus.
    pub ecam: IpaRange,
    /// The 32-bit non-prefetchable memory window, below 4 GiB.
    pub mmio32: IpaRange,
    /// A 64-bit memory window, for BARs too large for `mmio32`; none on
    /// `virt`'s layout ([`PciWindows::VIRT`]): Linux places 64-bit BARs in
    /// a 32-bit window when there is no other.
    pub mmio64: Option<IpaRange>,
}

impl PciWindows {
    /// `virt`'s layout: [`virt::PCIE_ECAM`] (buses 0 to 15) and
    /// [`virt::PCIE_MMIO`].
    pub const VIRT: PciWindows = PciWindows {
        ecam: virt::PCIE_ECAM,
        mmio32: virt::PCIE_MMIO,
        mmio64: None,
    };

    /// The last bus number the ECAM window serves (its size in MiB less
    /// one, at most 255); 0 for a window smaller than a bus, which
    /// [`check`](Self::check) refuses.
    pub const fn last_bus(&self) -> u8 {
        let buses = self.ecam.size() / ECAM_BUS_SIZE;
        if buses == 0 {
            0
        } else if buses > MAX_BUSES {
            (MAX_BUSES - 1) as u8
        } else {
            (buses - 1) as u8
        }
    }

    /// Checks the layout against a guest whose RAM is `ram`.
    ///
    /// # Errors
    ///
    /// - [`PciError::EcamMisaligned`], [`PciError::EcamTooLarge`].
    /// - [`PciError::WindowMisaligned`], [`PciError::Mmio32Above4GiB`].
    /// - [`PciError::Overlap`]: two of the windows, or one of them and RAM,
    ///   the GIC, the UART or the virtio-mmio transports, share an address.
    pub fn check(&self, ram: IpaRange) -> Result<(), PciError> {
        let ecam = self.ecam;
        if ecam.is_empty()
            || !ecam.start().is_aligned(ECAM_BUS_SIZE)
            || !ecam.size().is_multiple_of(ECAM_BUS_SIZE)
        {
            return Err(PciError::EcamMisaligned(ecam));
        }
        if ecam.size() / ECAM_BUS_SIZE > MAX_BUSES {
            return Err(PciError::EcamTooLarge(ecam));
        }
        for window in self.memory_windows() {
            if window.is_empty()
                || !window.start().is_aligned(PCI_WINDOW_ALIGN)
                || !window.size().is_multiple_of(PCI_WINDOW_ALIGN)
            {
                return Err(PciError::WindowMisaligned(window));
            }
        }
        if self.mmio32.end().get() > FOUR_GIB {
            return Err(PciError::Mmio32Above4GiB(self.mmio32));
        }
        let fixed = [
            ram,
            virt::GICD,
            virt::GICR_WINDOW,
            virt::UART,
            virt::VIRTIO_MMIO_WINDOW,
        ];
        let ours = [Some(ecam), Some(self.mmio32), self.mmio64];
        let ours = ours.iter().flatten();
        for (i, region) in ours.clone().enumerate() {
            let others = fixed.iter().chain(ours.clone().skip(i + 1));
            if let Some(other) = others.into_iter().find(|o| o.overlaps(region)) {
                return Err(PciError::Overlap {
                    region: *region,
                    other: *other,
                });
            }
        }
        Ok(())
    }

    /// The memory windows: `mmio32`, then `mmio64` if there is one.
    pub fn memory_windows(&self) -> impl Iterator<Item = IpaRange> + Clone {
        core::iter::once(self.mmio32).chain(self.mmio64)
    }
}

/// The guest's PCIe host bridge: its windows and its `interrupt-map`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPci<'a> {
    /// Where it is.
    pub windows: PciWindows,
    /// Which SPI each device's pin raises, in any order; at most one entry
    /// per device and pin. Devices or pins without an entry have no INTx.
    pub interrupts: &'a [PciInterrupt],
}

impl GuestPci<'_> {
    /// Checks the layout ([`PciWindows::check`]) and the interrupts.
    ///
    /// # Errors
    ///
    /// Those of [`PciWindows::check`], and:
    /// - [`PciError::DeviceOutOfRange`]: a device number of 32 or more.
    /// - [`PciError::DuplicateInterrupt`]: two entries for one device and
    ///   pin.
    /// - [`PciError::ReservedSpi`]: an SPI the UART or a virtio-mmio
    ///   transport raises.
    pub fn check(&self, ram: IpaRange) -> Result<(), PciError> {
        self.windows.check(ram)?;
        let virtio_spis = virt::VIRTIO_MMIO_FIRST_SPI.number()
            ..virt::VIRTIO_MMIO_FIRST_SPI.number() + virt::VIRTIO_MMIO_SLOTS;
        for (i, irq) in self.interrupts.iter().enumerate() {
            if irq.device >= PCI_DEVICES {
                return Err(PciError::DeviceOutOfRange { device: irq.device });
            }
            if irq.spi == virt::UART_SPI || virtio_spis.contains(&irq.spi.number()) {
                return Err(PciError::ReservedSpi { spi: irq.spi });
            }
            let later = &self.interrupts[i + 1..];
            if later
                .iter()
                .any(|o| o.device == irq.device && o.pin == irq.pin)
            {
                return Err(PciError::DuplicateInterrupt {
                    device: irq.device,
                    pin: irq.pin,
                });
            }
        }
        Ok(())
    }
}

/// Why a guest PCIe host bridge layout was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// The ECAM window is empty, does not start on a MiB boundary, or is
    /// not a whole number of buses (MiB).
    EcamMisaligned(IpaRange),
    /// The ECAM window is larger than 256 buses.
    EcamTooLarge(IpaRange),
    /// A memory window is empty or not page aligned (start and size).
    WindowMisaligned(IpaRange),
    /// The 32-bit window reaches above 4 GiB.
    Mmio32Above4GiB(IpaRange),
    /// A window overlaps another, or RAM or a device of the guest.
    Overlap {
        /// The window.
        region: IpaRange,
        /// What it overlaps.
        other: IpaRange,
    },
    /// An `interrupt-map` entry names a device number of 32 or more.
    DeviceOutOfRange {
        /// The device number.
        device: u8,
    },
    /// Two `interrupt-map` entries for the same device and pin.
    DuplicateInterrupt {
        /// The device number.
        device: u8,
        /// The pin.
        pin: IntxPin,
    },
    /// An INTx SPI is the UART's or a virtio-mmio transport's.
    ReservedSpi {
        /// The SPI.
        spi: Spi,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EcamMisaligned(r) => write!(
                f,
                "PCIe ECAM window {r} is not a non-empty whole number of MiB-aligned buses"
            ),
            Self::EcamTooLarge(r) => write!(f, "PCIe ECAM window {r} is larger than 256 buses"),
            Self::WindowMisaligned(r) => {
                write!(f, "PCIe memory window {r} is empty or not page aligned")
            }
            Self::Mmio32Above4GiB(r) => {
                write!(f, "PCIe 32-bit memory window {r} reaches above 4 GiB")
            }
            Self::Overlap { region, other } => {
                write!(f, "PCIe window {region} overlaps {other}")
            }
            Self::DeviceOutOfRange { device } => {
                write!(f, "PCI interrupt for device {device}, past the 32 of a bus")
            }
            Self::DuplicateInterrupt { device, pin } => {
                write!(f, "two PCI interrupts for device {device} {pin}")
            }
            Self::ReservedSpi { spi } => {
                write!(f, "PCI INTx {spi} is the UART's or a virtio-mmio slot's")
            }
        }
    }
}

impl core::error::Error for PciError {}
