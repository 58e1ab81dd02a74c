"""Customer entitlements and product features (0.9.0) against standin.StandIn: summary events
replacing a customer's active entitlements (newest wins, an older one changes nothing, a list cut
with has_more completed from GET /v1/entitlements/active_entitlements), backfill of the summaries
of every mirrored customer and of every mirrored product's features (a detached feature gone on
the next run), and active_entitlements answering from the entitlements of an account that has
summaries and from subscription items elsewhere. Expected rows are computed here from the
stand-in's objects. The tests of the module run in order on one cluster.
"""

from __future__ import annotations

import json
import time

import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.fixtures import standin_fixtures
from test_standin import backfill, last_run

SUMMARY_TYPE = "entitlements.active_entitlement_summary.updated"
SUMMARY = "entitlements.active_entitlement_summary"  # the backfill's object name
ENTS = "/v1/entitlements/active_entitlements"


api, cluster = standin_fixtures(api_rate_limit=200)


def summary_event(summary: dict, created: int, account: str | None = None) -> str:
    event = {"id": h.new_id("evt_", 24), "object": "event", "type": SUMMARY_TYPE, "api_version": "2026-07-29.dahlia",
             "created": created, "data": {"object": summary}, "livemode": False, "pending_webhooks": 1,
             "request": None}
    if account:
        event["account"] = account
    return json.dumps(event, indent=2)


def deliver(cluster, payload: str) -> str:
    """Ingests ``payload`` and waits for the worker to settle it: its status, and the event id."""
    event_id = h.event_id_of(payload)
    with cluster.connect() as conn:
        assert h.ingest(conn, payload, cluster.webhook_secret) == "queued"
    return settled(cluster, event_id), event_id


settled = h.settled


def feature_id(ent: dict) -> str:
    return ent["feature"] if isinstance(ent["feature"], str) else ent["feature"]["id"]


def expected(api, customers) -> dict:
    """customer_entitlements as the stand-in's active entitlements of ``customers`` make them."""
    return {e["id"]: (cid, feature_id(e), e["lookup_key"], e["livemode"], e)
            for cid in customers for e in api.active_entitlements(cid)}


def held(cluster, customers, account: str = "") -> dict:
    return {r[0]: tuple(r[1:]) for r in cluster.query(
        "SELECT id, customer, feature, lookup_key, livemode, data FROM stripe_sync.customer_entitlements"
        " WHERE customer = ANY(%s) AND _account_id = %s", (list(customers), account))}


def summary_row(cluster, customer: str):
    rows = cluster.query("SELECT customer, livemode, data, _last_event_id, _last_event_type, _deleted"
                         " FROM stripe_sync.entitlement_summaries WHERE id = %s AND _account_id = ''", (customer,))
    return rows[0] if rows else None


