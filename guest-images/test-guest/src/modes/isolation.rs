//! `test=isolation`: every vCPU fills a 1 MiB slice of RAM with
//! `pattern ^ address` per 64-bit word and checks, round after round with a
//! WFI in between (so other VMs run on the physical CPU), that nothing
//! changed it, and that the other VM's `peer ^ address` never shows up.
//! Before filling, the slice must be zero: the hypervisor zeroes guest RAM,
//! so nothing leaks from earlier VMs.

use crate::dt::{Machine, Range};
use crate::firmware::{self, Status};
use crate::{boot, mmu, println, report, smp};
use core::fmt;
use spin::Once;

const TEST: &str = "isolation";

/// Size of each vCPU's slice.
const SLICE_SIZE: u64 = 1 << 20;
/// The region of slices starts at the first boundary of this size after the image.
const REGION_ALIGN: u64 = 2 << 20;

/// What every vCPU needs to know, set by vCPU 0 before it starts the others.
#[derive(Debug)]
struct Plan {
    region: Range,
    pattern: u64,
    peer: Option<u64>,
    rounds: u32,
}

static PLAN: Once<Plan> = Once::new();

/// The peer's pattern in hex, or "none".
struct PeerPattern(Option<u64>);

impl fmt::Display for PeerPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pattern) => write!(f, "{pattern:#x}"),
            None => f.write_str("none"),
        }
    }
}

/// vCPU 0's part: plan the region, start the others, check its own slice and
/// wait for the others to turn off.
pub fn run(machine: &Machine, pattern: u64, peer: Option<u64>, rounds: u32) {
    let (_, image_end) = boot::image_range();
    let start = image_end.next_multiple_of(REGION_ALIGN);
    let region = Range {
        start,
        end: start + SLICE_SIZE * machine.cpus.len() as u64,
    };
    if !machine.ram.contains(&region)
        || region.overlaps(&machine.dtb)
        || machine
            .initrd
            .is_some_and(|initrd| region.overlaps(&initrd))
        || !mmu::is_normal_memory(region.start, region.end)
    {
        report::fail(
            TEST,
            format_args!(
                "region {region} for {} vCPUs is not free RAM: RAM {}, device tree {}, initrd {:?}",
                machine.cpus.len(),
                machine.ram,
                machine.dtb,
                machine.initrd
            ),
        );
        return;
    }
    if peer == Some(pattern) {
        println!(
            "isolation: warning: peer pattern equals ours, so a leak of it cannot be told apart"
        );
    }
    println!(
        "isolation: {} vCPUs, region {region}, pattern {pattern:#x}, peer {}, {rounds} rounds",
        machine.cpus.len(),
        PeerPattern(peer)
    );
    let plan = PLAN.call_once(|| Plan {
        region,
        pattern,
        peer,
        rounds,
    });

    let mut started = heapless::Vec::<(usize, u64), { smp::MAX_VCPUS }>::new();
    for (index, &mpidr) in machine.cpus.iter().enumerate().skip(1) {
        if report::expect(
            TEST,
            format_args!("CPU_ON cpu{index}"),
            firmware::cpu_on(mpidr, index),
            Status::SUCCESS,
        ) {
            // At most MAX_VCPUS - 1 secondaries: always fits.
            let _ = started.push((index, mpidr));
        }
    }
    check_slice(0, plan);
    for (index, mpidr) in started {
        if let Err(last) = smp::wait_until_off(mpidr) {
            report::fail(
                TEST,
                format_args!(
                    "cpu{index} did not turn off: AFFINITY_INFO = {}",
                    firmware::Answer(last)
                ),
            );
        }
    }
}

/// A secondary's part: its slice, then back to CPU_OFF.
pub fn secondary(index: usize) {
    match PLAN.get() {
        Some(plan) => check_slice(index, plan),
        None => report::fail(
            TEST,
            format_args!("cpu{index} started before the plan was set"),
        ),
    }
}

/// Zero check, fill, and the rounds on slice `index`.
fn check_slice(index: usize, plan: &Plan) {
    let base = plan.region.start + index as u64 * SLICE_SIZE;
    let words = (SLICE_SIZE / 8) as usize;
    let pointer = base as *mut u64;
    let address = |i: usize| base + 8 * i as u64;
    // Reads word `i` of the slice.
    // SAFETY: (for the closure's body) `i < words`, so the word lies in this
    // vCPU's slice: RAM that `run` checked is free, mapped as normal memory,
    // and that no other vCPU touches (slices are disjoint by index).
    let read = |i: usize| unsafe { pointer.add(i).read_volatile() };

    if let Some(i) = (0..words).find(|&i| read(i) != 0) {
        let nonzero = (0..words).filter(|&i| read(i) != 0).count();
        report::fail(
            TEST,
            format_args!(
                "cpu{index} slice: word at {:#x} is {:#x}, expected 0 ({nonzero} nonzero words)",
                address(i),
                read(i)
            ),
        );
    } else {
        report::pass(TEST, format_args!("cpu{index} slice was zero"));
    }

    for i in 0..words {
        // SAFETY: As for `read`.
        unsafe { pointer.add(i).write_volatile(plan.pattern ^ address(i)) };
    }
    for round in 1..=plan.rounds {
        smp::idle();
        if let Some(i) = (0..words).find(|&i| read(i) != plan.pattern ^ address(i)) {
            let got = read(i);
            let whose = if plan.peer.is_some_and(|peer| got == peer ^ address(i)) {
                " (the peer's pattern)"
            } else {
                ""
            };
            report::fail(
                TEST,
                format_args!(
                    "cpu{index} round {round}: word at {:#x}: got {got:#x}{whose}, expected {:#x}",
                    address(i),
                    plan.pattern ^ address(i)
                ),
            );
            return;
        }
    }
    report::pass(
        TEST,
        format_args!("cpu{index} pattern intact after {} rounds", plan.rounds),
    );
}
