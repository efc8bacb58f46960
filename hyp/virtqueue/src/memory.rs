//! Guest memory as the device sees it: copies in and out of guest-physical
//! ranges, every range checked.

use core::fmt;

/// Why a guest-physical range could not be accessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// `[gpa, gpa + len)` is not entirely inside guest memory.
    OutOfRange {
        /// First byte of the range.
        gpa: u64,
        /// Its length in bytes.
        len: u64,
    },
    /// `gpa + len` does not fit in 64 bits.
    Overflow {
        /// First byte of the range.
        gpa: u64,
        /// Its length in bytes.
        len: u64,
    },
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfRange { gpa, len } => {
                write!(f, "buffer [{gpa:#x}, +{len:#x}) outside guest memory")
            }
            Self::Overflow { gpa, len } => write!(
                f,
                "buffer [{gpa:#x}, +{len:#x}) wraps past the end of the address space"
            ),
        }
    }
}

/// A VM's memory, as the device model reaches it.
///
/// The hypervisor implements it over the VM's RAM (a bounds-checked window,
/// see [`window_offset`]); tests implement it over a `Vec`.
///
/// # Contract for implementations
///
/// - Every method checks the whole range first and returns an error, never
///   panics, for a range that is not entirely inside guest memory or whose end
///   overflows; a failed access changes nothing.
/// - The guest may write its memory while the device reads it (other vCPUs
///   keep running). Implementations copy bytes through raw pointers and never
///   form Rust references to guest memory; this crate reads each
///   guest-controlled value once into its own copy and validates that copy.
/// - [`read_u16`](Self::read_u16) and [`write_u16`](Self::write_u16) at an
///   even address are single-copy atomic, because the driver publishes its
///   ring index (`avail.idx`) with one 16-bit store and reads `used.idx` with
///   one 16-bit load: a torn read could see an index that never existed. The
///   default methods go through [`read`](Self::read) and
///   [`write`](Self::write), which is atomic only if those copy two aligned
///   bytes with one access; an implementation over shared memory overrides
///   them with a single 16-bit volatile access.
///
/// Ordering between accesses (barriers) is this crate's business: it issues
/// [`core::sync::atomic::fence`]s where the virtio spec needs memory barriers.
pub trait GuestMemory {
    /// Copies `buf.len()` bytes starting at guest-physical address `gpa`
    /// into `buf`.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;

    /// Copies `data` to guest memory starting at guest-physical address
    /// `gpa`.
    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError>;

    /// Checks that `[gpa, gpa + len)` lies entirely inside guest memory
    /// without touching it. A zero-length range is inside if `gpa` is at most
    /// the end of memory (as [`window_offset`] decides).
    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError>;

    /// Reads a little-endian 16-bit value at `gpa` with one access (see the
    /// trait's contract).
    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        let mut bytes = [0; 2];
        self.read(gpa, &mut bytes)?;
        Ok(u16::from_le_bytes(bytes))
    }

    /// Writes a little-endian 16-bit value at `gpa` with one access (see the
    /// trait's contract).
    fn write_u16(&self, gpa: u64, value: u16) -> Result<(), MemError> {
        self.write(gpa, &value.to_le_bytes())
    }
}

impl<M: GuestMemory + ?Sized> GuestMemory for &M {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(gpa, buf)
    }

    fn write(&self, gpa: u64, data: &[u8]) -> Result<(), MemError> {
        (**self).write(gpa, data)
    }

    fn check_range(&self, gpa: u64, len: u64) -> Result<(), MemError> {
        (**self).check_range(gpa, len)
    }

    fn read_u16(&self, gpa: u64) -> Result<u16, MemError> {
        (**self).read_u16(gpa)
    }

    fn write_u16(&self, gpa: u64, value: u16) -> Result<(), MemError> {
        (**self).write_u16(gpa, value)
    }
}

/// The offset of `[gpa, gpa + len)` inside a window of guest memory that
/// starts at `base` and is `size` bytes long, or why the range is not inside
/// it: the bounds check a [`GuestMemory`] over one contiguous block of RAM
/// needs, with every sum checked. A range whose end does not fit in 64 bits
/// is refused as [`MemError::Overflow`], so a window is taken to end at
/// most at `u64::MAX` (guest RAM never reaches that high).
///
/// ```
/// use virtqueue::{window_offset, MemError};
///
/// assert_eq!(window_offset(0x4000_0000, 0x1000, 0x4000_0ff0, 0x10), Ok(0xff0));
/// assert_eq!(
///     window_offset(0x4000_0000, 0x1000, 0x4000_0ff0, 0x11),
///     Err(MemError::OutOfRange { gpa: 0x4000_0ff0, len: 0x11 })
/// );
/// assert_eq!(
///     window_offset(0, u64::MAX, u64::MAX, 2),
///     Err(MemError::Overflow { gpa: u64::MAX, len: 2 })
/// );
/// ```
pub fn window_offset(base: u64, size: u64, gpa: u64, len: u64) -> Result<u64, MemError> {
    let end = gpa
        .checked_add(len)
        .ok_or(MemError::Overflow { gpa, len })?;
    let out = MemError::OutOfRange { gpa, len };
    let offset = gpa.checked_sub(base).ok_or(out)?;
    // `offset + len <= size`, written so that nothing overflows: `end` fits,
    // so `offset + len` (which is `end - base`) fits too.
    if end - base > size {
        return Err(out);
    }
    Ok(offset)
}