def test_a_newer_summary_replaces_the_set_and_an_older_one_changes_nothing(cluster, api):
    cus, bystander = (c["id"] for c in api.add("/v1/customers", 2))
    api.add_entitlements(bystander, 2)
    first = api.add_entitlements(cus, 3) + api.add_entitlements(cus, 1, expand=True)
    t = int(time.time()) - 600
    assert deliver(cluster, summary_event(api.entitlement_summary(bystander), t - 50))[0] == "processed"
    old_summary = api.entitlement_summary(cus)
    status, first_id = deliver(cluster, summary_event(old_summary, t))
    assert status == "processed"
    assert held(cluster, [cus, bystander]) == expected(api, [cus, bystander])
    assert {r[1] for r in held(cluster, [cus]).values()} == {feature_id(e) for e in first}
    assert held(cluster, [cus])[first[3]["id"]][1] == first[3]["feature"]["id"]  # expanded: its id
    assert summary_row(cluster, cus) == (cus, False, old_summary, first_id, SUMMARY_TYPE, False)

    # One removed, one added: exactly the new set.
    api.remove_entitlements(cus, [first[1]["id"]])
    added = api.add_entitlements(cus, 1)[0]
    new_summary = api.entitlement_summary(cus)
    status, newer_id = deliver(cluster, summary_event(new_summary, t + 60))
    assert status == "processed"
    now_held = held(cluster, [cus])
    assert now_held == expected(api, [cus])
    assert first[1]["id"] not in now_held and added["id"] in now_held and len(now_held) == 4
    assert summary_row(cluster, cus) == (cus, False, new_summary, newer_id, SUMMARY_TYPE, False)

    # The first state again, in an event older than the one applied: nothing changes.
    status, _ = deliver(cluster, summary_event(old_summary, t + 30))
    assert status in ("processed", "skipped")
    assert held(cluster, [cus]) == now_held
    assert summary_row(cluster, cus) == (cus, False, new_summary, newer_id, SUMMARY_TYPE, False)
    # The same second as the newest, a smaller event id: ordered by the id, still older.
    tie = json.loads(summary_event(old_summary, t + 60))
    tie["id"] = "evt_" + "0" * 24
    status, _ = deliver(cluster, json.dumps(tie, indent=2))
    assert status in ("processed", "skipped")
    # (A tie may be settled by a re-read of the customer's list instead: the same set.)
    h.wait_until(lambda: cluster.scalar("SELECT count(*) FROM stripe_sync.refresh_requests") == 0, timeout=60,
                 what="no re-read left to make")
    assert held(cluster, [cus]) == now_held
    assert held(cluster, [bystander]) == expected(api, [bystander])


def test_an_empty_summary_removes_every_entitlement(cluster, api):
    cus = api.add("/v1/customers", 1)[0]["id"]
    ents = api.add_entitlements(cus, 2)
    t = int(time.time()) - 300
    assert deliver(cluster, summary_event(api.entitlement_summary(cus), t))[0] == "processed"
    assert len(held(cluster, [cus])) == 2
    api.remove_entitlements(cus, [e["id"] for e in ents])
    assert deliver(cluster, summary_event(api.entitlement_summary(cus), t + 1))[0] == "processed"
    assert held(cluster, [cus]) == {}
    assert summary_row(cluster, cus)[2]["entitlements"]["data"] == []


def test_a_summary_with_has_more_is_completed_from_the_list(cluster, api):
    cus = api.add("/v1/customers", 1)[0]["id"]
    ents = api.add_entitlements(cus, 27)
    summary = api.entitlement_summary(cus, cut=10)
    assert summary["entitlements"]["has_more"] and len(summary["entitlements"]["data"]) == 10
    api.forget_requests()
    assert deliver(cluster, summary_event(summary, int(time.time()) - 60))[0] == "processed"
    h.wait_until(lambda: len(held(cluster, [cus])) == 27, timeout=60,
                 what="the 27 entitlements, the 17 past the summary listed from the API")
    assert held(cluster, [cus]) == expected(api, [cus])
    asked = [r["params"] for r in api.requests(ENTS) if r["params"].get("customer") == cus]
    assert asked, api.requests(ENTS)
    # Pages in order, from the start or after the tenth (the last one the summary held), each
    # going on after the last entitlement of the one before, to the end.
    start = 0 if "starting_after" not in asked[0] else 10
    assert asked[0].get("starting_after") in (None, ents[9]["id"]), asked
    limits = [int(p.get("limit", 10)) for p in asked]
    for k, p in enumerate(asked[1:], 1):
        assert p["starting_after"] == ents[start + sum(limits[:k]) - 1]["id"], asked
    assert start + sum(limits[:-1]) < 27 <= start + sum(limits), asked
    h.wait_until(lambda: cluster.scalar("SELECT _children_complete FROM stripe_sync.entitlement_summaries"
                                        " WHERE id = %s", (cus,)) is True, timeout=30,
                 what="entitlement_summaries._children_complete once the list is complete")


