-- 10_batch_api_create: approvals.create_batch, update_batch and start_batch —
-- defaults, totals, ids, every argument check with its SQLSTATE, the
-- approvals.max_batch_claims limit, idempotency keys, amending a pending batch
-- and the explicit confirmation of start_batch (AP002).
BEGIN;
SELECT plan(97);

CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE r text;
BEGIN
    EXECUTE sql INTO r;
    RETURN r;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $f$;
-- Batches created by the tests, by label.
CREATE TEMP TABLE tb (label text PRIMARY KEY, id text NOT NULL);
GRANT ALL ON tb TO PUBLIC;
CREATE FUNCTION pg_temp.b(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT id FROM pg_temp.tb WHERE label = l
$f$;
-- A batch's items as "position:claim:decision".
CREATE FUNCTION pg_temp.items(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT coalesce(string_agg(position || ':' || claim_id || ':' || coalesce(decision, '-'), ' ' ORDER BY position), '')
      FROM approvals.batch_items WHERE batch_id = pg_temp.b(l)
$f$;
CREATE FUNCTION pg_temp.st(l text) RETURNS text LANGUAGE sql AS $f$
    SELECT status FROM approvals.batches WHERE id = pg_temp.b(l)
$f$;

CREATE ROLE tb_coord  IN ROLE approvals_coordinator;
CREATE ROLE tb_coord2 IN ROLE approvals_coordinator;
CREATE ROLE tb_plat   IN ROLE approvals_platform;
CREATE ROLE tb_rdr    IN ROLE approvals_reader;

-- Fixtures: seven pending claims requested by usr_req10 (amount NULL for c).
SELECT lives_ok($$
    SELECT approvals.submit('tb_inv', c.id, 'h-' || c.id, id => c.id, actor => 'usr_req10', amount => c.amount)
      FROM (VALUES ('tb10_a', 10::numeric), ('tb10_b', 20.5), ('tb10_c', NULL), ('tb10_d', 30),
                   ('tb10_e', 40), ('tb10_f', 50), ('tb10_g', 0.25)) AS c(id, amount)$$,
    'fixture: seven pending claims');

-- ---------------------------------------------------------------------------
-- create_batch: defaults, totals, ids
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'q', id FROM approvals.create_batch(ARRAY['tb10_b', 'tb10_a', 'tb10_c'], comment => 'March batch')$$,
                'a coordinator creates a batch with the defaults');
SELECT matches(pg_temp.b('q'), '^bat_[0-9a-f]{16}$', 'the batch id is bat_ + 16 lowercase hex chars');
SELECT is((SELECT row(status, coordinator, action, comment, tenant, on_threshold, auto_retry, max_failures, max_failure_ratio)::text
             FROM approvals.batches WHERE id = pg_temp.b('q')),
          '(queued,tb_coord,approve,"March batch",,rollback,t,,)',
          'defaults: queued, coordinator = calling role, approve, rollback, auto_retry, no thresholds, no tenant');
SELECT is((SELECT row(total_claims, total_amount, processed_count, approved_count, rejected_count, failed_count, reverted_count,
                      approved_amount, failed_amount)::text
             FROM approvals.batches WHERE id = pg_temp.b('q')),
          '(3,30.5,0,0,0,0,0,0,0)',
          'total_claims 3 and total_amount 30.5 (a NULL amount counts 0); every counter starts at 0');
SELECT is((SELECT row(queued_at IS NOT NULL, started_at IS NULL, completed_at IS NULL, cancelled_at IS NULL, error IS NULL)::text
             FROM approvals.batches WHERE id = pg_temp.b('q')),
          '(t,t,t,t,t)', 'start => true (the default) sets queued_at and nothing else');
SELECT is(pg_temp.items('q'), '1:tb10_b:- 2:tb10_a:- 3:tb10_c:-',
          'one item per claim, in the order given, not yet decided');
SELECT is((SELECT string_agg(id || ':' || status || ':' || coalesce(batch_id, '-'), ' ' ORDER BY id)
             FROM approvals.claims WHERE id IN ('tb10_a', 'tb10_b', 'tb10_c')),
          'tb10_a:pending:- tb10_b:pending:- tb10_c:pending:-', 'creating a batch decides nothing');
SELECT is((SELECT count(*)::int FROM approvals.events WHERE claim_id IN ('tb10_a', 'tb10_b', 'tb10_c') AND action <> 'submitted'), 0,
          'creating a batch appends no claim events');

SELECT is((SELECT row(b.status, b.total_claims, b.queued_at IS NULL, b.action)::text
             FROM approvals.create_batch(ARRAY['tb10_a'], start => false, action => 'reject') AS b),
          '(pending,1,t,reject)', 'start => false: pending with no queued_at; action reject is stored');
SELECT is((SELECT row(b.total_claims, b.total_amount)::text FROM approvals.create_batch(ARRAY['tb10_d', 'tb10_nope', 'tb10_g']) AS b),
          '(3,30.25)', 'an unknown claim id counts in total_claims but adds no amount');
CREATE TEMP TABLE tb_ret (r text);
GRANT ALL ON tb_ret TO PUBLIC;
INSERT INTO pg_temp.tb_ret SELECT b::text FROM approvals.create_batch(ARRAY['tb10_e'], comment => 'ret') AS b;
SELECT is((SELECT r FROM pg_temp.tb_ret), (SELECT s::text FROM approvals.batches s WHERE comment = 'ret'),
          'create_batch returns the stored batch row');
SELECT is((SELECT b.coordinator FROM approvals.create_batch(ARRAY['tb10_e'], coordinator => 'tb_coord') AS b), 'tb_coord',
          'passing one''s own name as coordinator is allowed');
SELECT is((SELECT row(b.max_failures, b.max_failure_ratio, b.on_threshold, b.auto_retry)::text
             FROM approvals.create_batch(ARRAY['tb10_e'], max_failures => 0, max_failure_ratio => 1,
                                         on_threshold => 'continue', auto_retry => false) AS b),
          '(0,1,continue,f)', 'max_failures 0, max_failure_ratio 1, continue and auto_retry false are stored');
SELECT is((SELECT b.max_failure_ratio::text FROM approvals.create_batch(ARRAY['tb10_e'], max_failure_ratio => 0) AS b), '0',
          'max_failure_ratio 0 is allowed');

-- coordinator override
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], coordinator => 'usr_coord99')$$, '42501', NULL,
                 'a plain coordinator passing another coordinator is 42501');
