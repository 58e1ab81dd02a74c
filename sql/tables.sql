-- stripe_sync schema, part 2: the synced tables, one per Stripe object type,
-- named by the plural of the object name, as released in 0.1.0 (0.7.0 keys every
-- table by (_account_id, id), _account_id '' for the platform and never NULL:
-- stripe_sync--0.6.0--0.7.0.sql). Every table has `id text primary key`,
-- typed columns named exactly as the Stripe fields (Unix times as timestamptz,
-- amounts as bigint in the smallest currency unit), `data jsonb` with the whole
-- object as last applied, and bookkeeping columns that start with `_`:
--   _account_id       connected account (Stripe Connect), NULL for the platform
--   _last_event_at    created time of the event that last wrote the row
--   _last_event_type  its type, _last_event_id its id (see docs/ordering.md)
--   _deleted          deleted in Stripe; the row stays as a tombstone
--   _synced_at        when the row was last written
-- Child tables (subscription_items, invoice_line_items) follow their parent:
-- they have _account_id and _synced_at only.
-- The typed columns must match crates/core/src/mapping (a #[pg_test] checks it).
-- Every table is registered with pg_extension_config_dump so pg_dump keeps its rows.

CREATE TABLE stripe_sync.customers (
    id               text PRIMARY KEY,
    email            text,
    name             text,
    description      text,
    phone            text,
    currency         text,
    balance          bigint,
    delinquent       boolean,
    default_source   text,
    invoice_prefix   text,
    tax_exempt       text,
    address          jsonb,
    metadata         jsonb,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text,
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customers_email_idx ON stripe_sync.customers (email);

COMMENT ON TABLE stripe_sync.customers IS 'Stripe customers (cus_...), as last applied from events.';
COMMENT ON COLUMN stripe_sync.customers.balance IS 'Customer balance in the smallest unit of currency (negative: credit).';
COMMENT ON COLUMN stripe_sync.customers.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.customers._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.customers._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.customers._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.customers._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.customers._deleted IS 'The customer was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.customers._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.customers', '');

------------------------------------------------------------------------------
-- products (object product)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.products (
    id                   text PRIMARY KEY,
    name                 text,
    description          text,
    active               boolean,
    type                 text,
    default_price        text,
    unit_label           text,
    statement_descriptor text,
    tax_code             text,
    shippable            boolean,
    url                  text,
    metadata             jsonb,
    livemode             boolean,
    created              timestamptz,
    updated              timestamptz,
    data                 jsonb NOT NULL,
    _account_id          text,
    _last_event_at       timestamptz,
    _last_event_type     text,
    _last_event_id       text,
    _deleted             boolean NOT NULL DEFAULT false,
    _synced_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_default_price_idx ON stripe_sync.products (default_price);

COMMENT ON TABLE stripe_sync.products IS 'Stripe products (prod_...): what is sold; prices and plans point at them.';
COMMENT ON COLUMN stripe_sync.products.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.products._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.products._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.products._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.products._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.products._deleted IS 'The product was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.products._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.products', '');

------------------------------------------------------------------------------
-- prices (object price)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.prices (
    id                       text PRIMARY KEY,
    product                  text,
    active                   boolean,
    currency                 text,
    unit_amount              bigint,
    unit_amount_decimal      text,
    type                     text,
    billing_scheme           text,
    recurring_interval       text,
    recurring_interval_count bigint,
    recurring_usage_type     text,
    lookup_key               text,
    nickname                 text,
    tax_behavior             text,
    tiers_mode               text,
    metadata                 jsonb,
    livemode                 boolean,
    created                  timestamptz,
    data                     jsonb NOT NULL,
    _account_id              text,
    _last_event_at           timestamptz,
    _last_event_type         text,
    _last_event_id           text,
    _deleted                 boolean NOT NULL DEFAULT false,
    _synced_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prices_product_idx ON stripe_sync.prices (product);

COMMENT ON TABLE stripe_sync.prices IS 'Stripe prices (price_...): unit cost, currency and (for recurring prices) billing interval of a product.';
COMMENT ON COLUMN stripe_sync.prices.unit_amount IS 'Price per unit in the smallest currency unit (cents for usd, yen for jpy); NULL for tiered or custom-amount prices.';
COMMENT ON COLUMN stripe_sync.prices.unit_amount_decimal IS 'Price per unit as a decimal string with sub-unit precision (cast with ::numeric).';
COMMENT ON COLUMN stripe_sync.prices.recurring_interval IS 'recurring.interval: day, week, month or year; NULL for one-time prices.';
COMMENT ON COLUMN stripe_sync.prices.recurring_interval_count IS 'recurring.interval_count: number of intervals between bills (3 with month = quarterly).';
COMMENT ON COLUMN stripe_sync.prices.recurring_usage_type IS 'recurring.usage_type: licensed or metered.';
COMMENT ON COLUMN stripe_sync.prices.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.prices._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.prices._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.prices._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.prices._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.prices._deleted IS 'The price was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.prices._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.prices', '');

------------------------------------------------------------------------------
-- plans (object plan)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.plans (
    id                text PRIMARY KEY,
    product           text,
    active            boolean,
    currency          text,
    amount            bigint,
    amount_decimal    text,
    interval          text,
    interval_count    bigint,
    usage_type        text,
    billing_scheme    text,
    tiers_mode        text,
    nickname          text,
    trial_period_days bigint,
    metadata          jsonb,
    livemode          boolean,
    created           timestamptz,
    data              jsonb NOT NULL,
    _account_id       text,
    _last_event_at    timestamptz,
    _last_event_type  text,
    _last_event_id    text,
    _deleted          boolean NOT NULL DEFAULT false,
    _synced_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plans_product_idx ON stripe_sync.plans (product);

COMMENT ON TABLE stripe_sync.plans IS 'Stripe plans (legacy predecessor of prices; a price-based subscription item also carries a plan with the price id).';
COMMENT ON COLUMN stripe_sync.plans.amount IS 'Price per unit in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.plans.interval IS 'day, week, month or year; a plan bills every interval_count intervals.';
COMMENT ON COLUMN stripe_sync.plans.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.plans._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.plans._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.plans._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.plans._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.plans._deleted IS 'The plan was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.plans._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.plans', '');

------------------------------------------------------------------------------
-- coupons (object coupon)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.coupons (
    id                 text PRIMARY KEY,
    name               text,
    amount_off         bigint,
    percent_off        numeric,
    currency           text,
    duration           text,
    duration_in_months bigint,
    max_redemptions    bigint,
    times_redeemed     bigint,
    redeem_by          timestamptz,
    valid              boolean,
    metadata           jsonb,
    livemode           boolean,
    created            timestamptz,
    data               jsonb NOT NULL,
    _account_id        text,
    _last_event_at     timestamptz,
    _last_event_type   text,
    _last_event_id     text,
    _deleted           boolean NOT NULL DEFAULT false,
    _synced_at         timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE stripe_sync.coupons IS 'Stripe coupons: a percent or fixed amount off, applied through discounts.';
COMMENT ON COLUMN stripe_sync.coupons.amount_off IS 'Fixed amount off in the smallest currency unit (cents for usd, yen for jpy), in the coupon currency.';
COMMENT ON COLUMN stripe_sync.coupons.percent_off IS 'Percent off, e.g. 25.5 (a number with a fraction, not an amount).';
COMMENT ON COLUMN stripe_sync.coupons.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.coupons._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.coupons._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.coupons._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.coupons._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.coupons._deleted IS 'The coupon was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.coupons._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.coupons', '');

------------------------------------------------------------------------------
-- subscriptions (object subscription)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.subscriptions (
    id                     text PRIMARY KEY,
    customer               text,
    status                 text,
    currency               text,
    collection_method      text,
    cancel_at_period_end   boolean,
    cancel_at              timestamptz,
    canceled_at            timestamptz,
    ended_at               timestamptz,
    start_date             timestamptz,
    trial_start            timestamptz,
    trial_end              timestamptz,
    current_period_start   timestamptz,
    current_period_end     timestamptz,
    latest_invoice         text,
    default_payment_method text,
    schedule               text,
    test_clock             text,
    metadata               jsonb,
    livemode               boolean,
    created                timestamptz,
    data                   jsonb NOT NULL,
    _account_id            text,
    _last_event_at         timestamptz,
    _last_event_type       text,
    _last_event_id         text,
    _deleted               boolean NOT NULL DEFAULT false,
    _synced_at             timestamptz NOT NULL DEFAULT now(),
    _children_complete     boolean GENERATED ALWAYS AS (NOT coalesce((data->'items'->>'has_more')::boolean, false)) STORED
);
CREATE INDEX subscriptions_customer_idx ON stripe_sync.subscriptions (customer);
CREATE INDEX subscriptions_latest_invoice_idx ON stripe_sync.subscriptions (latest_invoice);
CREATE INDEX subscriptions_default_payment_method_idx ON stripe_sync.subscriptions (default_payment_method);
CREATE INDEX subscriptions_schedule_idx ON stripe_sync.subscriptions (schedule);

COMMENT ON TABLE stripe_sync.subscriptions IS 'Stripe subscriptions (sub_...), from customer.subscription.* events. customer.subscription.deleted means canceled (status), not deleted.';
COMMENT ON COLUMN stripe_sync.subscriptions.cancel_at_period_end IS 'The subscription ends (status canceled) at current_period_end.';
COMMENT ON COLUMN stripe_sync.subscriptions.current_period_start IS 'Start of the current period: since API 2025-03-31.basil taken from the first item (items carry the period), before that from the subscription.';
COMMENT ON COLUMN stripe_sync.subscriptions.current_period_end IS 'End of the current period: since API 2025-03-31.basil taken from the first item, before that from the subscription.';
COMMENT ON COLUMN stripe_sync.subscriptions.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.subscriptions._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.subscriptions._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.subscriptions._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.subscriptions._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.subscriptions._deleted IS 'The subscription was deleted in Stripe; the row is kept as a tombstone that no older event revives. (customer.subscription.deleted only cancels: see status.)';
COMMENT ON COLUMN stripe_sync.subscriptions._synced_at IS 'When this row was last written.';
COMMENT ON COLUMN stripe_sync.subscriptions._children_complete IS
  'False when the embedded items list was partial (has_more): stripe_sync.subscription_items then holds only the listed rows, and the API completes them when stripe_sync.api_key is configured.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.subscriptions', '');

