//! The split queue: setup checks, every chain validation rule, used ring and
//! interrupt suppression.

use core::cell::RefCell;
use std::collections::HashMap;
use std::string::ToString;
use std::vec;
use std::vec::Vec;

use super::{Driver, VecMemory, BASE, DATA, INDIRECT, MEM_SIZE, NEXT, WRITE};
use crate::{
    Buffer, ChainPart, DescId, GuestMemory, MemError, Queue, QueueConfig, QueueError,
    QueueFeatures, RingArea, MAX_QUEUE_SIZE, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC,
    VIRTIO_F_VERSION_1,
};

const PLAIN: QueueFeatures = QueueFeatures {
    indirect_desc: false,
    event_idx: false,
};
const INDIRECT_ON: QueueFeatures = QueueFeatures {
    indirect_desc: true,
    event_idx: false,
};
const EVENT_IDX_ON: QueueFeatures = QueueFeatures {
    indirect_desc: false,
    event_idx: true,
};

fn desc(index: u16) -> DescId {
    DescId {
        index,
        indirect: false,
    }
}

fn idesc(index: u16) -> DescId {
    DescId {
        index,
        indirect: true,
    }
}

// ---- setup ----------------------------------------------------------------

#[test]
fn features_from_negotiated_bits() {
    assert_eq!(QueueFeatures::from_negotiated(0), PLAIN);
    assert_eq!(
        QueueFeatures::from_negotiated(VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC),
        INDIRECT_ON
    );
    assert_eq!(
        QueueFeatures::from_negotiated(VIRTIO_F_EVENT_IDX | VIRTIO_F_INDIRECT_DESC),
        QueueFeatures {
            indirect_desc: true,
            event_idx: true
        }
    );
}

#[test]
fn sizes_must_be_powers_of_two_up_to_32768() {
    let driver = Driver::new(8, PLAIN);
    for size in [0u16, 3, 6, 100, 300, 32769, 49152, u16::MAX] {
        let config = QueueConfig {
            size,
            ..driver.config
        };
        assert_eq!(
            Queue::new(config, &driver.mem).unwrap_err(),
            QueueError::InvalidSize { size },
            "size {size}"
        );
    }
    let mem = VecMemory::new(0, 2 << 20);
    for shift in 0..=15 {
        let size = 1u16 << shift;
        let config = QueueConfig {
            size,
            desc_table: 0,
            driver_ring: 1 << 20,
            device_ring: 3 << 19,
            features: PLAIN,
        };
        let queue = Queue::new(config, &mem).unwrap();
        assert_eq!(queue.size(), size);
    }
    assert_eq!(MAX_QUEUE_SIZE, 1 << 15);
    assert_eq!(
        QueueError::InvalidSize { size: 300 }.to_string(),
        "queue size 300 is not a power of two from 1 to 32768"
    );
}

#[test]
fn areas_must_be_aligned() {
    let driver = Driver::new(8, PLAIN);
    let cases = [
        (RingArea::DescriptorTable, 8, 16),
        (RingArea::DriverRing, 1, 2),
        (RingArea::DeviceRing, 2, 4),
    ];
    for (area, skew, align) in cases {
        let mut config = driver.config;
        let gpa = match area {
            RingArea::DescriptorTable => &mut config.desc_table,
            RingArea::DriverRing => &mut config.driver_ring,
            RingArea::DeviceRing => &mut config.device_ring,
        };
        *gpa += skew;
        let gpa = *gpa;
        assert_eq!(
            Queue::new(config, &driver.mem).unwrap_err(),
            QueueError::MisalignedArea { area, gpa, align }
        );
    }
    assert_eq!(
        QueueError::MisalignedArea {
            area: RingArea::DeviceRing,
            gpa: 0x4000_1002,
            align: 4
        }
        .to_string(),
        "device ring at 0x40001002 is not 4-byte aligned"
    );
}

#[test]
fn areas_must_be_inside_memory() {
    let driver = Driver::new(256, PLAIN);
    let end = driver.mem.end();
    // Each area just fits at the end of memory, and one step further does not.
    for area in [
        RingArea::DescriptorTable,
        RingArea::DriverRing,
        RingArea::DeviceRing,
    ] {
        let len = driver.config.area_len(area);
        let align = QueueConfig::area_align(area);
        let fits = (end - len) / align * align;
        let mut config = driver.config;
        let set = |config: &mut QueueConfig, gpa| match area {
            RingArea::DescriptorTable => config.desc_table = gpa,
            RingArea::DriverRing => config.driver_ring = gpa,
            RingArea::DeviceRing => config.device_ring = gpa,
        };
        set(&mut config, fits);
        Queue::new(config, &driver.mem).unwrap();
        let beyond = fits + 16;
        set(&mut config, beyond);
        assert_eq!(
            Queue::new(config, &driver.mem).unwrap_err(),
            QueueError::Area {
                area,
                err: MemError::OutOfRange { gpa: beyond, len }
            }
        );
        // Below memory, and wrapping around the address space.
        set(&mut config, 0);
        assert!(matches!(
            Queue::new(config, &driver.mem),
            Err(QueueError::Area { .. })
        ));
        let top = u64::MAX - 15;
        set(&mut config, top);
        assert_eq!(
            Queue::new(config, &driver.mem).unwrap_err(),
            QueueError::Area {
                area,
                err: MemError::Overflow { gpa: top, len }
            }
        );
    }
    assert_eq!(driver.config.area_len(RingArea::DescriptorTable), 4096);
    assert_eq!(driver.config.area_len(RingArea::DriverRing), 6 + 512);
    assert_eq!(driver.config.area_len(RingArea::DeviceRing), 6 + 2048);
}

