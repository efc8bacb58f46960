//! The ABI between the hypervisor and its unprivileged tasks.
//!
//! A task runs at EL0 in the EL2&0 translation regime (VHE with
//! `HCR_EL2.TGE = 1`): its own stage-1 table in TTBR0_EL2, tagged by an
//! ASID. It asks the hypervisor for things with `SVC #0`, the system call
//! number in `x8` and up to six arguments in `x0` to `x5`, as Linux on arm64
//! does; the hypervisor writes a [`Status`] to `x0` and a call's value, if it
//! has one, to `x1`.
//!
//! Everything here is pure logic, tested on the host: the numbers and their
//! decoding ([`Syscall::decode`]), where a task's memory is (the windows
//! from [`TASK_BASE`], [`Regions`]), whether a buffer a task names lies
//! inside memory it may use that way ([`Regions::locate`]), and the records
//! the hypervisor copies out to a device backend task ([`SlotSnapshot`],
//! [`DeviceInfo`]), and which of its VM's RAM a backend task may map
//! ([`GuestGrant`]). The hypervisor stops a task whose request breaks the
//! ABI, and refuses (with [`Status::Denied`]) one beyond its limits.

#![no_std]
#![deny(missing_docs)]

use core::fmt;

/// Size of a page: the 4 KiB translation granule.
pub const PAGE_SIZE: u64 = 4096;

/// First virtual address of every task: the start of level-0 entry 128 of a
/// 48-bit address space (64 TiB), far above every address the hypervisor's
/// identity map uses (RAM, its image and MMIO all lie below 1 TiB), so a
/// task's own translation subtree never shares a level-0 entry with it.
/// A task's program is linked here.
pub const TASK_BASE: u64 = 0x4000_0000_0000;

/// One past a task's last usable address: one level-0 entry (512 GiB).
pub const TASK_END: u64 = TASK_BASE + (512 << 30);

/// Bytes from [`TASK_BASE`] a program's segments may use.
pub const IMAGE_WINDOW: u64 = 1 << 30;

/// A task's initial stack pointer: the stack's pages end here, and an
/// unmapped gap below them catches an overflow.
pub const STACK_TOP: u64 = TASK_BASE + (2 << 30);

/// Most stack a task may have.
pub const MAX_STACK: u64 = 1 << 20;

/// Where a task that drives a device sees the device's registers.
pub const DEVICE_BASE: u64 = STACK_TOP;

/// Bytes from [`DEVICE_BASE`] device registers may use.
pub const DEVICE_WINDOW: u64 = 1 << 30;

/// Where a device backend task sees its VM's RAM: guest physical address
/// `ram_base + x` is task address `GUEST_RAM_BASE + x`.
pub const GUEST_RAM_BASE: u64 = TASK_BASE + (256 << 30);

/// Most VM RAM a backend task can map.
pub const GUEST_RAM_WINDOW: u64 = 256 << 30;

// The windows lie inside one level-0 entry, apart from each other.
const _: () = assert!(TASK_BASE.is_multiple_of(512 << 30));
const _: () = assert!(TASK_BASE + IMAGE_WINDOW <= STACK_TOP - MAX_STACK);
const _: () = assert!(DEVICE_BASE + DEVICE_WINDOW <= GUEST_RAM_BASE);
const _: () = assert!(GUEST_RAM_BASE + GUEST_RAM_WINDOW == TASK_END);

/// Longest message one `log` call may print.
pub const MAX_LOG_LEN: u64 = 256;

/// Doorbells shared by all tasks: `wait` and `signal` name one by its index.
pub const DOORBELLS: u64 = 16;

/// Virtio slots a backend task may serve: one event bit each.
pub const SLOTS: u64 = 32;

/// Longest single host-disk transfer (`disk_read`, `disk_write`).
pub const MAX_DISK_IO: u64 = 1 << 20;

/// Longest frame `net_send` and `net_recv` carry: an Ethernet frame with a
/// VLAN tag.
pub const MAX_FRAME: u64 = 1518;

/// Start flag (`x3`) of a device backend task: at the first disk flush its
/// VM asks for, ask to map the page just past the VM's RAM (which must be
/// refused), then unmap the VM's RAM and write to a page of it that was
/// just read, which must fault and stop the task: a test of the limits and
/// of the unmapping (a flush, because Linux sends none while it probes the
/// disk, so the guest decides when).
pub const FLAG_FAULT_TEST: u64 = 1;

/// `map_guest` flag: the task may write the pages (without it, read only).
pub const MAP_WRITE: u64 = 1;

/// System call numbers (`x8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Number {
    /// `log(ptr, len)`: print `len` bytes at `ptr` prefixed with the task's name.
    Log = 1,
    /// `exit(code)`: end the task.
    Exit = 2,
    /// `yield()`: give the CPU to whoever waits for it.
    Yield = 3,
    /// `wait(doorbell)`: sleep until the doorbell has been rung, then take one ring.
    Wait = 4,
    /// `signal(doorbell)`: ring the doorbell once, waking one waiter if any.
    Signal = 5,
    /// `wait_events() -> bits`: sleep until the task's own event bits are
    /// not all clear, then take (and clear) them all; bit `n` is virtio
    /// slot `n`.
    WaitEvents = 6,
    /// `slot_state(slot, ptr)`: copy the slot's [`SlotSnapshot`] to `ptr`
    /// and clear the queue notifications it reports.
    SlotState = 7,
    /// `device_info(slot, ptr)`: copy the slot's [`DeviceInfo`] to `ptr`.
    DeviceInfo = 8,
    /// `interrupt(slot)`: tell the VM the slot used buffers.
    Interrupt = 9,
    /// `device_failed(slot)`: the VM broke the device's rules; it needs a
    /// reset (virtio DEVICE_NEEDS_RESET).
    DeviceFailed = 10,
    /// `disk_read(slot, offset, ptr, len)`: read the slot's disk.
    DiskRead = 11,
    /// `disk_write(slot, offset, ptr, len)`: write the slot's disk.
    DiskWrite = 12,
    /// `disk_flush(slot)`: make the slot's disk writes durable.
    DiskFlush = 13,
    /// `net_send(slot, ptr, len)`: send a frame from the slot's port.
    NetSend = 14,
    /// `net_recv(slot, ptr, cap) -> len`: take the next frame for the
    /// slot's port (length 0: none waiting).
    NetRecv = 15,
    /// `map_guest(addr, len, flags) -> task address`: map `len` bytes of
    /// the VM's RAM from guest physical `addr` (both page-aligned) where
    /// [`GuestGrant::place`] puts them, read-only or, with [`MAP_WRITE`],
    /// read-write.
    MapGuest = 16,
    /// `unmap_guest(addr, len)`: remove exactly one earlier `map_guest`
    /// mapping; once the call returns, no CPU reaches those pages through
    /// the task's map.
    UnmapGuest = 17,
}

