//! The register model of one virtio-mmio slot.

use crate::access::{Access, Event, Ignored};
use crate::register::{Direction, Register};
use crate::types::{
    DeviceId, DeviceStatus, Features, InterruptStatus, QueueArea, QueueConfig, QueueIndex,
};
use crate::{
    CONFIG_OFFSET, CONFIG_SPACE_MAX, FRAME_SIZE, MAGIC_VALUE, MAX_QUEUES, MAX_QUEUE_SIZE, VERSION,
};
use addr::IntermediatePhysAddr;
use alloc::vec::Vec;
use core::fmt;

/// What a device backend tells the transport about itself: everything the
/// guest can read before it starts driving the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device type (`DeviceID`); not [`DeviceId::NONE`], which is
    /// [`MmioTransport::empty`]'s.
    pub device_id: DeviceId,
    /// `VendorID`. Linux only prints it; QEMU uses 0x554d_4551 ("QEMU").
    pub vendor_id: u32,
    /// The features the device offers. Must include
    /// [`Features::VERSION_1`] and none of [`Features::UNSUPPORTED`]. The
    /// transport adds nothing (in particular not
    /// [`Features::ACCESS_PLATFORM`]).
    pub features: Features,
    /// Each queue's maximum size (`QueueNumMax`), in queue order: a power
    /// of two from 1 to [`MAX_QUEUE_SIZE`]. At most [`MAX_QUEUES`] queues.
    pub queue_max_sizes: Vec<u16>,
    /// The configuration space's initial contents; its length (at most
    /// [`CONFIG_SPACE_MAX`]) is the configuration space's size.
    pub config: Vec<u8>,
}

/// Why [`MmioTransport::new`] refused a [`DeviceInfo`]: the hypervisor's
/// mistake, not the guest's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceInfoError {
    /// The device ID is 0, which means "no device"; use
    /// [`MmioTransport::empty`].
    NoDeviceId,
    /// The features lack `VIRTIO_F_VERSION_1`, which a version 2 device must
    /// offer (§4.2.2; Linux refuses the device without it).
    MissingVersion1,
    /// The features include transport features this transport does not
    /// implement (see [`Features::UNSUPPORTED`]).
    UnsupportedFeatures(Features),
    /// More queues than [`MAX_QUEUES`].
    TooManyQueues(usize),
    /// A queue's maximum size is not a power of two from 1 to
    /// [`MAX_QUEUE_SIZE`].
    BadQueueMaxSize {
        /// The queue.
        queue: usize,
        /// Its maximum size.
        max: u16,
    },
    /// The configuration space is larger than [`CONFIG_SPACE_MAX`].
    ConfigTooLarge(usize),
}

impl fmt::Display for DeviceInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoDeviceId => f.write_str("device ID 0 means no device"),
            Self::MissingVersion1 => f.write_str("features lack VIRTIO_F_VERSION_1"),
            Self::UnsupportedFeatures(features) => write!(
                f,
                "transport features {features} are not implemented by virtio-mmio here"
            ),
            Self::TooManyQueues(count) => {
                write!(f, "{count} queues: at most {MAX_QUEUES} are possible")
            }
            Self::BadQueueMaxSize { queue, max } => write!(
                f,
                "queue {queue} maximum size {max}: not a power of two from 1 to {MAX_QUEUE_SIZE}"
            ),
            Self::ConfigTooLarge(size) => write!(
                f,
                "{size}-byte configuration space: at most {CONFIG_SPACE_MAX} bytes fit the frame"
            ),
        }
    }
}

/// Why [`MmioTransport::update_config`] refused an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The bytes reach past the configuration space.
    OutOfRange {
        /// Offset asked for.
        offset: usize,
        /// Bytes given.
        len: usize,
        /// Size of the configuration space.
        config_size: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfRange {
                offset,
                len,
                config_size,
            } => write!(
                f,
                "{len} bytes at configuration offset {offset:#x}: past the {config_size}-byte configuration space"
            ),
        }
    }
}

