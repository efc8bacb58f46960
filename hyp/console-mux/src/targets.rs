//! The VMs that take console input, and which of them has the focus.

use alloc::vec::Vec;

/// Input targets in the order they were attached (the VMs' start order),
/// with the focus on one of them while there are any.
#[derive(Clone, Debug)]
pub struct Targets<T> {
    items: Vec<T>,
    /// Index of the focused item; meaningless while `items` is empty.
    focus: usize,
}

impl<T> Default for Targets<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Targets<T> {
    /// No targets.
    pub const fn new() -> Self {
        Self {
            items: Vec::new(),
            focus: 0,
        }
    }

    /// Adds a target after the others. Returns true if it is the only one,
    /// and so has the focus.
    pub fn attach(&mut self, item: T) -> bool {
        self.items.push(item);
        if self.items.len() == 1 {
            self.focus = 0;
            true
        } else {
            false
        }
    }

    /// Removes the targets `alive` says are gone. If the focused one goes,
    /// the focus moves to the next live one after it (the first, after the
    /// last). Returns true if the focus moved.
    pub fn prune(&mut self, mut alive: impl FnMut(&T) -> bool) -> bool {
        let old_focus = self.focus;
        let mut focus_alive = false;
        let mut live_before_focus = 0;
        let mut index = 0;
        self.items.retain(|item| {
            let keep = alive(item);
            if keep && index < old_focus {
                live_before_focus += 1;
            }
            if index == old_focus {
                focus_alive = keep;
            }
            index += 1;
            keep
        });
        if self.items.is_empty() {
            self.focus = 0;
            return !focus_alive && index > old_focus;
        }
        // Either the focused item's new index, or that of the first live
        // item that followed it.
        self.focus = live_before_focus % self.items.len();
        !focus_alive
    }

    /// The focused target, if there is any target.
    pub fn focused(&self) -> Option<&T> {
        self.items.get(self.focus)
    }

    /// The focused target's index, if there is any target.
    pub fn focused_index(&self) -> Option<usize> {
        (self.focus < self.items.len()).then_some(self.focus)
    }

    /// Moves the focus to the target at `index`, if there is one; else
    /// leaves it and returns `None`.
    pub fn set_focus(&mut self, index: usize) -> Option<&T> {
        if index < self.items.len() {
            self.focus = index;
        }
        self.items.get(index)
    }

    /// Moves the focus to the next target (the first after the last).
    pub fn focus_next(&mut self) -> Option<&T> {
        if self.items.is_empty() {
            return None;
        }
        self.focus = (self.focus + 1) % self.items.len();
        self.items.get(self.focus)
    }

    /// How many targets there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The targets, in attach order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }
}
