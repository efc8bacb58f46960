//! One walk over a checked device tree, collecting what [`Platform`] holds.

use fdt::node::FdtNode;
use fdt::Fdt;

use crate::error::{DtError, NodeName, StructureError};
use crate::{
    Cpu, EnableMethod, Gicv3, Interrupt, Mpidr, PciSpace, PciWindow, PcieEcam, PhysAddr, PhysRange,
    Pl011, Platform, PsciConduit, Smmuv3, TimerIrqs, MAX_BOOTARGS, MAX_CPUS, MAX_DEPTH,
    MAX_MEMORY_REGIONS, MAX_PCI_WINDOWS, MAX_RESERVED,
};

/// A bus: the address format a node gives its children, and how those
/// addresses reach the CPU (Devicetree Specification v0.4 §2.3.5-§2.3.8).
struct Bus<'p, 'a> {
    address_cells: u32,
    size_cells: u32,
    /// `None` for the root, whose child addresses are CPU addresses.
    up: Option<Link<'p, 'a>>,
}

struct Link<'p, 'a> {
    /// The bus node's `ranges`: `None` when absent (or in a format we do not
    /// translate through), so its children are not memory-mapped; empty for
    /// an identity mapping.
    ranges: Option<&'a [u8]>,
    parent: &'p Bus<'p, 'a>,
}

impl Bus<'_, '_> {
    /// The CPU address of the child region `[addr, addr + size)`, or `None`
    /// if some parent does not map all of it.
    fn translate(&self, mut addr: u64, size: u64) -> Option<u64> {
        let mut bus = self;
        // Each step moves one level up, so this ends at the root.
        while let Some(link) = &bus.up {
            let ranges = link.ranges?;
            if !ranges.is_empty() {
                addr = map_through(ranges, addr, size, bus, link.parent)?;
            }
            bus = link.parent;
        }
        Some(addr)
    }
}

/// Finds the `ranges` entry (child address, parent address, size) that holds
/// all of `[addr, addr + size)` and maps `addr` through it.
fn map_through(ranges: &[u8], addr: u64, size: u64, child: &Bus, parent: &Bus) -> Option<u64> {
    let (ca, pa, cs) = (
        child.address_cells as usize * 4,
        parent.address_cells as usize * 4,
        child.size_cells as usize * 4,
    );
    let end = addr.checked_add(size)?;
    ranges.chunks_exact(ca + pa + cs).find_map(|entry| {
        let child_base = be_cells(&entry[..ca])?;
        let parent_base = be_cells(&entry[ca..ca + pa])?;
        let len = be_cells(&entry[ca + pa..])?;
        let inside = addr >= child_base && end <= child_base.checked_add(len)?;
        inside.then(|| parent_base.checked_add(addr - child_base))?
    })
}

/// A number of one or two big-endian cells.
fn be_cells(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        4 => Some(u64::from(u32::from_be_bytes(bytes.try_into().ok()?))),
        8 => Some(u64::from_be_bytes(bytes.try_into().ok()?)),
        _ => None,
    }
}

/// A string property: UTF-8 ending in its NUL (Devicetree Specification
/// v0.4 §2.2.4.1).
fn string(value: &[u8]) -> Option<&str> {
    core::str::from_utf8(value.strip_suffix(&[0])?).ok()
}

/// Whether a `<stringlist>` holds `wanted`.
fn string_list_has(value: &[u8], wanted: &str) -> bool {
    value.split(|&b| b == 0).any(|s| s == wanted.as_bytes())
}

/// The properties of one node that the walk looks at.
#[derive(Default)]
struct Props<'a> {
    compatible: &'a [u8],
    device_type: Option<&'a [u8]>,
    status: Option<&'a [u8]>,
    reg: Option<&'a [u8]>,
    ranges: Option<&'a [u8]>,
    interrupts: Option<&'a [u8]>,
    address_cells: Option<u32>,
    size_cells: Option<u32>,
}

