//! The device tree a guest is booted with: a small QEMU-`virt`-compatible
//! machine (see [`crate::virt`]).
//!
//! Bindings followed (Linux `Documentation/devicetree/bindings/`):
//! `interrupt-controller/arm,gic-v3.yaml`, `timer/arm,arch_timer.yaml`,
//! `arm/psci.yaml`, `serial/pl011.yaml`, `clock/fixed-clock.yaml`,
//! `arm/cpus.yaml`, `virtio/mmio.yaml`, `pci/host-generic-pci.yaml`;
//! `/chosen` and `/memory` per the Devicetree Specification v0.4 §3.4 and
//! §3.6.

use alloc::format;
use alloc::vec::Vec;
use core::fmt;

use vm_fdt::FdtWriter;

use crate::pci::{GuestPci, PciError};
use crate::virt::{self, Ppi, Spi};
use crate::IpaRange;

/// Most vCPUs a guest may have.
pub const MAX_VCPUS: u32 = 8;

/// Longest `bootargs`, in bytes: Linux arm64's `COMMAND_LINE_SIZE` (2048)
/// less the terminating NUL.
pub const MAX_BOOTARGS_LEN: usize = 2047;

/// An upper bound on the size of any blob [`write_dtb`] returns, to size the
/// load plan's DTB room with (`LoadPlan::new`'s `dtb_max`). A test writes
/// the largest machine (with a PCIe host bridge whose 32 devices each have
/// four INTx entries) and checks it stays below.
pub const GUEST_DTB_MAX: usize = 16 << 10;

/// The GIC's phandle, the root's `interrupt-parent`.
pub const GIC_PHANDLE: u32 = 1;

/// The `apb-pclk` fixed clock's phandle.
pub const APB_PCLK_PHANDLE: u32 = 2;

/// MPIDR_EL1 bit 31, RES1: set in the value the guest reads, absent from
/// the device tree's `reg` and from PSCI target arguments.
pub const MPIDR_RES1: u64 = 1 << 31;

/// The GIC binding's interrupt types (first cell of a specifier).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// `IRQ_TYPE_LEVEL_HIGH` from Linux's `dt-bindings/interrupt-controller/irq.h`:
/// what QEMU `virt` uses for the timer and the UART under GICv3.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// `IRQ_TYPE_EDGE_RISING`, the same header.
const IRQ_TYPE_EDGE_RISING: u32 = 1;

/// The affinity fields of MPIDR_EL1 (Arm ARM D23.2 "MPIDR_EL1"): Aff0 in
/// bits 0-7, Aff1 8-15, Aff2 16-23, Aff3 32-39.
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Which vCPUs share an Aff0 group, as KVM numbers them: 16, the most a
/// GICv3 SGI target list reaches (ICC_SGI1R_EL1.TargetList).
const AFF0_PER_AFF1: u32 = 16;

/// The affinity value (MPIDR_EL1 without its RES1 bit) of vCPU
/// `vcpu_index`: what its `/cpus/cpu@N` `reg` says and what PSCI calls name
/// it by.
///
/// Numbered as KVM numbers them (`reset_mpidr` in
/// `arch/arm64/kvm/sys_regs.c`): Aff0 = index % 16, Aff1 = the next 8 bits
/// of index / 16, then Aff2 and Aff3. Indices from 2^28 on do not get
/// distinct values; guests have at most [`MAX_VCPUS`].
pub const fn mpidr_of(vcpu_index: u32) -> u64 {
    let i = vcpu_index as u64;
    (i & 0xf) | ((i >> 4) & 0xff) << 8 | ((i >> 12) & 0xff) << 16 | ((i >> 20) & 0xff) << 32
}

/// The value for VMPIDR_EL2 (what the guest reads as MPIDR_EL1) of vCPU
/// `vcpu_index`: [`mpidr_of`] with the RES1 bit 31 set. U (bit 30) is 0
/// (part of a multiprocessor), MT (bit 24) is 0.
pub const fn vmpidr_el2_of(vcpu_index: u32) -> u64 {
    mpidr_of(vcpu_index) | MPIDR_RES1
}

