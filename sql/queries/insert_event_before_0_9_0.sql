-- insert_event.sql for a schema older than 0.9.0 (the library installed, ALTER
-- EXTENSION stripe_sync UPDATE not yet run): events has no column thin. The
-- update marks the thin events stored this way, all still pending.
INSERT INTO stripe_sync.events
       (id, type, created, data, object_type, object_id, account, api_version)
VALUES ($1, $2, pg_catalog.to_timestamp($3), $4, $5, $6, $7, $8)
ON CONFLICT (id) DO NOTHING
RETURNING true
