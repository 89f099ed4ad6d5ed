//! The userspace executors: rbpf's interpreter (through the emulator) and
//! rbpf's JIT on the bytes the emulator runs.

use std::panic::AssertUnwindSafe;

use devcg_emulator::Emulator;
use devcg_engine::{Access, DeviceType, Program, Request, Verdict};
use rbpf::EbpfVmRaw;
use thiserror::Error;

use crate::workload::Rng;

/// Where a decision is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Executor {
    /// rbpf's interpreter through `Emulator::run`.
    Interp,
    /// rbpf 0.4.1's x86-64 JIT on `Emulator::rewritten_bytes`.
    Jit,
    /// The running kernel: `open()` from a process in a cgroup with the
    /// program attached, minus the same open without it.
    Kernel,
}

impl Executor {
    pub const ALL: [Executor; 3] = [Executor::Interp, Executor::Jit, Executor::Kernel];

    pub fn name(self) -> &'static str {
        match self {
            Executor::Interp => "rbpf interpreter",
            Executor::Jit => "rbpf JIT",
            Executor::Kernel => "kernel",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Executor::Interp => "interp",
            Executor::Jit => "jit",
            Executor::Kernel => "kernel",
        }
    }
}

/// Why an executor cannot run a program.
#[derive(Debug, Error)]
pub enum JitError {
    #[error("rbpf's JIT writes machine code into one 4 KiB page; this program's code does not fit ({slots} slots)")]
    CodeTooLarge { slots: usize },
    #[error("rbpf's JIT refused the program: {0}")]
    Compile(String),
    #[error("rbpf's JIT panicked: {0}")]
    Panic(String),
    #[error("the JIT answers {jit} where the interpreter answers {interp} for {request}")]
    Disagrees {
        request: Request,
        jit: String,
        interp: String,
    },
    #[error("the JIT returned {0}, not 0 or 1")]
    BadReturn(u64),
    #[error("the JIT could not run: {0}")]
    Run(String),
}

/// The emulator already verified the program (a stricter verifier than
/// rbpf's); rbpf's own would only re-check structure.
fn trust(_: &[u8]) -> Result<(), std::io::Error> {
    Ok(())
}

/// Runs `f`, turning a panic into its message without printing it.
fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string())
    })
}

/// rbpf 0.4.1's JIT calls helpers with the stack 8 bytes off the 16-byte
/// alignment the x86-64 ABI promises, and Rust code that spills SSE
/// registers then faults (seen: `movdqa` in the emulator's map lookup). So
/// the JIT calls each helper through a trampoline that realigns the stack.
mod realign {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use devcg_emulator::Helper;

    /// Helper numbers 1..=3 (map lookup, update, delete): the functions the
    /// trampolines call. Every emulator hands out the same three.
    static TARGETS: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

    type Raw = extern "sysv64" fn(u64, u64, u64, u64, u64) -> u64;

    macro_rules! trampoline {
        ($name:ident, $slot:expr) => {
            #[unsafe(naked)]
            extern "sysv64" fn $name(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
                // The arguments stay in rdi..r8; rbp keeps the caller's rsp.
                core::arch::naked_asm!(
                    "push rbp",
                    "mov rbp, rsp",
                    "and rsp, -16",
                    "call qword ptr [rip + {targets} + {off}]",
                    "mov rsp, rbp",
                    "pop rbp",
                    "ret",
                    targets = sym TARGETS,
                    off = const $slot * 8,
                )
            }
        };
    }
    trampoline!(slot0, 0);
    trampoline!(slot1, 1);
    trampoline!(slot2, 2);

    /// What the JIT should call for helper `number`, implemented by `f`.
    pub fn trampoline(number: u32, f: Helper) -> Result<Helper, String> {
        let slot = number
            .checked_sub(1)
            .filter(|&s| s < 3)
            .ok_or_else(|| format!("no trampoline for helper {number}"))?
            as usize;
        let target = f as usize;
        let prev = TARGETS[slot].swap(target, Ordering::SeqCst);
        if prev != 0 && prev != target {
            return Err(format!("helper {number} has two implementations"));
        }
        let raw: Raw = [slot0 as Raw, slot1, slot2][slot];
        // SAFETY: the JIT only takes the address and calls it with the
        // five arguments in rdi, rsi, rdx, rcx, r8 and the result in rax,
        // which is what the trampoline passes on to `f` and back.
        Ok(unsafe { std::mem::transmute::<Raw, Helper>(raw) })
    }
}

/// A program compiled by rbpf's JIT, borrowing the emulator's bytes.
pub struct Jit<'a> {
    vm: EbpfVmRaw<'a>,
    /// Holds the maps the helpers act on.
    emulator: &'a Emulator,
}

