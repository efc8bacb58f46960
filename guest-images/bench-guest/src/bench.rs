//! The benchmarks, and the `BENCH` lines that report them.
//!
//! Each benchmark runs its operation `warmup` times unmeasured, then
//! `iterations` times between two reads of the virtual counter, and prints
//!
//! ```text
//! BENCH <name> <iterations> <total_ticks> <ticks_per_op>
//! ```
//!
//! with `ticks_per_op` to two decimals. A benchmark whose hypervisor hook is
//! missing prints `BENCH <name> unsupported`, one that went wrong
//! `BENCH <name> error <why>`; neither is ever given a number.
//!
//! The measured stretch is also marked, with the benchmark's name, for the
//! `qemu-el-count` plugin ([`marker`]): the whole measured loop, or for
//! the benchmarks that time only part of each iteration (`counter-read`,
//! `virtual-eoi`) each timed part.
//!
//! Interrupts stay masked in PSTATE throughout: the guest polls the GIC's
//! CPU interface (ICC_IAR1_EL1, ICC_HPPIR1_EL1), and a vCPU waiting with
//! WFI is woken by a pending interrupt all the same.

use crate::blk::{BlkDevice, BlkError};
use crate::bootargs::Options;
use crate::counter;
use crate::gic::{self, GicError};
use crate::marker::{self, Name};
use aarch64_cpu::registers::{Writeable, CNTV_CTL_EL0, CNTV_CVAL_EL0};
use core::arch::asm;
use core::cell::Cell;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use guest_rt::firmware::{self, Status};
use guest_rt::{println, smp};

/// The null hypercall's function ID: SMC64 SiP service call 0, which
/// neither the hypervisor nor KVM implements, so both answer
/// `NOT_SUPPORTED` straight away.
pub const NULL_CALL: u32 = 0xC200_0000;
/// Vendor-specific hypervisor service (SMC64): move the calling vCPU to
/// another physical CPU, then return `SUCCESS`.
pub const MIGRATE_CALL: u32 = 0xC600_0001;
/// Vendor-specific hypervisor service (SMC64): force a VMID rollover (a new
/// generation), then return `SUCCESS`.
pub const VMID_ROLLOVER_CALL: u32 = 0xC600_0002;

/// virtio-mmio slot 0's MagicValue register and what it reads.
const VIRTIO_MAGIC_ADDRESS: u64 = 0x0A00_0000;
const VIRTIO_MAGIC: u32 = 0x7472_6976;

/// The SGI the guest sends itself (virtual EOI and self-SGI benchmarks).
pub const SELF_SGI: u32 = 1;
/// The SGI vCPU 0 sends vCPU 1 (virtual IPI).
pub const IPI_SGI: u32 = 2;
/// The SGI vCPU 1 answers with.
pub const REPLY_SGI: u32 = 3;
/// The EL1 virtual timer's PPI.
pub const VTIMER_PPI: u32 = 27;

/// How far ahead the virtual timer is programmed: 2000 ticks, far more than
/// the few instructions between programming it and polling for it.
const VTIMER_AHEAD: u64 = 2000;

/// How long any single wait may take before it is an error: 1 s of counter
/// at 1 GHz (a billion instructions under `-icount shift=0`).
const WAIT_TICKS: u64 = 1_000_000_000;