SET ROLE tb_plat;
SELECT is((SELECT b.coordinator FROM approvals.create_batch(ARRAY['tb10_a'], coordinator => 'usr_coord99') AS b), 'usr_coord99',
          'platform creates a batch for usr_coord99');
SELECT is((SELECT b.coordinator FROM approvals.create_batch(ARRAY['tb10_a']) AS b), 'tb_plat',
          'platform without coordinator acts as itself');
SET ROLE tb_rdr;
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'])$$, '42501', NULL,
                 'a reader (not a coordinator) creating a batch is 42501');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- create_batch: argument checks
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT throws_ok($$SELECT approvals.create_batch(NULL)$$, '22004', NULL, 'claim_ids NULL is 22004');
SELECT throws_ok($$SELECT approvals.create_batch('{}')$$, '22023', NULL, 'an empty claim_ids is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a', NULL])$$, '22023', NULL, 'a NULL element in claim_ids is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a', ''])$$, '22023', NULL, 'an empty-string element in claim_ids is 22023');
SELECT matches(pg_temp.q($$SELECT approvals.create_batch(ARRAY['tb10_a', 'tb10_dupe', 'tb10_b', 'tb10_dupe'])$$),
               '^ERROR 22023: .*tb10_dupe', 'a duplicate claim id is 22023 and the message names it');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], action => 'approved')$$, '22023', NULL, 'action approved (not approve) is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], action => 'abstain')$$, '22023', NULL, 'action abstain is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], on_threshold => 'stop')$$, '22023', NULL, 'on_threshold stop is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], max_failures => -1)$$, '22023', NULL, 'max_failures -1 is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], max_failure_ratio => -0.01)$$, '22023', NULL, 'max_failure_ratio -0.01 is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], max_failure_ratio => 1.01)$$, '22023', NULL, 'max_failure_ratio 1.01 is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], max_failure_ratio => 'NaN')$$, '22023', NULL, 'max_failure_ratio NaN is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a'], comment => repeat('x', 2001))$$, '22001', NULL, 'a 2001-character comment is 22001');
