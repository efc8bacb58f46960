//! What the guest needs from its device tree: RAM, the vCPUs' MPIDRs, the
//! bootargs, the PSCI conduit and, for the DMA test, the PCIe host bridge.

use crate::firmware::Conduit;
use crate::{boot, mmu, smp};
use core::fmt;
use fdt::Fdt;
use guest_rt::dt::{self, OpenError};

/// How much room the loader may take for the device tree, and therefore how
/// far from it the tests keep: 2 MiB, the arm64 boot protocol's limit.
pub const DTB_RESERVED: u64 = guest_rt::dt::DTB_MAX;

/// A range of addresses, `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

impl Range {
    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// Whether `other` lies entirely inside this range.
    pub fn contains(&self, other: &Range) -> bool {
        self.start <= other.start && other.end <= self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}..{:#x})", self.start, self.end)
    }
}

/// The machine as the device tree describes it.
#[derive(Debug)]
pub struct Machine {
    /// Where the device tree is, with the room kept free around it
    /// ([`DTB_RESERVED`], or its size if larger).
    pub dtb: Range,
    /// The RAM region that holds the image.
    pub ram: Range,
    /// MPIDR (affinity fields) of each vCPU, in device-tree order; the index
    /// in this list is the vCPU index. At most [`smp::MAX_VCPUS`].
    pub cpus: heapless::Vec<u64, { smp::MAX_VCPUS }>,
    /// How many CPU nodes the device tree has, including any beyond
    /// [`smp::MAX_VCPUS`].
    pub cpus_in_dt: usize,
    /// `/chosen/bootargs`, or "".
    pub bootargs: &'static str,
    /// The conduit `/psci/method` names.
    pub psci: Conduit,
    /// The initrd, if `/chosen` names one.
    pub initrd: Option<Range>,
    /// The PCIe host bridge, or why there is none to use. Only the DMA test
    /// needs one, so a missing or malformed node fails that test alone.
    pub pcie: Result<PcieHost, PcieError>,
}

/// The compatible string of a generic ECAM host bridge (Linux's
/// `host-generic-pci.yaml` binding), the one the hypervisor describes.
pub const PCIE_COMPATIBLE: &str = "pci-host-ecam-generic";

/// Bytes of ECAM per bus: 32 devices of 8 functions of 4 KiB (PCIe Base
/// Specification §7.2.2).
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// Cells of one `ranges` entry under a PCI bus node: a 3-cell PCI address,
/// a 2-cell CPU address (the root's `#address-cells`) and a 2-cell size.
const PCI_RANGES_CELLS: usize = 7;
/// `phys.hi` bits 25:24, the space code (PCI bus binding §2.2.1.1).
const PCI_SPACE_SHIFT: u32 = 24;
const PCI_SPACE_MASK: u32 = 0b11;
/// The space code of 32-bit memory space.
const PCI_SPACE_MEM32: u32 = 0b10;

/// A PCIe host bridge with an ECAM window, as its device-tree node says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PcieHost {
    /// The ECAM window: bus [`first_bus`](Self::first_bus) at its start,
    /// [`ECAM_BUS_SIZE`] per bus.
    pub ecam: Range,
    /// The first bus number (`bus-range`, or 0).
    pub first_bus: u8,
    /// The 32-bit memory window, as CPU addresses.
    pub mmio32: Range,
    /// The PCI bus address of the window's first byte (what a BAR holds).
    pub mmio32_pci: u64,
}

impl PcieHost {
    /// The PCI address of CPU address `cpu` in the 32-bit window.
    pub fn pci_address(&self, cpu: u64) -> u64 {
        cpu - self.mmio32.start + self.mmio32_pci
    }
}

impl fmt::Display for PcieHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ECAM {} from bus {}, 32-bit memory window {} (PCI {:#x})",
            self.ecam, self.first_bus, self.mmio32, self.mmio32_pci
        )
    }
}

/// Why the device tree gives no usable PCIe host bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PcieError {
    /// No node is compatible with [`PCIE_COMPATIBLE`].
    Absent,
    /// The node's `reg` is missing or not one 64-bit address and size.
    Reg,
    /// The ECAM window is smaller than a bus, or lies outside the device
    /// window the guest maps (below [`mmu::NORMAL_START`]).
    EcamUnusable(Range),
    /// `ranges` is missing or not whole 7-cell entries.
    Ranges,
    /// `ranges` has no 32-bit memory window.
    NoMmio32,
    /// The 32-bit memory window lies outside the guest's device window.
    Mmio32Unusable(Range),
}

impl fmt::Display for PcieError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => write!(f, "no node compatible with \"{PCIE_COMPATIBLE}\""),
            Self::Reg => write!(f, "the PCIe node's reg is not one 64-bit address and size"),
            Self::EcamUnusable(ecam) => write!(
                f,
                "ECAM window {ecam} is smaller than a bus or not in the device window below {:#x}",
                mmu::NORMAL_START
            ),
            Self::Ranges => write!(f, "the PCIe node's ranges is missing or not 7-cell entries"),
            Self::NoMmio32 => write!(f, "the PCIe node's ranges has no 32-bit memory window"),
            Self::Mmio32Unusable(window) => write!(
                f,
                "32-bit memory window {window} is not in the device window below {:#x}",
                mmu::NORMAL_START
            ),
        }
    }
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DtError {
    /// No device tree at x0, or one the parser refused.
    Open(OpenError),
    /// No /memory region holds the image.
    NoRamForImage,
    /// No /cpus/cpu node with a usable `reg`.
    NoCpus,
    /// /psci/method is neither "hvc" nor "smc".
    PsciMethod,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open(e) => write!(f, "{e}"),
            Self::NoRamForImage => write!(f, "no /memory region holds the image"),
            Self::NoCpus => write!(f, "no /cpus/cpu node with a reg"),
            Self::PsciMethod => write!(f, "/psci/method is neither \"hvc\" nor \"smc\""),
        }
    }
}