impl<'a> Props<'a> {
    fn of(node: FdtNode<'_, 'a>) -> Self {
        let mut p = Self::default();
        for prop in node.properties() {
            let v = prop.value;
            match prop.name {
                "compatible" => p.compatible = v,
                "device_type" => p.device_type = Some(v),
                "status" => p.status = Some(v),
                "reg" => p.reg = Some(v),
                "ranges" => p.ranges = Some(v),
                "interrupts" => p.interrupts = Some(v),
                // The structure check made these exactly one cell.
                "#address-cells" => p.address_cells = be_cells(v).map(|n| n as u32),
                "#size-cells" => p.size_cells = be_cells(v).map(|n| n as u32),
                _ => {}
            }
        }
        p
    }

    fn compatible_with(&self, wanted: &str) -> bool {
        string_list_has(self.compatible, wanted)
    }

    /// `status` absent, `"okay"` or the older `"ok"` (§2.3.4).
    fn enabled(&self) -> bool {
        self.status
            .is_none_or(|s| matches!(string(s), Some("okay" | "ok")))
    }

    fn is_device_type(&self, wanted: &str) -> bool {
        self.device_type.and_then(string) == Some(wanted)
    }
}

fn bad_property(node: FdtNode<'_, '_>, property: &'static str) -> DtError {
    DtError::BadProperty {
        node: NodeName::new(node.name),
        property,
    }
}

/// The `(address, size)` entries of a node's `reg`, in the parent bus's
/// format, checked to be a non-empty whole number of entries of one- or
/// two-cell numbers.
fn reg_entries<'a>(
    node: FdtNode<'_, 'a>,
    reg: Option<&'a [u8]>,
    bus: &Bus,
) -> Result<impl Iterator<Item = (u64, u64)> + 'a, DtError> {
    let reg = reg.ok_or_else(|| DtError::MissingReg {
        node: NodeName::new(node.name),
    })?;
    let bad_reg = || DtError::BadReg {
        node: NodeName::new(node.name),
        len: reg.len(),
        address_cells: bus.address_cells,
        size_cells: bus.size_cells,
    };
    let (ac, sc) = (bus.address_cells, bus.size_cells);
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) {
        return Err(bad_reg());
    }
    let (ac, entry) = (ac as usize, (ac + sc) as usize * 4);
    if reg.is_empty() || reg.len() % entry != 0 {
        return Err(bad_reg());
    }
    Ok(reg.chunks_exact(entry).filter_map(move |e| {
        // Both halves are one or two cells, so these always decode.
        Some((be_cells(&e[..ac * 4])?, be_cells(&e[ac * 4..])?))
    }))
}

/// A `reg` entry as a CPU physical range.
fn cpu_range(node: FdtNode<'_, '_>, bus: &Bus, addr: u64, size: u64) -> Result<PhysRange, DtError> {
    let start = bus
        .translate(addr, size)
        .ok_or_else(|| DtError::Untranslatable {
            node: NodeName::new(node.name),
        })?;
    PhysRange::new(PhysAddr(start), size).ok_or_else(|| DtError::AddressOverflow {
        node: NodeName::new(node.name),
    })
}

/// The first `reg` entry as a CPU physical range.
fn first_region(node: FdtNode<'_, '_>, props: &Props, bus: &Bus) -> Result<PhysRange, DtError> {
    match reg_entries(node, props.reg, bus)?.next() {
        Some((addr, size)) => cpu_range(node, bus, addr, size),
        None => Err(DtError::MissingReg {
            node: NodeName::new(node.name),
        }),
    }
}

/// One three-cell GIC interrupt specifier (type, number, flags); the
/// binding's type cell is 0 for an SPI and 1 for a PPI.
fn interrupt(spec: &[u8]) -> Option<Interrupt> {
    let number = u32::try_from(be_cells(spec.get(4..8)?)?).ok()?;
    let irq = match be_cells(spec.get(0..4)?)? {
        0 => Interrupt::Spi(number),
        1 => Interrupt::Ppi(number),
        _ => return None,
    };
    // Only numbers that name a real INTID are accepted.
    irq.intid().map(|_| irq)
}

