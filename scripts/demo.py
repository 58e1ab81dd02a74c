#!/usr/bin/env python3
"""stripe_sync demo: Stripe customers flow into PostgreSQL through webhooks.

Run by `make demo` once the extension is installed, with the project's
virtualenv (scripts/setup.sh installs stripe_sync_testkit, pgrx-tests/, into
it). It starts everything it needs on this machine and removes it afterwards:

  * a private PostgreSQL 15 cluster that preloads stripe_sync,
  * localstripe, a local stand-in for the Stripe API,
  * examples/webhook_relay.py, the webhook endpoint Stripe posts to,

then creates, updates and deletes customers with the official `stripe`
Python client and shows what arrived in stripe_sync.customers.

With STRIPE_API_KEY=sk_test_... it uses your Stripe test account instead of
localstripe: events are pulled with stripe_sync.catch_up(), or delivered as
webhooks when STRIPE_WEBHOOK_SECRET is the secret of a running
`stripe listen --forward-to <relay url>`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys

from stripe_sync_testkit import harness as h

N_CUSTOMERS = 5
TIMEOUT = 30.0
REAL_STRIPE_TIMEOUT = 120.0


def step(text: str) -> None:
    print(f"==> {text}", flush=True)


def print_table(title: str, headers: list[str], rows: list[tuple]) -> None:
    def show(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else str(v)

    cells = [[show(v) for v in row] for row in rows]
    widths = [max([len(hd)] + [len(r[i]) for r in cells]) for i, hd in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title} ({len(rows)} rows)")
    print("  ".join(hd.ljust(w) for hd, w in zip(headers, widths)))
    print(line)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def wait_for_customers(cluster, want: dict, timeout: float, pull: bool = False) -> None:
    """Wait until stripe_sync.customers holds want = {id: (email, name, deleted)}.
    With pull, events are fetched from the API (catch_up) instead of awaited as webhooks."""
    def synced():
        if pull:
            cluster.query("SELECT stripe_sync.catch_up()")
        rows = cluster.query(
            "SELECT id, email, name, _deleted FROM stripe_sync.customers WHERE id = ANY(%s)",
            (list(want),),
        )
        return {r[0]: r[1:] for r in rows} == want

    h.wait_until(synced, timeout=timeout, interval=0.2,
                 what=f"{len(want)} customers to show up in stripe_sync.customers")


def run(cluster, stripe, timeout: float, pull: bool = False) -> None:
    """Create, update and delete customers through the Stripe API; wait for the sync."""
    tag = secrets.token_hex(3)
    people = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov"]
    step(f"Creating {N_CUSTOMERS} customers through the Stripe API")
    want = {}
    made = []
    for name in people[:N_CUSTOMERS]:
        email = f"{name.split()[0].lower()}.{tag}@example.com"
        c = stripe.v1.customers.create(params={"email": email, "name": name})
        made.append(c)
        want[c.id] = (email, name, False)
        print(f"    {c.id}  {email}")
    step("Fetching their events with stripe_sync.catch_up()" if pull else "Waiting for the webhooks to be applied")
    wait_for_customers(cluster, want, timeout, pull)

    changed, gone = made[0], made[1]
    new_email = f"ada.countess.{tag}@example.com"
    step(f"Changing the email of {changed.id} and deleting {gone.id}")
    stripe.v1.customers.update(changed.id, params={"email": new_email})
    stripe.v1.customers.delete(gone.id)
    want[changed.id] = (new_email, changed.name, False)
    want[gone.id] = want[gone.id][:2] + (True,)
    step("Fetching those events too" if pull else "Waiting for those webhooks too")
    wait_for_customers(cluster, want, timeout, pull)

    ids = list(want)
    print_table(
        "stripe_sync.customers", ["id", "email", "name", "_deleted"],
        cluster.query(
            "SELECT id, email, name, _deleted FROM stripe_sync.customers"
            " WHERE id = ANY(%s) ORDER BY array_position(%s, id)", (ids, ids)),
    )
    print_table(
        "stripe_sync.events", ["id", "type", "status"],
        cluster.query(
            "SELECT id, type, status FROM stripe_sync.events"
            f" WHERE {h.EVENT_OBJECT_ID} = ANY(%s) ORDER BY created, received_at", (ids,)),
    )


def main() -> int:
    api_key = os.environ.get("STRIPE_API_KEY")
    real = bool(api_key)
    if real and not api_key.startswith(("sk_test_", "rk_test_")):
        print("demo: STRIPE_API_KEY must be a test-mode key (sk_test_...); refusing to touch live data",
              file=sys.stderr)
        return 2
    if not h.extension_installed():
        print("demo: the stripe_sync extension is not installed: run `make install` first",
              file=sys.stderr)
        return 1

    # With a real key and no `stripe listen` secret, events are pulled with catch_up().
    pull = real and not os.environ.get("STRIPE_WEBHOOK_SECRET")
    secret = os.environ.get("STRIPE_WEBHOOK_SECRET") or h.new_webhook_secret()
    relay_port = int(os.environ.get("STRIPE_SYNC_RELAY_PORT", "8787")) if real else None
    cluster = relay = None
    with contextlib.ExitStack() as cleanup:
        try:
            step("Starting a private PostgreSQL 15 cluster with stripe_sync preloaded")
            api_base = os.environ.get("STRIPE_API_BASE", "https://api.stripe.com")
            gucs = {"api_key": api_key, "api_base": api_base} if real else {}
            cluster = cleanup.enter_context(h.stripe_sync_cluster(secret, **gucs))
            print(f"    socket dir {cluster.base}, port {cluster.port}; CREATE EXTENSION stripe_sync done")
            pid = h.wait_until(cluster.worker_pid, timeout=TIMEOUT,
                               what="the stripe_sync worker to start")
            print(f"    background worker running (pid {pid})")

            step("Starting the webhook relay (examples/webhook_relay.py)")
            relay = cleanup.enter_context(h.Relay(cluster.dsn(), port=relay_port))
            print(f"    listening on {relay.url}")

            if real:
                import stripe as stripe_mod
                if pull:
                    print("\nNOTE: using your real Stripe test account. Stripe cannot reach this machine, so")
                    print("its events are pulled from /v1/events with stripe_sync.catch_up() (set")
                    print("STRIPE_WEBHOOK_SECRET from `stripe listen --forward-to <relay url>` to use webhooks).\n")
                client = stripe_mod.StripeClient(api_key, base_addresses={"api": api_base})
                run(cluster, client, REAL_STRIPE_TIMEOUT, pull)
            else:
                step("Starting localstripe (a local stand-in for the Stripe API)")
                localstripe = cleanup.enter_context(h.LocalStripe())
                print(f"    API at {localstripe.base}")
                step("Registering the relay as localstripe's webhook endpoint")
                localstripe.register_webhook("stripe_sync_demo", relay.url, secret)
                run(cluster, h.stripe_client(localstripe.base), TIMEOUT)

            print("\nDemo finished: every change made through the Stripe API is in stripe_sync.customers.")
            return 0
        except Exception as exc:  # noqa: BLE001 - turned into a readable failure
            print(f"\ndemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            if cluster is not None:
                print("--- last lines of the PostgreSQL log ---", file=sys.stderr)
                print(cluster.log_tail(20), file=sys.stderr)
            if relay is not None and relay.output():
                print("--- relay output ---", file=sys.stderr)
                print("\n".join(relay.output().splitlines()[-10:]), file=sys.stderr)
            return 1
        finally:
            step("Cleaning up")  # the ExitStack then stops everything it started


if __name__ == "__main__":
    sys.exit(main())
