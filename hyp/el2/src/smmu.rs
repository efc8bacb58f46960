//! The SMMUv3 in front of the host's PCIe bus: what lets a device's DMA
//! reach memory, and through which translation.
//!
//! The formats and rules (stream table entries and their update order,
//! commands, event records, queue indexes) are the host-tested `smmuv3`
//! crate; this module owns the hardware and the memory the SMMU reads:
//!
//! - a linear stream table (spec 3.3.1) covering bus 0 of the host bridge
//!   (256 StreamIDs; on QEMU `virt` a PCI function's StreamID is its
//!   routing ID), more if the host disk sits higher;
//! - a command queue and an event queue, polled: no interrupts, no MSIs;
//!   CMD_SYNC completes when SMMU_CMDQ_CONS moves past it.
//!
//! Every StreamID starts **aborted**, except the hypervisor's own host
//! disk, which is let through untranslated (bypass). An unassigned device
//! must not DMA anywhere: the hypervisor's memory and every VM's are all
//! one physical address space to a bus master, so anything but abort would
//! let it read or overwrite them. The disk is the hypervisor's own device,
//! and `virtio-drivers` hands it physical addresses of the identity-mapped
//! heap, hence bypass. Outside the stream table (StreamIDs beyond it),
//! transactions are terminated too (C_BAD_STREAMID, recorded), and while
//! the SMMU is off SMMU_GBPA aborts everything.
//!
//! A VM's passthrough device gets a stage-2-only entry with the VM's VMID
//! and its stage-2 tables, from the same VTCR_EL2 value the CPU uses
//! ([`Smmu::attach_stage2`]): the device sees exactly the guest's IPA
//! space. VMIDs written here must be pinned in the allocator for as long
//! as the entry lives, so that a rollover never hands them to another VM
//! ([`Smmu::change_vmid`] exists for the day one is not).
//!
//! A stream can instead share a task's address space (shared virtual
//! addressing, [`Smmu::bind_stage1`]): a stage-1 entry pointing at a
//! one-entry CD table whose descriptor holds the task's translation table,
//! TCR-derived parameters, MAIR and ASID, so that the device's DMA
//! addresses are the task's virtual addresses. The ASID must stay pinned
//! in the ASID allocator from before the bind until after
//! [`Smmu::unbind_stage1`] returns: the SMMU's TLB entries carry it, and a
//! rollover must never hand it to another task while the device may use
//! it. Which regime the stream's translations belong to depends on the
//! SMMU:
//!
//! - with SMMU_IDR0.HYP, the EL2 StreamWorld with SMMU_CR2.E2H = 1
//!   (STE.STRW = EL2): the EL2&0 regime of this VHE hypervisor, whose TLB
//!   entries carry ASIDs exactly as the CPU's do; invalidated with
//!   CMD_TLBI_EL2_ASID;
//! - without it, the Non-secure EL1&0 world (STE.STRW = NS-EL1) with the
//!   entry's S2VMID 0 (a VMID the allocator never hands out): the same
//!   walk of the same tables, ASID-tagged TLB entries too, invalidated with
//!   CMD_TLBI_NH_ASID (VMID 0). Only the tag's regime differs, which
//!   matters to nothing but broadcast TLB maintenance, not used here
//!   (SMMU_CR2.PTM = 1).
//!
//! **QEMU 10's SMMUv3 has no EL2 StreamWorld**: SMMU_IDR0.HYP = 0, STE.STRW
//! is never read, and the CMD_TLBI_EL2_* commands are accepted and ignored.
//! On QEMU the driver therefore binds in NS-EL1, the design above.
//!
//! Debug builds check stage 1 at boot: an unused stream (the table's last)
//! is bound to a small task-like address space, its STE and CD are read
//! back against the encodings, binding twice and unbinding twice are
//! refused, and the unbind leaves abort and an invalid CD. With
//! `hyp.smmu-s1-dma` (debug builds, QEMU's `edu` at 00:08.0, no host disk)
//! the device then does DMA through such a context end to end
//! ([`stage1_dma_check`]; system test `passthrough_sva_stage1_dma`).
//! Callers pin the task's ASID before [`Smmu::bind_stage1`] (and do not
//! bind if the pin fails: that is how pin exhaustion fails a bind
//! cleanly); [`Smmu::check_stage1`] refuses a context the SMMU cannot take
//! before anything is pinned.
//!
//! Every poll (CR0ACK, GBPA, command completion) gives up after
//! [`POLL_TIMEOUT_MS`] with [`SmmuError::Timeout`]. If initialisation fails
//! half-way, the SMMU is left off with SMMU_GBPA aborting: DMA through it
//! fails closed.
//!
//! QEMU notes: QEMU 10's `virt` SMMU implements both stages whatever
//! `-global arm-smmuv3.stage=` says (the board sets it to `nested`), so
//! stage 2 needs no option. A virtio PCI device without
//! `iommu_platform=on` does its DMA around the SMMU (QEMU gives it the
//! plain memory address space), so on QEMU the host disk (virtio-blk-pci,
//! whose driver cannot negotiate VIRTIO_F_ACCESS_PLATFORM) works whatever
//! its entry says; a virtio device passed through to a VM needs
//! `iommu_platform=on` to be translated. Other PCI devices (e1000e, edu,
//! ...) always go through it.

use crate::timer;
use addr::{IntermediatePhysAddr, PhysAddr, PhysRange};
use alloc::alloc::{alloc_zeroed, Layout};
use alloc::vec::Vec;
use core::arch::asm;
use core::fmt;
use core::ptr::NonNull;
use id_alloc::{Asid, Vmid};
use log::{info, warn};
use platform::Platform;
use smmuv3::regs::{
    SmmuRegisters, CMDQ_CONS, CMDQ_PROD, CR0, CR1, CR2, EVENTQ_CONS, EVENTQ_PROD, GBPA, GERROR,
    QUEUE_BASE, SMMU_REGISTERS_SIZE, STRTAB_BASE, STRTAB_BASE_CFG,
};
use smmuv3::{
    cd_update_sequence, ste_update_sequence, Cd, CdError, CdStep, Command, CommandError, Event,
    Features, FeaturesError, QueueError, Ring, Stage1Context, Stage1Entry, Stage2Entry, Ste,
    SteError, SteKind, StepWrite, StreamId, StreamWorld, CD_BYTES, CD_WORDS, STE_WORDS,
};
use spin::{Mutex, Once};
use tock_registers::interfaces::{Readable, Writeable};

/// How long any poll of the SMMU may take. QEMU answers at once; hardware
/// in microseconds.
pub const POLL_TIMEOUT_MS: u64 = 100;

/// StreamIDs the stream table covers at least: bus 0 (256 functions).
const MIN_STREAM_TABLE_LOG2: u8 = 8;
/// The largest stream table made: 65536 entries, 4 MiB.
const MAX_STREAM_TABLE_LOG2: u8 = 16;
/// Command queue: 256 entries of 16 bytes, 4 KiB.
const CMDQ_LOG2: u8 = 8;
/// Event queue: 1024 entries of 32 bytes, 32 KiB. A device's aborted
/// write raises an event per beat (QEMU: every 4 bytes), so a stray
/// page-sized DMA alone is 1024 of them.
const EVENTQ_LOG2: u8 = 10;

/// Bytes in a stream table entry, a command and an event record.
const STE_BYTES: usize = 64;
const COMMAND_BYTES: usize = 16;
const EVENT_BYTES: usize = 32;

/// SMMU_GERROR.SFM_ERR: the SMMU entered service failure mode and stopped
/// (spec 12.3); nothing it is asked will complete. The other global errors
/// are handled where they arise: CMDQ_ERR by [`Smmu::poll_commands`],
/// EVENTQ_ABT_ERR by [`Smmu::drain_events`]; the MSI ones cannot happen,
/// no MSI being configured.
const SERVICE_FAILURE: u32 = 1 << 8;

/// The S2VMID of stage-1-only NS-EL1 entries, hence the VMID their TLB
/// entries are tagged with: 0, which the VMID allocator never hands out,
/// so no VM's invalidation touches them.
const STAGE1_VMID: Vmid = Vmid::new(0);

