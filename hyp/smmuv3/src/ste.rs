//! The Stream Table Entry (spec 5.2): 64 bytes, eight little-endian 64-bit
//! words, that say what the SMMU does with one StreamID's transactions.
//!
//! Only the fields this hypervisor writes are encoded; everything else is
//! left 0, which means: no stage 1, no ATS (EATS = 0), StreamWorld NS-EL1
//! (STRW = 0), no stalls, no hardware table updates. Fields by word:
//!
//! | word | bits | field | use here |
//! |---|---|---|---|
//! | 0 | 0 | V | 1 for every entry this crate encodes |
//! | 0 | 3:1 | Config | 0b000 abort, 0b100 bypass, 0b110 stage 2 only |
//! | 1 | 45:44 | SHCFG | 0b01: keep the incoming shareability (bypass, stage 2) |
//! | 2 | 15:0 | S2VMID | the VM's VMID |
//! | 2 | 50:32 | S2VTCR | from VTCR_EL2, see [`S2Vtcr`] |
//! | 2 | 51 | S2AA64 | 1: AArch64 tables |
//! | 2 | 52 | S2ENDI | 0: little-endian tables |
//! | 2 | 53 | S2AFFD | 0: an access flag of 0 faults, as on the CPU without VTCR_EL2.HA |
//! | 2 | 54 | S2PTW | see [`Stage2Entry::with_protected_walk`] |
//! | 2 | 57 | S2S | 0: faults terminate, never stall |
//! | 2 | 58 | S2R | see [`Stage2Entry::with_record_faults`] |
//! | 3 | 51:4 | S2TTB | the stage-2 root table's physical address |
//!
//! Stage-1 entries ([`Ste::stage1`], for shared virtual addressing: a
//! device using a task's address space through its context descriptor,
//! see [`crate::Cd`]) add:
//!
//! | word | bits | field | use here |
//! |---|---|---|---|
//! | 0 | 3:1 | Config | 0b101 stage 1 only, 0b111 stage 1 then stage 2 |
//! | 0 | 5:4 | S1Fmt | 0b00: a linear CD table |
//! | 0 | 51:6 | S1ContextPtr | the CD table's physical address |
//! | 0 | 63:59 | S1CDMax | 0: one CD, no SubstreamIDs |
//! | 1 | 1:0 | S1DSS | 0 (only used with SubstreamIDs) |
//! | 1 | 3:2, 5:4 | S1CIR, S1COR | 0b01: CD fetches write-back, read/write-allocate |
//! | 1 | 7:6 | S1CSH | 0b11: CD fetches inner shareable |
//! | 1 | 27 | S1STALLD | 0 (no stalls are ever configured) |
//! | 1 | 31:30 | STRW | see [`StreamWorld`] |
//! | 1 | 49:48 | PRIVCFG | stage 1 only: 0b10, every transaction unprivileged, so a device sharing a task's table reaches only what the task's EL0 may (never the privileged-only hypervisor entries in the same table); nested: 0, as incoming |
//! | 2 | 15:0 | S2VMID | 0 for stage-1-only NS-EL1 entries: the TLB tag the CMD_TLBI_NH_* commands name |

use crate::cd::CD_BYTES;
use crate::features::{Features, Granule};
use crate::{bit, bits, field};
use addr::PhysAddr;
use core::fmt;
use id_alloc::Vmid;

/// 64-bit words in an STE.
pub const STE_WORDS: usize = 8;

/// STE.Config values (word 0, bits \[3:1\]).
const CONFIG_ABORT: u64 = 0b000;
const CONFIG_BYPASS: u64 = 0b100;
const CONFIG_STAGE1: u64 = 0b101;
const CONFIG_STAGE2: u64 = 0b110;
const CONFIG_NESTED: u64 = 0b111;

/// Word 0: V, bit 0.
const W0_V: u64 = 1;
/// Word 1: SHCFG = 0b01, "use incoming shareability".
const W1_SHCFG_INCOMING: u64 = field(0b01, 45, 44);
/// Word 1 stage-1 fields: CD fetches write-back read/write-allocate
/// (0b01) and inner shareable (0b11), as the CD table is mapped.
const W1_S1_CD_ATTRS: u64 = field(0b01, 3, 2) | field(0b01, 5, 4) | field(0b11, 7, 6);
/// Word 1, stage 1: PRIVCFG = 0b10, "unprivileged".
const W1_PRIVCFG_UNPRIVILEGED: u64 = field(0b10, 49, 48);
/// Word 1: STRW, bits \[31:30\].
const W1_STRW: (u32, u32) = (31, 30);
/// Word 2 single bits.
const W2_S2AA64: u32 = 51;
const W2_S2PTW: u32 = 54;
const W2_S2R: u32 = 58;

/// A Stream Table Entry, as the SMMU reads it from memory (word 0 first).
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Ste([u64; STE_WORDS]);

impl fmt::Debug for Ste {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ste[")?;
        for (i, w) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{w:#x}")?;
        }
        write!(f, "]")
    }
}

impl Ste {
    /// All zeroes: V = 0. The SMMU terminates the stream's transactions
    /// and records C_BAD_STE for each.
    pub const INVALID: Ste = Ste([0; STE_WORDS]);

    /// V = 1, Config = abort: every transaction is terminated with an abort
    /// and no event is recorded (spec 5.2, STE.Config 0b000).
    pub const fn abort() -> Ste {
        let mut words = [0; STE_WORDS];
        words[0] = W0_V | field(CONFIG_ABORT, 3, 1);
        Ste(words)
    }

    /// V = 1, Config = bypass: transactions go through untranslated, with
    /// their own attributes (SHCFG = incoming; the other override fields 0
    /// mean "use incoming" too).
    pub const fn bypass() -> Ste {
        let mut words = [0; STE_WORDS];
        words[0] = W0_V | field(CONFIG_BYPASS, 3, 1);
        words[1] = W1_SHCFG_INCOMING;
        Ste(words)
    }

