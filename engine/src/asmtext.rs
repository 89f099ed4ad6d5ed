//! Assembly text back to a program: what `compile --format asm` prints
//! (round trip), and bpftool's `prog dump xlated` of a live program, so a
//! program copied from a machine can be judged without that machine.
//!
//! Each instruction line is `N: (CC) BODY`: the opcode byte CC says what
//! the instruction is, BODY gives its registers, offset and immediate in
//! the kernel's disassembler syntax (kernel/bpf/disasm.c). Lines starting
//! with `;` are comments (bpftool's source lines), except devcg's map
//! lines (`; map REF NAME KIND key_size K value_size V max_entries M` and
//! `; map REF entry KEYHEX VALUEHEX`), which carry a map's definition and
//! contents; a line ending in `:` (bpftool's function header) is skipped.
//!
//! A translated dump (maps as `map[id:N]`, calls named after kernel
//! functions) goes through [`crate::xlated::untranslate`], which undoes the
//! kernel's rewrites; devcg's own text (`map[idx:N]`, `call NAME#HELPER`)
//! is taken as it is.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use thiserror::Error;

use crate::insn::{encode_all, helper, op, Insn, MapKind, MapSpec, Program};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TextErrorKind {
    #[error("expected `N: (CC) instruction`, got {0:?}")]
    Line(String),
    #[error("instruction number {got}, expected {want} (lines missing or out of order?)")]
    Number { got: usize, want: usize },
    #[error("opcode ({code:02x}): cannot read {body:?} as that instruction: {why}")]
    Body {
        code: u8,
        body: String,
        why: &'static str,
    },
    #[error("{0}: a reference into a map's value, which devcg does not model")]
    MapValue(String),
    #[error("map line: {0}")]
    MapLine(String),
    #[error("map {0}: the text does not say what the map is; give --map {0}=FILE with the map as devcg's JSON writes it")]
    UnknownMap(String),
    #[error("no instruction in the text")]
    Empty,
    #[error("{0}")]
    Xlated(String),
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{kind}")]
pub struct TextError {
    /// 1-based; 0 for the text as a whole.
    pub line: usize,
    pub kind: TextErrorKind,
}

fn err(line: usize, kind: TextErrorKind) -> TextError {
    TextError { line, kind }
}

/// devcg's map lines for `maps` (referred to as `map[idx:N]`), appended
/// to a printed program so that its text says everything.
pub fn map_lines(maps: &[MapSpec]) -> String {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut out = String::new();
    for (i, m) in maps.iter().enumerate() {
        let kind = match m.kind {
            MapKind::Hash => "hash",
            MapKind::Array => "array",
        };
        let _ = writeln!(
            out,
            "; map idx:{i} {} {kind} key_size {} value_size {} max_entries {}",
            m.name, m.key_size, m.value_size, m.max_entries
        );
        for (k, v) in &m.entries {
            let _ = writeln!(out, "; map idx:{i} entry {} {}", hex(k), hex(v));
        }
    }
    out
}

/// A map reference as the text writes it: `idx:N` or `id:N`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum MapRef {
    Idx(u32),
    Id(u32),
}

impl MapRef {
    fn parse(s: &str) -> Option<MapRef> {
        if let Some(n) = s.strip_prefix("idx:") {
            return n.parse().ok().map(MapRef::Idx);
        }
        s.strip_prefix("id:")?.parse().ok().map(MapRef::Id)
    }
    fn label(&self) -> String {
        match self {
            MapRef::Idx(n) => format!("idx:{n}"),
            MapRef::Id(n) => format!("id:{n}"),
        }
    }
}