SELECT matches(pg_temp.q($$SELECT approvals.create_batch(ARRAY['tb10_a'], comment => repeat('x', 2001))$$),
               '2001.*2000', 'the message names the length and the limit');
SELECT is((SELECT length(b.comment) FROM approvals.create_batch(ARRAY['tb10_a'], comment => repeat('é', 2000)) AS b), 2000,
          'a 2000-character comment of 2-byte characters is accepted (the limit counts characters)');
RESET ROLE;

-- approvals.max_batch_claims
SET ROLE tb_coord;
SELECT throws_ok($$SET approvals.max_batch_claims = 3$$, '42501', NULL, 'a coordinator cannot change approvals.max_batch_claims');
RESET ROLE;
SET LOCAL approvals.max_batch_claims = 3;
SET ROLE tb_coord;
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a', 'tb10_b', 'tb10_c', 'tb10_d'])$$, '22023', NULL,
                 '4 claims with approvals.max_batch_claims = 3 is 22023');
SELECT is((SELECT b.total_claims FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b', 'tb10_c']) AS b), 3,
          '3 claims with approvals.max_batch_claims = 3 is allowed');
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'lim', id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], start => false)$$,
                'a pending batch of 2 under the limit of 3');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('lim'), add_claim_ids => ARRAY['tb10_c', 'tb10_d'])$$, '22023', NULL,
                 'adding 2 claims to a batch of 2 with the limit 3 is 22023');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('lim'), claim_ids => ARRAY['tb10_c', 'tb10_d', 'tb10_e', 'tb10_f'])$$, '22023', NULL,
                 'replacing the list with 4 claims with the limit 3 is 22023');
SELECT is((SELECT b.total_claims FROM approvals.update_batch(pg_temp.b('lim'), add_claim_ids => ARRAY['tb10_c']) AS b), 3,
          'adding 1 claim up to the limit is allowed');
SELECT is(pg_temp.items('lim'), '1:tb10_a:- 2:tb10_b:- 3:tb10_c:-', 'the refused amendments changed nothing');
RESET ROLE;
RESET approvals.max_batch_claims;

-- ---------------------------------------------------------------------------
-- Idempotency keys
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'idem', id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], comment => 'once',
                                                                                      idempotency_key => 'tb10-key')$$,
                'a batch with an idempotency key');
SELECT is((SELECT b.id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], comment => 'once', idempotency_key => 'tb10-key') AS b),
          pg_temp.b('idem'), 'repeating the call with the same key returns the same batch');
SELECT is((SELECT count(*)::int FROM approvals.batches WHERE comment = 'once'), 1, 'and creates no second batch');
SELECT is((SELECT count(*)::int FROM approvals.batch_items WHERE batch_id = pg_temp.b('idem')), 2, 'nor duplicate items');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], comment => 'twice', idempotency_key => 'tb10-key')$$,
                 '22023', NULL, 'the same key with a different comment is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a', 'tb10_c'], comment => 'once', idempotency_key => 'tb10-key')$$,
                 '22023', NULL, 'the same key with different claims is 22023');
SELECT throws_ok($$SELECT approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], comment => 'once', action => 'reject', idempotency_key => 'tb10-key')$$,
                 '22023', NULL, 'the same key with a different action is 22023');
SET ROLE tb_coord2;
SELECT isnt((SELECT b.id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], comment => 'once', idempotency_key => 'tb10-key') AS b),
            pg_temp.b('idem'), 'another coordinator''s key is its own: the same key creates a new batch');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM approvals.batches WHERE comment = 'once'), 2, 'two batches with that comment in all');

-- ---------------------------------------------------------------------------
-- update_batch
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'p', id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], start => false, comment => 'draft')$$,
                'a pending batch of two claims');
