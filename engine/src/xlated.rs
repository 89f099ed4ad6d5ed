//! From the kernel's translated dump of a loaded program back to a program
//! devcg can run.
//!
//! `BPF_OBJ_GET_INFO_BY_FD` returns the instructions after the verifier's
//! rewrites (`bpf_insn_prepare_dump` in kernel/bpf/syscall.c), not those
//! that were loaded:
//!
//! * a map reference (`lddw` with a map's address) shows as `lddw` with
//!   `src = BPF_PSEUDO_MAP_FD` and the map's *id* in `imm`: rewritten to the
//!   map's index in [`Program::maps`];
//! * a helper call shows as a call to a kernel function, `imm` being its
//!   address minus `__bpf_call_base`; map helpers are bound to the map's
//!   own operations (`htab_map_update_elem`, ...), so the caller resolves
//!   the target to a symbol name and this module maps names back to helper
//!   numbers;
//! * a hash map lookup is inlined (`htab_map_gen_lookup`) as
//!   `call __htab_map_lookup_elem; if r0 == 0 goto +1; r0 += K`, K being
//!   where the value starts in the kernel's element: the three become one
//!   `call bpf_map_lookup_elem` again (jumps re-resolved around the cut);
//! * an array map lookup is inlined as address arithmetic on the map's
//!   memory; that, and direct map-value references, are refused with the
//!   reason: the emulator models map helpers, not kernel memory.
//!
//! Other rewrites (dead code removed, branches the verifier proved fixed
//! turned into `ja`, division-by-zero guards) leave ordinary instructions
//! that mean the same thing, and stay.

use thiserror::Error;

use crate::insn::{decode_all, helper, op, Insn, MapSpec, Program};

/// `lddw` source: a map referenced by fd (by id in a dump).
const PSEUDO_MAP_FD: u8 = op::PSEUDO_MAP_FD;
/// `call` source: a bpf-to-bpf call (`imm` is relative, not a helper).
const PSEUDO_CALL: u8 = 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum XlatedError {
    #[error("the dump is empty or not a whole number of instructions ({0} bytes)")]
    Length(usize),
    #[error(
        "instruction {slot}: references map id {id}, which the program's map list does not hold"
    )]
    UnknownMap { slot: usize, id: u32 },
    #[error("instruction {slot}: a direct reference to a map value (src {src}) is kernel memory devcg does not model")]
    MapValue { slot: usize, src: u8 },
    #[error("instruction {slot}: calls a kernel function at offset {imm} that could not be named (are kernel addresses hidden? /proc/kallsyms needs root and kptr_restrict < 2)")]
    Unresolved { slot: usize, imm: i32 },
    #[error("instruction {slot}: calls {name}, which devcg does not model")]
    UnknownCall { slot: usize, name: String },
    #[error("instruction {slot}: the kernel inlined an array map lookup (map {map}); devcg cannot undo that")]
    InlinedArrayLookup { slot: usize, map: usize },
    #[error("map {id} is of BPF map type {map_type}; devcg models hash and array maps only")]
    MapType { id: u32, map_type: u32 },
    #[error("instruction {slot}: {name} is not followed by the kernel's inlined-lookup epilogue")]
    BadInlinedLookup { slot: usize, name: String },
}

/// The helper a kernel function stands for, by its symbol name.
pub fn helper_of(name: &str) -> Option<i32> {
    // Map helpers are bound to the map type's operation, whatever the type.
    if name.ends_with("_map_lookup_elem") && !name.starts_with("__") {
        return Some(helper::MAP_LOOKUP_ELEM);
    }
    if name.ends_with("_map_update_elem") {
        return Some(helper::MAP_UPDATE_ELEM);
    }
    if name.ends_with("_map_delete_elem") {
        return Some(helper::MAP_DELETE_ELEM);
    }
    // Other helpers keep their own function (`bpf_<name>` is the proto's
    // implementation); the numbers are UAPI (enum bpf_func_id).
    Some(match name {
        "bpf_ktime_get_ns" => 5,
        "bpf_trace_printk" => 6,
        "bpf_get_prandom_u32" => 7,
        "bpf_get_smp_processor_id" => 8,
        "bpf_get_current_pid_tgid" => 14,
        "bpf_get_current_uid_gid" => 15,
        "bpf_get_current_comm" => 16,
        "bpf_get_current_cgroup_id" => 80,
        "bpf_get_local_storage" => 81,
        _ => return None,
    })
}

/// The inlined hash lookup's entry point.
const HTAB_INLINE: &str = "__htab_map_lookup_elem";

