"""Start-up without the extension, missing secret, and fast shutdown."""

from __future__ import annotations

import os
import re

import psycopg
import pytest

from stripe_sync_testkit import harness as h

PROBLEM = re.compile(r"\b(ERROR|FATAL|PANIC):")


def test_worker_waits_quietly_until_extension_is_created(secret):
    with h.stripe_sync_cluster(secret, create_extension=False) as c:
        pid = h.wait_until(c.worker_pid, timeout=30,
                           what="the worker to start (without the extension)")
        since = c.log_size()

        def quiet():
            problems = [l for l in c.log_text(since).splitlines() if PROBLEM.search(l)]
            assert not problems, "\n".join(problems)
            return c.worker_pid() == pid  # same process: it neither exited nor crashed

        holds_for_s = 12 * h.POLL_MS / 1000
        h.holds_for(quiet, holds_for_s, interval=0.2, what="the worker staying up and quiet")
        worker_lines = [l for l in c.log_text(since).splitlines() if h.WORKER_TYPE in l]
        assert len(worker_lines) <= 2, "the worker logs on every poll:\n" + "\n".join(worker_lines)

        c.query("CREATE EXTENSION stripe_sync")
        cust = h.customer_object(email="late@example.com", name="Late Bloomer")
        payload = h.customer_event("customer.created", customer=cust)
        with c.connect() as conn:
            assert h.ingest(conn, payload, secret) == "queued"
        h.wait_until(
            lambda: c.query("SELECT email, name FROM stripe_sync.customers WHERE id = %s",
                            (cust["id"],)) == [("late@example.com", "Late Bloomer")],
            timeout=30, what="the worker to apply the first event after CREATE EXTENSION",
        )


def test_ingest_without_secret_is_refused_and_stores_nothing():
    with h.stripe_sync_cluster(None) as c:
        payload = h.customer_event("customer.created", email="x@example.com", name="X")
        with c.connect() as conn:
            with pytest.raises(psycopg.Error) as err:
                h.ingest(conn, payload, h.new_webhook_secret())
        assert err.value.sqlstate == "55000", err.value
        assert c.scalar("SELECT count(*) FROM stripe_sync.events") == 0


def test_without_api_key_backfill_and_catch_up_fail_at_once_and_record_nothing(secret):
    # A missing key is refused before a run is recorded or a job worker starts, with 55000 for
    # one type, for 'all' (which used to turn every failure into 38000) and for catch_up.
    with h.stripe_sync_cluster(secret) as c:
        for call in ("backfill('customer')", "backfill('all')", "catch_up()"):
            with c.connect() as conn:
                with pytest.raises(psycopg.Error) as err:
                    conn.execute(f"SELECT stripe_sync.{call}")
            assert err.value.sqlstate == "55000", (call, err.value)
            assert "no Stripe API key is configured" in str(err.value), (call, err.value)
        for table in ("customers", "sync_runs", "sync_cursors", "sync_slices", "events"):
            assert c.scalar(f"SELECT count(*) FROM stripe_sync.{table}") == 0, table


@pytest.mark.parametrize("with_extension", [True, False], ids=["extension", "no-extension"])
def test_fast_shutdown_is_prompt_with_worker_running(secret, with_extension):
    with h.stripe_sync_cluster(secret, create_extension=with_extension) as c:
        pid = h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
        if with_extension:  # give it something to do right before the stop
            with c.connect() as conn:
                h.ingest(conn, h.customer_event(email="s@example.com", name="S"), secret)

        took = c.stop("fast", timeout=30)

        assert took < 5, f"pg_ctl stop -m fast took {took:.1f}s"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert "database system is shut down" in c.log_text()
