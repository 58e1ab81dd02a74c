-- The run of handler $2 for event $1 raised $3: left with status $4
-- ('pending': due again after $5 milliseconds; 'failed': for good, as
-- src/outbox.rs decided).
UPDATE stripe_sync.handler_runs
   SET attempts = attempts + 1,
       last_error = $3,
       status = $4,
       next_attempt_at = now() + $5::double precision * interval '1 millisecond',
       finished_at = CASE WHEN $4 = 'failed' THEN now() END
 WHERE event_id = $1 AND handler_id = $2
