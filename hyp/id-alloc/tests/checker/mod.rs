//! The exhaustive state-space checker behind `tests/exhaustive.rs` and
//! `examples/check.rs`; the model is described at the top of
//! `tests/exhaustive.rs`.
//!
//! A breadth-first search over states made of a forked [`IdAllocator`] (the
//! real code, behind the `checker` feature), the contexts' snapshots, what
//! each CPU runs or is in the middle of, and a ghost TLB per CPU. Visited
//! states are kept as 128-bit fingerprints, like TLC's 64-bit ones: with `n`
//! states a collision, which could only hide part of the space and never
//! report a false violation, has a probability below `n^2 / 2^129`.

// Each user of this module (the test file, the example) uses a different
// subset of it.
#![allow(dead_code)]

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use id_alloc::{
    AllocError, Context, ContextSnapshot, FastPathProbe, IdAllocator, NewIdOrder, StateSnapshot,
    Switch, Vmid,
};

/// What to explore.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Physical CPUs.
    pub cpus: usize,
    /// Live contexts at any time (a destroyed one is replaced at once).
    pub contexts: usize,
    /// ID width: 3 bits give 7 IDs, so a rollover every few allocations.
    pub bits: u32,
    /// States past this generation are checked but not expanded.
    pub generations: u64,
    /// The most pins held at once, summed over contexts (refcounts
    /// included); a pin the allocator refuses does not count.
    pub pins: u32,
    /// Contexts pinned before the search starts and never touched again
    /// (devices of VMs that never run). Their IDs survive every rollover,
    /// which leaves fewer IDs to the others, so a generation runs out after
    /// a few allocations, as with a narrower ID width; but 2-bit IDs on two
    /// CPUs allow no pin at all.
    pub ballast: u32,
    /// The `new_id` order under test.
    pub order: NewIdOrder,
    /// Which of the flushes the allocator requests the caller performs. Only
    /// the tests that show invariant 4 can fail change it.
    pub caller_flushes: Flushes,
    /// Whether states that differ only by renumbering CPUs or contexts are
    /// explored once (see [`Canon`]).
    pub symmetry: bool,
    /// Depth-first instead of breadth-first: the same states, with memory
    /// for the visited set only instead of a whole BFS level of allocators,
    /// but longer traces.
    pub dfs: bool,
    /// Whether states that differ only in their ghost TLBs' contents are
    /// told apart. Not needed for completeness (see the file's doc, (4)),
    /// and costly: the TLBs record history.
    pub exact_tlb: bool,
}

impl Config {
    /// The seed's bug needs three generations and one pinned context; two
    /// CPUs and three contexts are the fewest that can race and roll over
    /// (with destroyed contexts replaced by fresh ones).
    pub const DEFAULT: Self = Self {
        cpus: 2,
        contexts: 3,
        bits: 3,
        generations: 3,
        pins: 1,
        ballast: 3,
        order: NewIdOrder::Fixed,
        caller_flushes: Flushes::All,
        symmetry: true,
        dfs: false,
        exact_tlb: false,
    };

    /// The default with the fields named by `ID_ALLOC_CHECK_CPUS`,
    /// `_CONTEXTS`, `_BITS`, `_GENERATIONS`, `_PINS`, `_BALLAST`, `_ORDER`
    /// (`fixed` or `v1`), `_SYMMETRY`, `_DFS` and `_EXACT_TLB` (`0` or `1`)
    /// replaced.
    pub fn from_env() -> Result<Self, String> {
        fn var<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
            let key = format!("ID_ALLOC_CHECK_{name}");
            match std::env::var(&key) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("{key}={v}: not a valid value")),
                Err(_) => Ok(default),
            }
        }
        let d = Self::DEFAULT;
        let order = match var("ORDER", String::from("fixed"))?.as_str() {
            "fixed" => NewIdOrder::Fixed,
            "v1" => NewIdOrder::V1PinnedFirst,
            other => return Err(format!("ID_ALLOC_CHECK_ORDER={other}: fixed or v1")),
        };
        let config = Self {
            cpus: var("CPUS", d.cpus)?,
            contexts: var("CONTEXTS", d.contexts)?,
            bits: var("BITS", d.bits)?,
            generations: var("GENERATIONS", d.generations)?,
            pins: var("PINS", d.pins)?,
            ballast: var("BALLAST", d.ballast)?,
            order,
            caller_flushes: Flushes::All,
            symmetry: var::<u8>("SYMMETRY", 1)? != 0,
            dfs: var::<u8>("DFS", 0)? != 0,
            exact_tlb: var::<u8>("EXACT_TLB", 0)? != 0,
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration is one the state encoding can hold.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=6).contains(&self.bits) {
            return Err(format!("bits must be 2..=6, not {}", self.bits));
        }
        if self.cpus == 0 || self.cpus > (1 << self.bits) - 2 {
            return Err(format!(
                "{} CPUs: {}-bit IDs serve 1..={}",
                self.cpus,
                self.bits,
                (1 << self.bits) - 2
            ));
        }
        if self.contexts == 0 || self.contexts > 200 {
            return Err(format!("contexts must be 1..=200, not {}", self.contexts));
        }
        let max_pinned = (1u32 << self.bits) - self.cpus as u32 - 2;
        if self.ballast > max_pinned {
            return Err(format!(
                "{} ballast pins past the limit of {max_pinned}",
                self.ballast
            ));
        }
        if self.generations == 0 {
            return Err("at least one generation".into());
        }
        Ok(())
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPUs, {} contexts, {}-bit IDs, {} generations, {} pins, {} ballast pins, \
             {:?} order{}",
            self.cpus,
            self.contexts,
            self.bits,
            self.generations,
            self.pins,
            self.ballast,
            self.order,
            match self.caller_flushes {
                Flushes::All => "",
                Flushes::BootOnly => ", the caller IGNORES flushes after boot",
                Flushes::None => ", the caller IGNORES flushes",
            }
        )
    }
}

/// Which requested flushes the caller performs: a broken caller, to show
/// that invariant 4 catches what it causes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flushes {
    /// Every one, as the hypervisor does.
    All,
    /// Only a CPU's first (the one before anything runs on it).
    BootOnly,
    /// None.
    None,
}

