"""The Stripe stand-in of sections 6 to 8 (stripe_sync_testkit.standin with pages built once,
in a process of its own), the extension pointed at it, and the sequential clients that measure
the stand-in's own ceiling in the same run."""
from __future__ import annotations

import json
import select
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Optional

from common import API_KEY, DB, OUT, log


class StandInApi:
    """Mixed into run.Bench (cluster.BenchBase gives the cluster, connections and resets)."""

    def standin(self) -> dict:
        """The stand-in, started once as a child process (its own interpreter, so this script's
        threads do not slow it): its base URL, pid and what it serves."""
        if self._standin is None:
            a = self.args
            log(f"starting the stand-in (stripe_sync_testkit.standin): {a.backfill_customers:,} customers and "
                f"{a.backfill_invoices:,} invoices ({a.backfill_lines} line items each), pages built once")
            self._standin = self.spawn_standin(
                ["-m", "stripe_sync_testkit.standin", "--customers", str(a.backfill_customers),
                 "--invoices", str(a.backfill_invoices), "--lines", str(a.backfill_lines)], "standin")
            self.results["standin"] = self._standin
        return self._standin

    def spawn_standin(self, argv: list[str], name: str) -> dict:
        """Starts `python argv` (a stand-in that prints one JSON line once it listens) as a child
        process, its stderr to bench/out/<name>.log; returns that line with base and pid."""
        errlog = open(OUT / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, stderr=errlog, text=True)
        errlog.close()
        self.procs.append(proc)
        ready, _, _ = select.select([proc.stdout], [], [], 300)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("{"):
            proc.kill()
            raise RuntimeError(f"the stand-in did not start: {line!r} {(OUT / f'{name}.log').read_text()[-1500:]}")
        info = json.loads(line)
        info["base"] = f"http://127.0.0.1:{info['port']}"
        info["pid"] = proc.pid
        log(f"the stand-in listens on {info['base']} (pages built in {info['build_seconds']:.1f}s: "
            f"{info['customer_pages']} customer pages, {info['customer_bytes'] / 1e6:.0f} MB; "
            f"{info['invoice_pages']} invoice pages, {info['invoice_bytes'] / 1e6:.0f} MB)")
        return info

    def standin_call(self, path: str, method: str = "GET", base: Optional[str] = None) -> dict:
        """GET /_standin/stats or POST /_standin/reset (of the stand-in at `base`, default ours)."""
        req = urllib.request.Request((base or self.standin()["base"]) + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def configure_api(self, rate: int, base: Optional[str] = None) -> None:
        """Points the extension at the stand-in at `base`, default ours (postgresql.auto.conf,
        reloaded: job workers read the server's settings, and the request budget is a SIGHUP setting)."""
        base = base or self.standin()["base"]
        c = self.cluster
        for k, v in (("api_base", base), ("api_key", API_KEY), ("api_rate_limit", rate)):
            c.query(f"ALTER SYSTEM SET stripe_sync.{k} = '{v}'")
        c.query("SELECT pg_reload_conf()")
        time.sleep(0.5)  # the worker rereads the files when the SIGHUP wakes it
        got = c.scalar("SELECT current_setting('stripe_sync.api_rate_limit')", dbname=DB)
        if str(got) != str(rate):
            raise RuntimeError(f"stripe_sync.api_rate_limit is {got} after the reload, not {rate}")

    def unconfigure_api(self) -> None:
        c = self.cluster
        for k in ("api_base", "api_key", "api_rate_limit"):
            c.query(f"ALTER SYSTEM RESET stripe_sync.{k}")
        c.query("SELECT pg_reload_conf()")


# --------------------------------------------------------------------------
# clients: the stand-in's own ceiling, measured by plain sequential loops
# --------------------------------------------------------------------------

def crawl(base: str, path: str, key: str = API_KEY, parse: bool = True) -> dict:
    """Lists every page of `path` in order, one new connection per request (as the extension's
    client does), with urllib; with `parse`, each page is json.loads-ed to find the cursor (else
    the cursor is taken from the page's last `"id":"` with a string search). Returns objects,
    pages, seconds, bytes."""
    t0 = time.monotonic()
    after: Optional[str] = None
    objects = pages = size = 0
    while True:
        url = f"{base}{path}?limit=100" + (f"&starting_after={after}" if after else "")
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        pages += 1
        size += len(raw)
        if parse:
            page = json.loads(raw)
            data, more = page["data"], page["has_more"]
            objects += len(data)
            after = data[-1]["id"] if data else None
        else:
            more = raw.endswith(b'"has_more":true,"url":"' + path.encode() + b'"}')
            objects += raw.count(b'"object":"' + (b"customer" if "customers" in path else b"invoice") + b'"')
            after = _last_top_level_id(raw)
        if not more or after is None:
            break
    return {"objects": objects, "pages": pages, "seconds": time.monotonic() - t0, "bytes": size}


def _last_top_level_id(raw: bytes) -> Optional[str]:
    """The id of the page's last object, found without parsing: the last `"id":"cus_` or
    `"id":"in_` in the body (line items' ids are il_, their parent is under "invoice")."""
    for prefix in (b'"id":"cus_', b'"id":"in_'):
        i = raw.rfind(prefix)
        if i >= 0:
            j = raw.index(b'"', i + 6)
            return raw[i + 6:j].decode()
    return None


def provision_loop(base: str, signups: int, key: str = API_KEY) -> dict:
    """What provisioning asks per signup, in a plain sequential loop: GET /v1/customers?email=
    then POST /v1/customers with an Idempotency-Key. Returns signups, requests, seconds."""
    t0 = time.monotonic()
    auth = {"Authorization": f"Bearer {key}"}
    for i in range(signups):
        email = f"ceiling{i}@example.com"
        q = urllib.parse.urlencode({"email": email, "limit": 100})
        with urllib.request.urlopen(urllib.request.Request(f"{base}/v1/customers?{q}", headers=auth), timeout=30) as r:
            json.loads(r.read())
        form = urllib.parse.urlencode({"email": email, "name": f"Ceiling {i}", "metadata[user_id]": str(i),
                                       "metadata[users_table]": "ceiling"}).encode()
        req = urllib.request.Request(f"{base}/v1/customers", data=form, method="POST",
                                     headers={**auth, "Idempotency-Key": f"ceiling-{i}",
                                              "Content-Type": "application/x-www-form-urlencoded"})
        with urllib.request.urlopen(req, timeout=30) as r:
            json.loads(r.read())
    return {"signups": signups, "requests": 2 * signups, "seconds": time.monotonic() - t0}
