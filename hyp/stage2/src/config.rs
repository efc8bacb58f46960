//! Choosing the IPA size and start level, and the VTCR_EL2 value that
//! describes them to the hardware.
//!
//! References (Arm ARM, DDI 0487 K.a):
//! - D8.1.10 "Intermediate physical address size configuration", Table D8-8
//!   "Determining the effective minimum T0SZ value for stage 2 translations"
//!   (the IPA size may not exceed the implemented PA size) and Table D8-9
//!   "Implications of the effective minimum T0SZ value on the initial stage 2
//!   lookup level" (4 KiB granule: level 0 needs a PA size of at least 44
//!   bits).
//! - D8.2.8, Tables D8-21 and D8-22, "4KB granule, stage 2 initial lookup at
//!   level 0/1": one level-0 table serves T0SZ 16 to 24 (40 to 48 IPA bits),
//!   one level-1 table T0SZ 25 to 33 (31 to 39 IPA bits); anything else needs
//!   concatenated root tables.
//! - The VTCR_EL2 register description for the field encodings.

use crate::Stage2Error;
use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, VTCR_EL2};
use addr::IntermediatePhysAddr;
use tock_registers::fields::FieldValue;
use tock_registers::LocalRegisterCopy;

/// Largest IPA size a single level-1 root table translates with the 4 KiB
/// granule: 9 bits of index above a 1 GiB block (T0SZ 25).
const LEVEL1_MAX_IPA_BITS: u8 = 39;

/// Smallest PA size for which a stage-2 walk may start at level 0 with the
/// 4 KiB granule (Table D8-9).
const LEVEL0_MIN_PA_BITS: u8 = 44;

/// A physical address size as `ID_AA64MMFR0_EL1.PARange` and
/// `VTCR_EL2.PS` encode it, limited to what 4 KiB-granule descriptors
/// without FEAT_LPA2 can hold (48 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PaSize {
    Bits32,
    Bits36,
    Bits40,
    Bits42,
    Bits44,
    Bits48,
}

impl PaSize {
    /// Decodes PARange. 52 bits (0b0110) becomes 48: with the 4 KiB granule
    /// a 52-bit output address needs VTCR_EL2.DS and the FEAT_LPA2
    /// descriptor format, which `aarch64-paging` does not write.
    fn from_pa_range(raw: u8) -> Result<Self, Stage2Error> {
        use ID_AA64MMFR0_EL1::PARange::Value;
        const BITS32: u8 = Value::Bits_32 as u8;
        const BITS36: u8 = Value::Bits_36 as u8;
        const BITS40: u8 = Value::Bits_40 as u8;
        const BITS42: u8 = Value::Bits_42 as u8;
        const BITS44: u8 = Value::Bits_44 as u8;
        const BITS48: u8 = Value::Bits_48 as u8;
        const BITS52: u8 = Value::Bits_52 as u8;
        // A plain match on the raw value: reading it through a 4-bit
        // register field would silently drop higher bits.
        match raw {
            BITS32 => Ok(Self::Bits32),
            BITS36 => Ok(Self::Bits36),
            BITS40 => Ok(Self::Bits40),
            BITS42 => Ok(Self::Bits42),
            BITS44 => Ok(Self::Bits44),
            BITS48 | BITS52 => Ok(Self::Bits48),
            _ => Err(Stage2Error::UnknownPaRange(raw)),
        }
    }

    const fn bits(self) -> u8 {
        match self {
            Self::Bits32 => 32,
            Self::Bits36 => 36,
            Self::Bits40 => 40,
            Self::Bits42 => 42,
            Self::Bits44 => 44,
            Self::Bits48 => 48,
        }
    }

