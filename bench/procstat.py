"""What bench/ reads of the machine and its processes: /proc (memory, CPU time, page faults, CPU
steal), the CPU that other people's processes take during a run, `perf record` attached to a
backend as soon as it starts, and the machine's description for the report."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from common import REPO

if TYPE_CHECKING:
    from run import Bench


def read_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    out[key] = int(rest.split()[0])  # kB
    except FileNotFoundError:
        pass
    return out


def proc_stat(pid: int) -> Optional[tuple[str, list]]:
    """(command, the fields of /proc/<pid>/stat after the command: index 0 is the state), or None when
    the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.index("(") + 1:raw.rindex(")")], raw[raw.rindex(")") + 2:].split()


def stat_fields(pid: Optional[int]) -> Optional[list]:
    """The /proc/<pid>/stat fields after the command, or None (no pid, or the process is gone)."""
    stat = proc_stat(pid) if pid is not None else None
    return stat[1] if stat else None


def minor_faults(pid: Optional[int]) -> Optional[int]:
    """Minor page faults of a process so far (minflt): new anonymous memory touched, a count that
    CPU steal on a shared machine does not change."""
    fields = stat_fields(pid)
    return int(fields[7]) if fields else None


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: Optional[int], reaped: bool = False) -> Optional[float]:
    """utime + stime of a process (with `reaped`, also of its children it has waited for)."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if reaped:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def cpu_per_event_us(drained: dict) -> str:
    """The worker's CPU per event of a drain, in µs, as text ('?' when it was not read)."""
    cpu = drained.get("worker_cpu_s")
    return f"{1e6 * cpu / drained['queued']:,.0f}" if cpu is not None and drained["queued"] else "?"


def proc_stats():
    """(pid, command, the /proc/<pid>/stat fields after the command) of every live process."""
    for d in os.listdir("/proc"):
        if d.isdigit() and (stat := proc_stat(int(d))) is not None:
            yield int(d), stat[0], stat[1]


def tree_cpu_seconds(root: Optional[int]) -> float:
    """CPU of a postmaster and its children, live or exited (the postmaster reaps them all)."""
    if root is None:
        return 0.0
    total = cpu_seconds(root, reaped=True) or 0.0
    for _, _, fields in proc_stats():
        if int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


class RssSampler:
    """Samples /proc/<pid>/status every 50 ms in a thread."""

    def __init__(self, pid: int, interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            s = read_status(self.pid)
            if s:
                self.samples.append(s)
            self._stop.wait(self.interval)

    def summary(self) -> dict:
        if not self.samples:
            return {}
        mb = lambda kb: kb / 1024  # noqa: E731
        first, last = self.samples[0], self.samples[-1]
        return {
            "samples": len(self.samples),
            "start_rss_mb": mb(first["VmRSS"]), "peak_rss_mb": mb(max(s["VmRSS"] for s in self.samples)),
            "end_rss_mb": mb(last["VmRSS"]), "hwm_mb": mb(last["VmHWM"]),
            "start_anon_mb": mb(first["RssAnon"]), "peak_anon_mb": mb(max(s["RssAnon"] for s in self.samples)),
            "end_anon_mb": mb(last["RssAnon"]),
            "peak_shmem_mb": mb(max(s["RssShmem"] for s in self.samples)),
            "peak_file_mb": mb(max(s["RssFile"] for s in self.samples)),
        }


def steal_seconds() -> Optional[float]:
    """CPU steal so far, all CPUs together (the `cpu` line of /proc/stat, 8th value): time the
    hypervisor ran another guest while one of this machine's virtual CPUs had work to do."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class ForeignCpu:
    """CPU used by processes that are not part of this run (neither descendants of this script
    nor of our postmaster, kernel threads left out), sampled from /proc every second. The machine
    is shared: other people's builds on the same 2 CPUs distort the numbers, and the report says
    by how much. CPU steal (another guest of the hypervisor on our CPUs) is read beside it: no
    process here shows it, and it slows everything."""

    def __init__(self, postmaster: Callable[[], Optional[int]]):
        self.postmaster = postmaster
        self.tick = os.sysconf("SC_CLK_TCK")
        self.seconds = 0.0  # foreign CPU-seconds so far
        self.steal_start = steal_seconds()  # CPU steal of the whole machine at the start
        self.prev: dict[int, int] = {}
        self.top: dict[str, float] = {}
        self.history: list[tuple[float, float]] = []  # (monotonic time, self.seconds)
        self._stop = threading.Event()
        self._scan(first=True)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _scan(self, first: bool = False) -> None:
        procs: dict[int, tuple[int, int, str]] = {}
        for pid, comm, fields in proc_stats():
            procs[pid] = (int(fields[1]), int(fields[11]) + int(fields[12]), comm)
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in procs.items():
            children.setdefault(ppid, []).append(pid)
        ours: set[int] = set()
        todo = [os.getpid()] + ([self.postmaster()] if self.postmaster() else [])
        while todo:
            pid = todo.pop()
            if pid not in ours:
                ours.add(pid)
                todo.extend(children.get(pid, []))
        now: dict[int, int] = {}
        for pid, (ppid, ticks, comm) in procs.items():
            if pid in ours or pid == 2 or ppid == 2:
                continue
            now[pid] = ticks
            if not first:
                delta = (ticks - self.prev.get(pid, 0)) / self.tick
                if delta > 0:
                    self.seconds += delta
                    self.top[comm] = self.top.get(comm, 0.0) + delta
        self.prev = now
        self.history.append((time.monotonic(), self.seconds))
        del self.history[:-30]

    def recent(self, window: float = 3.0) -> float:
        """Foreign CPUs busy on average over about the last `window` seconds."""
        if len(self.history) < 2:
            return 0.0
        t1, s1 = self.history[-1]
        t0, s0 = next(((t, v) for t, v in self.history if t >= t1 - window - 0.5), self.history[0])
        return (s1 - s0) / (t1 - t0) if t1 > t0 else 0.0

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._scan()
            except Exception:  # noqa: BLE001 - monitoring must not break the run
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class PerfOnBackend:
    """`perf record` on the first process of a backend type, from the moment it appears (looked
    for every 2 ms from now on) until it exits or `stop()`."""

    def __init__(self, bench: "Bench", backend_type: str, data: Path, options: list[str]):
        self.bench, self.perf = bench, None
        self._done = threading.Event()

        def attach() -> None:
            while not self._done.is_set() and self.perf is None:
                pid = bench.cluster.pid_of_backend_type(backend_type)
                if pid:
                    self.perf = subprocess.Popen(["perf", "record", *options, "-p", str(pid), "-o", str(data)],
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    bench.procs.append(self.perf)
                self._done.wait(0.002)

        self._watcher = threading.Thread(target=attach, daemon=True)
        self._watcher.start()

    @property
    def attached(self) -> bool:
        return self.perf is not None

    def stop(self) -> None:
        """Stops looking; waits for perf to end with its process (or stops it after 30 s)."""
        self._done.set()
        self._watcher.join(timeout=5)
        if self.perf is None:
            return
        try:
            self.perf.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.perf.send_signal(signal.SIGINT)
            self.perf.wait(timeout=60)
        self.bench.procs.remove(self.perf)


def machine() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    return {"nproc": os.cpu_count(), "mem_gib": mem_kb / 1024 / 1024, "cpu": cpu,
            "git": git + (" (with uncommitted changes)" if dirty else "")}
