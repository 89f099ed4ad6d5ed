//! Helpers shared by the kernel test binaries.
#![allow(dead_code)] // each binary uses its own subset

use devcg_engine::asm::Asm;
use devcg_engine::Program;
use devcg_kernel::v2::{self, Scratch};

/// A scratch cgroup2 directory, or `None` after one line saying what is
/// missing (root, cgroup2, CAP_BPF).
pub fn scratch_or_skip() -> Option<Scratch> {
    if let Some(why) = v2::skip_reason() {
        println!("{why}");
        return None;
    }
    Some(Scratch::new().expect("scratch").expect("cgroup2 mount"))
}

/// A program that returns `v` for every request.
pub fn ret(v: i32) -> Program {
    let mut a = Asm::new();
    a.ret(v);
    Program::new(a.finish().unwrap())
}
