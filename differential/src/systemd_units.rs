//! systemd units for `devcg runtime systemd`, pure: random unit
//! configurations (`DevicePolicy=`, `DeviceAllow=`), their unit-file lines,
//! and what the settings are documented to mean as a v1 rule list
//! (docs/systemd.md gives the sources). The effects (starting units,
//! reading their programs) are in `devcg_kernel::systemd`.

use devcg_engine::strategy::models::systemd::{DeviceAllow, DevicePolicy, Host, STATIC_NODES};
use devcg_engine::{Access, CompileError, DeviceType, Rule, RuleKind};
use proptest::prelude::*;

/// One `DeviceAllow=` line as written: the specifier and the access
/// letters, which may be none (systemd then grants `rwm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub spec: String,
    pub access: Access,
}

/// A unit's device settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitConfig {
    pub policy: DevicePolicy,
    pub entries: Vec<Entry>,
}

pub fn policy_name(p: DevicePolicy) -> &'static str {
    match p {
        DevicePolicy::Auto => "auto",
        DevicePolicy::Closed => "closed",
        DevicePolicy::Strict => "strict",
    }
}

impl UnitConfig {
    /// The unit-file lines (`DevicePolicy=strict`,
    /// `DeviceAllow=/dev/char/1:3 r`).
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("DevicePolicy={}", policy_name(self.policy))];
        for e in &self.entries {
            out.push(if e.access.is_empty() {
                format!("DeviceAllow={}", e.spec)
            } else {
                format!("DeviceAllow={} {}", e.spec, e.access)
            });
        }
        out
    }

    /// A whole service unit running `exec` with these settings.
    pub fn service_file(&self, description: &str, exec: &str) -> String {
        let mut s = format!("[Unit]\nDescription={description}\n\n[Service]\nExecStart={exec}\n");
        for line in self.lines() {
            s.push_str(&line);
            s.push('\n');
        }
        s
    }

    /// The entries as devcg's model takes them.
    pub fn device_allow(&self) -> Vec<DeviceAllow> {
        self.entries
            .iter()
            .map(|e| DeviceAllow::new(e.spec.clone(), e.access))
            .collect()
    }

    /// The unit a v1 rule list becomes (`unit_from_rules`).
    pub fn from_rules(rules: &[Rule]) -> Result<UnitConfig, CompileError> {
        let (policy, allows) = devcg_engine::strategy::models::systemd::unit_from_rules(rules)?;
        Ok(UnitConfig {
            policy,
            entries: allows
                .into_iter()
                .map(|d| Entry {
                    spec: d.path,
                    access: d.permissions,
                })
                .collect(),
        })
    }
}

fn rule(text: String) -> Rule {
    Rule::new(RuleKind::Allow, text).expect("documented rules are valid v1 rules")
}

