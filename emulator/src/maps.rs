//! Emulated BPF maps and the helpers rbpf calls for them.
//!
//! rbpf helpers are plain `fn` pointers, so the map state of the running
//! program is published in a thread-local for the length of one run. Values
//! live in arenas allocated once per emulator and registered with rbpf as
//! allowed memory, so `bpf_map_lookup_elem` can hand out real pointers.
//!
//! Kernel semantics: HASH looks up exact key bytes, a miss is NULL; ARRAY
//! takes a u32 index, out of range is NULL, every element exists (zeroed).
//! Programs that can change a map see the initial contents on every run,
//! as a freshly loaded program would.

use std::cell::Cell;
use std::collections::VecDeque;

use foldhash::HashMap;
use std::ops::Range;
use std::ptr::NonNull;
use std::sync::Mutex;

use devcg_engine::insn::{MapKind, MapSpec};

use crate::rewrite::{MAP_HANDLE, TAG_MASK};
use crate::verify::Facts;
use crate::EmuError;

/// The most value memory one map may take in the emulator.
const MAX_ARENA: usize = 64 << 20;

const EINVAL: i64 = 22;
const EEXIST: i64 = 17;
const ENOENT: i64 = 2;
const E2BIG: i64 = 7;
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;
const BPF_F_LOCK: u64 = 4;

fn errno(e: i64) -> u64 {
    (-e) as u64
}

/// Heap bytes owned by the emulator and written by rbpf through raw
/// addresses; only ever touched through the raw pointer, never through a
/// Rust reference, so the program's writes cannot alias one.
struct Arena {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: an Arena owns its allocation like a Box<[u8]>; access is
// serialized by the Mutex around MapState.
unsafe impl Send for Arena {}

impl Arena {
    fn new(len: usize) -> Arena {
        let boxed: Box<[u8]> = vec![0u8; len.max(1)].into_boxed_slice();
        let len = boxed.len();
        let ptr = NonNull::new(Box::into_raw(boxed) as *mut u8).expect("Box pointers are non-null");
        Arena { ptr, len }
    }

    fn range(&self) -> Range<u64> {
        let start = self.ptr.as_ptr() as u64;
        start..start + self.len as u64
    }

    fn addr(&self, off: usize) -> u64 {
        self.ptr.as_ptr() as u64 + off as u64
    }

    fn write(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= self.len, "arena write out of bounds");
        // SAFETY: in bounds (checked above) of memory we own.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(off), bytes.len())
        }
    }

    fn snapshot(&self) -> Vec<u8> {
        // SAFETY: the whole allocation, which we own; no run is under way
        // (callers hold the state lock).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }.to_vec()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from Box::into_raw of a Box<[u8]> of this length.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            )))
        }
    }
}

struct LiveMap {
    kind: MapKind,
    key_size: usize,
    value_size: usize,
    max_entries: u32,
    /// Value slot size, rounded up to 8 as the kernel does.
    stride: usize,
    arena: Arena,
    /// HASH: key bytes → value slot.
    index: HashMap<Box<[u8]>, u32>,
    /// HASH: unused slots; freed ones go to the back so a pointer the
    /// program still holds keeps its old value for a while, as in the kernel.
    free: VecDeque<u32>,
}

struct Pristine {
    bytes: Vec<u8>,
    index: HashMap<Box<[u8]>, u32>,
    free: VecDeque<u32>,
}

pub(crate) struct MapState {
    maps: Vec<LiveMap>,
    /// Initial contents, restored before each run of a mutating program.
    pristine: Option<Vec<Pristine>>,
}

pub(crate) struct Maps {
    state: Mutex<MapState>,
    ranges: Vec<Range<u64>>,
}

fn bad(map: usize, reason: impl Into<String>) -> EmuError {
    EmuError::BadMap {
        map,
        reason: reason.into(),
    }
}