/// What went wrong in a benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A call answered other than expected.
    Answer {
        /// The call.
        call: &'static str,
        /// What it answered.
        got: Status,
    },
    /// A register read returned other than expected.
    Read {
        /// The register.
        what: &'static str,
        /// The value read.
        got: u64,
        /// The value expected.
        expected: u64,
    },
    /// A wait lasted longer than [`WAIT_TICKS`].
    Timeout(&'static str),
    /// The GIC could not be set up.
    Gic(GicError),
    /// The benchmark needs a second vCPU.
    OneVcpu,
    /// vCPU 1 could not set up its GIC (it printed why).
    PeerSetup,
    /// The virtio-blk device misbehaved or answered a request wrongly.
    Blk(BlkError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answer { call, got } => write!(f, "{call} answered {got}"),
            Self::Read {
                what,
                got,
                expected,
            } => write!(f, "{what} read {got:#x}, expected {expected:#x}"),
            Self::Timeout(what) => write!(f, "timed out waiting for {what}"),
            Self::Gic(e) => write!(f, "GIC: {e}"),
            Self::OneVcpu => f.write_str("needs a second vCPU"),
            Self::PeerSetup => f.write_str("vCPU 1 could not set up its GIC"),
            Self::Blk(e) => write!(f, "{e}"),
        }
    }
}

impl From<GicError> for Failure {
    fn from(e: GicError) -> Self {
        Self::Gic(e)
    }
}

impl From<BlkError> for Failure {
    fn from(e: BlkError) -> Self {
        Self::Blk(e)
    }
}

/// How a benchmark ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Measured: counter ticks over all the measured iterations.
    Measured(u64),
    /// The hypervisor does not implement the hook the benchmark needs.
    Unsupported,
}

/// One benchmark.
#[derive(Clone, Copy)]
pub struct Bench {
    /// The name in `BENCH` lines and `only=`.
    pub name: &'static str,
    /// The same, for the markers around what it measures.
    marker: Name,
    /// Runs it.
    run: fn(&Context) -> Result<Outcome, Failure>,
}

impl Bench {
    const fn new(name: &'static str, run: fn(&Context) -> Result<Outcome, Failure>) -> Self {
        Self {
            name,
            marker: Name::new(name),
            run,
        }
    }
}

impl fmt::Debug for Bench {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What every benchmark runs with.
#[derive(Debug)]
pub struct Context {
    /// Iteration counts.
    pub options: Options,
    /// vCPU 0's MPIDR affinity.
    pub self_mpidr: u64,
    /// vCPU 1's, if the VM has one.
    pub peer_mpidr: Option<u64>,
    /// The running benchmark's name, for the markers.
    pub window: Cell<Name>,
}

/// Every benchmark, in the order they run. The first two calibrate: the
/// loop's own cost, and the cost of the counter read around one operation.
pub const BENCHES: &[Bench] = &[
    Bench::new("loop-nop", loop_nop),
    Bench::new("counter-read", counter_read),
    Bench::new("hvc-null", hvc_null),
    Bench::new("mmio-virtio", mmio_virtio),
    Bench::new("mmio-gicd", mmio_gicd),
    Bench::new("virtual-eoi", virtual_eoi),
    Bench::new("sgi-self", sgi_self),
    Bench::new("vtimer-latency", vtimer_latency),
    Bench::new("virtual-ipi", virtual_ipi),
    Bench::new("vcpu-migrate", |cx| hook(cx, "vcpu-migrate", MIGRATE_CALL)),
    Bench::new("vmid-rollover", |cx| {
        hook(cx, "vmid-rollover", VMID_ROLLOVER_CALL)
    }),
    // Last, so that the device it starts cannot change what the others
    // measure.
    Bench::new("blk-notify", blk_notify),
];

/// Runs `bench` and prints its line.
pub fn run_and_report(bench: &Bench, cx: &Context) {
    let iterations = cx.options.iterations;
    cx.window.set(bench.marker);
    match (bench.run)(cx) {
        Ok(Outcome::Measured(total)) => {
            // Hundredths of a tick per operation, in 128 bits so no total
            // can overflow.
            let hundredths = u128::from(total) * 100 / u128::from(iterations);
            println!(
                "BENCH {} {iterations} {total} {}.{:02}",
                bench.name,
                hundredths / 100,
                hundredths % 100
            );
        }
        Ok(Outcome::Unsupported) => println!("BENCH {} unsupported", bench.name),
        Err(failure) => println!("BENCH {} error {failure}", bench.name),
    }
}

impl Context {
    /// Runs `op` `warmup` times, then `iterations` times between two
    /// counter reads; returns the ticks between them. The measured loop is
    /// one marked window.
    fn timed(&self, mut op: impl FnMut() -> Result<(), Failure>) -> Result<u64, Failure> {
        for _ in 0..self.options.warmup {
            op()?;
        }
        let window = self.window.get();
        marker::start(window);
        let start = counter::now();
        for _ in 0..self.options.iterations {
            op()?;
        }
        let end = counter::now();
        marker::end(window);
        Ok(end.wrapping_sub(start))
    }

