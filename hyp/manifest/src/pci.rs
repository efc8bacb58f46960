//! Host PCI functions a VM is given ("passthrough"), as the manifest names
//! them: keys `passthrough` and `passthrough_required`.

use core::fmt;

/// The most functions one VM may be given.
pub const MAX_PASSTHROUGH: usize = 8;

/// Devices on a PCI bus: the device number is five bits (PCI Local Bus
/// Specification 3.0 §3.2.2.3.1).
const DEVICES_PER_BUS: u8 = 32;
/// Functions in a device: the function number is three bits.
const FUNCTIONS_PER_DEVICE: u8 = 8;

/// A function on the host's PCI segment 0, as `lspci` writes it:
/// `bus:device.function`, e.g. `00:03.0`. Valid by construction: device
/// below 32, function below 8.
///
/// Whether the function exists, and whether it may be passed through (it
/// is not the hypervisor's own disk, not a bridge, not another running
/// VM's), is for the hypervisor to check against the host bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciFunction {
    bus: u8,
    device: u8,
    function: u8,
}

impl PciFunction {
    /// `bus:device.function`, or `None` if `device` is 32 or more or
    /// `function` 8 or more.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<PciFunction> {
        if device < DEVICES_PER_BUS && function < FUNCTIONS_PER_DEVICE {
            Some(PciFunction {
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device number, below 32.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number, below 8.
    pub const fn function(self) -> u8 {
        self.function
    }
}

impl fmt::Display for PciFunction {
    /// `00:03.0`: bus and device as two hex digits, the function as one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Parses one `passthrough` entry: `"BB:DD.F"` or `"0000:BB:DD.F"`, hex
/// bus and device (two digits each) and a function digit, with an optional
/// four-digit PCI segment that must be 0000 (the host has one PCIe host
/// bridge).
pub(crate) fn parse_pci_function(value: &str) -> Result<PciFunction, &'static str> {
    const SYNTAX: &str =
        "expected a PCI function as \"bus:device.function\" such as \"00:03.0\" (hex, an optional \"0000:\" segment first)";
    let rest = match value.split_once(':') {
        // Three fields: a segment first.
        Some((segment, rest)) if rest.contains(':') => {
            if segment.len() != 4 || !segment.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(SYNTAX);
            }
            if segment != "0000" {
                return Err("only PCI segment 0000 (the host's one PCIe host bridge) is supported");
            }
            rest
        }
        _ => value,
    };
    let (bus, rest) = rest.split_once(':').ok_or(SYNTAX)?;
    let (device, function) = rest.split_once('.').ok_or(SYNTAX)?;
    let hex = |digits: &str, len: usize| {
        if digits.len() == len && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            u8::from_str_radix(digits, 16).map_err(|_| SYNTAX)
        } else {
            Err(SYNTAX)
        }
    };
    let (bus, device, function) = (hex(bus, 2)?, hex(device, 2)?, hex(function, 1)?);
    if device >= DEVICES_PER_BUS {
        return Err("a PCI device number is at most 1f");
    }
    PciFunction::new(bus, device, function).ok_or("a PCI function number is at most 7")
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn functions_with_and_without_a_segment() {
        for (value, (bus, device, function)) in [
            ("00:03.0", (0, 3, 0)),
            ("0000:00:03.0", (0, 3, 0)),
            ("01:1f.7", (1, 31, 7)),
            ("FF:1F.7", (255, 31, 7)),
            ("0000:0a:00.1", (10, 0, 1)),
        ] {
            assert_eq!(
                parse_pci_function(value),
                Ok(PciFunction::new(bus, device, function).unwrap()),
                "{value}"
            );
        }
    }

    #[test]
    fn bad_functions_say_why() {
        for (value, why) in [
            ("", "expected"),
            ("3", "expected"),
            ("00:03", "expected"),
            ("0:3.0", "expected"),
            ("00:03.00", "expected"),
            ("00.03.0", "expected"),
            ("00:03:0", "expected"),
            ("000:00:03.0", "expected"),
            ("0000:00:03", "expected"),
            ("00:0g.0", "expected"),
            ("+0:03.0", "expected"),
            ("00:03.0 ", "expected"),
            ("0001:00:03.0", "segment 0000"),
            ("00:20.0", "device number"),
            ("00:03.8", "function number"),
        ] {
            let error = parse_pci_function(value).unwrap_err();
            assert!(error.contains(why), "{value}: {error}");
        }
    }

    #[test]
    fn functions_print_as_lspci_does() {
        let f = PciFunction::new(0, 0x1f, 7).unwrap();
        assert_eq!(f.to_string(), "00:1f.7");
        assert_eq!(parse_pci_function(&f.to_string()), Ok(f));
        assert_eq!(PciFunction::new(0, 32, 0), None);
        assert_eq!(PciFunction::new(0, 0, 8), None);
        let g = PciFunction::new(0xab, 2, 1).unwrap();
        assert_eq!((g.bus(), g.device(), g.function()), (0xab, 2, 1));
    }
}
