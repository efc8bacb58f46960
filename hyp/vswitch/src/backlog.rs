//! Frames waiting for a guest's receive buffers.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// A port's bounded first-in first-out queue of frames waiting for receive
/// buffers. When it is full a new frame is dropped (tail drop, as a NIC
/// with a full ring does) and counted, so a guest that never posts receive
/// buffers costs the hypervisor at most `capacity` frames.
#[derive(Clone, Debug)]
pub struct Backlog {
    frames: VecDeque<Vec<u8>>,
    capacity: usize,
    dropped: u64,
}

impl Backlog {
    /// An empty backlog that holds at most `capacity` frames (0 drops
    /// everything). Room for them is allocated as frames arrive.
    pub fn new(capacity: usize) -> Self {
        Self {
            frames: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Appends `frame`, or drops and counts it if the backlog is full;
    /// returns whether it was kept.
    pub fn push(&mut self, frame: Vec<u8>) -> bool {
        if self.frames.len() >= self.capacity {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        self.frames.push_back(frame);
        true
    }

    /// The oldest frame, if any, without taking it (to take it only once a
    /// receive buffer has it).
    pub fn front(&self) -> Option<&[u8]> {
        self.frames.front().map(Vec::as_slice)
    }

    /// Takes the oldest frame.
    pub fn pop_front(&mut self) -> Option<Vec<u8>> {
        self.frames.pop_front()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no frame is waiting.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The most frames it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Frames dropped because it was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Drops every waiting frame (when the device is reset) without
    /// counting them as dropped for lack of room.
    pub fn clear(&mut self) {
        self.frames.clear();
    }
}