// ---- pop: the simple cases ----------------------------------------------

#[test]
fn empty_ring_pops_nothing() {
    let driver = Driver::new(4, PLAIN);
    let mut queue = driver.queue();
    assert_eq!(queue.pop(&driver.mem), Ok(None));
    assert_eq!(queue.next_avail(), 0);
}

#[test]
fn pops_a_chain_in_order() {
    let mut driver = Driver::new(8, PLAIN);
    let head = driver.offer_chain(
        2,
        &[
            (DATA, 16, false),
            (DATA + 0x100, 512, false),
            (DATA + 0x1000, 1, true),
        ],
    );
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(chain.head(), head);
    assert_eq!(
        chain.readable(),
        &[
            Buffer { gpa: DATA, len: 16 },
            Buffer {
                gpa: DATA + 0x100,
                len: 512
            }
        ]
    );
    assert_eq!(
        chain.writable(),
        &[Buffer {
            gpa: DATA + 0x1000,
            len: 1
        }]
    );
    assert_eq!(chain.readable_len(), 528);
    assert_eq!(chain.writable_len(), 1);
    assert_eq!(queue.next_avail(), 1);
    assert_eq!(queue.in_flight(), 1);
    assert_eq!(queue.pop(&driver.mem), Ok(None));
}

#[test]
fn chains_with_only_readable_or_only_writable_buffers() {
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(0, &[(DATA, 8, false)]);
    driver.offer_chain(1, &[(DATA, 8, true), (DATA + 8, 8, true)]);
    let mut queue = driver.queue();
    let a = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!((a.readable().len(), a.writable().len()), (1, 0));
    let b = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!((b.readable().len(), b.writable().len()), (0, 2));
    assert_eq!(b.writable_len(), 16);
}

#[test]
fn descriptors_chain_in_any_order() {
    let mut driver = Driver::new(8, PLAIN);
    driver.desc(5, DATA, 4, NEXT, 1);
    driver.desc(1, DATA + 4, 4, NEXT, 7);
    driver.desc(7, DATA + 8, 4, WRITE, 0);
    driver.offer(5);
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    let gpas: Vec<u64> = chain
        .readable()
        .iter()
        .chain(chain.writable())
        .map(|b| b.gpa)
        .collect();
    assert_eq!(gpas, [DATA, DATA + 4, DATA + 8]);
}

#[test]
fn a_chain_of_exactly_size_buffers_is_accepted() {
    let mut driver = Driver::new(8, PLAIN);
    let buffers: Vec<(u64, u32, bool)> = (0..8).map(|i| (DATA + i * 16, 16, i >= 4)).collect();
    driver.offer_chain(0, &buffers);
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(chain.readable().len() + chain.writable().len(), 8);
}

#[test]
fn zero_length_buffers_are_kept() {
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(0, &[(DATA, 0, false), (DATA, 4, true)]);
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(chain.readable_len(), 0);
    assert_eq!(chain.readable().len(), 1);
}

// ---- pop: validation ------------------------------------------------------

#[test]
fn head_beyond_the_queue_is_refused() {
    let mut driver = Driver::new(8, PLAIN);
    driver.offer(8);
    let mut queue = driver.queue();
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::HeadOutOfRange { head: 8, size: 8 });
    assert_eq!(err.to_string(), "head descriptor 8 beyond queue size 8");
    // Not consumed: the same error again, nothing in flight.
    assert_eq!(queue.pop(&driver.mem).unwrap_err(), err);
    assert_eq!((queue.next_avail(), queue.in_flight()), (0, 0));
}

#[test]
fn next_beyond_the_queue_is_refused() {
    let mut driver = Driver::new(256, PLAIN);
    driver.desc(3, DATA, 4, NEXT, 7);
    driver.desc(7, DATA, 4, NEXT, 300);
    driver.offer(3);
    let mut queue = driver.queue();
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(
        err,
        QueueError::NextOutOfRange {
            desc: desc(7),
            next: 300,
            limit: 256
        }
    );
    assert_eq!(
        err.to_string(),
        "descriptor 7: next index 300 beyond queue size 256"
    );
}

#[test]
fn next_is_ignored_without_the_next_flag() {
    let mut driver = Driver::new(4, PLAIN);
    driver.desc(0, DATA, 4, 0, 9999);
    driver.offer(0);
    let mut queue = driver.queue();
    assert!(queue.pop(&driver.mem).unwrap().is_some());
}

