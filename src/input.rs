//! Reading a `--program FILE`: ELF objects, assembly text (devcg's and
//! bpftool's dumps), raw `bpf_insn` bytes and devcg's JSON, with map
//! contents from the file or from `--map NAME=FILE`.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, ValueEnum};
use devcg_engine::{elf, Program};

/// How a `--program` file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgramFormat {
    /// By extension (`.o`; `.json`; `.asm`; `.bin`, `.raw`), else by
    /// content.
    Auto,
    /// Raw `struct bpf_insn` bytes, 8 per instruction slot.
    Raw,
    /// devcg's JSON, as `compile --format json` writes it.
    Json,
    /// A relocatable BPF ELF object (clang, `compile --format elf`).
    Elf,
    /// Assembly text: `compile --format asm`, or bpftool's `prog dump
    /// xlated` of a live program.
    Asm,
}

/// What says how to read `--program`, shared by every command taking one.
#[derive(Args, Clone, Debug, Default)]
pub struct ProgramOptions {
    /// How to read --program [auto: by extension (`.o`, `.json`, `.asm`,
    /// `.bin`, `.raw`), else by content].
    #[arg(long, value_enum, value_name = "FORMAT", requires = "program")]
    format: Option<ProgramFormat>,
    /// For an ELF object with several device programs: the section (or
    /// function) name of the one to take.
    #[arg(long, value_name = "NAME", requires = "program")]
    section: Option<String>,
    /// Contents of the program's map NAME (replacing the object's): a JSON
    /// array of {"key": [bytes], "value": [bytes]}, bytes as numbers or
    /// hex strings, as `bpftool map dump -j` prints. Repeatable. For
    /// assembly text NAME is the map's index (`map[idx:N]`) or id
    /// (`map[id:N]`), and FILE may also be a whole map as devcg's JSON
    /// writes one (`compile --format json`, an element of "maps").
    #[arg(long = "map", value_name = "NAME=FILE", requires = "program")]
    maps: Vec<String>,
}

impl ProgramOptions {
    /// The first of these options given, for refusing them without a
    /// program file (clap's `requires` does not see through `check`'s
    /// strategy-or-program group).
    pub fn given(&self) -> Option<&'static str> {
        if self.format.is_some() {
            Some("--format")
        } else if self.section.is_some() {
            Some("--section")
        } else if !self.maps.is_empty() {
            Some("--map")
        } else {
            None
        }
    }

    pub fn source(&self, path: PathBuf) -> ProgramSource {
        ProgramSource {
            path,
            format: self.format.unwrap_or(ProgramFormat::Auto),
            section: self.section.clone(),
            maps: self.maps.clone(),
        }
    }
}

/// A program file and how to read it.
#[derive(Clone, Debug)]
pub struct ProgramSource {
    pub path: PathBuf,
    pub format: ProgramFormat,
    pub section: Option<String>,
    pub maps: Vec<String>,
}

/// Why a program file is read as it is, for the error when it does not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Basis {
    Option,
    Extension,
    Content,
}

impl ProgramSource {
    /// The program, maps filled in.
    pub fn read(&self) -> Result<Program> {
        let path = &self.path;
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let (format, basis) = self.format_of(&bytes);
        if self.section.is_some() && format != ProgramFormat::Elf {
            bail!(
                "{}: --section chooses among an ELF object's programs; this file is read as {}",
                path.display(),
                name(format)
            );
        }
        let overrides = self.map_files()?;
        let mut program = match format {
            ProgramFormat::Elf => elf::read(&bytes, self.section.as_deref())
                .map(|p| p.program)
                .map_err(|e| (None, e.to_string())),
            ProgramFormat::Json => program_from_json(&bytes),
            ProgramFormat::Raw => Program::from_bytes(&bytes).map_err(|e| (None, e.to_string())),
            ProgramFormat::Asm => match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    let specs = overrides
                        .iter()
                        .filter_map(|(n, f)| Some((n.clone(), f.spec.clone()?)))
                        .collect();
                    devcg_engine::asmtext::parse(text, specs)
                        .map_err(|e| ((e.line > 0).then_some(e.line), e.kind.to_string()))
                }
                Err(_) => Err((None, "not UTF-8 text".to_string())),
            },
            ProgramFormat::Auto => unreachable!("resolved above"),
        }
        .map_err(|(line, why)| self.explain(&bytes, format, basis, line, why))?;
        let contents = overrides
            .into_iter()
            .filter_map(|(name, file)| file.entries.map(|e| (name, e)))
            .collect();
        elf::apply_contents(&mut program.maps, contents)
            .map_err(|e| anyhow!("{}: --map: {e}", path.display()))?;
        Ok(program)
    }

    fn format_of(&self, bytes: &[u8]) -> (ProgramFormat, Basis) {
        if self.format != ProgramFormat::Auto {
            return (self.format, Basis::Option);
        }
        let extension = self
            .path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("o") => (ProgramFormat::Elf, Basis::Extension),
            Some("json") => (ProgramFormat::Json, Basis::Extension),
            Some("asm") => (ProgramFormat::Asm, Basis::Extension),
            Some("bin" | "raw") => (ProgramFormat::Raw, Basis::Extension),
            _ if elf::is_elf(bytes) => (ProgramFormat::Elf, Basis::Content),
            _ if looks_like_json(bytes) => (ProgramFormat::Json, Basis::Content),
            _ if looks_like_asm(bytes) => (ProgramFormat::Asm, Basis::Content),
            _ => (ProgramFormat::Raw, Basis::Content),
        }
    }

    /// `PATH[:LINE]: WHY`, and how the file was taken when that was a guess.
    fn explain(
        &self,
        bytes: &[u8],
        format: ProgramFormat,
        basis: Basis,
        line: Option<usize>,
        why: String,
    ) -> anyhow::Error {
        let location = match line {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => self.path.display().to_string(),
        };
        let other = match format {
            ProgramFormat::Json => "--format raw for raw bpf_insn bytes",
            ProgramFormat::Raw => "--format json for JSON",
            _ => "--format to say what it is",
        };
        let why_assumed = match basis {
            Basis::Option => return anyhow!("{location}: {why}"),
            Basis::Extension => "for its extension".to_string(),
            Basis::Content if format == ProgramFormat::Raw && starts_with_brace(bytes) => {
                "guessed from its content: it starts with `{` but is not UTF-8 JSON".to_string()
            }
            Basis::Content => "guessed from its content".to_string(),
        };
        anyhow!(
            "{location}: {why} (read as {}, {why_assumed}; use {other})",
            name(format)
        )
    }

    /// The `--map NAME=FILE` files, read.
    fn map_files(&self) -> Result<Vec<(String, MapFile)>> {
        self.maps
            .iter()
            .map(|arg| {
                let (name, file) = arg
                    .split_once('=')
                    .filter(|(n, f)| !n.is_empty() && !f.is_empty())
                    .ok_or_else(|| anyhow!("--map {arg}: give NAME=FILE"))?;
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("--map {arg}: reading {file}"))?;
                let parsed =
                    MapFile::parse(&text).map_err(|e| anyhow!("--map {arg}: {file}: {e}"))?;
                Ok((name.to_string(), parsed))
            })
            .collect()
    }
}

