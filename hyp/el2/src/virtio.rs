//! The VM's virtio-mmio slots: all of QEMU `virt`'s 32, as its device
//! tree describes them. A slot with no device reads as "no device"
//! (DeviceID 0), so a guest may probe every one. The VM's disk
//! (virtio-blk), if the manifest gives it one, is in the first slot, its
//! network port (virtio-net) in the next.
//!
//! The register model is `virtio-mmio`'s: this layer traps the accesses and
//! drives the slots' interrupt lines. Behind the transport, the device
//! (`virtio-backend`: queues, requests on the VM's disk region, frames
//! through the switch, `vswitch`) runs where the manifest's `backend` says:
//! - `task` (the default): in the VM's own unprivileged backend task
//!   ([`forward`]), which sees only this VM's RAM;
//! - `hypervisor`: here, synchronously on the notifying vCPU's physical
//!   CPU, with the hypervisor's view of all memory.
//!
//! Anything wrong in what the guest put in its queues marks the device
//! DEVICE_NEEDS_RESET (and is logged): it does nothing more until the driver
//! resets it, and nothing else is affected.

mod forward;

pub use forward::{set_fault_test, PROGRAM as TASK_PROGRAM};

use crate::hostdisk;
use crate::lock::SpinMutex;
use crate::mmio::{MmioDevice, MmioRegion};
use crate::vm::Vm;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_boot::virt::{self, Spi};
use log::{info, warn};
use manifest::{DeviceBackend, DiskSpec, NetSpec};
use spin::Once;
use virtio_backend::{Device, GuestRam, SlotBackend};
use virtio_mmio::{DeviceId, DeviceInfo, Event, Features, Ignored, MmioTransport};
use virtqueue::blk::{BlkDevice, Disk, DiskError};
use virtqueue::{QueueConfig, QueueError, QueueFeatures};
use vswitch::{PortId, Route, Switch, SwitchError};

/// Ignored accesses and queue errors logged per slot before it goes quiet.
const MAX_WARNINGS: u64 = 8;

/// `VendorID` of the hypervisor's devices: "HYPV".
const VENDOR_ID: u32 = 0x5650_5948;

/// Sector size the manifest's disk regions are multiples of.
const SECTOR: u64 = 512;

/// The VM's region of the host disk.
#[derive(Clone, Copy, Debug)]
pub struct RegionDisk {
    offset: u64,
    size: u64,
    /// Whether the VM may only read it.
    pub read_only: bool,
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
    /// The backend task cannot start.
    Task(forward::StartError),
}

impl core::fmt::Display for DiskSetupError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoHostDisk => write!(f, "no host disk (QEMU -device virtio-blk-pci)"),
            Self::BeyondHostDisk { end, capacity } => write!(
                f,
                "region ends at byte {end:#x}, past the host disk's {capacity:#x}"
            ),
            Self::Task(e) => write!(f, "{e}"),
            Self::HostDiskReadOnly => {
                write!(
                    f,
                    "the host disk is read-only; ask for disk_access = \"read-only\""
                )
            }
        }
    }
}

/// A device the hypervisor runs itself (`backend = "hypervisor"`).
#[derive(Debug)]
struct Inline {
    backend: SlotBackend<RegionDisk>,
    /// Its switch port, once attached (a network device).
    port: Option<PortId>,
}

impl Inline {
    /// Handles a transport event; frames the guest transmitted are added to
    /// `sent`, for the switch. Returns whether to raise the used-buffer
    /// interrupt.
    fn event(
        &mut self,
        ram: &GuestRam,
        event: Event,
        features: Option<Features>,
        sent: &mut Vec<Vec<u8>>,
    ) -> Result<bool, QueueError> {
        match event {
            Event::Reset => self.backend.reset(),
            Event::QueueStopped(index) => self.backend.stop_queue(index.0),
            Event::QueueReady(index, config) => {
                let config = QueueConfig {
                    size: config.size,
                    desc_table: config.desc.get(),
                    driver_ring: config.driver.get(),
                    device_ring: config.device.get(),
                    features: QueueFeatures::from_negotiated(features.map_or(0, Features::bits)),
                };
                self.backend.start_queue(index.0, config, ram)?;
            }
            Event::Notify(index) => return self.backend.notified(index.0, ram, sent),
            _ => {}
        }
        Ok(false)
    }
}

