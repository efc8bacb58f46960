//! Fixed-size sets of interrupt indices, one bit each, for the live sets
//! that let [`crate::Vgic::flush`] and friends look only at the interrupts
//! that have state instead of at every interrupt the VM has.

/// A set of indices below `64 * WORDS` (`WORDS` at most 64).
///
/// Next to the bits, a summary word says which words are non-zero, so
/// that iterating costs a few instructions per member plus a few per call,
/// not per index the set could hold: finding the two live SPIs among 960
/// reads two words, not fifteen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bitmap<const WORDS: usize> {
    words: [u64; WORDS],
    /// Bit `w` is set if and only if `words[w]` is non-zero.
    nonzero: u64,
}

impl<const WORDS: usize> Bitmap<WORDS> {
    /// The empty set.
    pub(crate) const EMPTY: Self = {
        assert!(WORDS <= 64, "one summary bit per word");
        Self {
            words: [0; WORDS],
            nonzero: 0,
        }
    };

    /// Adds `index` (`member`) or removes it; an index past the set's
    /// capacity is ignored (and never a member).
    pub(crate) fn set(&mut self, index: usize, member: bool) {
        let word = index / 64;
        let Some(bits) = self.words.get_mut(word) else {
            return;
        };
        let bit = 1 << (index % 64);
        if member {
            *bits |= bit;
        } else {
            *bits &= !bit;
        }
        if *bits == 0 {
            self.nonzero &= !(1 << word);
        } else {
            self.nonzero |= 1 << word;
        }
    }

    /// Whether `index` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|bits| bits & (1 << (index % 64)) != 0)
    }

    /// Whether the set is empty.
    pub(crate) const fn is_empty(&self) -> bool {
        self.nonzero == 0
    }

    /// The members, lowest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let mut words_left = self.nonzero;
        let mut word = 0;
        let mut bits = 0u64;
        core::iter::from_fn(move || {
            while bits == 0 {
                if words_left == 0 {
                    return None;
                }
                word = words_left.trailing_zeros() as usize;
                words_left &= words_left - 1;
                bits = self.words.get(word).copied().unwrap_or(0);
            }
            let bit = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            Some(word * 64 + bit)
        })
    }
}
