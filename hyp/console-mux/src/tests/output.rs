use crate::{OutputId, OutputMux, Source};
use proptest::prelude::*;
use std::string::String;
use std::vec::Vec;

/// A console that records everything printed.
struct Console {
    mux: OutputMux,
    printed: Vec<u8>,
}

impl Console {
    fn new(width: usize) -> Self {
        Self {
            mux: OutputMux::with_width(width),
            printed: Vec::new(),
        }
    }

    fn vm(&mut self, name: &str) -> OutputId {
        self.mux.add_vm(name)
    }

    fn write(&mut self, source: Source, bytes: &[u8]) {
        let printed = &mut self.printed;
        self.mux
            .write(source, bytes, &mut |b| printed.extend_from_slice(b));
    }

    fn guest(&mut self, id: OutputId, bytes: &[u8]) {
        self.write(Source::Vm(id), bytes);
    }

    fn hyp(&mut self, text: &str) {
        self.write(Source::Hypervisor, text.as_bytes());
    }

    fn end_line(&mut self, source: Source) {
        let printed = &mut self.printed;
        self.mux
            .end_line(source, &mut |b| printed.extend_from_slice(b));
    }

    /// Everything printed since the last call.
    fn take(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.printed).into_owned();
        self.printed.clear();
        text
    }
}

fn console() -> (Console, OutputId) {
    let mut console = Console::new(200);
    let alpha = console.vm("alpha");
    (console, alpha)
}

#[test]
fn guest_lines_get_the_prefix() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"hello\r\nworld\n");
    assert_eq!(c.take(), "[alpha] hello\r\n[alpha] world\r\n");
    c.guest(alpha, b"\n");
    assert_eq!(c.take(), "[alpha] \r\n", "an empty line");
}

#[test]
fn partial_lines_print_at_once() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"~ # ");
    assert_eq!(c.take(), "[alpha] ~ # ");
    c.guest(alpha, b"l");
    assert_eq!(c.take(), "l");
    c.guest(alpha, b"s");
    assert_eq!(c.take(), "s");
    c.guest(alpha, b"\r\n");
    assert_eq!(c.take(), "\r\n");
}

#[test]
fn one_byte_at_a_time_is_the_same() {
    let (mut c, alpha) = console();
    for &byte in b"PASS hello: ok\r\nDONE hello: 1 passed, 0 failed\r\n" {
        c.guest(alpha, &[byte]);
    }
    assert_eq!(
        c.take(),
        "[alpha] PASS hello: ok\r\n[alpha] DONE hello: 1 passed, 0 failed\r\n"
    );
}

#[test]
fn an_interrupted_line_is_ended_and_printed_again_whole() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"PASS hel");
    c.hyp("[cpu1] INFO  vm beta started\r\n");
    c.guest(alpha, b"lo\r\n");
    assert_eq!(
        c.take(),
        "[alpha] PASS hel\r\n[cpu1] INFO  vm beta started\r\n[alpha] PASS hello\r\n"
    );
}

#[test]
fn interleaved_vms() {
    let (mut c, alpha) = console();
    let beta = c.vm("beta");
    c.guest(alpha, b"ab");
    c.guest(beta, b"cd\n");
    c.guest(alpha, b"e\n");
    assert_eq!(c.take(), "[alpha] ab\r\n[beta] cd\r\n[alpha] abe\r\n");
}

#[test]
fn interrupted_just_before_the_line_end() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"done\r");
    c.hyp("[cpu0] WARN  x\r\n");
    c.guest(alpha, b"\n");
    assert_eq!(
        c.take(),
        "[alpha] done\r\n[cpu0] WARN  x\r\n[alpha] done\r\n"
    );
}

#[test]
fn hypervisor_partial_line_is_ended_before_a_vm_writes() {
    let (mut c, alpha) = console();
    c.hyp("no newline");
    c.guest(alpha, b"x");
    c.hyp("[cpu0] INFO  y\r\n");
    assert_eq!(c.take(), "no newline\r\n[alpha] x\r\n[cpu0] INFO  y\r\n");
    c.hyp("");
    assert_eq!(c.take(), "", "an empty write changes nothing");
}

#[test]
fn a_hypervisor_line_may_come_in_pieces() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"ab");
    for piece in ["[cpu", "0", "] ", "INFO ", " x", "\r\n"] {
        c.hyp(piece);
    }
    c.hyp("[cpu1] ");
    c.hyp("WARN  y\r\n");
    assert_eq!(
        c.take(),
        "[alpha] ab\r\n[cpu0] INFO  x\r\n[cpu1] WARN  y\r\n"
    );
}

#[test]
fn lone_carriage_return_goes_back_to_the_prefix() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"abc\rxy\r\n");
    assert_eq!(c.take(), "[alpha] abc\r[alpha] xy\r\n");
    c.guest(alpha, b"progress 1\r\r\n");
    assert_eq!(
        c.take(),
        "[alpha] progress 1\r\n",
        "\\r\\r\\n is one line end"
    );
    // After an interruption the line is just what followed the \r.
    c.guest(alpha, b"old\rnew");
    c.hyp("h\r\n");
    c.guest(alpha, b"!\n");
    assert_eq!(
        c.take(),
        "[alpha] old\r[alpha] new\r\nh\r\n[alpha] new!\r\n"
    );
}

