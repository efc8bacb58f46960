extern crate std;

use super::*;
use crate::transport::QueueState;
use alloc::vec;
use alloc::vec::Vec;
use proptest::prelude::*;
use std::string::ToString;

const MAGIC: u64 = 0x000;
const VERSION_REG: u64 = 0x004;
const DEVICE_ID: u64 = 0x008;
const VENDOR_ID: u64 = 0x00c;
const DEVICE_FEATURES: u64 = 0x010;
const DEVICE_FEATURES_SEL: u64 = 0x014;
const DRIVER_FEATURES: u64 = 0x020;
const DRIVER_FEATURES_SEL: u64 = 0x024;
const QUEUE_SEL: u64 = 0x030;
const QUEUE_NUM_MAX: u64 = 0x034;
const QUEUE_NUM: u64 = 0x038;
const QUEUE_READY: u64 = 0x044;
const QUEUE_NOTIFY: u64 = 0x050;
const INTERRUPT_STATUS: u64 = 0x060;
const INTERRUPT_ACK: u64 = 0x064;
const STATUS: u64 = 0x070;
const QUEUE_DESC_LOW: u64 = 0x080;
const QUEUE_DESC_HIGH: u64 = 0x084;
const QUEUE_AVAIL_LOW: u64 = 0x090;
const QUEUE_AVAIL_HIGH: u64 = 0x094;
const QUEUE_USED_LOW: u64 = 0x0a0;
const QUEUE_USED_HIGH: u64 = 0x0a4;
const SHM_SEL: u64 = 0x0ac;
const SHM_LEN_LOW: u64 = 0x0b0;
const SHM_LEN_HIGH: u64 = 0x0b4;
const SHM_BASE_LOW: u64 = 0x0b8;
const SHM_BASE_HIGH: u64 = 0x0bc;
const QUEUE_RESET: u64 = 0x0c0;
const CONFIG_GENERATION: u64 = 0x0fc;
const CONFIG: u64 = 0x100;

const ACK: u64 = 1;
const DRIVER: u64 = 2;
const DRIVER_OK: u64 = 4;
const FEATURES_OK: u64 = 8;
const NEEDS_RESET: u64 = 64;
const FAILED: u64 = 128;

/// `VIRTIO_BLK_F_SEG_MAX` (2), `VIRTIO_BLK_F_BLK_SIZE` (6),
/// `VIRTIO_BLK_F_FLUSH` (9).
const BLK_FEATURES: u64 = (1 << 2) | (1 << 6) | (1 << 9);
const QEMU_VENDOR: u32 = 0x554d_4551;

/// A virtio-blk device with two queues of different sizes and a 12-byte
/// configuration space: capacity (8 bytes, 0x1_0000_0002 sectors) and
/// `seg_max` (4 bytes, 126).
fn blk_info() -> DeviceInfo {
    let mut config = Vec::new();
    config.extend_from_slice(&0x1_0000_0002u64.to_le_bytes());
    config.extend_from_slice(&126u32.to_le_bytes());
    DeviceInfo {
        device_id: DeviceId::BLOCK,
        vendor_id: QEMU_VENDOR,
        features: Features::from_bits(BLK_FEATURES)
            .union(Features::VERSION_1)
            .union(Features::EVENT_IDX)
            .union(Features::INDIRECT_DESC),
        queue_max_sizes: vec![256, 128],
        config,
    }
}

fn blk() -> MmioTransport {
    MmioTransport::new(blk_info()).unwrap()
}

/// A read the transport must take.
fn rd(t: &MmioTransport, offset: u64) -> u32 {
    let access = t.read(offset, 4);
    assert_eq!(access.ignored, None, "read at {offset:#x}");
    access.value
}

/// A write the transport must take; returns its event.
fn wr(t: &mut MmioTransport, offset: u64, value: u64) -> Option<Event> {
    let access = t.write(offset, 4, value);
    assert_eq!(access.ignored, None, "write of {value:#x} at {offset:#x}");
    access.value
}

/// A write the transport must refuse, for `why`; returns its event.
fn refused(t: &mut MmioTransport, offset: u64, value: u64, why: Ignored) -> Option<Event> {
    let access = t.write(offset, 4, value);
    assert_eq!(
        access.ignored,
        Some(why),
        "write of {value:#x} at {offset:#x}"
    );
    access.value
}

/// Linux's `virtio_add_status`: read, OR in, write back.
fn add_status(t: &mut MmioTransport, bit: u64) -> Option<Event> {
    let status = u64::from(rd(t, STATUS) & 0xff);
    wr(t, STATUS, status | bit)
}

/// Where the simulated driver puts queue `n`'s areas (as Linux's
/// `vring_create_virtqueue` would: page-aligned, contiguous).
fn areas(n: u64) -> (u64, u64, u64) {
    let base = 0x4_8000_0000 + n * 0x10000;
    (base, base + 0x1000, base + 0x2000)
}

/// Linux 6.1's `vm_setup_vq` for queue `index` of `size` entries.
fn setup_queue(t: &mut MmioTransport, index: u64, size: u64) -> Option<Event> {
    wr(t, QUEUE_SEL, index);
    assert_eq!(rd(t, QUEUE_READY), 0, "queue {index} already set up");
    let max = u64::from(rd(t, QUEUE_NUM_MAX));
    assert_ne!(max, 0, "queue {index} unavailable");
    wr(t, QUEUE_NUM, size.min(max));
    let (desc, avail, used) = areas(index);
    wr(t, QUEUE_DESC_LOW, desc & 0xffff_ffff);
    wr(t, QUEUE_DESC_HIGH, desc >> 32);
    wr(t, QUEUE_AVAIL_LOW, avail & 0xffff_ffff);
    wr(t, QUEUE_AVAIL_HIGH, avail >> 32);
    wr(t, QUEUE_USED_LOW, used & 0xffff_ffff);
    wr(t, QUEUE_USED_HIGH, used >> 32);
    wr(t, QUEUE_READY, 1)
}

/// Linux 6.1's `virtio_mmio_probe`, `register_virtio_device` and
/// `virtio_dev_probe` up to `FEATURES_OK`, accepting `wanted` of what the
/// device offers (`vm_get_features`, `vm_finalize_features`,
/// `virtio_features_ok`). Returns whether the device accepted.
fn linux_negotiate(t: &mut MmioTransport, wanted: u64) -> bool {
    assert_eq!(rd(t, MAGIC), 0x7472_6976);
    assert_eq!(rd(t, VERSION_REG), 2);
    assert_ne!(rd(t, DEVICE_ID), 0);
    let _vendor = rd(t, VENDOR_ID);
    // register_virtio_device: reset, then ACKNOWLEDGE.
    assert_eq!(wr(t, STATUS, 0), Some(Event::Reset));
    add_status(t, ACK);
    // virtio_dev_probe.
    add_status(t, DRIVER);
    wr(t, DEVICE_FEATURES_SEL, 1);
    let mut offered = u64::from(rd(t, DEVICE_FEATURES)) << 32;
    wr(t, DEVICE_FEATURES_SEL, 0);
    offered |= u64::from(rd(t, DEVICE_FEATURES));
    let features = offered & wanted;
    wr(t, DRIVER_FEATURES_SEL, 1);
    wr(t, DRIVER_FEATURES, features >> 32);
    wr(t, DRIVER_FEATURES_SEL, 0);
    wr(t, DRIVER_FEATURES, features & 0xffff_ffff);
    add_status(t, FEATURES_OK);
    rd(t, STATUS) & FEATURES_OK as u32 != 0
}

