//! The ABI between the hypervisor and its unprivileged tasks.
//!
//! A task runs at EL0 in the EL2&0 translation regime (VHE with
//! `HCR_EL2.TGE = 1`): its own stage-1 table in TTBR0_EL2, tagged by an
//! ASID. It asks the hypervisor for things with `SVC #0`, the system call
//! number in `x8` and up to six arguments in `x0` to `x5`, as Linux on arm64
//! does; the hypervisor writes the result to `x0` (a [`Status`]).
//!
//! Everything here is pure logic, tested on the host: the numbers and their
//! decoding ([`Syscall::decode`]), where a task's pages are ([`Layout`]), and
//! whether a buffer a task names lies inside its own memory
//! ([`Layout::locate`]). The hypervisor stops a task whose request fails these
//! checks.

#![no_std]
#![deny(missing_docs)]

use core::fmt;

/// Size of a page: the 4 KiB translation granule.
pub const PAGE_SIZE: u64 = 4096;

/// First virtual address of every task: the start of level-0 entry 128 of a
/// 48-bit address space (64 TiB), far above every address the hypervisor's
/// identity map uses (RAM, its image and MMIO all lie below 1 TiB), so a
/// task's own translation subtree never shares a level-0 entry with it.
pub const TASK_BASE: u64 = 0x4000_0000_0000;

/// Bytes of virtual address space a task may use from [`TASK_BASE`]: one
/// level-3 table's reach (2 MiB).
pub const TASK_WINDOW: u64 = 2 << 20;

/// Longest message one `log` call may print.
pub const MAX_LOG_LEN: u64 = 256;

/// Doorbells shared by all tasks: `wait` and `signal` name one by its index.
pub const DOORBELLS: u64 = 16;

/// System call numbers (`x8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Number {
    /// `log(ptr, len)`: print `len` bytes at `ptr` prefixed with the task's name.
    Log = 1,
    /// `exit(code)`: end the task.
    Exit = 2,
    /// `yield()`: give the CPU to whoever waits for it.
    Yield = 3,
    /// `wait(doorbell)`: sleep until the doorbell has been rung, then take one ring.
    Wait = 4,
    /// `signal(doorbell)`: ring the doorbell once, waking one waiter if any.
    Signal = 5,
}

impl Number {
    /// The number for raw value `raw`, if it is one.
    pub const fn from_raw(raw: u64) -> Option<Self> {
        match raw {
            1 => Some(Self::Log),
            2 => Some(Self::Exit),
            3 => Some(Self::Yield),
            4 => Some(Self::Wait),
            5 => Some(Self::Signal),
            _ => None,
        }
    }
}

/// One of the [`DOORBELLS`] doorbells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Doorbell(u8);

impl Doorbell {
    /// Doorbell `index`, if below [`DOORBELLS`].
    pub const fn new(index: u64) -> Option<Self> {
        if index < DOORBELLS {
            Some(Self(index as u8))
        } else {
            None
        }
    }

    /// Its index, below [`DOORBELLS`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A decoded, validated system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// Print `len` bytes from the task's address `ptr`.
    Log {
        /// Task virtual address of the message.
        ptr: u64,
        /// Its length, at most [`MAX_LOG_LEN`].
        len: u64,
    },
    /// End the task with `code`.
    Exit {
        /// The task's exit code (0 for success).
        code: u64,
    },
    /// Give up the CPU.
    Yield,
    /// Wait for a ring of `doorbell`.
    Wait(Doorbell),
    /// Ring `doorbell`.
    Signal(Doorbell),
}

/// Why a system call was refused. A refused call stops the task: a task
/// that breaks the ABI is a broken task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallError {
    /// `x8` is no system call number.
    UnknownNumber(u64),
    /// A `log` longer than [`MAX_LOG_LEN`].
    LogTooLong(u64),
    /// A doorbell index at or above [`DOORBELLS`].
    NoSuchDoorbell(u64),
}

