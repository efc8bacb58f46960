//! The distributor's registers (GICv3 §12.9, IHI 0069), as a guest with
//! affinity routing sees them.

use crate::access::{self, BitReg, Shape, View};
use crate::{AccessError, Effects, IntId, Read, VcpuSet, Vgic, DIST_FRAME_SIZE, IROUTER_IRM};

/// Register offsets in the distributor frame.
pub(crate) mod offset {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const TYPER2: u64 = 0x000c;
    pub const STATUSR: u64 = 0x0010;
    /// IGROUPR<n>, then ISENABLER, ICENABLER, ISPENDR, ICPENDR, ISACTIVER,
    /// ICACTIVER: seven blocks of 32 registers.
    pub const IGROUPR: u64 = 0x0080;
    pub const BITMAP_BLOCK: u64 = 0x0080;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ITARGETSR: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0c00;
    pub const IGRPMODR: u64 = 0x0d00;
    pub const NSACR: u64 = 0x0e00;
    pub const SGIR: u64 = 0x0f00;
    /// CPENDSGIR<n> then SPENDSGIR<n>, four registers each.
    pub const CPENDSGIR: u64 = 0x0f10;
    pub const SPENDSGIR_END: u64 = 0x0f30;
    /// IROUTER<n> is at `IROUTER + 8n`, for n = 32..1019.
    pub const IROUTER: u64 = 0x6000;
    pub const IROUTER_FIRST: u64 = IROUTER + 8 * 32;
    pub const IROUTER_END: u64 = IROUTER + 8 * 1020;
    pub const ID_REGS: u64 = 0xffd0;
    pub const PIDR2: u64 = 0xffe8;
}

/// `GICD_CTLR` bits in the single-security-state layout (DS = 1).
mod ctlr {
    /// EnableGrp1.
    pub const ENABLE_GRP1: u64 = 1 << 1;
    /// ARE: affinity routing, RAO/WI.
    pub const ARE: u64 = 1 << 4;
    /// DS: security disabled, RAO/WI: the guest sees one security state.
    pub const DS: u64 = 1 << 6;
}

/// `GICD_TYPER.IDbits` (bits 23:19): INTIDs are 10 bits (value + 1).
const TYPER_IDBITS: u64 = 9 << 19;

/// `GICD_IIDR` (also `GICR_IIDR`): implementer 0x43b (JEP106 for Arm, as
/// KVM reports), product ID 0x48 ('H'), so that no Linux quirk keyed on a
/// real GIC's IIDR matches.
pub(crate) const IIDR: u64 = 0x4800_043b;

/// `PIDR2` of both frames: ArchRev (bits 7:4) = 3 for GICv3, with the
/// JEDEC bit and DES_1 that go with the implementer in IIDR.
pub(crate) const PIDR2: u64 = 0x3b;

/// The IROUTER fields kept: IRM and Aff2.Aff1.Aff0. Aff3 is RES0 because
/// `GICD_TYPER.A3V` is 0; everything else is RES0 anyway.
const IROUTER_MASK: u64 = IROUTER_IRM | 0xff_ffff;

/// A decoded distributor offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Ctlr,
    Typer,
    Iidr,
    Pidr2,
    /// Implemented, reads as zero, ignores writes.
    RazWi,
    /// No register here.
    Reserved,
    /// A bitmap register covering INTIDs `first..first + 32`.
    Bits(BitReg, u32),
    /// IPRIORITYR bytes from this INTID on.
    Priority(u32),
    /// ICFGR<n>.
    Config(u32),
    /// IROUTER of this INTID (the 64-bit register; the access may be half).
    Router(u32),
}

fn decode(offset: u64) -> (Reg, Shape) {
    use offset::*;
    let index = |base: u64, stride: u64| ((offset - base) / stride) as u32;
    match offset {
        CTLR => (Reg::Ctlr, Shape::Word),
        TYPER => (Reg::Typer, Shape::Word),
        IIDR => (Reg::Iidr, Shape::Word),
        // TYPER2 is all zero: no vPE IDs, no nASSGI, no extended ranges.
        TYPER2 | STATUSR => (Reg::RazWi, Shape::Word),
        IGROUPR..IPRIORITYR => {
            let block = index(IGROUPR, BITMAP_BLOCK) as usize;
            let n = index(IGROUPR + block as u64 * BITMAP_BLOCK, 4);
            match BitReg::BLOCKS.get(block) {
                Some(&reg) => (Reg::Bits(reg, 32 * n), Shape::Word),
                None => (Reg::Reserved, Shape::Any),
            }
        }
        IPRIORITYR..ITARGETSR => (Reg::Priority(index(IPRIORITYR, 1)), Shape::ByteOrWord),
        // GICv2 targets: RES0 with affinity routing.
        ITARGETSR..ICFGR => (Reg::RazWi, Shape::ByteOrWord),
        ICFGR..IGRPMODR => (Reg::Config(index(ICFGR, 4)), Shape::Word),
        // IGRPMODR and NSACR are RAZ/WI with a single security state;
        // GICD_SGIR is GICv2 only.
        IGRPMODR..0x0d80 | NSACR..SGIR | SGIR => (Reg::RazWi, Shape::Word),
        CPENDSGIR..SPENDSGIR_END => (Reg::RazWi, Shape::ByteOrWord),
        IROUTER_FIRST..IROUTER_END => (Reg::Router(index(IROUTER, 8)), Shape::Double),
        PIDR2 => (Reg::Pidr2, Shape::Word),
        ID_REGS..DIST_FRAME_SIZE => (Reg::RazWi, Shape::Word),
        _ => (Reg::Reserved, Shape::Any),
    }
}

