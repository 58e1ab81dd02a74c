-- bench/lab.py variant: the worker and one apply helper (stripe_sync.apply_workers = 2).
ALTER SYSTEM SET stripe_sync.apply_workers = 2; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
-- undo:
ALTER SYSTEM SET stripe_sync.apply_workers = 1; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
