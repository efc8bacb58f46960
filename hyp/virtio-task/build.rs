//! Links the task with its linker script, `linker/virtio-task.ld`: three
//! segments (code, constants, data) at `task_abi::TASK_BASE`.

use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../linker/virtio-task.ld")
        .canonicalize()
        .expect("linker/virtio-task.ld exists");
    println!("cargo:rerun-if-changed={}", script.display());
    if std::env::var("TARGET").unwrap() == "aarch64-unknown-none-softfloat" {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // Segments are page-aligned by the script; file offsets need no
        // more than that (lld would pad them to 64 KiB).
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    }
}