/// What `spec` with `access` is documented to allow on `host`, as v1
/// allow rules: a node path is the device `stat` finds there (none when
/// there is none), `/dev/char/M:m` and `/dev/block/M:m` that number,
/// `char-*`/`block-*` every device of the type, `char-N` (numeric, from the
/// source: the docs only speak of group names) major N, any other name a
/// glob over the `/proc/devices` groups of that type, each match a major.
/// No letters means `rwm` (from the source; the docs are silent).
pub fn documented_entry(host: &Host, spec: &str, access: Access) -> Vec<Rule> {
    let access = if access.is_empty() {
        Access::ALL
    } else {
        access
    };
    let num = |t: &str| -> Option<u32> {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    let node = |ty: DeviceType, rest: &str| -> Vec<Rule> {
        match rest.split_once(':').map(|(a, b)| (num(a), num(b))) {
            Some((Some(ma), Some(mi))) => {
                vec![rule(format!("{} {ma}:{mi} {access}", ty.as_char()))]
            }
            _ => Vec::new(),
        }
    };
    match spec {
        "/run/systemd/inaccessible/chr" => return node(DeviceType::Char, "0:0"),
        "/run/systemd/inaccessible/blk" => return node(DeviceType::Block, "0:0"),
        _ => {}
    }
    if let Some(rest) = spec.strip_prefix("/dev/char/") {
        return node(DeviceType::Char, rest);
    }
    if let Some(rest) = spec.strip_prefix("/dev/block/") {
        return node(DeviceType::Block, rest);
    }
    if spec.starts_with("/dev/") {
        return host
            .node(spec)
            .map(|(ty, ma, mi)| vec![rule(format!("{} {ma}:{mi} {access}", ty.as_char()))])
            .unwrap_or_default();
    }
    let group = |ty: DeviceType, name: &str| -> Vec<Rule> {
        let t = ty.as_char();
        if name == "*" {
            return vec![rule(format!("{t} *:* {access}"))];
        }
        if let Some(m) = num(name) {
            return vec![rule(format!("{t} {m}:* {access}"))];
        }
        host.majors(ty, name)
            .into_iter()
            .map(|m| rule(format!("{t} {m}:* {access}")))
            .collect()
    };
    if let Some(name) = spec.strip_prefix("char-") {
        return group(DeviceType::Char, name);
    }
    if let Some(name) = spec.strip_prefix("block-") {
        return group(DeviceType::Block, name);
    }
    Vec::new()
}

/// What the unit's settings are documented to mean, as a v1 rule list:
/// nothing (every device) for `auto` without entries; otherwise `deny a`,
/// for `closed` (and `auto` with entries) the standard pseudo devices
/// (the list `bpf_devices_allow_list_static` resolves: the documented
/// null, zero, full, random, urandom, and tty, ptmx, the inaccessible
/// nodes rwm and `char-pts` rw), then every entry.
pub fn documented(host: &Host, config: &UnitConfig) -> Vec<Rule> {
    let entries = !config.entries.is_empty();
    if config.policy == DevicePolicy::Auto && !entries {
        return Vec::new();
    }
    let mut out = vec![Rule::new(RuleKind::Deny, "a").expect("valid")];
    if config.policy == DevicePolicy::Closed || config.policy == DevicePolicy::Auto {
        for node in STATIC_NODES {
            out.extend(documented_entry(host, node, Access::ALL));
        }
        out.extend(documented_entry(
            host,
            "char-pts",
            Access::READ.union(Access::WRITE),
        ));
    }
    for e in &config.entries {
        out.extend(documented_entry(host, &e.spec, e.access));
    }
    out
}

/// What the generator draws specifiers from: the machine's own nodes and
/// groups, and majors without a driver (which the kernel can be asked
/// about safely).
#[derive(Clone, Debug)]
pub struct Pool {
    /// Device node paths that exist (and one or two that do not).
    pub nodes: Vec<String>,
    /// `/proc/devices` names by type, and globs over them.
    pub groups: Vec<(DeviceType, String)>,
    /// Char majors with no driver.
    pub free_majors: Vec<u32>,
}

fn access() -> impl Strategy<Value = Access> {
    (0u8..8).prop_map(Access)
}

/// One `DeviceAllow=` entry drawn from `pool`.
pub fn entry(pool: &Pool) -> BoxedStrategy<Entry> {
    let majors = {
        let mut m = pool.free_majors.clone();
        m.extend([1, 5, 7, 136]);
        m
    };
    let minors = prop_oneof![0u32..4, Just(9u32), 0u32..1 << 20];
    let ty = prop_oneof![Just(DeviceType::Char), Just(DeviceType::Block)];
    let nodes = pool.nodes.clone();
    let groups = pool.groups.clone();
    let spec: BoxedStrategy<String> = prop_oneof![
        3 => prop::sample::select(nodes),
        3 => (ty.clone(), prop::sample::select(majors.clone()), minors).prop_map(|(t, ma, mi)| {
            let dir = if t == DeviceType::Char { "char" } else { "block" };
            format!("/dev/{dir}/{ma}:{mi}")
        }),
        1 => ty.clone().prop_map(|t| format!("{}-*", type_word(t))),
        1 => (ty, prop::sample::select(majors)).prop_map(|(t, m)| format!("{}-{m}", type_word(t))),
        2 => prop::sample::select(groups).prop_map(|(t, n)| format!("{}-{n}", type_word(t))),
    ]
    .boxed();
    (spec, access())
        .prop_map(|(spec, access)| Entry { spec, access })
        .boxed()
}

fn type_word(t: DeviceType) -> &'static str {
    match t {
        DeviceType::Char => "char",
        DeviceType::Block => "block",
    }
}

