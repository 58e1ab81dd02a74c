"""The Stripe client under faults: faultproxy.FaultProxy sits between the
extension and standin.StandIn and injects rate limits, server errors,
conflicts, dropped connections, slow and garbled answers. What Stripe says
may be retried is retried (honouring Retry-After), what it says may not is
not, errors read clearly, and the API key never shows."""

from __future__ import annotations

import time

import psycopg
import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.faultproxy import FaultProxy
from stripe_sync_testkit.standin import StandIn

N_CUSTOMERS = 530  # six pages
READ_TIMEOUT_MS = 2000  # the cluster's stripe_sync.read_timeout; the proxy's slow answers take longer
SLOW_SECONDS = 3.0
ERRORS: list[str] = []  # every SQL error message seen here, checked for the key at the end


@pytest.fixture(scope="module")
def api():
    with StandIn() as s:
        s.add("/v1/customers", N_CUSTOMERS, lambda i, o: o.update(email=f"f{i}@example.com"))
        for path in ("/v1/prices", "/v1/disputes", "/v1/credit_notes", "/v1/checkout/sessions"):
            s.add(path, 30)
        s.add("/v1/subscription_schedules", 250)
        yield s


@pytest.fixture(scope="module")
def proxy(api):
    with FaultProxy(api.base, slow_seconds=SLOW_SECONDS) as p:
        yield p


@pytest.fixture(scope="module")
def cluster(proxy):
    with h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=proxy.base, api_rate_limit=200,
                               read_timeout=READ_TIMEOUT_MS) as c:
        yield c


@pytest.fixture(autouse=True)
def fresh_plan(proxy):
    proxy.clear()
    yield
    proxy.clear()


def sql_error(cluster, sql, params=None, settings=()):
    """Runs ``sql`` expecting an error; returns (error, seconds taken)."""
    with cluster.connect() as conn:
        for s in settings:
            conn.execute(s)
        started = time.monotonic()
        with pytest.raises(psycopg.Error) as err:
            conn.execute(sql, params)
        took = time.monotonic() - started
    ERRORS.append(str(err.value))
    return err.value, took


def test_backfill_through_sprinkled_faults_matches_a_clean_run(cluster, proxy, api):
    plan = ["429", None,             # page 1: rate limited, Retry-After 1
            "500", "503", None,      # page 2: two server errors in a row
            "409", "drop", None,     # page 3: lock conflict, then the connection dropped
            "garbled", None,         # page 4: a 200 that is not JSON
            "slow", None,            # page 5: slower than read_timeout
            "502", "truncated", "stall", None]  # page 6: an HTML 502, a body cut short, a body that stalls
    proxy.inject(*plan, match="/v1/customers?")
    with cluster.connect() as conn:
        n = conn.execute("SELECT stripe_sync.backfill('customer')").fetchone()[0]
    assert n == N_CUSTOMERS
    assert proxy.pending() == 0
    log = proxy.requests("/v1/customers?")
    # Faults go to requests in the order they arrive; after the first two pages several are in
    # flight (backfill/paced.rs), so each faulted request is followed by the same request again
    # (not necessarily next), and every page was answered in the end.
    assert [r["fault"] for r in log][:len(plan)] == plan or sorted(map(str, (r["fault"] for r in log))) == \
        sorted(map(str, plan + [None] * (len(log) - len(plan))))
    for i, r in enumerate(log):
        if r["fault"]:
            again = [x for x in log[i + 1:] if x["target"] == r["target"]]
            assert again, (i, r)
    last_of = {r["target"]: r for r in log}
    assert all(r["fault"] is None for r in last_of.values())
    assert len(last_of) >= 6
    # Retry-After: 1 was honoured; the slow answer was given up after read_timeout
    retry_of = lambda r: next(x for x in log if x["target"] == r["target"] and x["at"] > r["at"])  # noqa: E731
    limited = next(r for r in log if r["fault"] == "429")
    assert retry_of(limited)["at"] - limited["at"] >= 1.0
    slow = next(r for r in log if r["fault"] == "slow")
    assert READ_TIMEOUT_MS / 1000 <= retry_of(slow)["at"] - slow["at"] < SLOW_SECONDS
    assert cluster.query("SELECT status, pages, objects, listed, rows_held, deleted FROM stripe_sync.sync_runs"
                         " WHERE object = 'customer'") == \
        [("completed", len(last_of), N_CUSTOMERS, N_CUSTOMERS, N_CUSTOMERS, 0)]
    faulted = dict(cluster.query("SELECT id, data FROM stripe_sync.customers"))
    with h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base, api_rate_limit=200) as clean:
        with clean.connect() as conn:
            assert conn.execute("SELECT stripe_sync.backfill('customer')").fetchone()[0] == N_CUSTOMERS
        assert dict(clean.query("SELECT id, data FROM stripe_sync.customers")) == faulted
    assert faulted == {o["id"]: o for o in api.listed("/v1/customers")}