SELECT is((SELECT row(b.status, b.total_claims, b.total_amount)::text
             FROM approvals.update_batch(pg_temp.b('p'), claim_ids => ARRAY['tb10_c', 'tb10_d', 'tb10_e']) AS b),
          '(pending,3,70)', 'claim_ids replaces the list; update_batch returns the recomputed totals');
SELECT is(pg_temp.items('p'), '1:tb10_c:- 2:tb10_d:- 3:tb10_e:-', 'the items are exactly the new list, renumbered from 1');
SELECT is((SELECT row(total_claims, total_amount, comment)::text FROM approvals.batches WHERE id = pg_temp.b('p')),
          '(3,70,draft)', 'the stored batch has the new totals and keeps its comment');
SELECT is((SELECT row(b.total_claims, b.total_amount)::text
             FROM approvals.update_batch(pg_temp.b('p'), add_claim_ids => ARRAY['tb10_f', 'tb10_g']) AS b),
          '(5,120.25)', 'add_claim_ids appends; totals recomputed');
SELECT is(pg_temp.items('p'), '1:tb10_c:- 2:tb10_d:- 3:tb10_e:- 4:tb10_f:- 5:tb10_g:-', 'appended after the existing items');
SELECT matches(pg_temp.q($$SELECT approvals.update_batch(pg_temp.b('p'), add_claim_ids => ARRAY['tb10_a', 'tb10_d'])$$),
               '^ERROR 22023: .*tb10_d', 'adding a claim already in the batch is 22023 naming it');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), add_claim_ids => ARRAY['tb10_a', 'tb10_a'])$$, '22023', NULL,
                 'add_claim_ids listing a claim twice is 22023');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), add_claim_ids => ARRAY['tb10_a', NULL])$$, '22023', NULL,
                 'add_claim_ids with a NULL is 22023');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), claim_ids => ARRAY['tb10_a', ''])$$, '22023', NULL,
                 'claim_ids with an empty id is 22023');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), claim_ids => ARRAY['tb10_b', 'tb10_b'])$$, '22023', NULL,
                 'claim_ids with a duplicate is 22023');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), claim_ids => '{}')$$, '22023', NULL,
                 'replacing with an empty list is 22023');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), comment => repeat('x', 2001))$$, '22001', NULL,
                 'a 2001-character comment is 22001');
SELECT is((SELECT row(b.comment, b.total_claims)::text FROM approvals.update_batch(pg_temp.b('p'), comment => 'amended') AS b),
          '(amended,5)', 'comment alone changes the comment and keeps the claims');
SELECT is(pg_temp.items('p'), '1:tb10_c:- 2:tb10_d:- 3:tb10_e:- 4:tb10_f:- 5:tb10_g:-', 'the refused and comment-only calls left the items alone');
SELECT is((SELECT row(b.total_claims, b.total_amount)::text
             FROM approvals.update_batch(pg_temp.b('p'), claim_ids => ARRAY['tb10_a'], add_claim_ids => ARRAY['tb10_b']) AS b),
          '(2,30.5)', 'claim_ids and add_claim_ids together: replaced, then appended');
SELECT is(pg_temp.items('p'), '1:tb10_a:- 2:tb10_b:-', 'items after replace + append');
SELECT throws_ok($$SELECT approvals.update_batch('bat_0000000000000000', comment => 'x')$$, 'P0002', NULL, 'an unknown batch is P0002');
SELECT throws_ok($$SELECT approvals.update_batch(NULL, comment => 'x')$$, '22004', NULL, 'batch_id NULL is 22004');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('q'), comment => 'x')$$, '55000', NULL, 'amending a queued batch is 55000');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('q'), add_claim_ids => ARRAY['tb10_g'])$$, '55000', NULL,
                 'adding claims to a queued batch is 55000');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- start_batch and the confirmation list (AP002)
-- ---------------------------------------------------------------------------
SET ROLE tb_coord;
SELECT is((SELECT row(b.status, b.queued_at IS NOT NULL)::text FROM approvals.start_batch(pg_temp.b('p')) AS b),
          '(queued,t)', 'start_batch: pending -> queued with queued_at set');
