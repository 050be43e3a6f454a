-- 09_call_hostile_inputs: the inputs that once crashed the server or raised XX000,
-- each with the error a user should see instead, and the rules that gave
-- different answers for the same role:
--   - json_required / json_text_array with a NULL key or NULL flag (segfault)
--   - set_handler(0::regprocedure) (XX000 cache lookup failed), grant_tenant(0::regrole)
--   - a claim id of 64 multibyte characters: submitted, then found by a batch
--     (the batch code counted bytes into a 65-byte key: "Claim not found")
--   - NaN and Infinity amounts (accepted: NaN >= 0 is true for numeric)
--   - a route of a million approvers (quadratic duplicate check that ignored cancel),
--     routes not numbered from 1, intervals that overflow or end before they start,
--     procedures as handlers, "pg_temp" as a substring of the search_path, list_batches after a column was dropped, idempotency
--     fingerprints that changed with TimeZone (wait_batch in REPEATABLE READ: 20_batch_api_wait_snapshot)
--   - a NOINHERIT member gets the same answer for group roles and tenant grants
--     (has_privs_of_role for both; tenants used is_member_of_role)
BEGIN;
SELECT plan(32);

-- JSON helpers: NULL arguments are 22004, never a crash (also constant-folded at plan time)
SELECT throws_ok($$SELECT approvals.json_required('{}', NULL)$$, '22004', 'key must not be null',
                 'json_required with a NULL key is 22004');
SELECT throws_ok($$SELECT approvals.json_required(NULL, 'a')$$, '22004', 'request body must not be null',
                 'json_required with a NULL body is 22004');
SELECT throws_ok($$SELECT approvals.json_text_array('{}', NULL, false)$$, '22004', 'key must not be null',
                 'json_text_array with a NULL key is 22004');
SELECT throws_ok($$SELECT approvals.json_text_array('{"a":["x"]}', 'a', NULL)$$, '22004',
                 'required must not be null', 'json_text_array with a NULL required flag is 22004');
SELECT throws_ok($$SELECT approvals.json_text_array('[1,2]', 'a', true)$$, '22023', NULL,
                 'json_text_array on a JSON array body is 22023');
SELECT is(approvals.json_text_array('{"a":["x",null]}', 'a', true), ARRAY['x', NULL],
          'json_text_array still reads an array of strings');

-- Zero OIDs name nothing: a clear error with an errcode, not "cache lookup failed"
SELECT throws_ok($$SELECT approvals.set_handler('invoice', 0::oid::regprocedure)$$, '42883',
                 'function with OID 0 does not exist', 'set_handler(0::regprocedure) is 42883');
SELECT throws_ok($$SELECT approvals.grant_tenant('t09', 0::oid::regrole)$$, '42704',
                 'role with OID 0 does not exist', 'grant_tenant(0::regrole) is 42704');
SELECT throws_ok($$SELECT approvals.revoke_tenant('t09', 0::oid::regrole)$$, '42704',
                 'role with OID 0 does not exist', 'revoke_tenant(0::regrole) is 42704');

-- Money is finite: NaN and Infinity would poison every sum of a batch
SELECT throws_ok($$SELECT approvals.submit('t09_inv', 'r-nan', 'h', actor => 'usr_req09', amount => 'NaN')$$,
                 '22023', 'amount must be a finite number', 'amount NaN is 22023');
SELECT throws_ok($$SELECT approvals.submit('t09_inv', 'r-inf', 'h', actor => 'usr_req09', amount => 'Infinity')$$,
                 '22023', 'amount must be a finite number', 'amount Infinity is 22023');
SELECT throws_ok($$SELECT approvals.set_policy('t09_inv', auto_approve_below => 'Infinity')$$,
                 '22023', 'auto_approve_below must be a finite number', 'auto_approve_below Infinity is 22023');

-- Ids are limited in characters everywhere: 64 Cyrillic characters (128 bytes) work in a batch
SELECT lives_ok($$SELECT approvals.submit('t09_inv', 'r-cyr', 'h', actor => 'usr_req09',
                                          id => repeat('ж', 64))$$,
                'a 64-character Cyrillic claim id is accepted by submit');
SELECT throws_ok($$SELECT approvals.submit('t09_inv', 'r-cyr2', 'h', actor => 'usr_req09',
                                           id => repeat('ж', 65))$$, '22001', NULL,
                 'a 65-character id is 22001');
SELECT lives_ok($$SELECT approvals.submit('t09_inv', 'r-emoji', 'h', actor => 'usr_req09',
                                          id => repeat('😀', 33))$$,
                'a 33-emoji claim id (132 bytes) is accepted by submit');
CREATE TEMP TABLE r09 AS
    SELECT * FROM approvals.process_batch((approvals.create_batch(
        ARRAY[repeat('ж', 64), repeat('😀', 33), 'tap09_missing'], coordinator => 'usr_coord09',
        start => false)).id);
SELECT is((SELECT string_agg(coalesce(decision, '-') || ':' || coalesce(error, '-'), ' | ' ORDER BY claim_id)
             FROM r09),
          'failed:Claim not found | approved:- | approved:-',
          'a batch finds and decides claims whose ids are 128 and 132 bytes long');
SELECT is((SELECT status FROM approvals.claims WHERE id = repeat('😀', 33)), 'approved',
          'the emoji claim is approved');

-- Routes: at most 50 distinct approvers, numbered from 1 whatever the array's bounds
SELECT throws_ok($$SELECT approvals.submit('t09_inv', 'r-route', 'h', actor => 'usr_req09',
                     approvers => ARRAY(SELECT 'a' || g FROM generate_series(1, 1000000) g))$$,
                 '22023', 'approvers lists 1000000 actors; the limit is 50',
                 'a route of a million approvers is refused at once');