/// A slot's transport and whatever runs its device.
#[derive(Debug)]
struct SlotState {
    transport: MmioTransport,
    /// The device, when the hypervisor runs it.
    inline: Option<Inline>,
    /// The device, when the VM's backend task runs it.
    forward: Option<forward::Forward>,
}

impl SlotState {
    /// After an error in the guest's queues: the device does nothing until
    /// the driver resets it.
    fn fail(&mut self) {
        if let Some(inline) = &mut self.inline {
            inline.backend.fail();
        }
        self.transport.set_needs_reset();
    }
}

/// One virtio-mmio slot, as the VM's MMIO, its switch port and its backend
/// task share it.
#[derive(Debug)]
pub struct SlotShared {
    /// The VM's name and the slot, for log lines.
    name: String,
    slot: u32,
    spi: Spi,
    /// The VM's RAM, for a device the hypervisor runs.
    ram: GuestRam,
    state: SpinMutex<SlotState>,
    warnings: AtomicU64,
    /// The VM, whose GIC line this slot drives under `state`'s lock (see
    /// [`MmioDevice::attach_vm`]).
    vm: Once<Weak<Vm>>,
}

impl SlotShared {
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

    /// Sets the VM's line to the transport's; called with `state` locked,
    /// as every change of the line is.
    fn update_line(&self, state: &SlotState) {
        if let Some(vm) = self.vm.get().and_then(Weak::upgrade) {
            vm.set_spi(self.spi, state.transport.interrupt_line());
        }
    }
}

/// A slot as the VM's MMIO sees it.
#[derive(Debug)]
struct VirtioSlot {
    shared: Arc<SlotShared>,
    /// Keeps the VM's backend task running while the VM has its slots (on
    /// one slot of the VM).
    _task: Option<forward::TaskOwner>,
}

impl MmioDevice for VirtioSlot {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let access = self.shared.state.lock().transport.read(offset, size);
        self.shared.note(access.ignored);
        u64::from(access.value)
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let shared = &*self.shared;
        let mut sent = Vec::new();
        let mut notify = None;
        let port = {
            let mut state = shared.state.lock();
            let access = state.transport.write(offset, size, value);
            shared.note(access.ignored);
            if let Some(event) = access.value {
                let features = state.transport.negotiated_features();
                if let Some(forward) = &mut state.forward {
                    match forward.event(event, features) {
                        Some(true) => notify = Some((forward.link.clone(), forward.bit())),
                        Some(false) => {}
                        // Its task is gone: the device keeps failing.
                        None => state.transport.set_needs_reset(),
                    }
                } else if let Some(inline) = &mut state.inline {
                    match inline.event(&shared.ram, event, features, &mut sent) {
                        Ok(true) => {
                            state.transport.raise_used_buffer();
                        }
                        Ok(false) => {}
                        Err(e) => {
                            shared.warn(format_args!("{e}; the device needs a reset"));
                            state.fail();
                        }
                    }
                }
            }
            shared.update_line(&state);
            state.inline.as_ref().and_then(|inline| inline.port)
        };
        // With no slot locked: delivery locks the receivers', the task's
        // wake-up a run queue.
        if let Some((link, bit)) = notify {
            link.notify(bit);
        }
        if let Some(port) = port {
            for frame in sent {
                switch_frame(port, &frame);
            }
        }
    }

    fn attach_vm(&self, vm: &Weak<Vm>) {
        self.shared.vm.call_once(|| vm.clone());
    }
}

/// A VM's network port: what the switch needs to reach it.
#[derive(Debug)]
pub struct NetPort {
    shared: Arc<SlotShared>,
    network: String,
    mac: [u8; 6],
    id: Option<PortId>,
}

/// Every network's switch.
static SWITCH: Once<SpinMutex<Switch>> = Once::new();

/// Attached ports, by switch port.
static PORTS: SpinMutex<BTreeMap<PortId, Weak<SlotShared>>> = SpinMutex::new(BTreeMap::new());

