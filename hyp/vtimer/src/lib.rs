//! The Arm generic timer as a guest sees it, as pure logic: the emulated EL1 physical timer's registers and its interrupt line.
//!
//! Each vCPU has two EL1 timers (Arm ARM DDI 0487, chapter "The Generic
//! Timer in AArch64 state", and the `CNTP_*_EL0` and `CNTV_*_EL0` register
//! descriptions):
//!
//! - The **virtual timer** (`CNTV_*_EL0`) is real hardware: the guest
//!   programs it directly and the hypervisor saves and restores
//!   `CNTV_CTL_EL0` and `CNTV_CVAL_EL0` around each run. While a vCPU is not
//!   running, [`virtual_timer_line`] and [`virtual_timer_deadline`] say what
//!   its saved timer does meanwhile.
//! - The **EL1 physical timer** (`CNTP_*_EL0`) is emulated: with
//!   `CNTHCTL_EL2.EL1PCEN` = 0 every guest access to `CNTP_CTL_EL0`,
//!   `CNTP_CVAL_EL0` and `CNTP_TVAL_EL0` traps to EL2 as a system register
//!   access (EC 0x18). [`TimerReg::from_encoding`] recognises those, and
//!   [`Timer`] carries out the access and says when its interrupt line is
//!   high.
//!
//! Nothing here reads the counter: every call that depends on the time takes
//! `now`, the value of `CNTPCT_EL0` at the access, so the logic runs in host
//! tests. This hypervisor keeps `CNTVOFF_EL2` at 0, so the virtual and
//! physical counters read the same and one `now` serves both timers.
//!
//! Counter arithmetic wraps modulo 2^64, as the architecture's does; no
//! input panics.

#![no_std]
#![deny(missing_docs)]

use core::fmt;

/// The PPI of the EL1 physical timer (INTID 30, PPI 14), as the Arm Base
/// System Architecture recommends and QEMU's `virt` board wires it.
pub const PHYS_TIMER_INTID: u32 = 30;

/// The PPI of the EL1 virtual timer (INTID 27, PPI 11), as the Arm Base
/// System Architecture recommends and QEMU's `virt` board wires it.
pub const VIRT_TIMER_INTID: u32 = 27;

/// A timer control register value: `CNTP_CTL_EL0` or `CNTV_CTL_EL0` (the
/// same layout). Bits other than the three named are RES0.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Ctl(u64);

impl Ctl {
    /// No bit set: the timer's reset state as this model defines it.
    pub const EMPTY: Self = Self(0);
    /// `ENABLE`, bit 0: the timer runs; with it clear the timer condition is
    /// never met.
    pub const ENABLE: Self = Self(1 << 0);
    /// `IMASK`, bit 1: the timer condition does not assert the interrupt.
    pub const IMASK: Self = Self(1 << 1);
    /// `ISTATUS`, bit 2, read-only: the timer condition is met
    /// (`ENABLE` set and counter >= compare value), whatever `IMASK` says.
    pub const ISTATUS: Self = Self(1 << 2);
    /// The bits a guest's write keeps: `ISTATUS` is read-only, the rest
    /// RES0.
    pub const WRITABLE: Self = Self(Self::ENABLE.0 | Self::IMASK.0);
    /// Every defined bit.
    pub const ALL: Self = Self(Self::WRITABLE.0 | Self::ISTATUS.0);

    /// The defined bits of a raw register value; RES0 bits are dropped.
    pub const fn from_bits_truncate(bits: u64) -> Self {
        Self(bits & Self::ALL.0)
    }

    /// The raw register value.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in either.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The bits set in both.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Whether the timer is enabled and its interrupt not masked: the line
    /// rises once the timer condition is met.
    const fn armed(self) -> bool {
        self.contains(Self::ENABLE) && !self.contains(Self::IMASK)
    }
}

/// The set bits by name, e.g. `Ctl(ENABLE | ISTATUS)`.
impl fmt::Debug for Ctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::ENABLE, "ENABLE"),
            (Self::IMASK, "IMASK"),
            (Self::ISTATUS, "ISTATUS"),
        ];
        f.write_str("Ctl(")?;
        let mut first = true;
        for (bit, name) in names {
            if self.contains(bit) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("0")?;
        }
        f.write_str(")")
    }
}

