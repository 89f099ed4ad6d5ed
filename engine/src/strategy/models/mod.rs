//! Faithful models of other runtimes' device-program generators. Each takes
//! the shared rule list and produces what that project would attach, or the
//! error it would return. They are judged, not trusted: divergences from the
//! oracle are findings (docs/findings.md).

use crate::strategy::Strategy;

mod common;
pub mod crun;
pub mod libvirt;
pub mod lxc;
pub mod runc;
pub mod systemd;
pub mod youki;

pub fn all() -> Vec<Box<dyn Strategy>> {
    vec![
        Box::new(runc::Runc),
        Box::new(crun::Crun),
        Box::new(youki::Youki),
        Box::new(lxc::Lxc),
        Box::new(systemd::Systemd),
        Box::new(libvirt::Libvirt),
    ]
}

/// The `linux.resources.devices` entries a runtime reads for `rules`, as
/// JSON (the mapping every model uses: a `*` number is an absent field, a
/// bare `a` is `{"allow": .., "access": "rwm"}`), to hand a real runtime
/// the config a model compiles.
pub fn oci_devices_json(rules: &[crate::Rule]) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = common::oci_devices(rules)
        .into_iter()
        .map(|d| {
            let mut e = serde_json::json!({"allow": d.allow, "access": d.access});
            if d.ty != 'a' {
                e["type"] = d.ty.to_string().into();
            }
            if let Some(major) = d.major {
                e["major"] = major.into();
            }
            if let Some(minor) = d.minor {
                e["minor"] = minor.into();
            }
            e
        })
        .collect();
    serde_json::Value::Array(entries)
}

#[cfg(test)]
mod oci_json_tests {
    use crate::RuleFile;

    #[test]
    fn entries_parse_back_to_the_same_rules() {
        let text = "deny a\nallow c 1:3 rwm\nallow b 8:* r\ndeny c *:5 w\n";
        let rules = RuleFile::parse("r", text).unwrap();
        let json = super::oci_devices_json(&rules);
        let config = serde_json::json!({"linux": {"resources": {"devices": json}}});
        let again = RuleFile::parse("config.json", &config.to_string()).unwrap();
        let show = |r: &[crate::Rule]| r.iter().map(|x| x.parsed).collect::<Vec<_>>();
        assert_eq!(show(&again), show(&rules));
    }
}
