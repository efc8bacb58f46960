//! The manifest: which VMs to start, parsed from its text into [`Manifest`].

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::bundle::{MANIFEST_ENTRY, MAX_NAME_LEN};
use crate::io::{
    check_network_name, derived_mac, parse_disk_access, parse_disk_region, parse_mac, parse_size,
    DiskSpec, Mac, NetSpec,
};
use crate::lex::{self, Line, Value};
use crate::pci::{parse_pci_function, PciFunction, MAX_PASSTHROUGH};

/// The most vCPUs one VM may have.
pub const MAX_VCPUS: u32 = 8;

/// The most VMs one manifest may start; sections past this one are refused.
pub const MAX_VMS: usize = 64;

/// The longest manifest text accepted, in bytes. It keeps the parser's work
/// and allocations bounded whatever the bundle holds.
pub const MAX_MANIFEST_LEN: usize = 64 * 1024;

/// The longest VM name, in characters (all ASCII).
pub const MAX_VM_NAME_LEN: usize = 32;

/// The longest `bootargs`, in bytes: Linux arm64's `COMMAND_LINE_SIZE` is
/// 2048 including the terminating NUL.
pub const MAX_BOOTARGS_LEN: usize = 2047;

/// Guest memory comes in multiples of this: stage-2 maps it with 2 MiB
/// blocks (a level-2 block with the 4 KiB granule).
pub const MEMORY_GRANULE: u64 = 2 << 20;

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// One entry per `[[vm]]` section, in file order, good or bad.
    pub vms: Vec<VmEntry>,
}

/// One `[[vm]]` section: either a VM to start or the reason not to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEntry {
    /// The VM's name from its `name` key, or `vm #N` (N counting sections
    /// from 1) when the section has no valid name. A fallback name is never
    /// a valid VM name, so the two cannot be confused.
    pub name: String,
    /// The line of the section's `[[vm]]` header (counting from 1).
    pub line: u32,
    /// The VM, or the first problem found in its section.
    pub spec: Result<VmSpec, VmError>,
}

/// A VM to start, every field validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// 1 to [`MAX_VM_NAME_LEN`] characters of `[A-Za-z0-9_-]`, unique in the
    /// manifest.
    pub name: String,
    /// 1 to [`MAX_VCPUS`].
    pub vcpus: u32,
    /// Guest RAM in bytes: a non-zero multiple of [`MEMORY_GRANULE`].
    pub memory: u64,
    /// The name of the kernel image in the bundle.
    pub kernel: String,
    /// The name of the initrd image in the bundle, if any.
    pub initrd: Option<String>,
    /// The kernel command line; empty by default.
    pub bootargs: String,
    /// The devices the VM gets, each kind at most once; a console UART by
    /// default.
    pub devices: Vec<Device>,
    /// The VM after which this one starts, from the `after` key: this VM is
    /// created and started only once that one has stopped. `None` (the
    /// default) starts it at boot. When `Some`, it names another VM of the
    /// manifest whose spec is `Ok`: a name that is unknown, this VM's own,
    /// part of a cycle, or a refused VM's refuses this VM instead.
    pub after: Option<String>,
    /// The region of the host disk the VM's virtio-blk device maps, from
    /// the `disk` and `disk_access` keys; `None` (the default): no disk.
    pub disk: Option<DiskSpec>,
    /// The VM's virtio-net port, from the `network` and `mac` keys; `None`
    /// (the default): no network. Its MAC is unique among the accepted VMs
    /// on its network.
    pub net: Option<NetSpec>,
    /// Host PCI functions passed through to the VM, from the `passthrough`
    /// key: at most [`MAX_PASSTHROUGH`], each listed once, in the order
    /// given. Empty by default.
    pub passthrough: Vec<PciFunction>,
    /// From `passthrough_required` (default `true`): whether the VM must
    /// not start when one of its functions cannot be attached. With
    /// `false` it starts without that function.
    pub passthrough_required: bool,
    /// Where the backends of the VM's virtio devices (its `disk` and
    /// `network`) process their queues, from the `backend` key;
    /// [`DeviceBackend::Task`] by default. The key is accepted only on a VM
    /// with a `disk` or a `network`; a VM without either has the default,
    /// which then means nothing.
    pub backend: DeviceBackend,
}

/// Where a VM's virtio device backends run: which code takes the guest's
/// queue notifications, walks its virtqueues and does the disk and network
/// I/O for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DeviceBackend {
    /// In an unprivileged EL0 task of the VM's own (`backend = "task"`, the
    /// default): a fault or a bug in queue processing stays inside that
    /// task rather than in the hypervisor.
    #[default]
    Task,
    /// In the hypervisor itself, at EL2 (`backend = "hypervisor"`): no
    /// switch to a task per notification.
    Hypervisor,
}

impl DeviceBackend {
    /// Every backend, in the order the manifest documentation lists them.
    pub const ALL: [DeviceBackend; 2] = [DeviceBackend::Task, DeviceBackend::Hypervisor];

    /// The spellings a manifest accepts, in the order of [`Self::ALL`].
    const NAMES: [&'static str; 2] = [
        DeviceBackend::Task.as_str(),
        DeviceBackend::Hypervisor.as_str(),
    ];

    /// The backend as written in a manifest: `"task"` or `"hypervisor"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceBackend::Task => "task",
            DeviceBackend::Hypervisor => "hypervisor",
        }
    }

    /// The backend spelled `name` in a manifest, if there is one.
    pub fn from_name(name: &str) -> Option<DeviceBackend> {
        DeviceBackend::ALL.into_iter().find(|b| b.as_str() == name)
    }
}

impl fmt::Display for DeviceBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A device kind a VM may be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    /// A PL011 UART: the VM's console.
    Pl011,
}

impl Device {
    /// Every kind, in the order the manifest documentation lists them.
    pub const ALL: [Device; 1] = [Device::Pl011];

    /// The kind as written in a manifest.
    pub const fn kind(self) -> &'static str {
        match self {
            Device::Pl011 => "pl011",
        }
    }

    /// The kind named `kind` in a manifest, if there is one.
    pub fn from_kind(kind: &str) -> Option<Device> {
        Device::ALL.into_iter().find(|d| d.kind() == kind)
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// Why one VM's section is refused. Every variant carries the line it is
/// about; its `Display` starts with `line N: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmError {
    /// The line is not in the supported TOML subset, or is a table header
    /// other than `[[vm]]`.
    Syntax {
        /// The offending line.
        line: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key the manifest does not define (usually a typo).
    UnknownKey {
        /// The line of the key.
        line: u32,
        /// The key as written.
        key: String,
    },
    /// A key given a second time in the same section.
    DuplicateKey {
        /// The line of the second occurrence.
        line: u32,
        /// The key.
        key: &'static str,
    },
    /// A required key is absent.
    MissingKey {
        /// The line of the section's `[[vm]]` header.
        line: u32,
        /// The missing key.
        key: &'static str,
    },
    /// A known key with a value of the wrong type or out of range.
    BadValue {
        /// The line of the key.
        line: u32,
        /// The key.
        key: &'static str,
        /// What is wrong with the value.
        reason: &'static str,
    },
    /// A key whose string value is none of the words it accepts.
    UnknownValue {
        /// The line of the key.
        line: u32,
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The values the key accepts.
        expected: &'static [&'static str],
    },
    /// `vcpus` above [`MAX_VCPUS`].
    TooManyVcpus {
        /// The line of the `vcpus` key.
        line: u32,
        /// The number asked for.
        requested: u64,
        /// The limit, [`MAX_VCPUS`].
        max: u32,
    },
    /// A `devices` entry naming no known [`Device`] kind.
    UnknownDevice {
        /// The line of the `devices` key.
        line: u32,
        /// The kind as written.
        kind: String,
    },
    /// The VM's name is already taken by an earlier section.
    DuplicateName {
        /// The line of this section's `name` key.
        line: u32,
        /// The name.
        name: String,
        /// The `[[vm]]` line of the earlier section with that name.
        first_line: u32,
    },
    /// `after` names no VM of the manifest.
    AfterUnknown {
        /// The line of the `after` key.
        line: u32,
        /// The name given.
        name: String,
    },
    /// `after` names the VM itself.
    AfterSelf {
        /// The line of the `after` key.
        line: u32,
    },
    /// Following `after` from this VM comes back to it: none of the VMs in
    /// the cycle could ever start.
    AfterCycle {
        /// The line of the `after` key.
        line: u32,
        /// The VMs in the cycle, in `after` order, starting with this one.
        cycle: Vec<String>,
    },
    /// `after` names a VM that is refused, so this one could never start.
    AfterRefused {
        /// The line of the `after` key.
        line: u32,
        /// The refused VM.
        name: String,
    },
    /// A key that means something only with another one, without it:
    /// `disk_access` without `disk`, `mac` without `network`,
    /// `passthrough_required` without `passthrough`.
    Requires {
        /// The line of the key.
        line: u32,
        /// The key.
        key: &'static str,
        /// The key it needs.
        needs: &'static str,
    },
    /// A key that means something only with one of several others, without
    /// any of them: `backend` without `disk` or `network`.
    RequiresAny {
        /// The line of the key.
        line: u32,
        /// The key.
        key: &'static str,
        /// The keys of which it needs one.
        needs: &'static [&'static str],
    },
    /// An earlier VM's port on the same network has the same MAC.
    DuplicateMac {
        /// The line of this VM's `mac` key, or of its `network` key when the
        /// MAC is derived.
        line: u32,
        /// The MAC.
        mac: [u8; 6],
        /// Whether this VM's MAC was derived from its name.
        derived: bool,
        /// The network.
        network: String,
        /// The earlier VM.
        first: String,
        /// The `[[vm]]` line of the earlier VM's section.
        first_line: u32,
    },
    /// The section comes after [`MAX_VMS`] others.
    TooManyVms {
        /// The section's `[[vm]]` line.
        line: u32,
        /// The limit, [`MAX_VMS`].
        max: usize,
    },
}

