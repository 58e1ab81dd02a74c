//! Payments: charges, refunds, payment intents, payment methods, setup
//! intents, disputes and Radar early fraud warnings. Fields as in Stripe's API
//! reference at 2026-07-29.dahlia (shared/stripe/openapi/resources.json);
//! `invoice` on charges and payment intents was removed in 2025-03-31.basil and
//! is kept as a legacy column (NULL for new shapes).

use super::{Kind::*, ObjectSpec, col, col_at};

pub const CHARGE: ObjectSpec = ObjectSpec {
    object: "charge",
    key: "id",
    table: "charges",
    columns: &[
        col("customer", Ref),
        col("payment_intent", Ref),
        // Removed in 2025-03-31.basil.
        col("invoice", Ref),
        col("payment_method", Ref),
        col("balance_transaction", Ref),
        col("status", Text),
        col("amount", BigInt),
        col("amount_captured", BigInt),
        col("amount_refunded", BigInt),
        col("currency", Text),
        col("paid", Bool),
        col("captured", Bool),
        col("refunded", Bool),
        col("disputed", Bool),
        col("failure_code", Text),
        col("failure_message", Text),
        col("description", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col_at("payment_method_type", Text, &[&["payment_method_details", "type"]]),
        col_at("card_brand", Text, &[&["payment_method_details", "card", "brand"]]),
        col_at("card_last_four", Text, &[&["payment_method_details", "card", "last4"]]),
        col_at("card_country", Text, &[&["payment_method_details", "card", "country"]]),
        col_at("outcome_network_status", Text, &[&["outcome", "network_status"]]),
        col_at("outcome_risk_level", Text, &[&["outcome", "risk_level"]]),
        col_at("outcome_reason", Text, &[&["outcome", "reason"]]),
        col("receipt_url", Text),
        col("application_fee_amount", BigInt),
        col("transfer_group", Text),
        col("on_behalf_of", Ref),
    ],
    children: &[],
};

pub const REFUND: ObjectSpec = ObjectSpec {
    object: "refund",
    key: "id",
    table: "refunds",
    columns: &[
        col("charge", Ref),
        col("payment_intent", Ref),
        col("customer", Ref),
        col("balance_transaction", Ref),
        col("status", Text),
        col("amount", BigInt),
        col("currency", Text),
        col("reason", Text),
        col("failure_reason", Text),
        col("receipt_number", Text),
        col("description", Text),
        col("metadata", Jsonb),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
    ],
    children: &[],
};

pub const PAYMENT_INTENT: ObjectSpec = ObjectSpec {
    object: "payment_intent",
    key: "id",
    table: "payment_intents",
    columns: &[
        col("customer", Ref),
        // Removed in 2025-03-31.basil.
        col("invoice", Ref),
        col("latest_charge", Ref),
        col("payment_method", Ref),
        col("status", Text),
        col("amount", BigInt),
        col("amount_capturable", BigInt),
        col("amount_received", BigInt),
        col("currency", Text),
        col("capture_method", Text),
        col("setup_future_usage", Text),
        col("cancellation_reason", Text),
        col("canceled_at", Timestamp),
        col("last_payment_error", Jsonb),
        col("description", Text),
        col("receipt_email", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
        col("payment_method_types", Jsonb),
        col("application_fee_amount", BigInt),
        col("on_behalf_of", Ref),
    ],
    children: &[],
};

pub const PAYMENT_METHOD: ObjectSpec = ObjectSpec {
    object: "payment_method",
    key: "id",
    table: "payment_methods",
    columns: &[
        col("customer", Ref),
        col("type", Text),
        col_at("card_brand", Text, &[&["card", "brand"]]),
        col_at("card_last_four", Text, &[&["card", "last4"]]),
        col_at("card_exp_month", BigInt, &[&["card", "exp_month"]]),
        col_at("card_exp_year", BigInt, &[&["card", "exp_year"]]),
        col_at("card_fingerprint", Text, &[&["card", "fingerprint"]]),
        col("billing_details", Jsonb),
        col("allow_redisplay", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
    ],
    children: &[],
};

pub const SETUP_INTENT: ObjectSpec = ObjectSpec {
    object: "setup_intent",
    key: "id",
    table: "setup_intents",
    columns: &[
        col("customer", Ref),
        col("payment_method", Ref),
        col("latest_attempt", Ref),
        col("mandate", Ref),
        col("status", Text),
        col("usage", Text),
        col("cancellation_reason", Text),
        col("last_setup_error", Jsonb),
        col("description", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const DISPUTE: ObjectSpec = ObjectSpec {
    object: "dispute",
    key: "id",
    table: "disputes",
    columns: &[
        col("charge", Ref),
        col("payment_intent", Ref),
        col("status", Text),
        col("reason", Text),
        col("amount", BigInt),
        col("currency", Text),
        col("is_charge_refundable", Bool),
        col_at("evidence_due_by", Timestamp, &[&["evidence_details", "due_by"]]),
        col_at("has_evidence", Bool, &[&["evidence_details", "has_evidence"]]),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const EARLY_FRAUD_WARNING: ObjectSpec = ObjectSpec {
    object: "radar.early_fraud_warning",
    key: "id",
    table: "early_fraud_warnings",
    columns: &[
        col("charge", Ref),
        col("payment_intent", Ref),
        col("actionable", Bool),
        col("fraud_type", Text),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};
