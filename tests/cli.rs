//! The command line, end to end: exit codes, error messages naming file and
//! line, and golden files for printed programs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rstest::rstest;

fn devcg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(args)
        .output()
        .expect("run devcg")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write_temp(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[rstest]
#[case::bad_keyword(
    "r.rules",
    "deny a\npermit c 1:3 r\n",
    "r.rules:2",
    "expected `allow TEXT` or `deny TEXT`"
)]
#[case::bad_type("r.rules", "allow x 1:3 r\n", "r.rules:1", "unknown device type")]
#[case::overflow(
    "r.rules",
    "# c\n\nallow c 4294967296:1 r\n",
    "r.rules:3",
    "does not fit in 32 bits"
)]
#[case::no_access("r.rules", "deny c 1:3\n", "r.rules:1", "whitespace before the access")]
#[case::bad_access(
    "r.rules",
    "allow c 1:3 rx\n",
    "r.rules:1",
    "invalid access character 'x'"
)]
#[case::json_syntax("r.json", "[\n {\"allow\": true,\n", "r.json:3", "invalid JSON")]
#[case::json_no_allow(
    "r.json",
    "[\n {\"allow\": true},\n {\"type\": \"c\"}\n]\n",
    "r.json:3",
    "`allow` (true or false) is required"
)]
#[case::json_negative(
    "r.json",
    "[{\"allow\": true, \"type\": \"c\", \"major\": -5, \"access\": \"r\"}]",
    "r.json:1",
    "major must be"
)]
#[case::json_type(
    "r.json",
    "[{\"allow\": true, \"type\": \"p\", \"access\": \"r\"}]",
    "r.json:1",
    "unknown device type 'p'"
)]
#[case::json_allow_out_of_range(
    "r.json",
    "[\n {\"allow\": 1e400}\n]\n",
    "r.json:2:12",
    "devices[0].allow: expected true or false, found a number 1e400"
)]
#[case::json_type_object(
    "r.json",
    "[{\"allow\": true, \"type\": {}}]",
    "r.json:1:26",
    "devices[0].type: expected \"a\", \"b\" or \"c\", found an object {}"
)]
#[case::json_major_string(
    "r.json",
    "[{\"allow\": true, \"type\": \"c\", \"major\": \"1\"}]",
    "r.json:1:40",
    "devices[0].major: expected an integer"
)]
#[case::json_misspelled_access(
    "r.json",
    "[{\"allow\": false, \"access\": \"rwm\"},\n {\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 3, \"acess\": \"rwm\"}]",
    "r.json:2:64",
    "unknown field \"acess\""
)]
#[case::config_misspelled_major(
    "config.json",
    "{\"ociVersion\": \"1.0.2\", \"hostname\": \"x\",\n \"linux\": {\"resources\": {\"devices\": [{\"allow\": true, \"majr\": 1}]}}}",
    "config.json:2:62",
    "did you mean \"major\"?"
)]
#[case::config_without_devices(
    "config.json",
    "{\"linux\": {}}",
    "config.json:1",
    "no linux.resources.devices"
)]
fn bad_rule_files_name_file_line_and_reason(
    #[case] name: &str,
    #[case] text: &str,
    #[case] location: &str,
    #[case] reason: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), name, text);
    let out = devcg(&["compile", "--strategy", "linear", &path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(location), "no {location} in: {err}");
    assert!(err.contains(reason), "no {reason:?} in: {err}");
}

/// One 10 MiB line: the message quotes the start of it and says how long
/// it is, instead of repeating it.
#[rstest]
#[case::v1_keyword("r.rules", "allow c 1:3 r\n{huge}\n", "r.rules:2")]
#[case::v1_access("r.rules", "allow c 1:3 r{huge}\n", "r.rules:1")]
#[case::json_access(
    "r.json",
    "[{{\"allow\": true, \"type\": \"c\", \"access\": \"{huge}\"}}]",
    "r.json:1:2"
)]
#[case::json_field("r.json", "[{{\"allow\": true, \"{huge}\": 1}}]", "r.json:1:")]
fn a_huge_line_gives_a_short_error(#[case] name: &str, #[case] text: &str, #[case] location: &str) {
    let huge = "x".repeat(10 << 20);
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(
        dir.path(),
        name,
        &text
            .replace("{huge}", &huge)
            .replace("{{", "{")
            .replace("}}", "}"),
    );
    let out = devcg(&["compile", "--strategy", "linear", &path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.len() < 400, "{} bytes of stderr", err.len());
    assert!(err.contains(location), "no {location} in: {err}");
    assert!(err.contains("xxxx\"… (1048"), "no cut quote in: {err}");
}

#[test]
fn missing_rule_file_is_an_error() {
    let out = devcg(&["compile", "--strategy", "linear", "/nonexistent/rules"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rules"));
}

#[test]
fn unknown_strategy_is_an_error() {
    let out = devcg(&["verify", "--strategy", "nope", "--cases", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown strategy \"nope\""));
}

#[rstest]
#[case::odd_length(&[0x95, 0, 0, 0, 0, 0, 0, 0, 0, 0], "not a multiple of 8")]
#[case::unknown_opcode(&[0xff, 0, 0, 0, 0, 0, 0, 0], "")]
fn bad_program_files_are_refused(#[case] bytes: &[u8], #[case] reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("p.bin");
    std::fs::write(&prog, bytes).unwrap();
    let rules = root().join("examples/container.rules");
    let out = devcg(&[
        "check",
        "--program",
        prog.to_str().unwrap(),
        rules.to_str().unwrap(),
        "c 1:3 r",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains(reason), "no {reason:?} in: {err}");
}

#[test]
fn bad_oracle_script_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_temp(dir.path(), "s.v1", "mkdir a\n\nfrobnicate a\n");
    let out = devcg(&["oracle", &path]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.contains("s.v1:3: unknown command \"frobnicate\""),
        "no FILE:LINE in: {err}"
    );
}

/// A byte that is not UTF-8 is reported as FILE:LINE, its line.
#[rstest]
#[case::first_line(b"mkdir \xff\n", "s.v1:1: not UTF-8")]
#[case::third_line(
    b"mkdir a\n# caf\xc3\xa9\nwrite a allow c 1:3 \xe9\n",
    "s.v1:3: not UTF-8"
)]
fn non_utf8_oracle_script_names_the_line(#[case] bytes: &[u8], #[case] message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.v1");
    std::fs::write(&path, bytes).unwrap();
    let out = devcg(&["oracle", path.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        err.trim(),
        format!("error: {}/{message}", dir.path().display())
    );
}

#[test]
fn oracle_script_prints_one_object_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let script =
        "# comment\nmkdir a\nwrite a deny a\nwrite a allow c 1:3 rwm\nwrite a allow c 1:3 x\n\
                  list a\ncheck a c 1:3 rw\ncheck a c 1:4 -\n";
    let path = write_temp(dir.path(), "s.v1", script);
    let out = devcg(&["oracle", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = r#"{"line":2,"cmd":"mkdir","errno":null}
{"line":3,"cmd":"write","errno":null}
{"line":4,"cmd":"write","errno":null}
{"line":5,"cmd":"write","errno":"EINVAL"}
{"line":6,"cmd":"list","list":"c 1:3 rwm\n"}
{"line":7,"cmd":"check","allowed":true}
{"line":8,"cmd":"check","allowed":false}
"#;
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn check_shows_both_answers() {
    let rules = root().join("examples/deny-list.rules");
    let out = devcg(&[
        "check",
        "--strategy",
        "linear",
        rules.to_str().unwrap(),
        "c 1:3 rw",
        "c",
        "1:3",
        "r",
        "b 8:0 -",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("c 1:3 rw")
            && lines[0].contains("oracle deny")
            && lines[0].contains("program deny")
    );
    assert!(lines[1].contains("oracle allow") && lines[1].contains("program allow"));
    assert!(
        lines[2].contains("oracle allow"),
        "access 0 to b 8:0 overlaps no deny bit: {}",
        lines[2]
    );
}

#[test]
fn verify_prints_the_table() {
    let out = devcg(&[
        "verify",
        "--strategy",
        "linear",
        "--cases",
        "50",
        "--seed",
        "7",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("linear"))
        .expect("linear row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "50", "rule sets: {row}");
    assert_eq!(cols[2], "3200", "checks: {row}");
    assert_eq!(cols[3], "0", "divergences: {row}");
}

#[test]
fn compile_formats_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let rules = root().join("examples/container.rules");
    let raw = dir.path().join("p.bin");
    let json = dir.path().join("p.json");
    for (format, path) in [("raw", &raw), ("json", &json)] {
        let out = devcg(&[
            "compile",
            "--strategy",
            "linear",
            "--format",
            format,
            "-o",
            path.to_str().unwrap(),
            rules.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for path in [&raw, &json] {
        let out = devcg(&[
            "check",
            "--program",
            path.to_str().unwrap(),
            rules.to_str().unwrap(),
            "c 1:3 rw",
            "c 1:4 r",
            "b 7:0 m",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert_eq!(text.matches("agree").count(), 3, "{text}");
    }
}

/// Printed programs are pinned by golden files; `UPDATE_GOLDEN=1` rewrites them.
#[rstest]
#[case("container.rules")]
#[case("deny-list.rules")]
#[case("devices.json")]
#[case("config.json")]
fn golden_asm(#[case] rules: &str) {
    for strategy in devcg_engine::strategy::names() {
        let out = devcg(&[
            "compile",
            "--strategy",
            strategy,
            "--format",
            "asm",
            root().join("examples").join(rules).to_str().unwrap(),
        ]);
        // A model's refusal is pinned as well: it is what that runtime says.
        let got = match out.status.code() {
            Some(0) => String::from_utf8(out.stdout).unwrap(),
            Some(2) => String::from_utf8(out.stderr).unwrap(),
            other => panic!("{strategy}: exit {other:?}"),
        };
        let golden = root()
            .join("tests/golden")
            .join(format!("{rules}.{strategy}.asm"));
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&golden, &got).unwrap();
        }
        let want = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", golden.display()));
        assert_eq!(got, want, "{} changed", golden.display());
    }
}

#[test]
fn vm_help_names_the_runner_options() {
    let out = devcg(&["vm", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for option in [
        "--kernel",
        "--json",
        "--cases",
        "--no-install",
        "--record",
        "--accel",
        "--junit",
        "--image",
        "--modules",
        "--expected",
        "--check",
    ] {
        assert!(text.contains(option), "no {option} in: {text}");
    }
    assert!(!text.contains("--guest-check"), "{text}");
}

/// An unknown kernel is a runner error (exit 2) naming it and the known
/// ones, before anything is installed, booted or written.
#[test]
fn vm_refuses_an_unknown_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let cache = dir.path().join("cache");
    let out = devcg(&[
        "vm",
        "--kernel",
        "nosuch",
        "--no-install",
        "--results-dir",
        results.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert!(err.contains("unknown kernel \"nosuch\""), "{err}");
    assert!(err.contains("known: host"), "{err}");
    assert!(!results.exists() && !cache.exists());
}

/// Without root every kernel command prints one line saying what is
/// missing and exits 0. As root the test drops to `nobody` with setpriv.
#[rstest]
#[case::kernel_check(&["kernel-check"], "kernel-check: skipped: needs root")]
#[case::kernel_check_json(&["kernel-check", "--json"], "{\"skipped\":\"skipped: needs root")]
#[case::verify_kernel(&["verify", "--kernel", "--cases", "2"], "skipped: needs root")]
#[case::vm_host(&["vm", "--kernel", "host"], "devcg vm: skipped: the kernel matrix needs root")]
fn kernel_commands_without_root_print_one_line(#[case] args: &[&str], #[case] line: &str) {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut cmd = if euid == 0 {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_devcg"));
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_devcg"))
    };
    let out = match cmd.args(args).current_dir("/").output() {
        Ok(o) => o,
        Err(e) => {
            println!("skipped: cannot run setpriv to drop root: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with(line), "{stdout}");
}

/// A file that cannot be read is named once with the reason, once.
#[test]
fn an_unreadable_rule_file_says_why_once() {
    let out = devcg(&["compile", "--strategy", "tree", "/nonexistent/rules"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(
        err.trim(),
        "error: /nonexistent/rules: No such file or directory (os error 2)"
    );
}

/// `--exhaustive` without a strategy or program says what it needs.
#[test]
fn exhaustive_without_a_strategy_names_what_it_needs() {
    let rules = root().join("examples/container.rules");
    let out = devcg(&["verify", "--exhaustive", rules.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("give --strategy NAME (linear, tree, map"),
        "{err}"
    );
    assert!(err.contains("or --program FILE"), "{err}");
}

/// A reader that goes away ends devcg quietly (SIGPIPE), never a panic.
/// The output is larger than a pipe holds, so devcg meets the closed pipe
/// even if another test's child briefly holds a copy of the read end.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let text: String = std::iter::once("deny a\n".to_string())
        .chain((0..4000).map(|i| format!("allow c {i}:{i} rw\n")))
        .collect();
    let rules = write_temp(dir.path(), "many.rules", &text);
    let mut child = Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(["compile", "--strategy", "linear", &rules])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Hang up before devcg writes anything, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {err}",
        out.status
    );
}

/// Each kind of bad access argument gets its own reason.
#[rstest]
#[case::too_big("c 4294967296:0 r", "major 4294967296: over 4294967295")]
#[case::wildcard("c 1:* r", "minor `*`: a request names one device")]
#[case::empty("", "access argument 1 is empty")]
#[case::letters("c 1:3 x", "access \"x\": letters from `rwm`")]
#[case::ty("q 1:3 r", "type \"q\": `c` or `b`")]
#[case::colon("c 1-3 r", "\"1-3\": expected MAJOR:MINOR")]
#[case::words("c 1:3", "triples, got 2 words")]
fn bad_access_arguments_say_what_is_wrong(#[case] access: &str, #[case] reason: &str) {
    let rules = root().join("examples/container.rules");
    let out = devcg(&[
        "check",
        "--strategy",
        "tree",
        rules.to_str().unwrap(),
        access,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(reason), "{err}");
}

/// `--checks-per-case` is bounded with a message, never a panic or an
/// allocation failure (requests are drawn one at a time).
#[rstest]
#[case::zero("0")]
#[case::max_u64("18446744073709551615")]
#[case::two_to_62("4611686018427387904")]
#[case::ten_to_8("100000000")]
fn absurd_checks_per_case_are_refused(#[case] n: &str) {
    let out = devcg(&[
        "verify",
        "--strategy",
        "tree",
        "--cases",
        "1",
        "--checks-per-case",
        n,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--checks-per-case {n}: between 1 and 1000000")),
        "{err}"
    );
}

/// `*(u64 *)(r10 - 8) = r1; r0 = 1; exit`: a raw program whose first byte is
/// `{` (0x7b).
const RAW_7B: &[u8] = &[
    0x7b, 0x1a, 0xf8, 0xff, 0, 0, 0, 0, // *(u64 *)(r10 - 8) = r1
    0xb7, 0, 0, 0, 1, 0, 0, 0, // r0 = 1
    0x95, 0, 0, 0, 0, 0, 0, 0, // exit
];

/// `r0 = 1; exit` as `compile --format json` writes it, after blank lines.
const JSON_INDENTED: &[u8] = b"\n\n  {\"insns\": [\n    {\"code\": 183, \"dst\": 0, \"src\": 0, \"off\": 0, \"imm\": 1},\n    {\"code\": 149, \"dst\": 0, \"src\": 0, \"off\": 0, \"imm\": 0}\n  ], \"maps\": []}\n";

/// The program format comes from `--format`, else the extension, else the
/// content; a program that loads answers `allow` (exit 0), one that does not
/// is bad input (exit 2) whose message says which format was assumed and,
/// when it was guessed, which `--format` reads it the other way.
#[rstest]
#[case::raw_7b_by_content("p", RAW_7B, &[], Ok(()))]
#[case::raw_7b_by_extension("p.bin", RAW_7B, &[], Ok(()))]
#[case::raw_7b_raw_extension("p.raw", RAW_7B, &[], Ok(()))]
#[case::raw_7b_forced("p.json", RAW_7B, &["--format", "raw"], Ok(()))]
#[case::json_indented_by_content("p", JSON_INDENTED, &[], Ok(()))]
#[case::json_by_extension("p.json", JSON_INDENTED, &[], Ok(()))]
#[case::json_forced("p.bin", JSON_INDENTED, &["--format", "json"], Ok(()))]
#[case::json_auto_explicit("p.txt", JSON_INDENTED, &["--format", "auto"], Ok(()))]
#[case::broken_json_by_content(
    "p",
    b"{ \"insns\": [",
    &[],
    Err(&["p: program is 12 bytes, not a multiple of 8", "read as raw bpf_insn bytes, guessed from its content", "starts with `{` but is not UTF-8 JSON", "use --format json"][..])
)]
#[case::json_not_a_program_by_content(
    "p",
    b"{\"x\": 1}",
    &[],
    Err(&["p:1: invalid program JSON: missing field `insns`", "read as JSON, guessed from its content", "use --format raw"][..])
)]
#[case::raw_by_json_extension(
    "p.json",
    RAW_7B,
    &[],
    Err(&["p.json:1: not UTF-8", "read as JSON, for its extension", "use --format raw"][..])
)]
#[case::raw_forced_as_json(
    "p",
    RAW_7B,
    &["--format", "json"],
    Err(&["p:1: not UTF-8"][..])
)]
#[case::json_forced_as_raw(
    "p",
    b"{\"insns\": [], \"maps\": []}\n",
    &["--format", "raw"],
    Err(&["p: program is 26 bytes, not a multiple of 8"][..])
)]
fn program_format_by_option_extension_then_content(
    #[case] name: &str,
    #[case] bytes: &[u8],
    #[case] format: &[&str],
    #[case] want: Result<(), &[&str]>,
    #[values("check", "exhaustive")] command: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join(name);
    std::fs::write(&prog, bytes).unwrap();
    // Everything allowed: `r0 = 1` is equivalent to it.
    let rules = write_temp(dir.path(), "all.rules", "allow a\n");
    let mut args: Vec<&str> = match command {
        "check" => vec!["check"],
        _ => vec!["verify", "--exhaustive"],
    };
    args.extend(["--program", prog.to_str().unwrap()]);
    args.extend(format);
    args.push(&rules);
    if command == "check" {
        args.push("c 1:3 rw");
    }
    let out = devcg(&args);
    let (stdout, err) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    match want {
        Ok(()) => {
            assert_eq!(out.status.code(), Some(0), "{stdout}{err}");
            if command == "check" {
                assert!(stdout.contains("program allow"), "{stdout}");
            } else {
                assert!(stdout.contains("equivalent"), "{stdout}");
            }
        }
        Err(reasons) => {
            assert_eq!(out.status.code(), Some(2), "{stdout}{err}");
            for reason in reasons {
                assert!(err.contains(reason), "no {reason:?} in: {err}");
            }
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}

/// `--format` is about the program file: with a strategy it is refused.
#[rstest]
#[case::check(&["check", "--strategy", "tree", "--format", "raw"], &["--format", "--strategy"])]
#[case::exhaustive(&["verify", "--exhaustive", "--strategy", "tree", "--format", "raw"], &["--program"])]
fn program_format_needs_a_program(#[case] args: &[&str], #[case] named: &[&str]) {
    let rules = root().join("examples/container.rules");
    let mut args = args.to_vec();
    args.push(rules.to_str().unwrap());
    if args[0] == "check" {
        args.push("c 1:3 r");
    }
    let out = devcg(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for name in named {
        assert!(err.contains(name), "no {name} in: {err}");
    }
}

/// `check` needs a program: from a strategy or a file, not both, and the
/// refusal names both ways.
#[rstest]
#[case::neither(&[], &["--strategy <NAME>", "--program <FILE>", "required"])]
#[case::both(
    &["--strategy", "tree", "--program", "p.bin"],
    &["--strategy <NAME>", "--program <FILE>", "cannot be used with"]
)]
fn check_needs_a_strategy_or_a_program(#[case] source: &[&str], #[case] named: &[&str]) {
    let rules = root().join("examples/container.rules");
    let mut args = vec!["check"];
    args.extend(source);
    args.extend([rules.to_str().unwrap(), "c 1:3 r"]);
    let out = devcg(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for name in named {
        assert!(err.contains(name), "no {name:?} in: {err}");
    }
}

/// Every `--strategy` help lists the strategies, from the engine's list.
#[rstest]
#[case::verify("verify")]
#[case::compile("compile")]
#[case::check("check")]
fn strategy_help_lists_the_names(#[case] command: &str) {
    let out = devcg(&[command, "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let names = devcg_engine::strategy::names().join(", ");
    let line = text
        .lines()
        .find(|l| l.contains("[strategies: "))
        .unwrap_or_else(|| panic!("no strategy list in: {text}"));
    assert!(line.contains(&format!("[strategies: {names}]")), "{line}");
}

/// `verify --help` explains every column `verify` and `verify --kernel`
/// print, each on its own line after the column's name.
#[test]
fn verify_help_explains_the_columns() {
    let out = devcg(&["verify", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    let explained = |column: &str| {
        help.lines().any(|l| {
            l.strip_prefix("  ")
                .and_then(|l| l.strip_prefix(column))
                .is_some_and(|rest| rest.starts_with("  ") && !rest.trim().is_empty())
        })
    };
    // The kernel table's columns, from its own header.
    let kernel = devcg_kernel::differential::table(&[]);
    let header = kernel.lines().next().unwrap();
    for column in header.split_whitespace() {
        assert!(
            explained(column),
            "--kernel column {column:?} not explained"
        );
    }
    // The plain table's columns, in the order its header prints them.
    let plain = [
        "strategy",
        "rule sets",
        "checks",
        "divergences",
        "rate",
        "refused",
        "insns min/med/max",
        "checks/s",
    ];
    let out = devcg(&["verify", "--strategy", "linear", "--cases", "1"]);
    let printed = String::from_utf8_lossy(&out.stdout);
    let header = printed.lines().next().unwrap();
    let mut at = 0;
    for column in plain {
        let found = header[at..]
            .find(column)
            .unwrap_or_else(|| panic!("{column:?} not in {header:?} after {at}"));
        at += found + column.len();
        assert!(explained(column), "column {column:?} not explained");
    }
    assert!(
        header[at..].trim().is_empty(),
        "unexplained columns: {header}"
    );
}

/// `--checks-per-case` means nothing to the kernel or exhaustive runs: it is
/// refused there instead of silently ignored.
#[rstest]
#[case::kernel(&["verify", "--kernel", "--checks-per-case", "5"])]
#[case::exhaustive(&["verify", "--exhaustive", "--strategy", "tree", "--checks-per-case", "5", "examples/container.rules"])]
fn checks_per_case_is_refused_where_it_means_nothing(#[case] args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_devcg"))
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--checks-per-case"), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

/// A filter that allows the caller with uid 1000 only and prints the
/// device with bpf_trace_printk: `--uid` decides it, and without it the
/// verdict is reported as depending on the uid, not as one verdict.
#[test]
fn check_takes_the_callers_uid_and_shows_trace_output() {
    use devcg_engine::asm::{Asm, Cond, Size, Width};
    use devcg_engine::insn::{encode_all, helper, op, Reg, R0, R1, R10, R2, R3};
    let mut a = Asm::new();
    let yes = a.new_label();
    for (k, chunk) in b"maj %d\0\0".chunks(4).enumerate() {
        let word = i32::from_le_bytes(chunk.try_into().unwrap());
        a.st_imm(Size::W, R10, -8 + 4 * k as i16, word);
    }
    a.ldx(Size::W, R3, R1, 4);
    a.mov_imm(Width::W64, Reg(4), 0);
    a.mov_imm(Width::W64, Reg(5), 0);
    a.mov_reg(Width::W64, R1, R10);
    a.alu_imm(Width::W64, op::ADD, R1, -8);
    a.mov_imm(Width::W64, R2, 8);
    a.call(helper::TRACE_PRINTK);
    a.call(helper::GET_CURRENT_UID_GID);
    a.jmp_imm(Width::W32, Cond::Eq, R0, 1000, yes);
    a.ret(0);
    a.bind(yes);
    a.ret(1);
    let dir = tempfile::tempdir().unwrap();
    let prog = dir.path().join("uid.bin");
    std::fs::write(&prog, encode_all(&a.finish().unwrap())).unwrap();
    let rules = write_temp(dir.path(), "r.rules", "allow a\n");
    let check = |extra: &[&str]| {
        let mut args = vec![
            "check",
            "--program",
            prog.to_str().unwrap(),
            &rules,
            "c 1:3 r",
        ];
        args.extend_from_slice(extra);
        let out = devcg(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check(&["--uid", "1000"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("trace_printk: maj 1") && text.contains("agree"),
        "{text}"
    );
    let (code, text) = check(&["--uid", "0"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("program deny"), "{text}");
    let (code, text) = check(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("depends on the caller's uid and gid (not given)"),
        "{text}"
    );
}

/// A clang-built C filter (examples/filters/uid_tty.c: a helper and a
/// subprogram) checked end to end through its raw bytes.
#[test]
fn clang_built_filter_with_helper_and_subprogram() {
    let dir = root().join("examples/filters");
    let (prog, rules) = (dir.join("uid_tty.bin"), dir.join("tty.rules"));
    let check = |uid: &str, access: &[&str]| {
        let mut args = vec![
            "check",
            "--program",
            prog.to_str().unwrap(),
            rules.to_str().unwrap(),
        ];
        args.extend_from_slice(access);
        args.extend_from_slice(&["--uid", uid]);
        let out = devcg(&args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = check("1000", &["c 136:1 rw", "c 5:0 r", "c 1:3 r", "b 8:0 r"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(text.matches("agree").count(), 4, "{text}");
    // Root may open anything, which the rules (for non-root) do not say.
    let (code, text) = check("0", &["c 1:3 r"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("program allow"), "{text}");
}

/// `devcg runtime systemd --here` off a machine where systemd is PID 1
/// says so in one line (exit 2); `--here` is the daemons' alone. (Without
/// it, systemd runs in the guest: tests/guest_cli.rs.)
#[test]
fn runtime_systemd_here_says_what_it_needs() {
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if pid1.trim() != "systemd" {
        let out = devcg(&["runtime", "systemd", "--here", "--cases", "1"]);
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("PID 1") && err.trim().lines().count() == 1,
            "{err}"
        );
    }
    let out = devcg(&["runtime", "runc", "--here"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--here is for systemd and libvirt"), "{err}");
}
