//! The output side: many sources, one console, whole lines where possible.

use alloc::vec::Vec;
use core::fmt;

/// A VM's output stream, from [`OutputMux::add_vm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutputId(usize);

/// Who is writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The hypervisor: its bytes are trusted and pass unchanged, a write is
    /// normally a whole line (the logger writes one formatted line, `\r\n`
    /// included, under one lock).
    Hypervisor,
    /// A VM's UART: its bytes become `[name] ` lines.
    Vm(OutputId),
}

/// Line width, in columns after the prefix, at which a VM's line wraps by
/// default: long enough for any line a test looks for.
pub const DEFAULT_WIDTH: usize = 200;

/// Narrowest width [`OutputMux::with_width`] takes.
const MIN_WIDTH: usize = 16;

/// Longest escape sequence that is kept together; longer ones are shown as
/// text.
const MAX_SEQUENCE: usize = 16;

/// End of a console line.
const NEWLINE: &[u8] = b"\r\n";

/// `SGR 0`: back to the terminal's default colours, sent at the end of a
/// VM's line that changed them, so they do not leak into the next line.
const SGR_RESET: &[u8] = b"\x1b[0m";

/// CSI final bytes passed through: effects confined to the current line
/// (colours, erasing, moving left and right, inserting and deleting
/// characters), which shells' line editors use. Everything else (moving to
/// other lines or absolute positions, clearing the screen, queries whose
/// answers the terminal would type in as input, modes) is dropped.
const CSI_ALLOWED: &[u8] = b"mKCD@PX";

/// Whose line the console's cursor is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// At the start of a line: nobody's.
    LineStart,
    /// After part of a hypervisor line.
    Hypervisor,
    /// In the VM's line, after its prefix.
    Vm(usize),
}

/// A multi-byte sequence being collected from a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Partial {
    /// Nothing pending.
    None,
    /// ESC seen.
    Escape,
    /// ESC `[` and what followed, in `seq`.
    Csi,
    /// A UTF-8 sequence of `need` bytes, in `seq`.
    Utf8 {
        /// Total length of the sequence.
        need: usize,
    },
}

/// One VM's output state.
#[derive(Clone, Debug)]
struct VmLine {
    /// `[name] `.
    prefix: Vec<u8>,
    /// What the console shows of the VM's unfinished line, after the
    /// prefix, to print again if the line was interrupted.
    text: Vec<u8>,
    /// Columns `text` takes (an estimate: escape sequences take none).
    columns: usize,
    /// `text` changed the colours.
    coloured: bool,
    /// A `\r` came last; whether it ends a line depends on the next byte.
    cr_pending: bool,
    partial: Partial,
    seq: [u8; MAX_SEQUENCE],
    seq_len: usize,
}

/// What a guest byte (or sequence) does to its line.
enum Token<'a> {
    /// Text for the line, and the columns it takes.
    Text(&'a [u8], usize),
    /// Back one column.
    Backspace,
    /// A `\r` not followed by `\n`: back to the start of the line.
    CarriageReturn,
    /// End of the line.
    Newline,
}

/// Interleaves the hypervisor's lines and the VMs' output on one console.
///
/// Each VM's output is shown as lines `[name] text\r\n`, printed as the bytes
/// come. The guest's `\n` or `\r\n` ends a line; a `\r` on its own returns to
/// the start of the line and prints the prefix again, so a line editor's
/// redraw lands after it. When another source writes while a VM's line is
/// unfinished, the console ends that line first; when the VM goes on, its
/// line is printed again from the start (prefix and the text so far) and
/// continues, so every guest line shows whole on some console line. Lines
/// longer than the width wrap onto a new prefixed line.
///
/// Guest bytes are filtered: printable ASCII, tab, backspace and valid UTF-8
/// (C1 controls excepted) pass; CSI sequences that only affect the current
/// line pass (SGR colours, EL erase in line, CUF and CUB cursor right and
/// left, ICH, DCH and ECH insert, delete and erase characters, without
/// private parameters) and other CSI sequences are dropped;
/// BEL is dropped; any other byte is shown as `\xNN`. A line that changed
/// colours ends with an SGR reset.
#[derive(Clone, Debug)]
pub struct OutputMux {
    vms: Vec<Option<VmLine>>,
    owner: Owner,
    width: usize,
}

