"""The profile (--profile, or --only profile): perf and pg_stat_statements over an ingest run, a
drain and a backfill, after the measures; what they showed is in bench/CHANGES.md."""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Optional

import psycopg

from common import BACKFILL_OBJECTS, BACKFILL_RATE_LIMIT, DB, OUT, Skipped, log
from procstat import PerfOnBackend
from stream import Stream


# PostgreSQL functions whose inclusive time tells where a backfill page goes: parsing the page's
# text into jsonb (ours: src/jsonb.rs, then PostgreSQL's builder; jsonb_in where the database is
# not UTF-8), planning and running the apply statements, TOAST, index inserts, commit.
BACKFILL_FOCUS = ["jsonb_in", "stripe_sync::jsonb::member_from_text", "JsonbValueToJsonb", "pushJsonbValue",
                  "SPI_execute_plan", "SPI_execute_with_args", "standard_ExecutorRun",
                  "standard_ExecutorFinish", "heap_toast_insert_or_update", "ExecInsertIndexTuples",
                  "jsonb_array_elements", "CommitTransactionCommand"]


def perf_top(data: Path, comm: Optional[str] = None, limit: int = 20, focus: Optional[list[str]] = None) -> dict:
    """Self time by function, and inclusive time of the extension's own functions (or of the
    `focus` functions, wherever they are)."""
    base = ["perf", "report", "-i", str(data), "--stdio", "-g", "none", "--percent-limit", "0.3"]
    if comm:
        base += ["--comm", comm]
    flat = subprocess.run(base + ["--no-children", "--sort", "dso,sym", "-F", "overhead,dso,sym"],
                          capture_output=True, text=True, timeout=300).stdout
    incl = subprocess.run(base + ["--children", "--sort", "sym"] + ([] if focus else ["--dsos", "stripe_sync.so"]),
                          capture_output=True, text=True, timeout=300).stdout
    by_dso = subprocess.run(base + ["--no-children", "--sort", "dso"], capture_output=True, text=True, timeout=300).stdout

    def parse(text: str, with_dso: bool) -> list[dict]:
        out = []
        for line in text.splitlines():
            if with_dso:
                m = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[[.kH]\]\s+(.*?)\s*$", line)
                if m:
                    out.append({"pct": float(m.group(1)), "dso": m.group(2), "symbol": m.group(3)[:160]})
            else:
                m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[[.kH]\]\s+(.*?)\s*$", line)
                if m:
                    out.append({"pct": float(m.group(1)), "self": float(m.group(2)), "symbol": m.group(3)[:160]})
        return out

    dsos: dict[str, float] = {}
    for line in by_dso.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)\s*$", line)
        if m:
            dsos[m.group(2)] = float(m.group(1))
    selfs = sorted(parse(flat, True), key=lambda t: -t["pct"])
    incls = [t for t in parse(incl, False) if not t["symbol"].startswith(("0x", "__restore_rt"))]
    if focus:
        incls = [t for t in incls if t["symbol"] in focus]
    return {"self": selfs[:limit], "inclusive": incls[:limit], "by_object": sorted(dsos.items(), key=lambda kv: -kv[1]),
            "text": flat + "\n\n# inclusive (children) time of stripe_sync.so functions\n" + incl}


