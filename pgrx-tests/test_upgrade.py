"""ALTER EXTENSION stripe_sync UPDATE from 0.1.0: the rows stay, the worker goes on
applying, and the upgraded catalog is exactly what a fresh CREATE EXTENSION makes.

One cluster: database ``postgres`` (the worker's, stripe_sync.database) gets 0.1.0
and is upgraded; database ``fresh`` gets the current version directly.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.standin import FIXTURES

OLD, NEW = "0.1.0", "0.9.0"
PATH = "0.1.0--0.2.0--0.3.0--0.4.0--0.5.0--0.6.0--0.7.0--0.8.0--0.9.0"  # every release between, one upgrade script each

# Everything in schema stripe_sync and everything the extension owns, as sorted
# text, free of OIDs and of anything that depends on the rows.
CATALOG_SQL = r"""
WITH ext AS (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'stripe_sync'),
     ns  AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'stripe_sync'),
     rel AS (SELECT c.* FROM pg_catalog.pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)),
     fn  AS (SELECT p.* FROM pg_catalog.pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns))
-- the extension and its schema
SELECT format('extension %s version=%s schema=%s relocatable=%s owner=%s',
              e.extname, e.extversion, e.extnamespace::regnamespace, e.extrelocatable,
              pg_catalog.pg_get_userbyid(e.extowner))
  FROM pg_catalog.pg_extension e WHERE e.oid = (SELECT oid FROM ext)
UNION ALL
SELECT format('schema %s owner=%s', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner))
  FROM pg_catalog.pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
UNION ALL
SELECT format('extconfig %s condition=%L', u.cfg::regclass, u.cond)
  FROM pg_catalog.pg_extension e, unnest(e.extconfig, e.extcondition) AS u(cfg, cond)
 WHERE e.oid = (SELECT oid FROM ext)
UNION ALL
SELECT 'member ' || pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
  FROM pg_catalog.pg_depend d
 WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.refobjid = (SELECT oid FROM ext)
   AND d.deptype = 'e'
UNION ALL
-- relations (indexes below)
SELECT format('relation %s kind=%s persistence=%s owner=%s options=%s rls=%s force_rls=%s',
              c.oid::regclass, c.relkind, c.relpersistence, pg_catalog.pg_get_userbyid(c.relowner),
              c.reloptions, c.relrowsecurity, c.relforcerowsecurity)
  FROM rel c WHERE c.relkind <> 'i'
UNION ALL
SELECT format('column %s.%I type=%s notnull=%s default=%s identity=%L generated=%L collation=%s compression=%L',
              c.oid::regclass, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
              CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END, a.attcompression)
  FROM rel c
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
UNION ALL
SELECT format('constraint %s on %s: %s deferrable=%s deferred=%s validated=%s', co.conname,
              CASE WHEN co.conrelid <> 0 THEN co.conrelid::regclass::text ELSE co.contypid::regtype::text END,
              pg_catalog.pg_get_constraintdef(co.oid), co.condeferrable, co.condeferred, co.convalidated)
  FROM pg_catalog.pg_constraint co WHERE co.connamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'index ' || pg_catalog.pg_get_indexdef(i.indexrelid)
  FROM pg_catalog.pg_index i JOIN rel c ON c.oid = i.indrelid
UNION ALL
SELECT format('view %s: %s', c.oid::regclass, pg_catalog.pg_get_viewdef(c.oid, true))
  FROM rel c WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT format('function %s(%s) args=(%s) returns %s kind=%s lang=%s volatility=%s strict=%s secdef=%s'
              ' leakproof=%s parallel=%s cost=%s rows=%s config=%s owner=%s src=%L bin=%L',
              p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
              pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),
              p.prokind, l.lanname, p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel,
              p.procost, p.prorows, p.proconfig, pg_catalog.pg_get_userbyid(p.proowner), p.prosrc, p.probin)
  FROM fn p JOIN pg_catalog.pg_language l ON l.oid = p.prolang
UNION ALL
SELECT format('definition %s(%s): %s', p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid),
              pg_catalog.pg_get_functiondef(p.oid))
  FROM fn p WHERE p.prokind <> 'a'