    /// V = 1, Config = stage 2 only: the stream's addresses are IPAs of the
    /// VM `entry` describes, translated by its stage-2 tables and tagged
    /// with its VMID in the SMMU's TLBs.
    pub const fn stage2(entry: &Stage2Entry) -> Ste {
        let mut words = [0; STE_WORDS];
        words[0] = W0_V | field(CONFIG_STAGE2, 3, 1);
        words[1] = W1_SHCFG_INCOMING;
        let mut w2 = field(entry.vmid.get() as u64, 15, 0)
            | field(entry.vtcr.0 as u64, 50, 32)
            | (1 << W2_S2AA64);
        if entry.protected_walk {
            w2 |= 1 << W2_S2PTW;
        }
        if entry.record_faults {
            w2 |= 1 << W2_S2R;
        }
        words[2] = w2;
        words[3] = entry.root.get() & S2TTB_MASK;
        Ste(words)
    }

    /// V = 1, Config = stage 1 (or stage 1 then 2 for a nested entry): the
    /// stream's addresses are virtual addresses of the context in the
    /// one-entry CD table `entry` names.
    pub const fn stage1(entry: &Stage1Entry) -> Ste {
        let mut words = match &entry.stage2 {
            Some(s2) => Ste::stage2(s2).0,
            None => [0; STE_WORDS],
        };
        let config = if entry.stage2.is_some() {
            CONFIG_NESTED
        } else {
            CONFIG_STAGE1
        };
        // S1Fmt 0 (linear) and S1CDMax 0 (one CD): nothing to set.
        words[0] = W0_V | field(config, 3, 1) | (entry.cd_table.get() & S1_CONTEXT_PTR_MASK);
        // Stage 2's SHCFG only applies to streams that bypass stage 1.
        // A task's table also holds the hypervisor's entries, EL0 no access.
        let privilege = if entry.stage2.is_none() {
            W1_PRIVCFG_UNPRIVILEGED
        } else {
            0
        };
        words[1] = W1_S1_CD_ATTRS | privilege | field(entry.world.strw(), W1_STRW.0, W1_STRW.1);
        Ste(words)
    }

    /// STE.S1ContextPtr: the CD table (meaningful for stage-1 and nested
    /// entries).
    pub const fn context_pointer(&self) -> PhysAddr {
        PhysAddr(self.0[0] & S1_CONTEXT_PTR_MASK)
    }

    /// STE.STRW, or `None` for a reserved value.
    pub const fn stream_world(&self) -> Option<StreamWorld> {
        StreamWorld::from_strw(bits(self.0[1], W1_STRW.0, W1_STRW.1))
    }

    /// STE.S1CDMax: log2 of the CDs in the table (0 for one).
    pub const fn s1_cd_max(&self) -> u8 {
        // 5 bits: the cast is lossless.
        bits(self.0[0], 63, 59) as u8
    }

    /// The entry from its words, as read from the stream table.
    pub const fn from_words(words: [u64; STE_WORDS]) -> Ste {
        Ste(words)
    }

    /// The words to write to the stream table.
    pub const fn words(&self) -> [u64; STE_WORDS] {
        self.0
    }

    /// Word `index` (0 to 7), or `None`.
    pub const fn word(&self, index: usize) -> Option<u64> {
        if index < STE_WORDS {
            Some(self.0[index])
        } else {
            None
        }
    }

    /// STE.V.
    pub const fn is_valid(&self) -> bool {
        self.0[0] & W0_V != 0
    }

    /// Whether the SMMU terminates every transaction of the stream because
    /// of this entry alone: V = 0, Config abort, or a reserved Config.
    pub const fn terminates(&self) -> bool {
        !self.is_valid() || bits(self.0[0], 3, 3) == 0
    }

    /// What the entry does.
    pub fn kind(&self) -> SteKind {
        if !self.is_valid() {
            return SteKind::Invalid;
        }
        match bits(self.0[0], 3, 1) {
            CONFIG_ABORT => SteKind::Abort,
            CONFIG_BYPASS => SteKind::Bypass,
            CONFIG_STAGE1 => SteKind::Stage1,
            CONFIG_STAGE2 => SteKind::Stage2 {
                // Bits [15:0]: the cast is lossless.
                vmid: Vmid::new(bits(self.0[2], 15, 0) as u16),
                root: PhysAddr(self.0[3] & S2TTB_MASK),
            },
            CONFIG_NESTED => SteKind::Nested,
            // 0b001 to 0b011: a 3-bit field, so the cast is lossless.
            reserved => SteKind::Reserved(reserved as u8),
        }
    }

    /// STE.S2VTCR, the stage-2 translation parameters (meaningful for
    /// stage-2 and nested entries).
    pub const fn s2vtcr(&self) -> u32 {
        bits(self.0[2], 50, 32) as u32
    }

    /// STE.S2R: stage-2 faults are recorded in the event queue.
    pub const fn records_stage2_faults(&self) -> bool {
        bit(self.0[2], W2_S2R)
    }

    /// The same entry with another S2VMID: a change of word 2 alone.
    pub const fn with_vmid(&self, vmid: Vmid) -> Ste {
        let mut words = self.0;
        words[2] = (words[2] & !field(u64::MAX, 15, 0)) | vmid.get() as u64;
        Ste(words)
    }
}

/// STE.S2TTB: bits \[51:4\] of word 3.
const S2TTB_MASK: u64 = field(u64::MAX, 51, 4);
/// STE.S1ContextPtr: bits \[51:6\] of word 0.
const S1_CONTEXT_PTR_MASK: u64 = field(u64::MAX, 51, 6);

/// STE.STRW, the StreamWorld (spec 5.2): which translation regime a
/// stage-1 stream's translations belong to, hence which TLB invalidation
/// commands reach them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamWorld {
    /// 0b00, Non-secure EL1&0: TLB entries tagged with the ASID and the
    /// STE's S2VMID, invalidated by CMD_TLBI_NH_ASID / CMD_TLBI_NH_ALL.
    /// The only world with stage 2, and the one every SMMU implements.
    NsEl1,
    /// 0b10, EL2 with SMMU_CR2.E2H = 1: the EL2&0 regime of a VHE host,
    /// whose TLB entries carry ASIDs exactly like the CPU's, invalidated by
    /// CMD_TLBI_EL2_ASID / CMD_TLBI_EL2_ALL. Needs SMMU_IDR0.HYP; never
    /// with stage 2.
    El2E2h,
}

impl StreamWorld {
    /// The STRW encoding.
    pub const fn strw(self) -> u64 {
        match self {
            Self::NsEl1 => 0b00,
            Self::El2E2h => 0b10,
        }
    }

