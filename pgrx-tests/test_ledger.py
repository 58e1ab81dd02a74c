"""The money ledger and the objects around it (0.8.0) against standin.StandIn: a backfill of
each new type from the stand-in's list pages (typed columns checked against the objects), the
customer balance transactions listed customer by customer, the child lists of credit notes,
transfers and application fees completed past ten, re-reads by id, lists without a created
filter at Stripe listed in full again, catch_up() keeping balance transactions current (new ones
listed, pending ones re-read once available), and the views balance_by_month and invoice_money
checked against what Python computes from the same objects. The tests of the module's cluster
run in order; the catch-up and balance_by_month tests have a stand-in and a cluster of their own.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.standin import StandIn, StripeError
# cluster: test_standin's module fixture, a cluster on this module's own stand-in (api below)
from test_standin import (  # noqa: F401
    backfill, check_first_backfill, check_sync_object, cluster, last_run, table_data)

DAY = 86400
OVERLAP = 120  # stripe_sync_core::watermark::OVERLAP_SECONDS


def _field(key):
    return lambda o: o[key]


def _at(*path):
    """The value at ``path`` of an object, None where a step is missing or null."""
    def get(o):
        for key in path:
            o = (o or {}).get(key)
        return o
    return get


def _decimal(key):
    return lambda o: None if o[key] is None else Decimal(str(o[key]))


def _fields(*keys):
    return {k: _field(k) for k in keys}


def _epochs(**paths):
    """SQL ``extract(epoch FROM column)`` -> the unix time at its path in the object."""
    return {f"extract(epoch FROM {col})::bigint": _at(*path) for col, path in paths.items()}


CATEGORIES = ("charge", "refund", "dispute", "fee", "payout", "transfer")


def _vary_txn(i, o):
    category = CATEGORIES[i % len(CATEGORIES)]
    amount = 1000 + i if category == "charge" else -(100 + i)
    fee = 59 + i % 7 if category in ("charge", "dispute") else 0
    o.update(amount=amount, fee=fee, net=amount - fee, currency=("usd", "eur")[i % 2], reporting_category=category,
             type={"fee": "stripe_fee"}.get(category, category), source=f"ch_L{i}",
             status=("available", "pending")[i % 2], available_on=o["created"] + 2 * DAY,
             exchange_rate=1.0833 if i % 3 == 0 else None, description=f"txn {i}",
             fee_details=[{"amount": fee, "application": None, "currency": "usd", "description": "Stripe fee",
                           "type": "stripe_fee"}] if fee else [])


def _vary_payout(i, o):
    status = ("paid", "pending", "in_transit", "canceled", "failed")[i % 5]
    o.update(amount=5000 + i, status=status, arrival_date=o["created"] + DAY, automatic=i % 2 == 0,
             balance_transaction=f"txn_P{i}", destination=f"ba_P{i % 3}", method=("standard", "instant")[i % 2],
             failure_code="account_closed" if status == "failed" else None, metadata={"batch": str(i)},
             reconciliation_status=("completed", "in_progress", "not_applicable")[i % 3])


def _vary_transfer(i, o):
    o.update(amount=2000 + i, amount_reversed=i % 11, destination=f"acct_D{i % 4}", reversed=i % 5 == 0,
             transfer_group=f"ORDER_{i}", source_transaction=f"ch_S{i}" if i % 2 else None, description=f"tr {i}")


def _vary_fee(i, o):
    o.update(account=f"acct_F{i % 3}", amount=100 + i, amount_refunded=i % 10, charge=f"ch_A{i}",
             refunded=i % 4 == 0, originating_transaction=f"ch_O{i}" if i % 2 else None)


def _vary_invoice_payment(i, o):
    status = ("paid", "open", "canceled")[i % 3]
    o.update(invoice=f"in_P{i}", amount_paid=1500 + i if status == "paid" else None, amount_requested=1500 + i,
             currency=("usd", "eur")[i % 2], status=status, is_default=i % 2 == 0,
             payment={"type": "payment_intent", "payment_intent": f"pi_P{i}"} if i % 2
             else {"type": "charge", "charge": f"ch_P{i}"},
             status_transitions={"paid_at": o["created"] + 60 if status == "paid" else None,
                                 "canceled_at": o["created"] + 120 if status == "canceled" else None})


def _vary_promotion_code(i, o):
    o.update(code=f"CODE{i}", active=i % 2 == 0, promotion={"type": "coupon", "coupon": f"CPN{i % 5}"},
             customer=f"cus_Q{i}" if i % 3 == 0 else None, expires_at=o["created"] + 30 * DAY,
             max_redemptions=i or None, times_redeemed=i % 4)
    o["restrictions"]["minimum_amount"] = 100 * i


def _vary_tax_rate(i, o):
    k = i % 3
    o.update(display_name=("VAT", "GST", "Sales tax")[k], percentage=(19, 7.5, 8.875)[k], inclusive=i % 2 == 0,
             country=("DE", "AU", "US")[k], state="NY" if k == 2 else None, jurisdiction=f"J{i}",
             tax_type=("vat", "gst", "sales_tax")[k], rate_type=("percentage", None)[i % 2], active=i % 4 != 0,
             effective_percentage=(19, 7.5, 8.875)[k] if i % 2 else None)


def _vary_quote(i, o):
    status = ("draft", "open", "accepted", "canceled")[i % 4]
    o.update(customer=f"cus_Q{i % 6}", status=status, number=None if status == "draft" else f"QT-{i:04}",
             amount_subtotal=900 + i, amount_total=1000 + i, expires_at=o["created"] + 14 * DAY,
             collection_method=("charge_automatically", "send_invoice")[i % 2],
             invoice=f"in_Q{i}" if status == "accepted" else None, description=f"quote {i}",
             status_transitions={"accepted_at": o["created"] + 300 if status == "accepted" else None,
                                 "canceled_at": o["created"] + 400 if status == "canceled" else None,
                                 "finalized_at": None if status == "draft" else o["created"] + 200})


def _vary_review(i, o):
    is_open = i % 2 == 0
    o.update(charge=f"ch_R{i}", open=is_open, opened_reason=("rule", "manual")[i % 2],
             closed_reason=None if is_open else ("approved", "refunded", "disputed")[i % 3],
             reason="rule" if is_open else "approved", billing_zip=f"{10000 + i}", ip_address=f"10.0.0.{i % 250}")


def _vary_meter(i, o):
    active = i % 2 == 0
    o.update(display_name=f"Meter {i}", event_name=f"api_calls_{i}", status="active" if active else "inactive",
             default_aggregation={"formula": ("sum", "count", "last")[i % 3]}, updated=o["created"] + i,
             status_transitions={"deactivated_at": None if active else o["created"] + DAY},
             event_time_window=("day", None)[i % 2], customer_mapping={"event_payload_key": f"c{i}", "type": "by_id"})


def _vary_feature(i, o):
    o.update(name=f"Feature {i}", lookup_key=f"feature_{i}", active=i % 5 != 0, metadata={"tier": str(i % 3)})


# object -> (path, table, how many, vary, spot checks: SQL expression -> value from the object)
KINDS = {
    "balance_transaction": ("/v1/balance_transactions", "balance_transactions", 131, _vary_txn, {
        **_fields("amount", "fee", "net", "currency", "reporting_category", "type", "status", "source",
                  "fee_details", "balance_type", "description"),
        "exchange_rate": _decimal("exchange_rate"), **_epochs(available_on=["available_on"], created=["created"])}),
    "payout": ("/v1/payouts", "payouts", 105, _vary_payout, {
        **_fields("amount", "status", "automatic", "balance_transaction", "destination", "method", "failure_code",
                  "reconciliation_status", "metadata", "type", "currency"),
        **_epochs(arrival_date=["arrival_date"], created=["created"])}),
    "transfer": ("/v1/transfers", "transfers", 103, _vary_transfer, {
        **_fields("amount", "amount_reversed", "destination", "destination_payment", "reversed", "transfer_group",
                  "source_transaction", "description", "balance_transaction"), **_epochs(created=["created"])}),
    "application_fee": ("/v1/application_fees", "application_fees", 102, _vary_fee, {
        **_fields("account", "application", "amount", "amount_refunded", "charge", "refunded",
                  "originating_transaction", "balance_transaction"), **_epochs(created=["created"])}),
    "invoice_payment": ("/v1/invoice_payments", "invoice_payments", 104, _vary_invoice_payment, {
        **_fields("invoice", "amount_paid", "amount_requested", "currency", "status", "is_default"),
        "payment_type": _at("payment", "type"), "payment_intent": _at("payment", "payment_intent"),
        "charge": _at("payment", "charge"),
        **_epochs(paid_at=["status_transitions", "paid_at"], canceled_at=["status_transitions", "canceled_at"],
                  created=["created"])}),
    "promotion_code": ("/v1/promotion_codes", "promotion_codes", 101, _vary_promotion_code, {
        **_fields("code", "active", "customer", "max_redemptions", "times_redeemed", "restrictions"),
        "coupon": _at("promotion", "coupon"), **_epochs(expires_at=["expires_at"], created=["created"])}),
    "tax_rate": ("/v1/tax_rates", "tax_rates", 106, _vary_tax_rate, {
        **_fields("display_name", "inclusive", "country", "state", "jurisdiction", "tax_type", "rate_type", "active"),
        "percentage": _decimal("percentage"), "effective_percentage": _decimal("effective_percentage"),
        **_epochs(created=["created"])}),
    "quote": ("/v1/quotes", "quotes", 107, _vary_quote, {
        **_fields("customer", "status", "number", "amount_subtotal", "amount_total", "collection_method", "invoice",
                  "description", "currency"),
        **_epochs(expires_at=["expires_at"], accepted_at=["status_transitions", "accepted_at"],
                  canceled_at=["status_transitions", "canceled_at"],
                  finalized_at=["status_transitions", "finalized_at"], created=["created"])}),
    "review": ("/v1/reviews", "reviews", 101, _vary_review, {
        **_fields("charge", "open", "opened_reason", "closed_reason", "reason", "billing_zip", "ip_address"),
        **_epochs(created=["created"])}),
    "billing.meter": ("/v1/billing/meters", "billing_meters", 102, _vary_meter, {
        **_fields("display_name", "event_name", "status", "event_time_window", "customer_mapping", "value_settings"),
        "default_aggregation": _at("default_aggregation", "formula"),
        **_epochs(deactivated_at=["status_transitions", "deactivated_at"], updated=["updated"],
                  created=["created"])}),
    "entitlements.feature": ("/v1/entitlements/features", "entitlement_features", 103, _vary_feature, {
        **_fields("name", "lookup_key", "active", "metadata", "livemode")}),
}
CUSTOMERS = 6


@pytest.fixture(scope="module")
def api():
    with StandIn() as s:
        for path, _, n, vary, _ in KINDS.values():
            s.add(path, n, vary)
        yield s


@pytest.mark.parametrize("obj", list(KINDS))
def test_backfill_of_each_ledger_type_from_the_list_pages(cluster, api, obj):
    path, table, n, _, checks = KINDS[obj]
    check_first_backfill(cluster, api, obj, path, table, n, checks)
    assert cluster.scalar(f"SELECT count(*) FROM stripe_sync.{table} WHERE _account_id <> ''") == 0


@pytest.mark.parametrize("obj", ["quote", "billing.meter", "entitlements.feature"])
def test_a_list_without_created_filter_is_listed_in_full_again(cluster, api, obj):
    """Stripe's quotes, billing meters and entitlement features take no created[...] parameter
    (a 400 there, and in the stand-in): a later run lists them in full."""
    path, table, n, vary, _ = KINDS[obj]
    added = api.add(path, 2, vary)
    api.forget_requests()
    got, _ = backfill(cluster, obj)
    assert [r["params"] for r in api.requests()] == [{"limit": "100"}, {"limit": "100",
                                                                          "starting_after": api.listed(path)[99]["id"]}]
    assert got == n + 2
    assert set(table_data(cluster, table)) == {o["id"] for o in api.listed(path)} >= {o["id"] for o in added}
    assert last_run(cluster, obj)[0] == "completed"


def test_a_list_with_created_filter_goes_on_from_its_newest(cluster, api):
    high = max(o["created"] for o in api.listed("/v1/payouts"))
    added = api.add("/v1/payouts", 3, _vary_payout)
    api.forget_requests()
    got, _ = backfill(cluster, "payout")
    assert [r["params"] for r in api.requests()] == [{"limit": "100", "created[gte]": str(high)}]
    assert got == len(api.listed("/v1/payouts", **{"created[gte]": str(high)})) >= 3
    assert {o["id"] for o in added} <= set(table_data(cluster, "payouts"))


def test_customer_balance_transactions_are_listed_customer_by_customer(cluster, api):
    customers = api.add("/v1/customers", CUSTOMERS)
    per = {c["id"]: 13 if k == 0 else k for k, c in enumerate(customers)}  # one has more than a page of ten
    made = []
    for cid, n in per.items():
        made += api.add("/v1/customer_balance_transactions", n, lambda i, o, cid=cid: o.update(
            customer=cid, amount=-500 - i, ending_balance=-1000 - i, type=("adjustment", "applied_to_invoice")[i % 2],
            invoice=f"in_B{i}" if i % 2 else None, credit_note=f"cn_B{i}" if i % 3 == 0 else None,
            description=f"credit {i}", metadata={"i": str(i)}))
    backfill(cluster, "customer")
    api.forget_requests()
    got, _ = backfill(cluster, "customer_balance_transaction")
    assert got == len(made) == sum(per.values())
    assert table_data(cluster, "customer_balance_transactions") == {o["id"]: o for o in made}
    asked = sorted(r["path"] for r in api.requests())
    assert asked == sorted(f"/v1/customers/{cid}/balance_transactions" for cid in per)
    checks = {**_fields("customer", "type", "amount", "ending_balance", "currency", "invoice", "credit_note",
                        "description", "metadata", "customer_account"), **_epochs(created=["created"])}
    rows = cluster.query(f"SELECT id, {', '.join(checks)} FROM stripe_sync.customer_balance_transactions")
    by_id = {o["id"]: o for o in made}
    assert sorted(r[0] for r in rows) == sorted(by_id)
    for row in rows:
        assert tuple(row[1:]) == tuple(f(by_id[row[0]]) for f in checks.values()), row[0]
    assert last_run(cluster, "customer_balance_transaction")[0] == "completed"


# parent object -> (collection, table, child table, parent column, embedded list)
PARENTS = {
    "credit_note": ("/v1/credit_notes", "credit_notes", "credit_note_line_items", "credit_note", "lines"),
    "transfer": ("/v1/transfers", "transfers", "transfer_reversals", "transfer", "reversals"),
    "application_fee": ("/v1/application_fees", "application_fees", "application_fee_refunds", "fee", "refunds"),
}


@pytest.mark.parametrize("obj", list(PARENTS))
def test_child_lists_past_ten_are_completed_then_replaced(cluster, api, obj):
    path, table, child_table, parent_column, field = PARENTS[obj]
    big = api.add(path, 1, children=25)[0]
    small = api.add(path, 1, children=3)[0]
    assert big[field]["has_more"] and len(big[field]["data"]) == 10
    rest = f"{path}/{big['id']}/{field}"
    assert big[field]["url"] == rest
    api.forget_requests()
    backfill(cluster, obj)
    children = lambda parent: sorted(r[0] for r in cluster.query(  # noqa: E731
        f"SELECT id FROM stripe_sync.{child_table} WHERE {parent_column} = %s", (parent,)))
    for parent in (big, small):
        assert children(parent["id"]) == sorted(c["id"] for c in api.children[parent["id"]])
    assert len(children(big["id"])) == 25
    assert api.count(rest) == 1 and api.count(f"{path}/{small['id']}/{field}") == 0
    assert cluster.query(f"SELECT _children_complete, jsonb_array_length(data->'{field}'->'data')"
                         f" FROM stripe_sync.{table} WHERE id = %s", (big["id"],)) == [(True, 25)]
    one = api.children[big["id"]][17]
    assert cluster.query(f"SELECT data, _account_id FROM stripe_sync.{child_table} WHERE id = %s", (one["id"],)) == \
        [(one, "")]

    removed = [c["id"] for c in api.children[big["id"]][8:14]]
    api.remove_children(big["id"], removed)
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.sync_object(%s)", (big["id"],)).fetchone()[0] == table
    assert children(big["id"]) == sorted(c["id"] for c in api.children[big["id"]])
    assert len(children(big["id"])) == 19


@pytest.mark.parametrize("obj, field, value", [
    ("balance_transaction", "description", "Refetched txn"),
    ("payout", "failure_message", "Refetched payout"),
    ("transfer", "description", "Refetched"),
    ("application_fee", "amount_refunded", 77),
    ("invoice_payment", "amount_requested", 4242),
    ("promotion_code", "code", "REFETCHED"),
    ("tax_rate", "display_name", "Refetched VAT"),
    ("quote", "description", "Refetched quote"),
    ("review", "reason", "refunded_as_fraud"),
    ("billing.meter", "display_name", "Refetched meter"),
    ("entitlements.feature", "name", "Refetched feature"),
])
def test_sync_object_by_prefix(cluster, api, obj, field, value):
    path, table, *_ = KINDS[obj]
    check_sync_object(cluster, api, path, table, field, value)


def test_invoice_money_goes_from_an_invoice_through_its_payments(cluster, api):
    """An invoice paid in two payments (one through a payment intent, one by a charge), with a
    canceled attempt, and a payment of another account naming the same invoice id."""
    t = int(time.time())
    txns = api.add("/v1/balance_transactions", 2, lambda i, o: o.update(
        amount=(3000, 2000)[i], fee=(117, 88)[i], net=(2883, 1912)[i], status=("available", "pending")[i],
        reporting_category="charge", type="charge"))
    charges = api.add("/v1/charges", 2, lambda i, o: o.update(
        amount=(3000, 2000)[i], amount_refunded=(700, 0)[i], balance_transaction=txns[i]["id"],
        payment_intent=None))
    intent = api.add("/v1/payment_intents", 1, lambda i, o: o.update(latest_charge=charges[0]["id"]))[0]
    invoice = api.add("/v1/invoices", 1, lambda i, o: o.update(
        status="paid", total=5000, amount_paid=5000, currency="usd", customer="cus_Money"))[0]
    payment = {"type": "payment_intent", "payment_intent": intent["id"]}

    def vary_payment(i, o):
        o.update(invoice=invoice["id"], currency="usd", is_default=i == 0, amount_requested=5000,
                 amount_paid=(3000, 2000, None)[i], status=("paid", "paid", "canceled")[i],
                 payment=(payment, {"type": "charge", "charge": charges[1]["id"]}, payment)[i],
                 status_transitions={"paid_at": (t - 60, t - 30, None)[i], "canceled_at": (None, None, t - 90)[i]})
    payments = api.add("/v1/invoice_payments", 3, vary_payment)
    theirs = api.add("/v1/invoice_payments", 1, vary_payment, account="acct_1Elsewhere")[0]
    for obj in ("balance_transaction", "charge", "payment_intent", "invoice", "invoice_payment"):
        backfill(cluster, obj)
    with cluster.connect() as conn:
        conn.execute("SELECT stripe_sync.backfill('invoice_payment', account => 'acct_1Elsewhere')")
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.invoice_payments WHERE id = %s", (theirs["id"],)) == 1

    def expected(p, charge, txn):
        return ("", invoice["id"], "cus_Money", "paid", "usd", 5000, 5000, p["id"], p["status"], p["is_default"],
                p["amount_paid"], p["status_transitions"]["paid_at"], p["payment"]["type"],
                p["payment"].get("payment_intent"), charge and charge["id"], charge and charge["amount_refunded"],
                txn and txn["fee"], txn and txn["net"], txn and txn["status"])
    want = sorted([expected(payments[0], charges[0], txns[0]), expected(payments[1], charges[1], txns[1]),
                   expected(payments[2], charges[0], txns[0])], key=lambda r: r[7])
    got = cluster.query("SELECT _account_id, invoice, customer, invoice_status, currency, total,"
                  " invoice_amount_paid, invoice_payment, payment_status, is_default, amount_paid,"
                  " extract(epoch FROM paid_at)::bigint, payment_type, payment_intent, charge, amount_refunded,"
                  " fee, net, balance_status FROM stripe_sync.invoice_money WHERE invoice = %s ORDER BY 8",
                  (invoice["id"],))
    assert got == want


def test_backfill_and_verify_of_all_include_the_ledger(cluster, api):
    """backfill('all') reaches every new type (none skipped), and verify('all') then finds the
    mirror of each as the stand-in lists it."""
    with cluster.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append((d.severity_nonlocalized, d.message_primary)))
        conn.execute("SELECT stripe_sync.backfill('all')")
        verified = {r[0]: r[1:] for r in conn.execute(
            "SELECT object, listed, missing, extra, differs FROM stripe_sync.verify('all')").fetchall()}
    assert [m for sev, m in notices if sev == "WARNING"] == []
    for obj, (path, table, *_) in {**KINDS, "customer_balance_transaction": (
            "/v1/customer_balance_transactions", "customer_balance_transactions")}.items():
        held = cluster.query(f"SELECT id FROM stripe_sync.{table} WHERE NOT _deleted AND _account_id = ''")
        assert {r[0] for r in held} == {o["id"] for o in api.listed(path)}, table
        assert verified[obj] == (len(api.listed(path)), 0, 0, 0), obj


# ------------------------------------------------------------------- catch-up


def catch_up(cluster) -> int:
    with cluster.connect() as conn:
        return conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0]


def listed_from(api, path="/v1/balance_transactions") -> list[int]:
    return [int(r["params"]["created[gte]"]) for r in api.requests(path)]


def test_catch_up_lists_new_balance_transactions_and_re_reads_pending_ones_once_available():
    now = int(time.time())
    with StandIn() as api, h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base) as c:
        held = lambda: dict(c.query("SELECT id, status FROM stripe_sync.balance_transactions"))  # noqa: E731
        reads = lambda txn: api.count(f"/v1/balance_transactions/{txn['id']}")  # noqa: E731
        old = api.add("/v1/balance_transactions", 3, lambda i, o: o.update(
            created=now - 5 * DAY + i, status="available", available_on=now - 3 * DAY))
        # None held: from where the catch-up lists events.
        assert catch_up(c) == 0
        assert listed_from(api) == listed_from(api, "/v1/events") and len(listed_from(api)) == 1
        assert held() == {o["id"]: "available" for o in old}

        # From the newest held, less the overlap: a pending one and a newer one.
        pending = api.add("/v1/balance_transactions", 1, lambda i, o: o.update(
            created=now - 2 * DAY, status="pending", available_on=int(time.time()) + 10))[0]
        gone = api.add("/v1/balance_transactions", 1, lambda i, o: o.update(
            created=now - 2 * DAY + 1, status="pending", available_on=now - 60))[0]
        newest = api.add("/v1/balance_transactions", 1, lambda i, o: o.update(
            created=now - DAY, status="available", available_on=now - 60))[0]
        api.forget_requests()
        assert catch_up(c) == 0
        assert listed_from(api) == [now - 5 * DAY + 2 - OVERLAP]
        assert held() == {**{o["id"]: "available" for o in old}, pending["id"]: "pending", gone["id"]: "pending",
                          newest["id"]: "available"}
        assert api.requests("/v1/balance_transactions/" + pending["id"]) == []

        # Before its available_on: not re-read. One whose time has come is re-read, and a 404
        # for it (gone from Stripe) is passed over.
        api.delete(gone["id"], stub=False)
        api.forget_requests()
        assert catch_up(c) == 0
        assert listed_from(api) == [newest["created"] - OVERLAP]
        assert reads(pending) == 0 and reads(gone) == 1
        assert time.time() < pending["available_on"], "too slow: the re-read above came after available_on"
        assert c.scalar("SELECT status FROM stripe_sync.sync_runs WHERE kind = 'catch_up' ORDER BY id DESC"
                        " LIMIT 1") == "completed"

        # Once available_on has passed, Stripe says available: re-read once, then no more.
        time.sleep(max(0.0, pending["available_on"] + 1 - time.time()))
        fresh = api.update(pending["id"], status="available")
        api.forget_requests()
        catch_up(c)
        assert reads(pending) == 1
        assert c.query("SELECT status, data FROM stripe_sync.balance_transactions WHERE id = %s",
                       (pending["id"],)) == [("available", fresh)]
        api.forget_requests()
        catch_up(c)
        assert reads(pending) == 0 and len(listed_from(api)) == 1


def test_catch_up_goes_on_where_balance_transactions_are_refused():
    """A key without access to balance transactions (403): the catch-up still queues the
    account's events, completes, and moves its watermark."""
    now = int(time.time())
    with StandIn() as api, h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base) as c:
        handle = api.handle

        def refusing(method, path, params, **kw):
            if path.startswith("/v1/balance_transactions"):
                raise StripeError(403, "The provided key does not have access to balance transactions.")
            return handle(method, path, params, **kw)

        api.handle = refusing
        payout = api.add("/v1/payouts", 1, _vary_payout)[0]
        api.add_event("payout.paid", payout, created=now - 60)
        assert catch_up(c) == 1
        assert api.count("/v1/balance_transactions") == 1
        h.wait_until(lambda: c.query("SELECT data FROM stripe_sync.payouts WHERE id = %s", (payout["id"],))
                     == [(payout,)], timeout=30, what="the payout event listed by the catch-up to be applied")
        assert c.query("SELECT status FROM stripe_sync.sync_runs WHERE kind = 'catch_up'") == [("completed",)]
        assert c.scalar("SELECT high_water FROM stripe_sync.sync_cursors WHERE account = '' AND object = 'event'")


