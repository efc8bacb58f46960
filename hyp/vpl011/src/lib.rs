//! The guest's PL011 UART as pure logic: registers, receive FIFO, interrupt line.
//!
//! [`Pl011`] models the register interface of an Arm PrimeCell UART (PL011),
//! ARM DDI 0183, as far as a guest's driver can observe it through its
//! 4 KiB register frame: the data, status, control and interrupt registers,
//! a receive FIFO with its trigger level, overrun, and the identification
//! registers that Linux's AMBA bus probes. The hypervisor traps each access
//! and calls [`Pl011::read`] or [`Pl011::write`]; bytes from outside come in
//! through [`Pl011::receive`]; [`Pl011::interrupt_line`] is the level of the
//! combined interrupt output `UARTINTR`.
//!
//! # Timing
//!
//! There is no serial line and no baud rate: a byte written to `UARTDR` is
//! transmitted at once (the write returns it), so the transmit FIFO is always
//! empty, `UARTFR.TXFF` and `UARTFR.BUSY` never read as 1, and a driver's
//! "wait until the transmitter is idle" loops end at once. The divisors and
//! line settings are stored and read back but change nothing.
//!
//! # Interrupts
//!
//! The raw status `UARTRIS` combines two kinds of bits:
//!
//! - **Receive (`RXRIS`) and receive timeout (`RTRIS`)** follow the receive
//!   FIFO's fill level: `RXRIS` while it holds at least the trigger level
//!   `UARTIFLS.RXIFLSEL` selects (1 with the FIFO disabled), `RTRIS` while it
//!   holds something but less than that. The real timeout asserts after 32
//!   bit periods without new data; here nothing arrives "while the guest
//!   waits", since input is queued as soon as it exists, so the timeout has
//!   always run out by the time the guest could look, and asserting it at
//!   once means a guest never waits for bytes that sit below the trigger
//!   level (one keystroke never reaches Linux's trigger of 8). As on the real
//!   device, reading the FIFO (down below the trigger level, or empty) is
//!   what clears them; `UARTICR` cannot clear a condition that still holds.
//! - **Transmit (`TXRIS`) and overrun (`OERIS`)** are events, latched until
//!   the guest writes `UARTICR`. The real transmit interrupt asserts when the
//!   transmit FIFO drains through its trigger level; here it drains at once
//!   after every write, so every write sets `TXRIS`, and it is set out of
//!   reset too, when the FIFO is as empty as it can be. A driver that writes
//!   and then unmasks `TXIM` to wait for room (Linux's `pl011_start_tx_pio`
//!   when it sees `TXFF`; `pl011_tx_chars` from the interrupt, which writes
//!   half a FIFO per interrupt and never clears `TXRIS`) is never left
//!   waiting. Unlike a level "transmit FIFO empty" signal, a driver that
//!   acknowledges with `UARTICR.TXIC` and keeps `TXIM` unmasked with nothing
//!   to send is not interrupted forever.
//!
//! Framing, parity and break errors and the modem status lines are never
//! raised: the bytes come from the hypervisor, not from a wire.
//!
//! # Accesses
//!
//! The PL011 decodes `PADDR[11:2]`; this model takes 1-, 2- and 4-byte
//! accesses at a register's offset (Linux uses 16-bit accesses for Arm's
//! PL011, its early console bytes) and ignores anything else, reading zero,
//! with the reason in [`Access::ignored`] so the caller can log it. No
//! access or input panics.

#![no_std]
#![deny(missing_docs)]

use core::fmt;

#[cfg(test)]
mod tests;

/// Depth of the receive FIFO with `UARTLCR_H.FEN` set (PL011 revision r1p5
/// and earlier: 16 entries, which is what Linux derives from the revision in
/// [`ID_BYTES`]).
pub const FIFO_DEPTH: usize = 16;

