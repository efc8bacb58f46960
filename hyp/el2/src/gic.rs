//! The physical GICv3, which the hypervisor owns: guests only ever see the
//! virtual one (`vgic`, through the list registers).
//!
//! Every interrupt is Group 1 at one priority and targets EL2 (HCR_EL2.IMO
//! is set while a guest runs, and EL2 runs with PSTATE.I masked, so a
//! physical interrupt either ends a guest's run or wakes an idle CPU from
//! WFI; it is then taken by polling [`acknowledge`]). The interrupts used:
//! - [`KICK`], an SGI between physical CPUs: "look at your run queue and the
//!   virtual GIC again";
//! - [`MAINTENANCE`], the virtual CPU interface's maintenance interrupt;
//! - [`HYP_TIMER`], the EL2 physical timer: time slices and timed wake-ups;
//! - [`VIRT_TIMER`], the guest's virtual timer firing while it runs;
//! - the console UART's SPI, routed to CPU 0;
//! - passthrough functions' INTx SPIs ([`route_passthrough_spi`]), routed
//!   to CPU 0 too, each ended in two steps: a priority drop when taken, the
//!   deactivation when the guest deactivates its hardware-linked virtual
//!   interrupt.

use crate::lock::SpinMutex;
use crate::percpu;
use addr::PhysAddr;
use arm_gic::gicv3::registers::Gicd;
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, Trigger, UniqueMmioPointer};
use core::arch::asm;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use log::warn;
use platform::MAX_CPUS;
use spin::Once;
use vgic::PhysIntId;

/// SGI 0: another CPU changed something this CPU must look at.
pub const KICK: IntId = IntId::sgi(0);
/// PPI 9 (INTID 25): the virtual CPU interface's maintenance interrupt
/// (the GIC binding's `interrupts`, and the SBSA's recommendation).
pub const MAINTENANCE: IntId = IntId::ppi(9);
/// PPI 10 (INTID 26): the EL2 physical timer (the timer binding's fourth).
pub const HYP_TIMER: IntId = IntId::ppi(10);
/// PPI 11 (INTID 27): the EL1 virtual timer, the guest's.
pub const VIRT_TIMER: IntId = IntId::ppi(11);

/// INTID of SPI 0 (GICv3 §2.2.1).
const FIRST_SPI: u32 = 32;

/// The physical CPU interrupts go to and their priority mask: every
/// priority passes.
const PRIORITY_MASK_ALL: u8 = 0xff;

static GIC: Once<SpinMutex<GicV3<'static>>> = Once::new();

/// Each CPU's redistributor, by logical CPU index (found by affinity, as
/// the frames need not be in the device tree's CPU order).
static REDISTRIBUTOR: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(usize::MAX) }; MAX_CPUS];

/// Physical CPUs (and redistributors).
static NR_CPUS: AtomicUsize = AtomicUsize::new(0);

/// Why the GIC could not be set up.
#[derive(Debug)]
pub enum GicError {
    /// The device tree's addresses are not usable.
    BadAddress,
    /// The driver refused the hardware.
    Driver(arm_gic::gicv3::GicError),
}

impl core::fmt::Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadAddress => write!(f, "GIC: distributor or redistributor address is null"),
            Self::Driver(e) => write!(f, "GIC: {e}"),
        }
    }
}

