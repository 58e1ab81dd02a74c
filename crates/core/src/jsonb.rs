//! PostgreSQL's `jsonb` binary format, written straight from the events of a
//! [`crate::json`] reading: what `jsonb_in` would store for the same text,
//! byte for byte, without PostgreSQL's tree of `JsonbValue`s in between.
//!
//! The layout (PostgreSQL's `src/include/utils/jsonb.h`, stable since 9.4): a
//! container is a `u32` header (count and kind), one `u32` entry per element,
//! or per key and then per value for an object, then the elements' data.
//! An entry holds its element's type and length, or, every 32nd entry, its
//! end offset. Numbers and containers start 4-byte aligned from the start of
//! the datum, the padding counted in their length. An object's keys are
//! sorted (shorter first, then bytewise); of a repeated key the last value
//! wins. A top-level scalar is stored as a one-element array marked scalar.
//!
//! Numbers are stored as PostgreSQL numerics, whose bytes only PostgreSQL
//! makes: the caller's [`Numerics`] appends them.

use crate::json::Sink;
use std::borrow::Cow;

/// Appends the bytes of a numeric datum (its 4-byte varlena header included)
/// for a JSON number's text, as `numeric_in` makes it.
pub trait Numerics {
    fn append(&mut self, text: &str, out: &mut Vec<u8>);
}

const JENTRY_OFFLENMASK: u32 = 0x0FFF_FFFF;
const JENTRY_HAS_OFF: u32 = 0x8000_0000;
const JENTRY_TYPEMASK: u32 = 0x7000_0000;
const JENTRY_ISSTRING: u32 = 0x0000_0000;
const JENTRY_ISNUMERIC: u32 = 0x1000_0000;
const JENTRY_ISBOOL_FALSE: u32 = 0x2000_0000;
const JENTRY_ISBOOL_TRUE: u32 = 0x3000_0000;
const JENTRY_ISNULL: u32 = 0x4000_0000;
const JENTRY_ISCONTAINER: u32 = 0x5000_0000;
const JB_OFFSET_STRIDE: usize = 32;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;
/// The most elements or pairs one container can count (JB_CMASK), and the
/// longest string or container an entry can measure (JENTRY_OFFLENMASK).
const MAX_COUNT: usize = 0x0FFF_FFFF;
const MAX_LEN: usize = JENTRY_OFFLENMASK as usize;
/// The deepest nesting written: the writer recurses once per level, and
/// PostgreSQL's own parser stops a few thousand levels down
/// (`max_stack_depth`). Stripe's objects nest about ten levels deep.
pub const MAX_DEPTH: usize = 1000;

/// A value read, its containers' members kept in [`Writer::arena`].
#[derive(Debug)]
enum Node<'a> {
    Null,
    Bool(bool),
    Str(Cow<'a, str>),
    Num(&'a str),
    /// `len` elements at `arena[start..]`.
    Array {
        start: usize,
        len: usize,
    },
    /// `len` keys (as `Str`) at `arena[start..]`, sorted, then their values.
    Object {
        start: usize,
        len: usize,
    },
}

/// What [`Writer::finish`] says of a number PostgreSQL's numeric cannot hold.
pub const NUMBER_OUT_OF_RANGE: &str =
    "it holds a number beyond the range of PostgreSQL's numeric, which jsonb stores numbers as";

/// Whether PostgreSQL's numeric holds the JSON number `text` (which the reader
/// has checked against JSON's grammar): at most 131,072 digits before the
/// decimal point and 16,383 after it (NUMERIC_WEIGHT_MAX, NUMERIC_DSCALE_MAX in
/// numeric.c); beyond them numeric_in raises 22003.
pub fn numeric_fits(text: &str) -> bool {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => match unsigned[i + 1..].parse::<i64>() {
            Ok(e) if e.abs() <= i64::from(i32::MAX / 2) => (&unsigned[..i], e),
            _ => return false,
        },
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let scale = (frac.len() as i64 - exponent).max(0);
    if scale > 16_383 {
        return false;
    }
    let zero = int.bytes().chain(frac.bytes()).all(|b| b == b'0');
    zero || int.trim_start_matches('0').len() as i64 + exponent <= 131_072
}

/// A container being read: where its members start on the stacks.
struct Open {
    values: usize,
    keys: usize,
}

/// Collects a JSON reading (as a [`Sink`]) and writes it as jsonb ([`Writer::finish`]).
#[derive(Default)]
pub struct Writer<'a> {
    /// Finished values of the open containers, innermost last.
    values: Vec<Node<'a>>,
    /// Keys of the open objects, one per value in `values` that belongs to an object.
    keys: Vec<Cow<'a, str>>,
    open: Vec<Open>,
    /// Members of closed containers, each container's contiguous.
    arena: Vec<Node<'a>>,
    /// Scratch for an object's sort.
    order: Vec<usize>,
    error: Option<String>,
}

