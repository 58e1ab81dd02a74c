"""A stand-in for a Slack incoming webhook, for the alert tests.

    with SlackStub() as stub:
        ... stripe_sync.slack_webhook_url = stub.url ...
        stub.fail(status=500)                    # an outage
        stub.fail(status=429, retry_after=2)     # rate limited
        stub.recover()                           # 200 "ok" again
        stub.requests                            # every POST, answered or not

Every request is recorded (method, path, headers, raw body, the body parsed as
JSON when it is JSON, the status answered and when) in a list guarded by a
lock. A POST to the webhook path answers what the current mode says; any other
path answers 404 ``no_service`` like Slack does for an unknown webhook.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional


@dataclass
class SlackRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any  # the parsed JSON, or None when the body is not JSON
    status: int  # what the stub answered
    at: float  # time.monotonic() when the request was answered
    wall: float = field(default_factory=time.time)  # time.time() when it arrived

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def text(self) -> str:
        """The message text ({"text": ...}), or "" when there is none."""
        if isinstance(self.body, dict) and isinstance(self.body.get("text"), str):
            return self.body["text"]
        return ""

    def header(self, name: str) -> Optional[str]:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


class SlackStub:
    """A threaded HTTP server answering like https://hooks.slack.com/services/..."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, secret_part: Optional[str] = None):
        self.secret_part = secret_part or ("Sl4ckSecret" + secrets.token_hex(12))
        self.path = f"/services/T000/B000/{self.secret_part}"
        self._lock = threading.Lock()
        self._requests: list[SlackRequest] = []
        self._status = 200
        self._retry_after: Optional[int] = None
        self._fail_left: Optional[int] = None  # None: fail until recover()
        self._delay = 0.0  # seconds to hold each webhook POST before answering
        self._inflight: dict[int, float] = {}  # request token -> time.time() of arrival
        self._next_token = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        line = self.rfile.readline().strip()
                        size = int(line.split(b";")[0] or b"0", 16)
                        if size == 0:
                            # trailer lines up to the empty one
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            break
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, body: bytes, extra: Optional[dict[str, str]] = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                raw = self._body()
                arrived = time.time()
                try:
                    parsed = json.loads(raw) if raw else None
                except ValueError:
                    parsed = None
                token, delay = stub._arrive(arrived)
                try:
                    if delay > 0:
                        time.sleep(delay)
                    status, body, extra = stub._decide(self.command, self.path)
                    stub._record(SlackRequest(
                        method=self.command, path=self.path, headers=dict(self.headers.items()),
                        raw=raw, body=parsed, status=status, at=time.monotonic(), wall=arrived))
                    self._answer(status, body, extra)
                finally:
                    stub._leave(token)

            do_POST = _handle
            do_GET = _handle
            do_PUT = _handle

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}{self.path}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="slackstub", daemon=True)
        self._thread.start()

    # -- behaviour ------------------------------------------------------------
    def _decide(self, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
        if method != "POST":
            return 405, b"invalid_method", {}
        if path != self.path:
            return 404, b"no_service", {}
        with self._lock:
            if self._status == 200:
                return 200, b"ok", {}
            status, retry_after = self._status, self._retry_after
            if self._fail_left is not None:
                self._fail_left -= 1
                if self._fail_left <= 0:
                    self._status, self._retry_after, self._fail_left = 200, None, None
        extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        body = {429: b"rate_limited", 404: b"no_service", 400: b"invalid_payload",
                403: b"invalid_token"}.get(status, b"internal_error")
        return status, body, extra

    def fail(self, status: int = 500, retry_after: Optional[int] = None, times: Optional[int] = None) -> None:
        """Answer ``status`` (with ``Retry-After: retry_after`` if given) from now on,
        or for the next ``times`` webhook POSTs only."""
        with self._lock:
            self._status, self._retry_after, self._fail_left = status, retry_after, times

    def set_delay(self, seconds: float) -> None:
        """Hold every request ``seconds`` before answering (a slow Slack)."""
        with self._lock:
            self._delay = float(seconds)

    def inflight_since(self) -> Optional[float]:
        """time.time() at which the oldest request still being answered arrived, or None."""
        with self._lock:
            return min(self._inflight.values()) if self._inflight else None

    def _arrive(self, wall: float) -> tuple[int, float]:
        with self._lock:
            self._next_token += 1
            self._inflight[self._next_token] = wall
            return self._next_token, self._delay

    def _leave(self, token: int) -> None:
        with self._lock:
            self._inflight.pop(token, None)

    def recover(self) -> None:
        """Answer 200 ok again."""
        with self._lock:
            self._status, self._retry_after, self._fail_left = 200, None, None

    # -- what was received ----------------------------------------------------
    def _record(self, req: SlackRequest) -> None:
        with self._lock:
            self._requests.append(req)

    @property
    def requests(self) -> list[SlackRequest]:
        """A copy of every request so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def since(self, mark: int) -> list[SlackRequest]:
        """The requests after the first ``mark`` ones (mark = len(stub.requests) earlier)."""
        with self._lock:
            return list(self._requests[mark:])

    def mark(self) -> int:
        with self._lock:
            return len(self._requests)

    @property
    def delivered(self) -> list[SlackRequest]:
        """The POSTs answered 200."""
        return [r for r in self.requests if r.ok]

    @property
    def failed(self) -> list[SlackRequest]:
        """The requests answered with an error status."""
        return [r for r in self.requests if not r.ok]

    def matching(self, pred: Callable[[SlackRequest], bool], mark: int = 0) -> list[SlackRequest]:
        return [r for r in self.since(mark) if pred(r)]

    def mentioning(self, needle: str, mark: int = 0, ok: Optional[bool] = None) -> list[SlackRequest]:
        """Requests whose raw body contains ``needle`` (answered 200 only: ok=True)."""
        return [r for r in self.since(mark)
                if needle in r.raw.decode("utf-8", "replace") and (ok is None or r.ok == ok)]

    # -- lifecycle --------------------------------------------------------------
    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "SlackStub":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
