//! The SMMU's registers (spec chapter 6, "Memory map and registers"), as
//! `tock-registers` blocks and fields.
//!
//! The programming interface is two 64 KiB pages: page 0 holds the ID,
//! control and table registers and the command queue's indexes; page 1
//! holds the event (and PRI) queues' indexes, `SMMU_EVENTQ_PROD` at 0x100A8
//! and `SMMU_EVENTQ_CONS` at 0x100AC (spec 6.2, 6.3.26 and 6.3.27). Offsets
//! 0xA8 and 0xAC of page 0 are reserved; some implementations alias them to
//! page 1 (QEMU does), which [`SmmuRegisters`] does not rely on.
//!
//! Only the registers the hypervisor uses have fields; the rest are plain
//! words, so the blocks still follow the memory map exactly (a test checks
//! the sizes and offsets).

#![allow(non_snake_case)]

use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

pub use fields::*;

/// The register fields. `register_bitfields!` generates items (each
/// field's value constants, the `Register` marker types) that carry no
/// documentation of their own; the fields' documentation is on them.
#[allow(missing_docs)]
mod fields {
    use tock_registers::register_bitfields;

    register_bitfields! [u32,
        /// SMMU_IDR0 (spec 6.3.1): what the SMMU implements.
        pub IDR0 [
            /// Stage-2 translation.
            S2P OFFSET(0) NUMBITS(1) [],
            /// Stage-1 translation.
            S1P OFFSET(1) NUMBITS(1) [],
            /// Translation table formats.
            TTF OFFSET(2) NUMBITS(2) [
                /// AArch32 (LPAE) only.
                AArch32 = 0b01,
                /// AArch64 only.
                AArch64 = 0b10,
                /// Both.
                Both = 0b11
            ],
            /// Coherent access to tables, queues and translated memory.
            COHACC OFFSET(4) NUMBITS(1) [],
            /// Broadcast TLB maintenance.
            BTM OFFSET(5) NUMBITS(1) [],
            /// Hardware translation table updates (access flag, dirty state).
            HTTU OFFSET(6) NUMBITS(2) [],
            /// EL2 stream world.
            HYP OFFSET(9) NUMBITS(1) [],
            /// PCIe ATS.
            ATS OFFSET(10) NUMBITS(1) [],
            /// 16-bit ASIDs.
            ASID16 OFFSET(12) NUMBITS(1) [],
            /// MSIs for queues and errors.
            MSI OFFSET(13) NUMBITS(1) [],
            /// 16-bit VMIDs.
            VMID16 OFFSET(18) NUMBITS(1) [],
            /// Translation table endianness.
            TTENDIAN OFFSET(21) NUMBITS(2) [
                /// Either, per table.
                Mixed = 0b00,
                /// Little-endian only.
                Little = 0b10,
                /// Big-endian only.
                Big = 0b11
            ],
            /// Stall model.
            STALL_MODEL OFFSET(24) NUMBITS(2) [],
            /// Terminate model: 1 if a terminated transaction always aborts.
            TERM_MODEL OFFSET(26) NUMBITS(1) [],
            /// Stream table formats.
            ST_LEVEL OFFSET(27) NUMBITS(2) [
                /// Linear only.
                Linear = 0b00,
                /// Linear and two-level.
                TwoLevel = 0b01
            ]
        ],

        /// SMMU_IDR1 (spec 6.3.2): table and queue sizes.
        pub IDR1 [
            /// Bits of StreamID.
            SIDSIZE OFFSET(0) NUMBITS(6) [],
            /// Bits of SubstreamID.
            SSIDSIZE OFFSET(6) NUMBITS(5) [],
            /// Largest PRI queue, log2 of entries.
            PRIQS OFFSET(11) NUMBITS(5) [],
            /// Largest event queue, log2 of entries.
            EVENTQS OFFSET(16) NUMBITS(5) [],
            /// Largest command queue, log2 of entries.
            CMDQS OFFSET(21) NUMBITS(5) [],
            /// Queue base registers are fixed (read-only).
            QUEUES_PRESET OFFSET(29) NUMBITS(1) [],
            /// Table base registers are fixed (read-only).
            TABLES_PRESET OFFSET(30) NUMBITS(1) []
        ],

        /// SMMU_IDR3 (spec 6.3.4): later features.
        pub IDR3 [
            /// Range-based TLB invalidation.
            RIL OFFSET(10) NUMBITS(1) [],
            /// Stage-2 forced write-back (STE.S2FWB).
            FWB OFFSET(8) NUMBITS(1) [],
            /// Small translation tables (T0SZ up to 48).
            STT OFFSET(9) NUMBITS(1) []
        ],

        /// SMMU_IDR5 (spec 6.3.6): address sizes and granules.
        pub IDR5 [
            /// Output address size (the PARange encoding).
            OAS OFFSET(0) NUMBITS(3) [],
            /// 4 KiB translation granule.
            GRAN4K OFFSET(4) NUMBITS(1) [],
            /// 16 KiB translation granule.
            GRAN16K OFFSET(5) NUMBITS(1) [],
            /// 64 KiB translation granule.
            GRAN64K OFFSET(6) NUMBITS(1) []
        ],

        /// SMMU_CR0 and SMMU_CR0ACK (spec 6.3.9, 6.3.10).
        pub CR0 [
            /// Translation (and the stream table) on; off means SMMU_GBPA applies.
            SMMUEN OFFSET(0) NUMBITS(1) [],
            /// PRI queue on.
            PRIQEN OFFSET(1) NUMBITS(1) [],
            /// Event queue on.
            EVENTQEN OFFSET(2) NUMBITS(1) [],
            /// Command queue on.
            CMDQEN OFFSET(3) NUMBITS(1) [],
            /// ATS checks.
            ATSCHK OFFSET(4) NUMBITS(1) [],
            /// VMID wildcard.
            VMW OFFSET(6) NUMBITS(3) []
        ],

        /// SMMU_CR1 (spec 6.3.11): memory attributes of the SMMU's own accesses
        /// to the queues and the tables.
        pub CR1 [
            /// Queue inner cacheability.
            QUEUE_IC OFFSET(0) NUMBITS(2) [
                /// Non-cacheable.
                NonCacheable = 0b00,
                /// Write-back.
                WriteBack = 0b01,
                /// Write-through.
                WriteThrough = 0b10
            ],
            /// Queue outer cacheability.
            QUEUE_OC OFFSET(2) NUMBITS(2) [
                /// Non-cacheable.
                NonCacheable = 0b00,
                /// Write-back.
                WriteBack = 0b01,
                /// Write-through.
                WriteThrough = 0b10
            ],
            /// Queue shareability.
            QUEUE_SH OFFSET(4) NUMBITS(2) [
                /// Non-shareable.
                NonShareable = 0b00,
                /// Outer shareable.
                Outer = 0b10,
                /// Inner shareable.
                Inner = 0b11
            ],
            /// Table inner cacheability.
            TABLE_IC OFFSET(6) NUMBITS(2) [
                /// Non-cacheable.
                NonCacheable = 0b00,
                /// Write-back.
                WriteBack = 0b01,
                /// Write-through.
                WriteThrough = 0b10
            ],
            /// Table outer cacheability.
            TABLE_OC OFFSET(8) NUMBITS(2) [
                /// Non-cacheable.
                NonCacheable = 0b00,
                /// Write-back.
                WriteBack = 0b01,
                /// Write-through.
                WriteThrough = 0b10
            ],
            /// Table shareability.
            TABLE_SH OFFSET(10) NUMBITS(2) [
                /// Non-shareable.
                NonShareable = 0b00,
                /// Outer shareable.
                Outer = 0b10,
                /// Inner shareable.
                Inner = 0b11
            ]
        ],

        /// SMMU_CR2 (spec 6.3.12).
        pub CR2 [
            /// EL2 stream world uses the EL2&0 (E2H) regime.
            E2H OFFSET(0) NUMBITS(1) [],
            /// Record C_BAD_STREAMID for StreamIDs beyond the stream table.
            RECINVSID OFFSET(1) NUMBITS(1) [],
            /// Private TLB maintenance: ignore broadcast TLB invalidations.
            PTM OFFSET(2) NUMBITS(1) []
        ],

        /// SMMU_GBPA (spec 6.3.14): what happens to every transaction while
        /// SMMU_CR0.SMMUEN is 0.
        pub GBPA [
            /// Memory type override.
            MEMATTR OFFSET(0) NUMBITS(4) [],
            /// Use MEMATTR instead of the incoming memory type.
            MTCFG OFFSET(4) NUMBITS(1) [],
            /// Allocation hints override.
            ALLOCCFG OFFSET(8) NUMBITS(4) [],
            /// Shareability override.
            SHCFG OFFSET(12) NUMBITS(2) [
                /// Non-shareable.
                NonShareable = 0b00,
                /// Use the incoming shareability.
                Incoming = 0b01,
                /// Outer shareable.
                Outer = 0b10,
                /// Inner shareable.
                Inner = 0b11
            ],
            /// Privilege override.
            PRIVCFG OFFSET(16) NUMBITS(2) [],
            /// Instruction/data override.
            INSTCFG OFFSET(18) NUMBITS(2) [],
            /// Abort every transaction (instead of letting it through).
            ABORT OFFSET(20) NUMBITS(1) [],
            /// Write 1 with new values; reads 1 until they take effect.
            UPDATE OFFSET(31) NUMBITS(1) []
        ],

        /// SMMU_IRQ_CTRL and SMMU_IRQ_CTRLACK (spec 6.3.15, 6.3.16).
        pub IRQ_CTRL [
            /// Global error interrupt.
            GERROR_IRQEN OFFSET(0) NUMBITS(1) [],
            /// PRI queue interrupt.
            PRIQ_IRQEN OFFSET(1) NUMBITS(1) [],
            /// Event queue interrupt.
            EVENTQ_IRQEN OFFSET(2) NUMBITS(1) []
        ],

        /// SMMU_GERROR and SMMU_GERRORN (spec 6.3.17, 6.3.18): an error is
        /// active while its bit differs between the two; software acknowledges
        /// it by copying GERROR's bit into GERRORN.
        pub GERROR [
            /// A command could not be processed (see SMMU_CMDQ_CONS.ERR).
            CMDQ_ERR OFFSET(0) NUMBITS(1) [],
            /// An event queue write was aborted.
            EVENTQ_ABT_ERR OFFSET(2) NUMBITS(1) [],
            /// A PRI queue write was aborted.
            PRIQ_ABT_ERR OFFSET(3) NUMBITS(1) [],
            /// A CMD_SYNC MSI write was aborted.
            MSI_CMDQ_ABT_ERR OFFSET(4) NUMBITS(1) [],
            /// An event queue MSI write was aborted.
            MSI_EVENTQ_ABT_ERR OFFSET(5) NUMBITS(1) [],
            /// A PRI queue MSI write was aborted.
            MSI_PRIQ_ABT_ERR OFFSET(6) NUMBITS(1) [],
            /// A GERROR MSI write was aborted.
            MSI_GERROR_ABT_ERR OFFSET(7) NUMBITS(1) [],
            /// The SMMU entered the service failure mode.
            SFM_ERR OFFSET(8) NUMBITS(1) [],
            /// A command queue control page error (ECMDQ).
            CMDQP_ERR OFFSET(9) NUMBITS(1) []
        ],

        /// SMMU_STRTAB_BASE_CFG (spec 6.3.25).
        pub STRTAB_BASE_CFG [
            /// log2 of the number of StreamIDs the table covers.
            LOG2SIZE OFFSET(0) NUMBITS(6) [],
            /// Two-level split point.
            SPLIT OFFSET(6) NUMBITS(5) [],
            /// Table format.
            FMT OFFSET(16) NUMBITS(2) [
                /// One array of STEs indexed by StreamID.
                Linear = 0b00,
                /// Level-1 descriptors pointing at arrays of STEs.
                TwoLevel = 0b01
            ]
        ],

        /// SMMU_CMDQ_PROD (spec 6.3.21).
        pub CMDQ_PROD [
            /// Write index with the wrap bit above it (bits [log2size:0]).
            WR OFFSET(0) NUMBITS(20) []
        ],

        /// SMMU_CMDQ_CONS (spec 6.3.22).
        pub CMDQ_CONS [
            /// Read index with the wrap bit above it.
            RD OFFSET(0) NUMBITS(20) [],
            /// Why the command at RD failed ([`crate::CommandError`]).
            ERR OFFSET(24) NUMBITS(7) []
        ],

        /// SMMU_EVENTQ_PROD (spec 6.3.26).
        pub EVENTQ_PROD [
            /// Write index with the wrap bit above it.
            WR OFFSET(0) NUMBITS(20) [],
            /// Toggled by the SMMU when the queue overflowed.
            OVFLG OFFSET(31) NUMBITS(1) []
        ],

        /// SMMU_EVENTQ_CONS (spec 6.3.27).
        pub EVENTQ_CONS [
            /// Read index with the wrap bit above it.
            RD OFFSET(0) NUMBITS(20) [],
            /// Software's copy of EVENTQ_PROD.OVFLG: the overflow was seen.
            OVACKFLG OFFSET(31) NUMBITS(1) []
        ]
    ];

