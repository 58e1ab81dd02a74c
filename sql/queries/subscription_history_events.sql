-- Records the state of each subscription that the queued events $1 carry, at
-- the event's time: out-of-order deliveries land where they belong, and a
-- state already recorded is not recorded twice. mrr is
-- stripe_sync.subscription_mrr(o, created), spelled out so that the planner
-- inlines it (a call per row would set its query up anew every time). The
-- object is read out of the event once per row: OFFSET 0 keeps the planner
-- from copying `e.data #> ...` into every use of o, each of which would
-- detoast and decompress the whole event again.
INSERT INTO stripe_sync.subscription_history
       (subscription, _account_id, at, rank, source, status, currency, customer, mrr)
SELECT e.object_id, coalesce(e.account, ''), e.created, stripe_sync._event_rank(e.type), e.id,
       o->>'status', o->>'currency', o->>'customer',
       CASE WHEN NOT stripe_sync._earns_mrr(o) THEN 0
            WHEN stripe_sync._has_discount(o) THEN stripe_sync.subscription_mrr(o, e.created)
            -- stripe_sync._undiscounted_mrr(o), whose subquery keeps it from being inlined:
            ELSE (SELECT coalesce(sum(stripe_sync._item_mrr(i)), 0)
                    FROM jsonb_array_elements(coalesce(o #> '{items,data}'::text[], '[]')) AS i)
       END
  FROM stripe_sync.events e
 CROSS JOIN LATERAL (SELECT e.data #> '{data,object}'::text[] AS o OFFSET 0) AS x
 WHERE e.id = ANY($1) AND e.object_type = 'subscription' AND NOT stripe_sync._is_stub(o)
ON CONFLICT (_account_id, subscription, at, rank, source) DO NOTHING
