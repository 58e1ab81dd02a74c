//! Where each mirrored object lives in Stripe's REST API: its resource path,
//! the extra parameters a complete listing needs, and how an id's prefix names
//! its object type. The mapping (`mapping::SPECS`) says where it lives in the
//! database; a test keeps the two in step.

/// One object type's API resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource {
    /// Stripe's `object` value.
    pub object: &'static str,
    /// Collection path, e.g. `/v1/customers`; retrieve is `{path}/{id}`.
    pub path: &'static str,
    /// Extra list parameters for a complete listing (every status, say).
    pub list_params: &'static [(&'static str, &'static str)],
    /// Id prefixes (with their underscore) of this object type.
    pub prefixes: &'static [&'static str],
    /// How a backfill lists every object of the account.
    pub listing: Listing,
    /// Whether its list takes a `created` filter. Quotes, billing meters and
    /// entitlement features do not (Stripe answers 400, parameter_unknown):
    /// they are listed in full every time and never cut into time slices. Nor
    /// do product features, listed under every product each time.
    pub created_filter: bool,
    /// Whether `{path}/{id}` retrieves one object. A customer balance
    /// transaction is retrieved only under its customer; a summary or a
    /// listed child has no retrieve of its own.
    pub retrieve: bool,
}

/// How a backfill lists an object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET {path}` lists every object of the account.
    Collection,
    /// Listed under every live row of `parent_table` in the mirror:
    /// `path` with `{id}` replaced by the parent's id (its query, if any,
    /// kept apart). The top-level list means another set, or there is none
    /// (`/v1/payment_methods` needs a customer, `/v1/tax_ids` lists the
    /// account's own tax ids, a product's features are listed only under it).
    PerParent { parent_table: &'static str, path: &'static str, written: Written },
}

/// What one parent's listing becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The objects, each applied as fetched (they name their parent).
    Objects,
    /// One summary object of the parent, its list the whole listing
    /// ([`summary_of`]): a customer's active entitlements.
    Summary,
    /// The parent's rows of a listed child table, replaced
    /// (`mapping::LISTED`): a product's features.
    Children,
}

impl Resource {
    /// Whether a backfill lists it parent by parent.
    pub fn per_parent(&self) -> bool {
        matches!(self.listing, Listing::PerParent { .. })
    }

    /// Whether its listing is of objects that `verify()` can compare with
    /// their rows one by one.
    pub fn verifiable(&self) -> bool {
        matches!(
            self.listing,
            Listing::Collection | Listing::PerParent { written: Written::Objects, .. }
        )
    }

    /// Where one object is retrieved by id; None where that needs more than
    /// the id.
    pub fn retrieve_path(&self, id: &str) -> Option<String> {
        self.retrieve.then(|| format!("{}/{id}", self.path))
    }

