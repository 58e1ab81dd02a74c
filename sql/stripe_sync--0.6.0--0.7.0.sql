-- stripe_sync 0.6.0 -> 0.7.0: a mirror that heals itself.
--   * Connected accounts kept apart: every mirrored table (and the
--     subscription history) is keyed by (_account_id, id); the platform's
--     rows have _account_id '' (never NULL). stripe_sync.accounts lists the
--     platform and every connected account seen; forget_account() removes one.
--   * catch_up() keeps its own watermark per account (sync_cursors, object
--     'event'); the worker runs it every stripe_sync.catch_up_interval.
--   * verify() compares the API's listing with the mirror: stripe_sync.drift.
-- Run by ALTER EXTENSION stripe_sync UPDATE and, last, by a fresh install.

------------------------------------------------------------------------------
-- Every mirrored table keyed by (account, id)
------------------------------------------------------------------------------
-- Products, plans and coupons have ids the user chooses: two connected
-- accounts' coupon SUMMER were one row, owned by whichever wrote last. Every
-- table with an _account_id column (the 21 synced tables and
-- subscription_history) gets '' for the platform, NOT NULL, and a primary key
-- that leads with it, so that no unique key spans accounts (a distributed
-- PostgreSQL such as Citus can shard the mirror by account).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN
        SELECT c.oid::regclass AS rel, con.conname,
               (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.ord)
                  FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum) AS key_columns
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_constraint con ON con.conrelid = c.oid AND con.contype = 'p'
         WHERE c.relnamespace = 'stripe_sync'::regnamespace AND c.relkind = 'r'
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                        WHERE a.attrelid = c.oid AND a.attname = '_account_id' AND NOT a.attisdropped)
           AND con.conkey[1] <> (SELECT a.attnum FROM pg_catalog.pg_attribute a
                                   WHERE a.attrelid = c.oid AND a.attname = '_account_id')
         ORDER BY c.relname
    LOOP
        EXECUTE format('UPDATE %s SET _account_id = %L WHERE _account_id IS NULL', t.rel, '');
        EXECUTE format('ALTER TABLE %s ALTER COLUMN _account_id SET DEFAULT %L, ALTER COLUMN _account_id SET NOT NULL',
                       t.rel, '');
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I PRIMARY KEY (_account_id, %s)',
                       t.rel, t.conname, t.conname, t.key_columns);
        EXECUTE format('COMMENT ON COLUMN %s._account_id IS %L', t.rel,
                       'Connected account (Stripe Connect) the row belongs to, '''' for the platform account; the primary key leads with it.');
    END LOOP;
END $$;

-- Objects to re-read are an account's objects too.
ALTER TABLE stripe_sync.refresh_requests ADD COLUMN account text NOT NULL DEFAULT '';
-- A request of a connected account's object names that account (from its newest event).
UPDATE stripe_sync.refresh_requests r
   SET account = coalesce((SELECT e.account FROM stripe_sync.events e
                            WHERE e.object_id = r.id ORDER BY e.created DESC LIMIT 1), '');
ALTER TABLE stripe_sync.refresh_requests DROP CONSTRAINT refresh_requests_pkey,
                                         ADD CONSTRAINT refresh_requests_pkey PRIMARY KEY (account, id);
COMMENT ON COLUMN stripe_sync.refresh_requests.account IS 'Connected account of the object, '''' for the platform.';

-- Payment methods and tax ids are listed per customer now (their cursor is a
-- customer id, their high water a customer's created): a run of 0.6.0's kind
-- in progress, or its high water, would mislead the next one, which runs in full.
UPDATE stripe_sync.sync_cursors
   SET in_progress = false, starting_after = NULL, created_after = NULL, run_started_at = NULL,
       run_high_water = NULL, high_water = NULL
 WHERE object IN ('payment_method', 'tax_id');
DELETE FROM stripe_sync.sync_slices WHERE object IN ('payment_method', 'tax_id');

------------------------------------------------------------------------------
-- Accounts
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.accounts (
    id               text PRIMARY KEY,
    first_seen_at    timestamptz NOT NULL DEFAULT now(),
    last_event_at    timestamptz,
    last_catch_up_at timestamptz,
    last_backfill_at timestamptz,
    data             jsonb,
    _synced_at       timestamptz
);
COMMENT ON TABLE stripe_sync.accounts IS
  'The platform account (id '''') and every connected account seen: in an event, by backfill(''account'') (GET /v1/accounts), or by a backfill or catch_up for it. catch_up() covers every account listed here.';
COMMENT ON COLUMN stripe_sync.accounts.id IS 'acct_... of a connected account; '''' for the platform (the account of the API key).';
COMMENT ON COLUMN stripe_sync.accounts.first_seen_at IS 'When the mirror first met the account.';
COMMENT ON COLUMN stripe_sync.accounts.last_event_at IS 'created of the newest event applied for the account (kept to within a minute, so that concurrent batches do not queue on one row).';
COMMENT ON COLUMN stripe_sync.accounts.last_catch_up_at IS 'When the last catch-up of the account completed.';
COMMENT ON COLUMN stripe_sync.accounts.last_backfill_at IS 'When the last backfill of any object type completed for the account.';
COMMENT ON COLUMN stripe_sync.accounts.data IS 'The Account object as last listed by backfill(''account''); NULL for the platform and for accounts only seen in events.';
COMMENT ON COLUMN stripe_sync.accounts._synced_at IS 'When data was last written.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.accounts', '');

-- Every account the events and the tables already name (the platform's row, too,
-- appears with its first event, backfill or catch-up: none is made on a fresh
-- install, whose rows pg_dump keeps and a restore brings back).
INSERT INTO stripe_sync.accounts (id, last_event_at)
SELECT coalesce(account, ''), max(created) FROM stripe_sync.events GROUP BY 1
ON CONFLICT (id) DO UPDATE SET last_event_at = excluded.last_event_at;
INSERT INTO stripe_sync.accounts (id) SELECT DISTINCT account FROM stripe_sync.sync_cursors ON CONFLICT DO NOTHING;
INSERT INTO stripe_sync.accounts (id) SELECT DISTINCT _account_id FROM stripe_sync.customers ON CONFLICT DO NOTHING;
INSERT INTO stripe_sync.accounts (id) SELECT DISTINCT _account_id FROM stripe_sync.products ON CONFLICT DO NOTHING;

------------------------------------------------------------------------------
-- Drift: what verify() found
------------------------------------------------------------------------------
ALTER TABLE stripe_sync.sync_runs DROP CONSTRAINT sync_runs_kind_check,
    ADD CONSTRAINT sync_runs_kind_check CHECK (kind IN ('backfill', 'catch_up', 'verify'));
ALTER TABLE stripe_sync.sync_runs
    ADD COLUMN missing  bigint,
    ADD COLUMN extra    bigint,
    ADD COLUMN differs  bigint,
    ADD COLUMN repaired bigint;
COMMENT ON COLUMN stripe_sync.sync_runs.missing IS 'verify: objects the API lists that the mirror lacks (or holds as deleted).';
COMMENT ON COLUMN stripe_sync.sync_runs.extra IS 'verify: live rows of the mirror that the API did not list.';
COMMENT ON COLUMN stripe_sync.sync_runs.differs IS 'verify: rows whose data differs from the object listed.';
COMMENT ON COLUMN stripe_sync.sync_runs.repaired IS 'verify with repair: rows written to match the API.';

CREATE TABLE stripe_sync.drift (
    account     text NOT NULL,
    run         bigint NOT NULL,
    id          text NOT NULL,
    object      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('missing', 'extra', 'differs')),
    fields      text[],
    detected_at timestamptz NOT NULL DEFAULT now(),
    repaired_at timestamptz,
    PRIMARY KEY (account, run, id)
);
CREATE INDEX drift_detected_at_idx ON stripe_sync.drift (detected_at);
COMMENT ON TABLE stripe_sync.drift IS
  'Differences verify() found between the API and the mirror, one row per object per run (sync_runs.id).';
