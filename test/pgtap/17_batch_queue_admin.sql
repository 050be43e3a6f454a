-- 17_batch_queue_admin: the reading and housekeeping side of batches —
-- get_batch, batch_results, list_batches (newest first, filters, paging and
-- their 22023s), wait_batch, purge_batches, and CALL approvals.run_queued()
-- inside a transaction block (processes without committing: oldest queued
-- first, max_batches, resuming a batch left processing by a dead session,
-- leaving alone one owned by a live session).
--
-- Time: now() does not move inside the transaction, so ages and orders are
-- set by direct UPDATEs as the superuser (created_at, completed_at, ...).
BEGIN;
SELECT plan(71);

CREATE TEMP TABLE tb (label text PRIMARY KEY, id text NOT NULL);
GRANT ALL ON tb TO PUBLIC;
CREATE FUNCTION pg_temp.b(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.tb WHERE label = l
$f$;
CREATE FUNCTION pg_temp.lbl(bid text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce((SELECT label FROM pg_temp.tb WHERE id = bid), '?')
$f$;
-- The labels of list_batches(...) in the order returned (batches of other tests show as ?).
CREATE FUNCTION pg_temp.list(st text DEFAULT NULL, co text DEFAULT NULL, pg int DEFAULT 1, lim int DEFAULT 20) RETURNS text
LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(pg_temp.lbl(b.id), ' ' ORDER BY b.ordinality), '')
      FROM approvals.list_batches(st, co, pg, lim) WITH ORDINALITY AS b
$f$;
CREATE FUNCTION pg_temp.st(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT status FROM approvals.batches WHERE id = pg_temp.b(l)
$f$;

CREATE ROLE tb_coord IN ROLE approvals_coordinator;
CREATE ROLE tb_plat  IN ROLE approvals_platform;
CREATE ROLE tb_adm   IN ROLE approvals_admin;
CREATE ROLE tb_rdr   IN ROLE approvals_reader;

SELECT lives_ok($$SELECT approvals.submit('tb_inv', 'r' || g, 'h', id => 'tb17_' || g, actor => 'usr_req17', amount => g)
                    FROM generate_series(1, 40) g$$,
                'fixture: forty pending claims tb17_1..40');

-- ---------------------------------------------------------------------------
-- get_batch, batch_results, list_batches
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb
    SELECT 'l1', (approvals.create_batch(ARRAY['tb17_1', 'tb17_2'])).id UNION ALL
    SELECT 'l2', (approvals.create_batch(ARRAY['tb17_3'])).id UNION ALL
    SELECT 'l3', (approvals.create_batch(ARRAY['tb17_4', 'tb17_nope', 'tb17_5'], start => false)).id UNION ALL
    SELECT 'l4', (approvals.create_batch(ARRAY['tb17_6'])).id$$,
    'four batches by tb_coord');
SET ROLE tb_plat;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'l5', (approvals.create_batch(ARRAY['tb17_7'], coordinator => 'usr_coord99')).id$$,
                'one by usr_coord99');
RESET ROLE;
-- l5 newest ... l1 oldest, all newer than anything else in the database
UPDATE approvals.batches b SET created_at = now() + (substr(t.label, 2)::int || ' minutes')::interval
  FROM pg_temp.tb t WHERE t.id = b.id AND t.label LIKE 'l_';
SET ROLE tb_coord;
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('l1'))$$, 'l1 processed');
SELECT lives_ok($$SELECT * FROM approvals.cancel_batch(pg_temp.b('l2'))$$, 'l2 cancelled');
RESET ROLE;

SET ROLE tb_rdr;
SELECT is((SELECT b::text FROM approvals.get_batch(pg_temp.b('l1')) AS b), (SELECT b::text FROM approvals.batches b WHERE id = pg_temp.b('l1')),
          'get_batch returns the batch row');
SELECT throws_ok($$SELECT approvals.get_batch('bat_0000000000000000')$$, 'P0002', NULL, 'get_batch of an unknown batch is P0002');
SELECT throws_ok($$SELECT approvals.get_batch(NULL)$$, '22004', NULL, 'get_batch(NULL) is 22004');
SELECT is((SELECT string_agg(claim_id || ':' || coalesce(decision, '-') || ':' || coalesce(error, '-') || ':' || (processed_at IS NULL), ' ')
             FROM approvals.batch_results(pg_temp.b('l3'))),
          'tb17_4:-:-:true tb17_nope:-:-:true tb17_5:-:-:true', 'batch_results of an unprocessed batch: every claim in order, nothing decided yet');
SELECT throws_ok($$SELECT * FROM approvals.batch_results('bat_0000000000000000')$$, 'P0002', NULL, 'batch_results of an unknown batch is P0002');

