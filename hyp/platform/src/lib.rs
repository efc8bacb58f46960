//! Placeholder while the crate is written.
#![no_std]
