//! The differential, pure: what a program answers against what the rules
//! mean. Sampled runs ([`sampled`]) draw random rule lists and requests
//! ([`gen`]) and shrink a divergence ([`shrink`]) to a
//! [`counterexample::Counterexample`]; exhaustive runs ([`exhaustive`])
//! decide one request per equivalence class; [`audit`] decides what
//! programs read back from a live cgroup let through. [`programs`] draws
//! random device programs for checking the emulator itself. No syscalls:
//! the CLI, the kernel layer and the benches all build on it.

pub mod audit;
pub mod counterexample;
pub mod exhaustive;
pub mod findings;
pub mod gen;
pub mod libvirt_domains;
mod parallel;
pub mod programs;
pub mod rng;
pub mod sampled;
pub mod shrink;
pub mod systemd_units;