/// Rebuilds a runnable program from a dump: `bytes` the translated
/// instructions, `maps` the program's maps in the order of its map ids
/// (`map_ids[i]` is `maps[i]`'s id), `resolve` names the kernel function a
/// call's `imm` reaches.
pub fn untranslate(
    bytes: &[u8],
    map_ids: &[u32],
    maps: Vec<MapSpec>,
    resolve: &dyn Fn(i32) -> Option<String>,
) -> Result<Program, XlatedError> {
    let mut insns = decode_all(bytes).map_err(|_| XlatedError::Length(bytes.len()))?;
    let mut cut = vec![false; insns.len()];
    // Which register holds which map's address, to recognise an inlined
    // array lookup (address arithmetic on a map pointer).
    let mut slot = 0;
    while slot < insns.len() {
        let insn = insns[slot];
        if insn.is_lddw() {
            match insn.src {
                PSEUDO_MAP_FD => {
                    let id = insn.imm as u32;
                    let index = map_ids
                        .iter()
                        .position(|&m| m == id)
                        .ok_or(XlatedError::UnknownMap { slot, id })?;
                    insns[slot].imm = index as i32;
                    if let Some(next) = insns.get(slot + 2) {
                        let adds_to_map = next.code == op::ALU64 | op::ADD | op::K
                            && next.dst == insn.dst
                            && maps[index].kind == crate::insn::MapKind::Array;
                        if adds_to_map {
                            return Err(XlatedError::InlinedArrayLookup { slot, map: index });
                        }
                    }
                }
                0 => {}
                src => return Err(XlatedError::MapValue { slot, src }),
            }
            slot += 2;
            continue;
        }
        let is_helper_call = insn.code == op::JMP | op::CALL && insn.src != PSEUDO_CALL;
        if is_helper_call {
            let name = resolve(insn.imm).ok_or(XlatedError::Unresolved {
                slot,
                imm: insn.imm,
            })?;
            if name == HTAB_INLINE {
                // call; if r0 == 0 goto +1; r0 += K
                let epilogue = insns.get(slot + 1).zip(insns.get(slot + 2));
                let ok = epilogue.is_some_and(|(j, add)| {
                    j.code == op::JMP | op::JEQ | op::K
                        && j.dst == 0
                        && j.imm == 0
                        && j.off == 1
                        && add.code == op::ALU64 | op::ADD | op::K
                        && add.dst == 0
                });
                if !ok {
                    return Err(XlatedError::BadInlinedLookup { slot, name });
                }
                insns[slot].imm = helper::MAP_LOOKUP_ELEM;
                cut[slot + 1] = true;
                cut[slot + 2] = true;
                slot += 3;
                continue;
            }
            insns[slot].imm = helper_of(&name).ok_or(XlatedError::UnknownCall { slot, name })?;
        }
        slot += 1;
    }
    Ok(Program {
        insns: remove(&insns, &cut),
        maps,
    })
}