impl Number {
    /// Every number, in order.
    pub const ALL: [Self; 17] = [
        Self::Log,
        Self::Exit,
        Self::Yield,
        Self::Wait,
        Self::Signal,
        Self::WaitEvents,
        Self::SlotState,
        Self::DeviceInfo,
        Self::Interrupt,
        Self::DeviceFailed,
        Self::DiskRead,
        Self::DiskWrite,
        Self::DiskFlush,
        Self::NetSend,
        Self::NetRecv,
        Self::MapGuest,
        Self::UnmapGuest,
    ];

    /// The number for raw value `raw`, if it is one.
    pub fn from_raw(raw: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|n| *n as u64 == raw)
    }
}

/// One of the [`DOORBELLS`] doorbells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Doorbell(u8);

impl Doorbell {
    /// Doorbell `index`, if below [`DOORBELLS`].
    pub const fn new(index: u64) -> Option<Self> {
        if index < DOORBELLS {
            Some(Self(index as u8))
        } else {
            None
        }
    }

    /// Its index, below [`DOORBELLS`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A virtio slot number, below [`SLOTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Slot(u8);

impl Slot {
    /// Slot `index`, if below [`SLOTS`].
    pub const fn new(index: u64) -> Option<Self> {
        if index < SLOTS {
            Some(Self(index as u8))
        } else {
            None
        }
    }

    /// Its index, below [`SLOTS`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Its event bit.
    pub const fn bit(self) -> u64 {
        1 << self.0
    }
}

/// A task buffer: `len` bytes at task address `ptr` (not yet checked
/// against the task's memory).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Task virtual address.
    pub ptr: u64,
    /// Bytes.
    pub len: u64,
}

/// A decoded, validated system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// Print a message of at most [`MAX_LOG_LEN`] bytes.
    Log(Buffer),
    /// End the task with `code`.
    Exit {
        /// The task's exit code (0 for success).
        code: u64,
    },
    /// Give up the CPU.
    Yield,
    /// Wait for a ring of `doorbell`.
    Wait(Doorbell),
    /// Ring `doorbell`.
    Signal(Doorbell),
    /// Wait for event bits.
    WaitEvents,
    /// Copy a [`SlotSnapshot`] (of [`SlotSnapshot::BYTES`]) to `to`.
    SlotState {
        /// The slot.
        slot: Slot,
        /// Where to.
        to: Buffer,
    },
    /// Copy a [`DeviceInfo`] (of [`DeviceInfo::BYTES`]) to `to`.
    DeviceInfo {
        /// The slot.
        slot: Slot,
        /// Where to.
        to: Buffer,
    },
    /// Used-buffer interrupt for `slot`.
    Interrupt(Slot),
    /// `slot` needs a reset.
    DeviceFailed(Slot),
    /// Read the disk at byte `offset` into `to` (at most [`MAX_DISK_IO`]).
    DiskRead {
        /// The slot.
        slot: Slot,
        /// Byte offset in the slot's disk.
        offset: u64,
        /// Where to.
        to: Buffer,
    },
    /// Write `from` to the disk at byte `offset` (at most [`MAX_DISK_IO`]).
    DiskWrite {
        /// The slot.
        slot: Slot,
        /// Byte offset in the slot's disk.
        offset: u64,
        /// What.
        from: Buffer,
    },
    /// Flush the slot's disk.
    DiskFlush(Slot),
    /// Send a frame of at most [`MAX_FRAME`] bytes.
    NetSend {
        /// The slot.
        slot: Slot,
        /// The frame.
        from: Buffer,
    },
    /// Receive a frame into a buffer of [`MAX_FRAME`] bytes or more.
    NetRecv {
        /// The slot.
        slot: Slot,
        /// Where to.
        to: Buffer,
    },
    /// Map some of the VM's RAM.
    MapGuest {
        /// Which.
        pages: GuestPages,
        /// Whether the task may write them ([`MAP_WRITE`]).
        write: bool,
    },
    /// Remove a mapping [`Syscall::MapGuest`] made.
    UnmapGuest(GuestPages),
}

/// Pages of a VM's RAM a task names: guest physical `addr`, `len` bytes,
/// both page-aligned and `len` not zero (not yet checked against the VM's
/// RAM: that is [`GuestGrant::place`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPages {
    /// Guest physical address.
    pub addr: u64,
    /// Bytes.
    pub len: u64,
}

impl GuestPages {
    /// Whether they are whole pages: both page-aligned, and not empty.
    pub const fn whole(self) -> bool {
        self.len > 0 && self.addr.is_multiple_of(PAGE_SIZE) && self.len.is_multiple_of(PAGE_SIZE)
    }
}

impl fmt::Display for GuestPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest RAM {:#x}+{:#x}", self.addr, self.len)
    }
}

