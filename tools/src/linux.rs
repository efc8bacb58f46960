//! The Linux guest recipe: Debian's arm64 cloud kernel as a bootable `Image`
//! and a busybox initramfs whose `/init` runs the checks or the shell that
//! the kernel command line asks for.
//!
//! [`prepare`] downloads `linux-image-cloud-arm64`'s kernel package and
//! `busybox-static` for arm64 with the host's apt (see [`apt`]), checks their
//! SHA-256, unpacks them with `dpkg-deb -x` and writes
//! `<target>/guest-images/linux-Image` and
//! `<target>/guest-images/linux-initramfs.cpio.gz`, where manifests find them.
//! The initramfs holds `/bin/busybox`, `/bin/counter-check` (built from
//! `guest-images/counter-check`), `/init` (`guest-images/linux/init.sh`),
//! `/dev/console`, the virtio modules and their load order. Its layout and
//! the checks are described in `guest-images/linux/README.md`.
//!
//! Everything else lives in `<target>/linux-guest/`: `apt/` (apt's private
//! lists and state), `debs/` (the downloaded packages) and `stamp`, which
//! records what the outputs were built from. Packages are downloaded once;
//! after that the outputs are rebuilt from the `.deb`s when the init script,
//! counter-check or the recipe changes, and reused as they are otherwise. Deleting
//! `<target>/linux-guest/` fetches the newest packages again.

mod apt;
pub(crate) mod cpio;
mod kernel;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use object::elf::{FileHeader64, EM_AARCH64, PT_INTERP};
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

use crate::cargo::{self, describe};
use apt::{Apt, Digest256, Package};
use kernel::{ModulePlan, ModuleTree};

/// The recipe's own version. Bump it when a change to this code changes
/// what it builds from the same packages, init script and module list, so
/// outputs built by the older code are rebuilt.
const RECIPE: u32 = 2;

/// The metapackage whose dependency is the current cloud kernel package:
/// kernel 6.1 with PL011 and KVM built in and virtio as modules, small
/// enough to boot in seconds under QEMU TCG.
const KERNEL_METAPACKAGE: &str = "linux-image-cloud-arm64";

/// What the real kernel package's name starts with.
const KERNEL_PACKAGE_PREFIX: &str = "linux-image-";

/// A statically linked busybox: the initramfs has no C library.
const BUSYBOX_PACKAGE: &str = "busybox-static";

/// Modules `/init` loads, besides what they depend on (worked out from the
/// modules themselves). The hypervisor's virtio devices are virtio-mmio; a
/// passthrough virtio function is on the VM's PCIe host bridge
/// (`pci-host-ecam-generic`, built into Debian's cloud kernel), driven by
/// `virtio_pci` (which brings `virtio_pci_modern_dev` and
/// `virtio_pci_legacy_dev`). Any of them built into a future kernel is
/// simply not loaded.
const GUEST_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_pci",
];

/// The init script, relative to the workspace root.
const INIT_SCRIPT: &str = "guest-images/linux/init.sh";

/// The kernel's file name in the guest images directory, as manifests name it.
pub const IMAGE_NAME: &str = "linux-Image";

/// The initramfs's file name in the guest images directory, as manifests name it.
pub const INITRAMFS_NAME: &str = "linux-initramfs.cpio.gz";

/// Where counter-check goes in the initramfs.
const COUNTER_CHECK_PATH: &str = "bin/counter-check";

/// In the initramfs: where the modules go, and the file listing them in
/// load order (file names relative to the directory, one a line).
const MODULES_DIR: &str = "lib/modules";
const LOAD_ORDER: &str = "lib/modules/load-order";

/// `/dev/console`: character device 5:1 (Linux's `devices.txt`). The kernel
/// opens it for init's stdin, stdout and stderr before `/init` runs, so it
/// must be in the archive; without it init's output goes nowhere.
const CONSOLE_MAJOR: u32 = 5;
const CONSOLE_MINOR: u32 = 1;

