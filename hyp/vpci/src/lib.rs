//! A virtual PCIe host bridge for one VM, as pure logic: an emulated ECAM
//! window whose bus 0 holds only the physical PCI functions assigned to
//! the VM, their configuration space filtered.
//!
//! The hypervisor's target layer traps the guest's accesses to the ECAM
//! window (stage 2 leaves it unmapped) and hands them to
//! [`VirtualBridge::read`] and [`VirtualBridge::write`]; a write returns
//! the [`Effects`] to apply: BARs to map in stage 2 onto the physical
//! BARs, or to unmap, after which the hypervisor invalidates the VM's
//! stage-2 TLB entries (the SMMU's too: it shares the tables). The INTx
//! links ([`VirtualBridge::intx_links`]) go to the vGIC, and
//! [`VirtualBridge::guest_pci`] to the guest's device tree
//! ([`guest_boot::write_dtb_with_pci`]).
//!
//! # What the guest sees
//!
//! Each function is function 0 of a single-function device at the device
//! number the hypervisor chose, with no host bridge function at 00:00.0;
//! every other function number, device and bus reads all ones. Per
//! register of the type 0 header (PCI Local Bus Specification 3.0 §6.1):
//!
//! | Register | Guest's view |
//! |---|---|
//! | vendor, device, class, revision, subsystem | the physical function's, read once |
//! | command | memory space, bus master, INTx disable: the guest's, passed on to the function; the rest read 0, written nowhere |
//! | status | the function's, live, read-only; capabilities-list bit per the filtered list |
//! | cache line size, interrupt line | scratch: hold what the guest writes |
//! | latency timer, BIST, CardBus CIS, reserved | 0, read-only |
//! | header type | 0 (endpoint, single function) |
//! | BARs | emulated: the guest's address, sized as the physical BAR rounded up to a page, type and prefetchable bit from it; I/O BARs read 0 (unimplemented) |
//! | expansion ROM BAR | 0: no ROM |
//! | interrupt pin | the function's if its INTx is forwarded, else 0 |
//! | capabilities (0x40-0xff) | power management, PCI Express and vendor-specific ones, read-only, relinked; others (MSI, MSI-X, unknown) read 0 and are skipped |
//! | extended space (0x100-0xfff) | 0: no extended capabilities |
//!
//! No MSI support yet: MSI and MSI-X capabilities are hidden, so drivers
//! fall back to INTx. (A function's MSI-X table stays visible in its BAR,
//! but the enable bit is in the hidden capability.) The PCI Express
//! capability's Function Level Reset bit is hidden, since the guest
//! cannot start one.
//!
//! # What the function sees
//!
//! The one physical register ever written is the command register, and in
//! it only the guest's three bits change (and I/O decoding goes off): see
//! [`GUEST_COMMAND`]. Physical BARs, power state, PCI Express control,
//! capability registers are the hypervisor's and stay as they are.
//!
//! # BAR mappings
//!
//! A BAR is mapped in stage 2, guest address onto physical address, while
//! the guest's memory space bit is set for its function, its address
//! (with its size) lies inside one of the memory windows, and it overlaps
//! no other BAR that qualifies; otherwise it is unmapped, and
//! [`VirtualBridge::bar_status`] says why ([`Unmapped`]). The windows
//! avoid RAM and the guest's other devices ([`guest_boot::PciWindows`]),
//! so a mapped BAR never covers either. Alignment is automatic: the guest
//! can only write address bits above the size.
//!
//! Guest accesses are claims: any offset, size and value is handled
//! without a panic, and what cannot be carried out is reported in
//! [`Access::ignored`].

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod access;
mod bridge;
mod error;
mod function;

pub use access::{Access, BarMapping, Effect, Effects, Ignored, Unmapped};
pub use bridge::{Intx, Passthrough, VirtualBridge};
pub use error::BridgeError;
pub use function::{GUEST_COMMAND, PAGE_SIZE};
