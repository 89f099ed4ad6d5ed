//! BPF ELF objects, both ways.
//!
//! [`write`] turns a [`Program`] into the relocatable object clang would
//! emit for it and that libbpf 1.x (bpftool) and aya load: the program in
//! section `cgroup/dev`, a `license`, its maps BTF-defined in `.maps`, one
//! `R_BPF_64_64` relocation per map reference. A map's contents cannot be
//! said in `.maps` (loaders create maps empty), so they travel in a section
//! of devcg's own, [`INIT_SECTION`], which other loaders skip; devcg
//! applies it when it reads the object, and `devcg bpftool-init` prints it
//! as `bpftool map update` commands.
//!
//! [`read`] takes any such object (clang's too) through aya-obj, as aya
//! would load it: the device program chosen by section, bpf-to-bpf calls
//! linked, map references relocated to map indices. What devcg cannot run
//! is refused with the reason: global data, map types other than hash and
//! array, CO-RE relocations, relocation types BPF does not define.

mod btf;
mod guard;

use std::collections::{BTreeSet, HashSet};

use object::write::{Object as ObjectWriter, Relocation, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, Object as _, ObjectSection as _, RelocationFlags,
    SectionKind, SymbolFlags, SymbolKind, SymbolScope,
};
use thiserror::Error;

use crate::insn::{op, Insn, MapKind, MapSpec, Program};

/// The section libbpf and aya read as a `BPF_PROG_TYPE_CGROUP_DEVICE`
/// program.
pub const DEVICE_SECTION: &str = "cgroup/dev";
/// devcg's section of initial map contents (format: [`encode_init`]).
pub const INIT_SECTION: &str = ".devcg.init";
/// The license written into objects: not GPL-only, yet GPL-compatible for
/// the kernel (devcg's programs call no GPL-only helper anyway).
pub const LICENSE: &str = "Dual MIT/GPL";

/// `BPF_MAP_TYPE_HASH` and `BPF_MAP_TYPE_ARRAY`.
const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_ARRAY: u32 = 2;
/// `lddw` source of a reference into a map's value (global data).
const PSEUDO_MAP_VALUE: u8 = 2;

/// BPF relocation types (llvm's BPF ELF relocations). Only the first and
/// the last may appear in a program section: a map (or other symbol)
/// address in an `lddw`, and a bpf-to-bpf call.
const R_BPF_64_64: u32 = 1;
const R_BPF_64_ABS64: u32 = 2;
const R_BPF_64_ABS32: u32 = 3;
const R_BPF_64_NODYLD32: u32 = 4;
const R_BPF_64_32: u32 = 10;

#[derive(Debug, Error)]
pub enum ElfError {
    #[error("not a valid ELF object: {0}")]
    Parse(String),
    #[error("an ELF object for {0}, not for BPF (e_machine {1})")]
    WrongMachine(String, u16),
    #[error("not a 64-bit little-endian ELF object (BPF objects for this host are)")]
    WrongClass,
    #[error("the object could not be read as a BPF object: {0}")]
    Bpf(String),
    #[error("section {section}, offset {offset}: relocation type {r_type} is not one BPF defines")]
    UnknownRelocation {
        section: String,
        offset: u64,
        r_type: u32,
    },
    #[error("section {section}, offset {offset}: relocation type {r_type} cannot apply to an instruction")]
    BadProgramRelocation {
        section: String,
        offset: u64,
        r_type: u32,
    },
    #[error("no device program (section `cgroup/dev`) in the object{}", list_sections(.0))]
    NoDeviceProgram(Vec<String>),
    #[error("no device program matches --section {wanted}; device programs: {}", .found.join(", "))]
    NoSuchSection { wanted: String, found: Vec<String> },
    #[error("several device programs ({}): choose one with --section (a section or program name)", .0.join(", "))]
    Several(Vec<String>),
    #[error("the program relies on CO-RE relocations (.BTF.ext), which devcg does not apply")]
    CoRe,
    #[error("the program refers to global data in `{0}` (a map value by address), which devcg does not model")]
    GlobalData(String),
    #[error(
        "map `{name}` is of BPF map type {map_type}; devcg models hash (1) and array (2) maps only"
    )]
    MapType { name: String, map_type: u32 },
    #[error("instruction {slot}: refers to map {index}, which the object does not define")]
    DanglingMap { slot: usize, index: i32 },
    #[error("instruction {slot}: a 64-bit load of source {src} (BTF ids, function pointers), which devcg does not model")]
    PseudoLoad { slot: usize, src: u8 },
    #[error("the {INIT_SECTION} section is malformed: {0}")]
    Init(String),
    #[error("initial contents for map `{0}`, which the program does not use")]
    UnknownMapName(String),
    #[error("map `{name}`: entry {entry} has a {what} of {got} bytes, the map's is {want}")]
    EntrySize {
        name: String,
        entry: usize,
        what: &'static str,
        got: usize,
        want: u32,
    },
    #[error("could not write the object: {0}")]
    Write(String),
}

