//! What a guest sees of the CPU's feature ID registers.
//!
//! With HCR_EL2.TID3 set, every guest read of the ID register space
//! (`op0 = 3, op1 = 0, CRn = 0, CRm = 1..=7`: ID_AA64PFR0_EL1,
//! ID_AA64ISAR1_EL1 and the rest, Arm ARM D23.3.1) traps to the hypervisor,
//! which answers with [`sanitise`] of the real value. A feature is hidden
//! when its state is not switched between vCPUs or its traps are not
//! handled, so that a guest never starts using it: SVE and SME (Z and ZA
//! registers), MTE (tags), pointer authentication (keys), the PMU, SPE, trace
//! and branch records, AMU, MPAM, RAS error records, the memory-copy
//! instructions and FEAT_NMI/GCS/THE. Everything else is the hardware's.
//!
//! Hiding a feature means writing 0 ("not implemented") into its field;
//! every field named here uses 0 for that.

#![no_std]
#![deny(missing_docs)]

/// An ID register in the trapped space, by its encoding's CRm and op2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IdReg {
    /// CRm, 1..=7.
    pub crm: u8,
    /// op2, 0..=7.
    pub op2: u8,
}

impl IdReg {
    /// ID_AA64PFR0_EL1.
    pub const AA64PFR0: Self = Self::new(4, 0);
    /// ID_AA64PFR1_EL1.
    pub const AA64PFR1: Self = Self::new(4, 1);
    /// ID_AA64ZFR0_EL1 (SVE).
    pub const AA64ZFR0: Self = Self::new(4, 4);
    /// ID_AA64SMFR0_EL1 (SME).
    pub const AA64SMFR0: Self = Self::new(4, 5);
    /// ID_AA64DFR0_EL1.
    pub const AA64DFR0: Self = Self::new(5, 0);
    /// ID_AA64ISAR1_EL1.
    pub const AA64ISAR1: Self = Self::new(6, 1);
    /// ID_AA64ISAR2_EL1.
    pub const AA64ISAR2: Self = Self::new(6, 2);

    const fn new(crm: u8, op2: u8) -> Self {
        Self { crm, op2 }
    }

