//! The script each column runs as root (inside the guest, or directly on
//! the host), and reading back what it left in its results directory.
//!
//! The guest sees the host's filesystem through virtme-ng, so it runs the
//! host's devcg binary and writes into the results directory, which is
//! shared read-write (`vng --rwdir`). Files, per step NAME: `NAME.out`,
//! `NAME.err`, `NAME.rc`; and `uname`, `started` (first thing the script
//! does: the end of the boot), `cgroup-mounts`, `done` (last thing).

use std::path::{Path, PathBuf};

use crate::config::Limits;

/// One command the script runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// File stem in the results directory.
    pub name: &'static str,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Shell lines before and after the command.
    pub before: &'static str,
    pub after: &'static str,
}

/// A pure-cgroup2 guest has no v1 `devices` hierarchy, and the v1 checks of
/// kernel-check skip there. This step mounts one beside /sys/fs/cgroup
/// (the devices controller is free on v2: it has no v2 counterpart), runs
/// only the v1 checks, and unmounts it. Where one is mounted already (a
/// hybrid host) it is used as it is.
const V1_BEFORE: &str = r#"V1=
if ! grep -qE ' - cgroup [^ ]+ ([^ ]*,)?devices(,|$)' /proc/self/mountinfo; then
    V1=/run/devcg-vm-v1-devices
    mkdir -p "$V1" && mount -t cgroup -o devices devcg-vm-v1 "$V1" || { rmdir "$V1" 2>/dev/null; V1=; }
fi
"#;
const V1_AFTER: &str = r#"if [ -n "$V1" ]; then umount "$V1" && rmdir "$V1"; fi
"#;

/// The kernel-check suite on the pure cgroup2 system, its v1 checks again
/// with a v1 `devices` hierarchy mounted (when `v1` is set), then the
/// three-way differential: all of it devcg's.
pub fn steps(limits: &Limits, v1: bool, devcg: &Path) -> Vec<Step> {
    let mut steps = vec![Step {
        name: "kernel-check",
        program: devcg.to_owned(),
        args: vec!["kernel-check".into(), "--json".into()],
        before: "",
        after: "",
    }];
    if v1 {
        steps.push(Step {
            name: "kernel-check-v1",
            program: devcg.to_owned(),
            args: vec![
                "kernel-check".into(),
                "--json".into(),
                "--only".into(),
                "v1_".into(),
            ],
            before: V1_BEFORE,
            after: V1_AFTER,
        });
    }
    steps.push(Step {
        name: "verify",
        program: devcg.to_owned(),
        args: vec![
            "verify".into(),
            "--kernel".into(),
            "--cases".into(),
            limits.cases.to_string(),
            "--json".into(),
        ],
        before: "",
        after: "",
    });
    steps
}

/// Single-quoted for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// In a guest, /tmp is an overlay over the host's /tmp: the suite would see
/// the host's probe directories there, owned by pids that do not exist in
/// the guest, and take them for leftovers. The guest's steps get a temp
/// directory of their own, on a fresh tmpfs.
const GUEST_TMP: &str = r#"mkdir -p /run/devcg-vm-tmp && mount -t tmpfs -o mode=1777 devcg-vm-tmp /run/devcg-vm-tmp && export TMPDIR=/run/devcg-vm-tmp
"#;

/// An allowed open of a driverless major ends in ENXIO only after the
/// kernel has asked for a module (`char-major-M-N`, `block-major-M-N`):
/// it starts /sbin/modprobe as a usermode helper, which in a TCG guest
/// reading the host's root over 9p takes tens of milliseconds, every
/// time. That was nearly all of a guest's probe time (three rule sets
/// 82 s, without it 2.3 s). The device cgroup has decided before the
/// module is asked for, so the verdicts are the same. Guests only: the
/// host's module loader is never touched. Modules the guest needs are
/// loaded at boot, before the script runs.
const GUEST_NO_MODPROBE: &str = r#"cat /proc/sys/kernel/modprobe > "$R/modprobe-was" 2>&1; echo > /proc/sys/kernel/modprobe
"#;

pub fn script(
    kernel: &str,
    results: &Path,
    limits: &Limits,
    steps: &[Step],
    guest: bool,
) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Written by devcg-vm for kernel {kernel}: runs as root, inside the guest\n# (or directly on the host for the host column). Every step has a timeout.\n"
    ));
    s.push_str(&format!("R={}\n", sh_quote(&results.to_string_lossy())));
    s.push_str("cd /\n");
    s.push_str("uname -r > \"$R/uname\"\n");
    s.push_str(": > \"$R/started\"\n");
    s.push_str("id -u > \"$R/uid\"\n");
    s.push_str("grep -E ' - cgroup2? ' /proc/self/mountinfo > \"$R/cgroup-mounts\" 2>&1\n");
    if guest {
        s.push_str(GUEST_TMP);
        s.push_str(GUEST_NO_MODPROBE);
    }
    let t = limits.step_timeout_secs;
    for step in steps {
        let args: Vec<String> = step.args.iter().map(|a| sh_quote(a)).collect();
        s.push_str(step.before);
        s.push_str(&format!(
            "timeout -k 10 {t} {} {} > \"$R/{n}.out\" 2> \"$R/{n}.err\" < /dev/null\necho $? > \"$R/{n}.rc\"\n",
            sh_quote(&step.program.to_string_lossy()),
            args.join(" "),
            n = step.name
        ));
        s.push_str(step.after);
    }
    s.push_str("sync\n: > \"$R/done\"\nsync\n");
    s
}

