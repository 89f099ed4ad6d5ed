#!/usr/bin/env bash
# Runs devcg's benchmarks and writes BENCHMARKS.md and docs/bench.png.
#
#   scripts/bench.sh             full run (minutes): writes them at the repository root
#   scripts/bench.sh --quick     CI smoke (small samples): writes to target/bench-quick/
#   scripts/bench.sh [--quick] --out DIR [report options...]
#
# Everything after the options above goes to the report binary
# (`cargo run -p devcg-benches --release --bin report -- --help`). The
# kernel group needs root, cgroup2 and CAP_BPF; elsewhere the report says
# why and leaves it out. Nothing here asserts on timings.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
out=""
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1; pass+=(--quick) ;;
        --out) out="${2:?--out needs a directory}"; shift ;;
        *) pass+=("$1") ;;
    esac
    shift
done
if [ -z "$out" ]; then
    if [ "$quick" = 1 ]; then out=target/bench-quick; else out=.; fi
fi
mkdir -p "$out"

# The plot's text needs a TTF font (plotters' ab_glyph backend, no
# fontconfig): DejaVu Sans from Debian's fonts-dejavu-core.
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
if [ -z "${DEVCG_BENCH_FONT:-}" ] && [ ! -f "$font" ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "bench: installing fonts-dejavu-core for the plot" >&2
        apt-get update -qq >/dev/null && apt-get install -y -qq fonts-dejavu-core >/dev/null || true
    fi
    if [ ! -f "$font" ]; then
        echo "bench: no font for the plot: install fonts-dejavu-core (apt-get install fonts-dejavu-core)" >&2
        echo "bench: or set DEVCG_BENCH_FONT to a .ttf file" >&2
        exit 2
    fi
fi

cargo build --release --quiet -p devcg --bin devcg -p devcg-benches --bin report
start=$(date +%s)
target/release/report --out "$out" --devcg target/release/devcg \
    --command "scripts/bench.sh${pass[*]:+ ${pass[*]}}" "${pass[@]}"
echo "bench: $out/BENCHMARKS.md and $out/docs/bench.png written in $(( $(date +%s) - start )) s"
