//! A kernel given by path (`devcg vm --image PATH [--modules DIR]`): a
//! bzImage or vmlinuz file, or a kernel build tree as virtme-ng's `--run`
//! takes it. Before anything boots, its config is read and a kernel that
//! lacks what devcg or virtme-ng needs is refused, naming the options.
//!
//! The config comes from the build tree's `.config`, from the tree an
//! `arch/x86/boot/bzImage` lies in, from `config-<release>` beside the
//! image (where a Debian package puts it), or from the image itself when
//! it was built with `CONFIG_IKCONFIG` (as `scripts/extract-ikconfig`
//! finds it). `/proc/config.gz` describes the running kernel only, never a
//! file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::VmError;
use crate::fetch::FetchedKernel;

/// Where virtme-ng and the kernel's Makefile put the image in a tree.
pub const TREE_IMAGE: &str = "arch/x86/boot/bzImage";

/// An option the kernel must have (`y`, or `m` with its modules at hand),
/// and why.
pub struct Need {
    pub option: &'static str,
    pub why: &'static str,
}

/// What devcg's checks and a virtme-ng boot need.
pub const NEEDED: &[Need] = &[
    Need {
        option: "CONFIG_CGROUPS",
        why: "control groups",
    },
    Need {
        option: "CONFIG_BPF_SYSCALL",
        why: "bpf(2): devcg loads its programs",
    },
    Need {
        option: "CONFIG_CGROUP_BPF",
        why: "BPF programs attached to cgroups (BPF_PROG_TYPE_CGROUP_DEVICE)",
    },
    Need {
        option: "CONFIG_CGROUP_DEVICE",
        why: "the v1 devices controller (kernel-check's v1 checks)",
    },
    Need {
        option: "CONFIG_TMPFS",
        why: "the probes' device nodes live on a private tmpfs",
    },
    Need {
        option: "CONFIG_USER_NS",
        why: "kernel-check's user-namespace checks",
    },
    Need {
        option: "CONFIG_DEVTMPFS",
        why: "virtme-ng mounts /dev as devtmpfs",
    },
    Need {
        option: "CONFIG_BINFMT_SCRIPT",
        why: "the guest runs shell scripts",
    },
    Need {
        option: "CONFIG_VIRTIO",
        why: "virtme-ng's devices are virtio",
    },
    Need {
        option: "CONFIG_VIRTIO_PCI",
        why: "virtio over PCI (qemu's default machine)",
    },
    Need {
        option: "CONFIG_NET_9P",
        why: "the host's root is shared over 9p",
    },
    Need {
        option: "CONFIG_NET_9P_VIRTIO",
        why: "9p's virtio transport",
    },
    Need {
        option: "CONFIG_9P_FS",
        why: "the guest's root filesystem (9p)",
    },
    Need {
        option: "CONFIG_OVERLAY_FS",
        why: "virtme-ng's overlays (/tmp, /etc)",
    },
];

/// Where a kernel's config was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// Extracted from the image (CONFIG_IKCONFIG).
    Embedded,
}

/// A kernel given by path, inspected.
#[derive(Clone, Debug)]
pub struct Image {
    /// The path as given: a file, or a build tree.
    pub path: PathBuf,
    /// The bootable file (the tree's bzImage for a tree).
    pub file: PathBuf,
    pub tree: Option<PathBuf>,
    /// From the image's setup header, e.g. `6.12.117+deb12-amd64`.
    pub release: Option<String>,
    /// `lib/modules/<release>` to boot with: `--modules`, or found beside
    /// the image (`<root>/boot/vmlinuz-*` with `<root>/lib/modules/*`).
    pub modules: Option<PathBuf>,
    /// The config and where it came from; None when none could be found
    /// (the column then runs with a note).
    pub config: Option<(ConfigSource, BTreeMap<String, String>)>,
}

impl Image {
    /// Reads what can be read without booting. Errors: a path that is
    /// neither a readable image nor a build tree, a modules directory that
    /// does not exist.
    pub fn inspect(path: &Path, modules: Option<&Path>) -> Result<Image, VmError> {
        let bad = |reason: String| VmError::Image {
            path: path.to_owned(),
            reason,
        };
        let path = crate::absolute(path.to_owned());
        let (file, tree) = if path.is_dir() {
            let file = path.join(TREE_IMAGE);
            if !file.is_file() {
                return Err(bad(format!(
                    "a directory, but not a built kernel tree (no {TREE_IMAGE})"
                )));
            }
            (file, Some(path.clone()))
        } else if path.is_file() {
            let tree = path
                .to_string_lossy()
                .strip_suffix(TREE_IMAGE)
                .map(PathBuf::from)
                .filter(|t| t.join(".config").is_file());
            (path.clone(), tree)
        } else {
            return Err(bad("no such file or directory".into()));
        };
        let bytes = std::fs::read(&file).map_err(|e| bad(e.to_string()))?;
        let release = setup_header_release(&bytes);
        let modules =
            match modules {
                Some(m) => Some(modules_dir(m, release.as_deref()).ok_or_else(|| {
                    VmError::Image {
                        path: m.to_owned(),
                        reason:
                            "not a modules directory (lib/modules/<release>, or a root holding one)"
                                .into(),
                    }
                })?),
                None => beside(&file, release.as_deref()),
            };
        let config = find_config(&file, tree.as_deref(), release.as_deref(), &bytes);
        Ok(Image {
            path,
            file,
            tree,
            release,
            modules,
            config,
        })
    }

