-- 13_batch_revert_threshold: failure thresholds — max_failures (a count) and
-- max_failure_ratio (of total_claims); exceeding one with on_threshold
-- 'rollback' stops the batch, reverts every claim it decided and ends it
-- 'failed' ("failure threshold exceeded: F of T claims failed"); 'continue'
-- ends it 'completed'.  Reaching the threshold exactly is not exceeding it.
BEGIN;
SELECT plan(53);

CREATE TEMP TABLE tb (label text PRIMARY KEY, id text NOT NULL);
GRANT ALL ON tb TO PUBLIC;
CREATE FUNCTION pg_temp.b(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.tb WHERE label = l
$f$;
CREATE TEMP TABLE res (label text, n bigint, claim_id text, decision text, error text);
GRANT ALL ON res TO PUBLIC;
-- Create a batch of the given claims (as the current role) and process it.
CREATE FUNCTION pg_temp.run(l text, ids text[], max_failures int DEFAULT NULL, max_failure_ratio real DEFAULT NULL,
                            on_threshold text DEFAULT 'rollback', action text DEFAULT 'approve') RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO pg_temp.tb SELECT l, b.id
      FROM approvals.create_batch(ids, max_failures => max_failures, max_failure_ratio => max_failure_ratio,
                                  on_threshold => on_threshold, action => action) AS b;
    INSERT INTO pg_temp.res SELECT l, r.n, r.claim_id, r.decision, r.error
      FROM approvals.process_batch(pg_temp.b(l)) WITH ORDINALITY AS r(claim_id, decision, error, processed_at, n);
END $f$;
CREATE FUNCTION pg_temp.ret(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(claim_id || ':' || coalesce(decision, '-'), ' ' ORDER BY n) FROM pg_temp.res WHERE label = l
$f$;
CREATE FUNCTION pg_temp.items(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(claim_id || ':' || coalesce(decision, '-'), ' ' ORDER BY position)
      FROM approvals.batch_items WHERE batch_id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.counters(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT row(status, total_claims, processed_count, approved_count, rejected_count, failed_count, reverted_count,
               approved_amount, failed_amount)::text
      FROM approvals.batches WHERE id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.err(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT error FROM approvals.batches WHERE id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.claims(ids text[]) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(c.id || ':' || c.status || ':' || coalesce(c.reviewer, '-'), ' ' ORDER BY c.id)
      FROM approvals.claims c WHERE c.id = ANY (ids)
$f$;
CREATE FUNCTION pg_temp.ev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(e.action || '(' || coalesce(e.from_status, '') || '>' || e.to_status
                      || coalesce(' ' || (SELECT t.label FROM pg_temp.tb t WHERE t.id = e.batch_id), '') || ')', ' ' ORDER BY e.id)
      FROM approvals.events e WHERE e.claim_id = cid
$f$;

CREATE ROLE tb_coord IN ROLE approvals_coordinator;
CREATE ROLE tb_hown;
CREATE FUNCTION public.tb13_handler(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    IF c.id = 'tb13_h2' AND e.action = 'reverted' THEN
        RAISE EXCEPTION 'cheque % printed', c.id;
    END IF;
END $f$;
ALTER FUNCTION public.tb13_handler(approvals.claims, approvals.events) OWNER TO tb_hown;
SELECT lives_ok($$SELECT approvals.set_handler('tb_hnd13', 'public.tb13_handler(approvals.claims, approvals.events)')$$,
                'handler for tb_hnd13 refusing to revert tb13_h2');

-- Claims tb13_<set>_<n> with amount n, and tb13_h1..3 of resource type tb_hnd13.
SELECT lives_ok($$
    SELECT approvals.submit(CASE WHEN s = 'h' THEN 'tb_hnd13' ELSE 'tb_inv' END, s || n, 'h', id => 'tb13_' || s || n,
                            actor => 'usr_req13', amount => n)
      FROM unnest(ARRAY['a', 'b', 'c', 'd', 'e', 'f', 'g', 'k', 'm', 'p', 'r', 's', 'h']) AS s, generate_series(1, 10) AS n$$,
    'fixture: pending claims tb13_<set><n>');

-- ---------------------------------------------------------------------------
-- max_failures exceeded, rollback (the default)
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('mf', ARRAY['tb13_a1', 'tb13_x1', 'tb13_a2', 'tb13_x2', 'tb13_a3'], max_failures => 1)$$,
                'max_failures 1; two of five claims do not exist');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('mf')), 'failed', 'the batch ends failed');
SELECT matches(pg_temp.err('mf'), '^failure threshold exceeded: 2 of 5 claims failed', 'error: "failure threshold exceeded: 2 of 5 claims failed..."');
SELECT is(pg_temp.counters('mf'), '(failed,5,5,0,0,2,3,0,0)', 'approved_count 0 after the revert, reverted_count 3, failed_count 2, approved_amount 0');
SELECT is(pg_temp.items('mf'), 'tb13_a1:reverted tb13_x1:failed tb13_a2:reverted tb13_x2:failed tb13_a3:reverted',
          'decided items are reverted, failed items stay failed');
SELECT is(pg_temp.ret('mf'), 'tb13_a1:reverted tb13_x1:failed tb13_a2:reverted tb13_x2:failed tb13_a3:reverted',
          'process_batch returns the final outcome');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb13_a1', 'tb13_a2', 'tb13_a3']), 'tb13_a1:pending:- tb13_a2:pending:- tb13_a3:pending:-',
          'every claim the batch approved is pending again, without reviewer');
SELECT is(pg_temp.ev('tb13_a2'), 'submitted(>pending) approved(pending>approved mf) reverted(approved>pending mf)',
          'its trail: approved by the batch, then reverted with the batch id');

-- exactly at max_failures
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('mf_eq', ARRAY['tb13_b1', 'tb13_x1', 'tb13_b2', 'tb13_x2'], max_failures => 2)$$,
                'max_failures 2 with two failures');
SELECT is(pg_temp.counters('mf_eq'), '(completed,4,4,2,0,2,0,3,0)', 'reaching max_failures is not exceeding it: completed, nothing reverted');
SELECT is(pg_temp.err('mf_eq'), NULL, 'no error');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb13_b1', 'tb13_b2']), 'tb13_b1:approved:tb_coord tb13_b2:approved:tb_coord', 'its claims stay approved');

-- max_failures 0
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('mf0', ARRAY['tb13_c1', 'tb13_c2', 'tb13_x1'], max_failures => 0)$$, 'max_failures 0 with one failure');
SELECT is(pg_temp.counters('mf0'), '(failed,3,3,0,0,1,2,0,0)', 'one failure exceeds max_failures 0: failed, 2 reverted');
SELECT matches(pg_temp.err('mf0'), '^failure threshold exceeded: 1 of 3 claims failed', 'error names 1 of 3');
SELECT lives_ok($$SELECT pg_temp.run('mf0ok', ARRAY['tb13_c1', 'tb13_c2'], max_failures => 0)$$, 'max_failures 0 with no failure');
SELECT is(pg_temp.counters('mf0ok'), '(completed,2,2,2,0,0,0,3,0)', 'no failure: completed (the claims rolled back by mf0 are approved now)');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- max_failure_ratio
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('r_eq', ARRAY['tb13_d1', 'tb13_d2', 'tb13_d3', 'tb13_x1'], max_failure_ratio => 0.25)$$,
                'max_failure_ratio 0.25 with 1 of 4 failed');
