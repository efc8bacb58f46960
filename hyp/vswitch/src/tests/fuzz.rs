//! Property tests with arbitrary guests.
//!
//! - Chains: transmit and receive chains of arbitrary shape (any number of
//!   readable and writable buffers of any length, zero included, direct or
//!   through an indirect table) over arbitrary bytes, and arbitrary frames.
//!   Nothing panics, and the result is what a separately written model of
//!   the rules says, down to the bytes written into guest memory.
//! - Switch: arbitrary ports on a few networks (duplicate, multicast and
//!   zero MACs among them), removals, and frames with arbitrary addresses
//!   and lengths from arbitrary ports, checked against a model.
//! - Networks end to end: several VMs, each with its own memory, device and
//!   backlog, sending arbitrary packets and receiving into arbitrary chains.
//!   Every frame a guest receives was sent, byte for byte, by another VM on
//!   its network, from that VM's own MAC; nothing crosses networks.
//!
//! The case count is `PROPTEST_CASES`, 2 000 by default.

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use proptest::prelude::*;
use virtqueue::{GuestMemory, QueueError};

use super::{Buf, Driver, DATA};
use crate::{
    Backlog, DropReason, NetDevice, PortId, Route, RxOutcome, Switch, Tx, HEADER_SIZE,
    MAX_FRAME_VLAN, MIN_FRAME,
};

/// Cases to run: `PROPTEST_CASES`, or 2 000.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Room for each buffer of a generated chain: buffers never overlap.
const SLOT: u64 = 0x1000;

/// A chain's buffer lengths: readable ones, then writable ones.
#[derive(Clone, Debug)]
struct Shape {
    readable: Vec<u32>,
    writable: Vec<u32>,
    indirect: bool,
}

/// Buffer lengths, mostly small, some around a packet's size.
fn buffer_len() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => 0..=16u32,
        3 => 0..=1600u32,
        1 => Just(HEADER_SIZE as u32),
        1 => Just((HEADER_SIZE + MAX_FRAME_VLAN) as u32),
        1 => (SLOT as u32 - 8)..=SLOT as u32,
    ]
}

fn shape() -> impl Strategy<Value = Shape> {
    (
        prop::collection::vec(buffer_len(), 0..5),
        prop::collection::vec(buffer_len(), 0..5),
        any::<bool>(),
    )
        .prop_filter("a chain has a buffer", |(r, w, _)| {
            !r.is_empty() || !w.is_empty()
        })
        .prop_map(|(readable, writable, indirect)| Shape {
            readable,
            writable,
            indirect,
        })
}

impl Shape {
    fn bufs(&self) -> Vec<Buf> {
        let readable = self.readable.iter().map(|&len| (len, false));
        let writable = self.writable.iter().map(|&len| (len, true));
        readable
            .chain(writable)
            .enumerate()
            .map(|(i, (len, writable))| Buf {
                gpa: DATA + SLOT * i as u64,
                len,
                writable,
            })
            .collect()
    }
}

/// The bytes of `bufs` in `drv`'s memory, in chain order.
fn gather(drv: &Driver, bufs: &[Buf]) -> Vec<u8> {
    bufs.iter()
        .flat_map(|buf| drv.mem.get(buf.gpa, buf.len as usize))
        .collect()
}

/// What `transmit` must do with a chain whose readable buffers hold
/// `bytes` and whose writable part has `writable` bytes.
fn tx_model(bytes: &[u8], writable: u32) -> Result<Tx, ()> {
    if writable > 0 || bytes.len() < HEADER_SIZE {
        return Err(());
    }
    let (flags, gso_type) = (bytes[0], bytes[1]);
    if flags & 1 != 0 || gso_type != 0 {
        return Ok(Tx::Dropped(DropReason::Offload));
    }
    let frame = &bytes[HEADER_SIZE..];
    Ok(if frame.len() < MIN_FRAME {
        Tx::Dropped(DropReason::Runt(frame.len()))
    } else if frame.len() > MAX_FRAME_VLAN {
        Tx::Dropped(DropReason::TooLong(frame.len()))
    } else {
        Tx::Frame(frame.to_vec())
    })
}

