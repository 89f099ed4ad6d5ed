//! The bpf(2) layer and the cgroup2 scratch guard on the real kernel:
//! loading (maps, relocation, refusals with the verifier's reason), every
//! attach mode through the guard, links, pins, queries. Needs root, cgroup2
//! and CAP_BPF; skips with one line otherwise.

use std::os::fd::AsFd;

use devcg_engine::asm::{Asm, Size, Width};
use devcg_engine::insn::{op, R0, R1};
use devcg_engine::{strategy, DeviceType, Program, RuleFile};
use devcg_kernel::bpf::{self, AttachFlags, BpfError};
use devcg_kernel::device::Device;
use devcg_kernel::probe::KernelAnswer;
use devcg_kernel::v2::{self, Scratch};
use devcg_kernel::KernelError;

mod common;
use common::{ret, scratch_or_skip};

const DEV: Device = Device {
    ty: DeviceType::Char,
    major: 100,
    minor: 1,
};

fn read(s: &mut Scratch, cg: &v2::Cgroup) -> KernelAnswer {
    s.probe(cg, &[DEV]).unwrap()[0].outcome
}

#[test]
fn loads_and_names_programs() {
    let Some(_s) = scratch_or_skip() else { return };
    let p = bpf::load(&ret(1), "devcg-with odd name!").unwrap();
    assert_ne!(p.id().unwrap(), 0);
    assert!(p.maps.is_empty());
}

#[test]
fn a_refusal_carries_the_verifier_log_and_its_reason() {
    let Some(_s) = scratch_or_skip() else { return };
    match bpf::load(&ret(2), "bad") {
        Err(BpfError::Load {
            errno,
            first_error,
            log,
        }) => {
            // 6.18 answers EINVAL for a return value out of range.
            assert!(
                matches!(errno, nix::Error::EINVAL | nix::Error::EACCES),
                "{errno}"
            );
            assert!(first_error.contains("R0"), "{first_error}");
            assert!(log.contains("processed"), "{log}");
        }
        other => panic!("r0 = 2 loaded: {other:?}"),
    }
    // A narrow load of `major` is refused with the context's reason.
    let mut a = Asm::new();
    a.ldx(Size::B, R0, R1, 4)
        .alu_imm(Width::W64, op::AND, R0, 1)
        .exit();
    let err = bpf::load(&Program::new(a.finish().unwrap()), "narrow").unwrap_err();
    assert!(
        err.to_string().contains("invalid bpf_context access"),
        "{err}"
    );
}

#[test]
fn map_programs_get_real_maps() {
    let Some(mut s) = scratch_or_skip() else {
        return;
    };
    let rules = RuleFile::parse("x", "deny a\nallow c 100:1 r\n").unwrap();
    let program = strategy::by_name("map").unwrap().compile(&rules).unwrap();
    let loaded = bpf::load(&program, "map").unwrap();
    assert_eq!(loaded.maps.len(), program.maps.len());
    // What the strategy put in is what the kernel map holds.
    for (k, v) in &program.maps[0].entries {
        let got = bpf::map_lookup(&loaded.maps[0], k, v.len()).unwrap();
        assert_eq!(got.as_ref(), Some(v));
    }
    assert_eq!(
        bpf::map_lookup(&loaded.maps[0], &[0xee; 12], 4).unwrap(),
        None
    );
    let cg = s.mkdir("a").unwrap();
    s.attach(&cg, &loaded, AttachFlags::NONE).unwrap();
    let probes = s.probe(&cg, &[DEV]).unwrap();
    let seen: Vec<_> = probes.iter().map(|p| p.outcome).collect();
    use KernelAnswer::{Allowed as A, Denied as D};
    // Access 0 (access(F_OK)) is covered by any rule of the device.
    assert_eq!(seen, [A, D, D, D, A], "{probes:?}");
}

