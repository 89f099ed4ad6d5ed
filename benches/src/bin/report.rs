//! Runs the benchmarks and writes BENCHMARKS.md and docs/bench.png.
//!
//! ```sh
//! cargo run -p devcg-benches --release --bin report -- [--quick] [--out DIR]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use devcg_benches::report::{self, markdown, plot, Config, ReportError};
use devcg_benches::workload::SEED;

#[derive(Parser)]
#[command(
    name = "report",
    about = "devcg benchmarks: BENCHMARKS.md and its plot"
)]
struct Args {
    /// Small samples for CI: seconds, not minutes.
    #[arg(long)]
    quick: bool,
    /// Where BENCHMARKS.md (and docs/bench.png) go.
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Rule counts, comma-separated.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// Strategies, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    strategies: Option<Vec<String>>,
    #[arg(long, default_value_t = SEED)]
    seed: u64,
    /// Leave out the kernel group even as root.
    #[arg(long)]
    no_kernel: bool,
    /// The devcg binary, to time `verify --exhaustive` end to end.
    #[arg(long)]
    devcg: Option<PathBuf>,
    /// How this run was started, for the report (scripts/bench.sh sets it).
    #[arg(long)]
    command: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let command = args.command.clone().unwrap_or_else(|| {
        let rest: Vec<String> = std::env::args().skip(1).collect();
        format!(
            "cargo run -p devcg-benches --release --bin report -- {}",
            rest.join(" ")
        )
    });
    let config = Config {
        quick: args.quick,
        out_dir: args.out.clone(),
        seed: args.seed,
        sizes: args.sizes.unwrap_or_else(report::default_sizes),
        strategies: args.strategies,
        no_kernel: args.no_kernel,
        devcg_bin: args.devcg,
        command,
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("report: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(config: Config) -> Result<(), ReportError> {
    let out_dir = config.out_dir.clone();
    let results = report::run(config)?;
    let png = out_dir.join(markdown::PLOT_PATH);
    plot::draw(&results, &png)?;
    let md = out_dir.join("BENCHMARKS.md");
    std::fs::write(&md, markdown::render(&results)).map_err(|source| ReportError::Io {
        what: "write",
        path: md.clone(),
        source,
    })?;
    eprintln!("[bench] wrote {} and {}", md.display(), png.display());
    for t in devcg_benches::report::targets::targets(&results) {
        let met = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not evaluated",
        };
        eprintln!("[bench] target {}: {met}", t.name);
    }
    Ok(())
}
