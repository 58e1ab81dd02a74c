"""Sections 6 to 8 of BENCHMARKS.md, the requests to Stripe's API (backfill, provisioning, re-reads of
same-second ties, all against the stand-in), and the profile. One function a section, each writing
into the Report (report.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from common import (BACKFILL_OBJECTS, BACKFILL_RATE_LIMIT, PACED_JITTER_MS, PACED_LATENCY_MS, PACED_RATES, PAGE_SIZE,
                    PROVISION_FREE_RATE, PROVISION_RATES, REQUEST_BURST, TARGET_BACKFILL_RATE, TARGET_PACED_SHARE,
                    TARGET_PROVISION_RATIO, TARGET_TIE_RATIO, TIE_RATES, fmt, median, runs_list, verdict)

if TYPE_CHECKING:
    from report import Report


def section_backfill(rep: Report) -> None:
    """6. Backfill."""
    r, a, w, summary, absent = rep.r, rep.a, rep.w, rep.summary, rep.absent
    bf = rep.heading("6. Backfill", "backfill")
    fsi = r.get("standin", {})
    w("`SELECT stripe_sync.backfill('customer')`, then `backfill('invoice')`, each a full run (no created filter) "
      "into emptied tables (`customers`, `invoices`, `invoice_line_items`, `sync_runs`, `sync_cursors`, `sync_slices` "
      "truncated, then CHECKPOINT, before every run), with `stripe_sync.backfill_workers` = "
      f"{bf.get('workers', 1) if bf else a.backfill_workers} (the CPUs) and then, from the same empty tables, with 1. "
      "With several, the job worker lists the first page, finds the oldest object by one-object probes "
      "(`limit=1&created[lt]=…`, about 30), cuts the rest into 4 slices of `created` time per worker and starts "
      "helper job workers; each pages its slices (`created[gte]`, `created[lt]`) and commits every page with its "
      "slice's cursor. With one, the job worker pages through "
      "`GET /v1/customers?limit=100[&starting_after=…]` (invoices: `/v1/invoices`, same parameters; no expand, no "
      "status filter for either), applies each page and commits it with its cursor, then reconciles (nothing to "
      "retrieve in an empty table). The API is the tests' stand-in (`stripe_sync_testkit.standin`, pgrx-tests/), a "
      "threaded stdlib HTTP server in its own process that built every page once at start (`add_pages`) from "
      "shared/stripe/openapi/fixtures3.json (fresh ids, emails, "
      "names, metadata, `created` decreasing; invoices with "
      f"{bf['lines'] if bf else 2} line items embedded and `lines.has_more` false, so no `/lines` requests) and "
      "answers each request with a dictionary look-up"
      + (f": {fsi.get('customers', 0):,} customers in {fsi.get('customer_pages')} pages "
         f"({fsi.get('customer_bytes', 0) / 1e6:.0f} MB), {fsi.get('invoices', 0):,} invoices in "
         f"{fsi.get('invoice_pages')} pages ({fsi.get('invoice_bytes', 0) / 1e6:.0f} MB)" if fsi else "")
      + ". (Its ordinary collections, the tests', are not usable for this: they sort, filter and deep-copy the whole "
      "collection for every page, O(collection) per page.) "
      f"**stripe_sync.api_rate_limit = {BACKFILL_RATE_LIMIT:,}** requests/s during these runs, so the request "
      "budget is not the bound (at Stripe's own 100 requests/s × 100 objects a backfill never receives more than "
      "10,000 objects/s); the server and our code are. The extension's client keeps its connection alive "
      "from page to page.")
    w("")
    w("**ours, call → return** = wall time of the `SELECT` (job worker start, every page, reconciliation, and the "
      "caller's 100 ms polling of `sync_runs`); **paging** = from the call until its `sync_runs` row counts every "
      "object committed (polled every 20 ms): listing and applying alone; **after the last page** = the rest "
      "(a full run's reconciliation, which looks for rows the listing did not return, the run's end, the caller's "
      "poll). A call that has not returned within its time limit (`--backfill-timeout`, default 10 × its time at "
      "the target, at least 60 s) is cancelled, which ends its job, and is not repeated. **Stand-in alone** = in the same run, just before ours, a sequential Python client "
      "(`crawl` in bench/measures/api.py, urllib, a new connection per request, where ours keeps its connection alive) fetching every page and finding the "
      "cursor by a string search: the stand-in's own ceiling (a lower bound of it: the client's overhead is in "
      "it); **+ json.loads** = the same client parsing every page with Python's json. CPU-seconds during our call: "
      "the job worker (its /proc sampled every 20 ms), all of PostgreSQL (the postmaster's process tree, the job "
      "worker included), the stand-in.")
    w("")
    if not absent("backfill", bf, [(f"Backfill, {obj}s (objects/s, call → return)", f"≥ {TARGET_BACKFILL_RATE:,} objects/s")
                                   for obj in BACKFILL_OBJECTS]):
        w("| object | measure | median | runs |")
        w("|---|---|---:|---|")
        for obj, d in bf["objects"].items():
            R, C, P = d["runs"], d["ceiling"], d["ceiling_parse"]
            if not R:
                continue
            m = lambda key, rows=R: median([x[key] for x in rows])  # noqa: E731
            runs = lambda key, rows=R, digits=0: runs_list([x[key] for x in rows], digits)  # noqa: E731
            cpu = lambda key: [x["cpu"][key] for x in R]  # noqa: E731
            late = [x for x in R if x["timed_out"]]
            label = f"{obj} ({R[0]['objects']:,}, {R[0]['pages']} pages)"
            call = (f"did not return within {late[0]['timeout']:.0f} s" if late else f"**{fmt(m('rate'))}**")
            w(f"| {label} | **ours, objects/s, call → return** ({bf.get('workers', 1)} job workers) | {call} | {runs('rate')} |")
            one = d.get("runs_one") or []
            if one:
                late_one = [x for x in one if x["timed_out"]]
                mone = median([x["rate"] for x in one if x["rate"]])
                w(f"| | ours with one job worker, objects/s, call → return | "
                  f"{'did not return in time' if late_one else fmt(mone)} | {runs_list([x['rate'] or 0 for x in one])} |")
                if mone and not late:
                    w(f"| | {bf.get('workers')} job workers / one | {m('rate') / mone:.2f}× | |")
            w(f"| | job workers that paged the run (`sync_runs.workers`) | {fmt(m('workers'))} | {runs('workers')} |")
            w(f"| | ours, call → return, s | {fmt(m('seconds'), 2) if not late else '> ' + fmt(late[0]['timeout'])} | {runs('seconds', digits=2)} |")
            w(f"| | ours, paging: objects/s, call → last page committed | {fmt(m('paging_rate'))} | {runs('paging_rate')} |")
            w(f"| | ours, paging: s (pages/s) | {fmt(m('paging_seconds'), 2)} ({fmt(m('pages_per_s'), 1)}) | {runs('paging_seconds', digits=2)} |")
            w(f"| | ours, after the last page (reconciliation, end of run, caller's poll), s | "
              f"{fmt(m('tail_seconds'), 2) if not late else '> ' + fmt(late[0]['timeout'] - (late[0]['paging_seconds'] or 0), 1)} | "
              f"{runs('tail_seconds', digits=2)} |")
            w(f"| | ours, call → job started, s | {fmt(m('job_start_seconds'), 3)} | {runs('job_start_seconds', digits=3)} |")
            w(f"| | stand-in alone, objects/s | {fmt(median([x['rate'] for x in C]))} | {runs_list([x['rate'] for x in C])} |")
            w(f"| | stand-in + json.loads, objects/s | {fmt(median([x['rate'] for x in P]))} | {runs_list([x['rate'] for x in P])} |")
            mo, mp, mc = m("rate"), m("paging_rate"), median([x["rate"] for x in C])
            w(f"| | ours / stand-in alone: call, paging | {fmt(100 * mo / mc, 1) + ' %' if mo else '–'}, "
              f"{fmt(100 * mp / mc, 1) + ' %' if mp else '–'} | |")
            w(f"| | CPU s, job worker: paging / after | {fmt(m('job_cpu_paging'), 2)} / {fmt(m('job_cpu_tail'), 2)} | "
              f"{runs('job_cpu_paging', digits=2)} / {runs('job_cpu_tail', digits=2)} |")
            busy = [x["job_cpu_paging"] / x["paging_seconds"] for x in R if x["job_cpu_paging"] and x["paging_seconds"]]
            w(f"| | job worker CPU busy while paging | {fmt(100 * median(busy), 0) + ' %' if busy else '–'} | "
              f"{', '.join(f'{100 * x:.0f} %' for x in busy) or '–'} |")
            faults = [x["cpu"]["job_faults"] for x in R if x["cpu"].get("job_faults") is not None]
            w(f"| | job worker's minor page faults (new memory touched; not changed by CPU steal) | "
              f"{fmt(median(faults)) if faults else '–'} | {runs_list(faults) if faults else '–'} |")
            w(f"| | CPU s over the call: all of PostgreSQL / stand-in | {fmt(median(cpu('postgres')), 2)} / "
              f"{fmt(median(cpu('stand_in')), 2)} | {runs_list(cpu('postgres'), 2)} / {runs_list(cpu('stand_in'), 2)} |")
            ok = (mo or 0) >= TARGET_BACKFILL_RATE and not late
            result = (f"did not return within {late[0]['timeout']:.0f} s" if late else f"{fmt(mo)} objects/s")
            summary.append((f"Backfill, {obj}s{' (' + str(bf['lines']) + ' lines each)' if obj == 'invoice' else ''}, "
                            f"objects/s (call → return, api_rate_limit {bf['rate_limit']:,}, "
                            f"backfill_workers {bf.get('workers', 1)})",
                            f"{result} (paging alone {fmt(mp)}/s; stand-in alone {fmt(mc)}/s)",
                            f"≥ {TARGET_BACKFILL_RATE:,} objects/s", verdict(ok)))
        w("")
        aa = "; ".join(f"{obj}: " + ", ".join(
            "/".join(("yes" if x["autoanalyzed"].get(t) else "no") for x in d["runs"]) + f" ({t})"
            for t in (BACKFILL_OBJECTS[obj][1],)) for obj, d in bf["objects"].items() if d["runs"])
        w("The full run's reconciliation (`src/backfill.rs`, `reconcile`) lists the table's rows that the listing "
          "did not return as those last written before the run started (`SELECT id FROM <table> WHERE … "
          "_last_event_at < <the run's start>`, one scan of the table); every listed object's row was written at "
          "its fetch time, after the start. The table was filled during the run and may not be analyzed yet "
          f"(autovacuum analyzed it during the run, per run: {aa}).")
        w("")
        reqs = "; ".join(f"{obj}: " + ", ".join(f"`{k}` {v:,}" for k, v in d["runs"][-1]["requests"].items())
                         for obj, d in bf["objects"].items() if d["runs"])
        w(f"Requests the stand-in answered in the last runs: {reqs}.")
    w("")


def section_backfill_paced(rep: Report) -> None:
    """6b. Backfill at Stripe's latency, through the request budget."""
    a, w, summary, absent = rep.a, rep.w, rep.summary, rep.absent
    bp = rep.heading("6b. Backfill at Stripe's latency, through the request budget", "backfill_paced")
    n = bp["standin"]["customers"] if bp else a.paced_objects
    w(f"`SELECT stripe_sync.backfill('customer', created_after => 'epoch')`, then `('invoice', …)`, into emptied "
      f"tables as in section 6, from a stand-in that answers every request {PACED_LATENCY_MS} ms ± {PACED_JITTER_MS} ms "
      "(uniform, seeded) after it arrived, as Stripe does across the Internet: the same pre-built pages "
      "(`bench/latency_standin.py`: the delay is slept in each connection's own thread, so 50 requests at once are "
      f"answered after about one delay), {n:,} customers and {n:,} invoices with {bp['lines'] if bp else 2} line items "
      "each. Every stripe_sync setting at its default (`backfill_workers` 1, the worker's catch-up on) but "
      f"`stripe_sync.api_rate_limit`: {' and '.join(map(str, PACED_RATES))} requests/s (the default, and Stripe's "
      f"live limit). **Bound** = `api_rate_limit` × {PAGE_SIZE} objects a page (Stripe's largest) objects/s; "
      "**share** = objects / the `SELECT`'s wall time, over the bound. "
      f"{n:,} objects are {n // PAGE_SIZE:,} pages: at least {n / PAGE_SIZE / PACED_RATES[0]:.1f} s at "
      f"{PACED_RATES[0]}/s and {n / PAGE_SIZE / PACED_RATES[-1]:.1f} s at {PACED_RATES[-1]}/s, so that a run's start "
      "(the job worker, the first answer's delay) and end (the last answer's delay, the caller's poll) are a small "
      f"part of it (at {PACED_RATES[-1]}/s a run cannot take less than (pages − {REQUEST_BURST}) / rate + one delay, "
      f"{((n // PAGE_SIZE - REQUEST_BURST) / PACED_RATES[-1] + PACED_LATENCY_MS / 1000):.2f} s: "
      f"{100 * n / PAGE_SIZE / PACED_RATES[-1] / ((n // PAGE_SIZE - REQUEST_BURST) / PACED_RATES[-1] + PACED_LATENCY_MS / 1000):.0f} % "
      "of the bound at best). **Requests** = what the stand-in answered from just before the call to its return: list pages "
      "(`(page)`, `(slice page)`) + overhead (probes, retrieves, `/lines`, the worker's catch-up). A run below "
      f"{100 * TARGET_PACED_SHARE / 2:.0f} % of the bound is not repeated (its pace is the stand-in's delay; "
      "more runs of several minutes would not move the median near the target).")
    w("")
    if not absent("backfill_paced", bp, [(f"Backfill at {PACED_LATENCY_MS} ms a request, {obj}s at {rate} requests/s: "
                                          "share of the budget's bound", f"≥ {TARGET_PACED_SHARE:.0%}")
                                         for obj in BACKFILL_OBJECTS for rate in PACED_RATES]):
        w("| type | rate limit | objects | median s | objects/s | bound | share | result | runs (share) | "
          "requests: list pages + overhead | objects/request | requests/s | job workers |")
        w("|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|")
        for obj, by_rate in bp["objects"].items():
            for rate, R in by_rate.items():
                if not R:
                    summary.append((f"Backfill at {PACED_LATENCY_MS} ms a request, {obj}s at {rate} requests/s: "
                                    "share of the budget's bound", "–", f"≥ {TARGET_PACED_SHARE:.0%}", "–"))
                    continue
                m = lambda key, rows=R: median([x[key] for x in rows])  # noqa: E731
                share, late = m("share"), any(x["timed_out"] for x in R)
                ok = share >= TARGET_PACED_SHARE and not late
                secs = f"> {R[0]['timeout']:.0f} (cancelled)" if late else fmt(m("seconds"), 2)
                shares = ", ".join(f"{100 * x['share']:.1f} %" for x in R)
                w(f"| {obj} | {rate}/s | {R[0]['objects']:,} | {secs} | {fmt(m('rate'))} | {R[0]['bound']:,} | "
                  f"**{100 * share:.1f} %** | {'**PASS**' if ok else '**FAIL**'} | {shares} | "
                  f"{fmt(m('list_pages'))} + {fmt(m('overhead'))} | {fmt(m('objects_per_request'), 1)} | "
                  f"{fmt(m('requests_per_s'), 1)} | {fmt(m('workers'))} |")
                summary.append((f"Backfill at {PACED_LATENCY_MS} ms a request, {obj}s"
                                f"{' (' + str(bp['lines']) + ' lines each)' if obj == 'invoice' else ''} at {rate} "
                                "requests/s: share of the budget's bound",
                                f"{100 * share:.1f} % ({fmt(m('rate'))} of {R[0]['bound']:,} objects/s)"
                                + (" (cancelled)" if late else ""),
                                f"≥ {TARGET_PACED_SHARE:.0%}", verdict(ok)))
        w("")
        last = "; ".join(f"{obj} at {rate}/s: " + ", ".join(f"`{k}` {v:,}" for k, v in R[-1]["counts"].items())
                         for obj, by_rate in bp["objects"].items() for rate, R in by_rate.items() if R)
        w(f"Requests the stand-in answered in the last run of each: {last}.")
    w("")