SELECT throws_ok($$SELECT approvals.submit('t09_inv', 'r-route', 'h', actor => 'usr_req09',
                     approvers => ARRAY['a', 'b', 'a'])$$,
                 '22023', 'approvers lists "a" twice', 'a duplicate approver is 22023');
SELECT is((SELECT row(assignee, array_lower(approvers, 1), approvers)::text
             FROM approvals.submit('t09_inv', 'r-bounds', 'h', actor => 'usr_req09',
                                   approvers => '[0:1]={bob,carol}')),
          '(bob,1,"{bob,carol}")', 'a route given as [0:1] is stored from 1 with its first approver assigned');
SELECT lives_ok($$SELECT approvals.set_policy('t09_pol', approvers => '[5:6]={dora,erin}')$$,
                'set_policy takes a route with other bounds');
SELECT is((SELECT approvers::text FROM approvals.policies WHERE resource_type = 't09_pol'), '{dora,erin}',
          'and stores it numbered from 1');
SELECT throws_ok($$SELECT approvals.set_policy('t09_pol', expires_in => '1 mon -30 days 1 second')$$,
                 '22023', 'expires_in must be a positive interval with no negative part',
                 'an expires_in with a negative part is 22023');
SELECT throws_ok($$SELECT approvals.set_policy('t09_pol', expires_in => '100000000 years')$$,
                 '22023', 'expires_in must be at most 100 years',
                 'an expires_in that could overflow an escalation is 22023');

-- Handlers are functions, and pg_temp is found as a search_path element, not a substring
CREATE PROCEDURE pg_temp.t09_proc(c approvals.claims, e approvals.events) LANGUAGE sql AS 'SELECT 1';
SELECT throws_ok(format('SELECT approvals.set_handler(%L, %L::regprocedure)', 't09_h',
                        pg_my_temp_schema()::regnamespace || '.t09_proc(approvals.claims, approvals.events)'),
                 '22023', NULL, 'a procedure is not a handler (22023)');
CREATE SCHEMA t09_not_pg_temp;
CREATE FUNCTION public.t09_handler(c approvals.claims, e approvals.events) RETURNS void
    LANGUAGE sql AS 'SELECT';
SET LOCAL search_path = t09_not_pg_temp, public;
SELECT approvals.set_handler('t09_h', 'public.t09_handler(approvals.claims, approvals.events)');
RESET search_path;
SELECT is((SELECT search_path FROM approvals.handlers WHERE resource_type = 't09_h'),
          't09_not_pg_temp, public, pg_temp',
          'a schema whose name contains pg_temp does not stop pg_temp being searched last');

-- Idempotency fingerprints do not depend on the session's TimeZone
SET LOCAL TimeZone = 'UTC';
SELECT approvals.submit('t09_inv', 'r-idem', 'h', actor => 'usr_req09', id => 'tap09_idem',
                        expires_at => '2030-01-01 00:00:00+00', idempotency_key => 't09-k');
SET LOCAL TimeZone = 'Europe/Paris';
SELECT is((SELECT id FROM approvals.submit('t09_inv', 'r-idem', 'h', actor => 'usr_req09',
                                           id => 'tap09_idem', expires_at => '2030-01-01 00:00:00+00',
                                           idempotency_key => 't09-k')),
          'tap09_idem', 'a retry from a session in another time zone returns the first claim');
RESET TimeZone;

CREATE TEMP TABLE b09 AS
    SELECT id FROM approvals.create_batch(ARRAY['tap09_idem'], coordinator => 'usr_coord09', start => false);

-- list_batches returns whole rows even after a column of approvals.batches was dropped
ALTER TABLE approvals.batches DROP COLUMN comment;
SELECT is((SELECT count(*)::int FROM approvals.list_batches(page_limit => 1000) l
            WHERE l.id = (SELECT id FROM b09) AND l.status = 'pending' AND l.tenant IS NULL),
          1, 'list_batches after DROP COLUMN returns correct rows');

-- One membership rule: a NOINHERIT member has neither the group's role nor its tenant
CREATE ROLE t09_grp;
CREATE ROLE t09_noinherit NOINHERIT IN ROLE approvals_reader, t09_grp;
CREATE ROLE t09_inherit IN ROLE approvals_reader, t09_grp;
-- visible_tenants() itself is granted to the group roles, which neither role inherits
GRANT USAGE ON SCHEMA approvals TO t09_noinherit, t09_grp;
GRANT EXECUTE ON FUNCTION approvals.visible_tenants() TO t09_noinherit, t09_grp;
SELECT approvals.grant_tenant('t09_ten', 't09_grp');
SELECT approvals.submit('t09_inv', 'r-ten', 'h', actor => 'usr_req09', id => 'tap09_ten',
                        tenant => 't09_ten');
SET ROLE t09_inherit;
SELECT is((SELECT count(*)::int FROM approvals.claims WHERE id = 'tap09_ten'), 1,
          'an inheriting member of a granted group sees the tenant''s claim');
RESET ROLE;
SET ROLE t09_noinherit;
SELECT throws_ok($$SELECT count(*) FROM approvals.claims$$, '42501', NULL,
                 'a NOINHERIT member of approvals_reader has no reader privileges');
SELECT is(approvals.visible_tenants(), '{}'::text[],
          'and no tenant through a group it does not inherit from (same rule)');
SET ROLE t09_grp;
SELECT is(approvals.visible_tenants(), ARRAY['t09_ten'],
          'after SET ROLE to the group it has the group''s tenant');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
