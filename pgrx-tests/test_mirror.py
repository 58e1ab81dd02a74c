"""A mirror that heals itself: catch-up from its own watermark per account (never from
the newest event delivered), the worker's own catch-up, connected accounts kept apart,
payment methods and tax ids listed per customer, backfill('all') of every type, and
verify() finding and repairing drift. Against localstripe where it serves what is
tested, else against standin.StandIn (connected accounts, every type)."""

from __future__ import annotations

import json
import time

import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.standin import StandIn, StripeError

WINDOW = 30 * 86400
OVERLAP = 120  # stripe_sync_core::watermark::OVERLAP_SECONDS

# Every synced table: backfill('all') against a stand-in that serves every type fills each.
TABLES = ["customers", "products", "prices", "plans", "coupons", "subscriptions", "subscription_items",
          "invoices", "invoice_line_items", "invoice_items", "charges", "refunds", "payment_intents",
          "payment_methods", "setup_intents", "disputes", "credit_notes", "tax_ids", "checkout_sessions",
          "early_fraud_warnings", "subscription_schedules",
          # 0.8.0
          "credit_note_line_items", "balance_transactions", "payouts", "transfers", "transfer_reversals",
          "application_fees", "application_fee_refunds", "invoice_payments", "customer_balance_transactions",
          "promotion_codes", "tax_rates", "quotes", "reviews", "billing_meters", "entitlement_features",
          # 0.9.0
          "entitlement_summaries", "customer_entitlements", "product_features"]
# What makes a table a synced one: the columns every mirrored and child table has.
SYNCED_TABLES_SQL = """SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'stripe_sync'::regnamespace
   AND c.relkind = 'r' AND (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND NOT a.attisdropped
                            AND a.attname IN ('id', 'data', '_account_id', '_synced_at')) = 4"""


def notices_of(conn) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    conn.add_notice_handler(lambda d: seen.append((d.severity_nonlocalized, d.message_primary)))
    return seen


def applied(cluster, table: str, obj_id: str, account: str = "") -> bool:
    return cluster.scalar(f"SELECT count(*) FROM stripe_sync.{table} WHERE id = %s AND _account_id = %s",
                          (obj_id, account)) == 1


# ----------------------------------------------------------------- localstripe

def test_catch_up_recovers_an_event_older_than_the_newest_delivered(stand_in, api):
    """Stripe delivers new events while a missed one waits for its retry: catch_up() must still
    find the missed one (0.5.0 listed from the newest delivered event and returned 0)."""
    secret = h.new_webhook_secret()
    missed = api.v1.customers.create(params={"email": "missed-first@example.com"})
    time.sleep(1.1)
    delivered = api.v1.customers.create(params={"email": "delivered-second@example.com"})
    created = {e["data"]["object"]["id"]: e["id"] for e in
               api.v1.events.list(params={"type": "customer.created", "limit": 100}).auto_paging_iter()}
    with h.stripe_sync_cluster(secret, api_key=h.TEST_API_KEY, api_base=stand_in.base) as c:
        with c.connect() as conn:
            assert h.ingest(conn, stand_in.event_json(created[delivered.id]), secret) == "queued"
            h.wait_until(lambda: applied(c, "customers", delivered.id), timeout=30, what="the delivered event")
            queued = conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0]
        assert queued >= 1
        h.wait_until(lambda: applied(c, "customers", missed.id), timeout=30, what="the missed event to be applied")
        # The watermark is where this listing started, not the newest event.
        mark = c.scalar("SELECT high_water FROM stripe_sync.sync_cursors WHERE account = '' AND object = 'event'")
        assert abs(mark - time.time()) < 60
        assert c.scalar("SELECT last_catch_up_at IS NOT NULL FROM stripe_sync.accounts WHERE id = ''")


