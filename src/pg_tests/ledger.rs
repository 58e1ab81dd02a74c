//! `#[pg_test]`s of the money ledger (0.8.0): every new type applied from an
//! event of Stripe's own example, the child lists, the finance views against
//! sums computed here, and the upgrade's refills.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::now;
    use crate::pg_tests::*;
    use serde_json::{Value, json};

    fn fixtures() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/stripe/openapi/fixtures3.json");
        let text = std::fs::read_to_string(path).expect("shared/stripe/openapi/fixtures3.json");
        serde_json::from_str::<Value>(&text).unwrap()["resources"].clone()
    }

    fn event(id: &str, event_type: &str, created: i64, object: &Value) -> String {
        json!({"id": id, "object": "event", "type": event_type, "created": created,
               "api_version": "2026-07-29.dahlia", "livemode": false, "pending_webhooks": 1,
               "data": {"object": object}})
        .to_string()
    }

    /// The value a column's first path reads in `object`.
    fn first_path<'a>(object: &'a Value, col: &stripe_sync_core::mapping::Column) -> &'a Value {
        let path: Vec<&str> = col.paths.first().map_or(vec![col.name], |p| p.to_vec());
        path.iter().fold(object, |v, k| &v[*k])
    }

    /// The types 0.8.0 mirrors: those from balance transactions on in SPECS,
    /// up to 0.9.0's.
    fn new_types() -> Vec<&'static str> {
        SPECS
            .iter()
            .map(|s| s.object)
            .skip_while(|o| *o != "balance_transaction")
            .take_while(|o| *o != "entitlements.active_entitlement_summary")
            .collect()
    }

    #[pg_test]
    fn every_new_type_applies_from_an_event_of_stripes_example() {
        let fixtures = fixtures();
        let t = now() - 10;
        let new = new_types();
        assert_eq!(new.len(), 12);
        for (i, object) in new.iter().enumerate() {
            let spec = stripe_sync_core::mapping::spec_for(object).expect("mirrored");
            let mut o = fixtures[object].clone();
            assert!(o.is_object(), "no example of {object}");
            let id = format!("{}_L{i}", object.replace('.', "_"));
            o["id"] = json!(id);
            ingest_signed(&event(&format!("evt_L{i}"), &format!("{object}.updated"), t, &o));
            assert_eq!(process(), 1, "{object}");
            assert_eq!(
                text(&format!("SELECT status FROM stripe_sync.events WHERE id = 'evt_L{i}'"))
                    .as_deref(),
                Some("processed"),
                "{object}"
            );
            for col in spec.columns {
                let want = first_path(&o, col);
                let got = Spi::get_one_with_args::<String>(
                    &format!(
                        "SELECT {}::text FROM stripe_sync.{} WHERE id = $1",
                        col.name, spec.table
                    ),
                    &[id.as_str().into()],
                )
                .unwrap();
                use stripe_sync_core::mapping::Kind;
                let what = format!("{}.{}", spec.table, col.name);
                match col.kind {
                    // JSON as it is, a JSON null included.
                    Kind::Jsonb => {
                        let got: Value =
                            serde_json::from_str(got.as_deref().unwrap_or("null")).unwrap();
                        assert_eq!(&got, want, "{what}");
                    }
                    // Every other field the example fills reaches its column; text and integers as they are.
                    _ => {
                        assert_eq!(got.is_some(), !want.is_null(), "{what}");
                        match (col.kind, &got) {
                            (Kind::Text | Kind::Ref, Some(got)) => {
                                assert_eq!(Some(got.as_str()), want.as_str(), "{what}")
                            }
                            (Kind::BigInt, Some(got)) => {
                                assert_eq!(got, &want.as_i64().unwrap().to_string(), "{what}")
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        // One row per type, each in its own table.
        for object in &new {
            let spec = stripe_sync_core::mapping::spec_for(object).unwrap();
            assert_eq!(count(&format!("SELECT count(*) FROM stripe_sync.{}", spec.table)), 1);
        }
    }

    #[pg_test]
    fn embedded_lists_become_child_rows_replaced_with_their_parent() {
        let fixtures = fixtures();
        let mut note = fixtures["credit_note"].clone();
        note["id"] = json!("cn_L1");
        let line = |id: &str, amount: i64| {
            let mut l = fixtures["credit_note_line_item"].clone();
            l["id"] = json!(id);
            l["amount"] = json!(amount);
            l
        };
        note["lines"] = json!({"object": "list", "has_more": false, "url": "/v1/credit_notes/cn_L1/lines",
                               "data": [line("cnli_a", 700), line("cnli_b", 300)]});
        ingest_signed(&event("evt_cn1", "credit_note.created", now() - 5, &note));
        let mut transfer = fixtures["transfer"].clone();
        transfer["id"] = json!("tr_L1");
        let mut reversal = fixtures["transfer_reversal"].clone();
        reversal["id"] = json!("trr_L1");
        reversal["transfer"] = json!("tr_L1");
        transfer["reversals"] = json!({"object": "list", "has_more": false, "url": "/v1/transfers/tr_L1/reversals",
                                       "data": [reversal]});
        ingest_signed(&event("evt_tr1", "transfer.reversed", now() - 5, &transfer));
        assert_eq!(process(), 2);
        assert_eq!(
            texts(
                "SELECT id || ':' || credit_note || ':' || amount FROM stripe_sync.credit_note_line_items ORDER BY id"
            ),
            vec!["cnli_a:cn_L1:700", "cnli_b:cn_L1:300"]
        );
        assert_eq!(
            text("SELECT transfer || ':' || amount FROM stripe_sync.transfer_reversals WHERE id = 'trr_L1'")
                .as_deref(),
            Some("tr_L1:1100")
        );
        // A newer version of the credit note without line b: the children follow it.
        note["lines"]["data"] = json!([line("cnli_a", 650)]);
        ingest_signed(&event("evt_cn2", "credit_note.updated", now() - 1, &note));
        assert_eq!(process(), 1);
        assert_eq!(
            texts("SELECT id || ':' || amount FROM stripe_sync.credit_note_line_items ORDER BY id"),
            vec!["cnli_a:650"]
        );
    }

    fn balance_transaction(id: &str, created: i64, category: &str, amount: i64, fee: i64) -> Value {
        json!({"id": id, "object": "balance_transaction", "amount": amount, "fee": fee, "net": amount - fee,
               "currency": "usd", "created": created, "available_on": created + 2 * 86_400,
               "reporting_category": category, "type": category, "status": "available",
               "source": format!("src_{id}"), "fee_details": [], "description": null, "exchange_rate": null,
               "balance_type": "payments"})
    }

    #[pg_test]
    fn balance_by_month_adds_up_every_category_as_summed_here() {
        // March and April 2026 (UTC), with a transaction on the last second of March.
        let march = 1_772_323_200; // 2026-03-01T00:00:00Z
        let april = 1_775_001_600; // 2026-04-01T00:00:00Z
        let rows = [
            ("txn_1", march + 10, "charge", 10_000, 320),
            ("txn_2", march + 20, "charge", 5_000, 175),
            ("txn_3", march + 30, "refund", -2_000, 0),
            ("txn_4", march + 40, "dispute", -5_000, 1_500),
            ("txn_5", march + 50, "fee", -200, 0),
            ("txn_6", march + 60, "adjustment", 123, 0),
            ("txn_7", march + 70, "payout", -6_000, 0),
            ("txn_8", april - 1, "charge", 1_000, 59),
            ("txn_9", april, "charge", 2_000, 88),
            ("txn_10", april + 5, "dispute_reversal", 5_000, -1_500),
            ("txn_11", april + 6, "refund_failure", 2_000, 0),
        ];
        let objects: Vec<Value> =
            rows.iter().map(|(id, t, c, a, f)| balance_transaction(id, *t, c, *a, *f)).collect();
        let at =
            Spi::get_one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap().unwrap();
        crate::apply::apply_objects(&objects, at, None);
        crate::apply::apply_objects(&objects[..2], at, Some("acct_Other1"));
        // Summed here, from the list above.
        for (month, from, to) in
            [("2026-03-01", march, april), ("2026-04-01", april, april + 86_400)]
        {
            let of = |cats: &[&str]| -> i64 {
                rows.iter()
                    .filter(|r| r.1 >= from && r.1 < to && cats.contains(&r.2))
                    .map(|r| r.3)
                    .sum()
            };
            let activity: Vec<_> =
                rows.iter().filter(|r| r.1 >= from && r.1 < to && r.2 != "payout").collect();
            let fees = activity.iter().map(|r| r.4).sum::<i64>() - of(&["fee"]);
            let net: i64 = activity.iter().map(|r| r.3 - r.4).sum();
            let gross = of(&["charge"]);
            let refunds = of(&["refund", "refund_failure"]);
            let disputes = of(&["dispute", "dispute_reversal"]);
            let other = activity.iter().map(|r| r.3).sum::<i64>()
                - gross
                - refunds
                - disputes
                - of(&["fee"]);
            let want =
                format!("{gross}|{refunds}|{disputes}|{fees}|{other}|{net}|{}", of(&["payout"]));
            let got = text(&format!(
                "SELECT concat_ws('|', gross_charges, refunds, disputes, fees, other, net, payouts)
                   FROM stripe_sync.balance_by_month
                  WHERE _account_id = '' AND currency = 'usd' AND month = '{month}'"
            ));
            assert_eq!(got.as_deref(), Some(want.as_str()), "{month}");
            assert_eq!(net, gross + refunds + disputes - fees + other, "{month}");
        }
        // The other account's month is its own.
        assert_eq!(
            text("SELECT gross_charges || '|' || balance_transactions FROM stripe_sync.balance_by_month WHERE _account_id = 'acct_Other1'")
                .as_deref(),
            Some("15000|2")
        );
    }

    #[pg_test]
    fn invoice_money_goes_from_an_invoice_to_its_charge_fee_and_net_within_its_account() {
        let at =
            Spi::get_one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap().unwrap();
        let objects = vec![
            json!({"id": "in_M1", "object": "invoice", "customer": "cus_M1", "status": "paid", "currency": "usd",
                   "total": 1000, "amount_paid": 1000, "created": 1_700_000_000}),
            json!({"id": "inpay_M1", "object": "invoice_payment", "invoice": "in_M1", "is_default": true,
                   "status": "paid", "amount_paid": 1000, "amount_requested": 1000, "currency": "usd",
                   "payment": {"type": "payment_intent", "payment_intent": "pi_M1"},
                   "status_transitions": {"paid_at": 1_700_000_100, "canceled_at": null},
                   "created": 1_700_000_000}),
            json!({"id": "pi_M1", "object": "payment_intent", "latest_charge": "ch_M1", "amount": 1000,
                   "currency": "usd", "status": "succeeded", "created": 1_700_000_000}),
            json!({"id": "ch_M1", "object": "charge", "amount": 1000, "amount_refunded": 100,
                   "balance_transaction": "txn_M1", "currency": "usd", "created": 1_700_000_000}),
            balance_transaction("txn_M1", 1_700_000_000, "charge", 1000, 59),
        ];
        crate::apply::apply_objects(&objects, at, None);
        // The same ids in another account, with another fee: never joined across accounts.
        let mut theirs = objects.clone();
        theirs[4]["fee"] = json!(99);
        crate::apply::apply_objects(&theirs, at, Some("acct_Other2"));
        assert_eq!(
            text("SELECT concat_ws('|', invoice_payment, payment_intent, charge, amount_paid, amount_refunded, fee, net, payment_type)
                    FROM stripe_sync.invoice_money WHERE _account_id = '' AND invoice = 'in_M1'")
                .as_deref(),
            Some("inpay_M1|pi_M1|ch_M1|1000|100|59|941|payment_intent")
        );
        assert_eq!(count("SELECT count(*) FROM stripe_sync.invoice_money"), 2);
        assert_eq!(
            text(
                "SELECT fee::text FROM stripe_sync.invoice_money WHERE _account_id = 'acct_Other2'"
            )
            .as_deref(),
            Some("99")
        );
    }

    #[pg_test]
    fn added_columns_and_child_tables_are_refilled_from_stored_objects() {
        let fixtures = fixtures();
        let mut sub = fixtures["subscription"].clone();
        sub["id"] = json!("sub_R1");
        sub["items"] = json!({"object": "list", "data": [], "has_more": false});
        let mut note = fixtures["credit_note"].clone();
        note["id"] = json!("cn_R1");
        let mut line = fixtures["credit_note_line_item"].clone();
        line["id"] = json!("cnli_R1");
        note["lines"] = json!({"object": "list", "data": [line], "has_more": false});
        let at =
            Spi::get_one::<pgrx::datum::TimestampWithTimeZone>("SELECT now()").unwrap().unwrap();
        crate::apply::apply_objects(&[sub.clone(), note], at, None);
        let before = text(
            "SELECT concat_ws('|', billing_mode, days_until_due, description) FROM stripe_sync.subscriptions",
        );
        // As a row written before 0.8.0 has them: the new columns empty, no child rows.
        Spi::run("UPDATE stripe_sync.subscriptions SET billing_mode = NULL, days_until_due = NULL, description = NULL")
            .unwrap();
        Spi::run("DELETE FROM stripe_sync.credit_note_line_items").unwrap();
        assert_eq!(
            count(
                "SELECT stripe_sync._refill_columns('subscriptions', ARRAY['billing_mode', 'days_until_due', 'description'])"
            ),
            1
        );
        assert_eq!(
            text(
                "SELECT concat_ws('|', billing_mode, days_until_due, description) FROM stripe_sync.subscriptions"
            ),
            before
        );
        assert_eq!(
            text("SELECT billing_mode FROM stripe_sync.subscriptions").as_deref(),
            sub["billing_mode"]["type"].as_str()
        );
        assert_eq!(count("SELECT stripe_sync._refill_children('credit_notes')"), 1);
        assert_eq!(
            count("SELECT stripe_sync._refill_children('credit_notes')"),
            0,
            "kept, not written twice"
        );
        assert_eq!(
            text("SELECT id || ':' || credit_note FROM stripe_sync.credit_note_line_items")
                .as_deref(),
            Some("cnli_R1:cn_R1")
        );
        for (sql, args) in [
            (
                "SELECT stripe_sync._refill_columns($1, ARRAY['nope'])",
                vec!["subscriptions".to_owned()],
            ),
            ("SELECT stripe_sync._refill_columns($1, ARRAY['id'])", vec!["events".to_owned()]),
            ("SELECT stripe_sync._refill_children($1)", vec!["customers".to_owned()]),
        ] {
            assert_eq!(error_of(sql, args).sqlstate, "22023", "{sql}");
        }
    }
}