#[test]
fn loops_are_refused() {
    for size in [1u16, 2, 8, 256] {
        let mut driver = Driver::new(size, PLAIN);
        // A self loop, and a loop through every descriptor.
        driver.desc(0, DATA, 4, NEXT, 0);
        driver.offer(0);
        let mut queue = driver.queue();
        let err = queue.pop(&driver.mem).unwrap_err();
        assert_eq!(err, QueueError::ChainTooLong { size });
        assert_eq!(
            err.to_string(),
            std::format!(
                "descriptor chain longer than the queue (loop?): more than {size} buffers"
            )
        );

        let mut driver = Driver::new(size, PLAIN);
        for i in 0..size {
            driver.desc(i, DATA, 4, NEXT, (i + 1) % size);
        }
        driver.offer(size - 1);
        let mut queue = driver.queue();
        assert_eq!(
            queue.pop(&driver.mem).unwrap_err(),
            QueueError::ChainTooLong { size }
        );
    }
}

#[test]
fn readable_after_writable_is_refused() {
    let mut driver = Driver::new(8, PLAIN);
    driver.offer_chain(0, &[(DATA, 4, false), (DATA, 4, true), (DATA, 4, false)]);
    let mut queue = driver.queue();
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::ReadableAfterWritable { desc: desc(2) });
    assert_eq!(
        err.to_string(),
        "descriptor 2: device-readable after a device-writable one"
    );
    // Even after a zero-length writable buffer.
    let mut driver = Driver::new(8, PLAIN);
    driver.offer_chain(0, &[(DATA, 0, true), (DATA, 4, false)]);
    let mut queue = driver.queue();
    assert_eq!(
        queue.pop(&driver.mem).unwrap_err(),
        QueueError::ReadableAfterWritable { desc: desc(1) }
    );
}

#[test]
fn buffers_outside_memory_are_refused() {
    let end = BASE + MEM_SIZE as u64;
    let cases = [
        // Ends one byte past memory.
        (
            end - 4,
            5,
            MemError::OutOfRange {
                gpa: end - 4,
                len: 5,
            },
        ),
        // Starts below memory.
        (
            BASE - 1,
            1,
            MemError::OutOfRange {
                gpa: BASE - 1,
                len: 1,
            },
        ),
        // Far away.
        (
            0x1_0000_0000_0000,
            16,
            MemError::OutOfRange {
                gpa: 0x1_0000_0000_0000,
                len: 16,
            },
        ),
        // Wraps around the address space.
        (
            u64::MAX - 1,
            16,
            MemError::Overflow {
                gpa: u64::MAX - 1,
                len: 16,
            },
        ),
        // A zero-length buffer past the end.
        (
            end + 1,
            0,
            MemError::OutOfRange {
                gpa: end + 1,
                len: 0,
            },
        ),
    ];
    for (gpa, len, err) in cases {
        let mut driver = Driver::new(4, PLAIN);
        driver.offer_chain(0, &[(DATA, 16, false), (gpa, len, true)]);
        let mut queue = driver.queue();
        assert_eq!(
            queue.pop(&driver.mem).unwrap_err(),
            QueueError::BufferOutsideMemory { desc: desc(1), err },
            "buffer [{gpa:#x}, +{len:#x})"
        );
    }
    // The last byte of memory is fine.
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(0, &[(end - 4, 4, false), (end, 0, true)]);
    assert!(driver.queue().pop(&driver.mem).unwrap().is_some());

    let err = QueueError::BufferOutsideMemory {
        desc: desc(7),
        err: MemError::OutOfRange {
            gpa: 0x8000_0000,
            len: 0x1000,
        },
    };
    assert_eq!(
        err.to_string(),
        "descriptor 7: buffer [0x80000000, +0x1000) outside guest memory"
    );
}

#[test]
fn total_length_must_fit_in_32_bits() {
    let mut driver = Driver::new(4, PLAIN);
    driver.mem.claimed = Some(1 << 34);
    driver.offer_chain(0, &[(DATA, u32::MAX, false), (DATA, 1, true)]);
    let mut queue = driver.queue();
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::ChainTooLarge { desc: desc(1) });
    assert_eq!(
        err.to_string(),
        "descriptor 1: descriptor chain's total length exceeds 4 GiB"
    );
    // Exactly u32::MAX is fine.
    let mut driver = Driver::new(4, PLAIN);
    driver.mem.claimed = Some(1 << 34);
    driver.offer_chain(0, &[(DATA, u32::MAX - 1, false), (DATA, 1, true)]);
    let chain = driver.queue().pop(&driver.mem).unwrap().unwrap();
    assert_eq!(
        chain.readable_len() as u64 + chain.writable_len() as u64,
        u32::MAX as u64
    );
}

