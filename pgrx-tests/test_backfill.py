"""Backfill, incremental runs, resume after cancel, sync_object and catch_up
against localstripe (the Stripe stand-in), through the real job workers."""

from __future__ import annotations

import time

import psycopg
import pytest

from stripe_sync_testkit import harness as h

N_CUSTOMERS = 230  # three pages of 100


@pytest.fixture(scope="module")
def customers(api):
    made = [api.v1.customers.create(params={"email": f"b{i}@example.com", "name": f"Backfill {i}"})
            for i in range(N_CUSTOMERS)]
    return {c.id: c for c in made}


@pytest.fixture(scope="module")
def cluster(stand_in, customers):
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY,
                               api_base=stand_in.base) as c:
        yield c


def listed_customers(api) -> dict[str, str]:
    return {c.id: c.email for c in api.v1.customers.list(params={"limit": 100}).auto_paging_iter()}


def test_backfill_copies_exactly_what_the_api_lists(cluster, api, customers):
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        n = conn.execute("SELECT stripe_sync.backfill('customer')").fetchone()[0]
    assert n == N_CUSTOMERS
    rows = dict(cluster.query("SELECT id, email FROM stripe_sync.customers WHERE NOT _deleted"))
    assert rows == listed_customers(api)
    assert any("3 pages" in m for m in notices), notices
    run = cluster.query("SELECT status, pages, objects, resumed, listed, rows_held, deleted"
                        " FROM stripe_sync.sync_runs WHERE object = 'customer' ORDER BY id")
    assert run == [("completed", 3, N_CUSTOMERS, False, N_CUSTOMERS, N_CUSTOMERS, 0)]
    typed = cluster.query("SELECT name, _last_event_type FROM stripe_sync.customers WHERE email = 'b7@example.com'")
    assert typed == [("Backfill 7", "stripe_sync.fetched")]


def test_running_it_again_changes_nothing(cluster, api):
    # A full run again ('epoch': no created filter; localstripe has no created[gte]
    # on lists, so the incremental run is tested against the stand-in, test_standin.py).
    before = cluster.query("SELECT id, data, _deleted FROM stripe_sync.customers ORDER BY id")
    with cluster.connect() as conn:
        n = conn.execute("SELECT stripe_sync.backfill('customers', 'epoch')").fetchone()[0]
    assert n == N_CUSTOMERS
    after = cluster.query("SELECT id, data, _deleted FROM stripe_sync.customers ORDER BY id")
    assert after == before
    fresh = api.v1.customers.create(params={"email": "fresh@example.com"})
    with cluster.connect() as conn:
        n = conn.execute("SELECT stripe_sync.backfill('customer', 'epoch')").fetchone()[0]
    assert n == N_CUSTOMERS + 1
    assert cluster.scalar("SELECT email FROM stripe_sync.customers WHERE id = %s", (fresh.id,)) == "fresh@example.com"
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE status <> 'completed'") == 0


def test_sync_object_refetches_one_object(cluster, api, customers):
    cid = next(iter(customers))
    api.v1.customers.update(cid, params={"email": "changed@example.com"})
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.sync_object(%s)", (cid,)).fetchone()[0] == "customers"
    assert cluster.scalar("SELECT email FROM stripe_sync.customers WHERE id = %s", (cid,)) == "changed@example.com"


def test_sync_object_errors_are_clear(cluster):
    with cluster.connect() as conn:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.sync_object('cus_doesnotexist')")
    assert err.value.sqlstate == "P0002"
    assert "stripe API error 404" in str(err.value)
    with cluster.connect() as conn:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.sync_object('zz_1')")
    assert "no known Stripe id prefix" in str(err.value)
    with cluster.connect() as conn:
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.backfill('widgets')")
    assert err.value.sqlstate == "22023"
    assert "customer" in (err.value.diag.message_hint or "")


def test_wrong_key_and_unreachable_api_fail_fast_and_clearly(cluster):
    with cluster.connect() as conn:
        conn.execute("SET stripe_sync.api_key = 'not_a_key_at_all'")
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.sync_object('cus_whatever')")
        assert err.value.sqlstate == "28000", err.value
        assert "not_a_key_at_all" not in str(err.value)
        conn.execute("RESET stripe_sync.api_key")
        conn.execute(f"SET stripe_sync.api_base = 'http://127.0.0.1:{h.free_port()}'")
        conn.execute("SET stripe_sync.max_network_retries = 1")
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.sync_object('cus_whatever')")
        assert err.value.sqlstate == "08006", err.value
        assert "unreachable" in str(err.value)
        assert h.TEST_API_KEY not in str(err.value)


