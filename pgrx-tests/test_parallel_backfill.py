"""A backfill paged by several job workers (stripe_sync.backfill_workers), each
through its own slices of created time, against standin.StandIn (which honours
created[gte] and created[lt] as Stripe does): every object is listed once, an
interrupted or failed run resumes slice by slice, and a server that ignores the
created filter gets a run by one worker, not a wrong one."""

from __future__ import annotations

import psycopg
import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.standin import StandIn, StripeError

WORKERS = 3
N_CUSTOMERS = 1_050  # eleven pages, three a second
N_INVOICES = 260  # three pages, two lines each


@pytest.fixture(scope="module")
def api():
    with StandIn() as s:
        s.add("/v1/customers", N_CUSTOMERS, lambda i, o: o.update(email=f"p{i}@example.com"), per_second=3)
        s.add("/v1/invoices", N_INVOICES, children=2)
        yield s


def sliced_cluster(api, **gucs):
    return h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base, backfill_workers=WORKERS, **gucs)


def runs(c, obj):
    return c.query("SELECT status, objects, listed, rows_held, resumed, workers, error"
                   " FROM stripe_sync.sync_runs WHERE object = %s ORDER BY id", (obj,))


def rows(c, table):
    return dict(c.query(f"SELECT id, data FROM stripe_sync.{table} WHERE NOT _deleted"))


def listed(api, path):
    return {o["id"]: o for o in api.listed(path)}


def list_requests(api, path):
    """(probes, slice pages, plain pages) the stand-in answered for a list."""
    reqs = [r["params"] for r in api.requests(path)]
    probes = [p for p in reqs if p.get("limit") == "1"]
    sliced = [p for p in reqs if "created[lt]" in p and p.get("limit") != "1"]
    return probes, sliced, [p for p in reqs if "created[lt]" not in p]


def test_every_object_is_listed_once_across_the_slices_and_the_next_run_is_incremental(api):
    with sliced_cluster(api, api_rate_limit=1000) as c:
        api.forget_requests()
        with c.connect() as conn:
            assert conn.execute("SELECT current_setting('stripe_sync.backfill_workers')").fetchone()[0] == "3"
            n = conn.execute("SELECT stripe_sync.backfill('customer')").fetchone()[0]
        assert n == N_CUSTOMERS
        want = listed(api, "/v1/customers")
        assert rows(c, "customers") == want
        # Each object once: the newest slice goes on after the first page, the slices do not overlap.
        assert runs(c, "customer") == [("completed", N_CUSTOMERS, N_CUSTOMERS, N_CUSTOMERS, False, WORKERS, None)]
        probes, sliced, plain = list_requests(api, "/v1/customers")
        assert len(plain) == 1, plain  # the first page; the rest by slices
        assert 1 <= len(probes) <= 32, len(probes)
        bounds = {(p["created[gte]"], p["created[lt]"]) for p in sliced}
        assert len(bounds) > WORKERS, bounds  # more slices than workers
        newest_slice = [p for p in sliced if int(p["created[lt]"]) == max(int(b[1]) for b in bounds)]
        assert newest_slice and all(p.get("starting_after") for p in newest_slice)  # goes on after page 1
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_slices") == 0
        newest = max(o["created"] for o in want.values())
        assert c.query("SELECT in_progress, high_water FROM stripe_sync.sync_cursors WHERE object = 'customer'") \
            == [(False, newest)]

        # Invoices: their line items (children) come with them from every slice.
        assert c.scalar("SELECT stripe_sync.backfill('invoice')") == N_INVOICES
        assert rows(c, "invoices").keys() == listed(api, "/v1/invoices").keys()
        assert c.scalar("SELECT count(*) FROM stripe_sync.invoice_line_items") == 2 * N_INVOICES
        assert runs(c, "invoice")[-1][:2] == ("completed", N_INVOICES)

        # The next run lists only what is newer than the last one's newest, by slices again.
        api.add("/v1/customers", 250, lambda i, o: o.update(email=f"q{i}@example.com"), per_second=3)
        api.forget_requests()
        n = c.scalar("SELECT stripe_sync.backfill('customer')")
        assert 250 <= n <= 253, n  # the new ones, and those of the high-water second again
        assert rows(c, "customers") == listed(api, "/v1/customers")
        probes, sliced, plain = list_requests(api, "/v1/customers")
        assert probes == [], probes  # the created filter is the lower bound: nothing to probe
        assert all(int(p["created[gte]"]) >= newest for p in sliced + plain)
        assert runs(c, "customer")[-1][5] == WORKERS


