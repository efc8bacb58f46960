//! Stage-2 translation for guests: the IPA size and start level a VM's
//! tables use ([`Stage2Config`], with the VTCR_EL2 value that describes
//! them), and the tables themselves ([`Stage2Table`], with the VTTBR_EL2
//! value that selects them), mapping guest RAM and passthrough devices onto
//! host physical memory.
//!
//! The tables are built with `aarch64-paging` (4 KiB granule, one root table)
//! in memory from the global allocator, which the hypervisor identity-maps;
//! nothing here touches a system register or issues TLB maintenance, so all
//! of it runs in host tests. The caller loads VTCR_EL2 and VTTBR_EL2 and owns
//! TLB invalidation (see [`Stage2Table`]).
//!
//! ```
//! use addr::{IntermediatePhysAddr, PhysAddr};
//! use id_alloc::Vmid;
//! use stage2::{MemoryKind, Stage2Config, Stage2Table};
//!
//! // 2 GiB of guest RAM at IPA 1 GiB; PARange 0b0101 (48 bits), 16-bit VMIDs.
//! let config = Stage2Config::new(IntermediatePhysAddr(0xc000_0000), 0b0101, 16)?;
//! let mut table = Stage2Table::new(&config);
//! table.map_ram(IntermediatePhysAddr(0x4000_0000), PhysAddr(0x1_0000_0000), 0x8000_0000)?;
//! let t = table.translate(IntermediatePhysAddr(0x4000_1000)).unwrap();
//! assert_eq!((t.pa, t.kind), (PhysAddr(0x1_0000_1000), MemoryKind::Ram));
//! let (_vtcr, _vttbr) = (config.vtcr(), table.vttbr(Vmid::new(1))?);
//! # Ok::<(), stage2::Stage2Error>(())
//! ```

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod config;
mod error;
mod table;

pub use config::Stage2Config;
pub use error::Stage2Error;
pub use table::{MemoryKind, Stage2Table, Translation};
