"""Sections 1 to 5 of BENCHMARKS.md, the path of a webhook: ingest, apply, latency, memory, and the
same deliveries to the npm peer. One function a section, each writing into the Report (report.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from common import (CLIENTS, TARGET_APPLY_RATE, TARGET_INGEST_RATIO, TARGET_MEMORY_MB, TARGET_P99_MS,
                    TARGET_PEER_RATIO, fmt, median, runs_list, verdict)
from procstat import cpu_per_event_us

if TYPE_CHECKING:
    from report import Report


def section_ingest(rep: Report) -> None:
    """1. Ingest, and ingest while the worker drains the same database."""
    r, w, summary, absent = rep.r, rep.w, rep.summary, rep.absent
    ing = rep.heading("1. Ingest", "ingest")
    w("pgbench (`-M prepared`, `-T` duration per run) with a custom script. Each transaction draws the next row "
      "of `bench.deliveries` from a sequence (`WHERE n = (SELECT nextval(...))`), so every event id is ingested "
      "exactly once (all `queued`, no `duplicate`; checked after each run against the rows stored). "
      "**ours**: `SELECT stripe_sync.ingest_event(payload, signature)`; **plain**: the same payloads "
      "`INSERT INTO bench.plain_events (id, data) SELECT id, payload::jsonb ... ON CONFLICT (id) DO NOTHING` "
      "into a bare `(id text primary key, data jsonb)` table (the id is given, not parsed). Each commit is durable "
      "(synchronous_commit on, fsync on). The worker is attached to another database during these runs "
      "(ingest still wakes it after each commit), so it does not drain while ingest is measured.")
    w("")
    if not absent("ingest", ing, [("Ingest, ours / plain INSERT at 8 clients", f"≥ {TARGET_INGEST_RATIO:.0%}")]):
        w(f"Duration {ing['seconds']} s per run.")
        w("")
        w("| clients | ours events/s (median) | ours runs | plain INSERT events/s (median) | plain runs | ours / plain | target | result |")
        w("|---:|---:|---|---:|---|---:|---|---|")
        for c in CLIENTS:
            o, p = median(ing["runs"][c]["ours"]), median(ing["runs"][c]["plain"])
            ratio = o / p if o and p else None
            target = f"≥ {TARGET_INGEST_RATIO:.0%}" if c == 8 else "–"
            ok = (ratio >= TARGET_INGEST_RATIO) if (c == 8 and ratio is not None) else None
            w(f"| {c} | {fmt(o)} | {runs_list(ing['runs'][c]['ours'])} | {fmt(p)} | {runs_list(ing['runs'][c]['plain'])} "
              f"| {fmt(100 * ratio, 1) + ' %' if ratio else '–'} | {target} | {verdict(ok)} |")
            if c == 8:
                summary.append(("Ingest, ours / plain INSERT at 8 clients", f"{100 * ratio:.1f} % ({fmt(o)} vs {fmt(p)} events/s)" if ratio else "–",
                                f"≥ {TARGET_INGEST_RATIO:.0%}", verdict(ok)))
    w("")
    iw = r.get("ingest_worker")
    w("### Ingest while the worker drains the same database")
    w("")
    if not absent("ingest_worker", iw, default="Not measured (`--skip-worker-ingest`)."):
        w(f"The realistic case: same script, the worker applying concurrently on the same 2 CPUs, with the "
          f"extension's default `stripe_sync.apply_workers` (a helper beside it while its batches come back full). "
          f"Duration {iw['seconds']} s per run; 'applied' is the share of the run's events the worker had applied when the run ended.")
        w("")
        w("| clients | ours events/s (median) | runs | vs plain INSERT (worker idle, above) | applied by the end (median) |")
        w("|---:|---:|---|---:|---:|")
        for c in CLIENTS:
            o = median(iw["runs"][c])
            p = median(ing["runs"][c]["plain"]) if ing else None
            ratio = f"{100 * o / p:.1f} %" if o and p else "–"
            w(f"| {c} | {fmt(o)} | {runs_list(iw['runs'][c])} | {ratio} | {100 * median(iw['applied_fraction'][c]):.0f} % |")
    w("")


def section_apply(rep: Report) -> None:
    """2. Apply."""
    r, w, summary, absent = rep.r, rep.w, rep.summary, rep.absent
    ap = rep.heading("2. Apply", "apply")
    qf = r.get("queue_fill", {})
    w("The queue is made once, by `ingest_event` on the stream's deliveries (redeliveries and reorderings included) "
      "while the worker is attached to another database"
      + (f": {qf['deliveries']:,} deliveries gave {qf['queued']:,} queued events and {qf['duplicates']:,} duplicates, "
         f"at {qf['rate']:,.0f} deliveries/s in 2 sessions" if qf else "")
      + ". Each run then starts from an exact copy of that queue, put into `stripe_sync.events` in **one "
      "transaction** (every event but one copied; the last one ingested by `ingest_event`, whose commit wakes the "
      "worker as a real delivery does), so the worker sees nothing until COMMIT. The clock starts just before "
      "COMMIT and stops when no event is pending any more (polled after each batch's `NOTIFY stripe_sync` and at least every 250 ms; `stripe_sync.status.pending` = 0 "
      "checked after). Rate = events queued / drain time. The worker's CPU per event (utime + stime from "
      "/proc, over the drain) compares two builds better than the rate: other processes and CPU steal do not change it. "
      "Before the runs, one drain of the same queue is not counted (warm-up; its numbers are below the table): the "
      "cluster was just started, and the first use of each shared buffer costs a page fault, which a server that has "
      "been running has long paid. **Baseline**: the same events (the queue's `jsonb` rows) "
      "upserted set-based into one plain table in one committed statement: "
      "`INSERT INTO bench.plain_objects SELECT DISTINCT ON (object id) ... ORDER BY object id, created DESC "
      "ON CONFLICT (id) DO UPDATE ... WHERE older`.")
    w("")
    if not absent("apply", ap and ap.get("runs"), [("Apply (worker drain)", f"≥ {TARGET_APPLY_RATE:,} events/s")]):
        rates = [x["rate"] for x in ap["runs"]]
        base = [x["rate"] for x in ap["baseline"]]
        mo, mb_ = median(rates), median(base)
        par = ap.get("parallel") or []
        n_aw, dflt = ap["apply_workers"], ap.get("apply_workers_default", 1)
        # The target is the drain as users get it: with the extension's default apply_workers.
        one_is_default = dflt == 1
        par_is_default = bool(par) and n_aw == dflt

        def target(is_default: bool) -> str:
            return f"≥ {TARGET_APPLY_RATE:,}" if is_default else "–"

        def result(rate: float, is_default: bool) -> str:
            return verdict(rate >= TARGET_APPLY_RATE) if is_default else "–"

        last = ap["runs"][-1]
        w("| measure | median | runs | target | result |")
        w("|---|---:|---|---|---|")
        if par:
            prates = [x["rate"] for x in par]
            mp = median(prates)
            helpers = f"the worker + {n_aw - 1} helper{'s' if n_aw > 2 else ''}"
            w(f"| **ours: {last['queued']:,} events drained, `stripe_sync.apply_workers = {n_aw}`"
              f"{' (the default)' if par_is_default else ''}** ({helpers}), events/s "
              f"| **{fmt(mp)}** | {runs_list(prates)} | {target(par_is_default)} | {result(mp, par_is_default)} |")
            w(f"| … drain time, s | {fmt(median([x['seconds'] for x in par]), 2)} | {runs_list([x['seconds'] for x in par], 2)} | | |")
            w(f"| … helpers seen running at once (max) | {max(x['helpers_seen'] for x in par)} | {', '.join(str(x['helpers_seen']) for x in par)} | | |")
            w(f"| … / baseline; / one applier | {100 * mp / mb_:.1f} %; {mp / mo:.2f}× | | | |")
        w(f"| ours: {last['queued']:,} events drained by the worker alone (`apply_workers = 1`"
          f"{', the default' if one_is_default else ''}), events/s | {fmt(mo)} | {runs_list(rates)} "
          f"| {target(one_is_default)} | {result(mo, one_is_default)} |")
        w(f"| … drain time, s | {fmt(median([x['seconds'] for x in ap['runs']]), 2)} | {runs_list([x['seconds'] for x in ap['runs']], 2)} | | |")
        cpu = [1e6 * x["worker_cpu_s"] / x["queued"] for x in ap["runs"] if x.get("worker_cpu_s") is not None]
        if cpu:
            w(f"| … the worker's CPU per event, µs | {fmt(median(cpu))} | {runs_list(cpu)} | | |")
        w(f"| baseline: set-based upsert, events/s | {fmt(mb_)} | {runs_list(base)} | | |")
        w(f"| ours alone / baseline | {100 * mo / mb_:.1f} % | | | |")
        w("")
        wu = ap.get("warmup")
        if wu:
            faults = [x["worker_faults"] for x in ap["runs"] if x.get("worker_faults") is not None]
            w(f"Warm-up drain (not counted, the worker alone): {fmt(wu['rate'])} events/s, the worker's CPU {cpu_per_event_us(wu)} µs "
              f"per event, {'?' if wu.get('worker_faults') is None else format(wu['worker_faults'], ',')} page faults in the worker"
              + (f" (the measured runs: {', '.join(f'{x:,}' for x in faults)})" if faults else "") + ".")
            w("")
        w(f"`stripe_sync.apply_workers` (default {dflt}) lets the worker start helpers (`backend_type 'stripe_sync apply'`) "
          "while a batch comes back full; each claims its own batches with `FOR UPDATE SKIP LOCKED` and exits when "
          "a batch comes back short, so a steady stream (short batches) is applied by the worker alone. Each run of "
          "the table alternates: the worker alone (`apply_workers = 1`, set for these drains: it then applies every "
          "event itself, and its CPU per event compares builds), the baseline"
          + (f", then {n_aw} appliers" if par else "") + ", all from the same queue. The baseline is one statement, "
          "so it uses one CPU.")
        w("")
        ev = last["counts"]["events"]
        w(f"Last run: after the drain, events by status: {', '.join(f'{k} {v:,}' for k, v in sorted(ev.items()))}; rows written: "
          f"{', '.join(f'{k} {v:,}' for k, v in last['counts']['rows'].items()) or 'none'}."
          + (" Events whose object type has no table yet are marked `skipped` (cheap), so while only some tables "
             "exist the rate overstates the full apply." if ev.get("skipped") else ""))
        if par:
            summary.append((f"Apply (worker drain), `stripe_sync.apply_workers = {n_aw}`"
                            f"{' (the default)' if par_is_default else ''}",
                            f"{fmt(mp)} events/s ({100 * mp / mb_:.0f} % of the set-based upsert, {mp / mo:.2f}× the worker alone)",
                            f"≥ {TARGET_APPLY_RATE:,} events/s" if par_is_default else "–",
                            result(mp, par_is_default)))
        summary.append((f"Apply, the worker alone (`apply_workers = 1`{', the default' if one_is_default else ''})",
                        f"{fmt(mo)} events/s ({100 * mo / mb_:.0f} % of the set-based upsert)",
                        f"≥ {TARGET_APPLY_RATE:,} events/s" if one_is_default else "–", result(mo, one_is_default)))
    w("")


def section_latency(rep: Report) -> None:
    """3. Latency."""
    a, w, summary, absent = rep.a, rep.w, rep.summary, rep.absent
    lt = rep.heading("3. Latency", "latency")
    w(f"Ingest → applied at a steady {a.latency_rate:.0f} events/s for {a.latency_seconds:.0f} s (4 client connections "
      "sending on a fixed schedule, each `ingest_event` its own committed transaction, the worker draining). "
      "Latency = arrival on a client `LISTEN stripe_sync` connection of the batch notification naming the event − "
      "the client's send time (same monotonic clock). The DB-side column is `processed_at − received_at` (both "
      "transaction start times, so it leaves out the apply's own duration and commit).")
    w("")
    if not absent("latency", lt and lt.get("runs"), [("Latency p99 (ingest → applied)", f"< {TARGET_P99_MS:.0f} ms")]):
        R = lt["runs"]
        p50, p99 = median([x["p50_ms"] for x in R]), median([x["p99_ms"] for x in R])
        ok = p99 < TARGET_P99_MS
        w("| measure | median | runs | target | result |")
        w("|---|---:|---|---|---|")
        w(f"| p50, ms | {fmt(p50, 1)} | {runs_list([x['p50_ms'] for x in R], 1)} | | |")
        w(f"| p90, ms | {fmt(median([x['p90_ms'] for x in R]), 1)} | {runs_list([x['p90_ms'] for x in R], 1)} | | |")
        w(f"| p99, ms | {fmt(p99, 1)} | {runs_list([x['p99_ms'] for x in R], 1)} | < {TARGET_P99_MS:.0f} | {verdict(ok)} |")
        w(f"| max, ms | {fmt(median([x['max_ms'] for x in R]), 1)} | {runs_list([x['max_ms'] for x in R], 1)} | | |")
        w(f"| DB-side p50 / p99, ms | {fmt(median([x['db_p50_ms'] for x in R]), 1)} / {fmt(median([x['db_p99_ms'] for x in R]), 1)} | | | |")
        w(f"| achieved send rate, events/s | {fmt(median([x['achieved_rate'] for x in R]))} | {runs_list([x['achieved_rate'] for x in R])} | | |")
        w("")
        w(f"Events without a notification naming them: {', '.join(str(x['missing']) for x in R)} "
          f"(truncated notifications: {', '.join(str(x['truncated_notifications']) for x in R)}).")
        summary.append(("Latency p99 (ingest → applied, 500/s)", f"{fmt(p99, 1)} ms (p50 {fmt(p50, 1)} ms)",
                        f"< {TARGET_P99_MS:.0f} ms", verdict(ok)))
    w("")


def section_memory(rep: Report) -> None:
    """4. Memory (the apply's drains)."""
    w, summary, absent = rep.w, rep.summary, rep.absent
    ap = rep.heading("4. Memory", "apply")
    w("The worker's `/proc/<pid>/status` sampled every 50 ms while it drains alone (`apply_workers = 1`: every "
      "event goes through it, its worst case; pid from `pg_stat_activity`, "
      "backend_type `stripe_sync worker`). `VmRSS` includes the shared buffers the worker touches (`RssShmem`, "
      "shared with every backend, bounded by shared_buffers) and the mapped library (`RssFile`); the worker's own "
      "memory is `RssAnon`, which is what the target is judged on. `VmHWM` is the peak VmRSS since the worker started.")
    w("")
    if not absent("apply", ap and ap.get("runs"), [("Worker memory (RssAnon peak)", f"< {TARGET_MEMORY_MB:.0f} MB")]):
        w("| queue | start RssAnon MB | peak RssAnon MB (median) | rise in the drain MB (peak − start) | end RssAnon MB | peak VmRSS MB | peak RssShmem MB | peak RssFile MB | VmHWM MB at end | runs (peak RssAnon) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        rows_mem, rises = [], []
        for R in (ap.get("memory_small"), ap["runs"]):
            if not R:
                continue
            label = f"{R[0]['queued']:,} events"
            M = [x["memory"] for x in R]
            peak = median([x["peak_anon_mb"] for x in M])
            rows_mem.append(peak)
            rise = median([x["peak_anon_mb"] - x["start_anon_mb"] for x in M])
            rises.append(rise)
            w(f"| {label} | {fmt(median([x['start_anon_mb'] for x in M]), 1)} | {fmt(peak, 1)} | {fmt(rise, 1)} | "
              f"{fmt(median([x['end_anon_mb'] for x in M]), 1)} | {fmt(median([x['peak_rss_mb'] for x in M]), 1)} | "
              f"{fmt(median([x['peak_shmem_mb'] for x in M]), 1)} | {fmt(median([x['peak_file_mb'] for x in M]), 1)} | "
              f"{fmt(median([x['hwm_mb'] for x in M]), 1)} | {runs_list([x['peak_anon_mb'] for x in M], 1)} |")
        peak_big = rows_mem[-1]
        growth = rows_mem[-1] - rows_mem[0] if len(rows_mem) == 2 else None
        # What a drain adds to the worker's memory, with a queue 5 times as long: the test of
        # "does not grow with the queue". The peaks themselves also carry what the worker kept from
        # the drains before (caches, the allocator's high water), whatever the queue.
        rise_growth = rises[-1] - rises[0] if len(rises) == 2 else None
        grows = rise_growth is not None and rise_growth >= 4
        ok = peak_big < TARGET_MEMORY_MB and not grows
        w("")
        if growth is not None:
            w(f"From the small to the large queue, the rise during a drain changes by {rise_growth:+.1f} MB "
              f"({'GROWS with the queue' if grows else 'does not grow with the queue'}; the apply works in batches of "
              f"stripe_sync.batch_size), and the peak by {growth:+.1f} MB (the worker runs the small queues first, and "
              "keeps its caches from drain to drain).")
        summary.append((f"Worker memory (RssAnon peak, {ap['runs'][0]['queued']:,}-event queue)",
                        f"{fmt(peak_big, 1)} MB" + (f" (rise in a drain {rises[-1]:+.1f} MB, small queue {rises[0]:+.1f} MB)"
                                                    if rise_growth is not None else ""),
                        f"< {TARGET_MEMORY_MB:.0f} MB, not growing with the queue", verdict(ok)))
    w("")


def section_peer(rep: Report) -> None:
    """5. Against the peer."""
    a, w, summary, absent = rep.a, rep.w, rep.summary, rep.absent
    pr = rep.heading("5. Against the peer", "peer")
    if a.skip_peer:
        w("Not measured (`--skip-peer`).")
    elif not absent("peer", pr, [("Against the peer (stripe-experiment-sync)", f"≥ {TARGET_PEER_RATIO:.0f}×")]):
        w(f"The npm package **stripe-experiment-sync {pr['version']}** (installed from bench/peer/package-lock.json), "
          "driven by `bench/peer/drive.mjs`: `StripeSync.create({poolConfig, stripeWebhookSecret, stripeAccountId})` "
          "then `sync.webhook.processWebhook(body, signature)` for each delivery (it verifies the signature, then "
          "upserts the object into its table with a timestamp guard), in its own database `peer` of the same cluster, "
          "after its own migrations. Those migrations download Stripe's OpenAPI spec3.json from GitHub to generate "
          "the tables; with no internet here they are given `openApiSpecPath` pointing to a spec written from "
          "shared/stripe/openapi/resources.json (the top-level properties of the same resources, current API version), "
          "so its tables get one generated column per top-level property, as from the real spec.")
        w("")
        w(f"Stream: the first {pr['deliveries']:,} deliveries of the stream (redeliveries and reorderings included), "
          f"restricted to the object types its webhook handler routes"
          f"{' (dropped: ' + ', '.join(f'{k} {v}' for k, v in pr['dropped'].items()) + ')' if pr['dropped'] else ' (none dropped)'}; "
          f"event types: {', '.join(pr['types'])}. "
          "With its defaults (`revalidateObjectsViaStripeApi` unset, `autoExpandLists` and `backfillRelatedEntities` "
          "false) it refetches nothing; set, it would retrieve every listed object type from the API unless in a final "
          "state, list invoice lines, and fetch missing customers/products. Its Stripe client is pointed at a counting "
          f"stub on 127.0.0.1: **{pr.get('api_requests', '?')} API requests** were made.")
        w("")
        w("**ours** = the same deliveries to `stripe_sync.ingest_event` from the same Node process and `pg` driver "
          "(same socket, same number of callers), timed from the first delivery until every ingest returned **and** the "
          "worker left nothing pending; **peer** = from the first delivery until every `processWebhook` resolved "
          "(its writes are done then); **durable INSERT** = the same deliveries from the same process, driver and "
          "callers, each one `INSERT INTO bench.node_floor (id, body) VALUES ($1, $2) ON CONFLICT (id) DO "
          "NOTHING` into a bare `(id text primary key, body text)` table, its own commit (the id taken from the "
          "payload before the clock starts; no signature check, no parsing, no queue, no apply): less than any "
          "receiver that stores each delivery durably before it answers must do, so its ratio to the peer is, up to "
          "the noise, the most that such a receiver, ours or any, can reach against the peer in this run. The "
          "three are run in turn, in alternating order, each from emptied tables after a CHECKPOINT.")
        w("")
        w("| callers | ours deliveries/s (median) | ours runs | ours, ingest alone /s | peer deliveries/s (median) | peer runs "
          "| durable INSERT /s (median) | its runs | ours / peer | durable INSERT / peer | target | result |")
        w("|---:|---:|---|---:|---:|---|---:|---|---:|---:|---|---|")
        worst = None
        floor_worst = None
        for conc in ("1", "8"):
            o = [x["rate"] for x in pr["runs"][conc]["ours"]]
            p = [x["rate"] for x in pr["runs"][conc]["peer"]]
            mo, mp = median(o), median(p)
            ratio = mo / mp if mo and mp else None
            ok = ratio >= TARGET_PEER_RATIO if ratio else None
            worst = ratio if worst is None or (ratio is not None and ratio < worst) else worst
            oi = median([x["deliveries"] / x["ingest_seconds"] for x in pr["runs"][conc]["ours"]])
            fl = [x["rate"] for x in pr["runs"][conc].get("floor", [])]
            mf = median(fl) if fl else None
            fratio = mf / mp if mf and mp else None
            if fratio is not None and (floor_worst is None or fratio < floor_worst):
                floor_worst = fratio
            w(f"| {'1 (sequential)' if conc == '1' else conc} | {fmt(mo)} | {runs_list(o)} | {fmt(oi)} | {fmt(mp)} | {runs_list(p)} | "
              f"{fmt(mf)} | {runs_list(fl) if fl else '–'} | {fmt(ratio, 1)}× | {fmt(fratio, 1)}× | "
              f"≥ {TARGET_PEER_RATIO:.0f}× | {verdict(ok)} |")
        last_o, last_p = pr["runs"]["8"]["ours"][-1], pr["runs"]["8"]["peer"][-1]
        w("")
        w(f"Last 8-caller runs, rows written: peer {', '.join(f'{k} {v:,}' for k, v in last_p.get('rows', {}).items())} "
          f"(it kept the newer row {last_p.get('stale_skips', 0):,} times); ours events "
          f"{', '.join(f'{k} {v:,}' for k, v in sorted(last_o['counts']['events'].items()))}, rows "
          f"{', '.join(f'{k} {v:,}' for k, v in last_o['counts']['rows'].items()) or 'none'}."
          + (" Ours skipped the events whose object type it does not mirror yet, which flatters ours."
             if last_o["counts"]["events"].get("skipped") else ""))
        if floor_worst is not None:
            w("")
            w(f"A receiver that only stores each delivery durably, through the same driver, reaches "
              f"{fmt(floor_worst, 1)}× the peer at worst (of 1 and 8 callers) in this run"
              + (f": below the {TARGET_PEER_RATIO:.0f}× target, which no receiver that commits each delivery "
                 "before it answers can reach on this machine." if floor_worst < TARGET_PEER_RATIO else "."))
        summary.append(("Against the peer (stripe-experiment-sync), worst of 1 and 8 callers",
                        f"{fmt(worst, 1)}×" + (f" (a bare durable INSERT of each delivery: {fmt(floor_worst, 1)}×)"
                                               if floor_worst is not None else ""),
                        f"≥ {TARGET_PEER_RATIO:.0f}×",
                        verdict(worst >= TARGET_PEER_RATIO if worst else None)))
    w("")
