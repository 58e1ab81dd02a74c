//! JSON text to a `jsonb` datum. The text is read once, by
//! `stripe_sync_core::json`, and written in jsonb's binary format by
//! `stripe_sync_core::jsonb`: the bytes stored are exactly what
//! `'...'::jsonb` makes (tested byte for byte in pg_tests). Only the numbers
//! are PostgreSQL's own (`numeric_in`).
//! What this saves is PostgreSQL's character-at-a-time lexer (about a third
//! of a backfill's CPU went to `jsonb_in`), then its tree of `JsonbValue`s
//! and the sort of each object's keys through a function pointer
//! (BENCHMARKS.md, backfill).
//!
//! Databases not in UTF-8 keep using `jsonb_in`, which converts escapes to the
//! database encoding.

use pgrx::pg_sys;
use std::ffi::CString;
use stripe_sync_core::json::{self, Member};
use stripe_sync_core::jsonb::{Numerics, Writer};

/// `text` as a jsonb datum, allocated in the current memory context.
pub fn from_text(text: &str) -> Result<pg_sys::Datum, String> {
    if !utf8_database() {
        return Ok(jsonb_in(text));
    }
    let mut w = Writer::new();
    json::read(text, &mut w).map_err(|e| e.to_string())?;
    datum(w.finish(&mut PgNumerics)?)
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
    let mut m = Member::new(Writer::new(), field);
    json::read(text, &mut m).map_err(|e| e.to_string())?;
    match m.found {
        0 => Err(format!("the JSON has no \"{field}\"")),
        1 => datum(m.inner.finish(&mut PgNumerics)?),
        _ => Err(format!("the JSON has \"{field}\" more than once")),
    }
}

/// The largest palloc (MaxAllocSize).
const MAX_ALLOC: usize = 0x3FFF_FFFF;

/// The bytes `Writer::finish` made (the first 4 left for the header) as a
/// varlena in the current memory context.
fn datum(bytes: Vec<u8>) -> Result<pg_sys::Datum, String> {
    if bytes.len() > MAX_ALLOC {
        return Err("the JSON is too large for a jsonb value".into());
    }
    // SAFETY: palloc returns memory for bytes.len() bytes (at least the 4 of
    // the header), filled by the copy; set_varsize_4b writes the header.
    unsafe {
        let p = pg_sys::palloc(bytes.len()).cast::<u8>();
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        pgrx::set_varsize_4b(p.cast(), bytes.len() as i32);
        Ok(pg_sys::Datum::from(p))
    }
}

/// Numbers as `jsonb_in` stores them: PostgreSQL numerics.
struct PgNumerics;

impl Numerics for PgNumerics {
    fn append(&mut self, text: &str, out: &mut Vec<u8>) {
        let n = numeric(text);
        // SAFETY: n is a numeric varlena just made in the current memory
        // context; its bytes are copied, then it is freed.
        unsafe {
            let len = pgrx::varsize_any(n.cast());
            out.extend_from_slice(std::slice::from_raw_parts(n.cast::<u8>(), len));
            pg_sys::pfree(n.cast());
        }
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
