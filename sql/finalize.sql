-- stripe_sync schema, part 3 (finalize): pg_dump registration, privileges and
-- comments on the functions written in Rust.

-- Synced data is user data: pg_dump keeps the rows of these extension tables.
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.events', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.sync_runs', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.sync_cursors', '');

-- Nothing is callable by PUBLIC; grant what a role needs (README, "Security").
REVOKE ALL ON FUNCTION stripe_sync.ingest_event(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.process_pending(integer) FROM PUBLIC;

COMMENT ON FUNCTION stripe_sync.ingest_event(text, text) IS
  'Verifies a Stripe webhook delivery (raw body, Stripe-Signature header) against stripe_sync.webhook_secret and queues the event once. Returns queued or duplicate; raises a documented SQLSTATE and stores nothing on bad input. SECURITY DEFINER: a webhook role needs only EXECUTE on it and USAGE on the schema.';
COMMENT ON FUNCTION stripe_sync.process_pending(integer) IS
  'Applies due pending events in this session, in batches of stripe_sync.batch_size (the background worker runs the same code). Returns how many events it handled; max_events caps it (NULL: until none is due).';

REVOKE ALL ON FUNCTION stripe_sync.worker_status() FROM PUBLIC;
COMMENT ON FUNCTION stripe_sync.worker_status() IS
  'The background worker''s pid and last heartbeat; no row while no worker runs (library not preloaded, or stopped).';

-- The status view is defined by the newest version's script (stripe_sync--0.1.0--0.2.0.sql),
-- which a fresh install runs after this file.

REVOKE ALL ON FUNCTION stripe_sync.retry_failed() FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.replay_event(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.purge_events(interval) FROM PUBLIC;
COMMENT ON FUNCTION stripe_sync.retry_failed() IS
  'Puts every failed event back in the queue, due now, with a fresh attempt budget. Returns how many.';
COMMENT ON FUNCTION stripe_sync.replay_event(text) IS
  'Applies one event again, whatever its status (error P0002 if the id is unknown). An old event changes nothing newer: the ordering rule still holds.';

REVOKE ALL ON FUNCTION stripe_sync.sync_object(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.backfill(text, timestamptz, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.catch_up(text) FROM PUBLIC;
COMMENT ON FUNCTION stripe_sync.sync_object(text) IS
  'Refetches one object from the Stripe API by id (its prefix names the type: cus_, sub_, in_, ch_, pi_, prod_, price_, ...), applies it like an event of the time of the fetch, and returns its table.';

REVOKE ALL ON FUNCTION stripe_sync.create_customer(text, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync._wake_worker() FROM PUBLIC;
COMMENT ON FUNCTION stripe_sync.create_customer(text, regclass) IS
  'The Stripe customer of one user of a provisioning target (users may be omitted when there is only one): found in stripe_sync.customers or Stripe (by email and metadata user_id/users_table), or created with an Idempotency-Key derived from table and user; written back to the users row and mirrored. A second call creates nothing and returns the same id.';
COMMENT ON FUNCTION stripe_sync._wake_worker() IS 'Wakes the background worker when the calling transaction commits.';

-- Event and object bodies are a few kB of JSON, compressed on every write:
-- lz4 costs a fraction of pglz's CPU. Servers built without lz4 keep pglz.
DO $$
DECLARE col record;
BEGIN
    FOR col IN SELECT c.relname FROM pg_catalog.pg_class c
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'data'
                WHERE c.relnamespace = 'stripe_sync'::regnamespace AND c.relkind = 'r'
    LOOP
        EXECUTE format('ALTER TABLE stripe_sync.%I ALTER COLUMN data SET COMPRESSION lz4', col.relname);
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'stripe_sync: this server has no lz4; JSON bodies stay compressed with pglz';
END $$;
