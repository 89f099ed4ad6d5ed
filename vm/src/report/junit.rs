//! The matrix as JUnit XML (`--junit FILE`), the report CI systems read.
//!
//! One `<testsuite>` per kernel; in it one `<testcase>` per check that the
//! column reported or its expected file names, plus `(run)`, the column's
//! run as a whole (did it boot, did the console show a kernel problem). A
//! case fails exactly when the matrix has a difference for it, so the XML
//! and the exit code never disagree. Every case carries its expected and
//! observed values; a failed one also the column's last console lines.
//!
//! The layout is the one Jenkins' JUnit plugin, GitLab and GitHub's test
//! reporters share: `testsuites > testsuite[name tests failures errors
//! skipped time] > properties?, testcase*, system-out?`, and `testcase[name
//! classname time] > (skipped | failure | error)?, system-out?`.

use std::fmt::Write as _;

use super::{CheckStatus, Difference, KernelRun, Matrix, RunOutcome};

/// The name of the case for a column's run as a whole.
pub const RUN_CASE: &str = "(run)";

/// How one case ended, in JUnit's terms.
enum Verdict {
    Passed,
    Skipped(String),
    /// A result that differs from the expected one.
    Failure(String),
    /// The column could not be checked at all (no boot, crash, timeout).
    Error(String, &'static str),
}

struct Case {
    name: String,
    time: f64,
    verdict: Verdict,
    /// Expected and observed values, detail; the console tail on failure.
    out: String,
}

/// The whole matrix as a JUnit XML document.
pub fn junit(m: &Matrix) -> String {
    let suites: Vec<(&KernelRun, Vec<Case>)> = m.kernels.iter().map(|k| (k, cases(m, k))).collect();
    let count =
        |cases: &[Case], f: fn(&Verdict) -> bool| cases.iter().filter(|c| f(&c.verdict)).count();
    let failed = |v: &Verdict| matches!(v, Verdict::Failure(_));
    let errored = |v: &Verdict| matches!(v, Verdict::Error(..));
    let skipped = |v: &Verdict| matches!(v, Verdict::Skipped(_));
    let all: Vec<&Case> = suites.iter().flat_map(|(_, c)| c).collect();
    let total = |f: fn(&Verdict) -> bool| all.iter().filter(|c| f(&c.verdict)).count();
    let time: f64 = m.kernels.iter().map(|k| k.total_secs).sum();

    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"devcg vm\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{time:.3}\">",
        all.len(),
        total(failed),
        total(errored),
        total(skipped),
    );
    for (k, cases) in &suites {
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"{}\" time=\"{:.3}\">",
            esc(&k.name),
            cases.len(),
            count(cases, failed),
            count(cases, errored),
            count(cases, skipped),
            k.total_secs
        );
        let props = properties(k);
        if !props.is_empty() {
            x.push_str("    <properties>\n");
            for (name, value) in props {
                let _ = writeln!(
                    x,
                    "      <property name=\"{}\" value=\"{}\"/>",
                    esc(name),
                    esc(&value)
                );
            }
            x.push_str("    </properties>\n");
        }
        let class = classname(&k.name);
        for c in cases {
            let _ = write!(
                x,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\">",
                esc(&c.name),
                esc(&class),
                c.time
            );
            match &c.verdict {
                Verdict::Passed => {}
                Verdict::Skipped(why) => {
                    let _ = write!(x, "\n      <skipped message=\"{}\"/>", esc(why));
                }
                Verdict::Failure(what) => {
                    let _ = write!(
                        x,
                        "\n      <failure message=\"{}\" type=\"difference\">{}</failure>",
                        esc(what),
                        esc(&c.out)
                    );
                }
                Verdict::Error(what, kind) => {
                    let _ = write!(
                        x,
                        "\n      <error message=\"{}\" type=\"{kind}\">{}</error>",
                        esc(what),
                        esc(&c.out)
                    );
                }
            }
            // A failure's text already holds what system-out would.
            if matches!(c.verdict, Verdict::Passed | Verdict::Skipped(_)) {
                let _ = write!(x, "\n      <system-out>{}</system-out>", esc(&c.out));
            }
            x.push_str("\n    </testcase>\n");
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Jenkins splits a class name at its last dot into package and class:
/// a kernel name's own dots (`debian-6.12`) would split it.
fn classname(kernel: &str) -> String {
    format!("devcg.vm.{}", kernel.replace('.', "_"))
}

fn properties(k: &KernelRun) -> Vec<(&'static str, String)> {
    let mut p = vec![("outcome", k.outcome.short().to_string())];
    if let Some(r) = &k.release {
        p.push(("release", r.clone()));
    }
    if let Some(pkg) = &k.package {
        p.push(("package", pkg.clone()));
    }
    if let Some(v) = &k.package_version {
        p.push(("package_version", v.clone()));
    }
    match (&k.accel, k.host) {
        (_, true) => p.push(("accel", "host".into())),
        (Some(a), false) => p.push(("accel", a.accel.to_string())),
        (None, false) => {}
    }
    if let Some(b) = k.boot_secs {
        p.push(("boot_secs", format!("{b:.1}")));
    }
    p.push(("results_dir", k.results_dir.display().to_string()));
    p
}

fn console(k: &KernelRun) -> String {
    if k.console_tail.is_empty() {
        return String::new();
    }
    let mut s = format!(
        "\nlast console lines ({}):\n",
        k.results_dir.join("console.log").display()
    );
    for l in &k.console_tail {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// The cases of one column: `(run)`, then its rows in the matrix's order.
fn cases(m: &Matrix, k: &KernelRun) -> Vec<Case> {
    let diffs: Vec<&Difference> = m
        .differences
        .iter()
        .filter(|d| d.kernel == k.name)
        .collect();
    let expected = m.expected.get(&k.name);
    let mut out = vec![run_case(k, &diffs)];
    for row in &m.rows {
        let want = expected.and_then(|e| e.checks.get(row));
        let got = k.check(row);
        if want.is_none() && got.is_none() {
            continue;
        }
        let want_text = match (want, expected) {
            (Some(w), _) => match w.why() {
                Some(why) => format!("{} ({why})", w.status()),
                None => w.status().to_string(),
            },
            (None, Some(_)) => "not in the expected file".into(),
            (None, None) => "pass (no expected file)".into(),
        };
        let got_text = match got {
            Some(o) => o.status.to_string(),
            None if k.outcome.ran() => "not reported".into(),
            None => format!("not run ({})", k.outcome.short()),
        };
        let mut text = format!("expected: {want_text}\nobserved: {got_text}\n");
        if let Some(d) = got.and_then(|o| o.detail.as_ref()) {
            let _ = writeln!(text, "detail: {d}");
        }
        let diff = diffs.iter().find(|d| d.check.as_deref() == Some(row));
        let verdict = match (diff, got) {
            (Some(d), _) => {
                text.push_str(&console(k));
                Verdict::Failure(d.what.clone())
            }
            (None, None) => Verdict::Skipped(format!("not run: see {RUN_CASE}")),
            (None, Some(o)) if o.status == CheckStatus::Skip => Verdict::Skipped(
                want.and_then(|w| w.why())
                    .or(o.detail.as_deref())
                    .unwrap_or("skipped")
                    .to_string(),
            ),
            (None, Some(_)) => Verdict::Passed,
        };
        out.push(Case {
            name: row.clone(),
            time: 0.0,
            verdict,
            out: text,
        });
    }
    out
}

fn run_case(k: &KernelRun, diffs: &[&Difference]) -> Case {
    let mut text = format!("outcome: {}\n", k.outcome.short());
    if let Some(why) = k.outcome.why() {
        let _ = writeln!(text, "why: {why}");
    }
    if let Some(a) = &k.accel {
        let _ = writeln!(text, "accel: {} ({})", a.accel, a.why);
    }
    let whole: Vec<&&Difference> = diffs.iter().filter(|d| d.check.is_none()).collect();
    let verdict = match (&k.outcome, whole.first()) {
        (RunOutcome::Unavailable(why), _) => Verdict::Skipped(format!("not tested: {why}")),
        (RunOutcome::Ran, None) => Verdict::Passed,
        (RunOutcome::Ran, Some(d)) => {
            text.push_str(&console(k));
            Verdict::Failure(d.what.clone())
        }
        (other, _) => {
            text.push_str(&console(k));
            let what = whole
                .first()
                .map(|d| d.what.clone())
                .unwrap_or_else(|| other.short().to_string());
            Verdict::Error(what, other.short())
        }
    };
    Case {
        name: RUN_CASE.into(),
        time: k.total_secs,
        verdict,
        out: text,
    }
}

/// Text for an attribute or element. Characters XML 1.0 cannot hold at all
/// (console logs carry escape sequences) become U+FFFD.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || matches!(c as u32, 0xFFFE | 0xFFFF) => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    //! The XML is read back by a real parser (roxmltree) and held to the
    //! structure CI systems read; its text is pinned by a golden file.
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::install::{Accel, ColumnAccel};
    use crate::report::test_support::*;
    use crate::report::Expected;

    /// Three columns: one with a regression and a skip, one that did not
    /// boot, one not available.
    fn sample() -> Matrix {
        let mut good = run_with(&[
            ("attach_none", CheckStatus::Pass),
            ("get_retval", CheckStatus::Skip),
            ("access_f_ok", CheckStatus::Fail),
        ]);
        good.name = "debian-6.12".into();
        good.release = Some("6.12.117+deb12-amd64".into());
        good.package = Some("linux-image-6.12.117+deb12-amd64".into());
        good.package_version = Some("6.12.117-1".into());
        good.results_dir = PathBuf::from("/r/debian-6.12");
        good.checks[2].detail = Some("expected EPERM, observed 0 <&>".into());
        good.console_tail = vec!["[ 20.1] devcg: done".into(), "esc \u{1b}[0m end".into()];
        good.accel = Some(ColumnAccel {
            accel: Accel::Tcg,
            why: "forced".into(),
            kvm_failure: None,
        });
        let mut dead = run_with(&[]);
        dead.name = "mine".into();
        dead.results_dir = PathBuf::from("/r/mine");
        dead.outcome = RunOutcome::BootTimeout("no guest script after 240s".into());
        dead.console_tail = vec!["[ 3.0] Probing EDD".into()];
        let mut gone = run_with(&[]);
        gone.name = "host".into();
        gone.host = true;
        gone.results_dir = PathBuf::from("/r/host");
        gone.outcome = RunOutcome::Unavailable("no cgroup2".into());
        let expected = BTreeMap::from([
            (
                "debian-6.12".to_string(),
                expected(
                    r#"{"checks": {"attach_none": "pass", "get_retval": {"status": "skip", "why": "no v1 here"}, "access_f_ok": "pass"}}"#,
                ),
            ),
            (
                "mine".to_string(),
                expected(r#"{"checks": {"attach_none": "pass"}}"#),
            ),
        ]);
        Matrix::new(vec![good, dead, gone], &expected, vec![], vec![])
    }

    fn attr<'a>(n: roxmltree::Node<'a, 'a>, name: &str) -> &'a str {
        n.attribute(name)
            .unwrap_or_else(|| panic!("<{}> has no {name}", n.tag_name().name()))
    }

    fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
        n.children().filter(|c| c.is_element()).collect()
    }

    fn number(n: roxmltree::Node, name: &str) -> usize {
        attr(n, name).parse().unwrap()
    }

    /// What Jenkins, GitLab and GitHub's reporters read, checked on the
    /// parsed tree: every count agrees with the cases it counts.
    fn check_structure(xml: &str) -> roxmltree::Document<'_> {
        let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let mut totals = [0usize; 4];
        for suite in elements(root) {
            assert_eq!(suite.tag_name().name(), "testsuite");
            assert!(!attr(suite, "name").is_empty());
            attr(suite, "time").parse::<f64>().unwrap();
            let kids = elements(suite);
            let names: Vec<&str> = kids.iter().map(|k| k.tag_name().name()).collect();
            // properties?, testcase*, system-out?, system-err?
            let order = |n: &str| match n {
                "properties" => 0,
                "testcase" => 1,
                "system-out" => 2,
                "system-err" => 3,
                other => panic!("<{other}> in a testsuite"),
            };
            assert!(
                names.windows(2).all(|w| order(w[0]) <= order(w[1])),
                "{names:?}"
            );
            let mut counts = [0usize; 4];
            for case in kids.iter().filter(|k| k.has_tag_name("testcase")) {
                counts[0] += 1;
                assert!(!attr(*case, "name").is_empty());
                assert!(attr(*case, "classname").starts_with("devcg.vm."));
                attr(*case, "time").parse::<f64>().unwrap();
                let outcome: Vec<_> = elements(*case)
                    .into_iter()
                    .filter(|c| c.tag_name().name() != "system-out")
                    .collect();
                assert!(outcome.len() <= 1, "one outcome per case");
                if let Some(o) = outcome.first() {
                    let i = match o.tag_name().name() {
                        "failure" => 1,
                        "error" => 2,
                        "skipped" => 3,
                        other => panic!("<{other}> in a testcase"),
                    };
                    counts[i] += 1;
                    assert!(!attr(*o, "message").is_empty());
                }
            }
            assert_eq!(
                [
                    number(suite, "tests"),
                    number(suite, "failures"),
                    number(suite, "errors"),
                    number(suite, "skipped")
                ],
                counts
            );
            for i in 0..4 {
                totals[i] += counts[i];
            }
        }
        assert_eq!(
            [
                number(root, "tests"),
                number(root, "failures"),
                number(root, "errors"),
                number(root, "skipped")
            ],
            totals
        );
        doc
    }

    fn case<'a>(
        doc: &'a roxmltree::Document<'a>,
        suite: &str,
        name: &str,
    ) -> roxmltree::Node<'a, 'a> {
        doc.descendants()
            .find(|n| n.has_tag_name("testsuite") && n.attribute("name") == Some(suite))
            .and_then(|s| {
                s.children()
                    .find(|c| c.has_tag_name("testcase") && c.attribute("name") == Some(name))
            })
            .unwrap_or_else(|| panic!("no case {suite}/{name}"))
    }

    fn outcome<'a>(n: roxmltree::Node<'a, 'a>) -> Option<(&'a str, &'a str, String)> {
        n.children()
            .find(|c| c.is_element() && !c.has_tag_name("system-out"))
            .map(|o| {
                (
                    o.tag_name().name(),
                    o.attribute("message").unwrap_or(""),
                    o.text().unwrap_or("").to_string(),
                )
            })
    }