impl fmt::Display for SyscallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownNumber(n) => write!(f, "unknown system call number {n:#x}"),
            Self::LogTooLong(len) => write!(f, "log of {len} bytes (at most {MAX_LOG_LEN})"),
            Self::NoSuchDoorbell(d) => {
                write!(f, "doorbell {d} does not exist (there are {DOORBELLS})")
            }
        }
    }
}

impl Syscall {
    /// Decodes the call in `x8` (`number`) with `x0..x5` (`args`), checking
    /// every argument that can be checked without the task's memory.
    ///
    /// # Errors
    ///
    /// [`SyscallError::UnknownNumber`], [`SyscallError::LogTooLong`],
    /// [`SyscallError::NoSuchDoorbell`].
    pub fn decode(number: u64, args: [u64; 6]) -> Result<Self, SyscallError> {
        let doorbell = |raw: u64| Doorbell::new(raw).ok_or(SyscallError::NoSuchDoorbell(raw));
        match Number::from_raw(number).ok_or(SyscallError::UnknownNumber(number))? {
            Number::Log if args[1] > MAX_LOG_LEN => Err(SyscallError::LogTooLong(args[1])),
            Number::Log => Ok(Self::Log {
                ptr: args[0],
                len: args[1],
            }),
            Number::Exit => Ok(Self::Exit { code: args[0] }),
            Number::Yield => Ok(Self::Yield),
            Number::Wait => doorbell(args[0]).map(Self::Wait),
            Number::Signal => doorbell(args[0]).map(Self::Signal),
        }
    }
}

/// What a system call returns in `x0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    /// Done.
    Ok = 0,
}

/// Which of a task's regions a range lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The code (and constants), mapped read-only and executable.
    Code,
    /// The stack, read-write, never executable.
    Stack,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Code => "code",
            Self::Stack => "stack",
        })
    }
}

/// Where a task's memory is, in its own virtual addresses: code pages from
/// [`TASK_BASE`], then at least one unmapped guard page, then the stack
/// pages ending at the window's top.
///
/// ```text
/// TASK_BASE          code_end        stack_start      TASK_BASE + TASK_WINDOW
/// | code (r-x) ...   | unmapped ...  | stack (rw-) ... |
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    code_pages: u64,
    stack_pages: u64,
}

/// Why a task's layout cannot be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// No code at all.
    NoCode,
    /// No stack page.
    NoStack,
    /// Code, a guard page and the stack do not fit in [`TASK_WINDOW`].
    TooBig {
        /// Pages asked for, guard included.
        pages: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCode => f.write_str("a task needs code"),
            Self::NoStack => f.write_str("a task needs a stack page"),
            Self::TooBig { pages } => write!(
                f,
                "{pages} pages do not fit a task's window of {} pages",
                TASK_WINDOW / PAGE_SIZE
            ),
        }
    }
}

/// Why a buffer a task named is not its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideTask {
    /// The task address.
    pub ptr: u64,
    /// Bytes from there.
    pub len: u64,
}

impl fmt::Display for OutsideTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes at {:#x} are not inside one region the task owns",
            self.len, self.ptr
        )
    }
}

impl Layout {
    /// A layout for `code_bytes` of code and `stack_pages` pages of stack.
    ///
    /// # Errors
    ///
    /// [`LayoutError::NoCode`], [`LayoutError::NoStack`],
    /// [`LayoutError::TooBig`].
    pub fn new(code_bytes: u64, stack_pages: u64) -> Result<Self, LayoutError> {
        if code_bytes == 0 {
            return Err(LayoutError::NoCode);
        }
        if stack_pages == 0 {
            return Err(LayoutError::NoStack);
        }
        let code_pages = code_bytes.div_ceil(PAGE_SIZE);
        let pages = code_pages.saturating_add(1).saturating_add(stack_pages);
        if pages > TASK_WINDOW / PAGE_SIZE {
            return Err(LayoutError::TooBig { pages });
        }
        Ok(Self {
            code_pages,
            stack_pages,
        })
    }