/// The rest of a virtio-blk probe: configuration reads, both queues,
/// `DRIVER_OK`.
fn linux_finish_probe(t: &mut MmioTransport) -> Vec<Event> {
    let mut events = Vec::new();
    // virtio_cread64 of the capacity inside a generation loop (vm_get,
    // two 32-bit reads for an 8-byte field).
    let capacity = loop {
        let before = rd(t, CONFIG_GENERATION);
        let low = u64::from(rd(t, CONFIG));
        let high = u64::from(rd(t, CONFIG + 4));
        if rd(t, CONFIG_GENERATION) == before {
            break (high << 32) | low;
        }
    };
    assert_eq!(capacity, 0x1_0000_0002);
    events.extend(setup_queue(t, 0, 256));
    events.extend(setup_queue(t, 1, 256));
    events.extend(add_status(t, DRIVER_OK));
    events
}

fn ipa(address: u64) -> addr::IntermediatePhysAddr {
    addr::IntermediatePhysAddr(address)
}

fn expected_queue(n: u64, size: u16) -> QueueConfig {
    let (desc, avail, used) = areas(n);
    QueueConfig {
        size,
        desc: ipa(desc),
        driver: ipa(avail),
        device: ipa(used),
    }
}

/// A block device through `FEATURES_OK` with everything offered accepted.
fn negotiated() -> MmioTransport {
    let mut t = blk();
    assert!(linux_negotiate(&mut t, u64::MAX));
    t
}

/// A block device Linux has fully probed.
fn live() -> MmioTransport {
    let mut t = negotiated();
    linux_finish_probe(&mut t);
    t
}

#[test]
fn linux_probe_of_a_version_2_device_reaches_driver_ok() {
    let mut t = blk();
    assert_eq!(rd(&t, VENDOR_ID), QEMU_VENDOR);
    assert_eq!(rd(&t, DEVICE_ID), 2);
    // Linux 6.1's virtio_blk feature table, plus the transport bits that
    // vring_transport_features keeps.
    let wanted = BLK_FEATURES | (1 << 28) | (1 << 29) | (1 << 32) | (1 << 33) | (1 << 34);
    assert!(linux_negotiate(&mut t, wanted));
    assert_eq!(
        rd(&t, STATUS),
        (ACK | DRIVER | FEATURES_OK) as u32,
        "FEATURES_OK sticks"
    );
    let negotiated = t.negotiated_features().unwrap();
    assert_eq!(
        negotiated,
        t.device_features(),
        "everything offered is wanted"
    );

    let events = linux_finish_probe(&mut t);
    assert_eq!(
        events,
        [
            Event::QueueReady(QueueIndex(0), expected_queue(0, 256)),
            // Capped at QueueNumMax by the driver.
            Event::QueueReady(QueueIndex(1), expected_queue(1, 128)),
            Event::DriverOk,
        ]
    );
    assert_eq!(
        rd(&t, STATUS),
        (ACK | DRIVER | FEATURES_OK | DRIVER_OK) as u32
    );
    assert_eq!(t.status().bits(), 0xf);
    assert_eq!(t.queue(QueueIndex(0)), Some(expected_queue(0, 256)));
    assert_eq!(t.queue(QueueIndex(1)), Some(expected_queue(1, 128)));
    assert_eq!(t.queue(QueueIndex(2)), None);
    for n in 0..2 {
        wr(&mut t, QUEUE_SEL, n);
        assert_eq!(rd(&t, QUEUE_READY), 1);
    }

    // A request: notify, the device completes it, vm_interrupt reads and
    // acknowledges.
    assert_eq!(
        wr(&mut t, QUEUE_NOTIFY, 0),
        Some(Event::Notify(QueueIndex(0)))
    );
    assert_eq!(
        wr(&mut t, QUEUE_NOTIFY, 1),
        Some(Event::Notify(QueueIndex(1)))
    );
    assert!(!t.interrupt_line());
    assert!(t.raise_used_buffer());
    assert!(t.interrupt_line());
    let status = rd(&t, INTERRUPT_STATUS);
    assert_eq!(status, 1);
    assert_eq!(
        wr(&mut t, INTERRUPT_ACK, u64::from(status)),
        Some(Event::InterruptAcked(InterruptStatus::USED_BUFFER))
    );
    assert!(!t.interrupt_line());
    assert_eq!(rd(&t, INTERRUPT_STATUS), 0);

    // Removal: virtio_dev_remove resets, then vm_del_vqs stops each queue
    // and reads QueueReady back.
    assert_eq!(wr(&mut t, STATUS, 0), Some(Event::Reset));
    for n in 0..2 {
        wr(&mut t, QUEUE_SEL, n);
        assert_eq!(wr(&mut t, QUEUE_READY, 0), None);
        assert_eq!(rd(&t, QUEUE_READY), 0);
    }
}

#[test]
fn linux_probe_without_event_idx_negotiates_the_subset() {
    let mut t = blk();
    let wanted = (1 << 9) | (1 << 32);
    assert!(linux_negotiate(&mut t, wanted));
    assert_eq!(t.negotiated_features(), Some(Features::from_bits(wanted)));
}

#[test]
fn config_reads_are_little_endian_at_every_width() {
    let t = blk();
    assert_eq!(rd(&t, CONFIG), 0x0000_0002);
    assert_eq!(rd(&t, CONFIG + 4), 0x0000_0001);
    assert_eq!(t.read(CONFIG, 2).value, 0x0002);
    assert_eq!(t.read(CONFIG + 4, 1).value, 0x01);
    assert_eq!(t.read(CONFIG + 8, 2).value, 126);
    assert_eq!(t.read(CONFIG + 11, 1).value, 0);
    assert_eq!(t.read(CONFIG + 8, 4), Access::done(126));
}

#[test]
fn config_updates_move_the_generation_and_raise_the_interrupt_after_driver_ok() {
    let mut t = live();
    let generation = rd(&t, CONFIG_GENERATION);
    t.update_config(0, &0x1_0000_0002u64.to_le_bytes()).unwrap();
    assert_eq!(rd(&t, CONFIG_GENERATION), generation, "nothing changed");
    t.update_config(0, &0x2000u64.to_le_bytes()).unwrap();
    assert_eq!(rd(&t, CONFIG_GENERATION), generation.wrapping_add(1));
    assert_eq!(rd(&t, CONFIG), 0x2000);
    assert_eq!(rd(&t, CONFIG + 4), 0);
    assert!(t.raise_config_change());
    assert_eq!(rd(&t, INTERRUPT_STATUS), 2);
    assert!(t.interrupt_line());
    assert_eq!(
        t.update_config(10, &[0; 3]),
        Err(ConfigError::OutOfRange {
            offset: 10,
            len: 3,
            config_size: 12
        })
    );
    assert_eq!(
        t.update_config(usize::MAX, &[0; 2]),
        Err(ConfigError::OutOfRange {
            offset: usize::MAX,
            len: 2,
            config_size: 12
        })
    );
    assert_eq!(t.config().len(), 12);
}

#[test]
fn config_writes_go_to_the_device_without_changing_the_space() {
    let mut t = live();
    assert_eq!(
        t.write(CONFIG + 8, 1, 0x1ff),
        Access::done(Some(Event::ConfigWrite {
            offset: 8,
            size: 1,
            value: 0xff
        }))
    );
    assert_eq!(
        t.write(CONFIG + 2, 2, 0xdead_beef),
        Access::done(Some(Event::ConfigWrite {
            offset: 2,
            size: 2,
            value: 0xbeef
        }))
    );
    assert_eq!(
        t.write(CONFIG + 4, 4, 0x1_2345_6789),
        Access::done(Some(Event::ConfigWrite {
            offset: 4,
            size: 4,
            value: 0x2345_6789
        }))
    );
    assert_eq!(rd(&t, CONFIG + 8), 126);
}

