//! Changing a Stream Table Entry the SMMU may be reading (spec 3.21.3,
//! "Configuration structure update procedure").
//!
//! The SMMU reads an STE with at least 64-bit single-copy atomicity per
//! word, but not the whole entry at once, and it may cache what it read
//! until told otherwise (CMD_CFGI_STE, completed by CMD_SYNC). So an entry
//! is changed by a plan of word writes and invalidations,
//! [`ste_update_sequence`], whose every state the SMMU could observe is
//! either the old entry, the new one, or one that terminates the stream's
//! transactions (invalid, or V = 1 with Config = abort).
//!
//! # The model the plan is built for
//!
//! The plan is a list of [`StepWrite`]s: word writes, and `Sync` steps. A
//! `Sync` means: make every write before it visible to the SMMU (DSB),
//! issue CMD_CFGI_STE for the stream and a CMD_SYNC, and wait for the
//! CMD_SYNC to complete. After that the SMMU has dropped any copy of the
//! entry from before, and every later fetch starts later.
//!
//! Between two `Sync`s, nothing orders the SMMU's reads of different words:
//! one fetch may take word 0 from before a write and word 2 from after it,
//! or the other way round. So the plan is built, and property-tested, so
//! that *any* mix of the values each word holds during one such interval is
//! safe. That is stronger than writing "V last with a barrier", and costs
//! one more CMD_SYNC per change, which is nothing next to attaching a
//! device.
//!
//! # The plans
//!
//! - Nothing changes: no steps.
//! - One word changes and both entries are valid: write it, `Sync` (a
//!   "hitless" update: every mix is the old or the new entry).
//! - The old entry terminates (invalid or abort): write the other words,
//!   `Sync`, write word 0 (V and Config), `Sync`.
//! - The new entry terminates: write word 0, `Sync`, write the other
//!   words, `Sync`.
//! - Both are live (bypass or translating) and more than one word differs:
//!   break before make through an abort entry: word 0 = abort, `Sync`, the
//!   other words, `Sync`, word 0 = new, `Sync`.

use crate::ste::{Ste, STE_WORDS};

/// The longest plan: three `Sync`s, word 0 twice and the seven others.
pub const MAX_UPDATE_STEPS: usize = 12;

/// One step of an STE update plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepWrite {
    /// Store `value` into word `word` (0 to 7) of the entry, as one 64-bit
    /// single-copy-atomic store.
    Write {
        /// Which 64-bit word of the entry.
        word: usize,
        /// Its new value.
        value: u64,
    },
    /// DSB, CMD_CFGI_STE for the stream, CMD_SYNC, and wait for it.
    Sync,
}

/// The plan that turns `old` into `new` without the SMMU ever using an
/// entry that mixes them (see the module documentation). Its last step is
/// a `Sync` unless it is empty; executed in order, it leaves `new` in the
/// table and in force.
pub fn ste_update_sequence(old: &Ste, new: &Ste) -> heapless::Vec<StepWrite, MAX_UPDATE_STEPS> {
    let mut plan = Plan::default();
    let old_words = old.words();
    let new_words = new.words();
    let differ = |i: usize| old_words[i] != new_words[i];
    let changed = (0..STE_WORDS).filter(|&i| differ(i)).count();
    let rest = || (1..STE_WORDS).filter(move |&i| differ(i));
    if changed == 0 {
        return plan.0;
    }
    if changed == 1 && !old.terminates() && !new.terminates() {
        // Hitless: every mix is `old` or `new`.
        if let Some(word) = (0..STE_WORDS).find(|&i| differ(i)) {
            plan.write(word, new_words[word]);
        }
        plan.sync();
    } else if old.terminates() {
        for word in rest() {
            plan.write(word, new_words[word]);
        }
        plan.sync();
        if differ(0) {
            plan.write(0, new_words[0]);
            plan.sync();
        }
    } else if new.terminates() {
        if differ(0) {
            plan.write(0, new_words[0]);
            plan.sync();
        }
        for word in rest() {
            plan.write(word, new_words[word]);
        }
        plan.sync();
    } else {
        plan.write(0, Ste::abort().words()[0]);
        plan.sync();
        for word in rest() {
            plan.write(word, new_words[word]);
        }
        plan.sync();
        plan.write(0, new_words[0]);
        plan.sync();
    }
    plan.0
}

/// A plan under construction. [`MAX_UPDATE_STEPS`] covers the longest
/// branch of [`ste_update_sequence`], so pushes cannot fail.
#[derive(Default)]
struct Plan(heapless::Vec<StepWrite, MAX_UPDATE_STEPS>);

impl Plan {
    fn write(&mut self, word: usize, value: u64) {
        let _ = self.0.push(StepWrite::Write { word, value });
    }