def test_backfill_all_lists_cards_and_tax_ids_per_customer(stand_in, api):
    """backfill('all') completes against localstripe; payment methods and tax ids come from each
    customer's own lists (GET /v1/payment_methods without a customer is a 400 there)."""
    customers = [api.v1.customers.create(params={"email": f"wallet{i}@example.com"}) for i in range(3)]
    cards = []
    for cus in customers[:2]:
        pm = api.v1.payment_methods.create(params={"type": "card", "card": {
            "number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}})
        api.v1.payment_methods.attach(pm.id, params={"customer": cus.id})
        cards.append((pm.id, cus.id))
    status, body = stand_in.request("POST", f"/v1/customers/{customers[0].id}/tax_ids",
                                    {"type": "eu_vat", "value": "DE123456789"})
    assert status == 200, body
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=stand_in.base) as c:
        with c.connect() as conn:
            seen = notices_of(conn)
            conn.execute("SELECT stripe_sync.backfill('all')")
        skipped = [m for sev, m in seen if sev == "WARNING"]
        assert not any("payment_method" in m or "tax_id" in m for m in skipped), skipped
        mine = c.query("SELECT id, customer FROM stripe_sync.payment_methods WHERE customer = ANY(%s) ORDER BY id",
                       ([cus.id for cus in customers],))
        assert mine == sorted(cards)
        assert c.query("SELECT customer, value FROM stripe_sync.tax_ids WHERE customer = %s",
                       (customers[0].id,)) == [(customers[0].id, "DE123456789")]
        statuses = dict(c.query("SELECT object, status FROM stripe_sync.sync_runs"
                                " WHERE object IN ('payment_method', 'tax_id')"))
        assert statuses == {"payment_method": "completed", "tax_id": "completed"}


# ------------------------------------------------------------------- stand-in

@pytest.fixture(scope="module")
def standin():
    with StandIn(start_created=int(time.time()) - 10 * 86400) as api:
        yield api


def test_backfill_all_fills_every_table_from_a_stand_in_that_serves_every_type(standin):
    customers = standin.add("/v1/customers", 3)
    for path in ("/v1/products", "/v1/prices", "/v1/plans", "/v1/coupons", "/v1/subscriptions",
                 "/v1/subscription_schedules", "/v1/invoices", "/v1/invoiceitems", "/v1/payment_intents",
                 "/v1/setup_intents", "/v1/charges", "/v1/refunds", "/v1/disputes", "/v1/credit_notes",
                 "/v1/checkout/sessions", "/v1/radar/early_fraud_warnings", "/v1/accounts",
                 "/v1/balance_transactions", "/v1/payouts", "/v1/transfers", "/v1/application_fees",
                 "/v1/invoice_payments", "/v1/promotion_codes", "/v1/tax_rates", "/v1/quotes", "/v1/reviews",
                 "/v1/billing/meters", "/v1/entitlements/features"):
        standin.add(path, 2)
    owner = lambda i, o: o.update(customer=customers[i]["id"])  # noqa: E731
    standin.add("/v1/customer_balance_transactions", 2, vary=owner)
    cards = standin.add("/v1/payment_methods", 3, vary=owner)
    tax_ids = standin.add("/v1/tax_ids", 2, vary=owner)
    standin.add("/v1/tax_ids", 1, vary=lambda i, o: o.update(customer=None))  # the account's own
    standin.add_entitlements(customers[0]["id"], 2)
    products = standin.listed("/v1/products")
    standin.add_product_features(products[0]["id"], 2)
    standin.forget_requests()
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=standin.base) as c:
        with c.connect() as conn:
            seen = notices_of(conn)
            conn.execute("SELECT stripe_sync.backfill('all')")
        assert [m for sev, m in seen if sev == "WARNING"] == []
        assert sorted(r[0] for r in c.query(SYNCED_TABLES_SQL)) == sorted(TABLES)
        empty = [t for t in TABLES if c.scalar(f"SELECT count(*) FROM stripe_sync.{t}") == 0]
        assert empty == []
        assert c.scalar("SELECT count(*) FROM stripe_sync.accounts WHERE id LIKE 'acct%' AND data IS NOT NULL") == 2
        assert sorted(r[0] for r in c.query("SELECT id FROM stripe_sync.payment_methods")) == \
            sorted(o["id"] for o in cards)
        assert sorted(r[0] for r in c.query("SELECT id FROM stripe_sync.tax_ids")) == sorted(o["id"] for o in tax_ids)
        assert standin.count("/v1/payment_methods") == 0 and standin.count("/v1/tax_ids") == 0
        assert {r["path"] for r in standin.requests() if r["path"].endswith(("/payment_methods", "/tax_ids"))} == \
            {f"/v1/customers/{o['id']}/{sub}" for o in customers for sub in ("payment_methods", "tax_ids")}


def test_each_account_catches_up_from_its_own_watermark(standin):
    now = int(time.time())
    acct = standin.add("/v1/accounts", 1)[0]["id"]
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=standin.base) as c:
        with c.connect() as conn:
            conn.execute("SELECT stripe_sync.backfill('account')")
        assert c.scalar("SELECT count(*) FROM stripe_sync.accounts WHERE id = %s", (acct,)) == 1
        # The same coupon id in the platform and in the connected account.
        ours = standin.add("/v1/coupons", 1, vary=lambda i, o: o.update(id="SUMMER", percent_off=5))[0]
        theirs = standin.add("/v1/coupons", 1, account=acct,
                             vary=lambda i, o: o.update(id="SUMMER2", percent_off=50))[0]
        theirs = dict(theirs, id="SUMMER")  # served under the platform's id, in the other account
        standin.add_event("coupon.created", ours, created=now - 3600)
        standin.add_event("coupon.created", theirs, account=acct, created=now - 3500)
        standin.forget_requests()
        with c.connect() as conn:
            assert conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0] == 2
        h.wait_until(lambda: c.query("SELECT _account_id, percent_off FROM stripe_sync.coupons WHERE id = 'SUMMER'"
                                     " ORDER BY 1") == [("", 5), (acct, 50)], timeout=30,
                     what="both accounts' coupon SUMMER, each in its own row")
        first = {r["account"]: int(r["params"]["created[gte]"]) for r in standin.requests("/v1/events")}
        assert {None, acct} <= set(first)
        assert all(abs(gte - (now - WINDOW)) < 60 for gte in first.values()), first  # first runs: the window
        marks = dict(c.query("SELECT account, high_water FROM stripe_sync.sync_cursors WHERE object = 'event'"))
        assert {"", acct} <= set(marks)
        # The connected account alone, later: from its own watermark, with the overlap.
        time.sleep(1.1)
        standin.forget_requests()
        with c.connect() as conn:
            assert conn.execute("SELECT stripe_sync.catch_up(%s)", (acct,)).fetchone()[0] == 0
        again = [(r["account"], int(r["params"]["created[gte]"])) for r in standin.requests("/v1/events")]
        assert again == [(acct, marks[acct] - OVERLAP)]
        newer = dict(c.query("SELECT account, high_water FROM stripe_sync.sync_cursors WHERE object = 'event'"))
        assert newer[acct] > marks[acct] and newer[""] == marks[""]
        runs = c.query("SELECT account, status FROM stripe_sync.sync_runs WHERE kind = 'catch_up'"
                       " AND coalesce(account, '') IN ('', %s) ORDER BY id", (acct,))
        assert runs == [(None, "completed"), (acct, "completed"), (acct, "completed")]