/// Why a system call was refused. A refused call stops the task: a task
/// that breaks the ABI is a broken task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallError {
    /// `x8` is no system call number.
    UnknownNumber(u64),
    /// A `log` longer than [`MAX_LOG_LEN`].
    LogTooLong(u64),
    /// A doorbell index at or above [`DOORBELLS`].
    NoSuchDoorbell(u64),
    /// A slot number at or above [`SLOTS`].
    NoSuchSlot(u64),
    /// A buffer of the wrong size for the call.
    BadLength {
        /// The call.
        call: Number,
        /// The length given.
        len: u64,
    },
    /// Guest RAM not named in whole pages (unaligned, or empty).
    NotPages {
        /// Guest physical address.
        addr: u64,
        /// Bytes.
        len: u64,
    },
    /// `map_guest` flags other than [`MAP_WRITE`].
    UnknownFlags(u64),
}

impl fmt::Display for SyscallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownNumber(n) => write!(f, "unknown system call number {n:#x}"),
            Self::LogTooLong(len) => write!(f, "log of {len} bytes (at most {MAX_LOG_LEN})"),
            Self::NoSuchDoorbell(d) => {
                write!(f, "doorbell {d} does not exist (there are {DOORBELLS})")
            }
            Self::NoSuchSlot(s) => write!(f, "slot {s} does not exist (there are {SLOTS})"),
            Self::BadLength { call, len } => write!(f, "{call:?} with a buffer of {len} bytes"),
            Self::NotPages { addr, len } => {
                write!(f, "guest RAM {addr:#x}+{len:#x} is not whole pages")
            }
            Self::UnknownFlags(flags) => write!(f, "unknown map flags {flags:#x}"),
        }
    }
}

impl Syscall {
    /// Decodes the call in `x8` (`number`) with `x0..x5` (`args`), checking
    /// every argument that can be checked without the task's memory.
    ///
    /// # Errors
    ///
    /// See [`SyscallError`].
    pub fn decode(number: u64, args: [u64; 6]) -> Result<Self, SyscallError> {
        let doorbell = |raw: u64| Doorbell::new(raw).ok_or(SyscallError::NoSuchDoorbell(raw));
        let slot = Slot::new(args[0]).ok_or(SyscallError::NoSuchSlot(args[0]));
        let call = Number::from_raw(number).ok_or(SyscallError::UnknownNumber(number))?;
        let pages = |addr: u64, len: u64| {
            let pages = GuestPages { addr, len };
            if pages.whole() {
                Ok(pages)
            } else {
                Err(SyscallError::NotPages { addr, len })
            }
        };
        // A buffer of exactly `len` bytes, or of `min..=max`.
        let buffer = |ptr: u64, len: u64, min: u64, max: u64| {
            if (min..=max).contains(&len) {
                Ok(Buffer { ptr, len })
            } else {
                Err(SyscallError::BadLength { call, len })
            }
        };
        Ok(match call {
            Number::Log if args[1] > MAX_LOG_LEN => return Err(SyscallError::LogTooLong(args[1])),
            Number::Log => Self::Log(Buffer {
                ptr: args[0],
                len: args[1],
            }),
            Number::Exit => Self::Exit { code: args[0] },
            Number::Yield => Self::Yield,
            Number::Wait => Self::Wait(doorbell(args[0])?),
            Number::Signal => Self::Signal(doorbell(args[0])?),
            Number::WaitEvents => Self::WaitEvents,
            Number::SlotState => Self::SlotState {
                slot: slot?,
                to: buffer(args[1], args[2], SlotSnapshot::BYTES, SlotSnapshot::BYTES)?,
            },
            Number::DeviceInfo => Self::DeviceInfo {
                slot: slot?,
                to: buffer(args[1], args[2], DeviceInfo::BYTES, DeviceInfo::BYTES)?,
            },
            Number::Interrupt => Self::Interrupt(slot?),
            Number::DeviceFailed => Self::DeviceFailed(slot?),
            Number::DiskRead => Self::DiskRead {
                slot: slot?,
                offset: args[1],
                to: buffer(args[2], args[3], 1, MAX_DISK_IO)?,
            },
            Number::DiskWrite => Self::DiskWrite {
                slot: slot?,
                offset: args[1],
                from: buffer(args[2], args[3], 1, MAX_DISK_IO)?,
            },
            Number::DiskFlush => Self::DiskFlush(slot?),
            Number::NetSend => Self::NetSend {
                slot: slot?,
                from: buffer(args[1], args[2], 1, MAX_FRAME)?,
            },
            Number::NetRecv => Self::NetRecv {
                slot: slot?,
                to: buffer(args[1], args[2], MAX_FRAME, u64::MAX)?,
            },
            Number::MapGuest if args[2] & !MAP_WRITE != 0 => {
                return Err(SyscallError::UnknownFlags(args[2]))
            }
            Number::MapGuest => Self::MapGuest {
                pages: pages(args[0], args[1])?,
                write: args[2] & MAP_WRITE != 0,
            },
            Number::UnmapGuest => Self::UnmapGuest(pages(args[0], args[1])?),
        })
    }
}

/// What a system call returns in `x0`. A call the hypervisor refuses
/// outright stops the task instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The slot has no such device.
    NoDevice = 1,
    /// Out of the device's range, or a write to a read-only disk.
    Denied = 2,
    /// The host device failed (the hypervisor logged why).
    Io = 3,
}

impl Status {
    /// The status for raw value `raw` (an unknown one is [`Status::Io`]).
    pub const fn from_raw(raw: u64) -> Self {
        match raw {
            0 => Self::Ok,
            1 => Self::NoDevice,
            2 => Self::Denied,
            _ => Self::Io,
        }
    }
}

/// How a task may use a region of its memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only (constants).
    Read,
    /// Read and execute (code).
    ReadExecute,
    /// Read and write (data, stack, a VM's RAM).
    ReadWrite,
    /// Device registers: read and write, never cached, never executed;
    /// never a system call's buffer.
    Device,
}