    /// Pages of code.
    pub const fn code_pages(&self) -> u64 {
        self.code_pages
    }

    /// Pages of stack.
    pub const fn stack_pages(&self) -> u64 {
        self.stack_pages
    }

    /// The entry point: the first code byte.
    pub const fn entry(&self) -> u64 {
        TASK_BASE
    }

    /// The initial stack pointer: the window's top (16-byte aligned).
    pub const fn stack_top(&self) -> u64 {
        TASK_BASE + TASK_WINDOW
    }

    /// The first stack address.
    pub const fn stack_start(&self) -> u64 {
        self.stack_top() - self.stack_pages * PAGE_SIZE
    }

    /// The end of the code pages.
    pub const fn code_end(&self) -> u64 {
        TASK_BASE + self.code_pages * PAGE_SIZE
    }

    /// The region of the page at task address `va`, and the page's index in
    /// that region, if it is mapped.
    pub const fn page(&self, va: u64) -> Option<(Region, u64)> {
        if va >= TASK_BASE && va < self.code_end() {
            Some((Region::Code, (va - TASK_BASE) / PAGE_SIZE))
        } else if va >= self.stack_start() && va < self.stack_top() {
            Some((Region::Stack, (va - self.stack_start()) / PAGE_SIZE))
        } else {
            None
        }
    }

