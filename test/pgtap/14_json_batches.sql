-- 14_json_batches: the JSON layer of seed 000 (bulk approval processor):
-- api_create_batch, api_update_batch, api_cancel_batch, api_get_batch and
-- api_list_batches — exact key sets, values, 'failed' items shown as
-- 'rejected' with their error, rejected_count = rejected + failed,
-- pagination, UTC timestamps 'YYYY-MM-DDTHH:MI:SSZ' whatever the session's
-- TimeZone, and the SQLSTATEs of bad bodies.
BEGIN;
SELECT plan(57);

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
CREATE TEMP TABLE js (label text PRIMARY KEY, j jsonb);
GRANT ALL ON js TO PUBLIC;
CREATE FUNCTION pg_temp.j(l text) RETURNS jsonb LANGUAGE sql AS $f$
    SELECT j FROM pg_temp.js WHERE label = l
$f$;
CREATE FUNCTION pg_temp.keys(j jsonb) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(j) AS k
$f$;
-- The expected rendering of a timestamp, computed independently of the extension.
CREATE FUNCTION pg_temp.ts(t timestamptz) RETURNS text LANGUAGE sql AS $f$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD') || 'T' || to_char(t AT TIME ZONE 'UTC', 'HH24:MI:SS') || 'Z'
$f$;

CREATE ROLE tb_coord IN ROLE approvals_coordinator;
CREATE ROLE tb_plat  IN ROLE approvals_platform;
CREATE ROLE tb_rdr   IN ROLE approvals_reader;

SELECT lives_ok($$
    SELECT approvals.submit('tb_inv', 'r' || g, 'h', id => 'tb14_' || g, actor => 'usr_req14', amount => g)
      FROM generate_series(1, 12) g$$,
    'fixture: twelve pending claims tb14_1..12');

-- A session far from UTC: the JSON must still be in UTC.
SET LOCAL TIME ZONE 'Asia/Kolkata';

-- ---------------------------------------------------------------------------
-- POST /approval-batches
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.js VALUES ('create', approvals.api_create_batch(
        '{"claim_ids": ["tb14_1", "tb14_2", "tb14_nope", "tb14_3"], "coordinator_id": "tb_coord",
          "comment": "End-of-month batch approval March 2026"}'))$$,
    'api_create_batch with the seed''s request body');
INSERT INTO pg_temp.tb SELECT 'create', pg_temp.j('create') ->> 'batch_id';
SELECT is(pg_temp.keys(pg_temp.j('create')), 'batch_id,coordinator_id,created_at,status,total_claims',
          'the response has exactly the seed''s keys');
SELECT matches(pg_temp.j('create') ->> 'batch_id', '^bat_[0-9a-f]{16}$', 'batch_id is a bat_ id');
SELECT is(pg_temp.j('create') - 'batch_id' - 'created_at',
          '{"coordinator_id": "tb_coord", "status": "queued", "total_claims": 4}'::jsonb,
          'coordinator_id, status queued, total_claims 4 (a number)');
SELECT is(pg_temp.j('create') ->> 'created_at', pg_temp.ts(now()), 'created_at is the UTC time as YYYY-MM-DDTHH:MI:SSZ');
SELECT matches(pg_temp.j('create') ->> 'created_at', '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', 'created_at has the seed''s format');
SELECT is((SELECT row(coordinator, comment, status, total_claims, action)::text FROM approvals.batches WHERE id = pg_temp.b('create')),
          '(tb_coord,"End-of-month batch approval March 2026",queued,4,approve)', 'the stored batch matches the request');
SELECT is((SELECT string_agg(claim_id, ',' ORDER BY position) FROM approvals.batch_items WHERE batch_id = pg_temp.b('create')),
          'tb14_1,tb14_2,tb14_nope,tb14_3', 'its items are the request''s claim_ids in order');
SELECT is(approvals.api_create_batch('{"claim_ids": ["tb14_4"]}') ->> 'coordinator_id', 'tb_coord',
          'without coordinator_id the coordinator is the calling role');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": ["tb14_4"], "coordinator_id": "usr_coord99"}')$$, '42501', NULL,
                 'a coordinator_id other than oneself from a non-platform role is 42501');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"coordinator_id": "tb_coord"}')$$, '22004', NULL, 'missing claim_ids is 22004');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": null}')$$, '22004', NULL, 'claim_ids null is 22004');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": "tb14_4"}')$$, '22023', NULL, 'claim_ids as a string is 22023');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": [4, 5]}')$$, '22023', NULL, 'claim_ids of numbers is 22023');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": []}')$$, '22023', NULL, 'claim_ids [] is 22023');
