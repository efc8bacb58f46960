//! vCPUs: their indices (guest-rt's), waiting, and starting and stopping
//! secondaries through PSCI.

use crate::exceptions::Fault;
use crate::firmware::{self, Status};
use aarch64_cpu::asm::wfe;
use aarch64_cpu::registers::{Readable, CNTFRQ_EL0, CNTVCT_EL0};

pub use guest_rt::smp::{current_index, current_mpidr, park, MAX_VCPUS};

/// How long to wait for another vCPU to change state: generous, since TCG
/// on a loaded host is slow, and it only matters when something is wrong.
pub const WAIT_TIMEOUT_MS: u64 = 30_000;

/// Counter frequency assumed if CNTFRQ_EL0 reads 0: high, so a timeout is
/// late rather than early.
const FALLBACK_COUNTER_HZ: u64 = 1_000_000_000;

/// Waits a little: WFE, which the hypervisor (and plain QEMU) treats as a
/// yield. Not WFI: this guest enables no interrupt, so a WFI would wait
/// for good.
pub fn idle() {
    wfe();
}

/// The counter's frequency in Hz (CNTFRQ_EL0, or a high guess if unset).
pub fn counter_hz() -> u64 {
    match CNTFRQ_EL0.get() {
        0 => FALLBACK_COUNTER_HZ,
        hz => hz,
    }
}

/// The virtual counter in milliseconds.
pub fn counter_ms() -> u64 {
    // 128-bit product: the counter times 1000 may not fit 64 bits.
    (u128::from(CNTVCT_EL0.get()) * 1000 / u128::from(counter_hz())) as u64
}

/// Idles until `condition` holds, for at most `timeout_ms` of counter time.
/// Returns whether it held.
pub fn wait_until(timeout_ms: u64, mut condition: impl FnMut() -> bool) -> bool {
    let ticks = timeout_ms.saturating_mul(counter_hz()) / 1000;
    let start = CNTVCT_EL0.get();
    loop {
        if condition() {
            return true;
        }
        if CNTVCT_EL0.get().wrapping_sub(start) > ticks {
            return condition();
        }
        idle();
    }
}

/// Waits until `AFFINITY_INFO(mpidr)` says OFF. Returns the last status seen
/// if it never does.
pub fn wait_until_off(mpidr: u64) -> Result<(), Result<Status, Fault>> {
    let mut last = Ok(Status::SUCCESS);
    let off = wait_until(WAIT_TIMEOUT_MS, || {
        last = firmware::affinity_info(mpidr);
        last == Ok(Status::OFF)
    });
    if off {
        Ok(())
    } else {
        Err(last)
    }
}
