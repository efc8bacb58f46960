extern crate std;

use super::*;
use proptest::prelude::*;
use std::collections::VecDeque;
use std::string::ToString;
use std::vec::Vec;

const DR: u64 = 0x000;
const RSR: u64 = 0x004;
const FR: u64 = 0x018;
const IBRD: u64 = 0x024;
const FBRD: u64 = 0x028;
const LCR_H: u64 = 0x02c;
const CR: u64 = 0x030;
const IFLS: u64 = 0x034;
const IMSC: u64 = 0x038;
const RIS: u64 = 0x03c;
const MIS: u64 = 0x040;
const ICR: u64 = 0x044;
const DMACR: u64 = 0x048;

/// Linux's `UART01x_LCRH_WLEN_8 | UART01x_LCRH_FEN`.
const LCRH_8N1_FIFO: u64 = 0x70;
/// `UART01x_CR_UARTEN | UART011_CR_TXE | UART011_CR_RXE`.
const CR_ON: u64 = 0x301;

fn rd(uart: &mut Pl011, offset: u64) -> u32 {
    let access = uart.read(offset, 4);
    assert_eq!(access.ignored, None, "read at {offset:#x}");
    access.value
}

fn wr(uart: &mut Pl011, offset: u64, value: u64) -> Option<u8> {
    let access = uart.write(offset, 4, value);
    assert_eq!(access.ignored, None, "write at {offset:#x}");
    access.value
}

/// Linux's 16-bit `pl011_read`.
fn r16(uart: &mut Pl011, offset: u64) -> u32 {
    let access = uart.read(offset, 2);
    assert_eq!(access.ignored, None, "read at {offset:#x}");
    access.value
}

/// Linux's 16-bit `pl011_write`; returns the byte transmitted.
fn w16(uart: &mut Pl011, offset: u64, value: u64) -> Option<u8> {
    let access = uart.write(offset, 2, value);
    assert_eq!(access.ignored, None, "write at {offset:#x}");
    access.value
}

/// A UART set up as Linux leaves it once its tty is open: 8N1 with FIFOs,
/// trigger levels 1/2, enabled, RX and RT unmasked.
fn enabled() -> Pl011 {
    let mut uart = Pl011::new();
    wr(&mut uart, LCR_H, LCRH_8N1_FIFO);
    wr(&mut uart, CR, CR_ON);
    wr(
        &mut uart,
        IMSC,
        u64::from(Interrupts::RX.union(Interrupts::RT).bits()),
    );
    wr(&mut uart, ICR, u64::from(Interrupts::ALL.bits()));
    uart
}

/// What Linux 6.1's amba-pl011 driver keeps: the interrupt mask it last
/// wrote and its transmit buffer.
struct LinuxPort {
    im: u32,
    xmit: VecDeque<u8>,
    fifosize: usize,
    received: Vec<u8>,
    sent: Vec<u8>,
    /// Makes `pl011_tx_char` see TXFF after this many bytes in one call of
    /// `pl011_tx_chars`, as if the FIFO filled up.
    fifo_full_after: Option<usize>,
}

impl LinuxPort {
    /// `pl011_probe` -> `pl011_register_port`, then the console's
    /// `pl011_console_setup` (UART not enabled: `set_termios` path), then
    /// `pl011_startup`.
    fn probe_and_startup(uart: &mut Pl011) -> Self {
        // The AMBA bus reads the PrimeCell IDs (32-bit) and checks them.
        let mut id = [0u32; 8];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = rd(uart, 0xfe0 + 4 * i as u64);
        }
        let periphid = id[0] | id[1] << 8 | id[2] << 16 | id[3] << 24;
        let cellid = id[4] | id[5] << 8 | id[6] << 16 | id[7] << 24;
        assert_eq!(cellid, 0xb105_f00d);
        assert_eq!(
            periphid & 0x000f_ffff,
            0x0004_1011,
            "part 0x011, designer ARM"
        );
        let revision = (periphid >> 20) & 0xf;
        let fifosize = if revision < 3 { 16 } else { 32 };
        assert_eq!(fifosize, FIFO_DEPTH);