def test_should_retry_false_fails_at_once(cluster, proxy):
    proxy.inject("503_no_retry", match="/v1/disputes?")
    err, took = sql_error(cluster, "SELECT stripe_sync.backfill('dispute')")
    assert err.sqlstate == "38000"
    assert "stripe API error 503" in str(err) and "must not be retried (injected)" in str(err)
    assert f"[request {proxy.log[0]['request_id']}]" in str(err)
    assert len(proxy.requests("/v1/disputes")) == 1
    assert took < 2.0
    assert cluster.query("SELECT status, pages, error LIKE 'stripe API error 503%' FROM stripe_sync.sync_runs"
                         " WHERE object = 'dispute'") == [("failed", 0, True)]
    # the same for a single retrieve in the session
    proxy.clear()
    proxy.always("503_no_retry", match="/v1/disputes/")
    err, took = sql_error(cluster, "SELECT stripe_sync.sync_object('dp_whatever')")
    assert err.sqlstate == "38000" and "stripe API error 503" in str(err)
    assert len(proxy.log) == 1 and took < 1.0


def test_a_failed_backfill_resumes_where_it_stopped(cluster, proxy, api):
    path = "/v1/subscription_schedules"
    proxy.inject(None, None, "503_no_retry", match=path + "?")
    err, _ = sql_error(cluster, "SELECT stripe_sync.backfill('subscription_schedule')")
    assert err.sqlstate == "38000" and "stripe API error 503" in str(err)
    # The first two pages, and what was answered of the slices in flight (backfill/paced.rs).
    committed = cluster.scalar("SELECT count(*) FROM stripe_sync.subscription_schedules")
    assert 200 <= committed < 250
    failed_pages = cluster.scalar("SELECT pages FROM stripe_sync.sync_runs WHERE object = 'subscription_schedule'")
    listed = api.listed(path)
    proxy.clear()
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.backfill('subscription_schedule')").fetchone()[0] == 250 - committed
    # Only slices are asked for again: nothing from the start, and nothing retrieved one by one.
    targets = [r["target"] for r in proxy.log if r["target"].startswith(path)]
    assert targets and all("created%5Bgte%5D" in t for t in targets), targets
    # beside the account's creation, where the slices' cuts stop (backfill/paced.rs)
    assert {r["target"] for r in proxy.log} - set(targets) <= {"/v1/account"}
    assert set(dict(cluster.query("SELECT id, data FROM stripe_sync.subscription_schedules"))) == \
        {o["id"] for o in listed}
    runs = cluster.query("SELECT status, resumed, pages, objects, listed, rows_held, deleted FROM stripe_sync.sync_runs"
                         " WHERE object = 'subscription_schedule' ORDER BY id")
    assert runs == [("failed", False, failed_pages, committed, None, None, 0),
                    ("completed", True, len(targets), 250 - committed, 250, 250, 0)]


