"""Section 6b of BENCHMARKS.md (issue 32): stripe_sync.backfill('customer') and ('invoice') from a
stand-in that answers every request 300 ms ± 30 ms after it arrived (bench/latency_standin.py), at
the extension's defaults but api_rate_limit, which is 25 (the default) and then 100 (Stripe's live
limit), as a share of what that budget allows: api_rate_limit × 100 objects a page, objects/s."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import psycopg
from stripe_sync_testkit import harness

from common import (BACKFILL_OBJECTS, empty_backfill_state, HERE, PACED_JITTER_MS, PACED_LATENCY_MS, PACED_RATES,
                    PAGE_SIZE, REQUEST_BURST, TARGET_PACED_SHARE, log)

if TYPE_CHECKING:
    from run import Bench

LIST_PAGES = ("(page)", "(slice page)")  # the stand-in's labels of list pages; every other request is overhead


class PacedBackfillMeasures:
    """Mixed into run.Bench (cluster.BenchBase and measures.api.StandInApi give the rest)."""

    def paced_standin(self) -> dict:
        """The delayed stand-in, started once (a process of its own, beside the instant one)."""
        if getattr(self, "_paced", None) is None:
            a, n = self.args, self.args.paced_objects
            log(f"starting the delayed stand-in (bench/latency_standin.py): {n:,} customers and {n:,} invoices "
                f"({a.backfill_lines} line items each), {PACED_LATENCY_MS} ± {PACED_JITTER_MS} ms a request")
            self._paced = self.spawn_standin(
                [str(HERE / "latency_standin.py"), "--customers", str(n), "--invoices", str(n),
                 "--lines", str(a.backfill_lines), "--latency", str(PACED_LATENCY_MS),
                 "--jitter", str(PACED_JITTER_MS)], "latency_standin")
        return self._paced

    def measure_backfill_paced(self) -> None:
        fs = self.paced_standin()
        res: dict[str, dict[str, list]] = {obj: {str(rate): [] for rate in PACED_RATES} for obj in BACKFILL_OBJECTS}
        try:
            for rep in range(self.runs):
                for rate in PACED_RATES:
                    self.configure_api(rate, fs["base"])
                    for obj, (path, table) in BACKFILL_OBJECTS.items():
                        runs = res[obj][str(rate)]
                        # A run far below the target (or cancelled) is not repeated: each takes many times
                        # the bound's time, and its pace is set by the stand-in's fixed delay.
                        if runs and (runs[0]["timed_out"] or runs[0]["share"] < TARGET_PACED_SHARE / 2):
                            continue
                        bound_seconds = fs["customers" if obj == "customer" else "invoices"] / (rate * PAGE_SIZE)
                        self.check_time(runs[-1]["seconds"] + 20 if runs else 2 * bound_seconds + 30,
                                        f"backfill_paced ({obj} at {rate} requests/s)")
                        r = self.paced_run(obj, path, table, rate)
                        runs.append(r)
                        log(f"backfill_paced run {rep + 1}/{self.runs}: {obj}, api_rate_limit {rate}: {r['objects']:,} "
                            + (f"objects, cancelled after {r['seconds']:.0f}s with {r['committed']:,} committed"
                               if r["timed_out"] else f"objects in {r['seconds']:.2f}s")
                            + f" = {r['rate']:,.0f}/s of a {r['bound']:,}/s bound: {100 * r['share']:.1f} %; "
                            f"{r['requests']:,} requests ({r['list_pages']:,} list pages, {r['overhead']:,} overhead), "
                            f"{r['objects_per_request']:.1f} objects/request, {r['requests_per_s']:.1f} requests/s; "
                            f"job workers {r['workers']}; {r['counts']}")
        finally:
            self.unconfigure_api()
            with self.conn() as conn:
                empty_backfill_state(conn)
        self.results["backfill_paced"] = {"latency_ms": PACED_LATENCY_MS, "jitter_ms": PACED_JITTER_MS,
                                          "lines": self.args.backfill_lines, "objects": res, "standin": fs}

    def paced_run(self, obj: str, path: str, table: str, rate: int) -> dict:
        """One `backfill(obj, created_after => 'epoch')` into emptied tables with the budget's bucket
        full, timed as section 6 times it (the SELECT's wall time); what the stand-in was asked."""
        fs = self.paced_standin()
        expected = fs["customers" if obj == "customer" else "invoices"]
        # a failure guard: twice one request at a time through the whole list
        limit = max(120.0, 2 * expected / PAGE_SIZE * (PACED_LATENCY_MS + PACED_JITTER_MS) / 1000 + 60)
        self.wait_quiet()
        with self.conn() as conn:
            empty_backfill_state(conn)
            conn.execute("CHECKPOINT")
        self.standin_call("/_standin/reset", "POST", fs["base"])
        time.sleep(max(0.5, 2 * REQUEST_BURST / rate))  # the budget's bucket is full again
        timed_out = False
        with self.conn() as conn:
            conn.execute(f"SET statement_timeout = '{int(limit * 1000)}ms'")
            called_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            started = time.monotonic()
            try:
                n = conn.execute("SELECT stripe_sync.backfill(%s, created_after => 'epoch')", (obj,)).fetchone()[0]
            except psycopg.errors.QueryCanceled:
                n, timed_out = None, True
            elapsed = time.monotonic() - started
            conn.execute("SET statement_timeout = '600s'")
            if timed_out:  # the cancelled call terminated its job: wait until it is gone
                harness.wait_until(lambda: not conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stripe_sync job'").fetchone()[0],
                    timeout=60, what="the cancelled backfill job to exit")
            status, pages, committed, workers, job_start = conn.execute("""
                SELECT status, pages, objects, workers, extract(epoch FROM started_at - %s)::float8
                  FROM stripe_sync.sync_runs WHERE kind = 'backfill' ORDER BY id DESC LIMIT 1""", (called_at,)).fetchone()
            rows = conn.execute(f"SELECT count(*) FROM stripe_sync.{table} WHERE NOT _deleted").fetchone()[0]
            lines = (conn.execute("SELECT count(*) FROM stripe_sync.invoice_line_items").fetchone()[0]
                     if obj == "invoice" else None)
        stats = self.standin_call("/_standin/stats", base=fs["base"])
        if not timed_out and (status != "completed" or n != expected or rows != expected):
            raise RuntimeError(f"backfill('{obj}') returned {n:,}, run {status}, {rows:,} rows in stripe_sync.{table}; "
                               f"the stand-in serves {expected:,}")
        if not timed_out and obj == "invoice" and lines != expected * self.args.backfill_lines:
            raise RuntimeError(f"{lines:,} invoice line items stored, {expected * self.args.backfill_lines:,} served")
        counts = stats["counts"]
        requests = sum(counts.values())
        list_pages = sum(v for k, v in counts.items() if k.startswith(f"GET {path} ") and k.endswith(LIST_PAGES))
        done = expected if not timed_out else committed
        bound = rate * PAGE_SIZE
        return {"objects": expected, "returned": n, "committed": committed, "timed_out": timed_out, "timeout": limit,
                "seconds": elapsed, "rate": done / elapsed, "bound": bound, "share": done / elapsed / bound,
                "requests": requests, "list_pages": list_pages, "overhead": requests - list_pages, "counts": counts,
                "objects_per_request": done / requests if requests else 0.0, "requests_per_s": requests / elapsed,
                "pages": pages, "workers": workers, "job_start_seconds": job_start, "line_items": lines,
                "http_span_seconds": (stats["last_request"] - stats["first_request"]) if stats["first_request"] else None}
