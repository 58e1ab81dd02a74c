"""Reacting to applied events: SQL handlers (stripe_sync.on_event), Slack alerts,
the billing views (customer_billing_state, active_entitlements, mrr, mrr_history)
and the examples built on them (examples/dunning.sql, examples/entitlements.sql).

Three private clusters, one per concern, each shared by the tests of its part:

* ``hc``: handlers; max_attempts 5, retry_base_delay 100 ms, no Slack URL.
* ``slack``: alerts to a Slack stand-in (stripe_sync_testkit/slackstub.py); max_attempts 3.
* ``vc``: a 3000-event generated stream, for the views, compared with an
  independent computation from the same events.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any, Iterable, Iterator, Optional

import psycopg
import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.slackstub import SlackStub

API = "2024-06-20"
EXAMPLES = h.REPO_ROOT / "examples"

HANDLER_MAX_ATTEMPTS = 5
SLACK_MAX_ATTEMPTS = 3
ALERT_BURST = 20  # above the few alerts the tests send one by one within a minute


# --------------------------------------------------------------------------
# events and objects
# --------------------------------------------------------------------------

def ts(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def event(etype: str, obj: dict, created: Optional[int] = None, event_id: Optional[str] = None,
          previous: Optional[dict] = None, livemode: Optional[bool] = None) -> str:
    """A webhook delivery body (JSON text) for ``obj``."""
    ev: dict[str, Any] = {
        "id": event_id or h.new_id("evt_", 24),
        "object": "event",
        "api_version": API,
        "created": int(created if created is not None else time.time()),
        "data": {"object": obj},
        "livemode": bool(obj.get("livemode", False)) if livemode is None else livemode,
        "pending_webhooks": 1,
        "request": {"id": h.new_id("req_"), "idempotency_key": None},
        "type": etype,
    }
    if previous is not None:
        ev["data"]["previous_attributes"] = previous
    return json.dumps(ev, indent=2)


def eid(payload: str) -> str:
    return json.loads(payload)["id"]


def product_obj(name: str, metadata: Optional[dict] = None, product_id: Optional[str] = None,
                created: Optional[int] = None) -> dict:
    return {"id": product_id or h.new_id("prod_"), "object": "product", "active": True,
            "created": int(created or time.time()) - 100, "default_price": None, "description": None,
            "livemode": False, "metadata": metadata or {}, "name": name, "shippable": None,
            "statement_descriptor": None, "tax_code": None, "type": "service", "unit_label": None,
            "updated": int(created or time.time()) - 100, "url": None, "images": [], "marketing_features": []}


def price_obj(product: str, amount: Optional[int], currency: str, interval: str = "month",
              interval_count: int = 1, usage_type: str = "licensed", lookup_key: Optional[str] = None,
              metadata: Optional[dict] = None, billing_scheme: str = "per_unit",
              price_id: Optional[str] = None) -> dict:
    return {"id": price_id or h.new_id("price_", 24), "object": "price", "active": True,
            "billing_scheme": billing_scheme, "created": int(time.time()) - 100, "currency": currency,
            "custom_unit_amount": None, "livemode": False, "lookup_key": lookup_key,
            "metadata": metadata or {}, "nickname": None, "product": product,
            "recurring": {"interval": interval, "interval_count": interval_count, "meter": None,
                          "trial_period_days": None, "usage_type": usage_type},
            "tax_behavior": "unspecified", "tiers_mode": "graduated" if billing_scheme == "tiered" else None,
            "transform_quantity": None, "type": "recurring", "unit_amount": amount,
            "unit_amount_decimal": None if amount is None else str(amount)}


def coupon_obj(percent_off: Optional[float] = None, amount_off: Optional[int] = None,
               currency: Optional[str] = None) -> dict:
    return {"id": h.new_id("co_", 8), "object": "coupon", "amount_off": amount_off,
            "created": int(time.time()) - 1000, "currency": currency, "duration": "forever",
            "duration_in_months": None, "livemode": False, "max_redemptions": None, "metadata": {},
            "name": None, "percent_off": percent_off, "redeem_by": None, "times_redeemed": 1, "valid": True}


def subscription_obj(customer: str, status: str, currency: str, items: list[tuple[dict, int]],
                     discount_coupon: Optional[dict] = None, discount_end: Optional[int] = None,
                     sub_id: Optional[str] = None, created: Optional[int] = None) -> dict:
    """A subscription (2024-06-20 shape, as a webhook carries it) whose items embed their
    prices; with a coupon, ``discount`` embeds it and ``discounts`` lists the discount's id."""
    sid = sub_id or h.new_id("sub_", 24)
    now = int(created or time.time())
    cps, cpe = now - 3600, now + 30 * 86400
    data = [{"id": h.new_id("si_"), "object": "subscription_item", "created": now - 3600, "discounts": [],
             "metadata": {}, "price": price, "plan": None, "quantity": qty, "subscription": sid,
             "tax_rates": [], "billing_thresholds": None,
             "current_period_start": cps, "current_period_end": cpe} for price, qty in items]
    sub: dict[str, Any] = {
        "id": sid, "object": "subscription", "customer": customer, "status": status, "currency": currency,
        "created": now - 3600, "start_date": now - 3600, "billing_cycle_anchor": now - 3600,
        "cancel_at": None, "cancel_at_period_end": False, "canceled_at": None, "ended_at": None,
        "collection_method": "charge_automatically", "current_period_start": cps, "current_period_end": cpe,
        "default_payment_method": None, "latest_invoice": None, "livemode": False, "metadata": {},
        "schedule": None, "test_clock": None, "trial_start": None, "trial_end": None,
        "pause_collection": None, "discount": None, "discounts": [],
        "items": {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                  "url": f"/v1/subscription_items?subscription={sid}"},
    }
    if status == "trialing":
        sub["trial_start"], sub["trial_end"] = now - 3600, now + 14 * 86400
    if status == "canceled":
        sub["canceled_at"] = sub["ended_at"] = now
    if discount_coupon is not None:
        disc = {"id": h.new_id("di_"), "object": "discount", "checkout_session": None,
                "coupon": discount_coupon, "customer": customer, "end": discount_end, "invoice": None,
                "invoice_item": None, "promotion_code": None, "start": now - 86400 * 60, "subscription": sid}
        sub["discount"] = disc
        sub["discounts"] = [disc["id"]]
    return sub


def invoice_obj(customer: Optional[str], amount_due: int = 2900, currency: str = "usd",
                status: str = "open", attempt_count: int = 1, customer_email: Optional[str] = None,
                customer_name: Optional[str] = None, livemode: bool = False,
                invoice_id: Optional[str] = None, created: Optional[int] = None) -> dict:
    iid = invoice_id or h.new_id("in_", 24)
    now = int(created or time.time())
    paid = status == "paid"
    return {"id": iid, "object": "invoice", "customer": customer, "customer_email": customer_email,
            "customer_name": customer_name, "amount_due": amount_due,
            "amount_paid": amount_due if paid else 0, "amount_remaining": 0 if paid else amount_due,
            "subtotal": amount_due, "total": amount_due, "currency": currency, "status": status,
            "attempt_count": attempt_count, "attempted": attempt_count > 0,
            "billing_reason": "subscription_cycle", "collection_method": "charge_automatically",
            "created": now - 60, "period_start": now - 60, "period_end": now - 60, "due_date": None,
            "next_payment_attempt": None if paid else now + 3 * 86400, "hosted_invoice_url": None,
            "number": None, "subscription": None, "charge": None, "payment_intent": None,
            "status_transitions": {"finalized_at": now - 60, "paid_at": now if paid else None,
                                   "marked_uncollectible_at": None, "voided_at": None},
            "lines": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                      "url": f"/v1/invoices/{iid}/lines"},
            "livemode": livemode, "metadata": {}}


def dispute_obj(amount: int, currency: str, charge: Optional[str] = None) -> dict:
    now = int(time.time())
    return {"id": h.new_id("dp_", 24), "object": "dispute", "amount": amount, "currency": currency,
            "charge": charge or h.new_id("ch_", 24), "payment_intent": None, "created": now - 10,
            "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False, "past_due": False,
                                 "submission_count": 0},
            "is_charge_refundable": False, "livemode": False, "metadata": {}, "reason": "fraudulent",
            "status": "needs_response", "balance_transactions": []}


