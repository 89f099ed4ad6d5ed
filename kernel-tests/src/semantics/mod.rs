//! What the kernel does with device programs, one named check each, run on
//! the real kernel in a fresh scratch directory: attachment lifetimes,
//! attach flags, links, queries, which operations reach a program and with
//! what, the v1/v2 interplay, and the oracle against the v1 controller.
//!
//! [`checks`] lists them; [`run`] runs one and never panics: an error of
//! the driver is a `Fail` with the error as the observation. Without root,
//! cgroup2 or the right to load programs every check is a `Skip` saying
//! what is missing.
//!
//! This module holds the registry and the runner; the checks live by what
//! they look at: `attach` (attachment lifetimes, flags, links, queries),
//! `access` (which operations reach a program, and with what),
//! `namespaces` (user namespaces: mknod, mounts, the device-guard flag)
//! and `v1` (the v1 controller, alone and with cgroup2), over the
//! programs and counters of `programs` and the probing of `observe`.

mod access;
mod attach;
mod namespaces;
mod observe;
mod programs;
mod v1;

use serde::Serialize;

use crate::error::KernelError;
use crate::v2::{self, Scratch};

/// How a semantic check ended: the kernel did what it names, did not, or
/// the check could not run here (and why).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum SemanticStatus {
    Pass,
    Fail,
    Skip(String),
}

/// One check's report: what it expects, what it saw, how it ended.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub expected: String,
    pub observed: String,
    pub status: SemanticStatus,
}

/// What a check function concludes.
enum Finding {
    Seen { pass: bool, observed: String },
    Skip(String),
}

fn seen(pass: bool, observed: impl Into<String>) -> Result<Finding, KernelError> {
    Ok(Finding::Seen {
        pass,
        observed: observed.into(),
    })
}

/// One named kernel fact and how to observe it.
pub struct Check {
    pub name: &'static str,
    pub expected: &'static str,
    body: fn(&mut Scratch) -> Result<Finding, KernelError>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

/// Every check, in report order.
pub fn checks() -> Vec<Check> {
    macro_rules! c {
        ($module:ident :: $name:ident, $expected:expr) => {
            Check {
                name: stringify!($name),
                expected: $expected,
                body: $module::$name,
            }
        };
    }
    vec![
        c!(attach::close_fd_keeps_attachment, "closing the program fd leaves a BPF_PROG_ATTACH attachment in force"),
        c!(attach::detach_removes_attachment, "BPF_PROG_DETACH removes the attachment: allowed again, nothing listed"),
        c!(attach::rmdir_removes_attachment, "removing the cgroup releases its attachment (the program is freed once no fd holds it)"),
        c!(attach::second_none_attach_replaces, "a second attach with flags NONE replaces the first program"),
        c!(attach::multi_every_program_must_allow, "ALLOW_MULTI: every attached program runs and each must allow"),
        c!(attach::parent_and_child_programs_both_apply, "MULTI on parent and child: a task in the child needs both to allow"),
        c!(attach::override_lets_child_replace_parent, "ALLOW_OVERRIDE on the parent: a child's own program replaces the parent's for the child; below a NONE parent nothing may attach (EPERM)"),
        c!(attach::replace_swaps_one_program_in_place, "MULTI|REPLACE swaps one program for another in its place, the others untouched; a wrong old program is refused"),
        c!(attach::link_detaches_on_last_close_survives_while_pinned, "a bpf_link applies while an fd or a pin holds it and detaches when the last one goes"),
        c!(attach::fd_across_exec_keeps_attachment, "a link fd inherited across exec keeps the program attached until that process exits"),
        c!(attach::query_returns_ids_and_flags, "BPF_PROG_QUERY lists the attached ids in order with the cgroup's and each program's flags; EFFECTIVE includes the parent's"),
        c!(access::access_f_ok_reaches_program_with_access_0, "access(F_OK) runs the program with access 0: a program denying only access 0 fails access(F_OK) and lets open through"),
        c!(access::block_open_runs_program_twice, "an open of a block node runs the program twice (inode permission, then the block layer); a char open once"),
        c!(access::zero_zero_char_node_not_checked, "a char 0:0 node is not checked on open: no program run, ENXIO even under deny-all"),
        c!(access::fifos_are_never_checked, "mknod and open of a FIFO never reach the program"),
        c!(access::nodev_mount_gives_eacces_first, "on a nodev mount an open fails with EACCES before the program runs"),
        c!(v1::v1_and_v2_both_must_allow, "a task in a v1 devices cgroup and a v2 cgroup with a program needs both to allow"),
        c!(namespaces::device_guard_flag_is_not_honoured, "bit 7 of prog_flags, the 2023 RFC's BPF_F_CGROUP_DEVICE_GUARD (never merged), grants nothing; mknod in a user namespace stays EPERM"),
        c!(namespaces::mknod_in_user_namespace_is_eperm, "mknod of a device in a non-initial user namespace is EPERM even when the program allows it, and the program never runs"),
        c!(namespaces::nodes_on_user_namespace_mount_give_eacces, "a c 1:3 node on a tmpfs mounted inside a new user namespace cannot be opened (EACCES) and the program never runs, while the same node on a tmpfs of the initial user namespace opens under the same allow-all program"),
        c!(namespaces::mknod_on_user_namespace_mount_is_eperm, "mknod of c 1:3 on a tmpfs mounted inside a new user namespace, from inside, is EPERM and the program never runs (on a tmpfs of the initial user namespace it succeeds, one run)"),
        c!(v1::v1_controller_matches_oracle, "the real v1 controller and the oracle agree on devices.list and every probed verdict for random rule lists"),
    ]
}

/// The check named `name`.
pub fn by_name(name: &str) -> Option<Check> {
    checks().into_iter().find(|c| c.name == name)
}

/// Runs one check in a fresh scratch directory.
pub fn run(check: &Check) -> CheckResult {
    let result = |status, observed: String| CheckResult {
        name: check.name.to_string(),
        expected: check.expected.to_string(),
        observed,
        status,
    };
    if let Some(why) = v2::skip_reason() {
        return result(SemanticStatus::Skip(why.clone()), why);
    }
    let outcome = Scratch::new()
        .and_then(|s| s.ok_or(KernelError::NoCgroup2))
        .and_then(|mut scratch| (check.body)(&mut scratch));
    match outcome {
        Ok(Finding::Seen { pass, observed }) => result(
            if pass {
                SemanticStatus::Pass
            } else {
                SemanticStatus::Fail
            },
            observed,
        ),
        Ok(Finding::Skip(why)) => result(SemanticStatus::Skip(why.clone()), why),
        Err(e) => result(SemanticStatus::Fail, format!("error: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = checks().iter().map(|c| c.name).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
