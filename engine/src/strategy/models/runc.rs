//! Model of runc's device program generator (to be written).

use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::{CompileError, Strategy};

pub struct Runc;

impl Strategy for Runc {
    fn name(&self) -> &'static str {
        "runc"
    }
    fn summary(&self) -> &'static str {
        "model of runc (not yet written)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, _rules: &[Rule]) -> Result<Program, CompileError> {
        Err(CompileError::Refused { strategy: "runc", reason: "model not yet written".into() })
    }
}
