"""The background worker applies ingested events on its own, in order."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from stripe_sync_testkit import harness as h


def ts(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def customer_row(cluster, customer_id):
    return cluster.query(
        "SELECT email, name, created, _deleted, _last_event_id, _last_event_at"
        "  FROM stripe_sync.customers WHERE id = %s",
        (customer_id,),
    )


def event_status(cluster, event_id):
    return cluster.scalar("SELECT status FROM stripe_sync.events WHERE id = %s", (event_id,))


def test_worker_is_visible(cluster):
    rows = h.wait_until(
        lambda: cluster.query(
            "SELECT pid, datname FROM pg_stat_activity WHERE backend_type = %s",
            (h.WORKER_TYPE,),
        ),
        timeout=30,
        what="a 'stripe_sync worker' row in pg_stat_activity",
    )
    assert len(rows) == 1, rows
    pid, datname = rows[0]
    with open(f"/proc/{pid}/stat") as f:
        parent = int(f.read().rpartition(")")[2].split()[1])
    assert parent == int((cluster.data / "postmaster.pid").read_text().split()[0]), "not this cluster's worker"
    assert datname == "postgres"  # stripe_sync.database


def test_worker_applies_committed_customer_created(cluster, db):
    now = int(time.time())
    customer = h.customer_object(
        email="ada@example.com", name="Ada Lovelace", created=now - 5,
        metadata={"plan": "gold"},
    )
    payload = h.customer_event("customer.created", customer=customer, created=now)
    event_id = h.event_id_of(payload)

    assert h.ingest(db, payload, cluster.webhook_secret) == "queued"

    # Nobody calls process_pending: only the worker can apply it.
    h.wait_until(lambda: event_status(cluster, event_id) == "processed",
                 timeout=30, what=f"the worker to process {event_id}")
    rows = customer_row(cluster, customer["id"])
    assert len(rows) == 1
    email, name, created, deleted, last_event_id, last_event_at = rows[0]
    assert (email, name) == ("ada@example.com", "Ada Lovelace")
    assert created == ts(now - 5)
    assert deleted is False
    assert last_event_id == event_id
    assert last_event_at == ts(now)
    metadata, data_id = cluster.query(
        "SELECT metadata, data->>'id' FROM stripe_sync.customers WHERE id = %s",
        (customer["id"],),
    )[0]
    assert metadata == {"plan": "gold"}
    assert data_id == customer["id"]


def _updated(customer_id, email, created, name="Grace Hopper"):
    cust = h.customer_object(customer_id=customer_id, email=email, name=name,
                             created=created - 1000)
    return h.customer_event("customer.updated", customer=cust, created=created)


def _wait_done(cluster, event_ids):
    """Wait until none of the events is still pending; return their statuses."""
    def done():
        rows = cluster.query(
            "SELECT id, status FROM stripe_sync.events WHERE id = ANY(%s)", (list(event_ids),)
        )
        statuses = dict(rows)
        if len(statuses) == len(event_ids) and "pending" not in statuses.values():
            return statuses
        return None
    return h.wait_until(done, timeout=30, what=f"events {sorted(event_ids)} to be handled")


def test_older_event_applied_later_does_not_overwrite(cluster, db):
    secret = cluster.webhook_secret
    t = int(time.time()) - 60
    cid = h.new_id("cus_")
    newer = _updated(cid, "new@example.com", t + 10)
    older = _updated(cid, "old@example.com", t)

    assert h.ingest(db, newer, secret) == "queued"
    h.wait_until(lambda: event_status(cluster, h.event_id_of(newer)) == "processed",
                 timeout=30, what="the newer update to be applied")
    assert h.ingest(db, older, secret) == "queued"
    statuses = _wait_done(cluster, [h.event_id_of(newer), h.event_id_of(older)])

    assert statuses[h.event_id_of(older)] in ("processed", "skipped")
    email, _, _, deleted, last_event_id, last_event_at = customer_row(cluster, cid)[0]
    assert email == "new@example.com"
    assert last_event_id == h.event_id_of(newer)
    assert last_event_at == ts(t + 10)
    assert deleted is False


def test_older_event_in_same_batch_does_not_overwrite(cluster):
    """Both updates become visible to the worker at once, newer one first."""
    secret = cluster.webhook_secret
    t = int(time.time()) - 60
    cid = h.new_id("cus_")
    newer = _updated(cid, "new@example.com", t + 10)
    older = _updated(cid, "old@example.com", t)
    with cluster.connect(autocommit=False) as conn:
        assert h.ingest(conn, newer, secret) == "queued"
        assert h.ingest(conn, older, secret) == "queued"
        conn.commit()
    _wait_done(cluster, [h.event_id_of(newer), h.event_id_of(older)])
    email, _, _, _, last_event_id, _ = customer_row(cluster, cid)[0]
    assert email == "new@example.com"
    assert last_event_id == h.event_id_of(newer)


def test_older_update_does_not_resurrect_deleted_customer(cluster, db):
    secret = cluster.webhook_secret
    t = int(time.time()) - 60
    cid = h.new_id("cus_")
    cust = h.customer_object(customer_id=cid, email="gone@example.com", name="Gone",
                             created=t - 1000)
    created = h.customer_event("customer.created", customer=cust, created=t)
    deleted = h.customer_event("customer.deleted", customer=cust, created=t + 20)
    stale = _updated(cid, "stale@example.com", t + 15, name="Stale")

    assert h.ingest(db, created, secret) == "queued"
    h.wait_until(lambda: event_status(cluster, h.event_id_of(created)) == "processed",
                 timeout=30, what="the customer.created event to be applied")
    assert h.ingest(db, deleted, secret) == "queued"
    h.wait_until(lambda: event_status(cluster, h.event_id_of(deleted)) == "processed",
                 timeout=30, what="the customer.deleted event to be applied")
    assert h.ingest(db, stale, secret) == "queued"
    _wait_done(cluster, [h.event_id_of(stale)])

    email, name, _, is_deleted, last_event_id, _ = customer_row(cluster, cid)[0]
    assert is_deleted is True
    assert (email, name) == ("gone@example.com", "Gone")
    assert last_event_id == h.event_id_of(deleted)


def test_a_redelivery_never_waits_for_the_apply(secret):
    # The worker is stuck mid-batch (a lock on the table it writes), holding its
    # claimed events; the webhook path must still answer a redelivery at once.
    with h.stripe_sync_cluster(secret) as c:
        pid = h.wait_until(c.worker_pid, timeout=30, what="the worker")
        payload = h.customer_event("customer.created", email="stuck@example.com", name="Stuck")
        blocker = c.connect(autocommit=False)
        try:
            blocker.execute("LOCK TABLE stripe_sync.customers IN ACCESS EXCLUSIVE MODE")
            with c.connect() as conn:
                assert h.ingest(conn, payload, secret) == "queued"
            h.wait_until(lambda: c.scalar("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                                          (pid,)) == "Lock",
                         timeout=20, what="the worker to hold the event while blocked")
            with c.connect() as conn:
                conn.execute("SET lock_timeout = '1s'")  # waiting would fail the call
                started = time.monotonic()
                assert h.ingest(conn, payload, secret) == "duplicate"
                assert time.monotonic() - started < 1.0
                other = h.customer_event("customer.created", email="other@example.com", name="Other")
                assert h.ingest(conn, other, secret) == "queued"
        finally:
            blocker.close()
        h.wait_until(lambda: c.scalar("SELECT count(*) FROM stripe_sync.events WHERE status = 'processed'") == 2,
                     timeout=30, what="both events applied once the lock is gone")
