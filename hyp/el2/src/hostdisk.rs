//! The host disk: the first virtio-blk PCI function on the host bridge's
//! root bus, driven by the `virtio-drivers` crate, whose sectors back the
//! guests' virtual disks.
//!
//! QEMU boots the hypervisor with `-kernel`, so no firmware has touched the
//! bus: [`open_bus`] reaches the host bridge's configuration space and
//! windows ([`HostBus`], which passthrough shares, so every BAR the
//! hypervisor places comes from one allocator), [`probe`] finds the
//! function, places its BARs in the host bridge's windows and turns it on
//! (the `pci` crate), then hands it to `virtio-drivers`' PCI transport. That transport trusts configuration
//! space more than we do (its capability walk loops on a looping list, and
//! some of its offset sums overflow), so it sees the function's BARs and
//! virtio capabilities through a shadow (`pci::VirtioShadow`) holding only
//! what was checked against the BARs as assigned.
//!
//! Requests complete by polling the used ring; the function's INTx is
//! disabled and no MSI-X vector is set up.

use crate::lock::SpinMutex;
use addr::PhysRange;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::fmt;
use core::ptr::NonNull;
use log::{debug, info};
use pci::{
    AllocError, AssignError, BarAllocator, Bdf, Command, ConfigSpace, Ecam, EcamError,
    FunctionInfo, HeaderType, PciAddr, Placement, Register, ShadowedConfig, VirtioLayout,
    VirtioLayoutError, VirtioShadow, Window, WindowKind,
};
use platform::{PciSpace, Platform};
use spin::Once;
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, VirtioPciError};
use virtio_drivers::{BufferDirection, Hal, PAGE_SIZE};

/// Bytes in a sector: the unit of every virtio-blk request.
const SECTOR: u64 = SECTOR_SIZE as u64;
/// Most bytes moved by one request, so one call cannot hold the device for
/// long (and a caller holding a lock around it neither).
const MAX_REQUEST: usize = 128 << 10;

/// Most MMIO regions `virtio-drivers` may be given: one device's BARs.
const MAX_GRANTS: usize = 6;

/// The memory windows of the host bridge, which BARs are placed in: the
/// final stage-1 map must cover them as device memory (as it covers the
/// ECAM window through [`Platform::mmio_regions`]) before [`probe`] runs.
pub fn pci_mmio_windows(platform: &Platform) -> impl Iterator<Item = PhysRange> + '_ {
    platform
        .pcie
        .iter()
        .flat_map(|pcie| pcie.windows.iter())
        .filter(|window| window.space != PciSpace::Io)
        .map(|window| window.cpu)
}

/// Why the host disk could not be used.
#[derive(Debug)]
pub enum HostDiskError {
    /// The device tree's ECAM window is unusable.
    Ecam(EcamError),
    /// A host bridge window could not be used for BARs.
    Window(AllocError),
    /// The function's BARs could not be sized or placed.
    Bars(Bdf, AssignError),
    /// A virtio structure the driver needs is missing or does not fit in
    /// its BAR.
    Layout(Bdf, VirtioLayoutError),
    /// Queue 0's notification address lies outside the notification
    /// structure.
    NotifyOutOfRange {
        /// The function.
        bdf: Bdf,
        /// The queue's `queue_notify_off`.
        queue_notify_off: u16,
    },
    /// `virtio-drivers` refused the PCI transport.
    Transport(Bdf, VirtioPciError),
    /// `virtio-drivers` could not initialise the device.
    Init(Bdf, virtio_drivers::Error),
    /// A request failed.
    Io(virtio_drivers::Error),
    /// A request reaches past the end of the disk.
    OutOfRange {
        /// First byte of the request.
        offset: u64,
        /// Its length.
        len: usize,
        /// The disk's size in bytes.
        capacity: u64,
    },
    /// A write to a disk the device offers read-only.
    ReadOnly,
    /// [`HostDisk::self_check`] read back something other than it wrote.
    SelfCheck {
        /// Where the checked span starts.
        offset: u64,
    },
}

