//! The v1 devices controller: together with cgroup2 on one task, and against the oracle.

use devcg_differential::rng::Rng;
use devcg_engine::{Access, RuleKind};

use crate::bpf::AttachFlags;
use crate::device::Device;
use crate::error::KernelError;
use crate::gen;
use crate::probe::KernelAnswer;
use crate::sys::cstring;
use crate::v1;
use crate::v2::Scratch;
use devcg_differential::gen::{rules_in, Draw};

use super::programs::{deny_device, dev, load};
use super::{seen, Finding};

pub(super) fn v1_and_v2_both_must_allow(s: &mut Scratch) -> Result<Finding, KernelError> {
    if v1::find_devices_mount().is_none() {
        return Ok(Finding::Skip(
            "skipped: needs the cgroup v1 devices hierarchy (none mounted)".into(),
        ));
    }
    let v1s = v1::Scratch::new()?.expect("mounted");
    v1s.mkdir("x")?;
    // v1 denies writes to 100:1; the v2 program denies 100:2.
    if let Err(e) = v1s.write("x", RuleKind::Deny, "c 100:1 w")? {
        return seen(false, format!("v1 write refused: {e}"));
    }
    let cg = s.mkdir("a")?;
    let p = load(&deny_device(dev(2), None), "deny_2")?;
    s.attach(&cg, &p, AttachFlags::NONE)?;
    let v1_procs = cstring(&v1s.procs_file("x")?)?;
    let v2_procs = s.procs_file(&cg)?;
    let devices = vec![dev(1), dev(2), dev(3)];
    let res = s.probe_joined(&[(vec![v1_procs, v2_procs], devices)])?;
    let get = |d: Device, a: Access| {
        res[0]
            .iter()
            .find(|p| p.request == d.request(a))
            .map(|p| p.outcome)
            .expect("probed")
    };
    let w = Access::WRITE;
    let r = Access::READ;
    let obs = [
        get(dev(1), w),
        get(dev(1), r),
        get(dev(2), r),
        get(dev(3), Access(6)),
    ];
    drop(v1s);
    seen(
        obs == [KernelAnswer::Denied, KernelAnswer::Allowed, KernelAnswer::Denied, KernelAnswer::Allowed],
        format!(
            "child in v1 `deny c 100:1 w` and v2 `deny c 100:2`: 100:1 w {}, 100:1 r {}, 100:2 r {}, 100:3 rw {}",
            obs[0], obs[1], obs[2], obs[3]
        ),
    )
}

/// Rule lists checked against the real v1 controller by the ground-truth
/// check (the v1_oracle test does many more, with invalid texts too).
const V1_LISTS: u64 = 16;

pub(super) fn v1_controller_matches_oracle(_s: &mut Scratch) -> Result<Finding, KernelError> {
    if let Some(why) = v1::skip_reason() {
        return Ok(Finding::Skip(why));
    }
    let mut v1s = v1::Scratch::new()?.expect("mounted");
    let drivers = v1s.drivers().clone();
    let space = gen::space(&drivers);
    let generator = rules_in(&space, 8);
    let seed = 0x7631_6f72_6163_6c65;
    let (mut draw, mut rng) = (Draw::new(seed), Rng::new(seed));
    let (mut lists, mut probes, mut mismatches) = (0, 0, Vec::new());
    for i in 0..V1_LISTS {
        let rules = draw.value(&generator);
        let devices = gen::devices(&mut rng, &space, &drivers, &rules, 16);
        let path = format!("l{i}");
        v1s.mkdir(&path)?;
        for rule in &rules {
            if let Err(e) = v1s.write(&path, rule.kind, &rule.text)? {
                mismatches.push(format!("{rule}: kernel {e}, oracle accepts"));
            }
        }
        let (behavior, list) = devcg_oracle::state_of(&rules);
        let want = match behavior {
            devcg_engine::Behavior::Allow => "a *:* rwm\n".to_string(),
            devcg_engine::Behavior::Deny => list.iter().map(|e| format!("{e}\n")).collect(),
        };
        let got = v1s.list(&path)?;
        if got != want {
            mismatches.push(format!(
                "list after {:?}: kernel {got:?}, oracle {want:?}",
                rules_text(&rules)
            ));
        }
        for p in v1s.probe(&path, &devices)? {
            probes += 1;
            let oracle = devcg_oracle::decide(&rules, &p.request);
            if p.outcome.verdict() != Some(oracle) {
                mismatches.push(format!("{}: {p}, oracle {oracle}", rules_text(&rules)));
            }
        }
        lists += 1;
    }
    let first = mismatches.first().cloned().unwrap_or_default();
    seen(
        mismatches.is_empty(),
        format!(
            "{lists} rule lists, {probes} probes, {} mismatches{}",
            mismatches.len(),
            if first.is_empty() {
                String::new()
            } else {
                format!("; first: {first}")
            }
        ),
    )
}

fn rules_text(rules: &[devcg_engine::Rule]) -> String {
    rules
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
