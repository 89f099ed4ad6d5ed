//! Mutation fuzzing of every kind of input devcg reads, on the stable
//! toolchain (coverage-guided fuzzers need nightly here): seeds from the
//! repository's own examples and golden files, mutated by a seeded
//! generator (bit flips, byte edits, splices, repeats, interesting
//! numbers), fed to the same library calls the CLI makes. A target passes
//! when no input panics and none takes longer than the limit; a failing
//! input is kept for a regression test.

use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devcg_emulator::Emulator;
use devcg_engine::disasm::disassemble;
use devcg_engine::rules::{RuleFile, RuleSet};
use devcg_engine::{asmtext, elf, strategy, Access, DeviceType, Program, Request};

pub use devcg_differential::rng::Rng;

/// Uniform in `0..n` (n > 0), as an index.
fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

/// One kind of input and the calls that read it.
pub struct Target {
    pub name: &'static str,
    pub seeds: Vec<Vec<u8>>,
    /// Tokens worth splicing in (keywords, numbers at boundaries).
    pub dictionary: &'static [&'static [u8]],
    /// Reads one input; true when it was accepted (parsed, loaded), so
    /// that a run can tell how deep its inputs got.
    pub read: fn(&[u8]) -> bool,
}

const RULE_WORDS: &[&[u8]] = &[
    b"allow ",
    b"deny ",
    b"a",
    b"c ",
    b"b ",
    b"*",
    b":",
    b" rwm",
    b"\n",
    b"#",
    b"4294967295",
    b"4294967296",
    b"18446744073709551616",
    b"2147483648",
    b"4095",
    b"1048575",
    b"\t",
    b"\r\n",
    b"\xff",
    b"",
    b" ",
    b"-1",
    b"0x10",
];
const JSON_WORDS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"allow\":",
    b"\"type\":",
    b"\"major\":",
    b"\"minor\":",
    b"\"access\":",
    b"true",
    b"false",
    b"null",
    b"1e400",
    b"-1",
    b"4294967296",
    b"\"rwm\"",
    b"\"a\"",
    b"\"c\"",
    b",",
    b"\"devices\":",
    b"\"linux\":",
    b"\"resources\":",
    b"\\u0000",
];
const SCRIPT_WORDS: &[&[u8]] = &[
    b"mkdir ",
    b"rmdir ",
    b"allow ",
    b"deny ",
    b"list ",
    b"check ",
    b"a/b",
    b"c 1:3 rw",
    b"a",
    b"b *:* m",
    b"\n",
    b"#",
    b"..",
    b"/",
    b"\xff",
];
const PROGRAM_WORDS: &[&[u8]] = &[
    b"\x95\0\0\0\0\0\0\0",                   // exit
    b"\xb7\0\0\0\x01\0\0\0",                 // r0 = 1
    b"\x05\0\xff\xff\0\0\0\0",               // goto -1
    b"\x18\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0", // lddw
    b"\x85\0\0\0\x01\0\0\0",                 // call 1
    b"\x61\x12\x04\0\0\0\0\0",               // r2 = *(u32 *)(r1 + 4)
    b"\x7b\x1a\xf8\xff\0\0\0\0",             // *(u64 *)(r10 - 8) = r1
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn files(dir: &Path, ext: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, b)| b).collect()
}

/// Programs for the program targets: every strategy's program for every
/// example rule file.
fn programs() -> Vec<Program> {
    let mut out = Vec::new();
    for text in files(&repo().join("examples"), "rules") {
        let Ok(rules) = RuleFile::parse("seed.rules", &String::from_utf8_lossy(&text)) else {
            continue;
        };
        out.extend(
            strategy::all()
                .iter()
                .filter_map(|s| s.compile(&rules).ok()),
        );
    }
    out
}

/// A handful of requests each program is run on.
const REQUESTS: [(DeviceType, u32, u32, u8); 4] = [
    (DeviceType::Char, 1, 3, 6),
    (DeviceType::Block, 8, 0, 1),
    (DeviceType::Char, u32::MAX, 0, 0),
    (DeviceType::Char, 4096, 1 << 20, 7),
];

