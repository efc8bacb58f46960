//! `loom` check of the lock-free fast path racing a rollover.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p id-alloc --test loom --release`.
//!
//! Two CPU threads switch between contexts whose IDs are current, so they try
//! the fast path, while a third thread pins a fresh context with the ID space
//! full, which rolls over. Loom explores the interleavings (bounded to two
//! preemptions) of every atomic and lock operation, including a rollover
//! landing between a fast path's load and its compare-and-swap, and checks:
//! no two CPUs run different contexts with the same ID, no CPU runs with the
//! pinned ID for another context, a CPU never reuses an ID over another
//! context's TLB entries without being told to flush, and after the rollover
//! every CPU is told to flush exactly once.
#![cfg(loom)]

use std::collections::HashMap;

use id_alloc::{Context, IdAllocator, Switch, Vmid};
use loom::sync::atomic::{AtomicU32, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

const BITS: u32 = 3;
const CPUS: usize = 2;
/// Contexts: 0..=2 are switched by the CPU threads, 3..=6 fill the ID space
/// during setup, 7 is the one the third thread pins.
const NR_CTXS: usize = 8;
const PINNED: usize = 7;

/// Ghost state shared by the threads: what each CPU runs and what is pinned,
/// as `ctx << 16 | id`, 0 for nothing.
struct World {
    alloc: IdAllocator<Vmid>,
    ctxs: Vec<Context<Vmid>>,
    running: [AtomicU32; CPUS],
    pinned: AtomicU32,
}

fn encode(ctx: usize, id: Vmid) -> u32 {
    (ctx as u32) << 16 | u32::from(id.get())
}

/// One CPU's ghost TLB: which context used each ID since the last flush.
#[derive(Clone, Default)]
struct Tlb {
    entries: HashMap<u16, usize>,
    flushes: u32,
}

impl World {
    /// `cpu` switches to `ctx` and books it in the ghost state, checking the
    /// promises on the way.
    fn switch(&self, cpu: usize, ctx: usize, tlb: &mut Tlb) {
        // Stop claiming the previous context before leaving it, so the
        // ghost state never says a CPU runs something it has left.
        self.running[cpu].store(0, SeqCst);
        let done: Switch<Vmid> = self.alloc.switch(&self.ctxs[ctx], cpu).unwrap();
        let id = done.id();
        assert_ne!(id.get(), 0);
        assert!(u32::from(id.get()) < 1 << BITS);
        if done.needs_flush() {
            tlb.entries.clear();
            tlb.flushes += 1;
        }
        if let Some(&other) = tlb.entries.get(&id.get()) {
            assert_eq!(other, ctx, "CPU{cpu}: {id} reused without a flush");
        }
        tlb.entries.insert(id.get(), ctx);
        let me = encode(ctx, id);
        self.running[cpu].store(me, SeqCst);
        // Anything another CPU claims now it really runs now, and so do we.
        for (other_cpu, slot) in self.running.iter().enumerate() {
            let other = slot.load(SeqCst);
            if other_cpu != cpu && other != 0 {
                assert!(
                    other == me || other & 0xffff != me & 0xffff,
                    "CPU{cpu} and CPU{other_cpu} run different contexts with {id}"
                );
            }
        }
        let pinned = self.pinned.load(SeqCst);
        assert!(
            pinned == 0 || pinned == me || pinned & 0xffff != me & 0xffff,
            "CPU{cpu} runs context {ctx} with the pinned {id}"
        );
    }
}

#[test]
fn fast_path_races_a_rollover() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let world = Arc::new(World {
            alloc: IdAllocator::new(BITS, CPUS).unwrap(),
            ctxs: (0..NR_CTXS).map(|_| Context::new()).collect(),
            running: [AtomicU32::new(0), AtomicU32::new(0)],
            pinned: AtomicU32::new(0),
        });
        // Setup, before any concurrency: CPU0 runs context 0 and CPU1
        // context 1, context 2 has an ID too, and contexts 3..=6 take the
        // rest of the 7 IDs, so the next new ID rolls over.
        let mut tlbs = vec![Tlb::default(); CPUS];
        world.switch(0, 0, &mut tlbs[0]);
        world.switch(1, 1, &mut tlbs[1]);
        for ctx in 2..PINNED {
            world.switch(0, ctx, &mut tlbs[0]);
        }
        world.switch(0, 0, &mut tlbs[0]);
        assert_eq!(world.alloc.stats().ids_in_use, 7);
        for tlb in &mut tlbs {
            tlb.flushes = 0;
        }

        let cpu_thread = |cpu: usize, plan: [usize; 2], mut tlb: Tlb| {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                for ctx in plan {
                    world.switch(cpu, ctx, &mut tlb);
                }
                tlb
            })
        };
        let cpu0 = cpu_thread(0, [2, 0], tlbs[0].clone());
        let cpu1 = cpu_thread(1, [0, 1], tlbs[1].clone());
        let roller = {
            let world = Arc::clone(&world);
            thread::spawn(move || {
                let id = world.alloc.pin(&world.ctxs[PINNED]).unwrap();
                world.pinned.store(encode(PINNED, id), SeqCst);
            })
        };
        let tlbs = [cpu0.join().unwrap(), cpu1.join().unwrap()];
        roller.join().unwrap();

        let stats = world.alloc.stats();
        assert_eq!(stats.rollovers, 1);
        // Each CPU is told to flush exactly once after the rollover: during
        // the race or, failing that, at its next switch.
        for (cpu, mut tlb) in tlbs.into_iter().enumerate() {
            world.switch(cpu, cpu, &mut tlb);
            assert_eq!(tlb.flushes, 1, "CPU{cpu} flushes");
        }
    });
}
