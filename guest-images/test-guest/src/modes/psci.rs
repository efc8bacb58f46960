//! `test=psci`: SMCCC and PSCI discovery over HVC and SMC, then every
//! secondary vCPU started, checked, stopped and started again, then the
//! error cases and CPU_SUSPEND.

use crate::dt::Machine;
use crate::firmware::{self, Answer, Conduit, Hex, Status};
use crate::{boot, report, smp, timer_irq};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

const TEST: &str = "psci";

/// PSCI 1.1, the version the hypervisor implements.
const PSCI_1_1: Hex = Hex(0x0001_0001);
/// SMCCC 1.1, the lowest version the hypervisor may report.
const SMCCC_1_1: i32 = 0x0001_0001;
/// An MPIDR no vCPU has (Aff1 = 0xff).
const ABSENT_MPIDR: u64 = 0xff00;
/// Function IDs nobody implements: an SMC64 SiP service call and an
/// unassigned PSCI function number.
const UNKNOWN_FUNCTIONS: [u32; 2] = [0xc200_1234, 0x8400_00ff];
/// CPU_SUSPEND power_state: standby (StateType 0), power level 0, state 0.
const STANDBY: u64 = 0;
/// Context ID for CPU_SUSPEND: a standby state must not use it; if the
/// hypervisor wrongly resumes at the entry point, vCPU 0 comes up there.
const SUSPEND_CONTEXT: u64 = 0;
/// Counter ticks until the timer ends the standby (about 1 ms at 62.5 MHz).
const SUSPEND_TICKS: u64 = 62_500;
/// How many times each secondary is started.
const STARTS_PER_CPU: u32 = 2;

/// Functions PSCI_FEATURES must report as implemented.
const REQUIRED_FUNCTIONS: [(u32, &str); 9] = [
    (firmware::PSCI_VERSION, "PSCI_VERSION"),
    (firmware::PSCI_FEATURES, "PSCI_FEATURES"),
    (firmware::PSCI_CPU_ON_64, "CPU_ON (64-bit)"),
    (firmware::PSCI_CPU_OFF, "CPU_OFF"),
    (firmware::PSCI_CPU_SUSPEND_64, "CPU_SUSPEND (64-bit)"),
    (firmware::PSCI_AFFINITY_INFO_64, "AFFINITY_INFO (64-bit)"),
    (firmware::PSCI_SYSTEM_OFF, "SYSTEM_OFF"),
    (firmware::PSCI_SYSTEM_RESET, "SYSTEM_RESET"),
    (firmware::PSCI_MIGRATE_INFO_TYPE, "MIGRATE_INFO_TYPE"),
];

/// Per secondary: how often it has reported in.
static REPORTS: [AtomicU32; smp::MAX_VCPUS] = [const { AtomicU32::new(0) }; smp::MAX_VCPUS];
/// Per secondary: set by the primary when the secondary may turn itself off.
static GO: [AtomicBool; smp::MAX_VCPUS] = [const { AtomicBool::new(false) }; smp::MAX_VCPUS];
/// Per secondary: the MPIDR the primary started it with.
static STARTED_AS: [AtomicU64; smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; smp::MAX_VCPUS];

/// The primary's part.
pub fn run(machine: &Machine) {
    discovery();
    for (index, &mpidr) in machine.cpus.iter().enumerate().skip(1) {
        for start in 1..=STARTS_PER_CPU {
            if !start_and_stop(index, mpidr, start) {
                break;
            }
        }
    }
    report::expect(
        TEST,
        format_args!("CPU_ON of absent MPIDR {ABSENT_MPIDR:#x}"),
        firmware::status(
            firmware::psci_conduit(),
            firmware::PSCI_CPU_ON_64,
            &[ABSENT_MPIDR, boot::secondary_entry_address(), 0],
        ),
        Status::INVALID_PARAMETERS,
    );
    report::expect(
        TEST,
        format_args!("AFFINITY_INFO of absent MPIDR {ABSENT_MPIDR:#x}"),
        firmware::affinity_info(ABSENT_MPIDR),
        Status::INVALID_PARAMETERS,
    );
    // A standby state lasts until an interrupt: the virtual timer's.
    timer_irq::arm_wakeup(SUSPEND_TICKS);
    report::expect(
        TEST,
        format_args!("CPU_SUSPEND(standby) until the virtual timer fires"),
        firmware::status(
            firmware::psci_conduit(),
            firmware::PSCI_CPU_SUSPEND_64,
            &[STANDBY, boot::secondary_entry_address(), SUSPEND_CONTEXT],
        ),
        Status::SUCCESS,
    );
    timer_irq::disarm();
}