        // pl011_register_port: mask and clear everything.
        w16(uart, IMSC, 0);
        w16(uart, ICR, 0xffff);

        // pl011_console_setup: the UART is not enabled, so set_termios.
        assert_eq!(r16(uart, CR) & 1, 0);
        let old_cr = r16(uart, CR);
        w16(uart, CR, 0);
        w16(uart, FBRD, 0x3f & 13);
        w16(uart, IBRD, 1);
        w16(uart, LCR_H, LCRH_8N1_FIFO);
        w16(uart, CR, u64::from(old_cr));

        // pl011_startup -> pl011_hwinit.
        let rx_and_errors = Interrupts::OE
            .union(Interrupts::BE)
            .union(Interrupts::PE)
            .union(Interrupts::FE)
            .union(Interrupts::RT)
            .union(Interrupts::RX);
        w16(uart, ICR, u64::from(rx_and_errors.bits()));
        let im = r16(uart, IMSC);
        w16(
            uart,
            IMSC,
            u64::from(Interrupts::RT.union(Interrupts::RX).bits()),
        );
        // pl011_allocate_irq
        w16(uart, IMSC, u64::from(im));
        w16(uart, IFLS, 0x12);
        let cr = r16(uart, CR) & (1 << 11 | 1 << 10);
        w16(uart, CR, u64::from(cr) | CR_ON);
        // pl011_enable_interrupts
        w16(
            uart,
            ICR,
            u64::from(Interrupts::RT.union(Interrupts::RX).bits()),
        );
        let mut port = Self {
            im: 0,
            xmit: VecDeque::new(),
            fifosize,
            received: Vec::new(),
            sent: Vec::new(),
            fifo_full_after: None,
        };
        for _ in 0..fifosize * 2 {
            if r16(uart, FR) & fr::RXFE != 0 {
                break;
            }
            r16(uart, DR);
        }
        port.im = Interrupts::RT.union(Interrupts::RX).bits();
        w16(uart, IMSC, u64::from(port.im));
        port
    }

    fn set_im(&mut self, uart: &mut Pl011, im: u32) {
        self.im = im;
        w16(uart, IMSC, u64::from(im));
    }

    /// `pl011_tx_char`; `written` counts this call's bytes so far.
    fn tx_char(&mut self, uart: &mut Pl011, byte: u8, from_irq: bool, written: usize) -> bool {
        if !from_irq
            && (r16(uart, FR) & fr::TXFF != 0 || self.fifo_full_after.is_some_and(|n| written >= n))
        {
            return false;
        }
        if let Some(sent) = w16(uart, DR, u64::from(byte)) {
            self.sent.push(sent);
        }
        true
    }

    /// `pl011_tx_chars`: true if TX interrupts are to stay enabled.
    fn tx_chars(&mut self, uart: &mut Pl011, from_irq: bool) -> bool {
        let mut count = self.fifosize >> 1;
        let mut written = 0;
        if self.xmit.is_empty() {
            self.stop_tx(uart);
            return false;
        }
        loop {
            if from_irq {
                if count == 0 {
                    break;
                }
                count -= 1;
            }
            let Some(&byte) = self.xmit.front() else {
                break;
            };
            if !self.tx_char(uart, byte, from_irq, written) {
                break;
            }
            written += 1;
            self.xmit.pop_front();
            if self.xmit.is_empty() {
                break;
            }
        }
        if self.xmit.is_empty() {
            self.stop_tx(uart);
            return false;
        }
        true
    }

    fn stop_tx(&mut self, uart: &mut Pl011) {
        self.set_im(uart, self.im & !Interrupts::TX.bits());
    }

    /// `pl011_start_tx_pio`.
    fn start_tx(&mut self, uart: &mut Pl011) {
        if self.tx_chars(uart, false) {
            self.set_im(uart, self.im | Interrupts::TX.bits());
        }
    }

    /// `pl011_int` if the line is high; returns whether it handled anything.
    fn interrupt(&mut self, uart: &mut Pl011) -> bool {
        if !uart.interrupt_line() {
            return false;
        }
        let mut status = r16(uart, RIS) & self.im;
        assert_ne!(status, 0, "line high but nothing unmasked is pending");
        let mut passes = 256;
        while status != 0 {
            let not_level = Interrupts::TX.union(Interrupts::RT).union(Interrupts::RX);
            w16(uart, ICR, u64::from(status & !not_level.bits()));
            if status & (Interrupts::RT.bits() | Interrupts::RX.bits()) != 0 {
                self.fifo_to_tty(uart);
            }
            if status & Interrupts::TX.bits() != 0 {
                self.tx_chars(uart, true);
            }
            if passes == 0 {
                break;
            }
            passes -= 1;
            status = r16(uart, RIS) & self.im;
        }
        true
    }

    /// `pl011_fifo_to_tty`.
    fn fifo_to_tty(&mut self, uart: &mut Pl011) {
        for _ in 0..256 {
            if r16(uart, FR) & fr::RXFE != 0 {
                break;
            }
            self.received.push(r16(uart, DR) as u8);
        }
    }

    /// `pl011_console_write` of `text` (with `\n` as `\r\n`).
    fn console_write(&mut self, uart: &mut Pl011, text: &[u8]) {
        let old_cr = r16(uart, CR);
        w16(uart, CR, u64::from((old_cr & !(1 << 15)) | 1 | 1 << 8));
        for &byte in text {
            if byte == b'\n' {
                self.console_putchar(uart, b'\r');
            }
            self.console_putchar(uart, byte);
        }
        let mut spins = 0;
        while r16(uart, FR) & fr::BUSY != 0 {
            spins += 1;
            assert!(spins < 100, "BUSY never clears");
        }
        w16(uart, CR, u64::from(old_cr));
    }

    fn console_putchar(&mut self, uart: &mut Pl011, byte: u8) {
        let mut spins = 0;
        while r16(uart, FR) & fr::TXFF != 0 {
            spins += 1;
            assert!(spins < 100, "TXFF never clears");
        }
        self.sent.extend(w16(uart, DR, u64::from(byte)));
    }
}

