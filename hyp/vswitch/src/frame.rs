//! Ethernet frames as the switch sees them: sizes, addresses and the
//! reasons a frame is dropped.

use core::fmt;

/// The shortest frame passed on: an Ethernet header (destination, source,
/// EtherType). Short frames are not padded to 60 bytes here: the virtual
/// wire has no minimum, and Linux pads nothing it sends to virtio-net.
pub const MIN_FRAME: usize = 14;
/// The longest untagged frame: an MTU of 1500 plus the Ethernet header,
/// without FCS.
pub const MAX_FRAME: usize = 1514;
/// The longest frame passed on: [`MAX_FRAME`] plus one 802.1Q VLAN tag
/// (Linux sizes its receive buffers for this, `GOOD_PACKET_LEN`).
pub const MAX_FRAME_VLAN: usize = MAX_FRAME + 4;

/// Bytes of a MAC address.
const MAC_LEN: usize = 6;

/// A MAC address, shown the usual way (`52:54:00:12:34:01`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; MAC_LEN]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Self = Self([0xff; MAC_LEN]);

    /// Whether the address names a group (multicast, including broadcast):
    /// the I/G bit, the lowest bit of the first byte.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }

    /// Whether the address is all ones.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the address is all zeros (no address at all).
    pub fn is_zero(&self) -> bool {
        self.0 == [0; MAC_LEN]
    }

    /// The destination address of `frame`, if it has one.
    pub fn destination_of(frame: &[u8]) -> Option<Self> {
        frame.get(..MAC_LEN)?.try_into().ok().map(Self)
    }

    /// The source address of `frame`, if it has one.
    pub fn source_of(frame: &[u8]) -> Option<Self> {
        frame.get(MAC_LEN..2 * MAC_LEN)?.try_into().ok().map(Self)
    }
}

impl From<[u8; MAC_LEN]> for MacAddr {
    fn from(bytes: [u8; MAC_LEN]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why a frame was not delivered. None of these is an error of the device:
/// a NIC drops such frames and at most counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than an Ethernet header ([`MIN_FRAME`]); the length.
    Runt(usize),
    /// Longer than [`MAX_FRAME_VLAN`]; the length.
    TooLong(usize),
    /// The transmit header asks for a checksum or segmentation offload the
    /// device did not offer (`VIRTIO_NET_HDR_F_NEEDS_CSUM`, or a `gso_type`
    /// other than `VIRTIO_NET_HDR_GSO_NONE`).
    Offload,
    /// The source address is not the sending port's own MAC.
    SpoofedSource,
    /// A unicast destination that no port on the sender's network has.
    UnknownDestination,
    /// A unicast destination that is the sender's own MAC: a frame never
    /// goes back to its sender.
    ToSender,
    /// The sending port is not (or no longer) on the switch.
    UnknownPort,
    /// The receiving port's backlog was full.
    NoRoom,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Runt(len) => write!(
                f,
                "runt frame of {len} bytes, shorter than an Ethernet header ({MIN_FRAME})"
            ),
            Self::TooLong(len) => write!(
                f,
                "frame of {len} bytes, longer than {MAX_FRAME_VLAN} (MTU 1500 and a VLAN tag)"
            ),
            Self::Offload => {
                f.write_str("header asks for a checksum or segmentation offload not offered")
            }
            Self::SpoofedSource => f.write_str("source address is not the port's own MAC"),
            Self::UnknownDestination => f.write_str("no port on the network has the destination"),
            Self::ToSender => f.write_str("destination is the sender itself"),
            Self::UnknownPort => f.write_str("the sending port is not on the switch"),
            Self::NoRoom => f.write_str("receiver's backlog full"),
        }
    }
}

/// A frame's length checked against [`MIN_FRAME`] and [`MAX_FRAME_VLAN`].
pub(crate) fn check_len(len: usize) -> Result<(), DropReason> {
    if len < MIN_FRAME {
        Err(DropReason::Runt(len))
    } else if len > MAX_FRAME_VLAN {
        Err(DropReason::TooLong(len))
    } else {
        Ok(())
    }
}
