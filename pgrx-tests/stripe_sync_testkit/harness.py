"""Shared helpers for the stripe_sync end-to-end tests, the benchmarks and scripts/demo.py.

Everything here drives real processes: a private PostgreSQL 15 cluster (run as
the ``postgres`` user when we are root), and, through the names it takes from
``services``, the localstripe Stripe stand-in and examples/webhook_relay.py.
The stripe_sync extension must already be installed into the system
PostgreSQL 15 (``make install``); nothing here installs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional

import psycopg

from . import REPO_ROOT, SHARED  # noqa: F401 - REPO_ROOT: the tests find docs/ and examples/ by it
from .services import (  # noqa: F401 - the tests reach these through harness
    TEST_API_KEY, VENV, LocalStripe, Relay, configure_stripe_module, free_port, http_request, port_open,
    stripe_client,
)

PG_BIN = Path(os.environ.get("STRIPE_SYNC_PG_BIN", "/usr/lib/postgresql/15/bin"))
WORKER_TYPE = "stripe_sync worker"
POLL_MS = 200  # stripe_sync.poll_interval used by the tests and the demo
EXTENSION = "stripe_sync"
# SQL for the id of the object an event row is about. events.data holds the
# whole envelope ({"data": {"object": ...}}); the fallback also reads a bare
# {"object": ...} should data ever hold only the envelope's data member.
EVENT_OBJECT_ID = "coalesce(data #>> '{data,object,id}', data #>> '{object,id}')"


# --------------------------------------------------------------------------
# small utilities
# --------------------------------------------------------------------------

def wait_until(
    fn: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: Optional[str] = None,
) -> Any:
    """Call ``fn`` until it returns something truthy; return that value.

    Exceptions raised by ``fn`` count as "not yet" (a server may be
    restarting). On timeout raise TimeoutError naming ``what`` and the last
    value or exception seen.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    last_exc: Optional[BaseException] = None
    while True:
        try:
            last = fn()
            last_exc = None
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            label = what or getattr(fn, "__name__", "condition")
            detail = (
                f"last error: {type(last_exc).__name__}: {last_exc}"
                if last_exc is not None
                else f"last value: {last!r}"
            )
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {label} ({detail})")
        time.sleep(interval)


def holds_for(
    fn: Callable[[], Any],
    duration: float,
    interval: float = 0.1,
    what: Optional[str] = None,
) -> None:
    """Check that ``fn`` stays truthy for ``duration`` seconds; fail at once if not."""
    deadline = time.monotonic() + duration
    while True:
        value = fn()
        if not value:
            raise AssertionError(f"{what or 'condition'} stopped holding (value: {value!r})")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def new_id(prefix: str, n: int = 14) -> str:
    """A Stripe-looking id such as ``cus_3kT9...``."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


def extension_installed() -> bool:
    share = subprocess.run(
        [str(PG_BIN / "pg_config"), "--sharedir"], capture_output=True, text=True
    )
    sharedir = share.stdout.strip() or "/usr/share/postgresql/15"
    return (Path(sharedir) / "extension" / f"{EXTENSION}.control").is_file()


def require_extension_installed() -> None:
    if not extension_installed():
        raise RuntimeError(
            f"the {EXTENSION} extension is not installed into PostgreSQL 15 "
            f"({EXTENSION}.control is missing): run `make install` first"
        )


# --------------------------------------------------------------------------
# webhook payloads
# --------------------------------------------------------------------------

def sign(payload: str, secret: str, t: int) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload``."""
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


