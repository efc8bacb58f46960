//! Binding, unbinding and changing a Context Descriptor the SMMU may be
//! reading (spec 3.21.3 for the configuration caches, 3.17 for the TLBs).
//!
//! Two things can go wrong when a live CD changes:
//!
//! - The SMMU reads the CD word by word, so it could use half of the old
//!   descriptor and half of the new one: the same model and answer as for
//!   STEs ([`crate::ste_update_sequence`]). V sits in word 0, so a bind
//!   writes words 1 to 7 first and word 0 (V = 1) last, an unbind writes
//!   word 0 (V = 0) first, each followed by a [`CdStep::Sync`]
//!   (CMD_CFGI_CD + CMD_SYNC).
//! - The SMMU's TLB keeps translations tagged with the CD's ASID after the
//!   CD is gone. Once the ASID is unpinned, the allocator hands it to
//!   another task, and the device (or the next device bound to that task)
//!   would use the old task's translations. So every plan that takes a
//!   context out of service invalidates its ASID *after* the CD stopped
//!   being used ([`CdStep::InvalidateAsid`], after a `Sync`), and every
//!   plan that puts an ASID into service invalidates it *before* the CD
//!   with it becomes valid, in case an earlier user left entries.
//!
//! The plans, from `old` to `new`:
//!
//! - equal: no steps;
//! - both invalid: the differing words, `Sync`;
//! - bind (old invalid): invalidate the new ASID, words 1 to 7, `Sync`,
//!   word 0, `Sync`;
//! - unbind (new invalid): word 0, `Sync`, invalidate the old ASID, the
//!   other words, `Sync`;
//! - both valid, one word differs (hitless: every mix is old or new):
//!   invalidate the new ASID first if it changes, the word, `Sync`,
//!   invalidate the old ASID;
//! - both valid, more differs: unbind to `old` with V = 0, then bind.
//!
//! [`CdStep::InvalidateAsid`] always follows a `Sync` or starts the plan,
//! so that the SMMU has no copy of a CD older than the table's when the
//! invalidation runs: the property test checks that too.

use crate::cd::{Cd, CD_WORDS};
use id_alloc::Asid;

/// The longest plan: the break-before-make change, 14 steps.
pub const MAX_CD_UPDATE_STEPS: usize = 14;

/// One step of a CD update plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CdStep {
    /// Store `value` into word `word` (0 to 7) of the descriptor, as one
    /// 64-bit single-copy-atomic store.
    Write {
        /// Which 64-bit word of the descriptor.
        word: usize,
        /// Its new value.
        value: u64,
    },
    /// DSB, CMD_CFGI_CD for the stream (SubstreamID 0, leaf), CMD_SYNC,
    /// and wait for it.
    Sync,
    /// Invalidate every TLB entry tagged with the ASID in the stream's
    /// regime (CMD_TLBI_EL2_ASID in the EL2-E2H world, CMD_TLBI_NH_ASID
    /// with the entry's VMID in NS-EL1), CMD_SYNC, and wait for it.
    InvalidateAsid(Asid),
}

/// The plan that turns `old` into `new` (see the module documentation).
/// Executed in order it leaves `new` in the table and in force, and no
/// TLB entry of another context under the new ASID, nor of the old
/// context under any ASID.
pub fn cd_update_sequence(old: &Cd, new: &Cd) -> heapless::Vec<CdStep, MAX_CD_UPDATE_STEPS> {
    let mut plan = Plan::default();
    let old_words = old.words();
    let new_words = new.words();
    let differ = |i: usize| old_words[i] != new_words[i];
    let changed = (0..CD_WORDS).filter(|&i| differ(i)).count();
    if changed == 0 {
        return plan.0;
    }
    match (old.is_valid(), new.is_valid()) {
        (false, false) => {
            for word in (0..CD_WORDS).filter(|&i| differ(i)) {
                plan.write(word, new_words[word]);
            }
            plan.sync();
        }
        (false, true) => plan.bind(&old_words, new),
        (true, false) => plan.unbind(old, &new_words, new_words[0]),
        (true, true) if changed == 1 => {
            if old.asid() != new.asid() {
                plan.invalidate(new.asid());
            }
            if let Some(word) = (0..CD_WORDS).find(|&i| differ(i)) {
                plan.write(word, new_words[word]);
            }
            plan.sync();
            plan.invalidate(old.asid());
        }
        (true, true) => {
            let off = old.invalidated();
            plan.unbind(old, &old_words, off.words()[0]);
            plan.bind(&off.words(), new);
        }
    }
    plan.0
}

