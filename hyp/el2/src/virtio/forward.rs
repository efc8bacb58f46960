//! Backends in an EL0 task: the VM's virtio slots forward what their
//! drivers do to one unprivileged task per VM (the `virtio-task` program
//! from the boot bundle), which processes the queues in its own address
//! space, where only this VM's RAM is mapped.
//!
//! The transport (the register model) stays here: register accesses are
//! answered at once, and the task learns of the driver's queue setup and
//! notifications through a [`SlotSnapshot`] per slot and an event bit per
//! slot (`wait_events`). What the task needs beyond its VM's RAM it asks for
//! with system calls that this module checks and carries out ([`VmService`]):
//! a read or write of its disk region, a frame to or from its switch port,
//! an interrupt for the VM, a device marked failed.
//!
//! If the task faults or breaks the system-call rules, the task module stops
//! it and logs why; [`VmService::ended`] then marks every slot it served
//! DEVICE_NEEDS_RESET, for good: the VM's drivers see their devices fail,
//! and no other VM notices anything.

use super::{switch_frame, RegionDisk, SlotShared};
use crate::task::{self, Refusal, Service, Task};
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use log::{error, info};
use task_abi::{DeviceInfo, DeviceKind, QueueSnapshot, Slot, SlotSnapshot, Status, Syscall};
use virtio_mmio::{Event, Features};
use vswitch::{Backlog, PortId};

/// Name of the backend program in the boot bundle.
pub const PROGRAM: &str = "virtio-task";

/// Stack of a backend task.
const STACK_BYTES: u64 = 64 << 10;

/// Frames kept per port for the task to fetch.
const INBOX_FRAMES: usize = 256;

/// The running task, as the slots see it: whom to notify.
#[derive(Debug, Default)]
pub struct Link {
    task: crate::lock::SpinMutex<Weak<Task>>,
}

impl Link {
    /// Sets event `bits` for the task, if it still runs.
    pub fn notify(&self, bits: u64) {
        let task = self.task.lock().upgrade();
        if let Some(task) = task {
            task.notify(bits);
        }
    }
}

/// A forwarded slot's state, under the slot's lock.
#[derive(Debug)]
pub struct Forward {
    /// Its bit in the task's events.
    slot: Slot,
    snapshot: SlotSnapshot,
    info: DeviceInfo,
    /// The disk region, for a disk.
    pub disk: Option<RegionDisk>,
    /// The switch port, for a network device, once attached.
    pub port: Option<PortId>,
    /// Frames from the switch the task has not fetched yet.
    inbox: Backlog,
    /// The task is gone: the device stays failed.
    dead: bool,
    /// Whom to tell.
    pub link: Arc<Link>,
}

impl Forward {
    /// A forwarded slot for the device `info` describes.
    pub fn new(slot: Slot, info: DeviceInfo, disk: Option<RegionDisk>, link: Arc<Link>) -> Self {
        Self {
            slot,
            snapshot: SlotSnapshot::default(),
            info,
            disk,
            port: None,
            inbox: Backlog::new(INBOX_FRAMES),
            dead: false,
            link,
        }
    }

    /// Notes a transport event; whether the task must hear of it (`None`:
    /// the task is gone and the device must fail again).
    pub fn event(&mut self, event: Event, features: Option<Features>) -> Option<bool> {
        if self.dead {
            return match event {
                Event::QueueReady(..) | Event::Notify(_) | Event::DriverOk => None,
                _ => Some(false),
            };
        }
        match event {
            Event::Reset => {
                self.snapshot.resets += 1;
                self.snapshot.notified = 0;
                for q in &mut self.snapshot.queues {
                    *q = QueueSnapshot {
                        generation: q.generation + 1,
                        ..QueueSnapshot::default()
                    };
                }
            }
            Event::QueueStopped(index) => {
                if let Some(q) = self.snapshot.queues.get_mut(usize::from(index.0)) {
                    q.generation += 1;
                    q.ready = false;
                }
            }
            Event::QueueReady(index, config) => {
                self.snapshot.features = features.map_or(0, Features::bits);
                if let Some(q) = self.snapshot.queues.get_mut(usize::from(index.0)) {
                    *q = QueueSnapshot {
                        generation: q.generation + 1,
                        ready: true,
                        size: config.size,
                        desc: config.desc.get(),
                        driver: config.driver.get(),
                        device: config.device.get(),
                    };
                }
            }
            Event::Notify(index) => self.snapshot.notified |= 1 << index.0,
            _ => return Some(false),
        }
        Some(true)
    }

    /// Its event bit.
    pub fn bit(&self) -> u64 {
        self.slot.bit()
    }

