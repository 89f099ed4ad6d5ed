//! Model of youki's device program generator (to be written).

use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::{CompileError, Strategy};

pub struct Youki;

impl Strategy for Youki {
    fn name(&self) -> &'static str {
        "youki"
    }
    fn summary(&self) -> &'static str {
        "model of youki (not yet written)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, _rules: &[Rule]) -> Result<Program, CompileError> {
        Err(CompileError::Refused { strategy: "youki", reason: "model not yet written".into() })
    }
}
