//! A slot's disk: the hypervisor's disk calls on its region of the host
//! disk.

use task_abi::{Slot, Status};
use virtio_backend::{Disk, DiskError};

use crate::{sys, FaultTest};

/// The disk of one slot, reached through system calls.
#[derive(Debug)]
pub struct SlotDisk {
    slot: Slot,
    /// What the first flush runs instead ([`task_abi::FLAG_FAULT_TEST`]).
    fault_test: Option<FaultTest>,
}

impl SlotDisk {
    /// The disk of `slot`. With `fault_test`, the first flush the guest
    /// asks for runs it instead, which must stop the task: the guest
    /// decides when, since Linux sends no flush while it probes the disk.
    pub const fn new(slot: Slot, fault_test: Option<FaultTest>) -> Self {
        Self { slot, fault_test }
    }
}

/// What a refused call means to the device: a range the hypervisor refuses
/// (outside the region, or a write to a read-only disk) is out of range;
/// anything else an I/O error. The guest sees either as an I/O error
/// status; the hypervisor logged the cause of a host failure.
fn disk_error(status: Status, offset: u64, len: usize) -> DiskError {
    match status {
        Status::Denied => DiskError::OutOfRange {
            offset,
            len: len as u64,
        },
        Status::Ok | Status::NoDevice | Status::Io => DiskError::Io,
    }
}

impl Disk for SlotDisk {
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let len = buf.len();
        sys::disk_read(self.slot, offset, buf).map_err(|s| disk_error(s, offset, len))
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), DiskError> {
        sys::disk_write(self.slot, offset, data).map_err(|s| disk_error(s, offset, data.len()))
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        if let Some(test) = self.fault_test {
            test.run();
        }
        sys::disk_flush(self.slot).map_err(|s| disk_error(s, 0, 0))
    }
}
