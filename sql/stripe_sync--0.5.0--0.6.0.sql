-- stripe_sync 0.6.0: no path from an application role to superuser
-- (docs/security.md), and state that survives pg_dump and restore.
-- Both ALTER EXTENSION stripe_sync UPDATE and a fresh install run this file
-- (sql/README.md).

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
