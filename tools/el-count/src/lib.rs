//! `qemu-el-count`: a QEMU TCG plugin that counts the instructions executed
//! at each exception level, and the changes of level, inside windows that
//! the guest marks, for the world-switch benchmarks (`./run.sh bench`).
//!
//! ```sh
//! qemu-system-aarch64 ... -icount shift=0 \
//!   -plugin target/release/libqemu_el_count.so,out=counts.txt
//! ```
//!
//! The guest brackets what it measures with two marker instructions, NOPs
//! everywhere ([`marker`]); the plugin adds up, per window name, the
//! instructions every CPU of the machine executed at each level between
//! them and every change of level, and at QEMU's exit writes the report
//! ([`counts::Windows::report`]) to `out=` (QEMU's log without it).
//! `verify=on` checks the counting method as it goes (see the plugin
//! module). The counts are exact; with `-icount` they are the same from run
//! to run.
//!
//! The plugin API is version 4, QEMU 9.2 to 10.0. The counting and the
//! report format are plain Rust, tested on any host; the plugin itself is
//! built only for Linux.

#![deny(missing_docs)]

pub mod arch;
pub mod counts;
pub mod marker;
// Not in the unit tests: the plugin API's functions are QEMU's, and a test
// program has no QEMU to find them in.
#[cfg(all(target_os = "linux", not(test)))]
mod plugin;