/// A unit configuration: a policy and 0 to 5 entries from `pool`; in one
/// of four, the last entry repeats an earlier specifier with other access
/// letters (the only way two entries name the same device in v1's sense,
/// which S1 needs).
pub fn configs(pool: &Pool) -> BoxedStrategy<UnitConfig> {
    let policy = prop_oneof![
        Just(DevicePolicy::Auto),
        Just(DevicePolicy::Closed),
        Just(DevicePolicy::Strict)
    ];
    let repeat = prop::option::weighted(0.25, (any::<prop::sample::Index>(), access()));
    (policy, prop::collection::vec(entry(pool), 0..=5), repeat)
        .prop_map(|(policy, mut entries, repeat)| {
            if let (Some((i, access)), 1..=4) = (repeat, entries.len()) {
                let spec = entries[i.index(entries.len())].spec.clone();
                entries.push(Entry { spec, access });
            }
            UnitConfig { policy, entries }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{self, Enforcement};
    use devcg_engine::strategy::models::systemd::compile_unit_on;
    use rstest::rstest;

    fn host() -> Host {
        Host {
            nodes: vec![
                ("/dev/null".into(), DeviceType::Char, 1, 3),
                ("/dev/zero".into(), DeviceType::Char, 1, 5),
                ("/dev/full".into(), DeviceType::Char, 1, 7),
                ("/dev/random".into(), DeviceType::Char, 1, 8),
                ("/dev/urandom".into(), DeviceType::Char, 1, 9),
                ("/dev/tty".into(), DeviceType::Char, 5, 0),
                ("/dev/ptmx".into(), DeviceType::Char, 5, 2),
                ("/dev/vda".into(), DeviceType::Block, 254, 0),
            ],
            groups: vec![
                (DeviceType::Char, 4, "tty".into()),
                (DeviceType::Char, 4, "ttyS".into()),
                (DeviceType::Char, 5, "/dev/tty".into()),
                (DeviceType::Char, 136, "pts".into()),
                (DeviceType::Block, 7, "loop".into()),
            ],
            complete: true,
        }
    }

    fn pool() -> Pool {
        Pool {
            nodes: vec!["/dev/null".into(), "/dev/vda".into(), "/dev/nope".into()],
            groups: vec![
                (DeviceType::Char, "pts".into()),
                (DeviceType::Char, "tty*".into()),
                (DeviceType::Block, "loop".into()),
            ],
            free_majors: vec![200, 201],
        }
    }

    fn texts(rules: &[Rule]) -> Vec<String> {
        rules.iter().map(|r| r.to_string()).collect()
    }

    #[rstest]
    #[case("/dev/null", 2, &["allow c 1:3 r"])]
    #[case("/dev/vda", 0, &["allow b 254:0 rwm"])]
    #[case("/dev/nope", 6, &[])]
    #[case("/dev/char/200:7", 4, &["allow c 200:7 w"])]
    #[case("/dev/block/8:0", 1, &["allow b 8:0 m"])]
    #[case("char-*", 6, &["allow c *:* rw"])]
    #[case("block-201", 2, &["allow b 201:* r"])]
    #[case("char-tty*", 2, &["allow c 4:* r", "allow c 4:* r"])]
    #[case("char-pts", 6, &["allow c 136:* rw"])]
    #[case("block-pts", 6, &[])]
    fn entries_mean_what_the_docs_say(
        #[case] spec: &str,
        #[case] access: u8,
        #[case] want: &[&str],
    ) {
        assert_eq!(
            texts(&documented_entry(&host(), spec, Access(access))),
            want
        );
    }

    #[test]
    fn policies_mean_what_the_docs_say() {
        let unit = |policy, entries: Vec<Entry>| UnitConfig { policy, entries };
        let null = Entry {
            spec: "/dev/char/200:1".into(),
            access: Access::READ,
        };
        assert!(documented(&host(), &unit(DevicePolicy::Auto, vec![])).is_empty());
        assert_eq!(
            texts(&documented(&host(), &unit(DevicePolicy::Strict, vec![]))),
            ["deny a"]
        );
        let strict = documented(&host(), &unit(DevicePolicy::Strict, vec![null.clone()]));
        assert_eq!(texts(&strict), ["deny a", "allow c 200:1 r"]);
        let closed = documented(&host(), &unit(DevicePolicy::Closed, vec![]));
        // deny a, seven nodes, two inaccessible ones, pts.
        assert_eq!(closed.len(), 11);
        assert_eq!(closed.last().unwrap().to_string(), "allow c 136:* rw");
        let auto = documented(&host(), &unit(DevicePolicy::Auto, vec![null]));
        assert_eq!(auto.len(), 12);
    }

    /// The generator repeats a specifier now and then (S1 needs it).
    #[test]
    fn some_drawn_units_name_one_device_twice() {
        let mut draw = crate::gen::Draw::new(1);
        let strategy = configs(&pool());
        let repeats = (0..200)
            .map(|_| draw.value(&strategy))
            .filter(|c| {
                let mut specs: Vec<&str> = c.entries.iter().map(|e| e.spec.as_str()).collect();
                specs.sort_unstable();
                specs.windows(2).any(|w| w[0] == w[1])
            })
            .count();
        assert!((20..=120).contains(&repeats), "{repeats} of 200");
    }

    #[test]
    fn lines_and_unit_file() {
        let c = UnitConfig {
            policy: DevicePolicy::Closed,
            entries: vec![
                Entry {
                    spec: "/dev/char/1:3".into(),
                    access: Access::READ,
                },
                Entry {
                    spec: "char-pts".into(),
                    access: Access::NONE,
                },
            ],
        };
        assert_eq!(
            c.lines(),
            [
                "DevicePolicy=closed",
                "DeviceAllow=/dev/char/1:3 r",
                "DeviceAllow=char-pts"
            ]
        );
        let file = c.service_file("t", "/bin/sleep infinity");
        assert!(file.contains("[Service]\nExecStart=/bin/sleep infinity\nDevicePolicy=closed\n"));
        assert_eq!(c.device_allow()[1].permissions, Access::ALL);
    }

    fn decide_all(program: &devcg_engine::Program, rules: &[Rule]) -> audit::Audit {
        let e = Enforcement {
            programs: vec![("p".into(), program.clone())],
            v1: None,
        };
        let mut a = audit::audit(&e, rules).unwrap();
        audit::compare(&mut a, rules);
        a
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every drawn unit's lines parse back to its settings, its
        /// documented rules are valid v1 and start with `deny a` unless it
        /// restricts nothing.
        #[test]
        fn drawn_units_are_well_formed(c in configs(&pool())) {
            prop_assert!(c.entries.len() <= 5);
            let lines = c.lines();
            prop_assert_eq!(lines.len(), c.entries.len() + 1);
            for (line, e) in lines[1..].iter().zip(&c.entries) {
                let rest = line.strip_prefix("DeviceAllow=").unwrap();
                let (spec, acc) = rest.split_once(' ').unwrap_or((rest, ""));
                prop_assert_eq!(spec, e.spec.as_str());
                let parsed = if acc.is_empty() { Some(Access::NONE) } else { Access::parse_letters(acc) };
                prop_assert_eq!(parsed, Some(e.access));
            }
            let doc = documented(&host(), &c);
            let restricts = c.policy != DevicePolicy::Auto || !c.entries.is_empty();
            prop_assert_eq!(doc.first().map(|r| r.to_string() == "deny a").unwrap_or(false), restricts);
        }

        /// devcg's model allows everything the documented meaning allows
        /// with one access bit (only multi-bit requests differ: S1), and
        /// nothing it denies.
        #[test]
        fn the_model_differs_from_the_docs_only_on_multi_bit_requests(c in configs(&pool())) {
            let h = host();
            let program = compile_unit_on(&h, c.policy, &c.device_allow()).unwrap();
            let doc = documented(&h, &c);
            let a = decide_all(&program, &doc);
            for d in &a.differences {
                prop_assert!(!d.security, "{:?}: {} {}", c.lines(), d.devices, d.access);
                prop_assert!(d.request_access.bits().count_ones() > 1, "{:?}: {} {}", c.lines(), d.devices, d.access);
            }
        }
    }
}
