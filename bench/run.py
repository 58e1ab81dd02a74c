#!/usr/bin/env python3
"""Benchmark harness of stripe_sync: `make bench` runs it, it writes BENCHMARKS.md.

It starts its own private PostgreSQL 15 cluster (stripe_sync_testkit.harness) from a private snapshot
of the installed PostgreSQL + stripe_sync files (so a `make install` by someone else during the
run cannot crash it), and measures, as medians of N runs with baselines measured in the same run:

  1. ingest   pgbench calling stripe_sync.ingest_event() at 1, 4 and 8 clients, against the
              same payloads plain-INSERTed into (id text primary key, data jsonb)
  2. apply    100,000 queued events drained by the worker, against one set-based upsert
  3. latency  ingest -> applied (LISTEN stripe_sync) at a steady 500 events/s
  4. memory   the worker's RSS while it drains 20,000 and 100,000 events
  5. peer     the npm package stripe-experiment-sync (processWebhook) on the same stream
  6. backfill stripe_sync.backfill('customer') and ('invoice') into empty tables, 50,000 customers
              and 20,000 invoices (2 line items each) served by the tests' stand-in
              (stripe_sync_testkit.standin, pages built once, at start) with
              stripe_sync.api_rate_limit = 10,000, so the stand-in and our code are the bound:
              objects/s call -> return and while paging, against the stand-in's own ceiling (a
              plain urllib loop over the same pages) in the same run
  6b. backfill_paced  the same from a stand-in that answers each request after 300 ms ± 30 ms
              (bench/latency_standin.py), 60,000 customers and 60,000 invoices, at the defaults but
              api_rate_limit 25 and 100: objects/s as a share of the budget's bound (rate x 100)
  7. provisioning  1,000 signups inserted in one transaction into a provisioned users table:
              time from COMMIT until every row holds its customer id, and customers/s, at
              api_rate_limit 25 and 100, against the bound the request budget sets, and at
              10,000 (not the bound) for our code's own pace

    bench/run.py            # full run (N=3), about 20 minutes on 2 cores
    bench/run.py --quick    # smoke run: N=1, small sizes, about 3.5 minutes
    bench/run.py --only backfill,provisioning --runs 1 --output /tmp/b.md

Everything it makes goes to bench/out/ (streams are cached there); the cluster is deleted at the end.
This file is the command line and the order of the measures; the cluster is cluster.py's, each
measure a module of measures/, and the report report.py's (bench/README.md lists them all).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

from stripe_sync_testkit import harness

from cluster import BenchBase, library_info
from common import DB, OUT, PGBENCH, REPO, SYSTEM_PG_LIB, SYSTEM_PG_SHARE, T0, log
from measures.api import StandInApi
from measures.apply import ApplyMeasures
from measures.backfill import BackfillMeasures
from measures.backfill_paced import PacedBackfillMeasures
from measures.ingest import IngestMeasures
from measures.latency import LatencyMeasures
from measures.peer import PeerMeasures
from measures.profile import ProfileMeasures
from measures.provisioning import ProvisioningMeasures
from procstat import read_status
from report import write_report
from stream import Stream


class Bench(IngestMeasures, ApplyMeasures, LatencyMeasures, PeerMeasures, StandInApi, BackfillMeasures,
            PacedBackfillMeasures, ProvisioningMeasures, ProfileMeasures, BenchBase):
    """One run: the cluster and its phases (cluster.BenchBase), each measure (measures/), in order."""

    def run(self) -> None:
        if not PGBENCH.exists():
            self.notes.append(f"{PGBENCH} is missing (Debian package postgresql-contrib / postgresql-15): ingest not measured.")
        # backfill and provisioning need no event stream: --only backfill,provisioning skips loading it
        needs_stream = self.args.profile or any(
            self.wanted(x) for x in ("ingest", "ingest_worker", "apply", "latency", "peer", "profile"))
        stream: Any = None
        rows = 0
        if needs_stream:
            stream = Stream(self.args.stream_events, 0.05, 0.1)
            log(f"stream: {len(stream.deliveries):,} deliveries, {len(stream.distinct):,} distinct events "
                f"(gen_events.py --events {self.args.stream_events} --duplicates 0.05 --out-of-order 0.1)")
            self.results["stream"] = {**stream.params, "deliveries": len(stream.deliveries),
                                      "distinct": len(stream.distinct),
                                      "mean_payload_bytes": int(sum(len(p) for _, p in stream.deliveries) / len(stream.deliveries))}
        self.start_cluster()
        if needs_stream:
            self.load_tables(stream)
            rows = len(stream.distinct)
        # Phase A: the worker attaches to another database, so ingest is measured alone.
        if PGBENCH.exists() and self.wanted("ingest"):
            self.phase("ingest", lambda: self.measure_ingest(rows))
        if self.wanted("apply") or self.wanted("profile") or self.args.profile:
            self.phase("queue", lambda: self.prepare_queues(stream))
        # Phase B: the worker drains the benchmark database.
        self.point_worker_at(DB)
        self.results["worker_rss_idle"] = read_status(self.worker_pid())
        if PGBENCH.exists() and not self.args.skip_worker_ingest and self.wanted("ingest_worker"):
            self.phase("ingest_worker", lambda: self.measure_ingest_with_worker(rows))
        if self.wanted("apply"):
            self.phase("apply", lambda: self.measure_apply_and_memory(stream))
        if self.wanted("latency"):
            self.phase("latency", lambda: self.measure_latency(stream))
        if not self.args.skip_peer and self.wanted("peer"):
            self.phase("peer", lambda: self.measure_peer(stream))
        # Against the stand-in; the worker is attached to this database (provisioning needs it).
        if self.wanted("backfill"):
            self.phase("backfill", self.measure_backfill)
        if self.wanted("provisioning"):
            self.phase("provisioning", self.measure_provisioning)
        if self.wanted("ties"):
            self.phase("ties", self.measure_ties)
        # Last: its runs take minutes each while the backfill is far from the budget's bound.
        if self.wanted("backfill_paced"):
            self.phase("backfill_paced", self.measure_backfill_paced)
        if self.args.profile or (self.args.only and self.wanted("profile")):
            self.phase("profile", lambda: self.profile(stream))
        self.results["library_after"] = library_info(
            harness.PG_BIN.parent / "lib" / "stripe_sync.so", self._sharedir(harness.PG_BIN) / "extension")
        self.results["installed_library_now"] = library_info(
            SYSTEM_PG_LIB / "lib" / "stripe_sync.so", SYSTEM_PG_SHARE / "extension")


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """The command line, with the sizes and durations it implies (bench/lab.py uses it too)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: N=1 and small sizes (about 3.5 minutes)")
    ap.add_argument("--runs", type=int, help="repetitions per measure (default 3; --quick: 1)")
    ap.add_argument("--output", type=Path, default=REPO / "BENCHMARKS.md", help="report to write (default BENCHMARKS.md)")
    ap.add_argument("--deadline", type=float, help="seconds after which remaining measures are skipped (default 2100; --quick 600)")
    ap.add_argument("--skip-peer", action="store_true", help="leave out the comparison with the npm peer")
    ap.add_argument("--skip-worker-ingest", action="store_true", help="leave out ingest with the worker draining")
    ap.add_argument("--apply-workers", type=int,
                    help="stripe_sync.apply_workers for the second apply measure (default: the extension's "
                         "default; 1 skips it)")
    ap.add_argument("--backfill-workers", type=int, default=os.cpu_count() or 2,
                    help="stripe_sync.backfill_workers for the backfill measure, which also runs with 1 for the "
                         "ratio (default: the CPUs; 1 runs only that)")
    ap.add_argument("--profile", action="store_true", help="also perf-profile the ingest and apply hot paths")
    ap.add_argument("--package", type=Path, help="benchmark this `cargo pgrx package` tree instead of the installed extension")
    ap.add_argument("--no-snapshot", action="store_true", help="run from the system PostgreSQL directly (no private copy)")
    ap.add_argument("--quiet-wait", type=float, help="seconds, in all, that runs may wait for other processes "
                    "to leave the CPUs (default 120; --quick 0)")
    ap.add_argument("--backfill-timeout", type=float, help="seconds after which a backfill() call is cancelled and "
                    "reported as timed out (default: 10 x its time at the 10,000 objects/s target, at least 60)")
    ap.add_argument("--paced-objects", type=int,
                    help="customers, and invoices, that backfill_paced lists (default 60,000; --quick 5,000)")
    ap.add_argument("--only", help="comma-separated subset of: ingest, ingest_worker, apply, latency, peer, "
                    "backfill, backfill_paced, provisioning, ties, profile")
    args = ap.parse_args(argv)
    q = args.quick
    args.runs = args.runs or (1 if q else 3)
    args.deadline = args.deadline or (600 if q else 2100)
    args.quiet_wait = (0.0 if q else 120.0) if args.quiet_wait is None else args.quiet_wait
    args.stream_events = 100_000
    args.ingest_seconds = 2 if q else 6
    args.worker_ingest_seconds = 2 if q else 4
    args.apply_events = 10_000 if q else 100_000
    args.memory_small_events = 2_000 if q else 20_000
    args.latency_rate = 500.0
    args.latency_seconds = 5.0 if q else 20.0
    args.peer_events = 500 if q else 3_000
    args.backfill_customers = 10_000 if q else 50_000
    args.backfill_invoices = 2_000 if q else 20_000
    args.backfill_lines = 2
    args.paced_objects = args.paced_objects or (5_000 if q else 60_000)
    args.provision_signups = 200 if q else 1_000
    args.provision_ceiling_signups = 100 if q else 300
    args.tie_customers = 200 if q else 1_000
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    command = "bench/run.py" + ("" if len(sys.argv) == 1 else " " + " ".join(sys.argv[1:]))
    started = dt.datetime.now(dt.timezone.utc)

    def on_term(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    b = Bench(args)
    status = 0
    try:
        b.run()
    except KeyboardInterrupt:
        log("interrupted: stopping the cluster, no report written")
        status = 130
    except Exception as exc:  # noqa: BLE001
        log(f"FAILED: {type(exc).__name__}: {exc}")
        status = 1
    finally:
        b.stop()
    if status == 130:
        return status
    (OUT / "results.json").write_text(json.dumps(b.results, indent=1, default=str))
    if "library" in b.results:
        write_report(b, args.output, command, started, time.monotonic() - T0)
        log(f"wrote {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output} "
            f"(raw numbers: bench/out/results.json)")
    failed = b.results.get("failed")
    return status or (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