    register_bitfields! [u64,
        /// SMMU_STRTAB_BASE (spec 6.3.24).
        pub STRTAB_BASE [
            /// Physical address bits \[51:6\] of the stream table.
            ADDR OFFSET(6) NUMBITS(46) [],
            /// Read-allocate hint.
            RA OFFSET(62) NUMBITS(1) []
        ],

        /// SMMU_CMDQ_BASE and SMMU_EVENTQ_BASE (spec 6.3.20, 6.3.23).
        pub QUEUE_BASE [
            /// log2 of the number of entries.
            LOG2SIZE OFFSET(0) NUMBITS(5) [],
            /// Physical address bits \[51:5\] of the queue.
            ADDR OFFSET(5) NUMBITS(47) [],
            /// Read-allocate (command queue) or write-allocate (event queue) hint.
            ALLOCATE OFFSET(62) NUMBITS(1) []
        ]
    ];
}

register_structs! {
    /// Page 0 of the programming interface (spec 6.2, Table 6.1).
    pub Page0 {
        /// SMMU_IDR0.
        (0x00 => pub idr0: ReadOnly<u32, IDR0::Register>),
        /// SMMU_IDR1.
        (0x04 => pub idr1: ReadOnly<u32, IDR1::Register>),
        /// SMMU_IDR2.
        (0x08 => pub idr2: ReadOnly<u32>),
        /// SMMU_IDR3.
        (0x0c => pub idr3: ReadOnly<u32, IDR3::Register>),
        /// SMMU_IDR4 (implementation defined).
        (0x10 => pub idr4: ReadOnly<u32>),
        /// SMMU_IDR5.
        (0x14 => pub idr5: ReadOnly<u32, IDR5::Register>),
        /// SMMU_IIDR: implementer and product.
        (0x18 => pub iidr: ReadOnly<u32>),
        /// SMMU_AIDR: architecture revision (0 = SMMUv3.0).
        (0x1c => pub aidr: ReadOnly<u32>),
        /// SMMU_CR0.
        (0x20 => pub cr0: ReadWrite<u32, CR0::Register>),
        /// SMMU_CR0ACK: SMMU_CR0 once the SMMU has acted on it.
        (0x24 => pub cr0ack: ReadOnly<u32, CR0::Register>),
        /// SMMU_CR1.
        (0x28 => pub cr1: ReadWrite<u32, CR1::Register>),
        /// SMMU_CR2.
        (0x2c => pub cr2: ReadWrite<u32, CR2::Register>),
        (0x30 => _reserved0),
        /// SMMU_STATUSR.
        (0x40 => pub statusr: ReadOnly<u32>),
        /// SMMU_GBPA.
        (0x44 => pub gbpa: ReadWrite<u32, GBPA::Register>),
        /// SMMU_AGBPA (implementation defined).
        (0x48 => pub agbpa: ReadWrite<u32>),
        (0x4c => _reserved1),
        /// SMMU_IRQ_CTRL.
        (0x50 => pub irq_ctrl: ReadWrite<u32, IRQ_CTRL::Register>),
        /// SMMU_IRQ_CTRLACK.
        (0x54 => pub irq_ctrlack: ReadOnly<u32, IRQ_CTRL::Register>),
        (0x58 => _reserved2),
        /// SMMU_GERROR.
        (0x60 => pub gerror: ReadOnly<u32, GERROR::Register>),
        /// SMMU_GERRORN.
        (0x64 => pub gerrorn: ReadWrite<u32, GERROR::Register>),
        /// SMMU_GERROR_IRQ_CFG0: MSI address.
        (0x68 => pub gerror_irq_cfg0: ReadWrite<u64>),
        /// SMMU_GERROR_IRQ_CFG1: MSI data.
        (0x70 => pub gerror_irq_cfg1: ReadWrite<u32>),
        /// SMMU_GERROR_IRQ_CFG2: MSI attributes.
        (0x74 => pub gerror_irq_cfg2: ReadWrite<u32>),
        (0x78 => _reserved3),
        /// SMMU_STRTAB_BASE.
        (0x80 => pub strtab_base: ReadWrite<u64, STRTAB_BASE::Register>),
        /// SMMU_STRTAB_BASE_CFG.
        (0x88 => pub strtab_base_cfg: ReadWrite<u32, STRTAB_BASE_CFG::Register>),
        (0x8c => _reserved4),
        /// SMMU_CMDQ_BASE.
        (0x90 => pub cmdq_base: ReadWrite<u64, QUEUE_BASE::Register>),
        /// SMMU_CMDQ_PROD.
        (0x98 => pub cmdq_prod: ReadWrite<u32, CMDQ_PROD::Register>),
        /// SMMU_CMDQ_CONS.
        (0x9c => pub cmdq_cons: ReadWrite<u32, CMDQ_CONS::Register>),
        /// SMMU_EVENTQ_BASE.
        (0xa0 => pub eventq_base: ReadWrite<u64, QUEUE_BASE::Register>),
        (0xa8 => _reserved5),
        /// SMMU_EVENTQ_IRQ_CFG0: MSI address.
        (0xb0 => pub eventq_irq_cfg0: ReadWrite<u64>),
        /// SMMU_EVENTQ_IRQ_CFG1: MSI data.
        (0xb8 => pub eventq_irq_cfg1: ReadWrite<u32>),
        /// SMMU_EVENTQ_IRQ_CFG2: MSI attributes.
        (0xbc => pub eventq_irq_cfg2: ReadWrite<u32>),
        (0xc0 => _reserved6),
        (0x1_0000 => @END),
    },

    /// Page 1 of the programming interface: the event and PRI queues'
    /// indexes, apart so that they can be given to another agent.
    pub Page1 {
        (0x00 => _reserved0),
        /// SMMU_EVENTQ_PROD (0x100A8).
        (0xa8 => pub eventq_prod: ReadWrite<u32, EVENTQ_PROD::Register>),
        /// SMMU_EVENTQ_CONS (0x100AC).
        (0xac => pub eventq_cons: ReadWrite<u32, EVENTQ_CONS::Register>),
        (0xb0 => _reserved1),
        (0x1_0000 => @END),
    }
}