impl LiveMap {
    fn new(i: usize, spec: &MapSpec, inserts: bool) -> Result<LiveMap, EmuError> {
        if spec.key_size == 0 || spec.value_size == 0 || spec.max_entries == 0 {
            return Err(bad(
                i,
                "key_size, value_size and max_entries must be nonzero",
            ));
        }
        if spec.kind == MapKind::Array && spec.key_size != 4 {
            return Err(bad(i, "an array map has 4-byte keys"));
        }
        let (key_size, value_size) = (spec.key_size as usize, spec.value_size as usize);
        for (k, v) in &spec.entries {
            if k.len() != key_size || v.len() != value_size {
                return Err(bad(
                    i,
                    format!(
                        "an entry has a {}-byte key and a {}-byte value",
                        k.len(),
                        v.len()
                    ),
                ));
            }
        }
        let stride = value_size.div_ceil(8) * 8;
        let mut distinct: Vec<&[u8]> = spec.entries.iter().map(|(k, _)| k.as_slice()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        let slots = match spec.kind {
            MapKind::Array => spec.max_entries as usize,
            MapKind::Hash => {
                if distinct.len() > spec.max_entries as usize {
                    return Err(bad(
                        i,
                        format!(
                            "{} entries exceed max_entries {}",
                            distinct.len(),
                            spec.max_entries
                        ),
                    ));
                }
                // One spare slot: an update replaces the element, as the kernel does.
                if inserts {
                    spec.max_entries as usize + 1
                } else {
                    distinct.len()
                }
            }
        };
        let bytes = slots.checked_mul(stride).filter(|&b| b <= MAX_ARENA);
        let Some(bytes) = bytes else {
            return Err(bad(
                i,
                format!("{slots} values of {value_size} bytes are too many to emulate"),
            ));
        };
        let mut map = LiveMap {
            kind: spec.kind,
            key_size,
            value_size,
            max_entries: spec.max_entries,
            stride,
            arena: Arena::new(bytes),
            index: HashMap::default(),
            free: (0..slots as u32).collect(),
        };
        for (k, v) in &spec.entries {
            match spec.kind {
                MapKind::Array => {
                    let idx = u32::from_le_bytes(k[..4].try_into().expect("4-byte key"));
                    if idx >= spec.max_entries {
                        return Err(bad(
                            i,
                            format!(
                                "entry index {idx} is not below max_entries {}",
                                spec.max_entries
                            ),
                        ));
                    }
                    map.arena.write(idx as usize * stride, v);
                }
                MapKind::Hash => {
                    let slot = match map.index.get(k.as_slice()) {
                        Some(&s) => s,
                        None => {
                            let s = map.free.pop_front().expect("room for every distinct key");
                            map.index.insert(k.clone().into_boxed_slice(), s);
                            s
                        }
                    };
                    map.arena.write(slot as usize * stride, v);
                }
            }
        }
        Ok(map)
    }

    fn pristine(&self) -> Pristine {
        Pristine {
            bytes: self.arena.snapshot(),
            index: self.index.clone(),
            free: self.free.clone(),
        }
    }

    fn restore(&mut self, p: &Pristine) {
        self.arena.write(0, &p.bytes);
        self.index.clone_from(&p.index);
        self.free.clone_from(&p.free);
    }

    /// The slot of `key`, if present.
    fn find(&self, key: &[u8]) -> Option<u32> {
        match self.kind {
            MapKind::Array => {
                let idx = u32::from_le_bytes(key[..4].try_into().expect("4-byte key"));
                (idx < self.max_entries).then_some(idx)
            }
            MapKind::Hash => self.index.get(key).copied(),
        }
    }

    fn lookup(&self, key: &[u8]) -> u64 {
        self.find(key)
            .map_or(0, |s| self.arena.addr(s as usize * self.stride))
    }

    /// `bpf_map_update_elem` as htab/array_map_update_elem answer it.
    fn update(&mut self, key: &[u8], value: u64, flags: u64) -> u64 {
        if flags & !BPF_F_LOCK > BPF_EXIST {
            return errno(EINVAL);
        }
        let existing = self.find(key);
        let slot = match self.kind {
            MapKind::Array => {
                let Some(slot) = existing else {
                    return errno(E2BIG);
                };
                if flags & BPF_NOEXIST != 0 {
                    return errno(EEXIST);
                }
                if flags & BPF_F_LOCK != 0 {
                    // No map here has a bpf_spin_lock in its value.
                    return errno(EINVAL);
                }
                slot
            }
            MapKind::Hash => {
                if flags & BPF_F_LOCK != 0 {
                    return errno(EINVAL);
                }
                match (existing, flags) {
                    (Some(_), BPF_NOEXIST) => return errno(EEXIST),
                    (None, BPF_EXIST) => return errno(ENOENT),
                    (None, _) if self.index.len() >= self.max_entries as usize => {
                        return errno(E2BIG)
                    }
                    _ => {}
                }
                let Some(slot) = self.free.pop_front() else {
                    return errno(E2BIG);
                };
                if let Some(old) = self.index.insert(key.to_vec().into_boxed_slice(), slot) {
                    self.free.push_back(old);
                }
                slot
            }
        };
        let dst = self.arena.addr(slot as usize * self.stride);
        // SAFETY: the verifier proved `value` points at value_size readable
        // bytes (stack or a map value); `dst` is a slot of our arena. They
        // may overlap (a value updated from itself): copy, not copy_nonoverlapping.
        unsafe { std::ptr::copy(value as *const u8, dst as *mut u8, self.value_size) };
        0
    }

    fn delete(&mut self, key: &[u8]) -> u64 {
        match self.kind {
            MapKind::Array => errno(EINVAL),
            MapKind::Hash => match self.index.remove(key) {
                Some(slot) => {
                    self.free.push_back(slot);
                    0
                }
                None => errno(ENOENT),
            },
        }
    }
}

impl MapState {
    fn map(&mut self, handle: u64) -> Option<&mut LiveMap> {
        if handle & TAG_MASK != MAP_HANDLE {
            return None;
        }
        self.maps.get_mut((handle & !TAG_MASK) as usize)
    }
}

/// Key bytes the program passed.
///
/// # Safety
/// `addr..addr + len` must be readable for the duration of the helper call;
/// the static verifier proves it for every key and value argument (the rbpf
/// stack of the running program, or a map arena).
unsafe fn program_bytes<'a>(addr: u64, len: usize) -> &'a [u8] {
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }
}

