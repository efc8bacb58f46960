//! The Context Descriptor (spec 5.4): 64 bytes, eight little-endian 64-bit
//! words, that give a stream's stage-1 translation: which table, under
//! which translation parameters, tagged with which ASID.
//!
//! This hypervisor uses it for shared virtual addressing: a device doing
//! DMA with the virtual addresses of a task, through the task's own
//! translation table (TTBR0) and tagged with the task's ASID. Only the
//! lower half (TTB0) is used; the upper half, where the hypervisor lives,
//! is disabled (EPD1 = 1) so that the device can never walk it. A stream
//! has one descriptor (STE.S1CDMax = 0, STE.S1Fmt = linear): no
//! SubstreamIDs. Fields by word:
//!
//! | word | bits | field | use here |
//! |---|---|---|---|
//! | 0 | 5:0 | T0SZ | from the task's TCR |
//! | 0 | 7:6 | TG0 | from the task's TCR (0b00 4 KiB, 0b01 64 KiB, 0b10 16 KiB) |
//! | 0 | 9:8, 11:10 | IR0, OR0 | from the task's TCR: the walk's cacheability |
//! | 0 | 13:12 | SH0 | from the task's TCR: the walk's shareability |
//! | 0 | 14 | EPD0 | 0: TTB0 walks happen |
//! | 0 | 15 | ENDI | 0: little-endian tables |
//! | 0 | 30 | EPD1 | 1: no TTB1 walks (the hypervisor's half) |
//! | 0 | 31 | V | valid |
//! | 0 | 34:32 | IPS | the TCR's IPS, capped at the SMMU's output size |
//! | 0 | 35 | AFFD | 1 only if the TCR has HA (see [`Stage1Context::from_tcr`]) |
//! | 0 | 41 | AA64 | 1: AArch64 tables |
//! | 0 | 42, 43 | HD, HA | 0: no hardware table updates |
//! | 0 | 44 | S | 0: faults terminate, never stall |
//! | 0 | 45 | R | 1: faults are recorded |
//! | 0 | 46 | A | 1: a faulting transaction is aborted (not RAZ/WI) |
//! | 0 | 47 | ASET | 0: the ASID is shared with the CPUs' (see below) |
//! | 0 | 63:48 | ASID | the task's ASID |
//! | 1 | 51:4 | TTB0 | the task's TTBR0 table address |
//! | 3 | 63:0 | MAIR | the task's MAIR, so the device sees memory types as the CPU does |
//!
//! ASET = 0 says the ASID belongs to the set the CPUs' broadcast TLB
//! invalidations reach (when the SMMU takes them: SMMU_IDR0.BTM and
//! SMMU_CR2.PTM = 0). The hypervisor runs with PTM = 1 and invalidates by
//! command, so today ASET changes nothing; it is the truthful value for a
//! shared address space.

use crate::features::{AddressSize, Features, Granule};
use crate::{bit, bits, field};
use addr::PhysAddr;
use core::fmt;
use id_alloc::Asid;

/// 64-bit words in a context descriptor.
pub const CD_WORDS: usize = 8;

/// Bytes in a context descriptor, and the alignment a one-entry linear CD
/// table needs (STE.S1ContextPtr holds bits \[51:6\]).
pub const CD_BYTES: usize = 64;

/// Word 0 single bits and fields.
mod w0 {
    pub const T0SZ: (u32, u32) = (5, 0);
    pub const TG0: (u32, u32) = (7, 6);
    pub const IR0: (u32, u32) = (9, 8);
    pub const OR0: (u32, u32) = (11, 10);
    pub const SH0: (u32, u32) = (13, 12);
    pub const EPD0: u32 = 14;
    pub const ENDI: u32 = 15;
    pub const EPD1: u32 = 30;
    pub const V: u32 = 31;
    pub const IPS: (u32, u32) = (34, 32);
    pub const AFFD: u32 = 35;
    pub const AA64: u32 = 41;
    pub const HD: u32 = 42;
    pub const HA: u32 = 43;
    pub const S: u32 = 44;
    pub const R: u32 = 45;
    pub const A: u32 = 46;
    pub const ASET: u32 = 47;
    pub const ASID: (u32, u32) = (63, 48);
}

/// CD.TTB0: bits \[51:4\] of word 1.
const TTB0_MASK: u64 = field(u64::MAX, 51, 4);