    /// Like [`Context::timed`], but only `op` is timed in each iteration,
    /// not `prepare` before it; returns the sum of `op`'s times. Each
    /// measured `op` is a marked window (of the same name).
    fn timed_each(
        &self,
        mut prepare: impl FnMut() -> Result<(), Failure>,
        mut op: impl FnMut() -> Result<(), Failure>,
    ) -> Result<u64, Failure> {
        let window = self.window.get();
        let mut once = |measured: bool| -> Result<u64, Failure> {
            prepare()?;
            if measured {
                marker::start(window);
            }
            let start = counter::now();
            op()?;
            let end = counter::now();
            if measured {
                marker::end(window);
            }
            Ok(end.wrapping_sub(start))
        };
        for _ in 0..self.options.warmup {
            once(false)?;
        }
        let mut total = 0u64;
        for _ in 0..self.options.iterations {
            total = total.wrapping_add(once(true)?);
        }
        Ok(total)
    }

    /// The ICC_SGI1R_EL1 value that sends `intid` to this vCPU.
    fn self_sgi(&self, intid: u32) -> u64 {
        gic::sgi_value(self.self_mpidr, intid)
    }
}

/// Polls until `condition` holds, for at most [`WAIT_TICKS`].
fn wait_for(what: &'static str, mut condition: impl FnMut() -> bool) -> Result<(), Failure> {
    let start = counter::now();
    while !condition() {
        if counter::elapsed(start, WAIT_TICKS) {
            return Err(Failure::Timeout(what));
        }
    }
    Ok(())
}

/// The loop alone: one NOP per iteration. Under `-icount shift=0` its
/// ticks per operation are the loop's instructions per iteration.
fn loop_nop(cx: &Context) -> Result<Outcome, Failure> {
    cx.timed(|| {
        // SAFETY: A NOP.
        unsafe { asm!("nop", options(nomem, nostack)) };
        Ok(())
    })
    .map(Outcome::Measured)
}

/// Two counter reads back to back: what [`Context::timed_each`] adds to
/// every operation it times.
fn counter_read(cx: &Context) -> Result<Outcome, Failure> {
    cx.timed_each(|| Ok(()), || Ok(())).map(Outcome::Measured)
}

/// (1) A hypercall the hypervisor answers at once: the round trip of an
/// exit to the hypervisor and back.
fn hvc_null(cx: &Context) -> Result<Outcome, Failure> {
    let got = Status::from_x0(firmware::hvc(NULL_CALL, [0; 3]));
    if got != Status::NOT_SUPPORTED {
        return Err(Failure::Answer {
            call: "HVC 0xc2000000",
            got,
        });
    }
    cx.timed(|| {
        firmware::hvc(NULL_CALL, [0; 3]);
        Ok(())
    })
    .map(Outcome::Measured)
}

fn read32(address: u64) -> u32 {
    // SAFETY: `address` is a device register in the device window that
    // `mmu` maps; reading it has no side effects.
    unsafe { (address as *const u32).read_volatile() }
}

/// (2) An MMIO read that the hypervisor emulates (under KVM: that its VMM
/// answers in user space): virtio-mmio slot 0's MagicValue.
fn mmio_virtio(cx: &Context) -> Result<Outcome, Failure> {
    let got = read32(VIRTIO_MAGIC_ADDRESS);
    if got != VIRTIO_MAGIC {
        return Err(Failure::Read {
            what: "virtio-mmio slot 0 MagicValue",
            got: got.into(),
            expected: VIRTIO_MAGIC.into(),
        });
    }
    cx.timed(|| {
        read32(VIRTIO_MAGIC_ADDRESS);
        Ok(())
    })
    .map(Outcome::Measured)
}

/// (3) An MMIO read of the emulated GIC distributor (under KVM: the
/// in-kernel vGIC): GICD_IIDR.
fn mmio_gicd(cx: &Context) -> Result<Outcome, Failure> {
    cx.timed(|| {
        read32(gic::GICD_IIDR_ADDRESS);
        Ok(())
    })
    .map(Outcome::Measured)
}

/// Acknowledges the interrupt expected pending and checks it was `intid`.
fn acknowledge_expecting(intid: u32) -> Result<(), Failure> {
    let got = gic::acknowledge();
    if got != gic::SPURIOUS {
        gic::end_of_interrupt(got);
    }
    if got == intid {
        Ok(())
    } else {
        Err(Failure::Read {
            what: "ICC_IAR1_EL1",
            got: got.into(),
            expected: intid.into(),
        })
    }
}

/// (4) Virtual EOI: a self-sent SGI, once pending, is acknowledged and
/// ended; only the acknowledge and the EOI are timed. With the vGIC's list
/// registers neither should leave the guest.
fn virtual_eoi(cx: &Context) -> Result<Outcome, Failure> {
    let sgi = cx.self_sgi(SELF_SGI);
    cx.timed_each(
        || {
            gic::send_sgi(sgi);
            wait_for("the self-sent SGI to be pending", || {
                gic::highest_pending() == SELF_SGI
            })
        },
        || acknowledge_expecting(SELF_SGI),
    )
    .map(Outcome::Measured)
}

/// A self-sent SGI from the write of ICC_SGI1R_EL1 (which traps) through
/// its acknowledge and EOI.
fn sgi_self(cx: &Context) -> Result<Outcome, Failure> {
    let sgi = cx.self_sgi(SELF_SGI);
    cx.timed(|| {
        gic::send_sgi(sgi);
        wait_for("the self-sent SGI to be pending", || {
            gic::highest_pending() == SELF_SGI
        })?;
        acknowledge_expecting(SELF_SGI)
    })
    .map(Outcome::Measured)
}

/// (6) Virtual timer latency: the counter ticks from the programmed
/// CNTV_CVAL_EL0 to the moment the guest acknowledges the timer's PPI
/// (polling ICC_IAR1_EL1, interrupts masked). Each run then turns the timer
/// off and ends the interrupt.
fn vtimer_latency(cx: &Context) -> Result<Outcome, Failure> {
    let once = || -> Result<u64, Failure> {
        let deadline = counter::now() + VTIMER_AHEAD;
        CNTV_CVAL_EL0.set(deadline);
        CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET);
        let start = counter::now();
        let seen = loop {
            let intid = gic::acknowledge();
            if intid == VTIMER_PPI {
                break counter::now();
            }
            if intid != gic::SPURIOUS {
                gic::end_of_interrupt(intid);
                CNTV_CTL_EL0.set(0);
                return Err(Failure::Read {
                    what: "ICC_IAR1_EL1",
                    got: intid.into(),
                    expected: VTIMER_PPI.into(),
                });
            }
            if counter::elapsed(start, WAIT_TICKS) {
                CNTV_CTL_EL0.set(0);
                return Err(Failure::Timeout("the virtual timer's interrupt"));
            }
        };
        // Off first, so the level is low by the time the EOI lets the
        // hypervisor sample it again.
        CNTV_CTL_EL0.set(0);
        gic::end_of_interrupt(VTIMER_PPI);
        Ok(seen.wrapping_sub(deadline))
    };
    for _ in 0..cx.options.warmup {
        once()?;
    }
    // One window around the measured runs (their polling included).
    let window = cx.window.get();
    marker::start(window);
    let mut total = 0u64;
    for _ in 0..cx.options.iterations {
        total = total.wrapping_add(once()?);
    }
    marker::end(window);
    Ok(Outcome::Measured(total))
}