fn list_sections(sections: &[String]) -> String {
    if sections.is_empty() {
        "; it has no program section".to_string()
    } else {
        format!("; program sections: {}", sections.join(", "))
    }
}

/// A device program read from an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfProgram {
    /// The ELF section holding it.
    pub section: String,
    /// Its function (symbol) name.
    pub name: String,
    pub license: String,
    /// Maps with their contents from [`INIT_SECTION`] (empty, as a kernel
    /// creates them, where the object says nothing).
    pub program: Program,
}

/// Whether `bytes` start like an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// The relocatable object for `program`, its function named `name` (a C
/// identifier; the kernel keeps the first 15 bytes).
pub fn write(program: &Program, name: &str) -> Result<Vec<u8>, ElfError> {
    let mut obj = ObjectWriter::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);
    let text = obj.add_section(
        Vec::new(),
        DEVICE_SECTION.as_bytes().to_vec(),
        SectionKind::Text,
    );
    let mut insns = program.insns.clone();
    let map_refs: Vec<(usize, usize)> = insns
        .iter()
        .enumerate()
        .filter(|(_, i)| i.is_lddw() && i.src == op::PSEUDO_MAP_FD)
        .map(|(slot, i)| (slot, i.imm as usize))
        .collect();
    for &(slot, index) in &map_refs {
        if index >= program.maps.len() {
            return Err(ElfError::DanglingMap {
                slot,
                index: index as i32,
            });
        }
        // The loader writes the map's fd and source; the object carries a
        // plain `lddw` with the relocation.
        insns[slot].src = 0;
        insns[slot].imm = 0;
    }
    let code = crate::insn::encode_all(&insns);
    obj.append_section_data(text, &code, 8);
    obj.add_symbol(Symbol {
        name: name.as_bytes().to_vec(),
        value: 0,
        size: code.len() as u64,
        kind: SymbolKind::Text,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(text),
        flags: SymbolFlags::None,
    });

    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    let mut text_license = LICENSE.as_bytes().to_vec();
    text_license.push(0);
    obj.append_section_data(license, &text_license, 1);
    obj.add_symbol(Symbol {
        name: b"_license".to_vec(),
        value: 0,
        size: text_license.len() as u64,
        kind: SymbolKind::Data,
        scope: SymbolScope::Dynamic,
        weak: false,
        section: SymbolSection::Section(license),
        flags: SymbolFlags::None,
    });

    if !program.maps.is_empty() {
        let maps = obj.add_section(Vec::new(), b".maps".to_vec(), SectionKind::Data);
        obj.append_section_data(
            maps,
            &vec![0; program.maps.len() * btf::DEF_SIZE as usize],
            8,
        );
        let mut symbols = Vec::new();
        for (i, m) in program.maps.iter().enumerate() {
            symbols.push(obj.add_symbol(Symbol {
                name: m.name.as_bytes().to_vec(),
                value: i as u64 * u64::from(btf::DEF_SIZE),
                size: u64::from(btf::DEF_SIZE),
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(maps),
                flags: SymbolFlags::None,
            }));
        }
        for &(slot, index) in &map_refs {
            obj.add_relocation(
                text,
                Relocation {
                    offset: (slot * Insn::SIZE) as u64,
                    symbol: symbols[index],
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: R_BPF_64_64,
                    },
                },
            )
            .map_err(|e| ElfError::Write(e.to_string()))?;
        }
        let btf_section = obj.add_section(Vec::new(), b".BTF".to_vec(), SectionKind::Metadata);
        obj.append_section_data(btf_section, &maps_btf(program), 4);
        let init = obj.add_section(
            Vec::new(),
            INIT_SECTION.as_bytes().to_vec(),
            SectionKind::Metadata,
        );
        obj.append_section_data(init, &encode_init(&program.maps), 4);
    }
    obj.write().map_err(|e| ElfError::Write(e.to_string()))
}

