//! The unprivileged program that serves one VM's virtio devices.
//!
//! The hypervisor keeps the virtio-mmio transport (the registers the guest
//! traps on) and runs this program at EL0 for the VM's disk and network
//! port. It may map its VM's RAM (`map_guest`, at [`GUEST_RAM_BASE`]) and
//! nothing else of the machine; it maps all of it once, at the start, as
//! vhost-user backends do, since any page may hold a ring or a buffer.
//! When the guest notifies a queue, the hypervisor sets the
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
//! ([`FLAG_FAULT_TEST`]: the first disk flush the guest asks for runs
//! [`FaultTest`] instead). `.bss` is zero.

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
#[cfg(doc)]
use task_abi::GUEST_RAM_BASE;
use task_abi::{GuestPages, Slot, Status, FLAG_FAULT_TEST, PAGE_SIZE, SLOTS};
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

    let pages = GuestPages {
        addr: ram_base,
        len: ram_size,
    };
    let at = match sys::map_guest(pages, true) {
        Ok(at) => at,
        Err(status) => {
            log!("cannot map the VM's RAM, {pages} ({status:?})");
            sys::exit(2)
        }
    };
    let host = core::ptr::with_exposed_provenance_mut::<u8>(at as usize);
    // SAFETY: The VM's RAM, `ram_size` bytes from `ram_base`, is mapped
    // read-write at `at` from now on (it is unmapped only by the fault
    // test, which never returns), and nothing of this program lives there.
    let ram = unsafe { GuestRam::new(ram_base, ram_size, host) };

    let fault_test = (flags & FLAG_FAULT_TEST != 0).then_some(FaultTest { ram: pages, at });
    let mut served = Vec::new();
    for slot in (0..SLOTS).filter(|n| slot_mask & (1 << n) != 0) {
        let Some(slot) = Slot::new(slot) else {
            continue;
        };
        match sys::device_info(slot) {
            Ok(info) => served.extend(Served::new(slot, info, fault_test)),
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

/// [`FLAG_FAULT_TEST`]: what the first disk flush does instead.
#[derive(Clone, Copy, Debug)]
pub struct FaultTest {
    /// The VM's RAM.
    ram: GuestPages,
    /// Where it is mapped.
    at: u64,
}

impl FaultTest {
    /// Asks to map the page just past the VM's RAM, which the hypervisor
    /// must refuse; then reads the RAM's last word, unmaps the RAM and
    /// writes that word back, which must fault (had the unmapping left a
    /// translation in a TLB, the write would go through) and stop the
    /// task. If either goes otherwise, the task says so and exits.
    pub fn run(self) -> ! {
        let past = GuestPages {
            addr: self.ram.addr + self.ram.len,
            len: PAGE_SIZE,
        };
        match sys::map_guest(past, true) {
            Err(Status::Denied) => log!("fault test: mapping {past} was refused"),
            other => {
                log!("fault test: mapping {past} was not refused ({other:?})");
                sys::exit(3)
            }
        }
        let last = self.at + self.ram.len - 8;
        // SAFETY: The RAM's last word, mapped until the unmapping below.
        let word =
            unsafe { core::ptr::with_exposed_provenance::<u64>(last as usize).read_volatile() };
        // SAFETY: Nothing uses the RAM after this: the task ends here.
        if let Err(status) = unsafe { sys::unmap_guest(self.ram) } {
            log!("fault test: unmapping {} failed ({status:?})", self.ram);
            sys::exit(3)
        }
        log!("fault test: unmapped the VM's RAM; writing to {last:#x}");
        // SAFETY: `last` is no memory of this program any more; the point
        // is that the store faults. Were it to go through, it would write
        // the word the guest had there.
        unsafe {
            asm!("str {word}, [{last}]", word = in(reg) word, last = in(reg) last, options(nostack))
        };
        log!("fault test: the store to the unmapped RAM did not fault");
        sys::exit(3)
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    log!("panic: {info}");
    sys::exit(1)
}
