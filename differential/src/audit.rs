//! What a cgroup lets through, decided exactly from what it enforces: the
//! device programs that run for it (every one must allow) and, on a v1
//! hierarchy, its exception list (which must allow too). Pure: the kernel
//! layer reads the programs, maps and lists; this module decides every
//! reachable class, states the result as a table and as v1 rules, and
//! compares it with what a rule list means.
//!
//! The classes come from the programs themselves: each is run with the
//! major and minor symbolic (`emulator::symbolic`), which splits the plane
//! into boxes on which it takes one path, with a verdict per access. The
//! grid those boxes (and the devices the v1 list and the expected rules
//! name) cut the plane into is decided exactly, and a sample of it is
//! cross-checked by running the emulator. A program the split does not
//! follow (arithmetic on the numbers) falls back to exhaustive mode's
//! classes: majors paired with the minors that matter for them, from the
//! expected rules, the v1 list and map keys; a large program that only
//! compares, without `--expect`, is then refused with that advice rather
//! than guessed.
//!
//! Only requests a syscall can produce are decided: types b and c,
//! accesses `-` (access(2) F_OK), `r`, `w`, `rw` (open) and `m` (mknod),
//! majors below 2^12, minors below 2^20.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use devcg_emulator::symbolic::{self, Leaf, Region, Span};
use devcg_emulator::{EmuError, Emulator};
use devcg_engine::{
    Access, Behavior, DeviceType, Exception, Program, Request, Rule, RuleKind, RuleSet, Verdict,
};
use devcg_oracle::Policy;
use serde::Serialize;
use thiserror::Error;

use crate::exhaustive::{named, pairings, program_constants};

/// Above this, majors and minors are no longer numbers a syscall can name.
pub const MAJOR_LIMIT: u32 = 1 << 12;
pub const MINOR_LIMIT: u32 = 1 << 20;

/// The accesses a syscall produces, in display order.
pub const ACCESSES: [Access; 5] = [
    Access::NONE,
    Access::READ,
    Access::WRITE,
    Access(Access::READ.0 | Access::WRITE.0),
    Access::MKNOD,
];

/// A set of [`ACCESSES`] (bit i = `ACCESSES[i]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Allowed(pub u8);

impl Allowed {
    pub const NOTHING: Allowed = Allowed(0);
    pub const EVERYTHING: Allowed = Allowed(0b11111);

    pub fn contains(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }

    /// `r w rw m`-style text of the non-empty accesses allowed, and `-` for
    /// F_OK; `(none)` when nothing is.
    pub fn describe(self) -> String {
        if self == Allowed::NOTHING {
            return "(none)".into();
        }
        let names = ["-", "r", "w", "rw", "m"];
        (0..5)
            .filter(|&i| self.contains(i))
            .map(|i| names[i])
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Serialize for Allowed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.describe())
    }
}

/// What the cgroup enforces, as the kernel layer read it.
#[derive(Clone, Debug, Default)]
pub struct Enforcement {
    /// The effective device programs, each with a label for messages
    /// (`prog 42 "devcg_tree"`).
    pub programs: Vec<(String, Program)>,
    /// The v1 controller's state of the cgroup, where it has one.
    pub v1: Option<(Behavior, Vec<Exception>)>,
}

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("{label}: the emulator refuses this program: {source}")]
    Refused {
        label: String,
        #[source]
        source: EmuError,
    },
    #[error("{label}: the program failed on {request}: {source}")]
    Run {
        label: String,
        request: Request,
        #[source]
        source: EmuError,
    },
    #[error(
        "{majors} major classes x {minors} minor classes is too many to decide one by one; \
         give the rules the cgroup is meant to hold (--expect), whose structure pairs them"
    )]
    TooMany { majors: usize, minors: usize },
    #[error(
        "internal error: following the program's paths gives {device} {traced}, \
         running it gives {run}; please report this program"
    )]
    Inconsistent {
        device: String,
        traced: String,
        run: String,
    },
}

/// One class of devices and what it allows: a range of majors, a range of
/// minors (inclusive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Block {
    pub ty: DeviceType,
    pub majors: (u32, u32),
    pub minors: (u32, u32),
    pub allowed: Allowed,
}

impl Block {
    fn range(r: (u32, u32), limit: u32) -> String {
        match r {
            (0, hi) if hi == limit - 1 => "*".into(),
            (lo, hi) if lo == hi => lo.to_string(),
            (lo, hi) => format!("{lo}-{hi}"),
        }
    }

    /// `c 1:3`, `c 1:0-2`, `b *:*`.
    pub fn devices(&self) -> String {
        format!(
            "{} {}:{}",
            self.ty,
            Block::range(self.majors, MAJOR_LIMIT),
            Block::range(self.minors, MINOR_LIMIT)
        )
    }
}

/// The decided policy.
#[derive(Clone, Debug, Serialize)]
pub struct Audit {
    /// Classes decided (devices; each with five accesses).
    pub classes: usize,
    /// How the classes were chosen.
    pub partition: Partition,
    /// The policy, merged into as few blocks as adjacent classes allow:
    /// per type, per run of majors, runs of minors.
    pub blocks: Vec<Block>,
    /// The policy as v1 rules, when it can be written as one rule list.
    pub rules: Option<Vec<String>>,
    /// Every class as decided, before merging: what comparisons run on.
    #[serde(skip)]
    pub cells: Vec<Block>,
    /// Set by [`compare`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
}

