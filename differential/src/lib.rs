//! The differential, pure: what a program answers against what the rules
//! mean. Sampled runs ([`verify`]) draw random rule lists and requests
//! ([`gen`]) and shrink a divergence to a small counterexample; exhaustive
//! runs ([`exhaustive`]) decide one request per equivalence class. No
//! syscalls: the CLI, the kernel layer and the benches all build on it.

pub mod exhaustive;
pub mod gen;
pub mod rng;
pub mod verify;