impl Default for OutputMux {
    fn default() -> Self {
        Self::new()
    }
}

impl OutputMux {
    /// A console with no VMs and lines [`DEFAULT_WIDTH`] columns wide.
    pub const fn new() -> Self {
        Self {
            vms: Vec::new(),
            owner: Owner::LineStart,
            width: DEFAULT_WIDTH,
        }
    }

    /// A console whose VM lines wrap after `width` columns (at least 16).
    pub fn with_width(width: usize) -> Self {
        Self {
            width: width.max(MIN_WIDTH),
            ..Self::new()
        }
    }

    /// Adds a VM whose lines start `[name] `. Characters of `name` other
    /// than printable ASCII show as `?`.
    pub fn add_vm(&mut self, name: &str) -> OutputId {
        let mut prefix = Vec::with_capacity(name.len() + 3);
        prefix.push(b'[');
        prefix.extend(name.chars().map(|c| match c {
            ' '..='~' => c as u8,
            _ => b'?',
        }));
        prefix.extend_from_slice(b"] ");
        let line = VmLine {
            prefix,
            text: Vec::new(),
            columns: 0,
            coloured: false,
            cr_pending: false,
            partial: Partial::None,
            seq: [0; MAX_SEQUENCE],
            seq_len: 0,
        };
        if let Some(index) = self.vms.iter().position(Option::is_none) {
            self.vms[index] = Some(line);
            OutputId(index)
        } else {
            self.vms.push(Some(line));
            OutputId(self.vms.len() - 1)
        }
    }

    /// Ends the VM's unfinished line (see [`OutputMux::end_line`]) and
    /// forgets the VM; its id may be given out again.
    pub fn remove_vm(&mut self, id: OutputId, out: &mut impl FnMut(&[u8])) {
        self.end_line(Source::Vm(id), out);
        if let Some(slot) = self.vms.get_mut(id.0) {
            *slot = None;
        }
    }

    /// Writes `bytes` from `source`, passing what the console is to print to
    /// `out` (in several pieces). Writes for an unknown VM are dropped.
    pub fn write(&mut self, source: Source, bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        match source {
            Source::Hypervisor => self.write_hypervisor(bytes, out),
            Source::Vm(id) => {
                if !matches!(self.vms.get(id.0), Some(Some(_))) {
                    return;
                }
                for &byte in bytes {
                    self.vm_byte(id.0, byte, out);
                }
            }
        }
    }

    /// Ends `source`'s unfinished line, if it has one: for a VM that stops
    /// (a partial line interrupted by others is printed again, whole, first;
    /// a pending escape or UTF-8 sequence is dropped), or before the
    /// hypervisor prints something that is not its usual whole line.
    pub fn end_line(&mut self, source: Source, out: &mut impl FnMut(&[u8])) {
        match source {
            Source::Hypervisor => {
                if self.owner == Owner::Hypervisor {
                    out(NEWLINE);
                    self.owner = Owner::LineStart;
                }
            }
            Source::Vm(id) => {
                let Some(Some(vm)) = self.vms.get_mut(id.0) else {
                    return;
                };
                vm.partial = Partial::None;
                vm.seq_len = 0;
                vm.cr_pending = false;
                if self.owner == Owner::Vm(id.0) || !vm.text.is_empty() {
                    self.newline(id.0, out);
                }
            }
        }
    }

    fn write_hypervisor(&mut self, bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        let Some(&last) = bytes.last() else {
            return;
        };
        // A line of the hypervisor's own continues; a VM's is ended.
        if matches!(self.owner, Owner::Vm(_)) {
            self.interrupt(out);
        }
        out(bytes);
        self.owner = if last == b'\n' {
            Owner::LineStart
        } else {
            Owner::Hypervisor
        };
    }

