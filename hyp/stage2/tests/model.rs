//! Property test: random sequences of `map_ram`, `map_device` and `unmap`
//! against a model that is a plain list of disjoint regions, then
//! `translate` at random IPAs and at every region's edges.
//!
//! The IPAs cluster around a few anchors (1 GiB, just below and at 2 GiB,
//! 4 GiB, 6 GiB) so that requests overlap often and cross 1 GiB and 2 MiB
//! boundaries; PAs are 4 KiB, 2 MiB or 1 GiB aligned so that pages, 2 MiB
//! blocks and 1 GiB blocks all occur. PAs are never dereferenced.

use addr::{IntermediatePhysAddr, PhysAddr};
use proptest::prelude::*;
use stage2::{MemoryKind, Stage2Config, Stage2Error, Stage2Table};

const KIB4: u64 = 0x1000;
const MIB2: u64 = 0x20_0000;
const GIB: u64 = 0x4000_0000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    start: u64,
    end: u64,
    pa: u64,
    kind: MemoryKind,
}

#[derive(Clone, Debug)]
enum Op {
    Map {
        kind: MemoryKind,
        ipa: u64,
        size: u64,
        pa: u64,
    },
    Unmap {
        ipa: u64,
        size: u64,
    },
}

/// The model: disjoint regions in no particular order.
#[derive(Default)]
struct Model {
    regions: Vec<Region>,
}

impl Model {
    /// The first mapped IPA in `[ipa, ipa + size)`, if any.
    fn first_mapped(&self, ipa: u64, size: u64) -> Option<u64> {
        self.regions
            .iter()
            .filter(|r| r.start < ipa + size && ipa < r.end)
            .map(|r| r.start.max(ipa))
            .min()
    }

    fn unmap(&mut self, ipa: u64, size: u64) {
        let end = ipa + size;
        let mut kept = Vec::new();
        for r in self.regions.drain(..) {
            if r.end <= ipa || end <= r.start {
                kept.push(r);
                continue;
            }
            if r.start < ipa {
                kept.push(Region { end: ipa, ..r });
            }
            if end < r.end {
                kept.push(Region {
                    start: end,
                    pa: r.pa + (end - r.start),
                    ..r
                });
            }
        }
        self.regions = kept;
    }

    fn lookup(&self, ipa: u64) -> Option<&Region> {
        self.regions.iter().find(|r| r.start <= ipa && ipa < r.end)
    }
}

fn ipa_strategy() -> impl Strategy<Value = u64> {
    let anchor = prop::sample::select(vec![GIB, 2 * GIB - 2 * MIB2, 2 * GIB, 4 * GIB]);
    let offset = prop_oneof![
        1 => Just(0u64),
        3 => (0u64..16 * 1024).prop_map(|page| page * KIB4),
        2 => (0u64..32).prop_map(|block| block * MIB2),
    ];
    (anchor, offset).prop_map(|(a, o)| a + o)
}

fn size_strategy() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (1u64..=16).prop_map(|pages| pages * KIB4),
        4 => (1u64..=8, 0u64..=1).prop_map(|(blocks, page)| blocks * MIB2 + page * KIB4),
        1 => Just(GIB),
    ]
}

fn pa_strategy() -> impl Strategy<Value = u64> {
    // Below 2^40, so any generated range fits the 48-bit PA size.
    prop_oneof![
        (0u64..1 << 28).prop_map(|page| page * KIB4),
        (0u64..1 << 19).prop_map(|block| block * MIB2),
        (0u64..1 << 10).prop_map(|block| block * GIB),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![3 => Just(MemoryKind::Ram), 1 => Just(MemoryKind::Device)];
    // Whole, aligned gibibytes, some at an anchor of their own (6 GiB), so
    // that 1 GiB blocks survive the other requests often enough.
    let gib = (
        prop::sample::select(vec![2 * GIB, 4 * GIB, 6 * GIB]),
        pa_strategy(),
    )
        .prop_map(|(ipa, pa)| Op::Map {
            kind: MemoryKind::Ram,
            ipa,
            size: GIB,
            pa,
        });
    prop_oneof![
        4 => (kind, ipa_strategy(), size_strategy(), pa_strategy())
            .prop_map(|(kind, ipa, size, pa)| Op::Map { kind, ipa, size, pa }),
        1 => gib,
        1 => (ipa_strategy(), size_strategy()).prop_map(|(ipa, size)| Op::Unmap { ipa, size }),
    ]
}

/// Checks `translate(ipa)` against the model.
fn check(table: &Stage2Table, model: &Model, ipa: u64) -> Result<(), TestCaseError> {
    let got = table.translate(IntermediatePhysAddr(ipa));
    match (model.lookup(ipa), got) {
        (None, None) => Ok(()),
        (Some(r), Some(t)) => {
            prop_assert_eq!(t.pa, PhysAddr(r.pa + (ipa - r.start)), "IPA {:#x}", ipa);
            prop_assert_eq!(t.kind, r.kind, "IPA {:#x}", ipa);
            // The block or page that maps the IPA lies inside one region
            // of the model, at the same IPA-to-PA offset.
            prop_assert!(
                [KIB4, MIB2, GIB].contains(&t.mapping_size),
                "IPA {:#x}: leaf of {:#x}",
                ipa,
                t.mapping_size
            );
            let leaf = ipa & !(t.mapping_size - 1);
            prop_assert!(
                r.start <= leaf && leaf + t.mapping_size <= r.end,
                "IPA {:#x}: leaf [{:#x}, +{:#x}) outside {:x?}",
                ipa,
                leaf,
                t.mapping_size,
                r
            );
            Ok(())
        }
        (expected, got) => Err(TestCaseError::fail(format!(
            "IPA {ipa:#x}: model {expected:x?}, table {got:x?}"
        ))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn translate_agrees_with_a_region_model(
        ops in prop::collection::vec(op_strategy(), 1..32),
        probes in prop::collection::vec(0u64..8 * GIB, 32),
    ) {
        let config = Stage2Config::new(IntermediatePhysAddr(8 * GIB), 5, 16).unwrap();
        let mut table = Stage2Table::new(&config);
        let mut model = Model::default();

        for op in &ops {
            match *op {
                Op::Map { kind, ipa, size, pa } => {
                    let result = match kind {
                        MemoryKind::Ram => table.map_ram(IntermediatePhysAddr(ipa), PhysAddr(pa), size),
                        MemoryKind::Device => table.map_device(IntermediatePhysAddr(ipa), PhysAddr(pa), size),
                    };
                    match model.first_mapped(ipa, size) {
                        Some(mapped) => prop_assert_eq!(
                            result,
                            Err(Stage2Error::Overlap {
                                ipa: IntermediatePhysAddr(ipa),
                                size,
                                mapped: IntermediatePhysAddr(mapped),
                            })
                        ),
                        None => {
                            prop_assert_eq!(result, Ok(()));
                            model.regions.push(Region { start: ipa, end: ipa + size, pa, kind });
                        }
                    }
                }
                Op::Unmap { ipa, size } => {
                    prop_assert_eq!(table.unmap(IntermediatePhysAddr(ipa), size), Ok(()));
                    model.unmap(ipa, size);
                }
            }
        }

        for &ipa in &probes {
            check(&table, &model, ipa)?;
        }
        for r in &model.regions {
            for ipa in [r.start - 1, r.start, r.start + (r.end - r.start) / 2, r.end - 1, r.end] {
                check(&table, &model, ipa)?;
            }
        }
    }
}
