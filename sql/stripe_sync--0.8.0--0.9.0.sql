-- stripe_sync 0.8.0 -> 0.9.0: entitlements, product features, thin events, payouts reconciled.
--   * stripe_sync.entitlement_summaries and stripe_sync.customer_entitlements:
--     which features each customer has now, from Stripe's
--     entitlements.active_entitlement_summary.updated events (the newest
--     summary replaces the customer's rows in one step) and from
--     backfill('entitlements.active_entitlement_summary').
--   * stripe_sync.product_features: the features attached to each product,
--     which Stripe embeds nowhere and sends no events for: backfill('product_feature')
--     lists them product by product.
--   * Thin events (Stripe's event destinations, object v2.core.event):
--     events.thin; ingest_event verifies and stores them like the others, the
--     worker reads the object each points at from the API, catch_up lists
--     /v2/core/events.
--   * stripe_sync.payout_balance_transactions and stripe_sync.payout_reconciliation:
--     what each automatic payout paid out, and the charges, refunds, disputes
--     and invoices behind it.
--   * stripe_sync.active_entitlements answers from Stripe's Entitlements
--     where an account uses them.
--   * sync_runs.objects_left: a backfill's estimate of what is left.
-- Run by ALTER EXTENSION stripe_sync UPDATE and, last, by a fresh install.

------------------------------------------------------------------------------
-- Thin events
------------------------------------------------------------------------------
ALTER TABLE stripe_sync.events ADD COLUMN thin boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN stripe_sync.events.thin IS
  'A thin event (object v2.core.event, from an event destination): it carries no object, only related_object, whose type and id are object_type and object_id. Applying it means reading that object from the API (through refresh_requests); it is processed when that type is mirrored, else skipped.';

------------------------------------------------------------------------------
-- A backfill's progress
------------------------------------------------------------------------------
ALTER TABLE stripe_sync.sync_runs ADD COLUMN objects_left bigint;
COMMENT ON COLUMN stripe_sync.sync_runs.objects_left IS
  'While a backfill pages by time slices: an estimate of the objects still to list (each slice''s time left at the density its pages showed), updated with every page; NULL when there is none. With objects and started_at, what the progress NOTICEs of backfill() report (the rate, the time left).';

------------------------------------------------------------------------------
-- Customers' active entitlements (docs/schema.md describes every column)
------------------------------------------------------------------------------
-- entitlement_summaries (object entitlements.active_entitlement_summary)
CREATE TABLE stripe_sync.entitlement_summaries (
    id                 text NOT NULL,
    customer           text,
    livemode           boolean,
    data               jsonb NOT NULL,
    _account_id        text NOT NULL DEFAULT '',
    _last_event_at     timestamptz,
    _last_event_type   text,
    _last_event_id     text,
    _deleted           boolean NOT NULL DEFAULT false,
    _synced_at         timestamptz NOT NULL DEFAULT now(),
    _children_complete boolean GENERATED ALWAYS AS (NOT coalesce((data->'entitlements'->>'has_more')::boolean, false)) STORED,
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX entitlement_summaries_customer_idx ON stripe_sync.entitlement_summaries (customer, _account_id);
CREATE INDEX entitlement_summaries_children_partial_idx ON stripe_sync.entitlement_summaries (_account_id, id)
    WHERE NOT _children_complete AND NOT _deleted;
COMMENT ON TABLE stripe_sync.entitlement_summaries IS 'Each customer''s set of active entitlements as Stripe last summarised it (entitlements.active_entitlement_summary, which has no id of its own: id is the customer''s). Written by entitlements.active_entitlement_summary.updated events and by backfill(''entitlements.active_entitlement_summary''); its list is customer_entitlements.';
COMMENT ON COLUMN stripe_sync.entitlement_summaries.id IS 'The customer''s id (cus_...): a summary is the customer''s.';
COMMENT ON COLUMN stripe_sync.entitlement_summaries.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.entitlement_summaries._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
COMMENT ON COLUMN stripe_sync.entitlement_summaries._last_event_at IS 'created time of the event that last wrote this row (or the fetch time of an API read); an older event never overwrites it.';
COMMENT ON COLUMN stripe_sync.entitlement_summaries._deleted IS 'Deleted in Stripe; the row is kept as a tombstone that no older event revives.';
COMMENT ON COLUMN stripe_sync.entitlement_summaries._children_complete IS 'False while the summary''s embedded list was partial (has_more): the worker lists the rest.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.entitlement_summaries', '');

-- customer_entitlements (child of entitlement_summaries)
CREATE TABLE stripe_sync.customer_entitlements (
    id          text NOT NULL,
    customer    text NOT NULL,
    feature     text,
    lookup_key  text,
    livemode    boolean,
    data        jsonb NOT NULL,
    _account_id text NOT NULL DEFAULT '',
    _synced_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX customer_entitlements_customer_idx ON stripe_sync.customer_entitlements (customer, _account_id);
CREATE INDEX customer_entitlements_lookup_key_idx ON stripe_sync.customer_entitlements (lookup_key, _account_id);
COMMENT ON TABLE stripe_sync.customer_entitlements IS 'The features each customer has now (Stripe''s entitlements.active_entitlement, ent_...): replaced, customer by customer and in one step, by each newer summary, so an entitlement Stripe removed is gone.';
COMMENT ON COLUMN stripe_sync.customer_entitlements.customer IS 'The customer (cus_...) the entitlement is active for.';
COMMENT ON COLUMN stripe_sync.customer_entitlements.feature IS 'The feature (feat_..., a row of entitlement_features).';
COMMENT ON COLUMN stripe_sync.customer_entitlements.lookup_key IS 'The feature''s lookup key: what an application checks.';
COMMENT ON COLUMN stripe_sync.customer_entitlements.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.customer_entitlements._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.customer_entitlements', '');

-- product_features (listed under each product)
CREATE TABLE stripe_sync.product_features (
    id                  text NOT NULL,
    product             text NOT NULL,
    entitlement_feature text,
    lookup_key          text,
    name                text,
    livemode            boolean,
    data                jsonb NOT NULL,
    _account_id         text NOT NULL DEFAULT '',
    _synced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, id)
);
CREATE INDEX product_features_product_idx ON stripe_sync.product_features (product, _account_id);
COMMENT ON TABLE stripe_sync.product_features IS 'Features attached to a product (product_feature): Stripe embeds them in no object and sends no events for them, so backfill(''product_feature'') lists them product by product (GET /v1/products/{id}/features) and replaces each product''s rows.';
COMMENT ON COLUMN stripe_sync.product_features.product IS 'The product (prod_...) the feature is attached to; Stripe''s object does not name it, the listing does.';
COMMENT ON COLUMN stripe_sync.product_features.entitlement_feature IS 'The feature (feat_..., a row of entitlement_features).';
COMMENT ON COLUMN stripe_sync.product_features.data IS 'The whole Stripe object as last applied.';
COMMENT ON COLUMN stripe_sync.product_features._account_id IS 'Connected account (Stripe Connect), '''' for the platform account.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.product_features', '');

------------------------------------------------------------------------------
-- What each payout paid out
------------------------------------------------------------------------------
CREATE TABLE stripe_sync.payout_balance_transactions (
    _account_id         text NOT NULL DEFAULT '',
    payout              text NOT NULL,
    balance_transaction text NOT NULL,
    _synced_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, payout, balance_transaction)
);
CREATE INDEX payout_balance_transactions_txn_idx
    ON stripe_sync.payout_balance_transactions (_account_id, balance_transaction);
COMMENT ON TABLE stripe_sync.payout_balance_transactions IS 'Which balance transactions each automatic payout paid out, as GET /v1/balance_transactions?payout= lists them (a balance transaction does not name its payout). Written by catch_up for every paid automatic payout, once.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.payout_balance_transactions', '');

CREATE TABLE stripe_sync.payouts_listed (
    _account_id  text NOT NULL DEFAULT '',
    payout       text NOT NULL,
    transactions integer NOT NULL,
    listed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (_account_id, payout)
);
COMMENT ON TABLE stripe_sync.payouts_listed IS 'Paid automatic payouts whose balance transactions catch_up has listed (into payout_balance_transactions), with how many: each is listed once.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.payouts_listed', '');

-- Paid automatic payouts not yet listed, for catch_up.
CREATE INDEX payouts_paid_automatic_idx ON stripe_sync.payouts (_account_id, id)
    WHERE status = 'paid' AND automatic AND NOT _deleted;

CREATE VIEW stripe_sync.payout_reconciliation AS
SELECT po._account_id,
       po.id AS payout,
       po.status AS payout_status,
       po.arrival_date,
       po.amount AS payout_amount,
       po.currency AS payout_currency,
       bt.id AS balance_transaction,
       bt.type,
       bt.reporting_category,
       bt.amount,
       bt.fee,
       bt.net,
       bt.currency,
       bt.source,
       ch.id AS charge,
       re.id AS refund,
       dp.id AS dispute,
       ch.payment_intent,
       ip.invoice
  FROM stripe_sync.payouts po
  JOIN stripe_sync.payout_balance_transactions l
    ON l._account_id = po._account_id AND l.payout = po.id
  JOIN stripe_sync.balance_transactions bt
    ON bt._account_id = l._account_id AND bt.id = l.balance_transaction
  LEFT JOIN stripe_sync.refunds re
    ON re._account_id = bt._account_id AND re.id = bt.source
  LEFT JOIN stripe_sync.disputes dp
    ON dp._account_id = bt._account_id AND dp.id = bt.source
  LEFT JOIN stripe_sync.charges ch
    ON ch._account_id = bt._account_id AND ch.id = coalesce(re.charge, dp.charge, bt.source)
  LEFT JOIN LATERAL (
        SELECT p.invoice FROM stripe_sync.invoice_payments p
         WHERE p._account_id = ch._account_id AND NOT p._deleted
           AND (p.charge = ch.id OR p.payment_intent = ch.payment_intent)
         ORDER BY p.status = 'paid' DESC, p.created DESC
         LIMIT 1) ip ON true
 WHERE bt.type <> 'payout' AND NOT po._deleted;
COMMENT ON VIEW stripe_sync.payout_reconciliation IS
  'Each paid automatic payout with every balance transaction it paid out (the payout''s own transaction left out), and what is behind each: the charge (the transaction''s source, or the charge of the refund or dispute that is its source), the refund, the dispute, the charge''s payment intent and, through stripe_sync.invoice_payments, its invoice. For a payout, sum(net) is its amount. Filled by catch_up (stripe_sync.payout_balance_transactions).';

------------------------------------------------------------------------------
-- active_entitlements: Stripe's Entitlements where an account uses them
------------------------------------------------------------------------------
-- An account uses them when it has an entitlement feature or a customer
-- entitlement in the mirror; its rows are then the customers' active
-- entitlements (the three new columns), and the subscription items otherwise.
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
       s.trial_end,
       NULL::text AS feature,
       NULL::text AS feature_lookup_key,
       'subscription'::text AS source
  FROM stripe_sync.subscriptions s
  JOIN stripe_sync.subscription_items i ON i._account_id = s._account_id AND i.subscription = s.id
  LEFT JOIN stripe_sync.prices p ON p._account_id = s._account_id AND p.id = i.price
  LEFT JOIN stripe_sync.products pr ON pr._account_id = s._account_id AND pr.id = coalesce(i.product, i.data#>>'{price,product}', i.data#>>'{plan,product}')
 WHERE s.status IN ('active', 'trialing') AND NOT s._deleted
   AND NOT EXISTS (SELECT 1 FROM stripe_sync.entitlement_features f WHERE f._account_id = s._account_id AND NOT f._deleted)
   AND NOT EXISTS (SELECT 1 FROM stripe_sync.customer_entitlements e WHERE e._account_id = s._account_id)
UNION ALL
SELECT e.customer, e._account_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       '{}'::jsonb, '{}'::jsonb, NULL, NULL,
       e.feature, e.lookup_key, 'entitlements'
  FROM stripe_sync.customer_entitlements e
  JOIN stripe_sync.entitlement_summaries es ON es._account_id = e._account_id AND es.id = e.customer
 WHERE NOT es._deleted;
COMMENT ON VIEW stripe_sync.active_entitlements IS
  'For feature gating. An account that uses Stripe''s Entitlements (it has an entitlement feature or a customer entitlement in the mirror): one row per feature a customer has now (source ''entitlements'', feature and feature_lookup_key), from stripe_sync.customer_entitlements. Any other account: every item of an active or trialing subscription with its price (lookup key, metadata) and product (name, metadata) (source ''subscription'').';

------------------------------------------------------------------------------
-- Summary events the queue kept but skipped
------------------------------------------------------------------------------
-- 0.8.0 did not mirror them and stored them without an object id (a summary
-- has none but its customer's): given it, they are queued again.
UPDATE stripe_sync.events
   SET status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL,
       object_id = data #>> '{data,object,customer}'
 WHERE status = 'skipped' AND object_type = 'entitlements.active_entitlement_summary';

-- Thin events stored by this library before the update (into a schema
-- without the column; the worker waits for the update, so they are all
-- still pending).
UPDATE stripe_sync.events
   SET thin = true
 WHERE status = 'pending' AND data->>'object' = 'v2.core.event';
