use crate::{InputEvent, InputMux, ESCAPE, HELP};
use proptest::prelude::*;

#[test]
fn ordinary_bytes_go_to_the_focused_vm() {
    let mut input = InputMux::new();
    for byte in [b'a', b'\r', 0x03, 0x7f, 0xff, b'1'] {
        assert_eq!(input.feed(byte), Some(InputEvent::ToFocused(byte)));
    }
}

#[test]
fn commands_after_the_escape_key() {
    let cases = [
        (b'1', InputEvent::Focus(0)),
        (b'2', InputEvent::Focus(1)),
        (b'9', InputEvent::Focus(8)),
        (b'n', InputEvent::FocusNext),
        (b's', InputEvent::Stats),
        (b'?', InputEvent::Help),
        (b'h', InputEvent::Help),
        (ESCAPE, InputEvent::ToFocused(ESCAPE)),
        (b'0', InputEvent::Unknown(b'0')),
        (b'x', InputEvent::Unknown(b'x')),
        (b'\r', InputEvent::Unknown(b'\r')),
    ];
    let mut input = InputMux::new();
    for (key, event) in cases {
        assert_eq!(input.feed(ESCAPE), None);
        assert!(input.is_escaped());
        assert_eq!(input.feed(key), Some(event), "key {key:#x}");
        assert!(!input.is_escaped());
        // Back to ordinary input after each command.
        assert_eq!(input.feed(b'a'), Some(InputEvent::ToFocused(b'a')));
    }
}

#[test]
fn help_names_every_command() {
    let help = HELP.join("\n");
    for key in ["1..9", " n:", " s:", "? or h", "twice"] {
        assert!(help.contains(key), "{key}");
    }
}

proptest! {
    /// Taking out the escape commands leaves exactly the bytes typed.
    #[test]
    fn bytes_without_escapes_pass_unchanged(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let mut input = InputMux::new();
        let mut passed = std::vec::Vec::new();
        for &byte in &bytes {
            if let Some(InputEvent::ToFocused(b)) = input.feed(byte) {
                passed.push(b);
            }
        }
        if !bytes.contains(&ESCAPE) {
            prop_assert_eq!(passed, bytes);
        }
    }
}
