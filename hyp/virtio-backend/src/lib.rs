//! The device side of a VM's virtio devices behind the transport: a slot's
//! queues and what serves them, a disk ([`BlkDevice`] over a [`Disk`]) or a
//! network port ([`NetDevice`] with a [`Backlog`] of frames waiting for
//! receive buffers).
//!
//! The virtio-mmio register model (`virtio-mmio`) stays with whoever traps
//! the guest's accesses; it reports resets, queues made ready or stopped,
//! and notifications, and this crate does the work those call for. The same
//! code runs inside the hypervisor and in the unprivileged task that serves
//! a VM's devices instead of it: both reach the VM's RAM through a
//! [`GuestMemory`], typically a [`GuestRam`] window; the task's [`Disk`]
//! is system calls.
//!
//! Anything wrong in what the guest put in its queues is a
//! [`QueueError`]: the caller logs it, calls [`SlotBackend::fail`] and tells
//! the driver the device needs a reset (virtio DEVICE_NEEDS_RESET). A
//! failed device does nothing until the driver resets it
//! ([`SlotBackend::reset`]).
//!
//! ```
//! # use virtio_backend::{Device, SlotBackend, GuestMemory, QueueError, Disk};
//! /// The transport reported a notification of queue `index`.
//! fn on_notify<D: Disk>(
//!     slot: &mut SlotBackend<D>,
//!     index: u16,
//!     ram: &impl GuestMemory,
//!     mut send: impl FnMut(&[u8]),
//!     mut interrupt: impl FnMut(),
//! ) {
//!     let mut sent = Vec::new();
//!     match slot.notified(index, ram, &mut sent) {
//!         Ok(true) => interrupt(),
//!         Ok(false) => {}
//!         Err(_) => slot.fail(), // and tell the driver
//!     }
//!     for frame in &sent {
//!         send(frame);
//!     }
//! }
//! ```

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod ram;

#[cfg(test)]
mod tests;

use alloc::vec;
use alloc::vec::Vec;

pub use ram::GuestRam;
pub use virtqueue::blk::{BlkDevice, Disk, DiskError};
pub use virtqueue::{GuestMemory, MemError, Queue, QueueConfig, QueueError, QueueFeatures};
pub use vswitch::{Backlog, NetDevice, RX_QUEUE, TX_QUEUE};

use vswitch::{RxOutcome, Tx};

/// Frames a network port keeps while its guest has no receive buffers
/// posted (see [`Backlog`]).
pub const BACKLOG_FRAMES: usize = 256;

/// What serves a slot.
#[derive(Debug)]
pub enum Device<D> {
    /// A disk: one request queue.
    Blk {
        /// The virtio-blk request handling.
        device: BlkDevice,
        /// The storage behind it.
        disk: D,
    },
    /// A network port: a receive queue ([`vswitch::RX_QUEUE`]) and a
    /// transmit queue ([`vswitch::TX_QUEUE`]).
    Net {
        /// The virtio-net frame handling.
        device: NetDevice,
        /// Frames for the guest waiting for receive buffers.
        backlog: Backlog,
    },
}

impl<D> Device<D> {
    /// A network port with `mac` and a backlog of [`BACKLOG_FRAMES`].
    pub fn net(mac: [u8; 6]) -> Self {
        Self::Net {
            device: NetDevice::new(mac),
            backlog: Backlog::new(BACKLOG_FRAMES),
        }
    }

    /// Its queues.
    pub const fn queue_count(&self) -> usize {
        match self {
            Self::Blk { .. } => 1,
            Self::Net { .. } => 2,
        }
    }

    /// The most entries each queue may have (the transport's
    /// `QueueNumMax`).
    pub const fn queue_size_max(&self) -> u16 {
        match self {
            Self::Blk { .. } => virtqueue::blk::QUEUE_SIZE_MAX,
            Self::Net { .. } => vswitch::QUEUE_SIZE_MAX,
        }
    }

    /// The feature bits it offers.
    pub fn features(&self) -> u64 {
        match self {
            Self::Blk { device, .. } => device.features(),
            Self::Net { device, .. } => device.features(),
        }
    }

    /// Its configuration space.
    pub fn config_space(&self) -> Vec<u8> {
        match self {
            Self::Blk { device, .. } => device.config_space().to_vec(),
            Self::Net { device, .. } => device.config_space(),
        }
    }

    /// Whether it is a network port.
    pub const fn is_net(&self) -> bool {
        matches!(self, Self::Net { .. })
    }
}

/// A slot's device and its queues, driven by the transport's events.
#[derive(Debug)]
pub struct SlotBackend<D> {
    device: Device<D>,
    /// Queue `n`, once the driver made it ready.
    queues: Vec<Option<Queue>>,
    /// Failed: nothing is done until the driver resets the device.
    broken: bool,
}

impl<D> SlotBackend<D> {
    /// `device` with its queues ([`Device::queue_count`]) not yet ready.
    pub fn new(device: Device<D>) -> Self {
        let queues = vec![None; device.queue_count()];
        Self {
            device,
            queues,
            broken: false,
        }
    }

    /// The device.
    pub fn device(&self) -> &Device<D> {
        &self.device
    }

    /// The device, to change (its disk, say).
    pub fn device_mut(&mut self) -> &mut Device<D> {
        &mut self.device
    }

