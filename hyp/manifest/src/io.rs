//! A VM's virtio devices as the manifest gives them: a region of the host
//! disk ([`DiskSpec`], keys `disk` and `disk_access`) and a port on a
//! virtual network ([`NetSpec`], keys `network` and `mac`).

use alloc::string::String;
use core::fmt;

use crate::lex;

/// Disk regions are counted in these: virtio-blk moves whole 512-byte
/// sectors (virtio 1.2 §5.2.6), so a region must start and end on one.
pub const DISK_SECTOR: u64 = 512;

/// The longest network name, in characters.
pub const MAX_NETWORK_NAME_LEN: usize = 32;

/// The region of the host disk a VM's virtio-blk device maps: the guest's
/// sector 0 is the host disk's byte `offset`, and the guest sees `size`
/// bytes.
///
/// The manifest does not know the host disk's size; whether the region fits
/// is the hypervisor's to check. Regions of different VMs may overlap (that
/// is how VMs run one `after` another share data); two VMs writing the same
/// region at once see each other's writes as two machines sharing a disk
/// would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpec {
    /// Where the region starts on the host disk, in bytes: a multiple of
    /// [`DISK_SECTOR`].
    pub offset: u64,
    /// The region's length in bytes: a non-zero multiple of [`DISK_SECTOR`];
    /// `offset + size` does not overflow.
    pub size: u64,
    /// From `disk_access = "read-only"`: the device offers
    /// `VIRTIO_BLK_F_RO` and refuses writes. Read-write by default.
    pub read_only: bool,
}

impl DiskSpec {
    /// One past the region's last byte on the host disk.
    pub fn end(&self) -> u64 {
        // Checked when the spec was parsed.
        self.offset.saturating_add(self.size)
    }

    /// The region's length in sectors, as the guest's virtio-blk config
    /// space reports its capacity.
    pub fn sectors(&self) -> u64 {
        self.size / DISK_SECTOR
    }
}

impl fmt::Display for DiskSpec {
    /// `bytes 0x4000000..0x6000000 of the host disk (32 MiB), read-write`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = if self.read_only {
            "read-only"
        } else {
            "read-write"
        };
        write!(
            f,
            "bytes {:#x}..{:#x} of the host disk ({}), {access}",
            self.offset,
            self.end(),
            Size(self.size)
        )
    }
}

/// A VM's port on a virtual network: a virtio-net device whose frames go to
/// and come from the other ports of the switch named `network`, and only
/// those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// The network (virtual switch) name: 1 to [`MAX_NETWORK_NAME_LEN`]
    /// characters of `[a-z0-9-]`. Every VM naming it is on the same switch.
    pub network: String,
    /// The port's MAC address: unicast and not all zero, unique on its
    /// network. From the `mac` key, else [`derived_mac`] of the VM's name.
    pub mac: [u8; 6],
    /// Whether `mac` was derived from the VM's name rather than given.
    pub mac_derived: bool,
}

impl fmt::Display for NetSpec {
    /// `network "lan0", MAC 52:54:00:12:34:01` (with `(derived)` when it is).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "network \"{}\", MAC {}", self.network, Mac(&self.mac))?;
        if self.mac_derived {
            f.write_str(" (derived)")?;
        }
        Ok(())
    }
}

/// Shows a MAC address the usual way: six lowercase hex pairs with colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mac<'a>(pub &'a [u8; 6]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { ":" };
            write!(f, "{separator}{byte:02x}")?;
        }
        Ok(())
    }
}

