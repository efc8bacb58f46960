//! Work in progress.
#![no_std]
#![no_main]
