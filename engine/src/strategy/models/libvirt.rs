//! Model of libvirt's cgroup v2 device program (`vircgroupv2devices.c`).
//!
//! # Source followed
//!
//! github.com/libvirt/libvirt, read from the stored index:
//!
//! * `src/util/vircgroupv2devices.c` at commit
//!   `c34d9cb9cedc9a78f29fba44426a9d9f83fb08f8`: `virCgroupV2DevicesLoadProg`
//!   (the fixed program, four hash lookups), `virCgroupV2DevicesGetKey`
//!   (`(u64)major << 32 | (u32)minor`), `virCgroupV2DevicesGetPerms` (the
//!   value: access bits `<< 16` OR type bits, both types for `a`),
//!   `virCgroupV2DevicesCreateMap` (hash, 8-byte key, 4-byte value, 64
//!   entries at first), `virCgroupV2DevicesPrepareProg` (doubles the map when
//!   full), `virCgroupV2DevicesCreateProg`/`DetectProg`.
//! * `src/util/vircgroupv2.c` at commit
//!   `e349cdc54b9cdc7e00adb2dfbf340f87d01c0c5d`: `virCgroupV2AllowDevice`
//!   (overwrites the value of the key), `virCgroupV2DenyDevice` (clears the
//!   given bits, type bits included; deletes the entry at zero),
//!   `virCgroupV2AllowAllDevices`, `virCgroupV2DenyAllDevices`.
//! * `src/util/vircgroup.c` (same commit): `virCgroupAllowDevice` & co.
//!   only dispatch to the backend; a negative number means `*`.
//!
//! libvirt 9.0.0's release (Debian 12's) has the same functions; its LXC
//! driver's real program and map decide as this model on every step of
//! `devcg runtime libvirt` (docs/libvirt.md, docs/findings.md).
//!
//! # Mapping from the shared rule list
//!
//! libvirt has no rule text: its drivers call the cgroup API (the QEMU and
//! LXC drivers start with `virCgroupDenyAllDevices`, then allow the ACL
//! devices, disks and host devices, and deny them again on hot-unplug).
//! Each rule becomes the matching call, in order, on a fresh cgroup with no
//! program:
//!
//! * `deny a` → `virCgroupDenyAllDevices`;
//! * `allow a` → `virCgroupAllowAllDevices(VIR_CGROUP_DEVICE_RWM)`;
//! * `allow T M:m ACC` → `virCgroupAllowDevice(T, M, m, ACC)`;
//! * `deny T M:m ACC` → `virCgroupDenyDevice(T, M, m, ACC)`;
//!
//! with `*` as -1 and other numbers as the `int` of the same 32 bits (which
//! the key reproduces exactly). The program is always the same 69 slots;
//! what changes is the map, whose final contents (and size) are the model's
//! output. With no call at all nothing is attached: the stand-in
//! `r0 = 1; exit`, without maps.
//!
//! The program allows when one of the keys (major, minor), (major, ~0),
//! (~0, minor), (~0, ~0) exists and `(access_type & value) == access_type`,
//! `access_type` being the context's `access << 16 | type`: every requested
//! access bit *and* the request's type bit must be in the value.
//!
//! # Expected divergences from v1 (findings)
//!
//! * Any first call creates a deny-all program: `allow c 1:3 r` alone, or
//!   `deny c 1:3 r` alone, leaves only what the map allows (v1: everything
//!   allowed, or everything but 1:3 read).
//! * No deny list: after `allow a`, `deny` of anything but the exact key
//!   (~0, ~0) is a no-op; `virCgroupDenyAllDevices` does nothing once a
//!   program exists, so `allow a; deny a` still allows everything and
//!   `allow c 1:3 r; deny a` keeps 1:3.
//! * The key has no type: `allow c 1:3 r; allow b 1:3 w` leaves only
//!   `b 1:3 w`. Allow overwrites instead of OR-ing: `allow c 1:3 r;
//!   allow c 1:3 w` leaves only `w`.
//! * Deny clears the type bit with the access bits: `allow c 1:3 rw;
//!   deny c 1:3 w` leaves a value with `r` but no type, which matches
//!   nothing (v1 keeps `c 1:3 r`); a `deny b 1:3 …` also strips a char
//!   entry's bits.
//!
//! # Approximations
//!
//! * The kernel gives libvirt's map no name; devcg calls it
//!   `libvirt_devices`. Entries are listed sorted by key.
//! * Attach flags and the replacement of program and map on every map
//!   resize are outside the model: only the final program and map count.
//!   Nothing here refuses: libvirt accepts every call.

