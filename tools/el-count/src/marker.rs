//! The marker instructions a guest puts around what it measures.
//!
//! A marker is an unallocated HINT: every Armv8 CPU, QEMU's included,
//! executes it as a NOP at any exception level, it never traps, and no
//! compiler emits it. `HINT #0x70` starts a window, `HINT #0x71` ends it;
//! x0 and x1 hold the window's name at both, as up to 16 bytes of ASCII,
//! little-endian (x0 the first eight), padded with zero bytes:
//!
//! ```text
//! ldr x0, ="hvc-null"   // 0x6c6c_756e_2d63_7668
//! mov x1, #0
//! hint #0x70            // ... the measured loop ...
//! hint #0x71            // x0, x1 still the name
//! ```
//!
//! (The bench guest's `marker` module is the other side of this contract.)

use std::fmt;

/// `HINT #0x70`: a window starts.
pub const START: u32 = 0xd503_201f | (0x70 << 5);
/// `HINT #0x71`: the window ends.
pub const END: u32 = 0xd503_201f | (0x71 << 5);

/// Longest name: two registers' worth.
pub const MAX_NAME: usize = 16;

/// Which marker an instruction is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// [`START`].
    Start,
    /// [`END`].
    End,
}

impl Mark {
    /// The marker that the instruction `bytes` (as QEMU hands them to
    /// plugins: the guest's byte order, little-endian) is, if any.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let word = u32::from_le_bytes(bytes.try_into().ok()?);
        match word {
            START => Some(Self::Start),
            END => Some(Self::End),
            _ => None,
        }
    }
}

/// Why a marker's registers do not hold a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// x0's first byte is zero.
    Empty,
    /// A byte that is not printable ASCII (or a space), at this offset.
    BadByte {
        /// Offset in the 16 bytes.
        at: usize,
        /// The byte.
        byte: u8,
    },
    /// A non-zero byte after the first zero one, at this offset.
    AfterPadding(usize),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty name (x0 = 0)"),
            Self::BadByte { at, byte } => {
                write!(
                    f,
                    "byte {at} of the name is {byte:#04x}, not printable ASCII"
                )
            }
            Self::AfterPadding(at) => {
                write!(f, "byte {at} of the name follows its zero padding")
            }
        }
    }
}

impl std::error::Error for NameError {}

/// The name x0 and x1 hold.
///
/// # Errors
///
/// See [`NameError`].
pub fn name_from_registers(x0: u64, x1: u64) -> Result<String, NameError> {
    let mut bytes = [0u8; MAX_NAME];
    bytes[..8].copy_from_slice(&x0.to_le_bytes());
    bytes[8..].copy_from_slice(&x1.to_le_bytes());
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(MAX_NAME);
    if len == 0 {
        return Err(NameError::Empty);
    }
    if let Some(at) = bytes[len..].iter().position(|&b| b != 0) {
        return Err(NameError::AfterPadding(len + at));
    }
    if let Some(at) = bytes[..len].iter().position(|b| !b.is_ascii_graphic()) {
        return Err(NameError::BadByte {
            at,
            byte: bytes[at],
        });
    }
    Ok(bytes[..len].iter().map(|&b| char::from(b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_markers_are_hints_0x70_and_0x71() {
        assert_eq!(START, 0xd503_2e1f);
        assert_eq!(END, 0xd503_2e3f);
        assert_eq!(Mark::decode(&[0x1f, 0x2e, 0x03, 0xd5]), Some(Mark::Start));
        assert_eq!(Mark::decode(&[0x3f, 0x2e, 0x03, 0xd5]), Some(Mark::End));
        // NOP, and a short read.
        assert_eq!(Mark::decode(&[0x1f, 0x20, 0x03, 0xd5]), None);
        assert_eq!(Mark::decode(&[0x1f, 0x2e]), None);
    }

    #[test]
    fn names_are_read_little_endian_across_two_registers() {
        assert_eq!(
            name_from_registers(0x6c6c_756e_2d63_7668, 0).as_deref(),
            Ok("hvc-null")
        );
        let x0 = u64::from_le_bytes(*b"vtimer-l");
        let x1 = u64::from_le_bytes(*b"atency\0\0");
        assert_eq!(name_from_registers(x0, x1).as_deref(), Ok("vtimer-latency"));
        let full = name_from_registers(
            u64::from_le_bytes(*b"01234567"),
            u64::from_le_bytes(*b"89abcdef"),
        );
        assert_eq!(full.as_deref(), Ok("0123456789abcdef"));
    }

    #[test]
    fn garbage_is_not_a_name() {
        assert_eq!(name_from_registers(0, 0), Err(NameError::Empty));
        assert_eq!(
            name_from_registers(u64::from_le_bytes(*b"a b\0\0\0\0\0"), 0),
            Err(NameError::BadByte { at: 1, byte: b' ' })
        );
        assert_eq!(
            name_from_registers(u64::from(b'a'), 1),
            Err(NameError::AfterPadding(8))
        );
        assert!(NameError::Empty.to_string().contains("empty"));
    }
}
