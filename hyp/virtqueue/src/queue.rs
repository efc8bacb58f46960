//! The split virtqueue from the device side (virtio 1.2 §2.7).

use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

use crate::{ChainPart, DescId, GuestMemory, QueueError, RingArea};

/// The largest queue size a split virtqueue can have (§2.7: "Queue Size
/// value is always a power of 2. The maximum Queue Size value is 32768").
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// `VIRTIO_F_INDIRECT_DESC` (bit 28): the driver may use indirect
/// descriptor tables.
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;
/// `VIRTIO_F_EVENT_IDX` (bit 29): `used_event` and `avail_event` replace
/// the ring flags for notification suppression.
pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
/// `VIRTIO_F_VERSION_1` (bit 32): a modern (non-legacy) device.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// Bytes of one descriptor: `le64 addr; le32 len; le16 flags; le16 next`.
const DESC_SIZE: u64 = 16;
/// Bytes of one used element: `le32 id; le32 len`.
const USED_ELEM_SIZE: u64 = 8;
/// Bytes of a ring's `flags` and `idx` fields, before its entries.
const RING_HEADER: u64 = 4;

/// `VIRTQ_DESC_F_NEXT`: the chain continues at `next`.
const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: the buffer is device-writable.
const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`: the buffer is a table of descriptors.
const DESC_F_INDIRECT: u16 = 4;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver does not want interrupts.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// The negotiated features that change how a queue works.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueFeatures {
    /// `VIRTIO_F_INDIRECT_DESC`: indirect tables are accepted; without it a
    /// descriptor with `VIRTQ_DESC_F_INDIRECT` is an error.
    pub indirect_desc: bool,
    /// `VIRTIO_F_EVENT_IDX`: `used_event` decides interrupts and the device
    /// publishes `avail_event`.
    pub event_idx: bool,
}

impl QueueFeatures {
    /// The queue features among `negotiated`, the feature bits the driver
    /// accepted.
    pub const fn from_negotiated(negotiated: u64) -> Self {
        Self {
            indirect_desc: negotiated & VIRTIO_F_INDIRECT_DESC != 0,
            event_idx: negotiated & VIRTIO_F_EVENT_IDX != 0,
        }
    }
}

/// A queue's setup as the driver wrote it through the transport
/// (`QueueNum`, `QueueDesc`, `QueueDriver`, `QueueDevice`) and the features
/// it negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct QueueConfig {
    /// Entries in the queue (`QueueNum`): a power of two up to
    /// [`MAX_QUEUE_SIZE`]. The transport also keeps it at most the
    /// `QueueNumMax` it advertised.
    pub size: u16,
    /// Guest-physical address of the descriptor table.
    pub desc_table: u64,
    /// Guest-physical address of the driver area (available ring).
    pub driver_ring: u64,
    /// Guest-physical address of the device area (used ring).
    pub device_ring: u64,
    /// Negotiated features.
    pub features: QueueFeatures,
}

impl QueueConfig {
    /// Bytes `area` takes for this queue size (§2.7: 16 × size, 6 + 2 ×
    /// size, 6 + 8 × size; the last two include the event index field).
    pub fn area_len(&self, area: RingArea) -> u64 {
        let size = u64::from(self.size);
        match area {
            RingArea::DescriptorTable => DESC_SIZE * size,
            RingArea::DriverRing => RING_HEADER + 2 * size + 2,
            RingArea::DeviceRing => RING_HEADER + USED_ELEM_SIZE * size + 2,
        }
    }

    /// Guest-physical address of `area`.
    pub fn area_gpa(&self, area: RingArea) -> u64 {
        match area {
            RingArea::DescriptorTable => self.desc_table,
            RingArea::DriverRing => self.driver_ring,
            RingArea::DeviceRing => self.device_ring,
        }
    }

    /// The alignment §2.7 requires of `area`.
    pub const fn area_align(area: RingArea) -> u64 {
        match area {
            RingArea::DescriptorTable => 16,
            RingArea::DriverRing => 2,
            RingArea::DeviceRing => 4,
        }
    }
}

/// One buffer of a chain: a guest-physical range that was inside guest
/// memory when the chain was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Buffer {
    /// Guest-physical address of its first byte.
    pub gpa: u64,
    /// Its length in bytes.
    pub len: u32,
}

/// A descriptor chain taken from the driver ring, validated: the device's
/// own copy of the descriptors, so the guest changing them later changes
/// nothing here.
///
/// The readable buffers come first, then the writable ones (the order the
/// spec requires and [`Queue::pop`] checks). Buffers of an indirect table
/// appear in place of the descriptor that pointed to it. Reads and writes
/// through [`read`](Self::read) and [`write`](Self::write) address each part
/// as one run of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    head: u16,
    buffers: Vec<Buffer>,
    readable: usize,
    readable_len: u32,
    writable_len: u32,
}

impl Chain {
    /// The head descriptor's index: what [`Queue::push_used`] returns to the
    /// driver.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// The device-readable buffers, in chain order.
    pub fn readable(&self) -> &[Buffer] {
        &self.buffers[..self.readable]
    }

    /// The device-writable buffers, in chain order.
    pub fn writable(&self) -> &[Buffer] {
        &self.buffers[self.readable..]
    }

    /// Total bytes of the readable buffers.
    pub fn readable_len(&self) -> u32 {
        self.readable_len
    }

    /// Total bytes of the writable buffers.
    pub fn writable_len(&self) -> u32 {
        self.writable_len
    }

    /// The pieces of guest memory that bytes `[offset, offset + len)` of
    /// `part` occupy, in order, or [`QueueError::BeyondChain`] if the range
    /// is not inside the part.
    pub fn segments(
        &self,
        part: ChainPart,
        offset: u64,
        len: u64,
    ) -> Result<Segments<'_>, QueueError> {
        let (buffers, available) = match part {
            ChainPart::Readable => (self.readable(), self.readable_len),
            ChainPart::Writable => (self.writable(), self.writable_len),
        };
        let beyond = QueueError::BeyondChain {
            part,
            offset,
            len,
            available,
        };
        let end = offset.checked_add(len).ok_or(beyond)?;
        if end > u64::from(available) {
            return Err(beyond);
        }
        Ok(Segments {
            buffers,
            skip: offset,
            left: len,
        })
    }

    /// Copies bytes `[offset, offset + buf.len())` of the readable part into
    /// `buf`. To read the whole part, pass a buffer of
    /// [`readable_len`](Self::readable_len) bytes (bound it first: the guest
    /// chose that length).
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), QueueError> {
        let mut done = 0;
        for seg in self.segments(ChainPart::Readable, offset, buf.len() as u64)? {
            let next = done + seg.len as usize;
            mem.read(seg.gpa, &mut buf[done..next])
                .map_err(|err| QueueError::BufferAccess { err })?;
            done = next;
        }
        Ok(())
    }

    /// Copies `data` to bytes `[offset, offset + data.len())` of the
    /// writable part.
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        data: &[u8],
    ) -> Result<(), QueueError> {
        let mut done = 0;
        for seg in self.segments(ChainPart::Writable, offset, data.len() as u64)? {
            let next = done + seg.len as usize;
            mem.write(seg.gpa, &data[done..next])
                .map_err(|err| QueueError::BufferAccess { err })?;
            done = next;
        }
        Ok(())
    }
}

/// Iterator over the guest-memory pieces of a byte range of a chain part
/// (see [`Chain::segments`]); zero-length pieces are skipped.
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    /// The buffers from the one the next piece is in.
    buffers: &'a [Buffer],
    /// Bytes of `buffers[0]` already skipped or yielded.
    skip: u64,
    /// Bytes of the range still to yield.
    left: u64,
}

impl Segments<'_> {
    /// Bytes of the range not yet yielded.
    pub fn remaining(&self) -> u64 {
        self.left
    }

    /// The next piece, at most `max` bytes long (the rest of a longer
    /// buffer comes next), or `None` at the end of the range or if `max` is
    /// 0.
    pub fn next_up_to(&mut self, max: u64) -> Option<Buffer> {
        while self.left > 0 && max > 0 {
            let (first, rest) = self.buffers.split_first()?;
            let len = u64::from(first.len);
            if self.skip >= len {
                self.skip -= len;
                self.buffers = rest;
                continue;
            }
            let take = (len - self.skip).min(self.left).min(max);
            let piece = Buffer {
                // Inside the buffer, which did not overflow when it was
                // checked.
                gpa: first.gpa + self.skip,
                // At most `first.len`.
                len: take as u32,
            };
            self.skip += take;
            self.left -= take;
            if self.skip == len {
                self.skip = 0;
                self.buffers = rest;
            }
            return Some(piece);
        }
        None
    }
}

impl Iterator for Segments<'_> {
    type Item = Buffer;

    fn next(&mut self) -> Option<Buffer> {
        self.next_up_to(u64::MAX)
    }
}

/// A descriptor as copied out of guest memory: read once, then only this
/// copy is looked at.
#[derive(Clone, Copy, Debug)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

impl Descriptor {
    fn read<M: GuestMemory + ?Sized>(mem: &M, gpa: u64, id: DescId) -> Result<Self, QueueError> {
        let mut raw = [0u8; DESC_SIZE as usize];
        mem.read(gpa, &mut raw)
            .map_err(|err| QueueError::DescriptorUnreadable { desc: id, err })?;
        let [a0, a1, a2, a3, a4, a5, a6, a7, l0, l1, l2, l3, f0, f1, n0, n1] = raw;
        Ok(Self {
            addr: u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            flags: u16::from_le_bytes([f0, f1]),
            next: u16::from_le_bytes([n0, n1]),
        })
    }
}

/// The descriptor table a walk is in.
#[derive(Clone, Copy, Debug)]
struct Table {
    gpa: u64,
    entries: u16,
    indirect: bool,
}

/// A split virtqueue, device side.
///
/// Created when the driver sets `QueueReady` (with the values it wrote to
/// the queue registers) and dropped when it clears it or resets the device.
/// On every notification the device calls [`pop`](Self::pop) until it
/// returns `Ok(None)`, handles each chain, returns it with
/// [`push_used`](Self::push_used), and then asks
/// [`needs_interrupt`](Self::needs_interrupt) whether to raise the queue's
/// interrupt. Any error means the device needs a reset (see
/// [`QueueError`]).
///
/// With `VIRTIO_F_EVENT_IDX` the device asks for the next notification only
/// when it finds the ring empty, so a caller that stops popping before
/// `Ok(None)` must come back to the queue by itself.
#[derive(Clone, Debug)]
pub struct Queue {
    config: QueueConfig,
    /// `last_avail_idx`: the next driver ring entry to take (free-running).
    next_avail: u16,
    /// The next used ring entry to fill (free-running), as published in
    /// `used.idx`.
    next_used: u16,
    /// Chains popped and not yet pushed back.
    in_flight: u32,
    /// Used entries pushed since the last `needs_interrupt`.
    unsignalled: bool,
    /// `next_used` at the last `needs_interrupt` that saw new entries, for
    /// `VIRTIO_F_EVENT_IDX`; `None` before the first.
    signalled_used: Option<u16>,
}

impl Queue {
    /// A queue for `config`, after checking the size (a power of two up to
    /// [`MAX_QUEUE_SIZE`]), the alignment of the three areas and that they
    /// lie inside guest memory. Both ring indices start at 0.
    pub fn new<M: GuestMemory + ?Sized>(config: QueueConfig, mem: &M) -> Result<Self, QueueError> {
        let size = config.size;
        if !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::InvalidSize { size });
        }
        for area in [
            RingArea::DescriptorTable,
            RingArea::DriverRing,
            RingArea::DeviceRing,
        ] {
            let gpa = config.area_gpa(area);
            let align = QueueConfig::area_align(area);
            if !gpa.is_multiple_of(align) {
                return Err(QueueError::MisalignedArea { area, gpa, align });
            }
            mem.check_range(gpa, config.area_len(area))
                .map_err(|err| QueueError::Area { area, err })?;
        }
        Ok(Self {
            config,
            next_avail: 0,
            next_used: 0,
            in_flight: 0,
            unsignalled: false,
            signalled_used: None,
        })
    }

    /// The configuration the queue was created with.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Entries in the queue.
    pub fn size(&self) -> u16 {
        self.config.size
    }

    /// The next driver ring index the device will take (`last_avail_idx`).
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// The device's used index, as last published in `used.idx`.
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    /// Chains taken by [`pop`](Self::pop) and not yet returned by
    /// [`push_used`](Self::push_used).
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Takes the next chain the driver made available, validated, or
    /// `Ok(None)` if there is none.
    ///
    /// Reads `avail.idx` once; refuses an index more than the queue size
    /// ahead ([`QueueError::AvailIndexJump`]). Then reads the ring entry and
    /// each descriptor once and checks: the head and every `next` inside
    /// their table, at most `size` buffers (which ends `next` loops), no
    /// readable buffer after a writable one, a total length that fits in 32
    /// bits, and every buffer inside guest memory. An indirect descriptor
    /// (only with `VIRTIO_F_INDIRECT_DESC`; §2.7.5.3) may end a chain of
    /// zero or more direct ones: it must not have `NEXT`, its table must be a
    /// non-zero multiple of 16 bytes, at most `size` entries, inside guest
    /// memory, and must not contain another indirect descriptor; its
    /// `WRITE` flag is ignored as §2.7.5.3.2 requires.
    ///
    /// On an error the driver ring entry is not consumed; the device needs a
    /// reset (see [`QueueError`]).
    pub fn pop<M: GuestMemory + ?Sized>(&mut self, mem: &M) -> Result<Option<Chain>, QueueError> {
        let size = self.config.size;
        let mut avail_idx = self.read_avail_idx(mem)?;
        if avail_idx == self.next_avail && self.config.features.event_idx {
            // Ask to be notified when the driver adds the next buffer, then
            // look again: it may have added one after our read but before it
            // saw `avail_event` (§2.7.10; the full barrier orders our store
            // before our load, as the driver's orders its own).
            mem.write_u16(self.avail_event_gpa(), self.next_avail)
                .map_err(|err| QueueError::Area {
                    area: RingArea::DeviceRing,
                    err,
                })?;
            fence(Ordering::SeqCst);
            avail_idx = self.read_avail_idx(mem)?;
        }
        let pending = avail_idx.wrapping_sub(self.next_avail);
        if pending > size {
            return Err(QueueError::AvailIndexJump {
                last: self.next_avail,
                avail_idx,
                size,
            });
        }
        if pending == 0 {
            return Ok(None);
        }
        if self.in_flight >= u32::from(size) {
            return Err(QueueError::TooManyInFlight { size });
        }
        // The driver wrote the ring entry and descriptors before the index:
        // read them only after it.
        fence(Ordering::Acquire);
        let slot = u64::from(self.next_avail & (size - 1));
        let head = mem
            .read_u16(self.config.driver_ring + RING_HEADER + 2 * slot)
            .map_err(|err| QueueError::Area {
                area: RingArea::DriverRing,
                err,
            })?;
        let chain = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        self.in_flight += 1;
        Ok(Some(chain))
    }

    /// Returns the chain with head `head` to the driver: fills the next used
    /// element with `head` and `written_len` (bytes the device wrote to the
    /// chain's writable part, from its start) and publishes the new
    /// `used.idx`. The caller's data writes to the buffers become visible to
    /// the driver no later than the index.
    pub fn push_used<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        head: u16,
        written_len: u32,
    ) -> Result<(), QueueError> {
        let size = self.config.size;
        if head >= size {
            return Err(QueueError::UsedHeadOutOfRange { head, size });
        }
        if self.in_flight == 0 {
            return Err(QueueError::UsedWithoutPop { head });
        }
        let ring_err = |err| QueueError::Area {
            area: RingArea::DeviceRing,
            err,
        };
        let slot = u64::from(self.next_used & (size - 1));
        let mut elem = [0u8; USED_ELEM_SIZE as usize];
        elem[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        elem[4..].copy_from_slice(&written_len.to_le_bytes());
        mem.write(
            self.config.device_ring + RING_HEADER + USED_ELEM_SIZE * slot,
            &elem,
        )
        .map_err(ring_err)?;
        // The element (and the data before it) before the index (§2.7.8.2).
        fence(Ordering::Release);
        let next_used = self.next_used.wrapping_add(1);
        mem.write_u16(self.config.device_ring + 2, next_used)
            .map_err(ring_err)?;
        self.next_used = next_used;
        self.in_flight -= 1;
        self.unsignalled = true;
        Ok(())
    }

    /// Whether the driver wants an interrupt for the used entries pushed
    /// since the last call: never if there are none; otherwise, without
    /// `VIRTIO_F_EVENT_IDX`, unless the driver set
    /// `VIRTQ_AVAIL_F_NO_INTERRUPT`; with it, if `used_event` is among the
    /// entries pushed since the last interrupt (§2.7.10, the spec's
    /// `vring_need_event`), and always the first time.
    ///
    /// Call it after a batch of [`push_used`](Self::push_used), and raise
    /// the interrupt if it says so: each call consumes the pending entries.
    pub fn needs_interrupt<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
    ) -> Result<bool, QueueError> {
        if !self.unsignalled {
            return Ok(false);
        }
        // Our `used.idx` store before our load of the driver's flags or
        // event index; the driver orders its own the other way round.
        fence(Ordering::SeqCst);
        let ring_err = |err| QueueError::Area {
            area: RingArea::DriverRing,
            err,
        };
        let new = self.next_used;
        let wanted = if self.config.features.event_idx {
            let used_event = mem.read_u16(self.used_event_gpa()).map_err(ring_err)?;
            match self.signalled_used {
                None => true,
                Some(old) => need_event(used_event, new, old),
            }
        } else {
            let flags = mem.read_u16(self.config.driver_ring).map_err(ring_err)?;
            flags & AVAIL_F_NO_INTERRUPT == 0
        };
        self.unsignalled = false;
        self.signalled_used = Some(new);
        Ok(wanted)
    }

    fn read_avail_idx<M: GuestMemory + ?Sized>(&self, mem: &M) -> Result<u16, QueueError> {
        mem.read_u16(self.config.driver_ring + 2)
            .map_err(|err| QueueError::Area {
                area: RingArea::DriverRing,
                err,
            })
    }

    /// `used_event`, after the driver ring's entries.
    fn used_event_gpa(&self) -> u64 {
        self.config.driver_ring + RING_HEADER + 2 * u64::from(self.config.size)
    }

    /// `avail_event`, after the device ring's entries.
    fn avail_event_gpa(&self) -> u64 {
        self.config.device_ring + RING_HEADER + USED_ELEM_SIZE * u64::from(self.config.size)
    }

    /// Follows the chain from `head`, copying and validating each
    /// descriptor (see [`pop`](Self::pop) for the rules).
    fn walk<M: GuestMemory + ?Sized>(&self, mem: &M, head: u16) -> Result<Chain, QueueError> {
        let size = self.config.size;
        if head >= size {
            return Err(QueueError::HeadOutOfRange { head, size });
        }
        let mut table = Table {
            gpa: self.config.desc_table,
            entries: size,
            indirect: false,
        };
        let mut chain = Chain {
            head,
            buffers: Vec::new(),
            readable: 0,
            readable_len: 0,
            writable_len: 0,
        };
        // Buffers still allowed: the spec bounds a chain, indirect part
        // included, by the queue size, and a loop runs into the bound.
        let mut budget = size;
        let mut total: u64 = 0;
        let mut index = head;
        loop {
            let desc = DescId {
                index,
                indirect: table.indirect,
            };
            // `index < table.entries`, so this stays inside the table, which
            // was checked to fit in guest memory without overflow.
            let d = Descriptor::read(mem, table.gpa + DESC_SIZE * u64::from(index), desc)?;
            if d.flags & DESC_F_INDIRECT != 0 {
                table = self.indirect_table(mem, desc, &d)?;
                index = 0;
                continue;
            }
            if budget == 0 {
                return Err(QueueError::ChainTooLong { size });
            }
            budget -= 1;
            mem.check_range(d.addr, u64::from(d.len))
                .map_err(|err| QueueError::BufferOutsideMemory { desc, err })?;
            total += u64::from(d.len);
            if total > u64::from(u32::MAX) {
                return Err(QueueError::ChainTooLarge { desc });
            }
            // `total` fits, so each part's sum does.
            if d.flags & DESC_F_WRITE != 0 {
                chain.writable_len += d.len;
            } else {
                if chain.buffers.len() > chain.readable {
                    return Err(QueueError::ReadableAfterWritable { desc });
                }
                chain.readable += 1;
                chain.readable_len += d.len;
            }
            chain.buffers.push(Buffer {
                gpa: d.addr,
                len: d.len,
            });
            if d.flags & DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            if d.next >= table.entries {
                return Err(QueueError::NextOutOfRange {
                    desc,
                    next: d.next,
                    limit: table.entries,
                });
            }
            index = d.next;
        }
    }

    /// The table an indirect descriptor `d` points to, validated.
    fn indirect_table<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        desc: DescId,
        d: &Descriptor,
    ) -> Result<Table, QueueError> {
        if desc.indirect {
            return Err(QueueError::NestedIndirect { desc });
        }
        if !self.config.features.indirect_desc {
            return Err(QueueError::IndirectNotNegotiated { desc });
        }
        if d.flags & DESC_F_NEXT != 0 {
            return Err(QueueError::IndirectWithNext { desc });
        }
        if d.len == 0 || !u64::from(d.len).is_multiple_of(DESC_SIZE) {
            return Err(QueueError::IndirectTableLength { desc, len: d.len });
        }
        let entries = d.len / DESC_SIZE as u32;
        let size = self.config.size;
        if entries > u32::from(size) {
            return Err(QueueError::IndirectTableTooLong {
                desc,
                entries,
                size,
            });
        }
        mem.check_range(d.addr, u64::from(d.len))
            .map_err(|err| QueueError::IndirectTableOutsideMemory { desc, err })?;
        Ok(Table {
            gpa: d.addr,
            // At most `size`, which is a `u16`.
            entries: entries as u16,
            indirect: true,
        })
    }
}

/// The spec's `vring_need_event` (§2.7.10): whether `event` is among the
/// indices `old..new` (free-running, so in wrapping arithmetic).
fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
