//! BENCHMARKS.md from the results of one run: rendering only (the figures
//! come from `data`, the goals from `targets`).

use std::fmt::Write;

use super::{machine, Cell, Config, Results};
use crate::exec::Executor;
use crate::workload::{Hit, ListKind};

use super::data::{case_name, cases, estimate, value_of, Metric};
use super::targets::targets;

/// The plot, relative to BENCHMARKS.md.
pub const PLOT_PATH: &str = "docs/bench.png";

/// `12,345` style, for counts.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Nanoseconds: one decimal below 10, integers with separators above.
pub fn ns(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.1}")
    } else if v < 0.0 {
        format!("-{}", thousands((-v).round() as u64))
    } else {
        thousands(v.round() as u64)
    }
}

pub(crate) fn secs(d: std::time::Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.3} s")
    } else {
        format!("{s:.1} s")
    }
}

/// Numbered reasons for n/a cells, per section.
#[derive(Default)]
struct Notes {
    reasons: Vec<String>,
}

impl Notes {
    fn mark(&mut self, reason: &str) -> usize {
        match self.reasons.iter().position(|r| r == reason) {
            Some(i) => i + 1,
            None => {
                self.reasons.push(reason.to_string());
                self.reasons.len()
            }
        }
    }

    fn render(&self, out: &mut String) {
        if self.reasons.is_empty() {
            return;
        }
        out.push('\n');
        for (i, r) in self.reasons.iter().enumerate() {
            let _ = writeln!(out, "* [{}] {}", i + 1, r.replace('\n', " "));
        }
    }
}

fn strategy_label(r: &Results, si: usize) -> String {
    let s = &r.strategies[si];
    if s.own {
        format!("**{}**", s.name)
    } else {
        s.name.to_string()
    }
}

fn render_cell(
    cell: Option<&Cell>,
    metric: Metric,
    notes: &mut Notes,
    wrong_seen: &mut bool,
    spread: bool,
) -> String {
    match cell {
        None => "–".into(),
        Some(Err(why)) => format!("n/a [{}]", notes.mark(why)),
        Some(Ok(t)) => {
            let Some(est) = estimate(t, metric) else {
                return "–".into();
            };
            let mut s = ns(est.median_ns);
            if spread {
                let half = (est.high_ns - est.low_ns) / 2.0;
                let _ = write!(s, " ±{}", ns(half));
            }
            if t.wrong.is_some() {
                *wrong_seen = true;
                s.push_str(" †");
            }
            s
        }
    }
}

