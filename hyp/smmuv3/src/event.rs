//! Event queue records (spec 7.3): 32 bytes, four little-endian 64-bit
//! words. Common to all: word 0 holds the event number \[7:0\], SSV \[11\],
//! SubstreamID \[31:12\] and StreamID \[63:32\]. Translation-related records
//! add, in word 1, STAG \[15:0\], Stall \[31\], PnU \[33\], InD \[34\], RnW \[35\],
//! S2 \[39\] and CLASS \[41:40\]; in word 2 the input address; in word 3 the
//! IPA \[51:12\] (stage-2 faults) or the fetch address \[51:3\] (external
//! aborts on table and structure fetches).

use crate::{bit, bits, StreamId};
use addr::{IntermediatePhysAddr, PhysAddr};
use core::fmt;

/// Event numbers (spec 7.3, Table 7.1).
mod id {
    pub const F_UUT: u8 = 0x01;
    pub const C_BAD_STREAMID: u8 = 0x02;
    pub const F_STE_FETCH: u8 = 0x03;
    pub const C_BAD_STE: u8 = 0x04;
    pub const F_BAD_ATS_TREQ: u8 = 0x05;
    pub const F_STREAM_DISABLED: u8 = 0x06;
    pub const F_TRANSL_FORBIDDEN: u8 = 0x07;
    pub const C_BAD_SUBSTREAMID: u8 = 0x08;
    pub const F_CD_FETCH: u8 = 0x09;
    pub const C_BAD_CD: u8 = 0x0a;
    pub const F_WALK_EABT: u8 = 0x0b;
    pub const F_TRANSLATION: u8 = 0x10;
    pub const F_ADDR_SIZE: u8 = 0x11;
    pub const F_ACCESS: u8 = 0x12;
    pub const F_PERMISSION: u8 = 0x13;
    pub const F_TLB_CONFLICT: u8 = 0x20;
    pub const F_CFG_CONFLICT: u8 = 0x21;
    pub const E_PAGE_REQUEST: u8 = 0x24;
    pub const F_VMS_FETCH: u8 = 0x25;
}

/// Whether the faulting transaction read or wrote (RnW).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// RnW = 1.
    Read,
    /// RnW = 0.
    Write,
}

impl Access {
    const fn from_rnw(rnw: bool) -> Access {
        if rnw {
            Self::Read
        } else {
            Self::Write
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
        })
    }
}

/// Which translation fault (spec 7.3.12 to 7.3.16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// F_TRANSLATION: no valid descriptor (the IPA is not mapped).
    Translation,
    /// F_ADDR_SIZE: an address beyond the configured input or output size.
    AddressSize,
    /// F_ACCESS: a descriptor's access flag is 0.
    AccessFlag,
    /// F_PERMISSION: the descriptor forbids the access.
    Permission,
    /// F_WALK_EABT: a table walk's memory access was aborted.
    WalkExternalAbort,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Translation => "translation fault",
            Self::AddressSize => "address size fault",
            Self::AccessFlag => "access flag fault",
            Self::Permission => "permission fault",
            Self::WalkExternalAbort => "external abort on a table walk",
        })
    }
}

/// What the SMMU was doing when a fault hit (CLASS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultClass {
    /// 0b00: fetching a context descriptor.
    ContextDescriptor,
    /// 0b01: a stage-1 table walk (a stage-2 fault on its IPA).
    TableWalk,
    /// 0b10: translating the transaction's own input address.
    InputAddress,
    /// 0b11: reserved.
    Reserved,
}

/// A translation-related fault record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TranslationFault {
    /// The fault.
    pub kind: FaultKind,
    /// The device.
    pub stream: StreamId,
    /// The SubstreamID, if the transaction had one (SSV).
    pub substream: Option<u32>,
    /// The transaction's input address (word 2).
    pub address: u64,
    /// Word 3's IPA field, bits \[51:12\], as is (0 if not given).
    pub ipa_field: u64,
    /// Read or write.
    pub access: Access,
    /// S2: the fault is at stage 2.
    pub stage2: bool,
    /// PnU: privileged.
    pub privileged: bool,
    /// InD: instruction fetch.
    pub instruction: bool,
    /// CLASS.
    pub class: FaultClass,
    /// The transaction is stalled (and waits for CMD_RESUME).
    pub stalled: bool,
    /// STAG, the stall tag.
    pub stag: u16,
    /// F_WALK_EABT only: the descriptor address whose fetch aborted.
    pub fetch_address: Option<PhysAddr>,
}

