//! The VM's virtio-mmio slots: all of QEMU `virt`'s 32, as its device
//! tree describes them. A slot with no device reads as "no device"
//! (DeviceID 0), so a guest may probe every one; slot 0 holds the VM's
//! disk (virtio-blk) if the manifest gives it one.
//!
//! The register model is `virtio-mmio`'s and the queue and request
//! handling `virtqueue`'s; this layer traps the accesses, gives them the
//! VM's RAM, carries out requests on the host disk when the guest notifies,
//! and drives the slot's interrupt line. Requests run synchronously on the
//! notifying vCPU's physical CPU.
//!
//! Anything wrong in what the guest put in its queues marks the device
//! DEVICE_NEEDS_RESET (and is logged): it does nothing more until the driver
//! resets it, and nothing else is affected.

use crate::hostdisk;
use crate::mmio::{Line, MmioDevice, MmioRegion};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_boot::virt::{self, Spi};
use log::{info, warn};
use manifest::DiskSpec;
use spin::mutex::SpinMutex;
use virtio_mmio::{DeviceId, DeviceInfo, Event, Features, Ignored, MmioTransport};
use virtqueue::blk::{BlkDevice, Disk, DiskError};
use virtqueue::{GuestMemory, MemError, Queue, QueueConfig, QueueFeatures};

/// Ignored accesses and queue errors logged per slot before it goes quiet.
const MAX_WARNINGS: u64 = 8;

/// `VendorID` of the hypervisor's devices: "HYPV".
const VENDOR_ID: u32 = 0x5650_5948;

/// Sector size the manifest's disk regions are multiples of.
const SECTOR: u64 = 512;

/// A VM's RAM as the devices see it: its IPA range and where it is in the
/// hypervisor's (identity) map.
#[derive(Clone, Copy, Debug)]
pub struct GuestRamView {
    /// First IPA of guest RAM.
    pub base: u64,
    /// Bytes of guest RAM.
    pub size: u64,
    /// Where the hypervisor reaches its first byte.
    pub host: *mut u8,
}

// SAFETY: The view points into RAM the VM owns for its whole life, and the
// devices holding views are the VM's own; only copies go through it.
unsafe impl Send for GuestRamView {}
// SAFETY: As above.
unsafe impl Sync for GuestRamView {}

impl GuestRamView {
    fn at(&self, gpa: u64, len: usize) -> Result<*mut u8, MemError> {
        let offset = virtqueue::window_offset(self.base, self.size, gpa, len as u64)?;
        // SAFETY: `window_offset` checked `[offset, offset + len)` lies in
        // the RAM block.
        Ok(unsafe { self.host.add(offset as usize) })
    }
}

impl GuestMemory for GuestRamView {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = self.at(gpa, buf.len())?;
        // SAFETY: In guest RAM (checked); the guest may write it meanwhile,
        // which can only make the copy inconsistent, and callers validate
        // the copy, never the source.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = self.at(gpa, data.len())?;
        // SAFETY: In guest RAM (checked), which holds no hypervisor data.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        virtqueue::window_offset(self.base, self.size, gpa, len).map(|_| ())
    }

    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        let src = self.at(gpa, 2)?;
        if !(src as usize).is_multiple_of(2) {
            let mut bytes = [0; 2];
            self.read(gpa, &mut bytes)?;
            return Ok(u16::from_le_bytes(bytes));
        }
        // SAFETY: In guest RAM and aligned: one access, never torn.
        Ok(u16::from_le(unsafe { (src as *const u16).read_volatile() }))
    }

    fn write_u16(&self, gpa: u64, value: u16) -> Result<(), MemError> {
        let dst = self.at(gpa, 2)?;
        if !(dst as usize).is_multiple_of(2) {
            return self.write(gpa, &value.to_le_bytes());
        }
        // SAFETY: As for `read_u16`.
        unsafe { (dst as *mut u16).write_volatile(value.to_le()) };
        Ok(())
    }
}

/// The VM's region of the host disk.
#[derive(Debug)]
struct RegionDisk {
    offset: u64,
    size: u64,
}

impl RegionDisk {
    fn host_offset(&self, offset: u64, len: usize) -> Result<u64, DiskError> {
        let out = DiskError::OutOfRange {
            offset,
            len: len as u64,
        };
        let end = offset.checked_add(len as u64).ok_or(out)?;
        if end > self.size {
            return Err(out);
        }
        Ok(self.offset + offset)
    }
}

