//! Checking a trapped access's size and alignment, and the register banks
//! the distributor and redistributors share (bitmaps, priorities, config).

use crate::irq::{Irq, Trigger};
use crate::{AccessError, IntId, Loc, VcpuSet, Vgic, PRIORITY_MASK};

/// Which widths a register takes (GICv3 §12.1.3: 32-bit registers take
/// word accesses, the byte-granular ones bytes too, 64-bit ones doublewords
/// or either word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// 32-bit only.
    Word,
    /// Bytes or words (IPRIORITYR, ITARGETSR, [CS]PENDSGIR).
    ByteOrWord,
    /// A 64-bit register: doubleword, or either 32-bit half.
    Double,
    /// Reserved space: any width reads as zero.
    Any,
}

impl Shape {
    pub(crate) fn check(self, offset: u64, size: u8) -> Result<(), AccessError> {
        let ok = match self {
            Self::Word => size == 4,
            Self::ByteOrWord => size == 1 || size == 4,
            Self::Double => size == 4 || size == 8,
            Self::Any => true,
        };
        if ok {
            Ok(())
        } else {
            Err(AccessError::WrongWidth { offset, size })
        }
    }
}

/// The checks every access gets before decoding: a width the bus has,
/// inside the frame, naturally aligned.
pub(crate) fn check(offset: u64, size: u8, frame: u64) -> Result<(), AccessError> {
    if !matches!(size, 1 | 2 | 4 | 8) {
        return Err(AccessError::BadSize { offset, size });
    }
    if offset >= frame {
        return Err(AccessError::OutOfFrame { offset });
    }
    if !offset.is_multiple_of(u64::from(size)) {
        return Err(AccessError::Unaligned { offset, size });
    }
    Ok(())
}

/// The low `size` bytes of `value`.
pub(crate) fn truncate(value: u64, size: u8) -> u64 {
    match size {
        8 => value,
        _ => value & ((1u64 << (u32::from(size) * 8)) - 1),
    }
}

/// A read of a 64-bit register: all of it, or the 32-bit half at `offset`.
pub(crate) fn read64(reg: u64, offset: u64, size: u8) -> u64 {
    if size == 8 {
        reg
    } else {
        (reg >> ((offset & 4) * 8)) & 0xffff_ffff
    }
}

/// A write to a 64-bit register: all of it, or the 32-bit half at `offset`.
pub(crate) fn write64(reg: u64, offset: u64, size: u8, value: u64) -> u64 {
    if size == 8 {
        value
    } else {
        let shift = (offset & 4) * 8;
        (reg & !(0xffff_ffff << shift)) | ((value & 0xffff_ffff) << shift)
    }
}

/// The one-bit-per-interrupt registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BitReg {
    /// IGROUPR: read-write.
    Group,
    /// ISENABLER: write 1 to set.
    SetEnable,
    /// ICENABLER: write 1 to clear.
    ClearEnable,
    /// ISPENDR.
    SetPending,
    /// ICPENDR.
    ClearPending,
    /// ISACTIVER.
    SetActive,
    /// ICACTIVER.
    ClearActive,
}

impl BitReg {
    /// The register of each 0x80-byte block from offset 0x80 (IGROUPR) to
    /// 0x3ff (ICACTIVER), in both the distributor and the SGI_base frame.
    pub(crate) const BLOCKS: [Self; 7] = [
        Self::Group,
        Self::SetEnable,
        Self::ClearEnable,
        Self::SetPending,
        Self::ClearPending,
        Self::SetActive,
        Self::ClearActive,
    ];

    fn read(self, irq: &Irq) -> bool {
        match self {
            Self::Group => irq.group1,
            Self::SetEnable | Self::ClearEnable => irq.enabled,
            Self::SetPending | Self::ClearPending => irq.pending(),
            Self::SetActive | Self::ClearActive => irq.active,
        }
    }
}

/// Whose interrupts a register bank shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum View {
    /// The distributor: SPIs only (SGIs and PPIs are RAZ/WI there with
    /// affinity routing on).
    Dist,
    /// A vCPU's SGI_base frame: its SGIs and PPIs only.
    Redist(usize),
}

impl Vgic {
    /// Where INTID `intid` lives as `view` sees it; `None` for one it does
    /// not show (RAZ/WI).
    pub(crate) fn view_loc(&self, view: View, intid: u32) -> Option<Loc> {
        let id = IntId::new(intid)?;
        match view {
            View::Dist if !id.is_private() => self.loc(id, 0).ok(),
            View::Redist(vcpu) if id.is_private() => self.loc(id, vcpu).ok(),
            _ => None,
        }
    }