def customer_payload(cid: Optional[str] = None, email: Optional[str] = None, name: Optional[str] = None,
                     kind: str = "customer.created", created: Optional[int] = None, **fields: Any) -> str:
    cust = h.customer_object(customer_id=cid or h.new_id("cus_"), email=email, name=name,
                             created=(created or int(time.time())) - 500, **fields)
    return h.customer_event(kind, customer=cust, created=created)


# --------------------------------------------------------------------------
# cluster helpers
# --------------------------------------------------------------------------

def send(cluster: h.Cluster, *payloads: str, one_transaction: bool = True) -> list[str]:
    """Ingest signed deliveries (in one transaction: the worker sees them at once)."""
    with cluster.connect(autocommit=not one_transaction) as conn:
        answers = [h.ingest(conn, p, cluster.webhook_secret) for p in payloads]
        if one_transaction:
            conn.commit()
    assert answers == ["queued"] * len(payloads), answers
    return [eid(p) for p in payloads]


def event_statuses(cluster: h.Cluster, ids: list[str]) -> dict[str, str]:
    return dict(cluster.query("SELECT id, status FROM stripe_sync.events WHERE id = ANY(%s)", (ids,)))


def wait_status(cluster: h.Cluster, ids: list[str], status: str = "processed", timeout: float = 30) -> None:
    h.wait_until(lambda: (s := event_statuses(cluster, ids)) and len(s) == len(ids)
                 and all(v == status for v in s.values()),
                 timeout=timeout, what=f"{len(ids)} event(s) to be {status}")


