-- 11_batch_chunk_process: approvals.process_batch — one result row per claim in
-- batch order, every item error text, what a decided claim looks like (status,
-- reviewer, batch_id, event), the batch counters and amounts, reject batches,
-- batch decisions bypassing routes and quorums, self-approval policies,
-- handlers (a raising handler fails only its own item, side effects happen
-- exactly once), chunking, and that the caller's ROLLBACK undoes everything.
--
-- Time: inside one transaction now() does not move, so the "expired" fixtures
-- get an expires_at in the past by a direct UPDATE as the superuser.
BEGIN;
SELECT plan(67);

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
-- What process_batch returned, per batch label, with the row number.
CREATE TEMP TABLE res (label text, n bigint, claim_id text, decision text, error text, processed_at timestamptz);
GRANT ALL ON res TO PUBLIC;
CREATE FUNCTION pg_temp.ret(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(n || ':' || claim_id || ':' || coalesce(decision, '-') || coalesce(':' || error, ''), ' | ' ORDER BY n)
      FROM pg_temp.res WHERE label = l
$f$;
CREATE FUNCTION pg_temp.items(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(position || ':' || claim_id || ':' || coalesce(decision, '-') || coalesce(':' || error, ''), ' | ' ORDER BY position)
      FROM approvals.batch_items WHERE batch_id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.counters(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT row(status, total_claims, processed_count, approved_count, rejected_count, failed_count, reverted_count,
               total_amount, approved_amount, failed_amount)::text
      FROM approvals.batches WHERE id = pg_temp.b(l)
$f$;
-- Claims as "id:status:reviewer:batch-label-or-id".
CREATE FUNCTION pg_temp.claims(ids text[]) RETURNS text LANGUAGE sql AS $f$
    SELECT string_agg(c.id || ':' || c.status || ':' || coalesce(c.reviewer, '-') || ':'
                      || coalesce((SELECT t.label FROM pg_temp.tb t WHERE t.id = c.batch_id), c.batch_id, '-'), ' ' ORDER BY c.id)
      FROM approvals.claims c WHERE c.id = ANY (ids)
$f$;
-- The events a batch appended, as "claim:action:from>to:actor:comment".
CREATE FUNCTION pg_temp.bev(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(e.claim_id || ':' || e.action || ':' || e.from_status || '>' || e.to_status || ':' || e.actor
                               || ':' || coalesce(e.comment, '-'), ' ' ORDER BY e.claim_id, e.id), '')
      FROM approvals.events e WHERE e.batch_id = pg_temp.b(l)
$f$;

CREATE ROLE tb_coord IN ROLE approvals_coordinator;
CREATE ROLE tb_plat  IN ROLE approvals_platform;
CREATE ROLE tb_hown;

-- A handler for resource type tb_hnd: logs every call, refuses to approve claim tb11_h3.
CREATE TABLE public.tb11_log (n serial PRIMARY KEY, claim_id text, claim_status text, action text, batch_id text);
GRANT INSERT, SELECT ON public.tb11_log TO tb_hown;
GRANT USAGE ON SEQUENCE public.tb11_log_n_seq TO tb_hown;
CREATE FUNCTION public.tb11_handler(c approvals.claims, e approvals.events) RETURNS void
LANGUAGE plpgsql AS $f$
BEGIN
    INSERT INTO public.tb11_log (claim_id, claim_status, action, batch_id) VALUES (c.id, c.status, e.action, e.batch_id);
    IF c.id = 'tb11_h3' AND e.action = 'approved' THEN
        RAISE EXCEPTION 'ledger refused % for now', c.id USING ERRCODE = 'HX011';
    END IF;
END $f$;
ALTER FUNCTION public.tb11_handler(approvals.claims, approvals.events) OWNER TO tb_hown;
SELECT lives_ok($$SELECT approvals.set_handler('tb_hnd', 'public.tb11_handler(approvals.claims, approvals.events)'),
                         approvals.set_policy(resource_type => 'tb_self', allow_self_approval => true)$$,
                'handler for tb_hnd; policy allowing self-approval for tb_self');

-- ---------------------------------------------------------------------------
-- Fixtures (superuser acting for users)
-- ---------------------------------------------------------------------------
SELECT lives_ok($$
    SELECT approvals.submit(c.rt, c.id, 'h-' || c.id, id => c.id, actor => c.req, amount => c.amount, tenant => c.tenant,
                            approvers => c.approvers, required_approvals => c.required,
                            expires_at => CASE WHEN c.exp THEN now() + interval '1 hour' END)
      FROM (VALUES ('tb_inv',  'tb11_ok1',   'usr_req11', 100::numeric, NULL::text, NULL::text[], NULL::int, false),
                   ('tb_inv',  'tb11_ok2',   'usr_req11', 200,          NULL,       NULL,         NULL,      false),
                   ('tb_inv',  'tb11_ok3',   'usr_req11', NULL,         NULL,       NULL,         NULL,      false),
                   ('tb_inv',  'tb11_dec',   'usr_req11', 1,            NULL,       NULL,         NULL,      false),
                   ('tb_inv',  'tb11_rej',   'usr_req11', 2,            NULL,       NULL,         NULL,      false),
                   ('tb_inv',  'tb11_can',   'usr_req11', 4,            NULL,       NULL,         NULL,      false),
                   ('tb_inv',  'tb11_xpd',   'usr_req11', 8,            NULL,       NULL,         NULL,      true),
                   ('tb_inv',  'tb11_due',   'usr_req11', 16,           NULL,       NULL,         NULL,      true),
                   ('tb_inv',  'tb11_ten',   'usr_req11', 32,           'tb_t11',   NULL,         NULL,      false),
                   ('tb_inv',  'tb11_own',   'tb_coord',  64,           NULL,       NULL,         NULL,      false),
                   ('tb_self', 'tb11_own2',  'tb_coord',  1000,         NULL,       NULL,         NULL,      false),
                   ('tb_inv',  'tb11_route', 'usr_req11', 2000,         NULL,       ARRAY['usr_x', 'usr_y'], 2,  false),
                   ('tb_inv',  'tb11_quor',  'usr_req11', 4000,         NULL,       NULL,         2,         false)
           ) AS c(rt, id, req, amount, tenant, approvers, required, exp)$$,
    'fixture: thirteen pending claims');
SELECT lives_ok($$
    SELECT approvals.decide('tb11_dec', 'approved', actor => 'usr_rev'),
           approvals.decide('tb11_rej', 'rejected', actor => 'usr_rev'),
           approvals.cancel_claim('tb11_can', actor => 'usr_req11'),
           approvals.decide('tb11_quor', 'approved', actor => 'usr_rev')$$,
    'fixture: one approved, one rejected, one cancelled, one quorum claim with 1 of 2 approvals');
SELECT lives_ok($$SELECT approvals.submit('tb_inv', 'tb11_sup', 'h-1', id => 'tb11_sup', actor => 'usr_req11', amount => 128),
                         approvals.submit('tb_inv', 'tb11_sup', 'h-2', id => 'tb11_sup_new', actor => 'usr_req11')$$,
                'fixture: tb11_sup superseded by a resubmission');
UPDATE approvals.claims SET expires_at = now() - interval '1 minute' WHERE id = 'tb11_xpd';
SELECT is(approvals.expire_due(), 1, 'fixture: expire_due expires tb11_xpd');
UPDATE approvals.claims SET expires_at = now() - interval '1 minute' WHERE id = 'tb11_due';
SELECT is((SELECT string_agg(id || ':' || status || ':' || approval_count, ' ' ORDER BY id) FROM approvals.claims WHERE id LIKE 'tb11_%'),
          'tb11_can:cancelled:0 tb11_dec:approved:1 tb11_due:pending:0 tb11_ok1:pending:0 tb11_ok2:pending:0 tb11_ok3:pending:0 '
          'tb11_own:pending:0 tb11_own2:pending:0 tb11_quor:pending:1 tb11_rej:rejected:0 tb11_route:pending:0 '
          'tb11_sup:cancelled:0 tb11_sup_new:pending:0 tb11_ten:pending:0 tb11_xpd:expired:0',
          'fixture states');

-- ---------------------------------------------------------------------------
-- An approve batch over every kind of item
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'mix', id FROM approvals.create_batch(
        ARRAY['tb11_ok1', 'tb11_missing', 'tb11_dec', 'tb11_rej', 'tb11_can', 'tb11_sup', 'tb11_xpd', 'tb11_ok2',
              'tb11_ten', 'tb11_own', 'tb11_due', 'tb11_own2', 'tb11_route', 'tb11_quor', repeat('z', 70), 'tb11_ok3'],
        comment => 'mixed bag')$$,
    'a queued approve batch of sixteen items');
SELECT lives_ok($$INSERT INTO pg_temp.res SELECT 'mix', r.n, r.claim_id, r.decision, r.error, r.processed_at
                    FROM approvals.process_batch(pg_temp.b('mix')) WITH ORDINALITY AS r(claim_id, decision, error, processed_at, n)$$,
                'process_batch runs it');
SELECT is(pg_temp.ret('mix'),
          '1:tb11_ok1:approved | 2:tb11_missing:failed:Claim not found | 3:tb11_dec:failed:Claim already processed | '
          '4:tb11_rej:failed:Claim already processed | 5:tb11_can:failed:Claim already processed | '
          '6:tb11_sup:failed:Claim already processed | 7:tb11_xpd:failed:Claim already processed | 8:tb11_ok2:approved | '
          '9:tb11_ten:failed:Claim belongs to another tenant | 10:tb11_own:failed:Requester cannot decide own claim | '
          '11:tb11_due:failed:Claim expired | 12:tb11_own2:approved | 13:tb11_route:approved | 14:tb11_quor:approved | '
          '15:' || repeat('z', 70) || ':failed:Claim not found | 16:tb11_ok3:approved',
          'one row per claim in batch order, with the exact item error texts');
SELECT is((SELECT count(*)::int FROM pg_temp.res WHERE label = 'mix' AND processed_at IS NOT NULL), 16,
          'every returned row has processed_at');
SELECT is((SELECT string_agg(r.claim_id || ':' || coalesce(r.decision, '-') || ':' || coalesce(r.error, '-') || ':' || r.processed_at, ' ' ORDER BY r.n)
             FROM approvals.batch_results(pg_temp.b('mix')) WITH ORDINALITY AS r(claim_id, decision, error, processed_at, n)),
          (SELECT string_agg(claim_id || ':' || coalesce(decision, '-') || ':' || coalesce(error, '-') || ':' || processed_at, ' ' ORDER BY n)
             FROM pg_temp.res WHERE label = 'mix'),
          'batch_results returns exactly what process_batch returned');
SELECT is(pg_temp.counters('mix'), '(completed,16,16,6,0,10,0,7523,7300,223)',
          'completed: processed 16, approved 6, failed 10; total_amount 7523 (not the other tenant''s 32), approved_amount 7300, failed_amount 223 (the existing failed claims of the batch''s tenant)');
SELECT is((SELECT row(started_at IS NOT NULL, completed_at IS NOT NULL, cancelled_at IS NULL, error IS NULL)::text
             FROM approvals.batches WHERE id = pg_temp.b('mix')),
          '(t,t,t,t)', 'started_at and completed_at set, no error');
SELECT is((SELECT row(count(*) FILTER (WHERE decision = 'approved'), count(*) FILTER (WHERE decision = 'failed'),
                      count(*) FILTER (WHERE decision IS NULL))::text
             FROM approvals.batch_items WHERE batch_id = pg_temp.b('mix')),
          (SELECT row(approved_count, failed_count, total_claims - processed_count)::text FROM approvals.batches WHERE id = pg_temp.b('mix')),
          'the counters agree with the items');
SELECT is((SELECT sum(c.amount) FROM approvals.batch_items i JOIN approvals.claims c ON c.id = i.claim_id
            WHERE i.batch_id = pg_temp.b('mix') AND i.decision = 'approved'),
          (SELECT approved_amount FROM approvals.batches WHERE id = pg_temp.b('mix')),
          'approved_amount agrees with the approved items');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb11_ok1', 'tb11_ok2', 'tb11_ok3', 'tb11_own2', 'tb11_route', 'tb11_quor']),
          'tb11_ok1:approved:tb_coord:mix tb11_ok2:approved:tb_coord:mix tb11_ok3:approved:tb_coord:mix '
          'tb11_own2:approved:tb_coord:mix tb11_quor:approved:tb_coord:mix tb11_route:approved:tb_coord:mix',
          'decided claims: approved, reviewer = coordinator, batch_id = the batch');
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE batch_id = pg_temp.b('mix') AND (decided_at IS NULL OR assignee IS NOT NULL)), 0,
          'decided claims have decided_at and no assignee left');
