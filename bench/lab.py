#!/usr/bin/env python3
"""A/B lab for the apply and the backfill: one private cluster (bench/run.py's), then the same
work again and again, alternating between variants round after round, so that every variant
meets the same machine state.

- `--measure apply` (the default): the 100,000-event queue, drained by the worker alone
  (`stripe_sync.apply_workers = 1`, which a variant may change and undo). Prints the
  worker's CPU per event (utime + stime from /proc, the steadier measure on a shared machine),
  the rate and the WAL of every drain, then the median of each variant.
- `--measure backfill`: full `backfill('invoice')` runs against the stand-in's pre-built pages
  (bench/measures/api.py) into emptied tables, as bench/run.py's section 6, with
  `--backfill-workers` job workers (default 1: its CPU per page is then one process's). Prints the
  job workers' CPU per page (all of PostgreSQL's CPU with several), the rate and the WAL of every
  run, then the median of each variant.

A variant is `-` (the build as installed, or --package) or a file of SQL statements run before
its drains; what follows a line `-- undo:` in it runs after each of its drains. bench/variants/
holds the ones bench/CHANGES.md quotes. Run it with the project's virtualenv (`make setup`), after
`make install`, as bench/run.py:

    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --rounds 3 - bench/variants/partial_ref_indexes.sql
    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --rounds 4 - bench/variants/storage_main.sql
    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --rounds 2 - bench/variants/apply_workers_2.sql
    ~/.cache/stripe_sync/venv/bin/python bench/lab.py --measure backfill --rounds 3 - bench/variants/storage_main.sql

One drain (or backfill) comes first and is not counted (first use of the shared buffers)."""
import argparse
import statistics
import sys
from pathlib import Path
from typing import Optional

import run as R
from common import BACKFILL_OBJECTS, BACKFILL_RATE_LIMIT, DB, fmt
from procstat import cpu_per_event_us
from stream import Stream


def run_sql(bench: R.Bench, sql: str) -> None:
    with bench.conn() as conn:
        conn.autocommit = True  # ALTER SYSTEM cannot run in a transaction block
        text = "\n".join(ln for ln in sql.splitlines() if not ln.strip().startswith("--"))
        for statement in text.split(";"):
            if statement.strip():
                conn.execute(statement)


def load_variants(names: list[str]) -> dict[str, tuple[str, str]]:
    """Each variant's (SQL run before, SQL run after): '-' runs nothing, a file runs what precedes
    its line `-- undo:`, then what follows it."""
    return {v: ("", "") if v == "-" else tuple(x.strip() for x in Path(v).read_text().partition("-- undo:")[::2])
            for v in names}


def start_with_queue(bench: R.Bench, args, conf: Optional[dict] = None) -> None:
    """The cluster, the 100,000-event queue, the worker on it, and one drain not counted. `conf`:
    settings added to postgresql.conf before the restart that points the worker at the queue."""
    stream = Stream(args.stream_events, 0.05, 0.1)
    bench.start_cluster()
    bench.load_tables(stream)
    bench.prepare_queues(stream)
    if conf:
        bench.cluster.append_conf(conf)
    bench.point_worker_at(DB)
    bench.set_apply_workers(1)
    bench.drain("big", bench.worker_pid(), 600)  # warm-up, not counted


# A WAL range's records by the relation of their first block (a TOAST table under its owner's
# name) or, without a block, by resource manager: records, bytes, and the bytes of full-page
# images (a page's first change after a checkpoint logs the whole page).
WAL_BY_RELATION = """
WITH r AS (
    SELECT substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS filenode,
           resource_manager || '/' || record_type AS kind,
           count(*) AS records, sum(record_length) AS bytes, sum(fpi_length) AS fpi_bytes
    FROM pg_get_wal_records_info(%s::pg_lsn, least(%s::pg_lsn, pg_current_wal_flush_lsn()))
    GROUP BY 1, 2),
named AS (
    SELECT r.*, coalesce((SELECT o.relname || ' (TOAST)' FROM pg_class o
                          WHERE o.reltoastrelid IN (c.oid, (SELECT i.indrelid FROM pg_index i WHERE i.indexrelid = c.oid))),
                         c.relname, '(no relation)') AS what
    FROM r LEFT JOIN pg_class c ON c.relfilenode = r.filenode AND r.filenode <> 0)
SELECT what, string_agg(kind || ' ' || records, ', ' ORDER BY records DESC) AS kinds,
       sum(records)::bigint AS records, sum(bytes) AS bytes, sum(fpi_bytes) AS fpi_bytes
FROM named GROUP BY 1 ORDER BY bytes DESC
"""


def wal_breakdown(bench: R.Bench, d: dict) -> list[tuple]:
    """`WAL_BY_RELATION` over one drain's WAL (pg_walinspect, created on first use)."""
    with bench.conn() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        return conn.execute(WAL_BY_RELATION, d["wal_range"]).fetchall()


