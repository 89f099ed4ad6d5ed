//! BPF ELF objects loaded as their users load them: bpftool (libbpf 1.x).
//!
//! `bpftool prog load OBJECT PIN type cgroup/dev pinmaps DIR` creates the
//! maps empty and pins them as DIR/NAME; the `bpftool map update` commands
//! of [`devcg_engine::elf::bpftool_init`] (what `devcg bpftool-init`
//! prints) then fill them; `bpftool cgroup attach CGROUP device pinned PIN
//! multi` attaches. Pins live in the scratch pin directory and are removed
//! on drop; attachments go with the scratch cgroup.

use std::path::{Path, PathBuf};
use std::process::Command;

use devcg_engine::MapSpec;

use crate::error::KernelError;
use crate::owned;
use crate::v2::{Cgroup, Scratch};

/// Why bpftool cannot be used here, in one line, or `None`.
pub fn bpftool_skip_reason() -> Option<String> {
    match Command::new("bpftool").arg("version").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "bpftool version failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(_) => {
            Some("bpftool is not installed (scripts/test.sh installs Debian's bpftool)".to_string())
        }
    }
}

/// The first line of `bpftool version`.
pub fn bpftool_version() -> Option<String> {
    let out = Command::new("bpftool").arg("version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_string)
}

/// Runs a command (argv), its stderr as the error when it fails.
fn run(argv: &[String]) -> Result<(), KernelError> {
    output(argv).map(drop)
}

/// Runs a command (argv): its stdout, or its stderr as the error.
fn output(argv: &[String]) -> Result<String, KernelError> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| KernelError::Tool {
            command: argv.join(" "),
            why: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    // libbpf's log can be long: the error lines say why.
    let why: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("Warning: bpftool is now running"))
        .collect();
    Err(KernelError::Tool {
        command: argv.join(" "),
        why: format!("{}: {}", out.status, why.join(" | ")),
    })
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// A program pinned by bpftool, with its maps; unpinned on drop.
pub struct Pinned {
    pub prog: PathBuf,
    pub maps: PathBuf,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.prog);
        if let Err(e) = owned::remove_pin_dir(&self.maps) {
            eprintln!("devcg: could not remove {}: {e}", self.maps.display());
        }
    }
}

/// Loads `object` with bpftool as `name` (a plain file name) in the
/// scratch pin directory, and fills its maps with `maps`' contents by the
/// `bpftool map update` sequence.
pub fn bpftool_load(
    scratch: &mut Scratch,
    object: &Path,
    name: &str,
    maps: &[MapSpec],
) -> Result<Pinned, KernelError> {
    if name.is_empty() || name.contains(['/', '\0']) || name.starts_with('.') {
        return Err(crate::sys::SysError::OutsideScratch(name.to_string()).into());
    }
    let dir = scratch.pin_dir()?;
    let pinned = Pinned {
        prog: dir.join(name),
        maps: dir.join(format!("{name}-maps")),
    };
    let object = object.display().to_string();
    let prog = pinned.prog.display().to_string();
    let maps_dir = pinned.maps.display().to_string();
    run(&argv(&[
        "bpftool",
        "prog",
        "load",
        &object,
        &prog,
        "type",
        "cgroup/dev",
        "pinmaps",
        &maps_dir,
    ]))?;
    for cmd in devcg_engine::elf::bpftool_init(maps, &pinned.maps) {
        run(&cmd)?;
    }
    Ok(pinned)
}

/// `bpftool cgroup attach CGROUP device pinned PIN multi`, on a scratch
/// cgroup only.
pub fn bpftool_attach(scratch: &Scratch, cg: &Cgroup, pinned: &Pinned) -> Result<(), KernelError> {
    let target = scratch.guard(cg)?.display().to_string();
    let prog = pinned.prog.display().to_string();
    run(&argv(&[
        "bpftool", "cgroup", "attach", &target, "device", "pinned", &prog, "multi",
    ]))
}

/// `bpftool cgroup detach CGROUP device pinned PIN`.
pub fn bpftool_detach(scratch: &Scratch, cg: &Cgroup, pinned: &Pinned) -> Result<(), KernelError> {
    let target = scratch.guard(cg)?.display().to_string();
    let prog = pinned.prog.display().to_string();
    run(&argv(&[
        "bpftool", "cgroup", "detach", &target, "device", "pinned", &prog,
    ]))
}

/// `bpftool prog dump xlated pinned PIN`: the text a user copies from a
/// live machine.
pub fn bpftool_dump_xlated(pinned: &Pinned) -> Result<String, KernelError> {
    let prog = pinned.prog.display().to_string();
    output(&argv(&[
        "bpftool", "prog", "dump", "xlated", "pinned", &prog,
    ]))
}

/// The kernel id of the map bpftool pinned as `name`
/// (`bpftool map show pinned DIR/NAME -j`).
pub fn bpftool_map_id(pinned: &Pinned, name: &str) -> Result<u32, KernelError> {
    let path = pinned.maps.join(name).display().to_string();
    let command = argv(&["bpftool", "map", "show", "pinned", &path, "-j"]);
    let text = output(&command)?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("id")?.as_u64())
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| KernelError::Tool {
            command: command.join(" "),
            why: format!("no map id in {text:?}"),
        })
}