#[test]
fn config_accesses_past_the_space_or_misaligned_are_refused() {
    let mut t = blk();
    let past = |offset, size| Ignored::ConfigOutOfRange {
        offset,
        size,
        config_size: 12,
    };
    assert_eq!(t.read(CONFIG + 12, 1), Access::not_done(0, past(12, 1)));
    assert_eq!(t.read(CONFIG + 0xfc, 4), Access::not_done(0, past(0xfc, 4)));
    assert_eq!(
        t.write(CONFIG + 12, 4, 1),
        Access::not_done(None, past(12, 4))
    );
    for (offset, size) in [
        (CONFIG + 1, 2),
        (CONFIG + 2, 4),
        (CONFIG, 8),
        (CONFIG, 3),
        (CONFIG, 0),
    ] {
        let why = Ignored::BadConfigAccess { offset, size };
        assert_eq!(t.read(offset, size), Access::not_done(0, why));
        assert_eq!(t.write(offset, size, 0), Access::not_done(None, why));
    }
}

#[test]
fn empty_slot_reads_as_linux_probes_it() {
    let mut t = MmioTransport::empty();
    assert!(t.is_empty_slot());
    // virtio_mmio_probe: magic, version, device ID 0, then -ENODEV.
    assert_eq!(rd(&t, MAGIC), 0x7472_6976);
    assert_eq!(rd(&t, VERSION_REG), 2);
    assert_eq!(rd(&t, DEVICE_ID), 0);
    assert_eq!(t.device_id(), DeviceId::NONE);

    // Everything else is read-as-zero, write-ignored.
    for register in Register::ALL {
        let offset = register.offset();
        if matches!(
            register,
            Register::MagicValue | Register::Version | Register::DeviceId
        ) {
            assert_eq!(
                t.write(offset, 4, 0),
                Access::not_done(None, Ignored::NoDevice)
            );
            continue;
        }
        assert_eq!(
            t.read(offset, 4),
            Access::not_done(0, Ignored::NoDevice),
            "{register}"
        );
        assert_eq!(
            t.write(offset, 4, 1),
            Access::not_done(None, Ignored::NoDevice),
            "{register}"
        );
    }
    assert_eq!(t.read(CONFIG, 4), Access::not_done(0, Ignored::NoDevice));
    assert_eq!(
        t.write(CONFIG, 1, 1),
        Access::not_done(None, Ignored::NoDevice)
    );
    // Malformed accesses still say what is wrong with them.
    assert_eq!(
        t.read(MAGIC, 2),
        Access::not_done(0, Ignored::BadRegisterAccess { offset: 0, size: 2 })
    );
    // The device side can do nothing to it either.
    assert!(!t.raise_used_buffer());
    assert!(!t.raise_config_change());
    t.set_needs_reset();
    assert_eq!(t.status(), DeviceStatus::NONE);
    assert!(!t.interrupt_line());
    assert!(t.update_config(0, &[1]).is_err());
    assert_eq!(t, MmioTransport::empty());
}

#[test]
fn features_ok_is_refused_for_features_not_offered() {
    let mut t = blk();
    wr(&mut t, STATUS, ACK | DRIVER);
    wr(&mut t, DRIVER_FEATURES_SEL, 1);
    wr(&mut t, DRIVER_FEATURES, 1 | 1 << 2); // VERSION_1 and RING_PACKED
    wr(&mut t, DRIVER_FEATURES_SEL, 0);
    wr(&mut t, DRIVER_FEATURES, 1 << 9 | 1 << 5); // FLUSH and RO (not offered)
    assert_eq!(
        refused(
            &mut t,
            STATUS,
            ACK | DRIVER | FEATURES_OK,
            Ignored::FeaturesNotOffered {
                unoffered: Features::from_bits(1 << 5).union(Features::RING_PACKED),
                beyond_64: false,
            }
        ),
        None
    );
    assert_eq!(
        rd(&t, STATUS),
        (ACK | DRIVER) as u32,
        "FEATURES_OK does not stick"
    );
    assert_eq!(t.negotiated_features(), None);
    // virtio_features_ok failed: Linux sets FAILED.
    assert_eq!(add_status(&mut t, FAILED), Some(Event::Failed));
    assert_eq!(rd(&t, STATUS), (ACK | DRIVER | FAILED) as u32);
    // Nothing but a reset from here.
    refused(
        &mut t,
        STATUS,
        ACK | DRIVER | FAILED | FEATURES_OK,
        Ignored::StatusAfterFailed {
            written: DeviceStatus::from_bits((ACK | DRIVER | FAILED | FEATURES_OK) as u8),
        },
    );
    assert_eq!(wr(&mut t, STATUS, 0), Some(Event::Reset));
    assert_eq!(rd(&t, STATUS), 0);
}

#[test]
fn features_ok_is_refused_without_version_1() {
    let mut t = blk();
    wr(&mut t, STATUS, ACK | DRIVER);
    wr(&mut t, DRIVER_FEATURES_SEL, 0);
    wr(&mut t, DRIVER_FEATURES, 1 << 9);
    refused(
        &mut t,
        STATUS,
        ACK | DRIVER | FEATURES_OK,
        Ignored::Version1NotAccepted,
    );
    assert_eq!(rd(&t, STATUS), (ACK | DRIVER) as u32);
    // The driver may try again with a better set.
    wr(&mut t, DRIVER_FEATURES_SEL, 1);
    wr(&mut t, DRIVER_FEATURES, 1);
    wr(&mut t, STATUS, ACK | DRIVER | FEATURES_OK);
    assert_eq!(
        t.negotiated_features(),
        Some(Features::from_bits(1 << 9).union(Features::VERSION_1))
    );
}

#[test]
fn features_above_bit_63_are_remembered_and_refused() {
    let mut t = blk();
    wr(&mut t, STATUS, ACK | DRIVER);
    wr(&mut t, DEVICE_FEATURES_SEL, 2);
    assert_eq!(rd(&t, DEVICE_FEATURES), 0, "nothing offered above bit 63");
    wr(&mut t, DEVICE_FEATURES_SEL, u64::from(u32::MAX));
    assert_eq!(rd(&t, DEVICE_FEATURES), 0);
    wr(&mut t, DRIVER_FEATURES_SEL, 1);
    wr(&mut t, DRIVER_FEATURES, 1);
    wr(&mut t, DRIVER_FEATURES_SEL, 2);
    wr(&mut t, DRIVER_FEATURES, 0);
    refused(
        &mut t,
        DRIVER_FEATURES,
        4,
        Ignored::UnofferedFeatureWord {
            select: 2,
            value: 4,
        },
    );
    refused(
        &mut t,
        STATUS,
        ACK | DRIVER | FEATURES_OK,
        Ignored::FeaturesNotOffered {
            unoffered: Features::NONE,
            beyond_64: true,
        },
    );
    // A reset forgets it.
    wr(&mut t, STATUS, 0);
    wr(&mut t, STATUS, ACK | DRIVER);
    wr(&mut t, DRIVER_FEATURES_SEL, 1);
    wr(&mut t, DRIVER_FEATURES, 1);
    wr(&mut t, STATUS, ACK | DRIVER | FEATURES_OK);
    assert_eq!(t.negotiated_features(), Some(Features::VERSION_1));
}

#[test]
fn driver_features_are_fixed_after_features_ok() {
    let mut t = negotiated();
    let features = t.negotiated_features().unwrap();
    wr(&mut t, DRIVER_FEATURES_SEL, 0);
    refused(&mut t, DRIVER_FEATURES, 0, Ignored::FeaturesAfterFeaturesOk);
    assert_eq!(t.negotiated_features(), Some(features));
}