/// `UARTPeriphID0..3` (part number 0x011, designer 0x41 "ARM", revision 1,
/// configuration 0) and `UARTPCellID0..3` (0xB105_F00D), one byte per word
/// from offset 0xFE0, as QEMU's `virt` PL011 gives them.
pub const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// A register of the PL011's frame (ARM DDI 0183, section 3.2, "Summary of
/// registers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Register {
    /// `UARTDR`, 0x000: read pops the receive FIFO, write transmits.
    Dr,
    /// `UARTRSR`/`UARTECR`, 0x004: receive status; a write clears it.
    RsrEcr,
    /// `UARTFR`, 0x018: flags, read-only.
    Fr,
    /// `UARTILPR`, 0x020: IrDA low-power counter.
    Ilpr,
    /// `UARTIBRD`, 0x024: integer baud rate divisor.
    Ibrd,
    /// `UARTFBRD`, 0x028: fractional baud rate divisor.
    Fbrd,
    /// `UARTLCR_H`, 0x02C: line control.
    LcrH,
    /// `UARTCR`, 0x030: control.
    Cr,
    /// `UARTIFLS`, 0x034: interrupt FIFO level select.
    Ifls,
    /// `UARTIMSC`, 0x038: interrupt mask set/clear.
    Imsc,
    /// `UARTRIS`, 0x03C: raw interrupt status, read-only.
    Ris,
    /// `UARTMIS`, 0x040: masked interrupt status, read-only.
    Mis,
    /// `UARTICR`, 0x044: interrupt clear, write-only.
    Icr,
    /// `UARTDMACR`, 0x048: DMA control.
    Dmacr,
    /// `UARTPeriphID0..3` and `UARTPCellID0..3`, 0xFE0..=0xFFC: the byte at
    /// this index of [`ID_BYTES`], read-only.
    Id(u8),
}

impl Register {
    /// The register at `offset`, which must be a multiple of 4.
    pub const fn from_offset(offset: u64) -> Option<Self> {
        Some(match offset {
            0x000 => Self::Dr,
            0x004 => Self::RsrEcr,
            0x018 => Self::Fr,
            0x020 => Self::Ilpr,
            0x024 => Self::Ibrd,
            0x028 => Self::Fbrd,
            0x02c => Self::LcrH,
            0x030 => Self::Cr,
            0x034 => Self::Ifls,
            0x038 => Self::Imsc,
            0x03c => Self::Ris,
            0x040 => Self::Mis,
            0x044 => Self::Icr,
            0x048 => Self::Dmacr,
            0xfe0..=0xffc if offset.is_multiple_of(4) => Self::Id(((offset - 0xfe0) / 4) as u8),
            _ => return None,
        })
    }

    /// The register's offset in the frame.
    pub const fn offset(self) -> u64 {
        match self {
            Self::Dr => 0x000,
            Self::RsrEcr => 0x004,
            Self::Fr => 0x018,
            Self::Ilpr => 0x020,
            Self::Ibrd => 0x024,
            Self::Fbrd => 0x028,
            Self::LcrH => 0x02c,
            Self::Cr => 0x030,
            Self::Ifls => 0x034,
            Self::Imsc => 0x038,
            Self::Ris => 0x03c,
            Self::Mis => 0x040,
            Self::Icr => 0x044,
            Self::Dmacr => 0x048,
            Self::Id(index) => 0xfe0 + 4 * index as u64,
        }
    }

    /// The TRM's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dr => "UARTDR",
            Self::RsrEcr => "UARTRSR/ECR",
            Self::Fr => "UARTFR",
            Self::Ilpr => "UARTILPR",
            Self::Ibrd => "UARTIBRD",
            Self::Fbrd => "UARTFBRD",
            Self::LcrH => "UARTLCR_H",
            Self::Cr => "UARTCR",
            Self::Ifls => "UARTIFLS",
            Self::Imsc => "UARTIMSC",
            Self::Ris => "UARTRIS",
            Self::Mis => "UARTMIS",
            Self::Icr => "UARTICR",
            Self::Dmacr => "UARTDMACR",
            Self::Id(0..=3) => "UARTPeriphID",
            Self::Id(_) => "UARTPCellID",
        }
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Id(index) => write!(f, "{}{}", self.name(), index % 4),
            _ => f.write_str(self.name()),
        }
    }
}