impl TranslationFault {
    /// The IPA that faulted, for stage-2 faults: word 3's IPA field with
    /// the input address's page offset, or, where the SMMU left the field 0
    /// (QEMU does), the input address itself, which is the IPA for a
    /// stream whose stage 1 is bypassed (every stage-2 entry this crate
    /// writes). `None` for stage-1 faults.
    pub const fn ipa(&self) -> Option<IntermediatePhysAddr> {
        if !self.stage2 {
            None
        } else if self.ipa_field != 0 {
            Some(IntermediatePhysAddr(
                self.ipa_field | (self.address & 0xfff),
            ))
        } else {
            Some(IntermediatePhysAddr(self.address))
        }
    }
}

impl fmt::Display for TranslationFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stream {}: stage-{} {} on a {}",
            self.stream,
            if self.stage2 { 2 } else { 1 },
            self.kind,
            self.access
        )?;
        if self.instruction {
            write!(f, " (instruction)")?;
        }
        if self.privileged {
            write!(f, " (privileged)")?;
        }
        match self.ipa() {
            Some(ipa) if ipa.get() == self.address => write!(f, " at IPA {ipa}")?,
            Some(ipa) => write!(f, " at address {:#x}, IPA {ipa}", self.address)?,
            None => write!(f, " at address {:#x}", self.address)?,
        }
        // Only a walk is worth naming: CLASS is 0 (CD) in QEMU's records
        // even for streams that have no CDs.
        if self.class == FaultClass::TableWalk {
            write!(f, " during a stage-1 table walk")?;
        }
        if let Some(pa) = self.fetch_address {
            write!(f, ", descriptor at {pa}")?;
        }
        if let Some(ssid) = self.substream {
            write!(f, ", substream {ssid:#x}")?;
        }
        if self.stalled {
            write!(f, ", stalled (STAG {:#x})", self.stag)?;
        }
        Ok(())
    }
}

/// A decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// F_TRANSLATION, F_ADDR_SIZE, F_ACCESS, F_PERMISSION or F_WALK_EABT.
    Fault(TranslationFault),
    /// F_UUT: a transaction the SMMU does not support (e.g. an atomic).
    UnsupportedTransaction {
        /// The device.
        stream: StreamId,
        /// Its input address.
        address: u64,
        /// Read or write.
        access: Access,
    },
    /// C_BAD_STREAMID: the StreamID is beyond the stream table.
    BadStreamId {
        /// The device.
        stream: StreamId,
        /// The SubstreamID, if any.
        substream: Option<u32>,
    },
    /// F_STE_FETCH: reading the STE from memory aborted.
    SteFetch {
        /// The device.
        stream: StreamId,
        /// Where the SMMU tried to read.
        fetch_address: PhysAddr,
    },
    /// C_BAD_STE: the STE is invalid (V = 0) or malformed.
    BadSte {
        /// The device.
        stream: StreamId,
        /// The SubstreamID, if any.
        substream: Option<u32>,
    },
    /// F_BAD_ATS_TREQ: an ATS translation request the STE does not allow.
    BadAtsRequest {
        /// The device.
        stream: StreamId,
        /// The requested address (bits \[63:12\]).
        address: u64,
    },
    /// F_STREAM_DISABLED: a SubstreamID-less transaction on a stream that
    /// requires one.
    StreamDisabled {
        /// The device.
        stream: StreamId,
    },
    /// F_TRANSL_FORBIDDEN: an ATS-translated transaction where translation
    /// is not allowed.
    TranslationForbidden {
        /// The device.
        stream: StreamId,
        /// Its address.
        address: u64,
        /// Read or write.
        access: Access,
    },
    /// C_BAD_SUBSTREAMID: the SubstreamID is beyond the CD table.
    BadSubstreamId {
        /// The device.
        stream: StreamId,
        /// The SubstreamID, if valid.
        substream: Option<u32>,
    },
    /// F_CD_FETCH: reading a context descriptor aborted.
    CdFetch {
        /// The device.
        stream: StreamId,
        /// Where the SMMU tried to read.
        fetch_address: PhysAddr,
    },
    /// C_BAD_CD: a context descriptor is invalid or malformed.
    BadCd {
        /// The device.
        stream: StreamId,
        /// The SubstreamID, if any.
        substream: Option<u32>,
    },
    /// F_TLB_CONFLICT: the TLB matched several entries (break-before-make
    /// was not followed somewhere).
    TlbConflict {
        /// The device.
        stream: StreamId,
        /// The input address.
        address: u64,
    },
    /// F_CFG_CONFLICT: the configuration caches matched several entries.
    ConfigConflict {
        /// The device.
        stream: StreamId,
    },
    /// E_PAGE_REQUEST: a PRI page request (never enabled here).
    PageRequest {
        /// The device.
        stream: StreamId,
        /// The address.
        address: u64,
    },
    /// F_VMS_FETCH: reading a VM structure aborted.
    VmsFetch {
        /// The device.
        stream: StreamId,
        /// Where the SMMU tried to read.
        fetch_address: PhysAddr,
    },
    /// Any other event number (implementation defined 0xE0 to 0xEF, or
    /// reserved), kept raw.
    Other {
        /// The event number.
        id: u8,
        /// The device, as word 0 has it.
        stream: StreamId,
        /// The whole record.
        words: [u64; 4],
    },
}

