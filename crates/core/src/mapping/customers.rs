//! Customers (`object: "customer"`), fields as in Stripe's API reference
//! (shared/stripe/openapi/resources.json).

use super::{Kind::*, ObjectSpec, col, col_at};

pub const CUSTOMER: ObjectSpec = ObjectSpec {
    object: "customer",
    key: "id",
    table: "customers",
    columns: &[
        col("email", Text),
        col("name", Text),
        col("description", Text),
        col("phone", Text),
        col("currency", Text),
        col("balance", BigInt),
        col("delinquent", Bool),
        col("default_source", Ref),
        col("invoice_prefix", Text),
        col("tax_exempt", Text),
        col("address", Jsonb),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

/// A customer's tax id (`object: "tax_id"`, events `customer.tax_id.*`).
pub const TAX_ID: ObjectSpec = ObjectSpec {
    object: "tax_id",
    key: "id",
    table: "tax_ids",
    columns: &[
        // `owner.customer` since tax ids can belong to the account as well.
        col_at("customer", Ref, &[&["customer"], &["owner", "customer"]]),
        col("type", Text),
        col("value", Text),
        col("country", Text),
        col_at("owner_type", Text, &[&["owner", "type"]]),
        col_at("verification_status", Text, &[&["verification", "status"]]),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
    ],
    children: &[],
};
