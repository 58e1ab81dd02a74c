-- stripe_sync 0.2.0: reactions inside the database.
--
-- This file is both the upgrade script from 0.1.0 (ALTER EXTENSION stripe_sync
-- UPDATE) and the last part of a fresh 0.2.0 install (src/lib.rs includes it
-- after finalize.sql), so an upgraded database and a fresh one are the same by
-- construction; pgrx-tests/test_upgrade.py compares their catalogs.
--
--   handlers           SQL functions called by the worker for matching events
--   alerts             Slack messages about what needs a human
--   views              customer_billing_state, active_entitlements, mrr,
--                      mrr_history() over subscription_history
--
-- docs/reactions.md documents all of it; the security model is there too.

------------------------------------------------------------------------------
-- Event handlers
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.handlers (
    id            bigserial PRIMARY KEY,
    event_type    text NOT NULL CHECK (event_type ~ '^[a-z0-9_.*]+$'),
    handler       regprocedure NOT NULL,
    run_as        regrole NOT NULL,
    registered_by regrole NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- event_type as a LIKE pattern: '*' matches any run of characters.
    type_like     text GENERATED ALWAYS AS (replace(replace(event_type, '_', '\_'), '*', '%')) STORED,
    UNIQUE (event_type, handler)
);
COMMENT ON TABLE stripe_sync.handlers IS
  'Registered event handlers (stripe_sync.on_event): after an event has been applied, the worker calls handler(event jsonb) as role run_as for every registration whose event_type matches.';
COMMENT ON COLUMN stripe_sync.handlers.event_type IS 'An event type (invoice.paid) or a pattern where * matches anything (invoice.*, *).';
COMMENT ON COLUMN stripe_sync.handlers.run_as IS 'Role the handler runs as: the registering role unless on_event named another.';
COMMENT ON COLUMN stripe_sync.handlers.type_like IS 'event_type as a LIKE pattern, for matching.';

CREATE TABLE stripe_sync.handler_runs (
    event_id        text NOT NULL REFERENCES stripe_sync.events (id) ON DELETE CASCADE,
    handler_id      bigint NOT NULL REFERENCES stripe_sync.handlers (id) ON DELETE CASCADE,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (event_id, handler_id)
);
CREATE INDEX handler_runs_due_idx ON stripe_sync.handler_runs (next_attempt_at) WHERE status = 'pending';
CREATE INDEX handler_runs_handler_idx ON stripe_sync.handler_runs (handler_id);
COMMENT ON TABLE stripe_sync.handler_runs IS
  'One row per event and matching handler, created in the transaction that applies the event; the worker calls the handler after that commits, each call in its own subtransaction. succeeded is committed with the handler''s own effects, so a handler succeeds at most once per event; an error is retried with backoff until stripe_sync.max_attempts, then the run is failed.';
COMMENT ON COLUMN stripe_sync.handler_runs.last_error IS 'Message and SQLSTATE of the last failed call.';

CREATE VIEW stripe_sync.handler_failures AS
SELECT r.event_id, e.type AS event_type, h.handler, r.status, r.attempts, r.last_error,
       r.next_attempt_at, r.finished_at
  FROM stripe_sync.handler_runs r
  JOIN stripe_sync.handlers h ON h.id = r.handler_id
  JOIN stripe_sync.events e ON e.id = r.event_id
 WHERE r.status <> 'succeeded' AND r.attempts > 0;
COMMENT ON VIEW stripe_sync.handler_failures IS
  'Handler calls that raised: failed for good, or pending a retry (next_attempt_at).';

