//! What every guest reads from its device tree: the tree itself, checked
//! before it is trusted, the vCPUs' MPIDRs and the bootargs.

use crate::{mmu, smp};
use core::fmt;
use fdt::Fdt;

/// The flattened device tree magic number.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Bytes of the header read before the tree is handed to `fdt`: magic and size.
const FDT_HEADER_PEEK: u64 = 8;
/// Largest device tree the arm64 boot protocol allows: 2 MiB, which is also
/// the room the loader may take for it.
pub const DTB_MAX: u64 = 2 << 20;

/// Why there is no device tree to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OpenError {
    /// x0 does not point at a device tree in RAM.
    NotADeviceTree(u64),
    /// The parser refused the tree's header.
    Header(fdt::FdtError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotADeviceTree(address) => write!(f, "no device tree at x0 = {address:#x}"),
            Self::Header(e) => write!(f, "device tree header: {e}"),
        }
    }
}

/// Opens the device tree at `dtb`, having checked its header's magic and
/// size first, and that it lies in the RAM window.
///
/// # Errors
///
/// [`OpenError::NotADeviceTree`] if `dtb` is misaligned, outside the RAM
/// window, or not at a tree of at most [`DTB_MAX`] bytes that fits there;
/// [`OpenError::Header`] if the parser refuses the header.
///
/// The tree must stay as it is while the guest runs: the loader put it
/// beyond the image, and the guest must not write there.
pub fn open(dtb: u64) -> Result<Fdt<'static>, OpenError> {
    let not_a_tree = OpenError::NotADeviceTree(dtb);
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
    // SAFETY: The tree lies in mapped RAM (checked above); it lives as long
    // as the guest runs, which writes nowhere near it (documented above).
    let bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, size as usize) };
    Fdt::new(bytes).map_err(OpenError::Header)
}

/// The vCPUs of `/cpus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpus {
    /// MPIDR affinity fields of each vCPU in device-tree order: the index in
    /// this list is the vCPU index. At most [`smp::MAX_VCPUS`].
    pub mpidrs: heapless::Vec<u64, { smp::MAX_VCPUS }>,
    /// How many CPU nodes the tree has, including any beyond
    /// [`smp::MAX_VCPUS`], which take no part.
    pub in_dt: usize,
}

/// The `/cpus/cpu` nodes' MPIDRs, or `None` if there is none or one has no
/// `reg`.
pub fn cpus(fdt: &Fdt<'_>) -> Option<Cpus> {
    let mut mpidrs = heapless::Vec::new();
    let mut in_dt = 0;
    for node in fdt
        .find_node("/cpus")?
        .children()
        .filter(|node| node.name.split('@').next() == Some("cpu"))
    {
        let mpidr = node.reg().and_then(|mut reg| reg.next())?.starting_address as u64;
        in_dt += 1;
        // Beyond MAX_VCPUS the vCPUs take no part; `in_dt` says so.
        let _ = mpidrs.push(mpidr & smp::MPIDR_AFFINITY_MASK);
    }
    if mpidrs.is_empty() {
        return None;
    }
    Some(Cpus { mpidrs, in_dt })
}

/// `/chosen/bootargs`, or "".
pub fn bootargs(fdt: &Fdt<'static>) -> &'static str {
    fdt.find_node("/chosen")
        .and_then(|node| node.property("bootargs"))
        .and_then(|p| p.as_str())
        .unwrap_or("")
}

/// `/psci/method`, if the tree has one.
pub fn psci_method(fdt: &Fdt<'static>) -> Option<&'static str> {
    fdt.find_node("/psci")
        .and_then(|node| node.property("method"))
        .and_then(|method| method.as_str())
}
