//! `#[pg_test]`s of the apply: every mapped type and column, ordering and ties, tombstones, amounts.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;

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

    #[pg_test]
    fn every_shared_customer_fixture_applies() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/stripe/events/");
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
        }
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
}
