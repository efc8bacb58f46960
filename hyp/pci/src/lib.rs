//! PCI configuration space on a host ECAM bus, as pure logic: enumeration, BAR sizing and assignment from the host bridge's windows.

#![no_std]
#![deny(missing_docs)]
