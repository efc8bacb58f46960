//! One test per rule of the allocator, named after the scenario.

use std::format;
use std::vec::Vec;

use super::{allocator, allocator_with_order, contexts, generation_of, switch};
use crate::{
    AllocError, Asid, Context, ContextSnapshot, IdAllocator, LocalTlbFlush, NewIdOrder, Vmid,
};

/// Switches fresh contexts on `cpu` until the allocator rolls over; returns
/// them (the last one is left running on `cpu`).
fn force_rollover(alloc: &IdAllocator<Vmid>, cpu: usize) -> Vec<Context<Vmid>> {
    let before = alloc.stats().rollovers;
    let mut fresh = Vec::new();
    while alloc.stats().rollovers == before {
        assert!(fresh.len() < 1 << alloc.bits(), "no rollover happened");
        let ctx = Context::new();
        let _ = switch(alloc, &ctx, cpu);
        fresh.push(ctx);
    }
    fresh
}

#[test]
fn construction_refuses_bad_widths_and_cpu_counts() {
    assert_eq!(
        IdAllocator::<Vmid>::new(1, 1).unwrap_err(),
        AllocError::InvalidWidth(1)
    );
    assert_eq!(
        IdAllocator::<Vmid>::new(17, 1).unwrap_err(),
        AllocError::InvalidWidth(17)
    );
    assert_eq!(
        IdAllocator::<Vmid>::new(8, 0).unwrap_err(),
        AllocError::NoCpus
    );
    assert_eq!(
        IdAllocator::<Vmid>::new(2, 3).unwrap_err(),
        AllocError::TooManyCpus {
            requested: 3,
            max: 2
        }
    );
    assert!(IdAllocator::<Vmid>::new(2, 2).is_ok());
    assert!(IdAllocator::<Asid>::new(16, 512).is_ok());
}

#[test]
fn out_of_range_cpu_is_refused_by_every_operation() {
    let alloc = allocator(8, 2);
    let ctx = Context::new();
    assert_eq!(
        alloc.switch(&ctx, 2).unwrap_err(),
        AllocError::InvalidCpu(2)
    );
    assert_eq!(
        alloc.fast_path_load(&ctx, 7).unwrap_err(),
        AllocError::InvalidCpu(7)
    );
    assert_eq!(
        alloc.slow_path(&ctx, 2).unwrap_err(),
        AllocError::InvalidCpu(2)
    );
    assert_eq!(alloc.deactivate(9).unwrap_err(), AllocError::InvalidCpu(9));
    // Nothing was allocated by the refused calls.
    assert_eq!(ctx.snapshot().id, 0);
    assert_eq!(alloc.stats().ids_in_use, 0);
}

#[test]
fn first_switch_on_each_cpu_requests_a_flush_then_no_more() {
    let alloc = allocator(8, 2);
    let ctx = Context::new();
    assert!(switch(&alloc, &ctx, 0).needs_flush());
    assert!(!switch(&alloc, &ctx, 0).needs_flush());
    assert!(switch(&alloc, &ctx, 1).needs_flush());
    assert!(!switch(&alloc, &ctx, 1).needs_flush());
    assert_eq!(alloc.stats().flushes_requested, 2);
}

#[test]
fn id_zero_is_never_handed_out() {
    for bits in 2..=4 {
        let alloc = allocator(bits, 2);
        // More contexts than IDs, so every round rolls over.
        let ctxs = contexts((1 << bits) + 3);
        for round in 0..50 {
            for (i, ctx) in ctxs.iter().enumerate() {
                let cpu = (i + round) % 2;
                assert_ne!(switch(&alloc, ctx, cpu).id().get(), 0);
            }
        }
        assert!(alloc.stats().rollovers > 10);
    }
}

#[test]
fn generation_never_leaks_into_the_hardware_id() {
    let alloc = allocator(3, 1);
    let ctxs = contexts(10);
    for _ in 0..20 {
        for ctx in &ctxs {
            let id = switch(&alloc, ctx, 0).id();
            assert!(id.get() < 8, "{id} has bits above the ID width");
            // The full value does carry the generation, above the ID.
            assert_eq!(ctx.snapshot().id & 7, u64::from(id.get()));
            assert_eq!(generation_of(&alloc, ctx), alloc.stats().generation);
        }
    }
    assert!(alloc.stats().generation > 20);
}