/// Arbitrary packet bytes: sometimes a clean header (so that frames get
/// through), sometimes anything.
fn packet_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..(3 * SLOT as usize)),
    )
        .prop_map(|(clean, mut bytes)| {
            if clean {
                for b in bytes.iter_mut().take(HEADER_SIZE) {
                    *b = 0;
                }
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn transmit_matches_model(shape in shape(), bytes in packet_bytes()) {
        let mut drv = Driver::new();
        let bufs = shape.bufs();
        let mut offset = 0;
        for buf in &bufs {
            let end = (offset + buf.len as usize).min(bytes.len());
            let start = offset.min(end);
            drv.mem.put(buf.gpa, &bytes[start..end]);
            offset += buf.len as usize;
        }
        let chain = if shape.indirect { drv.indirect_chain(&bufs) } else { drv.chain(&bufs) };
        let readable: Vec<Buf> = bufs.iter().copied().filter(|b| !b.writable).collect();
        let expected = tx_model(&gather(&drv, &readable), chain.writable_len());
        let before = drv.mem.bytes.borrow().clone();
        let mut dev = NetDevice::new(super::MAC_A);
        let got = dev.transmit(&chain, &drv.mem);
        match (&got, expected) {
            (Err(QueueError::BeyondChain { .. }), Err(())) => {}
            (Ok(tx), Ok(model)) => prop_assert_eq!(tx, &model),
            (got, model) => prop_assert!(false, "got {:?}, model {:?}", got, model),
        }
        // Transmitting never writes guest memory.
        prop_assert!(*drv.mem.bytes.borrow() == before);
    }

    #[test]
    fn receive_matches_model(
        shape in shape(),
        frame in prop::collection::vec(any::<u8>(), 0..=(MAX_FRAME_VLAN + 20)),
    ) {
        let mut drv = Driver::new();
        let bufs = shape.bufs();
        for buf in &bufs {
            drv.mem.put(buf.gpa, &vec![0xee; SLOT as usize]);
        }
        let chain = if shape.indirect { drv.indirect_chain(&bufs) } else { drv.chain(&bufs) };
        let writable: Vec<Buf> = bufs.iter().copied().filter(|b| b.writable).collect();
        let before = drv.mem.bytes.borrow().clone();
        let mut dev = NetDevice::new(super::MAC_B);
        let got = dev.receive(&chain, &drv.mem, &frame);
        let room = chain.writable_len() as usize;
        let needed = HEADER_SIZE + frame.len();
        if chain.readable_len() > 0 || room < HEADER_SIZE {
            prop_assert!(matches!(got, Err(QueueError::BeyondChain { .. })), "{:?}", got);
            prop_assert!(*drv.mem.bytes.borrow() == before);
        } else if room < needed {
            prop_assert_eq!(got, Ok(RxOutcome::TooSmall { used_len: 0 }));
            prop_assert!(*drv.mem.bytes.borrow() == before);
        } else {
            prop_assert_eq!(got, Ok(RxOutcome::Delivered { used_len: needed as u32 }));
            let written = gather(&drv, &writable);
            let mut expected = vec![0; HEADER_SIZE];
            expected[10] = 1;
            expected.extend_from_slice(&frame);
            prop_assert_eq!(&written[..needed], &expected[..]);
            prop_assert!(written[needed..].iter().all(|&b| b == 0xee));
        }
    }
}

/// A small pool of MACs, so that ports collide and frames find them; the
/// last ones are not valid port addresses.
const MACS: [[u8; 6]; 6] = [
    [0x52, 0x54, 0, 0, 0, 1],
    [0x52, 0x54, 0, 0, 0, 2],
    [0x52, 0x54, 0, 0, 0, 3],
    [0x02, 0, 0, 0, 0, 4],
    [0x33, 0x33, 0, 0, 0, 1],
    [0; 6],
];
const NETWORKS: [&str; 3] = ["lan0", "lan1", "dmz"];

/// A destination or source address for a generated frame.
fn address() -> impl Strategy<Value = [u8; 6]> {
    prop_oneof![
        4 => (0..MACS.len()).prop_map(|i| MACS[i]),
        1 => Just([0xff; 6]),
        1 => any::<[u8; 6]>(),
    ]
}

/// One thing that happens on the switch.
#[derive(Clone, Debug)]
enum SwitchOp {
    Add {
        network: usize,
        mac: usize,
    },
    Remove {
        port: u32,
    },
    Send {
        from: u32,
        dst: [u8; 6],
        src: [u8; 6],
        len: usize,
    },
}

fn switch_op() -> impl Strategy<Value = SwitchOp> {
    prop_oneof![
        2 => (0..NETWORKS.len(), 0..MACS.len())
            .prop_map(|(network, mac)| SwitchOp::Add { network, mac }),
        1 => (0..12u32).prop_map(|port| SwitchOp::Remove { port }),
        6 => (0..12u32, address(), address(), 0..=(MAX_FRAME_VLAN + 2))
            .prop_map(|(from, dst, src, len)| SwitchOp::Send { from, dst, src, len }),
    ]
}

/// The switch as a plain list of `(port, network, mac)`.
type SwitchModel = Vec<(PortId, usize, [u8; 6])>;

fn route_model(model: &SwitchModel, from: PortId, frame: &[u8]) -> Route {
    let Some(&(_, network, mac)) = model.iter().find(|p| p.0 == from) else {
        return Route::Dropped(DropReason::UnknownPort);
    };
    if frame.len() < MIN_FRAME {
        return Route::Dropped(DropReason::Runt(frame.len()));
    }
    if frame.len() > MAX_FRAME_VLAN {
        return Route::Dropped(DropReason::TooLong(frame.len()));
    }
    if frame[6..12] != mac {
        return Route::Dropped(DropReason::SpoofedSource);
    }
    let mut others = model.iter().filter(|p| p.1 == network && p.0 != from);
    if frame[0] & 1 != 0 {
        let mut ports: Vec<PortId> = others.map(|p| p.0).collect();
        ports.sort();
        return Route::To(ports);
    }
    if frame[..6] == mac {
        return Route::Dropped(DropReason::ToSender);
    }
    match others.find(|p| frame[..6] == p.2) {
        Some(p) => Route::To(vec![p.0]),
        None => Route::Dropped(DropReason::UnknownDestination),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn switch_matches_model(ops in prop::collection::vec(switch_op(), 0..40)) {
        let mut switch = Switch::default();
        let mut model = SwitchModel::new();
        for op in ops {
            match op {
                SwitchOp::Add { network, mac } => {
                    let mac = MACS[mac];
                    let valid = mac[0] & 1 == 0 && mac != [0; 6];
                    let taken = model.iter().any(|p| p.1 == network && p.2 == mac);
                    match switch.add_port(NETWORKS[network], mac) {
                        Ok(port) => {
                            prop_assert!(valid && !taken);
                            prop_assert!(model.iter().all(|p| p.0 != port));
                            model.push((port, network, mac));
                        }
                        Err(_) => prop_assert!(!valid || taken),
                    }
                }
                SwitchOp::Remove { port } => {
                    switch.remove_port(PortId(port));
                    model.retain(|p| p.0 != PortId(port));
                }
                SwitchOp::Send { from, dst, src, len } => {
                    let mut frame = super::frame(dst, src, len.saturating_sub(MIN_FRAME));
                    frame.truncate(len);
                    let from = PortId(from);
                    let route = switch.route(from, &frame);
                    prop_assert_eq!(&route, &route_model(&model, from, &frame));
                    if let Route::To(ports) = route {
                        for port in ports {
                            prop_assert_ne!(port, from);
                            prop_assert_eq!(switch.network_of(port), switch.network_of(from));
                        }
                    }
                }
            }
            prop_assert_eq!(switch.port_count(), model.len());
            for &(port, network, mac) in &model {
                prop_assert_eq!(switch.network_of(port), Some(NETWORKS[network]));
                prop_assert_eq!(switch.mac_of(port), Some(mac));
            }
        }
    }
}

/// One VM of the end-to-end test.
struct Vm {
    network: usize,
    mac: [u8; 6],
    port: Option<PortId>,
    dev: NetDevice,
    drv: Driver,
    backlog: Backlog,
    /// Which VM sent each frame in `backlog`, in the same order.
    origins: VecDeque<usize>,
}

/// One thing a VM does.
#[derive(Clone, Debug)]
enum VmOp {
    /// Transmit a packet: the header's flags and gso_type, a destination
    /// (a VM's MAC, broadcast or anything), a source (its own MAC or
    /// anything), a frame length, and how the packet is split.
    Send {
        vm: usize,
        header: (u8, u8),
        dst: (bool, usize, [u8; 6]),
        src: (bool, [u8; 6]),
        len: usize,
        shape: Shape,
    },
    /// Offer receive chains of this shape until the backlog is empty.
    Receive { vm: usize, shape: Shape },
}

fn vm_op(vms: usize) -> impl Strategy<Value = VmOp> {
    let header = prop_oneof![4 => Just((0u8, 0u8)), 1 => any::<(u8, u8)>()];
    let dst = (any::<bool>(), 0..vms, address());
    let src =
        prop_oneof![4 => Just((true, [0; 6])), 1 => any::<[u8; 6]>().prop_map(|m| (false, m))];
    let len = prop_oneof![4 => MIN_FRAME..=MAX_FRAME_VLAN, 1 => 0..=(MAX_FRAME_VLAN + 2)];
    prop_oneof![
        (0..vms, header, dst, src, len, shape()).prop_map(|(vm, header, dst, src, len, shape)| {
            VmOp::Send {
                vm,
                header,
                dst,
                src,
                len,
                shape,
            }
        }),
        (0..vms, rx_shape()).prop_map(|(vm, shape)| VmOp::Receive { vm, shape }),
    ]
}

/// Receive chains: mostly writable only, as a driver makes them.
fn rx_shape() -> impl Strategy<Value = Shape> {
    (shape(), 0..4u8).prop_map(|(mut shape, odd)| {
        if odd != 0 {
            shape.readable.clear();
        }
        if shape.readable.is_empty() && shape.writable.is_empty() {
            shape.writable.push((HEADER_SIZE + MAX_FRAME_VLAN) as u32);
        }
        shape
    })
}

fn network_case() -> impl Strategy<Value = (Vec<(usize, usize)>, Vec<VmOp>)> {
    (2..6usize).prop_flat_map(|vms| {
        (
            prop::collection::vec((0..NETWORKS.len(), 0..4usize), vms),
            prop::collection::vec(vm_op(vms), 0..30),
        )
    })
}

/// Lays `packet` out in `vm`'s memory as a transmit chain split as
/// `shape`'s readable buffers say, the rest in one more buffer.
fn tx_chain(vm: &mut Vm, shape: &Shape, packet: &[u8]) -> virtqueue::Chain {
    let mut bufs = Vec::new();
    let mut offset = 0;
    for (i, &len) in shape.readable.iter().enumerate() {
        let len = (len as usize).min(packet.len() - offset);
        let gpa = DATA + SLOT * i as u64;
        vm.drv.mem.put(gpa, &packet[offset..offset + len]);
        bufs.push(Buf::r(gpa, len as u32));
        offset += len;
    }
    if offset < packet.len() || bufs.is_empty() {
        let gpa = DATA + SLOT * bufs.len() as u64;
        vm.drv.mem.put(gpa, &packet[offset..]);
        bufs.push(Buf::r(gpa, (packet.len() - offset) as u32));
    }
    if shape.indirect {
        vm.drv.indirect_chain(&bufs)
    } else {
        vm.drv.chain(&bufs)
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases() / 4,
        ..ProptestConfig::default()
    })]

    #[test]
    fn networks_never_leak((setup, ops) in network_case()) {
        let mut switch = Switch::default();
        let mut vms: Vec<Vm> = setup
            .iter()
            .map(|&(network, mac)| {
                let mac = MACS[mac];
                let port = switch.add_port(NETWORKS[network], mac).ok();
                Vm {
                    network,
                    mac,
                    port,
                    dev: NetDevice::new(mac),
                    drv: Driver::new(),
                    backlog: Backlog::new(3),
                    origins: VecDeque::new(),
                }
            })
            .collect();
        // What each VM sent, in order, to check received bytes against.
        let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(); vms.len()];
        for op in ops {
            match op {
                VmOp::Send { vm, header, dst, src, len, shape } => {
                    let dst = if dst.0 { vms[dst.1].mac } else { dst.2 };
                    let src = if src.0 { vms[vm].mac } else { src.1 };
                    let mut frame = super::frame(dst, src, len.saturating_sub(MIN_FRAME));
                    frame.truncate(len);
                    let mut packet = vec![0; HEADER_SIZE];
                    packet[0] = header.0;
                    packet[1] = header.1;
                    packet.extend_from_slice(&frame);
                    let chain = tx_chain(&mut vms[vm], &shape, &packet);
                    let sender = &mut vms[vm];
                    let tx = sender.dev.transmit(&chain, &sender.drv.mem);
                    let Ok(Tx::Frame(on_wire)) = tx else { continue };
                    prop_assert_eq!(&on_wire, &frame);
                    let Some(from) = sender.port else { continue };
                    let Route::To(ports) = switch.route(from, &on_wire) else { continue };
                    // Only a frame from the sender's own MAC gets anywhere.
                    prop_assert_eq!(&on_wire[6..12], &vms[vm].mac[..]);
                    sent[vm].push(on_wire.clone());
                    for port in ports {
                        let to = vms.iter().position(|v| v.port == Some(port));
                        prop_assert!(to.is_some(), "{:?} is no VM's", port);
                        let to = to.unwrap();
                        prop_assert_ne!(to, vm);
                        prop_assert_eq!(vms[to].network, vms[vm].network);
                        if vms[to].backlog.push(on_wire.clone()) {
                            vms[to].origins.push_back(vm);
                        }
                    }
                }
                VmOp::Receive { vm, shape } => {
                    let bufs = shape.bufs();
                    let writable: Vec<Buf> = bufs.iter().copied().filter(|b| b.writable).collect();
                    while let Some(frame) = vms[vm].backlog.front().map(<[u8]>::to_vec) {
                        let receiver = &mut vms[vm];
                        let chain = if shape.indirect {
                            receiver.drv.indirect_chain(&bufs)
                        } else {
                            receiver.drv.chain(&bufs)
                        };
                        let Ok(outcome) = receiver.dev.receive(&chain, &receiver.drv.mem, &frame)
                        else {
                            // Not a receive buffer: the device would need a
                            // reset; the frame stays.
                            break;
                        };
                        receiver.backlog.pop_front();
                        let origin = receiver.origins.pop_front();
                        prop_assert!(origin.is_some());
                        let origin = origin.unwrap();
                        prop_assert_eq!(receiver.backlog.len(), receiver.origins.len());
                        prop_assert_eq!(vms[origin].network, vms[vm].network);
                        prop_assert_ne!(origin, vm);
                        if let RxOutcome::Delivered { used_len } = outcome {
                            let bytes = gather(&vms[vm].drv, &writable);
                            let got = &bytes[HEADER_SIZE..used_len as usize];
                            prop_assert_eq!(got, &frame[..]);
                            prop_assert!(sent[origin].iter().any(|f| f[..] == *got));
                            prop_assert_eq!(&got[6..12], &vms[origin].mac[..]);
                        }
                    }
                }
            }
        }
    }
}

/// Reads through [`GuestMemory`] work through a reference, as the device
/// calls them (`&M` with `M: ?Sized`).
#[test]
fn device_takes_unsized_memory() {
    let mut drv = Driver::new();
    let mut dev = NetDevice::new(super::MAC_B);
    let chain = drv.chain(&[Buf::w(DATA, 100)]);
    let mem: &dyn GuestMemory = &drv.mem;
    assert_eq!(
        dev.receive(&chain, mem, &super::frame(super::MAC_B, super::MAC_A, 0)),
        Ok(RxOutcome::Delivered { used_len: 26 })
    );
}