class ProfileMeasures:
    """Mixed into run.Bench (cluster.BenchBase and the other measures give the rest)."""

    def profile(self, stream: Stream) -> None:
        """perf (on-CPU samples) and pg_stat_statements (time per SQL statement, nested ones
        included) over an 8-client ingest run and one drain of the big queue (after one drain
        that is not recorded). Last phase: it
        restarts the cluster with pg_stat_statements preloaded."""
        if shutil.which("perf") is None:
            raise Skipped("perf is not installed (apt-get install linux-perf)")
        prof: dict[str, Any] = {}
        c = self.cluster
        c.append_conf({"shared_preload_libraries": "stripe_sync, pg_stat_statements",
                       "pg_stat_statements.track": "all", "pg_stat_statements.track_planning": True})
        self.point_worker_at("postgres")
        c.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname=DB)
        rows = len(stream.distinct)
        self.resign("bench.deliveries")
        c.query("SELECT pg_stat_statements_reset()", dbname=DB)
        self.ingest_run("plain", 8, 6, rows)
        plain = self.top_statements(3)
        data = OUT / "perf-ingest.data"
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-a", "-o", str(data), "--", "sleep", "5"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(perf)
        c.query("SELECT pg_stat_statements_reset()", dbname=DB)
        self.ingest_run("ours", 8, 6, rows)
        perf.wait(timeout=60)
        self.procs.remove(perf)
        prof["ingest"] = {"statements": self.top_statements(4) + [s_ | {"baseline": True} for s_ in plain[:1]]}
        log("profile: ingest recorded")
        self.point_worker_at(DB)
        pid = self.worker_pid()
        # The worker alone (as the apply section's CPU per event): perf follows its process.
        self.set_apply_workers(1)
        # The restart emptied shared buffers: one drain first, not recorded, so that the profile
        # shows the apply and not the first touch of each buffer (as the measured runs do).
        timeout = max(60.0, min(600.0, self.deadline.left() - 30))
        self.drain("big", pid, timeout)
        data2 = OUT / "perf-apply.data"
        holder: dict[str, subprocess.Popen] = {}

        def before_commit(watch: psycopg.Connection) -> None:
            holder["perf"] = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", str(data2)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(holder["perf"])
            watch.execute("SELECT pg_stat_statements_reset()")

        try:
            r = self.drain("big", pid, timeout, before_commit)
        finally:
            perf = holder.get("perf")
            if perf is not None:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=60)
                self.procs.remove(perf)
            self.set_apply_workers(None)
        prof["apply"] = {"statements": self.top_statements(), "drain_seconds": r["seconds"], "events": r["queued"]}
        log(f"profile: apply recorded (drain {r['seconds']:.1f}s with pg_stat_statements and perf)")
        with self.conn() as conn:
            self.reset_ours(conn)
        prof["backfill"] = self.profile_backfill()
        prof["ingest"].update(perf_top(data, comm="postgres"))
        prof["apply"].update(perf_top(data2))
        for k, v in prof.items():
            (OUT / f"profile-{k}.txt").write_text(v.pop("text"))
        self.results["profile"] = prof
        log("profile: reports written to bench/out/profile-*.txt")

    def profile_backfill(self) -> dict:
        """perf on the job worker of one backfill('invoice') (the slower of the two), from the
        moment its process appears until it exits, and pg_stat_statements over the call."""
        c = self.cluster
        data = OUT / "perf-backfill.data"
        self.configure_api(BACKFILL_RATE_LIMIT)
        perf = None
        try:
            c.query("SELECT pg_stat_statements_reset()", dbname=DB)
            perf = PerfOnBackend(self, "stripe_sync job", data, ["-F", "999", "-g"])
            path, table = BACKFILL_OBJECTS["invoice"]
            r = self.backfill_run("invoice", path, table)
        finally:
            self.unconfigure_api()
            if perf is not None:
                perf.stop()
        if not perf.attached:
            raise RuntimeError("the backfill's job worker was gone before perf could attach")
        log(f"profile: backfill recorded ({r['objects']:,} invoices in {r['seconds']:.1f}s with pg_stat_statements and perf)")
        return {"statements": self.top_statements(), "seconds": r["seconds"], "objects": r["objects"],
                **perf_top(data, focus=BACKFILL_FOCUS)}

    def top_statements(self, limit: int = 8) -> list[dict]:
        """The costliest statements since the last reset, leaving out this harness's own
        housekeeping (truncates, checkpoints, counts, polling)."""
        with self.conn() as conn:
            rows = conn.execute(r"""
                SELECT regexp_replace(query, '\s+', ' ', 'g'), calls, total_plan_time, total_exec_time, rows, toplevel
                  FROM pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND query !~* '^\s*(TRUNCATE|CHECKPOINT|SET |SELECT (count|format|tablename|status|EXISTS|pending|pg_stat|\$1 FROM stripe_sync\.events WHERE status = \$2 ORDER BY))'
                   AND query NOT LIKE '%%pg_stat_statements%%' AND calls > 1
                 ORDER BY total_plan_time + total_exec_time DESC LIMIT %s""", (limit,)).fetchall()
        return [{"query": q, "calls": calls, "plan_ms": plan, "exec_ms": ex, "rows": r, "toplevel": top}
                for q, calls, plan, ex, r, top in rows]
