use crate::Targets;
use std::vec::Vec;

fn targets(names: &[&'static str]) -> Targets<&'static str> {
    let mut targets = Targets::new();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(targets.attach(*name), i == 0);
    }
    targets
}

#[test]
fn focus_starts_on_the_first() {
    let mut empty: Targets<u8> = Targets::new();
    assert_eq!(empty.focused(), None);
    assert_eq!(empty.focused_index(), None);
    assert_eq!(empty.focus_next(), None);
    assert_eq!(empty.set_focus(0), None);
    let targets = targets(&["alpha", "beta"]);
    assert_eq!(targets.focused(), Some(&"alpha"));
    assert_eq!(targets.focused_index(), Some(0));
    assert_eq!(
        targets.iter().copied().collect::<Vec<_>>(),
        ["alpha", "beta"]
    );
}

#[test]
fn set_focus_and_next() {
    let mut targets = targets(&["alpha", "beta", "gamma"]);
    assert_eq!(targets.set_focus(2), Some(&"gamma"));
    assert_eq!(targets.set_focus(3), None);
    assert_eq!(
        targets.focused(),
        Some(&"gamma"),
        "unchanged by a bad index"
    );
    assert_eq!(targets.focus_next(), Some(&"alpha"));
    assert_eq!(targets.focus_next(), Some(&"beta"));
}

#[test]
fn pruning_the_focused_moves_to_the_next_live_one() {
    let mut targets = targets(&["alpha", "beta", "gamma", "delta"]);
    targets.set_focus(1);
    assert!(targets.prune(|&t| t != "beta" && t != "gamma"));
    assert_eq!(targets.focused(), Some(&"delta"));
    assert_eq!(targets.len(), 2);
}

#[test]
fn pruning_the_last_focused_wraps_to_the_first() {
    let mut targets = targets(&["alpha", "beta", "gamma"]);
    targets.set_focus(2);
    assert!(targets.prune(|&t| t != "gamma"));
    assert_eq!(targets.focused(), Some(&"alpha"));
}

#[test]
fn pruning_others_keeps_the_focus() {
    let mut targets = targets(&["alpha", "beta", "gamma"]);
    targets.set_focus(2);
    assert!(!targets.prune(|&t| t != "alpha"));
    assert_eq!(targets.focused(), Some(&"gamma"));
    assert_eq!(targets.focused_index(), Some(1));
    assert!(!targets.prune(|_| true));
}

#[test]
fn pruning_everything() {
    let mut targets = targets(&["alpha", "beta"]);
    assert!(targets.prune(|_| false));
    assert!(targets.is_empty());
    assert_eq!(targets.focused(), None);
    assert!(!targets.prune(|_| false), "nothing left to move from");
    assert!(targets.attach("gamma"), "the first again has the focus");
    assert_eq!(targets.focused(), Some(&"gamma"));
}