def test_a_cancelled_sliced_run_resumes_slice_by_slice(api):
    # Five requests a second: the cancel comes while the slices are being paged.
    with sliced_cluster(api, api_rate_limit=5) as c:
        call = h.BackgroundCall(c, "SELECT stripe_sync.backfill('customer')")
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM stripe_sync.sync_slices WHERE done") >= 1,
                     timeout=90, what="a slice paged to its end")
        c.query("SELECT pg_cancel_backend(%s)", (call.pid,))
        assert call.join() == "57014"  # query_canceled
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM pg_stat_activity"
                                      " WHERE backend_type = 'stripe_sync job'") == 0,
                     timeout=30, what="the leader and its helpers to stop")
        slices = c.query("SELECT done, starting_after IS NOT NULL FROM stripe_sync.sync_slices")
        assert any(done for done, _ in slices) and not all(done for done, _ in slices), slices
        partial = c.scalar("SELECT count(*) FROM stripe_sync.customers")
        assert 0 < partial < len(listed(api, "/v1/customers"))

        c.query("ALTER SYSTEM SET stripe_sync.api_rate_limit = 1000")
        c.reload()
        done_bounds = {str(g) for (g,) in c.query("SELECT created_gte FROM stripe_sync.sync_slices WHERE done")}
        api.forget_requests()
        c.scalar("SELECT stripe_sync.backfill('customer')")
        assert rows(c, "customers") == listed(api, "/v1/customers")
        assert runs(c, "customer")[-1][0] == "completed" and runs(c, "customer")[-1][4] is True
        probes, sliced, plain = list_requests(api, "/v1/customers")
        assert probes == [] and plain == [], (probes, plain)  # no new plan: the stored slices go on
        assert not {p["created[gte]"] for p in sliced} & done_bounds  # finished slices are not listed again
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_slices") == 0


def test_a_failing_worker_fails_the_run_clearly_and_the_next_call_resumes(api):
    with sliced_cluster(api, api_rate_limit=1000, max_network_retries=0) as c:
        # The oldest slice's requests are refused (a 400 is never retried), whoever pages it.
        oldest = min(o["created"] for o in api.listed("/v1/customers"))
        handle = api.handle

        def faulty(method, path, params):
            if path == "/v1/customers" and params.get("created[gte]") == str(oldest) and params.get("limit") != "1":
                raise StripeError(400, "Injected fault for the oldest slice", "parameter_invalid", "created")
            return handle(method, path, params)

        api.handle = faulty
        try:
            with pytest.raises(psycopg.Error) as failed:
                c.scalar("SELECT stripe_sync.backfill('customer')")
        finally:
            del api.handle
        assert failed.value.sqlstate == "22023", failed.value.sqlstate
        assert "Injected fault for the oldest slice" in str(failed.value)
        status, _, _, _, _, workers, error = runs(c, "customer")[-1]
        assert (status, workers) == ("failed", WORKERS) and "Injected fault" in error
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM pg_stat_activity"
                                      " WHERE backend_type = 'stripe_sync job'") == 0,
                     timeout=30, what="every worker of the failed run to stop")
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_slices WHERE NOT done") >= 1

        assert c.scalar("SELECT stripe_sync.backfill('customer')") > 0
        assert rows(c, "customers") == listed(api, "/v1/customers")
        assert runs(c, "customer")[-1][0] == "completed" and runs(c, "customer")[-1][4] is True


def test_a_server_that_ignores_the_created_filter_gets_one_worker(api):
    with sliced_cluster(api, api_rate_limit=1000) as c:
        handle = api.handle

        def ignoring(method, path, params):
            return handle(method, path, {k: v for k, v in params.items() if k != "created[lt]"})

        api.handle = ignoring
        try:
            n = c.scalar("SELECT stripe_sync.backfill('customer')")
        finally:
            del api.handle
        want = listed(api, "/v1/customers")
        assert n == len(want)
        assert rows(c, "customers") == want
        status, objects, listed_n, _, _, workers, _ = runs(c, "customer")[-1]
        assert (status, objects, listed_n, workers) == ("completed", len(want), len(want), 1)
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_slices") == 0


