//! `#[pg_test]`s of the SQL surface. Each runs in a transaction that is rolled
//! back, so the worker never sees their rows: they apply with process_pending().

#[pgrx::pg_schema]
mod tests {
    use crate::subxact::{self, Failure};
    use pgrx::prelude::*;
    use std::time::Duration;
    use stripe_sync_core::mapping::SPECS;
    use stripe_sync_core::signature::sign;

    const SECRET: &str = "whsec_pgtest";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn header(payload: &str, secret: &str, t: i64) -> String {
        format!("t={t},v1={}", sign(payload.as_bytes(), secret, t))
    }

    fn ingest(payload: &str, header: &str) -> String {
        Spi::get_one_with_args::<String>(
            "SELECT stripe_sync.ingest_event($1, $2)",
            &[payload.into(), header.into()],
        )
        .unwrap()
        .unwrap()
    }

    fn ingest_signed(payload: &str) -> String {
        ingest(payload, &header(payload, SECRET, now()))
    }

    fn customer_event(
        event_id: &str,
        event_type: &str,
        created: i64,
        customer: &str,
        email: &str,
    ) -> String {
        serde_json::json!({
            "id": event_id, "object": "event", "type": event_type, "created": created,
            "api_version": "2026-07-29.dahlia", "livemode": false, "pending_webhooks": 1,
            "data": {"object": {
                "id": customer, "object": "customer", "email": email, "name": "Ada Lovelace",
                "balance": -500, "currency": "eur", "delinquent": false, "created": 1_700_000_000,
                "livemode": false, "metadata": {"user_id": "42"}, "address": null,
                "default_source": {"id": "card_1", "object": "card"}, "invoice_prefix": "ABC",
                "tax_exempt": "none", "description": null, "phone": null
            }}
        })
        .to_string()
    }

    /// Queues `n` customer.created events, evt_{tag}0.. for cus_{tag}0.., one
    /// second apart and the last one a second old.
    fn ingest_customers(tag: &str, n: i64) {
        for i in 0..n {
            ingest_signed(&customer_event(
                &format!("evt_{tag}{i}"),
                "customer.created",
                now() - n + i,
                &format!("cus_{tag}{i}"),
                &format!("{tag}@example.com"),
            ));
        }
    }

    fn count(sql: &str) -> i64 {
        Spi::get_one::<i64>(sql).unwrap().unwrap()
    }

    fn text(sql: &str) -> Option<String> {
        Spi::get_one::<String>(sql).unwrap()
    }

    /// The first column of every row of `sql`, as text.
    fn texts(sql: &str) -> Vec<String> {
        Spi::connect(|c| {
            c.select(sql, None, &[]).unwrap().filter_map(|r| r.get::<String>(1).unwrap()).collect()
        })
    }

    fn process() -> i32 {
        Spi::get_one::<i32>("SELECT stripe_sync.process_pending()").unwrap().unwrap()
    }

    /// Runs `sql` expecting an ERROR; returns it.
    fn error_of(sql: &str, args: Vec<String>) -> Failure {
        let outcome = subxact::run(|| {
            let args: Vec<pgrx::datum::DatumWithOid> =
                args.iter().map(|a| a.as_str().into()).collect();
            Spi::connect_mut(|c| c.update(sql, None, &args).map(|_| ()))
        });
        match outcome {
            Err(f) => f,
            Ok(r) => panic!("expected an error from {sql}, got {r:?}"),
        }
    }

    fn ingest_error(payload: &str, header: &str) -> Failure {
        error_of("SELECT stripe_sync.ingest_event($1, $2)", vec![payload.into(), header.into()])
    }

    // ---------------------------------------------------------------- ingest

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

    // ----------------------------------------------------------------- apply

