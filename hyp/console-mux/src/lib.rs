//! The hypervisor console shared by many VMs: prefixed output lines and an escape key to pick whose input it is.

#![no_std]
#![deny(missing_docs)]
