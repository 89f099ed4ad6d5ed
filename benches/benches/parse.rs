//! Reading and normalizing a rule list against its length: `RuleFile::parse`
//! then `RuleSet::from_rules` (the engine's fold) or `devcg_oracle::state_of`
//! (the oracle's, one write at a time), in v1 text and OCI JSON (pretty,
//! and all on one line), at 10k,
//! 100k and 1M rules. Both should grow linearly; 1M rules in either format
//! should take well under 2 s.
//!
//! `cargo bench -p devcg-benches --bench parse [-- FILTER]`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use devcg_differential::rng::Rng;
use devcg_engine::{RuleFile, RuleSet};

const SIZES: [usize; 3] = [10_000, 100_000, 1_000_000];

/// One rule as (allow, type, major, minor, access); -1 is `*`. A deny-all
/// first, then mostly grants over many keys, with removals and repeats of
/// keys already there, so the folds merge, drop and append.
fn rules(n: usize, seed: u64) -> Vec<(bool, char, i64, i64, String)> {
    let mut rng = Rng::new(seed);
    let mut out = vec![(false, 'a', -1, -1, "rwm".to_string())];
    while out.len() < n {
        let allow = rng.below(5) != 0;
        let ty = if rng.below(4) == 0 { 'b' } else { 'c' };
        let major = if rng.below(50) == 0 {
            -1
        } else {
            rng.below(4096) as i64
        };
        let minor = if rng.below(20) == 0 {
            -1
        } else {
            rng.below(1024) as i64
        };
        let access: String = [('r', 1), ('w', 2), ('m', 4)]
            .iter()
            .filter(|&&(_, bit)| rng.below(8) & bit != 0 || bit == 1)
            .map(|&(c, _)| c)
            .collect();
        out.push((allow, ty, major, minor, access));
    }
    out
}

fn v1_text(list: &[(bool, char, i64, i64, String)]) -> String {
    let num = |n: i64| {
        if n < 0 {
            "*".to_string()
        } else {
            n.to_string()
        }
    };
    let mut text = String::from("# generated\n");
    for (allow, ty, major, minor, access) in list {
        let kind = if *allow { "allow" } else { "deny" };
        if *ty == 'a' {
            text.push_str(&format!("{kind} a\n"));
        } else {
            text.push_str(&format!(
                "{kind} {ty} {}:{} {access}\n",
                num(*major),
                num(*minor)
            ));
        }
    }
    text
}

fn oci_json(list: &[(bool, char, i64, i64, String)]) -> String {
    let mut text =
        String::from("{\"ociVersion\": \"1.0.2\", \"linux\": {\"resources\": {\"devices\": [\n");
    for (i, (allow, ty, major, minor, access)) in list.iter().enumerate() {
        if i > 0 {
            text.push_str(",\n");
        }
        text.push_str(&format!(
            "  {{\"allow\": {allow}, \"type\": \"{ty}\", \"major\": {major}, \"minor\": {minor}, \"access\": \"{access}\"}}"
        ));
    }
    text.push_str("\n]}}}\n");
    text
}

/// The same JSON on one line, as a program writes it: line and column
/// bookkeeping must not rescan the line per entry.
fn oci_json_one_line(list: &[(bool, char, i64, i64, String)]) -> String {
    oci_json(list).replace('\n', "")
}

fn parse(c: &mut Criterion) {
    for (format, name, render) in [
        ("v1", "r.rules", v1_text as fn(&_) -> String),
        ("oci", "config.json", oci_json),
        ("oci-one-line", "config.json", oci_json_one_line),
    ] {
        let mut group = c.benchmark_group(format!("parse/{format}"));
        for n in SIZES {
            let text = render(&rules(n, 0x5eed + n as u64));
            group.throughput(Throughput::Elements(n as u64));
            group.bench_with_input(BenchmarkId::new("engine", n), &text, |b, text| {
                b.iter(|| {
                    let rules = RuleFile::parse(name, black_box(text)).expect("valid");
                    RuleSet::from_rules(&rules)
                })
            });
            group.bench_with_input(BenchmarkId::new("oracle", n), &text, |b, text| {
                b.iter(|| {
                    let rules = RuleFile::parse(name, black_box(text)).expect("valid");
                    devcg_oracle::state_of(&rules)
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    targets = parse
}
criterion_main!(benches);
