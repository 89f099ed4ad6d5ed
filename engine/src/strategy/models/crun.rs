//! Model of crun's device program generator (to be written).

use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::{CompileError, Strategy};

pub struct Crun;

impl Strategy for Crun {
    fn name(&self) -> &'static str {
        "crun"
    }
    fn summary(&self) -> &'static str {
        "model of crun (not yet written)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, _rules: &[Rule]) -> Result<Program, CompileError> {
        Err(CompileError::Refused { strategy: "crun", reason: "model not yet written".into() })
    }
}
