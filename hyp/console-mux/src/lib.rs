//! The hypervisor console shared by many VMs: prefixed output lines and an escape key to pick whose input it is.
//!
//! One serial console serves the hypervisor and every VM. Three pieces of
//! pure logic divide it up; the hypervisor supplies the UART and the locks.
//!
//! - [`OutputMux`] interleaves the sources: the hypervisor's own lines pass
//!   as they are, each VM's bytes become lines prefixed `[name] `, printed as
//!   they come (a prompt or an echoed keystroke shows at once) and ended or
//!   resumed cleanly when another source writes in between. Guest bytes are
//!   filtered so that no guest drives the host's terminal beyond its own
//!   line.
//! - [`InputMux`] reads the keyboard: Ctrl-] ([`ESCAPE`]) and a command key
//!   switch the focus or ask for help or statistics; everything else goes to
//!   the focused VM.
//! - [`Targets`] keeps the VMs that take input, in start order, and which
//!   one has the focus as VMs come and go.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod input;
mod output;
mod targets;

pub use input::{InputEvent, InputMux, ESCAPE, HELP};
pub use output::{OutputId, OutputMux, Source, DEFAULT_WIDTH};
pub use targets::Targets;

#[cfg(test)]
mod tests;