def print_wal(rows: list[tuple], events: int) -> None:
    total = sum(float(r[3]) for r in rows) or 1.0
    print(f"  {'WAL by relation':44} {'records/event':>13} {'bytes/event':>11} {'of which FPI':>12} {'share':>6}")
    for what, kinds, records, nbytes, fpi in rows[:14]:
        print(f"  {what[:44]:44} {records / events:13.2f} {float(nbytes) / events:11.0f} "
              f"{float(fpi) / events:12.0f} {float(nbytes) / total:6.1%}  {kinds[:120]}")
    print(f"  {'all':44} {sum(r[2] for r in rows) / events:13.2f} {total / events:11.0f} "
          f"{sum(float(r[4]) for r in rows) / events:12.0f}", flush=True)


def lab_apply(bench: R.Bench, args, rounds: int, scripts: dict, wal: bool = False) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {v: [] for v in scripts}
    start_with_queue(bench, args)
    for r in range(rounds):
        for v, (do, undo) in scripts.items():
            run_sql(bench, do)
            d = bench.drain("big", bench.worker_pid(), 600)
            run_sql(bench, undo)
            results[v].append(d)
            print(f"round {r + 1} {v}: {cpu_per_event_us(d)} µs/event, {d['rate']:,.0f} events/s, "
                  f"WAL {d['wal_bytes'] / 1e6:,.0f} MB, wait samples {d['waits']}", flush=True)
            if wal:
                print_wal(wal_breakdown(bench, d), d["queued"])
    return results


def lab_backfill(bench: R.Bench, args, rounds: int, scripts: dict) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {v: [] for v in scripts}
    path, table = BACKFILL_OBJECTS["invoice"]
    workers = args.backfill_workers
    bench.start_cluster()
    bench.configure_api(BACKFILL_RATE_LIMIT)

    def once() -> dict:
        wal0 = bench.cluster.scalar("SELECT pg_current_wal_lsn()::text")
        r = bench.backfill_run("invoice", path, table, workers)
        wal = bench.cluster.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)::bigint", (wal0,))
        r["wal_bytes"] = wal
        cpu = r["cpu"]["job"] if workers == 1 else r["cpu"]["postgres"]
        r["cpu_per_page_ms"] = cpu / r["pages"] * 1e3 if cpu is not None and r["pages"] else None
        return r

    once()  # warm-up, not counted
    for k in range(rounds):
        for v, (do, undo) in scripts.items():
            run_sql(bench, do)
            r = once()
            run_sql(bench, undo)
            results[v].append(r)
            print(f"round {k + 1} {v}: {fmt(r['cpu_per_page_ms'], 2)} ms CPU/page "
                  f"({'job worker' if workers == 1 else 'all of PostgreSQL'}), {fmt(r['rate'])} objects/s, "
                  f"paging {fmt(r['paging_rate'])}/s, WAL {r['wal_bytes'] / 1e6:,.0f} MB", flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure", choices=("apply", "backfill"), default="apply", help="what to measure (default apply)")
    ap.add_argument("--rounds", type=int, default=2, help="drains or backfills per variant (default 2)")
    ap.add_argument("--backfill-workers", type=int, default=1, help="stripe_sync.backfill_workers (default 1)")
    ap.add_argument("--wal", action="store_true",
                    help="apply: after each drain, its WAL by relation and the share of full-page images (pg_walinspect)")
    ap.add_argument("--package", type=Path, help="a `cargo pgrx package` tree instead of the installed extension")
    ap.add_argument("variants", nargs="+", help="'-' or SQL files")
    a = ap.parse_args()
    scripts = load_variants(a.variants)
    args = R.parse_args(["--only", a.measure, "--runs", "1", "--quiet-wait", "0", "--apply-workers", "1",
                         "--backfill-workers", str(a.backfill_workers)]
                        + (["--package", str(a.package)] if a.package else []))
    bench = R.Bench(args)
    try:
        if a.measure == "apply":
            results = lab_apply(bench, args, a.rounds, scripts, a.wal)
        else:
            results = lab_backfill(bench, args, a.rounds, scripts)
    finally:
        bench.stop()
    for v, ds in results.items():
        if a.measure == "apply":
            xs = [d["worker_cpu_s"] / d["queued"] * 1e6 for d in ds if d["worker_cpu_s"] is not None]
            unit, rate = "µs/event", "events/s"
        else:
            xs = [d["cpu_per_page_ms"] for d in ds if d["cpu_per_page_ms"] is not None]
            unit, rate = "ms CPU/page", "objects/s"
        if not xs:
            print(f"{v}: the CPU was not read")
            continue
        rates = [d["rate"] for d in ds if d.get("rate")]
        print(f"{v}: median {statistics.median(xs):.1f} {unit} (runs {', '.join(f'{x:.1f}' for x in xs)}), "
              f"median {statistics.median(rates) if rates else 0:,.0f} {rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