def customer_object(
    customer_id: Optional[str] = None,
    email: Optional[str] = None,
    name: Optional[str] = None,
    created: Optional[int] = None,
    **overrides: Any,
) -> dict:
    """A customer object shaped like one from the Stripe API (2024 versions)."""
    obj = {
        "id": customer_id or new_id("cus_"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": int(created if created is not None else time.time()),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": email,
        "invoice_prefix": secrets.token_hex(4).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": name,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }
    obj.update(overrides)
    return obj


def customer_event(
    type: str = "customer.created",
    customer: Optional[dict] = None,
    created: Optional[int] = None,
    event_id: Optional[str] = None,
    account: Optional[str] = None,
    previous_attributes: Optional[dict] = None,
    api_version: str = "2024-06-20",
    **customer_fields: Any,
) -> str:
    """A ``customer.created|updated|deleted`` event as the JSON text Stripe posts.

    Pass a ``customer`` dict (see customer_object) or the fields to build one
    (``customer_id``, ``email``, ``name``, ``created``...). ``created`` is the
    event's own timestamp (default: now). Stripe pretty-prints with two
    spaces, so we do too: the signature covers those exact bytes.
    """
    if type not in ("customer.created", "customer.updated", "customer.deleted"):
        raise ValueError(f"not a customer event type: {type}")
    obj = customer if customer is not None else customer_object(**customer_fields)
    event: dict = {
        "id": event_id or new_id("evt_", 24),
        "object": "event",
        "api_version": api_version,
        "created": int(created if created is not None else time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": new_id("req_"), "idempotency_key": secrets.token_hex(16)},
        "type": type,
    }
    if type == "customer.updated":
        event["data"]["previous_attributes"] = previous_attributes or {}
    if account:
        event["account"] = account
    return json.dumps(event, indent=2)


def unmirrored_event(created: Optional[int] = None) -> str:
    """An event about an object type stripe_sync does not mirror (an Issuing card, Stripe's own
    example from fixtures3.json): stored, then skipped by the worker."""
    from .standin import FIXTURES  # the stand-in's examples of every object

    card = json.loads(FIXTURES.read_text())["resources"]["issuing.card"]
    return json.dumps({"id": new_id("evt_", 24), "object": "event", "type": "issuing_card.created",
                       "api_version": "2026-07-29.dahlia", "data": {"object": card},
                       "created": int(created if created is not None else time.time()),
                       "livemode": False, "pending_webhooks": 1, "request": None}, indent=2)


def event_id_of(payload: str) -> str:
    return json.loads(payload)["id"]


def ingest(conn: psycopg.Connection, payload: str, secret: str, t: Optional[int] = None) -> str:
    """Sign ``payload`` with ``secret`` and call stripe_sync.ingest_event directly."""
    header = sign(payload, secret, int(t if t is not None else time.time()))
    return conn.execute(
        "SELECT stripe_sync.ingest_event(%s, %s)", (payload, header)
    ).fetchone()[0]


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------

def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (int, float)):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


class Cluster:
    """A throw-away PostgreSQL 15 cluster listening only on a unix socket.

    ``conf`` entries are appended to postgresql.conf; strings are quoted for
    you (``{"shared_preload_libraries": "stripe_sync", "stripe_sync.poll_interval": 200}``).
    """

    def __init__(
        self,
        base_dir: Optional[os.PathLike | str] = None,
        port: Optional[int] = None,
        conf: Optional[Mapping[str, Any]] = None,
        start: bool = True,
    ):
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="stripe_sync-pg-"))
        self.port = port or free_port()
        self.data = self.base / "data"
        self.logfile = self.base / "log"
        self.conf = dict(conf or {})
        self.webhook_secret: Optional[str] = None  # set by stripe_sync_cluster()
        self._as_root = os.geteuid() == 0
        self.running = False
        try:
            self._init()
            if start:
                self.start()
        except BaseException:
            self.destroy()
            raise

    # -- process control --------------------------------------------------
    def _cmd(self, *args: str) -> list[str]:
        if self._as_root:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            self._cmd(*args), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} failed with exit code {proc.returncode}:\n"
                f"{proc.stdout}{proc.stderr}\n--- server log tail ---\n{self.log_tail()}"
            )
        return proc

    def _init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")
            os.chmod(self.base, 0o700)
        self._run(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
            "-U", "postgres", "--no-locale", "-E", "UTF8",
        )
        settings = {
            "port": self.port,
            "listen_addresses": "",
            "unix_socket_directories": str(self.base),
            # %b = backend type, so tests can tell which process logged a line
            "log_line_prefix": "%m [%p] %b ",
            "fsync": False,
            **self.conf,
        }
        lines = [f"{k} = {_conf_value(v)}" for k, v in settings.items()]
        self.append_conf(lines)

    def append_conf(self, lines: Iterable[str] | Mapping[str, Any]) -> None:
        """Append settings to postgresql.conf (takes effect on reload/restart)."""
        if isinstance(lines, Mapping):
            lines = [f"{k} = {_conf_value(v)}" for k, v in lines.items()]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n# added by stripe_sync harness\n")
            for line in lines:
                f.write(line + "\n")

    def start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
            "-w", "-t", "60", "start",
        )
        self.running = True

    def stop(self, mode: str = "fast", timeout: float = 60) -> float:
        """Stop the server and return how many seconds pg_ctl took."""
        started = time.monotonic()
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
            "-t", str(int(timeout)), "stop", timeout=timeout + 10,
        )
        self.running = False
        return time.monotonic() - started

    def restart(self, mode: str = "fast") -> None:
        self._run(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
            "-m", mode, "-w", "-t", "60", "restart",
        )
        self.running = True

    def reload(self) -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "reload")

    def destroy(self) -> None:
        if self.running:
            try:
                self.stop("immediate")
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.destroy()

    # -- SQL ----------------------------------------------------------------
    def dsn(self, user: str = "postgres", dbname: str = "postgres") -> str:
        return psycopg.conninfo.make_conninfo(
            host=str(self.base), port=self.port, user=user, dbname=dbname
        )

    def connect(
        self, user: str = "postgres", dbname: str = "postgres", autocommit: bool = True
    ) -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.base), port=self.port, user=user, dbname=dbname,
            autocommit=autocommit, connect_timeout=10,
        )

    def query(self, sql: str, params: Any = None, dbname: str = "postgres") -> list[tuple]:
        """Run one statement on a fresh autocommit connection; return its rows."""
        with self.connect(dbname=dbname) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: Any = None, dbname: str = "postgres") -> Any:
        rows = self.query(sql, params, dbname)
        return rows[0][0] if rows else None

    def pid_of_backend_type(self, backend_type: str = WORKER_TYPE) -> Optional[int]:
        return self.scalar(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = %s ORDER BY pid LIMIT 1",
            (backend_type,),
        )

    def worker_pid(self) -> Optional[int]:
        return self.pid_of_backend_type(WORKER_TYPE)

    # -- log ------------------------------------------------------------------
    def log_size(self) -> int:
        try:
            return self.logfile.stat().st_size
        except FileNotFoundError:
            return 0

    def log_text(self, since: int = 0) -> str:
        try:
            with open(self.logfile, "rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def stripe_sync_conf(
    webhook_secret: Optional[str] = None,
    poll_interval_ms: int = POLL_MS,
    **extra: Any,
) -> dict:
    """postgresql.conf settings for a cluster that preloads stripe_sync.

    Extra keyword arguments are stripe_sync GUCs without the prefix
    (``api_key="sk_test_..."`` becomes ``stripe_sync.api_key``).
    """
    conf: dict[str, Any] = {
        "shared_preload_libraries": EXTENSION,
        "stripe_sync.database": "postgres",
        "stripe_sync.poll_interval": poll_interval_ms,
        # The tests call catch_up() when they mean it (and count what it brings);
        # test_mirror.py runs the worker's own catch-up with an interval of its own.
        "stripe_sync.catch_up_interval": 0,
    }
    if webhook_secret is not None:
        conf["stripe_sync.webhook_secret"] = webhook_secret
    for key, value in extra.items():
        conf[f"stripe_sync.{key}"] = value
    return conf