/// One queue's transport state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueueState {
    /// `QueueNumMax`.
    pub(crate) max: u16,
    /// `QueueNum`; the maximum until the driver writes one, as QEMU does and
    /// as the PCI transport's `queue_size` reads on reset (§4.1.4.3).
    pub(crate) size: u16,
    /// `QueueReady`.
    pub(crate) ready: bool,
    /// The three area addresses, as the driver wrote them.
    pub(crate) desc: u64,
    pub(crate) driver: u64,
    pub(crate) device: u64,
}

impl QueueState {
    const fn new(max: u16) -> Self {
        Self {
            max,
            size: max,
            ready: false,
            desc: 0,
            driver: 0,
            device: 0,
        }
    }

    const fn config(&self) -> QueueConfig {
        QueueConfig {
            size: self.size,
            desc: IntermediatePhysAddr(self.desc),
            driver: IntermediatePhysAddr(self.driver),
            device: IntermediatePhysAddr(self.device),
        }
    }
}

/// Where a decoded access goes.
enum Target {
    Register(Register),
    /// Offset from the start of the configuration space, and size (1, 2 or
    /// 4, naturally aligned).
    Config(u64, u8),
}

/// The virtio-mmio transport of one slot, version 2 (virtio 1.2 §4.2), as
/// the guest sees it. See the [crate documentation](crate) for the
/// contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmioTransport {
    /// Whether a device sits in the slot; `false` for [`Self::empty`].
    pub(crate) present: bool,
    pub(crate) device_id: DeviceId,
    pub(crate) vendor_id: u32,
    pub(crate) device_features: Features,
    pub(crate) config: Vec<u8>,
    pub(crate) config_generation: u32,

    pub(crate) status: DeviceStatus,
    pub(crate) device_features_sel: u32,
    pub(crate) driver_features_sel: u32,
    /// Driver features, bits 0 to 63.
    pub(crate) driver_features: Features,
    /// Whether the driver wrote a non-zero word above bit 63.
    pub(crate) driver_features_beyond_64: bool,
    pub(crate) queue_sel: u32,
    pub(crate) queues: Vec<QueueState>,
    pub(crate) interrupt_status: InterruptStatus,
}

impl MmioTransport {
    /// The transport of a slot holding the device `device` describes, in
    /// its reset state.
    ///
    /// # Errors
    ///
    /// [`DeviceInfoError::NoDeviceId`], [`DeviceInfoError::MissingVersion1`],
    /// [`DeviceInfoError::UnsupportedFeatures`],
    /// [`DeviceInfoError::TooManyQueues`],
    /// [`DeviceInfoError::BadQueueMaxSize`] or
    /// [`DeviceInfoError::ConfigTooLarge`] when `device` breaks the rule its
    /// field documents.
    pub fn new(device: DeviceInfo) -> Result<Self, DeviceInfoError> {
        if device.device_id == DeviceId::NONE {
            return Err(DeviceInfoError::NoDeviceId);
        }
        if !device.features.contains(Features::VERSION_1) {
            return Err(DeviceInfoError::MissingVersion1);
        }
        let unsupported = device.features.intersection(Features::UNSUPPORTED);
        if !unsupported.is_empty() {
            return Err(DeviceInfoError::UnsupportedFeatures(unsupported));
        }
        if device.queue_max_sizes.len() > MAX_QUEUES {
            return Err(DeviceInfoError::TooManyQueues(device.queue_max_sizes.len()));
        }
        if let Some((queue, &max)) = device
            .queue_max_sizes
            .iter()
            .enumerate()
            .find(|&(_, &max)| !max.is_power_of_two() || max > MAX_QUEUE_SIZE)
        {
            return Err(DeviceInfoError::BadQueueMaxSize { queue, max });
        }
        if device.config.len() > CONFIG_SPACE_MAX {
            return Err(DeviceInfoError::ConfigTooLarge(device.config.len()));
        }
        Ok(Self {
            present: true,
            device_id: device.device_id,
            vendor_id: device.vendor_id,
            device_features: device.features,
            config: device.config,
            config_generation: 0,
            status: DeviceStatus::NONE,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: Features::NONE,
            driver_features_beyond_64: false,
            queue_sel: 0,
            queues: device
                .queue_max_sizes
                .iter()
                .map(|&max| QueueState::new(max))
                .collect(),
            interrupt_status: InterruptStatus::NONE,
        })
    }