/// The devices to decide, each with the ranges its class stands for.
struct Cell {
    ty: DeviceType,
    majors: (u32, u32),
    minors: (u32, u32),
}

/// How the classes were chosen, from the most exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partition {
    /// The programs' own paths (`emulator::symbolic`), refined by the
    /// numbers the v1 list and the expected rules name: exact.
    ProgramPaths,
    /// Every major class with every minor class of the numbers involved.
    FullProduct,
    /// Per major, the minors named with it (expected rules, v1 list, map keys).
    PerMajor,
}

impl Partition {
    pub fn describe(self) -> &'static str {
        match self {
            Partition::ProgramPaths => "classes from the programs' paths",
            Partition::FullProduct => "full major x minor product",
            Partition::PerMajor => "per-major minor classes",
        }
    }
}

/// Instructions one symbolic split (one program, type and band of majors)
/// may run over all its paths before the audit falls back to pairing
/// numbers: a few tenths of a second.
const SYMBOLIC_BUDGET: usize = 20_000_000;

/// Bands of majors split apart (a power of two dividing [`MAJOR_LIMIT`]).
const MAJOR_BANDS: u32 = 16;

/// Every number a syscall can name.
const PLANE: Region = Region {
    majors: (0, MAJOR_LIMIT - 1),
    minors: (0, MINOR_LIMIT - 1),
};

/// What every program's paths decide (`emulator::symbolic`), on the
/// classes they tell apart refined by the devices the v1 list and the
/// expected rules name. `None` when a program does what the split does not
/// follow (the caller pairs numbers instead).
fn traced(enforcement: &Enforcement, expected: &[Rule], v1: Option<&Policy>) -> Option<Vec<Block>> {
    // Each program and type in bands of majors, so that the cores share
    // the work of one large program (a band's paths are its own).
    let bands = (0..MAJOR_BANDS).map(|i| Region {
        majors: (
            i * MAJOR_LIMIT / MAJOR_BANDS,
            (i + 1) * MAJOR_LIMIT / MAJOR_BANDS - 1,
        ),
        ..PLANE
    });
    let jobs: Vec<(usize, DeviceType, Region)> = (0..enforcement.programs.len())
        .flat_map(|p| DeviceType::ALL.map(|ty| (p, ty)))
        .flat_map(|(p, ty)| bands.clone().map(move |band| (p, ty, band)))
        .collect();
    let split: Vec<Vec<Leaf>> = crate::parallel::batches_of(
        1,
        &jobs,
        || Ok::<_, ()>(()),
        |_, job| {
            let &[(p, ty, band)] = job else {
                unreachable!("batches of one")
            };
            let program = &enforcement.programs[p].1;
            symbolic::partition(program, ty, &ACCESSES, band, SYMBOLIC_BUDGET).ok()
        },
    )
    .ok()?
    .into_iter()
    .collect::<Option<_>>()?;
    let mut named = named(expected);
    if let Some((_, exceptions)) = &enforcement.v1 {
        named.extend(exceptions.iter().map(|e| (e.ty, e.major, e.minor)));
    }
    let number = |n: u32, limit: u32| match n {
        devcg_engine::WILDCARD => Some((0, limit - 1)),
        n if n < limit => Some((n, n)),
        _ => None,
    };
    let every_lane = Allowed::EVERYTHING.0;
    let mut out = Vec::new();
    for ty in DeviceType::ALL {
        // Per program, the leaves of all its bands.
        let of_type: Vec<Vec<&Leaf>> = (0..enforcement.programs.len())
            .map(|p| {
                jobs.iter()
                    .zip(&split)
                    .filter(|((q, t, _), _)| *q == p && *t == ty)
                    .flat_map(|(_, leaves)| leaves)
                    .collect()
            })
            .collect();
        let mut boxes: Vec<Region> = vec![PLANE];
        boxes.extend(
            of_type
                .iter()
                .flat_map(|l| l.iter().map(|leaf| leaf.region)),
        );
        boxes.extend(named.iter().filter(|d| d.0 == ty).filter_map(|d| {
            Some(Region {
                majors: number(d.1, MAJOR_LIMIT)?,
                minors: number(d.2, MINOR_LIMIT)?,
            })
        }));
        let grid = Grid::new(&boxes);
        // Every program must allow: start from everything, and AND each
        // program's painting in.
        let mut allowed = vec![every_lane; grid.cells()];
        for leaves in of_type {
            let mut own = vec![0u8; grid.cells()];
            let mut painted = vec![0u8; grid.cells()];
            for leaf in leaves {
                for cell in grid.covering(leaf.region) {
                    own[cell] |= leaf.allowed & leaf.lanes;
                    painted[cell] |= leaf.lanes;
                }
            }
            // The paths of one program cover every request once.
            if painted.iter().any(|&p| p != every_lane) {
                return None;
            }
            for (a, o) in allowed.iter_mut().zip(own) {
                *a &= o;
            }
        }
        for (cell, allowed) in grid.iter().zip(allowed) {
            let mut allowed = Allowed(allowed);
            if let Some(policy) = v1 {
                let wants = policy.decide_each_access(ty, cell.0 .0, cell.1 .0);
                for (i, a) in ACCESSES.iter().enumerate() {
                    if wants[usize::from(a.0)] != Verdict::Allow {
                        allowed.0 &= !(1 << i);
                    }
                }
            }
            out.push(Block {
                ty,
                majors: cell.0,
                minors: cell.1,
                allowed,
            });
        }
    }
    Some(out)
}