impl Maps {
    pub(crate) fn new(specs: &[MapSpec], facts: &Facts) -> Result<Maps, EmuError> {
        let maps = specs
            .iter()
            .enumerate()
            .map(|(i, s)| LiveMap::new(i, s, facts.map_inserts[i]))
            .collect::<Result<Vec<_>, _>>()?;
        let ranges = maps.iter().map(|m| m.arena.range()).collect();
        let pristine = facts
            .mutates_maps
            .then(|| maps.iter().map(LiveMap::pristine).collect());
        Ok(Maps {
            state: Mutex::new(MapState { maps, pristine }),
            ranges,
        })
    }

    /// Value memory the program may touch.
    pub(crate) fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// Runs `f` with this state published to the helpers.
    pub(crate) fn with_active<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state: &mut MapState = &mut guard;
        state.reset();
        let _active = Active::publish(state);
        f()
    }

    /// Resets the published state to the loaded contents again, between
    /// two runs inside one [`Maps::with_active`].
    pub(crate) fn reset_active(&self) {
        with_state(MapState::reset);
    }
}

impl MapState {
    fn reset(&mut self) {
        if let Some(p) = &self.pristine {
            for (m, p) in self.maps.iter_mut().zip(p.iter()) {
                m.restore(p);
            }
        }
    }
}

thread_local! {
    static ACTIVE: Cell<*mut MapState> = const { Cell::new(std::ptr::null_mut()) };
}

/// Publishes a state for the helpers; withdraws it on drop (also on unwind).
struct Active;

impl Active {
    fn publish(state: &mut MapState) -> Active {
        ACTIVE.with(|a| a.set(state as *mut MapState));
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(std::ptr::null_mut()));
    }
}

fn with_state<R>(f: impl FnOnce(&mut MapState) -> R) -> Option<R> {
    let p = ACTIVE.with(|a| a.get());
    if p.is_null() {
        return None;
    }
    // SAFETY: set by `with_active` on this thread from a `&mut MapState`
    // behind a held lock, and cleared before that borrow ends; rbpf calls
    // helpers synchronously on the same thread and nothing else touches the
    // state meanwhile.
    Some(f(unsafe { &mut *p }))
}

/// Key and value sizes of the map behind a handle, in the active state.
pub(crate) fn sizes(map: u64) -> Option<(usize, usize)> {
    with_state(|s| s.map(map).map(|m| (m.key_size, m.value_size))).flatten()
}

pub(crate) fn helper_lookup(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    with_state(|s| {
        let Some(m) = s.map(map) else { return 0 };
        // SAFETY: see program_bytes.
        let key = unsafe { program_bytes(key, m.key_size) };
        m.lookup(key)
    })
    .unwrap_or(0)
}

pub(crate) fn helper_update(map: u64, key: u64, value: u64, flags: u64, _: u64) -> u64 {
    with_state(|s| {
        let Some(m) = s.map(map) else {
            return errno(EINVAL);
        };
        // Copied: the key may live in a value this update overwrites.
        // SAFETY: see program_bytes.
        let key = unsafe { program_bytes(key, m.key_size) }.to_vec();
        m.update(&key, value, flags)
    })
    .unwrap_or(errno(EINVAL))
}

pub(crate) fn helper_delete(map: u64, key: u64, _: u64, _: u64, _: u64) -> u64 {
    with_state(|s| {
        let Some(m) = s.map(map) else {
            return errno(EINVAL);
        };
        // SAFETY: see program_bytes.
        let key = unsafe { program_bytes(key, m.key_size) }.to_vec();
        m.delete(&key)
    })
    .unwrap_or(errno(EINVAL))
}