def test_backfill_lists_every_mirrored_customer_in_full(cluster, api):
    many, none, few = (c["id"] for c in api.add("/v1/customers", 3))
    big = api.add_entitlements(many, 95) + api.add_entitlements(many, 40, expand=True)
    api.add_entitlements(few, 3)
    got, notices = backfill(cluster, "customer")
    mirrored = [r[0] for r in cluster.query("SELECT id FROM stripe_sync.customers WHERE NOT _deleted"
                                            " AND _account_id = ''")]
    assert set(mirrored) == {c["id"] for c in api.listed("/v1/customers")}
    api.forget_requests()
    got, notices = backfill(cluster, SUMMARY)
    assert [m for sev, m in notices if sev == "WARNING"] == []
    assert last_run(cluster, SUMMARY)[0] == "completed"
    asked = api.requests(ENTS)
    assert sorted({r["params"]["customer"] for r in asked}) == sorted(mirrored)
    pages_of_many = [r["params"] for r in asked if r["params"]["customer"] == many]
    assert len(pages_of_many) >= 2 and "starting_after" not in pages_of_many[0]
    limits = [int(p.get("limit", 10)) for p in pages_of_many]
    for k, p in enumerate(pages_of_many[1:], 1):
        assert p["starting_after"] == big[sum(limits[:k]) - 1]["id"]
    assert held(cluster, mirrored) == expected(api, mirrored)
    assert len(held(cluster, [many])) == 135 and held(cluster, [none]) == {}
    summaries = dict(cluster.query("SELECT id, customer FROM stripe_sync.entitlement_summaries"
                                   " WHERE _account_id = '' AND NOT _deleted"))
    assert set(summaries) >= set(mirrored) and all(summaries[c] == c for c in mirrored)
    assert cluster.scalar("SELECT livemode FROM stripe_sync.entitlement_summaries WHERE id = %s", (none,)) is False

    # Changed at Stripe. An incremental backfill lists only customers created since the last run
    # (summary events keep the others' sets); a full one replaces each customer's set.
    api.remove_entitlements(many, [big[0]["id"], big[120]["id"]])
    extra = api.add_entitlements(none, 2)
    api.forget_requests()
    backfill(cluster, SUMMARY)
    assert len({r["params"]["customer"] for r in api.requests(ENTS)}) < len(mirrored)
    api.forget_requests()
    backfill(cluster, SUMMARY, created_after="epoch")
    assert sorted({r["params"]["customer"] for r in api.requests(ENTS)}) == sorted(mirrored), \
        "a full backfill lists every mirrored customer again"
    assert held(cluster, mirrored) == expected(api, mirrored)
    assert len(held(cluster, [many])) == 133 and set(held(cluster, [none])) == {e["id"] for e in extra}


