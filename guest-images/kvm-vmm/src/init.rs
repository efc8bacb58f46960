//! The VMM as a Linux initramfs's `/init` (PID 1): mounts what it needs,
//! takes its settings from the kernel command line, runs the guest and
//! powers the machine off, whatever happened (PID 1 must never exit).

use std::ffi::CStr;

use crate::{options, vm};

/// The file systems to mount: source, mount point, type.
const MOUNTS: &[(&CStr, &CStr, &CStr)] = &[
    (c"proc", c"/proc", c"proc"),
    (c"sysfs", c"/sys", c"sysfs"),
    (c"devtmpfs", c"/dev", c"devtmpfs"),
];

/// KVM's halt-polling limit, worth recording: a vCPU that polls keeps a
/// single-threaded emulator's other CPUs from running.
const HALT_POLL_NS: &str = "/sys/module/kvm/parameters/halt_poll_ns";

/// Runs the guest named on the kernel command line, then powers off.
pub fn run() -> ! {
    for (source, target, kind) in MOUNTS {
        // SAFETY: Every argument is a NUL-terminated string; no data.
        let result = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                kind.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if result != 0 {
            println!(
                "kvm-vmm: cannot mount {} on {}: {}",
                kind.to_string_lossy(),
                target.to_string_lossy(),
                std::io::Error::last_os_error()
            );
        }
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    match options::from_kernel_cmdline(&cmdline) {
        Ok(config) => {
            let halt_poll = std::fs::read_to_string(HALT_POLL_NS)
                .map_or_else(|e| format!("unknown ({e})"), |s| s.trim().to_owned());
            println!(
                "kvm-vmm: booting {} under KVM: {} vCPUs, {} MiB, bootargs \"{}\"; kvm.halt_poll_ns={halt_poll}",
                config.image.display(),
                config.vcpus,
                config.memory_mib,
                config.bootargs
            );
            crate::report(vm::run(&config, std::io::stdout()));
        }
        Err(e) => println!("kvm-vmm: the kernel command line: {e}"),
    }
    power_off()
}

fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; RB_POWER_OFF needs
    // CAP_SYS_BOOT, which PID 1 has.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // Only reached if reboot failed: PID 1 waits rather than exits (the
    // kernel would panic).
    println!(
        "kvm-vmm: power off failed: {}",
        std::io::Error::last_os_error()
    );
    loop {
        // SAFETY: pause takes no arguments.
        unsafe { libc::pause() };
    }
}
