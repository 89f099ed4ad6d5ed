//! The shared vocabulary: device types, access bits, exceptions, requests
//! and verdicts. Numbering follows the kernel, where the v1 controller's
//! `DEVCG_*` constants and the BPF context's `BPF_DEVCG_*` constants agree.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `*` in a rule: the kernel stores it as `~0`, so 4294967295 *is* `*`.
pub const WILDCARD: u32 = u32::MAX;

/// Block or character device (`BPF_DEVCG_DEV_BLOCK` = 1, `_CHAR` = 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DeviceType {
    #[serde(rename = "b")]
    Block = 1,
    #[serde(rename = "c")]
    Char = 2,
}

impl DeviceType {
    pub const ALL: [DeviceType; 2] = [DeviceType::Block, DeviceType::Char];

    /// The number the kernel puts in the low 16 bits of `access_type`.
    pub fn code(self) -> u32 {
        self as u32
    }

    pub fn from_char(c: char) -> Option<Self> {
        match c {
            'b' => Some(DeviceType::Block),
            'c' => Some(DeviceType::Char),
            _ => None,
        }
    }

    pub fn as_char(self) -> char {
        match self {
            DeviceType::Block => 'b',
            DeviceType::Char => 'c',
        }
    }
}

impl fmt::Display for DeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_char())
    }
}

/// A set of access bits: mknod = 1, read = 2, write = 4, as both the v1
/// controller and the BPF context number them. The empty set is a real
/// request: `access(F_OK)` asks with 0.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Access(pub u8);

impl Access {
    pub const NONE: Access = Access(0);
    pub const MKNOD: Access = Access(1);
    pub const READ: Access = Access(2);
    pub const WRITE: Access = Access(4);
    pub const ALL: Access = Access(7);

    pub fn bits(self) -> u8 {
        self.0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, other: Access) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn intersects(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
    pub fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }
    pub fn without(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }
    /// Every subset of `rwm`, the empty one included.
    pub fn every() -> impl Iterator<Item = Access> {
        (0..=7).map(Access)
    }

    /// Parses letters from `rwm` in any order, or `-` for none (the CLI and
    /// oracle-script form, not the kernel's write syntax).
    pub fn parse_letters(s: &str) -> Option<Access> {
        if s == "-" {
            return Some(Access::NONE);
        }
        if s.is_empty() {
            return None;
        }
        let mut acc = Access::NONE;
        for ch in s.chars() {
            acc = acc.union(match ch {
                'r' => Access::READ,
                'w' => Access::WRITE,
                'm' => Access::MKNOD,
                _ => return None,
            });
        }
        Some(acc)
    }
}

/// Prints in devices.list order (`r`, `w`, `m`); the empty set prints as
/// nothing, as the kernel does.
impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, ch) in [
            (Access::READ, 'r'),
            (Access::WRITE, 'w'),
            (Access::MKNOD, 'm'),
        ] {
            if self.contains(bit) {
                write!(f, "{ch}")?;
            }
        }
        Ok(())
    }
}

/// Default behavior of a v1 device cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behavior {
    /// Everything is allowed except the exceptions (a deny list).
    Allow,
    /// Everything is denied except the exceptions (an allow list).
    Deny,
}

/// One entry of a v1 exception list (`struct dev_exception_item`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Exception {
    #[serde(rename = "type")]
    pub ty: DeviceType,
    pub major: u32,
    pub minor: u32,
    pub access: Access,
}

impl Exception {
    /// The key that add/remove compare: type, major and minor.
    pub fn key(&self) -> (DeviceType, u32, u32) {
        (self.ty, self.major, self.minor)
    }
}

fn fmt_num(n: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    if n == WILDCARD {
        write!(f, "*")
    } else {
        write!(f, "{n}")
    }
}

/// The devices.list form: `c 1:3 rwm`, `*` for wildcards.
impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.ty)?;
        fmt_num(self.major, f)?;
        write!(f, ":")?;
        fmt_num(self.minor, f)?;
        write!(f, " {}", self.access)
    }
}

/// One question to a filter: may this access to this device happen?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Request {
    #[serde(rename = "type")]
    pub ty: DeviceType,
    pub major: u32,
    pub minor: u32,
    pub access: Access,
}

