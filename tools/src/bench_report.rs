//! The comparison: both sides' results side by side with the ratio
//! KVM / hypervisor, where each operation's instructions ran (by exception
//! level, from `qemu-el-count`), whether repeated runs agreed, and the
//! report files (`report.json`, `report.md`, `chart.svg`).
//!
//! Everything here is pure (strings in, strings out), so the formats are
//! tested on their own; [`crate::bench`] runs QEMU and writes the files.

use std::fmt::Write as _;

use crate::bench_parse::{differences, GuestRun, Measure, Window, EL0, EL1, EL2};

/// The calibration benchmarks: in the table, not in the chart.
const CALIBRATION: &[&str] = &["loop-nop", "counter-read"];

/// What each benchmark measures, for the table (the guest's README has
/// the details).
const DESCRIPTIONS: &[(&str, &str)] = &[
    ("loop-nop", "calibration: the measuring loop with one NOP"),
    (
        "counter-read",
        "calibration: two back-to-back counter reads",
    ),
    ("hvc-null", "null hypercall (HVC, answered NOT_SUPPORTED)"),
    (
        "mmio-virtio",
        "MMIO read of virtio-mmio slot 0 MagicValue (KVM: VMM in user space)",
    ),
    ("mmio-gicd", "MMIO read of GICD_IIDR (KVM: in-kernel vGIC)"),
    ("virtual-eoi", "acknowledge + EOI of a pending virtual SGI"),
    ("sgi-self", "self SGI: ICC_SGI1R_EL1 write (trapped) to EOI"),
    (
        "vtimer-latency",
        "virtual timer: CNTV_CVAL to the guest's acknowledge",
    ),
    (
        "virtual-ipi",
        "IPI ping-pong between two vCPUs waiting in WFI (round trip)",
    ),
    (
        "vcpu-migrate",
        "hypercall hook: migrate the vCPU to another physical CPU",
    ),
    ("vmid-rollover", "hypercall hook: force a VMID rollover"),
    (
        BLK_NOTIFY,
        "virtio-blk notify round trip, backend in the hypervisor: GET_ID request, \
         QueueNotify write (trapped) to the answer in the used ring (polled, no interrupt)",
    ),
];

/// The virtio queue notification benchmark: the guest's name for it. Our
/// side runs it twice, with the VM's `backend` in the hypervisor (in the
/// main run, row [`BLK_HYPERVISOR_ROW`]) and in an EL0 task (a run of its
/// own, row [`BLK_TASK_ROW`]); the KVM reference VMM has no virtio-blk, so
/// KVM's column is "n/a" ([`KVM_NO_DEVICE`]).
pub const BLK_NOTIFY: &str = "blk-notify";

/// The row of [`BLK_NOTIFY`] with `backend = "hypervisor"`.
pub const BLK_HYPERVISOR_ROW: &str = "blk-notify (backend in hypervisor)";

/// The row of [`BLK_NOTIFY`] with `backend = "task"`.
pub const BLK_TASK_ROW: &str = "blk-notify (backend in EL0 task)";

/// What [`BLK_TASK_ROW`] measures.
const BLK_TASK_WHAT: &str = "the same with backend = \"task\": the VM's virtio backends in an \
     unprivileged EL0 task, whose instructions count at EL0";

/// The benchmarks whose device the KVM reference VMM lacks (its
/// virtio-mmio slots are all empty): the guest calls them unsupported
/// there, and the report says "n/a".
pub const KVM_NO_DEVICE: &[&str] = &[BLK_NOTIFY];

/// Every benchmark the guest has, in its order.
pub fn names() -> impl Iterator<Item = &'static str> {
    DESCRIPTIONS.iter().map(|(name, _)| *name)
}

/// The description of benchmark `name`, or "".
pub fn description(name: &str) -> &'static str {
    DESCRIPTIONS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, d)| d)
}

/// One side of the comparison: every run of it, first run first.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Its name in the report.
    pub label: String,
    /// The QEMU command line.
    pub command: String,
    /// Each run's results and wall-clock seconds.
    pub runs: Vec<(GuestRun, f64)>,
}

impl Side {
    /// The first run's results (what the table shows).
    pub fn first(&self) -> Option<&GuestRun> {
        self.runs.first().map(|(run, _)| run)
    }

    /// How every later run differed from the first; empty if all agreed.
    pub fn disagreements(&self) -> Vec<String> {
        let Some(first) = self.first() else {
            return Vec::new();
        };
        self.runs
            .iter()
            .enumerate()
            .skip(1)
            .flat_map(|(i, (run, _))| {
                differences(first, run)
                    .into_iter()
                    .map(move |d| format!("run {}: {d}", i + 1))
            })
            .collect()
    }

    /// Whether every run finished cleanly.
    pub fn succeeded(&self) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|(run, _)| run.succeeded())
    }
}

/// Everything the report says.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Measured iterations per benchmark.
    pub iterations: u64,
    /// `qemu-system-aarch64 --version`'s first line.
    pub qemu: String,
    /// The machine both sides ran on, as QEMU options.
    pub machine: String,
    /// What makes counts deterministic (`-icount ...`, `-seed ...`).
    pub determinism_options: String,
    /// The hypervisor.
    pub ours: Side,
    /// Linux KVM as configured by default.
    pub kvm: Side,
    /// Linux KVM without halt polling, for `virtual-ipi` only, if run.
    pub kvm_no_poll: Option<Side>,
    /// The hypervisor with the bench VM's virtio backends in an EL0 task
    /// (`backend = "task"`), for [`BLK_NOTIFY`] only, if run.
    pub ours_task: Option<Side>,
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The benchmark.
    pub name: String,
    /// What it measures.
    pub what: &'static str,
    /// Whether KVM can run it: `false` shows "n/a" in KVM's column.
    pub kvm_applies: bool,
    /// The hypervisor's result.
    pub ours: Option<Measure>,
    /// KVM's result.
    pub kvm: Option<Measure>,
    /// The hypervisor's counts by exception level over what it measured.
    pub ours_levels: Option<Window>,
    /// KVM's.
    pub kvm_levels: Option<Window>,
}

