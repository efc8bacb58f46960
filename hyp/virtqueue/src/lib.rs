//! Split virtqueues from the device side, as pure logic: descriptor chains
//! read from guest memory, every guest-controlled value validated; and the
//! virtio-blk request handling on top.
//!
//! The hypervisor emulates virtio devices (virtio 1.2, modern only) for its
//! guests. The transport (virtio-mmio) hands this crate a queue's
//! configuration once the driver sets it ready; on each notification the
//! device takes chains with [`Queue::pop`], handles them (for a block device
//! with [`blk::BlkDevice::handle`]), returns them with [`Queue::push_used`]
//! and asks [`Queue::needs_interrupt`] whether to interrupt the guest.
//! Guest memory is reached only through the [`GuestMemory`] trait, so all of
//! this runs in host tests.
//!
//! ```
//! # use virtqueue::{GuestMemory, Queue, QueueError, blk::{BlkDevice, Disk}};
//! /// What the device does when the driver notifies its queue.
//! fn on_notify(
//!     queue: &mut Queue,
//!     dev: &mut BlkDevice,
//!     mem: &impl GuestMemory,
//!     disk: &mut impl Disk,
//! ) -> Result<bool, QueueError> {
//!     while let Some(chain) = queue.pop(mem)? {
//!         let written = dev.handle(&chain, mem, disk)?;
//!         queue.push_used(mem, chain.head(), written)?;
//!     }
//!     // On `Err` the caller sets DEVICE_NEEDS_RESET (see `QueueError`).
//!     queue.needs_interrupt(mem)
//! }
//! ```
//!
//! # What the guest controls
//!
//! Everything in guest memory, at any time, concurrently with the device:
//! the ring addresses and size it wrote to the transport, `avail.idx`,
//! `avail.flags`, `used_event`, every driver ring entry, every descriptor
//! (`addr`, `len`, `flags`, `next`) in the queue's table and in indirect
//! tables, the request headers and the data. The device area is the
//! device's to write but the guest can scribble on it too; the device never
//! reads it back (its indices live in [`Queue`]).
//!
//! # What is validated
//!
//! Each guest-controlled value is copied out of guest memory once and only
//! the copy is checked and used, so a guest rewriting a descriptor after the
//! check cannot change what the device does (no time-of-check to
//! time-of-use gap). [`Chain`] is that copy.
//!
//! - [`Queue::new`]: size a power of two up to 32768, the three areas
//!   aligned (16, 2, 4) and inside guest memory.
//! - [`Queue::pop`]: `avail.idx` at most `size` ahead of the device; the head
//!   and every `next` inside their table; at most `size` buffers per chain
//!   (so a `next` loop ends in an error); no device-readable buffer after a
//!   device-writable one; the total length at most `u32::MAX`; every buffer
//!   inside guest memory (through [`GuestMemory::check_range`], sums
//!   checked); at most `size` chains in flight.
//! - Indirect descriptors are **supported** when `VIRTIO_F_INDIRECT_DESC` is
//!   negotiated and refused otherwise: an indirect descriptor must not have
//!   `NEXT`, may end a chain of direct ones, and points to a non-zero
//!   multiple of 16 bytes, at most `size` entries, inside guest memory, with
//!   no indirect descriptor in it.
//! - `VIRTIO_F_EVENT_IDX` is **supported**: `used_event` decides interrupts
//!   and `avail_event` is published whenever the device finds the ring
//!   empty.
//! - [`blk`]: header and status present, requests inside the capacity and
//!   whole sectors, no write to a read-only device, data moved in bounded
//!   chunks.
//!
//! No input makes this crate panic or allocate more than a chain's buffer
//! list (at most `size` entries) and the block device's 64 KiB bounce
//! buffer.
//!
//! # The needs-reset contract
//!
//! A refused queue configuration, chain or request is a [`QueueError`]. The
//! device cannot answer such a guest in a way its driver would understand,
//! so on **any** error from [`Queue::new`], [`Queue::pop`],
//! [`Queue::push_used`], [`Queue::needs_interrupt`] or
//! [`blk::BlkDevice::handle`] the caller sets `DEVICE_NEEDS_RESET` in the
//! device status, sends a configuration-change interrupt, and processes
//! none of the device's queues until the driver resets the device. The
//! error's `Display` says what was wrong, for the log. Errors in a request
//! that the protocol can report (a bad sector, a write to a read-only disk,
//! an unknown request type, a disk failure) are not errors here: the request
//! completes with an error status.
//!
//! # Memory ordering
//!
//! The driver runs on other CPUs. The queue issues the barriers virtio asks
//! for (§2.7.7, §2.7.8, §2.7.10) as [`core::sync::atomic::fence`]s: acquire
//! after reading `avail.idx`, release before publishing `used.idx`, and a
//! full barrier between publishing an index and reading the driver's
//! notification suppression fields.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod blk;
mod error;
mod memory;
mod queue;

#[cfg(test)]
mod tests;

pub use error::{ChainPart, DescId, QueueError, RingArea};
pub use memory::{window_offset, GuestMemory, MemError};
pub use queue::{
    Buffer, Chain, Queue, QueueConfig, QueueFeatures, Segments, MAX_QUEUE_SIZE, VIRTIO_F_EVENT_IDX,
    VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1,
};
