//! Host tests. Helpers here; scenarios per file.

extern crate std;

use std::vec;
use std::vec::Vec;

use crate::lr::{ListRegister, LrState};
use crate::{Effects, FlushResult, IntId, VcpuSet, Vgic};

mod delivery;
mod dist;
mod flow;
mod hw;
mod hw_prop;
mod linux;
mod live;
mod lr;
mod migration;
mod overflow;
mod prop;
mod redist;
mod sgi;
mod types;

/// The SGI_base frame in a redistributor.
const SGI_BASE: u64 = 0x1_0000;

/// Distributor offsets the tests use.
mod gicd {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const TYPER2: u64 = 0x000c;
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const ISACTIVER: u64 = 0x0300;
    pub const ICACTIVER: u64 = 0x0380;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ITARGETSR: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0c00;
    pub const IGRPMODR: u64 = 0x0d00;
    pub const IROUTER: u64 = 0x6000;
    pub const PIDR2: u64 = 0xffe8;
}

/// Redistributor offsets the tests use (SGI_base ones include the frame).
mod gicr {
    use super::SGI_BASE;
    pub const CTLR: u64 = 0x0000;
    pub const IIDR: u64 = 0x0004;
    pub const TYPER: u64 = 0x0008;
    pub const WAKER: u64 = 0x0014;
    pub const PROPBASER: u64 = 0x0070;
    pub const PENDBASER: u64 = 0x0078;
    pub const PIDR2: u64 = 0xffe8;
    pub const IGROUPR0: u64 = SGI_BASE + 0x0080;
    pub const ISENABLER0: u64 = SGI_BASE + 0x0100;
    pub const ICENABLER0: u64 = SGI_BASE + 0x0180;
    pub const ISPENDR0: u64 = SGI_BASE + 0x0200;
    pub const ICPENDR0: u64 = SGI_BASE + 0x0280;
    pub const ISACTIVER0: u64 = SGI_BASE + 0x0300;
    pub const ICACTIVER0: u64 = SGI_BASE + 0x0380;
    pub const IPRIORITYR: u64 = SGI_BASE + 0x0400;
    pub const ICFGR0: u64 = SGI_BASE + 0x0c00;
    pub const ICFGR1: u64 = SGI_BASE + 0x0c04;
    pub const IGRPMODR0: u64 = SGI_BASE + 0x0d00;
}

/// The virtual timer's PPI.
const TIMER: u32 = 27;
/// The UART's SPI.
const UART: u32 = 33;

fn id(n: u32) -> IntId {
    IntId::new(n).unwrap()
}

fn set(vcpus: &[usize]) -> VcpuSet {
    let mut s = VcpuSet::EMPTY;
    for &v in vcpus {
        s.insert(v);
    }
    s
}

fn dr(g: &Vgic, offset: u64) -> u64 {
    g.dist_read(offset, 4).unwrap().value
}

fn dw(g: &mut Vgic, offset: u64, value: u64) -> Effects {
    g.dist_write(offset, 4, value).unwrap()
}

fn rr(g: &Vgic, vcpu: usize, offset: u64) -> u64 {
    g.redist_read(vcpu, offset, 4).unwrap().value
}

fn rw(g: &mut Vgic, vcpu: usize, offset: u64, value: u64) -> Effects {
    g.redist_write(vcpu, offset, 4, value).unwrap()
}

/// The bitmap register and bit of `intid` at `base`.
fn bit(base: u64, intid: u32) -> (u64, u64) {
    (base + u64::from(intid / 32) * 4, 1 << (intid % 32))
}

/// A VM as a booted Linux leaves it: distributor on, every redistributor
/// awake.
fn booted(vcpus: usize, spis: u32) -> Vgic {
    let mut g = Vgic::new(vcpus, spis).unwrap();
    let _ = dw(&mut g, gicd::CTLR, 0x12);
    for v in 0..vcpus {
        let _ = rw(&mut g, v, gicr::WAKER, 0);
    }
    g
}

/// Enables `intid` (of `vcpu` if private) and sets its priority.
fn enable(g: &mut Vgic, vcpu: usize, intid: u32, priority: u8) {
    if intid < 32 {
        let _ = rw(g, vcpu, gicr::ISENABLER0, 1 << intid);
        let _ = g
            .redist_write(
                vcpu,
                gicr::IPRIORITYR + u64::from(intid),
                1,
                priority.into(),
            )
            .unwrap();
    } else {
        let (off, mask) = bit(gicd::ISENABLER, intid);
        let _ = dw(g, off, mask);
        let _ = g
            .dist_write(gicd::IPRIORITYR + u64::from(intid), 1, priority.into())
            .unwrap();
    }
}

/// Routes SPI `intid` to `vcpu`.
fn route(g: &mut Vgic, intid: u32, vcpu: usize) {
    let _ = g
        .dist_write(
            gicd::IROUTER + 8 * u64::from(intid),
            8,
            crate::vcpu_affinity(vcpu),
        )
        .unwrap();
}

/// Flushes `n` list registers of `vcpu`.
fn flush(g: &mut Vgic, vcpu: usize, n: usize) -> (FlushResult, Vec<u64>) {
    let mut lrs = vec![0xdead_beef_u64; n];
    let r = g.flush(vcpu, &mut lrs).unwrap();
    (r, lrs)
}

/// The (INTID, state) of each valid list register.
fn entries(lrs: &[u64]) -> Vec<(u32, LrState)> {
    lrs.iter()
        .map(|&b| ListRegister::from_bits(b))
        .filter(|lr| lr.state() != LrState::Invalid)
        .map(|lr| (lr.vintid(), lr.state()))
        .collect()
}

/// The guest acknowledges the interrupt in `lrs[i]`.
fn ack(lrs: &mut [u64], i: usize) {
    let lr = ListRegister::from_bits(lrs[i]);
    assert_eq!(
        lr.state(),
        LrState::Pending,
        "only a pending entry is acknowledged"
    );
    lrs[i] = lr.with_state(LrState::Active).bits();
}

/// The guest deactivates the interrupt in `lrs[i]` (EOI with EOImode 0).
fn eoi(lrs: &mut [u64], i: usize) {
    let lr = ListRegister::from_bits(lrs[i]);
    let after = match lr.state() {
        LrState::Active => LrState::Invalid,
        LrState::PendingActive => LrState::Pending,
        other => panic!("EOI of a {other:?} entry"),
    };
    lrs[i] = lr.with_state(after).bits();
}
