//! Why a queue, a descriptor chain or a request could not be processed.

use core::fmt;

use crate::MemError;

/// One of the three areas of a split virtqueue (virtio 1.2 §2.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingArea {
    /// The descriptor table (`QueueDesc`).
    DescriptorTable,
    /// The driver area, or available ring (`QueueDriver`).
    DriverRing,
    /// The device area, or used ring (`QueueDevice`).
    DeviceRing,
}

impl fmt::Display for RingArea {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DescriptorTable => "descriptor table",
            Self::DriverRing => "driver ring",
            Self::DeviceRing => "device ring",
        })
    }
}

/// Which descriptor an error is about: an index into the queue's descriptor
/// table, or into the indirect table a chain ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DescId {
    /// Index in its table.
    pub index: u16,
    /// Whether the table is an indirect one (`VIRTQ_DESC_F_INDIRECT`).
    pub indirect: bool,
}

impl fmt::Display for DescId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.indirect {
            write!(f, "indirect descriptor {}", self.index)
        } else {
            write!(f, "descriptor {}", self.index)
        }
    }
}

/// The device-readable or the device-writable part of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainPart {
    /// Buffers the driver filled for the device (no `VIRTQ_DESC_F_WRITE`).
    Readable,
    /// Buffers the device fills (`VIRTQ_DESC_F_WRITE`).
    Writable,
}

impl fmt::Display for ChainPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Readable => "readable",
            Self::Writable => "writable",
        })
    }
}

