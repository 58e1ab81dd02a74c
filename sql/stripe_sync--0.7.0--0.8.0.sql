-- stripe_sync 0.7.0 -> 0.8.0: the money ledger and Stripe's current shapes.
--   * New mirrored types, each keyed by (account, id) like every synced table
--     since 0.7.0: balance transactions, payouts, transfers (with their
--     reversals), application fees (with their refunds), invoice payments,
--     customer balance transactions, promotion codes, tax rates, quotes,
--     Radar reviews, billing meters, entitlement features, and the lines of
--     credit notes.
--   * Columns finance and billing users ask for on existing tables, read from
--     the 2026-07-29.dahlia shapes; existing rows get them from their stored
--     data (stripe_sync._refill_columns), without asking Stripe again.
--   * stripe_sync.balance_by_month and stripe_sync.invoice_money: what an
--     account earned, paid and was paid, per month; an invoice's money.
-- Run by ALTER EXTENSION stripe_sync UPDATE and, last, by a fresh install.

------------------------------------------------------------------------------
-- Recomputing added columns from the stored objects
------------------------------------------------------------------------------
CREATE FUNCTION stripe_sync._refill_columns(table_name text, columns text[])
RETURNS bigint
LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', '_refill_columns_wrapper';
COMMENT ON FUNCTION stripe_sync._refill_columns(text, text[]) IS
  'Recomputes the named typed columns of a mirrored table from each row''s data, as the apply would write them; for the upgrade scripts that add columns. Returns the rows updated.';
REVOKE ALL ON FUNCTION stripe_sync._refill_columns(text, text[]) FROM PUBLIC;

CREATE FUNCTION stripe_sync._refill_children(parent_table text)
RETURNS bigint
LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', '_refill_children_wrapper';
COMMENT ON FUNCTION stripe_sync._refill_children(text) IS
  'Writes the child rows of every row of a mirrored table from the lists its stored objects embed, keeping rows already there; for the upgrade scripts that add a child table. Returns the rows written.';
REVOKE ALL ON FUNCTION stripe_sync._refill_children(text) FROM PUBLIC;

