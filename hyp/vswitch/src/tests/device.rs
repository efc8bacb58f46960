//! virtio-net device: features, configuration space, transmit and receive
//! chains of every shape Linux uses and some it does not.

use std::string::ToString;
use std::vec;
use std::vec::Vec;

use virtqueue::{
    ChainPart, QueueError, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1,
};

use super::{frame, Buf, Driver, BROADCAST, DATA, MAC_A, MAC_B};
use crate::{
    DropReason, NetDevice, RxOutcome, Tx, CONFIG_SIZE, HEADER_SIZE, MAX_FRAME, MAX_FRAME_VLAN,
    VIRTIO_NET_F_CSUM, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_MAC, VIRTIO_NET_F_MQ, VIRTIO_NET_F_MRG_RXBUF,
    VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS,
};

/// Linux's receive buffer without mergeable buffers or big packets: one
/// descriptor of header plus `GOOD_PACKET_LEN` (1518).
const LINUX_RX_BUF: u32 = HEADER_SIZE as u32 + MAX_FRAME_VLAN as u32;

/// A transmit header with `flags` and `gso_type`.
fn tx_header(flags: u8, gso_type: u8) -> [u8; HEADER_SIZE] {
    let mut header = [0; HEADER_SIZE];
    header[0] = flags;
    header[1] = gso_type;
    header
}

/// Header then frame, as the driver puts them in memory.
fn packet(header: [u8; HEADER_SIZE], frame: &[u8]) -> Vec<u8> {
    let mut packet = header.to_vec();
    packet.extend_from_slice(frame);
    packet
}

/// The header the device must write in front of a received frame.
fn rx_header() -> [u8; HEADER_SIZE] {
    let mut header = [0; HEADER_SIZE];
    header[10] = 1;
    header
}

#[test]
fn features_and_config_space() {
    let dev = NetDevice::new(MAC_A);
    assert_eq!(dev.mac(), MAC_A);
    let features = dev.features();
    for wanted in [
        VIRTIO_F_VERSION_1,
        VIRTIO_F_INDIRECT_DESC,
        VIRTIO_F_EVENT_IDX,
        VIRTIO_NET_F_MAC,
        VIRTIO_NET_F_STATUS,
    ] {
        assert_ne!(features & wanted, 0, "{wanted:#x}");
    }
    for unwanted in [
        VIRTIO_NET_F_CSUM,
        VIRTIO_NET_F_GUEST_CSUM,
        VIRTIO_NET_F_MTU,
        VIRTIO_NET_F_GUEST_TSO4,
        VIRTIO_NET_F_HOST_TSO4,
        VIRTIO_NET_F_MRG_RXBUF,
        VIRTIO_NET_F_CTRL_VQ,
        VIRTIO_NET_F_MQ,
    ] {
        assert_eq!(features & unwanted, 0, "{unwanted:#x}");
    }
    assert_eq!(
        features,
        VIRTIO_F_VERSION_1
            | VIRTIO_F_INDIRECT_DESC
            | VIRTIO_F_EVENT_IDX
            | VIRTIO_NET_F_MAC
            | VIRTIO_NET_F_STATUS
    );
    let config = dev.config_space();
    assert_eq!(config.len(), CONFIG_SIZE);
    assert_eq!(config, [0x52, 0x54, 0, 0x12, 0x34, 1, 1, 0]);
}

/// Linux 6.1 `xmit_skb` with headroom: header pushed in front of the frame,
/// one descriptor.
#[test]
fn transmit_header_and_frame_in_one_buffer() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_A);
    let sent = frame(MAC_B, MAC_A, 100);
    let bytes = packet(tx_header(0, 0), &sent);
    drv.mem.put(DATA, &bytes);
    let chain = drv.chain(&[Buf::r(DATA, bytes.len() as u32)]);
    assert_eq!(dev.transmit(&chain, &drv.mem), Ok(Tx::Frame(sent)));
    assert_eq!(dev.stats().tx_frames, 1);
}

