//! PSCI 1.1 and SMCCC 1.1 for guests, as pure logic.
//!
//! A guest calls firmware with HVC (or SMC, which the hypervisor traps): the
//! function ID in w0, arguments in x1..x3. [`Call::decode`] turns those
//! registers into a typed call and [`handle`] decides what happens, asking the
//! VM (through [`Vcpus`]) only what it must know: which vCPU an MPIDR names
//! and whether it is on. The hypervisor carries out the [`Outcome`].
//!
//! What is offered, per the PSCI specification (Arm DEN 0022, v1.1) and the
//! SMC Calling Convention (Arm DEN 0028, v1.1): `PSCI_VERSION`,
//! `PSCI_FEATURES`, `CPU_ON`, `CPU_OFF`, `CPU_SUSPEND` (every power state is
//! treated as standby: the vCPU waits like WFI and the call returns
//! `SUCCESS`, as KVM does), `AFFINITY_INFO`, `MIGRATE_INFO_TYPE` (no trusted
//! OS to migrate), `SYSTEM_OFF`, `SYSTEM_RESET`, `SMCCC_VERSION` and
//! `SMCCC_ARCH_FEATURES`. Every other function ID returns `NOT_SUPPORTED`.

#![no_std]
#![deny(missing_docs)]

use smccc::arch::{SMCCC_ARCH_FEATURES, SMCCC_VERSION};
use smccc::psci::error::{
    ALREADY_ON, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, ON_PENDING,
};
use smccc::psci::{
    PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

/// PSCI version offered: 1.1 (major in bits 31:16, minor in 15:0).
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;

/// SMCCC version offered: 1.1.
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;

/// `MIGRATE_INFO_TYPE`: no trusted OS is present that needs migration.
pub const MIGRATE_INFO_NOT_PRESENT: u64 = 2;

/// `AFFINITY_INFO` answers.
const AFFINITY_ON: u64 = 0;
const AFFINITY_OFF: u64 = 1;
const AFFINITY_ON_PENDING: u64 = 2;

/// MPIDR affinity fields Aff3 (39:32), Aff2 (23:16), Aff1 (15:8), Aff0 (7:0).
const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// A decoded guest call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `SMCCC_VERSION`.
    SmcccVersion,
    /// `SMCCC_ARCH_FEATURES`: is `function` implemented?
    SmcccArchFeatures {
        /// The function asked about.
        function: u32,
    },
    /// `PSCI_VERSION`.
    PsciVersion,
    /// `PSCI_FEATURES`: is `function` implemented?
    PsciFeatures {
        /// The function asked about.
        function: u32,
    },
    /// `CPU_ON`: start the vCPU `target` at `entry` with x0 = `context`.
    CpuOn {
        /// MPIDR of the vCPU to start.
        target: u64,
        /// Where it starts, an IPA (MMU off).
        entry: u64,
        /// Its x0.
        context: u64,
    },
    /// `CPU_OFF`: stop the calling vCPU.
    CpuOff,
    /// `CPU_SUSPEND`: wait for a wake-up event.
    CpuSuspend {
        /// The requested power state (every state is treated as standby).
        power_state: u64,
    },
    /// `AFFINITY_INFO`: is the affinity instance `target` on?
    AffinityInfo {
        /// MPIDR of the instance.
        target: u64,
        /// Affinity level (0..=3) whose lower fields are ignored.
        lowest_level: u64,
    },
    /// `MIGRATE_INFO_TYPE`.
    MigrateInfoType,
    /// `SYSTEM_OFF`.
    SystemOff,
    /// `SYSTEM_RESET`.
    SystemReset,
    /// Anything else.
    Unknown {
        /// The function ID as called.
        function: u32,
    },
}

impl Call {
    /// Decodes the function ID in w0 and the arguments in x1..x3. Calls by
    /// their SMC32 IDs take 32-bit arguments: the upper halves are ignored,
    /// as SMCCC requires.
    pub fn decode(x: [u64; 4]) -> Self {
        let function = x[0] as u32;
        let w = |i: usize| x[i] & 0xffff_ffff;
        match function {
            SMCCC_VERSION => Self::SmcccVersion,
            SMCCC_ARCH_FEATURES => Self::SmcccArchFeatures {
                function: x[1] as u32,
            },
            PSCI_VERSION => Self::PsciVersion,
            PSCI_FEATURES => Self::PsciFeatures {
                function: x[1] as u32,
            },
            PSCI_CPU_ON_64 => Self::CpuOn {
                target: x[1],
                entry: x[2],
                context: x[3],
            },
            PSCI_CPU_ON_32 => Self::CpuOn {
                target: w(1),
                entry: w(2),
                context: w(3),
            },
            PSCI_CPU_OFF => Self::CpuOff,
            PSCI_CPU_SUSPEND_64 => Self::CpuSuspend { power_state: x[1] },
            PSCI_CPU_SUSPEND_32 => Self::CpuSuspend { power_state: w(1) },
            PSCI_AFFINITY_INFO_64 => Self::AffinityInfo {
                target: x[1],
                lowest_level: x[2],
            },
            PSCI_AFFINITY_INFO_32 => Self::AffinityInfo {
                target: w(1),
                lowest_level: w(2),
            },
            PSCI_MIGRATE_INFO_TYPE => Self::MigrateInfoType,
            PSCI_SYSTEM_OFF => Self::SystemOff,
            PSCI_SYSTEM_RESET => Self::SystemReset,
            function => Self::Unknown { function },
        }
    }
}

/// Whether a function ID is one [`handle`] implements (what `PSCI_FEATURES`
/// reports).
pub fn is_implemented(function: u32) -> bool {
    !matches!(
        Call::decode([u64::from(function), 0, 0, 0]),
        Call::Unknown { .. }
    )
}

