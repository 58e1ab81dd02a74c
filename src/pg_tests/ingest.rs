//! `#[pg_test]`s of ingest_event: signatures, secrets in rotation, bad input refused with its SQLSTATE, duplicates.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;

    #[pg_test]
    fn a_valid_delivery_is_queued_once_then_duplicate() {
        let p = customer_event("evt_q1", "customer.created", now(), "cus_q1", "a@example.com");
        assert_eq!(ingest_signed(&p), "queued");
        assert_eq!(ingest_signed(&p), "duplicate");
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events"), 1);
        let row = text(
            "SELECT concat_ws('|', type, status, attempts, object_type, object_id, api_version, data->>'id')
               FROM stripe_sync.events WHERE id = 'evt_q1'",
        );
        assert_eq!(
            row.as_deref(),
            Some("customer.created|pending|0|customer|cus_q1|2026-07-29.dahlia|evt_q1")
        );
    }

    #[pg_test]
    fn the_old_secret_of_a_rotation_is_accepted() {
        let p = customer_event("evt_rot", "customer.created", now(), "cus_rot", "r@example.com");
        assert_eq!(ingest(&p, &header(&p, "whsec_pgtest_old", now())), "queued");
    }

    #[pg_test]
    fn every_bad_delivery_has_its_sqlstate_and_stores_nothing() {
        let p = customer_event("evt_bad", "customer.created", now(), "cus_bad", "b@example.com");
        let good = header(&p, SECRET, now());
        // Valid JSON that jsonb cannot hold: PostgreSQL text has no NUL.
        let nul = p.replace("b@example.com", "b\\u0000@example.com");
        // Valid JSON with a number PostgreSQL's numeric cannot hold, or a created
        // beyond any timestamp.
        let huge = p.replace("\"balance\":-500", "\"balance\":1e1000000");
        let long = p.replace("\"balance\":-500", &format!("\"balance\":{}", "7".repeat(140_000)));
        let far = p.replacen("\"created\":", "\"created\":99999999999999,\"x\":", 1);
        assert!(huge != p && long != p && far != p, "the replacements changed the event");
        let cases: Vec<(String, String, &str, &str)> = vec![
            (
                huge.clone(),
                header(&huge, SECRET, now()),
                "22023",
                "beyond the range of PostgreSQL's numeric",
            ),
            (
                long.clone(),
                header(&long, SECRET, now()),
                "22023",
                "beyond the range of PostgreSQL's numeric",
            ),
            (far.clone(), header(&far, SECRET, now()), "22023", "not a Unix time"),
            (p.clone(), String::new(), "22P02", "missing Stripe-Signature header"),
            (p.clone(), "garbage".into(), "22P02", "malformed Stripe-Signature header"),
            (p.clone(), header(&p, "whsec_forger", now()), "28000", "no signature"),
            (format!("{p} "), good.clone(), "28000", "no signature"),
            (p.clone(), header(&p, SECRET, now() - 301), "22008", "outside the tolerance"),
            (p.clone(), header(&p, SECRET, now() + 400), "22008", "outside the tolerance"),
            ("{not json".into(), header("{not json", SECRET, now()), "22032", "not valid JSON"),
            (nul.clone(), header(&nul, SECRET, now()), "22032", "\\u0000 cannot be stored"),
            (
                r#"{"id":"cus_1","type":"x","created":1,"data":{"object":{}}}"#.into(),
                header(
                    r#"{"id":"cus_1","type":"x","created":1,"data":{"object":{}}}"#,
                    SECRET,
                    now(),
                ),
                "22023",
                "does not start with \"evt_\"",
            ),
        ];
        for (payload, hdr, sqlstate, words) in cases {
            let f = ingest_error(&payload, &hdr);
            assert_eq!(f.sqlstate, sqlstate, "{}", f.message);
            assert!(f.message.contains(words), "{}", f.message);
            assert!(!f.message.contains(SECRET) && !f.message.contains("cus_bad"), "{}", f.message);
        }
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events"), 0);
    }

    #[pg_test]
    fn null_arguments_are_errors_not_nulls() {
        let p = customer_event("evt_n", "customer.created", now(), "cus_n", "n@example.com");
        let f = error_of("SELECT stripe_sync.ingest_event($1, NULL)", vec![p]);
        assert_eq!(f.sqlstate, "22P02");
        let f = error_of("SELECT stripe_sync.ingest_event(NULL, 't=1,v1=00')", vec![]);
        assert_eq!(f.sqlstate, "22032");
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events"), 0);
    }

    #[pg_test]
    fn an_oversized_body_is_refused_before_anything_else() {
        Spi::run("SET stripe_sync.max_payload_bytes = 1024").unwrap();
        let big =
            customer_event("evt_big", "customer.created", now(), "cus_big", &"x".repeat(2000));
        let f = ingest_error(&big, "not even a header");
        assert_eq!(f.sqlstate, "54000");
        assert!(f.message.contains("over the limit of 1024 bytes"), "{}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events"), 0);
    }

    #[pg_test]
    fn no_configured_secret_is_its_own_error() {
        Spi::run("SET stripe_sync.webhook_secret = ''").unwrap();
        let p = customer_event("evt_ns", "customer.created", now(), "cus_ns", "n@example.com");
        let f = ingest_error(&p, &header(&p, SECRET, now()));
        assert_eq!(f.sqlstate, "55000");
        assert!(f.message.contains("no webhook signing secret"), "{}", f.message);
    }
}