    /// The list of one parent's objects, for a per-parent listing: the path
    /// and its query.
    pub fn parent_list(&self, parent: &str) -> Option<(String, Vec<(String, String)>)> {
        let Listing::PerParent { path, .. } = self.listing else { return None };
        let path = path.replace("{id}", parent);
        let (path, query) = path.split_once('?').unwrap_or((&path, ""));
        let mut params: Vec<(String, String)> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        params.extend(self.list_params.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Some((path.to_owned(), params))
    }
}

/// Not a mirrored object type but listed by `backfill('account')` into
/// `stripe_sync.accounts`: the connected accounts of a platform.
pub const ACCOUNT: &str = "account";

/// The summary object Stripe's event for a customer's active entitlements carries.
pub const ENTITLEMENT_SUMMARY: &str = "entitlements.active_entitlement_summary";

/// Dependency order: what others point at comes first (`backfill('all')`).
pub const RESOURCES: &[Resource] = &[
    r(ACCOUNT, "/v1/accounts", &[], &["acct_"]),
    r("product", "/v1/products", &[], &["prod_"]),
    r("price", "/v1/prices", &[], &["price_"]),
    r("plan", "/v1/plans", &[], &["plan_"]),
    r("coupon", "/v1/coupons", &[], &[]),
    r("promotion_code", "/v1/promotion_codes", &[], &["promo_"]),
    r("tax_rate", "/v1/tax_rates", &[], &["txr_"]),
    r("billing.meter", "/v1/billing/meters", &[], &["mtr_"]).no_created_filter(),
    r("entitlements.feature", "/v1/entitlements/features", &[], &["feat_"]).no_created_filter(),
    per_parent(
        "product_feature",
        "/v1/products/features",
        ("products", "/v1/products/{id}/features", Written::Children),
        &[],
    )
    // No events: every backfill lists every product's features.
    .no_created_filter()
    .no_retrieve(),
    r("customer", "/v1/customers", &[], &["cus_"]),
    per_customer("tax_id", "/v1/tax_ids", "/v1/customers/{id}/tax_ids", &["txi_"]),
    per_customer(
        "payment_method",
        "/v1/payment_methods",
        "/v1/customers/{id}/payment_methods",
        &["pm_", "card_", "src_"],
    ),
    per_customer(
        "customer_balance_transaction",
        "/v1/customers/balance_transactions",
        "/v1/customers/{id}/balance_transactions",
        &["cbtxn_"],
    )
    .no_retrieve(),
    per_parent(
        ENTITLEMENT_SUMMARY,
        "/v1/entitlements/active_entitlements",
        ("customers", "/v1/entitlements/active_entitlements?customer={id}", Written::Summary),
        &[],
    )
    .no_retrieve(),
    r("quote", "/v1/quotes", &[], &["qt_"]).no_created_filter(),
    r("subscription", "/v1/subscriptions", &[("status", "all")], &["sub_"]),
    r("subscription_schedule", "/v1/subscription_schedules", &[], &["sub_sched_"]),
    r("invoice", "/v1/invoices", &[], &["in_"]),
    r("invoiceitem", "/v1/invoiceitems", &[], &["ii_"]),
    r("payment_intent", "/v1/payment_intents", &[], &["pi_"]),
    r("setup_intent", "/v1/setup_intents", &[], &["seti_"]),
    r("charge", "/v1/charges", &[], &["ch_", "py_"]),
    r("refund", "/v1/refunds", &[], &["re_", "pyr_"]),
    r("dispute", "/v1/disputes", &[], &["dp_", "du_"]),
    r("credit_note", "/v1/credit_notes", &[], &["cn_"]),
    r("invoice_payment", "/v1/invoice_payments", &[], &["inpay_"]),
    r("review", "/v1/reviews", &[], &["prv_"]),
    r("transfer", "/v1/transfers", &[], &["tr_"]),
    r("application_fee", "/v1/application_fees", &[], &["fee_"]),
    r("payout", "/v1/payouts", &[], &["po_"]),
    r("balance_transaction", "/v1/balance_transactions", &[], &["txn_"]),
    r("checkout.session", "/v1/checkout/sessions", &[], &["cs_"]),
    r("radar.early_fraud_warning", "/v1/radar/early_fraud_warnings", &[], &["issfr_"]),
];

const fn r(
    object: &'static str,
    path: &'static str,
    list_params: &'static [(&'static str, &'static str)],
    prefixes: &'static [&'static str],
) -> Resource {
    Resource {
        object,
        path,
        list_params,
        prefixes,
        listing: Listing::Collection,
        created_filter: true,
        retrieve: true,
    }
}

const fn per_parent(
    object: &'static str,
    path: &'static str,
    (parent_table, list, written): (&'static str, &'static str, Written),
    prefixes: &'static [&'static str],
) -> Resource {
    let mut res = r(object, path, &[], prefixes);
    res.listing = Listing::PerParent { parent_table, path: list, written };
    res
}

const fn per_customer(
    object: &'static str,
    path: &'static str,
    list: &'static str,
    prefixes: &'static [&'static str],
) -> Resource {
    per_parent(object, path, ("customers", list, Written::Objects), prefixes)
}

impl Resource {
    const fn no_created_filter(mut self) -> Resource {
        self.created_filter = false;
        self
    }

    const fn no_retrieve(mut self) -> Resource {
        self.retrieve = false;
        self
    }
}

/// A parent's summary as Stripe's events carry it, made from a complete
/// listing of its elements: for [`Written::Summary`] resources (the only one:
/// a customer's active entitlements).
pub fn summary_of(customer: &str, entitlements: Vec<serde_json::Value>) -> serde_json::Value {
    let livemode = entitlements.first().and_then(|e| e.get("livemode")).cloned();
    serde_json::json!({
        "object": ENTITLEMENT_SUMMARY,
        "customer": customer,
        "entitlements": {
            "object": "list",
            "data": entitlements,
            "has_more": false,
            "url": "/v1/entitlements/active_entitlements",
        },
        "livemode": livemode.unwrap_or(serde_json::Value::Bool(false)),
    })
}

