//! The kernel side of the recipe: the bootable `Image` from a Debian kernel
//! package's `/boot/vmlinuz-*`, and which of its modules the guest loads.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use guest_boot::ImageHeader;
use object::elf::FileHeader64;
use object::read::elf::{FileHeader, SectionHeader};
use object::Endianness;

/// The two bytes every gzip stream starts with (RFC 1952, section 2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Refuse to inflate a "kernel" beyond this: a 6.1 arm64 `Image` is about
/// 30-40 MiB, so anything this large is not one.
const MAX_IMAGE_LEN: u64 = 256 << 20;

/// The bootable `Image` in `vmlinuz`, and its checked header.
///
/// Debian's arm64 `vmlinuz` is either gzip-compressed (unsigned kernel
/// packages) or the plain `Image` with its EFI stub (the signed packages,
/// whose PE signature must cover the bytes the firmware loads); both end up
/// as the plain `Image`. The header goes through the same parser the
/// hypervisor boots guests with, so what passes here loads there.
///
/// # Errors
///
/// The gzip stream is corrupt or inflates beyond [`MAX_IMAGE_LEN`], or the
/// result is not an arm64 `Image` (see [`ImageHeader::parse`]).
pub fn image_from_vmlinuz(vmlinuz: Vec<u8>) -> Result<(Vec<u8>, ImageHeader)> {
    let image = if vmlinuz.starts_with(&GZIP_MAGIC) {
        let mut image = Vec::new();
        GzDecoder::new(vmlinuz.as_slice())
            .take(MAX_IMAGE_LEN + 1)
            .read_to_end(&mut image)
            .context("decompressing the gzip-compressed kernel")?;
        ensure!(
            image.len() as u64 <= MAX_IMAGE_LEN,
            "the kernel inflates to more than {MAX_IMAGE_LEN} bytes: not an Image"
        );
        image
    } else {
        vmlinuz
    };
    let header = ImageHeader::parse(&image).context("checking the arm64 Image header")?;
    Ok((image, header))
}

/// A kernel package's modules: what is built in and where the loadable ones are.
#[derive(Debug)]
pub struct ModuleTree {
    /// `/lib/modules/<release>`.
    root: PathBuf,
    /// Names of built-in modules (from `modules.builtin`).
    builtin: BTreeSet<String>,
    /// Loadable modules: name to path relative to `root` (from `modules.order`).
    loadable: BTreeMap<String, String>,
}

/// What loading a set of modules takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    /// Requested or needed modules that are built into the kernel.
    pub builtin: Vec<String>,
    /// Modules to load, each after the modules it depends on.
    pub load: Vec<Module>,
}

/// One loadable module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its name, with `_` (the kernel's spelling; file names may use `-`).
    pub name: String,
    /// Its `.ko` file, relative to `/lib/modules/<release>`.
    pub path: String,
}