#[test]
fn long_lines_wrap_with_a_fresh_prefix() {
    let mut c = Console::new(16);
    let alpha = c.vm("alpha");
    c.guest(alpha, b"0123456789abcdefghijklmnopqrstuvwxyz\n");
    assert_eq!(
        c.take(),
        "[alpha] 0123456789abcdef\r\n[alpha] ghijklmnopqrstuv\r\n[alpha] wxyz\r\n"
    );
    // A line of exactly the width does not wrap.
    c.guest(alpha, b"0123456789abcdef\n");
    assert_eq!(c.take(), "[alpha] 0123456789abcdef\r\n");
}

#[test]
fn line_editing_sequences_pass() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"ab\x08 \x08\x1b[K\x1b[3D\x1b[2C\x1b[1P");
    assert_eq!(c.take(), "[alpha] ab\x08 \x08\x1b[K\x1b[3D\x1b[2C\x1b[1P");
    c.guest(alpha, b"\n\x08x\n");
    assert_eq!(
        c.take(),
        "\r\n[alpha] x\r\n",
        "no backspace into the prefix"
    );
}

#[test]
fn colours_pass_and_are_reset_at_the_line_end() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"\x1b[1;31mFAIL\x1b[0m x\n");
    assert_eq!(c.take(), "[alpha] \x1b[1;31mFAIL\x1b[0m x\x1b[0m\r\n");
    c.guest(alpha, b"\x1b[32mgreen");
    c.hyp("h\r\n");
    assert_eq!(
        c.take(),
        "[alpha] \x1b[32mgreen\x1b[0m\r\nh\r\n",
        "reset before the hypervisor's line"
    );
    c.guest(alpha, b"\n");
    assert_eq!(c.take(), "[alpha] \x1b[32mgreen\x1b[0m\r\n");
}

#[test]
fn other_escape_sequences_are_dropped_or_shown() {
    let (mut c, alpha) = console();
    // Clear screen, cursor home, cursor position query, private modes.
    c.guest(alpha, b"\x1b[2J\x1b[H\x1b[6n\x1b[?25lx\x1b[1;1Hy\n");
    assert_eq!(c.take(), "[alpha] xy\r\n");
    // Not CSI: ESC is shown, the rest is text (BEL dropped).
    c.guest(alpha, b"\x1b]0;title\x07\n");
    assert_eq!(c.take(), "[alpha] \\x1b]0;title\r\n");
    // A control byte breaks a sequence.
    c.guest(alpha, b"\x1b[12\x01z\n");
    assert_eq!(c.take(), "[alpha] \\x1b[12\\x01z\r\n");
    // Too long a sequence is shown.
    c.guest(alpha, b"\x1b[11111111111111111111m\n");
    assert_eq!(c.take(), "[alpha] \\x1b[11111111111111111111m\r\n");
    // ESC at the end of a line.
    c.guest(alpha, b"a\x1b\n");
    assert_eq!(c.take(), "[alpha] a\\x1b\r\n");
}

#[test]
fn control_bytes_show_as_hex() {
    let (mut c, alpha) = console();
    c.guest(alpha, b"\x00\x01\x7f\x9b\xff\x07\n");
    assert_eq!(c.take(), "[alpha] \\x00\\x01\\x7f\\x9b\\xff\r\n");
}

#[test]
fn utf8_passes_when_valid() {
    let (mut c, alpha) = console();
    c.guest(alpha, "é ✓ 🦀\n".as_bytes());
    assert_eq!(c.take(), "[alpha] é ✓ 🦀\r\n");
    // Split across writes.
    for &byte in "ü".as_bytes() {
        c.guest(alpha, &[byte]);
    }
    c.guest(alpha, b"\n");
    assert_eq!(c.take(), "[alpha] ü\r\n");
    // Truncated, C1 control (8-bit CSI), overlong, surrogate.
    c.guest(alpha, b"\xc3A\xc2\x9b\xe0\x80\x80\xed\xa0\x80\n");
    assert_eq!(
        c.take(),
        "[alpha] \\xc3A\\xc2\\x9b\\xe0\\x80\\x80\\xed\\xa0\\x80\r\n"
    );
}

#[test]
fn end_line_when_a_vm_stops() {
    let (mut c, alpha) = console();
    c.end_line(Source::Vm(alpha));
    assert_eq!(c.take(), "", "nothing unfinished");
    c.guest(alpha, b"login: ");
    c.end_line(Source::Vm(alpha));
    assert_eq!(c.take(), "[alpha] login: \r\n");
    c.guest(alpha, b"DONE x");
    c.hyp("h\r\n");
    c.end_line(Source::Vm(alpha));
    assert_eq!(c.take(), "[alpha] DONE x\r\nh\r\n[alpha] DONE x\r\n");
    c.hyp("partial");
    c.end_line(Source::Hypervisor);
    c.end_line(Source::Hypervisor);
    assert_eq!(c.take(), "partial\r\n");
}

