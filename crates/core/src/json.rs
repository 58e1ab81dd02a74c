//! A strict JSON reader that reports what it reads to a [`Sink`], building
//! nothing itself. The extension's sink builds a PostgreSQL `jsonb` value from
//! these calls, so a document is read once, by this reader, instead of by
//! PostgreSQL's character-at-a-time parser (`jsonb_in`).
//!
//! It accepts exactly RFC 8259 JSON, as PostgreSQL's parser does, with one
//! rule of `jsonb` on top: the escape `\u0000` is refused, because PostgreSQL
//! text cannot hold NUL. Strings without escapes are handed over borrowed from
//! the input; numbers are handed over as their text, unconverted, so no digit
//! is lost. The reader keeps its own stack: no recursion, so no depth limit
//! but memory.

use std::borrow::Cow;
use std::fmt;

/// What a document is made of, in reading order. Keys and values of an object
/// alternate; `end_*` closes the innermost open container.
pub trait Sink<'a> {
    fn begin_object(&mut self);
    fn end_object(&mut self);
    fn begin_array(&mut self);
    fn end_array(&mut self);
    fn key(&mut self, key: Cow<'a, str>);
    fn string(&mut self, value: Cow<'a, str>);
    /// A number as written (`-12`, `0.5`, `1e400`), already checked against
    /// JSON's number grammar.
    fn number(&mut self, text: &'a str);
    fn boolean(&mut self, value: bool);
    fn null(&mut self);
}

/// Why a text is not JSON, and where (a byte offset into it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    pub offset: usize,
    pub message: &'static str,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// Reads `text`, one whole JSON value with optional whitespace around it,
/// reporting it to `sink`. On error the sink has seen a prefix of the document
/// and must be discarded.
pub fn read<'a, S: Sink<'a>>(text: &'a str, sink: &mut S) -> Result<(), JsonError> {
    let mut r = Reader { text, bytes: text.as_bytes(), pos: 0 };
    // true: an object is open; false: an array.
    let mut open: Vec<bool> = Vec::new();
    r.skip_ws();
    'value: loop {
        match r.peek() {
            Some(b'{') => {
                r.pos += 1;
                sink.begin_object();
                r.skip_ws();
                if r.peek() == Some(b'}') {
                    r.pos += 1;
                    sink.end_object();
                } else {
                    open.push(true);
                    r.member_key(sink)?;
                    continue 'value;
                }
            }
            Some(b'[') => {
                r.pos += 1;
                sink.begin_array();
                r.skip_ws();
                if r.peek() == Some(b']') {
                    r.pos += 1;
                    sink.end_array();
                } else {
                    open.push(false);
                    continue 'value;
                }
            }
            Some(b'"') => {
                let s = r.string()?;
                sink.string(s);
            }
            Some(b'-' | b'0'..=b'9') => {
                let n = r.number()?;
                sink.number(n);
            }
            Some(b't') => {
                r.literal("true")?;
                sink.boolean(true);
            }
            Some(b'f') => {
                r.literal("false")?;
                sink.boolean(false);
            }
            Some(b'n') => {
                r.literal("null")?;
                sink.null();
            }
            _ => return Err(r.error("expected a value")),
        }
        // A value ended: close containers until one continues.
        loop {
            r.skip_ws();
            match open.last() {
                None if r.pos == r.bytes.len() => return Ok(()),
                None => return Err(r.error("unexpected text after the value")),
                Some(true) => match r.peek() {
                    Some(b',') => {
                        r.pos += 1;
                        r.skip_ws();
                        r.member_key(sink)?;
                        continue 'value;
                    }
                    Some(b'}') => {
                        r.pos += 1;
                        open.pop();
                        sink.end_object();
                    }
                    _ => return Err(r.error("expected ',' or '}' after an object member")),
                },
                Some(false) => match r.peek() {
                    Some(b',') => {
                        r.pos += 1;
                        r.skip_ws();
                        continue 'value;
                    }
                    Some(b']') => {
                        r.pos += 1;
                        open.pop();
                        sink.end_array();
                    }
                    _ => return Err(r.error("expected ',' or ']' after an array element")),
                },
            }
        }
    }
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn error(&self, message: &'static str) -> JsonError {
        JsonError { offset: self.pos, message }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// `"key"` `:` and the whitespace up to the value.
    fn member_key<S: Sink<'a>>(&mut self, sink: &mut S) -> Result<(), JsonError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string as the object key"));
        }
        let key = self.string()?;
        sink.key(key);
        self.skip_ws();
        if self.peek() != Some(b':') {
            return Err(self.error("expected ':' after an object key"));
        }
        self.pos += 1;
        self.skip_ws();
        Ok(())
    }

    fn literal(&mut self, word: &'static str) -> Result<(), JsonError> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<&'a str, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        Ok(&self.text[start..self.pos])
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.error("expected a digit"));
        }
        self.digits();
        Ok(())
    }

    /// A string from its opening quote: borrowed when it has no escape.
    fn string(&mut self) -> Result<Cow<'a, str>, JsonError> {
        self.pos += 1;
        let start = self.pos;
        self.plain_run()?;
        if self.peek() == Some(b'"') {
            let s = &self.text[start..self.pos];
            self.pos += 1;
            return Ok(Cow::Borrowed(s));
        }
        // An escape: copy what was read so far, then go on escape by escape.
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.escape(&mut out)?;
                    let run = self.pos;
                    self.plain_run()?;
                    out.push_str(&self.text[run..self.pos]);
                }
                _ => unreachable!("plain_run stops at a quote or a backslash"),
            }
        }
    }

    /// Moves past characters that need no handling; stops at `"` or `\`.
    fn plain_run(&mut self) -> Result<(), JsonError> {
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"' | b'\\') => return Ok(()),
                Some(0x00..=0x1f) => {
                    return Err(self.error("control character in a string (it must be escaped)"));
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// One escape, from its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), JsonError> {
        self.pos += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let code = match unit {
                    0 => {
                        return Err(
                            self.error("\\u0000 cannot be stored (PostgreSQL text has no NUL)")
                        );
                    }
                    0xD800..=0xDBFF => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(
                                self.error("a high surrogate must be followed by a low one")
                            );
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(
                                self.error("a high surrogate must be followed by a low one")
                            );
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(self.error("a low surrogate without a high one")),
                    _ => unit,
                };
                out.push(char::from_u32(code).expect("a valid scalar value"));
                return Ok(());
            }
            _ => return Err(self.error("invalid escape in a string")),
        };
        out.push(c);
        self.pos += 1;
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.error("expected four hex digits after \\u")),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }
}

