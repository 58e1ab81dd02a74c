"""The Stripe stand-in of the tests and the benchmarks: a small in-memory Stripe
API that behaves like the real one where localstripe does not: lists newest
first with cursors and created filters (refusing them where Stripe has none),
deleted stubs, embedded child lists cut at ten with their own list endpoints,
per-customer lists, customers created by POST (a repeated Idempotency-Key gets
the first answer again), and the resources localstripe lacks (prices, disputes,
credit notes, checkout sessions, early fraud warnings, subscription schedules,
and the money ledger: balance transactions, payouts, transfers, application
fees, invoice payments, customer balance transactions, promotion codes, tax
rates, quotes, reviews, billing meters, entitlement features), and those of 0.9.0
(standin_extras.py): customers' active entitlements, products' features, an automatic payout's
balance transactions, and the v2 list of thin events.
Objects start from the API's own examples (fixtures3.json) with fresh ids and
increasing ``created``.

    with StandIn() as api:
        prices = api.add("/v1/prices", 250)
        api.delete(prices[0]["id"])
        api.requests("/v1/prices")   # what was asked

For loads (bench/run.py's backfill, provisioning and same-second ties),
``add_pages()`` adds the platform's customers and invoices by the ten thousand
as read-only collections whose pages were built once as bytes
(standin_pages.py): listed, filtered by ``created[gte]``/``created[lt]`` and
retrieved by a look-up. Every request is logged with a label (``GET
/v1/customers (page)``, ``POST /v1/customers``...) that ``stats()`` counts;
another process reads them at ``GET /_standin/stats`` and calls ``reset()`` by
``POST /_standin/reset``.

Run as a program it adds such pages, prints one JSON line ({"port": ...,
"customers": ..., ...}) once it listens, then serves until killed:

    python -m stripe_sync_testkit.standin --customers 50000 --invoices 20000
"""

from __future__ import annotations

import argparse
import copy
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Optional

from . import SHARED, standin_pages
from .services import LocalServer
from .standin_extras import V2_EVENTS, Extras

FIXTURES = SHARED / "stripe" / "openapi" / "fixtures3.json"

# path -> (fixture / object name, id prefix, retrieve gives a deleted stub once deleted, DELETE allowed)
RESOURCES: dict[str, tuple[str, str, bool, bool]] = {
    "/v1/products": ("product", "prod_", True, True),
    "/v1/prices": ("price", "price_", True, False),
    "/v1/plans": ("plan", "plan_", True, True),
    "/v1/coupons": ("coupon", "CPN", True, True),
    "/v1/customers": ("customer", "cus_", True, True),
    "/v1/subscriptions": ("subscription", "sub_", False, False),
    "/v1/subscription_schedules": ("subscription_schedule", "sub_sched_", False, False),
    "/v1/invoices": ("invoice", "in_", False, False),
    "/v1/disputes": ("dispute", "dp_", False, False),
    "/v1/credit_notes": ("credit_note", "cn_", False, False),
    "/v1/checkout/sessions": ("checkout.session", "cs_test_", False, False),
    "/v1/radar/early_fraud_warnings": ("radar.early_fraud_warning", "issfr_", False, False),
    "/v1/invoiceitems": ("invoiceitem", "ii_", True, True),
    "/v1/payment_intents": ("payment_intent", "pi_", False, False),
    "/v1/setup_intents": ("setup_intent", "seti_", False, False),
    "/v1/charges": ("charge", "ch_", False, False),
    "/v1/refunds": ("refund", "re_", False, False),
    # Listed per customer (/v1/customers/{id}/payment_methods, .../tax_ids), retrieved here.
    "/v1/payment_methods": ("payment_method", "pm_", False, False),
    "/v1/tax_ids": ("tax_id", "txi_", False, True),
    "/v1/accounts": ("account", "acct_", False, False),
    "/v1/events": ("event", "evt_", False, False),
    "/v1/balance_transactions": ("balance_transaction", "txn_", False, False),
    "/v1/payouts": ("payout", "po_", False, False),
    "/v1/transfers": ("transfer", "tr_", False, False),
    "/v1/application_fees": ("application_fee", "fee_", False, False),
    "/v1/invoice_payments": ("invoice_payment", "inpay_", False, False),
    "/v1/promotion_codes": ("promotion_code", "promo_", False, False),
    "/v1/tax_rates": ("tax_rate", "txr_", False, False),
    "/v1/quotes": ("quote", "qt_", False, False),
    "/v1/reviews": ("review", "prv_", False, False),
    "/v1/billing/meters": ("billing.meter", "mtr_", False, False),
    "/v1/entitlements/features": ("entitlements.feature", "feat_", False, False),
    # Not a Stripe path: where the stand-in keeps them. Stripe lists and retrieves them under
    # their customer only (/v1/customers/{id}/balance_transactions[/{id}]).
    "/v1/customer_balance_transactions": ("customer_balance_transaction", "cbtxn_", False, False),
}
NOT_TOP_LEVEL = {"/v1/customer_balance_transactions"}
# Lists of one customer's objects: sub-path -> the collection holding them.
PER_CUSTOMER = {"payment_methods": "/v1/payment_methods", "tax_ids": "/v1/tax_ids",
                "balance_transactions": "/v1/customer_balance_transactions"}
