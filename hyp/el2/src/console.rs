//! The hypervisor's console on the host PL011, shared with the VMs, and the
//! `log` backend that prefixes every line with the CPU it comes from:
//! `[cpu1] INFO  message`.
//!
//! Output from every source goes through one [`OutputMux`]: the log lines
//! as they are, each VM's UART output as `[name] text` lines, printed as the
//! guest writes them (see [`console_mux::OutputMux`] for how lines from
//! different sources are kept apart).
//!
//! Input goes to one VM at a time: VMs [`attach`] in start order, the focus
//! starts on the first, and Ctrl-] followed by a command key moves it
//! ([`console_mux::InputMux`]). [`poll_input`] drains the host UART and
//! delivers; call it from the UART's interrupt (after
//! [`enable_rx_interrupt`]) or a periodic tick.
//!
//! Locking: the console lock covers the UART and the output mux; the input
//! lock covers the input decoder and the targets. Neither is held while
//! calling into a VM ([`ConsoleInput::console_input`]) or the statistics
//! reporter, which may log; the input lock is never taken with the console
//! lock held. The hypervisor runs with interrupts masked at EL2, so no lock
//! holder is ever interrupted by code taking the same lock.

use crate::lock::SpinMutex;
use addr::PhysAddr;
use alloc::sync::{Arc, Weak};
use arm_pl011_uart::{Interrupts, PL011Registers, Uart, UniqueMmioPointer};
use console_mux::{InputEvent, InputMux, OutputId, OutputMux, Source, Targets, HELP};
use core::fmt::{self, Write};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use log::{info, LevelFilter, Log, Metadata, Record};

/// The host UART and what is printed on it.
struct Console {
    uart: Option<Uart<'static>>,
    output: OutputMux,
}

static CONSOLE: SpinMutex<Console> = SpinMutex::new(Console {
    uart: None,
    output: OutputMux::new(),
});

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
    CONSOLE.lock().uart = Some(Uart::new(regs));
}

/// Sends `bytes` out of the UART, waiting for room in its FIFO.
fn send(uart: &mut Uart<'static>, bytes: &[u8]) {
    for &byte in bytes {
        while uart.is_tx_fifo_full() {
            core::hint::spin_loop();
        }
        uart.write_word(byte);
    }
}

/// Formats into the output mux as the hypervisor.
struct HypervisorWriter<'a> {
    uart: &'a mut Uart<'static>,
    output: &'a mut OutputMux,
}

impl Write for HypervisorWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let uart = &mut *self.uart;
        self.output
            .write(Source::Hypervisor, s.as_bytes(), &mut |bytes| {
                send(uart, bytes)
            });
        Ok(())
    }
}

fn write_locked(console: &mut Console, args: fmt::Arguments<'_>) {
    let Console { uart, output } = console;
    if let Some(uart) = uart.as_mut() {
        // Writing to the mux cannot fail; an error could only come from a
        // `Display` impl, and then the line is simply cut short.
        let _ = HypervisorWriter { uart, output }.write_fmt(args);
    }
}

/// Writes `args` to the console as the hypervisor, if there is a console.
/// A VM's unfinished line is ended first; `args` should end with `\r\n`.
pub fn write_fmt(args: fmt::Arguments<'_>) {
    write_locked(&mut CONSOLE.lock(), args);
}