SELECT is(pg_temp.list(lim => 5), 'l5 l4 l3 l2 l1', 'list_batches: newest first');
SELECT is(pg_temp.list('queued'), 'l5 l4', 'status queued');
SELECT is(pg_temp.list('completed', lim => 1000), 'l1', 'status completed');
SELECT is(pg_temp.list(co => 'usr_coord99'), 'l5', 'coordinator usr_coord99');
SELECT is(pg_temp.list('queued', 'tb_coord'), 'l4', 'status and coordinator together');
SELECT is(pg_temp.list('processing', 'tb_coord'), '', 'no match: no rows');
SELECT is(pg_temp.list(pg => 2, lim => 2), 'l3 l2', 'page 2 of 2');
SELECT is(pg_temp.list(pg => 1, lim => 1), 'l5', 'page 1 of 1');
SELECT is(pg_temp.list(pg => 100000, lim => 1000), '', 'a page past the end is empty');
SELECT lives_ok($$SELECT * FROM approvals.list_batches(page_limit => 1000)$$, 'page_limit 1000 is allowed');
SELECT throws_ok($$SELECT * FROM approvals.list_batches(page_limit => 1001)$$, '22023', NULL, 'page_limit 1001 is 22023');
SELECT throws_ok($$SELECT * FROM approvals.list_batches(page_limit => 0)$$, '22023', NULL, 'page_limit 0 is 22023');
SELECT throws_ok($$SELECT * FROM approvals.list_batches(page => 0)$$, '22023', NULL, 'page 0 is 22023');
SELECT throws_ok($$SELECT * FROM approvals.list_batches(page => -1)$$, '22023', NULL, 'page -1 is 22023');
SELECT throws_ok($$SELECT * FROM approvals.list_batches('done')$$, '22023', NULL, 'status done is 22023');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- wait_batch
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT is((SELECT row(w.status, clock_timestamp() - statement_timestamp() < interval '30 seconds')::text
             FROM approvals.wait_batch(pg_temp.b('l1'), '1 minute') AS w),
          '(completed,t)', 'wait_batch on a completed batch returns it at once');
SELECT is((SELECT w.status FROM approvals.wait_batch(pg_temp.b('l2')) AS w), 'cancelled', 'and on a cancelled one (default timeout)');
CREATE TEMP TABLE waited AS SELECT statement_timestamp() AS t0, w.status, clock_timestamp() AS t1
                              FROM approvals.wait_batch(pg_temp.b('l3'), '250 milliseconds') AS w;
SELECT is((SELECT status FROM pg_temp.waited), 'pending', 'wait_batch on a pending batch returns it as it is when the timeout passes (after a NOTICE naming start_batch)');
SELECT ok((SELECT t1 - t0 >= interval '250 milliseconds' FROM pg_temp.waited), 'it waited at least the timeout');
SELECT is((SELECT pg_temp.lbl(w.id) FROM approvals.wait_batch(pg_temp.b('l4'), '10 milliseconds') AS w), 'l4', 'a short wait on a queued batch returns it');
SELECT throws_ok($$SELECT approvals.wait_batch(pg_temp.b('l3'), '-1 second')$$, '22023', NULL, 'a negative timeout is 22023');
SELECT throws_ok($$SELECT approvals.wait_batch(pg_temp.b('l3'), NULL)$$, '22004', NULL, 'a NULL timeout is 22004');
SELECT throws_ok($$SELECT approvals.wait_batch('bat_0000000000000000', '1 second')$$, 'P0002', NULL, 'waiting for an unknown batch is P0002');
-- A zero timeout is not negative: it must never raise (repeated, because a
-- wrong comparison against the clock fails only some of the time).
CREATE FUNCTION pg_temp.wait0(n int) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE bad int := 0; msg text;
BEGIN
    FOR i IN 1..n LOOP
        BEGIN
            PERFORM approvals.wait_batch(pg_temp.b('l3'), '0');
        EXCEPTION WHEN OTHERS THEN
            bad := bad + 1; msg := SQLSTATE || ': ' || SQLERRM;
        END;
    END LOOP;
    RETURN bad || ' errors' || coalesce(' (' || msg || ')', '');
END $f$;
SELECT is(pg_temp.wait0(1000), '0 errors', 'wait_batch with timeout 0 returns at once, 1000 times out of 1000');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- run_queued (inside a transaction block: processes without committing)
-- ---------------------------------------------------------------------------
-- l4 and l5 are queued; queue three more with explicit queue order: q2 first, then q1.
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb
    SELECT 'q1', (approvals.create_batch(ARRAY['tb17_10', 'tb17_11'])).id UNION ALL
    SELECT 'q2', (approvals.create_batch(ARRAY['tb17_12'])).id UNION ALL
    SELECT 'p1', (approvals.create_batch(ARRAY['tb17_13'], start => false)).id$$,
    'two more queued batches and a pending one');
