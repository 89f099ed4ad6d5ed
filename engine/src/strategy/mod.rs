//! Strategies turn a rule list into a device program. One module per
//! strategy, all behind [`Strategy`]; adding one is one file plus a line in
//! [`all`].

use thiserror::Error;

use crate::asm::AsmError;
use crate::insn::Program;
use crate::rules::Rule;

pub mod linear;
pub mod map;
pub mod models;
pub mod tree;

/// The context field offsets of `struct bpf_cgroup_dev_ctx`.
pub mod ctx {
    pub const ACCESS_TYPE: i16 = 0;
    pub const MAJOR: i16 = 4;
    pub const MINOR: i16 = 8;
}

#[derive(Debug, Error)]
pub enum CompileError {
    #[error("assembler: {0}")]
    Asm(#[from] AsmError),
    /// What a modelled runtime itself would refuse, with its message.
    #[error("{strategy} refuses this rule list: {reason}")]
    Refused {
        strategy: &'static str,
        reason: String,
    },
    #[error("program would need {insns} instructions, over the limit of {limit}")]
    TooLarge { insns: usize, limit: usize },
}

pub trait Strategy: Send + Sync {
    /// Short name used on the command line.
    fn name(&self) -> &'static str;
    /// One line for `--help` and reports.
    fn summary(&self) -> &'static str;
    /// Whether this is one of devcg's own strategies (which must never
    /// diverge) rather than a model of another runtime's generator. No
    /// default: a model that forgot to say would be judged as ours.
    fn is_own(&self) -> bool;
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError>;
}

/// Every strategy, in report order.
/// Every strategy, in report order: ours, then the models.
pub fn all() -> Vec<Box<dyn Strategy>> {
    let mut all: Vec<Box<dyn Strategy>> = vec![
        Box::new(linear::Linear),
        Box::new(tree::Tree),
        Box::new(map::Map),
    ];
    all.extend(models::all());
    all
}

/// A strategy of [`all`], or a runtime model with its defaults
/// (`runc+defaults`: [`models::with_defaults`]).
pub fn by_name(name: &str) -> Option<Box<dyn Strategy>> {
    all()
        .into_iter()
        .chain(models::with_defaults())
        .find(|s| s.name() == name)
}

/// The names of [`all`], then the `+defaults` ones.
pub fn names() -> Vec<&'static str> {
    all()
        .iter()
        .chain(models::with_defaults().iter())
        .map(|s| s.name())
        .collect()
}