/// Rows (runs of majors), each cut into runs of minors: the coarsest grid
/// in which every box given is a union of cells. Cells are numbered row by
/// row.
struct Grid {
    /// The first major of each row.
    rows: Vec<u32>,
    /// The first minor of each cell of each row.
    minors: Vec<Vec<u32>>,
    /// The number of the first cell of each row.
    offsets: Vec<usize>,
}

impl Grid {
    fn new(boxes: &[Region]) -> Grid {
        let cut = |set: &mut Vec<u32>, (lo, hi): Span, limit: u32| {
            set.push(lo);
            if hi + 1 < limit {
                set.push(hi + 1);
            }
        };
        let mut rows = vec![0];
        for b in boxes {
            cut(&mut rows, b.majors, MAJOR_LIMIT);
        }
        rows.sort_unstable();
        rows.dedup();
        let mut minors: Vec<Vec<u32>> = vec![vec![0]; rows.len()];
        for b in boxes {
            let first = rows.partition_point(|&s| s < b.majors.0);
            let last = rows.partition_point(|&s| s <= b.majors.1);
            for cuts in &mut minors[first..last] {
                cut(cuts, b.minors, MINOR_LIMIT);
            }
        }
        let mut offsets = Vec::with_capacity(rows.len());
        let mut next = 0;
        for cuts in &mut minors {
            cuts.sort_unstable();
            cuts.dedup();
            offsets.push(next);
            next += cuts.len();
        }
        Grid {
            rows,
            minors,
            offsets,
        }
    }

    fn cells(&self) -> usize {
        self.offsets
            .last()
            .map_or(0, |&o| o + self.minors.last().map_or(0, Vec::len))
    }

    /// The numbers of the cells that make up `region` (a union of cells).
    fn covering(&self, region: Region) -> impl Iterator<Item = usize> + '_ {
        let first = self.rows.partition_point(|&s| s < region.majors.0);
        let last = self.rows.partition_point(|&s| s <= region.majors.1);
        (first..last).flat_map(move |row| {
            let cuts = &self.minors[row];
            let lo = cuts.partition_point(|&s| s < region.minors.0);
            let hi = cuts.partition_point(|&s| s <= region.minors.1);
            (lo..hi).map(move |j| self.offsets[row] + j)
        })
    }

    /// Every cell's majors and minors, in number order.
    fn iter(&self) -> impl Iterator<Item = (Span, Span)> + '_ {
        let end = |v: &[u32], i: usize, limit: u32| v.get(i + 1).map_or(limit - 1, |n| n - 1);
        self.rows.iter().enumerate().flat_map(move |(i, &ma)| {
            let majors = (ma, end(&self.rows, i, MAJOR_LIMIT));
            let cuts = &self.minors[i];
            cuts.iter()
                .enumerate()
                .map(move |(j, &mi)| (majors, (mi, end(cuts, j, MINOR_LIMIT))))
        })
    }
}

/// The classes from the numbers involved: those the expected rules and the
/// v1 list name, the programs' constants and map keys, paired per major
/// when their full product is too large.
fn paired_cells(
    enforcement: &Enforcement,
    expected: &[Rule],
) -> Result<(Vec<Cell>, Partition), AuditError> {
    let mut named = named(expected);
    if let Some((_, exceptions)) = &enforcement.v1 {
        named.extend(exceptions.iter().map(|e| (e.ty, e.major, e.minor)));
    }
    let mut constants = std::collections::BTreeSet::new();
    let mut keyed = false;
    for (_, p) in &enforcement.programs {
        constants.extend(program_constants(p));
        // A map key holds the numbers a lookup pairs: each two consecutive
        // 32-bit words may be (major, minor), as in devcg's and libvirt's
        // keys; pairing them all is a superset of the right pairs.
        // Only without expected rules: those already pair what matters.
        for map in p.maps.iter().filter(|_| expected.is_empty()) {
            for (key, _) in &map.entries {
                let words: Vec<u32> = key
                    .chunks_exact(4)
                    .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect();
                for pair in words.windows(2) {
                    for ty in DeviceType::ALL {
                        named.push((ty, pair[0], pair[1]));
                    }
                }
                keyed = true;
            }
        }
    }
    let partial = RuleSet::from_rules(expected).behavior == Behavior::Allow;
    let (devices, full) = pairings(&named, &constants, partial);
    if !full && expected.is_empty() && !keyed {
        let majors = constants.iter().filter(|&&n| n < MAJOR_LIMIT).count();
        let minors = constants.iter().filter(|&&n| n < MINOR_LIMIT).count();
        return Err(AuditError::TooMany { majors, minors });
    }
    // Per type and major: the minor representatives, in order.
    let mut rows: BTreeMap<(DeviceType, u32), Vec<u32>> = BTreeMap::new();
    for (ty, major, minor) in devices {
        if major < MAJOR_LIMIT && minor < MINOR_LIMIT {
            rows.entry((ty, major)).or_default().push(minor);
        }
    }
    let mut out = Vec::new();
    for ty in DeviceType::ALL {
        let majors: Vec<u32> = rows.keys().filter(|k| k.0 == ty).map(|k| k.1).collect();
        for (i, &major) in majors.iter().enumerate() {
            let major_end = majors.get(i + 1).map_or(MAJOR_LIMIT - 1, |n| n - 1);
            let mut minors = rows[&(ty, major)].clone();
            minors.sort_unstable();
            minors.dedup();
            for (j, &minor) in minors.iter().enumerate() {
                let minor_end = minors.get(j + 1).map_or(MINOR_LIMIT - 1, |n| n - 1);
                out.push(Cell {
                    ty,
                    majors: (major, major_end),
                    minors: (minor, minor_end),
                });
            }
        }
    }
    let partition = if full {
        Partition::FullProduct
    } else {
        Partition::PerMajor
    };
    Ok((out, partition))
}