#[test]
fn avail_index_may_move_by_at_most_the_queue_size() {
    let mut driver = Driver::new(4, PLAIN);
    for i in 0..4 {
        driver.desc(i, DATA, 4, 0, 0);
        driver.stage(i);
    }
    driver.publish();
    let mut queue = driver.queue();
    for _ in 0..4 {
        let chain = queue.pop(&driver.mem).unwrap().unwrap();
        queue.push_used(&driver.mem, chain.head(), 0).unwrap();
    }
    assert_eq!(queue.pop(&driver.mem), Ok(None));
    // Five more at once: one too many.
    driver.mem.put_u16(driver.config.driver_ring + 2, 9);
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(
        err,
        QueueError::AvailIndexJump {
            last: 4,
            avail_idx: 9,
            size: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "driver ring index moved from 4 to 9, more than the queue size 4"
    );
    // Going backwards is a jump of nearly 65536.
    driver.mem.put_u16(driver.config.driver_ring + 2, 3);
    assert!(matches!(
        queue.pop(&driver.mem),
        Err(QueueError::AvailIndexJump { avail_idx: 3, .. })
    ));
}

#[test]
fn indices_wrap_around_16_bits() {
    let mut driver = Driver::new(2, PLAIN);
    driver.desc(0, DATA, 4, WRITE, 0);
    driver.desc(1, DATA, 4, WRITE, 0);
    let mut queue = driver.queue();
    for round in 0..70_000u32 {
        let head = (round % 2) as u16;
        driver.offer(head);
        let chain = queue.pop(&driver.mem).unwrap().unwrap();
        assert_eq!(chain.head(), head);
        queue.push_used(&driver.mem, head, round).unwrap();
        let slot = round as u16;
        assert_eq!(driver.used(slot), (head as u32, round));
        assert_eq!(driver.used_idx(), slot.wrapping_add(1));
    }
    assert_eq!(queue.next_avail(), (70_000u32 % 65536) as u16);
    assert_eq!(queue.pop(&driver.mem), Ok(None));
}

#[test]
fn no_more_than_size_chains_in_flight() {
    let mut driver = Driver::new(2, PLAIN);
    driver.desc(0, DATA, 4, 0, 0);
    driver.desc(1, DATA, 4, 0, 0);
    driver.offer(0);
    driver.offer(1);
    let mut queue = driver.queue();
    queue.pop(&driver.mem).unwrap().unwrap();
    queue.pop(&driver.mem).unwrap().unwrap();
    // The driver offers head 0 again while it is in flight.
    driver.offer(0);
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::TooManyInFlight { size: 2 });
    assert!(err
        .to_string()
        .contains("more buffers than the queue size 2"));
}

#[test]
fn an_unreadable_ring_or_table_is_an_error_not_a_panic() {
    // Memory shrinks under a queue that was valid when created.
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(0, &[(DATA, 4, false)]);
    let mut queue = driver.queue();
    driver.mem.bytes.borrow_mut().truncate(0x20);
    assert!(matches!(
        queue.pop(&driver.mem),
        Err(QueueError::Area {
            area: RingArea::DriverRing,
            ..
        })
    ));
    // The descriptor table becomes unreadable.
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(3, &[(DATA, 4, false)]);
    let mut queue = driver.queue();
    let table = driver.config.desc_table;
    let watched = WatchedMemory {
        inner: &driver.mem,
        reads: RefCell::default(),
        after_read: Box::new(|_, _| {}),
        fail_read: Some(table + 3 * 16),
    };
    let err = queue.pop(&watched).unwrap_err();
    let gpa = table + 48;
    assert_eq!(
        err,
        QueueError::DescriptorUnreadable {
            desc: desc(3),
            err: MemError::OutOfRange { gpa, len: 16 }
        }
    );
    assert_eq!(
        err.to_string(),
        "descriptor 3: cannot read the descriptor: buffer [0x40000030, +0x10) outside guest memory"
    );
}

// ---- indirect descriptors -------------------------------------------------

/// Where test indirect tables go.
const ITABLE: u64 = DATA + 0x10_0000;

#[test]
fn indirect_is_refused_unless_negotiated() {
    let mut driver = Driver::new(4, PLAIN);
    driver.desc_at(ITABLE, 0, DATA, 16, 0, 0);
    driver.desc(1, ITABLE, 16, INDIRECT, 0);
    driver.offer(1);
    let mut queue = driver.queue();
    let err = queue.pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::IndirectNotNegotiated { desc: desc(1) });
    assert_eq!(
        err.to_string(),
        "descriptor 1: indirect without VIRTIO_F_INDIRECT_DESC negotiated"
    );
}

#[test]
fn an_indirect_table_at_the_head() {
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc_at(ITABLE, 0, DATA, 16, NEXT, 2);
    driver.desc_at(ITABLE, 2, DATA + 0x200, 512, NEXT, 1);
    driver.desc_at(ITABLE, 1, DATA + 0x1000, 1, WRITE, 0);
    // WRITE on the indirect descriptor itself is ignored (§2.7.5.3.2).
    driver.desc(3, ITABLE, 48, INDIRECT | WRITE, 0);
    driver.offer(3);
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(chain.head(), 3);
    assert_eq!(chain.readable_len(), 528);
    assert_eq!(
        chain.writable(),
        &[Buffer {
            gpa: DATA + 0x1000,
            len: 1
        }]
    );
}

