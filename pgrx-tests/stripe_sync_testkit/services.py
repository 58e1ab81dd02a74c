"""The services stripe_sync's tests, benchmarks and demo run beside a cluster, as child processes
on 127.0.0.1: localstripe (Stripe's API, started from localstripe_plus.py) and
examples/webhook_relay.py (the webhook endpoint Stripe posts to), with the official ``stripe``
client pointed at localstripe; and the small HTTP helpers they share. harness gives these names
too (``h.LocalStripe``, ``h.Relay``...).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from . import REPO_ROOT

RELAY_SCRIPT = REPO_ROOT / "examples" / "webhook_relay.py"
VENV = Path(
    os.environ.get("STRIPE_SYNC_VENV")
    or Path.home() / ".cache" / "stripe_sync" / "venv"
)


# --------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(
    url: str,
    data: bytes | None = None,
    headers: Optional[Mapping[str, str]] = None,
    method: Optional[str] = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """(status, body) without raising on HTTP error statuses."""
    req = urllib.request.Request(url, data=data, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


class LocalServer:
    """An HTTP server of this process on 127.0.0.1, answering in threads (the stand-ins); close(),
    or the end of the with block, stops it."""

    def _listen(self, handler: type[BaseHTTPRequestHandler], port: int = 0, block_on_close: bool = True) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.server.block_on_close = block_on_close
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class _Process:
    """A child process whose output goes to a file we can show on failure."""

    name = "process"

    def _spawn(self, argv: list[str]) -> None:
        self._out = tempfile.NamedTemporaryFile(
            prefix=f"stripe_sync-{self.name}-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            argv, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )

    def output(self) -> str:
        try:
            return Path(self._out.name).read_text(errors="replace")
        except (AttributeError, FileNotFoundError):
            return ""

    def _wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        def check() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode}:\n{self.output()}"
                )
            return ready()

        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} did not start within {timeout}s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self) -> None:
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        out = getattr(self, "_out", None)
        if out is not None:
            out.close()
            try:
                os.unlink(out.name)
            except FileNotFoundError:
                pass
            self._out = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# --------------------------------------------------------------------------
# localstripe
# --------------------------------------------------------------------------

TEST_API_KEY = "sk_test_stripe_sync_local"


class LocalStripe(_Process):
    """localstripe on 127.0.0.1:port, started from scratch (ignores the shared pickle)."""

    name = "localstripe"

    def __init__(self, port: Optional[int] = None, timeout: float = 30):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        python = VENV / "bin" / "python"
        # localstripe with the per-customer payment method list it lacks (localstripe_plus.py);
        # without the venv, the interpreter running us (it has the requirements).
        argv = [str(python) if python.exists() else sys.executable, str(Path(__file__).resolve().parent / "localstripe_plus.py")]
        self._spawn(argv + ["--port", str(self.port), "--from-scratch"])
        self._wait_ready(self._answers, timeout)

    def _answers(self) -> bool:
        try:
            status, _ = self.request("GET", "/v1/customers?limit=1", timeout=2)
            return status == 200
        except OSError:
            return False

    def request(
        self, method: str, path: str, form: Optional[Mapping[str, Any]] = None, timeout: float = 10
    ) -> tuple[int, bytes]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        return http_request(self.base + path, data, headers, method, timeout)

    def register_webhook(
        self, name: str, url: str, secret: str, events: Optional[list[str]] = None
    ) -> None:
        path = f"/_config/webhooks/{urllib.parse.quote(name)}"
        if events:  # a list does not survive form encoding: send JSON
            status, body = http_request(
                self.base + path,
                json.dumps({"url": url, "secret": secret, "events": list(events)}).encode(),
                {"Content-Type": "application/json"}, "POST",
            )
        else:
            status, body = self.request("POST", path, {"url": url, "secret": secret})
        if status != 200:
            raise RuntimeError(f"localstripe refused the webhook ({status}): {body[:200]!r}")

    def flush(self) -> None:
        """Forget every object (DELETE /_config/data)."""
        self.request("DELETE", "/_config/data")

    def event_json(self, event_id: str) -> str:
        """An event as localstripe serves it (to redeliver it by hand)."""
        status, body = self.request("GET", f"/v1/events/{urllib.parse.quote(event_id)}")
        if status != 200:
            raise RuntimeError(f"localstripe has no event {event_id} ({status})")
        return body.decode()


def stripe_client(api_base: str, api_key: str = TEST_API_KEY):
    """An official ``stripe.StripeClient`` that talks to ``api_base``."""
    import stripe

    return stripe.StripeClient(api_key, base_addresses={"api": api_base})


def configure_stripe_module(api_base: str, api_key: str = TEST_API_KEY):
    """Point the module-level ``stripe`` API (stripe.Customer.create ...) at ``api_base``."""
    import stripe

    stripe.api_key = api_key
    stripe.api_base = api_base
    return stripe


# --------------------------------------------------------------------------
# examples/webhook_relay.py
# --------------------------------------------------------------------------

class Relay(_Process):
    """examples/webhook_relay.py on 127.0.0.1:port, ingesting into ``dsn``."""

    name = "relay"

    def __init__(self, dsn: str, port: Optional[int] = None, host: str = "127.0.0.1", timeout: float = 20):
        self.host = host
        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}/"
        self._spawn([
            sys.executable, str(RELAY_SCRIPT), "--dsn", dsn,
            "--port", str(self.port), "--host", host,
        ])
        self._wait_ready(lambda: port_open(host, self.port), timeout)

    def post(self, payload: str | bytes, signature: Optional[str]) -> tuple[int, str]:
        """POST a delivery like Stripe does; (status, response text)."""
        body = payload.encode() if isinstance(payload, str) else payload
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        status, text = http_request(self.url, body, headers, "POST")
        return status, text.decode(errors="replace")
