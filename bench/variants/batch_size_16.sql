-- bench/lab.py variant: batches of 16 events (stripe_sync.batch_size), as a steady stream gives the
-- worker: a drain of many small batches, where what each batch costs besides its events shows.
ALTER SYSTEM SET stripe_sync.batch_size = 16; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
-- undo:
ALTER SYSTEM RESET stripe_sync.batch_size; SELECT pg_reload_conf(); SELECT pg_sleep(0.5);
