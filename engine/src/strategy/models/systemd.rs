//! Model of systemd's device program generator (to be written).

use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::{CompileError, Strategy};

pub struct Systemd;

impl Strategy for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }
    fn summary(&self) -> &'static str {
        "model of systemd (not yet written)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, _rules: &[Rule]) -> Result<Program, CompileError> {
        Err(CompileError::Refused { strategy: "systemd", reason: "model not yet written".into() })
    }
}