#[test]
fn device_features_read_word_by_word() {
    let t = blk();
    let mut t = t;
    wr(&mut t, DEVICE_FEATURES_SEL, 0);
    assert_eq!(rd(&t, DEVICE_FEATURES), (BLK_FEATURES | 3 << 28) as u32);
    wr(&mut t, DEVICE_FEATURES_SEL, 1);
    assert_eq!(rd(&t, DEVICE_FEATURES), 1);
}

#[test]
fn status_bits_must_come_in_order_and_never_clear() {
    let mut t = blk();
    let st = |bits: u64| DeviceStatus::from_bits(bits as u8);
    refused(
        &mut t,
        STATUS,
        DRIVER,
        Ignored::StatusOutOfOrder {
            written: st(DRIVER),
        },
    );
    refused(
        &mut t,
        STATUS,
        ACK | FEATURES_OK,
        Ignored::StatusOutOfOrder {
            written: st(ACK | FEATURES_OK),
        },
    );
    assert_eq!(rd(&t, STATUS), 0);
    // Several bits at once are fine when in order.
    wr(&mut t, STATUS, ACK | DRIVER);
    refused(
        &mut t,
        STATUS,
        ACK | DRIVER | DRIVER_OK,
        Ignored::StatusOutOfOrder {
            written: st(ACK | DRIVER | DRIVER_OK),
        },
    );
    refused(
        &mut t,
        STATUS,
        ACK,
        Ignored::StatusBitsCleared {
            status: st(ACK | DRIVER),
            written: st(ACK),
        },
    );
    refused(
        &mut t,
        STATUS,
        ACK | DRIVER | 0x10,
        Ignored::ReservedBits {
            register: Register::Status,
            value: 0x13,
        },
    );
    refused(
        &mut t,
        STATUS,
        0x100 | ACK | DRIVER,
        Ignored::ReservedBits {
            register: Register::Status,
            value: 0x103,
        },
    );
    // Writing the same bits again is a no-op.
    assert_eq!(wr(&mut t, STATUS, ACK | DRIVER), None);
    // The driver cannot set DEVICE_NEEDS_RESET.
    assert_eq!(wr(&mut t, STATUS, ACK | DRIVER | NEEDS_RESET), None);
    assert_eq!(rd(&t, STATUS), (ACK | DRIVER) as u32);
    assert_eq!(rd(&t, STATUS), (ACK | DRIVER) as u32);

    // ACKNOWLEDGE through FEATURES_OK in one write, DRIVER_OK in the next.
    let mut t = blk();
    wr(&mut t, DRIVER_FEATURES_SEL, 1);
    wr(&mut t, DRIVER_FEATURES, 1);
    assert_eq!(wr(&mut t, STATUS, ACK | DRIVER | FEATURES_OK), None);
    assert_eq!(
        wr(&mut t, STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK),
        Some(Event::DriverOk)
    );
    assert_eq!(
        wr(&mut t, STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK),
        None,
        "DRIVER_OK is reported once"
    );
}

#[test]
fn failed_in_the_same_write_as_driver_ok_does_not_start_the_device() {
    let mut t = negotiated();
    assert_eq!(
        wr(
            &mut t,
            STATUS,
            ACK | DRIVER | FEATURES_OK | DRIVER_OK | FAILED
        ),
        Some(Event::Failed)
    );
    assert_eq!(rd(&t, STATUS), (ACK | DRIVER | FEATURES_OK | FAILED) as u32);
}

#[test]
fn failed_may_come_first() {
    let mut t = blk();
    assert_eq!(wr(&mut t, STATUS, FAILED), Some(Event::Failed));
    refused(
        &mut t,
        STATUS,
        FAILED | ACK,
        Ignored::StatusAfterFailed {
            written: DeviceStatus::from_bits((FAILED | ACK) as u8),
        },
    );
}

#[test]
fn refused_features_ok_in_a_write_with_failed_still_records_failed() {
    let mut t = blk();
    wr(&mut t, STATUS, ACK | DRIVER);
    let access = t.write(STATUS, 4, ACK | DRIVER | FEATURES_OK | FAILED);
    assert_eq!(
        access,
        Access {
            value: Some(Event::Failed),
            ignored: Some(Ignored::Version1NotAccepted)
        }
    );
    assert_eq!(rd(&t, STATUS), (ACK | DRIVER | FAILED) as u32);
}

#[test]
fn queue_setup_needs_features_ok_and_no_driver_ok() {
    let mut t = blk();
    wr(&mut t, STATUS, ACK | DRIVER);
    wr(&mut t, QUEUE_SEL, 0);
    let q0 = QueueIndex(0);
    assert_eq!(rd(&t, QUEUE_NUM_MAX), 256);
    assert_eq!(rd(&t, QUEUE_READY), 0);
    for offset in [
        QUEUE_NUM,
        QUEUE_DESC_LOW,
        QUEUE_DESC_HIGH,
        QUEUE_AVAIL_LOW,
        QUEUE_AVAIL_HIGH,
        QUEUE_USED_LOW,
        QUEUE_USED_HIGH,
        QUEUE_READY,
    ] {
        refused(&mut t, offset, 1, Ignored::QueueBeforeFeaturesOk(q0));
    }
    let mut t = live();
    wr(&mut t, QUEUE_SEL, 0);
    for offset in [QUEUE_NUM, QUEUE_DESC_LOW, QUEUE_USED_HIGH] {
        refused(&mut t, offset, 1, Ignored::QueueAfterDriverOk(q0));
    }
    assert_eq!(t.queue(q0), Some(expected_queue(0, 256)));
    // Stopping is always allowed, enabling again after DRIVER_OK is not.
    assert_eq!(wr(&mut t, QUEUE_READY, 0), Some(Event::QueueStopped(q0)));
    assert_eq!(rd(&t, QUEUE_READY), 0);
    assert_eq!(t.queue(q0), None);
    refused(&mut t, QUEUE_READY, 1, Ignored::QueueAfterDriverOk(q0));
    refused(&mut t, QUEUE_NOTIFY, 0, Ignored::QueueNotReady(q0));
}

#[test]
fn a_ready_queue_cannot_be_changed() {
    let mut t = negotiated();
    let q0 = QueueIndex(0);
    assert_eq!(
        setup_queue(&mut t, 0, 64),
        Some(Event::QueueReady(q0, expected_queue(0, 64)))
    );
    for offset in [
        QUEUE_NUM,
        QUEUE_DESC_LOW,
        QUEUE_DESC_HIGH,
        QUEUE_AVAIL_LOW,
        QUEUE_AVAIL_HIGH,
        QUEUE_USED_LOW,
        QUEUE_USED_HIGH,
    ] {
        refused(&mut t, offset, 0x40, Ignored::QueueIsReady(q0));
    }
    assert_eq!(
        wr(&mut t, QUEUE_READY, 1),
        None,
        "enabling twice is a no-op"
    );
    assert_eq!(t.queue(q0), Some(expected_queue(0, 64)));
    // Stopped, it can be set up again before DRIVER_OK.
    assert_eq!(wr(&mut t, QUEUE_READY, 0), Some(Event::QueueStopped(q0)));
    wr(&mut t, QUEUE_NUM, 32);
    assert_eq!(
        wr(&mut t, QUEUE_READY, 1),
        Some(Event::QueueReady(q0, expected_queue(0, 32)))
    );
}

