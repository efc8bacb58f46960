//! The little of Linux and the CPU that counter-check uses: raw system calls
//! (the arm64 Linux ABI: number in x8, arguments in x0..x5, `svc #0`, result
//! or `-errno` in x0) and the generic timer's virtual counter.

use core::arch::asm;

/// arm64 system call numbers (`include/uapi/asm-generic/unistd.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
enum Sysno {
    Write = 64,
    ExitGroup = 94,
    SchedYield = 124,
}

/// `EINTR`: the call was interrupted by a signal before it did anything.
const EINTR: i64 = 4;

/// Standard output's file descriptor.
pub const STDOUT: u32 = 1;

/// Standard error's file descriptor.
pub const STDERR: u32 = 2;

/// One system call with up to three arguments; returns x0.
fn syscall3(nr: Sysno, a0: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: `svc #0` from EL0 enters the kernel, which clobbers nothing
    // but x0 for the calls made here (the arm64 syscall ABI preserves all
    // other registers). The calls this module makes either read memory the
    // caller lends for the call's duration (`write`) or touch no memory.
    unsafe {
        asm!(
            "svc #0",
            in("x8") nr as u64,
            inlateout("x0") a0 => ret,
            in("x1") a1,
            in("x2") a2,
            options(nostack),
        );
    }
    ret
}

/// Writes all of `bytes` to `fd`, retrying after short writes and `EINTR`.
/// Gives up silently on any other error: there is nowhere left to report it.
pub fn write_all(fd: u32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let ret = syscall3(
            Sysno::Write,
            u64::from(fd),
            bytes.as_ptr() as u64,
            bytes.len() as u64,
        );
        match usize::try_from(ret) {
            Ok(0) => return,
            Ok(written) => bytes = bytes.get(written..).unwrap_or_default(),
            Err(_) if ret == -EINTR => {}
            Err(_) => return,
        }
    }
}

/// Gives the CPU to another runnable task, if any. Linux also balances
/// tasks between CPUs at such points, so a task that yields often moves
/// between (virtual) CPUs.
pub fn sched_yield() {
    // It cannot fail (Linux's sched_yield always returns 0).
    let _ = syscall3(Sysno::SchedYield, 0, 0, 0);
}

/// Ends the process (every thread) with `code`.
pub fn exit(code: u8) -> ! {
    loop {
        // exit_group does not return; the loop only satisfies the type.
        let _ = syscall3(Sysno::ExitGroup, u64::from(code), 0, 0);
    }
}

/// CNTVCT_EL0, the virtual count, read after an ISB so the read is not
/// speculated ahead of the previous one (Arm ARM D12.2.2: reads of the
/// counter "can occur speculatively and out of order" otherwise). Linux
/// sets CNTKCTL_EL1.EL0VCTEN so EL0 may read it (its vDSO does).
#[inline(always)]
pub fn virtual_count() -> u64 {
    let count: u64;
    // SAFETY: An ISB and a read of a system register EL0 is allowed to
    // read; no memory is touched.
    unsafe {
        asm!("isb", "mrs {}, cntvct_el0", out(reg) count, options(nomem, nostack));
    }
    count
}

/// CNTFRQ_EL0: the counter's frequency in Hz, as firmware (or the
/// hypervisor) programmed it. Readable at EL0 whenever the counter is.
pub fn counter_frequency() -> u64 {
    let frequency: u64;
    // SAFETY: A read of a system register EL0 is allowed to read; no memory
    // is touched.
    unsafe {
        asm!("mrs {}, cntfrq_el0", out(reg) frequency, options(nomem, nostack));
    }
    frequency
}