/// Why the SMMU could not be set up or could not do what was asked.
#[derive(Debug)]
pub enum SmmuError {
    /// [`init`] ran before.
    AlreadyInitialised,
    /// The device tree's register window is smaller than pages 0 and 1.
    RegistersTooSmall(PhysRange),
    /// The ID registers are unusable.
    Features(FeaturesError),
    /// The SMMU's table and queue accesses do not snoop the CPUs' caches
    /// (SMMU_IDR0.COHACC = 0); this driver does no cache maintenance.
    NotCoherent,
    /// The stream table or queue bases are fixed by the hardware
    /// (SMMU_IDR1.TABLES_PRESET or QUEUES_PRESET).
    Preset,
    /// The SMMU's queues are smaller than this driver's.
    QueueTooSmall {
        /// Which queue.
        queue: &'static str,
        /// log2 of the largest it takes.
        max_log2: u8,
    },
    /// The host disk's StreamID is beyond what the SMMU or this driver's
    /// stream table handles.
    HostDiskStreamTooLarge(StreamId),
    /// No memory for the stream table or a queue.
    OutOfMemory,
    /// A poll gave up.
    Timeout(&'static str),
    /// The SMMU reported a queue index that cannot be.
    Queue(QueueError),
    /// The SMMU refused a command.
    Command {
        /// The command, if it is one this driver issues.
        command: Option<Command>,
        /// Its opcode.
        opcode: u8,
        /// Why.
        error: CommandError,
    },
    /// The SMMU stopped: service failure mode (the SMMU_GERROR bits).
    GlobalError(u32),
    /// The StreamID is beyond the stream table.
    StreamOutOfRange(StreamId),
    /// The StreamID is the host disk's, which stays in bypass.
    HostDiskStream(StreamId),
    /// The stream is already attached to a VM.
    AlreadyAttached {
        /// The stream.
        stream: StreamId,
        /// The VMID its entry holds.
        vmid: Vmid,
    },
    /// The stream is not attached to a VM.
    NotAttached(StreamId),
    /// The stream's entry is neither abort nor stage 2 (not written by this
    /// driver).
    UnexpectedEntry(StreamId, SteKind),
    /// The stage-2 configuration does not fit the SMMU.
    Ste(SteError),
    /// The stage-1 context does not fit the SMMU.
    Cd(CdError),
    /// The stream is already bound to a task's address space.
    AlreadyBound {
        /// The stream.
        stream: StreamId,
        /// The ASID its descriptor holds.
        asid: Asid,
    },
    /// The stream is not bound to a task's address space by this driver.
    NotBound(StreamId),
}

impl fmt::Display for SmmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInitialised => write!(f, "smmu: already initialised"),
            Self::RegistersTooSmall(regs) => write!(
                f,
                "smmu: register window {regs} is smaller than {SMMU_REGISTERS_SIZE:#x} bytes"
            ),
            Self::Features(e) => write!(f, "smmu: {e}"),
            Self::NotCoherent => write!(
                f,
                "smmu: not coherent (SMMU_IDR0.COHACC = 0), and this driver does no cache maintenance"
            ),
            Self::Preset => write!(f, "smmu: table or queue bases are preset by the hardware"),
            Self::QueueTooSmall { queue, max_log2 } => {
                write!(f, "smmu: the {queue} queue takes at most 2^{max_log2} entries")
            }
            Self::HostDiskStreamTooLarge(stream) => write!(
                f,
                "smmu: the host disk's StreamID {stream} is beyond the stream table"
            ),
            Self::OutOfMemory => write!(f, "smmu: no memory for the stream table or queues"),
            Self::Timeout(what) => write!(f, "smmu: timed out waiting for {what}"),
            Self::Queue(e) => write!(f, "smmu: {e}"),
            Self::Command {
                command: Some(command),
                error,
                ..
            } => write!(f, "smmu: {command}: {error}"),
            Self::Command {
                command: None,
                opcode,
                error,
            } => write!(f, "smmu: {} ({opcode:#04x}): {error}", Command::name(*opcode)),
            Self::GlobalError(bits) => {
                write!(f, "smmu: service failure mode (SMMU_GERROR bits {bits:#x})")
            }
            Self::StreamOutOfRange(stream) => {
                write!(f, "smmu: StreamID {stream} is beyond the stream table")
            }
            Self::HostDiskStream(stream) => write!(
                f,
                "smmu: StreamID {stream} is the host disk's, which stays in bypass"
            ),
            Self::AlreadyAttached { stream, vmid } => {
                write!(f, "smmu: stream {stream} is already attached to VMID {vmid}")
            }
            Self::NotAttached(stream) => write!(f, "smmu: stream {stream} is not attached"),
            Self::UnexpectedEntry(stream, kind) => {
                write!(f, "smmu: stream {stream} has an unexpected entry ({kind})")
            }
            Self::Ste(e) => write!(f, "smmu: {e}"),
            Self::Cd(e) => write!(f, "smmu: {e}"),
            Self::AlreadyBound { stream, asid } => {
                write!(f, "smmu: stream {stream} is already bound to ASID {asid}")
            }
            Self::NotBound(stream) => write!(f, "smmu: stream {stream} is not bound"),
        }
    }
}

/// What [`Smmu::drain_events`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Records decoded and handed to the callback.
    pub events: u32,
    /// The SMMU dropped records since the last drain: the queue overflowed
    /// (SMMU_EVENTQ_PROD.OVFLG toggled), or a record could not be written
    /// (SMMU_GERROR.EVENTQ_ABT_ERR, which is what QEMU raises for a full
    /// queue).
    pub lost: bool,
}

/// One SMMUv3 and the memory it reads.
pub struct Smmu {
    regs: &'static SmmuRegisters,
    base: PhysAddr,
    features: Features,
    /// The stream table: `1 << table_log2` entries of eight words.
    table: NonNull<[u64; STE_WORDS]>,
    table_log2: u8,
    commands: NonNull<[u64; 2]>,
    command_ring: Ring,
    events: NonNull<[u64; 4]>,
    event_ring: Ring,
    /// The last SMMU_EVENTQ_PROD.OVFLG acknowledged.
    overflow_ack: bool,
    host_disk: Option<StreamId>,
    /// The StreamWorld stage-1 entries use: EL2-E2H if the SMMU has it.
    world: StreamWorld,
    /// Each stream ever bound to a task, with its one-entry CD table
    /// (kept, invalid, after an unbind, for the next bind of the stream).
    cd_tables: Vec<(StreamId, NonNull<[u64; CD_WORDS]>)>,
}

// SAFETY: The table and queues are heap memory owned by this `Smmu` alone
// (and read by the SMMU); the registers are only touched through it. It
// lives in a mutex, so one CPU at a time uses it.
unsafe impl Send for Smmu {}

impl fmt::Debug for Smmu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smmu")
            .field("base", &self.base)
            .field("table_entries", &self.table_entries())
            .field("host_disk", &self.host_disk)
            .finish_non_exhaustive()
    }
}

/// Zeroed heap memory of `bytes` (a power of two), aligned to its size as
/// the stream table, queue bases and CD tables need (spec 6.3.23 to
/// 6.3.25, 5.2 S1ContextPtr). Never freed: the SMMU reads it for the rest
/// of the hypervisor's life.
fn allocate<T>(bytes: usize) -> Result<NonNull<T>, SmmuError> {
    let layout = Layout::from_size_align(bytes, bytes).map_err(|_| SmmuError::OutOfMemory)?;
    // SAFETY: `bytes` is non-zero (every caller asks for at least 64).
    let memory = unsafe { alloc_zeroed(layout) };
    NonNull::new(memory.cast::<T>()).ok_or(SmmuError::OutOfMemory)
}

