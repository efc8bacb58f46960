//! Launching QEMU and watching its serial console.
//!
//! One function builds the command line ([`QemuConfig::command`]) for `run`,
//! the system tests and, later, the benchmarks, so they all boot the same
//! machine. The console is QEMU's stdout (`-nographic`); a reader thread hands
//! its bytes over a channel so the caller can enforce a deadline. QEMU's
//! stdin is the console's input: the terminal ([`Mode::Interactive`]),
//! nothing ([`Mode::Captured`]) or a script that types once given lines have
//! appeared ([`Mode::Scripted`]).

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use regex::Regex;

use crate::cargo::describe;
use crate::setup::QEMU;

/// The machine every boot uses: EL2 available, GICv3, an SMMUv3 for passthrough.
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3,iommu=smmuv3";

/// Guest RAM. Also used when dumping the DTB, so the dump describes the same machine.
pub const MEMORY: &str = "4G";

/// How long QEMU gets to exit after SIGTERM before it is killed outright.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// How long to keep reading after the observer asked to stop, so the lines
/// following e.g. a panic message still make it into the log.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for output still in the pipes after QEMU was killed.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// The pause between two bytes a script types: a fast typist. QEMU takes
/// stdin only as fast as the UART accepts it, but the hypervisor's console
/// is polled, and a person never sends a line in one burst.
const TYPING_GAP: Duration = Duration::from_millis(5);

/// One boot of the hypervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// Flat image for `-kernel` (see [`crate::image`]).
    pub kernel: PathBuf,
    /// Number of CPUs.
    pub smp: u32,
    /// Hypervisor command line for `-append`.
    pub append: Option<String>,
    /// A device tree to use instead of QEMU's own (`-dtb`).
    pub dtb: Option<PathBuf>,
    /// The boot bundle (`-initrd`): the manifest and the guest images.
    pub initrd: Option<PathBuf>,
    /// The host disk: a raw image, given to the hypervisor as a virtio-blk
    /// function on the PCIe root bus ([`disk_args`]).
    pub disk: Option<PathBuf>,
    /// Extra arguments, appended last.
    pub extra_args: Vec<String>,
}

impl QemuConfig {
    /// The QEMU command line for this boot.
    pub fn command(&self) -> Command {
        let mut command = Command::new(QEMU);
        command.args(machine_args(self.smp, ""));
        command.arg("-nographic").arg("-kernel").arg(&self.kernel);
        if let Some(append) = &self.append {
            command.arg("-append").arg(append);
        }
        if let Some(dtb) = &self.dtb {
            command.arg("-dtb").arg(dtb);
        }
        if let Some(initrd) = &self.initrd {
            command.arg("-initrd").arg(initrd);
        }
        if let Some(disk) = &self.disk {
            command.args(disk_args(disk));
        }
        // A reset (or a triple-fault-like wedge) ends the run instead of looping.
        command.arg("-no-reboot");
        command.args(&self.extra_args);
        command
    }
}

/// The host disk's arguments: the raw image as drive `hd0`, behind a
/// virtio-blk PCI function on the root bus. `disable-legacy=on` makes it a
/// modern-only device (device ID 0x1042): on the root bus QEMU would
/// otherwise make it transitional (0x1001) with a legacy I/O BAR, and the
/// hypervisor's driver (virtio-drivers' PCI transport) speaks virtio 1.x.
pub fn disk_args(image: &Path) -> [String; 4] {
    // QEMU's option parser takes `,,` for a comma inside a value.
    let file = image.display().to_string().replace(',', ",,");
    [
        "-drive".into(),
        format!("file={file},if=none,format=raw,id=hd0"),
        "-device".into(),
        "virtio-blk-pci,drive=hd0,disable-legacy=on".into(),
    ]
}

/// The PCI slots on QEMU's root bus for functions to pass through to VMs,
/// in the order [`passthrough_args`] fills them: `00:08.0` to `00:0b.0`,
/// which is what manifests name. Clear of the host bridge (00:00.0),
/// QEMU's default NIC (00:01.0) and the host disk (00:02.0), which take
/// the first free slots, with room for a few more host devices.
pub const PASSTHROUGH_SLOTS: [u8; 4] = [0x08, 0x09, 0x0a, 0x0b];

