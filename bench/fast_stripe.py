#!/usr/bin/env python3
"""A fast stand-in for api.stripe.com, for bench/run.py's backfill and provisioning measures.

pgrx-tests/standin.py behaves like Stripe in detail but builds every page on request (it sorts,
filters and deep-copies the whole collection under one lock, then pretty-prints the JSON), which
costs O(collection) per page: far too slow to be anything but the bound of a 50,000-object backfill.
This one builds every list page once, at start, as the exact bytes to send, and answers a page with
one dictionary look-up and one write:

  GET  /v1/customers?limit=100[&starting_after=ID]   pre-built pages of --customers objects
  GET  /v1/invoices?limit=100[&starting_after=ID]    pre-built pages of --invoices objects, each
                                                     with its --lines line items embedded
                                                     (lines.has_more false: no /lines requests)
       (either, with created[gte] and/or created[lt]: the pages of that range, built on request;
        limit=1 is counted as a probe)
  GET  /v1/invoices/ID/lines                         the same lines, for completeness
  GET  /v1/customers/ID, /v1/invoices/ID             retrieve (404 for unknown ids)
  GET  /v1/customers?email=E                         provisioning's look-up: the customers this
                                                     server created with that email (none at first)
  GET  /v1/customers/search?query=...                an empty search result
  GET  /v1/events                                    an empty list (the worker's catch-up finds nothing)
  POST /v1/customers                                 creates a customer from the form (email, name,
                                                     metadata[...]); the same Idempotency-Key gives
                                                     back the same customer, as Stripe does
  GET  /_bench/stats, POST /_bench/reset             counters (not counted themselves)

Objects start from the API's own examples (shared/stripe/openapi/fixtures3.json) with fresh ids,
emails, names and metadata, and `created` decreasing down the list (lists are newest first). Every
request needs `Authorization: Bearer sk_...`. Pages for a limit other than 100 are built on request.

Run as a program it prints one JSON line ({"port": ..., "customers": ..., ...}) once it listens, then
serves until killed:

    python bench/fast_stripe.py --customers 50000 --invoices 20000
"""
from __future__ import annotations

import argparse
import bisect
import copy
import json
import random
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "stripe" / "openapi" / "fixtures3.json"
PAGE = 100
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Template:
    """A fixture as JSON text with some top-level fields left open: rendering one object is a
    join of strings (about 30 times faster than copying the fixture and json.dumps-ing it)."""

    def __init__(self, fixture: dict, fields: list[str]):
        o = dict(fixture)
        for f in fields:
            o[f] = f"@@{f}@@"
        self.parts = re.split(r'"@@(\w+)@@"', json.dumps(o, separators=(",", ":")))

    def render(self, values: dict[str, str]) -> str:
        """`values`: field -> its JSON text."""
        out = []
        for i, part in enumerate(self.parts):
            out.append(values[part] if i % 2 else part)
        return "".join(out)


