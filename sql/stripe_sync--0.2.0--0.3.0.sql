-- stripe_sync 0.3.0: a backfill pages with several job workers at once
-- (stripe_sync.backfill_workers), each through its own slices of created time.
-- Both ALTER EXTENSION stripe_sync UPDATE and a fresh install run this file
-- (sql/README.md).

CREATE TABLE stripe_sync.sync_slices (
    account        text NOT NULL DEFAULT '',
    object         text NOT NULL,
    created_gte    bigint NOT NULL,
    created_lt     bigint NOT NULL CHECK (created_lt > created_gte),
    starting_after text,
    done           boolean NOT NULL DEFAULT false,
    high_water     bigint,
    claimed_by     integer,
    PRIMARY KEY (account, object, created_gte),
    FOREIGN KEY (account, object) REFERENCES stripe_sync.sync_cursors ON DELETE CASCADE
);
COMMENT ON TABLE stripe_sync.sync_slices IS
  'The slices of created time that a run in progress with several job workers pages through, per account and object type: each is listed on its own, newest first, and committed after every page with its cursor, so an interrupted run resumes slice by slice. Emptied when the run ends.';
COMMENT ON COLUMN stripe_sync.sync_slices.created_gte IS 'Start of the slice: objects created at or after this time (Unix seconds).';
COMMENT ON COLUMN stripe_sync.sync_slices.created_lt IS 'End of the slice: objects created before this time (Unix seconds).';
COMMENT ON COLUMN stripe_sync.sync_slices.starting_after IS 'Last id of the slice''s last committed page.';
COMMENT ON COLUMN stripe_sync.sync_slices.done IS 'Every page of the slice is committed.';
COMMENT ON COLUMN stripe_sync.sync_slices.high_water IS 'Newest created (Unix seconds) the slice listed; the run''s high water is the newest of all.';
COMMENT ON COLUMN stripe_sync.sync_slices.claimed_by IS 'Process id of the job worker paging the slice in the current run; cleared when a run starts.';
SELECT pg_catalog.pg_extension_config_dump('stripe_sync.sync_slices', '');

ALTER TABLE stripe_sync.sync_runs ADD COLUMN workers integer NOT NULL DEFAULT 1;
COMMENT ON COLUMN stripe_sync.sync_runs.workers IS
  'Job workers that paged this run at once: 1, or up to stripe_sync.backfill_workers when its range was cut into slices.';