UNION ALL
SELECT format('trigger %s on %s enabled=%s: %s', t.tgname, t.tgrelid::regclass, t.tgenabled,
              pg_catalog.pg_get_triggerdef(t.oid))
  FROM pg_catalog.pg_trigger t JOIN rel c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
UNION ALL
SELECT format('sequence %s type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
              s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, s.seqcycle,
              (SELECT format('%s.%I', d.refobjid::regclass, a.attname)
                 FROM pg_catalog.pg_depend d
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.seqrelid
                  AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
                LIMIT 1))
  FROM pg_catalog.pg_sequence s JOIN rel c ON c.oid = s.seqrelid
UNION ALL
SELECT format('type %s typtype=%s base=%s notnull=%s default=%L owner=%s', t.oid::regtype, t.typtype,
              CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END,
              t.typnotnull, t.typdefault, pg_catalog.pg_get_userbyid(t.typowner))
  FROM pg_catalog.pg_type t
 WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype IN ('d', 'e', 'r', 'm', 'b', 'p')
UNION ALL
SELECT format('enum %s label %s at %s', x.enumtypid::regtype, x.enumlabel,
              row_number() OVER (PARTITION BY x.enumtypid ORDER BY x.enumsortorder))
  FROM pg_catalog.pg_enum x JOIN pg_catalog.pg_type t ON t.oid = x.enumtypid
 WHERE t.typnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT format('policy %s on %s cmd=%s permissive=%s roles=%s using=%s check=%s', po.polname,
              po.polrelid::regclass, po.polcmd, po.polpermissive,
              ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE r::regrole::text END
                      FROM unnest(po.polroles) r ORDER BY 1),
              pg_catalog.pg_get_expr(po.polqual, po.polrelid), pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid))
  FROM pg_catalog.pg_policy po JOIN rel c ON c.oid = po.polrelid
UNION ALL
SELECT format('rule %s on %s: %s', r.rulename, r.ev_class::regclass, pg_catalog.pg_get_ruledef(r.oid))
  FROM pg_catalog.pg_rewrite r JOIN rel c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN'
UNION ALL
-- comments: the extension, the schema, relations and their columns, functions, types,
-- constraints, triggers, policies
SELECT format('comment on %s: %s', pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
  FROM pg_catalog.pg_description d
 WHERE (d.classoid = 'pg_catalog.pg_extension'::regclass AND d.objoid = (SELECT oid FROM ext))
    OR (d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid = (SELECT oid FROM ns))
    OR (d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid IN (SELECT oid FROM rel))
    OR (d.classoid = 'pg_catalog.pg_proc'::regclass AND d.objoid IN (SELECT oid FROM fn))
    OR (d.classoid = 'pg_catalog.pg_type'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_type WHERE typnamespace = (SELECT oid FROM ns)))
    OR (d.classoid = 'pg_catalog.pg_constraint'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_constraint WHERE connamespace = (SELECT oid FROM ns)))
    OR (d.classoid = 'pg_catalog.pg_trigger'::regclass
        AND d.objoid IN (SELECT t.oid FROM pg_catalog.pg_trigger t JOIN rel c ON c.oid = t.tgrelid))
    OR (d.classoid = 'pg_catalog.pg_policy'::regclass
        AND d.objoid IN (SELECT po.oid FROM pg_catalog.pg_policy po JOIN rel c ON c.oid = po.polrelid))
UNION ALL
-- privileges, defaults made explicit so that NULL and the default ACL compare equal
SELECT format('acl %s %s: %s to %s grantable=%s by %s',
              CASE c.relkind WHEN 'S' THEN 'sequence' ELSE 'relation' END, c.oid::regclass, a.privilege_type,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.is_grantable,
              a.grantor::regrole)
  FROM rel c,
       aclexplode(coalesce(c.relacl,
                           acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::"char", c.relowner))) a
 WHERE c.relkind <> 'i'
UNION ALL
SELECT format('acl column %s.%I: %s to %s grantable=%s by %s', c.oid::regclass, at.attname, a.privilege_type,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.is_grantable,
              a.grantor::regrole)
  FROM rel c JOIN pg_catalog.pg_attribute at ON at.attrelid = c.oid AND at.attacl IS NOT NULL,
       aclexplode(at.attacl) a