COMMENT ON COLUMN stripe_sync.drift.kind IS
  'missing: listed by the API, absent from the mirror (or deleted there); extra: live in the mirror, not listed; differs: data differs from the listed object.';
COMMENT ON COLUMN stripe_sync.drift.fields IS 'differs: the top-level fields whose values differ.';
COMMENT ON COLUMN stripe_sync.drift.repaired_at IS 'When verify(..., repair => true) wrote the row to match the API.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.drift', '');

-- Scratch: ids listed by the verify run in progress (emptied when it ends).
CREATE UNLOGGED TABLE stripe_sync.verify_listed (
    account text NOT NULL,
    run     bigint NOT NULL,
    id      text NOT NULL,
    PRIMARY KEY (account, run, id)
);
COMMENT ON TABLE stripe_sync.verify_listed IS 'Scratch: ids listed by a verify run in progress; emptied when the run ends.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.verify_listed', '');

------------------------------------------------------------------------------
-- Functions
------------------------------------------------------------------------------
-- (0.1.0 to 0.6.0 kept these two comments in finalize.sql.)
COMMENT ON FUNCTION stripe_sync.backfill(text, timestamptz, text) IS
  'Lists one object type (or ''all'', in dependency order) from the Stripe API (payment methods and tax ids per customer of the mirror; ''account'': the connected accounts, into stripe_sync.accounts), 100 per page, every status, and applies every object. Runs in a job worker that commits page by page; this call waits, prints NOTICE progress and returns the count. Resumable: an interrupted run continues at its cursor. Incremental: after a completed run only objects created since are listed (created_after overrides; ''epoch'' forces a full run). A full run marks deleted the rows the API no longer has. Runs are recorded in stripe_sync.sync_runs. account (acct_...) backfills a connected account (Stripe Connect): requests carry Stripe-Account, rows get _account_id, the cursor is its own.';
