-- A POST of alert $1 failed with $2: left with status $4 ('pending': due
-- again after $3 milliseconds; 'failed': for good, as src/outbox.rs decided).
UPDATE stripe_sync.alerts
   SET attempts = attempts + 1,
       last_error = $2,
       next_attempt_at = now() + $3::double precision * interval '1 millisecond',
       status = $4
 WHERE id = $1
