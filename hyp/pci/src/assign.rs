//! Placing memory BARs in the host bridge's windows, when no firmware has:
//! a bump allocator per window, each BAR naturally aligned (to its size,
//! which PCI requires since the low address bits of a BAR are its size).

use crate::bar::{size_bars, Bar, BarError, BarKind, Bars, BARS_TYPE0};
use crate::config::{self, Bdf, Command, ConfigSpace, Register};
use crate::enumerate::HeaderType;
use addr::PhysRange;
use core::fmt;

/// Most windows a [`BarAllocator`] takes; the device tree binding allows
/// any number, QEMU virt has three (one of them I/O).
pub const MAX_WINDOWS: usize = 8;

/// First address above the 32-bit space: where 32-bit BARs must end.
const FOUR_GIB: u64 = 1 << 32;

/// An address on the PCI bus, what a BAR holds. The CPU reaches it through
/// a [`Window`], at a [`PhysAddr`](crate::PhysAddr) that need not be the
/// same number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PciAddr(pub u64);

impl PciAddr {
    /// The address as a plain integer, for the BAR.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PCI({:#x})", self.0)
    }
}

impl fmt::Display for PciAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The kind of memory a window maps (`phys.hi` bits 25:24 of the PCI bus
/// binding's `ranges`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// 32-bit memory space.
    Mem32,
    /// 64-bit memory space.
    Mem64,
}

/// A memory window of the host bridge: PCI addresses
/// `pci_start .. pci_start + cpu.size()` appear to the CPU at `cpu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The kind of memory.
    pub kind: WindowKind,
    /// Whether it is marked prefetchable (then only prefetchable BARs go
    /// in it).
    pub prefetchable: bool,
    /// The PCI address at its start.
    pub pci_start: PciAddr,
    /// Where the CPU sees it.
    pub cpu: PhysRange,
}

impl Window {
    /// The window's PCI address range `[start, end)`, or `None` if it wraps.
    fn pci_end(&self) -> Option<u64> {
        self.pci_start.0.checked_add(self.cpu.size())
    }

    /// Where the CPU sees PCI addresses `pci .. pci + size`, or `None`
    /// unless they lie inside the window.
    pub fn to_cpu(&self, pci: PciAddr, size: u64) -> Option<PhysRange> {
        let offset = pci.0.checked_sub(self.pci_start.0)?;
        let end = offset.checked_add(size)?;
        if end > self.cpu.size() {
            return None;
        }
        PhysRange::new(self.cpu.start().checked_add(offset)?, size)
    }
}

/// Where a BAR was put.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The address written into the BAR.
    pub pci: PciAddr,
    /// Where the CPU reaches it (the BAR's whole size).
    pub cpu: PhysRange,
}

