"""An HTTP proxy on 127.0.0.1 that forwards to a Stripe stand-in and injects
faults by plan: rate limits, server errors, lock conflicts, an answer that
says not to retry, slow answers, bodies cut short or stalled, dropped
connections and garbled bodies. It records every request and what it did.

    with FaultProxy(standin.base) as proxy:
        proxy.inject("429", None, "drop", match="/v1/prices?")   # next three list requests
        proxy.always("500", match="/v1/customers/")
        ...
        proxy.log   # [{"target", "fault", "status", "request_id", ...}]
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from typing import Any, Optional

from .services import LocalServer

MAX_SLOW_SECONDS = 30.0


def _error(type_: str, message: str, code: Optional[str] = None) -> bytes:
    err = {"type": type_, "message": message}
    if code:
        err["code"] = code
    return json.dumps({"error": err}).encode()


# fault -> (status, extra headers, body); the others are handled in the handler
CANNED: dict[str, tuple[int, dict, bytes]] = {
    "429": (429, {"Retry-After": "1"},
            _error("invalid_request_error", "Too many requests hit the API too quickly (injected).", "rate_limit")),
    "500": (500, {}, _error("api_error", "An unknown error occurred (injected).")),
    "502": (502, {"Content-Type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1></body></html>"),
    "503": (503, {}, _error("api_error", "The service is temporarily unavailable (injected).")),
    "409": (409, {}, _error("invalid_request_error", "This object cannot be accessed right now because another "
                            "API request or Stripe process is currently accessing it (injected).", "lock_timeout")),
    "503_no_retry": (503, {"Stripe-Should-Retry": "false"},
                     _error("api_error", "The request failed and must not be retried (injected).")),
    "400": (400, {}, _error("invalid_request_error", "Invalid value for limit (injected).", "parameter_invalid")),
    "garbled": (200, {}, b'{"object": "list", "data": [{"id": "cus_'),
}
FAULTS = set(CANNED) | {"slow", "drop", "truncated", "stall", "echo_key", None}


class _Rule:
    def __init__(self, match: str, faults: list, every: int = 0, always: Optional[str] = None):
        self.match, self.faults, self.every, self.always, self.seen = match, list(faults), every, always, 0

    def take(self, target: str) -> tuple[bool, Optional[str]]:
        """(rule applies, fault) for one request."""
        if not target.startswith(self.match):
            return False, None
        self.seen += 1
        if self.always is not None:
            return True, (self.always if not self.every or self.seen % self.every == 0 else None)
        if self.faults:
            return True, self.faults.pop(0)
        return False, None


class FaultProxy(LocalServer):
    def __init__(self, upstream: str, slow_seconds: float = 3.0, port: int = 0):
        up = urllib.parse.urlsplit(upstream)
        if up.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError("the fault proxy only forwards to a local stand-in")
        self.upstream = (up.hostname, up.port or 80)
        self.slow_seconds = min(slow_seconds, MAX_SLOW_SECONDS)
        self.rules: list[_Rule] = []
        self.log: list[dict] = []
        self.lock = threading.Lock()
        self._listen(type("Handler", (_Handler,), {"proxy": self}), port, block_on_close=False)

    # -- plans ----------------------------------------------------------------
    def inject(self, *faults: Optional[str], match: str = "/") -> None:
        """The next requests whose path+query starts with ``match`` get these
        faults, one each, in order (None: pass through untouched)."""
        self._add(_Rule(match, self._checked(faults)))

    def every(self, n: int, fault: str, match: str = "/") -> None:
        """Every ``n``-th matching request gets ``fault``, until clear()."""
        self._add(_Rule(match, [], every=n, always=self._checked([fault])[0]))

    def always(self, fault: str, match: str = "/") -> None:
        self.every(1, fault, match)

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.log.clear()

    def pending(self) -> int:
        """Planned faults not yet used."""
        with self.lock:
            return sum(len(r.faults) for r in self.rules)

    @staticmethod
    def _checked(faults) -> list:
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {sorted(f for f in FAULTS if f)}")
        return list(faults)

    def _add(self, rule: _Rule) -> None:
        with self.lock:
            self.rules.append(rule)

    def _decide(self, target: str) -> Optional[str]:
        with self.lock:
            for rule in self.rules:
                applies, fault = rule.take(target)
                if applies:
                    return fault
        return None

    # -- what happened -------------------------------------------------------
    def requests(self, match: str = "/") -> list[dict]:
        with self.lock:
            return [r for r in self.log if r["target"].startswith(match)]

    def faulted(self) -> list[dict]:
        with self.lock:
            return [r for r in self.log if r["fault"]]

    def _record(self, entry: dict) -> dict:
        with self.lock:
            entry["seq"] = len(self.log)
            self.log.append(entry)
        return entry


class _Handler(BaseHTTPRequestHandler):
    proxy: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        p = self.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = p._decide(self.path)
        entry = p._record({"method": self.command, "target": self.path, "fault": fault,
                           "status": None, "request_id": None, "at": time.monotonic()})
        self.close_connection = True
        if fault == "drop":  # hang up without a word
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault in CANNED:
            status, headers, data = CANNED[fault]
            entry["request_id"] = f"req_fault_{entry['seq']}"
            return self._answer(entry, status, {"Request-Id": entry["request_id"], **headers}, data)
        if fault == "echo_key":  # an error that quotes the key back, as a careless server might
            entry["request_id"] = f"req_fault_{entry['seq']}"
            data = _error("invalid_request_error", f"Invalid API Key provided: {self.headers.get('Authorization')}")
            return self._answer(entry, 401, {"Request-Id": entry["request_id"]}, data)
        if fault == "slow":
            time.sleep(p.slow_seconds)
        status, headers, data = self._forward(body)
        if fault in ("truncated", "stall"):  # half the body, then hang up / go quiet for slow_seconds
            entry["status"] = status
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                if fault == "stall":
                    time.sleep(p.slow_seconds)
                    self.wfile.write(data[len(data) // 2:])
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                entry["client_gone"] = True
            return
        entry["request_id"] = headers.get("Request-Id")
        self._answer(entry, status, headers, data)

    def _forward(self, body: bytes) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(*self.proxy.upstream, timeout=30)
        try:
            keep = ("Authorization", "Stripe-Version", "Stripe-Account", "Idempotency-Key", "Content-Type")
            headers = {k: self.headers[k] for k in keep if self.headers.get(k)}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            passed = ("Content-Type", "Request-Id", "Retry-After", "Stripe-Should-Retry")
            return resp.status, {k: resp.getheader(k) for k in passed if resp.getheader(k)}, data
        finally:
            conn.close()

    def _answer(self, entry: dict, status: int, headers: dict, data: bytes) -> None:
        entry["status"] = status
        try:
            self.send_response(status)
            headers = {"Content-Type": "application/json", **headers}
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a read timeout): nothing to tell
            entry["client_gone"] = True

    do_GET = do_POST = do_DELETE = _serve
