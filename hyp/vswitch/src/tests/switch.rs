//! The switch: ports, networks, and where frames go.

use std::string::ToString;
use std::vec;

use super::{frame, BROADCAST, MAC_A, MAC_B, MAC_C};
use crate::{DropReason, MacAddr, PortId, Route, Switch, SwitchError, MAX_FRAME_VLAN};

/// An IPv6 multicast destination (33:33:...), a group address.
const MULTICAST: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

#[test]
fn ports_and_networks() {
    let mut switch = Switch::new();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    let b = switch.add_port("lan0", MAC_B).unwrap();
    // The same MAC on another network is fine.
    let c = switch.add_port("lan1", MAC_A).unwrap();
    assert_ne!(a, b);
    assert_ne!(a, c);
    assert_eq!(switch.network_of(a), Some("lan0"));
    assert_eq!(switch.network_of(c), Some("lan1"));
    assert_eq!(switch.mac_of(b), Some(MAC_B));
    assert_eq!(switch.port_count(), 3);
    assert_eq!(
        switch.add_port("lan0", MAC_B),
        Err(SwitchError::DuplicateMac(MacAddr(MAC_B)))
    );
    assert_eq!(
        switch.add_port("lan0", BROADCAST),
        Err(SwitchError::MulticastMac(MacAddr(BROADCAST)))
    );
    assert_eq!(
        switch.add_port("lan0", MULTICAST),
        Err(SwitchError::MulticastMac(MacAddr(MULTICAST)))
    );
    assert_eq!(switch.add_port("lan0", [0; 6]), Err(SwitchError::ZeroMac));
    // A refused port changed nothing.
    assert_eq!(switch.port_count(), 3);

    switch.remove_port(b);
    assert_eq!(switch.network_of(b), None);
    // Removing twice, or an unknown port, does nothing.
    switch.remove_port(b);
    switch.remove_port(PortId(1000));
    // The MAC is free again, under a new identifier.
    let b2 = switch.add_port("lan0", MAC_B).unwrap();
    assert_ne!(b2, b);
    assert_eq!(switch.port_count(), 3);
}

#[test]
fn errors_display() {
    assert_eq!(
        SwitchError::DuplicateMac(MacAddr(MAC_A)).to_string(),
        "MAC 52:54:00:12:34:01 is already on the network"
    );
    assert_eq!(
        SwitchError::MulticastMac(MacAddr(BROADCAST)).to_string(),
        "MAC ff:ff:ff:ff:ff:ff is a multicast address"
    );
    assert!(!SwitchError::ZeroMac.to_string().is_empty());
    assert!(!SwitchError::OutOfPortIds.to_string().is_empty());
    assert_eq!(PortId(7).to_string(), "port 7");
}

#[test]
fn unicast_between_two_ports() {
    let mut switch = Switch::default();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    let b = switch.add_port("lan0", MAC_B).unwrap();
    assert_eq!(
        switch.route(a, &frame(MAC_B, MAC_A, 46)),
        Route::To(vec![b])
    );
    assert_eq!(
        switch.route(b, &frame(MAC_A, MAC_B, 46)),
        Route::To(vec![a])
    );
}

#[test]
fn broadcast_and_multicast_reach_every_other_port_of_the_network_only() {
    let mut switch = Switch::default();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    let b = switch.add_port("lan0", MAC_B).unwrap();
    let c = switch.add_port("lan0", MAC_C).unwrap();
    // Another network, with the same MACs even.
    let x = switch.add_port("lan1", MAC_A).unwrap();
    let y = switch.add_port("lan1", MAC_B).unwrap();
    for dst in [BROADCAST, MULTICAST] {
        assert_eq!(
            switch.route(a, &frame(dst, MAC_A, 28)),
            Route::To(vec![b, c])
        );
        assert_eq!(
            switch.route(b, &frame(dst, MAC_B, 28)),
            Route::To(vec![a, c])
        );
        assert_eq!(switch.route(x, &frame(dst, MAC_A, 28)), Route::To(vec![y]));
    }
    // Unicast stays on the sender's network although lan1 has MAC_B too.
    assert_eq!(
        switch.route(a, &frame(MAC_B, MAC_A, 28)),
        Route::To(vec![b])
    );
    assert_eq!(
        switch.route(x, &frame(MAC_B, MAC_A, 28)),
        Route::To(vec![y])
    );
    // lan1 has no MAC_C.
    assert_eq!(
        switch.route(x, &frame(MAC_C, MAC_A, 28)),
        Route::Dropped(DropReason::UnknownDestination)
    );
}

