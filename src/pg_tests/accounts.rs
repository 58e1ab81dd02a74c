//! `#[pg_test]`s of connected accounts: rows kept apart by account, the catalog key, forget_account.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;

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
}
