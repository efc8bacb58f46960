//! Host test commands: `cargo test` and friends, run from the workspace root.
//!
//! Each is a row of [`HOST_TESTS`]. Their output streams to the terminal and
//! libtest's `test result:` lines (unit, integration and doc-tests alike) are
//! summed into the overall count.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use regex::Regex;

use crate::cargo;

/// One host test command.
#[derive(Debug)]
pub struct HostTest {
    /// Name shown in the report and matched by the `test FILTER`.
    pub name: &'static str,
    /// Program to run; `cargo` means the cargo that built this tool.
    pub program: &'static str,
    /// Its arguments.
    pub args: &'static [&'static str],
    /// Extra environment, e.g. `RUSTFLAGS` and a `CARGO_TARGET_DIR` of its own
    /// so that different flags do not invalidate the normal build.
    pub env: &'static [(&'static str, &'static str)],
    /// What its outcome counts as.
    pub kind: Kind,
}

/// How a host test command's outcome is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A test runner: its libtest `test result:` lines are summed.
    Tests,
    /// A check with no test cases of its own (formatting, lints): one test,
    /// passed if the command exits successfully.
    Check,
}

/// Every host test command. Add a row to add one; a command with flags of
/// its own gets a `CARGO_TARGET_DIR` of its own (relative paths are from the
/// workspace root).
pub const HOST_TESTS: &[HostTest] = &[
    // The workspace's default members: every host-testable crate, this tool
    // included. `--no-fail-fast` so one failing test binary does not hide the rest.
    HostTest {
        name: "cargo-test",
        program: "cargo",
        args: &["test", "--no-fail-fast"],
        env: &[],
        kind: Kind::Tests,
    },
    // The allocator's fast path racing a rollover, under every interleaving
    // loom explores (its preemption bound is set in the test itself).
    HostTest {
        name: "loom",
        program: "cargo",
        args: &["test", "-p", "id-alloc", "--test", "loom", "--release"],
        env: &[
            ("RUSTFLAGS", "--cfg loom"),
            ("CARGO_TARGET_DIR", "target/loom"),
        ],
        kind: Kind::Tests,
    },
    HostTest {
        name: "fmt",
        program: "cargo",
        args: &["fmt", "--all", "--check"],
        env: &[],
        kind: Kind::Check,
    },
    // Lints on both targets: the host build of every host-testable crate with
    // its tests, benches and examples, and the bare-metal build of the
    // hypervisor and every library it links, of its backend task program,
    // and of the Linux guest's counter-check.
    HostTest {
        name: "clippy-host",
        program: "cargo",
        args: &["clippy", "--all-targets", "--", "-D", "warnings"],
        env: &[],
        kind: Kind::Check,
    },
    HostTest {
        name: "clippy-hyp",
        program: "cargo",
        args: &[
            "clippy",
            "--target",
            "aarch64-unknown-none-softfloat",
            "-p",
            "hyp",
            "-p",
            "virtio-task",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
        kind: Kind::Check,
    },
    HostTest {
        name: "clippy-aarch64",
        program: "cargo",
        args: &[
            "clippy",
            "--target",
            "aarch64-unknown-none",
            "-p",
            "addr",
            "-p",
            "id-alloc",
            "-p",
            "platform",
            "-p",
            "syndrome",
            "-p",
            "counter-check",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
        kind: Kind::Check,
    },
];

/// Counts of host test cases.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Test cases that passed.
    pub passed: usize,
    /// Test cases that failed (a command that failed without reporting any
    /// failed case counts as one).
    pub failed: usize,
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
    }
}

/// Sums libtest's `test result: ok. 3 passed; 1 failed; ...` lines.
#[derive(Debug)]
pub struct SummaryParser {
    pattern: Regex,
    totals: Totals,
}

impl Default for SummaryParser {
    fn default() -> Self {
        Self {
            pattern: Regex::new(r"^test result: \w+\. (\d+) passed; (\d+) failed;")
                .expect("valid regex"),
            totals: Totals::default(),
        }
    }
}

impl SummaryParser {
    /// Feeds one output line.
    pub fn feed(&mut self, line: &str) {
        if let Some(captures) = self.pattern.captures(line.trim_end()) {
            // The regex guarantees digits; only absurd lengths could overflow.
            let count = |i: usize| captures[i].parse::<usize>().unwrap_or(usize::MAX);
            self.totals.passed += count(1);
            self.totals.failed += count(2);
        }
    }

    /// The sums so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }
}

/// Runs the selected host test commands, streaming their output.
///
/// # Errors
///
/// A command cannot be started at all.
pub fn run_all(filter: Option<&str>) -> Result<Totals> {
    let mut totals = Totals::default();
    for test in HOST_TESTS
        .iter()
        .filter(|test| filter.is_none_or(|f| test.name.contains(f)))
    {
        totals += run_one(test)?;
    }
    Ok(totals)
}

fn run_one(test: &HostTest) -> Result<Totals> {
    let mut command = if test.program == "cargo" {
        cargo::cargo_command()
    } else {
        let mut command = Command::new(test.program);
        command.current_dir(cargo::workspace_root());
        command
    };
    command.args(test.args).envs(test.env.iter().copied());
    let env: String = test
        .env
        .iter()
        .map(|(k, v)| format!("{k}={v:?} "))
        .collect();
    println!(
        "\nhost tests {}: {env}{}",
        test.name,
        cargo::describe(&command)
    );

    // stdout carries libtest's report; cargo's own progress stays on stderr.
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting host tests {}", test.name))?;
    let mut parser = SummaryParser::default();
    let stdout = child.stdout.take().context("no stdout pipe")?;
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        println!("{line}");
        parser.feed(&line);
    }
    let status = child.wait().context("waiting for host tests")?;
    let mut totals = parser.totals();
    if test.kind == Kind::Check {
        totals = if status.success() {
            Totals {
                passed: 1,
                failed: 0,
            }
        } else {
            Totals {
                passed: 0,
                failed: 1,
            }
        };
    } else if !status.success() && totals.failed == 0 {
        // A build error or a crashed test binary: no case reported failing,
        // but something did.
        totals.failed = 1;
    }
    println!(
        "host tests {}: {} passed, {} failed ({status})",
        test.name, totals.passed, totals.failed
    );
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_of_every_test_binary_and_doctests_are_summed() {
        let output = "\
running 2 tests
test a ... ok
test b ... ok

test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s

running 3 tests
test c ... FAILED
test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

   Doc-tests addr
running 4 tests
test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.20s
";
        let mut parser = SummaryParser::default();
        output.lines().for_each(|line| parser.feed(line));
        assert_eq!(
            parser.totals(),
            Totals {
                passed: 8,
                failed: 1
            }
        );
    }

    #[test]
    fn other_lines_are_ignored() {
        let mut parser = SummaryParser::default();
        for line in [
            "test test result: ok. 9 passed; 9 failed; ... ok",
            "3 passed, 1 failed",
            "running 0 tests",
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out",
        ] {
            parser.feed(line);
        }
        assert_eq!(parser.totals(), Totals::default());
    }

    #[test]
    fn table_names_are_unique() {
        let mut names: Vec<_> = HOST_TESTS.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), HOST_TESTS.len());
    }
}
