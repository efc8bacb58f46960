//! The hypervisor's system calls (`task_abi`): `SVC #0` with the number in
//! `x8` and arguments in `x0` to `x5`; the [`Status`] comes back in `x0`,
//! a value in `x1`.
//!
//! The hypervisor stops a task whose call breaks the ABI (a bad length, a
//! buffer outside its memory), so the wrappers never make such a call: they
//! take Rust slices, and refuse locally what the hypervisor would refuse.

use core::arch::asm;
use core::fmt;

use task_abi::{
    DeviceInfo, GuestPages, Number, Slot, SlotSnapshot, Status, MAP_WRITE, MAX_DISK_IO, MAX_FRAME,
    MAX_LOG_LEN,
};

/// Makes system call `number` with `args`; returns `x0` and `x1`.
///
/// # Safety
///
/// Every buffer the call names must be memory of this program the call may
/// read (or, if it writes there, write) while nothing else uses it.
unsafe fn call(number: Number, args: [u64; 6]) -> (u64, u64) {
    let (x0, x1);
    // SAFETY: The caller vouches for the buffers. The hypervisor changes
    // only x0 and x1 (the others are declared clobbered all the same) and
    // no stack: it saves and restores everything else of ours.
    unsafe {
        asm!(
            "svc #0",
            inlateout("x0") args[0] => x0,
            inlateout("x1") args[1] => x1,
            inlateout("x2") args[2] => _,
            inlateout("x3") args[3] => _,
            inlateout("x4") args[4] => _,
            inlateout("x5") args[5] => _,
            in("x8") number as u64,
            options(nostack),
        );
    }
    (x0, x1)
}

/// A call's status as a result: its value, or why it failed.
fn result((status, value): (u64, u64)) -> Result<u64, Status> {
    match Status::from_raw(status) {
        Status::Ok => Ok(value),
        error => Err(error),
    }
}

/// The address of bytes a call reads.
fn addr(bytes: &[u8]) -> u64 {
    bytes.as_ptr() as u64
}

/// The address of memory a call writes: from a mutable borrow, so the
/// compiler knows the call may change it.
fn addr_mut<T>(memory: &mut [T]) -> u64 {
    memory.as_mut_ptr() as u64
}

/// Prints `message` (its first [`MAX_LOG_LEN`] bytes).
pub fn log(message: &[u8]) {
    let len = message.len().min(MAX_LOG_LEN as usize);
    // SAFETY: Reads `len` bytes of `message`.
    unsafe { call(Number::Log, [addr(message), len as u64, 0, 0, 0, 0]) };
}

/// Ends the task.
pub fn exit(code: u64) -> ! {
    // SAFETY: Names no memory.
    unsafe { call(Number::Exit, [code, 0, 0, 0, 0, 0]) };
    // The hypervisor never returns from `exit`; if it did, there is nothing
    // left to do.
    loop {
        core::hint::spin_loop();
    }
}

/// Sleeps until an event bit is set, and takes them all (bit `n`: slot
/// `n`).
pub fn wait_events() -> u64 {
    // SAFETY: Names no memory.
    unsafe { call(Number::WaitEvents, [0; 6]) }.1
}

/// The state of `slot`'s transport; takes its queue notifications.
pub fn slot_state(slot: Slot) -> Result<SlotSnapshot, Status> {
    let mut words = [0u64; SlotSnapshot::WORDS];
    let args = [
        slot.index() as u64,
        addr_mut(&mut words),
        SlotSnapshot::BYTES,
        0,
        0,
        0,
    ];
    // SAFETY: Writes `words`, exactly `SlotSnapshot::BYTES` long.
    result(unsafe { call(Number::SlotState, args) })?;
    Ok(SlotSnapshot::decode(&words))
}

/// What sits in `slot`.
pub fn device_info(slot: Slot) -> Result<DeviceInfo, Status> {
    let mut words = [0u64; DeviceInfo::WORDS];
    let args = [
        slot.index() as u64,
        addr_mut(&mut words),
        DeviceInfo::BYTES,
        0,
        0,
        0,
    ];
    // SAFETY: Writes `words`, exactly `DeviceInfo::BYTES` long.
    result(unsafe { call(Number::DeviceInfo, args) })?;
    Ok(DeviceInfo::decode(&words))
}

/// Raises `slot`'s used-buffer interrupt.
pub fn interrupt(slot: Slot) -> Result<(), Status> {
    // SAFETY: Names no memory.
    result(unsafe { call(Number::Interrupt, [slot.index() as u64, 0, 0, 0, 0, 0]) }).map(drop)
}

/// Tells the VM `slot`'s device needs a reset.
pub fn device_failed(slot: Slot) -> Result<(), Status> {
    // SAFETY: Names no memory.
    result(unsafe { call(Number::DeviceFailed, [slot.index() as u64, 0, 0, 0, 0, 0]) }).map(drop)
}

