//! The EL1 exception vectors: every vector saves all general-purpose and
//! FP/SIMD registers in a [`Frame`] on the current stack and calls the
//! guest's [`Guest::exception`](crate::Guest::exception) (through the
//! `handle_exception` symbol [`entry!`](crate::entry) defines); when that
//! returns, the registers are restored from the frame and the vector returns
//! to `frame.elr`. The entry code points VBAR_EL1 at them.

/// Registers saved on exception entry, in the order the vector code stores them.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// ELR_EL1: where to return.
    pub elr: u64,
    /// SPSR_EL1: the interrupted PSTATE.
    pub spsr: u64,
    /// ESR_EL1: the syndrome.
    pub esr: u64,
    /// FAR_EL1: the faulting address, for aborts.
    pub far: u64,
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
/// EL with SP_ELx.
pub const SYNC_CURRENT_EL_SPX: u64 = 4;

#[cfg(target_os = "none")]
core::arch::global_asm!(
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