@contextlib.contextmanager
def stripe_sync_cluster(
    webhook_secret: Optional[str] = None,
    create_extension: bool = True,
    poll_interval_ms: int = POLL_MS,
    port: Optional[int] = None,
    **gucs: Any,
) -> Iterator[Cluster]:
    """A started cluster preloading stripe_sync (optionally with the extension
    created); stopped and deleted on exit. ``cluster.webhook_secret`` is the
    configured secret."""
    require_extension_installed()
    conf = stripe_sync_conf(webhook_secret, poll_interval_ms, **gucs)
    with Cluster(port=port, conf=conf) as cluster:
        cluster.webhook_secret = webhook_secret
        if create_extension:
            cluster.query(f"CREATE EXTENSION {EXTENSION}")
        yield cluster


# --------------------------------------------------------------------------
# Streams from shared/bench/gen_events.py
# --------------------------------------------------------------------------

GEN_EVENTS = SHARED / "bench" / "gen_events.py"


def gen_stream(secret: str, events: int, seed: int, duplicates: float = 0.0,
               out_of_order: float = 0.0, start: Optional[int] = None) -> list[tuple[str, str]]:
    """(payload, signature) deliveries from the shared generator, signed now with ``secret``."""
    argv = [sys.executable, str(GEN_EVENTS), "--events", str(events), "--seed", str(seed),
            "--secret", secret, "--timestamp", "now",
            "--duplicates", str(duplicates), "--out-of-order", str(out_of_order)]
    if start is not None:
        argv += ["--start", str(start)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout
    return [(d["payload"], d["signature"]) for d in map(json.loads, out.splitlines())]


def ingest_all(conn: psycopg.Connection, deliveries: Iterable[tuple[str, str]]) -> list[str]:
    """ingest_event for every delivery, pipelined; the answers in order."""
    deliveries = list(deliveries)
    if not deliveries:
        return []
    answers = []
    with conn.cursor() as cur:
        cur.executemany("SELECT stripe_sync.ingest_event(%s, %s)", deliveries, returning=True)
        while True:
            answers.append(cur.fetchone()[0])
            if not cur.nextset():
                break
    return answers


class BackgroundCall:
    """One statement on a connection of its own, run in a thread so that the test can cancel it
    (``pid``) or wait for it: ``result`` is then "finished" or the SQLSTATE it failed with."""

    def __init__(self, cluster: "Cluster", sql: str):
        self.conn = cluster.connect()
        self.pid = self.conn.info.backend_pid
        self.result: Optional[str] = None
        self.thread = threading.Thread(target=self._run, args=(sql,), daemon=True)
        self.thread.start()

    def _run(self, sql: str) -> None:
        try:
            self.conn.execute(sql)
            self.result = "finished"
        except psycopg.Error as e:
            self.result = e.sqlstate

    def join(self, timeout: float = 30) -> Optional[str]:
        self.thread.join(timeout)
        self.conn.close()
        return self.result


def wait_drained(cluster: "Cluster", timeout: float = 60, dbname: str = "postgres") -> None:
    """Wait until stripe_sync.status says no event is pending in ``dbname``."""
    wait_until(lambda: cluster.scalar("SELECT pending FROM stripe_sync.status", dbname=dbname) == 0,
               timeout=timeout, what="status.pending to reach 0")


def status_row(cluster: "Cluster", dbname: str = "postgres") -> dict:
    """The stripe_sync.status view as a dict."""
    with cluster.connect(dbname=dbname) as conn:
        cur = conn.execute("SELECT * FROM stripe_sync.status")
        return dict(zip([d.name for d in cur.description], cur.fetchone()))


def settled(cluster, event_id: str, timeout: float = 60) -> str:
    """The status of an event once it is no longer pending (the last error shown otherwise)."""
    try:
        return wait_until(lambda: cluster.scalar(
            "SELECT status FROM stripe_sync.events WHERE id = %s AND status <> 'pending'", (event_id,)),
            timeout=timeout, what=f"event {event_id} to be applied")
    except TimeoutError as e:
        row = cluster.query("SELECT status, attempts, last_error FROM stripe_sync.events WHERE id = %s", (event_id,))
        raise AssertionError(f"{e}; events row: {row}") from None
