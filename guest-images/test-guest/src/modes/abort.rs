//! `test=abort`: reads, writes and an instruction fetch at addresses the VM
//! does not own must each raise a synchronous external abort at EL1, with
//! FAR_EL1 = the address and ELR_EL1 = the accessing instruction.

use crate::access::{self, Probe, Width};
use crate::dt::Machine;
use crate::exceptions::{ec, FSC_SYNC_EXTERNAL};
use crate::report;
use core::fmt;

const TEST: &str = "abort";

/// Below RAM, clear of the PL011 (and in the executable device GiB, see `mmu`).
const BELOW_RAM: u64 = 0x2000_0000;
/// Far above RAM, still inside the 40-bit mapped space.
const HIGH: u64 = 0x10_0000_0000;
/// How far past the end of RAM the third address is.
const PAST_RAM: u64 = 16 << 20;
/// What the writes store.
const WRITE_VALUE: u64 = 0x0bad_c0de_dead_beef;

/// Runs the accesses.
pub fn run(machine: &Machine) {
    for address in [BELOW_RAM, machine.ram.end + PAST_RAM, HIGH] {
        // SAFETY: None of the addresses is RAM (so no memory of ours) or the
        // PL011; under the hypervisor nothing of the VM's is there at all.
        let probe = unsafe { access::read(address, Width::Double) };
        check(
            format_args!("64-bit read of {address:#x}"),
            probe,
            address,
            ec::DATA_ABORT_SAME,
        );
        // SAFETY: As above.
        let probe = unsafe { access::write(address, Width::Double, WRITE_VALUE) };
        check(
            format_args!("64-bit write to {address:#x}"),
            probe,
            address,
            ec::DATA_ABORT_SAME,
        );
    }
    // SAFETY: No code of ours is below RAM; the VM has nothing mapped there.
    let probe = unsafe { access::fetch(BELOW_RAM) };
    check(
        format_args!("instruction fetch from {BELOW_RAM:#x}"),
        probe,
        BELOW_RAM,
        ec::INSTRUCTION_ABORT_SAME,
    );
}

/// Passes if `probe` raised exception class `class` with a synchronous
/// external abort at `address`, reported at the accessing instruction.
fn check(what: fmt::Arguments<'_>, probe: Probe, address: u64, class: u8) {
    let Some(fault) = probe.fault else {
        match probe.value {
            Some(value) => report::fail(
                TEST,
                format_args!(
                    "{what}: got no exception (read {value:#x}), expected EC {class:#x} FSC {FSC_SYNC_EXTERNAL:#x}"
                ),
            ),
            None => report::fail(
                TEST,
                format_args!(
                    "{what}: got no exception, expected EC {class:#x} FSC {FSC_SYNC_EXTERNAL:#x}"
                ),
            ),
        }
        return;
    };
    if fault.ec() == class
        && fault.fsc() == FSC_SYNC_EXTERNAL
        && fault.far == address
        && fault.elr == probe.instruction
    {
        report::pass(
            TEST,
            format_args!(
                "{what}: synchronous external abort, EC {class:#x} FSC {FSC_SYNC_EXTERNAL:#x} FAR {address:#x}"
            ),
        );
    } else {
        report::fail(
            TEST,
            format_args!(
                "{what}: got {fault}, expected EC {class:#x} FSC {FSC_SYNC_EXTERNAL:#x}, FAR {address:#x}, ELR {:#x}",
                probe.instruction
            ),
        );
    }
}