RESET ROLE;
UPDATE approvals.batches SET queued_at = now() - interval '10 minutes' WHERE id = pg_temp.b('q2');
UPDATE approvals.batches SET queued_at = now() - interval '5 minutes' WHERE id = pg_temp.b('q1');
SELECT throws_ok($$CALL approvals.run_queued(0)$$, '22023', NULL, 'max_batches 0 is 22023');
SELECT throws_ok($$CALL approvals.run_queued(-1)$$, '22023', NULL, 'max_batches -1 is 22023');
SET ROLE tb_adm;
SELECT lives_ok($$CALL approvals.run_queued(1)$$, 'an admin runs one queued batch');
RESET ROLE;
SELECT is((SELECT string_agg(pg_temp.lbl(id) || ':' || status, ' ' ORDER BY pg_temp.lbl(id)) FROM approvals.batches
            WHERE id IN (pg_temp.b('q1'), pg_temp.b('q2'), pg_temp.b('l4'), pg_temp.b('l5'), pg_temp.b('p1'))),
          'l4:queued l5:queued p1:pending q1:queued q2:completed', 'max_batches 1: only the longest queued batch (q2) was processed');
SELECT is((SELECT reviewer FROM approvals.claims WHERE id = 'tb17_12'), 'tb_coord', 'its claim is approved by the batch''s coordinator, not the admin');
SET LOCAL approvals.chunk_size = 1;
SET ROLE tb_coord;
SELECT lives_ok($$CALL approvals.run_queued()$$, 'a coordinator runs the rest of the queue, one claim per chunk');
RESET ROLE;
RESET approvals.chunk_size;
SELECT is((SELECT string_agg(pg_temp.lbl(id) || ':' || status, ' ' ORDER BY pg_temp.lbl(id)) FROM approvals.batches
            WHERE id IN (pg_temp.b('q1'), pg_temp.b('q2'), pg_temp.b('l4'), pg_temp.b('l5'), pg_temp.b('p1'))),
          'l4:completed l5:completed p1:pending q1:completed q2:completed', 'every queued batch is completed; the pending one is not touched');
SELECT is((SELECT row(processed_count, approved_count, failed_count)::text FROM approvals.batches WHERE id = pg_temp.b('q1')), '(2,2,0)',
          'q1''s counters');
SELECT is((SELECT reviewer FROM approvals.claims WHERE id = 'tb17_7'), 'usr_coord99', 'l5 decided as its coordinator usr_coord99');

-- A batch left processing by a session that is gone is resumed where it stopped.
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'crash', id FROM approvals.create_batch(ARRAY['tb17_20', 'tb17_21'], start => false)$$,
                'a batch whose first chunk (20, 21) ...');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('crash'))$$, '... was processed ...');
RESET ROLE;
INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids)
    VALUES (pg_temp.b('crash'), 3, 5, ARRAY['tb17_22', 'tb17_23', 'tb17_24']);
UPDATE approvals.batches SET status = 'processing', completed_at = NULL, next_position = 3, total_claims = 5,
                             total_amount = total_amount + 22 + 23 + 24, worker_pid = NULL
 WHERE id = pg_temp.b('crash');
SELECT is((SELECT row(status, processed_count)::text FROM approvals.batches WHERE id = pg_temp.b('crash')), '(processing,2)',
          '... and then its session died with 22, 23, 24 still to do');
SET ROLE tb_coord;
SELECT lives_ok($$CALL approvals.run_queued()$$, 'run_queued');
RESET ROLE;
SELECT is((SELECT row(status, total_claims, processed_count, approved_count, failed_count, approved_amount)::text
             FROM approvals.batches WHERE id = pg_temp.b('crash')),
          '(completed,5,5,5,0,110)', 'it resumed the batch and completed it');
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ' ORDER BY position) FROM approvals.batch_items WHERE batch_id = pg_temp.b('crash')),
          'tb17_20:approved tb17_21:approved tb17_22:approved tb17_23:approved tb17_24:approved', 'every item approved');
SELECT is((SELECT string_agg(claim_id || ':' || count, ' ' ORDER BY claim_id)
             FROM (SELECT claim_id, count(*) FROM approvals.events WHERE action = 'approved' AND claim_id IN ('tb17_20', 'tb17_21', 'tb17_22', 'tb17_23', 'tb17_24')
                    GROUP BY claim_id) e),
          'tb17_20:1 tb17_21:1 tb17_22:1 tb17_23:1 tb17_24:1', 'no claim was decided twice');