#[test]
fn queue_sizes_must_be_powers_of_two_up_to_the_maximum() {
    let mut t = negotiated();
    wr(&mut t, QUEUE_SEL, 1);
    let q1 = QueueIndex(1);
    for size in [0, 3, 96, 255, 256, 1 << 16, u64::from(u32::MAX)] {
        refused(
            &mut t,
            QUEUE_NUM,
            size,
            Ignored::BadQueueSize {
                queue: q1,
                size: size as u32,
                max: 128,
            },
        );
    }
    // Without a QueueNum write the queue has its maximum size.
    let (desc, avail, used) = areas(1);
    wr(&mut t, QUEUE_DESC_LOW, desc & 0xffff_ffff);
    wr(&mut t, QUEUE_DESC_HIGH, desc >> 32);
    wr(&mut t, QUEUE_AVAIL_LOW, avail & 0xffff_ffff);
    wr(&mut t, QUEUE_AVAIL_HIGH, avail >> 32);
    wr(&mut t, QUEUE_USED_LOW, used & 0xffff_ffff);
    wr(&mut t, QUEUE_USED_HIGH, used >> 32);
    assert_eq!(
        wr(&mut t, QUEUE_READY, 1),
        Some(Event::QueueReady(q1, expected_queue(1, 128)))
    );
    for size in [1, 2, 128] {
        let mut t = negotiated();
        wr(&mut t, QUEUE_SEL, 1);
        wr(&mut t, QUEUE_NUM, size);
    }
}

#[test]
fn queue_areas_must_be_aligned_and_not_wrap() {
    let mut t = negotiated();
    let q0 = QueueIndex(0);
    wr(&mut t, QUEUE_SEL, 0);
    wr(&mut t, QUEUE_NUM, 16);
    for (low, area, address) in [
        (QUEUE_DESC_LOW, QueueArea::Descriptor, 0x1008),
        (QUEUE_AVAIL_LOW, QueueArea::Driver, 0x2001),
        (QUEUE_USED_LOW, QueueArea::Device, 0x3002),
    ] {
        wr(&mut t, QUEUE_DESC_LOW, 0x1000);
        wr(&mut t, QUEUE_AVAIL_LOW, 0x2000);
        wr(&mut t, QUEUE_USED_LOW, 0x3000);
        wr(&mut t, low, address);
        refused(
            &mut t,
            QUEUE_READY,
            1,
            Ignored::MisalignedQueueArea {
                queue: q0,
                area,
                address: ipa(address),
            },
        );
        assert_eq!(rd(&t, QUEUE_READY), 0);
    }
    wr(&mut t, QUEUE_USED_LOW, 0x3000);
    // 16 descriptors of 16 bytes from 2^64 - 0x100 end exactly at 2^64.
    wr(&mut t, QUEUE_DESC_LOW, 0xffff_ff00);
    wr(&mut t, QUEUE_DESC_HIGH, 0xffff_ffff);
    refused(
        &mut t,
        QUEUE_READY,
        1,
        Ignored::QueueAreaWraps {
            queue: q0,
            area: QueueArea::Descriptor,
            address: ipa(0xffff_ffff_ffff_ff00),
        },
    );
    wr(&mut t, QUEUE_DESC_LOW, 0xffff_fe00);
    assert_eq!(
        wr(&mut t, QUEUE_READY, 1),
        Some(Event::QueueReady(
            q0,
            QueueConfig {
                size: 16,
                desc: ipa(0xffff_ffff_ffff_fe00),
                driver: ipa(0x2000),
                device: ipa(0x3000),
            }
        ))
    );
}

#[test]
fn queues_the_device_lacks_read_as_unavailable() {
    let mut t = negotiated();
    for select in [2, 0xffff, 0x1_0000, u64::from(u32::MAX)] {
        wr(&mut t, QUEUE_SEL, select);
        assert_eq!(rd(&t, QUEUE_NUM_MAX), 0);
        assert_eq!(rd(&t, QUEUE_READY), 0);
        let why = Ignored::NoSuchQueue {
            select: select as u32,
        };
        refused(&mut t, QUEUE_NUM, 16, why);
        refused(&mut t, QUEUE_DESC_LOW, 0x1000, why);
        refused(&mut t, QUEUE_READY, 1, why);
        refused(&mut t, QUEUE_READY, 0, why);
    }
    wr(&mut t, QUEUE_SEL, 0);
    refused(
        &mut t,
        QUEUE_READY,
        2,
        Ignored::BadValue {
            register: Register::QueueReady,
            value: 2,
        },
    );
}

#[test]
fn notifications_need_driver_ok_and_a_ready_queue() {
    let mut t = negotiated();
    setup_queue(&mut t, 0, 256);
    refused(
        &mut t,
        QUEUE_NOTIFY,
        0,
        Ignored::NotifyBeforeDriverOk(QueueIndex(0)),
    );
    add_status(&mut t, DRIVER_OK);
    refused(
        &mut t,
        QUEUE_NOTIFY,
        1,
        Ignored::QueueNotReady(QueueIndex(1)),
    );
    for value in [2, 0x1_0000, 0x1_0000_0000 | 0x0001_0000] {
        refused(
            &mut t,
            QUEUE_NOTIFY,
            value,
            Ignored::NoSuchQueue {
                select: value as u32,
            },
        );
    }
    // Only the low 32 bits of a 4-byte write count.
    assert_eq!(
        wr(&mut t, QUEUE_NOTIFY, 0x1_0000_0000),
        Some(Event::Notify(QueueIndex(0)))
    );
}

#[test]
fn interrupts_rise_only_after_driver_ok_and_clear_bit_by_bit() {
    let mut t = negotiated();
    assert!(!t.raise_used_buffer());
    assert!(!t.raise_config_change());
    assert!(!t.interrupt_line());
    let mut t = live();
    assert!(t.raise_used_buffer());
    assert!(t.raise_config_change());
    assert_eq!(rd(&t, INTERRUPT_STATUS), 3);
    assert_eq!(t.interrupt_status(), InterruptStatus::ALL);
    refused(
        &mut t,
        INTERRUPT_ACK,
        4,
        Ignored::ReservedBits {
            register: Register::InterruptAck,
            value: 4,
        },
    );
    assert_eq!(
        wr(&mut t, INTERRUPT_ACK, 2),
        Some(Event::InterruptAcked(InterruptStatus::CONFIG_CHANGE))
    );
    assert!(t.interrupt_line());
    assert_eq!(
        wr(&mut t, INTERRUPT_ACK, 2),
        None,
        "nothing left to acknowledge"
    );
    assert_eq!(wr(&mut t, INTERRUPT_ACK, 0), None);
    assert_eq!(
        wr(&mut t, INTERRUPT_ACK, 3),
        Some(Event::InterruptAcked(InterruptStatus::USED_BUFFER))
    );
    assert!(!t.interrupt_line());
}

#[test]
fn reset_clears_everything_the_driver_set() {
    let mut t = live();
    wr(&mut t, DEVICE_FEATURES_SEL, 1);
    wr(&mut t, DRIVER_FEATURES_SEL, 1);
    wr(&mut t, QUEUE_SEL, 1);
    assert!(t.raise_used_buffer());
    t.set_needs_reset();
    t.update_config(8, &[7, 0, 0, 0]).unwrap();
    let generation = t.config_generation();
    let config = t.config().to_vec();

    assert_eq!(wr(&mut t, STATUS, 0), Some(Event::Reset));
    let mut fresh = blk();
    fresh.config = config;
    fresh.config_generation = generation;
    assert_eq!(t, fresh, "back to the reset state, config kept");
    assert_eq!(rd(&t, STATUS), 0);
    assert_eq!(rd(&t, INTERRUPT_STATUS), 0);
    assert!(!t.interrupt_line());
    assert_eq!(t.negotiated_features(), None);
    assert_eq!(t.queue(QueueIndex(0)), None);
    assert_eq!(rd(&t, QUEUE_NUM_MAX), 256, "QueueSel back to 0");
    assert_eq!(rd(&t, DEVICE_FEATURES), (BLK_FEATURES | 3 << 28) as u32);
    assert_eq!(rd(&t, CONFIG + 8), 7);

    // A reset of a reset device is reported too, and the probe works again.
    assert_eq!(wr(&mut t, STATUS, 0), Some(Event::Reset));
    assert!(linux_negotiate(&mut t, u64::MAX));
    linux_finish_probe(&mut t);
    assert_eq!(t.status().bits(), 0xf);
}