impl<'a> Writer<'a> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The jsonb datum of what was read: 4 bytes left for the varlena header
    /// (the caller sets it), then the root container.
    pub fn finish(mut self, numerics: &mut impl Numerics) -> Result<Vec<u8>, String> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let root = match (self.values.pop(), self.values.is_empty()) {
            (Some(root), true) if self.open.is_empty() => root,
            _ => return Err("an incomplete JSON value".into()),
        };
        let mut out = Vec::with_capacity(self.arena.len() * 16 + 64);
        out.extend_from_slice(&[0; 4]);
        match root {
            Node::Array { start, len } => self.nested(&mut out, false, (start, len), numerics)?,
            Node::Object { start, len } => self.nested(&mut out, true, (start, len), numerics)?,
            scalar => {
                self.arena.push(scalar);
                self.container(
                    &mut out,
                    JB_FARRAY | JB_FSCALAR | 1,
                    &[],
                    self.arena.len() - 1,
                    1,
                    numerics,
                )?
            }
        };
        Ok(out)
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn close(&mut self, is_object: bool) {
        let Some(o) = self.open.pop() else { unreachable!("the reader closes what it opened") };
        let start = self.arena.len();
        let node = if is_object {
            let n = self.values.len() - o.values;
            debug_assert_eq!(self.keys.len() - o.keys, n);
            // jsonb's key order; among equal keys the later first, so that dedup keeps it.
            let keys = &self.keys[o.keys..];
            self.order.clear();
            self.order.extend(0..n);
            self.order.sort_unstable_by(|&a, &b| {
                let (x, y) = (keys[a].as_bytes(), keys[b].as_bytes());
                x.len().cmp(&y.len()).then_with(|| x.cmp(y)).then(b.cmp(&a))
            });
            self.order.dedup_by(|later, kept| keys[*later] == keys[*kept]);
            let len = self.order.len();
            if len > MAX_COUNT {
                self.fail(format!(
                    "number of jsonb object pairs exceeds the maximum allowed ({MAX_COUNT})"
                ));
            }
            // Moved out in key order (each index once), then the stacks cut back.
            for &i in &self.order {
                let key = std::mem::take(&mut self.keys[o.keys + i]);
                self.arena.push(Node::Str(key));
            }
            for &i in &self.order {
                let value = std::mem::replace(&mut self.values[o.values + i], Node::Null);
                self.arena.push(value);
            }
            self.keys.truncate(o.keys);
            self.values.truncate(o.values);
            Node::Object { start, len }
        } else {
            let len = self.values.len() - o.values;
            if len > MAX_COUNT {
                self.fail(format!(
                    "number of jsonb array elements exceeds the maximum allowed ({MAX_COUNT})"
                ));
            }
            self.arena.extend(self.values.drain(o.values..));
            Node::Array { start, len }
        };
        self.values.push(node);
    }

    /// An array's `len` elements, or an object's `len` keys and values, at `arena[start..]`.
    fn nested(
        &self,
        out: &mut Vec<u8>,
        object: bool,
        (start, len): (usize, usize),
        n: &mut impl Numerics,
    ) -> Result<u32, String> {
        if object {
            let keys = &self.arena[start..start + len];
            self.container(out, JB_FOBJECT | len as u32, keys, start + len, len, n)
        } else {
            self.container(out, JB_FARRAY | len as u32, &[], start, len, n)
        }
    }

    /// convertJsonbArray / convertJsonbObject: `keys` (strings) then the
    /// `len` values at `arena[values..]`; returns the container's entry.
    fn container(
        &self,
        out: &mut Vec<u8>,
        header: u32,
        keys: &[Node<'a>],
        values: usize,
        len: usize,
        n: &mut impl Numerics,
    ) -> Result<u32, String> {
        let base = out.len();
        pad(out);
        out.extend_from_slice(&header.to_ne_bytes());
        let mut entry_at = out.len();
        out.resize(entry_at + 4 * (keys.len() + len), 0);
        let mut total = 0usize;
        let members = keys.iter().chain(&self.arena[values..values + len]);
        for (i, member) in members.enumerate() {
            let mut meta = self.value(out, member, n)?;
            total += (meta & JENTRY_OFFLENMASK) as usize;
            if total > MAX_LEN {
                return Err(too_big(header));
            }
            if i % JB_OFFSET_STRIDE == 0 {
                meta = (meta & JENTRY_TYPEMASK) | total as u32 | JENTRY_HAS_OFF;
            }
            out[entry_at..entry_at + 4].copy_from_slice(&meta.to_ne_bytes());
            entry_at += 4;
        }
        let total = out.len() - base;
        if total > MAX_LEN {
            return Err(too_big(header));
        }
        Ok(JENTRY_ISCONTAINER | total as u32)
    }

    /// convertJsonbValue: appends the value, returns its entry (type and length).
    fn value(&self, out: &mut Vec<u8>, v: &Node<'a>, n: &mut impl Numerics) -> Result<u32, String> {
        Ok(match v {
            Node::Null => JENTRY_ISNULL,
            Node::Bool(false) => JENTRY_ISBOOL_FALSE,
            Node::Bool(true) => JENTRY_ISBOOL_TRUE,
            Node::Str(s) => {
                if s.len() > MAX_LEN {
                    return Err("string too long to represent as jsonb string".into());
                }
                out.extend_from_slice(s.as_bytes());
                JENTRY_ISSTRING | s.len() as u32
            }
            Node::Num(text) => {
                let before = out.len();
                pad(out);
                n.append(text, out);
                JENTRY_ISNUMERIC | (out.len() - before) as u32
            }
            Node::Array { start, len } => self.nested(out, false, (*start, *len), n)?,
            Node::Object { start, len } => self.nested(out, true, (*start, *len), n)?,
        })
    }
}