# ------------------------------------------------------------- balance_by_month

MONTH = datetime(2026, 3, 1, tzinfo=timezone.utc)
NEXT_MONTH = datetime(2026, 4, 1, tzinfo=timezone.utc)


def generated_month(rng: random.Random, start: int, end: int, charges: int) -> list[dict]:
    """A month of balance transactions: charges with their fees, refunds and a failed one, disputes
    and a reversal, Stripe fees billed on their own, payouts (an instant one with a fee) and a
    reversal, transfers and adjustments; in two currencies, plus one at each edge of the month."""
    made = []

    def txn(category, amount, fee=0, currency="usd", created=None, kind=None):
        made.append({"reporting_category": category, "type": kind or category, "amount": amount, "fee": fee,
                     "net": amount - fee, "currency": currency,
                     "created": created if created is not None else rng.randrange(start, end)})
    for _ in range(charges):
        amount = rng.randrange(500, 50000)
        txn("charge", amount, round(amount * 0.029) + 30, rng.choice(("usd", "usd", "eur")))
    for _ in range(25):
        txn("refund", -rng.randrange(100, 20000), currency=rng.choice(("usd", "eur")))
    txn("refund_failure", 1234, kind="refund_failure")
    for _ in range(6):
        txn("dispute", -rng.randrange(1000, 30000), 1500, kind="adjustment")
    txn("dispute_reversal", 4200, -1500, kind="adjustment")
    for _ in range(5):
        txn("fee", -rng.randrange(100, 2000), kind="stripe_fee")
    for _ in range(4):
        txn("payout", -rng.randrange(100000, 500000), currency=rng.choice(("usd", "eur")))
    txn("payout", -25000, 250)  # an instant payout's fee is not a fee of the activity
    txn("payout_reversal", 30000, kind="payout_failure")
    for category, kind in (("transfer", "transfer"), ("other_adjustment", "adjustment"),
                           ("connect_collection_transfer", "connect_collection_transfer")):
        txn(category, -rng.randrange(100, 5000), kind=kind)
    txn("charge", 999, 59, created=start)  # the first second of the month
    txn("charge", 777, 53, created=start - 1)  # the last second of the month before
    txn("refund", -555, created=end)  # the first second of the month after
    return made