fn table(
    r: &Results,
    executor: Executor,
    metric: Metric,
    list: ListKind,
    hit: Hit,
    notes: &mut Notes,
    out: &mut String,
) {
    let sizes = &r.config.sizes;
    let _ = write!(out, "| strategy |");
    for n in sizes {
        let _ = write!(out, " {} |", thousands(*n as u64));
    }
    out.push('\n');
    out.push_str("|---|");
    for _ in sizes {
        out.push_str("---:|");
    }
    out.push('\n');
    let mut wrong_seen = false;
    for si in 0..r.strategies.len() {
        let _ = write!(out, "| {} |", strategy_label(r, si));
        for &n in sizes {
            let cell = r.cell(executor, si, list, n, hit);
            let text = render_cell(
                cell,
                metric,
                notes,
                &mut wrong_seen,
                executor == Executor::Kernel,
            );
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    if wrong_seen {
        out.push_str(
            "\n† the program's verdict differs from the oracle's here (a finding on that model, \
             see docs/findings.md); timed anyway.\n",
        );
    }
}

fn executor_intro(executor: Executor) -> &'static str {
    match executor {
        Executor::Interp => {
            "ns per decision: `Emulator::run` on the request (context copy, rbpf's \
             interpreter over the rewritten program, map helpers for map programs)."
        }
        Executor::Jit => {
            "ns per decision: rbpf 0.4.1's x86-64 JIT (`EbpfVmRaw::jit_compile`, \
             `execute_program_jit`) on `Emulator::rewritten_bytes()`, after checking its \
             verdicts against the interpreter's."
        }
        Executor::Kernel => {
            "ns the program adds to one `open()` of a driverless device node, from a forked \
             child inside a scratch cgroup: median over rounds of (open with the program \
             attached − the same open without), ± half the 10–90 % range of the rounds. \
             Allowed opens fail with ENXIO after the check; denied ones stop at it with \
             EPERM, so for a denied request the difference also drops the rest of open() and \
             can come out below the program's cost, even negative (see the floor below). \
             These figures carry open()'s noise (an open takes microseconds); the program's \
             own run time, measured by the kernel, is in the last tables of this section."
        }
    }
}

pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let m = &r.machine;
    let mode = if r.config.quick { "quick" } else { "full" };
    let _ = writeln!(out, "# devcg benchmarks\n");
    let _ = writeln!(
        out,
        "Written by the `report` binary of `benches/` from one {mode} run; every figure below \
         was measured in that run. Regenerate with `scripts/bench.sh` (full) or \
         `scripts/bench.sh --quick` (CI smoke, small samples, written to \
         `target/bench-quick/`).\n"
    );
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| date | {} |", machine::utc_date(r.started));
    let _ = writeln!(out, "| command | `{}` |", r.config.command);
    let _ = writeln!(out, "| mode | {mode} |");
    let _ = writeln!(out, "| CPU | {} |", m.cpu);
    let _ = writeln!(out, "| cores | {} |", m.cores);
    let _ = writeln!(
        out,
        "| kernel | {} (`bpf_jit_enable` = {}) |",
        m.kernel, m.bpf_jit
    );
    let _ = writeln!(out, "| rustc | {} |", m.rustc);
    let _ = writeln!(
        out,
        "| load average (1 min) | {} at start, {} at end |",
        m.load_start, r.load_end
    );
    let _ = writeln!(out, "| seed | {:#x} |", r.config.seed);
    let _ = writeln!(out, "| run time | {} |", secs(r.wall));
    out.push('\n');
    out.push_str(
        "The machine is shared (other builds and VMs run beside this): figures are medians of \
         repeated samples and nothing here asserts on them.\n\n",
    );

    // Targets.
    out.push_str(
        "## Targets\n\nGoals for devcg's fastest strategy, as measured in this run. The kernel \
         targets are judged twice, each for our strategy with the lowest figure at 10,000 \
         rules: on what the program costs open() like for like (the issue's figure, noisy: \
         open() itself takes microseconds), and on the program's own run time as the kernel's \
         run-time statistics count it (precise; see the kernel section).\n\n",
    );
    out.push_str("| target | goal | measured | met |\n|---|---|---|---|\n");
    for t in targets(r) {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not evaluated",
        };
        let _ = writeln!(out, "| {} | {} | {} | {met} |", t.name, t.goal, t.measured);
    }
    out.push('\n');

    // Workloads.
    out.push_str("## Rule lists\n\n");
    out.push_str(
        "Seeded, realistic lists (`benches/src/workload.rs`): distinct exceptions, 80 % char, \
         90 % exact, 7 % `major:*`, 3 % `*:minor`, majors < 4096, minors < 2^20 (mostly < 256), \
         access mostly `rwm` or `rw`. The *allow list* is `deny a` followed by N allows; the \
         *deny list* is N denies on top of allow-all; both use the same N exceptions. Requests \
         are reads (`open(O_RDONLY)` in the kernel) of driverless majors: *matching* is covered \
         by the exception nearest the middle of the list, *no match* is a char device no \
         exception names, which a first-match chain tries against every entry.\n\n",
    );
    out.push_str("| list | N | matching | no match |\n|---|---:|---|---|\n");
    for w in &r.workloads {
        let _ = writeln!(
            out,
            "| {} | {} | `{}` ({}) | `{}` ({}) |",
            w.list.name(),
            thousands(w.n as u64),
            w.matching,
            w.expected(Hit::Match),
            w.no_match,
            w.expected(Hit::NoMatch)
        );
    }
    out.push('\n');

    // Cost per decision.
    out.push_str("## Cost per decision\n\n");
    let _ = writeln!(
        out,
        "![cost per decision against rule count]({PLOT_PATH})\n\n*Allow list, no match, \
         log-log. The kernel panel shows the like-for-like cost of the check, the last one the \
         program's own run time from the kernel's run-time statistics (see the kernel \
         section); points at or below zero are left out.*\n"
    );
    for executor in Executor::ALL {
        let _ = writeln!(
            out,
            "### {}\n\n{}\n",
            executor.name(),
            executor_intro(executor)
        );
        if executor == Executor::Kernel {
            if let Some(why) = &r.kernel_skipped {
                let _ = writeln!(out, "Not measured: {why}\n");
                continue;
            }
        }
        let mut notes = Notes::default();
        for (list, hit) in cases() {
            let _ = writeln!(out, "**{}**\n", case_name(list, hit));
            table(r, executor, Metric::Cost, list, hit, &mut notes, &mut out);
            out.push('\n');
        }
        if executor == Executor::Kernel {
            out.push_str(
                "#### kernel: denied requests, like for like\n\nFor a denied request, \
                 (open with the program − with a constant `r0 = 0` program) + (open with a \
                 constant `r0 = 1` program − without a program), same rounds: the program's \
                 work beyond a constant one plus what running any program costs, with the part \
                 of open() a denial skips cancelled out. For allowed requests this is the table \
                 above. The targets, the plot and the scaling table below use this figure.\n\n",
            );
            for (list, hit) in cases() {
                if r.workloads
                    .iter()
                    .find(|w| w.list == list)
                    .map(|w| w.expected(hit))
                    != Some(devcg_engine::Verdict::Deny)
                {
                    continue;
                }
                let _ = writeln!(out, "**{}**\n", case_name(list, hit));
                table(r, executor, Metric::Check, list, hit, &mut notes, &mut out);
                out.push('\n');
            }
            out.push_str(
                "#### kernel: program run time (bpf_stats)\n\nns per run of the program itself, \
                 as the kernel counts it: with run-time statistics on (`BPF_ENABLE_STATS`, \
                 `BPF_STATS_RUN_TIME`), Δ`run_time_ns` ÷ Δ`run_cnt` of the program \
                 (`bpf_prog_info`) over one more batch of opens per round, median over rounds \
                 ± half the 10–90 % range. No open() around it, so it is precise where the \
                 tables above drown in open()'s noise; but it includes the `sched_clock()` pair \
                 the kernel puts around each run, so compare with the constant program's \
                 figure in the floor table below rather than with zero. The statistics are on \
                 only for that batch: they never enter the figures above.\n\n",
            );
            if let Some(why) = &r.kernel_run_unavailable {
                let _ = writeln!(out, "Not measured: {why}\n");
            } else {
                for (list, hit) in cases() {
                    let _ = writeln!(out, "**{}**\n", case_name(list, hit));
                    table(r, executor, Metric::Run, list, hit, &mut notes, &mut out);
                    out.push('\n');
                }
            }
        }
        if !notes.reasons.is_empty() {
            out.push_str("n/a:\n");
            notes.render(&mut out);
            out.push('\n');
        }
        if executor == Executor::Kernel {
            render_scaling(r, Metric::Check, &mut out);
            render_scaling(r, Metric::Run, &mut out);
            render_kernel_context(r, &mut out);
        }
    }

    // Sizes.
    out.push_str(
        "## Program sizes\n\nInstruction slots (an `lddw` counts two), allow list / deny list.\n\n",
    );
    let _ = write!(out, "| strategy |");
    for n in &r.config.sizes {
        let _ = write!(out, " {} |", thousands(*n as u64));
    }
    out.push_str("\n|---|");
    for _ in &r.config.sizes {
        out.push_str("---:|");
    }
    out.push('\n');
    for si in 0..r.strategies.len() {
        let _ = write!(out, "| {} |", strategy_label(r, si));
        for &n in &r.config.sizes {
            let show = |l| match r.slots.get(&(si, l, n)) {
                Some(Ok(s)) => thousands(*s as u64),
                _ => "refused".into(),
            };
            let _ = write!(
                out,
                " {} / {} |",
                show(ListKind::Allow),
                show(ListKind::Deny)
            );
        }
        out.push('\n');
    }
    out.push('\n');

    // Differential.
    let cfg_cases = r.differential.first().map_or(0, |d| d.rule_sets);
    let _ = writeln!(
        out,
        "## Differential throughput\n\n`devcg_differential::sampled::run` (what `devcg verify` runs), one \
         thread: {cfg_cases} random rule lists of up to 12 rules per strategy, 64 requests each, \
         every check = the strategy's program in the emulator + the oracle (rule-list \
         generation, compilation and emulator setup included).\n"
    );
    out.push_str("| strategy | checks | divergences | refused lists | time | checks/s |\n|---|---:|---:|---:|---:|---:|\n");
    for d in &r.differential {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            strategy_label(r, d.strategy),
            thousands(d.checks),
            thousands(d.divergences),
            thousands(d.refused),
            secs(d.elapsed),
            thousands(d.checks_per_second() as u64)
        );
    }
    out.push('\n');

    // Exhaustive.
    out.push_str("## Exhaustive mode\n\n");
    out.push_str(
        "`devcg_differential::exhaustive::run` on the 1,000-rule lists above (compile included), and the \
         wall time and peak resident memory of `devcg verify --exhaustive --strategy S FILE` on the \
         same list written to a file (process start, parsing and compile included; devcg's strategies \
         only). At 10,000 rules: devcg's strategies on the allow list.",
    );
    if r.config.quick {
        out.push_str(" Quick mode: devcg's strategies, allow list, 1,000 rules only.");
    }
    out.push_str("\n\n| strategy | list | rules | classes | result | in process | `devcg` command | peak memory |\n|---|---|---:|---:|---|---:|---:|---:|\n");
    for row in &r.exhaustive {
        let (classes, result, t) = match &row.result {
            Ok(x) => (
                thousands(x.classes as u64),
                if x.differences == 0 {
                    "equivalent".to_string()
                } else {
                    format!("{} differing classes", thousands(x.differences as u64))
                },
                secs(x.elapsed),
            ),
            Err(e) => ("–".into(), format!("n/a: {e}"), "–".into()),
        };
        let (cli, rss) = match &row.cli {
            None => ("–".to_string(), "–".to_string()),
            Some(Ok(c)) => (secs(c.wall), format!("{} MB", c.max_rss_kib / 1024)),
            Some(Err(e)) => (format!("n/a: {e}"), "–".to_string()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {classes} | {result} | {t} | {cli} | {rss} |",
            strategy_label(r, row.strategy),
            row.list.name(),
            thousands(row.n as u64)
        );
    }
    out.push('\n');

    render_method(&r.config, &mut out);
    out
}

