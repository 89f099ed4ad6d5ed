//! The little BTF a BTF-defined map needs (include/uapi/linux/btf.h):
//! libbpf 1.x knows maps only from `.maps` and its BTF (the legacy `maps`
//! section is gone since 1.0). Each map is a global variable of an
//! anonymous struct whose members are pointers to `int[N]`, N carrying the
//! value (what `__uint(key_size, 12)` expands to), all in a `.maps`
//! datasec. Only encoding lives here: reading is aya-obj's.

use std::collections::HashMap;

const MAGIC: u16 = 0xeb9f;
const VERSION: u8 = 1;
const HEADER_LEN: u32 = 24;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;

/// `BTF_INT_SIGNED`.
const INT_SIGNED: u32 = 1;
/// `BTF_VAR_GLOBAL_ALLOCATED`.
const LINKAGE_GLOBAL: u32 = 1;

/// One map definition's fields, in member order.
pub const MEMBERS: [&str; 4] = ["type", "key_size", "value_size", "max_entries"];
/// A member is a pointer: the definition struct is 8 bytes per member.
pub const DEF_SIZE: u32 = 8 * MEMBERS.len() as u32;

/// A BTF blob under construction: type ids start at 1 (0 is void).
#[derive(Default)]
struct Builder {
    types: Vec<u8>,
    next_id: u32,
    strings: Vec<u8>,
    string_offsets: HashMap<String, u32>,
    /// `int (*)[n]` by n.
    uint_ptrs: HashMap<u32, u32>,
    int_id: u32,
}

impl Builder {
    fn new() -> Self {
        let mut b = Builder {
            next_id: 1,
            strings: vec![0],
            ..Builder::default()
        };
        let name = b.string("int");
        b.int_id = b.push(name, KIND_INT, 0, 4, &[(INT_SIGNED << 24) | 32]);
        b
    }

    fn string(&mut self, s: &str) -> u32 {
        if let Some(&off) = self.string_offsets.get(s) {
            return off;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        self.string_offsets.insert(s.to_string(), off);
        off
    }

    /// `struct btf_type` (name_off, info, size_or_type) and its trailing
    /// words; returns the new type's id.
    fn push(&mut self, name: u32, kind: u32, vlen: u32, size_or_type: u32, extra: &[u32]) -> u32 {
        for word in [name, (kind << 24) | vlen, size_or_type]
            .iter()
            .chain(extra)
        {
            self.types.extend_from_slice(&word.to_le_bytes());
        }
        self.next_id += 1;
        self.next_id - 1
    }

    /// `int (*)[n]`, shared between members with the same value.
    fn uint(&mut self, n: u32) -> u32 {
        if let Some(&id) = self.uint_ptrs.get(&n) {
            return id;
        }
        let int = self.int_id;
        // struct btf_array { type, index_type, nelems }
        let array = self.push(0, KIND_ARRAY, 0, 0, &[int, int, n]);
        let ptr = self.push(0, KIND_PTR, 0, array, &[]);
        self.uint_ptrs.insert(n, ptr);
        ptr
    }

    fn finish(self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN as usize + self.types.len() + self.strings.len());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(VERSION);
        out.push(0); // flags
        for word in [
            HEADER_LEN,
            0,                       // type_off
            self.types.len() as u32, // type_len
            self.types.len() as u32, // str_off
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}

/// A map as `.maps` declares it: its variable name and the four values.
pub struct MapDef<'a> {
    pub name: &'a str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// The `.BTF` section for `maps`, laid out in `.maps` in order, each
/// [`DEF_SIZE`] bytes.
pub fn maps_btf(maps: &[MapDef<'_>]) -> Vec<u8> {
    let mut b = Builder::new();
    let mut vars = Vec::new();
    for (i, m) in maps.iter().enumerate() {
        let mut words = Vec::new();
        for (bit, (member, value)) in MEMBERS
            .iter()
            .zip([m.map_type, m.key_size, m.value_size, m.max_entries])
            .enumerate()
        {
            let name = b.string(member);
            let ty = b.uint(value);
            // struct btf_member { name_off, type, offset in bits }
            words.extend([name, ty, 64 * bit as u32]);
        }
        let def = b.push(0, KIND_STRUCT, MEMBERS.len() as u32, DEF_SIZE, &words);
        let name = b.string(m.name);
        let var = b.push(name, KIND_VAR, 0, def, &[LINKAGE_GLOBAL]);
        // struct btf_var_secinfo { type, offset, size }
        vars.extend([var, i as u32 * DEF_SIZE, DEF_SIZE]);
    }
    let name = b.string(".maps");
    b.push(
        name,
        KIND_DATASEC,
        maps.len() as u32,
        maps.len() as u32 * DEF_SIZE,
        &vars,
    );
    b.finish()
}
