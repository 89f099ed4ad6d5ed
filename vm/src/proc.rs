//! Child processes that can never hang the runner: each runs in its own
//! process group with its output in a log file, is polled against a
//! deadline, and is killed as a whole group (vng, qemu and anything else it
//! started) on timeout, on interrupt and when dropped.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM set a flag that every wait loop checks, so that an
/// interrupted runner kills its process groups before it returns. The old
/// handlers come back when the guard is dropped.
pub struct SignalGuard {
    old: Vec<(libc::c_int, libc::sigaction)>,
}

impl SignalGuard {
    pub fn install() -> SignalGuard {
        INTERRUPTED.store(false, Ordering::SeqCst);
        let mut old = Vec::new();
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: sigaction with a handler that only stores to an atomic.
            unsafe {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                let mut prev: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, &new, &mut prev) == 0 {
                    old.push((sig, prev));
                }
            }
        }
        SignalGuard { old }
    }
}

impl Drop for SignalGuard {
    fn drop(&mut self) {
        for (sig, prev) in &self.old {
            // SAFETY: restores the handler saved above.
            unsafe {
                libc::sigaction(*sig, prev, std::ptr::null_mut());
            }
        }
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    Exited(ExitStatus),
    /// The overall deadline passed; the group was killed.
    TimedOut,
    /// The marker file did not appear in time; the group was killed.
    MarkerTimedOut,
    /// A line of the log matched one of the patterns to abort on (the line
    /// is given); the group was killed.
    ConsoleAbort(String),
    Interrupted,
}

/// A child in its own process group.
pub struct Group {
    child: Child,
    pgid: libc::pid_t,
    done: bool,
    pub log: PathBuf,
    pub started_at: Instant,
    /// When the marker given to [`Group::wait`] was first seen.
    pub marker_seen: Option<Duration>,
}

impl Group {
    /// Starts `cmd` with stdin from /dev/null and stdout and stderr both
    /// appended to `log`.
    pub fn spawn(cmd: &mut Command, log: &Path) -> std::io::Result<Group> {
        let out = File::options().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        let child = cmd.spawn()?;
        let pgid = child.id() as libc::pid_t;
        Ok(Group {
            child,
            pgid,
            done: false,
            log: log.to_owned(),
            started_at: Instant::now(),
            marker_seen: None,
        })
    }

    /// Polls until the child exits, `timeout` passes, or (with a marker)
    /// `marker` has not appeared within `marker_timeout`. On exit, whatever
    /// the child left running in its group is killed too.
    pub fn wait(
        &mut self,
        timeout: Duration,
        marker: Option<(&Path, Duration)>,
    ) -> std::io::Result<Waited> {
        self.wait_watching(timeout, marker, &[])
    }

