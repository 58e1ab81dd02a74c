-- stripe_sync schema, part 1 (bootstrap): the event queue and the ordering helpers.
-- The synced tables follow (tables.sql), then the functions written in Rust;
-- grants, views and comments on functions come last (finalize.sql).
--
-- Words: an *event* is one Stripe webhook Event; its *object* is `data.object`
-- (a customer, an invoice, ...). Bookkeeping columns start with `_`.

-- The schema must be the extension's own (the same check begins schema.sql and
-- stripe_sync--0.5.0--0.6.0.sql; pgrx-tests/test_upgrade.py keeps them equal): a role that created schema stripe_sync
-- before CREATE EXTENSION (or left objects of its own in it) would own what every
-- rule of docs/security.md trusts, and its operators would be chosen inside this
-- script. Written with pg_catalog's operators only.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                WHERE n.nspname OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.name
                  AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) n.nspowner))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                   WHERE c.relnamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) c.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'i', 'a']::pg_catalog."char"[])))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                   WHERE p.pronamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) p.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog."char"))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator o
                   WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
                   WHERE t.typnamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace
                     AND t.typrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) t.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'i']::pg_catalog."char"[])))
    THEN
        RAISE EXCEPTION 'schema stripe_sync is not the extension''s own: it belongs to a role that is not a superuser, or holds objects the extension did not create'
              USING ERRCODE = '42501',
                    HINT = 'Drop that schema (after checking what it holds), then run CREATE EXTENSION stripe_sync again.';
    END IF;
END $guard$;

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
-- (0.5.0 rebuilds it with the share key as a third column: sql/stripe_sync--0.4.0--0.5.0.sql.)
CREATE INDEX events_pending_idx ON stripe_sync.events (created, id) WHERE status = 'pending';
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
RETURN coalesce(event_type LIKE '%.deleted' AND event_type <> 'customer.subscription.deleted', false)
       OR coalesce(object->>'deleted' = 'true', false);
COMMENT ON FUNCTION stripe_sync._is_deletion(text, jsonb) IS
  'True when the event removes its object: a *.deleted event (but customer.subscription.deleted, which only cancels) or a deleted stub.';

CREATE FUNCTION stripe_sync._is_stub(object jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(object->>'deleted' = 'true', false)
       AND object - 'id' - 'object' - 'deleted' = '{}'::jsonb;
COMMENT ON FUNCTION stripe_sync._is_stub(jsonb) IS
  'True for a deleted stub, exactly {"id", "object", "deleted": true}: it marks the row deleted and overwrites none of its columns. A full object that says deleted is applied whole, and marked deleted.';

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
-- Objects to re-read from the API
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.refresh_requests (
    id           text PRIMARY KEY,
    object       text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stripe_sync.refresh_requests IS
  'Objects whose newest event could not be ordered by its time alone (two events of the same kind in the same second): with an API key the worker re-reads them from Stripe after the batch commits; without one the documented tie rule (event id) stands and the requests are dropped.';

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

------------------------------------------------------------------------------
-- Backfill and catch-up: runs and cursors
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.sync_runs (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('backfill', 'catch_up')),
    object        text NOT NULL,
    account       text,
    created_after timestamptz,
    token         text UNIQUE,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    pages         integer NOT NULL DEFAULT 0,
    objects       bigint NOT NULL DEFAULT 0,
    listed        bigint,
    rows_held     bigint,
    deleted       bigint NOT NULL DEFAULT 0,
    resumed       boolean NOT NULL DEFAULT false,
    error         text,
    error_code    text,
    worker_pid    integer
);
CREATE INDEX sync_runs_finished_idx ON stripe_sync.sync_runs (finished_at);
COMMENT ON TABLE stripe_sync.sync_runs IS
  'One row per backfill or catch-up run, updated after every page so a run is visible while it goes.';
COMMENT ON COLUMN stripe_sync.sync_runs.object IS 'Object type backfilled (customer, invoice, ...), or event for catch_up.';
COMMENT ON COLUMN stripe_sync.sync_runs.objects IS 'Objects (or events, for catch_up) fetched and applied by this run.';
COMMENT ON COLUMN stripe_sync.sync_runs.listed IS 'Full runs: how many objects the API listed in all, against rows_held, the live rows the table holds for that account after reconciliation.';
COMMENT ON COLUMN stripe_sync.sync_runs.deleted IS 'Full runs: rows the API no longer lists, confirmed gone by a retrieve, and marked deleted.';
COMMENT ON COLUMN stripe_sync.sync_runs.resumed IS 'The run continued from the cursor of an interrupted one.';
COMMENT ON COLUMN stripe_sync.sync_runs.error_code IS 'SQLSTATE the calling session raises for error (see README, Errors).';
COMMENT ON COLUMN stripe_sync.sync_runs.token IS 'Handle by which the calling session follows the run.';

CREATE TABLE stripe_sync.sync_cursors (
    account         text NOT NULL DEFAULT '',
    object          text NOT NULL,
    created_after   timestamptz,
    starting_after  text,
    in_progress     boolean NOT NULL DEFAULT false,
    run_high_water  bigint,
    high_water      bigint,
    last_completed_at timestamptz,
    PRIMARY KEY (account, object)
);
COMMENT ON TABLE stripe_sync.sync_cursors IS
  'Where backfill stands per account and object type: the page cursor of a run in progress (committed after every page, so an interrupted run resumes there) and the newest created time seen by the last completed run (the next run fetches only what is newer).';
COMMENT ON COLUMN stripe_sync.sync_cursors.starting_after IS 'Last id of the last committed page of the run in progress.';
COMMENT ON COLUMN stripe_sync.sync_cursors.high_water IS 'Newest created (Unix seconds) seen by the last completed run; an incremental run lists created >= it.';

-- Ids the full run in progress (for an account and object type) has listed,
-- across interruptions, for reconciling missed deletions at its end.
CREATE UNLOGGED TABLE stripe_sync.sync_seen (
    account text NOT NULL,
    object  text NOT NULL,
    id      text NOT NULL,
    PRIMARY KEY (account, object, id)
);
COMMENT ON TABLE stripe_sync.sync_seen IS 'Scratch: ids listed by the full backfill in progress per account and object type (kept across a resume); emptied when the run ends.';