/// A vCPU's power state as PSCI sees it. `repr(u8)`, so a hypervisor can
/// keep it in an atomic byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    /// Off: `CPU_ON` may start it.
    Off = 0,
    /// Started by `CPU_ON` but not yet running.
    OnPending = 1,
    /// Running, runnable or waiting (suspended counts as on).
    On = 2,
}

/// What [`handle`] needs to know about the calling VM.
pub trait Vcpus {
    /// Number of vCPUs.
    fn count(&self) -> usize;
    /// The MPIDR affinity of vCPU `index` (< [`count`](Self::count)).
    fn mpidr(&self, index: usize) -> u64;
    /// The power state of vCPU `index`.
    fn power(&self, index: usize) -> Power;
    /// Whether a vCPU may start executing at IPA `entry` (inside its RAM).
    fn is_valid_entry(&self, entry: u64) -> bool;
}

/// What the hypervisor must do for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write this value to the caller's x0 and resume it.
    Return(u64),
    /// Start vCPU `vcpu` at `entry` with x0 = `context` if it is still
    /// off, then return `SUCCESS` to the caller; if another call started it
    /// meanwhile, return `ALREADY_ON` instead.
    StartVcpu {
        /// Index of the vCPU to start.
        vcpu: usize,
        /// Its first instruction, an IPA.
        entry: u64,
        /// Its x0.
        context: u64,
    },
    /// Stop the calling vCPU (`CPU_OFF` does not return).
    StopCaller,
    /// Wait like WFI, then return `SUCCESS`.
    Suspend,
    /// End the VM.
    SystemOff,
    /// Restart the VM.
    SystemReset,
}

/// `SUCCESS`.
pub const SUCCESS: u64 = 0;

/// A PSCI/SMCCC error code as the 64-bit x0 a guest reads.
pub fn error_code(code: i32) -> u64 {
    i64::from(code) as u64
}

/// Decides the outcome of `call` made by a vCPU of `vm`.
pub fn handle(call: Call, vm: &impl Vcpus) -> Outcome {
    match call {
        Call::SmcccVersion => Outcome::Return(u64::from(SMCCC_VERSION_1_1)),
        // No architectural workaround is offered; only the query itself.
        Call::SmcccArchFeatures { function } => {
            Outcome::Return(if function == SMCCC_ARCH_FEATURES {
                SUCCESS
            } else {
                error_code(NOT_SUPPORTED)
            })
        }
        Call::PsciVersion => Outcome::Return(u64::from(PSCI_VERSION_1_1)),
        // For CPU_SUSPEND, 0 also says: original power_state format, no
        // OS-initiated mode.
        Call::PsciFeatures { function } => Outcome::Return(if is_implemented(function) {
            SUCCESS
        } else {
            error_code(NOT_SUPPORTED)
        }),
        Call::CpuOn {
            target,
            entry,
            context,
        } => match find(vm, target) {
            None => Outcome::Return(error_code(INVALID_PARAMETERS)),
            Some(vcpu) => match vm.power(vcpu) {
                Power::On => Outcome::Return(error_code(ALREADY_ON)),
                Power::OnPending => Outcome::Return(error_code(ON_PENDING)),
                Power::Off if !vm.is_valid_entry(entry) => {
                    Outcome::Return(error_code(INVALID_ADDRESS))
                }
                Power::Off => Outcome::StartVcpu {
                    vcpu,
                    entry,
                    context,
                },
            },
        },
        Call::CpuOff => Outcome::StopCaller,
        Call::CpuSuspend { .. } => Outcome::Suspend,
        Call::AffinityInfo {
            target,
            lowest_level,
        } => affinity_info(vm, target, lowest_level),
        Call::MigrateInfoType => Outcome::Return(MIGRATE_INFO_NOT_PRESENT),
        Call::SystemOff => Outcome::SystemOff,
        Call::SystemReset => Outcome::SystemReset,
        Call::Unknown { .. } => Outcome::Return(error_code(NOT_SUPPORTED)),
    }
}

/// The vCPU whose MPIDR affinity is exactly `target`'s.
fn find(vm: &impl Vcpus, target: u64) -> Option<usize> {
    if target & !AFFINITY_MASK != 0 {
        return None;
    }
    (0..vm.count()).find(|&i| vm.mpidr(i) & AFFINITY_MASK == target)
}

/// `AFFINITY_INFO`: at level 0 the state of one vCPU; at higher levels that
/// of the group sharing the upper affinity fields (on if any member is).
fn affinity_info(vm: &impl Vcpus, target: u64, lowest_level: u64) -> Outcome {
    // Fields ignored at each level: none, Aff0, Aff1..0, Aff2..0.
    let ignored = match lowest_level {
        0 => 0,
        1 => 0xff,
        2 => 0xffff,
        3 => 0xff_ffff,
        _ => return Outcome::Return(error_code(INVALID_PARAMETERS)),
    };
    if target & !AFFINITY_MASK != 0 {
        return Outcome::Return(error_code(INVALID_PARAMETERS));
    }
    let wanted = target & !ignored;
    let members = (0..vm.count()).filter(|&i| vm.mpidr(i) & AFFINITY_MASK & !ignored == wanted);
    let mut any = false;
    let mut state = AFFINITY_OFF;
    for i in members {
        any = true;
        match vm.power(i) {
            Power::On => return Outcome::Return(AFFINITY_ON),
            Power::OnPending => state = AFFINITY_ON_PENDING,
            Power::Off => {}
        }
    }
    if any {
        Outcome::Return(state)
    } else {
        Outcome::Return(error_code(INVALID_PARAMETERS))
    }
}

#[cfg(test)]
mod tests;