/// Why a BAR could not be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// More than [`MAX_WINDOWS`] windows were added.
    TooManyWindows,
    /// A window's PCI range wraps past the top of the address space.
    WindowWraps(Window),
    /// An I/O BAR: the host bridge's I/O window is not used.
    IoNotSupported(Bar),
    /// No window suitable for the BAR has room for it.
    NoSpace(Bar),
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooManyWindows => write!(f, "more than {MAX_WINDOWS} PCI memory windows"),
            Self::WindowWraps(w) => write!(
                f,
                "PCI window at PCI address {} of {:#x} bytes wraps",
                w.pci_start,
                w.cpu.size()
            ),
            Self::IoNotSupported(bar) => write!(f, "{bar}: I/O BARs are not assigned"),
            Self::NoSpace(bar) => write!(f, "{bar}: no room in any suitable PCI window"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Cursor {
    window: Window,
    /// The lowest PCI address not yet handed out.
    next: u64,
    /// One past the window's last PCI address.
    end: u64,
}

impl Cursor {
    /// Takes `size` bytes (a power of two) at a multiple of `size`, ending
    /// at or below `limit`.
    fn take(&mut self, size: u64, limit: u64) -> Option<Placement> {
        let mut start = self.next.checked_add(size - 1)? & !(size - 1);
        // Many drivers (virtio-drivers among them) read a BAR of 0 as
        // unassigned: never hand it out.
        if start == 0 {
            start = size;
        }
        let end = start.checked_add(size)?;
        if end > self.end.min(limit) {
            return None;
        }
        let cpu = self.window.to_cpu(PciAddr(start), size)?;
        self.next = end;
        Some(Placement {
            pci: PciAddr(start),
            cpu,
        })
    }
}

/// Hands out naturally aligned PCI addresses for memory BARs from the host
/// bridge's windows, lowest first; nothing is ever freed.
///
/// A 32-bit BAR goes in a 32-bit window, else in any window below 4 GiB; a
/// 64-bit BAR goes in a 64-bit window, else in a 32-bit one. A
/// non-prefetchable BAR never goes in a prefetchable window.
#[derive(Clone, Debug, Default)]
pub struct BarAllocator {
    cursors: heapless::Vec<Cursor, MAX_WINDOWS>,
}

impl BarAllocator {
    /// An allocator without windows.
    pub const fn new() -> BarAllocator {
        BarAllocator {
            cursors: heapless::Vec::new(),
        }
    }

    /// Adds `window` to allocate from.
    ///
    /// # Errors
    ///
    /// [`AllocError::TooManyWindows`], [`AllocError::WindowWraps`].
    pub fn add_window(&mut self, window: Window) -> Result<(), AllocError> {
        let end = window.pci_end().ok_or(AllocError::WindowWraps(window))?;
        self.cursors
            .push(Cursor {
                window,
                next: window.pci_start.0,
                end,
            })
            .map_err(|_| AllocError::TooManyWindows)
    }

    /// The windows added, in order.
    pub fn windows(&self) -> impl Iterator<Item = &Window> + '_ {
        self.cursors.iter().map(|c| &c.window)
    }

    /// Where the CPU reaches PCI addresses `pci .. pci + size`, through
    /// whichever window holds them.
    pub fn to_cpu(&self, pci: PciAddr, size: u64) -> Option<PhysRange> {
        self.windows().find_map(|w| w.to_cpu(pci, size))
    }

    /// Places `bar`.
    ///
    /// # Errors
    ///
    /// [`AllocError::IoNotSupported`] for an I/O BAR,
    /// [`AllocError::NoSpace`] if no suitable window has room.
    pub fn allocate(&mut self, bar: &Bar) -> Result<Placement, AllocError> {
        let (preferred, limit) = match bar.kind {
            BarKind::Memory32 => (WindowKind::Mem32, FOUR_GIB),
            BarKind::Memory64 => (WindowKind::Mem64, u64::MAX),
            BarKind::Io => return Err(AllocError::IoNotSupported(*bar)),
        };
        let suitable = |c: &Cursor| bar.prefetchable || !c.window.prefetchable;
        // Preferred kind first, then the others, each in window order.
        for want_preferred in [true, false] {
            for cursor in &mut self.cursors {
                if (cursor.window.kind == preferred) != want_preferred || !suitable(cursor) {
                    continue;
                }
                if let Some(placement) = cursor.take(bar.size, limit) {
                    return Ok(placement);
                }
            }
        }
        Err(AllocError::NoSpace(*bar))
    }
}

/// A BAR and where it went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignedBar {
    /// The BAR.
    pub bar: Bar,
    /// Where it was put; `None` for an I/O BAR, which is left unassigned
    /// (and I/O decoding off).
    pub placement: Option<Placement>,
}

/// Every implemented BAR of one function and where each went, by slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AssignedBars {
    slots: [Option<AssignedBar>; BARS_TYPE0],
}

impl AssignedBars {
    /// The BAR starting in slot `index`, if any.
    pub fn get(&self, index: u8) -> Option<&AssignedBar> {
        self.slots.get(usize::from(index))?.as_ref()
    }

    /// The implemented BARs, by slot.
    pub fn iter(&self) -> impl Iterator<Item = &AssignedBar> + '_ {
        self.slots.iter().flatten()
    }
}

/// Why a function's BARs could not be assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignError {
    /// Sizing failed.
    Size(BarError),
    /// A BAR found no room.
    Alloc(AllocError),
    /// A BAR did not hold the address written to it.
    Readback {
        /// The slot.
        index: u8,
        /// The address written.
        wrote: PciAddr,
        /// The address read back.
        read: PciAddr,
    },
}

