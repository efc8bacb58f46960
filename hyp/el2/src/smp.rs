//! Starting the secondary CPUs through PSCI `CPU_ON` (over SMC, QEMU's conduit
//! when EL2 is implemented) and waiting for each to report in.

use crate::boot::{secondary_entry, SecondaryBoot};
use crate::mmu::{self, Translation};
use alloc::boxed::Box;
use alloc::vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use log::{info, warn};
use platform::Platform;
use smccc::{psci, Smc};

/// Stack size of each secondary CPU.
const SECONDARY_STACK_SIZE: usize = 64 * 1024;

/// How long a secondary may take to report in. TCG on a busy host is slow.
const REPORT_TIMEOUT_MS: u64 = 5_000;

/// CPUs that have reported in, the primary included.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Called by each secondary once it runs Rust on its own stack.
pub fn report_in() {
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

/// Starts every CPU of `platform` except the caller (MPIDR `self_mpidr`) and
/// returns how many CPUs are online in the end, the caller included.
///
/// A CPU that cannot be started or does not report in is skipped with a
/// warning; the hypervisor runs on the others.
pub fn start_secondaries(platform: &Platform, self_mpidr: u64, tables: Translation) -> usize {
    let mut next_index = 1;
    for cpu in platform.cpus.iter().filter(|c| c.mpidr.get() != self_mpidr) {
        let stack = Box::leak(vec![0u8; SECONDARY_STACK_SIZE].into_boxed_slice());
        let stack_top = (stack.as_ptr_range().end as u64) & !0xf;
        let record = Box::leak(Box::new(SecondaryBoot {
            ttbr0: tables.ttbr0,
            tcr: tables.tcr,
            stack_top,
            cpu_index: next_index as u64,
        }));
        // The secondary reads its record with the MMU and caches off.
        mmu::clean_to_poc(record);
        let before = ONLINE.load(Ordering::Acquire);
        let entry = secondary_entry as *const () as u64;
        let context = core::ptr::from_ref(record) as u64;
        if let Err(e) = psci::cpu_on::<Smc>(cpu.mpidr.get(), entry, context) {
            warn!(
                "CPU with MPIDR {} did not start: PSCI CPU_ON {e:?}",
                cpu.mpidr
            );
            continue;
        }
        let index = next_index;
        // The index is taken even if the CPU is late, so it can never be reused.
        next_index += 1;
        if !crate::timer::wait_until(REPORT_TIMEOUT_MS, || {
            ONLINE.load(Ordering::Acquire) > before
        }) {
            warn!(
                "cpu{index} (MPIDR {}) did not report in within {REPORT_TIMEOUT_MS} ms",
                cpu.mpidr
            );
        }
    }
    let online = ONLINE.load(Ordering::Acquire);
    info!("all {online} CPUs online");
    online
}
