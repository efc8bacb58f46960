//! Small device trees for tests, built with `vm-fdt`.

#![allow(dead_code)] // Each test binary uses a different subset.

use vm_fdt::{FdtReserveEntry, FdtWriter};

/// A DTB whose root (#address-cells = #size-cells = 2, as on QEMU virt)
/// holds whatever `body` writes.
pub fn dtb(body: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    dtb_with_reservations(&[], body)
}

/// As [`dtb`], with `/memreserve/` entries `(address, size)`.
pub fn dtb_with_reservations(
    reservations: &[(u64, u64)],
    body: impl FnOnce(&mut FdtWriter),
) -> Vec<u8> {
    let entries: Vec<_> = reservations
        .iter()
        .map(|&(a, s)| FdtReserveEntry::new(a, s).unwrap())
        .collect();
    let mut w = FdtWriter::new_with_mem_reserv(&entries).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    body(&mut w);
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

/// A node with `props` written by a closure.
pub fn node(w: &mut FdtWriter, name: &str, props: impl FnOnce(&mut FdtWriter)) {
    let n = w.begin_node(name).unwrap();
    props(w);
    w.end_node(n).unwrap();
}

/// A memory node with 2+2-cell `(base, size)` pairs.
pub fn memory(w: &mut FdtWriter, regions: &[(u64, u64)]) {
    let name = format!("memory@{:x}", regions.first().map_or(0, |r| r.0));
    node(w, &name, |w| {
        w.property_string("device_type", "memory").unwrap();
        let cells: Vec<u64> = regions.iter().flat_map(|&(b, s)| [b, s]).collect();
        w.property_array_u64("reg", &cells).unwrap();
    });
}

/// `/cpus` with `n` PSCI CPUs, MPIDRs 0..n.
pub fn cpus(w: &mut FdtWriter, n: u32) {
    node(w, "cpus", |w| {
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 0).unwrap();
        for i in 0..n {
            node(w, &format!("cpu@{i}"), |w| {
                w.property_string("device_type", "cpu").unwrap();
                w.property_string("compatible", "arm,cortex-a57").unwrap();
                w.property_u32("reg", i).unwrap();
                w.property_string("enable-method", "psci").unwrap();
            });
        }
    });
}

/// A GICv3 laid out like QEMU virt's.
pub fn gic(w: &mut FdtWriter) {
    node(w, "intc@8000000", |w| {
        w.property_string("compatible", "arm,gic-v3").unwrap();
        w.property_array_u64("reg", &[0x800_0000, 0x1_0000, 0x80a_0000, 0xf6_0000])
            .unwrap();
        w.property_u32("#interrupt-cells", 3).unwrap();
        w.property_null("interrupt-controller").unwrap();
        w.property_array_u32("interrupts", &[1, 9, 4]).unwrap();
    });
}

/// A PL011 at `base`.
pub fn pl011(w: &mut FdtWriter, base: u64) {
    node(w, &format!("pl011@{base:x}"), |w| {
        w.property_string_list(
            "compatible",
            vec!["arm,pl011".into(), "arm,primecell".into()],
        )
        .unwrap();
        w.property_array_u64("reg", &[base, 0x1000]).unwrap();
    });
}

/// Memory at 1 GiB (4 GiB of it), four CPUs and a GIC: the least that parses.
pub fn required(w: &mut FdtWriter) {
    memory(w, &[(0x4000_0000, 0x1_0000_0000)]);
    cpus(w, 4);
    gic(w);
}

/// `/chosen` with `props` written by a closure.
pub fn chosen(w: &mut FdtWriter, props: impl FnOnce(&mut FdtWriter)) {
    node(w, "chosen", props);
}