/// Why an access did nothing: the guest's mistake, worth a (rate-limited)
/// log line, never an error of the hypervisor's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// No register at this offset (reserved, the test registers, or past the
    /// frame).
    UnknownOffset {
        /// Offset accessed.
        offset: u64,
    },
    /// Not a 1-, 2- or 4-byte access.
    BadSize {
        /// Offset accessed.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// Not at a register's offset (inside a register's word, not at its
    /// start).
    Unaligned {
        /// Offset accessed.
        offset: u64,
        /// Bytes accessed.
        size: u8,
    },
    /// A write to a read-only register.
    ReadOnly(Register),
    /// A read of the write-only `UARTICR`.
    WriteOnly(Register),
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::UnknownOffset { offset } => write!(f, "no register at offset {offset:#x}"),
            Self::BadSize { offset, size } => {
                write!(f, "{size}-byte access at {offset:#x}: not 1, 2 or 4 bytes")
            }
            Self::Unaligned { offset, size } => {
                write!(
                    f,
                    "{size}-byte access at {offset:#x}: not at a register's offset"
                )
            }
            Self::ReadOnly(register) => write!(f, "write to read-only {register}"),
            Self::WriteOnly(register) => write!(f, "read of write-only {register}"),
        }
    }
}

/// The outcome of a guest's access: for a read, the value (in the low
/// `size` bytes); for a write, the byte transmitted, if the write was to
/// `UARTDR`; and why the access did nothing, if it did nothing.
pub type Access<T> = guest_access::Access<T, Ignored>;

/// What became of a byte offered to [`Pl011::receive`].
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// It is in the receive FIFO.
    Queued,
    /// The FIFO was full: the byte is lost, and the guest sees an overrun
    /// (`UARTRSR.OE`, `OERIS`, and `OE` on the newest byte in the FIFO).
    /// [`Pl011::rx_room`] tells beforehand.
    Overrun,
    /// The receiver is off (`UARTCR.UARTEN` or `UARTCR.RXE` clear): nothing
    /// was received, nothing recorded.
    ReceiverOff,
}

/// A set of interrupt bits, the layout of `UARTIMSC`, `UARTRIS`, `UARTMIS`
/// and `UARTICR` (ARM DDI 0183, 3.3.12 to 3.3.15).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interrupts(u32);

impl Interrupts {
    /// No interrupt.
    pub const NONE: Self = Self(0);
    /// `RIMIS`, bit 0: nUARTRI modem status (never raised here).
    pub const RI: Self = Self(1 << 0);
    /// `CTSMIS`, bit 1: nUARTCTS modem status (never raised here).
    pub const CTS: Self = Self(1 << 1);
    /// `DCDMIS`, bit 2: nUARTDCD modem status (never raised here).
    pub const DCD: Self = Self(1 << 2);
    /// `DSRMIS`, bit 3: nUARTDSR modem status (never raised here).
    pub const DSR: Self = Self(1 << 3);
    /// `RXIS`, bit 4: the receive FIFO is at or above its trigger level.
    pub const RX: Self = Self(1 << 4);
    /// `TXIS`, bit 5: the transmit FIFO drained through its trigger level.
    pub const TX: Self = Self(1 << 5);
    /// `RTIS`, bit 6: receive timeout, data below the trigger level.
    pub const RT: Self = Self(1 << 6);
    /// `FEIS`, bit 7: framing error (never raised here).
    pub const FE: Self = Self(1 << 7);
    /// `PEIS`, bit 8: parity error (never raised here).
    pub const PE: Self = Self(1 << 8);
    /// `BEIS`, bit 9: break error (never raised here).
    pub const BE: Self = Self(1 << 9);
    /// `OEIS`, bit 10: overrun error.
    pub const OE: Self = Self(1 << 10);
    /// Every defined bit; bits 31:11 are reserved.
    pub const ALL: Self = Self(0x7ff);

    /// The defined bits of a register value.
    pub const fn from_bits_truncate(bits: u32) -> Self {
        Self(bits & Self::ALL.0)
    }

    /// The register value.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether any bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in either.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The bits set in both.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The bits set here but not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }
}