#[test]
fn needs_reset_raises_a_config_change_after_driver_ok() {
    let mut t = live();
    t.set_needs_reset();
    assert_eq!(
        rd(&t, STATUS),
        (ACK | DRIVER | FEATURES_OK | DRIVER_OK | NEEDS_RESET) as u32
    );
    assert_eq!(rd(&t, INTERRUPT_STATUS), 2);
    assert!(t.interrupt_line());
    // Linux's virtio_config_changed path acknowledges; the bit stays.
    wr(&mut t, INTERRUPT_ACK, 2);
    assert!(!t.interrupt_line());
    assert_eq!(rd(&t, STATUS) & NEEDS_RESET as u32, NEEDS_RESET as u32);
    // A driver writing the status back (with or without the bit) changes
    // nothing about it.
    assert_eq!(
        wr(
            &mut t,
            STATUS,
            ACK | DRIVER | FEATURES_OK | DRIVER_OK | NEEDS_RESET
        ),
        None
    );
    assert_eq!(
        wr(&mut t, STATUS, ACK | DRIVER | FEATURES_OK | DRIVER_OK),
        None
    );
    assert!(t.status().contains(DeviceStatus::DEVICE_NEEDS_RESET));
    // Notifications still reach the device, which decides what to do.
    assert_eq!(
        wr(&mut t, QUEUE_NOTIFY, 0),
        Some(Event::Notify(QueueIndex(0)))
    );
    assert_eq!(wr(&mut t, STATUS, 0), Some(Event::Reset));
    assert_eq!(rd(&t, STATUS), 0);
}

#[test]
fn needs_reset_before_driver_ok_raises_no_interrupt() {
    let mut t = negotiated();
    t.set_needs_reset();
    assert_eq!(
        rd(&t, STATUS),
        (ACK | DRIVER | FEATURES_OK | NEEDS_RESET) as u32
    );
    assert!(!t.interrupt_line());
    // The initialisation may continue; the driver sees the bit.
    assert_eq!(
        wr(
            &mut t,
            STATUS,
            ACK | DRIVER | FEATURES_OK | NEEDS_RESET | DRIVER_OK
        ),
        Some(Event::DriverOk)
    );
    assert_eq!(
        rd(&t, STATUS),
        (ACK | DRIVER | FEATURES_OK | NEEDS_RESET | DRIVER_OK) as u32
    );
}

#[test]
fn shared_memory_registers_say_there_is_none() {
    let mut t = blk();
    for select in [0, 1, 0xff] {
        wr(&mut t, SHM_SEL, select);
        for offset in [SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH] {
            assert_eq!(rd(&t, offset), u32::MAX);
        }
    }
}

#[test]
fn queue_reset_is_not_offered() {
    let mut t = live();
    wr(&mut t, QUEUE_SEL, 0);
    assert_eq!(rd(&t, QUEUE_RESET), 0);
    refused(&mut t, QUEUE_RESET, 1, Ignored::RingResetNotOffered);
    assert_eq!(rd(&t, QUEUE_READY), 1);
}

#[test]
fn every_register_refuses_the_wrong_direction() {
    let mut t = live();
    for register in Register::ALL {
        let offset = register.offset();
        assert_eq!(Register::from_offset(offset), Some(register));
        match register.direction() {
            Direction::Read => assert_eq!(
                t.write(offset, 4, 0),
                Access::not_done(None, Ignored::ReadOnly(register)),
                "{register}"
            ),
            Direction::Write => assert_eq!(
                t.read(offset, 4),
                Access::not_done(0, Ignored::WriteOnly(register)),
                "{register}"
            ),
            Direction::ReadWrite => {}
        }
    }
    assert_eq!(t.status().bits(), 0xf, "nothing changed");
}

#[test]
fn register_accesses_other_than_aligned_32_bit_are_refused() {
    let mut t = negotiated();
    let before = t.clone();
    for offset in 0..CONFIG {
        for size in [0, 1, 2, 3, 5, 8, 16, 255] {
            let why = Ignored::BadRegisterAccess { offset, size };
            assert_eq!(t.read(offset, size), Access::not_done(0, why));
            assert_eq!(t.write(offset, size, u64::MAX), Access::not_done(None, why));
        }
        if offset % 4 != 0 {
            let why = Ignored::BadRegisterAccess { offset, size: 4 };
            assert_eq!(t.read(offset, 4), Access::not_done(0, why));
            assert_eq!(t.write(offset, 4, 0), Access::not_done(None, why));
        } else if Register::from_offset(offset).is_none() {
            let why = Ignored::UnknownOffset { offset };
            assert_eq!(t.read(offset, 4), Access::not_done(0, why));
            assert_eq!(t.write(offset, 4, 0), Access::not_done(None, why));
        }
    }
    assert_eq!(t, before, "nothing changed");
    // The legacy registers are gone.
    for offset in [0x028, 0x03c, 0x040] {
        assert_eq!(
            t.read(offset, 4).ignored,
            Some(Ignored::UnknownOffset { offset })
        );
    }
}

#[test]
fn accesses_past_the_frame_are_refused() {
    let mut t = blk();
    for offset in [FRAME_SIZE, FRAME_SIZE + 4, 0x1000, u64::MAX - 3, u64::MAX] {
        for size in [1, 4, 8] {
            let why = Ignored::UnknownOffset { offset };
            assert_eq!(t.read(offset, size), Access::not_done(0, why));
            assert_eq!(t.write(offset, size, 0), Access::not_done(None, why));
        }
    }
}

#[test]
fn a_full_config_space_reaches_the_end_of_the_frame() {
    let mut info = blk_info();
    info.config = (0..=255).collect();
    let t = MmioTransport::new(info).unwrap();
    assert_eq!(rd(&t, FRAME_SIZE - 4), 0xfffe_fdfc);
    assert_eq!(t.read(FRAME_SIZE - 1, 1).value, 0xff);
}

#[test]
fn device_info_is_checked() {
    let with = |change: fn(&mut DeviceInfo)| {
        let mut info = blk_info();
        change(&mut info);
        MmioTransport::new(info).map(|_| ())
    };
    assert_eq!(with(|_| {}), Ok(()));
    assert_eq!(
        with(|i| i.device_id = DeviceId::NONE),
        Err(DeviceInfoError::NoDeviceId)
    );
    assert_eq!(
        with(|i| i.features = i.features.difference(Features::VERSION_1)),
        Err(DeviceInfoError::MissingVersion1)
    );
    assert_eq!(
        with(|i| i.features = i
            .features
            .union(Features::RING_RESET)
            .union(Features::RING_PACKED)),
        Err(DeviceInfoError::UnsupportedFeatures(
            Features::RING_RESET.union(Features::RING_PACKED)
        ))
    );
    assert_eq!(
        with(|i| i.features = i.features.union(Features::ACCESS_PLATFORM)),
        Ok(())
    );
    assert_eq!(
        with(|i| i.queue_max_sizes = vec![1, 0]),
        Err(DeviceInfoError::BadQueueMaxSize { queue: 1, max: 0 })
    );
    assert_eq!(
        with(|i| i.queue_max_sizes = vec![100]),
        Err(DeviceInfoError::BadQueueMaxSize { queue: 0, max: 100 })
    );
    assert_eq!(with(|i| i.queue_max_sizes = vec![32768, 1]), Ok(()));
    assert_eq!(
        with(|i| i.queue_max_sizes = vec![1; MAX_QUEUES + 1]),
        Err(DeviceInfoError::TooManyQueues(MAX_QUEUES + 1))
    );
    assert_eq!(with(|i| i.queue_max_sizes = Vec::new()), Ok(()));
    assert_eq!(
        with(|i| i.config = vec![0; 0x101]),
        Err(DeviceInfoError::ConfigTooLarge(0x101))
    );
    for error in [
        DeviceInfoError::NoDeviceId,
        DeviceInfoError::MissingVersion1,
        DeviceInfoError::UnsupportedFeatures(Features::SR_IOV),
        DeviceInfoError::TooManyQueues(1),
        DeviceInfoError::BadQueueMaxSize { queue: 0, max: 3 },
        DeviceInfoError::ConfigTooLarge(0x200),
    ] {
        assert!(!error.to_string().is_empty());
    }
}

