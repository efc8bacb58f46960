//! Reading the bench guest's console: its `BENCH` lines (see
//! `guest-images/bench-guest/README.md`), whether it finished, and what the
//! KVM reference host said about itself; and the report of the
//! `qemu-el-count` plugin (`tools/el-count`) on the same run.
//!
//! The same guest prints under both hypervisors; under ours each console
//! line carries the VM's name (`[bench] BENCH ...`), under KVM the VMM
//! prints the guest's lines as they are, among the host kernel's.

use std::fmt;

use regex::Regex;

/// One benchmark's result, as the guest printed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// Measured: `total` counter ticks over `iterations` operations.
    Ticks {
        /// Measured operations.
        iterations: u64,
        /// Counter ticks over all of them.
        total: u64,
    },
    /// The hypervisor does not offer the hook the benchmark needs.
    Unsupported,
    /// The benchmark went wrong; the guest's reason.
    Error(String),
}

impl Measure {
    /// Ticks per operation, if measured.
    pub fn per_op(&self) -> Option<f64> {
        match self {
            Self::Ticks { iterations, total } if *iterations > 0 => {
                Some(*total as f64 / *iterations as f64)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ticks { iterations, total } => write!(
                f,
                "{:.2} ticks/op ({total} over {iterations})",
                *total as f64 / (*iterations).max(1) as f64
            ),
            Self::Unsupported => f.write_str("unsupported"),
            Self::Error(why) => write!(f, "error: {why}"),
        }
    }
}

/// Everything read from one run's console.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GuestRun {
    /// The benchmarks in the order the guest ran them.
    pub results: Vec<(String, Measure)>,
    /// CNTFRQ_EL0 as the guest read it.
    pub cntfrq: Option<u64>,
    /// Warm-up iterations per benchmark.
    pub warmup: Option<u64>,
    /// Whether `BENCH done` came.
    pub done: bool,
    /// `BENCH-FAIL` lines and malformed `BENCH` lines.
    pub problems: Vec<String>,
    /// Host-side facts, for the KVM run: the kernel's `Linux version` line.
    pub host_kernel: Option<String>,
    /// Whether the host kernel said KVM runs in VHE mode.
    pub vhe: bool,
    /// KVM's halt-polling limit as the VMM read it.
    pub halt_poll_ns: Option<u64>,
    /// The VMM's last word: `guest ended: ...`.
    pub vmm_end: Option<String>,
    /// What `qemu-el-count` counted, if the run had it.
    pub levels: Option<LevelReport>,
}

impl GuestRun {
    /// The result of benchmark `name`, if the guest printed one.
    pub fn get(&self, name: &str) -> Option<&Measure> {
        self.results
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, measure)| measure)
    }

    /// Whether the run finished with every benchmark measured or
    /// unsupported (an `error` result or a problem line is a failure).
    pub fn succeeded(&self) -> bool {
        self.done
            && self.problems.is_empty()
            && self
                .results
                .iter()
                .all(|(_, m)| !matches!(m, Measure::Error(_)))
    }
}

/// Reads console lines one at a time.
#[derive(Debug)]
pub struct Parser {
    line: Regex,
    measured: Regex,
    info: Regex,
    vhe: Regex,
    halt_poll: Regex,
    run: GuestRun,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            // An optional `[vm] ` prefix from the hypervisor's console.
            line: Regex::new(r"^(?:\[[^\]]*\] )?(BENCH|BENCH-FAIL|bench-guest:) (.*)$")
                .expect("valid regex"),
            measured: Regex::new(r"^(\S+) (\d+) (\d+) (\d+\.\d+)$").expect("valid regex"),
            info: Regex::new(r"cntfrq=(\d+) .*warmup=(\d+)").expect("valid regex"),
            vhe: Regex::new(r"kvm \[\d+\]: VHE mode initialized successfully")
                .expect("valid regex"),
            halt_poll: Regex::new(r"^kvm-vmm: booting .*kvm\.halt_poll_ns=(\d+)")
                .expect("valid regex"),
            run: GuestRun::default(),
        }
    }
}