/// vCPU 1 has set up its GIC and waits for IPIs.
static IPI_READY: AtomicBool = AtomicBool::new(false);
/// IPIs vCPU 1 has answered, checked by vCPU 0 after every round trip.
static IPI_REPLIES: AtomicU64 = AtomicU64::new(0);
/// vCPU 0's request that vCPU 1 turn itself off at the next IPI.
static IPI_STOP: AtomicBool = AtomicBool::new(false);
/// vCPU 1 saw the stop request and is about to call CPU_OFF.
static IPI_STOPPED: AtomicBool = AtomicBool::new(false);
/// vCPU 1 could not set up its GIC.
static IPI_SETUP_FAILED: AtomicBool = AtomicBool::new(false);
/// vCPU 0's MPIDR affinity, where vCPU 1's replies go.
static IPI_REPLY_TO: AtomicU64 = AtomicU64::new(0);

/// Most wake-ups from WFI without the awaited SGI before a wait is an
/// error (WFI may end for no reason at all, Arm ARM D1.6.2).
const MAX_WAKEUPS: u32 = 1 << 20;

/// Waits in WFI until SGI `intid` is acknowledged, and ends it.
fn wait_for_sgi(intid: u32) -> Result<(), Failure> {
    for _ in 0..MAX_WAKEUPS {
        aarch64_cpu::asm::wfi();
        match gic::acknowledge() {
            gic::SPURIOUS => {}
            got => {
                gic::end_of_interrupt(got);
                return if got == intid {
                    Ok(())
                } else {
                    Err(Failure::Read {
                        what: "ICC_IAR1_EL1",
                        got: got.into(),
                        expected: intid.into(),
                    })
                };
            }
        }
    }
    Err(Failure::Timeout("an SGI (too many wake-ups without it)"))
}

