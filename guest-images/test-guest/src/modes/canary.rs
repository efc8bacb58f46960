//! `test=canary`: the neighbour in the DMA test. The guest fills one page
//! of its RAM with `PATTERN ^ address` per 64-bit word, says where it is,
//! and checks it every [`CHECK_MS`] until a `quit` line comes in on the
//! UART, printing each time whether it is intact. Another VM's device
//! DMAs at this page's physical address, which the SMMU must stop.

use crate::dt::{Machine, Range};
use crate::{boot, console, mmu, println, report, smp};
use core::arch::asm;

const TEST: &str = "canary";

/// The size of the page.
const PAGE: u64 = 4096;
/// Words in it.
const WORDS: usize = (PAGE / 8) as usize;
/// The pattern, XORed with each word's address.
pub const PATTERN: u64 = 0xca4a_4700_0000_0000;
/// How often the page is checked (and a line printed).
pub const CHECK_MS: u64 = 500;
/// Longest input line kept; `quit` is all that matters.
const MAX_LINE: usize = 16;
/// Size of a data cache line assumed for maintenance (the architecture's
/// smallest; a smaller step only repeats work).
const CACHE_LINE: u64 = 16;

/// Fills the page, then checks it until `quit`.
pub fn run(machine: &Machine, page: Option<u64>) {
    let ram = machine.ram;
    let page = page.unwrap_or_else(|| (ram.start + (ram.end - ram.start) / 2) & !(PAGE - 1));
    let range = Range {
        start: page,
        end: page.saturating_add(PAGE),
    };
    let (image_start, image_end) = boot::image_range();
    let image = Range {
        start: image_start,
        end: image_end,
    };
    if !page.is_multiple_of(PAGE)
        || !ram.contains(&range)
        || range.overlaps(&image)
        || range.overlaps(&machine.dtb)
        || machine.initrd.is_some_and(|initrd| range.overlaps(&initrd))
        || !mmu::is_normal_memory(range.start, range.end)
    {
        report::fail(
            TEST,
            format_args!(
                "page {range} is not a free, aligned page of RAM: RAM {ram}, image {image}, device tree {}, initrd {:?}",
                machine.dtb, machine.initrd
            ),
        );
        return;
    }
    let words = page as *mut u64;
    let address = |i: usize| page + 8 * i as u64;
    for i in 0..WORDS {
        // SAFETY: `i < WORDS`, so the word is in the page, which is RAM
        // mapped as normal memory that nothing else of the program uses
        // (checked above); only vCPU 0 runs.
        unsafe { words.add(i).write_volatile(PATTERN ^ address(i)) };
    }
    // In memory, not only in this CPU's cache: what a device would
    // overwrite is memory. Later checks drop the (clean) lines first.
    clean_and_invalidate(range);
    println!(
        "canary: page at IPA {page:#x} in RAM {ram}, offset {:#x}, pattern {PATTERN:#x} ^ address; checked every {CHECK_MS} ms until quit",
        page - ram.start
    );
    console::enable_receiver();

    let start = smp::counter_ms();
    let mut checks = 0u32;
    let mut first_change: Option<u32> = None;
    let mut line = heapless::Vec::<u8, MAX_LINE>::new();
    let mut next_check = start;
    loop {
        if smp::counter_ms() >= next_check {
            checks += 1;
            next_check += CHECK_MS;
            match check(range) {
                None => println!("canary: intact, check {checks}"),
                Some(change) => {
                    println!("canary: CHANGED, check {checks}: {change}");
                    if first_change.is_none() {
                        first_change = Some(checks);
                        report::fail(TEST, format_args!("CHANGED at check {checks}: {change}"));
                    }
                }
            }
        }
        match console::read_byte() {
            Ok(Some(b'\r' | b'\n')) => {
                if line.as_slice() == b"quit" {
                    break;
                }
                line.clear();
            }
            Ok(Some(byte)) => {
                // A longer line is not `quit`; keep its start to say so.
                let _ = line.push(byte);
            }
            Ok(None) => smp::idle(),
            Err(e) => report::fail(TEST, format_args!("receive error: {e}")),
        }
    }

    checks += 1;
    let ms = smp::counter_ms().wrapping_sub(start);
    match (check(range), first_change) {
        (None, None) => report::pass(
            TEST,
            format_args!("intact after {checks} checks over {ms} ms"),
        ),
        (Some(change), _) => report::fail(
            TEST,
            format_args!("CHANGED at the last check ({checks}, after {ms} ms): {change}"),
        ),
        (None, Some(first)) => report::fail(
            TEST,
            format_args!("CHANGED at check {first}, though intact at the last ({checks})"),
        ),
    }
}

/// What differs in a changed page.
struct Change {
    /// How many words differ.
    words: usize,
    /// The first that does: its address and value.
    first: (u64, u64),
    /// How many of the differing words hold the DMA test's stray pattern.
    stray: usize,
}

impl core::fmt::Display for Change {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (address, value) = self.first;
        write!(
            f,
            "{} of {WORDS} words differ, the first at IPA {address:#x}: {value:#x}, expected {:#x}",
            self.words,
            PATTERN ^ address
        )?;
        if self.stray > 0 {
            write!(
                f,
                "; in {} of them the changed bytes are the stray DMA's (from the other VM's device)",
                self.stray
            )?;
        }
        Ok(())
    }
}

/// Checks the page against the pattern, after dropping its cache lines
/// (so that what is read is memory, whatever wrote it).
fn check(range: Range) -> Option<Change> {
    clean_and_invalidate(range);
    let words = range.start as *const u64;
    let mut change: Option<Change> = None;
    for i in 0..WORDS {
        let address = range.start + 8 * i as u64;
        // SAFETY: As in `run`: the page is this mode's own RAM.
        let value = unsafe { words.add(i).read_volatile() };
        if value == PATTERN ^ address {
            continue;
        }
        let stray = usize::from(from_stray_dma(
            value,
            PATTERN ^ address,
            super::dma_outside::stray_word(address - range.start),
        ));
        match &mut change {
            Some(change) => {
                change.words += 1;
                change.stray += stray;
            }
            None => {
                change = Some(Change {
                    words: 1,
                    first: (address, value),
                    stray,
                })
            }
        }
    }
    change
}

/// Whether every byte in which `value` differs from `expected` is the
/// stray DMA's (`stray`): a stray DMA may write part of a word.
fn from_stray_dma(value: u64, expected: u64, stray: u64) -> bool {
    let differs = value ^ expected;
    (0..8).all(|byte| {
        let mask = 0xff << (8 * byte);
        differs & mask == 0 || value & mask == stray & mask
    })
}

/// Cleans and invalidates the range's data cache lines to the point of
/// coherency and waits for it. The canary's lines are clean after the
/// fill, so this only ever drops them.
fn clean_and_invalidate(range: Range) {
    let mut line = range.start & !(CACHE_LINE - 1);
    while line < range.end {
        // SAFETY: Cache maintenance by VA on the page, RAM of this VM
        // mapped as normal memory; it changes no data the program sees.
        unsafe { asm!("dc civac, {line}", line = in(reg) line, options(nostack)) };
        line += CACHE_LINE;
    }
    // SAFETY: A barrier has no other effect.
    unsafe { asm!("dsb sy", options(nostack)) };
}
