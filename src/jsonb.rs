//! JSON text to a `jsonb` datum. The text is read once, by
//! `stripe_sync_core::json`, into the tree of `JsonbValue`s that `jsonb_in`
//! builds (through `pushJsonbValue`), which PostgreSQL's own
//! `JsonbValueToJsonb` turns into jsonb: the bytes stored are exactly what
//! `'...'::jsonb` makes (tested byte for byte in pg_tests).
//! What this saves is PostgreSQL's character-at-a-time lexer: about a third of
//! a backfill's CPU went to `jsonb_in` (BENCHMARKS.md, backfill profile).
//!
//! Databases not in UTF-8 keep using `jsonb_in`, which converts escapes to the
//! database encoding.

use pgrx::PgMemoryContexts;
use pgrx::pg_sys::{self, JsonbPair, JsonbValue, jbvType};
use std::borrow::Cow;
use std::ffi::CString;
use stripe_sync_core::json::{self, Member, Sink};

/// `text` as a jsonb datum, allocated in the current memory context.
pub fn from_text(text: &str) -> Result<pg_sys::Datum, String> {
    if !utf8_database() {
        return Ok(jsonb_in(text));
    }
    let mut b = Builder::new();
    json::read(text, &mut b).map_err(|e| e.to_string())?;
    Ok(b.finish())
}

/// The member `field` of the top-level object in `text`, as a jsonb datum
/// (a list page's `data`), without building the rest of the document.
pub fn member_from_text(text: &str, field: &str) -> Result<pg_sys::Datum, String> {
    if !utf8_database() {
        let whole = jsonb_in(text);
        // SAFETY: a jsonb datum and a text datum, as jsonb_object_field takes.
        return unsafe {
            pgrx::direct_function_call_as_datum(
                pg_sys::jsonb_object_field,
                &[Some(whole), pgrx::IntoDatum::into_datum(field)],
            )
        }
        .ok_or_else(|| format!("the JSON has no \"{field}\""));
    }
    let mut m = Member::new(Builder::new(), field);
    json::read(text, &mut m).map_err(|e| e.to_string())?;
    match m.found {
        0 => Err(format!("the JSON has no \"{field}\"")),
        1 => Ok(m.inner.finish()),
        _ => Err(format!("the JSON has \"{field}\" more than once")),
    }
}

fn utf8_database() -> bool {
    // SAFETY: reads a backend global set at connection start.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as i32 }
}

fn jsonb_in(text: &str) -> pg_sys::Datum {
    // Text that came as a Rust string holding JSON has no NUL: JSON escapes control characters.
    let text = CString::new(text).expect("JSON text without NUL");
    // SAFETY: jsonb_in takes one cstring and errors (ereport) on bad input.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::jsonb_in,
            &[Some(pg_sys::Datum::from(text.as_ptr()))],
        )
    }
    .expect("jsonb_in returns a value")
}

/// Builds the tree of `JsonbValue`s that `pushJsonbValue` would build, and
/// hands it to `JsonbValueToJsonb`. Each object's keys are put in jsonb's
/// order here, in Rust, where `pushJsonbValue` would sort them with
/// `qsort_arg` and a comparison through a function pointer: that sort was a
/// tenth of a backfill's CPU (BENCHMARKS.md, backfill profile).
///
/// The tree lives in a memory context of its own, deleted as soon as the
/// jsonb is made: a page's tree of invoices is a few MB that the statement
/// applying the page does not need.
struct Builder<'a> {
    /// Where the tree's containers and numbers are allocated.
    scratch: PgMemoryContexts,
    /// The open containers, innermost last.
    open: Vec<Open>,
    /// Emptied vectors of finished containers, reused by the next ones.
    spare_elems: Vec<Vec<JsonbValue>>,
    spare_pairs: Vec<Vec<JsonbPair>>,
    /// Strings that had escapes: their decoded text must outlive the build.
    owned: Vec<String>,
    /// The finished value: the outermost container, or a top-level scalar.
    root: Option<JsonbValue>,
    _text: std::marker::PhantomData<&'a str>,
}

enum Open {
    Array(Vec<JsonbValue>),
    /// An object's pairs so far, and the key whose value comes next.
    Object(Vec<JsonbPair>, JsonbValue),
}

