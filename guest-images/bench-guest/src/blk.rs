//! Just enough of a virtio-blk driver for the `blk-notify` benchmark: the
//! device in virtio-mmio slot 0 (where the hypervisor puts a VM's disk),
//! one request queue of [`QUEUE_SIZE`] entries in guest memory, and one
//! kind of request, `VIRTIO_BLK_T_GET_ID`, which the device answers from its
//! own serial without touching the host disk, so every request costs the
//! same.
//!
//! The driver negotiates only `VIRTIO_F_VERSION_1` and sets
//! `VIRTQ_AVAIL_F_NO_INTERRUPT`: it polls the used ring, so the device
//! injects no interrupt and the round trip is the notification, the
//! device's processing and the guest's poll. The queue memory is one static
//! (guest RAM is identity-mapped, so its addresses are the device's); one
//! [`BlkDevice`] at a time may use it. Dropping the device resets it.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::fmt;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::counter;

/// virtio-mmio slot 0 of QEMU `virt`: the VM's disk, if it has one.
pub const SLOT0: u64 = 0x0A00_0000;

/// virtio-mmio register offsets (virtio 1.2, 4.2.2).
const MAGIC_VALUE: u64 = 0x000;
const VERSION: u64 = 0x004;
const DEVICE_ID: u64 = 0x008;
const DEVICE_FEATURES: u64 = 0x010;
const DEVICE_FEATURES_SEL: u64 = 0x014;
const DRIVER_FEATURES: u64 = 0x020;
const DRIVER_FEATURES_SEL: u64 = 0x024;
const QUEUE_SEL: u64 = 0x030;
const QUEUE_NUM_MAX: u64 = 0x034;
const QUEUE_NUM: u64 = 0x038;
const QUEUE_READY: u64 = 0x044;
const QUEUE_NOTIFY: u64 = 0x050;
const STATUS: u64 = 0x070;
const QUEUE_DESC_LOW: u64 = 0x080;
const QUEUE_DESC_HIGH: u64 = 0x084;
const QUEUE_DRIVER_LOW: u64 = 0x090;
const QUEUE_DRIVER_HIGH: u64 = 0x094;
const QUEUE_DEVICE_LOW: u64 = 0x0a0;
const QUEUE_DEVICE_HIGH: u64 = 0x0a4;

/// MagicValue: "virt" in little-endian ASCII.
const MAGIC: u32 = 0x7472_6976;
/// Version of the non-legacy virtio-mmio transport.
const MMIO_VERSION: u32 = 2;
/// DeviceID of a block device; 0 is an empty slot.
const BLOCK_DEVICE: u32 = 2;

/// Device status bits (virtio 1.2, 2.1).
const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const DEVICE_NEEDS_RESET: u32 = 0x40;
const FAILED: u32 = 0x80;

/// `VIRTIO_F_VERSION_1`, feature bit 32: bit 0 of the second feature word.
const VERSION_1_WORD: u32 = 1;
const VERSION_1_BIT: u32 = 1 << 0;

/// The queue's entries: a request takes three descriptors, and only one is
/// in flight, so the smallest size the benchmark is specified with does.
pub const QUEUE_SIZE: u16 = 8;
const QUEUE_LEN: usize = QUEUE_SIZE as usize;

/// Descriptor flags (virtio 1.2, 2.7.5).
const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: the driver polls, no used-buffer interrupt.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// `VIRTIO_BLK_T_GET_ID` and the size of the ID it returns.
const T_GET_ID: u32 = 8;
const ID_BYTES: usize = 20;
/// `VIRTIO_BLK_S_OK`.
const S_OK: u8 = 0;
/// What the status byte holds before the device writes it: no status the
/// device defines, so a request it never answered cannot pass for one.
const STATUS_UNSET: u8 = 0xff;
/// The used length of an answered GET_ID: the ID and the status byte
/// (the bytes written from the start of the writable part, 2.7.8.2).
const GET_ID_USED_LEN: u32 = ID_BYTES as u32 + 1;
/// The request's first descriptor: the used element names it.
const HEAD: u16 = 0;

