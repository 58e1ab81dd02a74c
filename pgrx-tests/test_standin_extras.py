"""The stand-in's endpoints of 0.9.0 (stripe_sync_testkit/standin_extras.py) over HTTP, as the
extension will call them, with no cluster: active entitlements of a customer, a product's
features, an automatic payout's balance transactions, and the v2 list of thin events. The
answers are checked against what the helpers made, so the tests of the extension that rely on
them stand on something checked."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.standin import StandIn
from stripe_sync_testkit.standin_extras import parse_rfc3339, rfc3339


@pytest.fixture
def api():
    with StandIn() as s:
        yield s


def get(api, path, headers=None, **params):
    """(status, answer) of a GET with the test key."""
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    status, body = h.http_request(f"{api.base}{path}{query}",
                                  headers={"Authorization": f"Bearer {h.TEST_API_KEY}", **(headers or {})})
    return status, json.loads(body)


def walk(api, path, limit, **params):
    """Every object of a v1 list, page by page (limit/starting_after), and the pages' sizes."""
    got, sizes, after = [], [], None
    while True:
        status, page = get(api, path, limit=limit, **params, **({"starting_after": after} if after else {}))
        assert status == 200, page
        got += page["data"]
        sizes.append(len(page["data"]))
        if not page["has_more"]:
            return got, sizes
        after = page["data"][-1]["id"]


def test_active_entitlements_need_a_customer_and_are_paginated(api):
    cus, other, stranger = (c["id"] for c in api.add("/v1/customers", 3))
    ents = api.add_entitlements(cus, 123)
    feats = {f["id"]: f for f in api.listed("/v1/entitlements/features")}
    assert len(feats) == 123 and {e["feature"] for e in ents} == set(feats)
    for e in ents:
        assert e["lookup_key"] == feats[e["feature"]]["lookup_key"] and e["id"].startswith("ent_test_")
    status, err = get(api, "/v1/entitlements/active_entitlements")
    assert (status, err["error"]["code"], err["error"]["param"]) == (400, "parameter_missing", "customer")
    listed, sizes = walk(api, "/v1/entitlements/active_entitlements", 100, customer=cus)
    assert listed == ents and sizes == [100, 23]
    assert get(api, "/v1/entitlements/active_entitlements", customer=other)[1]["data"] == []
    assert get(api, "/v1/entitlements/active_entitlements", customer="cus_Unknown")[1]["data"] == []
    # expanded on request, and as added with expand=True
    status, page = get(api, "/v1/entitlements/active_entitlements", customer=cus, limit=2,
                       **{"expand[]": "data.feature"})
    assert [e["feature"] for e in page["data"]] == [feats[e["feature"]] for e in ents[:2]]
    big = api.add_entitlements(stranger, 1, expand=True)[0]
    assert big["feature"]["object"] == "entitlements.feature"
    api.remove_entitlements(cus, [ents[0]["id"], ents[50]["id"]])
    assert walk(api, "/v1/entitlements/active_entitlements", 100, customer=cus)[0] == \
        [e for k, e in enumerate(ents) if k not in (0, 50)]


def test_entitlement_summary_is_cut_when_asked(api):
    cus = api.add("/v1/customers", 1)[0]["id"]
    ents = api.add_entitlements(cus, 12)
    whole = api.entitlement_summary(cus)
    assert whole["entitlements"]["data"] == ents and not whole["entitlements"]["has_more"]
    cut = api.entitlement_summary(cus, cut=10)
    assert cut["entitlements"]["data"] == ents[:10] and cut["entitlements"]["has_more"]
    assert (cut["object"], cut["customer"], cut["livemode"]) == ("entitlements.active_entitlement_summary", cus, False)


def test_product_features_listed_newest_first_and_detached(api):
    prod = api.add("/v1/products", 1)[0]["id"]
    made = api.add_product_features(prod, 13)
    listed, sizes = walk(api, f"/v1/products/{prod}/features", 10)
    assert listed == made[::-1] and sizes == [10, 3]
    assert all(f["entitlement_feature"]["object"] == "entitlements.feature" and "product" not in f for f in made)
    assert get(api, f"/v1/products/{prod}/features/{made[3]['id']}") == (200, made[3])
    api.detach_product_feature(prod, made[3]["id"])
    assert made[3]["id"] not in {f["id"] for f in walk(api, f"/v1/products/{prod}/features", 100)[0]}
    status, err = get(api, "/v1/products/prod_Nope/features")
    assert (status, err["error"]["code"]) == (404, "resource_missing")
    assert get(api, f"/v1/products/{prod}/features", limit=0)[0] == 400