/// Reads the device tree at `dtb`.
///
/// # Errors
///
/// Every [`DtError`] variant, as documented there.
pub fn parse(dtb: u64) -> Result<Machine, DtError> {
    // It lives as long as the guest runs: the loader put it there for the
    // guest, and every test that writes RAM keeps out of `Machine::dtb`.
    let fdt = dt::open(dtb).map_err(DtError::Open)?;
    let size = fdt.total_size() as u64;
    let (image_start, image_end) = boot::image_range();
    let image = Range {
        start: image_start,
        end: image_end,
    };
    let ram = fdt
        .find_node("/memory")
        .and_then(|node| node.reg())
        .into_iter()
        .flatten()
        .filter_map(|region| {
            let start = region.starting_address as u64;
            Some(Range {
                start,
                end: start.checked_add(region.size? as u64)?,
            })
        })
        .find(|ram| ram.contains(&image))
        .ok_or(DtError::NoRamForImage)?;

    let dt::Cpus {
        mpidrs: cpus,
        in_dt: cpus_in_dt,
    } = dt::cpus(&fdt).ok_or(DtError::NoCpus)?;

    let psci = match dt::psci_method(&fdt) {
        Some("smc") => Conduit::Smc,
        Some("hvc") | None => Conduit::Hvc,
        Some(_) => return Err(DtError::PsciMethod),
    };

    let bootargs = dt::bootargs(&fdt);
    let initrd = fdt.find_node("/chosen").and_then(|node| {
        let start = be_number(node.property("linux,initrd-start")?.value)?;
        let end = be_number(node.property("linux,initrd-end")?.value)?;
        Some(Range { start, end })
    });

    let pcie = pcie_host(&fdt);

    Ok(Machine {
        dtb: Range {
            start: dtb,
            end: dtb + size.max(DTB_RESERVED),
        },
        ram,
        cpus,
        cpus_in_dt,
        bootargs,
        psci,
        initrd,
        pcie,
    })
}

/// The first `pci-host-ecam-generic` node: its ECAM window from `reg`, its
/// first bus from `bus-range`, its 32-bit memory window from `ranges`.
/// Both windows must lie in the device window the guest maps
/// ([`mmu`]'s first GiB), where the accesses are single device accesses.
fn pcie_host(fdt: &Fdt<'_>) -> Result<PcieHost, PcieError> {
    let node = fdt
        .find_compatible(&[PCIE_COMPATIBLE])
        .ok_or(PcieError::Absent)?;
    let reg = node.property("reg").ok_or(PcieError::Reg)?.value;
    if reg.len() != 16 {
        return Err(PcieError::Reg);
    }
    let (start, size) = (
        be_number(&reg[..8]).ok_or(PcieError::Reg)?,
        be_number(&reg[8..]).ok_or(PcieError::Reg)?,
    );
    let ecam = Range {
        start,
        end: start.checked_add(size).ok_or(PcieError::Reg)?,
    };
    if size < ECAM_BUS_SIZE || ecam.end > mmu::NORMAL_START {
        return Err(PcieError::EcamUnusable(ecam));
    }
    let first_bus = node
        .property("bus-range")
        .and_then(|p| p.value.get(..4))
        .and_then(be_number)
        .map_or(0, |bus| bus as u8);

    let ranges = node.property("ranges").ok_or(PcieError::Ranges)?.value;
    if ranges.is_empty() || !ranges.len().is_multiple_of(PCI_RANGES_CELLS * 4) {
        return Err(PcieError::Ranges);
    }
    let cell = |entry: &[u8], i: usize| be_number(&entry[4 * i..4 * i + 4]);
    let pair = |entry: &[u8], i: usize| be_number(&entry[4 * i..4 * i + 8]);
    for entry in ranges.chunks_exact(PCI_RANGES_CELLS * 4) {
        let space = cell(entry, 0).ok_or(PcieError::Ranges)? as u32;
        if (space >> PCI_SPACE_SHIFT) & PCI_SPACE_MASK != PCI_SPACE_MEM32 {
            continue;
        }
        let pci = pair(entry, 1).ok_or(PcieError::Ranges)?;
        let cpu = pair(entry, 3).ok_or(PcieError::Ranges)?;
        let size = pair(entry, 5).ok_or(PcieError::Ranges)?;
        let window = Range {
            start: cpu,
            end: cpu.checked_add(size).ok_or(PcieError::Ranges)?,
        };
        if size == 0 || window.end > mmu::NORMAL_START {
            return Err(PcieError::Mmio32Unusable(window));
        }
        return Ok(PcieHost {
            ecam,
            first_bus,
            mmio32: window,
            mmio32_pci: pci,
        });
    }
    Err(PcieError::NoMmio32)
}

/// A big-endian device-tree number of one or two cells.
fn be_number(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u32::from_be_bytes(bytes.try_into().ok()?) as u64),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}