/// How long to wait for the used ring before giving up: 1 s of counter at
/// 1 GHz, as the other benchmarks wait.
const WAIT_TICKS: u64 = 1_000_000_000;

/// A split virtqueue descriptor.
#[repr(C)]
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// The descriptor table: 16-byte aligned (2.7.5).
#[repr(C, align(16))]
struct DescriptorTable([Descriptor; QUEUE_LEN]);

/// The driver area: 2-byte aligned.
#[repr(C, align(2))]
struct AvailRing {
    flags: u16,
    idx: u16,
    ring: [u16; QUEUE_LEN],
    used_event: u16,
}

#[repr(C)]
struct UsedElement {
    id: u32,
    len: u32,
}

/// The device area: 4-byte aligned.
#[repr(C, align(4))]
struct UsedRing {
    flags: u16,
    idx: u16,
    ring: [UsedElement; QUEUE_LEN],
    avail_event: u16,
}

/// `struct virtio_blk_req`'s header: type, reserved, sector.
#[repr(C)]
struct RequestHeader {
    request_type: u32,
    reserved: u32,
    sector: u64,
}

/// Everything the device reads or writes.
#[repr(C)]
struct QueueMemory {
    descriptors: DescriptorTable,
    avail: AvailRing,
    used: UsedRing,
    header: RequestHeader,
    id: [u8; ID_BYTES],
    status: u8,
}

const EMPTY_DESCRIPTOR: Descriptor = Descriptor {
    addr: 0,
    len: 0,
    flags: 0,
    next: 0,
};
const EMPTY_USED: UsedElement = UsedElement { id: 0, len: 0 };

/// The queue memory, shared with the device.
struct Shared(UnsafeCell<QueueMemory>);

// SAFETY: Only the holder of `IN_USE` touches the memory (and the device,
// which the holder set up), so there is no data race between vCPUs.
unsafe impl Sync for Shared {}

static MEMORY: Shared = Shared(UnsafeCell::new(QueueMemory {
    descriptors: DescriptorTable([EMPTY_DESCRIPTOR; QUEUE_LEN]),
    avail: AvailRing {
        flags: 0,
        idx: 0,
        ring: [0; QUEUE_LEN],
        used_event: 0,
    },
    used: UsedRing {
        flags: 0,
        idx: 0,
        ring: [EMPTY_USED; QUEUE_LEN],
        avail_event: 0,
    },
    header: RequestHeader {
        request_type: 0,
        reserved: 0,
        sector: 0,
    },
    id: [0; ID_BYTES],
    status: 0,
}));

/// Whether a [`BlkDevice`] holds [`MEMORY`].
static IN_USE: AtomicBool = AtomicBool::new(false);

/// What went wrong with the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// A register or ring field read other than the protocol requires.
    Read {
        /// What was read.
        what: &'static str,
        /// The value.
        got: u32,
        /// What it should have been.
        expected: u32,
    },
    /// The device does not offer `VIRTIO_F_VERSION_1`.
    NoVersion1,
    /// Queue 0 is smaller than [`QUEUE_SIZE`].
    QueueTooSmall(u32),
    /// The device's status has DEVICE_NEEDS_RESET or FAILED.
    DeviceStatus(u32),
    /// The used ring did not advance within [`WAIT_TICKS`].
    Timeout,
    /// The queue memory is already in use (a second [`BlkDevice`]).
    Busy,
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read {
                what,
                got,
                expected,
            } => write!(f, "virtio-blk {what} read {got:#x}, expected {expected:#x}"),
            Self::NoVersion1 => f.write_str("virtio-blk does not offer VIRTIO_F_VERSION_1"),
            Self::QueueTooSmall(max) => write!(
                f,
                "virtio-blk queue 0 has at most {max} entries, fewer than {QUEUE_SIZE}"
            ),
            Self::DeviceStatus(status) => {
                write!(
                    f,
                    "virtio-blk device status {status:#x} (needs reset or failed)"
                )
            }
            Self::Timeout => f.write_str("timed out waiting for virtio-blk's used ring"),
            Self::Busy => f.write_str("the virtio-blk queue memory is already in use"),
        }
    }
}