/// A prepared Linux guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxGuest {
    /// The arm64 `Image`, header checked.
    pub kernel: PathBuf,
    /// The gzip-compressed newc initramfs.
    pub initramfs: PathBuf,
    /// The kernel's release, as `uname -r` prints it in the guest
    /// (`6.1.0-56-cloud-arm64`).
    pub version: String,
}

/// Makes sure the Linux guest's kernel and initramfs are built and current;
/// see the module documentation for what that takes and what is cached.
///
/// # Errors
///
/// The init script cannot be read; counter-check does not build or is not a
/// static arm64 executable; apt or `dpkg-deb` fail (this needs a
/// Debian host with Debian's archive reachable, the first time); a
/// package's SHA-256 differs from its list entry; the kernel is not an
/// arm64 `Image`; a module or busybox is missing or unusable; or an output
/// cannot be written.
pub fn prepare() -> Result<LinuxGuest> {
    let dir = cargo::target_dir().join("linux-guest");
    let images = cargo::guest_images_dir()?;
    let init_path = cargo::workspace_root().join(INIT_SCRIPT);
    let init =
        std::fs::read(&init_path).with_context(|| format!("reading {}", init_path.display()))?;
    let counter_check_path = cargo::build_counter_check()?;
    let counter_check = std::fs::read(&counter_check_path)
        .with_context(|| format!("reading {}", counter_check_path.display()))?;
    check_static_aarch64(&counter_check)
        .with_context(|| format!("{}", counter_check_path.display()))?;
    let wanted = Inputs {
        recipe: RECIPE,
        modules: GUEST_MODULES.iter().map(|m| m.to_string()).collect(),
        init: Digest256::of(&init),
        counter_check: Digest256::of(&counter_check),
    };
    let guest = |version: String| LinuxGuest {
        kernel: images.join(IMAGE_NAME),
        initramfs: images.join(INITRAMFS_NAME),
        version,
    };

    let stamp_path = dir.join("stamp");
    let stamp = read_stamp(&stamp_path);
    if let Some(stamp) = &stamp {
        let current = guest(stamp.release.clone());
        if stamp.inputs == wanted && current.kernel.is_file() && current.initramfs.is_file() {
            println!("linux: cached {}", stamp.release);
            return Ok(current);
        }
    }

    let debs = dir.join("debs");
    let packages = match stamp.as_ref().and_then(|stamp| downloaded(&debs, stamp)) {
        Some(packages) => packages,
        None => download(&dir, &debs)?,
    };
    // The stamp describes the outputs about to be replaced: drop it first,
    // so an interrupted build is not taken for a finished one.
    if stamp_path.exists() {
        std::fs::remove_file(&stamp_path)
            .with_context(|| format!("removing {}", stamp_path.display()))?;
    }

    let programs = Programs {
        init: &init,
        counter_check: &counter_check,
    };
    let release = build(&dir.join("extract"), &debs, &packages, &programs, &images)?;
    let stamp = Stamp {
        inputs: wanted,
        packages,
        release,
    };
    write_atomically(&stamp_path, stamp.to_string().as_bytes())?;
    Ok(guest(stamp.release))
}

/// The project's own files in the initramfs.
#[derive(Debug, Clone, Copy)]
struct Programs<'a> {
    /// `/init`: the init script.
    init: &'a [u8],
    /// `/bin/counter-check`: a static arm64 ELF.
    counter_check: &'a [u8],
}

/// Unpacks the packages into `root` and writes the outputs into `images`
/// from them; returns the kernel's release.
fn build(
    root: &Path,
    debs: &Path,
    packages: &Packages,
    programs: &Programs<'_>,
    images: &Path,
) -> Result<String> {
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    for package in packages.all() {
        unpack(&debs.join(&package.deb), root)?;
    }
    let release = kernel_release(root)?;
    write_image(root, &release, &images.join(IMAGE_NAME))?;
    write_initramfs(root, &release, programs, &images.join(INITRAMFS_NAME))?;
    // The unpacked packages are 100 MB of mostly unused modules; the .debs
    // are kept, so this is cheap to redo.
    std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    Ok(release)
}

