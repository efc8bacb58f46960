//! Decoding concrete syndromes. Each value is built by hand from the field
//! layout in the comment next to it, so a wrong shift in the decoder shows.

use syndrome::{
    Direction, Esr, ExceptionClass, FaultStatus, Mode, Spsr, SysReg, SysRegAccess, Wfx,
};

/// EC in bits 31:26, IL in bit 25, ISS below.
fn esr(ec: u8, il: bool, iss: u32) -> Esr {
    Esr((u64::from(ec) << 26) | (u64::from(il) << 25) | u64::from(iss))
}

#[test]
fn data_abort_same_el_without_isv_is_a_level_1_translation_fault_on_write() {
    // EC 0x25, IL=1, ISS: WnR (bit 6) = 1, DFSC = 0x05.
    let e = Esr(0x9600_0045);
    assert_eq!(e, esr(0x25, true, 0x45));
    assert_eq!(e.ec(), ExceptionClass::DataAbortSame);
    assert!(e.il());
    assert_eq!(e.iss(), 0x45);
    let da = e.data_abort().unwrap();
    assert!(!da.isv());
    assert_eq!(da.access_size_bytes(), None);
    assert_eq!(da.register(), None);
    assert_eq!(da.sign_extend(), None);
    assert_eq!(da.is_64bit_reg(), None);
    assert_eq!(da.acquire_release(), None);
    assert_eq!(da.is_write(), Some(true));
    assert_eq!(da.fault_status(), FaultStatus::Translation { level: 1 });
    assert_eq!(
        e.to_string(),
        "EC 0x25 (data abort from the current EL): ISV=0 WnR=1 S1PTW=0 FnV=0 EA=0 CM=0 \
         DFSC=0x05 (translation fault, level 1)"
    );
}

#[test]
fn guest_word_store_from_w2_decodes_with_isv() {
    // `str w2, [x1]` from EL1 to an unmapped IPA: EC 0x24, IL, ISV (24),
    // SAS=2 (23:22), SRT=2 (20:16), WnR (6), DFSC 0x07.
    let e = Esr(0x9382_0047);
    assert_eq!(
        e,
        esr(
            0x24,
            true,
            (1 << 24) | (2 << 22) | (2 << 16) | (1 << 6) | 0x07
        )
    );
    let da = e.data_abort().unwrap();
    assert!(da.isv());
    assert_eq!(da.access_size_bytes(), Some(4));
    assert_eq!(da.register(), Some(2));
    assert_eq!(da.sign_extend(), Some(false));
    assert_eq!(da.is_64bit_reg(), Some(false));
    assert_eq!(da.acquire_release(), Some(false));
    assert_eq!(da.is_write(), Some(true));
    assert_eq!(da.fault_status(), FaultStatus::Translation { level: 3 });
    assert_eq!(
        e.to_string(),
        "EC 0x24 (data abort from a lower EL): ISV=1 SAS=4B SSE=0 SRT=2 SF=0 AR=0 WnR=1 \
         S1PTW=0 FnV=0 EA=0 CM=0 DFSC=0x07 (translation fault, level 3)"
    );
}

#[test]
fn guest_sign_extending_halfword_load_into_x5_decodes_with_isv() {
    // `ldrsh x5, [x0]`: ISV, SAS=1, SSE (21), SRT=5, SF (15), read, DFSC 0x06.
    let e = Esr(0x9365_8006);
    assert_eq!(
        e,
        esr(
            0x24,
            true,
            (1 << 24) | (1 << 22) | (1 << 21) | (5 << 16) | (1 << 15) | 0x06
        )
    );
    let da = e.data_abort().unwrap();
    assert_eq!(da.access_size_bytes(), Some(2));
    assert_eq!(da.sign_extend(), Some(true));
    assert_eq!(da.register(), Some(5));
    assert_eq!(da.is_64bit_reg(), Some(true));
    assert_eq!(da.is_write(), Some(false));
    assert_eq!(da.fault_status(), FaultStatus::Translation { level: 2 });
}

