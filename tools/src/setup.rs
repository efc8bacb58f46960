//! Host requirements: `qemu-system-aarch64` >= 8.2.
//!
//! Debian 12's own QEMU is 7.2, too old for what the hypervisor needs from
//! the `virt` machine, so on bookworm the fix is QEMU from bookworm-backports.
//! As root on Debian the tool does that itself (CI runs as root on a fresh
//! Debian 12); anywhere else it prints the commands and fails.

use std::fmt;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The QEMU binary everything uses.
pub const QEMU: &str = "qemu-system-aarch64";

/// Oldest QEMU the project supports.
pub const MIN_QEMU: QemuVersion = QemuVersion {
    major: 8,
    minor: 2,
    patch: 0,
};

/// Debian's archive, used when the host's apt sources name none.
const DEFAULT_ARCHIVE: &str = "http://deb.debian.org/debian";

/// Where the backports source is written.
const BACKPORTS_SOURCES: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";

/// A QEMU release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QemuVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Micro version.
    pub patch: u32,
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Parses the first line of `qemu-system-aarch64 --version`, e.g.
/// `QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)`.
pub fn parse_qemu_version(output: &str) -> Option<QemuVersion> {
    let rest = output.split("version ").nth(1)?;
    let number = rest
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = number.split('.').map(str::parse::<u32>);
    let major = parts.next()?.ok()?;
    let minor = parts.next().unwrap_or(Ok(0)).ok()?;
    let patch = parts.next().unwrap_or(Ok(0)).ok()?;
    Some(QemuVersion {
        major,
        minor,
        patch,
    })
}

/// What the host is, as far as installing QEMU goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Running as uid 0.
    pub root: bool,
    /// `/etc/debian_version` exists and `apt-get` is on the PATH.
    pub debian_with_apt: bool,
    /// `VERSION_CODENAME` from `/etc/os-release`.
    pub codename: Option<String>,
    /// The archive URI the host's apt sources use for the main suite.
    pub archive: Option<String>,
}

/// What to do about QEMU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A good QEMU is installed.
    Ready(QemuVersion),
    /// Install QEMU with apt, ourselves.
    Install(Install),
    /// Tell the user what to run, then fail.
    Manual {
        /// Why QEMU is not usable.
        problem: String,
        /// Shell commands (or advice) for the user.
        commands: Vec<String>,
    },
}

/// An apt installation of `qemu-system-arm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// Why QEMU is not usable.
    pub problem: String,
    /// `Some(archive)` to add bookworm-backports from this archive first.
    pub backports_from: Option<String>,
}

impl Install {
    /// The deb822 source for bookworm-backports.
    pub fn sources_file(archive: &str) -> String {
        format!(
            "Types: deb\nURIs: {archive}\nSuites: bookworm-backports\nComponents: main\n\
             Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        )
    }

    /// The apt-get install command line.
    pub fn install_args(&self) -> Vec<&'static str> {
        let mut args = vec!["install", "-y"];
        if self.backports_from.is_some() {
            args.extend(["-t", "bookworm-backports"]);
        }
        args.push("qemu-system-arm");
        args
    }
}

/// Decides what to do given the installed QEMU (if any) and the host.
pub fn plan(installed: Option<QemuVersion>, host: &Host) -> Plan {
    let problem = match installed {
        Some(version) if version >= MIN_QEMU => return Plan::Ready(version),
        Some(version) => format!("{QEMU} is version {version}, older than {MIN_QEMU}"),
        None => format!("{QEMU} was not found"),
    };
    let bookworm = host.codename.as_deref() == Some("bookworm");
    let archive = host
        .archive
        .clone()
        .unwrap_or_else(|| DEFAULT_ARCHIVE.into());
    // Newer Debian releases ship a recent enough QEMU in their main suite.
    let backports_from = bookworm.then_some(archive);
    let install = Install {
        problem,
        backports_from,
    };
    if host.root && host.debian_with_apt {
        return Plan::Install(install);
    }
    let commands = if host.debian_with_apt {
        let mut commands = Vec::new();
        if let Some(archive) = &install.backports_from {
            commands.push(format!(
                "sudo tee {BACKPORTS_SOURCES} <<'EOF'\n{}EOF",
                Install::sources_file(archive)
            ));
        }
        commands.push("sudo apt-get update".into());
        commands.push(format!(
            "sudo DEBIAN_FRONTEND=noninteractive apt-get {}",
            install.install_args().join(" ")
        ));
        commands
    } else {
        vec![format!(
            "install QEMU >= {MIN_QEMU} with AArch64 system emulation ({QEMU}) \
             from your distribution or https://www.qemu.org/download/"
        )]
    };
    Plan::Manual {
        problem: install.problem,
        commands,
    }
}

