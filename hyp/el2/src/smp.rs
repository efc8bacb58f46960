//! Starting the secondary CPUs through PSCI `CPU_ON` (over SMC, QEMU's conduit
//! when EL2 is implemented) and waiting for each to report in.

use crate::boot::{secondary_entry, SecondaryBoot};
use crate::mmu::{self, Translation};
use crate::stacks::{self, StackBounds};
use addr::PhysRange;
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use log::{info, warn};
use platform::{Mpidr, Platform};
use smccc::{psci, Smc};

/// How long a secondary may take to report in. TCG on a busy host is slow.
const REPORT_TIMEOUT_MS: u64 = 5_000;

/// CPUs that have reported in, the primary included.
static ONLINE: AtomicUsize = AtomicUsize::new(1);

/// Called by each secondary once it runs Rust on its own stack.
pub fn report_in() {
    ONLINE.fetch_add(1, Ordering::AcqRel);
}

/// A secondary CPU to start, with the stack it will get.
#[derive(Debug)]
pub struct Secondary {
    mpidr: Mpidr,
    stack: StackBounds,
}

impl Secondary {
    /// The guard page below its stack, to be left unmapped.
    pub fn guard(&self) -> PhysRange {
        self.stack.guard
    }
}

/// Allocates a stack for every CPU of `platform` except the caller (MPIDR
/// `self_mpidr`). Done before the final tables are built, so the stacks'
/// guard pages can be left out of them.
pub fn prepare(platform: &Platform, self_mpidr: u64) -> Vec<Secondary> {
    platform
        .cpus
        .iter()
        .filter(|c| c.mpidr.get() != self_mpidr)
        .filter_map(|cpu| match stacks::allocate_secondary() {
            Some(stack) => Some(Secondary {
                mpidr: cpu.mpidr,
                stack,
            }),
            None => {
                warn!(
                    "no memory for the stack of CPU {}; not starting it",
                    cpu.mpidr
                );
                None
            }
        })
        .collect()
}

/// Starts the `secondaries` and returns how many CPUs are online in the end,
/// the caller included.
///
/// A CPU that cannot be started or does not report in is skipped with a
/// warning; the hypervisor runs on the others.
pub fn start(secondaries: &[Secondary], tables: Translation) -> usize {
    // Indices follow the device tree's order and are never reused, even for a
    // CPU that fails to start or is late.
    for (secondary, index) in secondaries.iter().zip(1u64..) {
        let record = Box::leak(Box::new(SecondaryBoot {
            ttbr0: tables.ttbr0,
            tcr: tables.tcr,
            stack_top: secondary.stack.top,
            stack_guard: secondary.stack.guard.start().get(),
            cpu_index: index,
        }));
        // The secondary reads its record with the MMU and caches off.
        mmu::clean_to_poc(record);
        let before = ONLINE.load(Ordering::Acquire);
        let entry = secondary_entry as *const () as u64;
        let context = core::ptr::from_ref(record) as u64;
        if let Err(e) = psci::cpu_on::<Smc>(secondary.mpidr.get(), entry, context) {
            warn!(
                "CPU with MPIDR {} did not start: PSCI CPU_ON {e:?}",
                secondary.mpidr
            );
            continue;
        }
        if !crate::timer::wait_until(REPORT_TIMEOUT_MS, || {
            ONLINE.load(Ordering::Acquire) > before
        }) {
            warn!(
                "cpu{index} (MPIDR {}) did not report in within {REPORT_TIMEOUT_MS} ms",
                secondary.mpidr
            );
        }
    }
    let online = ONLINE.load(Ordering::Acquire);
    info!("all {online} CPUs online");
    online
}
