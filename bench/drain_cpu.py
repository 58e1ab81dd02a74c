#!/usr/bin/env python3
"""Where the CPU goes during a drain: one private cluster (bench/run.py's), the 100,000-event
queue, then drains with each `stripe_sync.apply_workers` value given (default 1 and 2), two
rounds. During each drain every process on the machine is sampled from /proc every 50 ms; the
CPU each used (utime + stime) is printed by command line, so the appliers, the bench's own
connections and the rest can be told apart. (The sampling itself costs a little CPU too: it
shows as the Python process.) bench/CHANGES.md quotes it for the bench's poll.

    ~/.cache/stripe_sync/venv/bin/python bench/drain_cpu.py 1 2
"""
import os
import sys
import threading
import time

import lab as L
import run as R

HZ = os.sysconf("SC_CLK_TCK")


def snapshot() -> dict[int, tuple[str, float]]:
    """pid → (command line, CPU seconds so far) for every process."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            stat = open(f"/proc/{p}/stat").read()
            cmd = open(f"/proc/{p}/cmdline").read().replace("\0", " ").strip()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(p)] = (cmd[:60], (int(fields[11]) + int(fields[12])) / HZ)
    return out


class Sampler(threading.Thread):
    """Keeps the last sample of every process, so that those that exit (helpers) still count."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.first = snapshot()
        self.last = dict(self.first)

    def run(self) -> None:
        while not self.done.is_set():
            self.last.update(snapshot())
            self.done.wait(0.05)

    def by_command(self) -> dict[str, float]:
        by: dict[str, float] = {}
        for pid, (cmd, cpu) in self.last.items():
            used = cpu - (self.first[pid][1] if pid in self.first else 0.0)
            if used > 0.005:
                by[cmd] = by.get(cmd, 0.0) + used
        return by


def main() -> int:
    workers = sys.argv[1:] or ["1", "2"]
    args = R.parse_args(["--only", "apply", "--runs", "1", "--quiet-wait", "0", "--apply-workers", "1"])
    bench = R.Bench(args)
    try:
        L.start_with_queue(bench, args)
        for rnd in range(2):
            for w in workers:
                L.run_sql(bench, f"ALTER SYSTEM SET stripe_sync.apply_workers = {int(w)}; SELECT pg_reload_conf()")
                time.sleep(1)
                s = Sampler()
                s.start()
                d = bench.drain("big", bench.worker_pid(), 600, count_helpers=True)
                s.done.set()
                s.join()
                by = s.by_command()
                print(f"round {rnd + 1}, apply_workers {w}: {d['rate']:,.0f} events/s in {d['seconds']:.2f} s, "
                      f"helpers {d['helpers_seen']}, CPU of every process {sum(by.values()):.2f} s "
                      "(from before the queue's copy to after the counts)")
                for cmd, cpu in sorted(by.items(), key=lambda kv: -kv[1])[:12]:
                    print(f"   {cpu:6.2f}  {cmd or '(exited)'}")
                sys.stdout.flush()
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
