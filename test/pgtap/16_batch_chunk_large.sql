-- 16_batch_chunk_large: one batch of 100000 claims, processed by process_batch in
-- the caller's transaction.  Correctness only (no timing assertions): every
-- item approved, in batch order, every claim approved exactly once by the
-- batch, and exact counters and amounts.
--
-- The claims are submitted in this same transaction after an ANALYZE of the
-- (empty, or dead-rows-only) claims table, so the planner's statistics say
-- "0 rows" while 100000 are there: the batch functions must not degrade to
-- repeated sequential scans (create_batch's total_amount once took minutes).
BEGIN;
SELECT plan(17);

ANALYZE approvals.claims;
CREATE ROLE tb_coord IN ROLE approvals_coordinator;
CREATE TEMP TABLE tb (id text);
GRANT ALL ON tb TO PUBLIC;
CREATE TEMP TABLE res (n bigint, claim_id text, decision text, error text, processed_at timestamptz);
GRANT ALL ON res TO PUBLIC;

-- 100000 claims tb16_1 .. tb16_100000, amount (n % 1000) / 100 (0.00 .. 9.99).
SELECT is((SELECT count(*)::int FROM (
              SELECT approvals.submit('tb_big', 'inv-' || g, 'h-' || g, id => 'tb16_' || g, actor => 'usr_req16',
                                      amount => (g % 1000) / 100.0)
                FROM generate_series(1, 100000) g) s),
          100000, 'submitted 100000 claims (superuser acting for usr_req16)');

SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT id FROM approvals.create_batch(
                      ARRAY(SELECT 'tb16_' || g FROM generate_series(1, 100000) g), comment => 'the big one')$$,
                'create_batch with 100000 claim ids');
SELECT is((SELECT row(status, total_claims, total_amount)::text FROM approvals.batches WHERE id = (SELECT id FROM pg_temp.tb)),
          (SELECT row('queued', 100000, sum((g % 1000) / 100.0))::text FROM generate_series(1, 100000) g),
          'queued with total_claims 100000 and total_amount the sum of the claims'' amounts');
RESET ROLE;
-- Items are written once: the claim list as 100 lists of 1000 ids, no result row yet.
SELECT is((SELECT row(count(*), min(first_position), max(last_position), sum(cardinality(claim_ids)),
                      (SELECT count(*) FROM approvals.batch_item_results r WHERE r.batch_id = l.batch_id))::text
             FROM approvals.batch_item_lists l WHERE l.batch_id = (SELECT id FROM pg_temp.tb) GROUP BY l.batch_id),
          '(100,1,100000,100000,0)', 'the claim list is stored as 100 lists of 1000 claim ids, no result row yet');
SELECT is((SELECT count(*)::int FROM approvals.batch_items WHERE batch_id = (SELECT id FROM pg_temp.tb) AND decision IS NULL),
          100000, 'batch_items shows the 100000 items, none processed');
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.res SELECT r.n, r.claim_id, r.decision, r.error, r.processed_at
                    FROM approvals.process_batch((SELECT id FROM pg_temp.tb)) WITH ORDINALITY AS r(claim_id, decision, error, processed_at, n)$$,
                'process_batch over the 100000 claims');
RESET ROLE;

SELECT is((SELECT count(*)::int FROM pg_temp.res), 100000, 'process_batch returned 100000 rows');
SELECT is((SELECT count(*)::int FROM pg_temp.res WHERE decision = 'approved' AND error IS NULL AND processed_at IS NOT NULL), 100000,
          'every returned row is approved, without error, with processed_at');
SELECT is((SELECT count(*)::int FROM pg_temp.res WHERE claim_id <> 'tb16_' || n), 0, 'the rows come in batch order');
SELECT is((SELECT row(status, total_claims, processed_count, approved_count, rejected_count, failed_count, reverted_count,
                      approved_amount = total_amount, failed_amount, error IS NULL)::text
             FROM approvals.batches WHERE id = (SELECT id FROM pg_temp.tb)),
          '(completed,100000,100000,100000,0,0,0,t,0,t)',
          'counters: completed, 100000 processed and approved, none failed or reverted, approved_amount = total_amount');
SELECT is((SELECT row(count(*), count(*) FILTER (WHERE decision = 'approved' AND error IS NULL), count(DISTINCT claim_id),
                      min(position), max(position))::text
             FROM approvals.batch_items WHERE batch_id = (SELECT id FROM pg_temp.tb)),
          '(100000,100000,100000,1,100000)', 'batch_items: 100000 distinct claims at positions 1..100000, all approved');
SELECT is((SELECT row((SELECT count(*) FROM approvals.batch_item_lists WHERE batch_id = t.id),
                      (SELECT row(count(*), sum(cardinality(claim_ids)))
                         FROM approvals.batch_item_results WHERE batch_id = t.id))::text FROM pg_temp.tb t),
          '(0,"(100,100000)")', 'processed: every list deleted, one result row per chunk of 1000 items');
SELECT is((SELECT count(*)::int FROM approvals.claims
            WHERE id LIKE 'tb16\_%' AND status = 'approved' AND reviewer = 'tb_coord' AND batch_id = (SELECT id FROM pg_temp.tb)
              AND decided_at IS NOT NULL),
          100000, 'every claim is approved by tb_coord in this batch');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id LIKE 'tb16\_%' AND status <> 'approved'), 0, 'no claim is left pending');
SELECT is((SELECT row(count(*), count(*) FILTER (WHERE n = 1))::text
             FROM (SELECT claim_id, count(*) AS n FROM approvals.events
                    WHERE claim_id LIKE 'tb16\_%' AND action = 'approved' GROUP BY claim_id) e),
          '(100000,100000)', 'every claim has exactly one approved event');
SELECT is((SELECT count(*)::int FROM approvals.events
            WHERE batch_id = (SELECT id FROM pg_temp.tb)
              AND NOT (action = 'approved' AND from_status = 'pending' AND to_status = 'approved' AND actor = 'tb_coord')),
          0, 'and the batch appended no other event');
SELECT is((SELECT sum(c.amount) FROM approvals.claims c WHERE c.batch_id = (SELECT id FROM pg_temp.tb)),
          (SELECT approved_amount FROM approvals.batches WHERE id = (SELECT id FROM pg_temp.tb)),
          'approved_amount equals the sum of the approved claims'' amounts');

SELECT * FROM finish();
ROLLBACK;
