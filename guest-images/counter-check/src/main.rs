//! `counter-check SECONDS`: checks that the virtual counter never goes
//! backwards, as seen by one Linux process that moves between vCPUs.
//!
//! A static arm64 Linux executable without a C library, for the Linux
//! guest's initramfs (`/bin/counter-check`). For SECONDS of counter time
//! (CNTVCT_EL0 ticks at CNTFRQ_EL0) it reads CNTVCT_EL0 in a loop, each read
//! after an ISB, and counts the reads that returned less than the one before.
//! Every [`YIELD_EVERY`] reads it calls `sched_yield`, which is where Linux
//! may move it to another vCPU, and the hypervisor moves vCPUs between
//! physical CPUs: a counter that is not the same everywhere (a CNTVOFF_EL2
//! that differs between vCPUs or physical CPUs) shows up as a read that went
//! backwards. It prints one line,
//!
//! ```text
//! counter-check: <reads> reads in <s> s, <n> backwards, largest step <ticks> ticks
//! ```
//!
//! where the largest step is the biggest forward jump between two
//! consecutive reads (how long the process was kept from running), and
//! exits 0, or 1 if any read went backwards (after a line with the largest
//! backwards step). A bad command line prints a usage line and exits 2.

#![no_std]
#![no_main]

mod line;
mod sys;

use core::ffi::{c_char, CStr};

/// Reads between two `sched_yield` calls: often enough that the process
/// changes vCPUs many times a second, rarely enough that most of the time is
/// spent reading the counter.
const YIELD_EVERY: u64 = 4096;

/// The longest run accepted, in seconds: a day.
const MAX_SECONDS: u64 = 24 * 60 * 60;

/// Exit status when a read went backwards.
const EXIT_BACKWARDS: u8 = 1;

/// Exit status for a bad command line or an unusable counter.
const EXIT_USAGE: u8 = 2;

/// Exit status after a panic (none is expected: there is no code that can
/// panic, but the handler must exist).
const EXIT_PANIC: u8 = 101;

// The ELF entry point. Linux starts a new program with SP at its argument
// block (argc, then argv[0..argc], NULL, envp..., NULL, auxv; see
// `create_elf_tables` in fs/binfmt_elf.c), SP 16-byte aligned and every
// other register zero. The frame pointer and link register are zeroed
// anyway, to end backtraces here.
core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    ".type _start, %function",
    "_start:",
    "    mov x29, xzr",
    "    mov x30, xzr",
    "    mov x0, sp",
    "    bl {entry}",
    "    brk #0",
    entry = sym entry,
);

/// The Rust entry, with the initial stack pointer.
///
/// # Safety
///
/// `stack` must be the stack pointer Linux starts a program with: it points
/// at argc, followed by argc pointers to NUL-terminated strings.
unsafe extern "C" fn entry(stack: *const usize) -> ! {
    // SAFETY: The caller passes the initial SP: argc is the word there and
    // argv the array right after it, both valid for the process's life.
    let args = unsafe { Args::from_stack(stack) };
    let code = match args.seconds() {
        Ok(seconds) => run(seconds),
        Err(problem) => {
            say!(
                sys::STDERR,
                "counter-check: {problem}; usage: counter-check SECONDS (1 to {MAX_SECONDS})"
            );
            EXIT_USAGE
        }
    };
    sys::exit(code)
}

/// The reads' tally.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    reads: u64,
    backwards: u64,
    largest_step: u64,
    largest_backwards: u64,
}

impl Tally {
    /// Counts one read, `now`, that followed a read of `previous`.
    fn read(&mut self, previous: u64, now: u64) {
        self.reads += 1;
        if now < previous {
            self.backwards += 1;
            self.largest_backwards = self.largest_backwards.max(previous - now);
        } else {
            self.largest_step = self.largest_step.max(now - previous);
        }
    }
}

/// Reads the counter for `seconds` of counter time, prints the result and
/// returns the exit status.
fn run(seconds: u64) -> u8 {
    let frequency = sys::counter_frequency();
    if frequency == 0 {
        say!(
            sys::STDERR,
            "counter-check: CNTFRQ_EL0 is 0; cannot time a run"
        );
        return EXIT_USAGE;
    }
    let start = sys::virtual_count();
    let end = start.saturating_add(seconds.saturating_mul(frequency));
    let mut tally = Tally::default();
    let mut previous = start;
    loop {
        let now = sys::virtual_count();
        tally.read(previous, now);
        previous = now;
        if now >= end {
            break;
        }
        if tally.reads % YIELD_EVERY == 0 {
            sys::sched_yield();
        }
    }
    let elapsed = previous.saturating_sub(start);
    let whole = elapsed / frequency;
    // Hundredths of a second; u128 so ticks * 100 cannot overflow.
    let hundredths = u128::from(elapsed % frequency) * 100 / u128::from(frequency);
    if tally.backwards > 0 {
        say!(
            sys::STDOUT,
            "counter-check: largest backwards step {} ticks",
            tally.largest_backwards
        );
    }
    say!(
        sys::STDOUT,
        "counter-check: {} reads in {whole}.{hundredths:02} s, {} backwards, largest step {} ticks",
        tally.reads,
        tally.backwards,
        tally.largest_step
    );
    if tally.backwards > 0 {
        EXIT_BACKWARDS
    } else {
        0
    }
}

/// The command line.
struct Args {
    argv: &'static [*const c_char],
}

impl Args {
    /// Reads argc and argv from the initial stack.
    ///
    /// # Safety
    ///
    /// As for [`entry`].
    unsafe fn from_stack(stack: *const usize) -> Self {
        // SAFETY: The caller guarantees the layout: argc at `stack`, then
        // argc string pointers, all valid for the process's life.
        let argv = unsafe {
            let argc = *stack;
            core::slice::from_raw_parts(stack.add(1).cast::<*const c_char>(), argc)
        };
        Self { argv }
    }

    /// The one argument, the run's length in seconds.
    fn seconds(&self) -> Result<u64, &'static str> {
        let [_, seconds] = self.argv else {
            return Err("expected one argument");
        };
        if seconds.is_null() {
            return Err("expected one argument");
        }
        // SAFETY: A non-null argv entry points at a NUL-terminated string
        // that lives as long as the process (see `from_stack`).
        let text = unsafe { CStr::from_ptr(*seconds) }.to_bytes();
        parse_seconds(text)
    }
}

/// A decimal number of seconds from 1 to [`MAX_SECONDS`].
fn parse_seconds(text: &[u8]) -> Result<u64, &'static str> {
    const NOT_A_NUMBER: &str = "SECONDS must be a whole number";
    if text.is_empty() {
        return Err(NOT_A_NUMBER);
    }
    let mut value: u64 = 0;
    for &byte in text {
        if !byte.is_ascii_digit() {
            return Err(NOT_A_NUMBER);
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .filter(|&v| v <= MAX_SECONDS)
            .ok_or("SECONDS is too large")?;
    }
    if value == 0 {
        return Err("SECONDS must be at least 1");
    }
    Ok(value)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    sys::write_all(sys::STDERR, b"counter-check: panicked\n");
    sys::exit(EXIT_PANIC)
}
