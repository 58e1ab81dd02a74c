"""pg_dump and pg_restore keep everything the extension holds: a database with runs, provisioning
jobs, handlers and their runs, alerts, subscription history and cursors is dumped, restored into
a new database, and there signups, create_customer, backfill, catch_up, handlers and alerts all
work, with ids that go on from the restored ones.

Before 0.6.0 the id sequences of sync_runs and provisioning_jobs were not dumped: a restored
database restarted them at 1, a new signup's job collided with a restored one and was silently
dropped, create_customer failed with 23505 after Stripe had created the customer, and backfill
failed until the sequence passed the restored ids (issue 26)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.slackstub import SlackStub


@pytest.fixture(scope="module")
def slack():
    with SlackStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def cluster(stand_in, slack):
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=stand_in.base,
                               slack_webhook_url=slack.url, alert_events="customer.created") as c:
        h.wait_until(c.worker_pid, timeout=30, what="the stripe_sync worker to start")
        yield c


def subscription_event(secret_unused=None) -> str:
    now = int(time.time())
    sub = {"id": h.new_id("sub_"), "object": "subscription", "status": "active", "currency": "usd",
           "customer": h.new_id("cus_"), "created": now, "current_period_start": now,
           "items": {"object": "list", "data": [{"id": h.new_id("si_"), "object": "subscription_item", "quantity": 1,
                                                 "price": {"id": "price_1", "object": "price", "unit_amount": 1000,
                                                           "currency": "usd",
                                                           "recurring": {"interval": "month", "interval_count": 1}}}]}}
    return json.dumps({"id": h.new_id("evt_", 24), "object": "event", "api_version": "2024-06-20", "created": now,
                       "type": "customer.subscription.created", "data": {"object": sub}, "livemode": False})


def counts(cluster, dbname: str) -> dict[str, int]:
    tables = ["events", "sync_runs", "sync_cursors", "provisioning_jobs", "handlers", "handler_runs", "alerts",
              "subscription_history", "customers"]
    return {t: cluster.scalar(f"SELECT count(*) FROM stripe_sync.{t}", dbname=dbname) for t in tables}


def test_a_restored_database_keeps_its_state_and_goes_on_working(cluster, api, slack):
    c = cluster
    # State in the source database: events and history, a handler with runs, alerts, a backfill
    # run with its cursor, provisioned signups.
    c.query("CREATE TABLE public.app_users (id int PRIMARY KEY, email text, stripe_customer_id text)")
    c.query("SELECT stripe_sync.enable_provisioning('public.app_users', 'id', 'email')")
    c.query("CREATE TABLE public.handled (event_id text)")
    c.query("CREATE FUNCTION public.remember(event jsonb) RETURNS void LANGUAGE sql"
            " AS $$ INSERT INTO public.handled VALUES (event->>'id') $$")
    c.query("SELECT stripe_sync.on_event('customer.created', 'public.remember(jsonb)'::regprocedure)")
    with c.connect() as conn:
        for i in range(3):
            h.ingest(conn, h.customer_event(email=f"before{i}@example.com"), c.webhook_secret)
        h.ingest(conn, subscription_event(), c.webhook_secret)
    c.query("INSERT INTO public.app_users (id, email) SELECT i, 'user' || i || '@example.com' FROM generate_series(1, 3) i")
    for i in range(5):
        api.v1.customers.create(params={"email": f"listed{i}@example.com"})
    assert c.scalar("SELECT stripe_sync.backfill('customer', created_after => 'epoch')") >= 5
    h.wait_until(lambda: c.scalar("SELECT count(*) FROM public.app_users WHERE stripe_customer_id IS NOT NULL") == 3
                 and c.scalar("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'succeeded'") >= 3
                 and c.scalar("SELECT count(*) FROM stripe_sync.alerts WHERE status = 'sent'") >= 1,
                 timeout=60, what="provisioning, handler runs and alerts in the source")
    before = counts(c, "postgres")
    assert all(n > 0 for n in before.values()), before
    max_ids = {t: c.scalar(f"SELECT max(id) FROM stripe_sync.{t}") for t in ("sync_runs", "provisioning_jobs", "alerts", "handlers")}

    dump = c.base / "stripe_sync.dump"
    bindir = h.PG_BIN
    subprocess.run([str(bindir / "pg_dump"), "-Fc", "-f", str(dump), c.dsn()], check=True, timeout=120)
    c.query("CREATE DATABASE restored")
    subprocess.run([str(bindir / "pg_restore"), "--exit-on-error", "-d", c.dsn(dbname="restored"), str(dump)],
                   check=True, timeout=120)

    r = "restored"
    assert counts(c, r) == before
    # Every sequence goes on from the restored ids.
    for t, top in max_ids.items():
        seq = c.scalar(f"SELECT last_value FROM stripe_sync.{t}_id_seq", dbname=r)
        assert seq >= top, f"{t}_id_seq restored at {seq}, below the restored max id {top}"

    with c.connect(dbname=r) as conn:
        # A signup queues a job (no worker here: it stays pending), with a new id.
        conn.execute("INSERT INTO public.app_users (id, email) VALUES (4, 'after@example.com')")
        job = conn.execute("SELECT id, status FROM stripe_sync.provisioning_jobs WHERE user_id = '4'").fetchone()
        assert job is not None and job[0] > max_ids["provisioning_jobs"] and job[1] == "pending"
        # create_customer provisions it now.
        cus = conn.execute("SELECT stripe_sync.create_customer('4')").fetchone()[0]
        assert cus.startswith("cus_")
        assert conn.execute("SELECT stripe_customer_id FROM public.app_users WHERE id = 4").fetchone()[0] == cus
        # A backfill records a new run; catch_up works.
        api.v1.customers.create(params={"email": "later@example.com"})
        assert conn.execute("SELECT stripe_sync.backfill('customer', created_after => 'epoch')").fetchone()[0] >= 6
        assert conn.execute("SELECT max(id) FROM stripe_sync.sync_runs").fetchone()[0] > max_ids["sync_runs"]
        conn.execute("SELECT stripe_sync.catch_up()")
        # The restored handler runs for a new event, and an alert is queued with a new id.
        with conn.transaction():
            payload = h.customer_event(email="restored@example.com")
            assert h.ingest(conn, payload, c.webhook_secret) == "queued"
            conn.execute("SELECT stripe_sync.process_pending()")
        eid = json.loads(payload)["id"]
        assert conn.execute("SELECT count(*) FROM public.handled WHERE event_id = %s", (eid,)).fetchone()[0] == 1
        alert = conn.execute("SELECT id FROM stripe_sync.alerts WHERE event_id = %s", (eid,)).fetchone()
        assert alert is not None and alert[0] > max_ids["alerts"]
