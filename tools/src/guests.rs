//! The guest images the tool builds, and building the ones a manifest names.
//!
//! A manifest names images by file name; two of those are built here rather
//! than kept in the repository: `test-guest.bin` (the bare-metal test guest,
//! built with cargo) and the Linux guest's `linux-Image` and
//! `linux-initramfs.cpio.gz` (downloaded and assembled by [`linux::prepare`],
//! cached after the first time). [`Needs::of_manifest`] says which of them a
//! manifest uses, so `run` and the system tests build exactly those.

use std::path::Path;

use anyhow::{Context, Result};
use manifest::Manifest;

use crate::{cargo, linux};

/// The test guest's image name, as manifests write it.
pub const TEST_GUEST_IMAGE: &str = "test-guest.bin";

/// Which built guest images a set of manifests uses.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    /// `test-guest.bin`.
    pub test_guest: bool,
    /// `linux-Image` or `linux-initramfs.cpio.gz`.
    pub linux: bool,
}

impl Needs {
    /// What the manifest at `path` uses. Only the VMs it accepts count:
    /// [`crate::bundle::assemble`] packs no image for a refused VM either.
    ///
    /// # Errors
    ///
    /// The manifest cannot be read, or has an error that refuses all of it.
    pub fn of_manifest(path: &Path) -> Result<Needs> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the manifest {}", path.display()))?;
        let parsed = Manifest::parse(&text)
            .with_context(|| format!("parsing the manifest {}", path.display()))?;
        let mut needs = Needs::default();
        for spec in parsed.good_vms() {
            for image in std::iter::once(&spec.kernel).chain(spec.initrd.as_ref()) {
                needs.add_image(image);
            }
        }
        Ok(needs)
    }

    /// Notes that a manifest names `image`.
    fn add_image(&mut self, image: &str) {
        match image {
            TEST_GUEST_IMAGE => self.test_guest = true,
            linux::IMAGE_NAME | linux::INITRAMFS_NAME => self.linux = true,
            _ => {}
        }
    }

    /// Everything either needs.
    pub fn union(self, other: Needs) -> Needs {
        Needs {
            test_guest: self.test_guest || other.test_guest,
            linux: self.linux || other.linux,
        }
    }
}

/// The outcome of building what a set of manifests needs; each part
/// separately, so a failed Linux download fails only the tests that boot
/// Linux.
#[derive(Debug, Default)]
pub struct Built {
    /// The test guest's build error, if it was needed and failed.
    pub test_guest: Option<String>,
    /// The Linux guest's error, if it was needed and failed.
    pub linux: Option<String>,
}

impl Built {
    /// Why a manifest with `needs` cannot be booted, if it cannot.
    pub fn problem(&self, needs: Needs) -> Option<String> {
        let failed = [
            (needs.test_guest, &self.test_guest, "the test guest"),
            (needs.linux, &self.linux, "the Linux guest"),
        ];
        failed
            .into_iter()
            .find_map(|(needed, error, what)| match (needed, error) {
                (true, Some(error)) => Some(format!("no build of {what}: {error}")),
                _ => None,
            })
    }
}

/// Builds every image `needs` asks for, carrying on past failures.
pub fn build(needs: Needs) -> Built {
    let mut built = Built::default();
    if needs.test_guest {
        built.test_guest = cargo::build_test_guest().err().map(|e| format!("{e:#}"));
    }
    if needs.linux {
        built.linux = linux::prepare().err().map(|e| format!("{e:#}"));
    }
    built
}

/// Builds every image `needs` asks for; stops at the first failure.
///
/// # Errors
///
/// A build fails.
pub fn build_all(needs: Needs) -> Result<()> {
    if needs.test_guest {
        cargo::build_test_guest()?;
    }
    if needs.linux {
        linux::prepare()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs_of(text: &str) -> Needs {
        let dir = std::env::temp_dir().join(format!(
            "hyp-tools-guests-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.toml");
        std::fs::write(&path, text).unwrap();
        let needs = Needs::of_manifest(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        needs
    }

    fn vm(name: &str, kernel: &str, initrd: Option<&str>) -> String {
        let initrd = initrd
            .map(|i| format!("initrd = \"{i}\"\n"))
            .unwrap_or_default();
        format!("[[vm]]\nname = \"{name}\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"{kernel}\"\n{initrd}")
    }

    #[test]
    fn the_images_a_manifest_names_decide_what_is_built() {
        assert_eq!(
            needs_of(&vm("a", "test-guest.bin", None)),
            Needs {
                test_guest: true,
                linux: false
            }
        );
        assert_eq!(
            needs_of(&vm("a", "linux-Image", Some("linux-initramfs.cpio.gz"))),
            Needs {
                test_guest: false,
                linux: true
            }
        );
        // Either Linux file is enough: a manifest may bring its own kernel.
        assert!(needs_of(&vm("a", "my-Image", Some("linux-initramfs.cpio.gz"))).linux);
        let both = format!(
            "{}\n{}",
            vm("a", "test-guest.bin", None),
            vm("b", "linux-Image", None)
        );
        assert_eq!(
            needs_of(&both),
            Needs {
                test_guest: true,
                linux: true
            }
        );
        assert_eq!(needs_of(&vm("a", "other.bin", None)), Needs::default());
    }

    #[test]
    fn every_manifest_in_the_repository_parses() {
        let dir = cargo::workspace_root().join("guest-images/manifests");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Needs::of_manifest(&path).unwrap();
            }
        }
    }

    #[test]
    fn a_failed_build_blocks_only_what_needs_it() {
        let built = Built {
            test_guest: None,
            linux: Some("no network".into()),
        };
        let test_guest = Needs {
            test_guest: true,
            linux: false,
        };
        let linux = Needs {
            test_guest: false,
            linux: true,
        };
        assert_eq!(built.problem(test_guest), None);
        assert_eq!(
            built.problem(linux).as_deref(),
            Some("no build of the Linux guest: no network")
        );
        assert_eq!(built.problem(test_guest.union(linux)), built.problem(linux));
        assert_eq!(built.problem(Needs::default()), None);
    }
}
