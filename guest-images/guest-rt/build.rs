//! Puts `linker/` on the link search path of every crate that depends on
//! guest-rt, so that a guest links with `-Tguest.ld` (the guests' shared
//! layout, `linker/guest.ld`) from its own build script.

use std::path::PathBuf;

fn main() {
    let linker = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../linker")
        .canonicalize()
        .expect("linker/ exists");
    println!(
        "cargo:rerun-if-changed={}",
        linker.join("guest.ld").display()
    );
    println!("cargo:rustc-link-search=native={}", linker.display());
}