    /// Queues a frame from the switch for the task; whether to notify it.
    pub fn deliver(&mut self, frame: &[u8]) -> bool {
        !self.dead && self.inbox.push(frame.to_vec())
    }
}

/// One VM's slots served by its task: what the task's device system calls
/// reach.
pub struct VmService {
    vm: String,
    slots: Vec<Arc<SlotShared>>,
}

impl VmService {
    fn slot(&self, slot: Slot) -> Result<&Arc<SlotShared>, Refusal> {
        self.slots
            .iter()
            .find(|s| s.slot == slot.index() as u32)
            .ok_or(Refusal::NotItsSlot(slot))
    }

    /// The task ended: unless the VM asked for that, its devices fail.
    fn ended(&self, task: &Task) {
        let requested = task.stop_requested();
        for shared in &self.slots {
            let mut state = shared.state.lock();
            if let Some(forward) = &mut state.forward {
                forward.dead = true;
            }
            if !requested {
                state.transport.set_needs_reset();
                shared.update_line(&state);
            }
        }
        if !requested {
            error!(
                "vm \"{}\": its virtio backend task \"{}\" ended; its {} device(s) need a reset and stay failed",
                self.vm,
                task.name,
                self.slots.len()
            );
        }
    }

    /// `f` of the slot's forwarded state, with the slot locked (`None`:
    /// the slot forwards nothing).
    fn with_forward<R>(
        &self,
        slot: Slot,
        f: impl FnOnce(&mut Forward) -> R,
    ) -> Result<Option<R>, Refusal> {
        Ok(self.slot(slot)?.state.lock().forward.as_mut().map(f))
    }

    /// `f` of the slot's transport, which may change its interrupt line,
    /// with the slot locked; the VM's line follows, under the same lock.
    fn change_transport(
        &self,
        slot: Slot,
        f: impl FnOnce(&mut virtio_mmio::MmioTransport),
    ) -> Result<(), Refusal> {
        let shared = self.slot(slot)?;
        let mut state = shared.state.lock();
        f(&mut state.transport);
        shared.update_line(&state);
        Ok(())
    }

    /// The slot's disk region (`None`: it has no disk).
    fn disk(&self, slot: Slot) -> Result<Option<RegionDisk>, Refusal> {
        Ok(self.with_forward(slot, |f| f.disk)?.flatten())
    }
}

impl Service for VmService {
    fn call(&self, task: &Task, call: Syscall) -> Result<(Status, u64), Refusal> {
        let ok = Ok((Status::Ok, 0));
        match call {
            Syscall::SlotState { slot, to } => {
                let snapshot = self.with_forward(slot, |f| {
                    let s = f.snapshot;
                    f.snapshot.notified = 0;
                    s
                })?;
                let Some(snapshot) = snapshot else {
                    return Ok((Status::NoDevice, 0));
                };
                task.write(to.ptr, &words(&snapshot.encode()))?;
                ok
            }
            Syscall::DeviceInfo { slot, to } => {
                let info = self.with_forward(slot, |f| f.info)?;
                let info = info.unwrap_or(DeviceInfo {
                    kind: DeviceKind::None,
                });
                task.write(to.ptr, &words(&info.encode()))?;
                ok
            }
            Syscall::Interrupt(slot) => {
                self.change_transport(slot, |transport| {
                    transport.raise_used_buffer();
                })?;
                ok
            }
            Syscall::DeviceFailed(slot) => {
                self.change_transport(slot, virtio_mmio::MmioTransport::set_needs_reset)?;
                self.slot(slot)?.warn(format_args!(
                    "the backend found the driver's queues broken; the device needs a reset"
                ));
                ok
            }
            Syscall::DiskRead { slot, offset, to } => {
                let Some(disk) = self.disk(slot)? else {
                    return Ok((Status::NoDevice, 0));
                };
                let mut buf = alloc::vec![0; to.len as usize];
                let status =
                    disk_status(virtqueue::blk::Disk::read(&mut { disk }, offset, &mut buf));
                if status == Status::Ok {
                    task.write(to.ptr, &buf)?;
                }
                Ok((status, 0))
            }
            Syscall::DiskWrite { slot, offset, from } => {
                let Some(disk) = self.disk(slot)? else {
                    return Ok((Status::NoDevice, 0));
                };
                if disk.read_only {
                    return Ok((Status::Denied, 0));
                }
                let data = task.read(from)?;
                Ok((
                    disk_status(virtqueue::blk::Disk::write(&mut { disk }, offset, &data)),
                    0,
                ))
            }
            Syscall::DiskFlush(slot) => {
                let Some(disk) = self.disk(slot)? else {
                    return Ok((Status::NoDevice, 0));
                };
                Ok((disk_status(virtqueue::blk::Disk::flush(&mut { disk })), 0))
            }
            Syscall::NetSend { slot, from } => {
                let Some(port) = self.with_forward(slot, |f| f.port)?.flatten() else {
                    return Ok((Status::NoDevice, 0));
                };
                let frame = task.read(from)?;
                switch_frame(port, &frame);
                ok
            }
            Syscall::NetRecv { slot, to } => {
                let frame = self.with_forward(slot, |f| f.inbox.pop_front())?;
                match frame {
                    None => Ok((Status::NoDevice, 0)),
                    Some(None) => ok,
                    Some(Some(frame)) => {
                        task.write(to.ptr, &frame)?;
                        Ok((Status::Ok, frame.len() as u64))
                    }
                }
            }
            // Handled by the task module itself.
            Syscall::Log(_)
            | Syscall::Exit { .. }
            | Syscall::Yield
            | Syscall::Wait(_)
            | Syscall::Signal(_)
            | Syscall::WaitEvents
            | Syscall::MapGuest { .. }
            | Syscall::UnmapGuest(_) => ok,
        }
    }
}