/// The program in `text`. `specs` are maps given from outside, by
/// reference (`idx:0`, `id:42`) or name; they win over the text's map lines.
pub fn parse(text: &str, specs: Vec<(String, MapSpec)>) -> Result<Program, TextError> {
    let mut insns: Vec<Insn> = Vec::new();
    // Slot of each map reference, and what it refers to.
    let mut refs: Vec<(usize, MapRef)> = Vec::new();
    // Calls: slot -> the name the text gives (None: `call #N`).
    let mut call_names: Vec<(usize, Option<String>)> = Vec::new();
    let mut declared: BTreeMap<MapRef, MapSpec> = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix(';') {
            if let Some(map) = rest.trim().strip_prefix("map ") {
                map_line(map, &mut declared)
                    .map_err(|e| err(line_no, TextErrorKind::MapLine(e)))?;
            }
            continue;
        }
        if line.is_empty() || line.ends_with(':') || is_hex_bytes(line) {
            continue;
        }
        let bad = || err(line_no, TextErrorKind::Line(line.to_string()));
        let (number, rest) = line.split_once(':').ok_or_else(bad)?;
        let number: usize = number.trim().parse().map_err(|_| bad())?;
        let rest = rest.trim_start();
        let rest = rest.strip_prefix('(').ok_or_else(bad)?;
        let (code, body) = rest.split_once(')').ok_or_else(bad)?;
        let code = u8::from_str_radix(code, 16).map_err(|_| bad())?;
        if number != insns.len() {
            return Err(err(
                line_no,
                TextErrorKind::Number {
                    got: number,
                    want: insns.len(),
                },
            ));
        }
        let body = body.trim();
        let parsed = instruction(code, body).map_err(|why| {
            err(
                line_no,
                TextErrorKind::Body {
                    code,
                    body: body.to_string(),
                    why,
                },
            )
        })?;
        match parsed {
            Parsed::One(insn, name) => {
                if insn.code == op::JMP | op::CALL {
                    call_names.push((insns.len(), name));
                }
                insns.push(insn);
            }
            Parsed::Lddw(insn, hi, map) => {
                if let Some(map) = map {
                    refs.push((insns.len(), map));
                }
                insns.push(insn);
                insns.push(Insn::new(0, 0, 0, 0, hi));
            }
            Parsed::MapValue(what) => return Err(err(line_no, TextErrorKind::MapValue(what))),
        }
    }
    if insns.is_empty() {
        return Err(err(0, TextErrorKind::Empty));
    }

    // Maps in order of first reference.
    let mut order: Vec<MapRef> = Vec::new();
    for (_, r) in &refs {
        if !order.contains(r) {
            order.push(r.clone());
        }
    }
    let mut maps = Vec::new();
    for r in &order {
        let by_ref = specs.iter().find(|(k, _)| *k == r.label());
        let by_name = declared
            .get(r)
            .and_then(|d| specs.iter().find(|(k, _)| *k == d.name));
        let spec = match (by_ref.or(by_name), declared.get(r)) {
            (Some((key, s)), _) => MapSpec {
                name: key.clone(),
                ..s.clone()
            },
            (None, Some(d)) => d.clone(),
            (None, None) => return Err(err(0, TextErrorKind::UnknownMap(r.label()))),
        };
        maps.push(spec);
    }

    let translated = order.iter().any(|r| matches!(r, MapRef::Id(_)))
        || call_names.iter().any(|(slot, name)| {
            name.as_deref()
                .is_some_and(|n| helper::name(insns[*slot].imm) != Some(n))
        });
    if !translated {
        for (slot, r) in &refs {
            insns[*slot].src = op::PSEUDO_MAP_FD;
            insns[*slot].imm = order.iter().position(|o| o == r).expect("listed") as i32;
        }
        return Ok(Program { insns, maps });
    }
    // A kernel dump: maps by id (an idx reference gets a made-up id), calls
    // by the names the text gives.
    let ids: Vec<u32> = order
        .iter()
        .enumerate()
        .map(|(i, r)| match r {
            MapRef::Id(id) => *id,
            MapRef::Idx(_) => u32::MAX - i as u32,
        })
        .collect();
    for (slot, r) in &refs {
        let i = order.iter().position(|o| o == r).expect("listed");
        insns[*slot].src = op::PSEUDO_MAP_FD;
        insns[*slot].imm = ids[i] as i32;
    }
    let names: BTreeMap<i32, String> = call_names
        .iter()
        .map(|(slot, name)| {
            let imm = insns[*slot].imm;
            let name = name
                .clone()
                .or_else(|| helper::name(imm).map(str::to_string))
                .unwrap_or_default();
            (imm, name)
        })
        .collect();
    crate::xlated::untranslate(&encode_all(&insns), &ids, maps, &|imm| {
        names.get(&imm).filter(|n| !n.is_empty()).cloned()
    })
    .map_err(|e| err(0, TextErrorKind::Xlated(e.to_string())))
}

