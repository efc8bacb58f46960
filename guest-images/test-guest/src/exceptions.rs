//! EL1 exception vectors, and [`catch`]: run a probe that is expected to
//! fault, record the synchronous exception and resume after it.
//!
//! The vectors (guest-rt's) save all general-purpose and FP/SIMD registers
//! and call [`handle`]. A synchronous exception taken while this vCPU has a
//! probe armed is recorded (ESR_EL1, FAR_EL1, ELR_EL1) and the probe resumes:
//! after the faulting instruction, or, for a probe that branched with `blr`,
//! at the return address in x30. Anything else is reported as
//! `FAIL unexpected exception ...` and the VM is powered off.

use crate::{console, firmware, smp};
use core::fmt;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, AtomicU8, Ordering};
use guest_rt::exceptions::{Frame, SYNC_CURRENT_EL_SPX};

/// Exception classes the tests expect (ESR_ELx.EC, Arm ARM D24.2.43).
pub mod ec {
    /// Instruction abort taken without a change in EL.
    pub const INSTRUCTION_ABORT_SAME: u8 = 0x21;
    /// Data abort taken without a change in EL.
    pub const DATA_ABORT_SAME: u8 = 0x25;
}

/// Synchronous external abort, not on a translation table walk: the fault
/// status code (DFSC/IFSC) of an abort the hypervisor injects.
pub const FSC_SYNC_EXTERNAL: u8 = 0x10;

/// A synchronous exception a probe raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1 (meaningful for aborts).
    pub far: u64,
    /// ELR_EL1: the instruction that raised it.
    pub elr: u64,
}

impl Fault {
    /// The exception class, ESR_EL1.EC.
    pub fn ec(&self) -> u8 {
        ((self.esr >> 26) & 0x3f) as u8
    }

    /// The fault status code of an abort, ESR_EL1.ISS[5:0] (DFSC or IFSC).
    pub fn fsc(&self) -> u8 {
        (self.esr & 0x3f) as u8
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "exception EC {:#x} FSC {:#x} (ESR {:#x}), FAR {:#x}, ELR {:#x}",
            self.ec(),
            self.fsc(),
            self.esr,
            self.far,
            self.elr
        )
    }
}

/// How a probe resumes after its exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resume {
    /// No probe armed: an exception is unexpected.
    Unarmed = 0,
    /// After the faulting instruction.
    Skip = 1,
    /// At x30: the probe branched with `blr`, so whatever faulted at or after
    /// the branch target returns to just after the branch.
    Return = 2,
}

/// One vCPU's probe state. Only that vCPU touches it (from its code and its
/// exception handler), so relaxed atomics suffice; they are atomics only to
/// make the static shareable.
struct ProbeSlot {
    armed: AtomicU8,
    taken: AtomicBool,
    esr: AtomicU64,
    far: AtomicU64,
    elr: AtomicU64,
}

static PROBES: [ProbeSlot; smp::MAX_VCPUS] = [const {
    ProbeSlot {
        armed: AtomicU8::new(Resume::Unarmed as u8),
        taken: AtomicBool::new(false),
        esr: AtomicU64::new(0),
        far: AtomicU64::new(0),
        elr: AtomicU64::new(0),
    }
}; smp::MAX_VCPUS];

/// Set once a vCPU is reporting an unexpected exception: a second one (the
/// report itself faulting) must not recurse.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Runs `probe`, which may raise one synchronous exception, and returns its
/// result with the exception, if any; execution resumes after the faulting
/// instruction. `probe` must be a single instruction that may fault (an
/// access, an HVC or SMC) plus code that does not: a fault elsewhere in it
/// would skip the wrong instruction.
pub fn catch<R>(probe: impl FnOnce() -> R) -> (R, Option<Fault>) {
    armed(Resume::Skip, probe)
}

/// Like [`catch`], for a probe that branches with `blr` to code that may
/// fault: execution resumes at the return address in x30.
pub fn catch_call<R>(probe: impl FnOnce() -> R) -> (R, Option<Fault>) {
    armed(Resume::Return, probe)
}

fn armed<R>(resume: Resume, probe: impl FnOnce() -> R) -> (R, Option<Fault>) {
    let slot = &PROBES[smp::current_index()];
    slot.taken.store(false, Ordering::Relaxed);
    slot.armed.store(resume as u8, Ordering::Relaxed);
    // The exception handler runs on this vCPU between these fences; keep the
    // compiler from moving the slot accesses across the probe.
    compiler_fence(Ordering::SeqCst);
    let result = probe();
    compiler_fence(Ordering::SeqCst);
    slot.armed.store(Resume::Unarmed as u8, Ordering::Relaxed);
    let fault = slot.taken.load(Ordering::Relaxed).then(|| Fault {
        esr: slot.esr.load(Ordering::Relaxed),
        far: slot.far.load(Ordering::Relaxed),
        elr: slot.elr.load(Ordering::Relaxed),
    });
    (result, fault)
}

/// The guest's exception handler (see [`guest_rt::exceptions`]): records a
/// probe's fault, or reports the exception and powers off. Returning resumes
/// at `frame.elr`.
pub fn handle(kind: u64, frame: &mut Frame) {
    if kind == SYNC_CURRENT_EL_SPX && record_probe_fault(frame) {
        return;
    }
    unexpected(kind, frame)
}

/// Records the exception if this vCPU has a probe armed, and sets the return
/// address as the probe asked. Returns whether it did.
fn record_probe_fault(frame: &mut Frame) -> bool {
    let Some(slot) = PROBES.get(smp::current_index()) else {
        return false;
    };
    // One exception per probe: a second one is not the probe's.
    let resume = slot.armed.swap(Resume::Unarmed as u8, Ordering::Relaxed);
    frame.elr = if resume == Resume::Skip as u8 {
        // ELR is the faulting instruction (for an undefined HVC or SMC too):
        // skip it. A64 instructions are 4 bytes.
        slot.elr.store(frame.elr, Ordering::Relaxed);
        frame.elr.wrapping_add(4)
    } else if resume == Resume::Return as u8 {
        slot.elr.store(frame.elr, Ordering::Relaxed);
        frame.x[30]
    } else {
        return false;
    };
    slot.esr.store(frame.esr, Ordering::Relaxed);
    slot.far.store(frame.far, Ordering::Relaxed);
    slot.taken.store(true, Ordering::Relaxed);
    true
}

fn unexpected(kind: u64, frame: &Frame) -> ! {
    if REPORTING.swap(true, Ordering::Relaxed) {
        // The report itself faulted; nothing more can be said safely.
        smp::park()
    }
    console::print_line_emergency(format_args!(
        "FAIL unexpected exception ESR={:#x} FAR={:#x} ELR={:#x}",
        frame.esr, frame.far, frame.elr
    ));
    console::print_line_emergency(format_args!(
        "  on vcpu {}, vector {kind}, SPSR={:#x}, x30={:#x}",
        smp::current_index(),
        frame.spsr,
        frame.x[30]
    ));
    firmware::system_off()
}
