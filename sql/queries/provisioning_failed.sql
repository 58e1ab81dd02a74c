-- Provisioning job $1 failed with $2: left with status $3 ('pending': due
-- again after $4 milliseconds; 'failed': for good, as src/outbox.rs decided).
-- Its attempt was counted when it was claimed.
UPDATE stripe_sync.provisioning_jobs
   SET status = $3,
       last_error = $2,
       next_attempt_at = now() + $4::double precision * interval '1 millisecond'
 WHERE id = $1