#[test]
fn acquire_doubleword_load_into_xzr() {
    // `ldar xzr, [x0]`: ISV, SAS=3, SRT=31, SF, AR (14), DFSC 0x0f.
    let e = esr(
        0x24,
        true,
        (1 << 24) | (3 << 22) | (31 << 16) | (1 << 15) | (1 << 14) | 0x0f,
    );
    let da = e.data_abort().unwrap();
    assert_eq!(da.access_size_bytes(), Some(8));
    assert_eq!(da.register(), Some(31));
    assert_eq!(da.acquire_release(), Some(true));
    assert_eq!(da.fault_status(), FaultStatus::Permission { level: 3 });
}

#[test]
fn every_isv_field_combination_round_trips() {
    for sas in 0..4u32 {
        for srt in 0..32u32 {
            for flags in 0..8u32 {
                let (sse, sf, ar) = (flags & 1, (flags >> 1) & 1, (flags >> 2) & 1);
                let iss =
                    (1 << 24) | (sas << 22) | (sse << 21) | (srt << 16) | (sf << 15) | (ar << 14);
                let da = esr(0x25, true, iss).data_abort().unwrap();
                assert_eq!(da.access_size_bytes(), Some(1 << sas));
                assert_eq!(da.register(), Some(srt as u8));
                assert_eq!(da.sign_extend(), Some(sse == 1));
                assert_eq!(da.is_64bit_reg(), Some(sf == 1));
                assert_eq!(da.acquire_release(), Some(ar == 1));
            }
        }
    }
}

#[test]
fn cache_maintenance_abort_has_no_meaningful_direction() {
    // CM (8) = 1, WnR reads 1, DFSC 0x10 (synchronous external abort).
    let e = esr(0x25, true, (1 << 8) | (1 << 6) | 0x10);
    let da = e.data_abort().unwrap();
    assert!(da.cache_maintenance());
    assert_eq!(da.is_write(), None);
    assert_eq!(da.fault_status(), FaultStatus::SyncExternal);
    assert!(e
        .to_string()
        .contains("CM=1 DFSC=0x10 (synchronous external abort)"));
}

#[test]
fn abort_flag_bits_decode() {
    // S1PTW (7), EA (9), FnV (10).
    let da = esr(0x24, true, (1 << 10) | (1 << 9) | (1 << 7) | 0x0a)
        .data_abort()
        .unwrap();
    assert!(da.s1ptw() && da.external_abort_type() && da.far_not_valid());
    assert_eq!(da.fault_status(), FaultStatus::AccessFlag { level: 2 });
}

#[test]
fn instruction_abort_from_lower_el_permission_fault() {
    let e = Esr(0x8200_000f);
    assert_eq!(e.ec(), ExceptionClass::InstructionAbortLower);
    let ia = e.instruction_abort().unwrap();
    assert_eq!(ia.fault_status(), FaultStatus::Permission { level: 3 });
    assert!(!ia.s1ptw());
    assert_eq!(e.data_abort(), None);
    assert_eq!(
        e.to_string(),
        "EC 0x20 (instruction abort from a lower EL): S1PTW=0 FnV=0 EA=0 \
         IFSC=0x0f (permission fault, level 3)"
    );
}

#[test]
fn instruction_abort_on_stage1_walk() {
    let ia = esr(0x21, true, (1 << 7) | (1 << 10) | 0x07)
        .instruction_abort()
        .unwrap();
    assert!(ia.s1ptw() && ia.far_not_valid() && !ia.external_abort_type());
    assert_eq!(ia.fault_status(), FaultStatus::Translation { level: 3 });
}