/// Header in its own buffer, the frame in several (a fragmented skb), and
/// the same through an indirect table; splits inside the header too.
#[test]
fn transmit_split_across_descriptors() {
    let mut dev = NetDevice::new(MAC_A);
    let sent = frame(BROADCAST, MAC_A, MAX_FRAME - 14);
    let bytes = packet(tx_header(0, 0), &sent);
    let total = bytes.len() as u32;
    let layouts: [&[u32]; 5] = [
        &[12, total - 12],
        &[12, 14, 500, total - 526],
        &[5, 7, total - 12],
        &[20, total - 20],
        &[0, 12, 0, total - 12],
    ];
    for layout in layouts {
        for indirect in [false, true] {
            let mut drv = Driver::new();
            let mut bufs = Vec::new();
            let mut offset = 0;
            for (i, &len) in layout.iter().enumerate() {
                // Scattered, in reverse order in memory.
                let gpa = DATA + 0x4000 - 0x800 * i as u64;
                drv.mem.put(gpa, &bytes[offset..offset + len as usize]);
                bufs.push(Buf::r(gpa, len));
                offset += len as usize;
            }
            let chain = if indirect {
                drv.indirect_chain(&bufs)
            } else {
                drv.chain(&bufs)
            };
            assert_eq!(
                dev.transmit(&chain, &drv.mem),
                Ok(Tx::Frame(sent.clone())),
                "{layout:?} indirect {indirect}"
            );
        }
    }
}

#[test]
fn transmit_drops_runts_and_giants() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_A);
    for (frame_len, expected) in [
        (0, Some(DropReason::Runt(0))),
        (13, Some(DropReason::Runt(13))),
        (14, None),
        (MAX_FRAME, None),
        (MAX_FRAME_VLAN, None),
        (
            MAX_FRAME_VLAN + 1,
            Some(DropReason::TooLong(MAX_FRAME_VLAN + 1)),
        ),
        (9000, Some(DropReason::TooLong(9000))),
    ] {
        let mut bytes = tx_header(0, 0).to_vec();
        bytes.extend((0..frame_len).map(|i| i as u8));
        drv.mem.put(DATA, &bytes);
        let chain = drv.chain(&[Buf::r(DATA, bytes.len() as u32)]);
        let tx = dev.transmit(&chain, &drv.mem).unwrap();
        match expected {
            Some(reason) => assert_eq!(tx, Tx::Dropped(reason)),
            None => assert_eq!(tx, Tx::Frame(bytes[HEADER_SIZE..].to_vec())),
        }
    }
    assert_eq!(dev.stats().tx_frames, 3);
    assert_eq!(dev.stats().tx_dropped, 4);
}

/// A guest claiming a chain of gigabytes is dropped by its length alone:
/// nothing is allocated or read past the header.
#[test]
fn transmit_giant_chain_is_not_read() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_A);
    drv.mem.put(DATA, &tx_header(0, 0));
    // Two buffers of the whole memory each: the chain is valid, 2 MiB.
    let whole = super::MEM_SIZE as u32;
    let chain = drv.chain(&[Buf::r(super::BASE, whole), Buf::r(super::BASE, whole)]);
    assert_eq!(
        dev.transmit(&chain, &drv.mem),
        Ok(Tx::Dropped(DropReason::TooLong(
            2 * whole as usize - HEADER_SIZE
        )))
    );
}

#[test]
fn transmit_refuses_offloads() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_A);
    let sent = frame(MAC_B, MAC_A, 64);
    for (flags, gso_type, expected) in [
        // NEEDS_CSUM.
        (1, 0, Tx::Dropped(DropReason::Offload)),
        // GSO_TCPV4, TCPV6, UDP, and ECN alone.
        (0, 1, Tx::Dropped(DropReason::Offload)),
        (0, 4, Tx::Dropped(DropReason::Offload)),
        (0, 3, Tx::Dropped(DropReason::Offload)),
        (0, 0x80, Tx::Dropped(DropReason::Offload)),
        (1, 1, Tx::Dropped(DropReason::Offload)),
        // DATA_VALID and unknown bits are ignored (§5.1.6.2.2).
        (2, 0, Tx::Frame(sent.clone())),
        (0x80, 0, Tx::Frame(sent.clone())),
    ] {
        let bytes = packet(tx_header(flags, gso_type), &sent);
        drv.mem.put(DATA, &bytes);
        let chain = drv.chain(&[Buf::r(DATA, bytes.len() as u32)]);
        assert_eq!(
            dev.transmit(&chain, &drv.mem),
            Ok(expected),
            "flags {flags:#x} gso_type {gso_type:#x}"
        );
    }
    // The other header fields mean nothing without offloads.
    let mut header = [0xa5; HEADER_SIZE];
    header[0] = 0;
    header[1] = 0;
    let bytes = packet(header, &sent);
    drv.mem.put(DATA, &bytes);
    let chain = drv.chain(&[Buf::r(DATA, bytes.len() as u32)]);
    assert_eq!(dev.transmit(&chain, &drv.mem), Ok(Tx::Frame(sent)));
}

