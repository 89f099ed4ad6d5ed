//! libvirt LXC domains for `devcg runtime libvirt`, pure: the domain and
//! hostdev XML devcg gives `virsh`, the cgroup calls libvirt 9.0.0's LXC
//! driver makes for them (as v1 rule lines, one per call), and what the
//! XML means as v1 rules. docs/libvirt.md gives the sources.
//!
//! The calls, from libvirt v9.0.0 (`src/lxc/lxc_cgroup.c`
//! `virLXCCgroupSetupDeviceACL`, `src/lxc/lxc_driver.c`
//! `lxcDomainAttachDeviceHostdev{Storage,Misc}Live`,
//! `lxcDomainDetachDeviceHostdev{Storage,Misc}Live`):
//!
//! * start: `virCgroupDenyAllDevices`, then `rwm` on the eight default
//!   char devices, then each hostdev in XML order (`rwm`, the type the
//!   node's `stat` says: block for storage, char for misc), then `rwm` on
//!   char major 136 (ptys);
//! * hot-plug: `virCgroupAllowDevice` of the node, `rwm`;
//! * hot-unplug: `virCgroupDenyDevicePath` of the node, `rwm`.
//!
//! The meaning: `deny a`, the defaults and every hostdev the domain has at
//! that moment, each `rwm` (libvirt's documentation grants a hostdev's
//! node to the container; the driver grants read, write and mknod).

use std::fmt;

use devcg_engine::{DeviceType, Rule, RuleFile};

use crate::rng::Rng;

/// The char devices the LXC driver allows before the hostdevs
/// (null, zero, full, random, urandom, tty, ptmx, fuse).
pub const DEFAULT_DEVICES: [(u32, u32); 8] = [
    (1, 3),
    (1, 5),
    (1, 7),
    (1, 8),
    (1, 9),
    (5, 0),
    (5, 2),
    (10, 229),
];

/// `LXC_DEV_MAJ_PTY`: allowed as `c 136:* rwm` after the hostdevs.
pub const PTY_MAJOR: u32 = 136;

/// `<hostdev mode='capabilities' type='misc'|'storage'>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `type='misc'`, `<char>PATH</char>`: a char device.
    Misc,
    /// `type='storage'`, `<block>PATH</block>`: a block device.
    Storage,
}

impl Kind {
    pub fn device_type(self) -> DeviceType {
        match self {
            Kind::Misc => DeviceType::Char,
            Kind::Storage => DeviceType::Block,
        }
    }
}

/// One host device given to a domain: a node devcg makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostdev {
    pub kind: Kind,
    pub major: u32,
    pub minor: u32,
}

impl Hostdev {
    pub fn new(kind: Kind, major: u32, minor: u32) -> Hostdev {
        Hostdev { kind, major, minor }
    }

    /// The node's path in `dir` (one name per type and numbers).
    pub fn path(&self, dir: &str) -> String {
        let t = match self.kind {
            Kind::Misc => 'c',
            Kind::Storage => 'b',
        };
        format!("{dir}/{t}-{}-{}", self.major, self.minor)
    }

    /// The `<hostdev>` element for the node in `dir`.
    pub fn xml(&self, dir: &str) -> String {
        let (ty, tag) = match self.kind {
            Kind::Misc => ("misc", "char"),
            Kind::Storage => ("storage", "block"),
        };
        format!(
            "<hostdev mode='capabilities' type='{ty}'><source><{tag}>{}</{tag}></source></hostdev>",
            self.path(dir)
        )
    }

    fn type_char(&self) -> char {
        match self.kind {
            Kind::Misc => 'c',
            Kind::Storage => 'b',
        }
    }
}

impl fmt::Display for Hostdev {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.type_char(), self.major, self.minor)
    }
}

/// One step of a domain's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `virsh define` + `virsh start` with these hostdevs.
    Start(Vec<Hostdev>),
    /// `virsh attach-device --live`.
    Attach(Hostdev),
    /// `virsh detach-device --live`.
    Detach(Hostdev),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Start(h) => {
                let list: Vec<String> = h.iter().map(Hostdev::to_string).collect();
                write!(f, "start [{}]", list.join(", "))
            }
            Step::Attach(h) => write!(f, "attach {h}"),
            Step::Detach(h) => write!(f, "detach {h}"),
        }
    }
}

