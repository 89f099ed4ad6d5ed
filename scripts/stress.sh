#!/usr/bin/env bash
# Runs every kernel test binary (the devcg-kernel package) N times with two
# test threads, as scripts/test.sh does, and reports the failures per test.
# A test that fails once in N runs is a failing test: this is how to find it.
#
#   scripts/stress.sh [N] [BINARY...]   # N defaults to 30; BINARY e.g. semantics
#
# Exit 0 when every run of every binary passed, 1 otherwise. Needs root to
# exercise anything: without it the kernel tests skip, and so does this.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-30}
shift || true
case "$runs" in
    '' | *[!0-9]*) echo "stress: N must be a positive number of runs, not '$runs'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "stress: SKIPPED: the kernel tests need root (running as uid $(id -u))"
    exit 0
fi

# The test binaries, as cargo builds them for `cargo test --release`.
binaries=$(cargo test --release -p devcg-kernel --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        name = m["target"]["name"] if m["target"]["kind"] != ["lib"] else "lib"
        print(name + "=" + m["executable"])
')
if [ "$#" -gt 0 ]; then
    wanted=" $* "
    binaries=$(printf '%s\n' "$binaries" | while IFS='=' read -r name exe; do
        case "$wanted" in *" $name "*) echo "$name=$exe" ;; esac
    done)
    [ -n "$binaries" ] || { echo "stress: none of '$*' is a devcg-kernel test binary" >&2; exit 2; }
fi

logs=target/stress
rm -rf "$logs"
mkdir -p "$logs"
failed_any=0
printf '%-14s %5s %7s %9s  %s\n' binary runs failed seconds "failing tests (failures)"
while IFS='=' read -r name exe; do
    fails=0
    start=$(date +%s)
    : >"$logs/$name.failures"
    for i in $(seq 1 "$runs"); do
        if ! "$exe" --test-threads=2 >"$logs/$name.run" 2>&1; then
            fails=$((fails + 1))
            cp "$logs/$name.run" "$logs/$name.failed-$i.log"
            grep -E '^test .* \.\.\. FAILED$' "$logs/$name.run" |
                sed -E 's/^test (.*) \.\.\. FAILED$/\1/' >>"$logs/$name.failures" || true
        fi
    done
    rm -f "$logs/$name.run"
    tests=$(sort "$logs/$name.failures" | uniq -c | awk '{printf "%s%s (%s)", sep, $2, $1; sep=", "}')
    [ "$fails" -eq 0 ] || failed_any=1
    printf '%-14s %5s %7s %9s  %s\n' "$name" "$runs" "$fails" "$(($(date +%s) - start))" "${tests:--}"
done <<<"$binaries"

if [ "$failed_any" -ne 0 ]; then
    echo "stress: FAILED: see $logs/*.failed-*.log"
    exit 1
fi
echo "stress: every run passed"
