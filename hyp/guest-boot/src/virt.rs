//! The machine every guest sees: a subset of QEMU's `virt` board, at the
//! same addresses and interrupt numbers, so that a kernel or firmware built
//! for `virt` boots unchanged.
//!
//! The numbers follow QEMU's `hw/arm/virt.c` memory map (`base_memmap`) and
//! IRQ map (`a15irqmap`). Only what a guest is given today is described in
//! its device tree (see [`crate::write_dtb`]); the virtio-mmio slots are
//! reserved here so that later devices land where `virt` puts them.

use core::fmt;

use addr::IntermediatePhysAddr;

use crate::IpaRange;

/// Everything below guest RAM: device MMIO lives here and RAM may not.
pub const DEVICE_WINDOW: IpaRange = IpaRange::fixed(0, 0x4000_0000);

/// Where guest RAM starts (`virt`'s `VIRT_MEM`).
pub const RAM_BASE: IntermediatePhysAddr = IntermediatePhysAddr(0x4000_0000);

/// The GICv3 distributor (`VIRT_GIC_DIST`).
pub const GICD: IpaRange = IpaRange::fixed(0x0800_0000, 0x1_0000);

/// Where the first vCPU's redistributor starts (`VIRT_GIC_REDIST`).
pub const GICR_BASE: IntermediatePhysAddr = IntermediatePhysAddr(0x080A_0000);

/// Bytes of redistributor per vCPU: the RD_base and SGI_base 64 KiB frames
/// (GICv3 architecture specification, IHI 0069, §12.10).
pub const GICR_STRIDE: u64 = 0x2_0000;

/// The whole redistributor window `virt` reserves: up to 123 vCPUs.
pub const GICR_WINDOW: IpaRange = IpaRange::fixed(0x080A_0000, 0x0900_0000 - 0x080A_0000);

/// The PL011 UART (`VIRT_UART`).
pub const UART: IpaRange = IpaRange::fixed(0x0900_0000, 0x1000);

/// The PL011's interrupt (`VIRT_UART` in `a15irqmap`).
pub const UART_SPI: Spi = Spi::fixed(1);

/// Frequency of the fixed `apb-pclk` clock that feeds the PL011, in Hz.
pub const APB_PCLK_HZ: u32 = 24_000_000;

/// The first virtio-mmio transport (`VIRT_MMIO`).
pub const VIRTIO_MMIO_BASE: IntermediatePhysAddr = IntermediatePhysAddr(0x0A00_0000);

/// Bytes between consecutive virtio-mmio transports; also each one's size.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;

/// How many virtio-mmio transports `virt` lays out (`NUM_VIRTIO_TRANSPORTS`).
pub const VIRTIO_MMIO_SLOTS: u32 = 32;

/// The interrupt of virtio-mmio slot 0; slot `n` has SPI `16 + n`.
pub const VIRTIO_MMIO_FIRST_SPI: Spi = Spi::fixed(16);

/// The PCIe host bridge's configuration space (ECAM), when the VM has
/// passthrough PCI functions: `virt`'s low ECAM (`VIRT_PCIE_ECAM`), 16 MiB
/// for buses 0 to 15, right below RAM. (`virt`'s high ECAM, at 256 GiB, is
/// out of reach of a 39-bit IPA space shared with the SMMU.)
pub const PCIE_ECAM: IpaRange = IpaRange::fixed(0x3F00_0000, 0x0100_0000);

/// The PCIe host bridge's 32-bit memory window (`VIRT_PCIE_MMIO`), where
/// BARs go; PCI addresses equal IPAs in it. `virt`'s I/O window
/// (`VIRT_PCIE_PIO`, the 64 KiB between this and [`PCIE_ECAM`]) is left
/// out: guests get no I/O space.
pub const PCIE_MMIO: IpaRange = IpaRange::fixed(0x1000_0000, 0x2EFF_0000);

/// The first of the SPIs `virt` wires the PCIe INTA..INTD lines to
/// (`VIRT_PCIE` in `a15irqmap`): SPIs 3 to 6, INTIDs 35 to 38. A guest's
/// passthrough INTx may use the same numbers as the host's lines they are
/// linked to.
pub const PCIE_FIRST_SPI: Spi = Spi::fixed(3);

/// How many SPIs from [`PCIE_FIRST_SPI`] `virt` uses for INTx: one per pin.
pub const PCIE_SPIS: u32 = 4;