CREATE FUNCTION stripe_sync.on_event(event_type text, handler regprocedure, run_as regrole DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    fn   pg_catalog.pg_proc%ROWTYPE;
    id   bigint;
BEGIN
    IF NOT stripe_sync._may_manage_handlers() THEN
        RAISE EXCEPTION 'only a superuser or the owner of extension stripe_sync may register handlers'
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF event_type IS NULL OR handler IS NULL OR event_type !~ '^[a-z0-9_.*]+$' THEN
        RAISE EXCEPTION 'invalid event_type %', coalesce(quote_literal(event_type), 'NULL')
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'An event type such as invoice.paid, or a pattern where * matches anything: invoice.*, *.';
    END IF;
    SELECT * INTO fn FROM pg_proc WHERE oid = handler;
    IF fn.prokind <> 'f' OR fn.pronargs <> 1 OR fn.proargtypes[0] <> 'jsonb'::regtype OR fn.proretset THEN
        RAISE EXCEPTION 'handler % must be a function taking one jsonb argument (the event) and returning one value or void', handler
              USING ERRCODE = 'invalid_function_definition';
    END IF;
    run_as := coalesce(run_as, current_user::regrole);
    -- Registering a handler must not lend anyone a role they do not have.
    IF NOT pg_has_role(current_user, run_as, 'MEMBER') THEN
        RAISE EXCEPTION 'role % may not register a handler that runs as %', current_user, run_as
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT has_function_privilege(run_as, handler, 'EXECUTE') THEN
        RAISE EXCEPTION 'role % may not execute handler %', run_as, handler
              USING ERRCODE = 'insufficient_privilege',
                    HINT = format('GRANT EXECUTE ON FUNCTION %s TO %s;', handler, run_as);
    END IF;
    INSERT INTO stripe_sync.handlers AS h (event_type, handler, run_as, registered_by)
    VALUES (event_type, handler, run_as, current_user::regrole)
    ON CONFLICT (event_type, handler) DO UPDATE SET run_as = EXCLUDED.run_as
    RETURNING h.id INTO id;
    RETURN id;
END
$$;
COMMENT ON FUNCTION stripe_sync.on_event(text, regprocedure, regrole) IS
  'Registers handler(event jsonb) for events of event_type (exact, or with * wildcards: invoice.*, *). The worker calls it after the event has been applied, in its own subtransaction, as run_as (default: the calling role), retrying errors with backoff. Superuser or extension owner only. Returns the registration id; registering again returns the same id (and updates run_as).';

CREATE FUNCTION stripe_sync.remove_handler(event_type text, handler regprocedure)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    removed integer;
BEGIN
    IF NOT stripe_sync._may_manage_handlers() THEN
        RAISE EXCEPTION 'only a superuser or the owner of extension stripe_sync may remove handlers'
              USING ERRCODE = 'insufficient_privilege';
    END IF;
    DELETE FROM stripe_sync.handlers h
     WHERE h.handler = remove_handler.handler
       AND (remove_handler.event_type IS NULL OR h.event_type = remove_handler.event_type);
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;
COMMENT ON FUNCTION stripe_sync.remove_handler(text, regprocedure) IS
  'Removes the registration of handler for event_type (NULL: all of its registrations) with its pending runs; returns how many registrations.';

CREATE FUNCTION stripe_sync._may_manage_handlers() RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
RETURN (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = current_user)
    OR EXISTS (SELECT 1 FROM pg_extension x
                WHERE x.extname = 'stripe_sync' AND pg_has_role(current_user, x.extowner, 'USAGE'));
COMMENT ON FUNCTION stripe_sync._may_manage_handlers() IS 'True for a superuser and for the extension owner (or a member of it).';

------------------------------------------------------------------------------
-- Slack alerts
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.alerts (
    id              bigserial PRIMARY KEY,
    event_id        text,
    event_type      text,
    kind            text NOT NULL CHECK (kind IN ('event', 'dead_letter', 'digest')),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'folded')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    digest_id       bigint REFERENCES stripe_sync.alerts (id) ON DELETE SET NULL,
    message         text,
    UNIQUE (event_id, kind)
);
CREATE INDEX alerts_due_idx ON stripe_sync.alerts (next_attempt_at) WHERE status = 'pending';
CREATE INDEX alerts_sent_at_idx ON stripe_sync.alerts (sent_at);
COMMENT ON TABLE stripe_sync.alerts IS
  'Every Slack alert: queued in the transaction that applies (or dead-letters) its event while stripe_sync.slack_webhook_url is set, posted by the worker with no transaction open, retried on 429, 5xx and network errors until it goes through. Over stripe_sync.alert_burst messages a minute, due alerts are folded into one digest.';