/// One side's counts by exception level, per measured operation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerOp {
    /// Guest exits (EL1 to EL2) per operation.
    pub exits: f64,
    /// Instructions at EL2 per operation.
    pub el2: f64,
    /// Instructions at EL2 per exit, if there were exits.
    pub el2_per_exit: Option<f64>,
    /// Instructions at EL1 (the guest) per operation.
    pub el1: f64,
    /// Instructions at EL0 per operation (under KVM, the VMM).
    pub el0: f64,
    /// Entries into EL2 from EL0 per operation (under KVM, the VMM's
    /// system calls and faults).
    pub el0_to_el2: f64,
}

impl PerOp {
    /// `window`'s counts over the `measure`'s operations; `None` unless
    /// both are there.
    pub fn of(measure: Option<&Measure>, window: Option<&Window>) -> Option<Self> {
        let Some(Measure::Ticks { iterations, .. }) = measure else {
            return None;
        };
        let window = window?;
        let ops = *iterations as f64;
        let counts = &window.counts;
        let exits = counts.exits();
        Some(Self {
            exits: exits as f64 / ops,
            el2: counts.insns[EL2] as f64 / ops,
            el2_per_exit: (exits > 0).then(|| counts.insns[EL2] as f64 / exits as f64),
            el1: counts.insns[EL1] as f64 / ops,
            el0: counts.insns[EL0] as f64 / ops,
            el0_to_el2: counts.changes[EL0][EL2] as f64 / ops,
        })
    }
}

impl Row {
    /// The hypervisor's counts per operation.
    pub fn ours_per_op(&self) -> Option<PerOp> {
        PerOp::of(self.ours.as_ref(), self.ours_levels.as_ref())
    }

    /// KVM's counts per operation.
    pub fn kvm_per_op(&self) -> Option<PerOp> {
        PerOp::of(self.kvm.as_ref(), self.kvm_levels.as_ref())
    }

    /// KVM's ticks per operation over ours: above 1 means the hypervisor
    /// is cheaper.
    pub fn ratio(&self) -> Option<f64> {
        let ours = self.ours.as_ref()?.per_op()?;
        let kvm = self.kvm.as_ref()?.per_op()?;
        (ours > 0.0).then_some(kvm / ours)
    }
}

/// The name of the extra row for KVM without halt polling.
pub const NO_POLL_ROW: &str = "virtual-ipi (KVM halt polling off)";

