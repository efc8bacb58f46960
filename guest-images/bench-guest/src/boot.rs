//! Entry: the arm64 image header, the code every vCPU runs before Rust
//! (MMU on, vectors, stack), and the exception vectors.
//!
//! Loaders follow the Linux arm64 boot protocol
//! (Documentation/arch/arm64/booting.rst): vCPU 0 enters `_start` at EL1h
//! with the MMU off, DAIF masked and x0 = the device tree; a vCPU started by
//! PSCI `CPU_ON` enters `secondary_entry` the same way with x0 = the context
//! ID, its vCPU index here. Nothing is stored while the MMU is off.
//!
//! The guest never takes an exception on purpose (interrupts stay masked and
//! are polled), so every vector reports the exception and powers off.

use crate::{console, firmware, mmu, smp};
use core::arch::global_asm;

/// `text_offset` of the image header: where above a 2 MiB-aligned RAM base
/// the loader places the image (see `linker/bench-guest.ld`).
const TEXT_OFFSET: u64 = 0x8_0000;

/// Image header flags: little-endian, 4 KiB pages (bits 2:1 = 0b01),
/// placed as close as possible to the base of RAM.
const IMAGE_FLAGS: u64 = 0b0010;

/// "ARM\x64", the image header's magic number.
const IMAGE_MAGIC: u32 = 0x644d_5241;

/// Size of each vCPU's stack.
const STACK_SIZE: usize = 16 * 1024;

/// CurrentEL value at EL1.
const CURRENT_EL1: u64 = 1 << 2;

global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    b       primary_entry           // code0
    .word   0                       // code1
    .quad   {text_offset}
    .quad   __image_size
    .quad   {flags}
    .quad   0, 0, 0                 // res2..res4
    .word   {magic}
    .word   0                       // res5

primary_entry:
    mov     x19, x0                 // x19 = device tree
    mov     x20, xzr                // x20 = vCPU index
    b       common_entry

.global secondary_entry
secondary_entry:
    mov     x19, xzr
    mov     x20, x0                 // context ID = vCPU index
    cmp     x20, #{max_vcpus}
    adr     x1, bad_index_message
    b.hs    early_fail

common_entry:
    mrs     x1, CurrentEL
    cmp     x1, #{current_el1}
    adr     x1, wrong_el_message
    b.ne    early_fail

    ldr     x1, ={mair}
    msr     mair_el1, x1
    ldr     x1, ={tcr}
    mrs     x2, id_aa64mmfr0_el1
    ubfx    x2, x2, #0, #4          // PARange
    cmp     x2, #5                  // 48 bits is all a 4 KiB granule needs
    mov     x3, #5
    csel    x2, x2, x3, ls
    bfi     x1, x2, #32, #3         // TCR_EL1.IPS
    msr     tcr_el1, x1
    adrp    x1, {l1}
    add     x1, x1, :lo12:{l1}
    msr     ttbr0_el1, x1
    ldr     x1, ={cpacr}
    msr     cpacr_el1, x1
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x1, ={sctlr}
    msr     sctlr_el1, x1
    isb

    adr     x1, exception_vectors
    msr     vbar_el1, x1
    msr     tpidr_el1, x20          // the vCPU index
    isb

    cbnz    x20, 1f
    // vCPU 0 zeroes .bss before it starts any other vCPU.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
0:  cmp     x1, x2
    b.hs    1f
    stp     xzr, xzr, [x1], #16
    b       0b

1:  adrp    x1, vcpu_stacks
    add     x1, x1, :lo12:vcpu_stacks
    mov     x2, #{stack_size}
    madd    x1, x20, x2, x1
    add     sp, x1, x2

    cbnz    x20, 2f
    mov     x0, x19
    bl      primary_main
    b       park
2:  mov     x0, x20
    bl      secondary_main
    b       park

// Prints the NUL-terminated message at x1 straight to the PL011 (MMU off,
// no stack yet), then parks.
early_fail:
    ldr     x2, ={uart}
3:  ldrb    w3, [x1], #1
    cbz     w3, park
    strb    w3, [x2]
    b       3b

.global park
park:
    wfi
    b       park

wrong_el_message:
    .asciz  "BENCH-FAIL boot: not entered at EL1\r\n"
bad_index_message:
    .asciz  "BENCH-FAIL boot: secondary entered with a context ID that is no vCPU index\r\n"
    .balign 4

// Every vector: x0 = its index, x1..x3 = ESR, ELR, FAR; never returns.
.macro vector kind
    .balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    bl      unexpected_exception
    b       park
.endm

.section .text.vectors, "ax"
.balign 0x800
exception_vectors:
    .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    vector \kind
    .endr

.section .stacks, "aw", %nobits
.balign 16
vcpu_stacks:
    .space  {stacks_size}
"#,
    text_offset = const TEXT_OFFSET,
    flags = const IMAGE_FLAGS,
    magic = const IMAGE_MAGIC,
    max_vcpus = const smp::MAX_VCPUS,
    current_el1 = const CURRENT_EL1,
    mair = const mmu::MAIR,
    tcr = const mmu::TCR,
    l1 = sym mmu::BOOT_L1,
    cpacr = const mmu::CPACR,
    sctlr = const mmu::SCTLR,
    stack_size = const STACK_SIZE,
    stacks_size = const STACK_SIZE * smp::MAX_VCPUS,
    uart = const console::PL011_BASE,
);

unsafe extern "C" {
    /// Where PSCI `CPU_ON` starts a secondary vCPU (x0 = its index).
    fn secondary_entry() -> !;
}

/// The address of [`secondary_entry`], for `CPU_ON`.
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as u64
}

/// Called by every exception vector: the guest expects none.
#[unsafe(no_mangle)]
extern "C" fn unexpected_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    console::print_line_emergency(format_args!(
        "BENCH-FAIL unexpected exception on vcpu {}: vector {kind}, ESR {esr:#x}, ELR {elr:#x}, FAR {far:#x}",
        smp::current_index()
    ));
    firmware::system_off()
}