fn run_program(program: &Program) -> bool {
    let Ok(emulator) = Emulator::new(program) else {
        return false;
    };
    for (ty, major, minor, access) in REQUESTS {
        let _ = emulator.run(&Request::new(ty, major, minor, Access(access)));
    }
    true
}

fn read_rules(name: &str, bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let Ok(rules) = RuleFile::parse(name, text) else {
        return false;
    };
    let _ = RuleSet::from_rules(&rules);
    let policy = devcg_oracle::Policy::of(&rules);
    for (ty, major, minor, access) in REQUESTS {
        let _ = policy.decide(&Request::new(ty, major, minor, Access(access)));
    }
    if let Some(tree) = strategy::by_name("tree") {
        if let Ok(p) = tree.compile(&rules) {
            run_program(&p);
        }
    }
    true
}

/// ELF: section and symbol names, relocation types, sizes at boundaries.
const ELF_WORDS: &[&[u8]] = &[
    b"cgroup/dev\0",
    b".maps\0",
    b"license\0",
    b".devcg.init\0",
    b".BTF\0",
    b"\x7fELF\x02\x01\x01",
    b"\xf7\x00",
    b"\x3e\x00",
    b"\x01\x00\x00\x00",
    b"\x0a\x00\x00\x00",
    b"\xff\xff\xff\xff",
    b"\x00\x00\x00\x80",
    b"\x18\x01",
    b"\x85\x10",
    b"\x9f\xeb\x01\x00",
];
/// Assembly text: the kernel disassembler's tokens.
const ASM_WORDS: &[&[u8]] = &[
    b"map[idx:0]",
    b"map[id:4294967295]",
    b"call bpf_map_lookup_elem#1",
    b"call __htab_map_lookup_elem#5",
    b"goto pc-1",
    b"goto pc+32767",
    b" (18) r1 = ",
    b" (85) ",
    b" (95) exit",
    b"*(u32 *)(r10 -4)",
    b"0xffffffff",
    b"-2147483648",
    b"; map idx:0 m hash key_size 4294967295 value_size 4 max_entries 1\n",
    b"; map idx:0 entry 00 00\n",
    b"\n",
    b": (",
];

/// Every target, with its seeds.
pub fn targets() -> Vec<Target> {
    let examples = repo().join("examples");
    let programs = programs();
    vec![
        Target {
            name: "v1-rules",
            seeds: files(&examples, "rules"),
            dictionary: RULE_WORDS,
            read: |b| read_rules("fuzz.rules", b),
        },
        Target {
            name: "oci-json",
            seeds: files(&examples, "json"),
            dictionary: JSON_WORDS,
            read: |b| read_rules("fuzz.json", b),
        },
        Target {
            name: "oracle-script",
            seeds: files(&repo().join("oracle/tests/golden"), "script"),
            dictionary: SCRIPT_WORDS,
            read: |b| {
                std::str::from_utf8(b).is_ok_and(|text| devcg_oracle::script::run(text).is_ok())
            },
        },
        Target {
            name: "program-raw",
            seeds: programs.iter().map(Program::to_bytes).collect(),
            dictionary: PROGRAM_WORDS,
            read: |b| Program::from_bytes(b).is_ok_and(|p| run_program(&p)),
        },
        Target {
            name: "program-json",
            seeds: programs
                .iter()
                .filter_map(|p| serde_json::to_vec(p).ok())
                .collect(),
            dictionary: JSON_WORDS,
            read: |b| serde_json::from_slice::<Program>(b).is_ok_and(|p| run_program(&p)),
        },
        Target {
            name: "program-elf",
            seeds: programs
                .iter()
                .filter_map(|p| elf::write(p, "devcg_fuzz").ok())
                .collect(),
            dictionary: ELF_WORDS,
            read: |b| elf::read(b, None).is_ok_and(|p| run_program(&p.program)),
        },
        Target {
            name: "program-asm",
            seeds: programs
                .iter()
                .map(|p| (disassemble(&p.insns) + &asmtext::map_lines(&p.maps)).into_bytes())
                .chain(files(&repo().join("examples"), "txt"))
                .collect(),
            dictionary: ASM_WORDS,
            read: |b| {
                std::str::from_utf8(b)
                    .is_ok_and(|t| asmtext::parse(t, vec![]).is_ok_and(|p| run_program(&p)))
            },
        },
    ]
}