UNION ALL
SELECT format('acl function %s(%s): %s to %s grantable=%s by %s', p.proname,
              pg_catalog.pg_get_function_identity_arguments(p.oid), a.privilege_type,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.is_grantable,
              a.grantor::regrole)
  FROM fn p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
UNION ALL
SELECT format('acl schema %s: %s to %s grantable=%s by %s', n.nspname, a.privilege_type,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.is_grantable,
              a.grantor::regrole)
  FROM pg_catalog.pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
 WHERE n.oid = (SELECT oid FROM ns)
UNION ALL
SELECT format('acl type %s: %s to %s grantable=%s by %s', t.oid::regtype, a.privilege_type,
              CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, a.is_grantable,
              a.grantor::regrole)
  FROM pg_catalog.pg_type t, aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) a
 WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype IN ('d', 'e', 'r', 'm')
"""


def catalog(cluster: h.Cluster, dbname: str) -> list[str]:
    with cluster.connect(dbname=dbname) as conn:
        conn.execute("SET search_path = pg_catalog, public")  # the same qualification in both
        rows = [r[0] for r in conn.execute(CATALOG_SQL).fetchall()]
    assert all(r is not None for r in rows), "a descriptor came out NULL"
    return sorted(rows)


def catalog_diff(left: list[str], right: list[str], labels: tuple[str, str]) -> str:
    a = [line for item in left for line in item.splitlines()]
    b = [line for item in right for line in item.splitlines()]
    return "\n".join(difflib.unified_diff(a, b, labels[0], labels[1], lineterm="", n=2))


def customer(i: int, created: int) -> str:
    return h.customer_event("customer.created", customer_id=h.new_id("cus_"), email=f"up{i}@example.com",
                            name=f"Up {i}", created=created)


def processed(cluster: h.Cluster, ids: list[str]) -> bool:
    return cluster.scalar("SELECT count(*) FROM stripe_sync.events WHERE id = ANY(%s) AND status = 'processed'",
                          (ids,)) == len(ids)


def test_update_from_0_1_0_keeps_rows_works_and_matches_a_fresh_install():
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, create_extension=False, max_attempts=3, retry_base_delay=100) as c:
        versions = {r[0] for r in c.query(
            "SELECT version FROM pg_available_extension_versions WHERE name = 'stripe_sync'")}
        assert {OLD, NEW} <= versions, f"installed versions: {versions} (make install puts sql/archive there)"
        assert c.scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'stripe_sync'") == NEW
        assert c.scalar("SELECT path FROM pg_extension_update_paths('stripe_sync')"
                        " WHERE source = %s AND target = %s", (OLD, NEW)) == PATH

        # -- 0.1.0 in the worker's database ----------------------------------------
        c.query(f"CREATE EXTENSION stripe_sync VERSION '{OLD}'")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'") == OLD
        assert c.scalar("SELECT to_regclass('stripe_sync.handlers')") is None
        h.wait_until(c.worker_pid, timeout=30, what="the worker to start")

        t = int(time.time()) - 600
        old_payloads = [customer(i, t + i) for i in range(20)]
        old_ids = [h.event_id_of(p) for p in old_payloads]
        with c.connect() as conn:  # ingest works against the 0.1.0 SQL
            for p in old_payloads:
                assert h.ingest(conn, p, secret) == "queued"
        # The worker does not apply on an older SQL version than its library.
        h.holds_for(lambda: c.scalar("SELECT count(*) FROM stripe_sync.events WHERE id = ANY(%s)"
                                     " AND status = 'pending'", (old_ids,)) == 20, 2.0,
                    what="the worker to leave events alone under 0.1.0")
        # process_pending in a session, under 0.1.0: either it applies (the old SQL's
        # functions still work) or it refuses cleanly; both leave the data consistent.
        with c.connect() as conn:
            try:
                n = conn.execute("SELECT stripe_sync.process_pending()").fetchone()[0]
                refused = None
            except psycopg.Error as err:
                n, refused = None, err
        if refused is None:
            assert n == 20
            assert processed(c, old_ids)
            assert c.scalar("SELECT count(*) FROM stripe_sync.customers") == 20
        else:
            assert refused.sqlstate and not refused.sqlstate.startswith("XX"), \
                f"process_pending under 0.1.0 failed internally: {refused.sqlstate} {refused}"
            assert c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'") == 20
        events_before = c.query("SELECT id, type, data, status FROM stripe_sync.events ORDER BY id")
        customers_before = c.query("SELECT id, email, name, data FROM stripe_sync.customers ORDER BY id")

        # -- update --------------------------------------------------------------------
        c.query("ALTER EXTENSION stripe_sync UPDATE")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'") == NEW
        assert c.query("SELECT id, type, data FROM stripe_sync.events ORDER BY id") == \
            [r[:3] for r in events_before]
        if refused is None:
            assert c.query("SELECT id, email, name, data FROM stripe_sync.customers ORDER BY id") == customers_before

        # The worker applies what waited and what comes next, and runs handlers.
        c.query("CREATE TABLE public.upgrade_seen (event_id text)")
        c.query("CREATE FUNCTION public.upgrade_handler(event jsonb) RETURNS void LANGUAGE sql"
                " AS $$ INSERT INTO public.upgrade_seen VALUES (event ->> 'id') $$")
        c.query("SELECT stripe_sync.on_event('customer.created', 'public.upgrade_handler(jsonb)'::regprocedure)")
        new_payloads = [customer(100 + i, int(time.time()) - 60 + i) for i in range(5)]
        new_ids = [h.event_id_of(p) for p in new_payloads]
        with c.connect() as conn:
            for p in new_payloads:
                assert h.ingest(conn, p, secret) == "queued"
        h.wait_until(lambda: processed(c, old_ids + new_ids), timeout=60,
                     what="the worker to apply every event after the update")
        assert c.scalar("SELECT count(*) FROM stripe_sync.customers") == 25
        h.wait_until(lambda: set(new_ids) <= {r[0] for r in c.query("SELECT event_id FROM public.upgrade_seen")},
                     timeout=30, what="the handler registered after the update to run")
        h.wait_until(lambda: c.query("SELECT handler_runs_pending, handler_runs_failed, alerts_pending,"
                                     " alerts_failed FROM stripe_sync.status") == [(0, 0, 0, 0)],
                     timeout=30, what="the new status columns to show nothing pending or failed")
        c.query("SELECT stripe_sync.remove_handler(NULL, 'public.upgrade_handler(jsonb)'::regprocedure)")

        # -- a fresh install in another database, and the catalogs compared ---------
        c.query("CREATE DATABASE fresh")
        c.query("CREATE EXTENSION stripe_sync", dbname="fresh")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'", dbname="fresh") == NEW
        upgraded, fresh = catalog(c, "postgres"), catalog(c, "fresh")
        assert len(fresh) > 300, f"the catalog query found too little: {len(fresh)} items"
        kinds = {item.split(" ", 1)[0] for item in fresh}
        assert {"relation", "column", "constraint", "index", "view", "function", "comment", "acl", "member",
                "extconfig", "sequence"} <= kinds, kinds
        assert upgraded == fresh, ("the upgraded catalog differs from a fresh install:\n"
                                   + catalog_diff(upgraded, fresh, (f"upgraded {OLD} -> {NEW}", f"fresh {NEW}")))


def test_update_from_0_5_0_fixes_a_provisioned_database_in_place():
    """The previous release straight to this one, on a database that uses provisioning: the users
    table's trigger (made by 0.5.0's enable_provisioning) keeps its name and now runs the new
    function, as the inserting role; the ids go on; the catalog is a fresh install's."""
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, create_extension=False) as c:
        c.query("CREATE EXTENSION stripe_sync VERSION '0.5.0'")
        c.query("CREATE ROLE upgrade_app LOGIN")
        c.query("CREATE TABLE public.members (id int PRIMARY KEY, email text, stripe_customer_id text)")
        c.query("GRANT INSERT, SELECT ON public.members TO upgrade_app")
        c.query("SELECT stripe_sync.enable_provisioning('public.members', 'id', 'email')")
        c.query("INSERT INTO public.members (id, email) VALUES (1, 'one@example.com')")
        assert c.scalar("SELECT prosecdef FROM pg_proc WHERE oid = 'stripe_sync._enqueue_provisioning'::regproc")
        # Mirrored rows of the platform (_account_id NULL in 0.5.0) and of a connected account,
        # their children, history and a re-read request.
        c.query("INSERT INTO stripe_sync.customers (id, email, data, _account_id) VALUES"
                " ('cus_p', 'p@example.com', '{\"id\": \"cus_p\"}', NULL),"
                " ('cus_c', 'c@example.com', '{\"id\": \"cus_c\"}', 'acct_c')")
        c.query("INSERT INTO stripe_sync.subscriptions (id, status, data, _account_id) VALUES"
                " ('sub_p', 'active', '{\"id\": \"sub_p\"}', NULL)")
        c.query("INSERT INTO stripe_sync.subscription_items (id, subscription, data, _account_id) VALUES"
                " ('si_p', 'sub_p', '{\"id\": \"si_p\"}', NULL), ('si_c', 'sub_c', '{\"id\": \"si_c\"}', 'acct_c')")
        c.query("INSERT INTO stripe_sync.subscription_history (subscription, _account_id, at, rank, source, mrr)"
                " VALUES ('sub_p', NULL, now(), 1, 'evt_1', 100)")
        c.query("INSERT INTO stripe_sync.refresh_requests (id, object) VALUES ('cus_p', 'customer')")
        c.query("INSERT INTO stripe_sync.events (id, type, created, data, account, status) VALUES"
                " ('evt_c', 'customer.created', now(), '{}', 'acct_c', 'processed')")
        mirrored = ("SELECT format('%s %s %s', id, quote_nullable(_account_id), email) FROM stripe_sync.customers"
                    " UNION ALL SELECT format('%s %s %s', id, quote_nullable(_account_id), status)"
                    " FROM stripe_sync.subscriptions UNION ALL"
                    " SELECT format('%s %s %s', id, quote_nullable(_account_id), subscription)"
                    " FROM stripe_sync.subscription_items UNION ALL"
                    " SELECT format('%s %s %s', subscription, quote_nullable(_account_id), mrr)"
                    " FROM stripe_sync.subscription_history ORDER BY 1")
        before = c.query(mirrored)
        # The re-read request is looked at in the update's own transaction: once committed, the
        # worker (no API key here) drops every request, as it should.
        with c.connect() as conn, conn.transaction():
            conn.execute("ALTER EXTENSION stripe_sync UPDATE")
            kept = conn.execute("SELECT account, id FROM stripe_sync.refresh_requests").fetchall()
        assert kept == [("", "cus_p")]
        # The platform's NULL is '' now; nothing else changed.
        assert len(before) == 6 and sum("NULL" in r[0] for r in before) == 4
        assert c.query(mirrored) == [(r[0].replace(" NULL ", " '' "),) for r in before]
        assert c.query("SELECT id FROM stripe_sync.accounts ORDER BY id") == [("",), ("acct_c",)]
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'") == NEW
        assert not c.scalar("SELECT prosecdef FROM pg_proc WHERE oid = 'stripe_sync._enqueue_provisioning'::regproc")
        assert c.scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.members'::regclass"
                        " AND tgname = 'stripe_sync_provision'") == 1
        # The sequences are dumped now.
        assert c.scalar("SELECT count(*) FROM pg_extension e, unnest(e.extconfig) AS u(cfg)"
                        " WHERE e.extname = 'stripe_sync' AND u.cfg::regclass::text IN"
                        " ('stripe_sync.sync_runs_id_seq', 'stripe_sync.provisioning_jobs_id_seq')") == 2
        # A role with no privilege on stripe_sync signs up through the same trigger.
        with c.connect(user="upgrade_app") as app:
            app.execute("INSERT INTO public.members (id, email) VALUES (2, 'two@example.com')")
        assert c.query("SELECT user_id, kind FROM stripe_sync.provisioning_jobs ORDER BY id") == \
            [("1", "create"), ("2", "create")]
        c.query("CREATE DATABASE fresh")
        c.query("CREATE EXTENSION stripe_sync", dbname="fresh")
        upgraded, fresh = catalog(c, "postgres"), catalog(c, "fresh")
        assert upgraded == fresh, catalog_diff(upgraded, fresh, ("0.5.0 updated", "fresh"))