fn is_hex_bytes(line: &str) -> bool {
    line.split_whitespace()
        .all(|w| w.len() == 2 && w.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `REF NAME KIND key_size K value_size V max_entries M` or
/// `REF entry KEYHEX VALUEHEX`.
fn map_line(text: &str, declared: &mut BTreeMap<MapRef, MapSpec>) -> Result<(), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let r = words
        .first()
        .and_then(|w| MapRef::parse(w))
        .ok_or_else(|| format!("{text:?}: no map reference (idx:N or id:N)"))?;
    let number = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is not a number"))
    };
    let hex = |s: &str| -> Result<Vec<u8>, String> {
        if !s.len().is_multiple_of(2) {
            return Err(format!("{s:?}: odd number of hex digits"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{s:?} is not hex"))
            })
            .collect()
    };
    match words.as_slice() {
        [_, "entry", k, v] => {
            let map = declared
                .get_mut(&r)
                .ok_or_else(|| format!("entry for {} before its definition", r.label()))?;
            let (k, v) = (hex(k)?, hex(v)?);
            if k.len() != map.key_size as usize || v.len() != map.value_size as usize {
                return Err(format!(
                    "entry of {}+{} bytes for a map of {}+{}",
                    k.len(),
                    v.len(),
                    map.key_size,
                    map.value_size
                ));
            }
            map.entries.push((k, v));
        }
        [_, name, kind, "key_size", k, "value_size", v, "max_entries", m] => {
            let kind = match *kind {
                "hash" => MapKind::Hash,
                "array" => MapKind::Array,
                other => return Err(format!("map kind {other:?}: hash or array")),
            };
            declared.insert(
                r,
                MapSpec {
                    name: name.to_string(),
                    kind,
                    key_size: number(k)?,
                    value_size: number(v)?,
                    max_entries: number(m)?,
                    entries: Vec::new(),
                },
            );
        }
        _ => return Err(format!("{text:?} is neither a definition nor an entry")),
    }
    Ok(())
}

enum Parsed {
    /// An instruction, and for a call the name the text gives.
    One(Insn, Option<String>),
    /// An `lddw`: first slot, upper half, and the map it refers to.
    Lddw(Insn, i32, Option<MapRef>),
    MapValue(String),
}

/// `r3`/`w3` (and `r10`).
fn reg(s: &str) -> Option<u8> {
    let n: u8 = s.strip_prefix(['r', 'w'])?.parse().ok()?;
    (n <= 10).then_some(n)
}

/// A decimal (possibly negative) or `0x` hex number, as 32 bits.
fn imm(s: &str) -> Option<i32> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let value = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    let value = if neg {
        (value as i64).checked_neg()?
    } else {
        value as i64
    };
    // Hex immediates print as u32 (`0xffffffff` is -1).
    (i64::from(i32::MIN)..=i64::from(u32::MAX))
        .contains(&value)
        .then_some(value as u32 as i32)
}

/// `pc+N` / `pc-N`.
fn pc(s: &str) -> Option<i32> {
    imm(s.strip_prefix("pc")?)
}

/// `*(u32 *)(r1 +4)` -> (size, reg, off).
fn mem(s: &str) -> Option<(u8, u8, i16)> {
    let s = s.trim().strip_prefix("*(")?;
    let (size, rest) = s.split_once(" *)(")?;
    let size = match size {
        "u8" => op::B,
        "u16" => op::H,
        "u32" => op::W,
        "u64" => op::DW,
        _ => return None,
    };
    let inner = rest.strip_suffix(')')?;
    let (r, off) = inner.split_once(' ')?;
    let off = i16::try_from(imm(off)?).ok()?;
    Some((size, reg(r)?, off))
}