    #[pg_test]
    fn process_pending_applies_a_customer_with_typed_columns() {
        let t = now() - 10;
        ingest_signed(&customer_event(
            "evt_c1",
            "customer.created",
            t,
            "cus_c1",
            "ada@example.com",
        ));
        assert_eq!(process(), 1);
        let row = text(
            "SELECT concat_ws('|', email, name, balance, currency, delinquent, default_source,
                    invoice_prefix, metadata->>'user_id', extract(epoch FROM created)::bigint,
                    _deleted, _last_event_id, _last_event_type, extract(epoch FROM _last_event_at)::bigint)
               FROM stripe_sync.customers WHERE id = 'cus_c1'",
        );
        let expected = format!(
            "ada@example.com|Ada Lovelace|-500|eur|f|card_1|ABC|42|1700000000|f|evt_c1|customer.created|{t}"
        );
        assert_eq!(row.as_deref(), Some(expected.as_str()));
        assert_eq!(
            text("SELECT status FROM stripe_sync.events WHERE id = 'evt_c1'").as_deref(),
            Some("processed")
        );
        assert_eq!(process(), 0);
    }

    #[pg_test]
    fn older_event_never_overwrites_newer() {
        let t = now() - 100;
        ingest_signed(&customer_event(
            "evt_new",
            "customer.updated",
            t + 10,
            "cus_o",
            "new@example.com",
        ));
        process();
        ingest_signed(&customer_event(
            "evt_old",
            "customer.updated",
            t,
            "cus_o",
            "old@example.com",
        ));
        process();
        assert_eq!(
            text("SELECT email FROM stripe_sync.customers WHERE id = 'cus_o'").as_deref(),
            Some("new@example.com")
        );
        // Both events were handled: the older one is processed, and changed nothing.
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events WHERE status = 'processed'"), 2);
    }

    #[pg_test]
    fn newest_event_of_a_batch_wins_whatever_the_arrival_order() {
        let t = now() - 100;
        ingest_signed(&customer_event(
            "evt_b3",
            "customer.updated",
            t + 2,
            "cus_b",
            "third@example.com",
        ));
        ingest_signed(&customer_event(
            "evt_b1",
            "customer.created",
            t,
            "cus_b",
            "first@example.com",
        ));
        ingest_signed(&customer_event(
            "evt_b2",
            "customer.updated",
            t + 1,
            "cus_b",
            "second@example.com",
        ));
        assert_eq!(process(), 3);
        assert_eq!(
            text("SELECT email FROM stripe_sync.customers WHERE id = 'cus_b'").as_deref(),
            Some("third@example.com")
        );
    }

    #[pg_test]
    fn in_the_same_second_an_update_beats_the_creation() {
        let t = now() - 100;
        ingest_signed(&customer_event(
            "evt_s2",
            "customer.updated",
            t,
            "cus_s",
            "updated@example.com",
        ));
        process();
        ingest_signed(&customer_event(
            "evt_s1",
            "customer.created",
            t,
            "cus_s",
            "created@example.com",
        ));
        process();
        assert_eq!(
            text("SELECT email FROM stripe_sync.customers WHERE id = 'cus_s'").as_deref(),
            Some("updated@example.com")
        );
    }

    #[pg_test]
    fn same_second_events_of_one_kind_ask_for_a_re_read() {
        let t = now() - 100;
        let requests = || count("SELECT count(*) FROM stripe_sync.refresh_requests");
        // Created then updated in one second: the rank orders them, nothing to ask.
        ingest_signed(&customer_event("evt_r1", "customer.created", t, "cus_r", "a@example.com"));
        ingest_signed(&customer_event("evt_r2", "customer.updated", t, "cus_r", "b@example.com"));
        process();
        assert_eq!(requests(), 0);
        // Two updates in one second, in one batch: only the event id would decide.
        ingest_signed(&customer_event(
            "evt_r3",
            "customer.updated",
            t + 1,
            "cus_r",
            "c@example.com",
        ));
        ingest_signed(&customer_event(
            "evt_r4",
            "customer.updated",
            t + 1,
            "cus_r",
            "d@example.com",
        ));
        process();
        assert_eq!(
            text("SELECT object FROM stripe_sync.refresh_requests WHERE id = 'cus_r'").as_deref(),
            Some("customer")
        );
        // Across batches too.
        Spi::run("DELETE FROM stripe_sync.refresh_requests").unwrap();
        ingest_signed(&customer_event(
            "evt_r5",
            "customer.updated",
            t + 2,
            "cus_r",
            "e@example.com",
        ));
        process();
        assert_eq!(requests(), 0);
        ingest_signed(&customer_event(
            "evt_r6",
            "customer.updated",
            t + 2,
            "cus_r",
            "f@example.com",
        ));
        process();
        assert_eq!(requests(), 1);
        // The tie rule still gives a deterministic answer meanwhile: the greater event id.
        assert_eq!(
            text("SELECT _last_event_id FROM stripe_sync.customers WHERE id = 'cus_r'").as_deref(),
            Some("evt_r6")
        );
    }

    /// Applies a customer as fetched from the API at Unix time `at` (fractional);
    /// no email: the deleted stub the API answers for a deleted customer.
    fn fetch_customer(id: &str, email: Option<&str>, at: f64) {
        let at = Spi::get_one_with_args::<pgrx::datum::TimestampWithTimeZone>(
            "SELECT to_timestamp($1)",
            &[at.into()],
        )
        .unwrap()
        .unwrap();
        let object = match email {
            Some(email) => serde_json::json!({"id": id, "object": "customer", "email": email}),
            None => serde_json::json!({"id": id, "object": "customer", "deleted": true}),
        };
        crate::apply::apply_objects(&[object], at, None);
    }

    fn customer_deleted(id: &str) -> Option<bool> {
        Spi::get_one_with_args(
            "SELECT _deleted FROM stripe_sync.customers WHERE id = $1",
            &[id.into()],
        )
        .unwrap()
    }

    fn customer_email(id: &str) -> Option<String> {
        Spi::get_one_with_args(
            "SELECT email FROM stripe_sync.customers WHERE id = $1",
            &[id.into()],
        )
        .unwrap()
    }

    #[pg_test]
    fn an_event_of_the_same_second_wins_over_a_fetch_in_either_order() {
        // Stripe's event times are whole seconds; a fetch 0.4 s into the same second must not
        // count as newer than the event (docs/ordering.md).
        let t = now() - 50;
        fetch_customer("cus_fs1", Some("fetched@example.com"), t as f64 + 0.4);
        ingest_signed(&customer_event(
            "evt_fs1",
            "customer.updated",
            t,
            "cus_fs1",
            "event@example.com",
        ));
        process();
        assert_eq!(customer_email("cus_fs1").as_deref(), Some("event@example.com"));
        // The other order: the event first, then a fetch of the same second.
        ingest_signed(&customer_event(
            "evt_fs2",
            "customer.updated",
            t,
            "cus_fs2",
            "event@example.com",
        ));
        process();
        fetch_customer("cus_fs2", Some("fetched@example.com"), t as f64 + 0.9);
        assert_eq!(customer_email("cus_fs2").as_deref(), Some("event@example.com"));
        // A fetch of a later second is newer than the event.
        fetch_customer("cus_fs2", Some("later@example.com"), t as f64 + 1.0);
        assert_eq!(customer_email("cus_fs2").as_deref(), Some("later@example.com"));
        // A fetch that finds the object deleted is a deletion: no update of its second
        // revives the row, whichever comes first.
        fetch_customer("cus_fs3", None, t as f64 + 0.5);
        ingest_signed(&customer_event(
            "evt_fs3",
            "customer.updated",
            t,
            "cus_fs3",
            "event@example.com",
        ));
        process();
        assert_eq!(customer_deleted("cus_fs3"), Some(true));
        ingest_signed(&customer_event(
            "evt_fs4",
            "customer.updated",
            t,
            "cus_fs4",
            "event@example.com",
        ));
        process();
        fetch_customer("cus_fs4", None, t as f64 + 0.5);
        assert_eq!(customer_deleted("cus_fs4"), Some(true));
    }

    #[pg_test]
    fn a_deletion_is_a_tombstone_that_no_late_event_revives() {
        let t = now() - 100;
        ingest_signed(&customer_event("evt_d1", "customer.created", t, "cus_d", "d@example.com"));
        ingest_signed(&customer_event(
            "evt_d2",
            "customer.deleted",
            t + 5,
            "cus_d",
            "d@example.com",
        ));
        process();
        ingest_signed(&customer_event(
            "evt_d3",
            "customer.updated",
            t + 3,
            "cus_d",
            "late@example.com",
        ));
        process();
        let row = text(
            "SELECT concat_ws('|', email, _deleted, _last_event_id) FROM stripe_sync.customers WHERE id = 'cus_d'",
        );
        assert_eq!(row.as_deref(), Some("d@example.com|t|evt_d2"));
    }

    #[pg_test]
    fn a_deleted_stub_marks_the_row_and_keeps_its_columns() {
        let t = now() - 100;
        ingest_signed(&customer_event(
            "evt_st1",
            "customer.created",
            t,
            "cus_st",
            "keep@example.com",
        ));
        process();
        let stub = serde_json::json!({"id": "evt_st2", "object": "event", "type": "customer.deleted", "created": t + 1,
            "data": {"object": {"id": "cus_st", "object": "customer", "deleted": true}}})
        .to_string();
        ingest_signed(&stub);
        process();
        let row = text(
            "SELECT concat_ws('|', email, _deleted, data->>'email') FROM stripe_sync.customers WHERE id = 'cus_st'",
        );
        assert_eq!(row.as_deref(), Some("keep@example.com|t|keep@example.com"));
    }

    #[pg_test]
    fn unmirrored_event_types_are_skipped_not_failed() {
        let p = serde_json::json!({"id": "evt_bt", "object": "event", "type": "balance.available", "created": now(),
            "data": {"object": {"object": "balance", "available": []}}})
        .to_string();
        ingest_signed(&p);
        assert_eq!(process(), 1);
        assert_eq!(
            text("SELECT status FROM stripe_sync.events WHERE id = 'evt_bt'").as_deref(),
            Some("skipped")
        );
    }

    fn poison(event_id: &str, customer: &str) -> String {
        let mut v: serde_json::Value = serde_json::from_str(&customer_event(
            event_id,
            "customer.created",
            now(),
            customer,
            "p@example.com",
        ))
        .unwrap();
        v["data"]["object"]["balance"] = serde_json::json!("not a number");
        v.to_string()
    }

    #[pg_test]
    fn a_poison_event_fails_alone_and_the_batch_applies() {
        Spi::run("SET stripe_sync.max_attempts = 1").unwrap();
        ingest_signed(&customer_event(
            "evt_ok1",
            "customer.created",
            now() - 5,
            "cus_ok1",
            "ok1@example.com",
        ));
        ingest_signed(&poison("evt_poison", "cus_poison"));
        ingest_signed(&customer_event(
            "evt_ok2",
            "customer.created",
            now() - 1,
            "cus_ok2",
            "ok2@example.com",
        ));
        assert_eq!(process(), 3);
        assert_eq!(
            count("SELECT count(*) FROM stripe_sync.customers WHERE id IN ('cus_ok1', 'cus_ok2')"),
            2
        );
        assert_eq!(count("SELECT count(*) FROM stripe_sync.customers WHERE id = 'cus_poison'"), 0);
        let row = text(
            "SELECT concat_ws('|', status, attempts, last_error LIKE '%bigint%SQLSTATE 22P02%') FROM stripe_sync.events WHERE id = 'evt_poison'",
        );
        assert_eq!(row.as_deref(), Some("failed|1|t"));
    }

    /// A batch locks its events and marks them in the same subtransaction, so
    /// the row versions it leaves behind carry a plain xid as their xmax, which
    /// an index scan can later see is dead and mark so in the pending index. A
    /// lock by one subtransaction and an update by another would give them a
    /// MultiXact, and every later claim would visit them in the table again.
    #[pg_test]
    fn a_batch_leaves_no_multixact_on_the_events_it_marks() {
        ingest_customers("mx", 5);
        assert_eq!(process(), 5);
        if let Some(versions) = replaced_versions("stripe_sync.events", "evt_mx") {
            assert_eq!(versions, (5, 0), "(replaced, with a MultiXact)");
        }
    }

    /// Of the row versions of `table` that hold `marker` (an event id prefix
    /// of one test) and were written by a transaction still running (this
    /// test's: what earlier runs rolled back is still in the pages, and tests
    /// run at once): how many were replaced (an xmax that is not a lock only),
    /// and how many carry a MultiXact as their xmax (HEAP_XMAX_IS_MULTI). From
    /// every page, with pageinspect; None where pageinspect is not installed
    /// (PostgreSQL 16 here, from the pgserver wheel, ships no contrib: README,
    /// "Supported versions"), and a notice says that the check was left out.
    fn replaced_versions(table: &str, marker: &str) -> Option<(i64, i64)> {
        if count("SELECT count(*) FROM pg_available_extensions WHERE name = 'pageinspect'") == 0 {
            notice!("pageinspect is not installed here: the xmax check of {table} is left out");
            return None;
        }
        Spi::run("CREATE EXTENSION IF NOT EXISTS pageinspect").unwrap();
        let ours = format!(
            "SELECT count(*) \
               FROM generate_series(0, pg_relation_size('{table}') / current_setting('block_size')::int - 1) p, \
                    heap_page_items(get_raw_page('{table}', p::int)) \
              WHERE position(convert_to('{marker}', 'UTF8') IN t_data) > 0 \
                AND pg_xact_status(t_xmin::text::xid8) = 'in progress'"
        );
        let replaced = format!("{ours} AND t_xmax <> '0' AND t_infomask & x'0080'::int = 0");
        Some((count(&replaced), count(&format!("{ours} AND t_infomask & x'1000'::int <> 0"))))
    }

    #[pg_test]
    fn a_failing_event_is_retried_later_until_max_attempts() {
        Spi::run("SET stripe_sync.max_attempts = 3").unwrap();
        Spi::run("SET stripe_sync.retry_base_delay = '1h'").unwrap();
        ingest_signed(&poison("evt_retry", "cus_retry"));
        assert_eq!(process(), 1);
        let row = text(
            "SELECT concat_ws('|', status, attempts, next_attempt_at > now() + interval '20 minutes') FROM stripe_sync.events WHERE id = 'evt_retry'",
        );
        assert_eq!(row.as_deref(), Some("pending|1|t"));
        assert_eq!(process(), 0, "not due yet");
        // Make it due twice more: the third attempt leaves it failed.
        for expected in ["pending|2", "failed|3"] {
            Spi::run(
                "UPDATE stripe_sync.events SET next_attempt_at = now() WHERE id = 'evt_retry'",
            )
            .unwrap();
            assert_eq!(process(), 1);
            let row = text(
                "SELECT concat_ws('|', status, attempts) FROM stripe_sync.events WHERE id = 'evt_retry'",
            );
            assert_eq!(row.as_deref(), Some(expected));
        }
        Spi::run("UPDATE stripe_sync.events SET next_attempt_at = now() WHERE id = 'evt_retry'")
            .unwrap();
        assert_eq!(process(), 0, "a failed event is not claimed again");
    }

    /// Two appliers' shares split the queue by the object's share key, each
    /// event in exactly one, every event of one object in the same; the claim
    /// checks its range on the pending index's entries (Index Cond), not on
    /// the table's rows, so it never reads another share's rows.
    #[pg_test]
    fn a_share_claims_its_own_objects_from_the_index() {
        let key = |object: &str| {
            Spi::get_one_with_args::<i32>("SELECT hashtext($1)", &[object.into()]).unwrap().unwrap()
        };
        let mut objects: Vec<String> = Vec::new();
        let mut n = 0;
        while objects.iter().filter(|o| key(o) < 0).count() < 3
            || objects.iter().filter(|o| key(o) >= 0).count() < 3
        {
            objects.push(format!("cus_share{n}"));
            n += 1;
        }
        for (i, object) in objects.iter().enumerate() {
            for v in 0..2 {
                let event = customer_event(
                    &format!("evt_share{i}_{v}"),
                    "customer.updated",
                    now() - 100 + v,
                    object,
                    "a@example.com",
                );
                assert_eq!(ingest_signed(&event), "queued");
            }
        }
        let objects_of = |claimed: &[crate::queue::Claimed]| {
            let ids: Vec<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
            Spi::get_one_with_args::<Vec<String>>(
                "SELECT array_agg(DISTINCT object_id ORDER BY object_id) FROM stripe_sync.events WHERE id = ANY($1)",
                &[ids.into()],
            )
            .unwrap()
            .unwrap_or_default()
        };
        let mut expected: [Vec<String>; 2] = [Vec::new(), Vec::new()];
        for o in &objects {
            expected[usize::from(key(o) >= 0)].push(o.clone());
        }
        for share in &mut expected {
            share.sort();
        }
        let mut total = 0;
        for (slot, want) in expected.iter().enumerate() {
            let claimed = crate::queue::claim(100, Some((slot as i32, 2)));
            assert_eq!(
                claimed.len(),
                2 * want.len(),
                "share {slot} of 2: both events of each of its objects"
            );
            assert_eq!(&objects_of(&claimed), want, "share {slot} of 2");
            total += claimed.len();
        }
        assert_eq!(total, 2 * objects.len(), "the two shares together: every event");
        // (A transaction's own row locks never make it skip a row.)
        let everything = crate::queue::claim(100, None);
        assert_eq!(everything.len(), 2 * objects.len(), "an applier alone: every event");

        // The plan: the range is a condition of the index scan.
        Spi::run("SET LOCAL enable_seqscan = off").unwrap();
        Spi::run("SET LOCAL enable_bitmapscan = off").unwrap();
        Spi::run("SET LOCAL plan_cache_mode = force_generic_plan").unwrap();
        let claim = include_str!("../sql/queries/claim_batch.sql");
        Spi::run(&format!("PREPARE share_claim(int8, int4, int4) AS {claim}")).unwrap();
        let plan = Spi::connect(|client| {
            client
                .select("EXPLAIN (COSTS OFF) EXECUTE share_claim(10, 0, 2147483647)", None, &[])
                .unwrap()
                .map(|row| row.get::<String>(1).unwrap().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        });
        Spi::run("DEALLOCATE share_claim").unwrap();
        assert!(plan.contains("events_pending_idx"), "{plan}");
        let cond = plan.lines().find(|l| l.contains("Index Cond")).unwrap_or_default();
        assert!(cond.contains("hashtext"), "the share range is an Index Cond:\n{plan}");
        assert!(
            !plan.lines().any(|l| l.contains("Filter") && l.contains("hashtext")),
            "and not a filter on the table's rows:\n{plan}"
        );
    }

    #[pg_test]
    fn process_pending_respects_max_events_and_batch_size() {
        Spi::run("SET stripe_sync.batch_size = 2").unwrap();
        ingest_customers("m", 5);
        assert_eq!(Spi::get_one::<i32>("SELECT stripe_sync.process_pending(3)").unwrap(), Some(3));
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'"), 2);
        assert_eq!(process(), 2);
        let f = error_of("SELECT stripe_sync.process_pending(-1)", vec![]);
        assert_eq!(f.sqlstate, "22023");
    }

    #[pg_test]
    fn every_shared_customer_fixture_applies() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/stripe/events/");
        let mut applied = 0;
        for (i, name) in [
            "customer.created.json",
            "customer.updated.json",
            "customer.deleted.json",
            "customer.deleted.stub.json",
        ]
        .iter()
        .enumerate()
        {
            let body = std::fs::read_to_string(format!("{dir}{name}")).expect("shared fixture");
            // The fixtures share event ids (see shared/stripe/SOURCES.md): give each its own.
            let mut v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["id"] = serde_json::json!(format!("evt_fixture_{i}"));
            let object_id = v["data"]["object"]["id"].as_str().unwrap().to_owned();
            ingest_signed(&v.to_string());
            assert_eq!(process(), 1, "{name}");
            let status = text(&format!(
                "SELECT status FROM stripe_sync.events WHERE id = 'evt_fixture_{i}'"
            ));
            assert_eq!(status.as_deref(), Some("processed"), "{name}");
            let n = count(&format!(
                "SELECT count(*) FROM stripe_sync.customers WHERE id = '{object_id}' AND data->>'id' = '{object_id}'"
            ));
            assert_eq!(n, 1, "{name}");
            applied += 1;
        }
        assert_eq!(applied, 4);
        // The fixtures' clocks disagree: the R deletion is older than the R creation,
        // so it changes nothing; the S stub is as old as the S update and, being a
        // deletion, wins the tie while keeping the updated columns.
        let row = text(
            "SELECT concat_ws('|', _deleted, _last_event_type) FROM stripe_sync.customers WHERE id = 'cus_00000000000000'",
        );
        assert_eq!(row.as_deref(), Some("f|customer.created"));
        let row = text(
            "SELECT concat_ws('|', _deleted, email) FROM stripe_sync.customers WHERE id = 'cus_IhGfebO16cMIGN'",
        );
        assert_eq!(row.as_deref(), Some("t|billz@supabase.io"));
    }

    #[pg_test]
    fn tables_have_every_mapped_column_with_its_type() {
        for spec in SPECS {
            for col in spec.columns {
                let t = Spi::get_one_with_args::<String>(
                    "SELECT data_type::text FROM information_schema.columns
                      WHERE table_schema = 'stripe_sync' AND table_name = $1 AND column_name = $2",
                    &[spec.table.into(), col.name.into()],
                )
                .unwrap();
                assert_eq!(t.as_deref(), Some(col.kind.sql_type()), "{}.{}", spec.table, col.name);
            }
            for col in [
                "id",
                "data",
                "_account_id",
                "_last_event_at",
                "_last_event_type",
                "_last_event_id",
                "_deleted",
                "_synced_at",
            ] {
                let n = Spi::get_one_with_args::<i64>(
                    "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'stripe_sync' AND table_name = $1 AND column_name = $2",
                    &[spec.table.into(), col.into()],
                )
                .unwrap();
                assert_eq!(n, Some(1), "{}.{col}", spec.table);
            }
        }
    }

    #[pg_test]
    fn retry_failed_and_replay_event_requeue_with_a_fresh_budget() {
        Spi::run("SET stripe_sync.max_attempts = 1").unwrap();
        ingest_signed(&poison("evt_rf", "cus_rf"));
        process();
        assert_eq!(
            text("SELECT status FROM stripe_sync.events WHERE id = 'evt_rf'").as_deref(),
            Some("failed")
        );
        // Fix the data (as an operator would after a bug fix), then retry.
        Spi::run(
            "UPDATE stripe_sync.events SET data = jsonb_set(data, '{data,object,balance}', '7') WHERE id = 'evt_rf'",
        )
        .unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT stripe_sync.retry_failed()").unwrap(), Some(1));
        assert_eq!(text("SELECT concat_ws('|', status, attempts) FROM stripe_sync.events WHERE id = 'evt_rf'").as_deref(), Some("pending|0"));
        assert_eq!(process(), 1);
        assert_eq!(count("SELECT balance FROM stripe_sync.customers WHERE id = 'cus_rf'"), 7);
        assert_eq!(Spi::get_one::<i64>("SELECT stripe_sync.retry_failed()").unwrap(), Some(0));

        // Replay a processed event: applied again, and it changes nothing newer.
        ingest_signed(&customer_event(
            "evt_rp_new",
            "customer.updated",
            now() + 1,
            "cus_rf",
            "newer@example.com",
        ));
        process();
        assert_eq!(text("SELECT stripe_sync.replay_event('evt_rf')").as_deref(), Some("queued"));
        assert_eq!(process(), 1);
        let row = text(
            "SELECT concat_ws('|', email, _last_event_id) FROM stripe_sync.customers WHERE id = 'cus_rf'",
        );
        assert_eq!(row.as_deref(), Some("newer@example.com|evt_rp_new"));
        let f = error_of("SELECT stripe_sync.replay_event('evt_nope')", vec![]);
        assert_eq!(f.sqlstate, "P0002");
        assert!(f.message.contains("evt_nope"), "{}", f.message);
    }

    #[pg_test]
    fn purge_events_keeps_pending_and_failed() {
        Spi::run("SET stripe_sync.max_attempts = 1").unwrap();
        ingest_signed(&customer_event(
            "evt_pg1",
            "customer.created",
            now() - 9,
            "cus_pg1",
            "a@example.com",
        ));
        ingest_signed(&poison("evt_pg2", "cus_pg2"));
        process();
        ingest_signed(&customer_event(
            "evt_pg3",
            "customer.created",
            now() - 8,
            "cus_pg3",
            "c@example.com",
        ));
        Spi::run("UPDATE stripe_sync.events SET processed_at = now() - interval '40 days' WHERE id IN ('evt_pg1', 'evt_pg2')").unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT stripe_sync.purge_events()").unwrap(), Some(1));
        let left =
            text("SELECT string_agg(id || ':' || status, ',' ORDER BY id) FROM stripe_sync.events");
        assert_eq!(left.as_deref(), Some("evt_pg2:failed,evt_pg3:pending"));
        // The mirrored row is not touched by a purge.
        assert_eq!(count("SELECT count(*) FROM stripe_sync.customers WHERE id = 'cus_pg1'"), 1);
        assert_eq!(
            Spi::get_one::<i64>("SELECT stripe_sync.purge_events('1 second')").unwrap(),
            Some(0)
        );
        // A negative age (a typo for '1 day') would purge evt_pg3 once applied: refused.
        process();
        let f = error_of("SELECT stripe_sync.purge_events('-1 day')", vec![]);
        assert_eq!(f.sqlstate, "22023", "{}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events"), 2);
    }

    #[pg_test]
    fn backfill_refuses_an_infinite_created_after_before_it_starts() {
        for t in ["infinity", "-infinity"] {
            let f = error_of(
                "SELECT stripe_sync.backfill('customer', $1::timestamptz)",
                vec![t.into()],
            );
            assert_eq!(f.sqlstate, "22023", "{t}: {}", f.message);
            assert!(f.message.contains("finite"), "{}", f.message);
        }
    }

    #[pg_test]
    fn purge_keeps_events_whose_handlers_still_have_to_run_and_drops_old_alerts() {
        handler_setup();
        Spi::run("SET stripe_sync.retry_base_delay = '1h'").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.updated', 'public.flaky(jsonb)')").unwrap();
        ingest_signed(&customer_event("evt_pk1", "customer.created", now() - 9, "cus_pk", "a@b.c"));
        ingest_signed(&customer_event("evt_pk2", "customer.updated", now() - 8, "cus_pk", "a@b.c"));
        process(); // evt_pk2's handler fails once and waits an hour
        Spi::run(
            "UPDATE stripe_sync.events SET processed_at = now() - interval '40 days';
             INSERT INTO stripe_sync.alerts (event_id, kind, status, created_at) VALUES
                 ('evt_pk1', 'event', 'sent', now() - interval '40 days'),
                 ('evt_pk2', 'event', 'pending', now() - interval '40 days'),
                 ('evt_pk3', 'event', 'failed', now() - interval '1 day')",
        )
        .unwrap();
        assert_eq!(Spi::get_one::<i64>("SELECT stripe_sync.purge_events()").unwrap(), Some(1));
        assert_eq!(
            text("SELECT string_agg(id, ',') FROM stripe_sync.events").as_deref(),
            Some("evt_pk2")
        );
        assert_eq!(
            count("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'pending'"),
            1
        );
        assert_eq!(
            text("SELECT string_agg(event_id, ',' ORDER BY event_id) FROM stripe_sync.alerts")
                .as_deref(),
            Some("evt_pk2,evt_pk3"),
            "pending and recent alerts stay"
        );
    }

    #[pg_test]
    fn amount_decimal_honours_currency_exponents() {
        let v = text(
            "SELECT concat_ws('|', stripe_sync.amount_decimal(1999, 'usd'), stripe_sync.amount_decimal(500, 'JPY'),
                    stripe_sync.amount_decimal(1234, 'kwd'), stripe_sync.amount_decimal(-250, 'eur'),
                    stripe_sync.amount_decimal(NULL, 'usd') IS NULL)",
        );
        assert_eq!(v.as_deref(), Some("19.99|500|1.234|-2.50|t"));
    }

    #[pg_test]
    fn amount_decimal_agrees_with_the_alert_text_for_every_listed_currency() {
        use stripe_sync_core::money;
        let listed = money::ZERO_DECIMAL.iter().chain(money::THREE_DECIMAL).chain(&["usd", "eur"]);
        for currency in listed {
            for amount in [0i64, 7, 1999, -250, 123_456_789] {
                let sql = Spi::get_one_with_args::<pgrx::AnyNumeric>(
                    "SELECT stripe_sync.amount_decimal($1, $2)",
                    &[amount.into(), (*currency).into()],
                )
                .unwrap()
                .unwrap();
                assert_eq!(
                    sql.to_string(),
                    money::decimal(amount, currency),
                    "{amount} {currency}"
                );
            }
        }
    }

    // -------------------------------------------------------------- accounts

    fn coupon_event(
        event_id: &str,
        event_type: &str,
        created: i64,
        account: Option<&str>,
        percent_off: i64,
    ) -> String {
        let mut event = serde_json::json!({
            "id": event_id, "object": "event", "type": event_type, "created": created,
            "api_version": "2026-07-29.dahlia", "livemode": false, "pending_webhooks": 1,
            "data": {"object": {
                "id": "SUMMER", "object": "coupon", "percent_off": percent_off, "duration": "once",
                "valid": true, "livemode": false, "created": created, "metadata": {}
            }}
        });
        if let Some(a) = account {
            event["account"] = a.into();
        }
        event.to_string()
    }

    fn coupons() -> Vec<String> {
        texts(
            "SELECT format('%s:%s:%s:%s', _account_id, id, percent_off, _deleted::text)
               FROM stripe_sync.coupons ORDER BY _account_id, id",
        )
    }

    #[pg_test]
    fn two_accounts_keep_their_own_coupon_of_one_id_whatever_the_order() {
        let t = now() - 100;
        // Both accounts' creations in one batch, the platform's alone.
        ingest_signed(&coupon_event("evt_c1", "coupon.created", t, Some("acct_1"), 10));
        ingest_signed(&coupon_event("evt_c2", "coupon.created", t, Some("acct_2"), 20));
        process();
        ingest_signed(&coupon_event("evt_c0", "coupon.created", t, None, 5));
        process();
        assert_eq!(
            coupons(),
            [":SUMMER:5:false", "acct_1:SUMMER:10:false", "acct_2:SUMMER:20:false"]
        );
        // An update of one account, delivered after an older event of the other: each row its own.
        ingest_signed(&coupon_event("evt_c3", "coupon.updated", t + 5, Some("acct_2"), 25));
        process();
        ingest_signed(&coupon_event("evt_c4", "coupon.updated", t + 2, Some("acct_1"), 15));
        ingest_signed(&coupon_event("evt_c5", "coupon.updated", t + 1, Some("acct_2"), 21));
        process();
        assert_eq!(
            coupons(),
            [":SUMMER:5:false", "acct_1:SUMMER:15:false", "acct_2:SUMMER:25:false"]
        );
        // A deletion in one account leaves the others.
        ingest_signed(&coupon_event("evt_c6", "coupon.deleted", t + 6, Some("acct_1"), 15));
        process();
        assert_eq!(
            coupons(),
            [":SUMMER:5:false", "acct_1:SUMMER:15:true", "acct_2:SUMMER:25:false"]
        );
        assert_eq!(
            count(
                "SELECT count(*) FROM stripe_sync.events WHERE id LIKE 'evt\\_c%' AND status = 'processed'"
            ),
            7
        );
        // Two same-second updates in one account ask for a re-read of that account's object.
        ingest_signed(&coupon_event("evt_c7", "coupon.updated", t + 9, Some("acct_2"), 30));
        ingest_signed(&coupon_event("evt_c8", "coupon.updated", t + 9, Some("acct_2"), 31));
        process();
        assert_eq!(
            texts("SELECT account || ':' || id FROM stripe_sync.refresh_requests"),
            ["acct_2:SUMMER"]
        );
        // Every account met is listed, with its newest event (kept to within a minute).
        let recent = |at: i64| {
            texts(&format!(
                "SELECT id || ':' || (last_event_at >= to_timestamp({at}))::text FROM stripe_sync.accounts ORDER BY id"
            ))
        };
        assert_eq!(recent(t), [":true", "acct_1:true", "acct_2:true"]);
        ingest_signed(&coupon_event("evt_c9", "coupon.updated", t + 90, Some("acct_2"), 40));
        process();
        assert_eq!(recent(t + 90), [":false", "acct_1:false", "acct_2:true"]);
    }

    #[pg_test]
    fn every_mirrored_table_is_keyed_by_account_first() {
        let mut tables: Vec<&str> = SPECS
            .iter()
            .flat_map(|s| std::iter::once(s.table).chain(s.children.iter().map(|c| c.table)))
            .collect();
        tables.push("subscription_history");
        for table in tables {
            let key = texts(&format!(
                "SELECT a.attname::text FROM pg_constraint c
                   CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
                  WHERE c.conrelid = 'stripe_sync.{table}'::regclass AND c.contype = 'p' ORDER BY k.ord"
            ));
            assert_eq!(key.first().map(String::as_str), Some("_account_id"), "{table}: {key:?}");
            assert_eq!(
                text(&format!(
                    "SELECT format('%s %s', a.attnotnull::text, pg_get_expr(d.adbin, d.adrelid)) FROM pg_attribute a
                       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                      WHERE a.attrelid = 'stripe_sync.{table}'::regclass AND a.attname = '_account_id'"
                ))
                .as_deref(),
                Some("true ''::text"),
                "{table}"
            );
        }
        // No unique index or foreign key of the mirror spans accounts.
        let spanning = texts(
            "SELECT i.indexrelid::regclass::text FROM pg_index i
               JOIN pg_class c ON c.oid = i.indrelid
              WHERE c.relnamespace = 'stripe_sync'::regnamespace AND i.indisunique
                AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = '_account_id')
                AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = '_account_id'
                                   AND a.attnum = ANY (i.indkey::int2[]))",
        );
        assert!(spanning.is_empty(), "{spanning:?}");
        assert_eq!(
            count(
                "SELECT count(*) FROM pg_constraint c WHERE c.connamespace = 'stripe_sync'::regnamespace AND c.contype = 'f'
                    AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid IN (c.conrelid, c.confrelid)
                                   AND a.attname = '_account_id')"
            ),
            0
        );
    }

    #[pg_test]
    fn forget_account_counts_then_deletes_one_account_everywhere() {
        let t = now() - 100;
        ingest_signed(&coupon_event("evt_f1", "coupon.created", t, Some("acct_f"), 10));
        ingest_signed(&coupon_event("evt_f2", "coupon.created", t, Some("acct_g"), 20));
        ingest_signed(&coupon_event("evt_f0", "coupon.created", t, None, 5));
        process();
        Spi::run(
            "INSERT INTO stripe_sync.sync_cursors (account, object, high_water) VALUES ('acct_f', 'event', 1)",
        )
        .unwrap();
        let report = |dry: bool| {
            texts(&format!(
                "SELECT table_name || ':' || rows FROM stripe_sync.forget_account('acct_f', {dry}) WHERE rows > 0"
            ))
        };
        let expected = ["accounts:1", "coupons:1", "events:1", "sync_cursors:1"];
        assert_eq!(report(true), expected);
        assert_eq!(
            coupons(),
            [":SUMMER:5:false", "acct_f:SUMMER:10:false", "acct_g:SUMMER:20:false"]
        );
        assert_eq!(report(false), expected);
        assert_eq!(coupons(), [":SUMMER:5:false", "acct_g:SUMMER:20:false"]);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events WHERE account = 'acct_f'"), 0);
        assert!(report(true).is_empty());
        for bad in ["", "cus_1", "acct_1; DROP TABLE x"] {
            let f =
                error_of("SELECT * FROM stripe_sync.forget_account($1, false)", vec![bad.into()]);
            assert_eq!(f.sqlstate, "22023", "{bad}: {}", f.message);
        }
        assert_eq!(count("SELECT count(*) FROM stripe_sync.coupons"), 2);
    }

    // -------------------------------------------------------------- handlers

    fn handler_setup() {
        Spi::run(
            "CREATE SEQUENCE public.calls;
             CREATE TABLE public.effects (event_id text, email text);
             CREATE FUNCTION public.flaky(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
             BEGIN
                 IF nextval('public.calls') < 3 THEN
                     RAISE EXCEPTION 'flaky handler fails on call %', currval('public.calls');
                 END IF;
                 -- Handlers see the tables already updated by the event.
                 INSERT INTO public.effects
                 SELECT event->>'id', email FROM stripe_sync.customers WHERE id = event#>>'{data,object,id}';
             END $$;
             CREATE FUNCTION public.wrong(event text) RETURNS void LANGUAGE sql AS 'SELECT 1';
             CREATE FUNCTION public.noted(event jsonb) RETURNS void LANGUAGE sql AS
                 $$ INSERT INTO public.effects VALUES (event->>'id', NULL) $$;",
        )
        .unwrap();
    }

    #[pg_test]
    fn a_handler_that_fails_twice_runs_three_times_and_acts_once() {
        handler_setup();
        Spi::run("SET stripe_sync.retry_base_delay = 0").unwrap();
        let id = count("SELECT stripe_sync.on_event('customer.*', 'public.flaky(jsonb)')");
        assert_eq!(count("SELECT stripe_sync.on_event('customer.*', 'public.flaky(jsonb)')"), id);
        ingest_signed(&customer_event(
            "evt_h1",
            "customer.created",
            now(),
            "cus_h1",
            "h1@example.com",
        ));
        ingest_signed(&customer_event(
            "evt_h2",
            "invoice.created",
            now(),
            "cus_h2",
            "h2@example.com",
        ));
        process(); // applies, and the first call fails
        assert_eq!(
            text("SELECT concat_ws('|', status, attempts, last_error LIKE 'flaky handler fails on call 1%P0001%') FROM stripe_sync.handler_runs").as_deref(),
            Some("pending|1|t"),
            "one run, for the matching event only"
        );
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handler_failures"), 1);
        process();
        process();
        process();
        assert_eq!(count("SELECT last_value FROM public.calls"), 3);
        assert_eq!(
            text("SELECT string_agg(event_id || ':' || email, ',') FROM public.effects").as_deref(),
            Some("evt_h1:h1@example.com")
        );
        assert_eq!(
            text("SELECT concat_ws('|', status, attempts, finished_at IS NOT NULL) FROM stripe_sync.handler_runs").as_deref(),
            Some("succeeded|3|t")
        );
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handler_failures"), 0);
        // A replay applies the event again but does not call the handler again.
        Spi::run("SELECT stripe_sync.replay_event('evt_h1')").unwrap();
        process();
        assert_eq!(count("SELECT last_value FROM public.calls"), 3);
        assert_eq!(count("SELECT count(*) FROM public.effects"), 1);
    }

    /// A run is marked succeeded in the transaction that claimed it, after
    /// its call's subtransaction, so it leaves no MultiXact behind (see
    /// a_batch_leaves_no_multixact_on_the_events_it_marks).
    #[pg_test]
    fn a_succeeded_handler_run_leaves_no_multixact() {
        handler_setup();
        Spi::run("SELECT stripe_sync.on_event('customer.*', 'public.noted(jsonb)')").unwrap();
        ingest_customers("hmx", 3);
        assert_eq!(process(), 3);
        assert_eq!(count("SELECT count(*) FROM public.effects"), 3);
        assert_eq!(
            count("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'succeeded'"),
            3
        );
        if let Some(versions) = replaced_versions("stripe_sync.handler_runs", "evt_hmx") {
            assert_eq!(versions, (3, 0), "(replaced, with a MultiXact)");
        }
    }

    #[pg_test]
    fn a_handler_that_always_fails_ends_failed_and_blocks_nothing() {
        handler_setup();
        Spi::run("SET stripe_sync.retry_base_delay = 0").unwrap();
        Spi::run("SET stripe_sync.max_attempts = 2").unwrap();
        Spi::run("ALTER SEQUENCE public.calls MINVALUE -100 START -100 RESTART").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.flaky(jsonb)')").unwrap();
        for i in 0..5 {
            ingest_signed(&customer_event(
                &format!("evt_af{i}"),
                "customer.created",
                now(),
                &format!("cus_af{i}"),
                "af@example.com",
            ));
        }
        process();
        process();
        process();
        assert_eq!(count("SELECT count(*) FROM stripe_sync.customers WHERE id LIKE 'cus_af%'"), 5);
        assert_eq!(
            count(
                "SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'failed' AND attempts = 2 AND last_error LIKE 'flaky handler fails%'"
            ),
            5
        );
        assert_eq!(count("SELECT handler_runs_failed FROM stripe_sync.status"), 5);
        assert_eq!(count("SELECT last_value FROM public.calls"), -91, "10 calls, not more");
    }

    #[pg_test]
    fn handler_registration_checks_its_arguments_and_removes_runs() {
        handler_setup();
        for (pattern, state) in [("", "22023"), ("invoice paid", "22023"), ("INVOICE.%", "22023")] {
            let f = error_of(
                "SELECT stripe_sync.on_event($1, 'public.flaky(jsonb)')",
                vec![pattern.into()],
            );
            assert_eq!(f.sqlstate, state, "{pattern}: {}", f.message);
        }
        let f =
            error_of("SELECT stripe_sync.on_event('invoice.paid', 'public.wrong(text)')", vec![]);
        assert_eq!(f.sqlstate, "42P13", "{}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handlers"), 0);

        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.flaky(jsonb)')").unwrap();
        Spi::run("SELECT stripe_sync.on_event('*', 'public.flaky(jsonb)')").unwrap();
        ingest_signed(&customer_event(
            "evt_rm",
            "customer.created",
            now(),
            "cus_rm",
            "rm@example.com",
        ));
        Spi::run("SET stripe_sync.retry_base_delay = '1h'").unwrap();
        process();
        assert_eq!(
            count("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'pending'"),
            2
        );
        assert_eq!(count("SELECT stripe_sync.remove_handler(NULL, 'public.flaky(jsonb)')"), 2);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handler_runs"), 0);

        Spi::run("CREATE ROLE stripe_sync_test_plain").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA stripe_sync TO stripe_sync_test_plain").unwrap();
        Spi::run("SET LOCAL ROLE stripe_sync_test_plain").unwrap();
        let f = error_of(
            "SELECT stripe_sync.on_event('customer.created', 'public.flaky(jsonb)')",
            vec![],
        );
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(f.sqlstate, "42501", "{}", f.message);
    }

    #[pg_test]
    fn handlers_run_as_the_role_they_were_registered_for() {
        Spi::run(
            "CREATE ROLE stripe_sync_test_app;
             CREATE TABLE public.seen (who text, sup boolean);
             GRANT INSERT ON public.seen TO stripe_sync_test_app;
             CREATE FUNCTION public.whoami(event jsonb) RETURNS void LANGUAGE sql
                 AS 'INSERT INTO public.seen SELECT current_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)';
             CREATE FUNCTION public.escalate(event jsonb) RETURNS void LANGUAGE plpgsql
                 AS $$ BEGIN RESET ROLE; SET ROLE postgres; END $$;",
        )
        .unwrap();
        Spi::run("REVOKE EXECUTE ON FUNCTION public.whoami(jsonb) FROM PUBLIC").unwrap();
        let f = error_of(
            "SELECT stripe_sync.on_event('customer.created', 'public.whoami(jsonb)', 'stripe_sync_test_app')",
            vec![],
        );
        assert_eq!(f.sqlstate, "42501", "the role may not execute it: {}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.handlers"), 0);
        Spi::run("GRANT EXECUTE ON FUNCTION public.whoami(jsonb) TO stripe_sync_test_app").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.whoami(jsonb)', 'stripe_sync_test_app')").unwrap();
        Spi::run("SELECT stripe_sync.on_event('customer.created', 'public.escalate(jsonb)', 'stripe_sync_test_app')").unwrap();
        ingest_signed(&customer_event(
            "evt_ra",
            "customer.created",
            now(),
            "cus_ra",
            "ra@example.com",
        ));
        Spi::run("SET stripe_sync.retry_base_delay = '1h'").unwrap();
        process();
        assert_eq!(
            text("SELECT concat_ws('|', who, sup) FROM public.seen").as_deref(),
            Some("stripe_sync_test_app|f")
        );
        assert_eq!(
            text("SELECT current_user::text").as_deref(),
            Some(text("SELECT session_user::text").unwrap().as_str())
        );
        assert_eq!(
            text("SELECT last_error FROM stripe_sync.handler_failures WHERE handler = 'public.escalate(jsonb)'::regprocedure")
                .map(|e| e.contains("cannot set parameter \"role\" within security-definer function")),
            Some(true)
        );
    }

    // --------------------------------------------------------------- revenue

    fn subscription_event(
        event_id: &str,
        event_type: &str,
        created: i64,
        status: &str,
        price: serde_json::Value,
    ) -> String {
        serde_json::json!({
            "id": event_id, "object": "event", "type": event_type, "created": created,
            "api_version": "2026-07-29.dahlia", "livemode": false,
            "data": {"object": {
                "id": "sub_rev", "object": "subscription", "customer": "cus_rev", "status": status,
                "currency": "usd", "created": created, "livemode": false,
                "items": {"object": "list", "has_more": false, "data": [
                    {"id": "si_rev", "object": "subscription_item", "subscription": "sub_rev", "quantity": 3,
                     "price": price}
                ]}
            }}
        })
        .to_string()
    }

    #[pg_test]
    fn mrr_normalizes_intervals_and_discounts() {
        let mrr = |sub: serde_json::Value| -> String {
            Spi::get_one_with_args::<pgrx::AnyNumeric>(
                "SELECT round(stripe_sync.subscription_mrr($1, '2026-01-01'), 6)",
                &[pgrx::JsonB(sub).into()],
            )
            .unwrap()
            .unwrap()
            .to_string()
        };
        let sub = |interval: &str, count: i64, extra: serde_json::Value| {
            let mut s = serde_json::json!({"status": "active", "items": {"data": [
                {"quantity": 2, "price": {"unit_amount": 1200, "recurring": {"interval": interval, "interval_count": count}}},
                {"quantity": 1, "price": {"unit_amount": 500, "recurring": {"interval": interval, "interval_count": count, "usage_type": "metered"}}},
                {"quantity": 1, "price": {"unit_amount": null, "recurring": {"interval": interval, "interval_count": count}}}
            ]}});
            s.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            s
        };
        let none = serde_json::json!({});
        assert_eq!(mrr(sub("month", 1, none.clone())), "2400.000000");
        assert_eq!(mrr(sub("month", 3, none.clone())), "800.000000");
        assert_eq!(mrr(sub("year", 1, none.clone())), "200.000000");
        assert_eq!(mrr(sub("week", 2, none.clone())), "5200.000000");
        assert_eq!(mrr(sub("day", 1, none.clone())), "73000.000000");
        let pct = serde_json::json!({"discount": {"coupon": {"percent_off": 25}, "end": null}});
        assert_eq!(mrr(sub("month", 1, pct)), "1800.000000");
        let off = serde_json::json!({"discounts": [{"coupon": {"amount_off": 1200}, "end": 1_900_000_000}, "di_unexpanded"]});
        assert_eq!(mrr(sub("year", 1, off)), "100.000000", "1200 a year off is 100 a month");
        let ended =
            serde_json::json!({"discount": {"coupon": {"percent_off": 50}, "end": 1_700_000_000}});
        assert_eq!(mrr(sub("month", 1, ended)), "2400.000000", "an ended discount counts no more");
        let twice = serde_json::json!({"discount": {"id": "di_1", "coupon": {"percent_off": 25}},
                                       "discounts": [{"id": "di_1", "coupon": {"percent_off": 25}}]});
        assert_eq!(
            mrr(sub("month", 1, twice)),
            "1800.000000",
            "one discount in both fields counts once"
        );
        let huge = serde_json::json!({"discount": {"coupon": {"amount_off": 999_999}}});
        assert_eq!(mrr(sub("month", 1, huge)), "0.000000");
        let mut trialing = sub("month", 1, none);
        trialing["status"] = "trialing".into();
        assert_eq!(mrr(trialing), "0.000000");
    }

    #[pg_test]
    fn mrr_history_and_views_follow_a_subscription() {
        let price = |amount: i64| {
            serde_json::json!({"id": format!("price_{amount}"), "object": "price", "product": "prod_rev",
                               "unit_amount": amount, "currency": "usd", "lookup_key": "pro",
                               "recurring": {"interval": "month", "interval_count": 1}})
        };
        // 2026-01-01 00:00 UTC, then one event a day; the cancellation arrives first.
        let day = 1_767_225_600;
        for (id, ty, t, status, amount) in [
            ("evt_mrr4", "customer.subscription.deleted", day + 3 * 86_400 + 60, "canceled", 2000),
            ("evt_mrr1", "customer.subscription.created", day + 60, "active", 1000),
            ("evt_mrr2", "customer.subscription.updated", day + 86_400 + 60, "active", 2000),
            ("evt_mrr3", "customer.subscription.updated", day + 2 * 86_400 + 60, "past_due", 1500),
        ] {
            ingest_signed(&subscription_event(id, ty, t, status, price(amount)));
        }
        process();
        let history = text(
            "SELECT string_agg(concat_ws(':', day, currency, mrr::bigint, new_mrr::bigint, expansion_mrr::bigint,
                                         contraction_mrr::bigint, churned_mrr::bigint), ' ' ORDER BY day)
               FROM stripe_sync.mrr_history('2026-01-01', '2026-01-05')",
        );
        assert_eq!(
            history.as_deref(),
            Some(
                "2026-01-01:usd:3000:3000:0:0:0 2026-01-02:usd:6000:0:3000:0:0 2026-01-03:usd:4500:0:0:1500:0 2026-01-04:usd:0:0:0:0:4500 2026-01-05:usd:0:0:0:0:0"
            )
        );
        // The table holds the newest state: canceled, so no MRR and no entitlement.
        assert_eq!(count("SELECT count(*) FROM stripe_sync.mrr"), 0);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.active_entitlements"), 0);
        Spi::run("UPDATE stripe_sync.subscriptions SET status = 'active'").unwrap();
        assert_eq!(
            text("SELECT concat_ws('|', product, mrr::bigint, mrr_decimal, subscriptions, customers) FROM stripe_sync.mrr WHERE product IS NOT NULL").as_deref(),
            Some("prod_rev|6000|60.00|1|1")
        );
        assert_eq!(
            text("SELECT concat_ws('|', customer, subscription_item, quantity, price_lookup_key) FROM stripe_sync.active_entitlements").as_deref(),
            Some("cus_rev|si_rev|3|pro")
        );
    }

    // ---------------------------------------------------------- provisioning

    fn users_table(id_type: &str) {
        Spi::run(&format!(
            "CREATE TABLE app_users (id {id_type} PRIMARY KEY, email text, full_name text, stripe_customer_id text, age int)"
        ))
        .unwrap();
    }

    fn jobs() -> i64 {
        count("SELECT count(*) FROM stripe_sync.provisioning_jobs")
    }

    #[pg_test]
    fn enable_provisioning_checks_names_and_types_and_installs_nothing_on_error() {
        users_table("bigint");
        let cases = [
            ("'no_such_table', 'id', 'email'", "42P01"),
            ("'app_users', 'nope', 'email'", "42703"),
            ("'app_users', 'id', 'nope'", "42703"),
            ("'app_users', 'id', 'email', 'nope'", "42703"),
            ("'app_users', 'id', 'email', customer_id_column => 'nope'", "42703"),
            ("'app_users', 'id', 'age'", "42804"),
            ("'app_users', 'id', 'email', 'age'", "42804"),
            ("'app_users', 'id', 'email', customer_id_column => 'age'", "42804"),
            ("'app_users', 'id', NULL", "22004"),
            ("'app_users', 'id', 'email; DROP TABLE app_users'", "42703"),
        ];
        for (args, sqlstate) in cases {
            let f = error_of(&format!("SELECT stripe_sync.enable_provisioning({args})"), vec![]);
            assert_eq!(f.sqlstate, sqlstate, "{args}: {}", f.message);
        }
        assert_eq!(count("SELECT count(*) FROM stripe_sync.provisioning_targets"), 0);
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app_users'::regclass"),
            0
        );
        assert_eq!(count("SELECT count(*) FROM app_users"), 0, "the table is intact");
    }

    #[pg_test]
    fn a_signup_queues_one_job_in_its_own_transaction() {
        users_table("uuid");
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email', 'full_name')")
            .unwrap();
        Spi::run(
            "INSERT INTO app_users (id, email, full_name)
             SELECT gen_random_uuid(), 'u' || i || '@example.com', 'User ' || i FROM generate_series(1, 5) i",
        )
        .unwrap();
        assert_eq!(jobs(), 5);
        // A signup that rolls back queues nothing.
        let f = error_of(
            "WITH x AS (INSERT INTO app_users (id, email) VALUES (gen_random_uuid(), 'gone@example.com') RETURNING 1)
             SELECT 1 / 0 FROM x",
            vec![],
        );
        assert_eq!(f.sqlstate, "22012");
        assert_eq!(jobs(), 5);
        // A row that already has a customer queues nothing; a second enable is idempotent.
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email', 'full_name')")
            .unwrap();
        Spi::run("INSERT INTO app_users (id, email, stripe_customer_id) VALUES (gen_random_uuid(), 'x@example.com', 'cus_x')")
            .unwrap();
        assert_eq!(jobs(), 5);
        let relid =
            Spi::get_one::<pg_sys::Oid>("SELECT 'app_users'::regclass::oid").unwrap().unwrap();
        let id = text("SELECT id::text FROM app_users WHERE email = 'u3@example.com'").unwrap();
        let profile = crate::users::target(relid).unwrap().profile(&id);
        assert!(profile.present);
        assert_eq!(profile.email.as_deref(), Some("u3@example.com"));
        assert_eq!(profile.name.as_deref(), Some("User 3"));
        assert_eq!(profile.customer_id, None);
        assert!(!crate::users::target(relid).unwrap().profile("no such id").present);
        // Existing users without a customer: queued once, not twice.
        assert_eq!(
            Spi::get_one::<i64>("SELECT stripe_sync.provision_existing_users()").unwrap(),
            Some(0)
        );
        Spi::run("DELETE FROM stripe_sync.provisioning_jobs").unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT stripe_sync.provision_existing_users()").unwrap(),
            Some(5)
        );
    }

    #[pg_test]
    fn the_users_table_is_read_and_written_as_its_owner_restricted() {
        Spi::run("CREATE ROLE stripe_sync_owner").unwrap();
        Spi::run("GRANT CREATE ON SCHEMA public TO stripe_sync_owner").unwrap();
        Spi::run("SET ROLE stripe_sync_owner").unwrap();
        Spi::run(
            "CREATE TABLE public.owned_users (id int PRIMARY KEY, email text, stripe_customer_id text);
             CREATE TABLE public.trace (who name, super boolean, path text, temp_ok boolean);
             CREATE FUNCTION public.trace() RETURNS trigger LANGUAGE plpgsql SET search_path = pg_catalog AS $$
             DECLARE ok boolean := true;
             BEGIN
                 BEGIN EXECUTE 'CREATE TEMP TABLE t_owned (x int)'; EXCEPTION WHEN OTHERS THEN ok := false; END;
                 INSERT INTO public.trace SELECT current_user, r.rolsuper, current_setting('search_path'), ok
                   FROM pg_roles r WHERE r.rolname = current_user;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER trace BEFORE UPDATE ON public.owned_users FOR EACH ROW EXECUTE FUNCTION public.trace();",
        )
        .unwrap();
        Spi::run("RESET ROLE").unwrap();
        Spi::run("SELECT stripe_sync.enable_provisioning('public.owned_users', 'id', 'email')")
            .unwrap();
        Spi::run("INSERT INTO public.owned_users (id, email) VALUES (1, 'o@example.com')").unwrap();
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'public.owned_users'::regclass::oid")
            .unwrap()
            .unwrap();
        let target = crate::users::target(relid).unwrap();
        // As the worker does it, from a superuser's session.
        assert!(target.write_back("1", "cus_owned"));
        assert!(!target.write_back("1", "cus_other"), "a customer id is never overwritten");
        assert_eq!(
            text("SELECT concat_ws('|', who, super, temp_ok) FROM public.trace").as_deref(),
            Some("stripe_sync_owner|f|f"),
            "the owner's trigger ran as the owner, and could not create a temporary table"
        );
        assert_eq!(
            text("SELECT stripe_customer_id FROM public.owned_users").as_deref(),
            Some("cus_owned")
        );
        assert_eq!(text("SELECT current_user::text").as_deref(), Some("postgres"));
        // The signup trigger works for a role with no privilege on stripe_sync.
        Spi::run("SET ROLE stripe_sync_owner").unwrap();
        Spi::run("INSERT INTO public.owned_users (id, email) VALUES (2, 'p@example.com')").unwrap();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(
            count(
                "SELECT count(*) FROM stripe_sync.provisioning_jobs WHERE users = 'public.owned_users'::regclass"
            ),
            2
        );
        // Attached by hand to a table provisioning does not know: refused.
        Spi::run("CREATE TABLE public.other_users (id int, stripe_customer_id text)").unwrap();
        Spi::run("CREATE TRIGGER manual AFTER INSERT ON public.other_users FOR EACH ROW EXECUTE FUNCTION stripe_sync._enqueue_provisioning('id', 'stripe_customer_id')").unwrap();
        let f = error_of("INSERT INTO public.other_users VALUES (1, NULL)", vec![]);
        assert_eq!(f.sqlstate, "55000", "{}", f.message);
    }

    #[pg_test]
    fn a_partitioned_users_table_queues_its_rows_under_its_own_name() {
        Spi::run(
            "CREATE TABLE public.split_users (id int, email text, stripe_customer_id text) PARTITION BY RANGE (id);
             CREATE TABLE public.split_users_low PARTITION OF public.split_users FOR VALUES FROM (0) TO (100);
             CREATE TABLE public.split_users_high PARTITION OF public.split_users FOR VALUES FROM (100) TO (200);",
        )
        .unwrap();
        Spi::run("SELECT stripe_sync.enable_provisioning('public.split_users', 'id', 'email')")
            .unwrap();
        Spi::run("INSERT INTO public.split_users (id, email) VALUES (1, 'a@example.com'), (150, 'b@example.com')")
            .unwrap();
        assert_eq!(
            text("SELECT string_agg(users::text || ':' || user_id, ',' ORDER BY user_id) FROM stripe_sync.provisioning_jobs")
                .as_deref(),
            Some("split_users:1,split_users:150")
        );
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'public.split_users'::regclass::oid")
            .unwrap()
            .unwrap();
        assert_eq!(
            crate::users::target(relid).unwrap().profile("150").email.as_deref(),
            Some("b@example.com")
        );
    }

    #[pg_test]
    fn an_owners_code_that_raises_leaves_the_callers_user_and_settings_as_they_were() {
        Spi::run("CREATE ROLE stripe_sync_raiser").unwrap();
        Spi::run("GRANT CREATE ON SCHEMA public TO stripe_sync_raiser").unwrap();
        Spi::run("SET ROLE stripe_sync_raiser").unwrap();
        Spi::run(
            "CREATE TABLE public.raising_users (id int PRIMARY KEY, email text, stripe_customer_id text);
             CREATE FUNCTION public.raise_after_set() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 SET work_mem = '7MB';
                 PERFORM pg_catalog.set_config('search_path', 'public', false);
                 RAISE EXCEPTION 'no write-back today';
             END $$;
             CREATE TRIGGER raiser BEFORE UPDATE ON public.raising_users FOR EACH ROW EXECUTE FUNCTION public.raise_after_set();",
        )
        .unwrap();
        Spi::run("RESET ROLE").unwrap();
        Spi::run("SELECT stripe_sync.enable_provisioning('public.raising_users', 'id', 'email')")
            .unwrap();
        Spi::run("INSERT INTO public.raising_users (id, email) VALUES (1, 'r@example.com')")
            .unwrap();
        let before =
            text("SELECT current_setting('work_mem') || '|' || current_setting('search_path')");
        let relid = Spi::get_one::<pg_sys::Oid>("SELECT 'public.raising_users'::regclass::oid")
            .unwrap()
            .unwrap();
        let target = crate::users::target(relid).unwrap();
        let outcome =
            subxact::run(std::panic::AssertUnwindSafe(|| target.write_back("1", "cus_r")));
        let f = outcome.expect_err("the owner's trigger raises");
        assert!(f.message.contains("no write-back today"), "{}", f.message);
        assert_eq!(text("SELECT current_user::text").as_deref(), Some("postgres"));
        assert_eq!(
            text("SELECT current_setting('work_mem') || '|' || current_setting('search_path')"),
            before
        );
        // And when it does not raise, its settings are undone all the same.
        Spi::run("CREATE OR REPLACE FUNCTION public.raise_after_set() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN SET work_mem = '7MB'; RETURN NEW; END $$").unwrap();
        assert!(target.write_back("1", "cus_r"));
        assert_eq!(
            text("SELECT current_setting('work_mem') || '|' || current_setting('search_path')"),
            before
        );
    }

    #[pg_test]
    fn update_sync_is_opt_in_and_disable_removes_the_triggers() {
        users_table("bigint");
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email', 'full_name', sync_updates => true)")
            .unwrap();
        Spi::run("INSERT INTO app_users (id, email, stripe_customer_id) VALUES (1, 'a@example.com', 'cus_a')").unwrap();
        Spi::run("UPDATE app_users SET age = 3 WHERE id = 1").unwrap();
        assert_eq!(jobs(), 0, "other columns do not sync");
        Spi::run("UPDATE app_users SET email = 'b@example.com' WHERE id = 1").unwrap();
        assert_eq!(
            text("SELECT concat_ws('|', kind, user_id) FROM stripe_sync.provisioning_jobs")
                .as_deref(),
            Some("update|1")
        );
        Spi::run("SELECT stripe_sync.disable_provisioning('app_users')").unwrap();
        assert_eq!(
            count("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'app_users'::regclass"),
            0
        );
        assert_eq!(
            text("SELECT status FROM stripe_sync.provisioning_jobs").as_deref(),
            Some("failed")
        );
        let f = error_of("SELECT stripe_sync.disable_provisioning('app_users')", vec![]);
        assert_eq!(f.sqlstate, "55000");
    }

    #[pg_test]
    fn create_customer_of_a_missing_user_is_a_clear_error() {
        users_table("bigint");
        let f = error_of("SELECT stripe_sync.create_customer('1')", vec![]);
        assert_eq!(f.sqlstate, "55000", "{}", f.message);
        Spi::run("SELECT stripe_sync.enable_provisioning('app_users', 'id', 'email')").unwrap();
        let f = error_of("SELECT stripe_sync.create_customer('404')", vec![]);
        assert_eq!(f.sqlstate, "P0002", "{}", f.message);
        assert!(f.message.contains("no row with id \"404\""), "{}", f.message);
        // Already provisioned: returned without any API call (no key is configured here).
        Spi::run("INSERT INTO app_users (id, email, stripe_customer_id) VALUES (7, 'p@example.com', 'cus_seven')").unwrap();
        assert_eq!(text("SELECT stripe_sync.create_customer('7')").as_deref(), Some("cus_seven"));
    }

    // -------------------------------------------------------------- security

    #[pg_test]
    fn secrets_are_hidden_from_a_plain_role() {
        Spi::run("CREATE ROLE stripe_sync_plain").unwrap();
        Spi::run("SET ROLE stripe_sync_plain").unwrap();
        for sql in [
            "SHOW stripe_sync.webhook_secret",
            "SHOW stripe_sync.api_key",
            "SELECT current_setting('stripe_sync.webhook_secret')",
            "SELECT current_setting('stripe_sync.api_key', true)",
        ] {
            let f = error_of(sql, vec![]);
            assert_eq!(f.sqlstate, "42501", "{sql}: {}", f.message);
            assert!(!f.message.contains("whsec_"), "{}", f.message);
        }
        assert_eq!(
            count(
                "SELECT count(*) FROM pg_settings WHERE name IN ('stripe_sync.webhook_secret', 'stripe_sync.api_key')"
            ),
            0
        );
        let f = error_of("SET stripe_sync.webhook_secret = 'whsec_forged'", vec![]);
        assert_eq!(f.sqlstate, "42501");
        let f = error_of("SET stripe_sync.api_base = 'http://evil.example'", vec![]);
        assert_eq!(f.sqlstate, "42501");
        Spi::run("RESET ROLE").unwrap();
        // A superuser reads it.
        assert_eq!(
            text("SHOW stripe_sync.webhook_secret").as_deref(),
            Some("whsec_pgtest_old, whsec_pgtest")
        );
    }

    #[pg_test]
    fn ingest_needs_a_grant_but_no_table_privileges() {
        Spi::run("CREATE ROLE stripe_sync_hook").unwrap();
        Spi::run("GRANT USAGE ON SCHEMA stripe_sync TO stripe_sync_hook").unwrap();
        Spi::run("SET ROLE stripe_sync_hook").unwrap();
        let p =
            customer_event("evt_role", "customer.created", now(), "cus_role", "role@example.com");
        let f = ingest_error(&p, &header(&p, SECRET, now()));
        assert_eq!(f.sqlstate, "42501", "{}", f.message);
        Spi::run("RESET ROLE").unwrap();
        Spi::run(
            "GRANT EXECUTE ON FUNCTION stripe_sync.ingest_event(text, text) TO stripe_sync_hook",
        )
        .unwrap();
        Spi::run("SET ROLE stripe_sync_hook").unwrap();
        assert_eq!(ingest_signed(&p), "queued");
        let f = error_of("SELECT count(*) FROM stripe_sync.events", vec![]);
        assert_eq!(f.sqlstate, "42501", "the hook role cannot read the queue");
        let f = error_of("SELECT stripe_sync.process_pending()", vec![]);
        assert_eq!(f.sqlstate, "42501");
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events WHERE id = 'evt_role'"), 1);
    }

    /// Every function PUBLIC may execute, by signature: what any role of the
    /// database can call. A new function is private until it is added here
    /// with a reason (docs/security.md lists the same).
    const PUBLIC_FUNCTIONS: &[&str] = &[
        // Pure functions of their arguments, for queries and views.
        "stripe_sync.amount_decimal(bigint,text)",
        "stripe_sync.subscription_mrr(jsonb,timestamp with time zone)",
        // The internals of the above (inlined into the callers' queries).
        "stripe_sync._discount_factor(jsonb,numeric,timestamp with time zone)",
        "stripe_sync._earns_mrr(jsonb)",
        "stripe_sync._event_rank(text)",
        "stripe_sync._has_discount(jsonb)",
        "stripe_sync._is_deletion(text,jsonb)",
        "stripe_sync._is_stub(jsonb)",
        "stripe_sync._item_mrr(jsonb)",
        "stripe_sync._monthly_amount(numeric,text,integer)",
        "stripe_sync._status_severity(text)",
        "stripe_sync._undiscounted_mrr(jsonb)",
    ];

    #[pg_test]
    fn public_executes_only_the_allowlisted_functions() {
        let public: Vec<String> = texts(
            "SELECT p.oid::regprocedure::text
                   FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                  WHERE p.pronamespace = 'stripe_sync'::regnamespace
                    AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'
                  ORDER BY 1",
        )
        .into_iter()
        .map(|s| s.replace(", ", ","))
        .collect();
        let mut allowed: Vec<String> = PUBLIC_FUNCTIONS.iter().map(|s| s.to_string()).collect();
        allowed.sort();
        assert_eq!(public, allowed, "functions PUBLIC can execute");
    }

    #[pg_test]
    fn every_function_resolves_names_in_pg_catalog_only() {
        // Bodies parsed at call time get a pinned search_path; SQL-standard
        // bodies (RETURN, BEGIN ATOMIC) were bound when they were created.
        let loose: Vec<String> = texts(
            "SELECT p.oid::regprocedure::text FROM pg_proc p
                  WHERE p.pronamespace = 'stripe_sync'::regnamespace AND p.prosqlbody IS NULL
                    AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
                  ORDER BY 1",
        );
        assert!(loose.is_empty(), "functions without search_path = pg_catalog, pg_temp: {loose:?}");
        assert!(
            count("SELECT count(*) FROM pg_proc WHERE pronamespace = 'stripe_sync'::regnamespace")
                > 20
        );
        // No function of ours runs as its owner but the one ingest needs.
        let definers: Vec<String> = texts(
            "SELECT proname::text FROM pg_proc
                  WHERE pronamespace = 'stripe_sync'::regnamespace AND prosecdef ORDER BY 1",
        );
        assert_eq!(definers, ["ingest_event"]);
    }

    #[pg_test]
    fn every_sequence_and_stateful_table_is_kept_by_pg_dump() {
        let missing: Vec<String> = texts("SELECT c.oid::regclass::text FROM pg_class c
                  WHERE c.relnamespace = 'stripe_sync'::regnamespace AND c.relkind IN ('r', 'p', 'S')
                    AND c.oid <> ALL (SELECT unnest(extconfig) FROM pg_extension WHERE extname = 'stripe_sync')
                  ORDER BY 1");
        assert!(missing.is_empty(), "not registered with pg_extension_config_dump: {missing:?}");
        assert!(
            count(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'stripe_sync'::regnamespace AND relkind = 'S'"
            ) >= 4
        );
    }

    #[pg_test]
    fn a_secret_cannot_be_stored_where_every_role_reads_it() {
        Spi::run("CREATE ROLE stripe_sync_app").unwrap();
        for sql in [
            "ALTER DATABASE postgres SET stripe_sync.api_key = 'sk_test_catalog'",
            "ALTER ROLE stripe_sync_app SET stripe_sync.webhook_secret = 'whsec_catalog'",
            "ALTER ROLE stripe_sync_app IN DATABASE postgres SET stripe_sync.slack_webhook_url = 'https://hooks.example/catalog'",
            "CREATE FUNCTION public.keyed() RETURNS int LANGUAGE sql SET stripe_sync.api_key = 'sk_test_catalog' AS 'SELECT 1'",
        ] {
            let f = error_of(sql, vec![]);
            assert_eq!(f.sqlstate, "42501", "{sql}: {}", f.message);
            assert!(f.message.contains("every role can read"), "{}", f.message);
            assert!(!f.message.contains("catalog'"), "the value is not quoted: {}", f.message);
        }
        // Settings that are not secrets still can be.
        Spi::run("ALTER ROLE stripe_sync_app SET stripe_sync.batch_size = 100").unwrap();
        // Nothing a plain role can read shows a configured secret.
        Spi::run("SET ROLE stripe_sync_app").unwrap();
        for sql in [
            "SELECT string_agg(s::text, ' ') FROM pg_settings s",
            "SELECT string_agg(s::text, ' ') FROM pg_db_role_setting s",
            "SELECT string_agg(p.proconfig::text, ' ') FROM pg_proc p",
            "SELECT string_agg(a.query, ' ') FROM pg_stat_activity a",
            "SELECT string_agg(d.description, ' ') FROM pg_description d",
            "SELECT string_agg(e::text, ' ') FROM pg_extension e",
            "SELECT string_agg(c.reloptions::text, ' ') FROM pg_class c",
        ] {
            let seen = text(sql).unwrap_or_default();
            assert!(!seen.contains("whsec_pgtest"), "{sql} shows the webhook secret");
        }
        let f = error_of("SELECT count(*) FROM pg_file_settings", vec![]);
        assert_eq!(f.sqlstate, "42501", "{}", f.message);
        Spi::run("RESET ROLE").unwrap();
    }

    // ----------------------------------------------------------------- jsonb

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

    // ---------------------------------------------------------------- worker

    #[pg_test]
    fn the_worker_runs_and_is_named() {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            Spi::run("SELECT pg_stat_clear_snapshot()").unwrap();
            let n = count(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stripe_sync worker'",
            );
            if n == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no stripe_sync worker in pg_stat_activity"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let info = crate::shmem::worker_info();
        assert!(matches!(info, Some((pid, _)) if pid > 0), "{info:?}");
        let row = text(
            "SELECT concat_ws('|', worker_pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'stripe_sync worker'),
                    worker_heartbeat > now() - interval '1 minute', pending, failed)
               FROM stripe_sync.status",
        );
        assert_eq!(row.as_deref(), Some("t|t|0|0"));
    }
}
