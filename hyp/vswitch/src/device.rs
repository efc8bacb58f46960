//! virtio-net (virtio 1.2 §5.1), device side: feature bits, configuration
//! space, and the handling of one transmit or receive chain on top of
//! [`Chain`]s.
//!
//! Every packet is a 12-byte `struct virtio_net_hdr` (`u8 flags; u8
//! gso_type; le16 hdr_len; le16 gso_size; le16 csum_start; le16
//! csum_offset; le16 num_buffers`, the layout with `VIRTIO_F_VERSION_1`,
//! §5.1.6) followed by one Ethernet frame, in one chain. The header and the
//! frame may share descriptors in any split: Linux pushes the header in
//! front of the frame in one buffer when there is headroom, and gives it a
//! buffer of its own otherwise.
//!
//! # What is checked
//!
//! - A transmit chain with fewer than 12 readable bytes, or with writable
//!   bytes, and a receive chain with fewer than 12 writable bytes, or with
//!   readable bytes, is not a packet buffer at all: a
//!   [`QueueError::BeyondChain`] naming the part and the bytes that were
//!   missing or unexpected (the device needs a reset).
//! - A transmitted frame the device cannot pass on is dropped, with a
//!   [`DropReason`]: shorter than [`MIN_FRAME`](crate::MIN_FRAME), longer
//!   than [`MAX_FRAME_VLAN`](crate::MAX_FRAME_VLAN) (checked before
//!   anything is copied, so the guest's chain length never sizes an
//!   allocation), or a header asking for an offload that was not offered.
//! - A received frame that does not fit the chain is dropped and the chain
//!   returned empty.

use alloc::vec;
use alloc::vec::Vec;

use virtqueue::{
    Chain, ChainPart, GuestMemory, QueueError, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
};

use crate::frame::{check_len, DropReason};

/// `VIRTIO_NET_F_CSUM` (bit 0): the device handles packets with partial
/// checksums. Not offered.
pub const VIRTIO_NET_F_CSUM: u64 = 1 << 0;
/// `VIRTIO_NET_F_GUEST_CSUM` (bit 1): the driver handles packets with
/// partial checksums. Not offered.
pub const VIRTIO_NET_F_GUEST_CSUM: u64 = 1 << 1;
/// `VIRTIO_NET_F_MTU` (bit 3): the configuration space gives the MTU. Not
/// offered: the MTU is Ethernet's 1500.
pub const VIRTIO_NET_F_MTU: u64 = 1 << 3;
/// `VIRTIO_NET_F_MAC` (bit 5): the configuration space gives the MAC
/// address.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// `VIRTIO_NET_F_GUEST_TSO4` (bit 7): the driver takes TCPv4 segmentation
/// offload. Not offered.
pub const VIRTIO_NET_F_GUEST_TSO4: u64 = 1 << 7;
/// `VIRTIO_NET_F_HOST_TSO4` (bit 11): the device takes TCPv4 segmentation
/// offload. Not offered.
pub const VIRTIO_NET_F_HOST_TSO4: u64 = 1 << 11;
/// `VIRTIO_NET_F_MRG_RXBUF` (bit 15): a received packet may span several
/// chains. Not offered: every packet fits one chain.
pub const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
/// `VIRTIO_NET_F_STATUS` (bit 16): the configuration space gives the link
/// status.
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// `VIRTIO_NET_F_CTRL_VQ` (bit 17): a control queue. Not offered.
pub const VIRTIO_NET_F_CTRL_VQ: u64 = 1 << 17;
/// `VIRTIO_NET_F_MQ` (bit 22): several queue pairs. Not offered.
pub const VIRTIO_NET_F_MQ: u64 = 1 << 22;