#[test]
fn direct_descriptors_then_an_indirect_table() {
    // §2.7.5.3.2: "zero or more normal chained descriptors followed by a
    // single descriptor with flags&VIRTQ_DESC_F_INDIRECT".
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc(0, DATA, 16, NEXT, 1);
    driver.desc(1, ITABLE, 32, INDIRECT, 0);
    driver.desc_at(ITABLE, 0, DATA + 0x100, 8, NEXT, 1);
    driver.desc_at(ITABLE, 1, DATA + 0x200, 8, WRITE, 0);
    driver.offer(0);
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(chain.readable().len(), 2);
    assert_eq!(chain.writable().len(), 1);
    assert_eq!(chain.readable_len(), 24);

    // Readable inside the table after writable before it.
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc(0, DATA, 16, WRITE | NEXT, 1);
    driver.desc(1, ITABLE, 16, INDIRECT, 0);
    driver.desc_at(ITABLE, 0, DATA, 8, 0, 0);
    driver.offer(0);
    assert_eq!(
        driver.queue().pop(&driver.mem).unwrap_err(),
        QueueError::ReadableAfterWritable { desc: idesc(0) }
    );
}

#[test]
fn indirect_with_next_is_refused() {
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc_at(ITABLE, 0, DATA, 16, 0, 0);
    driver.desc(0, ITABLE, 16, INDIRECT | NEXT, 1);
    driver.desc(1, DATA, 16, WRITE, 0);
    driver.offer(0);
    let err = driver.queue().pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::IndirectWithNext { desc: desc(0) });
    assert_eq!(
        err.to_string(),
        "descriptor 0: both INDIRECT and NEXT flags set"
    );
}

#[test]
fn nested_indirect_is_refused() {
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc_at(ITABLE, 0, DATA, 16, NEXT, 1);
    driver.desc_at(ITABLE, 1, ITABLE, 32, INDIRECT, 0);
    driver.desc(0, ITABLE, 32, INDIRECT, 0);
    driver.offer(0);
    let err = driver.queue().pop(&driver.mem).unwrap_err();
    assert_eq!(err, QueueError::NestedIndirect { desc: idesc(1) });
    assert_eq!(
        err.to_string(),
        "indirect descriptor 1: indirect inside an indirect table"
    );
}

#[test]
fn indirect_table_length_must_be_whole_descriptors() {
    for len in [0u32, 8, 17, 33] {
        let mut driver = Driver::new(4, INDIRECT_ON);
        driver.desc(0, ITABLE, len, INDIRECT, 0);
        driver.offer(0);
        let err = driver.queue().pop(&driver.mem).unwrap_err();
        assert_eq!(err, QueueError::IndirectTableLength { desc: desc(0), len });
        assert!(err.to_string().contains("not a non-zero multiple of 16"));
    }
}

#[test]
fn indirect_tables_are_at_most_the_queue_size() {
    let mut driver = Driver::new(4, INDIRECT_ON);
    for i in 0..5 {
        driver.desc_at(ITABLE, i, DATA, 4, if i < 4 { NEXT } else { 0 }, i + 1);
    }
    driver.desc(0, ITABLE, 5 * 16, INDIRECT, 0);
    driver.offer(0);
    let err = driver.queue().pop(&driver.mem).unwrap_err();
    assert_eq!(
        err,
        QueueError::IndirectTableTooLong {
            desc: desc(0),
            entries: 5,
            size: 4
        }
    );
    assert_eq!(
        err.to_string(),
        "descriptor 0: indirect table of 5 descriptors longer than queue size 4"
    );
    // Exactly the queue size is fine, even from a direct descriptor (which
    // is not a buffer and does not count).
    let mut driver = Driver::new(4, INDIRECT_ON);
    for i in 0..4 {
        driver.desc_at(ITABLE, i, DATA, 4, if i < 3 { NEXT } else { 0 }, i + 1);
    }
    driver.desc(0, ITABLE, 4 * 16, INDIRECT, 0);
    driver.offer(0);
    assert_eq!(
        driver
            .queue()
            .pop(&driver.mem)
            .unwrap()
            .unwrap()
            .readable()
            .len(),
        4
    );
}

#[test]
fn buffers_and_indirect_table_count_together_against_the_queue_size() {
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc(0, DATA, 4, NEXT, 1);
    driver.desc(1, DATA, 4, NEXT, 2);
    driver.desc(2, ITABLE, 48, INDIRECT, 0);
    for i in 0..3 {
        driver.desc_at(ITABLE, i, DATA, 4, if i < 2 { NEXT } else { 0 }, i + 1);
    }
    driver.offer(0);
    assert_eq!(
        driver.queue().pop(&driver.mem).unwrap_err(),
        QueueError::ChainTooLong { size: 4 }
    );
}

#[test]
fn indirect_table_outside_memory_is_refused() {
    let end = BASE + MEM_SIZE as u64;
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc(0, end - 16, 32, INDIRECT, 0);
    driver.offer(0);
    let err = driver.queue().pop(&driver.mem).unwrap_err();
    assert_eq!(
        err,
        QueueError::IndirectTableOutsideMemory {
            desc: desc(0),
            err: MemError::OutOfRange {
                gpa: end - 16,
                len: 32
            }
        }
    );
    assert!(err
        .to_string()
        .starts_with("descriptor 0: indirect table: buffer"));
}

