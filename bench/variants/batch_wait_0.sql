-- bench/ingest_drain.py variant: the worker claims again as soon as ingest wakes it
-- (stripe_sync.batch_wait = 0, what it did before 3f8a849).
ALTER SYSTEM SET stripe_sync.batch_wait = 0; SELECT pg_reload_conf(); SELECT pg_sleep(0.3);
-- undo:
ALTER SYSTEM RESET stripe_sync.batch_wait; SELECT pg_reload_conf(); SELECT pg_sleep(0.3);
