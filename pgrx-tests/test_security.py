"""An application role attacks the extension (docs/security.md): it holds LOGIN, owns the users
table that provisioning is enabled on, may CREATE in public and in the database (a schema of its
own), and has no other grant. Through the real worker, localstripe, and superusers calling our
functions under a hostile search_path, every route it tries ends with its code having run as
itself, or not at all, and with the role no more privileged than it was.

Routes: (1) a trigger on its users table, fired by the write-back; (2) a cast of its own type,
reached by the signup trigger; (3) operators and functions of its own in public and in a schema
first on the caller's search_path, shadowing what our SQL calls; (4) a handler that changes the
worker's session (search_path, SET ROLE, a temporary table); (5) a SECURITY DEFINER call under
a hostile search_path; (6) a secret stored where it can read it.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from stripe_sync_testkit import harness as h

ATTACKER = "app_attacker"
HOSTILE_PATH = "evil, public, pg_catalog"

# Everything the attacker creates. note() records who ran it, and escalates when that was a
# superuser: a row with was_super = true, or the role being superuser, is a successful attack.
ATTACK = r"""
CREATE TABLE public.seen (route text, as_user name, was_super boolean, at timestamptz DEFAULT clock_timestamp(),
                          backend text);
GRANT INSERT, SELECT ON public.seen TO PUBLIC;
CREATE FUNCTION public.note(route text) RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$
DECLARE su boolean := (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) current_user);
BEGIN
    INSERT INTO public.seen (route, as_user, was_super, backend)
    VALUES (route, current_user, su, (SELECT a.backend_type FROM pg_catalog.pg_stat_activity a
                                       WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()));
    IF su THEN EXECUTE 'ALTER ROLE app_attacker SUPERUSER'; END IF;
    RETURN true;
END $$;
GRANT EXECUTE ON FUNCTION public.note(text) TO PUBLIC;

-- (2) a type whose casts run code
CREATE TYPE public.mood AS ENUM ('calm');
CREATE FUNCTION public.mood_json(public.mood) RETURNS json LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('cast to json'); RETURN '"calm"'::json; END $$;
CREATE CAST (public.mood AS json) WITH FUNCTION public.mood_json(public.mood);
CREATE FUNCTION public.mood_jsonb(public.mood) RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('cast to jsonb'); RETURN '"calm"'::jsonb; END $$;
CREATE CAST (public.mood AS jsonb) WITH FUNCTION public.mood_jsonb(public.mood);
CREATE FUNCTION public.mood_text(public.mood) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('cast to text'); RETURN 'calm'; END $$;
CREATE CAST (public.mood AS text) WITH FUNCTION public.mood_text(public.mood);

-- (1) its users table, with a trigger that fires on the write-back
CREATE TABLE public.app_users (id bigint PRIMARY KEY, email text, name text, mood public.mood DEFAULT 'calm',
                               stripe_customer_id text);
CREATE FUNCTION public.spy() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('trigger ' || TG_WHEN || ' ' || TG_OP); RETURN NEW; END $$;
CREATE TRIGGER spy BEFORE UPDATE ON public.app_users FOR EACH ROW EXECUTE FUNCTION public.spy();

-- (3) operators that an untyped literal prefers, in public ...
CREATE FUNCTION public.path_text(jsonb, text) RETURNS jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('operator public.#>'); RETURN NULL; END $$;
CREATE OPERATOR public.#> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.path_text);
CREATE FUNCTION public.path_text_t(jsonb, text) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('operator public.#>>'); RETURN NULL; END $$;
CREATE OPERATOR public.#>> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = public.path_text_t);

-- ... and, in a schema of its own, exact twins of what SQL calls unqualified
CREATE SCHEMA evil;
GRANT USAGE ON SCHEMA evil TO PUBLIC;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('function evil.now'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('function evil.lower'); RETURN pg_catalog.lower($1); END $$;
CREATE FUNCTION evil.count(anyelement) RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('function evil.count'); RETURN 1; END $$;
CREATE FUNCTION evil.jsonb_array_elements(jsonb) RETURNS SETOF jsonb LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('function evil.jsonb_array_elements');
    RETURN QUERY SELECT pg_catalog.jsonb_array_elements($1); END $$;
CREATE FUNCTION evil.text_eq(text, text) RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('operator evil.='); RETURN pg_catalog.texteq($1, $2); END $$;
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);
CREATE FUNCTION evil.get_field(jsonb, text) RETURNS text LANGUAGE plpgsql
SET search_path = pg_catalog, public AS $$ BEGIN PERFORM public.note('operator evil.->>');
    RETURN pg_catalog.jsonb_object_field_text($1, $2); END $$;
CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.get_field);

