//! `#[pg_test]`s of the revenue views: mrr, mrr_history, discounts.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;

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
}
