//! devcg's effectful edge: the real kernel, driven from userspace.

pub mod bpf;
pub mod v1;
