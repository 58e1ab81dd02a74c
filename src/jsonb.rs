//! JSON text to a `jsonb` datum. The text is read once, by
//! `stripe_sync_core::json`, and the value is built with PostgreSQL's own jsonb
//! builder (`pushJsonbValue`, the one `jsonb_in` feeds), so the bytes stored
//! are exactly what `'...'::jsonb` makes (tested byte for byte in pg_tests).
//! What this saves is PostgreSQL's character-at-a-time lexer: about a third of
//! a backfill's CPU went to `jsonb_in` (BENCHMARKS.md, backfill profile).
//!
//! Databases not in UTF-8 keep using `jsonb_in`, which converts escapes to the
//! database encoding.

use pgrx::pg_sys::{self, JsonbIteratorToken as Tok, JsonbValue, jbvType};
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

/// Feeds the reader's calls to `pushJsonbValue`.
struct Builder<'a> {
    state: *mut pg_sys::JsonbParseState,
    /// For each open container: true for an object (values are WJB_VALUE).
    open: Vec<bool>,
    /// Strings that had escapes: their decoded text must outlive the build.
    owned: Vec<String>,
    /// The finished value: the outermost container, or a top-level scalar.
    root: Option<JsonbValue>,
    _text: std::marker::PhantomData<&'a str>,
}

/// The longest string a jsonb entry can hold (JENTRY_OFFLENMASK).
const MAX_STRING: usize = 0x0FFF_FFFF;

impl<'a> Builder<'a> {
    fn new() -> Self {
        Builder {
            state: std::ptr::null_mut(),
            open: Vec::new(),
            owned: Vec::new(),
            root: None,
            _text: std::marker::PhantomData,
        }
    }

    fn finish(mut self) -> pg_sys::Datum {
        let mut root = self.root.take().expect("a finished JSON value");
        // SAFETY: root is a complete value whose strings (the input text and
        // self.owned) are alive until this call has copied them.
        let jsonb = unsafe { pg_sys::JsonbValueToJsonb(&mut root) };
        pg_sys::Datum::from(jsonb)
    }

    fn push(&mut self, token: Tok::Type, value: Option<&mut JsonbValue>) {
        let ptr = value.map_or(std::ptr::null_mut(), |v| v as *mut JsonbValue);
        // SAFETY: the token sequence is well formed (the reader checked the
        // grammar) and the value is copied by pushJsonbValue.
        let result = unsafe { pg_sys::pushJsonbValue(&mut self.state, token, ptr) };
        if self.state.is_null() && matches!(token, Tok::WJB_END_OBJECT | Tok::WJB_END_ARRAY) {
            // SAFETY: the outermost container, allocated by pushJsonbValue.
            self.root = Some(unsafe { *result });
        }
    }

    fn scalar(&mut self, mut v: JsonbValue) {
        match self.open.last() {
            Some(true) => self.push(Tok::WJB_VALUE, Some(&mut v)),
            Some(false) => self.push(Tok::WJB_ELEM, Some(&mut v)),
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
        self.open.push(true);
        self.push(Tok::WJB_BEGIN_OBJECT, None);
    }
    fn end_object(&mut self) {
        self.open.pop();
        self.push(Tok::WJB_END_OBJECT, None);
    }
    fn begin_array(&mut self) {
        self.open.push(false);
        self.push(Tok::WJB_BEGIN_ARRAY, None);
    }
    fn end_array(&mut self) {
        self.open.pop();
        self.push(Tok::WJB_END_ARRAY, None);
    }
    fn key(&mut self, key: Cow<'a, str>) {
        let mut v = self.string_value(key);
        self.push(Tok::WJB_KEY, Some(&mut v));
    }
    fn string(&mut self, s: Cow<'a, str>) {
        let v = self.string_value(s);
        self.scalar(v);
    }
    fn number(&mut self, text: &'a str) {
        let mut v = value(jbvType::jbvNumeric);
        v.val.numeric = numeric(text);
        self.scalar(v);
    }
    fn boolean(&mut self, b: bool) {
        let mut v = value(jbvType::jbvBool);
        v.val.boolean = b;
        self.scalar(v);
    }
    fn null(&mut self) {
        self.scalar(value(jbvType::jbvNull));
    }
}
