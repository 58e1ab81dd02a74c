"""Section 1 of BENCHMARKS.md: ingest_event under pgbench at 1, 4 and 8 clients against a plain INSERT
of the same payloads, with the worker elsewhere and then draining the same database."""
from __future__ import annotations

import re
import subprocess

from common import CLIENTS, DB, PGBENCH, log


class IngestMeasures:
    """Mixed into run.Bench (cluster.BenchBase gives the cluster, connections and resets)."""

    def pgbench(self, script: str, clients: int, seconds: int) -> dict:
        path = self.tmp / f"pgbench-{abs(hash(script))}.sql"
        path.write_text(script + "\n")
        c = self.cluster
        argv = [str(PGBENCH), "-n", "-M", "prepared", "-h", str(c.base), "-p", str(c.port), "-U", "postgres",
                "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-f", str(path), DB]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0 or "aborted" in out:
            raise RuntimeError(f"pgbench failed (exit {proc.returncode}):\n{out[-2000:]}")
        tps = float(re.search(r"tps = ([\d.]+) \(without initial connection time\)", out).group(1))
        done = int(re.search(r"number of transactions actually processed: (\d+)", out).group(1))
        failed = re.search(r"number of failed transactions: (\d+)", out)
        return {"tps": tps, "transactions": done, "failed": int(failed.group(1)) if failed else 0}

    def ingest_run(self, variant: str, clients: int, seconds: int, rows: int) -> dict:
        self.wait_quiet()
        with self.conn() as conn:
            if variant == "plain":
                conn.execute("TRUNCATE bench.plain_events")
            else:
                self.reset_ours(conn)
            conn.execute("SELECT setval('bench.ingest_seq', 1, false)")
            conn.execute("CHECKPOINT")
        pick = "FROM bench.deliveries WHERE n = (SELECT nextval('bench.ingest_seq'))"
        if variant == "plain":
            script = (f"INSERT INTO bench.plain_events (id, data) SELECT id, payload::jsonb {pick} "
                      f"ON CONFLICT (id) DO NOTHING;")
        else:
            script = f"SELECT stripe_sync.ingest_event(payload, signature) {pick};"
        r = self.pgbench(script, clients, seconds)
        with self.conn() as conn:
            used = conn.execute("SELECT last_value FROM bench.ingest_seq").fetchone()[0]
            if used > rows:
                raise RuntimeError(f"the pool of {rows:,} distinct events ran out ({used:,} drawn): "
                                   f"shorten the ingest duration")
            if variant == "plain":
                stored = conn.execute("SELECT count(*) FROM bench.plain_events").fetchone()[0]
                r["stored"] = stored
            else:
                counts = self.counts_ours(conn)["events"]
                r["stored"] = sum(counts.values())
                r["applied_meanwhile"] = sum(v for k, v in counts.items() if k != "pending")
        if r["stored"] != r["transactions"] or r["failed"]:
            raise RuntimeError(f"{variant} at {clients} clients: {r['transactions']} transactions but "
                               f"{r['stored']} rows stored, {r['failed']} failed (duplicates or errors?)")
        return r

    def measure_ingest(self, rows: int) -> None:
        secs = self.args.ingest_seconds
        res = {c: {"ours": [], "plain": []} for c in CLIENTS}
        for rep in range(self.runs):
            self.check_time(60, "ingest")
            self.resign("bench.deliveries")
            for c in CLIENTS:
                order = ("plain", "ours") if rep % 2 == 0 else ("ours", "plain")
                for variant in order:
                    r = self.ingest_run(variant, c, secs, rows)
                    res[c][variant].append(r["tps"])
                    log(f"ingest run {rep + 1}/{self.runs}: {variant:5} {c} clients: {r['tps']:,.0f} events/s")
        self.results["ingest"] = {"seconds": secs, "runs": res}

    def measure_ingest_with_worker(self, rows: int) -> None:
        secs = self.args.worker_ingest_seconds
        res = {c: [] for c in CLIENTS}
        applied = {c: [] for c in CLIENTS}
        for rep in range(self.runs):
            self.check_time(45, "ingest with the worker draining")
            self.resign("bench.deliveries")
            for c in CLIENTS:
                r = self.ingest_run("ours", c, secs, rows)
                res[c].append(r["tps"])
                applied[c].append(r["applied_meanwhile"] / max(1, r["stored"]))
                log(f"ingest+worker run {rep + 1}/{self.runs}: {c} clients: {r['tps']:,.0f} events/s "
                    f"({100 * applied[c][-1]:.0f}% applied by the end)")
        with self.conn() as conn:
            self.reset_ours(conn)
        self.results["ingest_worker"] = {"seconds": secs, "runs": res, "applied_fraction": applied}
