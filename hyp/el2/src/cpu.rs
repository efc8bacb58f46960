//! Stopping CPUs: one after an unrecoverable exception, all of them at the end.
//!
//! The number of CPUs running hypervisor code is tracked so that when the
//! last one stops, the machine powers off instead of hanging silently.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use log::{error, info};
use smccc::{psci, Smc};

/// CPUs currently running hypervisor code (not parked, not stopped).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// Counts the calling CPU as running.
pub fn mark_running() {
    RUNNING.fetch_add(1, Ordering::AcqRel);
}

/// Stops the calling CPU for good: PSCI `CPU_OFF`, or `SYSTEM_OFF` if it was
/// the last CPU running.
pub fn stop_this_cpu() -> ! {
    let cpu = crate::percpu::current_index();
    error!("cpu{cpu} stopped");
    leave(false)
}

/// Parks the calling CPU because it has nothing to do (PSCI `CPU_OFF`; it can
/// be started again with `CPU_ON`).
pub fn park_idle_cpu() -> ! {
    let cpu = crate::percpu::current_index();
    info!("cpu{cpu} has nothing to run; parked with PSCI CPU_OFF");
    leave(false)
}

/// Every VM has stopped: powers the machine off. Several idle CPUs may
/// notice at once; the first reports it (after `report`) and powers off,
/// the others wait, so none cuts the report short.
pub fn all_vms_stopped(report: impl FnOnce()) -> ! {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    if REPORTED.swap(true, Ordering::AcqRel) {
        halt()
    }
    report();
    let (used, total) = crate::heap::usage();
    info!(
        "all VMs have stopped (heap in use: {} KiB of {} MiB); powering off",
        used >> 10,
        total >> 20
    );
    power_off()
}

/// Powers the whole machine off (PSCI `SYSTEM_OFF`).
pub fn power_off() -> ! {
    leave(true)
}

fn leave(whole_system: bool) -> ! {
    // Saturating: a CPU that faults before it was counted must not wrap the count.
    let before = RUNNING
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_sub(1))
        })
        .unwrap_or(0);
    let was_last = before <= 1;
    if whole_system || was_last {
        crate::console::flush();
        // Only returns on failure.
        let result = psci::system_off::<Smc>();
        error!("PSCI SYSTEM_OFF failed: {result:?}");
    } else {
        let result = psci::cpu_off::<Smc>();
        error!("PSCI CPU_OFF failed: {result:?}");
    }
    halt()
}

/// Waits forever with interrupts masked; the end of the line when PSCI fails.
pub fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