/// Writes the `Image` of the kernel unpacked under `root` to `out`.
fn write_image(root: &Path, release: &str, out: &Path) -> Result<()> {
    let vmlinuz = root.join("boot").join(format!("vmlinuz-{release}"));
    let bytes =
        std::fs::read(&vmlinuz).with_context(|| format!("reading {}", vmlinuz.display()))?;
    let (image, header) = kernel::image_from_vmlinuz(bytes)
        .with_context(|| format!("{} is not a bootable kernel", vmlinuz.display()))?;
    write_atomically(out, &image)?;
    let pages = match header.page_size().bytes() {
        Some(bytes) => format!("{} KiB pages", bytes >> 10),
        None => "page size unstated".into(),
    };
    println!(
        "linux: {} ({release}, {} bytes, image_size {:#x}, {pages})",
        out.display(),
        image.len(),
        header.image_size(),
    );
    Ok(())
}

/// Writes the initramfs, from the busybox and the kernel modules unpacked
/// under `root` and the project's `programs`, to `out`.
fn write_initramfs(root: &Path, release: &str, programs: &Programs<'_>, out: &Path) -> Result<()> {
    let tree = ModuleTree::read(&root.join("lib/modules").join(release))?;
    let modules = tree.plan(GUEST_MODULES)?;
    if !modules.builtin.is_empty() {
        println!("linux: built in: {}", modules.builtin.join(" "));
    }
    let names: Vec<_> = modules.load.iter().map(|m| m.name.as_str()).collect();
    println!("linux: modules, in load order: {}", names.join(" "));

    let busybox_path = root.join("bin/busybox");
    let busybox = std::fs::read(&busybox_path)
        .with_context(|| format!("reading {}", busybox_path.display()))?;
    check_static_aarch64(&busybox).with_context(|| format!("{}", busybox_path.display()))?;

    let archive = initramfs(&busybox, programs, &tree, &modules)?;
    let compressed = gzip(&archive)?;
    write_atomically(out, &compressed)?;
    println!(
        "linux: {} ({} bytes, {} uncompressed)",
        out.display(),
        compressed.len(),
        archive.len()
    );
    Ok(())
}

/// What the outputs are built from besides the packages.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    /// [`RECIPE`].
    recipe: u32,
    /// [`GUEST_MODULES`].
    modules: Vec<String>,
    /// The init script's digest.
    init: Digest256,
    /// counter-check's digest.
    counter_check: Digest256,
}

/// A downloaded package: which version, and its file in `debs/`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Locked {
    name: String,
    version: String,
    sha256: Digest256,
    /// File name in `debs/`.
    deb: String,
}

impl Locked {
    fn new(package: &Package) -> Self {
        Self {
            name: package.name.clone(),
            version: package.version.clone(),
            sha256: package.sha256,
            deb: package.deb_name().to_owned(),
        }
    }
}

/// The two packages the guest is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Packages {
    kernel: Locked,
    busybox: Locked,
}

impl Packages {
    fn all(&self) -> [&Locked; 2] {
        [&self.kernel, &self.busybox]
    }
}

/// `<target>/linux-guest/stamp`: what the current outputs were built from.
///
/// ```text
/// recipe 2
/// modules virtio_mmio virtio_blk virtio_net virtio_console
/// init <sha256 of init.sh>
/// counter-check <sha256 of the counter-check ELF>
/// kernel linux-image-6.1.0-56-cloud-arm64 6.1.192-2 <sha256> <deb file>
/// busybox busybox-static 1:1.35.0-4+deb12u1+b1 <sha256> <deb file>
/// release 6.1.0-56-cloud-arm64
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    inputs: Inputs,
    packages: Packages,
    /// The kernel's release (`uname -r`).
    release: String,
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Inputs {
            recipe,
            modules,
            init,
            counter_check,
        } = &self.inputs;
        writeln!(f, "recipe {recipe}")?;
        writeln!(f, "modules {}", modules.join(" "))?;
        writeln!(f, "init {init}")?;
        writeln!(f, "counter-check {counter_check}")?;
        for (key, package) in [
            ("kernel", &self.packages.kernel),
            ("busybox", &self.packages.busybox),
        ] {
            let Locked {
                name,
                version,
                sha256,
                deb,
            } = package;
            writeln!(f, "{key} {name} {version} {sha256} {deb}")?;
        }
        writeln!(f, "release {}", self.release)
    }
}