------------------------------------------------------------------------------
-- New mirrored tables (docs/schema.md describes every column)
------------------------------------------------------------------------------
-- balance_transactions (object balance_transaction)
CREATE TABLE stripe_sync.balance_transactions (
    id                 text NOT NULL,
    source             text,
    type               text,
    reporting_category text,
    status             text,
    amount             bigint,
    fee                bigint,
    net                bigint,
    currency           text,
    exchange_rate      numeric,
    fee_details        jsonb,
    balance_type       text,
    available_on       timestamptz,
    description        text,
    created            timestamptz,
    data               jsonb NOT NULL,
    _account_id        text NOT NULL DEFAULT '',
    _last_event_at     timestamptz,
    _last_event_type   text,
    _last_event_id     text,
    _deleted           boolean NOT NULL DEFAULT false,
    _synced_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX balance_transactions_source_idx ON stripe_sync.balance_transactions (source, _account_id);
COMMENT ON TABLE stripe_sync.balance_transactions IS 'Stripe balance transactions (txn_...): every movement of the account''s balance, with its fee and net. Stripe sends no events for them: backfill lists them, and catch_up lists those created since its last run and re-reads the pending ones.';
COMMENT ON COLUMN stripe_sync.balance_transactions.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.balance_transactions.fee IS 'Stripe fee in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.balance_transactions.net IS 'Net amount (amount less fee) in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.balance_transactions.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.balance_transactions._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.balance_transactions._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.balance_transactions._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.balance_transactions', '');

-- payouts (object payout)
CREATE TABLE stripe_sync.payouts (
    id                          text NOT NULL,
    status                      text,
    type                        text,
    method                      text,
    amount                      bigint,
    currency                    text,
    arrival_date                timestamptz,
    automatic                   boolean,
    balance_transaction         text,
    failure_balance_transaction text,
    destination                 text,
    original_payout             text,
    reversed_by                 text,
    failure_code                text,
    failure_message             text,
    reconciliation_status       text,
    source_type                 text,
    statement_descriptor        text,
    application_fee_amount      bigint,
    description                 text,
    metadata                    jsonb,
    livemode                    boolean,
    created                     timestamptz,
    data                        jsonb NOT NULL,
    _account_id                 text NOT NULL DEFAULT '',
    _last_event_at              timestamptz,
    _last_event_type            text,
    _last_event_id              text,
    _deleted                    boolean NOT NULL DEFAULT false,
    _synced_at                  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX payouts_balance_transaction_idx ON stripe_sync.payouts (balance_transaction, _account_id);
COMMENT ON TABLE stripe_sync.payouts IS 'Stripe payouts (po_...) to the account''s bank or card, from payout.* events.';
COMMENT ON COLUMN stripe_sync.payouts.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.payouts.application_fee_amount IS 'Application fee in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.payouts.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.payouts._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.payouts._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.payouts._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.payouts', '');

-- transfers (object transfer)
CREATE TABLE stripe_sync.transfers (
    id                  text NOT NULL,
    destination         text,
    destination_payment text,
    amount              bigint,
    amount_reversed     bigint,
    currency            text,
    reversed            boolean,
    balance_transaction text,
    source_transaction  text,
    source_type         text,
    transfer_group      text,
    description         text,
    metadata            jsonb,
    livemode            boolean,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text NOT NULL DEFAULT '',
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now(),
    _children_complete  boolean GENERATED ALWAYS AS (NOT coalesce((data->'reversals'->>'has_more')::boolean, false)) STORED,
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX transfers_destination_idx ON stripe_sync.transfers (destination, _account_id);
COMMENT ON TABLE stripe_sync.transfers IS 'Stripe Connect transfers (tr_...) to connected accounts, from transfer.* events.';
COMMENT ON COLUMN stripe_sync.transfers.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.transfers.amount_reversed IS 'Amount reversed in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.transfers.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.transfers._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.transfers._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.transfers._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.transfers', '');

-- transfer_reversals (child of transfers)
CREATE TABLE stripe_sync.transfer_reversals (
    id                         text NOT NULL,
    transfer                   text NOT NULL,
    amount                     bigint,
    currency                   text,
    balance_transaction        text,
    destination_payment_refund text,
    source_refund              text,
    metadata                   jsonb,
    created                    timestamptz,
    data                       jsonb NOT NULL,
    _account_id                text NOT NULL DEFAULT '',
    _synced_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX transfer_reversals_transfer_idx ON stripe_sync.transfer_reversals (transfer, _account_id);
COMMENT ON TABLE stripe_sync.transfer_reversals IS 'Reversals of a transfer (trr_...), from the transfer''s embedded reversals list; replaced whenever the transfer is written.';
COMMENT ON COLUMN stripe_sync.transfer_reversals.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.transfer_reversals.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.transfer_reversals._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.transfer_reversals', '');

-- application_fees (object application_fee)
CREATE TABLE stripe_sync.application_fees (
    id                      text NOT NULL,
    account                 text,
    application             text,
    charge                  text,
    originating_transaction text,
    balance_transaction     text,
    amount                  bigint,
    amount_refunded         bigint,
    currency                text,
    refunded                boolean,
    livemode                boolean,
    created                 timestamptz,
    data                    jsonb NOT NULL,
    _account_id             text NOT NULL DEFAULT '',
    _last_event_at          timestamptz,
    _last_event_type        text,
    _last_event_id          text,
    _deleted                boolean NOT NULL DEFAULT false,
    _synced_at              timestamptz NOT NULL DEFAULT now(),
    _children_complete      boolean GENERATED ALWAYS AS (NOT coalesce((data->'refunds'->>'has_more')::boolean, false)) STORED,
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX application_fees_charge_idx ON stripe_sync.application_fees (charge);
CREATE INDEX application_fees_account_idx ON stripe_sync.application_fees (account, _account_id);
COMMENT ON TABLE stripe_sync.application_fees IS 'Stripe Connect application fees (fee_...) collected on connected accounts'' charges, from application_fee.* events.';
COMMENT ON COLUMN stripe_sync.application_fees.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.application_fees.amount_refunded IS 'Amount refunded in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.application_fees.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.application_fees._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.application_fees._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.application_fees._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.application_fees', '');

-- application_fee_refunds (child of application_fees)
CREATE TABLE stripe_sync.application_fee_refunds (
    id                  text NOT NULL,
    fee                 text NOT NULL,
    amount              bigint,
    currency            text,
    balance_transaction text,
    metadata            jsonb,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text NOT NULL DEFAULT '',
    _synced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX application_fee_refunds_fee_idx ON stripe_sync.application_fee_refunds (fee, _account_id);
COMMENT ON TABLE stripe_sync.application_fee_refunds IS 'Refunds of an application fee (fr_...), from the fee''s embedded refunds list; replaced whenever the fee is written.';
COMMENT ON COLUMN stripe_sync.application_fee_refunds.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.application_fee_refunds.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.application_fee_refunds._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.application_fee_refunds', '');

-- invoice_payments (object invoice_payment)
CREATE TABLE stripe_sync.invoice_payments (
    id               text NOT NULL,
    invoice          text,
    is_default       boolean,
    status           text,
    amount_paid      bigint,
    amount_requested bigint,
    currency         text,
    payment_type     text,
    payment_intent   text,
    charge           text,
    paid_at          timestamptz,
    canceled_at      timestamptz,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text NOT NULL DEFAULT '',
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX invoice_payments_invoice_idx ON stripe_sync.invoice_payments (invoice);
CREATE INDEX invoice_payments_payment_intent_idx ON stripe_sync.invoice_payments (payment_intent);
CREATE INDEX invoice_payments_charge_idx ON stripe_sync.invoice_payments (charge);
COMMENT ON TABLE stripe_sync.invoice_payments IS 'Payments of invoices (inpay_...), from invoice_payment.* events: since 2025-03-31.basil the only link from an invoice to the payment intent or charge that paid it.';
COMMENT ON COLUMN stripe_sync.invoice_payments.amount_paid IS 'Amount paid in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoice_payments.amount_requested IS 'Amount requested in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoice_payments.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.invoice_payments._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.invoice_payments._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.invoice_payments._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.invoice_payments', '');

-- customer_balance_transactions (object customer_balance_transaction)
CREATE TABLE stripe_sync.customer_balance_transactions (
    id               text NOT NULL,
    customer         text,
    customer_account text,
    type             text,
    amount           bigint,
    ending_balance   bigint,
    currency         text,
    credit_note      text,
    invoice          text,
    checkout_session text,
    description      text,
    metadata         jsonb,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text NOT NULL DEFAULT '',
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX customer_balance_transactions_customer_idx ON stripe_sync.customer_balance_transactions (customer);
CREATE INDEX customer_balance_transactions_invoice_idx ON stripe_sync.customer_balance_transactions (invoice);
COMMENT ON TABLE stripe_sync.customer_balance_transactions IS 'Changes to a customer''s credit balance (cbtxn_...), listed per customer by backfill.';
COMMENT ON COLUMN stripe_sync.customer_balance_transactions.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.customer_balance_transactions.ending_balance IS 'Customer balance after this transaction in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.customer_balance_transactions.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.customer_balance_transactions._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.customer_balance_transactions._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.customer_balance_transactions._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.customer_balance_transactions', '');

-- promotion_codes (object promotion_code)
CREATE TABLE stripe_sync.promotion_codes (
    id               text NOT NULL,
    code             text,
    active           boolean,
    coupon           text,
    customer         text,
    customer_account text,
    expires_at       timestamptz,
    max_redemptions  bigint,
    times_redeemed   bigint,
    restrictions     jsonb,
    metadata         jsonb,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text NOT NULL DEFAULT '',
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX promotion_codes_customer_idx ON stripe_sync.promotion_codes (customer);
COMMENT ON TABLE stripe_sync.promotion_codes IS 'Stripe promotion codes (promo_...) of coupons, from promotion_code.* events.';
COMMENT ON COLUMN stripe_sync.promotion_codes.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.promotion_codes._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.promotion_codes._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.promotion_codes._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.promotion_codes', '');

-- tax_rates (object tax_rate)
CREATE TABLE stripe_sync.tax_rates (
    id                   text NOT NULL,
    display_name         text,
    description          text,
    percentage           numeric,
    effective_percentage numeric,
    inclusive            boolean,
    active               boolean,
    country              text,
    state                text,
    jurisdiction         text,
    jurisdiction_level   text,
    tax_type             text,
    rate_type            text,
    metadata             jsonb,
    livemode             boolean,
    created              timestamptz,
    data                 jsonb NOT NULL,
    _account_id          text NOT NULL DEFAULT '',
    _last_event_at       timestamptz,
    _last_event_type     text,
    _last_event_id       text,
    _deleted             boolean NOT NULL DEFAULT false,
    _synced_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
COMMENT ON TABLE stripe_sync.tax_rates IS 'Stripe tax rates (txr_...), from tax_rate.* events.';
COMMENT ON COLUMN stripe_sync.tax_rates.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.tax_rates._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.tax_rates._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.tax_rates._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.tax_rates', '');

-- quotes (object quote)
CREATE TABLE stripe_sync.quotes (
    id                    text NOT NULL,
    customer              text,
    customer_account      text,
    status                text,
    number                text,
    currency              text,
    amount_subtotal       bigint,
    amount_total          bigint,
    collection_method     text,
    expires_at            timestamptz,
    invoice               text,
    subscription          text,
    subscription_schedule text,
    accepted_at           timestamptz,
    canceled_at           timestamptz,
    finalized_at          timestamptz,
    description           text,
    metadata              jsonb,
    livemode              boolean,
    created               timestamptz,
    data                  jsonb NOT NULL,
    _account_id           text NOT NULL DEFAULT '',
    _last_event_at        timestamptz,
    _last_event_type      text,
    _last_event_id        text,
    _deleted              boolean NOT NULL DEFAULT false,
    _synced_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX quotes_customer_idx ON stripe_sync.quotes (customer);
CREATE INDEX quotes_invoice_idx ON stripe_sync.quotes (invoice);
CREATE INDEX quotes_subscription_idx ON stripe_sync.quotes (subscription);
COMMENT ON TABLE stripe_sync.quotes IS 'Stripe quotes (qt_...), from quote.* events.';
COMMENT ON COLUMN stripe_sync.quotes.amount_subtotal IS 'Subtotal in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.quotes.amount_total IS 'Total in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.quotes.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.quotes._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.quotes._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.quotes._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.quotes', '');

-- reviews (object review)
CREATE TABLE stripe_sync.reviews (
    id               text NOT NULL,
    charge           text,
    open             boolean,
    opened_reason    text,
    closed_reason    text,
    reason           text,
    billing_zip      text,
    ip_address       text,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text NOT NULL DEFAULT '',
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX reviews_charge_idx ON stripe_sync.reviews (charge);
COMMENT ON TABLE stripe_sync.reviews IS 'Radar reviews (prv_...) of payments, from review.* events.';
COMMENT ON COLUMN stripe_sync.reviews.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.reviews._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.reviews._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.reviews._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.reviews', '');

-- billing_meters (object billing.meter)
CREATE TABLE stripe_sync.billing_meters (
    id                  text NOT NULL,
    display_name        text,
    event_name          text,
    status              text,
    event_time_window   text,
    default_aggregation text,
    customer_mapping    jsonb,
    value_settings      jsonb,
    deactivated_at      timestamptz,
    updated             timestamptz,
    livemode            boolean,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text NOT NULL DEFAULT '',
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
COMMENT ON TABLE stripe_sync.billing_meters IS 'Billing meters (mtr_...) of usage-based prices, from billing.meter.* events.';
COMMENT ON COLUMN stripe_sync.billing_meters.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.billing_meters._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.billing_meters._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.billing_meters._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.billing_meters', '');

-- entitlement_features (object entitlements.feature)
CREATE TABLE stripe_sync.entitlement_features (
    id               text NOT NULL,
    name             text,
    lookup_key       text,
    active           boolean,
    metadata         jsonb,
    livemode         boolean,
    data             jsonb NOT NULL,
    _account_id      text NOT NULL DEFAULT '',
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
COMMENT ON TABLE stripe_sync.entitlement_features IS 'Entitlement features (feat_...) that products grant, listed by backfill.';
COMMENT ON COLUMN stripe_sync.entitlement_features.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.entitlement_features._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.entitlement_features._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.entitlement_features._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.entitlement_features', '');

-- credit_note_line_items (child of credit_notes)
CREATE TABLE stripe_sync.credit_note_line_items (
    id                  text NOT NULL,
    credit_note         text NOT NULL,
    type                text,
    invoice_line_item   text,
    amount              bigint,
    discount_amount     bigint,
    quantity            bigint,
    unit_amount         bigint,
    unit_amount_decimal numeric,
    description         text,
    livemode            boolean,
    data                jsonb NOT NULL,
    _account_id         text NOT NULL DEFAULT '',
    _synced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX credit_note_line_items_credit_note_idx ON stripe_sync.credit_note_line_items (credit_note, _account_id);
COMMENT ON TABLE stripe_sync.credit_note_line_items IS 'Lines of a credit note (cnli_...), from the credit note''s embedded lines list; replaced whenever the credit note is written.';
COMMENT ON COLUMN stripe_sync.credit_note_line_items.amount IS 'Amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_note_line_items.discount_amount IS 'Discount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_note_line_items.unit_amount IS 'Unit amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_note_line_items.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.credit_note_line_items._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.credit_note_line_items', '');

------------------------------------------------------------------------------
-- New columns of existing tables, filled from the rows' stored objects
------------------------------------------------------------------------------
-- A credit note's lines are mirrored as child rows from now on: the
-- generated column says whether its embedded list was complete.
-- charges
ALTER TABLE stripe_sync.charges ADD COLUMN payment_method_type text;
ALTER TABLE stripe_sync.charges ADD COLUMN card_brand text;
ALTER TABLE stripe_sync.charges ADD COLUMN card_last_four text;
ALTER TABLE stripe_sync.charges ADD COLUMN card_country text;
ALTER TABLE stripe_sync.charges ADD COLUMN outcome_network_status text;
ALTER TABLE stripe_sync.charges ADD COLUMN outcome_risk_level text;
ALTER TABLE stripe_sync.charges ADD COLUMN outcome_reason text;
ALTER TABLE stripe_sync.charges ADD COLUMN receipt_url text;
ALTER TABLE stripe_sync.charges ADD COLUMN application_fee_amount bigint;
ALTER TABLE stripe_sync.charges ADD COLUMN transfer_group text;
ALTER TABLE stripe_sync.charges ADD COLUMN on_behalf_of text;
COMMENT ON COLUMN stripe_sync.charges.application_fee_amount IS 'Application fee in the smallest currency unit (cents for usd, yen for jpy).';
SELECT stripe_sync._refill_columns('charges', ARRAY['payment_method_type', 'card_brand', 'card_last_four', 'card_country', 'outcome_network_status', 'outcome_risk_level', 'outcome_reason', 'receipt_url', 'application_fee_amount', 'transfer_group', 'on_behalf_of']);

-- refunds
ALTER TABLE stripe_sync.refunds ADD COLUMN customer_account text;
SELECT stripe_sync._refill_columns('refunds', ARRAY['customer_account']);

-- payment_intents
ALTER TABLE stripe_sync.payment_intents ADD COLUMN customer_account text;
ALTER TABLE stripe_sync.payment_intents ADD COLUMN payment_method_types jsonb;
ALTER TABLE stripe_sync.payment_intents ADD COLUMN application_fee_amount bigint;
ALTER TABLE stripe_sync.payment_intents ADD COLUMN on_behalf_of text;
COMMENT ON COLUMN stripe_sync.payment_intents.application_fee_amount IS 'Application fee in the smallest currency unit (cents for usd, yen for jpy).';
SELECT stripe_sync._refill_columns('payment_intents', ARRAY['customer_account', 'payment_method_types', 'application_fee_amount', 'on_behalf_of']);

-- payment_methods
ALTER TABLE stripe_sync.payment_methods ADD COLUMN customer_account text;
SELECT stripe_sync._refill_columns('payment_methods', ARRAY['customer_account']);

-- subscriptions
ALTER TABLE stripe_sync.subscriptions ADD COLUMN customer_account text;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN billing_mode text;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN billing_cycle_anchor timestamptz;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN cancellation_reason text;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN cancellation_feedback text;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN pause_collection jsonb;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN days_until_due bigint;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN trial_settings jsonb;
ALTER TABLE stripe_sync.subscriptions ADD COLUMN description text;
SELECT stripe_sync._refill_columns('subscriptions', ARRAY['customer_account', 'billing_mode', 'billing_cycle_anchor', 'cancellation_reason', 'cancellation_feedback', 'pause_collection', 'days_until_due', 'trial_settings', 'description']);

-- invoice_line_items
ALTER TABLE stripe_sync.invoice_line_items ADD COLUMN subtotal bigint;
ALTER TABLE stripe_sync.invoice_line_items ADD COLUMN discountable boolean;
ALTER TABLE stripe_sync.invoice_line_items ADD COLUMN parent_type text;
COMMENT ON COLUMN stripe_sync.invoice_line_items.subtotal IS 'Subtotal in the smallest currency unit (cents for usd, yen for jpy).';
SELECT stripe_sync._refill_columns('invoice_line_items', ARRAY['subtotal', 'discountable', 'parent_type']);

-- invoices
ALTER TABLE stripe_sync.invoices ADD COLUMN customer_account text;
ALTER TABLE stripe_sync.invoices ADD COLUMN parent_type text;
ALTER TABLE stripe_sync.invoices ADD COLUMN quote text;
ALTER TABLE stripe_sync.invoices ADD COLUMN total_taxes jsonb;
ALTER TABLE stripe_sync.invoices ADD COLUMN total_excluding_tax bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN subtotal_excluding_tax bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN starting_balance bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN ending_balance bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN amount_overpaid bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN amount_paid_off_stripe bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN amount_shipping bigint;
ALTER TABLE stripe_sync.invoices ADD COLUMN finalized_at timestamptz;
ALTER TABLE stripe_sync.invoices ADD COLUMN voided_at timestamptz;
ALTER TABLE stripe_sync.invoices ADD COLUMN effective_at timestamptz;
ALTER TABLE stripe_sync.invoices ADD COLUMN next_payment_attempt timestamptz;
ALTER TABLE stripe_sync.invoices ADD COLUMN invoice_pdf text;
ALTER TABLE stripe_sync.invoices ADD COLUMN marked_uncollectible_at timestamptz;
COMMENT ON COLUMN stripe_sync.invoices.total_excluding_tax IS 'Total excluding tax in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.subtotal_excluding_tax IS 'Subtotal excluding tax in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.starting_balance IS 'Customer balance applied before this invoice in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.ending_balance IS 'Customer balance after this transaction in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.amount_overpaid IS 'Amount paid beyond what was due in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.amount_paid_off_stripe IS 'Amount paid outside Stripe in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.amount_shipping IS 'Shipping in the smallest currency unit (cents for usd, yen for jpy).';
SELECT stripe_sync._refill_columns('invoices', ARRAY['customer_account', 'parent_type', 'quote', 'total_taxes', 'total_excluding_tax', 'subtotal_excluding_tax', 'starting_balance', 'ending_balance', 'amount_overpaid', 'amount_paid_off_stripe', 'amount_shipping', 'finalized_at', 'voided_at', 'effective_at', 'next_payment_attempt', 'invoice_pdf', 'marked_uncollectible_at']);

-- invoice_items
ALTER TABLE stripe_sync.invoice_items ADD COLUMN customer_account text;
SELECT stripe_sync._refill_columns('invoice_items', ARRAY['customer_account']);

-- credit_notes
ALTER TABLE stripe_sync.credit_notes ADD COLUMN customer_account text;
ALTER TABLE stripe_sync.credit_notes ADD COLUMN total_taxes jsonb;
ALTER TABLE stripe_sync.credit_notes ADD COLUMN total_excluding_tax bigint;
ALTER TABLE stripe_sync.credit_notes ADD COLUMN pdf text;
ALTER TABLE stripe_sync.credit_notes ADD COLUMN _children_complete boolean GENERATED ALWAYS AS (NOT coalesce((data->'lines'->>'has_more')::boolean, false)) STORED;
COMMENT ON COLUMN stripe_sync.credit_notes.total_excluding_tax IS 'Total excluding tax in the smallest currency unit (cents for usd, yen for jpy).';
SELECT stripe_sync._refill_columns('credit_notes', ARRAY['customer_account', 'total_taxes', 'total_excluding_tax', 'pdf']);

-- subscription_schedules
ALTER TABLE stripe_sync.subscription_schedules ADD COLUMN customer_account text;
SELECT stripe_sync._refill_columns('subscription_schedules', ARRAY['customer_account']);

-- checkout_sessions
ALTER TABLE stripe_sync.checkout_sessions ADD COLUMN customer_account text;
SELECT stripe_sync._refill_columns('checkout_sessions', ARRAY['customer_account']);

-- tax_ids
ALTER TABLE stripe_sync.tax_ids ADD COLUMN customer_account text;
SELECT stripe_sync._refill_columns('tax_ids', ARRAY['customer_account']);
SELECT stripe_sync._refill_children('credit_notes');

------------------------------------------------------------------------------
-- Events of the new types that the queue kept but skipped
------------------------------------------------------------------------------
-- Until now their object types were not mirrored: they were marked skipped.
-- The ones still kept (stripe_sync.event_retention) are queued again, so the
-- new tables start with everything the queue holds; a handler or alert that
-- already ran for one does not run again (handler_runs and alerts are keyed by
-- event).
UPDATE stripe_sync.events
   SET status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL
 WHERE status = 'skipped'
   AND object_type IN ('balance_transaction', 'payout', 'transfer', 'application_fee',
                       'invoice_payment', 'customer_balance_transaction', 'promotion_code',
                       'tax_rate', 'quote', 'review', 'billing.meter', 'entitlements.feature');

------------------------------------------------------------------------------
-- Answers for finance
------------------------------------------------------------------------------
-- What moved through the balance, per account, currency and month (UTC, by
-- the balance transaction's created time), by Stripe's reporting categories.
-- Payouts are kept apart from the activity they pay out; for every row
-- net = gross_charges + refunds + disputes - fees + other.
CREATE VIEW stripe_sync.balance_by_month AS
SELECT b._account_id,
       b.currency,
       date_trunc('month', b.created, 'UTC')::date AS month,
       coalesce(sum(b.amount) FILTER (WHERE b.reporting_category = 'charge'), 0)::bigint AS gross_charges,
       coalesce(sum(b.amount) FILTER (WHERE b.reporting_category IN ('refund', 'refund_failure')), 0)::bigint AS refunds,
       coalesce(sum(b.amount) FILTER (WHERE b.reporting_category IN ('dispute', 'dispute_reversal')), 0)::bigint AS disputes,
       (coalesce(sum(b.fee) FILTER (WHERE b.reporting_category NOT IN ('payout', 'payout_reversal')), 0)
         - coalesce(sum(b.amount) FILTER (WHERE b.reporting_category = 'fee'), 0))::bigint AS fees,
       coalesce(sum(b.amount) FILTER (WHERE b.reporting_category NOT IN
                  ('charge', 'refund', 'refund_failure', 'dispute', 'dispute_reversal', 'fee',
                   'payout', 'payout_reversal')), 0)::bigint AS other,
       coalesce(sum(b.net) FILTER (WHERE b.reporting_category NOT IN ('payout', 'payout_reversal')), 0)::bigint AS net,
       coalesce(sum(b.amount) FILTER (WHERE b.reporting_category IN ('payout', 'payout_reversal')), 0)::bigint AS payouts,
       count(*) AS balance_transactions
  FROM stripe_sync.balance_transactions b
 WHERE NOT b._deleted
 GROUP BY b._account_id, b.currency, date_trunc('month', b.created, 'UTC');
COMMENT ON VIEW stripe_sync.balance_by_month IS
  'Per account (_account_id '''': the platform), currency and month (UTC): gross charges, refunds and disputes (negative), Stripe fees (positive: those deducted from transactions plus those billed on their own, reporting_category fee), other movements (adjustments, transfers, ...), net activity and payouts (negative: money sent out), from stripe_sync.balance_transactions by reporting_category. net = gross_charges + refunds + disputes - fees + other. Amounts bigint in the smallest currency unit (stripe_sync.amount_decimal turns them into decimals).';

-- An invoice's money: each of its payments (Stripe's invoice_payment, the only
-- link since 2025-03-31.basil) with the charge that moved it and that
-- charge's balance transaction (fee, net), within the invoice's account.
CREATE VIEW stripe_sync.invoice_money AS
SELECT i._account_id,
       i.id AS invoice,
       i.customer,
       i.status AS invoice_status,
       i.currency,
       i.total,
       i.amount_paid AS invoice_amount_paid,
       p.id AS invoice_payment,
       p.status AS payment_status,
       p.is_default,
       p.amount_paid,
       p.paid_at,
       p.payment_type,
       p.payment_intent,
       coalesce(p.charge, pi.latest_charge) AS charge,
       ch.amount_refunded,
       bt.fee,
       bt.net,
       bt.status AS balance_status
  FROM stripe_sync.invoices i
  JOIN stripe_sync.invoice_payments p
    ON p._account_id = i._account_id AND p.invoice = i.id AND NOT p._deleted
  LEFT JOIN stripe_sync.payment_intents pi
    ON pi._account_id = p._account_id AND pi.id = p.payment_intent
  LEFT JOIN stripe_sync.charges ch
    ON ch._account_id = p._account_id AND ch.id = coalesce(p.charge, pi.latest_charge)
  LEFT JOIN stripe_sync.balance_transactions bt
    ON bt._account_id = ch._account_id AND bt.id = ch.balance_transaction
 WHERE NOT i._deleted;
COMMENT ON VIEW stripe_sync.invoice_money IS
  'Each payment of each invoice (stripe_sync.invoice_payments) with the payment intent, the charge that moved the money (the payment''s charge, or its payment intent''s latest charge), what was refunded of it, and the Stripe fee and net of its balance transaction, joined within the invoice''s account. The way from an invoice to its money since 2025-03-31.basil removed invoices.charge and invoices.payment_intent.';

------------------------------------------------------------------------------
-- Rows whose embedded child list arrived partial, to re-read (checked every
-- second), as for subscriptions and invoices since 0.7.0.
------------------------------------------------------------------------------
CREATE INDEX credit_notes_children_partial_idx ON stripe_sync.credit_notes (_account_id, id)
    WHERE NOT _children_complete AND NOT _deleted;
CREATE INDEX transfers_children_partial_idx ON stripe_sync.transfers (_account_id, id)
    WHERE NOT _children_complete AND NOT _deleted;
CREATE INDEX application_fees_children_partial_idx ON stripe_sync.application_fees (_account_id, id)
    WHERE NOT _children_complete AND NOT _deleted;
