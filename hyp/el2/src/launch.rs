//! Starting the VMs the boot bundle's manifest lists.
//!
//! A VM whose manifest entry or images are wrong is reported, naming the VM
//! and the problem, and skipped; the others start regardless.
//!
//! Started VMs are kept here until they stop: a VM whose vCPUs all wait
//! for input holds no other reference, and must not vanish.

use crate::vm::{Hardware, Vm};
use addr::PhysRange;
use alloc::sync::Arc;
use alloc::vec::Vec;
use log::{error, info, warn};
use manifest::{Bundle, Manifest};
use spin::mutex::SpinMutex;

/// The VMs started and not yet stopped.
static RUNNING: SpinMutex<Vec<Arc<Vm>>> = SpinMutex::new(Vec::new());

/// `vm` has stopped: it leaves the list of running VMs (and is freed once
/// the physical CPUs let go of it).
pub fn vm_stopped(vm: &Arc<Vm>) {
    RUNNING.lock().retain(|v| !Arc::ptr_eq(v, vm));
}

/// Creates and starts every VM in the bundle at `region`; returns how many
/// started.
///
/// # Safety
///
/// `region` must be mapped, hold the boot bundle QEMU loaded, and stay
/// untouched (outside the heap) for the hypervisor's life.
pub unsafe fn start_all(region: PhysRange, hw: Hardware) -> usize {
    // SAFETY: Guaranteed by the caller.
    let bytes: &'static [u8] = unsafe {
        core::slice::from_raw_parts(region.start().get() as *const u8, region.size() as usize)
    };
    let bundle = match Bundle::parse(bytes) {
        Ok(bundle) => bundle,
        Err(e) => {
            error!("{e}; no VMs started");
            return 0;
        }
    };
    let text = match bundle.manifest() {
        Ok(text) => text,
        Err(e) => {
            error!("{e}; no VMs started");
            return 0;
        }
    };
    let manifest = match Manifest::parse(text) {
        Ok(manifest) => manifest,
        Err(e) => {
            error!("manifest: {e}; no VMs started");
            return 0;
        }
    };
    info!(
        "boot bundle: {} VM(s) in the manifest, {} image(s)",
        manifest.vms.len(),
        bundle.entries().count().saturating_sub(1)
    );
    // Create them all, then start them all: they run side by side from
    // the start instead of the first ones finishing while the last are
    // still being loaded.
    let mut created = alloc::vec::Vec::new();
    for entry in &manifest.vms {
        let spec = match &entry.spec {
            Ok(spec) => spec,
            Err(e) => {
                error!(
                    "vm \"{}\": manifest line {}: {e}; not started",
                    entry.name, entry.line
                );
                continue;
            }
        };
        match Vm::create(spec, &bundle, hw) {
            Ok(vm) => {
                let (pa, size) = vm.ram_pa();
                info!(
                    "vm \"{}\": {} vCPU(s), {} MiB of RAM at PA {pa:#x}..{:#x}, kernel \"{}\"{}",
                    vm.name,
                    vm.vcpus.len(),
                    size >> 20,
                    pa + size,
                    spec.kernel,
                    if spec.bootargs.is_empty() {
                        alloc::string::String::new()
                    } else {
                        alloc::format!(", bootargs \"{}\"", spec.bootargs)
                    }
                );
                created.push(vm);
            }
            Err(e) => error!("vm \"{}\": {e}; not started", spec.name),
        }
    }
    if created.is_empty() {
        warn!("no VM could be started");
    }
    RUNNING.lock().extend(created.iter().cloned());
    for vm in &created {
        vm.start();
    }
    created.len()
}
