//! Checkout Sessions (`object: "checkout.session"`), fields as in Stripe's API
//! reference at 2026-07-29.dahlia (shared/stripe/openapi/resources.json).

use super::{Kind::*, ObjectSpec, col, col_at};

pub const CHECKOUT_SESSION: ObjectSpec = ObjectSpec {
    object: "checkout.session",
    key: "id",
    table: "checkout_sessions",
    columns: &[
        col("customer", Ref),
        col("customer_email", Text),
        col_at("customer_details_email", Text, &[&["customer_details", "email"]]),
        col("client_reference_id", Text),
        col("mode", Text),
        col("status", Text),
        col("payment_status", Text),
        col("subscription", Ref),
        col("invoice", Ref),
        col("payment_intent", Ref),
        col("setup_intent", Ref),
        col("payment_link", Ref),
        col("currency", Text),
        col("amount_subtotal", BigInt),
        col("amount_total", BigInt),
        col("expires_at", Timestamp),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
    ],
    children: &[],
};