#[test]
fn reset_values() {
    let mut uart = Pl011::new();
    assert_eq!(rd(&mut uart, CR), 0x300);
    assert_eq!(rd(&mut uart, IFLS), 0x12);
    assert_eq!(rd(&mut uart, FR), fr::TXFE | fr::RXFE);
    for offset in [RSR, 0x20, IBRD, FBRD, LCR_H, IMSC, MIS, DMACR] {
        assert_eq!(rd(&mut uart, offset), 0, "offset {offset:#x}");
    }
    assert_eq!(rd(&mut uart, RIS), Interrupts::TX.bits());
    assert!(!uart.interrupt_line());
    assert_eq!(uart.rx_room(), 0, "UARTEN is clear out of reset");
}

#[test]
fn identification_registers_in_every_width() {
    let mut uart = Pl011::new();
    for (i, &byte) in ID_BYTES.iter().enumerate() {
        let offset = 0xfe0 + 4 * i as u64;
        for size in [1, 2, 4] {
            assert_eq!(uart.read(offset, size), Access::done(u32::from(byte)));
        }
        assert_eq!(
            uart.write(offset, 4, 0),
            Access::not_done(None, Ignored::ReadOnly(Register::Id(i as u8)))
        );
    }
    assert_eq!(Register::Id(1).to_string(), "UARTPeriphID1");
    assert_eq!(Register::Id(6).to_string(), "UARTPCellID2");
}

