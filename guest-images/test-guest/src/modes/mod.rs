//! The test modes, one module each; the bootargs' `test=` picks one.

pub mod abort;
pub mod canary;
pub mod dma_outside;
pub mod echo;
pub mod fuzz;
pub mod hello;
pub mod isolation;
pub mod psci;
pub mod reset;