impl fmt::Display for HostDiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ecam(e) => write!(f, "host disk: {e}"),
            Self::Window(e) => write!(f, "host disk: {e}"),
            Self::Bars(bdf, e) => write!(f, "host disk {bdf}: {e}"),
            Self::Layout(bdf, e) => write!(f, "host disk {bdf}: {e}"),
            Self::NotifyOutOfRange {
                bdf,
                queue_notify_off,
            } => write!(
                f,
                "host disk {bdf}: queue 0's queue_notify_off {queue_notify_off} is outside the notification structure"
            ),
            Self::Transport(bdf, e) => write!(f, "host disk {bdf}: virtio PCI transport: {e}"),
            Self::Init(bdf, e) => write!(f, "host disk {bdf}: virtio-blk initialisation: {e}"),
            Self::Io(e) => write!(f, "host disk: request failed: {e}"),
            Self::OutOfRange {
                offset,
                len,
                capacity,
            } => write!(
                f,
                "host disk: {len} bytes at {offset:#x} reach past its end ({capacity:#x} bytes)"
            ),
            Self::ReadOnly => write!(f, "host disk: the device is read-only"),
            Self::SelfCheck { offset } => write!(
                f,
                "host disk: self-check at {offset:#x} read back other data than it wrote"
            ),
        }
    }
}

/// The host bridge's first bus as the hypervisor drives it: configuration
/// space, and the allocator of the bridge's memory windows. Every function
/// the hypervisor places BARs for (its disk, functions passed through to
/// VMs) takes them from this one allocator, so no two BARs overlap.
#[derive(Debug)]
pub struct HostBus {
    /// Configuration space, through the ECAM window.
    pub config: EcamAccess,
    /// The bus functions are looked for on: the bridge's first.
    pub bus: u8,
    /// Places memory BARs in the bridge's windows.
    pub bars: BarAllocator,
}

/// Reaches the device tree's PCIe host bridge: its ECAM window and its
/// memory windows. `Ok(None)` without one.
///
/// Call once, after the final stage-1 map (which covers the ECAM window
/// and [`pci_mmio_windows`] as device memory) is live.
///
/// # Errors
///
/// [`HostDiskError::Ecam`], [`HostDiskError::Window`].
pub fn open_bus(platform: &Platform) -> Result<Option<HostBus>, HostDiskError> {
    let Some(pcie) = &platform.pcie else {
        info!("host disk: none (no PCIe host bridge)");
        return Ok(None);
    };
    let ecam = Ecam::new(pcie.ecam, pcie.first_bus, pcie.last_bus).map_err(HostDiskError::Ecam)?;
    let mut bars = BarAllocator::new();
    for window in &pcie.windows {
        let kind = match window.space {
            PciSpace::Mem32 => WindowKind::Mem32,
            PciSpace::Mem64 => WindowKind::Mem64,
            PciSpace::Io => continue,
        };
        bars.add_window(Window {
            kind,
            prefetchable: window.prefetchable,
            pci_start: PciAddr(window.pci_addr),
            cpu: window.cpu,
        })
        .map_err(HostDiskError::Window)?;
    }
    Ok(Some(HostBus {
        // SAFETY: `mmu::build` maps every region of
        // `Platform::mmio_regions`, the ECAM window among them, as device
        // memory for the hypervisor's life, and configuration space is
        // accessed only through the bus made here (and the host disk's
        // driver, on its own function).
        config: unsafe { EcamAccess::new(ecam) },
        bus: *ecam.buses().start(),
        bars,
    }))
}

/// The disk. Its methods take byte offsets and lengths; the sectors they
/// do not cover whole are read (and for writes, written back) through a
/// bounce sector.
pub struct HostDisk {
    blk: VirtIOBlk<HypHal, PciTransport>,
    bdf: Bdf,
    capacity: u64,
    read_only: bool,
}