def test_balance_transactions_of_a_payout(api):
    txns = api.add("/v1/balance_transactions", 130, lambda i, o: o.update(
        amount=1000 + i, fee=30 + i % 3, net=970 + i - i % 3, currency="usd", type="charge"))
    others = api.add("/v1/balance_transactions", 3)
    payout, own = api.add_payout(txns)
    assert payout["amount"] == sum(t["net"] for t in txns) and payout["balance_transaction"] == own["id"]
    assert (own["type"], own["amount"], own["net"], own["source"]) == ("payout", -payout["amount"],
                                                                        -payout["amount"], payout["id"])
    assert (payout["status"], payout["automatic"]) == ("paid", True)
    listed, sizes = walk(api, "/v1/balance_transactions", 100, payout=payout["id"])
    assert sizes == [100, 31]
    assert sorted(t["id"] for t in listed) == sorted([t["id"] for t in txns] + [own["id"]])
    assert listed[0]["id"] == own["id"]  # newest first: the payout's own came last
    assert not {t["id"] for t in others} & {t["id"] for t in listed}
    manual, _ = api.add_payout(others, automatic=False)
    status, err = get(api, "/v1/balance_transactions", payout=manual["id"])
    assert status == 400 and "automatic" in err["error"]["message"]
    assert get(api, "/v1/balance_transactions", payout="po_Nope")[0] == 404
    # without payout the list is the account's whole history, as before
    assert len(walk(api, "/v1/balance_transactions", 100)[0]) == 130 + 3 + 2


def test_v2_events_newest_first_filtered_and_paged(api):
    cus = api.add("/v1/customers", 1)[0]
    now = time.time()
    events = [api.thin_event("v1.customer.updated", cus, created=now - 100 + i * 0.5) for i in range(45)]
    theirs = api.thin_event("v1.customer.updated", cus, created=now, context="acct_1Other")
    api.thin_event("v1.customer.updated", cus, created=now, listed=False)
    e = events[0]
    assert e["related_object"] == {"id": cus["id"], "type": "customer", "url": f"/v1/customers/{cus['id']}"}
    assert parse_rfc3339(e["created"]) == pytest.approx(now - 100, abs=0.001) and e["created"].endswith("Z")
    since = events[10]["created"]
    seen, urls, params = [], [], {"created[gte]": since, "limit": "20"}
    path = "/v2/core/events"
    while True:
        status, page = get(api, path, **params)
        assert status == 200 and page["previous_page_url"] is None
        seen += page["data"]
        if page["next_page_url"] is None:
            break
        urls.append(page["next_page_url"])
        split = urllib.parse.urlsplit(page["next_page_url"])
        path, params = split.path, dict(urllib.parse.parse_qsl(split.query))
    assert seen == [theirs] + events[10:][::-1] and len(urls) == 1 and urls[0].startswith("/v2/core/events?page=")
    assert [r["params"] for r in api.requests("/v2/core/events")][1] == dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(urls[0]).query))
    assert get(api, "/v2/core/events")[1]["data"] == [theirs] + events[26:][::-1]  # 20 by default, every context
    assert get(api, "/v2/core/events", headers={"Stripe-Context": "acct_1Other"})[1]["data"] == [theirs]
    assert get(api, f"/v2/core/events/{e['id']}") == (200, e)
    assert get(api, f"/v2/core/events/{theirs['id']}") == (200, theirs)
    assert get(api, f"/v2/core/events/{e['id']}", headers={"Stripe-Context": "acct_1Other"})[0] == 404
    assert get(api, "/v2/core/events", **{"created[gte]": "1700000000"})[0] == 400
    assert get(api, "/v2/core/events", limit="101")[0] == 400
    assert api.stats()["counts"]["GET /v2/core/events/{id}"] == 2
    assert api.stats()["counts"]["GET /v2/core/events/{id} (404)"] == 1


def test_rfc3339():
    assert rfc3339(1796119200.123) == "2026-12-01T10:00:00.123Z"
    assert parse_rfc3339("2026-12-01T10:00:00.123Z") == pytest.approx(1796119200.123)
    assert parse_rfc3339("2026-12-01T11:00:00+01:00") == 1796119200
    for bad in ("2026-12-01", "2026-12-01T10:00:00", "1796119200", "yesterday", "2026-13-01T10:00:00Z"):
        assert parse_rfc3339(bad) is None, bad