/// Per strategy and case: the kernel figure `metric` (the like-for-like
/// check cost or the program run time) at the largest rule count over the
/// same at 10 rules (the first kernel targets, for every strategy).
fn render_scaling(r: &Results, metric: Metric, out: &mut String) {
    let max_n = r.config.sizes.iter().copied().max().unwrap_or(0);
    if max_n <= 10 || !r.config.sizes.contains(&10) {
        return;
    }
    let n = thousands(max_n as u64);
    let _ = match metric {
        Metric::Run => writeln!(
            out,
            "**Scaling in the kernel (program run time)**: run time at {n} rules ÷ run time at \
             10 rules.\n"
        ),
        _ => writeln!(
            out,
            "**Scaling in the kernel**: like-for-like cost at {n} rules ÷ cost at 10 rules.\n"
        ),
    };
    out.push_str("| strategy |");
    for (list, hit) in cases() {
        let _ = write!(out, " {} |", case_name(list, hit));
    }
    out.push_str("\n|---|");
    for _ in cases() {
        out.push_str("---:|");
    }
    out.push('\n');
    for si in 0..r.strategies.len() {
        let mut row = format!("| {} |", strategy_label(r, si));
        let mut any = false;
        for (list, hit) in cases() {
            let a = value_of(r, Executor::Kernel, metric, si, list, 10, hit);
            let b = value_of(r, Executor::Kernel, metric, si, list, max_n, hit);
            let cell = match (a, b) {
                (Ok(a), Ok(b)) if a > 0.0 => {
                    any = true;
                    format!("{:.2}x", b / a)
                }
                (Ok(_), Ok(_)) => "–".to_string(),
                _ => "n/a".to_string(),
            };
            let _ = write!(row, " {cell} |");
        }
        if any {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out.push('\n');
}

fn render_kernel_context(r: &Results, out: &mut String) {
    let mut opens: Vec<f64> = r
        .cells
        .iter()
        .filter(|(k, _)| k.executor == Executor::Kernel)
        .filter_map(|(_, c)| c.as_ref().ok().and_then(|t| t.open_ns.map(|o| o.0)))
        .collect();
    opens.sort_by(f64::total_cmp);
    if !opens.is_empty() {
        let _ = writeln!(
            out,
            "`open()` without a program (allowed, ENXIO): median {} ns over all batches \
             (range {}–{} ns).\n",
            ns(crate::measure::median(&opens)),
            ns(opens[0]),
            ns(opens[opens.len() - 1])
        );
    }
    if let Some(floor) = &r.kernel_floor {
        out.push_str(
            "The floor: a program that only returns a constant, measured the same way.\n\n",
        );
        out.push_str(
            "| program | adds to open() | open() with it | program run time (bpf_stats) \
             |\n|---|---:|---:|---:|\n",
        );
        for (name, f) in ["`r0 = 1` (allow, ENXIO)", "`r0 = 0` (deny, EPERM)"]
            .iter()
            .zip(floor.iter())
        {
            match f {
                Ok(k) => {
                    let run = match &k.run {
                        Some(e) => format!(
                            "{} ±{} ns",
                            ns(e.median_ns),
                            ns((e.high_ns - e.low_ns) / 2.0)
                        ),
                        None => "–".to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "| {name} | {} ±{} ns | {} ns | {run} |",
                        ns(k.cost.median_ns),
                        ns((k.cost.high_ns - k.cost.low_ns) / 2.0),
                        ns(k.with_ns)
                    );
                }
                Err(e) => {
                    let _ = writeln!(out, "| {name} | n/a: {e} | | |");
                }
            }
        }
        out.push('\n');
    }
}

fn render_method(config: &Config, out: &mut String) {
    let (sampling, plan) = if config.quick {
        (
            crate::measure::Sampling::quick(),
            crate::kernel::KernelPlan::quick(),
        )
    } else {
        (
            crate::measure::Sampling::full(),
            crate::kernel::KernelPlan::full(),
        )
    };
    let _ = writeln!(
        out,
        "## Method\n\n\
         * Userspace cells: {} pass(es) over all cells, spread over the run; in each, a \
         warm-up of {} ms, then {} samples of about {} µs each (batches of the same \
         decision). The cell is the median of the pooled samples.\n\
         * Kernel cells: the program is loaded once and checked to give the expected errno; \
         then {} pass(es) over all programs of {} rounds each, each round timing one batch \
         per state (nothing attached, the program, and for denied requests the constant \
         `r0 = 1` and `r0 = 0` programs; the order reverses every other round), then one more \
         with the program and BPF run-time statistics on, for its run time alone. A batch is \
         about {} µs of repetitions of ~50 µs of opens and reports its fastest repetition, so \
         a repetition the scheduler interrupted drops out; the cell is the median over the \
         pooled rounds of the per-open difference. An allow-all program stays attached to a \
         sibling scratch cgroup so the kernel's device hook is live throughout, as on any \
         host running containers.{}\n\
         * n/a cells give the reason: a model refusing the rule list (its runtime's error), \
         the emulator's 32,767-slot limit, the kernel verifier's refusal, or rbpf's JIT limits.\n\
         * Criterion benches of the same cells: `cargo bench -p devcg-benches` (benches \
         `decision`, `kernel`, `throughput`).",
        sampling.passes,
        sampling.warmup.as_millis(),
        sampling.samples,
        sampling.sample_time.as_micros(),
        plan.passes,
        plan.rounds,
        plan.batch_time.as_micros(),
        if config.quick {
            format!(
                " Quick mode loads programs of at most {} rules into the kernel.",
                Config::QUICK_KERNEL_MAX_RULES
            )
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(ns(3.04), "3.0");
        assert_eq!(ns(-3.0), "-3.0");
        assert_eq!(ns(1234.4), "1,234");
        assert_eq!(ns(-1234.6), "-1,235");
    }
}
