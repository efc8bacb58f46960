//! `test=dma-outside`: a passthrough device that DMAs outside its VM. The
//! guest finds QEMU's `edu` device (1234:11e8) behind the PCIe host bridge
//! its device tree describes, sizes and places BAR0 in the bridge's
//! 32-bit window, turns on memory decoding and bus mastering, and checks
//! the ID and liveness registers. Then:
//!
//! 1. a DMA inside its RAM, a page to the device's buffer and back into
//!    another page, which must arrive intact: DMA works through the SMMU
//!    with this VM's stage 2;
//! 2. the stray DMAs: the start of the device's buffer, filled with the
//!    stray pattern ([`stray_word`]), is written to `count` targets
//!    (`target`, then every `stride`), `bytes` bytes each, none of them
//!    this VM's (those are skipped). The SMMU must abort each write;
//!    QEMU's device model ignores the abort, so each transfer still ends
//!    and the guest goes on. (QEMU's SMMU records an event for each 4-byte
//!    piece of an aborted write: `bytes=4` makes one event per DMA.)
//! 3. a DMA inside its RAM again, the device's buffer into a page: the
//!    device and its stream still work after the faults;
//! 4. heartbeats, half a second apart, to show the VM still runs.
//!
//! The hypervisor logs each aborted write as an SMMU event naming this VM;
//! the system test reads the log and checks that a neighbouring VM's
//! canary page ([`super::canary`]) was one of the targets and is intact.

use crate::dt::{Machine, Range};
use crate::edu::{self, Direction, Edu};
use crate::pci::{self, Function};
use crate::{println, report, smp};
use core::cell::UnsafeCell;

const TEST: &str = "dma-outside";

/// Bytes per transfer: the device's whole buffer, one page.
const PAGE: u64 = edu::BUFFER_SIZE;
/// Words in a page.
const WORDS: usize = (PAGE / 8) as usize;
/// Longest a transfer may take (QEMU's model takes 100 ms of its virtual
/// clock; TCG on a loaded host stretches that).
const DMA_TIMEOUT_MS: u64 = 5_000;
/// Time between heartbeats.
const BEAT_MS: u64 = 500;
/// Written to the liveness register, which answers with its inverse.
const LIVENESS_PROBE: u32 = 0x1234_5678;
/// The pattern of the DMA inside this VM's RAM, XORed with each word's
/// offset in the page.
const LEGAL_PATTERN: u64 = 0x1e6a_1000_0000_0000;
/// The pattern of the stray DMAs, XORed the same way: see [`stray_word`].
const STRAY_PATTERN: u64 = 0x57a4_0000_0000_0000;

/// The word at byte `offset` of a page a stray DMA wrote: lets the canary
/// tell a change that came from here.
pub fn stray_word(offset: u64) -> u64 {
    STRAY_PATTERN ^ offset
}

/// A page the device reads or writes by DMA.
#[repr(C, align(4096))]
struct DmaPage(UnsafeCell<[u64; WORDS]>);

// SAFETY: Only vCPU 0 runs this mode, and the device touches a page only
// during `Edu::transfer`, which waits for the transfer's end; the pages
// are accessed through raw pointers only, never references.
unsafe impl Sync for DmaPage {}

impl DmaPage {
    const fn new() -> Self {
        Self(UnsafeCell::new([0; WORDS]))
    }

    /// The page's address: its IPA, the guest's map being the identity.
    fn address(&self) -> u64 {
        self.0.get() as u64
    }

    /// Fills the page with `pattern ^ offset` per word.
    fn fill(&self, pattern: u64) {
        let words = self.0.get().cast::<u64>();
        for i in 0..WORDS {
            // SAFETY: `i < WORDS`; no transfer runs (see `DmaPage`'s Sync).
            unsafe { words.add(i).write_volatile(pattern ^ (8 * i as u64)) };
        }
    }

    /// The first word that is not `pattern ^ offset`: its offset and value.
    fn first_difference(&self, pattern: u64) -> Option<(u64, u64)> {
        let words = self.0.get().cast::<u64>();
        (0..WORDS).find_map(|i| {
            let offset = 8 * i as u64;
            // SAFETY: As for `fill`.
            let value = unsafe { words.add(i).read_volatile() };
            (value != pattern ^ offset).then_some((offset, value))
        })
    }
}

/// What the device reads from.
static SOURCE: DmaPage = DmaPage::new();
/// What the device writes to.
static SINK: DmaPage = DmaPage::new();

/// The stray DMAs' targets, from the bootargs.
#[derive(Clone, Copy, Debug)]
pub struct Targets {
    /// The first target.
    pub first: u64,
    /// How far apart they are.
    pub stride: u64,
    /// How many.
    pub count: u32,
    /// Bytes each writes, 1 to a page.
    pub bytes: u64,
    /// Pause after each, in milliseconds.
    pub gap_ms: u64,
}

