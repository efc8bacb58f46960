//! The allocator's single operations, each timed on its own (ns/op on the
//! host: these are not timed tests, nothing here asserts a duration).
//!
//! - `switch/fast_path`: a switch to a context whose ID is of the current
//!   generation on a CPU whose active slot is live: the lock-free path every
//!   guest entry takes in the steady state (loads, one compare-and-swap).
//!   Two contexts alternate on one CPU, as a scheduler would.
//! - `switch/deactivate_then_fast_path`: the vCPU put/load pair, the
//!   deactivation sentinel's cost on top of the fast path.
//! - `switch/slow_path/{8,16}bit`: a switch that needs a new ID within the
//!   generation (a context with no ID, on a half-full allocator): the lock,
//!   the bitmap search from the cursor, the publish.
//! - `switch/rollover/{8,16}bit/{1,4,16,64}cpu`: the same switch on a full
//!   allocator, so it rolls over: a new generation, the bitmap rebuilt from
//!   the pinned map (8 KiB copied for 16-bit IDs), every CPU's active slot
//!   swapped to 0 and its ID reserved, every CPU marked flush-pending, then
//!   the search from ID 1. The difference to `slow_path` is the rollover's
//!   cost, which grows with the ID width (the bitmap) and the CPU count (the
//!   walk over per-CPU slots, one cache line each).
//! - `pin/*`: pin + unpin of a context that already has a current ID (the
//!   first pin takes a pinned slot, the unpin frees it), the same pair on a
//!   context that is already pinned (refcount only), and the first pin of a
//!   context with no ID, which also allocates one.
//!
//! Operations that change the allocator's state for good (slow path,
//! rollover, first pin) run on a copy of a prepared state made with
//! `IdAllocator::fork` (the `checker` feature, enabled for benchmarks only)
//! outside the timed section, so every timed call starts from the same state.
//! Every CPU is simulated from one thread: the numbers are the operations'
//! own costs, without cache-line transfers between CPUs or lock contention.
//!
//! Run with `cargo bench -p id-alloc --bench operations`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion};
use id_alloc::{Context, Vmid, VmidAllocator};

/// Copies of a prepared state made per timed batch; small enough that a batch
/// of 16-bit allocators (two 8 KiB bitmaps each) stays in the L2 cache.
const BATCH: BatchSize = BatchSize::NumIterations(32);

/// An allocator of `bits`-bit VMIDs on `cpus` CPUs with `ids` IDs handed out
/// in the current generation, the last `cpus` of them running (one per CPU),
/// and every CPU's initial flush taken. The contexts are returned too, though
/// a fork of the allocator does not need them.
fn prepared(bits: u32, cpus: usize, ids: u32) -> (VmidAllocator, Vec<Context<Vmid>>) {
    let alloc = VmidAllocator::new(bits, cpus).expect("valid width and CPU count");
    let contexts: Vec<Context<Vmid>> = (0..ids).map(|_| Context::new()).collect();
    for (i, ctx) in contexts.iter().enumerate() {
        let _ = alloc.switch(ctx, i % cpus).expect("valid CPU");
    }
    let stats = alloc.stats();
    assert_eq!(stats.ids_in_use, ids);
    assert_eq!(stats.rollovers, 0);
    (alloc, contexts)
}

/// Checks on one copy of `state`, outside any timing, that a new context's
/// switch on CPU 0 does what the benchmark claims: a rollover or not.
fn check_new_context_switch(state: &VmidAllocator, rolls_over: bool) {
    let copy = state.fork();
    let before = copy.stats();
    let switch = copy.switch(&Context::new(), 0).expect("valid CPU");
    let after = copy.stats();
    assert_eq!(after.new_ids, before.new_ids + 1);
    assert_eq!(after.rollovers, before.rollovers + u64::from(rolls_over));
    assert_eq!(switch.needs_flush(), rolls_over);
}

fn switch_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch");

    let (alloc, contexts) = prepared(16, 4, 2);
    let [a, b] = [&contexts[0], &contexts[1]];
    let mut flip = false;
    group.bench_function("fast_path", |bench| {
        bench.iter(|| {
            flip = !flip;
            alloc.switch(if flip { a } else { b }, 0)
        })
    });
    group.bench_function("deactivate_then_fast_path", |bench| {
        bench.iter(|| {
            alloc.deactivate(0).expect("valid CPU");
            alloc.switch(a, 0)
        })
    });
    let stats = alloc.stats();
    assert_eq!(
        stats.slow_path_entries, 2,
        "the fast-path benchmarks left the fast path: {stats}"
    );

    for bits in [8, 16] {
        let (half, _contexts) = prepared(bits, 4, 1 << (bits - 1));
        check_new_context_switch(&half, false);
        group.bench_function(
            BenchmarkId::new("slow_path", format!("{bits}bit")),
            |bench| {
                bench.iter_batched_ref(
                    || (half.fork(), Context::new()),
                    |(alloc, ctx)| alloc.switch(ctx, 0),
                    BATCH,
                )
            },
        );
    }

    for bits in [8, 16] {
        for cpus in [1, 4, 16, 64] {
            let (full, _contexts) = prepared(bits, cpus, (1 << bits) - 1);
            check_new_context_switch(&full, true);
            group.bench_function(
                BenchmarkId::new(format!("rollover/{bits}bit"), format!("{cpus}cpu")),
                |bench| {
                    bench.iter_batched_ref(
                        || (full.fork(), Context::new()),
                        |(alloc, ctx)| alloc.switch(ctx, 0),
                        BATCH,
                    )
                },
            );
        }
    }
    group.finish();
}

fn pin_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("pin");

    let (alloc, contexts) = prepared(16, 4, 2);
    let ctx = &contexts[0];
    group.bench_function("pin_unpin", |bench| {
        bench.iter(|| {
            black_box(alloc.pin(ctx).expect("under the pin limit"));
            alloc.unpin(ctx).expect("pinned")
        })
    });
    alloc.pin(ctx).expect("under the pin limit");
    group.bench_function("pin_unpin_nested", |bench| {
        bench.iter(|| {
            black_box(alloc.pin(ctx).expect("under the pin limit"));
            alloc.unpin(ctx).expect("pinned")
        })
    });
    alloc.unpin(ctx).expect("pinned");
    assert_eq!(alloc.stats().pinned, 0);

    let (half, _contexts) = prepared(16, 4, 1 << 15);
    group.bench_function("first_pin_with_new_id", |bench| {
        bench.iter_batched_ref(
            || (half.fork(), Context::new()),
            |(alloc, ctx)| alloc.pin(ctx),
            BATCH,
        )
    });
    group.finish();
}

fn main() {
    // Short runs: the whole `cargo bench -p id-alloc` stays around a minute
    // of measuring on a small machine.
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    switch_benches(&mut criterion);
    pin_benches(&mut criterion);
    criterion.final_summary();
}
