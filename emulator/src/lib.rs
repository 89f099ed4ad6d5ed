//! Runs `BPF_PROG_TYPE_CGROUP_DEVICE` programs on rbpf's interpreter and
//! gives the kernel's verdict.
//!
//! rbpf is a component to be checked, not ground truth: it differs from the
//! kernel in several places (see `rewrite` and the `gap_*` tests). So an
//! [`Emulator`] first checks the program with a static verifier of its own
//! (`decode`: structure as the kernel's check_subprogs/check_cfg and field
//! checks; `verify`: abstract interpretation over register and stack
//! types), then rewrites it so that rbpf's interpreter computes exactly
//! what the kernel would (`rewrite`), once, in [`Emulator::new`]. Runs then
//! only copy the 12-byte context and interpret.
//!
//! Anything the emulator cannot run faithfully is refused with a typed
//! [`EmuError`]; refusing a program the kernel would load is allowed, a
//! wrong verdict is not. Programs rbpf cannot run even rewritten (signed
//! division, atomics, bpf-to-bpf calls, `may_goto`, helpers beyond the map
//! ones, values only a privileged loader may compute, more than 32,767
//! slots) run on the emulator's own interpreter instead (`step`), which
//! also reports a verdict that depends on a nondeterministic value as
//! [`EmuError::Nondeterministic`]. What runs where: docs/emulator.md.
//!
//! Where rbpf 0.4.1's interpreter and the kernel part (tests in
//! `tests/gaps.rs`):
//!
//! | gap | handling | test |
//! |---|---|---|
//! | 64-bit JEQ/JNE/JGT/JGE/JLT/JLE zero-extend a negative imm | rewritten into two signed jumps | `gap_jmp64_imm_is_sign_extended` |
//! | `w %= 0` keeps the upper half | `w = w` appended | `gap_mod32_by_zero_zero_extends` |
//! | `-i64::MIN` panics with overflow checks | `x ^= -1; x += 1` | `gap_neg64_of_min_does_not_panic` |
//! | no instruction budget | loops unrolled into copies, then `Budget`; cycles without exit refused | `gap_loops_are_bounded` |
//! | `off` ignored: sdiv/smod, movsx; unknown v4 opcodes panic | movsx/ldsx/bswap/gotol lowered, sdiv/smod and atomics on the own interpreter | `gap_cpu_v4_and_other_unemulated_instructions_are_lowered_or_stepped` |
//! | `unreachable!()` on bad END widths, unknown opcodes, running off the end | refused statically | `gap_rbpf_panics_become_errors`, `gap_falling_off_the_end_is_refused` |
//! | jump targets computed in i16 | programs over 32767 slots on the own interpreter | `gap_rbpf_jump_arithmetic_is_i16` |
//! | allowed memory checked at its first byte only | value bounds checked statically | `gap_map_value_bounds_are_static` |
//! | map-fd `lddw` loaded as a plain index | relocated to a helper handle | `gap_map_fd_loads_are_relocated` |
//! | registers zeroed, r1-r5 kept after calls, stack zeroed | register reads refused; stack reads nondeterministic (own interpreter) | `gap_uninitialized_register_read_is_refused`, `gap_helper_call_clobbers_r1_to_r5`, `gap_stack_alignment_and_initialization` |
//! | context writable, any return value, reserved fields, div-by-0 / wide-shift immediates, misaligned stack, dead code, LD_ABS | refused as the kernel does | `gap_context_is_read_only`, `gap_return_value_must_be_0_or_1`, `gap_reserved_fields_are_refused`, `gap_div_by_zero_and_wide_shift_immediates_are_refused`, `gap_kernel_only_structural_rules` |
//!
//! Checked and equal (kept as `same_semantics_as_the_kernel`): 32-bit ALU
//! zero-extension, ALU32 MOV, ARSH, shifts by registers (masked), div/mod
//! by zero registers other than mod32, sign-extended 64-bit ALU
//! immediates, JSET and signed jumps, JMP32, byte order, narrow loads.