/// Every program of `enforcement` ready to run, or the first refusal.
fn emulators(enforcement: &Enforcement) -> Result<Vec<(&str, Emulator)>, AuditError> {
    enforcement
        .programs
        .iter()
        .map(|(label, p)| {
            Emulator::new(p)
                .map(|e| (label.as_str(), e))
                .map_err(|source| AuditError::Refused {
                    label: label.clone(),
                    source,
                })
        })
        .collect()
}

fn decide_cell(
    cell: &Cell,
    programs: &[(&str, Emulator)],
    v1: Option<&Policy>,
) -> Result<Allowed, AuditError> {
    let mut allowed = Allowed::NOTHING;
    for (i, &access) in ACCESSES.iter().enumerate() {
        let req = Request::new(cell.ty, cell.majors.0, cell.minors.0, access);
        let mut yes = v1.is_none_or(|p| p.decide(&req) == Verdict::Allow);
        for (label, emu) in programs {
            if !yes {
                break;
            }
            yes = emu.run(&req).map_err(|source| AuditError::Run {
                label: label.to_string(),
                request: req,
                source,
            })? == Verdict::Allow;
        }
        if yes {
            allowed.0 |= 1 << i;
        }
    }
    Ok(allowed)
}

/// Decides every reachable class of what `enforcement` lets through.
/// `expected` (maybe empty) only adds the numbers it names, so that a
/// comparison sees every class where the two may differ.
pub fn audit(enforcement: &Enforcement, expected: &[Rule]) -> Result<Audit, AuditError> {
    let v1 = enforcement
        .v1
        .as_ref()
        .map(|(b, e)| Policy::new(*b, e.clone()));
    // Every program checked first: a refused one is the result, with the
    // emulator's reason.
    let checked = emulators(enforcement)?;
    let (cells, partition) = match traced(enforcement, expected, v1.as_ref()) {
        Some(cells) => {
            cross_check(&cells, &checked, v1.as_ref())?;
            (cells, Partition::ProgramPaths)
        }
        None => {
            let (cells, partition) = paired_cells(enforcement, expected)?;
            (decide(cells, enforcement, v1.as_ref())?, partition)
        }
    };
    let blocks = merge(cells.clone());
    let rules = as_rules(&cells);
    Ok(Audit {
        classes: cells.len(),
        partition,
        blocks,
        rules,
        cells,
        differences: Vec::new(),
    })
}

/// Runs the emulator on the first request of every cell.
fn decide(
    cells: Vec<Cell>,
    enforcement: &Enforcement,
    v1: Option<&Policy>,
) -> Result<Vec<Block>, AuditError> {
    // Each worker with emulators of its own.
    let decided: Vec<Allowed> = crate::parallel::batches(
        &cells,
        || emulators(enforcement),
        |programs, batch| {
            batch
                .iter()
                .map(|c| decide_cell(c, programs, v1))
                .collect::<Result<Vec<_>, _>>()
        },
    )?
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?
    .into_iter()
    .flatten()
    .collect();
    Ok(cells
        .into_iter()
        .zip(decided)
        .map(|(c, allowed)| Block {
            ty: c.ty,
            majors: c.majors,
            minors: c.minors,
            allowed,
        })
        .collect())
}

/// Cells whose traced answer is checked against runs of the emulator,
/// spread evenly over all of them.
const CROSS_CHECKS: usize = 4096;

/// The traced answers of a sample of cells, each at its first and its last
/// request, against the emulator's runs: the symbolic split is a second
/// executor, and a disagreement is a bug to report, not a policy.
fn cross_check(
    cells: &[Block],
    programs: &[(&str, Emulator)],
    v1: Option<&Policy>,
) -> Result<(), AuditError> {
    let step = cells.len().div_ceil(CROSS_CHECKS).max(1);
    for block in cells.iter().step_by(step).chain(cells.last()) {
        for (major, minor) in [
            (block.majors.0, block.minors.0),
            (block.majors.1, block.minors.1),
        ] {
            let cell = Cell {
                ty: block.ty,
                majors: (major, major),
                minors: (minor, minor),
            };
            let run = decide_cell(&cell, programs, v1)?;
            if run != block.allowed {
                return Err(AuditError::Inconsistent {
                    device: format!("{} {major}:{minor}", block.ty),
                    traced: block.allowed.describe(),
                    run: run.describe(),
                });
            }
        }
    }
    Ok(())
}

/// A run of majors of one type and its runs of minors with their answers.
type Row = (DeviceType, (u32, u32), Vec<((u32, u32), Allowed)>);