COMMENT ON FUNCTION stripe_sync.catch_up(text) IS
  'Lists /v1/events of one account (acct_...; NULL: the platform and every account in stripe_sync.accounts, each in turn) from where its last completed catch-up started listing, less 2 minutes (sync_cursors, object event), and queues the events not stored, as if delivered; returns how many were new. A first run, or one whose last run is older than Stripe''s 30-day window (with a WARNING), lists the whole window. Runs in a job worker, recorded in sync_runs; the worker runs it by itself every stripe_sync.catch_up_interval.';

CREATE FUNCTION stripe_sync.verify(object text, account text DEFAULT NULL, repair boolean DEFAULT false)
RETURNS TABLE (object text, account text, listed bigint, missing bigint, extra bigint, differs bigint, repaired bigint)
LANGUAGE c VOLATILE
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'verify_wrapper';
COMMENT ON FUNCTION stripe_sync.verify(text, text, boolean) IS
  'Lists one object type (or ''all'', in dependency order) from the Stripe API for one account (NULL: the platform) and compares it with the mirror without writing to it: objects missing, rows extra (confirmed by a retrieve), rows whose data differs. Records the run in sync_runs and each difference in stripe_sync.drift; with repair, writes each difference to match the API. Returns a row per object type.';
REVOKE ALL ON FUNCTION stripe_sync.verify(text, text, boolean) FROM PUBLIC;