/// `VIRTIO_NET_S_LINK_UP`: the `status` bit saying the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the packet needs a checksum filled in
/// (only with `VIRTIO_NET_F_CSUM`).
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`: the packet needs no segmentation.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;

/// Index of the receive queue (`receiveq1`, §5.1.2).
pub const RX_QUEUE: u16 = 0;
/// Index of the transmit queue (`transmitq1`).
pub const TX_QUEUE: u16 = 1;
/// The queue size the transport should advertise as `QueueNumMax` for both
/// queues.
pub const QUEUE_SIZE_MAX: u16 = 256;

/// Bytes of `struct virtio_net_hdr` with `VIRTIO_F_VERSION_1` (§5.1.6:
/// `num_buffers` is always present then).
pub const HEADER_SIZE: usize = 12;
/// Bytes of the configuration space [`NetDevice::config_space`] returns:
/// `mac` and `status`, the fields of the features offered.
pub const CONFIG_SIZE: usize = 8;

/// Offset of `num_buffers` in the header.
const NUM_BUFFERS_OFFSET: usize = 10;
/// `HEADER_SIZE` where a chain length is compared.
const HEADER_LEN: u32 = HEADER_SIZE as u32;

/// What became of one transmit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tx {
    /// The frame, without the header, for the switch.
    Frame(Vec<u8>),
    /// The frame was dropped.
    Dropped(DropReason),
}

/// What became of one receive chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RxOutcome {
    /// The header and the frame were written.
    Delivered {
        /// Bytes written, the header included: the used length.
        used_len: u32,
    },
    /// The chain is too small for the header and this frame: nothing was
    /// written, and the frame is dropped.
    TooSmall {
        /// The used length to return the chain with: always 0.
        used_len: u32,
    },
}

impl RxOutcome {
    /// The length to return the chain with ([`virtqueue::Queue::push_used`]).
    pub fn used_len(&self) -> u32 {
        match *self {
            Self::Delivered { used_len } | Self::TooSmall { used_len } => used_len,
        }
    }
}

/// Counters of what a device did, for statistics and logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NetStats {
    /// Frames taken from transmit chains and handed on.
    pub tx_frames: u64,
    /// Transmitted frames dropped by [`NetDevice::transmit`].
    pub tx_dropped: u64,
    /// Frames written to receive chains.
    pub rx_frames: u64,
    /// Frames dropped because the receive chain was too small.
    pub rx_too_small: u64,
}

/// A virtio-net device's logic: what it offers, its configuration space,
/// and the handling of one transmit or receive chain.
#[derive(Clone, Debug)]
pub struct NetDevice {
    mac: [u8; 6],
    stats: NetStats,
}

impl NetDevice {
    /// A device with the MAC address `mac`.
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            stats: NetStats::default(),
        }
    }

    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// What the device did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Feature bits the device offers: `VIRTIO_F_VERSION_1` (it has no
    /// legacy interface), `VIRTIO_F_INDIRECT_DESC`, `VIRTIO_F_EVENT_IDX`
    /// (the queue supports both), [`VIRTIO_NET_F_MAC`] and
    /// [`VIRTIO_NET_F_STATUS`]. No checksum or segmentation offloads, no
    /// mergeable receive buffers, no control queue: a driver without
    /// offloads sends whole frames with an all-zero header and takes
    /// received frames with checksums to verify itself.
    pub fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1
            | VIRTIO_F_INDIRECT_DESC
            | VIRTIO_F_EVENT_IDX
            | VIRTIO_NET_F_MAC
            | VIRTIO_NET_F_STATUS
    }

    /// The configuration space (`struct virtio_net_config`, §5.1.4): `mac`,
    /// then `status` (little-endian) = [`VIRTIO_NET_S_LINK_UP`], the link
    /// being always up; [`CONFIG_SIZE`] bytes, the fields after `status`
    /// belonging to features not offered.
    pub fn config_space(&self) -> Vec<u8> {
        let mut config = Vec::with_capacity(CONFIG_SIZE);
        config.extend_from_slice(&self.mac);
        config.extend_from_slice(&VIRTIO_NET_S_LINK_UP.to_le_bytes());
        config
    }

    /// Takes the packet a transmit chain carries: reads the header once,
    /// checks it and the frame's length, and returns the frame without the
    /// header, or why it is dropped ([`DropReason::Offload`],
    /// [`DropReason::Runt`], [`DropReason::TooLong`]). The source address
    /// is the switch's to check. The chain goes back with used length 0:
    /// the device writes nothing into it.
    ///
    /// Header fields other than `flags` and `gso_type` mean nothing without
    /// offloads and are ignored, as are flag bits the device does not know
    /// (§5.1.6.2.2).
    ///
    /// `Err` means the chain is not a transmit buffer at all (fewer than
    /// [`HEADER_SIZE`] readable bytes, or writable bytes) or guest memory
    /// failed under a validated buffer: the device needs a reset (see
    /// [`QueueError`]).
    pub fn transmit<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &Chain,
        mem: &M,
    ) -> Result<Tx, QueueError> {
        let tx = Self::read_tx(chain, mem)?;
        match tx {
            Tx::Frame(_) => self.stats.tx_frames += 1,
            Tx::Dropped(_) => self.stats.tx_dropped += 1,
        }
        Ok(tx)
    }

    fn read_tx<M: GuestMemory + ?Sized>(chain: &Chain, mem: &M) -> Result<Tx, QueueError> {
        if chain.writable_len() > 0 {
            // Everything in a transmit buffer is for the device to read
            // (§5.1.6.2); a writable byte means the driver is confused.
            return Err(QueueError::BeyondChain {
                part: ChainPart::Writable,
                offset: 0,
                len: u64::from(chain.writable_len()),
                available: 0,
            });
        }
        let mut header = [0u8; HEADER_SIZE];
        // Fails with `BeyondChain` if the chain is shorter than a header.
        chain.read(mem, 0, &mut header)?;
        let [flags, gso_type, ..] = header;
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0 || gso_type != VIRTIO_NET_HDR_GSO_NONE {
            return Ok(Tx::Dropped(DropReason::Offload));
        }
        // At least `HEADER_LEN` after the read above. The length is checked
        // before anything is allocated, so it never exceeds a frame.
        let len = (chain.readable_len() - HEADER_LEN) as usize;
        if let Err(reason) = check_len(len) {
            return Ok(Tx::Dropped(reason));
        }
        let mut frame = vec![0; len];
        chain.read(mem, HEADER_SIZE as u64, &mut frame)?;
        Ok(Tx::Frame(frame))
    }

    /// Writes `frame` into a receive chain: a header with `num_buffers` = 1
    /// and everything else 0 (no checksum offered, no segmentation), then
    /// the frame, and returns [`RxOutcome::Delivered`] with their length,
    /// the used length.
    ///
    /// If the chain's writable part is shorter than the header and the
    /// frame together, nothing is written and the result is
    /// [`RxOutcome::TooSmall`] with used length 0: without
    /// `VIRTIO_NET_F_MRG_RXBUF` a packet must fit one chain (§5.1.6.3.2)
    /// and is never truncated, so the frame is dropped, and the chain goes
    /// back to the driver (which counts a length error and reuses it)
    /// rather than being held for a smaller frame that may never come.
    ///
    /// `frame` is not checked: the switch passes only frames that
    /// [`transmit`](Self::transmit) and [`Switch::route`](crate::Switch::route)
    /// accepted, at most [`MAX_FRAME_VLAN`](crate::MAX_FRAME_VLAN) bytes.
    ///
    /// `Err` means the chain is not a receive buffer at all (fewer than
    /// [`HEADER_SIZE`] writable bytes, or readable bytes) or guest memory
    /// failed under a validated buffer: the device needs a reset (see
    /// [`QueueError`]).
    pub fn receive<M: GuestMemory + ?Sized>(
        &mut self,
        chain: &Chain,
        mem: &M,
        frame: &[u8],
    ) -> Result<RxOutcome, QueueError> {
        if chain.readable_len() > 0 {
            // A receive buffer is all device-writable (§5.1.6.3).
            return Err(QueueError::BeyondChain {
                part: ChainPart::Readable,
                offset: 0,
                len: u64::from(chain.readable_len()),
                available: 0,
            });
        }
        let available = chain.writable_len();
        if available < HEADER_LEN {
            return Err(QueueError::BeyondChain {
                part: ChainPart::Writable,
                offset: 0,
                len: HEADER_SIZE as u64,
                available,
            });
        }
        let needed = HEADER_SIZE as u64 + frame.len() as u64;
        if needed > u64::from(available) {
            self.stats.rx_too_small += 1;
            return Ok(RxOutcome::TooSmall { used_len: 0 });
        }
        let mut header = [0u8; HEADER_SIZE];
        // Without VIRTIO_NET_F_MRG_RXBUF the device MUST set it to 1
        // (§5.1.6.3.2).
        header[NUM_BUFFERS_OFFSET..].copy_from_slice(&1u16.to_le_bytes());
        chain.write(mem, 0, &header)?;
        chain.write(mem, HEADER_SIZE as u64, frame)?;
        self.stats.rx_frames += 1;
        // At most `available`, a `u32`.
        Ok(RxOutcome::Delivered {
            used_len: needed as u32,
        })
    }
}