/// A Context Descriptor, as the SMMU reads it from memory (word 0 first).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Cd([u64; CD_WORDS]);

impl fmt::Debug for Cd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cd[")?;
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{w:#x}")?;
        }
        write!(f, "]")
    }
}

impl Cd {
    /// All zeroes: V = 0. A stream whose STE points here has every
    /// transaction terminated (C_BAD_CD).
    pub const INVALID: Cd = Cd([0; CD_WORDS]);

    /// The descriptor for `context`: valid, every field as the module
    /// documentation lists.
    pub const fn new(context: &Stage1Context) -> Cd {
        let mut words = [0; CD_WORDS];
        let t = &context.tcr;
        let mut w = field(t.t0sz as u64, w0::T0SZ.0, w0::T0SZ.1)
            | field(t.tg0 as u64, w0::TG0.0, w0::TG0.1)
            | field(t.irgn0 as u64, w0::IR0.0, w0::IR0.1)
            | field(t.orgn0 as u64, w0::OR0.0, w0::OR0.1)
            | field(t.sh0 as u64, w0::SH0.0, w0::SH0.1)
            | (1 << w0::EPD1)
            | (1 << w0::V)
            | field(t.ips.field() as u64, w0::IPS.0, w0::IPS.1)
            | (1 << w0::AA64)
            | (1 << w0::A)
            | field(context.asid.get() as u64, w0::ASID.0, w0::ASID.1);
        if t.access_flag_faults_disabled {
            w |= 1 << w0::AFFD;
        }
        if context.record_faults {
            w |= 1 << w0::R;
        }
        words[0] = w;
        words[1] = context.ttb0.get() & TTB0_MASK;
        words[3] = context.mair;
        Cd(words)
    }

    /// The descriptor from its words, as read from the CD table.
    pub const fn from_words(words: [u64; CD_WORDS]) -> Cd {
        Cd(words)
    }

    /// The words to write to the CD table.
    pub const fn words(&self) -> [u64; CD_WORDS] {
        self.0
    }

    /// Word `index` (0 to 7), or `None`.
    pub const fn word(&self, index: usize) -> Option<u64> {
        if index < CD_WORDS {
            Some(self.0[index])
        } else {
            None
        }
    }

    /// CD.V.
    pub const fn is_valid(&self) -> bool {
        bit(self.0[0], w0::V)
    }

    /// CD.ASID.
    pub const fn asid(&self) -> Asid {
        // 16 bits: the cast is lossless.
        Asid::new(bits(self.0[0], w0::ASID.0, w0::ASID.1) as u16)
    }

    /// CD.TTB0.
    pub const fn ttb0(&self) -> PhysAddr {
        PhysAddr(self.0[1] & TTB0_MASK)
    }

    /// CD.T0SZ.
    pub const fn t0sz(&self) -> u8 {
        // 6 bits: the cast is lossless.
        bits(self.0[0], w0::T0SZ.0, w0::T0SZ.1) as u8
    }

    /// CD.MAIR.
    pub const fn mair(&self) -> u64 {
        self.0[3]
    }

    /// CD.R: stage-1 faults are recorded in the event queue.
    pub const fn records_faults(&self) -> bool {
        bit(self.0[0], w0::R)
    }

    /// The same descriptor with V = 0: what unbinding writes first.
    pub const fn invalidated(&self) -> Cd {
        let mut words = self.0;
        words[0] &= !(1 << w0::V);
        Cd(words)
    }

    /// Whether a fixed field differs from what [`Cd::new`] writes (ENDI,
    /// HD, HA, S, EPD0 or ASET set, AA64 or A clear): for checking what
    /// is read back.
    pub const fn uses_unsupported_fields(&self) -> bool {
        let w = self.0[0];
        bit(w, w0::ENDI)
            || bit(w, w0::HD)
            || bit(w, w0::HA)
            || bit(w, w0::S)
            || bit(w, w0::EPD0)
            || !bit(w, w0::AA64)
            || !bit(w, w0::A)
            || bit(w, w0::ASET)
    }
}