fn instruction(code: u8, body: &str) -> Result<Parsed, &'static str> {
    let words: Vec<&str> = body.split_whitespace().collect();
    let class = op::class(code);
    let x = op::source(code) == op::X;
    let one = |insn| Ok(Parsed::One(insn, None));
    match class {
        op::ALU | op::ALU64 => {
            let operation = op::operation(code);
            match (operation, words.as_slice()) {
                (op::NEG, [d, "=", _]) => one(Insn::new(code, reg(d).ok_or("register")?, 0, 0, 0)),
                (op::END, [d, "=", order, _]) => {
                    let bits = order
                        .strip_prefix("be")
                        .or_else(|| order.strip_prefix("le"))
                        .or_else(|| order.strip_prefix("bswap"))
                        .and_then(|b| b.parse().ok())
                        .ok_or("byte order")?;
                    one(Insn::new(code, reg(d).ok_or("register")?, 0, 0, bits))
                }
                (_, [d, _op, s]) if x => one(Insn::new(
                    code,
                    reg(d).ok_or("destination register")?,
                    reg(s).ok_or("source register")?,
                    0,
                    0,
                )),
                (_, [d, _op, k]) => one(Insn::new(
                    code,
                    reg(d).ok_or("destination register")?,
                    0,
                    0,
                    imm(k).ok_or("immediate")?,
                )),
                _ => Err("not `dst OP= src`"),
            }
        }
        op::LDX => {
            let (d, src) = body
                .split_once(" = ")
                .ok_or("not `dst = *(size *)(src +off)`")?;
            let (size, s, off) = mem(src).ok_or("memory operand")?;
            if op::size(code) != size {
                return Err("size does not match the opcode");
            }
            one(Insn::new(code, reg(d.trim()).ok_or("register")?, s, off, 0))
        }
        op::ST | op::STX => {
            let (dst, v) = body
                .split_once(" = ")
                .ok_or("not `*(size *)(dst +off) = src`")?;
            let (size, d, off) = mem(dst).ok_or("memory operand")?;
            if op::size(code) != size || op::mode(code) != op::MEM {
                return Err("size or mode does not match the opcode");
            }
            if class == op::STX {
                one(Insn::new(code, d, reg(v.trim()).ok_or("register")?, off, 0))
            } else {
                one(Insn::new(code, d, 0, off, imm(v).ok_or("immediate")?))
            }
        }
        op::LD if code == op::LD | op::IMM | op::DW => {
            let (d, v) = body.split_once(" = ").ok_or("not `dst = constant`")?;
            let d = reg(d.trim()).ok_or("register")?;
            let v = v.trim();
            if let Some(inner) = v.strip_prefix("map[") {
                let (r, tail) = inner.split_once(']').ok_or("map reference")?;
                if !tail.is_empty() {
                    return Ok(Parsed::MapValue(v.to_string()));
                }
                let r = MapRef::parse(r).ok_or("map reference (idx:N or id:N)")?;
                return Ok(Parsed::Lddw(Insn::new(code, d, 0, 0, 0), 0, Some(r)));
            }
            let hex = v.strip_prefix("0x").ok_or("constant")?;
            let value = u64::from_str_radix(hex, 16).map_err(|_| "constant")?;
            Ok(Parsed::Lddw(
                Insn::new(code, d, 0, 0, value as u32 as i32),
                (value >> 32) as u32 as i32,
                None,
            ))
        }
        op::JMP | op::JMP32 => match (op::operation(code), words.as_slice()) {
            (op::EXIT, ["exit"]) => one(Insn::new(code, 0, 0, 0, 0)),
            (op::JA, ["goto", target]) => {
                let t = pc(target).ok_or("target")?;
                if class == op::JMP32 {
                    one(Insn::new(code, 0, 0, 0, t))
                } else {
                    one(Insn::new(
                        code,
                        0,
                        0,
                        i16::try_from(t).map_err(|_| "offset")?,
                        0,
                    ))
                }
            }
            (op::JA, ["gotol", target]) => {
                one(Insn::new(code, 0, 0, 0, pc(target).ok_or("target")?))
            }
            (op::CALL, ["call", target]) => {
                let (name, n) = target.rsplit_once('#').ok_or("call target `NAME#N`")?;
                let n = imm(n).ok_or("call number")?;
                let name = (!name.is_empty()).then(|| name.to_string());
                Ok(Parsed::One(Insn::new(code, 0, 0, 0, n), name))
            }
            (_, ["if", d, _cmp, s, "goto", target]) => {
                let d = reg(d).ok_or("register")?;
                let off = i16::try_from(pc(target).ok_or("target")?).map_err(|_| "offset")?;
                if x {
                    one(Insn::new(code, d, reg(s).ok_or("register")?, off, 0))
                } else {
                    one(Insn::new(code, d, 0, off, imm(s).ok_or("immediate")?))
                }
            }
            _ => Err("not a jump devcg reads"),
        },
        _ => Err("an instruction class devcg does not read"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disasm::disassemble;
    use crate::rules::RuleFile;
    use crate::strategy;

    #[test]
    fn every_strategy_round_trips_through_its_text() {
        let rules = RuleFile::parse(
            "t",
            "deny a\nallow c *:* m\nallow c 1:3 rwm\nallow c 136:* rw\nallow b 8:* r\n",
        )
        .unwrap();
        for s in strategy::all() {
            let Ok(p) = s.compile(&rules) else { continue };
            let text = disassemble(&p.insns) + &map_lines(&p.maps);
            assert_eq!(parse(&text, vec![]).unwrap(), p, "{}", s.name());
        }
    }

    #[test]
    fn a_bpftool_dump_is_untranslated() {
        // As bpftool prints a hash lookup: map by id, the lookup inlined.
        let text = "\
int filter(struct bpf_cgroup_dev_ctx * ctx):
; key = ctx->major;
   0: (61) r2 = *(u32 *)(r1 +4)
   1: (63) *(u32 *)(r10 -4) = r2
   2: (bf) r2 = r10
   3: (07) r2 += -4
   4: (18) r1 = map[id:42]
   6: (85) call __htab_map_lookup_elem#245024
   7: (15) if r0 == 0x0 goto pc+1
   8: (07) r0 += 56
   9: (b7) r0 = 0
  10: (95) exit
";
        let spec = MapSpec {
            name: "m".into(),
            kind: MapKind::Hash,
            key_size: 4,
            value_size: 4,
            max_entries: 1,
            entries: vec![],
        };
        let p = parse(text, vec![("id:42".into(), spec)]).unwrap();
        assert_eq!(p.insns.len(), 9);
        assert_eq!(p.insns[6].imm, helper::MAP_LOOKUP_ELEM);
        assert_eq!(p.insns[4].src, op::PSEUDO_MAP_FD);
        assert_eq!(p.maps[0].name, "id:42");
        // Without the map's definition it is refused, naming what to give.
        let e = parse(text, vec![]).unwrap_err();
        assert!(e.to_string().contains("--map id:42=FILE"), "{e}");
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        for (text, line) in [
            ("   0: (b7) r0 = 1\n   1: (95) exit\n   5: (95) exit\n", 3),
            ("   0: (61) r0 = *(u64 *)(r1 +0)\n", 1),
            ("hello\n", 1),
            ("   0: (b7) r11 = 1\n", 1),
            ("   0: (18) r1 = map[id:3][0]+8\n", 1),
            (
                "; map idx:0 m hash key_size x value_size 4 max_entries 1\n",
                1,
            ),
        ] {
            assert_eq!(parse(text, vec![]).unwrap_err().line, line, "{text}");
        }
        assert_eq!(parse("", vec![]).unwrap_err().kind, TextErrorKind::Empty);
    }
}