def test_active_entitlements_come_from_entitlements_where_an_account_uses_them(cluster, api):
    acct, emptied = "acct_1SubsOnly", "acct_1NoneLeft"
    make_active = lambda i, o: o.update(status="active", customer=f"cus_Sub{i}")  # noqa: E731
    theirs = api.add("/v1/subscriptions", 2, make_active, children=2, account=acct)
    api.add("/v1/subscriptions", 1, make_active, children=2)  # the platform's: not in the view
    # An account whose only summary lists no entitlement, and that has no feature: it does not use
    # Stripe's Entitlements (backfill('all') writes an empty summary for every customer of any
    # account), so its subscription items stay its rows.
    emptied_subs = api.add("/v1/subscriptions", 1, make_active, children=2, account=emptied)
    backfill(cluster, "subscription")
    with cluster.connect() as conn:
        for account in (acct, emptied):
            conn.execute("SELECT stripe_sync.backfill('subscription', account => %s)", (account,))
    empty = {"object": "entitlements.active_entitlement_summary", "customer": "cus_Sub0", "livemode": False,
             "entitlements": {"object": "list", "data": [], "has_more": False, "url": ENTS}}
    assert deliver(cluster, summary_event(empty, int(time.time()) - 30, account=emptied))[0] == "processed"
    assert cluster.query("SELECT customer FROM stripe_sync.entitlement_summaries WHERE _account_id = %s",
                         (emptied,)) == [("cus_Sub0",)]
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.subscription_items WHERE _account_id = %s",
                          (emptied,)) == 2
    cols = ("_account_id, customer, subscription, subscription_status, subscription_item, feature,"
            " feature_lookup_key, source")
    order = lambda r: tuple(str(v) for v in r)  # noqa: E731
    got: dict = {}
    for row in cluster.query(f"SELECT {cols} FROM stripe_sync.active_entitlements"):
        got.setdefault(row[0], []).append(row)
    # The platform has customer entitlements: its rows are those, whatever they hold.
    platform = cluster.query("SELECT customer, feature, lookup_key FROM stripe_sync.customer_entitlements"
                             " WHERE _account_id = ''")
    assert len(platform) > 100
    assert sorted(got.get("", []), key=order) == sorted(
        [("", cid, None, None, None, feat, lookup, "entitlements") for cid, feat, lookup in platform], key=order)
    assert sorted(got.get(acct, []), key=order) == sorted(
        [(acct, s["customer"], s["id"], "active", item["id"], None, None, "subscription")
         for s in theirs for item in api.children[s["id"]]], key=order)
    assert sorted(got.get(emptied, []), key=order) == sorted(
        [(emptied, s["customer"], s["id"], "active", item["id"], None, None, "subscription")
         for s in emptied_subs for item in api.children[s["id"]]], key=order)
    assert set(got) <= {"", acct, emptied}
    # The new columns come last, after those of 0.8.0.
    names = [r[0] for r in cluster.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'stripe_sync.active_entitlements'::regclass"
        " AND attnum > 0 ORDER BY attnum")]
    assert names[-3:] == ["feature", "feature_lookup_key", "source"] and names[:2] == ["customer", "_account_id"]


# ------------------------------------------------------------------ product features

def feature_rows(api, products) -> dict:
    return {f["id"]: (pid, f["entitlement_feature"]["id"], f["entitlement_feature"]["lookup_key"],
                      f["entitlement_feature"]["name"], f["livemode"], f)
            for pid in products for f in api.features_of(pid)}


def held_features(cluster) -> dict:
    return {r[0]: tuple(r[1:]) for r in cluster.query(
        "SELECT id, product, entitlement_feature, lookup_key, name, livemode, data FROM stripe_sync.product_features"
        " WHERE _account_id = ''")}


def test_backfill_of_product_features_replaces_each_products_list(cluster, api):
    few, none, many, gone = (p["id"] for p in api.add("/v1/products", 4))
    shared = api.add_product_features(few, 3)
    api.add_product_features(many, 112)
    api.add_product_features(gone, 2)
    # The same entitlement feature on two products: two product features.
    api.add_product_features(many, features=[shared[0]["entitlement_feature"]])
    backfill(cluster, "product")
    api.delete(gone)
    backfill(cluster, "product", "epoch")  # a full run: marks the deleted one
    assert cluster.scalar("SELECT _deleted FROM stripe_sync.products WHERE id = %s", (gone,)) is True
    live = [r[0] for r in cluster.query("SELECT id FROM stripe_sync.products WHERE NOT _deleted AND _account_id = ''")]
    assert sorted(live) == sorted([few, none, many])
    api.forget_requests()
    got, notices = backfill(cluster, "product_feature")
    assert [m for sev, m in notices if sev == "WARNING"] == []
    assert last_run(cluster, "product_feature")[0] == "completed"
    assert got == 3 + 113
    asked = sorted({r["path"] for r in api.requests() if r["path"].endswith("/features")})
    assert asked == sorted(f"/v1/products/{p}/features" for p in live)
    assert api.count(f"/v1/products/{many}/features") >= 2  # 113 in pages
    assert held_features(cluster) == feature_rows(api, live)
    assert {r[0] for r in held_features(cluster).values()} == {few, many}

    # Detached at Stripe: gone on the next run; the rest as before.
    before = held_features(cluster)
    api.detach_product_feature(few, shared[1]["id"])
    api.forget_requests()
    backfill(cluster, "product_feature")
    assert sorted({r["path"] for r in api.requests() if r["path"].endswith("/features")}) == \
        sorted(f"/v1/products/{p}/features" for p in live), "the second backfill lists every live product again"
    after = held_features(cluster)
    assert after == feature_rows(api, live)
    assert set(before) - set(after) == {shared[1]["id"]}
    assert {k: v for k, v in before.items() if k != shared[1]["id"]} == after