fn switch() -> &'static SpinMutex<Switch> {
    SWITCH.call_once(|| SpinMutex::new(Switch::default()))
}

/// Sends `frame` from port `from` wherever the switch routes it.
fn switch_frame(from: PortId, frame: &[u8]) {
    let Route::To(ports) = switch().lock().route(from, frame) else {
        return;
    };
    for to in ports {
        let Some(port) = PORTS.lock().get(&to).and_then(Weak::upgrade) else {
            continue;
        };
        let mut notify = None;
        {
            let mut state = port.state.lock();
            if let Some(forward) = &mut state.forward {
                if forward.deliver(frame) {
                    notify = Some((forward.link.clone(), forward.bit()));
                }
            } else if let Some(inline) = &mut state.inline {
                match inline.backend.deliver(frame, &port.ram) {
                    Ok(true) => {
                        state.transport.raise_used_buffer();
                    }
                    Ok(false) => {}
                    Err(e) => {
                        warn!(
                            "vm \"{}\": virtio-net: {e}; the device needs a reset",
                            port.name
                        );
                        state.fail();
                    }
                }
            }
            port.update_line(&state);
        }
        if let Some((link, bit)) = notify {
            link.notify(bit);
        }
    }
}

impl NetPort {
    /// Connects the port to its network's switch.
    pub fn attach(&mut self) -> Result<(), SwitchError> {
        let id = switch().lock().add_port(&self.network, self.mac)?;
        self.id = Some(id);
        {
            let mut state = self.shared.state.lock();
            if let Some(inline) = &mut state.inline {
                inline.port = Some(id);
            }
            if let Some(forward) = &mut state.forward {
                forward.port = Some(id);
            }
        }
        PORTS.lock().insert(id, Arc::downgrade(&self.shared));
        Ok(())
    }
}

impl Drop for NetPort {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            PORTS.lock().remove(&id);
            switch().lock().remove_port(id);
        }
    }
}

/// The VM's disk device from its manifest entry, checked against the host
/// disk.
fn blk(vm: &str, spec: &DiskSpec) -> Result<Device<RegionDisk>, DiskSetupError> {
    let (capacity, host_read_only) = hostdisk::with(|d| (d.capacity_bytes(), d.is_read_only()))
        .ok_or(DiskSetupError::NoHostDisk)?;
    let end = spec.end();
    if end > capacity {
        return Err(DiskSetupError::BeyondHostDisk { end, capacity });
    }
    if host_read_only && !spec.read_only {
        return Err(DiskSetupError::HostDiskReadOnly);
    }
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
    Ok(Device::Blk {
        device: BlkDevice::new(
            spec.size / SECTOR,
            spec.read_only,
            virtqueue::blk::serial_from_str(vm),
        ),
        disk: RegionDisk {
            offset: spec.offset,
            size: spec.size,
            read_only: spec.read_only,
        },
    })
}

/// The transport for `device`: its offer as the driver sees it.
fn transport(device: &Device<RegionDisk>) -> MmioTransport {
    let info = DeviceInfo {
        device_id: if device.is_net() {
            DeviceId::NET
        } else {
            DeviceId::BLOCK
        },
        vendor_id: VENDOR_ID,
        features: Features::from_bits(device.features()),
        queue_max_sizes: alloc::vec![device.queue_size_max(); device.queue_count()],
        config: device.config_space(),
    };
    // The device's own offer is valid; an empty slot is the fallback if not.
    MmioTransport::new(info).unwrap_or_else(|_| MmioTransport::empty())
}

/// What a VM's virtio devices are made from.
pub struct Devices<'a> {
    /// The VM's name.
    pub vm: &'a str,
    /// Its RAM.
    pub ram: GuestRam,
    /// Its disk, if any.
    pub disk: Option<&'a DiskSpec>,
    /// Its network port, if any.
    pub net: Option<&'a NetSpec>,
    /// Where the devices' backends run.
    pub backend: DeviceBackend,
    /// The backend task's program from the boot bundle, if it has one.
    pub program: Option<&'a [u8]>,
    /// What keeps the VM's RAM allocated (for a backend task, which may
    /// outlive the VM by a moment).
    pub keep_ram: Arc<dyn Send + Sync>,
}

