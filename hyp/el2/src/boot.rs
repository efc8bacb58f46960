//! Entry from the boot loader: the arm64 image header, the EL2 checks, the
//! boot-time identity map and the switch to Rust, for the primary CPU and for
//! secondaries started through PSCI `CPU_ON`.
//!
//! Nothing is written to memory while the MMU is off: the primary enables the
//! MMU on a read-only, compile-time identity map before it touches its stack
//! or zeroes `.bss`, and a secondary reads its start-up record (cleaned to the
//! point of coherency by the primary) and enables the MMU on the final tables.
//! That way no cache maintenance is needed for data written with the caches
//! off (Arm ARM D8.2.12 "Behavior of caches at reset").

use aarch64_cpu::registers::{HCR_EL2, MAIR_EL2, SCTLR_EL1, TCR_EL1};
use aarch64_paging::descriptor::El1Attributes;
use core::arch::global_asm;

/// Link (and load) address of the image; see `linker/hyp.ld`.
const LOAD_ADDRESS: u64 = 0x4008_0000;

/// `text_offset` of the arm64 image header: where above a 2 MiB-aligned base
/// the loader must place us (Documentation/arch/arm64/booting.rst).
const TEXT_OFFSET: u64 = 0x8_0000;

/// arm64 image header flags: little-endian, 4 KiB pages, placed near the base of RAM.
const IMAGE_FLAGS: u64 = 0b0010;

/// "ARM\x64", the magic number of the arm64 image header.
const IMAGE_MAGIC: u32 = 0x644d_5241;

/// MAIR index of Device-nGnRE memory (MMIO).
pub const MAIR_DEVICE: u64 = 0;
/// MAIR index of Normal write-back cacheable memory.
pub const MAIR_NORMAL: u64 = 1;

/// The memory attribute indirection register: index 0 device, index 1 normal.
pub const MAIR: u64 = MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck.value
    | MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc.value
    | MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc.value;

/// HCR_EL2 while the hypervisor runs for itself: VHE host mode, so EL2 uses
/// the EL2&0 regime (whose stage-1 contexts carry ASIDs) and EL1-format
/// system registers (Arm ARM D5.11 "Virtualization Host Extensions").
pub const HCR_HOST: u64 = HCR_EL2::E2H::EnableOsAtEl2.value
    | HCR_EL2::TGE::EnableTrapGeneralExceptionsToEl2.value
    | HCR_EL2::RW::EL1IsAarch64.value;

/// TCR_EL2 for the final tables. With HCR_EL2.E2H = 1 the register has the
/// TCR_EL1 layout, hence the TCR_EL1 field definitions. TTBR1 walks are
/// disabled; IPS is filled in at run time from ID_AA64MMFR0_EL1.PARange.
const TCR_BASE: u64 = TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::EPD1::DisableTTBR1Walks.value;

/// T0SZ of the boot map: a 39-bit VA space, so translation starts at level 1
/// and one level-1 table of 1 GiB blocks covers the first 512 GiB.
const BOOT_TCR: u64 = TCR_BASE | TCR_EL1::T0SZ.val(25).value;

/// TCR_EL2 of the final tables, IPS aside: a 48-bit VA space starting at level 0.
pub const FINAL_TCR: u64 = TCR_BASE | TCR_EL1::T0SZ.val(16).value;

/// The SCTLR_EL1-layout bits that are RES1 in the base architecture: 11, 20,
/// 22, 23, 28 and 29 (EOS, TSCXT, EIS, SPAN, nTLSMD, LSMAOE in later
/// versions, where 1 keeps the base behaviour).
pub const SCTLR_RES1: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

/// SCTLR_EL2 with the MMU and both caches on. With E2H = 1 it has the
/// SCTLR_EL1 layout.
pub const SCTLR_MMU_ON: u64 = SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::I::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value
    | SCTLR_RES1;

/// CPTR_EL2 (CPACR_EL1 layout under VHE) with FPEN = 0b11: Rust code may use
/// FP/SIMD registers, so EL2 must not trap them.
const CPTR_FP_ON: u64 = 0b11 << 20;

/// A translation table: 512 descriptors, page-aligned.
#[repr(C, align(4096))]
pub struct BootTable([u64; 512]);

impl BootTable {
    /// An identity map of the first 512 GiB in 1 GiB blocks: the first GiB
    /// (where QEMU virt puts its MMIO) as device memory, the rest as normal
    /// memory. It only has to carry the primary CPU until the device tree
    /// has been read and the real tables are built.
    const fn identity_1g_blocks() -> Self {
        let device = El1Attributes::VALID.bits() as u64
            | El1Attributes::ACCESSED.bits() as u64
            | El1Attributes::UXN.bits() as u64
            | El1Attributes::PXN.bits() as u64
            | (MAIR_DEVICE << 2);
        let normal = El1Attributes::VALID.bits() as u64
            | El1Attributes::ACCESSED.bits() as u64
            | El1Attributes::INNER_SHAREABLE.bits() as u64
            | (MAIR_NORMAL << 2);
        let mut table = [0u64; 512];
        table[0] = device;
        let mut i = 1;
        while i < 512 {
            table[i] = ((i as u64) << 30) | normal;
            i += 1;
        }
        Self(table)
    }
}

