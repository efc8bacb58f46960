//! Just enough of the GICv3 and the timers for a wake-up: a timer's PPI
//! enabled in vCPU 0's redistributor and the CPU interface, with PSTATE.I
//! left masked, so the interrupt ends a WFI (or a standby `CPU_SUSPEND`)
//! without ever being taken.

use aarch64_cpu::registers::{Readable, Writeable, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0};
use core::arch::asm;

/// The `virt` machine's distributor and vCPU 0's redistributor.
const GICD: usize = 0x0800_0000;
const GICR0: usize = 0x080A_0000;
/// GICD_CTLR: EnableGrp1 (with one security state) and ARE.
const GICD_CTLR_GRP1_ARE: u32 = (1 << 1) | (1 << 4);
/// GICR_WAKER and its ProcessorSleep bit.
const GICR_WAKER: usize = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// The SGI_base frame's IGROUPR0 and ISENABLER0.
const GICR_SGI_IGROUPR0: usize = 0x1_0080;
const GICR_SGI_ISENABLER0: usize = 0x1_0100;
/// The EL1 virtual timer's PPI (INTID 27).
pub const VIRT_TIMER_INTID: u32 = 27;
/// The EL1 physical timer's PPI (INTID 30).
pub const PHYS_TIMER_INTID: u32 = 30;
/// ICC_HPPIR1_EL1's INTID field.
const INTID_MASK: u64 = 0xff_ffff;

fn write32(addr: usize, value: u32) {
    // SAFETY: `addr` is a GIC register in the device map, which only this
    // module touches.
    unsafe { (addr as *mut u32).write_volatile(value) };
}

fn read32(addr: usize) -> u32 {
    // SAFETY: As for `write32`.
    unsafe { (addr as *const u32).read_volatile() }
}

/// Enables PPI `intid` on vCPU 0 (Group 1; distributor and CPU interface
/// on), so that it wakes the vCPU from WFI. Call on vCPU 0 only.
pub fn enable_ppi(intid: u32) {
    write32(GICD, GICD_CTLR_GRP1_ARE);
    write32(
        GICR0 + GICR_WAKER,
        read32(GICR0 + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    let bit = 1 << intid;
    write32(
        GICR0 + GICR_SGI_IGROUPR0,
        read32(GICR0 + GICR_SGI_IGROUPR0) | bit,
    );
    write32(GICR0 + GICR_SGI_ISENABLER0, bit);
    // SAFETY: ICC_PMR_EL1 = 0xff lets every priority through; ICC_IGRPEN1
    // enables Group 1. Neither unmasks PSTATE.I.
    unsafe {
        asm!(
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            options(nomem, nostack)
        )
    };
}

/// Arms vCPU 0's virtual timer to fire `ticks` from now, its PPI enabled.
/// Call on vCPU 0 only.
pub fn arm_wakeup(ticks: u64) {
    enable_ppi(VIRT_TIMER_INTID);
    CNTV_CVAL_EL0.set(CNTVCT_EL0.get().wrapping_add(ticks));
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
}

/// Turns the virtual timer off again (its level interrupt drops with it).
pub fn disarm() {
    CNTV_CTL_EL0.set(0);
}

/// The INTID of the highest-priority pending interrupt (1023: none).
pub fn highest_pending() -> u32 {
    let intid: u64;
    // SAFETY: Reading ICC_HPPIR1_EL1 has no side effects.
    unsafe { asm!("mrs {}, icc_hppir1_el1", out(reg) intid, options(nomem, nostack)) };
    (intid & INTID_MASK) as u32
}
