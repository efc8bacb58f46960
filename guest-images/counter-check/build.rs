//! Links counter-check with its linker script, `link.ld` next to this file:
//! a static ELF that Linux's ELF loader accepts.

use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if std::env::var("TARGET").unwrap() == "aarch64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        // The initramfs carries the file: its symbols are enough to debug it.
        println!("cargo:rustc-link-arg-bins=--strip-debug");
    }
}