SELECT is(pg_temp.bev('mix'),
          'tb11_ok1:approved:pending>approved:tb_coord:mixed bag tb11_ok2:approved:pending>approved:tb_coord:mixed bag '
          'tb11_ok3:approved:pending>approved:tb_coord:mixed bag tb11_own2:approved:pending>approved:tb_coord:mixed bag '
          'tb11_quor:approved:pending>approved:tb_coord:mixed bag tb11_route:approved:pending>approved:tb_coord:mixed bag',
          'one event per decided claim: approved, pending>approved, by the coordinator, batch_id set, the batch comment');
SELECT is(pg_temp.claims(ARRAY['tb11_dec', 'tb11_rej', 'tb11_can', 'tb11_sup', 'tb11_xpd', 'tb11_ten', 'tb11_own', 'tb11_due']),
          'tb11_can:cancelled:-:- tb11_dec:approved:usr_rev:- tb11_due:pending:-:- tb11_own:pending:-:- '
          'tb11_rej:rejected:usr_rev:- tb11_sup:cancelled:-:- tb11_ten:pending:-:- tb11_xpd:expired:-:-',
          'failed items left their claims exactly as they were');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id IN ('tb11_dec', 'tb11_rej', 'tb11_can', 'tb11_sup', 'tb11_xpd',
                                                                         'tb11_ten', 'tb11_own', 'tb11_due') AND batch_id IS NOT NULL), 0,
          'and appended no events for them');