#[test]
fn fast_path_is_taken_when_the_context_is_current_and_the_cpu_active() {
    let alloc = allocator(8, 2);
    let (a, b) = (Context::new(), Context::new());
    let _ = switch(&alloc, &a, 0);
    let _ = switch(&alloc, &b, 1);
    let before = alloc.stats();
    // Both IDs are current and both CPUs have a non-zero active slot.
    let probe = alloc.fast_path_load(&b, 0).unwrap();
    assert!(probe.is_eligible());
    assert_eq!(probe.cpu(), 0);
    let done = alloc.fast_path_commit(probe).expect("fast path");
    assert!(!done.needs_flush());
    let _ = switch(&alloc, &a, 1);
    let after = alloc.stats();
    assert_eq!(after.fast_path_hits, before.fast_path_hits + 2);
    assert_eq!(after.slow_path_entries, before.slow_path_entries);
}

#[test]
fn fast_path_declines_a_context_that_never_had_an_id() {
    let alloc = allocator(8, 1);
    let (a, b) = (Context::new(), Context::new());
    let _ = switch(&alloc, &a, 0);
    let probe = alloc.fast_path_load(&b, 0).unwrap();
    assert!(!probe.is_eligible());
    assert_eq!(alloc.fast_path_commit(probe), None);
}

#[test]
fn rollover_between_fast_path_load_and_commit_sends_the_switch_to_the_slow_path() {
    let alloc = allocator(3, 2);
    let a = Context::new();
    let a_id = switch(&alloc, &a, 0).id();
    // CPU0 probes `a` again; before it commits, CPU1 rolls over.
    let probe = alloc.fast_path_load(&a, 0).unwrap();
    assert!(probe.is_eligible());
    let _others = force_rollover(&alloc, 1);
    assert_eq!(alloc.fast_path_commit(probe), None, "swap must fail");
    let done = alloc.slow_path(&a, 0).unwrap();
    // `a` kept running on CPU0 through the rollover, so it keeps its ID, and
    // CPU0 flushes before the new generation.
    assert_eq!(done.id(), a_id);
    assert!(done.needs_flush());
}

#[test]
fn fast_path_commit_before_a_rollover_is_reserved_by_it() {
    let alloc = allocator(3, 2);
    let (a, b) = (Context::new(), Context::new());
    let _ = switch(&alloc, &a, 0);
    let b_id = switch(&alloc, &b, 1).id();
    // CPU0 moves to `b` on the fast path; then CPU1 rolls over.
    let probe = alloc.fast_path_load(&b, 0).unwrap();
    assert!(alloc.fast_path_commit(probe).is_some());
    let others = force_rollover(&alloc, 1);
    // No context of the new generation got `b`'s ID, and `b` keeps it.
    for ctx in &others {
        if generation_of(&alloc, ctx) == alloc.stats().generation {
            assert_ne!(switch(&alloc, ctx, 1).id(), b_id);
        }
    }
    assert_eq!(switch(&alloc, &b, 0).id(), b_id);
}

#[test]
fn rollover_marks_every_cpu_flush_pending_and_each_flushes_exactly_once() {
    let alloc = allocator(4, 4);
    let ctxs = contexts(4);
    for (cpu, ctx) in ctxs.iter().enumerate() {
        let _ = switch(&alloc, ctx, cpu);
    }
    assert!(alloc.snapshot().flush_pending.iter().all(|p| !p));
    let flushes = alloc.stats().flushes_requested;
    let others = force_rollover(&alloc, 0);
    let snap = alloc.snapshot();
    assert!(snap.flush_pending[1..].iter().all(|&p| p));
    assert!(snap.active[1..].iter().all(|&a| a == 0));
    // CPU0 caused the rollover and flushed in that very switch.
    assert!(!snap.flush_pending[0]);
    for _ in 0..3 {
        for (cpu, ctx) in ctxs.iter().enumerate().skip(1) {
            let _ = switch(&alloc, ctx, cpu);
        }
        let _ = switch(&alloc, others.last().unwrap(), 0);
    }
    assert_eq!(alloc.stats().flushes_requested, flushes + 4);
    assert_eq!(alloc.stats().rollovers, 1);
}