# parent object -> (embedded field, child fixture, child id prefix, the child's field naming its parent).
# The rest of a list: /v1/subscription_items?subscription={id}, else {parent's collection}/{id}/{field}.
CHILDREN = {"subscription": ("items", "subscription_item", "si_", "subscription"),
            "invoice": ("lines", "line_item", "il_", "invoice"),
            "credit_note": ("lines", "credit_note_line_item", "cnli_", None),
            "transfer": ("reversals", "transfer_reversal", "trr_", "transfer"),
            "application_fee": ("refunds", "fee_refund", "fr_", "fee")}
LIST_FILTERS = {"/v1/subscriptions": {"status", "customer", "price"}, "/v1/invoices": {"status", "customer", "subscription"},
                "/v1/customers": {"email"}, "/v1/prices": {"active", "product", "type"}, "/v1/products": {"active"},
                "/v1/events": {"type"}, "/v1/balance_transactions": {"type"}, "/v1/payouts": {"status"},
                "/v1/invoice_payments": {"invoice", "status"}, "/v1/quotes": {"customer", "status"},
                "/v1/promotion_codes": {"customer"}, "/v1/billing/meters": {"status"},
                "/v1/customer_balance_transactions": {"invoice"}}
# Lists that take no created filter at Stripe (a created[...] is an unknown parameter there).
NO_CREATED_FILTER = {"/v1/quotes", "/v1/billing/meters", "/v1/entitlements/features"}
# Objects that have no created time at Stripe: the stand-in keeps one for their list order only.
NO_CREATED = {"entitlements.feature"}
EMBEDDED = 10
EQUAL_FILTERS = ("email", "customer", "product", "type", "subscription", "invoice")  # list parameters matched as is
CREATED_PARAMS = ("created", "created[gte]", "created[gt]", "created[lte]", "created[lt]")
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


COLLECTION = {name: path for path, (name, *_) in RESOURCES.items()}  # object -> its collection


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(n))


class StripeError(Exception):
    def __init__(self, status: int, message: str, code: Optional[str] = None, param: Optional[str] = None,
                 type: str = "invalid_request_error"):
        super().__init__(message)
        self.status = status
        self.body = {"error": {k: v for k, v in
                               {"type": type, "code": code, "message": message, "param": param}.items() if v}}


def route_of(method: str, path: str, params: dict) -> str:
    """A request's label in the log: its path with object ids as {id} (``GET /v1/customers/{id}``,
    ``GET /v1/customers/{id}/balance_transactions/{id}``), and ``?email=`` for a look-up by email."""
    parts = path.rstrip("/").split("/")
    for i in range(3, len(parts)):
        if (("/".join(parts[:i]) in RESOURCES or "/".join(parts[:i]) == V2_EVENTS) and parts[i] != "search") \
                or (i == 5 and parts[4] in PER_CUSTOMER):
            parts[i] = "{id}"
    lookup = "?email=" if method == "GET" and "email" in params else ""
    return f"{method} {'/'.join(parts)}{lookup}"