/// The boot-time level-1 table; read-only, so it is correct in memory
/// straight from the image.
#[unsafe(no_mangle)]
static BOOT_L1: BootTable = BootTable::identity_1g_blocks();

/// What a secondary CPU needs before it can run Rust: written by the primary,
/// cleaned to the point of coherency, and read by `secondary_entry` with the
/// MMU and caches off, then handed to `secondary_main`. Field offsets are
/// used by the assembly below.
#[repr(C)]
#[derive(Debug)]
pub struct SecondaryBoot {
    /// TTBR0_EL2 value of the final tables.
    pub ttbr0: u64,
    /// TCR_EL2 value of the final tables.
    pub tcr: u64,
    /// Top of this CPU's stack.
    pub stack_top: u64,
    /// Guard page below that stack.
    pub stack_guard: u64,
    /// Logical CPU index.
    pub cpu_index: u64,
}

global_asm!(
    r#"
.section .text.head, "ax"
.global _start
_start:
    // arm64 image header (Documentation/arch/arm64/booting.rst).
    b       primary_entry           // code0
    .word   0                       // code1
    .quad   {text_offset}
    .quad   __image_size
    .quad   {flags}
    .quad   0, 0, 0                 // res2..res4
    .word   {magic}
    .word   0                       // res5

// Common to every CPU before its MMU goes on: check where we are, then VHE
// host mode, FP/SIMD untrapped, the memory attributes.
.macro el2_setup
    bl      check_el2_and_location
    ldr     x1, ={hcr}
    msr     hcr_el2, x1
    isb
    ldr     x1, ={cptr}
    msr     cptr_el2, x1
    ldr     x1, ={mair}
    msr     mair_el2, x1
.endm

// MMU and caches on with x1 = TTBR0_EL2 and x2 = TCR_EL2, then the vectors.
// The TLB may hold anything from before, hence the invalidation.
.macro mmu_on
    msr     tcr_el2, x2
    msr     ttbr0_el2, x1
    isb
    tlbi    alle2
    dsb     nsh
    isb
    ldr     x1, ={sctlr}
    msr     sctlr_el2, x1
    isb
    adrp    x1, exception_vectors
    add     x1, x1, :lo12:exception_vectors
    msr     vbar_el2, x1
    isb
.endm

primary_entry:
    mov     x19, x0                 // x19 = DTB physical address
    el2_setup
    ldr     x2, ={boot_tcr}
    mrs     x3, id_aa64mmfr0_el1
    ubfx    x3, x3, #0, #3          // PARange
    cmp     x3, #5                  // 48 bits is all a 4 KiB granule needs
    mov     x4, #5
    csel    x3, x3, x4, ls
    bfi     x2, x3, #32, #3         // TCR.IPS
    adrp    x1, BOOT_L1
    mmu_on

    // MMU and caches on: now .bss may be zeroed and the stack used.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  adrp    x1, BOOT_STACK
    add     x1, x1, :lo12:BOOT_STACK
    add     sp, x1, {stack_size}
    mov     x0, x19
    bl      primary_main
    b       park

// x0 = physical address of this CPU's SecondaryBoot record.
.global secondary_entry
secondary_entry:
    mov     x19, x0
    el2_setup
    ldp     x1, x2, [x19]           // ttbr0, tcr
    mmu_on
    ldr     x1, [x19, #16]          // stack_top
    mov     sp, x1
    mov     x0, x19
    bl      secondary_main
    b       park

// Returns only at EL2 and when running at the link address; otherwise there
// is no console to complain on yet, so the CPU parks.
check_el2_and_location:
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    park
    adr     x1, _start
    ldr     x2, ={load_address}
    cmp     x1, x2
    b.ne    park
    ret

.global park
park:
    wfe
    b       park
"#,
    text_offset = const TEXT_OFFSET,
    flags = const IMAGE_FLAGS,
    magic = const IMAGE_MAGIC,
    hcr = const HCR_HOST,
    cptr = const CPTR_FP_ON,
    mair = const MAIR,
    boot_tcr = const BOOT_TCR,
    sctlr = const SCTLR_MMU_ON,
    stack_size = const crate::stacks::BOOT_STACK_TOTAL,
    load_address = const LOAD_ADDRESS,
);

unsafe extern "C" {
    /// Entry point for secondary CPUs, handed to PSCI `CPU_ON`.
    pub fn secondary_entry() -> !;
}
