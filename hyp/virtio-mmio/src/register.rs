//! The control registers of a version 2 virtio-mmio device (virtio 1.2
//! §4.2.2, "MMIO Device Register Layout").

use core::fmt;

/// Which way the driver may access a register (the table's "Direction").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Read-only (`R`).
    Read,
    /// Write-only (`W`).
    Write,
    /// Read-write (`RW`).
    ReadWrite,
}

/// A control register below the configuration space. Each is 32 bits wide
/// and the driver must access it with 32-bit aligned accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Register {
    /// `MagicValue`, 0x000: "virt" in little-endian, 0x7472_6976.
    MagicValue,
    /// `Version`, 0x004: 2.
    Version,
    /// `DeviceID`, 0x008: the device type, 0 for none.
    DeviceId,
    /// `VendorID`, 0x00c.
    VendorId,
    /// `DeviceFeatures`, 0x010: the word of device features
    /// `DeviceFeaturesSel` selects.
    DeviceFeatures,
    /// `DeviceFeaturesSel`, 0x014.
    DeviceFeaturesSel,
    /// `DriverFeatures`, 0x020: the word of driver features
    /// `DriverFeaturesSel` selects.
    DriverFeatures,
    /// `DriverFeaturesSel`, 0x024.
    DriverFeaturesSel,
    /// `QueueSel`, 0x030: the queue the `Queue*` registers apply to.
    QueueSel,
    /// `QueueNumMax`, 0x034: the selected queue's maximum size, 0 if there is
    /// no such queue.
    QueueNumMax,
    /// `QueueNum`, 0x038: the selected queue's size.
    QueueNum,
    /// `QueueReady`, 0x044: the selected queue's ready bit.
    QueueReady,
    /// `QueueNotify`, 0x050: available buffer notification.
    QueueNotify,
    /// `InterruptStatus`, 0x060.
    InterruptStatus,
    /// `InterruptACK`, 0x064.
    InterruptAck,
    /// `Status`, 0x070: the device status.
    Status,
    /// `QueueDescLow`, 0x080.
    QueueDescLow,
    /// `QueueDescHigh`, 0x084.
    QueueDescHigh,
    /// `QueueDriverLow`, 0x090.
    QueueDriverLow,
    /// `QueueDriverHigh`, 0x094.
    QueueDriverHigh,
    /// `QueueDeviceLow`, 0x0a0.
    QueueDeviceLow,
    /// `QueueDeviceHigh`, 0x0a4.
    QueueDeviceHigh,
    /// `SHMSel`, 0x0ac: shared memory region selection.
    ShmSel,
    /// `SHMLenLow`, 0x0b0.
    ShmLenLow,
    /// `SHMLenHigh`, 0x0b4.
    ShmLenHigh,
    /// `SHMBaseLow`, 0x0b8.
    ShmBaseLow,
    /// `SHMBaseHigh`, 0x0bc.
    ShmBaseHigh,
    /// `QueueReset`, 0x0c0: per-queue reset with `VIRTIO_F_RING_RESET`.
    QueueReset,
    /// `ConfigGeneration`, 0x0fc.
    ConfigGeneration,
}

impl Register {
    /// Every register, in offset order.
    pub const ALL: [Self; 29] = [
        Self::MagicValue,
        Self::Version,
        Self::DeviceId,
        Self::VendorId,
        Self::DeviceFeatures,
        Self::DeviceFeaturesSel,
        Self::DriverFeatures,
        Self::DriverFeaturesSel,
        Self::QueueSel,
        Self::QueueNumMax,
        Self::QueueNum,
        Self::QueueReady,
        Self::QueueNotify,
        Self::InterruptStatus,
        Self::InterruptAck,
        Self::Status,
        Self::QueueDescLow,
        Self::QueueDescHigh,
        Self::QueueDriverLow,
        Self::QueueDriverHigh,
        Self::QueueDeviceLow,
        Self::QueueDeviceHigh,
        Self::ShmSel,
        Self::ShmLenLow,
        Self::ShmLenHigh,
        Self::ShmBaseLow,
        Self::ShmBaseHigh,
        Self::QueueReset,
        Self::ConfigGeneration,
    ];

    /// The register at `offset`, if any. The legacy (version 1) registers
    /// `GuestPageSize`, `QueueAlign` and `QueuePFN` do not exist in version 2.
    pub const fn from_offset(offset: u64) -> Option<Self> {
        Some(match offset {
            0x000 => Self::MagicValue,
            0x004 => Self::Version,
            0x008 => Self::DeviceId,
            0x00c => Self::VendorId,
            0x010 => Self::DeviceFeatures,
            0x014 => Self::DeviceFeaturesSel,
            0x020 => Self::DriverFeatures,
            0x024 => Self::DriverFeaturesSel,
            0x030 => Self::QueueSel,
            0x034 => Self::QueueNumMax,
            0x038 => Self::QueueNum,
            0x044 => Self::QueueReady,
            0x050 => Self::QueueNotify,
            0x060 => Self::InterruptStatus,
            0x064 => Self::InterruptAck,
            0x070 => Self::Status,
            0x080 => Self::QueueDescLow,
            0x084 => Self::QueueDescHigh,
            0x090 => Self::QueueDriverLow,
            0x094 => Self::QueueDriverHigh,
            0x0a0 => Self::QueueDeviceLow,
            0x0a4 => Self::QueueDeviceHigh,
            0x0ac => Self::ShmSel,
            0x0b0 => Self::ShmLenLow,
            0x0b4 => Self::ShmLenHigh,
            0x0b8 => Self::ShmBaseLow,
            0x0bc => Self::ShmBaseHigh,
            0x0c0 => Self::QueueReset,
            0x0fc => Self::ConfigGeneration,
            _ => return None,
        })
    }

