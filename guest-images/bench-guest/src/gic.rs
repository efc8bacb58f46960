//! Just enough of a GICv3 driver for the benchmarks: the distributor on,
//! this vCPU's redistributor awake with the wanted SGIs and PPIs enabled in
//! Group 1, and the CPU interface's system registers. Interrupts stay masked
//! in PSTATE; the benchmarks poll the CPU interface (ICC_IAR1_EL1 and
//! ICC_HPPIR1_EL1), which ends a WFI all the same.
//!
//! Register offsets are from the GICv3 architecture specification (IHI 0069,
//! chapter 12).

use crate::counter;
use core::arch::asm;

/// The distributor (QEMU `virt`'s `VIRT_GIC_DIST`).
const GICD_BASE: u64 = 0x0800_0000;
/// GICD_CTLR.
const GICD_CTLR: u64 = 0x0000;
/// GICD_IIDR: the distributor's implementer and revision.
pub const GICD_IIDR_ADDRESS: u64 = GICD_BASE + 0x0008;
/// GICD_CTLR.EnableGrp1 (one security state) and ARE.
const GICD_CTLR_GRP1_ARE: u32 = (1 << 1) | (1 << 4);
/// GICD_CTLR.RWP: a register write is still taking effect.
const GICD_CTLR_RWP: u32 = 1 << 31;

/// The first redistributor (`VIRT_GIC_REDIST`) and the stride between
/// vCPUs' redistributors (an RD_base and an SGI_base frame).
const GICR_BASE: u64 = 0x080A_0000;
const GICR_STRIDE: u64 = 0x2_0000;
/// How many redistributors to look through for this vCPU's.
const GICR_MAX: u64 = 64;
/// GICR_WAKER, its ProcessorSleep and ChildrenAsleep bits.
const GICR_WAKER: u64 = 0x0014;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_TYPER (64-bit): affinity in bits 63:32, Last in bit 4.
const GICR_TYPER: u64 = 0x0008;
const TYPER_LAST: u64 = 1 << 4;
/// The SGI_base frame's IGROUPR0 and ISENABLER0.
const GICR_SGI_IGROUPR0: u64 = 0x1_0080;
const GICR_SGI_ISENABLER0: u64 = 0x1_0100;

/// ICC_IAR1_EL1's answer when nothing is pending.
pub const SPURIOUS: u32 = 1023;
/// The INTID field of ICC_IAR1_EL1 and ICC_HPPIR1_EL1.
const INTID_MASK: u64 = 0xff_ffff;

/// How long to wait for the GIC to take a setting: 10 ms of counter at
/// 1 GHz, far more than any emulation needs.
const SETTLE_TICKS: u64 = 10_000_000;

/// Why the GIC could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// No redistributor's GICR_TYPER names this affinity.
    NoRedistributor(u64),
    /// GICR_WAKER.ChildrenAsleep stayed set.
    StillAsleep,
    /// GICD_CTLR.RWP stayed set.
    DistributorBusy,
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRedistributor(mpidr) => {
                write!(f, "no redistributor has affinity {mpidr:#x}")
            }
            Self::StillAsleep => f.write_str("the redistributor did not wake up"),
            Self::DistributorBusy => f.write_str("GICD_CTLR.RWP did not clear"),
        }
    }
}

fn read32(address: u64) -> u32 {
    // SAFETY: Every address passed is a GIC register in the device window
    // that `mmu` maps; reads of these registers have no side effects.
    unsafe { (address as *const u32).read_volatile() }
}

fn write32(address: u64, value: u32) {
    // SAFETY: As for `read32`: a GIC register that only this module writes.
    unsafe { (address as *mut u32).write_volatile(value) }
}

fn read64(address: u64) -> u64 {
    // SAFETY: As for `read32`; GICR_TYPER is a 64-bit register.
    unsafe { (address as *const u64).read_volatile() }
}

/// Turns the distributor on (affinity routing, Group 1). vCPU 0 does this
/// once, before any vCPU sets up its redistributor.
///
/// # Errors
///
/// [`GicError::DistributorBusy`].
pub fn enable_distributor() -> Result<(), GicError> {
    write32(GICD_BASE + GICD_CTLR, GICD_CTLR_GRP1_ARE);
    let start = counter::now();
    while read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP != 0 {
        if counter::elapsed(start, SETTLE_TICKS) {
            return Err(GicError::DistributorBusy);
        }
    }
    Ok(())
}