/// One of the EL1 physical timer's registers, as a trapped `MRS`/`MSR`
/// names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimerReg {
    /// `CNTP_CTL_EL0`: enable, interrupt mask, status.
    Ctl,
    /// `CNTP_CVAL_EL0`: the compare value, an absolute counter value.
    Cval,
    /// `CNTP_TVAL_EL0`: the "TimerValue" view, a signed 32-bit down-counter
    /// relative to the current count.
    Tval,
}

/// The encoding every `CNTP_*_EL0` register shares but for op2:
/// op0 = 3, op1 = 3, CRn = 14, CRm = 2 (Arm ARM, "CNTP_CTL_EL0",
/// "CNTP_CVAL_EL0", "CNTP_TVAL_EL0", accessing the register).
const CNTP_OP0: u8 = 3;
const CNTP_OP1: u8 = 3;
const CNTP_CRN: u8 = 14;
const CNTP_CRM: u8 = 2;
/// op2 of each register.
const OP2_TVAL: u8 = 0;
const OP2_CTL: u8 = 1;
const OP2_CVAL: u8 = 2;

impl TimerReg {
    /// Every register.
    pub const ALL: [Self; 3] = [Self::Ctl, Self::Cval, Self::Tval];

    /// The register that `S<op0>_<op1>_C<crn>_C<crm>_<op2>` names, if it is
    /// one of the EL1 physical timer's EL0 encodings. Anything else,
    /// including the `CNTP_*_EL02` aliases an EL1 guest cannot reach, is
    /// `None`.
    pub const fn from_encoding(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Option<Self> {
        if op0 != CNTP_OP0 || op1 != CNTP_OP1 || crn != CNTP_CRN || crm != CNTP_CRM {
            return None;
        }
        match op2 {
            OP2_TVAL => Some(Self::Tval),
            OP2_CTL => Some(Self::Ctl),
            OP2_CVAL => Some(Self::Cval),
            _ => None,
        }
    }

    /// The register's encoding as `(op0, op1, crn, crm, op2)`, the inverse
    /// of [`TimerReg::from_encoding`].
    pub const fn encoding(self) -> (u8, u8, u8, u8, u8) {
        let op2 = match self {
            Self::Tval => OP2_TVAL,
            Self::Ctl => OP2_CTL,
            Self::Cval => OP2_CVAL,
        };
        (CNTP_OP0, CNTP_OP1, CNTP_CRN, CNTP_CRM, op2)
    }
}

/// The low 32 bits of a `CNTP_TVAL_EL0` value; bits 63:32 are RES0.
const TVAL_MASK: u64 = 0xffff_ffff;

/// One vCPU's emulated EL1 physical timer.
///
/// Holds `CNTP_CTL_EL0`'s writable bits and `CNTP_CVAL_EL0`; `ISTATUS` and
/// the TimerValue view are computed from the counter at each access. The
/// default is the state this model gives the guest at reset, where the
/// architecture says UNKNOWN: disabled, unmasked, compare value 0.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timer {
    /// `ENABLE` and `IMASK` only.
    ctl: Ctl,
    cval: u64,
}

impl Timer {
    /// A timer at reset: disabled, unmasked, compare value 0.
    pub const fn new() -> Self {
        Self {
            ctl: Ctl::EMPTY,
            cval: 0,
        }
    }

    /// Whether the timer condition is met at `now`: enabled, and the counter
    /// has reached the compare value (an unsigned comparison: the Arm ARM's
    /// `(CNTPCT_EL0 - CNTP_CVAL_EL0) >= 0` on unbounded integers).
    const fn condition_met(&self, now: u64) -> bool {
        self.ctl.contains(Ctl::ENABLE) && now >= self.cval
    }

    /// The control register as a read at `now` returns it: `ENABLE` and
    /// `IMASK` as written, `ISTATUS` if the timer condition is met. (With
    /// `ENABLE` clear the architecture leaves `ISTATUS` UNKNOWN; it reads
    /// 0 here.)
    pub const fn ctl(&self, now: u64) -> Ctl {
        if self.condition_met(now) {
            self.ctl.union(Ctl::ISTATUS)
        } else {
            self.ctl
        }
    }