/// What one step left behind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepOutput {
    pub name: String,
    /// None when the step never finished (no `.rc` file).
    pub rc: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// What the script left behind.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    pub started: bool,
    pub done: bool,
    pub uname: Option<String>,
    pub uid: Option<u32>,
    pub cgroup_mounts: Vec<String>,
    pub steps: Vec<StepOutput>,
}

pub fn collect(results: &Path, steps: &[Step]) -> Collected {
    let read = |name: &str| std::fs::read_to_string(results.join(name)).ok();
    Collected {
        started: results.join("started").exists(),
        done: results.join("done").exists(),
        uname: read("uname")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()),
        uid: read("uid").and_then(|s| s.trim().parse().ok()),
        cgroup_mounts: read("cgroup-mounts")
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default(),
        steps: steps
            .iter()
            .map(|st| StepOutput {
                name: st.name.to_string(),
                rc: read(&format!("{}.rc", st.name)).and_then(|s| s.trim().parse().ok()),
                stdout: read(&format!("{}.out", st.name)).unwrap_or_default(),
                stderr: read(&format!("{}.err", st.name)).unwrap_or_default(),
            })
            .collect(),
    }
}

/// A fresh, empty results directory for one kernel.
pub fn fresh_dir(dir: &Path) -> std::io::Result<PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }

    #[test]
    fn the_script_runs_steps_with_timeouts_and_marks_start_and_end() {
        let limits = Limits {
            cases: 7,
            v1_checks: true,
            boot_timeout_secs: 1,
            kvm_boot_timeout_secs: 1,
            run_timeout_secs: 2,
            step_timeout_secs: 33,
        };
        let st = steps(&limits, true, Path::new("/bin/devcg"));
        let names: Vec<_> = st.iter().map(|s| s.name).collect();
        assert_eq!(names, ["kernel-check", "kernel-check-v1", "verify"]);
        let s = script("k", Path::new("/r es"), &limits, &st, true);
        assert!(s.contains("R='/r es'\n"));
        assert!(s.contains(
            "timeout -k 10 33 '/bin/devcg' 'kernel-check' '--json' > \"$R/kernel-check.out\""
        ));
        assert!(!s.contains("guest-check"));
        assert!(s.contains("'verify' '--kernel' '--cases' '7' '--json'"));
        assert!(s.contains("'kernel-check' '--json' '--only' 'v1_' > \"$R/kernel-check-v1.out\""));
        let mount = s.find("mount -t cgroup -o devices").unwrap();
        let umount = s.find("umount \"$V1\"").unwrap();
        let v1 = s.find("kernel-check-v1.out").unwrap();
        assert!(mount < v1 && v1 < umount);
        let started = s.find("\"$R/started\"").unwrap();
        let first_step = s.find("timeout -k").unwrap();
        let done = s.find("\"$R/done\"").unwrap();
        assert!(started < first_step && first_step < done);
        let tmp = s.find("export TMPDIR=").unwrap();
        assert!(tmp < first_step);
        let modprobe = s.find("echo > /proc/sys/kernel/modprobe").unwrap();
        assert!(started < modprobe && modprobe < first_step);
        let host = script("k", Path::new("/r"), &limits, &st, false);
        assert!(
            !host.contains("TMPDIR") && !host.contains("modprobe"),
            "{host}"
        );
    }

    #[test]
    fn collect_reads_what_a_run_left() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            cases: 1,
            v1_checks: false,
            boot_timeout_secs: 1,
            kvm_boot_timeout_secs: 1,
            run_timeout_secs: 2,
            step_timeout_secs: 3,
        };
        let st = steps(&limits, false, Path::new("d"));
        std::fs::write(dir.path().join("uname"), "6.1.0-56-amd64\n").unwrap();
        std::fs::write(dir.path().join("started"), "").unwrap();
        std::fs::write(dir.path().join("kernel-check.rc"), "1\n").unwrap();
        std::fs::write(dir.path().join("kernel-check.out"), "[]").unwrap();
        let c = collect(dir.path(), &st);
        assert!(c.started && !c.done);
        assert_eq!(c.uname.as_deref(), Some("6.1.0-56-amd64"));
        assert_eq!(c.steps[0].rc, Some(1));
        assert_eq!(c.steps[0].stdout, "[]");
        assert_eq!(c.steps[1].rc, None);
        assert_eq!(c.steps[1].name, "verify");
    }
}