/// One step: an operation, or the part of one, that other CPUs can observe
/// as a whole. CPU and context numbers are indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `cpu` starts `switch(ctx)` with the fast path's loads; if the probe is
    /// ineligible, the fast path declines and the slow path runs at once.
    /// With `fresh`, `ctx` (neither running, switching nor pinned) is first
    /// destroyed and its slot reused by a context that never had an ID (a
    /// VM torn down and another created): the only way a few contexts use up
    /// the IDs.
    Switch { cpu: u8, ctx: u8, fresh: bool },
    /// `cpu` runs its pending fast path's compare-and-swap; if it fails, the
    /// slow path runs at once.
    Commit { cpu: u8 },
    /// `cpu` stops running its context (vCPU put).
    Deactivate { cpu: u8 },
    /// Some CPU pins `ctx` (device attach); `fresh` as for `Switch`.
    Pin { ctx: u8, fresh: bool },
    /// Some CPU drops a pin of `ctx` (device detach).
    Unpin { ctx: u8 },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fresh = |fresh: bool, ctx: u8| {
            if fresh {
                format!("destroy c{ctx}, create a fresh c{ctx}; ")
            } else {
                String::new()
            }
        };
        match *self {
            Self::Switch {
                cpu,
                ctx,
                fresh: f2,
            } => {
                write!(
                    f,
                    "{}CPU{cpu} switch(c{ctx}): fast-path load",
                    fresh(f2, ctx)
                )
            }
            Self::Commit { cpu } => write!(f, "CPU{cpu} fast-path compare-and-swap"),
            Self::Deactivate { cpu } => write!(f, "CPU{cpu} deactivate"),
            Self::Pin { ctx, fresh: f2 } => write!(f, "{}pin(c{ctx})", fresh(f2, ctx)),
            Self::Unpin { ctx } => write!(f, "unpin(c{ctx})"),
        }
    }
}

/// What a step did, for traces.
#[derive(Clone, Copy, Debug)]
enum Effect {
    /// The probe is eligible: the compare-and-swap is next.
    Probed,
    /// The switch completed; `how` says which way.
    Switched {
        how: &'static str,
        id: u16,
        flush: bool,
    },
    Pinned(u16),
    PinRefused,
    Done,
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Probed => f.write_str("probe eligible, compare-and-swap pending"),
            Self::Switched { how, id, flush } => write!(
                f,
                "{how}: runs with ID {id:#x}{}",
                if flush { " after a flush" } else { "" }
            ),
            Self::Pinned(id) => write!(f, "pinned ID {id:#x}"),
            Self::PinRefused => f.write_str("refused: pin limit"),
            Self::Done => f.write_str("done"),
        }
    }
}

/// Ghost TLB tags: 0 no entry, `1 + ctx` an entry of that live context.
const TLB_EMPTY: u8 = 0;
/// An entry of a context since destroyed.
const TLB_DEAD: u8 = 254;
/// Whatever firmware or an earlier boot stage left: every ID starts so.
const TLB_BOOT: u8 = 255;

/// Where a CPU is in a switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// Between operations.
    Idle,
    /// Loaded an eligible probe for `ctx`; the compare-and-swap is next.
    Probed { ctx: u8, probe: FastPathProbe<Vmid> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Cpu {
    /// The context this CPU runs and the ID its switch returned. It changes
    /// only when a switch returns: until then the CPU still runs the old one.
    running: Option<(u8, u16)>,
    phase: Phase,
}

/// Everything but the allocator: the part of the state the test owns.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Ghost {
    cpus: Vec<Cpu>,
    /// Per CPU, per hardware ID, a tag.
    tlb: Vec<Vec<u8>>,
    /// Per context, pins the test holds and the ID the first pin returned.
    pins: Vec<u32>,
    pinned_id: Vec<Option<u16>>,
    /// The ballast contexts' IDs: fixed once the search starts, so left out
    /// of fingerprints.
    ballast: Vec<u16>,
    /// The generation the allocator is in, as the IDs it hands out tell.
    generation: u64,
    /// Per ID, which context was handed it in this generation (a TLB tag).
    owner: Vec<u8>,
    /// Per CPU, whether a rollover (or boot) happened since its last flush.
    owes_flush: Vec<bool>,
}

/// One state: the real allocator plus the contexts and the ghost state.
struct Node {
    alloc: IdAllocator<Vmid>,
    ctxs: Vec<ContextSnapshot>,
    ghost: Ghost,
}

/// What one transition exercised, summed into [`Coverage`].
#[derive(Clone, Copy, Debug, Default)]
struct Flags {
    rollover: bool,
    rollover_during_probe: bool,
    cas_failed: bool,
    fast_hit: bool,
    slow: bool,
    flush: bool,
    pin: bool,
    pin_refused: bool,
    pinned_renewed: bool,
    reserved_kept: bool,
    recycle: bool,
}

/// How often the explored transitions exercised each mechanism, so a test can
/// show the search was not vacuous.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Transitions that rolled the generation over.
    pub rollovers: u64,
    /// Rollovers while another CPU held an eligible fast-path probe.
    pub rollovers_during_probe: u64,
    /// Compare-and-swaps that failed: a rollover ran between load and swap.
    pub cas_failed: u64,
    /// Switches completed on the fast path.
    pub fast_hits: u64,
    /// Switches completed on the slow path.
    pub slow_paths: u64,
    /// Switches that requested a flush.
    pub flushes: u64,
    /// First pins that succeeded.
    pub pins: u64,
    /// Pins refused at the limit.
    pub pins_refused: u64,
    /// Switches or pins that moved a pinned context into a new generation.
    pub pinned_renewed: u64,
    /// Switches that renewed a context while it still ran on another CPU
    /// (the reserved-copy path the seed's bug is about).
    pub reserved_kept: u64,
    /// Contexts destroyed and replaced.
    pub recycles: u64,
    /// Highest generation reached.
    pub max_generation: u64,
}