/// What the backend task needs to know of a device.
fn task_info(device: &Device<RegionDisk>) -> task_abi::DeviceInfo {
    let kind = match device {
        Device::Blk { device, .. } => task_abi::DeviceKind::Blk {
            sectors: device.capacity_sectors(),
            read_only: device.read_only(),
            serial: *device.serial(),
        },
        Device::Net { device, .. } => task_abi::DeviceKind::Net { mac: device.mac() },
    };
    task_abi::DeviceInfo { kind }
}

/// The MMIO regions of all the VM's virtio-mmio slots: its disk, if any,
/// in slot 0, its network port next, the rest empty; and the network port,
/// to be attached once the VM exists. With backends in a task, the task is
/// started here.
pub fn slots(
    devices_of: Devices<'_>,
) -> Result<(Vec<MmioRegion>, Option<NetPort>), DiskSetupError> {
    let Devices { vm, ram, .. } = devices_of;
    let mut devices: VecDeque<Device<RegionDisk>> = VecDeque::new();
    if let Some(spec) = devices_of.disk {
        devices.push_back(blk(vm, spec)?);
    }
    if let Some(spec) = devices_of.net {
        info!("vm \"{vm}\": {spec}");
        devices.push_back(Device::net(spec.mac));
    }
    let in_task = devices_of.backend == DeviceBackend::Task && !devices.is_empty();
    let program = match (in_task, devices_of.program) {
        (true, None) => return Err(DiskSetupError::Task(forward::StartError::NoProgram)),
        (_, program) => program,
    };
    let link = Arc::new(forward::Link::default());
    let mut port = None;
    let mut forwarded = Vec::new();
    let slots: Vec<_> = (0..virt::VIRTIO_MMIO_SLOTS)
        .filter_map(|slot| {
            let (frame, spi) = virt::virtio_mmio_slot(slot)?;
            let device = devices.pop_front();
            let is_net = device.as_ref().is_some_and(Device::is_net);
            let mut state = SlotState {
                transport: device.as_ref().map_or_else(MmioTransport::empty, transport),
                inline: None,
                forward: None,
            };
            match (device, task_abi::Slot::new(u64::from(slot))) {
                (Some(device), Some(index)) if in_task => {
                    let disk = match &device {
                        Device::Blk { disk, .. } => Some(*disk),
                        Device::Net { .. } => None,
                    };
                    let info = task_info(&device);
                    state.forward = Some(forward::Forward::new(index, info, disk, link.clone()));
                }
                (Some(device), _) => {
                    state.inline = Some(Inline {
                        backend: SlotBackend::new(device),
                        port: None,
                    });
                }
                (None, _) => {}
            }
            let forwarded_here = state.forward.is_some();
            let shared = Arc::new(SlotShared {
                name: String::from(vm),
                slot,
                spi,
                ram,
                state: SpinMutex::new(state),
                warnings: AtomicU64::new(0),
                vm: Once::new(),
            });
            if let (Some(spec), true) = (devices_of.net, is_net) {
                port = Some(NetPort {
                    shared: shared.clone(),
                    network: spec.network.clone(),
                    mac: spec.mac,
                    id: None,
                });
            }
            if forwarded_here {
                forwarded.push(shared.clone());
            }
            Some((frame, shared))
        })
        .collect();
    let mut owner = match program {
        Some(program) if in_task => Some(
            forward::start(
                forward::Start {
                    vm,
                    program,
                    ram,
                    slots: forwarded,
                    flags: if forward::fault_test(vm) {
                        task_abi::FLAG_FAULT_TEST
                    } else {
                        0
                    },
                    keep_ram: devices_of.keep_ram,
                },
                &link,
            )
            .map_err(DiskSetupError::Task)?,
        ),
        _ => None,
    };
    let regions = slots
        .into_iter()
        .map(|(frame, shared)| MmioRegion {
            base: frame.start().get(),
            size: frame.size(),
            device: Box::new(VirtioSlot {
                shared,
                _task: owner.take(),
            }),
        })
        .collect();
    Ok((regions, port))
}