------------------------------------------------------------------------------
-- subscription_items (child of subscriptions via its items list)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.subscription_items (
    id                   text PRIMARY KEY,
    subscription         text NOT NULL,
    price                text,
    plan                 text,
    product              text,
    quantity             bigint,
    current_period_start timestamptz,
    current_period_end   timestamptz,
    metadata             jsonb,
    created              timestamptz,
    data                 jsonb NOT NULL,
    _account_id          text,
    _synced_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_items_subscription_idx ON stripe_sync.subscription_items (subscription);
CREATE INDEX subscription_items_price_idx ON stripe_sync.subscription_items (price);
CREATE INDEX subscription_items_plan_idx ON stripe_sync.subscription_items (plan);
CREATE INDEX subscription_items_product_idx ON stripe_sync.subscription_items (product);

COMMENT ON TABLE stripe_sync.subscription_items IS 'Items of a subscription (si_...), from the embedded subscription.items list; replaced whenever the subscription row is written.';
COMMENT ON COLUMN stripe_sync.subscription_items.product IS 'price.product (or plan.product for legacy plans).';
COMMENT ON COLUMN stripe_sync.subscription_items.current_period_start IS 'Set since API 2025-03-31.basil; older API versions have the period on the subscription only.';
COMMENT ON COLUMN stripe_sync.subscription_items.current_period_end IS 'Set since API 2025-03-31.basil; older API versions have the period on the subscription only.';
COMMENT ON COLUMN stripe_sync.subscription_items.subscription IS 'The subscription whose items list held this item.';
COMMENT ON COLUMN stripe_sync.subscription_items.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.subscription_items._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.subscription_items._synced_at IS 'When this row was last written (with its parent).';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.subscription_items', '');

------------------------------------------------------------------------------
-- invoices (object invoice)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.invoices (
    id                 text PRIMARY KEY,
    customer           text,
    subscription       text,
    status             text,
    billing_reason     text,
    collection_method  text,
    currency           text,
    amount_due         bigint,
    amount_paid        bigint,
    amount_remaining   bigint,
    subtotal           bigint,
    total              bigint,
    number             text,
    hosted_invoice_url text,
    attempt_count      bigint,
    due_date           timestamptz,
    period_start       timestamptz,
    period_end         timestamptz,
    paid_at            timestamptz,
    charge             text,
    payment_intent     text,
    metadata           jsonb,
    livemode           boolean,
    created            timestamptz,
    data               jsonb NOT NULL,
    _account_id        text,
    _last_event_at     timestamptz,
    _last_event_type   text,
    _last_event_id     text,
    _deleted           boolean NOT NULL DEFAULT false,
    _synced_at         timestamptz NOT NULL DEFAULT now(),
    _children_complete boolean GENERATED ALWAYS AS (NOT coalesce((data->'lines'->>'has_more')::boolean, false)) STORED
);
CREATE INDEX invoices_customer_idx ON stripe_sync.invoices (customer);
CREATE INDEX invoices_subscription_idx ON stripe_sync.invoices (subscription);
CREATE INDEX invoices_charge_idx ON stripe_sync.invoices (charge);
CREATE INDEX invoices_payment_intent_idx ON stripe_sync.invoices (payment_intent);

COMMENT ON TABLE stripe_sync.invoices IS 'Stripe invoices (in_...).';
COMMENT ON COLUMN stripe_sync.invoices.subscription IS 'parent.subscription_details.subscription since API 2025-03-31.basil, top-level subscription before.';
COMMENT ON COLUMN stripe_sync.invoices.amount_due IS 'Final amount due in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.amount_paid IS 'Amount paid so far in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.amount_remaining IS 'amount_due minus amount_paid in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.subtotal IS 'Total before invoice-level discounts and exclusive tax in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.total IS 'Total after discounts and taxes in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoices.attempt_count IS 'Number of payment attempts made for this invoice.';
COMMENT ON COLUMN stripe_sync.invoices.paid_at IS 'status_transitions.paid_at: when the invoice was paid.';
COMMENT ON COLUMN stripe_sync.invoices.charge IS 'Legacy: removed in API 2025-03-31.basil (NULL for objects of newer versions).';
COMMENT ON COLUMN stripe_sync.invoices.payment_intent IS 'Legacy: removed in API 2025-03-31.basil (NULL for objects of newer versions).';
COMMENT ON COLUMN stripe_sync.invoices.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.invoices._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.invoices._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.invoices._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.invoices._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.invoices._deleted IS 'The invoice was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.invoices._synced_at IS 'When this row was last written.';
COMMENT ON COLUMN stripe_sync.invoices._children_complete IS
  'False when the embedded lines list was partial (has_more): stripe_sync.invoice_line_items then holds only the listed rows, and the API completes them when stripe_sync.api_key is configured.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.invoices', '');