#[test]
fn linux_probe_startup_and_console_write() {
    let mut uart = Pl011::new();
    let mut port = LinuxPort::probe_and_startup(&mut uart);
    assert_eq!(rd(&mut uart, CR), CR_ON as u32);
    assert_eq!(rd(&mut uart, LCR_H), LCRH_8N1_FIFO as u32);
    assert_eq!(rd(&mut uart, IBRD), 1);
    assert_eq!(rd(&mut uart, FBRD), 13);
    assert!(!uart.interrupt_line(), "nothing to report after startup");
    assert_eq!(uart.rx_room(), FIFO_DEPTH);

    port.console_write(&mut uart, b"Linux version 6.1\n");
    assert_eq!(port.sent, b"Linux version 6.1\r\n");
    assert_eq!(rd(&mut uart, CR), CR_ON as u32, "CR restored");
    assert!(!uart.interrupt_line(), "TXIM stays masked");
}

#[test]
fn linux_tty_write_without_interrupts() {
    let mut uart = Pl011::new();
    let mut port = LinuxPort::probe_and_startup(&mut uart);
    port.xmit.extend(b"hello, world\r\n".iter().copied());
    port.start_tx(&mut uart);
    // TXFF never shows, so pl011_start_tx_pio writes it all and stops.
    assert_eq!(port.sent, b"hello, world\r\n");
    assert_eq!(port.im & Interrupts::TX.bits(), 0);
    assert!(!uart.interrupt_line());
}

#[test]
fn linux_tty_write_with_tx_interrupt_is_never_left_waiting() {
    let mut uart = Pl011::new();
    let mut port = LinuxPort::probe_and_startup(&mut uart);
    // As if pl011_start_tx_pio had seen TXFF after 16 bytes (it never does
    // here): it unmasks TXIM with data left and waits for the interrupt.
    port.xmit.extend((0..100).map(|i| b'a' + i % 26));
    port.fifo_full_after = Some(FIFO_DEPTH);
    port.start_tx(&mut uart);
    port.fifo_full_after = None;
    assert_eq!(port.sent.len(), FIFO_DEPTH);
    assert_ne!(port.im & Interrupts::TX.bits(), 0, "TXIM unmasked");
    assert!(uart.interrupt_line(), "the FIFO drained at once");
    // The interrupt handler writes half a FIFO per pass, never clearing
    // TXIS, until the buffer is empty and pl011_stop_tx masks TXIM.
    let mut interrupts = 0;
    while port.interrupt(&mut uart) {
        interrupts += 1;
        assert!(interrupts < 100, "interrupt storm");
    }
    assert_eq!(port.sent.len(), 100);
    assert!(port
        .sent
        .iter()
        .enumerate()
        .all(|(i, &b)| b == b'a' + i as u8 % 26));
    assert_eq!(port.im & Interrupts::TX.bits(), 0, "stop_tx masked TXIM");
    assert!(!uart.interrupt_line());
}

#[test]
fn tx_interrupt_even_before_the_first_write() {
    // A driver that unmasks TXIM before writing anything (the "active"
    // way) gets its interrupt: the FIFO is empty out of reset.
    let mut uart = Pl011::new();
    wr(&mut uart, IMSC, u64::from(Interrupts::TX.bits()));
    assert!(uart.interrupt_line());
    assert_eq!(rd(&mut uart, MIS), Interrupts::TX.bits());
}

#[test]
fn tx_interrupt_cleared_by_icr_and_set_by_the_next_write() {
    let mut uart = enabled();
    wr(&mut uart, IMSC, u64::from(Interrupts::TX.bits()));
    assert!(!uart.interrupt_line(), "enabled() cleared everything");
    assert_eq!(wr(&mut uart, DR, u64::from(b'w')), Some(b'w'));
    assert!(uart.interrupt_line());
    wr(&mut uart, ICR, u64::from(Interrupts::TX.bits()));
    assert!(!uart.interrupt_line(), "acknowledged with nothing to send");
    assert_eq!(rd(&mut uart, RIS), 0);
    assert_eq!(wr(&mut uart, DR, u64::from(b'x')), Some(b'x'));
    assert!(uart.interrupt_line());
}

