extern crate std;
use std::{vec, vec::Vec};

use super::*;
use proptest::prelude::*;

/// A VM in a test: vCPU i has MPIDR Aff0 = i % 16, Aff1 = i / 16; RAM is
/// [0x4000_0000, 0x5000_0000).
struct Vm(Vec<Power>);

impl Vcpus for Vm {
    fn count(&self) -> usize {
        self.0.len()
    }
    fn mpidr(&self, index: usize) -> u64 {
        (((index / 16) << 8) | (index % 16)) as u64
    }
    fn power(&self, index: usize) -> Power {
        self.0[index]
    }
    fn is_valid_entry(&self, entry: u64) -> bool {
        (0x4000_0000..0x5000_0000).contains(&entry)
    }
}

fn call(x: [u64; 4], vm: &Vm) -> Outcome {
    handle(Call::decode(x), vm)
}

fn ret(code: i32) -> Outcome {
    Outcome::Return(error_code(code))
}

const ENTRY: u64 = 0x4008_0000;

#[test]
fn versions() {
    let vm = Vm(vec![Power::On]);
    assert_eq!(
        call([PSCI_VERSION.into(), 0, 0, 0], &vm),
        Outcome::Return(0x1_0001)
    );
    assert_eq!(
        call([SMCCC_VERSION.into(), 0, 0, 0], &vm),
        Outcome::Return(0x1_0001)
    );
}

#[test]
fn features_lists_exactly_the_implemented_calls() {
    let vm = Vm(vec![Power::On]);
    for f in [
        PSCI_VERSION,
        PSCI_FEATURES,
        PSCI_CPU_ON_64,
        PSCI_CPU_ON_32,
        PSCI_CPU_OFF,
        PSCI_CPU_SUSPEND_64,
        PSCI_AFFINITY_INFO_64,
        PSCI_SYSTEM_OFF,
        PSCI_SYSTEM_RESET,
        PSCI_MIGRATE_INFO_TYPE,
        SMCCC_VERSION,
    ] {
        assert_eq!(
            call([PSCI_FEATURES.into(), f.into(), 0, 0], &vm),
            Outcome::Return(SUCCESS),
            "{f:#x}"
        );
    }
    for f in [
        smccc::psci::PSCI_SYSTEM_SUSPEND_64,
        smccc::psci::PSCI_MIGRATE_64,
        0x8400_00ff,
        0,
    ] {
        assert_eq!(
            call([PSCI_FEATURES.into(), f.into(), 0, 0], &vm),
            ret(NOT_SUPPORTED),
            "{f:#x}"
        );
    }
}

#[test]
fn unknown_functions_are_not_supported() {
    let vm = Vm(vec![Power::On]);
    for f in [
        0xc200_1234u64,
        0x8400_00ff,
        0x8600_0000,
        smccc::arch::SMCCC_ARCH_SOC_ID.into(),
    ] {
        assert_eq!(call([f, 1, 2, 3], &vm), ret(NOT_SUPPORTED), "{f:#x}");
    }
    // Only w0 is the function ID.
    assert_eq!(
        call(
            [0xdead_0000_0000_0000 | u64::from(PSCI_VERSION), 0, 0, 0],
            &vm
        ),
        Outcome::Return(0x1_0001)
    );
    assert_eq!(error_code(NOT_SUPPORTED), u64::MAX);
}

#[test]
fn arch_features_offers_no_workarounds() {
    let vm = Vm(vec![Power::On]);
    let q = |f: u32| call([SMCCC_ARCH_FEATURES.into(), f.into(), 0, 0], &vm);
    assert_eq!(q(SMCCC_ARCH_FEATURES), Outcome::Return(SUCCESS));
    assert_eq!(q(smccc::arch::SMCCC_ARCH_WORKAROUND_1), ret(NOT_SUPPORTED));
}