/// The domain's XML: an LXC domain running busybox's `sleep`, no network,
/// 64 MiB, a pty console (the driver requires one), with `hostdevs`
/// (nodes in `dir`).
pub fn domain_xml(name: &str, hostdevs: &[Hostdev], dir: &str) -> String {
    let devices: String = hostdevs.iter().map(|h| h.xml(dir)).collect();
    format!(
        "<domain type='lxc'><name>{name}</name><memory unit='MiB'>64</memory>\
         <os><type>exe</type><init>/bin/busybox</init><initarg>sleep</initarg>\
         <initarg>3600</initarg></os><devices><console type='pty'/>{devices}</devices></domain>"
    )
}

/// The calls one step makes, as v1 rule lines.
pub fn step_calls(step: &Step) -> Vec<String> {
    let rwm = |h: &Hostdev, verb: &str| format!("{verb} {h} rwm");
    match step {
        Step::Start(hostdevs) => std::iter::once("deny a".to_string())
            .chain(
                DEFAULT_DEVICES
                    .iter()
                    .map(|(ma, mi)| format!("allow c {ma}:{mi} rwm")),
            )
            .chain(hostdevs.iter().map(|h| rwm(h, "allow")))
            .chain(std::iter::once(format!("allow c {PTY_MAJOR}:* rwm")))
            .collect(),
        Step::Attach(h) => vec![rwm(h, "allow")],
        Step::Detach(h) => vec![rwm(h, "deny")],
    }
}

/// Every call the domain's cgroup has seen after `steps`.
pub fn calls(steps: &[Step]) -> Vec<String> {
    steps.iter().flat_map(step_calls).collect()
}

/// The hostdevs the domain has after `steps`, in the order it got them.
pub fn present(steps: &[Step]) -> Vec<Hostdev> {
    let mut out: Vec<Hostdev> = Vec::new();
    for step in steps {
        match step {
            Step::Start(h) => out = h.clone(),
            Step::Attach(h) => out.push(*h),
            Step::Detach(h) => out.retain(|x| x != h),
        }
    }
    out
}

/// What the domain means after `steps`, as v1 rule lines: deny all, the
/// driver's defaults and each present hostdev, `rwm`.
pub fn meaning(steps: &[Step]) -> Vec<String> {
    let mut out = vec!["deny a".to_string()];
    out.extend(
        DEFAULT_DEVICES
            .iter()
            .map(|(ma, mi)| format!("allow c {ma}:{mi} rwm")),
    );
    out.push(format!("allow c {PTY_MAJOR}:* rwm"));
    out.extend(present(steps).iter().map(|h| format!("allow {h} rwm")));
    out
}

/// Rule lines as rules (they are always valid).
pub fn rules(lines: &[String]) -> Vec<Rule> {
    RuleFile::parse("libvirt", &lines.join("\n")).expect("devcg writes valid rules")
}

/// A random domain life: a start with up to three hostdevs, then up to
/// four hot-plug steps (attach a new hostdev, or detach a present one).
/// Numbers come from `majors` (driverless majors) and minors below 8, so
/// the same numbers as char and block come up often (finding V4).
pub fn draw(rng: &mut Rng, majors: &[u32]) -> Vec<Step> {
    let pick = |rng: &mut Rng| {
        let kind = if rng.chance(1, 2) {
            Kind::Misc
        } else {
            Kind::Storage
        };
        Hostdev::new(kind, rng.pick(majors), rng.below(8) as u32)
    };
    let mut start: Vec<Hostdev> = Vec::new();
    for _ in 0..rng.below(4) {
        let h = pick(rng);
        if !start.contains(&h) {
            start.push(h);
        }
    }
    // A char and a block at the same numbers, now and then.
    if let Some(&h) = start.first() {
        if rng.chance(1, 3) {
            let twin = Hostdev::new(
                match h.kind {
                    Kind::Misc => Kind::Storage,
                    Kind::Storage => Kind::Misc,
                },
                h.major,
                h.minor,
            );
            if !start.contains(&twin) {
                start.push(twin);
            }
        }
    }
    let mut steps = vec![Step::Start(start)];
    for _ in 0..1 + rng.below(4) {
        let now = present(&steps);
        let step = if !now.is_empty() && rng.chance(1, 2) {
            Step::Detach(now[rng.below(now.len() as u64) as usize])
        } else {
            let h = pick(rng);
            if now.contains(&h) {
                continue;
            }
            Step::Attach(h)
        };
        steps.push(step);
    }
    steps
}