/// The MAC address a VM named `vm_name` gets when its manifest entry has a
/// `network` but no `mac`: `02:` followed by five bytes of the FNV-1a hash
/// of the name. The first byte makes it a locally administered unicast
/// address (IEEE 802: bit 1 set, bit 0 clear), so it cannot clash with a
/// real card's; the hash makes it the same on every boot, so a guest keeps
/// its address (and a DHCP lease, say) from run to run. Two names hashing
/// to the same address on one network are refused like any duplicate MAC.
pub fn derived_mac(vm_name: &str) -> [u8; 6] {
    // FNV-1a, 64 bits (the offset basis and prime of the FNV reference).
    const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = vm_name.bytes().fold(BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    let [h0, h1, h2, h3, h4, ..] = hash.to_le_bytes();
    [LOCALLY_ADMINISTERED, h0, h1, h2, h3, h4]
}

/// The first byte of a derived MAC: locally administered, unicast.
const LOCALLY_ADMINISTERED: u8 = 0x02;

/// The multicast bit of a MAC's first byte (IEEE 802 "I/G" bit).
const MULTICAST_BIT: u8 = 0x01;

/// Parses a `disk` value: `"<offset>+<size>"`, each an integer of bytes or
/// a size with a `K`/`M`/`G` suffix, e.g. `"64M+32M"`.
pub(crate) fn parse_disk_region(value: &str) -> Result<(u64, u64), &'static str> {
    const SYNTAX: &str =
        "expected \"<offset>+<size>\" such as \"64M+32M\" (offset and size on the host disk)";
    let (offset, size) = value.split_once('+').ok_or(SYNTAX)?;
    // Keep the size parser's "too large"; its syntax message is about one size.
    let reason = |error| if error == TOO_LARGE { error } else { SYNTAX };
    let offset = parse_size(offset).map_err(reason)?;
    let size = parse_size(size).map_err(reason)?;
    if size == 0 {
        return Err("the region's size must not be zero");
    }
    if !offset.is_multiple_of(DISK_SECTOR) || !size.is_multiple_of(DISK_SECTOR) {
        return Err("offset and size must be multiples of the 512-byte sector");
    }
    if offset.checked_add(size).is_none() {
        return Err("the region ends beyond 64-bit byte addresses");
    }
    Ok((offset, size))
}

/// Parses a `disk_access` value: whether the disk is read-only.
pub(crate) fn parse_disk_access(value: &str) -> Result<bool, &'static str> {
    match value {
        "read-write" => Ok(false),
        "read-only" => Ok(true),
        _ => Err("expected \"read-write\" or \"read-only\""),
    }
}

/// Checks a `network` name: 1 to [`MAX_NETWORK_NAME_LEN`] of `[a-z0-9-]`.
pub(crate) fn check_network_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a network name must not be empty");
    }
    if name.len() > MAX_NETWORK_NAME_LEN {
        return Err("a network name has at most 32 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("a network name may hold only lowercase letters, digits and `-`");
    }
    Ok(())
}

/// Parses a `mac` value: six pairs of hex digits separated by `:`, unicast
/// and not all zero.
pub(crate) fn parse_mac(value: &str) -> Result<[u8; 6], &'static str> {
    const SYNTAX: &str = "expected six hex pairs separated by `:` such as \"52:54:00:12:34:01\"";
    let mut mac = [0u8; 6];
    let mut parts = value.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or(SYNTAX)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SYNTAX);
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| SYNTAX)?;
    }
    if parts.next().is_some() {
        return Err(SYNTAX);
    }
    if mac[0] & MULTICAST_BIT != 0 {
        return Err("a port's MAC must be unicast (the first byte's lowest bit clear)");
    }
    if mac == [0; 6] {
        return Err("the all-zero MAC is not an address");
    }
    Ok(mac)
}

/// A size such as `"64M"`: an integer (TOML syntax, decimal or hex) with an
/// optional binary suffix `K`, `M` or `G`; without one it counts bytes.
pub(crate) fn parse_size(size: &str) -> Result<u64, &'static str> {
    const SYNTAX: &str = "expected a size such as \"64M\" (suffix K, M or G, binary units)";
    let (digits, shift) = match size.as_bytes().last() {
        Some(b'K') => (size.get(..size.len() - 1), 10),
        Some(b'M') => (size.get(..size.len() - 1), 20),
        Some(b'G') => (size.get(..size.len() - 1), 30),
        _ => (Some(size), 0),
    };
    let number = lex::parse_integer(digits.ok_or(SYNTAX)?).map_err(|_| SYNTAX)?;
    number.checked_mul(1 << shift).ok_or(TOO_LARGE)
}

/// [`parse_size`]'s reason for a size past `u64::MAX` bytes.
const TOO_LARGE: &str = "size too large for 64 bits";