impl Event {
    /// Decodes one record.
    pub fn decode(words: &[u64; 4]) -> Event {
        let [w0, w1, w2, w3] = *words;
        // Field widths make the casts lossless.
        let event_id = bits(w0, 7, 0) as u8;
        let stream = StreamId(bits(w0, 63, 32) as u32);
        let substream = bit(w0, 11).then_some(bits(w0, 31, 12) as u32);
        let access = Access::from_rnw(bit(w1, 35));
        let fetch_address = PhysAddr(bits(w3, 51, 3) << 3);
        let fault = |kind| {
            Event::Fault(TranslationFault {
                kind,
                stream,
                substream,
                address: w2,
                ipa_field: bits(w3, 51, 12) << 12,
                access,
                stage2: bit(w1, 39),
                privileged: bit(w1, 33),
                instruction: bit(w1, 34),
                class: match bits(w1, 41, 40) {
                    0b00 => FaultClass::ContextDescriptor,
                    0b01 => FaultClass::TableWalk,
                    0b10 => FaultClass::InputAddress,
                    _ => FaultClass::Reserved,
                },
                stalled: bit(w1, 31),
                stag: bits(w1, 15, 0) as u16,
                fetch_address: (kind == FaultKind::WalkExternalAbort).then_some(fetch_address),
            })
        };
        match event_id {
            id::F_TRANSLATION => fault(FaultKind::Translation),
            id::F_ADDR_SIZE => fault(FaultKind::AddressSize),
            id::F_ACCESS => fault(FaultKind::AccessFlag),
            id::F_PERMISSION => fault(FaultKind::Permission),
            id::F_WALK_EABT => fault(FaultKind::WalkExternalAbort),
            id::F_UUT => Event::UnsupportedTransaction {
                stream,
                address: w2,
                access,
            },
            id::C_BAD_STREAMID => Event::BadStreamId { stream, substream },
            id::F_STE_FETCH => Event::SteFetch {
                stream,
                fetch_address,
            },
            id::C_BAD_STE => Event::BadSte { stream, substream },
            id::F_BAD_ATS_TREQ => Event::BadAtsRequest {
                stream,
                address: w2 & !0xfff,
            },
            id::F_STREAM_DISABLED => Event::StreamDisabled { stream },
            id::F_TRANSL_FORBIDDEN => Event::TranslationForbidden {
                stream,
                address: w2,
                access,
            },
            id::C_BAD_SUBSTREAMID => Event::BadSubstreamId { stream, substream },
            id::F_CD_FETCH => Event::CdFetch {
                stream,
                fetch_address,
            },
            id::C_BAD_CD => Event::BadCd { stream, substream },
            id::F_TLB_CONFLICT => Event::TlbConflict {
                stream,
                address: w2,
            },
            id::F_CFG_CONFLICT => Event::ConfigConflict { stream },
            id::E_PAGE_REQUEST => Event::PageRequest {
                stream,
                address: w2,
            },
            id::F_VMS_FETCH => Event::VmsFetch {
                stream,
                fetch_address,
            },
            other => Event::Other {
                id: other,
                stream,
                words: *words,
            },
        }
    }