    fn vtcr_ps(self) -> FieldValue<u64, VTCR_EL2::Register> {
        match self {
            Self::Bits32 => VTCR_EL2::PS::PA_32B_4GB,
            Self::Bits36 => VTCR_EL2::PS::PA_36B_64GB,
            Self::Bits40 => VTCR_EL2::PS::PA_40B_1TB,
            Self::Bits42 => VTCR_EL2::PS::PA_42B_4TB,
            Self::Bits44 => VTCR_EL2::PS::PA_44B_16TB,
            Self::Bits48 => VTCR_EL2::PS::PA_48B_256TB,
        }
    }
}

/// Width of the VMIDs the hardware compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VmidWidth {
    Bits8,
    Bits16,
}

/// The shape of a VM's stage-2 translation: IPA size, start level, output
/// (PA) size and VMID width, chosen once from the hardware's ID registers
/// and the VM's memory map.
///
/// # How the IPA size is chosen
///
/// `aarch64-paging` builds one root table, never concatenated ones, so the
/// walk starts at level 1 (at most 39 IPA bits) or at level 0 (40 to 48
/// bits). The IPA size may not exceed the PA size, and a level-0 start needs
/// a PA size of at least 44 bits. So:
///
/// - if the VM's IPAs fit in 39 bits: start at level 1 with an IPA size of
///   39 bits, or of the PA size if that is smaller (32 or 36 bits);
/// - else, if the PA size is at least 44 bits: start at level 0 with an IPA
///   size equal to the PA size (44 or 48 bits);
/// - else (PA size 40 or 42 bits): [`Stage2Error::NeedsConcatenatedRoot`].
///
/// The IPA size is therefore the whole span of the smallest root that
/// covers the VM, cut down to the PA size: the number of walk levels, which
/// is what costs, depends only on the root level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Config {
    ipa_bits: u8,
    root_level: usize,
    pa_size: PaSize,
    vmid_width: VmidWidth,
}

impl Stage2Config {
    /// The configuration for a VM whose IPAs all lie below `ipa_end` (one
    /// past its highest IPA), on hardware whose
    /// `ID_AA64MMFR0_EL1.PARange` field is `pa_range` and whose VMIDs are
    /// `vmid_bits` wide (8 or 16; see [`vmid_bits_from_field`](Self::vmid_bits_from_field)).
    ///
    /// A PARange of 52 bits is used as 48 (no FEAT_LPA2 descriptors).
    ///
    /// # Errors
    ///
    /// - [`Stage2Error::UnknownPaRange`] for a reserved PARange encoding;
    /// - [`Stage2Error::UnsupportedVmidBits`] if `vmid_bits` is not 8 or 16;
    /// - [`Stage2Error::IpaBeyondPaSize`] if `ipa_end` exceeds the PA size;
    /// - [`Stage2Error::NeedsConcatenatedRoot`] if the IPAs need more than 39
    ///   bits and the PA size is below 44 bits.
    pub fn new(
        ipa_end: IntermediatePhysAddr,
        pa_range: u8,
        vmid_bits: u8,
    ) -> Result<Self, Stage2Error> {
        let pa_size = PaSize::from_pa_range(pa_range)?;
        let vmid_width = match vmid_bits {
            8 => VmidWidth::Bits8,
            16 => VmidWidth::Bits16,
            other => return Err(Stage2Error::UnsupportedVmidBits(other)),
        };
        let pa_bits = pa_size.bits();
        let needed = bits_to_cover(ipa_end.get());
        if needed > pa_bits {
            return Err(Stage2Error::IpaBeyondPaSize { ipa_end, pa_bits });
        }
        let (root_level, ipa_bits) = if needed <= LEVEL1_MAX_IPA_BITS {
            (1, pa_bits.min(LEVEL1_MAX_IPA_BITS))
        } else if pa_bits >= LEVEL0_MIN_PA_BITS {
            (0, pa_bits)
        } else {
            return Err(Stage2Error::NeedsConcatenatedRoot { ipa_end, pa_bits });
        };
        Ok(Self {
            ipa_bits,
            root_level,
            pa_size,
            vmid_width,
        })
    }

