//! Saved program status (SPSR_EL2 for exceptions taken from AArch64).

use core::fmt;

/// The exception level and stack pointer, or AArch32 mode, that an
/// exception was taken from (`SPSR_EL2.M[4:0]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// EL0, SP_EL0.
    El0t,
    /// EL1 using SP_EL0.
    El1t,
    /// EL1 using SP_EL1.
    El1h,
    /// EL2 using SP_EL0.
    El2t,
    /// EL2 using SP_EL2.
    El2h,
    /// EL3 using SP_EL0.
    El3t,
    /// EL3 using SP_EL3.
    El3h,
    /// An AArch32 mode (`M[4]` = 1); carries `M[4:0]`, e.g. 0x13 for SVC.
    AArch32(u8),
    /// An AArch64 `M[3:0]` value with no mode (e.g. 0b0001); carries `M[4:0]`.
    Reserved(u8),
}

/// Saved PSTATE: the value of SPSR_EL2.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spsr(pub u64);

impl Spsr {
    /// `M[4:0]`: the mode the exception came from.
    pub const fn mode(self) -> Mode {
        let m = (self.0 & 0x1f) as u8;
        match m {
            0b00000 => Mode::El0t,
            0b00100 => Mode::El1t,
            0b00101 => Mode::El1h,
            0b01000 => Mode::El2t,
            0b01001 => Mode::El2h,
            0b01100 => Mode::El3t,
            0b01101 => Mode::El3h,
            0b10000..=0b11111 => Mode::AArch32(m),
            _ => Mode::Reserved(m),
        }
    }

    /// D, A, I, F (bits 9:6) as a 4-bit number, D the most significant;
    /// a set bit means masked.
    pub const fn daif(self) -> u8 {
        ((self.0 >> 6) & 0xf) as u8
    }

    /// N, Z, C, V (bits 31:28) as a 4-bit number, N the most significant.
    pub const fn nzcv(self) -> u8 {
        ((self.0 >> 28) & 0xf) as u8
    }

    /// IL, bit 20: the illegal execution state bit.
    pub const fn illegal_execution(self) -> bool {
        self.0 & (1 << 20) != 0
    }

    /// SS, bit 21: software step.
    pub const fn software_step(self) -> bool {
        self.0 & (1 << 21) != 0
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::El0t => f.write_str("EL0t"),
            Self::El1t => f.write_str("EL1t"),
            Self::El1h => f.write_str("EL1h"),
            Self::El2t => f.write_str("EL2t"),
            Self::El2h => f.write_str("EL2h"),
            Self::El3t => f.write_str("EL3t"),
            Self::El3h => f.write_str("EL3h"),
            Self::AArch32(m) => {
                let name = match m {
                    0x10 => "usr",
                    0x11 => "fiq",
                    0x12 => "irq",
                    0x13 => "svc",
                    0x16 => "mon",
                    0x17 => "abt",
                    0x1a => "hyp",
                    0x1b => "und",
                    0x1f => "sys",
                    _ => "reserved",
                };
                write!(f, "AArch32 {name} ({m:#04x})")
            }
            Self::Reserved(m) => write!(f, "reserved mode ({m:#04x})"),
        }
    }
}

impl fmt::Debug for Spsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Spsr({:#x}: {self})", self.0)
    }
}

/// E.g. `EL2h, DAIF=1111, NZCV=0000`, then `, IL` and `, SS` when set.
impl fmt::Display for Spsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, DAIF={:04b}, NZCV={:04b}",
            self.mode(),
            self.daif(),
            self.nzcv()
        )?;
        if self.illegal_execution() {
            f.write_str(", IL")?;
        }
        if self.software_step() {
            f.write_str(", SS")?;
        }
        Ok(())
    }
}
