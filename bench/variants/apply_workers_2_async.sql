-- bench/lab.py variant: apply_workers_2.sql with every commit asynchronous (async_commit.sql).
-- Since f0f432e the appliers' batches commit so by themselves: this variant measured that change
-- on the builds before it (bench/CHANGES.md, Apply).
ALTER SYSTEM SET stripe_sync.apply_workers = 2; ALTER SYSTEM SET synchronous_commit = off; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
-- undo:
ALTER SYSTEM SET stripe_sync.apply_workers = 1; ALTER SYSTEM RESET synchronous_commit; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
