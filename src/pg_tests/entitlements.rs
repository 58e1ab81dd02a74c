//! `#[pg_test]`s of 0.9.0: customers' active entitlements replaced by each
//! newer summary, product features replaced per product, thin events turned
//! into re-reads of their objects, payouts reconciled.

#[pgrx::pg_schema]
mod tests {
    use crate::pg_tests::*;
    use serde_json::{Value, json};

    fn entitlement(id: &str, lookup_key: &str) -> Value {
        json!({"id": id, "object": "entitlements.active_entitlement",
               "feature": {"id": format!("feat_{lookup_key}"), "object": "entitlements.feature",
                           "lookup_key": lookup_key, "name": lookup_key, "active": true,
                           "livemode": false, "metadata": {}},
               "livemode": false, "lookup_key": lookup_key})
    }

    fn summary_event(id: &str, created: i64, customer: &str, ents: &[Value]) -> String {
        json!({"id": id, "object": "event", "type": "entitlements.active_entitlement_summary.updated",
               "created": created, "api_version": "2026-07-29.dahlia", "livemode": false,
               "data": {"object": {"object": "entitlements.active_entitlement_summary",
                                   "customer": customer, "livemode": false,
                                   "entitlements": {"object": "list", "data": ents, "has_more": false,
                                                    "url": "/v1/entitlements/active_entitlements"}}}})
        .to_string()
    }

    fn keys_of(customer: &str) -> Vec<String> {
        texts(&format!(
            "SELECT id || ':' || feature || ':' || lookup_key FROM stripe_sync.customer_entitlements
              WHERE customer = '{customer}' ORDER BY id"
        ))
    }

    #[pg_test]
    fn each_newer_summary_replaces_the_customers_entitlements() {
        let t = now() - 100;
        let (a, b, c, d) = (
            entitlement("ent_A", "sso"),
            entitlement("ent_B", "api"),
            entitlement("ent_C", "seats"),
            entitlement("ent_D", "old"),
        );
        ingest_signed(&summary_event("evt_S1", t, "cus_E", &[a, b.clone()]));
        // Another customer's set is its own.
        ingest_signed(&summary_event("evt_S9", t, "cus_F", &[entitlement("ent_F", "sso")]));
        assert_eq!(process(), 2);
        assert_eq!(keys_of("cus_E"), ["ent_A:feat_sso:sso", "ent_B:feat_api:api"]);
        // One removed (A), one added (C): exactly the new set.
        ingest_signed(&summary_event("evt_S2", t + 5, "cus_E", &[b, c]));
        assert_eq!(process(), 1);
        assert_eq!(keys_of("cus_E"), ["ent_B:feat_api:api", "ent_C:feat_seats:seats"]);
        // An older summary delivered late changes nothing.
        ingest_signed(&summary_event("evt_S0", t - 5, "cus_E", &[d]));
        assert_eq!(process(), 1);
        assert_eq!(keys_of("cus_E"), ["ent_B:feat_api:api", "ent_C:feat_seats:seats"]);
        assert_eq!(keys_of("cus_F"), ["ent_F:feat_sso:sso"]);
        assert_eq!(
            text("SELECT _last_event_id || ' ' || customer FROM stripe_sync.entitlement_summaries WHERE id = 'cus_E'")
                .as_deref(),
            Some("evt_S2 cus_E")
        );
        assert_eq!(
            text("SELECT string_agg(status, ',') FROM stripe_sync.events WHERE id LIKE 'evt_S%'")
                .as_deref(),
            Some("processed,processed,processed,processed")
        );
        // An empty summary: the customer has nothing now.
        ingest_signed(&summary_event("evt_S3", t + 9, "cus_E", &[]));
        assert_eq!(process(), 1);
        assert!(keys_of("cus_E").is_empty());
    }

    #[pg_test]
    fn active_entitlements_prefer_stripes_entitlements_in_an_account_that_uses_them() {
        let t = now() - 100;
        ingest_signed(&summary_event("evt_AE", t, "cus_G", &[entitlement("ent_G", "export")]));
        assert_eq!(process(), 1);
        assert_eq!(
            texts(
                "SELECT concat_ws('|', customer, feature, feature_lookup_key, source, subscription) FROM stripe_sync.active_entitlements"
            ),
            ["cus_G|feat_export|export|entitlements"]
        );
    }