    /// Like [`Group::wait`], and also ends the wait as soon as a line of
    /// the log contains one of `abort_on` (a guest that is dead but whose
    /// qemu stays up, as after a KVM internal error).
    pub fn wait_watching(
        &mut self,
        timeout: Duration,
        marker: Option<(&Path, Duration)>,
        abort_on: &[&str],
    ) -> std::io::Result<Waited> {
        let mut scanner = LogScanner::default();
        loop {
            if let Some(line) = scanner.find(&self.log, abort_on) {
                self.kill();
                return Ok(Waited::ConsoleAbort(line));
            }
            if self.marker_seen.is_none() {
                if let Some((path, _)) = marker {
                    if path.exists() {
                        self.marker_seen = Some(self.started_at.elapsed());
                    }
                }
            }
            if let Some(status) = self.child.try_wait()? {
                self.done = true;
                kill_group(self.pgid, libc::SIGKILL);
                return Ok(Waited::Exited(status));
            }
            if interrupted() {
                self.kill();
                return Ok(Waited::Interrupted);
            }
            let elapsed = self.started_at.elapsed();
            if elapsed >= timeout {
                self.kill();
                return Ok(Waited::TimedOut);
            }
            if let Some((_, limit)) = marker {
                if self.marker_seen.is_none() && elapsed >= limit {
                    self.kill();
                    return Ok(Waited::MarkerTimedOut);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM to the group, a short grace, then SIGKILL; reaps the child.
    pub fn kill(&mut self) {
        if self.done {
            return;
        }
        kill_group(self.pgid, libc::SIGTERM);
        let grace = Instant::now();
        while grace.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill_group(self.pgid, libc::SIGKILL);
        let _ = self.child.wait();
        self.done = true;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a growing log from where it stopped last time, one complete line
/// at a time.
#[derive(Default)]
struct LogScanner {
    offset: u64,
    partial: Vec<u8>,
}

impl LogScanner {
    /// The first new line that contains one of `patterns`.
    fn find(&mut self, log: &Path, patterns: &[&str]) -> Option<String> {
        use std::io::{Read, Seek, SeekFrom};
        if patterns.is_empty() {
            return None;
        }
        let mut f = File::open(log).ok()?;
        f.seek(SeekFrom::Start(self.offset)).ok()?;
        let mut fresh = Vec::new();
        let n = f.read_to_end(&mut fresh).ok()?;
        self.offset += n as u64;
        self.partial.extend_from_slice(&fresh);
        let end = self.partial.iter().rposition(|&b| b == b'\n')?;
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .find(|l| patterns.iter().any(|p| l.contains(p)))
            .map(|l| l.trim().to_string())
    }
}

fn kill_group(pgid: libc::pid_t, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: signals our own child's process group; ESRCH is fine.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// Runs `cmd` to completion within `timeout`, output to `log`. Ok(status)
/// when it exited, Err(reason) otherwise.
pub fn run_logged(cmd: &mut Command, log: &Path, timeout: Duration) -> Result<ExitStatus, String> {
    let mut g = Group::spawn(cmd, log).map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    match g.wait(timeout, None) {
        Ok(Waited::Exited(s)) => Ok(s),
        Ok(Waited::TimedOut) | Ok(Waited::MarkerTimedOut) | Ok(Waited::ConsoleAbort(_)) => {
            Err(format!(
                "{:?} timed out after {}s (log: {})",
                cmd.get_program(),
                timeout.as_secs(),
                log.display()
            ))
        }
        Ok(Waited::Interrupted) => Err("interrupted".into()),
        Err(e) => Err(format!("waiting for {:?}: {e}", cmd.get_program())),
    }
}

/// The last `n` lines of a log, made printable (console logs carry
/// carriage returns, escape sequences and runs of padding).
pub fn tail_lines(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let start = bytes.len().saturating_sub(256 * 1024);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<String> = text
        .split('\n')
        .map(clean_line)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

pub fn clean_line(line: &str) -> String {
    // Keep what follows the last carriage return (what a terminal shows).
    let line = line
        .rsplit('\r')
        .find(|s| !s.trim().is_empty())
        .unwrap_or("");
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI ... final byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hanging_group_is_killed_with_its_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let pidfile = dir.path().join("pid");
        // The grandchild writes its pid then sleeps: it must die with the group.
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let mut g = Group::spawn(Command::new("sh").args(["-c", &script]), &log).unwrap();
        let t = Instant::now();
        let w = g.wait(Duration::from_secs(2), None).unwrap();
        assert!(matches!(w, Waited::TimedOut), "{w:?}");
        assert!(t.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // Gone, or a zombie waiting for a reaper that is not us.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim().chars().next()))
            .flatten();
        assert!(
            matches!(state, None | Some('Z') | Some('X')),
            "grandchild {pid} survived: {state:?}"
        );
    }

    #[test]
    fn a_missing_marker_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        let mut g =
            Group::spawn(Command::new("sleep").arg("300"), &dir.path().join("log")).unwrap();
        let w = g
            .wait(
                Duration::from_secs(60),
                Some((&marker, Duration::from_secs(1))),
            )
            .unwrap();
        assert!(matches!(w, Waited::MarkerTimedOut), "{w:?}");
    }

    #[test]
    fn the_marker_time_is_recorded_and_exit_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("started");
        let script = format!("sleep 0.3; : > {}; sleep 0.3; exit 3", marker.display());
        let mut g = Group::spawn(
            Command::new("sh").args(["-c", &script]),
            &dir.path().join("log"),
        )
        .unwrap();
        let w = g
            .wait(
                Duration::from_secs(30),
                Some((&marker, Duration::from_secs(20))),
            )
            .unwrap();
        match w {
            Waited::Exited(s) => assert_eq!(s.code(), Some(3)),
            other => panic!("{other:?}"),
        }
        let seen = g.marker_seen.unwrap();
        assert!(seen >= Duration::from_millis(250) && seen < Duration::from_secs(5));
    }

    #[test]
    fn console_lines_are_cleaned() {
        assert_eq!(clean_line("  \u{1b}[0mabc\u{1b}[1;31m def\r"), "abc def");
        assert_eq!(clean_line("junk\rreal line"), "real line");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c");
        std::fs::write(&p, "a\n\nb\r\n\u{0}c\nd\n").unwrap();
        assert_eq!(tail_lines(&p, 2), ["c", "d"]);
        assert!(tail_lines(&dir.path().join("none"), 5).is_empty());
    }
}
