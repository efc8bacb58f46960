//! The architectural facts the counting relies on: how a CPU changes
//! exception level, and how to recognise it in code.
//!
//! A change of level is an exception taken to a higher level, or an
//! exception return to a lower one (Arm ARM, "Exception entry" and
//! "Exception return", D1.3). An exception from a lower level enters its
//! target level at one of the vector table's "lower EL" entries, `VBAR_ELx`
//! plus 0x400 to 0x780 (AArch64 and AArch32 lower levels, four kinds of
//! exception each, 0x80 apart), with the level it came from in `SPSR_ELx`;
//! an exception return is an `ERET` (or `ERETAA`, `ERETAB`), to the level
//! in `SPSR_ELx`.

use crate::counts::Level;

/// `ERET`.
const ERET: u32 = 0xd69f_03e0;
/// `ERETAA`.
const ERETAA: u32 = 0xd69f_0bff;
/// `ERETAB`.
const ERETAB: u32 = 0xd69f_0fff;

/// The span of a vector table's entries for exceptions from a lower level.
const LOWER_ENTRIES: std::ops::Range<u64> = 0x400..0x800;
/// Vector table entries are 0x80 bytes apart.
const ENTRY_SIZE: u64 = 0x80;

/// Whether the instruction `bytes` (little-endian) is an exception return.
pub fn is_exception_return(bytes: &[u8]) -> bool {
    match bytes.try_into() {
        Ok(word) => matches!(u32::from_le_bytes(word), ERET | ERETAA | ERETAB),
        Err(_) => false,
    }
}

/// Whether code at `vaddr` is where an exception from a lower level enters
/// the level whose vector base is `vbar`.
pub fn is_lower_level_entry(vaddr: u64, vbar: u64) -> bool {
    let offset = vaddr.wrapping_sub(vbar);
    LOWER_ENTRIES.contains(&offset) && offset.is_multiple_of(ENTRY_SIZE)
}

/// Whether `vaddr` could be a vector table entry at all (they are 0x80
/// aligned): the cheap test before reading `VBAR_ELx`.
pub fn may_be_vector_entry(vaddr: u64) -> bool {
    vaddr.is_multiple_of(ENTRY_SIZE)
}

/// The level an `SPSR_ELx` value says the CPU was at (on entry) or goes
/// to (on return), if it is an AArch64 state (`M[4]` clear).
pub fn spsr_level(spsr: u64) -> Option<Level> {
    (spsr & 0x10 == 0).then(|| Level::from_pstate(spsr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_returns_are_recognised() {
        assert!(is_exception_return(&ERET.to_le_bytes()));
        assert!(is_exception_return(&[0xff, 0x0b, 0x9f, 0xd6]));
        assert!(is_exception_return(&ERETAB.to_le_bytes()));
        // RET, and half an instruction.
        assert!(!is_exception_return(&0xd65f_03c0u32.to_le_bytes()));
        assert!(!is_exception_return(&[0xe0, 0x03]));
    }

    #[test]
    fn only_the_lower_level_entries_count() {
        let vbar = 0x4008_0800;
        for offset in [0x400, 0x480, 0x500, 0x580, 0x600, 0x780] {
            assert!(is_lower_level_entry(vbar + offset, vbar), "{offset:#x}");
        }
        // Current level entries, the table's end, and not an entry.
        for offset in [0x0, 0x200, 0x380, 0x800, 0x404] {
            assert!(!is_lower_level_entry(vbar + offset, vbar), "{offset:#x}");
        }
        assert!(!is_lower_level_entry(vbar - 0x400, vbar));
        assert!(may_be_vector_entry(vbar + 0x480));
        assert!(!may_be_vector_entry(vbar + 0x484));
    }

    #[test]
    fn spsr_says_the_level_of_aarch64_states() {
        // EL1h with DAIF masked, EL0t, EL2h.
        assert_eq!(spsr_level(0x3c5), Some(Level::El1));
        assert_eq!(spsr_level(0x0), Some(Level::El0));
        assert_eq!(spsr_level(0x9), Some(Level::El2));
        // AArch32 SVC mode.
        assert_eq!(spsr_level(0x13), None);
    }
}
