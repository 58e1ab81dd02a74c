"""What every part of bench/ shares: where things are, the names and targets of the run, and the
small helpers of the log and the report (log, median, fmt, verdict, runs_list, percentile, Deadline,
Skipped)."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional

from stripe_sync_testkit import SHARED

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GEN_EVENTS = SHARED / "bench" / "gen_events.py"
RESOURCES_JSON = SHARED / "stripe" / "openapi" / "resources.json"
SYSTEM_PG_LIB = Path("/usr/lib/postgresql/15")
SYSTEM_PG_SHARE = Path("/usr/share/postgresql/15")
PGBENCH = SYSTEM_PG_LIB / "bin" / "pgbench"
OUT = HERE / "out"
PEER_DIR = HERE / "peer"
SECRET = "whsec_stripe_sync_bench"
DB = "bench"
PEER_DB = "peer"
CLIENTS = (1, 4, 8)

# Targets (docs/brief): ingest >= 80% of a plain insert at 8 clients, apply >= 20,000 events/s,
# p99 latency < 200 ms, worker memory < 64 MB, >= 10x the peer.
TARGET_INGEST_RATIO = 0.80
TARGET_APPLY_RATE = 20_000
TARGET_P99_MS = 200.0
TARGET_MEMORY_MB = 64.0
TARGET_PEER_RATIO = 10.0
# Issue 7: backfill >= 10,000 objects/s against a stand-in that is not the bound (Stripe's own limit,
# 100 requests/s x 100 objects, never sends more); provisioning bounded by the request budget, not
# by our code: judged here as at least 90 % of the rate the budget allows.
TARGET_BACKFILL_RATE = 10_000
TARGET_PROVISION_RATIO = 0.90
BACKFILL_RATE_LIMIT = 10_000    # stripe_sync.api_rate_limit while backfilling: the budget is not the bound
PROVISION_RATES = (25, 100)     # the default budget, and Stripe's live limit
# Backfill runs start from empty tables and no runs and no cursors of their own; the worker's catch-up keeps its
# runs and watermark (emptied, it would be due again at once, every few seconds).
EMPTY_BACKFILL_STATE = ("TRUNCATE stripe_sync.customers, stripe_sync.invoices, stripe_sync.invoice_line_items, "
                        "stripe_sync.sync_slices",
                        "DELETE FROM stripe_sync.sync_runs WHERE kind <> 'catch_up'",
                        "DELETE FROM stripe_sync.sync_cursors WHERE object <> 'event'")
TIE_RATES = (25, 100)           # the same two budgets, for re-reads of same-second ties
TARGET_TIE_RATIO = 1.2          # ties settle within 1.2 x N / api_rate_limit
PROVISION_FREE_RATE = 10_000    # and once with a budget that is not the bound: our code's own pace
REQUEST_BURST = 5               # requests the budget lets go at once (BURST in src/stripe.rs)
API_KEY = "sk_test_stripe_sync_bench"
# Issue 32: backfill from a stand-in that answers each request 300 ms ± 30 ms after it arrived, at the
# default budget and at Stripe's live limit, judged against what the budget allows: api_rate_limit
# requests/s x 100 objects a page (Stripe's largest page).
PACED_LATENCY_MS = 300
PACED_JITTER_MS = 30
PACED_RATES = (25, 100)
PAGE_SIZE = 100
TARGET_PACED_SHARE = 0.90
BACKFILL_OBJECTS = {"customer": ("/v1/customers", "customers"), "invoice": ("/v1/invoices", "invoices")}

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[bench {time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def median(xs: list[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x: Optional[float], digits: int = 0) -> str:
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def verdict(ok: Optional[bool]) -> str:
    return "–" if ok is None else ("**pass**" if ok else "**FAIL**")


def runs_list(xs: list[float], digits: int = 0) -> str:
    return ", ".join(fmt(x, digits) for x in xs) if xs else "–"


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


class Skipped(Exception):
    """A measure that could not be taken; the message says why (goes to BENCHMARKS.md)."""


def percentile(sorted_xs: list[float], p: float) -> Optional[float]:
    if not sorted_xs:
        return None
    k = (len(sorted_xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (k - lo)


def empty_backfill_state(conn) -> None:
    """Empties what a backfill measure fills (EMPTY_BACKFILL_STATE)."""
    for sql in EMPTY_BACKFILL_STATE:
        conn.execute(sql)
