//! The values the transport and its callers exchange: device type, feature
//! bits, status bits, interrupt bits, queue indices and queue layouts.

use addr::IntermediatePhysAddr;
use core::fmt;

/// Defines a set-of-bits newtype with the usual set operations.
macro_rules! bit_set {
    ($(#[$doc:meta])* $name:ident($int:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name($int);

        impl $name {
            /// No bit set.
            pub const NONE: Self = Self(0);

            /// Exactly these bits, defined or not.
            pub const fn from_bits(bits: $int) -> Self {
                Self(bits)
            }

            /// The bits as an integer.
            pub const fn bits(self) -> $int {
                self.0
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Whether every bit of `other` is set here.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// The bits set in either.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// The bits set in both.
            #[must_use]
            pub const fn intersection(self, other: Self) -> Self {
                Self(self.0 & other.0)
            }

            /// The bits set here but not in `other`.
            #[must_use]
            pub const fn difference(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

/// A virtio device type, the value of the `DeviceID` register (virtio 1.2
/// §5, "Device Types"). Zero means "no device" and is what an empty slot
/// reads.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(pub u32);

impl DeviceId {
    /// No device: a placeholder slot (§4.2.2, `DeviceID`).
    pub const NONE: Self = Self(0);
    /// Network card (§5.1).
    pub const NET: Self = Self(1);
    /// Block device (§5.2).
    pub const BLOCK: Self = Self(2);
    /// Console (§5.3).
    pub const CONSOLE: Self = Self(3);
    /// Entropy source (§5.4).
    pub const ENTROPY: Self = Self(4);
    /// Traditional memory balloon (§5.5).
    pub const BALLOON: Self = Self(5);
    /// Socket device (§5.10).
    pub const VSOCK: Self = Self(19);
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({self})")
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::NONE => "none",
            Self::NET => "net",
            Self::BLOCK => "block",
            Self::CONSOLE => "console",
            Self::ENTROPY => "entropy",
            Self::BALLOON => "balloon",
            Self::VSOCK => "vsock",
            Self(id) => return write!(f, "{id}"),
        };
        write!(f, "{} ({name})", self.0)
    }
}

bit_set!(
    /// Feature bits (virtio 1.2 §2.2): bits 0 to 23 and 50 to 127 are the
    /// device type's, 24 to 41 the transport's and the queues' (§6). Only
    /// bits 0 to 63 exist here; the transport offers none above.
    Features(u64)
);

impl Features {
    /// `VIRTIO_F_INDIRECT_DESC` (28): indirect descriptor tables.
    pub const INDIRECT_DESC: Self = Self(1 << 28);
    /// `VIRTIO_F_EVENT_IDX` (29): `used_event` and `avail_event`.
    pub const EVENT_IDX: Self = Self(1 << 29);
    /// `VIRTIO_F_VERSION_1` (32): compliance with virtio 1.x, which a
    /// version 2 virtio-mmio device must offer and a driver must accept.
    pub const VERSION_1: Self = Self(1 << 32);
    /// `VIRTIO_F_ACCESS_PLATFORM` (33): the device's DMA goes through an
    /// IOMMU or similar; the transport never adds it.
    pub const ACCESS_PLATFORM: Self = Self(1 << 33);
    /// `VIRTIO_F_RING_PACKED` (34): packed virtqueues.
    pub const RING_PACKED: Self = Self(1 << 34);
    /// `VIRTIO_F_IN_ORDER` (35): buffers are used in the order made
    /// available.
    pub const IN_ORDER: Self = Self(1 << 35);
    /// `VIRTIO_F_ORDER_PLATFORM` (36): the driver must order memory
    /// accesses as the platform requires for real hardware.
    pub const ORDER_PLATFORM: Self = Self(1 << 36);
    /// `VIRTIO_F_SR_IOV` (37): PCI single-root I/O virtualisation.
    pub const SR_IOV: Self = Self(1 << 37);
    /// `VIRTIO_F_NOTIFICATION_DATA` (38): notifications carry ring
    /// positions, changing what `QueueNotify` holds.
    pub const NOTIFICATION_DATA: Self = Self(1 << 38);
    /// `VIRTIO_F_NOTIF_CONFIG_DATA` (39): notifications carry a
    /// device-chosen queue identifier (a PCI capability field).
    pub const NOTIF_CONFIG_DATA: Self = Self(1 << 39);
    /// `VIRTIO_F_RING_RESET` (40): queues reset one at a time through
    /// `QueueReset`.
    pub const RING_RESET: Self = Self(1 << 40);
    /// `VIRTIO_F_ADMIN_VQ` (41): an administration virtqueue; reserved for
    /// virtio-mmio (§4.2.4).
    pub const ADMIN_VQ: Self = Self(1 << 41);

    /// Transport features this virtio-mmio transport does not implement, so
    /// a device may not offer them (see [`crate::DeviceInfoError`]):
    /// packed rings (queue sizes here follow the split ring's
    /// power-of-two rule), the PCI-only `SR_IOV` and `NOTIF_CONFIG_DATA`,
    /// notification data, ring reset, and the administration queue.
    pub const UNSUPPORTED: Self = Self(
        Self::RING_PACKED.0
            | Self::SR_IOV.0
            | Self::NOTIFICATION_DATA.0
            | Self::NOTIF_CONFIG_DATA.0
            | Self::RING_RESET.0
            | Self::ADMIN_VQ.0,
    );

    /// The 32 bits `DeviceFeatures`/`DriverFeatures` show for `select`
    /// (0: bits 0 to 31, 1: bits 32 to 63; anything above is zero here).
    pub const fn word(self, select: u32) -> u32 {
        match select {
            0 => self.0 as u32,
            1 => (self.0 >> 32) as u32,
            _ => 0,
        }
    }

    /// These features with word `select` (0 or 1) replaced by `value`;
    /// unchanged for any other `select`.
    #[must_use]
    pub const fn with_word(self, select: u32, value: u32) -> Self {
        match select {
            0 => Self((self.0 & !0xffff_ffff) | value as u64),
            1 => Self((self.0 & 0xffff_ffff) | ((value as u64) << 32)),
            _ => self,
        }
    }
}

bit_set!(
    /// The device status field (virtio 1.2 §2.1), the `Status` register's
    /// low byte.
    DeviceStatus(u8)
);

impl DeviceStatus {
    /// `ACKNOWLEDGE` (1): the guest has noticed the device.
    pub const ACKNOWLEDGE: Self = Self(1);
    /// `DRIVER` (2): the guest knows how to drive the device.
    pub const DRIVER: Self = Self(2);
    /// `DRIVER_OK` (4): the driver is set up and ready to drive the device.
    pub const DRIVER_OK: Self = Self(4);
    /// `FEATURES_OK` (8): the driver has acknowledged the features it
    /// understands and the device accepted them.
    pub const FEATURES_OK: Self = Self(8);
    /// `DEVICE_NEEDS_RESET` (64): the device hit an error it cannot recover
    /// from without a reset. Set by the device only.
    pub const DEVICE_NEEDS_RESET: Self = Self(64);
    /// `FAILED` (128): the driver gave up on the device.
    pub const FAILED: Self = Self(128);
    /// Every defined bit; bits 4 and 5 are reserved.
    pub const ALL: Self = Self(
        Self::ACKNOWLEDGE.0
            | Self::DRIVER.0
            | Self::DRIVER_OK.0
            | Self::FEATURES_OK.0
            | Self::DEVICE_NEEDS_RESET.0
            | Self::FAILED.0,
    );

    /// Whether the bits are in an order the initialisation sequence (§3.1.1)
    /// can reach: `DRIVER` only after `ACKNOWLEDGE`, `FEATURES_OK` only after
    /// `DRIVER`, `DRIVER_OK` only after `FEATURES_OK`.
    pub const fn is_in_order(self) -> bool {
        (!self.contains(Self::DRIVER) || self.contains(Self::ACKNOWLEDGE))
            && (!self.contains(Self::FEATURES_OK) || self.contains(Self::DRIVER))
            && (!self.contains(Self::DRIVER_OK) || self.contains(Self::FEATURES_OK))
    }
}

bit_set!(
    /// The `InterruptStatus` bits (virtio 1.2 §4.2.2): why the interrupt line
    /// is high.
    InterruptStatus(u32)
);

impl InterruptStatus {
    /// Used buffer notification (bit 0): the device used a buffer in at
    /// least one queue.
    pub const USED_BUFFER: Self = Self(1);
    /// Configuration change notification (bit 1): the configuration space
    /// (or `DEVICE_NEEDS_RESET`) changed.
    pub const CONFIG_CHANGE: Self = Self(2);
    /// Every defined bit.
    pub const ALL: Self = Self(Self::USED_BUFFER.0 | Self::CONFIG_CHANGE.0);
}

/// A virtqueue's index, 0 for the first (virtio 1.2 §2.6: 16 bits).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueIndex(pub u16);

impl QueueIndex {
    /// The index as a `usize`, for indexing.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for QueueIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueIndex({})", self.0)
    }
}

impl fmt::Display for QueueIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue {}", self.0)
    }
}

/// One of the three areas of a virtqueue (virtio 1.2 §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueArea {
    /// The Descriptor Area (split ring: the descriptor table).
    Descriptor,
    /// The Driver Area (split ring: the available ring).
    Driver,
    /// The Device Area (split ring: the used ring).
    Device,
}

