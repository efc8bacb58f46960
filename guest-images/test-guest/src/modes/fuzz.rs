//! `test=fuzz`: random hypercalls (HVC and SMC, random function IDs and
//! arguments) and random accesses outside the VM's RAM, from a seeded
//! xorshift64 PRNG so that a failing run can be repeated. Aborts are fine;
//! what must hold is that hypercalls never raise exceptions, accesses raise
//! nothing but data aborts, and PSCI still answers at the end.

use crate::access::{self, Width};
use crate::console::{PL011_BASE, PL011_SIZE};
use crate::dt::{Machine, Range};
use crate::exceptions::{ec, Fault};
use crate::firmware::{self, Conduit, Hex};
use crate::{mmu, println, report};

const TEST: &str = "fuzz";

/// Progress is printed every this many operations.
const PROGRESS_EVERY: u64 = 1000;
/// "RAM-adjacent" accesses land in this many bytes just past the end of RAM.
const ADJACENT_SPAN: u64 = 64 << 10;
/// PSCI 1.1.
const PSCI_1_1: Hex = Hex(0x0001_0001);
/// PSCI function IDs the fuzzer must not call (SMC32 and SMC64 ranges):
/// they could power the VM off, start or suspend vCPUs.
const PSCI_RANGES: [core::ops::RangeInclusive<u32>; 2] =
    [0x8400_0000..=0x8400_001f, 0xc400_0000..=0xc400_001f];
/// Fast-call bit and the SMC64 bit of a function ID (SMCCC 2.5).
const FAST_CALL: u32 = 1 << 31;
const SMC64: u32 = 1 << 30;
/// ESR_ELx.ISS.FnV for data aborts: FAR is not valid.
const FNV: u64 = 1 << 10;

/// The xorshift64 generator (Marsaglia, "Xorshift RNGs", 2003).
struct XorShift64(u64);

impl XorShift64 {
    fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `[0, bound)`.
    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// What the run has seen.
#[derive(Default)]
struct Tally {
    /// Accesses that raised a data abort.
    aborts: u64,
    /// Per conduit (HVC, SMC): hypercalls that raised an exception, and the
    /// first such exception.
    call_faults: [(u64, Option<Fault>); 2],
    /// Accesses that raised something other than a data abort, or a data
    /// abort with a wrong FAR, and the first one.
    bad_aborts: u64,
    first_bad_abort: Option<(u64, Fault)>,
}

/// Runs `ops` random operations from `seed`.
pub fn run(machine: &Machine, seed: u64, ops: u64) {
    let mut rng = XorShift64::new(seed);
    let mut tally = Tally::default();
    for op in 1..=ops {
        match rng.below(4) {
            0 => hypercall(&mut rng, Conduit::Hvc, &mut tally),
            1 => hypercall(&mut rng, Conduit::Smc, &mut tally),
            2 => {
                let address = outside_ram(&mut rng, machine.ram);
                access(&mut rng, address, &mut tally);
            }
            _ => {
                let address = machine.ram.end + rng.below(ADJACENT_SPAN);
                access(&mut rng, address, &mut tally);
            }
        }
        if op % PROGRESS_EVERY == 0 {
            println!("fuzz: {op} ops, {} aborts", tally.aborts);
        }
    }

    for (conduit, (count, first)) in [Conduit::Hvc, Conduit::Smc].iter().zip(tally.call_faults) {
        if let Some(fault) = first {
            report::fail(
                TEST,
                format_args!(
                    "{count} {conduit} calls raised an exception, expected none (first: {fault})"
                ),
            );
        }
    }
    if let Some((address, fault)) = tally.first_bad_abort {
        report::fail(
            TEST,
            format_args!(
                "{} accesses raised something other than a data abort at the address (first: access to {address:#x} got {fault})",
                tally.bad_aborts
            ),
        );
    }
    let got = firmware::version(firmware::psci_conduit(), firmware::PSCI_VERSION);
    match got {
        Ok(version) if version == PSCI_1_1 => report::pass(
            TEST,
            format_args!(
                "{ops} operations, {} aborts injected, hypervisor still answering",
                tally.aborts
            ),
        ),
        _ => {
            report::expect(
                TEST,
                format_args!("PSCI_VERSION after {ops} operations"),
                got,
                PSCI_1_1,
            );
        }
    }
}

/// One HVC or SMC with a random function ID and random x1..x7.
fn hypercall(rng: &mut XorShift64, conduit: Conduit, tally: &mut Tally) {
    let function = loop {
        let function = random_function(rng);
        let allowed = function == firmware::PSCI_VERSION || function == firmware::PSCI_FEATURES;
        if allowed || !PSCI_RANGES.iter().any(|range| range.contains(&function)) {
            break function;
        }
    };
    let args = core::array::from_fn(|_| rng.next());
    if let Err(fault) = firmware::call(conduit, function, args) {
        let (count, first) = &mut tally.call_faults[conduit as usize];
        *count += 1;
        first.get_or_insert(fault);
    }
}

/// A function ID: half the time any 32-bit value, else a fast call of a
/// random owner with a small function number (where implementations are),
/// now and then PSCI_VERSION or PSCI_FEATURES.
fn random_function(rng: &mut XorShift64) -> u32 {
    match rng.below(8) {
        0..=3 => rng.next() as u32,
        4..=6 => {
            let width = if rng.below(2) == 0 { 0 } else { SMC64 };
            let owner = (rng.below(64) as u32) << 24;
            FAST_CALL | width | owner | rng.below(0x40) as u32
        }
        _ => {
            if rng.below(2) == 0 {
                firmware::PSCI_VERSION
            } else {
                firmware::PSCI_FEATURES
            }
        }
    }
}

/// A random address below 2^40 outside RAM and the PL011.
fn outside_ram(rng: &mut XorShift64, ram: Range) -> u64 {
    let pl011 = Range {
        start: PL011_BASE,
        end: PL011_BASE + PL011_SIZE,
    };
    loop {
        let address = rng.below(1 << mmu::VA_BITS);
        let byte = Range {
            start: address,
            end: address + 1,
        };
        if !ram.overlaps(&byte) && !pl011.overlaps(&byte) {
            return address;
        }
    }
}

/// A read or write of random width at `address` (aligned down to it).
fn access(rng: &mut XorShift64, address: u64, tally: &mut Tally) {
    let width = Width::ALL[rng.below(4) as usize];
    // Device memory faults on unaligned accesses at stage 1, before the
    // hypervisor sees them.
    let address = address & !(width.bytes() - 1);
    let probe = if rng.below(2) == 0 {
        // SAFETY: `address` is outside RAM (so no memory of ours) and outside
        // the PL011. The VM has no DMA-capable device that a random write
        // could aim at our memory.
        unsafe { access::read(address, width) }
    } else {
        let value = rng.next();
        // SAFETY: As for the read.
        unsafe { access::write(address, width, value) }
    };
    let Some(fault) = probe.fault else {
        return;
    };
    let far_ok = fault.esr & FNV != 0 || fault.far == address;
    if fault.ec() == ec::DATA_ABORT_SAME && far_ok {
        tally.aborts += 1;
    } else {
        tally.bad_aborts += 1;
        tally.first_bad_abort.get_or_insert((address, fault));
    }
}
