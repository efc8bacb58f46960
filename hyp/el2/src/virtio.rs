//! The VM's virtio-mmio slots: all of QEMU `virt`'s 32, as its device
//! tree describes them. A slot with no device reads as "no device"
//! (DeviceID 0), so a guest may probe every one. The VM's disk
//! (virtio-blk), if the manifest gives it one, is in the first slot, its
//! network port (virtio-net) in the next.
//!
//! The register model is `virtio-mmio`'s and the queue and request
//! handling `virtqueue`'s; this layer traps the accesses, gives them the
//! VM's RAM, carries out requests on the host disk when the guest notifies,
//! passes transmitted frames through the switch (`vswitch`) into the
//! receivers' queues, and drives the slots' interrupt lines. All of it runs
//! synchronously on the notifying vCPU's physical CPU.
//!
//! Anything wrong in what the guest put in its queues marks the device
//! DEVICE_NEEDS_RESET (and is logged): it does nothing more until the driver
//! resets it, and nothing else is affected.

use crate::hostdisk;
use crate::lock::SpinMutex;
use crate::mmio::{MmioDevice, MmioRegion};
use crate::vm::Vm;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_boot::virt::{self, Spi};
use log::{info, warn};
use manifest::{DiskSpec, NetSpec};
use spin::Once;
use virtio_mmio::{DeviceId, DeviceInfo, Event, Features, Ignored, MmioTransport};
use virtqueue::blk::{BlkDevice, Disk, DiskError};
use virtqueue::{GuestMemory, MemError, Queue, QueueConfig, QueueFeatures};
use vswitch::{Backlog, NetDevice, PortId, Route, RxOutcome, Switch, SwitchError, Tx};

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

/// What sits behind a slot's transport.
#[derive(Debug)]
enum Backend {
    /// A disk: one request queue.
    Blk { device: BlkDevice, disk: RegionDisk },
    /// A network port: receive and transmit queues.
    Net(Net),
}

#[derive(Debug)]
struct Net {
    device: NetDevice,
    /// Its switch port, once attached.
    port: Option<PortId>,
    /// Frames waiting for receive buffers.
    backlog: Backlog,
}

/// Frames kept per port while the guest has no receive buffers posted.
const BACKLOG_FRAMES: usize = 256;

#[derive(Debug)]
struct SlotState {
    transport: MmioTransport,
    backend: Option<Backend>,
    queues: Vec<Option<Queue>>,
    /// Marked DEVICE_NEEDS_RESET: nothing is done until the driver resets.
    broken: bool,
}

impl SlotState {
    fn new(transport: MmioTransport, backend: Option<Backend>) -> Self {
        let queues = (0..transport.queue_count()).map(|_| None).collect();
        Self {
            transport,
            backend,
            queues,
            broken: false,
        }
    }

    /// Gives up on the device after a guest error, until the driver resets
    /// it.
    fn fail(&mut self) {
        self.broken = true;
        for queue in &mut self.queues {
            *queue = None;
        }
        self.transport.set_needs_reset();
    }

    /// Handles a transport event; frames the guest transmitted are added to
    /// `sent`, for the switch.
    fn event(
        &mut self,
        ram: &GuestRamView,
        event: Event,
        sent: &mut Vec<Vec<u8>>,
    ) -> Result<(), virtqueue::QueueError> {
        match event {
            Event::Reset => {
                self.broken = false;
                for queue in &mut self.queues {
                    *queue = None;
                }
            }
            Event::QueueStopped(index) => {
                if let Some(queue) = self.queues.get_mut(usize::from(index.0)) {
                    *queue = None;
                }
            }
            Event::QueueReady(index, config) if !self.broken => {
                let features = self
                    .transport
                    .negotiated_features()
                    .map_or(0, Features::bits);
                let config = QueueConfig {
                    size: config.size,
                    desc_table: config.desc.get(),
                    driver_ring: config.driver.get(),
                    device_ring: config.device.get(),
                    features: QueueFeatures::from_negotiated(features),
                };
                let queue = Queue::new(config, ram)?;
                if let Some(slot) = self.queues.get_mut(usize::from(index.0)) {
                    *slot = Some(queue);
                }
            }
            Event::Notify(index) if !self.broken => self.notified(ram, index.0, sent)?,
            _ => {}
        }
        Ok(())
    }