fn name(format: ProgramFormat) -> &'static str {
    match format {
        ProgramFormat::Auto => "auto",
        ProgramFormat::Raw => "raw bpf_insn bytes",
        ProgramFormat::Json => "JSON",
        ProgramFormat::Elf => "an ELF object",
        ProgramFormat::Asm => "assembly text",
    }
}

/// A `--map` file: contents (bpftool's dump), or a whole map (devcg's JSON,
/// which carries contents too).
struct MapFile {
    entries: Option<Vec<(Vec<u8>, Vec<u8>)>>,
    spec: Option<devcg_engine::MapSpec>,
}

impl MapFile {
    fn parse(text: &str) -> Result<MapFile> {
        let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
        if value.is_object() {
            let spec: devcg_engine::MapSpec =
                serde_json::from_value(value).context("not a map as devcg writes one")?;
            return Ok(MapFile {
                entries: Some(spec.entries.clone()),
                spec: Some(spec),
            });
        }
        let list = value
            .as_array()
            .ok_or_else(|| anyhow!("neither an array of entries nor a map object"))?;
        let entries = list
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let field = |f: &str| -> Result<Vec<u8>> {
                    let bytes = e
                        .get(f)
                        .and_then(|v| v.as_array())
                        .ok_or_else(|| anyhow!("entry {i}: no \"{f}\" array"))?;
                    bytes
                        .iter()
                        .map(|b| {
                            byte(b).ok_or_else(|| anyhow!("entry {i}: {f}: {b} is not a byte"))
                        })
                        .collect()
                };
                Ok((field("key")?, field("value")?))
            })
            .collect::<Result<_>>()?;
        Ok(MapFile {
            entries: Some(entries),
            spec: None,
        })
    }
}

/// A byte as a number or a hex string (`"0x1f"`, as bpftool writes it).
fn byte(v: &serde_json::Value) -> Option<u8> {
    if let Some(n) = v.as_u64() {
        return u8::try_from(n).ok();
    }
    let s = v.as_str()?;
    u8::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// Content that is devcg's JSON rather than raw bytes: starts with `{`
/// after blanks, and is UTF-8 JSON. A raw program may well start with 0x7b
/// (`*(u64 *)(r10 - 8) = r1`), but its other bytes are not JSON.
fn looks_like_json(bytes: &[u8]) -> bool {
    starts_with_brace(bytes)
        && std::str::from_utf8(bytes)
            .is_ok_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok())
}

/// UTF-8 text with a numbered instruction line (`   0: (61) ...` or
/// bpftool's `0: (61) ...`).
fn looks_like_asm(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|t| {
        t.lines().any(|l| {
            let l = l.trim_start();
            let digits = l.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && l[digits..].starts_with(": (")
        })
    })
}

fn starts_with_brace(bytes: &[u8]) -> bool {
    bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A program from devcg's JSON, or the line (when known) and the reason.
fn program_from_json(bytes: &[u8]) -> std::result::Result<Program, (Option<usize>, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        (Some(line), "not UTF-8".to_string())
    })?;
    serde_json::from_str(text).map_err(|e| (Some(e.line()), format!("invalid program JSON: {e}")))
}
