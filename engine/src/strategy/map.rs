//! `map`: a BPF hash map from (type, major, minor) to access bits, looked up
//! for the exact device and its wildcard forms.
//!
//! Exceptions are unique per key, so the entries that can match a request
//! are exactly those at (major, minor), (major, *), (*, minor) and (*, *).
//! DENY mode (allow list): allowed iff one of them covers every requested
//! bit. ALLOW mode (deny list): denied iff one shares a bit. There the
//! kernel also treats a *requested* ~0 as a wildcard (it cannot come from a
//! real dev_t, but programs must still answer it): such a request can match
//! entries of any number, so the map also carries per-type aggregates, the
//! OR of the access of every entry with a given minor, with a given major,
//! or of the type at all, under key types that no device has.

use std::collections::BTreeMap;

use crate::asm::{Asm, Cond, Label, Size, Width};
use crate::device::{Behavior, Exception, WILDCARD};
use crate::insn::{helper, op, MapKind, MapSpec, Program, Reg, R0, R1, R10, R2, R6, R7, R8, R9};
use crate::rules::{Rule, RuleSet};
use crate::strategy::{ctx, CompileError, Strategy};

pub struct Map;

const TYPE: Reg = R6;
const ACCESS: Reg = R7;
const MAJOR: Reg = R8;
const MINOR: Reg = R9;

/// Key type offsets of the aggregate entries (ALLOW mode only).
pub const AGG_BY_MINOR: u32 = 0x100;
pub const AGG_BY_MAJOR: u32 = 0x200;
pub const AGG_ALL: u32 = 0x300;

/// `struct { u32 type, major, minor; }`, host (little-endian) order.
pub const KEY_SIZE: u32 = 12;
/// `u32 access`.
pub const VALUE_SIZE: u32 = 4;

/// The key lives on the stack at r10-16.
const KEY: i16 = -16;

pub fn key(ty: u32, major: u32, minor: u32) -> Vec<u8> {
    [ty, major, minor]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

fn entries(set: &RuleSet) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut map: BTreeMap<(u32, u32, u32), u32> = BTreeMap::new();
    let mut or = |k: (u32, u32, u32), ex: &Exception| {
        *map.entry(k).or_default() |= u32::from(ex.access.bits())
    };
    for ex in &set.exceptions {
        let t = ex.ty.code();
        or((t, ex.major, ex.minor), ex);
        if set.behavior == Behavior::Allow {
            or((t + AGG_BY_MINOR, 0, ex.minor), ex);
            or((t + AGG_BY_MAJOR, ex.major, 0), ex);
            or((t + AGG_ALL, 0, 0), ex);
        }
    }
    map.into_iter()
        .map(|((t, ma, mi), acc)| (key(t, ma, mi), acc.to_le_bytes().to_vec()))
        .collect()
}

/// Looks up key (type + type_offset, major, minor) and jumps to `hit` when
/// the entry exists and `test` holds for its access bits (in r1).
struct Lookup {
    type_offset: u32,
    major: Field,
    minor: Field,
}

#[derive(Clone, Copy)]
enum Field {
    Request(Reg),
    Const(u32),
}

fn store(a: &mut Asm, off: i16, field: Field) {
    match field {
        Field::Request(r) => a.stx(Size::W, R10, off, r),
        Field::Const(v) => a.st_imm(Size::W, R10, off, v as i32),
    };
}

fn emit_lookup(a: &mut Asm, l: &Lookup, behavior: Behavior, hit: Label) {
    let miss = a.new_label();
    a.mov_reg(Width::W32, R1, TYPE);
    if l.type_offset != 0 {
        a.alu_imm(Width::W32, op::ADD, R1, l.type_offset as i32);
    }
    a.stx(Size::W, R10, KEY, R1);
    store(a, KEY + 4, l.major);
    store(a, KEY + 8, l.minor);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, i32::from(KEY));
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Eq, R0, 0, miss);
    a.ldx(Size::W, R1, R0, 0);
    match behavior {
        // Covered: no requested bit outside the entry's access.
        Behavior::Deny => {
            a.alu_imm(Width::W32, op::XOR, R1, -1);
            a.alu_reg(Width::W32, op::AND, R1, ACCESS);
            a.jmp_imm(Width::W32, Cond::Eq, R1, 0, hit);
        }
        // Any shared bit.
        Behavior::Allow => {
            a.jmp_reg(Width::W32, Cond::Set, R1, ACCESS, hit);
        }
    }
    a.bind(miss);
}

