//! A virtual PCIe host bridge for one VM.
#![no_std]
