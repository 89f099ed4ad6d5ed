//! devcg's benchmarks: what one decision costs against the rule count, for
//! every strategy, in rbpf's interpreter, rbpf's JIT and the real kernel;
//! plus the differential's throughput and the exhaustive mode's time.
//!
//! The pieces are shared by the criterion benches (`cargo bench -p
//! devcg-benches`) and the `report` binary that writes BENCHMARKS.md.

pub mod exec;
pub mod kernel;
pub mod measure;
pub mod report;
pub mod suite;
pub mod workload;
