//! Debian kernels: a package name (or pattern) resolved with apt, fetched
//! with `apt-get download` and unpacked with `dpkg -x` into the cache.
//! Nothing is installed into /boot or /lib/modules.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::apt::Apt;
use crate::config::{glob_match, natural_cmp, KernelSpec};
use crate::proc::run_logged;

/// A kernel unpacked in the cache, ready for `vng --run`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FetchedKernel {
    /// Binary package, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Its Debian version, e.g. `6.1.192-2`.
    pub version: String,
    /// Where it is unpacked (`<root>/boot`, `<root>/lib/modules`).
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
}

const MARKER: &str = ".devcg-vm-complete";

/// The newest cached unpack matching the entry, else the newest available
/// package, downloaded and unpacked. `refresh` skips the cache lookup.
pub fn fetch(
    spec: &KernelSpec,
    cache: &Path,
    apt: &mut Apt,
    refresh: bool,
) -> Result<FetchedKernel, String> {
    let pattern = spec
        .package
        .as_deref()
        .ok_or_else(|| format!("kernel {}: no package", spec.name))?;
    let fallback = spec.suite_package.as_deref().unwrap_or(pattern);
    let kernels = cache.join("kernels");
    if !refresh {
        // The configured sources' build first, the suite's only without it.
        let cached = newest_cached(&kernels, pattern).or_else(|| {
            spec.suite
                .as_ref()
                .and_then(|_| newest_cached(&kernels, fallback))
        });
        if let Some(k) = cached {
            return Ok(k);
        }
    }
    if !apt.allowed {
        return Err(format!(
            "no unpacked kernel matching {pattern} in {} and installing is turned off",
            kernels.display()
        ));
    }
    apt.update(false)?;
    let mut candidates = apt_candidates(apt, pattern)?;
    if candidates.is_empty() {
        if let Some(suite) = &spec.suite {
            apt.add_suite(suite)?;
            apt.update(false)?;
            candidates = apt_candidates(apt, fallback)?;
        }
    }
    if candidates.is_empty() {
        return Err(match &spec.suite {
            Some(suite) => format!(
                "no package matches {pattern} in the configured apt sources, nor {fallback} in {suite}"
            ),
            None => format!("no package matches {pattern} in the configured apt sources"),
        });
    }
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    let mut errors = Vec::new();
    for package in candidates.iter().take(3) {
        match download_and_unpack(package, &debs, &kernels, apt) {
            Ok(k) => return Ok(k),
            Err(e) => errors.push(e),
        }
    }
    Err(errors.join("; "))
}

fn newest_cached(kernels: &Path, pattern: &str) -> Option<FetchedKernel> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(kernels)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (glob_match(pattern, &name) && e.path().join(MARKER).is_file())
                .then(|| (name, e.path()))
        })
        .collect();
    found.sort_by(|a, b| natural_cmp(&b.0, &a.0));
    found
        .into_iter()
        .find_map(|(name, root)| unpacked(&name, &root).ok())
}

fn unpacked(package: &str, root: &Path) -> Result<FetchedKernel, String> {
    let version = std::fs::read_to_string(root.join(MARKER))
        .map_err(|e| format!("{}: {e}", root.display()))?
        .trim()
        .to_string();
    let vmlinuz = find_vmlinuz(root).ok_or_else(|| {
        format!(
            "{} holds no boot/vmlinuz-* nor usr/lib/modules/*/vmlinuz",
            root.display()
        )
    })?;
    Ok(FetchedKernel {
        package: package.to_string(),
        version,
        root: root.to_owned(),
        vmlinuz,
    })
}

