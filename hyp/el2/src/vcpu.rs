//! A vCPU's register state and the world switch into and out of a guest.
//!
//! [`GuestRegs`] holds what the assembly saves and loads on every switch:
//! the general registers, SP_EL0, PC and PSTATE. Its FP/SIMD registers are
//! switched only around a run of exits ([`load_fp`], [`save_fp`]): the
//! hypervisor is built for a target without floating point
//! (`aarch64-unknown-none-softfloat`), so no code of its own ever touches
//! them and the guest's stay live in the CPU while it handles exits.
//! [`El1Regs`] is the guest's EL1 system register state, switched in Rust
//! around a run of exits for the same reason. With VHE, the `_EL12` and `_EL02`
//! names reach the guest's EL1 registers; the plain `_EL1` names of the
//! redirected registers would reach EL2's own.

use core::arch::{asm, global_asm};
use core::mem::offset_of;

/// PSTATE of a vCPU at reset: EL1h with D, A, I and F masked (Linux's
/// arm64 boot protocol asks for all four masked).
pub const PSTATE_EL1H_MASKED: u64 = 0x3c5;

/// A vCPU's registers, laid out for the assembly: the general ones are
/// switched on every entry and exit, FP/SIMD around a run of exits.
#[repr(C, align(16))]
#[derive(Clone, Debug, Default)]
pub struct GuestRegs {
    /// x0 to x30.
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp_el0: u64,
    /// The guest PC (ELR_EL2 on exit).
    pub pc: u64,
    /// The guest PSTATE (SPSR_EL2 on exit).
    pub pstate: u64,
    /// FPCR.
    pub fpcr: u64,
    /// FPSR.
    pub fpsr: u64,
    /// Q0 to Q31.
    pub q: [u128; 32],
}

impl GuestRegs {
    /// The value of general register `n` as an instruction reads it: x31
    /// is the zero register in loads and stores.
    pub fn read(&self, n: u8) -> u64 {
        self.x.get(usize::from(n)).copied().unwrap_or(0)
    }

    /// Writes general register `n`; writes to x31 (the zero register) vanish.
    pub fn write(&mut self, n: u8, value: u64) {
        if let Some(x) = self.x.get_mut(usize::from(n)) {
            *x = value;
        }
    }
}

/// Declares the saved EL1 system registers once: the struct, its save and
/// its restore.
macro_rules! el1_regs {
    ($($field:ident: $reg:literal),* $(,)?) => {
        /// The guest's EL1 (and EL0-visible) system registers.
        #[derive(Clone, Debug, Default)]
        pub struct El1Regs {
            $(
                #[doc = concat!("`", $reg, "`")]
                pub $field: u64,
            )*
        }

        impl El1Regs {
            /// Reads the live registers into `self`.
            pub fn save(&mut self) {
                $(
                    // SAFETY: Reading a system register has no side effects.
                    unsafe {
                        asm!(concat!(".arch armv8.1-a\nmrs {}, ", $reg), out(reg) self.$field,
                            options(nomem, nostack, preserves_flags));
                    }
                )*
            }

            /// Loads `self` into the live registers. Only the guest runs
            /// with them, so this affects no hypervisor code.
            pub fn restore(&self) {
                $(
                    // SAFETY: These registers configure the EL1&0 regime,
                    // which the hypervisor (running in EL2&0) never uses.
                    unsafe {
                        asm!(concat!(".arch armv8.1-a\nmsr ", $reg, ", {}"), in(reg) self.$field,
                            options(nomem, nostack, preserves_flags));
                    }
                )*
            }
        }
    };
}

el1_regs! {
    sctlr: "sctlr_el12",
    cpacr: "cpacr_el12",
    ttbr0: "ttbr0_el12",
    ttbr1: "ttbr1_el12",
    tcr: "tcr_el12",
    esr: "esr_el12",
    afsr0: "afsr0_el12",
    afsr1: "afsr1_el12",
    far: "far_el12",
    mair: "mair_el12",
    amair: "amair_el12",
    vbar: "vbar_el12",
    contextidr: "contextidr_el12",
    cntkctl: "cntkctl_el12",
    elr: "elr_el12",
    spsr: "spsr_el12",
    cntv_ctl: "cntv_ctl_el02",
    cntv_cval: "cntv_cval_el02",
    sp_el1: "sp_el1",
    tpidr_el1: "tpidr_el1",
    tpidr_el0: "tpidr_el0",
    tpidrro_el0: "tpidrro_el0",
    par: "par_el1",
    csselr: "csselr_el1",
    mdscr: "mdscr_el1",
}

/// Everything that is one vCPU.
#[derive(Clone, Debug, Default)]
pub struct VcpuState {
    /// Switched on every entry and exit.
    pub regs: GuestRegs,
    /// Switched around a run of exits.
    pub el1: El1Regs,
    /// The virtual GIC CPU interface's own state (list registers aside).
    pub cpu_if: crate::ich::CpuInterface,
    /// The emulated EL1 physical timer.
    pub ptimer: vtimer::Timer,
}