/// Versions and features, and unknown functions over both conduits.
fn discovery() {
    match firmware::status(Conduit::Hvc, firmware::SMCCC_VERSION, &[]) {
        Ok(Status(version)) if version >= SMCCC_1_1 => report::pass(
            TEST,
            format_args!("SMCCC_VERSION over HVC = {version:#x} (at least 1.1)"),
        ),
        got => report::fail(
            TEST,
            format_args!(
                "SMCCC_VERSION over HVC: got {}, expected at least {SMCCC_1_1:#x}",
                Answer(got)
            ),
        ),
    }
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        report::expect(
            TEST,
            format_args!("PSCI_VERSION over {conduit}"),
            firmware::version(conduit, firmware::PSCI_VERSION),
            PSCI_1_1,
        );
    }
    for (function, name) in REQUIRED_FUNCTIONS {
        let got = firmware::status(Conduit::Hvc, firmware::PSCI_FEATURES, &[function.into()]);
        if matches!(got, Ok(Status(features)) if features >= 0) {
            report::pass(
                TEST,
                format_args!("PSCI_FEATURES({name}) = {}", Answer(got)),
            );
        } else {
            report::fail(
                TEST,
                format_args!(
                    "PSCI_FEATURES({name}): got {}, expected a value >= 0",
                    Answer(got)
                ),
            );
        }
    }
    report::expect(
        TEST,
        format_args!("PSCI_FEATURES({:#x})", UNKNOWN_FUNCTIONS[1]),
        firmware::status(
            Conduit::Hvc,
            firmware::PSCI_FEATURES,
            &[UNKNOWN_FUNCTIONS[1].into()],
        ),
        Status::NOT_SUPPORTED,
    );
    for conduit in [Conduit::Hvc, Conduit::Smc] {
        for function in UNKNOWN_FUNCTIONS {
            report::expect(
                TEST,
                format_args!("unknown function {function:#x} over {conduit}"),
                firmware::status(conduit, function, &[]),
                Status::NOT_SUPPORTED,
            );
        }
    }
    report::expect(
        TEST,
        format_args!("MIGRATE_INFO_TYPE"),
        firmware::status(Conduit::Hvc, firmware::PSCI_MIGRATE_INFO_TYPE, &[]),
        Status::NO_MIGRATION,
    );
}

/// Starts secondary `index`, waits for it to report in, checks its state
/// and a second CPU_ON, lets it turn itself off and waits until it is off.
/// Returns whether it got that far.
fn start_and_stop(index: usize, mpidr: u64, start: u32) -> bool {
    let reports = REPORTS[index].load(Ordering::Acquire);
    GO[index].store(false, Ordering::Relaxed);
    // The secondary reads this once running; starting it orders the two.
    STARTED_AS[index].store(mpidr, Ordering::Relaxed);
    if !report::expect(
        TEST,
        format_args!("CPU_ON cpu{index} (MPIDR {mpidr:#x}), start {start}"),
        firmware::cpu_on(mpidr, index),
        Status::SUCCESS,
    ) {
        return false;
    }
    if !smp::wait_until(smp::WAIT_TIMEOUT_MS, || {
        REPORTS[index].load(Ordering::Acquire) > reports
    }) {
        report::fail(
            TEST,
            format_args!(
                "cpu{index} did not report in within {} ms of CPU_ON",
                smp::WAIT_TIMEOUT_MS
            ),
        );
        return false;
    }
    report::expect(
        TEST,
        format_args!("AFFINITY_INFO cpu{index} while it runs"),
        firmware::affinity_info(mpidr),
        Status::SUCCESS,
    );
    report::expect(
        TEST,
        format_args!("CPU_ON cpu{index} while it runs"),
        firmware::cpu_on(mpidr, index),
        Status::ALREADY_ON,
    );
    GO[index].store(true, Ordering::Release);
    match smp::wait_until_off(mpidr) {
        Ok(()) => {
            report::pass(TEST, format_args!("cpu{index} is OFF after CPU_OFF"));
            true
        }
        Err(last) => {
            report::fail(
                TEST,
                format_args!(
                    "AFFINITY_INFO cpu{index} after CPU_OFF: got {}, expected 1 (OFF) within {} ms",
                    Answer(last),
                    smp::WAIT_TIMEOUT_MS
                ),
            );
            false
        }
    }
}

/// A secondary's part: report in, wait to be told, return (to CPU_OFF).
pub fn secondary(index: usize) {
    let expected = STARTED_AS[index].load(Ordering::Relaxed);
    let mpidr = smp::current_mpidr();
    if mpidr == expected {
        report::pass(TEST, format_args!("cpu{index} started, context id {index}"));
    } else {
        report::fail(
            TEST,
            format_args!(
                "cpu{index} started with context id {index}: got MPIDR {mpidr:#x}, expected {expected:#x}"
            ),
        );
    }
    REPORTS[index].fetch_add(1, Ordering::Release);
    if !smp::wait_until(smp::WAIT_TIMEOUT_MS, || GO[index].load(Ordering::Acquire)) {
        report::fail(
            TEST,
            format_args!(
                "cpu{index} was not told to stop within {} ms",
                smp::WAIT_TIMEOUT_MS
            ),
        );
    }
}
