"""The event stream of the ingest, apply, latency and peer measures: shared/bench/gen_events.py's
deliveries, cached under bench/out/streams/ (payloads only; they are signed just before use), and
COPY of many rows into the benchmark's tables."""
from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import psycopg

from common import GEN_EVENTS, OUT, SECRET, log


class Stream:
    """A gen_events.py stream, cached under bench/out/streams/ (payloads only; we sign them)."""

    def __init__(self, events: int, duplicates: float, out_of_order: float, seed: int = 1):
        self.params = dict(events=events, duplicates=duplicates, out_of_order=out_of_order, seed=seed)
        name = f"events{events}-dup{duplicates}-ooo{out_of_order}-seed{seed}.jsonl"
        self.path = OUT / "streams" / name
        if not self.path.exists():
            self._generate()
        self.deliveries: list[tuple[str, str]] = []  # (event id, payload) in delivery order
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                payload = json.loads(line)["payload"]
                self.deliveries.append((event_id(payload), payload))
        seen: set[str] = set()
        self.distinct: list[tuple[str, str]] = []  # first delivery of each event
        for eid, payload in self.deliveries:
            if eid not in seen:
                seen.add(eid)
                self.distinct.append((eid, payload))

    def _generate(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        p = self.params
        log(f"generating {p['events']:,} events with gen_events.py (cached for next time)")
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            subprocess.run(
                [sys.executable, str(GEN_EVENTS), "--events", str(p["events"]),
                 "--duplicates", str(p["duplicates"]), "--out-of-order", str(p["out_of_order"]),
                 "--seed", str(p["seed"]), "--secret", SECRET],
                stdout=f, check=True, timeout=600,
            )
        tmp.rename(self.path)

    def prefix_with_distinct(self, k: int) -> int:
        """How many deliveries from the start hold the first k distinct events."""
        seen: set[str] = set()
        for i, (eid, _) in enumerate(self.deliveries):
            seen.add(eid)
            if len(seen) >= k:
                # include redeliveries of those events that follow immediately? no: stop here.
                return i + 1
        return len(self.deliveries)


def _copy_escape(v: Any) -> str:
    if v is None:
        return "\\N"
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_in(conn: psycopg.Connection, sql: str, rows) -> None:
    """COPY ... FROM STDIN in text format, escaped here and sent in 4 MB chunks (much faster
    than one write_row() per row for 400 MB of payloads)."""
    with conn.cursor() as cur, cur.copy(sql) as cp:
        buf: list[str] = []
        size = 0
        for row in rows:
            line = "\t".join(map(_copy_escape, row)) + "\n"
            buf.append(line)
            size += len(line)
            if size > 4 << 20:
                cp.write("".join(buf))
                buf, size = [], 0
        if buf:
            cp.write("".join(buf))


def event_id(payload: str) -> str:
    if payload.startswith('{"id":"'):
        return payload[7:payload.index('"', 7)]
    return json.loads(payload)["id"]
