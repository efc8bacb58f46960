//! EL2 exception vectors and the report printed for an exception nobody
//! expected.
//!
//! Exceptions from a lower EL are guest exits, or exceptions of an EL0 task
//! (`task`), and go to the world switch (`vcpu`): both are entered through
//! `guest_enter`, whose caller knows which of the two it ran, so the exit
//! path needs no test of its own. Exceptions from EL2 itself are never expected: the hypervisor
//! must not fault. Those vectors save the full register state into a
//! [`Frame`] and call [`handle_exception`], which reports it in full (class
//! decoded from ESR_EL2, FAR, ELR, SPSR, registers) and stops the CPU cleanly.

use crate::{cpu, percpu};
use aarch64_cpu::registers::{CurrentEL, HCR_EL2, SCTLR_EL2};
use core::arch::global_asm;
use core::fmt;
use log::error;
use syndrome::{Esr, Spsr};
use tock_registers::interfaces::Readable;

/// Registers saved on exception entry, in the order the vector code stores them.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// x0 to x30.
    pub x: [u64; 31],
    /// The stack pointer at the time of the exception.
    pub sp: u64,
    /// ELR_EL2: where the exception was taken.
    pub elr: u64,
    /// SPSR_EL2: the interrupted PSTATE.
    pub spsr: u64,
    /// ESR_EL2: the syndrome.
    pub esr: u64,
    /// FAR_EL2: the faulting virtual address, for aborts.
    pub far: u64,
}

/// Size of [`Frame`], used by the vector code.
const FRAME_SIZE: usize = core::mem::size_of::<Frame>();
const _: () = assert!(
    FRAME_SIZE.is_multiple_of(16),
    "the stack must stay 16-byte aligned"
);

/// Which of the 16 vectors was taken (Arm ARM D1.3.1 "Exception vectors"):
/// four origins (current EL with SP_EL0 or SP_ELx, lower EL in AArch64 or
/// AArch32), each with four kinds (synchronous, IRQ, FIQ, SError).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Vector(u64);

impl Vector {
    fn from_index(index: u64) -> Option<Self> {
        (index < 16).then_some(Self(index))
    }

    fn is_synchronous(self) -> bool {
        self.0.is_multiple_of(4)
    }
}

impl fmt::Display for Vector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.0 % 4 {
            0 => "synchronous",
            1 => "IRQ",
            2 => "FIQ",
            _ => "SError",
        };
        let origin = match self.0 / 4 {
            0 => "current EL with SP_EL0",
            1 => "current EL with SP_EL2",
            2 => "lower EL in AArch64",
            _ => "lower EL in AArch32",
        };
        write!(f, "{kind} exception from {origin}")
    }
}

global_asm!(
    r#"
// An exception taken from EL2 itself runs on this CPU's exception stack
// (SP_EL0, set up by `percpu::init_this_cpu`): the stack in use may be the
// very thing that overflowed. x1 carries the interrupted SP_EL2.
.macro from_el2 index
    .balign 0x80
    msr     spsel, #0
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mov     x0, #\index
    msr     spsel, #1
    mov     x1, sp
    msr     spsel, #0
    b       exception_common
.endm

// An exception from a lower EL is a guest exit or a task's exception: only
// guests (EL1, EL0) and tasks (EL0 with TGE = 1) run below EL2, both
// entered by `vcpu::guest_enter`. It runs on SP_EL2 as that left it.
.macro from_lower_el index
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x0, #\index
    b       guest_exit
.endm

// EL2 only runs on SP_EL0 while handling an exception; a second one there
// means the report itself failed, and trying again could only recurse.
.macro nested
    .balign 0x80
    b       park
.endm

.section .text.vectors, "ax"
.balign 0x800
.global exception_vectors
exception_vectors:
    nested
    nested
    nested
    nested
    from_el2 4
    from_el2 5
    from_el2 6
    from_el2 7
    from_lower_el 8
    from_lower_el 9
    from_lower_el 10
    from_lower_el 11
    from_lower_el 12
    from_lower_el 13
    from_lower_el 14
    from_lower_el 15

// x0 = vector index, x1 = interrupted SP; x0 and x1 are saved already.
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
    stp     x30, x1, [sp, #16 * 15]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [sp, #16 * 16]
    mrs     x2, esr_el2
    mrs     x3, far_el2
    stp     x2, x3, [sp, #16 * 17]
    mov     x1, sp
    bl      handle_exception
    b       park
"#,
    frame_size = const FRAME_SIZE,
);

/// Called by the vector code with the vector index and the saved registers.
///
/// Every exception is unexpected at this stage: report it and stop this CPU.
#[unsafe(no_mangle)]
extern "C" fn handle_exception(index: u64, frame: &Frame) -> ! {
    report(index, frame);
    cpu::stop_this_cpu()
}

fn report(index: u64, frame: &Frame) {
    let cpu = percpu::current_index();
    match Vector::from_index(index) {
        Some(vector) => error!("unexpected exception on cpu{cpu}: {vector}"),
        None => error!("unexpected exception on cpu{cpu}: unknown vector {index}"),
    }
    let esr = Esr(frame.esr);
    if Vector::from_index(index).is_some_and(Vector::is_synchronous) {
        error!("  ESR_EL2 {:#018x}: {esr}", frame.esr);
        error!("  FAR_EL2 {:#018x}", frame.far);
        if let Some(stack) = percpu::this_cpu().and_then(|p| p.overflowed_stack(frame.far)) {
            error!("  FAR is in the guard page below cpu{cpu}'s {stack}: stack overflow");
        }
    } else {
        error!(
            "  ESR_EL2 {:#018x} (not a synchronous exception)",
            frame.esr
        );
    }
    error!("  ELR_EL2 {:#018x}", frame.elr);
    error!("  SPSR_EL2 {:#018x}: {}", frame.spsr, Spsr(frame.spsr));
    error!(
        "  CurrentEL {}, HCR_EL2 {:#x}, SCTLR_EL2 {:#x}",
        CurrentEL.read(CurrentEL::EL),
        HCR_EL2.get(),
        SCTLR_EL2.get()
    );
    for (row, regs) in frame.x.chunks(4).enumerate() {
        let mut line = heapless::String::<128>::new();
        for (col, value) in regs.iter().enumerate() {
            // Width is bounded: 4 registers of at most 24 characters each.
            let _ = fmt::write(
                &mut line,
                format_args!("x{:<2} {:#018x}  ", row * 4 + col, value),
            );
        }
        error!("  {}", line.trim_end());
    }
    error!("  sp  {:#018x}", frame.sp);
}