/// Reads `VERSION_CODENAME` from os-release text.
pub fn parse_codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("VERSION_CODENAME=")?;
        let value = value.trim().trim_matches('"');
        (!value.is_empty()).then(|| value.to_owned())
    })
}

/// Finds the archive URI of the `codename` suite in a deb822 `.sources` file.
pub fn archive_from_deb822(sources: &str, codename: &str) -> Option<String> {
    // Stanzas are separated by blank lines; fields are `Name: value`; `#` starts a comment.
    let mut stanzas = vec![Vec::new()];
    for line in sources.lines() {
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
        } else if !line.trim_start().starts_with('#') {
            stanzas.last_mut()?.push(line);
        }
    }
    stanzas.iter().find_map(|stanza| {
        let field = |name: &str| {
            stanza.iter().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
            })
        };
        let suites = field("Suites")?;
        if !suites.split_whitespace().any(|suite| suite == codename) {
            return None;
        }
        field("URIs")?.split_whitespace().next().map(str::to_owned)
    })
}

/// Finds the archive URI of the `codename` suite in one-line `sources.list` text.
pub fn archive_from_sources_list(sources: &str, codename: &str) -> Option<String> {
    sources.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        if uri.starts_with('[') {
            // Skip `[signed-by=... arch=...]` options up to the closing bracket.
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        (words.next()? == codename).then(|| uri.to_owned())
    })
}

