-- JIT off for the whole cluster (PostgreSQL's default is on): since 0.6.0 the
-- apply's batches set jit = off themselves, so this should change nothing;
-- with 0.5.0 (--package) it is the difference issue 26 measured.
ALTER SYSTEM SET jit = off;
SELECT pg_reload_conf();
-- undo:
ALTER SYSTEM RESET jit;
SELECT pg_reload_conf();
