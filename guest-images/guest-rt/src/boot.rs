//! Entry: the arm64 image header and the code every vCPU runs before Rust
//! (MMU on, vectors, stack), instantiated by [`entry!`](crate::entry).
//!
//! Loaders follow the Linux arm64 boot protocol
//! (Documentation/arch/arm64/booting.rst): vCPU 0 enters `_start` at EL1h
//! with the MMU and caches off, DAIF masked and x0 = the device tree; a vCPU
//! started by PSCI `CPU_ON` enters `secondary_entry` the same way with x0 =
//! the context ID, which is its vCPU index here.
//!
//! Nothing is written to memory while the MMU is off: the first stores happen
//! with the MMU and caches on, on the compile-time tables of [`crate::mmu`].
//! vCPU 0 then zeroes `.bss`, and each vCPU takes its own stack and calls
//! [`Guest::primary_main`] or [`Guest::secondary_main`].

use crate::exceptions::Frame;

/// Where the image is linked (see `linker/guest.ld`) and must be loaded:
/// RAM base 0x4000_0000 plus [`TEXT_OFFSET`].
pub const LINK_ADDRESS: u64 = 0x4008_0000;

/// `text_offset` of the arm64 image header: where above a 2 MiB-aligned RAM
/// base the loader must place the image.
pub const TEXT_OFFSET: u64 = 0x8_0000;

/// Image header flags: little-endian (bit 0 = 0), 4 KiB pages (bits 2:1 =
/// 0b01), placed as close as possible to the base of RAM (bit 3 = 0).
pub const IMAGE_FLAGS: u64 = 0b0010;

/// "ARM\x64", the magic number of the arm64 image header.
pub const IMAGE_MAGIC: u32 = 0x644d_5241;

/// CurrentEL value at EL1.
pub const CURRENT_EL1: u64 = 1 << 2;

/// What a guest brings to the shared start; named in [`entry!`](crate::entry).
pub trait Guest {
    /// Size of each vCPU's stack, a multiple of 16.
    const STACK_SIZE: usize;
    /// Width of the address space the guest's translation table maps
    /// (see [`crate::mmu::tcr`]).
    const VA_BITS: u32;

    /// vCPU 0's entry into Rust, with the device tree's address: MMU on, on
    /// its own stack, `.bss` zeroed.
    fn primary_main(dtb: u64) -> !;

    /// A secondary vCPU's entry into Rust, started by PSCI `CPU_ON` with its
    /// index (below [`crate::smp::MAX_VCPUS`], checked) as the context ID.
    fn secondary_main(index: usize) -> !;

    /// Every exception vector's handler: `vector` is the vector's index (Arm
    /// ARM D1.3.1, see [`crate::exceptions::SYNC_CURRENT_EL_SPX`]), `frame`
    /// the interrupted registers. Returning resumes at `frame.elr` with
    /// `frame`'s registers.
    fn exception(vector: u64, frame: &mut Frame);
}

