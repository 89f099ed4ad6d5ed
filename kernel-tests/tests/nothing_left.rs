//! After a run of everything that creates state (the semantics checks, the
//! differential, the fidelity run, the v1 driver), nothing devcg made is
//! left: `find /sys/fs/cgroup -maxdepth 4 -iname '*devcg*'`,
//! `find /sys/fs/bpf -iname '*devcg*'` and the temp dir show nothing of
//! this process, nor of any dead one (a killed run's leftovers are removed
//! by the next run). Entries of other live devcg processes are tolerated.
//! One test in its own binary, so that no sibling test holds live state.

use std::path::{Path, PathBuf};

use devcg_kernel::owned::{owner_pid, pid_alive, BPFFS_PREFIX, NODES_PREFIX, SCRATCH_PREFIX};
use devcg_kernel::{differential, fidelity, semantics, v1, v2};

fn walk(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_lowercase();
        if name.contains("devcg") {
            out.push(e.path());
        }
        if depth > 1 && e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&e.path(), depth - 1, out);
        }
    }
}

/// devcg entries that are this process's or a dead one's.
fn ours_or_dead(found: Vec<PathBuf>) -> Vec<PathBuf> {
    let me = std::process::id() as i32;
    found
        .into_iter()
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let pid = [NODES_PREFIX, BPFFS_PREFIX, SCRATCH_PREFIX]
                .iter()
                .find_map(|prefix| owner_pid(n, prefix));
            pid.is_some_and(|pid| pid == me || !pid_alive(pid))
        })
        .collect()
}

#[test]
fn nothing_is_left_behind() {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return;
    }
    for check in semantics::checks() {
        let r = semantics::run(&check);
        assert_ne!(
            r.status,
            semantics::SemanticStatus::Fail,
            "{}: {}",
            r.name,
            r.observed
        );
    }
    differential::three_way(&devcg_engine::strategy::all(), 5, 9).unwrap();
    fidelity::fidelity(40, 9).unwrap();
    if v1::skip_reason().is_none() {
        let mut s = v1::Scratch::new().unwrap().unwrap();
        s.mkdir("a").unwrap();
        s.probe(
            "a",
            &[v1::Device::new(devcg_engine::DeviceType::Char, 100, 1)],
        )
        .unwrap();
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, &mut found);
    walk(Path::new("/sys/fs/bpf"), 16, &mut found);
    for bpffs in devcg_kernel::mounts::bpffs(&devcg_kernel::mounts::read()) {
        walk(&bpffs, 16, &mut found);
    }
    walk(&devcg_kernel::owned::temp_dir(), 1, &mut found);
    let left = ours_or_dead(found);
    assert!(left.is_empty(), "left behind: {left:?}");
    let mounts: Vec<_> = devcg_kernel::mounts::read()
        .into_iter()
        .filter(|m| {
            m.mount_point
                .to_string_lossy()
                .contains(&format!("-{}-", std::process::id()))
        })
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
}