/// Why a stage-1 context could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CdError {
    /// The SMMU has no stage-1 translation (SMMU_IDR0.S1P = 0).
    NoStage1,
    /// The SMMU cannot walk AArch64 tables (SMMU_IDR0.TTF).
    NoAArch64Tables,
    /// The SMMU cannot walk little-endian tables (SMMU_IDR0.TTENDIAN).
    NoLittleEndianTables,
    /// The ASID does not fit the SMMU's 8 bits (SMMU_IDR0.ASID16 = 0).
    AsidTooWide {
        /// The ASID.
        asid: Asid,
        /// The largest one the SMMU takes.
        max: u16,
    },
    /// TCR.EPD0 is set: the lower half is not walked, nothing to share.
    LowerHalfDisabled,
    /// TCR.TG0 is the reserved 0b11.
    ReservedGranule,
    /// The SMMU does not implement the granule (SMMU_IDR5.GRANx).
    GranuleNotSupported(Granule),
    /// TCR.IPS is the reserved 0b111.
    ReservedIps,
    /// 64 - T0SZ is outside what a stage-1 walk of the SMMU takes.
    VaSize {
        /// 64 - T0SZ.
        va_bits: u8,
        /// The smallest size allowed.
        min: u8,
        /// The largest size allowed.
        max: u8,
    },
    /// A TCR feature the CD cannot express or this crate does not support
    /// (HD, DS).
    Unsupported(&'static str),
    /// The table's address is not aligned to the root table's size.
    TableMisaligned {
        /// The address.
        ttb0: PhysAddr,
        /// The alignment it needs.
        align: u64,
    },
    /// The table lies above the effective output size (IPS capped at
    /// SMMU_IDR5.OAS).
    TableBeyondOutputSize {
        /// The address.
        ttb0: PhysAddr,
        /// Bits of output address.
        bits: u8,
    },
}

impl fmt::Display for CdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStage1 => write!(f, "the SMMU has no stage-1 translation"),
            Self::NoAArch64Tables => write!(f, "the SMMU cannot walk AArch64 tables"),
            Self::NoLittleEndianTables => write!(f, "the SMMU cannot walk little-endian tables"),
            Self::AsidTooWide { asid, max } => {
                write!(f, "ASID {asid} is beyond the SMMU's largest, {max:#x}")
            }
            Self::LowerHalfDisabled => write!(f, "TCR.EPD0 is set: no lower half to share"),
            Self::ReservedGranule => write!(f, "TCR.TG0 is reserved (0b11)"),
            Self::GranuleNotSupported(g) => write!(f, "the SMMU has no {g} granule"),
            Self::ReservedIps => write!(f, "TCR.IPS is reserved (0b111)"),
            Self::VaSize { va_bits, min, max } => write!(
                f,
                "a {va_bits}-bit VA space is outside the SMMU's {min} to {max} bits"
            ),
            Self::Unsupported(what) => write!(f, "TCR.{what} has no CD equivalent here"),
            Self::TableMisaligned { ttb0, align } => write!(
                f,
                "stage-1 table at {ttb0} is not aligned to its size ({align:#x})"
            ),
            Self::TableBeyondOutputSize { ttb0, bits } => write!(
                f,
                "stage-1 table at {ttb0} is beyond the SMMU's {bits}-bit output size"
            ),
        }
    }
}

/// TCR_EL1 / TCR_EL2 with HCR_EL2.E2H = 1 fields (Arm ARM, register
/// description; both registers share this layout), positions written out.
mod tcr {
    pub const T0SZ: (u32, u32) = (5, 0);
    pub const EPD0: u32 = 7;
    pub const IRGN0: (u32, u32) = (9, 8);
    pub const ORGN0: (u32, u32) = (11, 10);
    pub const SH0: (u32, u32) = (13, 12);
    pub const TG0: (u32, u32) = (15, 14);
    pub const IPS: (u32, u32) = (34, 32);
    pub const HA: u32 = 39;
    pub const HD: u32 = 40;
    pub const DS: u32 = 59;
}

/// The lower-half translation parameters of a TCR, checked against the
/// SMMU: what a CD's word 0 takes from the task's TCR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S1Tcr {
    t0sz: u8,
    tg0: u8,
    irgn0: u8,
    orgn0: u8,
    sh0: u8,
    ips: AddressSize,
    access_flag_faults_disabled: bool,
}

