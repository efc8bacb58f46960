//! What the guest needs from its device tree: the vCPUs' MPIDRs, the
//! bootargs, and that PSCI is reached over HVC.

use crate::{mmu, smp};
use core::fmt;
use fdt::Fdt;

/// The flattened device tree magic number.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Bytes of the header read before the tree is handed to `fdt`: magic and size.
const FDT_HEADER_PEEK: u64 = 8;
/// Largest device tree the arm64 boot protocol allows.
const DTB_MAX: u64 = 2 << 20;

/// The machine as the device tree describes it.
#[derive(Debug)]
pub struct Machine {
    /// MPIDR affinity of each vCPU in device-tree order: index = vCPU index.
    pub cpus: heapless::Vec<u64, { smp::MAX_VCPUS }>,
    /// `/chosen/bootargs`, or "".
    pub bootargs: &'static str,
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DtError {
    /// x0 does not point at a device tree in RAM.
    NotADeviceTree(u64),
    /// The parser refused the tree's header.
    Header(fdt::FdtError),
    /// No /cpus/cpu node with a usable `reg`.
    NoCpus,
    /// `/psci/method` is not "hvc".
    PsciNotHvc,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADeviceTree(address) => write!(f, "no device tree at x0 = {address:#x}"),
            Self::Header(e) => write!(f, "device tree header: {e}"),
            Self::NoCpus => f.write_str("no /cpus/cpu node with a reg"),
            Self::PsciNotHvc => f.write_str("/psci/method is not \"hvc\""),
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
    let mut cpus = heapless::Vec::new();
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
        // vCPUs past MAX_VCPUS take no part.
        let _ = cpus.push(mpidr & smp::MPIDR_AFFINITY_MASK);
    }
    if cpus.is_empty() {
        return Err(DtError::NoCpus);
    }
    let method = fdt
        .find_node("/psci")
        .and_then(|node| node.property("method"))
        .and_then(|method| method.as_str());
    if method != Some("hvc") {
        return Err(DtError::PsciNotHvc);
    }
    let bootargs = fdt
        .find_node("/chosen")
        .and_then(|node| node.property("bootargs"))
        .and_then(|p| p.as_str())
        .unwrap_or("");
    Ok(Machine { cpus, bootargs })
}

/// Checks the header at `dtb` before trusting its size, then opens the tree.
fn open(dtb: u64) -> Result<Fdt<'static>, DtError> {
    let not_a_tree = DtError::NotADeviceTree(dtb);
    if !dtb.is_multiple_of(8) || !mmu::is_normal_memory(dtb, dtb + FDT_HEADER_PEEK) {
        return Err(not_a_tree);
    }
    // SAFETY: The 8 bytes lie in the RAM window, mapped as normal memory,
    // and are aligned for u32 reads.
    let (magic, size) = unsafe {
        let header = dtb as *const u32;
        (
            u32::from_be(header.read_volatile()),
            u64::from(u32::from_be(header.add(1).read_volatile())),
        )
    };
    if magic != FDT_MAGIC || size > DTB_MAX || !mmu::is_normal_memory(dtb, dtb + size) {
        return Err(not_a_tree);
    }
    // SAFETY: The tree lies in mapped RAM (checked above) that nothing in
    // the guest writes: the loader put it beyond the image.
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, size as usize) };
    Fdt::new(bytes).map_err(DtError::Header)
}
