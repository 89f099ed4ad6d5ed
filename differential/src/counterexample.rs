//! What a program answered, and a disagreement in the one shape every
//! differential reports: the sampled run (oracle against emulator), the
//! kernel run (oracle, emulator and kernel) and the CLI print it alike.

use devcg_engine::{Request, Verdict};
use serde::Serialize;

/// What the program answered in the emulator: a verdict, or why there is
/// none (the emulator refused the program, or the run failed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    Verdict(Verdict),
    Error(String),
}

impl Answer {
    pub fn of<E: std::fmt::Display>(result: Result<Verdict, E>) -> Answer {
        match result {
            Ok(v) => Answer::Verdict(v),
            Err(e) => Answer::Error(e.to_string()),
        }
    }

    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            Answer::Verdict(v) => Some(*v),
            Answer::Error(_) => None,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Verdict(v) => write!(f, "{v}"),
            Answer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// Which sides disagree on one request, if any. Without a kernel verdict
/// the emulator is judged by the oracle (any error is a disagreement).
/// With one, the kernel is the reference for both; an emulator that gave
/// no verdict is counted apart (a refusal), not as a disagreement.
pub fn disagreement(
    oracle: Verdict,
    emulator: &Answer,
    kernel: Option<Verdict>,
) -> Option<&'static str> {
    let Some(kernel) = kernel else {
        return (*emulator != Answer::Verdict(oracle)).then_some("oracle-vs-emulator");
    };
    let emulator_ok = emulator.verdict().is_none_or(|e| e == kernel);
    match (oracle == kernel, emulator_ok) {
        (true, true) => None,
        (false, true) => Some("oracle-vs-kernel"),
        (true, false) => Some("emulator-vs-kernel"),
        (false, false) => Some("oracle-vs-kernel and emulator-vs-kernel"),
    }
}

/// One request on which the sides disagree, after shrinking the rules.
#[derive(Clone, Debug, Serialize)]
pub struct Counterexample {
    /// The rule list, one v1 line each (`allow c 1:3 rwm`).
    pub rules: Vec<String>,
    #[serde(serialize_with = "as_text")]
    pub request: Request,
    pub oracle: Verdict,
    pub emulator: Answer,
    /// The running kernel's verdict, where it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Verdict>,
    /// Which sides disagree ([`disagreement`]).
    pub kind: String,
    /// The program, bpftool style, where it is worth showing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
}

fn as_text<S: serde::Serializer>(req: &Request, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(req)
}

impl std::fmt::Display for Counterexample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "rules ({}):", self.rules.len())?;
        for r in &self.rules {
            writeln!(f, "  {r}")?;
        }
        write!(
            f,
            "request {} ({}): oracle {}, emulator {}",
            self.request, self.kind, self.oracle, self.emulator
        )?;
        if let Some(k) = self.kernel {
            write!(f, ", kernel {k}")?;
        }
        if let Some(p) = &self.program {
            write!(f, "\nprogram:\n{}", p.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::{Allow, Deny};

    #[test]
    fn without_a_kernel_the_oracle_judges_the_emulator() {
        assert_eq!(disagreement(Allow, &Answer::Verdict(Allow), None), None);
        assert_eq!(
            disagreement(Allow, &Answer::Verdict(Deny), None),
            Some("oracle-vs-emulator")
        );
        assert_eq!(
            disagreement(Deny, &Answer::Error("budget".into()), None),
            Some("oracle-vs-emulator")
        );
    }

    #[test]
    fn with_a_kernel_the_kernel_is_the_reference() {
        let v = |x| Answer::Verdict(x);
        assert_eq!(disagreement(Allow, &v(Allow), Some(Allow)), None);
        assert_eq!(
            disagreement(Deny, &v(Allow), Some(Allow)),
            Some("oracle-vs-kernel")
        );
        assert_eq!(
            disagreement(Allow, &v(Deny), Some(Allow)),
            Some("emulator-vs-kernel")
        );
        assert_eq!(
            disagreement(Deny, &v(Deny), Some(Allow)),
            Some("oracle-vs-kernel and emulator-vs-kernel")
        );
        // A refused program is counted apart, not as a disagreement.
        assert_eq!(
            disagreement(Allow, &Answer::Error("refused".into()), Some(Allow)),
            None
        );
    }
}