/// Orders every earlier memory access before every later one, for all
/// observers, the SMMU included.
fn dsb() {
    // SAFETY: A barrier has no memory-safety effects.
    unsafe { asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Bits needed to index `value`.
fn bits_for(value: u32) -> u8 {
    // At most 32: the cast is lossless.
    (u32::BITS - value.leading_zeros()) as u8
}

impl Smmu {
    /// Checks the SMMU at `regs`, takes it over and turns it on: every
    /// stream aborted but `host_disk`'s, in bypass.
    ///
    /// # Safety
    ///
    /// `regs` must be an SMMUv3's register window, mapped as device memory
    /// for the rest of the hypervisor's life and touched by nothing else.
    /// No device may be doing DMA it needs while this runs (every
    /// transaction is aborted meanwhile).
    unsafe fn new(regs: PhysRange, host_disk: Option<StreamId>) -> Result<Smmu, SmmuError> {
        if regs.size() < SMMU_REGISTERS_SIZE {
            return Err(SmmuError::RegistersTooSmall(regs));
        }
        // SAFETY: The caller guarantees the window is this SMMU's registers,
        // mapped and ours; it is at least the size of the block.
        let block: &'static SmmuRegisters = unsafe { &*(regs.start().get() as *const _) };
        let p0 = &block.page0;
        let features =
            Features::from_id_registers(p0.idr0.get(), p0.idr1.get(), p0.idr3.get(), p0.idr5.get())
                .map_err(SmmuError::Features)?;
        if !features.coherent {
            return Err(SmmuError::NotCoherent);
        }
        if features.tables_preset || features.queues_preset {
            return Err(SmmuError::Preset);
        }
        for (queue, max_log2, ours) in [
            ("command", features.cmdq_max_log2, CMDQ_LOG2),
            ("event", features.eventq_max_log2, EVENTQ_LOG2),
        ] {
            if max_log2 < ours {
                return Err(SmmuError::QueueTooSmall { queue, max_log2 });
            }
        }
        let needed = host_disk.map_or(0, |s| bits_for(s.get()));
        let table_log2 = MIN_STREAM_TABLE_LOG2
            .max(needed)
            .min(features.stream_id_bits);
        if needed > table_log2 || table_log2 > MAX_STREAM_TABLE_LOG2 {
            return Err(SmmuError::HostDiskStreamTooLarge(
                host_disk.unwrap_or(StreamId(0)),
            ));
        }
        let table = allocate::<[u64; STE_WORDS]>(STE_BYTES << table_log2)?;
        let commands = allocate::<[u64; 2]>(COMMAND_BYTES << CMDQ_LOG2)?;
        let events = allocate::<[u64; 4]>(EVENT_BYTES << EVENTQ_LOG2)?;
        let mut smmu = Smmu {
            regs: block,
            base: regs.start(),
            features,
            table,
            table_log2,
            commands,
            command_ring: Ring::new(CMDQ_LOG2).map_err(SmmuError::Queue)?,
            events,
            event_ring: Ring::new(EVENTQ_LOG2).map_err(SmmuError::Queue)?,
            overflow_ack: false,
            host_disk,
            world: if features.hyp {
                StreamWorld::El2E2h
            } else {
                StreamWorld::NsEl1
            },
            cd_tables: Vec::new(),
        };
        smmu.fill_table();
        smmu.reset()?;
        Ok(smmu)
    }

    /// Writes the initial entries: abort everywhere, bypass for the host
    /// disk. The SMMU is off, so no update plan is needed.
    fn fill_table(&mut self) {
        for index in 0..self.table_entries() {
            let ste = if self.host_disk == Some(StreamId(index)) {
                Ste::bypass()
            } else {
                Ste::abort()
            };
            // SAFETY: `index` is inside the table.
            unsafe { self.ste_pointer(index).write_volatile(ste.words()) };
        }
    }

    /// The programming sequence of spec 6.3 (and Linux's, which follows
    /// it): global bypass set to abort, everything off, tables and queues
    /// installed, command queue on, every cached configuration and TLB
    /// entry invalidated, event queue on, translation on.
    fn reset(&mut self) -> Result<(), SmmuError> {
        let p0 = &self.regs.page0;
        // Abort first, so that an SMMU an earlier owner left on goes from
        // its tables straight to aborting, never to its old global bypass.
        self.set_gbpa_abort()?;
        if p0.cr0.get() != 0 {
            p0.cr0.set(0);
            self.wait_cr0ack(0)?;
        }
        // Acknowledge whatever an earlier owner left behind.
        p0.gerrorn.set(p0.gerror.get());
        p0.irq_ctrl.set(0);
        if !timer::wait_until(POLL_TIMEOUT_MS, || p0.irq_ctrlack.get() == 0) {
            return Err(SmmuError::Timeout("SMMU_IRQ_CTRLACK"));
        }
        // The SMMU's own accesses: write-back, inner shareable, like the
        // hypervisor's mapping of the same heap memory.
        p0.cr1.write(
            CR1::QUEUE_IC::WriteBack
                + CR1::QUEUE_OC::WriteBack
                + CR1::QUEUE_SH::Inner
                + CR1::TABLE_IC::WriteBack
                + CR1::TABLE_OC::WriteBack
                + CR1::TABLE_SH::Inner,
        );
        // Record StreamIDs beyond the table; take TLB maintenance from
        // commands only (every change of a device's translation goes
        // through `invalidate_*`), not from the CPUs' broadcasts. With an
        // EL2 StreamWorld, make it the EL2&0 (E2H) regime this VHE
        // hypervisor's tasks run in, where ASIDs apply (CR2 may only change
        // while SMMUEN is 0, as here).
        let e2h = if self.world == StreamWorld::El2E2h {
            CR2::E2H::SET
        } else {
            CR2::E2H::CLEAR
        };
        p0.cr2.write(CR2::RECINVSID::SET + CR2::PTM::SET + e2h);
        let table_pa = self.table.as_ptr() as u64;
        p0.strtab_base
            .write(STRTAB_BASE::ADDR.val(table_pa >> 6) + STRTAB_BASE::RA::SET);
        p0.strtab_base_cfg.write(
            STRTAB_BASE_CFG::FMT::Linear + STRTAB_BASE_CFG::LOG2SIZE.val(self.table_log2.into()),
        );
        p0.cmdq_base.write(
            QUEUE_BASE::ADDR.val(self.commands.as_ptr() as u64 >> 5)
                + QUEUE_BASE::LOG2SIZE.val(CMDQ_LOG2.into())
                + QUEUE_BASE::ALLOCATE::SET,
        );
        p0.cmdq_prod.set(0);
        p0.cmdq_cons.set(0);
        p0.eventq_base.write(
            QUEUE_BASE::ADDR.val(self.events.as_ptr() as u64 >> 5)
                + QUEUE_BASE::LOG2SIZE.val(EVENTQ_LOG2.into())
                + QUEUE_BASE::ALLOCATE::SET,
        );
        self.regs.page1.eventq_prod.set(0);
        self.regs.page1.eventq_cons.set(0);
        // The table and queues must be in memory before the SMMU looks.
        dsb();
        self.enable(CR0::CMDQEN::SET.value)?;
        self.submit(&[Command::CfgiAll, Command::TlbiNsnhAll])?;
        if self.world == StreamWorld::El2E2h {
            // TLBI_NSNH_ALL does not reach EL2 entries.
            self.submit(&[Command::TlbiEl2All])?;
        }
        self.sync()?;
        self.enable(CR0::CMDQEN::SET.value | CR0::EVENTQEN::SET.value)?;
        self.enable(CR0::CMDQEN::SET.value | CR0::EVENTQEN::SET.value | CR0::SMMUEN::SET.value)?;
        self.check_global_errors()
    }

    /// SMMU_GBPA.ABORT with UPDATE, then waits for UPDATE to clear.
    fn set_gbpa_abort(&self) -> Result<(), SmmuError> {
        let gbpa = &self.regs.page0.gbpa;
        let update = GBPA::UPDATE::SET.value;
        if !timer::wait_until(POLL_TIMEOUT_MS, || gbpa.get() & update == 0) {
            return Err(SmmuError::Timeout("SMMU_GBPA.UPDATE"));
        }
        gbpa.set(gbpa.get() | GBPA::ABORT::SET.value | update);
        if !timer::wait_until(POLL_TIMEOUT_MS, || gbpa.get() & update == 0) {
            return Err(SmmuError::Timeout("SMMU_GBPA.UPDATE"));
        }
        Ok(())
    }

    fn enable(&self, cr0: u32) -> Result<(), SmmuError> {
        self.regs.page0.cr0.set(cr0);
        self.wait_cr0ack(cr0)
    }

    fn wait_cr0ack(&self, value: u32) -> Result<(), SmmuError> {
        let ack = &self.regs.page0.cr0ack;
        if timer::wait_until(POLL_TIMEOUT_MS, || ack.get() == value) {
            Ok(())
        } else {
            Err(SmmuError::Timeout("SMMU_CR0ACK"))
        }
    }

    /// Active SMMU_GERROR bits: those that differ from SMMU_GERRORN.
    fn active_global_errors(&self) -> u32 {
        let p0 = &self.regs.page0;
        p0.gerror.get() ^ p0.gerrorn.get()
    }

    /// Acknowledges the active global errors among `bits`.
    fn acknowledge_global_errors(&self, bits: u32) {
        let p0 = &self.regs.page0;
        p0.gerrorn
            .set(p0.gerrorn.get() ^ (self.active_global_errors() & bits));
    }

    /// [`SmmuError::GlobalError`] if the SMMU is in service failure mode.
    fn check_global_errors(&self) -> Result<(), SmmuError> {
        let failed = self.active_global_errors() & SERVICE_FAILURE;
        if failed == 0 {
            Ok(())
        } else {
            Err(SmmuError::GlobalError(failed))
        }
    }

    /// What the SMMU implements.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Where its registers are.
    pub fn base(&self) -> PhysAddr {
        self.base
    }

    /// StreamIDs the stream table covers (0 to this, exclusive).
    pub fn table_entries(&self) -> u32 {
        1 << self.table_log2
    }

    /// The host disk's stream, in bypass.
    #[allow(
        dead_code,
        reason = "for diagnostics; passthrough knows the disk's function"
    )]
    pub fn host_disk(&self) -> Option<StreamId> {
        self.host_disk
    }

    fn ste_pointer(&self, index: u32) -> *mut [u64; STE_WORDS] {
        // The callers check `index` against the table (the `add` stays
        // inside the allocation).
        self.table.as_ptr().wrapping_add(index as usize)
    }

    /// The entry for `stream` as the table holds it, or `None` beyond it.
    pub fn entry(&self, stream: StreamId) -> Option<Ste> {
        if stream.get() >= self.table_entries() {
            return None;
        }
        // SAFETY: Inside the table, which is ours and initialised.
        Some(Ste::from_words(unsafe {
            self.ste_pointer(stream.get()).read_volatile()
        }))
    }

    /// Every stream attached to a VM, with its VMID, as the table holds
    /// them: for self-checks against the VMs' pinned VMIDs.
    pub fn live_entries(&self) -> impl Iterator<Item = (StreamId, Vmid)> + '_ {
        (0..self.table_entries()).filter_map(|index| {
            let stream = StreamId(index);
            match self.entry(stream)?.kind() {
                SteKind::Stage2 { vmid, .. } => Some((stream, vmid)),
                _ => None,
            }
        })
    }

    /// A stream a VM may be given: inside the table and not the host disk.
    fn assignable(&self, stream: StreamId) -> Result<Ste, SmmuError> {
        if self.host_disk == Some(stream) {
            return Err(SmmuError::HostDiskStream(stream));
        }
        self.entry(stream)
            .ok_or(SmmuError::StreamOutOfRange(stream))
    }

    /// Whether a VM whose stage-2 root table is at `root` under `vtcr` (its
    /// VTCR_EL2) could have a stream attached: the checks of
    /// [`attach_stage2`](Self::attach_stage2) that depend on the VM, not
    /// on its VMID or the stream (stage 2 implemented, the granule, the
    /// IPA size against the SMMU's input size, the start level, the root's
    /// alignment and its address against the output size). For refusing a
    /// VM before its VMID is pinned.
    ///
    /// # Errors
    ///
    /// [`SmmuError::Ste`].
    pub fn check_stage2(&self, root: PhysAddr, vtcr: u64) -> Result<(), SmmuError> {
        Stage2Entry::new(Vmid::new(1), root, vtcr, &self.features)
            .map(|_| ())
            .map_err(SmmuError::Ste)
    }

    /// Points `stream` at a VM's stage-2 tables: its DMA addresses become
    /// IPAs of the VM with VMID `vmid`, whose stage-2 root table is at
    /// `root` (VTTBR_EL2.BADDR) under `vtcr` (the VTCR_EL2 value the CPU
    /// uses for it). The VMID must stay pinned until [`Smmu::detach`].
    /// Stale SMMU TLB entries of the VMID are invalidated first.
    ///
    /// # Errors
    ///
    /// [`SmmuError::HostDiskStream`], [`SmmuError::StreamOutOfRange`],
    /// [`SmmuError::AlreadyAttached`], [`SmmuError::UnexpectedEntry`],
    /// [`SmmuError::Ste`] (the configuration does not fit the SMMU), and
    /// the command errors ([`SmmuError::Timeout`], [`SmmuError::Command`],
    /// [`SmmuError::Queue`], [`SmmuError::GlobalError`]), after which the
    /// entry is the old one, the new one or abort.
    pub fn attach_stage2(
        &mut self,
        stream: StreamId,
        vmid: Vmid,
        root: PhysAddr,
        vtcr: u64,
    ) -> Result<(), SmmuError> {
        let old = self.assignable(stream)?;
        let entry = Stage2Entry::new(vmid, root, vtcr, &self.features).map_err(SmmuError::Ste)?;
        match old.kind() {
            SteKind::Abort | SteKind::Invalid => {}
            SteKind::Stage2 { vmid, .. } => {
                return Err(SmmuError::AlreadyAttached { stream, vmid })
            }
            SteKind::Stage1 => {
                let asid = self.context(stream).map_or(Asid::new(0), |cd| cd.asid());
                return Err(SmmuError::AlreadyBound { stream, asid });
            }
            other => return Err(SmmuError::UnexpectedEntry(stream, other)),
        }
        self.invalidate_vmid(vmid)?;
        self.apply(stream, &Ste::stage2(&entry))
    }

    /// Aborts `stream` again and drops its VM's translations from the
    /// SMMU's TLBs (abort entry, CFGI_STE, SYNC, TLBI_S12_VMALL, SYNC).
    /// Returns the VMID it had; afterwards the VMID may be unpinned.
    ///
    /// # Errors
    ///
    /// [`SmmuError::HostDiskStream`], [`SmmuError::StreamOutOfRange`],
    /// [`SmmuError::NotAttached`], and the command errors.
    pub fn detach(&mut self, stream: StreamId) -> Result<Vmid, SmmuError> {
        let SteKind::Stage2 { vmid, .. } = self.assignable(stream)?.kind() else {
            return Err(SmmuError::NotAttached(stream));
        };
        self.apply(stream, &Ste::abort())?;
        self.invalidate_vmid(vmid)?;
        Ok(vmid)
    }

    /// Retags an attached stream with `new` (for a VMID rollover fix-up;
    /// with pinned VMIDs it should never be needed). The change is one
    /// word, made without breaking the entry; then the old VMID's TLB
    /// entries are dropped. Returns the old VMID.
    ///
    /// # Errors
    ///
    /// [`SmmuError::HostDiskStream`], [`SmmuError::StreamOutOfRange`],
    /// [`SmmuError::NotAttached`], [`SmmuError::Ste`] (the VMID is too
    /// wide), and the command errors.
    #[allow(
        dead_code,
        reason = "VMIDs of attached streams are pinned; and without pinning (hyp.no-vmid-pin) the self-check must see a stale entry, not a repaired one"
    )]
    pub fn change_vmid(&mut self, stream: StreamId, new: Vmid) -> Result<Vmid, SmmuError> {
        let old_entry = self.assignable(stream)?;
        let SteKind::Stage2 { vmid: old, .. } = old_entry.kind() else {
            return Err(SmmuError::NotAttached(stream));
        };
        let max = self.features.max_vmid();
        if new.get() > max {
            return Err(SmmuError::Ste(SteError::VmidTooWide { vmid: new, max }));
        }
        if new != old {
            self.invalidate_vmid(new)?;
            self.apply(stream, &old_entry.with_vmid(new))?;
            self.invalidate_vmid(old)?;
        }
        Ok(old)
    }

    /// Drops every SMMU TLB entry of `vmid` (TLBI_S12_VMALL, SYNC): after
    /// changing a VM's stage-2 tables in ways that need more than one
    /// page's invalidation.
    ///
    /// # Errors
    ///
    /// The command errors ([`SmmuError::Command`] with
    /// [`CommandError::Illegal`] if the SMMU has no stage 2).
    pub fn invalidate_vmid(&mut self, vmid: Vmid) -> Result<(), SmmuError> {
        self.submit(&[Command::TlbiS12Vmall { vmid }])?;
        self.sync()
    }

    /// Drops the SMMU's TLB and walk-cache entries for one IPA page of
    /// `vmid` (TLBI_S2_IPA, not leaf-only; SYNC): after unmapping or
    /// remapping that page in the VM's stage-2 tables.
    ///
    /// # Errors
    ///
    /// The command errors.
    #[allow(
        dead_code,
        reason = "Vm::modify_stage2 drops the whole VMID for now; this is for page-sized changes"
    )]
    pub fn invalidate_ipa(
        &mut self,
        vmid: Vmid,
        ipa: IntermediatePhysAddr,
    ) -> Result<(), SmmuError> {
        self.submit(&[Command::TlbiS2Ipa {
            vmid,
            ipa,
            leaf: false,
        }])?;
        self.sync()
    }

    /// The StreamWorld stage-1 bindings use (EL2-E2H if the SMMU has an
    /// EL2 StreamWorld, NS-EL1 otherwise; see the module documentation).
    pub fn stage1_world(&self) -> StreamWorld {
        self.world
    }

    /// Whether a task's address space could be bound to a stream: the
    /// checks of [`bind_stage1`](Self::bind_stage1) that depend on the
    /// task's translation parameters, not on the stream (stage 1
    /// implemented, the granule, the VA size, the table's alignment and
    /// address, the ASID's width). For refusing before pinning the ASID.
    ///
    /// # Errors
    ///
    /// [`SmmuError::Cd`].
    pub fn check_stage1(
        &self,
        asid: Asid,
        ttbr0: PhysAddr,
        tcr: u64,
        mair: u64,
    ) -> Result<(), SmmuError> {
        Stage1Context::from_tcr(asid, ttbr0, tcr, mair, &self.features)
            .map(|_| ())
            .map_err(SmmuError::Cd)
    }

    /// Makes `stream`'s DMA addresses virtual addresses of a task's address
    /// space (shared virtual addressing): the task's translation table at
    /// `ttbr0` (the table address TTBR0_EL2 holds, without ASID or CnP),
    /// under `tcr` (the TCR_EL2 value, E2H layout, the CPU uses for the
    /// task: T0SZ, TG0, IRGN0, ORGN0, SH0, IPS and HA are taken from it)
    /// and `mair` (the MAIR_EL2 value), tagged with the task's `asid`.
    ///
    /// The ASID must be pinned before this is called and stay pinned until
    /// [`unbind_stage1`](Self::unbind_stage1) returns (if pinning fails,
    /// do not bind). When the task's mappings change, the caller must
    /// [`invalidate_asid`](Self::invalidate_asid) as it invalidates the
    /// CPUs' TLBs: the SMMU takes no broadcast maintenance.
    ///
    /// The descriptor is written first (`smmuv3::cd_update_sequence`: the
    /// ASID invalidated, the words, V last, CMD_CFGI_CD + CMD_SYNC), then
    /// the stream's entry (`smmuv3::ste_update_sequence`, from abort to
    /// stage 1).
    ///
    /// # Errors
    ///
    /// [`SmmuError::HostDiskStream`], [`SmmuError::StreamOutOfRange`],
    /// [`SmmuError::AlreadyAttached`], [`SmmuError::AlreadyBound`],
    /// [`SmmuError::UnexpectedEntry`], [`SmmuError::Cd`] and
    /// [`SmmuError::Ste`] (the context does not fit the SMMU, checked
    /// before anything is written), [`SmmuError::OutOfMemory`], and the
    /// command errors, after which the stream's entry is abort or the
    /// new one.
    pub fn bind_stage1(
        &mut self,
        stream: StreamId,
        asid: Asid,
        ttbr0: PhysAddr,
        tcr: u64,
        mair: u64,
    ) -> Result<(), SmmuError> {
        let old = self.assignable(stream)?;
        match old.kind() {
            SteKind::Abort | SteKind::Invalid => {}
            SteKind::Stage2 { vmid, .. } => {
                return Err(SmmuError::AlreadyAttached { stream, vmid })
            }
            SteKind::Stage1 => {
                let asid = self.context(stream).map_or(Asid::new(0), |cd| cd.asid());
                return Err(SmmuError::AlreadyBound { stream, asid });
            }
            other => return Err(SmmuError::UnexpectedEntry(stream, other)),
        }
        let context = Stage1Context::from_tcr(asid, ttbr0, tcr, mair, &self.features)
            .map_err(SmmuError::Cd)?;
        let table = self.cd_table(stream)?;
        let entry = Stage1Entry::new(PhysAddr(table.as_ptr() as u64), self.world, &self.features)
            .map_err(SmmuError::Ste)?;
        self.apply_cd(stream, table, &Cd::new(&context))?;
        if let Err(e) = self.apply(stream, &Ste::stage1(&entry)) {
            // Fail closed: the entry may have been left at abort; take the
            // descriptor back too, best effort.
            let _ = self.apply(stream, &Ste::abort());
            let _ = self.apply_cd(stream, table, &Cd::INVALID);
            return Err(e);
        }
        Ok(())
    }

    /// Aborts `stream` again and takes its task's address space away: the
    /// entry to abort (CMD_CFGI_STE, CMD_SYNC), then the descriptor's V
    /// cleared, CMD_CFGI_CD, CMD_SYNC, the ASID's TLB entries invalidated,
    /// CMD_SYNC. Returns the ASID it had; afterwards it may be unpinned.
    ///
    /// # Errors
    ///
    /// [`SmmuError::HostDiskStream`], [`SmmuError::StreamOutOfRange`],
    /// [`SmmuError::NotBound`], and the command errors.
    pub fn unbind_stage1(&mut self, stream: StreamId) -> Result<Asid, SmmuError> {
        let ste = self.assignable(stream)?;
        let table = self
            .cd_tables
            .iter()
            .find(|(s, _)| *s == stream)
            .map(|(_, table)| *table);
        let Some(table) = table else {
            return Err(SmmuError::NotBound(stream));
        };
        if ste.kind() != SteKind::Stage1 || ste.context_pointer().get() != table.as_ptr() as u64 {
            return Err(SmmuError::NotBound(stream));
        }
        // SAFETY: `table` is the stream's CD table, ours.
        let cd = Cd::from_words(unsafe { table.as_ptr().read_volatile() });
        self.apply(stream, &Ste::abort())?;
        self.apply_cd(stream, table, &Cd::INVALID)?;
        Ok(cd.asid())
    }

    /// The context descriptor of a stream bound by
    /// [`bind_stage1`](Self::bind_stage1), as its CD table holds it
    /// (invalid after an unbind), or `None` for a stream never bound.
    pub fn context(&self, stream: StreamId) -> Option<Cd> {
        let (_, table) = self.cd_tables.iter().find(|(s, _)| *s == stream)?;
        // SAFETY: The CD table is ours and initialised.
        Some(Cd::from_words(unsafe { table.as_ptr().read_volatile() }))
    }

    /// Every stream bound to a task's address space, with the ASID its
    /// descriptor holds: for self-checks against the tasks' pinned ASIDs.
    pub fn bound_streams(&self) -> impl Iterator<Item = (StreamId, Asid)> + '_ {
        self.cd_tables.iter().filter_map(|(stream, _)| {
            let cd = self.context(*stream)?;
            let live = self.entry(*stream)?.kind() == SteKind::Stage1 && cd.is_valid();
            live.then(|| (*stream, cd.asid()))
        })
    }

    /// Drops every SMMU TLB entry of `asid` in the stage-1 bindings' regime
    /// (CMD_TLBI_EL2_ASID in EL2-E2H, CMD_TLBI_NH_ASID with VMID 0 in
    /// NS-EL1; CMD_SYNC): after changing or unmapping anything in a bound
    /// task's tables.
    ///
    /// # Errors
    ///
    /// The command errors.
    pub fn invalidate_asid(&mut self, asid: Asid) -> Result<(), SmmuError> {
        let command = match self.world {
            StreamWorld::El2E2h => Command::TlbiEl2Asid { asid },
            StreamWorld::NsEl1 => Command::TlbiNhAsid {
                vmid: STAGE1_VMID,
                asid,
            },
        };
        self.submit(&[command])?;
        self.sync()
    }

    /// The stream's CD table, allocated (invalid) on its first bind.
    fn cd_table(&mut self, stream: StreamId) -> Result<NonNull<[u64; CD_WORDS]>, SmmuError> {
        if let Some((_, table)) = self.cd_tables.iter().find(|(s, _)| *s == stream) {
            return Ok(*table);
        }
        let table = allocate::<[u64; CD_WORDS]>(CD_BYTES)?;
        self.cd_tables
            .try_reserve(1)
            .map_err(|_| SmmuError::OutOfMemory)?;
        self.cd_tables.push((stream, table));
        Ok(table)
    }

    /// Carries out the plan from the descriptor in `table` to `new`
    /// (`smmuv3::cd_update_sequence`): word writes, CFGI_CD + SYNC after
    /// each group, and the ASID invalidations it asks for.
    fn apply_cd(
        &mut self,
        stream: StreamId,
        table: NonNull<[u64; CD_WORDS]>,
        new: &Cd,
    ) -> Result<(), SmmuError> {
        // SAFETY: `table` is one of ours, initialised.
        let old = Cd::from_words(unsafe { table.as_ptr().read_volatile() });
        let words = table.as_ptr().cast::<u64>();
        for step in cd_update_sequence(&old, new) {
            match step {
                CdStep::Write { word, value } => {
                    // SAFETY: `word` < 8, inside the CD table, which is
                    // ours; an aligned 64-bit store is single-copy atomic,
                    // as the plan needs.
                    unsafe { words.add(word).write_volatile(value) };
                }
                CdStep::Sync => {
                    self.submit(&[Command::CfgiCd {
                        stream,
                        ssid: 0,
                        leaf: true,
                    }])?;
                    self.sync()?;
                }
                CdStep::InvalidateAsid(asid) => self.invalidate_asid(asid)?,
            }
        }
        Ok(())
    }

    /// Decodes every event record the SMMU has written since the last call,
    /// hands each to `handle`, and frees their slots. Bounded by the
    /// queue's size. Call it often enough (it is cheap when the queue is
    /// empty): records beyond the queue's 128 are lost, which
    /// [`Drained::lost`] reports.
    ///
    /// # Errors
    ///
    /// [`SmmuError::Queue`] if SMMU_EVENTQ_PROD is impossible (nothing is
    /// read).
    pub fn drain_events(&mut self, mut handle: impl FnMut(Event)) -> Result<Drained, SmmuError> {
        let page1 = &self.regs.page1;
        let prod = page1.eventq_prod.extract();
        self.event_ring
            .update_prod(prod.read(EVENTQ_PROD::WR))
            .map_err(SmmuError::Queue)?;
        let overflowed = prod.is_set(EVENTQ_PROD::OVFLG) != self.overflow_ack;
        let aborted = self.active_global_errors() & GERROR::EVENTQ_ABT_ERR::SET.value != 0;
        // Read the records only after reading PROD.
        dsb();
        let mut drained = Drained {
            events: 0,
            lost: overflowed || aborted,
        };
        while let Some(slot) = self.event_ring.pop() {
            // SAFETY: `slot` is inside the event queue, which is ours; the
            // SMMU wrote this record before moving PROD past it.
            let words = unsafe { self.events.as_ptr().add(slot as usize).read_volatile() };
            handle(Event::decode(&words));
            drained.events += 1;
        }
        if overflowed {
            self.overflow_ack = !self.overflow_ack;
        }
        // The reads are done before the SMMU may reuse the slots.
        dsb();
        page1.eventq_cons.write(
            EVENTQ_CONS::RD.val(self.event_ring.cons())
                + EVENTQ_CONS::OVACKFLG.val(self.overflow_ack.into()),
        );
        if aborted {
            // With room in the queue again, let the SMMU record anew.
            self.acknowledge_global_errors(GERROR::EVENTQ_ABT_ERR::SET.value);
        }
        Ok(drained)
    }

    /// Carries out the update plan from the stream's current entry to
    /// `new` (`smmuv3::ste_update_sequence`): word writes, and after each
    /// group CFGI_STE + SYNC.
    fn apply(&mut self, stream: StreamId, new: &Ste) -> Result<(), SmmuError> {
        let old = self
            .entry(stream)
            .ok_or(SmmuError::StreamOutOfRange(stream))?;
        let entry = self.ste_pointer(stream.get()).cast::<u64>();
        for step in ste_update_sequence(&old, new) {
            match step {
                StepWrite::Write { word, value } => {
                    // SAFETY: The stream is inside the table (checked by
                    // `entry`) and `word` < 8; an aligned 64-bit store is
                    // single-copy atomic, as the plan needs.
                    unsafe { entry.add(word).write_volatile(value) };
                }
                StepWrite::Sync => {
                    self.submit(&[Command::CfgiSte { stream, leaf: true }])?;
                    self.sync()?;
                }
            }
        }
        Ok(())
    }

    /// Writes `commands` to the command queue and tells the SMMU, waiting
    /// for room if the queue is full.
    fn submit(&mut self, commands: &[Command]) -> Result<(), SmmuError> {
        for command in commands {
            let slot = match self.command_ring.push() {
                Some(slot) => slot,
                None => {
                    self.publish();
                    self.wait_commands(|ring| !ring.is_full(), "command queue space")?;
                    self.command_ring
                        .push()
                        .ok_or(SmmuError::Timeout("command queue space"))?
                }
            };
            // SAFETY: `slot` is inside the command queue, which is ours;
            // the SMMU reads it only once PROD moves past it.
            unsafe {
                self.commands
                    .as_ptr()
                    .add(slot as usize)
                    .write_volatile(command.encode())
            };
        }
        self.publish();
        Ok(())
    }

    /// Moves SMMU_CMDQ_PROD to the ring's PROD, once everything written
    /// before (commands, table entries) is visible to the SMMU.
    fn publish(&self) {
        dsb();
        self.regs
            .page0
            .cmdq_prod
            .write(CMDQ_PROD::WR.val(self.command_ring.prod()));
    }

    /// Issues a CMD_SYNC and waits until the SMMU has consumed it, so that
    /// every command before it has completed.
    fn sync(&mut self) -> Result<(), SmmuError> {
        let position = self.command_ring.prod();
        self.submit(&[Command::Sync])?;
        self.wait_commands(|ring| ring.consumed(position), "CMD_SYNC")
    }

    /// Polls SMMU_CMDQ_CONS until `done`, handling command errors on the
    /// way; returns the first command error once `done`.
    fn wait_commands(
        &mut self,
        done: impl Fn(&Ring) -> bool,
        what: &'static str,
    ) -> Result<(), SmmuError> {
        let mut failure: Option<SmmuError> = None;
        let mut command_error: Option<SmmuError> = None;
        let finished = timer::wait_until(POLL_TIMEOUT_MS, || match self.poll_commands() {
            Ok(error) => {
                if command_error.is_none() {
                    command_error = error;
                }
                done(&self.command_ring)
            }
            Err(e) => {
                failure = Some(e);
                true
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        if !finished {
            return Err(SmmuError::Timeout(what));
        }
        command_error.map_or(Ok(()), Err)
    }

    /// Reads SMMU_CMDQ_CONS into the ring. If the SMMU stopped at a bad
    /// command (SMMU_GERROR.CMDQ_ERR), replaces that command with a
    /// CMD_SYNC, acknowledges the error so the SMMU goes on (spec 7.1), and
    /// returns what was wrong.
    fn poll_commands(&mut self) -> Result<Option<SmmuError>, SmmuError> {
        let p0 = &self.regs.page0;
        let active = self.active_global_errors();
        let cons = p0.cmdq_cons.extract();
        self.command_ring
            .update_cons(cons.read(CMDQ_CONS::RD))
            .map_err(SmmuError::Queue)?;
        self.check_global_errors()?;
        if active & GERROR::CMDQ_ERR::SET.value == 0 {
            return Ok(None);
        }
        // Seven bits: the cast is lossless.
        let error = CommandError::from_code(cons.read(CMDQ_CONS::ERR) as u8)
            .unwrap_or(CommandError::Other(0));
        let slot = self.command_ring.slot(self.command_ring.cons());
        // SAFETY: `slot` is inside the command queue, which is ours; the
        // SMMU is stopped at it until the acknowledgement below.
        let bad = unsafe {
            let pointer = self.commands.as_ptr().add(slot as usize);
            let bad = pointer.read_volatile();
            pointer.write_volatile(Command::Sync.encode());
            bad
        };
        dsb();
        self.acknowledge_global_errors(GERROR::CMDQ_ERR::SET.value);
        // Eight bits: the cast is lossless.
        let opcode = (bad[0] & 0xff) as u8;
        Ok(Some(SmmuError::Command {
            command: Command::decode(bad),
            opcode,
            error,
        }))
    }
}

/// The SMMU, once [`init`] has set it up.
static SMMU: Once<Mutex<Smmu>> = Once::new();

/// Sets up the device tree's SMMUv3, if it has one: every StreamID aborted
/// except `host_disk_stream` (the host disk's routing ID), in bypass.
/// `Ok(())` without an SMMU too (then nothing is translated or blocked).
///
/// Call once, on one CPU, after the final stage-1 map (which covers the
/// SMMU's registers as device memory) is live and while no device is doing
/// DMA it needs.
///
/// # Errors
///
/// Those of the setup ([`SmmuError::RegistersTooSmall`],
/// [`SmmuError::Features`], [`SmmuError::NotCoherent`],
/// [`SmmuError::Preset`], [`SmmuError::QueueTooSmall`],
/// [`SmmuError::HostDiskStreamTooLarge`], [`SmmuError::OutOfMemory`],
/// [`SmmuError::Timeout`], the command errors), after which DMA through
/// the SMMU is aborted; [`SmmuError::AlreadyInitialised`].
pub fn init(platform: &Platform, host_disk_stream: Option<u32>) -> Result<(), SmmuError> {
    if SMMU.get().is_some() {
        return Err(SmmuError::AlreadyInitialised);
    }
    let Some(desc) = platform.smmu else {
        info!("smmu: none in the device tree; device DMA is neither translated nor blocked");
        return Ok(());
    };
    let host_disk = host_disk_stream.map(StreamId);
    // SAFETY: `mmu::build` maps every region of `Platform::mmio_regions`,
    // the SMMU's included, as device memory for good, and this module is
    // the only user of the SMMU; the caller keeps devices quiet.
    let smmu = unsafe { Smmu::new(desc.regs, host_disk) }?;
    let f = smmu.features();
    info!(
        "smmu: SMMUv3 at {}: stage 2 {}, stage 1 {}, {}-bit output, {}-bit VMIDs, {} stream table entries, StreamIDs {} bits",
        smmu.base(),
        if f.stage2 { "yes" } else { "NO" },
        if f.stage1 { "yes" } else { "no" },
        f.oas.bits(),
        if f.vmid16 { 16 } else { 8 },
        smmu.table_entries(),
        f.stream_id_bits,
    );
    let p0 = &smmu.regs.page0;
    info!(
        "smmu: IDR0 {:#010x} IDR1 {:#010x}: {}-bit ASIDs, EL2 stream world (HYP) {}, broadcast TLB maintenance (BTM) {}; task address spaces are bound in the {} world",
        p0.idr0.get(),
        p0.idr1.get(),
        if f.asid16 { 16 } else { 8 },
        if f.hyp { "yes" } else { "no" },
        if f.broadcast_tlb { "yes" } else { "no" },
        smmu.stage1_world(),
    );
    match host_disk {
        Some(stream) => {
            info!("smmu: host disk stream {stream} in bypass, every other stream aborted")
        }
        None => info!("smmu: every stream aborted (no host disk)"),
    }
    if !f.stage2 {
        warn!("smmu: no stage-2 translation (QEMU: -global arm-smmuv3.stage=2); devices cannot be passed through");
    }
    let mut smmu = smmu;
    // Debug builds (the system tests) prove a stage-1 binding is written
    // as planned and taken back, on a stream no device uses.
    if cfg!(debug_assertions) && smmu.features().stage1 {
        match stage1_self_check(&mut smmu) {
            Ok(stream) => {
                info!("smmu: stage-1 self-check passed (stream {stream} bound, read back, unbound)")
            }
            Err(e) => warn!("smmu: stage-1 self-check failed: {e}"),
        }
        if platform::bootargs::value(&platform.bootargs, DMA_CHECK_OPTION).is_some() {
            if host_disk.is_some() {
                warn!("smmu: hyp.{DMA_CHECK_OPTION} skipped: it places BARs outside the host bus's allocator, which the host disk's are in");
            } else {
                match stage1_dma_check(&mut smmu, platform) {
                    Ok(()) => {}
                    Err(e) => warn!("smmu: stage-1 DMA check failed: {e}"),
                }
            }
        }
    }
    SMMU.call_once(|| Mutex::new(smmu));
    Ok(())
}

/// The debug-only switch `hyp.smmu-s1-dma` (see [`stage1_dma_check`]).
const DMA_CHECK_OPTION: &str = "smmu-s1-dma";

/// What the stage-1 self-checks found wrong.
enum SelfCheckError {
    /// The driver refused or failed.
    Smmu(SmmuError),
    /// No memory for the translation tables.
    OutOfMemory,
    /// The stream was not aborted to begin with.
    StreamInUse(StreamId),
    /// Something read back differs from what was meant.
    Mismatch(&'static str),
    /// The host bus could not be opened.
    Bus(crate::hostdisk::HostDiskError),
    /// The device's BARs could not be placed.
    Bars(pci::AssignError),
}

impl fmt::Display for SelfCheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Smmu(e) => write!(f, "{e}"),
            Self::OutOfMemory => write!(f, "no memory for the translation tables"),
            Self::StreamInUse(stream) => write!(f, "stream {stream} is not aborted"),
            Self::Mismatch(what) => write!(f, "{what}"),
            Self::Bus(e) => write!(f, "{e}"),
            Self::Bars(e) => write!(f, "edu's BARs: {e}"),
        }
    }
}

