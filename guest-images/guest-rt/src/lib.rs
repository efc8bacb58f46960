//! The start of a bare-metal EL1 guest, shared by the test guest and the bench guest.
#![no_std]
