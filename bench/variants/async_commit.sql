-- bench/lab.py variant: every commit of the cluster asynchronous (synchronous_commit = off), to
-- measure what the worker's batches would gain if only they committed so.
-- Since f0f432e the appliers' batches commit so by themselves: this variant measured that change
-- on the builds before it (bench/CHANGES.md, Apply).
ALTER SYSTEM SET synchronous_commit = off; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
-- undo:
ALTER SYSTEM RESET synchronous_commit; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