-- (4) a handler that tries to change the session it runs in
CREATE FUNCTION public.meddle(event jsonb) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM public.note('handler');
    PERFORM pg_catalog.set_config('search_path', 'evil, public, pg_catalog', false);
    BEGIN
        EXECUTE 'CREATE TEMP TABLE IF NOT EXISTS stash (x int)';
        PERFORM public.note('handler made a temporary table');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    BEGIN
        EXECUTE 'RESET ROLE';
        PERFORM public.note('handler reset its role');
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END $$;
"""


@pytest.fixture(scope="module")
def cluster(stand_in):
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=stand_in.base,
                               retry_base_delay="200ms", api_rate_limit=100) as c:
        h.wait_until(c.worker_pid, timeout=30, what="the stripe_sync worker to start")
        c.query(f"CREATE ROLE {ATTACKER} LOGIN")
        c.query(f"GRANT CREATE ON SCHEMA public TO {ATTACKER}")
        c.query(f"GRANT CREATE ON DATABASE postgres TO {ATTACKER}")
        with c.connect(user=ATTACKER) as a:
            a.execute(ATTACK)
        yield c


def q(cluster, sql: str, params=None) -> list[tuple]:
    """The test's own queries, on a connection whose search_path the attacker cannot reach."""
    with cluster.connect() as conn:
        conn.execute("SET search_path = pg_catalog, public")
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def one(cluster, sql: str, params=None):
    rows = q(cluster, sql, params)
    return rows[0][0] if rows else None


def attacker_is_superuser(cluster) -> bool:
    return one(cluster, "SELECT rolsuper FROM pg_roles WHERE rolname = %s", (ATTACKER,))


def seen(cluster) -> list[tuple]:
    return q(cluster, "SELECT route, as_user::text, was_super, backend FROM public.seen ORDER BY at")


def safe(cluster) -> psycopg.Connection:
    conn = cluster.connect()
    conn.execute("SET search_path = pg_catalog, public")
    return conn


def assert_no_escalation(cluster) -> None:
    rows = seen(cluster)
    as_super = [r for r in rows if r[2]]
    assert not as_super, f"the attacker's code ran as a superuser: {as_super}"
    assert {r[1] for r in rows} <= {ATTACKER}, f"the attacker's code ran as another role: {rows}"
    assert not attacker_is_superuser(cluster)


def hostile(cluster) -> psycopg.Connection:
    """A superuser's session whose search_path puts the attacker's schemas first."""
    conn = cluster.connect()
    conn.execute(f"SET search_path = {HOSTILE_PATH}")
    return conn


def test_signups_and_write_backs_run_the_owners_code_as_the_owner(cluster, api):
    q(cluster, "SELECT stripe_sync.enable_provisioning('public.app_users', 'id', 'email', 'name',"
                  " sync_updates => true)")
    with cluster.connect(user=ATTACKER) as a:
        a.execute("INSERT INTO public.app_users (id, email, name) VALUES (1, 'one@example.com', 'One'),"
                  " (2, 'two@example.com', 'Two')")
    h.wait_until(lambda: one(cluster, "SELECT count(*) FROM public.app_users WHERE stripe_customer_id IS NOT NULL") == 2,
                 timeout=60, what="the worker to provision both signups")
    rows = seen(cluster)
    # The write-back fired the owner's trigger: as the owner, for each row.
    assert [r[:3] for r in rows if r[0] == "trigger BEFORE UPDATE"] == [("trigger BEFORE UPDATE", ATTACKER, False)] * 2
    # The signup trigger read two text columns; the type's casts never ran.
    assert not [r for r in rows if r[0].startswith("cast")], rows
    assert_no_escalation(cluster)

    # A changed email queues an update job (sync_updates), which the worker sends.
    with cluster.connect(user=ATTACKER) as a:
        a.execute("UPDATE public.app_users SET email = 'uno@example.com' WHERE id = 1")
    cus = one(cluster, "SELECT stripe_customer_id FROM public.app_users WHERE id = 1")
    h.wait_until(lambda: api.v1.customers.retrieve(cus).email == "uno@example.com", timeout=60,
                 what="the email change to reach Stripe")
    assert_no_escalation(cluster)


