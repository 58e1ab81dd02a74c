"""kill -9 of the worker while events are pending: nothing lost, nothing applied twice."""

from __future__ import annotations

import os
import signal
import time

from stripe_sync_testkit import harness as h

CUSTOMERS = 10
VERSIONS = 3  # customer.created, then two customer.updated, one second apart


def test_worker_killed_with_pending_events_comes_back_and_applies_each_once(secret):
    with h.stripe_sync_cluster(secret) as c:
        old_pid = h.wait_until(c.worker_pid, timeout=30, what="the worker to start")

        t = int(time.time()) - 30
        expected = {}  # customer id -> final email
        payloads = []
        for i in range(CUSTOMERS):
            cid = h.new_id("cus_")
            for v in range(VERSIONS):
                email = f"c{i}-v{v}@example.com"
                cust = h.customer_object(customer_id=cid, email=email, name=f"C{i}",
                                         created=t - 100)
                kind = "customer.created" if v == 0 else "customer.updated"
                payloads.append(h.customer_event(kind, customer=cust, created=t + v))
                expected[cid] = email

        # Hold the customers table so the worker gets stuck in the middle of
        # applying (its transaction open, events still pending) when we kill it.
        blocker = c.connect(autocommit=False)
        try:
            blocker.execute("LOCK TABLE stripe_sync.customers IN ACCESS EXCLUSIVE MODE")
            with c.connect(autocommit=False) as conn:
                conn.execute("SET lock_timeout = '10s'")
                results = [h.ingest(conn, p, secret) for p in payloads]
                conn.commit()
                # a second delivery of a few of them changes nothing
                redelivered = [h.ingest(conn, p, secret) for p in payloads[:5]]
                conn.commit()
            assert results == ["queued"] * len(payloads)
            assert redelivered == ["duplicate"] * 5

            h.wait_until(
                lambda: c.scalar("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                 (old_pid,)) == "Lock",
                timeout=20, what="the worker to block on the locked customers table",
            )
            pending = c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'pending'")
            assert pending > 0

            os.kill(old_pid, signal.SIGKILL)
            new_pid = h.wait_until(
                lambda: (pid := c.worker_pid()) not in (None, old_pid) and pid,
                timeout=60, what="the postmaster to start a new worker",
            )
            assert new_pid != old_pid
        finally:
            try:
                blocker.close()  # its backend died in the crash restart
            except Exception:  # noqa: BLE001
                pass

        def all_processed():
            n = c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'processed'")
            return n == len(payloads)
        h.wait_until(all_processed, timeout=60, what="every event to be processed after the restart")

        counts = dict(c.query("SELECT status, count(*) FROM stripe_sync.events GROUP BY status"))
        assert counts == {"processed": len(payloads)}
        assert c.scalar("SELECT count(DISTINCT id) FROM stripe_sync.events") == len(payloads)

        rows = dict(c.query(
            "SELECT id, email FROM stripe_sync.customers WHERE id = ANY(%s)", (list(expected),)
        ))
        assert rows == expected
        assert "terminated by signal 9" in c.log_text()
