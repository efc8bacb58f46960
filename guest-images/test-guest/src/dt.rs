//! What the guest needs from its device tree: RAM, the vCPUs' MPIDRs, the
//! bootargs and the PSCI conduit.

use crate::firmware::Conduit;
use crate::{boot, mmu, smp};
use core::fmt;
use fdt::Fdt;

/// The flattened device tree magic number.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the FDT header fields read before the tree is handed to `fdt`.
const FDT_HEADER_PEEK: u64 = 8;
/// How much room the loader may take for the device tree, and therefore how
/// far from it the tests keep: 2 MiB, the arm64 boot protocol's limit.
pub const DTB_RESERVED: u64 = 2 << 20;

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
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DtError {
    /// x0 does not point at a device tree in RAM.
    NotADeviceTree(u64),
    /// The tree's header is refused by the parser.
    Header(fdt::FdtError),
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
            Self::NotADeviceTree(address) => {
                write!(f, "no device tree at x0 = {address:#x}")
            }
            Self::Header(e) => write!(f, "device tree header: {e}"),
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
    let fdt = open(dtb)?;
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

    let mut cpus = heapless::Vec::new();
    let mut cpus_in_dt = 0;
    for node in fdt
        .find_node("/cpus")
        .ok_or(DtError::NoCpus)?
        .children()
        .filter(|node| node.name.split('@').next() == Some("cpu"))
    {
        let mpidr = node
            .reg()
            .and_then(|mut reg| reg.next())
            .ok_or(DtError::NoCpus)?
            .starting_address as u64;
        cpus_in_dt += 1;
        // Beyond MAX_VCPUS the tests do not use them; `cpus_in_dt` says so.
        let _ = cpus.push(mpidr & smp::MPIDR_AFFINITY_MASK);
    }
    if cpus.is_empty() {
        return Err(DtError::NoCpus);
    }

    let psci = match fdt
        .find_node("/psci")
        .and_then(|node| node.property("method"))
        .and_then(|method| method.as_str())
    {
        Some("smc") => Conduit::Smc,
        Some("hvc") | None => Conduit::Hvc,
        Some(_) => return Err(DtError::PsciMethod),
    };

    let chosen = fdt.find_node("/chosen");
    let bootargs = chosen
        .and_then(|node| node.property("bootargs"))
        .and_then(|p| p.as_str())
        .unwrap_or("");
    let initrd = chosen.and_then(|node| {
        let start = be_number(node.property("linux,initrd-start")?.value)?;
        let end = be_number(node.property("linux,initrd-end")?.value)?;
        Some(Range { start, end })
    });

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
    })
}

/// Checks the header at `dtb` before trusting its size, then opens the tree.
fn open(dtb: u64) -> Result<Fdt<'static>, DtError> {
    let not_a_tree = DtError::NotADeviceTree(dtb);
    if !dtb.is_multiple_of(8) || !mmu::is_normal_memory(dtb, dtb + FDT_HEADER_PEEK) {
        return Err(not_a_tree);
    }
    // SAFETY: The 8 bytes lie in the RAM window, mapped as normal memory, and
    // are aligned for u32 reads.
    let (magic, size) = unsafe {
        let header = dtb as *const u32;
        (
            u32::from_be(header.read_volatile()),
            u32::from_be(header.add(1).read_volatile()) as u64,
        )
    };
    if magic != FDT_MAGIC || size > DTB_RESERVED || !mmu::is_normal_memory(dtb, dtb + size) {
        return Err(not_a_tree);
    }
    // SAFETY: The tree lies in mapped RAM (checked above). It lives as long
    // as the guest runs: the loader put it there for the guest, and every test
    // that writes RAM keeps out of `Machine::dtb`.
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, size as usize) };
    Fdt::new(bytes).map_err(DtError::Header)
}

/// A big-endian device-tree number of one or two cells.
fn be_number(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u32::from_be_bytes(bytes.try_into().ok()?) as u64),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}