#[test]
fn linux_receives_a_keystroke_by_receive_timeout() {
    let mut uart = Pl011::new();
    let mut port = LinuxPort::probe_and_startup(&mut uart);
    assert_eq!(uart.receive(b'l'), Received::Queued);
    assert_eq!(
        rd(&mut uart, RIS),
        Interrupts::RT.bits(),
        "below the trigger of 8"
    );
    assert!(uart.interrupt_line());
    assert!(port.interrupt(&mut uart));
    assert_eq!(port.received, b"l");
    assert!(!uart.interrupt_line());
    assert_eq!(rd(&mut uart, FR) & fr::RXFE, fr::RXFE);
}

#[test]
fn linux_receives_a_pasted_line_longer_than_the_fifo() {
    let mut uart = Pl011::new();
    let mut port = LinuxPort::probe_and_startup(&mut uart);
    let line: Vec<u8> = (0..200).map(|i| b'0' + i % 10).collect();
    let mut backlog: VecDeque<u8> = line.iter().copied().collect();
    let refill = |uart: &mut Pl011, backlog: &mut VecDeque<u8>| {
        while uart.rx_room() > 0 {
            let Some(byte) = backlog.pop_front() else {
                break;
            };
            assert_eq!(uart.receive(byte), Received::Queued);
        }
    };
    refill(&mut uart, &mut backlog);
    assert_eq!(
        rd(&mut uart, RIS),
        Interrupts::RX.bits(),
        "a full FIFO is above the trigger"
    );
    assert_eq!(rd(&mut uart, FR) & fr::RXFF, fr::RXFF);
    // Like the hypervisor: refill after each interrupt's reads.
    let mut rounds = 0;
    while port.interrupt(&mut uart) {
        refill(&mut uart, &mut backlog);
        rounds += 1;
        assert!(rounds < 100);
    }
    assert_eq!(port.received, line);
}

#[test]
fn rx_and_rt_follow_the_fifo_level_and_ignore_icr() {
    let mut uart = enabled();
    for _ in 0..7 {
        let _ = uart.receive(b'x');
    }
    assert_eq!(uart.raw_interrupts(), Interrupts::RT);
    // The timeout condition still holds, so clearing it changes nothing.
    wr(
        &mut uart,
        ICR,
        u64::from(Interrupts::RT.union(Interrupts::RX).bits()),
    );
    assert_eq!(uart.raw_interrupts(), Interrupts::RT);
    let _ = uart.receive(b'x');
    assert_eq!(
        uart.raw_interrupts(),
        Interrupts::RX,
        "8 reaches the 1/2 trigger"
    );
    assert_eq!(rd(&mut uart, DR), u32::from(b'x'));
    assert_eq!(uart.raw_interrupts(), Interrupts::RT, "7 is below it again");
    for _ in 0..7 {
        let _ = rd(&mut uart, DR);
    }
    assert_eq!(uart.raw_interrupts(), Interrupts::NONE);
    assert_eq!(rd(&mut uart, DR), 0, "an empty FIFO reads 0");
}

#[test]
fn masks_select_what_raises_the_line() {
    let mut uart = enabled();
    let _ = uart.receive(b'x');
    wr(&mut uart, IMSC, u64::from(Interrupts::RX.bits()));
    assert!(!uart.interrupt_line(), "RT pending but masked");
    assert_eq!(rd(&mut uart, MIS), 0);
    wr(&mut uart, IMSC, u64::from(Interrupts::RT.bits()));
    assert!(uart.interrupt_line());
    assert_eq!(rd(&mut uart, MIS), Interrupts::RT.bits());
}