    /// The driver made buffers available in queue `index`.
    fn notified(
        &mut self,
        ram: &GuestRamView,
        index: u16,
        sent: &mut Vec<Vec<u8>>,
    ) -> Result<(), virtqueue::QueueError> {
        let Self {
            transport,
            backend,
            queues,
            ..
        } = self;
        let Some(queue) = queues.get_mut(usize::from(index)).and_then(Option::as_mut) else {
            return Ok(());
        };
        match backend {
            Some(Backend::Blk { device, disk }) => {
                while let Some(chain) = queue.pop(ram)? {
                    let written = device.handle(&chain, ram, disk)?;
                    queue.push_used(ram, chain.head(), written)?;
                }
            }
            Some(Backend::Net(net)) if index == vswitch::TX_QUEUE => {
                while let Some(chain) = queue.pop(ram)? {
                    if let Tx::Frame(frame) = net.device.transmit(&chain, ram)? {
                        sent.push(frame);
                    }
                    queue.push_used(ram, chain.head(), 0)?;
                }
            }
            Some(Backend::Net(net)) => fill_rx(net, queue, ram)?,
            None => return Ok(()),
        }
        if queue.needs_interrupt(ram)? {
            transport.raise_used_buffer();
        }
        Ok(())
    }

    /// A frame from the switch: queued, and handed to the guest as far as it
    /// has receive buffers.
    fn deliver(&mut self, ram: &GuestRamView, frame: &[u8]) -> Result<(), virtqueue::QueueError> {
        let Self {
            transport,
            backend: Some(Backend::Net(net)),
            queues,
            broken: false,
        } = self
        else {
            return Ok(());
        };
        net.backlog.push(frame.to_vec());
        let Some(queue) = queues
            .get_mut(usize::from(vswitch::RX_QUEUE))
            .and_then(Option::as_mut)
        else {
            return Ok(());
        };
        fill_rx(net, queue, ram)?;
        if queue.needs_interrupt(ram)? {
            transport.raise_used_buffer();
        }
        Ok(())
    }
}

/// Moves waiting frames into the receive queue's buffers.
fn fill_rx(
    net: &mut Net,
    queue: &mut Queue,
    ram: &GuestRamView,
) -> Result<(), virtqueue::QueueError> {
    while let Some(frame) = net.backlog.front() {
        let Some(chain) = queue.pop(ram)? else {
            break;
        };
        let used = match net.device.receive(&chain, ram, frame)? {
            RxOutcome::Delivered { used_len } | RxOutcome::TooSmall { used_len } => used_len,
        };
        queue.push_used(ram, chain.head(), used)?;
        net.backlog.pop_front();
    }
    Ok(())
}

/// One virtio-mmio slot.
#[derive(Debug)]
pub struct VirtioSlot {
    /// The VM's name and the slot, for log lines.
    name: String,
    slot: u32,
    spi: Spi,
    ram: GuestRamView,
    state: Arc<SpinMutex<SlotState>>,
    warnings: AtomicU64,
    /// The VM, whose GIC line this slot drives under `state`'s lock (see
    /// [`MmioDevice::attach_vm`]).
    vm: Once<Weak<Vm>>,
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
}

impl MmioDevice for VirtioSlot {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let access = self.state.lock().transport.read(offset, size);
        self.note(access.ignored);
        u64::from(access.value)
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let mut sent = Vec::new();
        let port = {
            let mut state = self.state.lock();
            let access = state.transport.write(offset, size, value);
            self.note(access.ignored);
            if let Some(event) = access.value {
                if let Err(e) = state.event(&self.ram, event, &mut sent) {
                    self.warn(format_args!("{e}; the device needs a reset"));
                    state.fail();
                }
            }
            if let Some(vm) = self.vm.get().and_then(Weak::upgrade) {
                vm.set_spi(self.spi, state.transport.interrupt_line());
            }
            match &state.backend {
                Some(Backend::Net(net)) => net.port,
                _ => None,
            }
        };
        // With no slot locked: delivery locks the receivers'.
        if let Some(port) = port {
            for frame in sent {
                switch_frame(port, &frame);
            }
        }
    }

    fn attach_vm(&self, vm: &Weak<Vm>) {
        self.vm.call_once(|| vm.clone());
    }
}

/// A VM's network port: what the switch needs to reach it.
#[derive(Debug)]
pub struct NetPort {
    state: Arc<SpinMutex<SlotState>>,
    spi: Spi,
    ram: GuestRamView,
    network: String,
    mac: [u8; 6],
    id: Option<PortId>,
}

/// A port as the switch's registry keeps it.
#[derive(Clone)]
struct PortHandle {
    state: Weak<SpinMutex<SlotState>>,
    vm: Weak<Vm>,
    spi: Spi,
    ram: GuestRamView,
}

/// Every network's switch.
static SWITCH: Once<SpinMutex<Switch>> = Once::new();