def test_the_worker_catches_up_by_itself(standin):
    now = int(time.time())
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=standin.base,
                               catch_up_interval=1) as c:
        cus = standin.add("/v1/customers", 1)[0]
        standin.add_event("customer.created", cus, created=now - 60)
        h.wait_until(lambda: applied(c, "customers", cus["id"]), timeout=60,
                     what="the worker's own catch-up to bring the event in")
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE kind = 'catch_up' AND status = 'completed'") >= 1
        # Off: no new run starts.
        c.query("ALTER SYSTEM SET stripe_sync.catch_up_interval = 0")
        c.reload()
        time.sleep(1)
        runs = c.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE kind = 'catch_up'")
        h.holds_for(lambda: c.scalar("SELECT count(*) FROM stripe_sync.sync_runs WHERE kind = 'catch_up'") == runs,
                    12.0, what="no catch-up while catch_up_interval is 0")


def test_verify_finds_missing_extra_and_changed_rows_and_repair_fixes_them(standin):
    standin.add("/v1/customers", 5)
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=standin.base) as c:
        with c.connect() as conn:
            conn.execute("SELECT stripe_sync.backfill('customer', 'epoch')")
        ids = [r[0] for r in c.query("SELECT id FROM stripe_sync.customers ORDER BY id")]
        assert len(ids) >= 3
        time.sleep(1.1)  # rows written in the second of a listing are not compared
        gone, changed_here, changed_there = ids[:3]
        c.query("DELETE FROM stripe_sync.customers WHERE id = %s", (gone,))
        c.query("UPDATE stripe_sync.customers SET email = 'drift@example.com',"
                " data = jsonb_set(data, '{email}', '\"drift@example.com\"') WHERE id = %s", (changed_here,))
        c.query("INSERT INTO stripe_sync.customers (id, data, _last_event_at)"
                " VALUES ('cus_extra', '{\"id\": \"cus_extra\", \"object\": \"customer\"}', now() - interval '1 hour')")
        standin.update(changed_there, name="Renamed in Stripe")
        snapshot = "SELECT id, data, _deleted, _last_event_at FROM stripe_sync.customers ORDER BY id"
        before = c.query(snapshot)
        with c.connect() as conn:
            row = conn.execute("SELECT object, account, listed, missing, extra, differs, repaired"
                               " FROM stripe_sync.verify('customer')").fetchall()
        listed = len(standin.listed("/v1/customers"))
        assert row == [("customer", "", listed, 1, 1, 2, 0)]
        assert c.query(snapshot) == before, "verify without repair writes nothing to the mirror"
        drift = c.query("SELECT id, kind, fields FROM stripe_sync.drift ORDER BY id")
        assert sorted(drift) == sorted([(gone, "missing", None), ("cus_extra", "extra", None),
                                        (changed_here, "differs", ["email"]),
                                        (changed_there, "differs", ["name"])])
        run = c.query("SELECT kind, status, missing, extra, differs FROM stripe_sync.sync_runs"
                      " WHERE kind = 'verify'")
        assert run == [("verify", "completed", 1, 1, 2)]
        with c.connect() as conn:
            fixed = conn.execute("SELECT repaired FROM stripe_sync.verify('customers', repair => true)").fetchone()[0]
        assert fixed == 4
        assert c.scalar("SELECT _deleted FROM stripe_sync.customers WHERE id = 'cus_extra'") is True
        live = dict(c.query("SELECT id, data FROM stripe_sync.customers WHERE NOT _deleted"))
        assert live == {o["id"]: o for o in standin.listed("/v1/customers")}
        with c.connect() as conn:
            clean = conn.execute("SELECT missing, extra, differs FROM stripe_sync.verify('customer')").fetchone()
        assert clean == (0, 0, 0)
        assert c.scalar("SELECT count(*) FROM stripe_sync.verify_listed") == 0


