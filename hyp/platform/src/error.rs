//! Why a device tree was refused.

use core::fmt;

use crate::{MAX_BOOTARGS, MAX_CPUS, MAX_MEMORY_REGIONS, MAX_PCI_WINDOWS, MAX_RESERVED};

/// The name of a device tree node, kept for error messages.
///
/// Devicetree Specification v0.4 §2.2.1 limits the node-name part to 31
/// characters; the unit address has no limit, so longer names are cut short
/// (at a character boundary) rather than refused: the message only has to let
/// a person find the node.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeName(heapless::String<64>);

impl NodeName {
    /// `name`, cut to at most 64 bytes.
    pub fn new(name: &str) -> Self {
        let mut s = heapless::String::new();
        for c in name.chars() {
            if s.push(c).is_err() {
                break;
            }
        }
        Self(s)
    }

    /// The (possibly shortened) node name, e.g. `memory@40000000`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_str())
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which block of the flattened tree a header offset points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// The memory reservation block (`off_mem_rsvmap`).
    MemReserve,
    /// The structure block (`off_dt_struct`, `size_dt_struct`).
    Struct,
    /// The strings block (`off_dt_strings`, `size_dt_strings`).
    Strings,
}

/// A flaw in the layout of the flattened blob, found before any node is read.
///
/// Offsets are in bytes from the start of the structure block unless said
/// otherwise. The checks follow Devicetree Specification v0.4 chapter 5
/// ("Flattened Devicetree (DTB) Format") and are what keeps the `fdt` crate,
/// which trusts its input and panics on many malformed blobs, away from
/// anything it cannot parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructureError {
    /// `version` is older than 17, the first with `size_dt_struct` (§5.2).
    UnsupportedVersion(u32),
    /// A header offset or size points outside `totalsize`.
    BlockOutOfBounds(Block),
    /// The memory reservation block has no terminating all-zero entry (§5.3).
    UnterminatedMemReserve,
    /// The structure block ends in the middle of a token, name or value.
    Truncated {
        /// Where the unfinished item starts.
        offset: usize,
    },
    /// A token that §5.4.1 does not define.
    UnknownToken {
        /// Where the token is.
        offset: usize,
        /// Its value.
        token: u32,
    },
    /// An `FDT_NOP` token: legal, but the `fdt` crate mis-parses or panics on
    /// most positions of it, so such blobs are refused instead.
    NopToken {
        /// Where the token is.
        offset: usize,
    },
    /// A token in a position the grammar of §5.4.2 forbids (a property after a
    /// child node, a second root, an `FDT_END_NODE` with no open node, ...).
    MisplacedToken {
        /// Where the token is.
        offset: usize,
        /// Its value.
        token: u32,
    },
    /// A node name that is not NUL-terminated UTF-8, or a root with a name.
    BadNodeName {
        /// Where the name starts.
        offset: usize,
    },
    /// A property whose name offset does not lead to a NUL-terminated UTF-8
    /// string inside the strings block.
    BadPropertyName {
        /// Where the property starts.
        offset: usize,
    },
    /// `#address-cells` or `#size-cells` that is not one 32-bit cell.
    BadCellCount {
        /// Where the property starts.
        offset: usize,
    },
    /// Nodes nested deeper than [`crate::MAX_DEPTH`].
    TooDeep {
        /// Where the node that is too deep starts.
        offset: usize,
    },
    /// No `FDT_END` after the root node closes.
    MissingEnd,
}

impl fmt::Display for StructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedVersion(v) => {
                write!(f, "version {v} is not supported (need 17 or later)")
            }
            Self::BlockOutOfBounds(block) => {
                let name = match block {
                    Block::MemReserve => "memory reservation",
                    Block::Struct => "structure",
                    Block::Strings => "strings",
                };
                write!(f, "the {name} block lies outside totalsize")
            }
            Self::UnterminatedMemReserve => {
                f.write_str("the memory reservation block has no terminating entry")
            }
            Self::Truncated { offset } => {
                write!(f, "the structure block ends inside the item at {offset:#x}")
            }
            Self::UnknownToken { offset, token } => {
                write!(f, "unknown token {token:#x} at {offset:#x}")
            }
            Self::NopToken { offset } => write!(f, "FDT_NOP token at {offset:#x} (not supported)"),
            Self::MisplacedToken { offset, token } => {
                write!(f, "token {token:#x} at {offset:#x} is out of place")
            }
            Self::BadNodeName { offset } => write!(f, "bad node name at {offset:#x}"),
            Self::BadPropertyName { offset } => {
                write!(f, "bad property name for the property at {offset:#x}")
            }
            Self::BadCellCount { offset } => write!(
                f,
                "#address-cells or #size-cells at {offset:#x} is not a single cell"
            ),
            Self::TooDeep { offset } => write!(
                f,
                "node at {offset:#x} is nested deeper than {} levels",
                crate::MAX_DEPTH
            ),
            Self::MissingEnd => f.write_str("no FDT_END token after the root node"),
        }
    }
}