impl Parser {
    /// Takes one console line. Carriage returns at its end are dropped:
    /// under KVM the guest's `\r\n` passes through the host's tty, which
    /// turns the `\n` into another `\r\n`.
    pub fn feed(&mut self, line: &str) {
        let line = line.trim_end_matches('\r');
        if self.vhe.is_match(line) {
            self.run.vhe = true;
        }
        if let Some(at) = line.find("Linux version ") {
            self.run
                .host_kernel
                .get_or_insert_with(|| line[at..].trim().to_owned());
        }
        if let Some(captures) = self.halt_poll.captures(line) {
            self.run.halt_poll_ns = captures[1].parse().ok();
        }
        if let Some(end) = line.strip_prefix("kvm-vmm: guest ended: ") {
            self.run.vmm_end = Some(end.to_owned());
        }
        let Some(captures) = self.line.captures(line) else {
            return;
        };
        let rest = &captures[2];
        match &captures[1] {
            "BENCH-FAIL" => self.run.problems.push(format!("BENCH-FAIL {rest}")),
            "bench-guest:" => {
                if let Some(info) = self.info.captures(rest) {
                    self.run.cntfrq = info[1].parse().ok();
                    self.run.warmup = info[2].parse().ok();
                }
            }
            _ => self.bench_line(rest),
        }
    }

    /// The words after `BENCH `.
    fn bench_line(&mut self, rest: &str) {
        if rest == "done" {
            self.run.done = true;
            return;
        }
        let measure = if let Some(captures) = self.measured.captures(rest) {
            let numbers = (captures[2].parse(), captures[3].parse());
            match numbers {
                (Ok(iterations), Ok(total)) if iterations > 0 => {
                    Some((captures[1].to_owned(), Measure::Ticks { iterations, total }))
                }
                _ => None,
            }
        } else if let Some(name) = rest.strip_suffix(" unsupported") {
            Some((name.to_owned(), Measure::Unsupported))
        } else {
            rest.split_once(" error ")
                .map(|(name, why)| (name.to_owned(), Measure::Error(why.to_owned())))
        };
        match measure {
            Some((name, _)) if name.contains(char::is_whitespace) => {
                self.run.problems.push(format!("malformed: BENCH {rest}"));
            }
            Some(result) => self.run.results.push(result),
            None => self.run.problems.push(format!("malformed: BENCH {rest}")),
        }
    }

    /// What the lines said.
    pub fn finish(self) -> GuestRun {
        self.run
    }
}

/// Parses a whole console log.
pub fn parse(lines: &[String]) -> GuestRun {
    let mut parser = Parser::default();
    for line in lines {
        parser.feed(line);
    }
    parser.finish()
}

/// The exception levels, as `qemu-el-count` numbers them.
pub const LEVELS: usize = 4;
/// EL0, EL1, EL2: indices into [`Counts::insns`] and [`Counts::changes`].
pub const EL0: usize = 0;
/// See [`EL0`].
pub const EL1: usize = 1;
/// See [`EL0`].
pub const EL2: usize = 2;

/// Instructions executed at each exception level and changes from one
/// level to another, over every CPU of the machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Instructions, by level.
    pub insns: [u64; LEVELS],
    /// Changes of level, `[from][to]`.
    pub changes: [[u64; LEVELS]; LEVELS],
}

impl Counts {
    /// Exits: the guest (at EL1 on both sides) entering EL2.
    pub fn exits(&self) -> u64 {
        self.changes[EL1][EL2]
    }
}

/// One window's counts, added up over its `marks` start-end pairs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    /// Start-end pairs.
    pub marks: u64,
    /// Their counts.
    pub counts: Counts,
}

/// The report `qemu-el-count` writes at QEMU's exit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LevelReport {
    /// CPUs of the machine.
    pub vcpus: u32,
    /// The windows by name, in the guest's order.
    pub windows: Vec<(String, Window)>,
    /// The whole run.
    pub total: Counts,
    /// What the plugin found wrong.
    pub problems: Vec<String>,
}

