//! The boot bundle: the VM manifest's text format and the binary archive
//! that carries it with the guest images.
//!
//! QEMU loads the bundle with `-initrd bundle.bin`; the host tool
//! (`hyp-tools`) writes it with [`write_bundle`] and the hypervisor reads it
//! with [`Bundle::parse`] and [`Manifest::parse`]. Both sides use this crate,
//! so there is one parser. Everything here is `no_std` with `alloc`, never
//! panics on bad input, and is tested on the host.
//!
//! # The manifest
//!
//! A strict subset of TOML: every manifest this crate accepts is valid TOML
//! with the same meaning.
//!
//! ```toml
//! # Comment lines and trailing comments.
//! [[vm]]
//! name = "alpha"            # required: 1..=32 characters of [A-Za-z0-9_-], unique
//! vcpus = 2                 # required: 1..=MAX_VCPUS
//! memory = "64M"            # required: K/M/G suffix (binary) or an integer of bytes;
//!                           #   a multiple of 2 MiB, at least 2 MiB
//! kernel = "test-guest.bin" # required: the name of an image in the bundle
//! initrd = "rootfs.cpio"    # optional
//! bootargs = "test=psci"    # optional, default ""
//! devices = ["pl011"]       # optional, default ["pl011"]; kinds: see `Device`
//! after = "beta"            # optional: create and start this VM only once
//!                           #   the VM named "beta" has stopped
//! disk = "64M+32M"          # optional: a virtio-blk disk, bytes 64 MiB to
//!                           #   96 MiB of the host disk ("<offset>+<size>",
//!                           #   sizes as for memory, multiples of 512, size > 0)
//! disk_access = "read-only" # optional, with disk: "read-write" (default) or
//!                           #   "read-only"
//! network = "lan0"          # optional: a virtio-net port on the virtual
//!                           #   switch "lan0" (1-32 of [a-z0-9-])
//! mac = "52:54:00:12:34:01" # optional, with network: the port's MAC, unicast,
//!                           #   not all zero; default: derived from the name
//! passthrough = ["00:03.0"] # optional: host PCI functions the VM is given
//!                           #   ("bus:device.function", hex, an optional
//!                           #   "0000:" segment first), at most 8, each once
//! passthrough_required = false # optional, with passthrough, default true:
//!                           #   whether the VM must not start without them
//! backend = "hypervisor"    # optional, with disk or network: where the
//!                           #   virtio backends run, "task" (default) or
//!                           #   "hypervisor"
//! ```
//!
//! `after` chains VMs into sequences (`v2` after `v1`, `v3` after `v2`,
//! ...); VMs without it start at boot. It must name another VM of the
//! manifest, may name one further down the file, and must not lead back to
//! the VM itself: a VM whose `after` names no VM, itself, a VM on a cycle of
//! `after` keys, or a refused VM is refused, with the line of its `after`
//! key. So [`VmSpec::after`] of an accepted VM always names an accepted VM,
//! and following `after` from any accepted VM ends at one that starts at
//! boot.
//!
//! `disk` gives the VM a virtio-blk device whose sector 0 is the host
//! disk's byte `<offset>` and whose capacity is `<size>` ([`DiskSpec`]).
//! Regions of different VMs may overlap: VMs that run one `after` another
//! share data that way. `network` gives the VM a virtio-net port on the
//! virtual switch of that name ([`NetSpec`]); VMs naming the same network
//! see each other's frames, and no others. Without `mac`, the port's MAC is
//! [`derived_mac`] of the VM's name: `02:` and five bytes of a hash of the
//! name, a locally administered address that stays the same from boot to
//! boot. A VM whose MAC (given or derived) an earlier VM on the same
//! network already has is refused ([`VmError::DuplicateMac`]).
//! `disk_access` without `disk`, and `mac` without `network`, are refused
//! ([`VmError::Requires`]).
//!
//! `passthrough` names functions on the host's PCIe bus ([`PciFunction`])
//! whose DMA the hypervisor translates through the VM's own stage-2 tables
//! (an SMMUv3 stream table entry holding the VM's VMID, which stays pinned
//! while the function is attached). Whether a function exists and may be
//! passed through is the hypervisor's to check when it creates the VM; so
//! is that one function goes to one VM at a time (VMs that run one `after`
//! another may name the same one). When a function cannot be attached,
//! `passthrough_required = true` (the default) keeps the VM from starting,
//! and `false` starts it without that function, with a warning.
//! `passthrough_required` without `passthrough` is refused.
//!
//! `backend` says where the queues of the VM's virtio devices (its `disk`
//! and `network`) are processed ([`DeviceBackend`]): `"task"`, the default,
//! in an unprivileged EL0 task of the VM's own, or `"hypervisor"`, at EL2.
//! Any other value is refused ([`VmError::UnknownValue`]), and so is
//! `backend` on a VM with neither `disk` nor `network`
//! ([`VmError::RequiresAny`]).
//!
//! Values are basic strings (`"..."` with the escapes `\" \\ \n \t`),
//! non-negative integers (decimal, `0x` hex, `_` between digits), booleans
//! (`true`, `false`) and arrays of strings, each on one line. Everything else TOML has is refused with
//! the line number.
//!
//! A problem inside a `[[vm]]` section (a syntax error, an unknown,
//! duplicated or missing key, a bad value, too many vCPUs, a name already
//! taken) refuses only that VM: the section's [`VmEntry`] holds the first
//! [`VmError`], named by the VM's name (or `vm #N` when it has none), and
//! the other sections parse as if it were not there. Only problems that
//! belong to no VM refuse the whole manifest ([`ManifestError`]). Whether the
//! named images exist and are valid kernels, and whether VMs fit in memory,
//! is for the hypervisor to check with the bundle and the host's memory map.
//!
//! # The bundle
//!
//! All integers little-endian:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0x00   | 8    | magic `b"HYPBNDL1"` ([`MAGIC`]) |
//! | 0x08   | 4    | version, 1 ([`VERSION`]) |
//! | 0x0c   | 4    | entry count, at most [`MAX_ENTRIES`] (64) |
//! | 0x10   | 8    | total size of the bundle in bytes |
//! | 0x18   | 64 × count | the entry table |
//!
//! Each 64-byte entry:
//!
//! | offset | size | field |
//! |--------|------|-------|
//! | 0x00   | 48   | name: UTF-8, NUL-padded (or filling all 48 bytes), non-empty, unique |
//! | 0x30   | 8    | offset of the data from the bundle's start |
//! | 0x38   | 8    | size of the data in bytes |
//!
//! Each entry's data starts at a multiple of 4096 ([`DATA_ALIGN`]), after
//! the entry table and after the previous entry's data ends (so in table
//! order and without overlap), and ends within the total size. The entry
//! named `manifest` ([`MANIFEST_ENTRY`]) holds the manifest text and is
//! required. The bytes given to [`Bundle::parse`] may extend past the total
//! size (QEMU's initrd region is rounded up to pages); only the total size
//! is used.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod bundle;
mod io;
mod lex;
mod pci;
mod vm;

pub use bundle::{
    write_bundle, Bundle, BundleError, NameProblem, DATA_ALIGN, ENTRY_LEN, HEADER_LEN, MAGIC,
    MANIFEST_ENTRY, MAX_ENTRIES, MAX_NAME_LEN, VERSION,
};
pub use io::{derived_mac, DiskSpec, Mac, NetSpec, DISK_SECTOR, MAX_NETWORK_NAME_LEN};
pub use pci::{PciFunction, MAX_PASSTHROUGH};
pub use vm::{
    Device, DeviceBackend, Manifest, ManifestError, VmEntry, VmError, VmSpec, MAX_BOOTARGS_LEN,
    MAX_MANIFEST_LEN, MAX_VCPUS, MAX_VMS, MAX_VM_NAME_LEN, MEMORY_GRANULE,
};