/// Why [`crate::Platform::from_dtb`] refused a device tree.
#[derive(Clone, Debug, PartialEq)]
pub enum DtError {
    /// The `fdt` crate refused the header (short buffer, bad magic).
    Malformed(fdt::FdtError),
    /// The blob's layout is broken; see [`StructureError`].
    Structure(StructureError),
    /// No node with `device_type = "memory"` and a non-empty `reg`.
    NoMemory,
    /// No `/cpus` node, or no CPU node under it.
    NoCpus,
    /// No enabled node compatible with `arm,gic-v3`.
    NoGic,
    /// More CPU nodes than [`MAX_CPUS`]; carries how many there are.
    TooManyCpus(usize),
    /// More memory regions than [`MAX_MEMORY_REGIONS`]; carries how many.
    TooManyMemoryRegions(usize),
    /// More reserved regions than [`MAX_RESERVED`]; carries how many.
    TooManyReserved(usize),
    /// More PCI windows than [`MAX_PCI_WINDOWS`]; carries how many.
    TooManyPciWindows(usize),
    /// A node we need has no `reg` property.
    MissingReg {
        /// The node.
        node: NodeName,
    },
    /// A `reg` property whose length does not fit the parent's
    /// `#address-cells`/`#size-cells`, or whose cell counts we cannot read
    /// (more than two cells per number).
    BadReg {
        /// The node.
        node: NodeName,
        /// Length of the property in bytes.
        len: usize,
        /// The parent's `#address-cells`.
        address_cells: u32,
        /// The parent's `#size-cells`.
        size_cells: u32,
    },
    /// A region whose end lies past the top of the 64-bit address space.
    AddressOverflow {
        /// The node (`/memreserve/` for the reservation block).
        node: NodeName,
    },
    /// A `reg` address that no chain of parent `ranges` maps to a CPU address
    /// (Devicetree Specification v0.4 §2.3.8).
    Untranslatable {
        /// The node.
        node: NodeName,
    },
    /// Some other property of a node we need has the wrong size or value.
    BadProperty {
        /// The node.
        node: NodeName,
        /// The property.
        property: &'static str,
    },
    /// `/chosen/bootargs` longer than [`MAX_BOOTARGS`] bytes; carries its length.
    BootargsTooLong(usize),
    /// `/chosen` `linux,initrd-end` is below `linux,initrd-start`.
    InitrdEndBeforeStart {
        /// `linux,initrd-start`.
        start: u64,
        /// `linux,initrd-end`.
        end: u64,
    },
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("device tree: ")?;
        match self {
            Self::Malformed(e) => write!(f, "malformed blob: {e}"),
            Self::Structure(e) => write!(f, "malformed blob: {e}"),
            Self::NoMemory => f.write_str(r#"no memory node (device_type = "memory")"#),
            Self::NoCpus => f.write_str("no CPU nodes under /cpus"),
            Self::NoGic => {
                f.write_str(r#"no GICv3 interrupt controller (compatible = "arm,gic-v3")"#)
            }
            Self::TooManyCpus(n) => write!(f, "{n} CPU nodes, at most {MAX_CPUS} supported"),
            Self::TooManyMemoryRegions(n) => write!(
                f,
                "{n} memory regions, at most {MAX_MEMORY_REGIONS} supported"
            ),
            Self::TooManyReserved(n) => {
                write!(f, "{n} reserved regions, at most {MAX_RESERVED} supported")
            }
            Self::TooManyPciWindows(n) => {
                write!(f, "{n} PCI windows, at most {MAX_PCI_WINDOWS} supported")
            }
            Self::MissingReg { node } => write!(f, "node {node} has no reg property"),
            Self::BadReg {
                node,
                len,
                address_cells,
                size_cells,
            } => write!(
                f,
                "node {node}: reg is {len} bytes, which is not a non-empty list of \
                 {address_cells} address + {size_cells} size cells (1 or 2 cells each)"
            ),
            Self::AddressOverflow { node } => {
                write!(
                    f,
                    "node {node}: region wraps past the top of the address space"
                )
            }
            Self::Untranslatable { node } => write!(
                f,
                "node {node}: reg is not mapped to a CPU address by the parents' ranges"
            ),
            Self::BadProperty { node, property } => {
                write!(f, "node {node}: malformed {property} property")
            }
            Self::BootargsTooLong(n) => write!(
                f,
                "/chosen bootargs is {n} bytes, at most {MAX_BOOTARGS} supported"
            ),
            Self::InitrdEndBeforeStart { start, end } => write!(
                f,
                "/chosen linux,initrd-end {end:#x} is below linux,initrd-start {start:#x}"
            ),
        }
    }
}

impl From<StructureError> for DtError {
    fn from(e: StructureError) -> Self {
        Self::Structure(e)
    }
}

impl From<fdt::FdtError> for DtError {
    fn from(e: fdt::FdtError) -> Self {
        Self::Malformed(e)
    }
}
