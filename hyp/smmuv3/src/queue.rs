//! The circular queues' indexes (spec 3.5, "Command and Event queues").
//!
//! A queue of 2^n entries is described by two positions, PROD (where the
//! producer writes next) and CONS (where the consumer reads next). Each is
//! an n-bit index plus a wrap bit at bit n that flips each time the index
//! wraps, so equal indexes mean empty when the wrap bits agree and full
//! when they differ. The hypervisor is the producer of the command queue
//! and the consumer of the event queue; the SMMU is the other side and
//! moves its index through its register, which [`Ring::update_cons`] and
//! [`Ring::update_prod`] check before believing.

use core::fmt;

/// Why a queue size or index was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// More than 2^19 entries (the index fields are 20 bits with the wrap
    /// bit).
    TooLarge {
        /// log2 of the entries asked for.
        log2size: u8,
    },
    /// An index with bits set above its wrap bit.
    BadIndex {
        /// The value.
        value: u32,
        /// The queue's log2 size.
        log2size: u8,
    },
    /// The other side's index moved backwards, or past ours.
    OutOfOrder {
        /// The producer index.
        prod: u32,
        /// The consumer index.
        cons: u32,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { log2size } => {
                write!(f, "a queue of 2^{log2size} entries is beyond 2^19")
            }
            Self::BadIndex { value, log2size } => write!(
                f,
                "queue index {value:#x} has bits above the wrap bit of a 2^{log2size}-entry queue"
            ),
            Self::OutOfOrder { prod, cons } => write!(
                f,
                "queue indexes out of order: PROD {prod:#x}, CONS {cons:#x}"
            ),
        }
    }
}

/// One queue's producer and consumer positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    log2size: u8,
    prod: u32,
    cons: u32,
}

impl Ring {
    /// The largest log2 size the index fields allow.
    pub const MAX_LOG2SIZE: u8 = 19;

    /// An empty queue of 2^`log2size` entries, both positions 0.
    ///
    /// # Errors
    ///
    /// [`QueueError::TooLarge`].
    pub const fn new(log2size: u8) -> Result<Ring, QueueError> {
        if log2size > Self::MAX_LOG2SIZE {
            return Err(QueueError::TooLarge { log2size });
        }
        Ok(Ring {
            log2size,
            prod: 0,
            cons: 0,
        })
    }

    /// log2 of the number of entries.
    pub const fn log2size(&self) -> u8 {
        self.log2size
    }

    /// Entries in the queue.
    pub const fn entries(&self) -> u32 {
        1 << self.log2size
    }

    /// Mask of a position: the index and the wrap bit.
    const fn position_mask(&self) -> u32 {
        (2 << self.log2size) - 1
    }

    /// PROD, as SMMU_xQ_PROD.WR holds it.
    pub const fn prod(&self) -> u32 {
        self.prod
    }

    /// CONS, as SMMU_xQ_CONS.RD holds it.
    pub const fn cons(&self) -> u32 {
        self.cons
    }

    /// The slot a position refers to.
    pub const fn slot(&self, position: u32) -> u32 {
        position & (self.entries() - 1)
    }

    /// Entries written and not yet consumed.
    pub const fn len(&self) -> u32 {
        self.prod.wrapping_sub(self.cons) & self.position_mask()
    }

    /// Whether nothing is waiting: same index, same wrap bit.
    pub const fn is_empty(&self) -> bool {
        self.prod == self.cons
    }

    /// Whether every slot is waiting: same index, different wrap bits.
    pub const fn is_full(&self) -> bool {
        self.len() == self.entries()
    }

    /// Slots the producer may still fill.
    pub const fn free(&self) -> u32 {
        self.entries() - self.len()
    }

