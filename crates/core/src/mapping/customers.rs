//! Customers (`object: "customer"`), fields as in Stripe's API reference
//! (shared/stripe/openapi/resources.json).

use super::{Kind::*, ObjectSpec, col};

pub const CUSTOMER: ObjectSpec = ObjectSpec {
    object: "customer",
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