/// Sets up the distributor and every redistributor, then the calling
/// (primary) CPU's interface. `console_spi` is routed to CPU 0.
///
/// # Safety
///
/// `gicd` and `gicr` must be the GIC's distributor and first redistributor
/// frames, mapped as device memory, used by nothing else from now on, with
/// one redistributor per CPU of `nr_cpus`.
pub unsafe fn init(
    gicd: PhysAddr,
    gicr: PhysAddr,
    nr_cpus: usize,
    console_spi: Option<u32>,
) -> Result<(), GicError> {
    let gicd = NonNull::new(gicd.get() as *mut Gicd).ok_or(GicError::BadAddress)?;
    let gicr = NonNull::new(gicr.get() as *mut _).ok_or(GicError::BadAddress)?;
    // SAFETY: The caller guarantees both are the GIC's mapped, unaliased
    // register frames.
    let mut gic = unsafe { GicV3::new(UniqueMmioPointer::new(gicd), gicr, nr_cpus) }
        .map_err(GicError::Driver)?;
    // Every redistributor and the distributor to defaults: all interrupts
    // disabled, Group 1 non-secure, one priority.
    gic.setup(0);
    if let Some(spi) = console_spi {
        let intid = IntId::spi(spi);
        let mpidr = percpu::this_cpu().map_or(0, percpu::PerCpu::mpidr);
        let routed = gic
            .distributor()
            .set_trigger(intid, Trigger::Level)
            .and_then(|()| gic.distributor().set_routing(intid, Some(mpidr)))
            .and_then(|()| gic.enable_interrupt(intid, None, true));
        if let Err(e) = routed {
            warn!("GIC: console interrupt not routed ({e}); console input is polled only");
        }
    }
    GIC.call_once(|| SpinMutex::new(gic));
    NR_CPUS.store(nr_cpus, Ordering::Release);
    init_this_cpu(0);
    Ok(())
}

/// Makes physical SPI `spi` (a passthrough function's INTx line) a
/// level-triggered Group 1 interrupt routed to CPU 0 (where the console's
/// goes: any CPU would do, the hardware link works wherever it is taken),
/// and enables it. `gic::init` put every SPI in Group 1 at one priority.
///
/// # Errors
///
/// [`GicError::BadAddress`] before `init`; [`GicError::Driver`] if the
/// distributor has no such SPI.
pub fn route_passthrough_spi(spi: PhysIntId) -> Result<(), GicError> {
    let gic = GIC.get().ok_or(GicError::BadAddress)?;
    let intid = arm_gic_spi(spi);
    let mpidr = percpu::of(0).map_or(0, percpu::PerCpu::mpidr);
    let mut gic = gic.lock();
    gic.distributor()
        .set_trigger(intid, Trigger::Level)
        .and_then(|()| gic.distributor().set_routing(intid, Some(mpidr)))
        .and_then(|()| gic.enable_interrupt(intid, None, true))
        .map_err(GicError::Driver)
}

/// Enables or disables physical SPI `spi` at the distributor. Disabling
/// does not touch a pending or active state: an SPI the hypervisor holds
/// active stays so until deactivated.
pub fn set_spi_enabled(spi: PhysIntId, enabled: bool) {
    let Some(gic) = GIC.get() else {
        return;
    };
    if let Err(e) = gic.lock().enable_interrupt(arm_gic_spi(spi), None, enabled) {
        warn!("GIC: cannot change {spi}: {e}");
    }
}

/// `spi` as `arm-gic` names it.
fn arm_gic_spi(spi: PhysIntId) -> IntId {
    // A `PhysIntId` is 32..1020, so the SPI number is below
    // `IntId::MAX_SPI_COUNT` and `IntId::spi` cannot panic.
    IntId::spi(spi.get() - FIRST_SPI)
}

/// Sets up the calling CPU's redistributor and CPU interface: system
/// registers on (also for EL1, whose accesses reach the virtual
/// interface), Group 1 on, priority mask open, and the private interrupts
/// the hypervisor uses enabled.
pub fn init_this_cpu(cpu: usize) {
    let Some(gic) = GIC.get() else {
        return;
    };
    GicCpuInterface::enable_system_register_el2(true);
    let mpidr = percpu::this_cpu().map_or(0, percpu::PerCpu::mpidr);
    let mut gic = gic.lock();
    let Some(frame) = (0..NR_CPUS.load(Ordering::Acquire))
        .find(|&i| gic.gicr_typer(i).is_ok_and(|t| t.core_mpidr() == mpidr))
    else {
        warn!("GIC: no redistributor for cpu{cpu} (MPIDR {mpidr:#x}); it gets no interrupts");
        return;
    };
    if let Some(slot) = REDISTRIBUTOR.get(cpu) {
        slot.store(frame, Ordering::Release);
    }
    gic.init_cpu(frame);
    split_priority_drop_and_deactivation();
    for intid in [KICK, MAINTENANCE, HYP_TIMER, VIRT_TIMER] {
        if let Err(e) = gic.enable_interrupt(intid, Some(frame), true) {
            warn!("GIC: cannot enable {intid:?} on cpu{cpu}: {e}");
        }
    }
    drop(gic);
    GicCpuInterface::set_priority_mask(PRIORITY_MASK_ALL);
    GicCpuInterface::enable_group1(true);
}

