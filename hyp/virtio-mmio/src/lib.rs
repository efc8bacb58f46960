//! The virtio-mmio transport (version 2) a guest sees, as pure logic: registers, feature negotiation, status, reset, queue setup.

#![no_std]
#![deny(missing_docs)]