impl Coverage {
    fn add(&mut self, f: Flags) {
        self.rollovers += u64::from(f.rollover);
        self.rollovers_during_probe += u64::from(f.rollover_during_probe);
        self.cas_failed += u64::from(f.cas_failed);
        self.fast_hits += u64::from(f.fast_hit);
        self.slow_paths += u64::from(f.slow);
        self.flushes += u64::from(f.flush);
        self.pins += u64::from(f.pin);
        self.pins_refused += u64::from(f.pin_refused);
        self.pinned_renewed += u64::from(f.pinned_renewed);
        self.reserved_kept += u64::from(f.reserved_kept);
        self.recycles += u64::from(f.recycle);
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transitions with: {} rollovers ({} while another CPU's fast-path probe was pending), \
             {} failed compare-and-swaps, {} fast-path and {} slow-path switches, {} flushes, \
             {} pins ({} refused at the limit), {} pinned contexts renewed, \
             {} renewals of a context running elsewhere, {} contexts recycled; \
             highest generation {}",
            self.rollovers,
            self.rollovers_during_probe,
            self.cas_failed,
            self.fast_hits,
            self.slow_paths,
            self.flushes,
            self.pins,
            self.pins_refused,
            self.pinned_renewed,
            self.reserved_kept,
            self.recycles,
            self.max_generation,
        )
    }
}

/// A search that found no violation.
#[derive(Clone, Debug)]
pub struct Report {
    pub config: Config,
    /// Distinct states reached (including those past the generation bound).
    pub states: u64,
    /// Transitions taken (each checked, even into a known state).
    pub transitions: u64,
    /// Longest shortest path from the initial state, in steps.
    pub depth: u32,
    pub elapsed: Duration,
    pub coverage: Coverage,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config: {}", self.config)?;
        writeln!(
            f,
            "no violation: {} states, {} transitions, depth {}, in {:.2?}",
            self.states, self.transitions, self.depth, self.elapsed
        )?;
        write!(f, "{}", self.coverage)
    }
}

/// One line of a counterexample.
#[derive(Clone, Debug)]
pub struct TraceLine {
    pub step: Step,
    /// What the step did, then the state after it.
    pub detail: String,
}

/// An invariant that failed, with the shortest path to it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub config: Config,
    /// Which invariant, in words.
    pub message: String,
    /// The steps from the initial state; the last one breaks the invariant.
    pub trace: Vec<TraceLine>,
    /// Distinct states found before the violation.
    pub states: u64,
    pub elapsed: Duration,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config: {}", self.config)?;
        writeln!(
            f,
            "VIOLATION after {} states in {:.2?}: {}",
            self.states, self.elapsed, self.message
        )?;
        writeln!(f, "trace ({} steps):", self.trace.len())?;
        for (i, line) in self.trace.iter().enumerate() {
            writeln!(f, "{:3}. {}", i + 1, line.step)?;
            writeln!(f, "       {}", line.detail)?;
        }
        Ok(())
    }
}

/// A fingerprint is already a hash: the map uses its low bits as they are.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u128 fingerprints are hashed");
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// Fingerprint to discovery index.
type Seen = HashMap<u128, u32, BuildHasherDefault<IdentityHasher>>;

/// Symmetry reduction. CPUs are interchangeable (every operation treats
/// them alike, a rollover's result does not depend on the order it visits
/// them) and so are contexts (the allocator knows them only by the IDs in
/// their records), so two states that differ only by a renumbering have the
/// same future up to that renumbering and need not both be explored. A
/// state is encoded under every CPU order, contexts sorted by a signature
/// of everything that names them, and the least encoding is fingerprinted.
/// A probe's hash still includes its CPU, so states with a probe in flight
/// only merge under orders that keep that CPU in place: less reduction,
/// never a wrong merge.
///
/// Generations are renumbered too, when no probe is in flight: the current
/// one stays and the older ones the state names (in active and reserved
/// slots and records) become the ones just below it, in order, so that how
/// long ago they were does not tell states apart. The allocator only ever
/// compares generations for equality, takes the current one, or makes the
/// next one, so an order-preserving renumbering that keeps the current
/// generation, 0 (never allocated) and the deactivation sentinel (generation
/// 1, ID 0, never compared with an ID) maps its behaviour onto itself; and
/// as the current generation stays, so does which states the generation
/// bound expands. A probe's words cannot be renumbered, as they are private;
/// states with one keep their generations as they are.
struct Canon {
    exact_tlb: bool,
    /// Whether generations are renumbered (see above).
    generations: bool,
    /// The generations the state names, ascending, when renumbering.
    gens: Vec<u64>,
    bits: u32,
    cpu_perms: Vec<Vec<usize>>,
    sigs: Vec<(u64, u8)>,
    relabel: Vec<u8>,
    buf: Vec<u64>,
    best: Vec<u64>,
}

impl Canon {
    fn new(cpus: usize, symmetry: bool, exact_tlb: bool) -> Self {
        let mut cpu_perms = vec![(0..cpus).collect::<Vec<_>>()];
        if symmetry {
            cpu_perms = permutations(cpus);
        }
        Self {
            exact_tlb,
            generations: symmetry,
            gens: Vec::new(),
            bits: 0,
            cpu_perms,
            sigs: Vec::new(),
            relabel: Vec::new(),
            buf: Vec::new(),
            best: Vec::new(),
        }
    }
}

/// Appends `tags` (TLB or owner tags), eight to a word, with live contexts
/// renumbered by `relabel` and the two kinds of foreign entry, which every
/// check treats alike, merged.
fn pack_tags(tags: &[u8], relabel: &[u8], buf: &mut Vec<u64>) {
    for chunk in tags.chunks(8) {
        let mut word = 0u64;
        for &tag in chunk {
            let tag = match tag {
                TLB_EMPTY => TLB_EMPTY,
                TLB_DEAD | TLB_BOOT => TLB_DEAD,
                live => relabel[usize::from(live - 1)] + 1,
            };
            word = word << 8 | u64::from(tag);
        }
        buf.push(word);
    }
}

impl Canon {
    /// A full ID (or active-slot value) with its generation renumbered, if
    /// renumbering: the current one (the last of `gens`) stays, the older
    /// ones the state names become the ones just below it, in order. 0 and
    /// the deactivation sentinel are no generation's and stay.
    fn value(&self, v: u64) -> u64 {
        let Some(&current) = self.gens.last() else {
            return v;
        };
        if v == 0 || v == 1 << self.bits {
            return v;
        }
        let below = self.gens.len() - 1 - self.gens.partition_point(|&g| g < v >> self.bits);
        (current - below as u64) << self.bits | (v & ((1 << self.bits) - 1))
    }
}

/// Every ordering of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..n {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

