//! `devcg-fuzz`: every input target for a bounded number of inputs or time;
//! failing inputs are written to `target/fuzz-failures/`. Exit 1 when an
//! input panicked or took longer than `--slow-ms`.

use std::time::Duration;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "devcg-fuzz",
    about = "Mutation fuzzing of every input devcg reads"
)]
struct Cli {
    /// Only this target (v1-rules, oci-json, oracle-script, program-raw,
    /// program-json, program-elf, program-asm).
    #[arg(long)]
    target: Option<String>,
    /// Seconds per target.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Inputs per target at most.
    #[arg(long, default_value_t = 1_000_000)]
    iterations: u64,
    /// The mutation generator's seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// An input taking longer than this is a failure (a hang in the making).
    #[arg(long, default_value_t = 2_000)]
    slow_ms: u64,
}

fn main() {
    let cli = Cli::parse();
    let targets: Vec<_> = devcg_fuzz::targets()
        .into_iter()
        .filter(|t| cli.target.as_deref().is_none_or(|n| n == t.name))
        .collect();
    if targets.is_empty() {
        eprintln!(
            "devcg-fuzz: no target named {:?}",
            cli.target.unwrap_or_default()
        );
        std::process::exit(2);
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    let mut failed = false;
    for t in &targets {
        let r = devcg_fuzz::fuzz(
            t,
            cli.seed,
            cli.iterations,
            Duration::from_secs(cli.seconds),
        );
        let (slow_input, slowest) = r.slowest.clone().unwrap_or_default();
        let slow = slowest > Duration::from_millis(cli.slow_ms);
        println!(
            "{:<14} {:>8} inputs ({:>3}% accepted) {:>3} panics  slowest {:>8.1} ms{}",
            t.name,
            r.inputs,
            100 * r.accepted / r.inputs.max(1),
            r.panics.len(),
            slowest.as_secs_f64() * 1e3,
            if slow { "  SLOW" } else { "" }
        );
        let mut keep: Vec<(String, Vec<u8>)> = r
            .panics
            .iter()
            .enumerate()
            .map(|(i, (input, msg))| {
                println!("  panic: {msg}");
                (format!("{}-panic-{i}", t.name), input.clone())
            })
            .collect();
        if slow {
            keep.push((format!("{}-slow", t.name), slow_input));
        }
        if !keep.is_empty() {
            failed = true;
            let _ = std::fs::create_dir_all(&out);
            for (name, input) in keep {
                let path = out.join(name);
                let _ = std::fs::write(&path, input);
                println!("  kept {}", path.display());
            }
        }
    }
    if failed {
        println!("fuzz: FAILED");
        std::process::exit(1);
    }
    println!("fuzz: {} targets, no panic, no slow input", targets.len());
}
