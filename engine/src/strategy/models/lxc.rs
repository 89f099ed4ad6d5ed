//! Model of lxc's device program generator (to be written).

use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::{CompileError, Strategy};

pub struct Lxc;

impl Strategy for Lxc {
    fn name(&self) -> &'static str {
        "lxc"
    }
    fn summary(&self) -> &'static str {
        "model of lxc (not yet written)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, _rules: &[Rule]) -> Result<Program, CompileError> {
        Err(CompileError::Refused { strategy: "lxc", reason: "model not yet written".into() })
    }
}
