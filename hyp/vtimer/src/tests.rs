//! Host tests: register encodings, the Arm ARM's examples of each view, and
//! properties over any counter value and any guest write.

extern crate std;

use std::format;

use proptest::prelude::*;

use super::*;

const ENABLE: u64 = Ctl::ENABLE.bits();
const IMASK: u64 = Ctl::IMASK.bits();
const ISTATUS: u64 = Ctl::ISTATUS.bits();

fn armed_at(cval: u64) -> Timer {
    let mut t = Timer::new();
    t.write(TimerReg::Cval, cval, 0);
    t.write(TimerReg::Ctl, ENABLE, 0);
    t
}

#[test]
fn the_cntp_el0_encodings_are_recognised() {
    assert_eq!(
        TimerReg::from_encoding(3, 3, 14, 2, 0),
        Some(TimerReg::Tval)
    );
    assert_eq!(TimerReg::from_encoding(3, 3, 14, 2, 1), Some(TimerReg::Ctl));
    assert_eq!(
        TimerReg::from_encoding(3, 3, 14, 2, 2),
        Some(TimerReg::Cval)
    );
    for reg in TimerReg::ALL {
        let (op0, op1, crn, crm, op2) = reg.encoding();
        assert_eq!(TimerReg::from_encoding(op0, op1, crn, crm, op2), Some(reg));
    }
}

#[test]
fn other_timer_encodings_are_not_ours() {
    let others = [
        (3, 3, 14, 3, 0), // CNTV_TVAL_EL0: the virtual timer is not trapped
        (3, 3, 14, 3, 1), // CNTV_CTL_EL0
        (3, 3, 14, 3, 2), // CNTV_CVAL_EL0
        (3, 3, 14, 0, 1), // CNTPCT_EL0
        (3, 3, 14, 0, 2), // CNTVCT_EL0
        (3, 3, 14, 0, 0), // CNTFRQ_EL0
        (3, 5, 14, 2, 1), // CNTP_CTL_EL02
        (3, 4, 14, 2, 1), // CNTHP_CTL_EL2
        (3, 7, 14, 2, 1), // CNTPS_CTL_EL1
        (3, 0, 14, 1, 0), // CNTKCTL_EL1
        (3, 3, 14, 2, 3), // unallocated op2
        (3, 3, 14, 2, 7),
        (2, 3, 14, 2, 1), // debug space
        (1, 3, 14, 2, 1), // system instructions
    ];
    for (op0, op1, crn, crm, op2) in others {
        assert_eq!(
            TimerReg::from_encoding(op0, op1, crn, crm, op2),
            None,
            "S{op0}_{op1}_C{crn}_C{crm}_{op2}"
        );
    }
}

#[test]
fn reset_timer_is_disabled_with_the_line_low() {
    let t = Timer::default();
    assert_eq!(t, Timer::new());
    assert_eq!(t.read(TimerReg::Ctl, 0), 0);
    assert_eq!(
        t.read(TimerReg::Ctl, u64::MAX),
        0,
        "no ISTATUS while disabled"
    );
    assert_eq!(t.read(TimerReg::Cval, 5), 0);
    assert!(!t.line(0) && !t.line(u64::MAX));
    assert_eq!(t.deadline(), None);
}

#[test]
fn istatus_and_the_line_rise_when_the_counter_reaches_cval() {
    let t = armed_at(1000);
    assert_eq!(t.read(TimerReg::Ctl, 999), ENABLE);
    assert!(!t.line(999));
    assert_eq!(t.read(TimerReg::Ctl, 1000), ENABLE | ISTATUS);
    assert!(t.line(1000));
    assert!(t.line(u64::MAX), "unsigned: stays met as the count grows");
    assert_eq!(t.deadline(), Some(1000));
}

#[test]
fn imask_keeps_istatus_but_lowers_the_line() {
    let mut t = armed_at(1000);
    t.write(TimerReg::Ctl, ENABLE | IMASK, 0);
    assert_eq!(t.read(TimerReg::Ctl, 2000), ENABLE | IMASK | ISTATUS);
    assert!(!t.line(2000));
    assert_eq!(t.deadline(), None);
    t.write(TimerReg::Ctl, ENABLE, 2000);
    assert!(t.line(2000), "unmasking a met condition raises it at once");
}

#[test]
fn disabling_lowers_istatus_and_the_line() {
    let mut t = armed_at(10);
    t.write(TimerReg::Ctl, 0, 20);
    assert_eq!(t.read(TimerReg::Ctl, 20), 0);
    assert!(!t.line(20));
    assert_eq!(t.deadline(), None);
    assert_eq!(t.read(TimerReg::Cval, 20), 10, "CVAL is kept");
}