/// Runs the test; `beats` heartbeats at the end.
pub fn run(machine: &Machine, targets: Targets, beats: u32) {
    let Some((function, edu, bar)) = set_up(machine) else {
        return;
    };
    let round_trip = legal_round_trip(&edu);
    if round_trip {
        stray_dmas(machine, &edu, bar, targets);
        still_works(&edu);
    }
    // Off the bus again: no more DMA, no decoding.
    function.set_command(function.command() & !(pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER));
    for beat in 1..=beats {
        smp::wait_until(BEAT_MS, || false);
        println!("dma-outside: alive, beat {beat} of {beats}");
    }
    if round_trip {
        report::pass(
            TEST,
            format_args!("still running {beats} heartbeats after the stray DMAs"),
        );
    }
}

/// Finds the device, places BAR0, turns decoding and bus mastering on and
/// checks the ID and liveness registers; returns the function, the
/// device and BAR0's range, or `None` after reporting what failed.
fn set_up(machine: &Machine) -> Option<(Function, Edu, Range)> {
    let host = match machine.pcie {
        Ok(host) => host,
        Err(e) => {
            report::fail(TEST, format_args!("PCIe host bridge: {e}"));
            return None;
        }
    };
    println!("dma-outside: PCIe host bridge: {host}");
    let (found, present) = pci::find(&host, edu::VENDOR_ID, edu::DEVICE_ID);
    let Some(function) = found else {
        report::fail(
            TEST,
            format_args!(
                "no {:04x}:{:04x} (edu) among the {present} function(s) on bus {}",
                edu::VENDOR_ID,
                edu::DEVICE_ID,
                host.first_bus
            ),
        );
        return None;
    };
    report::pass(
        TEST,
        format_args!(
            "found {:04x}:{:04x} (edu) at {function}, {present} function(s) on the bus",
            edu::VENDOR_ID,
            edu::DEVICE_ID
        ),
    );

    // Decoding off while the BAR is sized and moved.
    let command = function.command() & !(pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER);
    function.set_command(command);
    let placed = function
        .size_bar(0)
        .and_then(|bar| Ok((bar, function.place_bar(&host, bar)?)));
    let (bar, base) = match placed {
        Ok(placed) => placed,
        Err(e) => {
            report::fail(TEST, format_args!("BAR0: {e}"));
            return None;
        }
    };
    report::pass(TEST, format_args!("{bar} placed at {base:#x}"));
    let on = pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER;
    function.set_command(command | on);
    let read = function.command();
    if read & on != on {
        report::fail(
            TEST,
            format_args!("command register reads {read:#x} after {:#x} was written: memory space or bus master did not stick", command | on),
        );
        return None;
    }
    report::pass(
        TEST,
        format_args!("command register {read:#x}: memory space and bus master on"),
    );

    // SAFETY: `base` is the device's BAR0, just placed, with decoding on;
    // nothing else here accesses it. Its DMA reaches this VM's memory
    // only through `SOURCE` and `SINK`, under `Edu::transfer`'s contract.
    let edu = unsafe { Edu::new(base, machine.ram) };
    let id = edu.id();
    if id != edu::ID_VALUE {
        report::fail(
            TEST,
            format_args!(
                "ID register: got {id:#010x}, expected {:#010x}",
                edu::ID_VALUE
            ),
        );
        return None;
    }
    report::pass(TEST, format_args!("ID register = {id:#010x}"));
    let answer = edu.liveness(LIVENESS_PROBE);
    if answer != !LIVENESS_PROBE {
        report::fail(
            TEST,
            format_args!(
                "liveness register: wrote {LIVENESS_PROBE:#010x}, got {answer:#010x}, expected {:#010x}",
                !LIVENESS_PROBE
            ),
        );
        return None;
    }
    report::pass(
        TEST,
        format_args!("liveness register: wrote {LIVENESS_PROBE:#010x}, read {answer:#010x}"),
    );
    Some((
        function,
        edu,
        Range {
            start: base,
            end: base + bar.size,
        },
    ))
}

/// One transfer, reported as a FAIL line if it goes wrong; the time it
/// took if not.
fn transfer(
    edu: &Edu,
    what: &str,
    source: u64,
    destination: u64,
    bytes: u64,
    direction: Direction,
) -> Option<u64> {
    // SAFETY: Every caller passes `SOURCE` or `SINK` as this VM's side
    // (pages only this mode touches, through raw pointers, and not during
    // the transfer), or, for the stray DMAs, an address that is not this
    // VM's at all.
    let result = unsafe { edu.transfer(source, destination, bytes, direction, DMA_TIMEOUT_MS) };
    match result {
        Ok(ms) => Some(ms),
        Err(e) => {
            report::fail(
                TEST,
                format_args!("{what}: {bytes} bytes {source:#x} -> {destination:#x}: {e}"),
            );
            None
        }
    }
}

