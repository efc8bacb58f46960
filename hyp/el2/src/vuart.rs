//! The guest's PL011 UART (ARM DDI 0183), transmit side: what a guest writes
//! appears on the hypervisor's console as whole lines prefixed with the VM's
//! name, `[alpha] text`. Reception and interrupts are not emulated yet: the
//! receive FIFO always reads empty and no interrupt is ever raised.
//!
//! Control registers read back what was written, and the identification
//! registers give a PL011's values so that drivers that probe the PrimeCell
//! ID (Linux's AMBA bus) find one.

use crate::console;
use crate::mmio::MmioDevice;
use alloc::string::String;
use spin::mutex::SpinMutex;

/// Register offsets in the PL011's 4 KiB frame.
mod reg {
    pub const DR: u64 = 0x000;
    pub const FR: u64 = 0x018;
    pub const IBRD: u64 = 0x024;
    pub const FBRD: u64 = 0x028;
    pub const LCR_H: u64 = 0x02c;
    pub const CR: u64 = 0x030;
    pub const IFLS: u64 = 0x034;
    pub const IMSC: u64 = 0x038;
    /// PeriphID0..3 then PCellID0..3, one byte per word.
    pub const ID: u64 = 0xfe0;
}

/// Flag register: transmit FIFO empty, receive FIFO empty.
const FR_TXFE_RXFE: u64 = (1 << 7) | (1 << 4);

/// PeriphID0..3 (part 0x011, designer ARM, revision 1) and PCellID0..3.
const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// Longest line kept before it is printed anyway.
const MAX_LINE: usize = 200;

/// Registers that read back as written: IBRD, FBRD, LCR_H, CR, IFLS, IMSC.
const STORED: [u64; 6] = [
    reg::IBRD,
    reg::FBRD,
    reg::LCR_H,
    reg::CR,
    reg::IFLS,
    reg::IMSC,
];

#[derive(Debug)]
struct State {
    line: String,
    stored: [u32; STORED.len()],
}

/// One VM's PL011.
#[derive(Debug)]
pub struct VirtualPl011 {
    /// The VM's name, the prefix of its console lines.
    name: String,
    state: SpinMutex<State>,
}

impl VirtualPl011 {
    /// A UART whose output lines are prefixed with `[name]`.
    pub fn new(name: &str) -> Self {
        Self {
            name: String::from(name),
            state: SpinMutex::new(State {
                line: String::new(),
                // CR at reset: TXE and RXE set (ARM DDI 0183 3.3.8).
                stored: [0, 0, 0, 0x300, 0x12, 0],
            }),
        }
    }

    fn emit(&self, line: &mut String) {
        console::write_fmt(format_args!("[{}] {}\r\n", self.name, line));
        line.clear();
    }

    fn transmit(&self, byte: u8) {
        let mut state = self.state.lock();
        match byte {
            b'\n' => self.emit(&mut state.line),
            b'\r' => {}
            // Printable ASCII goes through; anything else (escape sequences
            // included) is shown as `\xNN`, so no guest drives the terminal.
            0x20..=0x7e => state.line.push(char::from(byte)),
            other => {
                use core::fmt::Write;
                let _ = write!(state.line, "\\x{other:02x}");
            }
        }
        if state.line.len() >= MAX_LINE {
            self.emit(&mut state.line);
        }
    }
}

impl MmioDevice for VirtualPl011 {
    fn read(&self, offset: u64, _size: u8) -> u64 {
        match offset {
            reg::FR => FR_TXFE_RXFE,
            reg::ID..=0xffc => ID_BYTES
                .get(((offset - reg::ID) / 4) as usize)
                .map_or(0, |&b| u64::from(b)),
            _ => STORED
                .iter()
                .position(|&r| r == offset)
                .map_or(0, |i| u64::from(self.state.lock().stored[i])),
        }
    }

    fn write(&self, offset: u64, _size: u8, value: u64) {
        match offset {
            reg::DR => self.transmit(value as u8),
            _ => {
                if let Some(i) = STORED.iter().position(|&r| r == offset) {
                    self.state.lock().stored[i] = value as u32;
                }
            }
        }
    }

    fn flush(&self) {
        let mut state = self.state.lock();
        if !state.line.is_empty() {
            self.emit(&mut state.line);
        }
    }
}
