//! A virtual GICv3 for guests, as pure logic (work in progress).

#![no_std]
#![deny(missing_docs)]
