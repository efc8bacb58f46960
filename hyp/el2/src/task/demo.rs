//! The demonstration tasks of `hyp.demo-tasks=N`: small position-independent
//! programs that exercise scheduling, ASID rollovers, faults and doorbells.

use super::{created, Builder, Task};
use crate::lock::SpinMutex;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::arch::global_asm;
use log::{error, info};
use task_abi::{PAGE_SIZE, TASK_BASE};

// The demonstration programs: position-independent AArch64 code copied
// into a task's code pages (it is data to the hypervisor, hence .rodata).
// Each message is preceded by its length as a word, read PC-relative.
global_asm!(
    r#"
.section .rodata.task_programs, "a"
.balign 4

// x0 = iterations, x1 = a token unique to the task. Keeps the token and
// its count on its stack, spins a little, yields, and checks after every
// yield that its stack still holds its own token: all tasks use the same
// virtual addresses, so a stale translation (a TLB entry of another task's
// ASID) would show another task's stack here.
.global task_worker_start
task_worker_start:
    mov     x19, x0
    mov     x20, x1
    mov     x21, #0
    stp     x20, x21, [sp, #-16]!
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
1:  mov     x9, #{spin}
2:  subs    x9, x9, #1
    b.ne    2b
    mov     x8, #{yield_}
    svc     #0
    ldr     x10, [sp]
    cmp     x10, x20
    b.ne    8f
    add     x21, x21, #1
    str     x21, [sp, #8]
    cmp     x21, x19
    b.lo    1b
    adr     x0, 91f + 4
    ldr     w1, 91f
    mov     x8, #{log}
    svc     #0
    mov     x0, #0
    b       9f
8:  adr     x0, 92f + 4
    ldr     w1, 92f
    mov     x8, #{log}
    svc     #0
    mov     x0, #1
9:  mov     x8, #{exit}
    svc     #0
    brk     #0
90: .word   97f - 90b - 4
    .ascii  "started"
97: .balign 4
91: .word   97f - 91b - 4
    .ascii  "done: its stack held its own token after every yield"
97: .balign 4
92: .word   97f - 92b - 4
    .ascii  "FAIL: its stack holds something else after a yield"
97: .balign 4
.global task_worker_end
task_worker_end:

// Writes into the hypervisor's image, mapped privileged-only in its table:
// a permission fault, which must stop it and nothing else.
.global task_faulter_start
task_faulter_start:
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
    movz    x2, #0x4008, lsl #16
    str     x0, [x2]
    adr     x0, 91f + 4
    ldr     w1, 91f
    mov     x8, #{log}
    svc     #0
    mov     x0, #1
    mov     x8, #{exit}
    svc     #0
90: .word   97f - 90b - 4
    .ascii  "writing to the hypervisor's image at 0x40080000"
97: .balign 4
91: .word   97f - 91b - 4
    .ascii  "FAIL: the write went through"
97: .balign 4
.global task_faulter_end
task_faulter_end:

// Asks the hypervisor to log 16 bytes of the hypervisor's own image: the
// copy's bounds check must refuse it and stop the task.
.global task_bad_log_start
task_bad_log_start:
    movz    x0, #0x4008, lsl #16
    mov     x1, #16
    mov     x8, #{log}
    svc     #0
    mov     x0, #1
    mov     x8, #{exit}
    svc     #0
.global task_bad_log_end
task_bad_log_end:

// x0 = iterations of a loop without system calls: only the EL2 timer's
// end of its time slice takes the CPU from it.
.global task_spinner_start
task_spinner_start:
1:  subs    x0, x0, #1
    b.ne    1b
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
    mov     x0, #0
    mov     x8, #{exit}
    svc     #0
90: .word   97f - 90b - 4
    .ascii  "spun to the end without a system call"
97: .balign 4
.global task_spinner_end
task_spinner_end:

// x0 = rings to wait for on doorbell 0.
.global task_waiter_start
task_waiter_start:
    mov     x19, x0
1:  mov     x0, #0
    mov     x8, #{wait}
    svc     #0
    subs    x19, x19, #1
    b.ne    1b
    adr     x0, 90f + 4
    ldr     w1, 90f
    mov     x8, #{log}
    svc     #0
    mov     x0, #0
    mov     x8, #{exit}
    svc     #0
90: .word   97f - 90b - 4
    .ascii  "woken by every ring"
97: .balign 4
.global task_waiter_end
task_waiter_end:

// x0 = rings of doorbell 0, a yield after each.
.global task_signaller_start
task_signaller_start:
    mov     x19, x0
1:  mov     x0, #0
    mov     x8, #{signal}
    svc     #0
    mov     x8, #{yield_}
    svc     #0
    subs    x19, x19, #1
    b.ne    1b
    mov     x0, #0
    mov     x8, #{exit}
    svc     #0
.global task_signaller_end
task_signaller_end:
"#,
    log = const task_abi::Number::Log as u64,
    exit = const task_abi::Number::Exit as u64,
    yield_ = const task_abi::Number::Yield as u64,
    wait = const task_abi::Number::Wait as u64,
    signal = const task_abi::Number::Signal as u64,
    spin = const 20_000,
);

unsafe extern "C" {
    static task_worker_start: u8;
    static task_worker_end: u8;
    static task_faulter_start: u8;
    static task_faulter_end: u8;
    static task_bad_log_start: u8;
    static task_bad_log_end: u8;
    static task_spinner_start: u8;
    static task_spinner_end: u8;
    static task_waiter_start: u8;
    static task_waiter_end: u8;
    static task_signaller_start: u8;
    static task_signaller_end: u8;
}

/// The bytes between two symbols of the image.
fn program(start: &'static u8, end: &'static u8) -> &'static [u8] {
    let start = core::ptr::from_ref(start);
    let len = (core::ptr::from_ref(end) as usize).saturating_sub(start as usize);
    // SAFETY: Both symbols bound one program in .rodata, start before end.
    unsafe { core::slice::from_raw_parts(start, len) }
}

/// Yields of each demonstration worker unless `hyp.demo-task-rounds` says.
pub const WORKER_ROUNDS: u64 = 200;

/// Rounds of a worker that runs until every VM has stopped
/// (`hyp.demo-task-rounds=forever`): more than it could ever make.
pub const ENDLESS: u64 = u64::MAX;

/// The tasks that run until every VM has stopped.
static RUN_UNTIL_VMS_STOP: SpinMutex<Vec<Weak<Task>>> = SpinMutex::new(Vec::new());

/// Makes `task` one that is asked to stop once every VM has stopped.
pub fn run_until_vms_stop(task: &Arc<Task>) {
    RUN_UNTIL_VMS_STOP.lock().push(Arc::downgrade(task));
}

/// Every VM has stopped: the tasks meant to run until then end too.
pub fn stop_endless() {
    for task in RUN_UNTIL_VMS_STOP.lock().drain(..) {
        if let Some(task) = task.upgrade() {
            task.request_stop();
        }
    }
}

/// Loop iterations of the demonstration spinner: a good many time slices
/// under QEMU's TCG.
const SPINS: u64 = 50_000_000;

/// Rings the demonstration waiter waits for.
const RINGS: u64 = 50;

/// Starts the demonstration tasks of `hyp.demo-tasks=N`: `N` workers, a task
/// that never makes a system call until its end, one that writes outside its map, one that asks to log hypervisor memory,
/// and a waiter with its signaller on doorbell 0.
pub fn start_demo(workers: usize, rounds: u64) {
    // SAFETY: Only the symbols' addresses are taken.
    let (worker, spinner, faulter, bad_log, waiter, signaller) = unsafe {
        (
            program(&task_worker_start, &task_worker_end),
            program(&task_spinner_start, &task_spinner_end),
            program(&task_faulter_start, &task_faulter_end),
            program(&task_bad_log_start, &task_bad_log_end),
            program(&task_waiter_start, &task_waiter_end),
            program(&task_signaller_start, &task_signaller_end),
        )
    };
    let mut tasks: Vec<(String, &[u8], [u64; 2])> = (0..workers)
        .map(|i| {
            (
                alloc::format!("worker{i}"),
                worker,
                [rounds, 0x7a5c_0000 + i as u64],
            )
        })
        .collect();
    tasks.push(("spinner".into(), spinner, [SPINS, 0]));
    tasks.push(("faulter".into(), faulter, [0, 0]));
    tasks.push(("bad-log".into(), bad_log, [0, 0]));
    tasks.push(("waiter".into(), waiter, [RINGS, 0]));
    tasks.push(("signaller".into(), signaller, [RINGS, 0]));
    for (name, program, args) in tasks {
        match demo_task(&name, program, args) {
            Ok(task) => {
                created();
                if args[0] == ENDLESS {
                    run_until_vms_stop(&task);
                }
                crate::sched::enqueue_task(task);
            }
            Err(e) => error!("task \"{name}\": not started: {e}"),
        }
    }
    info!(
        "demo tasks: {workers} worker(s), a spinner, a faulter, a bad logger, a waiter and its signaller"
    );
}

/// A demonstration task: `program` as its code, one page of stack.
fn demo_task(
    name: &str,
    program: &[u8],
    args: [u64; 2],
) -> Result<alloc::sync::Arc<super::Task>, super::TaskError> {
    let mut builder = Builder::new(name)?;
    builder.code(program)?;
    builder.stack(PAGE_SIZE)?;
    builder.build(TASK_BASE, [args[0], args[1], 0, 0])
}