/// Runs `f` (a call into the allocator), turning a panic into an error so
/// that it is reported with its trace (invariant 6: no operation fails).
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        format!("(6) {what} panicked: {msg}")
    })
}

impl Node {
    fn initial(config: &Config) -> Self {
        let alloc = IdAllocator::with_order(config.bits, config.cpus, config.order)
            .expect("configuration validated");
        let ballast = (0..config.ballast)
            .map(|_| {
                // The contexts can go: their pins outlive them, which is
                // all the allocator keeps of them.
                let ctx = Context::<Vmid>::new();
                alloc.pin(&ctx).expect("ballast within the pin limit").get()
            })
            .collect();
        let generation = Self::generation(&alloc.snapshot());
        let fresh = Context::<Vmid>::new().snapshot();
        Self {
            alloc,
            ctxs: vec![fresh; config.contexts],
            ghost: Ghost {
                cpus: vec![
                    Cpu {
                        running: None,
                        phase: Phase::Idle,
                    };
                    config.cpus
                ],
                tlb: vec![vec![TLB_BOOT; 1 << config.bits]; config.cpus],
                pins: vec![0; config.contexts],
                pinned_id: vec![None; config.contexts],
                ballast,
                generation,
                owner: vec![TLB_EMPTY; 1 << config.bits],
                owes_flush: vec![true; config.cpus],
            },
        }
    }

    fn generation(snap: &StateSnapshot) -> u64 {
        snap.generation >> snap.bits
    }

    fn hw(&self, full: u64) -> u16 {
        (full & ((1 << self.alloc.bits()) - 1)) as u16
    }

    /// The state's fingerprint, the same for every state that differs from
    /// it only by renumbering CPUs or contexts (see [`Canon`]).
    fn fingerprint(&self, snap: &StateSnapshot, canon: &mut Canon) -> u128 {
        canon.best.clear();
        canon.gens.clear();
        canon.bits = snap.bits;
        // Generations are renumbered only without a probe in flight: a
        // probe's words are opaque, so they stay as they are.
        let idle = self.ghost.cpus.iter().all(|c| c.phase == Phase::Idle);
        if canon.generations && idle {
            let values = snap.active.iter().chain(&snap.reserved);
            let values = values.chain(self.ctxs.iter().map(|c| &c.id));
            for &v in values.chain([&snap.generation]) {
                if v != 0 && v != 1 << snap.bits {
                    canon.gens.push(v >> snap.bits);
                }
            }
            canon.gens.sort_unstable();
            canon.gens.dedup();
        }
        for p in 0..canon.cpu_perms.len() {
            canon.buf.clear();
            self.encode(snap, p, canon);
            if canon.best.is_empty() || canon.buf < canon.best {
                std::mem::swap(&mut canon.buf, &mut canon.best);
            }
        }
        // Two SipHashes made independent by a different first word.
        let mut out = 0u128;
        for lane in 0..2u64 {
            let mut h = DefaultHasher::new();
            h.write_u64(lane);
            for &w in &canon.best {
                h.write_u64(w);
            }
            out = out << 64 | u128::from(h.finish());
        }
        out
    }

    /// Appends to `canon.buf` the state with CPUs in the order of
    /// `canon.cpu_perms[perm]` and contexts sorted by their signatures in
    /// that order.
    fn encode(&self, snap: &StateSnapshot, perm: usize, canon: &mut Canon) {
        let g = &self.ghost;
        let order = &canon.cpu_perms[perm];
        let probe_word = |probe: &FastPathProbe<Vmid>| {
            let mut h = DefaultHasher::new();
            probe.hash(&mut h);
            h.finish()
        };
        // A context's signature: everything in the state that names it, in
        // this CPU order. Contexts with equal signatures are interchangeable,
        // so sorting by it numbers them canonically.
        canon.sigs.clear();
        for (x, ctx) in self.ctxs.iter().enumerate() {
            let me = x as u8;
            let mut h = DefaultHasher::new();
            (canon.value(ctx.id), ctx.pins, g.pinned_id[x]).hash(&mut h);
            for &cpu in order {
                let c = &g.cpus[cpu];
                c.running.filter(|&(r, _)| r == me).hash(&mut h);
                if let Phase::Probed { ctx, probe } = &c.phase {
                    if *ctx == me {
                        probe_word(probe).hash(&mut h);
                    }
                }
                if canon.exact_tlb {
                    for (id, &tag) in g.tlb[cpu].iter().enumerate() {
                        if tag == me + 1 {
                            h.write_usize(id);
                        }
                    }
                }
                h.write_u8(0xff);
            }
            for (id, &tag) in g.owner.iter().enumerate() {
                if tag == me + 1 {
                    h.write_usize(id);
                }
            }
            canon.sigs.push((h.finish(), me));
        }
        canon.sigs.sort_unstable();
        canon.relabel.clear();
        canon.relabel.resize(self.ctxs.len(), 0);
        for (new, &(_, old)) in canon.sigs.iter().enumerate() {
            canon.relabel[usize::from(old)] = new as u8;
        }
        let relabel = |ctx: u8| u64::from(canon.relabel[usize::from(ctx)]);
        let mut buf = std::mem::take(&mut canon.buf);
        let value = |v: u64| canon.value(v);
        buf.extend([
            u64::from(!canon.gens.is_empty()),
            value(snap.generation),
            u64::from(snap.cursor),
            u64::from(snap.nr_pinned),
        ]);
        buf.extend(&snap.used);
        buf.extend(&snap.pinned);
        for &cpu in order {
            let c = &g.cpus[cpu];
            buf.extend([
                value(snap.active[cpu]),
                value(snap.reserved[cpu]),
                u64::from(snap.flush_pending[cpu]),
                c.running
                    .map_or(u64::MAX, |(x, id)| relabel(x) << 16 | u64::from(id)),
            ]);
            match &c.phase {
                Phase::Idle => buf.push(u64::MAX),
                Phase::Probed { ctx, probe } => buf.extend([relabel(*ctx), probe_word(probe)]),
            }
            buf.push(u64::from(g.owes_flush[cpu]));
            if canon.exact_tlb {
                pack_tags(&g.tlb[cpu], &canon.relabel, &mut buf);
            }
        }
        pack_tags(&g.owner, &canon.relabel, &mut buf);
        for &(_, old) in &canon.sigs {
            let x = usize::from(old);
            buf.extend([
                value(self.ctxs[x].id),
                u64::from(self.ctxs[x].pins),
                g.pinned_id[x].map_or(u64::MAX, u64::from),
            ]);
        }
        canon.buf = buf;
    }