/// A byte count in the largest binary unit that divides it: `32 MiB`,
/// `1536 KiB`, `512 bytes`.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 3] = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
        for (shift, unit) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn disk_regions() {
        for (value, region) in [
            ("64M+32M", (64 << 20, 32 << 20)),
            ("0+512", (0, 512)),
            ("0x200+1K", (512, 1024)),
            ("1G+1G", (1 << 30, 1 << 30)),
            ("4_096+2_048", (4096, 2048)),
        ] {
            assert_eq!(parse_disk_region(value), Ok(region), "{value}");
        }
        for (value, why) in [
            ("64M", "expected"),
            ("64M+", "expected"),
            ("+32M", "expected"),
            ("64M + 32M", "expected"),
            ("64M+32M+1M", "expected"),
            ("-1+32M", "expected"),
            ("64m+32m", "expected"),
            ("0+0", "zero"),
            ("0+0M", "zero"),
            ("100+512", "multiples"),
            ("0+1000", "multiples"),
            ("17179869183G+1G", "beyond"),
            ("0+99999999999G", "64 bits"),
        ] {
            let error = parse_disk_region(value).unwrap_err();
            assert!(error.contains(why), "{value}: {error}");
        }
    }

    #[test]
    fn disk_access() {
        assert_eq!(parse_disk_access("read-write"), Ok(false));
        assert_eq!(parse_disk_access("read-only"), Ok(true));
        for bad in ["ro", "rw", "READ-ONLY", "", "read_only"] {
            assert!(parse_disk_access(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn network_names() {
        let longest = "n".repeat(MAX_NETWORK_NAME_LEN);
        for good in ["lan0", "a", "dmz-2", "0", &longest] {
            assert_eq!(check_network_name(good), Ok(()), "{good}");
        }
        let too_long = "n".repeat(MAX_NETWORK_NAME_LEN + 1);
        for bad in ["", "Lan0", "lan_0", "lan 0", "lan.0", "lán", &too_long] {
            assert!(check_network_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("52:54:00:12:34:01"),
            Ok([0x52, 0x54, 0, 0x12, 0x34, 1])
        );
        assert_eq!(
            parse_mac("02:AB:cd:EF:00:ff"),
            Ok([2, 0xab, 0xcd, 0xef, 0, 0xff])
        );
        for (bad, why) in [
            ("52:54:00:12:34", "six"),
            ("52:54:00:12:34:01:02", "six"),
            ("52-54-00-12-34-01", "six"),
            ("525400123401", "six"),
            ("52:54:00:12:34:1", "six"),
            ("52:54:00:12:34:+1", "six"),
            ("52:54:00:12:34:0g", "six"),
            ("52:54:00:12:34:01:", "six"),
            ("", "six"),
            ("01:00:5e:00:00:01", "unicast"),
            ("ff:ff:ff:ff:ff:ff", "unicast"),
            ("00:00:00:00:00:00", "all-zero"),
        ] {
            let error = parse_mac(bad).unwrap_err();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }

    #[test]
    fn derived_macs_are_stable_local_unicast_and_differ_by_name() {
        let a = derived_mac("alpha");
        assert_eq!(a, derived_mac("alpha"));
        assert_ne!(a, derived_mac("beta"));
        assert_ne!(derived_mac("vm1"), derived_mac("vm2"));
        for name in ["alpha", "beta", "", "x"] {
            let mac = derived_mac(name);
            assert_eq!(mac[0], 0x02, "{name}");
            // What the parser accepts for a given one, it accepts derived.
            assert_eq!(parse_mac(&Mac(&mac).to_string()), Ok(mac));
        }
        // Pinned, so the documented addresses stay true.
        assert_eq!(Mac(&derived_mac("alpha")).to_string(), "02:2b:20:ed:85:bb");
    }

    #[test]
    fn displays() {
        let disk = DiskSpec {
            offset: 64 << 20,
            size: 32 << 20,
            read_only: false,
        };
        assert_eq!(
            disk.to_string(),
            "bytes 0x4000000..0x6000000 of the host disk (32 MiB), read-write"
        );
        assert_eq!(disk.sectors(), 65536);
        let odd = DiskSpec {
            offset: 0,
            size: 1536,
            read_only: true,
        };
        assert_eq!(
            odd.to_string(),
            "bytes 0x0..0x600 of the host disk (1536 bytes), read-only"
        );
        let net = NetSpec {
            network: "lan0".into(),
            mac: [0x52, 0x54, 0, 0x12, 0x34, 1],
            mac_derived: false,
        };
        assert_eq!(net.to_string(), "network \"lan0\", MAC 52:54:00:12:34:01");
        let derived = NetSpec {
            mac_derived: true,
            ..net
        };
        assert!(derived.to_string().ends_with("01 (derived)"));
    }
}
