#!/usr/bin/env python3
"""Ingest while the worker drains the same database, looked at from inside: one private cluster
(bench/run.py's) with pg_stat_statements preloaded (track = all), then pgbench runs of
`ingest_event` as in BENCHMARKS.md's "Ingest while the worker drains" (each run into an emptied
queue), alternating between variants run after run. Per run it prints the ingest rate, the events
applied by its end, the worker's CPU per applied event (utime + stime from /proc), the batches it
took (calls of the claim), WAL per ingested event (pg_stat_wal: the client backends' own; the
worker does not report its WAL there), and the ingest backends' wait events (pg_stat_activity,
sampled every 5 ms); `--statements N` adds the N statements that took longest. bench/CHANGES.md
quotes it for stripe_sync.batch_wait and the claim's MultiXacts.

A variant is `-` (the settings as they are) or a file of SQL statements run before its runs (ALTER
SYSTEM ...; SELECT pg_reload_conf()); what follows a line `-- undo:` in it runs after each, as in
bench/lab.py. `--alone` attaches the worker to another database instead (ingest alone).

    ~/.cache/stripe_sync/venv/bin/python bench/ingest_drain.py --rounds 3 - bench/variants/batch_wait_0.sql
"""
import argparse
import collections
import statistics
import sys
import threading
import time
from pathlib import Path

import lab as L
import run as R
from common import DB
from procstat import cpu_seconds
from stream import Stream

CLAIM = "-- Claims up to $1 due pending events%"
TOP = """SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70), calls, round(total_exec_time),
                shared_blks_hit
           FROM pg_stat_statements
          WHERE query NOT LIKE '%%pg_stat_statements%%' AND calls > 3
          ORDER BY total_exec_time DESC LIMIT %s"""
WAITS = """SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()"""


def sample_waits(bench: R.Bench, stop: threading.Event, into: collections.Counter) -> None:
    with bench.conn() as conn:
        conn.autocommit = True
        while not stop.is_set():
            for (w,) in conn.execute(WAITS).fetchall():
                into[w] += 1
            time.sleep(0.005)


def one_run(bench: R.Bench, args, clients: int, rows: int, top: int) -> dict:
    bench.resign("bench.deliveries")
    worker = bench.worker_pid()
    for sql in ("SELECT pg_stat_statements_reset()", "SELECT pg_stat_reset_shared('wal')"):
        bench.cluster.query(sql, dbname=DB)
    cpu0 = cpu_seconds(worker)
    waits: collections.Counter = collections.Counter()
    stop = threading.Event()
    sampler = threading.Thread(target=sample_waits, args=(bench, stop, waits))
    sampler.start()
    try:
        r = bench.ingest_run("ours", clients, args.worker_ingest_seconds, rows)
    finally:
        stop.set()
        sampler.join()
    cpu = cpu_seconds(worker) - cpu0
    with bench.conn() as conn:
        wal_bytes, = conn.execute("SELECT wal_bytes FROM pg_stat_wal").fetchone()
        batches = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE %s",
                               (CLAIM,)).fetchone()[0]
        statements = conn.execute(TOP, (top,)).fetchall() if top else []
    applied = r["applied_meanwhile"]
    return {"rate": r["tps"], "stored": r["stored"], "applied": applied, "worker_cpu_s": cpu,
            "us_per_applied": 1e6 * cpu / applied if applied else None, "batches": int(batches),
            "wal_per_event": int(wal_bytes) / max(1, r["stored"]), "waits": waits, "statements": statements}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="runs per variant (default 3)")
    ap.add_argument("--clients", type=int, default=8, help="pgbench clients (default 8)")
    ap.add_argument("--statements", type=int, default=0, help="statements shown per run (default none)")
    ap.add_argument("--alone", action="store_true", help="the worker attached to another database")
    ap.add_argument("--package", type=Path, help="a `cargo pgrx package` tree instead of the installed extension")
    ap.add_argument("variants", nargs="+", help="'-' or SQL files")
    a = ap.parse_args()
    scripts = L.load_variants(a.variants)
    args = R.parse_args(["--only", "ingest_worker", "--runs", "1", "--quiet-wait", "0"]
                        + (["--package", str(a.package)] if a.package else []))
    bench = R.Bench(args)
    results: dict[str, list[dict]] = {v: [] for v in scripts}
    try:
        stream = Stream(args.stream_events, 0.05, 0.1)
        bench.start_cluster()
        bench.load_tables(stream)
        bench.cluster.append_conf({"shared_preload_libraries": "stripe_sync, pg_stat_statements",
                                   "pg_stat_statements.track": "all"})
        # The restart that attaches the worker loads pg_stat_statements.
        bench.point_worker_at("postgres" if a.alone else DB)
        bench.cluster.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname=DB)
        one_run(bench, args, a.clients, len(stream.distinct), 0)  # warm-up, not counted
        for rnd in range(a.rounds):
            for v, (do, undo) in scripts.items():
                L.run_sql(bench, do)
                d = one_run(bench, args, a.clients, len(stream.distinct), a.statements)
                L.run_sql(bench, undo)
                results[v].append(d)
                us = f"{d['us_per_applied']:,.0f}" if d["us_per_applied"] else "?"
                waits = ", ".join(f"{w} {n}" for w, n in d["waits"].most_common(4))
                print(f"round {rnd + 1} {v}: {d['rate']:,.0f} events/s, applied {d['applied']:,} of "
                      f"{d['stored']:,} in {d['batches']:,} batches, worker {us} µs CPU/applied event, "
                      f"WAL {d['wal_per_event']:,.0f} bytes/event; ingest waits: {waits}", flush=True)
                for query, calls, ms, hit in d["statements"]:
                    print(f"   {ms:>6,.0f} ms {calls:>7,} calls {hit:>10,} hits  {query}", flush=True)
    finally:
        bench.stop()
    for v, runs in results.items():
        rates = [d["rate"] for d in runs]
        us = [d["us_per_applied"] for d in runs if d["us_per_applied"]]
        print(f"{v}: median {statistics.median(rates):,.0f} events/s (runs {', '.join(f'{x:,.0f}' for x in rates)})"
              + (f", worker {statistics.median(us):,.0f} µs CPU/applied event (runs {', '.join(f'{x:,.0f}' for x in us)})"
                 if us else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