COMMENT ON COLUMN stripe_sync.alerts.kind IS 'event: an event listed in stripe_sync.alert_events; dead_letter: an event that ended failed; digest: one message for several folded alerts.';
COMMENT ON COLUMN stripe_sync.alerts.status IS 'pending (due at next_attempt_at), sent, failed (Slack refused it stripe_sync.max_attempts times), folded (sent as part of digest_id).';
COMMENT ON COLUMN stripe_sync.alerts.message IS 'The text posted (for a digest: composed when it was folded).';

------------------------------------------------------------------------------
-- Revenue: subscription history and MRR
------------------------------------------------------------------------------
CREATE FUNCTION stripe_sync._monthly_amount(amount numeric, recurring_interval text, interval_count integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE recurring_interval
         WHEN 'month' THEN amount / greatest(interval_count, 1)
         WHEN 'year'  THEN amount / (12 * greatest(interval_count, 1))
         WHEN 'week'  THEN amount * 52 / (12 * greatest(interval_count, 1))
         WHEN 'day'   THEN amount * 365 / (12 * greatest(interval_count, 1))
         ELSE 0
       END;
COMMENT ON FUNCTION stripe_sync._monthly_amount(numeric, text, integer) IS
  'An amount billed every interval_count intervals as a monthly amount: month /n, year /12n, week *52/12n, day *365/12n.';

CREATE FUNCTION stripe_sync._item_mrr(item jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- One expression, no subquery, so the planner inlines it where it is called.
RETURN CASE WHEN coalesce(item#>>'{price,recurring,usage_type}', item#>>'{plan,usage_type}') = 'metered' THEN 0
            ELSE coalesce(stripe_sync._monthly_amount(
                     coalesce((item#>>'{price,unit_amount}')::numeric, (item#>>'{price,unit_amount_decimal}')::numeric,
                              (item#>>'{plan,amount}')::numeric)
                       * coalesce((item->>'quantity')::numeric, 1),
                     coalesce(item#>>'{price,recurring,interval}', item#>>'{plan,interval}'),
                     coalesce((item#>>'{price,recurring,interval_count}')::integer,
                              (item#>>'{plan,interval_count}')::integer, 1)), 0)
       END;
COMMENT ON FUNCTION stripe_sync._item_mrr(jsonb) IS
  'Monthly amount of one subscription item before discounts: unit_amount (of its price, or legacy plan) times quantity, normalized to a month. Metered and tiered prices (no unit_amount) count 0.';

CREATE FUNCTION stripe_sync._discount_factor(subscription jsonb, undiscounted numeric, at timestamptz)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT CASE WHEN undiscounted IS NULL OR undiscounted <= 0 THEN 1
                    ELSE greatest(coalesce(exp(sum(ln(greatest(1 - (c->>'percent_off')::numeric / 100, 1e-12)))
                                                   FILTER (WHERE c->>'percent_off' IS NOT NULL)), 1)
                                  - coalesce(sum(stripe_sync._monthly_amount((c->>'amount_off')::numeric, first_item.iv, first_item.n))
                                               FILTER (WHERE c->>'amount_off' IS NOT NULL), 0) / undiscounted,
                                  0)
               END
          -- The same discount may stand in both fields: count it once.
          FROM (SELECT DISTINCT ON (coalesce(d->>'id', d::text)) coalesce(d->'coupon', d->'source'->'coupon') AS c, d
                  FROM jsonb_array_elements(
                         CASE WHEN jsonb_typeof(subscription->'discount') = 'object' THEN jsonb_build_array(subscription->'discount') ELSE '[]' END
                         || CASE WHEN jsonb_typeof(subscription->'discounts') = 'array' THEN subscription->'discounts' ELSE '[]' END) AS d
                 WHERE jsonb_typeof(d) = 'object') AS discounts(c, d)
          CROSS JOIN LATERAL (
                SELECT coalesce(p->'recurring'->>'interval', p->>'interval') AS iv,
                       coalesce((p->'recurring'->>'interval_count')::integer, (p->>'interval_count')::integer, 1) AS n
                  FROM (SELECT coalesce(subscription#>'{items,data,0,price}', subscription#>'{items,data,0,plan}') AS p) AS x) AS first_item
         WHERE jsonb_typeof(c) = 'object'
           AND (d->>'end' IS NULL OR to_timestamp((d->>'end')::double precision) > at)
           AND (d->>'start' IS NULL OR to_timestamp((d->>'start')::double precision) <= at));
COMMENT ON FUNCTION stripe_sync._discount_factor(jsonb, numeric, timestamptz) IS
  'What remains of a subscription''s monthly amount (undiscounted) after the discounts it carries (discount, or expanded discounts) that are in effect at at: percent_off coupons multiply, amount_off coupons subtract their monthly equivalent; never below 0.';

CREATE FUNCTION stripe_sync._earns_mrr(subscription jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(subscription->>'status' IN ('active', 'past_due'), false);
COMMENT ON FUNCTION stripe_sync._earns_mrr(jsonb) IS 'True for a subscription whose status counts toward MRR: active or past_due.';

CREATE FUNCTION stripe_sync._has_discount(subscription jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN jsonb_typeof(subscription->'discount') = 'object'
       OR coalesce(subscription->'discounts' @? '$[*] ? (@.type() == "object")', false);
COMMENT ON FUNCTION stripe_sync._has_discount(jsonb) IS 'True when a subscription carries a discount object (discount, or expanded discounts).';

CREATE FUNCTION stripe_sync._undiscounted_mrr(subscription jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (SELECT coalesce(sum(stripe_sync._item_mrr(i)), 0)
          FROM jsonb_array_elements(coalesce(subscription#>'{items,data}', '[]')) AS i);
COMMENT ON FUNCTION stripe_sync._undiscounted_mrr(jsonb) IS 'The monthly amount of a subscription''s embedded items, before discounts.';

CREATE FUNCTION stripe_sync.subscription_mrr(subscription jsonb, at timestamptz DEFAULT now()) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN NOT stripe_sync._earns_mrr(subscription) THEN 0
            WHEN stripe_sync._has_discount(subscription)
            THEN stripe_sync._undiscounted_mrr(subscription)
                 * stripe_sync._discount_factor(subscription, stripe_sync._undiscounted_mrr(subscription), at)
            ELSE stripe_sync._undiscounted_mrr(subscription)
       END;
COMMENT ON FUNCTION stripe_sync.subscription_mrr(jsonb, timestamptz) IS
  'Monthly recurring revenue of one subscription object, in the smallest currency unit (unrounded): 0 unless active or past_due, else its items normalized to a month, less the discounts in effect at at.';

CREATE TABLE stripe_sync.subscription_history (
    subscription text NOT NULL,
    _account_id  text,
    at           timestamptz NOT NULL,
    rank         integer NOT NULL,
    source       text NOT NULL,
    status       text,
    currency     text,
    customer     text,
    mrr          numeric NOT NULL,
    PRIMARY KEY (subscription, at, rank, source)
);
COMMENT ON TABLE stripe_sync.subscription_history IS
  'Every state of every subscription that was applied: one row per customer.subscription.* event (at = the event''s created, rank = stripe_sync._event_rank) and per fetch from the API (source api). Out-of-order deliveries land at their own time. mrr_history() reads it.';
COMMENT ON COLUMN stripe_sync.subscription_history.source IS 'The event id, or api:<time> for a state read from the API.';
COMMENT ON COLUMN stripe_sync.subscription_history.mrr IS 'stripe_sync.subscription_mrr of that state.';

CREATE VIEW stripe_sync.mrr AS
WITH items AS (
    SELECT s._account_id, s.id AS subscription, s.customer, s.currency, s.data AS sub,
           coalesce(i.product, i.data#>>'{price,product}', i.data#>>'{plan,product}') AS product,
           stripe_sync._item_mrr(i.data) AS amount
      FROM stripe_sync.subscriptions s
      JOIN stripe_sync.subscription_items i ON i.subscription = s.id
     WHERE s.status IN ('active', 'past_due') AND NOT s._deleted
), discounted AS (
    SELECT items.*, amount * stripe_sync._discount_factor(sub, sum(amount) OVER (PARTITION BY subscription), now()) AS mrr
      FROM items
)
SELECT d._account_id, d.currency, d.product, p.name AS product_name,
       sum(d.mrr) AS mrr,
       stripe_sync.amount_decimal(round(sum(d.mrr))::bigint, d.currency) AS mrr_decimal,
       count(DISTINCT d.subscription) AS subscriptions,
       count(DISTINCT d.customer) AS customers
  FROM discounted d
  LEFT JOIN stripe_sync.products p ON p.id = d.product
 GROUP BY GROUPING SETS ((d._account_id, d.currency, d.product, p.name), (d._account_id, d.currency));
COMMENT ON VIEW stripe_sync.mrr IS
  'Monthly recurring revenue now, per account (_account_id NULL: the platform), currency and product, plus one row per currency with product NULL: the total. Counts active and past_due subscriptions (not trialing), items normalized to a month (see _item_mrr), less discounts in effect. mrr is in the smallest currency unit, mrr_decimal in the currency.';

CREATE FUNCTION stripe_sync.mrr_history(from_date date, to_date date, account text DEFAULT NULL)
RETURNS TABLE (day date, currency text, mrr numeric, new_mrr numeric, expansion_mrr numeric,
               contraction_mrr numeric, churned_mrr numeric)
LANGUAGE sql STABLE
AS $$
    WITH days AS (
        SELECT d::date AS day, (d + interval '1 day') AT TIME ZONE 'UTC' AS day_end
          FROM generate_series((from_date - 1)::timestamp, to_date::timestamp, interval '1 day') AS d
    ), subs AS (
        SELECT DISTINCT h.subscription FROM stripe_sync.subscription_history h
         WHERE h._account_id IS NOT DISTINCT FROM account
           AND h.at < (to_date + 1)::timestamp AT TIME ZONE 'UTC'
    ), states AS (
        SELECT d.day, s.subscription, st.currency, coalesce(st.mrr, 0) AS mrr
          FROM days d CROSS JOIN subs s
          LEFT JOIN LATERAL (
                SELECT h.currency, h.mrr FROM stripe_sync.subscription_history h
                 WHERE h.subscription = s.subscription AND h.at < d.day_end
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
  'MRR at the end of each UTC day from from_date to to_date, per currency, for one account (NULL: the platform), from each subscription''s newest state in subscription_history at that time; with the day''s movements against the previous day: new (0 to more), expansion, contraction, churned (to 0: canceled, unpaid, ...), all positive.';

------------------------------------------------------------------------------
-- Views for dunning and feature gating
------------------------------------------------------------------------------
CREATE FUNCTION stripe_sync._status_severity(status text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE status
         WHEN 'unpaid' THEN 7 WHEN 'past_due' THEN 6 WHEN 'incomplete' THEN 5 WHEN 'paused' THEN 4
         WHEN 'trialing' THEN 3 WHEN 'active' THEN 2 WHEN 'incomplete_expired' THEN 1 WHEN 'canceled' THEN 0
       END;
COMMENT ON FUNCTION stripe_sync._status_severity(text) IS
  'How much a subscription status needs attention: unpaid > past_due > incomplete > paused > trialing > active > incomplete_expired > canceled.';

CREATE VIEW stripe_sync.customer_billing_state AS
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
          FROM stripe_sync.subscriptions x WHERE x.customer = c.id AND NOT x._deleted) AS s ON true
  LEFT JOIN LATERAL (
        SELECT min(i.created) FILTER (WHERE i.attempt_count > 0) AS past_due_since,
               sum(i.attempt_count) FILTER (WHERE i.attempt_count > 0) AS failed_payment_attempts,
               min(to_timestamp((i.data->>'next_payment_attempt')::double precision)) AS next_payment_attempt,
               sum(i.amount_remaining) AS amount_remaining
          FROM stripe_sync.invoices i WHERE i.customer = c.id AND i.status = 'open' AND NOT i._deleted) AS inv ON true
  LEFT JOIN LATERAL (
        SELECT ch.failure_message AS message, ch.created AS at FROM stripe_sync.charges ch
         WHERE ch.customer = c.id AND ch.status = 'failed'
         ORDER BY ch.created DESC LIMIT 1) AS f ON true
  LEFT JOIN LATERAL (
        SELECT p.data#>>'{last_payment_error,message}' AS message, p.created AS at FROM stripe_sync.payment_intents p
         WHERE p.customer = c.id AND p.data#>>'{last_payment_error,message}' IS NOT NULL
         ORDER BY p.created DESC LIMIT 1) AS pi ON true
 WHERE NOT c._deleted;
COMMENT ON VIEW stripe_sync.customer_billing_state IS
  'Per customer, what a dunning process needs: the worst status of its subscriptions (unpaid > past_due > incomplete > paused > trialing > active > incomplete_expired > canceled), live (not ended) subscriptions, past_due_since (created of its oldest open invoice with a failed attempt), failed payment attempts and the next one over its open invoices, the amount they leave open, and the newest failure message (failed charge, else payment intent).';

CREATE VIEW stripe_sync.active_entitlements AS
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
  JOIN stripe_sync.subscription_items i ON i.subscription = s.id
  LEFT JOIN stripe_sync.prices p ON p.id = i.price
  LEFT JOIN stripe_sync.products pr ON pr.id = coalesce(i.product, i.data#>>'{price,product}', i.data#>>'{plan,product}')
 WHERE s.status IN ('active', 'trialing') AND NOT s._deleted;
COMMENT ON VIEW stripe_sync.active_entitlements IS
  'For feature gating: every item of an active or trialing subscription with its price (lookup key, metadata) and product (name, metadata).';

------------------------------------------------------------------------------
-- Status, pg_dump, privileges
------------------------------------------------------------------------------
CREATE OR REPLACE VIEW stripe_sync.status AS
SELECT (SELECT count(*) FROM stripe_sync.events WHERE status = 'pending') AS pending,
       (SELECT now() - min(received_at) FROM stripe_sync.events WHERE status = 'pending') AS oldest_pending_age,
       (SELECT count(*) FROM stripe_sync.events WHERE status = 'failed') AS failed,
       recent.applied_last_minute,
       recent.applied_last_hour,
       recent.other_api_version_last_hour,
       w.pid AS worker_pid,
       w.last_heartbeat AS worker_heartbeat,
       (SELECT r.created_after < r.started_at - interval '30 days'
          FROM stripe_sync.sync_runs r WHERE r.kind = 'catch_up'
         ORDER BY r.id DESC LIMIT 1) AS catch_up_gap,
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
  'Health at a glance: queue depth and age, failures, throughput, events applied in the last hour whose api_version differs from stripe_sync.api_version (applied all the same), the worker (NULL pid: no worker running), catch_up_gap (the last catch_up started from an event older than Stripe''s 30-day window, so events may be lost: run backfill), and handler runs and Slack alerts waiting or failed.';

COMMENT ON FUNCTION stripe_sync.purge_events(interval) IS
  'Deletes processed and skipped events handled longer ago than older_than (default stripe_sync.event_retention), with their finished handler runs, and Slack alerts done with (sent, folded, failed) queued before then; never pending or failed events, nor events whose handlers still have to run. Returns how many events. The worker runs it hourly.';

SELECT pg_catalog.pg_extension_config_dump('stripe_sync.handlers', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.handlers_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.handler_runs', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.alerts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.subscription_history', '');

REVOKE ALL ON FUNCTION stripe_sync.on_event(text, regprocedure, regrole) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.remove_handler(text, regprocedure) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync._may_manage_handlers() FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.mrr_history(date, date, text) FROM PUBLIC;
