//! apt-get and dpkg for the VM runner, on the rule that a test run may add
//! packages to the machine and never take one away:
//!
//! * every install runs with `--no-remove`, and is simulated first: when it
//!   would remove a package, nothing is installed and the error names the
//!   package in the way;
//! * a package in the way that is a backports build (`~bpoNN`, as the
//!   machine's preinstalled `qemu-utils` 10.0 is) gets a second try: the
//!   wanted package from the same backports suite, whose build matches;
//! * extra suites (backports, or trixie for a kernel that left bookworm)
//!   live in a private apt configuration under the cache, never in
//!   /etc/apt: the machine's sources, pins and lists stay as they were.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc::run_logged;

const APT_TIMEOUT: Duration = Duration::from_secs(900);

/// apt with one `update` per configuration, output in the cache's log
/// directory.
pub struct Apt {
    updated: bool,
    logs: PathBuf,
    /// Whether the runner may change the system (apt-get install).
    pub allowed: bool,
    /// The private configuration (`<cache>/apt`), used once a suite was added.
    overlay: PathBuf,
    suites: Vec<String>,
    /// The program run as `apt-get` (tests put a fake here).
    apt_get: PathBuf,
}

/// Why an install did not happen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// It would have removed these installed packages (name, version).
    WouldRemove {
        package: String,
        removes: Vec<(String, String)>,
    },
    Failed(String),
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallError::WouldRemove { package, removes } => {
                let r: Vec<String> = removes.iter().map(|(n, v)| format!("{n} {v}")).collect();
                write!(
                    f,
                    "installing {package} would remove {}, which this machine has: nothing was installed (devcg never removes a package)",
                    r.join(", ")
                )
            }
            InstallError::Failed(why) => f.write_str(why),
        }
    }
}

impl From<InstallError> for String {
    fn from(e: InstallError) -> String {
        e.to_string()
    }
}

impl From<String> for InstallError {
    fn from(s: String) -> Self {
        InstallError::Failed(s)
    }
}

impl Apt {
    /// Logs go to `<cache>/logs`, a private configuration (when a suite is
    /// added) to `<cache>/apt`.
    pub fn new(cache: &Path, allowed: bool) -> Apt {
        let logs = cache.join("logs");
        // Best effort: a missing directory shows up as the first log's error.
        let _ = std::fs::create_dir_all(&logs);
        Apt {
            updated: false,
            logs,
            allowed,
            overlay: cache.join("apt"),
            suites: Vec::new(),
            apt_get: PathBuf::from("apt-get"),
        }
    }

    /// The same, running `apt_get` in place of apt-get.
    pub fn with_apt_get(cache: &Path, allowed: bool, apt_get: &Path) -> Apt {
        Apt {
            apt_get: apt_get.to_owned(),
            ..Apt::new(cache, allowed)
        }
    }

    pub fn log(&self, name: &str) -> PathBuf {
        self.logs.join(name)
    }

