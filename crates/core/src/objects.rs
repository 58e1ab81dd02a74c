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
}

/// How a backfill lists an object type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// `GET {path}` lists every object of the account.
    Collection,
    /// Listed per customer, `GET /v1/customers/{id}/{0}` for every customer
    /// in the mirror: the top-level list means another set (`/v1/payment_methods`
    /// needs a customer, or lists Treasury's; `/v1/tax_ids` lists the
    /// account's own tax ids).
    PerCustomer(&'static str),
}

impl Resource {
    /// Whether its list takes a `created` filter: quotes, billing meters and
    /// entitlement features do not (Stripe answers 400, parameter_unknown), so
    /// they are listed in full every time and never cut into time slices.
    pub fn filters_by_created(&self) -> bool {
        !matches!(self.object, "quote" | "billing.meter" | "entitlements.feature")
    }

    /// Whether a backfill lists it customer by customer.
    pub fn per_customer(&self) -> bool {
        matches!(self.listing, Listing::PerCustomer(_))
    }

    /// Where one object is retrieved by id; None where that needs more than
    /// the id (a customer balance transaction is retrieved under its customer).
    pub fn retrieve_path(&self, id: &str) -> Option<String> {
        (self.object != "customer_balance_transaction").then(|| format!("{}/{id}", self.path))
    }

    /// The list path of one customer's objects, for a per-customer listing.
    pub fn customer_path(&self, customer: &str) -> Option<String> {
        match self.listing {
            Listing::PerCustomer(sub) => Some(format!("/v1/customers/{customer}/{sub}")),
            Listing::Collection => None,
        }
    }
}

/// Not a mirrored object type but listed by `backfill('account')` into
/// `stripe_sync.accounts`: the connected accounts of a platform.
pub const ACCOUNT: &str = "account";

/// Dependency order: what others point at comes first (`backfill('all')`).
pub const RESOURCES: &[Resource] = &[
    r(ACCOUNT, "/v1/accounts", &[], &["acct_"]),
    r("product", "/v1/products", &[], &["prod_"]),
    r("price", "/v1/prices", &[], &["price_"]),
    r("plan", "/v1/plans", &[], &["plan_"]),
    r("coupon", "/v1/coupons", &[], &[]),
    r("promotion_code", "/v1/promotion_codes", &[], &["promo_"]),
    r("tax_rate", "/v1/tax_rates", &[], &["txr_"]),
    r("billing.meter", "/v1/billing/meters", &[], &["mtr_"]),
    r("entitlements.feature", "/v1/entitlements/features", &[], &["feat_"]),
    r("customer", "/v1/customers", &[], &["cus_"]),
    per_customer("tax_id", "/v1/tax_ids", "tax_ids", &["txi_"]),
    per_customer(
        "payment_method",
        "/v1/payment_methods",
        "payment_methods",
        &["pm_", "card_", "src_"],
    ),
    per_customer(
        "customer_balance_transaction",
        "/v1/customers/balance_transactions",
        "balance_transactions",
        &["cbtxn_"],
    ),
    r("quote", "/v1/quotes", &[], &["qt_"]),
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
    Resource { object, path, list_params, prefixes, listing: Listing::Collection }
}

const fn per_customer(
    object: &'static str,
    path: &'static str,
    sub: &'static str,
    prefixes: &'static [&'static str],
) -> Resource {
    Resource { object, path, list_params: &[], prefixes, listing: Listing::PerCustomer(sub) }
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
        let by_created = |o| resource(o).unwrap().filters_by_created();
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
            assert!(
                crate::mapping::spec_for(res.object).is_some(),
                "{} is not mirrored",
                res.object
            );
        }
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
        let path = |o: &str| resource(o).unwrap().customer_path("cus_1");
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
