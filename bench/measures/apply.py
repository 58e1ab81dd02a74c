"""Sections 2 and 4 of BENCHMARKS.md: the queue made once by ingest_event, then drained again and
again by the worker (alone, and with its apply helpers), timed, its memory sampled, against one
set-based upsert of the same events."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import psycopg
from stripe_sync_testkit.harness import sign

from common import SECRET, Skipped, log
from procstat import RssSampler, cpu_per_event_us, cpu_seconds, minor_faults
from stream import Stream


# The drain's poll: is any event still pending? Asked in the order of the partial index
# events_pending_idx, so that it reads from one end of that index. It used to be `EXISTS (... WHERE
# status = 'pending')` every 10 ms: hundreds of polls a drain at a few ms each (sometimes a parallel
# scan of the table), 1.7 to 2.5 CPU-seconds of each 6- to 10-second drain taken from the appliers'
# 2 CPUs. Then it ran after each batch's NOTIFY (and at least every 250 ms), from the start of the
# index: every entry of an event applied since the drain began is stepped over (and its heap row read)
# until no snapshot can see the old row any more, and with two appliers one of them always holds a
# snapshot, so a poll read 5,000-7,000 buffers, 9-12 ms: about 0.5 CPU-seconds of a 3-second drain
# (pg_stat_statements, 2026-11-24). Now each poll starts at the first pending event the previous
# one found (PENDING_FROM): during a drain no event becomes pending (the queue was committed
# whole before the clock started; an event that fails stays pending where it was), so the first
# pending event in this order never moves back, and nothing pending is skipped.
PENDING_LEFT = ("SELECT created, id FROM stripe_sync.events WHERE status = 'pending' "
                "ORDER BY created, id LIMIT 1")
PENDING_FROM = ("SELECT created, id FROM stripe_sync.events WHERE status = 'pending' "
                "AND (created, id) >= (%s, %s) ORDER BY created, id LIMIT 1")


class ApplyMeasures:
    """Mixed into run.Bench (cluster.BenchBase gives the cluster, connections and resets)."""

    def prepare_queues(self, stream: Stream) -> None:
        """While the worker is attached to another database: ingest the stream's deliveries with
        ingest_event (2 sessions, each event's deliveries in one session, in stream order), and
        keep the resulting queue (big, and the small prefix for the memory comparison) in
        bench.queue_big / bench.queue_small. Each drain run starts from an exact copy of it."""
        big, small = self.args.apply_events, self.args.memory_small_events
        big_n, small_n = stream.prefix_with_distinct(big), stream.prefix_with_distinct(small)
        self.resign("bench.deliveries")
        with self.conn() as conn:
            self.reset_ours(conn)
        outcomes: list[dict] = [{}, {}]
        errors: list[str] = []

        def fill(k: int) -> None:
            try:
                with self.conn() as c:
                    outcomes[k] = dict(c.execute("""
                        SELECT r, count(*) FROM (
                          SELECT stripe_sync.ingest_event(d.payload, d.signature) AS r
                            FROM bench.apply_order a JOIN bench.deliveries d USING (id)
                           WHERE a.n <= %s AND abs(hashtext(a.id)) %% 2 = %s ORDER BY a.n) s GROUP BY r""",
                        (big_n, k)).fetchall())
            except Exception as exc:  # noqa: BLE001 - reported
                errors.append(str(exc))

        started = time.monotonic()
        threads = [threading.Thread(target=fill, args=(k,)) for k in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.monotonic() - started
        if errors:
            raise RuntimeError(f"filling the queue failed: {errors[0]}")
        queued = sum(o.get("queued", 0) for o in outcomes)
        dups = sum(o.get("duplicate", 0) for o in outcomes)
        with self.conn() as conn:
            conn.execute("DROP TABLE IF EXISTS bench.queue_big, bench.queue_small")
            conn.execute("CREATE UNLOGGED TABLE bench.queue_big AS SELECT * FROM stripe_sync.events")
            conn.execute("CREATE UNLOGGED TABLE bench.queue_small AS SELECT * FROM bench.queue_big "
                         "WHERE id IN (SELECT id FROM bench.apply_order WHERE n <= %s)", (small_n,))
            self.reset_ours(conn)
        self.queues = {
            "big": {"events": queued, "duplicates": dups, "deliveries": big_n, "held": stream.distinct[big - 1]},
            "small": {"events": small, "deliveries": small_n, "held": stream.distinct[small - 1]},
        }
        self.results["queue_fill"] = {"deliveries": big_n, "queued": queued, "duplicates": dups,
                                      "seconds": elapsed, "rate": big_n / elapsed}
        log(f"queue prepared: {big_n:,} deliveries -> {queued:,} queued + {dups:,} duplicates by ingest_event "
            f"in 2 sessions, {big_n / elapsed:,.0f} deliveries/s")

    def start_drain(self, which: str) -> tuple[psycopg.Connection, int]:
        """A transaction holding the prepared queue: every event but one copied into
        stripe_sync.events, the last one ingested with ingest_event (which wakes the worker at
        COMMIT, as a real ingest does). The caller commits it."""
        q = self.queues[which]
        with self.conn() as conn:
            self.reset_ours(conn)
            conn.execute("CHECKPOINT")
        held_id, held_payload = q["held"]
        fill = self.conn()
        fill.autocommit = False
        fill.execute(f"INSERT INTO stripe_sync.events SELECT * FROM bench.queue_{which} WHERE id <> %s", (held_id,))
        r = fill.execute("SELECT stripe_sync.ingest_event(%s, %s)",
                         (held_payload, sign(held_payload, SECRET, int(time.time())))).fetchone()[0]
        if r != "queued":
            fill.close()
            raise RuntimeError(f"the held-out event was {r}, not queued")
        n = fill.execute("SELECT count(*) FROM stripe_sync.events").fetchone()[0]
        return fill, n

    def drain(self, which: str, pid: int, timeout: float,
              before_commit: Optional[Callable[[psycopg.Connection], None]] = None,
              count_helpers: bool = False) -> dict:
        """Commit a prepared queue and time the worker's drain until nothing is pending,
        sampling its memory (and, with count_helpers, how many apply helpers ran at once)."""
        self.wait_quiet()
        fill, queued = self.start_drain(which)
        sampler = RssSampler(pid)
        try:
            with self.conn() as watch, self.conn() as listen:
                # The worker NOTIFYs each batch as it commits: the poll runs after each one (and at
                # least every 250 ms), so the end, a commit too, is seen at once. Each poll starts
                # where the previous one found the first pending event (PENDING_FROM), so it only
                # steps over the entries of the events applied since then.
                listen.execute("LISTEN stripe_sync")
                sampler.start()
                if before_commit:
                    before_commit(watch)
                time.sleep(1.0)  # idle samples; the WAL writer flushes the copy meanwhile
                wal_start = watch.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                cpu_start, faults_start = cpu_seconds(pid), minor_faults(pid)
                started = time.monotonic()
                fill.commit()
                deadline = started + timeout
                next_sample = started + 0.1
                helpers_seen = 0
                waits: dict[str, int] = {}
                first = watch.execute(PENDING_LEFT).fetchone()
                while first is not None:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the queue was not drained within {timeout:.0f}s")
                    if time.monotonic() >= next_sample:
                        next_sample = time.monotonic() + 0.1
                        # What the appliers are doing: on CPU (no wait event) or waiting for what;
                        # and whether autovacuum works beside them (on which table, counted apart).
                        for btype, wait in watch.execute(
                                "SELECT backend_type, CASE WHEN backend_type = 'autovacuum worker' "
                                "THEN 'autovacuum: ' || coalesce(substring(query from '^autovacuum: (.*)$'), '?') "
                                "ELSE coalesce(wait_event_type || ':' || wait_event, 'CPU') END "
                                "FROM pg_stat_get_activity(NULL) WHERE backend_type IN "
                                "('stripe_sync worker', 'stripe_sync apply', 'autovacuum worker')").fetchall():
                            waits[wait] = waits.get(wait, 0) + 1
                        if count_helpers:
                            helpers_seen = max(helpers_seen, watch.execute(
                                "SELECT count(*) FROM pg_stat_get_activity(NULL) "
                                "WHERE backend_type = 'stripe_sync apply'").fetchone()[0])
                    for _ in listen.notifies(timeout=0.25, stop_after=1):
                        pass
                    first = watch.execute(PENDING_FROM, first).fetchone()
                elapsed = time.monotonic() - started
                cpu_end, faults_end = cpu_seconds(pid), minor_faults(pid)
                wal_end = watch.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
                wal_bytes = float(watch.execute("SELECT pg_wal_lsn_diff(%s, %s)", (wal_end, wal_start)).fetchone()[0])
                time.sleep(0.3)
                sampler.stop()
                pending = watch.execute("SELECT pending FROM stripe_sync.status").fetchone()[0]
                counts = self.counts_ours(watch)
        finally:
            sampler.stop()
            fill.close()
        return {"queued": queued, "seconds": elapsed, "rate": queued / elapsed, "status_pending": pending,
                "counts": counts, "memory": sampler.summary(), "helpers_seen": helpers_seen,
                "wal_bytes": wal_bytes, "wal_range": (str(wal_start), str(wal_end)), "waits": waits,
                # The worker's own CPU (utime + stime; not its helpers'): unlike the drain time,
                # it leaves out what other processes and CPU steal cost, so it compares builds.
                "worker_cpu_s": (cpu_end - cpu_start) if cpu_start is not None and cpu_end is not None else None,
                # Pages the worker touched for the first time: its own memory, and shared buffers
                # that no process of the cluster had used yet (each costs a page fault once).
                "worker_faults": (faults_end - faults_start) if faults_start is not None and faults_end is not None else None}

    def apply_baseline(self, distinct: int) -> dict:
        """The same events' objects (the prepared queue's, already jsonb) upserted set-based into
        one plain table: the newest event of each object wins, one statement, committed."""
        with self.conn() as conn:
            conn.execute("TRUNCATE bench.plain_objects")
            conn.execute("CHECKPOINT")
            started = time.monotonic()
            n = conn.execute("""
                INSERT INTO bench.plain_objects AS t (id, object, event_created, data)
                SELECT DISTINCT ON (oid) oid, data #>> '{data,object,object}', created, data #> '{data,object}'
                  FROM (SELECT data #>> '{data,object,id}' AS oid, (data ->> 'created')::bigint AS created, data
                          FROM bench.queue_big) s
                 ORDER BY oid, created DESC
                ON CONFLICT (id) DO UPDATE
                   SET object = excluded.object, event_created = excluded.event_created, data = excluded.data
                 WHERE t.event_created <= excluded.event_created""").rowcount
            elapsed = time.monotonic() - started
        return {"seconds": elapsed, "rate": distinct / elapsed, "objects": n}

    def measure_apply_and_memory(self, stream: Stream) -> None:
        """Per run: the worker alone (stripe_sync.apply_workers = 1: it applies every event itself,
        so its memory is measured there too), the baseline, then the worker with the extension's
        default apply_workers (or --apply-workers), helpers included. The setting is back to its
        default afterwards."""
        if not self.queues:
            raise Skipped("the queue could not be prepared (see failures)")
        pid = self.worker_pid()
        timeout = max(60.0, min(600.0, self.deadline.left() - 60))
        mem_small, runs, baseline, parallel = [], [], [], []
        appliers = self.apply_workers_setting()
        self.set_apply_workers(1)
        try:
            for rep in range(self.runs):
                self.check_time(30, "memory (small queue)")
                r = self.drain("small", pid, timeout)
                mem_small.append(r)
                log(f"memory run {rep + 1}/{self.runs}: {r['queued']:,} events drained in {r['seconds']:.1f}s, "
                    f"worker RssAnon peak {r['memory']['peak_anon_mb']:.1f} MB")
            # One drain of the big queue first, not counted. The cluster was just started: the first
            # use of each shared buffer costs a page fault (about 110,000 of them, 1.3 s of the
            # worker's CPU, where the next drain of the same queue has about 4,000), which a server
            # that has been running has long paid.
            self.check_time(60, "apply (warm-up)")
            warmup = self.drain("big", pid, timeout)
            log(f"apply warm-up: {warmup['queued']:,} events in {warmup['seconds']:.2f}s = {warmup['rate']:,.0f} events/s "
                f"(worker CPU {cpu_per_event_us(warmup)} µs/event, {warmup['worker_faults']} page faults; not counted)")
            for rep in range(self.runs):
                self.check_time(60, "apply")
                r = self.drain("big", pid, timeout)
                runs.append(r)
                log(f"apply run {rep + 1}/{self.runs}, one applier: {r['queued']:,} events in {r['seconds']:.2f}s = "
                    f"{r['rate']:,.0f} events/s (worker CPU {cpu_per_event_us(r)} µs/event, {r['worker_faults']} page faults; worker RssAnon peak {r['memory']['peak_anon_mb']:.1f} MB; "
                    f"WAL {r['wal_bytes'] / 1e6:,.0f} MB; samples {r['waits']})")
                b = self.apply_baseline(r["queued"])
                baseline.append(b)
                log(f"apply baseline run {rep + 1}/{self.runs}: {b['rate']:,.0f} events/s")
                if appliers["value"] > 1:
                    self.set_apply_workers(appliers["value"])
                    try:
                        p = self.drain("big", pid, timeout, count_helpers=True)
                    finally:
                        self.set_apply_workers(1)
                    parallel.append(p)
                    log(f"apply run {rep + 1}/{self.runs} with apply_workers = {appliers['value']}: "
                        f"{p['queued']:,} events in {p['seconds']:.2f}s = {p['rate']:,.0f} events/s "
                        f"(helpers seen at once: {p['helpers_seen']}; WAL {p['wal_bytes'] / 1e6:,.0f} MB; samples {p['waits']})")
        finally:
            self.set_apply_workers(None)
        with self.conn() as conn:
            self.reset_ours(conn)
        self.results["apply"] = {"runs": runs, "baseline": baseline, "memory_small": mem_small, "warmup": warmup,
                                 "parallel": parallel, "apply_workers": appliers["value"],
                                 "apply_workers_default": appliers["default"],
                                 "worker_pid": pid, "queue": self.queues["big"] | {"held": None}}

    def apply_workers_setting(self) -> dict:
        """The apply_workers the second measure runs with (--apply-workers, else the extension's
        default) and the extension's default."""
        with self.conn() as conn:
            default = int(conn.execute("SELECT boot_val FROM pg_settings "
                                       "WHERE name = 'stripe_sync.apply_workers'").fetchone()[0])
        return {"value": self.args.apply_workers or default, "default": default}

    def set_apply_workers(self, n: Optional[int]) -> None:
        """stripe_sync.apply_workers for the worker's next backlog (a SIGHUP setting); None: the
        extension's default."""
        with self.conn() as conn:
            if n is None:
                conn.execute("ALTER SYSTEM RESET stripe_sync.apply_workers")
            else:
                conn.execute(f"ALTER SYSTEM SET stripe_sync.apply_workers = {int(n)}")
            conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the postmaster and the worker read the file on their SIGHUP
