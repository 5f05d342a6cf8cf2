//! The parameter list of a set command: `=<p1>,<p2>,...`.
//!
//! Hand-written because it is ESP-AT's own grammar: decimal integers, quoted
//! strings with backslash escapes, and empty fields meaning "omitted".
use alloc::vec::Vec;
use core::ops::RangeInclusive;

use super::{AtError, ErrorKind};

/// One field of a parameter list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Param {
    /// An empty field: the default applies.
    Omitted,
    /// A decimal integer; saturates far outside any range we check.
    Int(i64),
    /// A double-quoted string, escapes removed. Bytes: need not be UTF-8.
    Str(Vec<u8>),
    /// Anything else unquoted (`abc`, `0x2`, `1 `): a type error wherever used.
    Bare,
}

/// Splits the text after `=` into fields. Errors are parse failures
/// (unterminated quote, bytes after a closing quote) with the field's index.
pub fn parse_params(text: &[u8]) -> Result<Vec<Param>, AtError> {
    let mut params = Vec::new();
    let mut rest = text;
    loop {
        let index = params.len() + 1;
        let parse_error = AtError::new(ErrorKind::ParamParse, index as u16);
        let (param, after) = if let Some(body) = rest.strip_prefix(b"\"") {
            let (value, after) = parse_quoted(body).ok_or(parse_error)?;
            (Param::Str(value), after)
        } else {
            let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            (parse_unquoted(&rest[..end]), &rest[end..])
        };
        params.push(param);
        match after.split_first() {
            None => return Ok(params),
            Some((b',', tail)) => rest = tail,
            Some(_) => return Err(parse_error),
        }
    }
}

/// `body` starts after the opening quote; returns the value and what follows
/// the closing quote.
fn parse_quoted(body: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut value = Vec::with_capacity(body.len());
    let mut bytes = body.iter().enumerate();
    while let Some((i, &b)) = bytes.next() {
        match b {
            b'\\' => value.push(*bytes.next()?.1),
            b'"' => return Some((value, &body[i + 1..])),
            _ => value.push(b),
        }
    }
    None
}

fn parse_unquoted(field: &[u8]) -> Param {
    if field.is_empty() {
        return Param::Omitted;
    }
    let (negative, digits) = match field.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, field),
    };
    // C's strtol(…, 0) as ESP-AT parses: `0x7FF` is hex (lwesp sends it).
    let (radix, digits) = match digits {
        [b'0', b'x' | b'X', hex @ ..] => (16, hex),
        _ => (10, digits),
    };
    if digits.is_empty() || !digits.iter().all(|d| char::from(*d).is_digit(radix)) {
        return Param::Bare;
    }
    let magnitude = digits.iter().fold(0i64, |acc, &d| {
        let digit = char::from(d).to_digit(radix).unwrap_or(0);
        acc.saturating_mul(i64::from(radix))
            .saturating_add(i64::from(digit))
    });
    Param::Int(if negative { -magnitude } else { magnitude })
}

/// The parameters of one set command, with typed, range-checked access that
/// yields ESP-AT's error codes (1-based indexes in the details).
pub struct Args {
    params: Vec<Param>,
}

impl Args {
    /// Parses `text` and checks it has at most `max` fields.
    pub fn parse(text: &[u8], max: usize) -> Result<Self, AtError> {
        let params = parse_params(text)?;
        if params.len() > max {
            return Err(AtError::new(ErrorKind::ParamCount, params.len() as u16));
        }
        Ok(Args { params })
    }

    /// How many parameters were given, omitted ones included.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// No parameters at all.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Whether field `i` (0-based) is present and not empty.
    pub fn given(&self, i: usize) -> bool {
        !matches!(self.params.get(i), None | Some(Param::Omitted))
    }

    /// A required integer in `range`.
    pub fn int(&self, i: usize, range: RangeInclusive<i64>) -> Result<i64, AtError> {
        self.opt_int(i, range)?
            .ok_or(AtError::new(ErrorKind::ParamCount, i as u16 + 1))
    }

    /// An optional integer in `range`: `None` when omitted.
    pub fn opt_int(&self, i: usize, range: RangeInclusive<i64>) -> Result<Option<i64>, AtError> {
        let detail = i as u16 + 1;
        match self.params.get(i) {
            None | Some(Param::Omitted) => Ok(None),
            Some(Param::Int(v)) if range.contains(v) => Ok(Some(*v)),
            Some(Param::Int(_)) => Err(AtError::new(ErrorKind::ParamInvalid, detail)),
            Some(_) => Err(AtError::new(ErrorKind::ParamType, detail)),
        }
    }

