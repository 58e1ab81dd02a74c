-- Stores a verified event once ($4: its body, already jsonb; $9: thin). A returned row means queued; none means duplicate.
INSERT INTO stripe_sync.events
       (id, type, created, data, object_type, object_id, account, api_version, thin)
VALUES ($1, $2, pg_catalog.to_timestamp($3), $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING
RETURNING true
