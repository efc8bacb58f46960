//! The console: the PL011 of the QEMU-virt-like machine the guest sees, of
//! which the hypervisor emulates the transmit path (DR, and FR with TXFF
//! clear). Each line is written under a lock, so lines of different vCPUs do
//! not interleave.

use arm_pl011_uart::{PL011Registers, Uart, UniqueMmioPointer};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use spin::mutex::SpinMutex;

/// Base address of the PL011.
pub const PL011_BASE: u64 = 0x0900_0000;
/// Size of the PL011's register page.
pub const PL011_SIZE: u64 = 0x1000;

static CONSOLE: SpinMutex<Option<Uart<'static>>> = SpinMutex::new(None);

/// Attempts to take the console lock before an emergency report stops waiting.
const EMERGENCY_LOCK_ATTEMPTS: usize = 1 << 20;

/// Takes over the PL011 as it is: the hypervisor's emulation has no line
/// settings to program.
pub fn init() {
    let mut console = CONSOLE.lock();
    if console.is_some() {
        return;
    }
    let Some(base) = NonNull::new(PL011_BASE as *mut PL011Registers) else {
        return;
    };
    // SAFETY: PL011_BASE is the PL011's register block, identity-mapped as
    // device memory by `mmu`; only this console accesses it, under the lock.
    let registers = unsafe { UniqueMmioPointer::new(base) };
    *console = Some(Uart::new(registers));
}

fn write_line(uart: &mut Uart<'static>, args: fmt::Arguments<'_>) {
    // A UART write cannot fail; an error could only come from a `Display`
    // impl, and then the line is simply cut short.
    let _ = uart.write_fmt(args);
    let _ = uart.write_str("\r\n");
}

/// Prints one line.
pub fn print_line(args: fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        write_line(uart, args);
    }
}

/// Prints one line even if the lock is held by a vCPU that will never let go
/// (for panics and unexpected exceptions, which may have interrupted the
/// holder). Before the console is initialised, initialises it.
pub fn print_line_emergency(args: fmt::Arguments<'_>) {
    for _ in 0..EMERGENCY_LOCK_ATTEMPTS {
        if let Some(mut console) = CONSOLE.try_lock() {
            if let Some(uart) = console.as_mut() {
                write_line(uart, args);
                return;
            }
            drop(console);
            init();
            print_line(args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: The holder has not let go for a very long time and the VM is
    // going down; interleaved output is the worst outcome.
    unsafe { CONSOLE.force_unlock() };
    print_line(args);
}

/// Prints a line to the console: `println!("fmt", args...)`.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print_line(format_args!($($arg)*))
    };
}