    /// Decodes STRW; `None` for the values this crate never writes (0b01
    /// EL3, 0b11 Secure EL2).
    pub const fn from_strw(raw: u64) -> Option<StreamWorld> {
        match raw {
            0b00 => Some(Self::NsEl1),
            0b10 => Some(Self::El2E2h),
            _ => None,
        }
    }
}

impl fmt::Display for StreamWorld {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NsEl1 => "NS-EL1",
            Self::El2E2h => "EL2-E2H",
        })
    }
}

/// A checked stage-1 configuration for one stream: everything
/// [`Ste::stage1`] encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage1Entry {
    cd_table: PhysAddr,
    world: StreamWorld,
    stage2: Option<Stage2Entry>,
}

impl Stage1Entry {
    /// A stage-1-only entry whose one CD is at `cd_table`, in `world`.
    ///
    /// # Errors
    ///
    /// [`SteError::NoStage1`], [`SteError::NoHyp`] (EL2 world without
    /// SMMU_IDR0.HYP), [`SteError::CdTableMisaligned`],
    /// [`SteError::CdTableBeyondOutputSize`].
    pub fn new(
        cd_table: PhysAddr,
        world: StreamWorld,
        features: &Features,
    ) -> Result<Stage1Entry, SteError> {
        if !features.stage1 {
            return Err(SteError::NoStage1);
        }
        if world == StreamWorld::El2E2h && !features.hyp {
            return Err(SteError::NoHyp);
        }
        if !cd_table.is_aligned(CD_BYTES as u64) {
            return Err(SteError::CdTableMisaligned(cd_table));
        }
        let bits = features.oas.bits();
        if cd_table.get() >> bits != 0 {
            return Err(SteError::CdTableBeyondOutputSize { cd_table, bits });
        }
        Ok(Stage1Entry {
            cd_table,
            world,
            stage2: None,
        })
    }

    /// A nested entry: the CD's translation, then `stage2`'s (the CD table
    /// and the stage-1 tables are then IPAs of that VM). Always the NS-EL1
    /// world, the only one with stage 2.
    ///
    /// # Errors
    ///
    /// Those of [`Stage1Entry::new`].
    pub fn nested(
        cd_table: PhysAddr,
        stage2: Stage2Entry,
        features: &Features,
    ) -> Result<Stage1Entry, SteError> {
        let mut entry = Stage1Entry::new(cd_table, StreamWorld::NsEl1, features)?;
        entry.stage2 = Some(stage2);
        Ok(entry)
    }

    /// The CD table.
    pub const fn cd_table(&self) -> PhysAddr {
        self.cd_table
    }

    /// The StreamWorld.
    pub const fn world(&self) -> StreamWorld {
        self.world
    }
}

/// What a Stream Table Entry does with its stream's transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteKind {
    /// V = 0: terminated, C_BAD_STE recorded.
    Invalid,
    /// Terminated silently.
    Abort,
    /// Passed through untranslated.
    Bypass,
    /// Stage 1 only ([`Ste::stage1`]).
    Stage1,
    /// Stage 2 only.
    Stage2 {
        /// STE.S2VMID.
        vmid: Vmid,
        /// STE.S2TTB.
        root: PhysAddr,
    },
    /// Stage 1 then stage 2 ([`Ste::stage1`] with [`Stage1Entry::nested`]).
    Nested,
    /// A reserved Config value (0b001 to 0b011): C_BAD_STE.
    Reserved(u8),
}

impl fmt::Display for SteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => write!(f, "invalid"),
            Self::Abort => write!(f, "abort"),
            Self::Bypass => write!(f, "bypass"),
            Self::Stage1 => write!(f, "stage 1"),
            Self::Stage2 { vmid, root } => write!(f, "stage 2, VMID {vmid}, root {root}"),
            Self::Nested => write!(f, "nested"),
            Self::Reserved(config) => write!(f, "reserved Config {config:#05b}"),
        }
    }
}

/// Why a stage-2 or stage-1 entry could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SteError {
    /// The SMMU has no stage-1 translation (SMMU_IDR0.S1P = 0).
    NoStage1,
    /// The SMMU has no EL2 StreamWorld (SMMU_IDR0.HYP = 0).
    NoHyp,
    /// The CD table is not aligned to 64 bytes.
    CdTableMisaligned(PhysAddr),
    /// The CD table lies above the SMMU's output size.
    CdTableBeyondOutputSize {
        /// The address.
        cd_table: PhysAddr,
        /// Bits of output address.
        bits: u8,
    },
    /// The SMMU has no stage-2 translation (SMMU_IDR0.S2P = 0).
    NoStage2,
    /// The SMMU cannot walk AArch64 tables (SMMU_IDR0.TTF).
    NoAArch64Tables,
    /// The SMMU cannot walk little-endian tables (SMMU_IDR0.TTENDIAN).
    NoLittleEndianTables,
    /// The VMID does not fit the SMMU's 8 bits (SMMU_IDR0.VMID16 = 0).
    VmidTooWide {
        /// The VMID.
        vmid: Vmid,
        /// The largest one the SMMU takes.
        max: u16,
    },
    /// VTCR_EL2.TG0 is the reserved 0b11.
    ReservedGranule,
    /// The SMMU does not implement the granule (SMMU_IDR5.GRANx).
    GranuleNotSupported(Granule),
    /// VTCR_EL2.PS is the reserved 0b111.
    ReservedPs,
    /// The IPA size (64 - T0SZ) is more than the SMMU translates, or less
    /// than any stage-2 table covers.
    IpaSize {
        /// 64 - T0SZ.
        ipa_bits: u8,
        /// The smallest size allowed.
        min: u8,
        /// The largest size allowed (the SMMU's IAS).
        max: u8,
    },
    /// SL0 names no start level for the granule, or one that cannot cover
    /// the IPA size with at most 16 concatenated root tables.
    StartLevel {
        /// VTCR_EL2.SL0.
        sl0: u8,
        /// The granule.
        granule: Granule,
        /// 64 - T0SZ.
        ipa_bits: u8,
    },
    /// A VTCR_EL2 feature the STE cannot express or this crate does not
    /// support (HA, HD, DS, SL2).
    Unsupported(&'static str),
    /// The root table's address is not aligned to the root table's size.
    RootMisaligned {
        /// The address.
        root: PhysAddr,
        /// The alignment it needs.
        align: u64,
    },
    /// The root table lies above the effective output size (S2PS capped
    /// at SMMU_IDR5.OAS).
    RootBeyondOutputSize {
        /// The address.
        root: PhysAddr,
        /// Bits of output address.
        bits: u8,
    },
}