    /// The options devcg needs that this kernel lacks, each with why; an
    /// option built as a module counts as missing when there are no
    /// modules to load it from. Empty when no config was found.
    pub fn missing(&self) -> Vec<String> {
        let Some((_, config)) = &self.config else {
            return Vec::new();
        };
        let has_modules = self.modules.is_some()
            || self
                .tree
                .as_ref()
                .is_some_and(|t| t.join("modules.order").is_file());
        NEEDED
            .iter()
            .filter_map(|n| match config.get(n.option).map(String::as_str) {
                Some("y") => None,
                Some("m") if has_modules => None,
                Some("m") => Some(format!(
                    "{}=m without modules ({}; give --modules DIR)",
                    n.option, n.why
                )),
                _ => Some(format!("{} ({})", n.option, n.why)),
            })
            .collect()
    }

    /// Refuses a kernel whose config lacks what devcg needs.
    pub fn check(&self) -> Result<(), VmError> {
        let missing = self.missing();
        if missing.is_empty() {
            return Ok(());
        }
        Err(VmError::KernelConfig {
            path: self.path.clone(),
            config: match &self.config {
                Some((ConfigSource::File(f), _)) => f.display().to_string(),
                _ => "the image's embedded config".into(),
            },
            missing,
        })
    }

    /// What `vng --run` gets. A build tree is passed as it is (virtme-ng
    /// prepares its modules); an image whose modules are not where
    /// virtme-ng looks (`<root>/lib/modules/<release>` above the image) is
    /// linked into `stage` in that layout.
    pub fn bootable(&self, stage: &Path) -> Result<FetchedKernel, String> {
        let package = format!("image {}", self.path.display());
        let version = self.release.clone().unwrap_or_else(|| "?".into());
        if let Some(tree) = &self.tree {
            return Ok(FetchedKernel {
                package,
                version,
                root: tree.clone(),
                vmlinuz: tree.clone(),
            });
        }
        let found = beside(&self.file, self.release.as_deref());
        let (Some(modules), Some(release)) = (&self.modules, &self.release) else {
            return Ok(FetchedKernel {
                package,
                version,
                root: self.file.parent().unwrap_or(Path::new("/")).to_owned(),
                vmlinuz: self.file.clone(),
            });
        };
        if found.as_ref() == Some(modules) {
            return Ok(FetchedKernel {
                package,
                version,
                root: self.file.parent().unwrap_or(Path::new("/")).to_owned(),
                vmlinuz: self.file.clone(),
            });
        }
        let link = |target: &Path, at: &Path| -> Result<(), String> {
            std::fs::create_dir_all(at.parent().expect("has a parent"))
                .map_err(|e| format!("{}: {e}", at.display()))?;
            std::os::unix::fs::symlink(target, at).map_err(|e| format!("{}: {e}", at.display()))
        };
        let _ = std::fs::remove_dir_all(stage);
        let vmlinuz = stage.join("boot").join(format!("vmlinuz-{release}"));
        link(&self.file, &vmlinuz)?;
        link(modules, &stage.join("lib/modules").join(release))?;
        Ok(FetchedKernel {
            package,
            version,
            root: stage.to_owned(),
            vmlinuz,
        })
    }
}

/// The kernel release from an x86 boot image's setup header: the header
/// (`HdrS` at 0x202) holds at 0x20e the offset, less 0x200, of a string
/// starting with the release.
pub fn setup_header_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let at = u16::from_le_bytes([*image.get(0x20e)?, *image.get(0x20f)?]) as usize + 0x200;
    let text = image.get(at..)?;
    let end = text.iter().position(|&b| b == 0 || b == b' ')?;
    let release = std::str::from_utf8(&text[..end]).ok()?;
    (!release.is_empty()).then(|| release.to_string())
}

/// `dir` when it is `lib/modules/<release>` itself, else
/// `dir/lib/modules/<release>` (an `INSTALL_MOD_PATH` root).
fn modules_dir(dir: &Path, release: Option<&str>) -> Option<PathBuf> {
    let dir = crate::absolute(dir.to_owned());
    if let Some(r) = release {
        let inside = dir.join("lib/modules").join(r);
        if inside.is_dir() {
            return Some(inside);
        }
    }
    let looks = ["modules.dep", "modules.order", "kernel"]
        .iter()
        .any(|f| dir.join(f).exists());
    looks.then_some(dir)
}

