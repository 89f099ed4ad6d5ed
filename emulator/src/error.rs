use thiserror::Error;

/// Why a program is refused or a run failed. Instruction indices are slots
/// of the program as given (an `lddw` counts two), as the kernel numbers them.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum EmuError {
    #[error("program is empty")]
    Empty,
    #[error("program is {len} bytes, not a multiple of 8")]
    Length { len: usize },
    #[error("program needs {slots} instruction slots, over the limit of {limit}")]
    TooLarge { slots: usize, limit: usize },
    #[error("instruction {insn}: unknown opcode {code:#04x}")]
    UnknownOpcode { insn: usize, code: u8 },
    #[error("instruction {insn}: {what}")]
    Reserved { insn: usize, what: &'static str },
    #[error("instruction {insn}: {what} is not supported by the emulator")]
    Unsupported { insn: usize, what: String },
    #[error("instruction {insn}: {what} is not allowed in a cgroup device program")]
    NotAllowed { insn: usize, what: &'static str },
    #[error("instruction {insn}: r{reg} is not a register")]
    BadRegister { insn: usize, reg: u8 },
    #[error("instruction {insn}: writes r10, the read-only frame pointer")]
    WriteR10 { insn: usize },
    #[error("instruction {insn}: jumps to {target}, outside the program")]
    JumpOutOfRange { insn: usize, target: i64 },
    #[error("instruction {insn}: jumps to {target}, the middle of an lddw")]
    JumpIntoLddw { insn: usize, target: usize },
    #[error("instruction {insn}: malformed lddw: {what}")]
    BadLddw { insn: usize, what: &'static str },
    #[error("instruction {insn}: execution can run past the end of the program")]
    FallsOffEnd { insn: usize },
    #[error("instruction {insn}: unreachable")]
    Unreachable { insn: usize },
    #[error("instruction {insn}: division by zero immediate")]
    DivByZero { insn: usize },
    #[error("instruction {insn}: shift by {shift} on a {width}-bit operand")]
    BadShift { insn: usize, shift: i32, width: u32 },
    #[error("instruction {insn}: r{reg} is read before it is written")]
    UninitRegister { insn: usize, reg: u8 },
    #[error("instruction {insn}: r{reg} holds different kinds of value on different paths")]
    UnknownValue { insn: usize, reg: u8 },
    #[error("instruction {insn}: context access at offset {off} size {size}: {reason}")]
    CtxAccess {
        insn: usize,
        off: i64,
        size: usize,
        reason: &'static str,
    },
    #[error("instruction {insn}: stack access at r10{off:+} size {size}: {reason}")]
    StackAccess {
        insn: usize,
        off: i64,
        size: usize,
        reason: &'static str,
    },
    #[error("instruction {insn}: access to map {map} value at offset {off} size {size}: {reason}")]
    MapValueAccess {
        insn: usize,
        map: usize,
        off: i64,
        size: usize,
        reason: &'static str,
    },
    #[error("instruction {insn}: r{reg}: {reason}")]
    BadPointer {
        insn: usize,
        reg: u8,
        reason: &'static str,
    },
    #[error("instruction {insn}: r{reg}: {reason}")]
    PointerArithmetic {
        insn: usize,
        reg: u8,
        reason: &'static str,
    },
    #[error("instruction {insn}: comparison involving a pointer (only `if ptr == 0` / `!= 0` is emulated)")]
    PointerComparison { insn: usize },
    #[error("instruction {insn}: r{reg}: {reason}")]
    PointerLeak {
        insn: usize,
        reg: u8,
        reason: &'static str,
    },
    #[error("instruction {insn}: unknown or unsupported helper #{id}")]
    UnknownHelper { insn: usize, id: i32 },
    #[error("instruction {insn}: helper argument r{arg}: {reason}")]
    HelperArg {
        insn: usize,
        arg: u8,
        reason: &'static str,
    },
    #[error("instruction {insn}: map index {index} names no map of the program")]
    BadMapIndex { insn: usize, index: i32 },
    #[error("map {map}: {reason}")]
    BadMap { map: usize, reason: String },
    #[error("instruction {insn}: r0 may be in [{min}, {max}] at exit; the kernel requires 0 or 1")]
    ReturnRange { insn: usize, min: u64, max: u64 },
    #[error("instruction {insn}: the call stack of {frames} frames is too deep")]
    CallDepth { insn: usize, frames: usize },
    #[error("combined stack size of {frames} calls is {bytes}. Too large")]
    StackDepth { frames: usize, bytes: usize },
    #[error("instruction {insn}: jump out of range to {target}: another subprogram")]
    JumpOutOfSubprog { insn: usize, target: usize },
    #[error("instruction {insn}: infinite loop detected")]
    InfiniteLoop { insn: usize },
    #[error("verification does not converge by instruction {insn}")]
    TooComplex { insn: usize },
    #[error("program returned {value:#x}, neither 0 nor 1")]
    BadReturn { value: u64 },
    #[error("instruction {insn}: loop back-edge taken more than the budget of {budget} times")]
    Budget { insn: usize, budget: usize },
    #[error("{}", nondeterministic(sources, *allows, *denies, *draws))]
    Nondeterministic {
        /// The nondeterministic values the verdict may depend on, in words.
        sources: String,
        /// Some draw of them allowed / denied.
        allows: bool,
        denies: bool,
        draws: usize,
    },
    #[error("rbpf: {message}")]
    Runtime { message: String },
}

fn nondeterministic(sources: &str, allows: bool, denies: bool, draws: usize) -> String {
    match (allows, denies) {
        (true, true) => format!(
            "nondeterministic verdict: it depends on {sources} (allows for some values, denies for others)"
        ),
        (a, _) => format!(
            "nondeterministic verdict: it may depend on {sources} ({} in all {draws} draws tried, but not proven constant)",
            if a { "allowed" } else { "denied" }
        ),
    }
}