    /// The register's offset in the frame.
    pub const fn offset(self) -> u64 {
        match self {
            Self::MagicValue => 0x000,
            Self::Version => 0x004,
            Self::DeviceId => 0x008,
            Self::VendorId => 0x00c,
            Self::DeviceFeatures => 0x010,
            Self::DeviceFeaturesSel => 0x014,
            Self::DriverFeatures => 0x020,
            Self::DriverFeaturesSel => 0x024,
            Self::QueueSel => 0x030,
            Self::QueueNumMax => 0x034,
            Self::QueueNum => 0x038,
            Self::QueueReady => 0x044,
            Self::QueueNotify => 0x050,
            Self::InterruptStatus => 0x060,
            Self::InterruptAck => 0x064,
            Self::Status => 0x070,
            Self::QueueDescLow => 0x080,
            Self::QueueDescHigh => 0x084,
            Self::QueueDriverLow => 0x090,
            Self::QueueDriverHigh => 0x094,
            Self::QueueDeviceLow => 0x0a0,
            Self::QueueDeviceHigh => 0x0a4,
            Self::ShmSel => 0x0ac,
            Self::ShmLenLow => 0x0b0,
            Self::ShmLenHigh => 0x0b4,
            Self::ShmBaseLow => 0x0b8,
            Self::ShmBaseHigh => 0x0bc,
            Self::QueueReset => 0x0c0,
            Self::ConfigGeneration => 0x0fc,
        }
    }

    /// How the driver may access the register.
    pub const fn direction(self) -> Direction {
        match self {
            Self::MagicValue
            | Self::Version
            | Self::DeviceId
            | Self::VendorId
            | Self::DeviceFeatures
            | Self::QueueNumMax
            | Self::InterruptStatus
            | Self::ShmLenLow
            | Self::ShmLenHigh
            | Self::ShmBaseLow
            | Self::ShmBaseHigh
            | Self::ConfigGeneration => Direction::Read,
            Self::DeviceFeaturesSel
            | Self::DriverFeatures
            | Self::DriverFeaturesSel
            | Self::QueueSel
            | Self::QueueNum
            | Self::QueueNotify
            | Self::InterruptAck
            | Self::QueueDescLow
            | Self::QueueDescHigh
            | Self::QueueDriverLow
            | Self::QueueDriverHigh
            | Self::QueueDeviceLow
            | Self::QueueDeviceHigh
            | Self::ShmSel => Direction::Write,
            Self::QueueReady | Self::Status | Self::QueueReset => Direction::ReadWrite,
        }
    }

    /// The register's name in the specification.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MagicValue => "MagicValue",
            Self::Version => "Version",
            Self::DeviceId => "DeviceID",
            Self::VendorId => "VendorID",
            Self::DeviceFeatures => "DeviceFeatures",
            Self::DeviceFeaturesSel => "DeviceFeaturesSel",
            Self::DriverFeatures => "DriverFeatures",
            Self::DriverFeaturesSel => "DriverFeaturesSel",
            Self::QueueSel => "QueueSel",
            Self::QueueNumMax => "QueueNumMax",
            Self::QueueNum => "QueueNum",
            Self::QueueReady => "QueueReady",
            Self::QueueNotify => "QueueNotify",
            Self::InterruptStatus => "InterruptStatus",
            Self::InterruptAck => "InterruptACK",
            Self::Status => "Status",
            Self::QueueDescLow => "QueueDescLow",
            Self::QueueDescHigh => "QueueDescHigh",
            Self::QueueDriverLow => "QueueDriverLow",
            Self::QueueDriverHigh => "QueueDriverHigh",
            Self::QueueDeviceLow => "QueueDeviceLow",
            Self::QueueDeviceHigh => "QueueDeviceHigh",
            Self::ShmSel => "SHMSel",
            Self::ShmLenLow => "SHMLenLow",
            Self::ShmLenHigh => "SHMLenHigh",
            Self::ShmBaseLow => "SHMBaseLow",
            Self::ShmBaseHigh => "SHMBaseHigh",
            Self::QueueReset => "QueueReset",
            Self::ConfigGeneration => "ConfigGeneration",
        }
    }
}

impl fmt::Display for Register {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#05x})", self.name(), self.offset())
    }
}
