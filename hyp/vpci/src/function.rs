//! One passthrough function's configuration space as the guest sees it:
//! what is read from the physical function, what is emulated, what is
//! hidden.

use crate::access::Unmapped;
use crate::error::BridgeError;
use crate::{Intx, Passthrough};
use addr::{IntermediatePhysAddr, PhysRange};
use alloc::vec::Vec;
use guest_boot::{IntxPin, IpaRange, PciWindows};
use pci::{
    Bdf, CapabilityId, Command, ConfigSpace, HeaderType, Register, Status, BARS_TYPE0,
    LEGACY_CONFIG_SPACE_SIZE,
};

/// Command register bits the guest controls; each write of them goes on to
/// the physical function. Memory decoding also decides whether the BARs
/// are mapped; bus mastering lets the function DMA (into the VM's memory
/// only: the SMMU translates it through the VM's stage 2); INTx disable
/// lets the driver silence the function's pin. The rest (I/O decoding,
/// parity and SERR# reporting, the obsolete bits) read as 0 and keep the
/// physical value the hypervisor gave them, except I/O decoding, which is
/// kept off.
pub const GUEST_COMMAND: Command = Command::MEMORY_SPACE
    .union(Command::BUS_MASTER)
    .union(Command::INTERRUPT_DISABLE);

/// The page size of stage 2: every BAR is mapped as whole pages.
pub const PAGE_SIZE: u64 = 4096;

/// Memory BAR bits 3:0 are not address bits (PCI Local Bus Specification
/// 3.0 §6.2.5.1).
const BAR_FLAGS: u64 = 0xf;
/// Memory BAR type 10: 64-bit.
const BAR_TYPE_64: u32 = 0b100;
/// Memory BAR bit 3: prefetchable.
const BAR_PREFETCHABLE: u32 = 0b1000;

/// Header type register: the layout byte is bits 23:16 of the dword.
const HEADER_TYPE_SHIFT: u32 = 16;
/// Interrupt register: the pin is bits 15:8.
const INTERRUPT_PIN_SHIFT: u32 = 8;
/// Subsystem vendor and subsystem ID.
const SUBSYSTEM: u16 = 0x2c;

/// The first byte after the header, where capabilities live.
const CAPABILITIES_START: u16 = 0x40;
/// Length of the power management capability (PCI Bus Power Management
/// Interface Specification 1.2 §3.2): header and PMC, PMCSR and data.
const PM_LENGTH: u16 = 8;
/// Length of a version 1 PCI Express capability (PCIe Base Specification
/// 1.1 §7.8): up to the Root Status register.
const PCIE_V1_LENGTH: u16 = 0x24;
/// Length of a version 2 PCI Express capability (PCIe Base Specification
/// §7.5.3): up to Slot Control 2/Slot Status 2.
const PCIE_V2_LENGTH: u16 = 0x3c;
/// PCI Express Capabilities register (header bits 19:16): the version.
const PCIE_VERSION_SHIFT: u32 = 16;
const PCIE_VERSION_MASK: u32 = 0xf;
/// Device Capabilities, 4 bytes into the PCI Express capability.
const PCIE_DEVICE_CAPABILITIES: u16 = 4;
/// Device Capabilities bit 28: Function Level Reset. Hidden: the Initiate
/// FLR bit of Device Control is read-only to the guest, and a reset would
/// clear the physical BARs under the hypervisor.
const PCIE_DEVCAP_FLR: u32 = 1 << 28;
/// A vendor-specific capability's length: header byte 2.
const VENDOR_LENGTH_SHIFT: u32 = 16;

/// Capabilities a guest keeps, read-only: each works with no more
/// emulation than hiding its writes. MSI and MSI-X are hidden (no MSI
/// support yet: the guest has no ITS, and a function's MSI write would
/// need a doorbell in the VM's stage 2), and so is anything this crate does
/// not know.
const KEPT_CAPABILITIES: [CapabilityId; 3] = [
    CapabilityId::POWER_MANAGEMENT,
    CapabilityId::PCI_EXPRESS,
    CapabilityId::VENDOR_SPECIFIC,
];

/// A memory BAR of the guest's view.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VirtualBar {
    pub index: u8,
    pub is_64: bool,
    pub prefetchable: bool,
    /// The size the guest sizes: the physical one rounded up to a page.
    pub size: u64,
    /// The physical memory the guest's pages map: `size` bytes.
    pub host: PhysRange,
    /// The address the guest wrote, address bits only (a multiple of
    /// `size`).
    pub address: u64,
    /// Where it is mapped, or why not.
    pub state: Result<IpaRange, Unmapped>,
}