#[test]
fn a_lone_port_broadcasts_to_nobody() {
    let mut switch = Switch::default();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    switch.add_port("lan1", MAC_B).unwrap();
    assert_eq!(
        switch.route(a, &frame(BROADCAST, MAC_A, 28)),
        Route::To(vec![])
    );
}

#[test]
fn spoofed_source_is_dropped() {
    let mut switch = Switch::default();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    switch.add_port("lan0", MAC_B).unwrap();
    switch.add_port("lan0", MAC_C).unwrap();
    // Pretending to be another port, or anything else, or a group.
    for src in [MAC_B, MAC_C, [2, 0, 0, 0, 0, 9], BROADCAST, [0; 6]] {
        for dst in [MAC_B, MAC_C, BROADCAST] {
            assert_eq!(
                switch.route(a, &frame(dst, src, 28)),
                Route::Dropped(DropReason::SpoofedSource),
                "{src:?} to {dst:?}"
            );
        }
    }
}

#[test]
fn unknown_and_own_destinations_are_dropped() {
    let mut switch = Switch::default();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    let b = switch.add_port("lan0", MAC_B).unwrap();
    assert_eq!(
        switch.route(a, &frame(MAC_C, MAC_A, 28)),
        Route::Dropped(DropReason::UnknownDestination)
    );
    assert_eq!(
        switch.route(a, &frame(MAC_A, MAC_A, 28)),
        Route::Dropped(DropReason::ToSender)
    );
    // Once a port is gone, frames to it go nowhere, and it sends nothing.
    switch.remove_port(b);
    assert_eq!(
        switch.route(a, &frame(MAC_B, MAC_A, 28)),
        Route::Dropped(DropReason::UnknownDestination)
    );
    assert_eq!(
        switch.route(b, &frame(MAC_A, MAC_B, 28)),
        Route::Dropped(DropReason::UnknownPort)
    );
}

#[test]
fn frame_lengths_are_checked() {
    let mut switch = Switch::default();
    let a = switch.add_port("lan0", MAC_A).unwrap();
    let b = switch.add_port("lan0", MAC_B).unwrap();
    let full = frame(MAC_B, MAC_A, MAX_FRAME_VLAN - 14);
    assert_eq!(switch.route(a, &full), Route::To(vec![b]));
    assert_eq!(switch.route(a, &full[..14]), Route::To(vec![b]));
    for len in [0, 5, 6, 11, 12, 13] {
        assert_eq!(
            switch.route(a, &full[..len]),
            Route::Dropped(DropReason::Runt(len))
        );
    }
    let long = frame(MAC_B, MAC_A, MAX_FRAME_VLAN - 13);
    assert_eq!(
        switch.route(a, &long),
        Route::Dropped(DropReason::TooLong(MAX_FRAME_VLAN + 1))
    );
}

#[test]
fn mac_addresses() {
    assert!(MacAddr::BROADCAST.is_broadcast());
    assert!(MacAddr::BROADCAST.is_multicast());
    assert!(MacAddr(MULTICAST).is_multicast());
    assert!(!MacAddr(MULTICAST).is_broadcast());
    assert!(!MacAddr(MAC_A).is_multicast());
    assert!(MacAddr([0; 6]).is_zero());
    assert_eq!(MacAddr::from(MAC_A).to_string(), "52:54:00:12:34:01");
    let f = frame(MAC_B, MAC_A, 0);
    assert_eq!(MacAddr::destination_of(&f), Some(MacAddr(MAC_B)));
    assert_eq!(MacAddr::source_of(&f), Some(MacAddr(MAC_A)));
    assert_eq!(MacAddr::source_of(&f[..11]), None);
    assert_eq!(MacAddr::destination_of(&f[..5]), None);
}