/// The vCPU, of a guest with `vcpus` vCPUs, whose affinity value is
/// `mpidr`: the inverse of [`mpidr_of`].
///
/// Strict: any bit outside the affinity fields makes it `None`, bit 31
/// included. PSCI (DEN0022, §5.1.4 CPU_ON) says a `target_cpu` has only
/// affinity fields and bits 24-31 and 40-63 "must be zero", so a guest
/// passing a raw MPIDR_EL1 read gets INVALID_PARAMETERS rather than a guess
/// (KVM masks the extra bits instead). Aff0 of 16 or more is `None` too, as
/// no vCPU has one.
pub const fn vcpu_of(mpidr: u64, vcpus: u32) -> Option<u32> {
    if mpidr & !MPIDR_AFFINITY_MASK != 0 {
        return None;
    }
    let aff0 = mpidr & 0xff;
    if aff0 >= AFF0_PER_AFF1 as u64 {
        return None;
    }
    let aff1 = (mpidr >> 8) & 0xff;
    let aff2 = (mpidr >> 16) & 0xff;
    let aff3 = (mpidr >> 32) & 0xff;
    // At most 2^28 - 1: fits in u32.
    let index = (aff0 | aff1 << 4 | aff2 << 12 | aff3 << 20) as u32;
    if index < vcpus {
        Some(index)
    } else {
        None
    }
}

// Every vCPU's affinity fits the single `reg` cell of `/cpus` and its
// redistributor fits the window.
const _: () = {
    assert!(mpidr_of(MAX_VCPUS - 1) <= u32::MAX as u64);
    assert!(virt::gicr_frames(MAX_VCPUS).is_some());
};

/// What to describe in a guest's device tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMachine<'a> {
    /// Guest RAM (normally `LoadPlan::ram`).
    pub ram: IpaRange,
    /// Number of vCPUs, 1..=[`MAX_VCPUS`]; vCPU `i` has affinity
    /// [`mpidr_of`]`(i)`.
    pub vcpus: u32,
    /// The kernel command line, `/chosen/bootargs`; left out if empty.
    pub bootargs: &'a str,
    /// The initrd (normally `LoadPlan::initrd`), for
    /// `/chosen/linux,initrd-start` and `-end`.
    pub initrd: Option<IpaRange>,
    /// Whether the guest has the PL011 at [`virt::UART`]; it is then the
    /// `stdout-path` and `serial0`.
    pub uart: bool,
}

/// Writes the device tree of `m`.
///
/// The tree has: the root (`compatible = "linux,dummy-virt"`,
/// 2 address and 2 size cells, the GIC as `interrupt-parent`),
/// `/memory@<base>`, `/cpus` with one `cpu@<mpidr>` per vCPU
/// (`enable-method = "psci"`), `/psci` (1.0 and 0.2, over HVC), `/timer`
/// (the architected timer's four PPIs), `/intc@8000000` (GICv3 with one
/// redistributor region sized for `vcpus`), `/apb-pclk` (24 MHz fixed
/// clock), `/pl011@9000000` and `/aliases` if `m.uart`, one
/// `/virtio_mmio@<base>` per virtio-mmio slot (all of them, as QEMU's
/// `virt` has: an empty slot reads as "no device"), and `/chosen`.
///
/// # Errors
///
/// - [`DtbError::VcpuCount`]: `vcpus` is 0 or above [`MAX_VCPUS`].
/// - [`DtbError::RamEmpty`], [`DtbError::RamOverlapsDeviceWindow`].
/// - [`DtbError::InitrdEmpty`], [`DtbError::InitrdOutsideRam`].
/// - [`DtbError::BootargsTooLong`], [`DtbError::BootargsContainsNul`].
/// - [`DtbError::Writer`]: the writer refused something; a bug here, not
///   in the input.
pub fn write_dtb(m: &GuestMachine) -> Result<Vec<u8>, DtbError> {
    write_dtb_with_pci(m, None)
}