/// Takes the highest-priority pending interrupt, if any.
pub fn acknowledge() -> Option<IntId> {
    GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1)
}

/// Ends (drops the priority of, and deactivates) an acknowledged interrupt
/// the hypervisor handled itself.
pub fn end(intid: IntId) {
    drop_priority(intid);
    deactivate(u32::from(intid));
}

/// Drops the running priority for an acknowledged interrupt but leaves it
/// active: a passthrough device's SPI, which the guest deactivates through
/// its hardware-linked virtual interrupt.
pub fn drop_priority(intid: IntId) {
    GicCpuInterface::end_interrupt(intid, InterruptGroup::Group1);
}

/// Deactivates interrupt `intid` (ICC_DIR_EL1): ends a passthrough SPI the
/// hardware link did not end (its VM went away, or the guest cleared it
/// through the distributor).
pub fn deactivate(intid: u32) {
    // SAFETY: ICC_DIR_EL1 only deactivates the interrupt named.
    unsafe { asm!("msr s3_0_c12_c11_1, {}", in(reg) u64::from(intid), options(nomem, nostack)) };
}

/// Splits ending an interrupt in two (ICC_CTLR_EL1.EOImode = 1): EOIR only
/// drops the priority, ICC_DIR_EL1 deactivates. A hardware-linked virtual
/// interrupt needs it: the physical SPI must stay active after the
/// hypervisor has handled it, until the guest deactivates it.
fn split_priority_drop_and_deactivation() {
    const EOIMODE: u64 = 1 << 1;
    // SAFETY: Changes how this CPU's own interrupts end; every end goes
    // through `end` (both steps) or the passthrough path (each step
    // explicit).
    unsafe {
        asm!(
            "mrs {tmp}, s3_0_c12_c12_4",
            "orr {tmp}, {tmp}, {eoimode}",
            "msr s3_0_c12_c12_4, {tmp}",
            "isb",
            tmp = out(reg) _,
            eoimode = const EOIMODE,
            options(nomem, nostack)
        )
    };
}

/// Enables or disables one of the calling CPU's private interrupts.
pub fn set_private_enabled(cpu: usize, intid: IntId, enabled: bool) {
    let frame = REDISTRIBUTOR
        .get(cpu)
        .map_or(usize::MAX, |f| f.load(Ordering::Acquire));
    if let (Some(gic), true) = (GIC.get(), frame != usize::MAX) {
        if let Err(e) = gic.lock().enable_interrupt(intid, Some(frame), enabled) {
            warn!("GIC: cannot change {intid:?} on cpu{cpu}: {e}");
        }
    }
}

/// Sends [`KICK`] to physical CPU `cpu`.
pub fn kick(cpu: usize) {
    let Some(mpidr) = percpu::of(cpu).map(percpu::PerCpu::mpidr) else {
        return;
    };
    let aff0 = (mpidr & 0xff) as u8;
    // The target list covers Aff0 values 0..=15 of one Aff1 cluster.
    if aff0 >= 16 {
        warn!("GIC: cpu{cpu} (MPIDR {mpidr:#x}) cannot be named in an SGI target list");
        return;
    }
    let target = SgiTarget::List {
        affinity3: ((mpidr >> 32) & 0xff) as u8,
        affinity2: ((mpidr >> 16) & 0xff) as u8,
        affinity1: ((mpidr >> 8) & 0xff) as u8,
        target_list: 1 << aff0,
    };
    // Only fails for a non-SGI INTID, which KICK is not.
    let _ = GicCpuInterface::send_sgi(KICK, target, SgiTargetGroup::CurrentGroup1);
}