#[test]
fn removed_vms_print_nothing_and_ids_are_reused() {
    let (mut c, alpha) = console();
    let beta = c.vm("beta");
    c.guest(alpha, b"bye");
    let printed = &mut c.printed;
    c.mux
        .remove_vm(alpha, &mut |b| printed.extend_from_slice(b));
    assert_eq!(c.take(), "[alpha] bye\r\n");
    c.guest(alpha, b"ghost\n");
    assert_eq!(c.take(), "");
    let gamma = c.vm("gam\u{e9}ma\n");
    assert_eq!(gamma, alpha, "the free slot is reused");
    c.guest(gamma, b"hi\n");
    c.guest(beta, b"ho\n");
    assert_eq!(c.take(), "[gam?ma?] hi\r\n[beta] ho\r\n");
}

/// Where a write comes from in the property tests.
#[derive(Clone, Debug)]
enum Writer {
    Hypervisor,
    Vm(usize),
}

fn writes() -> impl Strategy<Value = Vec<(Writer, Vec<u8>)>> {
    let writer = prop_oneof![Just(Writer::Hypervisor), (0usize..3).prop_map(Writer::Vm)];
    proptest::collection::vec(
        (writer, proptest::collection::vec(any::<u8>(), 0..40)),
        0..60,
    )
}

proptest! {
    /// Whatever guests write, the console gets no control byte other than
    /// the line ends, tab, backspace and ESC, and every ESC starts an
    /// allowed CSI sequence.
    #[test]
    fn guests_never_drive_the_terminal(writes in writes()) {
        let mut c = Console::new(20);
        let ids = [c.vm("a"), c.vm("b"), c.vm("c")];
        for (writer, bytes) in &writes {
            match writer {
                // The hypervisor is trusted but keeps to plain lines here.
                Writer::Hypervisor => c.hyp("[cpu0] INFO  x\r\n"),
                Writer::Vm(i) => c.guest(ids[*i % 3], bytes),
            }
        }
        let printed = c.printed.clone();
        let mut i = 0;
        while i < printed.len() {
            let byte = printed[i];
            if byte == 0x1b {
                prop_assert_eq!(printed.get(i + 1), Some(&b'['));
                let end = printed[i + 2..]
                    .iter()
                    .position(|b| (0x40..=0x7e).contains(b))
                    .map(|p| i + 2 + p);
                prop_assert!(end.is_some());
                let end = end.unwrap_or(i);
                prop_assert!(b"mKCD@PX".contains(&printed[end]));
                prop_assert!(printed[i + 2..end].iter().all(|b| b.is_ascii_digit() || *b == b';'));
                i = end + 1;
                continue;
            }
            prop_assert!(
                byte >= 0x20 && byte != 0x7f || matches!(byte, b'\r' | b'\n' | b'\t' | 0x08) || byte >= 0x80,
                "byte {:#x}", byte
            );
            i += 1;
        }
    }

    /// Guests writing plain lines in arbitrary pieces, interleaved with each
    /// other and with hypervisor lines: each guest line shows whole, with
    /// its prefix, on some console line.
    #[test]
    fn every_guest_line_shows_whole(
        lines in proptest::collection::vec(
            (0usize..3, "[a-zA-Z0-9 .:]{0,30}", 1usize..8, any::<bool>()),
            0..30,
        ),
        hyp_every in 1usize..5,
    ) {
        let mut c = Console::new(200);
        let names = ["alpha", "beta", "gamma"];
        let ids = [c.vm(names[0]), c.vm(names[1]), c.vm(names[2])];
        // Split every line into pieces, then interleave the VMs' pieces
        // round-robin, keeping each VM's own order.
        let mut queues: [Vec<Vec<u8>>; 3] = Default::default();
        for (vm, text, piece, crlf) in &lines {
            let mut bytes = text.as_bytes().to_vec();
            bytes.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            for chunk in bytes.chunks(*piece) {
                queues[*vm].push(chunk.to_vec());
            }
        }
        let mut step = 0;
        let mut hyp_lines = 0;
        loop {
            let mut any = false;
            for vm in 0..3 {
                if !queues[vm].is_empty() {
                    let chunk = queues[vm].remove(0);
                    c.guest(ids[vm], &chunk);
                    any = true;
                    step += 1;
                    if step % hyp_every == 0 {
                        // The logger formats a line in pieces.
                        for piece in ["[cpu", "0] INFO ", " tick", "\r\n"] {
                            c.hyp(piece);
                        }
                        hyp_lines += 1;
                    }
                }
            }
            if !any {
                break;
            }
        }
        let printed = c.take();
        let console_lines: Vec<&str> = printed.split("\r\n").collect();
        for (vm, text, _, _) in &lines {
            let expected = std::format!("[{}] {}", names[*vm], text);
            prop_assert!(
                console_lines.iter().any(|l| *l == expected),
                "{:?} missing from {:?}", expected, printed
            );
        }
        prop_assert!(console_lines.iter().all(|l| !l.contains('\r') && !l.contains('\n')));
        prop_assert_eq!(
            console_lines.iter().filter(|l| **l == "[cpu0] INFO  tick").count(),
            hyp_lines
        );
    }
}
