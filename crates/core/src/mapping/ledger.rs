//! The money ledger and what finance reconciles beside it (0.8.0): balance
//! transactions, payouts, transfers and their reversals, application fees and
//! their refunds, invoice payments (since 2025-03-31.basil the only link from
//! a payment to its invoice), customer balance transactions, and the objects
//! around them: promotion codes, tax rates, quotes, Radar reviews, billing
//! meters and entitlement features. Fields as in Stripe's fixtures at
//! 2026-07-29.dahlia (shared/stripe/openapi/fixtures3.json).

use super::{ChildSpec, Kind::*, ObjectSpec, col, col_at};

/// Balance transactions have no events: backfill lists them, and catch-up
/// lists those created since its last run and the pending ones again.
pub const BALANCE_TRANSACTION: ObjectSpec = ObjectSpec {
    object: "balance_transaction",
    key: "id",
    table: "balance_transactions",
    columns: &[
        col("source", Ref),
        col("type", Text),
        col("reporting_category", Text),
        col("status", Text),
        col("amount", BigInt),
        col("fee", BigInt),
        col("net", BigInt),
        col("currency", Text),
        col("exchange_rate", Numeric),
        col("fee_details", Jsonb),
        col("balance_type", Text),
        col("available_on", Timestamp),
        col("description", Text),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const PAYOUT: ObjectSpec = ObjectSpec {
    object: "payout",
    key: "id",
    table: "payouts",
    columns: &[
        col("status", Text),
        col("type", Text),
        col("method", Text),
        col("amount", BigInt),
        col("currency", Text),
        col("arrival_date", Timestamp),
        col("automatic", Bool),
        col("balance_transaction", Ref),
        col("failure_balance_transaction", Ref),
        col("destination", Ref),
        col("original_payout", Ref),
        col("reversed_by", Ref),
        col("failure_code", Text),
        col("failure_message", Text),
        col("reconciliation_status", Text),
        col("source_type", Text),
        col("statement_descriptor", Text),
        col("application_fee_amount", BigInt),
        col("description", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const TRANSFER_REVERSALS: ChildSpec = ChildSpec {
    table: "transfer_reversals",
    list: "reversals",
    parent_column: "transfer",
    columns: &[
        col("amount", BigInt),
        col("currency", Text),
        col("balance_transaction", Ref),
        col("destination_payment_refund", Ref),
        col("source_refund", Ref),
        col("metadata", Jsonb),
        col("created", Timestamp),
    ],
};

pub const TRANSFER: ObjectSpec = ObjectSpec {
    object: "transfer",
    key: "id",
    table: "transfers",
    columns: &[
        col("destination", Ref),
        col("destination_payment", Ref),
        col("amount", BigInt),
        col("amount_reversed", BigInt),
        col("currency", Text),
        col("reversed", Bool),
        col("balance_transaction", Ref),
        col("source_transaction", Ref),
        col("source_type", Text),
        col("transfer_group", Text),
        col("description", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[TRANSFER_REVERSALS],
};

pub const APPLICATION_FEE_REFUNDS: ChildSpec = ChildSpec {
    table: "application_fee_refunds",
    list: "refunds",
    parent_column: "fee",
    columns: &[
        col("amount", BigInt),
        col("currency", Text),
        col("balance_transaction", Ref),
        col("metadata", Jsonb),
        col("created", Timestamp),
    ],
};

pub const APPLICATION_FEE: ObjectSpec = ObjectSpec {
    object: "application_fee",
    key: "id",
    table: "application_fees",
    columns: &[
        col("account", Ref),
        col("application", Ref),
        col("charge", Ref),
        col("originating_transaction", Ref),
        col("balance_transaction", Ref),
        col("amount", BigInt),
        col("amount_refunded", BigInt),
        col("currency", Text),
        col("refunded", Bool),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[APPLICATION_FEE_REFUNDS],
};

/// A payment of an invoice: the invoice, and the payment intent (or charge)
/// that paid it, by `payment.type`.
pub const INVOICE_PAYMENT: ObjectSpec = ObjectSpec {
    object: "invoice_payment",
    key: "id",
    table: "invoice_payments",
    columns: &[
        col("invoice", Ref),
        col("is_default", Bool),
        col("status", Text),
        col("amount_paid", BigInt),
        col("amount_requested", BigInt),
        col("currency", Text),
        col_at("payment_type", Text, &[&["payment", "type"]]),
        col_at("payment_intent", Ref, &[&["payment", "payment_intent"]]),
        col_at("charge", Ref, &[&["payment", "charge"]]),
        col_at("paid_at", Timestamp, &[&["status_transitions", "paid_at"]]),
        col_at("canceled_at", Timestamp, &[&["status_transitions", "canceled_at"]]),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const CUSTOMER_BALANCE_TRANSACTION: ObjectSpec = ObjectSpec {
    object: "customer_balance_transaction",
    key: "id",
    table: "customer_balance_transactions",
    columns: &[
        col("customer", Ref),
        col("customer_account", Ref),
        col("type", Text),
        col("amount", BigInt),
        col("ending_balance", BigInt),
        col("currency", Text),
        col("credit_note", Ref),
        col("invoice", Ref),
        col("checkout_session", Ref),
        col("description", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const PROMOTION_CODE: ObjectSpec = ObjectSpec {
    object: "promotion_code",
    key: "id",
    table: "promotion_codes",
    columns: &[
        col("code", Text),
        col("active", Bool),
        // Under `promotion` at 2026-07-29.dahlia (fixtures3.json).
        col_at("coupon", Ref, &[&["promotion", "coupon"]]),
        col("customer", Ref),
        col("customer_account", Ref),
        col("expires_at", Timestamp),
        col("max_redemptions", BigInt),
        col("times_redeemed", BigInt),
        col("restrictions", Jsonb),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const TAX_RATE: ObjectSpec = ObjectSpec {
    object: "tax_rate",
    key: "id",
    table: "tax_rates",
    columns: &[
        col("display_name", Text),
        col("description", Text),
        col("percentage", Numeric),
        col("effective_percentage", Numeric),
        col("inclusive", Bool),
        col("active", Bool),
        col("country", Text),
        col("state", Text),
        col("jurisdiction", Text),
        col("jurisdiction_level", Text),
        col("tax_type", Text),
        col("rate_type", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const QUOTE: ObjectSpec = ObjectSpec {
    object: "quote",
    key: "id",
    table: "quotes",
    columns: &[
        col("customer", Ref),
        col("customer_account", Ref),
        col("status", Text),
        col("number", Text),
        col("currency", Text),
        col("amount_subtotal", BigInt),
        col("amount_total", BigInt),
        col("collection_method", Text),
        col("expires_at", Timestamp),
        col("invoice", Ref),
        col("subscription", Ref),
        col("subscription_schedule", Ref),
        col_at("accepted_at", Timestamp, &[&["status_transitions", "accepted_at"]]),
        col_at("canceled_at", Timestamp, &[&["status_transitions", "canceled_at"]]),
        col_at("finalized_at", Timestamp, &[&["status_transitions", "finalized_at"]]),
        col("description", Text),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

/// Radar's manual reviews of a payment.
pub const REVIEW: ObjectSpec = ObjectSpec {
    object: "review",
    key: "id",
    table: "reviews",
    columns: &[
        col("charge", Ref),
        col("open", Bool),
        col("opened_reason", Text),
        col("closed_reason", Text),
        col("reason", Text),
        col("billing_zip", Text),
        col("ip_address", Text),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const BILLING_METER: ObjectSpec = ObjectSpec {
    object: "billing.meter",
    key: "id",
    table: "billing_meters",
    columns: &[
        col("display_name", Text),
        col("event_name", Text),
        col("status", Text),
        col("event_time_window", Text),
        col_at("default_aggregation", Text, &[&["default_aggregation", "formula"]]),
        col("customer_mapping", Jsonb),
        col("value_settings", Jsonb),
        col_at("deactivated_at", Timestamp, &[&["status_transitions", "deactivated_at"]]),
        col("updated", Timestamp),
        col("livemode", Bool),
        col("created", Timestamp),
    ],
    children: &[],
};

pub const ENTITLEMENT_FEATURE: ObjectSpec = ObjectSpec {
    object: "entitlements.feature",
    key: "id",
    table: "entitlement_features",
    columns: &[
        col("name", Text),
        col("lookup_key", Text),
        col("active", Bool),
        col("metadata", Jsonb),
        col("livemode", Bool),
    ],
    children: &[],
};

/// A credit note's lines, embedded in it like an invoice's.
pub const CREDIT_NOTE_LINE_ITEMS: ChildSpec = ChildSpec {
    table: "credit_note_line_items",
    list: "lines",
    parent_column: "credit_note",
    columns: &[
        col("type", Text),
        col("invoice_line_item", Ref),
        col("amount", BigInt),
        col("discount_amount", BigInt),
        col("quantity", BigInt),
        col("unit_amount", BigInt),
        col("unit_amount_decimal", Numeric),
        col("description", Text),
        col("livemode", Bool),
    ],
};
