//! Exhaustive state-space check of the real allocator (the `checker`
//! feature's hooks), in the spirit of the TLA+ model that found the seed
//! patch's v1 bug: every interleaving of every operation of a few CPUs on a
//! few contexts, over several generations, with pins, checked against the
//! promises below after every step. The explorer is in `checker/mod.rs`.
//!
//! # The model
//!
//! A state is the allocator's [`StateSnapshot`](id_alloc::StateSnapshot)
//! (held as a live allocator, forked for each successor), each context's
//! record, each CPU's place in an operation, and ghost state the test keeps:
//! what each CPU runs, a TLB per CPU, and which ID each pin returned.
//!
//! A **step** is what other CPUs can observe as one event:
//!
//! - `Switch`: the fast path's loads ([`IdAllocator::fast_path_load`]). They
//!   read three words without the lock: the context's ID, the CPU's active
//!   slot, the generation. Only a rollover changes the last two, or the first
//!   while it is current; a probe is eligible only if the generation it read
//!   matches the ID it read before, so no rollover came between the loads and
//!   they behave as one. An ineligible probe (for example one split by a
//!   rollover) goes to the slow path in the same step: its commit touches
//!   nothing shared, and the slow path re-reads everything under the lock.
//!   Taking the lock later reaches nothing new: if the context were still
//!   ineligible then, a later `Switch` does the same; if it had become
//!   current on a CPU with a non-zero slot, the slow path would only store
//!   its ID, which is what a later `Switch` and `Commit` do.
//! - `Commit`: the fast path's compare-and-swap on the CPU's active slot, a
//!   separate step so that a whole rollover can run between load and swap.
//!   If it fails (a rollover zeroed the slot) the slow path runs in the same
//!   step: only this CPU makes its slot non-zero again, so the failure is
//!   permanent and taking the lock later changes nothing.
//! - The slow path, `pin`, `unpin` and `deactivate` are atomic: the first
//!   three run under the allocator lock, and `deactivate`'s load and
//!   compare-and-swap on the CPU's own slot can only be told apart by a
//!   rollover's swap in between, which makes it a no-op as if it ran after.
//! - A context that no CPU runs or is switching to, and that is not pinned,
//!   may be destroyed and its slot taken by a fresh context (a VM torn down,
//!   another created): with few contexts, the only way to use up the IDs.
//!   This happens as part of the slot's next `Switch` or `Pin`, since it
//!   commutes with every step that does not involve the slot.
//!
//! A CPU keeps running its old context until its switch returns; then the
//! caller flushes the CPU's TLB if told to ([`Switch::needs_flush`]) and runs
//! the context, caching a TLB entry {context, ID} on that CPU. Destroying a
//! context leaves its entries behind, and every CPU starts with entries of
//! unknown origin (firmware) for every ID.
//!
//! To make rollovers come after a few allocations, IDs are 3 bits wide and
//! three "ballast" contexts are pinned before the search starts (devices of
//! VMs that never run): their IDs are kept by every rollover, which leaves
//! four to the contexts under test. Narrower IDs cannot do it: with 2 bits
//! and two CPUs the pin limit is 0.
//!
//! # Invariants
//!
//! Checked after every step (messages start with the number):
//!
//! 1. Two contexts running at the same time never hold the same ID, and a
//!    running context never holds an ID pinned by another (a device uses it).
//!    IDs are compared as the hardware sees them, without the generation,
//!    which is stronger than "the same ID in the same generation".
//! 2. A context running on two CPUs holds one ID, and its record still names
//!    the ID it runs with; a switch or pin hands out the record's ID, of the
//!    current generation.
//! 3. A pinned context's ID never changes while pinned (its record, every
//!    switch and every further pin return the ID the first pin did), and pin
//!    counts match the pins taken.
//! 4. No stale translation: when a context runs on CPU `c` with ID `i`, `c`'s
//!    ghost TLB holds no entry for `i` of another context (destroyed and
//!    firmware entries included): "(4) stale translation". Two further
//!    checks, "(4b)" and "(4c)", make this exhaustive
//!    without keeping TLB contents in the states: (4b) a CPU's first switch
//!    after each rollover (and at boot) flushes, and (4c) within one
//!    generation an ID is handed to one context only, a destroyed one
//!    included. Any breach of the TLB check implies one of these on the same
//!    path: if a rollover came between the stale entry and its hit, (4b)
//!    failed; otherwise both contexts got the ID in one generation, (4c).
//!    So the explorer may merge states that differ only in TLB contents (the
//!    history of which IDs ran where), which would otherwise multiply the
//!    state space; `exact_tlb` keeps them apart, for cross-checking.
//! 5. The pinned count never exceeds the limit, matches the pinned bitmap,
//!    and a pin is refused exactly when the limit is reached.
//! 6. No operation fails or panics: in particular an allocation after a
//!    rollover always finds a free ID.
//!
//! # Bounds and reductions
//!
//! States past the generation bound are checked but not expanded. At most
//! `pins` pins are held at once. States that differ only by renumbering CPUs
//! or contexts, or by an order-preserving renumbering of generations, are
//! explored once (`Canon` in `checker/mod.rs` says why that is exact). Visited
//! states are kept as 128-bit fingerprints.
//!
//! # Deeper runs
//!
//! `cargo test -p id-alloc --release --test exhaustive -- --ignored --nocapture`
//! runs the configuration given by `ID_ALLOC_CHECK_CPUS`, `_CONTEXTS`,
//! `_GENERATIONS`, `_PINS`, `_BALLAST`, `_BITS`, `_ORDER` (`fixed`, `v1`),
//! `_EXACT_TLB` and `_SYMMETRY` (`0`, `1`); `ID_ALLOC_CHECK_PROGRESS=1`
//! prints progress, `ID_ALLOC_CHECK_DFS=1` searches depth-first (the same
//! states in far less memory, longer traces).
//! `cargo run -p id-alloc --release --example check -- --help` does the same
//! from the command line. Breadth-first, a state in the queue costs about
//! 2 KB (a forked allocator and the ghost state), so configurations with
//! more than about 10 million states want `--dfs`.
//!
//! [`IdAllocator::fast_path_load`]: id_alloc::IdAllocator::fast_path_load
//! [`Switch::needs_flush`]: id_alloc::Switch::needs_flush