#[test]
fn several_rollovers_without_a_switch_cost_a_cpu_one_flush() {
    let alloc = allocator(3, 2);
    let idle = Context::new();
    let _ = switch(&alloc, &idle, 1);
    let _ = switch(&alloc, &idle, 0);
    let before = alloc.stats().flushes_requested;
    let _keep: Vec<_> = (0..3).map(|_| force_rollover(&alloc, 0)).collect();
    let cpu0_flushes = alloc.stats().flushes_requested - before;
    assert_eq!(cpu0_flushes, 3, "CPU0 flushed once per rollover it caused");
    assert!(switch(&alloc, &idle, 1).needs_flush());
    assert!(!switch(&alloc, &idle, 1).needs_flush());
}

#[test]
fn running_contexts_keep_their_id_across_rollovers() {
    let alloc = allocator(3, 3);
    let (a, b) = (Context::new(), Context::new());
    let a_id = switch(&alloc, &a, 0).id();
    let b_id = switch(&alloc, &b, 1).id();
    for _ in 0..5 {
        let others = force_rollover(&alloc, 2);
        for ctx in &others {
            let id = switch(&alloc, ctx, 2).id();
            assert_ne!(id, a_id);
            assert_ne!(id, b_id);
        }
    }
    // Both switch back in with their old IDs (and one flush each).
    let a_again = switch(&alloc, &a, 1);
    assert_eq!(a_again.id(), a_id);
    assert!(a_again.needs_flush());
    assert_eq!(switch(&alloc, &b, 0).id(), b_id);
}

#[test]
fn every_reserved_copy_moves_to_the_new_generation() {
    let alloc = allocator(3, 3);
    let (x, y) = (Context::new(), Context::new());
    // `x` runs on CPUs 0 and 1, so both reserve it at the first rollover.
    let x_id = switch(&alloc, &x, 0).id();
    assert_eq!(switch(&alloc, &x, 1).id(), x_id);
    let _first = force_rollover(&alloc, 2);
    // `x` renews its ID on CPU2: both copies must move to generation 2.
    assert_eq!(switch(&alloc, &x, 2).id(), x_id);
    // CPU0 moves on; CPU1 still runs `x` through a second rollover. Only
    // CPU1's copy now remembers `x`, and it must match generation 2.
    let _ = switch(&alloc, &y, 0);
    let _second = force_rollover(&alloc, 2);
    assert_eq!(switch(&alloc, &x, 2).id(), x_id);
}

#[test]
fn deactivated_contexts_do_not_keep_their_id_across_a_rollover() {
    // 2-bit IDs: 1, 2 and 3. `a` gets 1 on CPU0, CPU1 uses 2 and 3, and the
    // next context on CPU1 forces a rollover.
    let run = |deactivate: bool| {
        let alloc = allocator(2, 2);
        let a = Context::new();
        assert_eq!(switch(&alloc, &a, 0).id(), Vmid::new(1));
        if deactivate {
            alloc.deactivate(0).unwrap();
        }
        let fresh = contexts(3);
        assert_eq!(switch(&alloc, &fresh[0], 1).id(), Vmid::new(2));
        assert_eq!(switch(&alloc, &fresh[1], 1).id(), Vmid::new(3));
        let next = switch(&alloc, &fresh[2], 1).id();
        assert_eq!(alloc.stats().rollovers, 1);
        next
    };
    // Still running: ID 1 is reserved for `a`, so the newcomer gets 2.
    assert_eq!(run(false), Vmid::new(2));
    // Deactivated: CPU0's sentinel reserves only ID 0, so 1 is free again.
    assert_eq!(run(true), Vmid::new(1));
}

