"""Thin events (Stripe event destinations, 0.9.0) against standin.StandIn: a signed v2.core.event
is stored (thin, its related object as object_type/object_id, created to the second) and the
worker re-reads the object it names from the API; an event about a type that is not mirrored is
skipped; a bad signature or a created that is not RFC 3339 stores nothing; catch_up() lists
GET /v2/core/events and follows next_page_url, and a server without v2 (404) is passed over.
The tests of the module run in order on one cluster.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import psycopg
import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.fixtures import standin_fixtures
from stripe_sync_testkit.standin import StripeError
from stripe_sync_testkit.standin_extras import parse_rfc3339

V2 = "/v2/core/events"


api, cluster = standin_fixtures()


settled = h.settled


def becomes(cluster, sql: str, params, want, timeout: float = 60) -> None:
    """Polls ``sql`` until its rows are ``want`` (the worker re-reads after the event is settled)."""
    seen = []
    try:
        h.wait_until(lambda: seen.append(cluster.query(sql, params)) or seen[-1] == want, timeout=timeout,
                     what=sql)
    except TimeoutError:
        raise AssertionError(f"{sql} {params}: want {want!r}, got {seen[-1] if seen else None!r}") from None


def ingest(cluster, event: dict, secret: str | None = None) -> str:
    with cluster.connect() as conn:
        return h.ingest(conn, json.dumps(event, indent=2), secret or cluster.webhook_secret)


def event_row(cluster, event_id: str):
    rows = cluster.query("SELECT type, created, object_type, object_id, account, thin, data FROM stripe_sync.events"
                         " WHERE id = %s", (event_id,))
    return rows[0] if rows else None


def to_second(event: dict) -> datetime:
    return datetime.fromtimestamp(int(parse_rfc3339(event["created"])), timezone.utc)


def expected_row(event: dict, account=None) -> tuple:
    related = event.get("related_object") or {}
    return (event["type"], to_second(event), related.get("type"), related.get("id"), account, True, event)


def catch_up(cluster) -> int:
    with cluster.connect() as conn:
        return conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0]


def _vary_meter(i, o):
    o.update(display_name=f"Meter {i}", event_name=f"thin_{i}", status="active", updated=o["created"])


def test_a_thin_event_re_reads_its_object(cluster, api):
    cus = api.add("/v1/customers", 1, lambda i, o: o.update(email="thin@example.com"))[0]
    meter = api.add("/v1/billing/meters", 1, _vary_meter)[0]
    about_customer = api.thin_event("v1.customer.updated", cus, listed=False)
    about_meter = api.thin_event("v1.billing.meter.error_report_triggered", meter, created=time.time() - 1.5,
                                 listed=False)
    assert about_meter["related_object"]["url"] == f"/v1/billing/meters/{meter['id']}"
    api.forget_requests()
    for event in (about_customer, about_meter):
        assert ingest(cluster, event) == "queued"
    assert ingest(cluster, about_meter) == "duplicate"
    for event in (about_customer, about_meter):
        assert settled(cluster, event["id"]) == "processed"
        assert event_row(cluster, event["id"]) == expected_row(event)
    becomes(cluster, "SELECT data, email, _deleted FROM stripe_sync.customers WHERE id = %s", (cus["id"],),
            [(cus, "thin@example.com", False)])
    becomes(cluster, "SELECT data, display_name FROM stripe_sync.billing_meters WHERE id = %s", (meter["id"],),
            [(meter, meter["display_name"])])
    assert api.count(f"/v1/customers/{cus['id']}") == 1 and api.count(f"/v1/billing/meters/{meter['id']}") == 1

    # Changed at Stripe, a later thin event: the row follows the API.
    fresh = api.update(cus["id"], email="changed@example.com", name="Changed")
    later = api.thin_event("v1.customer.updated", cus, listed=False)
    assert ingest(cluster, later) == "queued"
    assert settled(cluster, later["id"]) == "processed"
    becomes(cluster, "SELECT data, email, name FROM stripe_sync.customers WHERE id = %s", (cus["id"],),
            [(fresh, "changed@example.com", "Changed")])
    assert api.count(f"/v1/customers/{cus['id']}") == 2


def test_a_thin_event_of_a_connected_account_is_read_under_its_context(cluster, api):
    acct = "acct_1ThinContext"
    theirs = api.add("/v1/customers", 1, account=acct)[0]
    event = api.thin_event("v1.customer.updated", theirs, context=acct, listed=False)
    api.forget_requests()
    assert ingest(cluster, event) == "queued"
    assert settled(cluster, event["id"]) == "processed"
    assert event_row(cluster, event["id"]) == expected_row(event, account=acct)
    becomes(cluster, "SELECT _account_id, data FROM stripe_sync.customers WHERE id = %s", (theirs["id"],),
            [(acct, theirs)])
    assert [r["account"] for r in api.requests(f"/v1/customers/{theirs['id']}")] == [acct]


def test_a_thin_event_of_an_unmirrored_type_is_skipped(cluster, api):
    plan = {"id": "bpp_test_" + h.new_id("", 20), "type": "v2.billing.pricing_plan",
            "url": "/v2/billing/pricing_plans/bpp_test_x"}
    about_plan = api.thin_event("v2.billing.pricing_plan.updated", plan, listed=False)
    about_nothing = api.thin_event("v2.core.event_destination.ping", None, listed=False)
    assert "related_object" not in about_nothing
    api.forget_requests()
    for event in (about_plan, about_nothing):
        assert ingest(cluster, event) == "queued"
        assert settled(cluster, event["id"]) == "skipped"
        assert event_row(cluster, event["id"]) == expected_row(event)
    assert api.requests() == []


@pytest.mark.parametrize("case, sqlstate", [
    ("bad signature", "28000"),
    ("created without zone", "22023"),
    ("created as a date", "22023"),
    ("created as a number string", "22023"),
    ("no created", "22023"),
    ("no id", "22023"),
    ("no type", "22023"),
])
def test_a_bad_thin_event_is_refused_and_nothing_stored(cluster, api, case, sqlstate):
    cus = api.add("/v1/customers", 1)[0]
    event = api.thin_event("v1.customer.updated", cus, created=1796119200.123, listed=False)
    secret = None
    if case == "bad signature":
        secret = h.new_webhook_secret()
    elif case.startswith("created"):
        event["created"] = {"created without zone": "2026-12-01T10:00:00.123", "created as a date": "2026-12-01",
                            "created as a number string": "1796119200"}[case]
    else:
        del event[case.removeprefix("no ")]
    before = cluster.scalar("SELECT count(*) FROM stripe_sync.events")
    with pytest.raises(psycopg.Error) as err:
        ingest(cluster, event, secret)
    assert err.value.sqlstate == sqlstate, (case, err.value)
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.events") == before
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.customers WHERE id = %s", (cus["id"],)) == 0


def test_a_thin_event_with_a_millisecond_time_stores_its_second(cluster, api):
    meter = api.add("/v1/billing/meters", 1, _vary_meter)[0]
    event = api.thin_event("v1.billing.meter.error_report_triggered", meter, created=1796119200.999, listed=False)
    assert event["created"] == "2026-12-01T10:00:00.999Z"
    assert ingest(cluster, event) == "queued"
    assert settled(cluster, event["id"]) == "processed"
    assert cluster.scalar("SELECT created FROM stripe_sync.events WHERE id = %s", (event["id"],)) == \
        datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)


def test_catch_up_finds_a_thin_event_only_the_v2_list_has(cluster, api):
    cus = api.add("/v1/customers", 1, lambda i, o: o.update(email="missed@example.com"))[0]
    missed = api.thin_event("v1.customer.updated", cus, created=time.time() - 30)
    api.forget_requests()
    queued = catch_up(cluster)
    asked = [r["params"] for r in api.requests(V2)]
    assert len(asked) == 1 and asked[0]["limit"] == "20" and set(asked[0]) == {"limit", "created[gte]"}, asked
    since = asked[0]["created[gte]"]
    assert since.endswith("Z") and parse_rfc3339(since) is not None, since
    assert parse_rfc3339(since) <= parse_rfc3339(missed["created"])
    assert queued == 1
    assert settled(cluster, missed["id"]) == "processed"
    assert event_row(cluster, missed["id"]) == expected_row(missed)
    becomes(cluster, "SELECT data FROM stripe_sync.customers WHERE id = %s", (cus["id"],), [(cus,)])
    assert cluster.query("SELECT status FROM stripe_sync.sync_runs WHERE kind = 'catch_up' ORDER BY id DESC"
                         " LIMIT 1") == [("completed",)]

    # Listed again by the next catch-up (the overlap): stored once, nothing new.
    api.forget_requests()
    assert catch_up(cluster) == 0
    assert len(api.requests(V2)) == 1
    assert parse_rfc3339(api.requests(V2)[0]["params"]["created[gte]"]) >= parse_rfc3339(since)
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.events WHERE id = %s", (missed["id"],)) == 1


def test_catch_up_lists_the_thin_events_of_connected_accounts_too(cluster, api):
    """The platform's list has every account's thin events, each naming its account in context:
    stored under it, its object read under it."""
    acct = "acct_1ThinListed"
    theirs = api.add("/v1/customers", 1, account=acct)[0]
    event = api.thin_event("v1.customer.updated", theirs, created=time.time() - 5, context=acct)
    api.forget_requests()
    assert catch_up(cluster) == 1
    assert [r["account"] for r in api.requests(V2)] == [None]
    assert settled(cluster, event["id"]) == "processed"
    assert event_row(cluster, event["id"]) == expected_row(event, account=acct)
    becomes(cluster, "SELECT _account_id, data FROM stripe_sync.customers WHERE id = %s", (theirs["id"],),
            [(acct, theirs)])


def test_catch_up_follows_next_page_url(cluster, api):
    meters = api.add("/v1/billing/meters", 25, _vary_meter)
    now = time.time()
    events = [api.thin_event("v1.billing.meter.error_report_triggered", m, created=now - 20 + k * 0.25)
              for k, m in enumerate(meters)]
    listed = api.v2_listed()
    assert len(listed) > 20  # two pages of twenty at least
    api.forget_requests()
    assert catch_up(cluster) == 25
    asked = [r["params"] for r in api.requests(V2)]
    assert len(asked) == 2 and set(asked[0]) == {"limit", "created[gte]"}, asked
    assert set(asked[1]) == {"page"} or set(asked[1]) == {"page", "limit"}, asked
    assert asked[1]["page"] in api.v2_pages  # a token the first page's next_page_url gave
    for event in events:
        assert settled(cluster, event["id"]) == "processed"
    got = {r[0]: r[1:] for r in cluster.query(
        "SELECT id, type, object_type, object_id, thin, data FROM stripe_sync.events WHERE id = ANY(%s)",
        ([e["id"] for e in events],))}
    assert got == {e["id"]: (e["type"], "billing.meter", e["related_object"]["id"], True, e) for e in events}
    becomes(cluster, "SELECT id, data FROM stripe_sync.billing_meters WHERE id = ANY(%s) ORDER BY id",
            ([m["id"] for m in meters],), sorted((m["id"], m) for m in meters))


def test_catch_up_passes_over_a_server_without_v2(cluster, api):
    handle = api.handle

    def no_v2(method, path, params, **kw):
        if path.startswith("/v2/"):
            raise StripeError(404, f"Unrecognized request URL ({method}: {path}).")
        return handle(method, path, params, **kw)

    cus = api.add("/v1/customers", 1)[0]
    v1_event = api.add_event("customer.updated", cus, created=int(time.time()) - 10)
    api.handle = no_v2
    try:
        api.forget_requests()
        with cluster.connect() as conn:
            notices = []
            conn.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
            assert conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0] == 1
    finally:
        api.handle = handle
    assert [m for sev, m in notices if sev == "WARNING"] == []
    assert [r["label"] for r in api.requests(V2)] == ["GET /v2/core/events (404)"]
    assert cluster.query("SELECT status FROM stripe_sync.sync_runs WHERE kind = 'catch_up' ORDER BY id DESC"
                         " LIMIT 1") == [("completed",)]
    assert settled(cluster, v1_event["id"]) == "processed"
    assert cluster.scalar("SELECT thin FROM stripe_sync.events WHERE id = %s", (v1_event["id"],)) is False


def test_a_delivered_thin_event_listed_later_is_a_duplicate(cluster, api):
    cus = api.add("/v1/customers", 1)[0]
    event = api.thin_event("v1.customer.updated", cus)
    assert ingest(cluster, event) == "queued"
    assert settled(cluster, event["id"]) == "processed"
    api.forget_requests()
    assert catch_up(cluster) == 0
    assert event["id"] in {e["id"] for e in api.v2_listed(since=parse_rfc3339(
        api.requests(V2)[0]["params"]["created[gte]"]))}  # listed, and found stored
    assert cluster.query("SELECT data, status FROM stripe_sync.events WHERE id = %s", (event["id"],)) == \
        [(event, "processed")]
