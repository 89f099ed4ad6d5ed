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

/// A runtime as it really attaches its program: the model plus the
/// runtime's own default devices (`runc+defaults`, `crun+defaults` for the
/// upstream crun, `youki+defaults`). Not in [`all`]: the defaults'
/// divergences are by design (docs/findings.md, R7, C7, Y7), and every
/// table would repeat them.
pub struct WithDefaults {
    name: &'static str,
    summary: &'static str,
    compile: fn(&[crate::Rule]) -> Result<crate::Program, crate::strategy::CompileError>,
}

impl Strategy for WithDefaults {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn is_own(&self) -> bool {
        false
    }
    fn compile(
        &self,
        rules: &[crate::Rule],
    ) -> Result<crate::Program, crate::strategy::CompileError> {
        (self.compile)(rules)
    }
}

/// The models with their runtime's defaults, by name.
pub fn with_defaults() -> Vec<Box<dyn Strategy>> {
    vec![
        Box::new(WithDefaults {
            name: "runc+defaults",
            summary: "runc as it attaches the program: the model plus specconv's default devices",
            compile: runc::compile_with_defaults,
        }),
        Box::new(WithDefaults {
            name: "crun+defaults",
            summary: "crun (upstream) as it attaches the program: default_devices[] first",
            compile: crun::compile_with_defaults,
        }),
        Box::new(WithDefaults {
            name: "youki+defaults",
            summary: "youki as it attaches the program: the model plus libcgroups' default devices",
            compile: youki::compile_with_defaults,
        }),
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