impl QueueArea {
    /// The alignment a split virtqueue's area needs (§2.7, "Virtqueue
    /// Alignment"): 16 bytes for the descriptor table, 2 for the available
    /// ring, 4 for the used ring.
    pub const fn alignment(self) -> u64 {
        match self {
            Self::Descriptor => 16,
            Self::Driver => 2,
            Self::Device => 4,
        }
    }

    /// The size in bytes of this area of a split virtqueue of `size`
    /// entries (§2.7), counting the `used_event`/`avail_event` word that
    /// `VIRTIO_F_EVENT_IDX` adds, so the range covers both cases: 16 bytes a
    /// descriptor; `flags`, `idx`, a 2-byte ring entry each and
    /// `used_event`; `flags`, `idx`, an 8-byte element each and
    /// `avail_event`.
    pub const fn size(self, size: u16) -> u64 {
        let n = size as u64;
        match self {
            Self::Descriptor => 16 * n,
            Self::Driver => 6 + 2 * n,
            Self::Device => 6 + 8 * n,
        }
    }
}

impl fmt::Display for QueueArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Descriptor => "descriptor area",
            Self::Driver => "driver area",
            Self::Device => "device area",
        })
    }
}

/// Where a ready queue lives, as the driver set it up: the size it chose
/// and the guest-physical addresses of its three areas.
///
/// A `QueueConfig` that the transport hands out (in
/// [`Event::QueueReady`](crate::Event::QueueReady) or from
/// [`MmioTransport::queue`](crate::MmioTransport::queue)) has a size that is
/// a power of two no larger than the queue's maximum, each area aligned as
/// [`QueueArea::alignment`] says and ending at or below 2^64. Whether the
/// areas are guest RAM is for the caller, which knows the memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueConfig {
    /// Number of entries, a power of two from 1 to the queue's maximum.
    pub size: u16,
    /// Descriptor Area (the descriptor table).
    pub desc: IntermediatePhysAddr,
    /// Driver Area (the available ring).
    pub driver: IntermediatePhysAddr,
    /// Device Area (the used ring).
    pub device: IntermediatePhysAddr,
}

impl QueueConfig {
    /// Where `area` starts.
    pub const fn address(&self, area: QueueArea) -> IntermediatePhysAddr {
        match area {
            QueueArea::Descriptor => self.desc,
            QueueArea::Driver => self.driver,
            QueueArea::Device => self.device,
        }
    }

    /// The size in bytes of `area` for this queue's size
    /// ([`QueueArea::size`]).
    pub const fn area_size(&self, area: QueueArea) -> u64 {
        area.size(self.size)
    }
}