impl FromStr for Stamp {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        let mut lines = text.lines();
        let mut next = |key: &str| -> Result<Vec<&str>> {
            let line = lines.next().with_context(|| format!("no `{key}` line"))?;
            let mut words = line.split(' ');
            ensure!(
                words.next() == Some(key),
                "expected `{key} ...`, found {line:?}"
            );
            Ok(words.collect())
        };
        let one = |words: Vec<&str>, key: &str| -> Result<String> {
            match words.as_slice() {
                [word] if !word.is_empty() => Ok(word.to_string()),
                _ => bail!("`{key}` wants one word, found {words:?}"),
            }
        };
        let locked = |words: Vec<&str>, key: &str| -> Result<Locked> {
            let [name, version, sha256, deb] = words.as_slice() else {
                bail!("`{key}` wants name, version, sha256 and file, found {words:?}");
            };
            Ok(Locked {
                name: name.to_string(),
                version: version.to_string(),
                sha256: sha256.parse()?,
                deb: deb.to_string(),
            })
        };
        let recipe = one(next("recipe")?, "recipe")?.parse()?;
        let modules = next("modules")?.iter().map(|m| m.to_string()).collect();
        let init = one(next("init")?, "init")?.parse()?;
        let counter_check = one(next("counter-check")?, "counter-check")?.parse()?;
        let kernel = locked(next("kernel")?, "kernel")?;
        let busybox = locked(next("busybox")?, "busybox")?;
        let release = one(next("release")?, "release")?;
        ensure!(lines.next().is_none(), "text after the `release` line");
        Ok(Self {
            inputs: Inputs {
                recipe,
                modules,
                init,
                counter_check,
            },
            packages: Packages { kernel, busybox },
            release,
        })
    }
}

/// The stamp, if there is a readable one.
fn read_stamp(path: &Path) -> Option<Stamp> {
    let text = std::fs::read_to_string(path).ok()?;
    match text.parse() {
        Ok(stamp) => Some(stamp),
        Err(error) => {
            println!("linux: ignoring {}: {error:#}", path.display());
            None
        }
    }
}

/// The stamp's packages, if their `.deb`s are still in `debs` and intact.
fn downloaded(debs: &Path, stamp: &Stamp) -> Option<Packages> {
    for package in stamp.packages.all() {
        let path = debs.join(&package.deb);
        match Digest256::of_file(&path) {
            Ok(digest) if digest == package.sha256 => {}
            Ok(digest) => {
                println!(
                    "linux: {} has sha256 {digest}, not {}; downloading again",
                    path.display(),
                    package.sha256
                );
                return None;
            }
            Err(_) => return None,
        }
    }
    println!(
        "linux: rebuilding from the downloaded {} {} and {} {}",
        stamp.packages.kernel.name,
        stamp.packages.kernel.version,
        stamp.packages.busybox.name,
        stamp.packages.busybox.version
    );
    Some(stamp.packages.clone())
}