class Collection:
    """One list endpoint's objects (JSON bytes), newest first, and its pages of 100 as bytes."""

    def __init__(self, path: str, ids: list[str], encoded: list[bytes], created: list[int]):
        self.path = path
        self.ids = ids
        self.encoded = encoded
        self.neg_created = [-c for c in created]  # ascending, for bisect (created is newest first)
        self.index = {oid: i for i, oid in enumerate(ids)}
        self.first = self._page_bytes(0, PAGE)
        self.after: dict[str, bytes] = {}  # last id of a page -> the next page
        for start in range(PAGE, len(ids), PAGE):
            self.after[ids[start - 1]] = self._page_bytes(start, PAGE)
        self.pages = 1 + len(self.after)
        self.bytes = len(self.first) + sum(len(b) for b in self.after.values())

    def _page_bytes(self, start: int, limit: int, end: Optional[int] = None) -> bytes:
        end = len(self.encoded) if end is None else end
        items = self.encoded[start:min(start + limit, end)]
        more = start + limit < end
        return (b'{"object":"list","data":[' + b",".join(items) + b'],"has_more":'
                + (b"true" if more else b"false") + b',"url":"' + self.path.encode() + b'"}')

    def page(self, limit: int, starting_after: Optional[str]) -> Optional[bytes]:
        """The page, or None for an unknown cursor."""
        if limit == PAGE:
            if starting_after is None:
                return self.first
            if starting_after in self.after:
                return self.after[starting_after]
        if starting_after is None:
            return self._page_bytes(0, limit)
        i = self.index.get(starting_after)
        return None if i is None else self._page_bytes(i + 1, limit)

    def filtered_page(self, limit: int, starting_after: Optional[str], gte: Optional[int],
                      lt: Optional[int]) -> Optional[bytes]:
        """A page of the objects with gte <= created < lt (either bound optional), built on
        request from the encoded objects; None for an unknown cursor."""
        lo = 0 if lt is None else bisect.bisect_right(self.neg_created, -lt)  # first created < lt
        hi = len(self.encoded) if gte is None else bisect.bisect_right(self.neg_created, -gte)  # first created < gte
        start = lo
        if starting_after is not None:
            i = self.index.get(starting_after)
            if i is None:
                return None
            start = max(lo, i + 1)
        return self._page_bytes(min(start, hi), limit, hi)