SELECT is(pg_temp.st('p'), 'queued', 'the stored batch is queued');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('p'))$$, '55000', NULL, 'starting a queued batch is 55000');
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('p'), comment => 'late')$$, '55000', NULL, 'amending it once started is 55000');
SELECT throws_ok($$SELECT approvals.start_batch('bat_0000000000000000')$$, 'P0002', NULL, 'starting an unknown batch is P0002');
SELECT throws_ok($$SELECT approvals.start_batch(NULL)$$, '22004', NULL, 'start_batch(NULL) is 22004');

SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'cf', id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b', 'tb10_c'], start => false)$$,
                'a pending batch of a, b, c');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_a', 'tb10_b'])$$, 'AP002', NULL,
                 'confirming a subset is AP002');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_a', 'tb10_b', 'tb10_c', 'tb10_d'])$$, 'AP002', NULL,
                 'confirming a superset is AP002');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_a', 'tb10_b', 'tb10_d'])$$, 'AP002', NULL,
                 'confirming the right count with one wrong id is AP002');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_a', 'tb10_b', 'tb10_b'])$$, 'AP002', NULL,
                 'the right count with a repeated id in place of a missing one is AP002');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_a', 'tb10_b', 'tb10_c', 'tb10_c'])$$, 'AP002', NULL,
                 'the right members but one listed twice (count differs) is AP002');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_a', 'tb10_b', NULL])$$, 'AP002', NULL,
                 'a NULL in place of a claim is AP002');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf'), '{}')$$, 'AP002', NULL,
                 'an empty confirmation is AP002');
-- a confirmation longer than any batch may be is refused before its ids are read (no missing
-- or excess id named: the list was not looked at)
RESET ROLE;
CREATE FUNCTION pg_temp.detail_of(q text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE d text;
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN d;
END $f$;
SET LOCAL approvals.max_batch_claims = 3;
SET ROLE tb_coord;
SELECT is(pg_temp.detail_of(format($$SELECT approvals.start_batch(%L, ARRAY['tb10_a', 'tb10_b', 'tb10_c', 'tb10_d'])$$, pg_temp.b('cf'))),
          'The batch has 3 claims, the confirmation lists 4.',
          'a confirmation over approvals.max_batch_claims is AP002 without its ids being read');
RESET ROLE;
RESET approvals.max_batch_claims;
SET ROLE tb_coord;
SELECT is(pg_temp.st('cf'), 'pending', 'after the refused confirmations the batch is still pending');
SELECT is((SELECT row(b.status, b.total_claims)::text FROM approvals.start_batch(pg_temp.b('cf'), ARRAY['tb10_c', 'tb10_a', 'tb10_b']) AS b),
          '(queued,3)', 'the exact set in another order confirms and queues it');

SELECT lives_ok($$INSERT INTO pg_temp.tb SELECT 'cf2', id FROM approvals.create_batch(ARRAY['tb10_a', 'tb10_b'], start => false)$$,
                'a pending batch of a, b');
SELECT lives_ok($$SELECT approvals.update_batch(pg_temp.b('cf2'), add_claim_ids => ARRAY['tb10_e'])$$,
                'somebody adds e after the list was reviewed');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('cf2'), ARRAY['tb10_a', 'tb10_b'])$$, 'AP002', NULL,
                 'confirming the list as reviewed before the amendment is AP002');
SELECT is(pg_temp.st('cf2'), 'pending', 'the amended batch stays pending');
SELECT is((SELECT b.status FROM approvals.start_batch(pg_temp.b('cf2'), ARRAY['tb10_e', 'tb10_b', 'tb10_a']) AS b), 'queued',
          'confirming the amended list queues it');
RESET ROLE;

SET ROLE tb_rdr;
SELECT throws_ok($$SELECT approvals.update_batch(pg_temp.b('lim'), comment => 'x')$$, '42501', NULL, 'a reader amending a batch is 42501');
SELECT throws_ok($$SELECT approvals.start_batch(pg_temp.b('lim'))$$, '42501', NULL, 'a reader starting a batch is 42501');
RESET ROLE;
SELECT is(pg_temp.st('lim'), 'pending', 'the refused start left the batch pending');

SELECT * FROM finish();
ROLLBACK;
