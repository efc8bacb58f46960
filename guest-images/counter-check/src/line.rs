//! One output line, formatted on the stack (there is no allocator) and
//! written with a single `write` so lines from parallel instances do not
//! interleave on the console.

use core::fmt;

use crate::sys;

/// Longer lines are cut short rather than failing.
const CAPACITY: usize = 256;

/// A line being formatted.
pub struct Line {
    buffer: [u8; CAPACITY],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buffer: [0; CAPACITY],
            len: 0,
        }
    }

    /// Writes the line and a newline to `fd`.
    pub fn send(mut self, fd: u32) {
        // Keep room for the newline even when the text filled the buffer.
        let end = self.len.min(CAPACITY - 1);
        if let Some(slot) = self.buffer.get_mut(end) {
            *slot = b'\n';
        }
        sys::write_all(fd, self.buffer.get(..=end).unwrap_or_default());
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let free = self.buffer.get_mut(self.len..).unwrap_or_default();
        let take = text.len().min(free.len());
        if let (Some(dest), Some(src)) = (free.get_mut(..take), text.as_bytes().get(..take)) {
            dest.copy_from_slice(src);
            self.len += take;
        }
        // Truncating is fine; an error would abandon the rest of the line.
        Ok(())
    }
}

/// Formats and writes one line to `fd`: `say!(sys::STDOUT, "x = {}", x)`.
#[macro_export]
macro_rules! say {
    ($fd:expr, $($arg:tt)*) => {{
        let mut line = $crate::line::Line::new();
        // `Line::write_str` never fails.
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.send($fd);
    }};
}
