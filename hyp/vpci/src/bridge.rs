//! The bridge: the ECAM window, the functions on its bus 0, the BAR
//! mappings.

use crate::access::{Access, BarMapping, Effect, Effects, Ignored, Unmapped};
use crate::error::BridgeError;
use crate::function::{Function, Stored};
use alloc::vec::Vec;
use guest_boot::virt::Spi;
use guest_boot::{GuestPci, IpaRange, PciInterrupt, PciWindows, PCI_DEVICES};
use pci::{AssignedBars, Bdf, ConfigSpace};

/// ECAM address bits 27:20 are the bus, 19:15 the device, 14:12 the
/// function, 11:0 the register (PCIe Base Specification §7.2.2).
const ECAM_BUS_SHIFT: u32 = 20;
const ECAM_DEVICE_SHIFT: u32 = 15;
const ECAM_FUNCTION_SHIFT: u32 = 12;
const ECAM_REGISTER_MASK: u64 = 0xfff;

/// A function's INTx line: the physical SPI its pin raises on the host
/// (from the host bridge's `interrupt-map`, swizzled by slot on QEMU virt)
/// and the guest SPI it is forwarded to as a hardware-linked virtual
/// interrupt. Linking them in the vGIC is the hypervisor's part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Intx {
    /// The physical SPI.
    pub host: Spi,
    /// The guest's SPI.
    pub guest: Spi,
}

/// A physical function passed through to the VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Passthrough {
    /// Where it is on the host.
    pub host: Bdf,
    /// Its device number on the guest's bus 0, below 32; the guest sees it
    /// as function 0 of a single-function device.
    pub guest_device: u8,
    /// Its BARs, as the hypervisor sized and placed them
    /// ([`pci::assign_bars`]). Memory BARs must be page aligned and own
    /// their pages: a BAR smaller than a page is shown to the guest as a
    /// page, and that whole physical page is mapped. I/O BARs are hidden.
    pub bars: AssignedBars,
    /// Its INTx line, if forwarded; without one the guest sees no
    /// interrupt pin.
    pub intx: Option<Intx>,
}

/// A virtual PCIe host bridge for one VM: an ECAM window whose bus 0 holds
/// the VM's passthrough functions, one per device number, each function 0
/// of a single-function device. There is no host bridge function at
/// 00:00.0 (Linux's `pci-host-ecam-generic` does not need one), no other
/// bus, no I/O space, no MSI.
///
/// The bridge owns the physical configuration space access `C` and uses
/// it for the assigned functions only: it reads their registers to pass
/// them through, and the one register it writes is the command register,
/// to pass on the guest's memory decoding, bus mastering and INTx disable
/// bits (see [`GUEST_COMMAND`](crate::GUEST_COMMAND)).
#[derive(Debug)]
pub struct VirtualBridge<C> {
    cs: C,
    windows: PciWindows,
    functions: Vec<Function>,
    /// Index into `functions` by guest device number.
    by_device: [Option<u8>; PCI_DEVICES as usize],
    interrupts: Vec<PciInterrupt>,
}

impl<C: ConfigSpace> VirtualBridge<C> {
    /// A bridge at `windows` for a VM whose RAM is `ram`, exposing
    /// `functions` through `cs`.
    ///
    /// Everything is checked before anything is written; then each
    /// function's physical command register is put in the state the guest
    /// finds after reset: memory decoding, bus mastering and INTx disable
    /// off. Physical BARs are never touched.
    ///
    /// # Errors
    ///
    /// - [`BridgeError::GuestDeviceOutOfRange`],
    ///   [`BridgeError::DuplicateGuestDevice`],
    ///   [`BridgeError::DuplicateFunction`].
    /// - [`BridgeError::Absent`], [`BridgeError::NotEndpoint`].
    /// - [`BridgeError::BarNotPageAligned`].
    /// - [`BridgeError::NoInterruptPin`], [`BridgeError::IntxConflict`].
    /// - [`BridgeError::Layout`]: what [`GuestPci::check`] refuses.
    pub fn new(
        mut cs: C,
        windows: PciWindows,
        ram: IpaRange,
        functions: &[Passthrough],
    ) -> Result<VirtualBridge<C>, BridgeError> {
        let mut by_device = [None; PCI_DEVICES as usize];
        let mut built: Vec<Function> = Vec::with_capacity(functions.len());
        for (i, p) in functions.iter().enumerate() {
            let device = p.guest_device;
            let slot = by_device
                .get_mut(usize::from(device))
                .ok_or(BridgeError::GuestDeviceOutOfRange { device })?;
            if slot.is_some() {
                return Err(BridgeError::DuplicateGuestDevice { device });
            }
            if functions[..i].iter().any(|o| o.host == p.host) {
                return Err(BridgeError::DuplicateFunction(p.host));
            }
            // Below 32 entries: `by_device` has 32 slots, each used once.
            *slot = Some(built.len() as u8);
            built.push(Function::new(&cs, p)?);
        }
        let mut interrupts = Vec::new();
        for (i, f) in built.iter().enumerate() {
            let Some((pin, intx)) = f.intx else { continue };
            for o in &built[..i] {
                if let Some((_, other)) = o.intx {
                    if (other.host == intx.host) != (other.guest == intx.guest) {
                        return Err(BridgeError::IntxConflict {
                            function: f.host,
                            other: o.host,
                        });
                    }
                }
            }
            interrupts.push(PciInterrupt {
                device: f.device,
                pin,
                spi: intx.guest,
            });
        }
        GuestPci {
            windows,
            interrupts: &interrupts,
        }
        .check(ram)?;
        for f in &mut built {
            f.reset(&mut cs);
        }
        Ok(VirtualBridge {
            cs,
            windows,
            functions: built,
            by_device,
            interrupts,
        })
    }