-- The batch can be processed only once.
SET ROLE tb_coord;
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('mix'))$$, '55000', NULL, 'processing a completed batch again is 55000');
SELECT throws_ok($$SELECT * FROM approvals.process_batch('bat_0000000000000000')$$, 'P0002', NULL, 'processing an unknown batch is P0002');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(NULL)$$, '22004', NULL, 'process_batch(NULL) is 22004');

-- A second batch over claims the first one decided.
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'again', id FROM approvals.create_batch(ARRAY['tb11_ok1', 'tb11_sup_new'], start => false)$$,
                'a pending batch with a claim the first batch approved');
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' ') FROM approvals.process_batch(pg_temp.b('again'))),
          'tb11_ok1:failed:Claim already processed tb11_sup_new:approved',
          'a pending (not started) batch is processed too; the claim decided by the other batch is already processed');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tb11_ok1' AND action = 'approved'), 1,
          'tb11_ok1 was approved exactly once');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- A reject batch
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('tb_inv', c.id, 'h', id => c.id, actor => 'usr_req11', amount => c.amount)
                    FROM (VALUES ('tb11_rj1', 5::numeric), ('tb11_rj2', 7), ('tb11_rj3', 11)) AS c(id, amount)$$,
                'fixture: three claims to reject');
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'rej', id FROM approvals.create_batch(ARRAY['tb11_rj1', 'tb11_ok2', 'tb11_rj2', 'tb11_rj3'],
                                                                                     action => 'reject', comment => 'no')$$,
                'a reject batch');
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' ') FROM approvals.process_batch(pg_temp.b('rej'))),
          'tb11_rj1:rejected tb11_ok2:failed:Claim already processed tb11_rj2:rejected tb11_rj3:rejected',
          'items of a reject batch are rejected');