def test_verify_checks_its_arguments(standin):
    with h.stripe_sync_cluster(h.new_webhook_secret(), api_key=h.TEST_API_KEY, api_base=standin.base) as c:
        with c.connect() as conn:
            for call, state in (("stripe_sync.verify('nonsense')", "22023"),
                                ("stripe_sync.verify('customer', 'cus_1')", "22023")):
                with pytest.raises(Exception) as err:
                    conn.execute(f"SELECT * FROM {call}")
                assert getattr(err.value, "sqlstate", None) == state, (call, err.value)
        c.query("CREATE ROLE verify_app LOGIN")
        with c.connect(user="verify_app") as app:
            for call in ("stripe_sync.verify('customer')", "stripe_sync.forget_account('acct_1')"):
                with pytest.raises(Exception) as err:
                    app.execute(f"SELECT * FROM {call}")
                assert getattr(err.value, "sqlstate", None) == "42501", (call, err.value)
        assert c.scalar("SELECT count(*) FROM stripe_sync.sync_runs") == 0


def test_a_tie_is_re_read_by_its_type_whatever_its_id(standin):
    """Coupons have no id prefix, and products and plans often carry ids their owner chose: a
    same-second tie is re-read by the type the apply recorded, in its own account."""
    secret = h.new_webhook_secret()
    coupon = standin.add("/v1/coupons", 1, vary=lambda i, o: o.update(id="WINTER", percent_off=15))[0]
    with h.stripe_sync_cluster(secret, api_key=h.TEST_API_KEY, api_base=standin.base) as c:
        t = int(time.time()) - 30
        with c.connect() as conn:
            for n, pct in ((1, 20), (2, 30)):
                event = dict(coupon, percent_off=pct)
                payload = json.dumps({"id": f"evt_winter{n}", "object": "event", "type": "coupon.updated",
                                      "created": t, "api_version": "2026-07-29.dahlia",
                                      "data": {"object": event}})
                assert h.ingest(conn, payload, secret) == "queued"
        h.wait_until(lambda: c.query("SELECT _last_event_type, percent_off FROM stripe_sync.coupons"
                                     " WHERE _account_id = '' AND id = 'WINTER'")
                     == [("stripe_sync.fetched", 15)], timeout=30,
                     what="the tie to be settled by a re-read of /v1/coupons/WINTER")
        assert c.scalar("SELECT count(*) FROM stripe_sync.refresh_requests") == 0
        assert standin.count("/v1/coupons/WINTER") >= 1