    /// The StreamID of the device the event is about.
    pub const fn stream(&self) -> StreamId {
        match *self {
            Event::Fault(TranslationFault { stream, .. })
            | Event::UnsupportedTransaction { stream, .. }
            | Event::BadStreamId { stream, .. }
            | Event::SteFetch { stream, .. }
            | Event::BadSte { stream, .. }
            | Event::BadAtsRequest { stream, .. }
            | Event::StreamDisabled { stream }
            | Event::TranslationForbidden { stream, .. }
            | Event::BadSubstreamId { stream, .. }
            | Event::CdFetch { stream, .. }
            | Event::BadCd { stream, .. }
            | Event::TlbConflict { stream, .. }
            | Event::ConfigConflict { stream }
            | Event::PageRequest { stream, .. }
            | Event::VmsFetch { stream, .. }
            | Event::Other { stream, .. } => stream,
        }
    }

    /// The input address the event is about, where it has one.
    pub const fn address(&self) -> Option<u64> {
        match *self {
            Event::Fault(TranslationFault { address, .. })
            | Event::UnsupportedTransaction { address, .. }
            | Event::BadAtsRequest { address, .. }
            | Event::TranslationForbidden { address, .. }
            | Event::TlbConflict { address, .. }
            | Event::PageRequest { address, .. } => Some(address),
            _ => None,
        }
    }

    /// Whether `next` is one more of the same: the same kind of event from
    /// the same stream, about the same 4 KiB page if it has an address. A
    /// device whose write the SMMU aborts raises one event per beat of the
    /// write (QEMU: every 4 bytes), so a page-sized stray DMA is hundreds
    /// of events that say one thing.
    pub fn continues(&self, next: &Event) -> bool {
        const PAGE: u64 = 0xfff;
        let same_kind = match (self, next) {
            (Event::Fault(a), Event::Fault(b)) => {
                a.kind == b.kind && a.access == b.access && a.stage2 == b.stage2
            }
            _ => core::mem::discriminant(self) == core::mem::discriminant(next),
        };
        same_kind
            && self.stream() == next.stream()
            && self.address().map(|a| a & !PAGE) == next.address().map(|a| a & !PAGE)
    }
}

