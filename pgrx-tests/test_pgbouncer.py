"""examples/webhook_relay.py behind PgBouncer (Debian's package) in transaction pooling mode:
every delivery from many concurrent senders is acknowledged and stored exactly once.

With psycopg's defaults (server-side prepared statements after 5 executions) the relay's calls
failed with 26000/42P05 there, 538 of 2,000 in one measurement (issue 26): a statement prepared
on one server connection is unknown on the next one PgBouncer hands out."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from stripe_sync_testkit import harness as h

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SENDERS = 32
DELIVERIES = 2000


@pytest.fixture(scope="module")
def bouncer(cluster):
    if not Path(PGBOUNCER).exists():
        pytest.fail("pgbouncer is not installed (make setup installs Debian's package)")
    port = h.free_port()
    work = Path(tempfile.mkdtemp(prefix="stripe_sync-pgbouncer-"))
    (work / "users.txt").write_text('"postgres" ""\n')
    (work / "pgbouncer.ini").write_text(f"""[databases]
postgres = host={cluster.base} port={cluster.port} dbname=postgres user=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {work / 'users.txt'}
pool_mode = transaction
default_pool_size = 6
max_client_conn = 200
logfile = {work / 'pgbouncer.log'}
pidfile = {work / 'pgbouncer.pid'}
""")
    shutil.chown(work, "postgres")
    for f in work.iterdir():
        shutil.chown(f, "postgres")
    proc = subprocess.Popen(["runuser", "-u", "postgres", "--", PGBOUNCER, str(work / "pgbouncer.ini")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        h.wait_until(lambda: h.port_open("127.0.0.1", port), timeout=20, what="pgbouncer to listen")
        yield f"host=127.0.0.1 port={port} dbname=postgres user=postgres"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


def test_the_relay_behind_pgbouncer_stores_every_delivery_once(cluster, bouncer):
    with h.Relay(bouncer) as relay:
        payloads = [h.customer_event(email=f"bounced{i}@example.com") for i in range(DELIVERIES // 2)]
        deliveries = payloads + payloads  # every event twice: the second is a duplicate
        statuses: list[tuple[int, str]] = []
        lock = threading.Lock()

        def send(part: list[str]) -> None:
            for p in part:
                status, text = relay.post(p, h.sign(p, cluster.webhook_secret, int(time.time())))
                with lock:
                    statuses.append((status, text.strip()))

        threads = [threading.Thread(target=send, args=(deliveries[i::SENDERS],)) for i in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
    bad = [s for s in statuses if s[0] != 200]
    assert len(statuses) == DELIVERIES and not bad, f"{len(bad)} failed, e.g. {bad[:3]}"
    assert sorted({text for _, text in statuses}) == ["duplicate", "queued"]
    assert sum(1 for _, text in statuses if text == "queued") == DELIVERIES // 2
    ids = [json.loads(p)["id"] for p in payloads]
    assert cluster.scalar("SELECT count(*) FROM stripe_sync.events WHERE id = ANY(%s)", (ids,)) == DELIVERIES // 2