/// `<root>/lib/modules/<release>` for an image at `<root>/boot/...`; the
/// image's own directory for `.../lib/modules/<release>/vmlinuz` (Debian's
/// packages from 7.x).
fn beside(file: &Path, release: Option<&str>) -> Option<PathBuf> {
    let dir = file.parent()?;
    if dir.parent()?.ends_with("lib/modules") && dir.join("modules.order").is_file() {
        return Some(dir.to_owned());
    }
    let root = dir.parent()?;
    let m = root.join("lib/modules").join(release?);
    m.is_dir().then_some(m)
}

fn find_config(
    file: &Path,
    tree: Option<&Path>,
    release: Option<&str>,
    bytes: &[u8],
) -> Option<(ConfigSource, BTreeMap<String, String>)> {
    let mut candidates = Vec::new();
    if let Some(t) = tree {
        candidates.push(t.join(".config"));
    }
    if let (Some(dir), Some(r)) = (file.parent(), release) {
        candidates.push(dir.join(format!("config-{r}")));
    }
    // `lib/modules/<release>/{vmlinuz,config}`, Debian's layout from 7.x.
    if let Some(dir) = file.parent().filter(|d| d.join("modules.order").is_file()) {
        candidates.push(dir.join("config"));
    }
    for c in candidates {
        if let Ok(text) = std::fs::read_to_string(&c) {
            return Some((ConfigSource::File(c), parse_config(&text)));
        }
    }
    embedded_config(bytes).map(|text| (ConfigSource::Embedded, parse_config(&text)))
}

/// `CONFIG_X=value` lines; `# CONFIG_X is not set` and absent options
/// alike are simply not in the map.
pub fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            k.starts_with("CONFIG_")
                .then(|| (k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

const IKCFG_START: &[u8] = b"IKCFG_ST";
const IKCFG_END: &[u8] = b"IKCFG_ED";

/// The config a CONFIG_IKCONFIG kernel carries (gzip between `IKCFG_ST`
/// and `IKCFG_ED`), in the image as it is (a vmlinux) or in its
/// compressed payload: each compressor's magic is tried with the system's
/// decompressor, as `scripts/extract-ikconfig` does.
fn embedded_config(image: &[u8]) -> Option<String> {
    if let Some(c) = ikcfg(image) {
        return Some(c);
    }
    const MAGICS: [(&[u8], &str, &[&str]); 3] = [
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", &["-dcq"]),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz", &["-dcq"]),
        (&[0x1f, 0x8b, 0x08], "gzip", &["-dcq"]),
    ];
    for (magic, tool, args) in MAGICS {
        for at in find_all(image, magic).take(4) {
            if let Some(out) = pipe(tool, args, &image[at..]) {
                if let Some(c) = ikcfg(&out) {
                    return Some(c);
                }
            }
        }
    }
    None
}

fn ikcfg(bytes: &[u8]) -> Option<String> {
    let start = find_all(bytes, IKCFG_START).next()? + IKCFG_START.len();
    let len = find_all(&bytes[start..], IKCFG_END).next()?;
    let out = pipe("gzip", &["-dcq"], &bytes[start..start + len])?;
    String::from_utf8(out).ok()
}

fn find_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| *w == needle)
        .map(|(i, _)| i)
}