/// (5) Virtual IPI, a ping-pong: vCPU 0 sends SGI 2 to vCPU 1 and waits in
/// WFI; vCPU 1, waiting in WFI, acknowledges it, ends it, counts it in
/// shared memory and answers with SGI 3, which wakes vCPU 0. One operation
/// is one round trip: two IPIs, each waking a halted vCPU.
///
/// Both sides wait in WFI rather than spinning: under QEMU's
/// single-threaded `-icount` emulation a spinning CPU keeps the others
/// from running until its time slice ends, so a spinning waiter would
/// measure QEMU's slices rather than the hypervisor. vCPU 1 is started for
/// this benchmark and turned off after it.
fn virtual_ipi(cx: &Context) -> Result<Outcome, Failure> {
    let peer = cx.peer_mpidr.ok_or(Failure::OneVcpu)?;
    IPI_READY.store(false, Ordering::Relaxed);
    IPI_REPLIES.store(0, Ordering::Relaxed);
    IPI_STOP.store(false, Ordering::Relaxed);
    IPI_STOPPED.store(false, Ordering::Relaxed);
    IPI_SETUP_FAILED.store(false, Ordering::Relaxed);
    IPI_REPLY_TO.store(cx.self_mpidr, Ordering::Release);
    let status = firmware::cpu_on(peer, 1);
    if status != Status::SUCCESS {
        return Err(Failure::Answer {
            call: "PSCI CPU_ON of vCPU 1",
            got: status,
        });
    }
    wait_for("vCPU 1 to set up its GIC", || {
        IPI_READY.load(Ordering::Acquire) || IPI_SETUP_FAILED.load(Ordering::Acquire)
    })?;
    if IPI_SETUP_FAILED.load(Ordering::Acquire) {
        return Err(Failure::PeerSetup);
    }
    let sgi = gic::sgi_value(peer, IPI_SGI);
    let mut sent = 0u64;
    let result = cx.timed(|| {
        sent += 1;
        gic::send_sgi(sgi);
        wait_for_sgi(REPLY_SGI)?;
        let replies = IPI_REPLIES.load(Ordering::Acquire);
        if replies == sent {
            Ok(())
        } else {
            Err(Failure::Read {
                what: "vCPU 1's reply count",
                got: replies,
                expected: sent,
            })
        }
    });
    // vCPU 1 leaves at the next IPI, whatever happened.
    IPI_STOP.store(true, Ordering::Release);
    gic::send_sgi(sgi);
    let stopped = wait_for("vCPU 1 to stop", || IPI_STOPPED.load(Ordering::Acquire));
    let total = result?;
    stopped?;
    Ok(Outcome::Measured(total))
}

