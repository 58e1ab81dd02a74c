-- Leases the claimed alerts $1 (bigint[]) for 2 minutes: a worker that dies
-- mid-send leaves them to be tried again after it.
UPDATE stripe_sync.alerts SET next_attempt_at = now() + interval '2 minutes' WHERE id = ANY($1)
