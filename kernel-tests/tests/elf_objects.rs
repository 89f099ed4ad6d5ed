//! `compile --format elf` objects loaded by the loaders people use, for
//! every strategy: bpftool (libbpf 1.x; maps filled by the `bpftool map
//! update` sequence devcg prints) and aya (maps filled through the map fds
//! aya created). Each program is attached to a scratch cgroup and probed
//! from a forked child; every kernel verdict must be the emulator's on the
//! same program, and for devcg's own strategies the oracle's. Root, cgroup2
//! and bpftool needed; one line says what is missing otherwise.

mod common;

use std::os::fd::AsFd;
use std::path::Path;

use devcg_differential::gen::{rules_in, Draw};
use devcg_differential::rng::Rng;
use devcg_emulator::Emulator;
use devcg_engine::{elf, strategy, Program};
use devcg_kernel::device::Device;
use devcg_kernel::v2::{Cgroup, Scratch};
use devcg_kernel::{bpf, gen, objects};
use devcg_oracle::Policy;

/// Random rule lists per loader (each through all nine strategies).
const CASES: u64 = 8;
const MAX_RULES: usize = 6;
const MAX_DEVICES: usize = 10;

#[derive(Clone, Copy, Debug)]
enum Loader {
    Bpftool,
    Aya,
}

