"""Running stripe_sync: pg_dump/pg_restore, pg_cron driving catch_up, the status
view, retry_failed()/replay_event() through the worker, and the example queries
of docs/queries.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Iterator, Optional

import psycopg
import pytest

from stripe_sync_testkit import harness as h

DOCS = h.REPO_ROOT / "docs"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def synced_tables() -> list[str]:
    """The 39 synced tables, as docs/schema.md lists them."""
    tables = re.findall(r"^## stripe_sync\.(\w+)$", (DOCS / "schema.md").read_text(), re.M)
    assert len(tables) == 39, tables
    return tables


def as_postgres(*argv: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else list(argv)


def customer_payload(cid: Optional[str] = None, api_version: str = "2024-06-20", created: Optional[int] = None,
                     kind: str = "customer.created", **fields) -> str:
    cust = h.customer_object(customer_id=cid or h.new_id("cus_"), **fields)
    return h.customer_event(kind, customer=cust, api_version=api_version, created=created)


def event_status(cluster: h.Cluster, event_id: str) -> Optional[str]:
    return cluster.scalar("SELECT status FROM stripe_sync.events WHERE id = %s", (event_id,))


# --------------------------------------------------------------------------
# a database filled from a generated stream (pg_dump and docs tests)
# --------------------------------------------------------------------------

FILL_EVENTS = 2000


@pytest.fixture(scope="module")
def filled() -> Iterator[h.Cluster]:
    secret = h.new_webhook_secret()
    # Recent traffic (the last two days), so that the "last 7 days" queries find some.
    stream = h.gen_stream(secret, FILL_EVENTS, seed=11, start=int(time.time()) - 2 * 86400)
    with h.stripe_sync_cluster(secret) as c:
        h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
        with c.connect() as conn:
            assert h.ingest_all(conn, stream) == ["queued"] * FILL_EVENTS
        h.wait_drained(c)
        assert c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'processed'") == FILL_EVENTS
        yield c


# --------------------------------------------------------------------------
# 1. pg_dump -Fc / pg_restore
# --------------------------------------------------------------------------

def table_fingerprints(cluster: h.Cluster, dbname: str, tables: list[str]) -> dict[str, tuple[int, str]]:
    out = {}
    with cluster.connect(dbname=dbname) as conn:
        for t in tables:
            out[t] = conn.execute(
                f"SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x.id), ''))"
                f"  FROM stripe_sync.{t} x").fetchone()
    return out


def test_pg_dump_and_restore_keep_synced_rows_and_events(filled):
    c = filled
    tables = synced_tables() + ["events"]
    before = table_fingerprints(c, "postgres", tables)
    assert before["customers"][0] > 0 and before["events"][0] == FILL_EVENTS
    assert sum(1 for n, _ in before.values() if n > 0) >= 10

    dump = c.base / "stripe_sync.dump"
    bin_dir = h.PG_BIN  # the server's own version of pg_dump
    conn_args = ["-h", str(c.base), "-p", str(c.port), "-U", "postgres"]
    proc = subprocess.run(as_postgres(str(bin_dir / "pg_dump"), *conn_args, "-Fc", "-f", str(dump), "postgres"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    c.query("CREATE DATABASE restored")
    proc = subprocess.run(as_postgres(str(bin_dir / "pg_restore"), *conn_args, "-d", "restored", str(dump)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr

    # The restore created the extension (nobody ran CREATE EXTENSION in "restored").
    assert c.query("SELECT extname FROM pg_extension WHERE extname = 'stripe_sync'", dbname="restored") \
        == [("stripe_sync",)]
    after = table_fingerprints(c, "restored", tables)
    assert after == before

    # And the restored copy keeps working: a new event applies on top of the restored rows.
    payload = customer_payload(email="after-restore@example.com")
    with c.connect(dbname="restored") as conn:
        assert h.ingest(conn, payload, c.webhook_secret) == "queued"
        assert conn.execute("SELECT stripe_sync.process_pending()").fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM stripe_sync.customers").fetchone()[0] == \
            before["customers"][0] + 1


# --------------------------------------------------------------------------
# 5. docs/queries.md
# --------------------------------------------------------------------------

def doc_queries() -> list[tuple[str, str]]:
    """(heading, sql) for every ```sql block of docs/queries.md."""
    text = (DOCS / "queries.md").read_text()
    out, heading = [], ""
    for m in re.finditer(r"^## ([^\n]+)$|^```sql\n(.*?)^```", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1)
        else:
            out.append((heading, m.group(2)))
    return out


def test_every_query_in_docs_runs_on_a_filled_database(filled):
    queries = doc_queries()
    assert len(queries) >= 5, queries
    rows_by_heading = {}
    with filled.connect() as conn:
        for heading, sql in queries:
            try:
                rows_by_heading[heading] = conn.execute(sql).fetchall()
            except psycopg.Error as err:
                pytest.fail(f"docs/queries.md, '{heading}': {err.sqlstate} {err}")
    mrr = [rows for head, rows in rows_by_heading.items() if "MRR" in head]
    past_due = [rows for head, rows in rows_by_heading.items() if "past-due" in head]
    assert len(mrr) == 1 and len(past_due) == 1, list(rows_by_heading)
    assert mrr[0], "the MRR query returns no row"
    assert all(row[-1] is not None and row[-1] > 0 for row in mrr[0]), mrr[0]
    assert past_due[0], "the past-due query returns no row"


# --------------------------------------------------------------------------
# 3. the status view after some traffic, and the retention purge
# --------------------------------------------------------------------------

def test_status_view_reports_queue_failures_throughput_versions_and_worker():
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, max_attempts=1) as c:
        worker = h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
        ours = c.scalar("SHOW stripe_sync.api_version")
        st = h.status_row(c)
        assert set(st) >= {"pending", "failed", "applied_last_minute", "applied_last_hour",
                           "other_api_version_last_hour", "worker_pid", "worker_heartbeat"}
        assert (st["pending"], st["failed"], st["applied_last_minute"], st["applied_last_hour"],
                st["other_api_version_last_hour"]) == (0, 0, 0, 0, 0)
        assert st["worker_pid"] == worker

        # Heartbeat: recent, and it moves while the worker idles.
        def fresh_heartbeat():
            s = h.status_row(c)
            now = c.scalar("SELECT now()")
            return s["worker_heartbeat"] is not None and now - s["worker_heartbeat"] < timedelta(seconds=3) \
                and s["worker_heartbeat"]
        first = h.wait_until(fresh_heartbeat, timeout=10, what="a recent worker heartbeat")
        h.wait_until(lambda: (hb := fresh_heartbeat()) and hb > first, timeout=10,
                     what="the heartbeat to advance")

        t = int(time.time()) - 30
        current = [customer_payload(api_version=ours, created=t) for _ in range(5)]
        older = [customer_payload(api_version="2020-03-02", created=t) for _ in range(3)]
        poison = customer_payload(api_version=ours, created=t, balance="x")
        with c.connect() as conn:
            for p in current + older + [poison, h.unmirrored_event()]:
                assert h.ingest(conn, p, secret) == "queued"
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'") == 0,
                     timeout=30, what="the worker to handle all ten events")
        st = h.status_row(c)
        assert st["pending"] == 0 and st["oldest_pending_age"] is None
        assert st["failed"] == 1
        # 8 applied; the skipped event (not mirrored) and the failed one are not "applied".
        assert (st["applied_last_minute"], st["applied_last_hour"]) == (8, 8)
        assert st["other_api_version_last_hour"] == 3  # api_version 2020-03-02 != stripe_sync.api_version
        assert st["worker_pid"] == worker

        # Pending: the worker is stuck behind a lock on customers while four more arrive.
        blocker = c.connect(autocommit=False)
        try:
            blocker.execute("LOCK TABLE stripe_sync.customers IN ACCESS EXCLUSIVE MODE")
            with c.connect() as conn:
                for _ in range(4):
                    assert h.ingest(conn, customer_payload(api_version=ours), secret) == "queued"
            h.wait_until(lambda: c.scalar("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                          (worker,)) == "Lock",
                         timeout=20, what="the worker to wait on the locked table")
            st = h.status_row(c)
            assert st["pending"] == 4 and st["oldest_pending_age"] is not None
            assert st["applied_last_minute"] == 8
        finally:
            blocker.rollback()
            blocker.close()
        h.wait_drained(c)
        st = h.status_row(c)
        assert (st["pending"], st["failed"], st["applied_last_minute"], st["applied_last_hour"],
                st["other_api_version_last_hour"]) == (0, 1, 12, 12, 3)

        # Time passes (we move processed_at back): out of the last minute, then out of the hour.
        older_ids = [json.loads(p)["id"] for p in older]
        c.query("UPDATE stripe_sync.events SET processed_at = now() - interval '30 minutes' WHERE id = ANY(%s)",
                (older_ids,))
        st = h.status_row(c)
        assert (st["applied_last_minute"], st["applied_last_hour"], st["other_api_version_last_hour"]) == (9, 12, 3)
        c.query("UPDATE stripe_sync.events SET processed_at = now() - interval '2 hours'"
                " WHERE id = ANY(%s) OR status = 'failed'", (older_ids,))
        st = h.status_row(c)
        assert (st["applied_last_hour"], st["other_api_version_last_hour"], st["failed"]) == (9, 0, 1)

        # Retention: purge_events removes those processed ones, keeps the failed one.
        # (the failed event was moved back two hours as well: it stays all the same)
        assert c.scalar("SELECT stripe_sync.purge_events('1 hour')") == len(older_ids)
        remaining = dict(c.query("SELECT status, count(*) FROM stripe_sync.events GROUP BY 1"))
        assert c.scalar("SELECT count(*) FROM stripe_sync.events WHERE id = ANY(%s)", (older_ids,)) == 0
        assert remaining.get("failed") == 1
        assert h.status_row(c)["failed"] == 1


# --------------------------------------------------------------------------
# 4. retry_failed() and replay_event() through the worker
# --------------------------------------------------------------------------

def test_poison_event_fails_then_retry_and_replay_go_through_the_worker():
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, max_attempts=2, retry_base_delay="100ms") as c:
        h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
        t = int(time.time()) - 30
        good_ids = [h.new_id("cus_") for _ in range(5)]
        good = [customer_payload(cid, created=t, email=f"ok{i}@example.com") for i, cid in enumerate(good_ids)]
        poison_cid = h.new_id("cus_")
        poison = customer_payload(poison_cid, created=t, email="poison@example.com", balance="x")
        poison_id = json.loads(poison)["id"]
        # All in one transaction, so the poison sits in the same batch as the good ones.
        with c.connect(autocommit=False) as conn:
            for p in good[:3] + [poison] + good[3:]:
                assert h.ingest(conn, p, secret) == "queued"
            conn.commit()

        h.wait_until(lambda: event_status(c, poison_id) == "failed", timeout=30,
                     what="the poison event to fail for good")
        status, attempts, last_error = c.query(
            "SELECT status, attempts, last_error FROM stripe_sync.events WHERE id = %s", (poison_id,))[0]
        assert (status, attempts) == ("failed", 2)
        assert last_error and "22P02" in last_error, last_error  # invalid input syntax for type bigint
        assert c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'processed'") == 5
        assert dict(c.query("SELECT id, email FROM stripe_sync.customers")) == \
            {cid: f"ok{i}@example.com" for i, cid in enumerate(good_ids)}
        assert h.status_row(c)["failed"] == 1

        # Fix the stored event, put it back: the worker (not us) applies it.
        c.query("UPDATE stripe_sync.events SET data = jsonb_set(data, '{data,object,balance}', '250')"
                " WHERE id = %s", (poison_id,))
        assert c.scalar("SELECT stripe_sync.retry_failed()") == 1
        h.wait_until(lambda: event_status(c, poison_id) == "processed", timeout=30,
                     what="the worker to apply the fixed event")
        assert c.query("SELECT email, balance FROM stripe_sync.customers WHERE id = %s", (poison_cid,)) \
            == [("poison@example.com", 250)]
        assert c.query("SELECT attempts, last_error FROM stripe_sync.events WHERE id = %s", (poison_id,)) \
            == [(1, None)]
        assert h.status_row(c)["failed"] == 0
        assert c.scalar("SELECT stripe_sync.retry_failed()") == 0

        # replay_event: a row changed behind our back is rewritten from its event by the worker.
        replayed = json.loads(good[0])["id"]
        c.query("UPDATE stripe_sync.customers SET email = 'tampered@example.com' WHERE id = %s", (good_ids[0],))
        assert c.scalar("SELECT stripe_sync.replay_event(%s)", (replayed,)) == "queued"
        h.wait_until(lambda: c.scalar("SELECT email FROM stripe_sync.customers WHERE id = %s",
                                      (good_ids[0],)) == "ok0@example.com",
                     timeout=30, what="the worker to apply the replayed event")
        assert event_status(c, replayed) == "processed"
        with c.connect() as conn:
            with pytest.raises(psycopg.Error) as err:
                conn.execute("SELECT stripe_sync.replay_event('evt_never_seen')")
        assert err.value.sqlstate == "P0002"


# --------------------------------------------------------------------------
# 2. pg_cron runs catch_up() every minute (slow: about a minute, runs anyway)
# --------------------------------------------------------------------------

@pytest.mark.localstripe
def test_pg_cron_runs_catch_up_and_the_missed_customer_arrives():
    """Slow on purpose (one minute is pg_cron's finest schedule): up to ~75 s."""
    with h.LocalStripe() as ls:
        base = Path(tempfile.mkdtemp(prefix="stripe_sync-cron-"))
        conf = h.stripe_sync_conf(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=ls.base)
        conf.update({
            "shared_preload_libraries": "pg_cron,stripe_sync",
            "cron.database_name": "postgres",
            # pg_cron connects over libpq: to our socket directory, not localhost.
            "cron.host": str(base),
        })
        with h.Cluster(base_dir=base, conf=conf) as c:
            c.query("CREATE EXTENSION stripe_sync")
            c.query("CREATE EXTENSION pg_cron")
            h.wait_until(c.worker_pid, timeout=30, what="the stripe_sync worker to start")
            assert c.scalar("SHOW cron.host") == str(base)  # set before scheduling: jobs keep it
            job = c.scalar("SELECT cron.schedule('stripe-catch-up', '* * * * *', 'SELECT stripe_sync.catch_up()')")
            scheduled = time.monotonic()
            # No webhook endpoint: the customer reaches us only through catch_up.
            api = h.stripe_client(ls.base)
            customer = api.v1.customers.create(params={"email": "cron@example.com", "name": "Cron"})

            def caught_up():
                runs = c.query("SELECT status, return_message FROM cron.job_run_details WHERE jobid = %s", (job,))
                failed = [r for r in runs if r[0] == "failed"]
                assert not failed, failed
                row = c.query("SELECT email, name FROM stripe_sync.customers WHERE id = %s", (customer.id,))
                return any(r[0] == "succeeded" for r in runs) and row == [("cron@example.com", "Cron")] and runs
            runs = h.wait_until(caught_up, timeout=75 - (time.monotonic() - scheduled), interval=0.5,
                                what="pg_cron to run catch_up and the customer to be synced")
            assert runs[0][1] == "1 row"
            assert c.scalar("SELECT status FROM stripe_sync.sync_runs WHERE kind = 'catch_up' ORDER BY id LIMIT 1") \
                == "completed"
