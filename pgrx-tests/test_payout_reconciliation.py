"""Payout reconciliation (0.9.0) against standin.StandIn: a generated month of balance
transactions (charges and payments, refunds, disputes and a reversal, Stripe fees) with the
charges, payment intents, refunds, disputes and invoice payments behind them, paid out by
automatic payouts (one of more than a hundred transactions, one in another currency); catch_up()
lists what each paid automatic payout paid out, once, and payout_reconciliation then has, per
payout, the rows Python computes here: the transaction, the charge behind it, its payment intent
and the invoice paid through an invoice payment; their net sums to the payout's amount. Payouts
that are pending, manual or failed are not listed until they are paid (and automatic).
"""

from __future__ import annotations

import random
import time

import pytest

from stripe_sync_testkit import harness as h
from stripe_sync_testkit.fixtures import standin_fixtures
from stripe_sync_testkit.standin import StandIn
from test_standin import backfill

DAY = 86400
COLUMNS = ("_account_id, payout, payout_status, extract(epoch FROM arrival_date)::bigint, payout_amount,"
           " payout_currency, balance_transaction, type, reporting_category, amount, fee, net, currency, source,"
           " charge, refund, dispute, payment_intent, invoice")


class Month:
    """The objects of a generated month in the stand-in, and what they say about each other."""

    def __init__(self, api: StandIn, rng: random.Random, start: int, end: int):
        self.api, self.rng, self.start, self.end = api, rng, start, end
        self.charges: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.disputes: dict[str, dict] = {}
        self.invoice_of: dict[str, str] = {}  # charge id -> invoice paid by it (an invoice payment)

    def when(self) -> int:
        return self.rng.randrange(self.start, self.end)

    def txn(self, kind: str, category: str, amount: int, fee: int, currency: str, source) -> dict:
        return self.api.add("/v1/balance_transactions", 1, lambda i, o: o.update(
            type=kind, reporting_category=category, amount=amount, fee=fee, net=amount - fee, currency=currency,
            source=source, status="available", created=(at := self.when()), available_on=at + 2 * DAY,
            exchange_rate=None, description=f"{kind} {source}",
            fee_details=[{"amount": fee, "application": None, "currency": currency, "description": "Stripe fee",
                          "type": "stripe_fee"}] if fee > 0 else []))[0]

    def charge(self, currency: str, payment: bool = False) -> dict:
        """A charge (a payment, py_..., for a connected account's) with its balance transaction;
        most through a payment intent, half of them paying an invoice through an invoice payment."""
        rng = self.rng
        intent = (self.api.add("/v1/payment_intents", 1, lambda i, o: o.update(currency=currency))[0]["id"]
                  if rng.random() < 0.6 else None)
        amount = rng.randrange(500, 40000)

        def vary(i, o):
            if payment:
                o["id"] = h.new_id("py_", 24)
            o.update(amount=amount, amount_captured=amount, currency=currency, payment_intent=intent,
                     captured=True, paid=True, status="succeeded", created=self.when(), customer=None)
        ch = self.api.add("/v1/charges", 1, vary)[0]
        txn = self.txn("payment" if payment else "charge", "charge", amount, round(amount * 0.029) + 30, currency,
                       ch["id"])
        ch = self.api.update(ch["id"], balance_transaction=txn["id"])
        self.charges[ch["id"]] = ch
        if rng.random() < 0.5:
            invoice = h.new_id("in_", 24)
            by = {"type": "payment_intent", "payment_intent": intent} if intent and rng.random() < 0.5 \
                else {"type": "charge", "charge": ch["id"]}
            self.api.add("/v1/invoice_payments", 1, lambda i, o: o.update(
                invoice=invoice, amount_paid=amount, amount_requested=amount, currency=currency, status="paid",
                is_default=True, payment=by, status_transitions={"paid_at": ch["created"], "canceled_at": None}))
            self.invoice_of[ch["id"]] = invoice
        return txn

    def refund(self, charge: dict) -> dict:
        amount = self.rng.randrange(100, charge["amount"])
        re = self.api.add("/v1/refunds", 1, lambda i, o: o.update(
            charge=charge["id"], payment_intent=charge["payment_intent"], amount=amount, currency=charge["currency"],
            status="succeeded"))[0]
        self.refunds[re["id"]] = re
        return self.txn("refund", "refund", -amount, 0, charge["currency"], re["id"])

    def dispute(self, charge: dict, reversed_too: bool) -> list[dict]:
        dp = self.api.add("/v1/disputes", 1, lambda i, o: o.update(
            charge=charge["id"], payment_intent=charge["payment_intent"], amount=charge["amount"],
            currency=charge["currency"], status="lost"))[0]
        self.disputes[dp["id"]] = dp
        made = [self.txn("adjustment", "dispute", -charge["amount"], 1500, charge["currency"], dp["id"])]
        if reversed_too:
            made.append(self.txn("adjustment", "dispute_reversal", charge["amount"], -1500, charge["currency"],
                                 dp["id"]))
        return made

    def activity(self, currency: str, charges: int) -> list[dict]:
        """Charges (two of them payments), refunds of some, disputes of others (one reversed), and
        Stripe fees: balance transactions whose net is positive."""
        made = [self.charge(currency, payment=k < 2) for k in range(charges)]
        charged = [self.charges[t["source"]] for t in made]
        for ch in self.rng.sample(charged, max(1, charges // 6)):
            made.append(self.refund(ch))
        for k, ch in enumerate(self.rng.sample(charged, max(1, charges // 15))):
            made += self.dispute(ch, reversed_too=k == 0)
        for _ in range(2):
            made.append(self.txn("stripe_fee", "fee", -self.rng.randrange(100, 900), 0, currency, None))
        assert sum(t["net"] for t in made) > 0
        return made

    def row(self, payout: dict, t: dict) -> tuple:
        """payout_reconciliation's row of ``t`` paid out by ``payout``, as documented."""
        source = t["source"]
        charge = (source if source in self.charges else self.refunds[source]["charge"] if source in self.refunds
                  else self.disputes[source]["charge"] if source in self.disputes else None)
        intent = self.charges[charge]["payment_intent"] if charge else None
        return ("", payout["id"], payout["status"], payout["arrival_date"], payout["amount"], payout["currency"],
                t["id"], t["type"], t["reporting_category"], t["amount"], t["fee"], t["net"], t["currency"], source,
                charge, source if source in self.refunds else None, source if source in self.disputes else None,
                intent, self.invoice_of.get(charge))


api, cluster = standin_fixtures(secret=None, api_rate_limit=200)


def catch_up(cluster) -> int:
    with cluster.connect() as conn:
        return conn.execute("SELECT stripe_sync.catch_up()").fetchone()[0]


def payouts_listed(api) -> list[dict]:
    """The params of each GET /v1/balance_transactions?payout= since the last forget_requests()."""
    return [r["params"] for r in api.requests("/v1/balance_transactions") if "payout" in r["params"]]


def reconciliation(cluster, payouts) -> list[tuple]:
    return cluster.query(f"SELECT {COLUMNS} FROM stripe_sync.payout_reconciliation WHERE payout = ANY(%s)"
                         " ORDER BY payout, balance_transaction", ([p["id"] for p in payouts],))


def links(cluster) -> set:
    return set(cluster.query("SELECT payout, balance_transaction FROM stripe_sync.payout_balance_transactions"
                             " WHERE _account_id = ''"))


def check_paged(api, asked: list[dict], payout: dict) -> None:
    """The pages asked for ``payout``: from the start, each after the last of the one before."""
    mine = [p for p in asked if p["payout"] == payout["id"]]
    full = api.paid_out(payout["id"])
    assert mine and "starting_after" not in mine[0], mine
    limits = [int(p.get("limit", 10)) for p in mine]
    for k, p in enumerate(mine[1:], 1):
        assert p["starting_after"] == full[sum(limits[:k]) - 1]["id"], mine
    assert sum(limits[:-1]) < len(full) <= sum(limits), (limits, len(full))


def test_catch_up_reconciles_each_paid_automatic_payout_once(cluster, api):
    now = int(time.time())
    rng = random.Random(909)
    month = Month(api, rng, now - 25 * DAY, now - 4 * DAY)
    usd = month.activity("usd", 150)
    eur = month.activity("eur", 30)
    usd.sort(key=lambda t: t["created"])
    cut = len(usd) * 2 // 3
    assert cut > 100
    paid = [api.add_payout(usd[:cut]), api.add_payout(usd[cut:]), api.add_payout(eur)]  # (payout, own txn)
    # Not listed: not paid yet, manual, failed.
    pending, _ = api.add_payout(month.activity("usd", 12), status="pending")
    manual, _ = api.add_payout(month.activity("usd", 12), automatic=False)
    failed, _ = api.add_payout(month.activity("usd", 12), status="failed", failure_code="account_closed")
    for obj in ("charge", "payment_intent", "refund", "dispute", "invoice_payment", "payout"):
        assert backfill(cluster, obj)[0] > 0, obj
    api.forget_requests()
    catch_up(cluster)

    asked = payouts_listed(api)
    assert sorted({p["payout"] for p in asked}) == sorted(p["id"] for p, _ in paid)
    assert len(asked) >= 4  # the big one in two pages at least
    for payout, _ in paid:
        check_paged(api, asked, payout)
    settled = {(p["id"], t) for p, _ in paid for t in api.settled[p["id"]]}
    own = {(p["id"], t["id"]) for p, t in paid}
    assert links(cluster) - own == settled
    assert not {p for p, _ in links(cluster)} & {pending["id"], manual["id"], failed["id"]}

    by_id = {t["id"]: t for t in api.listed("/v1/balance_transactions")}
    want = sorted(month.row(p, by_id[t]) for p, _ in paid for t in api.settled[p["id"]])
    got = reconciliation(cluster, [p for p, _ in paid])
    assert got == want
    assert not any(r[7] == "payout" for r in got)
    # What the rows show is real: charges behind refunds and disputes, intents, invoices.
    assert {r[15] is not None for r in got} == {True, False} and {r[16] is not None for r in got} == {True, False}
    assert any(r[18] for r in got) and any(r[17] for r in got) and any(r[7] == "payment" for r in got)
    sums = dict(cluster.query("SELECT payout, sum(net) FROM stripe_sync.payout_reconciliation GROUP BY payout"))
    for payout, _ in paid:
        assert sums[payout["id"]] == payout["amount"] == sum(t["net"] for t in usd + eur
                                                            if t["id"] in api.settled[payout["id"]])
    # Every transaction listed is held, the payouts' own too.
    held = {r[0] for r in cluster.query("SELECT id FROM stripe_sync.balance_transactions")}
    assert {t for _, t in settled | own} <= held

    # Listed once: the next catch-up lists no payout again.
    api.forget_requests()
    catch_up(cluster)
    assert payouts_listed(api) == []
    assert reconciliation(cluster, [p for p, _ in paid]) == want

    # Paid later, and a new one: those two only.
    api.update(pending["id"], status="paid")
    with cluster.connect() as conn:
        assert conn.execute("SELECT stripe_sync.sync_object(%s)", (pending["id"],)).fetchone()[0] == "payouts"
    later, _ = api.add_payout(month.activity("usd", 20))
    for obj in ("charge", "payment_intent", "refund", "dispute", "invoice_payment", "payout"):
        backfill(cluster, obj, "epoch")  # in full: the new objects' times fall among the old ones'
    api.forget_requests()
    catch_up(cluster)
    assert sorted(p["payout"] for p in payouts_listed(api)) == sorted([pending["id"], later["id"]])
    pending = api.render(api.get(pending["id"]))
    fresh = sorted(month.row(p, {t["id"]: t for t in api.listed("/v1/balance_transactions")}[t])
                   for p in (pending, later) for t in api.settled[p["id"]])
    assert reconciliation(cluster, [pending, later]) == fresh
    assert reconciliation(cluster, [manual, failed]) == []