/// Interrupt specifiers of a node whose interrupt parent is the GIC.
fn interrupts(value: &[u8]) -> Option<impl Iterator<Item = Option<Interrupt>> + '_> {
    value
        .len()
        .is_multiple_of(12)
        .then(|| value.chunks_exact(12).map(interrupt))
}

/// Pushes onto a bounded list, counting what does not fit so the error can
/// say how many there were.
fn push_counted<T, const N: usize>(list: &mut heapless::Vec<T, N>, count: &mut usize, item: T) {
    *count += 1;
    // Overflow is reported once the walk has counted everything.
    let _ = list.push(item);
}

/// What the walk has found so far.
struct Found<'a> {
    /// Path of the node being visited: `path[1..=depth]` are the names.
    path: [&'a str; MAX_DEPTH + 1],
    /// `/chosen/stdout-path` without options, after alias resolution.
    stdout: Option<&'a str>,
    memory: heapless::Vec<PhysRange, MAX_MEMORY_REGIONS>,
    memory_count: usize,
    reserved: heapless::Vec<PhysRange, MAX_RESERVED>,
    reserved_count: usize,
    cpus: heapless::Vec<Cpu, MAX_CPUS>,
    cpu_count: usize,
    gic: Option<(Gicv3, u32)>,
    its: Option<PhysRange>,
    first_uart: Option<Pl011>,
    stdout_uart: Option<Pl011>,
    smmu: Option<Smmuv3>,
    pcie: Option<PcieEcam>,
    psci: Option<PsciConduit>,
    timer: Option<FdtNode<'a, 'a>>,
    timer_interrupts: &'a [u8],
}

pub(crate) fn parse(dtb: &[u8]) -> Result<Platform, DtError> {
    walk_then(dtb, validate)
}

/// The console alone, for the early boot: found by the same walk as
/// [`parse`], but without requiring the rest of the platform, so that the
/// error that a required node is missing can still be printed.
pub(crate) fn console(dtb: &[u8]) -> Result<Option<Pl011>, DtError> {
    walk_then(dtb, |found, _| Ok(found.stdout_uart.or(found.first_uart)))
}

/// Walks the whole tree once, then hands what it found (and `/chosen`) to `finish`.
fn walk_then<R>(
    dtb: &[u8],
    finish: impl for<'a> FnOnce(Found<'a>, Option<FdtNode<'a, 'a>>) -> Result<R, DtError>,
) -> Result<R, DtError> {
    // `structure::check` has passed, so the header is good and every walk
    // below stays inside the blob.
    let fdt = Fdt::new(dtb)?;
    let Some(root) = fdt.all_nodes().next() else {
        // Not reached: the structure check requires the blob to start with
        // the root node.
        return Err(StructureError::Truncated { offset: 0 }.into());
    };
    let root_props = Props::of(root);
    let root_bus = Bus {
        // §2.3.5: a missing #address-cells means 2, #size-cells 1.
        address_cells: root_props.address_cells.unwrap_or(2),
        size_cells: root_props.size_cells.unwrap_or(1),
        up: None,
    };

    let mut found = Found {
        path: [""; MAX_DEPTH + 1],
        stdout: None,
        memory: heapless::Vec::new(),
        memory_count: 0,
        reserved: heapless::Vec::new(),
        reserved_count: 0,
        cpus: heapless::Vec::new(),
        cpu_count: 0,
        gic: None,
        its: None,
        first_uart: None,
        stdout_uart: None,
        smmu: None,
        pcie: None,
        psci: None,
        timer: None,
        timer_interrupts: &[],
    };

    let chosen = root.children().find(|n| n.name == "chosen");
    let aliases = root.children().find(|n| n.name == "aliases");
    found.stdout = chosen.and_then(|c| stdout_path(c, aliases));

    for r in fdt.memory_reservations() {
        let (addr, size) = (r.address() as usize as u64, r.size() as u64);
        if size == 0 {
            continue;
        }
        let range =
            PhysRange::new(PhysAddr(addr), size).ok_or_else(|| DtError::AddressOverflow {
                node: NodeName::new("/memreserve/"),
            })?;
        push_counted(&mut found.reserved, &mut found.reserved_count, range);
    }

    for child in root.children() {
        found.walk(child, &root_bus, 1)?;
    }
    finish(found, chosen)
}