#[test]
fn cpu_on_starts_an_off_vcpu_only() {
    let vm = Vm(vec![Power::On, Power::Off, Power::On, Power::OnPending]);
    let on = |target: u64, entry: u64| call([PSCI_CPU_ON_64.into(), target, entry, 7], &vm);
    assert_eq!(
        on(1, ENTRY),
        Outcome::StartVcpu {
            vcpu: 1,
            entry: ENTRY,
            context: 7
        }
    );
    assert_eq!(on(2, ENTRY), ret(ALREADY_ON));
    assert_eq!(on(3, ENTRY), ret(ON_PENDING));
    assert_eq!(on(4, ENTRY), ret(INVALID_PARAMETERS));
    assert_eq!(on(0xff00, ENTRY), ret(INVALID_PARAMETERS));
    assert_eq!(on(1 | 1 << 40, ENTRY), ret(INVALID_PARAMETERS));
    assert_eq!(on(1, 0x1000), ret(INVALID_ADDRESS));
}

#[test]
fn cpu_on_32_ignores_upper_halves() {
    let vm = Vm(vec![Power::On, Power::Off]);
    let x = [
        PSCI_CPU_ON_32.into(),
        0xffff_ffff_0000_0001,
        0xffff_ffff_4008_0000,
        0xffff_ffff_0000_0009,
    ];
    assert_eq!(
        call(x, &vm),
        Outcome::StartVcpu {
            vcpu: 1,
            entry: ENTRY,
            context: 9
        }
    );
}

#[test]
fn power_transitions() {
    let vm = Vm(vec![Power::On]);
    assert_eq!(
        call([PSCI_CPU_OFF.into(), 0, 0, 0], &vm),
        Outcome::StopCaller
    );
    assert_eq!(
        call([PSCI_CPU_SUSPEND_64.into(), 0, ENTRY, 0], &vm),
        Outcome::Suspend
    );
    assert_eq!(
        call([PSCI_SYSTEM_OFF.into(), 0, 0, 0], &vm),
        Outcome::SystemOff
    );
    assert_eq!(
        call([PSCI_SYSTEM_RESET.into(), 0, 0, 0], &vm),
        Outcome::SystemReset
    );
    assert_eq!(
        call([PSCI_MIGRATE_INFO_TYPE.into(), 0, 0, 0], &vm),
        Outcome::Return(MIGRATE_INFO_NOT_PRESENT)
    );
}

#[test]
fn affinity_info_by_level() {
    // 18 vCPUs: 0..=15 in cluster 0, 16 and 17 in cluster 1 (Aff1 = 1).
    let mut power = vec![Power::Off; 18];
    power[3] = Power::On;
    power[17] = Power::OnPending;
    let vm = Vm(power);
    let info =
        |target: u64, level: u64| call([PSCI_AFFINITY_INFO_64.into(), target, level, 0], &vm);
    assert_eq!(info(3, 0), Outcome::Return(AFFINITY_ON));
    assert_eq!(info(4, 0), Outcome::Return(AFFINITY_OFF));
    assert_eq!(info(0x101, 0), Outcome::Return(AFFINITY_ON_PENDING));
    assert_eq!(info(0x100, 0), Outcome::Return(AFFINITY_OFF));
    // Level 1: cluster 0 is on because vCPU 3 is.
    assert_eq!(info(0x0, 1), Outcome::Return(AFFINITY_ON));
    assert_eq!(info(0x1ff, 1), Outcome::Return(AFFINITY_ON_PENDING));
    assert_eq!(info(0x200, 1), ret(INVALID_PARAMETERS));
    assert_eq!(info(0x102, 0), ret(INVALID_PARAMETERS));
    assert_eq!(info(3, 4), ret(INVALID_PARAMETERS));
    assert_eq!(info(3 | 1 << 63, 0), ret(INVALID_PARAMETERS));
}

fn power_strategy() -> impl Strategy<Value = Power> {
    prop_oneof![Just(Power::Off), Just(Power::OnPending), Just(Power::On)]
}

proptest! {
    /// Any register contents: a defined outcome, never a start of a vCPU
    /// that is not off or an entry outside RAM.
    #[test]
    fn any_call_is_answered(x in any::<[u64; 4]>(), power in proptest::collection::vec(power_strategy(), 1..20)) {
        let vm = Vm(power);
        if let Outcome::StartVcpu { vcpu, entry, .. } = handle(Call::decode(x), &vm) {
            prop_assert_eq!(vm.power(vcpu), Power::Off);
            prop_assert!(vm.is_valid_entry(entry));
        }
    }
}
