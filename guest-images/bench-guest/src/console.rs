//! The console: the PL011 at QEMU `virt`'s address, written byte by byte.
//! Lines are written under a lock so that two vCPUs' lines never mix.
//!
//! No driver setup: the hypervisor's PL011 and the reference VMM's console
//! print whatever reaches the data register. Each byte waits for room in
//! the transmit FIFO, as on real hardware.

use core::fmt::{self, Write};
use spin::mutex::SpinMutex;

/// Base address of the PL011.
pub const PL011_BASE: u64 = 0x0900_0000;
/// UARTDR, the data register.
const UARTDR: u64 = 0x000;
/// UARTFR, the flag register.
const UARTFR: u64 = 0x018;
/// UARTFR.TXFF: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;

/// Attempts at the console lock before an emergency report takes it anyway.
const EMERGENCY_LOCK_ATTEMPTS: usize = 1 << 20;

/// The lock that keeps lines whole; the UART itself needs no state.
static CONSOLE: SpinMutex<Uart> = SpinMutex::new(Uart);

/// The PL011's transmit side.
struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            // SAFETY: PL011_BASE is the UART's register page, mapped as
            // device memory by `mmu`; its flag and data registers are 32-bit
            // registers that only this writer (under the lock) touches.
            unsafe {
                while ((PL011_BASE + UARTFR) as *const u32).read_volatile() & FR_TXFF != 0 {}
                ((PL011_BASE + UARTDR) as *mut u32).write_volatile(byte.into());
            }
        }
        Ok(())
    }
}

fn write_line(uart: &mut Uart, args: fmt::Arguments<'_>) {
    // The UART cannot fail; an error could only come from a Display impl,
    // and then the line is cut short.
    let _ = uart.write_fmt(args);
    let _ = uart.write_str("\r\n");
}

/// Prints one line.
pub fn print_line(args: fmt::Arguments<'_>) {
    write_line(&mut CONSOLE.lock(), args);
}

/// Prints one line even if the lock is held by a vCPU that will never let
/// go (a report from an exception vector or a panic).
pub fn print_line_emergency(args: fmt::Arguments<'_>) {
    for _ in 0..EMERGENCY_LOCK_ATTEMPTS {
        if let Some(mut uart) = CONSOLE.try_lock() {
            write_line(&mut uart, args);
            return;
        }
        core::hint::spin_loop();
    }
    // The holder is gone for good and the VM is going down: mixed output is
    // the worst that can happen.
    write_line(&mut Uart, args);
}

/// Prints a line to the console: `println!("fmt", args...)`.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::console::print_line(format_args!($($arg)*))
    };
}