def test_a_superusers_calls_under_a_hostile_search_path_run_none_of_its_objects(cluster, api):
    before = len(seen(cluster))
    with hostile(cluster) as conn:
        # create_customer: reads the row and writes back (the owner's trigger, as the owner).
        with conn.transaction():
            conn.execute("INSERT INTO public.app_users (id, email, name) VALUES (3, 'three@example.com', 'Three')")
            cus = conn.execute("SELECT stripe_sync.create_customer('3')").fetchone()[0]
        assert cus.startswith("cus_")
        # provision_existing_users reads the table as its owner.
        conn.execute("SELECT stripe_sync.provision_existing_users()")
        # process_pending applies in this session: an event ingested in the same transaction
        # is this session's to apply (the worker cannot see it yet).
        with conn.transaction():
            payload = h.customer_event(email="hostile@example.com", name="Hostile")
            assert h.ingest(conn, payload, cluster.webhook_secret) == "queued"
            assert conn.execute("SELECT stripe_sync.process_pending()").fetchone()[0] >= 1
        conn.execute("SELECT stripe_sync.sync_object(%s)", (cus,))
        conn.execute("SELECT stripe_sync.retry_failed()")
        conn.execute("SELECT stripe_sync.purge_events('30 days')")
        conn.execute("SELECT * FROM stripe_sync.status")
    new = seen(cluster)[before:]
    assert [r[0] for r in new] == ["trigger BEFORE UPDATE"], f"only the owner's trigger ran: {new}"
    # (This file's own queries in that session would run evil's "=": they are made elsewhere.)
    object_id = json.loads(payload)["data"]["object"]["id"]
    assert one(cluster, "SELECT email FROM stripe_sync.customers WHERE id = %s", (object_id,)) == "hostile@example.com"
    assert_no_escalation(cluster)


def test_the_worker_ignores_a_hostile_database_search_path(cluster):
    # The application role may own the database: ALTER DATABASE ... SET search_path reaches every
    # new session, the worker's and its helpers' included. A restart makes the worker start anew.
    q(cluster, f"ALTER DATABASE postgres SET search_path = {HOSTILE_PATH}")
    try:
        cluster.restart()
        # (harness.Cluster.worker_pid would query with the hostile path: its "=" would be evil's.)
        h.wait_until(lambda: one(cluster, "SELECT pid FROM pg_stat_activity WHERE backend_type = %s",
                                 (h.WORKER_TYPE,)), timeout=30, what="the worker to come back")
        before = len(seen(cluster))
        with safe(cluster) as conn:
            for _ in range(3):
                h.ingest(conn, h.customer_event(email="dbpath@example.com"), cluster.webhook_secret)
        h.wait_until(lambda: one(cluster, "SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'") == 0,
                     timeout=30, what="the worker to apply the events")
        # A job worker (catch_up lists /v1/events and applies them) starts under the same setting.
        with safe(cluster) as conn:
            conn.execute("SELECT stripe_sync.catch_up()")
        assert seen(cluster)[before:] == []
        assert_no_escalation(cluster)
    finally:
        q(cluster, "ALTER DATABASE postgres RESET search_path")


def test_a_handler_runs_as_its_role_and_leaves_the_worker_as_it_was(cluster):
    q(cluster, f"SELECT stripe_sync.on_event('customer.updated', 'public.meddle(jsonb)'::regprocedure,"
                  f" run_as => '{ATTACKER}'::regrole)")
    before = len(seen(cluster))
    with safe(cluster) as conn:
        h.ingest(conn, h.customer_event("customer.updated", email="handled@example.com"), cluster.webhook_secret)
    h.wait_until(lambda: one(cluster, "SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'succeeded'") >= 1,
                 timeout=30, what="the handler to run")
    # Events after the handler are applied by the same worker session: were its settings kept,
    # evil's functions would run now, as the worker.
    with safe(cluster) as conn:
        for _ in range(3):
            h.ingest(conn, h.customer_event(email="after@example.com"), cluster.webhook_secret)
    h.wait_until(lambda: one(cluster, "SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'") == 0,
                 timeout=30, what="the worker to apply the later events")
    time.sleep(0.5)
    new = [r[0] for r in seen(cluster)[before:]]
    assert new == ["handler"], f"the handler ran once, and could neither make a temporary table nor reset its role: {new}"
    assert_no_escalation(cluster)


def test_a_security_definer_call_under_a_hostile_search_path(cluster):
    q(cluster, f"GRANT USAGE ON SCHEMA stripe_sync TO {ATTACKER}")
    q(cluster, f"GRANT EXECUTE ON FUNCTION stripe_sync.ingest_event(text, text) TO {ATTACKER}")
    before = len(seen(cluster))
    with cluster.connect(user=ATTACKER) as a:
        a.execute(f"SET search_path = {HOSTILE_PATH}")
        assert h.ingest(a, h.customer_event(email="definer@example.com"), cluster.webhook_secret) == "queued"
    assert seen(cluster)[before:] == []
    assert_no_escalation(cluster)