impl VmError {
    /// The manifest line the error is about (counting from 1).
    pub fn line(&self) -> u32 {
        match *self {
            VmError::Syntax { line, .. }
            | VmError::UnknownKey { line, .. }
            | VmError::DuplicateKey { line, .. }
            | VmError::MissingKey { line, .. }
            | VmError::BadValue { line, .. }
            | VmError::UnknownValue { line, .. }
            | VmError::TooManyVcpus { line, .. }
            | VmError::UnknownDevice { line, .. }
            | VmError::DuplicateName { line, .. }
            | VmError::AfterUnknown { line, .. }
            | VmError::AfterSelf { line }
            | VmError::AfterCycle { line, .. }
            | VmError::AfterRefused { line, .. }
            | VmError::Requires { line, .. }
            | VmError::RequiresAny { line, .. }
            | VmError::DuplicateMac { line, .. }
            | VmError::TooManyVms { line, .. } => line,
        }
    }
}

impl fmt::Display for VmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line())?;
        match self {
            VmError::Syntax { reason, .. } => write!(f, "syntax error: {reason}"),
            VmError::UnknownKey { key, .. } => {
                write!(f, "unknown key \"{key}\" (known keys: ")?;
                for (i, known) in Key::ALL.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}{}", known.as_str())?;
                }
                f.write_str(")")
            }
            VmError::DuplicateKey { key, .. } => {
                write!(f, "key \"{key}\" appears twice in this [[vm]] section")
            }
            VmError::MissingKey { key, .. } => {
                write!(f, "[[vm]] section lacks the required key \"{key}\"")
            }
            VmError::BadValue { key, reason, .. } => write!(f, "bad \"{key}\": {reason}"),
            VmError::UnknownValue {
                key,
                value,
                expected,
                ..
            } => {
                write!(f, "bad \"{key}\": unknown value {value:?}; expected ")?;
                write_alternatives(f, expected)
            }
            VmError::TooManyVcpus {
                requested, max, ..
            } => write!(f, "{requested} vCPUs requested; at most {max} are supported"),
            VmError::UnknownDevice { kind, .. } => {
                write!(f, "unknown device kind {kind:?} (known kinds: ")?;
                for (i, known) in Device::ALL.iter().enumerate() {
                    let separator = if i == 0 { "" } else { ", " };
                    write!(f, "{separator}\"{known}\"")?;
                }
                f.write_str(")")
            }
            VmError::DuplicateName {
                name, first_line, ..
            } => write!(
                f,
                "name \"{name}\" is already used by the VM whose section starts on line {first_line}"
            ),
            VmError::AfterUnknown { name, .. } => {
                write!(f, "after = \"{name}\": no VM in this manifest has that name")
            }
            VmError::AfterSelf { .. } => f.write_str("a VM cannot start after itself"),
            VmError::AfterCycle { cycle, .. } => {
                f.write_str("the \"after\" keys form a cycle, so none of its VMs would start: ")?;
                for name in cycle {
                    write!(f, "\"{name}\" -> ")?;
                }
                match cycle.first() {
                    Some(first) => write!(f, "\"{first}\""),
                    None => Ok(()),
                }
            }
            VmError::AfterRefused { name, .. } => write!(
                f,
                "after = \"{name}\": that VM is refused, so this one would never start"
            ),
            VmError::Requires { key, needs, .. } => write!(
                f,
                "\"{key}\" needs a \"{needs}\" key in the same [[vm]] section"
            ),
            VmError::RequiresAny { key, needs, .. } => {
                write!(f, "\"{key}\" needs a ")?;
                write_alternatives(f, needs)?;
                f.write_str(" key in the same [[vm]] section")
            }
            VmError::DuplicateMac {
                mac,
                derived,
                network,
                first,
                first_line,
                ..
            } => {
                write!(f, "MAC {}", Mac(mac))?;
                if *derived {
                    f.write_str(" (derived from the VM's name; give it a \"mac\")")?;
                }
                write!(
                    f,
                    " is already on network \"{network}\": vm \"{first}\", whose section starts on line {first_line}, has it"
                )
            }
            VmError::TooManyVms { max, .. } => {
                write!(f, "too many VMs; a manifest may start at most {max}")
            }
        }
    }
}

impl core::error::Error for VmError {}

/// Writes `"a"`, `"a" or "b"`, `"a", "b" or "c"`, ...
fn write_alternatives(f: &mut fmt::Formatter<'_>, words: &[&str]) -> fmt::Result {
    for (i, word) in words.iter().enumerate() {
        let separator = match i {
            0 => "",
            _ if i + 1 == words.len() => " or ",
            _ => ", ",
        };
        write!(f, "{separator}\"{word}\"")?;
    }
    Ok(())
}

/// Why the manifest as a whole is refused: problems no VM can be blamed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// The text is longer than [`MAX_MANIFEST_LEN`].
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_MANIFEST_LEN`].
        max: usize,
    },
    /// Something other than comments and blank lines before the first
    /// `[[vm]]` header.
    OutsideVm {
        /// The first such line.
        line: u32,
    },
    /// No `[[vm]]` section at all.
    NoVms,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::TooLarge { len, max } => {
                write!(f, "manifest: {len} bytes, more than the {max} allowed")
            }
            ManifestError::OutsideVm { line } => write!(
                f,
                "manifest line {line}: only comments and blank lines may come before the first [[vm]] section"
            ),
            ManifestError::NoVms => f.write_str("manifest: no [[vm]] sections"),
        }
    }
}

impl core::error::Error for ManifestError {}

impl Manifest {
    /// Parses a manifest.
    ///
    /// A problem inside a `[[vm]]` section refuses only that VM: it becomes
    /// the entry's `Err` (the first problem in the section), and every other
    /// section is parsed as if it were not there. Sections end at the next
    /// table header, well formed or not.
    ///
    /// # Errors
    ///
    /// Only problems that belong to no VM: [`ManifestError::TooLarge`],
    /// [`ManifestError::OutsideVm`] and [`ManifestError::NoVms`].
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        if text.len() > MAX_MANIFEST_LEN {
            return Err(ManifestError::TooLarge {
                len: text.len(),
                max: MAX_MANIFEST_LEN,
            });
        }
        // Editors on some systems start UTF-8 files with a byte-order mark;
        // it is not part of the first line's text.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);

        let mut sections: Vec<Section> = Vec::new();
        // The length limit keeps the line count far below u32::MAX.
        for (line_number, line) in (1u32..).zip(text.split('\n')) {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let lexed = lex::lex_line(line);
            match (lexed, sections.last_mut()) {
                (Ok(Line::Blank), _) => {}
                (Ok(Line::Header(header)), _) => {
                    let mut section = Section::new(sections.len() + 1, line_number);
                    if let Err(reason) = header {
                        section.fail(VmError::Syntax {
                            line: line_number,
                            reason,
                        });
                    }
                    sections.push(section);
                }
                (_, None) => return Err(ManifestError::OutsideVm { line: line_number }),
                (Ok(Line::KeyValue { key, value }), Some(section)) => {
                    section.key_value(line_number, key, value);
                }
                (Err(reason), Some(section)) => section.fail(VmError::Syntax {
                    line: line_number,
                    reason,
                }),
            }
        }
        if sections.is_empty() {
            return Err(ManifestError::NoVms);
        }

        let mut vms: Vec<VmEntry> = Vec::with_capacity(sections.len());
        let mut name_lines: Vec<Option<u32>> = Vec::with_capacity(sections.len());
        let mut after_lines: Vec<Option<u32>> = Vec::with_capacity(sections.len());
        // The network ports so far: (network, MAC) -> the VM's index.
        let mut ports: BTreeMap<(String, [u8; 6]), usize> = BTreeMap::new();
        for (index, section) in sections.into_iter().enumerate() {
            let name_line = section.name.as_ref().map(|(_, line)| *line);
            after_lines.push(section.after.as_ref().map(|(_, line)| *line));
            // A derived MAC is blamed on the `network` key that asked for it.
            let port_line = section
                .mac
                .as_ref()
                .map(|(_, line)| *line)
                .or(section.network.as_ref().map(|(_, line)| *line));
            let mut entry = section.finish();
            if let (Ok(spec), Some(line)) = (&entry.spec, name_line) {
                let first = vms
                    .iter()
                    .zip(&name_lines)
                    .find(|(earlier, named)| named.is_some() && earlier.name == spec.name);
                if let Some((earlier, _)) = first {
                    entry.spec = Err(VmError::DuplicateName {
                        line,
                        name: spec.name.clone(),
                        first_line: earlier.line,
                    });
                }
            }
            if index >= MAX_VMS && entry.spec.is_ok() {
                entry.spec = Err(VmError::TooManyVms {
                    line: entry.line,
                    max: MAX_VMS,
                });
            }
            if let Ok(VmSpec { net: Some(net), .. }) = &entry.spec {
                let port = (net.network.clone(), net.mac);
                match ports.get(&port) {
                    Some(&first) => {
                        entry.spec = Err(VmError::DuplicateMac {
                            line: port_line.unwrap_or(entry.line),
                            mac: net.mac,
                            derived: net.mac_derived,
                            network: net.network.clone(),
                            first: vms[first].name.clone(),
                            first_line: vms[first].line,
                        });
                    }
                    None => {
                        ports.insert(port, index);
                    }
                }
            }
            vms.push(entry);
            name_lines.push(name_line);
        }
        check_after(&mut vms, &name_lines, &after_lines);
        Ok(Manifest { vms })
    }

    /// The VMs that parsed, in file order.
    pub fn good_vms(&self) -> impl Iterator<Item = &VmSpec> {
        self.vms.iter().filter_map(|vm| vm.spec.as_ref().ok())
    }
}

impl VmEntry {
    /// The VM as messages name it: `vm "alpha"`, or `vm #2` for a section
    /// without a valid name.
    pub fn label(&self) -> impl fmt::Display + '_ {
        Label(&self.name)
    }

    /// The entry's error with the VM named, e.g.
    /// `vm "beta": line 7: unknown key "memroy" ...`; `None` if it parsed.
    pub fn error_message(&self) -> Option<impl fmt::Display + '_> {
        self.spec.as_ref().err().map(|error| EntryError {
            label: Label(&self.name),
            error,
        })
    }
}

