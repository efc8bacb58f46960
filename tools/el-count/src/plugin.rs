//! The plugin QEMU loads: instrumentation at translation, the callbacks,
//! and the report at exit.
//!
//! How it counts, exactly:
//!
//! - Instructions. QEMU never lets a translation block span a change of
//!   exception level (the level is among the flags blocks are looked up
//!   by), and it translates a block for the CPU state about to run it. So
//!   the level read from PSTATE while translating is the level of every
//!   execution of the block, and each of its instructions gets a call,
//!   before it runs, that counts one at that level. An instruction that
//!   takes an exception (an HVC, a trapped load) counts at the level it
//!   ran at; a block left halfway counts only what ran. When QEMU runs an
//!   I/O instruction again on its own (`-icount`), it instruments that
//!   block for memory accesses only, so nothing counts twice.
//! - Changes of level, without knowing which CPU runs a block: every
//!   entry from a lower level starts a block at a "lower EL" vector entry
//!   (`SPSR_ELx` says from where), and every return to a lower level is an
//!   `ERET` (`SPSR_ELx` says to where); see [`crate::arch`]. Such blocks
//!   and instructions get a call that reads the register.
//! - The markers ([`crate::marker`]) get a call that reads x0 and x1 and
//!   opens or closes a window on the counts so far.
//!
//! Why calls and not QEMU's inline counters (scoreboards): under `-icount`
//! QEMU runs every CPU on one thread, and since 9.2 it then compiles the
//! index of the CPU that *translated* a block into the block as a
//! constant, and scales that constant in place to address a scoreboard
//! entry. Blocks are shared between CPUs, so a scoreboard counts for the
//! wrong CPU, and in a block translated by CPU 1 the constant 1 is
//! corrupted for every later use (QEMU 10.0.2, `-smp 2`: a callback was
//! handed CPU index 40, CPU 1 times the entry size). For the same reason
//! the CPU index QEMU passes to callbacks is not trusted here: nothing is
//! counted per CPU.
//!
//! `verify=on` adds a call at every block's start that reads PSTATE and
//! checks the level it was translated for; slow, it is a check of the
//! above, not for measuring.

use std::ffi::c_void;
use std::os::raw::c_uint;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use qemu_plugin::sys::{
    qemu_plugin_cb_flags, qemu_plugin_id_t, qemu_plugin_insn, qemu_plugin_insn_data,
    qemu_plugin_register_vcpu_init_cb, qemu_plugin_register_vcpu_insn_exec_cb,
    qemu_plugin_register_vcpu_tb_exec_cb, qemu_plugin_register_vcpu_tb_trans_cb, qemu_plugin_tb,
    qemu_plugin_tb_get_insn, qemu_plugin_tb_n_insns, qemu_plugin_tb_vaddr,
};
use qemu_plugin::{
    qemu_plugin_bool_parse, qemu_plugin_get_registers, qemu_plugin_num_vcpus, qemu_plugin_outs,
    qemu_plugin_register_atexit_cb, register, Args, HasCallbacks, Info, PluginId, Register,
    RegisterDescriptor,
};

use crate::arch;
use crate::counts::{Counts, Level, Windows};
use crate::marker::{name_from_registers, Mark};

/// CPUs with a counter slot of their own; the others share [`OVERFLOW`].
const SLOTS: usize = 64;

/// One slot's instruction counters, by level, on a cache line of its own.
#[repr(align(64))]
struct Slot([AtomicU64; 4]);

/// Instructions executed, by level, per CPU index as QEMU passes it (see
/// [`count`]).
static INSNS: [Slot; SLOTS] = [const { Slot([const { AtomicU64::new(0) }; 4]) }; SLOTS];
/// Instructions executed by CPUs beyond [`SLOTS`], by level.
static OVERFLOW: Slot = Slot([const { AtomicU64::new(0) }; 4]);
/// Changes of level, `[from][to]`, over every CPU.
static CHANGES: [[AtomicU64; 4]; 4] = [const { [const { AtomicU64::new(0) }; 4] }; 4];