impl Vgic {
    /// A guest's read of `size` bytes at `offset` in the distributor frame.
    ///
    /// # Errors
    ///
    /// [`AccessError::BadSize`], [`AccessError::OutOfFrame`],
    /// [`AccessError::Unaligned`], or [`AccessError::WrongWidth`] for a
    /// width the register does not take. A reserved offset is not an error:
    /// it reads as zero with [`Read::unknown`] set.
    pub fn dist_read(&self, offset: u64, size: u8) -> Result<Read, AccessError> {
        access::check(offset, size, DIST_FRAME_SIZE)?;
        let (reg, shape) = decode(offset);
        shape.check(offset, size)?;
        let value = match reg {
            Reg::Ctlr => {
                let enable = if self.group1_enabled {
                    ctlr::ENABLE_GRP1
                } else {
                    0
                };
                ctlr::ARE | ctlr::DS | enable
            }
            Reg::Typer => self.dist_typer(),
            Reg::Iidr => IIDR,
            Reg::Pidr2 => PIDR2,
            Reg::RazWi | Reg::Reserved => 0,
            Reg::Bits(bits, first) => self.bits_read(View::Dist, bits, first),
            Reg::Priority(first) => self.priority_read(View::Dist, first, size),
            Reg::Config(n) => self.config_read(View::Dist, n),
            Reg::Router(intid) => self
                .spi_index(intid)
                .and_then(|index| self.spis.get(index))
                .map_or(0, |spi| access::read64(spi.router, offset, size)),
        };
        Ok(Read {
            value: access::truncate(value, size),
            unknown: reg == Reg::Reserved,
        })
    }

    /// A guest's write of the low `size` bytes of `value` at `offset` in the
    /// distributor frame.
    ///
    /// # Errors
    ///
    /// As for [`Vgic::dist_read`]; a reserved offset ignores the write and
    /// sets [`Effects::unknown`].
    pub fn dist_write(
        &mut self,
        offset: u64,
        size: u8,
        value: u64,
    ) -> Result<Effects, AccessError> {
        access::check(offset, size, DIST_FRAME_SIZE)?;
        let (reg, shape) = decode(offset);
        shape.check(offset, size)?;
        let value = access::truncate(value, size);
        let mut kick = VcpuSet::EMPTY;
        match reg {
            Reg::Ctlr => {
                let enable = value & ctlr::ENABLE_GRP1 != 0;
                if enable != self.group1_enabled {
                    self.group1_enabled = enable;
                    // Everything pending may have become deliverable, or
                    // stopped being so under some vCPU's list registers.
                    kick = self.all_vcpus();
                }
            }
            Reg::Typer | Reg::Iidr | Reg::Pidr2 | Reg::RazWi | Reg::Reserved => {}
            Reg::Bits(bits, first) => self.bits_write(View::Dist, bits, first, value, &mut kick),
            Reg::Priority(first) => self.priority_write(View::Dist, first, size, value, &mut kick),
            Reg::Config(n) => self.config_write(View::Dist, n, value, &mut kick),
            Reg::Router(intid) => {
                if let Some(index) = self.spi_index(intid) {
                    self.write_router(index, offset, size, value, &mut kick);
                }
            }
        }
        Ok(Effects {
            kick,
            unknown: reg == Reg::Reserved,
        })
    }

    /// `GICD_TYPER`: ITLinesNumber for `nr_spis`, IDbits 10, no LPIs, no
    /// MBIS, no security extension, CPUNumber 0 (meaningless with ARE),
    /// 1-of-N supported (No1N = 0), RSS = 0 (Aff0 0..15 in SGIs).
    fn dist_typer(&self) -> u64 {
        let it_lines = u64::from((IntId::FIRST_SPI + self.nr_spis) / 32 - 1);
        TYPER_IDBITS | it_lines
    }

    /// The SPI index of INTID `intid`, if the VM has that SPI.
    fn spi_index(&self, intid: u32) -> Option<usize> {
        let index = intid.checked_sub(IntId::FIRST_SPI)?;
        (index < self.nr_spis).then_some(index as usize)
    }

    fn write_router(
        &mut self,
        index: usize,
        offset: u64,
        size: u8,
        value: u64,
        kick: &mut VcpuSet,
    ) {
        let Some(spi) = self.spis.get_mut(index) else {
            return;
        };
        let router = access::write64(spi.router, offset, size, value) & IROUTER_MASK;
        if router == spi.router {
            return;
        }
        spi.router = router;
        // The new target may take it now; whoever holds it in a list
        // register should give it back so it can move.
        self.kicks_for(crate::Loc::Shared { index }, kick);
    }
}
