//! `devcg audit` against the running kernel: programs attached to scratch
//! cgroups are read back, rebuilt and decided; the audit must say what the
//! attached program means (own strategies: what the rules mean; models:
//! exactly what their own program means, divergences included), follow
//! nested attachments and map changes, and answer plainly for an empty or
//! missing cgroup. Needs root, cgroup2 and CAP_BPF; skips with one line
//! otherwise.

mod common;

use devcg_differential::audit::{self, Audit, Enforcement};
use devcg_engine::{strategy, Program, Request, Rule, RuleFile, Verdict};
use devcg_kernel::audit::{read, ReadError};
use devcg_kernel::bpf::{self, AttachFlags};
use devcg_kernel::device::Device;
use devcg_kernel::v2::{Cgroup, Scratch};

fn rules(text: &str) -> Vec<Rule> {
    RuleFile::parse("test", &text.replace(';', "\n")).unwrap()
}

/// What the kernel layer reads for `cg`, as the audit's input.
fn enforcement_of(cg: &Cgroup) -> Enforcement {
    enforcement_of_path(cg.path())
}

fn audited(e: &Enforcement, expected: &[Rule]) -> Audit {
    let mut a = audit::audit(e, expected).expect("audit");
    audit::compare(&mut a, expected);
    a
}

const LISTS: [&str; 4] = [
    "deny a; allow c 1:3 rwm; allow c 1:5 rw; allow b 8:* r; allow c *:7 m",
    "allow a; deny c 1:3 w; deny b *:* m",
    "deny a; allow c 5:* rwm; deny c 5:2 w; allow b 7:0 r",
    "deny a; allow c 10:200 rwm; allow c 136:* rwm; allow c 1:9 rwm; allow c *:* m",
];

#[test]
fn every_strategy_reads_back_to_what_its_program_means() {
    let Some(scratch) = common::scratch_or_skip() else {
        return;
    };
    for (i, text) in LISTS.iter().enumerate() {
        let rules = rules(text);
        for s in strategy::all() {
            let Ok(program) = s.compile(&rules) else {
                continue;
            };
            let Ok(loaded) = bpf::load(&program, "devcg_audit") else {
                continue;
            };
            let cg = scratch.mkdir(&format!("a{i}-{}", s.name())).unwrap();
            scratch.attach(&cg, &loaded, AttachFlags::NONE).unwrap();
            let live = audited(&enforcement_of(&cg), &rules);
            let compiled = audited(
                &Enforcement {
                    programs: vec![(s.name().into(), program.clone())],
                    v1: None,
                },
                &rules,
            );
            // The live program decides as the compiled one, class by class
            // (the classes of either may be finer: the kernel drops dead
            // code).
            let live_program = &enforcement_of(&cg).programs[0].1;
            let disagreements =
                audit::program_disagreements((&live, live_program), (&compiled, &program)).unwrap();
            assert!(
                disagreements.is_empty(),
                "{} on {text}: {disagreements:?}",
                s.name()
            );
            assert_eq!(
                live.differences,
                compiled.differences,
                "{} on {text}",
                s.name()
            );
            if s.is_own() {
                assert!(
                    live.differences.is_empty(),
                    "{} on {text}: {:?}",
                    s.name(),
                    live.differences
                );
            }
            scratch.rmdir(cg).unwrap();
        }
    }
}

/// Whether the kernel lets a child of `cg` do `access` on `dev`.
fn probe(scratch: &mut Scratch, cg: &Cgroup, devices: &[Device]) -> Vec<(Request, Verdict)> {
    scratch
        .probe(cg, devices)
        .unwrap()
        .into_iter()
        .filter_map(|p| p.outcome.verdict().map(|v| (p.request, v)))
        .collect()
}

fn allowed_by(a: &Audit, req: &Request) -> Verdict {
    let i = audit::ACCESSES
        .iter()
        .position(|&x| x == req.access)
        .expect("a probed access");
    let cell = a
        .cells
        .iter()
        .find(|c| {
            c.ty == req.ty
                && (c.majors.0..=c.majors.1).contains(&req.major)
                && (c.minors.0..=c.minors.1).contains(&req.minor)
        })
        .expect("every reachable device is in a class");
    Verdict::from_allowed(cell.allowed.contains(i))
}

