//! `test=reset`: SYSTEM_RESET must restart the VM with its RAM kept (a warm
//! reset). The first boot leaves a magic word high in RAM and asks for the
//! reset; the second finds it.

use crate::dt::{Machine, Range};
use crate::firmware::{self, Answer};
use crate::{boot, println, report};
use core::arch::asm;

const TEST: &str = "reset";

/// The magic word: "reset ok" in ASCII.
const MAGIC: u64 = u64::from_be_bytes(*b"reset ok");
/// Where below the end of RAM the word lives: far from the image (at the
/// bottom of RAM) and checked against the device tree and initrd.
const FROM_RAM_END: u64 = 4 << 20;

/// Runs the first or the second half.
pub fn run(machine: &Machine) {
    let Some(start) = machine.ram.end.checked_sub(FROM_RAM_END) else {
        report::fail(TEST, format_args!("RAM {} is too small", machine.ram));
        return;
    };
    let word = Range {
        start,
        end: start + 8,
    };
    let (image_start, image_end) = boot::image_range();
    let image = Range {
        start: image_start,
        end: image_end,
    };
    let clear = machine.ram.contains(&word)
        && !word.overlaps(&image)
        && !word.overlaps(&machine.dtb)
        && !machine.initrd.is_some_and(|initrd| word.overlaps(&initrd));
    if !clear {
        report::fail(
            TEST,
            format_args!(
                "magic word at {word} is not free RAM: RAM {}, image {image}, device tree {}, initrd {:?}",
                machine.ram, machine.dtb, machine.initrd
            ),
        );
        return;
    }
    let pointer = word.start as *mut u64;
    // SAFETY: The word is 8-byte aligned RAM that neither the image nor the
    // loader's device tree or initrd use (checked above); only vCPU 0 runs.
    let value = unsafe { pointer.read_volatile() };
    if value == MAGIC {
        // SAFETY: As above. Cleared so that a later boot starts afresh.
        unsafe { pointer.write_volatile(0) };
        clean_to_poc(word.start);
        report::pass(TEST, format_args!("rebooted with memory kept"));
        return;
    }
    println!("reset: first boot, asking for SYSTEM_RESET");
    // SAFETY: As above.
    unsafe { pointer.write_volatile(MAGIC) };
    // The reset reloads the image and restarts with the MMU and caches off;
    // the word must be in memory by then, not only in a cache.
    clean_to_poc(word.start);
    let got = firmware::system_reset();
    report::fail(
        TEST,
        format_args!("SYSTEM_RESET returned {}, expected no return", Answer(got)),
    );
}

/// Cleans the data cache line holding `address` to the point of coherency.
fn clean_to_poc(address: u64) {
    // SAFETY: Cache maintenance by VA on mapped RAM changes no data.
    unsafe {
        asm!("dc cvac, {address}", "dsb sy", address = in(reg) address, options(nostack));
    }
}
