//! `vm/kernels.toml`: which kernels the runner checks, and its limits.

use std::cmp::Ordering;
use std::path::Path;

use serde::Deserialize;

use crate::error::VmError;

/// The whole file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(rename = "kernel", default)]
    pub kernels: Vec<KernelSpec>,
}

/// Limits shared by every kernel; each may be overridden per kernel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Rule sets for the three-way differential (`verify --kernel --cases N`).
    pub cases: u32,
    /// From the start of `vng` until the guest script has started.
    pub boot_timeout_secs: u64,
    /// The same under KVM, where a boot takes seconds: a guest that has not
    /// started its script by then is booted again under TCG.
    pub kvm_boot_timeout_secs: u64,
    /// From the start of `vng` (or of the host script) until it is over.
    pub run_timeout_secs: u64,
    /// One guest step (`kernel-check`, `verify`), enforced inside the guest.
    pub step_timeout_secs: u64,
    /// Guest memory, as `vng --memory` takes it.
    pub memory: String,
    /// Guest CPUs.
    pub cpus: u32,
    /// Also run kernel-check's v1 checks with a v1 `devices` hierarchy
    /// mounted (rows `NAME@v1-mounted`).
    pub v1_checks: bool,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            cases: 100,
            boot_timeout_secs: 240,
            kvm_boot_timeout_secs: 60,
            run_timeout_secs: 1200,
            step_timeout_secs: 480,
            memory: "1G".into(),
            cpus: 2,
            v1_checks: true,
        }
    }
}

/// One column of the matrix.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// Column name, and the name of `vm/expected/<name>.json`.
    pub name: String,
    /// Run directly on the machine's own kernel, no VM.
    #[serde(default)]
    pub host: bool,
    /// A Debian binary package holding the kernel, or a pattern where each
    /// `*` matches one run of characters without `-` (so
    /// `linux-image-6.1.0-*-amd64` never matches the `-rt-` or `-cloud-`
    /// flavours); the highest available version wins.
    pub package: Option<String>,
    /// A Debian suite to add (with the same archive as the machine's own
    /// Debian source, pinned so that it never upgrades anything) when
    /// `package` matches nothing in the configured sources.
    pub suite: Option<String>,
    /// The package (or pattern) to take from `suite` [default: `package`].
    pub suite_package: Option<String>,
    /// Free text: why this kernel is in the matrix.
    #[serde(default)]
    pub about: String,
    pub boot_timeout_secs: Option<u64>,
    pub kvm_boot_timeout_secs: Option<u64>,
    pub run_timeout_secs: Option<u64>,
    pub step_timeout_secs: Option<u64>,
    pub cases: Option<u32>,
    pub v1_checks: Option<bool>,
    /// Extra kernel command line arguments.
    #[serde(default)]
    pub append: Vec<String>,
}

impl KernelSpec {
    /// A VM column that is not in the file (a kernel given by path).
    pub fn named(name: &str, about: String) -> KernelSpec {
        KernelSpec {
            name: name.to_string(),
            host: false,
            package: None,
            suite: None,
            suite_package: None,
            about,
            boot_timeout_secs: None,
            kvm_boot_timeout_secs: None,
            run_timeout_secs: None,
            step_timeout_secs: None,
            cases: None,
            v1_checks: None,
            append: Vec::new(),
        }
    }
}

/// One kernel's limits, defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub cases: u32,
    pub v1_checks: bool,
    pub boot_timeout_secs: u64,
    pub kvm_boot_timeout_secs: u64,
    pub run_timeout_secs: u64,
    pub step_timeout_secs: u64,
}