    /// `program` (apt-get, apt-cache) with the private configuration when
    /// one is in use.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(if program == "apt-get" {
            self.apt_get.as_os_str()
        } else {
            program.as_ref()
        });
        if !self.suites.is_empty() {
            let o = &self.overlay;
            for (key, dir) in [
                ("Dir::Etc::SourceParts", o.join("sources.list.d")),
                ("Dir::Etc::PreferencesParts", o.join("preferences.d")),
                ("Dir::State::Lists", o.join("lists")),
                ("Dir::Cache", o.join("cache")),
            ] {
                cmd.arg("-o").arg(format!("{key}={}", dir.display()));
            }
        }
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    fn available(&self) -> bool {
        (self.apt_get.is_absolute() || crate::install::which("apt-get").is_some())
            && crate::install::which("dpkg").is_some()
    }

    pub fn update(&mut self, force: bool) -> Result<(), String> {
        if self.updated && !force {
            return Ok(());
        }
        if !self.available() {
            return Err("apt-get is not available (not a Debian machine?)".into());
        }
        let log = self.log("apt-get-update.log");
        let st = run_logged(
            self.command("apt-get").args(["-q", "update"]),
            &log,
            APT_TIMEOUT,
        )?;
        if !st.success() {
            return Err(format!(
                "apt-get update failed ({st}); see {}",
                log.display()
            ));
        }
        self.updated = true;
        Ok(())
    }

    /// Adds a Debian suite from the machine's own Debian archive, for this
    /// runner only: the machine's sources and pins are copied into the
    /// private configuration beside the new suite. Unless it is a backports
    /// suite (which Debian already marks NotAutomatic) it is pinned at
    /// priority 1, so that only a package asked for by name comes from it.
    pub fn add_suite(&mut self, suite: &str) -> Result<(), String> {
        if self.suites.iter().any(|s| s == suite) {
            return Ok(());
        }
        if !suite.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("suite {suite:?}: letters, digits and '-' only"));
        }
        let source = debian_source().ok_or(
            "cannot find the machine's Debian apt source to add a suite from (no deb822 or one-line entry)",
        )?;
        let o = &self.overlay;
        let sources = o.join("sources.list.d");
        let prefs = o.join("preferences.d");
        let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
        if self.suites.is_empty() {
            let _ = std::fs::remove_dir_all(o);
            for d in [
                sources.clone(),
                prefs.clone(),
                o.join("lists/partial"),
                o.join("cache/archives/partial"),
            ] {
                std::fs::create_dir_all(&d).map_err(|e| io(&d, e))?;
            }
            copy_dir_files(Path::new("/etc/apt/sources.list.d"), &sources)?;
            copy_dir_files(Path::new("/etc/apt/preferences.d"), &prefs)?;
        }
        let file = sources.join(format!("devcg-vm-{suite}.sources"));
        std::fs::write(&file, suite_stanza(&source, suite)).map_err(|e| io(&file, e))?;
        if !suite.ends_with("-backports") {
            let pin = prefs.join(format!("devcg-vm-{suite}"));
            std::fs::write(
                &pin,
                format!("Package: *\nPin: release n={suite}\nPin-Priority: 1\n"),
            )
            .map_err(|e| io(&pin, e))?;
        }
        self.suites.push(suite.to_string());
        self.updated = false;
        Ok(())
    }

    /// Installs the packages that are not installed yet, one at a time,
    /// never removing anything. Err names the package in the way.
    pub fn install(&mut self, packages: &[&str]) -> Result<(), InstallError> {
        let missing: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| !dpkg_installed(p))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if !self.allowed {
            return Err(InstallError::Failed(format!(
                "missing {} and installing is turned off",
                missing.join(" ")
            )));
        }
        self.update(false)?;
        for package in missing {
            self.install_one(package)?;
        }
        Ok(())
    }

    fn install_one(&mut self, package: &str) -> Result<(), InstallError> {
        let mut target: Vec<String> = Vec::new();
        let mut removes = self.removals(package, &target)?;
        if let Some(suite) = backports_suite(&removes, &os_codename()) {
            // The backports build of what we want (and of its own
            // packages: `-t`) matches the backports build in the way.
            self.add_suite(&suite)?;
            self.update(false)?;
            target = vec!["-t".into(), suite];
            removes = self.removals(package, &target)?;
        }
        if !removes.is_empty() {
            return Err(InstallError::WouldRemove {
                package: package.to_string(),
                removes,
            });
        }
        let log = self.log(&format!("apt-get-install-{package}.log"));
        let st = run_logged(
            self.command("apt-get")
                .args([
                    "-q",
                    "-y",
                    "install",
                    "--no-install-recommends",
                    "--no-remove",
                ])
                .args(&target)
                .arg(package),
            &log,
            APT_TIMEOUT,
        )?;
        if !st.success() {
            return Err(InstallError::Failed(format!(
                "apt-get install {package} failed ({st}); see {}",
                log.display()
            )));
        }
        Ok(())
    }

    /// What installing `request` would remove, by simulation (`-s` changes
    /// nothing).
    fn removals(&self, request: &str, target: &[String]) -> Result<Vec<(String, String)>, String> {
        let log = self.log("apt-get-simulate.log");
        let _ = std::fs::remove_file(&log);
        let st = run_logged(
            self.command("apt-get")
                .args(["-s", "-q", "install", "--no-install-recommends"])
                .args(target)
                .arg(request),
            &log,
            APT_TIMEOUT,
        )?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let removes = simulated_removals(&text);
        if !st.success() && removes.is_empty() {
            return Err(format!(
                "apt-get cannot install {request} ({st}); see {}",
                log.display()
            ));
        }
        Ok(removes)
    }
}

