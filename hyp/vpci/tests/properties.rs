//! Arbitrary guest access sequences: the bridge never panics, never writes
//! a physical register outside its allowlist, and the map/unmap effects it
//! returns always describe a consistent set of non-overlapping mappings
//! onto the physical BARs.

mod common;

use common::*;
use guest_boot::{IpaRange, PciWindows};
use pci::fake::FakeConfigSpace;
use pci::{Bdf, Register};
use proptest::prelude::*;
use std::collections::BTreeMap;
use vpci::{BarMapping, Effect, Unmapped, VirtualBridge, GUEST_COMMAND, PAGE_SIZE};

#[derive(Clone, Debug)]
enum Op {
    Read { offset: u64, size: u8 },
    Write { offset: u64, size: u8, value: u64 },
    Reset,
}

/// Offsets mostly inside the three functions' configuration space, where
/// the interesting registers are.
fn offset() -> impl Strategy<Value = u64> {
    let device = prop_oneof![
        Just(BLK_DEV),
        Just(EDU_DEV),
        Just(NIC_DEV),
        Just(0u8),
        0u8..32
    ];
    let function = prop_oneof![8 => Just(0u8), 1 => 0u8..8];
    let reg = prop_oneof![
        4 => 0u16..0x40,
        2 => 0x40u16..0x100,
        1 => 0u16..0x1000,
    ];
    prop_oneof![
        8 => (device, function, reg).prop_map(|(d, f, r)| ecam(0, d, f, r)),
        1 => 0u64..(16 << 20),
        1 => any::<u64>(),
    ]
}

fn size() -> impl Strategy<Value = u8> {
    prop_oneof![4 => Just(4u8), 2 => Just(2u8), 2 => Just(1u8), 2 => Just(8u8), 1 => any::<u8>()]
}

/// Values a driver would write (sizing ones, addresses in the windows,
/// command bits) and anything else.
fn value() -> impl Strategy<Value = u64> {
    prop_oneof![
        2 => Just(u64::MAX),
        1 => Just(0u64),
        3 => (0x1000_0000u64..0x3eff_0000).prop_map(|a| a & !0xfff),
        2 => (0u64..0x40).prop_map(|k| 0x1000_0000 + k * 0x4000),
        1 => (0u64..0x100).prop_map(|k| 0x7f_0000_0000 + (k << 20)),
        2 => prop_oneof![Just(0x6u64), Just(0x2), Just(0x406)],
        1 => 0u64..0x800,
        2 => any::<u64>(),
    ]
}

/// A dword (or, for a BAR pair, quadword) write to a register the guest
/// can change: the command register, a BAR slot, cache line size,
/// interrupt line.
fn register_write() -> impl Strategy<Value = Op> {
    let device = prop_oneof![Just(BLK_DEV), Just(EDU_DEV), Just(NIC_DEV)];
    let command = prop_oneof![
        4 => prop_oneof![Just(0x6u64), Just(0x2), Just(0x406)],
        1 => prop_oneof![Just(0u64), Just(0x4)],
        1 => value(),
    ];
    let address = prop_oneof![
        3 => (0x1000_0000u64..0x3eff_0000).prop_map(|a| a & !0xfff),
        // A crowded 2 MiB, where BARs collide.
        3 => (0u64..16).prop_map(|k| 0x1000_0000 + k * 0x2_0000),
        1 => (0u64..0x100).prop_map(|k| 0x7f_0000_0000 + (k << 20)),
        1 => value(),
    ];
    let reg = prop_oneof![
        3 => (Just((0x04u16, 4u8)), command.boxed()),
        4 => ((0u16..6).prop_map(|i| (0x10 + 4 * i, 4u8)), address.clone().boxed()),
        1 => ((0u16..3).prop_map(|i| (0x10 + 8 * i, 8u8)), address.boxed()),
        1 => (prop_oneof![Just((0x0c, 4)), Just((0x3c, 4))], value().boxed()),
    ];
    (device, reg).prop_map(|(device, ((reg, size), value))| Op::Write {
        offset: ecam(0, device, 0, reg),
        size,
        value,
    })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (offset(), size()).prop_map(|(offset, size)| Op::Read { offset, size }),
        4 => (offset(), size(), value()).prop_map(|(offset, size, value)| Op::Write { offset, size, value }),
        12 => register_write(),
        1 => Just(Op::Reset),
    ]
}

