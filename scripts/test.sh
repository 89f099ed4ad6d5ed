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

# Each phase prints its wall time when it ends, and the whole run its total.
start=$SECONDS
phase_name=
phase_start=$SECONDS
phase() {
    [ -z "$phase_name" ] || echo "-- $phase_name: $((SECONDS - phase_start)) s"
    phase_name=$1
    phase_start=$SECONDS
    [ -z "$phase_name" ] || echo "== $phase_name"
}

phase format
cargo fmt --all -- --check

phase install
# Debian packages the tests use, when missing and when we may install; never
# removing anything. Tests that need them skip with one line otherwise.
apt_install() { # PACKAGE WHAT-SKIPS
    if [ "$(id -u)" = 0 ] && need apt-get; then
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-remove "$1" >/dev/null 2>&1; then
            apt-get update -q >/dev/null 2>&1 || true
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends --no-remove "$1" >/dev/null 2>&1 \
                || echo "install: $1 could not be installed; $2 will skip"
        fi
    fi
}
# The runtimes whose real programs the tests audit (runc, crun and LXC).
for runtime in runc crun; do
    need "$runtime" || apt_install "$runtime" "its real-runtime test"
    need "$runtime" && echo "$runtime: $($runtime --version | head -n 1)"
done
need lxc-start || apt_install lxc "its real-runtime test"
need lxc-start && echo "lxc: $(lxc-start --version | head -n 1)"
# youki's generator crate (libcgroups) builds libbpf from source, which
# needs the libelf and zlib headers and pkg-config: without them the build
# fails.
for pkg in libelf-dev zlib1g-dev pkg-config; do
    dpkg -s "$pkg" >/dev/null 2>&1 || apt_install "$pkg" "nothing (the build fails)"
done
# ELF objects: bpftool (libbpf) loads devcg's objects in the kernel tests;
# clang and libbpf-dev build the C example filter (examples/filter.c).
need bpftool || apt_install bpftool "the bpftool loading test"
need bpftool && echo "bpftool: $(bpftool version | head -n 1)"
need clang || apt_install clang "the C example test"
[ -e /usr/include/bpf/bpf_helpers.h ] || apt_install libbpf-dev "the C example test"
need clang && echo "clang: $(clang --version | head -n 1)"

phase build
# `--features devcg/youki`: `devcg runtime youki` runs youki's own generator.
cargo build --workspace --all-targets --release --features devcg/youki

phase tests
# Kernel tests fork probes into scratch cgroups: keep them from racing on
# the two cores with the rest.
cargo test --workspace --release --features devcg/youki -- --test-threads=2

phase fuzz
# Every input kind (v1 rules, OCI JSON, oracle scripts, programs raw,
# JSON, ELF and assembly text), mutated from the repository's seeds, up to 1M inputs or 20 s
# each: any panic or an input over 2 s fails; `timeout` turns a hang into
# a failure too.
timeout 300 cargo run --release --quiet -p devcg-fuzz -- --seconds 20 --seed 0 || {
    echo "fuzz: FAILED (exit $?; 124 is a hang): inputs kept in target/fuzz-failures/" >&2
    exit 1
}

phase "main job"
cargo run --release --quiet -- verify --cases 500

phase vm
# The kernel matrix (vm/kernels.toml: the host kernel, Debian's 6.1, 6.12 and unstable
# under virtme-ng) against vm/expected/. scripts/vm.sh installs what it needs;
# when it cannot (exit 3: apt-get, pip or a kernel download failed) this
# prints one line and skips. Any result that differs from the expected one
# fails (exit 1), and so does a runner error (exit 2).
vm_rc=0
scripts/vm.sh || vm_rc=$?
case "$vm_rc" in
    0) ;;
    3) echo "vm: SKIPPED: could not install the VM tools or fetch a kernel (logs: target/vm-cache/logs, matrix: target/vm-results/matrix.json)" ;;
    *) echo "vm: FAILED (exit $vm_rc): see the matrix above and target/vm-results/" >&2
       exit "$vm_rc" ;;
esac

phase "benchmarks (quick)"
# A smoke run of the benchmarks: writes target/bench-quick/, never the
# committed BENCHMARKS.md, and asserts nothing about timings.
scripts/bench.sh --quick
phase ""
echo "-- all phases: $((SECONDS - start)) s"