def test_a_refused_re_read_waits_an_hour_instead_of_every_second(standin):
    """A partial child list whose parent the key may not read (403): the worker must not ask
    again every second; it asks again once the hour is up, and completes the list then."""
    secret = h.new_webhook_secret()
    sub = standin.add("/v1/subscriptions", 1, children=25)[0]
    path = f"/v1/subscriptions/{sub['id']}"
    handle = standin.handle

    def refusing(method, p, params, **kw):
        if p == path:
            raise StripeError(403, "The provided key does not have access to this subscription.")
        return handle(method, p, params, **kw)

    standin.handle = refusing
    try:
        with h.stripe_sync_cluster(secret, api_key=h.TEST_API_KEY, api_base=standin.base) as c:
            standin.forget_requests()
            event = json.dumps({"id": h.new_id("evt_"), "object": "event", "type": "customer.subscription.updated",
                                "created": int(time.time()), "api_version": "2026-07-29.dahlia",
                                "data": {"object": standin.render(sub)}})
            with c.connect() as conn:
                assert h.ingest(conn, event, secret) == "queued"
            h.wait_until(lambda: standin.count(path) >= 1, timeout=30, what="the first re-read")
            deferred = "SELECT requested_at > now() + interval '50 minutes' FROM stripe_sync.refresh_requests WHERE id = %s"
            h.wait_until(lambda: c.scalar(deferred, (sub["id"],)), timeout=30, what="the re-read to be deferred")
            time.sleep(4)
            assert standin.count(path) == 1, "asked again within the hour"
            assert c.scalar("SELECT _children_complete FROM stripe_sync.subscriptions WHERE id = %s", (sub["id"],)) \
                is False
            # The key may read it now; the hour is up.
            del standin.handle
            c.query("UPDATE stripe_sync.refresh_requests SET requested_at = now() - interval '1 second'")
            h.wait_until(lambda: c.scalar("SELECT _children_complete FROM stripe_sync.subscriptions WHERE id = %s",
                                          (sub["id"],)), timeout=30, what="the list completed by a later re-read")
            assert c.scalar("SELECT count(*) FROM stripe_sync.subscription_items WHERE subscription = %s",
                            (sub["id"],)) == 25
            assert c.scalar("SELECT count(*) FROM stripe_sync.refresh_requests") == 0
    finally:
        standin.__dict__.pop("handle", None)