impl From<SmmuError> for SelfCheckError {
    fn from(e: SmmuError) -> Self {
        Self::Smmu(e)
    }
}

/// `N` zeroed 4 KiB pages for translation tables and the data they map,
/// freed on drop (after the binding that used them is gone and its ASID
/// invalidated).
struct TablePages<const N: usize>([NonNull<u64>; N]);

impl<const N: usize> TablePages<N> {
    const LAYOUT: Layout = match Layout::from_size_align(4096, 4096) {
        Ok(layout) => layout,
        Err(_) => panic!("4 KiB is a valid layout"),
    };

    fn new() -> Option<TablePages<N>> {
        let mut pages = [NonNull::dangling(); N];
        for (i, page) in pages.iter_mut().enumerate() {
            // SAFETY: The layout is non-zero.
            match NonNull::new(unsafe { alloc_zeroed(Self::LAYOUT) }.cast::<u64>()) {
                Some(p) => *page = p,
                None => {
                    for done in &pages[..i] {
                        // SAFETY: Allocated above with the same layout.
                        unsafe { alloc::alloc::dealloc(done.as_ptr().cast(), Self::LAYOUT) };
                    }
                    return None;
                }
            }
        }
        Some(TablePages(pages))
    }

    fn pa(&self, index: usize) -> u64 {
        // The heap is identity mapped: its addresses are physical.
        self.0[index].as_ptr() as u64
    }