    /// Producer side: takes the slot at PROD and moves PROD past it;
    /// `None` if the queue is full. Returns the slot.
    pub fn push(&mut self) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        let slot = self.slot(self.prod);
        self.prod = self.prod.wrapping_add(1) & self.position_mask();
        Some(slot)
    }

    /// Consumer side: takes the slot at CONS and moves CONS past it; `None`
    /// if the queue is empty. Returns the slot.
    pub fn pop(&mut self) -> Option<u32> {
        if self.is_empty() {
            return None;
        }
        let slot = self.slot(self.cons);
        self.cons = self.cons.wrapping_add(1) & self.position_mask();
        Some(slot)
    }

    fn check_index(&self, value: u32) -> Result<u32, QueueError> {
        if value & !self.position_mask() != 0 {
            return Err(QueueError::BadIndex {
                value,
                log2size: self.log2size,
            });
        }
        Ok(value)
    }

    /// Producer side: the consumer (the SMMU) reports CONS = `value` (the
    /// register's RD field). It may only have moved forward, and not past
    /// PROD.
    ///
    /// # Errors
    ///
    /// [`QueueError::BadIndex`], [`QueueError::OutOfOrder`]; the ring is
    /// unchanged.
    pub fn update_cons(&mut self, value: u32) -> Result<(), QueueError> {
        let value = self.check_index(value)?;
        let consumed = value.wrapping_sub(self.cons) & self.position_mask();
        if consumed > self.len() {
            return Err(QueueError::OutOfOrder {
                prod: self.prod,
                cons: value,
            });
        }
        self.cons = value;
        Ok(())
    }

    /// Consumer side: the producer (the SMMU) reports PROD = `value` (the
    /// register's WR field). It may only have moved forward, and not past
    /// a full queue.
    ///
    /// # Errors
    ///
    /// [`QueueError::BadIndex`], [`QueueError::OutOfOrder`]; the ring is
    /// unchanged.
    pub fn update_prod(&mut self, value: u32) -> Result<(), QueueError> {
        let value = self.check_index(value)?;
        let produced = value.wrapping_sub(self.prod) & self.position_mask();
        if produced > self.free() {
            return Err(QueueError::OutOfOrder {
                prod: value,
                cons: self.cons,
            });
        }
        self.prod = value;
        Ok(())
    }

    /// Whether the entry written at `position` (PROD as it was before that
    /// entry's [`Ring::push`]) has been consumed: it is no longer between
    /// CONS and PROD.
    pub const fn consumed(&self, position: u32) -> bool {
        let ahead_of_cons = position.wrapping_sub(self.cons) & self.position_mask();
        ahead_of_cons >= self.len()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    #[test]
    fn sizes_up_to_2_pow_19() {
        assert_eq!(Ring::new(19).unwrap().entries(), 1 << 19);
        assert_eq!(Ring::new(20), Err(QueueError::TooLarge { log2size: 20 }));
        assert_eq!(Ring::new(0).unwrap().entries(), 1);
    }

    /// Four entries: PROD and CONS are 3-bit values, the wrap bit is bit 2.
    #[test]
    fn wrap_bit_tells_full_from_empty() {
        let mut q = Ring::new(2).unwrap();
        assert!(q.is_empty() && !q.is_full());
        for expected in 0..4 {
            assert_eq!(q.push(), Some(expected));
        }
        // Index 0 again, wrap bit set: full.
        assert_eq!(q.prod(), 0b100);
        assert!(q.is_full());
        assert_eq!(q.push(), None);
        q.update_cons(0b010).unwrap();
        assert_eq!((q.len(), q.free()), (2, 2));
        assert_eq!(q.push(), Some(0));
        assert_eq!(q.push(), Some(1));
        assert_eq!(q.prod(), 0b110);
        q.update_cons(0b110).unwrap();
        assert!(q.is_empty());
        // Around once more: the wrap bit clears.
        for _ in 0..2 {
            q.push().unwrap();
        }
        assert_eq!(q.prod(), 0b000);
    }

    #[test]
    fn a_consumer_cannot_pass_the_producer_or_go_back() {
        let mut q = Ring::new(2).unwrap();
        q.push().unwrap();
        q.push().unwrap();
        assert_eq!(
            q.update_cons(3),
            Err(QueueError::OutOfOrder { prod: 2, cons: 3 })
        );
        q.update_cons(1).unwrap();
        // Back to 0 would be 7 entries ahead.
        assert_eq!(
            q.update_cons(0),
            Err(QueueError::OutOfOrder { prod: 2, cons: 0 })
        );
        assert_eq!(
            q.update_cons(0b1000),
            Err(QueueError::BadIndex {
                value: 0b1000,
                log2size: 2
            })
        );
        assert_eq!(q.cons(), 1);
    }

    #[test]
    fn a_producer_cannot_overrun_the_consumer() {
        let mut q = Ring::new(2).unwrap();
        q.update_prod(0b100).unwrap();
        assert!(q.is_full());
        assert_eq!(
            q.update_prod(0b101),
            Err(QueueError::OutOfOrder { prod: 5, cons: 0 })
        );
        assert_eq!(q.pop(), Some(0));
        q.update_prod(0b101).unwrap();
        assert_eq!(q.len(), 4);
        let drained: Vec<u32> = core::iter::from_fn(|| q.pop()).collect();
        assert_eq!(drained, [1, 2, 3, 0]);
        assert!(q.is_empty());
    }

    #[test]
    fn consumed_follows_cons() {
        let mut q = Ring::new(3).unwrap();
        for _ in 0..6 {
            q.push().unwrap();
        }
        q.update_cons(6).unwrap();
        let sync_at = q.prod();
        q.push().unwrap();
        assert!(!q.consumed(sync_at));
        assert!(q.consumed(5));
        q.update_cons(7).unwrap();
        assert!(q.consumed(sync_at));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push,
        Pop,
        /// The other side consumes this many (as producer-side update).
        Consume(u32),
        /// The other side produces this many (as consumer-side update).
        Produce(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Push),
            Just(Op::Pop),
            (0u32..20).prop_map(Op::Consume),
            (0u32..20).prop_map(Op::Produce),
        ]
    }

    proptest! {
        /// The ring against a plain FIFO of positions: lengths, fullness,
        /// slots and the validity checks agree, whatever the order of
        /// operations and across many wraps.
        #[test]
        fn ring_matches_a_fifo(log2size in 0u8..5, ops in prop::collection::vec(op(), 0..300)) {
            let mut ring = Ring::new(log2size).unwrap();
            let entries = 1u32 << log2size;
            let mut fifo: VecDeque<u64> = VecDeque::new();
            let mut next: u64 = 0;
            for op in ops {
                match op {
                    Op::Push => {
                        let slot = ring.push();
                        if fifo.len() as u32 == entries {
                            prop_assert_eq!(slot, None);
                        } else {
                            prop_assert_eq!(slot, Some((next % u64::from(entries)) as u32));
                            fifo.push_back(next);
                            next += 1;
                        }
                    }
                    Op::Pop => {
                        let slot = ring.pop();
                        let expected = fifo.pop_front().map(|p| (p % u64::from(entries)) as u32);
                        prop_assert_eq!(slot, expected);
                    }
                    Op::Consume(n) => {
                        let before = ring;
                        let target = (ring.cons() + n) & ((2 << log2size) - 1);
                        // Positions are taken modulo twice the entries.
                        let m = (n % (2 * entries)) as usize;
                        let result = ring.update_cons(target);
                        prop_assert_eq!(result.is_ok(), m <= fifo.len());
                        if m <= fifo.len() {
                            fifo.drain(..m);
                        } else {
                            prop_assert_eq!(ring, before);
                        }
                    }
                    Op::Produce(n) => {
                        let before = ring;
                        let target = (ring.prod() + n) & ((2 << log2size) - 1);
                        let m = n % (2 * entries);
                        let result = ring.update_prod(target);
                        let room = entries as usize - fifo.len();
                        prop_assert_eq!(result.is_ok(), m as usize <= room);
                        if m as usize <= room {
                            for _ in 0..m {
                                fifo.push_back(next);
                                next += 1;
                            }
                        } else {
                            prop_assert_eq!(ring, before);
                        }
                    }
                }
                prop_assert_eq!(ring.len() as usize, fifo.len());
                prop_assert_eq!(ring.is_empty(), fifo.is_empty());
                prop_assert_eq!(ring.is_full(), fifo.len() as u32 == entries);
                prop_assert_eq!(ring.slot(ring.prod()) as u64, next % u64::from(entries));
                if let Some(front) = fifo.front() {
                    prop_assert_eq!(ring.slot(ring.cons()) as u64, front % u64::from(entries));
                }
            }
        }
    }
}
