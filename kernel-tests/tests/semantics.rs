//! Every kernel semantics check of `devcg_kernel::semantics`, one test
//! each. A `Fail` panics with what was observed; a `Skip` prints one line.

use devcg_kernel::semantics::{self, SemanticStatus};

fn check(name: &str) {
    let check = semantics::by_name(name).unwrap_or_else(|| panic!("no check {name}"));
    let r = semantics::run(&check);
    match r.status {
        SemanticStatus::Pass => println!("{name}: {}", r.observed),
        SemanticStatus::Skip(why) => println!("{why}"),
        SemanticStatus::Fail => {
            panic!("{name}\nexpected: {}\nobserved: {}", r.expected, r.observed)
        }
    }
}

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { check(stringify!($name)); })*

        /// The list above is the library's list.
        #[test]
        fn every_check_has_a_test() {
            let mut here = vec![$(stringify!($name)),*];
            let mut lib: Vec<_> = semantics::checks().iter().map(|c| c.name).collect();
            here.sort_unstable();
            lib.sort_unstable();
            assert_eq!(here, lib);
        }
    };
}

checks!(
    close_fd_keeps_attachment,
    detach_removes_attachment,
    rmdir_removes_attachment,
    second_none_attach_replaces,
    multi_every_program_must_allow,
    parent_and_child_programs_both_apply,
    override_lets_child_replace_parent,
    replace_swaps_one_program_in_place,
    link_detaches_on_last_close_survives_while_pinned,
    fd_across_exec_keeps_attachment,
    query_returns_ids_and_flags,
    access_f_ok_reaches_program_with_access_0,
    block_open_runs_program_twice,
    zero_zero_char_node_not_checked,
    fifos_are_never_checked,
    nodev_mount_gives_eacces_first,
    v1_and_v2_both_must_allow,
    device_guard_flag_is_not_honoured,
    mknod_in_user_namespace_is_eperm,
    nodes_on_user_namespace_mount_give_eacces,
    mknod_on_user_namespace_mount_is_eperm,
    v1_controller_matches_oracle,
);
