-- Claims up to $1 due handler runs, oldest event first, locking them (SKIP
-- LOCKED: another worker's are left alone), with what calling each needs:
-- its attempt, the role it runs as and whether that role still exists, the
-- function's owner when that owner may not act as the role, and the call.
SELECT r.event_id, r.handler_id, r.attempts + 1, h.run_as::oid,
       EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.oid = h.run_as),
       (SELECT pg_catalog.pg_get_userbyid(p.proowner)::text FROM pg_catalog.pg_proc p
         WHERE p.oid = h.handler
           AND NOT pg_catalog.pg_has_role(p.proowner, h.run_as, 'USAGE')
           AND NOT (SELECT o.rolsuper FROM pg_catalog.pg_roles o WHERE o.oid = p.proowner)),
       (SELECT format('SELECT %I.%I($1::jsonb)', n.nspname, p.proname)
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE p.oid = h.handler),
       h.handler::text, e.data::text
  FROM stripe_sync.handler_runs r
  JOIN stripe_sync.handlers h ON h.id = r.handler_id
  JOIN stripe_sync.events e ON e.id = r.event_id
 WHERE r.status = 'pending' AND r.next_attempt_at <= now()
 ORDER BY e.created, e.id, r.handler_id
 LIMIT $1
   FOR UPDATE OF r SKIP LOCKED
