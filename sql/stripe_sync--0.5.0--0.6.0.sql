-- stripe_sync 0.6.0: no path from an application role to superuser
-- (docs/security.md), and state that survives pg_dump and restore.
-- Both ALTER EXTENSION stripe_sync UPDATE and a fresh install run this file
-- (sql/README.md).

-- The schema must be the extension's own (the same check begins schema.sql and
-- stripe_sync--0.5.0--0.6.0.sql; pgrx-tests/test_upgrade.py keeps them equal): a role that created schema stripe_sync
-- before CREATE EXTENSION (or left objects of its own in it) would own what every
-- rule of docs/security.md trusts, and its operators would be chosen inside this
-- script. Written with pg_catalog's operators only.
DO $guard$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                WHERE n.nspname OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.name
                  AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) n.nspowner))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                   WHERE c.relnamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) c.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'i', 'a']::pg_catalog."char"[])))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                   WHERE p.pronamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) p.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) 'e'::pg_catalog."char"))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_operator o
                   WHERE o.oprnamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace)
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_type t
                   WHERE t.typnamespace OPERATOR(pg_catalog.=) 'stripe_sync'::pg_catalog.regnamespace
                     AND t.typrelid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                      WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
                                        AND d.objid OPERATOR(pg_catalog.=) t.oid
                                        AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['e', 'i']::pg_catalog."char"[])))
    THEN
        RAISE EXCEPTION 'schema stripe_sync is not the extension''s own: it belongs to a role that is not a superuser, or holds objects the extension did not create'
              USING ERRCODE = '42501',
                    HINT = 'Drop that schema (after checking what it holds), then run CREATE EXTENSION stripe_sync again.';
    END IF;
END $guard$;

------------------------------------------------------------------------------
-- Tables that are not ours: read and written as their owner
------------------------------------------------------------------------------
-- Until 0.5.0 the signup trigger was SECURITY DEFINER and built to_jsonb(NEW):
-- a cast or type of the application's ran with the extension owner's rights.
-- It now runs as the role that inserted the row, reads only the id and
-- customer id columns, and writes the outbox row as the extension owner in a
-- security-restricted operation (src/signup.rs). Existing triggers call it by
-- its oid, which CREATE OR REPLACE keeps.
CREATE OR REPLACE FUNCTION stripe_sync._enqueue_provisioning() RETURNS trigger
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', '_enqueue_provisioning_wrapper';
COMMENT ON FUNCTION stripe_sync._enqueue_provisioning() IS
  'Trigger function installed by enable_provisioning (arguments: id column, customer id column): queues a provisioning job for the new (or changed) users row and wakes the worker at commit. Runs as the role that changed the row and reads only those two columns; the outbox row is written as the extension owner.';
REVOKE ALL ON FUNCTION stripe_sync._enqueue_provisioning() FROM PUBLIC;

-- Reading a users row and writing the customer id back ran as whoever called
-- (the worker: a superuser), so the application's triggers on its own table
-- ran as superuser. Both are Rust now (src/users.rs), as the table's owner in
-- a security-restricted operation.
DROP FUNCTION stripe_sync._user_profile(regclass, text);
DROP FUNCTION stripe_sync._write_back(regclass, text, text);

CREATE OR REPLACE FUNCTION stripe_sync.provision_existing_users() RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'provision_existing_users_wrapper';
COMMENT ON FUNCTION stripe_sync.provision_existing_users() IS
  'Queues a provisioning job for every user of every provisioning target that has no customer id yet (each table read as its owner); returns how many were queued.';
REVOKE ALL ON FUNCTION stripe_sync.provision_existing_users() FROM PUBLIC;

------------------------------------------------------------------------------
-- Every function resolves names in pg_catalog (and pg_temp, last) only
------------------------------------------------------------------------------
-- Functions whose body is parsed when they run get search_path pinned, so
-- that an operator or function a role created in public (or in a schema of
-- its own on its search_path) can never be chosen inside them. SQL functions
-- written with a RETURN or BEGIN ATOMIC body were bound to pg_catalog's
-- operators when this script created them and keep no search_path: they stay
-- inlinable into the apply's statements. pgrx-tests' catalog test checks both.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'stripe_sync'::regnamespace
           AND p.prokind IN ('f', 'p')
           AND p.prosqlbody IS NULL
           AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
         ORDER BY p.oid
    LOOP
        EXECUTE format('ALTER ROUTINE %s SET search_path = pg_catalog, pg_temp', f);
    END LOOP;
END $$;

------------------------------------------------------------------------------
-- pg_dump keeps every sequence and every table that holds state
------------------------------------------------------------------------------
-- Without these, a restored database restarted the ids at 1: a new signup's
-- job collided with a restored one (and was dropped), backfill's run failed.
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.sync_runs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.provisioning_jobs_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.refresh_requests', '');

------------------------------------------------------------------------------
-- Secrets stored where every role reads them
------------------------------------------------------------------------------
-- 0.6.0 refuses ALTER DATABASE/ROLE ... SET for the secrets and ignores values
-- stored that way before; the values stay readable in pg_db_role_setting until
-- they are removed. Say where (never what).
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN
        SELECT coalesce(d.datname, '(all databases)') AS db, coalesce(r.rolname, '(all roles)') AS role, c.name
          FROM pg_catalog.pg_db_role_setting x
          LEFT JOIN pg_catalog.pg_database d ON d.oid = x.setdatabase
          LEFT JOIN pg_catalog.pg_roles r ON r.oid = x.setrole,
               unnest(x.setconfig) AS u(item),
               LATERAL (SELECT split_part(u.item, '=', 1) AS name) AS c
         WHERE c.name IN ('stripe_sync.api_key', 'stripe_sync.webhook_secret', 'stripe_sync.slack_webhook_url')
    LOOP
        RAISE WARNING '% is stored for database % and role %, where every role can read it; 0.6.0 ignores it', s.name, s.db, s.role
              USING HINT = format('Move it to postgresql.conf or ALTER SYSTEM, then remove it: ALTER %s RESET %s;',
                                  CASE WHEN s.role = '(all roles)' AND s.db = '(all databases)' THEN 'ROLE ALL'
                                       WHEN s.role = '(all roles)' THEN format('DATABASE %I', s.db)
                                       WHEN s.db = '(all databases)' THEN format('ROLE %I', s.role)
                                       ELSE format('ROLE %I IN DATABASE %I', s.role, s.db) END, s.name);
    END LOOP;
END $$;