/// The whole programming interface: what a device tree's `arm,smmu-v3`
/// node's `reg` covers (at least 128 KiB).
#[repr(C)]
pub struct SmmuRegisters {
    /// Page 0, at the base.
    pub page0: Page0,
    /// Page 1, 64 KiB above it.
    pub page1: Page1,
}

impl core::fmt::Debug for SmmuRegisters {
    /// Prints where the block is; reading registers to print them could
    /// have side effects on other implementations' registers, so none is.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SmmuRegisters @ {:p}", self)
    }
}

/// Bytes of registers an SMMUv3 has at least: pages 0 and 1.
pub const SMMU_REGISTERS_SIZE: u64 = 0x2_0000;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};
    use tock_registers::LocalRegisterCopy;

    #[test]
    fn pages_are_64_kib_and_the_block_is_128_kib() {
        assert_eq!(size_of::<Page0>(), 0x1_0000);
        assert_eq!(size_of::<Page1>(), 0x1_0000);
        assert_eq!(size_of::<SmmuRegisters>() as u64, SMMU_REGISTERS_SIZE);
    }

    /// Offsets from the spec's Table 6.1, written out rather than derived.
    #[test]
    fn registers_sit_at_the_spec_offsets() {
        assert_eq!(offset_of!(Page0, idr0), 0x00);
        assert_eq!(offset_of!(Page0, idr1), 0x04);
        assert_eq!(offset_of!(Page0, idr3), 0x0c);
        assert_eq!(offset_of!(Page0, idr5), 0x14);
        assert_eq!(offset_of!(Page0, cr0), 0x20);
        assert_eq!(offset_of!(Page0, cr0ack), 0x24);
        assert_eq!(offset_of!(Page0, cr1), 0x28);
        assert_eq!(offset_of!(Page0, cr2), 0x2c);
        assert_eq!(offset_of!(Page0, gbpa), 0x44);
        assert_eq!(offset_of!(Page0, irq_ctrl), 0x50);
        assert_eq!(offset_of!(Page0, gerror), 0x60);
        assert_eq!(offset_of!(Page0, gerrorn), 0x64);
        assert_eq!(offset_of!(Page0, strtab_base), 0x80);
        assert_eq!(offset_of!(Page0, strtab_base_cfg), 0x88);
        assert_eq!(offset_of!(Page0, cmdq_base), 0x90);
        assert_eq!(offset_of!(Page0, cmdq_prod), 0x98);
        assert_eq!(offset_of!(Page0, cmdq_cons), 0x9c);
        assert_eq!(offset_of!(Page0, eventq_base), 0xa0);
        assert_eq!(
            offset_of!(SmmuRegisters, page1) + offset_of!(Page1, eventq_prod),
            0x1_00a8
        );
        assert_eq!(
            offset_of!(SmmuRegisters, page1) + offset_of!(Page1, eventq_cons),
            0x1_00ac
        );
    }

    #[test]
    fn field_positions_match_the_spec() {
        // SMMUEN | EVENTQEN | CMDQEN = bits 0, 2 and 3.
        let cr0 = CR0::SMMUEN::SET + CR0::EVENTQEN::SET + CR0::CMDQEN::SET;
        assert_eq!(cr0.value, 0b1101);
        // GBPA: ABORT is bit 20, UPDATE bit 31, SHCFG bits [13:12].
        let gbpa = GBPA::ABORT::SET + GBPA::UPDATE::SET + GBPA::SHCFG::Incoming;
        assert_eq!(gbpa.value, 0x8010_1000);
        // CR1: write-back inner and outer, inner shareable, for both.
        let cr1 = CR1::QUEUE_IC::WriteBack
            + CR1::QUEUE_OC::WriteBack
            + CR1::QUEUE_SH::Inner
            + CR1::TABLE_IC::WriteBack
            + CR1::TABLE_OC::WriteBack
            + CR1::TABLE_SH::Inner;
        assert_eq!(cr1.value, 0b11_01_01_11_01_01);
        // A 16 KiB linear table of 256 entries at 0x4008_0000, RA.
        let base = STRTAB_BASE::ADDR.val(0x4008_0000 >> 6) + STRTAB_BASE::RA::SET;
        assert_eq!(base.value, 0x4000_0000_4008_0000);
        let cfg = STRTAB_BASE_CFG::FMT::Linear + STRTAB_BASE_CFG::LOG2SIZE.val(8);
        assert_eq!(cfg.value, 8);
        // A 256-entry queue at 0x4010_0000.
        let q = QUEUE_BASE::ADDR.val(0x4010_0000 >> 5) + QUEUE_BASE::LOG2SIZE.val(8);
        assert_eq!(q.value, 0x4010_0008);
        // CMDQ_CONS.ERR is bits [30:24].
        let cons = LocalRegisterCopy::<u32, CMDQ_CONS::Register>::new(0x0100_0005);
        assert_eq!(cons.read(CMDQ_CONS::ERR), 1);
        assert_eq!(cons.read(CMDQ_CONS::RD), 5);
        // EVENTQ_PROD.OVFLG is bit 31.
        let prod = LocalRegisterCopy::<u32, EVENTQ_PROD::Register>::new(0x8000_0003);
        assert!(prod.is_set(EVENTQ_PROD::OVFLG));
        // IDR0 as QEMU 10 sets it with stage=2: S2P, TTF AArch64, COHACC,
        // ASID16, VMID16, TTENDIAN little, STALL_MODEL 1, TERM_MODEL,
        // ST_LEVEL two-level.
        let idr0 = LocalRegisterCopy::<u32, IDR0::Register>::new(0x0d44_1019);
        assert!(idr0.is_set(IDR0::S2P));
        assert!(!idr0.is_set(IDR0::S1P));
        assert_eq!(
            idr0.read_as_enum(IDR0::TTF),
            Some(IDR0::TTF::Value::AArch64)
        );
        assert!(idr0.is_set(IDR0::VMID16));
        assert_eq!(
            idr0.read_as_enum(IDR0::ST_LEVEL),
            Some(IDR0::ST_LEVEL::Value::TwoLevel)
        );
    }
}