impl ModuleTree {
    /// Reads `modules.builtin` and `modules.order` under `root`, a
    /// `/lib/modules/<release>` directory. A package has no `modules.dep`:
    /// `depmod` makes that when the package is installed, which it is not
    /// here; dependencies come from each module's own `.modinfo`.
    ///
    /// # Errors
    ///
    /// Either list cannot be read.
    pub fn read(root: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = root.join(name);
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
        };
        let builtin = read("modules.builtin")?
            .lines()
            .filter_map(module_name)
            .collect();
        let loadable = read("modules.order")?
            .lines()
            .filter_map(|line| Some((module_name(line)?, line.trim().to_owned())))
            .collect();
        Ok(Self {
            root: root.to_path_buf(),
            builtin,
            loadable,
        })
    }

    /// Absolute path of a module's file.
    pub fn file(&self, module: &Module) -> PathBuf {
        self.root.join(&module.path)
    }

    /// What it takes to have `wanted` (module names): the built-in ones, and
    /// the others with everything they depend on, in an order `insmod` can
    /// load them.
    ///
    /// # Errors
    ///
    /// A module is neither built in nor loadable, is compressed (busybox
    /// `insmod` here loads plain `.ko` files only), or its `.modinfo` cannot
    /// be read.
    pub fn plan(&self, wanted: &[&str]) -> Result<ModulePlan> {
        let mut plan = ModulePlan {
            builtin: Vec::new(),
            load: Vec::new(),
        };
        let mut visiting = BTreeSet::new();
        for name in wanted {
            self.visit(&normalise(name), &mut visiting, &mut plan)?;
        }
        Ok(plan)
    }

    /// Depth-first: a module goes into the plan after its dependencies.
    fn visit(
        &self,
        name: &str,
        visiting: &mut BTreeSet<String>,
        plan: &mut ModulePlan,
    ) -> Result<()> {
        let done =
            plan.builtin.iter().any(|b| b == name) || plan.load.iter().any(|m| m.name == name);
        if done {
            return Ok(());
        }
        if self.builtin.contains(name) {
            plan.builtin.push(name.to_owned());
            return Ok(());
        }
        let Some(path) = self.loadable.get(name) else {
            bail!(
                "module {name} is neither built into the kernel nor in modules.order of {}",
                self.root.display()
            );
        };
        ensure!(
            path.ends_with(".ko"),
            "module {name} is {path}: only uncompressed .ko files are supported"
        );
        // Module dependencies form a DAG (the kernel refuses cycles); a
        // cycle here means a corrupt package, and must not recurse forever.
        ensure!(
            visiting.insert(name.to_owned()),
            "module {name} depends on itself (a dependency cycle)"
        );
        let file = self.root.join(path);
        let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let depends =
            modinfo_depends(&data).with_context(|| format!("reading {}", file.display()))?;
        for dependency in depends {
            self.visit(&dependency, visiting, plan)?;
        }
        visiting.remove(name);
        plan.load.push(Module {
            name: name.to_owned(),
            path: path.clone(),
        });
        Ok(())
    }
}

/// The module name of a `modules.builtin` or `modules.order` line such as
/// `kernel/drivers/char/hw_random/virtio-rng.ko`: `virtio_rng`.
fn module_name(line: &str) -> Option<String> {
    let file = line.trim().rsplit('/').next()?;
    let stem = file.split(".ko").next()?;
    (!stem.is_empty() && file.len() > stem.len()).then(|| normalise(stem))
}

/// The kernel treats `-` and `_` in module names alike and reports `_`.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// The `depends=` list of a module's `.modinfo` section: NUL-terminated
/// `key=value` strings that modpost writes (`scripts/mod/modpost.c`).
///
/// # Errors
///
/// The file is not a 64-bit ELF or has no `.modinfo` section.
pub fn modinfo_depends(ko: &[u8]) -> Result<Vec<String>> {
    let header = FileHeader64::<Endianness>::parse(ko).context("not a 64-bit ELF")?;
    let endian = header.endian().context("bad ELF byte order")?;
    let sections = header.sections(endian, ko).context("bad section table")?;
    let (_, modinfo) = sections
        .section_by_name(endian, b".modinfo")
        .context("no .modinfo section: not a kernel module")?;
    let modinfo = modinfo
        .data(endian, ko)
        .map_err(|_| anyhow::anyhow!(".modinfo runs past the end of the file"))?;
    Ok(parse_depends(modinfo))
}