impl Disk for RegionDisk {
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let at = self.host_offset(offset, buf.len())?;
        io_result(hostdisk::with(|disk| disk.read(at, buf)))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        let at = self.host_offset(offset, data.len())?;
        io_result(hostdisk::with(|disk| disk.write(at, data)))
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        io_result(hostdisk::with(hostdisk::HostDisk::flush))
    }
}

/// The guest sees any host-side failure as an I/O error; the host side
/// logs it.
fn io_result(result: Option<Result<(), hostdisk::HostDiskError>>) -> Result<(), DiskError> {
    match result {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => {
            warn!("host disk: {e}");
            Err(DiskError::Io)
        }
        None => Err(DiskError::Io),
    }
}

/// A virtio-blk device on a region of the host disk.
#[derive(Debug)]
struct Blk {
    device: BlkDevice,
    disk: RegionDisk,
    queue: Option<Queue>,
    /// Marked DEVICE_NEEDS_RESET: nothing is done until the driver resets.
    broken: bool,
}

/// Why a VM's disk cannot be made.
#[derive(Debug)]
pub enum DiskSetupError {
    /// QEMU gave the hypervisor no disk.
    NoHostDisk,
    /// The region does not fit on the host disk.
    BeyondHostDisk {
        /// One past the region's last byte.
        end: u64,
        /// The host disk's size.
        capacity: u64,
    },
    /// The host disk refuses writes and the region is read-write.
    HostDiskReadOnly,
}

impl core::fmt::Display for DiskSetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoHostDisk => write!(f, "no host disk (QEMU -device virtio-blk-pci)"),
            Self::BeyondHostDisk { end, capacity } => write!(
                f,
                "region ends at byte {end:#x}, past the host disk's {capacity:#x}"
            ),
            Self::HostDiskReadOnly => {
                write!(
                    f,
                    "the host disk is read-only; ask for disk_access = \"read-only\""
                )
            }
        }
    }
}

#[derive(Debug)]
struct SlotState {
    transport: MmioTransport,
    blk: Option<Blk>,
}

/// One virtio-mmio slot.
#[derive(Debug)]
pub struct VirtioSlot {
    /// The VM's name and the slot, for log lines.
    name: String,
    slot: u32,
    spi: Spi,
    ram: GuestRamView,
    state: SpinMutex<SlotState>,
    warnings: AtomicU64,
}

impl VirtioSlot {
    /// Logs a problem, the first few times.
    fn warn(&self, what: core::fmt::Arguments<'_>) {
        let count = self.warnings.fetch_add(1, Ordering::Relaxed);
        if count < MAX_WARNINGS {
            warn!(
                "vm \"{}\": virtio-mmio slot {}: {what}",
                self.name, self.slot
            );
        } else if count == MAX_WARNINGS {
            warn!(
                "vm \"{}\": virtio-mmio slot {}: further problems not logged",
                self.name, self.slot
            );
        }
    }

    /// Logs an access the transport refused. Probing an empty slot past its
    /// DeviceID is what drivers do, not a mistake.
    fn note(&self, why: Option<Ignored>) {
        match why {
            None | Some(Ignored::NoDevice) => {}
            Some(why) => self.warn(format_args!("{why}, ignored")),
        }
    }

    fn event(&self, state: &mut SlotState, event: Event) {
        let SlotState { transport, blk } = state;
        let Some(blk) = blk.as_mut() else {
            return;
        };
        let result = match event {
            Event::Reset => {
                blk.queue = None;
                blk.broken = false;
                Ok(())
            }
            Event::QueueStopped(_) => {
                blk.queue = None;
                Ok(())
            }
            Event::QueueReady(_, config) if !blk.broken => {
                let features = transport.negotiated_features().map_or(0, Features::bits);
                let config = QueueConfig {
                    size: config.size,
                    desc_table: config.desc.get(),
                    driver_ring: config.driver.get(),
                    device_ring: config.device.get(),
                    features: QueueFeatures::from_negotiated(features),
                };
                Queue::new(config, &self.ram).map(|queue| blk.queue = Some(queue))
            }
            Event::Notify(_) if !blk.broken => self.process(transport, blk),
            _ => Ok(()),
        };
        if let Err(e) = result {
            self.warn(format_args!("virtio-blk: {e}; the device needs a reset"));
            blk.broken = true;
            blk.queue = None;
            transport.set_needs_reset();
        }
    }