impl S1Tcr {
    /// Takes the lower half's parameters from `tcr`, a TCR_EL1 value or a
    /// TCR_EL2 value in the E2H layout (the one a VHE hypervisor's EL2&0
    /// regime uses). IPS is capped at the SMMU's output size, as the
    /// SMMU itself would. TCR.HA (the CPU sets access flags itself) becomes
    /// CD.AFFD = 1: the SMMU cannot set them (no HTTU used here), so it
    /// treats a clear access flag as set instead of faulting where the CPU
    /// would not. TBI0 and the upper half's fields are ignored: DMA
    /// addresses carry no tag, and TTB1 is never walked.
    ///
    /// # Errors
    ///
    /// [`CdError::LowerHalfDisabled`], [`CdError::ReservedGranule`],
    /// [`CdError::GranuleNotSupported`], [`CdError::ReservedIps`],
    /// [`CdError::VaSize`], [`CdError::Unsupported`] (HD, DS).
    pub fn from_tcr(tcr: u64, features: &Features) -> Result<S1Tcr, CdError> {
        let get = |(hi, lo): (u32, u32)| bits(tcr, hi, lo) as u8;
        if bit(tcr, tcr::EPD0) {
            return Err(CdError::LowerHalfDisabled);
        }
        if bit(tcr, tcr::HD) {
            return Err(CdError::Unsupported("HD"));
        }
        if bit(tcr, tcr::DS) {
            return Err(CdError::Unsupported("DS"));
        }
        let tg0 = get(tcr::TG0);
        let granule = Granule::from_tg0(tg0).ok_or(CdError::ReservedGranule)?;
        if !features.supports_granule(granule) {
            return Err(CdError::GranuleNotSupported(granule));
        }
        let ips = AddressSize::from_field(get(tcr::IPS)).ok_or(CdError::ReservedIps)?;
        let ips = if ips > features.oas {
            features.oas
        } else {
            ips
        };
        let t0sz = get(tcr::T0SZ);
        let va_bits = 64 - t0sz;
        // Spec 5.4, CD.T0SZ: 16 to 39, or to 48 with small translation
        // tables (SMMU_IDR3.STT); 52-bit VAs (FEAT_LVA) are not used here.
        let (min, max) = (if features.small_tables { 16 } else { 25 }, 48);
        // At least one bit above the page offset, for a last-level table.
        let min = min.max(granule.shift() as u8 + 1);
        if va_bits < min || va_bits > max {
            return Err(CdError::VaSize { va_bits, min, max });
        }
        Ok(S1Tcr {
            t0sz,
            tg0,
            irgn0: get(tcr::IRGN0),
            orgn0: get(tcr::ORGN0),
            sh0: get(tcr::SH0),
            ips,
            access_flag_faults_disabled: bit(tcr, tcr::HA),
        })
    }

    /// T0SZ.
    pub const fn t0sz(&self) -> u8 {
        self.t0sz
    }

    /// The granule.
    pub const fn granule(&self) -> Granule {
        match Granule::from_tg0(self.tg0) {
            Some(g) => g,
            // `from_tcr` refused the reserved value.
            None => Granule::K4,
        }
    }

    /// The effective output size (IPS capped at the SMMU's OAS).
    pub const fn output_size(&self) -> AddressSize {
        self.ips
    }

    /// Bytes of the root table: 8 bytes per entry for the bits the first
    /// level resolves (stage 1 has no concatenated tables).
    pub const fn root_table_bytes(&self) -> u64 {
        let shift = self.granule().shift();
        let stride = self.granule().stride();
        let va_bits = 64 - self.t0sz as u32;
        let above_page = va_bits - shift;
        let root_bits = above_page - (above_page - 1) / stride * stride;
        8 << root_bits
    }
}

/// A checked stage-1 context: everything [`Cd::new`] encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage1Context {
    asid: Asid,
    ttb0: PhysAddr,
    tcr: S1Tcr,
    mair: u64,
    record_faults: bool,
}