#[test]
fn ctl_writes_keep_only_enable_and_imask() {
    let mut t = Timer::new();
    t.write(TimerReg::Ctl, u64::MAX, 0);
    // CVAL 0 and the counter at 0: the condition is met; ISTATUS comes from
    // the comparison, not from the write.
    assert_eq!(t.read(TimerReg::Ctl, 0), ENABLE | IMASK | ISTATUS);
    t.write(TimerReg::Cval, 100, 0);
    t.write(TimerReg::Ctl, ISTATUS | 0xf0, 0);
    assert_eq!(t.read(TimerReg::Ctl, 200), 0, "ISTATUS is read-only");
}

#[test]
fn tval_write_is_relative_to_now_and_sign_extended() {
    let mut t = Timer::new();
    t.write(TimerReg::Tval, 500, 1_000);
    assert_eq!(t.read(TimerReg::Cval, 0), 1_500);
    // -100 as a 32-bit value: a deadline in the past.
    t.write(TimerReg::Tval, u64::from((-100i32) as u32), 1_000);
    assert_eq!(t.read(TimerReg::Cval, 0), 900);
    // Bits 63:32 are RES0: ignored, not added.
    t.write(TimerReg::Tval, 0xdead_beef_0000_0010, 1_000);
    assert_eq!(t.read(TimerReg::Cval, 0), 1_016);
    // i32::MIN, the furthest back a TVAL write reaches.
    t.write(TimerReg::Tval, 0x8000_0000, 1 << 40);
    assert_eq!(t.read(TimerReg::Cval, 0), (1 << 40) - (1 << 31));
}

#[test]
fn tval_reads_count_down_and_go_negative() {
    let mut t = armed_at(0);
    t.write(TimerReg::Tval, 100, 1_000);
    assert_eq!(t.read(TimerReg::Tval, 1_000), 100);
    assert_eq!(t.read(TimerReg::Tval, 1_060), 40);
    assert_eq!(t.read(TimerReg::Tval, 1_100), 0);
    // Past the deadline: bits 31:0 of -5, bits 63:32 zero (RES0).
    assert_eq!(t.read(TimerReg::Tval, 1_105), 0xffff_fffb);
    assert_eq!(t.read(TimerReg::Tval, 1_105) as u32 as i32, -5);
}

#[test]
fn tval_counts_down_while_disabled_too() {
    let mut t = Timer::new();
    t.write(TimerReg::Tval, 100, 1_000);
    assert_eq!(t.read(TimerReg::Tval, 1_030), 70);
    assert!(!t.line(1_100));
}

#[test]
fn tval_view_of_a_far_cval_is_its_low_32_bits() {
    let t = armed_at(0x1_0000_0000 + 7);
    assert_eq!(t.read(TimerReg::Tval, 0), 7);
}

#[test]
fn tval_write_at_the_counter_edge_wraps_and_fires() {
    // The counter is 10 ticks from wrapping; a 100-tick timer's CVAL wraps
    // to 89. The comparison is unsigned, so the condition is met at once:
    // what the hardware does too. It must not panic.
    let now = u64::MAX - 10;
    let mut t = Timer::new();
    t.write(TimerReg::Tval, 100, now);
    t.write(TimerReg::Ctl, ENABLE, now);
    assert_eq!(t.read(TimerReg::Cval, now), 89);
    assert!(t.line(now));
    assert_eq!(t.read(TimerReg::Tval, now), 100, "still the view written");
    // And a negative TVAL at count 0 wraps the other way.
    t.write(TimerReg::Tval, u64::from(u32::MAX), 0);
    assert_eq!(t.read(TimerReg::Cval, 0), u64::MAX);
    assert!(!t.line(0));
    assert!(t.line(u64::MAX));
}

#[test]
fn virtual_timer_line_needs_enable_istatus_and_no_imask() {
    assert!(virtual_timer_line(ENABLE | ISTATUS));
    assert!(!virtual_timer_line(ENABLE));
    assert!(!virtual_timer_line(ENABLE | ISTATUS | IMASK));
    assert!(!virtual_timer_line(ISTATUS), "not enabled");
    assert!(!virtual_timer_line(0));
    assert!(virtual_timer_line(!IMASK), "RES0 bits ignored");
}

#[test]
fn virtual_timer_deadline_needs_enable_and_no_imask() {
    assert_eq!(virtual_timer_deadline(ENABLE, 1234), Some(1234));
    assert_eq!(virtual_timer_deadline(ENABLE | ISTATUS, 5), Some(5));
    assert_eq!(virtual_timer_deadline(ENABLE | IMASK, 1234), None);
    assert_eq!(virtual_timer_deadline(0, 1234), None);
    assert_eq!(virtual_timer_deadline(ISTATUS, 1234), None);
}