impl Report {
    /// The rows: every benchmark either side printed, in the guest's order
    /// ([`BLK_NOTIFY`] as [`BLK_HYPERVISOR_ROW`], followed by
    /// [`BLK_TASK_ROW`] if that run was made), then the extra no-polling
    /// row if that run was made.
    pub fn rows(&self) -> Vec<Row> {
        let empty = GuestRun::default();
        let ours = self.ours.first().unwrap_or(&empty);
        let kvm = self.kvm.first().unwrap_or(&empty);
        let mut names: Vec<&str> = ours.results.iter().map(|(n, _)| n.as_str()).collect();
        for (name, _) in &kvm.results {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let task = self.ours_task.as_ref().and_then(Side::first);
        let mut rows: Vec<Row> = Vec::with_capacity(names.len() + 2);
        for name in names {
            let kvm_applies = !KVM_NO_DEVICE.contains(&name);
            rows.push(Row {
                name: if name == BLK_NOTIFY {
                    BLK_HYPERVISOR_ROW.to_owned()
                } else {
                    name.to_owned()
                },
                what: description(name),
                kvm_applies,
                ours: ours.get(name).cloned(),
                kvm: kvm.get(name).cloned().filter(|_| kvm_applies),
                ours_levels: window(ours, name),
                kvm_levels: window(kvm, name).filter(|_| kvm_applies),
            });
            if let (BLK_NOTIFY, Some(task)) = (name, task) {
                rows.push(task_row(task));
            }
        }
        // A task run whose row found no place (the main run lacks the
        // benchmark) still has its row.
        if let Some(task) = task {
            if !rows.iter().any(|row| row.name == BLK_TASK_ROW) {
                rows.push(task_row(task));
            }
        }
        if let Some(no_poll) = self.kvm_no_poll.as_ref().and_then(Side::first) {
            rows.push(Row {
                name: NO_POLL_ROW.to_owned(),
                what: "as virtual-ipi, KVM booted with kvm.halt_poll_ns=0",
                kvm_applies: true,
                ours: ours.get("virtual-ipi").cloned(),
                kvm: no_poll.get("virtual-ipi").cloned(),
                ours_levels: window(ours, "virtual-ipi"),
                kvm_levels: window(no_poll, "virtual-ipi"),
            });
        }
        rows
    }

    /// Every side that was run, in the report's order.
    pub fn sides(&self) -> impl Iterator<Item = &Side> {
        [
            Some(&self.ours),
            self.ours_task.as_ref(),
            Some(&self.kvm),
            self.kvm_no_poll.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// The counter frequency both sides saw, if they agree.
    pub fn cntfrq(&self) -> Option<u64> {
        let ours = self.ours.first()?.cntfrq?;
        (self.kvm.first()?.cntfrq? == ours).then_some(ours)
    }

    /// One line per side on whether its runs agreed.
    pub fn determinism(&self) -> Vec<String> {
        let mut out = Vec::new();
        for side in self.sides() {
            let runs = side.runs.len();
            let disagreements = side.disagreements();
            out.push(if runs < 2 {
                format!("{}: 1 run, not repeated", side.label)
            } else if disagreements.is_empty() {
                format!("{}: {runs} runs, every count identical", side.label)
            } else {
                format!(
                    "{}: {runs} runs DIFFER: {}",
                    side.label,
                    disagreements.join("; ")
                )
            });
        }
        out
    }
}

/// [`BLK_TASK_ROW`]: the task run's [`BLK_NOTIFY`]; KVM's column "n/a".
fn task_row(task: &GuestRun) -> Row {
    Row {
        name: BLK_TASK_ROW.to_owned(),
        what: BLK_TASK_WHAT,
        kvm_applies: false,
        ours: task.get(BLK_NOTIFY).cloned(),
        kvm: None,
        ours_levels: window(task, BLK_NOTIFY),
        kvm_levels: None,
    }
}

/// `run`'s plugin window for benchmark `name`.
fn window(run: &GuestRun, name: &str) -> Option<Window> {
    run.levels.as_ref()?.window(name).copied()
}

/// A cell: ticks per operation to two decimals, or what happened instead.
fn cell(measure: Option<&Measure>) -> String {
    match measure {
        Some(Measure::Ticks { .. }) => {
            format!("{:.2}", measure.and_then(Measure::per_op).unwrap_or(0.0))
        }
        Some(Measure::Unsupported) => "unsupported".into(),
        Some(Measure::Error(_)) => "error".into(),
        None => "-".into(),
    }
}

/// KVM's cell of `row`: "n/a" where KVM cannot run it.
fn kvm_cell(row: &Row) -> String {
    if row.kvm_applies {
        cell(row.kvm.as_ref())
    } else {
        NOT_APPLICABLE.into()
    }
}

/// What KVM's cells say for a benchmark it cannot run.
const NOT_APPLICABLE: &str = "n/a";

fn ratio_cell(row: &Row) -> String {
    row.ratio()
        .map_or_else(|| "-".into(), |r| format!("{r:.2}"))
}

/// The table for the terminal: benchmark, both columns, the ratio.
pub fn text_table(report: &Report) -> String {
    let rows = report.rows();
    let header = ["benchmark", "hypervisor", "KVM", "KVM/ours"];
    let cells: Vec<[String; 4]> = rows
        .iter()
        .map(|row| {
            [
                row.name.clone(),
                cell(row.ours.as_ref()),
                kvm_cell(row),
                ratio_cell(row),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: [&str; 4]| {
        let _ = writeln!(
            out,
            "{:<w0$}  {:>w1$}  {:>w2$}  {:>w3$}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        );
    };
    line(&mut out, header);
    for row in &cells {
        line(&mut out, [&row[0], &row[1], &row[2], &row[3]]);
    }
    out
}

/// The headings of the by-level columns, for one side.
const LEVEL_COLUMNS: [&str; 5] = ["exits", "EL2", "EL2/exit", "EL1", "EL0"];

/// One side's by-level cells: exits, EL2, EL2 per exit, EL1 and EL0, per
/// operation to two decimals ("-" where not measured).
fn level_cells(per_op: Option<PerOp>) -> [String; 5] {
    match per_op {
        Some(p) => [
            format!("{:.2}", p.exits),
            format!("{:.2}", p.el2),
            p.el2_per_exit
                .map_or_else(|| "-".into(), |v| format!("{v:.2}")),
            format!("{:.2}", p.el1),
            format!("{:.2}", p.el0),
        ],
        None => std::array::from_fn(|_| "-".into()),
    }
}

/// KVM's by-level cells of `row`: "n/a" where KVM cannot run it.
fn kvm_level_cells(row: &Row) -> [String; 5] {
    if row.kvm_applies {
        level_cells(row.kvm_per_op())
    } else {
        std::array::from_fn(|_| NOT_APPLICABLE.into())
    }
}

/// The second table for the terminal: per operation, each side's exits
/// (EL1 to EL2), instructions at EL2, at EL2 per exit, at EL1 and at EL0.
pub fn levels_table(report: &Report) -> String {
    let rows = report.rows();
    let mut cells: Vec<Vec<String>> = vec![std::iter::once("benchmark".to_owned())
        .chain(LEVEL_COLUMNS.iter().map(|c| c.to_string()))
        .chain(LEVEL_COLUMNS.iter().map(|c| c.to_string()))
        .collect()];
    for row in &rows {
        cells.push(
            std::iter::once(row.name.clone())
                .chain(level_cells(row.ours_per_op()))
                .chain(kvm_level_cells(row))
                .collect(),
        );
    }
    let columns = 1 + 2 * LEVEL_COLUMNS.len();
    let mut widths = vec![0; columns];
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let side_width = |i: usize| {
        widths[1 + i * LEVEL_COLUMNS.len()..1 + (i + 1) * LEVEL_COLUMNS.len()]
            .iter()
            .sum::<usize>()
            + 2 * (LEVEL_COLUMNS.len() - 1)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "instructions per operation by exception level (qemu-el-count; exits = EL1 -> EL2)"
    );
    let _ = writeln!(
        out,
        "{:w0$}  {:^w1$}  |  {:^w2$}",
        "",
        "hypervisor",
        "Linux KVM",
        w0 = widths[0],
        w1 = side_width(0),
        w2 = side_width(1)
    );
    for row in &cells {
        let mut line = format!("{:<w$}", row[0], w = widths[0]);
        for (i, cell) in row.iter().enumerate().skip(1) {
            let gap = if i == 1 + LEVEL_COLUMNS.len() {
                "  |  "
            } else {
                "  "
            };
            let _ = write!(line, "{gap}{cell:>w$}", w = widths[i]);
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// `report.md`.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# World-switch costs: the hypervisor and Linux KVM\n");
    let _ = writeln!(
        out,
        "Ticks per operation (CNTVCT_EL0), {} measured iterations each. \
         Both sides run on the same QEMU machine with `{}`: one tick is one \
         nanosecond of virtual time and one instruction executed by the \
         emulated machine (on any of its CPUs){}. KVM/ours above 1 means the \
         hypervisor is cheaper.\n",
        report.iterations,
        report.determinism_options,
        match report.cntfrq() {
            Some(hz) => format!("; CNTFRQ_EL0 = {hz} Hz on both"),
            None => "; the two sides saw different counter frequencies, so ticks differ".into(),
        }
    );
    let _ = writeln!(out, "| benchmark | what | hypervisor | KVM | KVM/ours |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|");
    for row in report.rows() {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            row.name,
            row.what,
            cell(row.ours.as_ref()),
            kvm_cell(&row),
            ratio_cell(&row)
        );
    }
    let _ = writeln!(out, "\n![ticks per operation](chart.svg)\n");
    let _ = writeln!(out, "## Where the instructions ran\n");
    let _ = writeln!(
        out,
        "Counted by the `qemu-el-count` QEMU plugin over the stretch each benchmark \
         measures (marked by the guest), on every CPU, per operation: exits (the \
         guest entering EL2 from EL1), instructions at EL2 (the hypervisor; under \
         KVM the VHE host kernel), at EL2 per exit, at EL1 (the guest) and at EL0 \
         (under KVM the VMM; ours: the VM's backend task, in the EL0-task row). An instruction that takes an exception counts where it \
         ran, so a trapped access counts here and not in the ticks. For `counter-read` \
         and `virtual-eoi` only the timed part of each iteration is counted; for \
         `vtimer-latency` the whole measured loop, the polling for the timer included.\n"
    );
    let _ = writeln!(
        out,
        "| benchmark | exits (ours) | EL2 (ours) | EL2/exit (ours) | EL1 (ours) | EL0 (ours) \
         | exits (KVM) | EL2 (KVM) | EL2/exit (KVM) | EL1 (KVM) | EL0 (KVM) | EL0->EL2 (KVM) |"
    );
    let _ = writeln!(
        out,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in report.rows() {
        let ours = level_cells(row.ours_per_op());
        let kvm = kvm_level_cells(&row);
        let el0_to_el2 = match row.kvm_per_op() {
            _ if !row.kvm_applies => NOT_APPLICABLE.into(),
            Some(p) => format!("{:.2}", p.el0_to_el2),
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {el0_to_el2} |",
            row.name,
            ours.join(" | "),
            kvm.join(" | ")
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "## Repeatability\n");
    for line in report.determinism() {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n## The runs\n");
    let _ = writeln!(out, "- QEMU: {}; machine `{}`", report.qemu, report.machine);
    for side in report.sides() {
        let walls: Vec<String> = side.runs.iter().map(|(_, s)| format!("{s:.1} s")).collect();
        let _ = writeln!(
            out,
            "- {}: `{}` (wall clock per run: {})",
            side.label,
            side.command,
            walls.join(", ")
        );
        if let Some(run) = side.first() {
            if let Some(kernel) = &run.host_kernel {
                let _ = writeln!(out, "  - host kernel: {kernel}");
                let _ = writeln!(
                    out,
                    "  - KVM in VHE mode: {}; kvm.halt_poll_ns = {}",
                    if run.vhe { "yes" } else { "NO" },
                    run.halt_poll_ns
                        .map_or_else(|| "unknown".into(), |n| n.to_string())
                );
            }
            for problem in &run.problems {
                let _ = writeln!(out, "  - problem: {problem}");
            }
            for (name, measure) in &run.results {
                if let Measure::Error(why) = measure {
                    let _ = writeln!(out, "  - `{name}` failed: {why}");
                }
            }
        }
    }
    out
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_f64(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.4}")
    } else {
        "null".into()
    }
}

fn json_measure(measure: Option<&Measure>) -> String {
    match measure {
        Some(m @ Measure::Ticks { iterations, total }) => format!(
            "{{\"iterations\": {iterations}, \"total_ticks\": {total}, \"ticks_per_op\": {}}}",
            json_f64(m.per_op().unwrap_or(f64::NAN))
        ),
        Some(Measure::Unsupported) => "\"unsupported\"".into(),
        Some(Measure::Error(why)) => format!("{{\"error\": {}}}", json_string(why)),
        None => "null".into(),
    }
}

fn json_levels(window: Option<&Window>, per_op: Option<PerOp>) -> String {
    let Some(window) = window else {
        return "null".into();
    };
    let c = &window.counts;
    let mut out = format!(
        "{{\"windows\": {}, \"instructions\": {{\"el0\": {}, \"el1\": {}, \"el2\": {}, \"el3\": {}}}, \
         \"exits\": {}, \"el2_to_el1\": {}, \"el0_to_el2\": {}, \"el2_to_el0\": {}",
        window.marks,
        c.insns[0],
        c.insns[1],
        c.insns[2],
        c.insns[3],
        c.exits(),
        c.changes[EL2][EL1],
        c.changes[EL0][EL2],
        c.changes[EL2][EL0]
    );
    if let Some(p) = per_op {
        let _ = write!(
            out,
            ", \"per_op\": {{\"exits\": {}, \"el2\": {}, \"el2_per_exit\": {}, \"el1\": {}, \"el0\": {}, \"el0_to_el2\": {}}}",
            json_f64(p.exits),
            json_f64(p.el2),
            p.el2_per_exit.map_or_else(|| "null".into(), json_f64),
            json_f64(p.el1),
            json_f64(p.el0),
            json_f64(p.el0_to_el2)
        );
    }
    out.push('}');
    out
}

fn json_side(side: &Side) -> String {
    let first = side.first();
    let walls: Vec<String> = side.runs.iter().map(|(_, s)| json_f64(*s)).collect();
    let disagreements: Vec<String> = side
        .disagreements()
        .iter()
        .map(|d| json_string(d))
        .collect();
    let mut out = format!(
        "{{\"label\": {}, \"command\": {}, \"runs\": {}, \"wall_seconds\": [{}], \
         \"completed\": {}, \"identical_across_runs\": {}, \"differences\": [{}]",
        json_string(&side.label),
        json_string(&side.command),
        side.runs.len(),
        walls.join(", "),
        side.succeeded(),
        side.runs.len() > 1 && disagreements.is_empty(),
        disagreements.join(", ")
    );
    if let Some(run) = first {
        if let Some(kernel) = &run.host_kernel {
            let _ = write!(
                out,
                ", \"host_kernel\": {}, \"vhe\": {}, \"halt_poll_ns\": {}",
                json_string(kernel),
                run.vhe,
                run.halt_poll_ns
                    .map_or_else(|| "null".into(), |n| n.to_string())
            );
        }
        let problems: Vec<String> = run.problems.iter().map(|p| json_string(p)).collect();
        let _ = write!(out, ", \"problems\": [{}]", problems.join(", "));
    }
    out.push('}');
    out
}

/// `report.json`.
pub fn json(report: &Report) -> String {
    let rows: Vec<String> = report
        .rows()
        .iter()
        .map(|row| {
            format!(
                "    {{\"name\": {}, \"description\": {}, \"hypervisor\": {}, \"kvm\": {}, \"kvm_over_hypervisor\": {}, \
                 \"hypervisor_levels\": {}, \"kvm_levels\": {}}}",
                json_string(&row.name),
                json_string(row.what),
                json_measure(row.ours.as_ref()),
                if row.kvm_applies {
                    json_measure(row.kvm.as_ref())
                } else {
                    json_string(NOT_APPLICABLE)
                },
                row.ratio().map_or_else(|| "null".into(), json_f64),
                json_levels(row.ours_levels.as_ref(), row.ours_per_op()),
                json_levels(row.kvm_levels.as_ref(), row.kvm_per_op())
            )
        })
        .collect();
    let mut sides = vec![
        format!("\"hypervisor\": {}", json_side(&report.ours)),
        format!("\"kvm\": {}", json_side(&report.kvm)),
    ];
    if let Some(side) = &report.kvm_no_poll {
        sides.push(format!("\"kvm_halt_poll_off\": {}", json_side(side)));
    }
    if let Some(side) = &report.ours_task {
        sides.push(format!("\"hypervisor_task_backend\": {}", json_side(side)));
    }
    format!(
        "{{\n  \"unit\": \"CNTVCT_EL0 ticks per operation; with -icount shift=0 one tick = 1 ns of virtual time = 1 instruction\",\n  \
         \"levels_unit\": \"qemu-el-count: instructions by exception level and changes of level over each benchmark's marked windows, on every CPU, added up (per_op: over the measured iterations); exits = EL1 to EL2\",\n  \
         \"iterations\": {},\n  \"cntfrq_hz\": {},\n  \"qemu\": {},\n  \"machine\": {},\n  \
         \"determinism_options\": {},\n  {},\n  \"benchmarks\": [\n{}\n  ]\n}}\n",
        report.iterations,
        report
            .cntfrq()
            .map_or_else(|| "null".into(), |hz| hz.to_string()),
        json_string(&report.qemu),
        json_string(&report.machine),
        json_string(&report.determinism_options),
        sides.join(",\n  "),
        rows.join(",\n")
    )
}

/// Escapes text for SVG.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Colours of the two sides' bars.
const OURS_COLOUR: &str = "#3a6ea5";
const KVM_COLOUR: &str = "#e07b39";

/// `chart.svg`: for every benchmark but the calibration ones, a bar per
/// side of its ticks per operation, on a logarithmic axis (they span four
/// orders of magnitude), each labelled with its value.
pub fn svg(report: &Report) -> String {
    let rows: Vec<Row> = report
        .rows()
        .into_iter()
        .filter(|row| !CALIBRATION.contains(&row.name.as_str()))
        .collect();
    let values = rows
        .iter()
        .flat_map(|row| [row.ours.as_ref(), row.kvm.as_ref()])
        .filter_map(|m| m.and_then(Measure::per_op));
    let max = values.fold(10.0_f64, f64::max);
    // The axis runs from 1 to the next power of ten.
    let decades = max.log10().ceil().max(1.0);
    let (left, plot_width, top, bar, gap, group) = (250.0, 560.0, 70.0, 14.0, 2.0, 44.0);
    let width = left + plot_width + 90.0;
    let height = top + group * rows.len() as f64 + 40.0;
    let x = |value: f64| left + plot_width * (value.max(1.0).log10() / decades);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"22\" font-size=\"15\" font-weight=\"bold\">World-switch costs: ticks per operation (log scale)</text>",
        left - 230.0
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"40\" fill=\"#555\">QEMU -icount shift=0: 1 tick = 1 instruction of the emulated machine; {} iterations; lower is cheaper</text>",
        left - 230.0,
        report.iterations
    );
    // Legend.
    for (i, (colour, label)) in [(OURS_COLOUR, "hypervisor"), (KVM_COLOUR, "Linux KVM (VHE)")]
        .into_iter()
        .enumerate()
    {
        let lx = left + 200.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{lx}\" y=\"50\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"60\">{label}</text>",
            lx + 16.0
        );
    }
    // Grid: one line per power of ten.
    let bottom = top + group * rows.len() as f64;
    for decade in 0..=(decades as u32) {
        let value = 10f64.powi(decade as i32);
        let gx = x(value);
        let label = match decade {
            0..=2 => format!("{value}"),
            3..=5 => format!("{}k", value / 1e3),
            _ => format!("{}M", value / 1e6),
        };
        let _ = writeln!(
            out,
            "<line x1=\"{gx}\" y1=\"{top}\" x2=\"{gx}\" y2=\"{bottom}\" stroke=\"#ddd\"/>\
             <text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{label}</text>",
            bottom + 16.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let gy = top + group * i as f64 + 6.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            gy + bar + 4.0,
            xml(&row.name)
        );
        for (j, (measure, colour, text)) in [
            (row.ours.as_ref(), OURS_COLOUR, cell(row.ours.as_ref())),
            (row.kvm.as_ref(), KVM_COLOUR, kvm_cell(row)),
        ]
        .into_iter()
        .enumerate()
        {
            let by = gy + (bar + gap) * j as f64;
            match measure.and_then(Measure::per_op) {
                Some(value) => {
                    let end = x(value);
                    let _ = writeln!(
                        out,
                        "<rect x=\"{left}\" y=\"{by}\" width=\"{:.1}\" height=\"{bar}\" fill=\"{colour}\"/>\
                         <text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{value:.1}</text>",
                        (end - left).max(1.0),
                        end + 4.0,
                        by + bar - 3.0
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#888\">{}</text>",
                        left + 4.0,
                        by + bar - 3.0,
                        xml(&text)
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_parse::parse;

    fn run(text: &str) -> GuestRun {
        parse(&text.lines().map(str::to_owned).collect::<Vec<_>>())
    }

    fn side(label: &str, texts: &[&str]) -> Side {
        Side {
            label: label.into(),
            command: format!("qemu {label}"),
            runs: texts.iter().map(|t| (run(t), 1.5)).collect(),
        }
    }

    const OURS: &str = "bench-guest: cntfrq=1000000000 vcpus=2 iterations=4 warmup=1 gicd_iidr=0x1\n\
                        BENCH loop-nop 4 12 3.00\nBENCH hvc-null 4 10000 2500.00\n\
                        BENCH virtual-ipi 4 40000 10000.00\nBENCH vcpu-migrate unsupported\nBENCH done\n";
    const KVM: &str = "bench-guest: cntfrq=1000000000 vcpus=2 iterations=4 warmup=1 gicd_iidr=0x2\n\
                       kvm [1]: VHE mode initialized successfully\n\
                       BENCH loop-nop 4 12 3.00\nBENCH hvc-null 4 4000 1000.00\n\
                       BENCH virtual-ipi 4 80000 20000.00\nBENCH vcpu-migrate unsupported\nBENCH done\n";

    fn report() -> Report {
        Report {
            iterations: 4,
            qemu: "QEMU emulator version 10.0.2".into(),
            machine: "virt".into(),
            determinism_options: "-icount shift=0,sleep=off -seed 1".into(),
            ours: side("hypervisor", &[OURS, OURS]),
            kvm: side(
                "Linux KVM",
                &[KVM, &KVM.replace("4 4000 1000.00", "4 4004 1001.00")],
            ),
            kvm_no_poll: Some(side(
                "Linux KVM, halt polling off",
                &["BENCH virtual-ipi 4 120000 30000.00\nBENCH done\n"],
            )),
            ours_task: None,
        }
    }

    /// `report()` with `blk-notify` on both of our runs (KVM: no device)
    /// and the plugin's counts for it.
    fn report_with_blk() -> Report {
        use crate::bench_parse::parse_level_report;
        let done = "BENCH done\n";
        let blk = |line: &str| OURS.replace(done, &format!("BENCH blk-notify {line}\n{done}"));
        let ours = blk("4 2000 500.00");
        let kvm = KVM.replace(done, &format!("BENCH blk-notify unsupported\n{done}"));
        let task = format!("BENCH blk-notify 4 6000 1500.00\n{done}");
        let mut report = Report {
            ours: side("hypervisor", &[&ours]),
            kvm: side("Linux KVM", &[&kvm]),
            ours_task: Some(side("hypervisor, task backend", &[&task, &task])),
            ..report()
        };
        let counts = |el0: u64, el2: u64| {
            parse_level_report(&format!(
                "qemu-el-count 1\nvcpus 2\n\
                 window blk-notify marks=1 el0={el0} el1=100 el2={el2} el3=0 el1>el2=4 el2>el1=4 el2>el0=4 el0>el2=8\n\
                 total el0=0 el1=1 el2=1 el3=0\n"
            ))
            .unwrap()
        };
        report.ours.runs[0].0.levels = Some(counts(0, 1600));
        for (run, _) in &mut report.ours_task.as_mut().unwrap().runs {
            run.levels = Some(counts(2000, 3600));
        }
        report
    }

    #[test]
    fn the_notification_round_trip_has_a_row_per_backend_and_none_for_kvm() {
        let report = report_with_blk();
        let rows = report.rows();
        let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "loop-nop",
                "hvc-null",
                "virtual-ipi",
                "vcpu-migrate",
                BLK_HYPERVISOR_ROW,
                BLK_TASK_ROW,
                NO_POLL_ROW
            ]
        );
        let (hyp, task) = (&rows[4], &rows[5]);
        assert!(!hyp.kvm_applies && !task.kvm_applies);
        assert_eq!((hyp.kvm.as_ref(), task.kvm.as_ref()), (None, None));
        assert_eq!(hyp.ours.as_ref().and_then(Measure::per_op), Some(500.0));
        assert_eq!(task.ours.as_ref().and_then(Measure::per_op), Some(1500.0));
        let per_op = task.ours_per_op().unwrap();
        assert_eq!((per_op.el0, per_op.el1, per_op.el2), (500.0, 25.0, 900.0));
        assert_eq!(hyp.ours_per_op().unwrap().el0, 0.0);
        assert_eq!(hyp.ratio(), None);

        let table = text_table(&report);
        let line = table.lines().find(|l| l.starts_with(BLK_TASK_ROW)).unwrap();
        assert!(line.contains("1500.00") && line.contains("n/a"), "{line}");
        let levels = levels_table(&report);
        let line = levels
            .lines()
            .find(|l| l.starts_with(BLK_TASK_ROW))
            .unwrap();
        let cells: Vec<_> = line[BLK_TASK_ROW.len()..].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "1.00", "900.00", "900.00", "25.00", "500.00", "|", "n/a", "n/a", "n/a", "n/a",
                "n/a"
            ]
        );

        let md = markdown(&report);
        assert!(md.contains(&format!(
            "| `{BLK_TASK_ROW}` | {BLK_TASK_WHAT} | 1500.00 | n/a | - |"
        )));
        assert!(
            md.contains("| `blk-notify (backend in hypervisor)` | virtio-blk notify round trip")
        );
        assert!(md.contains(
            "| `blk-notify (backend in EL0 task)` | 1.00 | 900.00 | 900.00 | 25.00 | 500.00 | n/a | n/a | n/a | n/a | n/a | n/a |"
        ));
        assert!(md.contains("hypervisor, task backend: 2 runs, every count identical"));
        let json = json(&report);
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        assert!(json.contains(&format!(
            "\"name\": \"{BLK_TASK_ROW}\", \"description\": {}, \"hypervisor\": {{\"iterations\": 4, \"total_ticks\": 6000, \
             \"ticks_per_op\": 1500.0000}}, \"kvm\": \"n/a\"",
            json_string(BLK_TASK_WHAT)
        )));
        assert!(
            json.contains("\"hypervisor_task_backend\": {\"label\": \"hypervisor, task backend\"")
        );
        let svg = svg(&report);
        assert!(svg.contains(&xml(BLK_TASK_ROW)));
        assert_eq!(svg.matches(">n/a<").count(), 2);
    }

    #[test]
    fn rows_pair_the_sides_and_ratios_are_kvm_over_ours() {
        let rows = report().rows();
        let names: Vec<_> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "loop-nop",
                "hvc-null",
                "virtual-ipi",
                "vcpu-migrate",
                NO_POLL_ROW
            ]
        );
        assert_eq!(rows[1].ratio(), Some(0.4));
        assert_eq!(rows[2].ratio(), Some(2.0));
        assert_eq!(rows[3].ratio(), None, "unsupported on both");
        assert_eq!(rows[4].ratio(), Some(3.0));
        assert_eq!(report().cntfrq(), Some(1_000_000_000));
    }

    #[test]
    fn repeated_runs_are_compared() {
        let lines = report().determinism();
        assert_eq!(lines[0], "hypervisor: 2 runs, every count identical");
        assert!(lines[1].starts_with("Linux KVM: 2 runs DIFFER: run 2: hvc-null: 1000.00"));
        assert_eq!(lines[2], "Linux KVM, halt polling off: 1 run, not repeated");
    }

    #[test]
    fn the_text_table_has_both_columns_and_the_ratio() {
        let table = text_table(&report());
        let lines: Vec<_> = table.lines().collect();
        assert!(lines[0].starts_with("benchmark"));
        assert!(lines[0].ends_with("KVM/ours"));
        let hvc = lines.iter().find(|l| l.starts_with("hvc-null")).unwrap();
        assert!(hvc.contains("2500.00") && hvc.contains("1000.00") && hvc.ends_with("0.40"));
        let migrate = lines
            .iter()
            .find(|l| l.starts_with("vcpu-migrate"))
            .unwrap();
        assert!(migrate.contains("unsupported") && migrate.ends_with('-'));
    }

    #[test]
    fn the_markdown_report_says_what_was_measured() {
        let md = markdown(&report());
        assert!(md.contains("| `hvc-null` | null hypercall"));
        assert!(md.contains("| 2500.00 | 1000.00 | 0.40 |"));
        assert!(md.contains("CNTFRQ_EL0 = 1000000000 Hz on both"));
        assert!(md.contains("hypervisor: 2 runs, every count identical"));
        assert!(md.contains("![ticks per operation](chart.svg)"));
    }

    #[test]
    fn the_json_report_is_well_formed() {
        let json = json(&report());
        // Balanced, and every row is there with its numbers.
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        assert_eq!(json.matches('[').count(), json.matches(']').count());
        assert!(json.contains(
            "\"name\": \"hvc-null\", \"description\": \"null hypercall (HVC, answered NOT_SUPPORTED)\", \
             \"hypervisor\": {\"iterations\": 4, \"total_ticks\": 10000, \"ticks_per_op\": 2500.0000}"
        ));
        assert!(json.contains("\"kvm_over_hypervisor\": 0.4000"));
        assert!(json.contains("\"kvm\": \"unsupported\""));
        assert!(json.contains("\"identical_across_runs\": true"));
        assert!(json.contains("\"cntfrq_hz\": 1000000000"));
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn the_chart_has_a_bar_per_measured_value_and_leaves_calibration_out() {
        let svg = svg(&report());
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains(">loop-nop<"));
        assert!(svg.contains(">hvc-null<"));
        // hvc-null, virtual-ipi and the no-poll row: two bars each.
        assert_eq!(
            svg.matches(&format!("fill=\"{OURS_COLOUR}\"/>")).count(),
            3 + 1
        );
        assert_eq!(
            svg.matches(&format!("fill=\"{KVM_COLOUR}\"/>")).count(),
            3 + 1
        );
        assert!(svg.contains(">unsupported<"));
        assert!(svg.contains(&xml(NO_POLL_ROW)));
    }

    /// `report()` with plugin counts: hvc-null 4 calls, 4 exits each side,
    /// 1000 / 3900 EL2 instructions; virtual-ipi on KVM with VMM entries.
    fn report_with_levels() -> Report {
        use crate::bench_parse::parse_level_report;
        let mut report = report();
        let ours = parse_level_report(
            "qemu-el-count 1\nvcpus 2\n\
             window hvc-null marks=1 el0=0 el1=40 el2=1000 el3=0 el1>el2=4 el2>el1=4\n\
             window loop-nop marks=1 el0=0 el1=12 el2=0 el3=0\n\
             total el0=0 el1=1 el2=1 el3=0\n",
        )
        .unwrap();
        let kvm = parse_level_report(
            "qemu-el-count 1\nvcpus 2\n\
             window hvc-null marks=1 el0=0 el1=40 el2=3900 el3=0 el1>el2=4 el2>el1=4\n\
             window virtual-ipi marks=1 el0=400 el1=80 el2=70000 el3=0 el0>el2=8 el1>el2=8 el2>el0=8 el2>el1=8\n\
             total el0=0 el1=1 el2=1 el3=0\n",
        )
        .unwrap();
        for (run, _) in &mut report.ours.runs {
            run.levels = Some(ours.clone());
        }
        for (run, _) in &mut report.kvm.runs {
            run.levels = Some(kvm.clone());
        }
        report
    }

    #[test]
    fn counts_by_level_are_per_operation_and_per_exit() {
        let rows = report_with_levels().rows();
        let hvc = rows.iter().find(|r| r.name == "hvc-null").unwrap();
        let ours = hvc.ours_per_op().unwrap();
        assert_eq!(ours.exits, 1.0);
        assert_eq!(ours.el2, 250.0);
        assert_eq!(ours.el2_per_exit, Some(250.0));
        assert_eq!(ours.el1, 10.0);
        assert_eq!(hvc.kvm_per_op().unwrap().el2, 975.0);
        let ipi = rows.iter().find(|r| r.name == "virtual-ipi").unwrap();
        assert_eq!(ipi.ours_per_op(), None, "no window on our side");
        let kvm = ipi.kvm_per_op().unwrap();
        assert_eq!((kvm.exits, kvm.el0, kvm.el0_to_el2), (2.0, 100.0, 2.0));
        assert_eq!(kvm.el2_per_exit, Some(8750.0));
        // The no-polling run had no plugin report.
        let no_poll = rows.iter().find(|r| r.name == NO_POLL_ROW).unwrap();
        assert!(no_poll.kvm_per_op().is_none() && no_poll.ours_per_op().is_none());
        // Calibration: no exits, so no instructions per exit.
        let nop = rows.iter().find(|r| r.name == "loop-nop").unwrap();
        assert_eq!(nop.ours_per_op().unwrap().el2_per_exit, None);
    }

    #[test]
    fn the_levels_table_has_both_sides() {
        let table = levels_table(&report_with_levels());
        let lines: Vec<_> = table.lines().collect();
        assert!(lines[0].starts_with("instructions per operation by exception level"));
        assert!(lines[1].contains("hypervisor") && lines[1].contains("Linux KVM"));
        assert!(lines[2].starts_with("benchmark") && lines[2].contains("EL2/exit"));
        let hvc = lines.iter().find(|l| l.starts_with("hvc-null")).unwrap();
        let cells: Vec<_> = hvc.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "hvc-null", "1.00", "250.00", "250.00", "10.00", "0.00", "|", "1.00", "975.00",
                "975.00", "10.00", "0.00"
            ]
        );
        let migrate = lines
            .iter()
            .find(|l| l.starts_with("vcpu-migrate"))
            .unwrap();
        assert_eq!(migrate.matches('-').count(), 10 + 1, "{migrate}");
    }

    #[test]
    fn the_reports_carry_the_counts_by_level() {
        let report = report_with_levels();
        let md = markdown(&report);
        assert!(md.contains("## Where the instructions ran"));
        assert!(md.contains(
            "| `hvc-null` | 1.00 | 250.00 | 250.00 | 10.00 | 0.00 | 1.00 | 975.00 | 975.00 | 10.00 | 0.00 | 0.00 |"
        ));
        let json = json(&report);
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        assert!(json.contains(
            "\"hypervisor_levels\": {\"windows\": 1, \"instructions\": {\"el0\": 0, \"el1\": 40, \"el2\": 1000, \"el3\": 0}, \
             \"exits\": 4, \"el2_to_el1\": 4, \"el0_to_el2\": 0, \"el2_to_el0\": 0, \"per_op\": {\"exits\": 1.0000, \"el2\": 250.0000, \
             \"el2_per_exit\": 250.0000, \"el1\": 10.0000, \"el0\": 0.0000, \"el0_to_el2\": 0.0000}}"
        ));
        assert!(json.contains("\"kvm_levels\": null"));
    }
}