/// One mutation of `input` (never longer than `max`).
pub fn mutate(
    rng: &mut Rng,
    input: &[u8],
    seeds: &[Vec<u8>],
    dict: &[&[u8]],
    max: usize,
) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + below(rng, 4) {
        let at = below(rng, out.len() + 1);
        match below(rng, 8) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << below(rng, 8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = rng.next_u64() as u8;
            }
            2 if !out.is_empty() => {
                let end = (at + 1 + below(rng, 16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            3 => {
                let word = dict[below(rng, dict.len())];
                out.splice(at..at, word.iter().copied());
            }
            4 if !seeds.is_empty() => {
                // Splice a piece of another seed.
                let other = &seeds[below(rng, seeds.len())];
                let from = below(rng, other.len() + 1);
                let to = (from + below(rng, 64)).min(other.len());
                out.splice(at..at, other[from..to].iter().copied());
            }
            5 if !out.is_empty() => {
                // Repeat a run: long lines, many entries.
                let end = (at + 1 + below(rng, 32)).min(out.len());
                let run = out[at.min(end)..end].to_vec();
                for _ in 0..1 + below(rng, 8) {
                    out.splice(at..at, run.iter().copied());
                }
            }
            6 => out.insert(at, rng.next_u64() as u8),
            _ => {
                let n = below(rng, out.len() + 1);
                out.truncate(n);
            }
        }
    }
    out.truncate(max);
    out
}

/// What a run of one target found.
#[derive(Debug, Default)]
pub struct Report {
    pub inputs: u64,
    /// Inputs the target accepted (parsed, loaded).
    pub accepted: u64,
    /// Inputs that panicked, with the panic message.
    pub panics: Vec<(Vec<u8>, String)>,
    /// The slowest input and its time.
    pub slowest: Option<(Vec<u8>, Duration)>,
}

/// Feeds `target` mutated inputs until `iterations` or `budget` runs out.
/// The panic hook is silenced while it runs; panics are caught and kept.
pub fn fuzz(target: &Target, seed: u64, iterations: u64, budget: Duration) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let mut corpus = target.seeds.clone();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    for i in 0..iterations {
        if start.elapsed() >= budget {
            break;
        }
        let base = &corpus[below(&mut rng, corpus.len())];
        // The seeds themselves first.
        let input = if (i as usize) < target.seeds.len() {
            target.seeds[i as usize].clone()
        } else {
            mutate(&mut rng, base, &target.seeds, target.dictionary, 64 * 1024)
        };
        let t = Instant::now();
        let result = panic::catch_unwind(AssertUnwindSafe(|| (target.read)(&input)));
        let took = t.elapsed();
        report.inputs += 1;
        report.accepted += u64::from(matches!(result, Ok(true)));
        if let Err(e) = &result {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            report.panics.push((input.clone(), msg));
        }
        if report.slowest.as_ref().is_none_or(|(_, d)| took > *d) {
            report.slowest = Some((input.clone(), took));
        }
        // Accepted mutants become bases, so that mutations compound past
        // the parsers instead of drifting into noise they refuse at once.
        if matches!(result, Ok(true)) && i as usize >= target.seeds.len() {
            if corpus.len() < 1024 {
                corpus.push(input);
            } else {
                let slot = below(&mut rng, corpus.len());
                corpus[slot] = input;
            }
        }
    }
    panic::set_hook(hook);
    report
}
