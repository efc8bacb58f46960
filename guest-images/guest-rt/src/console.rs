//! The console: the PL011 of the QEMU-virt-like machine the guest sees.
//! Each line is written under a lock, so lines of different vCPUs do not
//! interleave; each byte waits for room in the transmit FIFO, as on real
//! hardware. [`init`] takes the UART over as it is: the hypervisor's PL011
//! and the reference VMM's console print whatever reaches the data register.
//! Only a guest that reads ([`enable_receiver`]) programs the line.

use arm_pl011_uart::{
    DataBits, Error, LineConfig, PL011Registers, Parity, StopBits, Uart, UniqueMmioPointer,
};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use spin::mutex::SpinMutex;

/// Base address of the PL011.
pub const PL011_BASE: u64 = 0x0900_0000;
/// Size of the PL011's register page.
pub const PL011_SIZE: u64 = 0x1000;

/// The UART once [`init`] took it over; the lock keeps lines whole.
static CONSOLE: SpinMutex<Option<Uart<'static>>> = SpinMutex::new(None);

/// The UART's reference clock on QEMU's `virt` board (its `apb-pclk`).
const UART_CLOCK_HZ: u32 = 24_000_000;
/// The line speed programmed; neither QEMU nor the hypervisor cares.
const BAUD: u32 = 115_200;

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
    // device memory by both guests' maps; only this console accesses it,
    // under the lock.
    let registers = unsafe { UniqueMmioPointer::new(base) };
    *console = Some(Uart::new(registers));
}

/// Programs the UART for 8N1 with FIFOs and enables it, receiver included,
/// as a driver would (the UART is left disabled out of reset).
pub fn enable_receiver() {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        let config = LineConfig {
            data_bits: DataBits::Bits8,
            parity: Parity::None,
            stop_bits: StopBits::One,
        };
        // Only fails for divisors out of range, which these are not.
        let _ = uart.enable(config, BAUD, UART_CLOCK_HZ);
    }
}

/// A received byte, if one is waiting.
///
/// # Errors
///
/// The UART's receive error (overrun, break, parity, framing) for a byte
/// that came with one; that byte is lost.
pub fn read_byte() -> Result<Option<u8>, Error> {
    match CONSOLE.lock().as_mut() {
        Some(uart) => uart.read_word(),
        None => Ok(None),
    }
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
        $crate::console::print_line(::core::format_args!($($arg)*))
    };
}