/// Instantiates the entry code for a [`Guest`]: the arm64 image header at
/// `_start`, `secondary_entry`, the stacks, and the symbols the entry code
/// and the vectors call into Rust by.
///
/// ```ignore
/// guest_rt::entry! {
///     guest: BenchGuest,
///     translation_root: mmu::BOOT_L1,
///     fail_prefix: "BENCH-FAIL",
/// }
/// ```
///
/// `translation_root` is the static TTBR0_EL1 points at (an
/// [`L1Table`](crate::mmu::L1Table) or [`L0Table`](crate::mmu::L0Table)
/// that matches [`Guest::VA_BITS`]); `fail_prefix` starts the two messages
/// the entry code prints straight to the PL011 before parking, when it is
/// not entered at EL1 or a secondary's context ID is no vCPU index.
#[macro_export]
macro_rules! entry {
    (guest: $guest:ty, translation_root: $root:path, fail_prefix: $prefix:literal $(,)?) => {
        ::core::arch::global_asm!(
            r#"
.section .text.head, "ax"
.global _start
_start:
    // arm64 image header.
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
    adrp    x1, {root}
    add     x1, x1, :lo12:{root}
    msr     ttbr0_el1, x1
    ldr     x1, ={cpacr}
    msr     cpacr_el1, x1
    isb
    // Whatever the TLBs and the instruction cache hold is not ours.
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x1, ={sctlr}
    msr     sctlr_el1, x1
    isb

    adr     x1, exception_vectors
    msr     vbar_el1, x1
    msr     tpidr_el1, x20          // the vCPU index, for the exception handler
    isb

    cbnz    x20, 1f
    // vCPU 0 zeroes .bss (a warm reset keeps RAM as it was), before any
    // vCPU uses it: the others are started later, by vCPU 0.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
0:  cmp     x1, x2
    b.hs    1f
    stp     xzr, xzr, [x1], #16
    b       0b

1:  // SP = top of this vCPU's stack.
    adrp    x1, vcpu_stacks
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

// Prints the NUL-terminated message at x1 straight to the PL011 data
// register (MMU off, no stack yet), then parks.
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
"#,
            concat!(
                "wrong_el_message:\n",
                "    .asciz  \"", $prefix, " boot: not entered at EL1\\r\\n\"\n",
                "bad_index_message:\n",
                "    .asciz  \"", $prefix,
                " boot: secondary entered with a context ID that is no vCPU index\\r\\n\"\n",
                "    .balign 4\n",
            ),
            r#"
.section .stacks, "aw", %nobits
.balign 16
vcpu_stacks:
    .space  {stacks_size}
"#,
            text_offset = const $crate::boot::TEXT_OFFSET,
            flags = const $crate::boot::IMAGE_FLAGS,
            magic = const $crate::boot::IMAGE_MAGIC,
            max_vcpus = const $crate::smp::MAX_VCPUS,
            current_el1 = const $crate::boot::CURRENT_EL1,
            mair = const $crate::mmu::MAIR,
            tcr = const $crate::mmu::tcr(<$guest as $crate::Guest>::VA_BITS),
            root = sym $root,
            cpacr = const $crate::mmu::CPACR,
            sctlr = const $crate::mmu::SCTLR,
            stack_size = const <$guest as $crate::Guest>::STACK_SIZE,
            stacks_size = const <$guest as $crate::Guest>::STACK_SIZE * $crate::smp::MAX_VCPUS,
            uart = const $crate::console::PL011_BASE,
        );

        // In an unnamed constant, so that the guest may use these names.
        const _: () = {
            /// vCPU 0's entry into Rust, called by `_start`.
            #[unsafe(no_mangle)]
            extern "C" fn primary_main(dtb: u64) -> ! {
                <$guest as $crate::Guest>::primary_main(dtb)
            }

            /// A secondary vCPU's entry into Rust, called by `secondary_entry`
            /// once it checked that the index is below `MAX_VCPUS`.
            #[unsafe(no_mangle)]
            extern "C" fn secondary_main(index: u64) -> ! {
                <$guest as $crate::Guest>::secondary_main(index as usize)
            }

            /// Called by every exception vector.
            #[unsafe(no_mangle)]
            extern "C" fn handle_exception(vector: u64, frame: &mut $crate::exceptions::Frame) {
                <$guest as $crate::Guest>::exception(vector, frame)
            }
        };
    };
}

#[cfg(target_os = "none")]
unsafe extern "C" {
    /// Where PSCI `CPU_ON` starts a secondary vCPU (x0 = its index), defined
    /// by [`entry!`](crate::entry).
    fn secondary_entry() -> !;
    /// First byte of the image (`linker/guest.ld`).
    static __image_start: u8;
    /// End of the image in memory: `.bss` and the stacks included.
    static __image_end: u8;
}

/// The address of the secondary entry point, for `CPU_ON`.
#[cfg(target_os = "none")]
pub fn secondary_entry_address() -> u64 {
    secondary_entry as *const () as u64
}

/// `[start, end)` of the image in memory, `.bss` and stacks included.
#[cfg(target_os = "none")]
pub fn image_range() -> (u64, u64) {
    // Only the symbols' addresses are taken, which is safe.
    (
        core::ptr::addr_of!(__image_start) as u64,
        core::ptr::addr_of!(__image_end) as u64,
    )
}