/// The span of every virtio-mmio transport.
pub const VIRTIO_MMIO_WINDOW: IpaRange = IpaRange::fixed(
    VIRTIO_MMIO_BASE.get(),
    VIRTIO_MMIO_SLOTS as u64 * VIRTIO_MMIO_STRIDE,
);

/// Secure EL1 physical timer interrupt.
pub const TIMER_SECURE_PHYS_PPI: Ppi = Ppi::fixed(13);

/// Non-secure EL1 physical timer interrupt.
pub const TIMER_PHYS_PPI: Ppi = Ppi::fixed(14);

/// EL1 virtual timer interrupt: the one a guest kernel normally uses.
pub const TIMER_VIRT_PPI: Ppi = Ppi::fixed(11);

/// EL2 (hypervisor) physical timer interrupt.
pub const TIMER_HYP_PPI: Ppi = Ppi::fixed(10);

/// The redistributor frames of `vcpus` vCPUs, from [`GICR_BASE`]; `None`
/// if they do not fit the [`GICR_WINDOW`].
pub const fn gicr_frames(vcpus: u32) -> Option<IpaRange> {
    let size = vcpus as u64 * GICR_STRIDE;
    match IpaRange::new(GICR_BASE, size) {
        Some(r) if r.end().get() <= GICR_WINDOW.end().get() => Some(r),
        _ => None,
    }
}

/// The redistributor (RD_base and SGI_base frames) of vCPU `vcpu`; `None`
/// past the [`GICR_WINDOW`].
pub const fn gicr_of(vcpu: u32) -> Option<IpaRange> {
    let Some(start) = GICR_BASE.checked_add(vcpu as u64 * GICR_STRIDE) else {
        return None;
    };
    match IpaRange::new(start, GICR_STRIDE) {
        Some(r) if r.end().get() <= GICR_WINDOW.end().get() => Some(r),
        _ => None,
    }
}

/// The registers and interrupt of virtio-mmio slot `slot`; `None` for a slot
/// at or past [`VIRTIO_MMIO_SLOTS`].
pub const fn virtio_mmio_slot(slot: u32) -> Option<(IpaRange, Spi)> {
    if slot >= VIRTIO_MMIO_SLOTS {
        return None;
    }
    let start = VIRTIO_MMIO_BASE.get() + slot as u64 * VIRTIO_MMIO_STRIDE;
    Some((
        IpaRange::fixed(start, VIRTIO_MMIO_STRIDE),
        // Below COUNT: checked for the last slot at build time, below.
        Spi(VIRTIO_MMIO_FIRST_SPI.0 + slot as u16),
    ))
}

/// A shared peripheral interrupt, numbered as the device tree's GIC binding
/// numbers it (`<0 n flags>`): SPI `n` is GIC INTID `32 + n`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spi(u16);

impl Spi {
    /// Most SPIs: INTIDs 32..=1019 (GICv3 §2.2.1).
    pub const COUNT: u32 = 988;

    /// SPI `n`, or `None` if `n` is not below [`Spi::COUNT`].
    pub const fn new(n: u32) -> Option<Self> {
        if n < Self::COUNT {
            Some(Self(n as u16))
        } else {
            None
        }
    }

    /// For `const` items only: an out-of-range number fails the build.
    const fn fixed(n: u32) -> Self {
        match Self::new(n) {
            Some(s) => s,
            None => panic!("SPI number out of range"),
        }
    }

    /// The number in the device tree's interrupt specifier.
    pub const fn number(self) -> u32 {
        self.0 as u32
    }

    /// The GIC interrupt ID.
    pub const fn intid(self) -> u32 {
        32 + self.0 as u32
    }
}

impl fmt::Debug for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SPI {} (INTID {})", self.number(), self.intid())
    }
}

impl fmt::Display for Spi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SPI {}", self.number())
    }
}

/// A private peripheral interrupt, numbered as the device tree's GIC binding
/// numbers it (`<1 n flags>`): PPI `n` is GIC INTID `16 + n`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ppi(u8);

impl Ppi {
    /// PPIs: INTIDs 16..=31 (GICv3 §2.2.1; the extended range is not used).
    pub const COUNT: u32 = 16;

    /// PPI `n`, or `None` if `n` is not below [`Ppi::COUNT`].
    pub const fn new(n: u32) -> Option<Self> {
        if n < Self::COUNT {
            Some(Self(n as u8))
        } else {
            None
        }
    }

