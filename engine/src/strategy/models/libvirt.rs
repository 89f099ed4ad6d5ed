//! Model of libvirt's device program generator (to be written).

use crate::insn::Program;
use crate::rules::Rule;
use crate::strategy::{CompileError, Strategy};

pub struct Libvirt;

impl Strategy for Libvirt {
    fn name(&self) -> &'static str {
        "libvirt"
    }
    fn summary(&self) -> &'static str {
        "model of libvirt (not yet written)"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, _rules: &[Rule]) -> Result<Program, CompileError> {
        Err(CompileError::Refused { strategy: "libvirt", reason: "model not yet written".into() })
    }
}
