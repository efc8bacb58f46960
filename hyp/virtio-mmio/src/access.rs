//! What a guest's access did: the value read, the event the device backend
//! must act on, and why (part of) an access was ignored.

use crate::register::Register;
use crate::types::{DeviceStatus, Features, InterruptStatus, QueueArea, QueueConfig, QueueIndex};
use addr::IntermediatePhysAddr;
use core::fmt;

/// The outcome of a guest's access: for a read, the value (in the low
/// `size` bytes; 0 if ignored); for a write, what the device backend must
/// do about it, if anything; and why the access, or part of it, was
/// ignored.
///
/// An access can both take effect and be partly refused: a `Status` write
/// asking for `FEATURES_OK` and `FAILED` together records `FAILED` (and says
/// so in `value`) while `FEATURES_OK` does not stick (and `ignored` says
/// why).
pub type Access<T> = guest_access::Access<T, Ignored>;

/// Something a guest's write asks the device backend (or the caller) to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The driver wrote 0 to `Status`: the transport is back in its reset
    /// state (status, features, queues, interrupt status), and the backend
    /// must drop all its queue and request state too, without touching
    /// guest memory again. Reported for every such write, even when the
    /// device was already reset.
    Reset,
    /// The driver set `DRIVER_OK`: the device is live. The negotiated
    /// features are [`MmioTransport::negotiated_features`](crate::MmioTransport::negotiated_features)
    /// and the ready queues [`MmioTransport::queue`](crate::MmioTransport::queue).
    DriverOk,
    /// The driver set `FAILED`: it gave up on the device and will reset it
    /// before trying again.
    Failed,
    /// The driver enabled a queue (wrote 1 to `QueueReady`) with this
    /// layout, already checked as [`QueueConfig`] describes.
    QueueReady(QueueIndex, QueueConfig),
    /// The driver stopped a ready queue (wrote 0 to `QueueReady`): the
    /// device must not touch it any more.
    QueueStopped(QueueIndex),
    /// Available buffer notification for a ready queue after `DRIVER_OK`.
    Notify(QueueIndex),
    /// The driver acknowledged these interrupt causes; if
    /// [`MmioTransport::interrupt_line`](crate::MmioTransport::interrupt_line)
    /// is now low, the caller lowers the interrupt.
    InterruptAcked(InterruptStatus),
    /// The driver wrote `size` bytes (1, 2 or 4, naturally aligned, inside
    /// the configuration space) at `offset` from the start of the
    /// configuration space. The transport does not store it: the backend
    /// applies what its device type makes writable through
    /// [`MmioTransport::update_config`](crate::MmioTransport::update_config)
    /// and ignores the rest.
    ConfigWrite {
        /// Offset from the start of the configuration space (frame offset
        /// minus 0x100).
        offset: u16,
        /// Bytes written: 1, 2 or 4.
        size: u8,
        /// The value, little-endian, in the low `size` bytes.
        value: u32,
    },
}