mod decode;
mod error;
mod maps;
mod rewrite;
mod scalar;
mod step;
pub mod symbolic;
mod verify;

use devcg_engine::insn::{decode_all, DecodeError, Program};
use devcg_engine::{Request, Verdict};
use rbpf::EbpfVmRaw;

/// A helper as rbpf calls it: five arguments in, r0 out.
pub use rbpf::ebpf::Helper;

pub use error::EmuError;
pub use step::Caller;

use crate::decode::Op;
use crate::maps::Maps;
use crate::rewrite::{BUDGET_TAG, TAG_MASK};

/// rbpf's VM over the rewritten program.
struct Vm(EbpfVmRaw<'static>);

// SAFETY: EbpfVmRaw is neither Send nor Sync only because its stack-usage
// verifier can hold a `Box<dyn Any>` (set by set_stack_usage_calculator,
// never called here: it stays None) and because of JIT memory (never
// compiled here). What remains is plain data: the program slice, hash maps
// of fn pointers and address ranges. `execute_program` takes `&self`, has
// no interior mutability and allocates its own stack per call.
unsafe impl Send for Vm {}
unsafe impl Sync for Vm {}

/// Draws tried when a verdict depends on a nondeterministic value.
const DRAWS: u64 = 32;

/// A verified program, ready to answer requests: rewritten for rbpf, or
/// (see `step`) run by the emulator's own interpreter.
pub struct Emulator {
    /// Borrows `code`: declared first so that it is dropped first. `None`:
    /// the program runs on the emulator's own interpreter.
    vm: Option<Vm>,
    /// The rewritten program (empty for the own interpreter). Never
    /// mutated or moved out of its heap allocation while `vm` exists.
    code: Box<[u8]>,
    /// The decoded program, for the own interpreter.
    ops: Vec<Option<Op>>,
    /// The program's constants, tried as nondeterministic values.
    hints: Vec<u64>,
    maps: Option<Maps>,
    budget: usize,
}

/// One run: the verdict (or why there is none) and what
/// `bpf_trace_printk` printed, one line per call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub verdict: Result<Verdict, EmuError>,
    pub trace: Vec<String>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("slots", &self.ops.len())
            .field("on_rbpf", &self.vm.is_some())
            .field("maps", &self.maps.is_some())
            .field("loop_budget", &self.budget)
            .finish()
    }
}

/// The map helpers, by helper number.
fn map_helpers() -> [(u32, Helper); 3] {
    use devcg_engine::insn::helper;
    [
        (helper::MAP_LOOKUP_ELEM as u32, maps::helper_lookup),
        (helper::MAP_UPDATE_ELEM as u32, maps::helper_update),
        (helper::MAP_DELETE_ELEM as u32, maps::helper_delete),
    ]
}

/// The constants a program compares and computes with (and their 32-bit
/// halves), deduplicated.
fn hints(ops: &[Option<Op>]) -> Vec<u64> {
    let mut out: Vec<u64> = ops
        .iter()
        .flatten()
        .filter_map(|o| match *o {
            Op::Jcond {
                src: decode::Src::Imm(k),
                ..
            }
            | Op::Alu {
                src: decode::Src::Imm(k),
                ..
            } => Some(k as i64 as u64),
            Op::Lddw {
                value, map: None, ..
            } => Some(value),
            _ => None,
        })
        .flat_map(|v| [v, v & 0xffff_ffff, v >> 32])
        .collect();
    out.sort_unstable();
    out.dedup();
    out.truncate(4096);
    out
}

fn rbpf_error(e: std::io::Error) -> EmuError {
    EmuError::Runtime {
        message: e.to_string(),
    }
}

impl Emulator {
    /// Verifies `program` (with its maps) and prepares it to run.
    pub fn new(program: &Program) -> Result<Emulator, EmuError> {
        Emulator::build(program, false)
    }