#[test]
fn next_and_loops_inside_an_indirect_table() {
    let mut driver = Driver::new(8, INDIRECT_ON);
    driver.desc_at(ITABLE, 0, DATA, 4, NEXT, 2);
    driver.desc(0, ITABLE, 32, INDIRECT, 0);
    driver.offer(0);
    let err = driver.queue().pop(&driver.mem).unwrap_err();
    assert_eq!(
        err,
        QueueError::NextOutOfRange {
            desc: idesc(0),
            next: 2,
            limit: 2
        }
    );
    assert_eq!(
        err.to_string(),
        "indirect descriptor 0: next index 2 beyond indirect table of 2"
    );

    let mut driver = Driver::new(8, INDIRECT_ON);
    driver.desc_at(ITABLE, 0, DATA, 4, NEXT, 1);
    driver.desc_at(ITABLE, 1, DATA, 4, NEXT, 0);
    driver.desc(0, ITABLE, 32, INDIRECT, 0);
    driver.offer(0);
    assert_eq!(
        driver.queue().pop(&driver.mem).unwrap_err(),
        QueueError::ChainTooLong { size: 8 }
    );
}

#[test]
fn indirect_buffers_outside_memory_are_refused() {
    let mut driver = Driver::new(4, INDIRECT_ON);
    driver.desc_at(ITABLE, 0, u64::MAX, 2, 0, 0);
    driver.desc(0, ITABLE, 16, INDIRECT, 0);
    driver.offer(0);
    assert_eq!(
        driver.queue().pop(&driver.mem).unwrap_err(),
        QueueError::BufferOutsideMemory {
            desc: idesc(0),
            err: MemError::Overflow {
                gpa: u64::MAX,
                len: 2
            }
        }
    );
}

// ---- reading each value once ---------------------------------------------

/// Runs after each read of the given address.
type ReadHook<'a> = Box<dyn Fn(&VecMemory, u64) + 'a>;

/// Memory that counts the reads of each address and can run a hook after
/// each read, to play a guest that rewrites memory while the device looks.
struct WatchedMemory<'a> {
    inner: &'a VecMemory,
    reads: RefCell<HashMap<u64, u32>>,
    after_read: ReadHook<'a>,
    /// A read at this address fails as if outside memory.
    fail_read: Option<u64>,
}

use std::boxed::Box;

impl GuestMemory for WatchedMemory<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        *self.reads.borrow_mut().entry(gpa).or_default() += 1;
        if self.fail_read == Some(gpa) {
            return Err(MemError::OutOfRange {
                gpa,
                len: buf.len() as u64,
            });
        }
        let result = self.inner.read(gpa, buf);
        (self.after_read)(self.inner, gpa);
        result
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        self.inner.write(gpa, data)
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.inner.check_range(gpa, len)
    }
}

