//! The comparison: both sides' results side by side with the ratio
//! KVM / hypervisor, whether repeated runs agreed, and the report files
//! (`report.json`, `report.md`, `chart.svg`).
//!
//! Everything here is pure (strings in, strings out), so the formats are
//! tested on their own; [`crate::bench`] runs QEMU and writes the files.

use std::fmt::Write as _;

use crate::bench_parse::{differences, GuestRun, Measure};

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
];

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
}

/// One row of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The benchmark.
    pub name: String,
    /// The hypervisor's result.
    pub ours: Option<Measure>,
    /// KVM's result.
    pub kvm: Option<Measure>,
}

impl Row {
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
    /// The rows: every benchmark either side printed, in the guest's order,
    /// then the extra no-polling row if that run was made.
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
        let mut rows: Vec<Row> = names
            .into_iter()
            .map(|name| Row {
                name: name.to_owned(),
                ours: ours.get(name).cloned(),
                kvm: kvm.get(name).cloned(),
            })
            .collect();
        if let Some(no_poll) = self.kvm_no_poll.as_ref().and_then(Side::first) {
            rows.push(Row {
                name: NO_POLL_ROW.to_owned(),
                ours: ours.get("virtual-ipi").cloned(),
                kvm: no_poll.get("virtual-ipi").cloned(),
            });
        }
        rows
    }

    /// The counter frequency both sides saw, if they agree.
    pub fn cntfrq(&self) -> Option<u64> {
        let ours = self.ours.first()?.cntfrq?;
        (self.kvm.first()?.cntfrq? == ours).then_some(ours)
    }

    /// One line per side on whether its runs agreed.
    pub fn determinism(&self) -> Vec<String> {
        let mut out = Vec::new();
        let sides = [Some(&self.ours), Some(&self.kvm), self.kvm_no_poll.as_ref()];
        for side in sides.into_iter().flatten() {
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
                cell(row.kvm.as_ref()),
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
        let what = if row.name == NO_POLL_ROW {
            "as virtual-ipi, KVM booted with kvm.halt_poll_ns=0"
        } else {
            description(&row.name)
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            row.name,
            what,
            cell(row.ours.as_ref()),
            cell(row.kvm.as_ref()),
            ratio_cell(&row)
        );
    }
    let _ = writeln!(out, "\n![ticks per operation](chart.svg)\n");
    let _ = writeln!(out, "## Repeatability\n");
    for line in report.determinism() {
        let _ = writeln!(out, "- {line}");
    }
    let _ = writeln!(out, "\n## The runs\n");
    let _ = writeln!(out, "- QEMU: {}; machine `{}`", report.qemu, report.machine);
    for side in [
        Some(&report.ours),
        Some(&report.kvm),
        report.kvm_no_poll.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
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
                "    {{\"name\": {}, \"description\": {}, \"hypervisor\": {}, \"kvm\": {}, \"kvm_over_hypervisor\": {}}}",
                json_string(&row.name),
                json_string(if row.name == NO_POLL_ROW {
                    "as virtual-ipi, KVM booted with kvm.halt_poll_ns=0"
                } else {
                    description(&row.name)
                }),
                json_measure(row.ours.as_ref()),
                json_measure(row.kvm.as_ref()),
                row.ratio().map_or_else(|| "null".into(), json_f64)
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
    format!(
        "{{\n  \"unit\": \"CNTVCT_EL0 ticks per operation; with -icount shift=0 one tick = 1 ns of virtual time = 1 instruction\",\n  \
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
        for (j, (measure, colour)) in [
            (row.ours.as_ref(), OURS_COLOUR),
            (row.kvm.as_ref(), KVM_COLOUR),
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
                    let what = cell(measure);
                    let _ = writeln!(
                        out,
                        "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#888\">{}</text>",
                        left + 4.0,
                        by + bar - 3.0,
                        xml(&what)
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
        }
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
}
