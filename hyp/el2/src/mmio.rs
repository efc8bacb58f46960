//! Emulated MMIO: devices a VM sees at IPAs that stage 2 leaves unmapped, so
//! that each access traps as a data abort and is carried out here.

use crate::vcpu::GuestRegs;
use crate::vm::Vm;
use alloc::boxed::Box;
use alloc::sync::Weak;
use core::fmt::Debug;
use syndrome::DataAbort;

/// A device emulated by trapping its register accesses.
pub trait MmioDevice: Send + Sync + Debug {
    /// A read of `size` bytes (1, 2, 4 or 8) at `offset` in the device's frame.
    fn read(&self, offset: u64, size: u8) -> u64;
    /// A write of `size` bytes at `offset`; `value` holds only those bytes.
    fn write(&self, offset: u64, size: u8, value: u64);
    /// Called when the VM stops: emit anything still buffered.
    fn flush(&self) {}
    /// Called once, when the VM exists. A device with an interrupt keeps
    /// `vm` and drives its line in the VM's GIC itself, always under the
    /// device's own lock: its line changes on more than one CPU (input
    /// arriving while the guest acknowledges), and levels must reach the GIC
    /// in the order they happened.
    fn attach_vm(&self, _vm: &Weak<Vm>) {}
}

/// A device and where the VM sees it.
#[derive(Debug)]
pub struct MmioRegion {
    /// First IPA of the frame.
    pub base: u64,
    /// Size of the frame in bytes.
    pub size: u64,
    /// The device.
    pub device: Box<dyn MmioDevice>,
}

impl MmioRegion {
    /// The offset of `ipa` in this region, if it falls inside.
    pub fn offset_of(&self, ipa: u64) -> Option<u64> {
        ipa.checked_sub(self.base).filter(|&off| off < self.size)
    }
}

/// Why an access could not be emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotEmulated {
    /// The syndrome carries no instruction details (ISV = 0: for example a
    /// load pair or a post-indexed access), so the access is not replayed.
    NoSyndrome,
}

/// Carries out the access `abort` describes on `device` at `offset`,
/// reading from or writing to the guest's registers.
pub fn emulate(
    device: &dyn MmioDevice,
    offset: u64,
    abort: DataAbort,
    regs: &mut GuestRegs,
) -> Result<(), NotEmulated> {
    let (Some(size), Some(rt), Some(write)) = (
        abort.access_size_bytes(),
        abort.register(),
        abort.is_write(),
    ) else {
        return Err(NotEmulated::NoSyndrome);
    };
    let bits = u32::from(size) * 8;
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    };
    if write {
        device.write(offset, size, regs.read(rt) & mask);
    } else {
        let mut value = device.read(offset, size) & mask;
        if abort.sign_extend() == Some(true) && bits < 64 {
            let shift = 64 - bits;
            value = (((value << shift) as i64) >> shift) as u64;
        }
        if abort.is_64bit_reg() == Some(false) {
            value &= 0xffff_ffff;
        }
        regs.write(rt, value);
    }
    Ok(())
}
