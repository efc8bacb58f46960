//! The Arm generic timer as a guest sees it, as pure logic: the emulated EL1 physical timer's registers and its interrupt line.

#![no_std]
#![deny(missing_docs)]