    /// Carries out every request the guest has made available.
    fn process(
        &self,
        transport: &mut MmioTransport,
        blk: &mut Blk,
    ) -> Result<(), virtqueue::QueueError> {
        let Some(queue) = blk.queue.as_mut() else {
            return Ok(());
        };
        while let Some(chain) = queue.pop(&self.ram)? {
            let written = blk.device.handle(&chain, &self.ram, &mut blk.disk)?;
            queue.push_used(&self.ram, chain.head(), written)?;
        }
        if queue.needs_interrupt(&self.ram)? {
            transport.raise_used_buffer();
        }
        Ok(())
    }
}

impl MmioDevice for VirtioSlot {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let access = self.state.lock().transport.read(offset, size);
        self.note(access.ignored);
        u64::from(access.value)
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let mut state = self.state.lock();
        let access = state.transport.write(offset, size, value);
        self.note(access.ignored);
        if let Some(event) = access.value {
            self.event(&mut state, event);
        }
    }

    fn interrupt(&self) -> Option<Line> {
        Some(Line {
            spi: self.spi,
            high: self.state.lock().transport.interrupt_line(),
        })
    }
}

/// The VM's disk device from its manifest entry, checked against the host
/// disk.
fn blk(vm: &str, spec: &DiskSpec) -> Result<(MmioTransport, Blk), DiskSetupError> {
    let (capacity, host_read_only) = hostdisk::with(|d| (d.capacity_bytes(), d.is_read_only()))
        .ok_or(DiskSetupError::NoHostDisk)?;
    let end = spec.end();
    if end > capacity {
        return Err(DiskSetupError::BeyondHostDisk { end, capacity });
    }
    if host_read_only && !spec.read_only {
        return Err(DiskSetupError::HostDiskReadOnly);
    }
    let device = BlkDevice::new(
        spec.size / SECTOR,
        spec.read_only,
        virtqueue::blk::serial_from_str(vm),
    );
    let info = DeviceInfo {
        device_id: DeviceId::BLOCK,
        vendor_id: VENDOR_ID,
        features: Features::from_bits(device.features()),
        queue_max_sizes: vec![virtqueue::blk::QUEUE_SIZE_MAX],
        config: device.config_space().to_vec(),
    };
    // The device's own offer: only a bug here could make it invalid.
    let transport = MmioTransport::new(info).map_err(|_| DiskSetupError::NoHostDisk)?;
    info!(
        "vm \"{vm}\": disk: host disk bytes {:#x}..{end:#x} ({} MiB, {})",
        spec.offset,
        spec.size >> 20,
        if spec.read_only {
            "read-only"
        } else {
            "read-write"
        }
    );
    Ok((
        transport,
        Blk {
            device,
            disk: RegionDisk {
                offset: spec.offset,
                size: spec.size,
            },
            queue: None,
            broken: false,
        },
    ))
}

/// The MMIO regions of all the VM's virtio-mmio slots: its disk, if any,
/// in slot 0, the rest empty.
pub fn slots(
    vm: &str,
    ram: GuestRamView,
    disk: Option<&DiskSpec>,
) -> Result<Vec<MmioRegion>, DiskSetupError> {
    let mut disk = disk.map(|spec| blk(vm, spec)).transpose()?;
    Ok((0..virt::VIRTIO_MMIO_SLOTS)
        .filter_map(|slot| {
            let (frame, spi) = virt::virtio_mmio_slot(slot)?;
            let state = match disk.take() {
                Some((transport, blk)) => SlotState {
                    transport,
                    blk: Some(blk),
                },
                None => SlotState {
                    transport: MmioTransport::empty(),
                    blk: None,
                },
            };
            Some(MmioRegion {
                base: frame.start().get(),
                size: frame.size(),
                device: Box::new(VirtioSlot {
                    name: String::from(vm),
                    slot,
                    spi,
                    ram,
                    state: SpinMutex::new(state),
                    warnings: AtomicU64::new(0),
                }),
            })
        })
        .collect())
}