    /// The compare value, `CNTP_CVAL_EL0`.
    pub const fn cval(&self) -> u64 {
        self.cval
    }

    /// The guest reads `reg` when the counter is `now`.
    ///
    /// - `Ctl`: see [`Timer::ctl`].
    /// - `Cval`: the compare value.
    /// - `Tval`: `(CVAL - now)` modulo 2^32 in bits 31:0, bits 63:32 zero
    ///   (RES0). The guest takes it as a signed 32-bit count of ticks left,
    ///   negative once the deadline has passed. The architecture makes the
    ///   value UNKNOWN while the timer is disabled; it is computed the same
    ///   way here, so the view "continues to count down" as the Arm ARM
    ///   describes.
    pub const fn read(&self, reg: TimerReg, now: u64) -> u64 {
        match reg {
            TimerReg::Ctl => self.ctl(now).bits(),
            TimerReg::Cval => self.cval,
            TimerReg::Tval => self.cval.wrapping_sub(now) & TVAL_MASK,
        }
    }

    /// The guest writes `value` to `reg` when the counter is `now`.
    ///
    /// - `Ctl`: `ENABLE` and `IMASK` are kept; `ISTATUS` is read-only and
    ///   the other bits RES0, so they are ignored.
    /// - `Cval`: the compare value, all 64 bits.
    /// - `Tval`: the compare value becomes `now` plus bits 31:0 of `value`
    ///   taken as a signed 32-bit integer (bits 63:32 are RES0 and ignored),
    ///   modulo 2^64.
    pub const fn write(&mut self, reg: TimerReg, value: u64, now: u64) {
        match reg {
            TimerReg::Ctl => {
                self.ctl = Ctl::from_bits_truncate(value).intersection(Ctl::WRITABLE);
            }
            TimerReg::Cval => self.cval = value,
            TimerReg::Tval => {
                // Truncate to the 32-bit field, then sign-extend it.
                let ticks = value as u32 as i32 as i64;
                self.cval = now.wrapping_add_signed(ticks);
            }
        }
    }

    /// The timer's interrupt output at `now`: enabled, not masked, and the
    /// counter at or past the compare value. Drive the physical timer PPI
    /// ([`PHYS_TIMER_INTID`]) of the virtual GIC with it.
    pub const fn line(&self, now: u64) -> bool {
        self.ctl.armed() && now >= self.cval
    }

    /// The counter value at which [`Timer::line`] rises if the guest changes
    /// nothing: the compare value while the timer is enabled and unmasked,
    /// else `None` (the line stays low). A deadline at or before the
    /// current count means the line is high already.
    pub const fn deadline(&self) -> Option<u64> {
        if self.ctl.armed() {
            Some(self.cval)
        } else {
            None
        }
    }
}

/// Whether a vCPU's virtual timer asserts its interrupt
/// ([`VIRT_TIMER_INTID`]), from the `CNTV_CTL_EL0` value saved when the
/// vCPU exited: `ENABLE` and `ISTATUS` set, `IMASK` clear. `ISTATUS` is the
/// hardware's verdict at the moment of the save; for a vCPU that has not
/// run since, ask [`virtual_timer_deadline`] instead.
pub const fn virtual_timer_line(ctl: u64) -> bool {
    let ctl = Ctl::from_bits_truncate(ctl);
    ctl.armed() && ctl.contains(Ctl::ISTATUS)
}

/// When a saved, not-running vCPU's virtual timer fires: its saved
/// `CNTV_CVAL_EL0` if the saved `CNTV_CTL_EL0` has `ENABLE` set and `IMASK`
/// clear, else `None`.
///
/// The deadline is a value of the vCPU's virtual counter, which is the
/// physical counter minus `CNTVOFF_EL2`. This hypervisor keeps
/// `CNTVOFF_EL2` at 0, so it can be compared with `CNTPCT_EL0` directly
/// (and programmed into a hypervisor timer as is). A deadline at or before
/// the current count means the timer has fired already.
pub const fn virtual_timer_deadline(ctl: u64, cval: u64) -> Option<u64> {
    if Ctl::from_bits_truncate(ctl).armed() {
        Some(cval)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