/// The registers the plugin reads; `vbar` and `spsr` by level (none for
/// EL0, and none where the CPU lacks the level).
struct Registers {
    cpsr: RegisterDescriptor<'static>,
    x0: RegisterDescriptor<'static>,
    x1: RegisterDescriptor<'static>,
    vbar: [Option<RegisterDescriptor<'static>>; 4],
    spsr: [Option<RegisterDescriptor<'static>>; 4],
}

/// What the callbacks share.
struct Shared {
    out: Option<PathBuf>,
    verify: bool,
    registers: OnceLock<Registers>,
    state: Mutex<State>,
}

/// What only the rare callbacks (markers, checks) change.
#[derive(Default)]
struct State {
    windows: Windows,
    /// `verify=on`: block executions checked, and those at another level
    /// than they were translated for.
    verified: u64,
    mismatches: u64,
}

static SHARED: OnceLock<Shared> = OnceLock::new();

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A callback that panicked aborted QEMU already; nothing is
        // half-updated here that a later one could trip over.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn problem(&self, what: String) {
        self.state().windows.problem(what);
    }
}

/// The counts so far.
fn snapshot() -> Counts {
    let mut counts = Counts::default();
    for slot in INSNS.iter().chain([&OVERFLOW]) {
        for (n, counter) in counts.insns.iter_mut().zip(&slot.0) {
            *n += counter.load(Relaxed);
        }
    }
    for (row, counters) in counts.changes.iter_mut().zip(&CHANGES) {
        for (n, counter) in row.iter_mut().zip(counters) {
            *n = counter.load(Relaxed);
        }
    }
    counts
}

/// A level as callback data: its index, as a pointer-sized integer.
fn level_data(level: Level) -> *mut c_void {
    std::ptr::without_provenance_mut(level.index())
}

fn data_level(data: *mut c_void) -> Option<Level> {
    Level::ALL.get(data as usize).copied()
}

/// Why the plugin will not load.
#[derive(Debug)]
enum SetupError {
    /// An argument it does not know, or a bad value.
    Argument(String),
    /// Not `qemu-system-aarch64`.
    Target(String),
    /// Loaded twice.
    Twice,
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Argument(what) => write!(
                f,
                "qemu-el-count: bad argument `{what}` (takes out=FILE and verify=on|off)"
            ),
            Self::Target(target) => write!(
                f,
                "qemu-el-count: counts AArch64 system emulation, not {target}"
            ),
            Self::Twice => f.write_str("qemu-el-count: loaded twice"),
        }
    }
}

impl std::error::Error for SetupError {}

/// The plugin, as the `qemu-plugin` crate installs it.
struct ElCount;

impl HasCallbacks for ElCount {}

impl Register for ElCount {
    /// Registers only what the plugin uses, with plain functions: the
    /// crate's default registration would add a call through a lock for
    /// every translation and CPU event.
    fn register_default(
        &mut self,
        id: PluginId,
        args: &Args,
        info: &Info,
    ) -> qemu_plugin::Result<()> {
        setup(id, args, info).map_err(|e| qemu_plugin::Error::BoxedError(Box::new(e)))
    }
}

register!(ElCount);

fn setup(id: qemu_plugin_id_t, args: &Args, info: &Info) -> Result<(), SetupError> {
    if info.system.is_none() || !info.target_name.starts_with("aarch64") {
        return Err(SetupError::Target(info.target_name.clone()));
    }
    let mut out = None;
    let mut verify = false;
    for arg in &args.raw {
        match arg.split_once('=') {
            Some(("out", path)) if !path.is_empty() => out = Some(PathBuf::from(path)),
            Some(("verify", value)) => {
                verify = qemu_plugin_bool_parse("verify", value)
                    .map_err(|_| SetupError::Argument(arg.clone()))?;
            }
            _ => return Err(SetupError::Argument(arg.clone())),
        }
    }
    SHARED
        .set(Shared {
            out,
            verify,
            registers: OnceLock::new(),
            state: Mutex::new(State::default()),
        })
        .map_err(|_| SetupError::Twice)?;
    // SAFETY: `id` is this plugin's, and both are functions of the types
    // QEMU calls these callbacks with.
    unsafe {
        qemu_plugin_register_vcpu_init_cb(id, Some(vcpu_init));
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(translate));
    }
    // Registering cannot fail (the crate's Result is always Ok).
    let _ = qemu_plugin_register_atexit_cb(id, |_| write_report());
    Ok(())
}

/// A CPU appears: the first one's register list serves for all (every CPU
/// of the machine is the same model; registers can only be listed once a
/// CPU exists).
extern "C" fn vcpu_init(_id: qemu_plugin_id_t, _cpu: c_uint) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    if shared.registers.get().is_some() {
        return;
    }
    match find_registers() {
        Ok(registers) => {
            // A level without VBAR and SPSR in the list is one the CPU
            // lacks (EL2 without virtualization=on, EL3 without
            // secure=on): no change to it can happen, none is missed.
            let _ = shared.registers.set(registers);
        }
        Err(missing) => shared.problem(format!(
            "QEMU offers no register {missing}; nothing counted"
        )),
    }
}