/// `boot/vmlinuz-<release>` (Debian up to 6.x), or
/// `usr/lib/modules/<release>/vmlinuz` (sid's split packages, where
/// virtme-ng finds the modules beside it).
fn find_vmlinuz(root: &Path) -> Option<PathBuf> {
    let entries = |d: PathBuf| -> Vec<PathBuf> {
        std::fs::read_dir(d)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let in_boot = entries(root.join("boot")).into_iter().find(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
    });
    in_boot.or_else(|| {
        entries(root.join("usr/lib/modules"))
            .into_iter()
            .map(|d| d.join("vmlinuz"))
            .find(|p| p.is_file())
    })
}

/// Package names matching the pattern, newest first (`apt-cache pkgnames`
/// reads the local lists only).
fn apt_candidates(apt: &Apt, pattern: &str) -> Result<Vec<String>, String> {
    let prefix: String = pattern.chars().take_while(|&c| c != '*').collect();
    let o = apt
        .command("apt-cache")
        .arg("pkgnames")
        .arg(&prefix)
        .output()
        .map_err(|e| format!("apt-cache: {e}"))?;
    let mut names: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| glob_match(pattern, n))
        .map(str::to_string)
        .collect();
    names.sort_by(|a, b| natural_cmp(b, a));
    names.dedup();
    Ok(names)
}

fn download_and_unpack(
    package: &str,
    debs: &Path,
    kernels: &Path,
    apt: &Apt,
) -> Result<FetchedKernel, String> {
    let root = kernels.join(package);
    let tmp = kernels.join(format!("{package}.partial"));
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let (version, depends) = download_into(package, debs, &tmp, apt)?;
    // From 7.x sid splits the kernel: linux-image-R only depends on
    // linux-binary-R (the image), linux-modules-R and linux-base-R (the
    // config). Those, the dependencies built for the same release, go
    // into the same tree.
    if find_vmlinuz(&tmp).is_none() {
        for part in same_release(package, &depends) {
            download_into(&part, debs, &tmp, apt)?;
        }
    }
    std::fs::write(tmp.join(MARKER), format!("{version}\n"))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &root).map_err(|e| format!("{}: {e}", root.display()))?;
    unpacked(package, &root)
}

/// The packages of a `Depends` field built for the same kernel release as
/// `package` (`linux-image-R` -> `linux-binary-R`, `linux-modules-R`...).
fn same_release(package: &str, depends: &str) -> Vec<String> {
    let Some(release) = package.strip_prefix("linux-image-") else {
        return Vec::new();
    };
    depends
        .split([',', '|'])
        .filter_map(|d| d.split_whitespace().next())
        .filter(|name| *name != package && name.ends_with(&format!("-{release}")))
        .map(str::to_string)
        .collect()
}

/// Downloads one package and unpacks it into `into`: its version and
/// `Depends` field.
fn download_into(
    package: &str,
    debs: &Path,
    into: &Path,
    apt: &Apt,
) -> Result<(String, String), String> {
    // Leftovers of an earlier, interrupted download.
    clear_debs(debs, package);
    let log = apt.log(&format!("download-{package}.log"));
    let st = run_logged(
        apt.command("apt-get")
            .args(["-q", "download"])
            .arg(package)
            .current_dir(debs),
        &log,
        Duration::from_secs(900),
    )?;
    if !st.success() {
        return Err(format!(
            "apt-get download {package} failed ({st}); see {}",
            log.display()
        ));
    }
    let deb = find_deb(debs, package).ok_or_else(|| {
        format!(
            "apt-get download {package} left no .deb in {}",
            debs.display()
        )
    })?;
    let field = |name: &str| {
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg(name)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let (version, depends) = (field("Version"), field("Depends"));
    let st = run_logged(
        Command::new("dpkg").arg("-x").arg(&deb).arg(into),
        &apt.log(&format!("unpack-{package}.log")),
        Duration::from_secs(600),
    )?;
    if !st.success() {
        return Err(format!("dpkg -x {} failed ({st})", deb.display()));
    }
    // The unpacked tree is what counts; a .deb is up to 110 MB.
    let _ = std::fs::remove_file(&deb);
    Ok((version, depends))
}

fn find_deb(debs: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    std::fs::read_dir(debs)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
        })
}

