//! The oracle script format: golden outputs for whole scripts
//! (tests/golden/NAME.script against NAME.jsonl, one JSON object per line as
//! `devcg oracle` prints them) and a table of malformed lines.
//!
//! `DEVCG_BLESS=1 cargo test -p devcg-oracle --test script` rewrites the
//! .jsonl files; review the diff before keeping it.

use std::fs;
use std::path::{Path, PathBuf};

use devcg_oracle::script::{run, Effect, Output, ScriptError, ScriptErrorKind};
use devcg_oracle::{Errno, OracleError};
use rstest::rstest;

fn render(outputs: &[Output]) -> String {
    outputs
        .iter()
        .map(|o| serde_json::to_string(o).unwrap() + "\n")
        .collect()
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden_scripts() {
    let bless = std::env::var_os("DEVCG_BLESS").is_some();
    let mut scripts: Vec<PathBuf> = fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "script"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 4, "golden scripts missing: {scripts:?}");
    for script in scripts {
        let text = fs::read_to_string(&script).unwrap();
        let got = render(&run(&text).unwrap_or_else(|e| panic!("{}: {e}", script.display())));
        let want_path = script.with_extension("jsonl");
        if bless {
            fs::write(&want_path, &got).unwrap();
            continue;
        }
        let want = fs::read_to_string(&want_path)
            .unwrap_or_else(|e| panic!("{}: {e}", want_path.display()));
        assert_eq!(
            got,
            want,
            "{} differs from {}",
            script.display(),
            want_path.display()
        );
    }
}