/// The resource of an `object` value.
pub fn resource(object: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.object == object)
}

/// The resource an id belongs to, by its prefix; the longest prefix wins
/// (`sub_sched_` before `sub_`).
pub fn resource_for_id(id: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .flat_map(|r| r.prefixes.iter().map(move |p| (r, *p)))
        .filter(|(_, p)| id.starts_with(p) && id.len() > p.len())
        .max_by_key(|(_, p)| p.len())
        .map(|(r, _)| r)
}

/// Where the rest of a partial embedded list is listed: the path and query
/// for `parent_object`'s list `field` of the parent `parent_id`.
pub fn child_list(
    parent_object: &str,
    field: &str,
    parent_id: &str,
) -> Option<(String, Vec<(String, String)>)> {
    match (parent_object, field) {
        ("subscription", "items") => {
            Some(("/v1/subscription_items".into(), vec![("subscription".into(), parent_id.into())]))
        }
        ("invoice", "lines") => Some((format!("/v1/invoices/{parent_id}/lines"), vec![])),
        ("credit_note", "lines") => Some((format!("/v1/credit_notes/{parent_id}/lines"), vec![])),
        ("transfer", "reversals") => Some((format!("/v1/transfers/{parent_id}/reversals"), vec![])),
        (ENTITLEMENT_SUMMARY, "entitlements") => Some((
            "/v1/entitlements/active_entitlements".into(),
            vec![("customer".into(), parent_id.into())],
        )),
        ("application_fee", "refunds") => {
            Some((format!("/v1/application_fees/{parent_id}/refunds"), vec![]))
        }
        _ => None,
    }
}