/// Resolves the newest kernel and busybox packages and downloads them to `debs`.
fn download(dir: &Path, debs: &Path) -> Result<Packages> {
    let apt = Apt::new(&dir.join("apt"))?;
    println!(
        "linux: fetching Debian {} {} package lists",
        apt::SUITE,
        apt::ARCH
    );
    apt.update()?;
    let meta = apt.show(KERNEL_METAPACKAGE, None)?;
    let (name, version) = apt::dependency(&meta.depends, KERNEL_PACKAGE_PREFIX)
        .with_context(|| format!("{KERNEL_METAPACKAGE} {}", meta.version))?;
    let kernel = apt.show(&name, version.as_deref())?;
    let busybox = apt.show(BUSYBOX_PACKAGE, None)?;
    std::fs::create_dir_all(debs).with_context(|| format!("creating {}", debs.display()))?;
    for package in [&kernel, &busybox] {
        println!(
            "linux: downloading {} {} ({})",
            package.name, package.version, package.filename
        );
        apt.download(package, debs)?;
    }
    Ok(Packages {
        kernel: Locked::new(&kernel),
        busybox: Locked::new(&busybox),
    })
}

/// Unpacks a `.deb`'s files into `root` (`dpkg-deb -x`: no scripts run,
/// nothing is installed).
fn unpack(deb: &Path, root: &Path) -> Result<()> {
    let mut command = Command::new("dpkg-deb");
    command.arg("-x").arg(deb).arg(root);
    let status = command
        .status()
        .with_context(|| format!("running {}", describe(&command)))?;
    ensure!(status.success(), "{} failed ({status})", describe(&command));
    Ok(())
}

/// The release of the one kernel unpacked under `root`: the name of its
/// `lib/modules/` directory.
fn kernel_release(root: &Path) -> Result<String> {
    let modules = root.join("lib/modules");
    let releases: Vec<String> = std::fs::read_dir(&modules)
        .with_context(|| format!("listing {}", modules.display()))?
        .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    match releases.as_slice() {
        [release] => Ok(release.clone()),
        _ => bail!(
            "expected one kernel release in {}, found {releases:?}",
            modules.display()
        ),
    }
}

/// Checks that `elf` is an AArch64 executable with no program interpreter,
/// i.e. statically linked: the initramfs has no dynamic loader.
fn check_static_aarch64(elf: &[u8]) -> Result<()> {
    let header = FileHeader64::<Endianness>::parse(elf).context("not a 64-bit ELF")?;
    let endian = header.endian().context("bad ELF byte order")?;
    ensure!(
        header.e_machine(endian) == EM_AARCH64,
        "ELF machine is {}, not AArch64",
        header.e_machine(endian)
    );
    let dynamic = header
        .program_headers(endian, elf)
        .context("bad program headers")?
        .iter()
        .any(|ph| ph.p_type(endian) == PT_INTERP);
    ensure!(
        !dynamic,
        "dynamically linked; the initramfs needs a static busybox"
    );
    Ok(())
}

/// The initramfs as a newc archive. `/bin/sh` is linked so the kernel can
/// run `/init`'s `#!/bin/sh`; the other applet links are made at boot.
fn initramfs(
    busybox: &[u8],
    programs: &Programs<'_>,
    tree: &ModuleTree,
    modules: &ModulePlan,
) -> Result<Vec<u8>> {
    let mut archive = cpio::Writer::new();
    for dir in [
        "bin",
        "sbin",
        "usr",
        "usr/bin",
        "usr/sbin",
        "dev",
        "proc",
        "sys",
        "lib",
        MODULES_DIR,
    ] {
        archive.dir(dir, 0o755)?;
    }
    // Sticky and world-writable, like every /tmp.
    archive.dir("tmp", 0o1777)?;
    archive.file("bin/busybox", 0o755, busybox)?;
    archive.symlink("bin/sh", "busybox")?;
    archive.char_device("dev/console", 0o600, CONSOLE_MAJOR, CONSOLE_MINOR)?;
    archive.file(COUNTER_CHECK_PATH, 0o755, programs.counter_check)?;
    archive.file("init", 0o755, programs.init)?;

    let mut order = String::new();
    for module in &modules.load {
        let file = tree.file(module);
        let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let name = format!("{}.ko", module.name);
        archive.file(&format!("{MODULES_DIR}/{name}"), 0o644, &data)?;
        order.push_str(&name);
        order.push('\n');
    }
    archive.file(LOAD_ORDER, 0o644, order.as_bytes())?;
    Ok(archive.finish())
}