impl<'a> Jit<'a> {
    /// Compiles what `emulator` runs. `program` is the emulator's input
    /// (to see whether it uses maps).
    pub fn new(emulator: &'a Emulator, program: &Program) -> Result<Jit<'a>, JitError> {
        if !emulator.runs_on_rbpf() {
            return Err(JitError::Compile(
                "the program runs on the emulator's own interpreter, not on rbpf".into(),
            ));
        }
        let bytes = emulator.rewritten_bytes();
        let compile_err = |e: std::io::Error| JitError::Compile(e.to_string());
        let mut vm = EbpfVmRaw::new(None).map_err(compile_err)?;
        vm.set_verifier(trust).map_err(compile_err)?;
        vm.set_program(bytes).map_err(compile_err)?;
        // The emulator's map helpers, acting on its maps inside `run`.
        let helpers = emulator.helpers();
        if helpers.is_empty() != program.maps.is_empty() {
            return Err(JitError::Compile(
                "the emulator's helpers do not match the program's maps".into(),
            ));
        }
        for (number, f) in helpers {
            let f = realign::trampoline(number, f).map_err(JitError::Compile)?;
            vm.register_helper(number, f).map_err(compile_err)?;
        }
        // rbpf asserts (panics) when its one-page code buffer overflows.
        match quietly(|| vm.jit_compile()) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(compile_err(e)),
            Err(msg) if msg.contains("contents.len()") => {
                return Err(JitError::CodeTooLarge {
                    slots: bytes.len() / 8,
                })
            }
            Err(msg) => return Err(JitError::Panic(msg)),
        }
        Ok(Jit { vm, emulator })
    }

    pub fn run(&self, req: &Request) -> Result<Verdict, JitError> {
        let mut ctx = req.to_ctx();
        // SAFETY: the program passed the emulator's verifier: context reads
        // in bounds of the 12-byte `ctx` it was verified for, and map values
        // within what the emulator's helpers return, which act on its maps
        // published by `with_maps` for the call.
        let ret = self
            .emulator
            .with_maps(|| unsafe { self.vm.execute_program_jit(&mut ctx) })
            .map_err(|e| JitError::Run(e.to_string()))?;
        match ret {
            0 => Ok(Verdict::Deny),
            1 => Ok(Verdict::Allow),
            v => Err(JitError::BadReturn(v)),
        }
    }

    /// Checks the JIT against the interpreter on `requests` and on random
    /// requests around the numbers they name: a program that decides
    /// differently is not timed as if it were the same program.
    pub fn cross_check(&self, emulator: &Emulator, requests: &[Request]) -> Result<(), JitError> {
        let mut rng = Rng::new(requests.len() as u64);
        let mut all = requests.to_vec();
        for r in requests {
            for _ in 0..16 {
                let ty = if rng.below(2) == 0 {
                    DeviceType::Char
                } else {
                    DeviceType::Block
                };
                let major = r.major.wrapping_add(rng.below(3) as u32).wrapping_sub(1);
                let minor = r.minor.wrapping_add(rng.below(3) as u32).wrapping_sub(1);
                all.push(Request::new(ty, major, minor, Access(rng.below(8) as u8)));
            }
        }
        for req in &all {
            let interp = emulator.run(req).map_err(|e| e.to_string());
            let jit = self.run(req).map_err(|e| e.to_string());
            if interp != jit {
                let show = |r: &Result<Verdict, String>| match r {
                    Ok(v) => v.to_string(),
                    Err(e) => format!("error ({e})"),
                };
                return Err(JitError::Disagrees {
                    request: *req,
                    jit: show(&jit),
                    interp: show(&interp),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{ListKind, Workload, SEED};
    use devcg_engine::strategy;

    fn compiled(name: &str, n: usize) -> (Workload, Program) {
        let w = Workload::new(ListKind::Allow, n, SEED, &|_, _| false).unwrap();
        let p = strategy::by_name(name).unwrap().compile(&w.rules).unwrap();
        (w, p)
    }

    #[test]
    fn jit_agrees_with_the_interpreter() {
        // map and libvirt call the emulator's map helpers.
        for name in ["linear", "tree", "map", "libvirt"] {
            let (w, p) = compiled(name, 10);
            let emu = Emulator::new(&p).unwrap();
            let jit = Jit::new(&emu, &p).unwrap();
            jit.cross_check(&emu, &[w.matching, w.no_match]).unwrap();
            assert_eq!(jit.run(&w.matching).unwrap(), Verdict::Allow);
            assert_eq!(jit.run(&w.no_match).unwrap(), Verdict::Deny);
        }
    }

    #[test]
    fn jit_limits_are_reasons_not_panics() {
        let (_, p) = compiled("linear", 1_000);
        let emu = Emulator::new(&p).unwrap();
        assert!(matches!(
            Jit::new(&emu, &p),
            Err(JitError::CodeTooLarge { .. })
        ));
    }
}
