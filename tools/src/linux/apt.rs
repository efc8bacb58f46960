//! arm64 Debian packages, fetched with the host's own apt whatever the
//! host's architecture, without installing them or touching the host's
//! package state.
//!
//! apt gets a private directory for its lists, caches and state
//! ([`Apt::new`]), a sources file of its own naming only Debian's archive,
//! and `APT::Architecture=arm64`. The host's `apt.conf.d` still applies, so
//! proxies configured there are used. apt checks the lists against the
//! archive's signed `InRelease` files and each `.deb` against its list entry;
//! [`Apt::download`] checks the `.deb`'s SHA-256 against that entry once more
//! itself, so a wrong file never gets into the guest even if apt's own check
//! was configured away.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use crate::cargo::describe;
use crate::setup;

/// The Debian release the packages come from: Debian 12, kernel 6.1.
pub const SUITE: &str = "bookworm";

/// The architecture of the packages.
pub const ARCH: &str = "arm64";

/// Debian's archive and its security archive, used when the host's apt
/// sources name no mirror for [`SUITE`].
const DEFAULT_ARCHIVE: &str = "http://deb.debian.org/debian";
const DEFAULT_SECURITY_ARCHIVE: &str = "http://deb.debian.org/debian-security";

/// The key Debian's archive is signed with (package `debian-archive-keyring`).
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest256([u8; 32]);

impl Digest256 {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// The digest of the file at `path`.
    ///
    /// # Errors
    ///
    /// The file cannot be read.
    pub fn of_file(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::of(&data))
    }
}

impl fmt::Display for Digest256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Digest256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest256({self})")
    }
}

impl FromStr for Digest256 {
    type Err = anyhow::Error;

    /// 64 hex digits, either case.
    fn from_str(text: &str) -> Result<Self> {
        ensure!(
            text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()),
            "{text:?} is not a SHA-256 digest (64 hex digits)"
        );
        let mut digest = [0; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
            // Both are ASCII hex digits, checked above.
            let pair = std::str::from_utf8(pair)?;
            *byte = u8::from_str_radix(pair, 16)?;
        }
        Ok(Self(digest))
    }
}

/// A package as the archive's `Packages` list describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// `Package:`.
    pub name: String,
    /// `Version:`, with its epoch if it has one (`1:1.35.0-4`).
    pub version: String,
    /// `Depends:`, as written (empty if absent).
    pub depends: String,
    /// `Filename:`, the `.deb`'s path in the archive.
    pub filename: String,
    /// `SHA256:`, the `.deb`'s digest.
    pub sha256: Digest256,
}

impl Package {
    /// The `.deb`'s file name in the archive (the last part of `Filename:`).
    pub fn deb_name(&self) -> &str {
        self.filename.rsplit('/').next().unwrap_or(&self.filename)
    }
}

/// The value of `name` in a deb822 stanza, continuation lines joined with
/// `\n` (field names are case-insensitive, Debian Policy 5.1).
fn field(stanza: &str, name: &str) -> Option<String> {
    let mut lines = stanza.lines();
    let first = lines.by_ref().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        let is_field = !key.starts_with([' ', '\t']) && key.eq_ignore_ascii_case(name);
        is_field.then_some(value.trim())
    })?;
    let mut value = first.to_owned();
    for line in lines.take_while(|line| line.starts_with([' ', '\t'])) {
        value.push('\n');
        value.push_str(line.trim());
    }
    Some(value)
}

/// Reads the first stanza of `apt-cache show` output.
///
/// # Errors
///
/// There is no stanza, or it lacks `Package`, `Version`, `Filename` or a
/// well-formed `SHA256`.
pub fn parse_package(show: &str) -> Result<Package> {
    let stanza = show
        .split("\n\n")
        .find(|stanza| !stanza.trim().is_empty())
        .context("apt-cache printed no package")?;
    let required = |name: &str| {
        field(stanza, name)
            .filter(|value| !value.is_empty())
            .with_context(|| format!("package entry without {name}:\n{stanza}"))
    };
    Ok(Package {
        name: required("Package")?,
        version: required("Version")?,
        depends: field(stanza, "Depends").unwrap_or_default(),
        filename: required("Filename")?,
        sha256: required("SHA256")?
            .parse()
            .context("the package entry's SHA256")?,
    })
}

