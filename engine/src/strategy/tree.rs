//! `tree`: a decision tree of binary searches, type → major → minor → a
//! verdict bitmap over the eight access masks. Cost grows with the log of
//! the distinct numbers the rules name, not with the rule count.
//!
//! For every major value the tree distinguishes (each number a rule names,
//! `~0`, and "any other"), the exceptions that can apply are fixed; so are,
//! below that, those for every minor value. A leaf then knows, for each
//! access mask 0..=7, whether the kernel allows it, and tests one bit of an
//! 8-bit constant. Identical subtrees and leaves are emitted once and shared
//! by label, which keeps wildcard-heavy lists from blowing up.

use std::collections::HashMap;

use crate::asm::{Asm, Cond, Label, Width};
use crate::device::{Access, Behavior, DeviceType, Exception, WILDCARD};
use crate::insn::{op, Program, Reg, R0};
use crate::rules::{Rule, RuleSet};
use crate::strategy::linear::{load_context, ACCESS, MAJOR, MINOR, TYPE};
use crate::strategy::{CompileError, Strategy};

pub struct Tree;

/// Searches of up to this many values are a plain chain of compares.
const CHAIN: usize = 4;

/// Whether exception number `rule` applies to requested number `asked`:
/// `*` in the rule always does; in ALLOW mode (partial matching) a requested
/// ~0 matches any rule number as well.
fn applies(behavior: Behavior, rule: u32, asked: u32) -> bool {
    rule == WILDCARD || rule == asked || (behavior == Behavior::Allow && asked == WILDCARD)
}

/// Bit `a` set iff access mask `a` is allowed when exactly `exs` apply.
fn bitmap(behavior: Behavior, exs: &[&Exception]) -> u8 {
    let mut map = 0u8;
    for a in Access::every() {
        let allowed = match behavior {
            Behavior::Deny => exs.iter().any(|e| e.access.contains(a)),
            Behavior::Allow => !exs.iter().any(|e| e.access.intersects(a)),
        };
        map |= u8::from(allowed) << a.bits();
    }
    map
}

/// Applicable exceptions, as indices into the rule set's list.
type Set = Vec<usize>;

struct Emitter<'a> {
    asm: Asm,
    behavior: Behavior,
    exceptions: &'a [Exception],
    /// Leaf code per bitmap, minor subtree code per applicable set.
    leaves: HashMap<u8, Label>,
    subtrees: HashMap<Set, Label>,
    /// Emitted after the code that jumps to them.
    pending: Vec<(Label, Pending)>,
}

enum Pending {
    Leaf(u8),
    Minor(Set),
}