impl Limits {
    /// From the start of `vng` until the guest script must have started.
    pub fn boot_timeout(&self, accel: crate::Accel) -> u64 {
        match accel {
            crate::Accel::Kvm => self.kvm_boot_timeout_secs,
            crate::Accel::Tcg => self.boot_timeout_secs,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, VmError> {
        let text = std::fs::read_to_string(path).map_err(|e| VmError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Config::parse(&text).map_err(|reason| VmError::Config {
            path: path.to_owned(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::BTreeSet::new();
        for k in &self.kernels {
            if k.name.is_empty()
                || !k
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            {
                return Err(format!(
                    "kernel name {:?}: use letters, digits, '.', '-', '_'",
                    k.name
                ));
            }
            if !seen.insert(k.name.as_str()) {
                return Err(format!("kernel {:?} is listed twice", k.name));
            }
            match (k.host, &k.package) {
                (true, Some(_)) => {
                    return Err(format!(
                        "kernel {:?}: host and package exclude each other",
                        k.name
                    ))
                }
                (false, None) => {
                    return Err(format!(
                        "kernel {:?}: give package = \"...\" or host = true",
                        k.name
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn limits(&self, k: &KernelSpec) -> Limits {
        Limits {
            cases: k.cases.unwrap_or(self.defaults.cases),
            v1_checks: k.v1_checks.unwrap_or(self.defaults.v1_checks),
            boot_timeout_secs: k
                .boot_timeout_secs
                .unwrap_or(self.defaults.boot_timeout_secs),
            kvm_boot_timeout_secs: k
                .kvm_boot_timeout_secs
                .unwrap_or(self.defaults.kvm_boot_timeout_secs),
            run_timeout_secs: k.run_timeout_secs.unwrap_or(self.defaults.run_timeout_secs),
            step_timeout_secs: k
                .step_timeout_secs
                .unwrap_or(self.defaults.step_timeout_secs),
        }
    }

    /// The kernels named, in the file's order; all of them when `names` is
    /// empty. An unknown name is an error.
    pub fn select(&self, names: &[String]) -> Result<Vec<&KernelSpec>, VmError> {
        if names.is_empty() {
            return Ok(self.kernels.iter().collect());
        }
        for n in names {
            if !self.kernels.iter().any(|k| &k.name == n) {
                return Err(VmError::UnknownKernel {
                    name: n.clone(),
                    known: self.kernels.iter().map(|k| k.name.clone()).collect(),
                });
            }
        }
        Ok(self
            .kernels
            .iter()
            .filter(|k| names.contains(&k.name))
            .collect())
    }
}

/// `*` matches one run (possibly empty) of characters other than `-`; every
/// other character matches itself.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => {
                let mut i = 0;
                loop {
                    if go(rest, &n[i..]) {
                        return true;
                    }
                    if i == n.len() || n[i] == b'-' {
                        return false;
                    }
                    i += 1;
                }
            }
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// Natural order: runs of digits compare as numbers, so
/// `linux-image-6.1.0-56` sorts after `linux-image-6.1.0-9`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (na, nb) = (trim_zeros(&a[..da]), trim_zeros(&b[..db]));
                let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[da..];
                b = &b[db..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|&&c| c == b'0').count();
    &d[z..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_stops_at_dashes() {
        let p = "linux-image-6.1.0-*-amd64";
        assert!(glob_match(p, "linux-image-6.1.0-56-amd64"));
        assert!(!glob_match(p, "linux-image-6.1.0-56-rt-amd64"));
        assert!(!glob_match(p, "linux-image-6.1.0-56-cloud-amd64"));
        assert!(!glob_match(p, "linux-image-6.1.0-56-amd64-unsigned"));
        let p = "linux-image-6.12.*+deb12-amd64";
        assert!(glob_match(p, "linux-image-6.12.117+deb12-amd64"));
        assert!(!glob_match(p, "linux-image-6.12.117+deb12-cloud-amd64"));
        assert!(!glob_match(p, "linux-image-6.12-amd64"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("a*", "a"));
    }

    #[test]
    fn natural_order_compares_numbers() {
        use Ordering::*;
        assert_eq!(natural_cmp("6.1.0-56", "6.1.0-9"), Greater);
        assert_eq!(natural_cmp("6.12.107+deb12", "6.12.117+deb12"), Less);
        assert_eq!(natural_cmp("6.12.7", "6.12.007"), Equal);
        assert_eq!(natural_cmp("6.1", "6.1.0"), Less);
        let mut v = vec!["x-10", "x-9", "x-100", "x-47"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["x-9", "x-10", "x-47", "x-100"]);
    }

    #[test]
    fn the_shipped_matrix_parses() {
        let text = include_str!("../kernels.toml");
        let c = Config::parse(text).unwrap();
        let names: Vec<_> = c.kernels.iter().map(|k| k.name.as_str()).collect();
        assert!(names.contains(&"host"));
        assert!(c.kernels.iter().filter(|k| !k.host).count() >= 2);
        for k in c.kernels.iter().filter(|k| !k.host) {
            let p = k.package.as_deref().unwrap();
            assert!(p.starts_with("linux-image-") && !p.contains("cloud"), "{p}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(Config::parse("[[kernel]]\nname = \"a\"\n").is_err());
        assert!(Config::parse("[[kernel]]\nname = \"a\"\nhost = true\npackage = \"x\"\n").is_err());
        assert!(Config::parse(
            "[[kernel]]\nname = \"a\"\nhost = true\n[[kernel]]\nname = \"a\"\nhost = true\n"
        )
        .is_err());
        assert!(Config::parse("[[kernel]]\nname = \"a/b\"\nhost = true\n").is_err());
        assert!(Config::parse("[[kernel]]\nname = \"a\"\nhost = true\nbogus = 1\n").is_err());
    }

    #[test]
    fn select_keeps_file_order_and_refuses_unknown_names() {
        let c = Config::parse(
            "[[kernel]]\nname = \"a\"\nhost = true\n[[kernel]]\nname = \"b\"\npackage = \"p\"\ncases = 7\n",
        )
        .unwrap();
        let got: Vec<_> = c
            .select(&["b".into(), "a".into()])
            .unwrap()
            .iter()
            .map(|k| k.name.clone())
            .collect();
        assert_eq!(got, ["a", "b"]);
        assert!(c.select(&["c".into()]).is_err());
        assert_eq!(c.limits(&c.kernels[1]).cases, 7);
        assert_eq!(c.limits(&c.kernels[0]).cases, Defaults::default().cases);
    }
}