#[test]
fn values_print_readably() {
    assert_eq!(DeviceId::BLOCK.to_string(), "2 (block)");
    assert_eq!(DeviceId(42).to_string(), "42");
    assert_eq!(QueueIndex(3).to_string(), "queue 3");
    assert_eq!(Register::QueueNotify.to_string(), "QueueNotify (0x050)");
    assert_eq!(
        std::format!("{:?}", Features::VERSION_1),
        "Features(0x100000000)"
    );
    assert_eq!(
        Ignored::BadQueueSize {
            queue: QueueIndex(1),
            size: 3,
            max: 128
        }
        .to_string(),
        "queue 1 size 3: not a power of two from 1 to 128"
    );
}

#[test]
fn feature_words_round_trip() {
    let features = Features::from_bits(0x1234_5678_9abc_def0);
    assert_eq!(features.word(0), 0x9abc_def0);
    assert_eq!(features.word(1), 0x1234_5678);
    assert_eq!(features.word(2), 0);
    assert_eq!(
        Features::NONE
            .with_word(1, 0x1234_5678)
            .with_word(0, 0x9abc_def0),
        features
    );
    assert_eq!(features.with_word(2, 1), features);
}

#[test]
fn area_sizes_follow_the_split_ring_layout() {
    let config = expected_queue(0, 256);
    assert_eq!(config.area_size(QueueArea::Descriptor), 4096);
    assert_eq!(config.area_size(QueueArea::Driver), 6 + 512);
    assert_eq!(config.area_size(QueueArea::Device), 6 + 2048);
    assert_eq!(QueueArea::Device.size(32768), 6 + 8 * 32768);
}

// --- Property test -------------------------------------------------------

/// One step of a random driver or device. Besides raw accesses there are
/// driver steps (several accesses, as Linux makes them) so that runs reach
/// `DRIVER_OK`, ready queues and notifications often, not just refusals.
#[derive(Clone, Debug)]
enum Op {
    Read(u64, u8),
    Write(u64, u8, u64),
    /// `virtio_add_status` with one of the status bits.
    AddStatus(u64),
    /// Both `DriverFeatures` words.
    SetFeatures(u64),
    /// Linux's whole negotiation: reset, `ACKNOWLEDGE`, `DRIVER`, these
    /// features, `FEATURES_OK`.
    Negotiate(u64),
    /// `vm_setup_vq` for this queue, size, and base address of its areas.
    SetupQueue(u64, u64, u64),
    Notify(u64),
    Ack(u64),
    RaiseUsed,
    RaiseConfig,
    NeedsReset,
    UpdateConfig(usize, Vec<u8>),
}

/// Offsets biased towards registers and the configuration space.
fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => proptest::sample::select(Register::ALL.to_vec()).prop_map(Register::offset),
        2 => CONFIG..FRAME_SIZE,
        1 => 0..0x400u64,
        1 => any::<u64>(),
    ]
}

fn size() -> impl Strategy<Value = u8> {
    prop_oneof![8 => Just(4u8), 1 => Just(1u8), 1 => Just(2u8), 1 => any::<u8>()]
}

/// Values biased towards what registers take: status bits, small indices,
/// powers of two, aligned addresses.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..=0xff,
        2 => proptest::sample::select(vec![ACK, ACK | DRIVER, ACK | DRIVER | FEATURES_OK, 0xf, 0]),
        2 => (0u32..=16).prop_map(|shift| 1u64 << shift),
        1 => (0u64..0x1_0000).prop_map(|page| page << 12),
        1 => any::<u64>(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let bit = proptest::sample::select(vec![
        ACK,
        DRIVER,
        FEATURES_OK,
        DRIVER_OK,
        FAILED,
        NEEDS_RESET,
    ]);
    let features = prop_oneof![
        4 => Just(blk_info().features.bits()),
        1 => Just(Features::VERSION_1.bits()),
        1 => any::<u64>(),
    ];
    let queue_size =
        prop_oneof![4 => (0u32..=9).prop_map(|shift| 1u64 << shift), 1 => any::<u64>()];
    let base = prop_oneof![
        4 => (1u64..0x1_0000).prop_map(|page| page << 12),
        1 => any::<u64>(),
    ];
    prop_oneof![
        3 => (offset(), size()).prop_map(|(o, s)| Op::Read(o, s)),
        6 => (offset(), size(), value()).prop_map(|(o, s, v)| Op::Write(o, s, v)),
        3 => bit.prop_map(Op::AddStatus),
        1 => features.clone().prop_map(Op::SetFeatures),
        1 => features.prop_map(Op::Negotiate),
        2 => (0u64..3, queue_size, base).prop_map(|(q, s, b)| Op::SetupQueue(q, s, b)),
        2 => (0u64..3).prop_map(Op::Notify),
        1 => (0u64..4).prop_map(Op::Ack),
        1 => Just(Op::RaiseUsed),
        1 => Just(Op::RaiseConfig),
        1 => Just(Op::NeedsReset),
        1 => (0usize..16, proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(o, b)| Op::UpdateConfig(o, b)),
    ]
}

/// What must hold after every step.
fn check_invariants(t: &MmioTransport) -> Result<(), TestCaseError> {
    let status = t.status();
    prop_assert!(DeviceStatus::ALL.contains(status), "{status:?}");
    prop_assert!(status.is_in_order(), "{status:?}");
    prop_assert_eq!(u32::from(status.bits()), t.read(STATUS, 4).value);
    if let Some(features) = t.negotiated_features() {
        prop_assert!(t.device_features().contains(features));
        prop_assert!(features.contains(Features::VERSION_1));
        prop_assert!(!t.driver_features_beyond_64);
    }
    prop_assert!(InterruptStatus::ALL.contains(t.interrupt_status()));
    prop_assert_eq!(t.interrupt_line(), !t.interrupt_status().is_empty());
    if t.interrupt_line() {
        prop_assert!(status.contains(DeviceStatus::DRIVER_OK));
    }
    for (n, queue) in t.queues.iter().enumerate() {
        let QueueState {
            max, size, ready, ..
        } = *queue;
        prop_assert!(
            size.is_power_of_two() && size <= max,
            "queue {n}: {queue:?}"
        );
        let index = QueueIndex(n as u16);
        prop_assert_eq!(t.queue(index).is_some(), ready);
        if let Some(config) = t.queue(index) {
            prop_assert!(status.contains(DeviceStatus::FEATURES_OK));
            for area in [QueueArea::Descriptor, QueueArea::Driver, QueueArea::Device] {
                let address = config.address(area);
                prop_assert!(address.is_aligned(area.alignment()));
                prop_assert!(address.checked_add(config.area_size(area)).is_some());
            }
        }
    }
    if t.is_empty_slot() {
        prop_assert_eq!(t, &MmioTransport::empty());
    }
    Ok(())
}