/// Adjacent minors with the same answer become one block, then adjacent
/// majors with the same row of blocks.
fn merge(blocks: Vec<Block>) -> Vec<Block> {
    let mut rows: Vec<Row> = Vec::new();
    for b in blocks {
        match rows.last_mut() {
            Some((ty, majors, runs)) if *ty == b.ty && *majors == b.majors => {
                let last = runs.last_mut().expect("rows start non-empty");
                if last.1 == b.allowed && last.0 .1 + 1 == b.minors.0 {
                    last.0 .1 = b.minors.1;
                } else {
                    runs.push((b.minors, b.allowed));
                }
            }
            _ => rows.push((b.ty, b.majors, vec![(b.minors, b.allowed)])),
        }
    }
    let mut merged: Vec<Row> = Vec::new();
    for (ty, majors, runs) in rows {
        match merged.last_mut() {
            Some((t, m, r)) if *t == ty && m.1 + 1 == majors.0 && *r == runs => m.1 = majors.1,
            _ => merged.push((ty, majors, runs)),
        }
    }
    merged
        .into_iter()
        .flat_map(|(ty, majors, runs)| {
            runs.into_iter().map(move |(minors, allowed)| Block {
                ty,
                majors,
                minors,
                allowed,
            })
        })
        .collect()
}

/// The access of one v1 grant per maximal member of `allowed` (rw covers
/// r and w; `-` comes with any grant).
fn grants(allowed: Allowed) -> Vec<Access> {
    let (r, w, rw, m) = (
        allowed.contains(1),
        allowed.contains(2),
        allowed.contains(3),
        allowed.contains(4),
    );
    let rw_access = Access(Access::READ.0 | Access::WRITE.0);
    match (rw, m) {
        (true, true) => vec![Access::ALL],
        (true, false) => vec![rw_access],
        _ => {
            let mut out = Vec::new();
            if r {
                out.push(Access::READ);
            }
            if w {
                out.push(Access::WRITE);
            }
            if m {
                out.push(Access::MKNOD);
            }
            out
        }
    }
}

/// The two ways to write a policy in v1: `deny a` and grants (each cell's
/// value: the accesses it allows), or `allow a` and denials (each cell's
/// value: the bits r, w, m it denies; a denial refuses every request that
/// shares a bit with it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    AllowList,
    DenyList,
}

impl Mode {
    fn value(self, allowed: Allowed) -> u8 {
        match self {
            Mode::AllowList => allowed.0,
            Mode::DenyList => [
                (1usize, Access::READ),
                (2, Access::WRITE),
                (4, Access::MKNOD),
            ]
            .iter()
            .filter(|(i, _)| !allowed.contains(*i))
            .fold(0, |acc, (_, a)| acc | a.0),
        }
    }

    /// The value of the one line a device can have of its own, given what
    /// wider lines already give it (`covered`), or `None` if no single line
    /// gives exactly the rest. Allow list: the uncovered maximal accesses,
    /// merged, as the kernel merges same-device exceptions; merging r and
    /// w would grant rw, so a device that allows both but not rw cannot
    /// have them both from its own line. Deny list: the denied bits, which
    /// merge harmlessly.
    fn own_line(self, allowed: Allowed, covered: u8) -> Option<u8> {
        match self {
            Mode::DenyList => Some(self.value(allowed)),
            Mode::AllowList => {
                let (r, w, rw, m) = (1usize, 2usize, 3usize, 4usize);
                // Maximal members of the family, each with its family bit.
                let mut maximal = Vec::new();
                if allowed.contains(rw) {
                    maximal.push(rw);
                } else {
                    maximal.extend([r, w].into_iter().filter(|&i| allowed.contains(i)));
                }
                if allowed.contains(m) {
                    maximal.push(m);
                }
                let missing: Vec<usize> = maximal
                    .into_iter()
                    .filter(|&i| covered & (1 << i) == 0)
                    .collect();
                if missing.contains(&r) && missing.contains(&w) {
                    return None;
                }
                // One access set: its downward closure, as family bits.
                let access = missing
                    .iter()
                    .fold(Access::NONE, |acc, &i| Access(acc.0 | ACCESSES[i].0));
                let family = ACCESSES
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| access.contains(**a) && !(a.is_empty() && access.is_empty()))
                    .fold(0u8, |f, (i, _)| f | (1 << i));
                // Only `-` left, and nothing to grant: v1 cannot say it.
                if family == 0 && allowed.0 & !covered != 0 {
                    return None;
                }
                Some(family)
            }
        }
    }

    fn lines(self, ty: DeviceType, major: u32, minor: u32, value: u8) -> Vec<Rule> {
        let accesses = match self {
            Mode::AllowList => grants(Allowed(value)),
            Mode::DenyList => vec![Access(value)],
        };
        let kind = match self {
            Mode::AllowList => RuleKind::Allow,
            Mode::DenyList => RuleKind::Deny,
        };
        accesses
            .into_iter()
            .filter(|a| !a.is_empty())
            .map(|a| rule(kind, exception(ty, major, minor, a)))
            .collect()
    }
}

/// The v1 number a class stands for: itself when it is one number, `None`
/// for a range (v1 names numbers and `*`, never ranges).
fn single(r: (u32, u32)) -> Option<u32> {
    (r.0 == r.1).then_some(r.0)
}

