-- Messages sent in the last minute, and whether a digest went out in it (or
-- still waits to): above stripe_sync.alert_burst a minute, alerts are folded.
SELECT count(*) FILTER (WHERE status = 'sent' AND sent_at > now() - interval '1 minute'),
       count(*) FILTER (WHERE kind = 'digest') > 0
  FROM stripe_sync.alerts
 WHERE sent_at > now() - interval '1 minute' OR (kind = 'digest' AND status = 'pending')