def test_backfill_all_of_a_connected_account_includes_both_after_their_parents(cluster, api):
    """backfill('all') lists summaries after customers and features after products, under the
    account (its Stripe-Account header on every per-customer and per-product list)."""
    acct = "acct_1AllOfIt"
    customers = [c["id"] for c in api.add("/v1/customers", 3, account=acct)]
    for k, cid in enumerate(customers):
        api.add_entitlements(cid, k * 2)
    products = [p["id"] for p in api.add("/v1/products", 2, account=acct)]
    api.add_product_features(products[0], 4)
    api.forget_requests()
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
        conn.execute("SELECT stripe_sync.backfill('all', account => %s)", (acct,))
    assert [m for sev, m in notices if sev == "WARNING"] == []
    assert held(cluster, customers, account=acct) == expected(api, customers)
    assert sorted(r[0] for r in cluster.query("SELECT id FROM stripe_sync.entitlement_summaries"
                                              " WHERE _account_id = %s", (acct,))) == sorted(customers)
    assert {r[0]: tuple(r[1:]) for r in cluster.query(
        "SELECT id, product, entitlement_feature, lookup_key, name, livemode, data FROM stripe_sync.product_features"
        " WHERE _account_id = %s", (acct,))} == feature_rows(api, products)
    asked = [r for r in api.requests() if r["path"] == ENTS or r["path"].endswith("/features")]
    assert {r["account"] for r in asked} == {acct}
    assert sorted(r["params"]["customer"] for r in asked if r["path"] == ENTS) == sorted(customers)
    runs = dict(cluster.query("SELECT object, max(id) FROM stripe_sync.sync_runs WHERE account = %s"
                              " GROUP BY object", (acct,)))
    assert runs["customer"] < runs[SUMMARY] and runs["product"] < runs["product_feature"], runs
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE account = %s AND status <> 'completed'",
                          (acct,)) == 0


def test_backfill_all_skips_the_per_parent_lists_of_an_account_without_features(cluster, api):
    """An account with no entitlement feature has no customer entitlement and no product feature:
    backfill('all') says so and makes none of the requests (one per customer, one per product)."""
    acct = "acct_1NoFeatures"
    api.add("/v1/customers", 3, account=acct)
    api.add("/v1/products", 2, account=acct)
    api.forget_requests()
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
        conn.execute("SELECT stripe_sync.backfill('all', account => %s)", (acct,))
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.customers WHERE _account_id = %s", (acct,)) == 3
    asked = [r for r in api.requests() if r["path"] == ENTS or r["path"].endswith("/features")]
    assert [r["path"] for r in asked] == ["/v1/entitlements/features"]  # the features' own list
    skipped = [m for sev, m in notices if sev == "NOTICE" and "skipped" in m]
    assert skipped == [f"stripe_sync: backfill of {name} skipped: the account has no entitlement features in"
                       " stripe_sync.entitlement_features" for name in ("product_feature", SUMMARY)], notices
    # Called for itself, the listing runs all the same.
    backfill_one = cluster.query("SELECT stripe_sync.backfill(%s, account => %s)", (SUMMARY, acct))
    assert backfill_one == [(0,)]
    assert len([r for r in api.requests() if r["path"] == ENTS]) == 3