/// Attached ports, by switch port.
static PORTS: SpinMutex<BTreeMap<PortId, PortHandle>> = SpinMutex::new(BTreeMap::new());

fn switch() -> &'static SpinMutex<Switch> {
    SWITCH.call_once(|| SpinMutex::new(Switch::default()))
}

/// Sends `frame` from port `from` wherever the switch routes it.
fn switch_frame(from: PortId, frame: &[u8]) {
    let Route::To(ports) = switch().lock().route(from, frame) else {
        return;
    };
    for to in ports {
        let Some(port) = PORTS.lock().get(&to).cloned() else {
            continue;
        };
        let (Some(state), Some(vm)) = (port.state.upgrade(), port.vm.upgrade()) else {
            continue;
        };
        let mut state = state.lock();
        if let Err(e) = state.deliver(&port.ram, frame) {
            warn!(
                "vm \"{}\": virtio-net: {e}; the device needs a reset",
                vm.name
            );
            state.fail();
        }
        // Under the slot's lock, as every change of its line.
        vm.set_spi(port.spi, state.transport.interrupt_line());
    }
}

impl NetPort {
    /// Connects the port to its network's switch, on behalf of `vm`.
    pub fn attach(&mut self, vm: Weak<Vm>) -> Result<(), SwitchError> {
        let id = switch().lock().add_port(&self.network, self.mac)?;
        self.id = Some(id);
        if let Some(Backend::Net(net)) = &mut self.state.lock().backend {
            net.port = Some(id);
        }
        PORTS.lock().insert(
            id,
            PortHandle {
                state: Arc::downgrade(&self.state),
                vm,
                spi: self.spi,
                ram: self.ram,
            },
        );
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
fn blk(vm: &str, spec: &DiskSpec) -> Result<(MmioTransport, Backend), DiskSetupError> {
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
        Backend::Blk {
            device,
            disk: RegionDisk {
                offset: spec.offset,
                size: spec.size,
            },
        },
    ))
}

/// The VM's network device from its manifest entry.
fn net(vm: &str, spec: &NetSpec) -> (MmioTransport, Backend) {
    let device = NetDevice::new(spec.mac);
    let info = DeviceInfo {
        device_id: DeviceId::NET,
        vendor_id: VENDOR_ID,
        features: Features::from_bits(device.features()),
        queue_max_sizes: vec![vswitch::QUEUE_SIZE_MAX; 2],
        config: device.config_space(),
    };
    info!("vm \"{vm}\": {spec}");
    // The device's own offer is valid; an empty slot is the fallback if not.
    let transport = MmioTransport::new(info).unwrap_or_else(|_| MmioTransport::empty());
    (
        transport,
        Backend::Net(Net {
            device,
            port: None,
            backlog: Backlog::new(BACKLOG_FRAMES),
        }),
    )
}

/// The MMIO regions of all the VM's virtio-mmio slots: its disk, if any,
/// in slot 0, its network port next, the rest empty; and the network port,
/// to be attached once the VM exists.
pub fn slots(
    vm: &str,
    ram: GuestRamView,
    disk: Option<&DiskSpec>,
    net_spec: Option<&NetSpec>,
) -> Result<(Vec<MmioRegion>, Option<NetPort>), DiskSetupError> {
    let mut devices: VecDeque<(MmioTransport, Backend)> = VecDeque::new();
    if let Some(spec) = disk {
        devices.push_back(blk(vm, spec)?);
    }
    if let Some(spec) = net_spec {
        devices.push_back(net(vm, spec));
    }
    let mut port = None;
    let regions = (0..virt::VIRTIO_MMIO_SLOTS)
        .filter_map(|slot| {
            let (frame, spi) = virt::virtio_mmio_slot(slot)?;
            let state = match devices.pop_front() {
                Some((transport, backend)) => SlotState::new(transport, Some(backend)),
                None => SlotState::new(MmioTransport::empty(), None),
            };
            let state = Arc::new(SpinMutex::new(state));
            if let (Some(spec), Some(Backend::Net(_))) = (net_spec, &state.lock().backend) {
                port = Some(NetPort {
                    state: state.clone(),
                    spi,
                    ram,
                    network: spec.network.clone(),
                    mac: spec.mac,
                    id: None,
                });
            }
            Some(MmioRegion {
                base: frame.start().get(),
                size: frame.size(),
                device: Box::new(VirtioSlot {
                    name: String::from(vm),
                    slot,
                    spi,
                    ram,
                    state,
                    warnings: AtomicU64::new(0),
                    vm: Once::new(),
                }),
            })
        })
        .collect();
    Ok((regions, port))
}