    /// Adds a `Sync` unless the plan is empty or already ends with one.
    fn sync(&mut self) {
        if !matches!(self.0.last(), None | Some(StepWrite::Sync)) {
            let _ = self.0.push(StepWrite::Sync);
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::features::tests::qemu;
    use crate::ste::Stage2Entry;
    use addr::PhysAddr;
    use id_alloc::Vmid;
    use proptest::prelude::*;
    use std::vec::Vec;

    const VTCR_39: u64 = 0x8000_0000 | 0x8_0000 | 0x5_0000 | 0x3000 | 0x400 | 0x100 | 0x40 | 0x19;

    fn s2(vmid: u16, root: u64) -> Ste {
        Ste::stage2(&Stage2Entry::new(Vmid::new(vmid), PhysAddr(root), VTCR_39, &qemu()).unwrap())
    }

    /// Every entry the SMMU could use while `plan` runs from `old`, under
    /// the model of the module documentation: within each interval between
    /// `Sync`s, any mix of the values each word takes in it. Also returns
    /// the final table contents.
    fn observable(old: &Ste, plan: &[StepWrite]) -> (Vec<Ste>, Ste) {
        let mut current = old.words();
        let mut seen: Vec<Ste> = Vec::new();
        // Values each word takes in the current interval.
        let mut values: Vec<Vec<u64>> = current.iter().map(|w| std::vec![*w]).collect();
        let mut close = |values: &mut Vec<Vec<u64>>, current: &[u64; STE_WORDS]| {
            let mut combos: Vec<[u64; STE_WORDS]> = std::vec![[0; STE_WORDS]];
            for (i, options) in values.iter().enumerate() {
                combos = combos
                    .iter()
                    .flat_map(|c| {
                        options.iter().map(move |v| {
                            let mut c = *c;
                            c[i] = *v;
                            c
                        })
                    })
                    .collect();
            }
            seen.extend(combos.into_iter().map(Ste::from_words));
            *values = current.iter().map(|w| std::vec![*w]).collect();
        };
        for step in plan {
            match *step {
                StepWrite::Write { word, value } => {
                    current[word] = value;
                    if !values[word].contains(&value) {
                        values[word].push(value);
                    }
                }
                StepWrite::Sync => close(&mut values, &current),
            }
        }
        close(&mut values, &current);
        (seen, Ste::from_words(current))
    }

    /// The property: the plan ends with `new` in the table, ends with a
    /// `Sync`, and nothing the SMMU could use along the way is a live
    /// entry other than `old` or `new`.
    fn check(old: &Ste, new: &Ste) -> Result<(), TestCaseError> {
        let plan = ste_update_sequence(old, new);
        let (seen, last) = observable(old, &plan);
        prop_assert_eq!(last, *new);
        if old == new {
            prop_assert!(plan.is_empty());
        } else {
            prop_assert_eq!(plan.last(), Some(&StepWrite::Sync));
        }
        for ste in seen {
            prop_assert!(
                ste.terminates() || ste == *old || ste == *new,
                "mixed live entry {:?} from {:?} to {:?} with {:?}",
                ste,
                old,
                new,
                plan
            );
        }
        Ok(())
    }

    #[test]
    fn no_change_is_no_steps() {
        assert!(ste_update_sequence(&Ste::bypass(), &Ste::bypass()).is_empty());
    }

    #[test]
    fn making_valid_writes_word_0_last() {
        let new = s2(5, 0x4000_0000);
        let plan = ste_update_sequence(&Ste::abort(), &new);
        let w = new.words();
        assert_eq!(
            plan.as_slice(),
            [
                StepWrite::Write {
                    word: 1,
                    value: w[1]
                },
                StepWrite::Write {
                    word: 2,
                    value: w[2]
                },
                StepWrite::Write {
                    word: 3,
                    value: w[3]
                },
                StepWrite::Sync,
                StepWrite::Write {
                    word: 0,
                    value: w[0]
                },
                StepWrite::Sync,
            ]
        );
    }

    #[test]
    fn making_invalid_writes_word_0_first() {
        let old = s2(5, 0x4000_0000);
        let plan = ste_update_sequence(&old, &Ste::abort());
        assert_eq!(
            plan.as_slice(),
            [
                StepWrite::Write { word: 0, value: 1 },
                StepWrite::Sync,
                StepWrite::Write { word: 1, value: 0 },
                StepWrite::Write { word: 2, value: 0 },
                StepWrite::Write { word: 3, value: 0 },
                StepWrite::Sync,
            ]
        );
    }

    #[test]
    fn a_live_stage2_change_breaks_through_abort() {
        let old = s2(5, 0x4000_0000);
        let new = s2(6, 0x4100_0000);
        let w = new.words();
        assert_eq!(
            ste_update_sequence(&old, &new).as_slice(),
            [
                StepWrite::Write { word: 0, value: 1 },
                StepWrite::Sync,
                StepWrite::Write {
                    word: 2,
                    value: w[2]
                },
                StepWrite::Write {
                    word: 3,
                    value: w[3]
                },
                StepWrite::Sync,
                StepWrite::Write {
                    word: 0,
                    value: w[0]
                },
                StepWrite::Sync,
            ]
        );
    }

    #[test]
    fn a_vmid_change_is_hitless() {
        let old = s2(5, 0x4000_0000);
        let new = old.with_vmid(Vmid::new(9));
        assert_eq!(
            ste_update_sequence(&old, &new).as_slice(),
            [
                StepWrite::Write {
                    word: 2,
                    value: new.words()[2]
                },
                StepWrite::Sync,
            ]
        );
    }

    #[test]
    fn bypass_to_stage2_breaks_through_abort() {
        let plan = ste_update_sequence(&Ste::bypass(), &s2(1, 0x4000_0000));
        assert_eq!(plan.first(), Some(&StepWrite::Write { word: 0, value: 1 }));
        assert_eq!(plan.len(), 7);
    }

    #[test]
    fn invalid_to_abort_is_one_write() {
        assert_eq!(
            ste_update_sequence(&Ste::INVALID, &Ste::abort()).as_slice(),
            [StepWrite::Write { word: 0, value: 1 }, StepWrite::Sync]
        );
    }

    #[test]
    fn the_longest_plan_fits() {
        let old = Ste::from_words([0x9, 1, 2, 3, 4, 5, 6, 7]);
        let new = Ste::from_words([0xd, 11, 12, 13, 14, 15, 16, 17]);
        let plan = ste_update_sequence(&old, &new);
        assert_eq!(plan.len(), MAX_UPDATE_STEPS);
        check(&old, &new).unwrap();
    }

    #[test]
    fn known_transitions_hold_the_property() {
        let entries = [
            Ste::INVALID,
            Ste::abort(),
            Ste::bypass(),
            s2(1, 0x4000_0000),
            s2(2, 0x4000_0000),
            s2(1, 0x5000_0000),
            s2(2, 0x5000_0000),
            s1(0x4000_0040),
            s1(0x4000_0080),
            nested(1, 0x4000_0040),
        ];
        for old in &entries {
            for new in &entries {
                check(old, new).unwrap();
            }
        }
    }

    /// Entries from a few meaningful words per position, so that old and
    /// new often share some words and differ in others.
    fn arb_ste() -> impl Strategy<Value = Ste> {
        let word0 = prop::sample::select(std::vec![
            0u64,
            1,
            0x3,
            0x7,
            0x9,
            0xb,
            0xd,
            0xf,
            0x8,
            0xc,
            0x4000_0009,
            0x4000_000d
        ]);
        let other = prop::sample::select(std::vec![0u64, 1, 1 << 44, 0xdead_beef, u64::MAX]);
        (word0, prop::array::uniform7(other)).prop_map(|(w0, rest)| {
            let mut words = [0; STE_WORDS];
            words[0] = w0;
            words[1..].copy_from_slice(&rest);
            Ste::from_words(words)
        })
    }

    fn s1(cd_table: u64) -> Ste {
        let f = crate::features::tests::qemu_nested();
        Ste::stage1(
            &crate::ste::Stage1Entry::new(PhysAddr(cd_table), crate::StreamWorld::NsEl1, &f)
                .unwrap(),
        )
    }

    fn nested(vmid: u16, cd_table: u64) -> Ste {
        let f = crate::features::tests::qemu_nested();
        let s2 = Stage2Entry::new(Vmid::new(vmid), PhysAddr(0x4000_0000), VTCR_39, &f).unwrap();
        Ste::stage1(&crate::ste::Stage1Entry::nested(PhysAddr(cd_table), s2, &f).unwrap())
    }

    #[test]
    fn binding_a_stage1_stream_writes_the_context_pointer_last() {
        let new = s1(0x4000_0040);
        let w = new.words();
        assert_eq!(
            ste_update_sequence(&Ste::abort(), &new).as_slice(),
            [
                StepWrite::Write {
                    word: 1,
                    value: w[1]
                },
                StepWrite::Sync,
                StepWrite::Write {
                    word: 0,
                    value: w[0]
                },
                StepWrite::Sync,
            ]
        );
    }

    fn arb_stage2() -> impl Strategy<Value = Ste> {
        (
            1u16..4,
            prop::sample::select(std::vec![0x4000_0000u64, 0x4000_1000]),
        )
            .prop_map(|(vmid, root)| s2(vmid, root))
    }

    fn arb_entry() -> impl Strategy<Value = Ste> {
        prop_oneof![
            Just(Ste::INVALID),
            Just(Ste::abort()),
            Just(Ste::bypass()),
            arb_stage2(),
            prop::sample::select(std::vec![0x4000_0040u64, 0x4000_0080]).prop_map(s1),
            (1u16..3).prop_map(|vmid| nested(vmid, 0x4000_0040)),
            arb_ste(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No intermediate state the SMMU could observe is a live entry
        /// mixing old and new words, whatever the two entries are.
        #[test]
        fn updates_never_expose_a_mixed_live_entry(old in arb_entry(), new in arb_entry()) {
            check(&old, &new)?;
        }

        /// Random words anywhere, not just realistic ones.
        #[test]
        fn updates_of_random_words_are_safe(
            old in prop::array::uniform8(any::<u64>()),
            new in prop::array::uniform8(any::<u64>()),
            keep in prop::array::uniform8(any::<bool>()),
        ) {
            let old = Ste::from_words(old);
            let mut new_words = new;
            for i in 0..STE_WORDS {
                if keep[i] {
                    new_words[i] = old.words()[i];
                }
            }
            check(&old, &Ste::from_words(new_words))?;
        }
    }
}
