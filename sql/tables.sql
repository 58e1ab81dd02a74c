-- stripe_sync schema, part 2: the synced tables, one per Stripe object type,
-- named by the plural of the object name. Every table has `id text primary key`,
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
