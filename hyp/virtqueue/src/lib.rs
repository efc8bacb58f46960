//! Split virtqueues from the device side, as pure logic: descriptor chains read from guest memory, every guest-controlled value validated; and the virtio-blk request handling on top.

#![no_std]
#![deny(missing_docs)]