#[test]
fn each_guest_value_is_read_once_per_pop() {
    let mut driver = Driver::new(8, INDIRECT_ON);
    driver.desc(0, DATA, 16, NEXT, 1);
    driver.desc(1, ITABLE, 32, INDIRECT, 0);
    driver.desc_at(ITABLE, 0, DATA + 16, 16, NEXT, 1);
    driver.desc_at(ITABLE, 1, DATA + 32, 1, WRITE, 0);
    driver.offer(0);
    let mut queue = driver.queue();
    let watched = WatchedMemory {
        inner: &driver.mem,
        reads: RefCell::default(),
        after_read: Box::new(|_, _| {}),
        fail_read: None,
    };
    queue.pop(&watched).unwrap().unwrap();
    let reads = watched.reads.into_inner();
    let ring = driver.config.driver_ring;
    let table = driver.config.desc_table;
    let expected: HashMap<u64, u32> = [
        (ring + 2, 1),
        (ring + 4, 1),
        (table, 1),
        (table + 16, 1),
        (ITABLE, 1),
        (ITABLE + 16, 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(reads, expected);
}

#[test]
fn a_descriptor_rewritten_after_it_was_read_changes_nothing() {
    // Right after the device copies descriptor 0, the guest makes its buffer
    // huge, outside memory, writable, and points `next` far away: the chain
    // keeps the values that were read and checked.
    let mut driver = Driver::new(8, PLAIN);
    driver.desc(0, DATA, 16, NEXT, 1);
    driver.desc(1, DATA + 16, 1, WRITE, 0);
    driver.offer(0);
    let table = driver.config.desc_table;
    let mut queue = driver.queue();
    let watched = WatchedMemory {
        inner: &driver.mem,
        reads: RefCell::default(),
        after_read: Box::new(move |mem: &VecMemory, gpa| {
            if gpa == table {
                let mut raw = [0u8; 16];
                raw[..8].copy_from_slice(&u64::MAX.to_le_bytes());
                raw[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
                raw[12..14].copy_from_slice(&(NEXT | WRITE).to_le_bytes());
                raw[14..].copy_from_slice(&9999u16.to_le_bytes());
                mem.put(table, &raw);
            }
        }),
        fail_read: None,
    };
    let chain = queue.pop(&watched).unwrap().unwrap();
    assert_eq!(chain.readable(), &[Buffer { gpa: DATA, len: 16 }]);
    assert_eq!(
        chain.writable(),
        &[Buffer {
            gpa: DATA + 16,
            len: 1
        }]
    );
    // The guest's change is there; the device just never looked again.
    assert_eq!(driver.mem.get_u16(table + 14), 9999);
}

// ---- chains: reading and writing -------------------------------------------

#[test]
fn chain_reads_and_writes_span_buffers() {
    let mut driver = Driver::new(8, PLAIN);
    driver.mem.put(DATA, b"hello, ");
    driver.mem.put(DATA + 0x100, b"world");
    driver.offer_chain(
        0,
        &[
            (DATA, 7, false),
            (DATA + 0x100, 5, false),
            (DATA + 0x200, 3, true),
            (DATA + 0x300, 0, true),
            (DATA + 0x400, 4, true),
        ],
    );
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    let mut all = [0u8; 12];
    chain.read(&driver.mem, 0, &mut all).unwrap();
    assert_eq!(&all, b"hello, world");
    let mut mid = [0u8; 4];
    chain.read(&driver.mem, 5, &mut mid).unwrap();
    assert_eq!(&mid, b", wo");
    chain.write(&driver.mem, 1, b"abcde").unwrap();
    assert_eq!(driver.mem.get(DATA + 0x200, 3), b"\0ab");
    assert_eq!(driver.mem.get(DATA + 0x400, 4), b"cde\0");

    let err = chain.read(&driver.mem, 10, &mut mid).unwrap_err();
    assert_eq!(
        err,
        QueueError::BeyondChain {
            part: ChainPart::Readable,
            offset: 10,
            len: 4,
            available: 12
        }
    );
    assert_eq!(
        err.to_string(),
        "access [0xa, +0x4) beyond the 12 readable bytes of the chain"
    );
    assert!(matches!(
        chain.write(&driver.mem, u64::MAX, b"x"),
        Err(QueueError::BeyondChain {
            part: ChainPart::Writable,
            ..
        })
    ));
    // Empty accesses at the very end are fine.
    chain.write(&driver.mem, 7, b"").unwrap();
    chain.read(&driver.mem, 12, &mut []).unwrap();
}

#[test]
fn segments_split_at_buffer_and_size_limits() {
    let mut driver = Driver::new(8, PLAIN);
    driver.offer_chain(
        0,
        &[
            (DATA, 10, true),
            (DATA + 100, 0, true),
            (DATA + 200, 10, true),
        ],
    );
    let chain = driver.queue().pop(&driver.mem).unwrap().unwrap();
    let pieces: Vec<Buffer> = chain
        .segments(ChainPart::Writable, 5, 10)
        .unwrap()
        .collect();
    assert_eq!(
        pieces,
        [
            Buffer {
                gpa: DATA + 5,
                len: 5
            },
            Buffer {
                gpa: DATA + 200,
                len: 5
            }
        ]
    );
    let mut segments = chain.segments(ChainPart::Writable, 0, 20).unwrap();
    let mut lens = vec![];
    while let Some(piece) = segments.next_up_to(4) {
        lens.push(piece.len);
    }
    assert_eq!(lens, [4, 4, 2, 4, 4, 2]);
    assert_eq!(segments.remaining(), 0);
    assert!(chain.segments(ChainPart::Writable, 0, 21).is_err());
    assert!(chain.segments(ChainPart::Readable, 0, 1).is_err());
    assert_eq!(
        chain.segments(ChainPart::Readable, 0, 0).unwrap().count(),
        0
    );
}

// ---- used ring -------------------------------------------------------------

#[test]
fn push_used_fills_the_element_then_the_index() {
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(2, &[(DATA, 4, true)]);
    let mut queue = driver.queue();
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    queue.push_used(&driver.mem, chain.head(), 3).unwrap();
    assert_eq!(driver.used(0), (2, 3));
    assert_eq!(driver.used_idx(), 1);
    assert_eq!(queue.next_used(), 1);
    assert_eq!(queue.in_flight(), 0);
}

#[test]
fn chains_may_be_returned_out_of_order() {
    let mut driver = Driver::new(4, PLAIN);
    driver.offer_chain(0, &[(DATA, 4, true)]);
    driver.offer_chain(1, &[(DATA, 4, true)]);
    let mut queue = driver.queue();
    let a = queue.pop(&driver.mem).unwrap().unwrap();
    let b = queue.pop(&driver.mem).unwrap().unwrap();
    queue.push_used(&driver.mem, b.head(), 0).unwrap();
    queue.push_used(&driver.mem, a.head(), 0).unwrap();
    assert_eq!(driver.used(0).0, 1);
    assert_eq!(driver.used(1).0, 0);
    assert_eq!(driver.used_idx(), 2);
}

#[test]
fn push_used_refuses_bad_heads_and_unpopped_chains() {
    let mut driver = Driver::new(4, PLAIN);
    let mut queue = driver.queue();
    let err = queue.push_used(&driver.mem, 0, 0).unwrap_err();
    assert_eq!(err, QueueError::UsedWithoutPop { head: 0 });
    assert_eq!(
        err.to_string(),
        "used head 0 returned with no chain in flight"
    );
    driver.offer_chain(0, &[(DATA, 4, true)]);
    queue.pop(&driver.mem).unwrap().unwrap();
    let err = queue.push_used(&driver.mem, 4, 0).unwrap_err();
    assert_eq!(err, QueueError::UsedHeadOutOfRange { head: 4, size: 4 });
    assert_eq!(err.to_string(), "used head 4 beyond queue size 4");
    assert_eq!(driver.used_idx(), 0);
}

// ---- interrupts --------------------------------------------------------------

fn round_trip(driver: &mut Driver, queue: &mut Queue) {
    driver.offer_chain(0, &[(DATA, 4, true)]);
    let chain = queue.pop(&driver.mem).unwrap().unwrap();
    queue.push_used(&driver.mem, chain.head(), 4).unwrap();
}

#[test]
fn interrupts_follow_the_no_interrupt_flag() {
    let mut driver = Driver::new(4, PLAIN);
    let mut queue = driver.queue();
    // Nothing used: no interrupt.
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    round_trip(&mut driver, &mut queue);
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(true));
    // Consumed.
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    driver.set_avail_flags(1);
    round_trip(&mut driver, &mut queue);
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    driver.set_avail_flags(0);
    round_trip(&mut driver, &mut queue);
    round_trip(&mut driver, &mut queue);
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(true));
}

#[test]
fn interrupts_follow_used_event() {
    let mut driver = Driver::new(8, EVENT_IDX_ON);
    let mut queue = driver.queue();
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    // The first batch always interrupts.
    driver.set_used_event(100);
    round_trip(&mut driver, &mut queue);
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(true));
    // used_event = 2: interrupt when used.idx passes 2, i.e. reaches 3.
    driver.set_used_event(2);
    round_trip(&mut driver, &mut queue); // used.idx 2
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    round_trip(&mut driver, &mut queue); // 3
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(true));
    // A batch that jumps over the event index still interrupts.
    driver.set_used_event(4);
    for _ in 0..3 {
        round_trip(&mut driver, &mut queue); // 4, 5, 6
    }
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(true));
    // An event index already behind: no interrupt; the flags are ignored.
    driver.set_used_event(5);
    driver.set_avail_flags(0);
    round_trip(&mut driver, &mut queue); // 7
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    // Across the 16-bit wrap.
    for _ in 0..(65536 - 7 - 1) {
        round_trip(&mut driver, &mut queue);
    }
    assert_eq!(queue.next_used(), 65535);
    let _ = queue.needs_interrupt(&driver.mem);
    driver.set_used_event(0);
    round_trip(&mut driver, &mut queue); // 0
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(false));
    round_trip(&mut driver, &mut queue); // 1: used_event 0 passed
    assert_eq!(queue.needs_interrupt(&driver.mem), Ok(true));
}

