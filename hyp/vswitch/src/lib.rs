//! Networks between VMs, as pure logic.

#![no_std]
#![deny(missing_docs)]
