//! A vCPU's redistributor (GICv3 §12.10, §12.11, IHI 0069): the RD_base
//! frame (control, identification, power) then the SGI_base frame (its SGIs
//! and PPIs).

use crate::access::{self, BitReg, Shape, View};
use crate::dist::{IIDR, PIDR2};
use crate::{AccessError, Effects, Read, VcpuSet, Vgic, REDIST_FRAME_SIZE};

/// Register offsets in a redistributor's 128 KiB.
pub(crate) mod offset {
    pub const CTLR: u64 = 0x0000;
    pub const IIDR: u64 = 0x0004;
    pub const TYPER: u64 = 0x0008;
    pub const STATUSR: u64 = 0x0010;
    pub const WAKER: u64 = 0x0014;
    pub const PROPBASER: u64 = 0x0070;
    pub const PENDBASER: u64 = 0x0078;
    pub const SYNCR: u64 = 0x00c0;
    pub const ID_REGS: u64 = 0xffd0;
    pub const PIDR2: u64 = 0xffe8;
    /// The SGI_base frame.
    pub const SGI_BASE: u64 = 0x1_0000;
    /// In the SGI_base frame: IGROUPR0, then ISENABLER0 ... ICACTIVER0, one
    /// register every 0x80 bytes.
    pub const IGROUPR0: u64 = 0x0080;
    pub const BITMAP_BLOCK: u64 = 0x0080;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const IPRIORITYR_END: u64 = 0x0420;
    pub const ICFGR0: u64 = 0x0c00;
    pub const ICFGR1: u64 = 0x0c04;
    pub const IGRPMODR0: u64 = 0x0d00;
    pub const NSACR: u64 = 0x0e00;
}

/// `GICR_TYPER` fields.
mod typer {
    /// This is the last redistributor in the region.
    pub const LAST: u64 = 1 << 4;
    /// Processor_Number, bits 23:8.
    pub const PROCESSOR_NUMBER_SHIFT: u32 = 8;
    /// Affinity_Value, bits 63:32 (Aff3.Aff2.Aff1.Aff0).
    pub const AFFINITY_SHIFT: u32 = 32;
}

/// `GICR_WAKER` fields.
mod waker {
    pub const PROCESSOR_SLEEP: u64 = 1 << 1;
    pub const CHILDREN_ASLEEP: u64 = 1 << 2;
}

/// A decoded redistributor offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Iidr,
    Typer,
    Waker,
    Propbaser,
    Pendbaser,
    Pidr2,
    /// Implemented, reads as zero, ignores writes.
    RazWi,
    /// No register here.
    Reserved,
    /// Bitmap register 0 of the SGI_base frame (INTIDs 0..32).
    Bits(BitReg),
    /// IPRIORITYR bytes from this INTID on.
    Priority(u32),
    /// ICFGR0 (SGIs, read-only) or ICFGR1 (PPIs).
    Config(u32),
}

fn decode(offset: u64) -> (Reg, Shape) {
    use offset::*;
    if offset >= SGI_BASE {
        return decode_sgi(offset - SGI_BASE);
    }
    match offset {
        // No LPIs, so EnableLPIs is RES0; RWP and UWP read 0 (writes take
        // effect at once); DPG* are not offered.
        CTLR | STATUSR | SYNCR => (Reg::RazWi, Shape::Word),
        IIDR => (Reg::Iidr, Shape::Word),
        TYPER | 0x000c => (Reg::Typer, Shape::Double),
        WAKER => (Reg::Waker, Shape::Word),
        PROPBASER | 0x0074 => (Reg::Propbaser, Shape::Double),
        PENDBASER | 0x007c => (Reg::Pendbaser, Shape::Double),
        PIDR2 => (Reg::Pidr2, Shape::Word),
        ID_REGS..SGI_BASE => (Reg::RazWi, Shape::Word),
        _ => (Reg::Reserved, Shape::Any),
    }
}

fn decode_sgi(offset: u64) -> (Reg, Shape) {
    use offset::*;
    match offset {
        IGROUPR0..IPRIORITYR if offset.is_multiple_of(BITMAP_BLOCK) => {
            let block = ((offset - IGROUPR0) / BITMAP_BLOCK) as usize;
            match BitReg::BLOCKS.get(block) {
                Some(&reg) => (Reg::Bits(reg), Shape::Word),
                None => (Reg::Reserved, Shape::Any),
            }
        }
        IPRIORITYR..IPRIORITYR_END => (
            Reg::Priority((offset - IPRIORITYR) as u32),
            Shape::ByteOrWord,
        ),
        ICFGR0 => (Reg::Config(0), Shape::Word),
        ICFGR1 => (Reg::Config(1), Shape::Word),
        // IGRPMODR0 and NSACR are RAZ/WI with a single security state.
        IGRPMODR0 | NSACR => (Reg::RazWi, Shape::Word),
        _ => (Reg::Reserved, Shape::Any),
    }
}