    /// Ends whatever line the console is in.
    fn interrupt(&mut self, out: &mut impl FnMut(&[u8])) {
        match self.owner {
            Owner::LineStart => {}
            Owner::Hypervisor => out(NEWLINE),
            Owner::Vm(index) => {
                if let Some(Some(vm)) = self.vms.get(index) {
                    if vm.coloured {
                        out(SGR_RESET);
                    }
                }
                out(NEWLINE);
            }
        }
        self.owner = Owner::LineStart;
    }

    /// Puts the console's cursor in VM `index`'s line: ends another line if
    /// need be, then prints the prefix and the line so far.
    fn claim(&mut self, index: usize, out: &mut impl FnMut(&[u8])) {
        if self.owner == Owner::Vm(index) {
            return;
        }
        self.interrupt(out);
        if let Some(Some(vm)) = self.vms.get(index) {
            out(&vm.prefix);
            if !vm.text.is_empty() {
                out(&vm.text);
            }
        }
        self.owner = Owner::Vm(index);
    }

    fn vm_byte(&mut self, index: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        let Some(Some(vm)) = self.vms.get_mut(index) else {
            return;
        };
        if vm.cr_pending {
            match byte {
                b'\n' => {
                    vm.cr_pending = false;
                    return self.apply(index, Token::Newline, out);
                }
                // "\r\r\n" is still one line end.
                b'\r' => return,
                _ => {
                    vm.cr_pending = false;
                    self.apply(index, Token::CarriageReturn, out);
                }
            }
        }
        let Some(Some(vm)) = self.vms.get_mut(index) else {
            return;
        };
        match vm.partial {
            Partial::None => self.plain_byte(index, byte, out),
            Partial::Escape => {
                if byte == b'[' {
                    vm.partial = Partial::Csi;
                    vm.seq = [0; MAX_SEQUENCE];
                    vm.seq[..2].copy_from_slice(b"\x1b[");
                    vm.seq_len = 2;
                } else {
                    // Only CSI sequences are understood: show the ESC and
                    // take the byte as it is.
                    vm.partial = Partial::None;
                    self.apply(index, Token::Text(b"\\x1b", 4), out);
                    self.plain_byte(index, byte, out);
                }
            }
            Partial::Csi => self.csi_byte(index, byte, out),
            Partial::Utf8 { need } => self.utf8_byte(index, need, byte, out),
        }
    }

    /// A byte outside any sequence.
    fn plain_byte(&mut self, index: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        let Some(Some(vm)) = self.vms.get_mut(index) else {
            return;
        };
        match byte {
            b'\n' => self.apply(index, Token::Newline, out),
            b'\r' => vm.cr_pending = true,
            0x1b => vm.partial = Partial::Escape,
            // BEL: nobody wants the host's terminal to beep.
            0x07 => {}
            0x08 => self.apply(index, Token::Backspace, out),
            b'\t' => {
                let columns = 8 - vm.columns % 8;
                self.apply(index, Token::Text(b"\t", columns), out);
            }
            0x20..=0x7e => self.apply(index, Token::Text(&[byte], 1), out),
            0xc2..=0xf4 => {
                let need = match byte {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                vm.partial = Partial::Utf8 { need };
                vm.seq[0] = byte;
                vm.seq_len = 1;
            }
            other => self.escaped(index, other, out),
        }
    }

    fn csi_byte(&mut self, index: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        let Some(Some(vm)) = self.vms.get_mut(index) else {
            return;
        };
        match byte {
            // Parameter and intermediate bytes.
            0x20..=0x3f if vm.seq_len < MAX_SEQUENCE => {
                vm.seq[vm.seq_len] = byte;
                vm.seq_len += 1;
            }
            // The final byte.
            0x40..=0x7e => {
                vm.partial = Partial::None;
                let len = vm.seq_len;
                let params = &vm.seq[2..len];
                let private = params.iter().any(|&b| !matches!(b, b'0'..=b'9' | b';'));
                if !private && CSI_ALLOWED.contains(&byte) {
                    if byte == b'm' {
                        vm.coloured = true;
                    }
                    let mut seq = vm.seq;
                    if let Some(last) = seq.get_mut(len) {
                        *last = byte;
                        self.apply(index, Token::Text(&seq[..=len], 0), out);
                    }
                }
                if let Some(Some(vm)) = self.vms.get_mut(index) {
                    vm.seq_len = 0;
                }
            }
            // Anything else breaks the sequence: show it as text, then take
            // the byte as it is.
            _ => {
                vm.partial = Partial::None;
                let seq = vm.seq;
                let len = vm.seq_len;
                vm.seq_len = 0;
                self.apply(index, Token::Text(b"\\x1b", 4), out);
                for &b in &seq[1..len] {
                    self.apply(index, Token::Text(&[b], 1), out);
                }
                self.vm_byte(index, byte, out);
            }
        }
    }

    fn utf8_byte(&mut self, index: usize, need: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        let Some(Some(vm)) = self.vms.get_mut(index) else {
            return;
        };
        let seq = vm.seq;
        let len = vm.seq_len;
        if !(0x80..=0xbf).contains(&byte) {
            vm.partial = Partial::None;
            vm.seq_len = 0;
            for &b in &seq[..len] {
                self.escaped(index, b, out);
            }
            return self.vm_byte(index, byte, out);
        }
        vm.seq[len] = byte;
        vm.seq_len = len + 1;
        if vm.seq_len < need {
            return;
        }
        vm.partial = Partial::None;
        vm.seq_len = 0;
        let seq = vm.seq;
        let bytes = &seq[..need];
        // Overlong forms, surrogates and C1 controls (which some terminals
        // obey like ESC sequences) are shown as bytes.
        let printable = core::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.chars().next())
            .is_some_and(|c| !c.is_control());
        if printable {
            self.apply(index, Token::Text(bytes, 1), out);
        } else {
            for &b in bytes {
                self.escaped(index, b, out);
            }
        }
    }