def section_provisioning(rep: Report) -> None:
    """7. Provisioning."""
    a, w, summary, absent = rep.a, rep.w, rep.summary, rep.absent
    pv = rep.heading("7. Provisioning", "provisioning")
    w("`public.users (id bigint primary key, email text not null, name text, stripe_customer_id text)` with "
      "`stripe_sync.enable_provisioning('public.users', 'id', 'email', 'name')`; each run empties users, "
      "`provisioning_jobs` and `customers`, then **one transaction** inserts "
      f"{pv['signups'] if pv else a.provision_signups:,} signups (`INSERT … SELECT generate_series`), whose AFTER INSERT "
      "trigger queues one job each and wakes the worker at COMMIT. The worker (attached to this database) handles "
      "20 jobs per round; for each it looks for the user's customer (`GET /v1/customers?email=…&limit=100`, empty "
      "here) and creates it (`POST /v1/customers`, form-encoded, with an Idempotency-Key), then writes the id back "
      "into users and mirrors the customer, in a transaction of its own. The clock starts just before COMMIT and "
      "stops when every users row holds its id (polled every 20 ms). The API is the same stand-in. "
      "Measured at `stripe_sync.api_rate_limit` = 25 (the default) and 100 (Stripe's live limit), and once at "
      f"{PROVISION_FREE_RATE:,}, where the budget is not the bound, for our code's own pace (the headroom above "
      "either budget); between runs the budget's bucket refills (burst of "
      f"{REQUEST_BURST}).")
    w("")
    w("**Bound** = what the request budget allows for the requests actually made: (requests − burst) / rate "
      "seconds (GCRA: the first burst goes at once, then one request per 1/rate s). **Ratio** = bound / measured "
      "time, i.e. measured customers/s over the budget's customers/s; 100 % means the budget alone sets the pace. "
      "**Stand-in alone**: in the same run, a sequential Python client doing the same two requests per signup "
      "(`provision_loop` in bench/measures/api.py): the signups/s the stand-in could serve.")
    w("")
    if not absent("provisioning", pv, [(f"Provisioning at {rate} requests/s: measured / request-budget bound",
                                        f"≥ {TARGET_PROVISION_RATIO:.0%}") for rate in PROVISION_RATES]):
        w("| api_rate_limit | measure | median | runs |")
        w("|---:|---|---:|---|")
        free = pv["runs"].get(str(pv.get("free_rate")), [])
        own = median([x["rate"] for x in free]) if free else None
        for rate, R in pv["runs"].items():
            if not R:
                continue
            m = lambda key, rows=R: median([x[key] for x in rows])  # noqa: E731
            runs = lambda key, rows=R, digits=1: runs_list([x[key] for x in rows], digits)  # noqa: E731
            if R is free:
                w(f"| {int(rate):,}/s (not the bound) | **commit → every row holds its id, s: our code's own pace** | "
                  f"**{fmt(m('seconds'), 1)}** | {runs('seconds')} |")
                w(f"| | customers/s, overall | {fmt(m('rate'), 1)} | {runs('rate')} |")
                w(f"| | requests/s that pace needs | {fmt(m('rate') * m('per_signup'), 0)} | |")
                w(f"| | commit → first id, s | {fmt(m('first_id_seconds'), 2)} | {runs('first_id_seconds', digits=2)} |")
                w(f"| | worker CPU, s (busy %) | {fmt(m('worker_cpu'), 1)} ({fmt(100 * median([x['worker_cpu'] / x['seconds'] for x in R]), 0)} %) | {runs('worker_cpu')} |")
                w(f"| | stand-in CPU, s | {fmt(m('stand_in_cpu'), 2)} | {runs('stand_in_cpu', digits=2)} |")
                continue
            w(f"| {rate}/s | **commit → every row holds its id, s** | **{fmt(m('seconds'), 1)}** | {runs('seconds')} |")
            w(f"| | request-budget bound, s | {fmt(m('bound_seconds'), 1)} | {runs('bound_seconds')} |")
            w(f"| | **ratio (bound / measured)** | **{fmt(100 * m('ratio'), 1)} %** | "
              f"{', '.join(f'{100 * x:.1f} %' for x in [y['ratio'] for y in R])} |")
            w(f"| | customers/s, overall (signups / time) | {fmt(m('rate'), 1)} | {runs('rate')} |")
            w(f"| | customers/s, steady (stand-in's first to last creation) | {fmt(m('create_rate'), 1)} | {runs('create_rate')} |")
            w(f"| | budget's customers/s (rate / requests per signup) | {fmt(float(rate) / m('per_signup'), 1)} | |")
            w(f"| | requests per signup | {fmt(m('per_signup'), 2)} | {runs('per_signup', digits=2)} |")
            w(f"| | commit → first id, s | {fmt(m('first_id_seconds'), 2)} | {runs('first_id_seconds', digits=2)} |")
            w(f"| | worker CPU, s (busy %) | {fmt(m('worker_cpu'), 1)} ({fmt(100 * median([x['worker_cpu'] / x['seconds'] for x in R]), 0)} %) | {runs('worker_cpu')} |")
            ratio = m("ratio")
            if own:
                w(f"| | headroom: our code's own pace / the budget's | {fmt(own / m('bound_rate'), 1)}× | |")
            summary.append((f"Provisioning, {R[0]['signups']:,} signups at {rate} requests/s: measured / request-budget bound",
                            f"{100 * ratio:.1f} % ({fmt(m('seconds'), 1)} s vs {fmt(m('bound_seconds'), 1)} s; "
                            f"{fmt(m('rate'), 1)} customers/s"
                            + (f"; our code alone {fmt(own, 0)}/s" if own else "") + ")",
                            f"≥ {TARGET_PROVISION_RATIO:.0%}", verdict(ratio >= TARGET_PROVISION_RATIO)))
        C = pv["ceiling"]
        w("")
        last_rate, last = next(((k, R_[-1]) for k, R_ in pv["runs"].items() if R_), (None, None))
        w(f"Stand-in alone: {fmt(median([x['rate'] for x in C]))} signups/s ({runs_list([x['rate'] for x in C])}; "
          f"{C[0]['signups']} signups per run), far above either budget."
          + (f" Last run at {last_rate}/s: requests {', '.join(f'`{k}` {v:,}' for k, v in last['counts'].items())}; jobs "
             f"{', '.join(f'{k} {v:,}' for k, v in last['jobs'].items())} after {last['attempts']:,} attempts; "
             f"{last['mirrored']:,} customers mirrored into stripe_sync.customers." if last else ""))
    w("")


