"""Read-only collections of the Stripe stand-in (standin.py) whose list pages are built once, at
start, as the exact bytes to send: a page then costs one dictionary look-up and one write, where the
stand-in's own collections sort, filter and deep-copy the whole collection for every page
(O(collection) per page, far too slow to be anything but the bound of a 50,000-object backfill).

``build(fixtures, customers, invoices, lines, seed)`` makes the two that bench/run.py backfills:
customers, several to a second and one in four with a discount, and invoices with ``lines`` line
items embedded (complete: ``lines.has_more`` false), every object from the API's own examples
(fixtures3.json) with fresh ids, emails, names and metadata, ``created`` decreasing down the list
(lists are newest first) and ending a minute ago. The same seed gives the same objects but their
``created``. Pages for a limit other than 100, or of a range of ``created``, are built on request
from the encoded objects.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import time
from typing import Any, Optional

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


class Pages:
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


def build(fixtures: dict, customers: int, invoices: int, lines: int = 2,
          seed: int = 1) -> tuple[dict[str, Pages], dict[str, bytes]]:
    """({"/v1/customers": ..., "/v1/invoices": ...}, invoice id -> its line items' list as bytes)."""
    rnd = random.Random(seed)
    rid = random.Random(seed + 1)

    def new_id(prefix: str, n: int) -> str:
        return prefix + "".join(rid.choice(ALPHABET) for _ in range(n))

    enc = json.dumps
    now = int(time.time())
    # Customers: several share a second, as on Stripe; one in four has a discount.
    tc = Template(fixtures["customer"], ["id", "created", "email", "name", "description", "balance",
                                         "metadata", "discount"])
    discount = enc(fixtures["customer"]["discount"], separators=(",", ":"))
    cus_ids, cus_enc, cus_who, cus_created = [], [], [], []
    for i in range(customers):
        cid = new_id("cus_", 14)
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
    line_lists: dict[str, bytes] = {}
    for i in range(invoices):
        iid = new_id("in_", 24)
        created = now - 60 - i // 2
        cid, email, name = cus_who[rnd.randrange(len(cus_who))] if cus_who else (new_id("cus_", 14), None, None)
        status = rnd.choice(statuses)
        amounts = [rnd.choice([500, 1000, 2500, 9900]) for _ in range(lines)]
        total = sum(amounts)
        paid = total if status == "paid" else 0
        period = f'{{"end":{created + 30 * 86400},"start":{created}}}'
        items = ",".join(tl.render({"id": f'"{new_id("il_", 24)}"', "invoice": f'"{iid}"', "amount": str(a),
                                    "subtotal": str(a), "period": period}) for a in amounts)
        lines_json = (f'{{"object":"list","data":[{items}],"has_more":false,"total_count":{lines},'
                      f'"url":"/v1/invoices/{iid}/lines"}}')
        line_lists[iid] = lines_json.encode()
        inv_ids.append(iid)
        inv_created.append(created)
        inv_enc.append(ti.render({
            "id": f'"{iid}"', "created": str(created), "customer": f'"{cid}"', "customer_email": enc(email),
            "customer_name": enc(name), "status": f'"{status}"', "number": f'"BENCH-{i:07d}"',
            "amount_due": str(total), "amount_paid": str(paid), "amount_remaining": str(total - paid),
            "subtotal": str(total), "subtotal_excluding_tax": str(total), "total": str(total),
            "total_excluding_tax": str(total), "lines": lines_json,
        }).encode())
    return ({"/v1/customers": Pages("/v1/customers", cus_ids, cus_enc, cus_created),
             "/v1/invoices": Pages("/v1/invoices", inv_ids, inv_enc, inv_created)}, line_lists)