/// The object types `backfill()` accepts, as users name them: `object` values,
/// plus `'all'`.
pub fn backfill_names() -> Vec<&'static str> {
    RESOURCES.iter().map(|r| r.object).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_to_resources_by_longest_prefix() {
        let obj = |id| resource_for_id(id).map(|r| r.object);
        assert_eq!(obj("cus_NffrFeUfNV2Hib"), Some("customer"));
        assert_eq!(obj("sub_1MowQVLkdIwHu7ix"), Some("subscription"));
        assert_eq!(obj("sub_sched_1Mr3YdLkdIwHu7ix"), Some("subscription_schedule"));
        assert_eq!(obj("in_1MtHbELkdIwHu7ix"), Some("invoice"));
        assert_eq!(obj("ch_3MmlLrLkdIwHu7ix"), Some("charge"));
        assert_eq!(obj("pi_3MtwBwLkdIwHu7ix"), Some("payment_intent"));
        assert_eq!(obj("prod_NWjs8kKbJWmuuc"), Some("product"));
        assert_eq!(obj("price_1MoBy5LkdIwHu7ix"), Some("price"));
        assert_eq!(obj("cs_test_a1b2"), Some("checkout.session"));
        assert_eq!(obj("issfr_1NnrwHBw2dPENLoi"), Some("radar.early_fraud_warning"));
        assert_eq!(obj("cus_"), None);
        assert_eq!(obj("evt_1"), None);
        assert_eq!(obj("bogus"), None);
    }

    #[test]
    fn lists_without_a_created_filter_are_known() {
        let by_created = |o| resource(o).unwrap().created_filter;
        assert!(
            !by_created("quote")
                && !by_created("billing.meter")
                && !by_created("entitlements.feature")
        );
        assert!(
            by_created("customer") && by_created("balance_transaction") && by_created("payout")
        );
    }

    #[test]
    fn subscriptions_are_listed_with_every_status() {
        assert_eq!(resource("subscription").unwrap().list_params, &[("status", "all")]);
    }

    #[test]
    fn every_mirrored_object_has_a_resource_and_back() {
        for spec in crate::mapping::SPECS {
            assert!(resource(spec.object).is_some(), "no API resource for {}", spec.object);
        }
        for res in RESOURCES.iter().filter(|r| r.object != ACCOUNT) {
            let listed = crate::mapping::listed_for(res.object);
            assert!(
                crate::mapping::spec_for(res.object).is_some() || listed.is_some(),
                "{} is not mirrored",
                res.object
            );
            // A listed child's rows are written by its own listing only.
            let children =
                matches!(res.listing, Listing::PerParent { written: Written::Children, .. });
            assert_eq!(children, listed.is_some(), "{}", res.object);
        }
        for l in crate::mapping::LISTED {
            let Some(Listing::PerParent { parent_table, .. }) =
                resource(l.object).map(|r| r.listing)
            else {
                panic!("{} is not listed per parent", l.object)
            };
            assert_eq!(parent_table, l.parent_table);
        }
    }

    #[test]
    fn per_parent_lists_keep_their_query_apart() {
        let ent = resource(ENTITLEMENT_SUMMARY).unwrap();
        assert_eq!(
            ent.parent_list("cus_9"),
            Some((
                "/v1/entitlements/active_entitlements".to_owned(),
                vec![("customer".to_owned(), "cus_9".to_owned())]
            ))
        );
        assert_eq!(
            resource("product_feature").unwrap().parent_list("prod_1"),
            Some(("/v1/products/prod_1/features".to_owned(), vec![]))
        );
        assert!(!ent.verifiable() && !resource("product_feature").unwrap().verifiable());
        assert!(
            resource("tax_id").unwrap().verifiable() && resource("customer").unwrap().verifiable()
        );
        assert_eq!(ent.retrieve_path("cus_1"), None);
        assert_eq!(
            resource("customer_balance_transaction").unwrap().retrieve_path("cbtxn_1"),
            None
        );
        assert_eq!(
            resource("customer").unwrap().retrieve_path("cus_1").as_deref(),
            Some("/v1/customers/cus_1")
        );
        let pos = |o| RESOURCES.iter().position(|r| r.object == o).unwrap();
        assert!(
            pos("product") < pos("product_feature") && pos("customer") < pos(ENTITLEMENT_SUMMARY)
        );
    }

    #[test]
    fn a_summary_is_made_from_a_complete_listing() {
        let ents = vec![
            serde_json::json!({"id": "ent_1", "object": "entitlements.active_entitlement", "livemode": true}),
        ];
        let s = summary_of("cus_1", ents);
        assert_eq!(s["object"], ENTITLEMENT_SUMMARY);
        assert_eq!(s["customer"], "cus_1");
        assert_eq!(s["entitlements"]["has_more"], false);
        assert_eq!(s["entitlements"]["data"][0]["id"], "ent_1");
        assert_eq!(s["livemode"], true);
        assert_eq!(summary_of("cus_2", vec![])["entitlements"]["data"], serde_json::json!([]));
    }

    #[test]
    fn every_child_list_has_an_endpoint() {
        for spec in crate::mapping::SPECS {
            for child in spec.children {
                assert!(
                    child_list(spec.object, child.list, "x_1").is_some(),
                    "{}.{}",
                    spec.object,
                    child.list
                );
            }
        }
        assert_eq!(child_list("invoice", "lines", "in_1").unwrap().0, "/v1/invoices/in_1/lines");
        assert_eq!(child_list("customer", "sources", "cus_1"), None);
    }

    #[test]
    fn payment_methods_and_tax_ids_are_listed_per_customer() {
        let path = |o: &str| resource(o).unwrap().parent_list("cus_1").map(|(p, _)| p);
        assert_eq!(path("payment_method").as_deref(), Some("/v1/customers/cus_1/payment_methods"));
        assert_eq!(path("tax_id").as_deref(), Some("/v1/customers/cus_1/tax_ids"));
        assert_eq!(path("customer"), None);
        // Their customers are listed before them.
        let pos = |o| RESOURCES.iter().position(|r| r.object == o).unwrap();
        assert!(pos("customer") < pos("payment_method") && pos("customer") < pos("tax_id"));
    }

    #[test]
    fn accounts_come_first_and_are_not_a_table() {
        assert_eq!(RESOURCES[0].object, ACCOUNT);
        assert!(crate::mapping::spec_for(ACCOUNT).is_none());
        assert_eq!(resource_for_id("acct_1Nv0FGQ9RKHgCVdK").map(|r| r.object), Some(ACCOUNT));
    }

    #[test]
    fn dependency_order_puts_catalog_and_customers_before_billing() {
        let pos = |o| RESOURCES.iter().position(|r| r.object == o).unwrap();
        assert!(pos("product") < pos("price") && pos("price") < pos("subscription"));
        assert!(pos("customer") < pos("subscription") && pos("subscription") < pos("invoice"));
        assert!(pos("invoice") < pos("charge") && pos("charge") < pos("refund"));
    }
}