/// Which events a run saw, to check the generator reaches them.
#[derive(Default)]
struct Seen {
    driver_ok: bool,
    queue_ready: bool,
    notify: bool,
    acked: bool,
}

/// A guest's read, checked.
fn checked_read(t: &MmioTransport, offset: u64, size: u8) -> Result<u32, TestCaseError> {
    let before = t.clone();
    let access = t.read(offset, size);
    if let Some(why) = access.ignored {
        prop_assert_eq!(access.value, 0);
        prop_assert!(!why.to_string().is_empty());
    }
    if size < 4 {
        prop_assert!(access.value < 1 << (8 * u32::from(size)));
    }
    prop_assert_eq!(t, &before, "reads change nothing");
    Ok(access.value)
}

/// A guest's write, checked, then the invariants.
fn checked_write(
    t: &mut MmioTransport,
    seen: &mut Seen,
    offset: u64,
    size: u8,
    value: u64,
) -> Result<(), TestCaseError> {
    let status_before = t.status();
    let access = t.write(offset, size, value);
    if let Some(why) = access.ignored {
        prop_assert!(!why.to_string().is_empty());
    }
    match access.value {
        Some(Event::Reset) => prop_assert_eq!(t.status(), DeviceStatus::NONE),
        Some(Event::DriverOk) => {
            seen.driver_ok = true;
            prop_assert!(!status_before.contains(DeviceStatus::DRIVER_OK));
            prop_assert!(t.status().contains(DeviceStatus::DRIVER_OK));
        }
        Some(Event::Failed) => {
            prop_assert!(!status_before.contains(DeviceStatus::FAILED));
            prop_assert!(t.status().contains(DeviceStatus::FAILED));
        }
        Some(Event::QueueReady(index, config)) => {
            seen.queue_ready = true;
            prop_assert_eq!(t.queue(index), Some(config));
        }
        Some(Event::QueueStopped(index)) => prop_assert_eq!(t.queue(index), None),
        Some(Event::Notify(index)) => {
            seen.notify = true;
            prop_assert!(t.queue(index).is_some());
            prop_assert!(t.status().contains(DeviceStatus::DRIVER_OK));
        }
        Some(Event::InterruptAcked(acked)) => {
            seen.acked = true;
            prop_assert!(!acked.is_empty());
            prop_assert!(t.interrupt_status().intersection(acked).is_empty());
        }
        Some(Event::ConfigWrite {
            offset,
            size,
            value,
        }) => {
            prop_assert!(usize::from(offset) + usize::from(size) <= t.config().len());
            prop_assert!(u64::from(value) < 1u64 << (8 * u32::from(size)));
        }
        None => {}
    }
    // Bits never go away but through a reset.
    if access.value != Some(Event::Reset) {
        prop_assert!(t.status().contains(status_before));
    }
    check_invariants(t)
}

fn run(mut t: MmioTransport, ops: Vec<Op>, seen: &mut Seen) -> Result<(), TestCaseError> {
    for op in ops {
        let status_before = t.status();
        match op {
            Op::Read(offset, size) => {
                checked_read(&t, offset, size)?;
            }
            Op::Write(offset, size, value) => checked_write(&mut t, seen, offset, size, value)?,
            Op::AddStatus(bit) => {
                let status = checked_read(&t, STATUS, 4)?;
                checked_write(&mut t, seen, STATUS, 4, u64::from(status) | bit)?;
            }
            Op::SetFeatures(features) => {
                for (select, word) in [(1, features >> 32), (0, features & 0xffff_ffff)] {
                    checked_write(&mut t, seen, DRIVER_FEATURES_SEL, 4, select)?;
                    checked_write(&mut t, seen, DRIVER_FEATURES, 4, word)?;
                }
            }
            Op::Negotiate(features) => {
                checked_write(&mut t, seen, STATUS, 4, 0)?;
                checked_write(&mut t, seen, STATUS, 4, ACK)?;
                checked_write(&mut t, seen, STATUS, 4, ACK | DRIVER)?;
                for (select, word) in [(1, features >> 32), (0, features & 0xffff_ffff)] {
                    checked_write(&mut t, seen, DRIVER_FEATURES_SEL, 4, select)?;
                    checked_write(&mut t, seen, DRIVER_FEATURES, 4, word)?;
                }
                checked_write(&mut t, seen, STATUS, 4, ACK | DRIVER | FEATURES_OK)?;
            }
            Op::SetupQueue(queue, size, base) => {
                checked_write(&mut t, seen, QUEUE_SEL, 4, queue)?;
                checked_write(&mut t, seen, QUEUE_NUM, 4, size)?;
                for (register, address) in [
                    (QUEUE_DESC_LOW, base),
                    (QUEUE_AVAIL_LOW, base.wrapping_add(0x1000)),
                    (QUEUE_USED_LOW, base.wrapping_add(0x2000)),
                ] {
                    checked_write(&mut t, seen, register, 4, address & 0xffff_ffff)?;
                    checked_write(&mut t, seen, register + 4, 4, address >> 32)?;
                }
                checked_write(&mut t, seen, QUEUE_READY, 4, 1)?;
            }
            Op::Notify(queue) => checked_write(&mut t, seen, QUEUE_NOTIFY, 4, queue)?,
            Op::Ack(bits) => checked_write(&mut t, seen, INTERRUPT_ACK, 4, bits)?,
            Op::RaiseUsed => {
                let raised = t.raise_used_buffer();
                prop_assert_eq!(raised, status_before.contains(DeviceStatus::DRIVER_OK));
            }
            Op::RaiseConfig => {
                let raised = t.raise_config_change();
                prop_assert_eq!(raised, status_before.contains(DeviceStatus::DRIVER_OK));
            }
            Op::NeedsReset => t.set_needs_reset(),
            Op::UpdateConfig(offset, bytes) => {
                let fits = offset + bytes.len() <= t.config().len();
                let generation = t.config_generation();
                prop_assert_eq!(t.update_config(offset, &bytes).is_ok(), fits);
                if !fits {
                    prop_assert_eq!(t.config_generation(), generation);
                }
            }
        }
        check_invariants(&t)?;
    }
    Ok(())
}

/// Starts some runs from a device Linux negotiated with or fully probed,
/// so that queue setup and notifications are exercised, not just refused.
fn start() -> impl Strategy<Value = MmioTransport> {
    prop_oneof![2 => Just(blk()), 1 => Just(negotiated()), 1 => Just(live())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_access_sequence_keeps_the_invariants(
        t in start(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        run(t, ops, &mut Seen::default())?;
    }

    #[test]
    fn an_empty_slot_stays_empty(ops in proptest::collection::vec(op(), 0..100)) {
        run(MmioTransport::empty(), ops, &mut Seen::default())?;
    }
}

/// The generator is only as good as the states it reaches: over a fixed
/// set of runs, devices must go live, queues get enabled, notifications
/// and acknowledgements happen.
#[test]
fn the_random_driver_reaches_the_interesting_states() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = Seen::default();
    for _ in 0..64 {
        let ops = proptest::collection::vec(op(), 100..200)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        run(blk(), ops, &mut seen).unwrap();
    }
    assert!(seen.driver_ok, "no run reached DRIVER_OK");
    assert!(seen.queue_ready, "no run enabled a queue");
    assert!(seen.notify, "no run notified a queue");
    assert!(seen.acked, "no run acknowledged an interrupt");
}