/// See [`VmEntry::label`].
struct Label<'a>(&'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if check_vm_name(self.0).is_ok() {
            write!(f, "vm \"{}\"", self.0)
        } else {
            // The fallback `vm #N`.
            f.write_str(self.0)
        }
    }
}

/// See [`VmEntry::error_message`].
struct EntryError<'a> {
    label: Label<'a>,
    error: &'a VmError,
}

impl fmt::Display for EntryError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.label, self.error)
    }
}

/// The keys of a `[[vm]]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Name,
    Vcpus,
    Memory,
    Kernel,
    Initrd,
    Bootargs,
    Devices,
    After,
    Disk,
    DiskAccess,
    Network,
    Mac,
    Passthrough,
    PassthroughRequired,
    Backend,
}

impl Key {
    const ALL: [Key; 15] = [
        Key::Name,
        Key::Vcpus,
        Key::Memory,
        Key::Kernel,
        Key::Initrd,
        Key::Bootargs,
        Key::Devices,
        Key::After,
        Key::Disk,
        Key::DiskAccess,
        Key::Network,
        Key::Mac,
        Key::Passthrough,
        Key::PassthroughRequired,
        Key::Backend,
    ];

    /// The keys of which `backend` needs one: the virtio devices.
    const BACKEND_NEEDS: [&'static str; 2] = [Key::Disk.as_str(), Key::Network.as_str()];

    const fn as_str(self) -> &'static str {
        match self {
            Key::Name => "name",
            Key::Vcpus => "vcpus",
            Key::Memory => "memory",
            Key::Kernel => "kernel",
            Key::Initrd => "initrd",
            Key::Bootargs => "bootargs",
            Key::Devices => "devices",
            Key::After => "after",
            Key::Disk => "disk",
            Key::DiskAccess => "disk_access",
            Key::Network => "network",
            Key::Mac => "mac",
            Key::Passthrough => "passthrough",
            Key::PassthroughRequired => "passthrough_required",
            Key::Backend => "backend",
        }
    }

    fn from_str(key: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.as_str() == key)
    }

    /// This key's bit in [`Section::seen`].
    fn bit(self) -> u16 {
        1 << self as u8
    }
}

/// A `[[vm]]` section while its lines are read.
struct Section {
    /// 1-based position among the sections, for the fallback name.
    index: usize,
    /// The `[[vm]]` line.
    line: u32,
    /// The first problem; later ones are not recorded.
    error: Option<VmError>,
    /// The keys met so far, one [`Key::bit`] each, valid or not.
    seen: u16,
    /// The valid name and its line. Kept even when the section has an error,
    /// so the error message can name the VM.
    name: Option<(String, u32)>,
    vcpus: Option<u32>,
    memory: Option<u64>,
    kernel: Option<String>,
    initrd: Option<String>,
    bootargs: Option<String>,
    devices: Option<Vec<Device>>,
    /// The `after` name and its line.
    after: Option<(String, u32)>,
    /// The `disk` region's offset and size.
    disk: Option<(u64, u64)>,
    /// Whether `disk_access` says read-only, and its line.
    disk_access: Option<(bool, u32)>,
    /// The `network` name and its line.
    network: Option<(String, u32)>,
    /// The `mac` and its line.
    mac: Option<([u8; 6], u32)>,
    passthrough: Option<Vec<PciFunction>>,
    /// The `passthrough_required` value and its line.
    passthrough_required: Option<(bool, u32)>,
    /// The `backend` and its line.
    backend: Option<(DeviceBackend, u32)>,
}

impl Section {
    fn new(index: usize, line: u32) -> Section {
        Section {
            index,
            line,
            error: None,
            seen: 0,
            name: None,
            vcpus: None,
            memory: None,
            kernel: None,
            initrd: None,
            bootargs: None,
            devices: None,
            after: None,
            disk: None,
            disk_access: None,
            network: None,
            mac: None,
            passthrough: None,
            passthrough_required: None,
            backend: None,
        }
    }

    fn fail(&mut self, error: VmError) {
        self.error.get_or_insert(error);
    }

    fn key_value(&mut self, line: u32, key: &str, value: Value) {
        let Some(known) = Key::from_str(key) else {
            self.fail(VmError::UnknownKey {
                line,
                key: key.to_string(),
            });
            return;
        };
        if self.seen & known.bit() != 0 {
            self.fail(VmError::DuplicateKey {
                line,
                key: known.as_str(),
            });
            return;
        }
        self.seen |= known.bit();
        if let Err(error) = self.set(line, known, value) {
            self.fail(error);
        }
    }