/// Why an access, or part of it, did nothing. Each is the guest's mistake
/// against virtio 1.2 §4.2.2 or §2.1/§3.1 (or a transport feature the
/// device does not offer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// No register at this offset (a gap, a legacy-only register, or past
    /// the frame). Reads 0.
    UnknownOffset {
        /// Offset accessed.
        offset: u64,
    },
    /// A control register accessed other than with a 32-bit access at its
    /// offset (§4.2.2.2: "32 bit wide and aligned").
    BadRegisterAccess {
        /// Offset accessed.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// A configuration space access that is not 1, 2 or 4 bytes, naturally
    /// aligned (§4.2.2.2).
    BadConfigAccess {
        /// Offset accessed, from the frame's start.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// A configuration space access reaching past the device's
    /// configuration space.
    ConfigOutOfRange {
        /// Offset accessed, from the configuration space's start.
        offset: u64,
        /// Bytes accessed.
        size: u8,
        /// Size of the device's configuration space.
        config_size: u16,
    },
    /// A write to a read-only register.
    ReadOnly(Register),
    /// A read of a write-only register. Reads 0.
    WriteOnly(Register),
    /// An access to an empty slot other than reading `MagicValue`, `Version`
    /// or `DeviceID` (a driver must stop after reading `DeviceID` 0,
    /// §4.2.3.1.1).
    NoDevice,
    /// A write setting bits the register does not define.
    ReservedBits {
        /// Register written.
        register: Register,
        /// Value written.
        value: u32,
    },
    /// A non-zero `Status` write that would clear bits (§2.1.1: the driver
    /// must not clear a status bit; only writing 0 resets).
    StatusBitsCleared {
        /// Status before the write.
        status: DeviceStatus,
        /// Status written.
        written: DeviceStatus,
    },
    /// A `Status` write setting a bit before the one it depends on
    /// (§3.1.1: `ACKNOWLEDGE`, `DRIVER`, `FEATURES_OK`, `DRIVER_OK`, in that
    /// order).
    StatusOutOfOrder {
        /// Status written.
        written: DeviceStatus,
    },
    /// A `Status` write setting bits after `FAILED` (§2.1.1: the driver must
    /// reset the device first).
    StatusAfterFailed {
        /// Status written.
        written: DeviceStatus,
    },
    /// `FEATURES_OK` refused: the driver accepted features the device does
    /// not offer (§2.2.1; §3.1.1 step 5).
    FeaturesNotOffered {
        /// Accepted bits 0 to 63 the device did not offer.
        unoffered: Features,
        /// Whether the driver also set bits above 63, which no device here
        /// offers.
        beyond_64: bool,
    },
    /// `FEATURES_OK` refused: the driver did not accept `VIRTIO_F_VERSION_1`,
    /// which a version 2 transport requires (§6.1).
    Version1NotAccepted,
    /// A non-zero `DriverFeatures` word above bit 63: recorded, so the next
    /// `FEATURES_OK` is refused, and reported now for the log.
    UnofferedFeatureWord {
        /// `DriverFeaturesSel` at the time.
        select: u32,
        /// Word written.
        value: u32,
    },
    /// A `DriverFeatures` write after `FEATURES_OK` (§2.2: features are fixed
    /// once the device accepted them).
    FeaturesAfterFeaturesOk,
    /// A queue register accessed while `QueueSel` names no queue of this
    /// device (`QueueNumMax` reads 0 for it).
    NoSuchQueue {
        /// `QueueSel` (or, for `QueueNotify`, the value written).
        select: u32,
    },
    /// A write to `QueueNum` or a queue address register while the queue is
    /// ready (§4.2.2.2).
    QueueIsReady(QueueIndex),
    /// An available buffer notification for a queue that is not ready.
    QueueNotReady(QueueIndex),
    /// Queue setup before `FEATURES_OK` (§3.1.1: queues are discovered in
    /// step 7, after the features are fixed in step 6).
    QueueBeforeFeaturesOk(QueueIndex),
    /// Queue setup after `DRIVER_OK` (§3.1.1 step 7 comes before step 8).
    QueueAfterDriverOk(QueueIndex),
    /// A `QueueNum` that is not a power of two from 1 to `QueueNumMax`
    /// (§2.7: split virtqueue sizes are powers of two; §4.2.2.2).
    BadQueueSize {
        /// Queue selected.
        queue: QueueIndex,
        /// Size written.
        size: u32,
        /// The queue's `QueueNumMax`.
        max: u16,
    },
    /// `QueueReady` refused: an area is not aligned as a split virtqueue
    /// requires (§2.7).
    MisalignedQueueArea {
        /// Queue selected.
        queue: QueueIndex,
        /// Misaligned area.
        area: QueueArea,
        /// Its address.
        address: IntermediatePhysAddr,
    },
    /// `QueueReady` refused: an area would run past the end of the address
    /// space.
    QueueAreaWraps {
        /// Queue selected.
        queue: QueueIndex,
        /// Area that wraps.
        area: QueueArea,
        /// Its address.
        address: IntermediatePhysAddr,
    },
    /// A value the register does not take (`QueueReady` takes 0 or 1).
    BadValue {
        /// Register written.
        register: Register,
        /// Value written.
        value: u32,
    },
    /// An available buffer notification before `DRIVER_OK` (§3.1.1: the
    /// driver must not notify the device before setting `DRIVER_OK`).
    NotifyBeforeDriverOk(QueueIndex),
    /// A write to `QueueReset`: this transport does not offer
    /// `VIRTIO_F_RING_RESET`.
    RingResetNotOffered,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownOffset { offset } => write!(f, "no register at offset {offset:#x}"),
            Self::BadRegisterAccess { offset, size } => write!(
                f,
                "{size}-byte access at {offset:#x}: registers take aligned 32-bit accesses only"
            ),
            Self::BadConfigAccess { offset, size } => write!(
                f,
                "{size}-byte access at {offset:#x}: configuration space takes aligned 1, 2 or 4-byte accesses only"
            ),
            Self::ConfigOutOfRange {
                offset,
                size,
                config_size,
            } => write!(
                f,
                "{size}-byte access at configuration offset {offset:#x}: past the {config_size}-byte configuration space"
            ),
            Self::ReadOnly(register) => write!(f, "write to read-only {register}"),
            Self::WriteOnly(register) => write!(f, "read of write-only {register}"),
            Self::NoDevice => f.write_str("access to an empty slot past DeviceID"),
            Self::ReservedBits { register, value } => {
                write!(f, "{value:#x} written to {register} sets reserved bits")
            }
            Self::StatusBitsCleared { status, written } => write!(
                f,
                "status {written} written over {status} clears bits without a reset"
            ),
            Self::StatusOutOfOrder { written } => write!(
                f,
                "status {written} sets a bit before the one it depends on"
            ),
            Self::StatusAfterFailed { written } => {
                write!(f, "status {written} written after FAILED without a reset")
            }
            Self::FeaturesNotOffered {
                unoffered,
                beyond_64,
            } => {
                write!(f, "FEATURES_OK refused: features {unoffered} not offered")?;
                if beyond_64 {
                    f.write_str(", and bits above 63")?;
                }
                Ok(())
            }
            Self::Version1NotAccepted => {
                f.write_str("FEATURES_OK refused: VIRTIO_F_VERSION_1 not accepted")
            }
            Self::UnofferedFeatureWord { select, value } => write!(
                f,
                "driver features word {select} = {value:#x}: no such features are offered"
            ),
            Self::FeaturesAfterFeaturesOk => {
                f.write_str("DriverFeatures written after FEATURES_OK")
            }
            Self::NoSuchQueue { select } => write!(f, "no queue {select}"),
            Self::QueueIsReady(queue) => write!(f, "{queue} set up while ready"),
            Self::QueueNotReady(queue) => write!(f, "notification for {queue}, not ready"),
            Self::QueueBeforeFeaturesOk(queue) => {
                write!(f, "{queue} set up before FEATURES_OK")
            }
            Self::QueueAfterDriverOk(queue) => write!(f, "{queue} set up after DRIVER_OK"),
            Self::BadQueueSize { queue, size, max } => write!(
                f,
                "{queue} size {size}: not a power of two from 1 to {max}"
            ),
            Self::MisalignedQueueArea {
                queue,
                area,
                address,
            } => write!(
                f,
                "{queue} not enabled: {area} at {address} is not {}-byte aligned",
                area.alignment()
            ),
            Self::QueueAreaWraps {
                queue,
                area,
                address,
            } => write!(
                f,
                "{queue} not enabled: {area} at {address} runs past the address space"
            ),
            Self::BadValue { register, value } => write!(f, "{value:#x} written to {register}"),
            Self::NotifyBeforeDriverOk(queue) => {
                write!(f, "notification for {queue} before DRIVER_OK")
            }
            Self::RingResetNotOffered => {
                f.write_str("QueueReset written: VIRTIO_F_RING_RESET is not offered")
            }
        }
    }
}
