//! `#[pg_test]`s of the jsonb writer: its bytes compared with jsonb_in's.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;

    /// The raw bytes of a jsonb datum, as stored.
    fn jsonb_bytes(d: pg_sys::Datum) -> Vec<u8> {
        // SAFETY: an in-memory, untoasted varlena built in this transaction.
        unsafe {
            let p = d.cast_mut_ptr::<pg_sys::varlena>();
            let len = pgrx::varlena::varsize_any(p);
            std::slice::from_raw_parts(p as *const u8, len).to_vec()
        }
    }

    fn jsonb_in_bytes(text: &str, field: Option<&str>) -> Vec<u8> {
        let c = std::ffi::CString::new(text).unwrap();
        // SAFETY: jsonb_in on a cstring, jsonb_object_field on its result.
        unsafe {
            let mut d = pgrx::direct_function_call_as_datum(
                pg_sys::jsonb_in,
                &[Some(pg_sys::Datum::from(c.as_ptr()))],
            )
            .unwrap();
            if let Some(f) = field {
                d = pgrx::direct_function_call_as_datum(
                    pg_sys::jsonb_object_field,
                    &[Some(d), f.into_datum()],
                )
                .unwrap();
            }
            jsonb_bytes(d)
        }
    }

    #[pg_test]
    fn jsonb_built_from_text_is_byte_for_byte_what_jsonb_in_makes() {
        let mut docs: Vec<String> = [
            "{}",
            "[]",
            "0",
            "-0",
            "\"s\"",
            "true",
            "null",
            " [1, -1, 0, -0, 0.0, -0.0, 0.10, 1e400, -1.5E-7, 2E+0, 123456789012345678,
              -123456789012345678, 1234567890123456789, 99999999999999999999999999999] ",
            r#"{"b":1,"a":2,"aa":3,"":4,"b":5,"é":6,"Z":{"y":[],"x":{}}}"#,
            r#"{"s":"q\"b\\s\/ \b\f\n\r\t \u00e9\u20ac\ud83d\ude00 é 😀","k\n":"plain"}"#,
            r#"[[[[[]]]], {"a":[{"b":[{"c":null}]}]}, "", false]"#,
        ]
        .map(String::from)
        .to_vec();
        // Key order and duplicates at scale: 300 keys of 1 to 3 letters in a
        // scrambled order, each written up to three times (the last value
        // wins), nested one level.
        let keys: Vec<String> = (0..300u32)
            .map(|i| {
                let k = (i * 7919) % 300;
                let letters = ["a", "b", "c", "ab", "ba", "abc", "cab", "b\u{e9}", "\u{e9}"];
                format!("{}{}", letters[(k % 9) as usize], k / 9)
            })
            .collect();
        let members: Vec<String> =
            (0..900usize).map(|i| format!("\"{}\":{}", keys[(i * 31) % 300], i)).collect();
        let object = format!("{{{}}}", members.join(","));
        docs.push(format!(r#"{{"outer":{object},"list":[{object},{{}},{object}],"z":{object}}}"#));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/stripe/");
        for sub in ["events/", "openapi/"] {
            for e in std::fs::read_dir(format!("{dir}{sub}")).expect("shared/stripe") {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "json") {
                    docs.push(std::fs::read_to_string(p).unwrap());
                }
            }
        }
        assert!(docs.len() > 30, "{} documents", docs.len());
        for doc in &docs {
            let ours = jsonb_bytes(crate::jsonb::from_text(doc).unwrap());
            assert!(ours == jsonb_in_bytes(doc, None), "differs from jsonb_in: {:.200}", doc);
        }
        // A list page's member, as the backfill stores it.
        let page = r#"{"object":"list","url":"/v1/customers","has_more":true,
                       "data":[{"id":"cus_1","n":1.25},{"id":"cus_2","metadata":{"k":"v"}}]}"#;
        for field in ["data", "has_more", "url"] {
            let ours = jsonb_bytes(crate::jsonb::member_from_text(page, field).unwrap());
            assert_eq!(ours, jsonb_in_bytes(page, Some(field)), "{field}");
        }
        // And what it stores reads back as the text's value.
        let same = Spi::get_one_with_args::<bool>(
            "SELECT $1 = $2::jsonb",
            &[
                unsafe {
                    pgrx::datum::DatumWithOid::new(
                        crate::jsonb::from_text(&docs[9]).unwrap(),
                        pg_sys::JSONBOID,
                    )
                },
                docs[9].as_str().into(),
            ],
        );
        assert_eq!(same, Ok(Some(true)));
    }

    #[pg_test]
    fn jsonb_from_text_refuses_what_jsonb_refuses_with_a_clear_reason() {
        for (text, why) in [
            ("{\"a\":1,}", "expected a string as the object key (at byte 7)"),
            ("\"\\u0000\"", "\\u0000 cannot be stored (PostgreSQL text has no NUL) (at byte 7)"),
            ("[1] x", "unexpected text after the value (at byte 4)"),
        ] {
            assert_eq!(crate::jsonb::from_text(text).unwrap_err(), why);
            let f = error_of("SELECT $1::jsonb", vec![text.to_owned()]);
            assert!(f.sqlstate.starts_with("22"), "jsonb_in accepts {text}: {f:?}");
        }
        // Deeper than the writer goes (jsonb_in itself stops at max_stack_depth).
        let levels = stripe_sync_core::jsonb::MAX_DEPTH + 1;
        let deep = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        assert_eq!(
            crate::jsonb::from_text(&deep).unwrap_err(),
            "JSON nested deeper than 1000 levels cannot be stored"
        );
        let page = r#"{"data":[1],"has_more":false,"data":[2]}"#;
        assert_eq!(
            crate::jsonb::member_from_text(page, "data").unwrap_err(),
            "the JSON has \"data\" more than once"
        );
        assert_eq!(
            crate::jsonb::member_from_text(r#"{"object":"list"}"#, "data").unwrap_err(),
            "the JSON has no \"data\""
        );
    }
}