/// The names in the `depends=` entry of `.modinfo` bytes (none if absent
/// or empty).
fn parse_depends(modinfo: &[u8]) -> Vec<String> {
    modinfo
        .split(|&b| b == 0)
        .find_map(|entry| entry.strip_prefix(b"depends="))
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|name| !name.is_empty())
                .map(normalise)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    /// A fake 4 KiB `Image`: a valid header (`text_offset` 0, `image_size`
    /// 8 KiB, 4 KiB pages) and zeros.
    fn fake_image() -> Vec<u8> {
        let mut image = vec![0; 4096];
        image[16..24].copy_from_slice(&8192u64.to_le_bytes());
        image[24..32].copy_from_slice(&0b0010u64.to_le_bytes());
        image[56..60].copy_from_slice(b"ARM\x64");
        image
    }

    #[test]
    fn a_plain_image_is_used_as_it_is() {
        let (image, header) = image_from_vmlinuz(fake_image()).unwrap();
        assert_eq!(image, fake_image());
        assert_eq!(header.image_size(), 8192);
    }

    #[test]
    fn a_gzip_compressed_image_is_inflated() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&fake_image()).unwrap();
        let vmlinuz = encoder.finish().unwrap();
        let (image, header) = image_from_vmlinuz(vmlinuz).unwrap();
        assert_eq!(image, fake_image());
        assert_eq!(header.file_len(), 4096);
    }

    #[test]
    fn a_file_without_the_arm64_magic_is_refused() {
        let mut image = fake_image();
        image[56..60].copy_from_slice(b"ARMe");
        let error = format!("{:#}", image_from_vmlinuz(image).unwrap_err());
        assert!(error.contains("not 0x644d5241"), "{error}");
        let error = format!("{:#}", image_from_vmlinuz(b"short".to_vec()).unwrap_err());
        assert!(error.contains("shorter than the 64-byte"), "{error}");
    }

    #[test]
    fn a_corrupt_gzip_stream_is_an_error() {
        let error = image_from_vmlinuz(vec![0x1f, 0x8b, 8, 0, 0, 0]).unwrap_err();
        assert!(format!("{error:#}").contains("decompressing"), "{error:#}");
    }

    #[test]
    fn module_names_come_from_file_names() {
        let name = |line| module_name(line);
        assert_eq!(
            name("kernel/drivers/char/hw_random/virtio-rng.ko").as_deref(),
            Some("virtio_rng")
        );
        assert_eq!(
            name("kernel/net/core/failover.ko.xz").as_deref(),
            Some("failover")
        );
        assert_eq!(
            name("kernel/drivers/tty/serial/8250.ko\n").as_deref(),
            Some("8250")
        );
        assert_eq!(name(""), None);
        assert_eq!(name("kernel/README"), None);
    }

    #[test]
    fn depends_are_read_from_modinfo_strings() {
        let modinfo = b"license=GPL\0depends=net_failover,virtio,virtio-ring\0retpoline=Y\0\0";
        assert_eq!(
            parse_depends(modinfo),
            ["net_failover", "virtio", "virtio_ring"]
        );
        assert!(parse_depends(b"depends=\0name=virtio\0").is_empty());
        assert!(parse_depends(b"name=failover\0").is_empty());
    }

    #[test]
    fn a_file_that_is_not_an_elf_module_is_an_error() {
        assert!(modinfo_depends(b"not an ELF").is_err());
    }

    /// A tree in a temporary directory with fake modules: ELF files with a
    /// `.modinfo` section are what [`modinfo_depends`] reads.
    fn fake_tree(dir: &Path) -> ModuleTree {
        let modules: &[(&str, &str)] = &[
            ("kernel/net/core/failover.ko", ""),
            ("kernel/drivers/net/net_failover.ko", "failover"),
            ("kernel/drivers/virtio/virtio.ko", ""),
            ("kernel/drivers/virtio/virtio_ring.ko", "virtio"),
            (
                "kernel/drivers/net/virtio_net.ko",
                "net_failover,virtio,virtio_ring",
            ),
            ("kernel/drivers/loop/loop.ko", "loop"),
        ];
        let mut order = String::new();
        for (path, depends) in modules {
            let file = dir.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, elf_with_modinfo(&format!("depends={depends}\0"))).unwrap();
            order.push_str(path);
            order.push('\n');
        }
        std::fs::write(dir.join("modules.order"), order).unwrap();
        std::fs::write(
            dir.join("modules.builtin"),
            "kernel/drivers/tty/serial/amba-pl011.ko\nkernel/drivers/block/virtio_blk.ko\n",
        )
        .unwrap();
        ModuleTree::read(dir).unwrap()
    }

    /// A minimal little-endian ELF64 relocatable file with a `.modinfo`
    /// section and its section-name string table.
    fn elf_with_modinfo(modinfo: &str) -> Vec<u8> {
        const EHDR: usize = 64;
        const SHDR: usize = 64;
        let names = b"\0.modinfo\0.shstrtab\0";
        let modinfo_at = EHDR;
        let names_at = modinfo_at + modinfo.len();
        let shoff = (names_at + names.len()).next_multiple_of(8);
        let mut elf = vec![0u8; shoff + 3 * SHDR];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // ELFDATA2LSB
        elf[6] = 1; // EV_CURRENT
        elf[16..18].copy_from_slice(&1u16.to_le_bytes()); // ET_REL
        elf[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes());
        elf[58..60].copy_from_slice(&(SHDR as u16).to_le_bytes());
        elf[60..62].copy_from_slice(&3u16.to_le_bytes()); // e_shnum
        elf[62..64].copy_from_slice(&2u16.to_le_bytes()); // e_shstrndx
        elf[modinfo_at..names_at].copy_from_slice(modinfo.as_bytes());
        elf[names_at..names_at + names.len()].copy_from_slice(names);
        // Section 1: .modinfo (SHT_PROGBITS); section 2: .shstrtab (SHT_STRTAB).
        for (index, (name, kind, offset, size)) in [
            (1u32, 1u32, modinfo_at, modinfo.len()),
            (10, 3, names_at, names.len()),
        ]
        .into_iter()
        .enumerate()
        {
            let at = shoff + (index + 1) * SHDR;
            elf[at..at + 4].copy_from_slice(&name.to_le_bytes());
            elf[at + 4..at + 8].copy_from_slice(&kind.to_le_bytes());
            elf[at + 24..at + 32].copy_from_slice(&(offset as u64).to_le_bytes());
            elf[at + 32..at + 40].copy_from_slice(&(size as u64).to_le_bytes());
            elf[at + 48..at + 56].copy_from_slice(&1u64.to_le_bytes());
        }
        elf
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hyp-tools-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn modinfo_is_read_from_an_elf_section() {
        let elf = elf_with_modinfo("license=GPL\0depends=virtio,virtio_ring\0");
        assert_eq!(modinfo_depends(&elf).unwrap(), ["virtio", "virtio_ring"]);
    }

    #[test]
    fn a_plan_loads_dependencies_first_and_each_module_once() {
        let dir = temp_dir("modules-plan");
        let tree = fake_tree(&dir);
        let plan = tree
            .plan(&["virtio_net", "virtio-blk", "amba_pl011", "virtio_ring"])
            .unwrap();
        assert_eq!(plan.builtin, ["virtio_blk", "amba_pl011"]);
        let names: Vec<_> = plan.load.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "failover",
                "net_failover",
                "virtio",
                "virtio_ring",
                "virtio_net"
            ]
        );
        assert_eq!(plan.load[0].path, "kernel/net/core/failover.ko");
        assert_eq!(
            tree.file(&plan.load[0]),
            dir.join("kernel/net/core/failover.ko")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn unknown_and_self_dependent_modules_are_errors() {
        let dir = temp_dir("modules-errors");
        let tree = fake_tree(&dir);
        let error = format!("{:#}", tree.plan(&["virtio_gpu"]).unwrap_err());
        assert!(
            error.contains("module virtio_gpu is neither built"),
            "{error}"
        );
        let error = format!("{:#}", tree.plan(&["loop"]).unwrap_err());
        assert!(error.contains("module loop depends on itself"), "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