impl fmt::Debug for Interrupts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 11] = [
            "RI", "CTS", "DCD", "DSR", "RX", "TX", "RT", "FE", "PE", "BE", "OE",
        ];
        if self.is_empty() {
            return f.write_str("Interrupts(NONE)");
        }
        f.write_str("Interrupts(")?;
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

/// `UARTDR` (3.3.1): bits 7:0 data; on reads, the error flags FE, PE, BE
/// and OE in bits 11:8, of which only OE is ever raised here.
mod dr {
    /// Overrun: data was lost after this byte.
    pub const OE: u16 = 1 << 11;
}

/// `UARTRSR` (3.3.2): the error flags of `UARTDR` four bits lower.
mod rsr {
    /// Overrun error.
    pub const OE: u8 = 1 << 3;
    /// Every defined bit.
    pub const ALL: u8 = 0xf;
}

/// `UARTFR` (3.3.3).
mod fr {
    /// Busy transmitting: never set, transmission is instant.
    #[cfg(test)]
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO (or holding register) empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO (or holding register) full: never set.
    #[cfg(test)]
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO (or holding register) full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO (or holding register) empty.
    pub const TXFE: u32 = 1 << 7;
}

/// `UARTLCR_H` (3.3.7).
mod lcr_h {
    /// FIFOs enabled.
    pub const FEN: u32 = 1 << 4;
    /// Every defined bit.
    pub const ALL: u32 = 0xff;
}

/// `UARTCR` (3.3.8).
mod cr {
    /// UART enable.
    pub const UARTEN: u32 = 1 << 0;
    /// Transmit enable.
    pub const TXE: u32 = 1 << 8;
    /// Receive enable.
    pub const RXE: u32 = 1 << 9;
    /// Reset value: TXE and RXE set, the UART disabled.
    pub const RESET: u32 = TXE | RXE;
    /// Every bit this model keeps (bits 15:0; the TRM defines 0-2 and 7-15,
    /// later revisions use 3-6, all read back).
    pub const ALL: u32 = 0xffff;
}

/// `UARTIFLS` (3.3.9).
mod ifls {
    /// Reset value: both trigger levels at half full.
    pub const RESET: u32 = 0x12;
    /// Every defined bit: TXIFLSEL 2:0, RXIFLSEL 5:3.
    pub const ALL: u32 = 0x3f;
    /// RXIFLSEL's position.
    pub const RX_SHIFT: u32 = 3;
}

/// Widths of the other registers that read back (3.3.4 to 3.3.6, 3.3.16).
mod width {
    /// `UARTILPR`: 8 bits.
    pub const ILPR: u32 = 0xff;
    /// `UARTIBRD`: 16 bits.
    pub const IBRD: u32 = 0xffff;
    /// `UARTFBRD`: 6 bits.
    pub const FBRD: u32 = 0x3f;
    /// `UARTDMACR`: RXDMAE, TXDMAE, DMAONERR.
    pub const DMACR: u32 = 0x7;
}

/// The receive FIFO: bytes with their `UARTDR` error flags.
#[derive(Clone, Debug)]
struct Fifo {
    entries: [u16; FIFO_DEPTH],
    /// Index of the oldest entry.
    head: usize,
    len: usize,
}

impl Fifo {
    const EMPTY: Self = Self {
        entries: [0; FIFO_DEPTH],
        head: 0,
        len: 0,
    };

    fn push(&mut self, entry: u16) {
        if self.len < FIFO_DEPTH {
            self.entries[(self.head + self.len) % FIFO_DEPTH] = entry;
            self.len += 1;
        }
    }

    fn pop(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let entry = self.entries[self.head];
        self.head = (self.head + 1) % FIFO_DEPTH;
        self.len -= 1;
        Some(entry)
    }

    /// The newest entry.
    fn newest_mut(&mut self) -> Option<&mut u16> {
        let index = (self.head + self.len.checked_sub(1)?) % FIFO_DEPTH;
        self.entries.get_mut(index)
    }
}

