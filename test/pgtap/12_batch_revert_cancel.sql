-- 12_batch_revert_cancel: approvals.cancel_batch — pending and queued batches are
-- cancelled with nothing to revert; a processing batch has every claim it
-- decided put back to pending (events 'reverted', items 'reverted', counters);
-- a handler refusing a revert keeps that claim decided ('Revert failed: ...');
-- completed, failed and cancelled batches are 55000.
--
-- A batch left 'processing' (its worker or run_queued session died after
-- committing some chunks) is simulated by the superuser writing that state
-- directly: the first chunk decided through process_batch, the rest of the
-- items appended undecided, status 'processing'.  The real concurrent case
-- is in test/isolation/specs/batch_cancel.spec.
BEGIN;
SELECT plan(62);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
CREATE TEMP TABLE tb (label text PRIMARY KEY, id text NOT NULL);
GRANT ALL ON tb TO PUBLIC;
CREATE FUNCTION pg_temp.b(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.tb WHERE label = l
$f$;
CREATE FUNCTION pg_temp.items(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(position || ':' || claim_id || ':' || coalesce(decision, '-') || coalesce(':' || error, ''), ' | ' ORDER BY position)
      FROM approvals.batch_items WHERE batch_id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.counters(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT row(status, total_claims, processed_count, approved_count, rejected_count, failed_count, reverted_count,
               approved_amount)::text
      FROM approvals.batches WHERE id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.claims(ids text[]) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(c.id || ':' || c.status || ':' || coalesce(c.reviewer, '-') || ':' || CASE WHEN c.decided_at IS NULL THEN 'f' ELSE 't' END, ' ' ORDER BY c.id)
      FROM approvals.claims c WHERE c.id = ANY (ids)
$f$;
CREATE FUNCTION pg_temp.ev(cid text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(e.action || '(' || coalesce(e.from_status, '') || '>' || e.to_status || ' ' || e.actor
                      || coalesce(' ' || (SELECT t.label FROM pg_temp.tb t WHERE t.id = e.batch_id), '')
                      || coalesce(' "' || e.comment || '"', '') || ')', ' ' ORDER BY e.id)
      FROM approvals.events e WHERE e.claim_id = cid
$f$;
-- Leave batch l as a crashed run would: its processed items stay, the claims
-- in more[] are appended undecided after them, status back to processing.
CREATE FUNCTION pg_temp.crash(l text, more text[]) RETURNS void LANGUAGE sql AS $f$
    INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids)
        SELECT pg_temp.b(l), m + 1, m + cardinality(more), more
          FROM (SELECT max(position) AS m FROM approvals.batch_items WHERE batch_id = pg_temp.b(l)) p;
    UPDATE approvals.batches
       SET status = 'processing', completed_at = NULL, next_position = processed_count + 1,
           total_claims = total_claims + cardinality(more), worker_pid = NULL
     WHERE id = pg_temp.b(l);
$f$;

CREATE ROLE tb_coord  IN ROLE approvals_coordinator;
CREATE ROLE tb_coord2 IN ROLE approvals_coordinator;
CREATE ROLE tb_hown;

-- A handler for tb_hnd12 that refuses to revert tb12_h2.
CREATE FUNCTION public.tb12_handler(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    IF c.id = 'tb12_h2' AND e.action = 'reverted' THEN
        RAISE EXCEPTION 'payment % already sent', c.id;
    END IF;
END $f$;
ALTER FUNCTION public.tb12_handler(approvals.claims, approvals.events) OWNER TO tb_hown;
SELECT lives_ok($$SELECT approvals.set_handler('tb_hnd12', 'public.tb12_handler(approvals.claims, approvals.events)')$$,
                'handler for tb_hnd12');

SELECT lives_ok($$
    SELECT approvals.submit(c.rt, c.id, 'h-' || c.id, id => c.id, actor => 'usr_req12', amount => c.amount)
      FROM (VALUES ('tb_inv', 'tb12_a', 1::numeric), ('tb_inv', 'tb12_b', 2), ('tb_inv', 'tb12_c', 4), ('tb_inv', 'tb12_d', 8),
                   ('tb_inv', 'tb12_e', 16), ('tb_inv', 'tb12_f', 32), ('tb_inv', 'tb12_g', 64),
                   ('tb_hnd12', 'tb12_h1', 100), ('tb_hnd12', 'tb12_h2', 200), ('tb_hnd12', 'tb12_h3', 300),
                   ('tb_inv', 'tb12_s', 5), ('tb_inv', 'tb12_r1', 7), ('tb_inv', 'tb12_r2', 9)) AS c(rt, id, amount)$$,
    'fixture: thirteen pending claims');

-- ---------------------------------------------------------------------------
-- Pending and queued batches: nothing to revert
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'pend', id FROM approvals.create_batch(ARRAY['tb12_a', 'tb12_b'], start => false, comment => 'draft')$$,
                'a pending batch');
SELECT is((SELECT row(c.batch_id = pg_temp.b('pend'), c.cancelled, c.cancelled_at = now(), c.claims_reverted)::text
             FROM approvals.cancel_batch(pg_temp.b('pend')) AS c),
          '(t,t,t,0)', 'cancel_batch on a pending batch returns (batch_id, true, cancelled_at, 0)');
SELECT is((SELECT row(status, cancelled_at IS NOT NULL, completed_at IS NULL, comment)::text FROM approvals.batches WHERE id = pg_temp.b('pend')),
          '(cancelled,t,t,draft)', 'the batch is cancelled, with cancelled_at and no completed_at');
SELECT is(pg_temp.items('pend'), '1:tb12_a:- | 2:tb12_b:-', 'its items stay undecided');
SELECT is(pg_temp.claims(ARRAY['tb12_a', 'tb12_b']), 'tb12_a:pending:-:f tb12_b:pending:-:f', 'its claims are untouched');
SELECT throws_ok($$SELECT approvals.cancel_batch(pg_temp.b('pend'))$$, '55000', NULL, 'cancelling it a second time is 55000');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('pend'))$$, '55000', NULL, 'starting a cancelled batch is 55000');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('pend'), comment => 'x')$$, '55000', NULL, 'amending a cancelled batch is 55000');
SELECT is((SELECT row(status, comment)::text FROM approvals.batches WHERE id = pg_temp.b('pend')), '(cancelled,draft)',
          'the refused calls changed nothing');

SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'que', id FROM approvals.create_batch(ARRAY['tb12_a', 'tb12_b'])$$, 'a queued batch');
SELECT is((SELECT row(c.cancelled, c.claims_reverted)::text FROM approvals.cancel_batch(pg_temp.b('que'), 'not this month') AS c),
          '(t,0)', 'cancelling a queued batch reverts nothing');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('que')), 'cancelled', 'the queued batch is cancelled');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE batch_id = pg_temp.b('que')), 0, 'no claim events for it');

SELECT throws_ok($$SELECT approvals.cancel_batch('bat_0000000000000000')$$, 'P0002', NULL, 'cancelling an unknown batch is P0002');
SELECT throws_ok($$SELECT approvals.cancel_batch(NULL)$$, '22004', NULL, 'cancel_batch(NULL) is 22004');
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'long', id FROM approvals.create_batch(ARRAY['tb12_a'], start => false)$$, 'another pending batch');
SELECT throws_ok($$SELECT approvals.cancel_batch(pg_temp.b('long'), repeat('x', 2001))$$, '22001', NULL, 'a 2001-character cancel comment is 22001');

-- ---------------------------------------------------------------------------
-- Completed and failed batches cannot be cancelled
-- ---------------------------------------------------------------------------
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'done', id FROM approvals.create_batch(ARRAY['tb12_g'])$$, 'a batch approving g');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('done'))$$, 'processed: completed');
SELECT throws_ok($$SELECT approvals.cancel_batch(pg_temp.b('done'))$$, '55000', NULL, 'cancelling a completed batch is 55000');
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'fail', id FROM approvals.create_batch(ARRAY['tb12_nope'], max_failures => 0)$$, 'a batch bound to fail');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('fail'))$$, 'processed: failed');
SELECT throws_ok($$SELECT approvals.cancel_batch(pg_temp.b('fail'))$$, '55000', NULL, 'cancelling a failed batch is 55000');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb12_g']), 'tb12_g:approved:tb_coord:t', 'the completed batch''s claim stays approved');