def section_ties(rep: Report) -> None:
    """8. Same-second ties."""
    a, w, summary, absent = rep.a, rep.w, rep.summary, rep.absent
    tv = rep.heading("8. Same-second ties, re-read at the API's pace", "ties")
    w(f"{tv['ties'] if tv else a.tie_customers:,} customers of the stand-in each get two `customer.updated` "
      "events of one second (ingested, then applied by the worker): Stripe's timestamps cannot order them, so the "
      "apply records a re-read request per customer (`stripe_sync.refresh_requests`), and the worker's re-read job "
      "(`backend_type 'stripe_sync job'`, started when there is something to re-read) fetches each customer again "
      "through the shared request budget. The clock starts when every event is applied and stops when no request "
      "is left and every customer's row was written by its fetch. **Bound** = N / `api_rate_limit` seconds (the "
      f"budget's bucket lets a burst of {REQUEST_BURST} go first, so a run can beat it); target: within "
      f"{TARGET_TIE_RATIO}× the bound. (0.6.0's worker re-read at most 20 objects every 5 s, whatever the budget.)")
    w("")
    if not absent("ties", tv, [(f"Ties at {rate} requests/s: settled / request-budget bound", f"≤ {TARGET_TIE_RATIO}×")
                               for rate in TIE_RATES]):
        w("| api_rate_limit | settled, s (median) | runs | bound, s | measured / bound | re-reads asked when the apply ended |")
        w("|---:|---:|---|---:|---:|---|")
        for rate, R in tv["runs"].items():
            if not R:
                continue
            sec = median([x["seconds"] for x in R])
            ratio = median([x["ratio"] for x in R])
            w(f"| {rate}/s | **{fmt(sec, 1)}** | {runs_list([x['seconds'] for x in R], 1)} | {fmt(R[0]['bound'], 1)} | "
              f"**{ratio:.2f}×** | {runs_list([x['asked'] for x in R])} |")
            summary.append((f"Ties: {tv['ties']:,} same-second pairs re-read at {rate} requests/s, settled / budget bound",
                            f"{ratio:.2f}× ({fmt(sec, 1)} s vs {fmt(R[0]['bound'], 1)} s)",
                            f"≤ {TARGET_TIE_RATIO}×", verdict(ratio <= TARGET_TIE_RATIO)))
    w("")


