"""The measures of bench/run.py, one module a section of BENCHMARKS.md or two, each a class of methods
that run.Bench mixes in beside cluster.BenchBase (the cluster, the tables, the phases):

- ingest.py: 1, ingest_event under pgbench against a plain INSERT;
- apply.py: 2 and 4, the worker draining one queue again and again, its memory sampled;
- latency.py: 3, ingest -> applied at a steady rate;
- peer.py: 5, the npm peer on the same deliveries;
- api.py: the Stripe stand-in of 6 to 8, started once, and the clients that measure its ceiling;
- backfill.py: 6, stripe_sync.backfill() against the stand-in's pre-built pages;
- backfill_paced.py: 6b, the same from a stand-in 300 ms away, as a share of the request budget's bound;
- provisioning.py: 7 and 8, signups provisioned and same-second ties re-read through the budget;
- profile.py: perf and pg_stat_statements over ingest, a drain and a backfill (--profile).
"""
