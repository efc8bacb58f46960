//! `SlotBackend`: requests and frames through a slot's queues, failure and
//! reset.

use std::vec;
use std::vec::Vec;

use super::{Buf, DriverQueue, MemDisk, Ram, BASE, DATA, RAM_SIZE, SIZE};
use crate::{
    BlkDevice, Device, QueueConfig, QueueError, QueueFeatures, SlotBackend, BACKLOG_FRAMES,
};
use virtqueue::blk::{
    serial_from_str, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtqueue::{RingArea, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use vswitch::{NetDevice, HEADER_SIZE, RX_QUEUE, TX_QUEUE};

const SECTORS: usize = 16;
const HEADER: u64 = DATA;
const PAYLOAD: u64 = DATA + 0x1000;
const STATUS: u64 = DATA + 0x3000;
const MAC_A: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 1];
const MAC_B: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 2];

type Blk = SlotBackend<MemDisk>;

fn blk() -> Blk {
    SlotBackend::new(Device::Blk {
        device: BlkDevice::new(SECTORS as u64, false, serial_from_str("vm0")),
        disk: MemDisk::new(SECTORS),
    })
}

fn net(mac: [u8; 6]) -> Blk {
    SlotBackend::new(Device::net(mac))
}

fn disk(slot: &Blk) -> &MemDisk {
    match slot.device() {
        Device::Blk { disk, .. } => disk,
        Device::Net { .. } => panic!("a disk"),
    }
}

fn backlog_len(slot: &Blk) -> usize {
    match slot.device() {
        Device::Net { backlog, .. } => backlog.len(),
        Device::Blk { .. } => panic!("a network port"),
    }
}

/// A started queue `n` of `slot` and its driver side.
fn start(slot: &mut Blk, ram: &Ram, n: u16) -> DriverQueue {
    let driver = DriverQueue::new(u64::from(n));
    slot.start_queue(n, driver.config, &ram.view)
        .expect("valid test queue");
    assert!(slot.queue(n).is_some());
    driver
}

/// Offers a virtio-blk request of `kind` for `sector` with `data` bytes of
/// payload (read from [`PAYLOAD`] for a write, written there otherwise).
fn request(driver: &mut DriverQueue, ram: &Ram, kind: u32, sector: u64, data: u32) {
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&kind.to_le_bytes());
    header[8..].copy_from_slice(&sector.to_le_bytes());
    ram.put(HEADER, &header);
    ram.put(STATUS, &[0xff]);
    let mut bufs = vec![Buf::r(HEADER, 16)];
    if data > 0 {
        bufs.push(if kind == VIRTIO_BLK_T_OUT {
            Buf::r(PAYLOAD, data)
        } else {
            Buf::w(PAYLOAD, data)
        });
    }
    bufs.push(Buf::w(STATUS, 1));
    driver.offer(ram, &bufs);
}

fn status(ram: &Ram) -> u8 {
    ram.get(STATUS, 1)[0]
}

#[test]
fn device_describes_itself() {
    let slot = blk();
    let blk_device = BlkDevice::new(SECTORS as u64, false, serial_from_str("vm0"));
    assert_eq!(slot.device().queue_count(), 1);
    assert_eq!(
        slot.device().queue_size_max(),
        virtqueue::blk::QUEUE_SIZE_MAX
    );
    assert_eq!(slot.device().features(), blk_device.features());
    assert_eq!(slot.device().config_space(), blk_device.config_space());
    assert!(!slot.device().is_net());
    let port = net(MAC_A);
    assert_eq!(port.device().queue_count(), 2);
    assert_eq!(port.device().queue_size_max(), vswitch::QUEUE_SIZE_MAX);
    assert_eq!(port.device().features(), NetDevice::new(MAC_A).features());
    assert_eq!(
        port.device().config_space(),
        NetDevice::new(MAC_A).config_space()
    );
    assert!(port.device().is_net());
    match port.device() {
        Device::Net { backlog, .. } => assert_eq!(backlog.capacity(), BACKLOG_FRAMES),
        Device::Blk { .. } => unreachable!(),
    }
    assert!(!port.is_broken());
    assert!(port.queue(RX_QUEUE).is_none() && port.queue(TX_QUEUE).is_none());
}

