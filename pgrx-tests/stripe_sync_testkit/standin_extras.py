"""What the stand-in (standin.StandIn) serves beyond its collections, for 0.9.0: a customer's
active entitlements, a product's features, the balance transactions an automatic payout settled,
and the v2 event list of thin events (Stripe event destinations).

    with StandIn() as api:
        ents = api.add_entitlements(customer_id, 3)        # features made too, one each
        summary = api.entitlement_summary(customer_id)      # data.object of a summary event
        api.add_product_features(product_id, 2)
        payout, own_txn = api.add_payout(txns)              # settles txns, amount = their net
        event = api.thin_event("v1.customer.updated", customer)   # delivered and listed by /v2

Endpoints: ``GET /v1/entitlements/active_entitlements?customer=`` (customer required; an
unknown customer has none), ``GET /v1/products/{id}/features[/{id}]``, ``GET
/v1/balance_transactions?payout=`` (an automatic payout's transactions and its own one; a manual
payout is refused as Stripe does), ``GET /v2/core/events`` (newest first, ``created[gte|gt|lte|lt]``
as RFC 3339 times, ``limit`` 1 to 100, default 20; the next page at ``next_page_url``, a path
with ``?page=``) and ``GET /v2/core/events/{id}``. v2 requests name a connected account by
their Stripe-Context header: the list then shows that account's events only; without one, every
event (each names its account in ``context``), and an event is retrieved under its context or
none.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
from datetime import datetime, timezone
from typing import Any, Optional

V2_EVENTS = "/v2/core/events"
V2_PAGE_DEFAULT = 20
DAY = 86400


def rfc3339(ts: float) -> str:
    """A unix time as Stripe's v2 API writes it: UTC, milliseconds, 'Z'."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(value: str) -> Optional[float]:
    """The unix time of an RFC 3339 date-time with its zone, None for anything else."""
    if len(value) < 20 or value[10] not in "Tt" or value[4] != "-" or value[7] != "-":
        return None
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1] in "Zz" else value)
    except ValueError:
        return None
    return None if parsed.tzinfo is None else parsed.timestamp()


