//! `devcg guest` and the guest half of `devcg runtime systemd|libvirt`:
//! a job run in the full-distribution guest (`devcg_vm::distro`), with
//! this devcg binary in its share at `/mnt/devcg/devcg`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use devcg_vm::distro::{Guest, Job};
use devcg_vm::AccelChoice;

/// Where the guest job's devcg is.
pub const GUEST_DEVCG: &str = "/mnt/devcg/devcg";

/// How to boot the guest.
#[derive(Clone, Debug, clap::Args)]
pub struct GuestArgs {
    /// The guest's accelerator: auto (KVM when a real boot under it works,
    /// else TCG), kvm or tcg [default: $DEVCG_VM_ACCEL or auto].
    #[arg(long, value_enum)]
    pub accel: Option<AccelChoice>,
    /// Seconds the whole guest run may take, boot included; qemu is killed
    /// after them.
    #[arg(long, default_value_t = 1800)]
    pub guest_timeout: u64,
    /// The image cache [default: $DEVCG_VM_CACHE or target/vm-cache].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Never run apt-get: use what is installed.
    #[arg(long)]
    pub no_install: bool,
}

fn cache_dir(args: &GuestArgs) -> PathBuf {
    args.cache_dir
        .clone()
        .or_else(|| std::env::var_os("DEVCG_VM_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| devcg_vm::workspace_root().join("target/vm-cache"))
}

/// Runs `script` as root in the guest (building the image first when it
/// is not cached); relays the script's stdout and stderr; its exit status
/// is the result. A guest that does not finish is an error with the
/// console's end.
pub fn run(args: &GuestArgs, script: &str) -> Result<ExitCode> {
    if unsafe { libc::geteuid() } != 0 {
        bail!("the guest needs root (qemu, and mmdebstrap to build the image)");
    }
    let accel = AccelChoice::resolve(args.accel).map_err(|e| anyhow!(e))?;
    let cache = cache_dir(args);
    let guest = Guest::prepare(&cache, !args.no_install)
        .with_context(|| format!("preparing the guest (cache {})", cache.display()))?;
    let me = std::env::current_exe().context("finding this devcg binary")?;
    let job = Job::new(
        script,
        vec![("devcg", me.as_path())],
        Duration::from_secs(args.guest_timeout),
        accel,
    );
    let out = guest.run(&job).context("running the guest")?;
    std::io::stdout().write_all(&out.stdout)?;
    std::io::stderr().write_all(&out.stderr)?;
    let versions: Vec<String> = guest
        .image
        .versions
        .iter()
        .map(|(p, v)| format!("{p} {v}"))
        .collect();
    eprintln!(
        "devcg: guest ({}; {}) under {}: job started after {}, {:.0} s in all",
        guest.image.dir.display(),
        versions.join(", "),
        out.accel,
        out.boot_secs
            .map(|s| format!("{s:.0} s"))
            .unwrap_or_else(|| "never".into()),
        out.total_secs
    );
    if let Some(why) = out.failure {
        bail!("{why}");
    }
    let rc = out.rc.unwrap_or(2);
    Ok(ExitCode::from(u8::try_from(rc).unwrap_or(2)))
}

/// `devcg runtime NAME --here …` in the guest, for a daemon that needs a
/// whole system (systemd as PID 1, libvirtd).
pub fn runtime(
    args: &GuestArgs,
    name: &str,
    cases: u64,
    seed: u64,
    json: bool,
) -> Result<ExitCode> {
    let mut words: Vec<String> = [GUEST_DEVCG, "runtime", name, "--here", "--cases"]
        .map(String::from)
        .into();
    words.extend([cases.to_string(), "--seed".into(), seed.to_string()]);
    if json {
        words.push("--json".into());
    }
    run(args, &shell_words(&words))
}

/// `words` quoted for the guest's sh.
pub fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| devcg_vm::guest::sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_survive_the_guests_shell() {
        let s = shell_words(&["echo".into(), "a b".into(), "it's".into()]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&s)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "a b it's\n");
    }
}