def test_a_400_is_not_retried_and_reads_clearly(cluster, proxy, api):
    pid = api.listed("/v1/prices")[0]["id"]
    proxy.always("400", match=f"/v1/prices/{pid}")
    err, _ = sql_error(cluster, "SELECT stripe_sync.sync_object(%s)", (pid,))
    assert err.sqlstate == "22023"
    assert str(err).startswith("stripe API error 400 invalid_request_error (parameter_invalid): "
                               "Invalid value for limit (injected). [request req_fault_0]"), str(err)
    assert len(proxy.log) == 1


def test_retries_stop_after_max_network_retries(cluster, proxy, api):
    pid = api.listed("/v1/prices")[1]["id"]
    proxy.always("500", match=f"/v1/prices/{pid}")
    err, took = sql_error(cluster, "SELECT stripe_sync.sync_object(%s)", (pid,),
                          ["SET stripe_sync.max_network_retries = 2"])
    assert err.sqlstate == "38000" and "stripe API error 500 api_error: An unknown error occurred" in str(err)
    log = proxy.requests(f"/v1/prices/{pid}")
    assert len(log) == 3
    # backoff from 0.5 s with jitter: the first wait in [0.25, 0.5] s, the second in [0.5, 1] s
    first, second = log[1]["at"] - log[0]["at"], log[2]["at"] - log[1]["at"]
    assert 0.25 <= first < 0.7 and 0.5 <= second < 1.2, (first, second)
    assert took < 3


def test_a_slow_answer_times_out_clearly(cluster, proxy, api):
    pid = api.listed("/v1/prices")[2]["id"]
    proxy.always("slow", match=f"/v1/prices/{pid}")
    err, took = sql_error(cluster, "SELECT stripe_sync.sync_object(%s)", (pid,),
                          ["SET stripe_sync.read_timeout = '1s'", "SET stripe_sync.max_network_retries = 0"])
    assert err.sqlstate == "08006" and str(err).startswith("stripe API unreachable"), str(err)
    assert "timeout" in str(err).lower() or "timed out" in str(err).lower(), str(err)
    assert 0.9 <= took < 1.9  # the session's 1 s, not the cluster's 2 s
    assert len(proxy.log) == 1


def test_a_backfill_follows_the_sessions_retry_settings(cluster, proxy):
    """The job worker that runs a backfill should use the calling session's
    stripe_sync settings (SET max_network_retries = 0 means no retry)."""
    proxy.inject("500", match="/v1/credit_notes?")
    err, _ = sql_error(cluster, "SELECT stripe_sync.backfill('credit_note')",
                       settings=["SET stripe_sync.max_network_retries = 0"])
    assert err.sqlstate == "38000" and "stripe API error 500" in str(err)
    assert len(proxy.requests("/v1/credit_notes")) == 1


def test_the_api_key_never_shows(cluster, proxy):
    key = h.TEST_API_KEY
    proxy.always("echo_key", match="/v1/checkout/sessions")
    err, _ = sql_error(cluster, "SELECT stripe_sync.backfill('checkout.session')")
    assert "stripe API error 401" in str(err) and "Invalid API Key provided: Bearer sk_test_***" in str(err)
    err, _ = sql_error(cluster, "SELECT stripe_sync.sync_object('cs_test_whatever')")
    assert err.sqlstate == "28000" and "Invalid API Key provided: Bearer sk_test_***" in str(err), str(err)
    assert all(r["fault"] == "echo_key" for r in proxy.log) and len(proxy.log) == 2
    assert ERRORS and not [e for e in ERRORS if key in e]
    runs = cluster.query("SELECT coalesce(error, '') FROM stripe_sync.sync_runs")
    assert not [r for r in runs if key in r[0]]
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE error LIKE '%sk_test_***%'") == 1
    log = cluster.log_text()
    assert "Invalid API Key provided" in log  # the errors were logged ...
    assert key not in log                     # ... without the key
