//! Command queue entries (spec chapter 4): 16 bytes, two little-endian
//! 64-bit words, the opcode in word 0 bits \[7:0\].

use crate::{bit, bits, field, StreamId};
use addr::IntermediatePhysAddr;
use core::fmt;
use id_alloc::{Asid, Vmid};

/// Opcodes (spec 4.1, Table 4.1).
mod opcode {
    pub const PREFETCH_CONFIG: u8 = 0x01;
    pub const CFGI_STE: u8 = 0x03;
    /// CMD_CFGI_STE_RANGE; CMD_CFGI_ALL is this with Range = 31.
    pub const CFGI_STE_RANGE: u8 = 0x04;
    pub const CFGI_CD: u8 = 0x05;
    pub const CFGI_CD_ALL: u8 = 0x06;
    pub const TLBI_NH_ASID: u8 = 0x11;
    pub const TLBI_EL2_ALL: u8 = 0x20;
    pub const TLBI_EL2_ASID: u8 = 0x21;
    pub const TLBI_S12_VMALL: u8 = 0x28;
    pub const TLBI_S2_IPA: u8 = 0x2a;
    pub const TLBI_NSNH_ALL: u8 = 0x30;
    pub const SYNC: u8 = 0x46;
}

/// CMD_CFGI_STE_RANGE's Range for "every StreamID" (spec 4.3.3).
const RANGE_ALL: u64 = 31;

/// The commands this hypervisor issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// CMD_PREFETCH_CONFIG (spec 4.2.1): a hint to fetch the stream's
    /// configuration.
    PrefetchConfig {
        /// The stream.
        stream: StreamId,
    },
    /// CMD_CFGI_STE (spec 4.3.1): forget any cached copy of the stream's
    /// STE (and, with `leaf` = false, of the level-1 descriptor leading to
    /// it in a two-level table).
    CfgiSte {
        /// The stream.
        stream: StreamId,
        /// Only the STE itself.
        leaf: bool,
    },
    /// CMD_CFGI_ALL (spec 4.3.3): forget every cached STE and CD.
    CfgiAll,
    /// CMD_CFGI_CD (spec 4.3.4): forget any cached copy of one CD of the
    /// stream (and, with `leaf` = false, of the level-1 CD table
    /// descriptor leading to it).
    CfgiCd {
        /// The stream.
        stream: StreamId,
        /// The SubstreamID (20 bits; 0 with a one-entry CD table).
        ssid: u32,
        /// Only the CD itself.
        leaf: bool,
    },
    /// CMD_CFGI_CD_ALL (spec 4.3.5): forget every cached CD of the stream.
    CfgiCdAll {
        /// The stream.
        stream: StreamId,
    },
    /// CMD_TLBI_NH_ASID (spec 4.4.2): invalidate the Non-secure EL1&0
    /// stage-1 TLB entries tagged with the ASID and the VMID (stage-1-only
    /// entries are tagged with their STE's S2VMID).
    TlbiNhAsid {
        /// The VMID.
        vmid: Vmid,
        /// The ASID.
        asid: Asid,
    },
    /// CMD_TLBI_EL2_ALL (spec 4.4.6): invalidate every EL2 and EL2-E2H
    /// TLB entry.
    TlbiEl2All,
    /// CMD_TLBI_EL2_ASID (spec 4.4.7): invalidate the EL2-E2H TLB entries
    /// tagged with the ASID. QEMU (up to at least 10.1) accepts it and
    /// does nothing, having no EL2 StreamWorld.
    TlbiEl2Asid {
        /// The ASID.
        asid: Asid,
    },
    /// CMD_TLBI_S12_VMALL (spec 4.4.10): invalidate every TLB entry tagged
    /// with the VMID, stage 1 and stage 2.
    TlbiS12Vmall {
        /// The VMID.
        vmid: Vmid,
    },
    /// CMD_TLBI_S2_IPA (spec 4.4.11): invalidate the stage-2 entries for
    /// one IPA page of the VMID.
    TlbiS2Ipa {
        /// The VMID.
        vmid: Vmid,
        /// The IPA (bits \[51:12\] are used).
        ipa: IntermediatePhysAddr,
        /// Only last-level (leaf) entries; `false` also drops walk caches,
        /// as a change of a table entry needs.
        leaf: bool,
    },
    /// CMD_TLBI_NSNH_ALL (spec 4.4.2): invalidate every Non-secure,
    /// non-Hyp TLB entry.
    TlbiNsnhAll,
    /// CMD_SYNC (spec 4.7.3) with CS = SIG_NONE: completes when every
    /// command before it has; software sees that by SMMU_CMDQ_CONS moving
    /// past it (no MSI, no interrupt, no WFE).
    Sync,
}

