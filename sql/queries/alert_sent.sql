-- Alert $1 was posted with text $2.
UPDATE stripe_sync.alerts
   SET status = 'sent', sent_at = now(), attempts = attempts + 1, last_error = NULL, message = $2
 WHERE id = $1
