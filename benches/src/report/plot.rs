//! The plot: cost against rule count, log-log, one panel per executor and
//! one more for the program's run time in the kernel (bpf_stats), one line
//! per strategy (allow list, no match).
//!
//! Text is drawn by plotters' ab_glyph backend from a TTF file read at run
//! time (no fontconfig or freetype): `DEVCG_BENCH_FONT`, else DejaVu Sans
//! from Debian's fonts-dejavu-core.

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::data::{series_of, Metric};
use super::{ReportError, Results};
use crate::exec::Executor;
use crate::workload::{Hit, ListKind};

const FONT_CANDIDATES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Finds and registers the font as "sans-serif".
fn register() -> Result<(), ReportError> {
    let from_env = std::env::var_os("DEVCG_BENCH_FONT").map(PathBuf::from);
    let path = from_env
        .clone()
        .into_iter()
        .chain(FONT_CANDIDATES.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ReportError::Plot(format!(
                "no TTF font found{} (looked at {}): install Debian's fonts-dejavu-core \
                 (apt-get install fonts-dejavu-core) or set DEVCG_BENCH_FONT to a .ttf file",
                from_env.map_or(String::new(), |p| format!(
                    " at DEVCG_BENCH_FONT={}",
                    p.display()
                )),
                FONT_CANDIDATES.join(", ")
            ))
        })?;
    let bytes = std::fs::read(&path).map_err(|source| ReportError::Io {
        what: "read font",
        path: path.clone(),
        source,
    })?;
    // plotters keeps fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| ReportError::Plot(format!("{} is not a usable TTF font", path.display())))
}

/// Tableau's ten: distinct on white.
const COLORS: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

fn plot_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// Writes the PNG to `path`.
pub fn draw(r: &Results, path: &Path) -> Result<(), ReportError> {
    register()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            what: "create",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let root = BitMapBackend::new(path, (2300, 660)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (title, rest) = root.split_vertically(50);
    let (body, legend) = rest.split_vertically(560);
    title
        .titled(
            "devcg: cost per decision against rule count (allow list, no match; log-log)",
            ("sans-serif", 26),
        )
        .map_err(plot_err)?;
    // (caption, executor, figure, unit) per panel.
    let mut kinds: Vec<(&str, Executor, Metric, &str)> = Executor::ALL
        .into_iter()
        .map(|e| {
            if e == Executor::Kernel {
                (e.name(), e, Metric::Check, "ns per device check")
            } else {
                (e.name(), e, Metric::Cost, "ns per decision")
            }
        })
        .collect();
    kinds.push((
        "kernel: program run time (bpf_stats)",
        Executor::Kernel,
        Metric::Run,
        "ns per program run",
    ));
    let panels = body.split_evenly((1, kinds.len()));
    let max_n = r.config.sizes.iter().copied().max().unwrap_or(10).max(10) as f64;
    let palette = |i: usize| {
        let (r, g, b) = COLORS[i % COLORS.len()];
        RGBColor(r, g, b)
    };
    // One legend for all panels, below them, so it hides no data.
    for (si, s) in r.strategies.iter().enumerate() {
        let x = 40 + 190 * si as i32;
        let color = palette(si);
        let width = if s.own { 4 } else { 2 };
        legend
            .draw(&PathElement::new(
                vec![(x, 20), (x + 34, 20)],
                color.stroke_width(width),
            ))
            .map_err(plot_err)?;
        let name = if s.own {
            format!("{} (devcg)", s.name)
        } else {
            s.name.to_string()
        };
        legend
            .draw(&Text::new(name, (x + 42, 11), ("sans-serif", 17)))
            .map_err(plot_err)?;
    }
    for (panel, (caption, executor, metric, unit)) in panels.iter().zip(kinds) {
        let data = series_of(r, executor, metric, ListKind::Allow, Hit::NoMatch);
        let values: Vec<f64> = data.values().flatten().map(|p| p.1).collect();
        let mut chart = ChartBuilder::on(panel);
        chart
            .caption(caption, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(70);
        if values.is_empty() {
            let why = if executor == Executor::Kernel {
                r.kernel_skipped
                    .clone()
                    .or_else(|| {
                        r.kernel_run_unavailable
                            .clone()
                            .filter(|_| metric == Metric::Run)
                    })
                    .unwrap_or_else(|| "nothing measured".into())
            } else {
                "nothing measured".into()
            };
            panel
                .draw(&Text::new(why, (40, 200), ("sans-serif", 16)))
                .map_err(plot_err)?;
            continue;
        }
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(0.0, f64::max);
        // Whole decades, so that every panel has labelled powers of ten.
        let y = 10f64.powf(lo.max(1e-3).log10().floor())..10f64.powf((hi * 1.01).log10().ceil());
        let mut ctx = chart
            .build_cartesian_2d((0.8f64..max_n * 1.25).log_scale(), y.log_scale())
            .map_err(plot_err)?;
        ctx.configure_mesh()
            .x_labels(6)
            .y_labels(12)
            .x_desc("rules")
            .y_desc(unit)
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .x_label_formatter(&|v| format!("{}", *v as u64))
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{}", v.round() as u64)
                } else {
                    format!("{v:.2}")
                }
            })
            .draw()
            .map_err(plot_err)?;
        for (si, pts) in &data {
            if pts.is_empty() {
                continue;
            }
            let color = palette(*si);
            let s = &r.strategies[*si];
            let width = if s.own { 3 } else { 1 };
            let line: Vec<(f64, f64)> = pts.iter().map(|&(n, v)| (n as f64, v)).collect();
            ctx.draw_series(LineSeries::new(line.clone(), color.stroke_width(width)))
                .map_err(plot_err)?;
            ctx.draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_err)?;
        }
        let missing = data.values().any(|pts| pts.len() < r.config.sizes.len());
        if missing {
            let (w, h) = panel.dim_in_pixel();
            panel
                .draw(&Text::new(
                    "missing points: n/a (reasons in BENCHMARKS.md)",
                    (w as i32 - 390, h as i32 - 80),
                    ("sans-serif", 14).into_font().color(&BLACK.mix(0.6)),
                ))
                .map_err(plot_err)?;
        }
    }
    root.present().map_err(plot_err)?;
    Ok(())
}