/// What keeps a loaded program attached until its probes are done.
enum Held {
    Bpftool(objects::Pinned),
    // Held for its drop: aya detaches (closes the link) then.
    Aya(#[allow(dead_code)] Box<aya::Ebpf>),
}

fn load(
    loader: Loader,
    scratch: &mut Scratch,
    cg: &Cgroup,
    object: &Path,
    name: &str,
) -> Result<Held, String> {
    let bytes = std::fs::read(object).unwrap();
    // The contents come back from the object itself (.devcg.init).
    let read = elf::read(&bytes, None).map_err(|e| e.to_string())?;
    match loader {
        Loader::Bpftool => {
            let pinned = objects::bpftool_load(scratch, object, name, &read.program.maps)
                .map_err(|e| e.to_string())?;
            objects::bpftool_attach(scratch, cg, &pinned).map_err(|e| e.to_string())?;
            Ok(Held::Bpftool(pinned))
        }
        Loader::Aya => {
            let mut ebpf = aya::Ebpf::load(&bytes).map_err(|e| format!("aya load: {e}"))?;
            for m in &read.program.maps {
                let map = ebpf
                    .map(&m.name)
                    .ok_or(format!("aya has no map {}", m.name))?;
                let data = match map {
                    aya::maps::Map::HashMap(d) | aya::maps::Map::Array(d) => d,
                    other => return Err(format!("aya made {other:?}")),
                };
                for (k, v) in &m.entries {
                    bpf::map_update(data.fd().as_fd(), k, v).map_err(|e| e.to_string())?;
                }
            }
            let program: &mut aya::programs::CgroupDevice = ebpf
                .program_mut(&read.name)
                .ok_or("aya has no program")?
                .try_into()
                .map_err(|e| format!("aya: {e}"))?;
            program.load().map_err(|e| format!("aya load: {e:?}"))?;
            scratch.guard(cg).map_err(|e| e.to_string())?;
            program
                .attach(cg.as_fd(), aya::programs::CgroupAttachMode::Single)
                .map_err(|e| format!("aya attach: {e}"))?;
            Ok(Held::Aya(Box::new(ebpf)))
        }
    }
}

struct Attached {
    strategy: &'static str,
    own: bool,
    program: Program,
    cgroup: Cgroup,
    held: Held,
}

fn every_strategy_through(loader: Loader, seed: u64) {
    let Some(mut scratch) = common::scratch_or_skip() else {
        return;
    };
    if let Loader::Bpftool = loader {
        if let Some(why) = objects::bpftool_skip_reason() {
            println!("skipped: {why}");
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let drivers = scratch.drivers().clone();
    let space = gen::space(&drivers);
    let lists = rules_in(&space, MAX_RULES);
    let (mut draw, mut rng) = (Draw::new(seed), Rng::new(seed));
    let (mut loaded, mut probes) = (0, 0);
    let mut strategies = std::collections::BTreeSet::new();
    let mut compiled = std::collections::BTreeSet::new();
    // A dump names the kernel functions it calls only where bpftool can
    // read their addresses.
    let names_calls = kallsyms_shows_addresses();
    if !names_calls {
        println!("skipped the dump checks: /proc/kallsyms hides addresses");
    }
    let mut dumps = 0;
    let mut failures = Vec::new();
    for case in 0..CASES {
        // The first list is an allow list every model takes (systemd and
        // libvirt take nothing else), on majors without a driver here.
        let rules = if case == 0 {
            allow_list(&space)
        } else {
            draw.value(&lists)
        };
        let devices: Vec<Device> = gen::devices(&mut rng, &space, &drivers, &rules, MAX_DEVICES);
        let oracle = Policy::of(&rules);
        let mut attached = Vec::new();
        for s in strategy::all() {
            let Ok(program) = s.compile(&rules) else {
                continue; // a model refusing the list, as its runtime does
            };
            compiled.insert(s.name());
            let object = tmp.path().join(format!("{case}-{}.o", s.name()));
            std::fs::write(
                &object,
                elf::write(&program, &format!("devcg_{}", s.name())).unwrap(),
            )
            .unwrap();
            let cgroup = scratch.mkdir(&format!("elf{case}-{}", s.name())).unwrap();
            let name = format!("elf{case}-{}", s.name());
            match load(loader, &mut scratch, &cgroup, &object, &name) {
                Ok(held) => attached.push(Attached {
                    strategy: s.name(),
                    own: s.is_own(),
                    program,
                    cgroup,
                    held,
                }),
                Err(why) => {
                    failures.push(format!("{}: {why}", s.name()));
                    scratch.rmdir(cgroup).unwrap();
                }
            }
        }
        loaded += attached.len();
        strategies.extend(attached.iter().map(|a| a.strategy));
        let groups: Vec<(&Cgroup, &[Device])> = attached
            .iter()
            .map(|a| (&a.cgroup, devices.as_slice()))
            .collect();
        let results = scratch.probe_many(&groups).unwrap();
        for (a, found) in attached.iter().zip(&results) {
            let emulator = Emulator::new(&a.program).unwrap();
            for p in found {
                let Some(kernel) = p.outcome.verdict() else {
                    failures.push(format!("{}: unexpected answer {p}", a.strategy));
                    continue;
                };
                probes += 1;
                let emulated = emulator.run(&p.request).ok();
                if emulated != Some(kernel) {
                    failures.push(format!(
                        "{}: {} kernel {kernel} emulator {emulated:?} (rules {rules:?})",
                        a.strategy, p.request
                    ));
                }
                if a.own && oracle.decide(&p.request) != kernel {
                    failures.push(format!(
                        "{}: {} kernel {kernel} oracle {}",
                        a.strategy,
                        p.request,
                        oracle.decide(&p.request)
                    ));
                }
            }
        }
        for a in &attached {
            if let (Held::Bpftool(pinned), true) = (&a.held, names_calls) {
                let requests: Vec<_> = results.iter().flatten().map(|p| p.request).collect();
                if let Err(why) = dump_decides_alike(pinned, &a.program, &rules, &requests) {
                    failures.push(format!("{}: bpftool dump: {why}", a.strategy));
                }
                dumps += 1;
            }
        }
        for a in attached {
            if let (Held::Bpftool(pinned), Loader::Bpftool) = (&a.held, loader) {
                objects::bpftool_detach(&scratch, &a.cgroup, pinned).unwrap();
            }
            drop(a.held);
            scratch.rmdir(a.cgroup).unwrap();
        }
    }
    println!(
        "{loader:?}: {loaded} programs loaded and attached, {probes} kernel verdicts compared, {dumps} bpftool dumps read back"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(probes > 0);
    // Every strategy that compiled a list loaded it, models included.
    assert_eq!(strategies, compiled);
    assert_eq!(
        compiled.len(),
        strategy::all().len(),
        "compiled: {compiled:?}"
    );
}

fn kallsyms_shows_addresses() -> bool {
    std::fs::read_to_string("/proc/kallsyms").is_ok_and(|t| {
        t.lines()
            .any(|l| l.ends_with(" __bpf_call_base") && !l.starts_with("0000000000000000"))
    })
}

/// bpftool's text dump of the loaded program, read back with the maps by
/// id, decides as the compiled program does: the same exhaustive verdict
/// on the rules, and the same answer on every probed request and every
/// class either finds differing.
fn dump_decides_alike(
    pinned: &objects::Pinned,
    program: &Program,
    rules: &[devcg_engine::Rule],
    requests: &[devcg_engine::Request],
) -> Result<(), String> {
    use devcg_differential::exhaustive;
    let text = objects::bpftool_dump_xlated(pinned).map_err(|e| e.to_string())?;
    let mut specs = Vec::new();
    for m in &program.maps {
        let id = objects::bpftool_map_id(pinned, &m.name).map_err(|e| e.to_string())?;
        specs.push((format!("id:{id}"), m.clone()));
    }
    let back = devcg_engine::asmtext::parse(&text, specs).map_err(|e| format!("{e} in\n{text}"))?;
    let (a, b) = (
        exhaustive::run(rules, program).map_err(|e| e.to_string())?,
        exhaustive::run(rules, &back).map_err(|e| e.to_string())?,
    );
    if a.equivalent() != b.equivalent() {
        return Err(format!(
            "equivalent: compiled {} dump {}",
            a.equivalent(),
            b.equivalent()
        ));
    }
    let (ea, eb) = (
        Emulator::new(program).unwrap(),
        Emulator::new(&back).map_err(|e| e.to_string())?,
    );
    let classes = a
        .differences
        .iter()
        .chain(&b.differences)
        .map(|d| devcg_engine::Request::parse(&d.request).expect("a request"));
    for r in requests.iter().copied().chain(classes) {
        if ea.run(&r).ok() != eb.run(&r).ok() {
            return Err(format!(
                "{r}: compiled {:?} dump {:?}",
                ea.run(&r),
                eb.run(&r)
            ));
        }
    }
    Ok(())
}

fn allow_list(space: &devcg_differential::gen::Space) -> Vec<devcg_engine::Rule> {
    let devcg_differential::gen::Numbers::Pools {
        block_majors,
        char_majors,
        ..
    } = &space.numbers
    else {
        panic!("the kernel's space names its numbers");
    };
    let text = format!(
        "deny a\nallow c *:* m\nallow c {}:* rw\nallow b {}:1 r\n",
        char_majors[0], block_majors[0]
    );
    devcg_engine::RuleFile::parse("allow-list", &text).unwrap()
}

#[test]
fn bpftool_loads_every_strategy_and_the_kernel_agrees() {
    every_strategy_through(Loader::Bpftool, 11);
}

#[test]
fn aya_loads_every_strategy_and_the_kernel_agrees() {
    every_strategy_through(Loader::Aya, 12);
}

/// Builds examples/filter.c with clang into `dir`, or says in one line why
/// it cannot.
fn build_filter(dir: &Path) -> Option<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let clang = std::process::Command::new("clang")
        .arg("--version")
        .output();
    if !clang.is_ok_and(|o| o.status.success()) {
        println!("skipped: clang is not installed (scripts/test.sh installs clang and libbpf-dev)");
        return None;
    }
    if !Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        println!("skipped: libbpf-dev is not installed (/usr/include/bpf/bpf_helpers.h)");
        return None;
    }
    let object = dir.join("filter.o");
    let out = std::process::Command::new("clang")
        .args(["-O2", "-g", "-target", "bpf"])
        .arg(format!(
            "-I/usr/include/{}-linux-gnu",
            std::env::consts::ARCH
        ))
        .arg("-c")
        .arg(root.join("examples/filter.c"))
        .arg("-o")
        .arg(&object)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "clang: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(object)
}

/// The clang-built C filter, loaded by bpftool with its map filled by the
/// `bpftool map update` sequence, decides in the kernel exactly as devcg's
/// emulator does; and the kernel shows its bug: access(F_OK) denied on a
/// device the rules grant mknod on, and nothing else differing from them.
#[test]
fn the_clang_filter_in_the_kernel_is_the_emulators() {
    let Some(mut scratch) = common::scratch_or_skip() else {
        return;
    };
    if let Some(why) = objects::bpftool_skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let Some(object) = build_filter(tmp.path()) else {
        return;
    };
    let drivers = scratch.drivers().clone();
    let devcg_differential::gen::Numbers::Pools {
        block_majors,
        char_majors,
        ..
    } = gen::space(&drivers).numbers
    else {
        panic!("the kernel's space names its numbers");
    };
    let (major, other, block) = (char_majors[0], char_majors[1], block_majors[0]);
    // The map grants c MAJOR:7 everything, as filter-map.json does /dev/net/tun.
    let mut read = elf::read(&std::fs::read(&object).unwrap(), None).unwrap();
    let key: Vec<u8> = [major, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
    let contents = vec![(
        "extra".to_string(),
        vec![(key, 7u32.to_le_bytes().to_vec())],
    )];
    elf::apply_contents(&mut read.program.maps, contents).unwrap();
    let rules = devcg_engine::RuleFile::parse(
        "filter",
        &format!("deny a\nallow c *:* m\nallow b *:* m\nallow c {major}:7 rwm\n"),
    )
    .unwrap();
    let cg = scratch.mkdir("clang-filter").unwrap();
    let pinned =
        objects::bpftool_load(&mut scratch, &object, "clang-filter", &read.program.maps).unwrap();
    objects::bpftool_attach(&scratch, &cg, &pinned).unwrap();
    let devices = [
        Device::new(devcg_engine::DeviceType::Char, major, 7),
        Device::new(devcg_engine::DeviceType::Char, major, 8),
        Device::new(devcg_engine::DeviceType::Char, other, 0),
        Device::new(devcg_engine::DeviceType::Block, block, 1),
    ];
    let found = scratch.probe(&cg, &devices).unwrap();
    let emulator = Emulator::new(&read.program).unwrap();
    let oracle = Policy::of(&rules);
    let (mut f_ok, mut compared) = (0, 0);
    for p in &found {
        let kernel = p
            .outcome
            .verdict()
            .unwrap_or_else(|| panic!("unexpected: {p}"));
        compared += 1;
        assert_eq!(emulator.run(&p.request).ok(), Some(kernel), "{p}");
        let want = oracle.decide(&p.request);
        if p.request.access.0 == 0
            && !(p.request.ty == devcg_engine::DeviceType::Char
                && p.request.major == major
                && p.request.minor == 7)
        {
            // The bug: F_OK on a mknod-only device.
            assert_eq!(
                (want, kernel),
                (devcg_engine::Verdict::Allow, devcg_engine::Verdict::Deny),
                "{p}"
            );
            f_ok += 1;
        } else {
            assert_eq!(want, kernel, "{p}");
        }
    }
    println!("clang filter: {compared} kernel verdicts, {f_ok} of them the F_OK bug");
    assert!(f_ok >= 3, "{found:?}");
    objects::bpftool_detach(&scratch, &cg, &pinned).unwrap();
    drop(pinned);
    scratch.rmdir(cg).unwrap();
}

/// The BTF devcg writes for its maps is valid for the kernel itself, not
/// only for the loaders (libbpf skips loading BTF nothing needs).
#[test]
fn the_maps_btf_is_the_kernels() {
    if common::scratch_or_skip().is_none() {
        return;
    }
    let rules = devcg_engine::RuleFile::parse(
        "btf",
        "deny a\nallow c *:* m\nallow c 1:3 rwm\nallow b 8:* r\n",
    )
    .unwrap();
    let mut checked = 0;
    for s in strategy::all() {
        let Ok(p) = s.compile(&rules) else { continue };
        if p.maps.is_empty() {
            continue;
        }
        let blob = elf::maps_btf(&p);
        bpf::btf_load(&blob).unwrap_or_else(|e| panic!("{}: {e}", s.name()));
        // Not vacuous: the kernel does check (a cut string table is refused).
        assert!(bpf::btf_load(&blob[..blob.len() - 1]).is_err());
        checked += 1;
    }
    assert!(checked >= 2, "map and libvirt use maps");
}
