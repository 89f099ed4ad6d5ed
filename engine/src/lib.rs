//! devcg's engine: the rule model, the BPF assembler and printer, and the
//! strategies that turn rules into `BPF_PROG_TYPE_CGROUP_DEVICE` programs.
//! Pure: no syscalls here.

pub mod asm;
pub mod asmtext;
pub mod device;
pub mod disasm;
pub mod elf;
pub mod insn;
pub mod rules;
pub mod strategy;
pub mod v1text;
pub mod xlated;

pub use device::{Access, Behavior, DeviceType, Exception, Request, Verdict, WILDCARD};
pub use insn::{Insn, MapKind, MapSpec, Program};
pub use rules::{Origin, Rule, RuleError, RuleFile, RuleKind, RuleSet};
pub use strategy::{CompileError, Strategy};