/// The `.BTF` section [`write`] puts in an object for `program`'s maps.
pub fn maps_btf(program: &Program) -> Vec<u8> {
    let defs: Vec<btf::MapDef<'_>> = program
        .maps
        .iter()
        .map(|m| btf::MapDef {
            name: &m.name,
            map_type: match m.kind {
                MapKind::Hash => MAP_TYPE_HASH,
                MapKind::Array => MAP_TYPE_ARRAY,
            },
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries: m.max_entries,
        })
        .collect();
    btf::maps_btf(&defs)
}

/// [`INIT_SECTION`]'s content: for each map, in order, little-endian
/// `u32 name length, name, u32 key size, u32 value size, u32 entries`,
/// then each entry's key and value bytes.
pub fn encode_init(maps: &[MapSpec]) -> Vec<u8> {
    let mut out = Vec::new();
    let word = |out: &mut Vec<u8>, w: usize| out.extend_from_slice(&(w as u32).to_le_bytes());
    for m in maps {
        word(&mut out, m.name.len());
        out.extend_from_slice(m.name.as_bytes());
        word(&mut out, m.key_size as usize);
        word(&mut out, m.value_size as usize);
        word(&mut out, m.entries.len());
        for (k, v) in &m.entries {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
        }
    }
    out
}

/// Initial contents by map name, from [`encode_init`]'s format.
pub type MapContents = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