-- ---------------------------------------------------------------------------
-- A processing batch: what it decided is reverted
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'proc', id FROM approvals.create_batch(ARRAY['tb12_a', 'tb12_nope', 'tb12_b', 'tb12_c'], comment => 'month end')$$,
                'a batch whose first chunk (a, nope, b, c) is processed ...');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('proc'))$$, '... by process_batch');
RESET ROLE;
SELECT lives_ok($$SELECT pg_temp.crash('proc', ARRAY['tb12_d', 'tb12_e'])$$, '... and then left processing with d and e still to do');
SELECT is(pg_temp.counters('proc'), '(processing,6,4,3,0,1,0,7)', 'state before the cancel: processing, 3 approved, 1 failed');
SET ROLE tb_coord2;
SELECT throws_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('proc'))$$, '42501', NULL,
                 'another coordinator may not cancel the batch (it belongs to tb_coord)');
SET ROLE tb_coord;
SELECT is((SELECT row(c.batch_id = pg_temp.b('proc'), c.cancelled, c.cancelled_at IS NOT NULL, c.claims_reverted)::text
             FROM approvals.cancel_batch(pg_temp.b('proc'), 'wrong month') AS c),
          '(t,t,t,3)', 'cancel_batch on the processing batch reverts the 3 claims it approved');
RESET ROLE;
SELECT is(pg_temp.counters('proc'), '(cancelled,6,4,0,0,1,3,0)',
          'cancelled; approved_count back to 0, reverted_count 3, approved_amount 0, failed_count kept');
SELECT is(pg_temp.items('proc'),
          '1:tb12_a:reverted | 2:tb12_nope:failed:Claim not found | 3:tb12_b:reverted | 4:tb12_c:reverted | 5:tb12_d:- | 6:tb12_e:-',
          'approved items are now reverted; the failed one stays failed; the rest were never processed');
SELECT is(pg_temp.claims(ARRAY['tb12_a', 'tb12_b', 'tb12_c', 'tb12_d', 'tb12_e']),
          'tb12_a:pending:-:f tb12_b:pending:-:f tb12_c:pending:-:f tb12_d:pending:-:f tb12_e:pending:-:f',
          'every claim is pending again, without reviewer or decided_at; d and e were never decided');
SELECT is(pg_temp.ev('tb12_a'),
          'submitted(>pending usr_req12) approved(pending>approved tb_coord proc "month end") reverted(approved>pending tb_coord proc "wrong month")',
          'a reverted claim''s audit trail: approved by the batch, then reverted by the canceller with the cancel comment');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id IN ('tb12_d', 'tb12_e') AND action <> 'submitted'), 0,
          'the claims the batch never reached have no events');
SELECT throws_ok($$SELECT approvals.cancel_batch(pg_temp.b('proc'))$$, '55000', NULL, 'cancelling it again is 55000');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE batch_id = pg_temp.b('proc') AND action = 'reverted'), 3,
          'and reverted nothing a second time');
SET ROLE tb_coord;
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ') FROM approvals.process_batch(
              (SELECT id FROM approvals.create_batch(ARRAY['tb12_a', 'tb12_d'])))),
          'tb12_a:approved tb12_d:approved', 'reverted claims can be decided again by another batch');
RESET ROLE;