use std::collections::BTreeMap;

use crate::asm::{Asm, Cond, Label, Size, Width};
use crate::device::{Access, DeviceType, Exception, WILDCARD};
use crate::insn::{helper, op, MapKind, MapSpec, Program, R0, R1, R10, R2, R6};
use crate::rules::{Rule, RuleKind};
use crate::strategy::models::common::nothing_attached;
use crate::strategy::{ctx, CompileError, Strategy};
use crate::v1text::V1Text;

pub struct Libvirt;

const NAME: &str = "libvirt";

/// `VIR_CGROUP_V2_INITIAL_BPF_MAP_SIZE`.
pub const INITIAL_MAP_SIZE: u32 = 64;
/// `sizeof(uint64_t)`, `sizeof(uint32_t)`.
pub const KEY_SIZE: u32 = 8;
pub const VALUE_SIZE: u32 = 4;
pub const MAP_NAME: &str = "libvirt_devices";

/// `virCgroupV2DevicesGetKey`, with each number as its 32-bit pattern
/// (`*` is -1, i.e. ~0).
pub fn key(major: u32, minor: u32) -> u64 {
    (u64::from(major) << 32) | u64::from(minor)
}

/// `virCgroupV2DevicesGetPerms`: access bits `<< 16`, then the type bits
/// (`None` is libvirt's `'a'`: both).
pub fn value(access: Access, ty: Option<DeviceType>) -> u32 {
    let ty_bits = match ty {
        Some(t) => t.code(),
        None => DeviceType::Block.code() | DeviceType::Char.code(),
    };
    (u32::from(access.bits()) << 16) | ty_bits
}

/// `group->unified.devices` of a cgroup.
#[derive(Default)]
struct Devices {
    /// A program (and its map) is attached.
    attached: bool,
    map: BTreeMap<u64, u32>,
    count: i64,
    max: u32,
}

impl Devices {
    /// `virCgroupV2DevicesCreateProg` (with `DetectProg` before it: a fresh
    /// cgroup has no program to detect).
    fn create_prog(&mut self) {
        if self.attached {
            return;
        }
        self.attached = true;
        self.map.clear();
        self.max = INITIAL_MAP_SIZE;
    }

    /// `virCgroupV2DevicesPrepareProg`.
    fn prepare_prog(&mut self) {
        self.create_prog();
        if self.count >= i64::from(self.max) {
            // virCgroupV2DevicesReallocMap copies every entry.
            self.max *= 2;
        }
    }

    /// `virCgroupV2AllowDevice`.
    fn allow_device(&mut self, ty: Option<DeviceType>, major: u32, minor: u32, access: Access) {
        let k = key(major, minor);
        self.prepare_prog();
        let existed = self.map.insert(k, value(access, ty)).is_some();
        if !existed {
            self.count += 1;
        }
    }

    /// `virCgroupV2DenyDevice`.
    fn deny_device(&mut self, ty: DeviceType, major: u32, minor: u32, access: Access) {
        let k = key(major, minor);
        let newval = value(access, Some(ty));
        self.prepare_prog();
        if self.count <= 0 {
            return;
        }
        let Some(&val) = self.map.get(&k) else { return };
        let val = val & !newval;
        if val == 0 {
            self.map.remove(&k);
            self.count -= 1;
        } else {
            self.map.insert(k, val);
        }
    }

    /// `virCgroupV2AllowAllDevices`: the `CreateProg` it calls for `rwm`
    /// returns at once, as `PrepareProg` has just made sure a program exists.
    fn allow_all(&mut self, access: Access) {
        self.prepare_prog();
        self.allow_device(None, WILDCARD, WILDCARD, access);
    }

    /// `virCgroupV2DenyAllDevices`: a no-op once a program exists.
    fn deny_all(&mut self) {
        self.create_prog();
    }
}

