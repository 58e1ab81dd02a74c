"""Backfill, incremental and full runs, missed deletions, child lists,
sync_object and backfill('all') against standin.StandIn, a stand-in that
lists newest first and serves what localstripe lacks (prices, disputes,
credit notes, checkout sessions, early fraud warnings, subscription
schedules). The tests of this module run in order on one cluster."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone

import psycopg
import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.standin import StandIn

DAY = 86400


def _vary_price(i, o):
    o.update(unit_amount=100 + i, unit_amount_decimal=str(100 + i), currency=("usd", "eur", "gbp")[i % 3],
             product=f"prod_T{i % 7}", nickname=f"Price {i}", lookup_key=f"lk_{i}")
    if i % 4 == 3:
        o.update(type="one_time", recurring=None)
    else:
        o["recurring"]["interval"] = ("month", "year", "week")[i % 3]


def _vary_dispute(i, o):
    o.update(amount=500 + i, charge=f"ch_T{i}", status=("needs_response", "won", "lost")[i % 3])
    o["evidence_details"].update(due_by=o["created"] + 7 * DAY, has_evidence=i % 2 == 0)


def _vary_credit_note(i, o):
    o.update(total=1000 + i, invoice=f"in_T{i}", customer=f"cus_T{i % 9}", status=("issued", "void")[i % 2],
             effective_at=o["created"] + 60)


def _vary_session(i, o):
    o.update(mode=("payment", "subscription", "setup")[i % 3], status=("open", "complete", "expired")[i % 3],
             amount_total=1000 + i, expires_at=o["created"] + DAY, client_reference_id=f"ref_{i}")
    o["customer_details"]["email"] = f"buyer{i}@example.com"


def _vary_efw(i, o):
    o.update(charge=f"ch_F{i}", fraud_type=("misc", "card_never_received", "made_with_stolen_card")[i % 3],
             actionable=i % 2 == 0)


def _vary_schedule(i, o):
    o.update(customer=f"cus_S{i}", status=("not_started", "active", "canceled")[i % 3])
    o["current_phase"] = {"start_date": o["created"] + i, "end_date": o["created"] + 30 * DAY}


def _epoch(key):
    return lambda o: o[key]


# object -> (path, table, how many, vary, spot checks: SQL expression -> value from the object)
KINDS = {
    "price": ("/v1/prices", "prices", 250, _vary_price, {
        "unit_amount": _epoch("unit_amount"), "currency": _epoch("currency"), "product": _epoch("product"),
        "nickname": _epoch("nickname"), "type": _epoch("type"),
        "recurring_interval": lambda o: (o["recurring"] or {}).get("interval"),
        "extract(epoch FROM created)::bigint": _epoch("created")}),
    "dispute": ("/v1/disputes", "disputes", 120, _vary_dispute, {
        "amount": _epoch("amount"), "charge": _epoch("charge"), "status": _epoch("status"),
        "has_evidence": lambda o: o["evidence_details"]["has_evidence"],
        "extract(epoch FROM evidence_due_by)::bigint": lambda o: o["evidence_details"]["due_by"]}),
    "credit_note": ("/v1/credit_notes", "credit_notes", 130, _vary_credit_note, {
        "total": _epoch("total"), "invoice": _epoch("invoice"), "customer": _epoch("customer"),
        "status": _epoch("status"), "extract(epoch FROM effective_at)::bigint": _epoch("effective_at")}),
    "checkout.session": ("/v1/checkout/sessions", "checkout_sessions", 105, _vary_session, {
        "mode": _epoch("mode"), "status": _epoch("status"), "amount_total": _epoch("amount_total"),
        "client_reference_id": _epoch("client_reference_id"),
        "customer_details_email": lambda o: o["customer_details"]["email"],
        "extract(epoch FROM expires_at)::bigint": _epoch("expires_at")}),
    "radar.early_fraud_warning": ("/v1/radar/early_fraud_warnings", "early_fraud_warnings", 101, _vary_efw, {
        "charge": _epoch("charge"), "fraud_type": _epoch("fraud_type"), "actionable": _epoch("actionable")}),
    "subscription_schedule": ("/v1/subscription_schedules", "subscription_schedules", 110, _vary_schedule, {
        "customer": _epoch("customer"), "status": _epoch("status"), "phases": _epoch("phases"),
        "extract(epoch FROM current_phase_start)::bigint": lambda o: o["current_phase"]["start_date"]}),
}
N_CUSTOMERS = 150


@pytest.fixture(scope="module")
def api():
    with StandIn() as s:
        for path, _, n, vary, _ in KINDS.values():
            s.add(path, n, vary)
        s.add("/v1/customers", N_CUSTOMERS, lambda i, o: o.update(email=f"c{i}@example.com", name=f"C {i}"))
        s.add("/v1/products", 3)
        s.add("/v1/plans", 3)
        s.add("/v1/coupons", 3)
        s.add("/v1/subscriptions", 1, children=25)
        s.add("/v1/subscriptions", 2, children=2)
        s.add("/v1/subscriptions", 1, lambda i, o: o.update(status="canceled"))
        s.add("/v1/invoices", 1, children=30)
        s.add("/v1/invoices", 1, children=2)
        yield s


@pytest.fixture(scope="module")
def cluster(api):
    with h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base, api_rate_limit=200) as c:
        yield c


def backfill(cluster, obj, created_after=None):
    """(count, notices) of one backfill call."""
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
        if created_after is None:
            n = conn.execute("SELECT stripe_sync.backfill(%s)", (obj,)).fetchone()[0]
        else:
            n = conn.execute("SELECT stripe_sync.backfill(%s, %s::timestamptz)", (obj, created_after)).fetchone()[0]
    return n, notices


def table_data(cluster, table, live_only=True):
    where = "WHERE NOT _deleted" if live_only else ""
    return dict(cluster.query(f"SELECT id, data FROM stripe_sync.{table} {where}"))


def last_run(cluster, obj):
    return cluster.query(
        "SELECT status, pages, objects, listed, rows_held, deleted, resumed, error, created_after"
        " FROM stripe_sync.sync_runs WHERE object = %s ORDER BY id DESC LIMIT 1", (obj,))[0]


@pytest.mark.parametrize("obj", list(KINDS))
def test_backfill_of_what_localstripe_lacks(cluster, api, obj):
    path, table, n, _, checks = KINDS[obj]
    check_first_backfill(cluster, api, obj, path, table, n, checks)


def check_first_backfill(cluster, api, obj, path, table, n, checks):
    """A first backfill of ``obj`` (``n`` objects at ``path`` of the stand-in): every object in
    ``table`` as listed, listed by pages of 100 from the newest, and the typed columns of
    ``checks`` (SQL expression -> its value from the object) as the objects say."""
    got, notices = backfill(cluster, obj)
    listed = api.listed(path)
    assert got == n
    assert table_data(cluster, table) == {o["id"]: o for o in listed}
    pages = math.ceil(n / 100)
    asked = [r["params"] for r in api.requests(path)]
    # Up to two pages: paged one request at a time. Longer: after two full pages the rest is
    # cut into slices of created time paged at once (backfill/paced.rs), which costs a request
    # or two for ranges that turn out empty.
    requests = len(asked) if n > 200 else pages
    assert pages <= requests <= pages + 4, asked
    assert ("NOTICE", f"stripe_sync: {obj}: {requests} pages, {n} objects") in notices
    assert last_run(cluster, obj) == ("completed", requests, n, n, n, 0, False, None, None)
    # every list request asked for 100; the first without a created filter, newest first
    assert len(asked) == requests and asked[0] == {"limit": "100"} and all(a["limit"] == "100" for a in asked)
    sequential = min(pages, 2)
    assert [a.get("starting_after") for a in asked[1:sequential]] == \
        [listed[100 * k - 1]["id"] for k in range(1, sequential)]
    exprs = list(checks)
    rows = cluster.query(f"SELECT id, {', '.join(exprs)} FROM stripe_sync.{table}")
    assert len(rows) == n
    by_id = {o["id"]: o for o in listed}
    for row in rows:
        want = tuple(checks[e](by_id[row[0]]) for e in exprs)
        assert tuple(row[1:]) == want, (table, row[0])


def test_incremental_run_lists_only_newer_and_full_run_changes_nothing(cluster, api):
    old_high = max(o["created"] for o in api.listed("/v1/prices"))
    added = api.add("/v1/prices", 7, _vary_price)
    assert min(o["created"] for o in added) > old_high
    api.forget_requests()
    got, _ = backfill(cluster, "price")
    # created[gte] the newest second seen: the new ones plus those of that second again
    again = [o for o in api.listed("/v1/prices") if o["created"] == old_high]
    assert got == len(added) + len(again) and len(again) in (1, 2)
    assert [r["params"] for r in api.requests("/v1/prices")] == [{"limit": "100", "created[gte]": str(old_high)}]
    listed = {o["id"]: o for o in api.listed("/v1/prices")}
    assert table_data(cluster, "prices") == listed
    status, pages, objects, listed_n, held, deleted, resumed, error, created_after = last_run(cluster, "price")
    assert (status, pages, objects, listed_n, held, deleted) == ("completed", 1, got, None, None, 0)
    assert created_after.timestamp() == old_high

    before = cluster.query("SELECT id, data, _deleted FROM stripe_sync.prices ORDER BY id")
    api.forget_requests()
    got, _ = backfill(cluster, "price", "epoch")
    assert got == 257
    asked = [r["params"] for r in api.requests("/v1/prices")]
    # No created filter but the slices' (after the first page, see check_first_backfill).
    assert 3 <= len(asked) <= 7 and asked[0] == {"limit": "100"}
    assert all(a["created[gte]"] and a["created[lt]"] for a in asked[1:])
    assert cluster.query("SELECT id, data, _deleted FROM stripe_sync.prices ORDER BY id") == before
    assert last_run(cluster, "price")[:6] == ("completed", len(asked), 257, 257, 257, 0)

    # an explicit created_after lists from there
    cut = sorted(listed.values(), key=lambda o: o["created"])[-20]["created"]
    api.forget_requests()
    got, _ = backfill(cluster, "price", datetime.fromtimestamp(cut, timezone.utc))
    assert got == sum(1 for o in listed.values() if o["created"] >= cut)
    assert api.requests("/v1/prices")[0]["params"] == {"limit": "100", "created[gte]": str(cut)}


def test_full_run_marks_missed_deletions_and_nothing_else(cluster, api):
    got, _ = backfill(cluster, "customer")
    assert got == N_CUSTOMERS
    before = cluster.query("SELECT id, data, _deleted FROM stripe_sync.customers ORDER BY id")
    gone = [o["id"] for o in api.listed("/v1/customers")[10:13]]
    for cid in gone:
        api.delete(cid)
    api.forget_requests()
    got, _ = backfill(cluster, "customer", "epoch")
    assert got == N_CUSTOMERS - 3
    assert sorted(r[0] for r in cluster.query("SELECT id FROM stripe_sync.customers WHERE _deleted")) == sorted(gone)
    after = cluster.query("SELECT id, data, _deleted FROM stripe_sync.customers ORDER BY id")
    assert [r for r in after if r[0] not in gone] == [r for r in before if r[0] not in gone]
    assert last_run(cluster, "customer")[:6] == ("completed", 2, N_CUSTOMERS - 3, N_CUSTOMERS - 3,
                                                 N_CUSTOMERS - 3, 3)
    # only the rows no longer listed were retrieved one by one
    assert sorted(r["path"] for r in api.requests() if r["path"].startswith("/v1/customers/")) == \
        sorted(f"/v1/customers/{cid}" for cid in gone)


def test_child_lists_are_completed_then_replaced(cluster, api):
    subs = api.listed("/v1/subscriptions", status="all")
    big = next(s for s in subs if s["items"]["total_count"] == 25)
    assert big["items"]["has_more"] and len(big["items"]["data"]) == 10
    got, _ = backfill(cluster, "subscription")
    assert got == 4  # the canceled one too: listed with status=all
    assert api.requests("/v1/subscriptions")[0]["params"] == {"limit": "100", "status": "all"}
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.subscriptions WHERE status = 'canceled'") == 1
    items = lambda sub: sorted(r[0] for r in cluster.query(  # noqa: E731
        "SELECT id FROM stripe_sync.subscription_items WHERE subscription = %s", (sub,)))
    for s in subs:
        assert items(s["id"]) == sorted(i["id"] for i in api.children[s["id"]])
    assert len(items(big["id"])) == 25
    assert cluster.scalar("SELECT jsonb_array_length(data->'items'->'data') FROM stripe_sync.subscriptions"
                          " WHERE id = %s", (big["id"],)) == 25
    assert [r["params"]["subscription"] for r in api.requests("/v1/subscription_items")] == [big["id"]]

    got, _ = backfill(cluster, "invoice")
    assert got == 2
    inv = next(i for i in api.listed("/v1/invoices") if i["lines"]["total_count"] == 30)
    lines = cluster.query("SELECT id FROM stripe_sync.invoice_line_items WHERE invoice = %s", (inv["id"],))
    assert sorted(r[0] for r in lines) == sorted(li["id"] for li in api.children[inv["id"]])
    assert len(lines) == 30
    assert api.count(f"/v1/invoices/{inv['id']}/lines") == 1
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.invoice_line_items") == 32

    all_items = api.children[big["id"]]
    removed = [all_items[k]["id"] for k in (2, 9, 12, 20, 24)]
    api.remove_children(big["id"], removed)
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.sync_object(%s)", (big["id"],)).fetchone()[0] == "subscriptions"
    assert items(big["id"]) == sorted(i["id"] for i in api.children[big["id"]])
    assert len(items(big["id"])) == 20 and not set(removed) & set(items(big["id"]))


@pytest.mark.parametrize("path, table, field, value", [
    ("/v1/prices", "prices", "nickname", "Renamed"),
    ("/v1/disputes", "disputes", "status", "charge_refunded"),
    ("/v1/checkout/sessions", "checkout_sessions", "status", "expired"),
    ("/v1/radar/early_fraud_warnings", "early_fraud_warnings", "fraud_type", "unauthorized_use_of_card"),
    ("/v1/subscription_schedules", "subscription_schedules", "status", "released"),
    ("/v1/credit_notes", "credit_notes", "memo", "Refetched"),
])
def test_sync_object_by_prefix(cluster, api, path, table, field, value):
    check_sync_object(cluster, api, path, table, field, value)


def check_sync_object(cluster, api, path, table, field, value):
    """sync_object() of a listed object changed in the stand-in: its row is the new object."""
    oid = api.listed(path)[5]["id"]
    fresh = api.update(oid, **{field: value})
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.sync_object(%s)", (oid,)).fetchone()[0] == table
    assert cluster.query(f"SELECT data, {field}, _deleted FROM stripe_sync.{table} WHERE id = %s", (oid,)) == \
        [(fresh, value, False)]


def test_sync_object_of_a_deleted_customer_marks_it_deleted(cluster, api):
    customer = api.listed("/v1/customers")[0]
    cid = customer["id"]
    assert cluster.query("SELECT _deleted, email FROM stripe_sync.customers WHERE id = %s", (cid,)) == \
        [(False, customer["email"])]
    status, body = h.http_request(f"{api.base}/v1/customers/{cid}", method="DELETE",
                                  headers={"Authorization": f"Bearer {h.TEST_API_KEY}"})
    assert status == 200 and b'"deleted": true' in body
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.sync_object(%s)", (cid,)).fetchone()[0] == "customers"
    # the stub only marks the row: what was known of the customer stays
    assert cluster.query("SELECT _deleted, email FROM stripe_sync.customers WHERE id = %s", (cid,)) == \
        [(True, customer["email"])]


SERVED = {"/v1/products": ("product", "products"), "/v1/plans": ("plan", "plans"),
          "/v1/coupons": ("coupon", "coupons"), "/v1/customers": ("customer", "customers"),
          "/v1/subscriptions": ("subscription", "subscriptions"), "/v1/invoices": ("invoice", "invoices"),
          **{path: (obj, table) for obj, (path, table, *_) in KINDS.items()},
          # 0.8.0: the money ledger and around it (test_ledger.py checks each in detail)
          "/v1/balance_transactions": ("balance_transaction", "balance_transactions"),
          "/v1/payouts": ("payout", "payouts"), "/v1/transfers": ("transfer", "transfers"),
          "/v1/application_fees": ("application_fee", "application_fees"),
          "/v1/invoice_payments": ("invoice_payment", "invoice_payments"),
          "/v1/customer_balance_transactions": ("customer_balance_transaction", "customer_balance_transactions"),
          "/v1/promotion_codes": ("promotion_code", "promotion_codes"), "/v1/tax_rates": ("tax_rate", "tax_rates"),
          "/v1/quotes": ("quote", "quotes"), "/v1/reviews": ("review", "reviews"),
          "/v1/billing/meters": ("billing.meter", "billing_meters"),
          "/v1/entitlements/features": ("entitlements.feature", "entitlement_features")}
NOT_SERVED: list[str] = []  # the stand-in serves every type backfill('all') names (test_mirror.py fills each)


def test_backfill_all_covers_every_resource_served(cluster, api):
    customer = api.listed("/v1/customers")[0]["id"]  # listed per customer: one the mirror holds
    owned = lambda i, o: o.update(customer=customer)  # noqa: E731
    new = {path: api.add(path, 1, owned if path == "/v1/customer_balance_transactions" else None)[0]["id"]
           for path in SERVED}
    got, notices = backfill(cluster, "all")
    assert got >= len(SERVED)
    skipped = sorted(m.split(" skipped")[0].removeprefix("stripe_sync: backfill of ")
                     for sev, m in notices if sev == "WARNING")
    assert skipped == sorted(NOT_SERVED), notices
    for path, (obj, table) in SERVED.items():
        params = {"status": "all"} if obj == "subscription" else {}
        live = set(table_data(cluster, table))
        assert live == {o["id"] for o in api.listed(path, **params)}, table
        assert new[path] in live
        assert last_run(cluster, obj)[0] == "completed"
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE status <> 'completed'"
                          " AND object <> ALL(%s)", (NOT_SERVED,)) == 0
    # every request of the module carried the pinned Stripe-Version
    assert {r["version"] for r in api.requests()} == {cluster.scalar("SHOW stripe_sync.api_version")}


def test_a_partial_child_list_from_a_webhook_is_completed_by_the_worker(api):
    # The worker, not a backfill: a subscription event whose embedded items stop
    # at ten (has_more) is applied, then completed through the API.
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, api_key=h.TEST_API_KEY, api_base=api.base) as c:
        sub = api.add("/v1/subscriptions", 1, children=25)[0]
        event = json.dumps({
            "id": h.new_id("evt_"), "object": "event", "type": "customer.subscription.updated",
            "created": int(time.time()), "api_version": "2026-07-29.dahlia",
            "data": {"object": api.render(sub)},
        })
        with c.connect() as conn:
            assert h.ingest(conn, event, secret) == "queued"
        items = lambda: c.scalar("SELECT count(*) FROM stripe_sync.subscription_items WHERE subscription = %s",
                                 (sub["id"],))
        h.wait_until(lambda: items() == 25, timeout=60, what="all 25 items, completed through the API")
        assert c.scalar("SELECT _children_complete FROM stripe_sync.subscriptions WHERE id = %s", (sub["id"],))
        assert sorted(r[0] for r in c.query(
            "SELECT id FROM stripe_sync.subscription_items WHERE subscription = %s", (sub["id"],))) \
            == sorted(i["id"] for i in api.children[sub["id"]])


def test_events_in_the_same_second_are_settled_by_a_re_read(api):
    # Two updates of one customer in one second cannot be ordered by their time:
    # with a key configured the worker re-reads the customer, and the API's state wins.
    secret = h.new_webhook_secret()
    with h.stripe_sync_cluster(secret, api_key=h.TEST_API_KEY, api_base=api.base) as c:
        cust = api.add("/v1/customers", 1, lambda i, o: o.update(email="truth@example.com"))[0]
        t = int(time.time()) - 5
        with c.connect() as conn:
            for email in ("guess-a@example.com", "guess-b@example.com"):
                obj = dict(api.render(cust), email=email)
                event = json.dumps({"id": h.new_id("evt_"), "object": "event", "type": "customer.updated",
                                    "created": t, "data": {"object": obj}})
                assert h.ingest(conn, event, secret) == "queued"
        h.wait_until(lambda: c.query("SELECT email, _last_event_type FROM stripe_sync.customers WHERE id = %s",
                                     (cust["id"],)) == [("truth@example.com", "stripe_sync.fetched")],
                     timeout=60, what="the re-read to settle the tie")
        assert c.scalar("SELECT count(*) FROM stripe_sync.refresh_requests") == 0


def test_a_connected_account_is_backfilled_under_its_own_id_and_cursor(cluster, api):
    theirs = api.add("/v1/coupons", 3, account="acct_1Connected")
    api.forget_requests()
    with cluster.connect() as conn:
        n = conn.execute("SELECT stripe_sync.backfill('coupon', account => 'acct_1Connected')").fetchone()[0]
        with pytest.raises(psycopg.Error) as err:
            conn.execute("SELECT stripe_sync.backfill('coupon', account => 'not-an-account')")
    assert err.value.sqlstate == "22023"
    assert n == len(theirs)
    sent = {r["account"] for r in api.requests("/v1/coupons")}
    assert sent == {"acct_1Connected"}, sent
    rows = cluster.query("SELECT id FROM stripe_sync.coupons WHERE _account_id = 'acct_1Connected'")
    assert sorted(r[0] for r in rows) == sorted(o["id"] for o in theirs)
    assert cluster.query("SELECT completed IS NOT NULL FROM (SELECT last_completed_at AS completed"
                         " FROM stripe_sync.sync_cursors WHERE account = 'acct_1Connected' AND object = 'coupon') c") \
        == [(True,)]