fn clear_debs(debs: &Path, package: &str) {
    while let Some(p) = find_deb(debs, package) {
        if std::fs::remove_file(&p).is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_searched_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        for (name, complete) in [
            ("linux-image-6.1.0-9-amd64", true),
            ("linux-image-6.1.0-56-amd64", true),
            ("linux-image-6.1.0-60-amd64", false),
            ("linux-image-6.1.0-70-rt-amd64", true),
        ] {
            let boot = dir.path().join(name).join("boot");
            std::fs::create_dir_all(&boot).unwrap();
            std::fs::write(boot.join("vmlinuz-x"), "").unwrap();
            if complete {
                std::fs::write(dir.path().join(name).join(MARKER), "1.0\n").unwrap();
            }
        }
        let k = newest_cached(dir.path(), "linux-image-6.1.0-*-amd64").unwrap();
        assert_eq!(k.package, "linux-image-6.1.0-56-amd64");
        assert_eq!(k.version, "1.0");
        assert!(k.vmlinuz.ends_with("boot/vmlinuz-x"));
        assert!(newest_cached(dir.path(), "linux-image-6.12.*+*-amd64").is_none());
    }

    #[test]
    fn a_split_kernel_brings_its_parts_and_boots_from_usr_lib_modules() {
        let deps = "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1), linux-modules-7.2.13+deb14-amd64 (= 7.2.13-1)";
        assert_eq!(
            same_release("linux-image-7.2.13+deb14-amd64", deps),
            [
                "linux-base-7.2.13+deb14-amd64",
                "linux-binary-7.2.13+deb14-amd64",
                "linux-modules-7.2.13+deb14-amd64"
            ]
        );
        assert!(
            same_release("linux-image-6.1.0-56-amd64", "linux-base (>= 4.3~), kmod").is_empty()
        );
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("usr/lib/modules/7.2.13+deb14-amd64");
        std::fs::create_dir_all(&m).unwrap();
        assert_eq!(find_vmlinuz(dir.path()), None);
        std::fs::write(m.join("vmlinuz"), "").unwrap();
        assert_eq!(find_vmlinuz(dir.path()), Some(m.join("vmlinuz")));
    }

    #[test]
    fn the_configured_build_wins_over_the_suites_in_the_cache() {
        let cache = tempfile::tempdir().unwrap();
        let kernels = cache.path().join("kernels");
        for name in [
            "linux-image-6.12.100+deb12-amd64",
            "linux-image-6.12.117+deb13-amd64",
        ] {
            let boot = kernels.join(name).join("boot");
            std::fs::create_dir_all(&boot).unwrap();
            std::fs::write(boot.join("vmlinuz-x"), "").unwrap();
            std::fs::write(kernels.join(name).join(MARKER), "v\n").unwrap();
        }
        let spec: KernelSpec = toml::from_str(
            "name = \"k\"\npackage = \"linux-image-6.12.*+deb12-amd64\"\nsuite = \"trixie\"\nsuite_package = \"linux-image-6.12.*+deb13-amd64\"\n",
        )
        .unwrap();
        let mut apt = Apt::new(cache.path(), false);
        let k = fetch(&spec, cache.path(), &mut apt, false).unwrap();
        assert_eq!(k.package, "linux-image-6.12.100+deb12-amd64");
        std::fs::remove_dir_all(kernels.join("linux-image-6.12.100+deb12-amd64")).unwrap();
        let k = fetch(&spec, cache.path(), &mut apt, false).unwrap();
        assert_eq!(k.package, "linux-image-6.12.117+deb13-amd64");
        std::fs::remove_dir_all(kernels.join("linux-image-6.12.117+deb13-amd64")).unwrap();
        // Nothing cached and no installing: an error, not a run.
        assert!(fetch(&spec, cache.path(), &mut apt, false).is_err());
    }
}