#[test]
fn nested_programs_are_audited_as_the_conjunction_the_kernel_enforces() {
    let Some(mut scratch) = common::scratch_or_skip() else {
        return;
    };
    let drivers = scratch.drivers().clone();
    let parent_rules = rules("deny a; allow c 200:* rwm; allow c 201:1 rwm");
    let child_rules = rules("deny a; allow c *:1 rw; allow c 200:2 m");
    let tree = strategy::by_name("tree").unwrap();
    let map = strategy::by_name("map").unwrap();
    let parent_prog = bpf::load(&tree.compile(&parent_rules).unwrap(), "devcg_parent").unwrap();
    let child_prog = bpf::load(&map.compile(&child_rules).unwrap(), "devcg_child").unwrap();
    for flags in [AttachFlags::ALLOW_MULTI, AttachFlags::ALLOW_OVERRIDE] {
        let parent = scratch.mkdir("nest").unwrap();
        let child = scratch.mkdir("nest/child").unwrap();
        scratch.attach(&parent, &parent_prog, flags).unwrap();
        scratch.attach(&child, &child_prog, flags).unwrap();
        let e = enforcement_of(&child);
        let a = audited(&e, &[]);
        // MULTI: both run; OVERRIDE: the child's replaces the parent's.
        let want = if flags == AttachFlags::ALLOW_MULTI {
            2
        } else {
            1
        };
        assert_eq!(e.programs.len(), want, "{flags:?}");
        let devices: Vec<Device> = [(200, 1), (200, 2), (201, 1), (202, 1), (200, 3)]
            .into_iter()
            .map(|(ma, mi)| Device::new(devcg_engine::DeviceType::Char, ma, mi))
            .filter(|&d| drivers.probeable(d).is_ok())
            .collect();
        assert!(!devices.is_empty(), "no probeable device");
        let probes = probe(&mut scratch, &child, &devices);
        assert!(!probes.is_empty());
        for (req, kernel) in probes {
            assert_eq!(allowed_by(&a, &req), kernel, "{flags:?}: {req}");
        }
        scratch.rmdir(child).unwrap();
        scratch.rmdir(parent).unwrap();
    }
}

#[test]
fn a_map_changed_after_attach_changes_the_audit() {
    let Some(scratch) = common::scratch_or_skip() else {
        return;
    };
    let map = strategy::by_name("map").unwrap();
    let before = rules("deny a; allow c 1:3 r; allow c 1:4 r");
    // The same keys (the map is sized for them), other values.
    let after = rules("deny a; allow c 1:3 rwm; allow c 1:4 rw");
    let (p_before, p_after): (Program, Program) =
        (map.compile(&before).unwrap(), map.compile(&after).unwrap());
    assert_eq!(
        p_before.insns, p_after.insns,
        "same code, other map contents"
    );
    let loaded = bpf::load(&p_before, "devcg_mapchg").unwrap();
    let cg = scratch.mkdir("mapchg").unwrap();
    scratch.attach(&cg, &loaded, AttachFlags::NONE).unwrap();
    let first = audited(&enforcement_of(&cg), &before);
    assert!(first.differences.is_empty(), "{:?}", first.differences);
    // As libvirt does on hot-plug: write into the live map.
    for (k, v) in &p_after.maps[0].entries {
        bpf::map_update(&loaded.maps[0], k, v).unwrap();
    }
    let second = audited(&enforcement_of(&cg), &after);
    assert!(second.differences.is_empty(), "{:?}", second.differences);
    let stale = audited(&enforcement_of(&cg), &before);
    assert!(
        stale.differences.iter().any(|d| d.security),
        "the audit did not see the map change"
    );
    scratch.rmdir(cg).unwrap();
}

#[test]
fn empty_missing_and_foreign_paths_get_plain_answers() {
    let Some(scratch) = common::scratch_or_skip() else {
        return;
    };
    let cg = scratch.mkdir("empty").unwrap();
    let e = enforcement_of(&cg);
    assert!(e.programs.is_empty());
    let a = audited(&e, &[]);
    assert_eq!(a.rules.as_deref(), Some(&["allow a".to_string()][..]));
    let missing = cg.path().join("no-such-cgroup");
    assert!(matches!(
        read(missing.to_str().unwrap()),
        Err(ReadError::Missing(_))
    ));
    assert!(matches!(read("/proc"), Err(ReadError::NotACgroup { .. })));
    assert!(matches!(read("4294967295"), Err(ReadError::NoProcess(_))));
    scratch.rmdir(cg).unwrap();
}

