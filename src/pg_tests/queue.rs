//! `#[pg_test]`s of the queue: a failing event alone, retries, shares, limits, requeue and purge.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;

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
        let claim = include_str!("../../sql/queries/claim_batch.sql");
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
}
