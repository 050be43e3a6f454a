-- 18_batch_revert_collision: one batch decided two claims of the same resource (the first,
-- then one submitted for the changed resource and decided by a later chunk).  Reverting
-- both cannot make both pending (one pending claim per resource): the newer one goes back
-- to pending, the older one is cancelled, and the cancel succeeds.
BEGIN;
SELECT plan(5);

SELECT approvals.submit('t18', 'res-1', 'h1', id => 't18_r1', actor => 'usr_req18') IS NOT NULL AS submitted;
SELECT id AS bid FROM approvals.create_batch(ARRAY['t18_r1', 't18_r2'], coordinator => 'usr_coord18',
                                             start => false) \gset
SELECT count(*) AS processed FROM approvals.process_batch(:'bid');
SELECT is((SELECT status FROM approvals.claims WHERE id = 't18_r1'), 'approved', 'the batch approved t18_r1');
-- The resource changed: a new claim for it; a later chunk of the batch decided it too (the
-- state a run_queued between two chunks leaves, written directly here).
SELECT approvals.submit('t18', 'res-1', 'h2', id => 't18_r2', actor => 'usr_req18') IS NOT NULL AS resubmitted;
UPDATE approvals.claims SET status = 'approved', reviewer = 'usr_coord18', batch_id = :'bid',
       decided_at = now(), created_at = created_at + interval '1 second'
 WHERE id = 't18_r2';
UPDATE approvals.batch_item_results
   SET decisions[pg_catalog.array_position(claim_ids, 't18_r2')] = 'approved',
       errors[pg_catalog.array_position(claim_ids, 't18_r2')] = NULL
 WHERE batch_id = :'bid' AND 't18_r2' = ANY (claim_ids);
UPDATE approvals.batches SET status = 'processing', approved_count = 2, failed_count = 0,
       completed_at = NULL
 WHERE id = :'bid';
SELECT is((SELECT claims_reverted FROM approvals.cancel_batch(:'bid')), 2,
          'cancel_batch reverts both (no unique violation)');
SELECT is((SELECT status FROM approvals.claims WHERE id = 't18_r2'), 'pending', 'the newer claim is pending again');
SELECT is((SELECT status FROM approvals.claims WHERE id = 't18_r1'), 'cancelled', 'the older one gives way: cancelled');
SELECT is((SELECT string_agg(claim_id || ':' || to_status, ' ' ORDER BY claim_id) FROM approvals.events
            WHERE batch_id = :'bid' AND action = 'reverted'),
          't18_r1:cancelled t18_r2:pending', 'both reverts are in the audit log');

SELECT * FROM finish();
ROLLBACK;