impl VcpuState {
    /// A vCPU as the Linux boot protocol (and PSCI `CPU_ON`) starts it: at
    /// `pc` in EL1h, MMU and caches off, interrupts masked, x0 = `x0`.
    pub fn at_reset(pc: u64, x0: u64) -> Self {
        let mut state = Self::default();
        state.regs.pc = pc;
        state.regs.pstate = PSTATE_EL1H_MASKED;
        state.regs.x[0] = x0;
        // MMU and caches off: only the RES1 bits set.
        state.el1.sctlr = crate::boot::SCTLR_RES1;
        state
    }
}

/// Why the guest stopped running: which exception vector was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A synchronous exception: ESR_EL2 says which.
    Synchronous,
    /// A physical IRQ.
    Irq,
    /// A physical FIQ.
    Fiq,
    /// An SError.
    SError,
    /// An exception from AArch32, which guests may not use.
    AArch32(u64),
}

impl Exit {
    fn from_vector(index: u64) -> Self {
        match index {
            8 => Self::Synchronous,
            9 => Self::Irq,
            10 => Self::Fiq,
            11 => Self::SError,
            other => Self::AArch32(other),
        }
    }
}

/// Runs the guest until it takes an exception to EL2.
///
/// The caller has loaded the guest's EL1 registers, stage 2 and HCR_EL2; on
/// return ESR_EL2, FAR_EL2 and HPFAR_EL2 describe the exit.
pub fn run(regs: &mut GuestRegs) -> Exit {
    // SAFETY: `guest_enter` saves every register the AAPCS64 requires a
    // callee to preserve, and restores them with the stack pointer when the
    // guest exits; it only writes `regs` and the EL2 state the guest owns.
    // The guest runs at EL1 under stage 2 and cannot reach hypervisor memory.
    let vector = unsafe { guest_enter(regs) };
    Exit::from_vector(vector)
}

/// Loads the guest's FP/SIMD registers, before a run of exits.
pub fn load_fp(regs: &GuestRegs) {
    // SAFETY: Writes only the FP/SIMD registers, FPCR and FPSR, which no
    // hypervisor code uses (it is built without floating point).
    unsafe { guest_fp_load(regs) }
}

/// Saves the guest's FP/SIMD registers, after a run of exits.
pub fn save_fp(regs: &mut GuestRegs) {
    // SAFETY: Reads the FP/SIMD registers into `regs` only.
    unsafe { guest_fp_save(regs) }
}

unsafe extern "C" {
    /// Enters the guest described by `regs`; returns the exception vector
    /// index (8..=15) of the exit.
    fn guest_enter(regs: *mut GuestRegs) -> u64;
    fn guest_fp_load(regs: *const GuestRegs);
    fn guest_fp_save(regs: *mut GuestRegs);
}

/// Bytes the host keeps on its stack while a guest runs: x19..x30
/// (AAPCS64 callee-saved; d8..d15 too, but the hypervisor has no floating
/// point), then the guest state pointer and the host's SP_EL0 (the
/// exception stack).
const HOST_SAVE: usize = 12 * 8 + 16;