SELECT is(pg_temp.counters('rej'), '(completed,4,4,0,3,1,0,223,0,200)',
          'rejected_count 3, approved_count 0, failed_count 1, approved_amount 0, failed_amount 200');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb11_rj1', 'tb11_rj2', 'tb11_rj3']),
          'tb11_rj1:rejected:tb_coord:rej tb11_rj2:rejected:tb_coord:rej tb11_rj3:rejected:tb_coord:rej',
          'the claims are rejected by the coordinator in this batch');
SELECT is(pg_temp.bev('rej'),
          'tb11_rj1:rejected:pending>rejected:tb_coord:no tb11_rj2:rejected:pending>rejected:tb_coord:no tb11_rj3:rejected:pending>rejected:tb_coord:no',
          'one rejected event each, with the batch id');

-- ---------------------------------------------------------------------------
-- Coordinator chosen by the platform
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('tb_inv', c.id, 'h', id => c.id, actor => c.req)
                    FROM (VALUES ('tb11_pl1', 'usr_req11'), ('tb11_pl2', 'usr_coord99')) AS c(id, req)$$,
                'fixture: a claim of usr_req11 and one requested by usr_coord99');
SET ROLE tb_plat;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'plat', id FROM approvals.create_batch(ARRAY['tb11_pl1', 'tb11_pl2'], coordinator => 'usr_coord99')$$,
                'platform creates a batch for usr_coord99');
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' ') FROM approvals.process_batch(pg_temp.b('plat'))),
          'tb11_pl1:approved tb11_pl2:failed:Requester cannot decide own claim',
          'the batch acts as usr_coord99: its own request is refused');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb11_pl1']), 'tb11_pl1:approved:usr_coord99:plat', 'the reviewer is the batch''s coordinator');