/// Checks that the required pieces were found and within capacity.
fn validate<'a>(found: Found<'a>, chosen: Option<FdtNode<'a, 'a>>) -> Result<Platform, DtError> {
    if found.memory_count == 0 {
        return Err(DtError::NoMemory);
    }
    if found.memory_count > MAX_MEMORY_REGIONS {
        return Err(DtError::TooManyMemoryRegions(found.memory_count));
    }
    if found.cpu_count == 0 {
        return Err(DtError::NoCpus);
    }
    if found.cpu_count > MAX_CPUS {
        return Err(DtError::TooManyCpus(found.cpu_count));
    }
    if found.reserved_count > MAX_RESERVED {
        return Err(DtError::TooManyReserved(found.reserved_count));
    }
    let Some((mut gic, interrupt_cells)) = found.gic else {
        return Err(DtError::NoGic);
    };
    gic.its = found.its;

    let timer = match found.timer {
        Some(node) => Some(timer_irqs(node, found.timer_interrupts, interrupt_cells)?),
        None => None,
    };
    let (bootargs, initrd) = match chosen {
        Some(c) => (bootargs(c)?, initrd(c)?),
        None => (heapless::String::new(), None),
    };

    Ok(Platform {
        memory: found.memory,
        reserved: found.reserved,
        cpus: found.cpus,
        gic,
        uart: found.stdout_uart.or(found.first_uart),
        smmu: found.smmu,
        pcie: found.pcie,
        psci: found.psci,
        initrd,
        bootargs,
        timer,
    })
}

/// `/chosen/stdout-path` up to any `:options`, with an alias (a first
/// component without `/`) resolved through `/aliases` (§3.3, §3.6).
fn stdout_path<'a>(chosen: FdtNode<'_, 'a>, aliases: Option<FdtNode<'_, 'a>>) -> Option<&'a str> {
    let value = string(chosen.property("stdout-path")?.value)?;
    let path = value.split(':').next()?;
    if path.starts_with('/') {
        return Some(path);
    }
    // An alias names a full path; only one level is followed, so an alias
    // naming itself cannot loop.
    let (alias, rest) = path.split_once('/').unwrap_or((path, ""));
    let target = string(aliases?.property(alias)?.value)?;
    // Only a bare alias can be used without building a new string.
    (rest.is_empty() && target.starts_with('/')).then_some(target)
}

/// Whether the node at `names` (root excluded) is the one `path` names.
/// A path component without a unit address matches any unit address (§2.2.3).
fn path_is(names: &[&str], path: &str) -> bool {
    let mut wanted = path.split('/').filter(|c| !c.is_empty());
    for name in names {
        let Some(component) = wanted.next() else {
            return false;
        };
        let matches = if component.contains('@') {
            *name == component
        } else {
            name.split('@').next() == Some(component)
        };
        if !matches {
            return false;
        }
    }
    wanted.next().is_none()
}