/// A rule list in `mode` for `cells`, widest lines first: per type one
/// `*:*` line for what every cell shares, then `*:minor` columns and
/// `major:*` rows for what they share beyond it, then single devices for
/// the rest. `None` when a range class needs a line of its own.
fn synthesize(cells: &[Block], mode: Mode) -> Option<Vec<Rule>> {
    let wildcard = devcg_engine::WILDCARD;
    let mut rules = vec![all(match mode {
        Mode::AllowList => RuleKind::Deny,
        Mode::DenyList => RuleKind::Allow,
    })];
    for ty in DeviceType::ALL {
        let of_type: Vec<&Block> = cells.iter().filter(|b| b.ty == ty).collect();
        let mut covered = vec![0u8; of_type.len()];
        let mut add = |major: u32, minor: u32, scope: &[usize], covered: &mut Vec<u8>| {
            let common = scope
                .iter()
                .fold(0xff, |acc, &i| acc & mode.value(of_type[i].allowed));
            let new = scope.iter().any(|&i| common & !covered[i] != 0);
            if common != 0 && new {
                rules.extend(mode.lines(ty, major, minor, common));
                for &i in scope {
                    covered[i] |= common;
                }
            }
        };
        let every: Vec<usize> = (0..of_type.len()).collect();
        add(wildcard, wildcard, &every, &mut covered);
        // Columns: a minor that is a class of its own in every row.
        let rows: BTreeMap<(u32, u32), Vec<usize>> =
            every.iter().fold(BTreeMap::new(), |mut m, &i| {
                m.entry(of_type[i].majors).or_insert_with(Vec::new).push(i);
                m
            });
        let mut columns: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for &i in &every {
            if let Some(minor) = single(of_type[i].minors) {
                columns.entry(minor).or_default().push(i);
            }
        }
        for (minor, scope) in &columns {
            if scope.len() == rows.len() {
                add(wildcard, *minor, scope, &mut covered);
            }
        }
        for (majors, scope) in &rows {
            if let Some(major) = single(*majors) {
                add(major, wildcard, scope, &mut covered);
            }
        }
        for &i in &every {
            let b = of_type[i];
            let rest = mode.value(b.allowed) & !covered[i];
            if rest == 0 {
                continue;
            }
            let (major, minor) = (single(b.majors)?, single(b.minors)?);
            // Lines with the same device merge into one exception in the
            // kernel, so a device gets one access set of its own.
            let value = mode.own_line(b.allowed, covered[i])?;
            rules.extend(mode.lines(ty, major, minor, value));
            covered[i] |= value;
        }
    }
    Some(rules)
}

/// The fewest-lines v1 rule list found that means exactly `cells`, or
/// `None` when neither mode gives one (a policy a program can state and
/// v1 cannot, e.g. a range of majors). Every candidate is checked against
/// the oracle on every class before it is returned.
fn as_rules(cells: &[Block]) -> Option<Vec<String>> {
    [Mode::AllowList, Mode::DenyList]
        .into_iter()
        .filter_map(|mode| synthesize(cells, mode))
        .filter(|rules| means(rules, cells))
        .min_by_key(|rules| rules.len())
        .map(|rules| rules.iter().map(Rule::to_string).collect())
}

/// Whether the oracle, on `rules`, answers every class as the audit did,
/// at each corner of the class.
fn means(rules: &[Rule], cells: &[Block]) -> bool {
    let policy = Policy::of(rules);
    cells.iter().all(|b| {
        let (majors, minors) = ([b.majors.0, b.majors.1], [b.minors.0, b.minors.1]);
        // A one-number class has one corner: decide it once.
        let majors = &majors[..if b.majors.0 == b.majors.1 { 1 } else { 2 }];
        let minors = &minors[..if b.minors.0 == b.minors.1 { 1 } else { 2 }];
        majors.iter().all(|&ma| {
            minors.iter().all(|&mi| {
                let verdicts = policy.decide_each_access(b.ty, ma, mi);
                ACCESSES
                    .iter()
                    .enumerate()
                    .all(|(i, a)| verdicts[usize::from(a.0)].is_allow() == b.allowed.contains(i))
            })
        })
    })
}

fn exception(ty: DeviceType, major: u32, minor: u32, access: Access) -> Exception {
    Exception {
        ty,
        major,
        minor,
        access,
    }
}

fn rule(kind: RuleKind, e: Exception) -> Rule {
    Rule::from_parsed(kind, devcg_engine::v1text::V1Text::Exception(e))
}

fn all(kind: RuleKind) -> Rule {
    Rule::from_parsed(kind, devcg_engine::v1text::V1Text::All)
}

/// A reachable class where the cgroup and the expected rules disagree,
/// merged with its neighbours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub devices: String,
    pub access: String,
    /// The same devices and access as data: the first block of the class.
    #[serde(skip)]
    pub class: Block,
    #[serde(skip)]
    pub request_access: Access,
    pub expected: Verdict,
    pub enforced: Verdict,
    /// The cgroup allows what the rules deny.
    pub security: bool,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: expected {}, enforced {}",
            self.devices, self.access, self.expected, self.enforced
        )
    }
}