impl fmt::Display for SteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoStage1 => write!(f, "the SMMU has no stage-1 translation"),
            Self::NoHyp => write!(f, "the SMMU has no EL2 stream world (SMMU_IDR0.HYP = 0)"),
            Self::CdTableMisaligned(at) => {
                write!(f, "CD table at {at} is not aligned to 64 bytes")
            }
            Self::CdTableBeyondOutputSize { cd_table, bits } => write!(
                f,
                "CD table at {cd_table} is beyond the SMMU's {bits}-bit output size"
            ),
            Self::NoStage2 => write!(f, "the SMMU has no stage-2 translation"),
            Self::NoAArch64Tables => write!(f, "the SMMU cannot walk AArch64 tables"),
            Self::NoLittleEndianTables => write!(f, "the SMMU cannot walk little-endian tables"),
            Self::VmidTooWide { vmid, max } => {
                write!(f, "VMID {vmid} is beyond the SMMU's largest, {max:#x}")
            }
            Self::ReservedGranule => write!(f, "VTCR_EL2.TG0 is reserved (0b11)"),
            Self::GranuleNotSupported(g) => write!(f, "the SMMU has no {g} granule"),
            Self::ReservedPs => write!(f, "VTCR_EL2.PS is reserved (0b111)"),
            Self::IpaSize { ipa_bits, min, max } => write!(
                f,
                "a {ipa_bits}-bit IPA space is outside the SMMU's {min} to {max} bits"
            ),
            Self::StartLevel {
                sl0,
                granule,
                ipa_bits,
            } => write!(
                f,
                "SL0 {sl0} with the {granule} granule cannot start a walk of a {ipa_bits}-bit IPA space"
            ),
            Self::Unsupported(what) => write!(f, "VTCR_EL2.{what} has no STE equivalent here"),
            Self::RootMisaligned { root, align } => write!(
                f,
                "stage-2 root table at {root} is not aligned to its size ({align:#x})"
            ),
            Self::RootBeyondOutputSize { root, bits } => write!(
                f,
                "stage-2 root table at {root} is beyond the SMMU's {bits}-bit output size"
            ),
        }
    }
}

/// VTCR_EL2 fields (Arm ARM, register description), positions written out.
mod vtcr_el2 {
    pub const T0SZ: (u32, u32) = (5, 0);
    pub const SL0: (u32, u32) = (7, 6);
    pub const IRGN0: (u32, u32) = (9, 8);
    pub const ORGN0: (u32, u32) = (11, 10);
    pub const SH0: (u32, u32) = (13, 12);
    pub const TG0: (u32, u32) = (15, 14);
    pub const PS: (u32, u32) = (18, 16);
    pub const HA: u32 = 21;
    pub const HD: u32 = 22;
    pub const DS: u32 = 32;
    pub const SL2: u32 = 33;
}

/// STE.S2VTCR: the 19 bits of word 2 \[50:32\] that describe the stage-2
/// tables, in the layout of VTCR_EL2 \[18:0\] (spec 5.2, "STE.S2VTCR").
///
/// # From VTCR_EL2
///
/// [`S2Vtcr::from_vtcr_el2`] takes the value the CPU loads for the same VM
/// and carries each field over, checked against the SMMU:
///
/// | VTCR_EL2 | STE | how |
/// |---|---|---|
/// | T0SZ \[5:0\] | S2T0SZ \[5:0\] | copied; 64 - T0SZ must be at most the SMMU's IAS ([`Features::ias_bits`]) and at least 25 bits (16 with IDR3.STT) |
/// | SL0 \[7:6\] | S2SL0 \[7:6\] | copied; same encoding per granule; must start a walk that covers the IPA size with at most 16 concatenated root tables |
/// | IRGN0 \[9:8\] | S2IR0 \[9:8\] | copied: the SMMU's walks use the CPU's table cacheability |
/// | ORGN0 \[11:10\] | S2OR0 \[11:10\] | copied |
/// | SH0 \[13:12\] | S2SH0 \[13:12\] | copied |
/// | TG0 \[15:14\] | S2TG \[15:14\] | copied (same encoding: 0b00 4 KiB, 0b01 64 KiB, 0b10 16 KiB); the SMMU must implement the granule |
/// | PS \[18:16\] | S2PS \[18:16\] | the smaller of PS and SMMU_IDR5.OAS: the CPU's PA size may exceed what the SMMU outputs, and the spec caps it the same way; writing the capped value keeps the entry honest |
/// | VS \[19\] | — | no field: the VMID itself is checked against SMMU_IDR0.VMID16 |
/// | HA \[21\], HD \[22\] | S2HA, S2HD | refused if set: the SMMU would need IDR0.HTTU, and would fault where the CPU updates |
/// | DS \[32\], SL2 \[33\] | — | refused if set (52-bit LPA2 tables) |
///
/// Other VTCR_EL2 bits (NSW, NSA, the Secure and later-feature fields) have
/// no meaning for a Non-secure stage-2-only stream and are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Vtcr(u32);

impl S2Vtcr {
    /// Translates a VTCR_EL2 value for an SMMU with `features`.
    ///
    /// # Errors
    ///
    /// [`SteError::ReservedGranule`], [`SteError::GranuleNotSupported`],
    /// [`SteError::ReservedPs`], [`SteError::IpaSize`],
    /// [`SteError::StartLevel`], [`SteError::Unsupported`].
    pub fn from_vtcr_el2(vtcr: u64, features: &Features) -> Result<S2Vtcr, SteError> {
        use vtcr_el2::*;
        let get = |(hi, lo): (u32, u32)| bits(vtcr, hi, lo);
        for (name, position) in [("HA", HA), ("HD", HD), ("DS", DS), ("SL2", SL2)] {
            if bit(vtcr, position) {
                return Err(SteError::Unsupported(name));
            }
        }
        // Each field is at most 6 bits wide: the casts are lossless.
        let tg0 = get(TG0) as u8;
        let granule = Granule::from_tg0(tg0).ok_or(SteError::ReservedGranule)?;
        if !features.supports_granule(granule) {
            return Err(SteError::GranuleNotSupported(granule));
        }
        let ps = crate::AddressSize::from_field(get(PS) as u8).ok_or(SteError::ReservedPs)?;
        let s2ps = if ps > features.oas { features.oas } else { ps };
        let t0sz = get(T0SZ) as u8;
        let ipa_bits = 64 - t0sz;
        let min = if features.small_tables { 16 } else { 25 };
        let max = features.ias_bits().min(48);
        if !(min..=max).contains(&ipa_bits) {
            return Err(SteError::IpaSize { ipa_bits, min, max });
        }
        let sl0 = get(SL0) as u8;
        let start_level_error = SteError::StartLevel {
            sl0,
            granule,
            ipa_bits,
        };
        let level = start_level(granule, sl0).ok_or(start_level_error)?;
        root_bits(granule, level, ipa_bits).ok_or(start_level_error)?;
        let value = field(u64::from(t0sz), 5, 0)
            | field(u64::from(sl0), 7, 6)
            | field(get(IRGN0), 9, 8)
            | field(get(ORGN0), 11, 10)
            | field(get(SH0), 13, 12)
            | field(u64::from(tg0), 15, 14)
            | field(u64::from(s2ps.field()), 18, 16);
        // 19 bits: the cast is lossless.
        Ok(S2Vtcr(value as u32))
    }

