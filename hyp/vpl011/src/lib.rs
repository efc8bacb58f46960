//! The guest's PL011 UART as pure logic: registers, receive FIFO, interrupt line.

#![no_std]
#![deny(missing_docs)]