SELECT throws_ok($$SELECT approvals.api_create_batch('{"claim_ids": ["tb14_4", "tb14_4"]}')$$, '22023', NULL, 'duplicate claim_ids is 22023');
SELECT throws_ok($$SELECT approvals.api_create_batch('["tb14_4"]')$$, '22023', NULL, 'a body that is not an object is 22023');
SELECT throws_ok(format('SELECT approvals.api_create_batch(%L)', jsonb_build_object('claim_ids', jsonb_build_array('tb14_4'), 'comment', repeat('c', 2001))),
                 '22001', NULL, 'a 2001-character comment is 22001');
SET ROLE tb_plat;
SELECT is(approvals.api_create_batch('{"claim_ids": ["tb14_4"], "coordinator_id": "usr_coord99"}') ->> 'coordinator_id', 'usr_coord99',
          'platform creates a batch for coordinator_id usr_coord99');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- PUT /approval-batches/:id
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'put', id FROM approvals.create_batch(ARRAY['tb14_5', 'tb14_6', 'tb14_7', 'tb14_8'], start => false,
                                                                                     comment => 'End-of-month batch')$$,
                'a pending batch of four claims');
SELECT lives_ok($$INSERT INTO pg_temp.js VALUES ('put', approvals.api_update_batch(pg_temp.b('put'),
        '{"comment": "End-of-month batch — amended to include late submissions",
          "claim_ids": ["tb14_5", "tb14_6", "tb14_7", "tb14_8", "tb14_9"]}'))$$,
    'api_update_batch with the seed''s request body');
SELECT is(pg_temp.keys(pg_temp.j('put')), 'batch_id,status,total_claims,updated_at', 'the response has exactly the seed''s keys');
SELECT is(pg_temp.j('put') - 'updated_at', jsonb_build_object('batch_id', pg_temp.b('put'), 'status', 'pending', 'total_claims', 5),
          'batch_id, status pending, total_claims 5');
SELECT is(pg_temp.j('put') ->> 'updated_at', pg_temp.ts(now()), 'updated_at in UTC, seed format');
SELECT is((SELECT comment FROM approvals.batches WHERE id = pg_temp.b('put')), 'End-of-month batch — amended to include late submissions',
          'the comment was replaced');
SELECT is((approvals.api_update_batch(pg_temp.b('put'), '{"add_claim_ids": ["tb14_10"]}')) ->> 'total_claims', '6',
          'add_claim_ids appends: total_claims 6');
SELECT is((SELECT string_agg(claim_id, ',' ORDER BY position) FROM approvals.batch_items WHERE batch_id = pg_temp.b('put')),
          'tb14_5,tb14_6,tb14_7,tb14_8,tb14_9,tb14_10', 'the items after both updates');
SELECT throws_ok($$SELECT approvals.api_update_batch(pg_temp.b('put'), '{"add_claim_ids": ["tb14_5"]}')$$, '22023', NULL,
                 'adding a claim already in the batch is 22023');
SELECT throws_ok($$SELECT approvals.api_update_batch(pg_temp.b('put'), '{"claim_ids": "tb14_5"}')$$, '22023', NULL,
                 'claim_ids as a string is 22023');
SELECT throws_ok($$SELECT approvals.api_update_batch(pg_temp.b('create'), '{"comment": "late"}')$$, '55000', NULL,
                 'updating a queued batch is 55000');
SELECT throws_ok($$SELECT approvals.api_update_batch('bat_0000000000000000', '{"comment": "x"}')$$, 'P0002', NULL,
                 'updating an unknown batch is P0002');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- DELETE /approval-batches/:id
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.js VALUES ('del', approvals.api_cancel_batch(pg_temp.b('put')))$$, 'api_cancel_batch on the pending batch');
SELECT is(pg_temp.keys(pg_temp.j('del')), 'batch_id,cancelled,cancelled_at,claims_reverted', 'the response has exactly the seed''s keys');
SELECT is(pg_temp.j('del') - 'cancelled_at', jsonb_build_object('batch_id', pg_temp.b('put'), 'cancelled', true, 'claims_reverted', 0),
          'cancelled true (a boolean), claims_reverted 0 (a number)');
SELECT is(pg_temp.j('del') ->> 'cancelled_at', pg_temp.ts(now()), 'cancelled_at in UTC, seed format');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('put')), 'cancelled', 'the batch is cancelled');
SELECT throws_ok($$SELECT approvals.api_cancel_batch(pg_temp.b('put'))$$, '55000', NULL, 'cancelling it again is 55000');
SELECT throws_ok($$SELECT approvals.api_cancel_batch('bat_0000000000000000')$$, 'P0002', NULL, 'cancelling an unknown batch is P0002');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- GET /approval-batches/:id
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('create'))$$, 'process the created batch');
SELECT lives_ok($$INSERT INTO pg_temp.js VALUES ('get', approvals.api_get_batch(pg_temp.b('create')))$$, 'api_get_batch');
SELECT is(pg_temp.keys(pg_temp.j('get')),
          'approved_count,batch_id,completed_at,coordinator_id,created_at,rejected_count,results,status,total_claims',
          'the response has exactly the seed''s keys');
