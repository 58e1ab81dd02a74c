//! The catalog: products, prices, plans and coupons. Fields as in Stripe's API
//! reference at 2026-07-29.dahlia (shared/stripe/openapi/resources.json); these
//! objects kept their shape across the API versions we meet.

use super::{Kind::*, ObjectSpec, col, col_at};

pub const PRODUCT: ObjectSpec = ObjectSpec {
    object: "product",
    key: "id",
    table: "products",
    columns: &[
        col("name", Text),
        col("description", Text),
        col("active", Bool),
        col("type", Text),
        col("default_price", Ref),
        col("unit_label", Text),
        col("statement_descriptor", Text),
        col("tax_code", Ref),
        col("shippable", Bool),
        col("url", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        col("updated", Timestamp),
    ],
    children: &[],
};

pub const PRICE: ObjectSpec = ObjectSpec {
    object: "price",
    key: "id",
    table: "prices",
    columns: &[
        col("product", Ref),
        col("active", Bool),
        col("currency", Text),
        col("unit_amount", BigInt),
        // A decimal string (sub-unit precision); cast with ::numeric.
        col("unit_amount_decimal", Text),
        col("type", Text),
        col("billing_scheme", Text),
        col_at("recurring_interval", Text, &[&["recurring", "interval"]]),
        col_at("recurring_interval_count", BigInt, &[&["recurring", "interval_count"]]),
        col_at("recurring_usage_type", Text, &[&["recurring", "usage_type"]]),
        col("lookup_key", Text),
        col("nickname", Text),
        col("tax_behavior", Text),
        col("tiers_mode", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const PLAN: ObjectSpec = ObjectSpec {
    object: "plan",
    key: "id",
    table: "plans",
    columns: &[
        col("product", Ref),
        col("active", Bool),
        col("currency", Text),
        col("amount", BigInt),
        col("amount_decimal", Text),
        // Not a reserved word in PostgreSQL: usable unquoted as a column name.
        col("interval", Text),
        col("interval_count", BigInt),
        col("usage_type", Text),
        col("billing_scheme", Text),
        col("tiers_mode", Text),
        col("nickname", Text),
        col("trial_period_days", BigInt),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const COUPON: ObjectSpec = ObjectSpec {
    object: "coupon",
    key: "id",
    table: "coupons",
    columns: &[
        col("name", Text),
        col("amount_off", BigInt),
        // A JSON number with a fraction (25.5): kept as text, cast with ::numeric.
        col("percent_off", Numeric),
        col("currency", Text),
        col("duration", Text),
        col("duration_in_months", BigInt),
        col("max_redemptions", BigInt),
        col("times_redeemed", BigInt),
        col("redeem_by", Timestamp),
        col("valid", Bool),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};
