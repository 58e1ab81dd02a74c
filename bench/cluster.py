"""The benchmark's private PostgreSQL: a snapshot of the installed PostgreSQL 15 and stripe_sync (a
`make install` during the run cannot crash it), its postgresql.conf, and BenchBase, the part of
run.Bench that starts and stops the cluster, holds the run's results, loads and resets the tables,
and runs each measure as a phase (its time, the CPU others took meanwhile, its failure kept apart)."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

import psycopg
from stripe_sync_testkit import harness
from stripe_sync_testkit.harness import sign

from common import DB, SECRET, SYSTEM_PG_LIB, SYSTEM_PG_SHARE, Deadline, Skipped, log
from procstat import ForeignCpu, machine, steal_seconds
from stream import Stream, copy_in


def snapshot_install(root: Path, package: Optional[Path]) -> Path:
    """Copy the installed PostgreSQL 15 (bin, lib, share) under root, keeping Debian's layout so
    the binaries find lib and share relative to themselves. Optionally overlay a
    `cargo pgrx package` tree. Returns the bin directory."""
    lib = root / "usr/lib/postgresql/15"
    share = root / "usr/share/postgresql/15"
    lib.parent.mkdir(parents=True)
    share.parent.mkdir(parents=True)
    shutil.copytree(SYSTEM_PG_LIB, lib, symlinks=True)
    shutil.copytree(SYSTEM_PG_SHARE, share, symlinks=True)
    if package is not None:
        so = package / "usr/lib/postgresql/15/lib/stripe_sync.so"
        ext = package / "usr/share/postgresql/15/extension"
        if not so.is_file():
            raise SystemExit(f"--package {package}: no usr/lib/postgresql/15/lib/stripe_sync.so in it")
        shutil.copy2(so, lib / "lib" / "stripe_sync.so")
        for f in ext.glob("stripe_sync*"):
            shutil.copy2(f, share / "extension" / f.name)
    for d in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        os.chmod(d, 0o755)
    return lib / "bin"


def library_info(so: Path, sql_dir: Path) -> dict:
    info: dict[str, Any] = {"path": str(so), "bytes": so.stat().st_size}
    try:
        notes = subprocess.run(["readelf", "-n", str(so)], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"Build ID: ([0-9a-f]+)", notes)
        info["build_id"] = m.group(1) if m else None
        sections = subprocess.run(["readelf", "-S", "-W", str(so)], capture_output=True, text=True, timeout=30).stdout
        info["debug_info"] = ".debug_info" in sections
    except (OSError, subprocess.SubprocessError):
        info["build_id"], info["debug_info"] = None, None
    sql = "".join(p.read_text(errors="replace") for p in sql_dir.glob("stripe_sync--*.sql"))
    info["pg_test_functions"] = "CREATE  FUNCTION tests." in sql or "CREATE FUNCTION tests." in sql
    info["suspect_debug_build"] = bool(info.get("debug_info") or info["pg_test_functions"])
    return info


def cluster_conf(worker_db: str) -> dict:
    """postgresql.conf for the benchmark: durable (fsync, synchronous_commit and full_page_writes
    on), memory sized for this box, no checkpoint inside a measurement (we CHECKPOINT before
    each run). Every planner and JIT setting stays at PostgreSQL's default (jit on, work_mem,
    effective_cache_size, enable_*): a user's cluster has them, so the figures must hold with them.
    What is changed here is durability-neutral memory and WAL sizing, listed in the report."""
    conf = harness.stripe_sync_conf(SECRET, poll_interval_ms=1000)
    conf.pop("stripe_sync.catch_up_interval", None)  # the tests' choice; the benchmark keeps the default
    conf.update({
        "stripe_sync.database": worker_db,
        "fsync": True,
        "synchronous_commit": "on",
        "full_page_writes": True,
        "shared_buffers": "4GB",
        "maintenance_work_mem": "512MB",
        "wal_buffers": "64MB",
        "max_wal_size": "32GB",
        "min_wal_size": "2GB",
        "checkpoint_timeout": "1h",
        "max_connections": 60,
        "log_min_messages": "warning",
    })
    return conf


class BenchBase:
    """The cluster, the run's results and its phases; run.Bench adds the measures (measures/)."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.quick = args.quick
        self.runs = args.runs
        self.deadline = Deadline(args.deadline)
        self.results: dict[str, Any] = {}
        self.notes: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.queues: dict[str, dict] = {}
        self._standin: Optional[dict] = None  # the Stripe stand-in (measures/api.py), once started
        self.cluster: Optional[harness.Cluster] = None
        self.tmp = Path(tempfile.mkdtemp(prefix="stripe_sync-bench-"))
        os.chmod(self.tmp, 0o755)
        self.foreign = ForeignCpu(self._postmaster_pid)
        self.results["foreign_cpu"] = {}
        self.results["quiet_waited"] = 0.0
        self.quiet_budget = args.quiet_wait
        self.results["loadavg_start"] = os.getloadavg()
        # The code as it is when the run starts: edits made while it runs are not in it.
        self.results["machine"] = machine()

    def _postmaster_pid(self) -> Optional[int]:
        try:
            return int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        except (AttributeError, OSError, ValueError, IndexError):
            return None

    # -- cluster -------------------------------------------------------------
    def start_cluster(self) -> None:
        if self.args.no_snapshot:
            bindir = SYSTEM_PG_LIB / "bin"
        else:
            log("snapshotting the installed PostgreSQL 15 + stripe_sync")
            bindir = snapshot_install(self.tmp / "pg", self.args.package)
        harness.PG_BIN = bindir
        libdir = bindir.parent / "lib"
        sharedir = self._sharedir(bindir)
        if not (sharedir / "extension" / "stripe_sync.control").is_file():
            raise SystemExit("stripe_sync is not installed into PostgreSQL 15: run `make install` first")
        self.results["library"] = library_info(libdir / "stripe_sync.so", sharedir / "extension")
        base = self.tmp / "cluster"
        self.cluster = harness.Cluster(base_dir=base, conf=cluster_conf("postgres"))
        c = self.cluster
        c.query(f"CREATE DATABASE {DB}")
        c.query("CREATE EXTENSION stripe_sync", dbname=DB)
        c.query("CREATE SCHEMA bench", dbname=DB)
        self.results["server_version"] = c.scalar("SELECT version()")
        self.results["settings"] = {
            # missing_ok: a --package build from before a setting existed reports it as None.
            k: c.scalar("SELECT current_setting(%s, true)", (k,))
            for k in ("shared_buffers", "synchronous_commit", "fsync", "full_page_writes", "wal_level",
                      "max_wal_size", "checkpoint_timeout", "jit", "stripe_sync.batch_size",
                      "stripe_sync.batch_wait", "stripe_sync.poll_interval", "stripe_sync.signature_tolerance")
        }
        log(f"cluster up on {base} ({self.results['settings']['shared_buffers']} shared_buffers, "
            f"synchronous_commit {self.results['settings']['synchronous_commit']}, fsync {self.results['settings']['fsync']})")

    @staticmethod
    def _sharedir(bindir: Path) -> Path:
        out = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, timeout=30)
        return Path(out.stdout.strip())

    def point_worker_at(self, dbname: str) -> None:
        c = self.cluster
        c.query(f"ALTER SYSTEM SET stripe_sync.database = '{dbname}'")
        c.restart()
        harness.wait_until(
            lambda: c.scalar("SELECT datname FROM pg_stat_activity WHERE backend_type = %s",
                             (harness.WORKER_TYPE,)) == dbname,
            timeout=60, what=f"the stripe_sync worker on database {dbname}")

    def worker_pid(self) -> int:
        return harness.wait_until(self.cluster.worker_pid, timeout=60, what="the stripe_sync worker")

    def conn(self, dbname: str = DB) -> psycopg.Connection:
        conn = self.cluster.connect(dbname=dbname)
        conn.execute("SET statement_timeout = '600s'")
        return conn

    def stop(self) -> None:
        self.foreign.stop()
        self.results["foreign_cpu_total"] = self.foreign.seconds
        steal_end = steal_seconds()
        if self.foreign.steal_start is not None and steal_end is not None:
            self.results["steal_total"] = steal_end - self.foreign.steal_start
        self.results["foreign_cpu_top"] = sorted(self.foreign.top.items(), key=lambda kv: -kv[1])[:5]
        self.results["loadavg_end"] = os.getloadavg()
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if self.cluster is not None:
            try:
                if self.cluster.running:
                    self.cluster.stop("fast", timeout=60)
            except Exception as exc:  # noqa: BLE001 - fall back to destroy's immediate stop
                log(f"fast stop failed ({exc}); stopping immediately")
            self.cluster.destroy()
            self.cluster = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- data ----------------------------------------------------------------
    def load_tables(self, stream: Stream) -> None:
        """bench.deliveries: the distinct events, signed (ingest, latency, the queue);
        bench.apply_order: the stream's delivery order with its redeliveries and reorderings."""
        with self.conn() as conn:
            conn.execute("""
                CREATE UNLOGGED TABLE bench.deliveries (n bigint PRIMARY KEY, id text NOT NULL UNIQUE, payload text NOT NULL,
                                                        signature text);
                CREATE UNLOGGED TABLE bench.apply_order (n bigint PRIMARY KEY, id text NOT NULL);
                CREATE SEQUENCE bench.ingest_seq;
                CREATE TABLE bench.plain_events (id text PRIMARY KEY, data jsonb NOT NULL);
                CREATE TABLE bench.node_floor (id text PRIMARY KEY, body text NOT NULL);
                CREATE TABLE bench.plain_objects (id text PRIMARY KEY, object text, event_created bigint, data jsonb NOT NULL);
            """)
            t0 = time.monotonic()
            copy_in(conn, "COPY bench.deliveries (n, id, payload) FROM STDIN",
                    ((n, eid, payload) for n, (eid, payload) in enumerate(stream.distinct, 1)))
            copy_in(conn, "COPY bench.apply_order (n, id) FROM STDIN",
                    ((n, eid) for n, (eid, _) in enumerate(stream.deliveries, 1)))
            conn.execute("VACUUM ANALYZE bench.deliveries, bench.apply_order")
        self.payloads = {"bench.deliveries": [p for _, p in stream.distinct]}
        log(f"loaded {len(stream.distinct):,} distinct events and the order of {len(stream.deliveries):,} deliveries "
            f"in {time.monotonic() - t0:.0f}s")

    def resign(self, table: str, limit: Optional[int] = None) -> int:
        """Fresh signatures (t = now) for the rows of table (n <= limit); returns t."""
        t = int(time.time())
        payloads = self.payloads[table][:limit] if limit else self.payloads[table]
        with self.conn() as conn:
            conn.execute("CREATE TEMP TABLE sig (n bigint PRIMARY KEY, signature text)")
            copy_in(conn, "COPY sig (n, signature) FROM STDIN",
                    ((n, sign(payload, SECRET, t)) for n, payload in enumerate(payloads, 1)))
            conn.execute(f"UPDATE {table} d SET signature = s.signature FROM sig s WHERE d.n = s.n")
            conn.execute(f"VACUUM {table}")
        return t

    def reset_ours(self, conn: psycopg.Connection) -> None:
        """Empty every stripe_sync table (the queue and whatever object tables exist). TRUNCATE locks
        its tables in the order given, so the queue comes first, as in the worker's batches (claim,
        then the object tables): a worker still draining finishes its batch instead of deadlocking.
        The worker's other transactions lock in other orders (its handler claim reads handler_runs,
        then events), so a TRUNCATE can still meet one of them in a deadlock; when the TRUNCATE is
        the one aborted, it is tried again (`conn` is in autocommit)."""
        tables = [r[0] for r in conn.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'stripe_sync' "
            "ORDER BY tablename <> 'events', tablename")]
        for attempt in range(5):
            try:
                conn.execute("TRUNCATE " + ", ".join(tables))
                return
            except psycopg.errors.DeadlockDetected:
                if attempt == 4:
                    raise
                log("reset: the TRUNCATE met a worker transaction in a deadlock; again")
                time.sleep(0.2)

    def counts_ours(self, conn: psycopg.Connection) -> dict:
        by_status = dict(conn.execute("SELECT status, count(*) FROM stripe_sync.events GROUP BY 1").fetchall())
        tables = {}
        for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'stripe_sync' AND tablename <> 'events' ORDER BY 1"):
            n = conn.execute(f'SELECT count(*) FROM stripe_sync."{name}"').fetchone()[0]
            if n:
                tables[name] = n
        return {"events": by_status, "rows": tables}

    # -- orchestration -----------------------------------------------------------
    def wait_quiet(self) -> None:
        """Before a run: wait while other processes keep more than a quarter of a CPU busy, out of
        a budget for the whole run (--quiet-wait), so that runs avoid other people's builds."""
        if self.quiet_budget <= 0:
            return
        t0 = time.monotonic()
        while self.foreign.recent() > 0.25 and time.monotonic() - t0 < self.quiet_budget:
            time.sleep(0.5)
        waited = time.monotonic() - t0
        self.quiet_budget -= waited
        self.results["quiet_waited"] += waited

    def wanted(self, name: str) -> bool:
        return not self.args.only or name in self.args.only.split(",")

    def check_time(self, need: float, what: str) -> None:
        if self.deadline.left() < need:
            raise Skipped(f"the run's deadline (--deadline {self.args.deadline:.0f}s) left too little time for {what}")

    def phase(self, name: str, fn: Callable[[], None]) -> None:
        f0, t0, st0 = self.foreign.seconds, time.monotonic(), steal_seconds()
        try:
            fn()
        except Skipped as exc:
            log(f"{name}: not measured: {exc}")
            self.results.setdefault("skipped", {})[name] = str(exc)
        except Exception as exc:  # noqa: BLE001 - one failed measure does not lose the others
            log(f"{name}: FAILED: {type(exc).__name__}: {exc}")
            self.results.setdefault("failed", {})[name] = f"{type(exc).__name__}: {exc}"[:2000]
            if self.cluster is not None and not self._alive():
                raise RuntimeError(f"the cluster died during {name}:\n{self.cluster.log_tail()}") from exc
        finally:
            elapsed = time.monotonic() - t0
            self.results["foreign_cpu"][name] = (self.foreign.seconds - f0) / elapsed if elapsed > 1 else 0.0
            st1 = steal_seconds()
            if st0 is not None and st1 is not None and elapsed > 1:
                self.results.setdefault("steal", {})[name] = (st1 - st0) / elapsed
            self.results.setdefault("phase_seconds", {})[name] = elapsed

    def _alive(self) -> bool:
        try:
            return self.cluster.scalar("SELECT 1") == 1
        except Exception:  # noqa: BLE001
            return False