#[test]
fn trigger_levels() {
    for (rxiflsel, trigger) in [(0, 2), (1, 4), (2, 8), (3, 12), (4, 14), (5, 14), (7, 14)] {
        let mut uart = enabled();
        wr(&mut uart, IFLS, rxiflsel << 3);
        for n in 1..=FIFO_DEPTH {
            let _ = uart.receive(0);
            let expected = if n >= trigger {
                Interrupts::RX
            } else {
                Interrupts::RT
            };
            assert_eq!(
                uart.raw_interrupts(),
                expected,
                "RXIFLSEL {rxiflsel}, {n} bytes"
            );
        }
    }
}

#[test]
fn fifo_disabled_holds_one_byte() {
    let mut uart = Pl011::new();
    wr(&mut uart, CR, CR_ON);
    assert_eq!(uart.rx_room(), 1);
    assert_eq!(uart.receive(b'a'), Received::Queued);
    assert_eq!(rd(&mut uart, FR), fr::TXFE | fr::RXFF);
    assert_eq!(uart.raw_interrupts(), Interrupts::RX.union(Interrupts::TX));
    assert_eq!(uart.rx_room(), 0);
    assert_eq!(uart.receive(b'b'), Received::Overrun);
    assert_eq!(rd(&mut uart, DR), u32::from(b'a') | u32::from(dr::OE));
    assert_eq!(rd(&mut uart, FR), fr::TXFE | fr::RXFE);
}

#[test]
fn switching_fifo_mode_empties_the_fifo() {
    let mut uart = enabled();
    for byte in *b"abc" {
        let _ = uart.receive(byte);
    }
    wr(&mut uart, LCR_H, 0x60);
    assert_eq!(rd(&mut uart, FR) & fr::RXFE, fr::RXFE);
    assert_eq!(uart.rx_room(), 1);
    let _ = uart.receive(b'd');
    // Rewriting the same mode keeps the contents.
    wr(&mut uart, LCR_H, 0x60);
    assert_eq!(rd(&mut uart, DR), u32::from(b'd'));
}

#[test]
fn overrun_flags_the_newest_byte_until_cleared() {
    let mut uart = enabled();
    wr(&mut uart, IMSC, u64::from(Interrupts::OE.bits()));
    for i in 0..FIFO_DEPTH {
        assert_eq!(uart.receive(i as u8), Received::Queued);
    }
    assert_eq!(uart.rx_room(), 0);
    assert!(!uart.interrupt_line());
    assert_eq!(uart.receive(0xee), Received::Overrun);
    assert_eq!(uart.receive(0xef), Received::Overrun);
    assert!(uart.interrupt_line());
    assert_eq!(rd(&mut uart, RSR), 0x8, "UARTRSR.OE");
    for i in 0..FIFO_DEPTH - 1 {
        assert_eq!(rd(&mut uart, DR), i as u32);
    }
    assert_eq!(
        rd(&mut uart, DR),
        (FIFO_DEPTH as u32 - 1) | u32::from(dr::OE),
        "data was lost after the newest byte"
    );
    assert_eq!(rd(&mut uart, RSR), 0x8, "OE stays until cleared");
    wr(&mut uart, RSR, 0);
    assert_eq!(rd(&mut uart, RSR), 0);
    assert!(uart.interrupt_line(), "OERIS stays until UARTICR");
    wr(&mut uart, ICR, u64::from(Interrupts::OE.bits()));
    assert!(!uart.interrupt_line());
    assert_eq!(uart.receive(1), Received::Queued);
    assert_eq!(rd(&mut uart, DR), 1, "a fresh byte has no error");
}