impl fmt::Debug for HostDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostDisk")
            .field("bdf", &self.bdf)
            .field("capacity", &self.capacity)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl HostDisk {
    /// The disk's size in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    /// Where the disk is on the bus (its routing ID is its SMMU StreamID on
    /// QEMU virt).
    pub fn bdf(&self) -> Bdf {
        self.bdf
    }

    /// Whether the device refuses writes.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Reads `buf.len()` bytes from byte `offset`.
    ///
    /// # Errors
    ///
    /// [`HostDiskError::OutOfRange`] (nothing is read),
    /// [`HostDiskError::Io`].
    pub fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), HostDiskError> {
        self.check_range(offset, buf.len())?;
        let mut done = 0;
        while done < buf.len() {
            let (sector, within) = self.position(offset, done);
            let rest = &mut buf[done..];
            if within == 0 && rest.len() >= SECTOR_SIZE {
                // Whole sectors go straight into the caller's buffer.
                let n = (rest.len() / SECTOR_SIZE * SECTOR_SIZE).min(MAX_REQUEST);
                self.read_sectors(sector, &mut rest[..n])?;
                done += n;
            } else {
                let mut bounce = [0; SECTOR_SIZE];
                self.read_sectors(sector, &mut bounce)?;
                let n = (SECTOR_SIZE - within).min(rest.len());
                rest[..n].copy_from_slice(&bounce[within..within + n]);
                done += n;
            }
        }
        Ok(())
    }

    /// Writes `buf` at byte `offset`. Sectors it covers only in part are
    /// read, patched and written back.
    ///
    /// # Errors
    ///
    /// [`HostDiskError::OutOfRange`], [`HostDiskError::ReadOnly`] (nothing
    /// is written), [`HostDiskError::Io`] (part may have been written).
    pub fn write(&mut self, offset: u64, buf: &[u8]) -> Result<(), HostDiskError> {
        self.check_range(offset, buf.len())?;
        if self.read_only {
            return Err(HostDiskError::ReadOnly);
        }
        let mut done = 0;
        while done < buf.len() {
            let (sector, within) = self.position(offset, done);
            let rest = &buf[done..];
            if within == 0 && rest.len() >= SECTOR_SIZE {
                let n = (rest.len() / SECTOR_SIZE * SECTOR_SIZE).min(MAX_REQUEST);
                self.blk
                    .write_blocks(sector, &rest[..n])
                    .map_err(HostDiskError::Io)?;
                done += n;
            } else {
                let mut bounce = [0; SECTOR_SIZE];
                self.read_sectors(sector, &mut bounce)?;
                let n = (SECTOR_SIZE - within).min(rest.len());
                bounce[within..within + n].copy_from_slice(&rest[..n]);
                self.blk
                    .write_blocks(sector, &bounce)
                    .map_err(HostDiskError::Io)?;
                done += n;
            }
        }
        Ok(())
    }

    /// Asks the device to make every completed write durable (a no-op if
    /// it did not offer `VIRTIO_BLK_F_FLUSH`, i.e. it has no write cache to
    /// flush).
    ///
    /// # Errors
    ///
    /// [`HostDiskError::Io`].
    pub fn flush(&mut self) -> Result<(), HostDiskError> {
        self.blk.flush().map_err(HostDiskError::Io)
    }

    /// Checks the disk end to end on its last two sectors (the last one,
    /// on a one-sector disk), leaving them as they were: reads them, writes
    /// their complement, puts the original back in the middle through the
    /// unaligned path (bounce sectors), then whole, reading back after each
    /// step; then flushes. A read-only disk gets the first read only.
    ///
    /// # Errors
    ///
    /// [`HostDiskError::SelfCheck`] (after trying to put the original data
    /// back), [`HostDiskError::Io`].
    pub fn self_check(&mut self) -> Result<(), HostDiskError> {
        const SPAN: usize = 2 * SECTOR_SIZE;
        /// Bytes at each end of the span the unaligned write leaves alone.
        const EDGE: usize = 100;
        let len = if self.capacity >= SPAN as u64 {
            SPAN
        } else if self.capacity >= SECTOR {
            SECTOR_SIZE
        } else {
            return Ok(());
        };
        // The capacity is whole sectors, so `start` is sector aligned.
        let start = self.capacity - len as u64;
        let mut original = [0; SPAN];
        let original = &mut original[..len];
        self.read(start, original)?;
        if self.read_only {
            return Ok(());
        }
        let mut expected = [0; SPAN];
        let expected = &mut expected[..len];
        for (e, o) in expected.iter_mut().zip(original.iter()) {
            *e = !*o;
        }
        let mut back = [0; SPAN];
        let back = &mut back[..len];
        let mut step = |disk: &mut Self, expected: &[u8]| -> Result<bool, HostDiskError> {
            disk.read(start, back)?;
            Ok(back == expected)
        };
        self.write(start, expected)?;
        let mut good = step(self, expected)?;
        if good {
            self.write(start + EDGE as u64, &original[EDGE..len - EDGE])?;
            expected[EDGE..len - EDGE].copy_from_slice(&original[EDGE..len - EDGE]);
            good = step(self, expected)?;
        }
        self.write(start, original)?;
        good &= step(self, original)?;
        self.flush()?;
        if good {
            Ok(())
        } else {
            Err(HostDiskError::SelfCheck { offset: start })
        }
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), HostDiskError> {
        let out_of_range = HostDiskError::OutOfRange {
            offset,
            len,
            capacity: self.capacity,
        };
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(out_of_range),
        }
    }

    /// The sector holding byte `offset + done`, and where in it that is.
    /// `check_range` made the sum fit.
    fn position(&self, offset: u64, done: usize) -> (usize, usize) {
        let at = offset + done as u64;
        ((at / SECTOR) as usize, (at % SECTOR) as usize)
    }

    fn read_sectors(&mut self, sector: usize, buf: &mut [u8]) -> Result<(), HostDiskError> {
        self.blk.read_blocks(sector, buf).map_err(HostDiskError::Io)
    }
}