#[test]
fn avail_event_asks_for_the_next_buffer_when_the_ring_is_empty() {
    let mut driver = Driver::new(8, EVENT_IDX_ON);
    let mut queue = driver.queue();
    driver
        .mem
        .put_u16(driver.config.device_ring + 4 + 8 * 8, 0xdead);
    assert_eq!(queue.pop(&driver.mem), Ok(None));
    assert_eq!(driver.avail_event(), 0);
    driver.offer_chain(0, &[(DATA, 4, true)]);
    driver.offer_chain(1, &[(DATA, 4, true)]);
    queue.pop(&driver.mem).unwrap().unwrap();
    queue.pop(&driver.mem).unwrap().unwrap();
    assert_eq!(queue.pop(&driver.mem), Ok(None));
    assert_eq!(driver.avail_event(), 2);

    // Without EVENT_IDX the device area's tail is not touched.
    let driver = Driver::new(8, PLAIN);
    let mut queue = driver.queue();
    driver
        .mem
        .put_u16(driver.config.device_ring + 4 + 8 * 8, 0xdead);
    assert_eq!(queue.pop(&driver.mem), Ok(None));
    assert_eq!(driver.avail_event(), 0xdead);
}

/// Memory that plays a driver adding a buffer right after the device wrote
/// `avail_event`, before the device looks again.
struct RacingDriver<'a> {
    driver: RefCell<&'a mut Driver>,
    avail_event_gpa: u64,
}

impl GuestMemory for RacingDriver<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        self.driver.borrow().mem.read(gpa, buf)
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let mut driver = self.driver.borrow_mut();
        driver.mem.write(gpa, data)?;
        if gpa == self.avail_event_gpa {
            driver.offer_chain(3, &[(DATA, 4, true)]);
        }
        Ok(())
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        self.driver.borrow().mem.check_range(gpa, len)
    }
}

#[test]
fn a_buffer_added_while_asking_for_notification_is_not_missed() {
    let mut driver = Driver::new(8, EVENT_IDX_ON);
    let mut queue = driver.queue();
    let avail_event_gpa = driver.config.device_ring + 4 + 8 * 8;
    let racing = RacingDriver {
        driver: RefCell::new(&mut driver),
        avail_event_gpa,
    };
    let chain = queue.pop(&racing).unwrap().unwrap();
    assert_eq!(chain.head(), 3);
}
