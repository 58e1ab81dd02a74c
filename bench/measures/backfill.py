"""Section 6 of BENCHMARKS.md: stripe_sync.backfill('customer') and ('invoice') into emptied tables
against the stand-in's pre-built pages, with a watch on the job workers while each call runs."""
from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Optional

import psycopg
from stripe_sync_testkit import harness

from common import (API_KEY, BACKFILL_OBJECTS, BACKFILL_RATE_LIMIT, DB, empty_backfill_state, TARGET_BACKFILL_RATE,
                    fmt, log)
from measures.api import crawl
from procstat import cpu_seconds, minor_faults, tree_cpu_seconds

if TYPE_CHECKING:
    from run import Bench


class BackfillWatch:
    """While one backfill call runs: its sync_runs row every 20 ms (objects committed so far, the job
    worker's pid), that worker's CPU from /proc (sampled: it exits at the end), and when the last
    page was committed; over the whole call, the CPU of all of PostgreSQL (the postmaster's tree,
    exited processes included) and of the stand-in."""

    def __init__(self, bench: "Bench", expected: int):
        self.bench, self.expected = bench, expected
        self.pid: Optional[int] = None
        self.job_cpu: Optional[float] = None
        self.paged_at: Optional[float] = None  # monotonic time the last page's commit was seen
        self.job_cpu_paged: Optional[float] = None
        self.job_faults: Optional[int] = None
        self.committed = 0
        self.waits: dict[str, int] = {}  # what the job workers were doing, sampled every 20 ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.pm = self.bench._postmaster_pid()
        self.fs = self.bench.standin()["pid"]
        self.pm0, self.fs0 = tree_cpu_seconds(self.pm), cpu_seconds(self.fs) or 0.0
        self._thread.start()

    def _loop(self) -> None:
        try:
            with self.bench.cluster.connect(dbname=DB) as conn:
                while not self._stop.is_set():
                    row = conn.execute("SELECT objects, worker_pid FROM stripe_sync.sync_runs "
                                       "WHERE kind = 'backfill' ORDER BY id DESC LIMIT 1").fetchone()
                    now = time.monotonic()
                    if row:
                        self.committed, self.pid = row[0], row[1] or self.pid
                    v = cpu_seconds(self.pid)
                    if v is not None:
                        self.job_cpu = v
                        self.job_faults = minor_faults(self.pid)
                    if self.paged_at is None and self.committed >= self.expected:
                        self.paged_at, self.job_cpu_paged = now, self.job_cpu
                    if self.paged_at is None:
                        for (wait,) in conn.execute(
                                "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') "
                                "FROM pg_stat_get_activity(NULL) WHERE backend_type = 'stripe_sync job'").fetchall():
                            self.waits[wait] = self.waits.get(wait, 0) + 1
                    self._stop.wait(0.02)
        except Exception:  # noqa: BLE001 - monitoring must not break the run
            return

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        self._stop.set()
        self._thread.join(timeout=5)
        return {"wall": wall, "postgres": tree_cpu_seconds(self.pm) - self.pm0,
                "stand_in": (cpu_seconds(self.fs) or 0.0) - self.fs0, "job": self.job_cpu,
                "job_paging": self.job_cpu_paged, "job_pid": self.pid, "job_faults": self.job_faults,
                "waits": dict(sorted(self.waits.items(), key=lambda kv: -kv[1]))}