/// `cpsr`, `x0` and `x1`, and what there is of `VBAR_ELx` and `SPSR_ELx`,
/// from QEMU's register list; the name of a missing required one otherwise.
fn find_registers() -> Result<Registers, &'static str> {
    let list = qemu_plugin_get_registers().map_err(|_| "list")?;
    let find = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| list.iter().find(|r| r.name == *name))
            .cloned()
    };
    Ok(Registers {
        cpsr: find(&["cpsr"]).ok_or("cpsr")?,
        x0: find(&["x0"]).ok_or("x0")?,
        x1: find(&["x1"]).ok_or("x1")?,
        // QEMU names VBAR_EL1 after its AArch32 alias.
        vbar: [
            None,
            find(&["VBAR_EL1", "VBAR"]),
            find(&["VBAR_EL2"]),
            find(&["VBAR_EL3"]),
        ],
        spsr: [
            None,
            find(&["SPSR_EL1"]),
            find(&["SPSR_EL2"]),
            find(&["SPSR_EL3"]),
        ],
    })
}

/// A register of up to 8 bytes, which QEMU gives in the guest's byte
/// order (little-endian here).
fn read_u64(register: &RegisterDescriptor<'_>) -> Option<u64> {
    let bytes = register.read().ok()?;
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let mut word = [0u8; 8];
    word[..bytes.len()].copy_from_slice(&bytes);
    Some(u64::from_le_bytes(word))
}

/// The instruction's bytes (AArch64: always 4).
///
/// # Safety
///
/// `insn` is an instruction of the block being translated.
unsafe fn insn_bytes(insn: *mut qemu_plugin_insn) -> [u8; 4] {
    let mut bytes = [0u8; 4];
    // SAFETY: `insn` is valid (the caller's promise) and `bytes` has room
    // for the 4 bytes QEMU copies at most.
    unsafe { qemu_plugin_insn_data(insn, bytes.as_mut_ptr().cast(), bytes.len()) };
    bytes
}

/// A block is translated, on the CPU about to run it.
extern "C" fn translate(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let Some(registers) = shared.registers.get() else {
        return;
    };
    let Some(level) = read_u64(&registers.cpsr).map(Level::from_pstate) else {
        shared.problem("PSTATE unreadable while translating; a block went uncounted".into());
        return;
    };
    let read_flags = qemu_plugin_cb_flags::QEMU_PLUGIN_CB_R_REGS;
    // SAFETY: `tb` is the block being translated, valid for this call;
    // the callbacks are functions of the type QEMU calls them with, and
    // their data is a plain integer.
    unsafe {
        let vaddr = qemu_plugin_tb_vaddr(tb);
        if arch::may_be_vector_entry(vaddr) {
            let vbar = registers.vbar[level.index()].as_ref().and_then(read_u64);
            if vbar.is_some_and(|vbar| arch::is_lower_level_entry(vaddr, vbar)) {
                qemu_plugin_register_vcpu_tb_exec_cb(
                    tb,
                    Some(entered_from_below),
                    read_flags,
                    level_data(level),
                );
            }
        }
        if shared.verify {
            qemu_plugin_register_vcpu_tb_exec_cb(tb, Some(verify), read_flags, level_data(level));
        }
        for i in 0..qemu_plugin_tb_n_insns(tb) {
            let insn = qemu_plugin_tb_get_insn(tb, i);
            let bytes = insn_bytes(insn);
            qemu_plugin_register_vcpu_insn_exec_cb(
                insn,
                Some(count),
                qemu_plugin_cb_flags::QEMU_PLUGIN_CB_NO_REGS,
                level_data(level),
            );
            if arch::is_exception_return(&bytes) {
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn,
                    Some(returning),
                    read_flags,
                    level_data(level),
                );
            }
            // After the count: a window includes its end marker, not its
            // start marker.
            match Mark::decode(&bytes) {
                Some(Mark::Start) => {
                    qemu_plugin_register_vcpu_insn_exec_cb(
                        insn,
                        Some(started),
                        read_flags,
                        std::ptr::null_mut(),
                    );
                }
                Some(Mark::End) => {
                    qemu_plugin_register_vcpu_insn_exec_cb(
                        insn,
                        Some(ended),
                        read_flags,
                        std::ptr::null_mut(),
                    );
                }
                None => {}
            }
        }
    }
}

