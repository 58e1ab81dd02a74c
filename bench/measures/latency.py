"""Section 3 of BENCHMARKS.md: ingest -> applied at a steady rate, as the client LISTENing on
stripe_sync sees it."""
from __future__ import annotations

import json
import threading
import time
from typing import Optional

from stripe_sync_testkit.harness import sign

from common import SECRET, log, percentile
from stream import Stream


class LatencyMeasures:
    """Mixed into run.Bench (cluster.BenchBase gives the cluster, connections and resets)."""

    def measure_latency(self, stream: Stream) -> None:
        rate, secs = self.args.latency_rate, self.args.latency_seconds
        n = int(rate * secs)
        runs = []
        for rep in range(self.runs):
            self.check_time(secs + 30, "latency")
            r = self.latency_run(stream.distinct[:n], rate)
            runs.append(r)
            log(f"latency run {rep + 1}/{self.runs}: {r['sent']:,} events at {r['achieved_rate']:.0f}/s: "
                f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
        self.results["latency"] = {"rate": rate, "seconds": secs, "runs": runs}

    def latency_run(self, items: list[tuple[str, str]], rate: float) -> dict:
        self.wait_quiet()
        with self.conn() as conn:
            self.reset_ours(conn)
            conn.execute("CHECKPOINT")
        t = int(time.time())
        signed = [(eid, p, sign(p, SECRET, t)) for eid, p in items]
        n = len(signed)
        senders_n = 4
        sent_at: list[Optional[float]] = [None] * n
        arrivals: dict[str, float] = {}
        truncated = [0]
        errors: list[str] = []
        stop = threading.Event()
        listener = self.conn()
        listener.execute("LISTEN stripe_sync")

        def listen() -> None:
            try:
                while not stop.is_set():
                    for note in listener.notifies(timeout=0.2):
                        now = time.monotonic()
                        body = json.loads(note.payload)
                        if body.get("truncated"):
                            truncated[0] += 1
                        for e in body.get("events", []):
                            arrivals.setdefault(e["id"], now)
            except Exception as exc:  # noqa: BLE001 - reported
                errors.append(f"listener: {exc}")

        conns = [self.conn() for _ in range(senders_n)]
        start = time.monotonic() + 0.5

        def send(k: int) -> None:
            conn = conns[k]
            try:
                for i in range(k, n, senders_n):
                    due = start + i / rate
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    eid, payload, sig = signed[i]
                    sent_at[i] = time.monotonic()
                    conn.execute("SELECT stripe_sync.ingest_event(%s, %s)", (payload, sig))
            except Exception as exc:  # noqa: BLE001 - reported
                errors.append(f"sender {k}: {exc}")

        lt = threading.Thread(target=listen, daemon=True)
        lt.start()
        threads = [threading.Thread(target=send, args=(k,), daemon=True) for k in range(senders_n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(timeout=len(items) / rate + 60)
        send_end = time.monotonic()
        wait_until = send_end + 15
        while len(arrivals) < n and time.monotonic() < wait_until and not errors:
            time.sleep(0.05)
        stop.set()
        lt.join(timeout=5)
        for c in conns:
            c.close()
        listener.close()
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        lat = sorted((arrivals[eid] - sent_at[i]) * 1000 for i, (eid, _, _) in enumerate(signed)
                     if eid in arrivals and sent_at[i] is not None)
        with self.conn() as conn:
            db = conn.execute("""
                SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
                  FROM (SELECT extract(epoch FROM processed_at - received_at) * 1000 AS ms
                          FROM stripe_sync.events WHERE processed_at IS NOT NULL) s""").fetchone()
        first = min(x for x in sent_at if x is not None)
        last = max(x for x in sent_at if x is not None)
        return {
            "sent": n, "seen": len(lat), "missing": n - len(lat), "truncated_notifications": truncated[0],
            "achieved_rate": (n - 1) / (last - first) if last > first else None,
            "p50_ms": percentile(lat, 50), "p90_ms": percentile(lat, 90), "p99_ms": percentile(lat, 99),
            "max_ms": lat[-1] if lat else None,
            "db_p50_ms": float(db[0]) if db[0] is not None else None,
            "db_p99_ms": float(db[1]) if db[1] is not None else None,
        }