#[test]
fn fault_status_codes_decode_and_print() {
    let cases: &[(u8, FaultStatus, &str)] = &[
        (
            0x02,
            FaultStatus::AddressSize { level: 2 },
            "address size fault, level 2",
        ),
        (
            0x04,
            FaultStatus::Translation { level: 0 },
            "translation fault, level 0",
        ),
        (
            0x2a,
            FaultStatus::Translation { level: -2 },
            "translation fault, level -2",
        ),
        (
            0x2b,
            FaultStatus::Translation { level: -1 },
            "translation fault, level -1",
        ),
        (
            0x09,
            FaultStatus::AccessFlag { level: 1 },
            "access flag fault, level 1",
        ),
        (
            0x0c,
            FaultStatus::Permission { level: 0 },
            "permission fault, level 0",
        ),
        (0x11, FaultStatus::TagCheck, "synchronous tag check fault"),
        (
            0x13,
            FaultStatus::SyncExternalOnWalk { level: -1 },
            "synchronous external abort on table walk, level -1",
        ),
        (
            0x15,
            FaultStatus::SyncExternalOnWalk { level: 1 },
            "synchronous external abort on table walk, level 1",
        ),
        (
            0x18,
            FaultStatus::SyncParity,
            "synchronous parity/ECC error",
        ),
        (
            0x1f,
            FaultStatus::SyncParityOnWalk { level: 3 },
            "synchronous parity/ECC error on table walk, level 3",
        ),
        (0x21, FaultStatus::Alignment, "alignment fault"),
        (0x30, FaultStatus::TlbConflict, "TLB conflict abort"),
        (
            0x31,
            FaultStatus::UnsupportedAtomicUpdate,
            "unsupported atomic hardware update fault",
        ),
        (
            0x34,
            FaultStatus::ImplementationDefinedLockdown,
            "IMPLEMENTATION DEFINED fault (lockdown)",
        ),
        (
            0x35,
            FaultStatus::ImplementationDefinedAtomic,
            "IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic access)",
        ),
        (0x3f, FaultStatus::Other(0x3f), "unrecognised fault status"),
    ];
    for &(code, status, text) in cases {
        assert_eq!(FaultStatus::from_raw(code), status, "code {code:#x}");
        assert_eq!(status.to_string(), text);
    }
    assert_eq!(
        FaultStatus::from_raw(0x40 | 0x05),
        FaultStatus::Translation { level: 1 }
    );
}

#[test]
fn hvc_smc_and_svc_report_their_immediate() {
    // HVC #0: EC 0x16 with IL. (0x5E00_0000 is SMC #0: EC 0x17.)
    let hvc = Esr(0x5A00_0000);
    assert_eq!(hvc.ec(), ExceptionClass::Hvc64);
    assert_eq!(hvc.imm16(), Some(0));
    assert_eq!(hvc.to_string(), "EC 0x16 (HVC in AArch64): imm16=0x0000");

    let smc = Esr(0x5E00_0000);
    assert_eq!(smc.ec(), ExceptionClass::Smc64);
    assert_eq!(smc.imm16(), Some(0));

    let svc = Esr(0x5600_0080);
    assert_eq!(svc.ec(), ExceptionClass::Svc64);
    assert_eq!(svc.imm16(), Some(0x80));
    assert_eq!(esr(0x16, true, 0xffff).imm16(), Some(0xffff));
    assert_eq!(Esr(0x9600_0045).imm16(), None);
}

#[test]
fn mrs_of_mpidr_el1_into_x3_is_a_read_trap() {
    // Op0=3 (21:20), Op2=5 (19:17), Op1=0, CRn=0, Rt=3 (9:5), CRm=0, read (0).
    let e = Esr(0x623A_0061);
    assert_eq!(e, esr(0x18, true, (3 << 20) | (5 << 17) | (3 << 5) | 1));
    let access = e.sys_reg_access().unwrap();
    assert_eq!(
        access,
        SysRegAccess {
            reg: SysReg::new(3, 0, 0, 0, 5),
            rt: 3,
            direction: Direction::Read,
        }
    );
    assert_eq!(
        e.to_string(),
        "EC 0x18 (trapped MSR/MRS/system instruction): MRS x3, S3_0_C0_C0_5"
    );
}