def test_a_crash_keeps_what_a_call_returned_and_a_crashed_run_resumes(api):
    # Pages commit without waiting for the WAL flush (synchronous_commit off for
    # their transactions only); the run's last commit waits, and its flush covers them.
    with sliced_cluster(api, api_rate_limit=1000) as c:
        assert c.scalar("SELECT stripe_sync.backfill('invoice')") == N_INVOICES
        c.stop("immediate")  # no shutdown checkpoint, no WAL flush: a crash
        c.start()
        assert rows(c, "invoices").keys() == listed(api, "/v1/invoices").keys()
        assert c.scalar("SELECT count(*) FROM stripe_sync.invoice_line_items") == 2 * N_INVOICES
        assert runs(c, "invoice")[-1][:2] == ("completed", N_INVOICES)
        assert c.query("SELECT in_progress FROM stripe_sync.sync_cursors WHERE object = 'invoice'") == [(False,)]

        # A crash in the middle of a run loses at most its newest page transactions,
        # each with the cursor past it: the next call lists them again, and every
        # object ends up in the table once, as the API has it.
        c.query("ALTER SYSTEM SET stripe_sync.api_rate_limit = 5")
        c.reload()
        call = h.BackgroundCall(c, "SELECT stripe_sync.backfill('customer')")
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM stripe_sync.sync_slices WHERE done") >= 1,
                     timeout=90, what="a slice paged to its end")
        c.stop("immediate")
        assert call.join() != "finished"
        c.start()
        partial = c.scalar("SELECT count(*) FROM stripe_sync.customers")
        assert 0 < partial < N_CUSTOMERS, partial
        c.query("ALTER SYSTEM SET stripe_sync.api_rate_limit = 1000")
        c.reload()
        api.forget_requests()
        c.scalar("SELECT stripe_sync.backfill('customer')")
        assert rows(c, "customers") == listed(api, "/v1/customers")
        last = runs(c, "customer")[-1]
        assert last[0] == "completed" and last[4] is True, last  # resumed from the cursors
        # The reconciliation at its end knew the rows committed before the crash
        # as listed (written after the run's start): none was retrieved one by one,
        # and the objects listed count both calls' pages.
        retrieved = [r["path"] for r in api.requests() if r["path"].startswith("/v1/customers/")]
        assert retrieved == [], f"{len(retrieved)} retrieves, {partial} rows committed before the crash"
        n = len(listed(api, "/v1/customers"))
        assert last[2:4] == (n, n), last  # listed, rows_held
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_slices") == 0


def test_one_worker_keeps_requests_in_flight_without_a_probe_and_reports_progress(api):
    """The default (one job worker): after the first page, slices paged with several requests in
    flight (backfill/paced.rs), no one-object probe, a request or two beyond the pages; while it
    runs, sync_runs.objects_left holds an estimate and the caller gets NOTICEs of the pace and the
    time left. The budget (1 request/s here) makes the run last long enough to see them."""
    import re
    import threading
    import time
    with h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base, api_rate_limit=1) as c:
        api.forget_requests()
        seen_left, notices, done = [], [], threading.Event()

        def watch():
            while not done.is_set():
                left = c.scalar("SELECT objects_left FROM stripe_sync.sync_runs"
                                " WHERE object = 'customer' AND status = 'running'")
                if left is not None:
                    seen_left.append(left)
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with c.connect() as conn:
                conn.add_notice_handler(lambda d: notices.append(d.message_primary))
                n = conn.execute("SELECT stripe_sync.backfill('customer')").fetchone()[0]
        finally:
            done.set()
            watcher.join()
        everything = listed(api, "/v1/customers")  # the module's earlier tests added some
        assert n == len(everything) >= N_CUSTOMERS
        assert rows(c, "customers") == everything
        probes, sliced, plain = list_requests(api, "/v1/customers")
        assert probes == [] and len(plain) == 1
        pages = -(-n // 100)
        assert pages <= len(sliced) + len(plain) <= pages + 4, (len(sliced), len(plain))
        progress = [m for m in notices if re.fullmatch(
            r"stripe_sync: customer: \d+ objects in \d+ s \(\d+/s\); about \d+ left, \d+ s at this pace", m)]
        assert progress, notices
        assert seen_left and max(seen_left) > 0
        assert c.scalar("SELECT objects_left FROM stripe_sync.sync_runs WHERE object = 'customer'") == 0