    fn set(&self, page: usize, entry: usize, value: u64) {
        // SAFETY: `entry` < 512 (the callers' indexes), inside the page.
        unsafe { self.0[page].as_ptr().add(entry).write_volatile(value) };
    }

    fn get(&self, page: usize, entry: usize) -> u64 {
        // SAFETY: `entry` < 512 (the callers' indexes), inside the page.
        unsafe { self.0[page].as_ptr().add(entry).read_volatile() }
    }
}

impl<const N: usize> Drop for TablePages<N> {
    fn drop(&mut self) {
        for page in &self.0 {
            // SAFETY: Allocated in `new` with this layout; nothing uses
            // the tables any more when the owner drops them.
            unsafe { alloc::alloc::dealloc(page.as_ptr().cast(), Self::LAYOUT) };
        }
    }
}

/// The self-checks' task-like address spaces. TCR_EL2 (E2H layout): T0SZ
/// 25, IRGN0/ORGN0 write-back, SH0 inner, TG0 4 KiB, EPD1, IPS 48 bits,
/// 16-bit ASIDs.
const TCR: u64 = 25 | 0b01 << 8 | 0b01 << 10 | 0b11 << 12 | 1 << 23 | 0b101 << 32 | 1 << 36;
/// MAIR: Attr0 normal write-back.
const MAIR: u64 = 0xff;
/// Table descriptor low bits.
const TABLE: u64 = 0b11;
/// Page descriptor low bits: AttrIndx 0, AP 0b01 (read/write at EL0 too, as
/// a task's page), SH inner, AF, nG.
const PAGE: u64 = 0b11 | 0b01 << 6 | 0b11 << 8 | 1 << 10 | 1 << 11;