#[test]
fn msr_to_icc_sgi1r_el1_from_x5_is_a_write_trap() {
    // S3_0_C12_C11_5: Op0=3, Op2=5, Op1=0, CRn=12 (13:10), Rt=5, CRm=11 (4:1).
    let e = Esr(0x623A_30B6);
    assert_eq!(
        e,
        esr(
            0x18,
            true,
            (3 << 20) | (5 << 17) | (12 << 10) | (5 << 5) | (11 << 1)
        )
    );
    let access = e.sys_reg_access().unwrap();
    assert_eq!(access.reg, SysReg::new(3, 0, 12, 11, 5));
    assert_eq!(access.rt, 5);
    assert_eq!(access.direction, Direction::Write);
    assert_eq!(access.to_string(), "MSR S3_0_C12_C11_5, x5");
}

#[test]
fn xzr_is_named_in_system_register_accesses() {
    let read = SysRegAccess {
        reg: SysReg::new(3, 3, 14, 0, 2),
        rt: 31,
        direction: Direction::Read,
    };
    assert_eq!(read.to_string(), "MRS xzr, S3_3_C14_C0_2");
    let write = SysRegAccess {
        direction: Direction::Write,
        ..read
    };
    assert_eq!(write.to_string(), "MSR S3_3_C14_C0_2, xzr");
}

