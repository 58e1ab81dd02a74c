-- Claims up to $1 due alerts in order, locking them (SKIP LOCKED), with the
-- facts their messages need: the event's object, its account, its attempts
-- and error (a dead letter), and the customer and charge it concerns (looked
-- up within the event's account).
SELECT a.id, a.kind, coalesce(a.event_id, ''), coalesce(a.event_type, ''), a.message, a.attempts,
       e.data #> '{data,object}'::text[], coalesce((e.data ->> 'livemode')::boolean, false),
       e.account, e.attempts, e.last_error,
       cu.id, cu.email, cu.name, ch.amount, ch.currency
  FROM stripe_sync.alerts a
  LEFT JOIN stripe_sync.events e ON e.id = a.event_id
  LEFT JOIN stripe_sync.charges ch
         ON ch._account_id = coalesce(e.account, '') AND ch.id = e.data #>> '{data,object,charge}'::text[]
  LEFT JOIN stripe_sync.customers cu
         ON cu._account_id = coalesce(e.account, '') AND cu.id = CASE WHEN e.object_type = 'customer' THEN e.object_id
                         ELSE coalesce(e.data #>> '{data,object,customer}'::text[], ch.customer) END
 WHERE a.status = 'pending' AND a.next_attempt_at <= now()
 ORDER BY a.id
 LIMIT $1
   FOR UPDATE OF a SKIP LOCKED