/// The host disk, once [`install`]ed.
static DISK: Once<SpinMutex<HostDisk>> = Once::new();

/// Makes `disk` the host disk every VM's disk region is on.
pub fn install(disk: HostDisk) {
    DISK.call_once(|| SpinMutex::new(disk));
}

/// Runs `f` on the host disk, if there is one (one user at a time).
pub fn with<R>(f: impl FnOnce(&mut HostDisk) -> R) -> Option<R> {
    DISK.get().map(|disk| f(&mut disk.lock()))
}

/// Finds the first virtio-blk function on the host bus, assigns its BARs
/// (from the bus's allocator), turns it on and starts `virtio-drivers` on
/// it. `Ok(None)` if there is no such function. A virtio-blk function
/// that is to be passed through to a VM must therefore not be the first
/// on the bus: QEMU places devices without an `addr` first.
///
/// Call once, on one CPU, while the SMMU, if enabled, lets the function's
/// stream through untranslated (or is not enabled yet).
///
/// # Errors
///
/// [`HostDiskError::Bars`], [`HostDiskError::Layout`],
/// [`HostDiskError::NotifyOutOfRange`], [`HostDiskError::Transport`],
/// [`HostDiskError::Init`].
pub fn probe(host: &mut HostBus) -> Result<Option<HostDisk>, HostDiskError> {
    let mut cs = host.config;
    let bus = host.bus;
    let Some(function) = pci::functions(&cs, bus).find(is_virtio_blk) else {
        info!("host disk: none (no virtio-blk on PCI bus {bus:#04x})");
        return Ok(None);
    };
    let bdf = function.bdf;
    let bars = pci::assign_bars(&mut cs, bdf, function.header_type, &mut host.bars)
        .map_err(|e| HostDiskError::Bars(bdf, e))?;
    for bar in bars.iter() {
        match bar.placement {
            Some(p) => debug!("host disk: {}: PCI {} at {}", bar.bar, p.pci, p.cpu),
            None => debug!("host disk: {}: not assigned", bar.bar),
        }
    }
    let layout = pci::virtio_layout(&cs, bdf, &bars).map_err(|e| HostDiskError::Layout(bdf, e))?;
    // Polled: INTx off, and no MSI-X vectors are ever configured.
    pci::enable_memory_and_bus_master(&mut cs, bdf, Command::INTERRUPT_DISABLE);
    // SAFETY: The common configuration lies in an assigned memory BAR
    // (checked by `virtio_layout`), which the final map covers as device
    // memory (the host bridge's windows), and decoding is on.
    unsafe { check_queue_0_notify(&layout) }.map_err(|queue_notify_off| {
        HostDiskError::NotifyOutOfRange {
            bdf,
            queue_notify_off,
        }
    })?;
    for placement in bars.iter().filter_map(|b| b.placement) {
        HypHal::grant(placement);
    }

    let shadow = VirtioShadow::new(&bars, &layout);
    let mut root = PciRoot::new(DriverConfig(ShadowedConfig::new(cs, bdf, shadow)));
    let device_function = DeviceFunction {
        bus: bdf.bus(),
        device: bdf.device(),
        function: bdf.function(),
    };
    let transport = PciTransport::new::<HypHal, _>(&mut root, device_function)
        .map_err(|e| HostDiskError::Transport(bdf, e))?;
    let blk = VirtIOBlk::<HypHal, _>::new(transport).map_err(|e| HostDiskError::Init(bdf, e))?;
    let disk = HostDisk {
        capacity: blk.capacity().saturating_mul(SECTOR),
        read_only: blk.readonly(),
        blk,
        bdf,
    };
    info!(
        "host disk: virtio-blk at {}, {} MiB{}",
        disk.bdf(),
        disk.capacity_bytes() >> 20,
        if disk.is_read_only() {
            ", read-only"
        } else {
            ""
        }
    );
    Ok(Some(disk))
}