    /// As [`Emulator::new`], but always on the emulator's own interpreter:
    /// for tests that hold it against rbpf.
    #[doc(hidden)]
    pub fn new_on_own_interpreter(program: &Program) -> Result<Emulator, EmuError> {
        Emulator::build(program, true)
    }

    fn build(program: &Program, force_step: bool) -> Result<Emulator, EmuError> {
        let ops = decode::decode(&program.insns, program.maps.len(), true)?;
        let facts = verify::verify(&ops, &program.maps)?;
        let maps = if program.maps.is_empty() {
            None
        } else {
            Some(Maps::new(&program.maps, &facts)?)
        };
        let rewritten = match force_step || facts.needs_step || rewrite::check_size(&ops).is_err() {
            true => None,
            false => rewrite::rewrite(&program.insns, &ops, &facts).ok(),
        };
        let Some(rewritten) = rewritten else {
            return Ok(Emulator {
                vm: None,
                code: Box::new([]),
                hints: hints(&ops),
                ops,
                maps,
                budget: if facts.loop_edges.is_empty() {
                    0
                } else {
                    step::STEP_BUDGET
                },
            });
        };
        let code: Box<[u8]> = devcg_engine::insn::encode_all(&rewritten.insns).into_boxed_slice();
        // SAFETY: the slice points into `code`'s heap allocation, which the
        // Emulator owns, never mutates, and frees only after `vm` (field
        // order). Moving the Box into the struct does not move the bytes.
        // The 'static lifetime never escapes: `vm` is private and runs only
        // borrow it for the length of a call.
        let prog: &'static [u8] = unsafe { std::slice::from_raw_parts(code.as_ptr(), code.len()) };
        let mut vm = EbpfVmRaw::new(None).map_err(rbpf_error)?;
        vm.set_verifier(rewrite::rbpf_verifier)
            .map_err(rbpf_error)?;
        vm.set_program(prog).map_err(rbpf_error)?;
        if let Some(m) = &maps {
            for r in m.ranges() {
                vm.register_allowed_memory(r.clone());
            }
            for (number, f) in map_helpers() {
                vm.register_helper(number, f).map_err(rbpf_error)?;
            }
        }
        Ok(Emulator {
            vm: Some(Vm(vm)),
            code,
            hints: Vec::new(),
            ops,
            maps,
            budget: rewritten.copies - 1,
        })
    }

    /// Raw `struct bpf_insn` bytes, without maps.
    pub fn from_bytes(bytes: &[u8]) -> Result<Emulator, EmuError> {
        let insns = decode_all(bytes).map_err(|e| match e {
            DecodeError::Empty => EmuError::Empty,
            DecodeError::Length(len) => EmuError::Length { len },
        })?;
        Emulator::new(&Program::new(insns))
    }

    /// The verdict on `req` from a caller the request does not describe:
    /// a verdict that depends on the caller's uid, gid or cgroup id, or on
    /// another nondeterministic value, is [`EmuError::Nondeterministic`].
    pub fn run(&self, req: &Request) -> Result<Verdict, EmuError> {
        self.run_ctx(&req.to_ctx())
    }

    /// Runs on a raw `struct bpf_cgroup_dev_ctx`.
    pub fn run_ctx(&self, ctx: &[u8; 12]) -> Result<Verdict, EmuError> {
        self.run_ctx_as(ctx, &Caller::default()).verdict
    }

    /// The verdict on `req` from `caller`, with the trace output.
    pub fn run_as(&self, req: &Request, caller: &Caller) -> Run {
        self.run_ctx_as(&req.to_ctx(), caller)
    }

    /// Whether the program runs on rbpf (else on the emulator's own
    /// interpreter, see [`Emulator::rewritten_bytes`]).
    pub fn runs_on_rbpf(&self) -> bool {
        self.vm.is_some()
    }

