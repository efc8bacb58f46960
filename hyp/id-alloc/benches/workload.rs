//! The allocator against two baselines on the same workload: many contexts
//! (VMs) scheduled over a few CPUs, one switch per scheduling decision.
//!
//! Schemes (the baselines are in `benches/baselines/`, written for this
//! benchmark only):
//! - `generation`: this crate's generation-plus-pinning allocator;
//! - `global_flush_on_wrap`: pre-generation KVM/arm, a counter that on wrap
//!   kicks every CPU out of its guest and flushes every TLB;
//! - `locked_bitmap`: Xen-style, one ID per context for its lifetime, so a
//!   context beyond the ID space is refused.
//!
//! Workloads: CPUs take turns (round robin); each picks a context at random
//! (a fixed xorshift seed, so every scheme sees the same sequence).
//! - `fits-8bit`: 128 contexts, 4 CPUs, 8-bit IDs: every scheme can keep an
//!   ID per context; the steady state is all fast paths.
//! - `oversubscribed-8bit`: 510 contexts (twice the IDs), 4 CPUs, 8-bit IDs:
//!   IDs must be recycled, so rollovers (or wraps) happen all the time; the
//!   locked bitmap refuses half the contexts and cannot run it. Uniform
//!   picks make this the worst case: most switches find their context's ID
//!   stale.
//! - `oversubscribed-hot-8bit`: the same with locality: 90% of the picks go
//!   to 64 hot contexts, the rest to any of the 510.
//! - `oversubscribed-16bit`: 131070 contexts (twice the IDs), 16 CPUs,
//!   16-bit IDs.
//!
//! Two things are reported. Before the timings, a table of what each scheme
//! asks of the hardware over a fixed window of switches after a warm-up: lock
//! acquisitions, IDs handed out, rollovers, local and broadcast TLB flushes,
//! IPIs (forced guest exits), and all flushes expressed as per-CPU TLB
//! invalidations. On real hardware those costs (a TLB refilled from page-table
//! walks, a guest kicked out) dwarf the nanoseconds below. Then criterion's
//! time per switch in the steady state (including the amortised rollovers
//! and the schedule's own couple of nanoseconds). As in `operations`, every
//! CPU is simulated from one thread: no cache-line transfers, no contention.
//!
//! Run with `cargo bench -p id-alloc --bench workload`.

mod baselines;

use std::hint::black_box;
use std::time::Duration;

use baselines::{Costs, GlobalFlushOnWrap, GlobalFlushOnWrapCtx, LockedBitmap, LockedBitmapCtx};
use criterion::Criterion;
use id_alloc::{Context, Vmid, VmidAllocator};

/// One workload: `contexts` contexts on `cpus` CPUs with `bits`-bit IDs.
#[derive(Clone, Copy, Debug)]
struct Workload {
    name: &'static str,
    bits: u32,
    contexts: usize,
    cpus: usize,
    /// If non-zero, `hot_percent`% of the picks go to the first `hot`
    /// contexts and the rest to all of them; otherwise every pick is uniform.
    hot: usize,
    hot_percent: u64,
    /// Switches over which the costs are counted.
    counted: u64,
}

impl Workload {
    /// Switches run before counting or timing: enough for every context to
    /// have been scheduled several times.
    fn warm_up(&self) -> u64 {
        16 * self.contexts as u64
    }
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "fits-8bit",
        bits: 8,
        contexts: 128,
        cpus: 4,
        hot: 0,
        hot_percent: 0,
        counted: 100_000,
    },
    Workload {
        name: "oversubscribed-8bit",
        bits: 8,
        contexts: 510,
        cpus: 4,
        hot: 0,
        hot_percent: 0,
        counted: 100_000,
    },
    Workload {
        name: "oversubscribed-hot-8bit",
        bits: 8,
        contexts: 510,
        cpus: 4,
        hot: 64,
        hot_percent: 90,
        counted: 100_000,
    },
    Workload {
        name: "oversubscribed-16bit",
        bits: 16,
        contexts: 131_070,
        cpus: 16,
        hot: 0,
        hot_percent: 0,
        counted: 1_000_000,
    },
];