def dict_rows(cluster: h.Cluster, sql: str, params: Any = None) -> list[dict]:
    with cluster.connect() as conn:
        cur = conn.execute(sql, params)
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def run_sql_file(cluster: h.Cluster, path, dbname: str = "postgres") -> str:
    assert path.is_file(), f"{path} is missing"
    argv = [str(h.PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(cluster.base),
            "-p", str(cluster.port), "-U", "postgres", "-d", dbname, "-f", str(path)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"psql -f {path.name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def sqlstate_of(conn: psycopg.Connection, sql: str, params: Any = None) -> Optional[str]:
    """The SQLSTATE ``sql`` fails with, or None if it succeeds."""
    try:
        conn.execute(sql, params).fetchall()
    except psycopg.Error as err:
        return err.sqlstate
    return None


# ==========================================================================
# 1. handlers
# ==========================================================================

@pytest.fixture(scope="module")
def hc(secret) -> Iterator[h.Cluster]:
    with h.stripe_sync_cluster(secret, max_attempts=HANDLER_MAX_ATTEMPTS, retry_base_delay=100) as c:
        h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
        c.query("CREATE ROLE plain LOGIN")
        c.query("CREATE ROLE app_role NOLOGIN")
        c.query("""CREATE TABLE public.seen (
                       tag text, event_id text, event_type text, object_id text,
                       email_in_event text, email_in_table text, event_status text, who text,
                       at timestamptz DEFAULT clock_timestamp())""")
        c.query("GRANT INSERT ON public.seen TO app_role")
        yield c


@pytest.fixture
def hdb(hc) -> Iterator[psycopg.Connection]:
    """A superuser connection to the handler cluster; every registration is removed afterwards."""
    with hc.connect() as conn:
        yield conn
        conn.execute("SELECT stripe_sync.remove_handler(NULL, s.handler)"
                     "  FROM (SELECT DISTINCT handler FROM stripe_sync.handlers) s")
        assert conn.execute("SELECT count(*) FROM stripe_sync.handlers").fetchone()[0] == 0


def make_recorder(conn: psycopg.Connection, name: str, reads_tables: bool = True) -> str:
    """A handler ``public.<name>(jsonb)`` that inserts what it saw into public.seen.
    With reads_tables it also records the customers row's email and the event's
    status as the handler's transaction sees them."""
    if reads_tables:
        table_email = "(SELECT c.email FROM stripe_sync.customers c WHERE c.id = event #>> '{data,object,id}')"
        ev_status = "(SELECT e.status FROM stripe_sync.events e WHERE e.id = event ->> 'id')"
    else:
        table_email = ev_status = "NULL"
    conn.execute(f"""
        CREATE OR REPLACE FUNCTION public.{name}(event jsonb) RETURNS void
        LANGUAGE plpgsql AS $fn$
        BEGIN
            INSERT INTO public.seen (tag, event_id, event_type, object_id, email_in_event,
                                     email_in_table, event_status, who)
            VALUES ('{name}', event ->> 'id', event ->> 'type', event #>> '{{data,object,id}}',
                    event #>> '{{data,object,email}}', {table_email}, {ev_status}, current_user::text);
        END
        $fn$""")
    return f"public.{name}(jsonb)"


def on_event(conn: psycopg.Connection, pattern: str, handler: str, run_as: Optional[str] = None) -> int:
    if run_as is None:
        return conn.execute("SELECT stripe_sync.on_event(%s, %s::regprocedure)", (pattern, handler)).fetchone()[0]
    return conn.execute("SELECT stripe_sync.on_event(%s, %s::regprocedure, run_as => %s::regrole)",
                        (pattern, handler, run_as)).fetchone()[0]


def seen_by(cluster: h.Cluster, tag: str) -> dict[str, dict]:
    """What handler ``tag`` recorded, by event id."""
    rows = dict_rows(cluster, "SELECT * FROM public.seen WHERE tag = %s ORDER BY at", (tag,))
    return {r["event_id"]: r for r in rows}


def runs_of(cluster: h.Cluster, handler_id: int, event_ids: Optional[list[str]] = None) -> dict[str, dict]:
    sql = "SELECT * FROM stripe_sync.handler_runs WHERE handler_id = %s"
    params: list[Any] = [handler_id]
    if event_ids is not None:
        sql += " AND event_id = ANY(%s)"
        params.append(event_ids)
    return {r["event_id"]: r for r in dict_rows(cluster, sql, params)}


def test_registration_validates_pattern_signature_and_privileges(hc, hdb):
    make_recorder(hdb, "reg_ok", reads_tables=False)
    hdb.execute("CREATE OR REPLACE FUNCTION public.reg_two(event jsonb, n integer) RETURNS void"
                " LANGUAGE sql AS 'SELECT'")
    hdb.execute("CREATE OR REPLACE FUNCTION public.reg_text(event text) RETURNS void LANGUAGE sql AS 'SELECT'")
    hdb.execute("CREATE OR REPLACE FUNCTION public.reg_none() RETURNS void LANGUAGE sql AS 'SELECT'")
    count = lambda: hdb.execute("SELECT count(*) FROM stripe_sync.handlers").fetchone()[0]
    before = count()

    for bad in ("", "invoice paid", "INVOICE.%"):
        assert sqlstate_of(hdb, "SELECT stripe_sync.on_event(%s, 'public.reg_ok(jsonb)'::regprocedure)",
                           (bad,)) == "22023", bad
    for fn in ("public.reg_two(jsonb, integer)", "public.reg_text(text)", "public.reg_none()"):
        assert sqlstate_of(hdb, "SELECT stripe_sync.on_event('invoice.paid', %s::regprocedure)",
                           (fn,)) == "42P13", fn
    assert count() == before, "a refused registration left a row"

    # Valid patterns; registering the same pair again returns the same id.
    first = on_event(hdb, "invoice.paid", "public.reg_ok(jsonb)")
    assert on_event(hdb, "invoice.paid", "public.reg_ok(jsonb)") == first
    wild = on_event(hdb, "invoice.*", "public.reg_ok(jsonb)")
    star = on_event(hdb, "*", "public.reg_ok(jsonb)")
    assert len({first, wild, star}) == 3
    assert count() == before + 3
    row = dict_rows(hc, "SELECT event_type, handler::text AS handler, run_as, registered_by::text AS by"
                        "  FROM stripe_sync.handlers WHERE id = %s", (first,))[0]
    assert row["event_type"] == "invoice.paid"
    assert row["handler"] in ("reg_ok(jsonb)", "public.reg_ok(jsonb)")
    assert row["by"] == "postgres"

    # A role that is neither superuser nor the extension owner: 42501, with or without EXECUTE.
    call = "SELECT stripe_sync.on_event('customer.created', 'public.reg_ok(jsonb)'::regprocedure)"
    with hc.connect(user="plain") as plain:
        assert sqlstate_of(plain, call) == "42501"
    hdb.execute("GRANT USAGE ON SCHEMA stripe_sync TO plain")
    hdb.execute("GRANT EXECUTE ON FUNCTION stripe_sync.on_event(text, regprocedure, regrole) TO plain")
    try:
        with hc.connect(user="plain") as plain:
            assert sqlstate_of(plain, call) == "42501", "on_event must check its caller itself"
    finally:
        hdb.execute("REVOKE EXECUTE ON FUNCTION stripe_sync.on_event(text, regprocedure, regrole) FROM plain")
        hdb.execute("REVOKE USAGE ON SCHEMA stripe_sync FROM plain")
    assert count() == before + 3

    # remove_handler: one pattern, then all of the handler's.
    assert hdb.execute("SELECT stripe_sync.remove_handler('invoice.paid', 'public.reg_ok(jsonb)'::regprocedure)"
                       ).fetchone()[0] == 1
    assert hdb.execute("SELECT stripe_sync.remove_handler('invoice.paid', 'public.reg_ok(jsonb)'::regprocedure)"
                       ).fetchone()[0] == 0
    assert hdb.execute("SELECT stripe_sync.remove_handler(NULL, 'public.reg_ok(jsonb)'::regprocedure)"
                       ).fetchone()[0] == 2
    assert count() == before


def test_handler_failing_twice_then_succeeding_is_called_three_times_and_commits_once(hc, hdb):
    hdb.execute("CREATE SEQUENCE public.flaky_calls")
    hdb.execute("CREATE TABLE public.flaky_effects (event_id text, product text)")
    hdb.execute("""
        CREATE FUNCTION public.flaky(event jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
        DECLARE n bigint := nextval('public.flaky_calls');
        BEGIN
            IF n < 3 THEN
                RAISE EXCEPTION 'flaky handler: call % fails', n;
            END IF;
            INSERT INTO public.flaky_effects VALUES (event ->> 'id', event #>> '{data,object,id}');
        END $fn$""")
    hid = on_event(hdb, "product.created", "public.flaky(jsonb)")
    product = product_obj("Flaky product")
    [ev] = send(hc, event("product.created", product))

    def succeeded():
        run = runs_of(hc, hid, [ev]).get(ev)
        return run is not None and run["status"] == "succeeded" and run
    run = h.wait_until(succeeded, timeout=30, what="the flaky handler's run to succeed")
    assert run["attempts"] == 3, run
    assert run["finished_at"] is not None
    # No further call after the success.
    h.holds_for(lambda: hc.scalar("SELECT last_value FROM public.flaky_calls") == 3, 1.5,
                what="the handler to have been called exactly 3 times")
    assert hc.query("SELECT event_id, product FROM public.flaky_effects") == [(ev, product["id"])]
    assert event_statuses(hc, [ev]) == {ev: "processed"}
    assert hc.scalar("SELECT count(*) FROM stripe_sync.handler_failures WHERE event_id = %s", (ev,)) == 0


def test_always_failing_handler_ends_failed_and_blocks_neither_apply_nor_other_handlers(hc, hdb):
    hdb.execute("""
        CREATE FUNCTION public.always_fails(event jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
        BEGIN
            RAISE EXCEPTION 'always_fails refuses %', event ->> 'id';
        END $fn$""")
    bad = on_event(hdb, "customer.created", "public.always_fails(jsonb)")
    good = on_event(hdb, "customer.created", make_recorder(hdb, "rec_good"))
    cids = [h.new_id("cus_") for _ in range(50)]
    ids = send(hc, *[customer_payload(cid, email=f"n{i}@example.com", name=f"N {i}")
                     for i, cid in enumerate(cids)])

    # Applied, and the good handler ran for every one of them.
    wait_status(hc, ids)
    assert hc.scalar("SELECT count(*) FROM stripe_sync.customers WHERE id = ANY(%s)", (cids,)) == 50
    h.wait_until(lambda: set(seen_by(hc, "rec_good")) >= set(ids), timeout=30,
                 what="the succeeding handler to run for all 50 events")
    good_runs = runs_of(hc, good, ids)
    assert len(good_runs) == 50 and {r["status"] for r in good_runs.values()} == {"succeeded"}

    def all_failed():
        runs = runs_of(hc, bad, ids)
        return len(runs) == 50 and all(r["status"] == "failed" for r in runs.values()) and runs
    runs = h.wait_until(all_failed, timeout=60, what="the failing handler's 50 runs to end failed")
    for ev, r in runs.items():
        assert r["attempts"] == HANDLER_MAX_ATTEMPTS, r
        assert r["last_error"] and f"always_fails refuses {ev}" in r["last_error"], r
    failures = dict_rows(hc, "SELECT event_id, event_type, handler::text AS handler, attempts, last_error, status"
                             "  FROM stripe_sync.handler_failures WHERE event_id = ANY(%s)", (ids,))
    assert len(failures) == 50, failures[:3]
    for f in failures:
        assert f["event_type"] == "customer.created" and f["status"] == "failed"
        assert "always_fails(" in f["handler"] and f["attempts"] == HANDLER_MAX_ATTEMPTS
        assert f"always_fails refuses {f['event_id']}" in f["last_error"]
    # Every good run recorded exactly once, each seeing its own customer.
    assert hc.scalar("SELECT count(*) FROM public.seen WHERE tag = 'rec_good' AND event_id = ANY(%s)", (ids,)) == 50
    st = h.status_row(hc)
    assert st["handler_runs_failed"] == hc.scalar("SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'failed'")
    assert st["handler_runs_failed"] >= 50
    assert st["handler_runs_pending"] == hc.scalar(
        "SELECT count(*) FROM stripe_sync.handler_runs WHERE status = 'pending'")

    # Later events still go through, and the good handler keeps running.
    [later] = send(hc, customer_payload(email="later@example.com"))
    wait_status(hc, [later])
    h.wait_until(lambda: later in seen_by(hc, "rec_good"), timeout=30, what="the good handler on a later event")


def test_remove_handler_drops_pending_runs(hc, hdb):
    hdb.execute("""
        CREATE FUNCTION public.fails_for_removal(event jsonb) RETURNS void LANGUAGE plpgsql AS $fn$
        BEGIN RAISE EXCEPTION 'not yet'; END $fn$""")
    hid = on_event(hdb, "customer.created", "public.fails_for_removal(jsonb)")
    [ev] = send(hc, customer_payload(email="removal@example.com"))

    # Park the run (pending) an hour ahead as soon as it exists. An attempt already
    # under way when we park may still land: park again until the run stays put.
    def parked():
        return hc.query("UPDATE stripe_sync.handler_runs SET next_attempt_at = now() + interval '1 hour'"
                        " WHERE handler_id = %s AND event_id = %s AND status = 'pending'"
                        " RETURNING attempts", (hid, ev))
    for _ in range(3):
        [(attempts,)] = h.wait_until(parked, timeout=30, interval=0.01, what="a pending run to park")
        time.sleep(0.5)
        run = runs_of(hc, hid, [ev])[ev]
        if (run["status"], run["attempts"]) == ("pending", attempts):
            break
    h.holds_for(lambda: (r := runs_of(hc, hid, [ev])[ev])["status"] == "pending" and r["attempts"] == attempts,
                1.0, what="a parked run to stay pending (next_attempt_at is respected)")

    assert hdb.execute("SELECT stripe_sync.remove_handler('customer.created',"
                       " 'public.fails_for_removal(jsonb)'::regprocedure)").fetchone()[0] == 1
    assert hc.scalar("SELECT count(*) FROM stripe_sync.handler_runs WHERE handler_id = %s AND status = 'pending'",
                     (hid,)) == 0
    assert hc.scalar("SELECT count(*) FROM stripe_sync.handlers WHERE id = %s", (hid,)) == 0


def test_handlers_see_applied_state_patterns_match_run_as_and_remove(hc, hdb):
    exact = on_event(hdb, "customer.updated", make_recorder(hdb, "rec_exact"))
    cust_wild = on_event(hdb, "customer.*", make_recorder(hdb, "rec_cust_wild"))
    everything = on_event(hdb, "*", make_recorder(hdb, "rec_all"))
    other = on_event(hdb, "invoice.paid", make_recorder(hdb, "rec_other"))
    deleted_only = on_event(hdb, "customer.deleted", make_recorder(hdb, "rec_deleted"))
    who = on_event(hdb, "customer.updated", make_recorder(hdb, "rec_whoami", reads_tables=False),
                   run_as="app_role")
    reg = dict_rows(hc, "SELECT run_as::text AS run_as, registered_by::text AS by FROM stripe_sync.handlers"
                        " WHERE id = %s", (who,))[0]
    assert reg == {"run_as": "app_role", "by": "postgres"}

    t = int(time.time()) - 100
    cid = h.new_id("cus_")
    [created] = send(hc, customer_payload(cid, email="first@example.com", name="Shown", created=t))
    h.wait_until(lambda: created in seen_by(hc, "rec_all") and created in seen_by(hc, "rec_cust_wild"),
                 timeout=30, what="the wildcard handlers to run for customer.created")
    [updated] = send(hc, customer_payload(cid, email="second@example.com", name="Shown",
                                          kind="customer.updated", created=t + 10))
    h.wait_until(lambda: all(updated in seen_by(hc, tag)
                             for tag in ("rec_exact", "rec_cust_wild", "rec_all", "rec_whoami")),
                 timeout=30, what="every matching handler to run for customer.updated")

    # Each handler saw the tables with its own event applied, after the batch committed.
    for tag in ("rec_cust_wild", "rec_all"):
        seen = seen_by(hc, tag)
        assert seen[created]["email_in_table"] == "first@example.com", (tag, seen[created])
        assert seen[updated]["email_in_table"] == "second@example.com", (tag, seen[updated])
        for ev in (created, updated):
            assert seen[ev]["event_status"] == "processed", (tag, seen[ev])
            assert seen[ev]["object_id"] == cid and seen[ev]["who"] == "postgres"
    exact_seen = seen_by(hc, "rec_exact")
    assert set(exact_seen) & {created, updated} == {updated}
    assert exact_seen[updated]["email_in_table"] == "second@example.com"
    assert exact_seen[updated]["event_type"] == "customer.updated"
    assert seen_by(hc, "rec_whoami")[updated]["who"] == "app_role"
    assert created not in seen_by(hc, "rec_whoami")

    # Non-matching exact types never fired, and no run exists for them.
    h.holds_for(lambda: not ({created, updated} & (set(seen_by(hc, "rec_other")) | set(seen_by(hc, "rec_deleted"))))
                and not runs_of(hc, other, [created, updated]) and not runs_of(hc, deleted_only, [created, updated]),
                1.0, what="non-matching handlers to stay silent")
    # One run per (event, matching registration), each succeeded.
    for hid, evs in ((exact, {updated}), (cust_wild, {created, updated}), (everything, {created, updated}),
                     (who, {updated})):
        runs = runs_of(hc, hid, [created, updated])
        assert set(runs) == evs and all(r["status"] == "succeeded" and r["attempts"] >= 1 for r in runs.values())

    # remove_handler stops future runs of what it removed, and only those.
    assert hdb.execute("SELECT stripe_sync.remove_handler('customer.updated', 'public.rec_exact(jsonb)'::regprocedure)"
                       ).fetchone()[0] == 1
    assert hdb.execute("SELECT stripe_sync.remove_handler(NULL, 'public.rec_all(jsonb)'::regprocedure)"
                       ).fetchone()[0] == 1
    [again] = send(hc, customer_payload(cid, email="third@example.com", name="Shown",
                                        kind="customer.updated", created=t + 20))
    h.wait_until(lambda: again in seen_by(hc, "rec_cust_wild"), timeout=30,
                 what="the remaining wildcard handler to run")
    assert seen_by(hc, "rec_cust_wild")[again]["email_in_table"] == "third@example.com"
    h.holds_for(lambda: again not in seen_by(hc, "rec_exact") and again not in seen_by(hc, "rec_all"), 1.0,
                what="removed handlers to stay silent")
    assert not runs_of(hc, exact, [again]) and not runs_of(hc, everything, [again])


def test_no_alert_is_queued_without_a_slack_url(hc):
    inv = invoice_obj(h.new_id("cus_"), customer_email="nourl@example.com", customer_name="No Url")
    [ev] = send(hc, event("invoice.payment_failed", inv))
    wait_status(hc, [ev])
    h.holds_for(lambda: hc.scalar("SELECT count(*) FROM stripe_sync.alerts") == 0, 1.0,
                what="no alert without stripe_sync.slack_webhook_url")
    st = h.status_row(hc)
    assert (st["alerts_pending"], st["alerts_failed"]) == (0, 0)


def test_dunning_example_flags_and_clears_the_account(hc, hdb):
    hdb.execute("""CREATE TABLE public.app_accounts (
                       id bigserial PRIMARY KEY,
                       stripe_customer_id text UNIQUE,
                       payment_failing boolean NOT NULL DEFAULT false,
                       payment_failing_since timestamptz)""")
    late, fine = h.new_id("cus_"), h.new_id("cus_")
    hdb.execute("INSERT INTO public.app_accounts (stripe_customer_id) VALUES (%s), (%s)", (late, fine))
    run_sql_file(hc, EXAMPLES / "dunning.sql")
    regs = set(hc.query("SELECT event_type FROM stripe_sync.handlers"
                        " WHERE handler = 'public.stripe_dunning(jsonb)'::regprocedure"))
    assert regs == {("invoice.payment_failed",), ("invoice.paid",)}

    account = lambda cid: hc.query("SELECT payment_failing, payment_failing_since FROM public.app_accounts"
                                   " WHERE stripe_customer_id = %s", (cid,))[0]
    t = int(time.time()) - 100
    inv = invoice_obj(late, amount_due=4900, created=t)
    [failed] = send(hc, event("invoice.payment_failed", inv, created=t))
    h.wait_until(lambda: account(late)[0] is True, timeout=30, what="the account to be flagged")
    assert account(late)[1] is not None
    assert account(fine) == (False, None)

    paid = dict(inv, status="paid", amount_paid=4900, amount_remaining=0, attempt_count=2)
    [cleared] = send(hc, event("invoice.paid", paid, created=t + 30))
    h.wait_until(lambda: account(late)[0] is False, timeout=30, what="the flag to be cleared")
    assert account(fine) == (False, None)
    hid = {r[0] for r in hc.query("SELECT id FROM stripe_sync.handlers"
                                  " WHERE handler = 'public.stripe_dunning(jsonb)'::regprocedure")}
    runs = hc.query("SELECT event_id, status FROM stripe_sync.handler_runs WHERE handler_id = ANY(%s)"
                    " AND event_id = ANY(%s)", (list(hid), [failed, cleared]))
    assert sorted(runs) == sorted([(failed, "succeeded"), (cleared, "succeeded")])


# ==========================================================================
# 2. Slack alerts
# ==========================================================================

DASHBOARD = "https://dashboard.stripe.com/"


def dashboard_link(text: str, object_id: str, test_mode: bool = True) -> Optional[str]:
    """The dashboard URL in ``text`` that names ``object_id`` (Slack link syntax allowed)."""
    for url in re.findall(r"https://dashboard\.stripe\.com/[^\s|>]*", text):
        if object_id in url and url.startswith(DASHBOARD + "test/") == test_mode:
            return url
    return None


@pytest.fixture(scope="module")
def slack(secret) -> Iterator[tuple[SlackStub, h.Cluster]]:
    with SlackStub() as stub:
        with h.stripe_sync_cluster(secret, max_attempts=SLACK_MAX_ATTEMPTS, retry_base_delay=100,
                                   slack_webhook_url=stub.url, alert_burst=ALERT_BURST) as c:
            h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
            c.query("CREATE ROLE plain LOGIN")
            yield stub, c


def alert_rows(cluster: h.Cluster, event_id: str) -> list[dict]:
    return dict_rows(cluster, "SELECT * FROM stripe_sync.alerts WHERE event_id = %s ORDER BY id", (event_id,))


def wait_alert(cluster: h.Cluster, event_id: str, status: str, timeout: float = 30) -> dict:
    def done():
        rows = alert_rows(cluster, event_id)
        return len(rows) == 1 and rows[0]["status"] == status and rows[0]
    return h.wait_until(done, timeout=timeout, what=f"the alert of {event_id} to be {status}")


def delivered_once(stub: SlackStub, needle: str, mark: int, settle: float = 1.5):
    """Wait for a 200-answered POST mentioning ``needle``; check no second one follows."""
    h.wait_until(lambda: stub.mentioning(needle, mark, ok=True), timeout=30,
                 what=f"a Slack message mentioning {needle}")
    h.holds_for(lambda: len(stub.mentioning(needle, mark, ok=True)) == 1, settle,
                what=f"exactly one Slack message mentioning {needle}")
    [req] = stub.mentioning(needle, mark, ok=True)
    assert req.path == stub.path
    assert (req.header("Content-Type") or "").startswith("application/json"), req.headers
    assert isinstance(req.body, dict) and isinstance(req.body.get("text"), str), req.raw
    return req


def test_payment_failed_alert_names_customer_amount_and_dashboard_link(slack):
    stub, c = slack
    assert c.scalar("SHOW stripe_sync.alert_burst") == str(ALERT_BURST)
    mark = stub.mark()
    # (a) the customer is known: email and name come from stripe_sync.customers.
    cid = h.new_id("cus_")
    [cust_ev] = send(c, customer_payload(cid, email="alice@example.com", name="Alice Lovelace"))
    wait_status(c, [cust_ev])
    inv_a = invoice_obj(cid, amount_due=2900, currency="usd")
    [ev_a] = send(c, event("invoice.payment_failed", inv_a))
    req = delivered_once(stub, inv_a["id"], mark)
    text = req.text
    assert "alice@example.com" in text and "Alice Lovelace" in text, text
    assert "29.00 USD" in text, text
    assert re.search(r"payment", text, re.I) and re.search(r"fail", text, re.I), text
    assert dashboard_link(text, inv_a["id"], test_mode=True), text
    row = wait_alert(c, ev_a, "sent")
    assert row["kind"] == "event" and row["event_type"] == "invoice.payment_failed"
    assert row["sent_at"] is not None and row["message"] == text
    # The customer.created event (not in alert_events) produced no alert.
    assert alert_rows(c, cust_ev) == []

    # (b) unknown customer, live mode: the invoice's own customer_email/customer_name; no /test/.
    inv_b = invoice_obj(h.new_id("cus_"), amount_due=123456, currency="eur", livemode=True,
                        customer_email="bob@example.org", customer_name="Bob Builder")
    [ev_b] = send(c, event("invoice.payment_failed", inv_b))
    text = delivered_once(stub, inv_b["id"], mark).text
    assert "bob@example.org" in text and "Bob Builder" in text, text
    assert "1234.56 EUR" in text or "1,234.56 EUR" in text, text
    assert dashboard_link(text, inv_b["id"], test_mode=False), text
    assert wait_alert(c, ev_b, "sent")["message"] == text
    assert len(stub.since(mark)) == 2, [r.text for r in stub.since(mark)]


def test_event_not_in_alert_events_sends_nothing(slack):
    stub, c = slack
    mark = stub.mark()
    payload = customer_payload(email="quiet@example.com", name="Quiet")
    [ev] = send(c, payload)
    wait_status(c, [ev])
    h.holds_for(lambda: not stub.since(mark) and not alert_rows(c, ev), 2.0,
                what="no Slack message for customer.created")


def test_other_alert_types_dispute_and_cancellation(slack):
    stub, c = slack
    mark = stub.mark()
    dp = dispute_obj(4500, "eur")
    cid = h.new_id("cus_")
    [cust_ev] = send(c, customer_payload(cid, email="carol@example.com", name="Carol Churn"))
    wait_status(c, [cust_ev])
    prod = product_obj("Alert plan")
    sub = subscription_obj(cid, "canceled", "usd", [(price_obj(prod["id"], 2900, "usd"), 1)])
    [ev_dp, ev_sub] = send(c, event("charge.dispute.created", dp), event("customer.subscription.deleted", sub))
    text = delivered_once(stub, dp["id"], mark).text
    assert "45.00 EUR" in text and dashboard_link(text, dp["id"]), text
    text = delivered_once(stub, sub["id"], mark).text
    assert "carol@example.com" in text and "Carol Churn" in text and dashboard_link(text, sub["id"]), text
    assert wait_alert(c, ev_dp, "sent")["event_type"] == "charge.dispute.created"
    assert wait_alert(c, ev_sub, "sent")["event_type"] == "customer.subscription.deleted"


def test_posting_holds_no_transaction_open(slack):
    stub, c = slack
    mark = stub.mark()
    stub.set_delay(2.0)
    try:
        inv = invoice_obj(h.new_id("cus_"), customer_email="slow@example.com", customer_name="Slow")
        send(c, event("invoice.payment_failed", inv))
        arrived = h.wait_until(lambda: stub.inflight_since(), timeout=30, what="a request in flight")
        time.sleep(0.5)
        assert stub.inflight_since(), "the request should still be held"
        open_xacts = c.query(
            "SELECT pid, backend_type, state, xact_start FROM pg_stat_activity"
            " WHERE backend_type LIKE 'stripe_sync%%' AND xact_start < to_timestamp(%s)", (arrived,))
        assert open_xacts == [], f"a transaction stayed open across the Slack POST: {open_xacts}"
    finally:
        stub.set_delay(0.0)
    delivered_once(stub, inv["id"], mark)


def test_outage_delays_an_alert_and_never_loses_it(slack):
    stub, c = slack
    mark = stub.mark()
    stub.fail(status=500)
    try:
        inv = invoice_obj(h.new_id("cus_"), customer_email="outage@example.com", customer_name="Out Age")
        [ev] = send(c, event("invoice.payment_failed", inv))
        # More attempts than max_attempts, still pending: a transient error is retried forever.
        row = h.wait_until(lambda: (r := alert_rows(c, ev)) and r[0]["attempts"] > SLACK_MAX_ATTEMPTS and r[0],
                           timeout=60, what="the alert to be retried past max_attempts")
        assert row["status"] == "pending" and row["sent_at"] is None
        assert row["last_error"] and stub.secret_part not in row["last_error"], row["last_error"]
        assert "500" in row["last_error"], row["last_error"]
        assert len(stub.mentioning(inv["id"], mark, ok=False)) >= SLACK_MAX_ATTEMPTS + 1
        assert h.status_row(c)["alerts_pending"] >= 1
    finally:
        stub.recover()
    req = delivered_once(stub, inv["id"], mark)
    row = wait_alert(c, ev, "sent")
    assert row["message"] == req.text and "outage@example.com" in req.text


def test_rate_limit_retry_after_is_honoured(slack):
    stub, c = slack
    mark = stub.mark()
    retry_after = 2
    stub.fail(status=429, retry_after=retry_after)
    try:
        inv = invoice_obj(h.new_id("cus_"), customer_email="limited@example.com", customer_name="Limited")
        [ev] = send(c, event("invoice.payment_failed", inv))
        h.wait_until(lambda: len(stub.mentioning(inv["id"], mark, ok=False)) >= 2, timeout=30,
                     what="two rate-limited attempts")
        assert alert_rows(c, ev)[0]["status"] == "pending"
    finally:
        stub.recover()
    delivered_once(stub, inv["id"], mark)
    reqs = stub.mentioning(inv["id"], mark)
    assert [r.status for r in reqs][-1] == 200 and all(r.status == 429 for r in reqs[:-1])
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    assert all(g >= retry_after - 0.2 for g in gaps), f"Retry-After: {retry_after} s not waited: {gaps}"
    assert wait_alert(c, ev, "sent")["sent_at"] is not None


def test_dead_letter_event_is_alerted(slack):
    stub, c = slack
    mark = stub.mark()
    cid = h.new_id("cus_")
    poison = customer_payload(cid, email="poison@example.com", balance="x")  # 22P02 on apply
    [ev] = send(c, poison)
    wait_status(c, [ev], "failed", timeout=60)
    row = wait_alert(c, ev, "sent")
    assert row["kind"] == "dead_letter", row
    # The message names the event or its object.
    needle = ev if ev in row["message"] else cid
    req = delivered_once(stub, needle, mark)
    assert req.text == row["message"] and needle in req.text, (ev, cid, req.text)


def test_client_error_fails_the_alert_after_max_attempts(slack):
    stub, c = slack
    mark = stub.mark()
    stub.fail(status=404)
    try:
        inv = invoice_obj(h.new_id("cus_"), customer_email="gone@example.com", customer_name="Gone Hook")
        [ev] = send(c, event("invoice.payment_failed", inv))
        row = wait_alert(c, ev, "failed", timeout=60)
        assert row["attempts"] == SLACK_MAX_ATTEMPTS and row["sent_at"] is None
        assert row["last_error"] and "404" in row["last_error"], row["last_error"]
        assert stub.secret_part not in row["last_error"]
        h.holds_for(lambda: len(stub.mentioning(inv["id"], mark)) == SLACK_MAX_ATTEMPTS, 1.5,
                    what="no request after the alert failed")
        assert h.status_row(c)["alerts_failed"] == c.scalar("SELECT count(*) FROM stripe_sync.alerts"
                                                          " WHERE status = 'failed'") >= 1
    finally:
        stub.recover()


N_BURST = 200


def test_burst_is_folded_into_a_digest(slack):
    stub, c = slack
    # Whatever earlier tests sent settles first (nothing pending).
    h.wait_until(lambda: c.scalar("SELECT count(*) FROM stripe_sync.alerts WHERE status = 'pending'") == 0,
                 timeout=30, what="no pending alert before the burst")
    mark = stub.mark()
    before = c.scalar("SELECT coalesce(max(id), 0) FROM stripe_sync.alerts")
    payloads = [event("invoice.payment_failed",
                      invoice_obj(h.new_id("cus_"), amount_due=1000 + i, customer_email=f"b{i}@example.com",
                                  customer_name=f"Burst {i}"))
                for i in range(N_BURST)]
    ids = [eid(p) for p in payloads]
    t = int(time.time())
    with c.connect(autocommit=False) as conn:
        answers = h.ingest_all(conn, [(p, h.sign(p, c.webhook_secret, t)) for p in payloads])
        conn.commit()
    assert answers == ["queued"] * N_BURST

    def settled():
        rows = dict(c.query("SELECT status, count(*) FROM stripe_sync.alerts WHERE event_id = ANY(%s)"
                            " GROUP BY 1", (ids,)))
        return sum(rows.values()) == N_BURST and set(rows) <= {"sent", "folded"} and rows
    statuses = h.wait_until(settled, timeout=90, what="the 200 alerts to be sent or folded")
    time.sleep(1.5)  # any straggler POST
    posts = stub.since(mark)
    assert all(r.ok for r in posts), [r.status for r in posts]
    assert len(posts) <= ALERT_BURST + 2, f"{len(posts)} Slack messages for a burst of {N_BURST}"

    digests = dict_rows(c, "SELECT d.id, d.kind, d.status, d.message, d.sent_at,"
                           "       (SELECT count(*) FROM stripe_sync.alerts f WHERE f.digest_id = d.id) AS folded"
                           "  FROM stripe_sync.alerts d WHERE d.id > %s AND d.kind = 'digest' ORDER BY d.id",
                        (before,))
    assert digests, "no digest for a burst of 200"
    texts = [r.text for r in posts]
    for d in digests:
        assert d["status"] == "sent" and d["sent_at"] is not None, d
        assert d["message"] in texts, d["message"]
        assert re.search(r"digest", d["message"], re.I), d["message"]
        assert re.search(rf"(?<![\d.,]){d['folded']}(?![\d.,]?\d)", d["message"]), (d["folded"], d["message"])
        assert re.search(r"invoice\.payment_failed|payment failed", d["message"], re.I), d["message"]
    folded = c.scalar("SELECT count(*) FROM stripe_sync.alerts WHERE event_id = ANY(%s) AND status = 'folded'"
                      " AND digest_id = ANY(%s)", (ids, [d["id"] for d in digests]))
    assert folded == statuses.get("folded", 0), "a folded alert without its digest"
    individually = statuses.get("sent", 0)
    assert sum(d["folded"] for d in digests) == folded, "a digest folded alerts of other events"
    assert individually <= ALERT_BURST
    assert len(posts) == individually + len(digests)
    if individually == 0 and len(digests) == 1:
        assert re.search(rf"(?<!\d){N_BURST}(?!\d)", digests[0]["message"])


def test_webhook_url_is_a_secret(slack):
    stub, c = slack
    assert c.scalar("SHOW stripe_sync.slack_webhook_url") == stub.url
    with c.connect(user="plain") as plain:
        for sql in ("SHOW stripe_sync.slack_webhook_url",
                    "SELECT current_setting('stripe_sync.slack_webhook_url')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                plain.execute(sql).fetchall()
        names = [r[0] for r in plain.execute("SELECT name FROM pg_settings WHERE name LIKE 'stripe_sync.%'")]
        assert "stripe_sync.alert_burst" in names and "stripe_sync.slack_webhook_url" not in names
        assert not [r for r in plain.execute("SHOW ALL").fetchall() if stub.secret_part in str(r)]
    log = c.log_text()
    assert "ready to accept connections" in log  # the log is the right one and was written
    assert stub.secret_part not in log, "the webhook URL's secret part is in the server log"
    leaks = c.scalar("SELECT count(*) FROM stripe_sync.alerts WHERE last_error LIKE %s OR message LIKE %s",
                     (f"%{stub.secret_part}%", f"%{stub.secret_part}%"))
    assert leaks == 0


# ==========================================================================
# 3. views, on a generated stream
# ==========================================================================

# 2025-01-01 05:00:17 UTC: a fixed start, so the stream (seed fixed too) and its
# day boundaries are always the same.
STREAM_START = 1735707617
STREAM_EVENTS = 3000
STREAM_SEED = 23
COUNTED = ("active", "past_due")
SEVERITY = ["unpaid", "past_due", "incomplete", "paused", "trialing", "active", "incomplete_expired", "canceled"]


def month_norm(amount: int, interval: str, count: int) -> Fraction:
    count = count or 1
    return {"month": Fraction(amount, count), "year": Fraction(amount, 12 * count),
            "week": Fraction(amount * 52, 12 * count), "day": Fraction(amount * 365, 12 * count)}[interval]


def item_mrr(item: dict) -> Fraction:
    price = item["price"]
    rec = price.get("recurring") or {}
    if price.get("unit_amount") is None or rec.get("usage_type") == "metered":
        return Fraction(0)
    return month_norm(price["unit_amount"] * (item.get("quantity") or 1), rec["interval"], rec.get("interval_count"))


def sub_mrr(sub: dict, now: Optional[int] = None) -> Fraction:
    """A subscription's MRR as the spec defines it (0 unless active or past_due)."""
    if sub["status"] not in COUNTED:
        return Fraction(0)
    total = sum((item_mrr(i) for i in sub["items"]["data"]), Fraction(0))
    disc = sub.get("discount")
    if disc and (disc.get("end") is None or disc["end"] > (now or time.time())):
        coupon = disc["coupon"]
        if coupon.get("percent_off") is not None:
            total *= 1 - Fraction(str(coupon["percent_off"])) / 100
        elif coupon.get("amount_off") is not None:
            rec = sub["items"]["data"][0]["price"]["recurring"]
            total = max(Fraction(0), total - month_norm(coupon["amount_off"], rec["interval"], rec["interval_count"]))
    return total


def close(a: Any, b: Any, tol: float = 1e-6) -> bool:
    return abs(Fraction(str(a or 0)) - Fraction(str(b or 0))) <= Fraction(tol)


def rounded(x: Fraction, places: int = 2) -> Decimal:
    """x rounded half up to ``places`` decimals (amount_decimal of a two-decimal currency: x = cents / 100)."""
    return (Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)


class Stream:
    """The generated events and the final state of every object, by type."""

    def __init__(self, payloads: list[str]):
        self.events = [json.loads(p) for p in payloads]
        assert [e["created"] for e in self.events] == sorted(e["created"] for e in self.events)
        self.final: dict[str, dict[str, dict]] = defaultdict(dict)
        self.deleted: set[str] = set()
        self.sub_timeline: dict[str, list[tuple[int, dict]]] = defaultdict(list)
        for e in self.events:
            obj = e["data"]["object"]
            self.final[obj["object"]][obj["id"]] = obj
            if e["type"] == "customer.deleted":
                self.deleted.add(obj["id"])
            if e["type"].startswith("customer.subscription."):
                self.sub_timeline[obj["id"]].append((e["created"], obj))
        self.products = {p["id"]: p for p in self.final["product"].values()}


@pytest.fixture(scope="module")
def stream(secret) -> Stream:
    deliveries = h.gen_stream(secret, STREAM_EVENTS, STREAM_SEED, start=STREAM_START)
    s = Stream([p for p, _ in deliveries])
    s.deliveries = deliveries  # signed now: ingest soon
    return s


@pytest.fixture(scope="module")
def vc(secret, stream) -> Iterator[h.Cluster]:
    with h.stripe_sync_cluster(secret) as c:
        h.wait_until(c.worker_pid, timeout=30, what="the worker to start")
        with c.connect() as conn:
            assert h.ingest_all(conn, stream.deliveries) == ["queued"] * STREAM_EVENTS
        h.wait_drained(c, timeout=120)
        assert dict(c.query("SELECT status, count(*) FROM stripe_sync.events GROUP BY 1")) == \
            {"processed": STREAM_EVENTS}
        yield c


def test_mrr_view_matches_an_independent_computation(vc, stream):
    expected: dict[Optional[str], dict] = defaultdict(lambda: {"mrr": Fraction(0), "subs": set(), "custs": set()})
    for sub in stream.final["subscription"].values():
        if sub["status"] not in COUNTED:
            continue
        for item in sub["items"]["data"]:
            for key in (item["price"]["product"], None):
                e = expected[key]
                e["mrr"] += item_mrr(item)
                e["subs"].add(sub["id"])
                e["custs"].add(sub["customer"])
    assert len(expected) >= 3 and expected[None]["mrr"] > 0, "the stream has too few active subscriptions"

    rows = dict_rows(vc, "SELECT * FROM stripe_sync.mrr WHERE currency = 'usd'")
    got = {r["product"]: r for r in rows}
    assert len(got) == len(rows), "one row per currency and product"
    missing = set(expected) - set(got)
    assert not missing, f"no mrr row for {missing}"
    extra = {p: got[p]["mrr"] for p in set(got) - set(expected)}
    assert all(close(m, 0) for m in extra.values()), f"rows for products without counted subscriptions: {extra}"
    for product, e in expected.items():
        r = got[product]
        assert close(r["mrr"], e["mrr"]), (product, r["mrr"], float(e["mrr"]))
        assert r["mrr_decimal"] == rounded(e["mrr"] / 100), (product, r["mrr_decimal"], e["mrr"])
        assert (r["subscriptions"], r["customers"]) == (len(e["subs"]), len(e["custs"])), (product, r)
        want_name = stream.products[product]["name"] if product else None
        assert r["product_name"] == want_name, (product, r["product_name"])


def _day_ends(stream: Stream) -> list[date]:
    first = ts(stream.events[0]["created"]).date() - timedelta(days=1)
    last = ts(stream.events[-1]["created"]).date() + timedelta(days=1)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def test_mrr_history_matches_an_independent_computation(vc, stream):
    days = _day_ends(stream)
    boundaries = {int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()) for d in days}
    on_boundary = [t for tl in stream.sub_timeline.values() for t, _ in tl if t in boundaries]
    assert not on_boundary, "a subscription event at exactly midnight: pick another STREAM_START"

    # subscription_history got a row for every subscription event.
    hist = set(vc.query("SELECT subscription, at FROM stripe_sync.subscription_history"
                        " WHERE subscription = ANY(%s)", (list(stream.sub_timeline),)))
    want = {(sid, ts(t)) for sid, tl in stream.sub_timeline.items() for t, _ in tl}
    assert want <= hist, f"{len(want - hist)} subscription events missing from subscription_history"

    def state_at(end: int) -> dict[str, Fraction]:
        out = {}
        for sid, tl in stream.sub_timeline.items():
            last = None
            for t, obj in tl:
                if t < end:
                    last = obj
            out[sid] = sub_mrr(last) if last is not None else Fraction(0)
        return out

    expected: dict[date, dict[str, Fraction]] = {}
    prev = state_at(int(datetime(days[0].year, days[0].month, days[0].day, tzinfo=timezone.utc).timestamp()))
    for d in days:
        end = int((datetime(d.year, d.month, d.day, tzinfo=timezone.utc) + timedelta(days=1)).timestamp())
        cur = state_at(end)
        row = {"mrr": Fraction(0), "new_mrr": Fraction(0), "expansion_mrr": Fraction(0),
               "contraction_mrr": Fraction(0), "churned_mrr": Fraction(0)}
        for sid, m in cur.items():
            p = prev[sid]
            row["mrr"] += m
            if p == 0 and m > 0:
                row["new_mrr"] += m
            elif p > 0 and m > p:
                row["expansion_mrr"] += m - p
            elif p > 0 and 0 < m < p:
                row["contraction_mrr"] += p - m
            elif p > 0 and m == 0:
                row["churned_mrr"] += p
        expected[d] = row
        prev = cur
    interesting = [d for d, r in expected.items() if any(r.values())]
    assert len(interesting) >= 2 and any(expected[d]["churned_mrr"] for d in interesting) \
        and any(expected[d]["expansion_mrr"] or expected[d]["contraction_mrr"] for d in interesting), \
        "the stream does not exercise mrr_history"

    rows = dict_rows(vc, "SELECT * FROM stripe_sync.mrr_history(%s, %s) WHERE currency = 'usd'",
                     (days[0], days[-1]))
    got = {r["day"]: r for r in rows}
    assert len(got) == len(rows), "one row per day and currency"
    assert set(got) <= set(days), sorted(set(got) - set(days))
    fields = ("mrr", "new_mrr", "expansion_mrr", "contraction_mrr", "churned_mrr")
    problems = []
    for d in days:
        e, r = expected[d], got.get(d, {})
        if not any(e.values()) and not any((r.get(f) or 0) for f in fields):
            continue
        for f in fields:
            if not close(r.get(f), e[f]):
                problems.append(f"{d} {f}: view {r.get(f)} vs expected {float(e[f]):.6f}")
    assert not problems, "mrr_history differs:\n" + "\n".join(problems)


def test_customer_billing_state_matches_an_independent_computation(vc, stream):
    subs_of: dict[str, list[dict]] = defaultdict(list)
    for s in stream.final["subscription"].values():
        subs_of[s["customer"]].append(s)
    open_of: dict[str, list[dict]] = defaultdict(list)
    for inv in stream.final["invoice"].values():
        if inv["status"] == "open":
            open_of[inv["customer"]].append(inv)
    failed_charges: dict[str, list[dict]] = defaultdict(list)
    for ch in stream.final["charge"].values():
        if ch["status"] == "failed":
            failed_charges[ch["customer"]].append(ch)

    expected = {}
    for cid, cust in stream.final["customer"].items():
        if cid in stream.deleted:
            continue
        statuses = [s["status"] for s in subs_of[cid]]
        attempted = [i for i in open_of[cid] if (i.get("attempt_count") or 0) > 0]
        npa = [i["next_payment_attempt"] for i in open_of[cid] if i.get("next_payment_attempt")]
        last_fail = max(failed_charges[cid], key=lambda ch: ch["created"], default=None)
        expected[cid] = {
            "customer": cid, "_account_id": "", "email": cust["email"], "name": cust["name"],
            "subscription_status": min(statuses, key=SEVERITY.index) if statuses else None,
            "past_due_since": ts(min(i["created"] for i in attempted)) if attempted else None,
            "failed_payment_attempts": sum(i["attempt_count"] for i in attempted),
            "next_payment_attempt": ts(min(npa)) if npa else None,
            "last_failure_message": last_fail["failure_message"] if last_fail else None,
            "last_failure_at": ts(last_fail["created"]) if last_fail else None,
            "delinquent": cust.get("delinquent"),
        }
    assert any(e["subscription_status"] == "past_due" and e["failed_payment_attempts"] > 0
               for e in expected.values()), "the stream has no past-due customer"

    rows = dict_rows(vc, "SELECT * FROM stripe_sync.customer_billing_state WHERE customer = ANY(%s)",
                     (list(stream.final["customer"]),))
    got = {r["customer"]: r for r in rows}
    assert len(got) == len(rows), "one row per customer"
    assert set(got) == set(expected), (f"missing {sorted(set(expected) - set(got))[:5]},"
                                       f" extra (deleted?) {sorted(set(got) - set(expected))[:5]}")
    problems = []
    for cid, e in expected.items():
        r = dict(got[cid])
        r["failed_payment_attempts"] = r["failed_payment_attempts"] or 0
        diff = {k: (r.get(k), v) for k, v in e.items() if r.get(k) != v}
        if diff:
            problems.append(f"{cid}: " + ", ".join(f"{k}: view {a!r} vs expected {b!r}" for k, (a, b) in diff.items()))
    assert not problems, f"{len(problems)} customers differ:\n" + "\n".join(problems[:10])
    past_due = [r for r in rows if r["subscription_status"] == "past_due"]
    assert past_due and all(r["past_due_since"] is not None and r["failed_payment_attempts"] > 0 for r in past_due)


def test_active_entitlements_are_the_items_of_active_and_trialing_subscriptions(vc, stream):
    expected = set()
    for s in stream.final["subscription"].values():
        if s["status"] not in ("active", "trialing"):
            continue
        for it in s["items"]["data"]:
            price = it["price"]
            prod = stream.products[price["product"]]
            expected.add((s["customer"], s["id"], s["status"], it["id"], it["quantity"], price["id"],
                          price["lookup_key"], prod["id"], prod["name"], json.dumps(prod["metadata"], sort_keys=True),
                          json.dumps(price["metadata"], sort_keys=True), ts(it["current_period_end"])))
    assert len(expected) >= 10
    rows = dict_rows(vc, "SELECT * FROM stripe_sync.active_entitlements WHERE subscription = ANY(%s)",
                     (list(stream.final["subscription"]),))
    got = [(r["customer"], r["subscription"], r["subscription_status"], r["subscription_item"], r["quantity"],
            r["price"], r["price_lookup_key"], r["product"], r["product_name"],
            json.dumps(r["product_metadata"], sort_keys=True), json.dumps(r["price_metadata"], sort_keys=True),
            r["current_period_end"]) for r in rows]
    assert len(got) == len(set(got)), "duplicate entitlement rows"
    assert set(got) == expected, (sorted(set(got) - expected)[:3], sorted(expected - set(got))[:3])
    assert all(r["_account_id"] == "" for r in rows)


def test_alerts_need_a_url_even_with_alertable_events(vc, stream):
    n = sum(1 for e in stream.events if e["type"] == "invoice.payment_failed")
    assert n > 0
    assert vc.scalar("SELECT count(*) FROM stripe_sync.alerts") == 0


def test_mrr_normalises_intervals_quantities_discounts_and_statuses(vc):
    """Hand-built subscriptions in eur (the stream is usd): every rule of the spec."""
    now = int(time.time())
    cur = "eur"
    products = {k: product_obj(f"EUR {k}") for k in "ABCDEFGH"}
    P = {
        "month_1000": price_obj(products["A"]["id"], 1000, cur, "month"),
        "year_12000": price_obj(products["B"]["id"], 12000, cur, "year"),
        "3month_3000": price_obj(products["C"]["id"], 3000, cur, "month", 3),
        "week_700": price_obj(products["D"]["id"], 700, cur, "week"),
        "day_100": price_obj(products["E"]["id"], 100, cur, "day"),
        "metered": price_obj(products["F"]["id"], 5000, cur, "month", usage_type="metered"),
        "2year_24000": price_obj(products["G"]["id"], 24000, cur, "year", 2),
        "tiered": price_obj(products["H"]["id"], None, cur, "month", billing_scheme="tiered"),
    }
    pct25, off500, pct50, off1500 = (coupon_obj(percent_off=25), coupon_obj(amount_off=500, currency=cur),
                                     coupon_obj(percent_off=50), coupon_obj(amount_off=1500, currency=cur))
    c1, c2, c3 = (h.new_id("cus_") for _ in range(3))
    subs = {
        "A": subscription_obj(c1, "active", cur, [(P["month_1000"], 3), (P["metered"], 1)]),
        "B": subscription_obj(c1, "past_due", cur, [(P["year_12000"], 1)]),
        "C": subscription_obj(c2, "trialing", cur, [(P["month_1000"], 1)]),
        "D": subscription_obj(c2, "active", cur, [(P["month_1000"], 5)]),  # canceled below
        "E": subscription_obj(c2, "active", cur, [(P["3month_3000"], 1)], discount_coupon=pct25),
        "F": subscription_obj(c3, "active", cur, [(P["week_700"], 1)], discount_coupon=off500),
        "G": subscription_obj(c3, "active", cur, [(P["day_100"], 1)], discount_coupon=pct50,
                              discount_end=now - 86400),
        "H": subscription_obj(c3, "active", cur, [(P["month_1000"], 1)], discount_coupon=off1500),
        "I": subscription_obj(c3, "active", cur, [(P["2year_24000"], 1)]),
        "K": subscription_obj(c3, "active", cur, [(P["tiered"], 2)]),
    }
    payloads = [event("customer.created", h.customer_object(customer_id=cid, email=f"{cid}@example.com"),
                      created=now - 300) for cid in (c1, c2, c3)]
    payloads += [event("product.created", p, created=now - 290) for p in products.values()]
    payloads += [event("price.created", p, created=now - 280) for p in P.values()]
    payloads += [event("coupon.created", co, created=now - 270) for co in (pct25, off500, pct50, off1500)]
    payloads += [event("customer.subscription.created", s, created=now - 200) for s in subs.values()]
    canceled = dict(subs["D"], status="canceled", canceled_at=now - 100, ended_at=now - 100)
    payloads.append(event("customer.subscription.deleted", canceled, created=now - 100))
    wait_status(vc, send(vc, *payloads))
    subs["D"] = canceled

    expected = {k: sub_mrr(s, now) for k, s in subs.items()}
    # The rules, spelled out: 3 x 1000 + metered 0; 12000 / 12; trialing and canceled 0;
    # 3000 / 3 less 25 %; 700 x 52 / 12 less 500 x 52 / 12; an ended discount ignored:
    # 100 x 365 / 12; 1000 less 1500 stops at 0; 24000 / 24; no unit amount 0.
    assert expected == {"A": 3000, "B": 1000, "C": 0, "D": 0, "E": 750,
                        "F": Fraction(200 * 52, 12), "G": Fraction(100 * 365, 12), "H": 0, "I": 1000, "K": 0}
    by_product: dict[str, Fraction] = defaultdict(Fraction)
    for k, s in subs.items():
        items = s["items"]["data"]
        if len(items) == 1:  # the discounted ones: the whole subscription is this product
            by_product[items[0]["price"]["product"]] += expected[k]
        else:
            assert s.get("discount") is None
            for it in items:
                by_product[it["price"]["product"]] += item_mrr(it) if s["status"] in COUNTED else 0
    total = sum(expected.values(), Fraction(0))

    rows = dict_rows(vc, "SELECT * FROM stripe_sync.mrr WHERE currency = %s", (cur,))
    got = {r["product"]: r for r in rows}
    assert None in got, rows
    assert close(got[None]["mrr"], total), (got[None]["mrr"], float(total))
    assert got[None]["mrr_decimal"] == rounded(total / 100)
    for pid, m in by_product.items():
        if m:
            assert pid in got and close(got[pid]["mrr"], m), (products_name(products, pid), got.get(pid), float(m))
            assert got[pid]["mrr_decimal"] == rounded(m / 100)
            assert got[pid]["product_name"] == products_name(products, pid)
        else:
            assert pid not in got or close(got[pid]["mrr"], 0), (products_name(products, pid), got[pid])
    assert set(got) <= set(by_product) | {None}


def products_name(products: dict[str, dict], pid: str) -> str:
    return next(p["name"] for p in products.values() if p["id"] == pid)


def test_entitlements_example_has_feature(vc):
    run_sql_file(vc, EXAMPLES / "entitlements.sql")
    now = int(time.time())
    cur = "gbp"
    team = product_obj("Team", metadata={"features": "sso,audit_log"})
    addon = product_obj("Export add-on", metadata={})
    team_price = price_obj(team["id"], 5000, cur, lookup_key="team_plan")
    addon_price = price_obj(addon["id"], 900, cur, lookup_key="addon_export")
    x, y, z, w = (h.new_id("cus_") for _ in range(4))
    sub_x = subscription_obj(x, "active", cur, [(team_price, 1)])
    sub_y = subscription_obj(y, "trialing", cur, [(addon_price, 1)])
    sub_z = subscription_obj(z, "canceled", cur, [(team_price, 1)])
    payloads = [event("customer.created", h.customer_object(customer_id=cid), created=now - 300)
                for cid in (x, y, z, w)]
    payloads += [event("product.created", p, created=now - 290) for p in (team, addon)]
    payloads += [event("price.created", p, created=now - 280) for p in (team_price, addon_price)]
    payloads += [event("customer.subscription.created", s, created=now - 200) for s in (sub_x, sub_y, sub_z)]
    wait_status(vc, send(vc, *payloads))

    def has(customer: str, feature: str) -> bool:
        return vc.scalar("SELECT public.has_feature(%s, %s)", (customer, feature))

    cases = {
        (x, "sso"): True, (x, "audit_log"): True, (x, "team_plan"): True,
        (x, "audit"): False, (x, "billing"): False, (x, "addon_export"): False,
        (y, "addon_export"): True, (y, "sso"): False,
        (z, "sso"): False, (z, "team_plan"): False,
        (w, "sso"): False, ("cus_does_not_exist", "sso"): False,
    }
    wrong = {k: has(*k) for k in cases if has(*k) is not cases[k]}
    assert not wrong, f"has_feature answered wrong (customer, feature) -> got: {wrong}"

    # Canceling X's subscription takes its features away.
    canceled = dict(sub_x, status="canceled", canceled_at=now - 10, ended_at=now - 10)
    wait_status(vc, send(vc, event("customer.subscription.deleted", canceled, created=now - 10)))
    assert has(x, "sso") is False and has(x, "team_plan") is False