/// `Remv NAME [VERSION]` lines of `apt-get -s` output.
pub fn simulated_removals(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Remv ")?;
            let (name, version) = match rest.split_once(' ') {
                Some((n, v)) => (n, v.trim().trim_start_matches('[').trim_end_matches(']')),
                None => (rest, ""),
            };
            Some((name.to_string(), version.to_string()))
        })
        .collect()
}

/// The backports suite whose builds match the packages in the way, when
/// one of them is a backports build (`~bpo`) of this Debian release.
pub fn backports_suite(removes: &[(String, String)], codename: &str) -> Option<String> {
    (!codename.is_empty() && removes.iter().any(|(_, v)| v.contains("~bpo")))
        .then(|| format!("{codename}-backports"))
}

fn os_codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

fn copy_dir_files(from: &Path, to: &Path) -> Result<(), String> {
    let Ok(rd) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in rd.filter_map(|e| e.ok()) {
        let path = e.path();
        if path.is_file() {
            let dest = to.join(e.file_name());
            std::fs::copy(&path, &dest).map_err(|err| format!("{}: {err}", dest.display()))?;
        }
    }
    Ok(())
}

/// Whether a Debian package is installed.
pub fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).ends_with("installed"))
        .unwrap_or(false)
}

/// The installed version of a Debian package.
pub fn dpkg_version(package: &str) -> Option<String> {
    let o = Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", package])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
    (o.status.success() && !v.is_empty()).then_some(v)
}

/// The URIs and keyring of the machine's main Debian source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebianSource {
    pub uris: String,
    pub signed_by: Option<String>,
}

fn debian_source() -> Option<DebianSource> {
    let mut texts = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<PathBuf> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let name = f
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name.ends_with(".sources") && !name.starts_with("devcg-vm-") {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    texts.push((true, t));
                }
            } else if name.ends_with(".list") {
                if let Ok(t) = std::fs::read_to_string(&f) {
                    texts.push((false, t));
                }
            }
        }
    }
    if let Ok(t) = std::fs::read_to_string("/etc/apt/sources.list") {
        texts.push((false, t));
    }
    texts.iter().find_map(|(deb822, t)| {
        if *deb822 {
            parse_deb822_source(t)
        } else {
            parse_one_line_source(t)
        }
    })
}

/// The first stanza of a deb822 file that serves a Debian release suite
/// (its keyring is Debian's, and it is not the security archive).
pub fn parse_deb822_source(text: &str) -> Option<DebianSource> {
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                })
                .map(|l| l[name.len() + 1..].trim().to_string())
        };
        let (Some(types), Some(uris), Some(suites)) =
            (field("Types"), field("URIs"), field("Suites"))
        else {
            continue;
        };
        let signed_by = field("Signed-By");
        let debian = signed_by
            .as_deref()
            .is_some_and(|s| s.contains("debian-archive-keyring"));
        if types.split_whitespace().any(|t| t == "deb") && debian && !suites.contains("security") {
            return Some(DebianSource { uris, signed_by });
        }
    }
    None
}

/// The first `deb URI suite main` line whose suite is not a security one.
pub fn parse_one_line_source(text: &str) -> Option<DebianSource> {
    text.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("deb ")?;
        let rest = rest.trim_start();
        let rest = if rest.starts_with('[') {
            rest.split_once(']')?.1.trim_start()
        } else {
            rest
        };
        let mut parts = rest.split_whitespace();
        let uri = parts.next()?;
        let suite = parts.next()?;
        let components: Vec<&str> = parts.collect();
        (components.contains(&"main") && !suite.contains("security") && uri.contains("debian"))
            .then(|| DebianSource {
                uris: uri.to_string(),
                signed_by: None,
            })
    })
}

