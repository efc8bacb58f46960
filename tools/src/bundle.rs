//! The boot bundle QEMU hands the hypervisor with `-initrd`: the manifest
//! text, every image it names, and the hypervisor's own programs (the
//! virtio backend task), in the format of the `manifest` crate.
//!
//! A broken VM is not the tool's business to refuse: system tests build
//! bundles with broken VMs on purpose to check that the hypervisor refuses
//! them with a clear message. So a VM with a manifest error, or an image that
//! is not found, is a warning, and the bundle is written without it. Only a
//! manifest the hypervisor could not read at all is an error here.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use manifest::Manifest;

/// A program of the hypervisor's own, run as an EL0 task (the virtio
/// backend), which every bundle carries whether or not a VM needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Its entry name, by which the hypervisor looks it up.
    pub name: String,
    /// The built ELF.
    pub path: PathBuf,
}

/// A bundle written by [`assemble`].
#[derive(Debug)]
pub struct Assembled {
    /// Where it was written.
    pub path: PathBuf,
    /// One line per VM the hypervisor will refuse and why, for the user.
    pub warnings: Vec<String>,
}

/// Assembles a boot bundle from a manifest source file.
///
/// Each image name in the manifest (`kernel`, `initrd`) is resolved as a
/// path: an absolute one as it is, a relative one against the manifest's
/// directory and then against each of `search_dirs` in order. Found files are
/// packed under the name exactly as written, which is how the hypervisor
/// looks them up, each once however many VMs name it. The manifest entry is
/// the file's text verbatim. Each of `programs` follows the images under
/// its own name; an image of the same name would be taken for it, so a VM
/// naming one is warned about and the image left out.
///
/// # Errors
///
/// The manifest cannot be read, is not UTF-8 or has a manifest-wide error
/// ([`manifest::ManifestError`]); an image file exists but cannot be read;
/// a program cannot be read; the bundle cannot be built or written.
pub fn assemble(
    manifest_path: &Path,
    search_dirs: &[PathBuf],
    programs: &[Program],
    out: &Path,
) -> Result<Assembled> {
    let text = fs::read_to_string(manifest_path)
        .with_context(|| format!("reading the manifest {}", manifest_path.display()))?;
    let parsed = Manifest::parse(&text)
        .with_context(|| format!("parsing the manifest {}", manifest_path.display()))?;
    let manifest_dir = manifest_path.parent().unwrap_or(Path::new(""));

    let mut warnings = Vec::new();
    let mut wanted: Vec<Wanted> = Vec::new();
    for vm in &parsed.vms {
        let spec = match &vm.spec {
            Ok(spec) => spec,
            Err(_) => {
                if let Some(message) = vm.error_message() {
                    warnings.push(format!("{message}; the hypervisor will refuse this VM"));
                }
                continue;
            }
        };
        let images = [
            ("kernel", Some(&spec.kernel)),
            ("initrd", spec.initrd.as_ref()),
        ];
        for (role, name) in images {
            let Some(name) = name else { continue };
            let user = User {
                vm: vm.label().to_string(),
                line: vm.line,
                role,
            };
            match wanted.iter_mut().find(|w| w.name == *name) {
                Some(existing) => existing.users.push(user),
                None => wanted.push(Wanted {
                    name: name.clone(),
                    users: vec![user],
                }),
            }
        }
    }

    let mut images: Vec<(String, Vec<u8>)> = Vec::with_capacity(wanted.len() + programs.len());
    for image in wanted {
        if programs.iter().any(|p| p.name == image.name) {
            for user in &image.users {
                warnings.push(format!(
                    "{}: line {}: {} {:?} is the name of the hypervisor's own program, not packed; the VM would boot that",
                    user.vm, user.line, user.role, image.name
                ));
            }
            continue;
        }
        match resolve(&image.name, manifest_dir, search_dirs) {
            Ok(path) => {
                let data =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                images.push((image.name, data));
            }
            Err(looked) => {
                for user in &image.users {
                    warnings.push(format!(
                        "{}: line {}: {} {:?} not found ({looked}); the hypervisor will refuse this VM",
                        user.vm, user.line, user.role, image.name
                    ));
                }
            }
        }
    }

    for program in programs {
        let data = fs::read(&program.path).with_context(|| {
            format!(
                "reading the hypervisor's program {:?} at {}",
                program.name,
                program.path.display()
            )
        })?;
        images.push((program.name.clone(), data));
    }

    let entries: Vec<(&str, &[u8])> = images
        .iter()
        .map(|(name, data)| (name.as_str(), data.as_slice()))
        .collect();
    let bytes = manifest::write_bundle(&text, &entries).context("building the boot bundle")?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(Assembled {
        path: out.to_path_buf(),
        warnings,
    })
}