    /// For `const` items only: an out-of-range number fails the build.
    const fn fixed(n: u32) -> Self {
        match Self::new(n) {
            Some(p) => p,
            None => panic!("PPI number out of range"),
        }
    }

    /// The number in the device tree's interrupt specifier.
    pub const fn number(self) -> u32 {
        self.0 as u32
    }

    /// The GIC interrupt ID.
    pub const fn intid(self) -> u32 {
        16 + self.0 as u32
    }
}

impl fmt::Debug for Ppi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PPI {} (INTID {})", self.number(), self.intid())
    }
}

impl fmt::Display for Ppi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PPI {}", self.number())
    }
}

// The devices must sit in the device window, apart from each other.
const _: () = {
    assert!(DEVICE_WINDOW.end().get() == RAM_BASE.get());
    assert!(DEVICE_WINDOW.contains_range(&GICD));
    assert!(DEVICE_WINDOW.contains_range(&GICR_WINDOW));
    assert!(DEVICE_WINDOW.contains_range(&UART));
    assert!(!GICD.overlaps(&GICR_WINDOW) && !GICR_WINDOW.overlaps(&UART));
    assert!(GICR_WINDOW.start().get() == GICR_BASE.get());
    assert!(GICR_WINDOW.size().is_multiple_of(GICR_STRIDE));
    assert!(
        VIRTIO_MMIO_BASE.get() + VIRTIO_MMIO_SLOTS as u64 * VIRTIO_MMIO_STRIDE
            <= DEVICE_WINDOW.end().get()
    );
    assert!(UART.end().get() <= VIRTIO_MMIO_BASE.get());
    assert!(VIRTIO_MMIO_FIRST_SPI.number() + VIRTIO_MMIO_SLOTS <= Spi::COUNT);
    assert!(UART_SPI.number() < VIRTIO_MMIO_FIRST_SPI.number());
    assert!(DEVICE_WINDOW.contains_range(&PCIE_ECAM));
    assert!(DEVICE_WINDOW.contains_range(&PCIE_MMIO));
    assert!(VIRTIO_MMIO_WINDOW.end().get() <= PCIE_MMIO.start().get());
    assert!(PCIE_MMIO.end().get() <= PCIE_ECAM.start().get());
    // INTx SPIs between the UART's and the virtio-mmio slots'.
    assert!(UART_SPI.number() < PCIE_FIRST_SPI.number());
    assert!(PCIE_FIRST_SPI.number() + PCIE_SPIS <= VIRTIO_MMIO_FIRST_SPI.number());
};

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn redistributors_are_two_frames_each_and_bounded_by_the_window() {
        assert_eq!(
            gicr_frames(4),
            IpaRange::new(IntermediatePhysAddr(0x080A_0000), 0x8_0000)
        );
        assert_eq!(
            gicr_of(1),
            IpaRange::new(IntermediatePhysAddr(0x080C_0000), 0x2_0000)
        );
        // 123 fit below the UART, the 124th would not.
        assert!(gicr_frames(123).is_some());
        assert_eq!(gicr_frames(124), None);
        assert!(gicr_of(122).is_some());
        assert_eq!(gicr_of(123), None);
        assert_eq!(gicr_of(u32::MAX), None);
        assert_eq!(gicr_frames(u32::MAX), None);
    }

    #[test]
    fn virtio_slots_match_qemu_virt() {
        let (first, spi) = virtio_mmio_slot(0).unwrap();
        assert_eq!(first.start(), IntermediatePhysAddr(0x0A00_0000));
        assert_eq!(spi.intid(), 48);
        let (last, spi) = virtio_mmio_slot(31).unwrap();
        assert_eq!(last.start(), IntermediatePhysAddr(0x0A00_3E00));
        assert_eq!(last.size(), 0x200);
        assert_eq!(spi.number(), 47);
        assert_eq!(virtio_mmio_slot(32), None);
    }

    #[test]
    fn interrupt_numbers_are_range_checked_and_print_their_kind() {
        assert_eq!(Spi::new(988), None);
        assert_eq!(Ppi::new(16), None);
        assert_eq!(Spi::new(987).map(Spi::intid), Some(1019));
        assert_eq!(TIMER_VIRT_PPI.intid(), 27);
        assert_eq!(format!("{UART_SPI}"), "SPI 1");
        assert_eq!(format!("{TIMER_PHYS_PPI:?}"), "PPI 14 (INTID 30)");
    }
}
