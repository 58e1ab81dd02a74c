#!/usr/bin/env python3
"""Same-second ties settled at the API's pace (issue: a mirror that heals itself).

N customers each get two `customer.updated` events of the same second: Stripe's timestamps
cannot order them, so the apply records a re-read request per customer
(`stripe_sync.refresh_requests`) and the worker's re-read job fetches each customer again
through the shared request budget (`stripe_sync.api_rate_limit`). Measured: seconds from the
moment every event is applied to the moment every request is settled (each customer's row
written by its fetch), against the bound N / api_rate_limit, at the defaults (25 requests/s)
and at Stripe's live limit (100). bench/run.py's private cluster at default settings and
bench/fast_stripe.py (answers at once: this measures our pace, not Stripe's latency).

    ~/.cache/stripe_sync/venv/bin/python bench/ties.py [--ties 1000] [--runs 3]

BENCHMARKS.md quotes it ("Ties"). Target: within 1.2 x the bound.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import run as R


def customers(bench: R.Bench, n: int) -> list[dict]:
    """The first n customers fast_stripe lists (they exist there, so a re-read finds them)."""
    out: list[dict] = []
    after = None
    while len(out) < n:
        page = bench.fast_call("/v1/customers?limit=100" + (f"&starting_after={after}" if after else ""))
        out.extend(page["data"])
        after = page["data"][-1]["id"]
    return out[:n]


def tie_events(objs: list[dict], second: int, run: int) -> list[str]:
    events = []
    for i, o in enumerate(objs):
        for tag in ("a", "b"):
            events.append(json.dumps({
                "id": f"evt_tie{run}_{i}_{tag}", "object": "event", "type": "customer.updated",
                "created": second, "api_version": "2026-07-29.dahlia", "livemode": False,
                "pending_webhooks": 1, "data": {"object": dict(o, name=f"tie {tag}")}}))
    return events


def one_run(bench: R.Bench, objs: list[dict], rate: int, run: int) -> dict:
    n = len(objs)
    with bench.conn() as conn:
        conn.execute("TRUNCATE stripe_sync.customers, stripe_sync.refresh_requests")
        now = int(time.time())
        events = tie_events(objs, now - 30, run)
        for p in events:
            conn.execute("SELECT stripe_sync.ingest_event(%s, %s)", (p, R.sign(p, R.SECRET, now)))
        ids = [json.loads(p)["id"] for p in events]
        deadline = time.monotonic() + 120
        while conn.execute("SELECT count(*) FROM stripe_sync.events WHERE id = ANY(%s) AND status = 'processed'",
                           (ids,)).fetchone()[0] < len(ids):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not apply the tie events within 120 s")
            time.sleep(0.02)
        t0 = time.monotonic()
        asked = conn.execute("SELECT count(*) FROM stripe_sync.refresh_requests").fetchone()[0]
        limit = max(60.0, 5 * n / rate)
        while True:
            left, settled = conn.execute(
                "SELECT (SELECT count(*) FROM stripe_sync.refresh_requests),"
                "       (SELECT count(*) FROM stripe_sync.customers WHERE _last_event_type = 'stripe_sync.fetched')"
            ).fetchone()
            if left == 0 and settled == n:
                break
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"{left} re-reads left after {limit:.0f} s")
            time.sleep(0.02)
        seconds = time.monotonic() - t0
    bound = n / rate
    return {"rate": rate, "ties": n, "asked": asked, "seconds": seconds, "bound": bound, "ratio": seconds / bound}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ties", type=int, default=1000, help="customers with a same-second pair of events")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rates", type=int, nargs="*", default=[25, 100])
    a = ap.parse_args()
    args = R.parse_args(["--only", "backfill", "--runs", "1", "--quiet-wait", "0"])
    args.backfill_customers = max(a.ties, 1000)
    args.backfill_invoices = 10
    bench = R.Bench(args)
    results: dict[int, list[dict]] = {}
    try:
        bench.start_cluster()
        bench.point_worker_at(R.DB)
        objs = customers(bench, a.ties)
        for rate in a.rates:
            bench.configure_api(rate)
            results[rate] = []
            for run in range(a.runs):
                r = one_run(bench, objs, rate, len(results[rate]) + 10 * rate)
                results[rate].append(r)
                print(f"api_rate_limit {rate}: {r['ties']} ties ({r['asked']} re-reads asked) settled in "
                      f"{r['seconds']:.1f} s; bound {r['bound']:.1f} s; ratio {r['ratio']:.2f}", flush=True)
    finally:
        bench.stop()
    for rate, rs in results.items():
        ratios = [r["ratio"] for r in rs]
        print(f"api_rate_limit {rate}: median {statistics.median([r['seconds'] for r in rs]):.1f} s for "
              f"{rs[0]['ties']} ties, {statistics.median(ratios):.2f} x the bound "
              f"(runs {', '.join(f'{x:.2f}' for x in ratios)}); target <= 1.2: "
              f"{'pass' if statistics.median(ratios) <= 1.2 else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