------------------------------------------------------------------------------
-- invoice_line_items (child of invoices via its lines list)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.invoice_line_items (
    id                text PRIMARY KEY,
    invoice           text NOT NULL,
    amount            bigint,
    currency          text,
    description       text,
    quantity          bigint,
    subscription      text,
    subscription_item text,
    invoice_item      text,
    price             text,
    product           text,
    proration         boolean,
    period_start      timestamptz,
    period_end        timestamptz,
    metadata          jsonb,
    livemode          boolean,
    data              jsonb NOT NULL,
    _account_id       text,
    _synced_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_line_items_invoice_idx ON stripe_sync.invoice_line_items (invoice);
CREATE INDEX invoice_line_items_subscription_idx ON stripe_sync.invoice_line_items (subscription);
CREATE INDEX invoice_line_items_subscription_item_idx ON stripe_sync.invoice_line_items (subscription_item);
CREATE INDEX invoice_line_items_invoice_item_idx ON stripe_sync.invoice_line_items (invoice_item);
CREATE INDEX invoice_line_items_price_idx ON stripe_sync.invoice_line_items (price);
CREATE INDEX invoice_line_items_product_idx ON stripe_sync.invoice_line_items (product);

COMMENT ON TABLE stripe_sync.invoice_line_items IS 'Lines of an invoice (il_...), from the embedded invoice.lines list; replaced whenever the invoice row is written.';
COMMENT ON COLUMN stripe_sync.invoice_line_items.amount IS 'Amount of the line in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.invoice_line_items.subscription_item IS 'parent.subscription_item_details.subscription_item since API 2025-03-31.basil, top-level before.';
COMMENT ON COLUMN stripe_sync.invoice_line_items.invoice_item IS 'parent.invoice_item_details.invoice_item since API 2025-03-31.basil, top-level before.';
COMMENT ON COLUMN stripe_sync.invoice_line_items.price IS 'pricing.price_details.price since API 2025-03-31.basil, price.id before.';
COMMENT ON COLUMN stripe_sync.invoice_line_items.product IS 'pricing.price_details.product since API 2025-03-31.basil, price.product (or plan.product) before.';
COMMENT ON COLUMN stripe_sync.invoice_line_items.invoice IS 'The invoice whose lines list held this line.';
COMMENT ON COLUMN stripe_sync.invoice_line_items.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.invoice_line_items._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.invoice_line_items._synced_at IS 'When this row was last written (with its parent).';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.invoice_line_items', '');

------------------------------------------------------------------------------
-- invoice_items (object invoiceitem)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.invoice_items (
    id                text PRIMARY KEY,
    customer          text,
    invoice           text,
    subscription      text,
    subscription_item text,
    price             text,
    product           text,
    amount            bigint,
    currency          text,
    quantity          bigint,
    description       text,
    proration         boolean,
    discountable      boolean,
    date              timestamptz,
    period_start      timestamptz,
    period_end        timestamptz,
    test_clock        text,
    metadata          jsonb,
    livemode          boolean,
    data              jsonb NOT NULL,
    _account_id       text,
    _last_event_at    timestamptz,
    _last_event_type  text,
    _last_event_id    text,
    _deleted          boolean NOT NULL DEFAULT false,
    _synced_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_items_customer_idx ON stripe_sync.invoice_items (customer);
CREATE INDEX invoice_items_invoice_idx ON stripe_sync.invoice_items (invoice);
CREATE INDEX invoice_items_subscription_idx ON stripe_sync.invoice_items (subscription);
CREATE INDEX invoice_items_subscription_item_idx ON stripe_sync.invoice_items (subscription_item);
CREATE INDEX invoice_items_price_idx ON stripe_sync.invoice_items (price);
CREATE INDEX invoice_items_product_idx ON stripe_sync.invoice_items (product);

COMMENT ON TABLE stripe_sync.invoice_items IS 'Stripe invoice items (ii_...): pending or invoiced amounts added to a customer''s next invoice.';
COMMENT ON COLUMN stripe_sync.invoice_items.invoice IS 'The invoice this item was added to; NULL while pending.';
COMMENT ON COLUMN stripe_sync.invoice_items.subscription IS 'parent.subscription_details.subscription since API 2025-03-31.basil, top-level subscription before.';
COMMENT ON COLUMN stripe_sync.invoice_items.price IS 'pricing.price_details.price since API 2025-03-31.basil, price.id before.';
COMMENT ON COLUMN stripe_sync.invoice_items.amount IS 'Amount (unit amount times quantity) in the smallest currency unit (cents for usd, yen for jpy); negative for credits.';
COMMENT ON COLUMN stripe_sync.invoice_items.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.invoice_items._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.invoice_items._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.invoice_items._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.invoice_items._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.invoice_items._deleted IS 'The invoiceitem was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.invoice_items._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.invoice_items', '');

------------------------------------------------------------------------------
-- charges (object charge)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.charges (
    id                  text PRIMARY KEY,
    customer            text,
    payment_intent      text,
    invoice             text,
    payment_method      text,
    balance_transaction text,
    status              text,
    amount              bigint,
    amount_captured     bigint,
    amount_refunded     bigint,
    currency            text,
    paid                boolean,
    captured            boolean,
    refunded            boolean,
    disputed            boolean,
    failure_code        text,
    failure_message     text,
    description         text,
    metadata            jsonb,
    livemode            boolean,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text,
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX charges_customer_idx ON stripe_sync.charges (customer);
CREATE INDEX charges_payment_intent_idx ON stripe_sync.charges (payment_intent);
CREATE INDEX charges_invoice_idx ON stripe_sync.charges (invoice);
CREATE INDEX charges_payment_method_idx ON stripe_sync.charges (payment_method);

COMMENT ON TABLE stripe_sync.charges IS 'Stripe charges (ch_/py_...): one attempt to move money, successful or failed.';
COMMENT ON COLUMN stripe_sync.charges.invoice IS 'Legacy: removed in API 2025-03-31.basil (NULL for objects of newer versions).';
COMMENT ON COLUMN stripe_sync.charges.amount IS 'Amount intended to be collected in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.charges.amount_captured IS 'Amount captured in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.charges.amount_refunded IS 'Amount refunded in the smallest currency unit (cents for usd, yen for jpy) (partial refunds add up).';
COMMENT ON COLUMN stripe_sync.charges.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.charges._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.charges._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.charges._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.charges._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.charges._deleted IS 'The charge was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.charges._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.charges', '');

------------------------------------------------------------------------------
-- refunds (object refund)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.refunds (
    id                  text PRIMARY KEY,
    charge              text,
    payment_intent      text,
    customer            text,
    balance_transaction text,
    status              text,
    amount              bigint,
    currency            text,
    reason              text,
    failure_reason      text,
    receipt_number      text,
    description         text,
    metadata            jsonb,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text,
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_charge_idx ON stripe_sync.refunds (charge);
CREATE INDEX refunds_payment_intent_idx ON stripe_sync.refunds (payment_intent);
CREATE INDEX refunds_customer_idx ON stripe_sync.refunds (customer);

COMMENT ON TABLE stripe_sync.refunds IS 'Stripe refunds (re_...), from refund.* and charge.refund.updated events.';
COMMENT ON COLUMN stripe_sync.refunds.amount IS 'Amount refunded in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.refunds.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.refunds._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.refunds._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.refunds._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.refunds._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.refunds._deleted IS 'The refund was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.refunds._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.refunds', '');

------------------------------------------------------------------------------
-- payment_intents (object payment_intent)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.payment_intents (
    id                  text PRIMARY KEY,
    customer            text,
    invoice             text,
    latest_charge       text,
    payment_method      text,
    status              text,
    amount              bigint,
    amount_capturable   bigint,
    amount_received     bigint,
    currency            text,
    capture_method      text,
    setup_future_usage  text,
    cancellation_reason text,
    canceled_at         timestamptz,
    last_payment_error  jsonb,
    description         text,
    receipt_email       text,
    metadata            jsonb,
    livemode            boolean,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text,
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_intents_customer_idx ON stripe_sync.payment_intents (customer);
CREATE INDEX payment_intents_invoice_idx ON stripe_sync.payment_intents (invoice);
CREATE INDEX payment_intents_latest_charge_idx ON stripe_sync.payment_intents (latest_charge);
CREATE INDEX payment_intents_payment_method_idx ON stripe_sync.payment_intents (payment_method);

COMMENT ON TABLE stripe_sync.payment_intents IS 'Stripe payment intents (pi_...).';
COMMENT ON COLUMN stripe_sync.payment_intents.invoice IS 'Legacy: removed in API 2025-03-31.basil (NULL for objects of newer versions).';
COMMENT ON COLUMN stripe_sync.payment_intents.amount IS 'Amount intended to be collected in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.payment_intents.amount_capturable IS 'Amount that can still be captured in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.payment_intents.amount_received IS 'Amount received in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.payment_intents.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.payment_intents._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.payment_intents._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.payment_intents._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.payment_intents._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.payment_intents._deleted IS 'The payment_intent was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.payment_intents._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.payment_intents', '');

------------------------------------------------------------------------------
-- payment_methods (object payment_method)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.payment_methods (
    id               text PRIMARY KEY,
    customer         text,
    type             text,
    card_brand       text,
    card_last_four   text,
    card_exp_month   bigint,
    card_exp_year    bigint,
    card_fingerprint text,
    billing_details  jsonb,
    allow_redisplay  text,
    metadata         jsonb,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text,
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_methods_customer_idx ON stripe_sync.payment_methods (customer);

COMMENT ON TABLE stripe_sync.payment_methods IS 'Stripe payment methods (pm_...).';
COMMENT ON COLUMN stripe_sync.payment_methods.card_last_four IS 'card.last4: last four digits of the card (card payment methods only).';
COMMENT ON COLUMN stripe_sync.payment_methods.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.payment_methods._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.payment_methods._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.payment_methods._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.payment_methods._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.payment_methods._deleted IS 'The payment_method was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.payment_methods._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.payment_methods', '');

------------------------------------------------------------------------------
-- setup_intents (object setup_intent)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.setup_intents (
    id                  text PRIMARY KEY,
    customer            text,
    payment_method      text,
    latest_attempt      text,
    mandate             text,
    status              text,
    usage               text,
    cancellation_reason text,
    last_setup_error    jsonb,
    description         text,
    metadata            jsonb,
    livemode            boolean,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text,
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX setup_intents_customer_idx ON stripe_sync.setup_intents (customer);
CREATE INDEX setup_intents_payment_method_idx ON stripe_sync.setup_intents (payment_method);

COMMENT ON TABLE stripe_sync.setup_intents IS 'Stripe setup intents (seti_...).';
COMMENT ON COLUMN stripe_sync.setup_intents.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.setup_intents._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.setup_intents._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.setup_intents._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.setup_intents._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.setup_intents._deleted IS 'The setup_intent was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.setup_intents._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.setup_intents', '');

------------------------------------------------------------------------------
-- disputes (object dispute)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.disputes (
    id                   text PRIMARY KEY,
    charge               text,
    payment_intent       text,
    status               text,
    reason               text,
    amount               bigint,
    currency             text,
    is_charge_refundable boolean,
    evidence_due_by      timestamptz,
    has_evidence         boolean,
    metadata             jsonb,
    livemode             boolean,
    created              timestamptz,
    data                 jsonb NOT NULL,
    _account_id          text,
    _last_event_at       timestamptz,
    _last_event_type     text,
    _last_event_id       text,
    _deleted             boolean NOT NULL DEFAULT false,
    _synced_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disputes_charge_idx ON stripe_sync.disputes (charge);
CREATE INDEX disputes_payment_intent_idx ON stripe_sync.disputes (payment_intent);

COMMENT ON TABLE stripe_sync.disputes IS 'Stripe disputes (dp_/du_...), from charge.dispute.* events.';
COMMENT ON COLUMN stripe_sync.disputes.amount IS 'Disputed amount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.disputes.evidence_due_by IS 'evidence_details.due_by: last moment to submit evidence.';
COMMENT ON COLUMN stripe_sync.disputes.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.disputes._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.disputes._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.disputes._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.disputes._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.disputes._deleted IS 'The dispute was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.disputes._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.disputes', '');

------------------------------------------------------------------------------
-- credit_notes (object credit_note)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.credit_notes (
    id                 text PRIMARY KEY,
    customer           text,
    invoice            text,
    number             text,
    status             text,
    type               text,
    reason             text,
    currency           text,
    amount             bigint,
    subtotal           bigint,
    total              bigint,
    discount_amount    bigint,
    out_of_band_amount bigint,
    memo               text,
    effective_at       timestamptz,
    voided_at          timestamptz,
    metadata           jsonb,
    livemode           boolean,
    created            timestamptz,
    data               jsonb NOT NULL,
    _account_id        text,
    _last_event_at     timestamptz,
    _last_event_type   text,
    _last_event_id     text,
    _deleted           boolean NOT NULL DEFAULT false,
    _synced_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_notes_customer_idx ON stripe_sync.credit_notes (customer);
CREATE INDEX credit_notes_invoice_idx ON stripe_sync.credit_notes (invoice);

COMMENT ON TABLE stripe_sync.credit_notes IS 'Stripe credit notes (cn_...).';
COMMENT ON COLUMN stripe_sync.credit_notes.amount IS 'Amount credited in the smallest currency unit (cents for usd, yen for jpy), including tax.';
COMMENT ON COLUMN stripe_sync.credit_notes.subtotal IS 'Amount before discounts and exclusive tax in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_notes.total IS 'Amount after discounts and taxes in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_notes.discount_amount IS 'Total discount in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_notes.out_of_band_amount IS 'Amount credited outside of Stripe in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.credit_notes.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.credit_notes._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.credit_notes._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.credit_notes._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.credit_notes._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.credit_notes._deleted IS 'The credit_note was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.credit_notes._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.credit_notes', '');

------------------------------------------------------------------------------
-- tax_ids (object tax_id)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.tax_ids (
    id                  text PRIMARY KEY,
    customer            text,
    type                text,
    value               text,
    country             text,
    owner_type          text,
    verification_status text,
    livemode            boolean,
    created             timestamptz,
    data                jsonb NOT NULL,
    _account_id         text,
    _last_event_at      timestamptz,
    _last_event_type    text,
    _last_event_id      text,
    _deleted            boolean NOT NULL DEFAULT false,
    _synced_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tax_ids_customer_idx ON stripe_sync.tax_ids (customer);

COMMENT ON TABLE stripe_sync.tax_ids IS 'Customer tax ids (txi_...), from customer.tax_id.* events.';
COMMENT ON COLUMN stripe_sync.tax_ids.customer IS 'customer, or owner.customer.';
COMMENT ON COLUMN stripe_sync.tax_ids.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.tax_ids._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.tax_ids._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.tax_ids._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.tax_ids._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.tax_ids._deleted IS 'The tax_id was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.tax_ids._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.tax_ids', '');

------------------------------------------------------------------------------
-- checkout_sessions (object checkout.session)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.checkout_sessions (
    id                     text PRIMARY KEY,
    customer               text,
    customer_email         text,
    customer_details_email text,
    client_reference_id    text,
    mode                   text,
    status                 text,
    payment_status         text,
    subscription           text,
    invoice                text,
    payment_intent         text,
    setup_intent           text,
    payment_link           text,
    currency               text,
    amount_subtotal        bigint,
    amount_total           bigint,
    expires_at             timestamptz,
    metadata               jsonb,
    livemode               boolean,
    created                timestamptz,
    data                   jsonb NOT NULL,
    _account_id            text,
    _last_event_at         timestamptz,
    _last_event_type       text,
    _last_event_id         text,
    _deleted               boolean NOT NULL DEFAULT false,
    _synced_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_sessions_customer_idx ON stripe_sync.checkout_sessions (customer);
CREATE INDEX checkout_sessions_subscription_idx ON stripe_sync.checkout_sessions (subscription);
CREATE INDEX checkout_sessions_invoice_idx ON stripe_sync.checkout_sessions (invoice);
CREATE INDEX checkout_sessions_payment_intent_idx ON stripe_sync.checkout_sessions (payment_intent);
CREATE INDEX checkout_sessions_setup_intent_idx ON stripe_sync.checkout_sessions (setup_intent);

COMMENT ON TABLE stripe_sync.checkout_sessions IS 'Stripe Checkout Sessions (cs_...).';
COMMENT ON COLUMN stripe_sync.checkout_sessions.customer_details_email IS 'customer_details.email: the email the customer entered at checkout.';
COMMENT ON COLUMN stripe_sync.checkout_sessions.amount_subtotal IS 'Total before discounts and taxes in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.checkout_sessions.amount_total IS 'Total after discounts and taxes in the smallest currency unit (cents for usd, yen for jpy).';
COMMENT ON COLUMN stripe_sync.checkout_sessions.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.checkout_sessions._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.checkout_sessions._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.checkout_sessions._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.checkout_sessions._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.checkout_sessions._deleted IS 'The checkout.session was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.checkout_sessions._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.checkout_sessions', '');

------------------------------------------------------------------------------
-- early_fraud_warnings (object radar.early_fraud_warning)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.early_fraud_warnings (
    id               text PRIMARY KEY,
    charge           text,
    payment_intent   text,
    actionable       boolean,
    fraud_type       text,
    livemode         boolean,
    created          timestamptz,
    data             jsonb NOT NULL,
    _account_id      text,
    _last_event_at   timestamptz,
    _last_event_type text,
    _last_event_id   text,
    _deleted         boolean NOT NULL DEFAULT false,
    _synced_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX early_fraud_warnings_charge_idx ON stripe_sync.early_fraud_warnings (charge);
CREATE INDEX early_fraud_warnings_payment_intent_idx ON stripe_sync.early_fraud_warnings (payment_intent);

COMMENT ON TABLE stripe_sync.early_fraud_warnings IS 'Radar early fraud warnings (issfr_...) reported by card networks about a charge.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings._deleted IS 'The radar.early_fraud_warning was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.early_fraud_warnings._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.early_fraud_warnings', '');

------------------------------------------------------------------------------
-- subscription_schedules (object subscription_schedule)
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.subscription_schedules (
    id                    text PRIMARY KEY,
    customer              text,
    subscription          text,
    status                text,
    end_behavior          text,
    current_phase_start   timestamptz,
    current_phase_end     timestamptz,
    phases                jsonb,
    released_subscription text,
    canceled_at           timestamptz,
    completed_at          timestamptz,
    released_at           timestamptz,
    test_clock            text,
    metadata              jsonb,
    livemode              boolean,
    created               timestamptz,
    data                  jsonb NOT NULL,
    _account_id           text,
    _last_event_at        timestamptz,
    _last_event_type      text,
    _last_event_id        text,
    _deleted              boolean NOT NULL DEFAULT false,
    _synced_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_schedules_customer_idx ON stripe_sync.subscription_schedules (customer);
CREATE INDEX subscription_schedules_subscription_idx ON stripe_sync.subscription_schedules (subscription);
CREATE INDEX subscription_schedules_released_subscription_idx ON stripe_sync.subscription_schedules (released_subscription);

COMMENT ON TABLE stripe_sync.subscription_schedules IS 'Stripe subscription schedules (sub_sched_...).';
COMMENT ON COLUMN stripe_sync.subscription_schedules.current_phase_start IS 'current_phase.start_date.';
COMMENT ON COLUMN stripe_sync.subscription_schedules.current_phase_end IS 'current_phase.end_date.';
COMMENT ON COLUMN stripe_sync.subscription_schedules.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.subscription_schedules._account_id IS 'Connected account (Stripe Connect), NULL for the platform account.';
COMMENT ON COLUMN stripe_sync.subscription_schedules._last_event_at IS 'created time of the event that last wrote this row; an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.subscription_schedules._last_event_type IS 'Type of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.subscription_schedules._last_event_id IS 'Id of the event that last wrote this row.';
COMMENT ON COLUMN stripe_sync.subscription_schedules._deleted IS 'The subscription_schedule was deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.subscription_schedules._synced_at IS 'When this row was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.subscription_schedules', '');