/// A sink that passes on only the value of one member of the top-level object
/// (`{"data": [...], "has_more": ...}` → the `data` array). Whether the member
/// was there, and whether it came twice, is known after the read.
pub struct Member<'f, S> {
    pub inner: S,
    field: &'f str,
    /// Open containers at this point (the top-level object is 1).
    depth: usize,
    /// Depth at which the selected value started, while inside it.
    inside: Option<usize>,
    /// The next value is the selected member's.
    next_is_member: bool,
    pub found: usize,
}

impl<'f, S> Member<'f, S> {
    pub fn new(inner: S, field: &'f str) -> Self {
        Member { inner, field, depth: 0, inside: None, next_is_member: false, found: 0 }
    }

    /// A scalar or the opening of a container: passed on when selected.
    fn starts_value(&mut self) -> bool {
        if self.inside.is_some() {
            return true;
        }
        std::mem::take(&mut self.next_is_member)
    }
}

impl<'a, S: Sink<'a>> Member<'_, S> {
    fn open(&mut self, begin: fn(&mut S)) {
        self.depth += 1;
        if self.starts_value() {
            self.inside.get_or_insert(self.depth);
            begin(&mut self.inner);
        }
    }

    fn close(&mut self, end: fn(&mut S)) {
        if let Some(d) = self.inside {
            end(&mut self.inner);
            if d == self.depth {
                self.inside = None;
            }
        }
        self.depth -= 1;
    }
}

