"""BENCHMARKS.md from a run's results: the header (command, machine, cluster, stream, what else ran
on the machine), a summary table of every target, then one section a measure (report_webhooks.py,
report_api.py), bench/CHANGES.md as it is, and the failures."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional

from common import HERE
from procstat import machine
from report_api import (section_backfill, section_backfill_paced, section_profile, section_provisioning,
                        section_ties)
from report_webhooks import section_apply, section_ingest, section_latency, section_memory, section_peer

if TYPE_CHECKING:
    from run import Bench

SECTIONS = (section_ingest, section_apply, section_latency, section_memory, section_peer, section_backfill,
            section_backfill_paced, section_provisioning, section_ties, section_profile)


class Report:
    """The report being written: its lines, and the rows of its summary that the sections add."""

    def __init__(self, b: Bench):
        self.b, self.r, self.a = b, b.results, b.args
        self.lines: list[str] = []
        self.summary: list[tuple[str, str, str, str]] = []

    def w(self, line: str) -> None:
        self.lines.append(line)

    def heading(self, title: str, measure: str) -> Any:
        """Starts a section; returns the results of its measure (None when there are none)."""
        self.w(f"## {title}")
        self.w("")
        return self.r.get(measure)

    def absent(self, name: str, results: Any, rows: Iterable[tuple[str, str]] = (),
               default: str = "Not measured.") -> bool:
        """Whether measure `name` has no results to show: then the section says why (or `default`),
        and the summary gets its `rows` (measure, target) with no result."""
        miss = self.not_measured(name)
        if not miss and results:
            return False
        self.w(miss or default)
        self.summary.extend((measure, "–", target, "–") for measure, target in rows)
        return True

    def not_measured(self, name: str) -> Optional[str]:
        r = self.r
        if name in r.get("skipped", {}):
            return f"Not measured: {r['skipped'][name]}"
        if name in r.get("failed", {}):
            return f"**Failed:** `{r['failed'][name]}`"
        return None


def write_report(b: Bench, path: Path, command: str, started: dt.datetime, wall: float) -> None:
    rep = Report(b)
    header(rep, command, started, wall)
    summary_at = len(rep.lines)
    for section in SECTIONS:
        section(rep)
    w = rep.w
    changes = HERE / "CHANGES.md"
    if changes.exists():  # written by hand: what the profiles showed and what was changed
        rep.lines.extend(changes.read_text().rstrip("\n").split("\n"))
        w("")

    r = rep.r
    if r.get("failed"):
        w("## Failures")
        w("")
        for k, v in r["failed"].items():
            w(f"- {k}: `{v}`")
        w("")

    S = ["## Summary", "", "| measure | result (median) | target | result |", "|---|---|---|---|"]
    S += [f"| {a_} | {b_} | {c_} | {d_} |" for a_, b_, c_, d_ in rep.summary]
    S.append("")
    rep.lines[summary_at:summary_at] = S
    path.write_text("\n".join(rep.lines) + "\n")


def header(rep: Report, command: str, started: dt.datetime, wall: float) -> None:
    """The run: command, date, machine, PostgreSQL, code, cluster, stream, runs, other load."""
    b, r, w = rep.b, rep.r, rep.w
    m = r.get("machine") or machine()
    lib = r.get("library", {})

    w("# Benchmarks")
    w("")
    w("Written by `bench/run.py` (run it with `make bench`); every number below comes from the one run described here.")
    if b.quick:
        w("")
        w("> **Quick smoke run** (`--quick`): one run per measure and small sizes. Not for comparison; run `make bench`.")
    w("")
    w(f"- Command: `{command}`")
    w(f"- Date: {started.strftime('%Y-%m-%d %H:%M UTC')}, wall time {wall / 60:.1f} min")
    w(f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']:.1f} GiB memory")
    w(f"- PostgreSQL: {r.get('server_version', '?')}")
    w(f"- Code: git {m['git']}; stripe_sync.so {lib.get('bytes', 0) / 1e6:.1f} MB, build id `{lib.get('build_id')}`"
      f"{', debug info' if lib.get('debug_info') else ''}{', pg_test functions' if lib.get('pg_test_functions') else ''}")
    if lib.get("suspect_debug_build"):
        w("")
        w("> **Warning: the installed stripe_sync looks like a debug/test build** (`cargo pgrx test` installs one over the "
          "system copy: debug info and the `tests` schema are in it). Its numbers understate a release build "
          "(`cargo pgrx install --release`). Benchmark a release build before drawing conclusions.")
    after = r.get("library_after", {})
    if after and after.get("build_id") != lib.get("build_id"):
        w("")
        w("> **Warning: the benchmarked library changed during the run**; the numbers are mixed.")
    s = r.get("settings", {})
    w(f"- Cluster (private, from a snapshot of the installed PostgreSQL + extension taken at the start): "
      f"shared_buffers {s.get('shared_buffers')}, **synchronous_commit {s.get('synchronous_commit')}**, "
      f"fsync {s.get('fsync')}, full_page_writes {s.get('full_page_writes')}, wal_level {s.get('wal_level')}, "
      f"max_wal_size {s.get('max_wal_size')}, checkpoint_timeout {s.get('checkpoint_timeout')} (CHECKPOINT before "
      f"every run), jit {s.get('jit')} and every other planner setting at PostgreSQL's default, autovacuum on; stripe_sync.batch_size {s.get('stripe_sync.batch_size')}, "
      f"batch_wait {s.get('stripe_sync.batch_wait')}, poll_interval {s.get('stripe_sync.poll_interval')}, signature_tolerance {s.get('stripe_sync.signature_tolerance')} "
      f"(every delivery is signed afresh just before its run).")
    st = r.get("stream")
    if st:
        w(f"- Stream: `gen_events.py --events {st.get('events')} --duplicates 0.05 --out-of-order 0.1 --seed 1`: "
          f"{st.get('deliveries', 0):,} deliveries of {st.get('distinct', 0):,} distinct events, "
          f"{st.get('mean_payload_bytes', 0):,} bytes each on average.")
    w(f"- Runs: **N = {b.runs}** per measure; tables give the median, then every run.")
    fc = r.get("foreign_cpu", {})
    top = ", ".join(f"{name} {sec:.0f} s" for name, sec in r.get("foreign_cpu_top", []))
    w(f"- Other processes on this shared machine (not this run's) used {r.get('foreign_cpu_total', 0):.0f} CPU-seconds "
      f"during the run ({top or 'none'}); per measure, in CPUs busy on average (of {m['nproc']}): "
      + (", ".join(f"{k} {v:.2f}" for k, v in fc.items()) or "–")
      + f". Runs waited {r.get('quiet_waited', 0):.0f} s in all for the CPUs to be free (--quiet-wait). "
      + ("**Other work competed for the CPUs: treat the numbers as perturbed.**"
                if any(v > 0.15 for v in fc.values()) else "Negligible."))
    stl = r.get("steal", {})
    if "steal_total" in r:
        w(f"- CPU steal (`/proc/stat`: time the hypervisor gave this machine's virtual CPUs to another guest; "
          f"no process here shows it, and it slows every measure): {r['steal_total']:.0f} CPU-seconds during the run; "
          f"per measure, in CPUs on average (of {m['nproc']}): "
          + (", ".join(f"{k} {v:.2f}" for k, v in stl.items()) or "–") + ". "
          + ("**The hypervisor took a large share of the CPUs: expect rates below this machine's best.**"
             if any(v > 0.15 for v in stl.values()) else "Negligible."))
    for note in b.notes:
        w(f"- Note: {note}")
    w("")