/// `edu`'s DMA mask: 48 bits, so its DMA engine takes any guest IPA (QEMU's
/// default is 28 bits, below guest RAM at 1 GiB).
const EDU_DMA_MASK: &str = "0xffffffffffff";

/// A PCI function to add to QEMU's root bus for a VM to be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassthroughDevice {
    /// QEMU's `edu` teaching device (1234:11e8): a DMA engine, an INTx
    /// line (INTA) and MSI; its DMA always goes through the SMMU.
    Edu,
    /// A virtio-blk disk on a raw image, modern only, whose DMA goes
    /// through the SMMU (`iommu_platform=on`; without it QEMU lets a
    /// virtio device bypass the IOMMU). It must not be the first virtio-blk
    /// function on the bus: the hypervisor takes that one as its own disk
    /// (with a host disk, which QEMU puts at 00:02.0, it never is).
    VirtioBlk(PathBuf),
}

/// The QEMU arguments adding `devices`, each in the next of
/// [`PASSTHROUGH_SLOTS`].
///
/// # Errors
///
/// More devices than slots.
pub fn passthrough_args(devices: &[PassthroughDevice]) -> Result<Vec<String>> {
    ensure!(
        devices.len() <= PASSTHROUGH_SLOTS.len(),
        "at most {} passthrough devices, got {}",
        PASSTHROUGH_SLOTS.len(),
        devices.len()
    );
    let mut args = Vec::new();
    for (device, slot) in devices.iter().zip(PASSTHROUGH_SLOTS) {
        let addr = format!("addr={slot:02x}.0");
        match device {
            PassthroughDevice::Edu => {
                args.push("-device".into());
                args.push(format!("edu,{addr},dma_mask={EDU_DMA_MASK}"));
            }
            PassthroughDevice::VirtioBlk(image) => {
                let file = image.display().to_string().replace(',', ",,");
                let id = format!("pt{slot:02x}");
                args.push("-drive".into());
                args.push(format!("file={file},if=none,format=raw,id={id}"));
                args.push("-device".into());
                args.push(format!(
                    "virtio-blk-pci,drive={id},disable-legacy=on,iommu_platform=on,{addr}"
                ));
            }
        }
    }
    Ok(args)
}

/// `-machine`, `-cpu`, `-smp`, `-m`; `machine_suffix` extends the machine options.
fn machine_args(smp: u32, machine_suffix: &str) -> Vec<String> {
    vec![
        "-machine".into(),
        format!("{MACHINE}{machine_suffix}"),
        "-cpu".into(),
        "max".into(),
        "-smp".into(),
        smp.to_string(),
        "-m".into(),
        MEMORY.into(),
    ]
}

/// Has QEMU write the DTB it would give a guest with `smp` CPUs to `out`.
///
/// # Errors
///
/// QEMU fails or writes nothing.
pub fn dump_dtb(smp: u32, out: &Path) -> Result<Vec<u8>> {
    let suffix = format!(",dumpdtb={}", out.display());
    let output = Command::new(QEMU)
        .args(machine_args(smp, &suffix))
        .arg("-nographic")
        .stdin(Stdio::null())
        .output()
        .context("running QEMU to dump its DTB")?;
    ensure!(
        output.status.success(),
        "QEMU could not dump its DTB ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).with_context(|| format!("reading {}", out.display()))
}

/// How a QEMU run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// QEMU exited by itself.
    Exited(ExitStatus),
    /// The deadline passed; QEMU was killed.
    TimedOut,
    /// The observer asked to stop; QEMU was killed.
    Stopped,
}

/// What the observer of the console wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep going until QEMU exits or the deadline passes.
    Continue,
    /// Read a little longer (for context), then kill QEMU.
    Stop,
}

