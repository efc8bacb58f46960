//! Host tests: one scenario per rule of the algorithm (`scenarios`), and
//! random operation sequences checked against a reference model (`model`).

use std::vec::Vec;

use crate::{Context, IdAllocator, NewIdOrder, Switch, Vmid};

mod model;
mod scenarios;

fn allocator(bits: u32, cpus: usize) -> IdAllocator<Vmid> {
    IdAllocator::new(bits, cpus).expect("valid configuration")
}

fn allocator_with_order(bits: u32, cpus: usize, order: NewIdOrder) -> IdAllocator<Vmid> {
    IdAllocator::with_order(bits, cpus, order).expect("valid configuration")
}

fn contexts(n: usize) -> Vec<Context<Vmid>> {
    (0..n).map(|_| Context::new()).collect()
}

fn switch(alloc: &IdAllocator<Vmid>, ctx: &Context<Vmid>, cpu: usize) -> Switch<Vmid> {
    alloc.switch(ctx, cpu).expect("valid CPU")
}

/// The generation number of a context's full ID.
fn generation_of(alloc: &IdAllocator<Vmid>, ctx: &Context<Vmid>) -> u64 {
    ctx.snapshot().id >> alloc.bits()
}