impl<'a> Found<'a> {
    fn walk(
        &mut self,
        node: FdtNode<'a, 'a>,
        bus: &Bus<'_, 'a>,
        depth: usize,
    ) -> Result<(), DtError> {
        let props = Props::of(node);
        if !props.enabled() {
            return Ok(());
        }
        // The structure check caps nesting at MAX_DEPTH.
        let Some(slot) = self.path.get_mut(depth) else {
            return Ok(());
        };
        *slot = node.name;
        let parent = &self.path[1..depth];

        if props.is_device_type("memory") {
            for (addr, size) in reg_entries(node, props.reg, bus)? {
                if size != 0 {
                    let range = cpu_range(node, bus, addr, size)?;
                    push_counted(&mut self.memory, &mut self.memory_count, range);
                }
            }
        } else if parent == ["reserved-memory"] {
            // Children without `reg` are allocated by the OS (a `size`), not
            // fixed carve-outs.
            if props.reg.is_some() {
                for (addr, size) in reg_entries(node, props.reg, bus)? {
                    let range = cpu_range(node, bus, addr, size)?;
                    push_counted(&mut self.reserved, &mut self.reserved_count, range);
                }
            }
        } else if parent == ["cpus"]
            && (props.is_device_type("cpu") || node.name.split('@').next() == Some("cpu"))
        {
            let cpu = cpu(node, &props, bus)?;
            push_counted(&mut self.cpus, &mut self.cpu_count, cpu);
        } else if props.compatible_with("arm,gic-v3") {
            if self.gic.is_none() {
                self.gic = Some(gic(node, &props, bus)?);
            }
        } else if props.compatible_with("arm,gic-v3-its") {
            if self.its.is_none() {
                self.its = Some(first_region(node, &props, bus)?);
            }
        } else if props.compatible_with("arm,pl011") {
            let uart = Pl011 {
                regs: first_region(node, &props, bus)?,
                // Its parent is the GIC on every machine this runs on; an
                // unreadable specifier just means no input interrupt.
                interrupt: props
                    .interrupts
                    .and_then(|v| interrupts(v)?.next().flatten()),
            };
            self.first_uart.get_or_insert(uart);
            if self
                .stdout
                .is_some_and(|p| path_is(&self.path[1..=depth], p))
            {
                self.stdout_uart = Some(uart);
            }
        } else if props.compatible_with("arm,smmu-v3") {
            if self.smmu.is_none() {
                self.smmu = Some(Smmuv3 {
                    regs: first_region(node, &props, bus)?,
                });
            }
        } else if props.compatible_with("pci-host-ecam-generic") {
            if self.pcie.is_none() {
                self.pcie = Some(pcie(node, &props, bus)?);
            }
        } else if props.compatible_with("arm,armv8-timer") {
            if self.timer.is_none() {
                self.timer = Some(node);
                self.timer_interrupts = props.interrupts.unwrap_or_default();
            }
        } else if props
            .compatible
            .split(|&b| b == 0)
            .any(|c| c.starts_with(b"arm,psci"))
            && self.psci.is_none()
        {
            self.psci = Some(
                match node.property("method").and_then(|m| string(m.value)) {
                    Some("smc") => PsciConduit::Smc,
                    Some("hvc") => PsciConduit::Hvc,
                    _ => return Err(bad_property(node, "method")),
                },
            );
        }

        let child_bus = Bus {
            address_cells: props.address_cells.unwrap_or(2),
            size_cells: props.size_cells.unwrap_or(1),
            up: Some(Link {
                ranges: checked_ranges(node, &props, bus)?,
                parent: bus,
            }),
        };
        for child in node.children() {
            self.walk(child, &child_bus, depth + 1)?;
        }
        Ok(())
    }
}

/// A node's `ranges` if its children's addresses can be translated through
/// it; a wrong length for the cell counts is an error.
fn checked_ranges<'a>(
    node: FdtNode<'_, 'a>,
    props: &Props<'a>,
    parent: &Bus,
) -> Result<Option<&'a [u8]>, DtError> {
    let Some(ranges) = props.ranges else {
        return Ok(None);
    };
    let (ac, sc) = (
        props.address_cells.unwrap_or(2),
        props.size_cells.unwrap_or(1),
    );
    let cells_ok = [ac, sc, parent.address_cells]
        .iter()
        .all(|n| (1..=2).contains(n));
    if !cells_ok {
        // PCI buses (three address cells) and the like: their children are
        // not memory-mapped devices we look for.
        return Ok(None);
    }
    let entry = (ac + sc + parent.address_cells) as usize * 4;
    if ranges.len() % entry != 0 {
        return Err(bad_property(node, "ranges"));
    }
    Ok(Some(ranges))
}

