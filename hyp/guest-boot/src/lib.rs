//! Booting a guest by the Linux arm64 boot protocol
//! (Linux `Documentation/arch/arm64/booting.rst`): the guest is entered at
//! EL1h with the MMU off at the first byte of its kernel `Image`, with x0
//! holding the guest-physical address of its device tree.
//!
//! Three steps, each checked, none touching memory:
//!
//! 1. [`ImageHeader::parse`] reads and validates the Image's 64-byte header.
//! 2. [`LoadPlan::new`] decides where the kernel, the initrd and the DTB go
//!    in guest RAM.
//! 3. [`write_dtb`] writes the device tree of the guest's machine, a small
//!    QEMU-`virt`-compatible board whose layout is in [`virt`];
//!    [`write_dtb_with_pci`] adds a PCIe host bridge ([`GuestPci`]) for a
//!    VM with passthrough PCI functions.
//!
//! Copying the files into guest memory and starting the vCPU is the
//! hypervisor's part.
//!
//! ```
//! use guest_boot::{ImageHeader, LoadPlan, GuestMachine, write_dtb, virt, GUEST_DTB_MAX};
//! # let mut image = vec![0u8; 4096];
//! # image[16..24].copy_from_slice(&0x10000u64.to_le_bytes());
//! # image[56..60].copy_from_slice(b"ARM\x64");
//! let header = ImageHeader::parse(&image)?;
//! let plan = LoadPlan::new((virt::RAM_BASE, 256 << 20), 40, &header, image.len(), None, GUEST_DTB_MAX)?;
//! let dtb = write_dtb(&GuestMachine {
//!     ram: plan.ram(),
//!     vcpus: 2,
//!     bootargs: "console=ttyAMA0",
//!     initrd: plan.initrd(),
//!     uart: true,
//! })?;
//! assert!(dtb.len() as u64 <= plan.dtb().size());
//! // Copy `image` to plan.kernel_load() and `dtb` to plan.dtb().start(),
//! // then enter plan.entry() with x0 = plan.dtb().start().
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod dt;
mod image;
mod pci;
mod plan;
mod range;
pub mod virt;

pub use addr::IntermediatePhysAddr;
pub use dt::{
    mpidr_of, vcpu_of, vmpidr_el2_of, write_dtb, write_dtb_with_pci, DtbError, GuestMachine,
    APB_PCLK_PHANDLE, GIC_PHANDLE, GUEST_DTB_MAX, MAX_BOOTARGS_LEN, MAX_VCPUS, MPIDR_RES1,
};
pub use image::{
    ImageError, ImageHeader, KernelPageSize, Placement, IMAGE_HEADER_SIZE, IMAGE_MAGIC,
    KERNEL_BASE_ALIGN, LEGACY_TEXT_OFFSET, TEXT_OFFSET_ALIGN,
};
pub use pci::{
    GuestPci, IntxPin, PciError, PciInterrupt, PciWindows, ECAM_BUS_SIZE, PCI_DEVICES,
    PCI_WINDOW_ALIGN,
};
pub use plan::{
    LoadPlan, PlanError, DTB_MAX_SIZE, INITRD_WINDOW_ALIGN, INITRD_WINDOW_SIZE, MAX_IPA_BITS,
    MIN_IPA_BITS, PAGE_SIZE, RAM_ALIGN,
};
pub use range::IpaRange;
