//! Virtio over PCI (virtio 1.2 §4.1): which functions are virtio devices,
//! where their structures are (the vendor-specific capabilities of
//! §4.1.4), checked against the BARs as assigned, and a shadow of the
//! BARs and capabilities to show a driver that trusts configuration space
//! more than we do.

use crate::assign::{AssignedBars, Placement};
use crate::bar::{BarKind, BARS_TYPE0};
use crate::capability::{capabilities, CapabilityError, CapabilityId};
use crate::config::{Bdf, ConfigSpace, Register, LEGACY_CONFIG_SPACE_SIZE};
use crate::enumerate::FunctionInfo;
use addr::PhysRange;
use core::fmt;

/// The PCI vendor ID of every virtio function (§4.1.2).
pub const VIRTIO_VENDOR_ID: u16 = 0x1af4;
/// The virtio device ID of a block device (§5).
pub const VIRTIO_DEVICE_BLOCK: u16 = 2;
/// Modern PCI device IDs are 0x1040 plus the virtio device ID (§4.1.2.1).
const MODERN_BASE: u16 = 0x1040;
/// The last modern PCI device ID.
const MODERN_LAST: u16 = 0x107f;
/// Transitional PCI device IDs and their virtio device IDs (§4.1.2.3).
const TRANSITIONAL: [(u16, u16); 7] = [
    (0x1000, 1),
    (0x1001, 2),
    (0x1002, 5),
    (0x1003, 3),
    (0x1004, 8),
    (0x1005, 4),
    (0x1009, 9),
];

/// The virtio device ID of `function` (1 network, 2 block, ...), or `None`
/// if it is not a virtio function.
pub fn virtio_device_id(function: &FunctionInfo) -> Option<u16> {
    if function.vendor_id != VIRTIO_VENDOR_ID {
        return None;
    }
    match function.device_id {
        id @ MODERN_BASE..=MODERN_LAST => Some(id - MODERN_BASE).filter(|&id| id != 0),
        id => TRANSITIONAL
            .iter()
            .find(|(pci, _)| *pci == id)
            .map(|(_, virtio)| *virtio),
    }
}

/// A structure a virtio function locates through a capability (the
/// capability's `cfg_type`, §4.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VirtioStructure {
    /// `VIRTIO_PCI_CAP_COMMON_CFG`.
    Common = 1,
    /// `VIRTIO_PCI_CAP_NOTIFY_CFG`.
    Notify = 2,
    /// `VIRTIO_PCI_CAP_ISR_CFG`.
    Isr = 3,
    /// `VIRTIO_PCI_CAP_DEVICE_CFG`.
    Device = 4,
}

impl VirtioStructure {
    const ALL: [VirtioStructure; 4] = [Self::Common, Self::Notify, Self::Isr, Self::Device];

    fn from_cfg_type(cfg_type: u8) -> Option<VirtioStructure> {
        Self::ALL.into_iter().find(|s| *s as u8 == cfg_type)
    }

    /// The fewest bytes a driver reads from it: `virtio_pci_common_cfg` is
    /// 56 bytes (§4.1.4.3), a notification a 16-bit write, the ISR one
    /// byte; device configuration can be anything, so one byte.
    pub const fn min_length(self) -> u32 {
        match self {
            Self::Common => 56,
            Self::Notify => 2,
            Self::Isr | Self::Device => 1,
        }
    }
}

impl fmt::Display for VirtioStructure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Common => "common configuration",
            Self::Notify => "notification",
            Self::Isr => "ISR status",
            Self::Device => "device configuration",
        })
    }
}

/// Where one structure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioRegion {
    /// The BAR holding it.
    pub bar: u8,
    /// Its offset in the BAR.
    pub offset: u32,
    /// Its length in bytes.
    pub length: u32,
    /// Where the CPU reaches it.
    pub cpu: PhysRange,
}

/// Where a virtio function's structures are, each inside an assigned
/// memory BAR and long enough for its registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioLayout {
    /// Common configuration.
    pub common: VirtioRegion,
    /// Notifications.
    pub notify: VirtioRegion,
    /// `notify_off_multiplier`: a queue's notification address is
    /// `queue_notify_off × notify_off_multiplier` into `notify`
    /// (§4.1.4.4). Even.
    pub notify_off_multiplier: u32,
    /// ISR status.
    pub isr: VirtioRegion,
    /// Device-specific configuration, if the device has any.
    pub device: Option<VirtioRegion>,
}

