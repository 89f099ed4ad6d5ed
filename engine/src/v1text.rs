//! The kernel's parser for text written to `devices.allow` / `devices.deny`
//! (`devcgroup_update_access` in security/device_cgroup.c), byte for byte:
//! what it accepts, what it ignores and what it refuses with EINVAL.

use thiserror::Error;

use crate::device::{Access, DeviceType, Exception, WILDCARD};

/// What a parsed write asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum V1Text {
    /// A first character `a`: "all devices"; the rest of the text is ignored.
    All,
    /// A `b` or `c` exception.
    Exception(Exception),
}

/// Why the kernel answers EINVAL.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("empty rule")]
    Empty,
    #[error("unknown device type {0:?} (expected a, b or c)")]
    BadType(char),
    #[error("expected one whitespace after the device type")]
    NoSpaceAfterType,
    #[error("{field} must be `*` or decimal digits")]
    BadNumber { field: &'static str },
    #[error("{field} has more than 11 digits")]
    TooManyDigits { field: &'static str },
    #[error("{field} {digits} does not fit in 32 bits")]
    Overflow { field: &'static str, digits: String },
    #[error("expected `:` between major and minor")]
    NoColon,
    #[error("expected one whitespace before the access letters")]
    NoSpaceBeforeAccess,
    #[error("invalid access character {0:?} (expected r, w or m)")]
    BadAccess(char),
}

/// The kernel's `isspace` (lib/ctype.c): HT, LF, VT, FF, CR, space and the
/// Latin-1 no-break space 0xa0.
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0xa0)
}

/// `strstrip`, after cutting at the first NUL as the kernel's C string does.
fn strip(text: &[u8]) -> &[u8] {
    let text = match text.iter().position(|&b| b == 0) {
        Some(nul) => &text[..nul],
        None => text,
    };
    let start = text
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    &text[start..end]
}

/// Parses one write exactly as the kernel does.
pub fn parse(text: &str) -> Result<V1Text, ParseError> {
    let s = strip(text.as_bytes());
    // Reading past the end yields the terminating NUL, as in C.
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let ty = match at(0) {
        0 => return Err(ParseError::Empty),
        b'a' => return Ok(V1Text::All),
        b'b' => DeviceType::Block,
        b'c' => DeviceType::Char,
        other => return Err(ParseError::BadType(other as char)),
    };
    if !is_space(at(1)) {
        return Err(ParseError::NoSpaceAfterType);
    }
    let mut i = 2;
    let major = parse_number(s, &mut i, "major")?;
    if at(i) != b':' {
        return Err(ParseError::NoColon);
    }
    i += 1;
    let minor = parse_number(s, &mut i, "minor")?;
    if !is_space(at(i)) {
        return Err(ParseError::NoSpaceBeforeAccess);
    }
    i += 1;
    // Up to three letters; a NUL or newline ends the field early and anything
    // after the third character is ignored (`rwmx` is accepted).
    let mut access = Access::NONE;
    for _ in 0..3 {
        access = access.union(match at(i) {
            b'r' => Access::READ,
            b'w' => Access::WRITE,
            b'm' => Access::MKNOD,
            b'\n' | 0 => break,
            other => return Err(ParseError::BadAccess(other as char)),
        });
        i += 1;
    }
    Ok(V1Text::Exception(Exception {
        ty,
        major,
        minor,
        access,
    }))
}

/// `*` or up to 11 digits for kstrtou32; a twelfth digit is left in place and
/// fails the next separator check, as in the kernel.
fn parse_number(s: &[u8], i: &mut usize, field: &'static str) -> Result<u32, ParseError> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    if at(*i) == b'*' {
        *i += 1;
        return Ok(WILDCARD);
    }
    if !at(*i).is_ascii_digit() {
        return Err(ParseError::BadNumber { field });
    }
    let start = *i;
    while *i - start < 11 && at(*i).is_ascii_digit() {
        *i += 1;
    }
    if at(*i).is_ascii_digit() {
        return Err(ParseError::TooManyDigits { field });
    }
    let digits = std::str::from_utf8(&s[start..*i]).expect("ascii digits");
    digits.parse::<u32>().map_err(|_| ParseError::Overflow {
        field,
        digits: digits.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn ex(ty: DeviceType, major: u32, minor: u32, access: u8) -> V1Text {
        V1Text::Exception(Exception {
            ty,
            major,
            minor,
            access: Access(access),
        })
    }

    #[rstest]
    #[case("c 1:3 rwm", ex(DeviceType::Char, 1, 3, 7))]
    #[case("b 8:* r", ex(DeviceType::Block, 8, WILDCARD, 2))]
    #[case("c *:* m", ex(DeviceType::Char, WILDCARD, WILDCARD, 1))]
    #[case("  c 1:3 rw \n", ex(DeviceType::Char, 1, 3, 6))]
    #[case("c\t1:3\tw", ex(DeviceType::Char, 1, 3, 4))]
    #[case("c 1:3 rwmx", ex(DeviceType::Char, 1, 3, 7))]
    #[case("c 1:3 rrr", ex(DeviceType::Char, 1, 3, 2))]
    #[case("c 1:3 mr", ex(DeviceType::Char, 1, 3, 3))]
    #[case("c 00000000001:3 r", ex(DeviceType::Char, 1, 3, 2))]
    #[case("c 4294967295:1 r", ex(DeviceType::Char, WILDCARD, 1, 2))]
    #[case("c 4294967294:0 r", ex(DeviceType::Char, 4294967294, 0, 2))]
    #[case("c 1:3 r\nw", ex(DeviceType::Char, 1, 3, 2))]
    #[case("c 1:3 \nr", ex(DeviceType::Char, 1, 3, 0))]
    #[case("c 1:3 rw\0garbage", ex(DeviceType::Char, 1, 3, 6))]
    #[case("a", V1Text::All)]
    #[case("a *:* rwm", V1Text::All)]
    #[case("all the things", V1Text::All)]
    #[case(" a", V1Text::All)]
    fn accepted(#[case] text: &str, #[case] want: V1Text) {
        assert_eq!(parse(text), Ok(want));
    }

    #[rstest]
    #[case("", ParseError::Empty)]
    #[case("   ", ParseError::Empty)]
    #[case("x 1:3 r", ParseError::BadType('x'))]
    #[case("c", ParseError::NoSpaceAfterType)]
    #[case("c1:3 r", ParseError::NoSpaceAfterType)]
    #[case("c  1:3 r", ParseError::BadNumber { field: "major" })]
    #[case("c 1:3 ", ParseError::NoSpaceBeforeAccess)]
    #[case("c 1:3", ParseError::NoSpaceBeforeAccess)]
    #[case("c 1 3 r", ParseError::NoColon)]
    #[case("c 1:x r", ParseError::BadNumber { field: "minor" })]
    #[case("c -1:3 r", ParseError::BadNumber { field: "major" })]
    #[case("c 000000000001:3 r", ParseError::TooManyDigits { field: "major" })]
    #[case("c 4294967296:3 r", ParseError::Overflow { field: "major", digits: "4294967296".into() })]
    #[case("c 99999999999:3 r", ParseError::Overflow { field: "major", digits: "99999999999".into() })]
    #[case("c 1:3 rx", ParseError::BadAccess('x'))]
    #[case("c 1:3 r w", ParseError::BadAccess(' '))]
    #[case("c *1:3 r", ParseError::NoColon)]
    fn refused(#[case] text: &str, #[case] want: ParseError) {
        assert_eq!(parse(text), Err(want));
    }
}