/// padBufferToInt: zeros up to a multiple of 4 from the datum's start.
fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

fn too_big(header: u32) -> String {
    let what = if header & JB_FOBJECT != 0 { "object" } else { "array" };
    format!("total size of jsonb {what} elements exceeds the maximum of {MAX_LEN} bytes")
}

impl Writer<'_> {
    fn begin(&mut self) {
        if self.open.len() == MAX_DEPTH {
            self.fail(format!("JSON nested deeper than {MAX_DEPTH} levels cannot be stored"));
        }
        self.open.push(Open { values: self.values.len(), keys: self.keys.len() });
    }
}

impl<'a> Sink<'a> for Writer<'a> {
    fn begin_object(&mut self) {
        self.begin();
    }
    fn end_object(&mut self) {
        self.close(true);
    }
    fn begin_array(&mut self) {
        self.begin();
    }
    fn end_array(&mut self) {
        self.close(false);
    }
    fn key(&mut self, key: Cow<'a, str>) {
        self.keys.push(key);
    }
    fn string(&mut self, value: Cow<'a, str>) {
        self.values.push(Node::Str(value));
    }
    fn number(&mut self, text: &'a str) {
        if self.error.is_none() && !numeric_fits(text) {
            self.error = Some(NUMBER_OUT_OF_RANGE.into());
        }
        self.values.push(Node::Num(text));
    }
    fn boolean(&mut self, value: bool) {
        self.values.push(Node::Bool(value));
    }
    fn null(&mut self) {
        self.values.push(Node::Null);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_beyond_numeric_are_refused() {
        use super::numeric_fits;
        for ok in ["0", "-12", "0.5", "1e400", "1E+1000", "123456.789e-3", "0e1000000", "1e131071"]
        {
            assert!(numeric_fits(ok), "{ok}");
        }
        let long = "9".repeat(140_000);
        let tiny = format!("0.{}1", "0".repeat(16_383));
        for bad in ["1e1000000", long.as_str(), tiny.as_str(), "1e-20000", "1e99999999999999999999"]
        {
            assert!(!numeric_fits(bad), "{}", &bad[..bad.len().min(20)]);
        }
    }

    use super::*;

    /// A stand-in for PostgreSQL's numerics: a 4-byte header, then the text.
    struct Text;
    impl Numerics for Text {
        fn append(&mut self, text: &str, out: &mut Vec<u8>) {
            out.extend_from_slice(&((4 + text.len()) as u32).to_ne_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }

    fn jsonb(text: &str) -> Vec<u8> {
        let mut w = Writer::new();
        crate::json::read(text, &mut w).unwrap();
        w.finish(&mut Text).unwrap()
    }

    fn words(bytes: &[u8]) -> Vec<u32> {
        bytes.chunks(4).map(|c| u32::from_ne_bytes(c.try_into().unwrap())).collect()
    }

    #[test]
    fn keys_are_sorted_shorter_first_and_the_last_of_a_repeated_key_wins() {
        let b = jsonb(r#"{"bb":"x","a":true,"c":null,"a":false}"#);
        assert_eq!(&b[..4], &[0; 4], "left for the varlena header");
        // 3 pairs; entries: keys a, c, bb (the first with its end offset), values.
        assert_eq!(
            words(&b[4..32]),
            vec![
                JB_FOBJECT | 3,
                JENTRY_HAS_OFF | 1,
                JENTRY_ISSTRING | 1,
                JENTRY_ISSTRING | 2,
                JENTRY_ISBOOL_FALSE,
                JENTRY_ISNULL,
                JENTRY_ISSTRING | 1,
            ]
        );
        assert_eq!(&b[32..], b"acbbx");
    }

    #[test]
    fn a_top_level_scalar_is_a_one_element_array_marked_scalar() {
        let b = jsonb(r#""hi""#);
        assert_eq!(words(&b[4..12]), vec![JB_FARRAY | JB_FSCALAR | 1, JENTRY_HAS_OFF | 2]);
        assert_eq!(&b[12..], b"hi");
    }

    #[test]
    fn numbers_and_containers_start_aligned_with_the_padding_in_their_length() {
        // ["x", 7, {}]: "x" ends at 21, so the numeric is padded by 3 to 24.
        let b = jsonb(r#"["x",7,{}]"#);
        assert_eq!(
            words(&b[4..20]),
            vec![JB_FARRAY | 3, JENTRY_HAS_OFF | 1, JENTRY_ISNUMERIC | 8, JENTRY_ISCONTAINER | 7]
        );
        assert_eq!(&b[20..21], b"x");
        assert_eq!(&b[21..24], &[0; 3]);
        assert_eq!(words(&b[24..28]), vec![5]);
        assert_eq!(&b[28..29], b"7");
        // The empty object: padded by 3 from 29, then its header.
        assert_eq!(&b[29..32], &[0; 3]);
        assert_eq!(words(&b[32..36]), vec![JB_FOBJECT]);
        assert_eq!(b.len(), 36);
    }

    #[test]
    fn every_32nd_entry_holds_its_end_offset() {
        let text = format!("[{}]", vec!["\"ab\""; 70].join(","));
        let b = jsonb(&text);
        let entries = words(&b[8..8 + 70 * 4]);
        for (i, e) in entries.iter().enumerate() {
            let want = if i % 32 == 0 { JENTRY_HAS_OFF | (2 * (i as u32 + 1)) } else { 2 };
            assert_eq!(*e, want, "entry {i}");
        }
        // An object counts its keys' entries first, then its values' in the same stride.
        let members: Vec<String> = (0..20).map(|i| format!("\"k{i:02}\":\"v\"")).collect();
        let b = jsonb(&format!("{{{}}}", members.join(",")));
        let entries = words(&b[8..8 + 40 * 4]);
        assert_eq!(entries[0], JENTRY_HAS_OFF | 3);
        assert_eq!(entries[32], JENTRY_HAS_OFF | (20 * 3 + 13));
        assert!(
            entries.iter().enumerate().all(|(i, e)| (i % 32 == 0) == (e & JENTRY_HAS_OFF != 0))
        );
    }

    #[test]
    fn what_cannot_be_written_is_an_error() {
        let mut w = Writer::new();
        w.begin_array();
        w.string("open".into());
        assert_eq!(w.finish(&mut Text).unwrap_err(), "an incomplete JSON value");
        // Nesting past MAX_DEPTH is refused, not recursed into.
        let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        let too_deep = deep(MAX_DEPTH + 1);
        let mut w = Writer::new();
        crate::json::read(&too_deep, &mut w).unwrap();
        assert_eq!(
            w.finish(&mut Text).unwrap_err(),
            "JSON nested deeper than 1000 levels cannot be stored"
        );
        let mut w = Writer::new();
        let deep_object =
            format!("{}1{}", r#"{"a":"#.repeat(MAX_DEPTH + 5), "}".repeat(MAX_DEPTH + 5));
        crate::json::read(&deep_object, &mut w).unwrap();
        assert!(w.finish(&mut Text).is_err());
        assert_eq!(jsonb(&deep(MAX_DEPTH)).len(), 4 + 8 * MAX_DEPTH - 4);
    }
}