-- A reject batch left processing
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'rej', id FROM approvals.create_batch(ARRAY['tb12_r1', 'tb12_r2'], action => 'reject')$$, 'a reject batch');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('rej'))$$, 'processed');
RESET ROLE;
SELECT lives_ok($$SELECT pg_temp.crash('rej', ARRAY['tb12_f'])$$, 'left processing with f to do');
SET ROLE tb_coord;
SELECT is((SELECT c.claims_reverted FROM approvals.cancel_batch(pg_temp.b('rej')) AS c), 2, 'cancelling reverts the 2 rejections');
RESET ROLE;
SELECT is(pg_temp.counters('rej'), '(cancelled,3,2,0,0,0,2,0)', 'rejected_count back to 0, reverted_count 2');
SELECT is(pg_temp.claims(ARRAY['tb12_r1', 'tb12_r2']), 'tb12_r1:pending:-:f tb12_r2:pending:-:f', 'the rejected claims are pending again');

-- A handler refusing a revert
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'hnd', id FROM approvals.create_batch(ARRAY['tb12_h1', 'tb12_h2', 'tb12_h3'])$$, 'a batch over h1..h3');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('hnd'))$$, 'processed: all approved');
RESET ROLE;
SELECT lives_ok($$SELECT pg_temp.crash('hnd', ARRAY['tb12_f'])$$, 'left processing with f to do');
SET ROLE tb_coord;
SELECT is((SELECT c.claims_reverted FROM approvals.cancel_batch(pg_temp.b('hnd')) AS c), 2,
          'cancel reverts 2: the handler refused to revert h2');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb12_h1', 'tb12_h2', 'tb12_h3']), 'tb12_h1:pending:-:f tb12_h2:approved:tb_coord:t tb12_h3:pending:-:f',
          'h2 stays approved (reviewer and decided_at kept); h1 and h3 are pending');
SELECT matches((SELECT decision || ':' || error FROM approvals.batch_items WHERE batch_id = pg_temp.b('hnd') AND claim_id = 'tb12_h2'),
               '^approved:Revert failed: .*payment tb12_h2 already sent', 'h2''s item keeps decision approved, error "Revert failed: <handler message>"');
SELECT is(pg_temp.counters('hnd'), '(cancelled,4,3,1,0,0,2,200)', 'approved_count 1 and approved_amount 200 (h2), reverted_count 2');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tb12_h2' AND action = 'reverted'), 0, 'h2 has no reverted event');

-- A claim whose resource was resubmitted while the batch had it approved
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'sib', id FROM approvals.create_batch(ARRAY['tb12_s'])$$, 'a batch approving s');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('sib'))$$, 'processed');
RESET ROLE;
SELECT lives_ok($$SELECT approvals.submit('tb_inv', 'tb12_s', 'h-new', id => 'tb12_s_new', actor => 'usr_req12')$$,
                'the resource of s is resubmitted: a new pending claim');
SELECT lives_ok($$SELECT pg_temp.crash('sib', ARRAY['tb12_f'])$$, 'the batch is left processing');
SET ROLE tb_coord;
SELECT lives_ok($$SELECT approvals.cancel_batch(pg_temp.b('sib'))$$, 'cancelling it works');
RESET ROLE;
SELECT is((SELECT string_agg(id || ':' || status, ' ' ORDER BY id) FROM approvals.claims WHERE resource_id = 'tb12_s' AND status = 'pending'),
          'tb12_s_new:pending', 'the newer claim stays the one pending claim of the resource');
SELECT matches(pg_temp.ev('tb12_s'),
          '^submitted\(>pending usr_req12\) approved\(pending>approved tb_coord sib\) reverted\(approved>cancelled tb_coord sib[^)]*\)$',
          'the old claim cannot be pending beside it: its revert supersedes it (approved > cancelled)');
SELECT is(pg_temp.items('sib'), '1:tb12_s:reverted | 2:tb12_f:-', 'its item is reverted');

SELECT * FROM finish();
ROLLBACK;
