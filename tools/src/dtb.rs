//! Device-tree surgery for system tests that boot with a broken DTB.
//!
//! QEMU rewrites the /memory node of any DTB it is given, so a test that wants
//! a broken machine description removes something QEMU leaves alone instead.
//! The tree is read with `fdt` and every surviving node and property is written
//! back with `vm-fdt`: no `dtc` needed on the host.

use anyhow::{ensure, Context, Result};
use fdt::node::FdtNode;
use fdt::Fdt;
use vm_fdt::{FdtReserveEntry, FdtWriter};

/// Byte offset of `boot_cpuid_phys` in the FDT header (Devicetree spec 5.2),
/// which the `fdt` crate does not expose.
const BOOT_CPUID_PHYS_OFFSET: usize = 28;

/// Returns a copy of `dtb` without every node (and its subtree) whose
/// `compatible` list contains exactly `compatible`. Memory reservations and
/// `boot_cpuid_phys` are kept; properties are copied byte for byte. phandle
/// references to removed nodes are left dangling on purpose.
///
/// # Errors
///
/// The blob does not parse, no node matched, or the writer refuses a name.
pub fn remove_compatible(dtb: &[u8], compatible: &str) -> Result<Vec<u8>> {
    let tree = Fdt::new(dtb).map_err(|e| anyhow::anyhow!("invalid device tree: {e:?}"))?;
    let reservations = tree
        .memory_reservations()
        .map(|r| FdtReserveEntry::new(r.address() as u64, r.size() as u64))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("memory reservations: {e}"))?;
    let mut writer = FdtWriter::new_with_mem_reserv(&reservations)
        .map_err(|e| anyhow::anyhow!("memory reservations: {e}"))?;
    let boot_cpu = dtb
        .get(BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4)
        .context("truncated header")?;
    writer.set_boot_cpuid_phys(u32::from_be_bytes(boot_cpu.try_into()?));

    let root = tree.find_node("/").context("no root node")?;
    let mut removed = 0;
    // The root's own name in the blob is empty, whatever `fdt` reports for it.
    copy_node(&mut writer, root, "", compatible, &mut removed)?;
    ensure!(removed > 0, "no node is compatible with \"{compatible}\"");
    writer
        .finish()
        .map_err(|e| anyhow::anyhow!("writing device tree: {e}"))
}

/// Writes `node` under `name`, recursing into children that do not match.
fn copy_node(
    writer: &mut FdtWriter,
    node: FdtNode<'_, '_>,
    name: &str,
    compatible: &str,
    removed: &mut usize,
) -> Result<()> {
    let handle = writer
        .begin_node(name)
        .map_err(|e| anyhow::anyhow!("node `{name}`: {e}"))?;
    for property in node.properties() {
        writer
            .property(property.name, property.value)
            .map_err(|e| anyhow::anyhow!("property `{}` of `{name}`: {e}", property.name))?;
    }
    for child in node.children() {
        if is_compatible(child, compatible) {
            *removed += 1;
        } else {
            copy_node(writer, child, child.name, compatible, removed)?;
        }
    }
    writer
        .end_node(handle)
        .map_err(|e| anyhow::anyhow!("closing `{name}`: {e}"))
}