/// Every block and access where `expected` means something else than what
/// is enforced, security first. `audit` must have been made with the same
/// `expected` (so that its classes separate what the rules name).
pub fn compare(audit: &mut Audit, expected: &[Rule]) {
    let oracle = Policy::of(expected);
    let names = ["-", "r", "w", "rw", "m"];
    let mut found = Vec::new();
    for (i, &access) in ACCESSES.iter().enumerate() {
        // Blocks that differ on this access, merged where adjacent.
        let mut differing: Vec<Block> = Vec::new();
        for b in &audit.cells {
            let want = oracle.decide(&Request::new(b.ty, b.majors.0, b.minors.0, access));
            let got = Verdict::from_allowed(b.allowed.contains(i));
            if want != got {
                differing.push(Block {
                    allowed: Allowed(u8::from(got.is_allow())),
                    ..b.clone()
                });
            }
        }
        for b in merge(differing) {
            let enforced = Verdict::from_allowed(b.allowed.0 == 1);
            let key = (!enforced.is_allow(), b.ty, b.majors.0, b.minors.0, i);
            found.push((
                key,
                Difference {
                    devices: b.devices(),
                    access: names[i].to_string(),
                    class: b.clone(),
                    request_access: access,
                    expected: if enforced.is_allow() {
                        Verdict::Deny
                    } else {
                        Verdict::Allow
                    },
                    enforced,
                    security: enforced.is_allow(),
                },
            ));
        }
    }
    // Security first, then in device order.
    found.sort_by_key(|(key, _)| *key);
    audit.differences = found.into_iter().map(|(_, d)| d).collect();
}

/// Requests (the first device of every class of either audit, every
/// reachable access) on which two programs answer differently, as
/// `c 10:200 r: first deny, second allow`, sorted. Each audit must be of its
/// own program; the union of their classes separates what either compares.
pub fn program_disagreements(
    first: (&Audit, &Program),
    second: (&Audit, &Program),
) -> Result<Vec<String>, AuditError> {
    let emulator = |p: &Program| {
        Emulator::new(p).map_err(|source| AuditError::Refused {
            label: "program".into(),
            source,
        })
    };
    let (a, b) = (emulator(first.1)?, emulator(second.1)?);
    let mut out = std::collections::BTreeSet::new();
    // The grid both audits' classes cut the plane into: each of its cells
    // lies in one class of each, so its first request speaks for it.
    let mut common = Vec::new();
    for ty in DeviceType::ALL {
        let boxes: Vec<Region> = first
            .0
            .cells
            .iter()
            .chain(&second.0.cells)
            .filter(|c| c.ty == ty)
            .map(|c| Region {
                majors: c.majors,
                minors: c.minors,
            })
            .collect();
        common.extend(Grid::new(&boxes).iter().map(|cell| (ty, cell)));
    }
    for (ty, (majors, minors)) in common {
        for access in ACCESSES {
            let req = Request::new(ty, majors.0, minors.0, access);
            let run = |e: &Emulator| {
                e.run(&req).map_err(|source| AuditError::Run {
                    label: "program".into(),
                    request: req,
                    source,
                })
            };
            let (x, y) = (run(&a)?, run(&b)?);
            if x != y {
                out.insert(format!("{req}: first {x}, second {y}"));
            }
        }
    }
    Ok(out.into_iter().collect())
}