#[test]
fn deactivated_cpu_takes_the_fast_path_on_its_next_switch() {
    let alloc = allocator(8, 1);
    let a = Context::new();
    let a_id = switch(&alloc, &a, 0).id();
    alloc.deactivate(0).unwrap();
    assert_eq!(alloc.snapshot().active[0], 1 << 8, "sentinel");
    let hits = alloc.stats().fast_path_hits;
    let again = switch(&alloc, &a, 0);
    assert_eq!(again.id(), a_id);
    assert!(!again.needs_flush());
    assert_eq!(alloc.stats().fast_path_hits, hits + 1);
}

#[test]
fn deactivate_after_a_rollover_keeps_the_pending_flush() {
    let alloc = allocator(3, 2);
    let a = Context::new();
    let _ = switch(&alloc, &a, 0);
    let others = force_rollover(&alloc, 1);
    // CPU0 deschedules after the rollover zeroed its slot; the zero must
    // survive, or the next switch would take the fast path and skip the
    // flush of the previous generation's entries.
    alloc.deactivate(0).unwrap();
    assert_eq!(alloc.snapshot().active[0], 0);
    let current = others.last().unwrap();
    let probe = alloc.fast_path_load(current, 0).unwrap();
    assert!(!probe.is_eligible());
    assert!(switch(&alloc, current, 0).needs_flush());
}

#[test]
fn pinned_context_keeps_its_id_across_many_rollovers() {
    let alloc = allocator(3, 2);
    let pinned = Context::new();
    let id = alloc.pin(&pinned).unwrap();
    assert_ne!(id.get(), 0);
    for _ in 0..20 {
        for ctx in force_rollover(&alloc, 0) {
            assert_ne!(switch(&alloc, &ctx, 1).id(), id);
        }
    }
    assert!(alloc.stats().rollovers >= 20);
    assert_eq!(switch(&alloc, &pinned, 1).id(), id);
    assert_eq!(
        alloc.pin(&pinned).unwrap(),
        id,
        "refcount pin returns the ID"
    );
}

#[test]
fn pin_moves_a_stale_context_into_the_current_generation() {
    let alloc = allocator(3, 1);
    let ctx = Context::new();
    let _ = switch(&alloc, &ctx, 0);
    let _others = force_rollover(&alloc, 0);
    let _more = force_rollover(&alloc, 0);
    assert!(generation_of(&alloc, &ctx) < alloc.stats().generation);
    let id = alloc.pin(&ctx).unwrap();
    assert_eq!(generation_of(&alloc, &ctx), alloc.stats().generation);
    assert_eq!(ctx.snapshot().id & 7, u64::from(id.get()));
    assert_eq!(alloc.snapshot().pinned[0], 1 << id.get());
}

#[test]
fn pin_limit_is_exactly_two_with_three_bits_and_four_cpus() {
    let alloc = allocator(3, 4);
    assert_eq!(alloc.max_pinned(), 2);
    let ctxs = contexts(3);
    alloc.pin(&ctxs[0]).unwrap();
    alloc.pin(&ctxs[1]).unwrap();
    assert_eq!(
        alloc.pin(&ctxs[2]).unwrap_err(),
        AllocError::PinLimit { limit: 2 }
    );
    assert_eq!(ctxs[2].pin_count(), 0);
    // Another pin of an already pinned context takes no new slot.
    alloc.pin(&ctxs[0]).unwrap();
    alloc.unpin(&ctxs[1]).unwrap();
    alloc.pin(&ctxs[2]).unwrap();
    assert_eq!(alloc.stats().pinned, 2);
}

#[test]
fn pin_limit_leaves_a_free_id_for_rollovers_with_every_cpu_busy() {
    let alloc = allocator(3, 4);
    let pinned = contexts(2);
    for ctx in &pinned {
        alloc.pin(ctx).unwrap();
    }
    // Each CPU runs a distinct context, and CPU0 then keeps allocating.
    let running = contexts(4);
    for (cpu, ctx) in running.iter().enumerate() {
        let _ = switch(&alloc, ctx, cpu);
    }
    for _ in 0..5 {
        let _ = force_rollover(&alloc, 0);
    }
    assert!(alloc.stats().rollovers >= 5);
}