#[test]
fn blk_writes_reads_identifies_and_flushes() {
    let ram = Ram::new();
    let mut slot = blk();
    let mut driver = start(&mut slot, &ram, 0);
    let mut sent = Vec::new();

    let pattern: Vec<u8> = (0..1024).map(|i| (i % 253) as u8).collect();
    ram.put(PAYLOAD, &pattern);
    request(&mut driver, &ram, VIRTIO_BLK_T_OUT, 3, 1024);
    assert_eq!(slot.notified(0, &ram.view, &mut sent), Ok(true));
    assert_eq!(driver.used(&ram), [(0, 1)]);
    assert_eq!(status(&ram), 0);
    assert_eq!(&disk(&slot).bytes[3 * 512..5 * 512], &pattern[..]);

    ram.put(PAYLOAD, &[0; 1024]);
    request(&mut driver, &ram, VIRTIO_BLK_T_IN, 3, 1024);
    assert_eq!(slot.notified(0, &ram.view, &mut sent), Ok(true));
    assert_eq!(driver.used(&ram), [(3, 1025)]);
    assert_eq!(status(&ram), 0);
    assert_eq!(ram.get(PAYLOAD, 1024), pattern);

    request(&mut driver, &ram, VIRTIO_BLK_T_GET_ID, 0, 20);
    assert_eq!(slot.notified(0, &ram.view, &mut sent), Ok(true));
    assert_eq!(driver.used(&ram), [(6, 21)]);
    assert_eq!(ram.get(PAYLOAD, 20), serial_from_str("vm0"));

    request(&mut driver, &ram, VIRTIO_BLK_T_FLUSH, 0, 0);
    assert_eq!(slot.notified(0, &ram.view, &mut sent), Ok(true));
    assert_eq!(driver.used(&ram), [(9, 1)]);
    assert_eq!(disk(&slot).flushes, 1);
    assert!(sent.is_empty(), "a disk sends no frames");

    // Nothing new: no interrupt.
    assert_eq!(slot.notified(0, &ram.view, &mut sent), Ok(false));
}

#[test]
fn several_requests_in_one_notification() {
    let ram = Ram::new();
    let mut slot = blk();
    let mut driver = start(&mut slot, &ram, 0);
    for _ in 0..4 {
        request(&mut driver, &ram, VIRTIO_BLK_T_FLUSH, 0, 0);
    }
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(true));
    assert_eq!(driver.used(&ram).len(), 4);
    assert_eq!(disk(&slot).flushes, 4);
}

#[test]
fn disk_errors_reach_the_guest_as_a_status() {
    let ram = Ram::new();
    let mut slot = blk();
    let mut driver = start(&mut slot, &ram, 0);
    if let Device::Blk { disk, .. } = slot.device_mut() {
        disk.failing = true;
    }
    request(&mut driver, &ram, VIRTIO_BLK_T_IN, 0, 512);
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(true));
    assert_eq!(status(&ram), 1, "VIRTIO_BLK_S_IOERR");
    assert!(!slot.is_broken());
    // Past the capacity: refused before the disk is asked.
    request(&mut driver, &ram, VIRTIO_BLK_T_IN, SECTORS as u64, 512);
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(true));
    assert_eq!(status(&ram), 1);
}

#[test]
fn the_driver_may_suppress_interrupts() {
    let ram = Ram::new();
    let mut slot = blk();
    let mut driver = start(&mut slot, &ram, 0);
    driver.suppress_interrupts(&ram, true);
    request(&mut driver, &ram, VIRTIO_BLK_T_FLUSH, 0, 0);
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(false));
    assert_eq!(driver.used(&ram).len(), 1, "done all the same");
}

/// A transmit packet: a zero header, then a frame from `src` to `dst`.
fn frame(dst: [u8; 6], src: [u8; 6], payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend((0..payload).map(|i| i as u8));
    frame
}