    pub fn run_ctx_as(&self, ctx: &[u8; 12], caller: &Caller) -> Run {
        let Some(vm) = &self.vm else {
            return self.with_maps(|| self.step(ctx, caller));
        };
        let mut mem = *ctx;
        let verdict = self
            .with_maps(|| vm.0.execute_program(&mut mem))
            .map_err(rbpf_error)
            .and_then(|ret| self.verdict(ret));
        Run {
            verdict,
            trace: Vec::new(),
        }
    }

    /// One run on the own interpreter; when the verdict depends on a
    /// nondeterministic value, more draws of those values (maps reset
    /// between runs, as the first run saw them) tell whether it varies.
    fn step(&self, ctx: &[u8; 12], caller: &Caller) -> Run {
        let ranges: &[std::ops::Range<u64>] = self.maps.as_ref().map_or(&[], |m| m.ranges());
        let mut first = step::Machine::new(&self.ops, ranges, caller, ctx, 0, &self.hints);
        let outcome = first.run();
        let trace = std::mem::take(&mut first.trace);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                return Run {
                    verdict: Err(e),
                    trace,
                }
            }
        };
        if outcome.taint == 0 {
            return Run {
                verdict: self.verdict(outcome.r0),
                trace,
            };
        }
        let mut sources = outcome.taint;
        let (mut allows, mut denies) = (false, false);
        let mut note = |r0: u64| match r0 {
            0 => denies = true,
            1 => allows = true,
            _ => {}
        };
        note(outcome.r0);
        for seed in 1..DRAWS {
            if let Some(m) = &self.maps {
                m.reset_active();
            }
            let mut again = step::Machine::new(&self.ops, ranges, caller, ctx, seed, &self.hints);
            match again.run() {
                Ok(o) => {
                    sources |= o.taint;
                    note(o.r0);
                }
                Err(e) => {
                    return Run {
                        verdict: Err(e),
                        trace,
                    }
                }
            }
        }
        Run {
            verdict: Err(EmuError::Nondeterministic {
                sources: step::taint::describe(sources),
                allows,
                denies,
                draws: DRAWS as usize,
            }),
            trace,
        }
    }

    fn verdict(&self, ret: u64) -> Result<Verdict, EmuError> {
        match ret {
            0 => Ok(Verdict::Deny),
            1 => Ok(Verdict::Allow),
            v if v & TAG_MASK == BUDGET_TAG => Err(EmuError::Budget {
                insn: (v & !TAG_MASK) as usize,
                budget: self.budget,
            }),
            // The verifier proved r0 in [0, 1]: unreachable, but never a verdict.
            value => Err(EmuError::BadReturn { value }),
        }
    }

    /// How many back-edges one run may take before [`EmuError::Budget`]
    /// (0 for loop-free programs).
    pub fn loop_budget(&self) -> usize {
        self.budget
    }

    /// The program rbpf runs (rewritten, map loads relocated), for
    /// inspection or for running it elsewhere (e.g. rbpf's JIT). Empty when
    /// the program runs on the emulator's own interpreter.
    pub fn rewritten_bytes(&self) -> &[u8] {
        &self.code
    }

    /// The helpers [`Emulator::rewritten_bytes`] calls, by helper number,
    /// for an executor that runs those bytes itself (e.g. rbpf's JIT): they
    /// act on this emulator's maps while [`Emulator::with_maps`] runs. Empty
    /// for a program without maps.
    pub fn helpers(&self) -> Vec<(u32, Helper)> {
        match (&self.maps, &self.vm) {
            (Some(_), Some(_)) => map_helpers().to_vec(),
            _ => Vec::new(),
        }
    }

    /// Runs `f` with this emulator's maps, reset to their loaded contents,
    /// published to [`Emulator::helpers`] on this thread, as a run of the
    /// interpreter has them.
    pub fn with_maps<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.maps {
            None => f(),
            Some(maps) => maps.with_active(f),
        }
    }
}