/// Binds a small task-like address space (VA 0x1000 to one data page,
/// 4 KiB granule, 39-bit VAs, three levels) to the last stream of the
/// table, which no device uses on bus 0 of QEMU `virt` (00:1f.7), checks
/// the STE and CD read back as planned and that the driver refuses what it
/// must, then unbinds and checks the stream is aborted and the descriptor
/// invalid. Returns the stream.
fn stage1_self_check(smmu: &mut Smmu) -> Result<StreamId, SelfCheckError> {
    let stream = StreamId(smmu.table_entries() - 1);
    if smmu.entry(stream).map(|e| e.kind()) != Some(SteKind::Abort) {
        return Err(SelfCheckError::StreamInUse(stream));
    }
    let asid = Asid::new(0x5a);
    let pages = TablePages::<4>::new().ok_or(SelfCheckError::OutOfMemory)?;
    // Level 1 [0] -> level 2 [0] -> level 3 [1] -> the data page.
    pages.set(0, 0, pages.pa(1) | TABLE);
    pages.set(1, 0, pages.pa(2) | TABLE);
    pages.set(2, 1, pages.pa(3) | PAGE);
    dsb();
    let root = PhysAddr(pages.pa(0));
    smmu.check_stage1(asid, root, TCR, MAIR)?;
    // Refused before anything is written: a misaligned table.
    match smmu.bind_stage1(stream, asid, PhysAddr(root.get() + 0x800), TCR, MAIR) {
        Err(SmmuError::Cd(CdError::TableMisaligned { .. })) => {}
        _ => {
            return Err(SelfCheckError::Mismatch(
                "a misaligned table was not refused",
            ))
        }
    }
    if smmu.entry(stream) != Some(Ste::abort()) {
        return Err(SelfCheckError::Mismatch("a refused bind changed the entry"));
    }
    smmu.bind_stage1(stream, asid, root, TCR, MAIR)?;
    let result = check_bound(smmu, stream, asid, root, TCR, MAIR);
    let unbound = smmu.unbind_stage1(stream);
    result?;
    if unbound? != asid {
        return Err(SelfCheckError::Mismatch("unbind returned another ASID"));
    }
    if smmu.entry(stream) != Some(Ste::abort()) {
        return Err(SelfCheckError::Mismatch(
            "the entry is not abort after unbind",
        ));
    }
    if smmu.context(stream) != Some(Cd::INVALID) {
        return Err(SelfCheckError::Mismatch(
            "the CD is not invalid after unbind",
        ));
    }
    if !matches!(smmu.unbind_stage1(stream), Err(SmmuError::NotBound(_))) {
        return Err(SelfCheckError::Mismatch("a second unbind was not refused"));
    }
    drop(pages);
    Ok(stream)
}