impl Command {
    /// The opcode.
    pub const fn opcode(&self) -> u8 {
        match self {
            Self::PrefetchConfig { .. } => opcode::PREFETCH_CONFIG,
            Self::CfgiSte { .. } => opcode::CFGI_STE,
            Self::CfgiAll => opcode::CFGI_STE_RANGE,
            Self::CfgiCd { .. } => opcode::CFGI_CD,
            Self::CfgiCdAll { .. } => opcode::CFGI_CD_ALL,
            Self::TlbiNhAsid { .. } => opcode::TLBI_NH_ASID,
            Self::TlbiEl2All => opcode::TLBI_EL2_ALL,
            Self::TlbiEl2Asid { .. } => opcode::TLBI_EL2_ASID,
            Self::TlbiS12Vmall { .. } => opcode::TLBI_S12_VMALL,
            Self::TlbiS2Ipa { .. } => opcode::TLBI_S2_IPA,
            Self::TlbiNsnhAll => opcode::TLBI_NSNH_ALL,
            Self::Sync => opcode::SYNC,
        }
    }

    /// The two words to put in the command queue.
    pub const fn encode(&self) -> [u64; 2] {
        let op = self.opcode() as u64;
        match *self {
            // SSec (bit 10) and SSV 0: Non-secure, no SubstreamID.
            Self::PrefetchConfig { stream } => [op | field(stream.0 as u64, 63, 32), 0],
            Self::CfgiSte { stream, leaf } => [op | field(stream.0 as u64, 63, 32), leaf as u64],
            Self::CfgiAll => [op, RANGE_ALL],
            // SSec (bit 10) 0: Non-secure.
            Self::CfgiCd { stream, ssid, leaf } => [
                op | field(ssid as u64, 31, 12) | field(stream.0 as u64, 63, 32),
                leaf as u64,
            ],
            Self::CfgiCdAll { stream } => [op | field(stream.0 as u64, 63, 32), 0],
            Self::TlbiNhAsid { vmid, asid } => [
                op | field(vmid.get() as u64, 47, 32) | field(asid.get() as u64, 63, 48),
                0,
            ],
            Self::TlbiEl2All => [op, 0],
            Self::TlbiEl2Asid { asid } => [op | field(asid.get() as u64, 63, 48), 0],
            Self::TlbiS12Vmall { vmid } => [op | field(vmid.get() as u64, 47, 32), 0],
            Self::TlbiS2Ipa { vmid, ipa, leaf } => [
                // NUM and SCALE 0 and TG 0: one address, not a range.
                op | field(vmid.get() as u64, 47, 32),
                // TTL 0: any level.
                (ipa.get() & field(u64::MAX, 51, 12)) | leaf as u64,
            ],
            Self::TlbiNsnhAll => [op, 0],
            // CS = 0b00 (SIG_NONE), MSH, MSIAttr, MSIData and MSIAddr 0.
            Self::Sync => [op, 0],
        }
    }

    /// Reads back a command this crate encodes; `None` for anything else
    /// (for reporting which command the SMMU refused).
    pub fn decode(words: [u64; 2]) -> Option<Command> {
        let [w0, w1] = words;
        // 32 and 16 bits: the casts are lossless.
        let stream = StreamId(bits(w0, 63, 32) as u32);
        let vmid = Vmid::new(bits(w0, 47, 32) as u16);
        let asid = Asid::new(bits(w0, 63, 48) as u16);
        Some(match bits(w0, 7, 0) as u8 {
            opcode::PREFETCH_CONFIG => Self::PrefetchConfig { stream },
            opcode::CFGI_STE => Self::CfgiSte {
                stream,
                leaf: bit(w1, 0),
            },
            opcode::CFGI_STE_RANGE if bits(w1, 4, 0) == RANGE_ALL => Self::CfgiAll,
            opcode::CFGI_CD => Self::CfgiCd {
                stream,
                // 20 bits: the cast is lossless.
                ssid: bits(w0, 31, 12) as u32,
                leaf: bit(w1, 0),
            },
            opcode::CFGI_CD_ALL => Self::CfgiCdAll { stream },
            opcode::TLBI_NH_ASID => Self::TlbiNhAsid { vmid, asid },
            opcode::TLBI_EL2_ALL => Self::TlbiEl2All,
            opcode::TLBI_EL2_ASID => Self::TlbiEl2Asid { asid },
            opcode::TLBI_S12_VMALL => Self::TlbiS12Vmall { vmid },
            opcode::TLBI_S2_IPA => Self::TlbiS2Ipa {
                vmid,
                ipa: IntermediatePhysAddr(w1 & field(u64::MAX, 51, 12)),
                leaf: bit(w1, 0),
            },
            opcode::TLBI_NSNH_ALL => Self::TlbiNsnhAll,
            opcode::SYNC => Self::Sync,
            _ => return None,
        })
    }