/// Why a function's virtio structures are unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioLayoutError {
    /// The capability list is broken.
    Capabilities(CapabilityError),
    /// No capability for this required structure.
    Missing(VirtioStructure),
    /// The capability's fields lie past the end of conventional
    /// configuration space.
    CapabilityTooLong(VirtioStructure),
    /// The structure names a BAR that is not an assigned memory BAR.
    BarUnusable {
        /// Which structure.
        structure: VirtioStructure,
        /// The BAR it names.
        bar: u8,
    },
    /// The structure does not fit in its BAR, or is too short for its
    /// registers.
    OutOfBar {
        /// Which structure.
        structure: VirtioStructure,
        /// Its offset in the BAR.
        offset: u32,
        /// Its length.
        length: u32,
    },
    /// `notify_off_multiplier` is odd (§4.1.4.4 requires an even one).
    OddNotifyMultiplier(u32),
}

impl fmt::Display for VirtioLayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Capabilities(e) => write!(f, "{e}"),
            Self::Missing(s) => write!(f, "no virtio {s} capability"),
            Self::CapabilityTooLong(s) => {
                write!(f, "virtio {s} capability runs past configuration space")
            }
            Self::BarUnusable { structure, bar } => write!(
                f,
                "virtio {structure} is in BAR{bar}, not an assigned memory BAR"
            ),
            Self::OutOfBar {
                structure,
                offset,
                length,
            } => write!(
                f,
                "virtio {structure} at {offset:#x}+{length:#x} does not fit its BAR or its registers"
            ),
            Self::OddNotifyMultiplier(m) => write!(f, "virtio notify_off_multiplier {m} is odd"),
        }
    }
}

impl From<CapabilityError> for VirtioLayoutError {
    fn from(e: CapabilityError) -> Self {
        Self::Capabilities(e)
    }
}

/// `virtio_pci_cap` fields, in bytes from the capability's start: `cap_len`
/// and `cfg_type` are header bits 23:16 and 31:24.
const CAP_BAR: u16 = 4;
const CAP_OFFSET: u16 = 8;
const CAP_LENGTH: u16 = 12;
/// `virtio_pci_notify_cap`'s `notify_off_multiplier`.
const CAP_NOTIFY_MULTIPLIER: u16 = 16;
/// Lengths of a `virtio_pci_cap` and of a `virtio_pci_notify_cap`.
const CAP_LEN: u8 = 16;
const NOTIFY_CAP_LEN: u8 = 20;

/// Reads where `bdf`'s virtio structures are: the first capability of
/// each type, as §4.1.4 tells drivers to (later ones are alternatives a
/// driver may ignore; capabilities too short for their type are skipped),
/// each checked against `bars` as assigned.
///
/// # Errors
///
/// Every [`VirtioLayoutError`]; `Missing` for the common, notification and
/// ISR structures (device configuration is optional).
pub fn virtio_layout<C: ConfigSpace + ?Sized>(
    cs: &C,
    bdf: Bdf,
    bars: &AssignedBars,
) -> Result<VirtioLayout, VirtioLayoutError> {
    let mut found: [Option<VirtioRegion>; 4] = [None; 4];
    let mut multiplier = 0;
    for cap in capabilities(cs, bdf) {
        let cap = cap?;
        let cap_len = (cap.header >> 16) as u8;
        let cfg_type = (cap.header >> 24) as u8;
        if cap.id != CapabilityId::VENDOR_SPECIFIC || cap_len < CAP_LEN {
            continue;
        }
        let Some(structure) = VirtioStructure::from_cfg_type(cfg_type) else {
            continue;
        };
        let slot = &mut found[structure as usize - 1];
        if slot.is_some() || (structure == VirtioStructure::Notify && cap_len < NOTIFY_CAP_LEN) {
            continue;
        }
        let field = |bytes| {
            cap.field(bytes)
                .map(|reg| cs.read32(bdf, reg))
                .ok_or(VirtioLayoutError::CapabilityTooLong(structure))
        };
        let bar = field(CAP_BAR)? as u8;
        let offset = field(CAP_OFFSET)?;
        let length = field(CAP_LENGTH)?;
        if structure == VirtioStructure::Notify {
            multiplier = field(CAP_NOTIFY_MULTIPLIER)?;
        }
        *slot = Some(locate(bars, structure, bar, offset, length)?);
    }
    let required = |s: VirtioStructure| found[s as usize - 1].ok_or(VirtioLayoutError::Missing(s));
    let layout = VirtioLayout {
        common: required(VirtioStructure::Common)?,
        notify: required(VirtioStructure::Notify)?,
        notify_off_multiplier: multiplier,
        isr: required(VirtioStructure::Isr)?,
        device: found[VirtioStructure::Device as usize - 1],
    };
    if multiplier % 2 != 0 {
        return Err(VirtioLayoutError::OddNotifyMultiplier(multiplier));
    }
    Ok(layout)
}

