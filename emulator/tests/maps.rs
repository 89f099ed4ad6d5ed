//! Map programs built with the engine's assembler.

mod common;

use std::collections::HashMap;

use common::*;
use devcg_emulator::Emulator;
use devcg_engine::asm::{Asm, Cond, Size, Width};
use devcg_engine::insn::{helper, op, MapKind, MapSpec, Program, R0, R1, R10, R2, R3, R4, R6};
use devcg_engine::Verdict;
use proptest::prelude::*;

fn le(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// Looks up key (major, minor) in a HASH map of u32 values; allow iff the
/// entry exists and has bit `access` set.
fn hash_program(entries: Vec<(Vec<u8>, Vec<u8>)>) -> Program {
    let mut a = Asm::new();
    let miss = a.new_label();
    a.ldx(Size::W, R2, R1, 4);
    a.stx(Size::W, R10, -8, R2);
    a.ldx(Size::W, R2, R1, 8);
    a.stx(Size::W, R10, -4, R2);
    a.ldx(Size::W, R6, R1, 0);
    a.alu_imm(Width::W32, op::RSH, R6, 16);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -8);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Eq, R0, 0, miss);
    a.ldx(Size::W, R0, R0, 0);
    a.alu_reg(Width::W64, op::RSH, R0, R6);
    a.alu_imm(Width::W64, op::AND, R0, 1);
    a.exit();
    a.bind(miss);
    a.ret(0);
    let map = MapSpec {
        name: "devs".into(),
        kind: MapKind::Hash,
        key_size: 8,
        value_size: 4,
        max_entries: 64,
        entries,
    };
    Program {
        insns: a.finish().unwrap(),
        maps: vec![map],
    }
}

fn key(major: u32, minor: u32) -> Vec<u8> {
    [le(major), le(minor)].concat()
}

#[test]
fn hash_lookup_hits_and_misses() {
    // c 1:3 may read (bit 2), 1:5 may write (bit 4).
    let p = hash_program(vec![(key(1, 3), le(1 << 2)), (key(1, 5), le(1 << 4))]);
    let emu = Emulator::new(&p).unwrap();
    assert_eq!(emu.run(&char_req(1, 3, 2)).unwrap(), Verdict::Allow);
    assert_eq!(emu.run(&char_req(1, 3, 4)).unwrap(), Verdict::Deny);
    assert_eq!(emu.run(&char_req(1, 5, 4)).unwrap(), Verdict::Allow);
    assert_eq!(emu.run(&char_req(1, 4, 2)).unwrap(), Verdict::Deny);
    assert_eq!(emu.run(&char_req(3, 1, 2)).unwrap(), Verdict::Deny);
}

/// ARRAY: index = minor; out of range is NULL; absent entries are zero.
#[test]
fn array_lookup_bounds_and_zeroes() {
    let mut a = Asm::new();
    let miss = a.new_label();
    a.ldx(Size::W, R2, R1, 8);
    a.stx(Size::W, R10, -4, R2);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Eq, R0, 0, miss);
    a.ldx(Size::B, R0, R0, 7); // last byte of an 8-byte value
    a.alu_imm(Width::W64, op::AND, R0, 1);
    a.exit();
    a.bind(miss);
    a.ret(1); // NULL: allow, to tell it from a zero entry
    let map = MapSpec {
        name: "arr".into(),
        kind: MapKind::Array,
        key_size: 4,
        value_size: 8,
        max_entries: 4,
        entries: vec![(le(2), vec![0, 0, 0, 0, 0, 0, 0, 1])],
    };
    let emu = Emulator::new(&Program {
        insns: a.finish().unwrap(),
        maps: vec![map],
    })
    .unwrap();
    assert_eq!(
        emu.run(&char_req(0, 2, 0)).unwrap(),
        Verdict::Allow,
        "entry 2 holds 1"
    );
    assert_eq!(
        emu.run(&char_req(0, 0, 0)).unwrap(),
        Verdict::Deny,
        "entry 0 exists, zeroed"
    );
    assert_eq!(
        emu.run(&char_req(0, 3, 0)).unwrap(),
        Verdict::Deny,
        "entry 3 exists, zeroed"
    );
    assert_eq!(
        emu.run(&char_req(0, 4, 0)).unwrap(),
        Verdict::Allow,
        "index 4 is out of range: NULL"
    );
    assert_eq!(emu.run(&char_req(0, u32::MAX, 0)).unwrap(), Verdict::Allow);
}

