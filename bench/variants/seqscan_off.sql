-- bench/lab.py variant: sequential scans off for every session (enable_seqscan), to see whether a
-- backfill's job worker, which keeps its plans from the first page on (made while the tables were
-- empty), scans a growing table (tried for the backfill: no gain).
ALTER SYSTEM SET enable_seqscan = off; SELECT pg_reload_conf(); SELECT pg_sleep(0.3);
-- undo:
ALTER SYSTEM RESET enable_seqscan; SELECT pg_reload_conf(); SELECT pg_sleep(0.3);
