-- Thin events $1 point at their objects: those of a type read by id ($2)
-- are asked for through refresh_requests, which the worker re-reads from the
-- API and applies as fetched. A request already waiting is stamped anew: a
-- fetch that began before this event does not settle it (refresh.rs drops
-- only requests older than its fetch).
INSERT INTO stripe_sync.refresh_requests (account, id, object)
SELECT DISTINCT ON (coalesce(e.account, ''), e.object_id) coalesce(e.account, ''), e.object_id, e.object_type
  FROM stripe_sync.events e
 WHERE e.id = ANY($1) AND e.thin AND e.object_type = ANY($2) AND e.object_id IS NOT NULL
 ORDER BY coalesce(e.account, ''), e.object_id
ON CONFLICT (account, id) DO UPDATE SET requested_at = excluded.requested_at, object = excluded.object