/// Where the CPU reaches a structure at `offset`/`length` in BAR `bar`.
fn locate(
    bars: &AssignedBars,
    structure: VirtioStructure,
    bar: u8,
    offset: u32,
    length: u32,
) -> Result<VirtioRegion, VirtioLayoutError> {
    let unusable = VirtioLayoutError::BarUnusable { structure, bar };
    let out_of_bar = VirtioLayoutError::OutOfBar {
        structure,
        offset,
        length,
    };
    let assigned = bars.get(bar).ok_or(unusable)?;
    let placement: Placement = match assigned.bar.kind {
        BarKind::Memory32 | BarKind::Memory64 => assigned.placement.ok_or(unusable)?,
        BarKind::Io => return Err(unusable),
    };
    // Drivers (virtio-drivers among them) add these as u32s: keep the sum
    // inside u32 too.
    let end = offset.checked_add(length).ok_or(out_of_bar)?;
    if u64::from(end) > assigned.bar.size || length < structure.min_length() {
        return Err(out_of_bar);
    }
    let start = placement
        .cpu
        .start()
        .checked_add(u64::from(offset))
        .ok_or(out_of_bar)?;
    let cpu = PhysRange::new(start, u64::from(length)).ok_or(out_of_bar)?;
    Ok(VirtioRegion {
        bar,
        offset,
        length,
        cpu,
    })
}

/// Where the shadow's capability list starts, and its dwords up to 0x100:
/// one capability every six dwords (24 bytes, room for the 20 of a
/// notification capability).
const SHADOW_FIRST: u16 = 0x40;
const SHADOW_DWORDS: usize = (LEGACY_CONFIG_SPACE_SIZE - SHADOW_FIRST) as usize / 4;
const SHADOW_STRIDE: usize = 6;

/// BAR bits (PCI Local Bus Specification 3.0 §6.2.5.1).
const BAR_IO: u32 = 1 << 0;
const BAR_IO_FLAGS: u32 = 0b11;
const BAR_MEM_64: u32 = 0b10 << 1;
const BAR_PREFETCHABLE: u32 = 1 << 3;
const BAR_MEM_FLAGS: u32 = 0xf;

/// A validated copy of a virtio function's BARs and capability list, to
/// serve a driver in place of the live registers.
///
/// A driver walking the live list would follow whatever the device says,
/// and some (virtio-drivers 0.13) loop on a looping list or overflow on a
/// capability near 0x100. The shadow's list is the [`VirtioLayout`]
/// rebuilt: one capability per structure, ending. Its BARs hold the
/// assigned addresses and behave like BARs (a write lands in the writable
/// bits, so sizing by writing all ones works), so a driver that sizes BARs
/// itself never touches the device's and derives only checked addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioShadow {
    bars: [u32; BARS_TYPE0],
    bar_writable: [u32; BARS_TYPE0],
    capabilities: [u32; SHADOW_DWORDS],
}

