"""Section 5 of BENCHMARKS.md: the npm package stripe-experiment-sync (bench/peer/drive.mjs) on the
same deliveries as ours and as a bare durable INSERT, from the same Node process and driver."""
from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from typing import Any

from common import DB, OUT, PEER_DB, PEER_DIR, RESOURCES_JSON, SECRET, Skipped, log
from stream import Stream


# The object types the peer's webhook handler routes (its resource registry), and its aliases
# for object names that differ from registry keys (read from its dist/index.js).
PEER_OBJECTS = {"product", "coupon", "price", "plan", "customer", "subscription", "subscription_schedules",
                "invoice", "charge", "setup_intent", "payment_method", "payment_intent", "tax_id",
                "credit_note", "dispute", "early_fraud_warning", "refund", "checkout_sessions",
                "active_entitlements", "review"}
PEER_OBJECT_ALIASES = {"checkout.session": "checkout_sessions", "radar.early_fraud_warning": "early_fraud_warning",
                       "entitlements.active_entitlement": "active_entitlements",
                       "entitlements.feature": "active_entitlements",
                       "subscription_schedule": "subscription_schedules"}


def build_peer_spec() -> dict:
    """A minimal OpenAPI document for the peer's migrations, which otherwise download Stripe's
    spec3.json from GitHub. Built from shared/stripe/openapi/resources.json (the top-level
    properties of 23 resources of the current API version), so the peer gets one generated
    column per top-level property, as it would from the real spec."""
    resources = json.loads(RESOURCES_JSON.read_text())["resources"]
    schemas = {}
    kinds = {"string": {"type": "string"}, "decimal_string": {"type": "string", "format": "decimal"},
             "integer": {"type": "integer"}, "unix_time": {"type": "integer", "format": "unix-time"},
             "number": {"type": "number"}, "boolean": {"type": "boolean"},
             "object": {"type": "object"}, "map": {"type": "object"}, "list": {"type": "object"},
             "array": {"type": "array", "items": {}}}
    for name, res in resources.items():
        props = {}
        for prop, meta in res["properties"].items():
            if meta["type"] == "expandable":
                schema = {"anyOf": [{"type": "string"}, {"type": "object"}],
                          "x-expansionResources": {"oneOf": []}}
            else:
                schema = dict(kinds.get(meta["type"], {"type": "string"}))
            if meta.get("nullable"):
                schema["nullable"] = True
            props[prop] = schema
        schemas[name] = {"type": "object", "x-resourceId": res["object"], "properties": props}
    return {"openapi": "3.0.0", "info": {"title": "stripe_sync bench: subset of Stripe's API", "version": "2026-07-29"},
            "paths": {}, "components": {"schemas": schemas}}