impl fmt::Display for AssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Size(e) => write!(f, "{e}"),
            Self::Alloc(e) => write!(f, "{e}"),
            Self::Readback { index, wrote, read } => {
                write!(f, "BAR{index} was set to {wrote} but reads {read}")
            }
        }
    }
}

impl From<BarError> for AssignError {
    fn from(e: BarError) -> Self {
        Self::Size(e)
    }
}

impl From<AllocError> for AssignError {
    fn from(e: AllocError) -> Self {
        Self::Alloc(e)
    }
}

/// Sizes the BARs of `bdf` (header type `header`) and places every memory
/// BAR with `allocator`, largest first (natural alignment wastes least
/// that way), checking each BAR holds what was written.
///
/// Memory and I/O decoding are off on return, success or not: a function
/// whose BARs are half programmed must not answer. Turn decoding on with
/// [`enable_memory_and_bus_master`].
///
/// # Errors
///
/// [`AssignError::Size`], [`AssignError::Alloc`] (except for I/O BARs,
/// which are skipped), [`AssignError::Readback`].
pub fn assign_bars<C: ConfigSpace + ?Sized>(
    cs: &mut C,
    bdf: Bdf,
    header: HeaderType,
    allocator: &mut BarAllocator,
) -> Result<AssignedBars, AssignError> {
    let bars = size_bars(cs, bdf, header)?;
    let command = config::command(cs, bdf);
    config::set_command(
        cs,
        bdf,
        command.difference(Command::IO_SPACE | Command::MEMORY_SPACE),
    );
    let mut assigned = AssignedBars::default();
    for bar in by_size_descending(&bars) {
        let placement = match bar.kind {
            BarKind::Io => None,
            BarKind::Memory32 | BarKind::Memory64 => {
                let placement = allocator.allocate(&bar)?;
                program(cs, bdf, &bar, placement.pci)?;
                Some(placement)
            }
        };
        assigned.slots[usize::from(bar.index)] = Some(AssignedBar { bar, placement });
    }
    Ok(assigned)
}

/// The BARs, largest first; ties by slot.
fn by_size_descending(bars: &Bars) -> impl Iterator<Item = Bar> {
    let mut sorted: heapless::Vec<Bar, BARS_TYPE0> = bars.iter().copied().collect();
    sorted.sort_unstable_by(|a, b| b.size.cmp(&a.size).then(a.index.cmp(&b.index)));
    sorted.into_iter()
}

/// Writes `pci` into `bar` (both halves of a 64-bit one) and reads it back.
fn program<C: ConfigSpace + ?Sized>(
    cs: &mut C,
    bdf: Bdf,
    bar: &Bar,
    pci: PciAddr,
) -> Result<(), AssignError> {
    const FLAGS: u64 = 0xf;
    let lower = Register::bar(bar.index);
    let upper = match bar.kind {
        BarKind::Memory64 => Register::bar(bar.index + 1),
        _ => None,
    };
    let mut read = 0;
    if let Some(reg) = lower {
        cs.write32(bdf, reg, pci.0 as u32);
        read |= u64::from(cs.read32(bdf, reg));
    }
    if let Some(reg) = upper {
        cs.write32(bdf, reg, (pci.0 >> 32) as u32);
        read |= u64::from(cs.read32(bdf, reg)) << 32;
    }
    let read = PciAddr(read & !FLAGS);
    if read != pci {
        return Err(AssignError::Readback {
            index: bar.index,
            wrote: pci,
            read,
        });
    }
    Ok(())
}

/// Turns on memory decoding and bus mastering (DMA) for `bdf`, keeping I/O
/// decoding off (I/O BARs are never assigned) and the other command bits as
/// they are, plus `extra`. Returns the command written.
pub fn enable_memory_and_bus_master<C: ConfigSpace + ?Sized>(
    cs: &mut C,
    bdf: Bdf,
    extra: Command,
) -> Command {
    let command = config::command(cs, bdf)
        .difference(Command::IO_SPACE)
        .union(Command::MEMORY_SPACE | Command::BUS_MASTER | extra);
    config::set_command(cs, bdf, command);
    command
}