/// The end of a run.
#[derive(Debug)]
pub struct Finished {
    /// How QEMU ended.
    pub exit: Exit,
    /// QEMU's own stderr (empty when it went to the terminal).
    pub stderr: String,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

/// Where QEMU's stdin and stderr go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The terminal: a developer can type to the console and use Ctrl-A X.
    Interactive,
    /// No input; stderr captured for the failure report.
    Captured,
    /// Input typed by a script, step by step; stderr captured.
    Scripted(&'static [Step]),
}

/// One step of a console script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Regexes that must each match a console line (in any order) after
    /// the previous step was typed, before this one is; empty for none.
    pub wait_for: &'static [&'static str],
    /// The bytes to type then.
    pub send: &'static [u8],
}

/// A console script being played: which step is next and what it still
/// waits for.
#[derive(Debug)]
struct Script {
    steps: std::slice::Iter<'static, Step>,
    /// The next step and its patterns not yet seen.
    waiting: Option<(&'static [u8], Vec<Regex>)>,
    splitter: LineSplitter,
}

impl Script {
    /// Compiles the script's patterns.
    fn new(steps: &'static [Step]) -> Result<Self> {
        for step in steps {
            for pattern in step.wait_for {
                Regex::new(pattern)
                    .with_context(|| format!("bad regex {pattern:?} in a script"))?;
            }
        }
        let mut script = Self {
            steps: steps.iter(),
            waiting: None,
            splitter: LineSplitter::default(),
        };
        script.advance();
        Ok(script)
    }

    /// Moves on to the next step.
    fn advance(&mut self) {
        self.waiting = self.steps.next().map(|step| {
            let patterns = step
                .wait_for
                .iter()
                // Checked in `new`.
                .filter_map(|pattern| Regex::new(pattern).ok())
                .collect();
            (step.send, patterns)
        });
    }

    /// Feeds console output; returns the bytes due to be typed, in order.
    /// Lines count only for the step waiting when they arrive, and the
    /// rest of a chunk after a step was typed counts for nothing: those
    /// lines were printed before the typing, so cannot answer it.
    fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut lines = self.splitter.push(bytes).into_iter();
        let mut due = Vec::new();
        while let Some((send, patterns)) = &mut self.waiting {
            if patterns.is_empty() {
                due.extend_from_slice(send);
                self.advance();
                continue;
            }
            if !due.is_empty() {
                break;
            }
            let Some(line) = lines.next() else {
                break;
            };
            patterns.retain(|pattern| !pattern.is_match(&line));
        }
        due
    }
}

enum Chunk {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
}