    #[pg_test]
    fn thin_events_ask_for_their_objects() {
        let thin = |id: &str, object: Option<(&str, &str)>, context: Option<&str>| {
            let mut e = json!({"id": id, "object": "v2.core.event", "type": "v1.thing.updated",
                               "livemode": false, "created": "2026-12-01T10:00:00.250Z", "context": context});
            if let Some((t, oid)) = object {
                e["related_object"] = json!({"id": oid, "type": t, "url": format!("/v1/x/{oid}")});
            }
            e.to_string()
        };
        assert_eq!(ingest_signed(&thin("evt_T1", Some(("customer", "cus_T")), None)), "queued");
        assert_eq!(
            ingest_signed(&thin("evt_T2", Some(("billing.meter", "mtr_T")), Some("acct_T"))),
            "queued"
        );
        assert_eq!(
            ingest_signed(&thin("evt_T3", Some(("v2.billing.pricing_plan", "bpp_T")), None)),
            "queued"
        );
        assert_eq!(ingest_signed(&thin("evt_T4", None, None)), "queued");
        assert_eq!(ingest_signed(&thin("evt_T1", Some(("customer", "cus_T")), None)), "duplicate");
        assert_eq!(
            texts("SELECT concat_ws('|', id, thin, object_type, object_id, account, extract(epoch FROM created)::bigint)
                     FROM stripe_sync.events WHERE id LIKE 'evt_T%' ORDER BY id"),
            [
                "evt_T1|t|customer|cus_T|1796119200",
                "evt_T2|t|billing.meter|mtr_T|acct_T|1796119200",
                "evt_T3|t|v2.billing.pricing_plan|bpp_T|1796119200",
                "evt_T4|t|1796119200"
            ]
        );
        assert_eq!(process(), 4);
        assert_eq!(
            texts(
                "SELECT id || ':' || status FROM stripe_sync.events WHERE id LIKE 'evt_T%' ORDER BY id"
            ),
            ["evt_T1:processed", "evt_T2:processed", "evt_T3:skipped", "evt_T4:skipped"]
        );
        // Nothing written from the event itself: the objects are asked for.
        assert_eq!(count("SELECT count(*) FROM stripe_sync.customers WHERE id = 'cus_T'"), 0);
        assert_eq!(
            texts(
                "SELECT concat_ws('|', account, id, object) FROM stripe_sync.refresh_requests ORDER BY id"
            ),
            ["|cus_T|customer", "acct_T|mtr_T|billing.meter"]
        );
        // A thin event that is not RFC 3339 is refused, nothing stored.
        let bad = r#"{"id":"evt_T5","object":"v2.core.event","type":"a","created":1796119200}"#;
        let f = ingest_error(bad, &header(bad, SECRET, now()));
        assert!(f.message.contains("RFC 3339"), "{}", f.message);
        assert_eq!(count("SELECT count(*) FROM stripe_sync.events WHERE id = 'evt_T5'"), 0);
    }

    #[pg_test]
    fn a_products_features_are_replaced_by_its_listing() {
        let feature = |id: &str, key: &str| {
            json!({"id": id, "object": "product_feature", "livemode": false,
                   "entitlement_feature": {"id": format!("feat_{key}"), "object": "entitlements.feature",
                                           "lookup_key": key, "name": format!("Feature {key}"),
                                           "active": true, "livemode": false, "metadata": {}}})
        };
        let resource = stripe_sync_core::objects::resource("product_feature").unwrap();
        let at: pgrx::datum::TimestampWithTimeZone = Spi::get_one("SELECT now()").unwrap().unwrap();
        let listed = vec![
            ("prod_1".to_owned(), vec![feature("prodft_1", "sso"), feature("prodft_2", "api")]),
            ("prod_2".to_owned(), vec![feature("prodft_3", "sso")]),
        ];
        assert_eq!(crate::apply::apply_listed(resource, listed, at, None), 3);
        let rows = || {
            texts(
                "SELECT concat_ws('|', product, id, entitlement_feature, lookup_key, name) FROM stripe_sync.product_features ORDER BY id",
            )
        };
        assert_eq!(
            rows(),
            [
                "prod_1|prodft_1|feat_sso|sso|Feature sso",
                "prod_1|prodft_2|feat_api|api|Feature api",
                "prod_2|prodft_3|feat_sso|sso|Feature sso"
            ]
        );
        // prod_1 again without prodft_1: detached; prod_2, not listed, kept.
        let listed = vec![("prod_1".to_owned(), vec![feature("prodft_2", "api")])];
        assert_eq!(crate::apply::apply_listed(resource, listed, at, None), 1);
        assert_eq!(
            rows(),
            [
                "prod_1|prodft_2|feat_api|api|Feature api",
                "prod_2|prodft_3|feat_sso|sso|Feature sso"
            ]
        );
        // A connected account's features are its own.
        let listed = vec![("prod_1".to_owned(), vec![])];
        crate::apply::apply_listed(resource, listed, at, Some("acct_P"));
        assert_eq!(rows().len(), 2);
    }
}
