-- Puts leased alerts $1 (bigint[]) that were not tried back, due after $2
-- milliseconds (Slack is down or slowing us: they wait as long as the one that failed).
UPDATE stripe_sync.alerts
   SET next_attempt_at = now() + $2::double precision * interval '1 millisecond'
 WHERE id = ANY($1)
