-- stripe_sync schema: signup provisioning (Postgres -> Stripe). An AFTER INSERT
-- trigger on the application's users table writes a job in the signup's own
-- transaction (an outbox: a rolled-back signup provisions nothing, a committed
-- one is never forgotten); the worker creates the Stripe customer and writes
-- its id back to the users row.

CREATE TABLE stripe_sync.provisioning_targets (
    users              regclass PRIMARY KEY,
    id_column          name NOT NULL,
    email_column       name NOT NULL,
    name_column        name,
    customer_id_column name NOT NULL,
    sync_updates       boolean NOT NULL DEFAULT false,
    enabled_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE stripe_sync.provisioning_targets IS
  'Users tables whose new rows become Stripe customers (see enable_provisioning), with the columns used.';

CREATE TABLE stripe_sync.provisioning_jobs (
    id              bigserial PRIMARY KEY,
    users           regclass NOT NULL,
    user_id         text NOT NULL,
    kind            text NOT NULL DEFAULT 'create' CHECK (kind IN ('create', 'update')),
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    customer_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    done_at         timestamptz
);
-- One creation per user, ever: a second signup trigger or provision_existing_users() is a no-op.
CREATE UNIQUE INDEX provisioning_jobs_create_once ON stripe_sync.provisioning_jobs (users, user_id) WHERE kind = 'create';
CREATE INDEX provisioning_jobs_due_idx ON stripe_sync.provisioning_jobs (next_attempt_at) WHERE status = 'pending';
COMMENT ON TABLE stripe_sync.provisioning_jobs IS
  'Outbox of provisioning work: create (a new user) or update (email or name changed). pending jobs are leased by the worker while it calls Stripe (next_attempt_at moves forward), so a crashed attempt is taken up again.';
COMMENT ON COLUMN stripe_sync.provisioning_jobs.last_error IS 'Stripe''s message (or the network error) of the last failed attempt.';

CREATE VIEW stripe_sync.provisioning_failures AS
SELECT j.users, j.user_id, j.kind, j.attempts, j.last_error, j.created_at
  FROM stripe_sync.provisioning_jobs j
 WHERE j.status = 'failed';
COMMENT ON VIEW stripe_sync.provisioning_failures IS
  'Users whose provisioning failed for good (e.g. Stripe refused the email): fix the row, then SELECT stripe_sync.create_customer(user_id).';

-- Reads what provisioning needs from one users row; identifiers are quoted.
CREATE FUNCTION stripe_sync._user_profile(users regclass, user_id text, OUT present boolean,
                                          OUT email text, OUT name text, OUT customer_id text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE t stripe_sync.provisioning_targets; n bigint;
BEGIN
    SELECT * INTO t FROM stripe_sync.provisioning_targets p WHERE p.users = _user_profile.users;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'provisioning is not enabled for table %', users
            USING ERRCODE = '55000', HINT = 'call stripe_sync.enable_provisioning() for it first';
    END IF;
    EXECUTE format('SELECT %I::text, %s, %I::text FROM %s WHERE %I::text = $1',
                   t.email_column,
                   CASE WHEN t.name_column IS NULL THEN 'NULL::text' ELSE format('%I::text', t.name_column) END,
                   t.customer_id_column, t.users, t.id_column)
       INTO email, name, customer_id USING user_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    present := n > 0;
END $$;
COMMENT ON FUNCTION stripe_sync._user_profile(regclass, text) IS
  'Whether one user of a provisioning target exists, and its email, name and current customer id.';

-- Writes the customer id back to the users row, unless it already holds one.
CREATE FUNCTION stripe_sync._write_back(users regclass, user_id text, customer_id text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE t stripe_sync.provisioning_targets; n bigint;
BEGIN
    SELECT * INTO STRICT t FROM stripe_sync.provisioning_targets p WHERE p.users = _write_back.users;
    EXECUTE format('UPDATE %s SET %I = $1 WHERE %I::text = $2 AND %I IS NULL',
                   t.users, t.customer_id_column, t.id_column, t.customer_id_column)
       USING customer_id, user_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n > 0;
END $$;
COMMENT ON FUNCTION stripe_sync._write_back(regclass, text, text) IS
  'Sets the users row''s customer id column if it is still NULL; true when it did.';

-- The trigger function, stripe_sync._enqueue_provisioning(), is defined in
-- stripe_sync--0.5.0--0.6.0.sql (written in Rust since 0.6.0).

CREATE FUNCTION stripe_sync.enable_provisioning(
    users regclass, id_column name, email_column name,
    name_column name DEFAULT NULL, customer_id_column name DEFAULT 'stripe_customer_id',
    sync_updates boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    col record;
    wanted constant text[] := ARRAY['id_column', 'email_column', 'name_column', 'customer_id_column'];
    names name[] := ARRAY[id_column, email_column, name_column, customer_id_column];
    watched text;
BEGIN
    IF users IS NULL OR id_column IS NULL OR email_column IS NULL OR customer_id_column IS NULL THEN
        RAISE EXCEPTION 'users, id_column, email_column and customer_id_column must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF (SELECT relkind FROM pg_class WHERE oid = users) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', users USING ERRCODE = '42809';
    END IF;
    FOR i IN 1 .. 4 LOOP
        CONTINUE WHEN names[i] IS NULL;
        SELECT a.attname, t.typcategory, format_type(a.atttypid, a.atttypmod) AS typ
          INTO col
          FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = users AND a.attname = names[i] AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of relation % does not exist', names[i], users
                USING ERRCODE = '42703', HINT = format('%s names a column of the users table', wanted[i]);
        END IF;
        IF i = 1 AND col.typcategory IN ('A', 'C', 'U') AND col.typ NOT IN ('uuid') THEN
            RAISE EXCEPTION 'column "%" has type %, which cannot identify a user', names[i], col.typ
                USING ERRCODE = '42804', HINT = 'use a text, integer or uuid key column';
        ELSIF i > 1 AND col.typcategory <> 'S' THEN
            RAISE EXCEPTION 'column "%" has type %, but % must be a text column', names[i], col.typ, wanted[i]
                USING ERRCODE = '42804';
        END IF;
    END LOOP;

    INSERT INTO stripe_sync.provisioning_targets AS p
           (users, id_column, email_column, name_column, customer_id_column, sync_updates)
    VALUES (users, id_column, email_column, name_column, customer_id_column, sync_updates)
    ON CONFLICT (users) DO UPDATE
       SET id_column = excluded.id_column, email_column = excluded.email_column,
           name_column = excluded.name_column, customer_id_column = excluded.customer_id_column,
           sync_updates = excluded.sync_updates, enabled_at = now();

    EXECUTE format('DROP TRIGGER IF EXISTS stripe_sync_provision ON %s', users);
    EXECUTE format('DROP TRIGGER IF EXISTS stripe_sync_provision_update ON %s', users);
    EXECUTE format('CREATE TRIGGER stripe_sync_provision AFTER INSERT ON %s FOR EACH ROW
                    EXECUTE FUNCTION stripe_sync._enqueue_provisioning(%L, %L)',
                   users, id_column, customer_id_column);
    IF sync_updates THEN
        watched := format('%I', email_column) || CASE WHEN name_column IS NULL THEN '' ELSE format(', %I', name_column) END;
        EXECUTE format('CREATE TRIGGER stripe_sync_provision_update AFTER UPDATE OF %s ON %s FOR EACH ROW
                        WHEN (%s) EXECUTE FUNCTION stripe_sync._enqueue_provisioning(%L, %L)',
                       watched, users,
                       format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', email_column)
                         || CASE WHEN name_column IS NULL THEN ''
                                 ELSE format(' OR OLD.%1$I IS DISTINCT FROM NEW.%1$I', name_column) END,
                       id_column, customer_id_column);
    END IF;
END $$;
COMMENT ON FUNCTION stripe_sync.enable_provisioning(regclass, name, name, name, name, boolean) IS
  'Makes every new row of users a Stripe customer: checks the columns (they must exist; email, name and customer id must be text), installs an AFTER INSERT trigger that queues a job in the signup''s transaction, and, with sync_updates, an AFTER UPDATE OF email/name trigger that keeps Stripe in step. Calling it again replaces the settings.';

CREATE FUNCTION stripe_sync.disable_provisioning(users regclass) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM stripe_sync.provisioning_targets p WHERE p.users = disable_provisioning.users;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'provisioning is not enabled for table %', users USING ERRCODE = '55000';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS stripe_sync_provision ON %s', users);
    EXECUTE format('DROP TRIGGER IF EXISTS stripe_sync_provision_update ON %s', users);
    UPDATE stripe_sync.provisioning_jobs j SET status = 'failed', last_error = 'provisioning disabled'
     WHERE j.users = disable_provisioning.users AND j.status = 'pending';
END $$;
COMMENT ON FUNCTION stripe_sync.disable_provisioning(regclass) IS
  'Removes the provisioning triggers from users; its pending jobs end failed with ''provisioning disabled''. Customers already created stay.';

SELECT pg_catalog.pg_extension_config_dump('stripe_sync.provisioning_targets', '');
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.provisioning_jobs', '');
REVOKE ALL ON FUNCTION stripe_sync.enable_provisioning(regclass, name, name, name, name, boolean) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync.disable_provisioning(regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync._user_profile(regclass, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION stripe_sync._write_back(regclass, text, text) FROM PUBLIC;

-- stripe_sync.provision_existing_users() is defined in stripe_sync--0.5.0--0.6.0.sql.
