-- Provisioning job $1 ended with customer $2 (written back to the users row
-- in the same transaction).
UPDATE stripe_sync.provisioning_jobs
   SET status = 'done', customer_id = $2, done_at = now(), last_error = NULL
 WHERE id = $1