SELECT is(pg_temp.bev('plat'), 'tb11_pl1:approved:pending>approved:usr_coord99:-', 'the event''s actor is the batch''s coordinator');

-- ---------------------------------------------------------------------------
-- Handlers: a raising handler fails only its own item
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('tb_hnd', 'h' || g, 'h', id => 'tb11_h' || g, actor => 'usr_req11', amount => g)
                    FROM generate_series(1, 6) g$$,
                'fixture: six claims of resource type tb_hnd');
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'hnd', id FROM approvals.create_batch(ARRAY['tb11_h1', 'tb11_h2', 'tb11_h3', 'tb11_h4', 'tb11_h5', 'tb11_h6'])$$,
                'a batch over them');
SELECT is((SELECT string_agg(claim_id || ':' || decision || coalesce(':' || error, ''), ' | ') FROM approvals.process_batch(pg_temp.b('hnd'))),
          'tb11_h1:approved | tb11_h2:approved | tb11_h3:failed:ledger refused tb11_h3 for now | tb11_h4:approved | tb11_h5:approved | tb11_h6:approved',
          'the refused claim fails with the handler''s message; the others are approved');
SELECT is(pg_temp.counters('hnd'), '(completed,6,6,5,0,1,0,21,18,3)', 'counters and amounts: 5 approved (18), 1 failed (3)');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb11_h3']), 'tb11_h3:pending:-:-', 'the refused claim is still pending, untouched');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tb11_h3' AND action <> 'submitted'), 0,
          'and has no approved event');
SELECT is((SELECT string_agg(claim_id || ':' || claim_status || ':' || action || ':' || (batch_id = pg_temp.b('hnd')), ' ' ORDER BY claim_id)
             FROM public.tb11_log WHERE action <> 'submitted'),
          'tb11_h1:approved:approved:true tb11_h2:approved:approved:true tb11_h4:approved:approved:true '
          'tb11_h5:approved:approved:true tb11_h6:approved:approved:true',
          'the handler''s surviving side effects: exactly once per approved claim (it saw the approved claim and the batch''s event)');

-- ---------------------------------------------------------------------------
-- Chunks: the result does not depend on approvals.chunk_size
-- ---------------------------------------------------------------------------
SELECT lives_ok($$SELECT approvals.submit('tb_inv', 'k' || g, 'h', id => 'tb11_k' || g, actor => 'usr_req11', amount => 10 * g)
                    FROM generate_series(1, 9) g$$,
                'fixture: nine claims');
