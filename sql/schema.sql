-- stripe_sync schema, part 1 (bootstrap): the event queue and the ordering helpers.
-- The synced tables follow (tables.sql), then the functions written in Rust;
-- grants, views and comments on functions come last (finalize.sql).
--
-- Words: an *event* is one Stripe webhook Event; its *object* is `data.object`
-- (a customer, an invoice, ...). Bookkeeping columns start with `_`.

------------------------------------------------------------------------------
-- The queue and log of events
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.events (
    id              text PRIMARY KEY,
    type            text NOT NULL,
    created         timestamptz NOT NULL,
    data            jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processed', 'failed', 'skipped')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    object_type     text,
    object_id       text,
    account         text,
    api_version     text
);
-- Only claimable rows are indexed: the index stays small however long the log grows.
CREATE INDEX events_pending_idx ON stripe_sync.events (created, id) WHERE status = 'pending';
CREATE INDEX events_object_idx ON stripe_sync.events (object_id);
CREATE INDEX events_failed_idx ON stripe_sync.events (received_at) WHERE status = 'failed';
-- Throughput in the status view, and the retention purge.
CREATE INDEX events_processed_at_idx ON stripe_sync.events (processed_at) WHERE processed_at IS NOT NULL;

COMMENT ON TABLE stripe_sync.events IS
  'One row per distinct Stripe event id: the verified, deduplicated queue that the background worker drains, and the log of what was applied.';
COMMENT ON COLUMN stripe_sync.events.id IS 'Stripe event id (evt_...); a second delivery of the same id is a duplicate and stores nothing.';
COMMENT ON COLUMN stripe_sync.events.created IS 'When Stripe created the event; decides which event about an object is newest.';
COMMENT ON COLUMN stripe_sync.events.data IS 'The whole event envelope as delivered.';
COMMENT ON COLUMN stripe_sync.events.status IS
  'pending: waiting or retrying; processed: applied to its table; skipped: an object type that is not mirrored; failed: gave up after stripe_sync.max_attempts (see last_error).';
COMMENT ON COLUMN stripe_sync.events.attempts IS 'How many times the apply was tried.';
COMMENT ON COLUMN stripe_sync.events.last_error IS 'Error of the last failed attempt.';
COMMENT ON COLUMN stripe_sync.events.next_attempt_at IS 'A pending event is not claimed before this time (retry backoff).';
COMMENT ON COLUMN stripe_sync.events.object_type IS 'data.object.object, e.g. customer.';
COMMENT ON COLUMN stripe_sync.events.object_id IS 'data.object.id, e.g. cus_...';
COMMENT ON COLUMN stripe_sync.events.account IS 'Connected account (Stripe Connect) the event belongs to; NULL for the platform account.';

------------------------------------------------------------------------------
-- Ordering helpers (see docs/ordering.md)
------------------------------------------------------------------------------
CREATE FUNCTION stripe_sync._is_deletion(event_type text, object jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (event_type LIKE '%.deleted' AND event_type <> 'customer.subscription.deleted')
       OR coalesce(object->>'deleted' = 'true', false);
COMMENT ON FUNCTION stripe_sync._is_deletion(text, jsonb) IS
  'True when the event removes its object: a *.deleted event (but customer.subscription.deleted, which only cancels) or a deleted stub.';

CREATE FUNCTION stripe_sync._is_stub(object jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(object->>'deleted' = 'true', false);
COMMENT ON FUNCTION stripe_sync._is_stub(jsonb) IS
  'True for a deleted stub {"id", "object", "deleted": true}: it marks the row deleted and overwrites none of its columns.';

CREATE FUNCTION stripe_sync._event_rank(event_type text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
         WHEN event_type IS NULL THEN -1
         WHEN stripe_sync._is_deletion(event_type, NULL) THEN 2
         WHEN event_type LIKE '%.created' THEN 0
         ELSE 1
       END;
COMMENT ON FUNCTION stripe_sync._event_rank(text) IS
  'Orders events of one object created in the same second: *.created (0) before updates (1) before deletions (2).';

------------------------------------------------------------------------------
-- Money
------------------------------------------------------------------------------
CREATE FUNCTION stripe_sync.amount_decimal(amount bigint, currency text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    -- Zero-decimal and three-decimal currencies as listed by Stripe
    -- (https://docs.stripe.com/currencies, "Zero-decimal" and "Three-decimal").
    -- ISK, HUF and TWD are special cases there, but API amounts still carry two decimals.
    WHEN lower(currency) IN ('bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg',
                             'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf') THEN amount::numeric
    WHEN lower(currency) IN ('bhd', 'jod', 'kwd', 'omr', 'tnd') THEN round(amount / 1000::numeric, 3)
    ELSE round(amount / 100::numeric, 2)
  END;
COMMENT ON FUNCTION stripe_sync.amount_decimal(bigint, text) IS
  'An amount in the smallest currency unit (as Stripe sends it) as a decimal in the currency: 1999 usd -> 19.99, 500 jpy -> 500, 1234 kwd -> 1.234.';