#[test]
fn every_system_register_access_round_trips_through_the_iss() {
    for op0 in 0..4 {
        for op1 in 0..8 {
            for crn in 0..16 {
                for crm in 0..16 {
                    for op2 in 0..8 {
                        for rt in [0, 17, 31] {
                            for direction in [Direction::Read, Direction::Write] {
                                let access = SysRegAccess {
                                    reg: SysReg::new(op0, op1, crn, crm, op2),
                                    rt,
                                    direction,
                                };
                                let e = esr(0x18, true, access.to_iss());
                                assert_eq!(e.sys_reg_access(), Some(access));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sys_reg_new_masks_fields_to_their_widths() {
    assert_eq!(SysReg::new(7, 15, 31, 31, 15), SysReg::new(3, 7, 15, 15, 7));
}

#[test]
fn wait_instructions_are_told_apart() {
    let cases = [
        (0x0600_0000, Wfx::Wfi, "WFI"),
        (0x0600_0001, Wfx::Wfe, "WFE"),
        (0x0600_0002, Wfx::Wfit, "WFIT"),
        (0x0600_0003, Wfx::Wfet, "WFET"),
    ];
    for (value, kind, name) in cases {
        let e = Esr(value);
        assert_eq!(e.ec(), ExceptionClass::Wfx);
        assert_eq!(e.wfx(), Some(kind));
        assert_eq!(e.to_string(), format!("EC 0x01 (trapped WFI/WFE): {name}"));
    }
    assert_eq!(Esr(0x5A00_0000).wfx(), None);
}

#[test]
fn brk_serror_and_unallocated_classes_print() {
    assert_eq!(
        Esr(0xF200_03E8).to_string(),
        "EC 0x3c (BRK in AArch64): comment=0x03e8"
    );
    assert_eq!(Esr(0xBE00_0000).to_string(), "EC 0x2f (SError): ISS=0x0");
    assert_eq!(
        Esr(0xFE00_0001).to_string(),
        "EC 0x3f (unallocated exception class): ISS=0x1"
    );
}

#[test]
fn sixteen_bit_instruction_clears_il() {
    let e = Esr(0x9400_0045);
    assert!(!e.il());
    assert_eq!(e.ec(), ExceptionClass::DataAbortSame);
}

#[test]
fn bits_above_31_do_not_change_class_or_iss() {
    let e = Esr(0xffff_ffff_0000_0000 | 0x9600_0045);
    assert_eq!(e.ec(), ExceptionClass::DataAbortSame);
    assert_eq!(e.iss(), 0x45);
}

#[test]
fn every_ec_value_round_trips_and_gaps_are_unallocated() {
    let unallocated = [
        0x02, 0x0B, 0x0F, 0x10, 0x14, 0x1B, 0x1E, 0x23, 0x29, 0x2A, 0x2B, 0x2E, 0x36, 0x37, 0x39,
        0x3B, 0x3D, 0x3E, 0x3F,
    ];
    for raw in 0..64u8 {
        let class = ExceptionClass::from_raw(raw);
        assert_eq!(class.raw(), raw);
        assert_eq!(
            class == ExceptionClass::Unallocated(raw),
            unallocated.contains(&raw),
            "EC {raw:#x}"
        );
        assert!(!class.description().is_empty());
    }
    assert_eq!(ExceptionClass::from_raw(0x40 | 0x16), ExceptionClass::Hvc64);
}

#[test]
fn display_of_any_syndrome_starts_with_the_class() {
    let patterns = [0, 0x1ff_ffff, 0x155_5555, 0x0aa_aaaa, 1 << 24, 0x3f];
    for ec in 0..64u8 {
        for il in [false, true] {
            for iss in patterns {
                let e = esr(ec, il, iss);
                let text = e.to_string();
                let prefix = format!("EC {ec:#04x} ({}):", e.ec().description());
                assert!(text.starts_with(&prefix), "{text}");
                assert!(format!("{e:?}").contains(&text));
            }
        }
    }
}

#[test]
fn spsr_of_el2h_with_everything_masked() {
    let s = Spsr(0x3C9);
    assert_eq!(s.mode(), Mode::El2h);
    assert_eq!(s.daif(), 0b1111);
    assert_eq!(s.nzcv(), 0);
    assert_eq!(s.to_string(), "EL2h, DAIF=1111, NZCV=0000");
}

#[test]
fn spsr_of_el1h_with_z_and_c_set() {
    let s = Spsr(0x6000_0005);
    assert_eq!(s.mode(), Mode::El1h);
    assert_eq!(s.nzcv(), 0b0110);
    assert_eq!(s.to_string(), "EL1h, DAIF=0000, NZCV=0110");
}

#[test]
fn spsr_modes_decode() {
    let cases = [
        (0b00000, Mode::El0t, "EL0t"),
        (0b00100, Mode::El1t, "EL1t"),
        (0b00101, Mode::El1h, "EL1h"),
        (0b01000, Mode::El2t, "EL2t"),
        (0b01001, Mode::El2h, "EL2h"),
        (0b01100, Mode::El3t, "EL3t"),
        (0b01101, Mode::El3h, "EL3h"),
        (0x13, Mode::AArch32(0x13), "AArch32 svc (0x13)"),
        (0x1a, Mode::AArch32(0x1a), "AArch32 hyp (0x1a)"),
        (0x14, Mode::AArch32(0x14), "AArch32 reserved (0x14)"),
        (0b00001, Mode::Reserved(1), "reserved mode (0x01)"),
    ];
    for (m, mode, name) in cases {
        assert_eq!(Spsr(m).mode(), mode);
        assert_eq!(mode.to_string(), name);
    }
}

#[test]
fn spsr_illegal_state_and_software_step_are_shown() {
    let s = Spsr((1 << 21) | (1 << 20) | 0x5);
    assert!(s.illegal_execution() && s.software_step());
    assert_eq!(s.to_string(), "EL1h, DAIF=0000, NZCV=0000, IL, SS");
    assert_eq!(
        format!("{s:?}"),
        "Spsr(0x300005: EL1h, DAIF=0000, NZCV=0000, IL, SS)"
    );
}
