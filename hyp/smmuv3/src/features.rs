//! What an SMMU implements, decoded once from its ID registers.

use crate::regs::{IDR0, IDR1, IDR3, IDR5};
use core::fmt;
use tock_registers::LocalRegisterCopy;

/// A physical address size as `SMMU_IDR5.OAS`, `STE.S2PS`, `VTCR_EL2.PS`
/// and `ID_AA64MMFR0_EL1.PARange` all encode it (spec 6.3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AddressSize {
    /// 32 bits, 4 GiB (0b000).
    Bits32,
    /// 36 bits, 64 GiB (0b001).
    Bits36,
    /// 40 bits, 1 TiB (0b010).
    Bits40,
    /// 42 bits, 4 TiB (0b011).
    Bits42,
    /// 44 bits, 16 TiB (0b100).
    Bits44,
    /// 48 bits, 256 TiB (0b101).
    Bits48,
    /// 52 bits, 4 PiB (0b110).
    Bits52,
}

impl AddressSize {
    /// Decodes the 3-bit field; `None` for the reserved 0b111 (and for
    /// anything wider than 3 bits).
    pub const fn from_field(raw: u8) -> Option<AddressSize> {
        Some(match raw {
            0b000 => Self::Bits32,
            0b001 => Self::Bits36,
            0b010 => Self::Bits40,
            0b011 => Self::Bits42,
            0b100 => Self::Bits44,
            0b101 => Self::Bits48,
            0b110 => Self::Bits52,
            _ => return None,
        })
    }

    /// The 3-bit field value.
    pub const fn field(self) -> u8 {
        match self {
            Self::Bits32 => 0b000,
            Self::Bits36 => 0b001,
            Self::Bits40 => 0b010,
            Self::Bits42 => 0b011,
            Self::Bits44 => 0b100,
            Self::Bits48 => 0b101,
            Self::Bits52 => 0b110,
        }
    }

    /// Bits of address.
    pub const fn bits(self) -> u8 {
        match self {
            Self::Bits32 => 32,
            Self::Bits36 => 36,
            Self::Bits40 => 40,
            Self::Bits42 => 42,
            Self::Bits44 => 44,
            Self::Bits48 => 48,
            Self::Bits52 => 52,
        }
    }
}

/// A translation granule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Granule {
    /// 4 KiB pages, 512-entry tables.
    K4,
    /// 16 KiB pages, 2048-entry tables.
    K16,
    /// 64 KiB pages, 8192-entry tables.
    K64,
}

impl Granule {
    /// Decodes a `VTCR_EL2.TG0` / `STE.S2TG` value (0b00 4 KiB, 0b01
    /// 64 KiB, 0b10 16 KiB); `None` for the reserved 0b11.
    pub const fn from_tg0(raw: u8) -> Option<Granule> {
        match raw {
            0b00 => Some(Self::K4),
            0b01 => Some(Self::K64),
            0b10 => Some(Self::K16),
            _ => None,
        }
    }

    /// log2 of the page size.
    pub const fn shift(self) -> u32 {
        match self {
            Self::K4 => 12,
            Self::K16 => 14,
            Self::K64 => 16,
        }
    }

    /// Bits of address one table level resolves (log2 of the entries in a
    /// table of one page).
    pub const fn stride(self) -> u32 {
        self.shift() - 3
    }
}

impl fmt::Display for Granule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::K4 => "4 KiB",
            Self::K16 => "16 KiB",
            Self::K64 => "64 KiB",
        })
    }
}

/// Why ID register values could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeaturesError {
    /// SMMU_IDR5.OAS holds the reserved value 0b111.
    ReservedOas(u8),
}

impl fmt::Display for FeaturesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedOas(raw) => write!(f, "SMMU_IDR5.OAS {raw:#05b} is reserved"),
        }
    }
}