/// Writes the device tree of `m` as [`write_dtb`] does, plus, if `pci` is
/// given, a PCIe host bridge node `/pcie@<ecam>` for the VM's passthrough
/// functions:
///
/// - `compatible = "pci-host-ecam-generic"`, `device_type = "pci"`, `reg`
///   the ECAM window, `bus-range` the buses it serves, 3 address and 2
///   size cells, `linux,pci-domain = <0>`;
/// - `ranges`: the 32-bit window as non-prefetchable 32-bit memory and the
///   64-bit one, if any, as 64-bit memory, each at PCI address = IPA; no
///   I/O space;
/// - `interrupt-map-mask = <0xf800 0 0 7>` (device number and pin) and
///   one `interrupt-map` entry per [`PciInterrupt`](crate::PciInterrupt),
///   onto a level-triggered GIC SPI (left out, with `#interrupt-cells`,
///   when there are none);
/// - `dma-coherent`: the SMMU translates the functions' DMA through the
///   VM's stage 2, cacheable and coherent;
/// - no `msi-parent` or `msi-map` (the guest has no ITS: no MSIs), no
///   `iommu-map` (the SMMU's stage 2 is invisible to the guest).
///
/// # Errors
///
/// Those of [`write_dtb`], and [`DtbError::Pci`] if
/// [`GuestPci::check`] refuses `pci`.
pub fn write_dtb_with_pci(m: &GuestMachine, pci: Option<&GuestPci>) -> Result<Vec<u8>, DtbError> {
    validate(m)?;
    if let Some(pci) = pci {
        pci.check(m.ram)?;
    }
    let gicr = virt::gicr_frames(m.vcpus).ok_or(DtbError::VcpuCount { vcpus: m.vcpus })?;
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    // QEMU's model string, in case anything keys on it.
    w.property_string("model", "linux,dummy-virt")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let memory = w.begin_node(&format!("memory@{:x}", m.ram.start().get()))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &[m.ram.start().get(), m.ram.size()])?;
    w.end_node(memory)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for i in 0..m.vcpus {
        let mpidr = mpidr_of(i);
        let cpu = w.begin_node(&format!("cpu@{mpidr:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property_string("compatible", "arm,arm-v8")?;
        // Below 2^32: checked at build time for MAX_VCPUS.
        w.property_u32("reg", mpidr as u32)?;
        w.property_string("enable-method", "psci")?;
        w.end_node(cpu)?;
    }
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    string_list(&mut w, "compatible", &["arm,psci-1.0", "arm,psci-0.2"])?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    // The binding's order: secure, non-secure physical, virtual, hypervisor.
    let mut irqs = Vec::new();
    for ppi in [
        virt::TIMER_SECURE_PHYS_PPI,
        virt::TIMER_PHYS_PPI,
        virt::TIMER_VIRT_PPI,
        virt::TIMER_HYP_PPI,
    ] {
        irqs.extend_from_slice(&ppi_cells(ppi));
    }
    w.property_array_u32("interrupts", &irqs)?;
    // The counter keeps running in every power state the guest can enter.
    w.property_null("always-on")?;
    w.end_node(timer)?;

    let intc = w.begin_node(&format!("intc@{:x}", virt::GICD.start().get()))?;
    w.property_string("compatible", "arm,gic-v3")?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null("interrupt-controller")?;
    // No children (no ITS), and an `interrupt-map` naming this GIC as the
    // parent gives it no unit-address cells. dtc wants it stated.
    w.property_u32("#address-cells", 0)?;
    w.property_array_u64(
        "reg",
        &[
            virt::GICD.start().get(),
            virt::GICD.size(),
            gicr.start().get(),
            gicr.size(),
        ],
    )?;
    w.property_u32("#redistributor-regions", 1)?;
    w.property_phandle(GIC_PHANDLE)?;
    w.end_node(intc)?;

    let clock = w.begin_node("apb-pclk")?;
    w.property_string("compatible", "fixed-clock")?;
    w.property_u32("#clock-cells", 0)?;
    w.property_u32("clock-frequency", virt::APB_PCLK_HZ)?;
    w.property_string("clock-output-names", "clk24mhz")?;
    w.property_phandle(APB_PCLK_PHANDLE)?;
    w.end_node(clock)?;

    let uart_path = format!("/pl011@{:x}", virt::UART.start().get());
    if m.uart {
        let uart = w.begin_node(&uart_path[1..])?;
        string_list(&mut w, "compatible", &["arm,pl011", "arm,primecell"])?;
        w.property_array_u64("reg", &[virt::UART.start().get(), virt::UART.size()])?;
        w.property_array_u32("interrupts", &spi_cells(virt::UART_SPI))?;
        w.property_array_u32("clocks", &[APB_PCLK_PHANDLE, APB_PCLK_PHANDLE])?;
        string_list(&mut w, "clock-names", &["uartclk", "apb_pclk"])?;
        w.end_node(uart)?;

        // Makes the UART ttyAMA0 whatever else is added later.
        let aliases = w.begin_node("aliases")?;
        w.property_string("serial0", &uart_path)?;
        w.end_node(aliases)?;
    }

    for slot in 0..virt::VIRTIO_MMIO_SLOTS {
        let Some((regs, spi)) = virt::virtio_mmio_slot(slot) else {
            continue;
        };
        let node = w.begin_node(&format!("virtio_mmio@{:x}", regs.start().get()))?;
        w.property_string("compatible", "virtio,mmio")?;
        w.property_array_u64("reg", &[regs.start().get(), regs.size()])?;
        // Edge-triggered, as on QEMU's virt: the driver reads and acknowledges
        // InterruptStatus on every interrupt anyway, and an edge needs no
        // end-of-interrupt exit, which a level interrupt would.
        w.property_array_u32("interrupts", &[GIC_SPI, spi.number(), IRQ_TYPE_EDGE_RISING])?;
        // Guest RAM is ordinary cacheable memory to the hypervisor too.
        w.property_null("dma-coherent")?;
        w.end_node(node)?;
    }

    if let Some(pci) = pci {
        pcie_node(&mut w, pci)?;
    }

    let chosen = w.begin_node("chosen")?;
    if !m.bootargs.is_empty() {
        w.property_string("bootargs", m.bootargs)?;
    }
    if m.uart {
        w.property_string("stdout-path", &uart_path)?;
    }
    if let Some(initrd) = m.initrd {
        w.property_u64("linux,initrd-start", initrd.start().get())?;
        w.property_u64("linux,initrd-end", initrd.end().get())?;
    }
    w.end_node(chosen)?;

    w.end_node(root)?;
    Ok(w.finish()?)
}

fn validate(m: &GuestMachine) -> Result<(), DtbError> {
    if m.vcpus == 0 || m.vcpus > MAX_VCPUS {
        return Err(DtbError::VcpuCount { vcpus: m.vcpus });
    }
    if m.ram.is_empty() {
        return Err(DtbError::RamEmpty);
    }
    if m.ram.overlaps(&virt::DEVICE_WINDOW) {
        return Err(DtbError::RamOverlapsDeviceWindow { ram: m.ram });
    }
    if let Some(initrd) = m.initrd {
        if initrd.is_empty() {
            return Err(DtbError::InitrdEmpty);
        }
        if !m.ram.contains_range(&initrd) {
            return Err(DtbError::InitrdOutsideRam { initrd, ram: m.ram });
        }
    }
    if m.bootargs.len() > MAX_BOOTARGS_LEN {
        return Err(DtbError::BootargsTooLong {
            len: m.bootargs.len(),
        });
    }
    if let Some(offset) = m.bootargs.bytes().position(|b| b == 0) {
        return Err(DtbError::BootargsContainsNul { offset });
    }
    Ok(())
}

/// `phys.hi` of a `ranges` entry (PCI bus binding §2.2.1.1): 32-bit and
/// 64-bit memory space, non-prefetchable.
const PCI_SPACE_MEM32: u32 = 0x0200_0000;
const PCI_SPACE_MEM64: u32 = 0x0300_0000;
/// Where the device number sits in `phys.hi` (bits 15:11).
const PCI_DEVICE_SHIFT: u32 = 11;
/// `interrupt-map-mask`: the device number of `phys.hi` and the pin.
const PCI_INTERRUPT_MAP_MASK: [u32; 4] = [0x1f << PCI_DEVICE_SHIFT, 0, 0, 7];

/// The `/pcie@...` node; `pci` is checked.
fn pcie_node(w: &mut FdtWriter, pci: &GuestPci) -> Result<(), vm_fdt::Error> {
    let windows = &pci.windows;
    let node = w.begin_node(&format!("pcie@{:x}", windows.ecam.start().get()))?;
    w.property_string("compatible", "pci-host-ecam-generic")?;
    w.property_string("device_type", "pci")?;
    w.property_array_u64("reg", &[windows.ecam.start().get(), windows.ecam.size()])?;
    w.property_array_u32("bus-range", &[0, u32::from(windows.last_bus())])?;
    w.property_u32("#address-cells", 3)?;
    w.property_u32("#size-cells", 2)?;
    // One host bridge: domain 0, as QEMU's `virt` numbers its own.
    w.property_u32("linux,pci-domain", 0)?;
    let mut ranges = Vec::new();
    let spaces = [(PCI_SPACE_MEM32, Some(windows.mmio32))];
    let spaces = spaces
        .into_iter()
        .chain([(PCI_SPACE_MEM64, windows.mmio64)]);
    for (space, window) in spaces {
        if let Some(window) = window {
            let start = window.start().get();
            // PCI address (3 cells), CPU address (2), size (2).
            ranges.extend_from_slice(&[space, hi(start), lo(start)]);
            ranges.extend_from_slice(&[hi(start), lo(start)]);
            ranges.extend_from_slice(&[hi(window.size()), lo(window.size())]);
        }
    }
    w.property_array_u32("ranges", &ranges)?;
    if !pci.interrupts.is_empty() {
        w.property_u32("#interrupt-cells", 1)?;
        w.property_array_u32("interrupt-map-mask", &PCI_INTERRUPT_MAP_MASK)?;
        let mut map = Vec::new();
        for irq in pci.interrupts {
            // Child unit address (3 cells) and pin, then the GIC's
            // specifier; the GIC has no address cells.
            let phys_hi = u32::from(irq.device) << PCI_DEVICE_SHIFT;
            map.extend_from_slice(&[phys_hi, 0, 0, u32::from(irq.pin.register())]);
            map.push(GIC_PHANDLE);
            map.extend_from_slice(&spi_cells(irq.spi));
        }
        w.property_array_u32("interrupt-map", &map)?;
    }
    // DMA goes through the SMMU into guest RAM, coherent with the CPUs.
    w.property_null("dma-coherent")?;
    w.end_node(node)
}

fn hi(value: u64) -> u32 {
    (value >> 32) as u32
}

fn lo(value: u64) -> u32 {
    value as u32
}

/// A `stringlist` property: each string NUL-terminated, back to back.
fn string_list(w: &mut FdtWriter, name: &str, strings: &[&str]) -> Result<(), vm_fdt::Error> {
    let mut bytes = Vec::new();
    for s in strings {
        bytes.extend_from_slice(s.as_bytes());
        bytes.push(0);
    }
    w.property(name, &bytes)
}

/// A GICv3 binding interrupt specifier for a level-triggered PPI. GICv3 has
/// no CPU mask in bits 8-15 (that is GICv2's).
fn ppi_cells(ppi: Ppi) -> [u32; 3] {
    [GIC_PPI, ppi.number(), IRQ_TYPE_LEVEL_HIGH]
}

/// A GICv3 binding interrupt specifier for a level-triggered SPI.
fn spi_cells(spi: Spi) -> [u32; 3] {
    [GIC_SPI, spi.number(), IRQ_TYPE_LEVEL_HIGH]
}

/// Why a guest device tree could not be written.
#[derive(Debug, PartialEq, Eq)]
pub enum DtbError {
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    VcpuCount {
        /// The count asked for.
        vcpus: u32,
    },
    /// RAM has size zero.
    RamEmpty,
    /// RAM overlaps the device window below 0x4000_0000.
    RamOverlapsDeviceWindow {
        /// The RAM asked for.
        ram: IpaRange,
    },
    /// The initrd has size zero.
    InitrdEmpty,
    /// The initrd is not inside RAM.
    InitrdOutsideRam {
        /// The initrd.
        initrd: IpaRange,
        /// Guest RAM.
        ram: IpaRange,
    },
    /// The command line is longer than [`MAX_BOOTARGS_LEN`].
    BootargsTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The command line has a NUL byte, which would cut it short.
    BootargsContainsNul {
        /// Where the first one is.
        offset: usize,
    },
    /// The PCIe host bridge's layout or interrupts were refused.
    Pci(PciError),
    /// The FDT writer refused the tree; the input was checked, so this is a
    /// bug in this crate.
    Writer(vm_fdt::Error),
}

impl From<PciError> for DtbError {
    fn from(e: PciError) -> Self {
        Self::Pci(e)
    }
}

impl From<vm_fdt::Error> for DtbError {
    fn from(e: vm_fdt::Error) -> Self {
        Self::Writer(e)
    }
}

impl core::error::Error for DtbError {}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VcpuCount { vcpus } => {
                write!(f, "guest has {vcpus} vCPUs; 1 to {MAX_VCPUS} are supported")
            }
            Self::RamEmpty => f.write_str("guest RAM has size 0"),
            Self::RamOverlapsDeviceWindow { ram } => write!(
                f,
                "guest RAM {ram} overlaps the device window {}",
                virt::DEVICE_WINDOW
            ),
            Self::InitrdEmpty => f.write_str("initrd has size 0"),
            Self::InitrdOutsideRam { initrd, ram } => {
                write!(f, "initrd {initrd} is not inside guest RAM {ram}")
            }
            Self::BootargsTooLong { len } => write!(
                f,
                "command line of {len} bytes is longer than the {MAX_BOOTARGS_LEN} Linux accepts"
            ),
            Self::BootargsContainsNul { offset } => {
                write!(f, "command line has a NUL byte at offset {offset}")
            }
            Self::Pci(e) => write!(f, "{e}"),
            Self::Writer(e) => write!(f, "device tree writer failed: {e}"),
        }
    }
}