fn read32(address: u64) -> u32 {
    // SAFETY: `address` is a register of virtio-mmio slot 0, in the device
    // window `mmu` maps; the registers read here have no side effects.
    unsafe { (address as *const u32).read_volatile() }
}

fn write32(address: u64, value: u32) {
    // SAFETY: As for `read32`; the driver writes registers in the order the
    // virtio initialization sequence (3.1.1) asks for.
    unsafe { (address as *mut u32).write_volatile(value) }
}

/// A guest-physical address as the two 32-bit halves the registers take.
fn halves(address: u64) -> (u32, u32) {
    (address as u32, (address >> 32) as u32)
}

/// The virtio-blk device in slot 0, driven and ready for requests.
#[derive(Debug)]
pub struct BlkDevice {
    base: u64,
    /// The driver's next `avail.idx`.
    next_avail: u16,
    /// The `used.idx` last seen.
    used_seen: u16,
}

impl BlkDevice {
    /// Initializes the device in slot 0 (3.1.1) with queue 0 of
    /// [`QUEUE_SIZE`] entries; `Ok(None)` if the slot holds no block device
    /// (an empty slot, as under the KVM reference VMM).
    ///
    /// # Errors
    ///
    /// The slot is not a version 2 virtio-mmio transport, the device lacks
    /// `VIRTIO_F_VERSION_1` or refuses it, queue 0 is unusable, or the
    /// queue memory is in use.
    pub fn start() -> Result<Option<Self>, BlkError> {
        let base = SLOT0;
        let expect = |what, offset, expected| match read32(base + offset) {
            got if got == expected => Ok(()),
            got => Err(BlkError::Read {
                what,
                got,
                expected,
            }),
        };
        expect("MagicValue", MAGIC_VALUE, MAGIC)?;
        expect("Version", VERSION, MMIO_VERSION)?;
        if read32(base + DEVICE_ID) != BLOCK_DEVICE {
            return Ok(None);
        }
        if IN_USE.swap(true, Ordering::Acquire) {
            return Err(BlkError::Busy);
        }
        // From here on, dropping the device resets it and frees the memory.
        let device = Self {
            base,
            next_avail: 0,
            used_seen: 0,
        };
        device.set_status(0);
        // The reset may finish later than the write (4.2.3.1): wait for it.
        let start = counter::now();
        while read32(base + STATUS) != 0 {
            if counter::elapsed(start, WAIT_TICKS) {
                return Err(BlkError::Read {
                    what: "Status after reset",
                    got: read32(base + STATUS),
                    expected: 0,
                });
            }
        }
        device.set_status(ACKNOWLEDGE);
        device.set_status(ACKNOWLEDGE | DRIVER);

        write32(base + DEVICE_FEATURES_SEL, VERSION_1_WORD);
        if read32(base + DEVICE_FEATURES) & VERSION_1_BIT == 0 {
            return Err(BlkError::NoVersion1);
        }
        write32(base + DRIVER_FEATURES_SEL, 0);
        write32(base + DRIVER_FEATURES, 0);
        write32(base + DRIVER_FEATURES_SEL, VERSION_1_WORD);
        write32(base + DRIVER_FEATURES, VERSION_1_BIT);
        device.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        expect(
            "Status after FEATURES_OK",
            STATUS,
            ACKNOWLEDGE | DRIVER | FEATURES_OK,
        )?;

        write32(base + QUEUE_SEL, 0);
        expect("QueueReady of queue 0", QUEUE_READY, 0)?;
        let max = read32(base + QUEUE_NUM_MAX);
        if max < u32::from(QUEUE_SIZE) {
            return Err(BlkError::QueueTooSmall(max));
        }
        write32(base + QUEUE_NUM, u32::from(QUEUE_SIZE));
        let memory = MEMORY.0.get();
        // SAFETY: `IN_USE` gives this device the memory alone, and the
        // device does not touch it before QueueReady. Identity-mapped RAM:
        // the addresses are guest-physical.
        let (desc, driver, device_area) = unsafe {
            prepare(memory);
            (
                addr_of!((*memory).descriptors) as u64,
                addr_of!((*memory).avail) as u64,
                addr_of!((*memory).used) as u64,
            )
        };
        for (low, high, address) in [
            (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, desc),
            (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, driver),
            (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, device_area),
        ] {
            let (lo, hi) = halves(address);
            write32(base + low, lo);
            write32(base + high, hi);
        }
        // The rings' contents before the device may look at them.
        // SAFETY: A barrier.
        unsafe { asm!("dmb oshst", options(nostack, preserves_flags)) };
        write32(base + QUEUE_READY, 1);
        device.set_status(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        let status = read32(base + STATUS);
        if status & (DEVICE_NEEDS_RESET | FAILED) != 0 {
            return Err(BlkError::DeviceStatus(status));
        }
        Ok(Some(device))
    }

    fn set_status(&self, status: u32) {
        write32(self.base + STATUS, status);
    }

    /// One `VIRTIO_BLK_T_GET_ID` request, the benchmark's operation: the
    /// chain made available, the device notified, the used ring polled
    /// until the device has answered, and the answer checked.
    ///
    /// # Errors
    ///
    /// The device did not answer in time, or answered something else than
    /// the request's head with the ID and `VIRTIO_BLK_S_OK`.
    #[inline(always)]
    pub fn get_id(&mut self) -> Result<(), BlkError> {
        let memory = MEMORY.0.get();
        let slot = usize::from(self.next_avail % QUEUE_SIZE);
        self.next_avail = self.next_avail.wrapping_add(1);
        // SAFETY: This device holds the memory (`IN_USE`); the device reads
        // these fields only after the notification below.
        unsafe {
            addr_of_mut!((*memory).status).write_volatile(STATUS_UNSET);
            addr_of_mut!((*memory).avail.ring[slot]).write_volatile(HEAD);
            // The ring entry (and the status sentinel) before the index
            // that publishes it (2.7.13).
            asm!("dmb ishst", options(nostack, preserves_flags));
            addr_of_mut!((*memory).avail.idx).write_volatile(self.next_avail);
            // The index before the notification, as Linux's writel() orders
            // a device write after normal memory writes.
            asm!("dmb oshst", options(nostack, preserves_flags));
        }
        write32(self.base + QUEUE_NOTIFY, 0);

        let used = self.wait_for_used()?;
        // The used element and the buffers after the index (2.7.14).
        // SAFETY: A barrier.
        unsafe { asm!("dmb ishld", options(nostack, preserves_flags)) };
        let expected = self.used_seen.wrapping_add(1);
        if used != expected {
            return Err(BlkError::Read {
                what: "used.idx",
                got: used.into(),
                expected: expected.into(),
            });
        }
        let slot = usize::from(self.used_seen % QUEUE_SIZE);
        self.used_seen = used;
        // SAFETY: The device has returned the chain: it no longer writes
        // the element or the status byte.
        let (id, len, status) = unsafe {
            (
                addr_of!((*memory).used.ring[slot].id).read_volatile(),
                addr_of!((*memory).used.ring[slot].len).read_volatile(),
                addr_of!((*memory).status).read_volatile(),
            )
        };
        for (what, got, expected) in [
            ("used element's id", id, u32::from(HEAD)),
            ("used element's len", len, GET_ID_USED_LEN),
            ("request status", u32::from(status), u32::from(S_OK)),
        ] {
            if got != expected {
                return Err(BlkError::Read {
                    what,
                    got,
                    expected,
                });
            }
        }
        Ok(())
    }

    /// Polls `used.idx` until it moves past what was seen; returns it. The
    /// first look is without the clock, so an answer that is already there
    /// (a device that answers in the notifying exit) costs no counter read.
    ///
    /// Between later looks the loop says YIELD, as Linux's `cpu_relax()`
    /// does: a device that answers from another CPU (a backend task) gets
    /// to run. Under QEMU's single-threaded `-icount` emulation a CPU that
    /// spins without it keeps the others stopped until its time slice ends,
    /// so the round trip would measure QEMU's slices; QEMU takes YIELD as
    /// the cue to switch CPUs. (YIELD does not trap: the hypervisor sees
    /// nothing of it.)
    #[inline(always)]
    fn wait_for_used(&self) -> Result<u16, BlkError> {
        let memory = MEMORY.0.get();
        // SAFETY: Reads of a field the device writes; volatile, so every
        // poll reads memory.
        let used = || unsafe { addr_of!((*memory).used.idx).read_volatile() };
        let now = used();
        if now != self.used_seen {
            return Ok(now);
        }
        let start = counter::now();
        loop {
            // SAFETY: A hint.
            unsafe { asm!("yield", options(nomem, nostack, preserves_flags)) };
            let now = used();
            if now != self.used_seen {
                return Ok(now);
            }
            if counter::elapsed(start, WAIT_TICKS) {
                return Err(BlkError::Timeout);
            }
        }
    }
}

impl Drop for BlkDevice {
    /// Resets the device, which forgets the queue, and frees the memory.
    fn drop(&mut self) {
        self.set_status(0);
        IN_USE.store(false, Ordering::Release);
    }
}

/// Fills in the queue memory: the request's three descriptors (the 16-byte
/// header, read by the device; the 20-byte ID buffer and the status byte,
/// written by it), empty rings, and `VIRTQ_AVAIL_F_NO_INTERRUPT`.
///
/// # Safety
///
/// The caller holds `IN_USE`, and the device is not using the queue.
unsafe fn prepare(memory: *mut QueueMemory) {
    // SAFETY: The caller owns the memory; every pointer is into it.
    unsafe {
        addr_of_mut!((*memory).header).write_volatile(RequestHeader {
            request_type: T_GET_ID,
            reserved: 0,
            sector: 0,
        });
        let chain = [
            (
                addr_of!((*memory).header) as u64,
                size_of::<RequestHeader>() as u32,
                DESC_F_NEXT,
            ),
            (
                addr_of!((*memory).id) as u64,
                ID_BYTES as u32,
                DESC_F_NEXT | DESC_F_WRITE,
            ),
            (addr_of!((*memory).status) as u64, 1, DESC_F_WRITE),
        ];
        for (index, (addr, len, flags)) in chain.into_iter().enumerate() {
            let next = if flags & DESC_F_NEXT != 0 {
                index as u16 + 1
            } else {
                0
            };
            addr_of_mut!((*memory).descriptors.0[index]).write_volatile(Descriptor {
                addr,
                len,
                flags,
                next,
            });
        }
        addr_of_mut!((*memory).avail).write_volatile(AvailRing {
            flags: AVAIL_F_NO_INTERRUPT,
            idx: 0,
            ring: [0; QUEUE_LEN],
            used_event: 0,
        });
        addr_of_mut!((*memory).used).write_volatile(UsedRing {
            flags: 0,
            idx: 0,
            ring: [EMPTY_USED; QUEUE_LEN],
            avail_event: 0,
        });
        addr_of_mut!((*memory).status).write_volatile(STATUS_UNSET);
    }
}

// The layout virtio requires of the three areas, and the header's size.
const _: () = assert!(size_of::<Descriptor>() == 16);
const _: () = assert!(size_of::<RequestHeader>() == 16);
const _: () = assert!(core::mem::offset_of!(QueueMemory, descriptors) % 16 == 0);
const _: () = assert!(core::mem::offset_of!(QueueMemory, avail) % 2 == 0);
const _: () = assert!(core::mem::offset_of!(QueueMemory, used) % 4 == 0);
const _: () = assert!(size_of::<UsedRing>() == 4 + 8 * QUEUE_LEN + 4);