    /// A required quoted string.
    pub fn str(&self, i: usize) -> Result<&[u8], AtError> {
        self.opt_str(i)?
            .ok_or(AtError::new(ErrorKind::ParamCount, i as u16 + 1))
    }

    /// An optional quoted string: `None` when omitted.
    pub fn opt_str(&self, i: usize) -> Result<Option<&[u8]>, AtError> {
        match self.params.get(i) {
            None | Some(Param::Omitted) => Ok(None),
            Some(Param::Str(s)) => Ok(Some(s)),
            Some(_) => Err(AtError::new(ErrorKind::ParamType, i as u16 + 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn s(v: &str) -> Param {
        Param::Str(v.as_bytes().to_vec())
    }

    #[test]
    fn hex_integers_as_strtol_reads_them() {
        assert_eq!(
            parse_params(b"1,0x7FF,0Xc023,-0x10,0x").unwrap(),
            vec![
                Param::Int(1),
                Param::Int(0x7FF),
                Param::Int(0xC023),
                Param::Int(-16),
                Param::Bare
            ]
        );
    }

    #[test]
    fn integers_strings_and_omitted_fields() {
        assert_eq!(
            parse_params(b"0,\"ws://h\",,15000").unwrap(),
            vec![
                Param::Int(0),
                s("ws://h"),
                Param::Omitted,
                Param::Int(15000)
            ]
        );
        assert_eq!(parse_params(b"").unwrap(), vec![Param::Omitted]);
        assert_eq!(
            parse_params(b"1,").unwrap(),
            vec![Param::Int(1), Param::Omitted]
        );
        assert_eq!(parse_params(b"-5").unwrap(), vec![Param::Int(-5)]);
        assert_eq!(parse_params(b"\"\"").unwrap(), vec![s("")]);
    }

    #[test]
    fn every_escape() {
        let p = parse_params(br#""a\\b\,c\"d\xe""#).unwrap();
        assert_eq!(p, vec![s(r#"a\b,c"dxe"#)]);
        // An escaped comma does not split, an escaped quote does not end.
        let p = parse_params(br#""x\",y",2"#).unwrap();
        assert_eq!(p, vec![s(r#"x",y"#), Param::Int(2)]);
    }

    #[test]
    fn bare_words_and_malformed_numbers_are_type_errors() {
        // (`0x2` is a number: esp-at-tcpip.md §2.9, strtol rules.)
        for field in [&b"abc"[..], b"0xg", b"1 ", b" 1", b"-", b"1.5", b"+1"] {
            assert_eq!(parse_params(field).unwrap(), vec![Param::Bare], "{field:?}");
        }
        let args = Args::parse(b"abc", 3).unwrap();
        assert_eq!(
            args.int(0, 0..=2),
            Err(AtError::new(ErrorKind::ParamType, 1))
        );
        let args = Args::parse(b"1", 3).unwrap();
        assert_eq!(args.str(0), Err(AtError::new(ErrorKind::ParamType, 1)));
    }

    #[test]
    fn parse_failures_name_the_field() {
        assert_eq!(
            parse_params(b"0,\"open"),
            Err(AtError::new(ErrorKind::ParamParse, 2))
        );
        assert_eq!(
            parse_params(b"\"a\"b,1"),
            Err(AtError::new(ErrorKind::ParamParse, 1))
        );
        assert_eq!(
            parse_params(b"\"ends in backslash\\"),
            Err(AtError::new(ErrorKind::ParamParse, 1))
        );
    }

    #[test]
    fn ranges_counts_and_required_fields() {
        let args = Args::parse(b"3,,99999999999999999999999", 4).unwrap();
        assert_eq!(
            args.int(0, 0..=2),
            Err(AtError::new(ErrorKind::ParamInvalid, 1))
        );
        assert_eq!(
            args.int(1, 0..=2),
            Err(AtError::new(ErrorKind::ParamCount, 2))
        );
        assert_eq!(args.opt_int(1, 0..=2), Ok(None));
        assert_eq!(
            args.opt_int(2, 0..=9),
            Err(AtError::new(ErrorKind::ParamInvalid, 3))
        );
        assert_eq!(args.opt_int(7, 0..=9), Ok(None));
        assert!(args.given(0) && !args.given(1) && !args.given(5));
        assert_eq!(
            Args::parse(b"1,2,3", 2).err(),
            Some(AtError::new(ErrorKind::ParamCount, 3))
        );
    }
}