#[test]
fn receiver_off_receives_nothing() {
    let mut uart = Pl011::new();
    assert_eq!(uart.receive(b'a'), Received::ReceiverOff);
    wr(&mut uart, CR, 0x101); // UARTEN and TXE, no RXE
    assert_eq!(uart.rx_room(), 0);
    assert_eq!(uart.receive(b'a'), Received::ReceiverOff);
    assert_eq!(rd(&mut uart, FR) & fr::RXFE, fr::RXFE);
    assert_eq!(rd(&mut uart, RIS) & Interrupts::OE.bits(), 0);
    // Transmission does not depend on the enables.
    assert_eq!(wr(&mut uart, DR, 0x41), Some(b'A'));
    wr(&mut uart, CR, 0);
    assert_eq!(wr(&mut uart, DR, 0x1_42), Some(b'B'));
}

#[test]
fn registers_read_back_within_their_widths() {
    let mut uart = Pl011::new();
    for (offset, written, read) in [
        (0x20, 0x1ff, 0xff),
        (IBRD, 0x1_2345, 0x2345),
        (FBRD, 0xff, 0x3f),
        (LCR_H, 0x1ef, 0xef),
        (CR, 0xf_ff87, 0xff87),
        (IFLS, 0xff, 0x3f),
        (IMSC, 0xffff, 0x7ff),
        (DMACR, 0xff, 0x7),
    ] {
        wr(&mut uart, offset, written);
        assert_eq!(rd(&mut uart, offset), read, "offset {offset:#x}");
    }
}

#[test]
fn narrow_accesses() {
    let mut uart = enabled();
    assert_eq!(uart.write(DR, 1, u64::from(b'z')), Access::done(Some(b'z')));
    assert_eq!(uart.write(DR, 2, 0x1_0041), Access::done(Some(b'A')));
    assert_eq!(uart.read(FR, 1), Access::done(fr::TXFE | fr::RXFE));
    wr(&mut uart, IBRD, 0xabcd);
    assert_eq!(uart.read(IBRD, 1), Access::done(0xcd));
    // A narrow write writes the whole register, upper bits zero.
    assert_eq!(uart.write(IBRD, 1, 0x12), Access::done(None));
    assert_eq!(rd(&mut uart, IBRD), 0x12);
}

#[test]
fn unknown_and_malformed_accesses_are_ignored() {
    let mut uart = enabled();
    for offset in [
        0x008,
        0x00c,
        0x010,
        0x014,
        0x01c,
        0x04c,
        0x080,
        0xfdc,
        0x1000,
        u64::MAX - 3,
    ] {
        assert_eq!(
            uart.read(offset, 4),
            Access::not_done(0, Ignored::UnknownOffset { offset })
        );
        assert_eq!(
            uart.write(offset, 4, 1),
            Access::not_done(None, Ignored::UnknownOffset { offset })
        );
    }
    assert_eq!(
        uart.write(0x001, 1, 0x41),
        Access::not_done(None, Ignored::Unaligned { offset: 1, size: 1 })
    );
    assert_eq!(
        uart.read(0x032, 2),
        Access::not_done(
            0,
            Ignored::Unaligned {
                offset: 0x32,
                size: 2
            }
        )
    );
    for size in [0, 3, 8, 16] {
        assert_eq!(
            uart.write(DR, size, 0x41),
            Access::not_done(None, Ignored::BadSize { offset: 0, size })
        );
    }
    for register in [Register::Fr, Register::Ris, Register::Mis] {
        assert_eq!(
            uart.write(register.offset(), 4, 0xffff),
            Access::not_done(None, Ignored::ReadOnly(register))
        );
    }
    assert_eq!(
        uart.read(ICR, 4),
        Access::not_done(0, Ignored::WriteOnly(Register::Icr))
    );
    assert_eq!(
        Ignored::UnknownOffset { offset: 0x80 }.to_string(),
        "no register at offset 0x80"
    );
    assert_eq!(
        Ignored::ReadOnly(Register::Fr).to_string(),
        "write to read-only UARTFR"
    );
    assert_eq!(
        Ignored::BadSize { offset: 0, size: 8 }.to_string(),
        "8-byte access at 0x0: not 1, 2 or 4 bytes"
    );
    // None of it changed anything.
    assert_eq!(rd(&mut uart, FR), fr::TXFE | fr::RXFE);
    assert_eq!(rd(&mut uart, CR), CR_ON as u32);
}

