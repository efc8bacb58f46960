//! Stacks, each with an unmapped guard page below it, so that an overflow
//! faults (and is reported) instead of silently corrupting what lies below.
//!
//! Every CPU has two: its normal stack, and a small exception stack that the
//! vectors switch to for exceptions taken from EL2 itself, so that even the
//! report of an overflow of the normal stack has a stack to run on.

use addr::{PhysAddr, PhysRange};
use alloc::alloc::{alloc_zeroed, Layout};
use platform::MAX_CPUS;

/// Size of a guard page.
pub const GUARD_SIZE: usize = 4096;
/// Size of the primary CPU's boot stack, which it keeps.
pub const BOOT_STACK_SIZE: usize = 64 * 1024;
/// Size of each secondary CPU's stack.
pub const SECONDARY_STACK_SIZE: usize = 64 * 1024;
/// Size of each CPU's exception stack: enough for a report.
pub const EXCEPTION_STACK_SIZE: usize = 16 * 1024;

/// A guard page followed by a stack of `N` bytes (stacks grow down).
#[repr(C, align(4096))]
pub struct GuardedStack<const N: usize> {
    guard: [u8; GUARD_SIZE],
    stack: [u8; N],
}

impl<const N: usize> GuardedStack<N> {
    const ZEROED: Self = Self {
        guard: [0; GUARD_SIZE],
        stack: [0; N],
    };

    /// Where the stack at `this` has its guard page and its top.
    fn bounds(this: *const Self) -> StackBounds {
        let base = this as u64;
        StackBounds {
            guard: PhysRange::new(PhysAddr(base), GUARD_SIZE as u64)
                .expect("a static or heap object does not wrap"),
            top: base + core::mem::size_of::<Self>() as u64,
        }
    }
}

/// Where a stack is.
#[derive(Clone, Copy, Debug)]
pub struct StackBounds {
    /// The unmapped page just below the stack.
    pub guard: PhysRange,
    /// The initial stack pointer (16-byte aligned).
    pub top: u64,
}

/// The primary CPU's stack; the entry code points SP at its top.
#[unsafe(no_mangle)]
static mut BOOT_STACK: GuardedStack<BOOT_STACK_SIZE> = GuardedStack::ZEROED;

/// Size of [`BOOT_STACK`] in all, for the entry code.
pub const BOOT_STACK_TOTAL: usize = core::mem::size_of::<GuardedStack<BOOT_STACK_SIZE>>();

static mut EXCEPTION_STACKS: [GuardedStack<EXCEPTION_STACK_SIZE>; MAX_CPUS] =
    [const { GuardedStack::ZEROED }; MAX_CPUS];

/// The primary CPU's boot stack.
pub fn boot_stack() -> StackBounds {
    GuardedStack::bounds(&raw const BOOT_STACK)
}

/// CPU `cpu`'s exception stack, or `None` beyond [`MAX_CPUS`].
pub fn exception_stack(cpu: usize) -> Option<StackBounds> {
    if cpu >= MAX_CPUS {
        return None;
    }
    // SAFETY: In bounds; only the address is taken, the stack is never
    // accessed through a Rust reference.
    let stack = unsafe {
        (&raw const EXCEPTION_STACKS)
            .cast::<GuardedStack<EXCEPTION_STACK_SIZE>>()
            .add(cpu)
    };
    Some(GuardedStack::bounds(stack))
}

/// Every exception stack, for the page tables to leave their guards unmapped.
pub fn exception_stacks() -> impl Iterator<Item = StackBounds> {
    (0..MAX_CPUS).filter_map(exception_stack)
}

/// A new stack for a secondary CPU, from the heap, owned forever; `None` if
/// the heap is exhausted.
pub fn allocate_secondary() -> Option<StackBounds> {
    let layout = Layout::new::<GuardedStack<SECONDARY_STACK_SIZE>>();
    // SAFETY: The layout has a non-zero size.
    let stack = unsafe { alloc_zeroed(layout) }.cast::<GuardedStack<SECONDARY_STACK_SIZE>>();
    (!stack.is_null()).then(|| GuardedStack::bounds(stack))
}
