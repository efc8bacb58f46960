//! A VM's RAM as one contiguous window of raw memory: how both the
//! hypervisor (its identity map) and a backend task (the VM's RAM mapped at
//! a fixed address) reach it.

use virtqueue::{window_offset, GuestMemory, MemError};

/// A VM's RAM as a device sees it: the guest-physical range
/// `[base, base + size)`, reached at `host` in the current address space.
///
/// Every access is checked against the window first ([`window_offset`]) and
/// copies bytes through raw pointers: nothing here forms a Rust reference
/// to guest memory, which the guest may change at any time.
#[derive(Clone, Copy, Debug)]
pub struct GuestRam {
    base: u64,
    size: u64,
    host: *mut u8,
}

// SAFETY: `GuestRam::new`'s contract makes the window valid for as long as
// any copy is used, from any CPU; only byte copies go through it.
unsafe impl Send for GuestRam {}
// SAFETY: As above: shared use only copies bytes, as the guest's own vCPUs
// may do at the same time.
unsafe impl Sync for GuestRam {}

impl GuestRam {
    /// The window of `size` bytes of guest RAM from guest-physical address
    /// `base`, whose first byte is at `host`.
    ///
    /// # Safety
    ///
    /// For as long as the value or any copy of it is used, `[host, host +
    /// size)` must be valid for reads and writes, and must hold nothing the
    /// caller's program reaches through Rust references (it is guest memory:
    /// only raw copies go through it, and the guest may change it
    /// meanwhile).
    pub const unsafe fn new(base: u64, size: u64, host: *mut u8) -> Self {
        Self { base, size, host }
    }

    /// First guest-physical address of the window.
    pub const fn base(&self) -> u64 {
        self.base
    }

    /// Bytes in the window.
    pub const fn size(&self) -> u64 {
        self.size
    }

    /// Where the window's first byte is.
    pub const fn host(&self) -> *mut u8 {
        self.host
    }

    /// Where `len` bytes at `gpa` are, if they all lie inside the window.
    fn at(&self, gpa: u64, len: usize) -> Result<*mut u8, MemError> {
        let offset = window_offset(self.base, self.size, gpa, len as u64)?;
        // SAFETY: `window_offset` checked that `[offset, offset + len)` lies
        // in the window, which `new`'s contract makes one valid block.
        Ok(unsafe { self.host.add(offset as usize) })
    }
}

impl GuestMemory for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let src = self.at(gpa, buf.len())?;
        // SAFETY: Inside the window (checked) and valid for reads (`new`);
        // `buf` is our own memory, never guest memory, so they do not
        // overlap. The guest may write the source meanwhile, which can only
        // make the copy inconsistent: callers validate the copy, never the
        // source.
        unsafe { core::ptr::copy_nonoverlapping(src, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        let dst = self.at(gpa, data.len())?;
        // SAFETY: Inside the window (checked), valid for writes and holding
        // no data of ours (`new`).
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        window_offset(self.base, self.size, gpa, len).map(|_| ())
    }

    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        let src = self.at(gpa, 2)?;
        if !(src as usize).is_multiple_of(2) {
            // Unaligned: no atomicity to keep (the rings are aligned).
            let mut bytes = [0; 2];
            self.read(gpa, &mut bytes)?;
            return Ok(u16::from_le_bytes(bytes));
        }
        // SAFETY: Inside the window and aligned: one access, never torn, as
        // `GuestMemory` requires for ring indices.
        Ok(u16::from_le(unsafe { src.cast::<u16>().read_volatile() }))
    }

    fn write_u16(&self, gpa: u64, value: u16) -> Result<(), MemError> {
        let dst = self.at(gpa, 2)?;
        if !(dst as usize).is_multiple_of(2) {
            return self.write(gpa, &value.to_le_bytes());
        }
        // SAFETY: As for `read_u16`, and valid for writes (`new`).
        unsafe { dst.cast::<u16>().write_volatile(value.to_le()) };
        Ok(())
    }
}