/// The first package a `Depends:` value names whose name starts with
/// `prefix`, and the version it pins with `(= version)`, if any. Only the
/// first of alternatives (`a | b`) counts: it is what apt would pick.
///
/// For a metapackage such as `linux-image-cloud-arm64`, whose `Depends:` is
/// `linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)`.
///
/// # Errors
///
/// No dependency's name starts with `prefix`.
pub fn dependency(depends: &str, prefix: &str) -> Result<(String, Option<String>)> {
    for item in depends.split(',') {
        let first = item.split('|').next().unwrap_or_default().trim();
        let (name, constraint) = match first.split_once('(') {
            Some((name, rest)) => (name.trim(), Some(rest.trim_end_matches(')').trim())),
            None => (first, None),
        };
        // A `:arch` qualifier (`pkg:any`) is not part of the name.
        let name = name.split(':').next().unwrap_or(name);
        if !name.starts_with(prefix) {
            continue;
        }
        let version = constraint
            .and_then(|c| c.strip_prefix('='))
            .map(|v| v.trim().to_owned());
        return Ok((name.to_owned(), version));
    }
    bail!("no dependency starting with {prefix} in {depends:?}")
}

/// The deb822 sources file for [`SUITE`] and its updates and security suites.
fn sources(archive: &str, security: &str) -> String {
    let stanza = |uri: &str, suites: &str| {
        format!(
            "Types: deb\nURIs: {uri}\nSuites: {suites}\nComponents: main\n\
             Architectures: {ARCH}\nSigned-By: {KEYRING}\n"
        )
    };
    format!(
        "{}\n{}",
        stanza(archive, &format!("{SUITE} {SUITE}-updates")),
        stanza(security, &format!("{SUITE}-security"))
    )
}

/// The mirror the host's apt sources use for `suite`, if they name one.
fn host_mirror(suite: &str) -> Option<String> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    read("/etc/apt/sources.list.d/debian.sources")
        .and_then(|text| setup::archive_from_deb822(&text, suite))
        .or_else(|| {
            read("/etc/apt/sources.list")
                .and_then(|text| setup::archive_from_sources_list(&text, suite))
        })
}

/// apt with a private state directory, for arm64 packages of [`SUITE`].
#[derive(Debug)]
pub struct Apt {
    root: PathBuf,
}

impl Apt {
    /// Sets up the private directory `root`: its sources file (the host's
    /// Debian mirror if it has one, else deb.debian.org) and the directories
    /// apt expects.
    ///
    /// # Errors
    ///
    /// The directories or the sources file cannot be written.
    pub fn new(root: &Path) -> Result<Self> {
        let apt = Self {
            root: root.to_path_buf(),
        };
        for dir in [
            apt.lists().join("partial"),
            apt.root.join("cache/archives/partial"),
            apt.root.join("state"),
            apt.sources_dir(),
            apt.root.join("preferences.d"),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let archive = host_mirror(SUITE).unwrap_or_else(|| DEFAULT_ARCHIVE.into());
        let security = host_mirror(&format!("{SUITE}-security"))
            .unwrap_or_else(|| DEFAULT_SECURITY_ARCHIVE.into());
        let file = apt.sources_dir().join("debian.sources");
        std::fs::write(&file, sources(&archive, &security))
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(apt)
    }

    fn lists(&self) -> PathBuf {
        self.root.join("lists")
    }

    fn sources_dir(&self) -> PathBuf {
        self.root.join("sources.list.d")
    }

    /// `program` (`apt-get` or `apt-cache`) pointed at the private directory.
    fn command(&self, program: &str) -> Command {
        let dir = |name: &str| self.root.join(name).display().to_string();
        let mut command = Command::new(program);
        command.env("LC_ALL", "C").args([
            format!("-oAPT::Architecture={ARCH}"),
            // `::=` replaces the list instead of appending to the host's.
            format!("-oAPT::Architectures::={ARCH}"),
            format!("-oDir::State={}", dir("state")),
            format!("-oDir::State::Lists={}", self.lists().display()),
            // No installed packages: nothing of the host's dpkg state is read.
            "-oDir::State::status=/dev/null".into(),
            format!("-oDir::Cache={}", dir("cache")),
            "-oDir::Etc::SourceList=/dev/null".into(),
            format!("-oDir::Etc::SourceParts={}", self.sources_dir().display()),
            // The host's pinning is for the host's packages, not these.
            "-oDir::Etc::Preferences=/dev/null".into(),
            format!("-oDir::Etc::PreferencesParts={}", dir("preferences.d")),
            // Package lists only: no translations, no AppStream metadata.
            "-oAcquire::Languages=none".into(),
            "-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false".into(),
            "-oAcquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled=false".into(),
        ]);
        // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
        if unsafe { libc::geteuid() } == 0 {
            // As root apt downloads as the `_apt` user, which cannot write
            // to the target directory; these are our own directories.
            command.arg("-oAPT::Sandbox::User=root");
        }
        command
    }

    /// Runs `command`, failing with its output if it fails; returns stdout
    /// and prints apt's warnings.
    fn run(command: &mut Command) -> Result<String> {
        let output = command
            .output()
            .with_context(|| format!("running {} (is this a Debian host?)", describe(command)))?;
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.success(),
            "{} failed ({}):\n{stdout}{stderr}",
            describe(command),
            output.status
        );
        for line in stderr.lines().filter(|line| line.starts_with("W:")) {
            println!("linux: apt: {line}");
        }
        Ok(stdout)
    }