    /// Whether `ctx` may be destroyed and replaced: no CPU runs or is
    /// switching to it, it is not pinned, and it has had an ID (replacing a
    /// context that never had one changes nothing).
    fn recyclable(&self, ctx: u8) -> bool {
        let busy = self.ghost.cpus.iter().any(|c| {
            c.running.is_some_and(|(r, _)| r == ctx)
                || matches!(c.phase, Phase::Probed { ctx: p, .. } if p == ctx)
        });
        let x = usize::from(ctx);
        !busy && self.ghost.pins[x] == 0 && self.ctxs[x].id != 0
    }

    /// The steps enabled in this state.
    fn enabled(&self, config: &Config, out: &mut Vec<Step>) {
        out.clear();
        let g = &self.ghost;
        let nr_ctxs = config.contexts as u8;
        for (cpu, c) in g.cpus.iter().enumerate() {
            let cpu = cpu as u8;
            if let Phase::Probed { .. } = c.phase {
                out.push(Step::Commit { cpu });
                continue;
            }
            for ctx in 0..nr_ctxs {
                out.push(Step::Switch {
                    cpu,
                    ctx,
                    fresh: false,
                });
                if self.recyclable(ctx) {
                    out.push(Step::Switch {
                        cpu,
                        ctx,
                        fresh: true,
                    });
                }
            }
            // A CPU running nothing has the sentinel or 0 in its slot
            // already: deactivating it again changes nothing.
            if c.running.is_some() {
                out.push(Step::Deactivate { cpu });
            }
        }
        let held: u32 = g.pins.iter().sum();
        for ctx in 0..nr_ctxs {
            if held < config.pins {
                out.push(Step::Pin { ctx, fresh: false });
                if self.recyclable(ctx) {
                    out.push(Step::Pin { ctx, fresh: true });
                }
            }
            if g.pins[usize::from(ctx)] > 0 {
                out.push(Step::Unpin { ctx });
            }
        }
    }

    /// Destroys `ctx` and puts a context that never had an ID in its slot.
    /// Its translations stay in the TLBs: no live context may hit them.
    ///
    /// Destroying a context commutes with every step that does not involve
    /// it (no other step reads its record, and to every other context an
    /// entry of the old one and a dead entry are equally foreign), so it is
    /// explored only just before the slot's next use, which keeps states
    /// with a destroyed-but-unused slot out of the search.
    fn recycle(ctxs: &mut [ContextSnapshot], ghost: &mut Ghost, ctx: u8) {
        ctxs[usize::from(ctx)] = Context::<Vmid>::new().snapshot();
        for tag in ghost.tlb.iter_mut().flatten().chain(&mut ghost.owner) {
            if *tag == ctx + 1 {
                *tag = TLB_DEAD;
            }
        }
    }

    /// Runs `step` on a fork of this state; checks the transition and the
    /// state it leads to.
    fn apply(
        &self,
        step: Step,
        config: &Config,
        before: &StateSnapshot,
    ) -> Result<(Node, StateSnapshot, Flags, Effect), String> {
        let alloc = self.alloc.fork();
        let mut ctxs = self.ctxs.clone();
        let mut ghost = self.ghost.clone();
        let mut flags = Flags::default();
        let effect = match step {
            Step::Switch { cpu, ctx, fresh } => {
                if fresh {
                    Self::recycle(&mut ctxs, &mut ghost, ctx);
                    flags.recycle = true;
                }
                let c = Context::<Vmid>::from_snapshot(ctxs[usize::from(ctx)]);
                let probe = guarded("fast_path_load", || alloc.fast_path_load(&c, cpu.into()))?
                    .map_err(|e| format!("(6) fast_path_load: {e}"))?;
                if probe.is_eligible() {
                    ghost.cpus[usize::from(cpu)].phase = Phase::Probed { ctx, probe };
                    Effect::Probed
                } else {
                    // The commit of an ineligible probe returns at once,
                    // touching nothing shared; the slow path re-reads
                    // everything under the lock. Nothing another CPU does
                    // in between can change its outcome in a way a later
                    // `Switch` of the same context would not also reach
                    // (see the file's doc), so both run in this step.
                    if alloc.fast_path_commit(probe).is_some() {
                        return Err("(6) an ineligible probe committed".into());
                    }
                    self.slow(&alloc, &mut ctxs, &mut ghost, config, cpu, ctx, &mut flags)?
                }
            }
            Step::Commit { cpu } => {
                let Phase::Probed { ctx, probe } = ghost.cpus[usize::from(cpu)].phase else {
                    unreachable!("commit enabled only after an eligible load");
                };
                match guarded("fast_path_commit", || alloc.fast_path_commit(probe))? {
                    Some(done) => {
                        flags.fast_hit = true;
                        let record = ctxs[usize::from(ctx)].id;
                        Self::booked(
                            &mut ghost,
                            config,
                            cpu,
                            ctx,
                            record,
                            done,
                            "fast path",
                            &mut flags,
                        )?
                    }
                    None => {
                        // Only a rollover zeroing this CPU's slot fails the
                        // swap, and only this CPU makes it non-zero again:
                        // the failure is permanent, so taking the slow path
                        // at once loses no interleaving.
                        flags.cas_failed = true;
                        self.slow(&alloc, &mut ctxs, &mut ghost, config, cpu, ctx, &mut flags)?
                    }
                }
            }
            Step::Deactivate { cpu } => {
                guarded("deactivate", || alloc.deactivate(cpu.into()))?
                    .map_err(|e| format!("(6) deactivate: {e}"))?;
                ghost.cpus[usize::from(cpu)].running = None;
                Effect::Done
            }
            Step::Pin { ctx, fresh } => {
                if fresh {
                    Self::recycle(&mut ctxs, &mut ghost, ctx);
                    flags.recycle = true;
                }
                self.pin(&alloc, &mut ctxs, &mut ghost, config, ctx, &mut flags)?
            }
            Step::Unpin { ctx } => {
                let x = usize::from(ctx);
                let c = Context::<Vmid>::from_snapshot(ctxs[x]);
                guarded("unpin", || alloc.unpin(&c))?
                    .map_err(|e| format!("(6) unpin of c{ctx}: {e:?}"))?;
                ctxs[x] = c.snapshot();
                ghost.pins[x] -= 1;
                if ghost.pins[x] == 0 {
                    ghost.pinned_id[x] = None;
                }
                Effect::Done
            }
        };
        let next = Node { alloc, ctxs, ghost };
        let after = next.alloc.snapshot();
        if Self::generation(&after) != Self::generation(before) {
            flags.rollover = true;
            flags.rollover_during_probe = next
                .ghost
                .cpus
                .iter()
                .any(|c| matches!(c.phase, Phase::Probed { .. }));
        }
        if next.ghost.generation != Self::generation(&after) {
            return Err(format!(
                "(6) the allocator is in generation {} but handed out IDs of {}",
                Self::generation(&after),
                next.ghost.generation
            ));
        }
        next.check(&after)?;
        Ok((next, after, flags, effect))
    }

