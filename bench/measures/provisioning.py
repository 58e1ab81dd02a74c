"""Sections 7 and 8 of BENCHMARKS.md: signups provisioned by the worker, and same-second ties re-read
by its re-read job, both through the request budget, against the stand-in."""
from __future__ import annotations

import json
import time
import urllib.request

from stripe_sync_testkit.harness import sign

from common import (API_KEY, PROVISION_FREE_RATE, PROVISION_RATES, REQUEST_BURST, SECRET, TIE_RATES, Deadline, fmt,
                    log)
from measures.api import provision_loop
from procstat import cpu_seconds


class ProvisioningMeasures:
    """Mixed into run.Bench (cluster.BenchBase and measures.api.StandInApi give the rest)."""

    def measure_provisioning(self) -> None:
        fs = self.standin()
        n = self.args.provision_signups
        with self.conn() as conn:
            conn.execute("DROP TABLE IF EXISTS public.users")
            conn.execute("CREATE TABLE public.users (id bigint PRIMARY KEY, email text NOT NULL, name text, "
                         "stripe_customer_id text)")
        res: dict[str, list] = {str(rate): [] for rate in (*PROVISION_RATES, PROVISION_FREE_RATE)}
        ceilings = []
        try:
            for rep in range(self.runs):
                self.check_time(10, "provisioning (the stand-in's ceiling)")
                self.standin_call("/_standin/reset", "POST")
                c_ = provision_loop(fs["base"], self.args.provision_ceiling_signups, API_KEY)
                c_["rate"] = c_["signups"] / c_["seconds"]
                ceilings.append(c_)
                log(f"provisioning run {rep + 1}/{self.runs}: stand-in alone (sequential GET ?email= + POST): "
                    f"{c_['rate']:,.0f} signups/s")
                for rate in (*PROVISION_RATES, PROVISION_FREE_RATE):
                    self.check_time(2 * n / rate * 1.3 + 20, f"provisioning at {rate} requests/s")
                    r = self.provisioning_run(rate, n)
                    res[str(rate)].append(r)
                    bound = ("the budget is not the bound: our code's own pace" if rate == PROVISION_FREE_RATE else
                             f"budget bound {r['bound_seconds']:.1f}s = {r['bound_rate']:.1f}/s: {100 * r['ratio']:.1f} %")
                    log(f"provisioning run {rep + 1}/{self.runs}: {rate} requests/s: {n:,} signups, last id after "
                        f"{r['seconds']:.1f}s = {r['rate']:.1f} customers/s ({bound}); {r['per_signup']:.2f} requests "
                        f"per signup, first id after {fmt(r['first_id_seconds'], 2)}s, worker CPU {fmt(r['worker_cpu'], 1)}s")
        finally:
            self.unconfigure_api()
            with self.conn() as conn:
                conn.execute("SELECT stripe_sync.disable_provisioning(users) FROM stripe_sync.provisioning_targets "
                             "WHERE users = 'public.users'::regclass")
                conn.execute("DROP TABLE public.users")
                conn.execute("TRUNCATE stripe_sync.provisioning_jobs, stripe_sync.customers")
        self.results["provisioning"] = {"signups": n, "runs": res, "ceiling": ceilings, "burst": REQUEST_BURST,
                                        "free_rate": PROVISION_FREE_RATE}

    def measure_ties(self) -> None:
        """N customers each get two customer.updated events of one second: the apply asks for a re-read
        of each (refresh_requests), which the worker's re-read job makes through the shared budget."""
        fs = self.standin()
        n = self.args.tie_customers
        objs: list[dict] = []
        after = None
        while len(objs) < n:
            url = fs["base"] + "/v1/customers?limit=100" + (f"&starting_after={after}" if after else "")
            req = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
            with urllib.request.urlopen(req, timeout=30) as r:
                page = json.loads(r.read())
            objs.extend(page["data"])
            after = page["data"][-1]["id"]
        objs = objs[:n]
        res: dict[str, list] = {str(rate): [] for rate in TIE_RATES}
        try:
            for rep in range(self.runs):
                for rate in TIE_RATES:
                    self.check_time(3 * n / rate + 60, f"ties at {rate} requests/s")
                    self.configure_api(rate)
                    r = self.ties_run(objs, rate, f"{rep}_{rate}")
                    res[str(rate)].append(r)
                    log(f"ties run {rep + 1}/{self.runs}: {rate} requests/s: {n:,} ties ({r['asked']:,} re-reads "
                        f"asked when the apply ended) settled in {r['seconds']:.1f}s; bound {r['bound']:.1f}s; "
                        f"{r['ratio']:.2f}x")
        finally:
            self.unconfigure_api()
            with self.conn() as conn:
                conn.execute("TRUNCATE stripe_sync.customers, stripe_sync.refresh_requests")
        self.results["ties"] = {"ties": n, "runs": res}

    def ties_run(self, objs: list[dict], rate: int, tag: str) -> dict:
        n = len(objs)
        with self.conn() as conn:
            conn.execute("TRUNCATE stripe_sync.customers, stripe_sync.refresh_requests")
            now = int(time.time())
            events = [json.dumps({
                "id": f"evt_tie{tag}_{i}_{half}", "object": "event", "type": "customer.updated",
                "created": now - 30, "api_version": "2026-07-29.dahlia", "livemode": False, "pending_webhooks": 1,
                "data": {"object": dict(o, name=f"tie {half}")}}) for i, o in enumerate(objs) for half in "ab"]
            for p in events:
                conn.execute("SELECT stripe_sync.ingest_event(%s, %s)", (p, sign(p, SECRET, now)))
            ids = [json.loads(p)["id"] for p in events]
            wait = Deadline(120)
            while conn.execute("SELECT count(*) FROM stripe_sync.events WHERE id = ANY(%s) AND status = 'processed'",
                               (ids,)).fetchone()[0] < len(ids):
                if wait.left() <= 0:
                    raise RuntimeError("the worker did not apply the tie events within 120 s")
                time.sleep(0.02)
            t0 = time.monotonic()
            asked = conn.execute("SELECT count(*) FROM stripe_sync.refresh_requests").fetchone()[0]
            limit = Deadline(max(60.0, 5 * n / rate))
            while True:
                left, settled = conn.execute(
                    "SELECT (SELECT count(*) FROM stripe_sync.refresh_requests),"
                    "       (SELECT count(*) FROM stripe_sync.customers WHERE _last_event_type = 'stripe_sync.fetched')"
                ).fetchone()
                if left == 0 and settled == n:
                    break
                if limit.left() <= 0:
                    raise RuntimeError(f"{left} re-reads left after {5 * n / rate:.0f} s")
                time.sleep(0.02)
            seconds = time.monotonic() - t0
        return {"ties": n, "asked": asked, "seconds": seconds, "bound": n / rate, "ratio": seconds / (n / rate)}

    def provisioning_run(self, rate: int, n: int) -> dict:
        fs = self.standin()
        self.configure_api(rate)
        with self.conn() as conn:
            conn.execute("TRUNCATE public.users, stripe_sync.provisioning_jobs, stripe_sync.customers")
            conn.execute("SELECT stripe_sync.enable_provisioning('public.users', 'id', 'email', 'name')")
            conn.execute("CHECKPOINT")
        self.standin_call("/_standin/reset", "POST")
        self.wait_quiet()
        time.sleep(max(0.5, 2 * REQUEST_BURST / rate))  # the budget's bucket is full again
        wpid = self.worker_pid()
        w0, s0 = cpu_seconds(wpid), cpu_seconds(fs["pid"])
        timeout = max(60.0, 3 * 2 * n / rate + 30)
        ins = self.conn()
        ins.autocommit = False
        ins.execute("INSERT INTO public.users (id, email, name) "
                    "SELECT i, 'user' || i || '@example.com', 'User ' || i FROM generate_series(1, %s) i", (n,))
        first_id = None
        try:
            with self.conn() as watch:
                started = time.monotonic()
                ins.commit()
                committed = time.monotonic()
                while True:
                    done = watch.execute("SELECT count(stripe_customer_id) FROM public.users").fetchone()[0]
                    now = time.monotonic()
                    if done and first_id is None:
                        first_id = now - started
                    if done >= n:
                        break
                    if now - started > timeout:
                        raise RuntimeError(f"only {done:,} of {n:,} users hold a customer id after {timeout:.0f}s")
                    time.sleep(0.02)
                elapsed = now - started
                w1, s1 = cpu_seconds(wpid), cpu_seconds(fs["pid"])
                jobs = dict(watch.execute("SELECT status, count(*) FROM stripe_sync.provisioning_jobs GROUP BY 1").fetchall())
                attempts = watch.execute("SELECT sum(attempts) FROM stripe_sync.provisioning_jobs").fetchone()[0]
                distinct = watch.execute("SELECT count(DISTINCT stripe_customer_id) FROM public.users").fetchone()[0]
                mirrored = watch.execute("SELECT count(*) FROM stripe_sync.customers").fetchone()[0]
        finally:
            ins.close()
        stats = self.standin_call("/_standin/stats")
        created = [t for t, _ in stats["created"]]
        requests = sum(stats["counts"].values())
        if distinct != n or len(created) != n or jobs.get("done") != n:
            raise RuntimeError(f"{n:,} signups: {distinct:,} distinct customer ids in users, {len(created):,} customers "
                               f"created in the stand-in, jobs {jobs}")
        bound = max(0, requests - REQUEST_BURST) / rate
        return {"signups": n, "rate_limit": rate, "seconds": elapsed, "rate": n / elapsed,
                "commit_seconds": committed - started, "first_id_seconds": first_id,
                "requests": requests, "counts": stats["counts"], "per_signup": requests / n,
                "bound_seconds": bound, "bound_rate": n / bound if bound else None,
                "ratio": bound / elapsed if bound else None,
                "create_span_seconds": created[-1] - created[0] if len(created) > 1 else None,
                "create_rate": (len(created) - 1) / (created[-1] - created[0]) if len(created) > 1 else None,
                "first_create_seconds": created[0] - started if created else None,
                "jobs": jobs, "attempts": attempts, "mirrored": mirrored,
                "worker_cpu": (w1 - w0) if w0 is not None and w1 is not None else None,
                "stand_in_cpu": (s1 - s0) if s0 is not None and s1 is not None else None}