/// The scheduling decisions: CPUs in turn, contexts at random (uniformly,
/// or mostly from a hot set).
#[derive(Debug)]
struct Schedule {
    rng: u64,
    step: u64,
    contexts: u64,
    cpus: u64,
    hot: u64,
    hot_percent: u64,
}

impl Schedule {
    fn new(w: &Workload) -> Self {
        Self {
            rng: 0x9e37_79b9_7f4a_7c15,
            step: 0,
            contexts: w.contexts as u64,
            cpus: w.cpus as u64,
            hot: w.hot as u64,
            hot_percent: w.hot_percent,
        }
    }

    /// The next (context, CPU) to switch.
    #[inline]
    fn next(&mut self) -> (usize, usize) {
        let cpu = self.step % self.cpus;
        self.step += 1;
        // xorshift64, then multiply-shifts: the high half picks the
        // context, the low half whether the pick is from the hot set.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        let hot = ((x & 0xffff_ffff) * 100) >> 32 < self.hot_percent;
        let range = if hot { self.hot } else { self.contexts };
        let ctx = ((x >> 32) * range) >> 32;
        (ctx as usize, cpu as usize)
    }
}

/// One allocation scheme with the workload's contexts.
trait Scheme: Sized {
    const NAME: &'static str;

    fn build(w: &Workload) -> Self;

    /// Switches to context `ctx` on `cpu`; returns the hardware ID.
    fn switch(&mut self, ctx: usize, cpu: usize) -> u16;

    /// What the scheme has asked of the hardware so far.
    fn costs(&self) -> Costs;

    /// Runs `steps` switches of `schedule`.
    fn run(&mut self, schedule: &mut Schedule, steps: u64) {
        for _ in 0..steps {
            let (ctx, cpu) = schedule.next();
            black_box(self.switch(ctx, cpu));
        }
    }
}

#[derive(Debug)]
struct Generation {
    alloc: VmidAllocator,
    contexts: Vec<Context<Vmid>>,
}

impl Scheme for Generation {
    const NAME: &'static str = "generation";

    fn build(w: &Workload) -> Self {
        Self {
            alloc: VmidAllocator::new(w.bits, w.cpus).expect("valid width and CPU count"),
            contexts: (0..w.contexts).map(|_| Context::new()).collect(),
        }
    }

    #[inline]
    fn switch(&mut self, ctx: usize, cpu: usize) -> u16 {
        // The caller would flush its local TLB if `needs_flush()`; the
        // allocator counts those requests itself.
        let switch = self
            .alloc
            .switch(&self.contexts[ctx], cpu)
            .expect("valid CPU");
        switch.id().get()
    }

    fn costs(&self) -> Costs {
        let stats = self.alloc.stats();
        Costs {
            slow_paths: stats.slow_path_entries,
            new_ids: stats.new_ids,
            rollovers: stats.rollovers,
            local_flushes: stats.flushes_requested,
            ..Costs::default()
        }
    }
}

#[derive(Debug)]
struct GlobalFlush {
    alloc: GlobalFlushOnWrap,
    contexts: Vec<GlobalFlushOnWrapCtx>,
}

impl Scheme for GlobalFlush {
    const NAME: &'static str = "global_flush_on_wrap";

    fn build(w: &Workload) -> Self {
        Self {
            alloc: GlobalFlushOnWrap::new(w.bits, w.cpus),
            contexts: (0..w.contexts)
                .map(|_| GlobalFlushOnWrapCtx::default())
                .collect(),
        }
    }

    #[inline]
    fn switch(&mut self, ctx: usize, cpu: usize) -> u16 {
        self.alloc.switch(&self.contexts[ctx], cpu)
    }

    fn costs(&self) -> Costs {
        self.alloc.costs()
    }
}