    /// The slow path of `cpu`'s switch to `ctx`.
    #[allow(clippy::too_many_arguments)]
    fn slow(
        &self,
        alloc: &IdAllocator<Vmid>,
        ctxs: &mut [ContextSnapshot],
        ghost: &mut Ghost,
        config: &Config,
        cpu: u8,
        ctx: u8,
        flags: &mut Flags,
    ) -> Result<Effect, String> {
        let x = usize::from(ctx);
        let c = Context::<Vmid>::from_snapshot(ctxs[x]);
        let done = guarded("slow_path", || alloc.slow_path(&c, cpu.into()))?
            .map_err(|e| format!("(6) slow_path: {e}"))?;
        Self::renewed(ghost, ctxs[x].id, c.snapshot().id, ctx, Some(cpu), flags);
        ctxs[x] = c.snapshot();
        flags.slow = true;
        Self::booked(
            ghost,
            config,
            cpu,
            ctx,
            ctxs[x].id,
            done,
            "slow path",
            flags,
        )
    }

    /// Notes (for coverage) a context moved into a new generation while
    /// pinned or running on a CPU other than `on`, the one switching to it.
    fn renewed(ghost: &Ghost, old: u64, new: u64, ctx: u8, on: Option<u8>, flags: &mut Flags) {
        if old != new && old != 0 {
            flags.pinned_renewed = ghost.pins[usize::from(ctx)] > 0;
            flags.reserved_kept =
                ghost.cpus.iter().enumerate().any(|(cpu, c)| {
                    on != Some(cpu as u8) && c.running.is_some_and(|(r, _)| r == ctx)
                });
        }
    }

    fn pin(
        &self,
        alloc: &IdAllocator<Vmid>,
        ctxs: &mut [ContextSnapshot],
        ghost: &mut Ghost,
        config: &Config,
        ctx: u8,
        flags: &mut Flags,
    ) -> Result<Effect, String> {
        let x = usize::from(ctx);
        let c = Context::<Vmid>::from_snapshot(ctxs[x]);
        let result = guarded("pin", || alloc.pin(&c))?;
        Self::renewed(ghost, ctxs[x].id, c.snapshot().id, ctx, None, flags);
        ctxs[x] = c.snapshot();
        let nr_pinned =
            ghost.pins.iter().filter(|&&p| p > 0).count() as u32 + ghost.ballast.len() as u32;
        let limit = alloc.max_pinned();
        match result {
            Ok(id) => {
                let id = id.get();
                let record = ctxs[x].id;
                let mask = (1 << config.bits) - 1;
                if ghost.pins[x] == 0 {
                    Self::advance(ghost, record >> config.bits);
                }
                // A further pin returns the ID without renewing the record,
                // which may lag generations: the pinned bitmap keeps the ID.
                if record & mask != u64::from(id)
                    || (ghost.pins[x] == 0 && record >> config.bits != ghost.generation)
                {
                    return Err(format!(
                        "(2) pin handed c{ctx} ID {id:#x}, but its record is g{}:{:#x} in \
                         generation {}",
                        record >> config.bits,
                        record & mask,
                        ghost.generation
                    ));
                }
                if ghost.ballast.contains(&id) {
                    return Err(format!(
                        "(1) pin handed c{ctx} ID {id:#x}, which a ballast pin holds"
                    ));
                }
                if ghost.pins[x] == 0 {
                    // A first pin may have renewed the record: the ID counts
                    // as handed out in this generation, as by a switch.
                    Self::claim(ghost, ctx, id, "pin")?;
                    if nr_pinned >= limit {
                        return Err(format!(
                            "(5) pin of c{ctx} accepted with {nr_pinned} IDs pinned, limit {limit}"
                        ));
                    }
                    flags.pin = true;
                    ghost.pinned_id[x] = Some(id);
                } else if ghost.pinned_id[x] != Some(id) {
                    return Err(format!(
                        "(3) pinned c{ctx} pinned again got ID {id:#x}, not {:#x}",
                        ghost.pinned_id[x].unwrap_or(0)
                    ));
                }
                ghost.pins[x] += 1;
                Ok(Effect::Pinned(id))
            }
            Err(AllocError::PinLimit { limit: l })
                if l == limit && ghost.pins[x] == 0 && nr_pinned == limit =>
            {
                flags.pin_refused = true;
                Ok(Effect::PinRefused)
            }
            Err(e) => Err(format!("(6) pin of c{ctx}: unexpected {e:?}")),
        }
    }

