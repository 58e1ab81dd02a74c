#!/usr/bin/env python3
"""The invoice backfill's job workers: how the rate changes with their number, and where one
job worker's CPU goes. One private cluster (bench/run.py's) and its Stripe stand-in
(bench/measures/api.py), full `backfill('invoice')` runs into emptied tables as in bench/run.py's
section 6, one run first that is not counted.

- `workers N [N ...]`: rounds of runs with each `stripe_sync.backfill_workers` value in turn;
  prints every run's rate, all of PostgreSQL's CPU and the job workers' wait-event samples,
  then the median rate of each value.
- `phases`: one run with one job worker under `perf record --call-graph dwarf` (the extension's
  release build and PostgreSQL omit frame pointers, which `perf -g` needs), then the share of
  its samples in each phase of a page, each sample counted in the first phase of PHASES that
  its stack holds.

bench/CHANGES.md quotes both:

    ~/.cache/stripe_sync/venv/bin/python bench/backfill_job.py --rounds 4 workers 2 3 4
    ~/.cache/stripe_sync/venv/bin/python bench/backfill_job.py phases
"""
import argparse
import collections
import re
import statistics
import subprocess
import sys

import run as R
from common import BACKFILL_OBJECTS, BACKFILL_RATE_LIMIT, OUT
from procstat import PerfOnBackend

# (label, a frame the phase's stacks hold), most specific first.
PHASES = [
    ("jsonb of the page (stripe_sync::jsonb)", "stripe_sync::jsonb::member_from_text"),
    ("HTTP request and scan of the page", "stripe_sync::backfill::fetch"),
    ("apply: TOAST of the stored objects (out of line)", "toast_save_datum"),
    ("apply: lz4 compression", "LZ4_compress"),
    ("apply: index inserts", "ExecInsertIndexTuples"),
    ("apply: ON CONFLICT checks", "ExecCheckIndexConstraints"),
    ("apply: heap inserts", "heap_insert"),
    ("apply: the rest of the statements (expressions, sorts, child delete)", "SPI_execute_plan"),
    ("commit", "CommitTransaction"),
]


def workers(bench: R.Bench, rounds: int, counts: list[int]) -> None:
    path, table = BACKFILL_OBJECTS["invoice"]
    rates: dict[int, list[float]] = {w: [] for w in counts}
    bench.backfill_run("invoice", path, table, counts[0])  # not counted
    for k in range(rounds):
        for w in counts:
            r = bench.backfill_run("invoice", path, table, w)
            rates[w].append(r["rate"])
            print(f"round {k + 1}, {w} job workers: {r['rate']:,.0f} invoices/s, PostgreSQL CPU "
                  f"{r['cpu']['postgres']:.2f} s, wait samples {r['cpu'].get('waits')}", flush=True)
    for w, xs in rates.items():
        print(f"{w} job workers: median {statistics.median(xs):,.0f} invoices/s "
              f"(runs {', '.join(f'{x:,.0f}' for x in xs)})")


def phases(bench: R.Bench) -> None:
    path, table = BACKFILL_OBJECTS["invoice"]
    data = OUT / "perf-backfill-dwarf.data"
    bench.backfill_run("invoice", path, table, 1)  # not counted
    perf = PerfOnBackend(bench, "stripe_sync job", data, ["-F", "499", "--call-graph", "dwarf,32768"])
    try:
        r = bench.backfill_run("invoice", path, table, 1)
    finally:
        perf.stop()
    if not perf.attached:
        sys.exit("the job worker was gone before perf could attach")
    print(f"{r['objects']:,} invoices, {r['rate']:,.0f}/s, job worker CPU {r['cpu']['job']:.2f} s")
    # perf resolves symbols from the cluster's snapshot of PostgreSQL, which still exists here.
    script = subprocess.run(["perf", "script", "-i", str(data), "--no-inline"], capture_output=True,
                            text=True, check=True).stdout
    counts: collections.Counter = collections.Counter()
    total = 0
    for sample in script.split("\n\n"):
        frames = [re.sub(r"\+0x[0-9a-f]+$", "", ln.strip().split(" ", 1)[-1].rsplit(" (", 1)[0])
                  for ln in sample.splitlines()[1:] if ln.strip()]
        if not frames:
            continue
        total += 1
        counts[next((label for label, frame in PHASES if any(frame in f for f in frames)), "other")] += 1
    for label, _ in PHASES + [("other", "")]:
        print(f"{counts[label] / total * 100:5.1f} %  {label}")
    print(f"({total:,} samples)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="runs per job-worker count (default 3)")
    ap.add_argument("what", choices=("workers", "phases"))
    ap.add_argument("counts", nargs="*", type=int, default=[2, 3, 4], help="job-worker counts (workers)")
    a = ap.parse_args()
    args = R.parse_args(["--only", "backfill", "--runs", "1", "--quiet-wait", "0"])
    bench = R.Bench(args)
    try:
        bench.start_cluster()
        bench.configure_api(BACKFILL_RATE_LIMIT)
        if a.what == "workers":
            workers(bench, a.rounds, a.counts)
        else:
            phases(bench)
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