impl<'a, S: Sink<'a>> Sink<'a> for Member<'_, S> {
    fn begin_object(&mut self) {
        self.open(S::begin_object);
    }
    fn end_object(&mut self) {
        self.close(S::end_object);
    }
    fn begin_array(&mut self) {
        self.open(S::begin_array);
    }
    fn end_array(&mut self) {
        self.close(S::end_array);
    }
    fn key(&mut self, key: Cow<'a, str>) {
        if self.inside.is_some() {
            self.inner.key(key);
        } else if self.depth == 1 && key == self.field {
            self.found += 1;
            self.next_is_member = self.found == 1;
        }
    }
    fn string(&mut self, value: Cow<'a, str>) {
        if self.starts_value() {
            self.inner.string(value);
        }
    }
    fn number(&mut self, text: &'a str) {
        if self.starts_value() {
            self.inner.number(text);
        }
    }
    fn boolean(&mut self, value: bool) {
        if self.starts_value() {
            self.inner.boolean(value);
        }
    }
    fn null(&mut self) {
        if self.starts_value() {
            self.inner.null();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// Builds a serde_json value from the calls, to compare with serde_json's parse.
    #[derive(Default)]
    struct Build {
        stack: Vec<(Value, Option<String>)>,
        key: Option<String>,
        done: Option<Value>,
    }

    impl Build {
        fn put(&mut self, v: Value) {
            match self.stack.last_mut() {
                None => self.done = Some(v),
                Some((Value::Array(a), _)) => a.push(v),
                Some((Value::Object(o), _)) => {
                    o.insert(self.key.take().expect("a key before a member value"), v);
                }
                Some(_) => unreachable!(),
            }
        }
        fn open(&mut self, v: Value) {
            let key = self.key.take();
            self.stack.push((v, key));
        }
        fn close(&mut self) {
            let (v, key) = self.stack.pop().expect("an open container");
            self.key = key;
            self.put(v);
        }
    }

    impl<'a> Sink<'a> for Build {
        fn begin_object(&mut self) {
            self.open(Value::Object(Map::new()));
        }
        fn end_object(&mut self) {
            self.close();
        }
        fn begin_array(&mut self) {
            self.open(Value::Array(vec![]));
        }
        fn end_array(&mut self) {
            self.close();
        }
        fn key(&mut self, key: Cow<'a, str>) {
            self.key = Some(key.into_owned());
        }
        fn string(&mut self, value: Cow<'a, str>) {
            self.put(Value::String(value.into_owned()));
        }
        fn number(&mut self, text: &'a str) {
            // serde_json refuses numbers beyond f64 (1e400); keep their text.
            self.put(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())));
        }
        fn boolean(&mut self, value: bool) {
            self.put(Value::Bool(value));
        }
        fn null(&mut self) {
            self.put(Value::Null);
        }
    }

    fn ours(text: &str) -> Result<Value, JsonError> {
        let mut b = Build::default();
        read(text, &mut b)?;
        assert!(b.stack.is_empty());
        Ok(b.done.expect("a value"))
    }

    fn member(text: &str, field: &str) -> Result<(Option<Value>, usize), JsonError> {
        let mut m = Member::new(Build::default(), field);
        read(text, &mut m)?;
        Ok((m.inner.done, m.found))
    }