SELECT is(pg_temp.counters('r_eq'), '(completed,4,4,3,0,1,0,6,0)', 'a ratio equal to max_failure_ratio is not exceeded');
SELECT lives_ok($$SELECT pg_temp.run('r_gt', ARRAY['tb13_d4', 'tb13_x1', 'tb13_d5', 'tb13_x2'], max_failure_ratio => 0.25)$$,
                'max_failure_ratio 0.25 with 2 of 4 failed');
SELECT is(pg_temp.counters('r_gt'), '(failed,4,4,0,0,2,2,0,0)', 'a ratio of 0.5 exceeds 0.25: failed, 2 reverted');
SELECT matches(pg_temp.err('r_gt'), '^failure threshold exceeded: 2 of 4 claims failed', 'error names 2 of 4');
SELECT lives_ok($$SELECT pg_temp.run('r0', ARRAY['tb13_d6', 'tb13_d7', 'tb13_x1'], max_failure_ratio => 0)$$, 'max_failure_ratio 0 with one failure');
SELECT is(pg_temp.counters('r0'), '(failed,3,3,0,0,1,2,0,0)', 'any failure exceeds a ratio of 0');
SELECT lives_ok($$SELECT pg_temp.run('r1', ARRAY['tb13_x1', 'tb13_x2'], max_failure_ratio => 1)$$, 'max_failure_ratio 1 with every claim failing');
SELECT is(pg_temp.counters('r1'), '(completed,2,2,0,0,2,0,0,0)', 'nothing exceeds a ratio of 1');
-- ratios that have no exact binary representation (real): 1 of 10 at 0.1, 3 of 10 at 0.3, 7 of 10 at 0.7
SELECT lives_ok($$SELECT pg_temp.run('r01', ARRAY['tb13_x1', 'tb13_e2', 'tb13_e3', 'tb13_e4', 'tb13_e5', 'tb13_e6', 'tb13_e7', 'tb13_e8', 'tb13_e9', 'tb13_e10'],
                                     max_failure_ratio => 0.1)$$, 'max_failure_ratio 0.1 with 1 of 10 failed');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('r01')), 'completed', '1 of 10 is exactly 0.1: completed');
SELECT lives_ok($$SELECT pg_temp.run('r03', ARRAY['tb13_x1', 'tb13_x2', 'tb13_x3', 'tb13_f4', 'tb13_f5', 'tb13_f6', 'tb13_f7', 'tb13_f8', 'tb13_f9', 'tb13_f10'],
                                     max_failure_ratio => 0.3)$$, 'max_failure_ratio 0.3 with 3 of 10 failed');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('r03')), 'completed', '3 of 10 is exactly 0.3: completed');