    /// The transport of an empty slot: `MagicValue` and `Version` read as
    /// for a device, `DeviceID` reads 0 ("no device"), and everything else
    /// reads 0 and ignores writes (each reported as [`Ignored::NoDevice`]),
    /// as QEMU's `virt` machine does for its unused virtio-mmio slots. The
    /// interrupt line never rises.
    pub const fn empty() -> Self {
        Self {
            present: false,
            device_id: DeviceId::NONE,
            vendor_id: 0,
            device_features: Features::NONE,
            config: Vec::new(),
            config_generation: 0,
            status: DeviceStatus::NONE,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: Features::NONE,
            driver_features_beyond_64: false,
            queue_sel: 0,
            queues: Vec::new(),
            interrupt_status: InterruptStatus::NONE,
        }
    }

    /// Whether this is an empty slot ([`Self::empty`]).
    pub const fn is_empty_slot(&self) -> bool {
        !self.present
    }

    /// The device type.
    pub const fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The features the device offers.
    pub const fn device_features(&self) -> Features {
        self.device_features
    }

    /// The device status as the guest reads it.
    pub const fn status(&self) -> DeviceStatus {
        self.status
    }

    /// The features both sides agreed on, once the transport accepted
    /// `FEATURES_OK` (a subset of [`Self::device_features`] including
    /// `VIRTIO_F_VERSION_1`); `None` before that and after a reset.
    pub const fn negotiated_features(&self) -> Option<Features> {
        if self.status.contains(DeviceStatus::FEATURES_OK) {
            Some(self.driver_features)
        } else {
            None
        }
    }