class BackfillMeasures:
    """Mixed into run.Bench (cluster.BenchBase and measures.api.StandInApi give the rest)."""

    def measure_backfill(self) -> None:
        fs = self.standin()
        self.configure_api(BACKFILL_RATE_LIMIT)
        workers = self.backfill_workers()
        res: dict[str, dict[str, list]] = {o: {"runs": [], "runs_one": [], "ceiling": [], "ceiling_parse": []}
                                           for o in BACKFILL_OBJECTS}
        try:
            for rep in range(self.runs):
                for obj, (path, table) in BACKFILL_OBJECTS.items():
                    if any(x["timed_out"] for x in res[obj]["runs"]):
                        continue  # one run past the time limit is enough
                    self.check_time(30, f"backfill ({obj})")
                    self.wait_quiet()
                    # the stand-in's own ceiling, just before ours: a sequential client that only reads
                    # the bytes, and one that also parses every page with Python's json
                    c0 = crawl(fs["base"], path, API_KEY, parse=False)
                    c1 = crawl(fs["base"], path, API_KEY, parse=True)
                    for c_ in (c0, c1):
                        c_["rate"] = c_["objects"] / c_["seconds"]
                    r = self.backfill_run(obj, path, table, workers)
                    res[obj]["ceiling"].append(c0)
                    res[obj]["ceiling_parse"].append(c1)
                    res[obj]["runs"].append(r)
                    if workers > 1:  # the same with one job worker, for the ratio
                        self.wait_quiet()
                        one = self.backfill_run(obj, path, table, 1)
                        res[obj]["runs_one"].append(one)
                        log(f"backfill run {rep + 1}/{self.runs}: {obj} with one job worker: "
                            + (f"did NOT return within {one['timeout']:.0f}s" if one["timed_out"]
                               else f"{one['seconds']:.2f}s = {one['rate']:,.0f}/s"))
                    outcome = (f"did NOT return within {r['timeout']:.0f}s (cancelled; {r['committed']:,} objects committed)"
                               if r["timed_out"] else f"returned after {r['seconds']:.2f}s = {r['rate']:,.0f}/s")
                    log(f"backfill run {rep + 1}/{self.runs}: {obj}, {workers} job workers: {r['objects']:,} objects: {outcome}; all pages "
                        f"committed after {fmt(r['paging_seconds'], 2)}s = {fmt(r['paging_rate'])}/s; stand-in alone "
                        f"{c0['rate']:,.0f}/s, with json.loads {c1['rate']:,.0f}/s; CPU s: job {fmt(r['cpu']['job'], 2)} "
                        f"(paging {fmt(r['job_cpu_paging'], 2)}), postgres in all {r['cpu']['postgres']:.2f}, "
                        f"job page faults {fmt(r['cpu'].get('job_faults'))}, "
                        f"stand-in {r['cpu']['stand_in']:.2f}; job workers' samples {r['cpu']['waits']}")
        finally:
            self.unconfigure_api()
            with self.conn() as conn:
                empty_backfill_state(conn)
        self.results["backfill"] = {"rate_limit": BACKFILL_RATE_LIMIT, "objects": res, "lines": self.args.backfill_lines,
                                    "workers": workers}

    def backfill_workers(self) -> int:
        return self.args.backfill_workers or os.cpu_count() or 1

    def backfill_run(self, obj: str, path: str, table: str, workers: int = 1) -> dict:
        """One full backfill into emptied tables. A call that has not returned within
        --backfill-timeout is cancelled (which ends its job) and reported as timed out, with how
        far it got."""
        fs = self.standin()
        expected = fs["customers" if obj == "customer" else "invoices"]
        limit = self.args.backfill_timeout or max(60.0, 10 * expected / TARGET_BACKFILL_RATE)
        with self.conn() as conn:
            empty_backfill_state(conn)
            conn.execute("CHECKPOINT")
        self.standin_call("/_standin/reset", "POST")
        notices: list[str] = []
        timed_out = False
        with self.conn() as conn:
            conn.add_notice_handler(lambda d: notices.append(d.message_primary))
            conn.execute(f"SET statement_timeout = '{int(limit * 1000)}ms'")
            conn.execute(f"SET stripe_sync.backfill_workers = {workers}")
            called_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
            watch = BackfillWatch(self, expected)
            watch.start()
            started = time.monotonic()
            try:
                n = conn.execute("SELECT stripe_sync.backfill(%s)", (obj,)).fetchone()[0]
            except psycopg.errors.QueryCanceled:
                n, timed_out = None, True
            elapsed = time.monotonic() - started
            cpu = watch.stop()
            conn.execute("SET statement_timeout = '600s'")
            if timed_out:  # the cancelled call terminated its job: wait until it is gone
                harness.wait_until(lambda: not conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'stripe_sync job'").fetchone()[0],
                    timeout=60, what="the cancelled backfill job to exit")
            run = conn.execute("""
                SELECT status, pages, objects, extract(epoch FROM finished_at - started_at)::float8, listed, rows_held,
                       deleted, extract(epoch FROM started_at - %s)::float8, workers
                  FROM stripe_sync.sync_runs WHERE kind = 'backfill' ORDER BY id DESC LIMIT 1""", (called_at,)).fetchone()
            rows = conn.execute(f"SELECT count(*) FROM stripe_sync.{table} WHERE NOT _deleted").fetchone()[0]
            lines = (conn.execute("SELECT count(*) FROM stripe_sync.invoice_line_items").fetchone()[0]
                     if obj == "invoice" else None)
            # The reconciliation's plan depends on whether autovacuum analyzed these during the run.
            analyzed = dict(conn.execute(
                "SELECT relname, coalesce(last_autoanalyze > %s, false) FROM pg_stat_user_tables "
                "WHERE schemaname = 'stripe_sync' AND relname = %s", (called_at, table)).fetchall())
        stats = self.standin_call("/_standin/stats")
        status, pages, objects, job_seconds, listed, rows_held, deleted, job_start, used_workers = run
        if not timed_out and (status != "completed" or n != expected or rows != expected):
            raise RuntimeError(f"backfill('{obj}') returned {n:,}, run {status}, {rows:,} rows in stripe_sync.{table}; "
                               f"the stand-in serves {expected:,}")
        if not timed_out and obj == "invoice" and lines != expected * self.args.backfill_lines:
            raise RuntimeError(f"{lines:,} invoice line items stored, {expected * self.args.backfill_lines:,} served")
        paging = watch.paged_at - started if watch.paged_at else None
        span = (stats["last_request"] - stats["first_request"]) if stats["first_request"] else None
        job_cpu_tail = (cpu["job"] - cpu["job_paging"]) if cpu["job"] is not None and cpu["job_paging"] is not None else None
        return {"objects": expected, "returned": n, "pages": pages, "timed_out": timed_out, "timeout": limit,
                "committed": objects, "rows": rows, "seconds": elapsed, "rate": None if timed_out else n / elapsed,
                "job_seconds": job_seconds, "job_rate": n / job_seconds if job_seconds and n else None,
                "paging_seconds": paging, "paging_rate": expected / paging if paging else None,
                "pages_per_s": pages / paging if paging else None,
                "tail_seconds": elapsed - paging if paging and not timed_out else None,
                "job_cpu_paging": cpu["job_paging"], "job_cpu_tail": job_cpu_tail,
                "job_start_seconds": job_start, "http_span_seconds": span, "requests": stats["counts"],
                "listed": listed, "rows_held": rows_held, "deleted": deleted, "line_items": lines,
                "autoanalyzed": analyzed, "workers": used_workers,
                "notices": len(notices), "cpu": cpu}