/// The policy as a human table: per type, the devices and what they allow
/// (blocks allowing nothing are left out), well-known names from `names`.
pub fn table(audit: &Audit, names: &dyn Fn(DeviceType, u32, u32) -> Option<String>) -> String {
    let mut out = String::new();
    let allowed: Vec<&Block> = audit
        .blocks
        .iter()
        .filter(|b| b.allowed != Allowed::NOTHING)
        .collect();
    if allowed.is_empty() {
        out.push_str("nothing is allowed\n");
        return out;
    }
    let _ = writeln!(out, "{:<24} {:<14} name", "devices", "allowed");
    for b in allowed {
        let name = (b.majors.0 == b.majors.1 && b.minors.0 == b.minors.1)
            .then(|| names(b.ty, b.majors.0, b.minors.0))
            .flatten()
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<24} {:<14} {name}",
            b.devices(),
            b.allowed.describe()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use devcg_engine::{strategy, RuleFile};

    fn rules(text: &str) -> Vec<Rule> {
        RuleFile::parse("test", &text.replace(';', "\n")).unwrap()
    }

    fn enforced_by(strategy: &str, text: &str) -> Enforcement {
        let program = strategy::by_name(strategy)
            .unwrap()
            .compile(&rules(text))
            .unwrap();
        Enforcement {
            programs: vec![(strategy.into(), program)],
            v1: None,
        }
    }

    #[test]
    fn generated_programs_are_decided_by_their_paths() {
        let a = audit(&enforced_by("tree", "deny a; allow c 1:3 rwm"), &[]).unwrap();
        assert_eq!(a.partition, Partition::ProgramPaths);
    }

    /// `major * 1 == 9` is arithmetic the split does not follow: the audit
    /// falls back to the classes of the program's constants (which, for
    /// `major + 1 == 9`, would miss major 8: docs/audit.md, Limits).
    #[test]
    fn a_program_with_arithmetic_falls_back_to_paired_classes() {
        use devcg_engine::asm::{Asm, Cond, Size, Width};
        use devcg_engine::insn::{op, Reg, R0};
        let (ctx, major) = (Reg(1), Reg(2));
        let mut asm = Asm::new();
        let allow = asm.new_label();
        asm.ldx(Size::W, major, ctx, 4)
            .alu_imm(Width::W64, op::MUL, major, 1)
            .jmp_imm(Width::W64, Cond::Eq, major, 9, allow)
            .ret(0);
        asm.bind(allow);
        asm.mov_imm(Width::W64, R0, 1).exit();
        let program = Program::new(asm.finish().unwrap());
        let enforcement = Enforcement {
            programs: vec![("plus-one".into(), program)],
            v1: None,
        };
        let a = audit(&enforcement, &[]).unwrap();
        assert_eq!(a.partition, Partition::FullProduct);
        assert_eq!(
            a.rules,
            Some(vec![
                "deny a".into(),
                "allow b 9:* rwm".into(),
                "allow c 9:* rwm".into()
            ])
        );
    }

    #[test]
    fn a_program_audits_back_to_rules_that_mean_the_same() {
        let text = "deny a; allow c 1:3 rwm; allow c 1:5 rw; allow b 8:* r; allow c *:7 m";
        for s in ["linear", "tree", "map"] {
            let a = audit(&enforced_by(s, text), &[]).unwrap();
            let printed = a.rules.clone().expect("expressible");
            let mut again = audit(&enforced_by(s, text), &rules(&printed.join(";"))).unwrap();
            compare(&mut again, &rules(&printed.join(";")));
            assert!(again.differences.is_empty(), "{s}: {:?}", again.differences);
            // And the printed rules mean what the input rules meant.
            compare(&mut again, &rules(text));
            assert!(again.differences.is_empty(), "{s}: {:?}", again.differences);
        }
    }

    #[test]
    fn accesses_split_over_two_exceptions_stay_split() {
        // r from one exception, w from another: rw is denied. Two lines of
        // the same device would merge into rw, so the audit must not write
        // them so (found by the property test).
        let text = "deny a; allow b 1:0 r; allow b 1:* w";
        let a = audit(&enforced_by("linear", text), &[]).unwrap();
        let printed = a.rules.clone().expect("expressible");
        assert_eq!(printed, ["deny a", "allow b 1:* w", "allow b 1:0 r"]);
        let mut again = audit(&enforced_by("tree", text), &rules(&printed.join(";"))).unwrap();
        compare(&mut again, &rules(&printed.join(";")));
        assert!(again.differences.is_empty(), "{:?}", again.differences);
    }

    #[test]
    fn differences_are_grouped_and_security_comes_first() {
        let e = enforced_by("tree", "deny a; allow c 1:3 rwm; allow c 1:4 rwm");
        let expected = rules("deny a; allow c 1:3 r; allow c 1:5 rw");
        let mut a = audit(&e, &expected).unwrap();
        compare(&mut a, &expected);
        let lines: Vec<String> = a.differences.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            [
                "c 1:3-4 w: expected deny, enforced allow",
                "c 1:3-4 rw: expected deny, enforced allow",
                "c 1:3-4 m: expected deny, enforced allow",
                "c 1:4 -: expected deny, enforced allow",
                "c 1:4 r: expected deny, enforced allow",
                "c 1:5 -: expected allow, enforced deny",
                "c 1:5 r: expected allow, enforced deny",
                "c 1:5 w: expected allow, enforced deny",
                "c 1:5 rw: expected allow, enforced deny",
            ]
        );
        assert_eq!(a.differences.iter().filter(|d| d.security).count(), 5);
    }

    #[test]
    fn every_program_must_allow_and_so_must_v1() {
        let mut e = enforced_by("tree", "deny a; allow c 1:* rwm");
        e.programs.push((
            "second".into(),
            enforced_by("map", "deny a; allow c *:3 rw").programs[0]
                .1
                .clone(),
        ));
        let a = audit(&e, &[]).unwrap();
        assert_eq!(
            a.rules.as_deref(),
            Some(&["deny a".to_string(), "allow c 1:3 rw".to_string()][..])
        );
        e.v1 = Some((
            Behavior::Deny,
            vec![exception(DeviceType::Char, 1, 3, Access::READ)],
        ));
        let a = audit(&e, &[]).unwrap();
        assert_eq!(
            a.rules.as_deref(),
            Some(&["deny a".to_string(), "allow c 1:3 r".to_string()][..])
        );
    }

    #[test]
    fn no_program_allows_everything_and_a_range_is_not_v1() {
        let a = audit(&Enforcement::default(), &[]).unwrap();
        assert_eq!(a.rules.as_deref(), Some(&["allow a".to_string()][..]));
        // A program allowing majors 10 and up: a range v1 cannot name.
        use devcg_engine::asm::{Asm, Cond, Width};
        use devcg_engine::insn::{R0, R1, R2};
        let mut asm = Asm::new();
        let deny = asm.new_label();
        asm.ldx(devcg_engine::asm::Size::W, R2, R1, 4);
        asm.jmp_imm(Width::W64, Cond::Lt, R2, 10, deny);
        asm.ret(1);
        asm.bind(deny);
        asm.ret(0);
        let _ = R0;
        let e = Enforcement {
            programs: vec![("ranges".into(), Program::new(asm.finish().unwrap()))],
            v1: None,
        };
        let a = audit(&e, &[]).unwrap();
        assert_eq!(a.rules, None);
        let t = table(&a, &|_, _, _| None);
        assert!(t.contains("b 10-4095:*"), "{t}");
        assert!(t.contains("c 10-4095:*"), "{t}");
    }
}