impl Access {
    /// Whether a system call may read a buffer here.
    pub const fn readable(self) -> bool {
        !matches!(self, Self::Device)
    }

    /// Whether a system call may write a buffer here.
    pub const fn writable(self) -> bool {
        matches!(self, Self::ReadWrite)
    }
}

/// One region of a task's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// First task address (page-aligned).
    pub start: u64,
    /// Bytes (a non-zero multiple of [`PAGE_SIZE`]).
    pub len: u64,
    /// What the task may do there.
    pub access: Access,
}

impl Region {
    /// One past its last address.
    pub const fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// Why a region cannot be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// Not page-aligned, empty, or not inside [`TASK_BASE`]..[`TASK_END`].
    Misplaced(Region),
    /// Overlaps a region already there.
    Overlaps(Region),
    /// [`MAX_REGIONS`] already.
    TooMany,
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misplaced(r) => write!(
                f,
                "region {:#x}+{:#x} is not page-aligned inside the task window",
                r.start, r.len
            ),
            Self::Overlaps(r) => write!(f, "region {:#x}+{:#x} overlaps another", r.start, r.len),
            Self::TooMany => write!(f, "more than {MAX_REGIONS} regions"),
        }
    }
}

/// Why a buffer a task named is not its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideTask {
    /// The task address.
    pub ptr: u64,
    /// Bytes from there.
    pub len: u64,
    /// Whether the call would write there.
    pub write: bool,
}

impl fmt::Display for OutsideTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at {:#x} are not inside one region the task may {}",
            self.len,
            self.ptr,
            if self.write { "write" } else { "read" }
        )
    }
}

/// No region is exactly `len` bytes at `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchRegion {
    /// Its first task address.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

impl fmt::Display for NoSuchRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no mapping is exactly {:#x}+{:#x}", self.start, self.len)
    }
}

/// Most regions a task has: a program's few segments, its stack, device
/// windows, and its `map_guest` mappings.
pub const MAX_REGIONS: usize = 64;

/// The VM RAM a device backend task may map with `map_guest`: the VM's
/// RAM, `size` bytes from guest physical `base`, and nothing else. Guest
/// physical `base + x` is always task address `GUEST_RAM_BASE + x`, so a
/// backend translates the addresses in the VM's rings without asking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestGrant {
    base: u64,
    size: u64,
}

/// Where `map_guest` puts pages: their region of the task's map, and their
/// offset in the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The task's region for them.
    pub region: Region,
    /// Bytes from the start of the VM's RAM.
    pub offset: u64,
}

/// Why a grant cannot be made, or pages not placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// The VM's RAM is not whole pages, or larger than [`GUEST_RAM_WINDOW`].
    BadRam {
        /// Guest physical base.
        base: u64,
        /// Bytes.
        size: u64,
    },
    /// The pages are not all inside the VM's RAM.
    Outside {
        /// What was asked for.
        pages: GuestPages,
        /// The VM's RAM: guest physical base.
        base: u64,
        /// The VM's RAM: bytes.
        size: u64,
    },
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRam { base, size } => write!(
                f,
                "VM RAM {base:#x}+{size:#x} is not whole pages within {GUEST_RAM_WINDOW:#x} bytes"
            ),
            Self::Outside { base, size, .. } => {
                write!(f, "outside the VM's RAM {base:#x}+{size:#x}")
            }
        }
    }
}

impl GuestGrant {
    /// The grant of a VM's RAM, `size` bytes from guest physical `base`.
    ///
    /// # Errors
    ///
    /// [`GrantError::BadRam`] unless both are page-aligned, `size` is not
    /// zero and at most [`GUEST_RAM_WINDOW`], and the RAM does not wrap.
    pub const fn new(base: u64, size: u64) -> Result<Self, GrantError> {
        let ram = GuestPages {
            addr: base,
            len: size,
        };
        let fits = ram.whole() && size <= GUEST_RAM_WINDOW && base.checked_add(size).is_some();
        if fits {
            Ok(Self { base, size })
        } else {
            Err(GrantError::BadRam { base, size })
        }
    }

    /// Where `pages` go in the task's map, with `access`.
    ///
    /// # Errors
    ///
    /// [`GrantError::Outside`] unless they all lie inside the VM's RAM.
    pub fn place(&self, pages: GuestPages, access: Access) -> Result<Placement, GrantError> {
        let outside = GrantError::Outside {
            pages,
            base: self.base,
            size: self.size,
        };
        let offset = pages.addr.checked_sub(self.base).ok_or(outside)?;
        let inside = offset
            .checked_add(pages.len)
            .is_some_and(|end| end <= self.size);
        if !inside {
            return Err(outside);
        }
        Ok(Placement {
            region: Region {
                start: GUEST_RAM_BASE + offset,
                len: pages.len,
                access,
            },
            offset,
        })
    }
}

/// A task's memory map: non-overlapping regions inside its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regions {
    regions: [Option<Region>; MAX_REGIONS],
}

impl Default for Regions {
    fn default() -> Self {
        Self::new()
    }
}

impl Regions {
    /// No regions.
    pub const fn new() -> Self {
        Self {
            regions: [None; MAX_REGIONS],
        }
    }

    /// Adds `region`; returns its index.
    ///
    /// # Errors
    ///
    /// See [`RegionError`].
    pub fn add(&mut self, region: Region) -> Result<usize, RegionError> {
        let placed = region.len > 0
            && region.start.is_multiple_of(PAGE_SIZE)
            && region.len.is_multiple_of(PAGE_SIZE)
            && region.start >= TASK_BASE
            && region
                .start
                .checked_add(region.len)
                .is_some_and(|end| end <= TASK_END);
        if !placed {
            return Err(RegionError::Misplaced(region));
        }
        if self
            .iter()
            .any(|r| r.start < region.end() && region.start < r.end())
        {
            return Err(RegionError::Overlaps(region));
        }
        let (index, free) = self
            .regions
            .iter_mut()
            .enumerate()
            .find(|(_, r)| r.is_none())
            .ok_or(RegionError::TooMany)?;
        *free = Some(region);
        Ok(index)
    }