impl Stage1Context {
    /// The context of a task whose translation table is at `ttb0` (the
    /// table address TTBR0 holds, without the ASID), under `tcr` (the
    /// TCR value the CPU uses for it, see [`S1Tcr::from_tcr`]) and `mair`,
    /// tagged `asid`. Faults are recorded by default.
    ///
    /// # Errors
    ///
    /// [`CdError::NoStage1`], [`CdError::NoAArch64Tables`],
    /// [`CdError::NoLittleEndianTables`], [`CdError::AsidTooWide`],
    /// [`CdError::TableMisaligned`], [`CdError::TableBeyondOutputSize`],
    /// and those of [`S1Tcr::from_tcr`].
    pub fn from_tcr(
        asid: Asid,
        ttb0: PhysAddr,
        tcr: u64,
        mair: u64,
        features: &Features,
    ) -> Result<Stage1Context, CdError> {
        if !features.stage1 {
            return Err(CdError::NoStage1);
        }
        if !features.aarch64_tables {
            return Err(CdError::NoAArch64Tables);
        }
        if !features.little_endian_tables {
            return Err(CdError::NoLittleEndianTables);
        }
        let max = features.max_asid();
        if asid.get() > max {
            return Err(CdError::AsidTooWide { asid, max });
        }
        let tcr = S1Tcr::from_tcr(tcr, features)?;
        // The architecture's minimum TTBR alignment is 64 bytes.
        let align = tcr.root_table_bytes().max(64);
        if !ttb0.is_aligned(align) {
            return Err(CdError::TableMisaligned { ttb0, align });
        }
        let out_bits = tcr.output_size().bits();
        if ttb0.get() >> out_bits != 0 {
            return Err(CdError::TableBeyondOutputSize {
                ttb0,
                bits: out_bits,
            });
        }
        Ok(Stage1Context {
            asid,
            ttb0,
            tcr,
            mair,
            record_faults: true,
        })
    }

    /// CD.R: whether stage-1 faults are recorded (default yes).
    pub const fn with_record_faults(mut self, record: bool) -> Stage1Context {
        self.record_faults = record;
        self
    }

    /// The ASID.
    pub const fn asid(&self) -> Asid {
        self.asid
    }

    /// The translation table.
    pub const fn ttb0(&self) -> PhysAddr {
        self.ttb0
    }