/// A page of RAM to the device's buffer and back into another page.
/// Returns whether it arrived intact.
fn legal_round_trip(edu: &Edu) -> bool {
    SOURCE.fill(LEGAL_PATTERN);
    SINK.fill(0);
    let (source, sink) = (SOURCE.address(), SINK.address());
    let Some(to_device) = transfer(
        edu,
        "DMA to the device",
        source,
        edu::BUFFER,
        PAGE,
        Direction::ToDevice,
    ) else {
        return false;
    };
    let Some(to_memory) = transfer(
        edu,
        "DMA from the device",
        edu::BUFFER,
        sink,
        PAGE,
        Direction::ToMemory,
    ) else {
        return false;
    };
    match SINK.first_difference(LEGAL_PATTERN) {
        None => {
            report::pass(
                TEST,
                format_args!(
                    "DMA inside this VM's RAM: {PAGE} bytes from IPA {source:#x} to the device ({to_device} ms) and back to IPA {sink:#x} ({to_memory} ms), intact"
                ),
            );
            true
        }
        Some((offset, value)) => {
            report::fail(
                TEST,
                format_args!(
                    "DMA inside this VM's RAM: word {offset:#x} of the page at IPA {sink:#x} is {value:#x}, expected {:#x}",
                    LEGAL_PATTERN ^ offset
                ),
            );
            false
        }
    }
}

/// The stray pattern into the device's buffer, then from there to each
/// target that is not this VM's.
fn stray_dmas(machine: &Machine, edu: &Edu, bar: Range, targets: Targets) {
    SOURCE.fill(STRAY_PATTERN);
    if transfer(
        edu,
        "DMA to the device",
        SOURCE.address(),
        edu::BUFFER,
        PAGE,
        Direction::ToDevice,
    )
    .is_none()
    {
        return;
    }
    println!(
        "dma-outside: {} stray DMA(s) of {} bytes from the device's buffer, to IPA {:#x} + k * {:#x}; this VM's RAM is {}, BAR0 {bar}",
        targets.count, targets.bytes, targets.first, targets.stride, machine.ram
    );
    let (mut finished, mut skipped) = (0u32, 0u32);
    for k in 0..targets.count {
        let Some(target) = u64::from(k)
            .checked_mul(targets.stride)
            .and_then(|offset| targets.first.checked_add(offset))
            .filter(|target| target.checked_add(targets.bytes).is_some())
        else {
            report::fail(
                TEST,
                format_args!(
                    "stray DMA {k}: target {:#x} + {k} * {:#x} overflows",
                    targets.first, targets.stride
                ),
            );
            break;
        };
        let range = Range {
            start: target,
            end: target + targets.bytes,
        };
        if range.overlaps(&machine.ram) || range.overlaps(&bar) {
            println!("dma-outside: skipping IPA {target:#x}: this VM's own");
            skipped += 1;
            continue;
        }
        let what = "stray DMA";
        if let Some(ms) = transfer(
            edu,
            what,
            edu::BUFFER,
            target,
            targets.bytes,
            Direction::ToMemory,
        ) {
            finished += 1;
            println!(
                "dma-outside: stray DMA {} of {}: {} bytes to IPA {target:#x}, not this VM's: ended after {ms} ms",
                k + 1,
                targets.count,
                targets.bytes
            );
        }
        smp::wait_until(targets.gap_ms, || false);
    }
    report::pass(
        TEST,
        format_args!("{finished} stray DMA(s) ended, {skipped} target(s) skipped as this VM's own"),
    );
}

/// The device's buffer (the stray pattern) into a page of RAM: the device
/// and its stream still work after the aborted writes.
fn still_works(edu: &Edu) {
    SINK.fill(0);
    let sink = SINK.address();
    let Some(ms) = transfer(
        edu,
        "DMA after the stray ones",
        edu::BUFFER,
        sink,
        PAGE,
        Direction::ToMemory,
    ) else {
        return;
    };
    match SINK.first_difference(STRAY_PATTERN) {
        None => report::pass(
            TEST,
            format_args!(
                "DMA inside this VM's RAM after the stray ones: the device's buffer arrived at IPA {sink:#x} intact ({ms} ms)"
            ),
        ),
        Some((offset, value)) => report::fail(
            TEST,
            format_args!(
                "DMA after the stray ones: word {offset:#x} of the page at IPA {sink:#x} is {value:#x}, expected {:#x}",
                STRAY_PATTERN ^ offset
            ),
        ),
    }
}
