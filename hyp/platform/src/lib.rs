//! A validated description of the machine the hypervisor runs on, read from
//! the device tree the loader hands over in x0.
//!
//! [`Platform::from_dtb`] checks the blob's layout, walks it once with the
//! `fdt` crate and returns plain values: physical ranges already translated
//! through every parent's `ranges` (Devicetree Specification v0.4 §2.3.8),
//! interrupts decoded per the GICv3 binding, bounded lists. Nothing past this
//! crate needs to read the device tree again. The required pieces (memory,
//! CPUs, a GICv3) missing is an error that names what is missing.
//!
//! [`free_memory`] turns memory minus what is in use into page-aligned free
//! ranges; [`bootargs`] reads the hypervisor's own `hyp.` options.

#![no_std]
#![deny(missing_docs)]

pub mod bootargs;
mod error;
mod free;
mod parse;
mod structure;

use core::fmt;

pub use addr::{PhysAddr, PhysRange};
pub use error::{Block, DtError, NodeName, StructureError};
pub use free::{free_memory, FreeMemoryError, PAGE_SIZE};
pub use structure::{dtb_total_size, remove_nops, HEADER_SIZE};

/// Most CPUs described; more is [`DtError::TooManyCpus`].
pub const MAX_CPUS: usize = 16;
/// Most memory regions (`reg` entries of memory nodes) described.
pub const MAX_MEMORY_REGIONS: usize = 8;
/// Most reserved regions (`/memreserve/` plus `/reserved-memory` children).
pub const MAX_RESERVED: usize = 16;
/// Most PCI windows (`ranges` entries of the host bridge).
pub const MAX_PCI_WINDOWS: usize = 8;
/// Longest `/chosen/bootargs` kept, in bytes.
pub const MAX_BOOTARGS: usize = 512;
/// Deepest node nesting accepted (the root is depth 0); real trees use
/// about five levels.
pub const MAX_DEPTH: usize = 16;

/// What the device tree says about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// RAM: the `reg` entries of every `device_type = "memory"` node, in tree
    /// order, empty entries dropped.
    pub memory: heapless::Vec<PhysRange, MAX_MEMORY_REGIONS>,
    /// Memory that is not ours to use: `/memreserve/` entries, then the
    /// `/reserved-memory` children that have a `reg`.
    pub reserved: heapless::Vec<PhysRange, MAX_RESERVED>,
    /// The CPUs under `/cpus`, in tree order.
    pub cpus: heapless::Vec<Cpu, MAX_CPUS>,
    /// The GICv3.
    pub gic: Gicv3,
    /// The console: the PL011 `/chosen/stdout-path` names, else the first
    /// PL011 in the tree.
    pub uart: Option<Pl011>,
    /// The first SMMUv3.
    pub smmu: Option<Smmuv3>,
    /// The first generic ECAM PCIe host bridge.
    pub pcie: Option<PcieEcam>,
    /// How to make PSCI calls, from the `/psci` node's `method`.
    pub psci: Option<PsciConduit>,
    /// `/chosen` `linux,initrd-start` .. `linux,initrd-end`: where the loader
    /// put the boot bundle.
    pub initrd: Option<PhysRange>,
    /// `/chosen/bootargs`, empty if absent.
    pub bootargs: heapless::String<MAX_BOOTARGS>,
    /// The architected timer's interrupts.
    pub timer: Option<TimerIrqs>,
}

impl Platform {
    /// Reads and validates the device tree in `dtb`.
    ///
    /// `dtb` may be longer than the tree; its header's `totalsize` counts.
    ///
    /// # Errors
    ///
    /// - [`DtError::Malformed`], [`DtError::Structure`]: the blob is not a
    ///   well-formed flattened device tree.
    /// - [`DtError::NoMemory`], [`DtError::NoCpus`], [`DtError::NoGic`]: a
    ///   required node is missing (or disabled).
    /// - [`DtError::TooManyCpus`], [`DtError::TooManyMemoryRegions`],
    ///   [`DtError::TooManyReserved`], [`DtError::TooManyPciWindows`]: more
    ///   than the fixed capacity.
    /// - [`DtError::MissingReg`], [`DtError::BadReg`],
    ///   [`DtError::AddressOverflow`], [`DtError::Untranslatable`],
    ///   [`DtError::BadProperty`]: a node we use is malformed.
    /// - [`DtError::BootargsTooLong`], [`DtError::InitrdEndBeforeStart`]:
    ///   `/chosen` is unusable.
    pub fn from_dtb(dtb: &[u8]) -> Result<Platform, DtError> {
        structure::check(dtb)?;
        parse::parse(dtb)
    }

    /// Every MMIO region the hypervisor itself drives: the GIC's distributor,
    /// redistributors and ITS, the console UART, the SMMU and the PCIe ECAM.
    pub fn mmio_regions(&self) -> impl Iterator<Item = PhysRange> + '_ {
        [
            Some(self.gic.distributor),
            Some(self.gic.redistributors),
            self.gic.its,
            self.uart.map(|u| u.regs),
            self.smmu.map(|s| s.regs),
            self.pcie.as_ref().map(|p| p.ecam),
        ]
        .into_iter()
        .flatten()
    }
}

