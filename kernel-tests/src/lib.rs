//! devcg's effectful edge: the real kernel, driven from userspace.
//!
//! * [`bpf`]: bpf(2) itself (load, maps, attach in every mode, links, pins,
//!   queries);
//! * [`v1`] and [`v2`]: scratch cgroups on the v1 devices hierarchy and on
//!   cgroup2, with guards, stale cleanup and probes ([`probe`]);
//! * [`differential`]: oracle, emulator and kernel on random rule lists;
//! * [`fidelity`]: the emulator against the kernel on random programs;
//! * [`semantics`]: named checks of what the kernel does;
//! * [`objects`]: BPF ELF objects loaded and attached by bpftool.

pub mod audit;
pub mod bpf;
pub mod child;
pub mod device;
pub mod differential;
mod error;
pub mod fidelity;
pub mod gen;
pub mod libvirt;
pub mod mounts;
pub mod objects;
pub mod owned;
pub mod probe;
pub mod runtime;
pub mod semantics;
pub mod sys;
pub mod systemd;
pub mod v1;
pub mod v2;

pub use error::KernelError;
