//! Error types. A guest's bad access ([`AccessError`]) is kept apart from a
//! caller's bad argument ([`Error`]) and a bad configuration ([`ConfigError`]).

use core::fmt;

use crate::{IntId, PhysIntId};

/// Why a guest's MMIO access cannot be emulated; the hypervisor injects a
/// synchronous external abort for it. Reserved offsets are *not* errors:
/// they read as zero and ignore writes (see [`crate::Read::unknown`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// The access is not 1, 2, 4 or 8 bytes wide.
    BadSize {
        /// Offset in the frame.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// The access is not naturally aligned.
    Unaligned {
        /// Offset in the frame.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// The register does not take accesses of this width (for example a
    /// 64-bit access to a 32-bit register, or a byte access to one that is
    /// not byte-accessible), GICv3 §12.1.3.
    WrongWidth {
        /// Offset in the frame.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// The offset is past the end of the frame.
    OutOfFrame {
        /// Offset asked for.
        offset: u64,
    },
    /// There is no redistributor for this vCPU index.
    NoSuchVcpu {
        /// vCPU index asked for.
        vcpu: usize,
    },
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSize { offset, size } => {
                write!(
                    f,
                    "{size}-byte access at {offset:#x}: not 1, 2, 4 or 8 bytes"
                )
            }
            Self::Unaligned { offset, size } => {
                write!(f, "{size}-byte access at {offset:#x} is not aligned")
            }
            Self::WrongWidth { offset, size } => {
                write!(f, "the register at {offset:#x} takes no {size}-byte access")
            }
            Self::OutOfFrame { offset } => write!(f, "offset {offset:#x} is past the frame"),
            Self::NoSuchVcpu { vcpu } => write!(f, "no redistributor for vCPU {vcpu}"),
        }
    }
}

/// Why a call from the hypervisor (a device model, the SGI trap, the list
/// register code) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No vCPU has this index.
    NoSuchVcpu {
        /// The index given.
        vcpu: usize,
    },
    /// The interrupt is not implemented: an SPI past the VM's count.
    NoSuchIntId {
        /// The interrupt given.
        intid: IntId,
    },
    /// `sync`: list register `lr` no longer holds the interrupt `flush`
    /// put there (its vINTID changed), or was not handed back. The model
    /// kept the interrupt's state as it was at `flush`.
    LrMismatch {
        /// Index of the list register.
        lr: usize,
        /// The interrupt `flush` put there.
        expected: IntId,
    },
    /// `sync`: list register `lr` holds a valid entry that `flush` did not
    /// put there. It was ignored.
    UnexpectedLr {
        /// Index of the list register.
        lr: usize,
    },
    /// Only an SPI can be linked to a physical interrupt.
    NotAnSpi {
        /// The interrupt given.
        intid: IntId,
    },
    /// The SPI is linked to physical interrupt `pintid`: it cannot be
    /// linked again, and only [`crate::Vgic::hw_interrupt`] makes it
    /// pending ([`crate::Vgic::set_level`] and
    /// [`crate::Vgic::inject_edge`] refuse it).
    HwLinked {
        /// The virtual SPI.
        intid: IntId,
        /// The physical interrupt it is linked to.
        pintid: PhysIntId,
    },
    /// The SPI is not linked to a physical interrupt.
    NotHwLinked {
        /// The virtual SPI.
        intid: IntId,
    },
    /// Physical interrupt `pintid` is already linked to another SPI of this
    /// VM: one physical activation can be handed to one virtual interrupt
    /// only.
    PintidInUse {
        /// The physical interrupt.
        pintid: PhysIntId,
        /// The SPI it is linked to.
        intid: IntId,
    },
    /// `link_hw`: the SPI is pending, active, in a list register or its
    /// line is high; that state is not the physical interrupt's, so the
    /// guest's deactivation of it must not deactivate the physical one.
    /// Link before the guest uses the interrupt.
    HwBusy {
        /// The virtual SPI.
        intid: IntId,
    },
    /// `unlink_hw`: the SPI sits in a list register of vCPU `vcpu` (flushed,
    /// not yet synced), where the guest could still deactivate the physical
    /// interrupt. Stop that vCPU and sync it first.
    HwInFlight {
        /// The virtual SPI.
        intid: IntId,
        /// The vCPU holding it.
        vcpu: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoSuchVcpu { vcpu } => write!(f, "no vCPU {vcpu}"),
            Self::NoSuchIntId { intid } => write!(f, "{intid} is not implemented"),
            Self::LrMismatch { lr, expected } => {
                write!(f, "list register {lr} no longer holds {expected}")
            }
            Self::UnexpectedLr { lr } => {
                write!(
                    f,
                    "list register {lr} holds an entry that was never flushed"
                )
            }
            Self::NotAnSpi { intid } => write!(f, "{intid} is no SPI: only SPIs are linked"),
            Self::HwLinked { intid, pintid } => write!(f, "{intid} is linked to {pintid}"),
            Self::NotHwLinked { intid } => write!(f, "{intid} is linked to no physical interrupt"),
            Self::PintidInUse { pintid, intid } => write!(f, "{pintid} is linked to {intid}"),
            Self::HwBusy { intid } => {
                write!(f, "{intid} is pending or active: cannot link it now")
            }
            Self::HwInFlight { intid, vcpu } => {
                write!(f, "{intid} is in vCPU {vcpu}'s list registers")
            }
        }
    }
}

/// Why [`crate::Vgic::new`] refused a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// No vCPUs, or more than [`crate::MAX_VCPUS`].
    VcpuCount {
        /// The count given.
        count: usize,
    },
    /// The SPI count is not a multiple of 32, or is more than
    /// [`crate::MAX_SPIS`].
    SpiCount {
        /// The count given.
        count: u32,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::VcpuCount { count } => write!(
                f,
                "{count} vCPUs: a virtual GIC has 1 to {} vCPUs",
                crate::MAX_VCPUS
            ),
            Self::SpiCount { count } => write!(
                f,
                "{count} SPIs: must be a multiple of 32, at most {}",
                crate::MAX_SPIS
            ),
        }
    }
}