fn is_compatible(node: FdtNode<'_, '_>, compatible: &str) -> bool {
    node.compatible()
        .is_some_and(|list| list.all().any(|c| c == compatible))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 10.0's own DTB for `-machine virt,virtualization=on,gic-version=3,
    /// iommu=smmuv3 -cpu max -smp 4 -m 4G`, dumped with `dumpdtb=` and trimmed
    /// of the free space after the strings block (totalsize patched to match).
    const QEMU_VIRT: &[u8] = include_bytes!("../tests/fixtures/qemu-virt-gicv3-smp4.dtb");

    const GIC: &str = "arm,gic-v3";

    /// A node's path and its properties (name, value), in tree order.
    type FlatNode = (String, Vec<(String, Vec<u8>)>);

    /// Every node with its properties, in tree order.
    fn flatten(dtb: &[u8]) -> Vec<FlatNode> {
        fn walk(node: FdtNode<'_, '_>, path: String, out: &mut Vec<FlatNode>) {
            let properties = node
                .properties()
                .map(|p| (p.name.to_owned(), p.value.to_owned()))
                .collect();
            out.push((path.clone(), properties));
            for child in node.children() {
                walk(
                    child,
                    format!("{}/{}", path.trim_end_matches('/'), child.name),
                    out,
                );
            }
        }
        let tree = Fdt::new(dtb).unwrap();
        let mut out = Vec::new();
        walk(tree.find_node("/").unwrap(), "/".into(), &mut out);
        out
    }

    #[test]
    fn fixture_has_the_gic_and_its_its() {
        let tree = Fdt::new(QEMU_VIRT).unwrap();
        assert!(tree.find_compatible(&[GIC]).is_some());
        assert!(tree.find_node("/intc@8000000/its@8080000").is_some());
    }

    #[test]
    fn removing_the_gic_drops_exactly_its_subtree() {
        let edited = remove_compatible(QEMU_VIRT, GIC).unwrap();
        let before = flatten(QEMU_VIRT);
        let after = flatten(&edited);
        let kept: Vec<_> = before
            .into_iter()
            .filter(|(path, _)| !path.starts_with("/intc@8000000"))
            .collect();
        assert_eq!(after, kept);
        assert!(Fdt::new(&edited).unwrap().find_compatible(&[GIC]).is_none());
    }

    #[test]
    fn header_fields_and_reservations_survive() {
        let edited = remove_compatible(QEMU_VIRT, GIC).unwrap();
        assert_eq!(
            edited[BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4],
            QEMU_VIRT[BOOT_CPUID_PHYS_OFFSET..BOOT_CPUID_PHYS_OFFSET + 4]
        );
        let reservations = |dtb| {
            Fdt::new(dtb)
                .unwrap()
                .memory_reservations()
                .map(|r| (r.address() as u64, r.size()))
                .collect::<Vec<_>>()
        };
        assert_eq!(reservations(&edited), reservations(QEMU_VIRT));
    }

    #[test]
    fn memreserve_entries_are_kept() {
        // QEMU's DTB has no /memreserve/, so build one that does.
        let reserved = [FdtReserveEntry::new(0x4000_0000, 0x1000).unwrap()];
        let mut writer = FdtWriter::new_with_mem_reserv(&reserved).unwrap();
        writer.set_boot_cpuid_phys(3);
        let root = writer.begin_node("").unwrap();
        writer.property_u32("#address-cells", 2).unwrap();
        for (name, compatible) in [("keep@0", "vendor,keep"), ("drop@1", "vendor,drop")] {
            let node = writer.begin_node(name).unwrap();
            writer.property_string("compatible", compatible).unwrap();
            writer.end_node(node).unwrap();
        }
        writer.end_node(root).unwrap();
        let dtb = writer.finish().unwrap();

        let edited = remove_compatible(&dtb, "vendor,drop").unwrap();
        let tree = Fdt::new(&edited).unwrap();
        let kept: Vec<_> = tree
            .memory_reservations()
            .map(|r| (r.address() as u64, r.size()))
            .collect();
        assert_eq!(kept, [(0x4000_0000, 0x1000)]);
        assert_eq!(edited[BOOT_CPUID_PHYS_OFFSET + 3], 3);
        assert!(tree.find_node("/keep@0").is_some());
        assert!(tree.find_node("/drop@1").is_none());
    }

    #[test]
    fn a_compatible_that_matches_nothing_is_an_error() {
        assert!(remove_compatible(QEMU_VIRT, "vendor,no-such-device").is_err());
        // A prefix of a real compatible string is not a match.
        assert!(remove_compatible(QEMU_VIRT, "arm,gic").is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert!(remove_compatible(b"definitely not a dtb", GIC).is_err());
    }
}
