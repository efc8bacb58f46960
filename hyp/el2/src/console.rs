//! The hypervisor's console on the host PL011, and the `log` backend that
//! prefixes every line with the CPU it comes from: `[cpu1] INFO  message`.

use addr::PhysAddr;
use arm_pl011_uart::{PL011Registers, Uart, UniqueMmioPointer};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use log::{LevelFilter, Log, Metadata, Record};
use spin::mutex::SpinMutex;

static CONSOLE: SpinMutex<Option<Uart<'static>>> = SpinMutex::new(None);

/// Attempts to take the console lock before a panicking CPU stops waiting.
const PANIC_LOCK_ATTEMPTS: usize = 1 << 20;

/// Takes over the PL011 at `base` as the console.
///
/// The UART is left as the firmware or QEMU configured it (baud rate, line
/// settings): reprogramming it would need the UART clock, and changing the
/// line settings under a terminal gains nothing.
///
/// # Safety
///
/// `base` must be the physical (and, identity-mapped, virtual) address of a
/// PL011's register block, mapped as device memory, and nothing else may
/// access that UART afterwards.
pub unsafe fn init(base: PhysAddr) {
    let Some(ptr) = NonNull::new(base.get() as *mut PL011Registers) else {
        return;
    };
    // SAFETY: The caller guarantees `base` is a mapped PL011 register block
    // that only the console uses from now on.
    let regs = unsafe { UniqueMmioPointer::new(ptr) };
    *CONSOLE.lock() = Some(Uart::new(regs));
}

/// Writes `args` to the console, if there is one.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    if let Some(uart) = CONSOLE.lock().as_mut() {
        // A UART write cannot fail; an error could only come from a
        // `Display` impl, and then the line is simply cut short.
        let _ = uart.write_fmt(args);
    }
}

/// Writes `args` even if another CPU holds the console lock and never lets
/// go (it may be the one that crashed): for panics only.
pub fn write_fmt_for_panic(args: fmt::Arguments<'_>) {
    for _ in 0..PANIC_LOCK_ATTEMPTS {
        if let Some(mut guard) = CONSOLE.try_lock() {
            if let Some(uart) = guard.as_mut() {
                let _ = uart.write_fmt(args);
            }
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: The holder has not released the lock for a very long time and
    // the system is going down; interleaved output is the worst outcome.
    unsafe { CONSOLE.force_unlock() };
    write_fmt(args);
}

/// Waits until everything written has left the UART.
pub fn flush() {
    if let Some(uart) = CONSOLE.lock().as_ref() {
        while uart.is_busy() {
            core::hint::spin_loop();
        }
    }
}

/// The `log` backend.
struct Logger;

impl Log for Logger {
    fn enabled(&self, _metadata: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let cpu = crate::percpu::current_index();
        // One locked write per line, so lines from different CPUs never interleave.
        write_fmt(format_args!(
            "[cpu{cpu}] {:<5} {}\r\n",
            record.level(),
            record.args()
        ));
    }

    fn flush(&self) {
        flush();
    }
}

static LOGGER: Logger = Logger;

/// Installs the logger; `level` is the most verbose level printed.
pub fn init_logger(level: LevelFilter) {
    // Only fails if a logger is already set, in which case it stays.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