SET LOCAL approvals.chunk_size = 2;
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'ch4', id FROM approvals.create_batch(ARRAY['tb11_k1', 'tb11_k2', 'tb11_nope', 'tb11_k3'])$$,
                'a batch of exactly two chunks of 2');
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ') FROM approvals.process_batch(pg_temp.b('ch4'))),
          'tb11_k1:approved tb11_k2:approved tb11_nope:failed tb11_k3:approved', 'chunk_size 2, 4 items: all processed');
SELECT is(pg_temp.counters('ch4'), '(completed,4,4,3,0,1,0,60,60,0)', 'its counters add up across the chunks');
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'ch5', id FROM approvals.create_batch(ARRAY['tb11_k9', 'tb11_k8', 'tb11_k7', 'tb11_k6', 'tb11_k5'])$$,
                'a batch of two and a half chunks');
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ') FROM approvals.process_batch(pg_temp.b('ch5'))),
          'tb11_k9:approved tb11_k8:approved tb11_k7:approved tb11_k6:approved tb11_k5:approved', 'chunk_size 2, 5 items: all processed, in order');
SELECT is(pg_temp.counters('ch5'), '(completed,5,5,5,0,0,0,350,350,0)', 'its counters add up across the chunks');
RESET ROLE;
RESET approvals.chunk_size;

-- ---------------------------------------------------------------------------
-- The caller's transaction: a rollback undoes everything
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'rb', id FROM approvals.create_batch(ARRAY['tb11_k4', 'tb11_nope'], start => false)$$,
                'a pending batch');
SAVEPOINT before_process;
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ') FROM approvals.process_batch(pg_temp.b('rb'))),
          'tb11_k4:approved tb11_nope:failed', 'processed inside a savepoint');
SELECT is(pg_temp.counters('rb'), '(completed,2,2,1,0,1,0,40,40,0)', 'completed inside the savepoint');
ROLLBACK TO SAVEPOINT before_process;
SELECT is(pg_temp.counters('rb'), '(pending,2,0,0,0,0,0,40,0,0)', 'after ROLLBACK TO the batch is pending with zero counters again');
SELECT is(pg_temp.items('rb'), '1:tb11_k4:- | 2:tb11_nope:-', 'its items are undecided again');
RESET ROLE;
SELECT is(pg_temp.claims(ARRAY['tb11_k4']), 'tb11_k4:pending:-:-', 'the claim is pending again');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id = 'tb11_k4'), 1, 'only its submitted event is left');
SET ROLE tb_coord;
SELECT is((SELECT string_agg(claim_id || ':' || decision, ' ') FROM approvals.process_batch(pg_temp.b('rb'))),
          'tb11_k4:approved tb11_nope:failed', 'the batch can then be processed for real');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- States that cannot be processed
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'cx', id FROM approvals.create_batch(ARRAY['tb11_k4'], start => false)$$,
                'a pending batch');
SELECT lives_ok($$SELECT approvals.cancel_batch(pg_temp.b('cx'))$$, 'cancelled');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('cx'))$$, '55000', NULL, 'processing a cancelled batch is 55000');
RESET ROLE;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'fx', id FROM approvals.create_batch(ARRAY['tb11_nope', 'tb11_k5'], max_failures => 0)$$,
                'a batch that will fail its threshold');
SELECT lives_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('fx'))$$, 'processed');
SELECT is((SELECT status FROM approvals.batches WHERE id = pg_temp.b('fx')), 'failed', 'it ended failed');
SELECT throws_ok($$SELECT * FROM approvals.process_batch(pg_temp.b('fx'))$$, '55000', NULL, 'processing a failed batch is 55000');
SELECT is((SELECT string_agg(action || ':' || coalesce((SELECT t.label FROM pg_temp.tb t WHERE t.id = e.batch_id), '-'), ' ' ORDER BY id)
             FROM approvals.events e WHERE claim_id = 'tb11_k4'),
          'submitted:- approved:rb', 'tb11_k4: approved once, by batch rb (not by the rolled-back run, not by the cancelled cx)');

SELECT * FROM finish();
ROLLBACK;