fn ones(size: u8) -> u64 {
    match size {
        1..=7 => (1 << (u32::from(size) * 8)) - 1,
        _ => u64::MAX,
    }
}

/// The physical memory each BAR must be mapped onto, from the host's
/// assignment: (function, BAR) -> (start, prefetchable, guest size).
fn host_bars(cs: &mut FakeConfigSpace) -> BTreeMap<(Bdf, u8), (u64, bool, u64)> {
    let mut all = BTreeMap::new();
    for p in passthroughs(cs) {
        for a in p.bars.iter() {
            if let Some(placement) = a.placement {
                let size = a.bar.size.max(PAGE_SIZE);
                all.insert(
                    (p.host, a.bar.index),
                    (placement.cpu.start().get(), a.bar.prefetchable, size),
                );
            }
        }
    }
    all
}

struct Checker {
    bridge: VirtualBridge<FakeConfigSpace>,
    windows: PciWindows,
    /// What the effects so far say is mapped.
    model: BTreeMap<(Bdf, u8), BarMapping>,
    expected_hosts: BTreeMap<(Bdf, u8), (u64, bool, u64)>,
    /// Each physical function's registers at the start, for all but the
    /// command/status dword, which must never change.
    initial: BTreeMap<Bdf, Vec<u32>>,
    writes_seen: usize,
    /// The unmaps of the last access, and why.
    unmapped: Vec<((Bdf, u8), Unmapped)>,
}

impl Checker {
    fn new(windows: PciWindows) -> Checker {
        let bridge = bridge_with(windows);
        let initial = [BLK, EDU, NIC]
            .into_iter()
            .map(|b| (b, bridge.config_space().function(b).unwrap().regs.clone()))
            .collect();
        let writes_seen = bridge.config_space().writes.len();
        Checker {
            bridge,
            windows,
            model: BTreeMap::new(),
            expected_hosts: host_bars(&mut host_bus()),
            initial,
            writes_seen,
            unmapped: Vec::new(),
        }
    }

    fn guest_device(bdf: Bdf) -> u8 {
        match bdf {
            BLK => BLK_DEV,
            EDU => EDU_DEV,
            _ => NIC_DEV,
        }
    }

    fn apply(&mut self, effects: &[Effect]) -> Result<(), TestCaseError> {
        for effect in effects {
            match *effect {
                Effect::Unmap { mapping, reason } => {
                    let key = (mapping.function, mapping.bar);
                    prop_assert_eq!(
                        self.model.remove(&key),
                        Some(mapping),
                        "unmap of what is not mapped"
                    );
                    self.unmapped.push((key, reason));
                }
                Effect::Map(m) => {
                    let key = (m.function, m.bar);
                    prop_assert!(!self.model.contains_key(&key), "mapped twice: {:?}", m);
                    for other in self.model.values() {
                        prop_assert!(
                            !other.guest.overlaps(&m.guest),
                            "{:?} overlaps {:?}",
                            m,
                            other
                        );
                    }
                    prop_assert!(
                        self.windows
                            .memory_windows()
                            .any(|w| w.contains_range(&m.guest)),
                        "{:?} outside the windows",
                        m
                    );
                    let (host, prefetchable, size) = self.expected_hosts[&key];
                    prop_assert_eq!(m.host.start().get(), host);
                    prop_assert_eq!(m.host.size(), size);
                    prop_assert_eq!(m.guest.size(), size);
                    prop_assert_eq!(m.prefetchable, prefetchable);
                    prop_assert!(m.guest.start().is_aligned(size));
                    self.model.insert(key, m);
                }
            }
        }
        Ok(())
    }

