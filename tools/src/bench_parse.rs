//! Reading the bench guest's console: its `BENCH` lines (see
//! `guest-images/bench-guest/README.md`), whether it finished, and what the
//! KVM reference host said about itself.
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

/// Where two runs of the same side disagree: the benchmarks whose results
/// differ, with both.
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
}
