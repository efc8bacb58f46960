//! What the plugin counts, the windows the guest marks, and the report.

use std::fmt::{self, Write as _};

/// The report's first line: its format and version.
pub const REPORT_HEADER: &str = "qemu-el-count 1";

/// Most problems a report lists; past that it only counts them.
const MAX_PROBLEMS: usize = 16;

/// An exception level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// EL0: applications (under KVM, the VMM).
    El0 = 0,
    /// EL1: an OS kernel (on both sides of the benchmark, the guest).
    El1 = 1,
    /// EL2: the hypervisor (under KVM with VHE, the host kernel).
    El2 = 2,
    /// EL3: firmware (absent on QEMU's `virt` without `secure=on`).
    El3 = 3,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [Level::El0, Level::El1, Level::El2, Level::El3];

    /// The level in a PSTATE value as AArch64 reads it (`cpsr` to GDB and
    /// to QEMU's plugins): bits [3:2], `M[3:2]` (Arm ARM, "SPSR_EL2").
    pub fn from_pstate(pstate: u64) -> Self {
        Self::ALL[((pstate >> 2) & 0b11) as usize]
    }

    /// 0 to 3.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "el{}", self.index())
    }
}

/// Instructions executed at each level and changes from one level to
/// another, summed over every CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Instructions, indexed by [`Level::index`].
    pub insns: [u64; 4],
    /// Changes of level, `changes[from][to]`.
    pub changes: [[u64; 4]; 4],
}

impl Counts {
    /// Instructions executed at `level`.
    pub fn insns(&self, level: Level) -> u64 {
        self.insns[level.index()]
    }

    /// Changes from `from` to `to`.
    pub fn changes(&self, from: Level, to: Level) -> u64 {
        self.changes[from.index()][to.index()]
    }

    /// What happened between `earlier` and these counts. Counters only
    /// grow, and wrap (after 2^64 instructions) rather than go backwards.
    pub fn since(&self, earlier: &Counts) -> Counts {
        let mut out = Counts::default();
        for i in 0..4 {
            out.insns[i] = self.insns[i].wrapping_sub(earlier.insns[i]);
            for j in 0..4 {
                out.changes[i][j] = self.changes[i][j].wrapping_sub(earlier.changes[i][j]);
            }
        }
        out
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Counts) {
        for i in 0..4 {
            self.insns[i] = self.insns[i].wrapping_add(other.insns[i]);
            for j in 0..4 {
                self.changes[i][j] = self.changes[i][j].wrapping_add(other.changes[i][j]);
            }
        }
    }

    /// `el0=N el1=N el2=N el3=N`, then `elA>elB=N` for every change of
    /// level that happened, lowest `from` first.
    fn fields(&self) -> String {
        let mut out = String::new();
        for level in Level::ALL {
            let _ = write!(out, " {level}={}", self.insns(level));
        }
        for from in Level::ALL {
            for to in Level::ALL {
                let n = self.changes(from, to);
                if n != 0 {
                    let _ = write!(out, " {from}>{to}={n}");
                }
            }
        }
        out
    }
}

/// The counts of every stretch marked with one name, added up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// How many start-end pairs were added in.
    pub marks: u64,
    /// Their counts.
    pub counts: Counts,
}

/// The windows of one run: the one open, if any, and the closed ones by
/// name, in the order their names first closed.
#[derive(Debug, Default)]
pub struct Windows {
    open: Option<(String, Counts)>,
    closed: Vec<(String, Window)>,
    problems: Vec<String>,
    problems_left_out: u64,
}

impl Windows {
    /// A window named `name` starts; `now` is the counts at that moment.
    /// A window still open is dropped, as a problem.
    pub fn start(&mut self, name: String, now: Counts) {
        if let Some((open, _)) = self.open.take() {
            self.problem(format!("window {name} started while {open} was open"));
        }
        self.open = Some((name, now));
    }

    /// The window named `name` ends at `now`. Ending a window that is not
    /// the open one is a problem, and adds nothing.
    pub fn end(&mut self, name: &str, now: Counts) {
        match self.open.take() {
            Some((open, start)) if open == name => {
                let delta = now.since(&start);
                match self.closed.iter_mut().find(|(n, _)| n == name) {
                    Some((_, window)) => {
                        window.marks += 1;
                        window.counts.add(&delta);
                    }
                    None => self.closed.push((
                        open,
                        Window {
                            marks: 1,
                            counts: delta,
                        },
                    )),
                }
            }
            Some((open, start)) => {
                self.problem(format!("window {name} ended while {open} was open"));
                self.open = Some((open, start));
            }
            None => self.problem(format!("window {name} ended but never started")),
        }
    }

