//! Links the hypervisor with the workspace's linker script.

use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../linker/hyp.ld")
        .canonicalize()
        .expect("linker/hyp.ld exists");
    println!("cargo:rerun-if-changed={}", script.display());
    if std::env::var("TARGET").unwrap() == "aarch64-unknown-none-softfloat" {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