    /// Queue `index`, if it is ready.
    pub fn queue(&self, index: u16) -> Option<&Queue> {
        self.queues.get(usize::from(index)).and_then(Option::as_ref)
    }

    /// The driver reset the device: every queue is dropped, a failure is
    /// forgotten and frames waiting for the old driver are discarded.
    pub fn reset(&mut self) {
        self.broken = false;
        self.drop_queues();
        if let Device::Net { backlog, .. } = &mut self.device {
            backlog.clear();
        }
    }

    /// The driver stopped queue `index` (or set it up anew): it is dropped.
    /// An index past the device's queues is ignored.
    pub fn stop_queue(&mut self, index: u16) {
        if let Some(queue) = self.queues.get_mut(usize::from(index)) {
            *queue = None;
        }
    }

    /// Gives up on the device after a guest error, until the driver resets
    /// it: every queue is dropped. The caller tells the driver
    /// (DEVICE_NEEDS_RESET).
    pub fn fail(&mut self) {
        self.broken = true;
        self.drop_queues();
    }

    /// Whether it failed and waits for a reset.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn drop_queues(&mut self) {
        for queue in &mut self.queues {
            *queue = None;
        }
    }
}

impl<D: Disk> SlotBackend<D> {
    /// The driver made queue `index` ready with `config`: its rings are
    /// checked against `mem` ([`Queue::new`]) and it starts empty. Ignored
    /// while the device is failed, or for an index past its queues.
    ///
    /// # Errors
    ///
    /// A [`QueueError`] for a bad size or misplaced rings: the device needs
    /// a reset.
    pub fn start_queue<M: GuestMemory + ?Sized>(
        &mut self,
        index: u16,
        config: QueueConfig,
        mem: &M,
    ) -> Result<(), QueueError> {
        if self.broken {
            return Ok(());
        }
        let Some(slot) = self.queues.get_mut(usize::from(index)) else {
            return Ok(());
        };
        *slot = Some(Queue::new(config, mem)?);
        Ok(())
    }

    /// The driver made buffers available in queue `index`: a disk carries
    /// out every request, a network port sends every frame (pushed to
    /// `sent`, for the switch) or fills receive buffers from its backlog.
    /// Returns whether to raise the used-buffer interrupt. Nothing happens
    /// for a queue that is not ready or while the device is failed.
    ///
    /// # Errors
    ///
    /// A [`QueueError`] for anything wrong in the queue: the device needs a
    /// reset. Frames sent before the error are in `sent`.
    pub fn notified<M: GuestMemory + ?Sized>(
        &mut self,
        index: u16,
        mem: &M,
        sent: &mut Vec<Vec<u8>>,
    ) -> Result<bool, QueueError> {
        if self.broken {
            return Ok(false);
        }
        let Some(queue) = self
            .queues
            .get_mut(usize::from(index))
            .and_then(Option::as_mut)
        else {
            return Ok(false);
        };
        match &mut self.device {
            Device::Blk { device, disk } => {
                while let Some(chain) = queue.pop(mem)? {
                    let written = device.handle(&chain, mem, disk)?;
                    queue.push_used(mem, chain.head(), written)?;
                }
            }
            Device::Net { device, .. } if index == vswitch::TX_QUEUE => {
                while let Some(chain) = queue.pop(mem)? {
                    if let Tx::Frame(frame) = device.transmit(&chain, mem)? {
                        sent.push(frame);
                    }
                    // The device writes nothing into a transmit buffer.
                    queue.push_used(mem, chain.head(), 0)?;
                }
            }
            Device::Net { device, backlog } => fill_rx(device, backlog, queue, mem)?,
        }
        queue.needs_interrupt(mem)
    }

    /// A frame for a network port: kept in its backlog and handed to the
    /// guest as far as its receive buffers allow. Returns whether to raise
    /// the used-buffer interrupt. A disk, or a failed device, drops it.
    ///
    /// # Errors
    ///
    /// A [`QueueError`] for anything wrong in the receive queue: the device
    /// needs a reset.
    pub fn deliver<M: GuestMemory + ?Sized>(
        &mut self,
        frame: &[u8],
        mem: &M,
    ) -> Result<bool, QueueError> {
        let Device::Net { device, backlog } = &mut self.device else {
            return Ok(false);
        };
        if self.broken {
            return Ok(false);
        }
        backlog.push(frame.to_vec());
        let Some(queue) = self
            .queues
            .get_mut(usize::from(vswitch::RX_QUEUE))
            .and_then(Option::as_mut)
        else {
            return Ok(false);
        };
        fill_rx(device, backlog, queue, mem)?;
        queue.needs_interrupt(mem)
    }
}

/// Moves waiting frames into the receive queue's buffers, oldest first,
/// while there are buffers. A frame too big for its buffer is dropped (the
/// device counts it) and the buffer returned empty.
fn fill_rx<M: GuestMemory + ?Sized>(
    device: &mut NetDevice,
    backlog: &mut Backlog,
    queue: &mut Queue,
    mem: &M,
) -> Result<(), QueueError> {
    while let Some(frame) = backlog.front() {
        let Some(chain) = queue.pop(mem)? else {
            break;
        };
        let used = match device.receive(&chain, mem, frame)? {
            RxOutcome::Delivered { used_len } | RxOutcome::TooSmall { used_len } => used_len,
        };
        queue.push_used(mem, chain.head(), used)?;
        backlog.pop_front();
    }
    Ok(())
}
