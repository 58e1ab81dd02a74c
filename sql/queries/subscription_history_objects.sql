-- Records the state of each subscription in the objects $1 fetched from the
-- API at $2 (for the connected account $3; NULL or '' for the platform).
INSERT INTO stripe_sync.subscription_history
       (subscription, _account_id, at, rank, source, status, currency, customer, mrr)
SELECT o->>'id', coalesce($3, ''), $2, 1, 'api', o->>'status', o->>'currency', o->>'customer',
       stripe_sync.subscription_mrr(o, $2)
  FROM jsonb_array_elements($1) AS o
 WHERE o->>'object' = 'subscription' AND NOT stripe_sync._is_stub(o)
ON CONFLICT (_account_id, subscription, at, rank, source) DO NOTHING