    /// A read of the bitmap register covering INTIDs `first..first + 32`.
    pub(crate) fn bits_read(&self, view: View, reg: BitReg, first: u32) -> u64 {
        (0..32u32)
            .filter(|bit| {
                self.view_loc(view, first + bit)
                    .and_then(|loc| self.irq(loc))
                    .is_some_and(|irq| reg.read(irq))
            })
            .fold(0, |acc, bit| acc | 1 << bit)
    }

    /// A write of `value` to the bitmap register covering INTIDs
    /// `first..first + 32`.
    pub(crate) fn bits_write(
        &mut self,
        view: View,
        reg: BitReg,
        first: u32,
        value: u64,
        kick: &mut VcpuSet,
    ) {
        for bit in 0..32u32 {
            let Some(loc) = self.view_loc(view, first + bit) else {
                continue;
            };
            let set = value & (1 << bit) != 0;
            match reg {
                // See the `hw` module: only the device makes a linked SPI
                // pending or active.
                BitReg::SetPending | BitReg::SetActive if self.is_hw(loc) => {}
                BitReg::Group => self.update(loc, kick, |irq| irq.group1 = set),
                _ if !set => {}
                BitReg::SetEnable => self.update(loc, kick, |irq| irq.enabled = true),
                BitReg::ClearEnable => self.update(loc, kick, |irq| irq.enabled = false),
                BitReg::SetPending => self.update(loc, kick, Irq::set_pending),
                BitReg::ClearPending => self.update(loc, kick, Irq::clear_pending),
                BitReg::SetActive => self.set_active(loc, true, kick),
                BitReg::ClearActive => self.set_active(loc, false, kick),
            }
        }
    }

    /// ISACTIVER/ICACTIVER: an SPI made active here is active on the vCPU
    /// it is routed to (or, routed 1-of-N, on whichever takes it first).
    fn set_active(&mut self, loc: Loc, active: bool, kick: &mut VcpuSet) {
        if let Loc::Shared { index } = loc {
            let target = self
                .spis
                .get(index)
                .map(|spi| (spi.irq.active, spi.active_on, self.route(spi.router)));
            if let (Some((was, on, route)), Some(spi)) = (target, self.spis.get_mut(index)) {
                spi.active_on = match (active, was, route) {
                    (false, _, _) => None,
                    (true, true, _) => on,
                    (true, false, crate::Route::Vcpu(vcpu)) => Some(vcpu),
                    (true, false, _) => None,
                };
            }
        }
        self.update(loc, kick, |irq| irq.active = active);
    }

    /// A read of `size` IPRIORITYR bytes from INTID `first` on.
    pub(crate) fn priority_read(&self, view: View, first: u32, size: u8) -> u64 {
        (0..u32::from(size))
            .map(|i| {
                self.view_loc(view, first + i)
                    .and_then(|loc| self.irq(loc))
                    .map_or(0, |irq| u64::from(irq.priority))
            })
            .enumerate()
            .fold(0, |acc, (i, byte)| acc | byte << (8 * i))
    }

    /// A write of `size` IPRIORITYR bytes from INTID `first` on; only the
    /// implemented priority bits are kept.
    pub(crate) fn priority_write(
        &mut self,
        view: View,
        first: u32,
        size: u8,
        value: u64,
        kick: &mut VcpuSet,
    ) {
        for i in 0..u32::from(size) {
            if let Some(loc) = self.view_loc(view, first + i) {
                let priority = (value >> (8 * i)) as u8 & PRIORITY_MASK;
                self.update(loc, kick, |irq| irq.priority = priority);
            }
        }
    }

    /// A read of ICFGR`n` (INTIDs `16n..16n + 16`, two bits each; the upper
    /// bit of each pair set means edge-triggered, the lower is RES0).
    pub(crate) fn config_read(&self, view: View, n: u32) -> u64 {
        (0..16u32)
            .filter(|k| {
                self.view_loc(view, 16 * n + k)
                    .and_then(|loc| self.irq(loc))
                    .is_some_and(|irq| irq.trigger == Trigger::Edge)
            })
            .fold(0, |acc, k| acc | 2 << (2 * k))
    }

    /// A write of ICFGR`n`; SGIs' fields are read-only (always edge).
    pub(crate) fn config_write(&mut self, view: View, n: u32, value: u64, kick: &mut VcpuSet) {
        for k in 0..16u32 {
            let intid = 16 * n + k;
            if intid < IntId::FIRST_PPI {
                continue;
            }
            if let Some(loc) = self.view_loc(view, intid) {
                let trigger = if value & (2 << (2 * k)) != 0 {
                    Trigger::Edge
                } else {
                    Trigger::Level
                };
                self.update(loc, kick, |irq| irq.trigger = trigger);
            }
        }
    }
}