/// One PL011's state.
#[derive(Clone, Debug)]
pub struct Pl011 {
    fifo: Fifo,
    /// `UARTRSR`'s four error bits.
    rsr: u8,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: Interrupts,
    /// The event interrupts (TX, OE) raised and not yet cleared; the FIFO
    /// level ones (RX, RT) are worked out from the FIFO when asked.
    latched: Interrupts,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A PL011 in its reset state (ARM DDI 0183, 3.2): `UARTCR` = 0x300
    /// (transmitter and receiver enabled, the UART itself not),
    /// `UARTIFLS` = 0x12, everything else 0, the FIFOs disabled and empty,
    /// `TXRIS` set (see the crate documentation).
    pub const fn new() -> Self {
        Self {
            fifo: Fifo::EMPTY,
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: cr::RESET,
            ifls: ifls::RESET,
            imsc: Interrupts::NONE,
            latched: Interrupts::TX,
            dmacr: 0,
        }
    }

    /// Back to the reset state, as [`Pl011::new`]; received bytes are lost.
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// A guest's read of `size` bytes at `offset`.
    pub fn read(&mut self, offset: u64, size: u8) -> Access<u32> {
        let register = match Self::decode(offset, size) {
            Ok(register) => register,
            Err(why) => return Access::not_done(0, why),
        };
        let value = match register {
            Register::Dr => self.read_dr(),
            Register::RsrEcr => u32::from(self.rsr),
            Register::Fr => self.flags(),
            Register::Ilpr => self.ilpr,
            Register::Ibrd => self.ibrd,
            Register::Fbrd => self.fbrd,
            Register::LcrH => self.lcr_h,
            Register::Cr => self.cr,
            Register::Ifls => self.ifls,
            Register::Imsc => self.imsc.bits(),
            Register::Ris => self.raw_interrupts().bits(),
            Register::Mis => self.masked_interrupts().bits(),
            Register::Icr => return Access::not_done(0, Ignored::WriteOnly(register)),
            Register::Dmacr => self.dmacr,
            Register::Id(index) => ID_BYTES
                .get(usize::from(index))
                .map_or(0, |&byte| u32::from(byte)),
        };
        Access::done(truncate(value, size))
    }