#[test]
fn ctl_debug_names_the_bits() {
    assert_eq!(format!("{:?}", Ctl::EMPTY), "Ctl(0)");
    assert_eq!(
        format!("{:?}", Ctl::from_bits_truncate(u64::MAX)),
        "Ctl(ENABLE | IMASK | ISTATUS)"
    );
    assert_eq!(Ctl::from_bits_truncate(u64::MAX), Ctl::ALL);
}

/// Counter values, weighted towards the edges where arithmetic wraps.
fn counter() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => any::<u64>(),
        2 => 0u64..1 << 33,
        2 => (0u64..1 << 33).prop_map(|d| u64::MAX - d),
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ]
}

fn any_reg() -> impl Strategy<Value = TimerReg> {
    proptest::sample::select(&TimerReg::ALL[..])
}

/// Any timer a guest can make: a compare value and any CTL write.
fn timer() -> impl Strategy<Value = Timer> {
    (counter(), any::<u64>()).prop_map(|(cval, ctl)| {
        let mut t = Timer::new();
        t.write(TimerReg::Cval, cval, 0);
        t.write(TimerReg::Ctl, ctl, 0);
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn a_tval_write_reads_back_and_counts_down(
        mut t in timer(),
        value in any::<u64>(),
        now in counter(),
        elapsed in 0u64..1 << 34,
    ) {
        t.write(TimerReg::Tval, value, now);
        prop_assert_eq!(t.read(TimerReg::Tval, now), value & 0xffff_ffff);
        let later = now.wrapping_add(elapsed);
        let expected = (value as u32).wrapping_sub(elapsed as u32);
        prop_assert_eq!(t.read(TimerReg::Tval, later), u64::from(expected));
        // CVAL is now plus the signed 32-bit value.
        let ticks = i128::from(value as u32 as i32);
        let cval = (i128::from(now) + ticks).rem_euclid(1 << 64) as u64;
        prop_assert_eq!(t.read(TimerReg::Cval, now), cval);
    }

    #[test]
    fn a_tval_read_written_back_keeps_cval(t in timer(), now in counter()) {
        // Within 2^31 ticks of the deadline, the view is exact.
        let mut copy = t;
        let distance = t.cval().wrapping_sub(now) as i64;
        if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&distance) {
            copy.write(TimerReg::Tval, t.read(TimerReg::Tval, now), now);
            prop_assert_eq!(copy, t);
        }
    }

    #[test]
    fn cval_and_ctl_writes_read_back(
        mut t in timer(),
        value in any::<u64>(),
        now in counter(),
    ) {
        t.write(TimerReg::Cval, value, now);
        prop_assert_eq!(t.read(TimerReg::Cval, now), value);
        t.write(TimerReg::Ctl, value, now);
        let ctl = t.read(TimerReg::Ctl, now);
        prop_assert_eq!(ctl & !ISTATUS, value & (ENABLE | IMASK));
    }

    #[test]
    fn any_access_at_any_count_is_defined(
        mut t in timer(),
        reg in any_reg(),
        value in any::<u64>(),
        now in counter(),
    ) {
        let _ = t.read(reg, now);
        t.write(reg, value, now);
        let _ = (t.read(reg, now), t.line(now), t.deadline());
        prop_assert_eq!(t.read(TimerReg::Tval, now) >> 32, 0, "bits 63:32 RES0");
        prop_assert_eq!(t.read(TimerReg::Ctl, now) & !(ENABLE | IMASK | ISTATUS), 0);
    }

    #[test]
    fn line_istatus_and_deadline_agree(t in timer(), now in counter()) {
        let ctl = t.read(TimerReg::Ctl, now);
        let istatus = ctl & ISTATUS != 0;
        prop_assert_eq!(istatus, ctl & ENABLE != 0 && now >= t.cval());
        prop_assert_eq!(t.line(now), istatus && ctl & IMASK == 0);
        match t.deadline() {
            Some(deadline) => {
                prop_assert_eq!(deadline, t.cval());
                prop_assert_eq!(t.line(now), now >= deadline);
            }
            None => {
                prop_assert!(!t.line(now));
                prop_assert!(!t.line(u64::MAX));
            }
        }
    }

    #[test]
    fn the_line_never_falls_as_time_passes(t in timer(), now in counter(), later in counter()) {
        let (a, b) = (now.min(later), now.max(later));
        prop_assert!(!t.line(a) || t.line(b));
    }

    #[test]
    fn saved_virtual_timer_helpers_match_the_model(t in timer(), now in counter()) {
        // A saved CNTV_CTL/CNTV_CVAL pair is what the hardware's version of
        // the same timer would read: the helpers must agree with the model.
        let ctl = t.read(TimerReg::Ctl, now);
        prop_assert_eq!(virtual_timer_line(ctl), t.line(now));
        prop_assert_eq!(virtual_timer_deadline(ctl, t.cval()), t.deadline());
    }
}