CREATE FUNCTION stripe_sync.forget_account(account text, dry_run boolean DEFAULT true)
RETURNS TABLE (table_name text, rows bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t record;
    n bigint;
BEGIN
    IF account IS NULL OR account !~ '^acct_[A-Za-z0-9_]{1,35}$' THEN
        RAISE EXCEPTION 'stripe_sync: "%" is not a connected account id (acct_...)', account
              USING ERRCODE = '22023',
                    HINT = 'forget_account removes a connected account''s rows; the platform''s go with DROP EXTENSION.';
    END IF;
    -- Slack alerts of its events (they name the event, not the account).
    IF dry_run THEN
        SELECT count(*) INTO n FROM stripe_sync.alerts a
         WHERE a.event_id IN (SELECT e.id FROM stripe_sync.events e WHERE e.account OPERATOR(pg_catalog.=) forget_account.account);
    ELSE
        WITH d AS (DELETE FROM stripe_sync.alerts a
                    WHERE a.event_id IN (SELECT e.id FROM stripe_sync.events e
                                          WHERE e.account OPERATOR(pg_catalog.=) forget_account.account)
                   RETURNING 1)
        SELECT count(*) INTO n FROM d;
    END IF;
    table_name := 'alerts';
    rows := n;
    RETURN NEXT;
    FOR t IN
        SELECT c.relname::text AS name,
               CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                                  WHERE a.attrelid = c.oid AND a.attname = '_account_id' AND NOT a.attisdropped)
                    THEN '_account_id' ELSE 'account' END AS col,
               c.relname IN ('accounts') AS by_id
          FROM pg_catalog.pg_class c
         WHERE c.relnamespace = 'stripe_sync'::regnamespace AND c.relkind = 'r'
           AND (c.relname = 'accounts'
                OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname IN ('_account_id', 'account') AND NOT a.attisdropped))
         ORDER BY c.relname
    LOOP
        IF dry_run THEN
            EXECUTE format('SELECT count(*) FROM stripe_sync.%I WHERE %I OPERATOR(pg_catalog.=) $1',
                           t.name, CASE WHEN t.by_id THEN 'id' ELSE t.col END)
               INTO n USING account;
        ELSE
            EXECUTE format('WITH d AS (DELETE FROM stripe_sync.%I WHERE %I OPERATOR(pg_catalog.=) $1 RETURNING 1) SELECT count(*) FROM d',
                           t.name, CASE WHEN t.by_id THEN 'id' ELSE t.col END)
               INTO n USING account;
        END IF;
        table_name := t.name;
        rows := n;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION stripe_sync.forget_account(text, boolean) IS
  'Every row of one connected account, everywhere (the synced tables, events with their handler runs and Slack alerts, subscription history, cursors, runs, drift, refresh requests, the accounts row): counted per table when dry_run (the default), deleted when not. For an account that left the platform; a later event or backfill for it starts it anew.';
REVOKE ALL ON FUNCTION stripe_sync.forget_account(text, boolean) FROM PUBLIC;

