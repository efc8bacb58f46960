//! A fixed-length bitmap on the heap, sized for the ID width chosen at run
//! time (32 bytes for 8-bit IDs, 8 KiB for 16-bit ones).

use alloc::vec::Vec;

use crate::AllocError;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
}

impl Bitmap {
    /// An all-clear bitmap of `len` bits.
    pub(crate) fn try_new(len: u32) -> Result<Self, AllocError> {
        let n = len.div_ceil(u64::BITS) as usize;
        let mut words = Vec::new();
        words
            .try_reserve_exact(n)
            .map_err(|_| AllocError::OutOfMemory)?;
        words.resize(n, 0);
        Ok(Self { words })
    }

    pub(crate) fn test(&self, bit: u32) -> bool {
        self.words[Self::word(bit)] & Self::mask(bit) != 0
    }

    /// Sets `bit`; returns whether it was already set.
    pub(crate) fn test_and_set(&mut self, bit: u32) -> bool {
        let was = self.test(bit);
        self.words[Self::word(bit)] |= Self::mask(bit);
        was
    }

    /// Clears `bit`; returns whether it was set.
    pub(crate) fn test_and_clear(&mut self, bit: u32) -> bool {
        let was = self.test(bit);
        self.words[Self::word(bit)] &= !Self::mask(bit);
        was
    }

    /// Makes `self` a copy of `other` (same length) without allocating.
    pub(crate) fn copy_from(&mut self, other: &Self) {
        self.words.copy_from_slice(&other.words);
    }

    /// The first clear bit in `from..limit`, if any.
    pub(crate) fn find_next_zero(&self, from: u32, limit: u32) -> Option<u32> {
        let mut bit = from;
        while bit < limit {
            let word = Self::word(bit);
            let free = !self.words[word] & (u64::MAX << (bit % u64::BITS));
            if free != 0 {
                let found = word as u32 * u64::BITS + free.trailing_zeros();
                return (found < limit).then_some(found);
            }
            bit = (word as u32 + 1) * u64::BITS;
        }
        None
    }

    pub(crate) fn count_ones(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    #[cfg(any(test, feature = "checker"))]
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }

    fn word(bit: u32) -> usize {
        (bit / u64::BITS) as usize
    }

    fn mask(bit: u32) -> u64 {
        1 << (bit % u64::BITS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_next_zero_skips_set_bits_across_words() {
        let mut map = Bitmap::try_new(130).unwrap();
        for bit in 0..129 {
            assert!(!map.test_and_set(bit));
        }
        assert_eq!(map.find_next_zero(1, 130), Some(129));
        assert_eq!(map.find_next_zero(1, 129), None);
        assert!(map.test_and_clear(64));
        assert_eq!(map.find_next_zero(3, 130), Some(64));
        assert_eq!(map.find_next_zero(65, 130), Some(129));
        assert_eq!(map.count_ones(), 128);
    }

    #[test]
    fn find_next_zero_respects_a_limit_inside_a_word() {
        let mut map = Bitmap::try_new(8).unwrap();
        for bit in 0..8 {
            map.test_and_set(bit);
        }
        // Bits 8..64 of the word are clear but lie past the ID space.
        assert_eq!(map.find_next_zero(0, 8), None);
    }
}