SELECT lives_ok($$SELECT pg_temp.run('r07', ARRAY['tb13_x1', 'tb13_x2', 'tb13_x3', 'tb13_x4', 'tb13_x5', 'tb13_x6', 'tb13_x7', 'tb13_g8', 'tb13_g9', 'tb13_g10'],
                                     max_failure_ratio => 0.7)$$, 'max_failure_ratio 0.7 with 7 of 10 failed');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('r07')), 'completed', '7 of 10 is exactly 0.7: completed');
RESET ROLE;

-- both thresholds: either one exceeded is enough
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('both', ARRAY['tb13_k1', 'tb13_x1', 'tb13_k2', 'tb13_x2', 'tb13_k3'], max_failures => 10, max_failure_ratio => 0.2)$$,
                'max_failures 10 and max_failure_ratio 0.2 with 2 of 5 failed');
SELECT is(pg_temp.counters('both'), '(failed,5,5,0,0,2,3,0,0)', 'the ratio is exceeded though the count is not: failed');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- on_threshold continue
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('cont', ARRAY['tb13_m1', 'tb13_x1', 'tb13_m2', 'tb13_x2'], max_failures => 1, on_threshold => 'continue')$$,
                'max_failures 1, continue, two failures');
SELECT is(pg_temp.counters('cont'), '(completed,4,4,2,0,2,0,3,0)', 'continue: completed, nothing reverted');
SELECT is(pg_temp.items('cont'), 'tb13_m1:approved tb13_x1:failed tb13_m2:approved tb13_x2:failed', 'items approved and failed');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb13_m1', 'tb13_m2']), 'tb13_m1:approved:tb_coord tb13_m2:approved:tb_coord', 'its claims stay approved');

-- ---------------------------------------------------------------------------
-- In chunks: the batch stops at the chunk that exceeds the threshold
-- ---------------------------------------------------------------------------
SET LOCAL approvals.chunk_size = 2;
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('chunks', ARRAY['tb13_x1', 'tb13_p1', 'tb13_p2', 'tb13_x2', 'tb13_p3', 'tb13_p4'], max_failures => 1)$$,
                'chunk_size 2, max_failures 1, failures at positions 1 and 4');
SELECT is(pg_temp.items('chunks'), 'tb13_x1:failed tb13_p1:reverted tb13_p2:reverted tb13_x2:failed tb13_p3:- tb13_p4:-',
          'the first two chunks were processed and their approvals reverted; the third chunk was never processed');
SELECT is(pg_temp.counters('chunks'), '(failed,6,4,0,0,2,2,0,0)', 'processed_count 4, failed 2, reverted 2');
SELECT matches(pg_temp.err('chunks'), '^failure threshold exceeded: 2 of 6 claims failed', 'error names 2 of 6');
RESET ROLE;
RESET approvals.chunk_size;
SELECT is(pg_temp.claims(ARRAY['tb13_p1', 'tb13_p2', 'tb13_p3', 'tb13_p4']),
          'tb13_p1:pending:- tb13_p2:pending:- tb13_p3:pending:- tb13_p4:pending:-', 'all four claims are pending');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id IN ('tb13_p3', 'tb13_p4') AND action <> 'submitted'), 0,
          'the claims after the stop were never touched');

-- ---------------------------------------------------------------------------
-- A reject batch rolled back
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('rej', ARRAY['tb13_r1', 'tb13_x1', 'tb13_r2'], max_failures => 0, action => 'reject')$$,
                'a reject batch with max_failures 0 and one failure');
SELECT is(pg_temp.counters('rej'), '(failed,3,3,0,0,1,2,0,0)', 'rejected_count back to 0, reverted_count 2');
RESET ROLE;
SELECT is(pg_temp.ev('tb13_r1'), 'submitted(>pending) rejected(pending>rejected rej) reverted(rejected>pending rej)',
          'a rejection rolled back: rejected, then reverted to pending');

-- ---------------------------------------------------------------------------
-- A handler refusing to revert during the rollback
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$SELECT pg_temp.run('hnd', ARRAY['tb13_h1', 'tb13_h2', 'tb13_h3', 'tb13_x1'], max_failures => 0)$$,
                'a batch over h1..h3 and a missing claim, max_failures 0');
SELECT is(pg_temp.counters('hnd'), '(failed,4,4,1,0,1,2,2,0)', 'failed; h2 could not be reverted: approved_count 1, approved_amount 2, reverted 2');
SELECT matches((SELECT decision || ':' || error FROM approvals.batch_items WHERE batch_id = pg_temp.b('hnd') AND claim_id = 'tb13_h2'),
               '^approved:Revert failed: .*cheque tb13_h2 printed', 'h2''s item keeps decision approved with "Revert failed: <handler message>"');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb13_h1', 'tb13_h2', 'tb13_h3']), 'tb13_h1:pending:- tb13_h2:approved:tb_coord tb13_h3:pending:-',
          'h2 stays approved, h1 and h3 are pending');

SELECT * FROM finish();
ROLLBACK;