    /// The number of queues the device has.
    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }

    /// Queue `index`'s layout while it is ready; `None` while it is not, or
    /// if the device has no such queue.
    pub fn queue(&self, index: QueueIndex) -> Option<QueueConfig> {
        self.queues
            .get(index.as_usize())
            .filter(|queue| queue.ready)
            .map(QueueState::config)
    }

    /// `InterruptStatus`: the causes of the interrupt not yet acknowledged.
    pub const fn interrupt_status(&self) -> InterruptStatus {
        self.interrupt_status
    }

    /// The level of the slot's interrupt: high while
    /// [`Self::interrupt_status`] is not empty (§4.2.3.4). The caller drives
    /// the slot's SPI, level-sensitive, from it after every access and
    /// every `raise_*` call.
    pub const fn interrupt_line(&self) -> bool {
        !self.interrupt_status.is_empty()
    }

    /// The configuration space's current contents.
    pub fn config(&self) -> &[u8] {
        &self.config
    }

    /// `ConfigGeneration`.
    pub const fn config_generation(&self) -> u32 {
        self.config_generation
    }

    /// The device used buffers: sets the used buffer bit of
    /// `InterruptStatus`, raising the line. Only once the driver set
    /// `DRIVER_OK` (before, and after a reset, there is nothing a device may
    /// have used, §3.1.1, and a bit for an event that did not take place
    /// must be zero, §4.2.2.1). Returns whether the bit is set.
    pub fn raise_used_buffer(&mut self) -> bool {
        self.raise(InterruptStatus::USED_BUFFER)
    }

    /// The configuration changed: sets the configuration change bit of
    /// `InterruptStatus`, raising the line, once the driver set `DRIVER_OK`
    /// (before, the driver reads the configuration anyway, and QEMU does
    /// not notify either). Returns whether the bit is set. Call
    /// [`Self::update_config`] first so the generation moves.
    pub fn raise_config_change(&mut self) -> bool {
        self.raise(InterruptStatus::CONFIG_CHANGE)
    }

    fn raise(&mut self, cause: InterruptStatus) -> bool {
        if !self.present || !self.status.contains(DeviceStatus::DRIVER_OK) {
            return false;
        }
        self.interrupt_status = self.interrupt_status.union(cause);
        true
    }

    /// The device hit an error it cannot recover from without a reset: sets
    /// `DEVICE_NEEDS_RESET` and, if `DRIVER_OK` is set, raises a
    /// configuration change notification (§2.1.2: "the device MUST send a
    /// device configuration change notification to the driver"). Only a
    /// reset by the driver clears it. Nothing for an empty slot.
    pub fn set_needs_reset(&mut self) {
        if !self.present {
            return;
        }
        self.status = self.status.union(DeviceStatus::DEVICE_NEEDS_RESET);
        self.raise(InterruptStatus::CONFIG_CHANGE);
    }

    /// Writes `bytes` into the configuration space at `offset` (a device's
    /// own change, such as a new capacity, or a driver's write the device
    /// takes), moving `ConfigGeneration` on if any byte changed so a driver
    /// reading across the change retries (§2.5.1). Raises no interrupt:
    /// call [`Self::raise_config_change`] for changes the device type
    /// announces.
    ///
    /// # Errors
    ///
    /// [`ConfigError::OutOfRange`] if the bytes reach past the
    /// configuration space; nothing changes then.
    pub fn update_config(&mut self, offset: usize, bytes: &[u8]) -> Result<(), ConfigError> {
        let out_of_range = ConfigError::OutOfRange {
            offset,
            len: bytes.len(),
            config_size: self.config.len(),
        };
        let end = offset.checked_add(bytes.len()).ok_or(out_of_range)?;
        let target = self.config.get_mut(offset..end).ok_or(out_of_range)?;
        if target != bytes {
            target.copy_from_slice(bytes);
            self.config_generation = self.config_generation.wrapping_add(1);
        }
        Ok(())
    }

    /// Back to the reset state, as the driver's write of 0 to `Status` does
    /// (§2.4 and §4.2.2.1): status, selectors, driver features, every
    /// queue's state (sizes back to their maximum, addresses 0, not ready)
    /// and `InterruptStatus` are cleared. The device's identity, features
    /// and configuration space stay; `ConfigGeneration` keeps counting.
    pub fn reset(&mut self) {
        self.status = DeviceStatus::NONE;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = Features::NONE;
        self.driver_features_beyond_64 = false;
        self.queue_sel = 0;
        for queue in &mut self.queues {
            *queue = QueueState::new(queue.max);
        }
        self.interrupt_status = InterruptStatus::NONE;
    }

    fn decode(offset: u64, size: u8) -> Result<Target, Ignored> {
        if offset >= FRAME_SIZE {
            return Err(Ignored::UnknownOffset { offset });
        }
        if offset >= CONFIG_OFFSET {
            if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(u64::from(size)) {
                return Err(Ignored::BadConfigAccess { offset, size });
            }
            return Ok(Target::Config(offset - CONFIG_OFFSET, size));
        }
        if size != 4 || !offset.is_multiple_of(4) {
            return Err(Ignored::BadRegisterAccess { offset, size });
        }
        Register::from_offset(offset)
            .map(Target::Register)
            .ok_or(Ignored::UnknownOffset { offset })
    }

    /// The configuration bytes `[offset, offset + size)`, if inside.
    fn config_range(&self, offset: u64, size: u8) -> Result<core::ops::Range<usize>, Ignored> {
        let out_of_range = Ignored::ConfigOutOfRange {
            offset,
            size,
            // CONFIG_SPACE_MAX keeps this in range.
            config_size: self.config.len() as u16,
        };
        let start = usize::try_from(offset).map_err(|_| out_of_range)?;
        let end = start + usize::from(size);
        if end > self.config.len() {
            return Err(out_of_range);
        }
        Ok(start..end)
    }

    /// A guest's read of `size` bytes at `offset` from the frame's start.
    /// Reads have no side effects.
    pub fn read(&self, offset: u64, size: u8) -> Access<u32> {
        let register = match Self::decode(offset, size) {
            Ok(Target::Register(register)) => register,
            Ok(Target::Config(offset, size)) => return self.read_config(offset, size),
            Err(why) => return Access::not_done(0, why),
        };
        // Only these three: Linux's probe stops at DeviceID 0, as the
        // specification requires (§4.2.3.1.1).
        if !self.present
            && !matches!(
                register,
                Register::MagicValue | Register::Version | Register::DeviceId
            )
        {
            return Access::not_done(0, Ignored::NoDevice);
        }
        if register.direction() == Direction::Write {
            return Access::not_done(0, Ignored::WriteOnly(register));
        }
        let selected = self.selected_queue();
        let value = match register {
            Register::MagicValue => MAGIC_VALUE,
            Register::Version => VERSION,
            Register::DeviceId => self.device_id.0,
            Register::VendorId => self.vendor_id,
            Register::DeviceFeatures => self.device_features.word(self.device_features_sel),
            Register::QueueNumMax => selected.map_or(0, |(_, queue)| u32::from(queue.max)),
            Register::QueueReady => selected.map_or(0, |(_, queue)| u32::from(queue.ready)),
            Register::InterruptStatus => self.interrupt_status.bits(),
            Register::Status => u32::from(self.status.bits()),
            // No shared memory regions: length and base read as -1 (§4.2.2).
            Register::ShmLenLow
            | Register::ShmLenHigh
            | Register::ShmBaseLow
            | Register::ShmBaseHigh => u32::MAX,
            // Without VIRTIO_F_RING_RESET no queue is ever being reset.
            Register::QueueReset => 0,
            Register::ConfigGeneration => self.config_generation,
            // Write-only, handled above.
            Register::DeviceFeaturesSel
            | Register::DriverFeatures
            | Register::DriverFeaturesSel
            | Register::QueueSel
            | Register::QueueNum
            | Register::QueueNotify
            | Register::InterruptAck
            | Register::QueueDescLow
            | Register::QueueDescHigh
            | Register::QueueDriverLow
            | Register::QueueDriverHigh
            | Register::QueueDeviceLow
            | Register::QueueDeviceHigh
            | Register::ShmSel => 0,
        };
        Access::done(value)
    }

    fn read_config(&self, offset: u64, size: u8) -> Access<u32> {
        if !self.present {
            return Access::not_done(0, Ignored::NoDevice);
        }
        match self.config_range(offset, size) {
            Ok(range) => {
                let value = self.config[range]
                    .iter()
                    .rev()
                    .fold(0u32, |value, &byte| (value << 8) | u32::from(byte));
                Access::done(value)
            }
            Err(why) => Access::not_done(0, why),
        }
    }

    /// A guest's write of `size` bytes at `offset` from the frame's start;
    /// `value` holds only those bytes (anything above is ignored). Returns
    /// what the device backend must act on, if anything.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Access<Option<Event>> {
        let register = match Self::decode(offset, size) {
            Ok(Target::Register(register)) => register,
            Ok(Target::Config(offset, size)) => return self.write_config(offset, size, value),
            Err(why) => return Access::not_done(None, why),
        };
        if !self.present {
            return Access::not_done(None, Ignored::NoDevice);
        }
        if register.direction() == Direction::Read {
            return Access::not_done(None, Ignored::ReadOnly(register));
        }
        // Registers are 32 bits wide and `decode` took only 4-byte accesses.
        let value = value as u32;
        match register {
            Register::DeviceFeaturesSel => self.device_features_sel = value,
            Register::DriverFeaturesSel => self.driver_features_sel = value,
            Register::DriverFeatures => return self.write_driver_features(value),
            Register::QueueSel => self.queue_sel = value,
            Register::QueueNum
            | Register::QueueDescLow
            | Register::QueueDescHigh
            | Register::QueueDriverLow
            | Register::QueueDriverHigh
            | Register::QueueDeviceLow
            | Register::QueueDeviceHigh => return self.write_queue_setup(register, value),
            Register::QueueReady => return self.write_queue_ready(value),
            Register::QueueNotify => return self.write_queue_notify(value),
            Register::InterruptAck => return self.write_interrupt_ack(value),
            Register::Status => return self.write_status(value),
            // No shared memory regions: every selection reads as absent.
            Register::ShmSel => {}
            Register::QueueReset => return Access::not_done(None, Ignored::RingResetNotOffered),
            // Read-only, handled above.
            Register::MagicValue
            | Register::Version
            | Register::DeviceId
            | Register::VendorId
            | Register::DeviceFeatures
            | Register::QueueNumMax
            | Register::InterruptStatus
            | Register::ShmLenLow
            | Register::ShmLenHigh
            | Register::ShmBaseLow
            | Register::ShmBaseHigh
            | Register::ConfigGeneration => {}
        }
        Access::done(None)
    }

    fn write_config(&mut self, offset: u64, size: u8, value: u64) -> Access<Option<Event>> {
        if !self.present {
            return Access::not_done(None, Ignored::NoDevice);
        }
        match self.config_range(offset, size) {
            Ok(range) => {
                let mask = u32::MAX >> (32 - 8 * u32::from(size));
                Access::done(Some(Event::ConfigWrite {
                    // CONFIG_SPACE_MAX keeps this in range.
                    offset: range.start as u16,
                    size,
                    value: value as u32 & mask,
                }))
            }
            Err(why) => Access::not_done(None, why),
        }
    }

    fn write_driver_features(&mut self, value: u32) -> Access<Option<Event>> {
        if self.status.contains(DeviceStatus::FEATURES_OK) {
            return Access::not_done(None, Ignored::FeaturesAfterFeaturesOk);
        }
        let select = self.driver_features_sel;
        if select > 1 {
            if value == 0 {
                return Access::done(None);
            }
            // Remembered so FEATURES_OK is refused: no device here offers
            // features above bit 63 (§2.2.1, "the device MUST NOT" accept
            // features it did not offer).
            self.driver_features_beyond_64 = true;
            return Access::not_done(None, Ignored::UnofferedFeatureWord { select, value });
        }
        self.driver_features = self.driver_features.with_word(select, value);
        Access::done(None)
    }

    /// Why the driver's features cannot be accepted, if they cannot.
    fn check_driver_features(&self) -> Result<(), Ignored> {
        let unoffered = self.driver_features.difference(self.device_features);
        if !unoffered.is_empty() || self.driver_features_beyond_64 {
            return Err(Ignored::FeaturesNotOffered {
                unoffered,
                beyond_64: self.driver_features_beyond_64,
            });
        }
        if !self.driver_features.contains(Features::VERSION_1) {
            return Err(Ignored::Version1NotAccepted);
        }
        Ok(())
    }

    /// The device status state machine (§2.1, §3.1.1).
    fn write_status(&mut self, value: u32) -> Access<Option<Event>> {
        if value == 0 {
            self.reset();
            return Access::done(Some(Event::Reset));
        }
        if value & !u32::from(DeviceStatus::ALL.bits()) != 0 {
            return Access::not_done(
                None,
                Ignored::ReservedBits {
                    register: Register::Status,
                    value,
                },
            );
        }
        let needs_reset = self.status.intersection(DeviceStatus::DEVICE_NEEDS_RESET);
        // DEVICE_NEEDS_RESET is the device's: the driver can neither set it
        // nor clear it (Linux writes back what it read, so it may carry it).
        let written =
            DeviceStatus::from_bits(value as u8).difference(DeviceStatus::DEVICE_NEEDS_RESET);
        let current = self.status.difference(DeviceStatus::DEVICE_NEEDS_RESET);
        if !written.contains(current) {
            return Access::not_done(
                None,
                Ignored::StatusBitsCleared {
                    status: self.status,
                    written,
                },
            );
        }
        let added = written.difference(current);
        if added.is_empty() {
            return Access::done(None);
        }
        if current.contains(DeviceStatus::FAILED) {
            return Access::not_done(None, Ignored::StatusAfterFailed { written });
        }
        if !written.is_in_order() {
            return Access::not_done(None, Ignored::StatusOutOfOrder { written });
        }
        let mut accepted = written;
        let mut refused = None;
        if added.contains(DeviceStatus::FEATURES_OK) {
            if let Err(why) = self.check_driver_features() {
                // FEATURES_OK does not stick (§3.1.1 step 6: the driver
                // reads it back to learn the device refused), and DRIVER_OK
                // cannot stand without it.
                accepted =
                    accepted.difference(DeviceStatus::FEATURES_OK.union(DeviceStatus::DRIVER_OK));
                refused = Some(why);
            }
        }
        if added.contains(DeviceStatus::FAILED) {
            // A driver giving up in the same write does not start the device.
            accepted = accepted.difference(DeviceStatus::DRIVER_OK.difference(current));
        }
        self.status = accepted.union(needs_reset);
        let new = accepted.difference(current);
        let event = if new.contains(DeviceStatus::FAILED) {
            Some(Event::Failed)
        } else if new.contains(DeviceStatus::DRIVER_OK) {
            Some(Event::DriverOk)
        } else {
            None
        };
        Access {
            value: event,
            ignored: refused,
        }
    }

    /// The queue `QueueSel` names, if the device has it.
    fn selected_queue(&self) -> Option<(QueueIndex, &QueueState)> {
        let index = u16::try_from(self.queue_sel).ok()?;
        self.queues
            .get(usize::from(index))
            .map(|queue| (QueueIndex(index), queue))
    }

    /// The selected queue, if the driver may set it up now: it exists, is
    /// not ready, and the device is between `FEATURES_OK` and `DRIVER_OK`.
    fn queue_for_setup(&mut self) -> Result<(QueueIndex, &mut QueueState), Ignored> {
        let (index, _) = self.selected_queue().ok_or(Ignored::NoSuchQueue {
            select: self.queue_sel,
        })?;
        if !self.status.contains(DeviceStatus::FEATURES_OK) {
            return Err(Ignored::QueueBeforeFeaturesOk(index));
        }
        if self.status.contains(DeviceStatus::DRIVER_OK) {
            return Err(Ignored::QueueAfterDriverOk(index));
        }
        let queue = &mut self.queues[index.as_usize()];
        if queue.ready {
            return Err(Ignored::QueueIsReady(index));
        }
        Ok((index, queue))
    }

    fn write_queue_setup(&mut self, register: Register, value: u32) -> Access<Option<Event>> {
        let (index, queue) = match self.queue_for_setup() {
            Ok(selected) => selected,
            Err(why) => return Access::not_done(None, why),
        };
        /// Replaces the low or high half of an address.
        fn set_half(address: &mut u64, high: bool, value: u32) {
            let value = u64::from(value);
            *address = if high {
                (*address & 0xffff_ffff) | (value << 32)
            } else {
                (*address & !0xffff_ffff) | value
            };
        }
        match register {
            Register::QueueNum => match u16::try_from(value) {
                Ok(size) if size.is_power_of_two() && size <= queue.max => queue.size = size,
                _ => {
                    return Access::not_done(
                        None,
                        Ignored::BadQueueSize {
                            queue: index,
                            size: value,
                            max: queue.max,
                        },
                    )
                }
            },
            Register::QueueDescLow => set_half(&mut queue.desc, false, value),
            Register::QueueDescHigh => set_half(&mut queue.desc, true, value),
            Register::QueueDriverLow => set_half(&mut queue.driver, false, value),
            Register::QueueDriverHigh => set_half(&mut queue.driver, true, value),
            Register::QueueDeviceLow => set_half(&mut queue.device, false, value),
            Register::QueueDeviceHigh => set_half(&mut queue.device, true, value),
            _ => {}
        }
        Access::done(None)
    }

    fn write_queue_ready(&mut self, value: u32) -> Access<Option<Event>> {
        match value {
            0 => {
                // Stopping a queue is allowed at any time (§4.2.2.2: "to stop
                // using the queue the driver MUST write zero"); Linux does it
                // for every queue it deletes, reset or not, and warns unless
                // it reads 0 back.
                let Some((index, _)) = self.selected_queue() else {
                    return Access::not_done(
                        None,
                        Ignored::NoSuchQueue {
                            select: self.queue_sel,
                        },
                    );
                };
                let queue = &mut self.queues[index.as_usize()];
                if !queue.ready {
                    return Access::done(None);
                }
                queue.ready = false;
                Access::done(Some(Event::QueueStopped(index)))
            }
            1 => {
                // Enabling twice changes nothing.
                if let Some((_, queue)) = self.selected_queue() {
                    if queue.ready {
                        return Access::done(None);
                    }
                }
                let (index, queue) = match self.queue_for_setup() {
                    Ok(selected) => selected,
                    Err(why) => return Access::not_done(None, why),
                };
                let config = queue.config();
                for area in [QueueArea::Descriptor, QueueArea::Driver, QueueArea::Device] {
                    let address = config.address(area);
                    if !address.is_aligned(area.alignment()) {
                        return Access::not_done(
                            None,
                            Ignored::MisalignedQueueArea {
                                queue: index,
                                area,
                                address,
                            },
                        );
                    }
                    if address.checked_add(config.area_size(area)).is_none() {
                        return Access::not_done(
                            None,
                            Ignored::QueueAreaWraps {
                                queue: index,
                                area,
                                address,
                            },
                        );
                    }
                }
                queue.ready = true;
                Access::done(Some(Event::QueueReady(index, config)))
            }
            _ => Access::not_done(
                None,
                Ignored::BadValue {
                    register: Register::QueueReady,
                    value,
                },
            ),
        }
    }

    fn write_queue_notify(&mut self, value: u32) -> Access<Option<Event>> {
        // Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index
        // (§4.2.3.3).
        let Some(index) = u16::try_from(value)
            .ok()
            .map(QueueIndex)
            .filter(|index| index.as_usize() < self.queues.len())
        else {
            return Access::not_done(None, Ignored::NoSuchQueue { select: value });
        };
        if !self.status.contains(DeviceStatus::DRIVER_OK) {
            return Access::not_done(None, Ignored::NotifyBeforeDriverOk(index));
        }
        if !self.queues[index.as_usize()].ready {
            return Access::not_done(None, Ignored::QueueNotReady(index));
        }
        Access::done(Some(Event::Notify(index)))
    }

    fn write_interrupt_ack(&mut self, value: u32) -> Access<Option<Event>> {
        let acked = InterruptStatus::from_bits(value);
        if !InterruptStatus::ALL.contains(acked) {
            return Access::not_done(
                None,
                Ignored::ReservedBits {
                    register: Register::InterruptAck,
                    value,
                },
            );
        }
        let cleared = self.interrupt_status.intersection(acked);
        if cleared.is_empty() {
            return Access::done(None);
        }
        self.interrupt_status = self.interrupt_status.difference(cleared);
        Access::done(Some(Event::InterruptAcked(cleared)))
    }
}