#[test]
fn output_json_shape() {
    let out = run("mkdir a\nwrite a deny c 1:3 q\nwrite a deny a\nmkdir a/b\nwrite a/b allow c 1:3 r\nlist a\ncheck a b 8:0 -\n")
        .unwrap();
    assert_eq!(
        render(&out),
        concat!(
            r#"{"line":1,"cmd":"mkdir","errno":null}"#,
            "\n",
            r#"{"line":2,"cmd":"write","errno":"EINVAL"}"#,
            "\n",
            r#"{"line":3,"cmd":"write","errno":null}"#,
            "\n",
            r#"{"line":4,"cmd":"mkdir","errno":null}"#,
            "\n",
            r#"{"line":5,"cmd":"write","errno":"EPERM"}"#,
            "\n",
            r#"{"line":6,"cmd":"list","list":""}"#,
            "\n",
            r#"{"line":7,"cmd":"check","allowed":false}"#,
            "\n",
        )
    );
    assert_eq!(serde_json::to_string(&Errno::EPERM).unwrap(), r#""EPERM""#);
    assert_eq!(
        serde_json::to_string(&Errno::EINVAL).unwrap(),
        r#""EINVAL""#
    );
}

#[test]
fn line_numbers_count_skipped_lines() {
    let out = run("\n# c\n   \n\t# indented comment\nmkdir a\r\nlist a\n").unwrap();
    assert_eq!(out.iter().map(|o| o.line).collect::<Vec<_>>(), [5, 6]);
    assert_eq!(
        out[1].effect,
        Effect::List {
            list: "a *:* rwm\n".into()
        }
    );
    assert!(run("").unwrap().is_empty());
}

#[test]
fn write_text_is_the_rest_of_the_line() {
    // Inner blanks reach the kernel parser: `c 1:3  r` has two blanks
    // before the access, which it refuses.
    let out =
        run("mkdir a\nwrite a deny a\nwrite a allow c 1:3  r\nwrite a allow   c 1:3 r  \nlist a\n")
            .unwrap();
    assert_eq!(
        out[2].effect,
        Effect::Write {
            errno: Some(Errno::EINVAL)
        }
    );
    assert_eq!(out[3].effect, Effect::Write { errno: None });
    assert_eq!(
        out[4].effect,
        Effect::List {
            list: "c 1:3 r\n".into()
        }
    );
}

fn missing(cmd: &'static str, what: &'static str) -> ScriptErrorKind {
    ScriptErrorKind::Missing { cmd, what }
}

fn extra(cmd: &'static str, extra: &str) -> ScriptErrorKind {
    ScriptErrorKind::Extra {
        cmd,
        extra: extra.into(),
    }
}

#[rstest]
#[case::unknown_command("frobnicate a", ScriptErrorKind::UnknownCommand("frobnicate".into()))]
#[case::case_matters("MKDIR b", ScriptErrorKind::UnknownCommand("MKDIR".into()))]
#[case::mkdir_no_path("mkdir", missing("mkdir", "PATH"))]
#[case::mkdir_extra("mkdir b c", extra("mkdir", "c"))]
#[case::mkdir_exists("mkdir a", OracleError::Exists("a".into()).into())]
#[case::mkdir_no_parent("mkdir x/y", OracleError::NoParent("x/y".into()).into())]
#[case::mkdir_bad_path("mkdir a//b", OracleError::BadPath("a//b".into()).into())]
#[case::mkdir_dotdot("mkdir a/..", OracleError::BadPath("a/..".into()).into())]
#[case::write_no_path("write", missing("write", "PATH"))]
#[case::write_no_kind("write a", missing("write", "allow|deny"))]
#[case::write_bad_kind("write a permit c 1:3 r", ScriptErrorKind::BadKind("permit".into()))]
#[case::write_no_text("write a deny", missing("write", "TEXT"))]
#[case::write_blank_text("write a deny  \t ", missing("write", "TEXT"))]
#[case::write_unknown_path("write zz deny a", OracleError::NoSuchCgroup("zz".into()).into())]
#[case::list_no_path("list", missing("list", "PATH"))]
#[case::list_extra("list a a", extra("list", "a"))]
#[case::list_unknown("list a/zz", OracleError::NoSuchCgroup("a/zz".into()).into())]
#[case::check_no_type("check a", missing("check", "TYPE"))]
#[case::check_no_dev("check a c", missing("check", "MAJOR:MINOR"))]
#[case::check_no_access("check a c 1:3", missing("check", "ACCESS"))]
#[case::check_extra("check a c 1:3 r now", extra("check", "now"))]
#[case::check_type_a("check a a 1:3 r", ScriptErrorKind::BadType("a".into()))]
#[case::check_type_long("check a cc 1:3 r", ScriptErrorKind::BadType("cc".into()))]
#[case::check_star("check a c *:3 r", ScriptErrorKind::BadDevice("*:3".into()))]
#[case::check_plus("check a c +1:3 r", ScriptErrorKind::BadDevice("+1:3".into()))]
#[case::check_overflow("check a c 4294967296:3 r", ScriptErrorKind::BadDevice("4294967296:3".into()))]
#[case::check_no_colon("check a c 1 3", ScriptErrorKind::BadDevice("1".into()))]
#[case::check_empty_minor("check a c 1: r", ScriptErrorKind::BadDevice("1:".into()))]
#[case::check_bad_access("check a c 1:3 rx", ScriptErrorKind::BadAccess("rx".into()))]
#[case::check_dash_plus("check a c 1:3 -r", ScriptErrorKind::BadAccess("-r".into()))]
#[case::check_unknown("check zz c 1:3 r", OracleError::NoSuchCgroup("zz".into()).into())]
fn malformed_lines(#[case] line: &str, #[case] kind: ScriptErrorKind) {
    let script = format!("mkdir a\n# padding\n{line}\nlist a\n");
    let err = run(&script).unwrap_err();
    assert_eq!(err, ScriptError { line: 3, kind });
    assert!(err.to_string().starts_with("line 3: "), "{err}");
}

#[test]
fn error_messages_name_line_and_reason() {
    let err = run("mkdir a\n\nfrobnicate a\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 3: unknown command \"frobnicate\" (expected mkdir, write, list or check)"
    );
    let err = run("mkdir a/b\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 1: the parent of \"a/b\" does not exist"
    );
}

/// A byte that is not UTF-8 is reported on its own line, before anything
/// runs: a lone continuation byte, a truncated sequence, an overlong `/`, a
/// surrogate, Latin-1.
#[rstest]
#[case::first_line(b"mkdir \x80\n", 1)]
#[case::after_blank_lines(b"mkdir a\n\n# c\nwrite a allow c 1:3 \xff\n", 4)]
#[case::truncated_at_end(b"mkdir a\nlist a\n\xe2\x82", 3)]
#[case::overlong(b"mkdir a\r\nmkdir \xc0\xaf\r\n", 2)]
#[case::surrogate(b"# \xed\xa0\x80\n", 1)]
#[case::latin1_after_an_error(b"frobnicate\nmkdir caf\xe9\n", 2)]
fn non_utf8_names_the_line(#[case] bytes: &[u8], #[case] line: usize) {
    let err = devcg_oracle::script::run_bytes(bytes).unwrap_err();
    assert_eq!(
        err,
        ScriptError {
            line,
            kind: ScriptErrorKind::NotUtf8
        }
    );
    assert_eq!(err.to_string(), format!("line {line}: not UTF-8"));
}

#[test]
fn utf8_bytes_run_as_text() {
    let outputs =
        devcg_oracle::script::run_bytes("mkdir caf\u{e9}\nlist caf\u{e9}\n".as_bytes()).unwrap();
    assert_eq!(outputs.len(), 2);
}
