#!/usr/bin/env python3
"""The Stripe stand-in of bench/run.py (stripe_sync_testkit.standin, pages built once) answering
every API request after a delay, as Stripe does across the Internet: `--latency` ms ± `--jitter` ms
(uniform, seeded), from the request's arrival to its answer. The delay is slept in the request's
own thread (the stand-in is a ThreadingHTTPServer: one thread a connection), so delayed requests
overlap: 50 at once are all answered after about one delay, not fifty. The stand-in's own endpoints
(/_standin/stats, /_standin/reset) answer at once.

Run as a program it prints one JSON line (the stand-in's, with the delay) once it listens, then
serves until killed (bench/measures/backfill_paced.py starts it):

    python bench/latency_standin.py --customers 60000 --invoices 60000 --latency 300 --jitter 30
    python bench/latency_standin.py --check 50    # 50 concurrent requests: their wall time
"""
from __future__ import annotations

import argparse
import random
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from stripe_sync_testkit.standin import StandIn, serve_until_killed

BACKLOG = 1024  # socketserver listens with a backlog of 5: a burst of connections would wait for SYN retries


def add_latency(api: StandIn, latency_ms: float, jitter_ms: float = 0.0, seed: int = 1) -> None:
    """Makes `api` answer each API request latency_ms ± jitter_ms (uniform) after it arrived."""
    rnd, lock, serve = random.Random(seed), threading.Lock(), api.serve

    def delayed(method, path, params, headers):
        t0 = time.monotonic()
        with lock:
            delay = (latency_ms + rnd.uniform(-jitter_ms, jitter_ms)) / 1000
        answer = serve(method, path, params, headers)
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        return answer

    api.serve = delayed  # the handler calls api.serve for every request but /_standin/*
    api.server.socket.listen(BACKLOG)


def check(n: int, latency_ms: float, jitter_ms: float) -> float:
    """n concurrent requests (each its own connection) to a small delayed stand-in: their wall time."""
    with StandIn(indent=None) as api:
        api.add_pages(1_000, 0)
        add_latency(api, latency_ms, jitter_ms)

        def get(i: int) -> int:
            req = urllib.request.Request(f"{api.base}/v1/customers?limit=100",
                                         headers={"Authorization": "Bearer sk_test_check"})
            with urllib.request.urlopen(req, timeout=60) as r:
                return len(r.read())

        with ThreadPoolExecutor(n) as pool:
            t0 = time.monotonic()
            sizes = list(pool.map(get, range(n)))
            wall = time.monotonic() - t0
        assert len(sizes) == n and api.stats()["counts"] == {"GET /v1/customers (page)": n}
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=60_000)
    ap.add_argument("--invoices", type=int, default=60_000)
    ap.add_argument("--lines", type=int, default=2, help="line items embedded in each invoice")
    ap.add_argument("--latency", type=float, default=300.0, help="ms from a request's arrival to its answer")
    ap.add_argument("--jitter", type=float, default=30.0, help="± ms, uniform, around --latency")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--check", type=int, metavar="N", help="only time N concurrent requests, print it and exit")
    a = ap.parse_args()
    if a.check:
        wall = check(a.check, a.latency, a.jitter)
        print(f"{a.check} concurrent requests at {a.latency:.0f} ± {a.jitter:.0f} ms: {wall:.3f} s")
        return 0
    api = StandIn(a.port, indent=None)
    info = api.add_pages(a.customers, a.invoices, a.lines, a.seed)
    add_latency(api, a.latency, a.jitter, a.seed)
    serve_until_killed(api, {**info, "latency_ms": a.latency, "jitter_ms": a.jitter})
    return 0


if __name__ == "__main__":
    sys.exit(main())