/// The longest string a jsonb entry can hold (JENTRY_OFFLENMASK).
const MAX_STRING: usize = 0x0FFF_FFFF;
/// The most elements or pairs one container can hold (JSONB_MAX_ELEMS and
/// JSONB_MAX_PAIRS: what fits in MaxAllocSize, at most JB_CMASK).
const MAX_ALLOC: usize = 0x3FFF_FFFF;
const MAX_ELEMS: usize = min(MAX_ALLOC / size_of::<JsonbValue>(), 0x0FFF_FFFF);
const MAX_PAIRS: usize = min(MAX_ALLOC / size_of::<JsonbPair>(), 0x0FFF_FFFF);

const fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

impl<'a> Builder<'a> {
    fn new() -> Self {
        Builder {
            scratch: PgMemoryContexts::new("stripe_sync jsonb tree"),
            open: Vec::new(),
            spare_elems: Vec::new(),
            spare_pairs: Vec::new(),
            owned: Vec::new(),
            root: None,
            _text: std::marker::PhantomData,
        }
    }

    fn finish(mut self) -> pg_sys::Datum {
        let mut root = self.root.take().expect("a finished JSON value");
        // SAFETY: root is a complete tree of containers in self.scratch whose
        // strings (the input text and self.owned) are alive until this call
        // has copied them; the result is made in the caller's context.
        let jsonb = unsafe { pg_sys::JsonbValueToJsonb(&mut root) };
        pg_sys::Datum::from(jsonb)
        // Dropping self deletes the tree.
    }

    /// A copy of `items` in the tree's memory context, as `JsonbValueToJsonb`
    /// reads it.
    fn palloc_copy<T: Copy>(&mut self, items: &[T]) -> *mut T {
        if items.is_empty() {
            return std::ptr::null_mut();
        }
        // SAFETY: MemoryContextAlloc returns memory aligned for any type
        // (MAXALIGN), of the size asked; the copy fills all of it.
        unsafe {
            let p = pg_sys::MemoryContextAlloc(self.scratch.value(), std::mem::size_of_val(items))
                .cast::<T>();
            std::ptr::copy_nonoverlapping(items.as_ptr(), p, items.len());
            p
        }
    }

    /// A JSON number's text as a PostgreSQL numeric in the tree's context.
    fn numeric(&mut self, text: &str) -> pg_sys::Numeric {
        // SAFETY: the conversion allocates in the current memory context,
        // switched to the tree's for it and back after.
        unsafe {
            let caller = pg_sys::MemoryContextSwitchTo(self.scratch.value());
            let n = numeric(text);
            pg_sys::MemoryContextSwitchTo(caller);
            n
        }
    }

    /// Adds a finished value to the innermost open container.
    fn add(&mut self, v: JsonbValue) {
        match self.open.last_mut() {
            Some(Open::Array(elems)) => {
                if elems.len() >= MAX_ELEMS {
                    pgrx::error!(
                        "number of jsonb array elements exceeds the maximum allowed ({MAX_ELEMS})"
                    );
                }
                elems.push(v);
            }
            Some(Open::Object(pairs, key)) => {
                if pairs.len() >= MAX_PAIRS {
                    pgrx::error!(
                        "number of jsonb object pairs exceeds the maximum allowed ({MAX_PAIRS})"
                    );
                }
                let order = pairs.len() as u32;
                pairs.push(JsonbPair { key: *key, value: v, order });
            }
            None => self.root = Some(v),
        }
    }

    fn string_value(&mut self, s: Cow<'a, str>) -> JsonbValue {
        if s.len() > MAX_STRING {
            pgrx::error!("string too long to represent as jsonb string");
        }
        let (ptr, len) = match s {
            Cow::Borrowed(s) => (s.as_ptr(), s.len()),
            Cow::Owned(s) => {
                let (ptr, len) = (s.as_ptr(), s.len());
                // Moving the String does not move its heap buffer.
                self.owned.push(s);
                (ptr, len)
            }
        };
        let mut v = value(jbvType::jbvString);
        v.val.string = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_1 {
            len: len as i32,
            val: ptr as *mut std::ffi::c_char,
        };
        v
    }
}