class StandIn(LocalServer, Extras):
    def __init__(self, port: int = 0, start_created: Optional[int] = None, indent: Optional[int] = 2):
        """``indent``: of the JSON answers, 2 as Stripe's; None for compact ones, as the pages of
        add_pages() are (three times cheaper to write)."""
        self.indent = indent
        self.fixtures = json.loads(FIXTURES.read_text())["resources"]
        self.objects: dict[str, dict[str, dict]] = {p: {} for p in RESOURCES}  # path -> id -> object
        self.deleted: dict[str, str] = {}  # id -> path, for ids deleted (stub) or dropped (404)
        self.stubs: dict[str, dict] = {}  # id -> what retrieving a deleted object answers
        self.keys: dict[str, tuple[int, str]] = {}  # id -> (created, id): list order, kept after deletion
        self.children: dict[str, list[dict]] = {}  # parent id -> full child list
        self.pages: dict[str, standin_pages.Pages] = {}  # path -> read-only collection (add_pages)
        self.page_lines: dict[str, bytes] = {}  # invoice id of those -> its line items' list
        self.posted: list[tuple[float, str]] = []  # (time.monotonic(), id) of each customer created by POST
        self.idempotent: dict[str, tuple[int, bytes]] = {}  # Idempotency-Key -> the answer given
        self.log: list[dict] = []
        self.clock = start_created or int(time.time()) - 30 * 86400
        self.opened = self.clock - 1  # the account's creation: before any object of it
        self.lock = threading.RLock()
        self.start_extras()
        self._listen(type("Handler", (_Handler,), {"api": self}), port)

    # -- objects ----------------------------------------------------------
    def add(self, path: str, n: int = 1, vary: Optional[Callable[[int, dict], None]] = None,
            per_second: int = 2, children: int = 1, account: Optional[str] = None) -> list[dict]:
        """Adds ``n`` objects at ``path``; ``created`` grows by one second every
        ``per_second`` objects (so some share a second, as on Stripe). ``vary(i, obj)``
        edits each before it is stored. Subscriptions and invoices get ``children``
        items / lines. With ``account`` (acct_...) the objects belong to that connected
        account: only requests with its Stripe-Account header see them. Returns the
        objects as served."""
        name, prefix, _, _ = RESOURCES[path]
        made = []
        with self.lock:
            for i in range(n):
                obj = copy.deepcopy(self.fixtures[name])
                obj["id"] = new_id(prefix, 8 if name == "coupon" else 24)
                if i % per_second == 0:
                    self.clock += 1
                obj["created"] = self.clock
                if name in CHILDREN:
                    obj.pop(CHILDREN[name][0], None)
                    self.children[obj["id"]] = []
                    self.add_children(obj["id"], children, _parent=obj)
                if vary:
                    vary(i, obj)
                if account:
                    obj["_account"] = account
                self.objects[path][obj["id"]] = obj
                self.keys[obj["id"]] = (obj["created"], obj["id"])
                made.append(self.render(obj))
        return made

    def add_children(self, parent_id: str, n: int, _parent: Optional[dict] = None) -> list[dict]:
        with self.lock:
            parent = _parent or self.get(parent_id)
            _, fixture, prefix, parent_field = CHILDREN[parent["object"]]
            new = []
            for _ in range(n):
                item = copy.deepcopy(self.fixtures[fixture])
                item["id"] = new_id(prefix, 14)
                if parent_field:
                    item[parent_field] = parent_id
                new.append(item)
            self.children[parent_id].extend(new)
            return new

    def remove_children(self, parent_id: str, ids: list[str]) -> None:
        with self.lock:
            self.children[parent_id] = [c for c in self.children[parent_id] if c["id"] not in set(ids)]

    def path_of(self, obj_id: str) -> str:
        for path, objs in self.objects.items():
            if obj_id in objs:
                return path
        if obj_id in self.deleted:
            return self.deleted[obj_id]
        raise KeyError(obj_id)

    def get(self, obj_id: str) -> dict:
        return self.objects[self.path_of(obj_id)][obj_id]

    def update(self, obj_id: str, **fields: Any) -> dict:
        with self.lock:
            obj = self.get(obj_id)
            obj.update(fields)
            return self.render(obj)

    def delete(self, obj_id: str, stub: Optional[bool] = None) -> None:
        """Deletes behind the client's back: no longer listed; retrieving it gives
        the deleted stub where Stripe does (customers, products, prices, plans,
        coupons) and 404 elsewhere or when ``stub=False``."""
        with self.lock:
            path = self.path_of(obj_id)
            obj = self.objects[path].pop(obj_id)
            self.deleted[obj_id] = path
            if stub is False or not RESOURCES[path][2]:
                return
            self.stubs[obj_id] = {"id": obj_id, "object": obj["object"], "deleted": True}

    def create_customer(self, form: dict, account: Optional[str] = None) -> dict:
        """What POST /v1/customers makes of its form (email, name, description, metadata[...])."""
        with self.lock:
            obj = copy.deepcopy(self.fixtures["customer"])
            obj.pop("discount", None)
            obj.update(id=new_id("cus_", 14), created=int(time.time()), email=form.get("email"),
                       name=form.get("name"), description=form.get("description"),
                       metadata={k[9:-1]: v for k, v in form.items() if k.startswith("metadata[") and k.endswith("]")})
            if account:
                obj["_account"] = account
            self.objects["/v1/customers"][obj["id"]] = obj
            self.keys[obj["id"]] = (obj["created"], obj["id"])
            self.posted.append((time.monotonic(), obj["id"]))
            return self.render(obj)

    def add_pages(self, customers: int, invoices: int, lines: int = 2, seed: int = 1) -> dict:
        """Adds the platform's customers and invoices (``lines`` line items each) as read-only
        collections whose pages are built now (standin_pages.build): they, not the objects added
        with add(), are what /v1/customers and /v1/invoices list from then on; a customer created
        by POST is found by email and by id. Returns what was built."""
        t0 = time.monotonic()
        pages, line_lists = standin_pages.build(self.fixtures, customers, invoices, lines, seed)
        with self.lock:
            self.pages.update(pages)
            self.page_lines.update(line_lists)
        c, i = pages["/v1/customers"], pages["/v1/invoices"]
        return {"customers": len(c.ids), "invoices": len(i.ids), "customer_pages": c.pages,
                "invoice_pages": i.pages, "customer_bytes": c.bytes, "invoice_bytes": i.bytes,
                "build_seconds": time.monotonic() - t0}

    def listed(self, path: str, account: Optional[str] = None, **params: str) -> list[dict]:
        """Every object a complete listing of ``path`` (of ``account``) returns, newest first."""
        with self.lock:
            return [self.render(o) for o in self._select(path, params, account)]

    # -- request log --------------------------------------------------------
    def requests(self, path: Optional[str] = None, method: str = "GET") -> list[dict]:
        with self.lock:
            return [r for r in self.log if r["method"] == method and (path is None or r["path"] == path)]

    def count(self, path: Optional[str] = None, method: str = "GET") -> int:
        return len(self.requests(path, method))

    def forget_requests(self) -> None:
        with self.lock:
            self.log.clear()

    def stats(self) -> dict:
        """Requests by label, the customers created by POST ((time.monotonic(), id), in order), and
        when the first and the last request came (time.monotonic())."""
        with self.lock:
            counts: dict[str, int] = {}
            for r in self.log:
                counts[r["label"]] = counts.get(r["label"], 0) + 1
            at = [r["at"] for r in self.log]
            return {"counts": counts, "created": list(self.posted), "first_request": min(at, default=None),
                    "last_request": max(at, default=None)}

    def reset(self) -> None:
        """Forgets the requests, and the customers created by POST with their Idempotency-Keys."""
        with self.lock:
            self.log.clear()
            self.idempotent.clear()
            for _, cid in self.posted:
                self.objects["/v1/customers"].pop(cid, None)
                self.keys.pop(cid, None)
            self.posted.clear()

    # -- API behaviour --------------------------------------------------------
    def add_event(self, event_type: str, obj: dict, account: Optional[str] = None,
                  created: Optional[int] = None) -> dict:
        """An event about ``obj`` (as served), listed by /v1/events of ``account``."""
        def vary(_: int, event: dict) -> None:
            event.update(type=event_type, data={"object": obj}, account=account,
                         api_version="2026-07-29.dahlia", pending_webhooks=0, request=None)
            if created is not None:
                event["created"] = created
            if account is None:
                event.pop("account")
        return self.add("/v1/events", vary=vary, account=account)[0]

    def render(self, obj: dict) -> dict:
        out = copy.deepcopy(obj)
        out.pop("_account", None)
        if obj["object"] in NO_CREATED:
            out.pop("created", None)
        if obj["object"] in CHILDREN:
            field = CHILDREN[obj["object"]][0]
            items = self.children[obj["id"]]
            url = (f"/v1/subscription_items?subscription={obj['id']}" if field == "items"
                   else f"{COLLECTION[obj['object']]}/{obj['id']}/{field}")
            out[field] = {"object": "list", "data": copy.deepcopy(items[:EMBEDDED]),
                          "has_more": len(items) > EMBEDDED, "total_count": len(items), "url": url}
        return out

    def _select(self, path: str, params: dict, account: Optional[str] = None) -> list[dict]:
        # The first equality filter goes with the account's, in one pass (an email look-up is
        # asked once per signup by provisioning, over every customer).
        key, value = next(((k, params[k]) for k in EQUAL_FILTERS if k in params), ("_account", account))
        objs = [o for o in self.objects[path].values() if o.get(key) == value and o.get("_account") == account]
        for op, test in (("gte", int.__ge__), ("gt", int.__gt__), ("lte", int.__le__), ("lt", int.__lt__)):
            if f"created[{op}]" in params:
                bound = _int(params[f"created[{op}]"], f"created[{op}]")
                objs = [o for o in objs if test(o["created"], bound)]
        if "created" in params:
            objs = [o for o in objs if o["created"] == _int(params["created"], "created")]
        status = params.get("status")
        if path == "/v1/subscriptions" and status is None:
            objs = [o for o in objs if o.get("status") != "canceled"]  # Stripe hides canceled ones by default
        elif status not in (None, "all"):
            objs = [o for o in objs if o.get("status") == status]
        for other in EQUAL_FILTERS:
            if other in params and other != key:
                objs = [o for o in objs if o.get(other) == params[other]]
        return sorted(objs, key=lambda o: (o["created"], o["id"]), reverse=True)

    def serve(self, method: str, path: str, params: dict, headers: Any) -> tuple[int, bytes, str]:
        """One request (a POST's form fields among its params): (status, body, label), logged."""
        at = time.monotonic()
        auth = headers.get("Authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else ""
        # v2 requests name the account they act for in Stripe-Context.
        account = headers.get("Stripe-Context" if path.startswith("/v2/") else "Stripe-Account")
        idempotency_key = headers.get("Idempotency-Key") if method == "POST" else None
        label = route_of(method, path, params)
        try:
            if not key:
                raise StripeError(401, "You did not provide an API key. You need to provide your API key in "
                                       "the Authorization header, using Bearer auth.")
            if not key.startswith(("sk_", "rk_")):
                raise StripeError(401, f"Invalid API Key provided: {key[:8]}****{key[-4:]}")
            fast = None if account else self._from_pages(method, path, params)
            if fast is not None:
                status, body, label = fast
            else:
                with self.lock:
                    if idempotency_key in self.idempotent:
                        status, body = self.idempotent[idempotency_key]
                    else:
                        # Tests replace handle() with a function of three arguments: pass the
                        # account only when there is one.
                        extra = {"account": account} if account else {}
                        status, body = 200, self._json(self.handle(method, path, params, **extra))
                        if idempotency_key:
                            self.idempotent[idempotency_key] = status, body
        except StripeError as e:
            status, body = e.status, self._json(e.body)
            label += f" ({status})"
        with self.lock:
            self.log.append({"method": method, "path": path, "params": params, "label": label,
                             "version": headers.get("Stripe-Version"), "account": account, "at": at})
        return status, body, label

    def _json(self, answer: dict) -> bytes:
        if self.indent is None:
            return standin_pages.dumps(answer)
        return json.dumps(answer, indent=self.indent).encode()

    def _from_pages(self, method: str, path: str, params: dict) -> Optional[tuple[int, bytes, str]]:
        """The answer from a collection of add_pages(), or None when the request is not for one."""
        if method != "GET" or not self.pages:
            return None
        pages = self.pages.get(path)
        if pages is not None and "email" not in params:
            limit = _int(params.get("limit", "10"), "limit")
            if not 1 <= limit <= 100:
                raise StripeError(400, "Invalid limit: must be between 1 and 100", "parameter_invalid_integer", "limit")
            bounds = {op: _int(params[f"created[{op}]"], f"created[{op}]")
                      for op in ("gte", "lt") if f"created[{op}]" in params}
            cursor = params.get("starting_after")
            if bounds:
                page = pages.filtered_page(limit, cursor, bounds.get("gte"), bounds.get("lt"))
                what = "probe" if limit == 1 else "slice page"
            else:
                page, what = pages.page(limit, cursor), "page"
            if page is None:
                raise StripeError(400, f"No such object: '{cursor}'", "resource_missing", "starting_after")
            return 200, page, f"GET {path} ({what})"
        parts = path.split("/")
        parent = "/".join(parts[:3])
        if len(parts) == 4 and parent in self.pages and parts[3] in self.pages[parent].index:
            pages = self.pages[parent]
            return 200, pages.encoded[pages.index[parts[3]]], f"GET {parent}/{{id}}"
        if len(parts) == 5 and parent == "/v1/invoices" and parts[4] == "lines" and parts[3] in self.page_lines:
            return 200, self.page_lines[parts[3]], "GET /v1/invoices/{id}/lines"
        return None

    def handle(self, method: str, path: str, params: dict, account: Optional[str] = None) -> dict:
        extra = self.handle_extra(method, path, params, account)
        if extra is not None:
            return extra
        parts = path.rstrip("/").split("/")
        if path == "/v1/account" and method == "GET":
            oldest = [-max(p.neg_created) for p in self.pages.values() if p.neg_created]
            return {"id": account or "acct_standin", "object": "account", "created": min([self.opened, *oldest])}
        if path == "/v1/customers" and method == "POST":
            return self.create_customer(params, account)
        if path == "/v1/customers/search" and method == "GET":
            return {"object": "search_result", "data": [], "has_more": False, "next_page": None, "url": path}
        if (len(parts) == 5 and parts[:3] == ["", "v1", "customers"] and parts[4] in PER_CUSTOMER
                and method == "GET"):
            if parts[3] not in self.objects["/v1/customers"]:
                raise StripeError(404, f"No such customer: '{parts[3]}'", "resource_missing", "customer")
            collection = PER_CUSTOMER[parts[4]]
            self._check(params, LIST_FILTERS.get(collection, set()))
            mine = self._select(collection, {**params, "customer": parts[3]}, account)
            return self._page(mine, params, path, keyed=True)
        if (len(parts) == 6 and parts[:3] == ["", "v1", "customers"] and parts[4] == "balance_transactions"
                and method == "GET"):
            found = self.objects["/v1/customer_balance_transactions"].get(parts[5])
            if not found or found.get("customer") != parts[3] or found.get("_account") != account:
                raise StripeError(404, f"No such customer balance transaction: '{parts[5]}'", "resource_missing", "id")
            return self.render(found)
        if path == "/v1/payment_methods" and method == "GET":
            # Without a customer Stripe lists Treasury's payment methods: not these.
            raise StripeError(400, "Missing required param: customer.", "parameter_missing", "customer")
        if path == "/v1/subscription_items" and method == "GET":
            self._check(params, {"subscription"})
            if "subscription" not in params:
                raise StripeError(400, "Missing required param: subscription.", "parameter_missing", "subscription")
            sub = params["subscription"]
            if sub not in self.objects["/v1/subscriptions"]:
                raise StripeError(404, f"No such subscription: '{sub}'", "resource_missing", "subscription")
            return self._page(self.children[sub], params, path, keyed=False)
        parent_path = "/".join(parts[:3])
        if (len(parts) == 5 and method == "GET" and parent_path in RESOURCES
                and CHILDREN.get(RESOURCES[parent_path][0], ("",))[0] == parts[4]):
            self._check(params, set())
            parent = self.objects[parent_path].get(parts[3])
            if parent is None or parent.get("_account") != account:
                name = RESOURCES[parent_path][0].replace("_", " ")
                raise StripeError(404, f"No such {name}: '{parts[3]}'", "resource_missing", "id")
            return self._page(self.children[parts[3]], params, path, keyed=False)
        if path in RESOURCES and path not in NOT_TOP_LEVEL and method == "GET":
            self._check(params, LIST_FILTERS.get(path, set()), created=path not in NO_CREATED_FILTER)
            listed = self._select(path, params, account)
            if path == "/v1/tax_ids":  # the account's own tax ids, not its customers'
                listed = [o for o in listed if not o.get("customer")]
            return self._page(listed, params, path, keyed=True)
        parent, _, obj_id = path.rpartition("/")
        if parent in RESOURCES and parent not in NOT_TOP_LEVEL and method in ("GET", "DELETE"):
            name, _, _, deletable = RESOURCES[parent]
            if obj_id in self.objects[parent] and self.objects[parent][obj_id].get("_account") == account:
                if method == "DELETE":
                    if not deletable:
                        raise StripeError(404, f"Unrecognized request URL (DELETE: {path}).")
                    self.delete(obj_id)
                    return self.stubs[obj_id]
                return self.render(self.objects[parent][obj_id])
            stub = self.stubs.get(obj_id)
            if stub and self.deleted.get(obj_id) == parent and method == "GET":
                return stub
            raise StripeError(404, f"No such {name.replace('_', ' ')}: '{obj_id}'", "resource_missing", "id")
        raise StripeError(404, f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
                               "or we can help at https://support.stripe.com/.")

    @staticmethod
    def _check(params: dict, allowed: set, created: bool = True) -> None:
        common = {"limit", "starting_after", "ending_before", "expand[]", *(CREATED_PARAMS if created else ())}
        for key in params:
            if key not in common | allowed:
                raise StripeError(400, f"Received unknown parameter: {key}", "parameter_unknown", key)

    def _page(self, items: list[dict], params: dict, url: str, keyed: bool) -> dict:
        """One page of ``items`` (already in list order). Top-level lists are keyed by
        (created, id), so a cursor keeps its place even once its object is gone."""
        limit = _int(params.get("limit", "10"), "limit")
        if not 1 <= limit <= 100:
            raise StripeError(400, "Invalid limit: must be between 1 and 100", "parameter_invalid_integer", "limit")
        cursor_param = next((k for k in ("starting_after", "ending_before") if k in params), None)
        if cursor_param is None:
            page, more = items[:limit], len(items) > limit
        else:
            cursor = params[cursor_param]
            if keyed and cursor in self.keys:
                ck = self.keys[cursor]
                after = [o for o in items if (o["created"], o["id"]) < ck]
                before = [o for o in items if (o["created"], o["id"]) > ck]
            elif not keyed and cursor in (ids := [o["id"] for o in items]):
                after, before = items[ids.index(cursor) + 1:], items[:ids.index(cursor)]
            else:
                raise StripeError(400, f"No such object: '{cursor}'", "resource_missing", cursor_param)
            if cursor_param == "starting_after":
                page, more = after[:limit], len(after) > limit
            else:
                page, more = before[-limit:], len(before) > limit
        data = [self.render(o) if keyed else copy.deepcopy(o) for o in page]
        return {"object": "list", "data": data, "has_more": more, "url": url}


def _int(value: str, param: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise StripeError(400, f"Invalid integer: {value}", "parameter_invalid_integer", param) from None


class _Handler(BaseHTTPRequestHandler):
    api: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        params = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length) if length else b""
        if url.path.startswith("/_standin/"):
            if url.path == "/_standin/reset" and self.command == "POST":
                self.api.reset()
                return self._answer(200, b'{"ok":true}')
            if url.path == "/_standin/stats":
                return self._answer(200, standin_pages.dumps(self.api.stats()))
            return self._answer(404, standin_pages.dumps(StripeError(404, "unknown stand-in endpoint").body))
        if self.command == "POST":  # Stripe reads a POST's parameters from its form body
            params.update(urllib.parse.parse_qsl(form.decode(), keep_blank_values=True))
        status, body, _ = self.api.serve(self.command, url.path, params, self.headers)
        self._answer(status, body)

    def _answer(self, status: int, body: bytes) -> None:
        # Head and body in one write: a second, small one would wait for the client's delayed ACK.
        head = (f"HTTP/1.1 {status} {self.responses.get(status, ('Error',))[0]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                f"Request-Id: {new_id('req_', 14)}\r\n\r\n").encode()
        self.wfile.write(head + body)

    do_GET = do_DELETE = do_POST = _serve


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--invoices", type=int, default=20_000)
    ap.add_argument("--lines", type=int, default=2, help="line items embedded in each invoice")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    api = StandIn(args.port, indent=None)
    serve_until_killed(api, api.add_pages(args.customers, args.invoices, args.lines, args.seed))
    return 0


def serve_until_killed(api: StandIn, info: dict) -> None:
    """Prints one JSON line (the port and `info`) once listening, then serves until killed."""
    print(json.dumps({"port": api.port, **info}), flush=True)
    try:
        api.thread.join()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