fn cpu(node: FdtNode<'_, '_>, props: &Props, bus: &Bus) -> Result<Cpu, DtError> {
    // The Arm CPU binding: /cpus has #size-cells = 0 and each reg is one
    // MPIDR of #address-cells (1 or 2) cells.
    let reg = props.reg.ok_or_else(|| DtError::MissingReg {
        node: NodeName::new(node.name),
    })?;
    let mpidr = match bus.size_cells {
        // be_cells takes only one or two cells, so any other
        // #address-cells fails here.
        0 if reg.len() / 4 == bus.address_cells as usize => be_cells(reg),
        _ => None,
    };
    let mpidr = mpidr.ok_or_else(|| DtError::BadReg {
        node: NodeName::new(node.name),
        len: reg.len(),
        address_cells: bus.address_cells,
        size_cells: bus.size_cells,
    })?;
    let enable_method = match node.property("enable-method") {
        None => EnableMethod::None,
        Some(p) => match string(p.value) {
            Some("psci") => EnableMethod::Psci,
            Some("spin-table") => EnableMethod::SpinTable,
            _ => EnableMethod::Other,
        },
    };
    Ok(Cpu {
        mpidr: Mpidr(mpidr),
        enable_method,
    })
}

/// The GIC and its `#interrupt-cells`, needed to read other nodes' interrupts.
fn gic(node: FdtNode<'_, '_>, props: &Props, bus: &Bus) -> Result<(Gicv3, u32), DtError> {
    // The arm,gic-v3 binding: reg is GICD, then the redistributor regions,
    // then optional GICC, GICH, GICV.
    let mut regs = reg_entries(node, props.reg, bus)?;
    let (Some(d), Some(r)) = (regs.next(), regs.next()) else {
        return Err(bad_property(node, "reg"));
    };
    let interrupt_cells = node
        .property("#interrupt-cells")
        .and_then(|p| be_cells(p.value))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad_property(node, "#interrupt-cells"))?;
    let maintenance = match props.interrupts {
        None => None,
        Some(v) if interrupt_cells == 3 => Some(
            interrupts(v)
                .and_then(|mut i| i.next().flatten())
                .ok_or_else(|| bad_property(node, "interrupts"))?,
        ),
        Some(_) => return Err(bad_property(node, "#interrupt-cells")),
    };
    let gic = Gicv3 {
        distributor: cpu_range(node, bus, d.0, d.1)?,
        redistributors: cpu_range(node, bus, r.0, r.1)?,
        its: None,
        maintenance,
    };
    Ok((gic, interrupt_cells))
}

fn timer_irqs(
    node: FdtNode<'_, '_>,
    value: &[u8],
    interrupt_cells: u32,
) -> Result<TimerIrqs, DtError> {
    let bad = || bad_property(node, "interrupts");
    if interrupt_cells != 3 {
        return Err(bad());
    }
    let mut irqs = interrupts(value).ok_or_else(bad)?;
    let mut next = || irqs.next().map(|i| i.ok_or_else(bad)).transpose();
    let (Some(secure_phys), Some(phys), Some(virt), Some(hyp_phys)) =
        (next()?, next()?, next()?, next()?)
    else {
        return Err(bad());
    };
    Ok(TimerIrqs {
        secure_phys,
        phys,
        virt,
        hyp_phys,
        hyp_virt: next()?,
    })
}