fn is_virtio_blk(f: &FunctionInfo) -> bool {
    pci::virtio_device_id(f) == Some(pci::VIRTIO_DEVICE_BLOCK)
        && f.header_type == HeaderType::Endpoint
}

/// Configuration space through the ECAM window, 32-bit volatile accesses.
#[derive(Clone, Copy, Debug)]
pub struct EcamAccess {
    ecam: Ecam,
}

impl EcamAccess {
    /// # Safety
    ///
    /// `ecam`'s window must be mapped as device memory for as long as any
    /// copy of the result is used, and not accessed other than through one.
    unsafe fn new(ecam: Ecam) -> EcamAccess {
        EcamAccess { ecam }
    }
}

impl ConfigSpace for EcamAccess {
    fn read32(&self, bdf: Bdf, reg: Register) -> u32 {
        match self.ecam.address(bdf, reg) {
            // SAFETY: `Ecam::address` only returns 4-aligned addresses
            // inside the window, which `new`'s caller keeps mapped as
            // device memory.
            Some(pa) => unsafe { core::ptr::read_volatile(pa.get() as *const u32) },
            // No bus there: what hardware returns for an absent function.
            None => u32::MAX,
        }
    }

    fn write32(&mut self, bdf: Bdf, reg: Register, value: u32) {
        if let Some(pa) = self.ecam.address(bdf, reg) {
            // SAFETY: As for `read32`.
            unsafe { core::ptr::write_volatile(pa.get() as *mut u32, value) };
        }
    }
}