class FastStripe:
    def __init__(self, customers: int, invoices: int, lines: int = 2, seed: int = 1):
        t0 = time.monotonic()
        fixtures = json.loads(FIXTURES.read_text())["resources"]
        rnd = random.Random(seed)
        self._rid = random.Random(seed + 1)
        self.customer_fixture = fixtures["customer"]
        enc = json.dumps
        now = int(time.time())
        # Customers: several share a second, as on Stripe; one in four has a discount.
        tc = Template(fixtures["customer"], ["id", "created", "email", "name", "description", "balance",
                                             "metadata", "discount"])
        discount = enc(fixtures["customer"]["discount"], separators=(",", ":"))
        cus_ids, cus_enc, cus_who, cus_created = [], [], [], []
        for i in range(customers):
            cid = self.new_id("cus_", 14)
            cus_ids.append(cid)
            cus_who.append((cid, f"customer{i}@example.com", f"Customer {i}"))
            cus_created.append(now - 60 - i // 3)
            cus_enc.append(tc.render({
                "id": f'"{cid}"', "created": str(cus_created[-1]), "email": f'"customer{i}@example.com"',
                "name": f'"Customer {i}"', "description": rnd.choice(['null', '"imported"', '"enterprise plan"']),
                "balance": rnd.choice(["0", "0", "0", "-500", "1200"]),
                "metadata": f'{{"account_number":"{100000 + i}"}}', "discount": "null" if i % 4 else discount,
            }).encode())
        # Invoices, each with `lines` line items embedded (complete: has_more false).
        ti = Template(fixtures["invoice"], ["id", "created", "customer", "customer_email", "customer_name", "status",
                                            "number", "amount_due", "amount_paid", "amount_remaining", "subtotal",
                                            "subtotal_excluding_tax", "total", "total_excluding_tax", "lines"])
        tl = Template(fixtures["line_item"], ["id", "invoice", "amount", "subtotal", "period"])
        statuses = ["paid", "paid", "paid", "open", "draft", "void", "uncollectible"]
        inv_ids, inv_enc, inv_created = [], [], []
        self.lines: dict[str, bytes] = {}
        for i in range(invoices):
            iid = self.new_id("in_", 24)
            created = now - 60 - i // 2
            cid, email, name = cus_who[rnd.randrange(len(cus_who))] if cus_who else (self.new_id("cus_", 14), None, None)
            status = rnd.choice(statuses)
            amounts = [rnd.choice([500, 1000, 2500, 9900]) for _ in range(lines)]
            total = sum(amounts)
            paid = total if status == "paid" else 0
            period = f'{{"end":{created + 30 * 86400},"start":{created}}}'
            items = ",".join(tl.render({"id": f'"{self.new_id("il_", 24)}"', "invoice": f'"{iid}"', "amount": str(a),
                                        "subtotal": str(a), "period": period}) for a in amounts)
            lines_json = (f'{{"object":"list","data":[{items}],"has_more":false,"total_count":{lines},'
                          f'"url":"/v1/invoices/{iid}/lines"}}')
            self.lines[iid] = lines_json.encode()
            inv_ids.append(iid)
            inv_created.append(created)
            inv_enc.append(ti.render({
                "id": f'"{iid}"', "created": str(created), "customer": f'"{cid}"', "customer_email": enc(email),
                "customer_name": enc(name), "status": f'"{status}"', "number": f'"BENCH-{i:07d}"',
                "amount_due": str(total), "amount_paid": str(paid), "amount_remaining": str(total - paid),
                "subtotal": str(total), "subtotal_excluding_tax": str(total), "total": str(total),
                "total_excluding_tax": str(total), "lines": lines_json,
            }).encode())
        self.collections = {"/v1/customers": Collection("/v1/customers", cus_ids, cus_enc, cus_created),
                            "/v1/invoices": Collection("/v1/invoices", inv_ids, inv_enc, inv_created)}
        self.build_seconds = time.monotonic() - t0
        self.lock = threading.Lock()
        self.reset()

    def new_id(self, prefix: str, n: int) -> str:
        return prefix + "".join(self._rid.choice(ALPHABET) for _ in range(n))

    def reset(self) -> None:
        with self.lock:
            self.counts: dict[str, int] = {}
            self.created: list[tuple[float, str]] = []  # (time.monotonic(), id) of each POST that created
            self.by_key: dict[str, bytes] = {}  # Idempotency-Key -> the answer
            self.by_email: dict[str, list[dict]] = {}
            self.first_request: Optional[float] = None
            self.last_request: Optional[float] = None

    def stats(self) -> dict:
        with self.lock:
            return {"counts": dict(self.counts), "created": list(self.created), "first_request": self.first_request,
                    "last_request": self.last_request}

    def count(self, key: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1
            if self.first_request is None:
                self.first_request = now
            self.last_request = now

    # -- provisioning ------------------------------------------------------------
    def create_customer(self, form: dict[str, str], key: Optional[str]) -> bytes:
        with self.lock:
            if key and key in self.by_key:
                return self.by_key[key]
            o = copy.deepcopy(self.customer_fixture)
            o.pop("discount", None)
            o["id"] = self.new_id("cus_", 14)
            o["created"] = int(time.time())
            o["email"] = form.get("email")
            o["name"] = form.get("name")
            o["description"] = form.get("description")
            o["metadata"] = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[") and k.endswith("]")}
            body = dumps(o)
            if key:
                self.by_key[key] = body
            if o["email"]:
                self.by_email.setdefault(o["email"], []).append(o)
            self.created.append((time.monotonic(), o["id"]))
            return body

    def customers_by_email(self, email: str, limit: int) -> bytes:
        with self.lock:
            found = list(reversed(self.by_email.get(email, [])))
        return dumps({"object": "list", "data": found[:limit], "has_more": len(found) > limit,
                      "url": "/v1/customers"})


def error(status: int, message: str, code: Optional[str] = None, param: Optional[str] = None) -> tuple[int, bytes]:
    err = {"type": "invalid_request_error", "message": message}
    if code:
        err["code"] = code
    if param:
        err["param"] = param
    return status, dumps({"error": err})


class Handler(BaseHTTPRequestHandler):
    api: FastStripe
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: bytes) -> None:
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}.get(status, "Error")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nRequest-Id: req_bench\r\n\r\n").encode()
        self.wfile.write(head + body)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        api = self.api
        if path.startswith("/_bench/"):
            if path == "/_bench/reset" and method == "POST":
                api.reset()
                return self._answer(200, b'{"ok":true}')
            if path == "/_bench/stats":
                return self._answer(200, dumps(api.stats()))
            return self._answer(*error(404, "unknown bench endpoint"))
        if not (self.headers.get("Authorization") or "").startswith("Bearer sk_"):
            api.count(f"{method} unauthorized")
            return self._answer(*error(401, "You did not provide a valid API key (Bearer sk_...)."))
        params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True)) if query else {}
        try:
            status, out, label = self._route(method, path, params, body)
        except ValueError as exc:
            status, out = error(400, str(exc))
            label = f"{method} {path} (invalid)"
        api.count(label)
        self._answer(status, out)

    def _route(self, method: str, path: str, params: dict, body: bytes) -> tuple[int, bytes, str]:
        api = self.api
        if method == "GET" and path in api.collections:
            if "email" in params:
                return 200, api.customers_by_email(params["email"], int(params.get("limit", "10"))), f"GET {path}?email="
            limit = int(params.get("limit", "10"))
            if not 1 <= limit <= 100:
                return (*error(400, "Invalid limit: must be between 1 and 100", "parameter_invalid_integer", "limit"),
                        f"GET {path} (invalid)")
            bounds = {}
            for op in ("gte", "lt"):
                if f"created[{op}]" in params:
                    try:
                        bounds[op] = int(params[f"created[{op}]"])
                    except ValueError:
                        return (*error(400, f"Invalid integer: {params[f'created[{op}]']}", "parameter_invalid_integer",
                                       f"created[{op}]"), f"GET {path} (invalid)")
            if bounds:
                page = api.collections[path].filtered_page(limit, params.get("starting_after"), bounds.get("gte"),
                                                           bounds.get("lt"))
                what = f"GET {path} ({'probe' if limit == 1 else 'slice page'})"
            else:
                page = api.collections[path].page(limit, params.get("starting_after"))
                what = f"GET {path} (page)"
            if page is None:
                return (*error(400, f"No such object: '{params['starting_after']}'", "resource_missing",
                               "starting_after"), f"GET {path} (bad cursor)")
            return 200, page, what
        if method == "GET" and path == "/v1/events":
            # A quiet account: the worker's own catch-up (stripe_sync.catch_up_interval) finds nothing.
            return 200, b'{"object":"list","data":[],"has_more":false,"url":"/v1/events"}', "GET /v1/events"
        if method == "GET" and path == "/v1/customers/search":
            return (200, b'{"object":"search_result","data":[],"has_more":false,"next_page":null,'
                         b'"url":"/v1/customers/search"}', "GET /v1/customers/search")
        if method == "POST" and path == "/v1/customers":
            form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
            return 200, api.create_customer(form, self.headers.get("Idempotency-Key")), "POST /v1/customers"
        parts = path.split("/")
        if method == "GET" and len(parts) == 5 and parts[2] == "invoices" and parts[4] == "lines":
            found = api.lines.get(parts[3])
            if found is None:
                return (*error(404, f"No such invoice: '{parts[3]}'", "resource_missing", "invoice"),
                        "GET /v1/invoices/{id}/lines (404)")
            return 200, found, "GET /v1/invoices/{id}/lines"
        parent = "/".join(parts[:3])
        if method == "GET" and len(parts) == 4 and parent in api.collections:
            coll = api.collections[parent]
            i = coll.index.get(parts[3])
            if i is not None:
                return 200, coll.encoded[i], f"GET {parent}/{{id}}"
            if parent == "/v1/customers":
                with api.lock:
                    made = [o for os_ in api.by_email.values() for o in os_ if o["id"] == parts[3]]
                if made:
                    return 200, dumps(made[0]), f"GET {parent}/{{id}}"
            return (*error(404, f"No such object: '{parts[3]}'", "resource_missing", "id"),
                    f"GET {parent}/{{id}} (404)")
        return (*error(404, f"Unrecognized request URL ({method}: {path})."), f"{method} {path} (unrouted)")