/// `tool args` with `input` on stdin: its output, even when it complains
/// about trailing data (a payload is followed by the rest of the image).
fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().ok()?;
    let _ = writer.join();
    (!out.stdout.is_empty()).then_some(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_config() -> String {
        NEEDED.iter().map(|n| format!("{}=y\n", n.option)).collect()
    }

    fn fake_image(release: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let text = format!("{release} (builder@host) #1 SMP\0");
        b[0x300..0x300 + text.len()].copy_from_slice(text.as_bytes());
        b
    }

    fn tree(config: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let img = t.path().join(TREE_IMAGE);
        std::fs::create_dir_all(img.parent().unwrap()).unwrap();
        std::fs::write(&img, fake_image("6.19.0-rc1-dev")).unwrap();
        std::fs::write(t.path().join(".config"), config).unwrap();
        t
    }

    #[test]
    fn the_release_comes_from_the_setup_header() {
        assert_eq!(
            setup_header_release(&fake_image("6.12.117+deb12-amd64")).as_deref(),
            Some("6.12.117+deb12-amd64")
        );
        assert_eq!(setup_header_release(b"not a kernel"), None);
    }

    #[rstest::rstest]
    #[case::complete("", &[])]
    #[case::no_cgroup_bpf("CONFIG_CGROUP_BPF", &["CONFIG_CGROUP_BPF (BPF programs"])]
    #[case::no_9p("CONFIG_9P_FS", &["CONFIG_9P_FS (the guest's root"])]
    #[case::two("CONFIG_BPF_SYSCALL CONFIG_USER_NS", &["CONFIG_BPF_SYSCALL (", "CONFIG_USER_NS ("])]
    fn a_tree_lacking_an_option_is_refused_naming_it(#[case] drop: &str, #[case] want: &[&str]) {
        let drop: Vec<&str> = drop.split_whitespace().collect();
        let config: String = full_config()
            .lines()
            .map(
                |l| match drop.iter().find(|d| l.starts_with(&format!("{d}="))) {
                    Some(d) => format!("# {d} is not set\n"),
                    None => format!("{l}\n"),
                },
            )
            .collect();
        let t = tree(&config);
        let img = Image::inspect(t.path(), None).unwrap();
        assert_eq!(img.release.as_deref(), Some("6.19.0-rc1-dev"));
        assert_eq!(
            img.config.as_ref().unwrap().0,
            ConfigSource::File(t.path().join(".config"))
        );
        let missing = img.missing();
        assert_eq!(missing.len(), want.len(), "{missing:?}");
        for (m, w) in missing.iter().zip(want) {
            assert!(m.starts_with(w), "{m} / {w}");
        }
        let err = img
            .check()
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        for w in want {
            assert!(err.contains(w.split(' ').next().unwrap()), "{err}");
        }
    }

    #[test]
    fn a_module_needs_modules() {
        let t = tree(&full_config().replace("CONFIG_9P_FS=y", "CONFIG_9P_FS=m"));
        let img = Image::inspect(t.path(), None).unwrap();
        assert_eq!(img.missing().len(), 1);
        assert!(img.missing()[0].starts_with("CONFIG_9P_FS=m without modules"));
        // A tree that built its modules has them.
        std::fs::write(t.path().join("modules.order"), "").unwrap();
        assert!(Image::inspect(t.path(), None).unwrap().missing().is_empty());
    }

    #[test]
    fn a_packaged_image_has_its_config_and_modules_beside_it() {
        let root = tempfile::tempdir().unwrap();
        let r = "6.12.1-test";
        std::fs::create_dir_all(root.path().join("boot")).unwrap();
        std::fs::create_dir_all(root.path().join("lib/modules").join(r)).unwrap();
        let file = root.path().join(format!("boot/vmlinuz-{r}"));
        std::fs::write(&file, fake_image(r)).unwrap();
        std::fs::write(
            root.path().join(format!("boot/config-{r}")),
            full_config().replace("CONFIG_NET_9P=y", "CONFIG_NET_9P=m"),
        )
        .unwrap();
        let img = Image::inspect(&file, None).unwrap();
        assert_eq!(img.modules, Some(root.path().join("lib/modules").join(r)));
        assert!(img.missing().is_empty(), "{:?}", img.missing());
        // Booted from where it is: virtme-ng finds those modules itself.
        let stage = root.path().join("stage");
        assert_eq!(img.bootable(&stage).unwrap().vmlinuz, file);
        assert!(!stage.exists());
        // Modules elsewhere are linked into virtme-ng's layout.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(other.path().join("modules.dep"), "").unwrap();
        let img = Image::inspect(&file, Some(other.path())).unwrap();
        let k = img.bootable(&stage).unwrap();
        assert_eq!(k.vmlinuz, stage.join(format!("boot/vmlinuz-{r}")));
        assert_eq!(
            std::fs::read_link(stage.join("lib/modules").join(r)).unwrap(),
            other.path()
        );
    }

    #[test]
    fn an_embedded_config_is_found() {
        let gz = pipe("gzip", &["-c"], full_config().as_bytes()).unwrap();
        let mut image = fake_image("6.19.0");
        image.extend_from_slice(IKCFG_START);
        image.extend_from_slice(&gz);
        image.extend_from_slice(IKCFG_END);
        let text = embedded_config(&image).unwrap();
        assert_eq!(parse_config(&text)["CONFIG_CGROUP_BPF"], "y");
        // And inside a compressed payload.
        let packed = pipe("gzip", &["-c"], &image).unwrap();
        let mut outer = fake_image("6.19.0");
        outer.extend_from_slice(&packed);
        assert!(embedded_config(&outer).is_some());
    }

    #[test]
    fn what_is_not_a_kernel_is_refused() {
        let t = tempfile::tempdir().unwrap();
        assert!(Image::inspect(t.path(), None).is_err());
        assert!(Image::inspect(&t.path().join("nope"), None).is_err());
        let img = Image::inspect(&t.path().join("nope"), None).unwrap_err();
        assert!(img.to_string().contains("no such file"), "{img}");
    }
}