pub fn suite_stanza(source: &DebianSource, suite: &str) -> String {
    let mut s = format!(
        "# Added by devcg-vm to fetch kernels for the VM regression runner.\nTypes: deb\nURIs: {}\nSuites: {suite}\nComponents: main\n",
        source.uris
    );
    if let Some(k) = &source.signed_by {
        s.push_str(&format!("Signed-By: {k}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";

    #[test]
    fn a_suite_is_added_from_the_machines_own_archive() {
        let s = parse_deb822_source(DEB822).unwrap();
        assert_eq!(s.uris, "http://mirror.example/debian");
        let stanza = suite_stanza(&s, "bookworm-backports");
        assert!(stanza.contains("URIs: http://mirror.example/debian\n"));
        assert!(stanza.contains("Suites: bookworm-backports\n"));
        assert!(stanza.contains("Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"));
        // A third-party deb822 source is not taken for Debian's.
        assert!(parse_deb822_source(
            "Types: deb\nURIs: https://other.example/node\nSuites: nodistro\nComponents: main\nSigned-By: /usr/share/keyrings/other.gpg\n"
        )
        .is_none());
    }

    #[test]
    fn one_line_sources_are_read() {
        let t = "# x\ndeb-src http://m.example/debian bookworm main\ndeb [arch=amd64] http://m.example/debian-security bookworm-security main\ndeb http://m.example/debian bookworm main contrib\n";
        assert_eq!(
            parse_one_line_source(t).unwrap().uris,
            "http://m.example/debian"
        );
    }

    /// A fake apt-get that logs its arguments, one call a line, and
    /// answers a simulation with `simulate` (Remv lines, say).
    fn fake_apt(dir: &Path, simulate: &str) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let calls = dir.join("calls");
        let path = dir.join("apt-get");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"$*\" >> '{}'\ncase \" $* \" in *\" -s \"*) printf '%s\\n' '{simulate}' ;; esac\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        (path, calls)
    }

    const ABSENT: &str = "devcg-no-such-package-for-tests";

    #[test]
    fn an_install_that_would_remove_a_package_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (fake, calls) = fake_apt(dir.path(), "Remv old-tool [2.0-1]");
        let mut apt = Apt::with_apt_get(dir.path(), true, &fake);
        let e = apt.install(&[ABSENT]).unwrap_err();
        assert_eq!(
            e,
            InstallError::WouldRemove {
                package: ABSENT.into(),
                removes: vec![("old-tool".into(), "2.0-1".into())]
            }
        );
        assert!(e.to_string().contains("would remove old-tool 2.0-1"), "{e}");
        let calls = std::fs::read_to_string(calls).unwrap();
        assert!(!calls.lines().any(|l| l.contains(" -y ")), "{calls}");
    }

    #[test]
    fn every_real_install_refuses_removals() {
        let dir = tempfile::tempdir().unwrap();
        let (fake, calls) = fake_apt(dir.path(), "Inst x (1 Debian:12)");
        let mut apt = Apt::with_apt_get(dir.path(), true, &fake);
        apt.install(&[ABSENT, "dpkg"]).unwrap();
        let calls = std::fs::read_to_string(calls).unwrap();
        let installs: Vec<&str> = calls.lines().filter(|l| l.contains(" -y ")).collect();
        // dpkg is installed: only the missing package is asked for.
        assert_eq!(
            installs,
            [format!(
                "-q -y install --no-install-recommends --no-remove {ABSENT}"
            )]
        );
        assert!(calls.lines().next().unwrap().ends_with("update"), "{calls}");
    }

    #[test]
    fn removals_are_read_from_a_simulation() {
        // As apt-get -s printed it on this machine kind for qemu-system-x86.
        let text = "Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]\nInst qemu-system-common (1:7.2+dfsg-7+deb12u18+b3 Debian:12.15/oldstable [amd64])\n";
        let r = simulated_removals(text);
        assert_eq!(
            r,
            [(
                "qemu-utils".to_string(),
                "1:10.0.2+ds-2+deb13u1~bpo12+1".to_string()
            )]
        );
        assert_eq!(
            backports_suite(&r, "bookworm").as_deref(),
            Some("bookworm-backports")
        );
        assert_eq!(
            backports_suite(&[("a".into(), "1.0-1".into())], "bookworm"),
            None
        );
        assert_eq!(backports_suite(&r, ""), None);
    }
}