    /// A guest's write of `size` bytes at `offset`; `value` holds only those
    /// bytes (anything above is ignored). Returns the byte transmitted, for a
    /// write to `UARTDR`.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Access<Option<u8>> {
        let register = match Self::decode(offset, size) {
            Ok(register) => register,
            Err(why) => return Access::not_done(None, why),
        };
        let value = truncate(value as u32, size);
        match register {
            Register::Dr => {
                // Transmitted at once whether or not UARTEN and TXE are set,
                // as QEMU does: a guest that never enables the UART (the
                // test guest, firmware relying on an earlier stage) still
                // gets its output out.
                self.latched = self.latched.union(Interrupts::TX);
                return Access::done(Some(value as u8));
            }
            Register::RsrEcr => self.rsr = 0,
            Register::Ilpr => self.ilpr = value & width::ILPR,
            Register::Ibrd => self.ibrd = value & width::IBRD,
            Register::Fbrd => self.fbrd = value & width::FBRD,
            Register::LcrH => {
                let value = value & lcr_h::ALL;
                // Switching between FIFO and character mode starts with
                // empty FIFOs (QEMU does the same); what a real PL011 keeps
                // is unspecified.
                if (self.lcr_h ^ value) & lcr_h::FEN != 0 {
                    self.fifo = Fifo::EMPTY;
                }
                self.lcr_h = value;
            }
            Register::Cr => self.cr = value & cr::ALL,
            Register::Ifls => self.ifls = value & ifls::ALL,
            Register::Imsc => self.imsc = Interrupts::from_bits_truncate(value),
            Register::Icr => {
                self.latched = self
                    .latched
                    .difference(Interrupts::from_bits_truncate(value));
            }
            Register::Dmacr => self.dmacr = value & width::DMACR,
            Register::Fr | Register::Ris | Register::Mis | Register::Id(_) => {
                return Access::not_done(None, Ignored::ReadOnly(register));
            }
        }
        Access::done(None)
    }

    /// A byte arriving on the receive line.
    pub fn receive(&mut self, byte: u8) -> Received {
        if !self.receiver_on() {
            return Received::ReceiverOff;
        }
        if self.fifo.len >= self.depth() {
            // The FIFO keeps its contents; the byte in the shift register is
            // lost (3.3.2).
            self.rsr |= rsr::OE;
            self.latched = self.latched.union(Interrupts::OE);
            if let Some(newest) = self.fifo.newest_mut() {
                *newest |= dr::OE;
            }
            return Received::Overrun;
        }
        self.fifo.push(u16::from(byte));
        Received::Queued
    }

    /// How many bytes [`Pl011::receive`] would queue now: 0 while the
    /// receiver is off.
    pub fn rx_room(&self) -> usize {
        if self.receiver_on() {
            self.depth().saturating_sub(self.fifo.len)
        } else {
            0
        }
    }

    /// Whether the combined interrupt output `UARTINTR` is high: some raw
    /// interrupt is set and unmasked.
    pub fn interrupt_line(&self) -> bool {
        !self.masked_interrupts().is_empty()
    }

    /// `UARTRIS`: the raw interrupt status.
    pub fn raw_interrupts(&self) -> Interrupts {
        let len = self.fifo.len;
        let trigger = self.rx_trigger();
        let mut raw = self.latched;
        if len >= trigger {
            raw = raw.union(Interrupts::RX);
        } else if len > 0 {
            raw = raw.union(Interrupts::RT);
        }
        raw
    }

    /// `UARTMIS`: the raw interrupt status under `UARTIMSC`.
    pub fn masked_interrupts(&self) -> Interrupts {
        self.raw_interrupts().intersection(self.imsc)
    }

    /// Checks the access's size and offset and names the register.
    fn decode(offset: u64, size: u8) -> Result<Register, Ignored> {
        if !matches!(size, 1 | 2 | 4) {
            return Err(Ignored::BadSize { offset, size });
        }
        if !offset.is_multiple_of(4) {
            return Err(Ignored::Unaligned { offset, size });
        }
        Register::from_offset(offset).ok_or(Ignored::UnknownOffset { offset })
    }

    fn read_dr(&mut self) -> u32 {
        // An empty FIFO reads as 0 (the real one gives whatever it held).
        let entry = self.fifo.pop().unwrap_or(0);
        // UARTRSR's break, parity and framing bits describe the byte just
        // read; its overrun bit was set when the overrun happened (3.3.2).
        let errors = ((entry >> 8) as u8) & rsr::ALL;
        self.rsr = (self.rsr & rsr::OE) | (errors & !rsr::OE);
        u32::from(entry)
    }

    fn flags(&self) -> u32 {
        // Transmission is instant: TXFE always, TXFF and BUSY never.
        let mut flags = fr::TXFE;
        if self.fifo.len == 0 {
            flags |= fr::RXFE;
        }
        if self.fifo.len >= self.depth() {
            flags |= fr::RXFF;
        }
        flags
    }

    fn fifo_enabled(&self) -> bool {
        self.lcr_h & lcr_h::FEN != 0
    }

    /// Receive FIFO depth: 16, or 1 (the holding register) with the FIFOs
    /// disabled.
    fn depth(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_DEPTH
        } else {
            1
        }
    }

    /// Bytes in the receive FIFO at which `RXRIS` asserts (3.3.9,
    /// RXIFLSEL: 1/8, 1/4, 1/2, 3/4 or 7/8 full; reserved values are taken
    /// as 7/8). With the FIFOs disabled, the one byte of the holding
    /// register.
    fn rx_trigger(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        let eighths = match (self.ifls >> ifls::RX_SHIFT) & 0x7 {
            0 => 1,
            1 => 2,
            2 => 4,
            3 => 6,
            _ => 7,
        };
        FIFO_DEPTH * eighths / 8
    }

    fn receiver_on(&self) -> bool {
        self.cr & (cr::UARTEN | cr::RXE) == cr::UARTEN | cr::RXE
    }
}

/// `value` cut to `size` bytes (1, 2 or 4).
const fn truncate(value: u32, size: u8) -> u32 {
    match size {
        1 => value & 0xff,
        2 => value & 0xffff,
        _ => value,
    }
}
