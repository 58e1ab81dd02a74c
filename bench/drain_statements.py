#!/usr/bin/env python3
"""Time per SQL statement in each drain: one private cluster (bench/run.py's) with
pg_stat_statements preloaded (track = all, so the statements the worker and its helpers run
through SPI count), the 100,000-event queue, one drain by the worker alone not counted (lab.py's
start), then drains with the given `stripe_sync.apply_workers` (default 2), pg_stat_statements
reset before each. Prints each drain's rate and its statements by execution time: calls, ms,
shared buffers hit and read. bench/CHANGES.md quotes it for the claim and the bench's own poll.

    ~/.cache/stripe_sync/venv/bin/python bench/drain_statements.py --rounds 4 --apply-workers 2
"""
import argparse
import sys
from pathlib import Path

import lab as L
import run as R
from common import DB

TOP = """SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70), calls, round(total_exec_time),
                shared_blks_hit, shared_blks_read
           FROM pg_stat_statements
          WHERE query NOT LIKE '%%pg_stat_statements%%' AND calls > 3
          ORDER BY total_exec_time DESC LIMIT %s"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="drains counted (default 3)")
    ap.add_argument("--apply-workers", type=int, default=2, help="stripe_sync.apply_workers (default 2)")
    ap.add_argument("--top", type=int, default=10, help="statements shown per drain (default 10)")
    ap.add_argument("--package", type=Path, help="a `cargo pgrx package` tree instead of the installed extension")
    a = ap.parse_args()
    args = R.parse_args(["--only", "apply", "--runs", "1", "--quiet-wait", "0", "--apply-workers", "1"]
                        + (["--package", str(a.package)] if a.package else []))
    bench = R.Bench(args)
    try:
        # The restart that points the worker at the queue loads pg_stat_statements.
        L.start_with_queue(bench, args, conf={"shared_preload_libraries": "stripe_sync, pg_stat_statements",
                                              "pg_stat_statements.track": "all"})
        bench.cluster.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", dbname=DB)
        bench.set_apply_workers(a.apply_workers)
        for r in range(a.rounds):
            bench.cluster.query("SELECT pg_stat_statements_reset()", dbname=DB)
            d = bench.drain("big", bench.worker_pid(), 600)
            print(f"drain {r + 1}, apply_workers {a.apply_workers}: {d['rate']:,.0f} events/s in {d['seconds']:.2f} s",
                  flush=True)
            print(f"   {'ms':>6} {'calls':>6} {'buffers hit':>12} {'read':>6}  statement")
            with bench.conn() as conn:
                for query, calls, ms, hit, read in conn.execute(TOP, (a.top,)).fetchall():
                    print(f"   {ms:>6,.0f} {calls:>6,} {hit:>12,} {read:>6,}  {query}", flush=True)
        L.run_sql(bench, "ALTER SYSTEM RESET stripe_sync.apply_workers; SELECT pg_reload_conf()")
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
