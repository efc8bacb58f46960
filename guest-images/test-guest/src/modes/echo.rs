//! `test=echo`: a line echo over the UART, for system tests that type into
//! the console. The guest turns its UART's receiver on, prints `READY`, and
//! answers each line it receives (ended by `\r`, `\n` or `\r\n`) with
//! `ECHO <line>`; the line `quit` ends the mode with
//! `PASS echo: <n> lines echoed`, then `DONE` and SYSTEM_OFF as usual.

use crate::{console, println, report, smp};
use core::fmt;

const TEST: &str = "echo";

/// Longest line kept; the rest of a longer line is dropped, and its
/// `ECHO` line says how many bytes were.
const MAX_LINE: usize = 256;

/// Echoes lines until `quit`.
pub fn run() {
    console::enable_receiver();
    println!("READY");
    let mut line = heapless::Vec::<u8, MAX_LINE>::new();
    let mut cut = 0;
    let mut echoed = 0;
    // The last byte was `\r`: a `\n` now is the rest of the same line end.
    let mut after_cr = false;
    loop {
        let byte = match console::read_byte() {
            Ok(Some(byte)) => byte,
            Ok(None) => {
                smp::idle();
                continue;
            }
            Err(e) => {
                report::fail(TEST, format_args!("receive error: {e}"));
                continue;
            }
        };
        match byte {
            b'\n' if after_cr => after_cr = false,
            b'\r' | b'\n' => {
                after_cr = byte == b'\r';
                if line.as_slice() == b"quit" {
                    break;
                }
                if cut == 0 {
                    println!("ECHO {}", Shown(&line));
                } else {
                    println!("ECHO {} ({cut} more bytes dropped)", Shown(&line));
                }
                echoed += 1;
                line.clear();
                cut = 0;
            }
            _ => {
                after_cr = false;
                if line.push(byte).is_err() {
                    cut += 1;
                }
            }
        }
    }
    report::pass(TEST, format_args!("{echoed} lines echoed"));
}

/// A line as printed: printable ASCII as it is, other bytes as `\xNN`.
struct Shown<'a>(&'a [u8]);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &byte in self.0 {
            match byte {
                0x20..=0x7e => write!(f, "{}", char::from(byte))?,
                other => write!(f, "\\x{other:02x}")?,
            }
        }
        Ok(())
    }
}