#[test]
fn transmit_refuses_chains_that_are_not_tx_buffers() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_A);
    drv.mem
        .put(DATA, &packet(tx_header(0, 0), &frame(MAC_B, MAC_A, 50)));
    // No readable byte.
    let chain = drv.chain(&[Buf::w(DATA, 100)]);
    assert_eq!(
        dev.transmit(&chain, &drv.mem),
        Err(QueueError::BeyondChain {
            part: ChainPart::Writable,
            offset: 0,
            len: 100,
            available: 0
        })
    );
    // A header and frame, but also a writable buffer.
    let chain = drv.chain(&[Buf::r(DATA, 76), Buf::w(DATA + 0x1000, 1)]);
    assert!(matches!(
        dev.transmit(&chain, &drv.mem),
        Err(QueueError::BeyondChain {
            part: ChainPart::Writable,
            ..
        })
    ));
    // Shorter than a header.
    for len in [0, 1, 11] {
        let chain = drv.chain(&[Buf::r(DATA, len)]);
        assert_eq!(
            dev.transmit(&chain, &drv.mem),
            Err(QueueError::BeyondChain {
                part: ChainPart::Readable,
                offset: 0,
                len: HEADER_SIZE as u64,
                available: len
            }),
            "{len}"
        );
    }
    // A header alone is a (runt) packet.
    let chain = drv.chain(&[Buf::r(DATA, 12)]);
    assert_eq!(
        dev.transmit(&chain, &drv.mem),
        Ok(Tx::Dropped(DropReason::Runt(0)))
    );
    assert_eq!(dev.stats().tx_frames, 0);
}

/// Linux 6.1 `add_recvbuf_small`: one writable descriptor of 1530 bytes.
#[test]
fn receive_into_linux_buffer() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_B);
    for len in [14, 60, MAX_FRAME, MAX_FRAME_VLAN] {
        drv.mem.put(DATA, &[0xee; LINUX_RX_BUF as usize]);
        let chain = drv.chain(&[Buf::w(DATA, LINUX_RX_BUF)]);
        let received = frame(MAC_B, MAC_A, len - 14);
        let used_len = (HEADER_SIZE + len) as u32;
        assert_eq!(
            dev.receive(&chain, &drv.mem, &received),
            Ok(RxOutcome::Delivered { used_len })
        );
        assert_eq!(
            drv.mem.get(DATA, used_len as usize),
            packet(rx_header(), &received)
        );
        // Nothing past the used length was touched.
        assert!(drv
            .mem
            .get(
                DATA + u64::from(used_len),
                (LINUX_RX_BUF - used_len) as usize
            )
            .iter()
            .all(|&b| b == 0xee));
    }
    assert_eq!(dev.stats().rx_frames, 4);
}

/// Header and frame split over descriptors every which way, direct and
/// indirect; the frame fills the chain exactly or not.
#[test]
fn receive_split_across_descriptors() {
    let mut dev = NetDevice::new(MAC_B);
    let received = frame(MAC_B, MAC_A, 186);
    let expected = packet(rx_header(), &received);
    let total = expected.len() as u32;
    let layouts: [&[u32]; 6] = [
        &[12, 200],
        &[12, total - 12],
        &[3, 9, 1, 1, 500],
        &[7, 100, 110],
        &[total],
        &[0, 12, 0, total - 12, 0],
    ];
    for layout in layouts {
        for indirect in [false, true] {
            let mut drv = Driver::new();
            let bufs: Vec<Buf> = layout
                .iter()
                .enumerate()
                .map(|(i, &len)| Buf::w(DATA + 0x4000 - 0x800 * i as u64, len))
                .collect();
            let chain = if indirect {
                drv.indirect_chain(&bufs)
            } else {
                drv.chain(&bufs)
            };
            assert_eq!(
                dev.receive(&chain, &drv.mem, &received),
                Ok(RxOutcome::Delivered { used_len: total }),
                "{layout:?} indirect {indirect}"
            );
            let mut written = Vec::new();
            for buf in &bufs {
                let want = (expected.len() - written.len()).min(buf.len as usize);
                written.extend(drv.mem.get(buf.gpa, want));
            }
            assert_eq!(written, expected, "{layout:?} indirect {indirect}");
        }
    }
}