/// The bytes of a string value made by `Builder::string_value`.
fn key_bytes(v: &JsonbValue) -> &[u8] {
    // SAFETY: keys are jbvString values pointing at text alive for the build.
    unsafe {
        let s = v.val.string;
        std::slice::from_raw_parts(s.val as *const u8, s.len as usize)
    }
}

/// jsonb's order of keys (lengthCompareJsonbStringValue): shorter first,
/// then byte by byte.
fn key_order(a: &JsonbValue, b: &JsonbValue) -> std::cmp::Ordering {
    let (a, b) = (key_bytes(a), key_bytes(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Puts `pairs` in jsonb's key order and keeps, of a key written more than
/// once, its last value, as `uniqueifyJsonbObject` does.
fn uniqueify(pairs: &mut Vec<JsonbPair>) {
    // Among equal keys the later pair sorts first, and dedup keeps the first.
    pairs.sort_unstable_by(|a, b| key_order(&a.key, &b.key).then(b.order.cmp(&a.order)));
    pairs.dedup_by(|later, kept| key_bytes(&later.key) == key_bytes(&kept.key));
}

fn value(kind: jbvType::Type) -> JsonbValue {
    // SAFETY: JsonbValue is plain data; all-zero is a valid (null) value.
    let mut v: JsonbValue = unsafe { std::mem::zeroed() };
    v.type_ = kind;
    v
}

/// A JSON number's text as a PostgreSQL numeric, as `jsonb_in` makes it.
fn numeric(text: &str) -> pg_sys::Numeric {
    // Up to 18 digits always fit an int64: the common case (amounts, times).
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().expect("JSON integer of at most 18 digits");
        // SAFETY: plain conversion, allocated in the current memory context.
        return unsafe { pg_sys::int64_to_numeric(n) };
    }
    let text = CString::new(text).expect("a JSON number has no NUL");
    // SAFETY: numeric_in(cstring, typelem, typmod -1), as jsonb_in calls it.
    let d = unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[
                Some(pg_sys::Datum::from(text.as_ptr())),
                Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                Some(pg_sys::Datum::from(-1i32)),
            ],
        )
    }
    .expect("numeric_in returns a value");
    d.cast_mut_ptr()
}

impl<'a> Sink<'a> for Builder<'a> {
    fn begin_object(&mut self) {
        let pairs = self.spare_pairs.pop().unwrap_or_default();
        self.open.push(Open::Object(pairs, value(jbvType::jbvNull)));
    }
    fn end_object(&mut self) {
        let Some(Open::Object(mut pairs, _)) = self.open.pop() else {
            unreachable!("the reader closes what it opened");
        };
        uniqueify(&mut pairs);
        let mut v = value(jbvType::jbvObject);
        v.val.object = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_3 {
            nPairs: pairs.len() as i32,
            pairs: self.palloc_copy(&pairs),
        };
        pairs.clear();
        self.spare_pairs.push(pairs);
        self.add(v);
    }
    fn begin_array(&mut self) {
        let elems = self.spare_elems.pop().unwrap_or_default();
        self.open.push(Open::Array(elems));
    }
    fn end_array(&mut self) {
        let Some(Open::Array(mut elems)) = self.open.pop() else {
            unreachable!("the reader closes what it opened");
        };
        let mut v = value(jbvType::jbvArray);
        v.val.array = pg_sys::JsonbValue__bindgen_ty_1__bindgen_ty_2 {
            nElems: elems.len() as i32,
            elems: self.palloc_copy(&elems),
            rawScalar: false,
        };
        elems.clear();
        self.spare_elems.push(elems);
        self.add(v);
    }
    fn key(&mut self, key: Cow<'a, str>) {
        let v = self.string_value(key);
        match self.open.last_mut() {
            Some(Open::Object(_, k)) => *k = v,
            _ => unreachable!("the reader reports keys inside objects only"),
        }
    }
    fn string(&mut self, s: Cow<'a, str>) {
        let v = self.string_value(s);
        self.add(v);
    }
    fn number(&mut self, text: &'a str) {
        let mut v = value(jbvType::jbvNumeric);
        v.val.numeric = self.numeric(text);
        self.add(v);
    }
    fn boolean(&mut self, b: bool) {
        let mut v = value(jbvType::jbvBool);
        v.val.boolean = b;
        self.add(v);
    }
    fn null(&mut self) {
        self.add(value(jbvType::jbvNull));
    }
}
