-- Events $1 were applied: processed when their object type is mirrored ($2), else
-- skipped; this attempt is counted. Returns what NOTIFY reports.
UPDATE stripe_sync.events
   SET status = CASE WHEN object_type = ANY($2) THEN 'processed' ELSE 'skipped' END,
       attempts = attempts + 1,
       processed_at = now(),
       last_error = NULL
 WHERE id = ANY($1)
RETURNING id, type, status