impl VirtualBar {
    /// The bits of the BAR (both halves of a 64-bit one) that hold an
    /// address: the guest can write these, and reads back zeros in the
    /// others, which is how it learns the size.
    fn address_mask(&self) -> u64 {
        let width = if self.is_64 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        width & !(self.size - 1) & !BAR_FLAGS
    }

    fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.is_64 {
            flags |= BAR_TYPE_64;
        }
        if self.prefetchable {
            flags |= BAR_PREFETCHABLE;
        }
        flags
    }

    /// Where the BAR should be mapped, decoding on, or why not.
    fn wanted(&self, windows: &PciWindows) -> Result<IpaRange, Unmapped> {
        IpaRange::new(IntermediatePhysAddr(self.address), self.size)
            .filter(|range| windows.memory_windows().any(|w| w.contains_range(range)))
            .ok_or(Unmapped::OutsideWindow {
                guest: self.address,
            })
    }
}

/// A capability the guest sees, at its physical offset.
#[derive(Clone, Copy, Debug)]
struct KeptCapability {
    offset: u16,
    id: CapabilityId,
    /// Bytes from `offset`, whole dwords, inside conventional space.
    length: u16,
    /// The next kept capability's offset, or 0.
    next: u8,
}

impl KeptCapability {
    fn contains(&self, reg: u16) -> bool {
        self.offset <= reg && reg < self.offset + self.length
    }
}

/// Which BAR a register slot belongs to.
enum Slot {
    Lower(usize),
    Upper(usize),
    Unimplemented,
}

/// Whether a store needs the BAR mappings recomputed.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    Quiet,
    Remap,
}

/// One passthrough function.
#[derive(Clone, Debug)]
pub(crate) struct Function {
    pub host: Bdf,
    pub device: u8,
    pub intx: Option<(IntxPin, Intx)>,
    /// Vendor and device ID, class code and revision, subsystem: read
    /// once, so the function cannot change its identity under the guest.
    ids: u32,
    class_revision: u32,
    subsystem: u32,
    header_type: u8,
    /// The guest's command bits, within [`GUEST_COMMAND`].
    pub command: Command,
    /// Scratch: Linux writes it and reads it back (for memory write and
    /// invalidate).
    cache_line: u8,
    /// Scratch: software's note of where the pin is routed.
    interrupt_line: u8,
    /// By the BAR's first slot.
    pub bars: [Option<VirtualBar>; BARS_TYPE0],
    capabilities: Vec<KeptCapability>,
}

impl Function {
    /// Reads what the guest will see of `p`'s function and checks its
    /// BARs. Writes nothing.
    pub fn new<C: ConfigSpace + ?Sized>(cs: &C, p: &Passthrough) -> Result<Function, BridgeError> {
        let host = p.host;
        let info = pci::probe_function(cs, host).ok_or(BridgeError::Absent(host))?;
        if info.header_type != HeaderType::Endpoint {
            return Err(BridgeError::NotEndpoint {
                function: host,
                header: info.header_type,
            });
        }
        let intx = match p.intx {
            None => None,
            Some(intx) => {
                let pin = (cs.read32(host, Register::INTERRUPT) >> INTERRUPT_PIN_SHIFT) as u8;
                let pin = IntxPin::from_register(pin).ok_or(BridgeError::NoInterruptPin {
                    function: host,
                    pin,
                })?;
                Some((pin, intx))
            }
        };
        let mut bars = [None; BARS_TYPE0];
        for assigned in p.bars.iter() {
            let bar = assigned.bar;
            let is_64 = match bar.kind {
                // Hidden: the guest has no I/O space.
                pci::BarKind::Io => continue,
                pci::BarKind::Memory32 => false,
                pci::BarKind::Memory64 => true,
            };
            let index = bar.index;
            // `pci::assign_bars` (the only maker of `AssignedBars`) places
            // every memory BAR, and sizing gives powers of two of at least
            // 16 bytes in slots that fit; a BAR that is none of these
            // would be hidden rather than trusted.
            let last = if is_64 { index + 1 } else { index };
            let Some(placement) = assigned.placement else {
                continue;
            };
            if usize::from(last) >= BARS_TYPE0 || !bar.size.is_power_of_two() {
                continue;
            }
            let start = placement.cpu.start();
            if !start.is_aligned(PAGE_SIZE) {
                return Err(BridgeError::BarNotPageAligned {
                    function: host,
                    bar: index,
                    host: start,
                });
            }
            let size = bar.size.max(PAGE_SIZE);
            let Some(host_range) = PhysRange::new(start, size) else {
                continue;
            };
            bars[usize::from(index)] = Some(VirtualBar {
                index,
                is_64,
                prefetchable: bar.prefetchable,
                size,
                host: host_range,
                address: 0,
                state: Err(Unmapped::DecodeOff),
            });
        }
        Ok(Function {
            host,
            device: p.guest_device,
            intx,
            ids: cs.read32(host, Register::VENDOR_DEVICE),
            class_revision: cs.read32(host, Register::CLASS_REVISION),
            subsystem: Register::new(SUBSYSTEM).map_or(0, |reg| cs.read32(host, reg)),
            // The layout only: the guest sees single-function devices.
            header_type: 0,
            command: Command::empty(),
            cache_line: 0,
            interrupt_line: 0,
            bars,
            capabilities: kept_capabilities(cs, host),
        })
    }