mod checker;

use checker::{check, Config, Flushes, Step};
use id_alloc::NewIdOrder;

/// The acceptance run: three generations, two CPUs, three contexts, one pin.
#[test]
fn fixed_order_keeps_every_promise_over_three_generations() {
    let config = Config::DEFAULT;
    let report = check(&config).unwrap_or_else(|v| panic!("{v}"));
    println!("{report}");
    let c = report.coverage;
    // The search must have exercised what the invariants are about, or it
    // could pass by exploring nothing interesting.
    assert_eq!(c.max_generation, config.generations + 1, "{c}");
    assert!(c.rollovers > 0, "{c}");
    assert!(c.rollovers_during_probe > 0, "{c}");
    assert!(c.cas_failed > 0, "{c}");
    assert!(c.fast_hits > 0 && c.slow_paths > 0 && c.flushes > 0, "{c}");
    assert!(c.pins > 0 && c.pinned_renewed > 0, "{c}");
    assert!(c.reserved_kept > 0, "{c}");
    assert!(c.recycles > 0, "{c}");
}

/// The seed's v1 order (pinned check before the reserved update) must be
/// caught, with the trace that shows how.
#[test]
fn v1_order_is_caught_with_its_trace() {
    let config = Config {
        order: NewIdOrder::V1PinnedFirst,
        ..Config::DEFAULT
    };
    let violation = check(&config).expect_err("the v1 order must break an invariant");
    println!("{violation}");
    // The seed's bug: a context still running on one CPU gets a second ID.
    assert!(violation.message.starts_with("(2)"), "{violation}");
    let steps: Vec<Step> = violation.trace.iter().map(|l| l.step).collect();
    assert!(
        steps.iter().any(|s| matches!(s, Step::Pin { .. })),
        "{violation}"
    );
    assert!(
        steps.iter().any(|s| matches!(s, Step::Unpin { .. })),
        "{violation}"
    );
    let last = violation.trace.last().expect("a trace");
    assert!(last.detail.starts_with("VIOLATION"), "{violation}");
    // Three generations and one pinned task, as in the seed's note.
    let before_last = &violation.trace[violation.trace.len() - 2];
    assert!(before_last.detail.contains("gen 3 "), "{violation}");
}

/// A caller that ignores the flushes the allocator requests runs over the
/// firmware's TLB entries at once (invariant 4's ghost TLB is not vacuous).
#[test]
fn ignored_flushes_are_caught() {
    let config = Config {
        caller_flushes: Flushes::None,
        generations: 1,
        ..Config::DEFAULT
    };
    let violation = check(&config).expect_err("a missing flush must be caught");
    println!("{violation}");
    assert!(
        violation.message.starts_with("(4) stale translation"),
        "{violation}"
    );
}

/// A caller that flushes at boot but not after a rollover is caught too,
/// once a CPU runs a recycled ID.
#[test]
fn ignored_rollover_flushes_are_caught() {
    let config = Config {
        caller_flushes: Flushes::BootOnly,
        // Which CPUs flushed at boot is read from their TLBs.
        exact_tlb: true,
        generations: 1,
        ..Config::DEFAULT
    };
    let violation = check(&config).expect_err("a missing flush must be caught");
    println!("{violation}");
    // Not at the first switch, which flushes: only once IDs are reused.
    assert!(violation.message.starts_with("(4"), "{violation}");
    assert!(violation.trace.len() > 1, "{violation}");
}

/// With the TLB contents kept in the states the search is larger but finds
/// the same: nothing (cross-check of the argument in (4) above).
#[test]
fn exact_tlb_states_agree_in_one_generation() {
    let config = Config {
        exact_tlb: true,
        generations: 1,
        ..Config::DEFAULT
    };
    let report = check(&config).unwrap_or_else(|v| panic!("{v}"));
    println!("{report}");
    let merged = check(&Config {
        generations: 1,
        ..Config::DEFAULT
    })
    .unwrap_or_else(|v| panic!("{v}"));
    assert!(report.states > merged.states);
}

/// Pins past the limit are refused with the exact error and never counted:
/// two pins wanted, one allowed beside the ballast.
#[test]
fn pins_past_the_limit_are_refused() {
    let config = Config {
        pins: 2,
        generations: 1,
        ..Config::DEFAULT
    };
    let report = check(&config).unwrap_or_else(|v| panic!("{v}"));
    println!("{report}");
    assert!(report.coverage.pins_refused > 0, "{}", report.coverage);
}

/// A configuration from the environment (see the file's doc).
#[test]
#[ignore = "deeper runs on demand: set ID_ALLOC_CHECK_*"]
fn configured_by_environment() {
    let config = Config::from_env().unwrap_or_else(|e| panic!("{e}"));
    match check(&config) {
        Ok(report) => println!("{report}"),
        Err(violation) => panic!("{violation}"),
    }
}