    /// The translation parameters.
    pub const fn tcr(&self) -> S1Tcr {
        self.tcr
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use super::*;
    use crate::features::tests::qemu_nested;
    use std::format;
    use std::string::ToString;

    /// A TCR_EL2 (E2H layout) for a 39-bit lower half, 4 KiB granule,
    /// write-back walks, inner shareable, 48-bit IPS, 16-bit ASIDs, the
    /// upper half disabled: T0SZ 25 = 0x19, IRGN0 0b01 << 8 = 0x100, ORGN0
    /// 0b01 << 10 = 0x400, SH0 0b11 << 12 = 0x3000, TG0 0, EPD1 1 << 23 =
    /// 0x80_0000, IPS 0b101 << 32, AS 1 << 36.
    pub(crate) const TCR_39: u64 =
        0x19 | 0x100 | 0x400 | 0x3000 | 0x80_0000 | 0b101 << 32 | 1 << 36;

    /// MAIR: Attr0 normal write-back (0xff), Attr1 device nGnRE (0x04).
    pub(crate) const MAIR: u64 = 0x04ff;

    pub(crate) fn context(asid: u16, ttb0: u64) -> Stage1Context {
        Stage1Context::from_tcr(
            Asid::new(asid),
            PhysAddr(ttb0),
            TCR_39,
            MAIR,
            &qemu_nested(),
        )
        .unwrap()
    }

    #[test]
    fn cd_encodes_every_word() {
        let cd = Cd::new(&context(0xbeef, 0x4123_4000));
        // Word 0, hand-computed: T0SZ 0x19; TG0 0; IR0 0b01 << 8; OR0
        // 0b01 << 10; SH0 0b11 << 12; EPD1 1 << 30; V 1 << 31; IPS 44 bits
        // (QEMU's OAS caps 48) 0b100 << 32; AA64 1 << 41; R 1 << 45; A
        // 1 << 46; ASID 0xbeef << 48.
        let w0 = 0x19
            | 0x100
            | 0x400
            | 0x3000
            | 0x4000_0000
            | 0x8000_0000
            | 0x4_0000_0000
            | 0x200_0000_0000
            | 0x2000_0000_0000
            | 0x4000_0000_0000
            | 0xbeef_0000_0000_0000;
        assert_eq!(w0, 0xbeef_6204_c000_3519);
        assert_eq!(cd.words(), [w0, 0x4123_4000, 0, MAIR, 0, 0, 0, 0]);
        assert!(cd.is_valid());
        assert_eq!(cd.asid(), Asid::new(0xbeef));
        assert_eq!(cd.ttb0(), PhysAddr(0x4123_4000));
        assert_eq!(cd.t0sz(), 25);
        assert_eq!(cd.mair(), MAIR);
        assert!(cd.records_faults());
        assert!(!cd.uses_unsupported_fields());
        assert_eq!(cd.word(8), None);
    }

    #[test]
    fn invalidating_clears_v_only() {
        let cd = Cd::new(&context(5, 0x4000_0000));
        let off = cd.invalidated();
        assert!(!off.is_valid());
        assert_eq!(off.words()[0], cd.words()[0] & !(1 << 31));
        assert_eq!(off.words()[1..], cd.words()[1..]);
        assert_eq!(off.asid(), Asid::new(5));
        assert!(!Cd::INVALID.is_valid());
        assert_eq!(Cd::default(), Cd::INVALID);
    }

    #[test]
    fn quiet_contexts_clear_r() {
        let cd = Cd::new(&context(5, 0x4000_0000).with_record_faults(false));
        assert!(!cd.records_faults());
        assert_eq!(cd.words()[0] & 1 << 45, 0);
    }

    #[test]
    fn tcr_translates_field_by_field() {
        let t = S1Tcr::from_tcr(TCR_39, &qemu_nested()).unwrap();
        assert_eq!(t.t0sz(), 25);
        assert_eq!(t.granule(), Granule::K4);
        assert_eq!(t.output_size(), AddressSize::Bits44);
        // 39 bits, 4 KiB: levels 1 to 3, a full 512-entry root table.
        assert_eq!(t.root_table_bytes(), 4096);
        // 48 bits: level 0, 512 entries; 32 bits: level 1, 4 entries.
        let t48 = S1Tcr::from_tcr((TCR_39 & !0x3f) | 16, &qemu_nested()).unwrap();
        assert_eq!(t48.root_table_bytes(), 4096);
        let t32 = S1Tcr::from_tcr((TCR_39 & !0x3f) | 32, &qemu_nested()).unwrap();
        assert_eq!(t32.root_table_bytes(), 32);
        // 64 KiB granule (TG0 0b01 << 14), 42 bits: levels 2 and 3, the
        // root resolving 42 - 16 - 13 = 13 bits, 64 KiB.
        let t64 = S1Tcr::from_tcr((TCR_39 & !0x3f) | 22 | 0b01 << 14, &qemu_nested()).unwrap();
        assert_eq!(t64.granule(), Granule::K64);
        assert_eq!(t64.root_table_bytes(), 65536);
        // 16 KiB granule (0b10 << 14), 36 bits: levels 2 and 3, 36 - 14 -
        // 11 = 11 bits at the root, 16 KiB.
        let t16 = S1Tcr::from_tcr((TCR_39 & !0x3f) | 28 | 0b10 << 14, &qemu_nested()).unwrap();
        assert_eq!(t16.root_table_bytes(), 16384);
        // IPS below the OAS is kept.
        let t40 = S1Tcr::from_tcr((TCR_39 & !(0b111 << 32)) | 0b010 << 32, &qemu_nested());
        assert_eq!(t40.unwrap().output_size(), AddressSize::Bits40);
    }

    #[test]
    fn hardware_access_flags_become_affd() {
        let ctx = Stage1Context::from_tcr(
            Asid::new(1),
            PhysAddr(0x4000_0000),
            TCR_39 | 1 << 39,
            MAIR,
            &qemu_nested(),
        )
        .unwrap();
        let cd = Cd::new(&ctx);
        assert_eq!(cd.words()[0] & 1 << 35, 1 << 35);
        // Never HA or HD in the CD.
        assert_eq!(cd.words()[0] & (0b11 << 42), 0);
    }

    #[test]
    fn unsupported_tcrs_are_refused() {
        let f = qemu_nested();
        assert_eq!(
            S1Tcr::from_tcr(TCR_39 | 1 << 7, &f),
            Err(CdError::LowerHalfDisabled)
        );
        assert_eq!(
            S1Tcr::from_tcr(TCR_39 | 1 << 40, &f),
            Err(CdError::Unsupported("HD"))
        );
        assert_eq!(
            S1Tcr::from_tcr(TCR_39 | 1 << 59, &f),
            Err(CdError::Unsupported("DS"))
        );
        assert_eq!(
            S1Tcr::from_tcr(TCR_39 | 0b11 << 14, &f),
            Err(CdError::ReservedGranule)
        );
        assert_eq!(
            S1Tcr::from_tcr(TCR_39 | 0b111 << 32, &f),
            Err(CdError::ReservedIps)
        );
        let mut no_16k = f;
        no_16k.granule_16k = false;
        assert_eq!(
            S1Tcr::from_tcr(TCR_39 | 0b10 << 14, &no_16k),
            Err(CdError::GranuleNotSupported(Granule::K16))
        );
        // T0SZ 40 (24 bits) needs STT; T0SZ 15 (49 bits) is too wide.
        assert_eq!(
            S1Tcr::from_tcr((TCR_39 & !0x3f) | 40, &f),
            Err(CdError::VaSize {
                va_bits: 24,
                min: 25,
                max: 48
            })
        );
        assert_eq!(
            S1Tcr::from_tcr((TCR_39 & !0x3f) | 15, &f),
            Err(CdError::VaSize {
                va_bits: 49,
                min: 25,
                max: 48
            })
        );
        let mut stt = f;
        stt.small_tables = true;
        assert!(S1Tcr::from_tcr((TCR_39 & !0x3f) | 40, &stt).is_ok());
    }

    #[test]
    fn contexts_check_the_smmu_and_the_table() {
        let f = qemu_nested();
        let ctx = |asid: u16, ttb0: u64, f: &Features| {
            Stage1Context::from_tcr(Asid::new(asid), PhysAddr(ttb0), TCR_39, MAIR, f)
        };
        let mut no_s1 = f;
        no_s1.stage1 = false;
        assert_eq!(ctx(1, 0x4000_0000, &no_s1), Err(CdError::NoStage1));
        let mut no_aa64 = f;
        no_aa64.aarch64_tables = false;
        assert_eq!(ctx(1, 0x4000_0000, &no_aa64), Err(CdError::NoAArch64Tables));
        let mut big = f;
        big.little_endian_tables = false;
        assert_eq!(
            ctx(1, 0x4000_0000, &big),
            Err(CdError::NoLittleEndianTables)
        );
        let mut asid8 = f;
        asid8.asid16 = false;
        assert_eq!(
            ctx(0x100, 0x4000_0000, &asid8),
            Err(CdError::AsidTooWide {
                asid: Asid::new(0x100),
                max: 0xff
            })
        );
        assert!(ctx(0xff, 0x4000_0000, &asid8).is_ok());
        assert_eq!(
            ctx(1, 0x4000_0800, &f),
            Err(CdError::TableMisaligned {
                ttb0: PhysAddr(0x4000_0800),
                align: 4096
            })
        );
        assert_eq!(
            ctx(1, 1 << 44, &f),
            Err(CdError::TableBeyondOutputSize {
                ttb0: PhysAddr(1 << 44),
                bits: 44
            })
        );
        // A 4-entry root table (32-bit VA) still needs 64-byte alignment.
        let small = (TCR_39 & !0x3f) | 32;
        assert_eq!(
            Stage1Context::from_tcr(Asid::new(1), PhysAddr(0x4000_0020), small, MAIR, &f),
            Err(CdError::TableMisaligned {
                ttb0: PhysAddr(0x4000_0020),
                align: 64
            })
        );
        assert!(
            Stage1Context::from_tcr(Asid::new(1), PhysAddr(0x4000_0040), small, MAIR, &f).is_ok()
        );
    }

    #[test]
    fn unsupported_fields_are_spotted_in_read_back_words() {
        let cd = Cd::new(&context(1, 0x4000_0000));
        for bit in [14, 15, 42, 43, 44, 47] {
            let mut w = cd.words();
            w[0] |= 1 << bit;
            assert!(Cd::from_words(w).uses_unsupported_fields(), "bit {bit}");
        }
        for bit in [41, 46] {
            let mut w = cd.words();
            w[0] &= !(1 << bit);
            assert!(Cd::from_words(w).uses_unsupported_fields(), "bit {bit}");
        }
    }

    #[test]
    fn errors_and_descriptors_print() {
        assert_eq!(
            CdError::AsidTooWide {
                asid: Asid::new(0x100),
                max: 0xff
            }
            .to_string(),
            "ASID 0x100 is beyond the SMMU's largest, 0xff"
        );
        assert_eq!(
            format!("{:?}", Cd::INVALID),
            "Cd[0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0]"
        );
    }
}
