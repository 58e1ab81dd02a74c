-- bench/ingest_drain.py variant: event bodies stored out of line (TOAST) from 128 bytes on, so that
-- marking an event done copies a pointer to its body instead of the body (tried, dropped).
ALTER TABLE stripe_sync.events SET (toast_tuple_target = 128);
-- undo:
ALTER TABLE stripe_sync.events RESET (toast_tuple_target);
