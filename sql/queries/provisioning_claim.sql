-- Claims up to $1 due provisioning jobs in order, locking them (SKIP LOCKED),
-- and leases them: each claim counts as an attempt, and a job whose worker
-- died mid-call is due again after the lease (10 minutes), its Stripe call
-- made again under the same idempotency key.
WITH due AS (
    SELECT id FROM stripe_sync.provisioning_jobs
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
UPDATE stripe_sync.provisioning_jobs j
   SET attempts = j.attempts + 1, next_attempt_at = now() + interval '10 minutes'
  FROM due WHERE j.id = due.id
RETURNING j.id
