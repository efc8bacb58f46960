//! PCI configuration space on a host ECAM bus, as pure logic: enumeration,
//! BAR sizing and assignment from the host bridge's windows, capability
//! walks.
//!
//! The hypervisor boots without firmware, so nothing has programmed the
//! bus: BARs read as zero and decoding is off. This crate does what
//! firmware would for the functions the hypervisor drives itself:
//!
//! - [`Ecam`] turns a function and register into an offset in the ECAM
//!   window; the target crate does the volatile accesses behind a
//!   [`ConfigSpace`].
//! - [`functions`] lists what answers on a bus.
//! - [`size_bars`] sizes BARs by the write-all-ones protocol;
//!   [`assign_bars`] places memory BARs with a [`BarAllocator`] over the
//!   host bridge's windows and [`enable_memory_and_bus_master`] turns the
//!   function on.
//! - [`capabilities`] and [`extended_capabilities`] walk the capability
//!   lists.
//! - [`virtio_layout`] finds a virtio function's structures and checks
//!   them against its BARs; a [`VirtioShadow`] shows a driver only what
//!   was checked.
//!
//! Configuration space is device input: nothing read from it is trusted.
//! A bogus BAR, a capability list that loops or leaves its space, a
//! function that appears on every device number: each is an error value
//! or a bounded walk, never a panic or a hang.

#![no_std]
#![deny(missing_docs)]

mod assign;
mod bar;
mod capability;
mod config;
mod ecam;
mod enumerate;
#[cfg(any(test, feature = "fake"))]
pub mod fake;
#[cfg(test)]
mod tests;
mod virtio;

pub use addr::{PhysAddr, PhysRange};
pub use assign::{
    assign_bars, enable_memory_and_bus_master, AllocError, AssignError, AssignedBar, AssignedBars,
    BarAllocator, PciAddr, Placement, Window, WindowKind, MAX_WINDOWS,
};
pub use bar::{bar_slots, size_bars, Bar, BarError, BarKind, Bars, BARS_TYPE0, BARS_TYPE1};
pub use capability::{
    capabilities, extended_capabilities, find_capability, Capabilities, Capability,
    CapabilityError, CapabilityId, ExtendedCapabilities, ExtendedCapability, ExtendedCapabilityId,
};
pub use config::{
    command, set_command, status, Bdf, Command, ConfigSpace, Register, Status, CONFIG_SPACE_SIZE,
    DEVICES_PER_BUS, FUNCTIONS_PER_DEVICE, LEGACY_CONFIG_SPACE_SIZE,
};
pub use ecam::{Ecam, EcamError, ECAM_BUS_SIZE};
pub use enumerate::{functions, probe_function, ClassCode, FunctionInfo, Functions, HeaderType};
pub use virtio::{
    virtio_device_id, virtio_layout, ShadowedConfig, VirtioLayout, VirtioLayoutError, VirtioRegion,
    VirtioShadow, VirtioStructure, VIRTIO_DEVICE_BLOCK, VIRTIO_VENDOR_ID,
};