#[test]
fn register_offsets_round_trip() {
    for offset in (0..0x1000).step_by(4) {
        if let Some(register) = Register::from_offset(offset) {
            assert_eq!(register.offset(), offset);
        }
    }
    assert_eq!(Register::from_offset(0xfe2), None);
}

#[test]
fn reset_forgets_everything() {
    let mut uart = enabled();
    let _ = uart.receive(b'a');
    wr(&mut uart, ICR, 0x7ff);
    uart.reset();
    assert_eq!(rd(&mut uart, CR), 0x300);
    assert_eq!(rd(&mut uart, FR), fr::TXFE | fr::RXFE);
    assert_eq!(rd(&mut uart, RIS), Interrupts::TX.bits());
    assert_eq!(rd(&mut uart, IMSC), 0);
}

#[test]
fn interrupts_debug_names_the_bits() {
    assert_eq!(std::format!("{:?}", Interrupts::NONE), "Interrupts(NONE)");
    assert_eq!(
        std::format!("{:?}", Interrupts::RX.union(Interrupts::OE)),
        "Interrupts(RX | OE)"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Read(u64, u8),
    Write(u64, u8, u64),
    Receive(u8),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    let offset = prop_oneof![0u64..0x50, 0xfd0u64..0x1010, any::<u64>()];
    let size = prop_oneof![Just(1u8), Just(2), Just(4), any::<u8>()];
    prop_oneof![
        3 => (offset.clone(), size.clone()).prop_map(|(o, s)| Op::Read(o, s)),
        3 => (offset, size, any::<u64>()).prop_map(|(o, s, v)| Op::Write(o, s, v)),
        4 => any::<u8>().prop_map(Op::Receive),
        1 => Just(Op::Reset),
    ]
}

proptest! {
    #[test]
    fn any_sequence_keeps_the_invariants(ops in proptest::collection::vec(op(), 0..200)) {
        let mut uart = Pl011::new();
        for op in ops {
            match op {
                Op::Read(offset, size) => {
                    let access = uart.read(offset, size);
                    if size < 4 {
                        prop_assert!(access.value < 1 << (8 * u32::from(size.min(3))));
                    }
                }
                Op::Write(offset, size, value) => {
                    let access = uart.write(offset, size, value);
                    prop_assert_eq!(
                        access.value.is_some(),
                        offset == 0 && matches!(size, 1 | 2 | 4)
                    );
                }
                Op::Receive(byte) => {
                    let room = uart.rx_room();
                    let received = uart.receive(byte);
                    prop_assert_eq!(received == Received::Queued, room > 0);
                }
                Op::Reset => uart.reset(),
            }
            let flags = uart.read(FR, 4).value;
            prop_assert_eq!(flags & (fr::TXFF | fr::BUSY), 0);
            prop_assert_eq!(flags & fr::TXFE, fr::TXFE);
            prop_assert_eq!(flags & fr::RXFE != 0, uart.fifo.len == 0);
            prop_assert!(uart.fifo.len <= uart.depth());
            prop_assert!(uart.rx_room() + uart.fifo.len <= uart.depth());
            let raw = uart.read(RIS, 4).value;
            let masked = uart.read(MIS, 4).value;
            let mask = uart.read(IMSC, 4).value;
            prop_assert_eq!(masked, raw & mask);
            prop_assert_eq!(uart.interrupt_line(), masked != 0);
            prop_assert!(!(raw & Interrupts::RX.bits() != 0 && raw & Interrupts::RT.bits() != 0));
        }
    }
}
