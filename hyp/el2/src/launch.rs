//! Starting the VMs the boot bundle's manifest lists.
//!
//! A VM whose manifest entry or images are wrong is reported, naming the VM
//! and the problem, and skipped; the others start regardless.
//!
//! Started VMs are kept here until they stop: a VM whose vCPUs all wait
//! for input holds no other reference, and must not vanish. A VM whose
//! manifest entry says `after = "x"` is created and started when `x` stops
//! (and never, with a log line, if `x` could not be created).

use crate::lock::SpinMutex;
use crate::sched;
use crate::vm::{Hardware, Vm};
use addr::PhysRange;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use log::{error, info, warn};
use manifest::{Bundle, Manifest, VmSpec};
use spin::Once;

/// The VMs started and not yet stopped.
static RUNNING: SpinMutex<Vec<Arc<Vm>>> = SpinMutex::new(Vec::new());

/// VMs waiting for another to stop (`after`).
static WAITING: SpinMutex<Vec<VmSpec>> = SpinMutex::new(Vec::new());

/// What later VMs are created from.
static SOURCE: Once<(Bundle<'static>, Hardware)> = Once::new();

/// `vm` has stopped: it leaves the list of running VMs (and is freed once
/// the physical CPUs let go of it), and the VMs waiting for it start.
pub fn vm_stopped(vm: &Arc<Vm>) {
    RUNNING.lock().retain(|v| !Arc::ptr_eq(v, vm));
    let Some((bundle, hw)) = SOURCE.get() else {
        return;
    };
    for spec in take_waiting_for(&vm.name) {
        info!(
            "vm \"{}\": starting now that vm \"{}\" has stopped",
            spec.name, vm.name
        );
        if let Some(next) = create(&spec, bundle, *hw) {
            RUNNING.lock().push(next.clone());
            attach_console(&next);
            next.start();
        }
    }
}

/// Lets the console give `vm` input (in start order).
fn attach_console(vm: &Arc<Vm>) {
    let weak: Weak<Vm> = Arc::downgrade(vm);
    crate::console::attach(weak);
}

/// The VMs started and not yet stopped (for checks across VMs).
pub fn running() -> Vec<Arc<Vm>> {
    RUNNING.lock().clone()
}

/// Prints every running VM's vCPUs and the ID allocators' statistics (the
/// console's statistics key).
pub fn report_all() {
    let vms: Vec<Arc<Vm>> = RUNNING.lock().clone();
    for vm in &vms {
        sched::report(vm);
    }
    sched::report_ids();
}

fn take_waiting_for(name: &str) -> Vec<VmSpec> {
    let mut waiting = WAITING.lock();
    let (due, rest) = core::mem::take(&mut *waiting)
        .into_iter()
        .partition(|spec| spec.after.as_deref() == Some(name));
    *waiting = rest;
    due
}

/// Creates the VM `spec` describes, or logs why not and gives up on the
/// VMs waiting for it too.
fn create(spec: &VmSpec, bundle: &Bundle<'static>, hw: Hardware) -> Option<Arc<Vm>> {
    match Vm::create(spec, bundle, hw) {
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
            Some(vm)
        }
        Err(e) => {
            error!("vm \"{}\": {e}; not started", spec.name);
            let mut refused = alloc::vec![spec.name.clone()];
            while let Some(name) = refused.pop() {
                for later in take_waiting_for(&name) {
                    error!(
                        "vm \"{}\": not started: vm \"{name}\", which it runs after, did not start",
                        later.name
                    );
                    refused.push(later.name);
                }
            }
            None
        }
    }
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
    // still being loaded. Those that run after another wait.
    let mut created = Vec::new();
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
        if spec.after.is_some() {
            WAITING.lock().push(spec.clone());
        }
    }
    SOURCE.call_once(|| (bundle, hw));
    let Some((bundle, _)) = SOURCE.get() else {
        return 0;
    };
    for spec in manifest.vms.iter().filter_map(|e| e.spec.as_ref().ok()) {
        if spec.after.is_none() {
            if let Some(vm) = create(spec, bundle, hw) {
                created.push(vm);
            }
        }
    }
    if created.is_empty() {
        warn!("no VM could be started");
    }
    RUNNING.lock().extend(created.iter().cloned());
    for vm in &created {
        attach_console(vm);
        vm.start();
    }
    created.len()
}