class Extras:
    """Mixed into StandIn: its state (start_extras()), the helpers the tests call, and
    handle_extra(), tried before the collections' routes."""

    lock: threading.RLock

    def start_extras(self) -> None:
        self.entitlements: dict[str, list[dict]] = {}  # customer id -> its active entitlements, in list order
        self.product_features: dict[str, list[dict]] = {}  # product id -> its features, oldest first
        self.settled: dict[str, list[str]] = {}  # payout id -> the balance transactions it paid out
        self.v2_events: dict[str, dict] = {}  # id -> thin event as served
        self.v2_order: dict[str, tuple[int, str]] = {}  # id -> (created in ms, id): list order
        self.v2_pages: dict[str, tuple] = {}  # page token -> (bounds, limit, context, after)

    # -- entitlements ---------------------------------------------------------
    def _features(self, n: int, account: Optional[str]) -> list[dict]:
        base = len(self.objects["/v1/entitlements/features"])
        return self.add("/v1/entitlements/features", n, lambda i, o: o.update(
            name=f"Feature {base + i}", lookup_key=f"feature_{base + i}_{secrets.token_hex(3)}", active=True,
            livemode=False), account=account)

    def add_entitlements(self, customer: str, n: int = 1, features: Optional[list[dict]] = None,
                         expand: bool = False) -> list[dict]:
        """``n`` active entitlements of ``customer`` (or one per feature of ``features``), each to
        a new entitlement feature of the stand-in; with ``expand`` their ``feature`` is the whole
        feature object, else its id. Returns them as served."""
        with self.lock:
            account = self.objects["/v1/customers"].get(customer, {}).get("_account")
            feats = features if features is not None else self._features(n, account)
            made = [{"id": "ent_test_" + secrets.token_hex(16), "object": "entitlements.active_entitlement",
                     "feature": copy.deepcopy(f) if expand else f["id"], "livemode": False,
                     "lookup_key": f["lookup_key"]} for f in feats]
            self.entitlements.setdefault(customer, []).extend(made)
            return copy.deepcopy(made)

    def remove_entitlements(self, customer: str, ids: list[str]) -> None:
        with self.lock:
            self.entitlements[customer] = [e for e in self.entitlements.get(customer, []) if e["id"] not in ids]

    def active_entitlements(self, customer: str) -> list[dict]:
        with self.lock:
            return copy.deepcopy(self.entitlements.get(customer, []))

    def entitlement_summary(self, customer: str, cut: Optional[int] = None) -> dict:
        """The ``entitlements.active_entitlement_summary`` of an event about ``customer``: its
        active entitlements, the first ``cut`` of them only (``has_more``) when given."""
        items = self.active_entitlements(customer)
        shown = items if cut is None else items[:cut]
        return {"object": "entitlements.active_entitlement_summary", "customer": customer,
                "entitlements": {"object": "list", "data": shown, "has_more": len(shown) < len(items),
                                 "url": "/v1/entitlements/active_entitlements"},
                "livemode": False}

    # -- product features -----------------------------------------------------
    def add_product_features(self, product: str, n: int = 1, features: Optional[list[dict]] = None) -> list[dict]:
        """Attaches ``n`` new entitlement features (or ``features``) to ``product``; returns the
        product_feature objects as served."""
        with self.lock:
            account = self.get(product).get("_account")
            feats = features if features is not None else self._features(n, account)
            made = [{"id": "prodft_" + secrets.token_hex(12), "object": "product_feature",
                     "entitlement_feature": copy.deepcopy(f), "livemode": False} for f in feats]
            self.product_features.setdefault(product, []).extend(made)
            return copy.deepcopy(made)

    def detach_product_feature(self, product: str, product_feature: str) -> None:
        with self.lock:
            kept = [f for f in self.product_features.get(product, []) if f["id"] != product_feature]
            if len(kept) == len(self.product_features.get(product, [])):
                raise KeyError(product_feature)
            self.product_features[product] = kept

    def features_of(self, product: str) -> list[dict]:
        """A product's features as its list gives them, newest first."""
        with self.lock:
            return copy.deepcopy(self.product_features.get(product, [])[::-1])

    # -- payouts ----------------------------------------------------------------
    def add_payout(self, txns: list[dict], account: Optional[str] = None, **fields: Any) -> tuple[dict, dict]:
        """A paid automatic payout of the balance transactions ``txns`` (amount: the sum of their
        net), with its own balance transaction (type payout, the negative amount) created after
        them. ``fields`` change the payout. Returns (payout, its balance transaction), as served."""
        with self.lock:
            amount = sum(t["net"] for t in txns)
            currency = txns[0]["currency"] if txns else "usd"
            created = max([t["created"] for t in txns], default=self.clock) + 60
            payout = self.add("/v1/payouts", 1, lambda i, o: o.update({
                "amount": amount, "currency": currency, "status": "paid", "automatic": True, "created": created,
                "arrival_date": created + 2 * DAY, "method": "standard", "failure_code": None,
                "failure_message": None, "failure_balance_transaction": None, "original_payout": None,
                "reversed_by": None, "reconciliation_status": "completed", **fields}), account=account)[0]
            own = self.add("/v1/balance_transactions", 1, lambda i, o: o.update(
                amount=-payout["amount"], fee=0, net=-payout["amount"], currency=payout["currency"],
                type="payout", reporting_category="payout", source=payout["id"], status="available",
                created=created, available_on=created, fee_details=[], description="STRIPE PAYOUT",
                exchange_rate=None), account=account)[0]
            self.update(payout["id"], balance_transaction=own["id"])
            self.settled[payout["id"]] = [t["id"] for t in txns]
            return self.render(self.get(payout["id"])), own

    def settle(self, payout: str, txn_ids: list[str]) -> None:
        """Adds balance transactions to what ``payout`` paid out (its amount is not changed)."""
        with self.lock:
            self.settled.setdefault(payout, []).extend(txn_ids)

    def paid_out(self, payout: str) -> list[dict]:
        """What ``GET /v1/balance_transactions?payout=`` lists in full, newest first."""
        with self.lock:
            po = self.get(payout)
            own = {po["balance_transaction"]} if po.get("balance_transaction") else set()
            ids = set(self.settled.get(payout, [])) | own
            txns = [self.objects["/v1/balance_transactions"][i] for i in ids
                    if i in self.objects["/v1/balance_transactions"]]
            return [self.render(t) for t in sorted(txns, key=lambda o: (o["created"], o["id"]), reverse=True)]

    # -- thin events --------------------------------------------------------------
    def thin_event(self, event_type: str, related: Optional[dict] = None, created: Optional[float] = None,
                   context: Optional[str] = None, listed: bool = True) -> dict:
        """A v2 thin event: ``related`` is a stand-in object (its id, object name and retrieve
        path make related_object) or a related_object itself ({"id", "type", "url"}); ``created``
        a unix time (default now, with milliseconds). With ``listed`` /v2/core/events lists it.
        Returns the event (json.dumps of it is a delivery to sign)."""
        at = time.time() if created is None else created
        event: dict[str, Any] = {"id": "evt_test_" + secrets.token_hex(24), "object": "v2.core.event",
                                 "type": event_type, "livemode": False, "created": rfc3339(at), "context": context,
                                 "reason": None}
        if related is not None:
            if "url" in related:
                event["related_object"] = dict(related)
            else:
                path = self.path_of(related["id"])
                event["related_object"] = {"id": related["id"], "type": related["object"],
                                           "url": f"{path}/{related['id']}"}
        if listed:
            with self.lock:
                self.v2_events[event["id"]] = event
                self.v2_order[event["id"]] = (round(at * 1000), event["id"])
        return copy.deepcopy(event)

    def v2_listed(self, context: Optional[str] = None, since: Optional[float] = None) -> list[dict]:
        """Every thin event /v2/core/events lists (under ``context``, created at or after ``since``),
        newest first."""
        with self.lock:
            bounds = {} if since is None else {"gte": round(since * 1000)}
            return [copy.deepcopy(self.v2_events[k[1]]) for k in self._v2_select(bounds, context)]

    def _v2_select(self, bounds: dict, context: Optional[str]) -> list[tuple[int, str]]:
        tests = {"gte": int.__ge__, "gt": int.__gt__, "lte": int.__le__, "lt": int.__lt__}
        keys = [k for i, k in self.v2_order.items() if context in (None, self.v2_events[i].get("context"))
                and all(tests[op](k[0], bound) for op, bound in bounds.items())]
        return sorted(keys, reverse=True)

    # -- the routes -----------------------------------------------------------------
    def handle_extra(self, method: str, path: str, params: dict, account: Optional[str]) -> Optional[dict]:
        """The answer to a request for one of the endpoints above, None for any other request."""
        from .standin import StripeError  # the module that imports this one

        parts = path.rstrip("/").split("/")
        if method != "GET":
            return None
        if path == "/v1/entitlements/active_entitlements":
            self._check(params, {"customer"})
            if "customer" not in params:
                raise StripeError(400, "Missing required param: customer.", "parameter_missing", "customer")
            owner = self.objects["/v1/customers"].get(params["customer"])
            items = self.entitlements.get(params["customer"], []) if owner and owner.get("_account") == account else []
            page = self._page(items, params, path, keyed=False)
            if params.get("expand[]") == "data.feature":
                feats = self.objects["/v1/entitlements/features"]
                for e in page["data"]:
                    if isinstance(e["feature"], str) and e["feature"] in feats:
                        e["feature"] = self.render(feats[e["feature"]])
            return page
        if len(parts) in (5, 6) and parts[:3] == ["", "v1", "products"] and parts[4] == "features":
            product = self.objects["/v1/products"].get(parts[3])
            if product is None or product.get("_account") != account:
                raise StripeError(404, f"No such product: '{parts[3]}'", "resource_missing", "product")
            items = self.product_features.get(parts[3], [])[::-1]
            if len(parts) == 6:
                found = [f for f in items if f["id"] == parts[5]]
                if not found:
                    raise StripeError(404, f"No such product feature: '{parts[5]}'", "resource_missing", "id")
                return copy.deepcopy(found[0])
            self._check(params, set())
            return self._page(items, params, path, keyed=False)
        if path == "/v1/balance_transactions" and "payout" in params:
            self._check(params, {"payout", "type"})
            payout = self.objects["/v1/payouts"].get(params["payout"])
            if payout is None or payout.get("_account") != account:
                raise StripeError(404, f"No such payout: '{params['payout']}'", "resource_missing", "payout")
            if not payout.get("automatic"):
                raise StripeError(400, "Balance transaction history can only be filtered on automatic transfers, "
                                       "not manual.", param="payout")
            items = [t for t in self.paid_out(payout["id"]) if params.get("type") in (None, t["type"])]
            held = {t["id"]: self.objects["/v1/balance_transactions"][t["id"]] for t in items}
            return self._page([held[t["id"]] for t in items], params, path, keyed=True)
        if path == V2_EVENTS:
            return self._v2_page(params, account)
        if len(parts) == 5 and "/".join(parts[:4]) == V2_EVENTS:
            self._check(params, set(), created=False)
            event = self.v2_events.get(parts[4])
            if event is None or account not in (None, event.get("context")):
                raise StripeError(404, f"No such event: '{parts[4]}'", "resource_missing", "id")
            return copy.deepcopy(event)
        return None

    def _v2_page(self, params: dict, context: Optional[str]) -> dict:
        from .standin import StripeError

        if "page" in params:
            unknown = set(params) - {"page", "limit"}
            if unknown or params["page"] not in self.v2_pages:
                raise StripeError(400, f"Invalid page: {params['page']!r}" if not unknown
                                  else f"Received unknown parameter: {sorted(unknown)[0]}", "invalid_page", "page")
            bounds, limit, context, after = self.v2_pages[params["page"]]
        else:
            ops = ("gte", "gt", "lte", "lt")
            allowed = {"limit", "object_id", "types", *(f"created[{op}]" for op in ops)}
            for key in params:
                if key not in allowed and not key.startswith("types["):
                    raise StripeError(400, f"Received unknown parameter: {key}", "parameter_unknown", key)
            bounds = {}
            for op in ops:
                if f"created[{op}]" in params:
                    at = parse_rfc3339(params[f"created[{op}]"])
                    if at is None:
                        raise StripeError(400, f"Invalid timestamp: {params[f'created[{op}]']}",
                                          "invalid_timestamp", f"created[{op}]")
                    bounds[op] = round(at * 1000)
            limit, after = V2_PAGE_DEFAULT, None
        if "limit" in params:
            try:
                limit = int(params["limit"])
            except ValueError:
                limit = 0
            if not 1 <= limit <= 100:
                raise StripeError(400, "Invalid limit: must be between 1 and 100", "invalid_limit", "limit")
        keys = [k for k in self._v2_select(bounds, context) if after is None or k < after]
        page = keys[:limit]
        next_url = None
        if len(keys) > limit:
            token = secrets.token_urlsafe(12)
            self.v2_pages[token] = (bounds, limit, context, page[-1])
            next_url = f"{V2_EVENTS}?page={token}"
        return {"data": [copy.deepcopy(self.v2_events[k[1]]) for k in page], "next_page_url": next_url,
                "previous_page_url": None}