    /// The spec's name for an opcode, for messages.
    pub const fn name(opcode: u8) -> &'static str {
        match opcode {
            opcode::PREFETCH_CONFIG => "CMD_PREFETCH_CONFIG",
            0x02 => "CMD_PREFETCH_ADDR",
            opcode::CFGI_STE => "CMD_CFGI_STE",
            opcode::CFGI_STE_RANGE => "CMD_CFGI_STE_RANGE",
            opcode::CFGI_CD => "CMD_CFGI_CD",
            opcode::CFGI_CD_ALL => "CMD_CFGI_CD_ALL",
            0x07 => "CMD_CFGI_VMS_PIDM",
            0x10 => "CMD_TLBI_NH_ALL",
            opcode::TLBI_NH_ASID => "CMD_TLBI_NH_ASID",
            0x12 => "CMD_TLBI_NH_VA",
            0x13 => "CMD_TLBI_NH_VAA",
            0x18 => "CMD_TLBI_EL3_ALL",
            0x1a => "CMD_TLBI_EL3_VA",
            opcode::TLBI_EL2_ALL => "CMD_TLBI_EL2_ALL",
            opcode::TLBI_EL2_ASID => "CMD_TLBI_EL2_ASID",
            0x22 => "CMD_TLBI_EL2_VA",
            0x23 => "CMD_TLBI_EL2_VAA",
            opcode::TLBI_S12_VMALL => "CMD_TLBI_S12_VMALL",
            opcode::TLBI_S2_IPA => "CMD_TLBI_S2_IPA",
            opcode::TLBI_NSNH_ALL => "CMD_TLBI_NSNH_ALL",
            0x40 => "CMD_ATC_INV",
            0x41 => "CMD_PRI_RESP",
            0x44 => "CMD_RESUME",
            0x45 => "CMD_STALL_TERM",
            opcode::SYNC => "CMD_SYNC",
            _ => "an unknown command",
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Command::name(self.opcode()))?;
        match self {
            Self::PrefetchConfig { stream } => write!(f, " stream {stream}"),
            Self::CfgiSte { stream, leaf } => {
                write!(f, " stream {stream}{}", if *leaf { " leaf" } else { "" })
            }
            Self::CfgiAll => write!(f, " (all)"),
            Self::CfgiCd { stream, ssid, leaf } => write!(
                f,
                " stream {stream} SSID {ssid:#x}{}",
                if *leaf { " leaf" } else { "" }
            ),
            Self::CfgiCdAll { stream } => write!(f, " stream {stream}"),
            Self::TlbiNhAsid { vmid, asid } => write!(f, " VMID {vmid} ASID {asid}"),
            Self::TlbiEl2Asid { asid } => write!(f, " ASID {asid}"),
            Self::TlbiS12Vmall { vmid } => write!(f, " VMID {vmid}"),
            Self::TlbiS2Ipa { vmid, ipa, leaf } => write!(
                f,
                " VMID {vmid} IPA {ipa}{}",
                if *leaf { " leaf" } else { "" }
            ),
            Self::TlbiNsnhAll | Self::TlbiEl2All | Self::Sync => Ok(()),
        }
    }
}

/// Why the SMMU stopped at a command: SMMU_CMDQ_CONS.ERR (spec 4.8,
/// Table 4.2), reported with SMMU_GERROR.CMDQ_ERR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// CERROR_ILL: unknown opcode, reserved field, or a command the SMMU
    /// does not support (e.g. a stage-2 TLBI without stage 2).
    Illegal,
    /// CERROR_ABT: the command could not be read from memory.
    Abort,
    /// CERROR_ATC_INV_SYNC: an ATC invalidation before a CMD_SYNC failed.
    AtcInvalidationSync,
    /// Any other (implementation defined) code.
    Other(u8),
}