def test_api_settings_set_in_the_session_are_refused_by_backfill_and_catch_up(cluster, api):
    # Their job worker uses the server's configuration: a session's own key or base would be
    # silently ignored (another account, another server), so the call is refused up front.
    runs = cluster.scalar("SELECT count(*) FROM stripe_sync.sync_runs")
    with cluster.connect() as conn:
        for setting, value in (("api_key", "sk_test_only_in_this_session"),
                               ("api_base", f"http://127.0.0.1:{h.free_port()}")):
            conn.execute(f"SET stripe_sync.{setting} = '{value}'")
            for call in ("backfill('customer')", "catch_up()"):
                with pytest.raises(psycopg.Error) as err:
                    conn.execute(f"SELECT stripe_sync.{call}")
                assert err.value.sqlstate == "55000", (setting, call, err.value)
                assert f"stripe_sync.{setting} is set for this session (session)" in str(err.value)
                assert "sk_test_only_in_this_session" not in str(err.value)
            conn.execute(f"RESET stripe_sync.{setting}")
        # Reset, the same call runs (a full run: localstripe knows no created filter) and lists them all.
        listed = len(listed_customers(api))
        assert conn.execute("SELECT stripe_sync.backfill('customer', 'epoch')").fetchone()[0] == listed
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.sync_runs") == runs + 1


def test_catch_up_recovers_events_never_delivered(cluster, api):
    # No webhook endpoint is registered: localstripe's events reach us only through catch_up.
    new = api.v1.customers.create(params={"email": "missed@example.com", "name": "Missed"})
    with cluster.connect() as conn:
        queued = conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0]
        assert queued >= 1
        again = conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0]
    assert again == 0, "events already stored are not queued twice"
    h.wait_until(lambda: cluster.scalar(
        "SELECT email FROM stripe_sync.customers WHERE id = %s", (new.id,)) == "missed@example.com",
        timeout=30, what="the worker to apply the caught-up event")
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'failed'") == 0
    assert cluster.scalar("SELECT status FROM stripe_sync.sync_runs WHERE kind = 'catch_up' ORDER BY id DESC LIMIT 1") == "completed"


def test_a_cancelled_backfill_resumes_without_duplicates(stand_in, api):
    # A second stand-in account would be cleaner; a separate cluster with one request a second does.
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=stand_in.base,
                               api_rate_limit=1) as c:
        # More than the five pages the request budget lets through at once.
        for i in range(400):
            api.v1.customers.create(params={"email": f"more{i}@example.com"})
        total = len(listed_customers(api))
        assert total > 600
        call = h.BackgroundCall(c, "SELECT stripe_sync.backfill('customer')")
        h.wait_until(lambda: (c.scalar("SELECT max(pages) FROM stripe_sync.sync_runs") or 0) >= 2,
                     timeout=60, what="two committed pages")
        c.query("SELECT pg_cancel_backend(%s)", (call.pid,))
        assert call.join() == "57014"  # query_canceled
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stripe_sync job'") == 0,
                     timeout=30, what="the job worker to stop")
        partial = c.scalar("SELECT count(*) FROM stripe_sync.customers")
        assert 0 < partial < total
        c.query("ALTER SYSTEM SET stripe_sync.api_rate_limit = 100")
        c.reload()
        with c.connect() as conn:
            conn.execute("SELECT stripe_sync.backfill('customer')")
        assert c.scalar("SELECT count(*) FROM stripe_sync.customers") == total
        runs = c.query("SELECT status, resumed FROM stripe_sync.sync_runs ORDER BY id")
        assert runs[-1] == ("completed", True), runs


def test_catch_up_says_loudly_when_its_last_run_is_beyond_the_window(stand_in):
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, api_key=h.TEST_API_KEY, api_base=stand_in.base) as c:
        # The last completed catch-up of the platform began listing 40 days ago.
        c.query("INSERT INTO stripe_sync.sync_cursors (account, object, high_water, last_completed_at)"
                " VALUES ('', 'event', %s, now() - interval '40 days')", (int(time.time()) - 40 * 86400,))
        with c.connect() as conn:
            warnings = []
            conn.add_notice_handler(lambda d: warnings.append((d.severity_nonlocalized, d.message_primary)))
            conn.execute("SELECT stripe_sync.catch_up()")
        assert any(sev == "WARNING" and "30-day" in msg and "backfill" in msg for sev, msg in warnings), warnings
        assert c.scalar("SELECT catch_up_gap FROM stripe_sync.status") is True