impl Vgic {
    /// A guest's read of `size` bytes at `offset` in vCPU `vcpu`'s
    /// redistributor (RD_base frame at 0, SGI_base frame at 0x1_0000).
    ///
    /// # Errors
    ///
    /// [`AccessError::NoSuchVcpu`], [`AccessError::BadSize`],
    /// [`AccessError::OutOfFrame`], [`AccessError::Unaligned`], or
    /// [`AccessError::WrongWidth`] for a width the register does not take. A
    /// reserved offset reads as zero with [`Read::unknown`] set.
    pub fn redist_read(&self, vcpu: usize, offset: u64, size: u8) -> Result<Read, AccessError> {
        let state = self
            .vcpus
            .get(vcpu)
            .ok_or(AccessError::NoSuchVcpu { vcpu })?;
        access::check(offset, size, REDIST_FRAME_SIZE)?;
        let (reg, shape) = decode(offset);
        shape.check(offset, size)?;
        let value = match reg {
            Reg::Iidr => IIDR,
            Reg::Typer => access::read64(self.redist_typer(vcpu), offset, size),
            Reg::Waker if state.asleep => waker::PROCESSOR_SLEEP | waker::CHILDREN_ASLEEP,
            Reg::Waker => 0,
            Reg::Propbaser => access::read64(state.propbaser, offset, size),
            Reg::Pendbaser => access::read64(state.pendbaser, offset, size),
            Reg::Pidr2 => PIDR2,
            Reg::RazWi | Reg::Reserved => 0,
            Reg::Bits(bits) => self.bits_read(View::Redist(vcpu), bits, 0),
            Reg::Priority(first) => self.priority_read(View::Redist(vcpu), first, size),
            Reg::Config(n) => self.config_read(View::Redist(vcpu), n),
        };
        Ok(Read {
            value: access::truncate(value, size),
            unknown: reg == Reg::Reserved,
        })
    }

    /// A guest's write of the low `size` bytes of `value` at `offset` in
    /// vCPU `vcpu`'s redistributor.
    ///
    /// # Errors
    ///
    /// As for [`Vgic::redist_read`]; a reserved offset ignores the write and
    /// sets [`Effects::unknown`].
    pub fn redist_write(
        &mut self,
        vcpu: usize,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<Effects, AccessError> {
        if vcpu >= self.vcpus.len() {
            return Err(AccessError::NoSuchVcpu { vcpu });
        }
        access::check(offset, size, REDIST_FRAME_SIZE)?;
        let (reg, shape) = decode(offset);
        shape.check(offset, size)?;
        let value = access::truncate(value, size);
        let mut kick = VcpuSet::EMPTY;
        let view = View::Redist(vcpu);
        match reg {
            Reg::Waker => {
                // ChildrenAsleep follows ProcessorSleep at once: there is
                // nothing to quiesce.
                let asleep = value & waker::PROCESSOR_SLEEP != 0;
                if let Some(state) = self.vcpus.get_mut(vcpu) {
                    if state.asleep && !asleep {
                        // It may now take 1-of-N SPIs.
                        kick.insert(vcpu);
                    }
                    state.asleep = asleep;
                }
            }
            Reg::Propbaser | Reg::Pendbaser => {
                if let Some(state) = self.vcpus.get_mut(vcpu) {
                    let field = if reg == Reg::Propbaser {
                        &mut state.propbaser
                    } else {
                        &mut state.pendbaser
                    };
                    *field = access::write64(*field, offset, size, value);
                }
            }
            Reg::Iidr | Reg::Typer | Reg::Pidr2 | Reg::RazWi | Reg::Reserved => {}
            Reg::Bits(bits) => self.bits_write(view, bits, 0, value, &mut kick),
            Reg::Priority(first) => self.priority_write(view, first, size, value, &mut kick),
            Reg::Config(n) => self.config_write(view, n, value, &mut kick),
        }
        Ok(Effects {
            kick,
            unknown: reg == Reg::Reserved,
        })
    }

    /// `GICR_TYPER`: the vCPU's affinity, its index as Processor_Number,
    /// Last on the last vCPU; no physical or virtual LPIs, no DirectLPI.
    fn redist_typer(&self, vcpu: usize) -> u64 {
        let last = if vcpu + 1 == self.vcpus.len() {
            typer::LAST
        } else {
            0
        };
        crate::vcpu_affinity(vcpu) << typer::AFFINITY_SHIFT
            | (vcpu as u64 & 0xffff) << typer::PROCESSOR_NUMBER_SHIFT
            | last
    }
}