SELECT is(pg_temp.j('get') - 'results',
          jsonb_build_object('batch_id', pg_temp.b('create'), 'coordinator_id', 'tb_coord', 'status', 'completed', 'total_claims', 4,
                             'approved_count', 3, 'rejected_count', 1, 'created_at', pg_temp.ts(now()), 'completed_at', pg_temp.ts(now())),
          'batch fields: completed, 3 approved, the failed claim counted as rejected, UTC timestamps');
SELECT is(pg_temp.j('get') -> 'results',
          jsonb_build_array(
              jsonb_build_object('claim_id', 'tb14_1', 'decision', 'approved', 'processed_at', pg_temp.ts(now())),
              jsonb_build_object('claim_id', 'tb14_2', 'decision', 'approved', 'processed_at', pg_temp.ts(now())),
              jsonb_build_object('claim_id', 'tb14_nope', 'decision', 'rejected', 'error', 'Claim not found', 'processed_at', pg_temp.ts(now())),
              jsonb_build_object('claim_id', 'tb14_3', 'decision', 'approved', 'processed_at', pg_temp.ts(now()))),
          'results in batch order; no error key on successes; the failed item as decision rejected with its error');
SELECT throws_ok($$SELECT approvals.api_get_batch('bat_0000000000000000')$$, 'P0002', NULL, 'an unknown batch is P0002');

SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'rej', id FROM approvals.create_batch(ARRAY['tb14_11', 'tb14_1', 'tb14_12'], action => 'reject')$$,
                'a reject batch, one of whose claims is already approved');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('rej'))$$, 'processed');
SELECT is(approvals.api_get_batch(pg_temp.b('rej')) - 'results' - 'batch_id' - 'created_at' - 'completed_at' - 'coordinator_id',
          '{"status": "completed", "total_claims": 3, "approved_count": 0, "rejected_count": 3}'::jsonb,
          'reject batch: rejected_count = 2 rejected + 1 failed');
SELECT is((SELECT jsonb_agg(r - 'processed_at') FROM jsonb_array_elements(approvals.api_get_batch(pg_temp.b('rej')) -> 'results') r),
          '[{"claim_id": "tb14_11", "decision": "rejected"},
            {"claim_id": "tb14_1", "decision": "rejected", "error": "Claim already processed"},
            {"claim_id": "tb14_12", "decision": "rejected"}]'::jsonb,
          'reject batch results');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- GET /approval-batches (page, limit)
-- ---------------------------------------------------------------------------
-- Make the order unambiguous (now() is the same for the whole transaction):
-- rej newest, then create, then the rest.
UPDATE approvals.batches SET created_at = now() + interval '2 hours' WHERE id = pg_temp.b('rej');
UPDATE approvals.batches SET created_at = now() + interval '1 hour' WHERE id = pg_temp.b('create');
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.js VALUES ('list', approvals.api_list_batches())$$, 'api_list_batches()');
SELECT is(pg_temp.keys(pg_temp.j('list')), 'data,pagination', 'top level: data and pagination');
SELECT is(pg_temp.j('list') -> 'pagination',
          jsonb_build_object('page', 1, 'limit', 20, 'total', (SELECT count(*) FROM approvals.batches)),
          'pagination: page 1, limit 20, total = every batch');
SELECT is(pg_temp.j('list') -> 'data' -> 0,
          (SELECT jsonb_build_object('batch_id', id, 'coordinator_id', coordinator, 'status', status, 'total_claims', total_claims,
                                     'approved_count', approved_count, 'rejected_count', rejected_count + failed_count,
                                     'created_at', pg_temp.ts(created_at), 'completed_at', pg_temp.ts(completed_at))
             FROM approvals.batches WHERE id = pg_temp.b('rej')),
          'the newest batch first, as the seed''s summary object');
SELECT is(approvals.api_list_batches(2, 1) -> 'data',
          jsonb_build_array(jsonb_build_object('batch_id', pg_temp.b('create'), 'coordinator_id', 'tb_coord', 'status', 'completed',
                                               'total_claims', 4, 'approved_count', 3, 'rejected_count', 1,
                                               'created_at', pg_temp.ts(now() + interval '1 hour'), 'completed_at', pg_temp.ts(now()))),
          'page 2 of limit 1 is the second newest batch');
SELECT is(approvals.api_list_batches(1000, 5) -> 'data', '[]'::jsonb, 'a page past the end has data []');
SELECT throws_ok($$SELECT approvals.api_list_batches(1, 0)$$, '22023', NULL, 'limit 0 is 22023');
SELECT throws_ok($$SELECT approvals.api_list_batches(0, 20)$$, '22023', NULL, 'page 0 is 22023');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