/// What the SMMU implements, from SMMU_IDR0, IDR1, IDR3 and IDR5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// IDR0.S1P: stage-1 translation.
    pub stage1: bool,
    /// IDR0.S2P: stage-2 translation.
    pub stage2: bool,
    /// IDR0.TTF includes AArch64 tables.
    pub aarch64_tables: bool,
    /// IDR0.TTF includes AArch32 (LPAE) tables.
    pub aarch32_tables: bool,
    /// IDR0.COHACC: the SMMU's accesses to tables and queues snoop the CPUs'
    /// caches, so no cache maintenance is needed around them.
    pub coherent: bool,
    /// IDR0.VMID16: VMIDs are 16 bits (otherwise 8).
    pub vmid16: bool,
    /// IDR0.BTM: the SMMU can take part in broadcast TLB maintenance.
    pub broadcast_tlb: bool,
    /// IDR0.HYP: the EL2 StreamWorld (STE.STRW = EL2, and with
    /// SMMU_CR2.E2H the EL2&0 regime whose TLB entries carry ASIDs).
    pub hyp: bool,
    /// IDR0.ASID16: ASIDs are 16 bits (otherwise 8).
    pub asid16: bool,
    /// IDR0.TTENDIAN allows little-endian tables.
    pub little_endian_tables: bool,
    /// IDR0.ST_LEVEL: two-level stream tables (linear ones always work).
    pub two_level_stream_table: bool,
    /// IDR1.SIDSIZE: bits of StreamID.
    pub stream_id_bits: u8,
    /// IDR1.CMDQS: log2 of the largest command queue.
    pub cmdq_max_log2: u8,
    /// IDR1.EVENTQS: log2 of the largest event queue.
    pub eventq_max_log2: u8,
    /// IDR1.TABLES_PRESET: the stream table base is fixed by the hardware.
    pub tables_preset: bool,
    /// IDR1.QUEUES_PRESET: the queue bases are fixed by the hardware.
    pub queues_preset: bool,
    /// IDR3.RIL: range TLB invalidation.
    pub range_invalidation: bool,
    /// IDR3.STT: small translation tables (stage-2 T0SZ above 39).
    pub small_tables: bool,
    /// IDR5.OAS: output address size.
    pub oas: AddressSize,
    /// IDR5.GRAN4K.
    pub granule_4k: bool,
    /// IDR5.GRAN16K.
    pub granule_16k: bool,
    /// IDR5.GRAN64K.
    pub granule_64k: bool,
}

impl Features {
    /// Decodes the ID registers' values.
    ///
    /// # Errors
    ///
    /// [`FeaturesError::ReservedOas`].
    pub fn from_id_registers(
        idr0: u32,
        idr1: u32,
        idr3: u32,
        idr5: u32,
    ) -> Result<Features, FeaturesError> {
        let idr0 = LocalRegisterCopy::<u32, IDR0::Register>::new(idr0);
        let idr1 = LocalRegisterCopy::<u32, IDR1::Register>::new(idr1);
        let idr3 = LocalRegisterCopy::<u32, IDR3::Register>::new(idr3);
        let idr5 = LocalRegisterCopy::<u32, IDR5::Register>::new(idr5);
        // Fields are at most 6 bits wide, so the casts are lossless.
        let oas_raw = idr5.read(IDR5::OAS) as u8;
        let oas = AddressSize::from_field(oas_raw).ok_or(FeaturesError::ReservedOas(oas_raw))?;
        let ttf = idr0.read(IDR0::TTF);
        Ok(Features {
            stage1: idr0.is_set(IDR0::S1P),
            stage2: idr0.is_set(IDR0::S2P),
            aarch64_tables: ttf & 0b10 != 0,
            aarch32_tables: ttf & 0b01 != 0,
            coherent: idr0.is_set(IDR0::COHACC),
            vmid16: idr0.is_set(IDR0::VMID16),
            broadcast_tlb: idr0.is_set(IDR0::BTM),
            hyp: idr0.is_set(IDR0::HYP),
            asid16: idr0.is_set(IDR0::ASID16),
            little_endian_tables: matches!(
                idr0.read_as_enum(IDR0::TTENDIAN),
                Some(IDR0::TTENDIAN::Value::Mixed | IDR0::TTENDIAN::Value::Little)
            ),
            two_level_stream_table: idr0.read(IDR0::ST_LEVEL) == 1,
            stream_id_bits: idr1.read(IDR1::SIDSIZE) as u8,
            cmdq_max_log2: idr1.read(IDR1::CMDQS) as u8,
            eventq_max_log2: idr1.read(IDR1::EVENTQS) as u8,
            tables_preset: idr1.is_set(IDR1::TABLES_PRESET),
            queues_preset: idr1.is_set(IDR1::QUEUES_PRESET),
            range_invalidation: idr3.is_set(IDR3::RIL),
            small_tables: idr3.is_set(IDR3::STT),
            oas,
            granule_4k: idr5.is_set(IDR5::GRAN4K),
            granule_16k: idr5.is_set(IDR5::GRAN16K),
            granule_64k: idr5.is_set(IDR5::GRAN64K),
        })
    }

    /// Whether stage-2 tables may use `granule`.
    pub const fn supports_granule(&self, granule: Granule) -> bool {
        match granule {
            Granule::K4 => self.granule_4k,
            Granule::K16 => self.granule_16k,
            Granule::K64 => self.granule_64k,
        }
    }

    /// Bits of IPA a stage-2 translation may take (the spec's IAS, 3.4.1):
    /// the output size, or 40 bits if that is more and AArch32 tables are
    /// implemented.
    pub const fn ias_bits(&self) -> u8 {
        let oas = self.oas.bits();
        if self.aarch32_tables && oas < 40 {
            40
        } else {
            oas
        }
    }

    /// The largest ASID a context descriptor can hold.
    pub const fn max_asid(&self) -> u16 {
        if self.asid16 {
            u16::MAX
        } else {
            u8::MAX as u16
        }
    }

