//! Billing: subscriptions (with their items), invoices (with their lines),
//! invoice items, credit notes and subscription schedules.
//!
//! Fields as in Stripe's API reference at 2026-07-29.dahlia
//! (shared/stripe/openapi/resources.json), with fallbacks for the older shapes
//! still delivered by endpoints pinned to an old API version. The moves that
//! matter here happened in 2025-03-31.basil:
//! - a subscription's `current_period_start/end` went from the subscription to
//!   each item;
//! - an invoice's `subscription` went to `parent.subscription_details`; its
//!   `charge`, `payment_intent` and `paid` were removed (kept here as legacy
//!   columns, NULL for new shapes);
//! - a line item's / invoice item's `price` went to `pricing.price_details.price`,
//!   its `subscription_item`, `invoice_item` and `proration` under `parent.*_details`.

use super::{ChildSpec, Column, Kind::*, ObjectSpec, col, col_at};

const SUBSCRIPTION_ITEM_COLUMNS: &[Column] = &[
    col("price", Ref),
    // Legacy plan object; since prices, a plan with the price's id.
    col("plan", Ref),
    col_at("product", Ref, &[&["price", "product"], &["plan", "product"]]),
    col("quantity", BigInt),
    // On items since 2025-03-31.basil; older shapes have it on the subscription only.
    col("current_period_start", Timestamp),
    col("current_period_end", Timestamp),
    col("metadata", Jsonb),
    col("created", Timestamp),
];

pub const SUBSCRIPTION_ITEMS: ChildSpec = ChildSpec {
    table: "subscription_items",
    list: "items",
    parent_column: "subscription",
    columns: SUBSCRIPTION_ITEM_COLUMNS,
};

pub const SUBSCRIPTION: ObjectSpec = ObjectSpec {
    object: "subscription",
    key: "id",
    table: "subscriptions",
    columns: &[
        col("customer", Ref),
        col("status", Text),
        col("currency", Text),
        col("collection_method", Text),
        col("cancel_at_period_end", Bool),
        col("cancel_at", Timestamp),
        col("canceled_at", Timestamp),
        col("ended_at", Timestamp),
        col("start_date", Timestamp),
        col("trial_start", Timestamp),
        col("trial_end", Timestamp),
        // Since 2025-03-31.basil the period lives on each item; the first item's is shown.
        col_at(
            "current_period_start",
            Timestamp,
            &[&["items", "data", "0", "current_period_start"], &["current_period_start"]],
        ),
        col_at(
            "current_period_end",
            Timestamp,
            &[&["items", "data", "0", "current_period_end"], &["current_period_end"]],
        ),
        col("latest_invoice", Ref),
        col("default_payment_method", Ref),
        col("schedule", Ref),
        col("test_clock", Ref),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
        col_at("billing_mode", Text, &[&["billing_mode", "type"]]),
        col("billing_cycle_anchor", Timestamp),
        col_at("cancellation_reason", Text, &[&["cancellation_details", "reason"]]),
        col_at("cancellation_feedback", Text, &[&["cancellation_details", "feedback"]]),
        col("pause_collection", Jsonb),
        col("days_until_due", BigInt),
        col("trial_settings", Jsonb),
        col("description", Text),
    ],
    children: &[SUBSCRIPTION_ITEMS],
};

const LINE_ITEM_COLUMNS: &[Column] = &[
    col("amount", BigInt),
    col("currency", Text),
    col("description", Text),
    col("quantity", BigInt),
    // Still top-level at 2026-07-29.dahlia; also under `parent.*_details` since basil.
    col_at(
        "subscription",
        Ref,
        &[
            &["subscription"],
            &["parent", "subscription_item_details", "subscription"],
            &["parent", "invoice_item_details", "subscription"],
        ],
    ),
    col_at(
        "subscription_item",
        Ref,
        &[&["parent", "subscription_item_details", "subscription_item"], &["subscription_item"]],
    ),
    col_at(
        "invoice_item",
        Ref,
        &[&["parent", "invoice_item_details", "invoice_item"], &["invoice_item"]],
    ),
    col_at("price", Ref, &[&["pricing", "price_details", "price"], &["price"]]),
    col_at(
        "product",
        Ref,
        &[&["pricing", "price_details", "product"], &["price", "product"], &["plan", "product"]],
    ),
    col_at(
        "proration",
        Bool,
        &[
            &["parent", "subscription_item_details", "proration"],
            &["parent", "invoice_item_details", "proration"],
            &["proration"],
        ],
    ),
    col_at("period_start", Timestamp, &[&["period", "start"]]),
    col_at("period_end", Timestamp, &[&["period", "end"]]),
    col("metadata", Jsonb),
    col("livemode", Bool),
    // 0.8.0
    col("subtotal", BigInt),
    col("discountable", Bool),
    col_at("parent_type", Text, &[&["parent", "type"]]),
];

pub const INVOICE_LINE_ITEMS: ChildSpec = ChildSpec {
    table: "invoice_line_items",
    list: "lines",
    parent_column: "invoice",
    columns: LINE_ITEM_COLUMNS,
};