def test_the_schema_guard_is_the_same_in_the_install_and_the_update():
    """schema.sql (a fresh install, before anything is created) and the 0.6.0 update each begin
    with the check that schema stripe_sync is the extension's own; an update script is shipped
    as a file of its own, so the check is written twice: keep the two equal."""
    sql = Path(__file__).resolve().parent.parent / "sql"
    guard = re.compile(r"DO \$guard\$.*?END \$guard\$;", re.S)
    install = guard.findall((sql / "schema.sql").read_text())
    update = guard.findall((sql / "stripe_sync--0.5.0--0.6.0.sql").read_text())
    assert len(install) == 1 and install == update


def test_update_from_0_7_0_fills_the_new_columns_and_child_rows_and_applies_skipped_events():
    """0.7.0 holds a subscription, an invoice (with a line), a charge and credit notes (of the
    platform and of a connected account) whose data has what 0.8.0 types, and skipped events of
    a type 0.8.0 mirrors (a payout) and of one it does not. After the update the new columns say
    what the data says, the credit notes' embedded lines are rows, and the worker applies the
    payout event; the other stays skipped."""
    fx = json.loads(FIXTURES.read_text())["resources"]
    t = int(time.time()) - 3600
    sub = dict(fx["subscription"], id="sub_up", billing_mode={"type": "flexible", "flexible": {}},
               billing_cycle_anchor=t - 86400, days_until_due=14, description="Upgraded plan",
               cancellation_details={"comment": None, "feedback": "too_expensive", "reason": "cancellation_requested"},
               customer_account="acct_1CustomerV2")
    invoice = dict(fx["invoice"], id="in_up", total_excluding_tax=4242, subtotal_excluding_tax=4000,
                   starting_balance=-100, ending_balance=0, amount_overpaid=5, amount_shipping=300,
                   effective_at=t - 60, next_payment_attempt=t + 3600, invoice_pdf="https://pay.example/in_up.pdf",
                   total_taxes=[{"amount": 242, "tax_behavior": "exclusive", "taxability_reason": "standard_rated",
                                 "type": "tax_rate_details"}],
                   parent={"type": "quote_details", "quote_details": {"quote": "qt_up"}},
                   status_transitions={"finalized_at": t - 120, "marked_uncollectible_at": None, "paid_at": t - 30,
                                       "voided_at": None})
    line = dict(fx["line_item"], id="il_up", invoice="in_up", subtotal=4000, discountable=False)
    card = dict(fx["charge"]["payment_method_details"]["card"], brand="mastercard", last4="4444", country="GB")
    charge = dict(fx["charge"], id="ch_up", payment_method_details={"type": "card", "card": card},
                  outcome=dict(fx["charge"]["outcome"], network_status="approved_by_network", risk_level="elevated",
                               reason="elevated_risk_level"),
                  application_fee_amount=123, transfer_group="group_up", on_behalf_of="acct_1OnBehalf")
    notes = {account: dict(fx["credit_note"], id=f"cn_up{k}", total_excluding_tax=1500 + k,
                           pdf=f"https://pay.example/cn_up{k}.pdf",
                           lines=dict(fx["credit_note"]["lines"], data=[
                               dict(li, id=f"cnli_up{k}{n}", amount=100 * n + k)
                               for n, li in enumerate(fx["credit_note"]["lines"]["data"] * 2)]))
             for k, account in enumerate(("", "acct_1Up"))}
    payout = dict(fx["payout"], id="po_up", amount=98765, status="paid")
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, create_extension=False) as c:
        c.query("CREATE EXTENSION stripe_sync VERSION '0.7.0'")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'") == "0.7.0"
        assert c.scalar("SELECT to_regclass('stripe_sync.payouts')") is None
        c.query("INSERT INTO stripe_sync.subscriptions (id, status, data) VALUES ('sub_up', 'active', %s)",
                (Jsonb(sub),))
        c.query("INSERT INTO stripe_sync.invoices (id, status, data) VALUES ('in_up', 'paid', %s)", (Jsonb(invoice),))
        c.query("INSERT INTO stripe_sync.invoice_line_items (id, invoice, data) VALUES ('il_up', 'in_up', %s)",
                (Jsonb(line),))
        c.query("INSERT INTO stripe_sync.charges (id, data) VALUES ('ch_up', %s)", (Jsonb(charge),))
        for account, note in notes.items():
            c.query("INSERT INTO stripe_sync.credit_notes (id, data, _account_id) VALUES (%s, %s, %s)",
                    (note["id"], Jsonb(note), account))
        # Ingested under 0.7.0, which skipped their object types.
        events = {"payout.paid": json.dumps({"id": h.new_id("evt_"), "object": "event", "type": "payout.paid",
                                             "created": t, "api_version": "2026-07-29.dahlia",
                                             "data": {"object": payout}}),
                  "issuing_card.created": h.unmirrored_event(t)}
        with c.connect() as conn:
            for payload in events.values():
                assert h.ingest(conn, payload, secret) == "queued"
        ids = {kind: h.event_id_of(p) for kind, p in events.items()}
        c.query("UPDATE stripe_sync.events SET status = 'skipped', processed_at = now() WHERE id = ANY(%s)",
                (list(ids.values()),))

        c.query("ALTER EXTENSION stripe_sync UPDATE")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'") == NEW

        at = lambda v: None if v is None else datetime.fromtimestamp(v, timezone.utc)  # noqa: E731
        assert c.query("SELECT customer_account, billing_mode, billing_cycle_anchor, cancellation_reason,"
                       " cancellation_feedback, pause_collection, days_until_due, trial_settings, description"
                       " FROM stripe_sync.subscriptions") == \
            [("acct_1CustomerV2", "flexible", at(t - 86400), "cancellation_requested", "too_expensive",
              sub["pause_collection"], 14, sub["trial_settings"], "Upgraded plan")]
        assert c.query("SELECT parent_type, quote, total_taxes, total_excluding_tax, subtotal_excluding_tax,"
                       " starting_balance, ending_balance, amount_overpaid, amount_shipping, finalized_at, voided_at,"
                       " marked_uncollectible_at, effective_at, next_payment_attempt, invoice_pdf"
                       " FROM stripe_sync.invoices") == \
            [("quote_details", "qt_up", invoice["total_taxes"], 4242, 4000, -100, 0, 5, 300, at(t - 120), None,
              None, at(t - 60), at(t + 3600), "https://pay.example/in_up.pdf")]
        assert c.query("SELECT subtotal, discountable, parent_type FROM stripe_sync.invoice_line_items") == \
            [(4000, False, line["parent"]["type"])]
        assert c.query("SELECT payment_method_type, card_brand, card_last_four, card_country, outcome_network_status,"
                       " outcome_risk_level, outcome_reason, application_fee_amount, transfer_group, on_behalf_of,"
                       " receipt_url FROM stripe_sync.charges") == \
            [("card", "mastercard", "4444", "GB", "approved_by_network", "elevated", "elevated_risk_level", 123,
              "group_up", "acct_1OnBehalf", charge["receipt_url"])]
        assert sorted(c.query("SELECT _account_id, id, total_excluding_tax, pdf, _children_complete"
                              " FROM stripe_sync.credit_notes")) == \
            sorted((a, n["id"], n["total_excluding_tax"], n["pdf"], True) for a, n in notes.items())
        assert sorted(c.query("SELECT _account_id, credit_note, id, amount, type, data"
                              " FROM stripe_sync.credit_note_line_items")) == \
            sorted((a, n["id"], li["id"], li["amount"], li["type"], li)
                   for a, n in notes.items() for li in n["lines"]["data"])

        # The payout's event is queued again and applied by the worker; the other stays skipped.
        h.wait_until(lambda: c.query("SELECT id, amount, status, data FROM stripe_sync.payouts")
                     == [("po_up", 98765, "paid", payout)], timeout=60, what="the skipped payout event applied")
        assert dict(c.query("SELECT type, status FROM stripe_sync.events")) == \
            {"payout.paid": "processed", "issuing_card.created": "skipped"}


