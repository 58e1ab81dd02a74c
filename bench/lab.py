#!/usr/bin/env python3
"""A/B lab for the apply: one private cluster (bench/run.py's), the 100,000-event queue, then
drains of that same queue, alternating between variants round after round, so that every
variant meets the same machine state. Prints the worker's CPU per event (utime + stime from
/proc, the steadier measure on a shared machine), the rate and the WAL of every drain, then the
median of each variant.

A variant is `-` (the build as installed, or --package) or a file of SQL statements run before
its drains; what follows a line `-- undo:` in it runs after each of its drains. bench/variants/
holds the ones bench/CHANGES.md quotes. Run it with the project's virtualenv (`make setup`), after
`make install`, as bench/run.py:

    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --rounds 3 - bench/variants/partial_ref_indexes.sql
    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --rounds 4 - bench/variants/storage_main.sql
    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --rounds 2 - bench/variants/apply_workers_2.sql

One drain of the queue comes first and is not counted (first use of the shared buffers)."""
import argparse
import statistics
import sys
from pathlib import Path

import run as R


def run_sql(bench: R.Bench, sql: str) -> None:
    with bench.conn() as conn:
        conn.autocommit = True  # ALTER SYSTEM cannot run in a transaction block
        for statement in sql.split(";"):
            lines = [ln for ln in statement.splitlines() if not ln.strip().startswith("--")]
            if "".join(lines).strip():
                conn.execute("\n".join(lines))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="drains per variant (default 2)")
    ap.add_argument("--package", type=Path, help="a `cargo pgrx package` tree instead of the installed extension")
    ap.add_argument("variants", nargs="+", help="'-' or SQL files")
    a = ap.parse_args()
    scripts = {v: ("", "") if v == "-" else tuple(x.strip() for x in Path(v).read_text().partition("-- undo:")[::2])
               for v in a.variants}
    args = R.parse_args(["--only", "apply", "--runs", "1", "--quiet-wait", "0", "--apply-workers", "1"]
                        + (["--package", str(a.package)] if a.package else []))
    bench = R.Bench(args)
    results: dict[str, list[dict]] = {v: [] for v in a.variants}
    try:
        stream = R.Stream(args.stream_events, 0.05, 0.1)
        bench.start_cluster()
        bench.load_tables(stream)
        bench.prepare_queues(stream)
        bench.point_worker_at(R.DB)
        bench.drain("big", bench.worker_pid(), 600)  # warm-up, not counted
        for r in range(a.rounds):
            for v, (do, undo) in scripts.items():
                run_sql(bench, do)
                d = bench.drain("big", bench.worker_pid(), 600)
                run_sql(bench, undo)
                results[v].append(d)
                print(f"round {r + 1} {v}: {R.cpu_per_event_us(d)} µs/event, {d['rate']:,.0f} events/s, "
                      f"WAL {d['wal_bytes'] / 1e6:,.0f} MB, wait samples {d['waits']}", flush=True)
    finally:
        bench.stop()
    for v, ds in results.items():
        us = [d["worker_cpu_s"] / d["queued"] * 1e6 for d in ds if d["worker_cpu_s"] is not None]
        if not us:
            print(f"{v}: the worker's CPU was not read")
            continue
        print(f"{v}: median {statistics.median(us):.1f} µs/event (runs {', '.join(f'{x:.1f}' for x in us)}), "
              f"median {statistics.median(d['rate'] for d in ds):,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