fn pcie(node: FdtNode<'_, '_>, props: &Props, bus: &Bus) -> Result<PcieEcam, DtError> {
    let ecam = first_region(node, props, bus)?;
    let (first_bus, last_bus) = match node.property("bus-range") {
        None => (0, 255),
        Some(p) => {
            let bus_number = |b: &[u8]| be_cells(b).and_then(|n| u8::try_from(n).ok());
            match (p.value.len(), p.value.split_at_checked(4)) {
                (8, Some((f, l))) => match (bus_number(f), bus_number(l)) {
                    (Some(f), Some(l)) if f <= l => (f, l),
                    _ => return Err(bad_property(node, "bus-range")),
                },
                _ => return Err(bad_property(node, "bus-range")),
            }
        }
    };
    // PCIe Base Specification §7.2.2: ECAM gives each bus 1 MiB.
    let needed = (u64::from(last_bus - first_bus) + 1) << 20;
    if ecam.size() < needed {
        return Err(bad_property(node, "bus-range"));
    }

    // The PCI bus binding: three address cells (phys.hi, phys.mid, phys.lo),
    // then the parent's address, then #size-cells of size.
    let (ac, sc) = (
        props.address_cells.unwrap_or(2),
        props.size_cells.unwrap_or(1),
    );
    let bad_ranges = || bad_property(node, "ranges");
    if ac != 3 || !(1..=2).contains(&sc) || !(1..=2).contains(&bus.address_cells) {
        return Err(bad_ranges());
    }
    let pa = bus.address_cells as usize * 4;
    let entry = 12 + pa + sc as usize * 4;
    let ranges = props.ranges.unwrap_or_default();
    if !ranges.len().is_multiple_of(entry) {
        return Err(bad_ranges());
    }
    let mut windows = heapless::Vec::new();
    let mut count = 0;
    for e in ranges.chunks_exact(entry) {
        let hi = be_cells(&e[0..4]).ok_or_else(bad_ranges)?;
        let pci_addr = be_cells(&e[4..12]).ok_or_else(bad_ranges)?;
        let cpu_addr = be_cells(&e[12..12 + pa]).ok_or_else(bad_ranges)?;
        let size = be_cells(&e[12 + pa..]).ok_or_else(bad_ranges)?;
        let space = match (hi >> 24) & 3 {
            1 => PciSpace::Io,
            2 => PciSpace::Mem32,
            3 => PciSpace::Mem64,
            // Configuration space is reached through ECAM, not a window.
            _ => return Err(bad_ranges()),
        };
        let window = PciWindow {
            space,
            prefetchable: hi & (1 << 30) != 0,
            pci_addr,
            cpu: cpu_range(node, bus, cpu_addr, size)?,
        };
        push_counted(&mut windows, &mut count, window);
    }
    if count > MAX_PCI_WINDOWS {
        return Err(DtError::TooManyPciWindows(count));
    }
    Ok(PcieEcam {
        ecam,
        first_bus,
        last_bus,
        windows,
    })
}

fn bootargs(chosen: FdtNode<'_, '_>) -> Result<heapless::String<MAX_BOOTARGS>, DtError> {
    let mut out = heapless::String::new();
    if let Some(p) = chosen.property("bootargs") {
        let s = string(p.value).ok_or_else(|| bad_property(chosen, "bootargs"))?;
        out.push_str(s)
            .map_err(|_| DtError::BootargsTooLong(s.len()))?;
    }
    Ok(out)
}

fn initrd(chosen: FdtNode<'_, '_>) -> Result<Option<PhysRange>, DtError> {
    // Linux's chosen binding: each is one or two cells, whatever the root's
    // #address-cells.
    let read = |name: &'static str| {
        chosen
            .property(name)
            .map(|p| be_cells(p.value).ok_or_else(|| bad_property(chosen, name)))
            .transpose()
    };
    match (read("linux,initrd-start")?, read("linux,initrd-end")?) {
        (None, None) => Ok(None),
        (Some(start), Some(end)) => PhysRange::from_bounds(PhysAddr(start), PhysAddr(end))
            .map(Some)
            .ok_or(DtError::InitrdEndBeforeStart { start, end }),
        (Some(_), None) => Err(bad_property(chosen, "linux,initrd-end")),
        (None, Some(_)) => Err(bad_property(chosen, "linux,initrd-start")),
    }
}