    /// Books a completed switch: the caller flushes if told to, then runs
    /// `ctx` with the returned ID, caching an entry in this CPU's TLB.
    #[allow(clippy::too_many_arguments)]
    fn booked(
        ghost: &mut Ghost,
        config: &Config,
        cpu: u8,
        ctx: u8,
        record: u64,
        done: Switch<Vmid>,
        how: &'static str,
        flags: &mut Flags,
    ) -> Result<Effect, String> {
        let id = done.id().get();
        Self::handed(ghost, config, ctx, record, id, &format!("CPU{cpu}'s {how}"))?;
        flags.flush = done.needs_flush();
        let owed = ghost.owes_flush[usize::from(cpu)];
        let flushed = done.needs_flush()
            && match config.caller_flushes {
                Flushes::All => true,
                // Only a CPU that never flushed still has firmware entries.
                Flushes::BootOnly => ghost.tlb[usize::from(cpu)].contains(&TLB_BOOT),
                Flushes::None => false,
            };
        let tlb = &mut ghost.tlb[usize::from(cpu)];
        if flushed {
            tlb.fill(TLB_EMPTY);
            ghost.owes_flush[usize::from(cpu)] = false;
        }
        let tag = tlb[usize::from(id)];
        if tag != TLB_EMPTY && tag != ctx + 1 {
            let owner = match tag {
                TLB_DEAD => "a destroyed context".to_owned(),
                TLB_BOOT => "firmware (boot-time contents)".to_owned(),
                t => format!("c{}", t - 1),
            };
            return Err(format!(
                "(4) stale translation: CPU{cpu} runs c{ctx} with ID {id:#x} over an unflushed \
                 TLB entry of {owner}"
            ));
        }
        if owed && !flushed {
            return Err(format!(
                "(4b) CPU{cpu} runs c{ctx} with ID {id:#x} without a flush since the last \
                 rollover (or boot): its TLB may hold that ID for another context"
            ));
        }
        tlb[usize::from(id)] = ctx + 1;
        if let Some(pinned) = ghost.pinned_id[usize::from(ctx)] {
            if pinned != id {
                return Err(format!(
                    "(3) pinned c{ctx} switched on CPU{cpu} with ID {id:#x}, pinned {pinned:#x}"
                ));
            }
        }
        let c = &mut ghost.cpus[usize::from(cpu)];
        c.running = Some((ctx, id));
        c.phase = Phase::Idle;
        Ok(Effect::Switched {
            how,
            id,
            flush: done.needs_flush(),
        })
    }

    /// Notes that the allocator is in `generation` (seen in a record it just
    /// renewed): if that is new, the step rolled over, every CPU owes a
    /// flush and no ID of the new generation has been handed out yet.
    fn advance(ghost: &mut Ghost, generation: u64) {
        if generation > ghost.generation {
            ghost.generation = generation;
            ghost.owner.fill(TLB_EMPTY);
            ghost.owes_flush.fill(true);
        }
    }

    /// Books ID `id` handed to `ctx` (whose record is now `record`) by a
    /// switch, checking (2) that it is the record's ID and of the current
    /// generation, (1) that no ballast pin holds it, and (4c) that no other
    /// context was handed it in this generation.
    fn handed(
        ghost: &mut Ghost,
        config: &Config,
        ctx: u8,
        record: u64,
        id: u16,
        what: &str,
    ) -> Result<(), String> {
        if id == 0 || u32::from(id) >= 1 << config.bits {
            return Err(format!("(1) {what} handed c{ctx} ID {id:#x}, out of range"));
        }
        let generation = record >> config.bits;
        if record & ((1 << config.bits) - 1) != u64::from(id) || generation < ghost.generation {
            return Err(format!(
                "(2) {what} handed c{ctx} ID {id:#x}, but its record is g{generation}:{:#x} \
                 in generation {}",
                record & ((1 << config.bits) - 1),
                ghost.generation
            ));
        }
        Self::advance(ghost, generation);
        if ghost.ballast.contains(&id) {
            return Err(format!(
                "(1) {what} handed c{ctx} ID {id:#x}, which a ballast pin holds"
            ));
        }
        Self::claim(ghost, ctx, id, what)
    }

    /// (4c): records that `ctx` was handed `id` in this generation, unless
    /// another context (a destroyed one included) was.
    fn claim(ghost: &mut Ghost, ctx: u8, id: u16, what: &str) -> Result<(), String> {
        let owner = &mut ghost.owner[usize::from(id)];
        if *owner != TLB_EMPTY && *owner != ctx + 1 {
            let before = match *owner {
                TLB_DEAD => "a since destroyed context".to_owned(),
                t => format!("c{}", t - 1),
            };
            return Err(format!(
                "(4c) {what} handed c{ctx} ID {id:#x}, which {before} was handed in this \
                 generation g{}",
                ghost.generation
            ));
        }
        *owner = ctx + 1;
        Ok(())
    }

    /// The invariants that hold in every state.
    fn check(&self, snap: &StateSnapshot) -> Result<(), String> {
        let g = &self.ghost;
        let running: Vec<(usize, u8, u16)> = g
            .cpus
            .iter()
            .enumerate()
            .filter_map(|(cpu, c)| c.running.map(|(x, id)| (cpu, x, id)))
            .collect();
        for (i, &(c1, x1, id1)) in running.iter().enumerate() {
            for &(c2, x2, id2) in &running[i + 1..] {
                if x1 != x2 && id1 == id2 {
                    return Err(format!(
                        "(1) c{x1} on CPU{c1} and c{x2} on CPU{c2} both run with ID {id1:#x}"
                    ));
                }
                if x1 == x2 && id1 != id2 {
                    return Err(format!(
                        "(2) c{x1} runs with ID {id1:#x} on CPU{c1} and {id2:#x} on CPU{c2}"
                    ));
                }
            }
            // The context's own record must still name the ID it runs with:
            // the allocator renews a running context only into the same ID.
            let own = self.hw(self.ctxs[usize::from(x1)].id);
            if own != id1 {
                return Err(format!(
                    "(2) c{x1} runs with ID {id1:#x} on CPU{c1} but now holds {own:#x}"
                ));
            }
            for (y, pinned) in g.pinned_id.iter().enumerate() {
                if *pinned == Some(id1) && y != usize::from(x1) {
                    return Err(format!(
                        "(1) c{x1} runs on CPU{c1} with ID {id1:#x}, which pinned c{y} holds"
                    ));
                }
            }
            if g.ballast.contains(&id1) {
                return Err(format!(
                    "(1) c{x1} runs on CPU{c1} with ID {id1:#x}, which a ballast pin holds"
                ));
            }
        }
        let mut nr_pinned = g.ballast.len() as u32;
        for (x, (ctx, &pins)) in self.ctxs.iter().zip(&g.pins).enumerate() {
            if ctx.pins != pins {
                return Err(format!(
                    "(3) c{x} has pin count {}, {pins} expected",
                    ctx.pins
                ));
            }
            if let Some(pinned) = g.pinned_id[x] {
                nr_pinned += 1;
                let own = self.hw(ctx.id);
                if own != pinned {
                    return Err(format!(
                        "(3) c{x} pinned with ID {pinned:#x} now holds {own:#x}"
                    ));
                }
            }
        }
        let bits: u32 = snap.pinned.iter().map(|w| w.count_ones()).sum();
        let limit = self.alloc.max_pinned();
        if snap.nr_pinned > limit || snap.nr_pinned != nr_pinned || bits != nr_pinned {
            return Err(format!(
                "(5) {} IDs pinned ({bits} bits set), {nr_pinned} pinned contexts, limit {limit}",
                snap.nr_pinned
            ));
        }
        Ok(())
    }