#[test]
fn net_frames_go_out_and_come_in() {
    let (ram_a, ram_b) = (Ram::new(), Ram::new());
    let mut a = net(MAC_A);
    let mut b = net(MAC_B);
    let mut tx = start(&mut a, &ram_a, TX_QUEUE);

    // A sends two frames in one notification.
    let first = frame(MAC_B, MAC_A, 50);
    let second = frame(MAC_B, MAC_A, 1000);
    let mut at = DATA;
    for f in [&first, &second] {
        ram_a.put(at, &[0; HEADER_SIZE]);
        ram_a.put(at + HEADER_SIZE as u64, f);
        tx.offer(&ram_a, &[Buf::r(at, (HEADER_SIZE + f.len()) as u32)]);
        at += 0x1000;
    }
    let mut sent = Vec::new();
    assert_eq!(a.notified(TX_QUEUE, &ram_a.view, &mut sent), Ok(true));
    assert_eq!(sent, [first.clone(), second.clone()]);
    assert_eq!(tx.used(&ram_a), [(0, 0), (1, 0)]);

    // B has no receive queue yet: both wait.
    for f in &sent {
        assert_eq!(b.deliver(f, &ram_b.view), Ok(false));
    }
    assert_eq!(backlog_len(&b), 2);

    // B posts one buffer: the first frame fills it on notification.
    let mut rx = start(&mut b, &ram_b, RX_QUEUE);
    assert_eq!(backlog_len(&b), 2, "starting a queue delivers nothing");
    rx.offer(&ram_b, &[Buf::w(DATA, 2048)]);
    assert_eq!(b.notified(RX_QUEUE, &ram_b.view, &mut Vec::new()), Ok(true));
    let len = (HEADER_SIZE + first.len()) as u32;
    assert_eq!(rx.used(&ram_b), [(0, len)]);
    assert_eq!(ram_b.get(DATA + HEADER_SIZE as u64, first.len()), first);
    assert_eq!(ram_b.get(DATA + 10, 2), [1, 0], "num_buffers");
    assert_eq!(backlog_len(&b), 1);

    // Another buffer: the second frame on notification.
    rx.offer(&ram_b, &[Buf::w(DATA + 0x1000, 2048)]);
    assert_eq!(b.notified(RX_QUEUE, &ram_b.view, &mut Vec::new()), Ok(true));
    assert_eq!(rx.used(&ram_b), [(1, (HEADER_SIZE + second.len()) as u32)]);
    assert_eq!(backlog_len(&b), 0);

    // A buffer waiting: a new frame goes straight in.
    rx.offer(&ram_b, &[Buf::w(DATA + 0x2000, 2048)]);
    assert_eq!(
        b.notified(RX_QUEUE, &ram_b.view, &mut Vec::new()),
        Ok(false)
    );
    let third = frame(MAC_B, MAC_A, 60);
    assert_eq!(b.deliver(&third, &ram_b.view), Ok(true));
    assert_eq!(rx.used(&ram_b), [(2, (HEADER_SIZE + third.len()) as u32)]);
    assert_eq!(
        ram_b.get(DATA + 0x2000 + HEADER_SIZE as u64, third.len()),
        third
    );

    // A frame too big for the buffer is dropped, the buffer returned empty.
    rx.offer(&ram_b, &[Buf::w(DATA + 0x3000, 64)]);
    assert_eq!(b.deliver(&second, &ram_b.view), Ok(true));
    assert_eq!(rx.used(&ram_b), [(3, 0)]);
    assert_eq!(backlog_len(&b), 0);
}

#[test]
fn backlog_is_bounded() {
    let ram = Ram::new();
    let mut port = net(MAC_B);
    let f = frame(MAC_B, MAC_A, 50);
    for _ in 0..BACKLOG_FRAMES + 3 {
        assert_eq!(port.deliver(&f, &ram.view), Ok(false));
    }
    assert_eq!(backlog_len(&port), BACKLOG_FRAMES);
    match port.device() {
        Device::Net { backlog, .. } => assert_eq!(backlog.dropped(), 3),
        Device::Blk { .. } => unreachable!(),
    }
}

#[test]
fn a_disk_drops_frames() {
    let ram = Ram::new();
    let mut slot = blk();
    start(&mut slot, &ram, 0);
    assert_eq!(slot.deliver(&frame(MAC_B, MAC_A, 50), &ram.view), Ok(false));
}

#[test]
fn a_guest_error_breaks_the_device_until_reset() {
    let ram = Ram::new();
    let mut slot = blk();
    let mut driver = start(&mut slot, &ram, 0);
    // A header too short to be a request.
    driver.offer(&ram, &[Buf::r(HEADER, 8), Buf::w(STATUS, 1)]);
    assert!(matches!(
        slot.notified(0, &ram.view, &mut Vec::new()),
        Err(QueueError::BlkHeaderTooShort { .. })
    ));
    slot.fail();
    assert!(slot.is_broken());
    assert!(slot.queue(0).is_none(), "queues dropped");

    // Failed: notifications and new queues are ignored.
    request(&mut driver, &ram, VIRTIO_BLK_T_FLUSH, 0, 0);
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(false));
    let fresh = DriverQueue::new(1);
    assert_eq!(slot.start_queue(0, fresh.config, &ram.view), Ok(()));
    assert!(slot.queue(0).is_none());
    assert_eq!(disk(&slot).flushes, 0);

    // The driver resets the device and sets the queue up anew.
    slot.reset();
    assert!(!slot.is_broken());
    let mut driver = fresh;
    slot.start_queue(0, driver.config, &ram.view).unwrap();
    request(&mut driver, &ram, VIRTIO_BLK_T_FLUSH, 0, 0);
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(true));
    assert_eq!(disk(&slot).flushes, 1);
}