#[test]
fn unpin_of_an_unpinned_context_is_an_error() {
    let alloc = allocator(8, 1);
    let ctx = Context::new();
    assert_eq!(alloc.unpin(&ctx).unwrap_err(), AllocError::NotPinned);
    alloc.pin(&ctx).unwrap();
    alloc.unpin(&ctx).unwrap();
    assert_eq!(alloc.unpin(&ctx).unwrap_err(), AllocError::NotPinned);
    assert_eq!(alloc.stats().pinned, 0);
}

#[test]
fn pins_are_refcounted() {
    let alloc = allocator(8, 1);
    let ctx = Context::new();
    let id = alloc.pin(&ctx).unwrap();
    assert_eq!(alloc.pin(&ctx).unwrap(), id);
    assert_eq!(ctx.pin_count(), 2);
    assert_eq!(alloc.stats().pinned, 1);
    alloc.unpin(&ctx).unwrap();
    assert_eq!(ctx.pin_count(), 1);
    assert_eq!(alloc.stats().pinned, 1);
    alloc.unpin(&ctx).unwrap();
    assert_eq!(ctx.pin_count(), 0);
    assert_eq!(alloc.stats().pinned, 0);
    assert_eq!(alloc.snapshot().pinned, [0; 4]);
}

#[test]
fn pin_count_overflow_is_an_error() {
    let alloc = allocator(8, 1);
    let ctx = Context::new();
    alloc.pin(&ctx).unwrap();
    let ctx = Context::<Vmid>::from_snapshot(ContextSnapshot {
        pins: u32::MAX,
        ..ctx.snapshot()
    });
    assert_eq!(alloc.pin(&ctx).unwrap_err(), AllocError::PinCountOverflow);
    assert_eq!(ctx.pin_count(), u32::MAX);
}

/// The seed's v1 -> v2 note, step by step, with the seed's CPU1 and CPU2 as
/// our CPUs 0 and 1. Returns the IDs `t1` runs with on each CPU at the end.
fn seed_v1_scenario(order: NewIdOrder) -> (Vmid, Vmid) {
    let alloc = allocator_with_order(3, 2, order);
    let t1 = Context::new();
    // 1. t1 runs with (gen 1, ID 1) on CPU1 all along; it is pinned.
    let on_cpu1 = switch(&alloc, &t1, 0).id();
    assert_eq!(on_cpu1, Vmid::new(1));
    assert_eq!(alloc.pin(&t1).unwrap(), on_cpu1);
    // 2. CPU2 triggers a rollover; t1 keeps its ID (reserved on CPU1).
    let _others = force_rollover(&alloc, 1);
    assert_eq!(generation_of(&alloc, &t1), 1);
    // 3. t1 is scheduled on CPU2 and gets (gen 2, ID 1). v1 takes the pinned
    //    shortcut and leaves CPU1's reserved copy at (gen 1, ID 1).
    assert_eq!(switch(&alloc, &t1, 1).id(), on_cpu1);
    assert_eq!(generation_of(&alloc, &t1), 2);
    // 4. t1 is unpinned. Another rollover. t1 is scheduled on CPU2 again.
    alloc.unpin(&t1).unwrap();
    let _more = force_rollover(&alloc, 1);
    assert_eq!(alloc.stats().generation, 3);
    let on_cpu2 = switch(&alloc, &t1, 1).id();
    (on_cpu1, on_cpu2)
}

#[test]
fn v1_order_gives_a_running_context_a_second_id() {
    let (on_cpu1, on_cpu2) = seed_v1_scenario(NewIdOrder::V1PinnedFirst);
    assert_ne!(on_cpu1, on_cpu2, "the v1 bug should reproduce");
}

#[test]
fn fixed_order_keeps_a_running_pinned_context_on_one_id() {
    let (on_cpu1, on_cpu2) = seed_v1_scenario(NewIdOrder::Fixed);
    assert_eq!(on_cpu1, on_cpu2);
}