fn device_lookups() -> Vec<Lookup> {
    let (maj, min, any) = (
        Field::Request(MAJOR),
        Field::Request(MINOR),
        Field::Const(WILDCARD),
    );
    [(maj, min), (maj, any), (any, min), (any, any)]
        .into_iter()
        .map(|(major, minor)| Lookup {
            type_offset: 0,
            major,
            minor,
        })
        .collect()
}

pub fn compile_set(set: &RuleSet) -> Result<Program, CompileError> {
    let mut a = Asm::new();
    a.ldx(Size::W, TYPE, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::AND, TYPE, 0xffff);
    a.ldx(Size::W, ACCESS, R1, ctx::ACCESS_TYPE);
    a.alu_imm(Width::W32, op::RSH, ACCESS, 16);
    a.ldx(Size::W, MAJOR, R1, ctx::MAJOR);
    a.ldx(Size::W, MINOR, R1, ctx::MINOR);
    let hit = a.new_label();
    match set.behavior {
        Behavior::Deny => {
            for l in device_lookups() {
                emit_lookup(&mut a, &l, Behavior::Deny, hit);
            }
            a.ret(0);
            a.bind(hit);
            a.ret(1);
        }
        Behavior::Allow => {
            let (wild_major, wild_minor, exact) = (a.new_label(), a.new_label(), a.new_label());
            a.jmp_imm(Width::W32, Cond::Eq, MAJOR, WILDCARD as i32, wild_major);
            a.jmp_imm(Width::W32, Cond::Eq, MINOR, WILDCARD as i32, wild_minor);
            for l in device_lookups() {
                emit_lookup(&mut a, &l, Behavior::Allow, hit);
            }
            a.ja(exact);
            // A requested ~0 major matches any major.
            a.bind(wild_major);
            let only_major = a.new_label();
            a.jmp_imm(Width::W32, Cond::Ne, MINOR, WILDCARD as i32, only_major);
            let all = Lookup {
                type_offset: AGG_ALL,
                major: Field::Const(0),
                minor: Field::Const(0),
            };
            emit_lookup(&mut a, &all, Behavior::Allow, hit);
            a.ja(exact);
            a.bind(only_major);
            for minor in [Field::Request(MINOR), Field::Const(WILDCARD)] {
                let l = Lookup {
                    type_offset: AGG_BY_MINOR,
                    major: Field::Const(0),
                    minor,
                };
                emit_lookup(&mut a, &l, Behavior::Allow, hit);
            }
            a.ja(exact);
            // A requested ~0 minor (with a real major) matches any minor.
            a.bind(wild_minor);
            for major in [Field::Request(MAJOR), Field::Const(WILDCARD)] {
                let l = Lookup {
                    type_offset: AGG_BY_MAJOR,
                    major,
                    minor: Field::Const(0),
                };
                emit_lookup(&mut a, &l, Behavior::Allow, hit);
            }
            a.bind(exact);
            a.ret(1);
            a.bind(hit);
            a.ret(0);
        }
    }
    let entries = entries(set);
    let map = MapSpec {
        name: "devcg_devices".into(),
        kind: MapKind::Hash,
        key_size: KEY_SIZE,
        value_size: VALUE_SIZE,
        max_entries: entries.len().max(1) as u32,
        entries,
    };
    Ok(Program {
        insns: a.finish()?,
        maps: vec![map],
    })
}

impl Strategy for Map {
    fn name(&self) -> &'static str {
        "map"
    }
    fn summary(&self) -> &'static str {
        "hash map keyed by type, major and minor; four lookups (exact and wildcard forms)"
    }
    fn is_own(&self) -> bool {
        true
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        compile_set(&RuleSet::from_rules(rules))
    }
}