/// Gzip-compresses `data`. The header's timestamp is 0, so equal inputs
/// give equal files.
fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

/// Writes `path` through a temporary file and a rename, so it never exists
/// half-written.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, data).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    fn stamp() -> Stamp {
        Stamp {
            inputs: Inputs {
                recipe: RECIPE,
                modules: GUEST_MODULES.iter().map(|m| m.to_string()).collect(),
                init: Digest256::of(b"#!/bin/sh\n"),
                counter_check: Digest256::of(b"counter-check"),
            },
            packages: Packages {
                kernel: Locked {
                    name: "linux-image-6.1.0-56-cloud-arm64".into(),
                    version: "6.1.192-2".into(),
                    sha256: Digest256::of(b"kernel"),
                    deb: "linux-image-6.1.0-56-cloud-arm64_6.1.192-2_arm64.deb".into(),
                },
                busybox: Locked {
                    name: "busybox-static".into(),
                    version: "1:1.35.0-4+deb12u1+b1".into(),
                    sha256: Digest256::of(b"busybox"),
                    deb: "busybox-static_1.35.0-4+deb12u1+b1_arm64.deb".into(),
                },
            },
            release: "6.1.0-56-cloud-arm64".into(),
        }
    }

    #[test]
    fn a_stamp_survives_writing_and_reading() {
        let text = stamp().to_string();
        assert!(text.starts_with("recipe 2\nmodules virtio_mmio virtio_blk "));
        assert!(text.contains("\ncounter-check "));
        assert!(text.contains("\nbusybox busybox-static 1:1.35.0-4+deb12u1+b1 "));
        assert_eq!(text.parse::<Stamp>().unwrap(), stamp());
    }

    #[test]
    fn a_damaged_stamp_is_refused() {
        let text = stamp().to_string();
        let damaged = [
            String::new(),
            text.replace("recipe 2", "recipe two"),
            text.replace("counter-check ", "counter "),
            text.replace("init ", "init 12 "),
            text.replace("\nrelease 6.1.0-56-cloud-arm64\n", "\n"),
            text.replace("busybox busybox-static", "busybox"),
            format!("{text}extra\n"),
        ];
        for text in damaged {
            assert!(text.parse::<Stamp>().is_err(), "{text}");
        }
    }

    #[test]
    fn the_initramfs_holds_busybox_init_the_console_and_modules_in_order() {
        let dir = std::env::temp_dir().join(format!("hyp-tools-initramfs-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("kernel")).unwrap();
        std::fs::write(dir.join("kernel/virtio.ko"), b"virtio module").unwrap();
        std::fs::write(dir.join("kernel/virtio_mmio.ko"), b"mmio module").unwrap();
        std::fs::write(dir.join("modules.builtin"), "").unwrap();
        std::fs::write(
            dir.join("modules.order"),
            "kernel/virtio.ko\nkernel/virtio_mmio.ko\n",
        )
        .unwrap();
        let tree = ModuleTree::read(&dir).unwrap();
        let plan = ModulePlan {
            builtin: Vec::new(),
            load: ["virtio", "virtio_mmio"]
                .map(|name| kernel::Module {
                    name: name.into(),
                    path: format!("kernel/{name}.ko"),
                })
                .to_vec(),
        };
        let programs = Programs {
            init: b"#!/bin/sh\n",
            counter_check: b"counter-check binary",
        };
        let archive = initramfs(b"busybox binary", &programs, &tree, &plan).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        let text = String::from_utf8_lossy(&archive);
        for needle in [
            "bin\0",
            "bin/busybox\0",
            "busybox binary",
            "bin/sh\0",
            "dev/console\0",
            "bin/counter-check\0",
            "counter-check binary",
            "init\0",
            "#!/bin/sh\n",
            "lib/modules/virtio.ko\0",
            "virtio module",
            "lib/modules/load-order\0",
            "virtio.ko\nvirtio_mmio.ko\n",
            "TRAILER!!!\0",
        ] {
            assert!(text.contains(needle), "{needle:?} missing");
        }
        let compressed = gzip(&archive).unwrap();
        let mut round_trip = Vec::new();
        GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut round_trip)
            .unwrap();
        assert_eq!(round_trip, archive);
        assert_eq!(
            gzip(&archive).unwrap(),
            compressed,
            "gzip output is reproducible"
        );
    }

    #[test]
    fn downloaded_packages_are_reused_only_when_intact() {
        let debs = std::env::temp_dir().join(format!("hyp-tools-debs-{}", std::process::id()));
        std::fs::create_dir_all(&debs).unwrap();
        let stamp = stamp();
        let kernel = debs.join(&stamp.packages.kernel.deb);
        let busybox = debs.join(&stamp.packages.busybox.deb);
        assert_eq!(downloaded(&debs, &stamp), None, "no files");
        std::fs::write(&kernel, b"kernel").unwrap();
        std::fs::write(&busybox, b"busybox").unwrap();
        assert_eq!(downloaded(&debs, &stamp), Some(stamp.packages.clone()));
        std::fs::write(&busybox, b"busybox, damaged").unwrap();
        assert_eq!(downloaded(&debs, &stamp), None, "a damaged file");
        std::fs::remove_dir_all(&debs).unwrap();
    }

    #[test]
    fn busybox_must_be_a_static_aarch64_elf() {
        let error = check_static_aarch64(b"#!/bin/sh\n").unwrap_err();
        assert!(format!("{error:#}").contains("not a 64-bit ELF"));
    }

    /// The whole recipe. Needs apt, `dpkg-deb` and Debian's archive the
    /// first time: `cargo test -p hyp-tools -- --ignored linux`.
    #[test]
    #[ignore = "downloads Debian packages the first time"]
    fn prepare_builds_the_guest_then_reuses_it() {
        let guest = prepare().unwrap();
        let image = std::fs::read(&guest.kernel).unwrap();
        guest_boot::ImageHeader::parse(&image).unwrap();
        let mut archive = Vec::new();
        GzDecoder::new(std::fs::File::open(&guest.initramfs).unwrap())
            .read_to_end(&mut archive)
            .unwrap();
        assert!(archive.starts_with(b"070701"));
        assert!(guest.version.starts_with("6.1."), "{}", guest.version);
        assert_eq!(prepare().unwrap(), guest);
    }

    #[test]
    fn the_init_script_has_the_modes_and_lines_the_readme_promises() {
        let init = std::fs::read_to_string(cargo::workspace_root().join(INIT_SCRIPT)).unwrap();
        assert!(init.starts_with("#!/bin/sh\n"));
        for needle in [
            "run_check()",
            "run_shell()",
            "guest.busy=",
            "guest.idle=",
            "say \"cpus=",
            "say \"memtotal_kib=",
            "say \"busy workload done\"",
            "say \"check PASS\"",
            "say \"check FAIL ",
            "counter-check \"$busy\"",
            "setsid cttyhack sh",
            "poweroff -f",
            // The virtio modes and the lines the system tests read.
            "disk-write) run_disk_write",
            "disk-read) run_disk_read",
            "net-server) run_net_server",
            "net-client) run_net_client",
            "net-watch) run_net_watch",
            "say \"disk sectors=$sectors\"",
            "say \"disk sha256=",
            "say \"disk write refused: ",
            "iflag=direct",
            "oflag=direct",
            "say \"net sent $bytes bytes in $(rate ",
            "say \"net received $bytes bytes in $(rate ",
            "say \"net sha256=",
            "nc -l -p \"$NET_PORT\"",
            "rx_packets=",
        ] {
            assert!(
                init.contains(needle),
                "{needle:?} missing from {INIT_SCRIPT}"
            );
        }
        assert!(init.contains(LOAD_ORDER), "init reads {LOAD_ORDER}");
    }
}