def serve(api: FastStripe, port: int = 0) -> ThreadingHTTPServer:
    handler = type("BoundHandler", (Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    return server


# --------------------------------------------------------------------------
# clients: the stand-in's own ceiling, measured by plain sequential loops
# --------------------------------------------------------------------------

def crawl(base: str, path: str, key: str = "sk_test_bench", parse: bool = True) -> dict:
    """Lists every page of `path` in order, one new connection per request (as the extension's
    client does), with urllib; with `parse`, each page is json.loads-ed to find the cursor (else
    the cursor is taken from the page's last `"id":"` with a string search). Returns objects,
    pages, seconds, bytes."""
    t0 = time.monotonic()
    after: Optional[str] = None
    objects = pages = size = 0
    while True:
        url = f"{base}{path}?limit=100" + (f"&starting_after={after}" if after else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        pages += 1
        size += len(raw)
        if parse:
            page = json.loads(raw)
            data, more = page["data"], page["has_more"]
            objects += len(data)
            after = data[-1]["id"] if data else None
        else:
            more = raw.endswith(b'"has_more":true,"url":"' + path.encode() + b'"}')
            objects += raw.count(b'"object":"' + (b"customer" if "customers" in path else b"invoice") + b'"')
            after = _last_top_level_id(raw)
        if not more or after is None:
            break
    return {"objects": objects, "pages": pages, "seconds": time.monotonic() - t0, "bytes": size}


def _last_top_level_id(raw: bytes) -> Optional[str]:
    """The id of the page's last object, found without parsing: the last `"id":"cus_` or
    `"id":"in_` in the body (line items' ids are il_, their parent is under "invoice")."""
    for prefix in (b'"id":"cus_', b'"id":"in_'):
        i = raw.rfind(prefix)
        if i >= 0:
            j = raw.index(b'"', i + 6)
            return raw[i + 6:j].decode()
    return None


def provision_loop(base: str, signups: int, key: str = "sk_test_bench") -> dict:
    """What provisioning asks per signup, in a plain sequential loop: GET /v1/customers?email=
    then POST /v1/customers with an Idempotency-Key. Returns signups, requests, seconds."""
    t0 = time.monotonic()
    auth = {"Authorization": f"Bearer {key}"}
    for i in range(signups):
        email = f"ceiling{i}@example.com"
        q = urllib.parse.urlencode({"email": email, "limit": 100})
        with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/customers?{q}", headers=auth), timeout=30) as r:
            json.loads(r.read())
        form = urllib.parse.urlencode({"email": email, "name": f"Ceiling {i}", "metadata[user_id]": str(i),
                                       "metadata[users_table]": "ceiling"}).encode()
        req = urllib.request.Request(f"{base}/v1/customers", data=form, method="POST",
                                     headers={**auth, "Idempotency-Key": f"ceiling-{i}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as r:
            json.loads(r.read())
    return {"signups": signups, "requests": 2 * signups, "seconds": time.monotonic() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=50_000)
    ap.add_argument("--invoices", type=int, default=20_000)
    ap.add_argument("--lines", type=int, default=2, help="line items embedded in each invoice")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    api = FastStripe(args.customers, args.invoices, args.lines, args.seed)
    server = serve(api, args.port)
    c, i = api.collections["/v1/customers"], api.collections["/v1/invoices"]
    print(json.dumps({"port": server.server_address[1], "customers": len(c.ids), "invoices": len(i.ids),
                      "customer_pages": c.pages, "invoice_pages": i.pages,
                      "customer_bytes": c.bytes, "invoice_bytes": i.bytes, "build_seconds": api.build_seconds}),
          flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
