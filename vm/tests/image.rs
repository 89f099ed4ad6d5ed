//! `devcg vm --image PATH`: a kernel by path. A kernel whose config lacks
//! an option devcg needs is refused before anything boots, naming the
//! option; the cached Debian 6.12 image, standing in for a developer's
//! build, runs the full column (ignored by default: a real boot):
//!
//! ```sh
//! cargo test --release -p devcg-vm --test image -- --ignored --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use devcg_vm::image::{NEEDED, TREE_IMAGE};

/// A built tree as far as the runner looks before booting: a bzImage with
/// a setup header, and a `.config`.
fn fake_tree(dir: &Path, config: &str) {
    let mut img = vec![0u8; 0x400];
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
    img[0x300..0x30e].copy_from_slice(b"6.19.0-rc1 #1\0");
    let file = dir.join(TREE_IMAGE);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, img).unwrap();
    std::fs::write(dir.join(".config"), config).unwrap();
}

fn runner(dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_devcg-vm"))
        .arg("--image")
        .arg(dir.join("tree"))
        .arg("--results-dir")
        .arg(dir.join("results"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["--no-install", "--devcg", "/bin/true"])
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn a_kernel_lacking_an_option_is_refused_before_boot_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let config: String = NEEDED
        .iter()
        .filter(|n| n.option != "CONFIG_CGROUP_BPF")
        .map(|n| format!("{}=y\n", n.option))
        .collect();
    fake_tree(
        &t.path().join("tree"),
        &format!("{config}# CONFIG_CGROUP_BPF is not set\n"),
    );
    let out = runner(t.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refused before booting"), "{err}");
    assert!(err.contains("CONFIG_CGROUP_BPF ("), "{err}");
    assert!(err.contains(".config"), "{err}");
    // Nothing was started: no results, no cache, no guest command.
    assert!(!t.path().join("results").exists());
    assert!(!t.path().join("cache").exists());
    // For `git bisect run`, a runner error stops the bisection.
    assert_eq!(runner(t.path(), &["--check", "x"]).status.code(), Some(128));
}

#[test]
fn what_is_not_a_kernel_is_a_runner_error() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("tree")).unwrap();
    let out = runner(t.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a built kernel tree"));
}

fn cached_debian_612() -> Option<PathBuf> {
    let cache = std::env::var_os("DEVCG_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| devcg_vm::workspace_root().join("target/vm-cache"));
    let kernels = cache.join("kernels");
    let root = std::fs::read_dir(&kernels)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("linux-image-6.12."))
        })
        .max()?;
    std::fs::read_dir(root.join("boot"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
}

/// The Debian 6.12 image and its modules by path, against 6.12's expected
/// file: the same column as `--kernel debian-6.12`.
#[test]
#[ignore = "boots a real guest (about 30 s under TCG); run with --ignored"]
fn the_cached_debian_kernel_by_path_runs_the_full_column() {
    let Some(vmlinuz) = cached_debian_612() else {
        eprintln!(
            "SKIPPED: no cached Debian 6.12 kernel (run scripts/vm.sh --kernel debian-6.12 once)"
        );
        return;
    };
    let root = vmlinuz.parent().unwrap().parent().unwrap();
    let release = vmlinuz.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    let modules = root.join("lib/modules").join(&release);
    let ws = devcg_vm::workspace_root();
    let opts = devcg_vm::Options {
        images: vec![vmlinuz.clone()],
        modules: vec![modules],
        expected: Some(ws.join("vm/expected/debian-6.12.json")),
        results_dir: Some(ws.join("target/vm-results-image")),
        ..Default::default()
    };
    let m = devcg_vm::run(&opts).expect("runner error");
    eprintln!("{m}");
    let k = &m.kernels[0];
    // The column is named by the release ('+' is not a column name character).
    assert_eq!(k.name, release.replace('+', "_"));
    assert_eq!(k.release.as_deref(), Some(release.as_str()));
    assert!(k.outcome.ran(), "{:?}", k.outcome);
    assert!(m.ok, "{m}");
    assert!(k.check("kernel-check").is_some() && k.check("verify-kernel").is_some());
}

/// A kernel whose config cannot be found is not refused: it is booted
/// unchecked, and the matrix says so. (Here nothing boots: with installing
/// off and an empty cache there is no virtme-ng, and the column is
/// unavailable.)
#[test]
fn a_kernel_without_a_config_is_noted_not_refused() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    fake_tree(&tree, "");
    std::fs::remove_file(tree.join(".config")).unwrap();
    let opts = devcg_vm::Options {
        images: vec![tree],
        results_dir: Some(t.path().join("results")),
        cache_dir: Some(t.path().join("cache")),
        devcg: Some(PathBuf::from("/bin/true")),
        no_install: true,
        ..Default::default()
    };
    let m = devcg_vm::run(&opts).unwrap();
    assert_eq!(m.kernels[0].name, "6.19.0-rc1");
    assert!(
        m.notes
            .iter()
            .any(|n| n.contains("no config found") && n.contains("booted unchecked")),
        "{m}"
    );
}

/// Every cached Debian kernel, old layout (`boot/vmlinuz-R`, `config-R`
/// beside it) and new (`usr/lib/modules/R/{vmlinuz,config}`), is read
/// before booting: release, config and modules found, nothing missing.
#[test]
fn cached_debian_kernels_are_inspected_before_boot() {
    let kernels = devcg_vm::workspace_root().join("target/vm-cache/kernels");
    let Ok(entries) = std::fs::read_dir(&kernels) else {
        eprintln!("SKIPPED: no cached kernels in {}", kernels.display());
        return;
    };
    let mut seen = 0;
    for root in entries.flatten().map(|e| e.path()) {
        let images: Vec<PathBuf> = ["boot", "usr/lib/modules"]
            .iter()
            .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
            .flat_map(|r| r.flatten().map(|e| e.path()))
            .map(|p| if p.is_dir() { p.join("vmlinuz") } else { p })
            .filter(|p| {
                p.is_file()
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz"))
            })
            .collect();
        for image in images {
            let img = devcg_vm::Image::inspect(&image, None).unwrap();
            let release = img.release.clone().expect("a release in the setup header");
            assert!(img.config.is_some(), "{}: no config", image.display());
            assert!(
                img.modules.as_ref().is_some_and(|m| m.ends_with(&release)),
                "{}: modules {:?}",
                image.display(),
                img.modules
            );
            assert_eq!(img.missing(), Vec::<String>::new(), "{}", image.display());
            seen += 1;
        }
    }
    eprintln!("{seen} cached kernel(s) inspected");
}