    #[test]
    fn reads_what_serde_reads() {
        for text in [
            "{}",
            "[]",
            " \t\r\n{ \"a\" : [ 1 , -2.5e+3 , 0 , -0 , 1E-2 , true , false , null ] } \n",
            r#"{"id":"cus_1","object":"customer","balance":0,"metadata":{},"tags":[[],[{}]]}"#,
            r#""plain""#,
            "12345678901234567890",
            r#"{"a":"x\"y\\z\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude00 end","\u0041":1}"#,
            r#"{"é":"ünïcødé, 😀 as UTF-8"}"#,
            r#"{"dup":1,"dup":2}"#,
            "true",
            "null",
            "-0.0",
        ] {
            let want: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours(text).unwrap(), want, "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        struct Kinds(Vec<bool>);
        impl<'a> Sink<'a> for Kinds {
            fn begin_object(&mut self) {}
            fn end_object(&mut self) {}
            fn begin_array(&mut self) {}
            fn end_array(&mut self) {}
            fn key(&mut self, key: Cow<'a, str>) {
                self.0.push(matches!(key, Cow::Borrowed(_)));
            }
            fn string(&mut self, value: Cow<'a, str>) {
                self.0.push(matches!(value, Cow::Borrowed(_)));
            }
            fn number(&mut self, _: &'a str) {}
            fn boolean(&mut self, _: bool) {}
            fn null(&mut self) {}
        }
        let mut k = Kinds(vec![]);
        read(r#"{"a":"b","c\n":"d\"e"}"#, &mut k).unwrap();
        assert_eq!(k.0, [true, true, false, false]);
    }

    #[test]
    fn numbers_keep_their_text() {
        struct Numbers(Vec<String>);
        impl<'a> Sink<'a> for Numbers {
            fn begin_object(&mut self) {}
            fn end_object(&mut self) {}
            fn begin_array(&mut self) {}
            fn end_array(&mut self) {}
            fn key(&mut self, _: Cow<'a, str>) {}
            fn string(&mut self, _: Cow<'a, str>) {}
            fn number(&mut self, text: &'a str) {
                self.0.push(text.into());
            }
            fn boolean(&mut self, _: bool) {}
            fn null(&mut self) {}
        }
        let mut n = Numbers(vec![]);
        read("[1e400, 123456789012345678901234567890, -0, 0.10, 2E+0]", &mut n).unwrap();
        assert_eq!(n.0, ["1e400", "123456789012345678901234567890", "-0", "0.10", "2E+0"]);
    }

    #[test]
    fn refuses_what_is_not_json_and_says_where() {
        for (text, offset, message) in [
            ("", 0, "expected a value"),
            ("   ", 3, "expected a value"),
            ("{", 1, "expected a string as the object key"),
            ("{\"a\" 1}", 5, "expected ':' after an object key"),
            ("{\"a\":1,}", 7, "expected a string as the object key"),
            ("[1,]", 3, "expected a value"),
            ("[1 2]", 3, "expected ',' or ']' after an array element"),
            ("{\"a\":1 \"b\":2}", 7, "expected ',' or '}' after an object member"),
            ("01", 1, "unexpected text after the value"),
            ("-", 1, "expected a digit"),
            ("1.", 2, "expected a digit"),
            ("1e+", 3, "expected a digit"),
            (".5", 0, "expected a value"),
            ("+1", 0, "expected a value"),
            ("tru", 0, "expected a value"),
            ("nulll", 4, "unexpected text after the value"),
            ("\"abc", 4, "unterminated string"),
            ("\"a\nb\"", 2, "control character in a string (it must be escaped)"),
            ("\"\\x\"", 2, "invalid escape in a string"),
            ("\"\\u12G4\"", 5, "expected four hex digits after \\u"),
            ("\"\\u0000\"", 7, "\\u0000 cannot be stored (PostgreSQL text has no NUL)"),
            ("\"\\ud83d\"", 7, "a high surrogate must be followed by a low one"),
            ("\"\\ud83d\\u0041\"", 13, "a high surrogate must be followed by a low one"),
            ("\"\\ude00\"", 7, "a low surrogate without a high one"),
            ("{}{}", 2, "unexpected text after the value"),
            ("\u{feff}{}", 0, "expected a value"),
            ("NaN", 0, "expected a value"),
            ("[1]]", 3, "unexpected text after the value"),
        ] {
            let e = ours(text).unwrap_err();
            assert_eq!((e.offset, e.message), (offset, message), "{text:?}");
            // serde_json accepts \u0000; jsonb does not.
            if !message.contains("\\u0000") {
                assert!(serde_json::from_str::<Value>(text).is_err(), "serde accepts {text:?}");
            }
        }
        assert_eq!(
            ours("[1 2]").unwrap_err().to_string(),
            "expected ',' or ']' after an array element (at byte 3)"
        );
    }

    /// Small deterministic generator (no dependency needed for this).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    #[test]
    fn agrees_with_serde_on_damaged_documents() {
        let doc = r#"{"id":"in_1","object":"invoice","amount_due":-1200,"rate":0.075,"e":1.5E+3,
            "lines":{"data":[{"id":"il_1","period":{"start":1700000000}},[true,false,null]],"has_more":false},
            "note":"a \"quoted\" \\ line\nwith \u00e9 and \ud83d\ude00","empty":{},"list":[]}"#;
        let pieces = [
            "", "\"", "\\", "{", "}", "[", "]", ",", ":", "-", "0", "1", "e", ".", " ", "u",
            "\\u00",
        ];
        let mut g = Lcg(7);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let mut text = doc.to_owned();
            for _ in 0..1 + g.next(3) {
                let mut at = g.next(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = at + g.next(3);
                while end > text.len() || !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, pieces[g.next(pieces.len())]);
            }
            let serde: Result<Value, _> = serde_json::from_str(&text);
            match (ours(&text), serde) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "{text}");
                    accepted += 1;
                }
                (Err(_), Err(_)) => refused += 1,
                (Err(e), Ok(_)) if e.message.contains("\\u0000") => refused += 1,
                (Ok(_), Err(e)) if e.to_string().contains("out of range") => accepted += 1,
                (a, b) => panic!("disagree on {text:?}: ours {a:?}, serde {b:?}"),
            }
        }
        assert!(accepted > 1_000 && refused > 1_000, "{accepted} accepted, {refused} refused");
    }