    /// Where `len` bytes at task address `ptr` are: their region and the
    /// offset of `ptr` in it. An empty buffer is anywhere in a region.
    ///
    /// # Errors
    ///
    /// [`OutsideTask`] if the bytes are not all inside one region (or the
    /// range wraps around).
    pub fn locate(&self, ptr: u64, len: u64) -> Result<(Region, u64), OutsideTask> {
        let outside = OutsideTask { ptr, len };
        let end = ptr.checked_add(len).ok_or(outside)?;
        let regions = [
            (Region::Code, TASK_BASE, self.code_end()),
            (Region::Stack, self.stack_start(), self.stack_top()),
        ];
        regions
            .into_iter()
            .find(|&(_, start, limit)| ptr >= start && ptr < limit && end <= limit)
            .map(|(region, start, _)| (region, ptr - start))
            .ok_or(outside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_call() {
        let a = |x0, x1| [x0, x1, 0, 0, 0, 0];
        assert_eq!(
            Syscall::decode(1, a(TASK_BASE, 5)),
            Ok(Syscall::Log {
                ptr: TASK_BASE,
                len: 5
            })
        );
        assert_eq!(Syscall::decode(2, a(7, 0)), Ok(Syscall::Exit { code: 7 }));
        assert_eq!(Syscall::decode(3, a(0, 0)), Ok(Syscall::Yield));
        assert_eq!(
            Syscall::decode(4, a(3, 0)),
            Ok(Syscall::Wait(Doorbell::new(3).unwrap()))
        );
        assert_eq!(
            Syscall::decode(5, a(15, 0)),
            Ok(Syscall::Signal(Doorbell::new(15).unwrap()))
        );
    }

    #[test]
    fn refuses_bad_calls() {
        assert_eq!(
            Syscall::decode(0, [0; 6]),
            Err(SyscallError::UnknownNumber(0))
        );
        assert_eq!(
            Syscall::decode(u64::MAX, [0; 6]),
            Err(SyscallError::UnknownNumber(u64::MAX))
        );
        assert_eq!(
            Syscall::decode(1, [TASK_BASE, MAX_LOG_LEN + 1, 0, 0, 0, 0]),
            Err(SyscallError::LogTooLong(MAX_LOG_LEN + 1))
        );
        assert_eq!(
            Syscall::decode(4, [DOORBELLS, 0, 0, 0, 0, 0]),
            Err(SyscallError::NoSuchDoorbell(DOORBELLS))
        );
        assert_eq!(
            Syscall::decode(5, [u64::MAX, 0, 0, 0, 0, 0]),
            Err(SyscallError::NoSuchDoorbell(u64::MAX))
        );
    }

    #[test]
    fn numbers_round_trip() {
        for n in [
            Number::Log,
            Number::Exit,
            Number::Yield,
            Number::Wait,
            Number::Signal,
        ] {
            assert_eq!(Number::from_raw(n as u64), Some(n));
        }
    }

    #[test]
    fn layout_limits() {
        assert_eq!(Layout::new(0, 1), Err(LayoutError::NoCode));
        assert_eq!(Layout::new(1, 0), Err(LayoutError::NoStack));
        let window = TASK_WINDOW / PAGE_SIZE;
        assert!(Layout::new((window - 2) * PAGE_SIZE, 1).is_ok());
        assert_eq!(
            Layout::new((window - 1) * PAGE_SIZE, 1),
            Err(LayoutError::TooBig { pages: window + 1 })
        );
        assert!(Layout::new(1, u64::MAX).is_err());
    }

    #[test]
    fn layout_places_code_guard_and_stack() {
        let layout = Layout::new(PAGE_SIZE + 1, 2).unwrap();
        assert_eq!(layout.code_pages(), 2);
        assert_eq!(layout.entry(), TASK_BASE);
        assert_eq!(layout.code_end(), TASK_BASE + 2 * PAGE_SIZE);
        assert_eq!(layout.stack_top(), TASK_BASE + TASK_WINDOW);
        assert_eq!(layout.stack_start(), layout.stack_top() - 2 * PAGE_SIZE);
        assert_eq!(layout.page(TASK_BASE + PAGE_SIZE), Some((Region::Code, 1)));
        assert_eq!(layout.page(layout.code_end()), None);
        assert_eq!(layout.page(layout.stack_start()), Some((Region::Stack, 0)));
        assert_eq!(layout.page(layout.stack_top()), None);
        assert_eq!(layout.page(0x4008_0000), None);
    }

    #[test]
    fn locate_checks_bounds() {
        let layout = Layout::new(100, 1).unwrap();
        assert_eq!(layout.locate(TASK_BASE + 4, 10), Ok((Region::Code, 4)));
        assert_eq!(
            layout.locate(TASK_BASE, PAGE_SIZE),
            Ok((Region::Code, 0)),
            "the whole code page"
        );
        assert!(layout.locate(TASK_BASE, PAGE_SIZE + 1).is_err());
        assert!(layout.locate(TASK_BASE - 1, 2).is_err());
        assert!(layout.locate(0x4008_0000, 16).is_err(), "hypervisor memory");
        assert!(layout.locate(u64::MAX - 2, 8).is_err(), "wraps around");
        let top = layout.stack_top();
        assert_eq!(
            layout.locate(top - 16, 16),
            Ok((Region::Stack, PAGE_SIZE - 16))
        );
        assert!(layout.locate(top - 16, 17).is_err());
        assert!(layout.locate(top, 0).is_err(), "one past the end");
        assert!(
            layout.locate(layout.code_end() - 1, 2).is_err(),
            "into the guard"
        );
    }

    #[test]
    fn locate_never_accepts_outside_bytes() {
        let layout = Layout::new(3 * PAGE_SIZE, 2).unwrap();
        let probes = [
            0,
            TASK_BASE - PAGE_SIZE,
            TASK_BASE,
            TASK_BASE + 5,
            layout.code_end() - 3,
            layout.code_end(),
            layout.stack_start() - 1,
            layout.stack_start(),
            layout.stack_top() - 1,
            layout.stack_top(),
            u64::MAX,
        ];
        for &ptr in &probes {
            for len in [0, 1, 2, 7, PAGE_SIZE, 3 * PAGE_SIZE, u64::MAX] {
                if layout.locate(ptr, len).is_ok() {
                    for byte in [ptr, ptr + len.saturating_sub(1)] {
                        assert!(layout.page(byte).is_some(), "{ptr:#x}+{len}");
                        assert_eq!(layout.page(byte).unwrap().0, layout.page(ptr).unwrap().0);
                    }
                }
            }
        }
    }
}