    /// The 19-bit STE field.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// S2T0SZ.
    pub const fn t0sz(self) -> u8 {
        bits(self.0 as u64, 5, 0) as u8
    }

    /// Bits of IPA: 64 - S2T0SZ.
    pub const fn ipa_bits(self) -> u8 {
        64 - self.t0sz()
    }

    /// S2SL0.
    pub const fn sl0(self) -> u8 {
        bits(self.0 as u64, 7, 6) as u8
    }

    /// The granule (S2TG).
    pub fn granule(self) -> Granule {
        // `from_vtcr_el2` only builds values with a valid TG.
        Granule::from_tg0(bits(self.0 as u64, 15, 14) as u8).unwrap_or(Granule::K4)
    }

    /// S2PS: the output size, capped at the SMMU's.
    pub fn output_size(self) -> crate::AddressSize {
        // `from_vtcr_el2` only builds values with a valid PS.
        crate::AddressSize::from_field(bits(self.0 as u64, 18, 16) as u8)
            .unwrap_or(crate::AddressSize::Bits32)
    }

    /// Level of the root table.
    pub fn start_level(self) -> u8 {
        start_level(self.granule(), self.sl0()).unwrap_or(0)
    }

    /// Bytes of root table (all concatenated tables together), which is
    /// also the alignment the root needs.
    pub fn root_table_bytes(self) -> u64 {
        let r = root_bits(self.granule(), self.start_level(), self.ipa_bits()).unwrap_or(0);
        8 << r
    }
}

/// The level a stage-2 walk starts at, from SL0 and the granule (Arm ARM,
/// VTCR_EL2.SL0). Level 3 starts (4 KiB, SL0 = 0b11, FEAT_TTST) and level
/// 0 with 16 KiB (FEAT_LPA2) are not supported here.
const fn start_level(granule: Granule, sl0: u8) -> Option<u8> {
    match (granule, sl0) {
        (Granule::K4, 0) => Some(2),
        (Granule::K4, 1) => Some(1),
        (Granule::K4, 2) => Some(0),
        (Granule::K16 | Granule::K64, 0) => Some(3),
        (Granule::K16 | Granule::K64, 1) => Some(2),
        (Granule::K16 | Granule::K64, 2) => Some(1),
        _ => None,
    }
}

/// Bits of IPA the root level resolves, if the walk from `level` can
/// cover `ipa_bits` (Arm ARM D8.2, stage-2 concatenation): at least one,
/// and at most a table's stride plus 4 (16 concatenated tables).
const fn root_bits(granule: Granule, level: u8, ipa_bits: u8) -> Option<u32> {
    // Bits resolved below the root level: the page offset plus one stride
    // per level from `level + 1` to 3.
    let below = granule.shift() + granule.stride() * (3 - level as u32);
    let ipa = ipa_bits as u32;
    if ipa <= below {
        return None;
    }
    let r = ipa - below;
    if r > granule.stride() + 4 {
        None
    } else {
        Some(r)
    }
}

/// A checked stage-2 configuration for one stream: everything
/// [`Ste::stage2`] encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Entry {
    vmid: Vmid,
    root: PhysAddr,
    vtcr: S2Vtcr,
    record_faults: bool,
    protected_walk: bool,
}

impl Stage2Entry {
    /// The configuration for a stream of the VM whose stage-2 tables are
    /// at `root` (the physical address VTTBR_EL2.BADDR holds) under
    /// `vtcr_el2` (the value the CPU loads), tagged `vmid`. Faults are
    /// recorded and walks protected by default.
    ///
    /// # Errors
    ///
    /// [`SteError::NoStage2`], [`SteError::NoAArch64Tables`],
    /// [`SteError::NoLittleEndianTables`], [`SteError::VmidTooWide`],
    /// [`SteError::RootMisaligned`], [`SteError::RootBeyondOutputSize`],
    /// and those of [`S2Vtcr::from_vtcr_el2`].
    pub fn new(
        vmid: Vmid,
        root: PhysAddr,
        vtcr_el2: u64,
        features: &Features,
    ) -> Result<Stage2Entry, SteError> {
        if !features.stage2 {
            return Err(SteError::NoStage2);
        }
        if !features.aarch64_tables {
            return Err(SteError::NoAArch64Tables);
        }
        if !features.little_endian_tables {
            return Err(SteError::NoLittleEndianTables);
        }
        let max = features.max_vmid();
        if vmid.get() > max {
            return Err(SteError::VmidTooWide { vmid, max });
        }
        let vtcr = S2Vtcr::from_vtcr_el2(vtcr_el2, features)?;
        let align = vtcr.root_table_bytes().max(16);
        if !root.is_aligned(align) {
            return Err(SteError::RootMisaligned { root, align });
        }
        let out_bits = vtcr.output_size().bits();
        if root.get() >> out_bits != 0 {
            return Err(SteError::RootBeyondOutputSize {
                root,
                bits: out_bits,
            });
        }
        Ok(Stage2Entry {
            vmid,
            root,
            vtcr,
            record_faults: true,
            protected_walk: true,
        })
    }

    /// STE.S2R: whether stage-2 faults are recorded in the event queue
    /// (default yes). Without it a faulting transaction is still
    /// terminated, silently.
    pub const fn with_record_faults(mut self, record: bool) -> Stage2Entry {
        self.record_faults = record;
        self
    }

