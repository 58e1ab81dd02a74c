-- stripe_sync 0.5.0: appliers draining the queue together find their own
-- share of it in the pending index.
-- Both ALTER EXTENSION stripe_sync UPDATE and a fresh install run this file
-- (sql/README.md).
--
-- While a backlog lasts, the worker and its apply helpers
-- (stripe_sync.apply_workers) each claim one share of the queue: the events
-- whose object's share key, hashtext(coalesce(object_id, id)), falls in the
-- applier's range of it (crates/core/src/shares.rs). Every event of one
-- object has the same key, so two appliers never wait on each other's rows.
-- Until 0.4.0 the share was a filter on the table's row: every claim read the
-- rows of the other shares too, in the index's order, to throw them away.
-- The key is now the index's last column, and the claim's range a condition
-- on it, which the index scan checks on its own entries: the claim reads
-- only its own share's rows and keeps the oldest-first order.
--
-- The index holds only the pending events, but building it reads the whole
-- events table, and ingest waits until the update commits (a delivery that
-- times out meanwhile is not acknowledged, so Stripe sends it again). The new
-- index is built beside the old one, which is dropped only once the build is
-- done: the drop locks out readers too, but only for the moment before the
-- commit, not for the build. On a long event log, purge first
-- (stripe_sync.purge_events) or update in a quiet hour.

-- Only claimable rows are indexed: the index stays small however long the log grows.
CREATE INDEX events_pending_share_idx
    ON stripe_sync.events (created, id, hashtext(coalesce(object_id, id)))
 WHERE status = 'pending';
DROP INDEX stripe_sync.events_pending_idx;
ALTER INDEX stripe_sync.events_pending_share_idx RENAME TO events_pending_idx;
COMMENT ON INDEX stripe_sync.events_pending_idx IS
  'The queue: pending events oldest first, with their share key (hashtext(coalesce(object_id, id))) last, so that an applier claims its share from the index alone.';