    /// Which BAR register slot `slot` (0 to 5) belongs to.
    fn slot(&self, slot: usize) -> Slot {
        if self.bars.get(slot).is_some_and(Option::is_some) {
            return Slot::Lower(slot);
        }
        match slot.checked_sub(1).and_then(|lower| self.bars.get(lower)) {
            Some(Some(bar)) if bar.is_64 => Slot::Upper(slot - 1),
            _ => Slot::Unimplemented,
        }
    }

    /// The dword at `reg` (a multiple of 4 below 4096) as the guest reads
    /// it.
    pub fn read<C: ConfigSpace + ?Sized>(&self, cs: &C, reg: u16) -> u32 {
        match reg {
            0x00 => self.ids,
            0x04 => {
                let live = cs.read32(self.host, Register::COMMAND_STATUS);
                let mut status = Status::from_bits_retain((live >> 16) as u16);
                status.set(Status::CAPABILITIES_LIST, !self.capabilities.is_empty());
                u32::from(status.bits()) << 16 | u32::from(self.command.bits())
            }
            0x08 => self.class_revision,
            // Cache line size; latency timer and BIST 0 (PCIe: read-only
            // zero; starting a BIST is not the guest's to do).
            0x0c => u32::from(self.header_type) << HEADER_TYPE_SHIFT | u32::from(self.cache_line),
            0x10..=0x27 => self.read_bar(usize::from((reg - 0x10) / 4)),
            SUBSYSTEM => self.subsystem,
            // The expansion ROM BAR (0x30) and CardBus CIS pointer (0x28)
            // are hidden: 0, as if unimplemented.
            0x34 => self.capabilities.first().map_or(0, |c| u32::from(c.offset)),
            0x3c => {
                let pin = self.intx.map_or(0, |(pin, _)| pin.register());
                u32::from(pin) << INTERRUPT_PIN_SHIFT | u32::from(self.interrupt_line)
            }
            CAPABILITIES_START..LEGACY_CONFIG_SPACE_SIZE => self.read_capability(cs, reg),
            // The rest of the header is reserved; extended configuration
            // space reads 0 there, the PCIe "no extended capabilities"
            // header (PCIe Base Specification §7.6.2).
            _ => 0,
        }
    }

    fn read_bar(&self, slot: usize) -> u32 {
        match self.slot(slot) {
            Slot::Lower(i) => self.bars[i].map_or(0, |b| b.address as u32 | b.flags()),
            Slot::Upper(i) => self.bars[i].map_or(0, |b| (b.address >> 32) as u32),
            Slot::Unimplemented => 0,
        }
    }

    fn read_capability<C: ConfigSpace + ?Sized>(&self, cs: &C, reg: u16) -> u32 {
        let Some(register) = Register::new(reg) else {
            return 0;
        };
        // A header first: a malformed function's capabilities may overlap.
        if let Some(cap) = self.capabilities.iter().find(|c| c.offset == reg) {
            let live = cs.read32(self.host, register);
            return (live & 0xffff_0000) | u32::from(cap.next) << 8 | u32::from(cap.id.0);
        }
        let Some(cap) = self.capabilities.iter().find(|c| c.contains(reg)) else {
            // Hidden capabilities and anything between them.
            return 0;
        };
        let live = cs.read32(self.host, register);
        if cap.id == CapabilityId::PCI_EXPRESS && reg - cap.offset == PCIE_DEVICE_CAPABILITIES {
            return live & !PCIE_DEVCAP_FLR;
        }
        live
    }

    /// The bits of the dword at `reg` the guest may change.
    pub fn writable(&self, reg: u16) -> u32 {
        match reg {
            0x04 => u32::from(GUEST_COMMAND.bits()),
            0x0c => 0xff,
            0x10..=0x27 => match self.slot(usize::from((reg - 0x10) / 4)) {
                Slot::Lower(i) => self.bars[i].map_or(0, |b| b.address_mask() as u32),
                Slot::Upper(i) => self.bars[i].map_or(0, |b| (b.address_mask() >> 32) as u32),
                Slot::Unimplemented => 0,
            },
            0x3c => 0xff,
            _ => 0,
        }
    }