impl CommandError {
    /// Decodes SMMU_CMDQ_CONS.ERR; `None` for 0, CERROR_NONE.
    pub const fn from_code(code: u8) -> Option<CommandError> {
        match code {
            0 => None,
            1 => Some(Self::Illegal),
            2 => Some(Self::Abort),
            3 => Some(Self::AtcInvalidationSync),
            other => Some(Self::Other(other)),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Illegal => write!(f, "illegal command (CERROR_ILL)"),
            Self::Abort => write!(f, "command fetch aborted (CERROR_ABT)"),
            Self::AtcInvalidationSync => write!(f, "ATC invalidation failed (CERROR_ATC_INV_SYNC)"),
            Self::Other(code) => write!(f, "command error {code:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    /// Encodings from the spec's command layouts, computed by hand.
    #[test]
    fn commands_encode_as_the_spec_lays_them_out() {
        // CMD_CFGI_STE 0x03, StreamID in [63:32], Leaf in word 1 bit 0.
        assert_eq!(
            Command::CfgiSte {
                stream: StreamId(0x28),
                leaf: true
            }
            .encode(),
            [0x0000_0028_0000_0003, 1]
        );
        // CMD_CFGI_ALL: CMD_CFGI_STE_RANGE 0x04 with Range 31.
        assert_eq!(Command::CfgiAll.encode(), [0x04, 0x1f]);
        // CMD_TLBI_S12_VMALL 0x28, VMID in [47:32].
        assert_eq!(
            Command::TlbiS12Vmall {
                vmid: Vmid::new(0xabcd)
            }
            .encode(),
            [0x0000_abcd_0000_0028, 0]
        );
        // CMD_TLBI_S2_IPA 0x2a, VMID [47:32]; word 1: IPA [51:12], Leaf.
        assert_eq!(
            Command::TlbiS2Ipa {
                vmid: Vmid::new(5),
                ipa: IntermediatePhysAddr(0x1234_5678_9abc),
                leaf: true
            }
            .encode(),
            [0x0000_0005_0000_002a, 0x1234_5678_9001]
        );
        // Bits above 51 of the IPA are dropped.
        assert_eq!(
            Command::TlbiS2Ipa {
                vmid: Vmid::new(5),
                ipa: IntermediatePhysAddr(0xffff_0000_0000_1000),
                leaf: false
            }
            .encode()[1],
            0x000f_0000_0000_1000
        );
        assert_eq!(Command::TlbiNsnhAll.encode(), [0x30, 0]);
        // CMD_CFGI_CD 0x05: SSID [31:12], StreamID [63:32]; Leaf word 1
        // bit 0.
        assert_eq!(
            Command::CfgiCd {
                stream: StreamId(0x40),
                ssid: 0,
                leaf: true
            }
            .encode(),
            [0x0000_0040_0000_0005, 1]
        );
        assert_eq!(
            Command::CfgiCd {
                stream: StreamId(0x40),
                ssid: 0xabcde,
                leaf: false
            }
            .encode(),
            [0x0000_0040_abcd_e005, 0]
        );
        // An SSID wider than 20 bits is cut, never spilling into the
        // StreamID.
        assert_eq!(
            Command::CfgiCd {
                stream: StreamId(0),
                ssid: 0xfff_ffff,
                leaf: false
            }
            .encode()[0],
            0xffff_f005
        );
        // CMD_CFGI_CD_ALL 0x06: StreamID [63:32].
        assert_eq!(
            Command::CfgiCdAll {
                stream: StreamId(0x40)
            }
            .encode(),
            [0x0000_0040_0000_0006, 0]
        );
        // CMD_TLBI_NH_ASID 0x11: VMID [47:32], ASID [63:48].
        assert_eq!(
            Command::TlbiNhAsid {
                vmid: Vmid::new(0),
                asid: Asid::new(0xbeef)
            }
            .encode(),
            [0xbeef_0000_0000_0011, 0]
        );
        assert_eq!(
            Command::TlbiNhAsid {
                vmid: Vmid::new(0x12),
                asid: Asid::new(3)
            }
            .encode(),
            [0x0003_0012_0000_0011, 0]
        );
        // CMD_TLBI_EL2_ALL 0x20; CMD_TLBI_EL2_ASID 0x21, ASID [63:48].
        assert_eq!(Command::TlbiEl2All.encode(), [0x20, 0]);
        assert_eq!(
            Command::TlbiEl2Asid {
                asid: Asid::new(0xbeef)
            }
            .encode(),
            [0xbeef_0000_0000_0021, 0]
        );
        // CMD_SYNC 0x46, CS 0 (SIG_NONE): nothing else set.
        assert_eq!(Command::Sync.encode(), [0x46, 0]);
        assert_eq!(
            Command::PrefetchConfig {
                stream: StreamId(0xffff_ffff)
            }
            .encode(),
            [0xffff_ffff_0000_0001, 0]
        );
    }

    #[test]
    fn commands_decode_back() {
        let all = [
            Command::PrefetchConfig {
                stream: StreamId(9),
            },
            Command::CfgiSte {
                stream: StreamId(0x10),
                leaf: false,
            },
            Command::CfgiAll,
            Command::TlbiS12Vmall { vmid: Vmid::new(1) },
            Command::TlbiS2Ipa {
                vmid: Vmid::new(2),
                ipa: IntermediatePhysAddr(0x8000_0000),
                leaf: false,
            },
            Command::TlbiNsnhAll,
            Command::Sync,
            Command::CfgiCd {
                stream: StreamId(0x41),
                ssid: 0x12345,
                leaf: true,
            },
            Command::CfgiCdAll {
                stream: StreamId(0x41),
            },
            Command::TlbiNhAsid {
                vmid: Vmid::new(7),
                asid: Asid::new(0x1234),
            },
            Command::TlbiEl2All,
            Command::TlbiEl2Asid {
                asid: Asid::new(0xff),
            },
        ];
        for command in all {
            assert_eq!(Command::decode(command.encode()), Some(command));
        }
        assert_eq!(Command::decode([0x07, 0]), None);
        // CFGI_STE_RANGE with another range is not CFGI_ALL.
        assert_eq!(Command::decode([0x04, 3]), None);
    }

    #[test]
    fn commands_print() {
        assert_eq!(
            Command::TlbiS2Ipa {
                vmid: Vmid::new(2),
                ipa: IntermediatePhysAddr(0x8000_0000),
                leaf: true
            }
            .to_string(),
            "CMD_TLBI_S2_IPA VMID 0x2 IPA 0x80000000 leaf"
        );
        assert_eq!(Command::Sync.to_string(), "CMD_SYNC");
        assert_eq!(
            Command::CfgiCd {
                stream: StreamId(0x40),
                ssid: 0,
                leaf: true
            }
            .to_string(),
            "CMD_CFGI_CD stream 0x40 SSID 0x0 leaf"
        );
        assert_eq!(
            Command::TlbiEl2Asid { asid: Asid::new(5) }.to_string(),
            "CMD_TLBI_EL2_ASID ASID 0x5"
        );
        assert_eq!(
            Command::TlbiNhAsid {
                vmid: Vmid::new(0),
                asid: Asid::new(5)
            }
            .to_string(),
            "CMD_TLBI_NH_ASID VMID 0x0 ASID 0x5"
        );
        assert_eq!(Command::TlbiEl2All.to_string(), "CMD_TLBI_EL2_ALL");
        assert_eq!(Command::name(0x45), "CMD_STALL_TERM");
        assert_eq!(Command::name(0xff), "an unknown command");
    }

    #[test]
    fn command_errors_decode() {
        assert_eq!(CommandError::from_code(0), None);
        assert_eq!(CommandError::from_code(1), Some(CommandError::Illegal));
        assert_eq!(CommandError::from_code(2), Some(CommandError::Abort));
        assert_eq!(
            CommandError::from_code(3),
            Some(CommandError::AtcInvalidationSync)
        );
        assert_eq!(
            CommandError::from_code(0x7f),
            Some(CommandError::Other(0x7f))
        );
        assert_eq!(
            CommandError::Illegal.to_string(),
            "illegal command (CERROR_ILL)"
        );
    }

    proptest! {
        #[test]
        fn decoding_any_words_never_panics(w0 in any::<u64>(), w1 in any::<u64>()) {
            if let Some(command) = Command::decode([w0, w1]) {
                prop_assert_eq!(u64::from(command.opcode()), w0 & 0xff);
                let _ = command.to_string();
            }
        }
    }
}