def section_profile(rep: Report) -> None:
    """The profile, when one was taken or asked for."""
    r, w, not_measured = rep.r, rep.w, rep.not_measured
    if r.get("profile") or "profile" in r.get("skipped", {}) or "profile" in r.get("failed", {}):
        w("## Profile")
        w("")
        miss = not_measured("profile")
        if miss:
            w(miss)
        else:
            w("Taken after the measures, with `pg_stat_statements` (track = all, so the statements that "
              "`ingest_event` and the worker run through SPI are counted too) and `perf record -g` (on-CPU samples). "
              "Ingest: an 8-client pgbench run of 6 s, perf over all postgres processes; apply: the worker draining the "
              "big queue alone (`apply_workers = 1`; slower than in section 2 because of the tracing); backfill: the job worker of one "
              "`backfill('invoice')` as in section 6, from its start to its exit. Full perf reports: bench/out/profile-*.txt.")
            for k, pr_ in r["profile"].items():
                w("")
                w(f"### {k}: time per SQL statement")
                w("")
                w("| statement | calls | plan ms | exec ms | ms per call |")
                w("|---|---:|---:|---:|---:|")
                for st_ in pr_.get("statements", [])[:10]:
                    q = st_["query"].replace("|", "/").replace("`", "'")
                    q = (q[:150] + " …") if len(q) > 150 else q
                    per = (st_["plan_ms"] + st_["exec_ms"]) / max(1, st_["calls"])
                    tag = " (baseline run, plain INSERT)" if st_.get("baseline") else ("" if st_["toplevel"] else " (nested)")
                    w(f"| `{q}`{tag} | {st_['calls']:,} | {st_['plan_ms']:,.0f} | "
                      f"{st_['exec_ms']:,.0f} | {per:.3f} |")
                w("")
                w(f"### {k}: perf, self time by function (top 15)")
                w("")
                if pr_.get("by_object"):
                    w("Samples by object: " + ", ".join(f"{d} {v:.0f} %" for d, v in pr_["by_object"][:6]) + ".")
                    w("")
                w("| self % | object | function |")
                w("|---:|---|---|")
                for t in pr_.get("self", [])[:15]:
                    w(f"| {t['pct']:.1f} | {t['dso']} | `{t['symbol'].replace('|', '/')}` |")
                if len(pr_.get("inclusive", [])) >= 5 or (k == "backfill" and pr_.get("inclusive")):
                    w("")
                    w(f"### {k}: perf, time inside the extension's functions (inclusive, top 12)" if k != "backfill" else
                      f"### {k}: perf, time inside chosen PostgreSQL functions (inclusive)")
                    w("")
                    w("| incl. % | self % | function |")
                    w("|---:|---:|---|")
                    for t in pr_["inclusive"][:12]:
                        w(f"| {t['pct']:.1f} | {t['self']:.1f} | `{t['symbol'].replace('|', '/')[:120]}` |")
        w("")
