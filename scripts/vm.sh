#!/usr/bin/env bash
# The VM regression runner: devcg's kernel checks on every kernel of
# vm/kernels.toml (the host kernel directly; Debian's 6.1, 6.12 and unstable under
# virtme-ng), compared with vm/expected/<kernel>.json. Installs what it
# needs (apt-get: qemu-system-x86 busybox-static kmod file, never removing
# a package; pip: virtme-ng in a venv under target/vm-cache). Needs root:
# without it, prints one line and exits 0.
#
#   scripts/vm.sh                     # negative control, then the matrix
#                                     # (JUnit XML: target/vm-results/junit.xml)
#   scripts/vm.sh --kernel debian-6.1 # options go to devcg-vm (see --help)
#   scripts/vm.sh --negative-control  # only the negative control
#   DEVCG_VM_ACCEL=tcg scripts/vm.sh  # force an accelerator (auto, kvm, tcg)
#
# Exit: 0 every result as expected; 1 a result differs (a regression, a
# kernel that did not boot, a failed negative control); 2 the runner could
# not start; 3 nothing differs but some kernel could not be tested (the
# tools or the kernel package could not be installed, or installing them
# would have removed a package).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "vm: SKIPPED: the kernel matrix needs root (running as uid $(id -u))"
    exit 0
fi
cargo build --release --quiet -p devcg -p devcg-vm --bins
runner=target/release/devcg-vm

# Negative control, on the host column (no VM): the recorded expectations
# with one deliberately wrong entry must fail the runner with exactly that
# difference. Its files live under target/, never in a temporary directory.
negative_control() {
    local dir=target/vm-results-negative
    rm -rf "$dir"
    mkdir -p "$dir/expected"
    python3 - vm/expected/host.json "$dir/expected/host.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
e["checks"]["kernel-check"] = "fail"   # it passes whenever the suite runs
json.dump(e, open(sys.argv[2], "w"))
PY
    local rc=0
    "$runner" --kernel host --cases 5 --expected-dir "$dir/expected" \
        --results-dir "$dir" --json >"$dir/out.json" || rc=$?
    python3 - "$rc" "$dir/out.json" <<'PY'
import json, sys
rc, m = int(sys.argv[1]), json.load(open(sys.argv[2]))
want = [("host", "kernel-check", "fail", "pass")]
got = [(d["kernel"], d.get("check"), d.get("expected"), d.get("observed")) for d in m["differences"]]
if rc != 1 or got != want:
    print(f"vm: negative control FAILED: exit {rc}, differences {got}, wanted exit 1 and {want}")
    sys.exit(1)
print("vm: negative control ok: a wrong expectation for the host column fails the runner")
PY
}

if [ "$#" -eq 1 ] && [ "$1" = --negative-control ]; then
    negative_control
    exit
fi
if [ "$#" -eq 0 ]; then
    negative_control || exit 1
    # The whole matrix also as JUnit XML, for CI's test report.
    rc=0
    "$runner" --junit target/vm-results/junit.xml || rc=$?
    # Then a kernel by path, as a kernel developer passes a build of their
    # own (--image): the cached Debian 6.12 image and its modules, which
    # must give 6.12's column.
    img=$(find target/vm-cache/kernels -path '*linux-image-6.12*/boot/vmlinuz-*' 2>/dev/null | head -n 1)
    if [ "$rc" = 0 ] && [ -n "$img" ]; then
        release=${img##*/vmlinuz-}
        root=${img%/boot/*}
        echo "vm: the same kernel by path: --image $img"
        "$runner" --image "$img" --modules "$root/lib/modules/$release" \
            --expected vm/expected/debian-6.12.json --results-dir target/vm-results-image || rc=$?
    fi
    exit "$rc"
fi
"$runner" "$@"