/// `virtio_pci_common_cfg` registers read before the driver starts (virtio
/// 1.2 §4.1.4.3): `queue_select` and `queue_notify_off`, both 16-bit.
const COMMON_QUEUE_SELECT: u64 = 0x16;
const COMMON_QUEUE_NOTIFY_OFF: u64 = 0x1e;

/// Checks that queue 0's notification address (`queue_notify_off ×
/// notify_off_multiplier` into the notification structure, §4.1.4.4) is
/// inside it: `virtio-drivers` would panic on one outside. Returns the
/// offending `queue_notify_off`.
///
/// # Safety
///
/// `layout.common` must be mapped as device memory and the function's
/// memory decoding on.
unsafe fn check_queue_0_notify(layout: &VirtioLayout) -> Result<(), u16> {
    let common = layout.common.cpu.start().get();
    let select = (common + COMMON_QUEUE_SELECT) as *mut u16;
    let notify_off = (common + COMMON_QUEUE_NOTIFY_OFF) as *const u16;
    // SAFETY: Both registers lie inside the common configuration, whose
    // 56 bytes `virtio_layout` checked fit its BAR, which the caller
    // guarantees is mapped and decoded; selecting a queue only changes
    // what the queue registers show.
    let queue_notify_off = unsafe {
        select.write_volatile(0);
        notify_off.read_volatile()
    };
    let offset = u64::from(queue_notify_off) * u64::from(layout.notify_off_multiplier);
    // `virtio-drivers` writes the 16-bit slot `offset / 2` of the
    // structure seen as `length / 2` slots.
    if offset / 2 >= u64::from(layout.notify.length) / 2 {
        return Err(queue_notify_off);
    }
    Ok(())
}

/// `virtio-drivers`' configuration access: the live ECAM with the disk's
/// BARs and capabilities shadowed ([`pci::VirtioShadow`]), so that what
/// the transport derives from configuration space (the capability walk,
/// the BAR addresses and sizes it re-reads, the MMIO it asks
/// [`HypHal::mmio_phys_to_virt`] for) is exactly what [`probe`] checked,
/// whatever the device does meanwhile.
#[derive(Clone, Copy, Debug)]
struct DriverConfig(ShadowedConfig<EcamAccess>);

impl DriverConfig {
    fn at(device_function: DeviceFunction, register_offset: u8) -> Option<(Bdf, Register)> {
        let DeviceFunction {
            bus,
            device,
            function,
        } = device_function;
        Some((
            Bdf::new(bus, device, function)?,
            Register::new(register_offset.into())?,
        ))
    }
}

impl ConfigurationAccess for DriverConfig {
    fn read_word(&self, device_function: DeviceFunction, register_offset: u8) -> u32 {
        match Self::at(device_function, register_offset) {
            Some((bdf, reg)) => self.0.read32(bdf, reg),
            None => u32::MAX,
        }
    }