impl LevelReport {
    /// The window named `name`.
    pub fn window(&self, name: &str) -> Option<&Window> {
        self.windows
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, window)| window)
    }
}

/// The first line of a report in the format read here.
const LEVEL_REPORT_HEADER: &str = "qemu-el-count 1";

/// Parses a `qemu-el-count` report: the header, `vcpus N`, `window NAME
/// marks=N el0=N .. el3=N [elA>elB=N ..]`, `total el0=N ..`, `problem
/// TEXT`, `verify ...`.
///
/// # Errors
///
/// Not that format: the line that is not, and why.
pub fn parse_level_report(text: &str) -> Result<LevelReport, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(LEVEL_REPORT_HEADER) => {}
        other => {
            return Err(format!(
                "starts with {other:?}, not `{LEVEL_REPORT_HEADER}`"
            ))
        }
    }
    let mut report = LevelReport::default();
    let mut total = None;
    for line in lines {
        let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
        let bad = |why: &str| format!("line `{line}`: {why}");
        match kind {
            "vcpus" => report.vcpus = rest.parse().map_err(|_| bad("not a number"))?,
            "window" => {
                let (name, fields) = rest.split_once(' ').ok_or_else(|| bad("no counts"))?;
                let mut window = Window::default();
                let mut marks = None;
                let counts = parse_counts(fields, |key, value| {
                    let known = key == "marks";
                    if known {
                        marks = Some(value);
                    }
                    known
                })
                .map_err(|why| bad(&why))?;
                window.marks = marks.ok_or_else(|| bad("no marks="))?;
                window.counts = counts;
                report.windows.push((name.to_owned(), window));
            }
            "total" => {
                total = Some(parse_counts(rest, |_, _| false).map_err(|why| bad(&why))?);
            }
            "problem" => report.problems.push(rest.to_owned()),
            "verify" => {}
            _ => return Err(bad("unknown line")),
        }
    }
    report.total = total.ok_or("no `total` line")?;
    Ok(report)
}

/// `el0=N el1=N el2=N el3=N` and any `elA>elB=N`; `other` takes the keys
/// these are not, and says whether it knew them.
fn parse_counts(fields: &str, mut other: impl FnMut(&str, u64) -> bool) -> Result<Counts, String> {
    let mut counts = Counts::default();
    let mut seen = [false; LEVELS];
    let level = |word: &str| {
        word.strip_prefix("el")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n < LEVELS)
    };
    for field in fields.split_whitespace() {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("`{field}` is not key=value"))?;
        let value: u64 = value
            .parse()
            .map_err(|_| format!("`{field}`: not a number"))?;
        if let Some(l) = level(key) {
            counts.insns[l] = value;
            seen[l] = true;
        } else if let Some((from, to)) = key
            .split_once('>')
            .and_then(|(a, b)| Some((level(a)?, level(b)?)))
        {
            counts.changes[from][to] = value;
        } else if !other(key, value) {
            return Err(format!("unknown key `{key}`"));
        }
    }
    if seen.contains(&false) {
        return Err("not every level counted".into());
    }
    Ok(counts)
}

