//! The lines the system tests grep for: `PASS <test>: <what>`,
//! `FAIL <test>: <what>` and, at the end, `DONE <mode>: <n> passed, <m> failed`.
//! The counts cover every vCPU.

use crate::exceptions::Fault;
use crate::{firmware, println};
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

/// Prints `PASS <test>: <what>` and counts it.
pub fn pass(test: &str, what: fmt::Arguments<'_>) {
    PASSED.fetch_add(1, Ordering::Relaxed);
    println!("PASS {test}: {what}");
}

/// Prints `FAIL <test>: <what>` and counts it.
pub fn fail(test: &str, what: fmt::Arguments<'_>) {
    FAILED.fetch_add(1, Ordering::Relaxed);
    println!("FAIL {test}: {what}");
}

/// Passes if a call answered `expected`: `PASS <test>: <what> = <value>`,
/// else `FAIL <test>: <what>: got <value or exception>, expected <expected>`.
/// Returns whether it passed.
pub fn expect<T: PartialEq + fmt::Display>(
    test: &str,
    what: fmt::Arguments<'_>,
    got: Result<T, Fault>,
    expected: T,
) -> bool {
    match got {
        Ok(value) if value == expected => {
            pass(test, format_args!("{what} = {value}"));
            true
        }
        Ok(value) => {
            fail(
                test,
                format_args!("{what}: got {value}, expected {expected}"),
            );
            false
        }
        Err(fault) => {
            fail(
                test,
                format_args!("{what}: got {fault}, expected {expected}"),
            );
            false
        }
    }
}

/// Prints `DONE <mode>: <n> passed, <m> failed` and powers the VM off.
pub fn done(mode: &str) -> ! {
    println!(
        "DONE {mode}: {} passed, {} failed",
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    );
    firmware::system_off()
}