    /// A guest read of `size` bytes at `offset` in the ECAM window.
    ///
    /// Reads where no function answers (another bus, device or function
    /// number) are all ones, as on hardware. Accesses other than 1, 2, 4 or
    /// 8 bytes naturally aligned, or past the window, read all ones and
    /// say so in [`Access::ignored`].
    pub fn read(&self, offset: u64, size: u8) -> Access<u64> {
        let ones = ones(size);
        if let Err(why) = self.check(offset, size) {
            return Access::not_done(ones, why);
        }
        let Some((f, reg)) = self.locate(offset) else {
            return Access::done(ones);
        };
        let value = if size == 8 {
            u64::from(f.read(&self.cs, reg)) | u64::from(f.read(&self.cs, reg + 4)) << 32
        } else {
            let dword = f.read(&self.cs, reg & !3);
            (u64::from(dword) >> (u32::from(reg & 3) * 8)) & ones
        };
        Access::done(value)
    }

    /// A guest write of the low `size` bytes of `value` at `offset` in the
    /// ECAM window. Returns the stage-2 changes it calls for.
    ///
    /// Only guest-writable bits are stored: the command register's
    /// [`GUEST_COMMAND`](crate::GUEST_COMMAND) bits (passed on to the
    /// physical function), the BARs' address bits, cache line size and
    /// interrupt line; everything else is dropped, and a write that touches
    /// nothing writable says so in [`Access::ignored`]. An 8-byte write is
    /// two dword writes, in address order.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Access<Effects> {
        if let Err(why) = self.check(offset, size) {
            return Access::not_done(Effects::none(), why);
        }
        let Some(index) = self.locate_index(offset) else {
            return Access::not_done(Effects::none(), Ignored::NoFunction { offset });
        };
        let reg = (offset & ECAM_REGISTER_MASK) as u16;
        let value = value & ones(size);
        // (dword, value, byte lanes written) for each dword touched.
        let shift = u32::from(reg & 3) * 8;
        let lanes = ones(size.min(4)) as u32;
        let dwords = if size == 8 {
            [
                Some((reg, value as u32, u32::MAX)),
                Some((reg + 4, (value >> 32) as u32, u32::MAX)),
            ]
        } else {
            [
                Some((reg & !3, (value as u32) << shift, lanes << shift)),
                None,
            ]
        };
        let f = &mut self.functions[index];
        let mut touched_writable = false;
        let mut remap = false;
        for (dword, value, lanes) in dwords.into_iter().flatten() {
            let writable = f.writable(dword) & lanes;
            if writable == 0 {
                continue;
            }
            touched_writable = true;
            let merged = (f.read(&self.cs, dword) & !lanes) | (value & lanes);
            remap |= f.store(&mut self.cs, dword, merged) == Stored::Remap;
        }
        let effects = if remap { self.remap() } else { Effects::none() };
        if touched_writable {
            Access::done(effects)
        } else {
            let device = self.functions[index].device;
            Access::not_done(
                effects,
                Ignored::ReadOnly {
                    device,
                    offset: reg,
                    size,
                },
            )
        }
    }

    /// Resets every function as the guest sees it (for a VM reset):
    /// decoding and bus mastering off, here and on the physical function,
    /// BARs and scratch registers 0. Returns the unmaps to make.
    pub fn reset(&mut self) -> Effects {
        for f in &mut self.functions {
            f.reset(&mut self.cs);
        }
        self.remap()
    }

    /// The BARs mapped now: what to unmap when the VM goes away.
    pub fn mappings(&self) -> impl Iterator<Item = BarMapping> + '_ {
        self.functions.iter().flat_map(|f| {
            f.bars.iter().flatten().filter_map(move |bar| {
                let guest = bar.state.ok()?;
                Some(mapping(f, bar, guest))
            })
        })
    }

    /// Where BAR `bar` of the physical function `function` is mapped, or
    /// why it is not (for logging); `None` if there is no such memory BAR.
    pub fn bar_status(&self, function: Bdf, bar: u8) -> Option<Result<IpaRange, Unmapped>> {
        let f = self.functions.iter().find(|f| f.host == function)?;
        Some(f.bars.get(usize::from(bar))?.as_ref()?.state)
    }

    /// Each forwarded INTx line and its function: the links to make in the
    /// vGIC.
    pub fn intx_links(&self) -> impl Iterator<Item = (Bdf, Intx)> + '_ {
        self.functions
            .iter()
            .filter_map(|f| Some((f.host, f.intx?.1)))
    }

    /// The bridge as the guest's device tree describes it
    /// ([`guest_boot::write_dtb_with_pci`]).
    pub fn guest_pci(&self) -> GuestPci<'_> {
        GuestPci {
            windows: self.windows,
            interrupts: &self.interrupts,
        }
    }

    /// The ECAM window, to trap: stage 2 leaves it unmapped.
    pub fn ecam(&self) -> IpaRange {
        self.windows.ecam
    }

    /// The physical configuration space access.
    pub fn config_space(&self) -> &C {
        &self.cs
    }

    /// The physical configuration space access, for the hypervisor's own
    /// use of the host bus. Changing an assigned function's registers
    /// behind the bridge's back is the caller's responsibility.
    pub fn config_space_mut(&mut self) -> &mut C {
        &mut self.cs
    }

    /// Gives back the physical configuration space access.
    pub fn into_config_space(self) -> C {
        self.cs
    }

    fn check(&self, offset: u64, size: u8) -> Result<(), Ignored> {
        if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
            return Err(Ignored::BadAccess { offset, size });
        }
        // The window is a whole number of MiB, so an aligned access that
        // starts inside it ends inside it.
        if offset >= self.windows.ecam.size() {
            return Err(Ignored::OutsideWindow { offset });
        }
        Ok(())
    }

    /// The function an ECAM offset reaches, if one answers there.
    fn locate_index(&self, offset: u64) -> Option<usize> {
        let bus = offset >> ECAM_BUS_SHIFT;
        let device = (offset >> ECAM_DEVICE_SHIFT) & 0x1f;
        let function = (offset >> ECAM_FUNCTION_SHIFT) & 0x7;
        if bus != 0 || function != 0 {
            return None;
        }
        self.by_device[device as usize].map(usize::from)
    }

    fn locate(&self, offset: u64) -> Option<(&Function, u16)> {
        let f = &self.functions[self.locate_index(offset)?];
        Some((f, (offset & ECAM_REGISTER_MASK) as u16))
    }

    /// Recomputes which BARs are mapped where; returns the changes, unmaps
    /// first.
    fn remap(&mut self) -> Effects {
        // (function, BAR slot, where it should be or why not)
        let mut wanted: Vec<(usize, usize, Result<IpaRange, Unmapped>)> = Vec::new();
        for (fi, f) in self.functions.iter().enumerate() {
            wanted.extend(f.wanted(&self.windows).map(|(bi, w)| (fi, bi, w)));
        }
        // A BAR overlapping another mappable one is not mapped, nor is the
        // other: which one the guest meant is anyone's guess.
        let candidates: Vec<(usize, IpaRange)> = wanted
            .iter()
            .enumerate()
            .filter_map(|(i, (_, _, w))| Some((i, *w.as_ref().ok()?)))
            .collect();
        for (a, (i, ra)) in candidates.iter().enumerate() {
            for (j, rb) in &candidates[a + 1..] {
                if ra.overlaps(rb) {
                    let (fi, bi, _) = wanted[*i];
                    let (fj, bj, _) = wanted[*j];
                    wanted[*i].2 = Err(self.overlap(fj, bj));
                    wanted[*j].2 = Err(self.overlap(fi, bi));
                }
            }
        }
        let mut unmaps = Vec::new();
        let mut maps = Vec::new();
        for (fi, bi, new) in wanted {
            let f = &mut self.functions[fi];
            let Some(bar) = f.bars[bi].as_mut() else {
                continue;
            };
            let old = core::mem::replace(&mut bar.state, new);
            let bar = *bar;
            let f = &self.functions[fi];
            if let Ok(was) = old {
                if new != Ok(was) {
                    let reason = match new {
                        Ok(_) => Unmapped::Moved,
                        Err(why) => why,
                    };
                    unmaps.push(Effect::Unmap {
                        mapping: mapping(f, &bar, was),
                        reason,
                    });
                }
            }
            if let Ok(now) = new {
                if old != Ok(now) {
                    maps.push(Effect::Map(mapping(f, &bar, now)));
                }
            }
        }
        unmaps.append(&mut maps);
        Effects(unmaps)
    }

    fn overlap(&self, function: usize, bar: usize) -> Unmapped {
        Unmapped::Overlaps {
            function: self.functions[function].host,
            // A slot index, below 6.
            bar: bar as u8,
        }
    }
}

fn mapping(f: &Function, bar: &crate::function::VirtualBar, guest: IpaRange) -> BarMapping {
    BarMapping {
        function: f.host,
        bar: bar.index,
        guest,
        host: bar.host,
        prefetchable: bar.prefetchable,
    }
}

/// The low `size` bytes all ones (8 or more: all 64 bits).
fn ones(size: u8) -> u64 {
    match size {
        0 => 0,
        1..=7 => (1u64 << (u32::from(size) * 8)) - 1,
        _ => u64::MAX,
    }
}