impl Request {
    pub fn new(ty: DeviceType, major: u32, minor: u32, access: Access) -> Self {
        Request {
            ty,
            major,
            minor,
            access,
        }
    }

    /// `struct bpf_cgroup_dev_ctx` as the kernel lays it out (little-endian
    /// host): `access_type = access << 16 | type`, then major, then minor.
    pub fn to_ctx(&self) -> [u8; 12] {
        let mut ctx = [0u8; 12];
        let access_type = (u32::from(self.access.bits()) << 16) | self.ty.code();
        ctx[0..4].copy_from_slice(&access_type.to_le_bytes());
        ctx[4..8].copy_from_slice(&self.major.to_le_bytes());
        ctx[8..12].copy_from_slice(&self.minor.to_le_bytes());
        ctx
    }

    /// Whether the kernel could ever ask this: a real `dev_t` holds a 12-bit
    /// major and a 20-bit minor.
    pub fn is_realizable(&self) -> bool {
        self.major < 4096 && self.minor < (1 << 20)
    }

    /// Whether a syscall can ever ask this: realizable numbers, and an
    /// access that open (r, w, rw), `access(F_OK)` (none) or mknod (m)
    /// produces; m never comes with r or w.
    pub fn is_reachable(&self) -> bool {
        let mixed = self.access.contains(Access::MKNOD)
            && self.access.intersects(Access::READ.union(Access::WRITE));
        self.is_realizable() && !mixed
    }

    /// Parses `c 1:3 rw` (access letters or `-`; `*` is not a device).
    pub fn parse(text: &str) -> Option<Request> {
        Request::parse_explained(text).ok()
    }

    /// [`Request::parse`], saying what is wrong when it fails.
    pub fn parse_explained(text: &str) -> Result<Request, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [ty, numbers, access] = parts[..] else {
            return Err(format!(
                "expected three parts, `TYPE MAJOR:MINOR ACCESS`, found {}",
                parts.len()
            ));
        };
        let ty = match ty {
            "c" => DeviceType::Char,
            "b" => DeviceType::Block,
            other => return Err(format!("type {other:?}: `c` or `b`")),
        };
        let (major, minor) = numbers
            .split_once(':')
            .ok_or_else(|| format!("{numbers:?}: expected MAJOR:MINOR"))?;
        let number = |what: &str, s: &str| -> Result<u32, String> {
            if s == "*" {
                return Err(format!(
                    "{what} `*`: a request names one device (wildcards are for rules)"
                ));
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{what} {s:?}: not a decimal number"));
            }
            s.parse()
                .map_err(|_| format!("{what} {s}: over 4294967295, the largest 32-bit number"))
        };
        let (major, minor) = (number("major", major)?, number("minor", minor)?);
        let access = Access::parse_letters(access)
            .ok_or_else(|| format!("access {access:?}: letters from `rwm`, or `-` for none"))?;
        Ok(Request::new(ty, major, minor, access))
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let acc = if self.access.is_empty() {
            "-".to_string()
        } else {
            self.access.to_string()
        };
        write!(f, "{} {}:{} {}", self.ty, self.major, self.minor, acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("c 1:3 rw", Some(Request::new(DeviceType::Char, 1, 3, Access(6))))]
    #[case("b 8:0 -", Some(Request::new(DeviceType::Block, 8, 0, Access(0))))]
    #[case(
        "c 4294967295:0 m",
        Some(Request::new(DeviceType::Char, u32::MAX, 0, Access(1)))
    )]
    #[case("c +1:3 r", None)]
    #[case("c 1:* r", None)]
    #[case("c 1:3", None)]
    #[case("c 1:3 rx", None)]
    #[case("x 1:3 r", None)]
    #[case("c 4294967296:0 r", None)]
    fn request_parse(#[case] text: &str, #[case] want: Option<Request>) {
        assert_eq!(Request::parse(text), want);
    }

    #[test]
    fn ctx_layout_is_the_kernels() {
        let ctx = Request::new(DeviceType::Char, 1, 3, Access(6)).to_ctx();
        assert_eq!(ctx, [2, 0, 6, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
    }
}

/// What a filter answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
}

impl Verdict {
    pub fn from_allowed(allowed: bool) -> Self {
        if allowed {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }
    pub fn is_allow(self) -> bool {
        self == Verdict::Allow
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        })
    }
}