/// `virCgroupV2DevicesLoadProg`, label for label (clang's LBB0_2 … LBB0_9).
pub fn load_prog() -> Result<Vec<crate::insn::Insn>, CompileError> {
    let mut a = Asm::new();
    let allow = a.new_label(); // LBB0_9: exit with r0 = 1
    a.mov_reg(Width::W64, R6, R1);
    // key = major << 32 | minor
    a.ldx(Size::W, R1, R6, ctx::MINOR);
    a.ldx(Size::W, R2, R6, ctx::MAJOR);
    a.alu_imm(Width::W64, op::LSH, R2, 32);
    a.alu_reg(Width::W64, op::OR, R2, R1);
    let miss = a.new_label();
    lookup_and_test(&mut a, R2, miss, allow);
    a.bind(miss);
    // key = major << 32 | 0xffffffff
    a.ldx(Size::W, R1, R6, ctx::MAJOR);
    a.alu_imm(Width::W64, op::LSH, R1, 32);
    a.lddw(R2, 0xffff_ffff);
    a.alu_reg(Width::W64, op::OR, R1, R2);
    let miss = a.new_label();
    lookup_and_test(&mut a, R1, miss, allow);
    a.bind(miss);
    // key = 0xffffffff00000000 | minor
    a.ldx(Size::W, R1, R6, ctx::MINOR);
    a.lddw(R2, 0xffff_ffff_0000_0000);
    a.alu_reg(Width::W64, op::OR, R1, R2);
    let miss = a.new_label();
    lookup_and_test(&mut a, R1, miss, allow);
    a.bind(miss);
    // key = 0xffffffffffffffff
    a.mov_imm(Width::W64, R1, -1);
    let deny = a.new_label(); // LBB0_8
    lookup_and_test(&mut a, R1, deny, allow);
    a.bind(deny);
    a.mov_imm(Width::W64, R0, 0);
    a.bind(allow);
    a.exit();
    Ok(a.finish()?)
}

/// Stores the key in `key_reg` at r10-8, looks it up, and jumps to `allow`
/// (with r0 = 1) when the value covers `access_type`, else on to `miss`.
fn lookup_and_test(a: &mut Asm, key_reg: crate::insn::Reg, miss: Label, allow: Label) {
    a.stx(Size::DW, R10, -8, key_reg);
    a.mov_reg(Width::W64, R2, R10);
    a.alu_imm(Width::W64, op::ADD, R2, -8);
    a.ld_map(R1, 0);
    a.call(helper::MAP_LOOKUP_ELEM);
    a.mov_reg(Width::W64, R1, R0);
    a.jmp_imm(Width::W64, Cond::Eq, R1, 0, miss);
    a.mov_imm(Width::W64, R0, 1);
    a.ldx(Size::W, R2, R6, ctx::ACCESS_TYPE);
    a.ldx(Size::W, R1, R1, 0);
    a.alu_reg(Width::W64, op::AND, R1, R2);
    a.jmp_reg(Width::W64, Cond::Eq, R1, R2, allow);
}

/// The calls a rule list makes, applied to a fresh cgroup.
fn apply(rules: &[Rule]) -> Devices {
    let mut d = Devices::default();
    for rule in rules {
        match (rule.kind, &rule.parsed) {
            (RuleKind::Deny, V1Text::All) => d.deny_all(),
            (RuleKind::Allow, V1Text::All) => d.allow_all(Access::ALL),
            (
                RuleKind::Allow,
                V1Text::Exception(Exception {
                    ty,
                    major,
                    minor,
                    access,
                }),
            ) => d.allow_device(Some(*ty), *major, *minor, *access),
            (
                RuleKind::Deny,
                V1Text::Exception(Exception {
                    ty,
                    major,
                    minor,
                    access,
                }),
            ) => d.deny_device(*ty, *major, *minor, *access),
        }
    }
    d
}

