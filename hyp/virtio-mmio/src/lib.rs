//! The virtio-mmio transport (version 2) a guest sees, as pure logic:
//! registers, feature negotiation, status, reset, queue setup.
//!
//! [`MmioTransport`] is the register model of one virtio-mmio slot as
//! virtio 1.2 §4.2 ("Virtio Over MMIO") defines it, version 2 only (no
//! legacy `GuestPageSize`/`QueuePFN` interface). The hypervisor traps each
//! access to the slot's 0x200-byte frame and calls [`MmioTransport::read`]
//! or [`MmioTransport::write`] with the offset and width; a write returns
//! an [`Event`] when the device backend has something to do. The backend
//! (block, console, ...) and the virtqueue processing live elsewhere: this
//! crate owns only what the transport specifies, and touches no guest
//! memory.
//!
//! # The guest-facing contract
//!
//! **Identity.** `MagicValue` reads 0x7472_6976 ("virt"), `Version` 2,
//! `DeviceID` and `VendorID` what [`DeviceInfo`] says. An empty slot
//! ([`MmioTransport::empty`]) reads `DeviceID` 0, which tells a driver to
//! stop (§4.2.3.1.1); its other registers read 0 and ignore writes, so a
//! guest may probe all 32 of QEMU `virt`'s slots.
//!
//! **Accesses.** Control registers (offsets below 0x100) take aligned
//! 32-bit accesses only; the configuration space (0x100 up) takes aligned
//! 8-, 16- and 32-bit ones (§4.2.2.2). Anything else, reads of write-only
//! and writes to read-only registers, offsets with no register, and every
//! write the state machine below refuses, do nothing (reads return 0) and
//! carry the reason in [`Access::ignored`] for the caller to log,
//! rate-limited. No access panics.
//!
//! **Status** (§2.1, §3.1.1). The driver sets `ACKNOWLEDGE`, `DRIVER`,
//! `FEATURES_OK` and `DRIVER_OK` in that order (several in one write is
//! fine; a bit before the one it depends on is refused), never clears a bit
//! except by writing 0, which resets the device ([`Event::Reset`]).
//! `FEATURES_OK` sticks only if the driver's features are a subset of the
//! device's and include `VIRTIO_F_VERSION_1`; otherwise it reads back
//! clear, which is how the driver learns of the refusal. `FAILED` may be
//! set at any time ([`Event::Failed`]); after it, only a reset is accepted.
//! `DEVICE_NEEDS_RESET` belongs to the device
//! ([`MmioTransport::set_needs_reset`]); the driver's writes neither set
//! nor clear it.
//!
//! **Features.** `DeviceFeatures` shows the word `DeviceFeaturesSel`
//! selects (words above 1 are 0). `DriverFeatures` writes are taken until
//! `FEATURES_OK` sticks; a non-zero word above 1 is remembered and makes
//! `FEATURES_OK` fail, since nothing above bit 63 is offered. The transport
//! offers exactly the device's features and implements none of
//! [`Features::UNSUPPORTED`] (notably not `VIRTIO_F_RING_RESET`: `QueueReset`
//! reads 0 and writes are refused; nor `VIRTIO_F_NOTIFICATION_DATA`:
//! `QueueNotify` takes a bare queue index).
//!
//! **Queues.** `QueueSel` may name any value; `QueueNumMax` and
//! `QueueReady` read 0 for a queue the device lacks. `QueueNum` (initially
//! the maximum) and the six address registers are written between
//! `FEATURES_OK` and `DRIVER_OK` while the queue is not ready (§3.1.1 step
//! 7, §4.2.2.2); `QueueNum` must be a power of two up to `QueueNumMax`
//! (split virtqueues, §2.7). Writing 1 to `QueueReady` enables the queue if
//! its areas are aligned as §2.7 requires and do not wrap the address
//! space ([`Event::QueueReady`] with its [`QueueConfig`]); writing 0 stops
//! it at any time ([`Event::QueueStopped`]), and reads back 0 at once.
//! `QueueNotify` with the index of a ready queue after `DRIVER_OK` is
//! [`Event::Notify`].
//!
//! **Interrupts** (§4.2.3.4). One level-sensitive line, high while
//! `InterruptStatus` is not 0 ([`MmioTransport::interrupt_line`]). The
//! device sets bits through [`MmioTransport::raise_used_buffer`] and
//! [`MmioTransport::raise_config_change`] (after `DRIVER_OK` only); the
//! driver clears them through `InterruptACK` ([`Event::InterruptAcked`]).
//! Reads never change anything.
//!
//! **Configuration space.** Reads are served from a byte buffer the device
//! owns ([`MmioTransport::update_config`], which moves `ConfigGeneration`
//! on whenever a byte changes). Writes are handed to the device as
//! [`Event::ConfigWrite`], not stored: the device type decides which
//! fields are writable. Accesses past the configuration space are refused.
//! There are no shared memory regions: `SHMLen*` and `SHMBase*` read all
//! ones (§4.2.2).
//!
//! **Reset** clears the status, the selectors, the driver's features, every
//! queue's state and `InterruptStatus`; the device's identity, features,
//! configuration space and generation count survive.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod access;
mod register;
mod transport;
mod types;

#[cfg(test)]
mod tests;

pub use access::{Access, Event, Ignored};
pub use register::{Direction, Register};
pub use transport::{ConfigError, DeviceInfo, DeviceInfoError, MmioTransport};
pub use types::{
    DeviceId, DeviceStatus, Features, InterruptStatus, QueueArea, QueueConfig, QueueIndex,
};

/// `MagicValue`: "virt" read as a little-endian 32-bit word.
pub const MAGIC_VALUE: u32 = 0x7472_6976;

/// `Version` of the non-legacy interface, the only one modelled.
pub const VERSION: u32 = 2;

/// Size of a slot's register frame, as QEMU's `virt` lays out its
/// virtio-mmio slots (and as §4.2.1's device tree example uses).
pub const FRAME_SIZE: u64 = 0x200;

/// Offset of the device-specific configuration space in the frame.
pub const CONFIG_OFFSET: u64 = 0x100;

/// Largest configuration space that fits the frame.
pub const CONFIG_SPACE_MAX: usize = (FRAME_SIZE - CONFIG_OFFSET) as usize;

/// Largest queue size (`QueueNumMax`) of a split virtqueue (§2.7: "the
/// maximum Queue Size value is 32768").
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Most queues a device can have: queue indices are 16 bits (§2.6).
pub const MAX_QUEUES: usize = 1 << 16;