#[test]
fn flush_with_flushes_only_when_told_to() {
    struct CountingTlb(u32);
    impl LocalTlbFlush<Asid> for CountingTlb {
        fn flush_local_all(&mut self) {
            self.0 += 1;
        }
    }
    let alloc = IdAllocator::<Asid>::new(16, 1).unwrap();
    let ctx = Context::new();
    let mut tlb = CountingTlb(0);
    let id = alloc.switch(&ctx, 0).unwrap().flush_with(&mut tlb);
    assert_eq!(id, Asid::new(1));
    assert_eq!(tlb.0, 1);
    let _ = alloc.switch(&ctx, 0).unwrap().flush_with(&mut tlb);
    assert_eq!(tlb.0, 1);
}

#[test]
fn stats_count_and_print() {
    let alloc = allocator(3, 2);
    let pinned = Context::new();
    alloc.pin(&pinned).unwrap();
    let _others = force_rollover(&alloc, 0);
    let stats = alloc.stats();
    assert_eq!(stats.generation, 2);
    assert_eq!(stats.rollovers, 1);
    assert_eq!(stats.pinned, 1);
    assert_eq!(stats.max_pinned, 4);
    assert_eq!(stats.ids_total, 7);
    // After the rollover: the pinned ID, CPU0's reserved ID and the new one.
    assert_eq!(stats.ids_in_use, 3);
    assert_eq!(stats.new_ids, 8);
    assert_eq!(stats.slow_path_entries, 7);
    assert_eq!(stats.flushes_requested, 2);
    assert_eq!(
        format!("{stats}"),
        "VMID allocator (3 bits, 2 CPUs): generation 2 after 1 rollovers; \
         3/7 IDs in use, 1/4 pinned; 2 local flushes requested; \
         0 fast-path and 7 slow-path switches, 8 new IDs"
    );
}

#[test]
fn fork_copies_the_state_and_then_diverges() {
    let alloc = allocator(3, 2);
    let ctx = Context::new();
    let _ = switch(&alloc, &ctx, 0);
    alloc.deactivate(1).unwrap();
    let fork = alloc.fork();
    assert_eq!(fork.snapshot(), alloc.snapshot());
    let ctx_fork = Context::<Vmid>::from_snapshot(ctx.snapshot());
    let _others = force_rollover(&fork, 1);
    assert_ne!(fork.snapshot(), alloc.snapshot());
    assert_eq!(alloc.stats().rollovers, 0);
    assert!(switch(&fork, &ctx_fork, 0).needs_flush());
    assert_eq!(ctx.snapshot().id, 1 << 3 | 1);
}

#[test]
fn allocators_of_both_kinds_run_the_same_algorithm() {
    let vmids = allocator(2, 1);
    let asids = IdAllocator::<Asid>::new(2, 1).unwrap();
    let (vms, tasks) = (
        contexts(4),
        (0..4).map(|_| Context::new()).collect::<Vec<_>>(),
    );
    for (vm, task) in vms.iter().zip(&tasks) {
        let vmid = switch(&vmids, vm, 0).id();
        let asid = asids.switch(task, 0).unwrap().id();
        assert_eq!(vmid.get(), asid.get());
    }
    assert_eq!(vmids.snapshot(), asids.snapshot());
    assert_eq!(format!("{:?}", asids.stats().kind), "\"ASID\"");
}