    fn write_word(&mut self, device_function: DeviceFunction, register_offset: u8, data: u32) {
        if let Some((bdf, reg)) = Self::at(device_function, register_offset) {
            self.0.write32(bdf, reg, data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        *self
    }
}

/// `virtio-drivers`' view of the hypervisor's memory.
///
/// The hypervisor's stage-1 map is an identity map of all RAM (the heap,
/// the image and the stacks included), so a buffer's virtual address is
/// the physical address the device uses, and sharing a buffer is nothing.
///
/// Coherency: QEMU's device models read and write guest memory directly,
/// and the host bridge is `dma-coherent` in QEMU's device tree, so nothing
/// needs cleaning or invalidating. On hardware whose DMA does not snoop
/// the CPU caches, `share` would clean the buffer to the point of
/// coherency (`DC CVAC`) for `DriverToDevice`, and invalidate it (`DC
/// IVAC`) before the device writes and again in `unshare` for
/// `DeviceToDriver`; and the rings from `dma_alloc` would need a
/// non-cacheable mapping, since the driver polls them while the device
/// writes. With an SMMU translating the function's stream, `share` would
/// map the buffer and return its IOVA instead.
#[derive(Debug)]
struct HypHal;

/// The BARs `mmio_phys_to_virt` may translate: those of the function being
/// driven, registered by `probe`.
static MMIO_GRANTS: spin::Mutex<heapless::Vec<Placement, MAX_GRANTS>> =
    spin::Mutex::new(heapless::Vec::new());

impl HypHal {
    fn grant(placement: Placement) {
        // Full only if a second device were probed: its BARs would then
        // not translate, and its transport would be refused (see
        // `mmio_phys_to_virt`).
        let _ = MMIO_GRANTS.lock().push(placement);
    }

    /// The CPU address of PCI addresses `pci .. pci + size`, if a granted
    /// BAR holds them.
    fn translate(pci: u64, size: u64) -> Option<NonNull<u8>> {
        let grants = MMIO_GRANTS.lock();
        let cpu = grants.iter().find_map(|p| {
            let window = Window {
                kind: WindowKind::Mem64,
                prefetchable: false,
                pci_start: p.pci,
                cpu: p.cpu,
            };
            window.to_cpu(PciAddr(pci), size)
        })?;
        NonNull::new(cpu.start().get() as *mut u8)
    }
}

// SAFETY: `dma_alloc` returns fresh, zeroed, page-aligned heap memory that
// nothing else references until `dma_dealloc`; the heap is identity
// mapped, so the returned address is also the physical one.
// `mmio_phys_to_virt` only returns addresses inside BARs this module
// assigned and granted, which the final map covers as device memory and
// nothing else in the hypervisor accesses.
unsafe impl Hal for HypHal {
    fn dma_alloc(
        pages: usize,
        _direction: BufferDirection,
    ) -> (virtio_drivers::PhysAddr, NonNull<u8>) {
        let Some(layout) = dma_layout(pages) else {
            return (0, NonNull::dangling());
        };
        // SAFETY: `layout` has a non-zero size (pages ≥ 1 is checked).
        let memory = unsafe { alloc_zeroed(layout) };
        match NonNull::new(memory) {
            Some(memory) => (memory.as_ptr() as u64, memory),
            // virtio-drivers reports a physical address of 0 as DmaError.
            None => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(
        _paddr: virtio_drivers::PhysAddr,
        vaddr: NonNull<u8>,
        pages: usize,
    ) -> i32 {
        if let Some(layout) = dma_layout(pages) {
            // SAFETY: The caller passes back what `dma_alloc` returned for
            // the same `pages`, so this is the same layout and pointer.
            unsafe { dealloc(vaddr.as_ptr(), layout) };
        }
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: virtio_drivers::PhysAddr, size: usize) -> NonNull<u8> {
        match Self::translate(paddr, size as u64) {
            Some(pointer) => pointer,
            // Unreachable: the transport reads BARs and capabilities from
            // `SanitisedConfig`'s copies, which `probe` checked against the
            // BARs it granted. The trait has no way to return an error.
            None => panic!("host disk: virtio MMIO at PCI {paddr:#x} is outside its BARs"),
        }
    }

    unsafe fn share(
        buffer: NonNull<[u8]>,
        _direction: BufferDirection,
    ) -> virtio_drivers::PhysAddr {
        // Identity map: the virtual address is the physical one.
        buffer.cast::<u8>().as_ptr() as u64
    }

    unsafe fn unshare(
        _paddr: virtio_drivers::PhysAddr,
        _buffer: NonNull<[u8]>,
        _direction: BufferDirection,
    ) {
    }
}

fn dma_layout(pages: usize) -> Option<Layout> {
    if pages == 0 {
        return None;
    }
    Layout::from_size_align(pages.checked_mul(PAGE_SIZE)?, PAGE_SIZE).ok()
}