impl Emitter<'_> {
    fn leaf(&mut self, set: &[usize]) -> Label {
        let exs: Vec<&Exception> = set.iter().map(|&i| &self.exceptions[i]).collect();
        let map = bitmap(self.behavior, &exs);
        if let Some(&l) = self.leaves.get(&map) {
            return l;
        }
        let l = self.asm.new_label();
        self.leaves.insert(map, l);
        self.pending.push((l, Pending::Leaf(map)));
        l
    }

    fn minor_subtree(&mut self, set: Set) -> Label {
        if let Some(&l) = self.subtrees.get(&set) {
            return l;
        }
        let l = self.asm.new_label();
        self.subtrees.insert(set.clone(), l);
        self.pending.push((l, Pending::Minor(set)));
        l
    }

    /// Jumps to a target per value of `field`: each distinct number named
    /// (sorted) to its own, anything else to `other`.
    fn search(&mut self, field: Reg, values: &[(u32, Label)], other: Label) {
        if values.len() <= CHAIN {
            for &(v, target) in values {
                self.asm
                    .jmp_imm(Width::W32, Cond::Eq, field, v as i32, target);
            }
            self.asm.ja(other);
            return;
        }
        let mid = values.len() / 2;
        let right = self.asm.new_label();
        self.asm
            .jmp_imm(Width::W32, Cond::Gt, field, values[mid - 1].0 as i32, right);
        self.search(field, &values[..mid], other);
        self.asm.bind(right);
        self.search(field, &values[mid..], other);
    }

    /// The values of one field that `set` distinguishes, with the exceptions
    /// applying to each, and those applying to any other value.
    fn split(&self, set: &[usize], field: fn(&Exception) -> u32) -> (Vec<(u32, Set)>, Set) {
        let of = |i: usize| field(&self.exceptions[i]);
        let mut values: Vec<u32> = set
            .iter()
            .map(|&i| of(i))
            .filter(|&v| v != WILDCARD)
            .collect();
        if self.behavior == Behavior::Allow {
            values.push(WILDCARD);
        }
        values.sort_unstable();
        values.dedup();
        let per_value = values
            .into_iter()
            .map(|v| {
                (
                    v,
                    set.iter()
                        .copied()
                        .filter(|&i| applies(self.behavior, of(i), v))
                        .collect(),
                )
            })
            .collect();
        let other = set.iter().copied().filter(|&i| of(i) == WILDCARD).collect();
        (per_value, other)
    }

    fn emit_minor(&mut self, set: Set) {
        let (per_value, other) = self.split(&set, |e| e.minor);
        let targets: Vec<(u32, Label)> =
            per_value.iter().map(|(v, s)| (*v, self.leaf(s))).collect();
        let other = self.leaf(&other);
        self.search(MINOR, &targets, other);
    }

    fn emit_type(&mut self, ty: DeviceType) {
        let set: Set = (0..self.exceptions.len())
            .filter(|&i| self.exceptions[i].ty == ty)
            .collect();
        let (per_value, other) = self.split(&set, |e| e.major);
        let targets: Vec<(u32, Label)> = per_value
            .into_iter()
            .map(|(v, s)| (v, self.minor_subtree(s)))
            .collect();
        let other = self.minor_subtree(other);
        self.search(MAJOR, &targets, other);
    }

    fn emit_pending(&mut self) {
        while let Some((label, work)) = self.pending.pop() {
            self.asm.bind(label);
            match work {
                Pending::Leaf(0) => {
                    self.asm.ret(0);
                }
                Pending::Leaf(0xff) => {
                    self.asm.ret(1);
                }
                Pending::Leaf(map) => {
                    self.asm.mov_imm(Width::W64, R0, i32::from(map));
                    self.asm.alu_reg(Width::W64, op::RSH, R0, ACCESS);
                    self.asm.alu_imm(Width::W64, op::AND, R0, 1);
                    self.asm.exit();
                }
                Pending::Minor(set) => self.emit_minor(set),
            }
        }
    }
}

pub fn compile_set(set: &RuleSet) -> Result<Program, CompileError> {
    let mut e = Emitter {
        asm: Asm::new(),
        behavior: set.behavior,
        exceptions: &set.exceptions,
        leaves: HashMap::new(),
        subtrees: HashMap::new(),
        pending: Vec::new(),
    };
    load_context(&mut e.asm);
    // A request of neither type matches no exception (the kernel never
    // sends one). Only access bits 0..2 can overlap a rule's access; in DENY
    // mode a higher bit can never be covered, so it is denied outright.
    let unmatched = e.leaf(&[]);
    if set.behavior == Behavior::Allow {
        e.asm.alu_imm(Width::W32, op::AND, ACCESS, 7);
    } else {
        e.asm.jmp_imm(Width::W32, Cond::Gt, ACCESS, 7, unmatched);
    }
    let block = e.asm.new_label();
    e.asm.jmp_imm(
        Width::W32,
        Cond::Eq,
        TYPE,
        DeviceType::Block.code() as i32,
        block,
    );
    e.asm.jmp_imm(
        Width::W32,
        Cond::Ne,
        TYPE,
        DeviceType::Char.code() as i32,
        unmatched,
    );
    e.emit_type(DeviceType::Char);
    e.asm.bind(block);
    e.emit_type(DeviceType::Block);
    e.emit_pending();
    Ok(Program::new(e.asm.finish()?))
}

impl Strategy for Tree {
    fn name(&self) -> &'static str {
        "tree"
    }
    fn summary(&self) -> &'static str {
        "binary-search decision tree over type, major and minor with access bitmaps at the leaves"
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        compile_set(&RuleSet::from_rules(rules))
    }
}