/// update then lookup within one run; every run starts from the initial
/// contents (a fresh load), so the second run sees the same.
#[test]
fn update_delete_and_fresh_state_per_run() {
    let mut a = Asm::new();
    let fail = a.new_label();
    // key = major at r10-4, value = 1 at r10-8
    a.ldx(Size::W, R2, R1, 4);
    a.stx(Size::W, R10, -4, R2);
    a.st_imm(Size::W, R10, -8, 1);
    // lookup must miss at first
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, 0, fail);
    // update(map, key, value, BPF_NOEXIST) == 0
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.mov_reg(Width::W64, R3, R10);
    a.alu_imm(Width::W64, op::ADD, R3, -8);
    a.mov_imm(Width::W64, R4, 1);
    a.call(helper::MAP_UPDATE_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, 0, fail);
    // again with BPF_NOEXIST: -EEXIST
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.mov_reg(Width::W64, R3, R10);
    a.alu_imm(Width::W64, op::ADD, R3, -8);
    a.mov_imm(Width::W64, R4, 1);
    a.call(helper::MAP_UPDATE_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, -17, fail);
    // lookup now hits; write 0 through the pointer
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.jmp_imm(Width::W64, Cond::Eq, R0, 0, fail);
    a.ldx(Size::W, R6, R0, 0);
    a.jmp_imm(Width::W64, Cond::Ne, R6, 1, fail);
    a.st_imm(Size::W, R0, 0, 0);
    // delete: 0, then again: -ENOENT
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_DELETE_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, 0, fail);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_DELETE_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, -2, fail);
    a.ret(1);
    a.bind(fail);
    a.ret(0);
    let map = MapSpec {
        name: "m".into(),
        kind: MapKind::Hash,
        key_size: 4,
        value_size: 4,
        max_entries: 2,
        entries: vec![],
    };
    let emu = Emulator::new(&Program {
        insns: a.finish().unwrap(),
        maps: vec![map],
    })
    .unwrap();
    for _ in 0..3 {
        assert_eq!(emu.run(&char_req(9, 0, 0)).unwrap(), Verdict::Allow);
    }
}

#[test]
fn hash_full_gives_e2big_and_array_delete_einval() {
    let mut a = Asm::new();
    let fail = a.new_label();
    a.ldx(Size::W, R2, R1, 4);
    a.stx(Size::W, R10, -4, R2);
    a.st_imm(Size::W, R10, -8, 0);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.mov_reg(Width::W64, R3, R10);
    a.alu_imm(Width::W64, op::ADD, R3, -8);
    a.mov_imm(Width::W64, R4, 0);
    a.call(helper::MAP_UPDATE_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, -7, fail); // map already full with key 1
    a.ld_map(R1, 1);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_DELETE_ELEM);
    a.jmp_imm(Width::W64, Cond::Ne, R0, -22, fail);
    a.ret(1);
    a.bind(fail);
    a.ret(0);
    let full = MapSpec {
        name: "h".into(),
        kind: MapKind::Hash,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        entries: vec![(le(1), le(0))],
    };
    let arr = MapSpec {
        name: "a".into(),
        kind: MapKind::Array,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        entries: vec![],
    };
    let emu = Emulator::new(&Program {
        insns: a.finish().unwrap(),
        maps: vec![full, arr],
    })
    .unwrap();
    assert_eq!(
        emu.run(&char_req(2, 0, 0)).unwrap(),
        Verdict::Allow,
        "new key in a full map"
    );
    assert_eq!(
        emu.run(&char_req(1, 0, 0)).unwrap(),
        Verdict::Deny,
        "existing key updates fine"
    );
}

/// A lookup result spilled to the stack and null-checked after the fill.
#[test]
fn spilled_lookup_result_keeps_its_type() {
    let mut a = Asm::new();
    let miss = a.new_label();
    a.st_imm(Size::W, R10, -4, 7);
    a.ld_map(R1, 0);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -4);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.stx(Size::DW, R10, -16, R0);
    a.mov_imm(Width::W64, R0, 0);
    a.ldx(Size::DW, R3, R10, -16);
    a.jmp_imm(Width::W64, Cond::Eq, R3, 0, miss);
    a.ldx(Size::W, R0, R3, 0);
    a.alu_imm(Width::W64, op::AND, R0, 1);
    a.bind(miss);
    a.exit();
    let map = MapSpec {
        name: "h".into(),
        kind: MapKind::Hash,
        key_size: 4,
        value_size: 4,
        max_entries: 4,
        entries: vec![(le(7), le(3))],
    };
    let emu = Emulator::new(&Program {
        insns: a.finish().unwrap(),
        maps: vec![map],
    })
    .unwrap();
    assert_eq!(emu.run(&char_req(0, 0, 0)).unwrap(), Verdict::Allow);
}

#[test]
fn emulator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Emulator>();
    let p = hash_program(vec![(key(1, 3), le(1 << 2))]);
    let emu = Emulator::new(&p).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..1000 {
                    assert_eq!(emu.run(&char_req(1, 3, 2)).unwrap(), Verdict::Allow);
                }
            });
        }
    });
}

proptest! {
    /// HASH lookups agree with a HashMap of the same entries.
    #[test]
    fn hash_lookups_match_a_hashmap(
        entries in proptest::collection::vec(((0u32..8, 0u32..8), 0u32..8), 0..20),
        probes in proptest::collection::vec((0u32..9, 0u32..9, 0u8..8), 1..30),
    ) {
        let mut want: HashMap<(u32, u32), u32> = HashMap::new();
        for &((ma, mi), v) in &entries {
            want.insert((ma, mi), v);
        }
        let spec: Vec<(Vec<u8>, Vec<u8>)> = entries.iter().map(|&((ma, mi), v)| (key(ma, mi), le(v))).collect();
        let emu = Emulator::new(&hash_program(spec)).unwrap();
        for (ma, mi, acc) in probes {
            let allowed = want.get(&(ma, mi)).is_some_and(|v| v >> acc & 1 == 1);
            prop_assert_eq!(emu.run(&char_req(ma, mi, acc)).unwrap(), Verdict::from_allowed(allowed));
        }
    }
}