#[derive(Debug)]
struct Locked {
    alloc: LockedBitmap,
    /// The contexts that got an ID; the workload runs only if all did.
    contexts: Vec<LockedBitmapCtx>,
}

impl Scheme for Locked {
    const NAME: &'static str = "locked_bitmap";

    fn build(w: &Workload) -> Self {
        let alloc = LockedBitmap::new(w.bits);
        let contexts = (0..w.contexts).filter_map(|_| alloc.create()).collect();
        Self { alloc, contexts }
    }

    #[inline]
    fn switch(&mut self, ctx: usize, cpu: usize) -> u16 {
        self.alloc.switch(&self.contexts[ctx], cpu)
    }

    fn costs(&self) -> Costs {
        self.alloc.costs()
    }
}

/// A scheme built and warmed up for `w`, with its schedule; `Err` with the
/// number of refused contexts if the scheme cannot run the workload.
fn ready<S: Scheme>(w: &Workload) -> Result<(S, Schedule), u64> {
    let mut scheme = S::build(w);
    let refused = scheme.costs().refused;
    if refused > 0 {
        return Err(refused);
    }
    let mut schedule = Schedule::new(w);
    scheme.run(&mut schedule, w.warm_up());
    Ok((scheme, schedule))
}

/// Counts one scheme's costs over `w.counted` switches and prints a row.
fn print_costs<S: Scheme>(w: &Workload) {
    match ready::<S>(w) {
        Err(refused) => println!(
            "  {:<22} refused {refused} of {} contexts: cannot run this workload",
            S::NAME,
            w.contexts
        ),
        Ok((mut scheme, mut schedule)) => {
            let before = scheme.costs();
            scheme.run(&mut schedule, w.counted);
            let c = scheme.costs().since(&before);
            let per_cpu_invalidations = c.local_flushes + c.broadcast_flushes * w.cpus as u64;
            println!(
                "  {:<22} {:>10} {:>10} {:>9} {:>10} {:>10} {:>8} {:>14}",
                S::NAME,
                c.slow_paths,
                c.new_ids,
                c.rollovers,
                c.local_flushes,
                c.broadcast_flushes,
                c.ipis,
                per_cpu_invalidations
            );
        }
    }
}

fn print_cost_tables() {
    for w in WORKLOADS {
        println!(
            "\nworkload {}: {} contexts on {} CPUs, {}-bit IDs; costs over {} switches \
             after {} warm-up switches",
            w.name,
            w.contexts,
            w.cpus,
            w.bits,
            w.counted,
            w.warm_up()
        );
        println!(
            "  {:<22} {:>10} {:>10} {:>9} {:>10} {:>10} {:>8} {:>14}",
            "scheme",
            "locked",
            "new IDs",
            "rollovers",
            "local TLBI",
            "bcast TLBI",
            "IPIs",
            "CPU-TLB flushes"
        );
        print_costs::<Generation>(w);
        print_costs::<GlobalFlush>(w);
        print_costs::<Locked>(w);
    }
    println!(
        "\n(locked: switches that took the allocator lock; CPU-TLB flushes: local \
         flushes plus broadcast ones times the CPU count)\n"
    );
}

fn bench_scheme<S: Scheme>(c: &mut Criterion, w: &Workload) {
    // A scheme that cannot run the workload was reported in the cost table.
    if let Ok((mut scheme, mut schedule)) = ready::<S>(w) {
        c.benchmark_group(format!("workload/{}", w.name))
            .bench_function(S::NAME, |bench| {
                bench.iter(|| {
                    let (ctx, cpu) = schedule.next();
                    scheme.switch(ctx, cpu)
                })
            });
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
        .configure_from_args();
    print_cost_tables();
    for w in WORKLOADS {
        bench_scheme::<Generation>(&mut criterion, w);
        bench_scheme::<GlobalFlush>(&mut criterion, w);
        bench_scheme::<Locked>(&mut criterion, w);
    }
    criterion.final_summary();
}