    /// Validates one value and stores it.
    fn set(&mut self, line: u32, key: Key, value: Value) -> Result<(), VmError> {
        let bad = |reason| VmError::BadValue {
            line,
            key: key.as_str(),
            reason,
        };
        match key {
            Key::Name => {
                let name = expect_string(value).map_err(bad)?;
                check_vm_name(&name).map_err(bad)?;
                self.name = Some((name, line));
            }
            Key::Vcpus => {
                let Value::Int(count) = value else {
                    return Err(bad("expected an integer"));
                };
                if count == 0 {
                    return Err(bad("a VM needs at least one vCPU"));
                }
                self.vcpus = Some(
                    u32::try_from(count)
                        .ok()
                        .filter(|&c| c <= MAX_VCPUS)
                        .ok_or(VmError::TooManyVcpus {
                            line,
                            requested: count,
                            max: MAX_VCPUS,
                        })?,
                );
            }
            Key::Memory => {
                let bytes = match value {
                    Value::Int(bytes) => bytes,
                    Value::Str(size) => parse_size(&size).map_err(bad)?,
                    Value::StrArray(_) | Value::Bool(_) => {
                        return Err(bad("expected a size such as \"64M\" or a byte count"))
                    }
                };
                if bytes < MEMORY_GRANULE {
                    return Err(bad("a VM needs at least 2 MiB of memory"));
                }
                if bytes % MEMORY_GRANULE != 0 {
                    return Err(bad("memory must be a multiple of 2 MiB"));
                }
                self.memory = Some(bytes);
            }
            Key::Kernel | Key::Initrd => {
                let image = expect_string(value).map_err(bad)?;
                check_image_name(&image).map_err(bad)?;
                if key == Key::Kernel {
                    self.kernel = Some(image);
                } else {
                    self.initrd = Some(image);
                }
            }
            Key::Bootargs => {
                let args = expect_string(value).map_err(bad)?;
                if args.len() > MAX_BOOTARGS_LEN {
                    return Err(bad("longer than Linux's 2047-byte command line"));
                }
                self.bootargs = Some(args);
            }
            Key::Devices => {
                let Value::StrArray(kinds) = value else {
                    return Err(bad("expected an array of strings such as [\"pl011\"]"));
                };
                let mut devices = Vec::with_capacity(kinds.len());
                for kind in kinds {
                    let device =
                        Device::from_kind(&kind).ok_or(VmError::UnknownDevice { line, kind })?;
                    if devices.contains(&device) {
                        return Err(bad("a device kind is listed twice"));
                    }
                    devices.push(device);
                }
                self.devices = Some(devices);
            }
            Key::After => {
                let name = expect_string(value).map_err(bad)?;
                check_vm_name(&name).map_err(bad)?;
                self.after = Some((name, line));
            }
            Key::Disk => {
                let region = expect_string(value).map_err(bad)?;
                self.disk = Some(parse_disk_region(&region).map_err(bad)?);
            }
            Key::DiskAccess => {
                let access = expect_string(value).map_err(bad)?;
                self.disk_access = Some((parse_disk_access(&access).map_err(bad)?, line));
            }
            Key::Network => {
                let network = expect_string(value).map_err(bad)?;
                check_network_name(&network).map_err(bad)?;
                self.network = Some((network, line));
            }
            Key::Mac => {
                let mac = expect_string(value).map_err(bad)?;
                self.mac = Some((parse_mac(&mac).map_err(bad)?, line));
            }
            Key::Passthrough => {
                let Value::StrArray(entries) = value else {
                    return Err(bad(
                        "expected an array of PCI functions such as [\"00:03.0\"]",
                    ));
                };
                if entries.len() > MAX_PASSTHROUGH {
                    return Err(bad("at most 8 PCI functions per VM"));
                }
                let mut functions = Vec::with_capacity(entries.len());
                for entry in &entries {
                    let function = parse_pci_function(entry).map_err(bad)?;
                    if functions.contains(&function) {
                        return Err(bad("a PCI function is listed twice"));
                    }
                    functions.push(function);
                }
                self.passthrough = Some(functions);
            }
            Key::PassthroughRequired => {
                let Value::Bool(required) = value else {
                    return Err(bad("expected true or false"));
                };
                self.passthrough_required = Some((required, line));
            }
            Key::Backend => {
                let name = expect_string(value).map_err(bad)?;
                let backend =
                    DeviceBackend::from_name(&name).ok_or_else(|| VmError::UnknownValue {
                        line,
                        key: key.as_str(),
                        value: name,
                        expected: &DeviceBackend::NAMES,
                    })?;
                self.backend = Some((backend, line));
            }
        }
        Ok(())
    }

    fn finish(self) -> VmEntry {
        let name = match &self.name {
            Some((name, _)) => name.clone(),
            None => format!("vm #{}", self.index),
        };
        let line = self.line;
        let spec = match self.error {
            Some(error) => Err(error),
            None => self.spec(),
        };
        VmEntry { name, line, spec }
    }

    /// The spec of an error-free section, if no required key is missing
    /// and no key lacks the one it needs.
    fn spec(self) -> Result<VmSpec, VmError> {
        let missing = |key: Key| VmError::MissingKey {
            line: self.line,
            key: key.as_str(),
        };
        let name = self.name.ok_or(missing(Key::Name))?.0;
        let vcpus = self.vcpus.ok_or(missing(Key::Vcpus))?;
        let memory = self.memory.ok_or(missing(Key::Memory))?;
        let kernel = self.kernel.ok_or(missing(Key::Kernel))?;
        let requires = |line: u32, key: Key, needs: Key| VmError::Requires {
            line,
            key: key.as_str(),
            needs: needs.as_str(),
        };
        let disk = match (self.disk, self.disk_access) {
            (Some((offset, size)), access) => Some(DiskSpec {
                offset,
                size,
                read_only: access.is_some_and(|(read_only, _)| read_only),
            }),
            (None, Some((_, line))) => return Err(requires(line, Key::DiskAccess, Key::Disk)),
            (None, None) => None,
        };
        let net = match (self.network, self.mac) {
            (Some((network, _)), mac) => Some(NetSpec {
                network,
                mac: mac.map_or_else(|| derived_mac(&name), |(mac, _)| mac),
                mac_derived: mac.is_none(),
            }),
            (None, Some((_, line))) => return Err(requires(line, Key::Mac, Key::Network)),
            (None, None) => None,
        };
        let passthrough_required = match (&self.passthrough, self.passthrough_required) {
            (None, Some((_, line))) => {
                return Err(requires(line, Key::PassthroughRequired, Key::Passthrough))
            }
            (_, required) => required.is_none_or(|(required, _)| required),
        };
        let backend = match self.backend {
            Some((_, line)) if disk.is_none() && net.is_none() => {
                return Err(VmError::RequiresAny {
                    line,
                    key: Key::Backend.as_str(),
                    needs: &Key::BACKEND_NEEDS,
                })
            }
            backend => backend.map(|(backend, _)| backend).unwrap_or_default(),
        };
        Ok(VmSpec {
            name,
            vcpus,
            memory,
            kernel,
            initrd: self.initrd,
            bootargs: self.bootargs.unwrap_or_default(),
            devices: self.devices.unwrap_or_else(|| vec![Device::Pl011]),
            after: self.after.map(|(name, _)| name),
            disk,
            net,
            passthrough: self.passthrough.unwrap_or_default(),
            passthrough_required,
            backend,
        })
    }
}

/// Where [`check_after`]'s walk has been.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Not reached yet.
    New,
    /// On the chain being followed.
    OnPath,
    /// Settled: the VM's spec is final.
    Done,
}

/// Refuses every VM whose `after` cannot be met: it names no VM
/// ([`VmError::AfterUnknown`]), the VM itself ([`VmError::AfterSelf`]), a VM
/// on a cycle of `after` keys ([`VmError::AfterCycle`], for every VM on the
/// cycle) or a refused VM ([`VmError::AfterRefused`], which in turn refuses
/// the VMs after this one). `name_lines[i]` is set when section `i` had a
/// valid name, `after_lines[i]` is the line of its `after` key. Linear in
/// the number of sections: each is settled once.
fn check_after(vms: &mut [VmEntry], name_lines: &[Option<u32>], after_lines: &[Option<u32>]) {
    // A name belongs to the first section that gave it; later ones with the
    // same name are refused as duplicates.
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (vm, named)) in vms.iter().zip(name_lines).enumerate() {
        if named.is_some() {
            owners.entry(vm.name.clone()).or_insert(index);
        }
    }

    // The VM each good VM waits for.
    let mut waits_for: Vec<Option<usize>> = vec![None; vms.len()];
    for (index, vm) in vms.iter_mut().enumerate() {
        let Ok(VmSpec {
            after: Some(name), ..
        }) = &vm.spec
        else {
            continue;
        };
        let line = after_lines.get(index).copied().flatten().unwrap_or(vm.line);
        match owners.get(name) {
            None => {
                vm.spec = Err(VmError::AfterUnknown {
                    line,
                    name: name.clone(),
                })
            }
            Some(&target) if target == index => vm.spec = Err(VmError::AfterSelf { line }),
            Some(&target) => waits_for[index] = Some(target),
        }
    }

    let after_line = |vms: &[VmEntry], index: usize| {
        after_lines
            .get(index)
            .copied()
            .flatten()
            .unwrap_or(vms[index].line)
    };
    let mut marks = vec![Mark::New; vms.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..vms.len() {
        // Follow the chain from `start` to a settled VM or back onto itself.
        path.clear();
        let mut current = start;
        loop {
            match marks[current] {
                Mark::Done => break,
                Mark::OnPath => {
                    let first = path.iter().position(|&i| i == current).unwrap_or(0);
                    let cycle = path.split_off(first);
                    let names: Vec<String> = cycle.iter().map(|&i| vms[i].name.clone()).collect();
                    for (k, &index) in cycle.iter().enumerate() {
                        // Each VM's message starts the cycle with itself.
                        let mut rotated = names[k..].to_vec();
                        rotated.extend_from_slice(&names[..k]);
                        vms[index].spec = Err(VmError::AfterCycle {
                            line: after_line(vms, index),
                            cycle: rotated,
                        });
                        marks[index] = Mark::Done;
                    }
                    break;
                }
                Mark::New => match waits_for[current] {
                    Some(next) if vms[current].spec.is_ok() => {
                        marks[current] = Mark::OnPath;
                        path.push(current);
                        current = next;
                    }
                    _ => {
                        marks[current] = Mark::Done;
                        break;
                    }
                },
            }
        }
        // Settle the chain backwards: each VM waits for the one after it on
        // the path, which is settled by then.
        while let Some(index) = path.pop() {
            if let Some(target) = waits_for[index] {
                if vms[target].spec.is_err() {
                    vms[index].spec = Err(VmError::AfterRefused {
                        line: after_line(vms, index),
                        name: vms[target].name.clone(),
                    });
                }
            }
            marks[index] = Mark::Done;
        }
    }
}