class CountingStripeStub:
    """An HTTP server on 127.0.0.1 standing in for api.stripe.com: counts requests, answers 404."""

    def __init__(self):
        stub = self
        self.count = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                stub.count += 1
                body = b'{"error": {"type": "invalid_request_error", "message": "stripe_sync bench stub"}}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _any

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PeerMeasures:
    """Mixed into run.Bench (cluster.BenchBase gives the cluster, connections and resets)."""

    def node_dsn(self, dbname: str) -> str:
        c = self.cluster
        return f"postgresql://postgres@localhost:{c.port}/{dbname}?host={c.base}"

    def drive(self, *args: str, timeout: float) -> dict:
        proc = subprocess.Popen(["node", str(PEER_DIR / "drive.mjs"), *args], cwd=PEER_DIR,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"drive.mjs {args[0]} did not finish within {timeout:.0f}s")
        finally:
            self.procs.remove(proc)
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise RuntimeError(f"drive.mjs {args[0]} printed no result (exit {proc.returncode}): {err[-1500:]}")
        result = json.loads(lines[-1])
        if result.get("ok") is False:
            raise RuntimeError(f"drive.mjs {args[0]}: {result.get('error', '')[:1500]}")
        return result

    def ensure_peer_installed(self) -> str:
        if shutil.which("node") is None:
            raise Skipped("node is not installed (apt-get install nodejs npm)")
        pkg = PEER_DIR / "node_modules" / "stripe-experiment-sync" / "package.json"
        if not pkg.exists():
            log("installing the peer (npm ci in bench/peer)")
            proc = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER_DIR,
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0 or not pkg.exists():
                raise Skipped(f"`npm ci` in bench/peer failed: {(proc.stdout + proc.stderr)[-500:]}")
        return json.loads(pkg.read_text())["version"]

    def measure_peer(self, stream: Stream) -> None:
        version = self.ensure_peer_installed()
        spec = OUT / "peer-openapi.json"
        spec.write_text(json.dumps(build_peer_spec()))
        self.cluster.query(f"CREATE DATABASE {PEER_DB}")
        mig = self.drive("migrate", "--dsn", self.node_dsn(PEER_DB), "--spec", str(spec), timeout=300)
        log(f"peer stripe-experiment-sync {version}: migrations applied in {mig['seconds']:.1f}s")
        n = stream.prefix_with_distinct(self.args.peer_events)
        kept, dropped = [], {}
        for eid, payload in stream.deliveries[:n]:
            obj = json.loads(payload)["data"]["object"].get("object")
            if PEER_OBJECT_ALIASES.get(obj, obj) in PEER_OBJECTS:
                kept.append(payload)
            else:
                dropped[obj] = dropped.get(obj, 0) + 1
        path = OUT / "peer-deliveries.jsonl"
        with open(path, "w", encoding="utf-8") as f:
            for p in kept:
                f.write(json.dumps({"payload": p}) + "\n")
        api = CountingStripeStub()
        try:
            targets = ("peer", "ours", "floor")
            res: dict[str, dict[str, list]] = {str(c): {t: [] for t in targets} for c in (1, 8)}
            extra: dict[str, Any] = {}
            for rep in range(self.runs):
                for conc in (1, 8):
                    self.check_time(30, "peer comparison")
                    order = targets if rep % 2 == 0 else targets[::-1]
                    for target in order:
                        if target == "peer":
                            self.reset_peer()
                        elif target == "ours":
                            self.reset_ours_db()
                        else:
                            self.reset_floor()
                        self.wait_quiet()
                        dsn = self.node_dsn(PEER_DB if target == "peer" else DB)
                        r = self.drive("run", "--target", target, "--dsn", dsn, "--deliveries", str(path),
                                       "--secret", SECRET, "--concurrency", str(conc),
                                       "--api-port", str(api.port), "--timeout", "300", timeout=900)
                        if r.get("errors"):
                            raise RuntimeError(f"{target}: {r['errors']} deliveries failed: {r.get('first_errors')}")
                        if target == "ours" and r.get("pending_left"):
                            raise RuntimeError(f"ours: {r['pending_left']} events still pending at the deadline")
                        r["rate"] = r["deliveries"] / r["seconds"]
                        if target == "peer":
                            r["rows"] = self.peer_rows()
                        elif target == "ours":
                            with self.conn() as conn:
                                r["counts"] = self.counts_ours(conn)
                        else:
                            with self.conn() as conn:
                                r["stored"] = conn.execute("SELECT count(*) FROM bench.node_floor").fetchone()[0]
                            if r["stored"] != r["outcomes"].get("inserted"):
                                raise RuntimeError(f"floor: {r['stored']} rows stored, {r['outcomes']} reported")
                        res[str(conc)][target].append(r)
                        log(f"peer run {rep + 1}/{self.runs}: {target:5} x{conc}: {r['deliveries']:,} deliveries "
                            f"in {r['seconds']:.2f}s = {r['rate']:,.0f}/s")
            extra["api_requests"] = api.count
        finally:
            api.close()
        with self.conn() as conn:
            self.reset_ours(conn)
        self.results["peer"] = {"version": version, "deliveries": len(kept), "dropped": dropped,
                                "types": sorted({json.loads(p)["type"] for p in kept}),
                                "runs": res, **extra}

    def reset_ours_db(self) -> None:
        with self.conn() as conn:
            self.reset_ours(conn)
            conn.execute("CHECKPOINT")

    def reset_floor(self) -> None:
        with self.conn() as conn:
            conn.execute("TRUNCATE bench.node_floor")
            conn.execute("CHECKPOINT")

    def reset_peer(self) -> None:
        with self.conn(PEER_DB) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                "WHERE schemaname = 'stripe' AND tablename <> 'accounts' AND tablename NOT LIKE '\\_%'")]
            if tables:
                conn.execute("TRUNCATE " + ", ".join(tables))
            conn.execute("CHECKPOINT")

    def peer_rows(self) -> dict:
        out = {}
        with self.conn(PEER_DB) as conn:
            for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'stripe' "
                                     "AND tablename <> 'accounts' AND tablename NOT LIKE '\\_%' ORDER BY 1"):
                k = conn.execute(f'SELECT count(*) FROM stripe."{t}"').fetchone()[0]
                if k:
                    out[t] = k
        return out