    #[test]
    fn the_report_has_the_structure_ci_reads() {
        let m = sample();
        let xml = junit(&m);
        let doc = check_structure(&xml);
        // The regression: expected and observed values, detail and the
        // console tail (its escape sequence made harmless).
        let (kind, message, text) = outcome(case(&doc, "debian-6.12", "access_f_ok")).unwrap();
        assert_eq!(kind, "failure");
        assert!(message.contains("expected pass"), "{message}");
        assert!(text.contains("expected: pass\nobserved: fail\n"), "{text}");
        assert!(
            text.contains("detail: expected EPERM, observed 0 <&>"),
            "{text}"
        );
        assert!(text.contains("last console lines (/r/debian-6.12/console.log):"));
        assert!(text.contains("esc \u{FFFD}[0m end"), "{text}");
        // A recorded skip is skipped, with its reason; a pass is a pass.
        let (kind, message, _) = outcome(case(&doc, "debian-6.12", "get_retval")).unwrap();
        assert_eq!((kind, message), ("skipped", "no v1 here"));
        assert!(outcome(case(&doc, "debian-6.12", "attach_none")).is_none());
        assert!(outcome(case(&doc, "debian-6.12", RUN_CASE)).is_none());
        // A column that did not boot: an error with its console, and its
        // expected checks listed as not run.
        let (kind, message, text) = outcome(case(&doc, "mine", RUN_CASE)).unwrap();
        assert_eq!(kind, "error");
        assert!(message.contains("no guest script after 240s"), "{message}");
        assert!(text.contains("Probing EDD"), "{text}");
        assert_eq!(
            outcome(case(&doc, "mine", "attach_none")).unwrap().0,
            "skipped"
        );
        // An unavailable column is skipped, never passed.
        assert_eq!(outcome(case(&doc, "host", RUN_CASE)).unwrap().0, "skipped");
        let root = doc.root_element();
        assert_eq!(
            (number(root, "failures"), number(root, "errors")),
            (1, 1),
            "as many failures as the matrix has differences"
        );
        assert_eq!(m.differences.len(), 2);
    }

    #[test]
    fn the_report_matches_its_golden_file() {
        let xml = junit(&sample());
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/junit.xml");
        if std::env::var_os("DEVCG_UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &xml).unwrap();
        }
        let want =
            std::fs::read_to_string(&path).expect("golden file (DEVCG_UPDATE_GOLDEN=1 writes it)");
        assert_eq!(
            xml,
            want,
            "DEVCG_UPDATE_GOLDEN=1 rewrites {}",
            path.display()
        );
    }

    #[test]
    fn an_all_pass_matrix_has_no_failures() {
        let r = run_with(&[("a", CheckStatus::Pass)]);
        let m = Matrix::new(
            vec![r],
            &BTreeMap::<String, Expected>::new(),
            vec![],
            vec![],
        );
        let xml = junit(&m);
        let doc = check_structure(&xml);
        let root = doc.root_element();
        assert_eq!(
            (
                number(root, "tests"),
                number(root, "failures"),
                number(root, "errors")
            ),
            (2, 0, 0)
        );
        let out = case(&doc, "k", "a")
            .children()
            .find(|c| c.has_tag_name("system-out"))
            .and_then(|c| c.text())
            .unwrap();
        assert_eq!(out, "expected: pass (no expected file)\nobserved: pass\n");
    }
}