    /// `byte` shown as `\xNN`.
    fn escaped(&mut self, index: usize, byte: u8, out: &mut impl FnMut(&[u8])) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let text = [
            b'\\',
            b'x',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ];
        self.apply(index, Token::Text(&text, 4), out);
    }

    fn apply(&mut self, index: usize, token: Token<'_>, out: &mut impl FnMut(&[u8])) {
        match token {
            Token::Newline => self.newline(index, out),
            Token::CarriageReturn => {
                if let Some(Some(vm)) = self.vms.get_mut(index) {
                    vm.text.clear();
                    vm.columns = 0;
                }
                if self.owner == Owner::Vm(index) {
                    out(b"\r");
                    self.owner = Owner::LineStart;
                }
                self.claim(index, out);
            }
            Token::Backspace => {
                let Some(Some(vm)) = self.vms.get_mut(index) else {
                    return;
                };
                // Not into the prefix.
                if vm.columns == 0 {
                    return;
                }
                vm.columns -= 1;
                vm.text.push(0x08);
                self.claim_and_print(index, b"\x08", out);
            }
            Token::Text(bytes, columns) => {
                let Some(Some(vm)) = self.vms.get(index) else {
                    return;
                };
                let too_wide = vm.columns > 0 && vm.columns + columns > self.width;
                // Bounds what a line of escape sequences can hold.
                let too_long = vm.text.len() + bytes.len() > self.width * 4 + 64;
                if too_wide || too_long {
                    self.newline(index, out);
                }
                let Some(Some(vm)) = self.vms.get_mut(index) else {
                    return;
                };
                vm.columns += columns;
                vm.text.extend_from_slice(bytes);
                self.claim_and_print(index, bytes, out);
            }
        }
    }

    /// Prints `bytes`, which are already in the VM's `text`, in its line.
    fn claim_and_print(&mut self, index: usize, bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        if self.owner == Owner::Vm(index) {
            out(bytes);
        } else {
            // Claiming prints the whole text, `bytes` included.
            self.claim(index, out);
        }
    }

    /// Ends VM `index`'s line: printed whole if it was interrupted.
    fn newline(&mut self, index: usize, out: &mut impl FnMut(&[u8])) {
        self.claim(index, out);
        self.interrupt(out);
        if let Some(Some(vm)) = self.vms.get_mut(index) {
            vm.text.clear();
            vm.columns = 0;
            vm.coloured = false;
        }
    }
}

impl fmt::Display for OutputId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "output {}", self.0)
    }
}