    /// Fetches the package lists (`apt-get update`).
    ///
    /// # Errors
    ///
    /// apt fails, e.g. the archive is unreachable or a list's signature is bad.
    pub fn update(&self) -> Result<()> {
        Self::run(self.command("apt-get").arg("update")).map(drop)
    }

    /// The list entry of `name`: the candidate version, or `version`.
    ///
    /// # Errors
    ///
    /// The package (version) is not in the lists, or its entry is malformed.
    pub fn show(&self, name: &str, version: Option<&str>) -> Result<Package> {
        let spec = match version {
            Some(version) => format!("{name}={version}"),
            None => name.to_owned(),
        };
        let stdout = Self::run(
            self.command("apt-cache")
                .args(["show", "--no-all-versions"])
                .arg(&spec),
        )?;
        let package = parse_package(&stdout).with_context(|| format!("looking up {spec}"))?;
        ensure!(
            package.name == name && version.is_none_or(|v| v == package.version),
            "apt-cache show {spec} printed {} {}",
            package.name,
            package.version
        );
        Ok(package)
    }

    /// Downloads `package` into `debs` as `debs/<deb_name>` and checks its
    /// SHA-256 against the list entry. Returns the file's path.
    ///
    /// # Errors
    ///
    /// apt fails, or the downloaded file's digest is not the list's.
    pub fn download(&self, package: &Package, debs: &Path) -> Result<PathBuf> {
        let name = package.deb_name();
        ensure!(
            name.ends_with(".deb") && !name.starts_with('.'),
            "{}: odd archive file name {:?}",
            package.name,
            package.filename
        );
        // A fresh directory per download: apt names the file itself (the
        // epoch's `:` escaped), so the one `.deb` in it is the package.
        let partial = debs.join("partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial)
                .with_context(|| format!("removing {}", partial.display()))?;
        }
        std::fs::create_dir_all(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let spec = format!("{}={}", package.name, package.version);
        Self::run(
            self.command("apt-get")
                .arg("download")
                .arg(&spec)
                .current_dir(&partial),
        )?;
        let downloaded: Vec<_> = std::fs::read_dir(&partial)
            .with_context(|| format!("listing {}", partial.display()))?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<Result<_, _>>()?;
        let [file] = downloaded.as_slice() else {
            bail!(
                "apt-get download {spec} left {} files in {}, expected one .deb",
                downloaded.len(),
                partial.display()
            );
        };
        verify(file, package)?;
        let deb = debs.join(name);
        std::fs::rename(file, &deb)
            .with_context(|| format!("moving {} to {}", file.display(), deb.display()))?;
        std::fs::remove_dir(&partial).with_context(|| format!("removing {}", partial.display()))?;
        Ok(deb)
    }
}

/// Checks that `deb`'s SHA-256 is the one `package`'s list entry gives,
/// printing both.
///
/// # Errors
///
/// The file cannot be read or its digest differs.
pub fn verify(deb: &Path, package: &Package) -> Result<()> {
    let actual = Digest256::of_file(deb)?;
    ensure!(
        actual == package.sha256,
        "SHA-256 MISMATCH for {}: the package list says {}, the file is {}; \
         delete it and try again, and suspect the mirror or a proxy if it persists",
        deb.display(),
        package.sha256,
        actual
    );
    println!(
        "linux: {} {} sha256 {actual} matches the package list",
        package.name, package.version
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL_META: &str = "\
Package: linux-image-cloud-arm64
Source: linux-signed-arm64 (6.1.192+2)
Version: 6.1.192-2
Installed-Size: 13
Provides: linux-latest-modules-6.1.0-56-cloud-arm64, wireguard-modules (= 1.0.0)
Depends: linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)
Description: Linux for arm64 cloud (meta-package)
 This package depends on the latest Linux kernel and modules for use on
 cloud platforms.
Filename: pool/updates/main/l/linux-signed-arm64/linux-image-cloud-arm64_6.1.192-2_arm64.deb
Size: 1460
SHA256: ab97b5c21a7b8ee1ab7a7a5a45f690ff773b6cde33183cd9d57de345133b3ce7

";

    const BUSYBOX: &str = "\
Package: busybox-static
Source: busybox (1:1.35.0-4+deb12u1)
Version: 1:1.35.0-4+deb12u1+b1
Depends: 
Filename: pool/main/b/busybox/busybox-static_1.35.0-4+deb12u1+b1_arm64.deb
Size: 822236
MD5sum: 49b1dbf1d63fbb662fb329033600c6ca
SHA256: 732C9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5

Package: busybox-static
Version: 1:1.35.0-4
";

    #[test]
    fn a_package_entry_is_parsed() {
        let package = parse_package(KERNEL_META).unwrap();
        assert_eq!(package.name, "linux-image-cloud-arm64");
        assert_eq!(package.version, "6.1.192-2");
        assert_eq!(
            package.depends,
            "linux-image-6.1.0-56-cloud-arm64 (= 6.1.192-2)"
        );
        assert_eq!(
            package.deb_name(),
            "linux-image-cloud-arm64_6.1.192-2_arm64.deb"
        );
        assert_eq!(
            package.sha256.to_string(),
            "ab97b5c21a7b8ee1ab7a7a5a45f690ff773b6cde33183cd9d57de345133b3ce7"
        );
    }

    #[test]
    fn only_the_first_entry_counts_and_epochs_stay_in_the_version() {
        let package = parse_package(BUSYBOX).unwrap();
        assert_eq!(package.version, "1:1.35.0-4+deb12u1+b1");
        assert_eq!(package.depends, "");
        // Upper-case hex is accepted and printed in lower case.
        assert_eq!(
            package.sha256.to_string(),
            "732c9135564fc71337e0e05fb4da4d11e6c28c1834bce3e405e575afef2a52f5"
        );
    }

    #[test]
    fn continuation_lines_belong_to_their_field() {
        assert_eq!(
            field(KERNEL_META, "description").as_deref(),
            Some(
                "Linux for arm64 cloud (meta-package)\nThis package depends on the latest \
                 Linux kernel and modules for use on\ncloud platforms."
            )
        );
        assert_eq!(field(KERNEL_META, "Breaks"), None);
    }

    #[test]
    fn malformed_entries_are_errors() {
        assert!(parse_package("").is_err());
        assert!(parse_package("\n\n").is_err());
        let no_digest = KERNEL_META.replace("SHA256: ab97", "MD5sum: ab97");
        let error = format!("{:#}", parse_package(&no_digest).unwrap_err());
        assert!(error.contains("without SHA256"), "{error}");
        let short_digest = KERNEL_META.replace("SHA256: ab97", "SHA256: ab9");
        let error = format!("{:#}", parse_package(&short_digest).unwrap_err());
        assert!(error.contains("not a SHA-256 digest"), "{error}");
        let bad_hex = KERNEL_META.replace("SHA256: ab97", "SHA256: xy97");
        assert!(parse_package(&bad_hex).is_err());
    }

    #[test]
    fn the_metapackage_names_the_real_image_package() {
        let package = parse_package(KERNEL_META).unwrap();
        assert_eq!(
            dependency(&package.depends, "linux-image-").unwrap(),
            (
                "linux-image-6.1.0-56-cloud-arm64".into(),
                Some("6.1.192-2".into())
            )
        );
        assert_eq!(
            dependency(
                "kmod, linux-image-6.1.0-9-arm64 | linux-image-x, libc6:any",
                "linux-image-"
            )
            .unwrap(),
            ("linux-image-6.1.0-9-arm64".into(), None)
        );
        assert_eq!(
            dependency("libc6:any (>= 2.36)", "libc6").unwrap(),
            ("libc6".into(), None)
        );
        assert!(dependency("kmod, linux-base (>= 4.3~)", "linux-image-").is_err());
        assert!(dependency("", "linux-image-").is_err());
    }

    #[test]
    fn digests_round_trip_and_match_known_values() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(Digest256::of(b"abc").to_string(), abc);
        assert_eq!(abc.parse::<Digest256>().unwrap(), Digest256::of(b"abc"));
        assert!("".parse::<Digest256>().is_err());
        assert!(format!("{abc}0").parse::<Digest256>().is_err());
    }

    #[test]
    fn a_file_whose_digest_differs_from_the_list_is_refused() {
        let deb = std::env::temp_dir().join(format!("hyp-tools-verify-{}.deb", std::process::id()));
        std::fs::write(&deb, b"abc").unwrap();
        let mut package = parse_package(KERNEL_META).unwrap();
        let error = format!("{:#}", verify(&deb, &package).unwrap_err());
        assert!(error.contains("SHA-256 MISMATCH"), "{error}");
        assert!(error.contains(&package.sha256.to_string()), "{error}");
        package.sha256 = Digest256::of(b"abc");
        verify(&deb, &package).unwrap();
        std::fs::remove_file(&deb).unwrap();
    }

    #[test]
    fn sources_name_the_suite_its_updates_and_security() {
        let text = sources(
            "http://mirror.example/debian",
            "http://mirror.example/security",
        );
        assert_eq!(
            setup::archive_from_deb822(&text, "bookworm-updates").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            setup::archive_from_deb822(&text, "bookworm-security").as_deref(),
            Some("http://mirror.example/security")
        );
        assert!(text.contains("Architectures: arm64\n"));
        assert!(text.contains(&format!("Signed-By: {KEYRING}\n")));
    }
}
