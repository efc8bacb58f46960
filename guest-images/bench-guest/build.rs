//! Links the bench guest with its linker script, `linker/bench-guest.ld`.

use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../linker/bench-guest.ld")
        .canonicalize()
        .expect("linker/bench-guest.ld exists");
    println!("cargo:rerun-if-changed={}", script.display());
    if std::env::var("TARGET").unwrap() == "aarch64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
