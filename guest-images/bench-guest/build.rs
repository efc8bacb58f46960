//! Links the bench guest with the guests' shared layout, `linker/guest.ld`,
//! which guest-rt's build script puts on the search path.

fn main() {
    if std::env::var("TARGET").unwrap() == "aarch64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-Tguest.ld");
    }
}