def test_secrets_are_refused_where_every_role_could_read_them(cluster):
    log_from = cluster.log_size()
    with safe(cluster) as conn:
        for sql in ("ALTER DATABASE postgres SET stripe_sync.api_key = 'sk_test_Val0eKept'",
                    f"ALTER ROLE {ATTACKER} SET stripe_sync.webhook_secret = 'whsec_Val0eKept'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
                conn.execute(sql)
            assert "every role can read" in str(err.value) and "Val0eKept" not in str(err.value)
    # Our messages never quote the value. (PostgreSQL itself logs a failed statement's text,
    # log_min_error_statement = error: docs/security.md says so.)
    ours = [line for line in cluster.log_text(log_from).splitlines() if "STATEMENT:" not in line]
    assert not [line for line in ours if "Val0eKept" in line]
    assert one(cluster, "SELECT count(*) FROM pg_db_role_setting WHERE setconfig::text LIKE '%stripe_sync%'") == 0
    with cluster.connect(user=ATTACKER) as a:
        dump = json.dumps([a.execute("SELECT s::text FROM pg_db_role_setting s").fetchall(),
                           a.execute("SELECT s::text FROM pg_settings s").fetchall(),
                           a.execute("SELECT p.proconfig::text FROM pg_proc p").fetchall()])
    assert cluster.webhook_secret not in dump and h.TEST_API_KEY not in dump


def test_a_secret_stored_before_0_6_0_is_ignored_with_a_warning_that_hides_it(cluster):
    # As an older version let ALTER DATABASE store it (written straight into the catalog here,
    # since 0.6.0 refuses the command).
    q(cluster, "INSERT INTO pg_db_role_setting (setdatabase, setrole, setconfig)"
               " SELECT oid, 0, '{stripe_sync.api_key=sk_test_Old0Stored}' FROM pg_database WHERE datname = 'postgres'")
    try:
        log_from = cluster.log_size()
        notices: list[str] = []
        with cluster.connect() as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
            conn.execute("SELECT 1")
            assert conn.execute("SHOW stripe_sync.api_key").fetchone()[0] == h.TEST_API_KEY
        log = cluster.log_text(log_from)
        assert "a secret cannot be set with ALTER DATABASE" in log
        assert "Old0Stored" not in log and not [n for n in notices if "Old0Stored" in n]
    finally:
        q(cluster, "DELETE FROM pg_db_role_setting WHERE setconfig::text LIKE '%Old0Stored%'")


def test_a_handler_owned_by_the_role_never_runs_as_the_superuser_who_registered_it(cluster):
    # The role owns the function, so it can change its body at any time: registered by a
    # superuser without run_as, it would run the role's code as that superuser.
    with cluster.connect(user=ATTACKER) as a:
        a.execute("CREATE FUNCTION public.sneaky(event jsonb) RETURNS void LANGUAGE sql"
                  " AS $$ SELECT public.note('sneaky') $$")
    q(cluster, "SELECT stripe_sync.on_event('customer.deleted', 'public.sneaky(jsonb)'::regprocedure)")
    with safe(cluster) as conn:
        h.ingest(conn, h.customer_event("customer.deleted", email="gone@example.com"), cluster.webhook_secret)
    h.wait_until(lambda: one(cluster, "SELECT last_error FROM stripe_sync.handler_runs r"
                                      " JOIN stripe_sync.handlers h ON h.id = r.handler_id"
                                      " WHERE h.handler = 'public.sneaky(jsonb)'::regprocedure"),
                 timeout=30, what="the handler run to fail")
    error = one(cluster, "SELECT last_error FROM stripe_sync.handler_runs r JOIN stripe_sync.handlers h"
                         " ON h.id = r.handler_id WHERE h.handler = 'public.sneaky(jsonb)'::regprocedure")
    assert "is owned by app_attacker" in error and "42501" in error, error
    assert [r for r in seen(cluster) if r[0] == "sneaky"] == []
    assert_no_escalation(cluster)


def test_a_schema_made_by_the_role_is_not_taken_for_the_extensions(cluster):
    q(cluster, "CREATE DATABASE precreated")
    q(cluster, f"GRANT CREATE ON DATABASE precreated TO {ATTACKER}")
    with cluster.connect(user=ATTACKER, dbname="precreated") as a:
        a.execute("CREATE SCHEMA stripe_sync")
        a.execute("CREATE FUNCTION stripe_sync.trap(oid, regnamespace) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
        a.execute("CREATE OPERATOR stripe_sync.= (LEFTARG = oid, RIGHTARG = regnamespace, FUNCTION = stripe_sync.trap)")
    with cluster.connect(dbname="precreated") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
            conn.execute("CREATE EXTENSION stripe_sync")
    assert "schema stripe_sync is not the extension's own" in str(err.value)
    assert one(cluster, "SELECT count(*) FROM pg_database WHERE datname = 'precreated'") == 1