pub fn decode_init(mut bytes: &[u8]) -> Result<MapContents, ElfError> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], ElfError> {
        if bytes.len() < n {
            return Err(ElfError::Init(format!(
                "{what}: {n} bytes wanted, {} left",
                bytes.len()
            )));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    fn word(bytes: &mut &[u8], what: &str) -> Result<usize, ElfError> {
        let b = take(bytes, 4, what)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = word(&mut bytes, "name length")?;
        let name = std::str::from_utf8(take(&mut bytes, len, "name")?)
            .map_err(|_| ElfError::Init("a map name is not UTF-8".into()))?
            .to_string();
        let key = word(&mut bytes, "key size")?;
        let value = word(&mut bytes, "value size")?;
        let count = word(&mut bytes, "entry count")?;
        // Checked before allocating: a corrupt count must not reserve memory.
        if (key + value).saturating_mul(count) > bytes.len() {
            return Err(ElfError::Init(format!(
                "map `{name}`: {count} entries of {} bytes do not fit in the {} bytes left",
                key + value,
                bytes.len()
            )));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let k = take(&mut bytes, key, "key")?.to_vec();
            let v = take(&mut bytes, value, "value")?.to_vec();
            entries.push((k, v));
        }
        out.push((name, entries));
    }
    Ok(out)
}

/// Sets `maps`' contents from `contents`, checking names and sizes.
pub fn apply_contents(maps: &mut [MapSpec], contents: MapContents) -> Result<(), ElfError> {
    for (name, entries) in contents {
        let map = maps
            .iter_mut()
            .find(|m| m.name == name)
            .ok_or_else(|| ElfError::UnknownMapName(name.clone()))?;
        for (i, (k, v)) in entries.iter().enumerate() {
            for (what, got, want) in [
                ("key", k.len(), map.key_size),
                ("value", v.len(), map.value_size),
            ] {
                if got != want as usize {
                    return Err(ElfError::EntrySize {
                        name,
                        entry: i,
                        what,
                        got,
                        want,
                    });
                }
            }
        }
        map.entries = entries;
    }
    Ok(())
}

/// The `bpftool map update` commands that give `maps` their contents once
/// `bpftool prog load OBJECT PIN type cgroup/dev pinmaps DIR` has created
/// them empty (each map is pinned as DIR/NAME). One command per entry, as
/// argument lists.
pub fn bpftool_init(maps: &[MapSpec], dir: &std::path::Path) -> Vec<Vec<String>> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>();
    let mut out = Vec::new();
    for m in maps {
        let pin = dir.join(&m.name).display().to_string();
        for (k, v) in &m.entries {
            let mut cmd: Vec<String> = ["bpftool", "map", "update", "pinned", &pin, "key", "hex"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            cmd.extend(hex(k));
            cmd.extend(["value".to_string(), "hex".to_string()]);
            cmd.extend(hex(v));
            out.push(cmd);
        }
    }
    out
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The device program of an object: the one in `cgroup/dev`, or, when
/// `section` is given, the one whose section or function has that name.
pub fn read(bytes: &[u8], section: Option<&str>) -> Result<ElfProgram, ElfError> {
    let file = object::File::parse(bytes).map_err(|e| ElfError::Parse(e.to_string()))?;
    if file.format() != BinaryFormat::Elf {
        return Err(ElfError::Parse(format!("a {:?} file", file.format())));
    }
    if file.architecture() != Architecture::Bpf {
        // e_machine sits at the same offset in both classes.
        let machine = bytes
            .get(18..20)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
        return Err(ElfError::WrongMachine(
            format!("{:?}", file.architecture()).to_lowercase(),
            machine,
        ));
    }
    if !file.is_64() || !file.is_little_endian() {
        return Err(ElfError::WrongClass);
    }
    check_relocations(&file)?;
    check_symbols(&file)?;

    let mut obj = guard::contain(|| aya_obj::Object::parse(bytes))
        .map_err(|why| ElfError::Bpf(format!("aya-obj failed on it ({why})")))?
        .map_err(|e| ElfError::Bpf(chain(&e)))?;
    let section_name = |index: usize| {
        file.section_by_index(object::SectionIndex(index))
            .ok()
            .and_then(|s| s.name().ok().map(str::to_string))
            .unwrap_or_default()
    };
    let mut programs: Vec<(String, String)> = obj
        .programs
        .iter()
        .filter(|(_, p)| matches!(p.section, aya_obj::ProgramSection::CgroupDevice))
        .map(|(name, p)| (section_name(p.section_index), name.clone()))
        .collect();
    programs.sort();
    let label = |(s, n): &(String, String)| format!("{s} ({n})");
    let chosen: Vec<&(String, String)> = match section {
        Some(wanted) => programs
            .iter()
            .filter(|(s, n)| s == wanted || n == wanted)
            .collect(),
        None => programs.iter().collect(),
    };
    let (section, name) = match (chosen.as_slice(), section) {
        ([one], _) => (*one).clone(),
        ([], None) => {
            let mut all: Vec<String> = obj
                .programs
                .values()
                .map(|p| section_name(p.section_index))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            all.sort();
            return Err(ElfError::NoDeviceProgram(all));
        }
        ([], Some(wanted)) => {
            return Err(ElfError::NoSuchSection {
                wanted: wanted.to_string(),
                found: programs.iter().map(label).collect(),
            })
        }
        (several, _) => {
            return Err(ElfError::Several(
                several.iter().map(|p| label(p)).collect(),
            ))
        }
    };
    if obj.has_btf_relocations() {
        return Err(ElfError::CoRe);
    }

    // Every map gets its position in `all_maps` as its "fd": relocation
    // then leaves map indices in the instructions, devcg's convention.
    let mut all_maps: Vec<(String, aya_obj::Map)> = obj
        .maps
        .iter()
        .map(|(n, m)| (n.clone(), m.clone()))
        .collect();
    all_maps.sort_by_key(|(n, m)| (m.section_index(), m.symbol_index(), n.clone()));
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    guard::contain(|| {
        obj.relocate_maps(
            all_maps
                .iter()
                .enumerate()
                .map(|(i, (n, m))| (n.as_str(), i as i32, m)),
            &text_sections,
        )?;
        obj.relocate_calls(&text_sections)
    })
    .map_err(|why| ElfError::Bpf(format!("aya-obj failed relocating it ({why})")))?
    .map_err(|e| ElfError::Bpf(chain(&e)))?;
    let program = &obj.programs[&name];
    let function = obj
        .functions
        .get(&program.function_key())
        .ok_or_else(|| ElfError::Bpf(format!("no code for program {name}")))?;
    let mut insns: Vec<Insn> = function
        .instructions
        .iter()
        .map(|i| Insn::new(i.code, i.dst_reg(), i.src_reg(), i.off, i.imm))
        .collect();

    // Keep the maps the program uses, in order of first use.
    let mut used: Vec<usize> = Vec::new();
    let mut slot = 0;
    while slot < insns.len() {
        let insn = insns[slot];
        if insn.is_lddw() {
            let index = insn.imm;
            let map = usize::try_from(index).ok().filter(|&i| {
                i < all_maps.len() && matches!(insn.src, op::PSEUDO_MAP_FD | PSEUDO_MAP_VALUE)
            });
            match (insn.src, map) {
                (0, _) => {}
                (src, _) if !matches!(src, op::PSEUDO_MAP_FD | PSEUDO_MAP_VALUE) => {
                    return Err(ElfError::PseudoLoad { slot, src })
                }
                (PSEUDO_MAP_VALUE, Some(i)) => {
                    return Err(ElfError::GlobalData(all_maps[i].0.clone()))
                }
                (op::PSEUDO_MAP_FD, Some(i)) => {
                    let at = used.iter().position(|&u| u == i).unwrap_or_else(|| {
                        used.push(i);
                        used.len() - 1
                    });
                    insns[slot].imm = at as i32;
                }
                _ => return Err(ElfError::DanglingMap { slot, index }),
            }
            slot += 2;
        } else {
            slot += 1;
        }
    }
    let mut maps = Vec::new();
    for &i in &used {
        let (name, m) = &all_maps[i];
        let kind = match m.map_type() {
            MAP_TYPE_HASH => MapKind::Hash,
            MAP_TYPE_ARRAY => MapKind::Array,
            map_type => {
                return Err(ElfError::MapType {
                    name: name.clone(),
                    map_type,
                })
            }
        };
        if !matches!(
            m.section_kind(),
            aya_obj::EbpfSectionKind::BtfMaps | aya_obj::EbpfSectionKind::Maps
        ) {
            return Err(ElfError::GlobalData(name.clone()));
        }
        maps.push(MapSpec {
            name: name.clone(),
            kind,
            key_size: m.key_size(),
            value_size: m.value_size(),
            max_entries: m.max_entries(),
            entries: Vec::new(),
        });
    }
    if let Some(init) = file.section_by_name(INIT_SECTION) {
        let data = init.data().map_err(|e| ElfError::Init(e.to_string()))?;
        let contents = decode_init(data)?;
        // Contents of maps this program does not use are someone else's.
        let used: Vec<(String, _)> = contents
            .into_iter()
            .filter(|(n, _)| maps.iter().any(|m| &m.name == n))
            .collect();
        apply_contents(&mut maps, used)?;
    }
    Ok(ElfProgram {
        section,
        name,
        license: obj.license.to_string_lossy().into_owned(),
        program: Program { insns, maps },
    })
}

/// Every symbol defined in a section lies inside it: aya-obj slices the
/// section by the symbol's address and size without checking.
fn check_symbols(file: &object::File<'_>) -> Result<(), ElfError> {
    use object::{ObjectSymbol as _, SectionIndex};
    for symbol in file.symbols() {
        let Some(index) = symbol.section_index() else {
            continue;
        };
        let name = symbol.name().unwrap_or("?");
        let section = file
            .section_by_index(SectionIndex(index.0))
            .map_err(|e| ElfError::Parse(format!("symbol {name}: {e}")))?;
        let len = section.data().map_or(0, |d| d.len() as u64);
        let inside = symbol
            .address()
            .checked_sub(section.address())
            .and_then(|start| start.checked_add(symbol.size()))
            .is_some_and(|end| end <= len);
        if !inside {
            return Err(ElfError::Parse(format!(
                "symbol {name} (offset {}, size {}) lies outside its section of {len} bytes",
                symbol.address(),
                symbol.size()
            )));
        }
    }
    Ok(())
}

/// Every relocation is one BPF defines, and a program section's are those
/// an instruction can take.
fn check_relocations(file: &object::File<'_>) -> Result<(), ElfError> {
    for section in file.sections() {
        let name = section.name().unwrap_or("?").to_string();
        let code = section.kind() == SectionKind::Text;
        for (offset, r) in section.relocations() {
            let r_type = match r.flags() {
                RelocationFlags::Elf { r_type } => r_type,
                _ => 0,
            };
            let known = matches!(
                r_type,
                R_BPF_64_64 | R_BPF_64_ABS64 | R_BPF_64_ABS32 | R_BPF_64_NODYLD32 | R_BPF_64_32
            );
            if !known {
                return Err(ElfError::UnknownRelocation {
                    section: name,
                    offset,
                    r_type,
                });
            }
            if code && !matches!(r_type, R_BPF_64_64 | R_BPF_64_32) {
                return Err(ElfError::BadProgramRelocation {
                    section: name,
                    offset,
                    r_type,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