/// GICD_IIDR, for the record.
pub fn distributor_iidr() -> u32 {
    read32(GICD_IIDR_ADDRESS)
}

/// The redistributor whose GICR_TYPER affinity is `mpidr`.
fn redistributor_of(mpidr: u64) -> Result<u64, GicError> {
    // GICR_TYPER.Affinity is Aff3.Aff2.Aff1.Aff0, one byte each.
    let wanted = ((mpidr >> 8) & 0xff00_0000) | (mpidr & 0xff_ffff);
    for i in 0..GICR_MAX {
        let frame = GICR_BASE + i * GICR_STRIDE;
        let typer = read64(frame + GICR_TYPER);
        if typer >> 32 == wanted {
            return Ok(frame);
        }
        if typer & TYPER_LAST != 0 {
            break;
        }
    }
    Err(GicError::NoRedistributor(mpidr))
}

/// Wakes this vCPU's redistributor (affinity `mpidr`), puts the SGIs and
/// PPIs in `intids` (a bit per INTID 0-31) in Group 1 and enables them, and
/// turns on the CPU interface: priority mask open, Group 1 enabled.
/// PSTATE.I stays set.
///
/// # Errors
///
/// [`GicError::NoRedistributor`], [`GicError::StillAsleep`].
pub fn enable_cpu(mpidr: u64, intids: u32) -> Result<(), GicError> {
    let frame = redistributor_of(mpidr)?;
    write32(
        frame + GICR_WAKER,
        read32(frame + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    let start = counter::now();
    while read32(frame + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {
        if counter::elapsed(start, SETTLE_TICKS) {
            return Err(GicError::StillAsleep);
        }
    }
    write32(
        frame + GICR_SGI_IGROUPR0,
        read32(frame + GICR_SGI_IGROUPR0) | intids,
    );
    write32(frame + GICR_SGI_ISENABLER0, intids);
    // SAFETY: ICC_PMR_EL1 = 0xff lets every priority through and
    // ICC_IGRPEN1_EL1 = 1 enables Group 1; PSTATE.I stays masked, so no
    // interrupt is taken.
    unsafe {
        asm!(
            "msr icc_pmr_el1, {pmr}",
            "msr icc_igrpen1_el1, {one}",
            "isb",
            pmr = in(reg) 0xffu64,
            one = in(reg) 1u64,
            options(nomem, nostack)
        );
    }
    Ok(())
}

/// The ICC_SGI1R_EL1 value that sends SGI `intid` to the vCPU with
/// affinity `mpidr` (whose Aff0 is below 16, as every vCPU's is).
pub fn sgi_value(mpidr: u64, intid: u32) -> u64 {
    let aff0 = mpidr & 0xf;
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    (1 << aff0) | (aff1 << 16) | (u64::from(intid & 0xf) << 24) | (aff2 << 32) | (aff3 << 48)
}

/// Sends an SGI: `value` from [`sgi_value`].
#[inline(always)]
pub fn send_sgi(value: u64) {
    // SAFETY: Writing ICC_SGI1R_EL1 only raises an SGI.
    unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) value, options(nomem, nostack)) };
}

/// Acknowledges the highest-priority pending Group 1 interrupt: its INTID,
/// or [`SPURIOUS`].
#[inline(always)]
pub fn acknowledge() -> u32 {
    let iar: u64;
    // SAFETY: Reading ICC_IAR1_EL1 activates the interrupt it returns; the
    // caller ends it with `end_of_interrupt`.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) iar, options(nomem, nostack)) };
    (iar & INTID_MASK) as u32
}

/// Ends (drops the priority of and, with EOImode 0, deactivates) `intid`.
#[inline(always)]
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: Writing ICC_EOIR1_EL1 ends an interrupt this vCPU acknowledged.
    unsafe {
        asm!(
            "msr icc_eoir1_el1, {}",
            "isb",
            in(reg) u64::from(intid),
            options(nomem, nostack)
        )
    };
}

/// The INTID of the highest-priority pending interrupt, without
/// acknowledging it ([`SPURIOUS`] for none).
#[inline(always)]
pub fn highest_pending() -> u32 {
    let hppir: u64;
    // SAFETY: Reading ICC_HPPIR1_EL1 has no side effects.
    unsafe { asm!("mrs {}, icc_hppir1_el1", out(reg) hppir, options(nomem, nostack)) };
    (hppir & INTID_MASK) as u32
}