    /// Records something that went wrong (a bad marker, say); the report
    /// lists the first few.
    pub fn problem(&mut self, what: String) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(what);
        } else {
            self.problems_left_out += 1;
        }
    }

    /// The closed windows, in order.
    pub fn closed(&self) -> &[(String, Window)] {
        &self.closed
    }

    /// The report: [`REPORT_HEADER`], `vcpus N`, a `window` line per name,
    /// a `total` line over the whole run, and a `problem` line for each
    /// problem (and a window still open at the end):
    ///
    /// ```text
    /// qemu-el-count 1
    /// vcpus 2
    /// window hvc-null marks=1 el0=0 el1=393230 el2=22216704 el3=0 el1>el2=65536 el2>el1=65536
    /// total el0=0 el1=4150922 el2=46263151 el3=0 el1>el2=131500 el2>el1=131501
    /// ```
    pub fn report(&self, vcpus: u32, total: &Counts) -> String {
        let mut out = format!("{REPORT_HEADER}\nvcpus {vcpus}\n");
        for (name, window) in &self.closed {
            let _ = writeln!(
                out,
                "window {name} marks={}{}",
                window.marks,
                window.counts.fields()
            );
        }
        let _ = writeln!(out, "total{}", total.fields());
        for problem in &self.problems {
            let _ = writeln!(out, "problem {problem}");
        }
        if self.problems_left_out > 0 {
            let _ = writeln!(out, "problem {} more", self.problems_left_out);
        }
        if let Some((name, _)) = &self.open {
            let _ = writeln!(out, "problem window {name} never ended");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(insns: [u64; 4], changes: &[(Level, Level, u64)]) -> Counts {
        let mut out = Counts {
            insns,
            ..Counts::default()
        };
        for &(from, to, n) in changes {
            out.changes[from.index()][to.index()] = n;
        }
        out
    }

    #[test]
    fn the_level_is_pstate_bits_3_2() {
        // EL1h, EL2h, EL0t, EL3h; the flags above do not matter.
        assert_eq!(Level::from_pstate(0x3c5), Level::El1);
        assert_eq!(Level::from_pstate(0x6000_03c9), Level::El2);
        assert_eq!(Level::from_pstate(0x8000_0000), Level::El0);
        assert_eq!(Level::from_pstate(0xd), Level::El3);
        assert_eq!(Level::El2.to_string(), "el2");
    }

    #[test]
    fn a_window_is_the_difference_and_repeats_add_up() {
        let mut windows = Windows::default();
        let a = counts([0, 100, 1000, 0], &[(Level::El1, Level::El2, 3)]);
        let b = counts(
            [5, 130, 1400, 0],
            &[(Level::El1, Level::El2, 5), (Level::El2, Level::El1, 2)],
        );
        windows.start("hvc-null".into(), a);
        windows.end("hvc-null", b);
        // The same name again: added to the first.
        windows.start("hvc-null".into(), b);
        windows.end("hvc-null", b);
        windows.start("loop-nop".into(), b);
        windows.end("loop-nop", b);
        let closed = windows.closed();
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].0, "hvc-null");
        assert_eq!(closed[0].1.marks, 2);
        assert_eq!(closed[0].1.counts.insns, [5, 30, 400, 0]);
        assert_eq!(closed[0].1.counts.changes(Level::El1, Level::El2), 2);
        assert_eq!(closed[0].1.counts.changes(Level::El2, Level::El1), 2);
        assert_eq!(closed[1].1.counts, Counts::default());
    }

    #[test]
    fn counters_that_wrap_still_subtract() {
        let start = counts([u64::MAX - 1, 0, 0, 0], &[]);
        let end = counts([3, 0, 0, 0], &[]);
        assert_eq!(end.since(&start).insns[0], 5);
    }

    #[test]
    fn unmatched_markers_are_problems_not_counts() {
        let mut windows = Windows::default();
        windows.end("a", Counts::default());
        windows.start("a".into(), Counts::default());
        windows.end("b", Counts::default());
        windows.start("c".into(), Counts::default());
        windows.end("c", Counts::default());
        windows.start("d".into(), Counts::default());
        let report = windows.report(1, &Counts::default());
        let problems: Vec<_> = report
            .lines()
            .filter(|l| l.starts_with("problem "))
            .collect();
        assert_eq!(
            problems,
            [
                "problem window a ended but never started",
                "problem window b ended while a was open",
                "problem window c started while a was open",
                "problem window d never ended",
            ]
        );
        assert_eq!(windows.closed().len(), 1);
    }

    #[test]
    fn problems_beyond_the_limit_are_counted() {
        let mut windows = Windows::default();
        for i in 0..MAX_PROBLEMS + 3 {
            windows.problem(format!("p{i}"));
        }
        let report = windows.report(1, &Counts::default());
        assert!(report.contains("problem p0\n"));
        assert!(!report.contains(&format!("problem p{MAX_PROBLEMS}\n")));
        assert!(report.contains("problem 3 more\n"));
    }

    #[test]
    fn the_report_lists_windows_then_the_total() {
        let mut windows = Windows::default();
        windows.start("hvc-null".into(), Counts::default());
        windows.end(
            "hvc-null",
            counts(
                [0, 6, 40, 0],
                &[(Level::El1, Level::El2, 2), (Level::El2, Level::El1, 2)],
            ),
        );
        let total = counts([1, 2, 3, 0], &[(Level::El0, Level::El2, 7)]);
        assert_eq!(
            windows.report(2, &total),
            "qemu-el-count 1\n\
             vcpus 2\n\
             window hvc-null marks=1 el0=0 el1=6 el2=40 el3=0 el1>el2=2 el2>el1=2\n\
             total el0=1 el1=2 el2=3 el3=0 el0>el2=7\n"
        );
    }
}