/// The bound stream's STE and CD against what they should be.
fn check_bound(
    smmu: &mut Smmu,
    stream: StreamId,
    asid: Asid,
    root: PhysAddr,
    tcr: u64,
    mair: u64,
) -> Result<(), SelfCheckError> {
    let cd = smmu
        .context(stream)
        .ok_or(SelfCheckError::Mismatch("no CD table"))?;
    let context = Stage1Context::from_tcr(asid, root, tcr, mair, smmu.features())
        .map_err(|e| SelfCheckError::Smmu(SmmuError::Cd(e)))?;
    if cd != Cd::new(&context) || !cd.is_valid() || cd.asid() != asid || cd.ttb0() != root {
        return Err(SelfCheckError::Mismatch("the CD read back differs"));
    }
    let ste = smmu
        .entry(stream)
        .ok_or(SelfCheckError::Mismatch("no STE"))?;
    let table = ste.context_pointer();
    let entry = Stage1Entry::new(table, smmu.stage1_world(), smmu.features())
        .map_err(|e| SelfCheckError::Smmu(SmmuError::Ste(e)))?;
    if ste != Ste::stage1(&entry) || ste.stream_world() != Some(smmu.stage1_world()) {
        return Err(SelfCheckError::Mismatch("the STE read back differs"));
    }
    if !matches!(
        smmu.bind_stage1(stream, asid, root, tcr, mair),
        Err(SmmuError::AlreadyBound { asid: a, .. }) if a == asid
    ) {
        return Err(SelfCheckError::Mismatch("a second bind was not refused"));
    }
    if smmu.bound_streams().collect::<Vec<_>>() != [(stream, asid)] {
        return Err(SelfCheckError::Mismatch("bound_streams differs"));
    }
    // Real SMMUs fetch and check the STE and CD now (QEMU ignores it).
    smmu.submit(&[Command::PrefetchConfig { stream }])?;
    smmu.sync()?;
    smmu.invalidate_asid(asid)?;
    Ok(())
}