/// Before every instruction: one more at the level in `data`.
///
/// This runs for every instruction, so it is a plain load and store, not
/// an atomic add (which made a run 2.8 times slower than without the
/// plugin instead of 1.4 times). That is exact as long as no two threads
/// run blocks of the same CPU index at once: under `-icount` one thread
/// runs every CPU (and QEMU passes the index of the CPU that translated
/// the block, see the module's notes), and with a thread per CPU QEMU
/// passes the running CPU's own index. The totals are over all slots, so
/// which slot a block counts in does not matter.
extern "C" fn count(cpu: c_uint, data: *mut c_void) {
    let level = data as usize;
    match INSNS.get(cpu as usize) {
        Some(slot) => {
            if let Some(counter) = slot.0.get(level) {
                counter.store(counter.load(Relaxed).wrapping_add(1), Relaxed);
            }
        }
        None => {
            if let Some(counter) = OVERFLOW.0.get(level) {
                counter.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The read of `SPSR_ELx` for the level in `data`, as a level.
fn spsr_level(data: *mut c_void) -> Option<(Level, Level)> {
    let level = data_level(data)?;
    let spsr = SHARED.get()?.registers.get()?.spsr[level.index()].as_ref()?;
    Some((level, arch::spsr_level(read_u64(spsr)?)?))
}

/// A block at a lower-level vector entry of the level in `data` starts:
/// an exception came from the level `SPSR_ELx` holds.
extern "C" fn entered_from_below(_cpu: c_uint, data: *mut c_void) {
    if let Some((to, from)) = spsr_level(data) {
        if from < to {
            CHANGES[from.index()][to.index()].fetch_add(1, Relaxed);
        }
    }
}

/// An `ERET` at the level in `data` runs: to the level `SPSR_ELx` holds.
/// (An illegal return, which stays, would count too; nothing here makes
/// one.)
extern "C" fn returning(_cpu: c_uint, data: *mut c_void) {
    if let Some((from, to)) = spsr_level(data) {
        if to < from {
            CHANGES[from.index()][to.index()].fetch_add(1, Relaxed);
        }
    }
}

/// The window name a marker passes in x0 and x1.
fn marker_name(shared: &Shared) -> Result<String, String> {
    let registers = shared.registers.get().ok_or("no registers")?;
    match (read_u64(&registers.x0), read_u64(&registers.x1)) {
        (Some(x0), Some(x1)) => name_from_registers(x0, x1).map_err(|e| e.to_string()),
        _ => Err("x0 or x1 unreadable".into()),
    }
}

extern "C" fn started(_cpu: c_uint, _data: *mut c_void) {
    marked(Mark::Start);
}

extern "C" fn ended(_cpu: c_uint, _data: *mut c_void) {
    marked(Mark::End);
}

fn marked(mark: Mark) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let name = marker_name(shared);
    let now = snapshot();
    let mut state = shared.state();
    match (name, mark) {
        (Ok(name), Mark::Start) => state.windows.start(name, now),
        (Ok(name), Mark::End) => state.windows.end(&name, now),
        (Err(why), _) => state.windows.problem(format!("a {mark:?} marker: {why}")),
    }
}

/// `verify=on`: a block translated for the level in `data` starts.
extern "C" fn verify(_cpu: c_uint, data: *mut c_void) {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let Some(registers) = shared.registers.get() else {
        return;
    };
    let now = read_u64(&registers.cpsr).map(Level::from_pstate);
    let mut state = shared.state();
    state.verified += 1;
    if now != data_level(data) {
        state.mismatches += 1;
    }
}

/// At QEMU's exit: the report, to `out=` or else QEMU's log.
fn write_report() {
    let Some(shared) = SHARED.get() else {
        return;
    };
    let state = shared.state();
    let cpus = qemu_plugin_num_vcpus().unwrap_or(0).max(0) as u32;
    let mut report = state.windows.report(cpus, &snapshot());
    if shared.verify {
        report.push_str(&format!(
            "verify blocks={} mismatches={}\n",
            state.verified, state.mismatches
        ));
        if state.mismatches > 0 {
            report.push_str(&format!(
                "problem {} block executions ran at another level than translated for\n",
                state.mismatches
            ));
        }
    }
    match &shared.out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &report) {
                eprintln!("qemu-el-count: writing {}: {e}", path.display());
            }
        }
        None => {
            let _ = qemu_plugin_outs(report);
        }
    }
}