    /// As [`new`](Self::new), reading PARange from a raw
    /// `ID_AA64MMFR0_EL1` value and VMIDBits from a raw `ID_AA64MMFR1_EL1`
    /// value.
    ///
    /// # Errors
    ///
    /// Those of [`new`](Self::new) and of
    /// [`vmid_bits_from_field`](Self::vmid_bits_from_field).
    pub fn from_id_registers(
        ipa_end: IntermediatePhysAddr,
        id_aa64mmfr0: u64,
        id_aa64mmfr1: u64,
    ) -> Result<Self, Stage2Error> {
        let mmfr0 = LocalRegisterCopy::<u64, ID_AA64MMFR0_EL1::Register>::new(id_aa64mmfr0);
        let mmfr1 = LocalRegisterCopy::<u64, ID_AA64MMFR1_EL1::Register>::new(id_aa64mmfr1);
        // Both fields are 4 bits wide, so the casts are lossless.
        let pa_range = mmfr0.read(ID_AA64MMFR0_EL1::PARange) as u8;
        let vmid_bits = Self::vmid_bits_from_field(mmfr1.read(ID_AA64MMFR1_EL1::VMIDBits) as u8)?;
        Self::new(ipa_end, pa_range, vmid_bits)
    }

    /// The VMID width in bits encoded by the `ID_AA64MMFR1_EL1.VMIDBits`
    /// field `raw`: 0 means 8 bits, 2 means 16 bits.
    ///
    /// # Errors
    ///
    /// [`Stage2Error::UnknownVmidBitsField`] for any other (reserved) value.
    pub fn vmid_bits_from_field(raw: u8) -> Result<u8, Stage2Error> {
        use ID_AA64MMFR1_EL1::VMIDBits::Value;
        const BITS8: u8 = Value::Bits8 as u8;
        const BITS16: u8 = Value::Bits16 as u8;
        match raw {
            BITS8 => Ok(8),
            BITS16 => Ok(16),
            _ => Err(Stage2Error::UnknownVmidBitsField(raw)),
        }
    }

    /// The IPA size in bits: the guest's IPAs are `0..1 << ipa_bits()`.
    pub const fn ipa_bits(&self) -> u8 {
        self.ipa_bits
    }

    /// The level of the root table and of the first lookup: 0 or 1.
    pub const fn root_level(&self) -> usize {
        self.root_level
    }

    /// The PA size in bits that output addresses must fit (the hardware's,
    /// capped at 48).
    pub const fn pa_bits(&self) -> u8 {
        self.pa_size.bits()
    }

    /// The VMID width in bits: 8 or 16.
    pub const fn vmid_bits(&self) -> u8 {
        match self.vmid_width {
            VmidWidth::Bits8 => 8,
            VmidWidth::Bits16 => 16,
        }
    }

    /// One past the highest IPA the configuration translates.
    pub const fn ipa_limit(&self) -> u64 {
        1 << self.ipa_bits
    }

    /// The VTCR_EL2 value for this configuration:
    ///
    /// - T0SZ = 64 - IPA bits; SL0 = the root level (4 KiB granule
    ///   encoding: 0b01 level 1, 0b10 level 0);
    /// - IRGN0 and ORGN0 = Normal write-back read/write-allocate, SH0 =
    ///   Inner Shareable: table walks are cached, like the tables' own
    ///   mapping in the hypervisor;
    /// - TG0 = 4 KiB; PS = the PA size; VS = 1 for 16-bit VMIDs;
    /// - bit 31, RES1, set.
    ///
    /// Everything else (HA, HD, and the fields of later features) is 0.
    pub fn vtcr(&self) -> u64 {
        let sl0 = match self.root_level {
            0 => VTCR_EL2::SL0::Granule4KBLevel0,
            _ => VTCR_EL2::SL0::Granule4KBLevel1,
        };
        let vs = match self.vmid_width {
            VmidWidth::Bits8 => VTCR_EL2::VS::Bits8,
            VmidWidth::Bits16 => VTCR_EL2::VS::Bits16,
        };
        (VTCR_EL2::T0SZ.val(u64::from(64 - self.ipa_bits))
            + sl0
            + VTCR_EL2::IRGN0::NormalWBRAWA
            + VTCR_EL2::ORGN0::NormalWBRAWA
            + VTCR_EL2::SH0::Inner
            + VTCR_EL2::TG0::Granule4KB
            + self.pa_size.vtcr_ps()
            + vs
            + VTCR_EL2::RES1::SET)
            .value
    }
}