    /// The ID register with this system register encoding, if it is one:
    /// `op0 = 3, op1 = 0, CRn = 0, CRm = 1..=7`, any op2.
    pub const fn from_encoding(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Option<Self> {
        if op0 == 3 && op1 == 0 && crn == 0 && crm >= 1 && crm <= 7 && op2 <= 7 {
            Some(Self::new(crm, op2))
        } else {
            None
        }
    }
}

/// A 4-bit feature field at bit `shift`.
#[derive(Clone, Copy)]
struct Field(u32);

impl Field {
    const fn mask(self) -> u64 {
        0xf << self.0
    }
}

/// ID_AA64PFR0_EL1: RAS, SVE, MPAM, AMU, RME.
const PFR0_HIDDEN: &[Field] = &[Field(28), Field(32), Field(40), Field(44), Field(52)];
/// ID_AA64PFR1_EL1: MTE, RAS_frac, MPAM_frac, SME, NMI, MTE_frac, GCS, THE, MTEX.
const PFR1_HIDDEN: &[Field] = &[
    Field(8),
    Field(12),
    Field(16),
    Field(24),
    Field(36),
    Field(40),
    Field(44),
    Field(48),
    Field(52),
];
/// ID_AA64DFR0_EL1: TraceVer, PMUVer, PMSVer, TraceFilt, TraceBuffer, BRBE.
const DFR0_HIDDEN: &[Field] = &[
    Field(4),
    Field(8),
    Field(32),
    Field(40),
    Field(44),
    Field(52),
];
/// ID_AA64ISAR1_EL1: APA, API, GPA, GPI (pointer authentication).
const ISAR1_HIDDEN: &[Field] = &[Field(4), Field(8), Field(24), Field(28)];
/// ID_AA64ISAR2_EL1: GPA3, APA3 (pointer authentication), MOPS.
const ISAR2_HIDDEN: &[Field] = &[Field(8), Field(12), Field(16)];

/// The value a guest reads from `reg`, given the hardware's `host` value.
pub fn sanitise(reg: IdReg, host: u64) -> u64 {
    let hidden: &[Field] = match reg {
        IdReg::AA64ZFR0 | IdReg::AA64SMFR0 => return 0,
        IdReg::AA64PFR0 => PFR0_HIDDEN,
        IdReg::AA64PFR1 => PFR1_HIDDEN,
        IdReg::AA64DFR0 => DFR0_HIDDEN,
        IdReg::AA64ISAR1 => ISAR1_HIDDEN,
        IdReg::AA64ISAR2 => ISAR2_HIDDEN,
        _ => &[],
    };
    hidden
        .iter()
        .fold(host, |value, field| value & !field.mask())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ID_AA64PFR0_EL1 with SVE, RAS, AMU and the GIC system registers
    /// implemented, and EL0 to EL3 in AArch64 and AArch32.
    const QEMU_MAX_PFR0: u64 = 0x1201_1111_1111_2222;

    #[test]
    fn sve_ras_amu_mpam_rme_are_hidden_and_the_rest_kept() {
        let guest = sanitise(IdReg::AA64PFR0, QEMU_MAX_PFR0);
        assert_eq!((guest >> 32) & 0xf, 0, "SVE");
        assert_eq!((guest >> 28) & 0xf, 0, "RAS");
        assert_eq!((guest >> 44) & 0xf, 0, "AMU");
        assert_eq!((guest >> 24) & 0xf, 1, "GIC system registers stay");
        assert_eq!(guest & 0xffff, QEMU_MAX_PFR0 & 0xffff, "EL0..EL3 stay");
    }

    #[test]
    fn pointer_authentication_is_hidden_everywhere() {
        let isar1 = sanitise(IdReg::AA64ISAR1, u64::MAX);
        assert_eq!(isar1 & 0xff0, 0);
        assert_eq!(isar1 & 0xff00_0000, 0);
        assert_eq!(isar1 & 0xf, 0xf, "DPB stays");
        let isar2 = sanitise(IdReg::AA64ISAR2, u64::MAX);
        assert_eq!(isar2 & 0xfff00, 0, "GPA3, APA3, MOPS");
        assert_eq!(isar2 & 0xf, 0xf, "WFxT stays");
    }

    #[test]
    fn sve_and_sme_feature_registers_read_as_zero() {
        assert_eq!(sanitise(IdReg::AA64ZFR0, u64::MAX), 0);
        assert_eq!(sanitise(IdReg::AA64SMFR0, u64::MAX), 0);
    }

    #[test]
    fn pmu_spe_trace_and_mte_are_hidden() {
        let dfr0 = sanitise(IdReg::AA64DFR0, u64::MAX);
        assert_eq!((dfr0 >> 8) & 0xf, 0, "PMUVer");
        assert_eq!((dfr0 >> 32) & 0xf, 0, "PMSVer");
        assert_eq!(dfr0 & 0xf, 0xf, "DebugVer stays");
        let pfr1 = sanitise(IdReg::AA64PFR1, u64::MAX);
        assert_eq!((pfr1 >> 8) & 0xf, 0, "MTE");
        assert_eq!((pfr1 >> 24) & 0xf, 0, "SME");
        assert_eq!(pfr1 & 0xf, 0xf, "BT stays");
    }

    #[test]
    fn encodings_outside_the_id_space_are_not_id_registers() {
        assert_eq!(IdReg::from_encoding(3, 0, 0, 4, 0), Some(IdReg::AA64PFR0));
        assert_eq!(
            IdReg::from_encoding(3, 0, 0, 0, 5),
            None,
            "MPIDR_EL1 is CRm 0"
        );
        assert_eq!(IdReg::from_encoding(3, 0, 0, 8, 0), None);
        assert_eq!(IdReg::from_encoding(3, 1, 0, 4, 0), None);
        assert_eq!(IdReg::from_encoding(3, 0, 1, 4, 0), None);
    }

    proptest! {
        /// Sanitising only ever clears bits, and is idempotent.
        #[test]
        fn only_clears(crm in 1u8..=7, op2 in 0u8..=7, host: u64) {
            let reg = IdReg::from_encoding(3, 0, 0, crm, op2).unwrap();
            let guest = sanitise(reg, host);
            prop_assert_eq!(guest & !host, 0);
            prop_assert_eq!(sanitise(reg, guest), guest);
        }
    }
}