#[test]
fn a_process_is_audited_through_its_cgroups() {
    let Some(scratch) = common::scratch_or_skip() else {
        return;
    };
    // This test's own process: its cgroup2 directory (and v1 devices
    // cgroup, where mounted) is read, nothing attached to it.
    let live = read(&std::process::id().to_string()).expect("own cgroups");
    assert!(live.v2.is_some() || live.v1.is_some());
    drop(scratch);
}

/// A real container of `runtime` with a device list that exercises the
/// defaults: its live program must decide as devcg's model of that runtime
/// (with its defaults) does, but for the differences the runtime's version
/// is known to make.
fn real_container_audits_as_the_model(
    runtime: devcg_kernel::runtime::Runtime,
    model: devcg_kernel::runtime::ModelOf,
    known_version_differences: &[&str],
) {
    use devcg_kernel::runtime;
    if let Some(why) = runtime::skip_reason(runtime) {
        println!("{why}");
        return;
    }
    let Some(scratch) = common::scratch_or_skip() else {
        return;
    };
    let config = serde_json::json!({"linux": {"resources": {"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw"},
        {"allow": false, "type": "c", "major": 1, "minor": 9, "access": "w"},
        {"allow": true, "type": "b", "major": 7, "access": "r"}
    ]}}});
    let rules = RuleFile::parse("config.json", &config.to_string()).unwrap();
    let name = format!("{}-ctr", runtime.binary());
    // One program attached (more is an error of run_config).
    let mut nodes = devcg_kernel::probe::NodeDir::mount().expect("node dir");
    let case = runtime::run_config(
        runtime::Source::Binary(runtime),
        &scratch,
        &mut nodes,
        &name,
        &rules,
        model,
    )
    .expect("run");
    println!(
        "{}: {case:?}",
        runtime::version(runtime).unwrap_or_default()
    );
    assert!(
        case.refused.is_none() && case.attached,
        "one program attached"
    );
    // The real program against the model, on every class of either.
    assert_eq!(
        case.versus_model, known_version_differences,
        "the real program and devcg's model"
    );
    // The runtime's defaults (/dev/null & co., mknod of everything) show
    // up as differences from the config alone, and the kernel lets each
    // one through from inside the live container where it can be asked.
    assert!(case.security > 0);
    assert_eq!(case.reality.len(), case.security);
    for r in &case.reality {
        assert!(r.confirmed || r.request.is_none(), "{r:?}");
    }
    assert!(case.reality.iter().any(|r| r.confirmed));
}

#[test]
fn a_real_runc_containers_program_audits_as_devcgs_model_of_it() {
    use devcg_engine::strategy::models::runc;
    real_container_audits_as_the_model(
        devcg_kernel::runtime::Runtime::Runc,
        &runc::compile_with_defaults,
        &[],
    );
}

/// crun's defaults changed across releases: the model of the installed
/// version is exact, and the upstream model differs from Debian's 1.8.1
/// exactly on /dev/net/tun (c 10:200), which 1.5 to 1.19 do not grant.
#[test]
fn a_real_crun_containers_program_audits_as_devcgs_model_of_its_version() {
    use devcg_engine::strategy::models::crun;
    use devcg_kernel::runtime::{version, Runtime};
    let Some(installed) = version(Runtime::Crun)
        .ok()
        .and_then(|v| crun::Version::parse(&v))
    else {
        println!("crun is not installed (or prints no version)");
        return;
    };
    let of_version = move |r: &[Rule]| crun::compile_for_version(installed, r);
    real_container_audits_as_the_model(Runtime::Crun, &of_version, &[]);
    if installed < crun::Version(1, 20) && installed >= crun::Version(1, 5) {
        real_container_audits_as_the_model(
            Runtime::Crun,
            &crun::compile_with_defaults,
            &[
                "c 10:200 r: first deny, second allow",
                "c 10:200 rw: first deny, second allow",
                "c 10:200 w: first deny, second allow",
            ],
        );
    }
}

fn enforcement_of_path(path: &std::path::Path) -> Enforcement {
    let live = read(path.to_str().unwrap()).expect("read the container's cgroup");
    Enforcement {
        programs: live
            .v2
            .expect("a cgroup2 path")
            .programs
            .into_iter()
            .map(|p| {
                let label = p.label();
                (
                    label.clone(),
                    p.program.unwrap_or_else(|e| panic!("{label}: {e}")),
                )
            })
            .collect(),
        v1: None,
    }
}
