//! The GICv3 virtual CPU interface's hypervisor controls (`ICH_*_EL2`):
//! loading a vCPU's list registers and interface state before it runs, and
//! saving them when it exits.
//!
//! The list registers are filled from the VM's `vgic` model on every entry
//! and read back into it on every exit, so between runs a vCPU's interrupt
//! state lives in the model, not on any physical CPU: it can run next
//! anywhere. What the model does not hold, the guest's own CPU-interface
//! state (priority mask, binary point, group enables in ICH_VMCR_EL2, the
//! active-priority bits in ICH_AP1R<n>_EL2), is saved in [`CpuInterface`].

use core::arch::asm;
use vgic::MAX_LIST_REGISTERS;

/// ICH_HCR_EL2.En: the virtual CPU interface is on.
const HCR_EN: u64 = 1 << 0;
/// ICH_HCR_EL2.UIE: maintenance interrupt when at most one list register
/// holds an interrupt, to refill them (the model had more than fitted).
const HCR_UIE: u64 = 1 << 1;

/// A vCPU's CPU-interface state that is not in the list registers.
#[derive(Clone, Debug, Default)]
pub struct CpuInterface {
    /// ICH_VMCR_EL2: the guest's PMR, BPR and group enables.
    vmcr: u64,
    /// ICH_AP1R<n>_EL2: Group 1 active priorities. (Group 0 is never
    /// delivered, so ICH_AP0R<n>_EL2 stay zero.)
    ap1r: [u64; 4],
}

/// What the hardware implements, from ICH_VTR_EL2.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Number of list registers.
    pub list_registers: usize,
    /// Number of ICH_AP1R<n>_EL2 registers in use (1, 2 or 4 for 5, 6 or 7
    /// preemption bits).
    active_priority_registers: usize,
}

impl Limits {
    /// Reads ICH_VTR_EL2.
    pub fn read() -> Self {
        let vtr: u64;
        // SAFETY: Reading ICH_VTR_EL2 has no side effects.
        unsafe { asm!("mrs {}, s3_4_c12_c11_1", out(reg) vtr, options(nomem, nostack)) };
        let list_registers = ((vtr & 0x1f) as usize + 1).min(MAX_LIST_REGISTERS);
        let pre_bits = ((vtr >> 26) & 0x7) as u32 + 1;
        Self {
            list_registers,
            active_priority_registers: 1 << pre_bits.saturating_sub(5).min(2),
        }
    }
}

/// Declares `$read(n)` and `$write(n, value)` for a numbered family of
/// system registers (the list registers, the active-priority registers),
/// whose names must be constants in the instruction.
macro_rules! register_array {
    ($read:ident, $write:ident, $($n:literal: $reg:literal),* $(,)?) => {
        fn $write(n: usize, value: u64) {
            match n {
                $(
                    // SAFETY: These registers only affect the virtual CPU
                    // interface, which only the guest uses.
                    $n => unsafe {
                        asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nomem, nostack))
                    },
                )*
                _ => {}
            }
        }

        fn $read(n: usize) -> u64 {
            let value: u64;
            match n {
                $(
                    // SAFETY: Reading these registers has no side effects.
                    $n => unsafe {
                        asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack))
                    },
                )*
                _ => value = 0,
            }
            value
        }
    };
}

register_array! {
    read_lr, write_lr,
    0: "s3_4_c12_c12_0", 1: "s3_4_c12_c12_1", 2: "s3_4_c12_c12_2", 3: "s3_4_c12_c12_3",
    4: "s3_4_c12_c12_4", 5: "s3_4_c12_c12_5", 6: "s3_4_c12_c12_6", 7: "s3_4_c12_c12_7",
    8: "s3_4_c12_c13_0", 9: "s3_4_c12_c13_1", 10: "s3_4_c12_c13_2", 11: "s3_4_c12_c13_3",
    12: "s3_4_c12_c13_4", 13: "s3_4_c12_c13_5", 14: "s3_4_c12_c13_6", 15: "s3_4_c12_c13_7",
}

register_array! {
    read_ap1r, write_ap1r,
    0: "s3_4_c12_c9_0", 1: "s3_4_c12_c9_1", 2: "s3_4_c12_c9_2", 3: "s3_4_c12_c9_3",
}

/// Loads a vCPU into the virtual CPU interface: `lrs` (as the model's
/// `flush` filled them) and its interface state, and turns the interface
/// on; `refill` asks for the underflow maintenance interrupt.
pub fn load(limits: Limits, lrs: &[u64], cpu_if: &CpuInterface, refill: bool) {
    for (n, &lr) in lrs.iter().enumerate().take(limits.list_registers) {
        write_lr(n, lr);
    }
    for n in 0..limits.active_priority_registers {
        write_ap1r(n, cpu_if.ap1r[n]);
    }
    let hcr = HCR_EN | if refill { HCR_UIE } else { 0 };
    // SAFETY: ICH_VMCR_EL2 and ICH_HCR_EL2 only configure the virtual CPU
    // interface, which only the guest uses.
    unsafe {
        asm!(
            "msr s3_4_c12_c11_7, {vmcr}",
            "msr s3_4_c12_c11_0, {hcr}",
            vmcr = in(reg) cpu_if.vmcr,
            hcr = in(reg) hcr,
            options(nomem, nostack)
        )
    };
}

/// Saves the virtual CPU interface after an exit into `lrs` and `cpu_if`,
/// and turns it off, so that no maintenance interrupt is raised while the
/// hypervisor runs.
pub fn save(limits: Limits, lrs: &mut [u64], cpu_if: &mut CpuInterface) {
    for (n, lr) in lrs.iter_mut().enumerate().take(limits.list_registers) {
        *lr = read_lr(n);
    }
    for n in 0..limits.active_priority_registers {
        cpu_if.ap1r[n] = read_ap1r(n);
    }
    // SAFETY: Reading ICH_VMCR_EL2 has no side effects; clearing
    // ICH_HCR_EL2 turns off the virtual interface no guest is using now.
    unsafe {
        asm!(
            "mrs {vmcr}, s3_4_c12_c11_7",
            "msr s3_4_c12_c11_0, xzr",
            "isb",
            vmcr = out(reg) cpu_if.vmcr,
            options(nomem, nostack)
        )
    };
}