pub const INVOICE: ObjectSpec = ObjectSpec {
    object: "invoice",
    key: "id",
    table: "invoices",
    columns: &[
        col("customer", Ref),
        col_at(
            "subscription",
            Ref,
            &[&["parent", "subscription_details", "subscription"], &["subscription"]],
        ),
        col("status", Text),
        col("billing_reason", Text),
        col("collection_method", Text),
        col("currency", Text),
        col("amount_due", BigInt),
        col("amount_paid", BigInt),
        col("amount_remaining", BigInt),
        col("subtotal", BigInt),
        col("total", BigInt),
        col("number", Text),
        col("hosted_invoice_url", Text),
        col("attempt_count", BigInt),
        col("due_date", Timestamp),
        col("period_start", Timestamp),
        col("period_end", Timestamp),
        col_at("paid_at", Timestamp, &[&["status_transitions", "paid_at"]]),
        // Removed in 2025-03-31.basil (payments moved to invoice payments).
        col("charge", Ref),
        col("payment_intent", Ref),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
        col_at("parent_type", Text, &[&["parent", "type"]]),
        col_at("quote", Ref, &[&["parent", "quote_details", "quote"]]),
        col("total_taxes", Jsonb),
        col("total_excluding_tax", BigInt),
        col("subtotal_excluding_tax", BigInt),
        col("starting_balance", BigInt),
        col("ending_balance", BigInt),
        col("amount_overpaid", BigInt),
        col("amount_paid_off_stripe", BigInt),
        col("amount_shipping", BigInt),
        col_at("finalized_at", Timestamp, &[&["status_transitions", "finalized_at"]]),
        col_at("voided_at", Timestamp, &[&["status_transitions", "voided_at"]]),
        col_at(
            "marked_uncollectible_at",
            Timestamp,
            &[&["status_transitions", "marked_uncollectible_at"]],
        ),
        col("effective_at", Timestamp),
        col("next_payment_attempt", Timestamp),
        col("invoice_pdf", Text),
    ],
    children: &[INVOICE_LINE_ITEMS],
};

pub const INVOICE_ITEM: ObjectSpec = ObjectSpec {
    object: "invoiceitem",
    key: "id",
    table: "invoice_items",
    columns: &[
        col("customer", Ref),
        col("invoice", Ref),
        col_at(
            "subscription",
            Ref,
            &[&["parent", "subscription_details", "subscription"], &["subscription"]],
        ),
        col_at(
            "subscription_item",
            Ref,
            &[&["parent", "subscription_details", "subscription_item"], &["subscription_item"]],
        ),
        col_at("price", Ref, &[&["pricing", "price_details", "price"], &["price"]]),
        col_at(
            "product",
            Ref,
            &[
                &["pricing", "price_details", "product"],
                &["price", "product"],
                &["plan", "product"],
            ],
        ),
        col("amount", BigInt),
        col("currency", Text),
        col("quantity", BigInt),
        col("description", Text),
        col("proration", Bool),
        col("discountable", Bool),
        col("date", Timestamp),
        col_at("period_start", Timestamp, &[&["period", "start"]]),
        col_at("period_end", Timestamp, &[&["period", "end"]]),
        col("test_clock", Ref),
        col("metadata", Jsonb),
        col("livemode", Bool),
        // 0.8.0
        col("customer_account", Ref),
    ],
    children: &[],
};

pub const CREDIT_NOTE: ObjectSpec = ObjectSpec {
    object: "credit_note",
    key: "id",
    table: "credit_notes",
    columns: &[
        col("customer", Ref),
        col("invoice", Ref),
        col("number", Text),
        col("status", Text),
        col("type", Text),
        col("reason", Text),
        col("currency", Text),
        col("amount", BigInt),
        col("subtotal", BigInt),
        col("total", BigInt),
        col("discount_amount", BigInt),
        col("out_of_band_amount", BigInt),
        col("memo", Text),
        col("effective_at", Timestamp),
        col("voided_at", Timestamp),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
        col("total_taxes", Jsonb),
        col("total_excluding_tax", BigInt),
        col("pdf", Text),
    ],
    children: &[super::ledger::CREDIT_NOTE_LINE_ITEMS],
};

pub const SUBSCRIPTION_SCHEDULE: ObjectSpec = ObjectSpec {
    object: "subscription_schedule",
    key: "id",
    table: "subscription_schedules",
    columns: &[
        col("customer", Ref),
        col("subscription", Ref),
        col("status", Text),
        col("end_behavior", Text),
        col_at("current_phase_start", Timestamp, &[&["current_phase", "start_date"]]),
        col_at("current_phase_end", Timestamp, &[&["current_phase", "end_date"]]),
        col("phases", Jsonb),
        col("released_subscription", Ref),
        col("canceled_at", Timestamp),
        col("completed_at", Timestamp),
        col("released_at", Timestamp),
        col("test_clock", Ref),
        col("metadata", Jsonb),
        col("livemode", Bool),
        col("created", Timestamp),
        // 0.8.0
        col("customer_account", Ref),
    ],
    children: &[],
};