    /// One line describing the state, for traces.
    fn describe(&self, snap: &StateSnapshot) -> String {
        let bits = snap.bits;
        let full = |v: u64| -> String {
            if v == 0 {
                "0".into()
            } else {
                format!("g{}:{:#x}", v >> bits, v & ((1 << bits) - 1))
            }
        };
        let mut s = format!("gen {} |", Self::generation(snap));
        for (cpu, c) in self.ghost.cpus.iter().enumerate() {
            s += &format!(" CPU{cpu} ");
            match c.running {
                Some((x, id)) => s += &format!("runs c{x}/{id:#x}"),
                None => s += "idle",
            }
            match c.phase {
                Phase::Idle => {}
                Phase::Probed { ctx, .. } => s += &format!(" (probed c{ctx})"),
            }
            s += &format!(
                " active={} reserved={}{} |",
                if snap.active[cpu] == 1 << bits {
                    "sentinel".into()
                } else {
                    full(snap.active[cpu])
                },
                full(snap.reserved[cpu]),
                if snap.flush_pending[cpu] {
                    " flush-pending"
                } else {
                    ""
                },
            );
        }
        for (x, ctx) in self.ctxs.iter().enumerate() {
            s += &format!(" c{x}={}", full(ctx.id));
            if ctx.pins > 0 {
                s += &format!(" pinned x{}", ctx.pins);
            }
        }
        s
    }
}

/// Explores every state reachable under `config`; the first violation found
/// (on a shortest path, as the search is breadth-first) is returned with its
/// trace.
pub fn check(config: &Config) -> Result<Report, Box<Violation>> {
    config.validate().expect("valid configuration");
    let start = Instant::now();
    let mut canon = Canon::new(config.cpus, config.symmetry, config.exact_tlb);
    let init = Node::initial(config);
    let mut seen = Seen::default();
    seen.insert(init.fingerprint(&init.alloc.snapshot(), &mut canon), 0);
    // Per state (by discovery index): the state it was first reached from,
    // and the step, for traces; and its distance from the initial state.
    let mut parents: Vec<(u32, Step)> = vec![(u32::MAX, Step::Deactivate { cpu: 0 })];
    let mut depths: Vec<u16> = vec![0];
    let mut frontier = VecDeque::new();
    frontier.push_back((init, 0u32));
    let mut coverage = Coverage {
        max_generation: 1,
        ..Coverage::default()
    };
    let mut transitions = 0u64;
    let mut depth = 0u16;
    let mut steps = Vec::new();
    let progress = std::env::var_os("ID_ALLOC_CHECK_PROGRESS").is_some();
    // Progress: each BFS level, or each 2^20 states depth-first.
    let mut level = 0u32;
    loop {
        let popped = if config.dfs {
            frontier.pop_back()
        } else {
            frontier.pop_front()
        };
        let Some((node, index)) = popped else {
            break;
        };
        let report = if config.dfs {
            index >> 20 > level
        } else {
            u32::from(depths[index as usize]) > level
        };
        if progress && report {
            level = if config.dfs {
                index >> 20
            } else {
                depths[index as usize].into()
            };
            eprintln!(
                "{} {level}: {} states, {} queued, {:.1?}",
                if config.dfs { "million" } else { "depth" },
                seen.len(),
                frontier.len(),
                start.elapsed()
            );
        }
        let snap = node.alloc.snapshot();
        node.enabled(config, &mut steps);
        for &step in &steps {
            transitions += 1;
            let (next, next_snap, flags, _) = match node.apply(step, config, &snap) {
                Ok(ok) => ok,
                Err(message) => {
                    return Err(Box::new(violation(
                        config,
                        message,
                        &parents,
                        index,
                        step,
                        seen.len() as u64,
                        start.elapsed(),
                    )))
                }
            };
            coverage.add(flags);
            let generation = Node::generation(&next_snap);
            coverage.max_generation = coverage.max_generation.max(generation);
            let next_index = u32::try_from(parents.len()).expect("under 2^32 states");
            if let Entry::Vacant(slot) = seen.entry(next.fingerprint(&next_snap, &mut canon)) {
                slot.insert(next_index);
                parents.push((index, step));
                let d = depths[index as usize] + 1;
                depths.push(d);
                depth = depth.max(d);
                // Past the bound a state is checked (above) but not expanded.
                if generation <= config.generations {
                    frontier.push_back((next, next_index));
                }
            }
        }
    }
    Ok(Report {
        config: *config,
        states: seen.len() as u64,
        transitions,
        depth: depth.into(),
        elapsed: start.elapsed(),
        coverage,
    })
}

/// Rebuilds the path to `index` and replays it, then `last`, on a fresh
/// allocator to describe each step.
fn violation(
    config: &Config,
    message: String,
    parents: &[(u32, Step)],
    index: u32,
    last: Step,
    states: u64,
    elapsed: Duration,
) -> Violation {
    let mut path = vec![last];
    let mut i = index;
    while i != 0 {
        let (parent, step) = parents[i as usize];
        path.push(step);
        i = parent;
    }
    path.reverse();
    let mut node = Node::initial(config);
    let mut snap = node.alloc.snapshot();
    let mut trace = Vec::new();
    for step in path {
        match node.apply(step, config, &snap) {
            Ok((next, next_snap, _, effect)) => {
                trace.push(TraceLine {
                    step,
                    detail: format!("{effect}; {}", next.describe(&next_snap)),
                });
                node = next;
                snap = next_snap;
            }
            Err(e) => {
                trace.push(TraceLine {
                    step,
                    detail: format!("VIOLATION {e}"),
                });
                break;
            }
        }
    }
    Violation {
        config: *config,
        message,
        trace,
        states,
        elapsed,
    }
}