    /// The largest VMID an STE can hold.
    pub const fn max_vmid(&self) -> u16 {
        if self.vmid16 {
            u16::MAX
        } else {
            u8::MAX as u16
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// IDR0 0x0d441019, IDR1 0x0273_0010 (CMDQS 19, EVENTQS 19, SIDSIZE
    /// 16), IDR3 0x1404 (HAD, RIL, BBML 2), IDR5 0x74 (OAS 44 bits, all
    /// granules): what QEMU 10's SMMUv3 reports with `stage=2`.
    pub(crate) fn qemu() -> Features {
        Features::from_id_registers(0x0d44_1019, 0x0273_0010, 0x1404, 0x74).unwrap()
    }

    /// IDR0 0x0d44101b: QEMU 10's `virt` SMMU as the board makes it
    /// (`stage=nested`): [`qemu`] plus S1P. No HYP: QEMU has no EL2
    /// StreamWorld.
    pub(crate) fn qemu_nested() -> Features {
        Features::from_id_registers(0x0d44_101b, 0x0273_0010, 0x1404, 0x74).unwrap()
    }

    #[test]
    fn qemu_nested_smmu_decodes() {
        let f = qemu_nested();
        assert!(f.stage1 && f.stage2 && f.asid16 && !f.hyp);
        // IDR0.HYP is bit 9.
        let hyp = Features::from_id_registers(0x0d44_101b | 1 << 9, 0, 0, 0x74).unwrap();
        assert!(hyp.hyp);
    }

    #[test]
    fn qemu_stage2_smmu_decodes() {
        let f = qemu();
        assert!(f.stage2 && !f.stage1);
        assert!(f.aarch64_tables && !f.aarch32_tables);
        assert!(f.coherent && f.vmid16 && f.little_endian_tables);
        assert!(f.two_level_stream_table);
        assert!(!f.broadcast_tlb && !f.hyp);
        assert!(f.asid16);
        assert_eq!(f.max_asid(), 0xffff);
        assert_eq!(f.stream_id_bits, 16);
        assert_eq!((f.cmdq_max_log2, f.eventq_max_log2), (19, 19));
        assert!(!f.tables_preset && !f.queues_preset);
        assert!(f.range_invalidation && !f.small_tables);
        assert_eq!(f.oas, AddressSize::Bits44);
        assert!(f.granule_4k && f.granule_16k && f.granule_64k);
        assert_eq!(f.ias_bits(), 44);
        assert_eq!(f.max_vmid(), 0xffff);
    }

    #[test]
    fn nothing_implemented_decodes_as_nothing() {
        let f = Features::from_id_registers(0, 0, 0, 0).unwrap();
        assert!(!f.stage1 && !f.stage2 && !f.aarch64_tables && !f.coherent);
        assert_eq!(f.oas, AddressSize::Bits32);
        assert_eq!(f.max_vmid(), 0xff);
        assert_eq!(f.max_asid(), 0xff);
        assert!(!f.hyp && !f.asid16);
        assert!(!f.supports_granule(Granule::K4));
    }

    #[test]
    fn every_bit_set_decodes_too() {
        assert_eq!(
            Features::from_id_registers(u32::MAX, u32::MAX, u32::MAX, u32::MAX),
            Err(FeaturesError::ReservedOas(0b111))
        );
        let f = Features::from_id_registers(u32::MAX, u32::MAX, u32::MAX, 0xffff_fff6).unwrap();
        assert_eq!(f.oas, AddressSize::Bits52);
        assert_eq!(f.stream_id_bits, 63);
        assert!(f.tables_preset && f.queues_preset);
        // TTENDIAN 0b11 is big-endian only.
        assert!(!f.little_endian_tables);
    }

    #[test]
    fn aarch32_tables_raise_the_ias_to_40_bits() {
        // TTF = both, OAS 36 bits.
        let f = Features::from_id_registers(0b1101, 0, 0, 0b001).unwrap();
        assert_eq!(f.oas.bits(), 36);
        assert_eq!(f.ias_bits(), 40);
    }

    #[test]
    fn address_sizes_round_trip() {
        for raw in 0..7 {
            let size = AddressSize::from_field(raw).unwrap();
            assert_eq!(size.field(), raw);
        }
        assert_eq!(AddressSize::from_field(7), None);
        assert_eq!(AddressSize::from_field(0xff), None);
        assert_eq!(AddressSize::Bits48.bits(), 48);
    }

    #[test]
    fn granules_decode_from_tg0() {
        assert_eq!(Granule::from_tg0(0), Some(Granule::K4));
        assert_eq!(Granule::from_tg0(1), Some(Granule::K64));
        assert_eq!(Granule::from_tg0(2), Some(Granule::K16));
        assert_eq!(Granule::from_tg0(3), None);
        assert_eq!((Granule::K4.shift(), Granule::K4.stride()), (12, 9));
        assert_eq!((Granule::K16.shift(), Granule::K16.stride()), (14, 11));
        assert_eq!((Granule::K64.shift(), Granule::K64.stride()), (16, 13));
    }
}