/// `insns` without the slots marked in `cut`, every jump and bpf-to-bpf
/// call re-aimed at the same instruction (one that was cut: the next kept
/// one).
fn remove(insns: &[Insn], cut: &[bool]) -> Vec<Insn> {
    // new_index[i]: where old slot i (or the first kept slot after it) lands.
    let mut new_index = vec![0usize; insns.len() + 1];
    let mut kept = 0;
    for i in 0..insns.len() {
        new_index[i] = kept;
        kept += usize::from(!cut[i]);
    }
    new_index[insns.len()] = kept;
    let target = |from: usize, rel: i64| -> i64 {
        let old = (from as i64 + 1 + rel).clamp(0, insns.len() as i64) as usize;
        new_index[old] as i64 - new_index[from] as i64 - 1
    };
    let mut out = Vec::with_capacity(kept);
    for (i, insn) in insns.iter().enumerate() {
        if cut[i] {
            continue;
        }
        let mut insn = *insn;
        let class = op::class(insn.code);
        let is_jump = (class == op::JMP || class == op::JMP32) && !insn.is_lddw();
        let operation = op::operation(insn.code);
        if is_jump && operation == op::CALL && insn.src == PSEUDO_CALL {
            insn.imm = target(i, i64::from(insn.imm)) as i32;
        } else if is_jump && operation == op::JA && class == op::JMP32 {
            // gotol: 32-bit offset in imm.
            insn.imm = target(i, i64::from(insn.imm)) as i32;
        } else if is_jump && operation != op::CALL && operation != op::EXIT {
            insn.off = target(i, i64::from(insn.off)) as i16;
        }
        out.push(insn);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::{Asm, Cond, Width};
    use crate::insn::{encode_all, MapKind, R0, R1, R2};

    /// `lddw` source: the address of a value inside a map.
    const PSEUDO_MAP_VALUE: u8 = 2;

    fn hash_map() -> MapSpec {
        MapSpec {
            name: "m".into(),
            kind: MapKind::Hash,
            key_size: 4,
            value_size: 4,
            max_entries: 4,
            entries: vec![],
        }
    }

    /// A map program as loaded: lddw map 0, lookup, branch on the result.
    fn loaded() -> Vec<Insn> {
        let mut a = Asm::new();
        let miss = a.new_label();
        a.st_imm(crate::asm::Size::W, crate::insn::R10, -4, 7);
        a.mov_reg(Width::W64, R2, crate::insn::R10);
        a.alu_imm(Width::W64, op::ADD, R2, -4);
        a.ld_map(R1, 0);
        a.call(helper::MAP_LOOKUP_ELEM);
        a.jmp_imm(Width::W64, Cond::Eq, R0, 0, miss);
        a.ret(1);
        a.bind(miss);
        a.ret(0);
        a.finish().unwrap()
    }

    /// What the kernel would dump for it: the map by id 42, the lookup
    /// inlined, the call aimed at offset 1000.
    fn dumped() -> Vec<Insn> {
        let mut out = Vec::new();
        for insn in loaded() {
            let mut insn = insn;
            if insn.is_lddw() && insn.src == PSEUDO_MAP_FD {
                insn.imm = 42;
            }
            if insn.code == op::JMP | op::CALL {
                insn.imm = 1000;
                out.push(insn);
                out.push(Insn::new(op::JMP | op::JEQ | op::K, 0, 0, 1, 0));
                out.push(Insn::new(op::ALU64 | op::ADD | op::K, 0, 0, 0, 48));
                continue;
            }
            out.push(insn);
        }
        // The branch on the result follows the epilogue: its offset holds.
        out
    }

    fn names(imm: i32) -> Option<String> {
        match imm {
            1000 => Some(HTAB_INLINE.to_string()),
            2000 => Some("htab_map_update_elem".to_string()),
            3000 => Some("bpf_get_current_uid_gid".to_string()),
            4000 => Some("some_kfunc".to_string()),
            _ => None,
        }
    }

    #[test]
    fn an_inlined_hash_lookup_becomes_the_helper_call_again() {
        let p = untranslate(&encode_all(&dumped()), &[42], vec![hash_map()], &names).unwrap();
        assert_eq!(p.insns, loaded());
        assert_eq!(p.maps, vec![hash_map()]);
    }

    #[test]
    fn jumps_across_the_cut_are_reaimed() {
        // A jump from before the lookup to after it must land on the same
        // instruction once the epilogue is gone.
        let mut a = Asm::new();
        let end = a.new_label();
        a.mov_imm(Width::W64, R0, 0);
        a.jmp_imm(Width::W64, Cond::Eq, R0, 5, end);
        a.ld_map(R1, 0);
        a.mov_reg(Width::W64, R2, crate::insn::R10);
        a.call(1000);
        a.raw(Insn::new(op::JMP | op::JEQ | op::K, 0, 0, 1, 0));
        a.raw(Insn::new(op::ALU64 | op::ADD | op::K, 0, 0, 0, 48));
        a.mov_imm(Width::W64, R0, 0);
        a.bind(end);
        a.ret(1);
        let mut insns = a.finish().unwrap();
        for i in insns.iter_mut().filter(|i| i.is_lddw()) {
            i.imm = 42;
        }
        let p = untranslate(&encode_all(&insns), &[42], vec![hash_map()], &names).unwrap();
        assert_eq!(p.insns.len(), insns.len() - 2);
        // The conditional jump skips the lddw (2), mov, call and mov: 5.
        assert_eq!(p.insns[1].off, 5);
        assert_eq!(p.insns[5].imm, helper::MAP_LOOKUP_ELEM);
    }

    #[test]
    fn map_operations_and_helpers_are_named_back() {
        let call = |imm| Insn::new(op::JMP | op::CALL, 0, 0, 0, imm);
        let exit = Insn::new(op::JMP | op::EXIT, 0, 0, 0, 0);
        let p = untranslate(
            &encode_all(&[call(2000), call(3000), exit]),
            &[],
            vec![],
            &names,
        )
        .unwrap();
        assert_eq!(p.insns[0].imm, helper::MAP_UPDATE_ELEM);
        assert_eq!(p.insns[1].imm, 15);
    }

    #[test]
    fn what_cannot_be_modelled_is_refused_with_the_reason() {
        let call = |imm| Insn::new(op::JMP | op::CALL, 0, 0, 0, imm);
        let exit = Insn::new(op::JMP | op::EXIT, 0, 0, 0, 0);
        let run = |insns: &[Insn]| untranslate(&encode_all(insns), &[42], vec![hash_map()], &names);
        assert_eq!(
            run(&[call(4000), exit]).unwrap_err(),
            XlatedError::UnknownCall {
                slot: 0,
                name: "some_kfunc".into()
            }
        );
        assert_eq!(
            run(&[call(5), exit]).unwrap_err(),
            XlatedError::Unresolved { slot: 0, imm: 5 }
        );
        assert_eq!(
            run(&[call(1000), exit]).unwrap_err(),
            XlatedError::BadInlinedLookup {
                slot: 0,
                name: HTAB_INLINE.into()
            }
        );
        let mut a = Asm::new();
        a.ld_map(R1, 0);
        a.ret(0);
        let mut insns = a.finish().unwrap();
        insns[0].imm = 7;
        assert_eq!(
            run(&insns).unwrap_err(),
            XlatedError::UnknownMap { slot: 0, id: 7 }
        );
        insns[0].src = PSEUDO_MAP_VALUE;
        assert!(matches!(
            run(&insns).unwrap_err(),
            XlatedError::MapValue { .. }
        ));
        assert_eq!(run(&[]).unwrap_err(), XlatedError::Length(0));
    }
}