/// vCPU 1's part of [`virtual_ipi`]: answers IPIs until asked to stop, then
/// turns itself off.
pub fn ipi_responder() -> ! {
    if let Err(e) = gic::enable_cpu(smp::current_mpidr(), 1 << IPI_SGI) {
        println!("BENCH-FAIL vcpu 1: GIC: {e}");
        IPI_SETUP_FAILED.store(true, Ordering::Release);
        smp::park()
    }
    let reply = gic::sgi_value(IPI_REPLY_TO.load(Ordering::Acquire), REPLY_SGI);
    IPI_READY.store(true, Ordering::Release);
    loop {
        aarch64_cpu::asm::wfi();
        loop {
            let intid = gic::acknowledge();
            if intid == gic::SPURIOUS {
                break;
            }
            gic::end_of_interrupt(intid);
            if intid != IPI_SGI {
                continue;
            }
            if IPI_STOP.load(Ordering::Acquire) {
                IPI_STOPPED.store(true, Ordering::Release);
                let status = firmware::cpu_off();
                println!("BENCH-FAIL vcpu 1: CPU_OFF answered {status}");
                smp::park()
            }
            IPI_REPLIES.fetch_add(1, Ordering::Release);
            gic::send_sgi(reply);
        }
    }
}

/// (7), (8) A hypervisor hook behind a vendor-specific hypercall: measured
/// if the hypervisor answers `SUCCESS`, unsupported if `NOT_SUPPORTED`.
fn hook(cx: &Context, name: &'static str, function: u32) -> Result<Outcome, Failure> {
    match Status::from_x0(firmware::hvc(function, [0; 3])) {
        Status::SUCCESS => {}
        Status::NOT_SUPPORTED => return Ok(Outcome::Unsupported),
        got => return Err(Failure::Answer { call: name, got }),
    }
    cx.timed(|| match Status::from_x0(firmware::hvc(function, [0; 3])) {
        Status::SUCCESS => Ok(()),
        got => Err(Failure::Answer { call: name, got }),
    })
    .map(Outcome::Measured)
}

/// (9) A virtio queue notification round trip: one `VIRTIO_BLK_T_GET_ID`
/// request to the virtio-blk device in virtio-mmio slot 0, from making it
/// available through the QueueNotify write (which traps) to the used ring
/// showing the answer, which is checked (see [`crate::blk`]). No interrupt
/// (`VIRTQ_AVAIL_F_NO_INTERRUPT`) and no disk I/O: the device answers from
/// its serial. `unsupported` when slot 0 holds no block device (the KVM
/// reference VMM's slots are all empty).
fn blk_notify(cx: &Context) -> Result<Outcome, Failure> {
    let Some(mut device) = BlkDevice::start()? else {
        return Ok(Outcome::Unsupported);
    };
    let total = cx.timed(|| device.get_id().map_err(Failure::Blk))?;
    // Dropping the device resets it.
    drop(device);
    Ok(Outcome::Measured(total))
}
