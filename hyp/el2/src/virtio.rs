//! The VM's virtio-mmio slots: all of QEMU `virt`'s 32, as its device
//! tree describes them. A slot with no device reads as "no device"
//! (DeviceID 0), so a guest may probe every one.
//!
//! The register model is `virtio-mmio`'s; this layer only traps the
//! accesses to it and drives the slot's interrupt line.

use crate::mmio::{Line, MmioDevice, MmioRegion};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_boot::virt::{self, Spi};
use log::warn;
use spin::mutex::SpinMutex;
use virtio_mmio::{Ignored, MmioTransport};

/// Ignored accesses logged per slot before it goes quiet.
const MAX_WARNINGS: u64 = 8;

/// One virtio-mmio slot.
#[derive(Debug)]
pub struct VirtioSlot {
    /// The VM's name and the slot, for log lines.
    name: String,
    slot: u32,
    spi: Spi,
    transport: SpinMutex<MmioTransport>,
    ignored: AtomicU64,
}

impl VirtioSlot {
    /// An empty slot.
    fn empty(vm: &str, slot: u32, spi: Spi) -> Self {
        Self {
            name: String::from(vm),
            slot,
            spi,
            transport: SpinMutex::new(MmioTransport::empty()),
            ignored: AtomicU64::new(0),
        }
    }

    /// Logs an access the transport refused, the first few times. Probing
    /// an empty slot past its DeviceID is what drivers do, not a mistake.
    fn note(&self, why: Option<Ignored>) {
        let Some(why) = why else {
            return;
        };
        if matches!(why, Ignored::NoDevice) {
            return;
        }
        let count = self.ignored.fetch_add(1, Ordering::Relaxed);
        if count < MAX_WARNINGS {
            warn!(
                "vm \"{}\": virtio-mmio slot {}: {why}, ignored",
                self.name, self.slot
            );
        }
    }
}

impl MmioDevice for VirtioSlot {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let access = self.transport.lock().read(offset, size);
        self.note(access.ignored);
        u64::from(access.value)
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let access = self.transport.lock().write(offset, size, value);
        self.note(access.ignored);
    }

    fn interrupt(&self) -> Option<Line> {
        Some(Line {
            spi: self.spi,
            high: self.transport.lock().interrupt_line(),
        })
    }
}

/// The MMIO regions of all the VM's virtio-mmio slots.
pub fn slots(vm: &str) -> Vec<MmioRegion> {
    (0..virt::VIRTIO_MMIO_SLOTS)
        .filter_map(|slot| {
            let (frame, spi) = virt::virtio_mmio_slot(slot)?;
            Some(MmioRegion {
                base: frame.start().get(),
                size: frame.size(),
                device: Box::new(VirtioSlot::empty(vm, slot, spi)),
            })
        })
        .collect()
}
