-- Claims again, by id, the events $1 of a batch that failed as a whole: the
-- rollback of the batch's subtransaction released their locks, and each is now
-- applied alone. Same columns as claim_batch.sql. An event another drainer
-- claimed in between, or that is no longer pending, is left out: it is theirs.
SELECT id, object_type, attempts + 1, thin
  FROM stripe_sync.events
 WHERE id = ANY($1) AND status = 'pending'
 ORDER BY created, id
   FOR UPDATE SKIP LOCKED