/// An image the manifest names, and the VMs that name it.
struct Wanted {
    name: String,
    users: Vec<User>,
}

/// One VM naming an image, for the warning if it is missing.
struct User {
    /// `vm "alpha"`.
    vm: String,
    /// The VM's `[[vm]]` line.
    line: u32,
    /// `kernel` or `initrd`.
    role: &'static str,
}

/// The file an image name stands for: the first candidate that is a file.
/// On failure, says where it looked.
fn resolve(name: &str, manifest_dir: &Path, search_dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let path = Path::new(name);
    if path.is_absolute() {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("no file at {}", path.display()))
        };
    }
    let dirs: Vec<&Path> = std::iter::once(manifest_dir)
        .chain(search_dirs.iter().map(PathBuf::as_path))
        .collect();
    if let Some(found) = dirs.iter().map(|dir| dir.join(path)).find(|c| c.is_file()) {
        return Ok(found);
    }
    let looked: Vec<String> = dirs
        .iter()
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                ".".to_string()
            } else {
                dir.display().to_string()
            }
        })
        .collect();
    Err(format!("looked in {}", looked.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use manifest::Bundle;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let unique = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "hyp-tools-bundle-{}-{unique}-{test}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes `contents` to `relative` (creating directories) and
        /// returns its path.
        fn file(&self, relative: &str, contents: &[u8]) -> PathBuf {
            let path = self.0.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, contents).unwrap();
            path
        }

        fn dir(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            fs::create_dir_all(&path).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn vm(name: &str, kernel: &str, initrd: Option<&str>) -> String {
        let initrd = initrd
            .map(|i| format!("initrd = \"{i}\"\n"))
            .unwrap_or_default();
        format!(
            "[[vm]]\nname = \"{name}\"\nvcpus = 1\nmemory = \"64M\"\nkernel = \"{kernel}\"\n{initrd}\n"
        )
    }

    #[test]
    fn names_resolve_against_the_manifest_dir_then_each_search_dir_in_order() {
        let tmp = TempDir::new("order");
        let text = format!(
            "{}{}",
            vm("a", "k.bin", Some("sub/rootfs.cpio")),
            vm("b", "only-second.bin", None)
        );
        let manifest = tmp.file("m/vms.toml", text.as_bytes());
        tmp.file("m/k.bin", b"manifest dir");
        tmp.file("first/k.bin", b"first search dir");
        tmp.file("first/sub/rootfs.cpio", b"first search dir");
        tmp.file("second/sub/rootfs.cpio", b"second search dir");
        tmp.file("second/only-second.bin", b"second search dir");
        let search = [tmp.dir("first"), tmp.dir("second")];
        let out = tmp.0.join("out/bundle.bin");

        let assembled = assemble(&manifest, &search, &[], &out).unwrap();
        assert_eq!(assembled.path, out);
        assert_eq!(assembled.warnings, Vec::<String>::new());
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.get("k.bin"), Some(&b"manifest dir"[..]));
        assert_eq!(
            bundle.get("sub/rootfs.cpio"),
            Some(&b"first search dir"[..])
        );
        assert_eq!(
            bundle.get("only-second.bin"),
            Some(&b"second search dir"[..])
        );
    }

    #[test]
    fn absolute_names_are_used_as_they_are() {
        let tmp = TempDir::new("abs");
        let kernel = tmp.file("k", b"absolute");
        let name = kernel.to_str().unwrap();
        // A bundle name has at most 48 bytes; a long temp dir cannot test this.
        if name.len() > manifest::MAX_NAME_LEN {
            return;
        }
        let manifest = tmp.file("m/vms.toml", vm("a", name, None).as_bytes());
        tmp.file(&format!("m/{}", name.trim_start_matches('/')), b"relative");
        let out = tmp.0.join("bundle.bin");
        let assembled = assemble(&manifest, std::slice::from_ref(&tmp.0), &[], &out).unwrap();
        assert!(assembled.warnings.is_empty(), "{:?}", assembled.warnings);
        let bytes = fs::read(&out).unwrap();
        assert_eq!(
            Bundle::parse(&bytes).unwrap().get(name),
            Some(&b"absolute"[..])
        );
    }

    #[test]
    fn a_missing_image_is_a_warning_naming_the_vm_and_where_it_looked() {
        let tmp = TempDir::new("missing");
        let text = format!(
            "{}{}",
            vm("alpha", "k.bin", None),
            vm("beta", "nope.bin", Some("k.bin"))
        );
        let manifest = tmp.file("vms.toml", text.as_bytes());
        tmp.file("k.bin", b"kernel");
        let search = tmp.dir("search");
        let out = tmp.0.join("bundle.bin");

        let assembled = assemble(&manifest, std::slice::from_ref(&search), &[], &out).unwrap();
        assert_eq!(
            assembled.warnings,
            [format!(
                "vm \"beta\": line 7: kernel \"nope.bin\" not found (looked in {}, {}); the hypervisor will refuse this VM",
                tmp.0.display(),
                search.display()
            )]
        );
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let names: Vec<_> = bundle.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["manifest", "k.bin"]);
    }

    #[test]
    fn vms_with_manifest_errors_are_warnings_and_their_images_are_skipped() {
        let tmp = TempDir::new("vm-error");
        let broken = vm("beta", "other.bin", None).replace("vcpus = 1", "vcpus = 99");
        let text = format!("{}{broken}", vm("alpha", "k.bin", None));
        let manifest = tmp.file("vms.toml", text.as_bytes());
        tmp.file("k.bin", b"kernel");
        tmp.file("other.bin", b"other");
        let out = tmp.0.join("bundle.bin");

        let assembled = assemble(&manifest, &[], &[], &out).unwrap();
        assert_eq!(
            assembled.warnings,
            ["vm \"beta\": line 9: 99 vCPUs requested; at most 8 are supported; the hypervisor will refuse this VM"]
        );
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.get("other.bin"), None);
        assert_eq!(bundle.get("k.bin"), Some(&b"kernel"[..]));
    }

    #[test]
    fn an_image_named_by_several_vms_is_packed_once() {
        let tmp = TempDir::new("dedup");
        let text = format!(
            "{}{}{}",
            vm("a", "k.bin", Some("rootfs.cpio")),
            vm("b", "k.bin", Some("rootfs.cpio")),
            vm("c", "k.bin", None)
        );
        let manifest = tmp.file("vms.toml", text.as_bytes());
        tmp.file("k.bin", b"kernel");
        tmp.file("rootfs.cpio", b"cpio");
        let out = tmp.0.join("bundle.bin");

        assemble(&manifest, &[], &[], &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let names: Vec<_> = bundle.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["manifest", "k.bin", "rootfs.cpio"]);
    }

    #[test]
    fn the_output_parses_and_carries_the_manifest_verbatim() {
        let tmp = TempDir::new("verbatim");
        let text = format!("# The test VM.\r\n{}", vm("a", "k.bin", None));
        let manifest = tmp.file("vms.toml", text.as_bytes());
        tmp.file("k.bin", &[0x11; 10_000]);
        let out = tmp.0.join("bundle.bin");

        assemble(&manifest, &[], &[], &out).unwrap();
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.total_size(), bytes.len());
        assert_eq!(bundle.manifest(), Ok(text.as_str()));
        assert_eq!(bundle.get("k.bin"), Some(&[0x11; 10_000][..]));
        let reparsed = Manifest::parse(bundle.manifest().unwrap()).unwrap();
        assert_eq!(reparsed.good_vms().count(), 1);
    }

    #[test]
    fn a_manifest_wide_error_is_refused() {
        let tmp = TempDir::new("refused");
        let manifest = tmp.file("vms.toml", b"vcpus = 1\n[[vm]]\n");
        let out = tmp.0.join("bundle.bin");
        let error = assemble(&manifest, &[], &[], &out).unwrap_err();
        assert!(
            format!("{error:#}").contains("manifest line 1"),
            "{error:#}"
        );
        assert!(!out.exists());
        assert!(assemble(&tmp.0.join("absent.toml"), &[], &[], &out).is_err());
    }

    fn program(tmp: &TempDir, name: &str, contents: &[u8]) -> Program {
        Program {
            name: name.to_string(),
            path: tmp.file(&format!("programs/{name}"), contents),
        }
    }

    #[test]
    fn programs_follow_the_images_in_every_bundle() {
        let tmp = TempDir::new("programs");
        let manifest = tmp.file("vms.toml", vm("a", "k.bin", None).as_bytes());
        tmp.file("k.bin", b"kernel");
        let programs = [program(&tmp, "virtio-task", b"\x7fELF task")];
        let out = tmp.0.join("bundle.bin");

        let assembled = assemble(&manifest, &[], &programs, &out).unwrap();
        assert!(assembled.warnings.is_empty(), "{:?}", assembled.warnings);
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        let names: Vec<_> = bundle.entries().map(|(name, _)| name).collect();
        assert_eq!(names, ["manifest", "k.bin", "virtio-task"]);
        assert_eq!(bundle.get("virtio-task"), Some(&b"\x7fELF task"[..]));

        // No image found: the program is packed all the same.
        let lonely = tmp.file("lonely.toml", vm("b", "absent.bin", None).as_bytes());
        let assembled = assemble(&lonely, &[], &programs, &out).unwrap();
        assert_eq!(assembled.warnings.len(), 1);
        let bytes = fs::read(&out).unwrap();
        let names: Vec<_> = Bundle::parse(&bytes)
            .unwrap()
            .entries()
            .map(|(name, _)| name)
            .collect();
        assert_eq!(names, ["manifest", "virtio-task"]);
    }

    #[test]
    fn an_image_named_like_a_program_is_left_out_with_a_warning() {
        let tmp = TempDir::new("program-name");
        let text = format!("{}{}", vm("a", "k.bin", None), vm("b", "virtio-task", None));
        let manifest = tmp.file("vms.toml", text.as_bytes());
        tmp.file("k.bin", b"kernel");
        tmp.file("virtio-task", b"a kernel by that name");
        let programs = [program(&tmp, "virtio-task", b"the program")];
        let out = tmp.0.join("bundle.bin");

        let assembled = assemble(&manifest, &[], &programs, &out).unwrap();
        assert_eq!(
            assembled.warnings,
            ["vm \"b\": line 7: kernel \"virtio-task\" is the name of the hypervisor's own program, not packed; the VM would boot that"]
        );
        let bytes = fs::read(&out).unwrap();
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.get("virtio-task"), Some(&b"the program"[..]));
        assert_eq!(bundle.entries().count(), 3);
    }

    #[test]
    fn a_missing_program_is_an_error() {
        let tmp = TempDir::new("program-missing");
        let manifest = tmp.file("vms.toml", vm("a", "k.bin", None).as_bytes());
        tmp.file("k.bin", b"kernel");
        let programs = [Program {
            name: "virtio-task".to_string(),
            path: tmp.0.join("absent"),
        }];
        let out = tmp.0.join("bundle.bin");
        let error = assemble(&manifest, &[], &programs, &out).unwrap_err();
        assert!(
            format!("{error:#}").contains("the hypervisor's program \"virtio-task\""),
            "{error:#}"
        );
        assert!(!out.exists());
    }
}