impl Strategy for Libvirt {
    fn name(&self) -> &'static str {
        NAME
    }
    fn summary(&self) -> &'static str {
        "model of libvirt's cgroup v2 device program: hash map keyed by major:minor, four lookups, allow-only"
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(&self, rules: &[Rule]) -> Result<Program, CompileError> {
        let d = apply(rules);
        if !d.attached {
            return Ok(nothing_attached());
        }
        let entries = d
            .map
            .iter()
            .map(|(k, v)| (k.to_le_bytes().to_vec(), v.to_le_bytes().to_vec()))
            .collect();
        let map = MapSpec {
            name: MAP_NAME.into(),
            kind: MapKind::Hash,
            key_size: KEY_SIZE,
            value_size: VALUE_SIZE,
            max_entries: d.max,
            entries,
        };
        Ok(Program {
            insns: load_prog()?,
            maps: vec![map],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disasm::disassemble;
    use crate::rules::RuleFile;
    use rstest::rstest;

    fn rules(text: &str) -> Vec<Rule> {
        RuleFile::parse("test", text).expect("valid rules")
    }

    /// The map as (major, minor, value), sorted by key.
    fn map_of(text: &str) -> (u32, Vec<(u32, u32, u32)>) {
        let prog = Libvirt.compile(&rules(text)).expect("compiles");
        assert_eq!(prog.maps.len(), 1);
        let m = &prog.maps[0];
        assert_eq!((m.kind, m.key_size, m.value_size), (MapKind::Hash, 8, 4));
        let entries = m
            .entries
            .iter()
            .map(|(k, v)| {
                let k = u64::from_le_bytes(k.as_slice().try_into().unwrap());
                (
                    (k >> 32) as u32,
                    k as u32,
                    u32::from_le_bytes(v.as_slice().try_into().unwrap()),
                )
            })
            .collect();
        (m.max_entries, entries)
    }

    /// The listing of `virCgroupV2DevicesLoadProg`, slot numbers and jump
    /// offsets exactly as in its comments (llvm-objdump of the C source).
    #[test]
    fn program_is_upstreams() {
        let want = "   0: (bf) r6 = r1
   1: (61) r1 = *(u32 *)(r6 +8)
   2: (61) r2 = *(u32 *)(r6 +4)
   3: (67) r2 <<= 32
   4: (4f) r2 |= r1
   5: (7b) *(u64 *)(r10 -8) = r2
   6: (bf) r2 = r10
   7: (07) r2 += -8
   8: (18) r1 = map[idx:0]
  10: (85) call bpf_map_lookup_elem#1
  11: (bf) r1 = r0
  12: (15) if r1 == 0x0 goto pc+5
  13: (b7) r0 = 1
  14: (61) r2 = *(u32 *)(r6 +0)
  15: (61) r1 = *(u32 *)(r1 +0)
  16: (5f) r1 &= r2
  17: (1d) if r1 == r2 goto pc+50
  18: (61) r1 = *(u32 *)(r6 +4)
  19: (67) r1 <<= 32
  20: (18) r2 = 0xffffffff
  22: (4f) r1 |= r2
  23: (7b) *(u64 *)(r10 -8) = r1
  24: (bf) r2 = r10
  25: (07) r2 += -8
  26: (18) r1 = map[idx:0]
  28: (85) call bpf_map_lookup_elem#1
  29: (bf) r1 = r0
  30: (15) if r1 == 0x0 goto pc+5
  31: (b7) r0 = 1
  32: (61) r2 = *(u32 *)(r6 +0)
  33: (61) r1 = *(u32 *)(r1 +0)
  34: (5f) r1 &= r2
  35: (1d) if r1 == r2 goto pc+32
  36: (61) r1 = *(u32 *)(r6 +8)
  37: (18) r2 = 0xffffffff00000000
  39: (4f) r1 |= r2
  40: (7b) *(u64 *)(r10 -8) = r1
  41: (bf) r2 = r10
  42: (07) r2 += -8
  43: (18) r1 = map[idx:0]
  45: (85) call bpf_map_lookup_elem#1
  46: (bf) r1 = r0
  47: (15) if r1 == 0x0 goto pc+5
  48: (b7) r0 = 1
  49: (61) r2 = *(u32 *)(r6 +0)
  50: (61) r1 = *(u32 *)(r1 +0)
  51: (5f) r1 &= r2
  52: (1d) if r1 == r2 goto pc+15
  53: (b7) r1 = -1
  54: (7b) *(u64 *)(r10 -8) = r1
  55: (bf) r2 = r10
  56: (07) r2 += -8
  57: (18) r1 = map[idx:0]
  59: (85) call bpf_map_lookup_elem#1
  60: (bf) r1 = r0
  61: (15) if r1 == 0x0 goto pc+5
  62: (b7) r0 = 1
  63: (61) r2 = *(u32 *)(r6 +0)
  64: (61) r1 = *(u32 *)(r1 +0)
  65: (5f) r1 &= r2
  66: (1d) if r1 == r2 goto pc+1
  67: (b7) r0 = 0
  68: (95) exit
";
        let prog = Libvirt.compile(&rules("deny a\n")).unwrap();
        assert_eq!(prog.insns.len(), 69);
        assert_eq!(disassemble(&prog.insns), want);
    }

    const C: u32 = 2;
    const B: u32 = 1;
    const ANY: u32 = u32::MAX;
    const R: u32 = 2 << 16;
    const W: u32 = 4 << 16;
    const M: u32 = 1 << 16;

    #[rstest]
    // What the QEMU driver does: deny all, then allow nodes and a pty major.
    #[case::qemu_like(
        "deny a\nallow c 1:3 rw\nallow c 136:* rw\nallow b 8:0 r\n",
        vec![(1, 3, R | W | C), (8, 0, R | B), (136, ANY, R | W | C)]
    )]
    #[case::deny_all_alone("deny a\n", vec![])]
    // A lone deny still creates the (empty, deny-all) program.
    #[case::lone_deny("deny c 1:3 r\n", vec![])]
    // A lone allow creates the program with just that entry.
    #[case::lone_allow("allow c 1:3 r\n", vec![(1, 3, R | C)])]
    // The key has no type, and allow overwrites.
    #[case::type_collision("deny a\nallow c 1:3 r\nallow b 1:3 w\n", vec![(1, 3, W | B)])]
    #[case::overwrite("deny a\nallow c 1:3 r\nallow c 1:3 w\n", vec![(1, 3, W | C)])]
    // Deny clears the type bit too: `r` stays but matches nothing.
    #[case::deny_clears_type("deny a\nallow c 1:3 rw\ndeny c 1:3 w\n", vec![(1, 3, R)])]
    #[case::deny_other_type("deny a\nallow c 1:3 rw\ndeny b 1:3 w\n", vec![(1, 3, R | C)])]
    #[case::deny_removes("deny a\nallow c 1:3 rw\ndeny c 1:3 rw\n", vec![])]
    // Allow-all is the (~0, ~0) entry for both types; deny-all is a no-op.
    #[case::allow_all_then_deny(
        "allow a\ndeny c 1:3 r\ndeny a\n",
        vec![(ANY, ANY, R | W | M | B | C)]
    )]
    #[case::deny_all_keeps_entries("allow c 1:3 r\ndeny a\nallow c 1:5 r\n", vec![(1, 3, R | C), (1, 5, R | C)])]
    // Numbers keep their 32 bits.
    #[case::big_major("deny a\nallow b 4294967294:7 m\n", vec![(4294967294, 7, M | B)])]
    fn map_contents(#[case] text: &str, #[case] want: Vec<(u32, u32, u32)>) {
        assert_eq!(map_of(text), (INITIAL_MAP_SIZE, want));
    }

    /// The map doubles when a call finds it full.
    #[rstest]
    #[case(64, 64)]
    #[case(65, 128)]
    fn map_grows(#[case] n: u32, #[case] max: u32) {
        let text: String = std::iter::once("deny a\n".to_string())
            .chain((0..n).map(|i| format!("allow c 7:{i} r\n")))
            .collect();
        let (got_max, entries) = map_of(&text);
        assert_eq!((got_max, entries.len() as u32), (max, n));
    }

    /// No call at all: nothing attached. libvirt refuses nothing.
    #[test]
    fn nothing_attached_and_no_refusals() {
        let prog = Libvirt.compile(&[]).unwrap();
        assert!(prog.maps.is_empty());
        assert_eq!(
            disassemble(&prog.insns),
            "   0: (b7) r0 = 1\n   1: (95) exit\n"
        );
        assert!(Libvirt
            .compile(&rules(
                "deny c *:* rwm\nallow b *:5 m\nallow a\ndeny b 1:1 r\n"
            ))
            .is_ok());
    }
}