/// Runs `command` (a QEMU command line), handing every piece of its stdout to
/// `on_output` until QEMU exits, `timeout` passes, or `on_output` says stop.
///
/// # Errors
///
/// QEMU cannot be started or waited for.
pub fn run(
    mut command: Command,
    mode: Mode,
    timeout: Duration,
    mut on_output: impl FnMut(&[u8]) -> Flow,
) -> Result<Finished> {
    command.stdout(Stdio::piped());
    let mut script = None;
    match mode {
        Mode::Interactive => command.stdin(Stdio::inherit()).stderr(Stdio::inherit()),
        Mode::Captured => command.stdin(Stdio::null()).stderr(Stdio::piped()),
        Mode::Scripted(steps) => {
            script = Some(Script::new(steps)?);
            command.stdin(Stdio::piped()).stderr(Stdio::piped())
        }
    };
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", describe(&command)))?;
    // The typist: a thread, so a slow typing never holds up reading.
    let typist = child.stdin.take().map(|stdin| {
        let (sender, receiver) = mpsc::channel::<Vec<u8>>();
        spawn_typist(stdin, receiver);
        sender
    });
    let mut type_due = |bytes: &[u8]| {
        if let (Some(script), Some(typist)) = (script.as_mut(), typist.as_ref()) {
            let due = script.feed(bytes);
            if !due.is_empty() {
                // The typist is gone only once QEMU's stdin is closed.
                let _ = typist.send(due);
            }
        }
    };
    // A script's first step may wait for nothing.
    type_due(&[]);

    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        spawn_reader(stdout, sender.clone(), Chunk::Stdout);
    }
    if let Some(stderr) = child.stderr.take() {
        spawn_reader(stderr, sender.clone(), Chunk::Stderr);
    }
    // The channel disconnects once both readers hit end-of-file: QEMU is gone.
    drop(sender);

    let mut deadline = start.checked_add(timeout).unwrap_or(start + NO_LIMIT);
    let mut stopping = false;
    let mut stderr = Vec::new();
    let exit = loop {
        let now = Instant::now();
        if now >= deadline {
            terminate(&mut child)?;
            break if stopping {
                Exit::Stopped
            } else {
                Exit::TimedOut
            };
        }
        match receiver.recv_timeout(deadline - now) {
            Ok(Chunk::Stdout(bytes)) => {
                type_due(&bytes);
                if on_output(&bytes) == Flow::Stop && !stopping {
                    stopping = true;
                    deadline = deadline.min(Instant::now() + STOP_GRACE);
                }
            }
            Ok(Chunk::Stderr(bytes)) => stderr.extend_from_slice(&bytes),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => match wait_until(&mut child, deadline)? {
                Some(status) => break Exit::Exited(status),
                None => {
                    terminate(&mut child)?;
                    break Exit::TimedOut;
                }
            },
        }
    };
    // After a kill, collect what was still in flight (QEMU's last words on
    // stderr, the console's last lines); the readers end when the pipes close.
    if !matches!(exit, Exit::Exited(_)) {
        while let Ok(chunk) = receiver.recv_timeout(DRAIN_LIMIT) {
            match chunk {
                Chunk::Stdout(bytes) => {
                    on_output(&bytes);
                }
                Chunk::Stderr(bytes) => stderr.extend_from_slice(&bytes),
            }
        }
    }
    Ok(Finished {
        exit,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    })
}

/// Types each batch of bytes it receives into `stdin`, one byte at a time
/// with [`TYPING_GAP`] between them, until the channel or stdin closes.
fn spawn_typist(mut stdin: impl Write + Send + 'static, batches: mpsc::Receiver<Vec<u8>>) {
    thread::spawn(move || {
        for batch in batches {
            for byte in batch {
                if stdin
                    .write_all(&[byte])
                    .and_then(|()| stdin.flush())
                    .is_err()
                {
                    return;
                }
                thread::sleep(TYPING_GAP);
            }
        }
    });
}

fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    sender: mpsc::Sender<Chunk>,
    wrap: fn(Vec<u8>) -> Chunk,
) {
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send(wrap(buffer[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Waits for the child to exit, but not past `deadline`.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Stops QEMU: SIGTERM first, so it restores the terminal it put in raw mode,
/// then SIGKILL if it does not go.
fn terminate(child: &mut Child) -> Result<()> {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own
        // child, not yet reaped (we hold its `Child`), so it names no other process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        if wait_until(child, Instant::now() + TERM_GRACE)?.is_some() {
            return Ok(());
        }
    }
    // Already exited is fine; anything else is reported by wait().
    let _ = child.kill();
    child.wait().context("waiting for QEMU after killing it")?;
    Ok(())
}

/// Splits console bytes into lines, dropping the `\r` of `\r\n`.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes; returns the lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                lines.push(Self::to_line(&self.partial));
                self.partial.clear();
            } else {
                self.partial.push(byte);
            }
        }
        lines
    }

    /// The unterminated last line, if any.
    pub fn finish(&mut self) -> Option<String> {
        let line = (!self.partial.is_empty()).then(|| Self::to_line(&self.partial));
        self.partial.clear();
        line
    }

    fn to_line(bytes: &[u8]) -> String {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// What "no time limit" means for an interactive run: far enough.
const NO_LIMIT: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// `run`: boots `config`, copying the console to the terminal as it comes
/// and the terminal's keys to the console. `timeout` is the wall-clock
/// limit; without one, there is none when stdin is a terminal (someone is
/// there to quit) and [`crate::cli::DEFAULT_RUN_TIMEOUT`] otherwise.
/// Returns whether QEMU exited by itself with status 0.
///
/// # Errors
///
/// QEMU cannot be started.
pub fn run_interactive(config: &QemuConfig, timeout: Option<Duration>) -> Result<bool> {
    let command = config.command();
    println!("qemu: {}", describe(&command));
    let terminal = std::io::stdin().is_terminal();
    let timeout = match timeout {
        Some(timeout) => timeout,
        None if terminal => NO_LIMIT,
        None => crate::cli::DEFAULT_RUN_TIMEOUT,
    };
    if terminal {
        let limit = if timeout == NO_LIMIT {
            String::new()
        } else {
            format!("; killed after {} s", timeout.as_secs())
        };
        println!(
            "qemu: typing goes to the first VM; Ctrl-] then 1-9 sends it to that VM, \
             Ctrl-] ? lists the console keys; Ctrl-A X quits QEMU{limit}"
        );
    }
    let mut stdout = std::io::stdout();
    let finished = run(command, Mode::Interactive, timeout, |bytes| {
        // A closed terminal is no reason to stop the boot.
        let _ = stdout.write_all(bytes).and_then(|()| stdout.flush());
        Flow::Continue
    })?;
    match finished.exit {
        Exit::Exited(status) => {
            println!(
                "\nqemu: exited ({status}) after {:.1} s",
                finished.elapsed.as_secs_f64()
            );
            Ok(status.success())
        }
        Exit::TimedOut | Exit::Stopped => {
            println!(
                "\nqemu: still running after {} s; killed it (raise the limit with --timeout SECS)",
                timeout.as_secs()
            );
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_the_machine_and_the_optional_parts() {
        let config = QemuConfig {
            kernel: "/t/hyp.bin".into(),
            smp: 2,
            append: Some("hyp.fault=data-abort".into()),
            dtb: Some("/t/broken.dtb".into()),
            initrd: Some("/t/bundle.bin".into()),
            disk: Some("/t/a,b/disk.img".into()),
            extra_args: vec!["-s".into()],
        };
        let args: Vec<_> = config
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-machine",
                MACHINE,
                "-cpu",
                "max",
                "-smp",
                "2",
                "-m",
                "4G",
                "-nographic",
                "-kernel",
                "/t/hyp.bin",
                "-append",
                "hyp.fault=data-abort",
                "-dtb",
                "/t/broken.dtb",
                "-initrd",
                "/t/bundle.bin",
                "-drive",
                "file=/t/a,,b/disk.img,if=none,format=raw,id=hd0",
                "-device",
                "virtio-blk-pci,drive=hd0,disable-legacy=on",
                "-no-reboot",
                "-s",
            ]
        );
        let plain = QemuConfig {
            append: None,
            dtb: None,
            initrd: None,
            disk: None,
            extra_args: vec![],
            ..config
        };
        let args: Vec<_> = plain.command().get_args().map(|a| a.to_owned()).collect();
        assert!(!args
            .iter()
            .any(|a| a == "-append" || a == "-dtb" || a == "-initrd" || a == "-drive"));
    }

    #[test]
    fn passthrough_devices_take_the_fixed_slots_in_order() {
        let args = passthrough_args(&[
            PassthroughDevice::Edu,
            PassthroughDevice::VirtioBlk("/t/a,b.img".into()),
        ])
        .unwrap();
        assert_eq!(
            args,
            [
                "-device",
                "edu,addr=08.0,dma_mask=0xffffffffffff",
                "-drive",
                "file=/t/a,,b.img,if=none,format=raw,id=pt09",
                "-device",
                "virtio-blk-pci,drive=pt09,disable-legacy=on,iommu_platform=on,addr=09.0",
            ]
        );
        assert!(passthrough_args(&[]).unwrap().is_empty());
        assert!(passthrough_args(&vec![PassthroughDevice::Edu; 4]).is_ok());
        assert!(passthrough_args(&vec![PassthroughDevice::Edu; 5]).is_err());
    }

    #[test]
    fn lines_are_split_across_chunks_and_lose_their_carriage_return() {
        let mut splitter = LineSplitter::default();
        assert_eq!(splitter.push(b"[cpu0] INFO  he"), Vec::<String>::new());
        assert_eq!(splitter.push(b"llo\r\n[cpu1]"), ["[cpu0] INFO  hello"]);
        assert_eq!(splitter.push(b" x\n\n"), ["[cpu1] x", ""]);
        assert_eq!(splitter.push(b"tail"), Vec::<String>::new());
        assert_eq!(splitter.finish().as_deref(), Some("tail"));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn run_collects_output_and_exit_status() {
        let mut command = Command::new("sh");
        command.args(["-c", "printf 'a\\nb\\n'; echo oops >&2; exit 3"]);
        let mut seen = Vec::new();
        let finished = run(command, Mode::Captured, Duration::from_secs(20), |bytes| {
            seen.extend_from_slice(bytes);
            Flow::Continue
        })
        .unwrap();
        assert_eq!(seen, b"a\nb\n");
        assert_eq!(finished.stderr, "oops\n");
        let Exit::Exited(status) = finished.exit else {
            panic!("expected an exit, got {:?}", finished.exit);
        };
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn run_kills_at_the_deadline() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo started; exec sleep 30"]);
        let finished = run(command, Mode::Captured, Duration::from_millis(500), |_| {
            Flow::Continue
        })
        .unwrap();
        assert_eq!(finished.exit, Exit::TimedOut);
        assert!(finished.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn run_stops_when_asked() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo panicked; exec sleep 30"]);
        let finished = run(command, Mode::Captured, Duration::from_secs(60), |_| {
            Flow::Stop
        })
        .unwrap();
        assert_eq!(finished.exit, Exit::Stopped);
        assert!(finished.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn a_script_types_each_step_once_its_lines_have_appeared() {
        const STEPS: &[Step] = &[
            Step {
                wait_for: &[],
                send: b"first",
            },
            Step {
                wait_for: &[r"^\[a\] READY$", r"^\[b\] READY$"],
                send: b"hello\r",
            },
            Step {
                wait_for: &[r"ECHO hello"],
                send: b"\x1d2",
            },
            Step {
                wait_for: &[],
                send: b"world\r",
            },
        ];
        let mut script = Script::new(STEPS).unwrap();
        assert_eq!(script.feed(b""), b"first");
        assert_eq!(script.feed(b"[b] READY\n[a] REA"), b"");
        // Both lines of the step; a line after them in the same chunk was
        // printed before the typing, so it does not answer the next step.
        assert_eq!(script.feed(b"DY\n[a] ECHO hello\n"), b"hello\r");
        assert_eq!(script.feed(b"[a] ECHO hello\n"), b"\x1d2world\r");
        assert_eq!(script.feed(b"[a] ECHO hello\n"), b"");
    }

    #[test]
    fn a_bad_script_pattern_is_an_error() {
        const STEPS: &[Step] = &[Step {
            wait_for: &["("],
            send: b"",
        }];
        assert!(Script::new(STEPS).is_err());
    }

    #[test]
    fn run_types_the_script_into_stdin() {
        const STEPS: &[Step] = &[
            Step {
                wait_for: &["^ready$"],
                send: b"one\n",
            },
            Step {
                wait_for: &["^got one$"],
                send: b"two\n",
            },
        ];
        let mut command = Command::new("sh");
        command.args(["-c", "echo ready; read a; echo got $a; read b; echo got $b"]);
        let mut seen = Vec::new();
        let finished = run(
            command,
            Mode::Scripted(STEPS),
            Duration::from_secs(20),
            |bytes| {
                seen.extend_from_slice(bytes);
                Flow::Continue
            },
        )
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&seen), "ready\ngot one\ngot two\n");
        assert!(matches!(finished.exit, Exit::Exited(status) if status.success()));
    }
}
