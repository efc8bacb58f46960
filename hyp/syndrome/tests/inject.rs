//! Injected exceptions land where the Arm ARM says hardware would put them.

use syndrome::inject::{synchronous, InjectError, Injected};
use syndrome::{Esr, ExceptionClass, FaultStatus, Mode};

const VBAR: u64 = 0x4008_0800;
/// EL1h with interrupts unmasked and the Z flag set.
const EL1H: u64 = 0x4000_0005;
const EL1T: u64 = 0x4;
const EL0T: u64 = 0x0;

#[test]
fn data_abort_from_el1h_goes_to_the_current_el_spx_vector() {
    let e = synchronous(Injected::DataAbort { write: true }, 0x4008_1234, EL1H, VBAR).unwrap();
    assert_eq!(e.pc, VBAR + 0x200);
    assert_eq!(e.elr, 0x4008_1234);
    assert_eq!(e.spsr, EL1H);
    assert_eq!(e.pstate, 0x3c5, "EL1h, DAIF masked");
    let esr = Esr(e.esr);
    assert_eq!(esr.ec(), ExceptionClass::DataAbortSame);
    assert!(esr.il());
    let abort = esr.data_abort().unwrap();
    assert_eq!(abort.fault_status(), FaultStatus::from_raw(0x10));
    assert!(!abort.isv());
    assert_eq!(e.esr, 0x9600_0050);
}

#[test]
fn vector_offsets_follow_the_mode() {
    let at = |pstate| synchronous(Injected::InstructionAbort, 0, pstate, VBAR).unwrap();
    assert_eq!(at(EL1T).pc, VBAR);
    assert_eq!(at(EL1H).pc, VBAR + 0x200);
    assert_eq!(at(EL0T).pc, VBAR + 0x400);
    assert_eq!(Esr(at(EL1H).esr).ec(), ExceptionClass::InstructionAbortSame);
    assert_eq!(
        Esr(at(EL0T).esr).ec(),
        ExceptionClass::InstructionAbortLower
    );
    assert_eq!(at(EL1H).esr, 0x8600_0010);
}

#[test]
fn undefined_has_class_unknown() {
    let e = synchronous(Injected::Undefined, 8, EL0T, VBAR).unwrap();
    assert_eq!(e.esr, 0x0200_0000);
    let d = synchronous(Injected::DataAbort { write: false }, 8, EL0T, VBAR).unwrap();
    assert_eq!(Esr(d.esr).ec(), ExceptionClass::DataAbortLower);
}

#[test]
fn el2_and_aarch32_modes_are_refused() {
    for (pstate, mode) in [
        (0x9, Mode::El2h),
        (0x13, Mode::AArch32(0x13)),
        (0x1, Mode::Reserved(1)),
    ] {
        assert_eq!(
            synchronous(Injected::Undefined, 0, pstate, VBAR),
            Err(InjectError::UnsupportedMode(mode))
        );
    }
}
