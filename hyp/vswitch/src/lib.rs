//! Networks between VMs, as pure logic: the virtio-net device side of a
//! port ([`NetDevice`]), the Ethernet switch that connects the ports of one
//! network ([`Switch`]), and the bounded queue of frames waiting for a
//! guest's receive buffers ([`Backlog`]).
//!
//! Every VM with a network port gets a virtio-net device (virtio 1.2 §5.1,
//! over virtio-mmio) whose frames go through a switch inside the
//! hypervisor. VMs whose ports name the same network can talk to each
//! other; a frame never reaches a port on another network. Guest memory is
//! reached only through [`virtqueue::GuestMemory`], so all of this runs in
//! host tests.
//!
//! ```
//! # use virtqueue::{GuestMemory, Queue, QueueError};
//! # use vswitch::{Backlog, NetDevice, PortId, Route, Switch, Tx};
//! /// The driver notified the transmit queue of the port `from`.
//! fn on_tx_notify(
//!     tx: &mut Queue,
//!     dev: &mut NetDevice,
//!     mem: &impl GuestMemory,
//!     switch: &Switch,
//!     from: PortId,
//!     mut deliver: impl FnMut(PortId, &[u8]),
//! ) -> Result<bool, QueueError> {
//!     while let Some(chain) = tx.pop(mem)? {
//!         if let Tx::Frame(frame) = dev.transmit(&chain, mem)? {
//!             if let Route::To(ports) = switch.route(from, &frame) {
//!                 for port in ports {
//!                     // Into that port's `Backlog`, then its RX queue.
//!                     deliver(port, &frame);
//!                 }
//!             }
//!         }
//!         // The device writes nothing into a transmit buffer.
//!         tx.push_used(mem, chain.head(), 0)?;
//!     }
//!     tx.needs_interrupt(mem)
//! }
//!
//! /// A frame was queued for this port, or the driver added receive buffers.
//! fn fill_rx(
//!     rx: &mut Queue,
//!     dev: &mut NetDevice,
//!     mem: &impl GuestMemory,
//!     backlog: &mut Backlog,
//! ) -> Result<bool, QueueError> {
//!     while let Some(frame) = backlog.front() {
//!         let Some(chain) = rx.pop(mem)? else { break };
//!         let used_len = dev.receive(&chain, mem, frame)?.used_len();
//!         rx.push_used(mem, chain.head(), used_len)?;
//!         backlog.pop_front();
//!     }
//!     rx.needs_interrupt(mem)
//! }
//! ```
//!
//! # The guest-facing contract
//!
//! What the driver sees is a plain virtio-net device (§5.1):
//!
//! - Two queues, receive ([`RX_QUEUE`]) and transmit ([`TX_QUEUE`]), each
//!   at most [`QUEUE_SIZE_MAX`] entries; no control queue, no multiqueue.
//! - Features ([`NetDevice::features`]): `VIRTIO_F_VERSION_1`,
//!   `VIRTIO_NET_F_MAC`, `VIRTIO_NET_F_STATUS`, `VIRTIO_F_INDIRECT_DESC`,
//!   `VIRTIO_F_EVENT_IDX`. No checksum or segmentation offloads and no
//!   mergeable receive buffers: every packet is one whole Ethernet frame
//!   (without FCS) of [`MIN_FRAME`] to [`MAX_FRAME_VLAN`] bytes behind a
//!   12-byte `virtio_net_hdr` ([`HEADER_SIZE`]), in one chain.
//! - Configuration space ([`NetDevice::config_space`]): the MAC address and
//!   a status that says the link is always up.
//! - Transmit ([`NetDevice::transmit`]): a chain of device-readable buffers
//!   holding the header and then the frame, split across descriptors any
//!   way. The device writes nothing back (used length 0). Frames it cannot
//!   pass on (a runt, too long, a header asking for an offload that was not
//!   negotiated, a spoofed source) are dropped silently, as a NIC drops bad
//!   frames; a chain that is not a transmit buffer at all is a driver bug
//!   and the device needs a reset.
//! - Receive ([`NetDevice::receive`]): a chain of device-writable buffers.
//!   The device writes a header (all zero but `num_buffers` = 1) and the
//!   frame, and returns the chain with their length. A chain too small for
//!   a frame comes back with used length 0 and the frame is dropped (Linux
//!   counts that as a length error and reuses the buffer); Linux's own
//!   receive buffers (1530 bytes) always fit.
//! - Frames wait in a bounded [`Backlog`] per port while the guest has no
//!   receive buffers; when it is full new frames are dropped and counted,
//!   so a guest that never reads cannot make the hypervisor hold more than
//!   its backlog.
//!
//! # The anti-spoofing rule
//!
//! A port may only send frames whose Ethernet source address is its own MAC
//! (the one in its configuration space, from the VM's manifest); anything
//! else is dropped ([`DropReason::SpoofedSource`]). With unique MACs per
//! network (checked by [`Switch::add_port`]) this means a frame's source
//! address always names the VM that sent it, so no VM can pretend to be
//! another or make the switch send another VM's traffic its way: the switch
//! does not learn addresses from traffic at all, it knows every port's MAC
//! from configuration. A unicast frame goes to the one port that owns its
//! destination MAC on the sender's network, a broadcast or multicast frame
//! to every other port on that network, and an unknown destination nowhere
//! (there is no flooding). A frame is never sent back to its sender and
//! never crosses to another network.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod backlog;
mod device;
mod frame;
mod switch;

#[cfg(test)]
mod tests;

pub use backlog::Backlog;
pub use device::{
    NetDevice, NetStats, RxOutcome, Tx, CONFIG_SIZE, HEADER_SIZE, QUEUE_SIZE_MAX, RX_QUEUE,
    TX_QUEUE, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM,
    VIRTIO_NET_F_GUEST_TSO4, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ,
    VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VIRTIO_NET_HDR_F_NEEDS_CSUM,
    VIRTIO_NET_HDR_GSO_NONE, VIRTIO_NET_S_LINK_UP,
};
pub use frame::{DropReason, MacAddr, MAX_FRAME, MAX_FRAME_VLAN, MIN_FRAME};
pub use switch::{PortId, Route, Switch, SwitchError};
