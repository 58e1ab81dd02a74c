//! Stripe's Entitlements API beyond the features themselves (ledger.rs):
//! which features each customer has now, and which features each product
//! grants. Fields as in fixtures3.json at 2026-07-29.dahlia.

use super::{ChildSpec, Kind::*, ListedChildren, ObjectSpec, col, col_at};

/// A customer's active entitlements as a whole: Stripe sends the summary
/// (`entitlements.active_entitlement_summary.updated`) and has no id for it
/// but the customer's, so the customer's id keys its row. Its list replaces
/// the customer's rows of `customer_entitlements`: a removed entitlement
/// disappears with the summary that no longer lists it.
pub const ENTITLEMENT_SUMMARY: ObjectSpec = ObjectSpec {
    object: "entitlements.active_entitlement_summary",
    key: "customer",
    table: "entitlement_summaries",
    columns: &[col("customer", Ref), col("livemode", Bool)],
    children: &[CUSTOMER_ENTITLEMENTS],
};

/// One feature a customer has now (`entitlements.active_entitlement`).
pub const CUSTOMER_ENTITLEMENTS: ChildSpec = ChildSpec {
    table: "customer_entitlements",
    list: "entitlements",
    parent_column: "customer",
    columns: &[col("feature", Ref), col("lookup_key", Text), col("livemode", Bool)],
};

/// A feature attached to a product (`product_feature`): Stripe embeds these
/// in no object and sends no events for them; `GET /v1/products/{id}/features`
/// lists them, and the objects do not name their product.
pub const PRODUCT_FEATURES: ListedChildren = ListedChildren {
    object: "product_feature",
    parent_table: "products",
    child: ChildSpec {
        table: "product_features",
        list: "features",
        parent_column: "product",
        columns: &[
            col("entitlement_feature", Ref),
            col_at("lookup_key", Text, &[&["entitlement_feature", "lookup_key"]]),
            col_at("name", Text, &[&["entitlement_feature", "name"]]),
            col("livemode", Bool),
        ],
    },
};
