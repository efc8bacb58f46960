//! The guest's PL011 UART (ARM DDI 0183): the [`vpl011`] model behind a
//! lock, wired to the console.
//!
//! What the guest transmits goes to the console as the VM's output
//! (`[name] text` lines, see [`console`]). What the console gives the VM
//! ([`VirtualPl011::receive`]) waits in a backlog behind the receive FIFO,
//! which is refilled from it whenever the guest has read or changed the
//! UART, so that a pasted line longer than the FIFO arrives whole instead of
//! overrunning it. The interrupt line is the model's `UARTINTR` on the SPI
//! QEMU's `virt` board gives its UART.

use crate::console;
use crate::lock::SpinMutex;
use crate::mmio::MmioDevice;
use crate::vm::Vm;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use console_mux::OutputId;
use core::sync::atomic::{AtomicU32, Ordering};
use log::warn;
use spin::Once;
use vpl011::{Access, Ignored, Pl011, Received};

/// Input kept for the guest beyond its FIFO; more is dropped (and counted).
const BACKLOG: usize = 4096;

/// Ignored accesses logged per UART; the rest are only counted.
const MAX_WARNINGS: u32 = 8;

#[derive(Debug)]
struct State {
    uart: Pl011,
    /// Input not yet in the FIFO, oldest first.
    backlog: VecDeque<u8>,
    /// Input dropped because the backlog was full.
    dropped: u64,
}

impl State {
    /// Moves input from the backlog into the FIFO while it has room.
    fn refill(&mut self) {
        while self.uart.rx_room() > 0 {
            let Some(byte) = self.backlog.pop_front() else {
                break;
            };
            if self.uart.receive(byte) != Received::Queued {
                // Cannot happen with room; keep the byte rather than lose it.
                self.backlog.push_front(byte);
                break;
            }
        }
    }
}

/// One VM's PL011.
#[derive(Debug)]
pub struct VirtualPl011 {
    /// The VM's name, for log lines.
    name: String,
    /// The VM's output stream on the console.
    output: OutputId,
    state: SpinMutex<State>,
    /// Ignored accesses so far.
    ignored: AtomicU32,
    /// The VM, whose GIC line this UART drives under `state`'s lock.
    vm: Once<Weak<Vm>>,
}

impl VirtualPl011 {
    /// A UART in its reset state whose output lines are prefixed `[name]`.
    pub fn new(name: &str) -> Self {
        Self {
            name: String::from(name),
            output: console::open_vm_output(name),
            state: SpinMutex::new(State {
                uart: Pl011::new(),
                // Allocated up front: input may arrive where allocating is
                // unwelcome.
                backlog: VecDeque::with_capacity(BACKLOG),
                dropped: 0,
            }),
            ignored: AtomicU32::new(0),
            vm: Once::new(),
        }
    }

    /// Drives the VM's UART interrupt from the model's line. Called with
    /// `state` locked, so levels from console input (on one CPU) and from
    /// the guest's accesses (on another) reach the GIC in order.
    fn drive_line(&self, state: &State) {
        if let Some(vm) = self.vm.get().and_then(Weak::upgrade) {
            vm.set_spi(guest_boot::virt::UART_SPI, state.uart.interrupt_line());
        }
    }

    /// Queues input for the guest: into the receive FIFO as far as it has
    /// room, the rest into the backlog; beyond the backlog's 4 KiB, input is
    /// dropped. The guest's receive interrupt follows.
    pub fn receive(&self, bytes: &[u8]) {
        let mut state = self.state.lock();
        let room = BACKLOG.saturating_sub(state.backlog.len());
        let (kept, dropped) = bytes.split_at(bytes.len().min(room));
        state.backlog.extend(kept.iter().copied());
        state.dropped += dropped.len() as u64;
        state.refill();
        self.drive_line(&state);
    }

    /// Input dropped so far because the guest did not read it.
    pub fn dropped_input(&self) -> u64 {
        self.state.lock().dropped
    }

    /// Logs an ignored access, the first few times.
    fn note(&self, why: Option<Ignored>) {
        let Some(why) = why else {
            return;
        };
        let count = self.ignored.fetch_add(1, Ordering::Relaxed);
        if count < MAX_WARNINGS {
            warn!("vm \"{}\": UART: {why}, ignored", self.name);
        } else if count == MAX_WARNINGS {
            warn!(
                "vm \"{}\": UART: more ignored accesses, not logged",
                self.name
            );
        }
    }
}

impl Drop for VirtualPl011 {
    fn drop(&mut self) {
        console::close_vm_output(self.output);
    }
}

impl MmioDevice for VirtualPl011 {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let Access { value, ignored } = {
            let mut state = self.state.lock();
            let access = state.uart.read(offset, size);
            state.refill();
            self.drive_line(&state);
            access
        };
        self.note(ignored);
        u64::from(value)
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let Access { value, ignored } = {
            let mut state = self.state.lock();
            let access = state.uart.write(offset, size, value);
            // Enabling the receiver or switching FIFO mode makes room.
            state.refill();
            self.drive_line(&state);
            access
        };
        // Printed outside the UART's lock, so a slow console never holds up
        // the VM's other vCPUs here.
        if let Some(byte) = value {
            console::write_vm(self.output, &[byte]);
        }
        self.note(ignored);
    }

    fn flush(&self) {
        console::end_vm_line(self.output);
    }

    fn attach_vm(&self, vm: &Weak<Vm>) {
        self.vm.call_once(|| vm.clone());
    }
}

/// The same UART shared with whoever gives it input: the VM keeps an
/// `Arc<VirtualPl011>` for [`VirtualPl011::receive`] and registers a clone
/// as the MMIO device.
impl MmioDevice for Arc<VirtualPl011> {
    fn read(&self, offset: u64, size: u8) -> u64 {
        VirtualPl011::read(self, offset, size)
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        VirtualPl011::write(self, offset, size, value);
    }

    fn flush(&self) {
        VirtualPl011::flush(self);
    }

    fn attach_vm(&self, vm: &Weak<Vm>) {
        VirtualPl011::attach_vm(self, vm);
    }
}
