//! One slot's device: the transport's state as the hypervisor reports it
//! (a [`SlotSnapshot`]) turned into calls on its [`SlotBackend`], and the
//! results (frames, interrupts, failures) turned into system calls.

use alloc::vec::Vec;

use task_abi::{DeviceInfo, DeviceKind, Slot, SlotSnapshot, MAX_FRAME, SNAPSHOT_QUEUES};
use virtio_backend::{
    BlkDevice, Device, GuestRam, QueueConfig, QueueError, QueueFeatures, SlotBackend,
};

use crate::disk::SlotDisk;
use crate::log;
use crate::sys;
use crate::FaultTest;

/// Problems logged per slot before it goes quiet: a guest that breaks its
/// device and resets it in a loop must not flood the console.
const MAX_WARNINGS: u32 = 8;

/// A slot this task serves.
#[derive(Debug)]
pub struct Served {
    slot: Slot,
    backend: SlotBackend<SlotDisk>,
    /// The snapshot's reset count last seen (`None`: no snapshot yet).
    resets: Option<u64>,
    /// Each queue's generation last seen.
    generations: [Option<u64>; SNAPSHOT_QUEUES],
    warnings: u32,
}

impl Served {
    /// The device `info` describes, in `slot`; `None` for an empty slot.
    /// A disk's first flush runs `fault_test`, if given (see
    /// [`SlotDisk::new`]).
    pub fn new(slot: Slot, info: DeviceInfo, fault_test: Option<FaultTest>) -> Option<Self> {
        let device = match info.kind {
            DeviceKind::None => return None,
            DeviceKind::Blk {
                sectors,
                read_only,
                serial,
            } => Device::Blk {
                device: BlkDevice::new(sectors, read_only, serial),
                disk: SlotDisk::new(slot, fault_test),
            },
            DeviceKind::Net { mac } => Device::net(mac),
        };
        Some(Self {
            slot,
            backend: SlotBackend::new(device),
            resets: None,
            generations: [None; SNAPSHOT_QUEUES],
            warnings: 0,
        })
    }

    /// Its slot.
    pub const fn slot(&self) -> Slot {
        self.slot
    }

    /// What kind of device it is, for log lines.
    pub fn kind(&self) -> &'static str {
        if self.backend.device().is_net() {
            "net"
        } else {
            "blk"
        }
    }

    /// The slot's event bit was set: brings the queues up to date with the
    /// transport, serves the notified ones, passes frames both ways, and
    /// raises the interrupt if the driver wants one.
    pub fn serve(&mut self, ram: &GuestRam) {
        let snapshot = match sys::slot_state(self.slot) {
            Ok(snapshot) => snapshot,
            Err(status) => {
                self.warn(format_args!("no transport state ({status:?})"));
                return;
            }
        };
        let mut sent = Vec::new();
        let mut interrupt = match self.update(&snapshot, ram, &mut sent) {
            Ok(interrupt) => interrupt,
            Err(e) => {
                self.fail(e);
                false
            }
        };
        // Frames sent before an error were the guest's to send.
        for frame in &sent {
            if let Err(status) = sys::net_send(self.slot, frame) {
                self.warn(format_args!(
                    "a frame of {} bytes not sent ({status:?})",
                    frame.len()
                ));
            }
        }
        if self.backend.device().is_net() {
            interrupt |= self.receive(ram);
        }
        if interrupt {
            if let Err(status) = sys::interrupt(self.slot) {
                self.warn(format_args!("no interrupt ({status:?})"));
            }
        }
    }

    /// Applies a reset and queue changes the snapshot reports, then serves
    /// the notified queues; whether to interrupt.
    fn update(
        &mut self,
        snapshot: &SlotSnapshot,
        ram: &GuestRam,
        sent: &mut Vec<Vec<u8>>,
    ) -> Result<bool, QueueError> {
        if self.resets != Some(snapshot.resets) {
            self.backend.reset();
            self.resets = Some(snapshot.resets);
            // Every queue the driver set up since is new.
            self.generations = [None; SNAPSHOT_QUEUES];
        }
        let count = self.backend.device().queue_count().min(SNAPSHOT_QUEUES);
        let features = QueueFeatures::from_negotiated(snapshot.features);
        for (index, queue) in (0u16..).zip(&snapshot.queues[..count]) {
            let seen = &mut self.generations[usize::from(index)];
            if *seen == Some(queue.generation) {
                continue;
            }
            *seen = Some(queue.generation);
            self.backend.stop_queue(index);
            if queue.ready {
                let config = QueueConfig {
                    size: queue.size,
                    desc_table: queue.desc,
                    driver_ring: queue.driver,
                    device_ring: queue.device,
                    features,
                };
                self.backend.start_queue(index, config, ram)?;
            }
        }
        let mut interrupt = false;
        for index in (0u16..).take(count) {
            if snapshot.notified & (1 << index) != 0 {
                interrupt |= self.backend.notified(index, ram, sent)?;
            }
        }
        Ok(interrupt)
    }

    /// Takes every frame waiting for the port and hands it to the guest as
    /// far as its receive buffers allow (the rest wait in the backlog);
    /// whether to interrupt.
    fn receive(&mut self, ram: &GuestRam) -> bool {
        let mut buf = [0u8; MAX_FRAME as usize];
        let mut interrupt = false;
        loop {
            let len = match sys::net_recv(self.slot, &mut buf) {
                Ok(0) => break,
                Ok(len) => len,
                Err(status) => {
                    self.warn(format_args!("no frames ({status:?})"));
                    break;
                }
            };
            match self.backend.deliver(&buf[..len], ram) {
                Ok(wanted) => interrupt |= wanted,
                // A failed port drops the frames still coming.
                Err(e) => self.fail(e),
            }
        }
        interrupt
    }

    /// The guest broke the device's rules: it does nothing more until the
    /// driver resets it, and the driver is told.
    fn fail(&mut self, e: QueueError) {
        self.warn(format_args!("{e}; the device needs a reset"));
        self.backend.fail();
        if let Err(status) = sys::device_failed(self.slot) {
            self.warn(format_args!("could not report the failure ({status:?})"));
        }
    }

    /// Logs a problem, the first few times.
    fn warn(&mut self, what: core::fmt::Arguments<'_>) {
        let slot = self.slot.index();
        if self.warnings < MAX_WARNINGS {
            log!("slot {slot}: {what}");
        } else if self.warnings == MAX_WARNINGS {
            log!("slot {slot}: further problems not logged");
        }
        self.warnings = self.warnings.saturating_add(1);
    }
}