    fn check_state(&mut self) -> Result<(), TestCaseError> {
        let bridge = &self.bridge;
        // Each unmap's reason is what the BAR's status says now; a BAR
        // that moved is mapped at its new place.
        for (key, reason) in self.unmapped.drain(..) {
            let status = bridge.bar_status(key.0, key.1);
            match reason {
                Unmapped::Moved => prop_assert!(matches!(status, Some(Ok(_))), "{:?}", status),
                why => prop_assert_eq!(status, Some(Err(why))),
            }
        }
        let mapped: BTreeMap<_, _> = bridge
            .mappings()
            .map(|m| ((m.function, m.bar), m))
            .collect();
        prop_assert_eq!(&mapped, &self.model);
        for m in mapped.values() {
            let device = Self::guest_device(m.function);
            let command = bridge.read(ecam(0, device, 0, 0x04), 2).value;
            prop_assert!(command & 0x2 != 0, "mapped with decoding off: {:?}", m);
            let lower = bridge
                .read(ecam(0, device, 0, 0x10 + 4 * u16::from(m.bar)), 4)
                .value;
            prop_assert_eq!(lower & !0xf, m.guest.start().get() & 0xffff_ffff);
            prop_assert_eq!(
                bridge.bar_status(m.function, m.bar),
                Some(Ok::<IpaRange, Unmapped>(m.guest))
            );
        }
        // Every physical write since the last check: the command register
        // of an assigned function, changing only the guest's bits.
        let cs = bridge.config_space();
        for w in &cs.writes[self.writes_seen..] {
            prop_assert!([BLK, EDU, NIC].contains(&w.bdf), "write to {}", w.bdf);
            prop_assert_eq!(w.reg, Register::COMMAND_STATUS);
            prop_assert_eq!(w.value >> 16, 0, "status bits written");
            // SERR# enable, as the hypervisor left it; I/O decoding off.
            prop_assert_eq!(w.value & !u32::from(GUEST_COMMAND.bits()), 0x0100);
        }
        self.writes_seen = cs.writes.len();
        for (bdf, regs) in &self.initial {
            let f = cs.function(*bdf).unwrap();
            for (i, (now, then)) in f.regs.iter().zip(regs).enumerate() {
                if i != 1 {
                    prop_assert_eq!(now, then, "{} dword {:#x} changed", bdf, i * 4);
                }
            }
            // The guest's command is the function's.
            let device = Self::guest_device(*bdf);
            let guest = bridge.read(ecam(0, device, 0, 0x04), 2).value as u32;
            prop_assert_eq!(f.regs[1] & 0x0407, guest);
        }
        Ok(())
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Read { offset, size } => {
                let access = self.bridge.read(offset, size);
                prop_assert!(access.value <= ones(size));
            }
            Op::Write {
                offset,
                size,
                value,
            } => {
                let access = self.bridge.write(offset, size, value);
                // Nothing ignored ever half happens.
                if access.ignored.is_some() {
                    prop_assert!(access.value.is_empty());
                }
                self.apply(access.value.as_slice())?;
            }
            Op::Reset => {
                let effects = self.bridge.reset();
                for e in &effects {
                    let is_decode_off = matches!(
                        e,
                        Effect::Unmap {
                            reason: Unmapped::DecodeOff,
                            ..
                        }
                    );
                    prop_assert!(is_decode_off, "{:?}", e);
                }
                self.apply(effects.as_slice())?;
                prop_assert!(self.model.is_empty());
            }
        }
        self.check_state()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_access_sequence_keeps_the_bridge_consistent(
        with_mmio64 in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..96),
    ) {
        let windows = PciWindows {
            mmio64: with_mmio64.then(|| ipa_range(0x7f_0000_0000, 1 << 32)),
            ..PciWindows::VIRT
        };
        let mut checker = Checker::new(windows);
        for op in &ops {
            checker.run(op)?;
        }
    }

    /// Reads never change anything, whatever they hit.
    #[test]
    fn reads_have_no_side_effects(offset in offset(), size in size()) {
        let bridge = bridge();
        let before = bridge.config_space().writes.len();
        let first = bridge.read(offset, size);
        let second = bridge.read(offset, size);
        prop_assert_eq!(first, second);
        prop_assert_eq!(bridge.config_space().writes.len(), before);
    }
}