/// The number of address bits needed to express every address below `end`.
const fn bits_to_cover(end: u64) -> u8 {
    if end <= 1 {
        0
    } else {
        // At most 64, so the cast is lossless.
        (u64::BITS - (end - 1).leading_zeros()) as u8
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use std::string::ToString;

    const GIB: u64 = 1 << 30;

    fn config(ipa_end: u64, pa_range: u8) -> Result<Stage2Config, Stage2Error> {
        Stage2Config::new(IntermediatePhysAddr(ipa_end), pa_range, 8)
    }

    /// Field `[hi:lo]` of `value`, positions written out from the Arm ARM's
    /// VTCR_EL2 description rather than taken from `aarch64-cpu`.
    fn field(value: u64, hi: u32, lo: u32) -> u64 {
        (value >> lo) & ((1 << (hi - lo + 1)) - 1)
    }

    #[test]
    fn covering_bits() {
        assert_eq!(bits_to_cover(0), 0);
        assert_eq!(bits_to_cover(1), 0);
        assert_eq!(bits_to_cover(2), 1);
        assert_eq!(bits_to_cover(1 << 39), 39);
        assert_eq!(bits_to_cover((1 << 39) + 1), 40);
        assert_eq!(bits_to_cover(u64::MAX), 64);
    }

    #[test]
    fn qemu_virt_guest_on_48_bit_pa_gets_39_bits_at_level_1() {
        let c = config(0x1_4000_0000, 5).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level(), c.pa_bits()), (39, 1, 48));
        assert_eq!(c.ipa_limit(), 1 << 39);
    }

    #[test]
    fn ipa_end_is_exclusive_at_the_39_bit_boundary() {
        assert_eq!(config(1 << 39, 5).unwrap().root_level(), 1);
        let c = config((1 << 39) + 0x1000, 5).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level()), (48, 0));
    }

    #[test]
    fn small_pa_sizes_shrink_the_ipa_size_at_level_1() {
        let c = config(4 * GIB, 0).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level(), c.pa_bits()), (32, 1, 32));
        let c = config(5 * GIB, 1).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level(), c.pa_bits()), (36, 1, 36));
        let c = config(5 * GIB, 2).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level(), c.pa_bits()), (39, 1, 40));
    }

    #[test]
    fn ipa_space_beyond_the_pa_size_is_refused() {
        assert_eq!(
            config(4 * GIB + 0x1000, 0),
            Err(Stage2Error::IpaBeyondPaSize {
                ipa_end: IntermediatePhysAddr(4 * GIB + 0x1000),
                pa_bits: 32
            })
        );
        assert_eq!(
            config((1 << 36) + 1, 1),
            Err(Stage2Error::IpaBeyondPaSize {
                ipa_end: IntermediatePhysAddr((1 << 36) + 1),
                pa_bits: 36
            })
        );
        assert_eq!(
            config((1 << 44) + 1, 4),
            Err(Stage2Error::IpaBeyondPaSize {
                ipa_end: IntermediatePhysAddr((1 << 44) + 1),
                pa_bits: 44
            })
        );
    }

    #[test]
    fn forty_bit_ipas_on_small_pa_sizes_need_concatenation() {
        // A level-0 start needs PA >= 44 bits (Table D8-9); a level-1 start
        // for 40 to 42 bits needs 2 to 8 concatenated tables (Table D8-22).
        for (pa_range, pa_bits, ipa_end) in [(2, 40, 1u64 << 40), (3, 42, (1 << 39) + 0x1000)] {
            assert_eq!(
                config(ipa_end, pa_range),
                Err(Stage2Error::NeedsConcatenatedRoot {
                    ipa_end: IntermediatePhysAddr(ipa_end),
                    pa_bits
                })
            );
        }
    }

    #[test]
    fn level_0_on_44_and_48_bit_pa() {
        let c = config(1 << 40, 4).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level(), c.pa_bits()), (44, 0, 44));
        let c = config(1 << 48, 5).unwrap();
        assert_eq!((c.ipa_bits(), c.root_level(), c.pa_bits()), (48, 0, 48));
    }

    #[test]
    fn fifty_two_bit_pa_is_used_as_48() {
        let c = config(1 << 48, 6).unwrap();
        assert_eq!((c.ipa_bits(), c.pa_bits()), (48, 48));
        assert_eq!(field(c.vtcr(), 18, 16), 0b101);
        assert_eq!(
            config((1 << 48) + 1, 6),
            Err(Stage2Error::IpaBeyondPaSize {
                ipa_end: IntermediatePhysAddr((1 << 48) + 1),
                pa_bits: 48
            })
        );
    }

    #[test]
    fn reserved_pa_range_and_vmid_widths_are_refused() {
        for raw in [7, 8, 15, 16, 255] {
            assert_eq!(config(GIB, raw), Err(Stage2Error::UnknownPaRange(raw)));
        }
        for bits in [0, 4, 12, 32] {
            assert_eq!(
                Stage2Config::new(IntermediatePhysAddr(GIB), 5, bits),
                Err(Stage2Error::UnsupportedVmidBits(bits))
            );
        }
    }

    #[test]
    fn vmid_bits_field_decoding() {
        assert_eq!(Stage2Config::vmid_bits_from_field(0), Ok(8));
        assert_eq!(Stage2Config::vmid_bits_from_field(2), Ok(16));
        for raw in [1, 3, 0xf, 0x12] {
            assert_eq!(
                Stage2Config::vmid_bits_from_field(raw),
                Err(Stage2Error::UnknownVmidBitsField(raw))
            );
        }
    }

    #[test]
    fn from_id_registers_reads_para_range_and_vmidbits() {
        // QEMU `-cpu max`: PARange 0b0101 (48 bits) in bits [3:0], other
        // MMFR0 fields set; VMIDBits 0b0010 (16 bits) in bits [7:4].
        let mmfr0 = 0x1122_0000_0f10_0105;
        let mmfr1 = 0x1000_0000_0021_1120;
        let c =
            Stage2Config::from_id_registers(IntermediatePhysAddr(5 * GIB), mmfr0, mmfr1).unwrap();
        assert_eq!((c.ipa_bits(), c.pa_bits(), c.vmid_bits()), (39, 48, 16));
        assert_eq!(
            Stage2Config::from_id_registers(IntermediatePhysAddr(GIB), 0x7, 0),
            Err(Stage2Error::UnknownPaRange(7))
        );
        assert_eq!(
            Stage2Config::from_id_registers(IntermediatePhysAddr(GIB), 0x5, 0x10),
            Err(Stage2Error::UnknownVmidBitsField(1))
        );
    }

    /// VTCR_EL2 for a 39-bit IPA space, 48-bit PA, 8-bit VMIDs. Expected
    /// encodings (Arm ARM, VTCR_EL2):
    ///
    /// | field | bits    | value | meaning                              |
    /// |-------|---------|-------|--------------------------------------|
    /// | T0SZ  | [5:0]   | 25    | 2^(64-25) = 2^39 bytes of IPA        |
    /// | SL0   | [7:6]   | 0b01  | 4 KiB granule: start at level 1      |
    /// | IRGN0 | [9:8]   | 0b01  | inner write-back, r/w-allocate walks |
    /// | ORGN0 | [11:10] | 0b01  | outer write-back, r/w-allocate walks |
    /// | SH0   | [13:12] | 0b11  | inner shareable walks                |
    /// | TG0   | [15:14] | 0b00  | 4 KiB granule                        |
    /// | PS    | [18:16] | 0b101 | 48-bit PA                            |
    /// | VS    | [19]    | 0     | 8-bit VMID                           |
    /// | RES1  | [31]    | 1     |                                      |
    #[test]
    fn vtcr_for_39_bit_ipa() {
        let c = config(0x1_4000_0000, 5).unwrap();
        let v = c.vtcr();
        assert_eq!(field(v, 5, 0), 25);
        assert_eq!(field(v, 7, 6), 0b01);
        assert_eq!(field(v, 9, 8), 0b01);
        assert_eq!(field(v, 11, 10), 0b01);
        assert_eq!(field(v, 13, 12), 0b11);
        assert_eq!(field(v, 15, 14), 0b00);
        assert_eq!(field(v, 18, 16), 0b101);
        assert_eq!(field(v, 19, 19), 0);
        assert_eq!(field(v, 31, 31), 1);
        // Nothing else: bits [30:20] (HA, HD, HWU, NSW, NSA...) and [63:32].
        assert_eq!(v & !0x800f_ffff, 0);
        assert_eq!(v, 0x8005_3559);
    }

    /// VTCR_EL2 for a 48-bit IPA space, 48-bit PA, 16-bit VMIDs: as above
    /// but T0SZ = 16 (2^48 bytes), SL0 = 0b10 (start at level 0), VS = 1.
    #[test]
    fn vtcr_for_48_bit_ipa() {
        let c = Stage2Config::new(IntermediatePhysAddr(1 << 48), 5, 16).unwrap();
        let v = c.vtcr();
        assert_eq!(field(v, 5, 0), 16);
        assert_eq!(field(v, 7, 6), 0b10);
        assert_eq!(field(v, 9, 8), 0b01);
        assert_eq!(field(v, 11, 10), 0b01);
        assert_eq!(field(v, 13, 12), 0b11);
        assert_eq!(field(v, 15, 14), 0b00);
        assert_eq!(field(v, 18, 16), 0b101);
        assert_eq!(field(v, 19, 19), 1);
        assert_eq!(field(v, 31, 31), 1);
        assert_eq!(v & !0x800f_ffff, 0);
        assert_eq!(v, 0x800d_3590);
    }

    /// PS follows the PA size; T0SZ follows the IPA size it allows.
    #[test]
    fn vtcr_ps_and_t0sz_for_each_pa_size() {
        for (pa_range, ps, t0sz) in [
            (0, 0b000, 32),
            (1, 0b001, 28),
            (2, 0b010, 25),
            (3, 0b011, 25),
            (4, 0b100, 25),
            (5, 0b101, 25),
        ] {
            let v = config(GIB, pa_range).unwrap().vtcr();
            assert_eq!(field(v, 18, 16), ps, "PARange {pa_range}");
            assert_eq!(field(v, 5, 0), t0sz, "PARange {pa_range}");
            assert_eq!(field(v, 7, 6), 0b01, "PARange {pa_range}");
        }
        let v = config(1 << 44, 4).unwrap().vtcr();
        assert_eq!((field(v, 5, 0), field(v, 7, 6)), (20, 0b10));
    }

    #[test]
    fn config_errors_name_the_problem() {
        let e = config((1 << 39) + 0x1000, 2).unwrap_err().to_string();
        assert!(e.contains("0x8000001000") && e.contains("40-bit"), "{e}");
        let e = config(1 << 37, 1).unwrap_err().to_string();
        assert!(e.contains("36-bit PA size"), "{e}");
        assert!(config(GIB, 9)
            .unwrap_err()
            .to_string()
            .contains("PARange 0x9"));
    }
}