-- A batch processing in a live session is not taken over.
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'live', id FROM approvals.create_batch(ARRAY['tb17_30'])$$, 'a batch ...');
RESET ROLE;
UPDATE approvals.batches SET status = 'processing', started_at = now(),
       worker_pid = (SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'),
       worker_started = (SELECT backend_start FROM pg_stat_activity WHERE backend_type = 'checkpointer')
 WHERE id = pg_temp.b('live');
SET ROLE tb_coord;
SELECT lives_ok($$CALL approvals.run_queued()$$, '... marked processing by a live process (the checkpointer); run_queued');
RESET ROLE;
SELECT is((SELECT row(status, processed_count)::text FROM approvals.batches WHERE id = pg_temp.b('live')), '(processing,0)',
          'the live session''s batch was left alone');
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tb17_30'), 'pending', 'its claim is untouched');
SET ROLE tb_coord;
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('live'))$$, '55000', NULL,
                 'process_batch of a batch that is processing elsewhere is 55000');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- purge_batches
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb
    SELECT 'old_pend', (approvals.create_batch(ARRAY['tb17_35'], start => false)).id UNION ALL
    SELECT 'old_que',  (approvals.create_batch(ARRAY['tb17_36'])).id UNION ALL
    SELECT 'old_fail', (approvals.create_batch(ARRAY['tb17_nope'], max_failures => 0)).id$$,
    'a pending, a queued and a failing batch');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('old_fail'))$$, 'the failing one processed: failed');
RESET ROLE;
-- Age them: l1 (completed), l2 (cancelled), old_fail (failed), old_pend, old_que, live (processing) two days old;
-- crash and q1 (completed) stay recent.
UPDATE approvals.batches SET created_at = now() - interval '3 days', updated_at = now() - interval '2 days',
       queued_at = CASE WHEN queued_at IS NOT NULL THEN now() - interval '2 days' END,
       completed_at = CASE WHEN completed_at IS NOT NULL THEN now() - interval '2 days' END,
       cancelled_at = CASE WHEN cancelled_at IS NOT NULL THEN now() - interval '2 days' END
 WHERE id IN (pg_temp.b('l1'), pg_temp.b('l2'), pg_temp.b('old_fail'), pg_temp.b('old_pend'), pg_temp.b('old_que'), pg_temp.b('live'));
CREATE TEMP TABLE ev_before AS SELECT count(*) AS n FROM approvals.events;
SET ROLE tb_adm;
SELECT throws_ok($$SELECT approvals.purge_batches('-1 day')$$, '22023', NULL, 'a negative older_than is 22023');
SELECT throws_ok($$SELECT approvals.purge_batches(NULL)$$, '22004', NULL, 'older_than NULL is 22004');
SELECT is(approvals.purge_batches('1 day'), 3, 'purge_batches(1 day) deletes the three finished batches older than a day');
RESET ROLE;
SELECT is((SELECT string_agg(t.label, ' ' ORDER BY t.label) FROM pg_temp.tb t WHERE NOT EXISTS (SELECT 1 FROM approvals.batches b WHERE b.id = t.id)),
          'l1 l2 old_fail', 'gone: the old completed, cancelled and failed batches');
SELECT is((SELECT count(*)::int FROM approvals.batch_items WHERE batch_id IN (pg_temp.b('l1'), pg_temp.b('l2'), pg_temp.b('old_fail'))), 0,
          'and their items');
SELECT is((SELECT string_agg(pg_temp.lbl(id) || ':' || status, ' ' ORDER BY pg_temp.lbl(id)) FROM approvals.batches
            WHERE id IN (pg_temp.b('old_pend'), pg_temp.b('old_que'), pg_temp.b('live'), pg_temp.b('crash'), pg_temp.b('q1'))),
          'crash:completed live:processing old_pend:pending old_que:queued q1:completed',
          'kept: unfinished batches however old, and recently finished ones');
SELECT is((SELECT count(*) FROM approvals.events), (SELECT n FROM pg_temp.ev_before), 'the audit events stay');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE batch_id = pg_temp.b('l1') AND action = 'approved'), 2,
          'including the purged batch''s decisions, still naming it');
SET ROLE tb_adm;
SELECT is(approvals.purge_batches('1 day'), 0, 'purging again deletes nothing');
RESET ROLE;
SET ROLE tb_rdr;
SELECT throws_ok($$SELECT approvals.get_batch(pg_temp.b('l1'))$$, 'P0002', NULL, 'a purged batch is unknown (P0002)');
RESET ROLE;

-- The same pid with another start time is a different backend (pids are reused after a
-- crash restart): the batch is an orphan and is taken over.
UPDATE approvals.batches SET worker_started = worker_started - interval '1 hour'
 WHERE id = pg_temp.b('live');
SET ROLE tb_coord;
SELECT lives_ok($$CALL approvals.run_queued()$$, 'run_queued after the pid was "reused"');
RESET ROLE;
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('live')), 'completed',
          'a batch whose pid now belongs to another backend is resumed');
SELECT is((SELECT status FROM approvals.claims WHERE id = 'tb17_30'), 'approved', 'and its claim decided');

SELECT * FROM finish();
ROLLBACK;
