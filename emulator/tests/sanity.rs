//! A handwritten allow-list and the engine's own strategies.

mod common;

use devcg_emulator::Emulator;
use devcg_engine::asm::{Asm, Cond, Size, Width};
use devcg_engine::insn::{op, Program, R0, R1, R2, R3, R4, R5};
use devcg_engine::rules::Rule;
use devcg_engine::strategy;
use devcg_engine::{Access, DeviceType, Request, Verdict};
use rstest::rstest;

/// Allows exactly `c 1:3` with access within `rw`.
fn allow_c_1_3_rw() -> Program {
    let mut a = Asm::new();
    let deny = a.new_label();
    a.ldx(Size::W, R2, R1, 0);
    a.mov_reg(Width::W64, R3, R2);
    a.alu_imm(Width::W32, op::AND, R3, 0xffff); // type
    a.alu_imm(Width::W32, op::RSH, R2, 16); // access
    a.jmp_imm(Width::W32, Cond::Ne, R3, 2, deny);
    a.ldx(Size::W, R4, R1, 4);
    a.jmp_imm(Width::W32, Cond::Ne, R4, 1, deny);
    a.ldx(Size::W, R5, R1, 8);
    a.jmp_imm(Width::W32, Cond::Ne, R5, 3, deny);
    a.jmp_imm(Width::W32, Cond::Set, R2, !6, deny);
    a.mov_imm(Width::W64, R0, 1);
    a.exit();
    a.bind(deny);
    a.mov_imm(Width::W64, R0, 0);
    a.exit();
    Program::new(a.finish().unwrap())
}

#[rstest]
#[case("c 1:3 r", Verdict::Allow)]
#[case("c 1:3 w", Verdict::Allow)]
#[case("c 1:3 rw", Verdict::Allow)]
#[case("c 1:3 -", Verdict::Allow)]
#[case("c 1:3 m", Verdict::Deny)]
#[case("c 1:3 rwm", Verdict::Deny)]
#[case("c 1:3 rm", Verdict::Deny)]
#[case("b 1:3 r", Verdict::Deny)]
#[case("c 1:4 r", Verdict::Deny)]
#[case("c 2:3 r", Verdict::Deny)]
#[case("c 4294967295:3 r", Verdict::Deny)]
#[case("c 1:4294967295 r", Verdict::Deny)]
fn sanity_allow_only_c_1_3_rw(#[case] req: &str, #[case] want: Verdict) {
    let emu = Emulator::new(&allow_c_1_3_rw()).unwrap();
    let req = Request::parse(req).unwrap();
    assert_eq!(emu.run(&req).unwrap(), want, "{req}");
    // The same through raw bytes.
    let emu = Emulator::from_bytes(&allow_c_1_3_rw().to_bytes()).unwrap();
    assert_eq!(emu.run(&req).unwrap(), want, "{req}");
}

#[test]
fn sanity_loop_free_program_has_no_budget() {
    let emu = Emulator::new(&allow_c_1_3_rw()).unwrap();
    assert_eq!(emu.loop_budget(), 0);
}

fn rules(text: &str) -> Vec<Rule> {
    devcg_engine::rules::RuleFile::parse("test.rules", text).expect("rules parse")
}

/// Whether the v1 semantics allow `req` for a small fixed rule set,
/// computed by hand for the rule sets below.
#[rstest]
#[case::allow_list("deny a\nallow c 1:3 rw\nallow b 8:* r\n", &[
    ("c 1:3 r", true), ("c 1:3 rw", true), ("c 1:3 m", false), ("b 8:0 r", true),
    ("b 8:7 w", false), ("c 1:5 r", false), ("b 9:0 r", false), ("c 1:3 -", true),
])]
#[case::deny_list("allow a\ndeny c 1:3 w\ndeny b *:* m\n", &[
    ("c 1:3 r", true), ("c 1:3 rw", false), ("c 1:3 w", false), ("b 8:0 m", false),
    ("b 8:0 rw", true), ("c 4294967295:3 w", false), ("c 5:5 rwm", true),
])]
fn engine_strategies_run(#[case] text: &str, #[case] cases: &[(&str, bool)]) {
    let rules = rules(text);
    for s in strategy::all().iter().filter(|s| s.is_own()) {
        let program = s
            .compile(&rules)
            .unwrap_or_else(|e| panic!("{}: {e}", s.name()));
        let emu = Emulator::new(&program).unwrap_or_else(|e| panic!("{}: refused: {e}", s.name()));
        for (req, allowed) in cases {
            let r = Request::parse(req).unwrap();
            assert_eq!(
                emu.run(&r).unwrap(),
                Verdict::from_allowed(*allowed),
                "{} {req}",
                s.name()
            );
        }
    }
}

#[test]
fn every_access_subset_and_type_runs() {
    let emu = Emulator::new(&allow_c_1_3_rw()).unwrap();
    for ty in DeviceType::ALL {
        for access in Access::every() {
            let r = Request::new(ty, 1, 3, access);
            let want = ty == DeviceType::Char && Access(6).contains(access);
            assert_eq!(emu.run(&r).unwrap(), Verdict::from_allowed(want));
        }
    }
}