/// Why a queue could not be set up, a chain could not be taken or completed,
/// or a request could not be parsed.
///
/// # The needs-reset contract
///
/// Every one of these is either a driver bug or a hostile guest (a few,
/// marked, are the caller's bugs). The queue cannot go on in a way the driver
/// would understand, so on **any** error the caller:
///
/// 1. sets `DEVICE_NEEDS_RESET` (0x40) in the device status and raises the
///    configuration-change interrupt (virtio 1.2 §2.1.2, for virtio-mmio bit
///    1 of `InterruptStatus`);
/// 2. stops processing this device's queues: no more `pop`, `push_used` or
///    `handle` until the driver resets the device (writes 0 to the status),
///    after which every queue is set up again with a new
///    [`Queue`](crate::Queue);
/// 3. may log the error: its `Display` names the problem and the values.
///
/// Nothing in guest memory is changed by a call that fails, except by
/// [`BlkDevice::handle`](crate::blk::BlkDevice::handle), which may have moved
/// data before the failure; no disk access ever falls outside the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The queue size is not a power of two from 1 to 32768 (§2.7).
    InvalidSize {
        /// The size asked for.
        size: u16,
    },
    /// A ring area is not aligned as §2.7 requires (descriptor table 16,
    /// driver ring 2, device ring 4 bytes).
    MisalignedArea {
        /// The area.
        area: RingArea,
        /// Its guest-physical address.
        gpa: u64,
        /// The alignment it needs.
        align: u64,
    },
    /// A ring area is not inside guest memory, or an access to it failed.
    Area {
        /// The area.
        area: RingArea,
        /// What was wrong with the range.
        err: MemError,
    },
    /// `avail.idx` moved further ahead of the device than the queue has
    /// entries.
    AvailIndexJump {
        /// The next ring entry the device would have taken.
        last: u16,
        /// The index the driver published.
        avail_idx: u16,
        /// The queue size.
        size: u16,
    },
    /// The driver offered a buffer while `size` chains were already in
    /// flight: it must have offered a head twice.
    TooManyInFlight {
        /// The queue size.
        size: u16,
    },
    /// A driver ring entry names a head descriptor past the table.
    HeadOutOfRange {
        /// The head index given.
        head: u16,
        /// The queue size.
        size: u16,
    },
    /// A descriptor's `next` is past its table.
    NextOutOfRange {
        /// The descriptor.
        desc: DescId,
        /// Its `next` field.
        next: u16,
        /// Entries in its table (the queue size, or the indirect table's
        /// length).
        limit: u16,
    },
    /// The chain has more buffers than the queue has entries (§2.7.5.3.1:
    /// "A driver MUST NOT create a descriptor chain longer than the Queue
    /// Size"), which a loop of `next` links always reaches.
    ChainTooLong {
        /// The queue size.
        size: u16,
    },
    /// A device-readable descriptor follows a device-writable one
    /// (§2.7.4.2: "The driver MUST place any device-writable descriptor
    /// elements after any device-readable descriptor elements").
    ReadableAfterWritable {
        /// The readable descriptor.
        desc: DescId,
    },
    /// The chain's buffers add up to more than `u32::MAX` bytes, so its
    /// length cannot be reported in the 32-bit used element.
    ChainTooLarge {
        /// The descriptor that went past the limit.
        desc: DescId,
    },
    /// A descriptor's buffer is not inside guest memory.
    BufferOutsideMemory {
        /// The descriptor.
        desc: DescId,
        /// What was wrong with the range.
        err: MemError,
    },
    /// A descriptor could not be read (its table is not inside guest memory).
    DescriptorUnreadable {
        /// The descriptor.
        desc: DescId,
        /// What was wrong with the range.
        err: MemError,
    },
    /// `VIRTQ_DESC_F_INDIRECT` without `VIRTIO_F_INDIRECT_DESC` negotiated
    /// (§2.7.5.3.1).
    IndirectNotNegotiated {
        /// The descriptor.
        desc: DescId,
    },
    /// `VIRTQ_DESC_F_INDIRECT` together with `VIRTQ_DESC_F_NEXT`
    /// (§2.7.5.3.1: the driver MUST NOT set both).
    IndirectWithNext {
        /// The descriptor.
        desc: DescId,
    },
    /// `VIRTQ_DESC_F_INDIRECT` inside an indirect table (§2.7.5.3.1: only
    /// one table per descriptor).
    NestedIndirect {
        /// The descriptor.
        desc: DescId,
    },
    /// An indirect table's length is zero or not a whole number of 16-byte
    /// descriptors.
    IndirectTableLength {
        /// The descriptor pointing at the table.
        desc: DescId,
        /// Its `len` field.
        len: u32,
    },
    /// An indirect table has more entries than the queue size (a chain
    /// through it would be longer than the queue).
    IndirectTableTooLong {
        /// The descriptor pointing at the table.
        desc: DescId,
        /// Entries in the table.
        entries: u32,
        /// The queue size.
        size: u16,
    },
    /// An indirect table is not inside guest memory.
    IndirectTableOutsideMemory {
        /// The descriptor pointing at the table.
        desc: DescId,
        /// What was wrong with the range.
        err: MemError,
    },
    /// `push_used` with a head past the table (the caller's bug).
    UsedHeadOutOfRange {
        /// The head given.
        head: u16,
        /// The queue size.
        size: u16,
    },
    /// `push_used` with no chain in flight (the caller's bug).
    UsedWithoutPop {
        /// The head given.
        head: u16,
    },
    /// A read or write through a [`Chain`](crate::Chain) reaches past the
    /// part it is in (the caller's bug, or a request the device should have
    /// checked).
    BeyondChain {
        /// Readable or writable part.
        part: ChainPart,
        /// Offset of the access in the part.
        offset: u64,
        /// Bytes accessed.
        len: u64,
        /// The part's length.
        available: u32,
    },
    /// An access to a chain's buffer failed although the buffer was inside
    /// guest memory when the chain was taken.
    BufferAccess {
        /// What was wrong with the range.
        err: MemError,
    },
    /// virtio-blk: the device-readable part is shorter than the 16-byte
    /// request header (§5.2.6).
    BlkHeaderTooShort {
        /// The chain's head.
        head: u16,
        /// Bytes readable.
        readable_len: u32,
    },
    /// virtio-blk: the chain has no device-writable byte for the status.
    BlkNoStatusByte {
        /// The chain's head.
        head: u16,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::InvalidSize { size } => {
                write!(f, "queue size {size} is not a power of two from 1 to 32768")
            }
            Self::MisalignedArea { area, gpa, align } => {
                write!(f, "{area} at {gpa:#x} is not {align}-byte aligned")
            }
            Self::Area { area, err } => write!(f, "{area}: {err}"),
            Self::AvailIndexJump {
                last,
                avail_idx,
                size,
            } => write!(
                f,
                "driver ring index moved from {last} to {avail_idx}, \
                 more than the queue size {size}"
            ),
            Self::TooManyInFlight { size } => write!(
                f,
                "driver offered more buffers than the queue size {size} \
                 while they were in flight (a head offered twice?)"
            ),
            Self::HeadOutOfRange { head, size } => {
                write!(f, "head descriptor {head} beyond queue size {size}")
            }
            Self::NextOutOfRange { desc, next, limit } => {
                if desc.indirect {
                    write!(
                        f,
                        "{desc}: next index {next} beyond indirect table of {limit}"
                    )
                } else {
                    write!(f, "{desc}: next index {next} beyond queue size {limit}")
                }
            }
            Self::ChainTooLong { size } => write!(
                f,
                "descriptor chain longer than the queue (loop?): more than {size} buffers"
            ),
            Self::ReadableAfterWritable { desc } => {
                write!(f, "{desc}: device-readable after a device-writable one")
            }
            Self::ChainTooLarge { desc } => {
                write!(f, "{desc}: descriptor chain's total length exceeds 4 GiB")
            }
            Self::BufferOutsideMemory { desc, err } => write!(f, "{desc}: {err}"),
            Self::DescriptorUnreadable { desc, err } => {
                write!(f, "{desc}: cannot read the descriptor: {err}")
            }
            Self::IndirectNotNegotiated { desc } => write!(
                f,
                "{desc}: indirect without VIRTIO_F_INDIRECT_DESC negotiated"
            ),
            Self::IndirectWithNext { desc } => {
                write!(f, "{desc}: both INDIRECT and NEXT flags set")
            }
            Self::NestedIndirect { desc } => {
                write!(f, "{desc}: indirect inside an indirect table")
            }
            Self::IndirectTableLength { desc, len } => write!(
                f,
                "{desc}: indirect table length {len} is not a non-zero multiple of 16"
            ),
            Self::IndirectTableTooLong {
                desc,
                entries,
                size,
            } => write!(
                f,
                "{desc}: indirect table of {entries} descriptors longer than queue size {size}"
            ),
            Self::IndirectTableOutsideMemory { desc, err } => {
                write!(f, "{desc}: indirect table: {err}")
            }
            Self::UsedHeadOutOfRange { head, size } => {
                write!(f, "used head {head} beyond queue size {size}")
            }
            Self::UsedWithoutPop { head } => {
                write!(f, "used head {head} returned with no chain in flight")
            }
            Self::BeyondChain {
                part,
                offset,
                len,
                available,
            } => write!(
                f,
                "access [{offset:#x}, +{len:#x}) beyond the {available} {part} bytes of the chain"
            ),
            Self::BufferAccess { err } => write!(f, "chain buffer: {err}"),
            Self::BlkHeaderTooShort { head, readable_len } => write!(
                f,
                "virtio-blk request at head {head}: {readable_len} readable bytes, \
                 shorter than the 16-byte header"
            ),
            Self::BlkNoStatusByte { head } => write!(
                f,
                "virtio-blk request at head {head}: no writable byte for the status"
            ),
        }
    }
}