fn substream_suffix(f: &mut fmt::Formatter<'_>, substream: Option<u32>) -> fmt::Result {
    match substream {
        Some(ssid) => write!(f, ", substream {ssid:#x}"),
        None => Ok(()),
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fault(fault) => write!(f, "{fault}"),
            Self::UnsupportedTransaction {
                stream,
                address,
                access,
            } => write!(
                f,
                "stream {stream}: unsupported {access} transaction at {address:#x} (F_UUT)"
            ),
            Self::BadStreamId { stream, substream } => {
                write!(f, "stream {stream}: StreamID beyond the stream table (C_BAD_STREAMID)")?;
                substream_suffix(f, *substream)
            }
            Self::SteFetch {
                stream,
                fetch_address,
            } => write!(
                f,
                "stream {stream}: STE fetch from {fetch_address} aborted (F_STE_FETCH)"
            ),
            Self::BadSte { stream, substream } => {
                write!(f, "stream {stream}: invalid or malformed STE (C_BAD_STE)")?;
                substream_suffix(f, *substream)
            }
            Self::BadAtsRequest { stream, address } => write!(
                f,
                "stream {stream}: ATS request for {address:#x} refused (F_BAD_ATS_TREQ)"
            ),
            Self::StreamDisabled { stream } => write!(
                f,
                "stream {stream}: transaction without a SubstreamID (F_STREAM_DISABLED)"
            ),
            Self::TranslationForbidden {
                stream,
                address,
                access,
            } => write!(
                f,
                "stream {stream}: translated {access} at {address:#x} not allowed (F_TRANSL_FORBIDDEN)"
            ),
            Self::BadSubstreamId { stream, substream } => {
                write!(f, "stream {stream}: SubstreamID beyond the CD table (C_BAD_SUBSTREAMID)")?;
                substream_suffix(f, *substream)
            }
            Self::CdFetch {
                stream,
                fetch_address,
            } => write!(
                f,
                "stream {stream}: CD fetch from {fetch_address} aborted (F_CD_FETCH)"
            ),
            Self::BadCd { stream, substream } => {
                write!(f, "stream {stream}: invalid or malformed CD (C_BAD_CD)")?;
                substream_suffix(f, *substream)
            }
            Self::TlbConflict { stream, address } => write!(
                f,
                "stream {stream}: TLB conflict at {address:#x} (F_TLB_CONFLICT)"
            ),
            Self::ConfigConflict { stream } => write!(
                f,
                "stream {stream}: configuration cache conflict (F_CFG_CONFLICT)"
            ),
            Self::PageRequest { stream, address } => write!(
                f,
                "stream {stream}: page request for {address:#x} (E_PAGE_REQUEST)"
            ),
            Self::VmsFetch {
                stream,
                fetch_address,
            } => write!(
                f,
                "stream {stream}: VMS fetch from {fetch_address} aborted (F_VMS_FETCH)"
            ),
            Self::Other { id, stream, words } => write!(
                f,
                "stream {stream}: event {id:#04x} [{:#x} {:#x} {:#x} {:#x}]",
                words[0], words[1], words[2], words[3]
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;

    /// What QEMU writes for a stage-2 F_TRANSLATION on a DMA write by
    /// StreamID 0x28 to IPA 0x5000_0000: word 0 = 0x10 | 0x28 << 32; word
    /// 1 = S2 (bit 39), RnW 0; word 2 = the address; word 3 = 0.
    #[test]
    fn stage2_translation_fault_decodes() {
        let e = Event::decode(&[0x0000_0028_0000_0010, 1 << 39, 0x5000_0000, 0]);
        let Event::Fault(fault) = e else {
            panic!("{e:?}")
        };
        assert_eq!(fault.kind, FaultKind::Translation);
        assert_eq!(fault.stream, StreamId(0x28));
        assert_eq!(fault.substream, None);
        assert_eq!(fault.access, Access::Write);
        assert!(fault.stage2 && !fault.privileged && !fault.instruction);
        assert_eq!(fault.class, FaultClass::ContextDescriptor);
        assert_eq!(fault.ipa(), Some(IntermediatePhysAddr(0x5000_0000)));
        assert_eq!(e.stream(), StreamId(0x28));
        assert_eq!(
            e.to_string(),
            "stream 0x28: stage-2 translation fault on a write at IPA 0x50000000"
        );
    }

    /// A hardware-style record: CLASS = IN (0b10 << 40), RnW (bit 35),
    /// PnU (33), InD (34), S2, SSV with SubstreamID 3, IPA field set.
    #[test]
    fn all_fault_fields_decode() {
        let w0 = 0x12 | 1 << 11 | 3 << 12 | 0x0100_0000_0000_0000;
        let w1 = 0x7 | 1 << 31 | 1 << 33 | 1 << 34 | 1 << 35 | 1 << 39 | 0b10 << 40;
        let e = Event::decode(&[w0, w1, 0xffff_0000_1234, 0x0000_0008_8000_1000]);
        let Event::Fault(fault) = e else {
            panic!("{e:?}")
        };
        assert_eq!(fault.kind, FaultKind::AccessFlag);
        assert_eq!(fault.stream, StreamId(0x0100_0000));
        assert_eq!(fault.substream, Some(3));
        assert_eq!(fault.access, Access::Read);
        assert!(fault.privileged && fault.instruction && fault.stalled);
        assert_eq!(fault.stag, 7);
        assert_eq!(fault.class, FaultClass::InputAddress);
        assert_eq!(fault.ipa_field, 0x8_8000_1000);
        assert_eq!(fault.ipa(), Some(IntermediatePhysAddr(0x8_8000_1234)));
        assert_eq!(fault.fetch_address, None);
        assert_eq!(
            e.to_string(),
            "stream 0x1000000: stage-2 access flag fault on a read (instruction) (privileged) \
             at address 0xffff00001234, IPA 0x880001234, substream 0x3, stalled (STAG 0x7)"
        );
    }

    /// The beats of one aborted page-sized write are one run; another
    /// page, another stream, a read or another kind of event are not.
    #[test]
    fn runs_are_one_kind_one_stream_one_page() {
        let write =
            |stream: u64, address: u64| Event::decode(&[0x10 | stream << 32, 1 << 39, address, 0]);
        let first = write(0x40, 0x7000_0000);
        assert!(first.continues(&write(0x40, 0x7000_0004)));
        assert!(first.continues(&write(0x40, 0x7000_0ffc)));
        assert!(!first.continues(&write(0x40, 0x7000_1000)));
        assert!(!first.continues(&write(0x48, 0x7000_0004)));
        let read = Event::decode(&[0x10 | 0x40 << 32, 1 << 39 | 1 << 35, 0x7000_0004, 0]);
        assert!(!first.continues(&read));
        let permission = Event::decode(&[0x13 | 0x40 << 32, 1 << 39, 0x7000_0004, 0]);
        assert!(!first.continues(&permission));
        let bad_ste = Event::decode(&[0x04 | 0x40 << 32, 0, 0, 0]);
        assert_eq!(bad_ste.address(), None);
        assert!(bad_ste.continues(&bad_ste));
        assert!(!bad_ste.continues(&first));
    }

    #[test]
    fn each_fault_number_decodes() {
        for (event_id, kind) in [
            (0x10, FaultKind::Translation),
            (0x11, FaultKind::AddressSize),
            (0x12, FaultKind::AccessFlag),
            (0x13, FaultKind::Permission),
            (0x0b, FaultKind::WalkExternalAbort),
        ] {
            let Event::Fault(fault) = Event::decode(&[event_id, 0, 0x1000, 0x4000_0008]) else {
                panic!("{event_id:#x}")
            };
            assert_eq!(fault.kind, kind);
            assert_eq!(fault.ipa(), None);
            assert_eq!(
                fault.fetch_address,
                (kind == FaultKind::WalkExternalAbort).then_some(PhysAddr(0x4000_0008))
            );
        }
    }

    #[test]
    fn configuration_events_decode() {
        let sid = 0x0000_0010_0000_0000;
        assert_eq!(
            Event::decode(&[sid | 0x04, 0, 0, 0]),
            Event::BadSte {
                stream: StreamId(0x10),
                substream: None
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x02 | 1 << 11 | 5 << 12, 0, 0, 0]),
            Event::BadStreamId {
                stream: StreamId(0x10),
                substream: Some(5)
            }
        );
        // F_STE_FETCH: FetchAddr [51:3] in word 3.
        assert_eq!(
            Event::decode(&[sid | 0x03, 0, 0, 0xfff0_0040_0000_0a08]),
            Event::SteFetch {
                stream: StreamId(0x10),
                fetch_address: PhysAddr(0x0_0040_0000_0a08)
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x05, 0, 0x1234_5678, 0]),
            Event::BadAtsRequest {
                stream: StreamId(0x10),
                address: 0x1234_5000
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x07, 1 << 35, 0x40, 0]),
            Event::TranslationForbidden {
                stream: StreamId(0x10),
                address: 0x40,
                access: Access::Read
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x01, 0, 0x40, 0]),
            Event::UnsupportedTransaction {
                stream: StreamId(0x10),
                address: 0x40,
                access: Access::Write
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x06, 0, 0, 0]),
            Event::StreamDisabled {
                stream: StreamId(0x10)
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x21, 0, 0, 0]),
            Event::ConfigConflict {
                stream: StreamId(0x10)
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0xe3, 1, 2, 3]),
            Event::Other {
                id: 0xe3,
                stream: StreamId(0x10),
                words: [sid | 0xe3, 1, 2, 3]
            }
        );
        assert_eq!(
            Event::decode(&[sid | 0x04, 0, 0, 0]).to_string(),
            "stream 0x10: invalid or malformed STE (C_BAD_STE)"
        );
        assert_eq!(
            Event::decode(&[sid | 0xe3, 1, 2, 3]).to_string(),
            "stream 0x10: event 0xe3 [0x10000000e3 0x1 0x2 0x3]"
        );
    }

    proptest! {
        #[test]
        fn any_record_decodes_and_prints(words in prop::array::uniform4(any::<u64>())) {
            let e = Event::decode(&words);
            prop_assert_eq!(u64::from(e.stream().get()), words[0] >> 32);
            let _ = e.to_string();
        }
    }
}
