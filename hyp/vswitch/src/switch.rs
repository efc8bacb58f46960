//! The switch: which ports are on which network, and where a frame goes.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::frame::{check_len, DropReason, MacAddr};

/// A port on the switch, as [`Switch::add_port`] named it. Identifiers are
/// not reused, so a stale one never names another VM's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortId(pub u32);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// Why a port could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwitchError {
    /// Another port on the network has this MAC: frames to it would have
    /// two owners, and either could send as the other.
    DuplicateMac(MacAddr),
    /// A multicast (group) address cannot be a port's own: frames to it go
    /// to every port.
    MulticastMac(MacAddr),
    /// The all-zero address is no address.
    ZeroMac,
    /// Every port identifier has been used.
    OutOfPortIds,
}

impl fmt::Display for SwitchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateMac(mac) => write!(f, "MAC {mac} is already on the network"),
            Self::MulticastMac(mac) => write!(f, "MAC {mac} is a multicast address"),
            Self::ZeroMac => f.write_str("MAC 00:00:00:00:00:00 is not an address"),
            Self::OutOfPortIds => f.write_str("no port identifiers left"),
        }
    }
}

/// Where a frame goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// To these ports (in increasing order, none twice, never the sender;
    /// empty for a broadcast on a network with no other port).
    To(Vec<PortId>),
    /// Nowhere.
    Dropped(DropReason),
}

/// What the switch knows of a port.
#[derive(Clone, Debug)]
struct Port {
    network: String,
    mac: MacAddr,
}

/// Every network's ports. Ports are configured, not learned: each has the
/// MAC its VM was given, and that is the only address it may send from
/// and the only unicast address it receives (see the
/// [crate docs](crate#the-anti-spoofing-rule)).
#[derive(Clone, Debug, Default)]
pub struct Switch {
    ports: BTreeMap<PortId, Port>,
    /// Each network's ports by MAC; a network is here while it has a port.
    networks: BTreeMap<String, BTreeMap<MacAddr, PortId>>,
    /// The identifier the next port gets.
    next_id: u32,
}

impl Switch {
    /// A switch with no ports.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a port with `mac` to `network` (created with its first port).
    /// Refuses a MAC that another port on the network has, a multicast MAC
    /// and the zero MAC.
    pub fn add_port(&mut self, network: &str, mac: [u8; 6]) -> Result<PortId, SwitchError> {
        let mac = MacAddr(mac);
        if mac.is_zero() {
            return Err(SwitchError::ZeroMac);
        }
        if mac.is_multicast() {
            return Err(SwitchError::MulticastMac(mac));
        }
        if self
            .networks
            .get(network)
            .is_some_and(|ports| ports.contains_key(&mac))
        {
            return Err(SwitchError::DuplicateMac(mac));
        }
        let id = PortId(self.next_id);
        self.next_id = self
            .next_id
            .checked_add(1)
            .ok_or(SwitchError::OutOfPortIds)?;
        self.networks
            .entry(network.into())
            .or_default()
            .insert(mac, id);
        self.ports.insert(
            id,
            Port {
                network: network.into(),
                mac,
            },
        );
        Ok(id)
    }

    /// Takes `port` off the switch (nothing happens if it is not on it). Its
    /// MAC is free on its network again; its identifier is never reused.
    pub fn remove_port(&mut self, port: PortId) {
        let Some(Port { network, mac }) = self.ports.remove(&port) else {
            return;
        };
        if let Some(ports) = self.networks.get_mut(&network) {
            ports.remove(&mac);
            if ports.is_empty() {
                self.networks.remove(&network);
            }
        }
    }

    /// The network `port` is on, if it is on the switch.
    pub fn network_of(&self, port: PortId) -> Option<&str> {
        self.ports.get(&port).map(|port| port.network.as_str())
    }

    /// The MAC of `port`, if it is on the switch.
    pub fn mac_of(&self, port: PortId) -> Option<[u8; 6]> {
        self.ports.get(&port).map(|port| port.mac.0)
    }

    /// How many ports are on the switch.
    pub fn port_count(&self) -> usize {
        self.ports.len()
    }

    /// Where a frame sent by `from` goes.
    ///
    /// Dropped if `from` is not on the switch ([`DropReason::UnknownPort`]),
    /// if the frame is not [`MIN_FRAME`](crate::MIN_FRAME) to
    /// [`MAX_FRAME_VLAN`](crate::MAX_FRAME_VLAN) bytes, or if its source
    /// address is not the port's own ([`DropReason::SpoofedSource`]).
    /// Otherwise a unicast destination goes to the port on the same network
    /// that has it ([`DropReason::UnknownDestination`] if none does,
    /// [`DropReason::ToSender`] if it is the sender's), and a broadcast or
    /// multicast one to every other port on the same network. Never to a
    /// port on another network, never back to the sender.
    pub fn route(&self, from: PortId, frame: &[u8]) -> Route {
        match self.try_route(from, frame) {
            Ok(ports) => Route::To(ports),
            Err(reason) => Route::Dropped(reason),
        }
    }

    fn try_route(&self, from: PortId, frame: &[u8]) -> Result<Vec<PortId>, DropReason> {
        let sender = self.ports.get(&from).ok_or(DropReason::UnknownPort)?;
        check_len(frame.len())?;
        let (Some(destination), Some(source)) =
            (MacAddr::destination_of(frame), MacAddr::source_of(frame))
        else {
            // `check_len` made sure both are there.
            return Err(DropReason::Runt(frame.len()));
        };
        if source != sender.mac {
            return Err(DropReason::SpoofedSource);
        }
        // Every port is in its network's map, so this is only empty if the
        // switch lost track of a network; then there is nowhere to go.
        let network = self
            .networks
            .get(&sender.network)
            .ok_or(DropReason::UnknownPort)?;
        if destination.is_multicast() {
            // A network's map is by MAC; put the ports in increasing order,
            // as promised.
            let mut ports: Vec<PortId> = network
                .values()
                .copied()
                .filter(|&port| port != from)
                .collect();
            ports.sort_unstable();
            return Ok(ports);
        }
        if destination == sender.mac {
            return Err(DropReason::ToSender);
        }
        match network.get(&destination) {
            Some(&port) => Ok(alloc::vec![port]),
            None => Err(DropReason::UnknownDestination),
        }
    }
}
