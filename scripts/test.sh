#!/usr/bin/env bash
# Runs every devcg test. Installs what it needs; tests that need root or a
# cgroup hierarchy skip with one line when those are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo; then
    echo "cargo not found: devcg needs a Rust toolchain (rustup)" >&2
    exit 1
fi
if ! cargo fmt --version >/dev/null 2>&1; then
    rustup component add rustfmt
fi

echo "== format"
cargo fmt --all -- --check

echo "== build"
cargo build --workspace --all-targets --release

echo "== tests"
# Kernel tests fork probes into scratch cgroups: keep them from racing on
# the two cores with the rest.
cargo test --workspace --release -- --test-threads=2

echo "== main job"
cargo run --release --quiet -- verify --cases 500

echo "== benchmarks (quick)"
scripts/bench.sh --quick  # benchmark smoke run: writes target/bench-quick/, never the committed BENCHMARKS.md