#[test]
fn receive_into_too_small_chain_writes_nothing() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_B);
    let received = frame(MAC_B, MAC_A, 100);
    let needed = (HEADER_SIZE + received.len()) as u32;
    for layout in [vec![needed - 1], vec![HEADER_SIZE as u32], vec![12, 50, 50]] {
        drv.mem.put(DATA, &[0xee; 0x3000]);
        let bufs: Vec<Buf> = layout
            .iter()
            .enumerate()
            .map(|(i, &len)| Buf::w(DATA + 0x1000 * i as u64, len))
            .collect();
        let chain = drv.chain(&bufs);
        let outcome = dev.receive(&chain, &drv.mem, &received).unwrap();
        assert_eq!(outcome, RxOutcome::TooSmall { used_len: 0 }, "{layout:?}");
        assert_eq!(outcome.used_len(), 0);
        assert!(drv.mem.get(DATA, 0x3000).iter().all(|&b| b == 0xee));
    }
    assert_eq!(dev.stats().rx_too_small, 3);
    assert_eq!(dev.stats().rx_frames, 0);
}

#[test]
fn receive_refuses_chains_that_are_not_rx_buffers() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(MAC_B);
    let received = frame(MAC_B, MAC_A, 100);
    // Readable buffers, with or without writable ones after them.
    for bufs in [
        vec![Buf::r(DATA, 2000)],
        vec![Buf::r(DATA, 1), Buf::w(DATA + 0x1000, 2000)],
    ] {
        let chain = drv.chain(&bufs);
        assert!(
            matches!(
                dev.receive(&chain, &drv.mem, &received),
                Err(QueueError::BeyondChain {
                    part: ChainPart::Readable,
                    ..
                })
            ),
            "{bufs:?}"
        );
    }
    // Not even room for a header.
    for len in [0, 11] {
        let chain = drv.chain(&[Buf::w(DATA, len)]);
        let err = dev.receive(&chain, &drv.mem, &received).unwrap_err();
        assert_eq!(
            err,
            QueueError::BeyondChain {
                part: ChainPart::Writable,
                offset: 0,
                len: HEADER_SIZE as u64,
                available: len
            }
        );
        assert!(!err.to_string().is_empty());
    }
}

/// Transmitted by one device, received by another: the bytes the second
/// guest sees are the bytes the first one sent.
#[test]
fn frame_from_one_guest_to_another() {
    let mut a_drv = Driver::new();
    let mut b_drv = Driver::new();
    let mut a = NetDevice::new(MAC_A);
    let mut b = NetDevice::new(MAC_B);
    let sent = frame(MAC_B, MAC_A, 1000);
    a_drv.mem.put(DATA, &packet(tx_header(0, 0), &sent));
    let tx_chain = a_drv.chain(&[Buf::r(DATA, 12), Buf::r(DATA + 12, sent.len() as u32)]);
    let Ok(Tx::Frame(on_wire)) = a.transmit(&tx_chain, &a_drv.mem) else {
        panic!("frame not transmitted");
    };
    let rx_chain = b_drv.chain(&[Buf::w(DATA, LINUX_RX_BUF)]);
    let outcome = b.receive(&rx_chain, &b_drv.mem, &on_wire).unwrap();
    assert_eq!(outcome.used_len() as usize, HEADER_SIZE + sent.len());
    assert_eq!(b_drv.mem.get(DATA + HEADER_SIZE as u64, sent.len()), sent);
}

#[test]
fn drop_reasons_display() {
    for (reason, text) in [
        (
            DropReason::Runt(3),
            "runt frame of 3 bytes, shorter than an Ethernet header (14)",
        ),
        (
            DropReason::TooLong(1519),
            "frame of 1519 bytes, longer than 1518 (MTU 1500 and a VLAN tag)",
        ),
        (
            DropReason::SpoofedSource,
            "source address is not the port's own MAC",
        ),
        (DropReason::NoRoom, "receiver's backlog full"),
    ] {
        assert_eq!(reason.to_string(), text);
    }
    for reason in [
        DropReason::Offload,
        DropReason::UnknownDestination,
        DropReason::ToSender,
        DropReason::UnknownPort,
    ] {
        assert!(!reason.to_string().is_empty());
    }
}