/// A plan under construction. [`MAX_CD_UPDATE_STEPS`] covers the longest
/// branch of [`cd_update_sequence`], so pushes cannot fail.
#[derive(Default)]
struct Plan(heapless::Vec<CdStep, MAX_CD_UPDATE_STEPS>);

impl Plan {
    fn write(&mut self, word: usize, value: u64) {
        let _ = self.0.push(CdStep::Write { word, value });
    }

    /// Adds a `Sync` unless the plan is empty or already ends with one.
    fn sync(&mut self) {
        if !matches!(self.0.last(), None | Some(CdStep::Sync)) {
            let _ = self.0.push(CdStep::Sync);
        }
    }

    fn invalidate(&mut self, asid: Asid) {
        let _ = self.0.push(CdStep::InvalidateAsid(asid));
    }

    /// From an invalid descriptor holding `current` to `new` (valid).
    fn bind(&mut self, current: &[u64; CD_WORDS], new: &Cd) {
        let new_words = new.words();
        self.invalidate(new.asid());
        for word in (1..CD_WORDS).filter(|&i| current[i] != new_words[i]) {
            self.write(word, new_words[word]);
        }
        self.sync();
        self.write(0, new_words[0]);
        self.sync();
    }

    /// From `old` (valid) to an invalid descriptor whose word 0 is `word0`
    /// and whose other words are `rest`'s.
    fn unbind(&mut self, old: &Cd, rest: &[u64; CD_WORDS], word0: u64) {
        let old_words = old.words();
        self.write(0, word0);
        self.sync();
        self.invalidate(old.asid());
        let mut wrote = false;
        for word in (1..CD_WORDS).filter(|&i| old_words[i] != rest[i]) {
            self.write(word, rest[word]);
            wrote = true;
        }
        if wrote {
            self.sync();
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use crate::cd::tests::context;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    fn cd(asid: u16, ttb0: u64) -> Cd {
        Cd::new(&context(asid, ttb0))
    }

    /// What a TLB entry was filled from.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    enum Source {
        /// A descriptor the SMMU used (its words).
        Cd([u64; CD_WORDS]),
        /// Whatever an earlier user of the ASID left.
        Stale,
    }

    /// Runs `plan` from `old` under the model: within each interval between
    /// `Sync`s the SMMU may use any mix of the values each word takes; a
    /// valid descriptor it uses may fill the TLB under its ASID at any
    /// time; an `InvalidateAsid` drops that ASID's entries, after which only
    /// the descriptor in the table can refill them. The TLB starts with
    /// the old context's entries and stale ones under the new ASID.
    /// Returns every descriptor the SMMU could use, the final TLB, the final
    /// table, and whether every invalidation came at a point where the
    /// SMMU's copy of the CD was the table's.
    struct Run {
        seen: Vec<Cd>,
        tlb: BTreeSet<(u16, Source)>,
        last: Cd,
        invalidations_coherent: bool,
    }

    fn run(old: &Cd, new: &Cd, plan: &[CdStep]) -> Run {
        let mut current = old.words();
        let mut values: Vec<Vec<u64>> = current.iter().map(|w| std::vec![*w]).collect();
        let mut seen: Vec<Cd> = Vec::new();
        let mut tlb = BTreeSet::new();
        if old.is_valid() {
            tlb.insert((old.asid().get(), Source::Cd(old.words())));
        }
        if new.is_valid() {
            tlb.insert((new.asid().get(), Source::Stale));
        }
        // Whether a write happened since the last Sync.
        let mut dirty = false;
        let mut coherent = true;
        let mut close = |values: &mut Vec<Vec<u64>>,
                         current: &[u64; CD_WORDS],
                         tlb: &mut BTreeSet<(u16, Source)>| {
            let mut combos: Vec<[u64; CD_WORDS]> = std::vec![[0; CD_WORDS]];
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
            for words in combos {
                let cd = Cd::from_words(words);
                if cd.is_valid() {
                    tlb.insert((cd.asid().get(), Source::Cd(words)));
                }
                seen.push(cd);
            }
            *values = current.iter().map(|w| std::vec![*w]).collect();
        };
        for step in plan {
            match *step {
                CdStep::Write { word, value } => {
                    current[word] = value;
                    if !values[word].contains(&value) {
                        values[word].push(value);
                    }
                    dirty = true;
                }
                CdStep::Sync => {
                    close(&mut values, &current, &mut tlb);
                    dirty = false;
                }
                CdStep::InvalidateAsid(asid) => {
                    if dirty {
                        coherent = false;
                    }
                    tlb.retain(|(tag, _)| *tag != asid.get());
                    let table = Cd::from_words(current);
                    if table.is_valid() {
                        tlb.insert((table.asid().get(), Source::Cd(current)));
                    }
                }
            }
        }
        close(&mut values, &current, &mut tlb);
        Run {
            seen,
            tlb,
            last: Cd::from_words(current),
            invalidations_coherent: coherent,
        }
    }

    /// The properties: the plan ends with `new` in the table and a `Sync`
    /// or an invalidation; the SMMU never uses a valid descriptor other
    /// than `old` or `new`; afterwards the TLB holds nothing but the new
    /// context's entries under the new ASID, and nothing of the old context
    /// (unless it is the new one); invalidations only run with the SMMU's
    /// CD copy up to date.
    fn check(old: &Cd, new: &Cd) -> Result<(), TestCaseError> {
        let plan = cd_update_sequence(old, new);
        let r = run(old, new, &plan);
        prop_assert_eq!(r.last, *new);
        if old == new {
            prop_assert!(plan.is_empty());
        } else {
            prop_assert!(matches!(
                plan.last(),
                Some(CdStep::Sync | CdStep::InvalidateAsid(_))
            ));
        }
        prop_assert!(r.invalidations_coherent, "{:?}", plan);
        for cd in &r.seen {
            prop_assert!(
                !cd.is_valid() || cd == old || cd == new,
                "mixed valid descriptor {:?} from {:?} to {:?} with {:?}",
                cd,
                old,
                new,
                plan
            );
        }
        if old == new {
            return Ok(());
        }
        for (tag, source) in &r.tlb {
            let allowed =
                new.is_valid() && *tag == new.asid().get() && *source == Source::Cd(new.words());
            prop_assert!(
                allowed,
                "TLB keeps {:?} under ASID {:#x} from {:?} to {:?} with {:?}",
                source,
                tag,
                old,
                new,
                plan
            );
        }
        Ok(())
    }

    #[test]
    fn no_change_is_no_steps() {
        let a = cd(1, 0x4000_0000);
        assert!(cd_update_sequence(&a, &a).is_empty());
        assert!(cd_update_sequence(&Cd::INVALID, &Cd::INVALID).is_empty());
    }

    #[test]
    fn binding_invalidates_the_asid_and_writes_v_last() {
        let new = cd(7, 0x4000_0000);
        let w = new.words();
        assert_eq!(
            cd_update_sequence(&Cd::INVALID, &new).as_slice(),
            [
                CdStep::InvalidateAsid(Asid::new(7)),
                CdStep::Write {
                    word: 1,
                    value: w[1]
                },
                CdStep::Write {
                    word: 3,
                    value: w[3]
                },
                CdStep::Sync,
                CdStep::Write {
                    word: 0,
                    value: w[0]
                },
                CdStep::Sync,
            ]
        );
    }

    #[test]
    fn unbinding_clears_v_first_then_invalidates_the_asid() {
        let old = cd(7, 0x4000_0000);
        assert_eq!(
            cd_update_sequence(&old, &Cd::INVALID).as_slice(),
            [
                CdStep::Write { word: 0, value: 0 },
                CdStep::Sync,
                CdStep::InvalidateAsid(Asid::new(7)),
                CdStep::Write { word: 1, value: 0 },
                CdStep::Write { word: 3, value: 0 },
                CdStep::Sync,
            ]
        );
        // Unbinding to the same descriptor with V = 0 keeps the other
        // words: V off, CFGI_CD, TLBI by ASID, and nothing else.
        assert_eq!(
            cd_update_sequence(&old, &old.invalidated()).as_slice(),
            [
                CdStep::Write {
                    word: 0,
                    value: old.invalidated().words()[0]
                },
                CdStep::Sync,
                CdStep::InvalidateAsid(Asid::new(7)),
            ]
        );
    }

    #[test]
    fn an_asid_change_alone_is_hitless_with_both_invalidated() {
        let old = cd(7, 0x4000_0000);
        let new = cd(9, 0x4000_0000);
        assert_eq!(
            cd_update_sequence(&old, &new).as_slice(),
            [
                CdStep::InvalidateAsid(Asid::new(9)),
                CdStep::Write {
                    word: 0,
                    value: new.words()[0]
                },
                CdStep::Sync,
                CdStep::InvalidateAsid(Asid::new(7)),
            ]
        );
    }

    #[test]
    fn a_table_change_alone_invalidates_the_asid_after() {
        let old = cd(7, 0x4000_0000);
        let new = cd(7, 0x4000_1000);
        assert_eq!(
            cd_update_sequence(&old, &new).as_slice(),
            [
                CdStep::Write {
                    word: 1,
                    value: 0x4000_1000
                },
                CdStep::Sync,
                CdStep::InvalidateAsid(Asid::new(7)),
            ]
        );
    }

    #[test]
    fn a_context_change_breaks_before_make() {
        let old = cd(7, 0x4000_0000);
        let new = cd(9, 0x4000_1000);
        let plan = cd_update_sequence(&old, &new);
        assert_eq!(
            plan.as_slice(),
            [
                CdStep::Write {
                    word: 0,
                    value: old.invalidated().words()[0]
                },
                CdStep::Sync,
                CdStep::InvalidateAsid(Asid::new(7)),
                CdStep::InvalidateAsid(Asid::new(9)),
                CdStep::Write {
                    word: 1,
                    value: 0x4000_1000
                },
                CdStep::Sync,
                CdStep::Write {
                    word: 0,
                    value: new.words()[0]
                },
                CdStep::Sync,
            ]
        );
        check(&old, &new).unwrap();
    }

    #[test]
    fn the_longest_plan_fits() {
        let mut a = [0x8000_0000u64; CD_WORDS];
        let mut b = [0x8001_0000_8000_0000u64; CD_WORDS];
        for i in 1..CD_WORDS {
            a[i] = i as u64;
            b[i] = 100 + i as u64;
        }
        let (old, new) = (Cd::from_words(a), Cd::from_words(b));
        let plan = cd_update_sequence(&old, &new);
        assert_eq!(plan.len(), MAX_CD_UPDATE_STEPS);
        check(&old, &new).unwrap();
    }

    #[test]
    fn known_transitions_hold_the_properties() {
        let entries = [
            Cd::INVALID,
            cd(1, 0x4000_0000),
            cd(1, 0x4000_0000).invalidated(),
            cd(2, 0x4000_0000),
            cd(1, 0x5000_0000),
            cd(2, 0x5000_0000),
            Cd::new(&context(1, 0x4000_0000).with_record_faults(false)),
        ];
        for old in &entries {
            for new in &entries {
                check(old, new).unwrap();
            }
        }
    }

    /// Descriptors from a few meaningful words per position, so that old
    /// and new often share some words and differ in others.
    fn arb_cd() -> impl Strategy<Value = Cd> {
        let word0 = prop::sample::select(std::vec![
            0u64,
            0x8000_0000,
            0x0001_0000_8000_0000,
            0x0002_0000_8000_0000,
            0x0001_0000_0000_0000,
            0x0001_0000_8000_0019,
            cd(1, 0x4000_0000).words()[0],
            cd(2, 0x4000_0000).words()[0],
        ]);
        let other = prop::sample::select(std::vec![0u64, 1, 0x4000_0000, 0xdead_beef, u64::MAX]);
        (word0, prop::array::uniform7(other)).prop_map(|(w0, rest)| {
            let mut words = [0; CD_WORDS];
            words[0] = w0;
            words[1..].copy_from_slice(&rest);
            Cd::from_words(words)
        })
    }

    fn arb_context() -> impl Strategy<Value = Cd> {
        (
            1u16..4,
            prop::sample::select(std::vec![0x4000_0000u64, 0x4000_1000]),
            any::<bool>(),
        )
            .prop_map(|(asid, ttb0, record)| {
                Cd::new(&context(asid, ttb0).with_record_faults(record))
            })
    }

    fn arb_entry() -> impl Strategy<Value = Cd> {
        prop_oneof![
            Just(Cd::INVALID),
            arb_context(),
            arb_context().prop_map(|c| c.invalidated()),
            arb_cd(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No descriptor the SMMU could use mixes old and new, and no TLB
        /// entry outlives its context, whatever the two descriptors are.
        #[test]
        fn updates_never_expose_a_mixed_cd_or_a_stale_translation(
            old in arb_entry(),
            new in arb_entry(),
        ) {
            check(&old, &new)?;
        }

        /// Random words anywhere, not just realistic ones.
        #[test]
        fn updates_of_random_words_are_safe(
            old in prop::array::uniform8(any::<u64>()),
            new in prop::array::uniform8(any::<u64>()),
            keep in prop::array::uniform8(any::<bool>()),
        ) {
            let old = Cd::from_words(old);
            let mut new_words = new;
            for i in 0..CD_WORDS {
                if keep[i] {
                    new_words[i] = old.words()[i];
                }
            }
            check(&old, &Cd::from_words(new_words))?;
        }
    }
}