/// Where two runs of the same side disagree: the benchmarks whose results
/// (or counts by exception level) differ, with both.
pub fn differences(a: &GuestRun, b: &GuestRun) -> Vec<String> {
    let mut out = Vec::new();
    for (name, measure) in &a.results {
        match b.get(name) {
            Some(other) if other == measure => {}
            Some(other) => out.push(format!("{name}: {measure} vs {other}")),
            None => out.push(format!("{name}: {measure} vs missing")),
        }
    }
    for (name, measure) in &b.results {
        if a.get(name).is_none() {
            out.push(format!("{name}: missing vs {measure}"));
        }
    }
    let (la, lb) = (a.levels.as_ref(), b.levels.as_ref());
    let names = la
        .into_iter()
        .chain(lb)
        .flat_map(|report| report.windows.iter().map(|(name, _)| name.as_str()));
    let mut compared = Vec::new();
    for name in names {
        if compared.contains(&name) {
            continue;
        }
        compared.push(name);
        let wa = la.and_then(|r| r.window(name));
        let wb = lb.and_then(|r| r.window(name));
        if wa != wb {
            let show = |w: Option<&Window>| {
                w.map_or_else(
                    || "missing".into(),
                    |w| {
                        format!(
                            "EL2 {} EL1 {} EL0 {} exits {}",
                            w.counts.insns[EL2],
                            w.counts.insns[EL1],
                            w.counts.insns[EL0],
                            w.counts.exits()
                        )
                    },
                )
            };
            out.push(format!("{name} by level: {} vs {}", show(wa), show(wb)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn hypervisor_console_lines_are_read() {
        let run = parse(&lines(
            "[cpu0] INFO  vm \"bench\": VMID 1\n\
             [bench] bench-guest: cntfrq=1000000000 vcpus=2 iterations=8 warmup=1 gicd_iidr=0x4800043b bootargs=\"iterations=8\"\n\
             [bench] BENCH loop-nop 8 24 3.00\n\
             [bench] BENCH hvc-null 8 20372 2546.50\n\
             [bench] BENCH vcpu-migrate unsupported\n\
             [bench] BENCH done\n",
        ));
        assert_eq!(run.cntfrq, Some(1_000_000_000));
        assert_eq!(run.warmup, Some(1));
        assert!(run.done && run.succeeded());
        assert_eq!(
            run.get("hvc-null"),
            Some(&Measure::Ticks {
                iterations: 8,
                total: 20372
            })
        );
        assert_eq!(run.get("hvc-null").unwrap().per_op(), Some(2546.5));
        assert_eq!(run.get("vcpu-migrate"), Some(&Measure::Unsupported));
        assert_eq!(run.results.len(), 3);
        assert!(!run.vhe);
    }

    #[test]
    fn kvm_host_lines_are_read() {
        let run = parse(&lines(
            "[    0.000000] Linux version 6.1.0-56-cloud-arm64 (debian-kernel@lists.debian.org) #1 SMP\n\
             [    0.113877] kvm [1]: VHE mode initialized successfully\n\
             kvm-vmm: booting /bench-guest.bin under KVM: 2 vCPUs, 64 MiB, bootargs \"\"; kvm.halt_poll_ns=500000\n\
             BENCH mmio-virtio 4 22000 5500.00\r\r\n\
             BENCH done\n\
             kvm-vmm: guest ended: SYSTEM_OFF; MMIO exits answered: 1 reads, 2 writes, 0 to no device\n",
        ));
        assert!(run.vhe);
        assert_eq!(run.halt_poll_ns, Some(500_000));
        assert!(run
            .host_kernel
            .as_deref()
            .unwrap()
            .starts_with("Linux version 6.1.0-56-cloud-arm64"));
        assert!(run.vmm_end.as_deref().unwrap().starts_with("SYSTEM_OFF"));
        assert!(run.succeeded());
    }

    #[test]
    fn failures_are_failures() {
        let run = parse(&lines(
            "BENCH virtual-ipi error timed out waiting for an SGI\nBENCH done\n",
        ));
        assert_eq!(
            run.get("virtual-ipi"),
            Some(&Measure::Error("timed out waiting for an SGI".into()))
        );
        assert!(!run.succeeded());
        let run = parse(&lines(
            "BENCH-FAIL device tree: no /cpus/cpu node with a reg\n",
        ));
        assert!(!run.done && !run.succeeded());
        assert_eq!(run.problems.len(), 1);
        let run = parse(&lines(
            "BENCH hvc-null 0 5 1.00\nBENCH what is this\nBENCH done\n",
        ));
        assert_eq!(run.problems.len(), 2, "{:?}", run.problems);
        assert!(!run.succeeded());
    }

    #[test]
    fn runs_are_compared_result_by_result() {
        let a = parse(&lines("BENCH a 2 10 5.00\nBENCH b unsupported\n"));
        let b = parse(&lines(
            "BENCH a 2 12 6.00\nBENCH b unsupported\nBENCH c 1 1 1.00\n",
        ));
        assert!(differences(&a, &a).is_empty());
        let diff = differences(&a, &b);
        assert_eq!(diff.len(), 2, "{diff:?}");
        assert!(diff[0].starts_with("a: 5.00 ticks/op"));
        assert!(diff[1].starts_with("c: missing"));
    }

    const LEVELS_TEXT: &str = "qemu-el-count 1\n\
        vcpus 2\n\
        window loop-nop marks=1 el0=0 el1=196611 el2=0 el3=0\n\
        window hvc-null marks=1 el0=0 el1=393219 el2=18415616 el3=0 el1>el2=65536 el2>el1=65536\n\
        total el0=5 el1=4150922 el2=46263151 el3=0 el0>el2=3 el1>el2=131500 el2>el1=131501\n\
        verify blocks=10 mismatches=0\n";

    #[test]
    fn the_plugin_report_is_read() {
        let report = parse_level_report(LEVELS_TEXT).unwrap();
        assert_eq!(report.vcpus, 2);
        assert_eq!(report.windows.len(), 2);
        let hvc = report.window("hvc-null").unwrap();
        assert_eq!(hvc.marks, 1);
        assert_eq!(hvc.counts.insns, [0, 393219, 18415616, 0]);
        assert_eq!(hvc.counts.exits(), 65536);
        assert_eq!(hvc.counts.changes[EL2][EL1], 65536);
        assert_eq!(report.total.changes[EL0][EL2], 3);
        assert!(report.problems.is_empty());
        let with_problem = format!("{LEVELS_TEXT}problem window x never ended\n");
        assert_eq!(
            parse_level_report(&with_problem).unwrap().problems,
            ["window x never ended"]
        );
    }

    #[test]
    fn a_malformed_plugin_report_says_where() {
        assert!(parse_level_report("").is_err());
        assert!(parse_level_report("qemu-el-count 2\ntotal el0=0 el1=0 el2=0 el3=0\n").is_err());
        // No total; a missing level; an unknown key; an unknown line.
        assert!(parse_level_report("qemu-el-count 1\nvcpus 1\n").is_err());
        let missing = "qemu-el-count 1\ntotal el0=0 el1=0 el2=0\n";
        assert!(parse_level_report(missing)
            .unwrap_err()
            .contains("not every level"));
        let unknown = "qemu-el-count 1\ntotal el0=0 el1=0 el2=0 el3=0 el9>el1=2\n";
        assert!(parse_level_report(unknown).unwrap_err().contains("el9>el1"));
        let window =
            "qemu-el-count 1\nwindow a el0=0 el1=0 el2=0 el3=0\ntotal el0=0 el1=0 el2=0 el3=0\n";
        assert!(parse_level_report(window).unwrap_err().contains("marks"));
        let line = "qemu-el-count 1\nwhat 1\ntotal el0=0 el1=0 el2=0 el3=0\n";
        assert!(parse_level_report(line)
            .unwrap_err()
            .contains("unknown line"));
    }

    #[test]
    fn runs_differing_only_by_level_counts_differ() {
        let mut a = parse(&lines("BENCH hvc-null 2 10 5.00\n"));
        let mut b = a.clone();
        a.levels = Some(parse_level_report(LEVELS_TEXT).unwrap());
        b.levels = Some(parse_level_report(&LEVELS_TEXT.replace("18415616", "18415617")).unwrap());
        assert!(differences(&a, &a).is_empty());
        let diff = differences(&a, &b);
        assert_eq!(diff.len(), 1, "{diff:?}");
        assert!(diff[0].starts_with("hvc-null by level: EL2 18415616"));
        b.levels = None;
        assert_eq!(differences(&a, &b).len(), 2);
    }
}
