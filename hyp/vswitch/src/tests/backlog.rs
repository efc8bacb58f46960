//! The backlog: first in, first out, bounded, drops counted.

use std::vec;

use crate::Backlog;

#[test]
fn fifo_within_capacity() {
    let mut backlog = Backlog::new(3);
    assert!(backlog.is_empty());
    assert_eq!(backlog.capacity(), 3);
    assert_eq!(backlog.front(), None);
    assert_eq!(backlog.pop_front(), None);
    for i in 0..3u8 {
        assert!(backlog.push(vec![i; 20]));
    }
    assert_eq!(backlog.len(), 3);
    // Full: the new frame is dropped, the old ones stay.
    assert!(!backlog.push(vec![9; 20]));
    assert!(!backlog.push(vec![9; 20]));
    assert_eq!(backlog.dropped(), 2);
    assert_eq!(backlog.len(), 3);
    // Looking does not take.
    assert_eq!(backlog.front(), Some(&[0u8; 20][..]));
    assert_eq!(backlog.front(), Some(&[0u8; 20][..]));
    assert_eq!(backlog.pop_front(), Some(vec![0; 20]));
    // Room again.
    assert!(backlog.push(vec![3; 20]));
    for i in 1..4u8 {
        assert_eq!(backlog.pop_front(), Some(vec![i; 20]));
    }
    assert!(backlog.is_empty());
    assert_eq!(backlog.dropped(), 2);
}

#[test]
fn zero_capacity_drops_everything() {
    let mut backlog = Backlog::new(0);
    assert!(!backlog.push(vec![1; 14]));
    assert!(backlog.is_empty());
    assert_eq!(backlog.dropped(), 1);
}

#[test]
fn clear_is_not_a_drop() {
    let mut backlog = Backlog::new(2);
    backlog.push(vec![1; 14]);
    backlog.push(vec![2; 14]);
    backlog.clear();
    assert!(backlog.is_empty());
    assert_eq!(backlog.dropped(), 0);
    assert!(backlog.push(vec![3; 14]));
}