global_asm!(
    r#"
.arch_extension fp
.arch_extension simd
.macro save_fp base, tmp
    add     \tmp, \base, #{q}
    stp     q0, q1, [\tmp, #32 * 0]
    stp     q2, q3, [\tmp, #32 * 1]
    stp     q4, q5, [\tmp, #32 * 2]
    stp     q6, q7, [\tmp, #32 * 3]
    stp     q8, q9, [\tmp, #32 * 4]
    stp     q10, q11, [\tmp, #32 * 5]
    stp     q12, q13, [\tmp, #32 * 6]
    stp     q14, q15, [\tmp, #32 * 7]
    stp     q16, q17, [\tmp, #32 * 8]
    stp     q18, q19, [\tmp, #32 * 9]
    stp     q20, q21, [\tmp, #32 * 10]
    stp     q22, q23, [\tmp, #32 * 11]
    stp     q24, q25, [\tmp, #32 * 12]
    stp     q26, q27, [\tmp, #32 * 13]
    stp     q28, q29, [\tmp, #32 * 14]
    stp     q30, q31, [\tmp, #32 * 15]
    mrs     \tmp, fpcr
    str     \tmp, [\base, #{fpcr}]
    mrs     \tmp, fpsr
    str     \tmp, [\base, #{fpsr}]
.endm

.macro load_fp base, tmp
    add     \tmp, \base, #{q}
    ldp     q0, q1, [\tmp, #32 * 0]
    ldp     q2, q3, [\tmp, #32 * 1]
    ldp     q4, q5, [\tmp, #32 * 2]
    ldp     q6, q7, [\tmp, #32 * 3]
    ldp     q8, q9, [\tmp, #32 * 4]
    ldp     q10, q11, [\tmp, #32 * 5]
    ldp     q12, q13, [\tmp, #32 * 6]
    ldp     q14, q15, [\tmp, #32 * 7]
    ldp     q16, q17, [\tmp, #32 * 8]
    ldp     q18, q19, [\tmp, #32 * 9]
    ldp     q20, q21, [\tmp, #32 * 10]
    ldp     q22, q23, [\tmp, #32 * 11]
    ldp     q24, q25, [\tmp, #32 * 12]
    ldp     q26, q27, [\tmp, #32 * 13]
    ldp     q28, q29, [\tmp, #32 * 14]
    ldp     q30, q31, [\tmp, #32 * 15]
    ldr     \tmp, [\base, #{fpcr}]
    msr     fpcr, \tmp
    ldr     \tmp, [\base, #{fpsr}]
    msr     fpsr, \tmp
.endm

.section .text.guest_enter, "ax"
.global guest_enter
// x0 = &mut GuestRegs. Returns the exit's vector index in x0.
guest_enter:
    sub     sp, sp, #{host_save}
    stp     x19, x20, [sp, #16 * 0]
    stp     x21, x22, [sp, #16 * 1]
    stp     x23, x24, [sp, #16 * 2]
    stp     x25, x26, [sp, #16 * 3]
    stp     x27, x28, [sp, #16 * 4]
    stp     x29, x30, [sp, #16 * 5]
    mrs     x1, sp_el0
    stp     x0, x1, [sp, #16 * 6]

    ldr     x1, [x0, #{sp_el0}]
    msr     sp_el0, x1
    ldp     x1, x2, [x0, #{pc}]
    msr     elr_el2, x1
    msr     spsr_el2, x2
    ldp     x2, x3, [x0, #16 * 1]
    ldp     x4, x5, [x0, #16 * 2]
    ldp     x6, x7, [x0, #16 * 3]
    ldp     x8, x9, [x0, #16 * 4]
    ldp     x10, x11, [x0, #16 * 5]
    ldp     x12, x13, [x0, #16 * 6]
    ldp     x14, x15, [x0, #16 * 7]
    ldp     x16, x17, [x0, #16 * 8]
    ldp     x18, x19, [x0, #16 * 9]
    ldp     x20, x21, [x0, #16 * 10]
    ldp     x22, x23, [x0, #16 * 11]
    ldp     x24, x25, [x0, #16 * 12]
    ldp     x26, x27, [x0, #16 * 13]
    ldp     x28, x29, [x0, #16 * 14]
    ldr     x30, [x0, #16 * 15]
    ldp     x0, x1, [x0, #16 * 0]
    eret
    // No speculation past the ERET.
    dsb     nsh
    isb

// Reached from the lower-EL vectors, on SP_EL2 as `guest_enter` left it,
// with the guest's x0 and x1 pushed and x0 = the vector index.
.global guest_exit
guest_exit:
    ldr     x1, [sp, #16 + 16 * 6]
    stp     x2, x3, [x1, #16 * 1]
    stp     x4, x5, [x1, #16 * 2]
    stp     x6, x7, [x1, #16 * 3]
    stp     x8, x9, [x1, #16 * 4]
    stp     x10, x11, [x1, #16 * 5]
    stp     x12, x13, [x1, #16 * 6]
    stp     x14, x15, [x1, #16 * 7]
    stp     x16, x17, [x1, #16 * 8]
    stp     x18, x19, [x1, #16 * 9]
    stp     x20, x21, [x1, #16 * 10]
    stp     x22, x23, [x1, #16 * 11]
    stp     x24, x25, [x1, #16 * 12]
    stp     x26, x27, [x1, #16 * 13]
    stp     x28, x29, [x1, #16 * 14]
    str     x30, [x1, #16 * 15]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x1, #16 * 0]
    mrs     x2, sp_el0
    str     x2, [x1, #{sp_el0}]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x1, #{pc}]

    ldp     x1, x2, [sp, #16 * 6]
    msr     sp_el0, x2
    ldp     x19, x20, [sp, #16 * 0]
    ldp     x21, x22, [sp, #16 * 1]
    ldp     x23, x24, [sp, #16 * 2]
    ldp     x25, x26, [sp, #16 * 3]
    ldp     x27, x28, [sp, #16 * 4]
    ldp     x29, x30, [sp, #16 * 5]
    add     sp, sp, #{host_save}
    ret

.section .text.guest_fp, "ax"
// x0 = &GuestRegs.
.global guest_fp_load
guest_fp_load:
    load_fp x0, x1
    ret

// x0 = &mut GuestRegs.
.global guest_fp_save
guest_fp_save:
    save_fp x0, x1
    ret
"#,
    host_save = const HOST_SAVE,
    sp_el0 = const offset_of!(GuestRegs, sp_el0),
    pc = const offset_of!(GuestRegs, pc),
    fpcr = const offset_of!(GuestRegs, fpcr),
    fpsr = const offset_of!(GuestRegs, fpsr),
    q = const offset_of!(GuestRegs, q),
);

const _: () = {
    assert!(offset_of!(GuestRegs, pstate) == offset_of!(GuestRegs, pc) + 8);
    assert!(HOST_SAVE.is_multiple_of(16));
};