    /// Removes the region that starts at `start` and has `len` bytes;
    /// returns its index and the region.
    ///
    /// # Errors
    ///
    /// [`NoSuchRegion`] if no region is exactly that.
    pub fn remove(&mut self, start: u64, len: u64) -> Result<(usize, Region), NoSuchRegion> {
        self.regions
            .iter_mut()
            .enumerate()
            .find_map(|(i, slot)| {
                slot.take_if(|r| r.start == start && r.len == len)
                    .map(|r| (i, r))
            })
            .ok_or(NoSuchRegion { start, len })
    }

    /// Region `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<Region> {
        self.regions.get(index).copied().flatten()
    }

    /// Every region.
    pub fn iter(&self) -> impl Iterator<Item = Region> + '_ {
        self.regions.iter().flatten().copied()
    }

    /// Where `len` bytes at task address `ptr` are, if they all lie in one
    /// region the task may read (or, with `write`, write): that region's
    /// index and the offset of `ptr` in it. An empty buffer is anywhere in
    /// such a region.
    ///
    /// # Errors
    ///
    /// [`OutsideTask`] otherwise (or if the range wraps around).
    pub fn locate(&self, ptr: u64, len: u64, write: bool) -> Result<(usize, u64), OutsideTask> {
        let outside = OutsideTask { ptr, len, write };
        let end = ptr.checked_add(len).ok_or(outside)?;
        self.regions
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .find(|(_, r)| {
                let allowed = if write {
                    r.access.writable()
                } else {
                    r.access.readable()
                };
                allowed && ptr >= r.start && ptr < r.end() && end <= r.end()
            })
            .map(|(i, r)| (i, ptr - r.start))
            .ok_or(outside)
    }
}

/// One queue of a slot as the VM's driver set it up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueSnapshot {
    /// Counts every change of the queue's setup (made ready, stopped,
    /// reset): a backend rebuilds its queue when this moves.
    pub generation: u64,
    /// Whether the driver made it ready.
    pub ready: bool,
    /// Entries.
    pub size: u16,
    /// Guest physical address of the descriptor table.
    pub desc: u64,
    /// Guest physical address of the driver (available) ring.
    pub driver: u64,
    /// Guest physical address of the device (used) ring.
    pub device: u64,
}

/// Queues per slot a snapshot carries.
pub const SNAPSHOT_QUEUES: usize = 2;

/// A virtio slot's transport state as a backend task needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// Counts device resets by the driver.
    pub resets: u64,
    /// Queues notified since the last snapshot (bit `n`: queue `n`).
    pub notified: u64,
    /// The features the driver accepted.
    pub features: u64,
    /// Its queues.
    pub queues: [QueueSnapshot; SNAPSHOT_QUEUES],
}

/// Words of a queue's part of a snapshot.
const QUEUE_WORDS: usize = 5;

impl SlotSnapshot {
    /// Words of its encoding.
    pub const WORDS: usize = 3 + SNAPSHOT_QUEUES * QUEUE_WORDS;
    /// Bytes of its encoding.
    pub const BYTES: u64 = Self::WORDS as u64 * 8;

    /// Its encoding: little-endian words.
    pub fn encode(&self) -> [u64; Self::WORDS] {
        let mut words = [0; Self::WORDS];
        words[..3].copy_from_slice(&[self.resets, self.notified, self.features]);
        for (q, chunk) in self.queues.iter().zip(words[3..].chunks_mut(QUEUE_WORDS)) {
            chunk.copy_from_slice(&[
                q.generation,
                u64::from(q.ready) | (u64::from(q.size) << 1),
                q.desc,
                q.driver,
                q.device,
            ]);
        }
        words
    }

    /// The snapshot `words` encode.
    pub fn decode(words: &[u64; Self::WORDS]) -> Self {
        let mut queues = [QueueSnapshot::default(); SNAPSHOT_QUEUES];
        for (q, chunk) in queues.iter_mut().zip(words[3..].chunks(QUEUE_WORDS)) {
            *q = QueueSnapshot {
                generation: chunk[0],
                ready: chunk[1] & 1 != 0,
                size: (chunk[1] >> 1) as u16,
                desc: chunk[2],
                driver: chunk[3],
                device: chunk[4],
            };
        }
        Self {
            resets: words[0],
            notified: words[1],
            features: words[2],
            queues,
        }
    }
}

/// What sits in a slot, for its backend task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// Nothing.
    None,
    /// A disk.
    Blk {
        /// Its size in 512-byte sectors.
        sectors: u64,
        /// Whether it refuses writes.
        read_only: bool,
        /// What `VIRTIO_BLK_T_GET_ID` answers (NUL-padded).
        serial: [u8; 20],
    },
    /// A network port.
    Net {
        /// Its MAC address.
        mac: [u8; 6],
    },
}

/// A slot's device, for its backend task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device.
    pub kind: DeviceKind,
}

impl DeviceInfo {
    /// Words of its encoding.
    pub const WORDS: usize = 6;
    /// Bytes of its encoding.
    pub const BYTES: u64 = Self::WORDS as u64 * 8;

    /// Its encoding: little-endian words.
    pub fn encode(&self) -> [u64; Self::WORDS] {
        let mut words = [0; Self::WORDS];
        match self.kind {
            DeviceKind::None => {}
            DeviceKind::Blk {
                sectors,
                read_only,
                serial,
            } => {
                words[0] = 1;
                words[1] = sectors;
                words[2] = u64::from(read_only);
                let mut bytes = [0u8; 24];
                bytes[..20].copy_from_slice(&serial);
                for (w, chunk) in words[3..].iter_mut().zip(bytes.chunks(8)) {
                    *w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                }
            }
            DeviceKind::Net { mac } => {
                words[0] = 2;
                let mut bytes = [0u8; 8];
                bytes[..6].copy_from_slice(&mac);
                words[1] = u64::from_le_bytes(bytes);
            }
        }
        words
    }