impl VirtioShadow {
    /// The shadow of a function with `bars` assigned and `layout`.
    pub fn new(bars: &AssignedBars, layout: &VirtioLayout) -> VirtioShadow {
        let mut shadow = VirtioShadow {
            bars: [0; BARS_TYPE0],
            bar_writable: [0; BARS_TYPE0],
            capabilities: [0; SHADOW_DWORDS],
        };
        for assigned in bars.iter() {
            let bar = assigned.bar;
            let i = usize::from(bar.index);
            let address_bits = !(bar.size - 1);
            let pci = assigned.placement.map_or(0, |p| p.pci.get());
            let prefetchable = if bar.prefetchable {
                BAR_PREFETCHABLE
            } else {
                0
            };
            let (value, writable) = match bar.kind {
                BarKind::Memory32 => (pci as u32 | prefetchable, address_bits as u32),
                BarKind::Memory64 => {
                    if i + 1 < BARS_TYPE0 {
                        shadow.bars[i + 1] = (pci >> 32) as u32;
                        shadow.bar_writable[i + 1] = (address_bits >> 32) as u32;
                    }
                    (pci as u32 | BAR_MEM_64 | prefetchable, address_bits as u32)
                }
                // Never assigned: address 0, so drivers see it unassigned.
                BarKind::Io => (BAR_IO, address_bits as u32 & !BAR_IO_FLAGS),
            };
            shadow.bars[i] = value;
            shadow.bar_writable[i] = writable
                & !match bar.kind {
                    BarKind::Io => BAR_IO_FLAGS,
                    _ => BAR_MEM_FLAGS,
                };
        }
        let entries = [
            (VirtioStructure::Common, Some(layout.common)),
            (VirtioStructure::Notify, Some(layout.notify)),
            (VirtioStructure::Isr, Some(layout.isr)),
            (VirtioStructure::Device, layout.device),
        ];
        let present = entries.iter().filter_map(|(s, r)| r.map(|r| (*s, r)));
        let count = present.clone().count();
        for (n, (structure, region)) in present.enumerate() {
            let at = SHADOW_STRIDE * n;
            let next = if n + 1 < count {
                u32::from(SHADOW_FIRST) + (SHADOW_STRIDE * (n + 1) * 4) as u32
            } else {
                0
            };
            let cap_len = if structure == VirtioStructure::Notify {
                NOTIFY_CAP_LEN
            } else {
                CAP_LEN
            };
            shadow.capabilities[at] = u32::from(structure as u8) << 24
                | u32::from(cap_len) << 16
                | next << 8
                | u32::from(CapabilityId::VENDOR_SPECIFIC.0);
            shadow.capabilities[at + 1] = u32::from(region.bar);
            shadow.capabilities[at + 2] = region.offset;
            shadow.capabilities[at + 3] = region.length;
            shadow.capabilities[at + 4] = layout.notify_off_multiplier;
        }
        shadow
    }

    /// What the shadow says register `reg` holds, or `None` if it is not
    /// shadowed (read the device).
    pub fn read(&self, reg: Register) -> Option<u32> {
        if let Some(slot) = bar_slot(reg) {
            return Some(self.bars[slot]);
        }
        if reg == Register::CAPABILITIES_POINTER {
            return Some(u32::from(SHADOW_FIRST));
        }
        let i = reg.offset().checked_sub(SHADOW_FIRST)? / 4;
        self.capabilities.get(usize::from(i)).copied()
    }

    /// Writes `value` to register `reg` if the shadow holds it (then
    /// returns true: the device must not see the write).
    pub fn write(&mut self, reg: Register, value: u32) -> bool {
        if let Some(slot) = bar_slot(reg) {
            let writable = self.bar_writable[slot];
            self.bars[slot] = (self.bars[slot] & !writable) | (value & writable);
            return true;
        }
        reg == Register::CAPABILITIES_POINTER
            || (SHADOW_FIRST..LEGACY_CONFIG_SPACE_SIZE).contains(&reg.offset())
    }
}

/// The BAR slot `reg` is, if it is one.
fn bar_slot(reg: Register) -> Option<usize> {
    let slot = usize::from(reg.offset().checked_sub(Register::BAR0.offset())? / 4);
    (slot < BARS_TYPE0).then_some(slot)
}

/// Configuration space `inner` with one function's BARs and capabilities
/// served from a [`VirtioShadow`].
#[derive(Clone, Copy, Debug)]
pub struct ShadowedConfig<C> {
    inner: C,
    bdf: Bdf,
    shadow: VirtioShadow,
}

impl<C: ConfigSpace> ShadowedConfig<C> {
    /// `inner`, with `bdf` seen through `shadow`.
    pub fn new(inner: C, bdf: Bdf, shadow: VirtioShadow) -> ShadowedConfig<C> {
        ShadowedConfig { inner, bdf, shadow }
    }

    /// The live configuration space.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: ConfigSpace> ConfigSpace for ShadowedConfig<C> {
    fn read32(&self, bdf: Bdf, reg: Register) -> u32 {
        let shadowed = if bdf == self.bdf {
            self.shadow.read(reg)
        } else {
            None
        };
        shadowed.unwrap_or_else(|| self.inner.read32(bdf, reg))
    }

    fn write32(&mut self, bdf: Bdf, reg: Register, value: u32) {
        if bdf != self.bdf || !self.shadow.write(reg, value) {
            self.inner.write32(bdf, reg, value);
        }
    }
}