/// Runs `f` on the SMMU, if [`init`] set one up (one user at a time).
pub fn with<R>(f: impl FnOnce(&mut Smmu) -> R) -> Option<R> {
    SMMU.get().map(|smmu| f(&mut smmu.lock()))
}

/// QEMU's `edu` (1234:11e8) BAR0 registers and DMA engine (QEMU's
/// docs/specs/edu.rst): the command register's bit 0 starts a transfer
/// and reads 1 until it ends (100 ms of QEMU's virtual clock later), bit 1
/// sends it from the device's buffer (device addresses 0x40000 to
/// 0x40fff) to memory.
mod edu {
    pub const VENDOR_DEVICE: (u16, u16) = (0x1234, 0x11e8);
    pub const ID: usize = 0x00;
    pub const ID_VALUE: u32 = 0x0100_00ed;
    pub const DMA_SOURCE: usize = 0x80;
    pub const DMA_DESTINATION: usize = 0x88;
    pub const DMA_COUNT: usize = 0x90;
    pub const DMA_COMMAND: usize = 0x98;
    pub const DMA_RUN: u64 = 1 << 0;
    pub const DMA_TO_MEMORY: u64 = 1 << 1;
    pub const BUFFER: u64 = 0x4_0000;
    /// A transfer takes 100 ms of virtual time; TCG may run slow.
    pub const TIMEOUT_MS: u64 = 5000;
}

/// Bytes each transfer of the DMA check moves.
const DMA_CHECK_BYTES: usize = 256;

/// Debug builds, `hyp.smmu-s1-dma`, on QEMU with an `edu` function at
/// 00:08.0 and no host disk: shared virtual addressing end to end. The
/// device's stream is bound to a task-like address space (VA 0x1000 and
/// 0x2000 mapped to two pages, 0x3000 not), and the device copies 256
/// bytes from VA 0x1000 into its buffer and back out to VA 0x2000: the
/// bytes must arrive, which only the stage-1 walk through the CD's table
/// makes possible (those VAs are not RAM). A write to VA 0x3000 must be
/// stopped with a translation fault naming the stream and the VA. After
/// the unbind a write to VA 0x2000 must be aborted. The function is left
/// with decoding and bus mastering off for passthrough to take over.
fn stage1_dma_check(smmu: &mut Smmu, platform: &Platform) -> Result<(), SelfCheckError> {
    use pci::{Bdf, Command as PciCommand, ConfigSpace};
    let mut bus = crate::hostdisk::open_bus(platform)
        .map_err(SelfCheckError::Bus)?
        .ok_or(SelfCheckError::Mismatch("no PCIe host bridge"))?;
    let bdf = Bdf::new(bus.bus, 8, 0).ok_or(SelfCheckError::Mismatch("no slot 8"))?;
    let info = pci::probe_function(&bus.config, bdf)
        .ok_or(SelfCheckError::Mismatch("no function at 00:08.0"))?;
    if (info.vendor_id, info.device_id) != edu::VENDOR_DEVICE {
        return Err(SelfCheckError::Mismatch("00:08.0 is not edu"));
    }
    let bars = pci::assign_bars(&mut bus.config, bdf, info.header_type, &mut bus.bars)
        .map_err(SelfCheckError::Bars)?;
    let regs = bars
        .get(0)
        .and_then(|bar| bar.placement)
        .ok_or(SelfCheckError::Mismatch("edu's BAR0 was not placed"))?
        .cpu
        .start()
        .get() as usize;
    let stream = StreamId(u32::from(bdf.routing_id()));
    let asid = Asid::new(0x5b);
    // Pages: level 1, level 2, level 3 tables; source (VA 0x1000) and
    // destination (VA 0x2000) data.
    let pages = TablePages::<5>::new().ok_or(SelfCheckError::OutOfMemory)?;
    pages.set(0, 0, pages.pa(1) | TABLE);
    pages.set(1, 0, pages.pa(2) | TABLE);
    pages.set(2, 1, pages.pa(3) | PAGE);
    pages.set(2, 2, pages.pa(4) | PAGE);
    let pattern = |i: usize| 0x0101_0101_0101_0101u64.wrapping_mul(i as u64 + 1) ^ 0xa5c3;
    for i in 0..DMA_CHECK_BYTES / 8 {
        pages.set(3, i, pattern(i));
    }
    dsb();
    let root = PhysAddr(pages.pa(0));
    smmu.bind_stage1(stream, asid, root, TCR, MAIR)?;
    pci::enable_memory_and_bus_master(&mut bus.config, bdf, PciCommand::empty());
    let result = edu_transfers(smmu, regs, stream, &pages, pattern);
    let unbound = smmu.unbind_stage1(stream);
    let after_unbind = result.and_then(|()| {
        unbound?;
        // The binding is gone: the same write must not reach the page.
        for i in 0..DMA_CHECK_BYTES / 8 {
            pages.set(4, i, 0);
        }
        dsb();
        edu_dma(regs, edu::BUFFER, 0x2000, edu::DMA_TO_MEMORY)?;
        if (0..DMA_CHECK_BYTES / 8).any(|i| pages.get(4, i) != 0) {
            return Err(SelfCheckError::Mismatch(
                "a DMA after the unbind reached the page",
            ));
        }
        Ok(())
    });
    pci::set_command(&mut bus.config, bdf, PciCommand::empty());
    let _ = bus.config.read32(bdf, pci::Register::COMMAND_STATUS);
    after_unbind?;
    drop(pages);
    info!(
        "smmu: stage-1 DMA check passed: edu {bdf} (stream {stream}) copied {DMA_CHECK_BYTES} bytes from VA 0x1000 to VA 0x2000 through ASID {asid}'s table; a write to unmapped VA 0x3000 raised a translation fault; after the unbind a write was aborted"
    );
    Ok(())
}

/// The transfers while bound: VA 0x1000 to the device, the device to VA
/// 0x2000 (compared), the device to VA 0x3000 (a fault).
fn edu_transfers<const N: usize>(
    smmu: &mut Smmu,
    regs: usize,
    stream: StreamId,
    pages: &TablePages<N>,
    pattern: impl Fn(usize) -> u64,
) -> Result<(), SelfCheckError> {
    // SAFETY: BAR0 of edu, placed by `assign_bars` in a host bridge
    // window, which `mmu::build` maps as device memory.
    let id = unsafe { ((regs + edu::ID) as *const u32).read_volatile() };
    if id != edu::ID_VALUE {
        return Err(SelfCheckError::Mismatch("edu's ID register is wrong"));
    }
    // Events from before are not this check's.
    smmu.drain_events(|_| {})?;
    edu_dma(regs, 0x1000, edu::BUFFER, 0)?;
    edu_dma(regs, edu::BUFFER, 0x2000, edu::DMA_TO_MEMORY)?;
    if (0..DMA_CHECK_BYTES / 8).any(|i| pages.get(4, i) != pattern(i)) {
        return Err(SelfCheckError::Mismatch(
            "the bytes copied through VA 0x1000 and 0x2000 differ",
        ));
    }
    let mut faults = 0;
    let mut others = 0;
    smmu.drain_events(|event| match event {
        Event::Fault(f) if f.stream == stream => faults += 1,
        _ => others += 1,
    })?;
    if faults + others != 0 {
        return Err(SelfCheckError::Mismatch(
            "the mapped transfers raised SMMU events",
        ));
    }
    edu_dma(regs, edu::BUFFER, 0x3000, edu::DMA_TO_MEMORY)?;
    let mut translation_faults = 0;
    smmu.drain_events(|event| match event {
        Event::Fault(f)
            if f.stream == stream
                && f.kind == smmuv3::FaultKind::Translation
                && f.address & !0xfff == 0x3000
                && !f.stage2 =>
        {
            translation_faults += 1
        }
        _ => others += 1,
    })?;
    if translation_faults == 0 || others != 0 {
        return Err(SelfCheckError::Mismatch(
            "the write to unmapped VA 0x3000 did not raise (only) stage-1 translation faults",
        ));
    }
    Ok(())
}

/// One edu transfer of [`DMA_CHECK_BYTES`], waited for.
fn edu_dma(regs: usize, source: u64, destination: u64, flags: u64) -> Result<(), SelfCheckError> {
    let write = |offset: usize, value: u64| {
        // SAFETY: edu's BAR0, mapped as device memory (see the caller);
        // its DMA registers take 64-bit writes.
        unsafe { ((regs + offset) as *mut u64).write_volatile(value) }
    };
    let command = || {
        // SAFETY: As above.
        unsafe { ((regs + edu::DMA_COMMAND) as *const u64).read_volatile() }
    };
    write(edu::DMA_SOURCE, source);
    write(edu::DMA_DESTINATION, destination);
    write(edu::DMA_COUNT, DMA_CHECK_BYTES as u64);
    dsb();
    write(edu::DMA_COMMAND, edu::DMA_RUN | flags);
    if !timer::wait_until(edu::TIMEOUT_MS, || command() & edu::DMA_RUN == 0) {
        return Err(SelfCheckError::Mismatch("an edu transfer did not end"));
    }
    dsb();
    Ok(())
}