/// Reads `slot`'s disk at byte `offset` into `buf`, in transfers of at
/// most [`MAX_DISK_IO`].
pub fn disk_read(slot: Slot, offset: u64, buf: &mut [u8]) -> Result<(), Status> {
    let mut at = offset;
    for chunk in buf.chunks_mut(MAX_DISK_IO as usize) {
        let len = chunk.len() as u64;
        let args = [slot.index() as u64, at, addr_mut(chunk), len, 0, 0];
        // SAFETY: Writes `chunk`, which is 1 to `MAX_DISK_IO` bytes.
        result(unsafe { call(Number::DiskRead, args) })?;
        at = at.checked_add(len).ok_or(Status::Denied)?;
    }
    Ok(())
}

/// Writes `data` to `slot`'s disk at byte `offset`, in transfers of at
/// most [`MAX_DISK_IO`].
pub fn disk_write(slot: Slot, offset: u64, data: &[u8]) -> Result<(), Status> {
    let mut at = offset;
    for chunk in data.chunks(MAX_DISK_IO as usize) {
        let len = chunk.len() as u64;
        let args = [slot.index() as u64, at, addr(chunk), len, 0, 0];
        // SAFETY: Reads `chunk`, which is 1 to `MAX_DISK_IO` bytes.
        result(unsafe { call(Number::DiskWrite, args) })?;
        at = at.checked_add(len).ok_or(Status::Denied)?;
    }
    Ok(())
}

/// Makes `slot`'s disk writes durable.
pub fn disk_flush(slot: Slot) -> Result<(), Status> {
    // SAFETY: Names no memory.
    result(unsafe { call(Number::DiskFlush, [slot.index() as u64, 0, 0, 0, 0, 0]) }).map(drop)
}

/// Sends `frame` from `slot`'s port. A frame the call cannot carry (empty
/// or over [`MAX_FRAME`]) is refused here as [`Status::Denied`].
pub fn net_send(slot: Slot, frame: &[u8]) -> Result<(), Status> {
    if frame.is_empty() || frame.len() as u64 > MAX_FRAME {
        return Err(Status::Denied);
    }
    let args = [
        slot.index() as u64,
        addr(frame),
        frame.len() as u64,
        0,
        0,
        0,
    ];
    // SAFETY: Reads `frame`, 1 to `MAX_FRAME` bytes.
    result(unsafe { call(Number::NetSend, args) }).map(drop)
}

/// Takes the next frame for `slot`'s port into `buf`; its length, 0 if
/// none was waiting.
pub fn net_recv(slot: Slot, buf: &mut [u8; MAX_FRAME as usize]) -> Result<usize, Status> {
    let args = [slot.index() as u64, addr_mut(buf), MAX_FRAME, 0, 0, 0];
    // SAFETY: Writes `buf`, exactly `MAX_FRAME` bytes.
    let len = result(unsafe { call(Number::NetRecv, args) })?;
    // The hypervisor never reports more than the buffer holds; a length
    // that says otherwise is treated as no frame rather than trusted.
    Ok(usize::try_from(len)
        .ok()
        .filter(|&len| len <= buf.len())
        .unwrap_or(0))
}

/// Maps `pages` of the VM's RAM, read-write with `write`; their address.
pub fn map_guest(pages: GuestPages, write: bool) -> Result<u64, Status> {
    if !pages.whole() {
        return Err(Status::Denied);
    }
    let flags = if write { MAP_WRITE } else { 0 };
    // SAFETY: Names no memory of this program: the pages appear in the
    // guest RAM window, where nothing of it lives.
    result(unsafe { call(Number::MapGuest, [pages.addr, pages.len, flags, 0, 0, 0]) })
}

/// Removes the mapping of exactly `pages` that [`map_guest`] made.
///
/// # Safety
///
/// Nothing may use those pages' addresses afterwards: they fault.
pub unsafe fn unmap_guest(pages: GuestPages) -> Result<(), Status> {
    if !pages.whole() {
        return Err(Status::Denied);
    }
    // SAFETY: The caller vouches that nothing uses the pages any more.
    result(unsafe { call(Number::UnmapGuest, [pages.addr, pages.len, 0, 0, 0, 0]) }).map(drop)
}

/// A line of at most [`MAX_LOG_LEN`] bytes, built with `write!` and
/// printed with [`Line::print`]; what does not fit is cut off.
pub struct Line {
    buf: [u8; MAX_LOG_LEN as usize],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LOG_LEN as usize],
            len: 0,
        }
    }

    /// Prints it.
    pub fn print(&self) {
        log(&self.buf[..self.len]);
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
