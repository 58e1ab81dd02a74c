-- The run of handler $2 for event $1 returned: done, at most once (it
-- commits with the handler's effects).
UPDATE stripe_sync.handler_runs
   SET status = 'succeeded', attempts = attempts + 1, finished_at = now()
 WHERE event_id = $1 AND handler_id = $2
