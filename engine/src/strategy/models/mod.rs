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
