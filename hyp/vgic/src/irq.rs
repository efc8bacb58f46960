//! The state of one interrupt, as the model keeps it between vCPU runs.

use crate::lr::LrState;

/// How the interrupt's input is sampled (`GICD_ICFGR<n>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// A rising edge (or a write to ISPENDR) latches the pending state; the
    /// guest's acknowledge consumes it.
    Edge,
    /// Pending while the line is high (or while the ISPENDR latch is set).
    Level,
}

/// What `flush` put in a list register for this interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// The vCPU whose list register holds the interrupt.
    pub vcpu: usize,
    /// The state written to the list register.
    pub placed: LrState,
    /// Whether the pending latch was moved into the list register (and
    /// cleared here). If the list register is still pending at `sync`, the
    /// latch comes back; a pending state that came from a level line needs
    /// nothing, the line is still sampled here.
    pub moved_latch: bool,
}

/// One interrupt: an SGI or PPI of one vCPU, or an SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Irq {
    /// Set/clear-enable.
    pub enabled: bool,
    /// `IGROUPR`: Group 1 (the only group delivered).
    pub group1: bool,
    /// `IPRIORITYR`, already masked to the implemented bits.
    pub priority: u8,
    /// `ICFGR`.
    pub trigger: Trigger,
    /// Pending latch: an edge, an ISPENDR write or an injected SGI that no
    /// list register holds yet.
    pub latch: bool,
    /// The input line's level, as the device model last set it.
    pub line: bool,
    /// Active (acknowledged, not yet deactivated).
    pub active: bool,
    /// ICPENDR was written while the pending state sat in a list register:
    /// `sync` must not bring that pending state back.
    pub cancel_pending: bool,
    /// In a list register right now, between `flush` and `sync`.
    pub inflight: Option<InFlight>,
}

impl Irq {
    /// An interrupt at reset: disabled, Group 1 (as a Linux guest sets
    /// everything anyway), priority 0, nothing pending or active.
    pub const fn new(trigger: Trigger) -> Self {
        Self {
            enabled: false,
            group1: true,
            priority: 0,
            trigger,
            latch: false,
            line: false,
            active: false,
            cancel_pending: false,
            inflight: None,
        }
    }

    /// Pending state that no list register holds yet: what `flush` hands out.
    pub fn waiting(&self) -> bool {
        self.latch || (self.trigger == Trigger::Level && self.line)
    }

    /// The pending state the guest's ISPENDR/ICPENDR reads show, counting a
    /// latch that sits in a list register.
    pub fn pending(&self) -> bool {
        self.waiting()
            || self
                .inflight
                .is_some_and(|f| f.moved_latch && !self.cancel_pending)
    }

    /// Whether the interrupt has state that `flush`, `sync` or
    /// `pending_for` must look at: pending state no list register holds
    /// yet, active, or in a list register. One that is none of these is
    /// idle: whatever its enable, group, priority or routing, no list
    /// register needs it and it wakes no vCPU. The model keeps a bitmap of
    /// the live interrupts (see `Vgic::modify`) so that per-run work skips
    /// the idle ones, nearly all of them.
    pub fn live(&self) -> bool {
        self.waiting() || self.active || self.inflight.is_some()
    }

    /// Whether `flush` may hand out a pending state: waiting, enabled,
    /// Group 1, and Group 1 enabled in the distributor.
    pub fn deliverable(&self, group1_enabled: bool) -> bool {
        group1_enabled && self.enabled && self.group1 && self.waiting()
    }

    /// ISPENDR write, injected edge or SGI.
    pub fn set_pending(&mut self) {
        self.latch = true;
    }

    /// ICPENDR write: clears the latch, including one in a list register.
    /// A level line that is still high keeps the interrupt pending.
    pub fn clear_pending(&mut self) {
        self.latch = false;
        if self.inflight.is_some_and(|f| f.moved_latch) {
            self.cancel_pending = true;
        }
    }

    /// The device model drives the line; a rising edge latches an
    /// edge-triggered interrupt.
    pub fn set_line(&mut self, high: bool) {
        if self.trigger == Trigger::Edge && high && !self.line {
            self.latch = true;
        }
        self.line = high;
    }
}