/// The console UART alone: what `/chosen/stdout-path` names, else the first
/// PL011. For the early boot, so that an error in the rest of the tree (a
/// missing GIC, say) can still be printed.
///
/// # Errors
///
/// The errors of [`Platform::from_dtb`] that concern the blob's structure or
/// the nodes walked; none about required nodes being absent.
pub fn find_console(dtb: &[u8]) -> Result<Option<Pl011>, DtError> {
    structure::check(dtb)?;
    parse::console(dtb)
}

/// A CPU's affinity as the device tree gives it: the `reg` of its node, which
/// the Arm CPU binding defines as the MPIDR_EL1 affinity fields
/// (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mpidr(pub u64);

impl Mpidr {
    /// The value, e.g. for PSCI `CPU_ON`'s target_cpu argument.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Mpidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mpidr({:#x})", self.0)
    }
}

impl fmt::Display for Mpidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// One CPU node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// Its affinity, the target of PSCI `CPU_ON`.
    pub mpidr: Mpidr,
    /// How it is started.
    pub enable_method: EnableMethod,
}

/// A CPU node's `enable-method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// `"psci"`: started with PSCI `CPU_ON`.
    Psci,
    /// `"spin-table"`: spins on `cpu-release-addr`.
    SpinTable,
    /// No `enable-method` (usually the boot CPU on spin-table systems).
    None,
    /// Some other method.
    Other,
}

/// An interrupt specifier for the GIC (the `arm,gic-v3` binding's three
/// cells: type, number, flags; the flags are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// Shared peripheral interrupt `n` (INTID 32 + n).
    Spi(u32),
    /// Private peripheral interrupt `n` (INTID 16 + n).
    Ppi(u32),
}

impl Interrupt {
    /// The GIC interrupt ID, or `None` if the number is outside its class
    /// (SPIs are INTIDs 32..=1019, PPIs 16..=31; GICv3 architecture
    /// specification §2.2). The parser only builds numbers inside it.
    pub const fn intid(self) -> Option<u32> {
        match self {
            Self::Spi(n) if n < 988 => Some(32 + n),
            Self::Ppi(n) if n < 16 => Some(16 + n),
            _ => None,
        }
    }
}

/// The GICv3 (`compatible = "arm,gic-v3"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gicv3 {
    /// GICD, the first `reg` entry.
    pub distributor: PhysRange,
    /// The first redistributor region, the second `reg` entry.
    pub redistributors: PhysRange,
    /// The first `arm,gic-v3-its` node's registers.
    pub its: Option<PhysRange>,
    /// The virtual CPU interface maintenance interrupt, the GIC node's
    /// `interrupts`.
    pub maintenance: Option<Interrupt>,
}

/// A PL011 UART (`compatible = "arm,pl011"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pl011 {
    /// Its register frame.
    pub regs: PhysRange,
    /// Its interrupt, the first `interrupts` entry, if readable.
    pub interrupt: Option<Interrupt>,
}

/// An SMMUv3 (`compatible = "arm,smmu-v3"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Smmuv3 {
    /// Its register frames.
    pub regs: PhysRange,
}

/// A generic PCIe host bridge with ECAM config space
/// (`compatible = "pci-host-ecam-generic"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcieEcam {
    /// The ECAM window (1 MiB per bus).
    pub ecam: PhysRange,
    /// First bus number (`bus-range`, default 0).
    pub first_bus: u8,
    /// Last bus number (`bus-range`, default 255).
    pub last_bus: u8,
    /// The windows through which the CPU reaches PCI space (`ranges`).
    pub windows: heapless::Vec<PciWindow, MAX_PCI_WINDOWS>,
}

/// The PCI address space a window maps, from bits 25:24 of `phys.hi` in the
/// PCI bus binding (IEEE 1275 PCI Bus Binding §2.2.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciSpace {
    /// I/O space.
    Io,
    /// 32-bit memory space.
    Mem32,
    /// 64-bit memory space.
    Mem64,
}

/// One `ranges` entry of a PCI host bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciWindow {
    /// The PCI space it maps.
    pub space: PciSpace,
    /// Whether it is marked prefetchable.
    pub prefetchable: bool,
    /// The PCI address at its start.
    pub pci_addr: u64,
    /// Where the CPU sees it.
    pub cpu: PhysRange,
}

/// The PSCI calling convention (`/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// `"smc"`: calls go to EL3.
    Smc,
    /// `"hvc"`: calls go to EL2 (not usable by the hypervisor itself).
    Hvc,
}

impl fmt::Display for PsciConduit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Smc => "SMC",
            Self::Hvc => "HVC",
        })
    }
}

/// The architected timer's interrupts (`compatible = "arm,armv8-timer"`),
/// in the binding's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerIrqs {
    /// Secure EL1 physical timer.
    pub secure_phys: Interrupt,
    /// Non-secure EL1 physical timer.
    pub phys: Interrupt,
    /// EL1 virtual timer.
    pub virt: Interrupt,
    /// EL2 physical timer.
    pub hyp_phys: Interrupt,
    /// EL2 virtual timer, when described.
    pub hyp_virt: Option<Interrupt>,
}
