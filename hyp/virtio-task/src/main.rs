//! The unprivileged program that serves one VM's virtio devices.
//!
//! The hypervisor keeps the virtio-mmio transport (the registers the guest
//! traps on) and runs this program at EL0 for the VM's disk and network
//! port, with the VM's RAM mapped at [`GUEST_RAM_BASE`] and nothing else of
//! the machine. When the guest notifies a queue, the hypervisor sets the
//! slot's event bit; this program takes the slot's transport state, does
//! the queue work with `virtio-backend` (the same code the hypervisor runs
//! for a VM whose manifest keeps the backends in the hypervisor), reaches
//! the disk and the switch through system calls, and asks for the
//! used-buffer interrupt. A bug here, or a guest that finds one, costs
//! this task, not the hypervisor.
//!
//! At entry (see `task_abi`): `sp` is [`task_abi::STACK_TOP`], `x0` the
//! VM's RAM base (guest physical), `x1` its size, `x2` the slots with a
//! device for this task (bit `n`: slot `n`), `x3` flags
//! ([`FLAG_FAULT_TEST`]: the first disk flush the guest asks for stores
//! just past the RAM window instead, which must fault). `.bss` is zero.

#![no_std]
#![no_main]

extern crate alloc;

mod disk;
mod serve;
mod sys;

use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::panic::PanicInfo;

use buddy_system_allocator::LockedHeap;
use task_abi::{Slot, FLAG_FAULT_TEST, GUEST_RAM_BASE, GUEST_RAM_WINDOW, SLOTS};
use virtio_backend::GuestRam;

use serve::Served;

/// Prints a formatted line (at most `task_abi::MAX_LOG_LEN` bytes).
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {{
        let mut line = $crate::sys::Line::new();
        // Writing to a `Line` cannot fail: it cuts off what does not fit.
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.print();
    }};
}

global_asm!(
    ".section .text.entry, \"ax\"",
    ".global _start",
    ".type _start, %function",
    "_start:",
    // The hypervisor set sp and x0..x3. A zero frame record ends
    // backtraces here.
    "mov x29, xzr",
    "mov x30, xzr",
    "bl {main}",
    // `task_main` never returns.
    "b .",
    main = sym task_main,
);

/// Bytes of heap: the device state, a disk's bounce buffer (64 KiB), and
/// a network port's backlog of up to 256 frames waiting for receive
/// buffers, with room to spare.
const HEAP_SIZE: usize = 4 << 20;

/// Order 23: single blocks up to the whole heap (4 MiB).
#[global_allocator]
static HEAP: LockedHeap<23> = LockedHeap::empty();

/// The heap's memory, in `.bss` (zero-filled by the hypervisor, not stored
/// in the image).
#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

extern "C" fn task_main(ram_base: u64, ram_size: u64, slot_mask: u64, flags: u64) -> ! {
    // SAFETY: Runs once, before anything allocates; nothing but the
    // allocator ever uses `ARENA`.
    unsafe { HEAP.lock().init((&raw mut ARENA) as usize, HEAP_SIZE) };

    if ram_size == 0 || ram_size > GUEST_RAM_WINDOW {
        log!("guest RAM of {ram_size:#x} bytes does not fit the window");
        sys::exit(2);
    }
    let host = core::ptr::with_exposed_provenance_mut::<u8>(GUEST_RAM_BASE as usize);
    // SAFETY: The hypervisor maps the VM's RAM, `ram_size` bytes from
    // `ram_base`, read-write at `GUEST_RAM_BASE` for the task's whole life
    // (`task_abi`), and nothing of this program lives there.
    let ram = unsafe { GuestRam::new(ram_base, ram_size, host) };

    // Just past the RAM window: nothing is mapped there.
    let fault_at = (flags & FLAG_FAULT_TEST != 0).then_some(GUEST_RAM_BASE + ram_size);
    let mut served = Vec::new();
    for slot in (0..SLOTS).filter(|n| slot_mask & (1 << n) != 0) {
        let Some(slot) = Slot::new(slot) else {
            continue;
        };
        match sys::device_info(slot) {
            Ok(info) => served.extend(Served::new(slot, info, fault_at)),
            Err(status) => log!("slot {}: no device ({status:?})", slot.index()),
        }
    }
    announce(&served, ram_base, ram_size);
    if served.is_empty() {
        sys::exit(0);
    }

    loop {
        let events = sys::wait_events();
        for device in &mut served {
            if events & device.slot().bit() != 0 {
                device.serve(&ram);
            }
        }
    }
}

/// Logs what the task serves: "serving 2 devices: blk in slot 0, net in
/// slot 1 (guest RAM 0x40000000+0x20000000)".
fn announce(served: &[Served], ram_base: u64, ram_size: u64) {
    let mut line = sys::Line::new();
    let plural = if served.len() == 1 { "" } else { "s" };
    let _ = write!(line, "serving {} device{plural}", served.len());
    for (i, device) in served.iter().enumerate() {
        let sep = if i == 0 { ": " } else { ", " };
        let _ = write!(
            line,
            "{sep}{} in slot {}",
            device.kind(),
            device.slot().index()
        );
    }
    let _ = write!(line, " (guest RAM {ram_base:#x}+{ram_size:#x})");
    line.print();
}

/// [`FLAG_FAULT_TEST`]: stores one word at `at`, just past the VM's RAM
/// window, which the hypervisor has not mapped: the store faults and the
/// hypervisor stops the task. If it does not, the task says so and exits.
fn fault(at: u64) -> ! {
    log!("fault test: writing past the VM's RAM, at {at:#x}");
    // SAFETY: The store goes to no memory of this program: `at` is past
    // the RAM window, where the hypervisor maps nothing; the point is that
    // it faults.
    unsafe { asm!("str xzr, [{at}]", at = in(reg) at, options(nostack)) };
    log!("fault test: the store past the VM's RAM did not fault");
    sys::exit(3)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    log!("panic: {info}");
    sys::exit(1)
}