------------------------------------------------------------------------------
-- Revenue and billing views, joined within an account
------------------------------------------------------------------------------
-- (Defined in 0.2.0 with joins by id alone; here, where they now live, every
-- join also matches _account_id, so two accounts' objects of one id never mix.)
CREATE OR REPLACE VIEW stripe_sync.mrr AS
WITH items AS (
    SELECT s._account_id, s.id AS subscription, s.customer, s.currency, s.data AS sub,
           coalesce(i.product, i.data#>>'{price,product}', i.data#>>'{plan,product}') AS product,
           stripe_sync._item_mrr(i.data) AS amount
      FROM stripe_sync.subscriptions s
      JOIN stripe_sync.subscription_items i ON i._account_id = s._account_id AND i.subscription = s.id
     WHERE s.status IN ('active', 'past_due') AND NOT s._deleted
), discounted AS (
    SELECT items.*, amount * stripe_sync._discount_factor(sub, sum(amount) OVER (PARTITION BY _account_id, subscription), now()) AS mrr
      FROM items
)
SELECT d._account_id, d.currency, d.product, p.name AS product_name,
       sum(d.mrr) AS mrr,
       stripe_sync.amount_decimal(round(sum(d.mrr))::bigint, d.currency) AS mrr_decimal,
       count(DISTINCT d.subscription) AS subscriptions,
       count(DISTINCT d.customer) AS customers
  FROM discounted d
  LEFT JOIN stripe_sync.products p ON p._account_id = d._account_id AND p.id = d.product
 GROUP BY GROUPING SETS ((d._account_id, d.currency, d.product, p.name), (d._account_id, d.currency));
COMMENT ON VIEW stripe_sync.mrr IS
  'Monthly recurring revenue now, per account (_account_id '''': the platform), currency and product, plus one row per currency with product NULL: the total. Counts active and past_due subscriptions (not trialing), items normalized to a month (see _item_mrr), less discounts in effect. mrr is in the smallest currency unit, mrr_decimal in the currency.';

CREATE OR REPLACE FUNCTION stripe_sync.mrr_history(from_date date, to_date date, account text DEFAULT NULL)
RETURNS TABLE (day date, currency text, mrr numeric, new_mrr numeric, expansion_mrr numeric,
               contraction_mrr numeric, churned_mrr numeric)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH days AS (
        SELECT d::date AS day, (d + interval '1 day') AT TIME ZONE 'UTC' AS day_end
          FROM generate_series((from_date - 1)::timestamp, to_date::timestamp, interval '1 day') AS d
    ), subs AS (
        SELECT DISTINCT h.subscription FROM stripe_sync.subscription_history h
         WHERE h._account_id = coalesce(account, '')
           AND h.at < (to_date + 1)::timestamp AT TIME ZONE 'UTC'
    ), states AS (
        SELECT d.day, s.subscription, st.currency, coalesce(st.mrr, 0) AS mrr
          FROM days d CROSS JOIN subs s
          LEFT JOIN LATERAL (
                SELECT h.currency, h.mrr FROM stripe_sync.subscription_history h
                 WHERE h._account_id = coalesce(account, '') AND h.subscription = s.subscription AND h.at < d.day_end
                 ORDER BY h.at DESC, h.rank DESC, h.source DESC
                 LIMIT 1) AS st ON true
    ), moves AS (
        SELECT day, subscription, mrr,
               max(currency) OVER (PARTITION BY subscription) AS currency,
               lag(mrr, 1, 0::numeric) OVER (PARTITION BY subscription ORDER BY day) AS prev
          FROM states
    )
    SELECT day, currency,
           sum(mrr),
           sum(CASE WHEN prev = 0 AND mrr > 0 THEN mrr ELSE 0 END),
           sum(CASE WHEN prev > 0 AND mrr > prev THEN mrr - prev ELSE 0 END),
           sum(CASE WHEN prev > 0 AND mrr > 0 AND mrr < prev THEN prev - mrr ELSE 0 END),
           sum(CASE WHEN prev > 0 AND mrr = 0 THEN prev ELSE 0 END)
      FROM moves
     WHERE day >= from_date AND currency IS NOT NULL
     GROUP BY day, currency
     ORDER BY day, currency
$$;
COMMENT ON FUNCTION stripe_sync.mrr_history(date, date, text) IS
  'MRR at the end of each UTC day from from_date to to_date, per currency, for one account (NULL or '''': the platform), from each subscription''s newest state in subscription_history at that time; with the day''s movements against the previous day: new (0 to more), expansion, contraction, churned (to 0: canceled, unpaid, ...), all positive.';

REVOKE ALL ON FUNCTION stripe_sync.mrr_history(date, date, text) FROM PUBLIC;

CREATE OR REPLACE VIEW stripe_sync.customer_billing_state AS
SELECT c.id AS customer, c._account_id, c.email, c.name,
       s.worst_status AS subscription_status,
       coalesce(s.live, 0) AS live_subscriptions,
       inv.past_due_since,
       coalesce(inv.failed_payment_attempts, 0) AS failed_payment_attempts,
       inv.next_payment_attempt,
       inv.amount_remaining AS open_amount,
       coalesce(f.message, pi.message) AS last_failure_message,
       coalesce(f.at, pi.at) AS last_failure_at,
       c.delinquent
  FROM stripe_sync.customers c
  LEFT JOIN LATERAL (
        SELECT (array_agg(x.status ORDER BY stripe_sync._status_severity(x.status) DESC NULLS LAST))[1] AS worst_status,
               count(*) FILTER (WHERE x.status NOT IN ('canceled', 'incomplete_expired')) AS live
          FROM stripe_sync.subscriptions x WHERE x._account_id = c._account_id AND x.customer = c.id AND NOT x._deleted) AS s ON true
  LEFT JOIN LATERAL (
        SELECT min(i.created) FILTER (WHERE i.attempt_count > 0) AS past_due_since,
               sum(i.attempt_count) FILTER (WHERE i.attempt_count > 0) AS failed_payment_attempts,
               min(to_timestamp((i.data->>'next_payment_attempt')::double precision)) AS next_payment_attempt,
               sum(i.amount_remaining) AS amount_remaining
          FROM stripe_sync.invoices i WHERE i._account_id = c._account_id AND i.customer = c.id AND i.status = 'open' AND NOT i._deleted) AS inv ON true
  LEFT JOIN LATERAL (
        SELECT ch.failure_message AS message, ch.created AS at FROM stripe_sync.charges ch
         WHERE ch._account_id = c._account_id AND ch.customer = c.id AND ch.status = 'failed'
         ORDER BY ch.created DESC LIMIT 1) AS f ON true
  LEFT JOIN LATERAL (
        SELECT p.data#>>'{last_payment_error,message}' AS message, p.created AS at FROM stripe_sync.payment_intents p
         WHERE p._account_id = c._account_id AND p.customer = c.id AND p.data#>>'{last_payment_error,message}' IS NOT NULL
         ORDER BY p.created DESC LIMIT 1) AS pi ON true
 WHERE NOT c._deleted;
COMMENT ON VIEW stripe_sync.customer_billing_state IS
  'Per customer, what a dunning process needs: the worst status of its subscriptions (unpaid > past_due > incomplete > paused > trialing > active > incomplete_expired > canceled), live (not ended) subscriptions, past_due_since (created of its oldest open invoice with a failed attempt), failed payment attempts and the next one over its open invoices, the amount they leave open, and the newest failure message (failed charge, else payment intent).';

CREATE OR REPLACE VIEW stripe_sync.active_entitlements AS
SELECT s.customer, s._account_id, s.id AS subscription, s.status AS subscription_status,
       i.id AS subscription_item, i.quantity,
       coalesce(i.price, i.plan) AS price,
       coalesce(p.lookup_key, i.data#>>'{price,lookup_key}') AS price_lookup_key,
       coalesce(i.product, i.data#>>'{price,product}', i.data#>>'{plan,product}') AS product,
       pr.name AS product_name,
       coalesce(pr.metadata, '{}'::jsonb) AS product_metadata,
       coalesce(p.metadata, i.data#>'{price,metadata}', '{}'::jsonb) AS price_metadata,
       coalesce(i.current_period_end, s.current_period_end) AS current_period_end,
       s.trial_end
  FROM stripe_sync.subscriptions s
  JOIN stripe_sync.subscription_items i ON i._account_id = s._account_id AND i.subscription = s.id
  LEFT JOIN stripe_sync.prices p ON p._account_id = s._account_id AND p.id = i.price
  LEFT JOIN stripe_sync.products pr ON pr._account_id = s._account_id AND pr.id = coalesce(i.product, i.data#>>'{price,product}', i.data#>>'{plan,product}')
 WHERE s.status IN ('active', 'trialing') AND NOT s._deleted;
COMMENT ON VIEW stripe_sync.active_entitlements IS
  'For feature gating: every item of an active or trialing subscription with its price (lookup key, metadata) and product (name, metadata).';


------------------------------------------------------------------------------
-- Indexes for the worker's look-ups
------------------------------------------------------------------------------
-- Is a catch-up due (the newest catch-up run's start)?
CREATE INDEX sync_runs_kind_started_idx ON stripe_sync.sync_runs (kind, started_at);
-- Rows whose embedded child list arrived partial, to re-read (checked every second).
CREATE INDEX subscriptions_children_partial_idx ON stripe_sync.subscriptions (_account_id, id)
    WHERE NOT _children_complete AND NOT _deleted;
CREATE INDEX invoices_children_partial_idx ON stripe_sync.invoices (_account_id, id)
    WHERE NOT _children_complete AND NOT _deleted;
-- A parent's children are found by the parent's account and id (the apply replaces them after
-- every write of the parent): one index serves both, so that no plan kept by the apply, made
-- while the table was small, ANDs the parent's index with the primary key's leading
-- _account_id, which matches every row of the account (measured: 0.24 s a batch at 11,000 line items).
DROP INDEX stripe_sync.subscription_items_subscription_idx;
CREATE INDEX subscription_items_subscription_idx ON stripe_sync.subscription_items (subscription, _account_id);
DROP INDEX stripe_sync.invoice_line_items_invoice_idx;
CREATE INDEX invoice_line_items_invoice_idx ON stripe_sync.invoice_line_items (invoice, _account_id);

------------------------------------------------------------------------------
-- Status: a catch-up gap in any account
------------------------------------------------------------------------------
-- (Defined in 0.2.0, where catch_up_gap read the newest catch-up run of any
-- account; the worker now runs one per account every few minutes.)
CREATE OR REPLACE VIEW stripe_sync.status AS
SELECT (SELECT count(*) FROM stripe_sync.events WHERE status = 'pending') AS pending,
       (SELECT now() - min(received_at) FROM stripe_sync.events WHERE status = 'pending') AS oldest_pending_age,
       (SELECT count(*) FROM stripe_sync.events WHERE status = 'failed') AS failed,
       recent.applied_last_minute,
       recent.applied_last_hour,
       recent.other_api_version_last_hour,
       w.pid AS worker_pid,
       w.last_heartbeat AS worker_heartbeat,
       (SELECT bool_or(l.created_after < l.started_at - interval '30 days')
          FROM (SELECT DISTINCT ON (coalesce(r.account, '')) r.created_after, r.started_at
                  FROM stripe_sync.sync_runs r WHERE r.kind = 'catch_up'
                 ORDER BY coalesce(r.account, ''), r.id DESC) AS l) AS catch_up_gap,
       (SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'pending') AS handler_runs_pending,
       (SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'failed') AS handler_runs_failed,
       (SELECT count(*) FROM stripe_sync.alerts WHERE status = 'pending') AS alerts_pending,
       (SELECT count(*) FROM stripe_sync.alerts WHERE status = 'failed') AS alerts_failed
  FROM (SELECT count(*) FILTER (WHERE processed_at > now() - interval '1 minute') AS applied_last_minute,
               count(*) AS applied_last_hour,
               count(*) FILTER (WHERE api_version IS DISTINCT FROM
                                      pg_catalog.current_setting('stripe_sync.api_version')) AS other_api_version_last_hour
          FROM stripe_sync.events
         WHERE processed_at > now() - interval '1 hour' AND status = 'processed') AS recent
  LEFT JOIN stripe_sync.worker_status() AS w ON true;
COMMENT ON VIEW stripe_sync.status IS
  'Health at a glance: queue depth and age, failures, throughput, events applied in the last hour whose api_version differs from stripe_sync.api_version (applied all the same), the worker (NULL pid: no worker running), catch_up_gap (the last catch_up of some account began beyond Stripe''s 30-day window, so events may be lost: run backfill), and handler runs and Slack alerts waiting or failed.';