    /// The info `words` encode (an unknown kind is [`DeviceKind::None`]).
    pub fn decode(words: &[u64; Self::WORDS]) -> Self {
        let kind = match words[0] {
            1 => {
                let mut bytes = [0u8; 24];
                for (chunk, w) in bytes.chunks_mut(8).zip(&words[3..]) {
                    chunk.copy_from_slice(&w.to_le_bytes());
                }
                let mut serial = [0u8; 20];
                serial.copy_from_slice(&bytes[..20]);
                DeviceKind::Blk {
                    sectors: words[1],
                    read_only: words[2] != 0,
                    serial,
                }
            }
            2 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&words[1].to_le_bytes()[..6]);
                DeviceKind::Net { mac }
            }
            _ => DeviceKind::None,
        };
        Self { kind }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn region(start: u64, len: u64, access: Access) -> Region {
        Region { start, len, access }
    }

    #[test]
    fn decodes_every_call() {
        let a = |x0, x1, x2, x3| [x0, x1, x2, x3, 0, 0];
        let slot = |n| Slot::new(n).unwrap();
        let buf = |ptr, len| Buffer { ptr, len };
        let pages = |addr, len| GuestPages { addr, len };
        let cases = [
            (1, a(TASK_BASE, 5, 0, 0), Syscall::Log(buf(TASK_BASE, 5))),
            (2, a(7, 0, 0, 0), Syscall::Exit { code: 7 }),
            (3, a(0, 0, 0, 0), Syscall::Yield),
            (4, a(3, 0, 0, 0), Syscall::Wait(Doorbell::new(3).unwrap())),
            (
                5,
                a(15, 0, 0, 0),
                Syscall::Signal(Doorbell::new(15).unwrap()),
            ),
            (6, a(0, 0, 0, 0), Syscall::WaitEvents),
            (
                7,
                a(31, 8, SlotSnapshot::BYTES, 0),
                Syscall::SlotState {
                    slot: slot(31),
                    to: buf(8, SlotSnapshot::BYTES),
                },
            ),
            (
                8,
                a(1, 8, DeviceInfo::BYTES, 0),
                Syscall::DeviceInfo {
                    slot: slot(1),
                    to: buf(8, DeviceInfo::BYTES),
                },
            ),
            (9, a(2, 0, 0, 0), Syscall::Interrupt(slot(2))),
            (10, a(2, 0, 0, 0), Syscall::DeviceFailed(slot(2))),
            (
                11,
                a(0, 512, 16, MAX_DISK_IO),
                Syscall::DiskRead {
                    slot: slot(0),
                    offset: 512,
                    to: buf(16, MAX_DISK_IO),
                },
            ),
            (
                12,
                a(0, 0, 16, 1),
                Syscall::DiskWrite {
                    slot: slot(0),
                    offset: 0,
                    from: buf(16, 1),
                },
            ),
            (13, a(0, 0, 0, 0), Syscall::DiskFlush(slot(0))),
            (
                14,
                a(1, 64, 60, 0),
                Syscall::NetSend {
                    slot: slot(1),
                    from: buf(64, 60),
                },
            ),
            (
                15,
                a(1, 64, 4096, 0),
                Syscall::NetRecv {
                    slot: slot(1),
                    to: buf(64, 4096),
                },
            ),
            (
                16,
                a(0x4000_0000, 2 * PAGE_SIZE, MAP_WRITE, 0),
                Syscall::MapGuest {
                    pages: pages(0x4000_0000, 2 * PAGE_SIZE),
                    write: true,
                },
            ),
            (
                16,
                a(0x4000_0000, PAGE_SIZE, 0, 0),
                Syscall::MapGuest {
                    pages: pages(0x4000_0000, PAGE_SIZE),
                    write: false,
                },
            ),
            (
                17,
                a(0x4000_1000, PAGE_SIZE, 0, 0),
                Syscall::UnmapGuest(pages(0x4000_1000, PAGE_SIZE)),
            ),
        ];
        for (number, args, call) in cases {
            assert_eq!(Syscall::decode(number, args), Ok(call), "{number}");
        }
    }

    #[test]
    fn refuses_bad_calls() {
        let bad_len = |call, len| Err(SyscallError::BadLength { call, len });
        let cases = [
            (0, [0; 6], Err(SyscallError::UnknownNumber(0))),
            (18, [0; 6], Err(SyscallError::UnknownNumber(18))),
            (u64::MAX, [0; 6], Err(SyscallError::UnknownNumber(u64::MAX))),
            (
                1,
                [TASK_BASE, MAX_LOG_LEN + 1, 0, 0, 0, 0],
                Err(SyscallError::LogTooLong(MAX_LOG_LEN + 1)),
            ),
            (
                4,
                [DOORBELLS, 0, 0, 0, 0, 0],
                Err(SyscallError::NoSuchDoorbell(DOORBELLS)),
            ),
            (
                5,
                [u64::MAX, 0, 0, 0, 0, 0],
                Err(SyscallError::NoSuchDoorbell(u64::MAX)),
            ),
            (
                9,
                [SLOTS, 0, 0, 0, 0, 0],
                Err(SyscallError::NoSuchSlot(SLOTS)),
            ),
            (
                7,
                [0, 8, SlotSnapshot::BYTES - 1, 0, 0, 0],
                bad_len(Number::SlotState, SlotSnapshot::BYTES - 1),
            ),
            (11, [0, 0, 8, 0, 0, 0], bad_len(Number::DiskRead, 0)),
            (
                12,
                [0, 0, 8, MAX_DISK_IO + 1, 0, 0],
                bad_len(Number::DiskWrite, MAX_DISK_IO + 1),
            ),
            (
                14,
                [0, 8, MAX_FRAME + 1, 0, 0, 0],
                bad_len(Number::NetSend, MAX_FRAME + 1),
            ),
            (15, [0, 8, 64, 0, 0, 0], bad_len(Number::NetRecv, 64)),
            (
                16,
                [0x4000_0000, PAGE_SIZE, 2, 0, 0, 0],
                Err(SyscallError::UnknownFlags(2)),
            ),
            (
                16,
                [0x4000_0800, PAGE_SIZE, 0, 0, 0, 0],
                Err(SyscallError::NotPages {
                    addr: 0x4000_0800,
                    len: PAGE_SIZE,
                }),
            ),
            (
                16,
                [0x4000_0000, 0, MAP_WRITE, 0, 0, 0],
                Err(SyscallError::NotPages {
                    addr: 0x4000_0000,
                    len: 0,
                }),
            ),
            (
                17,
                [0x4000_0000, 100, 0, 0, 0, 0],
                Err(SyscallError::NotPages {
                    addr: 0x4000_0000,
                    len: 100,
                }),
            ),
        ];
        for (number, args, result) in cases {
            assert_eq!(Syscall::decode(number, args), result, "{number}");
        }
    }

    #[test]
    fn numbers_round_trip() {
        for n in Number::ALL {
            assert_eq!(Number::from_raw(n as u64), Some(n));
        }
    }

    #[test]
    fn regions_must_be_placed_and_apart() {
        let mut regions = Regions::new();
        let code = region(TASK_BASE, 2 * PAGE_SIZE, Access::ReadExecute);
        assert_eq!(regions.add(code), Ok(0));
        for bad in [
            region(TASK_BASE + 1, PAGE_SIZE, Access::Read),
            region(TASK_BASE + 8 * PAGE_SIZE, 7, Access::Read),
            region(TASK_BASE + 8 * PAGE_SIZE, 0, Access::Read),
            region(0x4008_0000, PAGE_SIZE, Access::Read),
            region(TASK_END, PAGE_SIZE, Access::Read),
            region(TASK_END - PAGE_SIZE, 2 * PAGE_SIZE, Access::Read),
            region(u64::MAX - PAGE_SIZE + 1, PAGE_SIZE, Access::Read),
        ] {
            assert_eq!(regions.add(bad), Err(RegionError::Misplaced(bad)));
        }
        let overlapping = region(TASK_BASE + PAGE_SIZE, PAGE_SIZE, Access::ReadWrite);
        assert_eq!(
            regions.add(overlapping),
            Err(RegionError::Overlaps(overlapping))
        );
        for i in 1..MAX_REGIONS as u64 {
            let r = region(TASK_BASE + 2 * i * PAGE_SIZE, PAGE_SIZE, Access::Read);
            assert!(regions.add(r).is_ok());
        }
        let one_more = region(STACK_TOP - PAGE_SIZE, PAGE_SIZE, Access::ReadWrite);
        assert_eq!(regions.add(one_more), Err(RegionError::TooMany));
    }

    #[test]
    fn regions_are_removed_only_whole() {
        let mut regions = sample();
        let ram = GUEST_RAM_BASE;
        let missing = |start, len| Err(NoSuchRegion { start, len });
        assert_eq!(regions.remove(ram, PAGE_SIZE), missing(ram, PAGE_SIZE));
        assert_eq!(
            regions.remove(ram + PAGE_SIZE, 15 * PAGE_SIZE),
            missing(ram + PAGE_SIZE, 15 * PAGE_SIZE)
        );
        let whole = region(ram, 16 * PAGE_SIZE, Access::ReadWrite);
        assert_eq!(regions.remove(ram, 16 * PAGE_SIZE), Ok((5, whole)));
        assert!(regions.locate(ram, 8, false).is_err(), "gone");
        assert_eq!(
            regions.remove(ram, 16 * PAGE_SIZE),
            missing(ram, 16 * PAGE_SIZE)
        );
        // Its slot is free again, and the other regions are untouched.
        assert_eq!(regions.add(whole), Ok(5));
        assert_eq!(regions.locate(TASK_BASE + 4, 10, false), Ok((0, 4)));
    }

    #[test]
    fn grants_place_only_the_vms_ram() {
        let (base, size) = (0x4000_0000, 256 << 20);
        let grant = GuestGrant::new(base, size).unwrap();
        let pages = |addr, len| GuestPages { addr, len };
        assert_eq!(
            grant.place(pages(base, size), Access::ReadWrite),
            Ok(Placement {
                region: region(GUEST_RAM_BASE, size, Access::ReadWrite),
                offset: 0,
            })
        );
        assert_eq!(
            grant.place(pages(base + size - PAGE_SIZE, PAGE_SIZE), Access::Read),
            Ok(Placement {
                region: region(GUEST_RAM_BASE + size - PAGE_SIZE, PAGE_SIZE, Access::Read),
                offset: size - PAGE_SIZE,
            })
        );
        for outside in [
            pages(base + size, PAGE_SIZE),
            pages(base - PAGE_SIZE, PAGE_SIZE),
            pages(base - PAGE_SIZE, 2 * PAGE_SIZE),
            pages(base + size - PAGE_SIZE, 2 * PAGE_SIZE),
            pages(base, size + PAGE_SIZE),
            pages(0, PAGE_SIZE),
            pages(base + PAGE_SIZE, u64::MAX - base),
            pages(u64::MAX - PAGE_SIZE + 1, PAGE_SIZE),
        ] {
            assert_eq!(
                grant.place(outside, Access::ReadWrite),
                Err(GrantError::Outside {
                    pages: outside,
                    base,
                    size
                }),
                "{outside}"
            );
        }
        for (base, size) in [
            (0x4000_0000, 0),
            (0x4000_0800, PAGE_SIZE),
            (0x4000_0000, 100),
            (0x4000_0000, GUEST_RAM_WINDOW + PAGE_SIZE),
            (u64::MAX - PAGE_SIZE + 1, PAGE_SIZE),
        ] {
            assert_eq!(
                GuestGrant::new(base, size),
                Err(GrantError::BadRam { base, size })
            );
        }
    }

    #[test]
    fn placed_pages_stay_in_the_ram_window() {
        let (base, size) = (0x8000_0000, 64 * PAGE_SIZE);
        let grant = GuestGrant::new(base, size).unwrap();
        let addrs = (0..=80).map(|p| base - 8 * PAGE_SIZE + p * PAGE_SIZE);
        for addr in addrs.chain([0, !(PAGE_SIZE - 1)]) {
            for len in [1, 2, 63, 64, 65, 1 << 40].map(|n| n * PAGE_SIZE) {
                let pages = GuestPages { addr, len };
                match grant.place(pages, Access::ReadWrite) {
                    Ok(Placement { region, offset }) => {
                        assert!(addr >= base && addr + len <= base + size, "{pages}");
                        assert_eq!(region.start, GUEST_RAM_BASE + offset);
                        assert_eq!(offset, addr - base);
                        assert!(region.end() <= GUEST_RAM_BASE + size);
                    }
                    Err(_) => assert!(
                        addr < base || addr.checked_add(len).is_none_or(|end| end > base + size),
                        "{pages}"
                    ),
                }
            }
        }
    }

    fn sample() -> Regions {
        let mut regions = Regions::new();
        for r in [
            region(TASK_BASE, PAGE_SIZE, Access::ReadExecute),
            region(TASK_BASE + PAGE_SIZE, PAGE_SIZE, Access::Read),
            region(TASK_BASE + 2 * PAGE_SIZE, 2 * PAGE_SIZE, Access::ReadWrite),
            region(STACK_TOP - PAGE_SIZE, PAGE_SIZE, Access::ReadWrite),
            region(DEVICE_BASE, PAGE_SIZE, Access::Device),
            region(GUEST_RAM_BASE, 16 * PAGE_SIZE, Access::ReadWrite),
        ] {
            regions.add(r).unwrap();
        }
        regions
    }

    #[test]
    fn locate_checks_bounds_and_access() {
        let regions = sample();
        assert_eq!(regions.locate(TASK_BASE + 4, 10, false), Ok((0, 4)));
        assert!(regions.locate(TASK_BASE + 4, 10, true).is_err(), "code");
        assert!(regions.locate(TASK_BASE + PAGE_SIZE, 8, true).is_err());
        assert_eq!(
            regions.locate(TASK_BASE + 2 * PAGE_SIZE + 8, PAGE_SIZE, true),
            Ok((2, 8))
        );
        assert!(
            regions.locate(TASK_BASE + PAGE_SIZE - 4, 8, false).is_err(),
            "across two regions"
        );
        assert!(regions.locate(DEVICE_BASE, 4, false).is_err(), "device");
        assert!(regions.locate(DEVICE_BASE, 4, true).is_err(), "device");
        assert!(
            regions.locate(0x4008_0000, 16, false).is_err(),
            "hypervisor"
        );
        assert!(regions.locate(u64::MAX - 2, 8, false).is_err(), "wraps");
        assert_eq!(
            regions.locate(STACK_TOP - 16, 16, true),
            Ok((3, PAGE_SIZE - 16))
        );
        assert!(regions.locate(STACK_TOP - 16, 17, true).is_err());
        assert!(regions.locate(STACK_TOP, 0, false).is_err(), "one past");
        assert_eq!(
            regions.locate(GUEST_RAM_BASE + PAGE_SIZE, 15 * PAGE_SIZE, true),
            Ok((5, PAGE_SIZE))
        );
    }

    #[test]
    fn locate_never_accepts_outside_bytes() {
        let regions = sample();
        let probes = [
            0,
            TASK_BASE - PAGE_SIZE,
            TASK_BASE,
            TASK_BASE + 5,
            TASK_BASE + 4 * PAGE_SIZE - 3,
            TASK_BASE + 4 * PAGE_SIZE,
            STACK_TOP - 1,
            STACK_TOP,
            DEVICE_BASE,
            GUEST_RAM_BASE - 1,
            GUEST_RAM_BASE + 16 * PAGE_SIZE - 1,
            u64::MAX,
        ];
        for &ptr in &probes {
            for len in [0, 1, 2, 7, PAGE_SIZE, 3 * PAGE_SIZE, u64::MAX] {
                for write in [false, true] {
                    if let Ok((i, offset)) = regions.locate(ptr, len, write) {
                        let r = regions.get(i).unwrap();
                        assert_eq!(r.start + offset, ptr);
                        assert!(ptr + len <= r.end(), "{ptr:#x}+{len}");
                        assert!(if write {
                            r.access.writable()
                        } else {
                            r.access.readable()
                        });
                    }
                }
            }
        }
    }

    #[test]
    fn snapshots_round_trip() {
        let snapshot = SlotSnapshot {
            resets: 3,
            notified: 0b10,
            features: 1 << 32 | 1 << 29,
            queues: [
                QueueSnapshot {
                    generation: 7,
                    ready: true,
                    size: 256,
                    desc: 0x4000_1000,
                    driver: 0x4000_2000,
                    device: 0x4000_3000,
                },
                QueueSnapshot::default(),
            ],
        };
        assert_eq!(SlotSnapshot::decode(&snapshot.encode()), snapshot);
        for kind in [
            DeviceKind::None,
            DeviceKind::Blk {
                sectors: 1 << 40,
                read_only: true,
                serial: *b"0123456789abcdefghij",
            },
            DeviceKind::Net {
                mac: [2, 0x2b, 0x20, 0xed, 0x85, 0xbb],
            },
        ] {
            let info = DeviceInfo { kind };
            assert_eq!(DeviceInfo::decode(&info.encode()), info);
        }
        assert_eq!(
            DeviceInfo::decode(&[9, 1, 2, 3, 4, 5]).kind,
            DeviceKind::None
        );
    }
}