#[test]
fn the_guard_refuses_every_cgroup_outside_the_scratch_directory() {
    let Some(s) = scratch_or_skip() else { return };
    let deny = bpf::load(&ret(0), "deny_all").unwrap();
    let mount = s.mount().mount_point.clone();
    let root = std::fs::File::open(&mount).unwrap();
    assert!(matches!(
        s.guard(&root),
        Err(KernelError::NotScratch { .. })
    ));
    // The cgroup this process runs in (the root here) is refused as well,
    // and so is any directory that is not a cgroup2 one.
    let tmp = std::fs::File::open(std::env::temp_dir()).unwrap();
    assert!(s.guard(&tmp).is_err());
    for bad in ["..", "../x", "a/../..", "/", "a//b", "."] {
        assert!(s.open(bad).is_err(), "{bad:?} opened");
        assert!(s.mkdir(bad).is_err(), "{bad:?} made");
    }
    // Scratch cgroups pass; the scratch directory itself cannot be removed.
    let cg = s.mkdir("a").unwrap();
    assert!(s.guard(&cg).is_ok());
    s.attach(&cg, &deny, AttachFlags::NONE).unwrap();
    let top = s.open("").unwrap();
    assert!(s.rmdir(top).is_err());
    // Nothing was attached to the root.
    assert!(bpf::query(root.as_fd(), false).unwrap().ids.is_empty());
}

#[test]
fn every_attach_mode() {
    let Some(mut s) = scratch_or_skip() else {
        return;
    };
    let deny = bpf::load(&ret(0), "deny_all").unwrap();
    let allow = bpf::load(&ret(1), "allow_all").unwrap();
    // NONE, then detach without naming the program.
    let none = s.mkdir("none").unwrap();
    s.attach(&none, &deny, AttachFlags::NONE).unwrap();
    assert_eq!(read(&mut s, &none), KernelAnswer::Denied);
    s.detach(&none, None).unwrap();
    assert_eq!(read(&mut s, &none), KernelAnswer::Allowed);
    // OVERRIDE.
    let over = s.mkdir("over").unwrap();
    s.attach(&over, &deny, AttachFlags::ALLOW_OVERRIDE).unwrap();
    assert_eq!(s.query(&over, false).unwrap().attach_flags, 1);
    // MULTI + REPLACE.
    let multi = s.mkdir("multi").unwrap();
    s.attach(&multi, &allow, AttachFlags::ALLOW_MULTI).unwrap();
    s.attach(&multi, &deny, AttachFlags::ALLOW_MULTI).unwrap();
    assert_eq!(read(&mut s, &multi), KernelAnswer::Denied);
    let allow2 = bpf::load(&ret(1), "allow_2").unwrap();
    s.attach_replace(&multi, &allow2, &deny).unwrap();
    assert_eq!(read(&mut s, &multi), KernelAnswer::Allowed);
    assert_eq!(
        s.query(&multi, false).unwrap().ids,
        [allow.id().unwrap(), allow2.id().unwrap()]
    );
    // Mixing modes on one cgroup is refused.
    assert!(s.attach(&multi, &deny, AttachFlags::NONE).is_err());
    // A link, updated in place, then detached while its fd lives.
    let linked = s.mkdir("link").unwrap();
    let link = s.link(&linked, &allow).unwrap();
    assert_eq!(
        bpf::link_ids(&link).unwrap(),
        (link.id, allow.id().unwrap())
    );
    bpf::link_update(&link, &deny).unwrap();
    assert_eq!(read(&mut s, &linked), KernelAnswer::Denied);
    // The pin gives the same link back.
    let pin = s.pin(&link, "l").unwrap();
    let again = bpf::obj_get(&pin).unwrap();
    assert_eq!(bpf::link_ids(&again).unwrap().0, link.id);
    bpf::link_detach(&link).unwrap();
    assert_eq!(read(&mut s, &linked), KernelAnswer::Allowed);
    assert!(s.query(&linked, false).unwrap().ids.is_empty());
}
