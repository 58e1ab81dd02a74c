#!/usr/bin/env python3
"""A Stripe webhook endpoint that hands every delivery to stripe_sync.

    webhook_relay.py --dsn "host=/run/postgresql dbname=shop" --port 8787

Stripe POSTs events here; the raw body and the Stripe-Signature header go
unchanged to stripe_sync.ingest_event(), which checks the signature and
queues the event. 200 = stored (or already stored), 400/413 = rejected for good,
500 = try again later (Stripe retries). Bodies and signatures are never logged.
Safe behind PgBouncer in transaction pooling mode (it prepares no statement).
"""
import argparse
import queue
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg

POOL_SIZE = 4


class Handler(BaseHTTPRequestHandler):
    pool: "queue.Queue[psycopg.Connection | None]"
    dsn: str

    def do_POST(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self.reply(411, "Content-Length required")
        body = self.rfile.read(int(length))
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            return self.reply(400, "body is not UTF-8")
        signature = self.headers.get("Stripe-Signature", "")
        conn = self.pool.get()  # blocks while POOL_SIZE requests are in flight
        try:
            if conn is None or conn.closed:
                # No server-side prepared statements: behind PgBouncer in
                # transaction pooling, the next statement may reach another
                # server connection, where a prepared one does not exist
                # (26000) or exists already (42P05). One parameterized call
                # per delivery gains nothing from preparing anyway.
                conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)
            result = conn.execute(
                "SELECT stripe_sync.ingest_event(%s, %s)", (payload, signature)
            ).fetchone()[0]
            self.reply(200, str(result))
        except psycopg.Error as err:
            state = getattr(err, "sqlstate", None) or ""
            if state == "54000":  # over stripe_sync.max_payload_bytes: retrying cannot help
                self.reply(413, err.diag.message_primary or "payload too large")
            elif state[:2] in ("22", "28"):  # bad input or bad signature: do not retry
                self.reply(400, err.diag.message_primary or "rejected")
            else:
                self.log_message("ingest failed: %s %s", state or "-", type(err).__name__)
                self.reply(500, "temporarily unable to store the event")
        finally:
            self.pool.put(None if conn is None or conn.broken else conn)

    def reply(self, status, text):
        data = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    # Stripe delivers concurrently; socketserver's default backlog of 5 resets
    # connections beyond it while the pool is busy (Stripe would retry them).
    request_queue_size = 256
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dsn", required=True, help="libpq connection string")
    ap.add_argument("--port", type=int, default=8787)
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    Handler.dsn = args.dsn
    Handler.pool = queue.LifoQueue()
    for _ in range(POOL_SIZE):
        Handler.pool.put(None)  # connections are opened on first use
    server = Server((args.host, args.port), Handler)
    print(f"webhook relay listening on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
