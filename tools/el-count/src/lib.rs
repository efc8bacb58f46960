//! A QEMU TCG plugin counting instructions per exception level.