    /// STE.S2PTW: whether a stage-1 table walk that lands on stage-2 Device
    /// memory faults (default yes, as Linux sets it). Stage-2-only streams
    /// make no stage-1 walks, so this only matters if the entry is ever
    /// turned into a nested one.
    pub const fn with_protected_walk(mut self, protect: bool) -> Stage2Entry {
        self.protected_walk = protect;
        self
    }

    /// The VMID.
    pub const fn vmid(&self) -> Vmid {
        self.vmid
    }

    /// The stage-2 root table.
    pub const fn root(&self) -> PhysAddr {
        self.root
    }

    /// The translation parameters.
    pub const fn vtcr(&self) -> S2Vtcr {
        self.vtcr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::tests::qemu;
    use crate::AddressSize;
    use addr::IntermediatePhysAddr;
    use std::string::ToString;

    extern crate std;

    /// VTCR_EL2 for a 39-bit IPA space starting at level 1, 4 KiB granule,
    /// write-back walks, inner shareable, 48-bit PS, 16-bit VMIDs, RES1:
    /// T0SZ 25 = 0x19, SL0 0b01 << 6 = 0x40, IRGN0 0b01 << 8 = 0x100,
    /// ORGN0 0b01 << 10 = 0x400, SH0 0b11 << 12 = 0x3000, TG0 0, PS 0b101
    /// << 16 = 0x5_0000, VS << 19 = 0x8_0000, bit 31.
    const VTCR_39: u64 = 0x8000_0000 | 0x8_0000 | 0x5_0000 | 0x3000 | 0x400 | 0x100 | 0x40 | 0x19;

    #[test]
    fn abort_entry_is_valid_config_zero() {
        assert_eq!(Ste::abort().words(), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Ste::abort().kind(), SteKind::Abort);
        assert!(Ste::abort().terminates());
    }

    #[test]
    fn bypass_entry_is_config_0b100_with_incoming_shareability() {
        // V | Config 0b100 << 1 = 0b1001; SHCFG 0b01 << 44.
        assert_eq!(
            Ste::bypass().words(),
            [0x9, 0x1000_0000_0000, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(Ste::bypass().kind(), SteKind::Bypass);
        assert!(!Ste::bypass().terminates());
    }

    #[test]
    fn invalid_entry_is_all_zero() {
        assert_eq!(Ste::INVALID.kind(), SteKind::Invalid);
        assert!(Ste::INVALID.terminates());
        assert_eq!(Ste::default(), Ste::INVALID);
    }

    #[test]
    fn vtcr_translates_field_by_field() {
        let s2 = S2Vtcr::from_vtcr_el2(VTCR_39, &qemu()).unwrap();
        // PS 48 bits is capped at QEMU's 44 (0b100 << 16); VS and RES1 go.
        assert_eq!(s2.bits(), 0x4_0000 | 0x3000 | 0x400 | 0x100 | 0x40 | 0x19);
        assert_eq!(s2.t0sz(), 25);
        assert_eq!(s2.ipa_bits(), 39);
        assert_eq!(s2.sl0(), 1);
        assert_eq!(s2.start_level(), 1);
        assert_eq!(s2.granule(), Granule::K4);
        assert_eq!(s2.output_size(), AddressSize::Bits44);
        // One full 4 KiB level-1 table.
        assert_eq!(s2.root_table_bytes(), 4096);
    }

    #[test]
    fn ps_below_the_oas_is_kept() {
        // PS 40 bits (0b010).
        let vtcr = (VTCR_39 & !0x7_0000) | 0x2_0000;
        let s2 = S2Vtcr::from_vtcr_el2(vtcr, &qemu()).unwrap();
        assert_eq!(s2.output_size(), AddressSize::Bits40);
    }

    #[test]
    fn stage2_entry_encodes_every_word() {
        let entry =
            Stage2Entry::new(Vmid::new(0x1234), PhysAddr(0x4123_4000), VTCR_39, &qemu()).unwrap();
        let ste = Ste::stage2(&entry);
        let s2vtcr: u64 = 0x4_0000 | 0x3000 | 0x400 | 0x100 | 0x40 | 0x19;
        assert_eq!(
            ste.words(),
            [
                // V | Config 0b110 << 1.
                0xd,
                1 << 44,
                // S2VMID | S2VTCR << 32 | S2AA64 (51) | S2PTW (54) | S2R (58).
                0x1234 | s2vtcr << 32 | 1 << 51 | 1 << 54 | 1 << 58,
                0x4123_4000,
                0,
                0,
                0,
                0
            ]
        );
        assert_eq!(
            ste.kind(),
            SteKind::Stage2 {
                vmid: Vmid::new(0x1234),
                root: PhysAddr(0x4123_4000)
            }
        );
        assert_eq!(u64::from(ste.s2vtcr()), s2vtcr);
        assert!(ste.records_stage2_faults());
        let quiet = Ste::stage2(&entry.with_record_faults(false).with_protected_walk(false));
        assert_eq!(quiet.word(2), Some(0x1234 | s2vtcr << 32 | 1 << 51));
        assert!(!quiet.records_stage2_faults());
    }

    #[test]
    fn with_vmid_changes_word_2_only() {
        let entry =
            Stage2Entry::new(Vmid::new(7), PhysAddr(0x4000_0000), VTCR_39, &qemu()).unwrap();
        let a = Ste::stage2(&entry);
        let b = a.with_vmid(Vmid::new(0xbeef));
        for i in 0..STE_WORDS {
            assert_eq!(a.word(i) == b.word(i), i != 2);
        }
        assert_eq!(b.word(2).unwrap() & 0xffff, 0xbeef);
        assert_eq!(b.word(2).unwrap() >> 16, a.word(2).unwrap() >> 16);
    }

    #[test]
    fn the_hypervisors_own_vtcr_values_translate() {
        // What `stage2::Stage2Config` builds for a VM below 4 GiB of IPA on
        // a CPU with 48-bit PAs and 16-bit VMIDs, as `vm.rs` does.
        let config =
            stage2::Stage2Config::new(IntermediatePhysAddr(0x1_0000_0000), 0b0101, 16).unwrap();
        let s2 = S2Vtcr::from_vtcr_el2(config.vtcr(), &qemu()).unwrap();
        assert_eq!(s2.ipa_bits(), 39);
        assert_eq!(s2.start_level(), 1);
        assert_eq!(s2.output_size(), AddressSize::Bits44);
        assert_eq!(s2.bits() & 0xffff, (config.vtcr() & 0xffff) as u32);
        // A VM needing more than 39 bits gets a 48-bit IPA space and a
        // level-0 walk, which QEMU's 44-bit SMMU cannot translate.
        let big = stage2::Stage2Config::new(IntermediatePhysAddr(1 << 40), 0b0101, 16).unwrap();
        assert_eq!(
            S2Vtcr::from_vtcr_el2(big.vtcr(), &qemu()),
            Err(SteError::IpaSize {
                ipa_bits: 48,
                min: 25,
                max: 44
            })
        );
    }

    #[test]
    fn unsupported_vtcr_features_are_refused() {
        let f = qemu();
        for (bit, name) in [(21, "HA"), (22, "HD"), (32, "DS"), (33, "SL2")] {
            assert_eq!(
                S2Vtcr::from_vtcr_el2(VTCR_39 | 1 << bit, &f),
                Err(SteError::Unsupported(name))
            );
        }
        assert_eq!(
            S2Vtcr::from_vtcr_el2(VTCR_39 | 0b11 << 14, &f),
            Err(SteError::ReservedGranule)
        );
        assert_eq!(
            S2Vtcr::from_vtcr_el2(VTCR_39 | 0b111 << 16, &f),
            Err(SteError::ReservedPs)
        );
        let mut no_4k = f;
        no_4k.granule_4k = false;
        assert_eq!(
            S2Vtcr::from_vtcr_el2(VTCR_39, &no_4k),
            Err(SteError::GranuleNotSupported(Granule::K4))
        );
    }

    #[test]
    fn ipa_sizes_outside_the_smmu_are_refused() {
        let f = qemu();
        // T0SZ 40: 24 bits, below the 25-bit minimum without STT.
        let small = (VTCR_39 & !0x3f) | 40;
        assert_eq!(
            S2Vtcr::from_vtcr_el2(small, &f),
            Err(SteError::IpaSize {
                ipa_bits: 24,
                min: 25,
                max: 44
            })
        );
        let mut stt = f;
        stt.small_tables = true;
        // With STT a 24-bit space is fine size-wise, but SL0 = level 1
        // cannot start it; level 2 (SL0 0) can.
        assert_eq!(
            S2Vtcr::from_vtcr_el2(small, &stt),
            Err(SteError::StartLevel {
                sl0: 1,
                granule: Granule::K4,
                ipa_bits: 24
            })
        );
        assert!(S2Vtcr::from_vtcr_el2(small & !0xc0, &stt).is_ok());
    }

    /// Arm ARM stage-2 start levels with the 4 KiB granule: level 1 covers
    /// 31 to 43 bits (one table, up to 16 concatenated), level 0 40 to 48,
    /// level 2 22 to 34.
    #[test]
    fn start_levels_cover_the_arm_arm_ranges() {
        let mut f = qemu();
        f.oas = AddressSize::Bits48;
        f.small_tables = true;
        let vtcr = |ipa_bits: u64, sl0: u64| (64 - ipa_bits) | sl0 << 6 | 0b101 << 16;
        let ok = |ipa, sl0| S2Vtcr::from_vtcr_el2(vtcr(ipa, sl0), &f).is_ok();
        assert!((31..=43).all(|b| ok(b, 1)));
        assert!(!ok(30, 1) && !ok(44, 1));
        assert!((40..=48).all(|b| ok(b, 2)));
        assert!(!ok(39, 2));
        assert!((22..=34).filter(|b| *b >= 16).all(|b| ok(b, 0)));
        assert!(!ok(35, 0));
        assert!(!ok(39, 3));
        // 40 bits at level 1: two concatenated tables, 8 KiB, aligned so.
        let s2 = S2Vtcr::from_vtcr_el2(vtcr(40, 1), &f).unwrap();
        assert_eq!(s2.root_table_bytes(), 8192);
        // 32 bits at level 1: a 4-entry table, 32 bytes.
        let s2 = S2Vtcr::from_vtcr_el2(vtcr(32, 1), &f).unwrap();
        assert_eq!(s2.root_table_bytes(), 32);
    }

    #[test]
    fn larger_granules_map_sl0_like_the_cpu() {
        let f = qemu();
        // 64 KiB granule (TG0 0b01), 42-bit IPA, SL0 0b01: level 2 with
        // 13 + 16 = 29 bits below, root resolves 13 bits: one table.
        let vtcr = (64 - 42) | 0b01 << 6 | 0b01 << 14 | 0b100 << 16;
        let s2 = S2Vtcr::from_vtcr_el2(vtcr, &f).unwrap();
        assert_eq!((s2.granule(), s2.start_level()), (Granule::K64, 2));
        assert_eq!(s2.root_table_bytes(), 65536);
        // 16 KiB granule (TG0 0b10), 36-bit IPA, SL0 0b01: level 2 with
        // 14 + 11 = 25 bits below, 11 bits at the root.
        let vtcr = (64 - 36) | 0b01 << 6 | 0b10 << 14 | 0b001 << 16;
        let s2 = S2Vtcr::from_vtcr_el2(vtcr, &f).unwrap();
        assert_eq!((s2.granule(), s2.start_level()), (Granule::K16, 2));
        assert_eq!(s2.root_table_bytes(), 16384);
    }

    #[test]
    fn stage2_entries_check_the_smmu_and_the_root() {
        let f = qemu();
        let root = PhysAddr(0x4000_0000);
        let mut no_s2 = f;
        no_s2.stage2 = false;
        assert_eq!(
            Stage2Entry::new(Vmid::new(1), root, VTCR_39, &no_s2),
            Err(SteError::NoStage2)
        );
        let mut no_aa64 = f;
        no_aa64.aarch64_tables = false;
        assert_eq!(
            Stage2Entry::new(Vmid::new(1), root, VTCR_39, &no_aa64),
            Err(SteError::NoAArch64Tables)
        );
        let mut big_endian = f;
        big_endian.little_endian_tables = false;
        assert_eq!(
            Stage2Entry::new(Vmid::new(1), root, VTCR_39, &big_endian),
            Err(SteError::NoLittleEndianTables)
        );
        let mut vmid8 = f;
        vmid8.vmid16 = false;
        assert_eq!(
            Stage2Entry::new(Vmid::new(0x100), root, VTCR_39, &vmid8),
            Err(SteError::VmidTooWide {
                vmid: Vmid::new(0x100),
                max: 0xff
            })
        );
        assert!(Stage2Entry::new(Vmid::new(0xff), root, VTCR_39, &vmid8).is_ok());
        assert_eq!(
            Stage2Entry::new(Vmid::new(1), PhysAddr(0x4000_0800), VTCR_39, &f),
            Err(SteError::RootMisaligned {
                root: PhysAddr(0x4000_0800),
                align: 4096
            })
        );
        assert_eq!(
            Stage2Entry::new(Vmid::new(1), PhysAddr(1 << 44), VTCR_39, &f),
            Err(SteError::RootBeyondOutputSize {
                root: PhysAddr(1 << 44),
                bits: 44
            })
        );
    }

    #[test]
    fn stage1_entry_encodes_every_word() {
        let f = crate::features::tests::qemu_nested();
        let entry = Stage1Entry::new(PhysAddr(0x4567_8040), StreamWorld::NsEl1, &f).unwrap();
        let ste = Ste::stage1(&entry);
        // Word 0: V | Config 0b101 << 1 = 0xb, S1Fmt 0, S1ContextPtr
        // 0x4567_8040 (bits [51:6]), S1CDMax 0. Word 1: S1CIR 0b01 << 2,
        // S1COR 0b01 << 4, S1CSH 0b11 << 6 = 0xd4, PRIVCFG 0b10 << 48,
        // STRW 0. Word 2: S2VMID 0.
        assert_eq!(
            ste.words(),
            [0x4567_804b, 0x0002_0000_0000_00d4, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(ste.kind(), SteKind::Stage1);
        assert!(!ste.terminates());
        assert_eq!(ste.context_pointer(), PhysAddr(0x4567_8040));
        assert_eq!(ste.stream_world(), Some(StreamWorld::NsEl1));
        assert_eq!(ste.s1_cd_max(), 0);
        // EL2-E2H: STRW 0b10 << 30.
        let mut hyp = f;
        hyp.hyp = true;
        let el2 = Stage1Entry::new(PhysAddr(0x4567_8040), StreamWorld::El2E2h, &hyp).unwrap();
        let ste = Ste::stage1(&el2);
        assert_eq!(ste.words()[1], 0x0002_0000_8000_00d4);
        assert_eq!(ste.stream_world(), Some(StreamWorld::El2E2h));
        assert_eq!(el2.world(), StreamWorld::El2E2h);
        assert_eq!(el2.cd_table(), PhysAddr(0x4567_8040));
    }

    #[test]
    fn nested_entries_keep_the_stage2_words() {
        let f = crate::features::tests::qemu_nested();
        let s2 = Stage2Entry::new(Vmid::new(0x1234), PhysAddr(0x4123_4000), VTCR_39, &f).unwrap();
        let nested = Stage1Entry::nested(PhysAddr(0x4000_0040), s2, &f).unwrap();
        let ste = Ste::stage1(&nested);
        let plain = Ste::stage2(&s2);
        // V | Config 0b111 << 1 = 0xf.
        assert_eq!(ste.words()[0], 0x4000_004f);
        assert_eq!(ste.words()[1], 0xd4);
        assert_eq!(ste.words()[2..], plain.words()[2..]);
        assert_eq!(ste.kind(), SteKind::Nested);
        assert_eq!(nested.world(), StreamWorld::NsEl1);
    }

    #[test]
    fn stage1_entries_check_the_smmu_and_the_cd_table() {
        let f = crate::features::tests::qemu_nested();
        let at = PhysAddr(0x4000_0000);
        assert_eq!(
            Stage1Entry::new(at, StreamWorld::NsEl1, &qemu()),
            Err(SteError::NoStage1)
        );
        // QEMU has no EL2 StreamWorld.
        assert_eq!(
            Stage1Entry::new(at, StreamWorld::El2E2h, &f),
            Err(SteError::NoHyp)
        );
        assert_eq!(
            Stage1Entry::new(PhysAddr(0x4000_0020), StreamWorld::NsEl1, &f),
            Err(SteError::CdTableMisaligned(PhysAddr(0x4000_0020)))
        );
        assert_eq!(
            Stage1Entry::new(PhysAddr(1 << 44), StreamWorld::NsEl1, &f),
            Err(SteError::CdTableBeyondOutputSize {
                cd_table: PhysAddr(1 << 44),
                bits: 44
            })
        );
        assert_eq!(StreamWorld::from_strw(0b01), None);
        assert_eq!(StreamWorld::from_strw(0b11), None);
        assert_eq!(StreamWorld::El2E2h.to_string(), "EL2-E2H");
        assert_eq!(
            SteError::NoHyp.to_string(),
            "the SMMU has no EL2 stream world (SMMU_IDR0.HYP = 0)"
        );
    }

    #[test]
    fn reserved_and_other_configs_decode() {
        for (config, kind) in [
            (0b001, SteKind::Reserved(1)),
            (0b011, SteKind::Reserved(3)),
            (0b101, SteKind::Stage1),
            (0b111, SteKind::Nested),
        ] {
            let ste = Ste::from_words([1 | config << 1, 0, 0, 0, 0, 0, 0, 0]);
            assert_eq!(ste.kind(), kind);
            assert_eq!(ste.terminates(), config & 0b100 == 0);
        }
        // V = 0 wins over any Config.
        assert_eq!(
            Ste::from_words([0b1100, 0, 0, 0, 0, 0, 0, 0]).kind(),
            SteKind::Invalid
        );
        assert_eq!(Ste::abort().word(8), None);
    }

    #[test]
    fn errors_and_kinds_print() {
        assert_eq!(
            SteError::RootMisaligned {
                root: PhysAddr(0x4000_0800),
                align: 4096
            }
            .to_string(),
            "stage-2 root table at 0x40000800 is not aligned to its size (0x1000)"
        );
        assert_eq!(
            SteKind::Stage2 {
                vmid: Vmid::new(5),
                root: PhysAddr(0x1000)
            }
            .to_string(),
            "stage 2, VMID 0x5, root 0x1000"
        );
        assert_eq!(
            format!("{:?}", Ste::abort()),
            "Ste[0x1 0x0 0x0 0x0 0x0 0x0 0x0 0x0]"
        );
    }

    use std::format;
}
