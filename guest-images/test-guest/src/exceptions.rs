//! EL1 exception vectors, and [`catch`]: run a probe that is expected to
//! fault, record the synchronous exception and resume after it.
//!
//! Every vector saves all general-purpose and FP/SIMD registers and calls
//! [`handle_exception`]. A synchronous exception taken while this vCPU has a
//! probe armed is recorded (ESR_EL1, FAR_EL1, ELR_EL1) and the probe resumes:
//! after the faulting instruction, or, for a probe that branched with `blr`,
//! at the return address in x30. Anything else is reported as
//! `FAIL unexpected exception ...` and the VM is powered off.

use crate::{console, firmware, smp};
use core::arch::global_asm;
use core::fmt;
use core::sync::atomic::{compiler_fence, AtomicBool, AtomicU64, AtomicU8, Ordering};

/// Registers saved on exception entry, in the order the vector code stores them.
#[repr(C)]
#[derive(Debug)]
struct Frame {
    /// x0 to x30.
    x: [u64; 31],
    /// ELR_EL1: where to return.
    elr: u64,
    /// SPSR_EL1: the interrupted PSTATE.
    spsr: u64,
    /// ESR_EL1: the syndrome.
    esr: u64,
    /// FAR_EL1: the faulting address, for aborts.
    far: u64,
    /// Keeps the FP/SIMD area 16-byte aligned.
    _pad: u64,
    /// q0 to q31, FPSR and FPCR: the handler's Rust code may use them, and the
    /// interrupted code does not expect them to change.
    fp: [u64; 66],
}

const FRAME_SIZE: usize = core::mem::size_of::<Frame>();
const _: () = assert!(
    FRAME_SIZE.is_multiple_of(16),
    "the stack stays 16-byte aligned"
);
/// Offset of `elr` in [`Frame`]; the vector code stores `elr` and `spsr`,
/// then `esr` and `far`, as pairs from here.
const FRAME_ELR: usize = core::mem::offset_of!(Frame, elr);
const _: () = assert!(
    core::mem::offset_of!(Frame, spsr) == FRAME_ELR + 8
        && core::mem::offset_of!(Frame, esr) == FRAME_ELR + 16
        && core::mem::offset_of!(Frame, far) == FRAME_ELR + 24
);
/// Offset of `fp` in [`Frame`], 16-byte aligned for `stp q`.
const FRAME_FP: usize = core::mem::offset_of!(Frame, fp);
const _: () = assert!(FRAME_FP.is_multiple_of(16));

/// Vector index (Arm ARM D1.3.1): the synchronous exception from the current
/// EL with SP_ELx, the only kind a probe may cause.
const SYNC_CURRENT_EL_SPX: u64 = 4;

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

global_asm!(
    r#"
.macro vector kind
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp]
    mov     x0, #\kind
    b       exception_common
.endm

.section .text.vectors, "ax"
.balign 0x800
.global exception_vectors
exception_vectors:
    .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    vector \kind
    .endr

// x0 = vector index; x0 and x1 are saved already.
exception_common:
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    str     x30, [sp, #16 * 15]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #{elr}]
    mrs     x2, esr_el1
    mrs     x3, far_el1
    stp     x2, x3, [sp, #{elr} + 16]
    add     x2, sp, #{fp}
    stp     q0, q1, [x2, #32 * 0]
    stp     q2, q3, [x2, #32 * 1]
    stp     q4, q5, [x2, #32 * 2]
    stp     q6, q7, [x2, #32 * 3]
    stp     q8, q9, [x2, #32 * 4]
    stp     q10, q11, [x2, #32 * 5]
    stp     q12, q13, [x2, #32 * 6]
    stp     q14, q15, [x2, #32 * 7]
    stp     q16, q17, [x2, #32 * 8]
    stp     q18, q19, [x2, #32 * 9]
    stp     q20, q21, [x2, #32 * 10]
    stp     q22, q23, [x2, #32 * 11]
    stp     q24, q25, [x2, #32 * 12]
    stp     q26, q27, [x2, #32 * 13]
    stp     q28, q29, [x2, #32 * 14]
    stp     q30, q31, [x2, #32 * 15]
    mrs     x3, fpsr
    mrs     x4, fpcr
    add     x2, x2, #32 * 16
    stp     x3, x4, [x2]

    mov     x1, sp
    bl      handle_exception

    add     x2, sp, #{fp}
    ldp     q0, q1, [x2, #32 * 0]
    ldp     q2, q3, [x2, #32 * 1]
    ldp     q4, q5, [x2, #32 * 2]
    ldp     q6, q7, [x2, #32 * 3]
    ldp     q8, q9, [x2, #32 * 4]
    ldp     q10, q11, [x2, #32 * 5]
    ldp     q12, q13, [x2, #32 * 6]
    ldp     q14, q15, [x2, #32 * 7]
    ldp     q16, q17, [x2, #32 * 8]
    ldp     q18, q19, [x2, #32 * 9]
    ldp     q20, q21, [x2, #32 * 10]
    ldp     q22, q23, [x2, #32 * 11]
    ldp     q24, q25, [x2, #32 * 12]
    ldp     q26, q27, [x2, #32 * 13]
    ldp     q28, q29, [x2, #32 * 14]
    ldp     q30, q31, [x2, #32 * 15]
    add     x2, x2, #32 * 16
    ldp     x3, x4, [x2]
    msr     fpsr, x3
    msr     fpcr, x4
    ldp     x2, x3, [sp, #{elr}]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    ldr     x30, [sp, #16 * 15]
    add     sp, sp, #{frame_size}
    eret
"#,
    frame_size = const FRAME_SIZE,
    elr = const FRAME_ELR,
    fp = const FRAME_FP,
);

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

/// Called by the vector code with the vector index and the saved registers;
/// returning resumes at `frame.elr`.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(kind: u64, frame: &mut Frame) {
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