/// Writes `args` even if another CPU holds the console lock and never lets
/// go (it may be the one that crashed): for panics only.
pub fn write_fmt_for_panic(args: fmt::Arguments<'_>) {
    for _ in 0..PANIC_LOCK_ATTEMPTS {
        if let Some(mut guard) = CONSOLE.try_lock() {
            write_locked(&mut guard, args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: The holder has not released the lock for a very long time and
    // the system is going down; interleaved output is the worst outcome.
    unsafe { CONSOLE.force_unlock() };
    // The holder may have left the mux half-updated: write to the UART
    // directly, on a line of its own.
    if let Some(uart) = CONSOLE.lock().uart.as_mut() {
        send(uart, b"\r\n");
        let _ = uart.write_fmt(args);
    }
}

/// Waits until everything written has left the UART.
pub fn flush() {
    if let Some(uart) = CONSOLE.lock().uart.as_ref() {
        while uart.is_busy() {
            core::hint::spin_loop();
        }
    }
}

/// Adds a VM's output stream, whose lines start `[name] `.
pub fn open_vm_output(name: &str) -> OutputId {
    CONSOLE.lock().output.add_vm(name)
}

/// Prints what a VM's UART transmitted.
pub fn write_vm(id: OutputId, bytes: &[u8]) {
    let mut console = CONSOLE.lock();
    let Console { uart, output } = &mut *console;
    if let Some(uart) = uart.as_mut() {
        output.write(Source::Vm(id), bytes, &mut |b| send(uart, b));
    }
}

/// Ends a VM's unfinished output line (the VM stopped).
pub fn end_vm_line(id: OutputId) {
    let mut console = CONSOLE.lock();
    let Console { uart, output } = &mut *console;
    if let Some(uart) = uart.as_mut() {
        output.end_line(Source::Vm(id), &mut |b| send(uart, b));
    }
}

/// Ends a VM's unfinished output line and forgets its stream.
pub fn close_vm_output(id: OutputId) {
    let mut console = CONSOLE.lock();
    let Console { uart, output } = &mut *console;
    match uart.as_mut() {
        Some(uart) => output.remove_vm(id, &mut |b| send(uart, b)),
        None => output.remove_vm(id, &mut |_| {}),
    }
}

/// Something that takes console input: a VM.
pub trait ConsoleInput: Send + Sync {
    /// The name the console shows for it.
    fn console_name(&self) -> &str;
    /// Bytes typed for it. Called with no console lock held; may log.
    fn console_input(&self, bytes: &[u8]);
}

/// The keyboard side.
struct Input {
    decoder: InputMux,
    targets: Targets<Weak<dyn ConsoleInput>>,
}

static INPUT: SpinMutex<Input> = SpinMutex::new(Input {
    decoder: InputMux::new(),
    targets: Targets::new(),
});

/// Set while a CPU is in [`poll_input`]: one drains the UART at a time, so
/// bytes are delivered in the order they were typed.
static POLLING: AtomicBool = AtomicBool::new(false);

/// What Ctrl-] s prints after the console's own statistics.
static STATS_REPORTER: SpinMutex<Option<fn()>> = SpinMutex::new(None);

/// Bytes read from the host UART.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
/// Bytes delivered to VMs.
static DELIVERED: AtomicU64 = AtomicU64::new(0);
/// Bytes typed while no VM took input.
static UNDELIVERED: AtomicU64 = AtomicU64::new(0);
/// Receive errors the host UART reported (overrun, break, parity, framing);
/// the byte is lost.
static RX_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Bytes read from the UART per batch: one `console_input` call per batch
/// (per focused VM), on the stack.
const BATCH: usize = 128;

/// Most bytes one [`poll_input`] takes, so a flood of input cannot keep a
/// CPU in it forever.
const MAX_POLL: usize = 4096;

fn alive(target: &Weak<dyn ConsoleInput>) -> bool {
    target.strong_count() > 0
}

/// Adds a VM to the console's input targets, after those already there.
/// The first one gets the focus, and the console says so.
pub fn attach(sink: Weak<dyn ConsoleInput>) {
    let first = {
        let mut input = INPUT.lock();
        input.targets.prune(alive);
        input.targets.attach(sink.clone())
    };
    if first {
        if let Some(target) = sink.upgrade() {
            announce_focus(&*target);
        }
    }
}

/// Sets what Ctrl-] s runs after printing the console's statistics.
pub fn set_stats_reporter(report: fn()) {
    *STATS_REPORTER.lock() = Some(report);
}

/// Turns on the host UART's receive and receive-timeout interrupts, so that
/// its interrupt can drive [`poll_input`].
pub fn enable_rx_interrupt() {
    if let Some(uart) = CONSOLE.lock().uart.as_mut() {
        let masks = uart.interrupt_masks() | Interrupts::RXI | Interrupts::RTI;
        uart.set_interrupt_masks(masks);
    }
}

/// Drains every byte the host UART has received, runs the escape commands
/// and gives the rest to the focused VM. Returns at once if another CPU is
/// already at it.
pub fn poll_input() {
    if POLLING.swap(true, Ordering::Acquire) {
        return;
    }
    let mut taken = 0;
    while taken < MAX_POLL {
        let mut batch = [0; BATCH];
        let len = read_batch(&mut batch);
        if len == 0 {
            break;
        }
        taken += len;
        RECEIVED.fetch_add(len as u64, Ordering::Relaxed);
        process(&batch[..len]);
    }
    POLLING.store(false, Ordering::Release);
}

/// Reads what the host UART has, up to `batch.len()` bytes.
fn read_batch(batch: &mut [u8]) -> usize {
    let mut console = CONSOLE.lock();
    let Some(uart) = console.uart.as_mut() else {
        return 0;
    };
    let mut len = 0;
    // Bounded: errors are skipped, and a UART that reports them forever
    // must not keep this CPU here.
    for _ in 0..batch.len() * 2 {
        if len == batch.len() {
            break;
        }
        match uart.read_word() {
            Ok(Some(byte)) => {
                batch[len] = byte;
                len += 1;
            }
            Ok(None) => break,
            Err(_) => {
                RX_ERRORS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    len
}

/// Runs the input decoder over `bytes`.
fn process(bytes: &[u8]) {
    let mut pending = [0; BATCH];
    let mut len = 0;
    for &byte in bytes {
        let event = INPUT.lock().decoder.feed(byte);
        match event {
            None => {}
            Some(InputEvent::ToFocused(byte)) => {
                if len == pending.len() {
                    deliver(&pending[..len]);
                    len = 0;
                }
                pending[len] = byte;
                len += 1;
            }
            Some(command) => {
                deliver(&pending[..len]);
                len = 0;
                run(command);
            }
        }
    }
    deliver(&pending[..len]);
}

/// The focused target, after dropping VMs that are gone; says so if the
/// focus moved because of that.
fn focused() -> Option<Arc<dyn ConsoleInput>> {
    let (target, moved) = {
        let mut input = INPUT.lock();
        let moved = input.targets.prune(alive);
        (input.targets.focused().and_then(Weak::upgrade), moved)
    };
    if moved {
        match &target {
            Some(target) => announce_focus(&**target),
            None => info!("console: no VM takes input any more"),
        }
    }
    target
}

/// Gives `bytes` to the focused VM.
fn deliver(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match focused() {
        Some(target) => {
            target.console_input(bytes);
            DELIVERED.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        None => {
            UNDELIVERED.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }
}

/// Runs an escape command.
fn run(command: InputEvent) {
    match command {
        InputEvent::ToFocused(byte) => deliver(&[byte]),
        InputEvent::Focus(index) => {
            let (target, count) = {
                let mut input = INPUT.lock();
                input.targets.prune(alive);
                let target = input.targets.set_focus(index).and_then(Weak::upgrade);
                (target, input.targets.len())
            };
            match target {
                Some(target) => announce_focus(&*target),
                None => info!(
                    "console: there is no VM {} ({count} take input; Ctrl-] ? for help)",
                    index + 1
                ),
            }
        }
        InputEvent::FocusNext => {
            let target = {
                let mut input = INPUT.lock();
                input.targets.prune(alive);
                input.targets.focus_next().and_then(Weak::upgrade)
            };
            match target {
                Some(target) => announce_focus(&*target),
                None => info!("console: no VM takes input"),
            }
        }
        InputEvent::Stats => {
            report_stats();
            let reporter = *STATS_REPORTER.lock();
            if let Some(report) = reporter {
                report();
            }
        }
        InputEvent::Help => {
            for line in HELP {
                info!("{line}");
            }
        }
        InputEvent::Unknown(key) => {
            info!(
                "console: Ctrl-] {} is no command (Ctrl-] ? for help)",
                KeyName(key)
            );
        }
    }
}

/// The console's own statistics.
fn report_stats() {
    let (names, focus) = {
        let input = INPUT.lock();
        let names: heapless::Vec<Weak<dyn ConsoleInput>, 16> =
            input.targets.iter().take(16).cloned().collect();
        (names, input.targets.focused_index())
    };
    info!(
        "console: input {} bytes: {} to VMs, {} with no VM to take them, {} receive errors",
        RECEIVED.load(Ordering::Relaxed),
        DELIVERED.load(Ordering::Relaxed),
        UNDELIVERED.load(Ordering::Relaxed),
        RX_ERRORS.load(Ordering::Relaxed),
    );
    for (index, target) in names.iter().enumerate() {
        if let Some(target) = target.upgrade() {
            let mark = if Some(index) == focus { " (input)" } else { "" };
            info!(
                "console: Ctrl-] {}: vm \"{}\"{mark}",
                index + 1,
                target.console_name()
            );
        }
    }
}

fn announce_focus(target: &dyn ConsoleInput) {
    info!(
        "console: input goes to vm \"{}\" (Ctrl-] ? for help)",
        target.console_name()
    );
}

/// A key as the console names it: `x`, or `0x01` for a control byte.
struct KeyName(u8);

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x21..=0x7e => write!(f, "{}", char::from(self.0)),
            other => write!(f, "{other:#04x}"),
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
        // One locked write per line, so lines from different CPUs never
        // interleave, and a VM's unfinished line is ended first.
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