def test_update_from_0_8_0_applies_skipped_summaries_and_thin_events_stored_before_it():
    """0.8.0 holds a customer's entitlement summary event, skipped (0.8.0 did not mirror it and
    stored it without an object id), and a thin event this library stored into the 0.8.0 schema
    before the update (webhooks keep arriving between the library's install and ALTER EXTENSION
    ... UPDATE; the worker waits for the update). After the update the summary is applied (its
    entitlements are rows), the thin event is marked thin and handled as one (its object asked
    for, nothing applied from the event), and active_entitlements answers from them."""
    t = int(time.time()) - 3600
    ents = [{"id": f"ent_up{k}", "object": "entitlements.active_entitlement", "feature": f"feat_up{k}",
             "livemode": False, "lookup_key": f"key{k}"} for k in range(3)]
    summary = {"object": "entitlements.active_entitlement_summary", "customer": "cus_ent_up", "livemode": False,
               "entitlements": {"object": "list", "data": ents, "has_more": False,
                                "url": "/v1/entitlements/active_entitlements"}}
    summary_event = json.dumps({"id": h.new_id("evt_"), "object": "event", "created": t,
                                "type": "entitlements.active_entitlement_summary.updated",
                                "api_version": "2026-07-29.dahlia", "data": {"object": summary}})
    thin_event = json.dumps({"id": h.new_id("evt_"), "object": "v2.core.event", "type": "v1.billing.meter.updated",
                             "livemode": False, "created": datetime.fromtimestamp(t, timezone.utc).isoformat(),
                             "related_object": {"id": "mtr_up", "type": "billing.meter",
                                                "url": "/v1/billing/meters/mtr_up"}})
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, create_extension=False) as c:
        c.query("CREATE EXTENSION stripe_sync VERSION '0.8.0'")
        assert c.scalar("SELECT to_regclass('stripe_sync.customer_entitlements')") is None
        with c.connect() as conn:
            assert h.ingest(conn, summary_event, secret) == "queued"
            # The library is 0.9.0 already: it stores the thin event into the 0.8.0 schema.
            assert h.ingest(conn, thin_event, secret) == "queued"
        summary_id, thin_id = h.event_id_of(summary_event), h.event_id_of(thin_event)
        # What 0.8.0 made of the summary event: no object id, skipped.
        c.query("UPDATE stripe_sync.events SET status = 'skipped', processed_at = now(), object_id = NULL"
                " WHERE id = %s", (summary_id,))
        assert c.query("SELECT object_type, object_id FROM stripe_sync.events WHERE id = %s", (thin_id,)) == \
            [("billing.meter", "mtr_up")]

        c.query("ALTER EXTENSION stripe_sync UPDATE")
        assert c.scalar("SELECT extversion FROM pg_extension WHERE extname = 'stripe_sync'") == NEW
        assert dict(c.query("SELECT id, thin FROM stripe_sync.events")) == {summary_id: False, thin_id: True}

        h.wait_until(lambda: c.query("SELECT id, customer, feature, lookup_key FROM stripe_sync.customer_entitlements"
                                     " ORDER BY id")
                     == [(e["id"], "cus_ent_up", e["feature"], e["lookup_key"]) for e in ents],
                     timeout=60, what="the skipped summary applied")
        h.wait_until(lambda: dict(c.query("SELECT id, status FROM stripe_sync.events"))
                     == {summary_id: "processed", thin_id: "processed"}, timeout=60, what="both events handled")
        assert c.scalar("SELECT count(*) FROM stripe_sync.billing_meters") == 0
        assert sorted(c.query("SELECT customer, feature_lookup_key, source FROM stripe_sync.active_entitlements")) == \
            [("cus_ent_up", e["lookup_key"], "entitlements") for e in ents]