#[test]
fn a_failed_port_drops_frames_and_bad_buffers_fail_it() {
    let ram = Ram::new();
    let mut port = net(MAC_B);
    let mut rx = start(&mut port, &ram, RX_QUEUE);
    // A readable receive buffer is no receive buffer.
    rx.offer(&ram, &[Buf::r(DATA, 2048)]);
    let f = frame(MAC_B, MAC_A, 50);
    assert!(matches!(
        port.deliver(&f, &ram.view),
        Err(QueueError::BeyondChain { .. })
    ));
    port.fail();
    assert_eq!(backlog_len(&port), 1, "the frame that failed still waits");
    assert_eq!(port.deliver(&f, &ram.view), Ok(false));
    assert_eq!(backlog_len(&port), 1, "a failed port takes no frames");
}

#[test]
fn reset_drops_queues_and_waiting_frames() {
    let ram = Ram::new();
    let mut port = net(MAC_B);
    let mut tx = start(&mut port, &ram, TX_QUEUE);
    start(&mut port, &ram, RX_QUEUE);
    port.deliver(&frame(MAC_B, MAC_A, 50), &ram.view).unwrap();
    assert_eq!(backlog_len(&port), 1);
    port.reset();
    assert_eq!(backlog_len(&port), 0);
    assert!(port.queue(RX_QUEUE).is_none() && port.queue(TX_QUEUE).is_none());
    let f = frame(MAC_A, MAC_B, 50);
    ram.put(DATA, &[0; HEADER_SIZE]);
    ram.put(DATA + HEADER_SIZE as u64, &f);
    tx.offer(&ram, &[Buf::r(DATA, (HEADER_SIZE + f.len()) as u32)]);
    let mut sent = Vec::new();
    assert_eq!(port.notified(TX_QUEUE, &ram.view, &mut sent), Ok(false));
    assert!(sent.is_empty(), "no queue, nothing sent");
}

#[test]
fn stopped_and_unknown_queues_are_ignored() {
    let ram = Ram::new();
    let mut slot = blk();
    let mut driver = start(&mut slot, &ram, 0);
    slot.stop_queue(0);
    slot.stop_queue(7);
    assert!(slot.queue(0).is_none());
    request(&mut driver, &ram, VIRTIO_BLK_T_FLUSH, 0, 0);
    assert_eq!(slot.notified(0, &ram.view, &mut Vec::new()), Ok(false));
    assert_eq!(slot.notified(7, &ram.view, &mut Vec::new()), Ok(false));
    assert_eq!(slot.start_queue(7, driver.config, &ram.view), Ok(()));
    assert!(slot.queue(7).is_none());
    assert_eq!(disk(&slot).flushes, 0);
}

#[test]
fn start_queue_checks_the_rings() {
    let ram = Ram::new();
    let mut slot = blk();
    let good = DriverQueue::new(0).config;
    let misaligned = QueueConfig {
        desc_table: good.desc_table + 8,
        ..good
    };
    assert!(matches!(
        slot.start_queue(0, misaligned, &ram.view),
        Err(QueueError::MisalignedArea {
            area: RingArea::DescriptorTable,
            ..
        })
    ));
    let outside = QueueConfig {
        device_ring: BASE + RAM_SIZE as u64 - 8,
        ..good
    };
    assert!(matches!(
        slot.start_queue(0, outside, &ram.view),
        Err(QueueError::Area {
            area: RingArea::DeviceRing,
            ..
        })
    ));
    let bad_size = QueueConfig { size: 3, ..good };
    assert_eq!(
        slot.start_queue(0, bad_size, &ram.view),
        Err(QueueError::InvalidSize { size: 3 })
    );
    assert!(slot.queue(0).is_none());
    assert_eq!(SIZE, good.size);
}

#[test]
fn negotiated_features_reach_the_queue() {
    let ram = Ram::new();
    let mut slot = blk();
    let features = QueueFeatures::from_negotiated(
        VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX,
    );
    let config = QueueConfig {
        features,
        ..DriverQueue::new(0).config
    };
    slot.start_queue(0, config, &ram.view).unwrap();
    assert_eq!(slot.queue(0).map(|q| q.config().features), Some(features));
}