/// How a finding's reproducer (`findings::LIBVIRT`, by name) is driven
/// through the LXC driver: the domain's steps and the request, at char
/// and block major `major`; or why the driver cannot produce it (read in
/// its source, docs/libvirt.md).
pub fn driven(name: &str, major: u32) -> Result<(Vec<Step>, String), &'static str> {
    let h = |kind, minor| Hostdev::new(kind, major, minor);
    match name {
        "libvirt_key_has_no_device_type" => Ok((
            vec![Step::Start(vec![h(Kind::Misc, 3), h(Kind::Storage, 3)])],
            format!("c {major}:3 r"),
        )),
        "libvirt_char_deny_strips_block_access" => Ok((
            vec![
                Step::Start(vec![h(Kind::Misc, 4)]),
                Step::Attach(h(Kind::Storage, 4)),
                Step::Detach(h(Kind::Misc, 4)),
            ],
            format!("b {major}:4 r"),
        )),
        "libvirt_first_allow_creates_deny_all" | "libvirt_first_deny_creates_deny_all" => Err(
            "not drivable: the driver's first call on a domain's cgroup is always virCgroupDenyAllDevices (virLXCCgroupSetupDeviceACL)",
        ),
        "libvirt_deny_all_after_program_is_ignored" => Err(
            "not drivable: the driver calls virCgroupDenyAllDevices only at start, before any other call; hot-plug never does",
        ),
        "libvirt_device_deny_after_allow_all_is_ignored"
        | "libvirt_wildcard_allow_narrows_allow_all" => Err(
            "not drivable: the LXC driver never allows all devices rwm (virCgroupAllowAllDevices only with mknod, for the mknod capability)",
        ),
        "libvirt_allow_overwrites_access" => Err(
            "not drivable: every allow the LXC driver makes is rwm, so an overwrite can only change the type (that is V4)",
        ),
        "libvirt_deny_clears_type_bit" => Err(
            "not drivable: every deny the LXC driver makes is rwm of the node's own type, which clears the access bits with the type bit (the entry goes, or keeps only another type's bit: V4)",
        ),
        _ => Err("not drivable: no LXC driver sequence known for it"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng as Seeded;
    use devcg_emulator::Emulator;
    use devcg_engine::strategy::models::libvirt::Libvirt;
    use devcg_engine::{Access, Request, Strategy as _, Verdict};
    use devcg_oracle::Policy;
    use proptest::prelude::{
        any, prop_assert, prop_assert_eq, prop_assume, proptest, Strategy as _,
    };
    use rstest::rstest;

    const C: Kind = Kind::Misc;
    const B: Kind = Kind::Storage;

    #[rstest]
    #[case::start(vec![Step::Start(vec![Hostdev::new(B, 240, 1)])], 11, "allow b 240:1 rwm", 9)]
    #[case::attach(
        vec![Step::Start(vec![]), Step::Attach(Hostdev::new(C, 240, 2))],
        11,
        "allow c 240:2 rwm",
        10
    )]
    #[case::detach(
        vec![Step::Start(vec![Hostdev::new(C, 240, 2)]), Step::Detach(Hostdev::new(C, 240, 2))],
        12,
        "deny c 240:2 rwm",
        11
    )]
    fn calls_follow_the_driver(
        #[case] steps: Vec<Step>,
        #[case] n: usize,
        #[case] hostdev_call: &str,
        #[case] at: usize,
    ) {
        let c = calls(&steps);
        assert_eq!(c.len(), n);
        assert_eq!(c[0], "deny a");
        assert_eq!(c[at], hostdev_call);
        // The pty major comes after the start's hostdevs.
        assert_eq!(
            c[Step::Start(present(&steps[..1])).len_calls() - 1],
            "allow c 136:* rwm"
        );
    }

    impl Step {
        fn len_calls(&self) -> usize {
            step_calls(self).len()
        }
    }

    #[test]
    fn xml_names_the_nodes() {
        let h = [Hostdev::new(C, 240, 1), Hostdev::new(B, 240, 1)];
        let x = domain_xml("d", &h, "/dev/x");
        assert!(x.contains("<char>/dev/x/c-240-1</char>"), "{x}");
        assert!(x.contains("<block>/dev/x/b-240-1</block>"), "{x}");
        assert!(x.contains("type='misc'") && x.contains("type='storage'"));
        assert_ne!(h[0].path("/d"), h[1].path("/d"));
    }

    fn verdicts(lines: &[String], req: &Request) -> (Verdict, Verdict) {
        let r = rules(lines);
        let prog = Libvirt.compile(&r).unwrap();
        (
            Policy::of(&rules(lines)).decide(req),
            Emulator::new(&prog).unwrap().run(req).unwrap(),
        )
    }

    /// The type-less key: a char and a block hostdev at the same numbers
    /// leave the model's program granting only the later one.
    #[test]
    fn shared_numbers_lose_the_earlier_type() {
        let steps = vec![Step::Start(vec![
            Hostdev::new(C, 240, 1),
            Hostdev::new(B, 240, 1),
        ])];
        let req = Request::parse("c 240:1 r").unwrap();
        let meant = Policy::of(&rules(&meaning(&steps))).decide(&req);
        let (v1, model) = verdicts(&calls(&steps), &req);
        assert_eq!(
            (meant, v1, model),
            (Verdict::Allow, Verdict::Allow, Verdict::Deny)
        );
    }

    /// Each driven reproducer shows its finding in devcg's model: v1 and
    /// the model answer as the finding says; every other one has a reason.
    #[test]
    fn driven_reproducers_show_their_finding() {
        let mut drivable = 0;
        for r in crate::findings::LIBVIRT {
            match driven(r.name, 240) {
                Ok((steps, request)) => {
                    drivable += 1;
                    let req = Request::parse(&request).unwrap();
                    let (v1, model) = verdicts(&calls(&steps), &req);
                    assert_eq!((v1, Some(model)), (r.oracle, r.runtime), "{}", r.name);
                    // What the domain means agrees with v1 on the calls.
                    assert_eq!(Policy::of(&rules(&meaning(&steps))).decide(&req), v1);
                }
                Err(why) => assert!(why.starts_with("not drivable: "), "{}", r.name),
            }
        }
        assert_eq!(drivable, 2);
    }

    fn any_steps() -> impl proptest::strategy::Strategy<Value = Vec<Step>> {
        any::<u64>().prop_map(|seed| draw(&mut Seeded::new(seed), &[240, 241]))
    }

    proptest! {
        /// The calls mean, in v1, what the XML means: libvirt's calls are
        /// the right ones; only their translation into a map may differ.
        #[test]
        fn calls_mean_what_the_domain_means(steps in any_steps(), minor in 0u32..9, b in any::<bool>(), acc in 0u8..8) {
            let ty = if b { DeviceType::Block } else { DeviceType::Char };
            for major in [1, 5, 10, 136, 240, 241] {
                let req = Request::new(ty, major, minor, Access(acc));
                prop_assert_eq!(
                    Policy::of(&rules(&calls(&steps))).decide(&req),
                    Policy::of(&rules(&meaning(&steps))).decide(&req),
                    "{:?} {}", steps, req
                );
            }
        }

        /// Without shared numbers the model's program enforces the meaning.
        #[test]
        fn distinct_numbers_model_is_exact(steps in any_steps(), minor in 0u32..9, b in any::<bool>(), acc in 0u8..8) {
            let all: Vec<Hostdev> = steps.iter().flat_map(|s| match s {
                Step::Start(h) => h.clone(),
                Step::Attach(h) | Step::Detach(h) => vec![*h],
            }).collect();
            let shared = all.iter().any(|h| all.iter().any(|g| g.kind != h.kind && (g.major, g.minor) == (h.major, h.minor)));
            prop_assume!(!shared);
            let ty = if b { DeviceType::Block } else { DeviceType::Char };
            for major in [1, 5, 136, 240, 241] {
                let req = Request::new(ty, major, minor, Access(acc));
                let (_, model) = verdicts(&calls(&steps), &req);
                prop_assert_eq!(model, Policy::of(&rules(&meaning(&steps))).decide(&req), "{:?} {}", steps, req);
            }
        }

        /// Draws are reproducible and well formed: a start first, no
        /// attach of a present hostdev, no detach of an absent one.
        #[test]
        fn draws_are_well_formed(seed in any::<u64>()) {
            let steps = draw(&mut Seeded::new(seed), &[240, 241]);
            prop_assert_eq!(&steps, &draw(&mut Seeded::new(seed), &[240, 241]));
            prop_assert!(matches!(steps[0], Step::Start(_)));
            for i in 1..steps.len() {
                let before = present(&steps[..i]);
                match steps[i] {
                    Step::Attach(h) => prop_assert!(!before.contains(&h)),
                    Step::Detach(h) => prop_assert!(before.contains(&h)),
                    Step::Start(_) => prop_assert!(false, "a second start"),
                }
            }
        }
    }
}