#[test]
fn a_forced_rollover_keeps_active_and_pinned_ids_and_flushes_every_cpu_once() {
    let alloc = allocator(4, 4);
    let ctxs = contexts(3);
    let running = switch(&alloc, &ctxs[0], 0);
    let pinned = alloc.pin(&ctxs[1]).unwrap();
    let _ = switch(&alloc, &ctxs[2], 1);
    let _ = alloc.deactivate(1);
    let flushes = alloc.stats().flushes_requested;
    alloc.force_rollover();
    assert_eq!(alloc.stats().rollovers, 1);
    assert!(alloc.snapshot().flush_pending.iter().all(|&p| p));
    // Active and pinned contexts keep their IDs in the new generation.
    let again = alloc.switch(&ctxs[0], 0).unwrap();
    assert_eq!(again.id(), running.id());
    assert!(again.needs_flush());
    assert_eq!(alloc.switch(&ctxs[1], 2).unwrap().id(), pinned);
    // A second switch on the same CPU needs no more flushing.
    assert!(!alloc.switch(&ctxs[0], 0).unwrap().needs_flush());
    // Within the new generation, no two contexts share an ID.
    let fresh = contexts(5);
    let mut seen = std::collections::BTreeSet::new();
    for ctx in fresh.iter().chain(ctxs.iter()) {
        assert!(seen.insert(alloc.switch(ctx, 3).unwrap().id()));
    }
    assert_eq!(alloc.stats().rollovers, 1);
    assert_eq!(alloc.stats().flushes_requested, flushes + 3);
}

#[test]
fn generation_counts_rollovers_from_one() {
    let alloc = allocator(3, 2);
    assert_eq!(alloc.generation(), 1);
    let _others = force_rollover(&alloc, 0);
    assert_eq!(alloc.generation(), 2);
    alloc.force_rollover();
    assert_eq!(alloc.generation(), 3);
    assert_eq!(alloc.generation(), alloc.stats().generation);
}

#[test]
fn owned_id_of_a_context_that_never_ran_is_none() {
    let alloc = allocator(3, 2);
    assert_eq!(alloc.owned_id(&Context::new()), None);
}

#[test]
fn owned_id_is_lost_in_a_rollover_unless_running_or_pinned() {
    let alloc = allocator(3, 4);
    let ctxs = contexts(3);
    // `idle` ran and was put; `running` stays on CPU1; `pinned` is pinned
    // and never ran.
    let idle = switch(&alloc, &ctxs[0], 0).id();
    alloc.deactivate(0).unwrap();
    let running = switch(&alloc, &ctxs[1], 1).id();
    let pinned = alloc.pin(&ctxs[2]).unwrap();
    assert_eq!(alloc.owned_id(&ctxs[0]), Some(idle));
    assert_eq!(alloc.owned_id(&ctxs[1]), Some(running));
    assert_eq!(alloc.owned_id(&ctxs[2]), Some(pinned));
    alloc.force_rollover();
    assert_eq!(
        alloc.owned_id(&ctxs[0]),
        None,
        "stale and neither running nor pinned"
    );
    assert_eq!(alloc.owned_id(&ctxs[1]), Some(running), "reserved by CPU1");
    assert_eq!(alloc.owned_id(&ctxs[2]), Some(pinned), "pinned");
    // Still true after more rollovers while nothing switches.
    alloc.force_rollover();
    assert_eq!(alloc.owned_id(&ctxs[1]), Some(running));
    assert_eq!(alloc.owned_id(&ctxs[2]), Some(pinned));
    // Unpinned, its ID (of an older generation by now) is no longer its
    // own: its next switch would get a new one.
    alloc.unpin(&ctxs[2]).unwrap();
    assert_eq!(alloc.owned_id(&ctxs[2]), None);
    // A switch gives the idle one an ID of the current generation again.
    let again = switch(&alloc, &ctxs[0], 2).id();
    assert_eq!(alloc.owned_id(&ctxs[0]), Some(again));
}

#[test]
fn an_unpinned_device_id_can_go_to_another_context_after_a_rollover() {
    // What the hypervisor's SMMU self-check looks for: a context pinned
    // and unpinned at once (an ID taken for a device without pinning) loses
    // its ID in a rollover, and a newcomer may be given the very same one.
    let alloc = allocator(3, 4);
    let device_owner = Context::new();
    let id = alloc.pin(&device_owner).unwrap();
    alloc.unpin(&device_owner).unwrap();
    alloc.force_rollover();
    assert_eq!(alloc.owned_id(&device_owner), None);
    let newcomer = Context::new();
    assert_eq!(switch(&alloc, &newcomer, 0).id(), id);
}