    #[test]
    fn member_passes_on_one_top_level_member() {
        let page = r#"{"object":"list","data":[{"id":"a","data":{"x":1}},{"id":"b"}],"has_more":true,"url":"/v1/x"}"#;
        let (v, found) = member(page, "data").unwrap();
        assert_eq!(found, 1);
        assert_eq!(v.unwrap(), serde_json::json!([{"id": "a", "data": {"x": 1}}, {"id": "b"}]));
        assert_eq!(member(page, "has_more").unwrap(), (Some(Value::Bool(true)), 1));
        assert_eq!(member(page, "url").unwrap().0, Some(Value::String("/v1/x".into())));
        assert_eq!(member(page, "nope").unwrap(), (None, 0));
        // Only the top level counts; a second occurrence is reported, not merged.
        assert_eq!(member(r#"{"a":{"data":1}}"#, "data").unwrap(), (None, 0));
        assert_eq!(
            member(r#"{"data":[1],"data":[2]}"#, "data").unwrap(),
            (Some(serde_json::json!([1])), 2)
        );
        assert_eq!(member(r#"{"data":{}}"#, "data").unwrap().0, Some(serde_json::json!({})));
        assert_eq!(member(r#"[{"data":1}]"#, "data").unwrap(), (None, 0));
        assert!(member(r#"{"data":[1,}"#, "data").is_err());
    }

    #[test]
    fn reads_the_published_fixtures_as_serde_does() {
        let Some(dir) = crate::shared_stripe() else {
            eprintln!("shared/stripe not found (set STRIPE_SHARED): skipped");
            return;
        };
        let mut files = 0;
        for entry in walk(&dir) {
            if entry.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&entry).unwrap();
                let want: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(ours(&text).unwrap(), want, "{}", entry.display());
                files += 1;
            }
        }
        assert!(files > 3, "{files} fixture files");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = vec![];
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