/// Little-endian bytes of `words`.
fn words(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn disk_status(result: Result<(), virtqueue::blk::DiskError>) -> Status {
    match result {
        Ok(()) => Status::Ok,
        Err(virtqueue::blk::DiskError::OutOfRange { .. }) => Status::Denied,
        Err(_) => Status::Io,
    }
}

/// Keeps the VM's backend task alive while the VM has its slots, and stops
/// it when they go.
#[derive(Debug)]
pub struct TaskOwner(Arc<Task>);

impl Drop for TaskOwner {
    fn drop(&mut self) {
        self.0.request_stop();
    }
}

/// What a backend task is started with.
pub struct Start<'a> {
    /// The VM's name.
    pub vm: &'a str,
    /// The program (an ELF image).
    pub program: &'a [u8],
    /// The VM's RAM: IPA, size and physical address.
    pub ram: virtio_backend::GuestRam,
    /// The slots it serves.
    pub slots: Vec<Arc<SlotShared>>,
    /// Flags for the program (`task_abi::FLAG_*`).
    pub flags: u64,
    /// What keeps the VM's RAM allocated while the task may touch it.
    pub keep_ram: Arc<dyn Send + Sync>,
}

/// Why a VM's backend task cannot start.
#[derive(Debug)]
pub enum StartError {
    /// The boot bundle has no backend program.
    NoProgram,
    /// The task could not be made.
    Task(task::TaskError),
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoProgram => write!(
                f,
                "the boot bundle has no \"{PROGRAM}\" program for backends in a task (or use backend = \"hypervisor\")"
            ),
            Self::Task(e) => write!(f, "virtio backend task: {e}"),
        }
    }
}

/// Starts the VM's backend task for `start.slots`, which already forward to
/// `link`.
pub fn start(start: Start<'_>, link: &Arc<Link>) -> Result<TaskOwner, StartError> {
    let name = alloc::format!("{}-virtio", start.vm);
    let mut builder = task::Builder::new(&name).map_err(StartError::Task)?;
    let entry = builder.image(start.program).map_err(StartError::Task)?;
    builder.stack(STACK_BYTES).map_err(StartError::Task)?;
    builder
        .guest_ram(start.ram.host() as u64, start.ram.base(), start.ram.size())
        .map_err(StartError::Task)?;
    let mask = start
        .slots
        .iter()
        .fold(0u64, |mask, s| mask | (1 << s.slot));
    let service = Arc::new(VmService {
        vm: start.vm.into(),
        slots: start.slots,
    });
    builder.service(service.clone());
    let keep_ram = start.keep_ram;
    builder.on_end(alloc::boxed::Box::new(move |task: &Task| {
        service.ended(task);
        // Only now may the VM's RAM go back to the heap.
        drop(keep_ram);
    }));
    let task = builder
        .build(
            entry,
            [start.ram.base(), start.ram.size(), mask, start.flags],
        )
        .map_err(StartError::Task)?;
    *link.task.lock() = Arc::downgrade(&task);
    info!(
        "vm \"{}\": virtio backends in task \"{name}\" (slots {mask:#x})",
        start.vm
    );
    task::created();
    crate::sched::enqueue_task(task.clone());
    Ok(TaskOwner(task))
}

/// Whether `hyp.backend-fault=VM` asked `vm`'s backend task to write outside
/// its memory (a test switch of debug builds).
pub fn fault_test(vm: &str) -> bool {
    FAULT_TEST.get().is_some_and(|name| name == vm)
}

static FAULT_TEST: spin::Once<String> = spin::Once::new();

/// Sets the `hyp.backend-fault=VM` test switch.
pub fn set_fault_test(vm: &str) {
    FAULT_TEST.call_once(|| vm.into());
}
