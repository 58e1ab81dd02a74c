"""The whole path: Stripe (localstripe) -> examples/webhook_relay.py -> stripe_sync."""

from __future__ import annotations

import secrets
import time

import pytest

from stripe_sync_testkit import harness as h


@pytest.fixture(scope="module")
def stripe_api(localstripe, relay, cluster):
    """The official stripe module pointed at localstripe, which delivers to the relay."""
    localstripe.register_webhook("stripe_sync_tests", relay.url, cluster.webhook_secret)
    return h.configure_stripe_module(localstripe.base)


def synced(cluster, ids):
    return {
        row[0]: row[1:]
        for row in cluster.query(
            "SELECT id, email, name, _deleted FROM stripe_sync.customers WHERE id = ANY(%s)",
            (list(ids),),
        )
    }


@pytest.mark.localstripe
def test_customers_follow_stripe(cluster, relay, localstripe, stripe_api):
    tag = secrets.token_hex(4)
    made = [
        stripe_api.Customer.create(email=f"{who}-{tag}@example.com", name=who.title())
        for who in ("alice", "bob", "carol")
    ]
    ids = [c.id for c in made]

    h.wait_until(lambda: len(synced(cluster, ids)) == 3, timeout=30,
                 what="3 created customers in stripe_sync.customers")

    stripe_api.Customer.modify(ids[0], email=f"alice.new-{tag}@example.com")
    stripe_api.Customer.delete(ids[1])

    def caught_up():
        rows = synced(cluster, ids)
        return (rows[ids[0]][0] == f"alice.new-{tag}@example.com"
                and rows[ids[1]][2] is True)
    h.wait_until(caught_up, timeout=30, what="the update and the delete to be applied")

    rows = synced(cluster, ids)
    live = {c.id: (c.email, c.name) for c in stripe_api.Customer.list(limit=100)
            if c.id in ids}
    assert set(live) == {ids[0], ids[2]}
    for cid, (email, name) in live.items():
        assert rows[cid] == (email, name, False)
    assert rows[ids[0]][0] == f"alice.new-{tag}@example.com"
    assert rows[ids[1]] == (f"bob-{tag}@example.com", "Bob", True)

    events = cluster.query(
        "SELECT id, type, status FROM stripe_sync.events"
        f" WHERE {h.EVENT_OBJECT_ID} = ANY(%s) ORDER BY type",
        (ids,),
    )
    assert sorted(t for _, t, _ in events) == (
        ["customer.created"] * 3 + ["customer.deleted", "customer.updated"]
    )
    assert {s for _, _, s in events} == {"processed"}, events

    # Stripe redelivers the same event (same id) when it saw no 2xx: it must
    # be recognised and not queued again.
    update_id = next(i for i, t, _ in events if t == "customer.updated")
    body = localstripe.event_json(update_id)
    status, text = relay.post(body, h.sign(body, cluster.webhook_secret, int(time.time())))
    assert (status, text.strip()) == (200, "duplicate")
    assert cluster.scalar(
        f"SELECT count(*) FROM stripe_sync.events WHERE {h.EVENT_OBJECT_ID} = ANY(%s)", (ids,)
    ) == 5


def _stored(cluster, event_id):
    return cluster.scalar("SELECT count(*) FROM stripe_sync.events WHERE id = %s", (event_id,))


def test_relay_rejects_forged_signature(cluster, relay):
    cust = h.customer_object(email="mallory@example.com", name="Mallory")
    payload = h.customer_event("customer.created", customer=cust)
    forged = h.sign(payload, h.new_webhook_secret(), int(time.time()))

    status, text = relay.post(payload, forged)

    assert status == 400, text
    assert _stored(cluster, h.event_id_of(payload)) == 0
    assert cluster.scalar(
        "SELECT count(*) FROM stripe_sync.customers WHERE id = %s", (cust["id"],)
    ) == 0


@pytest.mark.parametrize("case", ["missing header", "garbled header", "tampered body",
                                  "stale timestamp", "not json", "not an event"])
def test_relay_rejects_bad_deliveries_with_400(cluster, relay, case):
    secret = cluster.webhook_secret
    now = int(time.time())
    payload = h.customer_event("customer.created", email="eve@example.com", name="Eve")
    event_id = h.event_id_of(payload)
    signature = h.sign(payload, secret, now)
    if case == "missing header":
        signature = None
    elif case == "garbled header":
        signature = "t=abc,v1"
    elif case == "tampered body":
        payload = payload.replace("eve@example.com", "eve@evil.example")
    elif case == "stale timestamp":
        signature = h.sign(payload, secret, now - 3600)
    elif case == "not json":
        payload = "id=" + event_id
        signature = h.sign(payload, secret, now)
    elif case == "not an event":
        payload = '{"id": "%s", "object": "customer"}' % event_id
        signature = h.sign(payload, secret, now)

    status, text = relay.post(payload, signature)

    assert status == 400, (status, text)
    assert text.strip(), "a 400 should say why"
    assert _stored(cluster, event_id) == 0


def test_relay_accepts_a_good_delivery_once(cluster, relay):
    payload = h.customer_event("customer.created", email="ok@example.com", name="Ok")
    signature = h.sign(payload, cluster.webhook_secret, int(time.time()))
    assert relay.post(payload, signature) == (200, "queued\n")
    assert relay.post(payload, signature) == (200, "duplicate\n")
    assert _stored(cluster, h.event_id_of(payload)) == 1