fn expect_string(value: Value) -> Result<String, &'static str> {
    match value {
        Value::Str(s) => Ok(s),
        Value::Int(_) => Err("expected a string, found an integer"),
        Value::StrArray(_) => Err("expected a string, found an array"),
        Value::Bool(_) => Err("expected a string, found a boolean"),
    }
}

/// A VM name: 1 to [`MAX_VM_NAME_LEN`] characters of `[A-Za-z0-9_-]`, so it
/// is safe in console lines and device-tree node names.
fn check_vm_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a VM name must not be empty");
    }
    if name.len() > MAX_VM_NAME_LEN {
        return Err("a VM name has at most 32 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("a VM name may hold only letters, digits, `_` and `-`");
    }
    Ok(())
}

/// An image name must be storable as a bundle entry name and must not be the
/// manifest's own entry.
fn check_image_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("an image name must not be empty");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("an image name has at most 48 bytes (the bundle's name field)");
    }
    if name.chars().any(char::is_control) {
        return Err("an image name must not contain control characters");
    }
    if name == MANIFEST_ENTRY {
        return Err("\"manifest\" is the bundle entry of the manifest itself");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHA: &str = r#"
# Two VMs.
[[vm]]
name = "alpha"            # trailing comment
vcpus = 2
memory = "64M"
kernel = "test-guest.bin"
initrd = "rootfs.cpio"
bootargs = "test=psci console=\"x\""
devices = ["pl011"]

[[vm]]
name = "beta"
vcpus = 0x1
memory = 0x20_0000
kernel = "test-guest.bin"
devices = []
after = "alpha"
"#;

    fn only(text: &str) -> VmEntry {
        let manifest = Manifest::parse(text).unwrap();
        assert_eq!(manifest.vms.len(), 1, "{manifest:?}");
        manifest.vms.into_iter().next().unwrap()
    }

    fn error_of(text: &str) -> VmError {
        only(text).spec.unwrap_err()
    }

    /// A complete section with `extra` lines after the required keys.
    fn vm_with(extra: &str) -> String {
        format!("[[vm]]\nname = \"v\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n{extra}\n")
    }

    #[test]
    fn good_manifest_parses_in_file_order_with_defaults() {
        let manifest = Manifest::parse(ALPHA).unwrap();
        assert_eq!(
            manifest.vms,
            vec![
                VmEntry {
                    name: "alpha".into(),
                    line: 3,
                    spec: Ok(VmSpec {
                        name: "alpha".into(),
                        vcpus: 2,
                        memory: 64 << 20,
                        kernel: "test-guest.bin".into(),
                        initrd: Some("rootfs.cpio".into()),
                        bootargs: "test=psci console=\"x\"".into(),
                        devices: vec![Device::Pl011],
                        after: None,
                        disk: None,
                        net: None,
                        passthrough: vec![],
                        passthrough_required: true,
                        backend: DeviceBackend::Task,
                    }),
                },
                VmEntry {
                    name: "beta".into(),
                    line: 12,
                    spec: Ok(VmSpec {
                        name: "beta".into(),
                        vcpus: 1,
                        memory: 2 << 20,
                        kernel: "test-guest.bin".into(),
                        initrd: None,
                        bootargs: String::new(),
                        devices: vec![],
                        after: Some("alpha".into()),
                        disk: None,
                        net: None,
                        passthrough: vec![],
                        passthrough_required: true,
                        backend: DeviceBackend::Task,
                    }),
                },
            ]
        );
        assert_eq!(manifest.good_vms().count(), 2);
    }

    #[test]
    fn defaults_when_optional_keys_are_absent() {
        let spec = only(&vm_with("")).spec.unwrap();
        assert_eq!(spec.initrd, None);
        assert_eq!(spec.bootargs, "");
        assert_eq!(spec.devices, vec![Device::Pl011]);
        assert_eq!(spec.after, None);
        assert_eq!(spec.disk, None);
        assert_eq!(spec.net, None);
        assert_eq!(spec.passthrough, vec![]);
        assert!(spec.passthrough_required);
        assert_eq!(spec.backend, DeviceBackend::Task);
    }

    #[test]
    fn memory_sizes() {
        for (value, bytes) in [
            ("\"2M\"", 2u64 << 20),
            ("\"2048K\"", 2 << 20),
            ("\"1G\"", 1 << 30),
            ("\"0x400M\"", 1 << 30),
            ("\"2_097_152\"", 2 << 20),
            ("4194304", 4 << 20),
            ("\"16G\"", 16 << 30),
        ] {
            let text = format!("[[vm]]\nname=\"v\"\nvcpus=1\nkernel=\"k\"\nmemory={value}\n");
            assert_eq!(only(&text).spec.unwrap().memory, bytes, "{value}");
        }
    }

    #[test]
    fn a_disk_region_with_its_access() {
        let spec = only(&vm_with("disk = \"64M+32M\"")).spec.unwrap();
        assert_eq!(
            spec.disk,
            Some(DiskSpec {
                offset: 64 << 20,
                size: 32 << 20,
                read_only: false
            })
        );
        for (access, read_only) in [("read-write", false), ("read-only", true)] {
            // The order of the keys does not matter.
            let text = vm_with(&format!("disk_access = \"{access}\"\ndisk = \"0+512\""));
            let disk = only(&text).spec.unwrap().disk.unwrap();
            assert_eq!(
                (disk.offset, disk.size, disk.read_only),
                (0, 512, read_only)
            );
        }
    }

    #[test]
    fn disk_access_without_a_disk_is_refused_with_its_line() {
        let error = error_of(&vm_with("bootargs = \"x\"\ndisk_access = \"read-only\""));
        assert_eq!(
            error,
            VmError::Requires {
                line: 7,
                key: "disk_access",
                needs: "disk"
            }
        );
        assert_eq!(
            error.to_string(),
            "line 7: \"disk_access\" needs a \"disk\" key in the same [[vm]] section"
        );
    }

    #[test]
    fn a_disk_value_error_names_the_problem() {
        let error = error_of(&vm_with("disk = \"1M+1000\""));
        assert_eq!(
            error.to_string(),
            "line 6: bad \"disk\": offset and size must be multiples of the 512-byte sector"
        );
        let twice = error_of(&vm_with("disk = \"0+1M\"\ndisk = \"1M+1M\""));
        assert_eq!(
            twice,
            VmError::DuplicateKey {
                line: 7,
                key: "disk"
            }
        );
    }

    #[test]
    fn a_network_port_with_a_given_or_derived_mac() {
        let text = vm_with("network = \"lan0\"\nmac = \"52:54:00:12:34:01\"");
        assert_eq!(
            only(&text).spec.unwrap().net,
            Some(NetSpec {
                network: "lan0".into(),
                mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x01],
                mac_derived: false
            })
        );
        let net = only(&vm_with("network = \"lan0\""))
            .spec
            .unwrap()
            .net
            .unwrap();
        assert_eq!(net.mac, derived_mac("v"));
        assert!(net.mac_derived);
    }

    #[test]
    fn passthrough_functions_and_whether_they_are_required() {
        let spec = only(&vm_with("passthrough = [\"00:03.0\", \"0000:00:1f.7\"]"))
            .spec
            .unwrap();
        assert_eq!(
            spec.passthrough,
            vec![
                PciFunction::new(0, 3, 0).unwrap(),
                PciFunction::new(0, 0x1f, 7).unwrap()
            ]
        );
        assert!(spec.passthrough_required, "required by default");
        for (value, required) in [("true", true), ("false", false)] {
            // The order of the keys does not matter.
            let text = vm_with(&format!(
                "passthrough_required = {value}\npassthrough = [\"00:04.0\"]"
            ));
            assert_eq!(only(&text).spec.unwrap().passthrough_required, required);
        }
        let none = only(&vm_with("passthrough = []")).spec.unwrap();
        assert_eq!(none.passthrough, vec![]);
    }

    #[test]
    fn passthrough_value_errors_name_the_problem() {
        let error = error_of(&vm_with("passthrough = [\"00:03.0\", \"00:03.0\"]"));
        assert_eq!(
            error.to_string(),
            "line 6: bad \"passthrough\": a PCI function is listed twice"
        );
        let error = error_of(&vm_with("passthrough = [\"00:03.8\"]"));
        assert_eq!(
            error.to_string(),
            "line 6: bad \"passthrough\": a PCI function number is at most 7"
        );
        let nine: Vec<String> = (1..=9).map(|d| format!("\"00:{d:02x}.0\"")).collect();
        let error = error_of(&vm_with(&format!("passthrough = [{}]", nine.join(", "))));
        assert_eq!(
            error.to_string(),
            "line 6: bad \"passthrough\": at most 8 PCI functions per VM"
        );
        let eight = nine[..MAX_PASSTHROUGH].join(", ");
        let spec = only(&vm_with(&format!("passthrough = [{eight}]")))
            .spec
            .unwrap();
        assert_eq!(spec.passthrough.len(), MAX_PASSTHROUGH);
    }

    #[test]
    fn passthrough_required_without_passthrough_is_refused() {
        assert_eq!(
            error_of(&vm_with("passthrough_required = false")),
            VmError::Requires {
                line: 6,
                key: "passthrough_required",
                needs: "passthrough"
            }
        );
    }

    #[test]
    fn two_vms_may_name_the_same_function() {
        // One after the other, or in turn refused at attach time: which VM
        // holds a function when is the hypervisor's to check.
        let text = format!(
            "{}{}",
            vm_named("a", "passthrough = [\"00:03.0\"]"),
            vm_named("b", "passthrough = [\"00:03.0\"]\nafter = \"a\"")
        );
        let manifest = Manifest::parse(&text).unwrap();
        assert_eq!(manifest.good_vms().count(), 2);
    }

    #[test]
    fn a_mac_without_a_network_is_refused() {
        assert_eq!(
            error_of(&vm_with("mac = \"52:54:00:12:34:01\"")),
            VmError::Requires {
                line: 6,
                key: "mac",
                needs: "network"
            }
        );
    }

    #[test]
    fn the_backend_is_a_task_by_default() {
        for device in ["disk = \"0+1M\"", "network = \"lan0\""] {
            let spec = only(&vm_with(device)).spec.unwrap();
            assert_eq!(spec.backend, DeviceBackend::Task, "{device}");
        }
        assert_eq!(DeviceBackend::default(), DeviceBackend::Task);
    }

    #[test]
    fn both_backends_with_a_disk_or_a_network() {
        for (value, backend) in [
            ("task", DeviceBackend::Task),
            ("hypervisor", DeviceBackend::Hypervisor),
        ] {
            // The order of the keys does not matter.
            for devices in [
                "disk = \"0+1M\"",
                "network = \"lan0\"",
                "network = \"lan0\"\ndisk = \"0+1M\"",
            ] {
                let text = vm_with(&format!("backend = \"{value}\"\n{devices}"));
                assert_eq!(only(&text).spec.unwrap().backend, backend, "{text}");
            }
            assert_eq!(backend.to_string(), value);
            assert_eq!(DeviceBackend::from_name(value), Some(backend));
        }
    }

    #[test]
    fn an_unknown_backend_is_refused_with_its_key_value_and_line() {
        let error = error_of(&vm_with("disk = \"0+1M\"\nbackend = \"el0\""));
        assert_eq!(
            error,
            VmError::UnknownValue {
                line: 7,
                key: "backend",
                value: "el0".into(),
                expected: &["task", "hypervisor"],
            }
        );
        assert_eq!(
            error.to_string(),
            "line 7: bad \"backend\": unknown value \"el0\"; expected \"task\" or \"hypervisor\""
        );
        // The spelling is exact.
        assert!(matches!(
            error_of(&vm_with("disk = \"0+1M\"\nbackend = \"Task\"")),
            VmError::UnknownValue { line: 7, .. }
        ));
        assert_eq!(
            error_of(&vm_with("disk = \"0+1M\"\nbackend = true")),
            VmError::BadValue {
                line: 7,
                key: "backend",
                reason: "expected a string, found a boolean",
            }
        );
    }

    #[test]
    fn a_backend_without_a_disk_or_a_network_is_refused() {
        let error = error_of(&vm_with("bootargs = \"x\"\nbackend = \"hypervisor\""));
        assert_eq!(
            error,
            VmError::RequiresAny {
                line: 7,
                key: "backend",
                needs: &["disk", "network"],
            }
        );
        assert_eq!(
            error.to_string(),
            "line 7: \"backend\" needs a \"disk\" or \"network\" key in the same [[vm]] section"
        );
        // Passthrough functions are not virtio devices.
        assert!(matches!(
            error_of(&vm_with("passthrough = [\"00:03.0\"]\nbackend = \"task\"")),
            VmError::RequiresAny { line: 7, .. }
        ));
    }

    /// A VM section named `name` with the given extra lines.
    fn vm_named(name: &str, extra: &str) -> String {
        format!("[[vm]]\nname = \"{name}\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n{extra}\n")
    }

    #[test]
    fn the_same_mac_on_one_network_refuses_the_later_vm() {
        let mac = "mac = \"52:54:00:12:34:01\"";
        let text = [
            vm_named("a", &format!("network = \"lan0\"\n{mac}")),
            // The same MAC on another network is fine.
            vm_named("b", &format!("network = \"lan1\"\n{mac}")),
            vm_named("c", &format!("{mac}\nnetwork = \"lan0\"")),
            // Refused for something else, it claims nothing.
            vm_named("d", &format!("network = \"lan1\"\n{mac}\nvcpus = 2")),
            vm_named("e", "network = \"lan2\""),
        ]
        .concat();
        let manifest = Manifest::parse(&text).unwrap();
        let good: Vec<_> = manifest.good_vms().map(|vm| vm.name.as_str()).collect();
        assert_eq!(good, ["a", "b", "e"]);
        let error = manifest.vms[2].spec.clone().unwrap_err();
        assert_eq!(
            error,
            VmError::DuplicateMac {
                line: 20,
                mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x01],
                derived: false,
                network: "lan0".into(),
                first: "a".into(),
                first_line: 1
            }
        );
        assert_eq!(
            manifest.vms[2].error_message().unwrap().to_string(),
            "vm \"c\": line 20: MAC 52:54:00:12:34:01 is already on network \"lan0\": vm \"a\", whose section starts on line 1, has it"
        );
        assert!(matches!(
            manifest.vms[3].spec,
            Err(VmError::DuplicateKey { key: "vcpus", .. })
        ));
    }

    #[test]
    fn a_derived_mac_clash_is_blamed_on_the_network_key() {
        // A given MAC equal to another VM's derived one.
        let derived = derived_mac("first");
        let text = [
            vm_named("first", "network = \"lan0\""),
            vm_named(
                "second",
                &format!("network = \"lan0\"\nmac = \"{}\"", Mac(&derived)),
            ),
            vm_named("third", "network = \"lan0\""),
        ]
        .concat();
        let manifest = Manifest::parse(&text).unwrap();
        assert!(manifest.vms[0].spec.is_ok());
        assert!(matches!(
            manifest.vms[1].spec,
            Err(VmError::DuplicateMac {
                line: 13,
                derived: false,
                first_line: 1,
                ..
            })
        ));
        assert!(manifest.vms[2].spec.is_ok());
        // Two sections with one name derive one MAC; the name clash is
        // what refuses the second.
        let text = [
            vm_named("twin", "network = \"lan0\""),
            vm_named("twin", "network = \"lan0\""),
        ]
        .concat();
        assert!(matches!(
            Manifest::parse(&text).unwrap().vms[1].spec,
            Err(VmError::DuplicateName { .. })
        ));
        let message = VmError::DuplicateMac {
            line: 9,
            mac: derived,
            derived: true,
            network: "lan0".into(),
            first: "x".into(),
            first_line: 1,
        }
        .to_string();
        assert!(
            message.contains("(derived from the VM's name; give it a \"mac\")"),
            "{message}"
        );
    }

    #[test]
    fn a_vm_after_one_refused_for_its_mac_is_refused() {
        let text = [
            vm_named("a", "network = \"n\"\nmac = \"02:00:00:00:00:01\""),
            vm_named("b", "network = \"n\"\nmac = \"02:00:00:00:00:01\""),
            vm_named("c", "after = \"b\""),
        ]
        .concat();
        let manifest = Manifest::parse(&text).unwrap();
        assert!(matches!(
            manifest.vms[1].spec,
            Err(VmError::DuplicateMac { .. })
        ));
        assert!(matches!(
            manifest.vms[2].spec,
            Err(VmError::AfterRefused { .. })
        ));
    }

    #[test]
    fn crlf_line_endings_and_byte_order_mark() {
        let text = "\u{feff}# c\r\n[[vm]]\r\nname = \"v\"\r\nvcpus = 1\r\nmemory = \"2M\"\r\nkernel = \"k\"\r\n";
        let entry = only(text);
        assert_eq!(entry.line, 2);
        assert_eq!(entry.spec.unwrap().kernel, "k");
    }

    #[test]
    fn unknown_key_names_the_line_and_the_vm() {
        let text = "[[vm]]\nname = \"beta\"\nvcpus = 1\nmemroy = \"64M\"\nkernel = \"k\"\n";
        let entry = only(text);
        assert_eq!(entry.name, "beta");
        assert_eq!(
            entry.spec,
            Err(VmError::UnknownKey {
                line: 4,
                key: "memroy".into()
            })
        );
        let message = entry.error_message().unwrap().to_string();
        assert!(
            message.starts_with("vm \"beta\": line 4: unknown key \"memroy\""),
            "{message}"
        );
    }

    #[test]
    fn name_after_the_error_still_names_the_vm() {
        let entry = only("[[vm]]\nbogus = 1\nname = \"late\"\n");
        assert_eq!(entry.name, "late");
        assert!(matches!(
            entry.spec,
            Err(VmError::UnknownKey { line: 2, .. })
        ));
    }

    #[test]
    fn syntax_errors_carry_their_line() {
        assert!(matches!(
            error_of(&vm_with("bootargs = 'single'")),
            VmError::Syntax { line: 6, .. }
        ));
        assert!(matches!(
            error_of("[[vm]]\nname = \"v\"\nvcpus = [1]\n"),
            VmError::Syntax { line: 3, .. }
        ));
    }

    #[test]
    fn duplicate_key() {
        assert_eq!(
            error_of(&vm_with("vcpus = 2")),
            VmError::DuplicateKey {
                line: 6,
                key: "vcpus"
            }
        );
    }

    #[test]
    fn each_missing_required_key_is_reported_at_the_header() {
        let keys = [
            ("name", "name = \"v\""),
            ("vcpus", "vcpus = 1"),
            ("memory", "memory = \"2M\""),
            ("kernel", "kernel = \"k\""),
        ];
        for (missing, _) in keys {
            let mut text = String::from("\n[[vm]]\n");
            for (key, line) in keys {
                if key != missing {
                    text.push_str(line);
                    text.push('\n');
                }
            }
            let entry = only(&text);
            assert_eq!(
                entry.spec,
                Err(VmError::MissingKey {
                    line: 2,
                    key: missing
                }),
                "{missing}"
            );
            if missing == "name" {
                assert_eq!(entry.name, "vm #1");
                let message = entry.error_message().unwrap().to_string();
                assert!(message.starts_with("vm #1: line 2: "), "{message}");
            }
        }
    }

    #[test]
    fn too_many_vcpus() {
        let text = "[[vm]]\nname = \"v\"\nvcpus = 9\nmemory = \"2M\"\nkernel = \"k\"\n";
        assert_eq!(
            error_of(text),
            VmError::TooManyVcpus {
                line: 3,
                requested: 9,
                max: MAX_VCPUS
            }
        );
        let huge = "[[vm]]\nvcpus = 0x1_0000_0001\n";
        assert_eq!(
            error_of(huge),
            VmError::TooManyVcpus {
                line: 2,
                requested: 0x1_0000_0001,
                max: MAX_VCPUS
            }
        );
        let eight = text.replace("vcpus = 9", "vcpus = 8");
        assert_eq!(only(&eight).spec.unwrap().vcpus, 8);
    }

    #[test]
    fn bad_values() {
        let cases = [
            ("name = \"\"", "name"),
            ("name = \"has space\"", "name"),
            ("name = \"abcdefghijklmnopqrstuvwxyz0123456\"", "name"),
            ("name = 3", "name"),
            ("vcpus = 0", "vcpus"),
            ("vcpus = \"2\"", "vcpus"),
            ("memory = \"1M\"", "memory"),
            ("memory = \"3M\"", "memory"),
            ("memory = 0", "memory"),
            ("memory = \"64m\"", "memory"),
            ("memory = \"64MiB\"", "memory"),
            ("memory = \"M\"", "memory"),
            ("memory = \"\"", "memory"),
            ("memory = \"-2M\"", "memory"),
            ("memory = \"99999999999G\"", "memory"),
            ("memory = [\"2M\"]", "memory"),
            ("kernel = \"\"", "kernel"),
            ("kernel = \"manifest\"", "kernel"),
            ("kernel = [\"k\"]", "kernel"),
            (
                "kernel = \"a-very-long-image-name-that-does-not-fit-in-48-bytes.bin\"",
                "kernel",
            ),
            ("initrd = \"tab\\there\"", "initrd"),
            ("bootargs = 1", "bootargs"),
            ("devices = \"pl011\"", "devices"),
            ("devices = [\"pl011\", \"pl011\"]", "devices"),
            ("after = \"\"", "after"),
            ("after = \"two words\"", "after"),
            ("after = 1", "after"),
            ("after = [\"v\"]", "after"),
            ("disk = \"64M\"", "disk"),
            ("disk = \"0+0\"", "disk"),
            ("disk = \"100+1M\"", "disk"),
            ("disk = 64", "disk"),
            ("disk_access = \"ro\"", "disk_access"),
            ("disk_access = 1", "disk_access"),
            ("network = \"LAN\"", "network"),
            ("network = \"\"", "network"),
            ("network = [\"lan0\"]", "network"),
            ("mac = \"01:00:5e:00:00:01\"", "mac"),
            ("mac = \"00:00:00:00:00:00\"", "mac"),
            ("mac = \"52:54:00:12:34\"", "mac"),
            ("passthrough = \"00:03.0\"", "passthrough"),
            ("passthrough = [\"00:03\"]", "passthrough"),
            ("passthrough = [\"0001:00:03.0\"]", "passthrough"),
            (
                "passthrough = [\"00:03.0\", \"0000:00:03.0\"]",
                "passthrough",
            ),
            ("passthrough = true", "passthrough"),
            ("passthrough_required = \"yes\"", "passthrough_required"),
            ("passthrough_required = 1", "passthrough_required"),
            ("backend = 1", "backend"),
            ("backend = [\"task\"]", "backend"),
            ("name = true", "name"),
            ("memory = false", "memory"),
        ];
        for (line, key) in cases {
            // The bad line replaces the section's own occurrence of the key.
            let base = "[[vm]]\nname = \"v\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n";
            let text = base
                .lines()
                .map(|l| {
                    if l.starts_with(key) {
                        line.to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let text = if text.contains(line) {
                text
            } else {
                format!("{text}\n{line}")
            };
            let expected_line = text.lines().position(|l| l == line).unwrap() as u32 + 1;
            match error_of(&text) {
                VmError::BadValue {
                    line: at, key: k, ..
                } => {
                    assert_eq!((at, k), (expected_line, key), "{line}")
                }
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn limits_are_inclusive() {
        let name = "a".repeat(MAX_VM_NAME_LEN);
        let image = "i".repeat(MAX_NAME_LEN);
        let args = "x".repeat(MAX_BOOTARGS_LEN);
        let text = format!(
            "[[vm]]\nname = \"{name}\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"{image}\"\nbootargs = \"{args}\"\n"
        );
        let spec = only(&text).spec.unwrap();
        assert_eq!(spec.name, name);
        let too_long = text.replace(&args, &format!("{args}x"));
        assert!(matches!(
            error_of(&too_long),
            VmError::BadValue {
                line: 6,
                key: "bootargs",
                ..
            }
        ));
    }

    #[test]
    fn unknown_device() {
        let error = error_of(&vm_with("devices = [\"pl011\", \"virtio-net\"]"));
        assert_eq!(
            error,
            VmError::UnknownDevice {
                line: 6,
                kind: "virtio-net".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "line 6: unknown device kind \"virtio-net\" (known kinds: \"pl011\")"
        );
    }

    #[test]
    fn duplicate_names_refuse_the_later_vm() {
        let text = format!("{}{}{}", vm_with(""), vm_with(""), vm_with(""));
        let manifest = Manifest::parse(&text).unwrap();
        assert!(manifest.vms[0].spec.is_ok());
        for (i, vm) in manifest.vms.iter().enumerate().skip(1) {
            assert_eq!(
                vm.spec,
                Err(VmError::DuplicateName {
                    line: 1 + 6 * i as u32 + 1,
                    name: "v".into(),
                    first_line: 1
                })
            );
        }
    }

    #[test]
    fn a_broken_vm_with_a_name_still_claims_it() {
        let text = format!("{}{}", vm_with("oops = 1"), vm_with(""));
        let manifest = Manifest::parse(&text).unwrap();
        assert!(matches!(
            manifest.vms[1].spec,
            Err(VmError::DuplicateName { first_line: 1, .. })
        ));
    }

    #[test]
    fn one_bad_vm_among_good_ones_leaves_the_others_ok() {
        let text = r#"
[[vm]]
name = "one"
vcpus = 1
memory = "2M"
kernel = "k"

[[vm]]
name = "two"
vcpus = 1
memory = "2M" "oops"
kernel = "k"
devices = [ "pl011"

[vms]
name = "three"
vcpus = 1

[[vm]]
name = "four"
vcpus = 1
memory = "2M"
kernel = "k"
"#;
        let manifest = Manifest::parse(text).unwrap();
        let summary: Vec<_> = manifest
            .vms
            .iter()
            .map(|vm| {
                (
                    vm.name.as_str(),
                    vm.line,
                    vm.spec.as_ref().err().map(VmError::line),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("one", 2, None),
                ("two", 8, Some(11)),
                ("three", 15, Some(15)),
                ("four", 19, None),
            ]
        );
        assert!(matches!(
            manifest.vms[2].spec,
            Err(VmError::Syntax { line: 15, .. })
        ));
    }

    #[test]
    fn vms_past_the_limit_are_refused() {
        let mut text = String::new();
        for i in 0..=MAX_VMS {
            text.push_str(&format!(
                "[[vm]]\nname = \"v{i}\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n"
            ));
        }
        let manifest = Manifest::parse(&text).unwrap();
        assert_eq!(manifest.good_vms().count(), MAX_VMS);
        assert_eq!(
            manifest.vms[MAX_VMS].spec,
            Err(VmError::TooManyVms {
                line: 5 * MAX_VMS as u32 + 1,
                max: MAX_VMS
            })
        );
    }

    #[test]
    fn manifest_wide_errors() {
        assert_eq!(Manifest::parse(""), Err(ManifestError::NoVms));
        assert_eq!(
            Manifest::parse("# only\n\n  # comments\n"),
            Err(ManifestError::NoVms)
        );
        assert_eq!(
            Manifest::parse("# c\nname = \"x\"\n[[vm]]\n"),
            Err(ManifestError::OutsideVm { line: 2 })
        );
        assert_eq!(
            Manifest::parse("garbage\n[[vm]]\n"),
            Err(ManifestError::OutsideVm { line: 1 })
        );
        let big = " ".repeat(MAX_MANIFEST_LEN + 1);
        assert_eq!(
            Manifest::parse(&big),
            Err(ManifestError::TooLarge {
                len: MAX_MANIFEST_LEN + 1,
                max: MAX_MANIFEST_LEN
            })
        );
    }

    #[test]
    fn a_bad_header_before_any_vm_is_a_vm_in_error() {
        let manifest = Manifest::parse("[settings]\nverbose = 1\n").unwrap();
        assert_eq!(manifest.vms[0].name, "vm #1");
        assert!(matches!(
            manifest.vms[0].spec,
            Err(VmError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn messages() {
        assert_eq!(
            VmError::DuplicateKey {
                line: 3,
                key: "memory"
            }
            .to_string(),
            "line 3: key \"memory\" appears twice in this [[vm]] section"
        );
        assert_eq!(
            VmError::TooManyVcpus {
                line: 4,
                requested: 9,
                max: 8
            }
            .to_string(),
            "line 4: 9 vCPUs requested; at most 8 are supported"
        );
        assert_eq!(
            VmError::UnknownKey {
                line: 7,
                key: "memroy".into()
            }
            .to_string(),
            "line 7: unknown key \"memroy\" (known keys: name, vcpus, memory, kernel, initrd, bootargs, devices, after, disk, disk_access, network, mac, passthrough, passthrough_required, backend)"
        );
        assert_eq!(
            ManifestError::OutsideVm { line: 2 }.to_string(),
            "manifest line 2: only comments and blank lines may come before the first [[vm]] section"
        );
    }

    /// A VM section named `name`, with `after` if given.
    fn named(name: &str, after: Option<&str>) -> String {
        let after = after
            .map(|a| format!("after = \"{a}\"\n"))
            .unwrap_or_default();
        format!("[[vm]]\nname = \"{name}\"\nvcpus = 1\nmemory = \"2M\"\nkernel = \"k\"\n{after}\n")
    }

    fn afters(text: &str) -> Vec<(String, Result<Option<String>, VmError>)> {
        Manifest::parse(text)
            .unwrap()
            .vms
            .into_iter()
            .map(|vm| (vm.name, vm.spec.map(|spec| spec.after)))
            .collect()
    }

    #[test]
    fn after_chains_sequential_vms_forwards_and_backwards() {
        let text = [
            named("long", None),
            named("v1", None),
            named("v2", Some("v1")),
            named("v3", Some("v2")),
            // Naming a VM further down the file is fine too.
            named("v0", Some("v4")),
            named("v4", Some("v3")),
        ]
        .concat();
        let manifest = Manifest::parse(&text).unwrap();
        let good: Vec<_> = manifest
            .good_vms()
            .map(|spec| (spec.name.as_str(), spec.after.as_deref()))
            .collect();
        assert_eq!(
            good,
            [
                ("long", None),
                ("v1", None),
                ("v2", Some("v1")),
                ("v3", Some("v2")),
                ("v0", Some("v4")),
                ("v4", Some("v3")),
            ]
        );
    }

    #[test]
    fn after_naming_no_vm_is_refused_with_its_line() {
        let text = [named("a", None), named("b", Some("c"))].concat();
        let manifest = Manifest::parse(&text).unwrap();
        assert!(manifest.vms[0].spec.is_ok());
        let error = manifest.vms[1].spec.clone().unwrap_err();
        assert_eq!(
            error,
            VmError::AfterUnknown {
                line: 12,
                name: "c".into()
            }
        );
        assert_eq!(
            manifest.vms[1].error_message().unwrap().to_string(),
            "vm \"b\": line 12: after = \"c\": no VM in this manifest has that name"
        );
    }

    #[test]
    fn after_naming_itself_is_refused() {
        let text = named("solo", Some("solo"));
        assert_eq!(error_of(&text), VmError::AfterSelf { line: 6 });
        assert_eq!(
            VmError::AfterSelf { line: 6 }.to_string(),
            "line 6: a VM cannot start after itself"
        );
    }

    #[test]
    fn every_vm_on_an_after_cycle_is_refused_and_those_waiting_on_it_too() {
        let text = [
            named("a", Some("c")),
            named("b", Some("a")),
            named("c", Some("b")),
            named("d", Some("b")),
            named("e", Some("d")),
            named("f", None),
        ]
        .concat();
        let vms = afters(&text);
        let cycle = |line: u32, names: [&str; 3]| {
            Err(VmError::AfterCycle {
                line,
                cycle: names.iter().map(|n| n.to_string()).collect(),
            })
        };
        assert_eq!(vms[0].1, cycle(6, ["a", "c", "b"]));
        assert_eq!(vms[1].1, cycle(13, ["b", "a", "c"]));
        assert_eq!(vms[2].1, cycle(20, ["c", "b", "a"]));
        assert_eq!(
            vms[3].1,
            Err(VmError::AfterRefused {
                line: 27,
                name: "b".into()
            })
        );
        assert_eq!(
            vms[4].1,
            Err(VmError::AfterRefused {
                line: 34,
                name: "d".into()
            })
        );
        assert_eq!(vms[5].1, Ok(None));
        assert_eq!(
            cycle(6, ["a", "c", "b"]).unwrap_err().to_string(),
            "line 6: the \"after\" keys form a cycle, so none of its VMs would start: \"a\" -> \"c\" -> \"b\" -> \"a\""
        );
    }

    #[test]
    fn a_two_vm_cycle_is_a_cycle() {
        let vms = afters(&[named("x", Some("y")), named("y", Some("x"))].concat());
        assert!(
            matches!(&vms[0].1, Err(VmError::AfterCycle { line: 6, cycle }) if cycle == &["x", "y"])
        );
        assert!(
            matches!(&vms[1].1, Err(VmError::AfterCycle { line: 13, cycle }) if cycle == &["y", "x"])
        );
    }

    #[test]
    fn after_a_refused_vm_is_refused() {
        let broken = named("bad", None).replace("vcpus = 1", "vcpus = 99");
        let text = [
            broken,
            named("next", Some("bad")),
            named("last", Some("next")),
        ]
        .concat();
        let vms = afters(&text);
        assert!(matches!(vms[0].1, Err(VmError::TooManyVcpus { .. })));
        assert_eq!(
            vms[1].1,
            Err(VmError::AfterRefused {
                line: 12,
                name: "bad".into()
            })
        );
        assert_eq!(
            vms[2].1,
            Err(VmError::AfterRefused {
                line: 19,
                name: "next".into()
            })
        );
        assert_eq!(
            vms[1].1.clone().unwrap_err().to_string(),
            "line 12: after = \"bad\": that VM is refused, so this one would never start"
        );
    }

    #[test]
    fn after_names_the_first_vm_of_a_duplicated_name() {
        // The second "dup" is refused as a duplicate; `after` means the first.
        let text = [
            named("dup", None),
            named("dup", None),
            named("w", Some("dup")),
        ]
        .concat();
        let vms = afters(&text);
        assert_eq!(vms[0].1, Ok(None));
        assert!(matches!(vms[1].1, Err(VmError::DuplicateName { .. })));
        assert_eq!(vms[2].1, Ok(Some("dup".into())));
        // And when the first one is refused, so is the VM after it.
        let text = [
            named("dup", None).replace("kernel", "kernal"),
            named("dup", None),
            named("w", Some("dup")),
        ]
        .concat();
        let vms = afters(&text);
        assert!(matches!(vms[2].1, Err(VmError::AfterRefused { .. })));
    }

    #[test]
    fn a_long_after_chain_is_settled() {
        let mut text = named("v0", None);
        for i in 1..MAX_VMS {
            text.push_str(&named(&format!("v{i}"), Some(&format!("v{}", i - 1))));
        }
        assert_eq!(Manifest::parse(&text).unwrap().good_vms().count(), MAX_VMS);
        // Closing the chain into a loop refuses all of it.
        let text = text.replacen("name = \"v0\"\n", "name = \"v0\"\nafter = \"v63\"\n", 1);
        let manifest = Manifest::parse(&text).unwrap();
        assert_eq!(manifest.good_vms().count(), 0);
        assert!(manifest
            .vms
            .iter()
            .all(|vm| matches!(&vm.spec, Err(VmError::AfterCycle { cycle, .. }) if cycle.len() == MAX_VMS)));
    }
}
