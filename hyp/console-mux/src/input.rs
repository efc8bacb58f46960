//! The keyboard side: an escape key and a command key, everything else for
//! the focused VM.

/// The escape key, Ctrl-] (ASCII GS, 0x1D), as telnet and QEMU's monitor
/// use it: rarely typed on purpose, and never part of a terminal's escape
/// sequences.
pub const ESCAPE: u8 = 0x1d;

/// The help text, one line per entry, for the hypervisor to print on
/// [`InputEvent::Help`].
pub const HELP: &[&str] = &[
    "console: Ctrl-] then 1..9: input goes to the 1st..9th VM",
    "console: Ctrl-] then n: input goes to the next VM",
    "console: Ctrl-] then s: statistics",
    "console: Ctrl-] then ? or h: this help",
    "console: Ctrl-] twice: send Ctrl-] itself",
];

/// What a byte from the keyboard amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputEvent {
    /// Give this byte to the focused VM.
    ToFocused(u8),
    /// Give input to the VM at this index (0-based, in start order) from
    /// now on.
    Focus(usize),
    /// Give input to the VM after the focused one from now on (the first
    /// after the last).
    FocusNext,
    /// Show statistics.
    Stats,
    /// Show [`HELP`].
    Help,
    /// The escape key followed by a key that is no command; the key is
    /// dropped. Worth a hint at [`HELP`].
    Unknown(u8),
}

/// The keyboard decoder.
#[derive(Clone, Debug, Default)]
pub struct InputMux {
    /// The escape key came last: the next key is a command.
    escaped: bool,
}

impl InputMux {
    /// A decoder waiting for ordinary input.
    pub const fn new() -> Self {
        Self { escaped: false }
    }

    /// Whether the escape key came last, so the next byte is a command.
    pub const fn is_escaped(&self) -> bool {
        self.escaped
    }

    /// Takes one byte from the keyboard. `None` for the escape key itself,
    /// which waits for the command key.
    pub fn feed(&mut self, byte: u8) -> Option<InputEvent> {
        if !self.escaped {
            if byte == ESCAPE {
                self.escaped = true;
                return None;
            }
            return Some(InputEvent::ToFocused(byte));
        }
        self.escaped = false;
        Some(match byte {
            ESCAPE => InputEvent::ToFocused(ESCAPE),
            b'1'..=b'9' => InputEvent::Focus(usize::from(byte - b'1')),
            b'n' | b'N' => InputEvent::FocusNext,
            b's' | b'S' => InputEvent::Stats,
            b'?' | b'h' | b'H' => InputEvent::Help,
            other => InputEvent::Unknown(other),
        })
    }
}