def by_month(txns: list[dict], account: str) -> dict:
    """balance_by_month as documented, computed here: (account, currency, month) -> its sums."""
    out: dict = {}
    for t in txns:
        month = datetime.fromtimestamp(t["created"], timezone.utc).date().replace(day=1)
        row = out.setdefault((account, t["currency"], month), dict.fromkeys(
            ("gross_charges", "refunds", "disputes", "fees", "other", "net", "payouts", "balance_transactions"), 0))
        category, amount = t["reporting_category"], t["amount"]
        row["balance_transactions"] += 1
        if category in ("payout", "payout_reversal"):
            row["payouts"] += amount
            continue
        row["fees"] += t["fee"]
        row["net"] += t["net"]
        if category == "charge":
            row["gross_charges"] += amount
        elif category in ("refund", "refund_failure"):
            row["refunds"] += amount
        elif category in ("dispute", "dispute_reversal"):
            row["disputes"] += amount
        elif category == "fee":
            row["fees"] -= amount
        else:
            row["other"] += amount
    return out


def test_balance_by_month_matches_the_sums_computed_here():
    start, end = int(MONTH.timestamp()), int(NEXT_MONTH.timestamp())
    rng = random.Random(28)
    ours, theirs = generated_month(rng, start, end, 120), generated_month(rng, start, end, 20)
    with StandIn() as api, h.stripe_sync_cluster(api_key=h.TEST_API_KEY, api_base=api.base) as c:
        for txns, account in ((ours, None), (theirs, "acct_1Ledger")):
            api.add("/v1/balance_transactions", len(txns), lambda i, o, txns=txns: o.update(
                txns[i], status=("available", "pending")[i % 2], available_on=txns[i]["created"] + 2 * DAY,
                fee_details=[]), account=account)
        with c.connect() as conn:
            assert conn.execute("SELECT stripe_sync.backfill('balance_transaction')").fetchone()[0] == len(ours)
            assert conn.execute("SELECT stripe_sync.backfill('balance_transaction', account => 'acct_1Ledger')"
                                ).fetchone()[0] == len(theirs)
            conn.execute("SET TimeZone = 'Pacific/Auckland'")  # months are UTC whatever the session's zone
            cur = conn.execute("SELECT _account_id, currency, month, gross_charges, refunds, disputes, fees, other,"
                               " net, payouts, balance_transactions FROM stripe_sync.balance_by_month")
            got = {(r[0], r[1], r[2]): dict(zip([d.name for d in cur.description[3:]], r[3:])) for r in cur}
    want = {**by_month(ours, ""), **by_month(theirs, "acct_1Ledger")}
    assert {k: {n: int(v) for n, v in row.items()} for k, row in got.items()} == want
    assert len(want) == 8, sorted(want)  # usd and eur of March, usd of February and April; and theirs
    for row in want.values():
        assert row["net"] == row["gross_charges"] + row["refunds"] + row["disputes"] - row["fees"] + row["other"]