/// Finds out what the host is.
pub fn probe_host() -> Host {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let codename = read("/etc/os-release").and_then(|text| parse_codename(&text));
    let archive = codename.as_deref().and_then(|codename| {
        read("/etc/apt/sources.list.d/debian.sources")
            .and_then(|text| archive_from_deb822(&text, codename))
            .or_else(|| {
                read("/etc/apt/sources.list")
                    .and_then(|text| archive_from_sources_list(&text, codename))
            })
    });
    Host {
        // SAFETY: geteuid has no preconditions and cannot fail (POSIX).
        root: unsafe { libc::geteuid() } == 0,
        debian_with_apt: Path::new("/etc/debian_version").exists() && on_path("apt-get"),
        codename,
        archive,
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The installed QEMU's version, or `None` if it is not installed.
///
/// # Errors
///
/// QEMU runs but its `--version` output cannot be understood.
pub fn installed_qemu() -> Result<Option<QemuVersion>> {
    let output = match Command::new(QEMU).arg("--version").output() {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).context(format!("running {QEMU} --version")),
    };
    let text = String::from_utf8_lossy(&output.stdout);
    parse_qemu_version(&text)
        .map(Some)
        .with_context(|| format!("cannot read a version from `{QEMU} --version`: {text:?}"))
}

/// Makes sure a good QEMU is installed, installing it when allowed.
///
/// # Errors
///
/// QEMU is missing or too old and cannot be installed here (the message holds
/// the commands to run), or the installation failed.
pub fn ensure_qemu() -> Result<QemuVersion> {
    let install = match plan(installed_qemu()?, &probe_host()) {
        Plan::Ready(version) => {
            println!("setup: {QEMU} {version} (>= {MIN_QEMU}): ok");
            return Ok(version);
        }
        Plan::Manual { problem, commands } => {
            bail!(
                "setup: {problem}.\nRun:\n\n{}\n\nthen try again.",
                commands.join("\n")
            );
        }
        Plan::Install(install) => install,
    };
    println!("setup: {}.", install.problem);
    if let Some(archive) = &install.backports_from {
        println!("setup: adding bookworm-backports ({archive}) to apt in {BACKPORTS_SOURCES}");
        std::fs::write(BACKPORTS_SOURCES, Install::sources_file(archive))
            .with_context(|| format!("writing {BACKPORTS_SOURCES}"))?;
    }
    println!("setup: running apt-get update");
    apt_get(&["update"])?;
    let args = install.install_args();
    println!("setup: installing QEMU: apt-get {}", args.join(" "));
    apt_get(&args)?;
    match installed_qemu()? {
        Some(version) if version >= MIN_QEMU => {
            println!("setup: {QEMU} {version} installed");
            Ok(version)
        }
        Some(version) => bail!("setup: installed {QEMU} is still {version} < {MIN_QEMU}"),
        None => bail!("setup: {QEMU} still missing after installing qemu-system-arm"),
    }
}

fn apt_get(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    ensure!(
        status.success(),
        "apt-get {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(major: u32, minor: u32, patch: u32) -> QemuVersion {
        QemuVersion {
            major,
            minor,
            patch,
        }
    }

    fn bookworm(root: bool) -> Host {
        Host {
            root,
            debian_with_apt: true,
            codename: Some("bookworm".into()),
            archive: Some("http://mirror.example/debian".into()),
        }
    }

    #[test]
    fn versions_are_parsed_from_real_banners() {
        let cases = [
            (
                "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\n\
                 Copyright (c) 2003-2025 Fabrice Bellard and the QEMU Project developers",
                version(10, 0, 2),
            ),
            (
                "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u12)",
                version(7, 2, 15),
            ),
            ("QEMU emulator version 8.2.0", version(8, 2, 0)),
            (
                "QEMU emulator version 9.1.50 (v9.1.0-1234-gdeadbeef)",
                version(9, 1, 50),
            ),
            ("QEMU emulator version 9.0", version(9, 0, 0)),
        ];
        for (banner, expected) in cases {
            assert_eq!(parse_qemu_version(banner), Some(expected), "{banner}");
        }
        assert_eq!(parse_qemu_version("qemu-system-aarch64: bad option"), None);
        assert_eq!(parse_qemu_version(""), None);
    }

    #[test]
    fn minimum_version_is_8_2() {
        assert!(version(8, 2, 0) >= MIN_QEMU);
        assert!(version(10, 0, 2) >= MIN_QEMU);
        assert!(version(8, 1, 99) < MIN_QEMU);
        assert!(version(7, 2, 15) < MIN_QEMU);
    }

    #[test]
    fn a_good_qemu_needs_nothing() {
        assert_eq!(
            plan(Some(version(10, 0, 2)), &bookworm(false)),
            Plan::Ready(version(10, 0, 2))
        );
    }

    #[test]
    fn root_on_bookworm_installs_from_backports_of_the_hosts_archive() {
        let Plan::Install(install) = plan(Some(version(7, 2, 15)), &bookworm(true)) else {
            panic!("expected an install");
        };
        assert_eq!(
            install.backports_from.as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            install.install_args(),
            [
                "install",
                "-y",
                "-t",
                "bookworm-backports",
                "qemu-system-arm"
            ]
        );
        assert_eq!(
            Install::sources_file("http://mirror.example/debian"),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm-backports\n\
             Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        );
    }

    #[test]
    fn missing_archive_falls_back_to_deb_debian_org() {
        let host = Host {
            archive: None,
            ..bookworm(true)
        };
        let Plan::Install(install) = plan(None, &host) else {
            panic!("expected an install");
        };
        assert_eq!(install.backports_from.as_deref(), Some(DEFAULT_ARCHIVE));
    }

    #[test]
    fn root_on_newer_debian_installs_from_main() {
        let host = Host {
            codename: Some("trixie".into()),
            ..bookworm(true)
        };
        let Plan::Install(install) = plan(None, &host) else {
            panic!("expected an install");
        };
        assert_eq!(install.backports_from, None);
        assert_eq!(install.install_args(), ["install", "-y", "qemu-system-arm"]);
    }

    #[test]
    fn non_root_gets_the_commands_to_run() {
        let Plan::Manual { problem, commands } = plan(None, &bookworm(false)) else {
            panic!("expected manual instructions");
        };
        assert!(problem.contains("not found"));
        assert!(commands[0].contains(BACKPORTS_SOURCES));
        assert!(commands[0].contains("Suites: bookworm-backports"));
        assert_eq!(commands[1], "sudo apt-get update");
        assert!(commands[2].ends_with("apt-get install -y -t bookworm-backports qemu-system-arm"));
    }

    #[test]
    fn without_apt_the_user_is_told_to_install_qemu() {
        let host = Host {
            root: true,
            debian_with_apt: false,
            codename: None,
            archive: None,
        };
        let Plan::Manual { problem, commands } = plan(Some(version(6, 2, 0)), &host) else {
            panic!("expected manual instructions");
        };
        assert!(problem.contains("6.2.0"));
        assert_eq!(commands.len(), 1);
    }

    #[test]
    fn codename_comes_from_os_release() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n\
                    VERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(parse_codename(text).as_deref(), Some("bookworm"));
        assert_eq!(parse_codename("ID=debian\n"), None);
    }

    #[test]
    fn archive_comes_from_the_main_suite_stanza_of_deb822_sources() {
        let sources =
            "Types: deb\n# http://snapshot.example/archive\nURIs: http://mirror.example/debian\n\
                       Suites: bookworm bookworm-updates\nComponents: main\n\
                       Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
                       Types: deb\nURIs: http://deb.debian.org/debian-security\n\
                       Suites: bookworm-security\nComponents: main\n";
        assert_eq!(
            archive_from_deb822(sources, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(archive_from_deb822(sources, "trixie"), None);
    }

    #[test]
    fn archive_comes_from_the_main_suite_line_of_sources_list() {
        let sources = "# comment\n\
                       deb http://security.debian.org/debian-security bookworm-security main\n\
                       deb [arch=arm64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n";
        assert_eq!(
            archive_from_sources_list(sources, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(archive_from_sources_list("", "bookworm"), None);
    }
}