    /// Stores the guest's `value` for the dword at `reg`, keeping only
    /// [`writable`](Self::writable) bits; passes command bits on to the
    /// physical function.
    pub fn store<C: ConfigSpace + ?Sized>(&mut self, cs: &mut C, reg: u16, value: u32) -> Stored {
        match reg {
            0x04 => {
                let command = Command::from_bits_retain(value as u16).intersection(GUEST_COMMAND);
                if command == self.command {
                    return Stored::Quiet;
                }
                self.command = command;
                self.sync_command(cs);
                Stored::Remap
            }
            0x0c => {
                self.cache_line = value as u8;
                Stored::Quiet
            }
            0x10..=0x27 => {
                let (i, upper) = match self.slot(usize::from((reg - 0x10) / 4)) {
                    Slot::Lower(i) => (i, false),
                    Slot::Upper(i) => (i, true),
                    Slot::Unimplemented => return Stored::Quiet,
                };
                let Some(bar) = self.bars[i].as_mut() else {
                    return Stored::Quiet;
                };
                let address = if upper {
                    (bar.address & u64::from(u32::MAX)) | u64::from(value) << 32
                } else {
                    (bar.address & !u64::from(u32::MAX)) | u64::from(value)
                };
                bar.address = address & bar.address_mask();
                Stored::Remap
            }
            0x3c => {
                self.interrupt_line = value as u8;
                Stored::Quiet
            }
            _ => Stored::Quiet,
        }
    }

    /// Back to the state after reset: decoding and bus mastering off, BARs
    /// and scratch registers 0. Mappings are left to the caller's next
    /// recomputation.
    pub fn reset<C: ConfigSpace + ?Sized>(&mut self, cs: &mut C) {
        self.command = Command::empty();
        self.cache_line = 0;
        self.interrupt_line = 0;
        for bar in self.bars.iter_mut().flatten() {
            bar.address = 0;
        }
        self.sync_command(cs);
    }

    /// Makes the physical command register's guest bits the guest's,
    /// keeping the others but I/O decoding, which goes off. The only
    /// physical register this crate ever writes.
    fn sync_command<C: ConfigSpace + ?Sized>(&self, cs: &mut C) {
        let physical = pci::command(cs, self.host);
        let wanted = physical
            .difference(GUEST_COMMAND.union(Command::IO_SPACE))
            .union(self.command);
        if wanted != physical {
            pci::set_command(cs, self.host, wanted);
        }
    }

    /// Where each BAR should be mapped, or why not, before overlaps are
    /// considered.
    pub fn wanted(
        &self,
        windows: &PciWindows,
    ) -> impl Iterator<Item = (usize, Result<IpaRange, Unmapped>)> + '_ {
        let decoding = self.command.contains(Command::MEMORY_SPACE);
        let windows = *windows;
        self.bars.iter().enumerate().filter_map(move |(i, bar)| {
            let bar = bar.as_ref()?;
            let wanted = if decoding {
                bar.wanted(&windows)
            } else {
                Err(Unmapped::DecodeOff)
            };
            Some((i, wanted))
        })
    }
}

/// The capabilities of `bdf` the guest keeps, linked to each other. A walk
/// that fails keeps what it found before.
fn kept_capabilities<C: ConfigSpace + ?Sized>(cs: &C, bdf: Bdf) -> Vec<KeptCapability> {
    let mut kept: Vec<KeptCapability> = Vec::new();
    for cap in pci::capabilities(cs, bdf).map_while(Result::ok) {
        if !KEPT_CAPABILITIES.contains(&cap.id) {
            continue;
        }
        let offset = cap.offset.offset();
        let length = match cap.id {
            CapabilityId::POWER_MANAGEMENT => PM_LENGTH,
            CapabilityId::PCI_EXPRESS => {
                if (cap.header >> PCIE_VERSION_SHIFT) & PCIE_VERSION_MASK >= 2 {
                    PCIE_V2_LENGTH
                } else {
                    PCIE_V1_LENGTH
                }
            }
            // At least the header; whole dwords.
            _ => (((cap.header >> VENDOR_LENGTH_SHIFT) as u8).max(4) as u16).next_multiple_of(4),
        };
        let length = length.min(LEGACY_CONFIG_SPACE_SIZE - offset);
        if let Some(last) = kept.last_mut() {
            // Below 0x100: fits a byte.
            last.next = offset as u8;
        }
        kept.push(KeptCapability {
            offset,
            id: cap.id,
            length,
            next: 0,
        });
    }
    kept
}
