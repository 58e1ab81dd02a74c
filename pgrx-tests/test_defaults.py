"""At PostgreSQL's default settings (jit = on, with Debian's LLVM JIT), none of the extension's
statements JIT-compiles: the worker's and helpers' batches, process_pending(), a backfill's job
worker, provisioning. pg_stat_statements (track = all) counts JIT functions per statement; the
test first shows that it does count them on this machine, then that ours have none.

Before 0.6.0 every batch compiled JIT code: with sequential scans off for the batch, the one
statement that could only scan (mark_done's handlers join) was costed at 10^10, far above
jit_above_cost (issue 26: 11,943 instead of 31,983 events/s, 170 ms for a lone event)."""

from __future__ import annotations

import pytest

from stripe_sync_testkit import harness as h

N_EVENTS = 3000


@pytest.fixture(scope="module")
def cluster(stand_in):
    conf = {"shared_preload_libraries": "stripe_sync, pg_stat_statements",
            "pg_stat_statements.track": "all", "pg_stat_statements.max": 10000}
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=stand_in.base) as c:
        c.append_conf(conf)
        c.restart()
        h.wait_until(c.worker_pid, timeout=30, what="the stripe_sync worker to start")
        c.query("CREATE EXTENSION pg_stat_statements")
        yield c


def jitted(cluster) -> list[tuple]:
    return cluster.query("SELECT calls, jit_functions, left(regexp_replace(query, '\\s+', ' ', 'g'), 160)"
                         " FROM pg_stat_statements WHERE jit_functions > 0 ORDER BY jit_functions DESC")


def test_jit_is_on_and_counted_here(cluster):
    assert cluster.scalar("SHOW jit") == "on"
    assert cluster.scalar("SELECT pg_jit_available()") is True
    # A statement costed above jit_above_cost does JIT-compile, and pg_stat_statements sees it:
    # the measure below cannot pass by being blind.
    cluster.query("CREATE TABLE public.jit_probe (x int)")
    with cluster.connect() as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT count(*) FROM public.jit_probe WHERE x > 0")
    assert [r for r in jitted(cluster) if "jit_probe" in r[2]], jitted(cluster)
    cluster.query("SELECT pg_stat_statements_reset()")


def test_no_statement_of_ours_jit_compiles_at_default_settings(cluster, api):
    cluster.query("SELECT pg_stat_statements_reset()")
    # The worker and its apply helpers drain a backlog.
    with cluster.connect() as conn:
        with conn.transaction():
            for i in range(N_EVENTS):
                h.ingest(conn, h.customer_event(email=f"jit{i}@example.com"), cluster.webhook_secret)
    h.wait_until(lambda: cluster.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'") == 0,
                 timeout=120, what="the worker to drain the backlog")
    # process_pending() in a session, with a handler registered (mark_done's join has a row).
    cluster.query("CREATE FUNCTION public.noop(event jsonb) RETURNS void LANGUAGE sql AS 'SELECT'")
    cluster.query("SELECT stripe_sync.on_event('customer.*', 'public.noop(jsonb)'::regprocedure)")
    with cluster.connect() as conn:
        with conn.transaction():
            for i in range(300):
                h.ingest(conn, h.customer_event(email=f"session{i}@example.com"), cluster.webhook_secret)
            assert conn.execute("SELECT stripe_sync.process_pending()").fetchone()[0] >= 300
    # A backfill's job worker, and provisioning by the worker.
    for i in range(30):
        api.v1.customers.create(params={"email": f"listed{i}@example.com"})
    assert cluster.scalar("SELECT stripe_sync.backfill('customer', created_after => 'epoch')") >= 30
    cluster.query("CREATE TABLE public.jit_users (id int PRIMARY KEY, email text, stripe_customer_id text)")
    cluster.query("SELECT stripe_sync.enable_provisioning('public.jit_users', 'id', 'email')")
    cluster.query("INSERT INTO public.jit_users (id, email) SELECT i, 'p' || i || '@example.com' FROM generate_series(1, 5) i")
    h.wait_until(lambda: cluster.scalar("SELECT count(*) FROM public.jit_users WHERE stripe_customer_id IS NOT NULL") == 5,
                 timeout=60, what="provisioning")

    # catch_up's job worker, the purge, the status view.
    cluster.query("SELECT stripe_sync.catch_up()")
    cluster.query("SELECT stripe_sync.purge_events('0 seconds')")
    cluster.query("SELECT * FROM stripe_sync.status")

    # pg_stat_statements saw the worker's statements (the claim, the mark) ...
    seen = cluster.scalar("SELECT sum(calls) FROM pg_stat_statements WHERE query LIKE '%UPDATE stripe_sync.events%'")
    assert seen and seen > 0
    # ... and none of them, nor any other, compiled JIT code.
    assert jitted(cluster) == []
